/*
 * session.c — one sensor connection: TLS, D4 decoding, every check, hand-off.
 *
 * The life of a connection:
 *
 *   accept      peer address checked against the blocklist before any TLS
 *   handshake   TLS 1.2/1.3; the client certificate's SHA-256 kept for pins
 *   header      (the decoder has checked version, type, uuid v4, size)
 *               first header: blocklist, temporary ban, registration state,
 *               key, certificate pin, accepted type; later ones: same uuid,
 *               type only 2 -> 254; always: per-sensor size limit, timestamp
 *   frame       HMAC verified by the decoder; the first verified frame
 *               claims (uuid, type) and announces the session to dispatch;
 *               type 2 payloads are gathered into the meta header
 *   close       EOF, a refusal, a kick, a timeout or shutdown
 *
 * Nothing is claimed or announced on the strength of an unverified header:
 * someone who knows a sensor's uuid but not its key cannot take its place.
 * A refusal closes the connection, logs uuid, peer and reason, and counts it
 * on the sensor (or on the server-wide record for unknown uuids).
 *
 * Reads go through the process-wide buffers of struct ingest and are fully
 * processed before returning to the loop, so an idle connection owns no
 * buffer. Per-packet work is the decoder, the checks above (binary searches
 * in the policy snapshot) and one copy into the dispatch link.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "d4_log.h"
#include "d4_uuid.h"
#include "ingest.h"

enum session_state {
	S_HANDSHAKE = 0,
	S_OPEN,
	S_CLOSING,
};

struct pending {
	uint8_t type;
	uint64_t packets;
	uint64_t bytes;
};

struct session {
	struct session *prev, *next;
	struct ingest *ing;
	uv_tcp_t tcp;
	struct tls_conn tls;
	struct d4_decoder dec;
	enum session_state state;
	uint64_t id;
	uint8_t peer[D4_IP_SIZE];
	uint16_t port;
	char peer_text[D4_IP_STR_MAX + 8];
	uint64_t opened_ms; /* loop time of accept */
	uint64_t opened_s;  /* wall clock of accept */
	uint64_t progress_ms; /* loop time of the last plaintext byte */
	bool reading;
	bool rate_paused;
	/* the sensor, from the first header on */
	bool have_uuid;
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	uint8_t first_type;
	uint8_t type;
	uint32_t max_payload;
	uint64_t rate_bps;
	int64_t tokens; /* rate limit bucket, bytes */
	bool has_cert;
	uint8_t cert_sha256[32];
	/* after the first verified frame */
	bool announced;
	bool claimed;
	struct d4_ipc_open open_msg;
	/* type 2 meta header */
	uint8_t *meta;
	size_t meta_len;
	bool meta_done;
	char meta_type[D4_META_TYPE_MAX + 1];
	/* statistics since the last tick: [0] meta header frames, [1] data */
	struct pending pend[2];
	uint64_t pend_skewed;
	int64_t last_skew;
};

/* ---- small helpers ---- */

static uint64_t now_s(void)
{
	return ingest_now();
}

static void list_add(struct ingest *ing, struct session *s)
{
	s->next = ing->sessions;
	s->prev = NULL;
	if (ing->sessions)
		ing->sessions->prev = s;
	ing->sessions = s;
	ing->n_sessions++;
}

static void list_remove(struct ingest *ing, struct session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		ing->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	ing->n_sessions--;
}

static const char *uuid_or_dash(const struct session *s)
{
	return s->have_uuid ? s->uuid_text : "-";
}

static void closed_cb(uv_handle_t *h)
{
	struct session *s = h->data;
	tls_conn_free(&s->tls);
	d4_decoder_free(&s->dec);
	free(s->meta);
	free(s);
}

static void hand_over_stats(struct session *s, uint64_t now)
{
	struct stats *st = s->ing->stats;
	if (!s->announced)
		return;
	for (int i = 0; i < 2; i++) {
		if (s->pend[i].packets == 0)
			continue;
		const char *meta = s->pend[i].type == D4_TYPE_META_DEFINED && s->meta_done
		                           ? s->meta_type : NULL;
		stats_frames(st, s->uuid, s->pend[i].type, meta, s->pend[i].packets, s->pend[i].bytes,
		             now);
		s->pend[i].packets = s->pend[i].bytes = 0;
	}
	if (s->pend_skewed) {
		stats_skew(st, s->uuid, s->pend_skewed, s->last_skew, now);
		s->pend_skewed = 0;
	}
}

static struct d4_ipc_meta meta_msg(const struct session *s)
{
	struct d4_ipc_meta m = {s->id, s->meta_type, strlen(s->meta_type), s->meta, s->meta_len};
	return m;
}

/* Ends the session; `why` D4_OK is a clean end. Safe to call twice. */
static void session_close(struct session *s, enum d4_reason why)
{
	struct ingest *ing = s->ing;
	if (s->state == S_CLOSING)
		return;
	s->state = S_CLOSING;
	uint64_t now = now_s();
	hand_over_stats(s, now);
	if (s->announced) {
		struct d4_ipc_close c = {s->id, now, (uint8_t)why};
		struct d4_ipc_meta m = meta_msg(s);
		link_close(ing->link, &c, &s->open_msg, s->meta_done ? &m : NULL);
		link_flush(ing->link);
		d4_log(D4_LOG_INFO, "session-closed", "uuid", s->uuid_text, "peer", s->peer_text,
		       "reason", d4_reason_name(why), NULL);
	}
	if (s->claimed) {
		active_release(ing->active, s->uuid, s->first_type, s->id);
		stats_session(ing->stats, s->uuid, NULL, 0, active_count(ing->active, s->uuid), now);
	}
	list_remove(ing, s);
	uv_read_stop((uv_stream_t *)&s->tcp);
	uv_close((uv_handle_t *)&s->tcp, closed_cb);
}

/*
 * The sensor's policy; for a uuid the snapshot does not know (or knows as
 * not approved), the store is asked first whether anything changed since the
 * last tick, so that a sensor registered or approved a moment ago is let in
 * at once. That costs one read transaction (a few microseconds) per such
 * connection; the snapshot is reloaded only when the policy generation
 * moved, so unknown uuids knocking cannot make ingest reload more often than
 * operators change the policy.
 */
static const struct sensor_policy *lookup_sensor(struct ingest *ing, const uint8_t uuid[D4_UUID_SIZE])
{
	const struct sensor_policy *sp = policy_sensor(&ing->policy, uuid);
	if (sp && sp->state == D4_SENSOR_APPROVED)
		return sp;
	if (policy_refresh(&ing->policy, ing->store, &ing->conf, now_s(), false) == 1)
		ing->policy_reloaded = true;
	return policy_sensor(&ing->policy, uuid);
}

/* Logs, counts and closes. `detail` may be NULL. Returns -1 for the callers' convenience. */
static int refuse(struct session *s, enum d4_reason why, const char *detail)
{
	struct ingest *ing = s->ing;
	if (s->state == S_CLOSING)
		return -1;
	d4_log(D4_LOG_WARN, "refused", "uuid", uuid_or_dash(s), "peer", s->peer_text, "reason",
	       d4_reason_name(why), "detail", detail ? detail : d4_reason_text(why), NULL);
	/* counted on the sensor when it is one we know (registered, or proven by
	 * its key); otherwise on the server-wide record, so that random uuids
	 * cannot grow the store */
	bool known = s->have_uuid && (s->announced || lookup_sensor(ing, s->uuid));
	char text[D4_ERROR_TEXT_MAX];
	snprintf(text, sizeof(text), "%s%s%s", d4_reason_text(why), detail ? ": " : "",
	         detail ? detail : "");
	stats_refusal(ing->stats, known ? s->uuid : NULL, why, s->peer, s->port, text, now_s());
	if (!s->announced)
		ing->refused_conns++;
	session_close(s, why);
	return -1;
}

/* ---- TLS output ---- */

struct tls_write {
	uv_write_t req;
	uint8_t *buf;
};

static void tls_write_cb(uv_write_t *req, int status)
{
	struct tls_write *w = (struct tls_write *)req;
	(void)status; /* a failed write shows up as a read error */
	free(w->buf);
	free(w);
}

static void tls_flush(struct session *s)
{
	if (s->tls.out_len == 0 || s->state == S_CLOSING)
		return;
	struct tls_write *w = malloc(sizeof(*w));
	if (w == NULL)
		return;
	w->buf = s->tls.out; /* the write owns the buffer now */
	uv_buf_t b = uv_buf_init((char *)s->tls.out, (unsigned)s->tls.out_len);
	s->tls.out = NULL;
	s->tls.out_len = s->tls.out_cap = 0;
	if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, tls_write_cb) != 0) {
		free(w->buf);
		free(w);
	}
}

/* ---- checks ---- */

static int check_first_header(struct session *s, const struct d4_header *h)
{
	struct ingest *ing = s->ing;
	const struct ingest_conf *c = &ing->conf;
	uint64_t now = now_s();

	memcpy(s->uuid, h->uuid, D4_UUID_SIZE);
	d4_uuid_format(s->uuid, s->uuid_text);
	s->have_uuid = true;
	s->first_type = s->type = h->type;

	if (policy_uuid_blocked(&ing->policy, s->uuid))
		return refuse(s, D4_R_UUID_BLOCKED, NULL);
	uint64_t kick = policy_kick_time(&ing->policy, s->uuid);
	if (kick && now < kick + c->kick_ban_s)
		return refuse(s, D4_R_TEMPORARY_BAN, NULL);

	const struct sensor_policy *sp = lookup_sensor(ing, s->uuid);
	const uint8_t *key = c->shared_key;
	size_t key_len = c->shared_key_len;
	if (sp && sp->state == D4_SENSOR_REJECTED)
		return refuse(s, D4_R_SENSOR_REJECTED, NULL);
	if (c->mode == MODE_REGISTRATION) {
		if (sp == NULL)
			return refuse(s, D4_R_SENSOR_NOT_REGISTERED, NULL);
		if (sp->state == D4_SENSOR_PENDING)
			return refuse(s, D4_R_SENSOR_PENDING, NULL);
	}
	if (sp && sp->key_len) {
		key = sp->key;
		key_len = sp->key_len;
	}
	if (key_len == 0)
		return refuse(s, D4_R_SENSOR_NOT_REGISTERED,
		              "the sensor has no key and no shared key is configured");
	if (sp && sp->has_cert_pin &&
	    (!s->has_cert || memcmp(sp->cert_pin, s->cert_sha256, sizeof(s->cert_sha256)) != 0))
		return refuse(s, D4_R_CLIENT_CERT,
		              s->has_cert ? "certificate does not match the pin" : "no certificate");
	s->max_payload = sp && sp->max_payload ? sp->max_payload : c->max_payload;
	s->rate_bps = sp ? sp->rate_limit_bps : 0;
	s->tokens = (int64_t)s->rate_bps;
	if (d4_decoder_set_key(&s->dec, key, key_len) != 0)
		return refuse(s, D4_R_HMAC_MISMATCH, "crypto library failure");

	if (!ing->policy.types[h->type])
		return refuse(s, D4_R_TYPE_NOT_ACCEPTED, d4_type_name(h->type));
	if (h->type == D4_TYPE_META_DEFINED)
		return refuse(s, D4_R_META_HEADER_MISSING, NULL);
	return 0;
}

static int check_header(struct session *s, const struct d4_header *h)
{
	struct ingest *ing = s->ing;
	const struct ingest_conf *c = &ing->conf;

	if (!s->have_uuid) {
		if (check_first_header(s, h) != 0)
			return -1;
	} else {
		if (memcmp(h->uuid, s->uuid, D4_UUID_SIZE) != 0) {
			char d[64];
			d4_uuid_format(h->uuid, d);
			return refuse(s, D4_R_UUID_CHANGED, d);
		}
		if (h->type != s->type) {
			if (s->type != D4_TYPE_META_HEADER || h->type != D4_TYPE_META_DEFINED)
				return refuse(s, D4_R_TYPE_CHANGED, NULL);
			if (!s->meta_done)
				return refuse(s, D4_R_META_HEADER_INVALID,
				              "type 254 data before the meta header was complete");
			if (!ing->policy.types[D4_TYPE_META_DEFINED])
				return refuse(s, D4_R_TYPE_NOT_ACCEPTED, d4_type_name(h->type));
			s->type = h->type;
		}
	}
	if (h->size > s->max_payload) {
		char d[64];
		snprintf(d, sizeof(d), "%u bytes, limit %u", h->size, s->max_payload);
		return refuse(s, D4_R_PAYLOAD_TOO_LARGE, d);
	}
	int64_t skew = (int64_t)(h->timestamp - now_s());
	uint64_t mag = skew < 0 ? (uint64_t)-skew : (uint64_t)skew;
	if (mag > c->skew_threshold_s) {
		s->pend_skewed++;
		s->last_skew = skew;
	}
	if (c->timestamp_window_s && mag > c->timestamp_window_s) {
		char d[64];
		snprintf(d, sizeof(d), "%lld s off", (long long)skew);
		return refuse(s, D4_R_TIMESTAMP_SKEW, d);
	}
	return 0;
}

/* First verified frame: the sensor has proven its key. */
static int announce(struct session *s)
{
	struct ingest *ing = s->ing;
	int owner_pid = 0;
	uint64_t owner = 0;
	uint64_t now = now_s();

	int rc = active_claim(ing->active, s->uuid, s->first_type, s->id,
	                      ing->conf.duplicates == DUP_REPLACE_OLD, &owner_pid, &owner);
	if (rc == -EEXIST) {
		char d[96];
		snprintf(d, sizeof(d), "type %u already open (worker pid %d)", s->first_type, owner_pid);
		return refuse(s, D4_R_DUPLICATE_SESSION, d);
	}
	if (rc == -ENOSPC)
		return refuse(s, D4_R_DUPLICATE_SESSION, "session table full");
	s->claimed = true;
	if (rc == 1 && owner_pid == (int)getpid()) {
		for (struct session *o = ing->sessions; o; o = o->next)
			if (o->id == owner && o != s) {
				refuse(o, D4_R_DUPLICATE_SESSION, "replaced by a newer connection");
				break;
			}
	}
	s->open_msg.session = s->id;
	s->open_msg.time = now;
	memcpy(s->open_msg.uuid, s->uuid, D4_UUID_SIZE);
	s->open_msg.type = s->first_type;
	s->open_msg.flags = 0;
	memcpy(s->open_msg.addr, s->peer, D4_IP_SIZE);
	s->open_msg.port = s->port;
	link_open(ing->link, &s->open_msg);
	s->announced = true;
	s->pend[0].type = D4_TYPE_META_HEADER;
	stats_session(ing->stats, s->uuid, s->peer, s->port, active_count(ing->active, s->uuid), now);
	d4_log(D4_LOG_INFO, "session-open", "uuid", s->uuid_text, "peer", s->peer_text, "type",
	       d4_type_name(s->first_type), NULL);
	return 0;
}

/* Gathers a type-2 payload; completes the meta header when it parses. */
static int meta_add(struct session *s, const uint8_t *p, size_t n)
{
	struct ingest *ing = s->ing;
	if (s->meta_len + n > ing->conf.meta_header_max)
		return refuse(s, D4_R_META_HEADER_TOO_LARGE, NULL);
	if (n) {
		uint8_t *m = realloc(s->meta, s->meta_len + n);
		if (m == NULL)
			return refuse(s, D4_R_META_HEADER_TOO_LARGE, "out of memory");
		s->meta = m;
		memcpy(s->meta + s->meta_len, p, n);
		s->meta_len += n;
	}
	if (s->meta_len == 0)
		return 0;
	json_error_t err;
	json_t *j = json_loadb((const char *)s->meta, s->meta_len, JSON_REJECT_DUPLICATES, &err);
	if (j == NULL) {
		if (json_error_code(&err) == json_error_premature_end_of_input && !s->meta_done)
			return 0; /* the rest is in a later frame */
		return refuse(s, D4_R_META_HEADER_INVALID, err.text);
	}
	json_t *t = json_is_object(j) ? json_object_get(j, "type") : NULL;
	if (t == NULL || !json_is_string(t) || !d4_meta_type_name_ok(json_string_value(t))) {
		json_decref(j);
		return refuse(s, D4_R_META_HEADER_INVALID,
		              "not an object with a string \"type\" of 1-64 printable characters");
	}
	snprintf(s->meta_type, sizeof(s->meta_type), "%s", json_string_value(t));
	json_decref(j);
	if (!policy_meta_type_accepted(&ing->policy, s->meta_type))
		return refuse(s, D4_R_META_TYPE_NOT_ACCEPTED, s->meta_type);
	s->meta_done = true;
	struct d4_ipc_meta m = meta_msg(s);
	link_meta(ing->link, &m);
	return 0;
}

static int on_frame(struct session *s, const struct d4_event *ev)
{
	struct ingest *ing = s->ing;
	const struct d4_header *h = ev->hdr;

	if (!s->announced && announce(s) != 0)
		return -1;
	/* the frame goes on as received (meta header frames too: the stream stays whole) */
	link_frame(ing->link, s->id, ev->raw_header, ev->payload, ev->payload_len);
	struct pending *p = &s->pend[h->type == D4_TYPE_META_HEADER ? 0 : 1];
	p->type = h->type;
	p->packets++;
	p->bytes += ev->payload_len;
	ing->frames++;
	ing->bytes += ev->payload_len;
	if (h->type == D4_TYPE_META_HEADER && meta_add(s, ev->payload, ev->payload_len) != 0)
		return -1;
	if (s->rate_bps) {
		s->tokens -= (int64_t)ev->payload_len;
		if (s->tokens < 0 && !s->rate_paused) {
			s->rate_paused = true;
			if (s->reading) {
				uv_read_stop((uv_stream_t *)&s->tcp);
				s->reading = false;
			}
		}
	}
	return 0;
}

/* Runs the decoder over plaintext; -1 when the session was closed. */
static int on_plaintext(struct session *s, const uint8_t *p, size_t len)
{
	s->progress_ms = uv_now(s->ing->loop);
	for (;;) {
		struct d4_event ev;
		size_t n = d4_decoder_feed(&s->dec, p, len, &ev);
		p += n;
		len -= n;
		switch (ev.kind) {
		case D4_EV_NONE:
			return 0;
		case D4_EV_HEADER:
			if (check_header(s, ev.hdr) != 0)
				return -1;
			break;
		case D4_EV_FRAME:
			if (on_frame(s, &ev) != 0)
				return -1;
			break;
		case D4_EV_ERROR:
			if (!s->have_uuid && s->dec.hdr_have == D4_HEADER_SIZE) {
				memcpy(s->uuid, ev.hdr->uuid, D4_UUID_SIZE);
				d4_uuid_format(s->uuid, s->uuid_text);
				s->have_uuid = true;
			}
			return refuse(s, ev.reason, NULL);
		}
	}
}

static void keep_peer_cert(struct session *s)
{
	X509 *cert = SSL_get1_peer_certificate(s->tls.ssl);
	if (cert == NULL)
		return;
	unsigned int n = 0;
	if (X509_digest(cert, EVP_sha256(), s->cert_sha256, &n) == 1 && n == 32)
		s->has_cert = true;
	X509_free(cert);
}

/* End of the sensor's stream (EOF or close_notify). */
static void on_end(struct session *s)
{
	enum d4_decoder_position pos = d4_decoder_position(&s->dec);
	if (pos == D4_POS_BOUNDARY) {
		session_close(s, D4_OK);
		return;
	}
	/* a sensor that stops mid-frame (killed, network cut) is common: not a warning */
	d4_log(D4_LOG_INFO, "truncated", "uuid", uuid_or_dash(s), "peer", s->peer_text, "detail",
	       pos == D4_POS_HEADER ? "inside a header" : "inside a payload", NULL);
	session_close(s, D4_R_TRUNCATED);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct session *s = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)s->ing->read_buf, sizeof(s->ing->read_buf));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct session *s = stream->data;
	struct ingest *ing = s->ing;
	char e[256];

	if (nread == 0 || s->state == S_CLOSING)
		return;
	if (nread < 0) {
		if (nread == UV_EOF || nread == UV_ECONNRESET)
			on_end(s);
		else
			session_close(s, D4_R_TRUNCATED);
		link_flush(ing->link);
		return;
	}
	s->tls.in = (const uint8_t *)buf->base;
	s->tls.in_len = (size_t)nread;

	if (!s->tls.handshake_done) {
		int r = SSL_do_handshake(s->tls.ssl);
		if (r != 1) {
			int err = SSL_get_error(s->tls.ssl, r);
			tls_flush(s); /* a handshake message or an alert */
			if (err == SSL_ERROR_WANT_READ)
				return;
			d4_log(D4_LOG_NOTICE, "tls-failed", "peer", s->peer_text, "error",
			       tls_error_text(e, sizeof(e), "handshake failed"), NULL);
			ing->refused_conns++;
			session_close(s, D4_OK);
			return;
		}
		s->tls.handshake_done = true;
		s->state = S_OPEN;
		keep_peer_cert(s);
	}
	for (;;) {
		size_t got = 0;
		int r = SSL_read_ex(s->tls.ssl, ing->plain_buf, sizeof(ing->plain_buf), &got);
		if (r == 1) {
			if (on_plaintext(s, ing->plain_buf, got) != 0)
				break;
			continue;
		}
		int err = SSL_get_error(s->tls.ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			break;
		if (err == SSL_ERROR_ZERO_RETURN) {
			on_end(s);
			break;
		}
		d4_log(D4_LOG_NOTICE, "tls-failed", "uuid", uuid_or_dash(s), "peer", s->peer_text,
		       "error", tls_error_text(e, sizeof(e), "read failed"), NULL);
		session_close(s, D4_R_TRUNCATED);
		break;
	}
	tls_flush(s);
	link_flush(ing->link);
}

static void start_reading(struct session *s)
{
	if (s->reading || s->state == S_CLOSING || s->ing->paused || s->rate_paused)
		return;
	if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) == 0)
		s->reading = true;
}

void session_on_connection(uv_stream_t *server, int status)
{
	struct ingest *ing = server->data;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (status < 0) {
		d4_log(D4_LOG_WARN, "accept-failed", "error", uv_strerror(status), NULL);
		return;
	}
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return;
	s->ing = ing;
	if (uv_tcp_init(ing->loop, &s->tcp) != 0) {
		free(s);
		return;
	}
	s->tcp.data = s;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
		uv_close((uv_handle_t *)&s->tcp, closed_cb);
		return;
	}
	s->id = ing->instance ^ ++ing->next_session;
	s->opened_ms = s->progress_ms = uv_now(ing->loop);
	s->opened_s = now_s();
	s->max_payload = ing->conf.max_payload;
	list_add(ing, s);
	ing->accepted_conns++;
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    d4_ip_from_sockaddr((struct sockaddr *)&ss, s->peer) == 0) {
		char a[D4_IP_STR_MAX];
		d4_ip_format(s->peer, a, sizeof(a));
		s->port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(s->peer_text, sizeof(s->peer_text),
		         d4_ip_is_v4(s->peer) ? "%s:%u" : "[%s]:%u", a, s->port);
	} else {
		snprintf(s->peer_text, sizeof(s->peer_text), "unknown");
	}
	if (ing->n_sessions > ing->conf.max_connections) {
		d4_log(D4_LOG_WARN, "refused", "peer", s->peer_text, "reason", "too_many_connections",
		       NULL);
		ing->refused_conns++;
		session_close(s, D4_OK);
		return;
	}
	if (policy_addr_blocked(&ing->policy, s->peer)) {
		refuse(s, D4_R_ADDRESS_BLOCKED, NULL);
		return;
	}
	/* the decoder only enforces the hard ceiling; check_header() applies the
	 * server's or the sensor's own limit at the header, before any payload */
	struct d4_decoder_opts dopts = {.max_payload = INGEST_PAYLOAD_CEILING};
	d4_decoder_init(&s->dec, &dopts);
	if (tls_conn_init(&s->tls, &ing->tls) != 0) {
		session_close(s, D4_OK);
		return;
	}
	uv_tcp_keepalive(&s->tcp, 1, (unsigned)ing->conf.keepalive_s);
	start_reading(s);
}

/* ---- once a second ---- */

static void recheck_policy(struct session *s)
{
	struct ingest *ing = s->ing;
	const struct sensor_policy *sp = policy_sensor(&ing->policy, s->uuid);
	if (policy_addr_blocked(&ing->policy, s->peer)) {
		refuse(s, D4_R_ADDRESS_BLOCKED, NULL);
		return;
	}
	if (!s->have_uuid)
		return;
	if (policy_uuid_blocked(&ing->policy, s->uuid)) {
		refuse(s, D4_R_UUID_BLOCKED, NULL);
		return;
	}
	if (sp && sp->state == D4_SENSOR_REJECTED) {
		refuse(s, D4_R_SENSOR_REJECTED, NULL);
		return;
	}
	if (ing->conf.mode == MODE_REGISTRATION && (sp == NULL || sp->state != D4_SENSOR_APPROVED)) {
		refuse(s, sp ? D4_R_SENSOR_PENDING : D4_R_SENSOR_NOT_REGISTERED, "registration withdrawn");
		return;
	}
	if (!ing->policy.types[s->type]) {
		refuse(s, D4_R_TYPE_NOT_ACCEPTED, d4_type_name(s->type));
		return;
	}
	/* a new key applies from the next frame on */
	const uint8_t *key = sp && sp->key_len ? sp->key : ing->conf.shared_key;
	size_t key_len = sp && sp->key_len ? sp->key_len : ing->conf.shared_key_len;
	if (key_len)
		d4_decoder_set_key(&s->dec, key, key_len);
	s->rate_bps = sp ? sp->rate_limit_bps : 0;
	if (sp && sp->max_payload)
		s->max_payload = sp->max_payload;
}

void sessions_tick(struct ingest *ing, bool policy_reloaded)
{
	uint64_t now_ms = uv_now(ing->loop);
	uint64_t now = now_s();
	const struct ingest_conf *c = &ing->conf;
	struct session *next;

	for (struct session *s = ing->sessions; s; s = next) {
		next = s->next; /* s may close below */
		hand_over_stats(s, now);
		enum d4_decoder_position pos = d4_decoder_position(&s->dec);
		uint64_t idle = now_ms - s->progress_ms;
		if (s->state == S_HANDSHAKE || !s->have_uuid) {
			if (now_ms - s->opened_ms > c->header_timeout_ms && !s->have_uuid &&
			    pos != D4_POS_PAYLOAD) {
				refuse(s, D4_R_HEADER_TIMEOUT, s->state == S_HANDSHAKE
				                                       ? "TLS handshake not completed"
				                                       : "no complete header");
				continue;
			}
		} else if (pos == D4_POS_HEADER && idle > c->header_timeout_ms) {
			refuse(s, D4_R_HEADER_TIMEOUT, "header not completed");
			continue;
		}
		if (pos == D4_POS_PAYLOAD && idle > c->payload_timeout_ms) {
			refuse(s, D4_R_PAYLOAD_TIMEOUT, NULL);
			continue;
		}
		if (pos == D4_POS_BOUNDARY)
			d4_decoder_trim(&s->dec);
		if (s->have_uuid) {
			uint64_t kick = policy_kick_time(&ing->policy, s->uuid);
			if (kick && kick >= s->opened_s) {
				refuse(s, D4_R_KICKED, NULL);
				continue;
			}
		}
		if (s->claimed && !active_owns(ing->active, s->uuid, s->first_type, s->id)) {
			refuse(s, D4_R_DUPLICATE_SESSION, "replaced by a newer connection");
			continue;
		}
		if (policy_reloaded) {
			recheck_policy(s);
			if (s->state == S_CLOSING)
				continue;
		}
		if (s->rate_bps) {
			s->tokens += (int64_t)s->rate_bps;
			if (s->tokens > (int64_t)s->rate_bps)
				s->tokens = (int64_t)s->rate_bps;
			if (s->rate_paused && s->tokens >= 0) {
				s->rate_paused = false;
				start_reading(s);
			}
		} else if (s->rate_paused) {
			s->rate_paused = false;
			start_reading(s);
		}
	}
}

void sessions_set_paused(struct ingest *ing, bool paused)
{
	if (ing->paused == paused)
		return;
	ing->paused = paused;
	for (struct session *s = ing->sessions; s; s = s->next) {
		if (paused && s->reading) {
			uv_read_stop((uv_stream_t *)&s->tcp);
			s->reading = false;
		} else if (!paused) {
			start_reading(s);
		}
	}
}

void sessions_close_all(struct ingest *ing, enum d4_reason why)
{
	while (ing->sessions)
		session_close(ing->sessions, why);
}

void sessions_replay(struct ingest *ing)
{
	for (struct session *s = ing->sessions; s; s = s->next) {
		if (!s->announced)
			continue;
		link_replay_open(ing->link, &s->open_msg);
		if (s->meta_done) {
			struct d4_ipc_meta m = meta_msg(s);
			link_replay_meta(ing->link, &m);
		}
	}
}
