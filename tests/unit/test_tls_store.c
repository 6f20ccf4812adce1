/*
 * test_tls_store.c — the TLS store (analyzers/tls/store.c) and its query API (query.c):
 * sessions and pivots with first/last seen and counts merged across batches, a certificate kept
 * once, SHA-1 lookups, links, paging by cursor, the shared-key finding, findings deduplicated,
 * the key callback, a read-only reopen, and refusals of bad queries.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "query.h"
#include "store.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/d4-tls-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint8_t der_a[] = {0x30, 0x03, 0x02, 0x01, 0x01};
static uint8_t der_b[] = {0x30, 0x03, 0x02, 0x01, 0x02};
static uint8_t mod[] = {0xc3, 0x55, 0x01, 0x77};
static uint8_t expo[] = {0x01, 0x00, 0x01};

static void cert_info(struct tls_cert_info *ci, char c, const char *subject)
{
	memset(ci, 0, sizeof(*ci));
	memset(ci->sha1, c, 40);
	memset(ci->sha256, c, 64);
	ci->subject = (char *)subject;
	ci->issuer = (char *)"CN=ca";
	ci->subject_cn = (char *)subject + 3;
	ci->serial = (char *)"1";
	strcpy(ci->sig_alg, "sha256WithRSAEncryption");
	ci->key_type = TLS_KEY_RSA;
	ci->key_type_name = "rsa";
	ci->key_bits = 32;
	ci->rsa_n = mod;
	ci->rsa_n_len = sizeof(mod);
	ci->rsa_e = expo;
	ci->rsa_e_len = sizeof(expo);
	ci->rsa_e_u64 = 65537;
	memset(ci->spki_sha256, 'e', 64); /* the same key behind both certificates */
}

static int keys_seen;
static void key_cb(void *arg, uint64_t id, const char *spki, const struct tls_cert_info *ci)
{
	(void)arg;
	(void)ci;
	assert_int_equal(id, 1);
	assert_int_equal(spki[0], 'e');
	keys_seen++;
}

static void session(struct tls_store_session *s, uint64_t t, int server, const struct tls_store_cert *c,
                    const char *ja3md5)
{
	memset(s, 0, sizeof(*s));
	s->time = t;
	s->client[10] = s->client[11] = 0xff;
	s->client[12] = 192, s->client[15] = 1;
	s->server[10] = s->server[11] = 0xff;
	s->server[12] = 198, s->server[15] = (uint8_t)server;
	s->client_port = 40000;
	s->server_port = 443;
	s->ja3 = "771,1-2,0,29,0";
	s->ja3_md5 = ja3md5;
	s->ja4 = "t13d0102h2_000000000000_000000000000";
	s->sni = "a.example";
	s->n_certs = c ? 1 : 0;
	s->certs = c;
}

static void test_store_and_query(void **state)
{
	(void)state;
	struct tls_store *st;
	struct tls_store_config cfg = {.path = dir, .no_sync = true, .batch_max = 3};
	assert_int_equal(tls_store_open(&st, &cfg), 0);
	tls_store_set_key_cb(st, key_cb, NULL);
	struct tls_cert_info a, b;
	cert_info(&a, 'a', "CN=a.example");
	cert_info(&b, 'b', "CN=b.example");
	struct tls_store_cert ca = {der_a, sizeof(der_a), &a}, cb = {der_b, sizeof(der_b), &b};
	struct tls_store_session s;
	const char *md5 = "0123456789abcdef0123456789abcdef";
	for (int i = 0; i < 7; i++) { /* 7 sessions over 3 batches (batch_max 3), 3 servers */
		session(&s, 1000 + (uint64_t)i, 1 + i % 3, &ca, md5);
		assert_int_equal(tls_store_add_session(st, &s), 0);
	}
	session(&s, 500, 9, &cb, md5); /* earlier, other certificate, same key */
	assert_int_equal(tls_store_add_session(st, &s), 0);
	session(&s, 2000, 9, NULL, "ffffffffffffffffffffffffffffffff");
	assert_int_equal(tls_store_add_session(st, &s), 0);
	assert_int_equal(tls_store_flush(st), 0);
	assert_int_equal(keys_seen, 1);
	const struct tls_store_stats *ss = tls_store_stats(st);
	assert_int_equal(ss->sessions, 9);
	assert_int_equal(ss->certs_new, 2);
	assert_int_equal(ss->keys_new, 1);
	assert_true(ss->commits >= 3);
	/* one finding per kind and key */
	json_t *ev = json_pack("{s:i}", "x", 1);
	assert_int_equal(tls_store_add_finding(st, "rsa-small", a.spki_sha256, 5, ev), 0);
	assert_int_equal(tls_store_add_finding(st, "rsa-small", a.spki_sha256, 6, ev), 0);
	json_decref(ev);
	char h[65];
	assert_int_equal(tls_store_key_hash(st, 1, h), 0);
	assert_string_equal(h, a.spki_sha256);
	assert_int_equal(tls_store_key_hash(st, 7, h), -ENOENT);
	tls_store_close(st);

	struct tls_store_config ro = {.path = dir, .readonly = true};
	assert_int_equal(tls_store_open(&st, &ro), 0);
	int err = 0;
	json_t *j = tls_query_pivot(st, "ja3", "0123456789ABCDEF0123456789ABCDEF", NULL, 0, &err);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 8);
	assert_int_equal(json_integer_value(json_object_get(j, "first_seen")), 500);
	assert_int_equal(json_integer_value(json_object_get(j, "last_seen")), 1006);
	assert_string_equal(json_string_value(json_object_get(j, "detail")), "771,1-2,0,29,0");
	json_decref(j);
	/* by SHA-1, with its links, paged two at a time */
	char sha1[41];
	memset(sha1, 'a', 40);
	sha1[40] = 0;
	const char *cursor = NULL;
	char cur[600];
	int servers = 0, pages = 0;
	do {
		j = tls_query_pivot(st, "cert", sha1, cursor, 2, &err);
		assert_non_null(j);
		assert_int_equal(json_integer_value(json_object_get(j, "count")), 7);
		assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cert"), "cn")), "a.example");
		json_t *links = json_object_get(j, "links"), *l;
		size_t i;
		assert_true(json_array_size(links) <= 2);
		json_array_foreach(links, i, l)
		{
			if (!strcmp(json_string_value(json_object_get(l, "kind")), "server"))
				servers++;
		}
		json_t *next = json_object_get(j, "next");
		cursor = NULL;
		if (json_is_string(next)) {
			snprintf(cur, sizeof(cur), "%s", json_string_value(next));
			cursor = cur;
		}
		json_decref(j);
		pages++;
	} while (cursor && pages < 20);
	assert_int_equal(servers, 3);
	assert_true(pages >= 3);
	/* sessions of a server, paged */
	j = tls_query_sessions(st, "server", "198.0.0.1", NULL, 2, &err);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "sessions")), 2);
	const char *next = json_string_value(json_object_get(j, "next"));
	assert_non_null(next);
	snprintf(cur, sizeof(cur), "%s", next);
	json_decref(j);
	j = tls_query_sessions(st, "server", "198.0.0.1", cur, 2, &err);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "sessions")), 1);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	/* the key behind two subjects is a shared-key finding; rsa-small once */
	j = tls_query_findings(st, NULL, 0, &err);
	assert_non_null(j);
	json_t *fs = json_object_get(j, "findings"), *f;
	size_t i;
	int shared = 0, small = 0;
	json_array_foreach(fs, i, f)
	{
		const char *k = json_string_value(json_object_get(f, "kind"));
		shared += !strcmp(k, "shared-key");
		small += !strcmp(k, "rsa-small");
	}
	assert_int_equal(shared, 1);
	assert_int_equal(small, 1);
	json_decref(j);
	/* refusals */
	assert_null(tls_query_pivot(st, "nope", "x", NULL, 0, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(tls_query_pivot(st, "ja3", "zz", NULL, 0, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(tls_query_pivot(st, "sni", "absent.example", NULL, 0, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(tls_query_sessions(st, "sni", "a.example", "L00", 0, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(tls_query_pivot(st, "server", "not an address", NULL, 0, &err));
	assert_int_equal(err, -EINVAL);
	uint8_t *der;
	size_t len;
	assert_int_equal(tls_query_cert_der(st, sha1, &der, &len), 0);
	assert_int_equal(len, sizeof(der_a));
	assert_memory_equal(der, der_a, len);
	free(der);
	j = tls_query_summary(st, &err);
	assert_int_equal(json_integer_value(json_object_get(j, "sessions")), 9);
	assert_int_equal(json_integer_value(json_object_get(j, "certs")), 2);
	json_decref(j);
	tls_store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_and_query, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
