/*
 * weakkeys.c — weak public keys with GMP: batch GCD (product tree and
 * remainder tree, threaded), the incremental set of batch products, and the
 * cheap per-key RSA/EC checks. See weakkeys.h for the API and
 * docs/weak-keys.md for the algorithms, their costs and what is flagged.
 *
 * Why it is built so:
 *   - The batch GCD is Bernstein's: P = prod N_i by a product tree, then
 *     P mod N_i^2 for every i by a remainder tree, then
 *     gcd(N_i, (P mod N_i^2) / N_i) = gcd(N_i, prod_{j≠i} N_j). The tree is
 *     balanced by halving index ranges (not by pairing neighbours, which
 *     leaves the root's two children 64k/36k for 100k leaves) so that each
 *     level splits evenly across threads. The root product is never formed:
 *     with P = L·R, P mod L^2 = L·(R mod L), which costs a multiplication
 *     instead of a square of the root and a division by it.
 *   - Identical moduli would make every copy's gcd the whole modulus and hide
 *     a prime it shares with a third key, so moduli are deduplicated first;
 *     the tree runs over distinct moduli only.
 *   - A gcd equal to the modulus (both primes shared, or a modulus dividing
 *     another) is resolved against the peers, which are exactly the flagged
 *     moduli j with gcd(N_i, g_j) > 1 (g_j the batch output for j): flagged
 *     moduli are bucketed by g (sorted), so this costs |flagged| x |distinct g|
 *     gcds.
 *   - Threads: each tree level is a parallel loop (an atomic counter hands out
 *     node indices); GMP is reentrant with its default allocator.
 */
#include "weakkeys.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WK_DEFAULT_BATCH 4096u
#define WK_MAX_THREADS 64u
#define WK_FERMAT_MAX_BITS 16384u

void wk_policy_default(struct wk_policy *pol)
{
	pol->rsa_small_bits = 2048;
	pol->rsa_very_small_bits = 1024;
	pol->ec_small_bits = 224;
	pol->trial_limit = 10000;
	pol->fermat_iterations = 1000;
}

static unsigned wk_threads(unsigned threads)
{
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1u;
	}
	return threads > WK_MAX_THREADS ? WK_MAX_THREADS : threads;
}

/* ---------------------------------------------------------------- parallel loop */

typedef void (*wk_task_fn)(void *ctx, size_t i);

struct wk_pfor {
	wk_task_fn fn;
	void *ctx;
	size_t count;
	size_t chunk;
	atomic_size_t next;
};

static void *wk_pfor_worker(void *arg)
{
	struct wk_pfor *pf = arg;
	for (;;) {
		size_t lo = atomic_fetch_add(&pf->next, pf->chunk);
		if (lo >= pf->count)
			break;
		size_t hi = lo + pf->chunk < pf->count ? lo + pf->chunk : pf->count;
		for (size_t i = lo; i < hi; i++)
			pf->fn(pf->ctx, i);
	}
	return NULL;
}

/*
 * Runs fn(ctx, i) for i in [0, count) on up to `threads` threads (the caller is
 * one of them). If a thread cannot be created the caller does the rest: the
 * loop always completes.
 */
static void wk_parallel_for(unsigned threads, size_t count, wk_task_fn fn, void *ctx)
{
	struct wk_pfor pf = {.fn = fn, .ctx = ctx, .count = count};
	size_t t = threads;
	if (t > count)
		t = count;
	if (t == 0)
		return;
	pf.chunk = count / (t * 16);
	if (pf.chunk == 0)
		pf.chunk = 1;
	atomic_init(&pf.next, 0);
	pthread_t tid[WK_MAX_THREADS];
	size_t started = 0;
	for (size_t k = 1; k < t; k++) {
		if (pthread_create(&tid[started], NULL, wk_pfor_worker, &pf) != 0)
			break;
		started++;
	}
	wk_pfor_worker(&pf);
	for (size_t k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
}

/* ---------------------------------------------------------------- product / remainder tree */

/*
 * Level t (0 = root) holds cnt[t] nodes; node j of level t covers the input
 * range [lo, hi) and has 1 or 2 children starting at child[j] in level t+1.
 * A node covering one modulus and not at the last level passes it through
 * (one child, itself), so that every leaf sits at the last level.
 */
struct wk_level {
	size_t cnt;
	size_t *lo, *hi, *child;
	mpz_t *prod; /* products; NULL for the root (never formed) and the leaves */
	mpz_t *rem;  /* P mod prod^2 */
};

struct wk_tree {
	const __mpz_struct *const *leaf; /* the distinct moduli, in order */
	size_t n;
	size_t depth; /* number of levels */
	struct wk_level *lv;
	mpz_t *g; /* result: gcd(N_i, prod of the others) */
};

static void wk_level_free(struct wk_level *l, bool with_prod)
{
	if (l->prod != NULL) {
		if (with_prod)
			for (size_t j = 0; j < l->cnt; j++)
				mpz_clear(l->prod[j]);
		free(l->prod);
		l->prod = NULL;
	}
	if (l->rem != NULL) {
		for (size_t j = 0; j < l->cnt; j++)
			mpz_clear(l->rem[j]);
		free(l->rem);
		l->rem = NULL;
	}
}

static void wk_tree_free(struct wk_tree *t)
{
	if (t->lv != NULL) {
		for (size_t k = 0; k < t->depth; k++) {
			wk_level_free(&t->lv[k], true);
			free(t->lv[k].lo);
			free(t->lv[k].hi);
			free(t->lv[k].child);
		}
		free(t->lv);
	}
	t->lv = NULL;
}

/* Shape of the tree: ranges per level, halving until every range is one modulus. */
static int wk_tree_shape(struct wk_tree *t)
{
	size_t depth = 1;
	for (size_t w = 1; w < t->n; w <<= 1)
		depth++;
	t->depth = depth;
	t->lv = calloc(depth, sizeof(*t->lv));
	if (t->lv == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < depth; k++) {
		size_t cap = k + 1 == depth ? t->n : ((size_t)1 << k < t->n ? (size_t)1 << k : t->n);
		struct wk_level *l = &t->lv[k];
		l->lo = malloc(cap * sizeof(size_t));
		l->hi = malloc(cap * sizeof(size_t));
		l->child = malloc(cap * sizeof(size_t));
		if (l->lo == NULL || l->hi == NULL || l->child == NULL)
			return -ENOMEM;
	}
	t->lv[0].cnt = 1;
	t->lv[0].lo[0] = 0;
	t->lv[0].hi[0] = t->n;
	for (size_t k = 0; k + 1 < depth; k++) {
		struct wk_level *l = &t->lv[k], *c = &t->lv[k + 1];
		size_t m = 0;
		for (size_t j = 0; j < l->cnt; j++) {
			size_t lo = l->lo[j], hi = l->hi[j];
			l->child[j] = m;
			if (hi - lo >= 2) {
				size_t mid = lo + (hi - lo) / 2;
				c->lo[m] = lo;
				c->hi[m++] = mid;
				c->lo[m] = mid;
				c->hi[m++] = hi;
			} else {
				c->lo[m] = lo;
				c->hi[m++] = hi;
			}
		}
		c->cnt = m;
	}
	return 0;
}

static inline bool wk_two_children(const struct wk_tree *t, size_t k, size_t j)
{
	return t->lv[k].hi[j] - t->lv[k].lo[j] >= 2;
}

/* Product of node j of level k (1 <= k < depth-1) from its children. */
static const __mpz_struct *wk_node_value(const struct wk_tree *t, size_t k, size_t j)
{
	if (k + 1 == t->depth)
		return t->leaf[t->lv[k].lo[j]];
	return t->lv[k].prod[j];
}

struct wk_level_task {
	struct wk_tree *t;
	size_t k;
};

static void wk_prod_task(void *ctx, size_t j)
{
	struct wk_level_task *lt = ctx;
	struct wk_tree *t = lt->t;
	size_t k = lt->k, c = t->lv[k].child[j];
	if (wk_two_children(t, k, j))
		mpz_mul(t->lv[k].prod[j], wk_node_value(t, k + 1, c), wk_node_value(t, k + 1, c + 1));
	else
		mpz_set(t->lv[k].prod[j], wk_node_value(t, k + 1, c));
}

/* Level 1, from the two halves L and R of the root: P mod L^2 = L·(R mod L). */
static void wk_top_task(void *ctx, size_t j)
{
	struct wk_level_task *lt = ctx;
	struct wk_tree *t = lt->t;
	const __mpz_struct *self = wk_node_value(t, 1, j), *other = wk_node_value(t, 1, 1 - j);
	mpz_t r;
	mpz_init(r);
	mpz_tdiv_r(r, other, self);
	mpz_mul(t->lv[1].rem[j], r, self);
	mpz_clear(r);
}

/* Remainders of level k's children (level k+1), one parent j per task. */
static void wk_rem_task(void *ctx, size_t j)
{
	struct wk_level_task *lt = ctx;
	struct wk_tree *t = lt->t;
	size_t k = lt->k, c = t->lv[k].child[j];
	size_t nc = wk_two_children(t, k, j) ? 2 : 1;
	bool leaves = k + 2 == t->depth;
	mpz_t sq;
	mpz_init(sq);
	for (size_t x = 0; x < nc; x++) {
		const __mpz_struct *v = wk_node_value(t, k + 1, c + x);
		mpz_ptr dst = leaves ? t->g[t->lv[k + 1].lo[c + x]] : t->lv[k + 1].rem[c + x];
		if (nc == 1)
			mpz_set(dst, t->lv[k].rem[j]); /* pass-through: same node, same remainder */
		else {
			mpz_mul(sq, v, v);
			mpz_tdiv_r(dst, t->lv[k].rem[j], sq);
		}
		if (leaves) {
			/* dst = P mod N^2, a multiple of N: gcd(N, dst/N) */
			mpz_divexact(dst, dst, v);
			mpz_gcd(dst, dst, v);
		}
	}
	mpz_clear(sq);
}

static int wk_alloc_mpz_array(mpz_t **arr, size_t n)
{
	*arr = malloc((n ? n : 1) * sizeof(mpz_t));
	if (*arr == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		mpz_init((*arr)[i]);
	return 0;
}

/* g[i] = gcd(leaf[i], prod of the other leaves), n >= 2, leaves distinct and > 1. */
static int wk_tree_run(struct wk_tree *t, unsigned threads)
{
	int rc = wk_tree_shape(t);
	if (rc != 0)
		return rc;
	size_t d = t->depth;
	/* products, bottom-up, levels d-2 .. 1 (the leaves are the input; no root) */
	for (size_t k = d - 1; k-- > 1;) {
		if ((rc = wk_alloc_mpz_array(&t->lv[k].prod, t->lv[k].cnt)) != 0)
			return rc;
		struct wk_level_task lt = {t, k};
		wk_parallel_for(threads, t->lv[k].cnt, wk_prod_task, &lt);
	}
	/* remainders, top-down */
	if (d == 2) {
		/* two moduli: the top level is the leaves */
		mpz_gcd(t->g[0], t->leaf[0], t->leaf[1]);
		mpz_set(t->g[1], t->g[0]);
		return 0;
	}
	if ((rc = wk_alloc_mpz_array(&t->lv[1].rem, t->lv[1].cnt)) != 0)
		return rc;
	struct wk_level_task top = {t, 1};
	wk_parallel_for(threads, 2, wk_top_task, &top);
	for (size_t k = 1; k + 1 < d; k++) {
		if (k + 2 < d && (rc = wk_alloc_mpz_array(&t->lv[k + 1].rem, t->lv[k + 1].cnt)) != 0)
			return rc;
		struct wk_level_task lt = {t, k};
		wk_parallel_for(threads, t->lv[k].cnt, wk_rem_task, &lt);
		wk_level_free(&t->lv[k], true); /* its products and remainders are spent */
	}
	return 0;
}

/* ---------------------------------------------------------------- batch GCD driver */

struct wk_ref {
	const __mpz_struct *v;
	size_t idx;
};

static int wk_ref_cmp(const void *a, const void *b)
{
	const struct wk_ref *x = a, *y = b;
	int c = mpz_cmp(x->v, y->v);
	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int wk_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int wk_finding_cmp(const void *a, const void *b)
{
	const struct wk_finding *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

void wk_result_free(struct wk_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->count; i++) {
		mpz_clear(r->findings[i].p);
		mpz_clear(r->findings[i].q);
	}
	free(r->findings);
	r->findings = NULL;
	r->count = 0;
}

/* Distinct flagged modulus: its batch gcd, its factors, its peers (distinct indices). */
struct wk_flagged {
	size_t u; /* index among the distinct moduli */
	mpz_t p, q;
	size_t *peers; /* distinct-modulus indices */
	size_t n_peers;
	bool inited; /* p and q initialised (for the cleanup path) */
};

/* Sets a's factors from g = gcd(a, b) > 1 with a != b: p = g, q = a/g (q = 1 if a | b). */
static void wk_factors_from(mpz_ptr p, mpz_ptr q, const __mpz_struct *a, const __mpz_struct *g)
{
	mpz_set(p, g);
	mpz_divexact(q, a, g);
}

static int wk_add_peer_ids(struct wk_finding *f, const uint64_t *cand, size_t n, uint64_t self)
{
	for (size_t i = 0; i < n; i++) {
		if (cand[i] == self)
			continue;
		if (f->n_peers < WK_MAX_PEERS)
			f->peers[f->n_peers++] = cand[i];
		f->n_peers_total++;
	}
	return 0;
}

int wk_batch_gcd(const mpz_t *moduli, size_t n, const uint64_t *ids, unsigned threads,
		 struct wk_result *out)
{
	int rc = -ENOMEM;
	struct wk_ref *refs = NULL;
	size_t *grp_start = NULL, *uniq_of = NULL; /* group k = refs[grp_start[k] .. grp_start[k+1]) */
	const __mpz_struct **leaf = NULL;
	mpz_t *g = NULL;
	size_t m = 0, n_valid = 0, nflag = 0, nbuck = 0;
	struct wk_flagged *fl = NULL;
	size_t *flag_of = NULL, *bucket_start = NULL;
	struct wk_ref *byg = NULL; /* flagged moduli sorted by g (idx: index in fl) */
	mpz_t tmp;

	if (out == NULL || (moduli == NULL && n > 0))
		return -EINVAL;
	out->findings = NULL;
	out->count = 0;
	mpz_init(tmp);
	threads = wk_threads(threads);

	/* 1. sort the valid moduli (> 1) and group identical ones */
	refs = malloc((n ? n : 1) * sizeof(*refs));
	if (refs == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (mpz_cmp_ui(moduli[i], 1) > 0)
			refs[n_valid++] = (struct wk_ref){moduli[i], i};
	qsort(refs, n_valid, sizeof(*refs), wk_ref_cmp);
	grp_start = malloc((n_valid + 1) * sizeof(size_t));
	uniq_of = malloc((n_valid ? n_valid : 1) * sizeof(size_t));
	if (grp_start == NULL || uniq_of == NULL)
		goto out;
	for (size_t i = 0; i < n_valid; i++) {
		if (i == 0 || mpz_cmp(refs[i].v, refs[i - 1].v) != 0)
			grp_start[m++] = i;
		uniq_of[i] = m - 1;
	}
	grp_start[m] = n_valid;

	/* 2. batch gcd over the distinct moduli */
	leaf = malloc((m ? m : 1) * sizeof(*leaf));
	if (leaf == NULL || wk_alloc_mpz_array(&g, m) != 0)
		goto out;
	for (size_t k = 0; k < m; k++)
		leaf[k] = refs[grp_start[k]].v;
	if (m >= 2) {
		struct wk_tree t = {.leaf = leaf, .n = m, .g = g};
		rc = wk_tree_run(&t, threads);
		wk_tree_free(&t);
		if (rc != 0)
			goto out;
		rc = -ENOMEM;
	} else {
		for (size_t k = 0; k < m; k++)
			mpz_set_ui(g[k], 1);
	}

	/* 3. flagged distinct moduli, bucketed by g */
	flag_of = malloc((m ? m : 1) * sizeof(size_t));
	if (flag_of == NULL)
		goto out;
	for (size_t k = 0; k < m; k++) {
		flag_of[k] = SIZE_MAX;
		if (mpz_cmp_ui(g[k], 1) > 0)
			flag_of[k] = nflag++;
	}
	fl = calloc(nflag ? nflag : 1, sizeof(*fl));
	byg = malloc((nflag ? nflag : 1) * sizeof(*byg));
	bucket_start = malloc((nflag + 1) * sizeof(size_t));
	if (fl == NULL || byg == NULL || bucket_start == NULL)
		goto out;
	for (size_t k = 0; k < m; k++) {
		if (flag_of[k] == SIZE_MAX)
			continue;
		struct wk_flagged *f = &fl[flag_of[k]];
		f->u = k;
		mpz_init(f->p);
		mpz_init(f->q);
		f->inited = true;
		byg[flag_of[k]] = (struct wk_ref){g[k], flag_of[k]};
	}
	/* buckets: flagged moduli with the same g, contiguous once sorted by g */
	qsort(byg, nflag, sizeof(*byg), wk_ref_cmp);
	for (size_t x = 0; x < nflag; x++)
		if (x == 0 || mpz_cmp(byg[x].v, byg[x - 1].v) != 0)
			bucket_start[nbuck++] = x;
	bucket_start[nbuck] = nflag;

	/*
	 * 4. peers: j shares a prime with i iff gcd(N_i, g_j) > 1. |flagged| x
	 * |buckets| gcds: nothing for real data (a few hundred weak keys among
	 * millions), quadratic for a hostile set where every key shares distinct
	 * primes (docs/weak-keys.md).
	 */
	for (size_t a = 0; a < nflag; a++) {
		struct wk_flagged *f = &fl[a];
		const __mpz_struct *ni = leaf[f->u];
		size_t cap = 0;
		for (size_t b = 0; b < nbuck; b++) {
			mpz_gcd(tmp, ni, byg[bucket_start[b]].v);
			if (mpz_cmp_ui(tmp, 1) == 0)
				continue;
			for (size_t x = bucket_start[b]; x < bucket_start[b + 1]; x++) {
				size_t c = byg[x].idx;
				if (c == a)
					continue;
				if (f->n_peers == cap) {
					cap = cap ? cap * 2 : 8;
					size_t *np = realloc(f->peers, cap * sizeof(size_t));
					if (np == NULL)
						goto out;
					f->peers = np;
				}
				f->peers[f->n_peers++] = fl[c].u;
			}
		}
		/* factors: g itself when proper, else the first proper gcd with a peer */
		if (mpz_cmp(g[f->u], ni) != 0) {
			wk_factors_from(f->p, f->q, ni, g[f->u]);
		} else {
			mpz_set(f->p, ni);
			mpz_set_ui(f->q, 1);
			for (size_t x = 0; x < f->n_peers; x++) {
				mpz_gcd(tmp, ni, leaf[f->peers[x]]);
				if (mpz_cmp(tmp, ni) != 0 && mpz_cmp_ui(tmp, 1) > 0) {
					wk_factors_from(f->p, f->q, ni, tmp);
					break;
				}
			}
		}
	}

	/* 5. findings per input index */
	size_t nout = 0;
	for (size_t i = 0; i < n_valid; i++) {
		size_t k = uniq_of[i];
		if (flag_of[k] != SIZE_MAX || grp_start[k + 1] - grp_start[k] > 1)
			nout++;
	}
	if (nout > 0 && (out->findings = calloc(nout, sizeof(*out->findings))) == NULL)
		goto out; /* no finding, no allocation: a clean result needs no free */
	uint64_t *cand = NULL;
	size_t cand_cap = 0;
	for (size_t i = 0; i < n_valid; i++) {
		size_t k = uniq_of[i];
		size_t copies = grp_start[k + 1] - grp_start[k];
		if (flag_of[k] == SIZE_MAX && copies == 1)
			continue;
		struct wk_finding *w = &out->findings[out->count++];
		size_t idx = refs[i].idx;
		w->id = ids ? ids[idx] : (uint64_t)idx;
		mpz_init(w->p);
		mpz_init(w->q);
		size_t nc = 0;
		/* candidate peer ids: the other copies, then every copy of each peer */
		size_t need = copies;
		if (flag_of[k] != SIZE_MAX)
			for (size_t x = 0; x < fl[flag_of[k]].n_peers; x++) {
				size_t pk = fl[flag_of[k]].peers[x];
				need += grp_start[pk + 1] - grp_start[pk];
			}
		if (need > cand_cap) {
			uint64_t *nc2 = realloc(cand, need * sizeof(uint64_t));
			if (nc2 == NULL) {
				free(cand);
				goto out;
			}
			cand = nc2;
			cand_cap = need;
		}
		for (size_t x = grp_start[k]; x < grp_start[k + 1]; x++)
			cand[nc++] = ids ? ids[refs[x].idx] : (uint64_t)refs[x].idx;
		if (copies > 1)
			w->flags |= WK_DUPLICATE;
		if (flag_of[k] != SIZE_MAX) {
			struct wk_flagged *f = &fl[flag_of[k]];
			w->flags |= WK_SHARED_PRIME;
			mpz_set(w->p, f->p);
			mpz_set(w->q, f->q);
			for (size_t x = 0; x < f->n_peers; x++) {
				size_t pk = f->peers[x];
				for (size_t y = grp_start[pk]; y < grp_start[pk + 1]; y++)
					cand[nc++] = ids ? ids[refs[y].idx] : (uint64_t)refs[y].idx;
			}
		}
		qsort(cand, nc, sizeof(uint64_t), wk_u64_cmp);
		wk_add_peer_ids(w, cand, nc, w->id);
	}
	free(cand);
	if (out->count > 1)
		qsort(out->findings, out->count, sizeof(*out->findings), wk_finding_cmp);
	rc = 0;

out:
	if (rc != 0 && out != NULL)
		wk_result_free(out);
	if (fl != NULL) {
		for (size_t a = 0; a < nflag; a++) {
			if (!fl[a].inited)
				continue;
			mpz_clear(fl[a].p);
			mpz_clear(fl[a].q);
			free(fl[a].peers);
		}
		free(fl);
	}
	if (g != NULL) {
		for (size_t k = 0; k < m; k++)
			mpz_clear(g[k]);
		free(g);
	}
	mpz_clear(tmp);
	free(bucket_start);
	free(byg);
	free(flag_of);
	free(leaf);
	free(uniq_of);
	free(grp_start);
	free(refs);
	return rc;
}

void wk_mpz_from_bytes(mpz_t n, const uint8_t *buf, size_t len)
{
	if (len == 0 || buf == NULL)
		mpz_set_ui(n, 0);
	else
		mpz_import(n, len, 1, 1, 1, 0, buf);
}

int wk_batch_gcd_bytes(const uint8_t *const *mod, const size_t *len, size_t n,
		       const uint64_t *ids, unsigned threads, struct wk_result *out)
{
	if (out == NULL || (n > 0 && (mod == NULL || len == NULL)))
		return -EINVAL;
	mpz_t *v;
	if (wk_alloc_mpz_array(&v, n) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		wk_mpz_from_bytes(v[i], mod[i], len[i]);
	int rc = wk_batch_gcd((const mpz_t *)v, n, ids, threads, out);
	wk_free_moduli(v, n);
	return rc;
}

/* ---------------------------------------------------------------- incremental set */

struct wk_batch {
	mpz_t prod;
	size_t first, count; /* moduli [first, first+count) of the set */
};

struct wk_set {
	mpz_t *mods;
	uint64_t *ids;
	size_t n, cap;
	size_t built; /* moduli [0, built) are in a batch product */
	struct wk_batch *batches;
	size_t nb, cap_b;
	unsigned batch_size, threads;
};

struct wk_set *wk_set_new(unsigned batch_size, unsigned threads)
{
	struct wk_set *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->batch_size = batch_size ? batch_size : WK_DEFAULT_BATCH;
	s->threads = wk_threads(threads);
	return s;
}

void wk_set_free(struct wk_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		mpz_clear(s->mods[i]);
	for (size_t b = 0; b < s->nb; b++)
		mpz_clear(s->batches[b].prod);
	free(s->mods);
	free(s->ids);
	free(s->batches);
	free(s);
}

size_t wk_set_count(const struct wk_set *s)
{
	return s ? s->n : 0;
}

int wk_set_add(struct wk_set *s, const mpz_t n, uint64_t id)
{
	if (s == NULL || mpz_cmp_ui(n, 1) <= 0)
		return -EINVAL;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		mpz_t *m = realloc(s->mods, cap * sizeof(mpz_t));
		if (m == NULL)
			return -ENOMEM;
		s->mods = m;
		uint64_t *ids = realloc(s->ids, cap * sizeof(uint64_t));
		if (ids == NULL)
			return -ENOMEM;
		s->ids = ids;
		s->cap = cap;
	}
	mpz_init_set(s->mods[s->n], n);
	s->ids[s->n++] = id;
	return 0;
}

int wk_set_add_bytes(struct wk_set *s, const uint8_t *mod, size_t len, uint64_t id)
{
	mpz_t v;
	mpz_init(v);
	wk_mpz_from_bytes(v, mod, len);
	int rc = wk_set_add(s, v, id);
	mpz_clear(v);
	return rc;
}

/* Product of mods[lo, hi) by a balanced recursion (hi > lo). */
static void wk_range_product(mpz_ptr out, const mpz_t *mods, size_t lo, size_t hi)
{
	if (hi - lo == 1) {
		mpz_set(out, mods[lo]);
		return;
	}
	if (hi - lo == 2) {
		mpz_mul(out, mods[lo], mods[lo + 1]);
		return;
	}
	size_t mid = lo + (hi - lo) / 2;
	mpz_t r;
	mpz_init(r);
	wk_range_product(out, mods, lo, mid);
	wk_range_product(r, mods, mid, hi);
	mpz_mul(out, out, r);
	mpz_clear(r);
}

struct wk_build_task {
	struct wk_set *s;
	size_t first_batch;
};

static void wk_build_one(void *ctx, size_t i)
{
	struct wk_build_task *bt = ctx;
	struct wk_batch *b = &bt->s->batches[bt->first_batch + i];
	wk_range_product(b->prod, (const mpz_t *)bt->s->mods, b->first, b->first + b->count);
}

int wk_set_build(struct wk_set *s)
{
	if (s == NULL)
		return -EINVAL;
	if (s->built == s->n)
		return 0;
	/* top up the last batch if it is not full */
	if (s->nb > 0) {
		struct wk_batch *last = &s->batches[s->nb - 1];
		size_t room = s->batch_size - last->count;
		size_t take = s->n - s->built < room ? s->n - s->built : room;
		if (take > 0) {
			mpz_t r;
			mpz_init(r);
			wk_range_product(r, (const mpz_t *)s->mods, s->built, s->built + take);
			mpz_mul(last->prod, last->prod, r);
			mpz_clear(r);
			last->count += take;
			s->built += take;
		}
	}
	size_t pending = s->n - s->built;
	if (pending == 0)
		return 0;
	size_t nnew = (pending + s->batch_size - 1) / s->batch_size;
	if (s->nb + nnew > s->cap_b) {
		size_t cap = s->cap_b ? s->cap_b : 16;
		while (cap < s->nb + nnew)
			cap *= 2;
		struct wk_batch *nbp = realloc(s->batches, cap * sizeof(*nbp));
		if (nbp == NULL)
			return -ENOMEM;
		s->batches = nbp;
		s->cap_b = cap;
	}
	struct wk_build_task bt = {s, s->nb};
	for (size_t i = 0; i < nnew; i++) {
		struct wk_batch *b = &s->batches[s->nb + i];
		mpz_init(b->prod);
		b->first = s->built + i * s->batch_size;
		b->count = i + 1 < nnew ? s->batch_size : pending - i * s->batch_size;
	}
	s->nb += nnew;
	s->built = s->n;
	wk_parallel_for(s->threads, nnew, wk_build_one, &bt);
	return 0;
}

static struct wk_finding *wk_result_push(struct wk_result *r, uint64_t id)
{
	struct wk_finding *w = &r->findings[r->count++];
	memset(w, 0, sizeof(*w));
	w->id = id;
	mpz_init(w->p);
	mpz_init(w->q);
	return w;
}

struct wk_reduce_task {
	const struct wk_set *s;
	const __mpz_struct *n;
	bool *hit;
};

/* hit[b] = gcd(P_b mod n, n) > 1 */
static void wk_reduce_one(void *ctx, size_t b)
{
	struct wk_reduce_task *rt = ctx;
	mpz_t r;
	mpz_init(r);
	mpz_tdiv_r(r, rt->s->batches[b].prod, rt->n);
	mpz_gcd(r, r, rt->n);
	rt->hit[b] = mpz_cmp_ui(r, 1) > 0;
	mpz_clear(r);
}

int wk_set_check(struct wk_set *s, const mpz_t n, uint64_t id, bool add, struct wk_result *out)
{
	if (s == NULL || out == NULL || mpz_cmp_ui(n, 1) <= 0)
		return -EINVAL;
	out->findings = NULL;
	out->count = 0;
	int rc = wk_set_build(s);
	if (rc != 0)
		return rc;
	size_t *hit = NULL, nhit = 0, cap = 0;
	bool *hit_batch = NULL;
	mpz_t r;
	mpz_init(r);
	rc = -ENOMEM;
	/* 1. one reduction per batch product (threaded); scan only the batches that hit */
	hit_batch = calloc(s->nb ? s->nb : 1, sizeof(bool));
	if (hit_batch == NULL)
		goto out;
	struct wk_reduce_task rt = {s, n, hit_batch};
	wk_parallel_for(s->nb >= 8 ? s->threads : 1, s->nb, wk_reduce_one, &rt);
	for (size_t b = 0; b < s->nb; b++) {
		if (!hit_batch[b])
			continue;
		for (size_t i = s->batches[b].first; i < s->batches[b].first + s->batches[b].count; i++) {
			mpz_gcd(r, s->mods[i], n);
			if (mpz_cmp_ui(r, 1) == 0)
				continue;
			if (nhit == cap) {
				cap = cap ? cap * 2 : 8;
				size_t *nh = realloc(hit, cap * sizeof(size_t));
				if (nh == NULL)
					goto out;
				hit = nh;
			}
			hit[nhit++] = i;
		}
	}
	/* 2. findings: the new modulus, then each stored partner */
	if (nhit > 0) {
		out->findings = calloc(nhit + 1, sizeof(*out->findings));
		if (out->findings == NULL)
			goto out;
		struct wk_finding *self = wk_result_push(out, id);
		for (size_t h = 0; h < nhit; h++) {
			size_t i = hit[h];
			struct wk_finding *w = wk_result_push(out, s->ids[i]);
			mpz_gcd(r, s->mods[i], n);
			if (mpz_cmp(s->mods[i], n) == 0) {
				w->flags = WK_DUPLICATE;
				self->flags |= WK_DUPLICATE;
			} else {
				w->flags = WK_SHARED_PRIME;
				wk_factors_from(w->p, w->q, s->mods[i], r);
				/* prefer a proper factor of n over "n divides a stored modulus" */
				if (!(self->flags & WK_SHARED_PRIME) ||
				    (mpz_cmp_ui(self->q, 1) == 0 && mpz_cmp(r, n) != 0))
					wk_factors_from(self->p, self->q, n, r);
				self->flags |= WK_SHARED_PRIME;
			}
			w->peers[0] = id;
			w->n_peers = w->n_peers_total = 1;
			if (self->n_peers < WK_MAX_PEERS)
				self->peers[self->n_peers++] = s->ids[i];
			self->n_peers_total++;
		}
		qsort(self->peers, self->n_peers, sizeof(uint64_t), wk_u64_cmp);
		qsort(out->findings, out->count, sizeof(*out->findings), wk_finding_cmp);
	}
	if (add && (rc = wk_set_add(s, n, id)) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		wk_result_free(out);
	free(hit_batch);
	free(hit);
	mpz_clear(r);
	return rc;
}

int wk_set_check_bytes(struct wk_set *s, const uint8_t *mod, size_t len, uint64_t id, bool add,
		       struct wk_result *out)
{
	mpz_t v;
	mpz_init(v);
	wk_mpz_from_bytes(v, mod, len);
	int rc = wk_set_check(s, v, id, add, out);
	mpz_clear(v);
	return rc;
}

/* Product tree over q[lo, hi) in heap order (node v has children 2v, 2v+1). */
static void wk_heap_build(mpz_t *node, size_t v, const mpz_t *q, size_t lo, size_t hi)
{
	if (hi - lo == 1) {
		mpz_set(node[v], q[lo]);
		return;
	}
	size_t mid = lo + (hi - lo) / 2;
	wk_heap_build(node, 2 * v, q, lo, mid);
	wk_heap_build(node, 2 * v + 1, q, mid, hi);
	mpz_mul(node[v], node[2 * v], node[2 * v + 1]);
}

/* g[i] = gcd(q[i], r mod q[i]) for i in [lo, hi), r reduced mod node[v]. */
static void wk_heap_rem(mpz_t *node, size_t v, const mpz_t r, const mpz_t *q, size_t lo, size_t hi,
			mpz_t *g)
{
	if (hi - lo == 1) {
		mpz_gcd(g[lo], r, q[lo]);
		return;
	}
	size_t mid = lo + (hi - lo) / 2;
	mpz_t t;
	mpz_init(t);
	mpz_tdiv_r(t, r, node[2 * v]);
	wk_heap_rem(node, 2 * v, t, q, lo, mid, g);
	mpz_tdiv_r(t, r, node[2 * v + 1]);
	wk_heap_rem(node, 2 * v + 1, t, q, mid, hi, g);
	mpz_clear(t);
}

/* Moves the findings of `from` to the end of `to`; `from` is left empty. */
static int wk_result_append(struct wk_result *to, struct wk_result *from)
{
	if (from->count == 0)
		return 0;
	struct wk_finding *f = realloc(to->findings, (to->count + from->count) * sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	memcpy(f + to->count, from->findings, from->count * sizeof(*f)); /* mpz_t move bitwise */
	to->findings = f;
	to->count += from->count;
	free(from->findings);
	from->findings = NULL;
	from->count = 0;
	return 0;
}

int wk_set_check_many(struct wk_set *s, const mpz_t *n, const uint64_t *ids, size_t k,
		      struct wk_result *out)
{
	if (s == NULL || out == NULL || (k > 0 && (n == NULL || ids == NULL)))
		return -EINVAL;
	out->findings = NULL;
	out->count = 0;
	for (size_t i = 0; i < k; i++)
		if (mpz_cmp_ui(n[i], 1) <= 0)
			return -EINVAL;
	if (k == 0)
		return 0;
	int rc = wk_set_build(s);
	if (rc != 0)
		return rc;
	mpz_t *node = NULL, *g = NULL;
	size_t nnodes = 4 * k;
	bool *flag = NULL;
	struct wk_result local = {0}, one = {0};
	mpz_t t, r;
	mpz_init(t);
	mpz_init(r);
	rc = -ENOMEM;
	if (wk_alloc_mpz_array(&node, nnodes) != 0)
		goto out;
	if (wk_alloc_mpz_array(&g, k) != 0)
		goto out;
	flag = calloc(k, sizeof(bool));
	if (flag == NULL)
		goto out;
	/* 1. T = prod_b (P_b mod Q) mod Q, Q = prod of the new moduli: one pass over the set */
	wk_heap_build(node, 1, n, 0, k);
	mpz_set_ui(t, 1);
	for (size_t b = 0; b < s->nb; b++) {
		mpz_tdiv_r(r, s->batches[b].prod, node[1]);
		mpz_mul(t, t, r);
		mpz_tdiv_r(t, t, node[1]);
	}
	/* 2. gcd(Q_i, T mod Q_i) for every new modulus, by a remainder tree */
	wk_heap_rem(node, 1, t, n, 0, k, g);
	for (size_t i = 0; i < k; i++)
		flag[i] = mpz_cmp_ui(g[i], 1) > 0;
	/* 3. the new moduli among themselves */
	if (k >= 2) {
		if ((rc = wk_batch_gcd(n, k, NULL, 1, &local)) != 0)
			goto out;
		rc = -ENOMEM;
		for (size_t x = 0; x < local.count; x++)
			flag[local.findings[x].id] = true;
	}
	/* 4. in order: a flagged modulus gets the full check (exactly what one-by-one
	 * checks would report), the others are only added */
	for (size_t i = 0; i < k; i++) {
		if (!flag[i]) {
			if ((rc = wk_set_add(s, n[i], ids[i])) != 0)
				goto out;
			continue;
		}
		if ((rc = wk_set_check(s, n[i], ids[i], true, &one)) != 0)
			goto out;
		if ((rc = wk_result_append(out, &one)) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		wk_result_free(out);
	wk_result_free(&one);
	wk_result_free(&local);
	if (node != NULL)
		wk_free_moduli(node, nnodes);
	if (g != NULL)
		wk_free_moduli(g, k);
	free(flag);
	mpz_clear(t);
	mpz_clear(r);
	return rc;
}

int wk_set_check_many_bytes(struct wk_set *s, const uint8_t *const *mod, const size_t *len,
			    const uint64_t *ids, size_t k, struct wk_result *out)
{
	if (out == NULL || (k > 0 && (mod == NULL || len == NULL)))
		return -EINVAL;
	mpz_t *v;
	if (wk_alloc_mpz_array(&v, k) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < k; i++)
		wk_mpz_from_bytes(v[i], mod[i], len[i]);
	int rc = wk_set_check_many(s, (const mpz_t *)v, ids, k, out);
	wk_free_moduli(v, k);
	return rc;
}

int wk_set_batch_gcd(struct wk_set *s, struct wk_result *out)
{
	if (s == NULL || out == NULL)
		return -EINVAL;
	return wk_batch_gcd((const mpz_t *)s->mods, s->n, s->ids, s->threads, out);
}

/* ---------------------------------------------------------------- per-key checks */

void wk_rsa_report_clear(struct wk_rsa_report *r)
{
	if (r == NULL)
		return;
	mpz_clear(r->p);
	mpz_clear(r->q);
	r->flags = 0;
}

/* Smallest prime factor of n below limit (n odd, > limit), or 0. */
static unsigned long wk_small_factor(const mpz_t n, unsigned limit)
{
	/* sieve of Eratosthenes up to limit, then gcd with word-sized products of primes */
	if (limit < 3)
		return 0;
	uint8_t *comp = calloc(limit, 1);
	if (comp == NULL)
		return 0;
	unsigned long found = 0, batch = 1, first = 3;
	for (unsigned long i = 3; i < limit && found == 0; i += 2) {
		if (comp[i])
			continue;
		for (unsigned long j = i * i; j < limit; j += 2 * i)
			comp[j] = 1;
		if (batch > ULONG_MAX / i) {
			if (mpz_gcd_ui(NULL, n, batch) > 1) {
				for (unsigned long p = first; p < i; p += 2)
					if (!comp[p] && mpz_divisible_ui_p(n, p)) {
						found = p;
						break;
					}
			}
			batch = 1;
			first = i;
		}
		batch *= i;
	}
	if (found == 0 && batch > 1 && mpz_gcd_ui(NULL, n, batch) > 1) {
		for (unsigned long p = first; p < limit; p += 2)
			if (!comp[p] && mpz_divisible_ui_p(n, p)) {
				found = p;
				break;
			}
	}
	free(comp);
	return found;
}

int wk_check_rsa(const mpz_t n, const mpz_t e, const struct wk_policy *pol,
		 struct wk_rsa_report *out)
{
	struct wk_policy def;
	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	mpz_init(out->p);
	mpz_init(out->q);
	if (pol == NULL) {
		wk_policy_default(&def);
		pol = &def;
	}
	if (mpz_cmp_ui(n, 3) < 0) {
		out->flags |= WK_MOD_INVALID;
		return 0;
	}
	out->bits = mpz_sizeinbase(n, 2);
	if (out->bits < pol->rsa_small_bits)
		out->flags |= WK_RSA_SMALL;
	if (out->bits <= pol->rsa_very_small_bits)
		out->flags |= WK_RSA_VERY_SMALL;

	if (mpz_cmp_ui(e, 1) == 0)
		out->flags |= WK_EXP_ONE;
	else {
		if (mpz_even_p(e))
			out->flags |= WK_EXP_EVEN;
		if (mpz_sgn(e) > 0 && mpz_cmp_ui(e, 65537) < 0)
			out->flags |= WK_EXP_SMALL;
		if (mpz_cmp_ui(e, 3) == 0)
			out->flags |= WK_EXP_THREE;
		if (mpz_cmp(e, n) >= 0 || mpz_sizeinbase(e, 2) > 256)
			out->flags |= WK_EXP_LARGE;
	}

	if (mpz_even_p(n)) {
		out->flags |= WK_MOD_EVEN;
		out->small_factor = 2;
		mpz_set_ui(out->p, 2);
		mpz_divexact_ui(out->q, n, 2);
		return 0;
	}
	unsigned long f = wk_small_factor(n, pol->trial_limit);
	if (f != 0 && mpz_cmp_ui(n, f) != 0) {
		out->flags |= WK_MOD_SMALL_FACTOR;
		out->small_factor = f;
		mpz_set_ui(out->p, f);
		mpz_divexact_ui(out->q, n, f);
		return 0;
	}
	/* Fermat: n = a^2 - b^2 = (a-b)(a+b) with a just above sqrt(n). Skipped past
	 * WK_FERMAT_MAX_BITS: a hostile certificate's megabit "modulus" would cost a
	 * linear pass per iteration and no real key is that large. */
	if (pol->fermat_iterations > 0 && out->bits <= WK_FERMAT_MAX_BITS) {
		mpz_t a, b2;
		mpz_init(a);
		mpz_init(b2);
		mpz_sqrtrem(a, b2, n);
		if (mpz_sgn(b2) == 0) {
			/* n = a^2: p = q */
			if (mpz_cmp_ui(a, 1) > 0) {
				out->flags |= WK_MOD_FERMAT;
				mpz_set(out->p, a);
				mpz_set(out->q, a);
			}
		} else {
			mpz_add_ui(a, a, 1);
			mpz_mul(b2, a, a);
			mpz_sub(b2, b2, n);
			for (unsigned it = 0; it < pol->fermat_iterations; it++) {
				if (mpz_perfect_square_p(b2)) {
					mpz_sqrt(b2, b2);
					mpz_sub(out->p, a, b2);
					mpz_add(out->q, a, b2);
					if (mpz_cmp_ui(out->p, 1) > 0)
						out->flags |= WK_MOD_FERMAT;
					else {
						mpz_set_ui(out->p, 0);
						mpz_set_ui(out->q, 0);
					}
					break;
				}
				/* (a+1)^2 - n = b2 + 2a + 1 */
				mpz_addmul_ui(b2, a, 2);
				mpz_add_ui(b2, b2, 1);
				mpz_add_ui(a, a, 1);
			}
		}
		mpz_clear(a);
		mpz_clear(b2);
	}
	return 0;
}

int wk_check_rsa_bytes(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
		       const struct wk_policy *pol, struct wk_rsa_report *out)
{
	mpz_t vn, ve;
	mpz_init(vn);
	mpz_init(ve);
	wk_mpz_from_bytes(vn, n, nlen);
	wk_mpz_from_bytes(ve, e, elen);
	int rc = wk_check_rsa(vn, ve, pol, out);
	mpz_clear(vn);
	mpz_clear(ve);
	return rc;
}

unsigned wk_check_ec(unsigned bits, const struct wk_policy *pol)
{
	unsigned limit = pol ? pol->ec_small_bits : 224;
	return bits < limit ? WK_EC_SMALL : 0;
}

static const char *const wk_names[] = {
	"shared-prime", "duplicate-modulus", "rsa-small", "rsa-very-small", "exponent-one",
	"exponent-even", "exponent-small", "exponent-three", "exponent-large", "modulus-even",
	"modulus-small-factor", "modulus-fermat", "modulus-invalid", "ec-small",
};

const char *wk_flag_name(unsigned flag)
{
	for (size_t i = 0; i < sizeof(wk_names) / sizeof(wk_names[0]); i++)
		if (flag == 1u << i)
			return wk_names[i];
	return "unknown";
}

size_t wk_flags_format(unsigned flags, char *buf, size_t size)
{
	size_t len = 0;
	if (size > 0)
		buf[0] = '\0';
	for (unsigned i = 0; i < 32; i++) {
		if (!(flags & (1u << i)))
			continue;
		const char *name = wk_flag_name(1u << i);
		size_t nl = strlen(name) + (len > 0);
		if (size > 0 && len + nl < size) {
			if (len > 0)
				buf[len] = ',';
			memcpy(buf + len + (len > 0), name, strlen(name) + 1);
		}
		len += nl;
	}
	return len;
}

char *wk_mpz_hex(const mpz_t n)
{
	char *s = malloc(mpz_sizeinbase(n, 16) + 2);
	if (s == NULL)
		return NULL;
	return mpz_get_str(s, 16, n);
}

/* ---------------------------------------------------------------- file helpers and CLI */

void wk_free_moduli(mpz_t *moduli, size_t n)
{
	if (moduli == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		mpz_clear(moduli[i]);
	free(moduli);
}

int wk_read_hex_moduli(FILE *in, mpz_t **moduli, size_t *n)
{
	size_t cap = 0, cnt = 0, lcap = 0;
	mpz_t *v = NULL;
	char *line = NULL;
	ssize_t got;
	int rc = 0;
	while ((got = getline(&line, &lcap, in)) >= 0) {
		char *s = line, *end = line + got;
		while (s < end && isspace((unsigned char)*s))
			s++;
		while (end > s && isspace((unsigned char)end[-1]))
			end--;
		if (s == end || *s == '#')
			continue;
		*end = '\0';
		if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
			s += 2;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 1024;
			mpz_t *nv = realloc(v, cap * sizeof(mpz_t));
			if (nv == NULL) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		mpz_init(v[cnt]);
		if (mpz_set_str(v[cnt], s, 16) != 0) {
			mpz_clear(v[cnt]);
			rc = -EINVAL;
			break;
		}
		cnt++;
	}
	free(line);
	if (rc == 0 && ferror(in))
		rc = -EIO;
	if (rc != 0) {
		wk_free_moduli(v, cnt);
		return rc;
	}
	*moduli = v;
	*n = cnt;
	return 0;
}

int wk_cli_batch(FILE *in, FILE *out, unsigned threads)
{
	mpz_t *v = NULL;
	size_t n = 0;
	struct wk_result res = {0};
	int rc = wk_read_hex_moduli(in, &v, &n);
	if (rc != 0)
		return rc;
	rc = wk_batch_gcd((const mpz_t *)v, n, NULL, threads, &res);
	if (rc == 0) {
		for (size_t i = 0; i < res.count; i++) {
			const struct wk_finding *f = &res.findings[i];
			char flags[128];
			wk_flags_format(f->flags, flags, sizeof(flags));
			gmp_fprintf(out, "%llu %s %Zx %Zx peers=", (unsigned long long)f->id, flags, f->p,
				    f->q);
			for (size_t k = 0; k < f->n_peers; k++)
				fprintf(out, "%s%llu", k ? "," : "", (unsigned long long)f->peers[k]);
			fprintf(out, "%s\n", f->n_peers < f->n_peers_total ? ",..." : "");
		}
	}
	wk_result_free(&res);
	wk_free_moduli(v, n);
	if (rc == 0 && fflush(out) != 0)
		rc = -EIO;
	return rc;
}
