/*
 * tls_conn.c — the per-connection TLS handshake tracker (see tls_conn.h for the contract).
 *
 * Each direction runs two small push parsers stacked: the record layer (5-byte header, then
 * `rleft` payload bytes) and, inside handshake records, the handshake layer (4-byte header,
 * then `hlen` body bytes). Both keep only counters and a header accumulator, so bytes we do
 * not want (other handshake messages, heartbeats) are stepped over by arithmetic. A wanted
 * message (ClientHello, ServerHello, Certificate) is parsed in place when one feed call holds
 * it whole; otherwise its bytes are copied into the direction's buffer, allocated once at the
 * announced length after that length passed the limit check. A Certificate message must
 * outlive the call, so it is always kept: the direction buffer is handed over, or the bytes
 * copied once.
 *
 * Where a direction stops (it turns "finished" and ignores every later byte):
 *  - application data or an alert record;
 *  - ChangeCipherSpec, after which handshake records are encrypted — except that a record
 *    holding exactly one ClientHello (client) or ServerHello (server) is still read, which is
 *    the TLS 1.3 HelloRetryRequest flow with middlebox compatibility (RFC 8446 D.4);
 *  - server: ServerHelloDone, or a ServerHello selecting TLS 1.3 (the rest is encrypted).
 * The connection is over when the server side stopped and the client side has nothing more to
 * give (a ClientHello seen and no HelloRetryRequest waiting for the second one, or stopped).
 */
#include "tls_conn.h"

#include <stdlib.h>
#include <string.h>

#define REC_CCS 20
#define REC_ALERT 21
#define REC_HANDSHAKE 22
#define REC_APPDATA 23
#define REC_HEARTBEAT 24
#define REC_MAX_LEN (16384u + 2048u)

#define HS_CLIENT_HELLO 1
#define HS_SERVER_HELLO 2
#define HS_CERTIFICATE 11
#define HS_SERVER_HELLO_DONE 14

enum dir_phase { PH_START, PH_RECORDS, PH_FINISHED, PH_FAILED };

struct dir_state {
	enum dir_phase phase;
	uint8_t rhdr[5];
	uint8_t rhdr_got;
	uint8_t rtype;
	uint32_t rlen;  /* current record's length */
	uint32_t rleft; /* its payload bytes still to come */
	bool after_ccs;
	/* handshake layer */
	uint8_t hhdr[4];
	uint8_t hhdr_got;
	bool hmsg_at_record_start;
	uint8_t htype;
	uint32_t hlen;
	uint32_t hgot;
	bool hwant;     /* this message is one we parse */
	bool hbuffered; /* its bytes are being copied into buf */
	uint8_t *buf;
	size_t cap;
};

struct tls_conn {
	struct tls_limits lim;
	enum tls_status status;
	bool seen_tls; /* a valid record header in either direction */
	struct dir_state d[2];
	struct tls_conn_info info;
	struct tls_der *certs; /* max_certs entries */
	uint8_t *cert_msg;     /* the kept Certificate message */
	size_t cert_msg_len;
};

struct tls_conn *tls_conn_new(const struct tls_limits *lim)
{
	struct tls_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	if (lim)
		c->lim = *lim;
	if (!c->lim.max_hello)
		c->lim.max_hello = TLS_DEFAULT_MAX_HELLO;
	if (!c->lim.max_certificate)
		c->lim.max_certificate = TLS_DEFAULT_MAX_CERTIFICATE;
	if (!c->lim.max_certs)
		c->lim.max_certs = TLS_DEFAULT_MAX_CERTS;
	c->status = TLS_MORE;
	return c;
}

static void dir_release(struct dir_state *d)
{
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < 2; i++)
		dir_release(&c->d[i]);
	for (unsigned i = 0; i < c->info.n_client_hello; i++)
		tls_client_hello_free(&c->info.client_hello[i]);
	tls_server_hello_free(&c->info.server_hello);
	tls_server_hello_free(&c->info.hello_retry_request);
	free(c->certs);
	free(c->cert_msg);
	free(c);
}

enum tls_status tls_conn_status(const struct tls_conn *c)
{
	return c->status;
}

const struct tls_conn_info *tls_conn_info(const struct tls_conn *c)
{
	return &c->info;
}

enum tls_reason tls_conn_reason(const struct tls_conn *c)
{
	return c->info.reason;
}

size_t tls_conn_mem(const struct tls_conn *c)
{
	return sizeof *c + c->d[0].cap + c->d[1].cap + c->cert_msg_len +
	       (c->certs ? c->lim.max_certs * sizeof *c->certs : 0);
}

static void note_reason(struct tls_conn *c, enum tls_dir dir, enum tls_reason r)
{
	if (c->info.reason == TLS_R_OK) {
		c->info.reason = r;
		c->info.reason_dir = dir;
	}
}

static void dir_fail(struct tls_conn *c, enum tls_dir dir, enum tls_reason r)
{
	note_reason(c, dir, r);
	c->d[dir].phase = PH_FAILED;
	dir_release(&c->d[dir]);
}

static void dir_finish(struct tls_conn *c, enum tls_dir dir)
{
	c->d[dir].phase = PH_FINISHED;
	dir_release(&c->d[dir]);
}

static bool dir_stopped(const struct tls_conn *c, enum tls_dir dir)
{
	return c->d[dir].phase == PH_FINISHED || c->d[dir].phase == PH_FAILED;
}

/* The server answered with a HelloRetryRequest and the second ClientHello is still due. */
static bool hrr_pending_client(const struct tls_conn *c)
{
	return c->info.have_hello_retry && c->info.n_client_hello < 2;
}

static void update_status(struct tls_conn *c)
{
	if (c->status != TLS_MORE)
		return;
	bool client_done = dir_stopped(c, TLS_DIR_CLIENT) ||
			   (c->info.n_client_hello >= 1 && !hrr_pending_client(c));
	if (dir_stopped(c, TLS_DIR_SERVER) && client_done) {
		c->status = c->info.reason == TLS_R_OK ? TLS_DONE : TLS_ERROR;
		dir_release(&c->d[0]);
		dir_release(&c->d[1]);
	}
}

/* ---- complete handshake messages ---- */

static void on_certificate(struct tls_conn *c, const uint8_t *body, size_t len, uint8_t *owned)
{
	/* Keep the first Certificate message only (a second one is a client's or nonsense). */
	if (c->cert_msg) {
		free(owned);
		return;
	}
	const uint8_t *p = body;
	if (len < 3 || (size_t)(p[0] << 16 | p[1] << 8 | p[2]) != len - 3) {
		free(owned);
		dir_fail(c, TLS_DIR_SERVER, TLS_R_BAD_CERT_LIST);
		return;
	}
	uint8_t *msg = owned;
	if (!msg) {
		msg = malloc(len);
		if (!msg) {
			dir_fail(c, TLS_DIR_SERVER, TLS_R_NOMEM);
			return;
		}
		memcpy(msg, body, len);
	}
	c->certs = calloc(c->lim.max_certs, sizeof *c->certs);
	if (!c->certs) {
		free(msg);
		dir_fail(c, TLS_DIR_SERVER, TLS_R_NOMEM);
		return;
	}
	c->cert_msg = msg;
	c->cert_msg_len = len;
	size_t off = 3, n = 0;
	while (off < len) {
		if (len - off < 3) {
			dir_fail(c, TLS_DIR_SERVER, TLS_R_BAD_CERT_LIST);
			break;
		}
		size_t cl = (size_t)msg[off] << 16 | (size_t)msg[off + 1] << 8 | msg[off + 2];
		off += 3;
		if (cl == 0 || cl > len - off) {
			dir_fail(c, TLS_DIR_SERVER, TLS_R_BAD_CERT_LIST);
			break;
		}
		if (n < c->lim.max_certs) {
			c->certs[n].der = msg + off;
			c->certs[n].len = cl;
			n++;
		} else if (!c->info.certs_truncated) {
			c->info.certs_truncated = true;
			note_reason(c, TLS_DIR_SERVER, TLS_R_TOO_MANY_CERTS);
		}
		off += cl;
	}
	/* What was split before a malformed entry stays usable: each DER is whole. */
	c->info.n_certs = n;
	c->info.certs = c->certs;
}

static void on_message(struct tls_conn *c, enum tls_dir dir, uint8_t type, const uint8_t *body,
		       size_t len, uint8_t *owned)
{
	struct tls_conn_info *in = &c->info;
	enum tls_reason r;
	if (dir == TLS_DIR_CLIENT) {
		if (type != HS_CLIENT_HELLO)
			return;
		if (in->n_client_hello >= 2) {
			dir_fail(c, dir, TLS_R_TOO_MANY_HELLOS);
			return;
		}
		r = tls_client_hello_parse(body, len, &in->client_hello[in->n_client_hello]);
		if (r != TLS_R_OK) {
			dir_fail(c, dir, r);
			return;
		}
		in->n_client_hello++;
		return;
	}
	if (type == HS_CERTIFICATE) {
		on_certificate(c, body, len, owned);
		return;
	}
	if (type == HS_SERVER_HELLO_DONE) {
		dir_finish(c, dir);
		return;
	}
	if (type != HS_SERVER_HELLO)
		return;
	struct tls_server_hello sh;
	r = tls_server_hello_parse(body, len, &sh);
	if (r != TLS_R_OK) {
		dir_fail(c, dir, r);
		return;
	}
	if (sh.hello_retry) {
		if (in->have_hello_retry || in->have_server_hello) {
			tls_server_hello_free(&sh);
			dir_fail(c, dir, TLS_R_TOO_MANY_HELLOS);
			return;
		}
		in->hello_retry_request = sh;
		in->have_hello_retry = true;
		return;
	}
	if (in->have_server_hello) {
		tls_server_hello_free(&sh);
		dir_fail(c, dir, TLS_R_TOO_MANY_HELLOS);
		return;
	}
	in->server_hello = sh;
	in->have_server_hello = true;
	if (sh.version == 0x0304)
		dir_finish(c, dir); /* everything after a TLS 1.3 ServerHello is encrypted */
}

/* ---- the handshake layer: n payload bytes of a handshake record ---- */

static void handshake_bytes(struct tls_conn *c, enum tls_dir dir, const uint8_t *p, size_t n)
{
	struct dir_state *d = &c->d[dir];
	while (n > 0 && d->phase == PH_RECORDS) {
		if (d->hhdr_got < 4) {
			if (d->hhdr_got == 0)
				d->hmsg_at_record_start = d->rleft + n == d->rlen;
			size_t k = 4u - d->hhdr_got;
			if (k > n)
				k = n;
			memcpy(d->hhdr + d->hhdr_got, p, k);
			d->hhdr_got = (uint8_t)(d->hhdr_got + k);
			p += k;
			n -= k;
			if (d->hhdr_got < 4)
				return;
			d->htype = d->hhdr[0];
			d->hlen = (uint32_t)d->hhdr[1] << 16 | (uint32_t)d->hhdr[2] << 8 | d->hhdr[3];
			d->hgot = 0;
			d->hbuffered = false;
			uint8_t hello = dir == TLS_DIR_CLIENT ? HS_CLIENT_HELLO : HS_SERVER_HELLO;
			if (d->after_ccs) {
				/* Encrypted unless exactly one hello fills the record (see top). */
				if (d->htype != hello || !d->hmsg_at_record_start ||
				    d->hlen + 4 != d->rlen) {
					dir_finish(c, dir);
					return;
				}
			}
			if (dir == TLS_DIR_CLIENT)
				d->hwant = d->htype == HS_CLIENT_HELLO;
			else
				d->hwant = d->htype == HS_SERVER_HELLO || d->htype == HS_CERTIFICATE ||
					   d->htype == HS_SERVER_HELLO_DONE;
			if (d->hwant) {
				uint32_t max = d->htype == HS_CERTIFICATE ? c->lim.max_certificate
									  : c->lim.max_hello;
				if (d->hlen > max) {
					dir_fail(c, dir, d->htype == HS_CERTIFICATE
								 ? TLS_R_CERT_TOO_LARGE
								 : TLS_R_HELLO_TOO_LARGE);
					return;
				}
			}
			if (d->hlen == 0) {
				d->hhdr_got = 0;
				if (d->hwant)
					on_message(c, dir, d->htype, p, 0, NULL);
				continue;
			}
		}
		size_t k = d->hlen - d->hgot;
		if (k > n)
			k = n;
		if (d->hwant) {
			if (d->hgot == 0 && k == d->hlen) {
				/* whole in this call: parse in place */
				d->hhdr_got = 0;
				on_message(c, dir, d->htype, p, k, NULL);
				p += k;
				n -= k;
				continue;
			}
			if (!d->hbuffered) {
				if (d->cap < d->hlen) {
					free(d->buf);
					d->buf = malloc(d->hlen);
					d->cap = d->buf ? d->hlen : 0;
					if (!d->buf) {
						dir_fail(c, dir, TLS_R_NOMEM);
						return;
					}
				}
				d->hbuffered = true;
			}
			memcpy(d->buf + d->hgot, p, k);
		}
		d->hgot += (uint32_t)k;
		p += k;
		n -= k;
		if (d->hgot == d->hlen) {
			d->hhdr_got = 0;
			d->hgot = 0;
			if (d->hwant) {
				uint8_t *owned = NULL;
				if (d->htype == HS_CERTIFICATE) { /* hand the buffer over */
					owned = d->buf;
					d->buf = NULL;
					d->cap = 0;
				}
				on_message(c, dir, d->htype, owned ? owned : d->buf, d->hlen, owned);
			}
		}
	}
}

/* ---- the record layer ---- */

static bool looks_sslv2_hello(const uint8_t *h)
{
	/* 2-byte header with the high bit set, then msg_type 1 and a 3.x or 0.2 version */
	return (h[0] & 0x80) && h[2] == 1 && (h[3] == 3 || (h[3] == 0 && h[4] == 2));
}

/* Checks a complete record header; returns TLS_R_OK or the reason. */
static enum tls_reason check_record(struct tls_conn *c, struct dir_state *d)
{
	const uint8_t *h = d->rhdr;
	uint16_t len = (uint16_t)(h[3] << 8 | h[4]);
	if (h[0] < REC_CCS || h[0] > REC_HEARTBEAT || h[1] != 3 || h[2] > 4) {
		if (d->phase == PH_START && looks_sslv2_hello(h))
			return TLS_R_SSLV2;
		return d->phase == PH_START ? TLS_R_NOT_TLS : TLS_R_BAD_RECORD;
	}
	(void)c;
	if (len > REC_MAX_LEN)
		return d->phase == PH_START ? TLS_R_NOT_TLS : TLS_R_RECORD_TOO_LONG;
	if (len == 0 && h[0] == REC_HANDSHAKE)
		return TLS_R_BAD_HANDSHAKE;
	return TLS_R_OK;
}

/* A refusal on the very first header of a direction, while nothing in the connection looked
 * like TLS, ends the whole connection as NOT_TLS. */
static void record_refused(struct tls_conn *c, enum tls_dir dir, enum tls_reason r)
{
	if ((r == TLS_R_NOT_TLS || r == TLS_R_SSLV2) && !c->seen_tls) {
		note_reason(c, dir, r);
		c->d[0].phase = c->d[1].phase = PH_FAILED;
		dir_release(&c->d[0]);
		dir_release(&c->d[1]);
		c->status = TLS_NOT_TLS;
		return;
	}
	dir_fail(c, dir, r);
}

/* Fast reject on the first one or two bytes of a direction, before a whole header is in. */
static bool early_not_tls(const struct dir_state *d)
{
	if (d->phase != PH_START)
		return false;
	uint8_t t = d->rhdr[0];
	if ((t < REC_CCS || t > REC_HEARTBEAT) && !(t & 0x80))
		return true;
	return d->rhdr_got >= 2 && !(t & 0x80) && d->rhdr[1] != 3;
}

static void on_record_header(struct tls_conn *c, enum tls_dir dir)
{
	struct dir_state *d = &c->d[dir];
	enum tls_reason r = check_record(c, d);
	if (r != TLS_R_OK) {
		record_refused(c, dir, r);
		return;
	}
	if (d->phase == PH_START && dir == TLS_DIR_CLIENT)
		c->info.record_version = (uint16_t)(d->rhdr[1] << 8 | d->rhdr[2]);
	d->phase = PH_RECORDS;
	c->seen_tls = true;
	d->rhdr_got = 0;
	d->rtype = d->rhdr[0];
	d->rlen = d->rleft = (uint32_t)(d->rhdr[3] << 8 | d->rhdr[4]);
	if (d->hhdr_got) {
		/* a handshake message was cut by a record of another type */
		if (d->rtype != REC_HANDSHAKE) {
			dir_fail(c, dir, TLS_R_BAD_HANDSHAKE);
			return;
		}
	}
	switch (d->rtype) {
	case REC_APPDATA:
	case REC_ALERT:
		dir_finish(c, dir);
		break;
	case REC_CCS:
		d->after_ccs = true;
		break;
	default:
		break;
	}
}

enum tls_status tls_conn_feed(struct tls_conn *c, enum tls_dir dir, const uint8_t *data,
			      size_t len)
{
	if (c->status != TLS_MORE || (dir != TLS_DIR_CLIENT && dir != TLS_DIR_SERVER))
		return c->status;
	struct dir_state *d = &c->d[dir];
	const uint8_t *p = data, *end = data + len;
	while (p < end && (d->phase == PH_START || d->phase == PH_RECORDS)) {
		if (d->rleft == 0) {
			d->rhdr[d->rhdr_got++] = *p++;
			if (early_not_tls(d)) {
				record_refused(c, dir, TLS_R_NOT_TLS);
				break;
			}
			/* the rest of the header in one step when it is there */
			while (d->rhdr_got < 5 && p < end)
				d->rhdr[d->rhdr_got++] = *p++;
			if (d->rhdr_got < 5) {
				if (early_not_tls(d))
					record_refused(c, dir, TLS_R_NOT_TLS);
				break;
			}
			on_record_header(c, dir);
			continue;
		}
		size_t k = (size_t)(end - p);
		if (k > d->rleft)
			k = d->rleft;
		d->rleft -= (uint32_t)k; /* before handshake_bytes: it reads rleft + k */
		if (d->rtype == REC_HANDSHAKE)
			handshake_bytes(c, dir, p, k);
		p += k;
	}
	update_status(c);
	return c->status;
}
