/*
 * source.c — stdin, files, fifos and live capture, all read without blocking.
 *
 * stdin and fifos are switched to O_NONBLOCK (and stdin's flags restored at
 * exit: they belong to an open file description the shell may share). A
 * regular file is always readable, so poll() never waits on it; the loop
 * decides whether to keep reading when the buffer is full. A fifo given by
 * path is opened blocking on purpose: a non-blocking open would succeed with
 * no writer yet and the first read would report end of file.
 *
 * Live capture (source pcap:IFACE, built with libpcap) uses immediate mode so
 * that a quiet link does not hold packets back, a filter that excludes the
 * client's own connection to its server (otherwise every frame sent would be
 * captured and sent again), and libpcap's selectable descriptor for poll().
 */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "d4_log.h"

#ifdef D4_HAVE_PCAP
#include <pcap/pcap.h>

#define PCAP_CAPLEN 65535 /* bytes kept per packet */
#define PCAP_BATCH 64     /* packets taken per pcap_dispatch() */

struct pcap_src {
	pcap_t *p;
	uint8_t *stage; /* pcap stream bytes not yet handed out */
	size_t len;
	size_t cap;
	bool oom;
};

static void stage_put(struct pcap_src *ps, const void *data, size_t n)
{
	if (ps->oom)
		return;
	if (ps->cap - ps->len < n) {
		size_t cap = ps->cap ? ps->cap : 65536;
		uint8_t *p;
		while (cap - ps->len < n)
			cap *= 2;
		p = realloc(ps->stage, cap);
		if (p == NULL) {
			ps->oom = true;
			return;
		}
		ps->stage = p;
		ps->cap = cap;
	}
	memcpy(ps->stage + ps->len, data, n);
	ps->len += n;
}

/* pcap 2.4 record header, host byte order as in any pcap file. */
static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct pcap_src *ps = (struct pcap_src *)user;
	uint32_t rec[4];

	rec[0] = (uint32_t)h->ts.tv_sec;
	rec[1] = (uint32_t)h->ts.tv_usec;
	rec[2] = h->caplen;
	rec[3] = h->len;
	stage_put(ps, rec, sizeof(rec));
	stage_put(ps, bytes, h->caplen);
}

static int pcap_source_open(struct source *s, const struct client_conf *c, char *err,
                            size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_src *ps;
	struct bpf_program prog;
	char filter[2048];
	int rc;
	struct {
		uint32_t magic;
		uint16_t major, minor;
		int32_t thiszone;
		uint32_t sigfigs, snaplen, linktype;
	} gh;

	ps = calloc(1, sizeof(*ps));
	if (ps == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->pcap = ps;
	ebuf[0] = '\0';
	ps->p = pcap_create(c->src_arg, ebuf);
	if (ps->p == NULL) {
		(void)snprintf(err, errlen, "pcap:%s: %s", c->src_arg, ebuf);
		return -1;
	}
	if (pcap_set_snaplen(ps->p, PCAP_CAPLEN) != 0 ||
	    pcap_set_promisc(ps->p, c->promisc ? 1 : 0) != 0 ||
	    pcap_set_immediate_mode(ps->p, 1) != 0) {
		(void)snprintf(err, errlen, "pcap:%s: cannot set capture options", c->src_arg);
		return -1;
	}
	rc = pcap_activate(ps->p);
	if (rc < 0) {
		(void)snprintf(err, errlen, "pcap:%s: %s (%s)", c->src_arg, pcap_statustostr(rc),
		               pcap_geterr(ps->p));
		return -1;
	}
	if (rc > 0)
		d4_log(D4_LOG_WARN, "pcap_warning", "iface", c->src_arg, "warning",
		       pcap_statustostr(rc), NULL);
	filter[0] = '\0';
	if (c->dst_kind == DST_NET) {
		/* a bracketless IPv6 literal is fine for "host" in a BPF expression */
		if (c->pcap_filter != NULL)
			rc = snprintf(filter, sizeof(filter), "(%s) and not (host %s and tcp port %s)",
			              c->pcap_filter, c->host, c->port);
		else
			rc = snprintf(filter, sizeof(filter), "not (host %s and tcp port %s)", c->host,
			              c->port);
	} else if (c->pcap_filter != NULL) {
		rc = snprintf(filter, sizeof(filter), "%s", c->pcap_filter);
	} else {
		rc = 0;
	}
	if (rc < 0 || (size_t)rc >= sizeof(filter)) {
		(void)snprintf(err, errlen, "--pcap-filter: too long");
		return -1;
	}
	if (filter[0] != '\0') {
		if (pcap_compile(ps->p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
			(void)snprintf(err, errlen, "pcap filter \"%s\": %s", filter,
			               pcap_geterr(ps->p));
			return -1;
		}
		rc = pcap_setfilter(ps->p, &prog);
		pcap_freecode(&prog);
		if (rc != 0) {
			(void)snprintf(err, errlen, "pcap filter: %s", pcap_geterr(ps->p));
			return -1;
		}
	}
	if (pcap_setnonblock(ps->p, 1, ebuf) != 0) {
		(void)snprintf(err, errlen, "pcap:%s: %s", c->src_arg, ebuf);
		return -1;
	}
	s->fd = pcap_get_selectable_fd(ps->p);
	if (s->fd < 0) {
		(void)snprintf(err, errlen, "pcap:%s: no selectable descriptor", c->src_arg);
		return -1;
	}
	gh.magic = 0xa1b2c3d4;
	gh.major = 2;
	gh.minor = 4;
	gh.thiszone = 0;
	gh.sigfigs = 0;
	gh.snaplen = PCAP_CAPLEN;
	gh.linktype = (uint32_t)pcap_datalink(ps->p);
	stage_put(ps, &gh, 24);
	if (ps->oom) {
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	(void)snprintf(s->name, sizeof(s->name), "pcap:%s", c->src_arg);
	return 0;
}

static ssize_t pcap_source_read(struct source *s, uint8_t *buf, size_t cap, char *err,
                                size_t errlen)
{
	struct pcap_src *ps = s->pcap;
	size_t n;

	if (ps->len < cap) {
		int rc = pcap_dispatch(ps->p, PCAP_BATCH, on_packet, (u_char *)ps);
		if (rc == PCAP_ERROR) {
			(void)snprintf(err, errlen, "%s: %s", s->name, pcap_geterr(ps->p));
			s->eof = true;
			return -1;
		}
		if (ps->oom) {
			(void)snprintf(err, errlen, "%s: out of memory", s->name);
			s->eof = true;
			return -1;
		}
	}
	n = ps->len < cap ? ps->len : cap;
	if (n == 0)
		return 0;
	memcpy(buf, ps->stage, n);
	memmove(ps->stage, ps->stage + n, ps->len - n);
	ps->len -= n;
	s->bytes += n;
	return (ssize_t)n;
}

static void pcap_source_close(struct source *s)
{
	struct pcap_src *ps = s->pcap;
	struct pcap_stat st;

	if (ps == NULL)
		return;
	if (ps->p != NULL) {
		if (s->fd >= 0 && pcap_stats(ps->p, &st) == 0) {
			char recv[24], drop[24], ifdrop[24];
			(void)snprintf(recv, sizeof(recv), "%u", st.ps_recv);
			(void)snprintf(drop, sizeof(drop), "%u", st.ps_drop);
			(void)snprintf(ifdrop, sizeof(ifdrop), "%u", st.ps_ifdrop);
			d4_log(st.ps_drop || st.ps_ifdrop ? D4_LOG_WARN : D4_LOG_INFO, "pcap_stats",
			       "source", s->name, "received", recv, "dropped", drop, "if_dropped",
			       ifdrop, NULL);
		}
		pcap_close(ps->p);
	}
	free(ps->stage);
	free(ps);
	s->pcap = NULL;
}
#endif /* D4_HAVE_PCAP */

static int set_nonblock(struct source *s, char *err, size_t errlen)
{
	int fl = fcntl(s->fd, F_GETFL);

	if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
		(void)snprintf(err, errlen, "%s: %s", s->name, strerror(errno));
		return -1;
	}
	s->saved_fl = fl;
	s->restore_fl = true;
	return 0;
}

int source_open(struct source *s, const struct client_conf *c, char *err, size_t errlen)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->kind = c->src_kind;
	s->fd = -1;
	switch (c->src_kind) {
	case SRC_PCAP:
#ifdef D4_HAVE_PCAP
		return pcap_source_open(s, c, err, errlen);
#else
		(void)snprintf(err, errlen, "built without libpcap");
		return -1;
#endif
	case SRC_STDIN:
		(void)snprintf(s->name, sizeof(s->name), "stdin");
		s->fd = STDIN_FILENO;
		break;
	case SRC_FILE:
		(void)snprintf(s->name, sizeof(s->name), "%s", c->src_arg);
		do
			s->fd = open(c->src_arg, O_RDONLY | O_CLOEXEC);
		while (s->fd < 0 && errno == EINTR);
		if (s->fd < 0) {
			(void)snprintf(err, errlen, "source %s: %s", c->src_arg, strerror(errno));
			return -1;
		}
		s->own_fd = true;
		break;
	}
	if (fstat(s->fd, &st) != 0) {
		(void)snprintf(err, errlen, "source %s: %s", s->name, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		(void)snprintf(err, errlen, "source %s: is a directory", s->name);
		return -1;
	}
	s->regular = S_ISREG(st.st_mode);
	if (!s->regular && set_nonblock(s, err, errlen) != 0)
		return -1;
	return 0;
}

ssize_t source_read(struct source *s, uint8_t *buf, size_t cap, char *err, size_t errlen)
{
	ssize_t n;

	if (s->eof || s->fd < 0)
		return 0;
#ifdef D4_HAVE_PCAP
	if (s->pcap != NULL)
		return pcap_source_read(s, buf, cap, err, errlen);
#endif
	do
		n = read(s->fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		(void)snprintf(err, errlen, "source %s: %s", s->name, strerror(errno));
		s->eof = true;
		return -1;
	}
	if (n == 0) {
		s->eof = true;
		return 0;
	}
	s->bytes += (uint64_t)n;
	return n;
}

bool source_has_buffered(const struct source *s)
{
#ifdef D4_HAVE_PCAP
	return s->pcap != NULL && !s->eof && s->pcap->len > 0;
#else
	(void)s;
	return false;
#endif
}

void source_close(struct source *s)
{
	s->eof = true;
#ifdef D4_HAVE_PCAP
	pcap_source_close(s);
#endif
	if (s->fd >= 0) {
		if (s->restore_fl)
			(void)fcntl(s->fd, F_SETFL, s->saved_fl);
		if (s->own_fd)
			(void)close(s->fd);
	}
	s->restore_fl = false;
	s->own_fd = false;
	s->fd = -1;
}
