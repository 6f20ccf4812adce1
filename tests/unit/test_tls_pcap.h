/*
 * test_tls_pcap.h — test helper for the TLS unit tests: reads a small capture with libpcap and
 * rebuilds each TCP connection's two byte streams, with the order in which bytes arrived.
 *
 * This is deliberately naive (whole capture in memory, out-of-order segments held in a list,
 * overlaps trimmed) and only for the shared vectors and test captures, which are tiny. The
 * analyzer's real reassembly is flow.c. A connection's client is the sender of its first SYN
 * without ACK, else of its first packet. Only Ethernet (with VLAN tags), BSD loopback, raw IP
 * and Linux cooked captures are read.
 */
#ifndef TEST_TLS_PCAP_H
#define TEST_TLS_PCAP_H

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TP_MAX_FLOWS 256
#define TP_MAX_CHUNKS 4096
#define TP_MAX_PENDING 64

struct tp_seg {
	uint32_t seq;
	uint8_t *data;
	size_t len;
};

struct tp_dir {
	bool have_seq;
	uint32_t next; /* next expected sequence number */
	uint8_t *buf;
	size_t len, cap;
	struct tp_seg pending[TP_MAX_PENDING];
	size_t n_pending;
};

struct tp_chunk {
	int dir; /* 0 client to server, 1 server to client */
	size_t off, len;
};

struct tp_flow {
	int family;
	uint8_t addr[2][16]; /* [0] client, [1] server */
	uint16_t port[2];
	char addr_str[2][INET6_ADDRSTRLEN];
	struct tp_dir d[2];
	struct tp_chunk chunks[TP_MAX_CHUNKS];
	size_t n_chunks;
};

struct tp_capture {
	struct tp_flow *flows[TP_MAX_FLOWS];
	size_t n_flows;
};

static void tp_append(struct tp_flow *f, int dir, const uint8_t *p, size_t n)
{
	struct tp_dir *d = &f->d[dir];
	if (n == 0)
		return;
	if (d->len + n > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + n)
			cap *= 2;
		uint8_t *b = realloc(d->buf, cap);
		if (!b)
			abort();
		d->buf = b;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, p, n);
	if (f->n_chunks < TP_MAX_CHUNKS)
		f->chunks[f->n_chunks++] = (struct tp_chunk){dir, d->len, n};
	d->len += n;
	d->next += (uint32_t)n;
}

/* Takes what lies at or after d->next; returns true if anything was consumed. */
static bool tp_take(struct tp_flow *f, int dir, uint32_t seq, const uint8_t *p, size_t n)
{
	struct tp_dir *d = &f->d[dir];
	int32_t delta = (int32_t)(seq - d->next);
	if (delta > 0)
		return false;
	size_t skip = (size_t)(-(int64_t)delta);
	if (skip >= n)
		return true; /* retransmission of what we have */
	tp_append(f, dir, p + skip, n - skip);
	return true;
}

static void tp_segment(struct tp_flow *f, int dir, uint32_t seq, bool syn, const uint8_t *p,
		       size_t n)
{
	struct tp_dir *d = &f->d[dir];
	if (syn) {
		d->have_seq = true;
		d->next = seq + 1;
		return;
	}
	if (n == 0)
		return;
	if (!d->have_seq) {
		d->have_seq = true;
		d->next = seq;
	}
	if (!tp_take(f, dir, seq, p, n)) {
		if (d->n_pending < TP_MAX_PENDING) {
			struct tp_seg *s = &d->pending[d->n_pending++];
			s->seq = seq;
			s->data = malloc(n);
			if (!s->data)
				abort();
			memcpy(s->data, p, n);
			s->len = n;
		}
		return;
	}
	for (bool progress = true; progress;) {
		progress = false;
		for (size_t i = 0; i < d->n_pending; i++) {
			struct tp_seg *s = &d->pending[i];
			if (tp_take(f, dir, s->seq, s->data, s->len)) {
				free(s->data);
				d->pending[i] = d->pending[--d->n_pending];
				progress = true;
				break;
			}
		}
	}
}

static struct tp_flow *tp_find(struct tp_capture *c, int family, const uint8_t *src,
			       const uint8_t *dst, uint16_t sport, uint16_t dport, bool syn_only,
			       int *dir)
{
	size_t alen = family == AF_INET ? 4 : 16;
	for (size_t i = c->n_flows; i-- > 0;) { /* newest first: port reuse */
		struct tp_flow *f = c->flows[i];
		if (f->family != family)
			continue;
		for (int k = 0; k < 2; k++) {
			if (!memcmp(f->addr[k], src, alen) && !memcmp(f->addr[1 - k], dst, alen) &&
			    f->port[k] == sport && f->port[1 - k] == dport) {
				*dir = k;
				return f;
			}
		}
	}
	if (c->n_flows >= TP_MAX_FLOWS)
		return NULL;
	struct tp_flow *f = calloc(1, sizeof *f);
	if (!f)
		abort();
	(void)syn_only;
	f->family = family;
	memcpy(f->addr[0], src, alen);
	memcpy(f->addr[1], dst, alen);
	f->port[0] = sport;
	f->port[1] = dport;
	inet_ntop(family, src, f->addr_str[0], sizeof f->addr_str[0]);
	inet_ntop(family, dst, f->addr_str[1], sizeof f->addr_str[1]);
	c->flows[c->n_flows++] = f;
	*dir = 0;
	return f;
}

static void tp_packet(struct tp_capture *c, int dlt, const uint8_t *p, size_t n)
{
	size_t off = 0;
	int family = 0;
	if (dlt == DLT_EN10MB) {
		if (n < 14)
			return;
		uint16_t et = (uint16_t)(p[12] << 8 | p[13]);
		off = 14;
		while ((et == 0x8100 || et == 0x88a8) && n >= off + 4) {
			et = (uint16_t)(p[off + 2] << 8 | p[off + 3]);
			off += 4;
		}
		family = et == 0x0800 ? AF_INET : et == 0x86dd ? AF_INET6 : 0;
	} else if (dlt == DLT_NULL || dlt == DLT_LOOP) {
		if (n < 4)
			return;
		uint32_t af = dlt == DLT_NULL ? (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24)
					      : (uint32_t)((uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]);
		off = 4;
		family = af == 2 ? AF_INET : (af == 24 || af == 28 || af == 30) ? AF_INET6 : 0;
	} else if (dlt == DLT_LINUX_SLL) {
		if (n < 16)
			return;
		uint16_t et = (uint16_t)(p[14] << 8 | p[15]);
		off = 16;
		family = et == 0x0800 ? AF_INET : et == 0x86dd ? AF_INET6 : 0;
	} else if (dlt == DLT_RAW || dlt == 12 /* DLT_RAW on some systems */) {
		if (n < 1)
			return;
		family = (p[0] >> 4) == 4 ? AF_INET : (p[0] >> 4) == 6 ? AF_INET6 : 0;
	}
	if (!family)
		return;
	p += off;
	n -= off;
	const uint8_t *src, *dst;
	size_t l4;
	uint8_t proto;
	size_t ip_end;
	if (family == AF_INET) {
		if (n < 20)
			return;
		size_t ihl = (size_t)(p[0] & 15) * 4;
		size_t tot = (size_t)(p[2] << 8 | p[3]);
		if (ihl < 20 || tot < ihl || n < ihl)
			return;
		ip_end = tot < n ? tot : n;
		proto = p[9];
		src = p + 12;
		dst = p + 16;
		l4 = ihl;
	} else {
		if (n < 40)
			return;
		size_t plen = (size_t)(p[4] << 8 | p[5]);
		ip_end = 40 + plen < n ? 40 + plen : n;
		proto = p[6];
		src = p + 8;
		dst = p + 24;
		l4 = 40;
	}
	if (proto != 6 || ip_end < l4 + 20)
		return;
	const uint8_t *t = p + l4;
	size_t doff = (size_t)(t[12] >> 4) * 4;
	if (doff < 20 || l4 + doff > ip_end)
		return;
	uint16_t sport = (uint16_t)(t[0] << 8 | t[1]), dport = (uint16_t)(t[2] << 8 | t[3]);
	uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
	bool syn = t[13] & 0x02;
	int dir;
	struct tp_flow *f = tp_find(c, family, src, dst, sport, dport, syn, &dir);
	if (!f)
		return;
	tp_segment(f, dir, seq, syn, t + doff, ip_end - l4 - doff);
}

/* Returns 0, or -1 when the file cannot be opened. */
static int tp_load(const char *path, struct tp_capture *c)
{
	char err[PCAP_ERRBUF_SIZE];
	memset(c, 0, sizeof *c);
	pcap_t *pc = pcap_open_offline(path, err);
	if (!pc)
		return -1;
	int dlt = pcap_datalink(pc);
	struct pcap_pkthdr *h;
	const u_char *data;
	int rc;
	while ((rc = pcap_next_ex(pc, &h, &data)) == 1)
		tp_packet(c, dlt, data, h->caplen);
	pcap_close(pc);
	return 0;
}

static void tp_free(struct tp_capture *c)
{
	for (size_t i = 0; i < c->n_flows; i++) {
		struct tp_flow *f = c->flows[i];
		for (int k = 0; k < 2; k++) {
			free(f->d[k].buf);
			for (size_t j = 0; j < f->d[k].n_pending; j++)
				free(f->d[k].pending[j].data);
		}
		free(f);
	}
	memset(c, 0, sizeof *c);
}

/* "$D4_SHARED_VECTORS/tls/<name>" into buf; false when the variable is unset or the file
 * is absent. */
static bool tp_shared_path(const char *name, char *buf, size_t size)
{
	const char *base = getenv("D4_SHARED_VECTORS");
	if (!base || !*base)
		return false;
	int n = snprintf(buf, size, "%s/tls/%s", base, name);
	if (n < 0 || (size_t)n >= size)
		return false;
	FILE *fp = fopen(buf, "rb");
	if (!fp)
		return false;
	fclose(fp);
	return true;
}

#endif
