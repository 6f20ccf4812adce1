/*
 * test_tls_hello.c — JA3, JA3S and JA4 (with _r, _o, _ro) from ClientHello/ServerHello.
 *
 * Three sources of truth: our own vectors in tests/data/tls/ (built and computed by
 * make_vectors.py, independently of the C code), the ja3-rs captures with salesforce JA3
 * values and the FoxIO captures with their JA4 values (../shared/vectors/tls/, skipped when
 * absent). Every hello goes through the tracker (tls_conn) as a real stream would, and the
 * own vectors also one byte at a time; the parser alone is then run on every truncation.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_tls_pcap.h"
#include "tls_conn.h"
#include "tls_hello.h"

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *b = realloc(buf, cap);
			assert_non_null(b);
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

static const char *data_dir(void)
{
	const char *d = getenv("D4_TEST_DATA");
	return d && *d ? d : "tests/data";
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Feeds a whole stream to a fresh tracker, in pieces of step bytes (0: all at once). */
static struct tls_conn *feed_stream(enum tls_dir dir, const uint8_t *b, size_t n, size_t step)
{
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	if (step == 0)
		step = n ? n : 1;
	for (size_t off = 0; off < n; off += step)
		tls_conn_feed(c, dir, b + off, n - off < step ? n - off : step);
	return c;
}

static void check_client_hello(json_t *e, const struct tls_client_hello *ch)
{
	assert_string_equal(ch->ja3, jstr(e, "ja3"));
	assert_string_equal(ch->ja3_md5, jstr(e, "ja3_md5"));
	assert_string_equal(ch->ja4, jstr(e, "ja4"));
	assert_string_equal(ch->ja4_r, jstr(e, "ja4_r"));
	assert_string_equal(ch->ja4_o, jstr(e, "ja4_o"));
	assert_string_equal(ch->ja4_ro, jstr(e, "ja4_ro"));
	const char *sni = jstr(e, "sni");
	if (sni) {
		assert_non_null(ch->sni.s);
		assert_string_equal(ch->sni.s, sni);
	} else {
		assert_null(ch->sni.s);
	}
	json_t *alpn = json_object_get(e, "alpn");
	if (json_is_array(alpn)) {
		assert_int_equal(ch->n_alpn, json_array_size(alpn));
		for (size_t i = 0; i < ch->n_alpn; i++)
			assert_string_equal(ch->alpn[i].s, json_string_value(json_array_get(alpn, i)));
	}
	json_t *v = json_object_get(e, "version");
	if (json_is_integer(v))
		assert_int_equal(ch->version, json_integer_value(v));
}

static void test_own_vectors(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof path, "%s/tls/expected.json", data_dir());
	json_error_t jerr;
	json_t *all = json_load_file(path, 0, &jerr);
	assert_non_null(all);
	assert_true(json_array_size(all) >= 9);
	size_t i;
	json_t *e;
	json_array_foreach(all, i, e) {
		snprintf(path, sizeof path, "%s/tls/%s", data_dir(), jstr(e, "file"));
		size_t n;
		uint8_t *b = read_file(path, &n);
		assert_non_null(b);
		bool client = !strcmp(jstr(e, "kind"), "client_hello");
		size_t steps[] = {0, 1, 7, 100, 16389};
		for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			struct tls_conn *c = feed_stream(client ? TLS_DIR_CLIENT : TLS_DIR_SERVER,
							 b, n, steps[s]);
			const struct tls_conn_info *in = tls_conn_info(c);
			assert_int_equal(in->reason, TLS_R_OK);
			if (client) {
				assert_int_equal(in->n_client_hello, 1);
				check_client_hello(e, &in->client_hello[0]);
			} else {
				bool hrr = json_is_true(json_object_get(e, "hello_retry"));
				const struct tls_server_hello *sh =
					hrr ? &in->hello_retry_request : &in->server_hello;
				assert_true(hrr ? in->have_hello_retry : in->have_server_hello);
				assert_true(sh->hello_retry == hrr);
				assert_string_equal(sh->ja3s, jstr(e, "ja3s"));
				assert_string_equal(sh->ja3s_md5, jstr(e, "ja3s_md5"));
				assert_int_equal(sh->version,
						 json_integer_value(json_object_get(e, "version")));
				const char *alpn = jstr(e, "alpn");
				if (alpn)
					assert_string_equal(sh->alpn.s, alpn);
				else
					assert_null(sh->alpn.s);
			}
			tls_conn_free(c);
		}
		free(b);
	}
	json_decref(all);
}

/* Every prefix of a valid ClientHello body is refused by the parser (never a crash), and
 * the whole body parses. Run under ASan this proves no read past the end. */
static void test_truncations(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof path, "%s/tls/ch-grease.bin", data_dir());
	size_t n;
	uint8_t *b = read_file(path, &n);
	assert_non_null(b);
	const uint8_t *body = b + 5 + 4;
	size_t blen = n - 9;
	for (size_t k = 0; k < blen; k++) {
		uint8_t *copy = malloc(k ? k : 1); /* exact size so ASan sees an overread */
		assert_non_null(copy);
		memcpy(copy, body, k);
		struct tls_client_hello ch;
		enum tls_reason r = tls_client_hello_parse(copy, k, &ch);
		/* a prefix that ends exactly before the extension block is a legal hello */
		if (r == TLS_R_OK)
			tls_client_hello_free(&ch);
		else
			assert_null(ch.mem_);
		free(copy);
	}
	struct tls_client_hello ch;
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_OK);
	tls_client_hello_free(&ch);
	tls_client_hello_free(&ch); /* twice is safe */
	free(b);
}

/* Malformed inner lengths: each refused with its reason. */
static void test_malformed(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof path, "%s/tls/ch-grease.bin", data_dir());
	size_t n;
	uint8_t *b = read_file(path, &n);
	assert_non_null(b);
	uint8_t *body = b + 9;
	size_t blen = n - 9;
	struct tls_client_hello ch;
	/* offsets: version 0, random 2, sid len 34, sid 35..66, cipher len 67 */
	uint8_t save = body[68];
	body[68] = 9; /* odd cipher list */
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_BAD_HELLO);
	body[68] = 0xfe; /* past the end */
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_TRUNCATED);
	body[68] = save;
	/* extension block length one short: trailing byte */
	size_t ext_off = 2 + 32 + 1 + 32 + 2 + 10 + 2;
	uint16_t el = (uint16_t)(body[ext_off] << 8 | body[ext_off + 1]);
	assert_int_equal(el, blen - ext_off - 2);
	body[ext_off + 1] = (uint8_t)(el - 1);
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_TRAILING);
	body[ext_off + 1] = (uint8_t)(el + 1);
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_TRUNCATED);
	body[ext_off + 1] = (uint8_t)el;
	/* first extension is GREASE 1a1a, empty; the second is SNI: break its list length */
	size_t sni_off = ext_off + 2 + 4 + 4;
	assert_int_equal(body[sni_off - 4], 0);
	assert_int_equal(body[sni_off - 3], 0);
	body[sni_off + 1]++;
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_BAD_EXTENSION);
	body[sni_off + 1]--;
	assert_int_equal(tls_client_hello_parse(body, blen, &ch), TLS_R_OK);
	tls_client_hello_free(&ch);
	/* ServerHello too short */
	struct tls_server_hello sh;
	assert_int_equal(tls_server_hello_parse(body, 10, &sh), TLS_R_TRUNCATED);
	assert_null(sh.mem_);
	free(b);
}

static void test_grease_predicate(void **state)
{
	(void)state;
	unsigned n = 0;
	for (unsigned v = 0; v < 65536; v++)
		if (tls_is_grease((uint16_t)v)) {
			n++;
			assert_int_equal(v & 0xff, 0x0a | ((v & 0xf0)));
		}
	assert_int_equal(n, 16);
	assert_true(tls_is_grease(0xfafa));
	assert_false(tls_is_grease(0x0a1a));
	assert_false(tls_is_grease(0xefef));
}

/* Runs the tracker over one flow's chunks in capture order. */
static struct tls_conn *run_flow(const struct tp_flow *f)
{
	struct tls_conn *c = tls_conn_new(NULL);
	assert_non_null(c);
	for (size_t i = 0; i < f->n_chunks; i++) {
		const struct tp_chunk *k = &f->chunks[i];
		tls_conn_feed(c, (enum tls_dir)k->dir, f->d[k->dir].buf + k->off, k->len);
	}
	return c;
}

static void test_ja3_shared(void **state)
{
	(void)state;
	char path[1024];
	if (!tp_shared_path("ja3-expected.json", path, sizeof path)) {
		skip();
		return;
	}
	json_error_t jerr;
	json_t *all = json_load_file(path, 0, &jerr);
	assert_non_null(all);
	size_t i, checked = 0;
	json_t *e;
	json_array_foreach(all, i, e) {
		assert_true(tp_shared_path(jstr(e, "pcap"), path, sizeof path));
		struct tp_capture cap;
		assert_int_equal(tp_load(path, &cap), 0);
		bool found = false;
		for (size_t k = 0; k < cap.n_flows; k++) {
			struct tp_flow *f = cap.flows[k];
			if (strcmp(f->addr_str[1], jstr(e, "dst")))
				continue;
			struct tls_conn *c = run_flow(f);
			const struct tls_conn_info *in = tls_conn_info(c);
			assert_true(in->n_client_hello >= 1);
			assert_string_equal(in->client_hello[0].ja3, jstr(e, "ja3"));
			assert_string_equal(in->client_hello[0].ja3_md5, jstr(e, "ja3_md5"));
			tls_conn_free(c);
			found = true;
			break;
		}
		assert_true(found);
		checked++;
		tp_free(&cap);
	}
	assert_int_equal(checked, 3);
	json_decref(all);
}

static void check_ja4_variant(json_t *e, const char *key, unsigned idx, const char *got)
{
	char k[32];
	snprintf(k, sizeof k, "%s.%u", key, idx);
	const char *want = jstr(e, k);
	assert_non_null(want);
	if (strcmp(want, got)) {
		print_error("stream %lld %s: want %s got %s\n",
			    (long long)json_integer_value(json_object_get(e, "stream")), k, want, got);
		fail();
	}
}

static void test_ja4_shared(void **state)
{
	(void)state;
	const char *files[] = {"foxio-tls12.pcap", "foxio-tls-alpn-h2.pcap", "foxio-tls-sni.pcapng"};
	char path[1024], jpath[1100];
	size_t streams = 0, hellos = 0;
	for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
		if (!tp_shared_path(files[fi], path, sizeof path)) {
			skip();
			return;
		}
		snprintf(jpath, sizeof jpath, "%s.json", path);
		json_error_t jerr;
		json_t *all = json_load_file(jpath, 0, &jerr);
		assert_non_null(all);
		struct tp_capture cap;
		assert_int_equal(tp_load(path, &cap), 0);
		size_t i;
		json_t *e;
		json_array_foreach(all, i, e) {
			if (!jstr(e, "JA4.1"))
				continue;
			unsigned sport = (unsigned)atoi(jstr(e, "srcport"));
			unsigned dport = (unsigned)atoi(jstr(e, "dstport"));
			struct tp_flow *f = NULL;
			for (size_t k = 0; k < cap.n_flows && !f; k++) {
				struct tp_flow *g = cap.flows[k];
				if (!strcmp(g->addr_str[0], jstr(e, "src")) &&
				    !strcmp(g->addr_str[1], jstr(e, "dst")) && g->port[0] == sport &&
				    g->port[1] == dport)
					f = g;
			}
			assert_non_null(f);
			struct tls_conn *c = run_flow(f);
			const struct tls_conn_info *in = tls_conn_info(c);
			unsigned want = jstr(e, "JA4.2") ? 2 : 1;
			assert_int_equal(in->n_client_hello, want);
			for (unsigned h = 0; h < want; h++) {
				const struct tls_client_hello *ch = &in->client_hello[h];
				check_ja4_variant(e, "JA4", h + 1, ch->ja4);
				check_ja4_variant(e, "JA4_r", h + 1, ch->ja4_r);
				check_ja4_variant(e, "JA4_o", h + 1, ch->ja4_o);
				check_ja4_variant(e, "JA4_ro", h + 1, ch->ja4_ro);
				hellos++;
			}
			const char *dom = jstr(e, "domain");
			if (dom) {
				assert_non_null(in->client_hello[0].sni.s);
				assert_string_equal(in->client_hello[0].sni.s, dom);
			}
			tls_conn_free(c);
			streams++;
		}
		tp_free(&cap);
		json_decref(all);
	}
	assert_int_equal(streams, 61);
	assert_int_equal(hellos, 66); /* 5 streams hold a second ClientHello */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grease_predicate),
		cmocka_unit_test(test_own_vectors),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_ja3_shared),
		cmocka_unit_test(test_ja4_shared),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
