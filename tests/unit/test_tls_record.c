/*
 * test_tls_record.c — the handshake tracker (tls_conn): record and handshake reassembly at
 * every split, when a connection is over, and every refusal (not TLS, SSLv2, oversize records
 * and messages, a message cut by another record type, too many certificates), with the
 * memory it holds staying bounded.
 *
 * Streams are assembled from the hellos of tests/data/tls/ (make_vectors.py) and the two
 * certificates there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tls_conn.h"
#include "tls_x509.h"

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put8(struct buf *b, unsigned v)
{
	uint8_t x = (uint8_t)v;
	put(b, &x, 1);
}

static void put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

static void put24(struct buf *b, size_t v)
{
	put8(b, (unsigned)(v >> 16));
	put16(b, (unsigned)(v & 0xffff));
}

/* msg split into records of at most frag bytes */
static void put_records(struct buf *b, unsigned type, const uint8_t *msg, size_t n, size_t frag)
{
	size_t off = 0;
	do {
		size_t k = n - off < frag ? n - off : frag;
		put8(b, type);
		put16(b, 0x0303);
		put16(b, (unsigned)k);
		put(b, msg + off, k);
		off += k;
	} while (off < n);
}

static const char *data_dir(void)
{
	const char *d = getenv("D4_TEST_DATA");
	return d && *d ? d : "tests/data";
}

static struct buf load(const char *name)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tls/%s", data_dir(), name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct buf b = {0};
	uint8_t tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		put(&b, tmp, n);
	fclose(f);
	return b;
}

/* The handshake message inside a one-record file (strips the 5-byte record header). */
static struct buf load_msg(const char *name)
{
	struct buf r = load(name), m = {0};
	assert_true(r.len > 5);
	put(&m, r.p + 5, r.len - 5);
	free(r.p);
	return m;
}

static struct buf certificate_msg(const struct buf *certs, size_t n)
{
	struct buf list = {0}, m = {0};
	for (size_t i = 0; i < n; i++) {
		put24(&list, certs[i].len);
		put(&list, certs[i].p, certs[i].len);
	}
	put8(&m, 11);
	put24(&m, list.len + 3);
	put24(&m, list.len);
	put(&m, list.p, list.len);
	free(list.p);
	return m;
}

struct flight {
	struct buf c, s; /* client and server byte streams */
	struct buf der[2];
};

/* A TLS 1.2 full handshake: CH | SH, Certificate(2), ServerHelloDone, then CCS both ways. */
static void tls12_flight(struct flight *f, size_t frag)
{
	memset(f, 0, sizeof *f);
	f->der[0] = load("cert-rsa2048.der");
	f->der[1] = load("cert-ec384.der");
	struct buf ch = load_msg("ch-grease.bin");
	struct buf sh = load_msg("sh-tls12.bin");
	struct buf cert = certificate_msg(f->der, 2);
	put_records(&f->c, 22, ch.p, ch.len, frag);
	struct buf flight = {0};
	put(&flight, sh.p, sh.len);
	put(&flight, cert.p, cert.len);
	const uint8_t done[4] = {14, 0, 0, 0};
	put(&flight, done, 4);
	put_records(&f->s, 22, flight.p, flight.len, frag);
	const uint8_t ccs[6] = {20, 3, 3, 0, 1, 1};
	put(&f->c, ccs, 6);
	put(&f->s, ccs, 6);
	free(ch.p);
	free(sh.p);
	free(cert.p);
	free(flight.p);
}

static void flight_free(struct flight *f)
{
	free(f->c.p);
	free(f->s.p);
	free(f->der[0].p);
	free(f->der[1].p);
}

static void check_tls12_result(struct tls_conn *c, const struct flight *f)
{
	assert_int_equal(tls_conn_status(c), TLS_DONE);
	const struct tls_conn_info *in = tls_conn_info(c);
	assert_int_equal(in->reason, TLS_R_OK);
	assert_int_equal(in->n_client_hello, 1);
	assert_string_equal(in->client_hello[0].ja3_md5, "5108857bc2f14edd318ce7dd83395b07");
	assert_true(in->have_server_hello);
	assert_string_equal(in->server_hello.ja3s, "771,49199,65281-0-11-16");
	assert_int_equal(in->n_certs, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(in->certs[i].len, f->der[i].len);
		assert_memory_equal(in->certs[i].der, f->der[i].p, f->der[i].len);
	}
	struct tls_cert_info ci;
	assert_int_equal(tls_x509_parse(in->certs[0].der, in->certs[0].len, &ci), TLS_R_OK);
	assert_string_equal(ci.subject_cn, "test.example");
	tls_cert_info_free(&ci);
	assert_int_equal(in->record_version, 0x0303);
}

/* Both directions fed alternately in pieces of `step` bytes. */
static struct tls_conn *feed_alternating(const struct flight *f, size_t step)
{
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	size_t oc = 0, os = 0;
	while (oc < f->c.len || os < f->s.len) {
		if (oc < f->c.len) {
			size_t k = f->c.len - oc < step ? f->c.len - oc : step;
			tls_conn_feed(c, TLS_DIR_CLIENT, f->c.p + oc, k);
			oc += k;
		}
		if (os < f->s.len) {
			size_t k = f->s.len - os < step ? f->s.len - os : step;
			tls_conn_feed(c, TLS_DIR_SERVER, f->s.p + os, k);
			os += k;
		}
	}
	return c;
}

static void test_tls12_every_step(void **state)
{
	(void)state;
	size_t frags[] = {16384, 100, 1};
	for (size_t fi = 0; fi < 3; fi++) {
		struct flight f;
		tls12_flight(&f, frags[fi]);
		size_t steps[] = {1, 2, 3, 5, 64, 1000, 1 << 20};
		for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			struct tls_conn *c = feed_alternating(&f, steps[s]);
			check_tls12_result(c, &f);
			/* done: later bytes are ignored, nothing is held */
			assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, f.s.p, f.s.len), TLS_DONE);
			assert_true(tls_conn_mem(c) < 64 * 1024);
			tls_conn_free(c);
		}
		flight_free(&f);
	}
}

/* Every split of the client stream into two pieces, and of the server stream. */
static void test_tls12_every_split(void **state)
{
	(void)state;
	struct flight f;
	tls12_flight(&f, 300);
	for (size_t cut = 0; cut <= f.s.len; cut++) {
		struct tls_conn *c = tls_conn_new(NULL);
		assert_non_null(c);
		size_t cc = cut % (f.c.len + 1);
		tls_conn_feed(c, TLS_DIR_CLIENT, f.c.p, cc);
		tls_conn_feed(c, TLS_DIR_SERVER, f.s.p, cut);
		tls_conn_feed(c, TLS_DIR_CLIENT, f.c.p + cc, f.c.len - cc);
		tls_conn_feed(c, TLS_DIR_SERVER, f.s.p + cut, f.s.len - cut);
		check_tls12_result(c, &f);
		tls_conn_free(c);
	}
	flight_free(&f);
}

static void test_not_tls(void **state)
{
	(void)state;
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	/* one byte is enough for HTTP */
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, (const uint8_t *)"G", 1), TLS_NOT_TLS);
	assert_int_equal(tls_conn_reason(c), TLS_R_NOT_TLS);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, (const uint8_t *)"\x16\x03", 2),
			 TLS_NOT_TLS);
	tls_conn_free(c);

	/* a server banner first */
	c = tls_conn_new(NULL);
	assert_non_null(c);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, (const uint8_t *)"220 mx ESMTP\r\n", 14),
			 TLS_NOT_TLS);
	tls_conn_free(c);

	/* handshake type byte, wrong major version: refused at the second byte */
	c = tls_conn_new(NULL);
	assert_non_null(c);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, (const uint8_t *)"\x16", 1), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, (const uint8_t *)"\x04", 1), TLS_NOT_TLS);
	tls_conn_free(c);

	/* a first record longer than TLS allows */
	c = tls_conn_new(NULL);
	assert_non_null(c);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, (const uint8_t *)"\x16\x03\x01\xff\xff",
				       5),
			 TLS_NOT_TLS);
	tls_conn_free(c);

	/* SSLv2-compatible ClientHello (2-byte header, msg type 1, version 3.1) */
	const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
	c = tls_conn_new(NULL);
	assert_non_null(c);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, v2, sizeof v2), TLS_NOT_TLS);
	assert_int_equal(tls_conn_reason(c), TLS_R_SSLV2);
	assert_string_equal(tls_reason_str(tls_conn_reason(c)), "sslv2");
	tls_conn_free(c);
}

/* A 64 KiB extension: the hello is refused at its header, never buffered. */
static void test_huge_extension(void **state)
{
	(void)state;
	struct buf body = {0}, msg = {0}, stream = {0};
	put16(&body, 0x0303);
	uint8_t zero[32] = {0};
	put(&body, zero, 32);
	put8(&body, 0);
	put16(&body, 2);
	put16(&body, 0x1301);
	put8(&body, 1);
	put8(&body, 0);
	size_t ext_len = 65535;
	put16(&body, (unsigned)(4 + ext_len) & 0xffff); /* deliberately wraps: hostile */
	put16(&body, 0x0015);
	put16(&body, (unsigned)ext_len);
	uint8_t *pad = calloc(1, ext_len);
	assert_non_null(pad);
	put(&body, pad, ext_len);
	free(pad);
	put8(&msg, 1);
	put24(&msg, body.len);
	put(&msg, body.p, body.len);
	put_records(&stream, 22, msg.p, msg.len, 16384);
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	for (size_t off = 0; off < stream.len; off += 1000) {
		size_t k = stream.len - off < 1000 ? stream.len - off : 1000;
		tls_conn_feed(c, TLS_DIR_CLIENT, stream.p + off, k);
		assert_true(tls_conn_mem(c) < 4096);
	}
	assert_int_equal(tls_conn_reason(c), TLS_R_HELLO_TOO_LARGE);
	assert_int_equal(tls_conn_info(c)->n_client_hello, 0);
	/* the server side still finishes the connection, with the refusal shown */
	struct buf sh = load("sh-tls13.bin");
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, sh.p, sh.len), TLS_ERROR);
	assert_true(tls_conn_info(c)->have_server_hello);
	tls_conn_free(c);

	/* with a larger limit the same hello is parsed, and the extension block wrap refused */
	struct tls_limits lim = {.max_hello = 1 << 20};
	c = tls_conn_new(&lim);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_CLIENT, stream.p, stream.len);
	assert_int_equal(tls_conn_reason(c), TLS_R_TRAILING);
	tls_conn_free(c);
	free(sh.p);
	free(body.p);
	free(msg.p);
	free(stream.p);
}

/* A handshake message announcing more bytes than follow, cut by a CCS record. */
static void test_message_cut(void **state)
{
	(void)state;
	struct buf s = {0};
	const uint8_t rec[] = {22, 3, 3, 0, 8, 1, 0, 0, 200, 3, 3, 0, 0};
	put(&s, rec, sizeof rec);
	const uint8_t ccs[6] = {20, 3, 3, 0, 1, 1};
	put(&s, ccs, 6);
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_CLIENT, s.p, s.len);
	assert_int_equal(tls_conn_reason(c), TLS_R_BAD_HANDSHAKE);
	tls_conn_free(c);

	/* a later record header with a bad type, and one too long */
	struct buf ch = load("ch-grease.bin");
	for (int k = 0; k < 2; k++) {
		c = tls_conn_new(NULL);
		assert_non_null(c);
		tls_conn_feed(c, TLS_DIR_CLIENT, ch.p, ch.len);
		const uint8_t bad0[5] = {99, 3, 3, 0, 1}, bad1[5] = {23, 3, 3, 0x50, 0};
		/* app data finishes the direction before its length matters: use handshake */
		const uint8_t bad1h[5] = {22, 3, 3, 0x50, 0};
		(void)bad1;
		tls_conn_feed(c, TLS_DIR_CLIENT, k ? bad1h : bad0, 5);
		assert_int_equal(tls_conn_reason(c), k ? TLS_R_RECORD_TOO_LONG : TLS_R_BAD_RECORD);
		assert_int_equal(tls_conn_info(c)->n_client_hello, 1);
		tls_conn_free(c);
	}
	free(ch.p);
	free(s.p);
}

static void test_truncated_stream(void **state)
{
	(void)state;
	struct buf ch = load("ch-two-records.bin");
	for (size_t cut = 0; cut < ch.len; cut += 97) {
		struct tls_conn *c = tls_conn_new(NULL);
		assert_non_null(c);
		assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, ch.p, cut), TLS_MORE);
		assert_int_equal(tls_conn_info(c)->n_client_hello, 0);
		assert_true(tls_conn_mem(c) < 2 * ch.len);
		tls_conn_free(c);
	}
	free(ch.p);
}

static void test_cert_limits(void **state)
{
	(void)state;
	struct flight f;
	tls12_flight(&f, 16384);
	/* one certificate kept out of two */
	struct tls_limits lim = {.max_certs = 1};
	struct tls_conn *c = tls_conn_new(&lim);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_CLIENT, f.c.p, f.c.len);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, f.s.p, f.s.len), TLS_ERROR);
	const struct tls_conn_info *in = tls_conn_info(c);
	assert_int_equal(in->reason, TLS_R_TOO_MANY_CERTS);
	assert_int_equal(in->reason_dir, TLS_DIR_SERVER);
	assert_true(in->certs_truncated);
	assert_int_equal(in->n_certs, 1);
	assert_memory_equal(in->certs[0].der, f.der[0].p, f.der[0].len);
	tls_conn_free(c);
	/* a Certificate message over the limit: refused, the hellos kept */
	lim = (struct tls_limits){.max_certificate = 1000};
	c = tls_conn_new(&lim);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_CLIENT, f.c.p, f.c.len);
	for (size_t off = 0; off < f.s.len; off += 10)
		tls_conn_feed(c, TLS_DIR_SERVER, f.s.p + off, f.s.len - off < 10 ? f.s.len - off : 10);
	assert_int_equal(tls_conn_status(c), TLS_ERROR);
	assert_int_equal(tls_conn_reason(c), TLS_R_CERT_TOO_LARGE);
	assert_true(tls_conn_info(c)->have_server_hello);
	assert_int_equal(tls_conn_info(c)->n_certs, 0);
	tls_conn_free(c);
	flight_free(&f);

	/* garbage in the certificate list: split fine, refused by the x509 parser */
	struct buf junk[1] = {{0}};
	put(&junk[0], "\x30\x03\x02\x01\x01garbage", 12);
	struct buf cert = certificate_msg(junk, 1), s = {0};
	put_records(&s, 22, cert.p, cert.len, 16384);
	c = tls_conn_new(NULL);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_SERVER, s.p, s.len);
	in = tls_conn_info(c);
	assert_int_equal(in->n_certs, 1);
	struct tls_cert_info ci;
	assert_int_equal(tls_x509_parse(in->certs[0].der, in->certs[0].len, &ci), TLS_R_X509_DECODE);
	tls_conn_free(c);
	/* a list length that disagrees with the message */
	cert.p[6]++;
	free(s.p);
	s = (struct buf){0};
	put_records(&s, 22, cert.p, cert.len, 16384);
	c = tls_conn_new(NULL);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_SERVER, s.p, s.len);
	assert_int_equal(tls_conn_reason(c), TLS_R_BAD_CERT_LIST);
	tls_conn_free(c);
	free(junk[0].p);
	free(cert.p);
	free(s.p);
}

/* TLS 1.3 with HelloRetryRequest and middlebox-compatibility CCS on both sides. */
static void test_hello_retry(void **state)
{
	(void)state;
	struct buf ch1 = load("ch-grease.bin"), ch2 = load("ch-sni-alpn-only.bin");
	struct buf hrr = load("sh-hrr.bin"), sh = load("sh-tls13.bin");
	const uint8_t ccs[6] = {20, 3, 3, 0, 1, 1};
	const uint8_t appdata[9] = {23, 3, 3, 0, 4, 0xde, 0xad, 0xbe, 0xef};
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, ch1.p, ch1.len), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, hrr.p, hrr.len), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, ccs, 6), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, ccs, 6), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_CLIENT, ch2.p, ch2.len), TLS_MORE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, sh.p, sh.len), TLS_DONE);
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, appdata, 9), TLS_DONE);
	const struct tls_conn_info *in = tls_conn_info(c);
	assert_int_equal(in->n_client_hello, 2);
	assert_string_equal(in->client_hello[0].ja4, "t13d0406h2_52f89ac5ce33_0d385148b956");
	assert_string_equal(in->client_hello[1].ja4, "t12d0102xx_0f2cb44170f4_000000000000");
	assert_true(in->have_hello_retry);
	assert_true(in->hello_retry_request.hello_retry);
	assert_true(in->have_server_hello);
	assert_int_equal(in->server_hello.version, 0x0304);
	tls_conn_free(c);

	/* TLS 1.2 resumption: SH, CCS, encrypted Finished -> done without a certificate */
	struct buf sh12 = load("sh-tls12.bin");
	c = tls_conn_new(NULL);
	assert_non_null(c);
	tls_conn_feed(c, TLS_DIR_CLIENT, ch1.p, ch1.len);
	tls_conn_feed(c, TLS_DIR_SERVER, sh12.p, sh12.len);
	tls_conn_feed(c, TLS_DIR_SERVER, ccs, 6);
	const uint8_t fin[] = {22, 3, 3, 0, 8, 0x01, 0x99, 0x12, 0x34, 5, 6, 7, 8};
	assert_int_equal(tls_conn_feed(c, TLS_DIR_SERVER, fin, sizeof fin), TLS_DONE);
	assert_int_equal(tls_conn_info(c)->n_certs, 0);
	assert_int_equal(tls_conn_reason(c), TLS_R_OK);
	tls_conn_free(c);
	free(sh12.p);
	free(ch1.p);
	free(ch2.p);
	free(hrr.p);
	free(sh.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls12_every_step),  cmocka_unit_test(test_tls12_every_split),
		cmocka_unit_test(test_not_tls),           cmocka_unit_test(test_huge_extension),
		cmocka_unit_test(test_message_cut),       cmocka_unit_test(test_truncated_stream),
		cmocka_unit_test(test_cert_limits),       cmocka_unit_test(test_hello_retry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
