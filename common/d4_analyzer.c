/*
 * d4_analyzer.c — the analyzer side of docs/analyzer-protocol.md, the offline mode, and the
 * line and pcap reassembly helpers.
 *
 * Plain blocking POSIX I/O on descriptor 0: an analyzer does one thing at a time, so a
 * poll() with a one-second timeout (for idle_cb) and read() into one growing buffer is all
 * the machinery it needs. The buffer holds at most one message beyond what a read returned
 * (64 MiB + 1 at worst, the protocol's limit).
 *
 * Protocol messages are decoded by d4_anproto.h (shared with d4-dispatch), which refuses to
 * read past a body; any violation of the contract (short body, trailing bytes, unknown kind,
 * a gap in seq, DATA of a session never started) is the dispatcher's bug and stops the
 * analyzer with a message.
 * Acknowledgements are cumulative and sent after each read() batch, after flush_cb made the
 * batch durable: an analyzer that dies loses nothing it did not acknowledge.
 *
 * Offline, the D4 stream goes through the decoder of d4_proto.h and is turned into the same
 * START/DATA/END calls. A 254 session's START waits for its meta header (type-2 frames),
 * which are held (bounded by D4_AN_META_MAX) and delivered as DATA right after START.
 */
#include "d4_analyzer.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "d4_bytes.h"

#define D4_AN_META_MAX 65536u                     /* meta header gathered offline */
#define D4_AN_MAX_PAYLOAD (64u * 1024u * 1024u)   /* largest payload any server accepts */
#define D4_AN_READ_CHUNK (256u * 1024u)
#define D4_AN_TICK_MS 1000

struct an_sess {
	struct d4_an_session pub;
	struct an_sess *next; /* hash chain */
	char *meta_type;
	char *meta_json;
	bool from_meta;  /* offline: began with type-2 frames */
	bool seen_data;  /* offline: a 254 frame came */
	bool started;    /* start_cb was called */
};

struct an {
	const struct d4_analyzer_def *def;
	void *ctx;
	const char *name;
	int fd;
	uint8_t *key;
	size_t key_len;
	/* input buffer: bytes [pos, have) are unread */
	uint8_t *in;
	size_t in_cap;
	size_t in_have;
	size_t in_pos;
	/* sessions by id */
	struct an_sess **buckets;
	size_t nbuckets;
	size_t nsess;
	/* protocol state */
	bool hello;
	bool acks;
	bool dirty; /* something was delivered since the last flush */
	uint64_t last_seq;
	uint64_t acked;
	uint64_t last_tick;
	/* offline state */
	struct an_sess *cur;
	uint8_t *pend; /* type-2 frames held until START: header + payload each */
	size_t pend_len;
	size_t pend_cap;
	size_t pend_meta; /* payload bytes among them */
	uint64_t next_id;
};

static void an_err(const struct an *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void an_err(const struct an *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "d4-analyzer-%s: ", a->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void d4_an_session_tag(const struct d4_an_session *s, char out[D4_AN_TAG_LEN])
{
	snprintf(out, D4_AN_TAG_LEN, "%02x%02x%02x%02x/%u", s->uuid[0], s->uuid[1], s->uuid[2],
	         s->uuid[3], (unsigned)s->type);
}

/* ---- sessions ---- */

static size_t sess_slot(const struct an *a, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (a->nbuckets - 1);
}

static struct an_sess *sess_find(const struct an *a, uint64_t id)
{
	if (a->nbuckets == 0)
		return NULL;
	for (struct an_sess *s = a->buckets[sess_slot(a, id)]; s; s = s->next)
		if (s->pub.id == id)
			return s;
	return NULL;
}

static int sess_grow(struct an *a)
{
	size_t n = a->nbuckets ? a->nbuckets * 2 : 64;
	struct an_sess **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return -1;
	struct an_sess **old = a->buckets;
	size_t oldn = a->nbuckets;
	a->buckets = b;
	a->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct an_sess *s = old[i];
		while (s) {
			struct an_sess *next = s->next;
			size_t k = sess_slot(a, s->pub.id);
			s->next = b[k];
			b[k] = s;
			s = next;
		}
	}
	free(old);
	return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s == NULL)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Sets the session's meta type and header (copies); 0 or -1. */
static int sess_set_meta(struct an_sess *s, const uint8_t *mt, size_t mt_len, const uint8_t *js,
                         size_t js_len)
{
	char *t = dup_bytes(mt, mt_len);
	char *j = dup_bytes(js, js_len);
	if (t == NULL || j == NULL) {
		free(t);
		free(j);
		return -1;
	}
	free(s->meta_type);
	free(s->meta_json);
	s->meta_type = t;
	s->meta_json = j;
	s->pub.meta_type = t;
	s->pub.meta_json = j;
	s->pub.meta_json_len = js_len;
	return 0;
}

static struct an_sess *sess_add(struct an *a, uint64_t id)
{
	if (a->nsess >= a->nbuckets && sess_grow(a) != 0)
		return NULL;
	struct an_sess *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->pub.id = id;
	if (sess_set_meta(s, NULL, 0, NULL, 0) != 0) {
		free(s);
		return NULL;
	}
	size_t k = sess_slot(a, id);
	s->next = a->buckets[k];
	a->buckets[k] = s;
	a->nsess++;
	return s;
}

static void sess_remove(struct an *a, struct an_sess *s)
{
	struct an_sess **pp = &a->buckets[sess_slot(a, s->pub.id)];
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	a->nsess--;
	free(s->meta_type);
	free(s->meta_json);
	free(s);
}

/* Ends a session (end_cb if it was started) and forgets it. Returns end_cb's result. */
static int sess_end(struct an *a, struct an_sess *s, unsigned reason)
{
	int rc = 0;
	if (s->started && a->def->end_cb)
		rc = a->def->end_cb(a->ctx, &s->pub, reason);
	if (a->cur == s)
		a->cur = NULL;
	sess_remove(a, s);
	return rc;
}

static void sess_end_all(struct an *a, unsigned reason)
{
	for (size_t i = 0; i < a->nbuckets; i++)
		while (a->buckets[i])
			(void)sess_end(a, a->buckets[i], reason);
}

static int sess_start(struct an *a, struct an_sess *s)
{
	s->started = true;
	if (a->def->start_cb && a->def->start_cb(a->ctx, &s->pub) != 0) {
		an_err(a, "start callback failed (session %llu)", (unsigned long long)s->pub.id);
		return -1;
	}
	return 0;
}

static int sess_data(struct an *a, struct an_sess *s, const struct d4_header *h,
                     const uint8_t *payload, size_t len)
{
	s->pub.records++;
	s->pub.bytes += len;
	if (a->def->data_cb && a->def->data_cb(a->ctx, &s->pub, h, payload, len) != 0) {
		an_err(a, "data callback failed (session %llu)", (unsigned long long)s->pub.id);
		return -1;
	}
	return 0;
}

static int call_flush(struct an *a)
{
	if (a->def->flush_cb && a->def->flush_cb(a->ctx) != 0) {
		an_err(a, "flush callback failed");
		return -1;
	}
	return 0;
}

/* ---- input ---- */

/* Reads what fd 0 has into the input buffer: bytes read, 0 at EOF, -1 on error. */
static ssize_t read_some(struct an *a)
{
	if (a->in_pos > 0 && a->in_pos == a->in_have)
		a->in_pos = a->in_have = 0;
	if (a->in_cap - a->in_have < D4_AN_READ_CHUNK / 4) {
		if (a->in_pos > 0) {
			memmove(a->in, a->in + a->in_pos, a->in_have - a->in_pos);
			a->in_have -= a->in_pos;
			a->in_pos = 0;
		}
		if (a->in_cap - a->in_have < D4_AN_READ_CHUNK / 4) {
			size_t ncap = a->in_cap ? a->in_cap * 2 : D4_AN_READ_CHUNK;
			uint8_t *p = realloc(a->in, ncap);
			if (p == NULL) {
				an_err(a, "out of memory");
				return -1;
			}
			a->in = p;
			a->in_cap = ncap;
		}
	}
	for (;;) {
		ssize_t n = read(a->fd, a->in + a->in_have, a->in_cap - a->in_have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			an_err(a, "read: %s", strerror(errno));
			return -1;
		}
		a->in_have += (size_t)n;
		return n;
	}
}

/* Makes room for a message of `total` bytes starting at in_pos. 0 or -1. */
static int reserve_message(struct an *a, size_t total)
{
	if (a->in_cap - a->in_pos >= total + D4_AN_READ_CHUNK / 4)
		return 0;
	memmove(a->in, a->in + a->in_pos, a->in_have - a->in_pos);
	a->in_have -= a->in_pos;
	a->in_pos = 0;
	if (a->in_cap >= total + D4_AN_READ_CHUNK / 4)
		return 0;
	size_t ncap = total + D4_AN_READ_CHUNK;
	uint8_t *p = realloc(a->in, ncap);
	if (p == NULL) {
		an_err(a, "out of memory for a %zu-byte message", total);
		return -1;
	}
	a->in = p;
	a->in_cap = ncap;
	return 0;
}

/* ---- output ---- */

static int write_all(struct an *a, const uint8_t *p, size_t n)
{
	bool sock = true;
	while (n > 0) {
		ssize_t w;
		if (sock) {
			w = send(a->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			w = write(a->fd, p, n);
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			an_err(a, "write to the dispatcher: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Flushes what was delivered since the last flush (also START and END: an analyzer's
 * output must not wait for the next DATA), and acknowledges what is new. 0 or -1. */
static int ack_all(struct an *a)
{
	if (a->dirty && call_flush(a) != 0)
		return -1;
	a->dirty = false;
	if (!a->acks || a->last_seq == a->acked)
		return 0;
	uint8_t msg[D4_AP_ACK_LEN];
	d4_ap_put_ack(msg, a->last_seq);
	if (write_all(a, msg, sizeof(msg)) != 0)
		return -1;
	a->acked = a->last_seq;
	return 0;
}

/* ---- protocol mode ---- */

/* A NUL-terminated copy of a protocol string; NULL (and *bad) if it holds a NUL. */
static char *str_copy(const struct d4_ap_str *s, bool *bad)
{
	if (s->len && memchr(s->p, '\0', s->len)) {
		*bad = true;
		return NULL;
	}
	return dup_bytes((const uint8_t *)s->p, s->len);
}

static int on_hello(struct an *a, const struct d4_ap_hello *h)
{
	if (h->version != D4_AP_VERSION) {
		an_err(a, "the dispatcher speaks analyzer protocol version %u, this analyzer speaks %u",
		       (unsigned)h->version, D4_AP_VERSION);
		return -1;
	}
	struct d4_ap_param_iter it;
	struct d4_ap_param prm;
	d4_ap_param_iter_init(&it, h);
	while (d4_ap_param_next(&it, &prm)) {
		bool bad = false;
		char *k = str_copy(&prm.key, &bad);
		char *v = str_copy(&prm.value, &bad);
		int rc = 0;
		if (bad)
			an_err(a, "HELLO from the dispatcher: a parameter holds a NUL byte");
		else if (k == NULL || v == NULL)
			an_err(a, "out of memory");
		else if (a->def->params_cb && (rc = a->def->params_cb(a->ctx, k, v)) != 0)
			an_err(a, "invalid queue parameter %s=%s", k, v);
		bool ok = !bad && k && v && rc == 0;
		free(k);
		free(v);
		if (!ok)
			return -1;
	}
	a->hello = true;
	size_t nlen = strlen(a->name);
	if (nlen > 255)
		nlen = 255;
	uint8_t msg[D4_AP_PREFIX + 5 + 255];
	d4_ap_put_register(msg, D4_AP_VERSION, (uint8_t)(a->acks ? 0 : D4_AP_REGISTER_NO_ACK),
	                   a->name, nlen);
	return write_all(a, msg, d4_ap_register_len(nlen));
}

static int on_start(struct an *a, const struct d4_ap_start *m)
{
	struct an_sess *s = sess_find(a, m->session);
	if (s) {
		/* a replayed START within one instance: the old state cannot continue */
		an_err(a, "session %llu started twice; ending the first", (unsigned long long)m->session);
		if (sess_end(a, s, D4_AP_END_RESTARTED) != 0)
			return -1;
	}
	if (m->meta_type.len && memchr(m->meta_type.p, '\0', m->meta_type.len)) {
		an_err(a, "START from the dispatcher: the meta-type holds a NUL byte");
		return -1;
	}
	s = sess_add(a, m->session);
	if (s == NULL || sess_set_meta(s, (const uint8_t *)m->meta_type.p, m->meta_type.len,
	                               (const uint8_t *)m->meta_json.p, m->meta_json.len) != 0) {
		an_err(a, "out of memory");
		if (s)
			sess_remove(a, s);
		return -1;
	}
	s->pub.time = m->time;
	memcpy(s->pub.uuid, m->uuid, D4_UUID_SIZE);
	s->pub.type = m->type == D4_TYPE_META_HEADER ? D4_TYPE_META_DEFINED : m->type;
	memcpy(s->pub.addr, m->addr, 16);
	s->pub.port = m->port;
	return sess_start(a, s);
}

static int on_data(struct an *a, const struct d4_ap_data *m)
{
	if (m->seq != a->last_seq + 1) {
		an_err(a, "DATA from the dispatcher: seq %llu after %llu", (unsigned long long)m->seq,
		       (unsigned long long)a->last_seq);
		return -1;
	}
	struct an_sess *s = sess_find(a, m->session);
	if (s == NULL) {
		an_err(a, "DATA from the dispatcher for session %llu, never started",
		       (unsigned long long)m->session);
		return -1;
	}
	struct d4_header h;
	d4_header_decode(m->frame, &h);
	a->last_seq = m->seq;
	return sess_data(a, s, &h, m->payload, m->payload_len);
}

static int on_end(struct an *a, const struct d4_ap_end *m)
{
	struct an_sess *s = sess_find(a, m->session);
	if (s == NULL) {
		an_err(a, "END from the dispatcher for session %llu, never started (ignored)",
		       (unsigned long long)m->session);
		return 0;
	}
	s->pub.end_time = m->time;
	if (sess_end(a, s, m->reason) != 0) {
		an_err(a, "end callback failed (session %llu)", (unsigned long long)m->session);
		return -1;
	}
	return 0;
}

/* Handles the whole messages in the input buffer: 0, 1 after BYE, -1 on an error. */
static int proto_messages(struct an *a)
{
	for (;;) {
		size_t avail = a->in_have - a->in_pos;
		if (avail < D4_AP_PREFIX)
			return 0;
		const uint8_t *p = a->in + a->in_pos;
		uint32_t len = d4_le32(p);
		if (len < 1 || len > D4_AP_MAX_BODY + 1u) {
			an_err(a, "message of %u bytes from the dispatcher", len);
			return -1;
		}
		size_t total = 4 + (size_t)len;
		if (avail < total)
			return reserve_message(a, total);
		unsigned kind = p[4];
		struct d4_ap_msg m;
		const char *why = NULL;
		a->in_pos += total;
		if (d4_ap_decode(kind, p + D4_AP_PREFIX, len - 1, &m, &why) != 0) {
			an_err(a, "malformed %s message (kind %u) from the dispatcher: %s",
			       d4_ap_kind_name(kind), kind, why);
			return -1;
		}
		if (a->hello == (kind == D4_AP_HELLO)) {
			an_err(a, "%s from the dispatcher %s HELLO", d4_ap_kind_name(kind),
			       a->hello ? "after" : "before");
			return -1;
		}
		int rc;
		a->dirty = a->dirty || kind != D4_AP_HELLO;
		switch (kind) {
		case D4_AP_HELLO:
			rc = on_hello(a, &m.u.hello);
			break;
		case D4_AP_START:
			rc = on_start(a, &m.u.start);
			break;
		case D4_AP_DATA:
			rc = on_data(a, &m.u.data);
			break;
		case D4_AP_END:
			rc = on_end(a, &m.u.end);
			break;
		case D4_AP_BYE:
			return 1;
		default:
			an_err(a, "%s (kind %u) is not for an analyzer", d4_ap_kind_name(kind), kind);
			return -1;
		}
		if (rc != 0)
			return -1;
	}
}

static int tick(struct an *a)
{
	uint64_t t = now_ms();
	if (t - a->last_tick < D4_AN_TICK_MS)
		return 0;
	a->last_tick = t;
	if (a->def->idle_cb && a->def->idle_cb(a->ctx) != 0) {
		an_err(a, "idle callback failed");
		return -1;
	}
	return 0;
}

static int run_protocol(struct an *a)
{
	a->last_tick = now_ms();
	for (;;) {
		int rc = proto_messages(a);
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			/* BYE: end what is open, make it durable, acknowledge, answer */
			sess_end_all(a, D4_AN_END_STOPPED);
			uint8_t bye[D4_AP_BYE_LEN];
			d4_ap_put_bye(bye);
			a->dirty = true;
			if (ack_all(a) != 0 || write_all(a, bye, sizeof(bye)) != 0)
				return 1;
			return 0;
		}
		if (ack_all(a) != 0 || tick(a) != 0)
			goto fail;
		uint64_t t = now_ms() - a->last_tick;
		int timeout = t >= D4_AN_TICK_MS ? 0 : (int)(D4_AN_TICK_MS - t);
		struct pollfd pfd = {.fd = a->fd, .events = POLLIN};
		int n = poll(&pfd, 1, timeout);
		if (n < 0 && errno != EINTR) {
			an_err(a, "poll: %s", strerror(errno));
			goto fail;
		}
		if (n <= 0)
			continue;
		ssize_t got = read_some(a);
		if (got < 0)
			goto fail;
		if (got == 0) {
			an_err(a, "the dispatcher closed the connection without BYE");
			goto fail;
		}
	}
fail:
	sess_end_all(a, D4_AN_END_STOPPED);
	return 1;
}

/* ---- offline mode ---- */

/* Parses the gathered meta header: its "type" if it is a JSON object with a string type. */
static bool meta_type_of(const uint8_t *js, size_t len, char *out, size_t cap)
{
	json_error_t e;
	json_t *root = json_loadb((const char *)js, len, JSON_REJECT_DUPLICATES, &e);
	bool ok = false;
	if (root && json_is_object(root)) {
		json_t *t = json_object_get(root, "type");
		if (json_is_string(t) && json_string_length(t) > 0 && json_string_length(t) < cap &&
		    memchr(json_string_value(t), '\0', json_string_length(t)) == NULL) {
			memcpy(out, json_string_value(t), json_string_length(t) + 1);
			ok = true;
		}
	}
	json_decref(root);
	return ok;
}

/* The payloads of the held type-2 frames, concatenated (malloc'd, NUL-terminated). */
static uint8_t *pend_meta_bytes(const struct an *a, size_t *len)
{
	uint8_t *js = malloc(a->pend_meta + 1);
	if (js == NULL)
		return NULL;
	size_t jl = 0;
	for (size_t at = 0; at < a->pend_len;) {
		uint32_t sz = d4_le32(a->pend + at + D4_OFF_SIZE);
		memcpy(js + jl, a->pend + at + D4_HEADER_SIZE, sz);
		jl += sz;
		at += D4_HEADER_SIZE + sz;
	}
	js[jl] = '\0';
	*len = jl;
	return js;
}

/* Starts the held 254 session: meta from the held type-2 frames, then those frames as DATA. */
static int offline_start_meta(struct an *a, struct an_sess *s)
{
	int rc = -1;
	size_t jl;
	uint8_t *js = pend_meta_bytes(a, &jl);
	if (js == NULL) {
		an_err(a, "out of memory");
		return -1;
	}
	char mt[256];
	if (!meta_type_of(js, jl, mt, sizeof(mt))) {
		char tag[D4_AN_TAG_LEN];
		d4_an_session_tag(&s->pub, tag);
		an_err(a, "session %s: the meta header is not a JSON object with a string \"type\"",
		       tag);
		mt[0] = '\0';
	}
	if (sess_set_meta(s, (const uint8_t *)mt, strlen(mt), js, jl) != 0) {
		an_err(a, "out of memory");
		goto out;
	}
	s->pub.type = D4_TYPE_META_DEFINED;
	if (sess_start(a, s) != 0)
		goto out;
	for (size_t at = 0; at < a->pend_len;) {
		struct d4_header h;
		d4_header_decode(a->pend + at, &h);
		if (sess_data(a, s, &h, a->pend + at + D4_HEADER_SIZE, h.size) != 0)
			goto out;
		at += D4_HEADER_SIZE + h.size;
	}
	rc = 0;
out:
	a->pend_len = a->pend_meta = 0;
	free(js);
	return rc;
}

static int offline_end_current(struct an *a, unsigned reason)
{
	struct an_sess *s = a->cur;
	if (s == NULL)
		return 0;
	if (!s->started && offline_start_meta(a, s) != 0)
		return -1;
	if (sess_end(a, s, reason) != 0) {
		an_err(a, "end callback failed");
		return -1;
	}
	return 0;
}

static bool offline_same(const struct an_sess *s, const struct d4_header *h)
{
	if (memcmp(s->pub.uuid, h->uuid, D4_UUID_SIZE) != 0)
		return false;
	if (s->from_meta)
		return h->type == D4_TYPE_META_DEFINED || (h->type == D4_TYPE_META_HEADER && !s->seen_data);
	return h->type == s->pub.type;
}

static int offline_hold(struct an *a, const uint8_t *raw, const uint8_t *payload, size_t len)
{
	size_t need = D4_HEADER_SIZE + len;
	if (a->pend_cap - a->pend_len < need) {
		size_t ncap = a->pend_len + need + 4096;
		uint8_t *p = realloc(a->pend, ncap);
		if (p == NULL) {
			an_err(a, "out of memory");
			return -1;
		}
		a->pend = p;
		a->pend_cap = ncap;
	}
	memcpy(a->pend + a->pend_len, raw, D4_HEADER_SIZE);
	if (len)
		memcpy(a->pend + a->pend_len + D4_HEADER_SIZE, payload, len);
	a->pend_len += need;
	a->pend_meta += len;
	return 0;
}

static int offline_frame(struct an *a, const struct d4_event *ev)
{
	const struct d4_header *h = ev->hdr;
	if (a->cur && !offline_same(a->cur, h) && offline_end_current(a, D4_OK) != 0)
		return -1;
	struct an_sess *s = a->cur;
	if (s == NULL) {
		s = sess_add(a, ++a->next_id);
		if (s == NULL) {
			an_err(a, "out of memory");
			return -1;
		}
		a->cur = s;
		s->pub.time = h->timestamp;
		memcpy(s->pub.uuid, h->uuid, D4_UUID_SIZE);
		s->pub.type = h->type;
		if (h->type == D4_TYPE_META_HEADER) {
			s->from_meta = true;
			s->pub.type = D4_TYPE_META_DEFINED;
		} else if (sess_start(a, s) != 0) {
			return -1;
		}
	}
	s->pub.end_time = h->timestamp;
	if (s->started) {
		if (h->type == D4_TYPE_META_DEFINED)
			s->seen_data = true;
		return sess_data(a, s, h, ev->payload, ev->payload_len);
	}
	/* a 254 session waiting for its meta header */
	if (h->type == D4_TYPE_META_HEADER) {
		if (a->pend_meta + ev->payload_len > D4_AN_META_MAX) {
			an_err(a, "meta header longer than %u bytes", D4_AN_META_MAX);
			return offline_start_meta(a, s) != 0 ? -1
			                                      : sess_data(a, s, h, ev->payload, ev->payload_len);
		}
		if (offline_hold(a, ev->raw_header, ev->payload, ev->payload_len) != 0)
			return -1;
		/* start as soon as the meta header is whole */
		size_t jl;
		uint8_t *js = pend_meta_bytes(a, &jl);
		if (js == NULL) {
			an_err(a, "out of memory");
			return -1;
		}
		char mt[256];
		bool whole = meta_type_of(js, jl, mt, sizeof(mt));
		free(js);
		return whole ? offline_start_meta(a, s) : 0;
	}
	s->seen_data = true;
	if (offline_start_meta(a, s) != 0)
		return -1;
	return sess_data(a, s, h, ev->payload, ev->payload_len);
}

static int run_offline(struct an *a)
{
	int rc = 1;
	struct d4_decoder dec;
	struct d4_decoder_opts opts = {.max_payload = D4_AN_MAX_PAYLOAD};
	d4_decoder_init(&dec, &opts);
	if (a->key && d4_decoder_set_key(&dec, a->key, a->key_len) != 0) {
		an_err(a, "cannot set the HMAC key");
		goto out;
	}
	for (;;) {
		while (a->in_pos < a->in_have) {
			struct d4_event ev;
			size_t used = d4_decoder_feed(&dec, a->in + a->in_pos, a->in_have - a->in_pos, &ev);
			a->in_pos += used;
			if (ev.kind == D4_EV_FRAME) {
				if (offline_frame(a, &ev) != 0)
					goto out;
			} else if (ev.kind == D4_EV_ERROR) {
				an_err(a, "D4 stream refused after %llu frames: %s (%s)",
				       (unsigned long long)dec.frames, d4_reason_name(ev.reason),
				       d4_reason_text(ev.reason));
				(void)offline_end_current(a, ev.reason);
				goto out;
			}
		}
		ssize_t n = read_some(a);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
	}
	enum d4_reason fin = d4_decoder_finish(&dec);
	if (fin != D4_OK) {
		an_err(a, "D4 stream ends inside a frame after %llu frames (%s)",
		       (unsigned long long)dec.frames, d4_reason_name(fin));
		(void)offline_end_current(a, fin);
		(void)call_flush(a);
		goto out;
	}
	if (offline_end_current(a, D4_OK) != 0 || call_flush(a) != 0)
		goto out;
	rc = 0;
out:
	sess_end_all(a, D4_AN_END_STOPPED);
	d4_decoder_free(&dec);
	return rc;
}

/* ---- entry point ---- */

static void usage(const struct an *a, FILE *f)
{
	fprintf(f,
	        "usage: d4-analyzer-%s [options] < capture.d4\n"
	        "  started by d4-dispatch (docs/analyzer-protocol.md), or by hand on a saved D4 stream\n"
	        "  --key KEY, --key-file FILE  offline: check every frame's HMAC with this key\n"
	        "  -h, --help                  this text\n",
	        a->name);
	if (a->def->usage)
		fputs(a->def->usage, f);
}

static int read_key_file(struct an *a, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		an_err(a, "%s: %s", path, strerror(errno));
		return -1;
	}
	uint8_t buf[4096];
	size_t n = fread(buf, 1, sizeof(buf), f);
	bool bad = ferror(f) || !feof(f);
	if (fclose(f) != 0 || bad) {
		an_err(a, "%s: cannot read the key (at most %zu bytes)", path, sizeof(buf) - 1);
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	free(a->key);
	a->key = (uint8_t *)dup_bytes(buf, n);
	a->key_len = n;
	return a->key ? 0 : -1;
}

static int parse_args(struct an *a, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			usage(a, stdout);
			return 1;
		}
		if (strcmp(arg, "--key") == 0 || strcmp(arg, "--key-file") == 0) {
			if (next == NULL) {
				an_err(a, "%s needs a value", arg);
				return -1;
			}
			if (arg[5] == '\0') {
				free(a->key);
				a->key_len = strlen(next);
				a->key = (uint8_t *)dup_bytes((const uint8_t *)next, a->key_len);
				if (a->key == NULL)
					return -1;
			} else if (read_key_file(a, next) != 0) {
				return -1;
			}
			i++;
			continue;
		}
		int n = a->def->option_cb ? a->def->option_cb(a->ctx, arg, next) : 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			an_err(a, "unknown option %s (try --help)", arg);
			return -1;
		}
		i += n - 1;
	}
	return 0;
}

int d4_analyzer_main(int argc, char **argv, const struct d4_analyzer_def *def, void *ctx)
{
	struct an a = {
		.def = def,
		.ctx = ctx,
		.name = def->name ? def->name : "analyzer",
		.fd = 0,
		.acks = !(def->flags & D4_AP_REGISTER_NO_ACK),
	};
	int rc = 2;
	int pa = parse_args(&a, argc, argv);
	if (pa != 0) {
		rc = pa > 0 ? 0 : 2;
		goto out;
	}
	rc = 1;
	if (isatty(a.fd)) {
		an_err(&a, "standard input is a terminal: give a D4 stream (< capture.d4)");
		goto out;
	}
	/* the first byte tells the modes apart; the magic needs four */
	while (a.in_have < 1 || (a.in[0] == 'D' && a.in_have < D4_AP_MAGIC_LEN)) {
		ssize_t n = read_some(&a);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
	}
	if (a.in_have == 0) {
		rc = call_flush(&a) == 0 ? 0 : 1; /* an empty stream: nothing to do */
	} else if (a.in[0] == D4_VERSION) {
		rc = run_offline(&a);
	} else if (a.in_have >= D4_AP_MAGIC_LEN && memcmp(a.in, D4_AP_MAGIC, D4_AP_MAGIC_LEN) == 0) {
		a.in_pos = D4_AP_MAGIC_LEN;
		rc = run_protocol(&a);
	} else {
		an_err(&a, "input is neither a D4 stream (first byte 0x01) nor the analyzer protocol "
		           "(magic D4AP): first byte 0x%02x",
		       a.in[0]);
	}
out:
	sess_end_all(&a, D4_AN_END_STOPPED);
	free(a.buckets);
	free(a.in);
	free(a.pend);
	free(a.key);
	return rc;
}

/* ---- line reassembly ---- */

void d4_reasm_lines_init(struct d4_reasm_lines *r, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	r->max_line = max_line ? max_line : 65536;
}

void d4_reasm_lines_free(struct d4_reasm_lines *r)
{
	free(r->buf);
	r->buf = NULL;
	r->have = r->cap = 0;
}

/* Gives one line; a line longer than max_line is cut (after removing a CRLF's CR). */
static int give_line(struct d4_reasm_lines *r, const uint8_t *p, size_t n, unsigned flags,
                     bool strip_cr, d4_line_cb cb, void *arg)
{
	if (strip_cr && n > 0 && p[n - 1] == '\r')
		n--;
	if (n > r->max_line) {
		n = r->max_line;
		flags |= D4_LINE_TRUNCATED;
	}
	if (flags & D4_LINE_TRUNCATED)
		r->truncated++;
	return cb(arg, p, n, flags);
}

static int hold(struct d4_reasm_lines *r, const uint8_t *p, size_t n)
{
	if (r->cap - r->have < n) {
		size_t want = r->have + n;
		size_t ncap = r->cap ? r->cap : 256;
		while (ncap < want)
			ncap *= 2;
		if (ncap > r->max_line + 1)
			ncap = r->max_line + 1;
		uint8_t *b = realloc(r->buf, ncap);
		if (b == NULL)
			return -1;
		r->buf = b;
		r->cap = ncap;
	}
	memcpy(r->buf + r->have, p, n);
	r->have += n;
	return 0;
}

int d4_reasm_lines_feed(struct d4_reasm_lines *r, const uint8_t *buf, size_t len, d4_line_cb cb,
                        void *arg)
{
	size_t pos = 0;
	while (pos < len) {
		const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
		size_t seg = (nl ? (size_t)(nl - buf) : len) - pos;
		size_t next = nl ? pos + seg + 1 : len;
		int rc = 0;
		if (r->overlong) {
			/* the rest of a line already given truncated */
			if (nl)
				r->overlong = false;
		} else if (r->have == 0 && nl) {
			rc = give_line(r, buf + pos, seg, 0, true, cb, arg);
		} else {
			/* keep at most max_line + 1 bytes: the extra one may be the CR of a CRLF */
			size_t room = r->max_line + 1 - r->have;
			size_t take = seg < room ? seg : room;
			if (hold(r, buf + pos, take) != 0)
				return -1;
			if (take < seg) {
				r->have = 0;
				r->overlong = nl == NULL;
				rc = give_line(r, r->buf, r->max_line, D4_LINE_TRUNCATED, false, cb, arg);
			} else if (nl) {
				size_t n = r->have;
				r->have = 0;
				rc = give_line(r, r->buf, n, 0, true, cb, arg);
			}
		}
		pos = next;
		if (rc != 0)
			return rc;
	}
	return 0;
}

int d4_reasm_lines_end(struct d4_reasm_lines *r, d4_line_cb cb, void *arg)
{
	r->overlong = false;
	if (r->have == 0)
		return 0;
	size_t n = r->have;
	r->have = 0;
	return give_line(r, r->buf, n, D4_LINE_UNTERMINATED, false, cb, arg);
}

/* ---- pcap reassembly ---- */

void d4_reasm_pcap_init(struct d4_reasm_pcap *p)
{
	memset(p, 0, sizeof(*p));
}

void d4_reasm_pcap_free(struct d4_reasm_pcap *p)
{
	free(p->buf);
	p->buf = NULL;
	p->have = p->cap = 0;
}

static uint32_t pcap_u32(const struct d4_reasm_pcap *p, const uint8_t *b)
{
	return p->global.big_endian ? d4_be32(b) : d4_le32(b);
}

static int pcap_fail(struct d4_reasm_pcap *p, const char *why, size_t rest)
{
	p->failed = true;
	p->why = why;
	p->have = 0;
	p->skipped += rest;
	return D4_REASM_MALFORMED;
}

/* Parses the 24-byte global header; false with p->why set when it is not pcap 2.x. */
static bool pcap_global(struct d4_reasm_pcap *p, const uint8_t *b)
{
	struct d4_pcap_global *g = &p->global;
	uint32_t magic = d4_le32(b);
	switch (magic) {
	case 0xa1b2c3d4u:
		break;
	case 0xd4c3b2a1u:
		g->big_endian = true;
		break;
	case 0xa1b23c4du:
		g->nsec = true;
		break;
	case 0x4d3cb2a1u:
		g->big_endian = g->nsec = true;
		break;
	case 0x0a0d0d0au:
		p->why = "pcapng, not pcap (send it as type 5)";
		return false;
	default:
		p->why = "bad pcap magic";
		return false;
	}
	g->version_major = (uint16_t)(g->big_endian ? (b[4] << 8 | b[5]) : d4_le16(b + 4));
	g->version_minor = (uint16_t)(g->big_endian ? (b[6] << 8 | b[7]) : d4_le16(b + 6));
	g->thiszone = (int32_t)pcap_u32(p, b + 8);
	g->sigfigs = pcap_u32(p, b + 12);
	g->snaplen = pcap_u32(p, b + 16);
	g->linktype = pcap_u32(p, b + 20);
	if (g->version_major != 2) {
		p->why = "unsupported pcap version (not 2.x)";
		return false;
	}
	p->max_caplen = g->snaplen < 65535u ? 65535u : g->snaplen;
	if (p->max_caplen > D4_PCAP_MAX_CAPLEN)
		p->max_caplen = D4_PCAP_MAX_CAPLEN;
	p->have_global = true;
	return true;
}

static void pcap_record_head(const struct d4_reasm_pcap *p, const uint8_t *b,
                             struct d4_pcap_record *rec)
{
	rec->ts_sec = pcap_u32(p, b);
	rec->ts_frac = pcap_u32(p, b + 4);
	rec->caplen = pcap_u32(p, b + 8);
	rec->len = pcap_u32(p, b + 12);
	rec->data = b + D4_PCAP_RECORD_SIZE;
}

static int pcap_give(struct d4_reasm_pcap *p, const struct d4_pcap_record *rec,
                     const struct d4_pcap_cbs *cbs, void *arg)
{
	p->records++;
	return cbs->record_cb ? cbs->record_cb(arg, &p->global, rec) : 0;
}

static int pcap_hold(struct d4_reasm_pcap *p, const uint8_t *b, size_t n)
{
	if (p->cap - p->have < n) {
		size_t ncap = p->have + n;
		if (ncap < 4096)
			ncap = 4096;
		uint8_t *nb = realloc(p->buf, ncap);
		if (nb == NULL)
			return -1;
		p->buf = nb;
		p->cap = ncap;
	}
	memcpy(p->buf + p->have, b, n);
	p->have += n;
	return 0;
}

int d4_reasm_pcap_feed(struct d4_reasm_pcap *p, const uint8_t *buf, size_t len,
                       const struct d4_pcap_cbs *cbs, void *arg)
{
	size_t pos = 0;
	while (pos < len) {
		if (p->failed) {
			p->skipped += len - pos;
			return 0;
		}
		size_t avail = len - pos;
		int rc = 0;
		if (p->have == 0) {
			/* fast path: a header or a record whole in the caller's buffer */
			if (!p->have_global && avail >= D4_PCAP_GLOBAL_SIZE) {
				if (!pcap_global(p, buf + pos))
					return pcap_fail(p, p->why, avail);
				pos += D4_PCAP_GLOBAL_SIZE;
				if (cbs->global_cb && (rc = cbs->global_cb(arg, &p->global)) != 0)
					return rc;
				continue;
			}
			if (p->have_global && avail >= D4_PCAP_RECORD_SIZE) {
				struct d4_pcap_record rec;
				pcap_record_head(p, buf + pos, &rec);
				if (rec.caplen > p->max_caplen)
					return pcap_fail(p, "pcap record longer than the snaplen allows", avail);
				if (avail - D4_PCAP_RECORD_SIZE >= rec.caplen) {
					pos += D4_PCAP_RECORD_SIZE + rec.caplen;
					if ((rc = pcap_give(p, &rec, cbs, arg)) != 0)
						return rc;
					continue;
				}
			}
		}
		/* gather across feeds */
		size_t need = D4_PCAP_GLOBAL_SIZE;
		if (p->have_global) {
			need = D4_PCAP_RECORD_SIZE;
			if (p->have >= D4_PCAP_RECORD_SIZE)
				need += pcap_u32(p, p->buf + 8);
		}
		size_t take = need - p->have < avail ? need - p->have : avail;
		if (pcap_hold(p, buf + pos, take) != 0)
			return -1;
		pos += take;
		if (p->have < need)
			continue;
		if (!p->have_global) {
			p->have = 0;
			if (!pcap_global(p, p->buf))
				return pcap_fail(p, p->why, len - pos);
			if (cbs->global_cb && (rc = cbs->global_cb(arg, &p->global)) != 0)
				return rc;
			continue;
		}
		struct d4_pcap_record rec;
		pcap_record_head(p, p->buf, &rec);
		if (need == D4_PCAP_RECORD_SIZE) {
			if (rec.caplen > p->max_caplen)
				return pcap_fail(p, "pcap record longer than the snaplen allows", len - pos);
			if (rec.caplen > 0)
				continue; /* now gather the data */
		}
		p->have = 0;
		if ((rc = pcap_give(p, &rec, cbs, arg)) != 0)
			return rc;
	}
	return 0;
}

int d4_reasm_pcap_end(struct d4_reasm_pcap *p)
{
	if (p->failed || p->have == 0)
		return 0;
	p->have = 0;
	p->failed = true;
	p->why = p->have_global ? "the session ends inside a pcap record"
	                        : "the session ends inside the pcap global header";
	return D4_REASM_MALFORMED;
}
