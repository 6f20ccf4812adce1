/*
 * test_tls_weakkeys.c — weak-key detection: the batch GCD against an
 * independent pairwise gcd (the shared 100-moduli vector when present, our own
 * 40-moduli vector always: pairs, a triple, a duplicate, a modulus sharing both
 * primes), thread counts, the incremental set (one by one, bulk then add), and
 * the per-key RSA/EC checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "weakkeys.h"

struct vec {
	mpz_t *m;
	size_t n;
	uint8_t *share; /* share[i*n+j]: 1 gcd>1 (distinct), 2 identical */
};

static void pairwise(struct vec *v);

static int load(const char *dir, const char *rel, struct vec *v)
{
	char path[1024];
	if (dir == NULL || dir[0] == '\0')
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	int rc = wk_read_hex_moduli(f, &v->m, &v->n);
	fclose(f);
	assert_int_equal(rc, 0);
	pairwise(v);
	return 0;
}

/* The truth: share[i][j] by a gcd over every pair. */
static void pairwise(struct vec *v)
{
	v->share = calloc(v->n * v->n, 1);
	assert_non_null(v->share);
	mpz_t g;
	mpz_init(g);
	for (size_t i = 0; i < v->n; i++)
		for (size_t j = i + 1; j < v->n; j++) {
			uint8_t s = 0;
			if (mpz_cmp(v->m[i], v->m[j]) == 0)
				s = 2;
			else {
				mpz_gcd(g, v->m[i], v->m[j]);
				s = mpz_cmp_ui(g, 1) > 0;
			}
			v->share[i * v->n + j] = v->share[j * v->n + i] = s;
		}
	mpz_clear(g);
}

static void vec_free(struct vec *v)
{
	wk_free_moduli(v->m, v->n);
	free(v->share);
}

static const struct wk_finding *find_id(const struct wk_result *r, uint64_t id)
{
	for (size_t i = 0; i < r->count; i++)
		if (r->findings[i].id == id)
			return &r->findings[i];
	return NULL;
}

/* Checks one finding of modulus i against the pairwise truth over moduli [0, upto). */
static void check_finding(const struct vec *v, size_t i, size_t upto, const struct wk_finding *f)
{
	bool dup = false, shared = false;
	size_t npeers = 0;
	for (size_t j = 0; j < upto; j++) {
		uint8_t s = j == i ? 0 : v->share[i * v->n + j];
		dup |= s == 2;
		shared |= s == 1;
		npeers += s != 0;
	}
	assert_int_equal(f->n_peers_total, npeers);
	assert_int_equal((f->flags & WK_DUPLICATE) != 0, dup);
	assert_int_equal((f->flags & WK_SHARED_PRIME) != 0, shared);
	for (size_t k = 0; k < f->n_peers; k++) {
		assert_true(f->peers[k] < upto);
		assert_int_not_equal(v->share[i * v->n + f->peers[k]], 0);
		if (k > 0)
			assert_true(f->peers[k - 1] < f->peers[k]);
	}
	if (shared) {
		/* N = p·q, 1 < p < N (all our moduli are products of two primes), p
		 * divides a peer */
		mpz_t t;
		mpz_init(t);
		mpz_mul(t, f->p, f->q);
		assert_int_equal(mpz_cmp(t, v->m[i]), 0);
		assert_true(mpz_cmp_ui(f->p, 1) > 0);
		assert_true(mpz_cmp(f->p, v->m[i]) < 0);
		bool divides = false;
		for (size_t j = 0; j < upto; j++)
			if (j != i && v->share[i * v->n + j] == 1 && mpz_divisible_p(v->m[j], f->p))
				divides = true;
		assert_true(divides);
		mpz_clear(t);
	}
}

/* The batch result is exactly the moduli that share with another, each right. */
static void check_batch(const struct vec *v, const struct wk_result *r)
{
	size_t expect = 0;
	for (size_t i = 0; i < v->n; i++) {
		bool weak = false;
		for (size_t j = 0; j < v->n; j++)
			weak |= v->share[i * v->n + j] != 0;
		const struct wk_finding *f = find_id(r, i);
		if (!weak) {
			assert_null(f);
			continue;
		}
		expect++;
		assert_non_null(f);
		check_finding(v, i, v->n, f);
	}
	assert_int_equal(r->count, expect);
	for (size_t k = 1; k < r->count; k++)
		assert_true(r->findings[k - 1].id < r->findings[k].id);
}

static void test_shared_vectors(void **state)
{
	(void)state;
	struct vec v = {0};
	if (load(getenv("D4_SHARED_VECTORS"), "keys/rsa1024-moduli-100.hex.txt", &v) != 0) {
		skip();
		return;
	}
	assert_int_equal(v.n, 100);
	struct wk_result r = {0};
	assert_int_equal(wk_batch_gcd((const mpz_t *)v.m, v.n, NULL, 2, &r), 0);
	assert_true(r.count > 0); /* the vector has weak moduli */
	check_batch(&v, &r);
	wk_result_free(&r);
	vec_free(&v);
}

static const char *test_data(void)
{
	const char *d = getenv("D4_TEST_DATA");
	return d ? d : "tests/data";
}

static void test_own_vectors(void **state)
{
	(void)state;
	struct vec v = {0};
	assert_int_equal(load(test_data(), "weakkeys/moduli-40.hex.txt", &v), 0);
	struct wk_result r = {0};
	assert_int_equal(wk_batch_gcd((const mpz_t *)v.m, v.n, NULL, 1, &r), 0);
	check_batch(&v, &r);

	/* and exactly the lines the generator says it made weak, with their kind */
	char path[1024];
	snprintf(path, sizeof(path), "%s/weakkeys/moduli-40.truth.txt", test_data());
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t line, group, count = 0, both_shared = 0;
	char kind[16];
	while (fscanf(f, "%zu %15s %zu", &line, kind, &group) == 3) {
		const struct wk_finding *w = find_id(&r, line);
		assert_non_null(w);
		count++;
		if (strcmp(kind, "dup") == 0) {
			assert_int_equal(w->flags, WK_DUPLICATE);
			assert_int_equal(w->n_peers, 1);
		} else {
			assert_int_equal(w->flags, WK_SHARED_PRIME);
		}
		if (strcmp(kind, "triple") == 0)
			assert_int_equal(w->n_peers, 2);
		if (strcmp(kind, "cross") == 0 && w->n_peers == 2)
			both_shared++; /* A = p·q with B = p·r and C = q·s */
	}
	fclose(f);
	assert_int_equal(count, 14);
	assert_int_equal(r.count, 14);
	assert_int_equal(both_shared, 1);

	/* same answer on 2 and 3 threads, with ids, and from bytes */
	uint64_t *ids = malloc(v.n * sizeof(uint64_t));
	uint8_t **bytes = malloc(v.n * sizeof(uint8_t *));
	size_t *lens = malloc(v.n * sizeof(size_t));
	assert_true(ids && bytes && lens);
	for (size_t i = 0; i < v.n; i++) {
		ids[i] = 1000 + i;
		bytes[i] = mpz_export(NULL, &lens[i], 1, 1, 1, 0, v.m[i]);
	}
	for (unsigned th = 2; th <= 3; th++) {
		struct wk_result r2 = {0};
		if (th == 2)
			assert_int_equal(wk_batch_gcd((const mpz_t *)v.m, v.n, ids, th, &r2), 0);
		else
			assert_int_equal(wk_batch_gcd_bytes((const uint8_t *const *)bytes, lens, v.n,
							    ids, th, &r2),
					 0);
		assert_int_equal(r2.count, r.count);
		for (size_t k = 0; k < r.count; k++) {
			const struct wk_finding *a = &r.findings[k], *b = &r2.findings[k];
			assert_int_equal(b->id, a->id + 1000);
			assert_int_equal(b->flags, a->flags);
			assert_int_equal(mpz_cmp(a->p, b->p), 0);
			assert_int_equal(mpz_cmp(a->q, b->q), 0);
			assert_int_equal(b->n_peers, a->n_peers);
			for (size_t x = 0; x < a->n_peers; x++)
				assert_int_equal(b->peers[x], a->peers[x] + 1000);
		}
		wk_result_free(&r2);
	}
	for (size_t i = 0; i < v.n; i++)
		free(bytes[i]);
	free(bytes);
	free(lens);
	free(ids);
	wk_result_free(&r);
	vec_free(&v);
}

static void test_batch_edges(void **state)
{
	(void)state;
	struct wk_result r = {0};
	assert_int_equal(wk_batch_gcd(NULL, 0, NULL, 0, &r), 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(wk_batch_gcd(NULL, 1, NULL, 0, &r), -EINVAL);

	mpz_t m[5];
	mpz_init_set_ui(m[0], 3 * 5);
	mpz_init_set_ui(m[1], 7 * 11);
	mpz_init_set_ui(m[2], 0); /* ignored */
	mpz_init_set_ui(m[3], 1); /* ignored */
	mpz_init_set_ui(m[4], 5 * 13);
	assert_int_equal(wk_batch_gcd((const mpz_t *)m, 2, NULL, 1, &r), 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(wk_batch_gcd((const mpz_t *)m, 5, NULL, 4, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.findings[0].id, 0);
	assert_int_equal(mpz_get_ui(r.findings[0].p), 5);
	assert_int_equal(mpz_get_ui(r.findings[0].q), 3);
	assert_int_equal(r.findings[1].id, 4);
	assert_int_equal(mpz_get_ui(r.findings[1].p), 5);
	assert_int_equal(r.findings[1].peers[0], 0);
	wk_result_free(&r);
	/* two identical moduli only */
	mpz_set(m[1], m[0]);
	assert_int_equal(wk_batch_gcd((const mpz_t *)m, 2, NULL, 1, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.findings[0].flags, WK_DUPLICATE);
	assert_int_equal(mpz_sgn(r.findings[0].p), 0);
	wk_result_free(&r);
	/* a duplicate that also shares a prime with a third modulus */
	mpz_set_ui(m[2], 5 * 17);
	assert_int_equal(wk_batch_gcd((const mpz_t *)m, 3, NULL, 1, &r), 0);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.findings[0].flags, WK_DUPLICATE | WK_SHARED_PRIME);
	assert_int_equal(r.findings[0].n_peers, 2);
	assert_int_equal(r.findings[2].flags, WK_SHARED_PRIME);
	assert_int_equal(r.findings[2].n_peers, 2);
	assert_int_equal(mpz_get_ui(r.findings[2].p), 5);
	wk_result_free(&r);
	/* a modulus dividing another: its "factor" is itself (q = 1) */
	mpz_set_ui(m[0], 15);
	mpz_set_ui(m[1], 105);
	assert_int_equal(wk_batch_gcd((const mpz_t *)m, 2, NULL, 1, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(mpz_get_ui(r.findings[0].p), 15);
	assert_int_equal(mpz_get_ui(r.findings[0].q), 1);
	assert_int_equal(mpz_get_ui(r.findings[1].p), 15);
	assert_int_equal(mpz_get_ui(r.findings[1].q), 7);
	wk_result_free(&r);
	for (int i = 0; i < 5; i++)
		mpz_clear(m[i]);
}

/* Adding one by one: each check reports exactly the pairwise truth so far. */
static void run_incremental(const struct vec *v, size_t bulk, unsigned batch)
{
	struct wk_set *s = wk_set_new(batch, 2);
	assert_non_null(s);
	for (size_t i = 0; i < bulk; i++)
		assert_int_equal(wk_set_add(s, v->m[i], i), 0);
	for (size_t i = bulk; i < v->n; i++) {
		struct wk_result r = {0};
		assert_int_equal(wk_set_check(s, v->m[i], i, true, &r), 0);
		size_t expect = 0;
		for (size_t j = 0; j < i; j++)
			expect += v->share[i * v->n + j] != 0;
		if (expect == 0) {
			assert_int_equal(r.count, 0);
		} else {
			assert_int_equal(r.count, expect + 1);
			const struct wk_finding *self = find_id(&r, i);
			assert_non_null(self);
			check_finding(v, i, i, self);
			for (size_t j = 0; j < i; j++) {
				if (v->share[i * v->n + j] == 0)
					continue;
				const struct wk_finding *o = find_id(&r, j); /* the other end too */
				assert_non_null(o);
				assert_int_equal(o->n_peers, 1);
				assert_int_equal(o->peers[0], i);
				assert_int_equal(o->flags, v->share[i * v->n + j] == 2 ? WK_DUPLICATE
										       : WK_SHARED_PRIME);
				if (o->flags == WK_SHARED_PRIME) {
					mpz_t t;
					mpz_init(t);
					mpz_mul(t, o->p, o->q);
					assert_int_equal(mpz_cmp(t, v->m[j]), 0);
					assert_true(mpz_divisible_p(v->m[i], o->p));
					mpz_clear(t);
				}
			}
		}
		wk_result_free(&r);
		assert_int_equal(wk_set_count(s), i + 1);
	}
	/* the batch GCD over the set gives the same as over the array */
	struct wk_result a = {0}, b = {0};
	assert_int_equal(wk_set_batch_gcd(s, &a), 0);
	assert_int_equal(wk_batch_gcd((const mpz_t *)v->m, v->n, NULL, 1, &b), 0);
	assert_int_equal(a.count, b.count);
	for (size_t k = 0; k < a.count; k++) {
		assert_int_equal(a.findings[k].id, b.findings[k].id);
		assert_int_equal(a.findings[k].flags, b.findings[k].flags);
	}
	wk_result_free(&a);
	wk_result_free(&b);
	/* check without adding leaves the set as it is */
	struct wk_result r = {0};
	assert_int_equal(wk_set_check(s, v->m[0], 999, false, &r), 0);
	assert_true(r.count >= 2); /* at least modulus 0 itself, as a duplicate */
	assert_non_null(find_id(&r, 0));
	assert_true(find_id(&r, 0)->flags & WK_DUPLICATE);
	assert_true(find_id(&r, 999)->flags & WK_DUPLICATE);
	assert_int_equal(wk_set_count(s), v->n);
	wk_result_free(&r);
	wk_set_free(s);
}

static void test_incremental(void **state)
{
	(void)state;
	struct vec v = {0};
	assert_int_equal(load(test_data(), "weakkeys/moduli-40.hex.txt", &v), 0);
	run_incremental(&v, 0, 4);  /* one by one, many small batches */
	run_incremental(&v, 0, 0);  /* default batch size: one batch */
	run_incremental(&v, 25, 8); /* bulk load (store rebuild), then new keys */
	run_incremental(&v, 13, 5); /* bulk load ending in a partial batch */
	vec_free(&v);

	struct vec w = {0};
	if (load(getenv("D4_SHARED_VECTORS"), "keys/rsa1024-moduli-100.hex.txt", &w) == 0) {
		run_incremental(&w, 50, 16);
		vec_free(&w);
	}
	struct wk_set *s = wk_set_new(0, 0);
	mpz_t one;
	mpz_init_set_ui(one, 1);
	assert_int_equal(wk_set_add(s, one, 1), -EINVAL);
	assert_int_equal(wk_set_add_bytes(s, (const uint8_t *)"\x00\x0f", 2, 1), 0);
	struct wk_result r = {0};
	assert_int_equal(wk_set_check_bytes(s, (const uint8_t *)"\x15", 1, 2, true, &r), 0);
	assert_int_equal(r.count, 2); /* 15 and 21 share 3 */
	assert_int_equal(r.findings[1].id, 2);
	assert_int_equal(mpz_get_ui(r.findings[1].p), 3);
	assert_int_equal(mpz_get_ui(r.findings[1].q), 7);
	wk_result_free(&r);
	mpz_clear(one);
	wk_set_free(s);
}

/* Checking in chunks gives exactly what one-by-one checks give, in the same order. */
static void run_many(const struct vec *v, size_t bulk, size_t chunk, unsigned batch)
{
	struct wk_set *a = wk_set_new(batch, 1), *b = wk_set_new(batch, 2);
	assert_true(a && b);
	uint64_t *ids = malloc(v->n * sizeof(uint64_t));
	assert_non_null(ids);
	for (size_t i = 0; i < v->n; i++)
		ids[i] = 7 * i + 3;
	for (size_t i = 0; i < bulk; i++) {
		assert_int_equal(wk_set_add(a, v->m[i], ids[i]), 0);
		assert_int_equal(wk_set_add(b, v->m[i], ids[i]), 0);
	}
	size_t total = 0;
	for (size_t i = bulk; i < v->n; i += chunk) {
		size_t k = v->n - i < chunk ? v->n - i : chunk;
		struct wk_result many = {0};
		assert_int_equal(wk_set_check_many(b, (const mpz_t *)v->m + i, ids + i, k, &many), 0);
		size_t pos = 0;
		for (size_t x = i; x < i + k; x++) {
			struct wk_result one = {0};
			assert_int_equal(wk_set_check(a, v->m[x], ids[x], true, &one), 0);
			for (size_t y = 0; y < one.count; y++, pos++) {
				assert_true(pos < many.count);
				const struct wk_finding *p = &one.findings[y], *q = &many.findings[pos];
				assert_int_equal(p->id, q->id);
				assert_int_equal(p->flags, q->flags);
				assert_int_equal(mpz_cmp(p->p, q->p), 0);
				assert_int_equal(mpz_cmp(p->q, q->q), 0);
				assert_int_equal(p->n_peers_total, q->n_peers_total);
				assert_memory_equal(p->peers, q->peers, p->n_peers * sizeof(uint64_t));
			}
			wk_result_free(&one);
		}
		assert_int_equal(pos, many.count);
		total += many.count;
		wk_result_free(&many);
		assert_int_equal(wk_set_count(b), i + k);
	}
	if (bulk < v->n / 2)
		assert_true(total > 0);
	free(ids);
	wk_set_free(a);
	wk_set_free(b);
}

static void test_incremental_many(void **state)
{
	(void)state;
	struct vec v = {0};
	assert_int_equal(load(test_data(), "weakkeys/moduli-40.hex.txt", &v), 0);
	run_many(&v, 0, 1, 4);
	run_many(&v, 0, 7, 4);
	run_many(&v, 10, 13, 0);
	run_many(&v, 0, 40, 8); /* everything in one call: the new moduli among themselves */
	vec_free(&v);
	struct vec w = {0};
	if (load(getenv("D4_SHARED_VECTORS"), "keys/rsa1024-moduli-100.hex.txt", &w) == 0) {
		run_many(&w, 30, 25, 16);
		vec_free(&w);
	}
	struct wk_set *s = wk_set_new(0, 1);
	struct wk_result r = {0};
	assert_int_equal(wk_set_check_many(s, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.count, 0);
	mpz_t bad[1];
	mpz_init_set_ui(bad[0], 1);
	uint64_t id = 1;
	assert_int_equal(wk_set_check_many(s, (const mpz_t *)bad, &id, 1, &r), -EINVAL);
	assert_int_equal(wk_set_count(s), 0);
	mpz_clear(bad[0]);
	/* bytes form */
	const uint8_t m1[] = {0x0f}, m2[] = {0x00, 0x15}, m3[] = {0x23};
	const uint8_t *mods[] = {m1, m2, m3};
	size_t lens[] = {1, 2, 1};
	uint64_t ids[] = {10, 20, 30};
	assert_int_equal(wk_set_check_many_bytes(s, mods, lens, ids, 3, &r), 0);
	/* 15, 21 (shares 3 with 15), 35 (shares 5 with 15 and 7 with 21) */
	assert_int_equal(r.count, 5);
	assert_int_equal(r.findings[0].id, 10);
	assert_int_equal(r.findings[1].id, 20);
	assert_int_equal(r.findings[4].id, 30);
	assert_int_equal(r.findings[4].n_peers, 2);
	wk_result_free(&r);
	wk_set_free(s);
}

/*
 * Dense sharing: 300 products of two distinct primes drawn from 12, so most
 * moduli share both primes with others (gcd = N, resolved from the peers),
 * many are duplicates, and some have more than WK_MAX_PEERS peers.
 */
static void test_dense(void **state)
{
	(void)state;
	struct vec v = {.n = 300};
	unsigned long primes[12];
	mpz_t p;
	mpz_init_set_ui(p, 1000003);
	for (int i = 0; i < 12; i++) {
		mpz_nextprime(p, p);
		primes[i] = mpz_get_ui(p);
	}
	mpz_clear(p);
	v.m = malloc(v.n * sizeof(mpz_t));
	assert_non_null(v.m);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < v.n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		unsigned a = (unsigned)(x >> 33) % 12, b = (unsigned)(x >> 45) % 11;
		b += b >= a;
		mpz_init_set_ui(v.m[i], primes[a]);
		mpz_mul_ui(v.m[i], v.m[i], primes[b]);
	}
	pairwise(&v);
	struct wk_result r = {0};
	assert_int_equal(wk_batch_gcd((const mpz_t *)v.m, v.n, NULL, 2, &r), 0);
	check_batch(&v, &r);
	bool capped = false;
	for (size_t k = 0; k < r.count; k++)
		capped |= r.findings[k].n_peers_total > WK_MAX_PEERS;
	assert_true(capped);
	assert_int_equal(r.findings[0].n_peers, r.findings[0].n_peers_total > WK_MAX_PEERS
							? WK_MAX_PEERS
							: r.findings[0].n_peers_total);
	wk_result_free(&r);
	/* the first 80 one by one through the set (the check over 300 is quadratic) */
	size_t n = v.n;
	v.n = 80;
	struct vec w = {.m = v.m, .n = 80};
	pairwise(&w);
	run_incremental(&w, 0, 8);
	run_many(&w, 20, 30, 8);
	free(w.share);
	v.n = n;
	vec_free(&v);
}

static void rsa(const char *n_hex, unsigned long e, unsigned expect_flags)
{
	mpz_t n, ev;
	mpz_init_set_str(n, n_hex, 16);
	mpz_init_set_ui(ev, e);
	struct wk_rsa_report rep;
	assert_int_equal(wk_check_rsa(n, ev, NULL, &rep), 0);
	if (rep.flags != expect_flags) {
		char a[256], b[256];
		wk_flags_format(rep.flags, a, sizeof(a));
		wk_flags_format(expect_flags, b, sizeof(b));
		fail_msg("flags %s, expected %s", a, b);
	}
	if (rep.flags & (WK_MOD_EVEN | WK_MOD_SMALL_FACTOR | WK_MOD_FERMAT)) {
		mpz_t t;
		mpz_init(t);
		mpz_mul(t, rep.p, rep.q);
		assert_int_equal(mpz_cmp(t, n), 0);
		assert_true(mpz_cmp_ui(rep.p, 1) > 0);
		mpz_clear(t);
	}
	wk_rsa_report_clear(&rep);
	mpz_clear(n);
	mpz_clear(ev);
}

static void test_small_keys(void **state)
{
	(void)state;
	mpz_t p, q, n, e;
	mpz_inits(p, q, n, e, NULL);
	/* a sound RSA-2048: p, q far apart */
	mpz_ui_pow_ui(p, 2, 1022);
	mpz_mul_ui(p, p, 3); /* 1.5 * 2^1023, q ~ 1.87 * 2^1023: n has 2048 bits */
	mpz_add_ui(p, p, 123456789);
	mpz_nextprime(p, p);
	mpz_ui_pow_ui(q, 3, 646); /* ~1024 bits, far from p */
	mpz_nextprime(q, q);
	mpz_mul(n, p, q);
	char *hex = wk_mpz_hex(n);
	assert_non_null(hex);
	assert_int_equal(mpz_sizeinbase(n, 2), 2048);
	rsa(hex, 65537, 0);
	rsa(hex, 3, WK_EXP_SMALL | WK_EXP_THREE);
	rsa(hex, 1, WK_EXP_ONE);
	rsa(hex, 4, WK_EXP_EVEN | WK_EXP_SMALL);
	rsa(hex, 17, WK_EXP_SMALL);
	free(hex);
	/* e >= n */
	mpz_set_str(e, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 16);
	struct wk_rsa_report rep;
	assert_int_equal(wk_check_rsa(n, e, NULL, &rep), 0);
	assert_int_equal(rep.flags, WK_EXP_LARGE);
	assert_int_equal(rep.bits, 2048);
	wk_rsa_report_clear(&rep);

	/* RSA-1024 from the own vector, and RSA-1536 */
	mpz_ui_pow_ui(p, 2, 511);
	mpz_nextprime(p, p);
	mpz_ui_pow_ui(q, 3, 323);
	mpz_nextprime(q, q);
	mpz_mul(n, p, q);
	hex = wk_mpz_hex(n);
	rsa(hex, 65537, WK_RSA_SMALL | WK_RSA_VERY_SMALL);
	free(hex);
	mpz_mul(n, n, p);
	hex = wk_mpz_hex(n);
	rsa(hex, 65537, WK_RSA_SMALL);
	free(hex);

	/* factored cheaply: even, small factor (7, and 9973, the last prime < 10000), Fermat */
	mpz_ui_pow_ui(p, 2, 2047);
	mpz_nextprime(p, p);
	mpz_mul_ui(n, p, 2);
	hex = wk_mpz_hex(n);
	rsa(hex, 65537, WK_MOD_EVEN);
	free(hex);
	mpz_ui_pow_ui(p, 2, 2040);
	mpz_nextprime(p, p);
	mpz_mul_ui(n, p, 9973);
	hex = wk_mpz_hex(n);
	rsa(hex, 65537, WK_MOD_SMALL_FACTOR);
	free(hex);
	mpz_mul_ui(n, p, 7 * 9973);
	assert_int_equal(wk_check_rsa(n, e, NULL, &rep), 0);
	assert_int_equal(rep.small_factor, 7);
	wk_rsa_report_clear(&rep);
	mpz_ui_pow_ui(p, 2, 1024);
	mpz_add_ui(p, p, 987654321);
	mpz_nextprime(p, p);
	mpz_nextprime(q, p);
	mpz_nextprime(q, q); /* q - p: a few hundred */
	mpz_mul(n, p, q);
	hex = wk_mpz_hex(n);
	rsa(hex, 65537, WK_MOD_FERMAT);
	free(hex);
	mpz_set_ui(e, 65537);
	assert_int_equal(wk_check_rsa(n, e, NULL, &rep), 0);
	assert_int_equal(mpz_cmp(rep.p, p), 0);
	assert_int_equal(mpz_cmp(rep.q, q), 0);
	wk_rsa_report_clear(&rep);
	/* Fermat off by policy */
	struct wk_policy pol;
	wk_policy_default(&pol);
	pol.fermat_iterations = 0;
	assert_int_equal(wk_check_rsa(n, e, &pol, &rep), 0);
	assert_int_equal(rep.flags, 0);
	wk_rsa_report_clear(&rep);
	/* invalid */
	rsa("1", 65537, WK_MOD_INVALID);
	assert_int_equal(wk_check_rsa_bytes(NULL, 0, (const uint8_t *)"\x01\x00\x01", 3, NULL, &rep),
			 0);
	assert_int_equal(rep.flags, WK_MOD_INVALID);
	wk_rsa_report_clear(&rep);

	/* EC */
	assert_int_equal(wk_check_ec(160, NULL), WK_EC_SMALL);
	assert_int_equal(wk_check_ec(192, NULL), WK_EC_SMALL);
	assert_int_equal(wk_check_ec(224, NULL), 0);
	assert_int_equal(wk_check_ec(256, NULL), 0);
	mpz_clears(p, q, n, e, NULL);
}

static void test_names(void **state)
{
	(void)state;
	char buf[256];
	assert_string_equal(wk_flag_name(WK_SHARED_PRIME), "shared-prime");
	assert_string_equal(wk_flag_name(WK_EC_SMALL), "ec-small");
	assert_string_equal(wk_flag_name(3), "unknown");
	size_t need = wk_flags_format(WK_RSA_SMALL | WK_EXP_THREE, buf, sizeof(buf));
	assert_string_equal(buf, "rsa-small,exponent-three");
	assert_int_equal(need, strlen(buf));
	char small[5];
	assert_int_equal(wk_flags_format(WK_RSA_SMALL, small, sizeof(small)), 9);
	assert_string_equal(small, ""); /* did not fit: empty, still terminated */
	assert_int_equal(wk_flags_format(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void test_cli(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof(path), "%s/weakkeys/moduli-40.hex.txt", test_data());
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(wk_cli_batch(in, out, 2), 0);
	fclose(out);
	fclose(in);
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	assert_int_equal(lines, 14);
	assert_non_null(strstr(buf, "duplicate-modulus"));
	free(buf);
	/* a line that is not hex is refused */
	in = fmemopen((void *)"# c\nABCD\nxyz\n", 13, "r");
	assert_non_null(in);
	mpz_t *m = NULL;
	size_t n = 0;
	assert_int_equal(wk_read_hex_moduli(in, &m, &n), -EINVAL);
	fclose(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_vectors), cmocka_unit_test(test_own_vectors),
		cmocka_unit_test(test_batch_edges),    cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_incremental_many), cmocka_unit_test(test_dense),
		cmocka_unit_test(test_small_keys),     cmocka_unit_test(test_names),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
