/*
 * test_pdns_store.c — the passive DNS store and its queries (analyzers/passivedns/
 * pdns_store.c, pdns_query.c): merging of repeated records, both indexes, normalised lookups,
 * paging with cursors (every record exactly once), wildcards, filters, expiry and the counters.
 *
 * Each test gets a fresh store in a mkdtemp() directory, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "pdns_query.h"
#include "pdns_store.h"

struct fixture {
	char dir[64];
	struct pdns_store *st;
};

static const uint8_t U1[16] = {0xcd, 0x98, 0x0d, 0x75, 1};
static const uint8_t U2[16] = {0x11, 0x22, 0x33, 0x44, 2};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_pdns_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	struct pdns_store_opts o = {.path = f->dir, .map_size_mb = 64, .batch = 8};
	if (pdns_store_open(&f->st, &o, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];
	pdns_store_close(f->st);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void add(struct pdns_store *st, const char *line, const uint8_t *uuid)
{
	struct pdns_rec r;
	uint32_t sid;
	assert_int_equal(pdns_parse_csv((const uint8_t *)line, strlen(line), &r), PDNS_OK);
	assert_int_equal(pdns_store_sensor(st, uuid, &sid), 0);
	assert_int_equal(pdns_store_add(st, &r, sid), 0);
}

struct answers {
	json_t *objs[256];
	int n;
};

static int collect(void *arg, const char *json, size_t len)
{
	struct answers *a = arg;
	json_error_t e;
	json_t *o = json_loadb(json, len, 0, &e);
	assert_non_null(o);
	assert_true(a->n < 256);
	a->objs[a->n++] = o;
	return 0;
}

static int count_cb(void *arg, const char *json, size_t len)
{
	(void)json;
	(void)len;
	(*(size_t *)arg)++;
	return 0;
}

static void answers_free(struct answers *a)
{
	for (int i = 0; i < a->n; i++)
		json_decref(a->objs[i]);
	a->n = 0;
}

/* Runs a query; returns the result code; answers in *a. params: "key=value" list, NULL end. */
static int run(struct pdns_store *st, enum pdns_qkind kind, const char *term,
               struct answers *a, struct pdns_query_result *res, ...)
{
	struct pdns_query q;
	const char *why;
	va_list ap;
	pdns_query_init(&q, kind);
	q.now = 2000000000;
	if (pdns_query_set_term(&q, term, &why) != 0)
		return -1;
	va_start(ap, res);
	for (const char *kv; (kv = va_arg(ap, const char *)) != NULL;) {
		char k[32];
		const char *eq = strchr(kv, '=');
		assert_non_null(eq);
		snprintf(k, sizeof(k), "%.*s", (int)(eq - kv), kv);
		if (pdns_query_set_param(&q, k, eq + 1, &why) != 0) {
			va_end(ap);
			return -1;
		}
	}
	va_end(ap);
	return pdns_query_run(st, &q, collect, a, res, &why);
}

static const char *s(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	return json_string_value(v);
}

static long long n(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void test_merge_and_lookup(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;

	add(f->st, "1000||c||s||IN||www.example.com.||A||192.0.2.1||60||5", U1);
	add(f->st, "900||c||s||IN||WWW.EXAMPLE.COM||A||192.0.2.1||60||2", U2);
	add(f->st, "1100||c||s||IN||www.example.com.||A||192.0.2.1||60||1", U1);
	add(f->st, "1000||c||s||IN||www.example.com.||AAAA||2001:DB8:0:0::1||60||1", U1);
	add(f->st, "1000||c||s||IN||alias.example.org.||CNAME||WWW.example.com.||60||4", U1);
	assert_int_equal(pdns_store_commit(f->st), 0);

	assert_int_equal(run(f->st, PDNS_Q_QUERY, "Www.Example.Com.", &a, &res, NULL), 0);
	assert_int_equal(a.n, 2);
	assert_string_equal(s(a.objs[0], "rrtype"), "A");
	assert_string_equal(s(a.objs[0], "rdata"), "192.0.2.1");
	assert_int_equal(n(a.objs[0], "count"), 8);
	assert_int_equal(n(a.objs[0], "time_first"), 900);
	assert_int_equal(n(a.objs[0], "time_last"), 1100);
	assert_int_equal(json_array_size(json_object_get(a.objs[0], "sensor_ids")), 2);
	assert_string_equal(s(a.objs[1], "rdata"), "2001:db8::1");
	assert_false(res.more);
	answers_free(&a);

	/* an address spelled otherwise; the reverse lookup gives only the records with it */
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "2001:0db8::0:1", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "rrname"), "www.example.com");
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "192.0.2.1", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	answers_free(&a);
	/* fquery of a name: the records pointing at it */
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "WWW.example.com.", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "rrname"), "alias.example.org");
	assert_string_equal(s(a.objs[0], "rrtype"), "CNAME");
	answers_free(&a);
	/* filters */
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "www.example.com", &a, &res, "rrtype=aaaa", NULL), 0);
	assert_int_equal(a.n, 1);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "www.example.com", &a, &res, "since=1050", NULL), 0);
	assert_int_equal(a.n, 1); /* the A record, last seen 1100 */
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "www.example.com", &a, &res, "until=950", NULL), 0);
	assert_int_equal(a.n, 1); /* the A record, first seen 900 */
	answers_free(&a);
	/* misses and bad input */
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "nothing.example", &a, &res, NULL), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "x", &a, &res, "rrtype=NOPE", NULL), -1);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "x", &a, &res, "limit=0", NULL), -1);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "x", &a, &res, "cursor=zz", NULL), -1);
}

/* Pages through a query with limit; every record exactly once. Returns the total. */
static int page_all(struct pdns_store *st, const char *term, int limit, int expect_total)
{
	char cursor[PDNS_CURSOR_MAX + 16] = "", lim[32], seen[4096] = "";
	int total = 0, pages = 0;
	snprintf(lim, sizeof(lim), "limit=%d", limit);
	for (;;) {
		struct answers a = {0};
		struct pdns_query_result res;
		char cur[sizeof(cursor) + 8];
		snprintf(cur, sizeof(cur), "cursor=%s", cursor);
		int rc = cursor[0] ? run(st, PDNS_Q_QUERY, term, &a, &res, lim, cur, NULL)
		                   : run(st, PDNS_Q_QUERY, term, &a, &res, lim, NULL);
		assert_int_equal(rc, 0);
		assert_true(a.n <= limit);
		for (int i = 0; i < a.n; i++) {
			char key[300];
			snprintf(key, sizeof(key), "|%s %s|", s(a.objs[i], "rrname"), s(a.objs[i], "rdata"));
			assert_null(strstr(seen, key));
			assert_true(strlen(seen) + strlen(key) < sizeof(seen));
			strcat(seen, key);
		}
		total += a.n;
		answers_free(&a);
		assert_true(++pages < 100);
		if (!res.more)
			break;
		snprintf(cursor, sizeof(cursor), "%s", res.next_cursor);
	}
	assert_int_equal(total, expect_total);
	return total;
}

static void test_paging_and_wildcard(void **state)
{
	struct fixture *f = *state;
	char line[256];
	for (int i = 0; i < 25; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||big.example.net.||A||10.0.0.%d||60||1", i);
		add(f->st, line, U1);
	}
	for (int i = 0; i < 7; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||h%d.sub.example.net.||A||10.1.0.%d||60||1",
		         i, i);
		add(f->st, line, U1);
	}
	add(f->st, "1000||c||s||IN||notexample.net.||A||10.2.0.1||60||1", U1);
	add(f->st, "1000||c||s||IN||example.net.||A||10.2.0.2||60||1", U1);
	assert_int_equal(pdns_store_commit(f->st), 0);

	page_all(f->st, "big.example.net", 10, 25);
	page_all(f->st, "big.example.net", 25, 25);
	page_all(f->st, "big.example.net", 1, 25);
	/* names under example.net, not example.net itself nor notexample.net */
	page_all(f->st, "*.example.net", 4, 32);
	page_all(f->st, "*.sub.example.net", 3, 7);
	page_all(f->st, "*.Example.NET.", 100, 32);

	/* a cursor of another query is refused */
	struct answers a = {0};
	struct pdns_query_result res;
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "big.example.net", &a, &res, "limit=1", NULL), 0);
	assert_true(res.more);
	char cur[sizeof(res.next_cursor) + 8];
	snprintf(cur, sizeof(cur), "cursor=%s", res.next_cursor);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "example.net", &a, &res, cur, NULL), -1);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.0.0.1", &a, &res, cur, NULL), -1);
}

static void test_scan_budget_gives_cursor(void **state)
{
	struct fixture *f = *state;
	char line[256];
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||n%02d.budget.test||TXT||t%d||60||1", i, i);
		add(f->st, line, U1);
	}
	add(f->st, "1000||c||s||IN||zz.budget.test||A||10.9.9.9||60||1", U1);
	assert_int_equal(pdns_store_commit(f->st), 0);
	/* a selective filter with a tiny scan budget: cursors, never a silent stop */
	struct pdns_query q;
	struct pdns_query_result res;
	struct answers a = {0};
	const char *why;
	int rounds = 0;
	pdns_query_init(&q, PDNS_Q_QUERY);
	assert_int_equal(pdns_query_set_term(&q, "*.budget.test", &why), 0);
	assert_int_equal(pdns_query_set_param(&q, "rrtype", "A", &why), 0);
	q.scan_max = 5;
	for (;;) {
		assert_int_equal(pdns_query_run(f->st, &q, collect, &a, &res, &why), 0);
		assert_true(++rounds < 100);
		if (!res.more)
			break;
		assert_int_equal(pdns_query_set_param(&q, "cursor", res.next_cursor, &why), 0);
	}
	assert_true(rounds > 2);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "rdata"), "10.9.9.9");
	answers_free(&a);
}

static void test_expire_and_stats(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;
	size_t deleted;
	char *info;

	add(f->st, "1000||c||s||IN||old.example||TXT||gone||60||1", U1);
	add(f->st, "1999999990||c||s||IN||old.example||TXT||fresh||60||1", U1);
	add(f->st, "1000||c||s||IN||old.example||A||192.0.2.9||60||1", U1);
	pdns_store_count(f->st, PDNS_S__BASE + PDNS_R_TTL, 2);
	assert_int_equal(pdns_store_set_expire(f->st, "TXT=100"), 0);
	assert_int_equal(pdns_store_set_expire(f->st, "TXT=x"), -1);
	assert_int_equal(pdns_store_commit(f->st), 0);

	/* hidden at query time (now = 2e9), then purged */
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "old.example", &a, &res, NULL), 0);
	assert_int_equal(a.n, 2);
	answers_free(&a);
	assert_int_equal(pdns_store_purge(f->st, 2000000000, 1000, &deleted), 0);
	assert_int_equal(deleted, 1);
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "gone", &a, &res, NULL), 0);
	assert_int_equal(a.n, 0);

	assert_int_equal(pdns_query_info(f->st, &info), 0);
	json_t *o = json_loads(info, 0, NULL);
	assert_non_null(o);
	json_t *stats = json_object_get(o, "stats");
	assert_int_equal(json_integer_value(json_object_get(stats, "rejected.ttl")), 2);
	assert_int_equal(json_integer_value(json_object_get(stats, "distinct")), 3);
	assert_int_equal(json_integer_value(json_object_get(stats, "expired")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "store"), "records")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "expire"), "TXT")), 100);
	json_decref(o);
	free(info);
}

static void test_purge_in_chunks(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;
	char line[256];
	size_t deleted, total = 0;
	int rc, calls = 0;
	for (int i = 0; i < 3000; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||p%d.example||TXT||t%d||60||1", i, i % 7);
		add(f->st, line, U1);
		snprintf(line, sizeof(line), "1000||c||s||IN||p%d.example||A||10.0.%d.%d||60||1", i,
		         i / 256, i % 256);
		add(f->st, line, U1);
	}
	assert_int_equal(pdns_store_set_expire(f->st, "TXT=60"), 0);
	do {
		rc = pdns_store_purge(f->st, 2000000000, 100, &deleted);
		assert_true(rc == 0 || rc == 1);
		assert_true(deleted <= 100);
		total += deleted;
		assert_true(++calls < 1000);
	} while (rc == 1);
	assert_int_equal(total, 3000);
	assert_true(calls >= 30);
	/* the A records stay, the TXT ones are gone from both indexes */
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "t3", &a, &res, NULL), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "*.example", &a, &res, "rrtype=TXT", NULL), 0);
	assert_int_equal(a.n, 0);
	struct pdns_query q;
	const char *why;
	size_t n = 0;
	pdns_query_init(&q, PDNS_Q_QUERY);
	assert_int_equal(pdns_query_set_term(&q, "*.example", &why), 0);
	assert_int_equal(pdns_query_set_param(&q, "limit", "100000", &why), 0);
	assert_int_equal(pdns_query_run(f->st, &q, count_cb, &n, &res, &why), 0);
	assert_int_equal(n, 3000);
	assert_int_equal(res.emitted, 3000);
	assert_false(res.more);
}

static void test_reopen(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;
	char err[256];
	add(f->st, "1000||c||s||IN||keep.example||A||192.0.2.7||60||3", U1);
	pdns_store_close(f->st); /* commits */
	struct pdns_store_opts o = {.path = f->dir, .map_size_mb = 64};
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), 0);
	add(f->st, "2000||c||s||IN||keep.example||A||192.0.2.7||60||1", U1);
	add(f->st, "2000||c||s||IN||new.example||A||192.0.2.8||60||1", U2);
	pdns_store_close(f->st);
	o.readonly = true;
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), 0);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "keep.example", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(n(a.objs[0], "count"), 4);
	assert_int_equal(n(a.objs[0], "time_last"), 2000);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "new.example", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "sensor_id"), "11223344-0200-0000-0000-000000000000");
	answers_free(&a);
}

static void rm_store(const char *dir)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static void test_repack(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;
	char line[256], err[256], dst[96];
	for (int i = 0; i < 2000; i++) {
		snprintf(line, sizeof(line), "%d||c||s||IN||r%d.repack.test||A||10.%d.%d.%d||60||2",
		         1000 + i, i % 500, i % 7, i / 256, i % 256);
		add(f->st, line, i % 3 ? U1 : U2);
	}
	pdns_store_count(f->st, PDNS_S__BASE + PDNS_R_UTF8, 3);
	pdns_store_close(f->st); /* commits */
	f->st = NULL;
	snprintf(dst, sizeof(dst), "%s.packed", f->dir);
	assert_int_equal(pdns_store_repack(f->dir, dst, err, sizeof(err)), 0);
	/* a second repack onto a store is refused */
	assert_int_equal(pdns_store_repack(f->dir, dst, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already"));

	struct pdns_store_opts o = {.path = dst, .map_size_mb = 64};
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), 0);
	/* the repacked store answers the same and takes more records (ids go on) */
	add(f->st, "5000||c||s||IN||new.repack.test||CNAME||r1.repack.test||60||1", U2);
	assert_int_equal(pdns_store_commit(f->st), 0);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "r7.repack.test", &a, &res, NULL), 0);
	assert_int_equal(a.n, 4);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "r1.repack.test", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "rrname"), "new.repack.test");
	answers_free(&a);
	char *info;
	assert_int_equal(pdns_query_info(f->st, &info), 0);
	json_t *io = json_loads(info, 0, NULL);
	assert_non_null(io);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(io, "store"), "records")), 2001);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(io, "store"), "sensors")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(io, "stats"), "rejected.utf8")), 3);
	json_decref(io);
	free(info);
	pdns_store_close(f->st);
	f->st = NULL;
	rm_store(dst);
	struct pdns_store_opts o2 = {.path = f->dir, .map_size_mb = 64};
	assert_int_equal(pdns_store_open(&f->st, &o2, err, sizeof(err)), 0);
}

/* Strings across i2s buckets, partial buckets rewritten by later commits and reopens. */
static void test_string_buckets(void **state)
{
	struct fixture *f = *state;
	struct answers a = {0};
	struct pdns_query_result res;
	char line[256], err[256], name[64];
	struct pdns_store_opts o = {.path = f->dir, .map_size_mb = 64, .batch = 5};
	int total = 0;
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 77; i++, total++) {
			snprintf(line, sizeof(line), "1000||c||s||IN||b%d-%s.bucket.test||TXT||v%d||60||1",
			         total, total % 2 ? "odd" : "even", total);
			add(f->st, line, U1);
			if (i % 10 == 9)
				assert_int_equal(pdns_store_commit(f->st), 0);
		}
		pdns_store_close(f->st);
		assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), 0);
	}
	assert_int_equal(total, 308);
	for (int i = 0; i < total; i++) {
		snprintf(name, sizeof(name), "b%d-%s.bucket.test", i, i % 2 ? "odd" : "even");
		assert_int_equal(run(f->st, PDNS_Q_QUERY, name, &a, &res, NULL), 0);
		assert_int_equal(a.n, 1);
		snprintf(line, sizeof(line), "v%d", i);
		assert_string_equal(s(a.objs[0], "rdata"), line);
		assert_string_equal(s(a.objs[0], "rrname"), name);
		answers_free(&a);
	}
	uint8_t one[] = {3, 'a', 'b', 'c', 0, 2, 'x', 'y'};
	const uint8_t *p;
	size_t n;
	assert_int_equal(pdns_bucket_count(one, sizeof(one)), 3);
	assert_int_equal(pdns_bucket_get(one, sizeof(one), 2, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "xy", 2);
	assert_int_equal(pdns_bucket_get(one, sizeof(one), 1, &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pdns_bucket_get(one, sizeof(one), 3, &p, &n), -1);
	one[5] = 9; /* a length past the end */
	assert_int_equal(pdns_bucket_get(one, sizeof(one), 2, &p, &n), -1);
	assert_int_equal(pdns_bucket_count(one, sizeof(one)), 2);
}

/* Pages through an rdata query with a small limit: every name exactly once. */
static size_t page_rdata(struct pdns_store *st, enum pdns_qkind kind, const char *term,
                         const char *suffix, unsigned char *seen, size_t nseen)
{
	char cursor[PDNS_CURSOR_MAX + 16] = "", cur[PDNS_CURSOR_MAX + 24];
	size_t total = 0;
	for (int pages = 0; pages < 1000; pages++) {
		struct answers a = {0};
		struct pdns_query_result res;
		snprintf(cur, sizeof(cur), "cursor=%s", cursor);
		int rc = cursor[0] ? run(st, kind, term, &a, &res, "limit=37", cur, NULL)
		                   : run(st, kind, term, &a, &res, "limit=37", NULL);
		assert_int_equal(rc, 0);
		for (int i = 0; i < a.n; i++) {
			unsigned idx;
			char rest[64];
			assert_int_equal(sscanf(s(a.objs[i], "rrname"), "n%u.%63s", &idx, rest), 2);
			assert_string_equal(rest, suffix);
			assert_true(idx < nseen);
			assert_int_equal(seen[idx], 0);
			seen[idx] = 1;
		}
		total += (size_t)a.n;
		answers_free(&a);
		if (!res.more)
			return total;
		snprintf(cursor, sizeof(cursor), "%s", res.next_cursor);
	}
	fail_msg("no end of paging");
	return 0;
}

/*
 * The reverse index keeps an entry as a fixed-size duplicate under a short key shared by
 * neighbours ('4' + the first two address bytes): many names on one address (a sub-tree of
 * duplicates), neighbour addresses under the same key, string rdata, paging, expiry.
 */
static void test_reverse_index_shared(void **state)
{
	struct fixture *f = *state;
	char line[256];
	static unsigned char seen[700];
	size_t deleted;
	for (int i = 0; i < 600; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||n%d.shared.test||A||10.7.0.1||60||1", i);
		add(f->st, line, U1);
		snprintf(line, sizeof(line), "1000||c||s||IN||n%d.cname.test||CNAME||Edge.CDN.test.||60||1", i);
		add(f->st, line, U1);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||n%d.near.test||A||10.7.%d.%d||60||1", i,
		         1 + i / 100, i % 100);
		add(f->st, line, U2);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||n%d.six.test||AAAA||2001:db8::1||60||1", i);
		add(f->st, line, U2);
	}
	assert_int_equal(pdns_store_commit(f->st), 0);

	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_QUERY, "10.7.0.1", "shared.test", seen, 600), 600);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_FQUERY, "edge.cdn.test", "cname.test", seen, 600), 600);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_QUERY, "2001:DB8::1", "six.test", seen, 40), 40);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_QUERY, "10.7.1.5", "near.test", seen, 200), 1);
	assert_int_equal(seen[5], 1);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_QUERY, "10.7.0.2", "near.test", seen, 200), 0);

	/* a cursor of one address is not one of its neighbour's */
	struct answers a = {0};
	struct pdns_query_result res;
	char cur[PDNS_CURSOR_MAX + 24];
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.7.0.1", &a, &res, "limit=1", NULL), 0);
	assert_true(res.more);
	answers_free(&a);
	snprintf(cur, sizeof(cur), "cursor=%s", res.next_cursor);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.7.1.5", &a, &res, cur, NULL), -1);
	assert_int_equal(run(f->st, PDNS_Q_FQUERY, "edge.cdn.test", &a, &res, cur, NULL), -1);

	/* expiry removes the index entries with their records */
	MDB_txn *txn;
	MDB_stat ms;
	assert_int_equal(pdns_store_set_expire(f->st, "A=100"), 0);
	assert_int_equal(pdns_store_commit(f->st), 0);
	while (pdns_store_purge(f->st, 2000000000, 300, &deleted) == 1)
		;
	assert_int_equal(page_rdata(f->st, PDNS_Q_QUERY, "10.7.0.1", "shared.test", seen, 600), 0);
	assert_int_equal(pdns_store_read_begin(f->st, &txn), 0);
	assert_int_equal(mdb_stat(txn, pdns_store_dbis(f->st)->rdx, &ms), 0);
	assert_int_equal(ms.ms_entries, 600);
	assert_int_equal(mdb_stat(txn, pdns_store_dbis(f->st)->rdx6, &ms), 0);
	assert_int_equal(ms.ms_entries, 40);
	mdb_txn_abort(txn);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(page_rdata(f->st, PDNS_Q_FQUERY, "edge.cdn.test", "cname.test", seen, 600), 600);
}

/* Page through the records of a name one at a time; returns how many, checks key order. */
static int page_name(struct pdns_store *st, const char *name, char rdata[][48], int max)
{
	struct answers a = {0};
	struct pdns_query_result res;
	char cur[PDNS_CURSOR_MAX + 24] = "limit=1";
	int got = 0;
	for (int guard = 0; guard < 1000; guard++) {
		assert_int_equal(run(st, PDNS_Q_QUERY, name, &a, &res, "limit=1",
		                     strcmp(cur, "limit=1") ? cur : NULL, NULL), 0);
		for (int i = 0; i < a.n; i++) {
			assert_true(got < max);
			assert_string_equal(s(a.objs[i], "rrname"), name);
			snprintf(rdata[got++], 48, "%s/%s", s(a.objs[i], "rrtype"), s(a.objs[i], "rdata"));
		}
		answers_free(&a);
		if (!res.more)
			break;
		snprintf(cur, sizeof(cur), "cursor=%s", res.next_cursor);
	}
	return got;
}

static size_t entries(struct pdns_store *st, MDB_dbi dbi)
{
	MDB_txn *txn;
	MDB_stat ms;
	assert_int_equal(pdns_store_read_begin(st, &txn), 0);
	assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
	mdb_txn_abort(txn);
	return ms.ms_entries;
}

/*
 * Format 3: records as fixed-size duplicates of rec (rec6 for AAAA), the ones that do not fit
 * (a type without a code, a second sensor, a count over 65535) in rcx; a record that stops
 * fitting moves. The three are merged in key order by name lookups (paging included), found by
 * reverse lookups, updated in place, and purged.
 */
static void test_fixed_and_overflow(void **state)
{
	struct fixture *f = *state;
	const struct pdns_dbis *d = pdns_store_dbis(f->st);
	char line[256], got[64][48];
	struct answers a = {0};
	struct pdns_query_result res;
	size_t deleted;

	for (int i = 1; i <= 20; i++) {
		snprintf(line, sizeof(line), "1000||c||s||IN||mix.test||A||10.0.0.%d||60||1", i);
		add(f->st, line, U1);
	}
	add(f->st, "1000||c||s||IN||mix.test||AAAA||2001:db8::5||60||1", U1);
	add(f->st, "1000||c||s||IN||mix.test||AAAA||2001:db8::6||60||1", U1);
	add(f->st, "1000||c||s||IN||mix.test||A||10.0.1.1||60||16777216", U1);
	add(f->st, "1000||c||s||IN||mix.test||TXT||hello||60||1", U1);
	add(f->st, "1000||c||s||IN||mix.test||TYPE4000||opaque||60||1", U1); /* no type code */
	add(f->st, "1000||c||s||IN||mix.tests||A||10.0.0.1||60||1", U1); /* a neighbour name */
	assert_int_equal(pdns_store_commit(f->st), 0);
	assert_int_equal(entries(f->st, d->rcx), 2);
	assert_int_equal(entries(f->st, d->rec), 22);
	assert_int_equal(entries(f->st, d->rec6), 2);

	/* seen again by the same sensor: updated in place; by another: moves to rcx */
	add(f->st, "900||c||s||IN||mix.test||A||10.0.0.1||60||2", U1);
	add(f->st, "3000||c||s||IN||mix.test||A||10.0.0.2||60||1", U2);
	add(f->st, "3000||c||s||IN||mix.test||AAAA||2001:db8::6||60||1", U2);
	assert_int_equal(pdns_store_commit(f->st), 0);
	assert_int_equal(entries(f->st, d->rcx), 4);
	assert_int_equal(entries(f->st, d->rec), 21);
	assert_int_equal(entries(f->st, d->rec6), 1);

	assert_int_equal(run(f->st, PDNS_Q_QUERY, "mix.test", &a, &res, "rrtype=A", NULL), 0);
	assert_int_equal(a.n, 21);
	for (int i = 0; i < a.n; i++) {
		const char *rd = s(a.objs[i], "rdata");
		if (strcmp(rd, "10.0.0.1") == 0) {
			assert_int_equal(n(a.objs[i], "count"), 3);
			assert_int_equal(n(a.objs[i], "time_first"), 900);
			assert_int_equal(n(a.objs[i], "time_last"), 1000);
			assert_int_equal(json_array_size(json_object_get(a.objs[i], "sensor_ids")), 1);
		} else if (strcmp(rd, "10.0.0.2") == 0) {
			assert_int_equal(n(a.objs[i], "count"), 2);
			assert_int_equal(n(a.objs[i], "time_last"), 3000);
			assert_int_equal(json_array_size(json_object_get(a.objs[i], "sensor_ids")), 2);
		} else if (strcmp(rd, "10.0.1.1") == 0) {
			assert_int_equal(n(a.objs[i], "count"), 16777216);
		} else {
			assert_int_equal(n(a.objs[i], "count"), 1);
		}
	}
	answers_free(&a);
	/* reverse lookups find records in either database */
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.0.0.2", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(n(a.objs[0], "count"), 2);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.0.0.1", &a, &res, NULL), 0);
	assert_int_equal(a.n, 2);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "2001:db8::5", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "2001:db8::6", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(n(a.objs[0], "count"), 2);
	assert_int_equal(json_array_size(json_object_get(a.objs[0], "sensor_ids")), 2);
	answers_free(&a);

	/* paging one by one merges both databases: every record once, in key order */
	int k = page_name(f->st, "mix.test", got, 64);
	assert_int_equal(k, 25);
	for (int i = 0; i < k; i++)
		for (int j = i + 1; j < k; j++)
			assert_string_not_equal(got[i], got[j]);
	/* type order: A (1, rec and rcx), TXT (16, rec), AAAA (28, rec6 and rcx), 4000 (rcx) */
	assert_string_equal(got[k - 1], "TYPE4000/opaque");
	assert_string_equal(got[k - 2], "AAAA/2001:db8::6");
	assert_string_equal(got[k - 3], "AAAA/2001:db8::5");
	assert_string_equal(got[k - 4], "TXT/hello");
	assert_string_equal(got[0], "A/10.0.0.1");
	assert_string_equal(got[20], "A/10.0.1.1");

	/* expiry purges in both databases */
	assert_int_equal(pdns_store_set_expire(f->st, "A=100"), 0);
	assert_int_equal(pdns_store_commit(f->st), 0);
	for (int guard = 0; guard < 100 && pdns_store_purge(f->st, 2000000000, 3, &deleted) == 1;
	     guard++)
		;
	assert_int_equal(entries(f->st, d->rcx), 2);
	assert_int_equal(entries(f->st, d->rec), 1);
	assert_int_equal(entries(f->st, d->rec6), 1);
	assert_int_equal(entries(f->st, d->rdx), 2);
	assert_int_equal(entries(f->st, d->rdx6), 2);
	assert_int_equal(page_name(f->st, "mix.test", got, 64), 4);
}

/*
 * Many records under one 2-byte key of rec: its duplicates outgrow a sub-page into a
 * sub-database; updates in place, lookups and an expiry pass in small chunks work there too.
 */
static void test_fixed_subdb(void **state)
{
	struct fixture *f = *state;
	char line[256], err[256];
	struct answers a = {0};
	struct pdns_query_result res;
	size_t deleted, total = 0;
	struct pdns_store_opts o = {.path = f->dir, .map_size_mb = 64, .batch = 4096};
	pdns_store_close(f->st);
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), 0);
	const struct pdns_dbis *d = pdns_store_dbis(f->st);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1500; i++) {
			snprintf(line, sizeof(line), "%d||c||s||IN||h%d.sub.test||A||10.1.%d.%d||60||1",
			         1000 + round, i, i / 256, i % 256);
			add(f->st, line, U1);
			snprintf(line, sizeof(line), "%d||c||s||IN||h%d.sub.test||TXT||t%d||60||1",
			         1000 + round, i, i);
			add(f->st, line, U1);
		}
		assert_int_equal(pdns_store_commit(f->st), 0);
	}
	assert_int_equal(entries(f->st, d->rec), 3000);
	assert_int_equal(entries(f->st, d->rcx), 0);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "h777.sub.test", &a, &res, NULL), 0);
	assert_int_equal(a.n, 2);
	for (int i = 0; i < a.n; i++) {
		assert_int_equal(n(a.objs[i], "count"), 2);
		assert_int_equal(n(a.objs[i], "time_first"), 1000);
		assert_int_equal(n(a.objs[i], "time_last"), 1001);
	}
	answers_free(&a);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "10.1.3.9", &a, &res, NULL), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(s(a.objs[0], "rrname"), "h777.sub.test");
	answers_free(&a);
	assert_int_equal(pdns_store_set_expire(f->st, "A=100"), 0);
	assert_int_equal(pdns_store_commit(f->st), 0);
	int rc, guard = 0;
	while ((rc = pdns_store_purge(f->st, 2000000000, 97, &deleted)) == 1 && guard++ < 1000)
		total += deleted;
	assert_int_equal(rc, 0);
	total += deleted;
	assert_int_equal(total, 1500);
	assert_int_equal(entries(f->st, d->rec), 1500);
	assert_int_equal(entries(f->st, d->rdx), 1500);
	assert_int_equal(run(f->st, PDNS_Q_QUERY, "*.sub.test", &a, &res, "limit=200", NULL), 0);
	assert_int_equal(a.n, 200);
	for (int i = 0; i < a.n; i++)
		assert_string_equal(s(a.objs[i], "rrtype"), "TXT");
	answers_free(&a);
}

/* A store of another format is refused with a reason, not misread. */
static void test_format(void **state)
{
	struct fixture *f = *state;
	char err[256], dir[64];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	struct pdns_store_opts o = {.path = f->dir, .map_size_mb = 64};
	add(f->st, "1000||c||s||IN||fmt.test||A||10.0.0.1||60||1", U1);
	pdns_store_close(f->st);
	f->st = NULL;
	/* a format number from elsewhere */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	MDB_val k = {6, "format"}, v = {2, "99"};
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_memory_equal(v.mv_data, PDNS_FORMAT, strlen(PDNS_FORMAT));
	v.mv_size = 2;
	v.mv_data = "99";
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "format 99"));
	o.readonly = true;
	assert_int_equal(pdns_store_open(&f->st, &o, err, sizeof(err)), -1);

	/* a format 1 store: rdx without duplicates */
	snprintf(dir, sizeof(dir), "/tmp/test_pdns_fmt1.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	static const char *const names[] = {"s2i", "i2s", "rec", "rdx", "sensor", "meta"};
	for (int i = 0; i < 6; i++) {
		assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi), 0);
		if (i == 3) { /* one format 1 index entry: '4' 10.0.0.1 A name 16 -> empty */
			MDB_val ik = {11, "4\x0a\0\0\x01\0\x01\0\0\0\x10"}, iv = {0, NULL};
			assert_int_equal(mdb_put(txn, dbi, &ik, &iv, 0), 0);
		}
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	struct pdns_store_opts o1 = {.path = dir, .map_size_mb = 64};
	assert_int_equal(pdns_store_open(&f->st, &o1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "older format"));
	rm_store(dir);
	f->st = NULL;
}

static void test_readonly_missing(void **state)
{
	char err[256];
	struct pdns_store *st;
	(void)state;
	struct pdns_store_opts o = {.path = "/nonexistent/pdns", .readonly = true};
	assert_int_equal(pdns_store_open(&st, &o, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
}

static void test_val_codec(void **state)
{
	struct pdns_val v = {.first = 1322849924, .last = 1322849999, .count = 300, .nsensors = 2,
	                     .sensors = {1, 70000}}, w;
	uint8_t b[PDNS_VAL_MAX];
	(void)state;
	size_t len = pdns_val_encode(&v, b);
	assert_true(len <= 5 + 2 + 2 + 1 + 3);
	assert_int_equal(pdns_val_decode(b, len, &w), 0);
	assert_int_equal(w.first, v.first);
	assert_int_equal(w.last, v.last);
	assert_int_equal(w.count, 300);
	assert_int_equal(w.nsensors, 2);
	assert_int_equal(w.sensors[1], 70000);
	assert_int_equal(pdns_val_decode(b, 2, &w), -1);
	b[0] = 0x80;
	assert_int_equal(pdns_val_decode(b, 1, &w), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merge_and_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging_and_wildcard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_budget_gives_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_in_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reverse_index_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fixed_and_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fixed_subdb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test(test_readonly_missing),
		cmocka_unit_test(test_val_codec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
