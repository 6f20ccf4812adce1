/*
 * d4_proto.c — the D4 v1 wire format: header codec, HMAC, streaming decoder.
 *
 * The decoder is a three-state machine (header, payload, failed) that never
 * reads past the chunk it is given. It validates a header the moment its 62nd
 * byte arrives, so an oversize or malformed frame is refused before a single
 * payload byte is buffered. Payload bytes go to the HMAC straight from the
 * caller's chunk; they are copied only when a frame spans chunks (the payload
 * has to be handed out whole), and not at all when the chunk holds it whole.
 *
 * HMAC goes through OpenSSL's EVP_MAC: keyed once per sensor, re-initialised
 * per frame with a NULL key (which restores the precomputed inner and outer
 * pads instead of re-hashing the key).
 */
#include "d4_proto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "d4_bytes.h"
#include "d4_uuid.h"

/* ---- types and reasons ---- */

bool d4_type_is_known(unsigned type)
{
	return (type >= D4_TYPE_PCAP && type <= D4_TYPE_PASSIVEDNS) ||
	       type == D4_TYPE_META_DEFINED;
}

bool d4_meta_type_name_ok(const char *name)
{
	size_t n = 0;
	if (name == NULL)
		return false;
	for (; name[n] != '\0'; n++)
		if (n >= 64 || (unsigned char)name[n] <= 0x20 || (unsigned char)name[n] >= 0x7f)
			return false;
	return n > 0;
}

const char *d4_type_name(unsigned type)
{
	switch (type) {
	case D4_TYPE_PCAP:
		return "pcap";
	case D4_TYPE_META_HEADER:
		return "meta-header";
	case D4_TYPE_LOG:
		return "log";
	case D4_TYPE_DNSCAP:
		return "dnscap";
	case D4_TYPE_PCAPNG:
		return "pcapng";
	case D4_TYPE_NDJSON:
		return "ndjson";
	case D4_TYPE_YAF:
		return "yaf";
	case D4_TYPE_PASSIVEDNS:
		return "passivedns";
	case D4_TYPE_META_DEFINED:
		return "meta-defined";
	default:
		return "unknown";
	}
}

static const struct {
	const char *name;
	const char *text;
} reasons[D4_R_COUNT] = {
	[D4_OK] = {"ok", "accepted"},
	[D4_R_BAD_VERSION] = {"bad_version", "protocol version is not 1"},
	[D4_R_UNKNOWN_TYPE] = {"unknown_type", "type is not one the protocol defines"},
	[D4_R_UUID_NOT_V4] = {"uuid_not_v4", "sensor uuid is not an RFC 4122 version 4 uuid"},
	[D4_R_PAYLOAD_TOO_LARGE] = {"payload_too_large", "payload size exceeds the limit"},
	[D4_R_HMAC_MISMATCH] = {"hmac_mismatch", "HMAC does not match the sensor's key"},
	[D4_R_TRUNCATED] = {"truncated", "stream ended inside a frame"},
	[D4_R_UUID_CHANGED] = {"uuid_changed", "uuid changed within a connection"},
	[D4_R_TYPE_NOT_ACCEPTED] = {"type_not_accepted", "type is not accepted by this server"},
	[D4_R_TYPE_CHANGED] = {"type_changed", "type changed within a connection (only 2 to 254 may)"},
	[D4_R_META_HEADER_MISSING] = {"meta_header_missing", "type 254 data without a type 2 meta header first"},
	[D4_R_META_HEADER_INVALID] = {"meta_header_invalid", "meta header is not one JSON object with a string \"type\""},
	[D4_R_META_HEADER_TOO_LARGE] = {"meta_header_too_large", "meta header exceeds its size limit"},
	[D4_R_META_TYPE_NOT_ACCEPTED] = {"meta_type_not_accepted", "meta-type is not accepted by this server"},
	[D4_R_SENSOR_NOT_REGISTERED] = {"sensor_not_registered", "sensor uuid is not registered"},
	[D4_R_SENSOR_PENDING] = {"sensor_pending", "sensor registration awaits approval"},
	[D4_R_SENSOR_REJECTED] = {"sensor_rejected", "sensor registration was rejected"},
	[D4_R_UUID_BLOCKED] = {"uuid_blocked", "sensor uuid is on the blocklist"},
	[D4_R_ADDRESS_BLOCKED] = {"address_blocked", "peer address is on the blocklist"},
	[D4_R_TEMPORARY_BAN] = {"temporary_ban", "sensor is temporarily banned after a kick"},
	[D4_R_DUPLICATE_SESSION] = {"duplicate_session", "a connection for this uuid and type is already open"},
	[D4_R_HEADER_TIMEOUT] = {"header_timeout", "no complete header within the time limit"},
	[D4_R_TIMESTAMP_SKEW] = {"timestamp_skew", "timestamp outside the accepted window"},
	[D4_R_CLIENT_CERT] = {"client_cert", "client certificate missing or not the one pinned for this sensor"},
	[D4_R_RATE_LIMIT] = {"rate_limit", "sensor exceeded its rate limit"},
	[D4_R_KICKED] = {"kicked", "connection closed by an operator"},
	[D4_R_PAYLOAD_TIMEOUT] = {"payload_timeout", "a payload stopped arriving before it was complete"},
};

const char *d4_reason_name(enum d4_reason r)
{
	if ((unsigned)r >= D4_R_COUNT)
		return "invalid";
	return reasons[r].name;
}

const char *d4_reason_text(enum d4_reason r)
{
	if ((unsigned)r >= D4_R_COUNT)
		return "invalid reason";
	return reasons[r].text;
}

int d4_reason_from_name(const char *name)
{
	for (int i = 0; i < D4_R_COUNT; i++)
		if (strcmp(reasons[i].name, name) == 0)
			return i;
	return -1;
}

/* ---- header codec ---- */

void d4_header_encode(const struct d4_header *h, uint8_t out[D4_HEADER_SIZE])
{
	out[D4_OFF_VERSION] = h->version;
	out[D4_OFF_TYPE] = h->type;
	memcpy(out + D4_OFF_UUID, h->uuid, D4_UUID_SIZE);
	d4_put_le64(out + D4_OFF_TIMESTAMP, h->timestamp);
	memcpy(out + D4_OFF_HMAC, h->hmac, D4_HMAC_SIZE);
	d4_put_le32(out + D4_OFF_SIZE, h->size);
}

void d4_header_decode(const uint8_t in[D4_HEADER_SIZE], struct d4_header *h)
{
	h->version = in[D4_OFF_VERSION];
	h->type = in[D4_OFF_TYPE];
	memcpy(h->uuid, in + D4_OFF_UUID, D4_UUID_SIZE);
	h->timestamp = d4_le64(in + D4_OFF_TIMESTAMP);
	memcpy(h->hmac, in + D4_OFF_HMAC, D4_HMAC_SIZE);
	h->size = d4_le32(in + D4_OFF_SIZE);
}

enum d4_reason d4_header_validate(const struct d4_header *h, uint32_t max_payload)
{
	if (h->version != D4_VERSION)
		return D4_R_BAD_VERSION;
	if (!d4_type_is_known(h->type))
		return D4_R_UNKNOWN_TYPE;
	if (!d4_uuid_is_v4(h->uuid))
		return D4_R_UUID_NOT_V4;
	if (h->size > max_payload)
		return D4_R_PAYLOAD_TOO_LARGE;
	return D4_OK;
}

/* ---- HMAC ---- */

struct d4_hmac {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
	uint8_t key_digest[32]; /* to notice an unchanged key without keeping it twice */
	bool keyed;
};

struct d4_hmac *d4_hmac_new(const uint8_t *key, size_t key_len)
{
	struct d4_hmac *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (m->mac == NULL)
		goto err;
	m->ctx = EVP_MAC_CTX_new(m->mac);
	if (m->ctx == NULL)
		goto err;
	if (d4_hmac_set_key(m, key, key_len) != 0)
		goto err;
	return m;
err:
	d4_hmac_free(m);
	return NULL;
}

void d4_hmac_free(struct d4_hmac *m)
{
	if (m == NULL)
		return;
	EVP_MAC_CTX_free(m->ctx);
	EVP_MAC_free(m->mac);
	OPENSSL_cleanse(m->key_digest, sizeof(m->key_digest));
	free(m);
}

int d4_hmac_set_key(struct d4_hmac *m, const uint8_t *key, size_t key_len)
{
	uint8_t digest[32];
	unsigned int dlen = 0;
	static const uint8_t empty[1];

	if (key == NULL)
		key = empty; /* an empty key is legal HMAC; OpenSSL wants a pointer */
	if (!EVP_Digest(key, key_len, digest, &dlen, EVP_sha256(), NULL))
		return -1;
	if (m->keyed && CRYPTO_memcmp(digest, m->key_digest, sizeof(digest)) == 0)
		return 0;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (!EVP_MAC_init(m->ctx, key, key_len, params)) {
		m->keyed = false;
		return -1;
	}
	memcpy(m->key_digest, digest, sizeof(digest));
	OPENSSL_cleanse(digest, sizeof(digest));
	m->keyed = true;
	return 0;
}

int d4_hmac_begin(struct d4_hmac *m, const uint8_t header[D4_HEADER_SIZE])
{
	static const uint8_t zeros[D4_HMAC_SIZE];

	if (!m->keyed || !EVP_MAC_init(m->ctx, NULL, 0, NULL))
		return -1;
	if (!EVP_MAC_update(m->ctx, header, D4_OFF_HMAC) ||
	    !EVP_MAC_update(m->ctx, zeros, D4_HMAC_SIZE) ||
	    !EVP_MAC_update(m->ctx, header + D4_OFF_SIZE, D4_HEADER_SIZE - D4_OFF_SIZE))
		return -1;
	return 0;
}

int d4_hmac_update(struct d4_hmac *m, const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	return EVP_MAC_update(m->ctx, data, len) ? 0 : -1;
}

int d4_hmac_final(struct d4_hmac *m, uint8_t out[D4_HMAC_SIZE])
{
	size_t outl = 0;
	if (!EVP_MAC_final(m->ctx, out, &outl, D4_HMAC_SIZE) || outl != D4_HMAC_SIZE)
		return -1;
	return 0;
}

bool d4_hmac_equal(const uint8_t a[D4_HMAC_SIZE], const uint8_t b[D4_HMAC_SIZE])
{
	return CRYPTO_memcmp(a, b, D4_HMAC_SIZE) == 0;
}

int d4_frame_sign(struct d4_hmac *m, struct d4_header *h, const uint8_t *payload, size_t len,
                  uint8_t out[D4_HEADER_SIZE])
{
	if (len > UINT32_MAX)
		return -1;
	h->size = (uint32_t)len;
	d4_header_encode(h, out);
	if (d4_hmac_begin(m, out) != 0 || d4_hmac_update(m, payload, len) != 0 ||
	    d4_hmac_final(m, h->hmac) != 0)
		return -1;
	memcpy(out + D4_OFF_HMAC, h->hmac, D4_HMAC_SIZE);
	return 0;
}

bool d4_frame_verify(struct d4_hmac *m, const uint8_t header[D4_HEADER_SIZE],
                     const uint8_t *payload, size_t len)
{
	uint8_t got[D4_HMAC_SIZE];
	if (d4_hmac_begin(m, header) != 0 || d4_hmac_update(m, payload, len) != 0 ||
	    d4_hmac_final(m, got) != 0)
		return false;
	return d4_hmac_equal(got, header + D4_OFF_HMAC);
}

/* ---- streaming decoder ---- */

enum {
	ST_HEADER = 0,     /* gathering the 62 header bytes */
	ST_PAYLOAD_START,  /* header reported; the key for this frame is now known */
	ST_PAYLOAD,        /* gathering payload bytes */
	ST_FAILED,         /* refused; stays so */
};

/* A buffer at most this large is kept between frames; a larger one is given
 * back when the next frame does not need it. */
#define KEEP_BUFFER (256u * 1024u)

void d4_decoder_init(struct d4_decoder *d, const struct d4_decoder_opts *opts)
{
	memset(d, 0, sizeof(*d));
	if (opts != NULL)
		d->opts = *opts;
	if (d->opts.max_payload == 0)
		d->opts.max_payload = D4_DEFAULT_MAX_PAYLOAD;
	d->state = ST_HEADER;
}

void d4_decoder_free(struct d4_decoder *d)
{
	d4_hmac_free(d->mac);
	if (d->key) {
		OPENSSL_cleanse(d->key, d->key_len);
		free(d->key);
	}
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

int d4_decoder_set_key(struct d4_decoder *d, const uint8_t *key, size_t key_len)
{
	if (d->key && key && key_len == d->key_len && CRYPTO_memcmp(key, d->key, key_len) == 0)
		return 0; /* unchanged */
	if (d->key) {
		OPENSSL_cleanse(d->key, d->key_len);
		free(d->key);
		d->key = NULL;
		d->key_len = 0;
	}
	if (key == NULL) {
		d4_hmac_free(d->mac);
		d->mac = NULL;
		return 0;
	}
	d->key = malloc(key_len ? key_len : 1);
	if (d->key == NULL)
		return -1;
	memcpy(d->key, key, key_len);
	d->key_len = key_len;
	if (d->mac == NULL)
		return 0; /* keyed when the next frame starts */
	return d4_hmac_set_key(d->mac, key, key_len);
}

void d4_decoder_trim(struct d4_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->buf_cap = 0;
	/* between frames the HMAC context holds nothing: rebuilt from the key
	 * when the next frame starts (two SHA-256 blocks) */
	if (d->state == ST_HEADER && d->hdr_have == 0) {
		d4_hmac_free(d->mac);
		d->mac = NULL;
	}
}

static size_t fail(struct d4_decoder *d, enum d4_reason r, size_t consumed, struct d4_event *ev)
{
	d->state = ST_FAILED;
	d->error = r;
	d->bytes_in += consumed;
	ev->kind = D4_EV_ERROR;
	ev->reason = r;
	return consumed;
}

/* Makes room for the whole payload of the current frame. */
static int reserve(struct d4_decoder *d, size_t need)
{
	if (d->buf_cap >= need && !(d->buf_cap > KEEP_BUFFER && need <= KEEP_BUFFER))
		return 0;
	size_t cap = need > KEEP_BUFFER ? need : KEEP_BUFFER;
	if (need <= 4096)
		cap = 4096;
	uint8_t *b = malloc(cap);
	if (b == NULL)
		return -1;
	free(d->buf);
	d->buf = b;
	d->buf_cap = cap;
	return 0;
}

size_t d4_decoder_feed(struct d4_decoder *d, const uint8_t *buf, size_t len, struct d4_event *ev)
{
	size_t used = 0;

	memset(ev, 0, sizeof(*ev));
	if (d->state == ST_FAILED) {
		ev->kind = D4_EV_ERROR;
		ev->reason = d->error;
		ev->hdr = &d->hdr;
		return 0;
	}
	ev->hdr = &d->hdr;
	ev->raw_header = d->hdr_raw;

	if (d->state == ST_HEADER) {
		size_t take = D4_HEADER_SIZE - d->hdr_have;
		if (take > len)
			take = len;
		if (take > 0)
			memcpy(d->hdr_raw + d->hdr_have, buf, take);
		d->hdr_have += take;
		used += take;
		if (d->hdr_have < D4_HEADER_SIZE) {
			d->bytes_in += used;
			ev->kind = D4_EV_NONE;
			ev->hdr = NULL;
			ev->raw_header = NULL;
			return used;
		}
		d4_header_decode(d->hdr_raw, &d->hdr);
		enum d4_reason r = d4_header_validate(&d->hdr, d->opts.max_payload);
		if (r != D4_OK)
			return fail(d, r, used, ev);
		d->payload_have = 0;
		d->state = ST_PAYLOAD_START;
		d->bytes_in += used;
		ev->kind = D4_EV_HEADER;
		return used;
	}

	if (d->state == ST_PAYLOAD_START) {
		if (d->key && d->mac == NULL && (d->mac = d4_hmac_new(d->key, d->key_len)) == NULL)
			return fail(d, D4_R_HMAC_MISMATCH, 0, ev);
		d->mac_active = d->key != NULL;
		if (d->mac_active && d4_hmac_begin(d->mac, d->hdr_raw) != 0)
			return fail(d, D4_R_HMAC_MISMATCH, 0, ev);
		d->state = ST_PAYLOAD;
	}

	/* ST_PAYLOAD */
	size_t size = d->hdr.size;
	size_t take = size - d->payload_have;
	if (take > len)
		take = len;
	if (take == 0 && size > d->payload_have) {
		ev->kind = D4_EV_NONE; /* nothing new: do not allocate before a byte arrives */
		return used;
	}
	if (d->mac_active && d4_hmac_update(d->mac, buf, take) != 0)
		return fail(d, D4_R_HMAC_MISMATCH, 0, ev);

	const uint8_t *payload;
	if (d->payload_have == 0 && take == size) {
		payload = size ? buf : d->hdr_raw; /* whole payload in this chunk: no copy */
	} else {
		/* out of memory for a payload within the limit: refuse the
		 * stream rather than the process */
		if (d->payload_have == 0 && reserve(d, size) != 0)
			return fail(d, D4_R_PAYLOAD_TOO_LARGE, 0, ev);
		memcpy(d->buf + d->payload_have, buf, take);
		payload = d->buf;
	}
	d->payload_have += take;
	used += take;
	d->bytes_in += used;
	if (d->payload_have < size) {
		ev->kind = D4_EV_NONE;
		return used;
	}

	ev->hmac = D4_HMAC_UNCHECKED;
	if (d->mac_active) {
		uint8_t got[D4_HMAC_SIZE];
		if (d4_hmac_final(d->mac, got) != 0)
			return fail(d, D4_R_HMAC_MISMATCH, 0, ev);
		ev->hmac = d4_hmac_equal(got, d->hdr.hmac) ? D4_HMAC_OK : D4_HMAC_BAD;
		if (ev->hmac == D4_HMAC_BAD && !d->opts.report_bad_hmac) {
			d->bytes_in -= used; /* fail() counts them */
			return fail(d, D4_R_HMAC_MISMATCH, used, ev);
		}
	}
	ev->kind = D4_EV_FRAME;
	ev->payload = payload;
	ev->payload_len = size;
	d->frames++;
	d->state = ST_HEADER;
	d->hdr_have = 0;
	d->payload_have = 0;
	return used;
}

enum d4_decoder_position d4_decoder_position(const struct d4_decoder *d)
{
	switch (d->state) {
	case ST_HEADER:
		return d->hdr_have ? D4_POS_HEADER : D4_POS_BOUNDARY;
	case ST_FAILED:
		return D4_POS_FAILED;
	default:
		return D4_POS_PAYLOAD;
	}
}

enum d4_reason d4_decoder_finish(const struct d4_decoder *d)
{
	if (d->state == ST_FAILED)
		return d->error;
	if (d->state == ST_HEADER && d->hdr_have == 0)
		return D4_OK;
	return D4_R_TRUNCATED;
}
