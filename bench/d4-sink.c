/*
 * d4-sink.c — a stand-in for d4-dispatch that takes the ingest link in and
 * acknowledges it, for the ingest tests and benchmarks.
 *
 * It listens on a Unix socket, accepts any number of ingest connections (each
 * ingest worker connects on its own), reads the typed messages of
 * common/d4_ipc.h with d4_ipc_reader and sends D4_IPC_ACK with the stream
 * offset: one ACK per read callback at most (coalesced), and at least every
 * MiB. Offsets follow the link's rule: after a HELLO, messages up to a
 * RESUME are replays (not counted); RESUME says where the counted stream
 * starts; every later message adds its wire_len.
 *
 * It checks the order a dispatcher relies on and counts every violation as an
 * anomaly, logged on stderr (the first ones; then only counted): a FRAME or
 * META or CLOSE for a session it was never told about or that was closed, a
 * FRAME before RESUME, a second OPEN of an open session without the replay
 * flag, a message before HELLO, a message that only dispatch sends. A
 * message the reader refuses (bad length, short body, unknown kind) closes
 * that connection after a log line; nothing malformed can crash it.
 *
 * After a reconnect of the same ingest process (same HELLO instance and
 * worker) the counted stream may repeat what the sink took in but had not
 * acknowledged yet: those messages are recognised by their offset, counted
 * as dups and not processed twice (a dispatcher must do the same), so --out
 * holds every frame once.
 *
 *   d4-sink -s PATH [options]
 *     -s, --socket PATH        Unix socket to listen on (a stale socket file is removed)
 *     -o, --out FILE           append every FRAME's D4 frame (62-byte header + payload) to
 *                              FILE in arrival order (check it with d4ctl decode --key K FILE);
 *                              flushed after every read, so a test can poll it
 *     -e, --events FILE        append one text line per HELLO/RESUME/OPEN/META/CLOSE, flushed
 *     --pause-after BYTES      once BYTES of FRAME payload (and at least one frame) arrived,
 *                              stop reading every connection (0: at the first frame)
 *     --stall                  stop reading from the start, before HELLO
 *     --stall-seconds N        read again N seconds after the pause (default: only on SIGUSR1)
 *     --send-pause             also send D4_IPC_PAUSE when pausing and UNPAUSE when resuming
 *     --latency                histogram of now - (u64 LE CLOCK_REALTIME ns in the first 8
 *                              payload bytes); p50/p90/p99/p99.9/max at exit
 *     --exit-after-frames N    exit after N frames
 *     -q, --quiet              no per-connection log lines
 *   SIGUSR1 resumes reading, SIGUSR2 pauses it; SIGTERM/SIGINT end the run.
 *
 * At exit (and on SIGTERM/SIGINT) one summary line goes to stdout:
 *
 *   frames=N bytes=N sessions=N anomalies=N seconds=S mbps=X [dups=N] [lat_n=N p50_ms=..]
 *
 * bytes counts FRAME payload bytes, mbps is 10^6 payload bytes per second, and
 * seconds runs from the first FRAME to the last (so the time before the load
 * starts is not counted). sessions counts distinct sessions opened.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "d4_bytes.h"
#include "d4_ipc.h"
#include "d4_log.h"
#include "d4_net.h"
#include "d4_proto.h"
#include "d4_uuid.h"

#define READ_BUF_SIZE (256u * 1024u)
#define ACK_EVERY (1u << 20)
#define ANOMALY_LOG_MAX 50
/* Latency histogram: exact below 1024 ns, then 512 sub-buckets per power of two
 * (relative error under 0.2 %), up to 2^63 ns. */
#define LAT_LINEAR 1024u
#define LAT_SUB 512u
#define LAT_BUCKETS (LAT_LINEAR + 54u * LAT_SUB)

/* One ingest worker's stream, known by its HELLO; kept across reconnects. */
struct stream {
	uint64_t instance;
	uint16_t worker;
	uint64_t seen; /* highest counted offset processed: below it is a repeat */
};

enum sess_state { SESS_EMPTY = 0, SESS_OPEN, SESS_CLOSED };

struct sess {
	uint64_t instance;
	uint64_t id;
	uint16_t worker;
	uint8_t state;
};

struct sink;

struct conn {
	uv_pipe_t pipe; /* first: the handle's address is the conn's */
	struct sink *sink;
	struct conn *prev, *next;
	unsigned id;
	struct d4_ipc_reader reader;
	bool hello;    /* HELLO seen */
	bool counting; /* RESUME seen: messages add to offset */
	bool reading;
	bool closing;
	size_t stream; /* index into sink->streams once hello */
	uint64_t offset;
	uint64_t acked;
};

struct ack_write {
	uv_write_t req;
	uint8_t buf[D4_IPC_OFFSET_LEN];
};

struct opts {
	const char *socket_path;
	const char *out_path;
	const char *events_path;
	uint64_t pause_after;
	bool pause_enabled;
	bool stall;
	unsigned stall_seconds;
	bool send_pause;
	bool latency;
	uint64_t exit_after;
	bool quiet;
};

struct sink {
	struct opts o;
	uv_loop_t *loop;
	uv_pipe_t server;
	bool server_open;
	uv_signal_t sig_term, sig_int, sig_usr1, sig_usr2;
	uv_timer_t stall_timer;
	struct conn *conns;
	unsigned next_conn_id;
	uint8_t *read_buf; /* one for every connection: a read callback consumes it whole */
	FILE *out;
	FILE *events;
	bool stopping;
	bool write_failed; /* --out or --events: the run ends with status 1 */
	int exit_code;

	/* pause state */
	bool paused;
	bool pause_done; /* --pause-after fired once */
	uint64_t link_bytes;

	struct stream *streams;
	size_t nstreams, streams_cap;
	struct sess *sess;
	size_t sess_cap, sess_used;

	uint64_t frames, bytes, sessions, anomalies, dups;
	uint64_t first_frame_ns, last_frame_ns, start_ns;

	uint64_t *lat;
	uint64_t lat_n, lat_max, lat_skipped;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram ---- */

static size_t lat_bucket(uint64_t v)
{
	if (v < LAT_LINEAR)
		return (size_t)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 10 */
	uint64_t sub = (v >> (e - 9u)) - LAT_SUB;        /* 0..511 */
	return LAT_LINEAR + (size_t)(e - 10u) * LAT_SUB + (size_t)sub;
}

/* The middle of a bucket, in ns. */
static double lat_value(size_t b)
{
	if (b < LAT_LINEAR)
		return (double)b;
	unsigned e = (unsigned)((b - LAT_LINEAR) / LAT_SUB) + 10u;
	uint64_t sub = (b - LAT_LINEAR) % LAT_SUB + LAT_SUB;
	double width = (double)(1ull << (e - 9u));
	return (double)sub * width + width / 2;
}

static void lat_record(struct sink *s, const uint8_t *payload, size_t len)
{
	if (len < 8)
		return;
	uint64_t sent = d4_le64(payload), now = real_ns();
	/* a payload without a timestamp (or a clock step) gives nonsense: skip
	 * anything outside [now - 1 h, now + 1 s] rather than poison the figures */
	if (sent > now + 1000000000ull || sent + 3600ull * 1000000000ull < now) {
		s->lat_skipped++;
		return;
	}
	uint64_t d = now > sent ? now - sent : 0;
	s->lat[lat_bucket(d)]++;
	s->lat_n++;
	if (d > s->lat_max)
		s->lat_max = d;
}

static double lat_percentile_ms(const struct sink *s, double p)
{
	uint64_t rank = (uint64_t)(p / 100.0 * (double)s->lat_n);
	uint64_t seen = 0;
	if (rank >= s->lat_n)
		rank = s->lat_n - 1;
	for (size_t b = 0; b < LAT_BUCKETS; b++) {
		seen += s->lat[b];
		if (seen > rank)
			return lat_value(b) / 1e6;
	}
	return (double)s->lat_max / 1e6;
}

/* ---- streams and sessions ---- */

static int stream_find(struct sink *s, uint64_t instance, uint16_t worker, size_t *idx)
{
	for (size_t i = 0; i < s->nstreams; i++) {
		if (s->streams[i].instance == instance && s->streams[i].worker == worker) {
			*idx = i;
			return 0;
		}
	}
	if (s->nstreams == s->streams_cap) {
		size_t cap = s->streams_cap ? s->streams_cap * 2 : 8;
		struct stream *n = realloc(s->streams, cap * sizeof(*n));
		if (n == NULL)
			return -1;
		s->streams = n;
		s->streams_cap = cap;
	}
	s->streams[s->nstreams] = (struct stream){.instance = instance, .worker = worker};
	*idx = s->nstreams++;
	return 0;
}

static size_t sess_hash(uint64_t instance, uint16_t worker, uint64_t id)
{
	uint64_t h = instance ^ ((uint64_t)worker << 48) ^ (id * 0x9e3779b97f4a7c15ull);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (size_t)h;
}

/* The slot of (instance, worker, id): its entry, or the empty slot it would take. */
static struct sess *sess_slot(struct sess *tab, size_t cap, uint64_t instance, uint16_t worker,
                              uint64_t id)
{
	size_t i = sess_hash(instance, worker, id) & (cap - 1);
	for (;;) {
		struct sess *e = &tab[i];
		if (e->state == SESS_EMPTY ||
		    (e->instance == instance && e->worker == worker && e->id == id))
			return e;
		i = (i + 1) & (cap - 1);
	}
}

static int sess_grow(struct sink *s)
{
	size_t cap = s->sess_cap ? s->sess_cap * 2 : 1024;
	struct sess *tab = calloc(cap, sizeof(*tab));
	if (tab == NULL)
		return -1;
	for (size_t i = 0; i < s->sess_cap; i++) {
		struct sess *e = &s->sess[i];
		if (e->state != SESS_EMPTY)
			*sess_slot(tab, cap, e->instance, e->worker, e->id) = *e;
	}
	free(s->sess);
	s->sess = tab;
	s->sess_cap = cap;
	return 0;
}

/* Finds a session, or (create) makes an empty entry for it; NULL when out of memory
 * or when not found and not creating. Closed sessions stay: a FRAME after CLOSE is told
 * apart from a FRAME for an id never seen. */
static struct sess *sess_get(struct sink *s, const struct conn *c, uint64_t id, bool create)
{
	const struct stream *st = &s->streams[c->stream];
	if (s->sess_cap == 0 || (create && (s->sess_used + 1) * 2 > s->sess_cap)) {
		if (!create && s->sess_cap == 0)
			return NULL;
		if (sess_grow(s) != 0)
			return NULL;
	}
	struct sess *e = sess_slot(s->sess, s->sess_cap, st->instance, st->worker, id);
	if (e->state == SESS_EMPTY) {
		if (!create)
			return NULL;
		e->instance = st->instance;
		e->worker = st->worker;
		e->id = id;
		s->sess_used++;
	}
	return e;
}

static void sink_stop(struct sink *s);

/* ---- output ---- */

static void anomaly(struct sink *s, const struct conn *c, const char *what, uint64_t session)
{
	s->anomalies++;
	if (s->anomalies <= ANOMALY_LOG_MAX) {
		d4_logf(D4_LOG_WARN, "anomaly", "conn=%u session=%" PRIu64 " %s", c->id, session,
		        what);
		if (s->anomalies == ANOMALY_LOG_MAX)
			d4_log(D4_LOG_WARN, "anomaly", "note", "further anomalies are only counted",
			       NULL);
	}
}

/* Writes len bytes of sensor-made text on one line: blanks become spaces and
 * other control bytes \u00XX, so a line is always one event. */
static void put_text(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t')
			fputc(' ', f);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else
			fputc(p[i], f);
	}
}

static int event_end(struct sink *s)
{
	if (fputc('\n', s->events) == EOF || fflush(s->events) != 0) {
		d4_logf(D4_LOG_ERR, "events", "cannot write %s: %s", s->o.events_path,
		        strerror(errno));
		s->write_failed = true;
		sink_stop(s);
		return -1;
	}
	return 0;
}

static int event_open(struct sink *s, const struct d4_ipc_open *o)
{
	char uuid[D4_UUID_STR_LEN + 1], addr[D4_IP_STR_MAX];
	d4_uuid_format(o->uuid, uuid);
	if (d4_ip_format(o->addr, addr, sizeof(addr)) != 0)
		snprintf(addr, sizeof(addr), "?");
	fprintf(s->events, "open session=%" PRIu64 " uuid=%s type=%u peer=%s port=%u replay=%d",
	        o->session, uuid, o->type, addr, o->port, (o->flags & D4_IPC_OPEN_REPLAY) ? 1 : 0);
	return event_end(s);
}

static int event_meta(struct sink *s, const struct d4_ipc_meta *m)
{
	fprintf(s->events, "meta session=%" PRIu64 " type=", m->session);
	put_text(s->events, (const uint8_t *)m->meta_type, m->meta_type_len);
	fputs(" json=", s->events);
	put_text(s->events, m->json, m->json_len);
	return event_end(s);
}

/* ---- connections ---- */

static void conn_closed_cb(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	d4_ipc_reader_free(&c->reader);
	free(c);
}

static void conn_close(struct conn *c)
{
	struct sink *s = c->sink;
	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->pipe, conn_closed_cb);
}

static void write_cb(uv_write_t *req, int status)
{
	struct ack_write *w = (struct ack_write *)req;
	struct conn *c = req->data;
	free(w);
	if (status != 0 && status != UV_ECANCELED) {
		d4_logf(D4_LOG_WARN, "write", "conn=%u %s", c->id, uv_strerror(status));
		conn_close(c);
	}
}

/* Sends a small control message: now if the socket takes it, queued otherwise. */
static int conn_send(struct conn *c, const uint8_t *msg, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);
	int n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN) {
		d4_logf(D4_LOG_WARN, "write", "conn=%u %s", c->id, uv_strerror(n));
		return -1;
	}
	size_t done = n > 0 ? (size_t)n : 0;
	struct ack_write *w = malloc(sizeof(*w));
	if (w == NULL)
		return -1;
	memcpy(w->buf, msg + done, len - done);
	w->req.data = c;
	b = uv_buf_init((char *)w->buf, (unsigned)(len - done));
	int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
	if (rc != 0) {
		free(w);
		d4_logf(D4_LOG_WARN, "write", "conn=%u %s", c->id, uv_strerror(rc));
		return -1;
	}
	return 0;
}

static int conn_ack(struct conn *c)
{
	uint8_t msg[D4_IPC_OFFSET_LEN];
	if (!c->counting || c->offset == c->acked)
		return 0;
	d4_ipc_put_offset(msg, D4_IPC_ACK, c->offset);
	if (conn_send(c, msg, sizeof(msg)) != 0)
		return -1;
	c->acked = c->offset;
	return 0;
}

static void set_paused(struct sink *s, bool paused);

static int on_frame(struct sink *s, struct conn *c, const struct d4_ipc_frame *f)
{
	const struct sess *e = sess_get(s, c, f->session, false);
	if (e == NULL)
		anomaly(s, c, "frame for an unknown session", f->session);
	else if (e->state != SESS_OPEN)
		anomaly(s, c, "frame after close", f->session);
	if (!c->counting)
		anomaly(s, c, "frame before resume", f->session);

	uint64_t now = mono_ns();
	if (s->frames == 0)
		s->first_frame_ns = now;
	s->last_frame_ns = now;
	s->frames++;
	s->bytes += f->payload_len;
	if (s->o.latency)
		lat_record(s, f->payload, f->payload_len);
	if (s->out) {
		if (fwrite(f->header, 1, D4_HEADER_SIZE, s->out) != D4_HEADER_SIZE ||
		    (f->payload_len &&
		     fwrite(f->payload, 1, f->payload_len, s->out) != f->payload_len)) {
			d4_logf(D4_LOG_ERR, "out", "cannot write %s: %s", s->o.out_path,
			        strerror(errno));
			s->write_failed = true; /* a short file fails the test anyway: say so, end */
			sink_stop(s);
			return -1;
		}
	}
	if (s->o.exit_after && s->frames >= s->o.exit_after)
		sink_stop(s);
	return 0;
}

/* One message; -1 closes the connection (or, for a local failure, the run). */
static int on_message(struct sink *s, struct conn *c, const struct d4_ipc_msg *m)
{
	if (m->kind == D4_IPC_HELLO) {
		if (m->u.hello.version != D4_IPC_VERSION) {
			d4_logf(D4_LOG_ERR, "hello", "conn=%u version %u, expected %u", c->id,
			        m->u.hello.version, D4_IPC_VERSION);
			return -1;
		}
		if (stream_find(s, m->u.hello.instance, m->u.hello.worker, &c->stream) != 0)
			return -1;
		c->hello = true;
		c->counting = false;
		if (!s->o.quiet)
			d4_logf(D4_LOG_INFO, "hello", "conn=%u worker=%u instance=%016" PRIx64, c->id,
			        m->u.hello.worker, m->u.hello.instance);
		if (s->events) {
			fprintf(s->events, "hello worker=%u instance=%016" PRIx64 " version=%u",
			        m->u.hello.worker, m->u.hello.instance, m->u.hello.version);
			if (event_end(s) != 0)
				return -1;
		}
		return 0;
	}
	if (!c->hello) {
		d4_logf(D4_LOG_ERR, "protocol", "conn=%u %s before hello", c->id,
		        d4_ipc_kind_name(m->kind));
		s->anomalies++;
		return -1;
	}
	if (m->kind == D4_IPC_RESUME) {
		c->counting = true;
		c->offset = m->u.offset;
		c->acked = m->u.offset;
		if (s->events) {
			fprintf(s->events, "resume offset=%" PRIu64, m->u.offset);
			if (event_end(s) != 0)
				return -1;
		}
		return 0;
	}

	struct stream *st = &s->streams[c->stream];
	if (c->counting) {
		c->offset += m->wire_len;
		if (c->offset <= st->seen) {
			s->dups++; /* taken in before a reconnect, not acknowledged then */
			return 0;
		}
		st->seen = c->offset;
	}

	switch (m->kind) {
	case D4_IPC_OPEN: {
		struct sess *e = sess_get(s, c, m->u.open.session, true);
		if (e == NULL)
			return -1;
		if (e->state == SESS_OPEN && !(m->u.open.flags & D4_IPC_OPEN_REPLAY))
			anomaly(s, c, "second open of an open session", m->u.open.session);
		if (e->state == SESS_EMPTY)
			s->sessions++;
		e->state = SESS_OPEN;
		if (s->events && event_open(s, &m->u.open) != 0)
			return -1;
		return 0;
	}
	case D4_IPC_META: {
		const struct sess *e = sess_get(s, c, m->u.meta.session, false);
		if (e == NULL || e->state != SESS_OPEN)
			anomaly(s, c, "meta for a session that is not open", m->u.meta.session);
		if (s->events && event_meta(s, &m->u.meta) != 0)
			return -1;
		return 0;
	}
	case D4_IPC_FRAME:
		return on_frame(s, c, &m->u.frame);
	case D4_IPC_CLOSE: {
		struct sess *e = sess_get(s, c, m->u.close.session, false);
		if (e == NULL || e->state != SESS_OPEN)
			anomaly(s, c, "close of a session that is not open", m->u.close.session);
		else
			e->state = SESS_CLOSED;
		if (s->events) {
			fprintf(s->events, "close session=%" PRIu64 " reason=%s", m->u.close.session,
			        d4_reason_name((enum d4_reason)m->u.close.reason));
			if (event_end(s) != 0)
				return -1;
		}
		return 0;
	}
	default:
		/* ACK, PAUSE, UNPAUSE go from dispatch to ingest, never the other way */
		anomaly(s, c, d4_ipc_kind_name(m->kind), 0);
		return 0;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = (struct conn *)h;
	(void)suggested;
	*buf = uv_buf_init((char *)c->sink->read_buf, READ_BUF_SIZE);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)stream;
	struct sink *s = c->sink;
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t len = nread > 0 ? (size_t)nread : 0;
	uint64_t unacked_from = c->offset;

	if (nread < 0) {
		if (!s->o.quiet || nread != UV_EOF)
			d4_logf(D4_LOG_INFO, "closed", "conn=%u %s", c->id,
			        nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
		if (c->reader.m.have != 0)
			d4_logf(D4_LOG_WARN, "closed", "conn=%u inside a message (%zu bytes of it)",
			        c->id, c->reader.m.have);
		conn_close(c);
		return;
	}
	s->link_bytes += len;
	while (len > 0 && !c->closing && !s->stopping) {
		struct d4_ipc_msg m;
		const char *why = NULL;
		size_t used = 0;
		enum d4_ipc_status st = d4_ipc_reader_feed(&c->reader, p, len, &used, &m, &why);
		p += used;
		len -= used;
		if (st == D4_IPC_BAD) {
			d4_logf(D4_LOG_ERR, "bad_message", "conn=%u %s; closing", c->id, why);
			s->anomalies++;
			conn_close(c);
			return;
		}
		if (st == D4_IPC_NEED_MORE)
			break;
		if (on_message(s, c, &m) != 0) {
			conn_close(c);
			return;
		}
		if (c->offset - unacked_from >= ACK_EVERY) {
			if (conn_ack(c) != 0) {
				conn_close(c);
				return;
			}
			unacked_from = c->offset;
		}
	}
	if (!c->closing && conn_ack(c) != 0)
		conn_close(c);
	/* what was acknowledged is in the file for a test that polls it */
	if (s->out && fflush(s->out) != 0) {
		d4_logf(D4_LOG_ERR, "out", "cannot write %s: %s", s->o.out_path, strerror(errno));
		s->write_failed = true;
		sink_stop(s);
	}
	if (s->o.pause_enabled && !s->pause_done && s->frames > 0 && s->bytes >= s->o.pause_after) {
		s->pause_done = true;
		set_paused(s, true);
	}
}

static void conn_read(struct conn *c, bool on)
{
	if (c->closing || c->reading == on)
		return;
	int rc = on ? uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb)
	            : uv_read_stop((uv_stream_t *)&c->pipe);
	if (rc != 0) {
		d4_logf(D4_LOG_ERR, "read", "conn=%u %s", c->id, uv_strerror(rc));
		conn_close(c);
		return;
	}
	c->reading = on;
}

static void stall_timer_cb(uv_timer_t *t)
{
	set_paused(t->data, false);
}

static void set_paused(struct sink *s, bool paused)
{
	if (s->paused == paused || s->stopping)
		return;
	s->paused = paused;
	d4_logf(D4_LOG_NOTICE, paused ? "pause" : "resume",
	        "%s reading after %" PRIu64 " frames, %" PRIu64 " link bytes",
	        paused ? "stop" : "start", s->frames, s->link_bytes);
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (s->o.send_pause) {
			uint8_t msg[D4_IPC_PREFIX];
			d4_ipc_put_empty(msg, paused ? D4_IPC_PAUSE : D4_IPC_UNPAUSE);
			if (conn_send(c, msg, sizeof(msg)) != 0) {
				conn_close(c);
				continue;
			}
		}
		conn_read(c, !paused);
	}
	if (paused && s->o.stall_seconds) {
		int rc = uv_timer_start(&s->stall_timer, stall_timer_cb,
		                        (uint64_t)s->o.stall_seconds * 1000u, 0);
		if (rc != 0)
			d4_logf(D4_LOG_ERR, "timer", "%s", uv_strerror(rc));
	}
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct sink *s = server->data;
	if (status != 0) {
		d4_logf(D4_LOG_ERR, "accept", "%s", uv_strerror(status));
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		d4_log(D4_LOG_ERR, "accept", "msg", "out of memory", NULL);
		return;
	}
	int rc = uv_pipe_init(s->loop, &c->pipe, 0);
	if (rc != 0) {
		free(c);
		d4_logf(D4_LOG_ERR, "accept", "%s", uv_strerror(rc));
		return;
	}
	c->sink = s;
	c->id = ++s->next_conn_id;
	d4_ipc_reader_init(&c->reader);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	rc = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (rc != 0) {
		d4_logf(D4_LOG_ERR, "accept", "%s", uv_strerror(rc));
		conn_close(c);
		return;
	}
	if (!s->o.quiet)
		d4_logf(D4_LOG_INFO, "connected", "conn=%u", c->id);
	if (s->o.send_pause && s->paused) {
		uint8_t msg[D4_IPC_PREFIX];
		d4_ipc_put_empty(msg, D4_IPC_PAUSE);
		if (conn_send(c, msg, sizeof(msg)) != 0) {
			conn_close(c);
			return;
		}
	}
	conn_read(c, !s->paused);
}

/* ---- run ---- */

static void print_summary(const struct sink *s)
{
	uint64_t span = s->frames > 1 ? s->last_frame_ns - s->first_frame_ns
	                              : mono_ns() - s->start_ns;
	double secs = (double)span / 1e9;
	double mbps = secs > 0 ? (double)s->bytes / secs / 1e6 : 0;

	printf("frames=%" PRIu64 " bytes=%" PRIu64 " sessions=%" PRIu64 " anomalies=%" PRIu64
	       " seconds=%.3f mbps=%.1f",
	       s->frames, s->bytes, s->sessions, s->anomalies, secs, mbps);
	if (s->dups)
		printf(" dups=%" PRIu64, s->dups);
	if (s->o.latency) {
		printf(" lat_n=%" PRIu64, s->lat_n);
		if (s->lat_n)
			printf(" p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f max_ms=%.3f",
			       lat_percentile_ms(s, 50), lat_percentile_ms(s, 90),
			       lat_percentile_ms(s, 99), lat_percentile_ms(s, 99.9),
			       (double)s->lat_max / 1e6);
		if (s->lat_skipped)
			printf(" lat_skipped=%" PRIu64, s->lat_skipped);
	}
	putchar('\n');
	fflush(stdout);
}

static void close_if_open(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void sink_stop(struct sink *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (conn_ack(c) != 0) { /* the last ACK, best effort */
			conn_close(c);
			continue;
		}
		/* stop reading now; the handle is closed after the loop ends */
		conn_read(c, false);
	}
	uv_stop(s->loop);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct sink *s = h->data;
	if (signum == SIGUSR1)
		set_paused(s, false);
	else if (signum == SIGUSR2)
		set_paused(s, true);
	else
		sink_stop(s);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: d4-sink -s PATH [options]\n"
	        "  -s, --socket PATH        Unix socket to listen on (stale socket removed)\n"
	        "  -o, --out FILE           write every frame (62-byte header + payload) to FILE\n"
	        "  -e, --events FILE        one line per hello/resume/open/meta/close\n"
	        "      --pause-after BYTES  stop reading once BYTES of frame payload arrived\n"
	        "      --stall              stop reading from the start\n"
	        "      --stall-seconds N    read again after N seconds (default: on SIGUSR1)\n"
	        "      --send-pause         send PAUSE/UNPAUSE when pausing/resuming\n"
	        "      --latency            latency histogram from u64 LE ns at payload start\n"
	        "      --exit-after-frames N  exit after N frames\n"
	        "  -q, --quiet              no per-connection log lines\n"
	        "SIGUSR1 resumes reading, SIGUSR2 pauses; SIGTERM/SIGINT end the run.\n"
	        "Prints: frames=N bytes=N sessions=N anomalies=N seconds=S mbps=X (payload 10^6 B/s)\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (*s == '-' || *s == '\0')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { OPT_PAUSE_AFTER = 256, OPT_STALL, OPT_STALL_SECONDS, OPT_SEND_PAUSE, OPT_LATENCY,
	       OPT_EXIT_AFTER };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"out", required_argument, NULL, 'o'},
		{"events", required_argument, NULL, 'e'},
		{"pause-after", required_argument, NULL, OPT_PAUSE_AFTER},
		{"stall", no_argument, NULL, OPT_STALL},
		{"stall-seconds", required_argument, NULL, OPT_STALL_SECONDS},
		{"send-pause", no_argument, NULL, OPT_SEND_PAUSE},
		{"latency", no_argument, NULL, OPT_LATENCY},
		{"exit-after-frames", required_argument, NULL, OPT_EXIT_AFTER},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int ch;

	while ((ch = getopt_long(argc, argv, "s:o:e:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'o':
			o->out_path = optarg;
			break;
		case 'e':
			o->events_path = optarg;
			break;
		case OPT_PAUSE_AFTER:
			if (parse_u64(optarg, &o->pause_after) != 0)
				goto bad;
			o->pause_enabled = true;
			break;
		case OPT_STALL:
			o->stall = true;
			break;
		case OPT_STALL_SECONDS:
			if (parse_u64(optarg, &v) != 0 || v > 86400u * 365u)
				goto bad;
			o->stall_seconds = (unsigned)v;
			break;
		case OPT_SEND_PAUSE:
			o->send_pause = true;
			break;
		case OPT_LATENCY:
			o->latency = true;
			break;
		case OPT_EXIT_AFTER:
			if (parse_u64(optarg, &o->exit_after) != 0 || o->exit_after == 0)
				goto bad;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->socket_path == NULL) {
		usage(stderr);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "d4-sink: bad value for an option: %s\n", optarg);
	return -1;
}

/* Removes a leftover socket file; refuses to remove anything that is not a socket. */
static int remove_stale_socket(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	return unlink(path);
}

static int start_signal(struct sink *s, uv_signal_t *h, int signum)
{
	int rc = uv_signal_init(s->loop, h);
	if (rc == 0) {
		h->data = s;
		rc = uv_signal_start(h, signal_cb, signum);
	}
	if (rc != 0)
		d4_logf(D4_LOG_ERR, "signal", "%s", uv_strerror(rc));
	return rc;
}

int main(int argc, char **argv)
{
	struct sink s;
	int rc;
	bool loop_ready = false, handles = false;

	memset(&s, 0, sizeof(s));
	s.exit_code = 1;
	d4_log_init("d4-sink", D4_LOG_STDERR, D4_LOG_INFO);
	if (parse_opts(argc, argv, &s.o) != 0)
		return 2;
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("d4-sink: signal");
		return 1;
	}
	s.start_ns = mono_ns();
	s.read_buf = malloc(READ_BUF_SIZE);
	if (s.read_buf == NULL)
		goto out;
	if (s.o.latency && (s.lat = calloc(LAT_BUCKETS, sizeof(*s.lat))) == NULL)
		goto out;
	if (s.o.out_path) {
		/* appended: a sink restarted on the same file keeps what the last one wrote */
		s.out = fopen(s.o.out_path, "ab");
		if (s.out == NULL || setvbuf(s.out, NULL, _IOFBF, 1u << 20) != 0) {
			fprintf(stderr, "d4-sink: %s: %s\n", s.o.out_path, strerror(errno));
			goto out;
		}
	}
	if (s.o.events_path) {
		s.events = fopen(s.o.events_path, "a");
		if (s.events == NULL) {
			fprintf(stderr, "d4-sink: %s: %s\n", s.o.events_path, strerror(errno));
			goto out;
		}
	}
	if (remove_stale_socket(s.o.socket_path) != 0) {
		fprintf(stderr, "d4-sink: %s: %s\n", s.o.socket_path,
		        errno == EEXIST ? "exists and is not a socket" : strerror(errno));
		goto out;
	}

	s.loop = uv_default_loop();
	if (s.loop == NULL)
		goto out;
	loop_ready = true;
	if ((rc = uv_pipe_init(s.loop, &s.server, 0)) != 0) {
		fprintf(stderr, "d4-sink: pipe: %s\n", uv_strerror(rc));
		goto out;
	}
	s.server_open = true;
	s.server.data = &s;
	if ((rc = uv_pipe_bind(&s.server, s.o.socket_path)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&s.server, 128, connection_cb)) != 0) {
		fprintf(stderr, "d4-sink: %s: %s\n", s.o.socket_path, uv_strerror(rc));
		goto out;
	}
	if ((rc = uv_timer_init(s.loop, &s.stall_timer)) != 0) {
		fprintf(stderr, "d4-sink: timer: %s\n", uv_strerror(rc));
		goto out;
	}
	s.stall_timer.data = &s;
	handles = true;
	if (start_signal(&s, &s.sig_term, SIGTERM) != 0 || start_signal(&s, &s.sig_int, SIGINT) != 0 ||
	    start_signal(&s, &s.sig_usr1, SIGUSR1) != 0 || start_signal(&s, &s.sig_usr2, SIGUSR2) != 0)
		goto out;
	if (s.o.stall) {
		s.pause_done = true; /* --pause-after does not fire again after a SIGUSR1 */
		set_paused(&s, true);
	}
	d4_logf(D4_LOG_INFO, "listening", "socket=%s", s.o.socket_path);

	rc = uv_run(s.loop, UV_RUN_DEFAULT);
	(void)rc;
	print_summary(&s);
	s.exit_code = s.write_failed ? 1 : 0;

out:
	if (s.out && fclose(s.out) != 0) {
		fprintf(stderr, "d4-sink: %s: %s\n", s.o.out_path, strerror(errno));
		s.exit_code = 1;
	}
	if (s.events && fclose(s.events) != 0)
		s.exit_code = 1;
	if (loop_ready) {
		while (s.conns)
			conn_close(s.conns);
		if (s.server_open) {
			close_if_open((uv_handle_t *)&s.server);
			(void)unlink(s.o.socket_path);
		}
		if (handles) {
			close_if_open((uv_handle_t *)&s.stall_timer);
			uv_signal_t *sigs[] = {&s.sig_term, &s.sig_int, &s.sig_usr1, &s.sig_usr2};
			for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
				if (sigs[i]->loop == s.loop)
					close_if_open((uv_handle_t *)sigs[i]);
		}
		(void)uv_run(s.loop, UV_RUN_DEFAULT); /* runs the close callbacks */
		if (uv_loop_close(s.loop) != 0)
			d4_log(D4_LOG_WARN, "exit", "msg", "loop still had handles", NULL);
	}
	free(s.read_buf);
	free(s.lat);
	free(s.streams);
	free(s.sess);
	return s.exit_code;
}
