/*
 * d4-loadgen.c — N D4 sensors over TLS from one process, for the ingest
 * benchmarks (throughput, latency, ten thousand idle sensors).
 *
 * One thread, one epoll loop, non-blocking sockets with OpenSSL on the fd
 * (SSL_set_fd; WANT_READ / WANT_WRITE mapped to epoll interest). Each
 * connection writes as much as its socket takes: frames are laid out back to
 * back in a per-connection batch buffer (up to 64 KiB, so TLS records are
 * full) and handed to SSL_write with partial writes enabled; the connection
 * then goes to the back of a ready queue so that many connections share the
 * loop fairly. A rate limit (-r) is one token bucket for all connections.
 *
 * Frames are built with the protocol library (d4_frame_sign). The payload is
 * made once. The header timestamp has a one-second resolution, so while the
 * payload does not change the signed header only changes once a second per
 * connection: by default a frame is signed when its header or payload
 * changes, and the batch buffer is reused as is. With --latency every payload
 * carries its send time, so every frame is signed; --resign forces that cost
 * without timestamps (what a real sensor pays). Either way the generator
 * still encrypts every byte, the same AES-GCM work as the server's
 * decryption: on a two-core machine the generator and the server share the
 * cores, and the summary says how much CPU the generator took.
 *
 * At the end (duration, --frames, SIGINT/SIGTERM) a connection finishes the
 * batch it is writing (so the server never sees a cut frame), sends a TLS
 * close_notify, shuts its write side and waits a little for the server's EOF
 * before it closes: counts at both ends can then be compared exactly.
 *
 *   d4-loadgen -c HOST:PORT --key KEY [options]
 *     -c HOST:PORT        server (IPv4, name, or [IPv6]:PORT)
 *     -n N                connections (default 1)
 *     -s BYTES            payload bytes per frame (default 4096)
 *     -t TYPE             D4 type (default 3); 254 first sends a type-2 meta header
 *                         {"type":"<--meta-type>"} (default meta-type ja3-jl)
 *     -d SECONDS          duration (default 10 unless --frames is given)
 *     -r RATE             frames per second in total (default 0: as fast as possible)
 *     --frames N          frames per connection, then close
 *     --key KEY           HMAC key of every sensor
 *     --uuid-file FILE    "uuid key" per line; connection i is sensor i % lines
 *     --uuid UUID         one uuid for every connection (default: a random v4 uuid each)
 *     --idle              one frame, then stay connected until the end; reports up_at_end=N
 *     --latency           CLOCK_REALTIME ns (u64 LE) in the first 8 payload bytes
 *     --resign            sign every frame even when the header did not change
 *     --ca FILE           verify the server against FILE (default: no verification)
 *     --connect-rate N    new connections per second (default 2000; 0: all at once)
 *
 * Prints one line, then a line per failure reason and a note on its own cost:
 *
 *   connections=N established=N failed=N frames=N bytes=N seconds=S mbps=X fps=Y [up_at_end=N]
 *
 * frames and bytes count data frames (not the meta header) and their payload
 * bytes fully handed to TLS; mbps is 10^6 payload bytes per second; seconds
 * run from the first established connection to the last completed write.
 * Exit status: 0 when it ran, 1 when nothing connected or setup failed, 2 on
 * a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "d4_bytes.h"
#include "d4_proto.h"
#include "d4_uuid.h"

#define BATCH_BYTES (64u * 1024u)
#define BATCHES_PER_TURN 8     /* batches a connection writes before the next one's turn */
#define CONNECT_TIMEOUT 10.0   /* seconds, TCP connect + TLS handshake each */
#define CLOSE_GRACE 5.0        /* seconds to finish writes and see the server's EOF */
#define MAX_REASONS 32
#define MAX_EVENTS 512

enum cstate {
	C_WAIT = 0,   /* not started yet (connect ramp) */
	C_CONNECTING, /* TCP connect in progress */
	C_HANDSHAKE,  /* TLS handshake in progress */
	C_OPEN,       /* established: writing, or parked (--idle, rate limit) */
	C_CLOSING,    /* close_notify sent, write side shut, waiting for EOF */
	C_DONE,       /* closed cleanly */
	C_FAILED,
};

struct sensor {
	uint8_t uuid[D4_UUID_SIZE];
	bool has_uuid;
	struct d4_hmac *mac;
};

struct conn {
	int fd;
	SSL *ssl;
	enum cstate state;
	uint32_t events; /* current epoll interest */
	struct sensor *sensor;
	uint8_t uuid[D4_UUID_SIZE];
	double deadline; /* connect, handshake or close deadline */

	/* batch buffer: `built` frames laid out back to back, all for timestamp buf_ts */
	uint8_t *buf;
	size_t buf_size;
	size_t built;
	uint64_t buf_ts;
	bool payload_in; /* the payload bytes of the built slots are in place */

	size_t out_len, out_off; /* what SSL_write is working through */
	size_t out_frames;       /* data frames in it */
	bool out_is_meta;
	bool meta_sent;
	bool write_wants_read;
	bool stopping; /* close once the current batch is out */
	bool parked;   /* --idle: the one frame is out */

	bool in_ready;
	struct conn *next_ready;
	uint64_t frames;
};

struct opts {
	char *host;
	char *port;
	unsigned n;
	size_t size;
	unsigned type;
	const char *meta_type;
	double duration;
	double rate;
	uint64_t frames;
	const char *key;
	const char *uuid_file;
	const char *uuid;
	bool idle;
	bool latency;
	bool resign;
	const char *ca;
	double connect_rate;
};

struct reason {
	char text[160];
	uint64_t count;
};

struct loadgen {
	struct opts o;
	struct addrinfo *ai;
	bool host_is_ip;
	SSL_CTX *ctx;
	int ep;

	struct sensor *sensors;
	size_t nsensors;
	uint8_t *payload;
	size_t frame_len;
	size_t batch_frames;
	char *meta_json;
	size_t meta_json_len;

	struct conn *conns;
	unsigned started;
	struct conn *ready_head, *ready_tail;
	double tokens;
	double last_refill;

	double t0;
	double cpu0; /* CPU seconds used before the run (setup, certificate loading) */
	double first_established, last_write;
	bool ending;
	double end_deadline;

	unsigned live; /* started and not yet done or failed */
	uint64_t established, failed, frames, bytes, up_at_end;
	struct reason reasons[MAX_REASONS];
	size_t nreasons;
	uint8_t scratch[16384];
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- failures ---- */

static void add_reason(struct loadgen *g, const char *text)
{
	for (size_t i = 0; i < g->nreasons; i++) {
		if (strcmp(g->reasons[i].text, text) == 0) {
			g->reasons[i].count++;
			return;
		}
	}
	if (g->nreasons == MAX_REASONS)
		text = "other";
	size_t i = g->nreasons < MAX_REASONS ? g->nreasons++ : MAX_REASONS - 1;
	snprintf(g->reasons[i].text, sizeof(g->reasons[i].text), "%s", text);
	g->reasons[i].count++;
}

/* The text of OpenSSL's first queued error (or of errno / a fallback), queue cleared. */
static void tls_error_text(SSL *ssl, int ret, const char *stage, char *out, size_t len)
{
	int err = SSL_get_error(ssl, ret);
	unsigned long e = ERR_peek_error();
	int saved = errno;

	if (err == SSL_ERROR_SSL && e != 0) {
		char buf[128];
		ERR_error_string_n(e, buf, sizeof(buf));
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			snprintf(out, len, "TLS %s: %s (%s)", stage, buf,
			         X509_verify_cert_error_string(v));
		else
			snprintf(out, len, "TLS %s: %s", stage, buf);
	} else if (err == SSL_ERROR_SYSCALL && saved != 0) {
		snprintf(out, len, "%s: %s", stage, strerror(saved));
	} else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
		snprintf(out, len, "closed by server during %s", stage);
	} else {
		snprintf(out, len, "TLS %s: error %d", stage, err);
	}
	ERR_clear_error();
}

/* ---- connection plumbing ---- */

static int set_events(struct loadgen *g, struct conn *c, uint32_t events)
{
	if (c->events == events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = c};
	if (epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		return -1;
	c->events = events;
	return 0;
}

static void conn_release(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		(void)close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_size = 0;
	c->built = 0;
}

/* The connection's last state: C_DONE or C_FAILED. */
static void conn_end(struct loadgen *g, struct conn *c, enum cstate st)
{
	conn_release(c);
	if (c->state != C_DONE && c->state != C_FAILED)
		g->live--;
	c->state = st;
}

static void conn_fail(struct loadgen *g, struct conn *c, const char *why)
{
	add_reason(g, why);
	g->failed++;
	conn_end(g, c, C_FAILED);
}

static void ready_push(struct loadgen *g, struct conn *c)
{
	if (c->in_ready)
		return;
	c->in_ready = true;
	c->next_ready = NULL;
	if (g->ready_tail)
		g->ready_tail->next_ready = c;
	else
		g->ready_head = c;
	g->ready_tail = c;
}

static struct conn *ready_pop(struct loadgen *g)
{
	struct conn *c = g->ready_head;
	if (c == NULL)
		return NULL;
	g->ready_head = c->next_ready;
	if (g->ready_head == NULL)
		g->ready_tail = NULL;
	c->in_ready = false;
	return c;
}

static void conn_start_close(struct loadgen *g, struct conn *c, double now)
{
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl); /* queues close_notify; a full socket just loses it */
	ERR_clear_error();
	if (shutdown(c->fd, SHUT_WR) != 0 || set_events(g, c, EPOLLIN) != 0) {
		conn_end(g, c, C_DONE);
		return;
	}
	c->state = C_CLOSING;
	c->deadline = now + CLOSE_GRACE;
}

/* Reads and drops what the server sends (TLS 1.3 tickets, alerts).
 * 0: nothing more for now; 1: the server closed; -1: failed (conn released). */
static int conn_drain(struct loadgen *g, struct conn *c, const char *stage)
{
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(c->ssl, g->scratch, (int)sizeof(g->scratch));
		if (n > 0)
			continue;
		int err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return 0;
		if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
			ERR_clear_error();
			return 1;
		}
		char why[256];
		tls_error_text(c->ssl, n, stage, why, sizeof(why));
		if (c->state == C_CLOSING) /* a reset after our close is an end too */
			conn_end(g, c, C_DONE);
		else
			conn_fail(g, c, why);
		return -1;
	}
}

static void conn_start(struct loadgen *g, struct conn *c, double now)
{
	const struct addrinfo *ai = g->ai;
	char why[200];
	int one = 1;

	c->state = C_CONNECTING;
	g->live++;
	c->deadline = now + CONNECT_TIMEOUT;
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		conn_fail(g, c, why);
		return;
	}
	/* frames go out whole anyway; Nagle would only delay the latency probes */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		snprintf(why, sizeof(why), "setsockopt: %s", strerror(errno));
		conn_fail(g, c, why);
		return;
	}
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		conn_fail(g, c, why);
		return;
	}
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		snprintf(why, sizeof(why), "epoll: %s", strerror(errno));
		conn_fail(g, c, why);
		return;
	}
	c->events = EPOLLOUT;
}

static void conn_handshake(struct loadgen *g, struct conn *c, double now)
{
	ERR_clear_error();
	int rc = SSL_connect(c->ssl);
	if (rc == 1) {
		c->state = C_OPEN;
		g->established++;
		if (g->first_established == 0)
			g->first_established = now;
		if (set_events(g, c, EPOLLIN) != 0) {
			conn_fail(g, c, "epoll_ctl failed");
			return;
		}
		ready_push(g, c);
		return;
	}
	int err = SSL_get_error(c->ssl, rc);
	int e = 0;
	if (err == SSL_ERROR_WANT_READ)
		e = set_events(g, c, EPOLLIN);
	else if (err == SSL_ERROR_WANT_WRITE)
		e = set_events(g, c, EPOLLIN | EPOLLOUT);
	else {
		char why[256];
		tls_error_text(c->ssl, rc, "handshake", why, sizeof(why));
		conn_fail(g, c, why);
		return;
	}
	if (e != 0)
		conn_fail(g, c, "epoll_ctl failed");
}

static void conn_connected(struct loadgen *g, struct conn *c, double now)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	char why[200];

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr != 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(soerr));
		conn_fail(g, c, why);
		return;
	}
	c->ssl = SSL_new(g->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		tls_error_text(c->ssl, 0, "setup", why, sizeof(why));
		conn_fail(g, c, why);
		return;
	}
	SSL_set_connect_state(c->ssl);
	if (!g->host_is_ip && SSL_set_tlsext_host_name(c->ssl, g->o.host) != 1) {
		conn_fail(g, c, "TLS setup: cannot set SNI");
		return;
	}
	if (g->o.ca) {
		int ok = g->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), g->o.host)
		                       : SSL_set1_host(c->ssl, g->o.host);
		if (ok != 1) {
			conn_fail(g, c, "TLS setup: cannot set the name to verify");
			return;
		}
	}
	c->state = C_HANDSHAKE;
	c->deadline = now + CONNECT_TIMEOUT;
	conn_handshake(g, c, now);
}

/* ---- frames ---- */

static int sign_slot(struct conn *c, uint8_t *slot, uint8_t type, uint64_t ts,
                     size_t payload_len)
{
	struct d4_header h = {.version = D4_VERSION, .type = type, .timestamp = ts};
	memcpy(h.uuid, c->uuid, D4_UUID_SIZE);
	return d4_frame_sign(c->sensor->mac, &h, slot + D4_HEADER_SIZE, payload_len, slot);
}

static int conn_buffer(struct conn *c, size_t need)
{
	if (c->buf_size >= need)
		return 0;
	uint8_t *b = realloc(c->buf, need);
	if (b == NULL)
		return -1;
	c->buf = b;
	c->buf_size = need;
	c->built = 0;
	c->payload_in = false;
	return 0;
}

/* Lays out the next batch in c->buf: 0 with c->out_* set, 1 when the rate
 * limit allows no frame now, -1 on failure. */
static int build_batch(struct loadgen *g, struct conn *c)
{
	const struct opts *o = &g->o;
	uint64_t now_ns = real_ns();
	uint64_t ts = now_ns / 1000000000u;

	if (o->type == D4_TYPE_META_DEFINED && !c->meta_sent) {
		size_t len = D4_HEADER_SIZE + g->meta_json_len;
		if (conn_buffer(c, len) != 0)
			return -1;
		memcpy(c->buf + D4_HEADER_SIZE, g->meta_json, g->meta_json_len);
		if (sign_slot(c, c->buf, D4_TYPE_META_HEADER, ts, g->meta_json_len) != 0)
			return -1;
		c->built = 0; /* the data slots are gone */
		c->payload_in = false;
		c->meta_sent = true;
		c->out_is_meta = true;
		c->out_len = len;
		c->out_off = 0;
		c->out_frames = 0;
		return 0;
	}

	size_t k = g->batch_frames;
	if (o->idle)
		k = 1;
	if (o->frames && o->frames - c->frames < k)
		k = (size_t)(o->frames - c->frames);
	if (o->rate > 0) {
		if (g->tokens < 1)
			return 1;
		if ((double)k > g->tokens)
			k = (size_t)g->tokens;
		g->tokens -= (double)k;
	}
	if (conn_buffer(c, g->batch_frames * g->frame_len) != 0)
		return -1;

	uint8_t type = (uint8_t)o->type;
	if (!c->payload_in)
		c->built = 0;
	if (o->latency || o->resign) {
		/* every frame differs (or must be signed anyway): sign each */
		for (size_t i = 0; i < k; i++) {
			uint8_t *slot = c->buf + i * g->frame_len;
			if (i >= c->built)
				memcpy(slot + D4_HEADER_SIZE, g->payload, o->size);
			if (o->latency)
				d4_put_le64(slot + D4_HEADER_SIZE, i == 0 ? now_ns : real_ns());
			if (sign_slot(c, slot, type, ts, o->size) != 0)
				return -1;
		}
	} else {
		/* identical frames: sign slot 0 when its second changes, copy it on */
		if (c->built == 0 || c->buf_ts != ts) {
			if (c->built == 0)
				memcpy(c->buf + D4_HEADER_SIZE, g->payload, o->size);
			if (sign_slot(c, c->buf, type, ts, o->size) != 0)
				return -1;
			for (size_t i = 1; i < c->built; i++)
				memcpy(c->buf + i * g->frame_len, c->buf, D4_HEADER_SIZE);
			if (c->built == 0)
				c->built = 1;
			c->buf_ts = ts;
		}
		for (; c->built < k; c->built++)
			memcpy(c->buf + c->built * g->frame_len, c->buf, g->frame_len);
	}
	if (k > c->built)
		c->built = k;
	c->payload_in = true;
	c->out_is_meta = false;
	c->out_len = k * g->frame_len;
	c->out_off = 0;
	c->out_frames = k;
	return 0;
}

/* Writes until the socket is full, the turn is over or the connection is done. */
static void conn_pump(struct loadgen *g, struct conn *c, double now)
{
	int turns = BATCHES_PER_TURN;

	for (;;) {
		while (c->out_off < c->out_len) {
			ERR_clear_error();
			int n = SSL_write(c->ssl, c->buf + c->out_off, (int)(c->out_len - c->out_off));
			if (n > 0) {
				c->out_off += (size_t)n;
				continue;
			}
			int err = SSL_get_error(c->ssl, n);
			int e;
			if (err == SSL_ERROR_WANT_WRITE) {
				e = set_events(g, c, EPOLLIN | EPOLLOUT);
			} else if (err == SSL_ERROR_WANT_READ) {
				c->write_wants_read = true;
				e = set_events(g, c, EPOLLIN);
			} else {
				char why[256];
				if (err == SSL_ERROR_SYSCALL)
					snprintf(why, sizeof(why), "closed by server while writing (%s)",
					         errno ? strerror(errno) : "EOF");
				else
					tls_error_text(c->ssl, n, "write", why, sizeof(why));
				ERR_clear_error();
				conn_fail(g, c, why);
				return;
			}
			if (e != 0)
				conn_fail(g, c, "epoll_ctl failed");
			return;
		}
		if (c->out_len) {
			if (!c->out_is_meta) {
				c->frames += c->out_frames;
				g->frames += c->out_frames;
				g->bytes += (uint64_t)c->out_frames * g->o.size;
				g->last_write = now;
			}
			c->out_len = c->out_off = 0;
		}
		if (set_events(g, c, EPOLLIN) != 0) {
			conn_fail(g, c, "epoll_ctl failed");
			return;
		}
		if (c->stopping || g->ending || (g->o.frames && c->frames >= g->o.frames)) {
			conn_start_close(g, c, now);
			return;
		}
		if (g->o.idle && c->frames >= 1) {
			c->parked = true;
			free(c->buf); /* an idle sensor holds no batch */
			c->buf = NULL;
			c->buf_size = 0;
			c->built = 0;
			return;
		}
		if (turns-- == 0) {
			ready_push(g, c);
			return;
		}
		int rc = build_batch(g, c);
		if (rc < 0) {
			conn_fail(g, c, "out of memory or crypto failure building a frame");
			return;
		}
		if (rc == 1) { /* no token: wait in line */
			ready_push(g, c);
			return;
		}
	}
}

static void conn_event(struct loadgen *g, struct conn *c, uint32_t ev, double now)
{
	switch (c->state) {
	case C_CONNECTING:
		conn_connected(g, c, now);
		return;
	case C_HANDSHAKE:
		conn_handshake(g, c, now);
		return;
	case C_OPEN:
		if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			int rc = conn_drain(g, c, "read");
			if (rc < 0)
				return;
			if (rc == 1) {
				conn_fail(g, c, "closed by server");
				return;
			}
			if (c->write_wants_read) {
				c->write_wants_read = false;
				conn_pump(g, c, now);
				return;
			}
		}
		if ((ev & EPOLLOUT) && c->out_off < c->out_len)
			conn_pump(g, c, now);
		return;
	case C_CLOSING:
		if (conn_drain(g, c, "close") == 1)
			conn_end(g, c, C_DONE);
		return;
	default:
		return;
	}
}

/* ---- the run ---- */

static void begin_end(struct loadgen *g, double now)
{
	g->ending = true;
	g->end_deadline = now + CLOSE_GRACE;
	for (unsigned i = 0; i < g->started; i++) {
		struct conn *c = &g->conns[i];
		if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
			conn_end(g, c, C_DONE); /* not established before the end: not a failure */
			add_reason(g, "not established before the end (not counted as failed)");
		} else if (c->state == C_OPEN) {
			g->up_at_end++;
			if (c->out_off < c->out_len)
				c->stopping = true; /* finishes its batch, then closes */
			else
				conn_start_close(g, c, now);
		}
	}
}

static void check_deadlines(struct loadgen *g, double now)
{
	for (unsigned i = 0; i < g->started; i++) {
		struct conn *c = &g->conns[i];
		if (c->state == C_CONNECTING && now > c->deadline)
			conn_fail(g, c, "connect timeout");
		else if (c->state == C_HANDSHAKE && now > c->deadline)
			conn_fail(g, c, "TLS handshake timeout");
		else if (c->state == C_CLOSING && now > c->deadline)
			conn_end(g, c, C_DONE); /* the server did not close: fine, we do */
	}
}


static int run(struct loadgen *g)
{
	struct epoll_event evs[MAX_EVENTS];
	double next_scan = 0;

	g->t0 = mono();
	g->cpu0 = cpu_seconds();
	g->last_refill = g->t0;
	for (;;) {
		double now = mono();
		if (!g->ending && (got_signal || (g->o.duration > 0 && now >= g->t0 + g->o.duration)))
			begin_end(g, now);
		if (g->ending && now >= g->end_deadline) {
			for (unsigned i = 0; i < g->started; i++) {
				struct conn *c = &g->conns[i];
				if (c->state != C_DONE && c->state != C_FAILED)
					conn_end(g, c, C_DONE);
			}
			return 0;
		}
		if (!g->ending) {
			unsigned target = g->o.n;
			if (g->o.connect_rate > 0) {
				double t = (now - g->t0) * g->o.connect_rate + 1;
				if (t < (double)target)
					target = (unsigned)t;
			}
			while (g->started < target)
				conn_start(g, &g->conns[g->started++], now);
		}
		if (g->o.rate > 0) {
			g->tokens += (now - g->last_refill) * g->o.rate;
			double cap = g->o.rate * 0.02 > 1 ? g->o.rate * 0.02 : 1;
			if (g->tokens > cap + (double)g->batch_frames)
				g->tokens = cap + (double)g->batch_frames;
			g->last_refill = now;
		}

		/* one turn for every connection that was ready when this pass began */
		for (struct conn *last = g->ready_tail; g->ready_head;) {
			if (g->o.rate > 0 && g->tokens < 1)
				break;
			struct conn *c = ready_pop(g);
			bool was_last = c == last;
			if (c->state == C_OPEN && !c->parked)
				conn_pump(g, c, now);
			if (was_last)
				break;
		}

		if (now >= next_scan) {
			check_deadlines(g, now);
			next_scan = now + 0.1;
		}
		if ((g->started == g->o.n || g->ending) && g->live == 0)
			return 0; /* every connection is done or failed: nothing more can happen */

		double wake = now + 0.05;
		if (g->ready_head) {
			if (g->o.rate <= 0 || g->tokens >= 1)
				wake = now;
			else if (now + (1 - g->tokens) / g->o.rate < wake)
				wake = now + (1 - g->tokens) / g->o.rate;
		}
		if (!g->ending && g->started < g->o.n && g->o.connect_rate > 0) {
			double t = g->t0 + (double)g->started / g->o.connect_rate;
			if (t < wake)
				wake = t;
		}
		if (!g->ending && g->o.duration > 0 && g->t0 + g->o.duration < wake)
			wake = g->t0 + g->o.duration;
		/* rounded up: waking early only spins */
		int timeout = wake <= now ? 0 : (int)((wake - now) * 1000) + 1;
		int n = epoll_wait(g->ep, evs, MAX_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("d4-loadgen: epoll_wait");
			return -1;
		}
		now = mono();
		for (int i = 0; i < n; i++)
			conn_event(g, evs[i].data.ptr, evs[i].events, now);
	}
}

/* ---- setup ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: d4-loadgen -c HOST:PORT --key KEY [options]\n"
	        "  -c HOST:PORT        server (IPv4, name or [IPv6]:PORT)\n"
	        "  -n N                connections (default 1)\n"
	        "  -s BYTES            payload bytes per frame (default 4096)\n"
	        "  -t TYPE             D4 type (default 3); 254 sends a type-2 meta header first\n"
	        "  --meta-type NAME    meta-type for -t 254 (default ja3-jl)\n"
	        "  -d SECONDS          duration (default 10 unless --frames)\n"
	        "  -r RATE             frames per second in total (0: as fast as possible)\n"
	        "  --frames N          frames per connection, then close\n"
	        "  --key KEY           HMAC key of every sensor\n"
	        "  --uuid-file FILE    'uuid key' per line; connection i is sensor i %% lines\n"
	        "  --uuid UUID         one uuid for every connection (default: random v4 each)\n"
	        "  --idle              one frame, then stay connected until the end\n"
	        "  --latency           CLOCK_REALTIME ns (u64 LE) in the first 8 payload bytes\n"
	        "  --resign            sign every frame even when the header did not change\n"
	        "  --ca FILE           verify the server against FILE (default: no verification)\n"
	        "  --connect-rate N    new connections per second (default 2000; 0: all at once)\n");
}

static int parse_num(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int parse_target(struct opts *o, const char *arg)
{
	const char *colon;
	size_t hlen;

	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hlen = (size_t)(close - arg - 1);
		arg++;
		colon = close + 1;
	} else {
		colon = strrchr(arg, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - arg);
	}
	if (hlen == 0 || colon[1] == '\0')
		return -1;
	free(o->host);
	free(o->port);
	o->host = strndup(arg, hlen);
	o->port = strdup(colon + 1);
	return o->host && o->port ? 0 : -1;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { OPT_FRAMES = 256, OPT_KEY, OPT_UUID_FILE, OPT_UUID, OPT_IDLE, OPT_LATENCY, OPT_CA,
	       OPT_CONNECT_RATE, OPT_META_TYPE, OPT_RESIGN };
	static const struct option longopts[] = {
		{"frames", required_argument, NULL, OPT_FRAMES},
		{"key", required_argument, NULL, OPT_KEY},
		{"uuid-file", required_argument, NULL, OPT_UUID_FILE},
		{"uuid", required_argument, NULL, OPT_UUID},
		{"idle", no_argument, NULL, OPT_IDLE},
		{"latency", no_argument, NULL, OPT_LATENCY},
		{"resign", no_argument, NULL, OPT_RESIGN},
		{"ca", required_argument, NULL, OPT_CA},
		{"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
		{"meta-type", required_argument, NULL, OPT_META_TYPE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	double v;
	int ch;

	o->n = 1;
	o->size = 4096;
	o->type = D4_TYPE_LOG;
	o->meta_type = "ja3-jl";
	o->duration = -1;
	o->connect_rate = 2000;
	while ((ch = getopt_long(argc, argv, "c:n:s:t:d:r:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (parse_target(o, optarg) != 0)
				goto bad;
			break;
		case 'n':
			if (parse_num(optarg, 1, 1000000, &v) != 0)
				goto bad;
			o->n = (unsigned)v;
			break;
		case 's':
			if (parse_num(optarg, 0, UINT32_MAX, &v) != 0)
				goto bad;
			o->size = (size_t)v;
			break;
		case 't':
			if (parse_num(optarg, 0, 255, &v) != 0)
				goto bad;
			o->type = (unsigned)v;
			break;
		case 'd':
			if (parse_num(optarg, 0, 1e7, &v) != 0)
				goto bad;
			o->duration = v;
			break;
		case 'r':
			if (parse_num(optarg, 0, 1e10, &v) != 0)
				goto bad;
			o->rate = v;
			break;
		case OPT_FRAMES:
			if (parse_num(optarg, 1, 1e15, &v) != 0)
				goto bad;
			o->frames = (uint64_t)v;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_UUID_FILE:
			o->uuid_file = optarg;
			break;
		case OPT_UUID:
			o->uuid = optarg;
			break;
		case OPT_IDLE:
			o->idle = true;
			break;
		case OPT_LATENCY:
			o->latency = true;
			break;
		case OPT_RESIGN:
			o->resign = true;
			break;
		case OPT_CA:
			o->ca = optarg;
			break;
		case OPT_CONNECT_RATE:
			if (parse_num(optarg, 0, 1e7, &v) != 0)
				goto bad;
			o->connect_rate = v;
			break;
		case OPT_META_TYPE:
			o->meta_type = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->host == NULL) {
		usage(stderr);
		return -1;
	}
	if ((o->key == NULL) == (o->uuid_file == NULL)) {
		fprintf(stderr, "d4-loadgen: give exactly one of --key and --uuid-file\n");
		return -1;
	}
	if (o->uuid && o->uuid_file) {
		fprintf(stderr, "d4-loadgen: --uuid and --uuid-file exclude each other\n");
		return -1;
	}
	if (o->latency && o->size < 8) {
		fprintf(stderr, "d4-loadgen: --latency needs -s 8 or more\n");
		return -1;
	}
	if (o->size > D4_DEFAULT_MAX_PAYLOAD)
		fprintf(stderr, "d4-loadgen: warning: -s %zu is above the %u bytes servers accept\n",
		        o->size, D4_DEFAULT_MAX_PAYLOAD);
	if (strlen(o->meta_type) == 0 || strpbrk(o->meta_type, "\"\\") != NULL) {
		fprintf(stderr, "d4-loadgen: --meta-type must be non-empty, without quotes\n");
		return -1;
	}
	if (o->duration < 0)
		o->duration = o->frames ? 0 : 10;
	if (o->duration == 0 && o->frames == 0) {
		fprintf(stderr, "d4-loadgen: -d 0 needs --frames\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "d4-loadgen: bad value: %s\n", optarg);
	return -1;
}

static int add_sensor(struct loadgen *g, const char *uuid, const char *key, size_t key_len)
{
	struct sensor *n = realloc(g->sensors, (g->nsensors + 1) * sizeof(*n));
	if (n == NULL)
		return -1;
	g->sensors = n;
	struct sensor *s = &g->sensors[g->nsensors];
	memset(s, 0, sizeof(*s));
	if (uuid) {
		if (d4_uuid_parse_str(uuid, s->uuid) != 0) {
			fprintf(stderr, "d4-loadgen: not a uuid: %s\n", uuid);
			return -1;
		}
		if (!d4_uuid_is_v4(s->uuid))
			fprintf(stderr, "d4-loadgen: warning: %s is not a v4 uuid (servers refuse it)\n",
			        uuid);
		s->has_uuid = true;
	}
	s->mac = d4_hmac_new((const uint8_t *)key, key_len);
	if (s->mac == NULL) {
		fprintf(stderr, "d4-loadgen: cannot make an HMAC context\n");
		return -1;
	}
	g->nsensors++;
	return 0;
}

static int load_uuid_file(struct loadgen *g, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "d4-loadgen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *p = line + strspn(line, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		size_t ulen = strcspn(p, " \t");
		char *key = p + ulen + strspn(p + ulen, " \t");
		if (p[ulen] == '\0' || *key == '\0') {
			fprintf(stderr, "d4-loadgen: %s:%u: expected 'uuid key'\n", path, lineno);
			goto out;
		}
		p[ulen] = '\0';
		if (add_sensor(g, p, key, strlen(key)) != 0)
			goto out;
	}
	if (ferror(f)) {
		fprintf(stderr, "d4-loadgen: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (g->nsensors == 0) {
		fprintf(stderr, "d4-loadgen: %s: no 'uuid key' line\n", path);
		goto out;
	}
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

static int setup(struct loadgen *g)
{
	const struct opts *o = &g->o;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct in6_addr a6;
	struct rlimit rl;

	/* one descriptor per sensor: take all the kernel allows us */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			perror("d4-loadgen: setrlimit");
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o->n + 16)
		fprintf(stderr, "d4-loadgen: warning: %llu descriptors allowed for %u connections\n",
		        (unsigned long long)rl.rlim_cur, o->n);

	int rc = getaddrinfo(o->host, o->port, &hints, &g->ai);
	if (rc != 0) {
		fprintf(stderr, "d4-loadgen: %s:%s: %s\n", o->host, o->port, gai_strerror(rc));
		return -1;
	}
	g->host_is_ip = inet_pton(AF_INET, o->host, &a6) == 1 || inet_pton(AF_INET6, o->host, &a6) == 1;

	g->ctx = SSL_CTX_new(TLS_client_method());
	if (g->ctx == NULL || SSL_CTX_set_min_proto_version(g->ctx, TLS1_2_VERSION) != 1) {
		fprintf(stderr, "d4-loadgen: cannot make the TLS context\n");
		return -1;
	}
	long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
	if (o->idle)
		mode |= SSL_MODE_RELEASE_BUFFERS; /* an idle sensor keeps no record buffers */
	SSL_CTX_set_mode(g->ctx, mode);
	SSL_CTX_set_session_cache_mode(g->ctx, SSL_SESS_CACHE_OFF);
	if (o->ca) {
		if (SSL_CTX_load_verify_locations(g->ctx, o->ca, NULL) != 1) {
			char buf[160];
			ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
			fprintf(stderr, "d4-loadgen: %s: %s\n", o->ca, buf);
			return -1;
		}
		SSL_CTX_set_verify(g->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(g->ctx, SSL_VERIFY_NONE, NULL);
	}

	if (o->uuid_file) {
		if (load_uuid_file(g, o->uuid_file) != 0)
			return -1;
	} else if (add_sensor(g, o->uuid, o->key, strlen(o->key)) != 0) {
		return -1;
	}
	if ((g->nsensors < o->n && (o->uuid_file || o->uuid)) && o->type != D4_TYPE_META_HEADER &&
	    o->type != D4_TYPE_META_DEFINED)
		fprintf(stderr, "d4-loadgen: warning: %u connections share %zu uuid(s) with one type: "
		                "a server allows one session per uuid and type\n",
		        o->n, g->nsensors);

	/* the payload: 64-byte text lines, valid data for a type-3 (log) analyzer */
	g->payload = malloc(o->size ? o->size : 1);
	if (g->payload == NULL)
		return -1;
	for (size_t i = 0; i < o->size; i++) {
		size_t col = i % 64;
		g->payload[i] = col == 63 ? '\n' : (uint8_t)('a' + (i / 64 + col) % 26);
	}
	g->frame_len = D4_HEADER_SIZE + o->size;
	size_t batch = o->n > 1000 ? g->frame_len : BATCH_BYTES;
	g->batch_frames = batch / g->frame_len ? batch / g->frame_len : 1;

	size_t jcap = strlen(o->meta_type) + 16;
	g->meta_json = malloc(jcap);
	if (g->meta_json == NULL)
		return -1;
	g->meta_json_len = (size_t)snprintf(g->meta_json, jcap, "{\"type\":\"%s\"}", o->meta_type);

	g->conns = calloc(o->n, sizeof(*g->conns));
	if (g->conns == NULL)
		return -1;
	for (unsigned i = 0; i < o->n; i++) {
		struct conn *c = &g->conns[i];
		c->fd = -1;
		c->sensor = &g->sensors[i % g->nsensors];
		if (c->sensor->has_uuid)
			memcpy(c->uuid, c->sensor->uuid, D4_UUID_SIZE);
		else if (d4_uuid_generate_v4(c->uuid) != 0)
			return -1;
	}
	g->ep = epoll_create1(EPOLL_CLOEXEC);
	if (g->ep < 0) {
		perror("d4-loadgen: epoll_create1");
		return -1;
	}
	return 0;
}

static void report(const struct loadgen *g)
{
	double secs = g->last_write > g->first_established ? g->last_write - g->first_established : 0;
	double mbps = secs > 0 ? (double)g->bytes / secs / 1e6 : 0;
	double fps = secs > 0 ? (double)g->frames / secs : 0;
	double cpu = cpu_seconds() - g->cpu0;

	printf("connections=%u established=%" PRIu64 " failed=%" PRIu64 " frames=%" PRIu64
	       " bytes=%" PRIu64 " seconds=%.3f mbps=%.1f fps=%.0f",
	       g->started, g->established, g->failed, g->frames, g->bytes, secs, mbps, fps);
	if (g->o.idle)
		printf(" up_at_end=%" PRIu64, g->up_at_end);
	putchar('\n');
	for (size_t i = 0; i < g->nreasons; i++)
		printf("failure count=%" PRIu64 " reason=\"%s\"\n", g->reasons[i].count,
		       g->reasons[i].text);
	double wall = mono() - g->t0;
	printf("note: the generator encrypts every byte (TLS) and signs frames (HMAC-SHA256) "
	       "itself, the same per-byte work as the server's decrypt + verify, on the same "
	       "cores; it used %.2f s of CPU in %.2f s (%.0f%% of one core); signing: %s\n",
	       cpu, wall, wall > 0 ? 100 * cpu / wall : 0,
	       g->o.latency ? "every frame (timestamped payloads)"
	       : g->o.resign ? "every frame (--resign)"
	                     : "once per second per connection (constant payload; --resign to sign "
	                       "every frame)");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct loadgen *g = calloc(1, sizeof(*g));
	int status = 1;
	struct sigaction sa;

	if (g == NULL)
		return 1;
	g->ep = -1;
	if (parse_opts(argc, argv, &g->o) != 0) {
		status = 2;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGTERM, &sa, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("d4-loadgen: signals");
		goto out;
	}
	if (setup(g) != 0)
		goto out;
	if (run(g) != 0)
		goto out;
	report(g);
	status = g->established > 0 ? 0 : 1;

out:
	if (g->conns) {
		for (unsigned i = 0; i < g->o.n; i++)
			conn_release(&g->conns[i]);
		free(g->conns);
	}
	for (size_t i = 0; i < g->nsensors; i++)
		d4_hmac_free(g->sensors[i].mac);
	free(g->sensors);
	if (g->ep >= 0)
		(void)close(g->ep);
	if (g->ctx)
		SSL_CTX_free(g->ctx);
	if (g->ai)
		freeaddrinfo(g->ai);
	free(g->payload);
	free(g->meta_json);
	free(g->o.host);
	free(g->o.port);
	free(g);
	return status;
}
