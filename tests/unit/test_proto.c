/*
 * test_proto.c — the D4 wire format: the published vector, every refusal
 * reason, HMAC tampering, and the streaming decoder at every split point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "d4_bytes.h"
#include "d4_proto.h"
#include "d4_uuid.h"

static const char vector_key[] = "private key to change";
static const uint8_t vector_uuid[16] = {0xcd, 0x98, 0x0d, 0x75, 0xdc, 0xf1, 0x47, 0xda,
                                        0xbb, 0x60, 0xaa, 0xbe, 0x94, 0xfe, 0xa6, 0xb2};

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *buf = malloc(1 << 16);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

static uint8_t *vector_a(size_t *len)
{
	char path[4096];
	const char *dir = getenv("D4_TEST_DATA");
	snprintf(path, sizeof(path), "%s/vector-A.d4", dir ? dir : "tests/data");
	return read_file(path, len);
}

static struct d4_hmac *key_mac(const char *key)
{
	struct d4_hmac *m = d4_hmac_new((const uint8_t *)key, strlen(key));
	assert_non_null(m);
	return m;
}

/* Appends one signed frame to buf; returns the new length. */
static size_t put_frame(uint8_t *buf, size_t at, struct d4_hmac *m, uint8_t type,
                        const uint8_t *payload, size_t len)
{
	struct d4_header h = {.version = 1, .type = type, .timestamp = 1700000000u + at};
	memcpy(h.uuid, vector_uuid, 16);
	assert_int_equal(d4_frame_sign(m, &h, payload, len, buf + at), 0);
	memcpy(buf + at + D4_HEADER_SIZE, payload, len);
	return at + D4_HEADER_SIZE + len;
}

/* ---- the published vector ---- */

static void test_vector_encode(void **state)
{
	(void)state;
	size_t len;
	uint8_t *want = vector_a(&len);
	assert_int_equal(len, D4_HEADER_SIZE + 4);

	struct d4_hmac *m = key_mac(vector_key);
	struct d4_header h = {.version = 1, .type = 1, .timestamp = 1629453011};
	memcpy(h.uuid, vector_uuid, 16);
	uint8_t out[D4_HEADER_SIZE];
	assert_int_equal(d4_frame_sign(m, &h, (const uint8_t *)"blah", 4, out), 0);
	assert_memory_equal(out, want, D4_HEADER_SIZE);
	assert_int_equal(h.size, 4);
	d4_hmac_free(m);
	free(want);
}

static void test_vector_decode(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	struct d4_header h;
	d4_header_decode(in, &h);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.type, 1);
	assert_memory_equal(h.uuid, vector_uuid, 16);
	assert_true(h.timestamp == 1629453011u);
	assert_int_equal(h.size, 4);
	assert_int_equal(d4_header_validate(&h, D4_DEFAULT_MAX_PAYLOAD), D4_OK);

	uint8_t re[D4_HEADER_SIZE];
	d4_header_encode(&h, re);
	assert_memory_equal(re, in, D4_HEADER_SIZE);

	struct d4_hmac *m = key_mac(vector_key);
	assert_true(d4_frame_verify(m, in, in + D4_HEADER_SIZE, 4));

	struct d4_decoder d;
	d4_decoder_init(&d, NULL);
	assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)vector_key, strlen(vector_key)), 0);
	struct d4_event ev;
	size_t n = d4_decoder_feed(&d, in, len, &ev);
	assert_int_equal(n, D4_HEADER_SIZE);
	assert_int_equal(ev.kind, D4_EV_HEADER);
	n = d4_decoder_feed(&d, in + D4_HEADER_SIZE, len - D4_HEADER_SIZE, &ev);
	assert_int_equal(n, 4);
	assert_int_equal(ev.kind, D4_EV_FRAME);
	assert_int_equal(ev.hmac, D4_HMAC_OK);
	assert_int_equal(ev.payload_len, 4);
	assert_memory_equal(ev.payload, "blah", 4);
	/* the whole payload was in the chunk: handed out without a copy */
	assert_ptr_equal(ev.payload, in + D4_HEADER_SIZE);
	n = d4_decoder_feed(&d, in + len, 0, &ev);
	assert_int_equal(n, 0);
	assert_int_equal(ev.kind, D4_EV_NONE);
	assert_int_equal(d4_decoder_finish(&d), D4_OK);
	assert_true(d.frames == 1);
	d4_decoder_free(&d);
	d4_hmac_free(m);
	free(in);
}

/* ---- refusal reasons ---- */

/* Feeds a whole buffer and returns the first error, or D4_OK. */
static enum d4_reason decode_all(const uint8_t *buf, size_t len, const char *key, uint32_t max,
                                 unsigned *frames)
{
	struct d4_decoder d;
	struct d4_decoder_opts o = {.max_payload = max};
	d4_decoder_init(&d, &o);
	if (key)
		assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)key, strlen(key)), 0);
	enum d4_reason r = D4_OK;
	unsigned nf = 0;
	for (;;) {
		struct d4_event ev;
		size_t n = d4_decoder_feed(&d, buf, len, &ev);
		assert_true(n <= len);
		buf += n;
		len -= n;
		if (ev.kind == D4_EV_NONE)
			break;
		if (ev.kind == D4_EV_ERROR) {
			r = ev.reason;
			assert_non_null(ev.hdr);
			break;
		}
		if (ev.kind == D4_EV_FRAME)
			nf++;
	}
	if (r == D4_OK)
		r = d4_decoder_finish(&d);
	if (frames)
		*frames = nf;
	d4_decoder_free(&d);
	return r;
}

static void test_refuse_version(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	in[0] = 2;
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_BAD_VERSION);
	in[0] = 0;
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_BAD_VERSION);
	free(in);
}

static void test_refuse_type(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	static const uint8_t bad[] = {0, 9, 100, 253, 255};
	for (size_t i = 0; i < sizeof(bad); i++) {
		in[1] = bad[i];
		assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_UNKNOWN_TYPE);
	}
	static const uint8_t good[] = {1, 2, 3, 4, 5, 6, 7, 8, 254};
	for (size_t i = 0; i < sizeof(good); i++) {
		in[1] = good[i];
		assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_OK);
	}
	free(in);
}

static void test_refuse_uuid(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	in[D4_OFF_UUID + 6] = 0x17; /* version 1 */
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_UUID_NOT_V4);
	in[D4_OFF_UUID + 6] = 0x47;
	in[D4_OFF_UUID + 8] = 0x3b; /* NCS variant */
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_UUID_NOT_V4);
	in[D4_OFF_UUID + 8] = 0xcb; /* Microsoft variant 110x */
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_UUID_NOT_V4);
	memset(in + D4_OFF_UUID, 0, 16); /* nil uuid */
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_R_UUID_NOT_V4);
	free(in);
}

static void test_refuse_size(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	/* limit equal to the size passes, one below refuses */
	assert_int_equal(decode_all(in, len, vector_key, 4, NULL), D4_OK);
	assert_int_equal(decode_all(in, len, vector_key, 3, NULL), D4_R_PAYLOAD_TOO_LARGE);

	/* a header announcing 4 GiB is refused at the header, before any payload */
	d4_put_le32(in + D4_OFF_SIZE, 0xffffffffu);
	struct d4_decoder d;
	d4_decoder_init(&d, NULL);
	struct d4_event ev;
	size_t n = d4_decoder_feed(&d, in, D4_HEADER_SIZE, &ev);
	assert_int_equal(n, D4_HEADER_SIZE);
	assert_int_equal(ev.kind, D4_EV_ERROR);
	assert_int_equal(ev.reason, D4_R_PAYLOAD_TOO_LARGE);
	assert_null(d.buf);
	/* a failed decoder stays failed and consumes nothing more */
	n = d4_decoder_feed(&d, in, len, &ev);
	assert_int_equal(n, 0);
	assert_int_equal(ev.kind, D4_EV_ERROR);
	assert_int_equal(d4_decoder_finish(&d), D4_R_PAYLOAD_TOO_LARGE);
	d4_decoder_free(&d);
	free(in);
}

static void test_refuse_truncated(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	for (size_t cut = 1; cut < len; cut++)
		assert_int_equal(decode_all(in, cut, vector_key, 0, NULL), D4_R_TRUNCATED);
	assert_int_equal(decode_all(in, 0, vector_key, 0, NULL), D4_OK);
	free(in);
}

static void test_hmac_tamper(void **state)
{
	(void)state;
	size_t len;
	uint8_t *in = vector_a(&len);
	assert_int_equal(decode_all(in, len, vector_key, 0, NULL), D4_OK);
	assert_int_equal(decode_all(in, len, "private key to chang", 0, NULL), D4_R_HMAC_MISMATCH);
	assert_int_equal(decode_all(in, len, "private key to change\n", 0, NULL),
	                 D4_R_HMAC_MISMATCH);
	/* every single bit of the frame outside version/type/uuid/size matters */
	for (size_t byte = 0; byte < len; byte++) {
		if (byte < D4_OFF_TIMESTAMP || (byte >= D4_OFF_SIZE && byte < D4_HEADER_SIZE))
			continue; /* these fail validation or framing first */
		for (int bit = 0; bit < 8; bit++) {
			in[byte] ^= (uint8_t)(1u << bit);
			assert_int_equal(decode_all(in, len, vector_key, 0, NULL), D4_R_HMAC_MISMATCH);
			in[byte] ^= (uint8_t)(1u << bit);
		}
	}
	/* flipped uuid bit that keeps the uuid v4 */
	in[D4_OFF_UUID] ^= 1;
	assert_int_equal(decode_all(in, len, vector_key, 0, NULL), D4_R_HMAC_MISMATCH);
	in[D4_OFF_UUID] ^= 1;
	/* flipped type that stays a known type */
	in[D4_OFF_TYPE] = 3;
	assert_int_equal(decode_all(in, len, vector_key, 0, NULL), D4_R_HMAC_MISMATCH);
	/* no key: not checked */
	assert_int_equal(decode_all(in, len, NULL, 0, NULL), D4_OK);
	free(in);
}

static void test_report_bad_hmac(void **state)
{
	(void)state;
	uint8_t buf[1024];
	struct d4_hmac *good = key_mac("k1"), *bad = key_mac("k2");
	size_t len = put_frame(buf, 0, good, 3, (const uint8_t *)"one\n", 4);
	len = put_frame(buf, len, bad, 3, (const uint8_t *)"two\n", 4);
	len = put_frame(buf, len, good, 3, (const uint8_t *)"three\n", 6);

	struct d4_decoder d;
	struct d4_decoder_opts o = {.report_bad_hmac = true};
	d4_decoder_init(&d, &o);
	assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)"k1", 2), 0);
	enum d4_hmac_status seen[3];
	unsigned nf = 0;
	const uint8_t *p = buf;
	for (;;) {
		struct d4_event ev;
		size_t n = d4_decoder_feed(&d, p, len, &ev);
		p += n;
		len -= n;
		if (ev.kind == D4_EV_NONE)
			break;
		assert_int_not_equal(ev.kind, D4_EV_ERROR);
		if (ev.kind == D4_EV_FRAME && nf < 3)
			seen[nf++] = ev.hmac;
	}
	assert_int_equal(nf, 3);
	assert_int_equal(seen[0], D4_HMAC_OK);
	assert_int_equal(seen[1], D4_HMAC_BAD);
	assert_int_equal(seen[2], D4_HMAC_OK);
	d4_decoder_free(&d);
	d4_hmac_free(good);
	d4_hmac_free(bad);
}

/* A key chosen per frame at the header event, as ingest does per sensor. */
static void test_key_per_header(void **state)
{
	(void)state;
	uint8_t buf[1024];
	struct d4_hmac *k1 = key_mac("sensor-one"), *k2 = key_mac("sensor-two");
	size_t len = put_frame(buf, 0, k1, 1, (const uint8_t *)"a", 1);
	len = put_frame(buf, len, k2, 2, (const uint8_t *)"b", 1);

	struct d4_decoder d;
	d4_decoder_init(&d, NULL);
	const uint8_t *p = buf;
	unsigned ok = 0;
	for (;;) {
		struct d4_event ev;
		size_t n = d4_decoder_feed(&d, p, len, &ev);
		p += n;
		len -= n;
		if (ev.kind == D4_EV_NONE)
			break;
		assert_int_not_equal(ev.kind, D4_EV_ERROR);
		if (ev.kind == D4_EV_HEADER) {
			const char *k = ev.hdr->type == 1 ? "sensor-one" : "sensor-two";
			assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)k, strlen(k)), 0);
		} else if (ev.kind == D4_EV_FRAME) {
			assert_int_equal(ev.hmac, D4_HMAC_OK);
			ok++;
		}
	}
	assert_int_equal(ok, 2);
	d4_decoder_free(&d);
	d4_hmac_free(k1);
	d4_hmac_free(k2);
}

/* ---- the decoder fed the same stream at every split point ---- */

struct collected {
	uint8_t *data; /* concatenated payloads */
	size_t len;
	unsigned frames;
	size_t sizes[16];
};

static void feed_collect(struct d4_decoder *d, const uint8_t *p, size_t len, struct collected *c)
{
	for (;;) {
		struct d4_event ev;
		size_t n = d4_decoder_feed(d, p, len, &ev);
		assert_true(n <= len);
		p += n;
		len -= n;
		if (ev.kind == D4_EV_NONE) {
			assert_int_equal(len, 0);
			return;
		}
		assert_int_not_equal(ev.kind, D4_EV_ERROR);
		if (ev.kind == D4_EV_FRAME) {
			assert_int_equal(ev.hmac, D4_HMAC_OK);
			if (ev.payload_len)
				memcpy(c->data + c->len, ev.payload, ev.payload_len);
			c->len += ev.payload_len;
			if (c->frames < 16)
				c->sizes[c->frames] = ev.payload_len;
			c->frames++;
		}
	}
}

static void test_every_split(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 61, 62, 63, 200, 0, 5};
	uint8_t payload[256], *stream = malloc(8 * (D4_HEADER_SIZE + 256));
	assert_non_null(stream);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	struct d4_hmac *m = key_mac("split");
	size_t len = 0, total = 0;
	for (size_t i = 0; i < 8; i++) {
		len = put_frame(stream, len, m, 3, payload, sizes[i]);
		total += sizes[i];
	}

	uint8_t *out = malloc(total + 1);
	assert_non_null(out);
	/* two chunks, cut at every point */
	for (size_t cut = 0; cut <= len; cut++) {
		struct d4_decoder d;
		d4_decoder_init(&d, NULL);
		assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)"split", 5), 0);
		struct collected c = {.data = out};
		feed_collect(&d, stream, cut, &c);
		feed_collect(&d, stream + cut, len - cut, &c);
		assert_int_equal(c.frames, 8);
		assert_int_equal(c.len, total);
		for (size_t i = 0; i < 8; i++)
			assert_int_equal(c.sizes[i], sizes[i]);
		size_t off = 0;
		for (size_t i = 0; i < 8; i++) {
			assert_memory_equal(out + off, payload, sizes[i]);
			off += sizes[i];
		}
		assert_int_equal(d4_decoder_finish(&d), D4_OK);
		assert_true(d.bytes_in == len);
		d4_decoder_free(&d);
	}
	/* one byte at a time */
	struct d4_decoder d;
	d4_decoder_init(&d, NULL);
	assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)"split", 5), 0);
	struct collected c = {.data = out};
	for (size_t i = 0; i < len; i++)
		feed_collect(&d, stream + i, 1, &c);
	assert_int_equal(c.frames, 8);
	assert_int_equal(c.len, total);
	assert_int_equal(d4_decoder_finish(&d), D4_OK);
	d4_decoder_free(&d);

	free(out);
	free(stream);
	d4_hmac_free(m);
}

/* Large frames in pseudo-random chunk sizes, and the buffer given back when idle. */
static void test_random_chunks(void **state)
{
	(void)state;
	const size_t fsize = 70000, nframes = 5;
	uint8_t *payload = malloc(fsize);
	uint8_t *stream = malloc(nframes * (D4_HEADER_SIZE + fsize));
	uint8_t *out = malloc(nframes * fsize);
	assert_non_null(payload);
	assert_non_null(stream);
	assert_non_null(out);
	for (size_t i = 0; i < fsize; i++)
		payload[i] = (uint8_t)(i ^ (i >> 8));
	struct d4_hmac *m = key_mac("chunks");
	size_t len = 0;
	for (size_t i = 0; i < nframes; i++)
		len = put_frame(stream, len, m, 1, payload, fsize);

	uint32_t seed = 12345;
	for (int round = 0; round < 20; round++) {
		struct d4_decoder d;
		d4_decoder_init(&d, NULL);
		assert_int_equal(d4_decoder_set_key(&d, (const uint8_t *)"chunks", 6), 0);
		struct collected c = {.data = out};
		size_t at = 0;
		while (at < len) {
			seed = seed * 1103515245u + 12345u;
			size_t n = 1 + (seed >> 8) % 20000;
			if (n > len - at)
				n = len - at;
			feed_collect(&d, stream + at, n, &c);
			at += n;
		}
		assert_int_equal(c.frames, nframes);
		for (size_t i = 0; i < nframes; i++)
			assert_memory_equal(out + i * fsize, payload, fsize);
		assert_int_equal(d4_decoder_finish(&d), D4_OK);
		d4_decoder_trim(&d);
		assert_null(d.buf);
		d4_decoder_free(&d);
	}
	d4_hmac_free(m);
	free(payload);
	free(stream);
	free(out);
}

static void test_reason_names(void **state)
{
	(void)state;
	for (int i = 0; i < D4_R_COUNT; i++) {
		const char *n = d4_reason_name((enum d4_reason)i);
		assert_non_null(n);
		assert_non_null(d4_reason_text((enum d4_reason)i));
		assert_int_equal(d4_reason_from_name(n), i);
		for (const char *p = n; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'));
	}
	assert_string_equal(d4_reason_name(D4_R_HMAC_MISMATCH), "hmac_mismatch");
	assert_string_equal(d4_reason_name((enum d4_reason)D4_R_COUNT), "invalid");
	assert_int_equal(d4_reason_from_name("no_such_reason"), -1);
	assert_string_equal(d4_type_name(8), "passivedns");
	assert_string_equal(d4_type_name(9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_encode),
		cmocka_unit_test(test_vector_decode),
		cmocka_unit_test(test_refuse_version),
		cmocka_unit_test(test_refuse_type),
		cmocka_unit_test(test_refuse_uuid),
		cmocka_unit_test(test_refuse_size),
		cmocka_unit_test(test_refuse_truncated),
		cmocka_unit_test(test_hmac_tamper),
		cmocka_unit_test(test_report_bad_hmac),
		cmocka_unit_test(test_key_per_header),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_random_chunks),
		cmocka_unit_test(test_reason_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
