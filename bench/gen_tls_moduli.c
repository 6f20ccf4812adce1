/*
 * gen_tls_moduli.c — writes N RSA-like moduli p·q of B bits, hex, one per line
 * (the format of ../shared/vectors/keys/rsa1024-moduli-100.hex.txt), with a
 * chosen number of weak ones, for the weak-key tests and the batch-GCD bench.
 *
 *   gen_tls_moduli [-n N] [-b BITS] [-s SEED] [-p PAIRS] [-t TRIPLES] [-d DUPS]
 *                  [-x CROSS] [-j THREADS] [-o OUT] [-e TRUTH]
 *
 * PAIRS: pairs of moduli sharing one prime; TRIPLES: three moduli sharing one
 * prime; DUPS: moduli written twice; CROSS: chains A=p·q, B=p·r, C=q·s where A
 * shares both of its primes (its batch gcd is A itself). Everything else is a
 * fresh p·q. The output is deterministic for a seed (random starting points
 * are drawn in order, then the primes are searched on THREADS threads), and
 * the weak moduli are shuffled among the others. TRUTH, if given, lists the
 * weak lines: "<line-index> <kind> <group>" (kind pair|triple|dup|cross).
 *
 * Timing mode (bench/CMakeLists.txt builds only gen_* programs, so the
 * benchmark driver lives here):
 *   gen_tls_moduli -r FILE [-j THREADS]            batch GCD over FILE
 *   gen_tls_moduli -r FILE -i K [-j THREADS]       incremental: load the first
 *                     lines into a wk_set, check the last K one by one, then the same K
 *                     in one wk_set_check_many call on a fresh set; with -e TRUTH the
 *                     weak lines are moved into the K new ones (partners arrive)
 * prints one line of key=value (seconds, findings, maxrss_kb).
 *
 * The primes are real (mpz_nextprime): random odd numbers would share small
 * and medium factors and flag thousands of moduli. Cost: about 1 ms per
 * 512-bit prime and core, so 100,000 RSA-1024 moduli take ~2 minutes on 2
 * cores; bench/weakkeys.sh caches the file.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h> /* before gmp.h, which declares gmp_fprintf only after it */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <gmp.h>

#include "weakkeys.h"

struct gen {
	mpz_t *primes;
	size_t nprimes;
	atomic_size_t next;
};

static void *prime_worker(void *arg)
{
	struct gen *g = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&g->next, 1);
		if (i >= g->nprimes)
			break;
		mpz_nextprime(g->primes[i], g->primes[i]);
	}
	return NULL;
}

struct spec {
	size_t a, b; /* prime indices */
	const char *kind;
	size_t group;
};

static void usage(void)
{
	fprintf(stderr, "usage: gen_tls_moduli [-n N] [-b BITS] [-s SEED] [-p PAIRS] [-t TRIPLES] "
			"[-d DUPS] [-x CROSS] [-j THREADS] [-o OUT] [-e TRUTH]\n"
			"       gen_tls_moduli -r FILE [-i K [-e TRUTH]] [-j THREADS]\n");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* user + system CPU seconds of this process (all threads) */
static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long maxrss_kb(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* -r FILE [-i K]: time the library on a moduli file. */
/*
 * Incremental mode with a TRUTH file: moves the weak lines into the group of
 * new moduli (stable order otherwise), so that the timed checks include
 * partners arriving and not only misses.
 */
static int move_weak_last(mpz_t *m, size_t n, size_t k, const char *truth_path)
{
	FILE *f = fopen(truth_path, "r");
	if (f == NULL) {
		perror(truth_path);
		return -1;
	}
	uint8_t *weak = calloc(n ? n : 1, 1);
	__mpz_struct *tmp = malloc((n ? n : 1) * sizeof(*tmp));
	if (weak == NULL || tmp == NULL) {
		fclose(f);
		free(weak);
		free(tmp);
		return -1;
	}
	size_t line, group, nweak = 0;
	char kind[16];
	while (fscanf(f, "%zu %15s %zu", &line, kind, &group) == 3)
		if (line < n && !weak[line]) {
			weak[line] = 1;
			nweak++;
		}
	fclose(f);
	/* new group: every weak line, plus the last k - nweak other lines */
	size_t others_new = k > nweak ? k - nweak : 0, seen_other = 0, n_other = n - nweak;
	size_t out = 0;
	for (int pass = 0; pass < 2; pass++) {
		seen_other = 0;
		for (size_t i = 0; i < n; i++) {
			bool is_new = weak[i] || (!weak[i] && seen_other >= n_other - others_new);
			if (!weak[i])
				seen_other++;
			if (is_new == (pass == 1))
				tmp[out++] = *m[i];
		}
	}
	for (size_t i = 0; i < n; i++)
		*m[i] = tmp[i];
	free(tmp);
	free(weak);
	return 0;
}

static int run_timing(const char *path, size_t incremental, unsigned threads,
		      const char *truth_path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		perror(path);
		return 1;
	}
	mpz_t *m = NULL;
	size_t n = 0;
	int rc = wk_read_hex_moduli(f, &m, &n);
	fclose(f);
	if (rc != 0) {
		fprintf(stderr, "gen_tls_moduli: %s: %s\n", path, strerror(-rc));
		return 1;
	}
	struct wk_result res = {0};
	if (incremental == 0) {
		double t0 = now(), c0 = cpu_seconds();
		rc = wk_batch_gcd((const mpz_t *)m, n, NULL, threads, &res);
		double t1 = now(), c1 = cpu_seconds();
		if (rc == 0)
			printf("mode=batch moduli=%zu threads=%u seconds=%.2f cpu_seconds=%.2f "
			       "findings=%zu maxrss_kb=%ld\n",
			       n, threads, t1 - t0, c1 - c0, res.count, maxrss_kb());
		wk_result_free(&res);
	} else {
		if (incremental > n)
			incremental = n;
		if (truth_path != NULL && move_weak_last(m, n, incremental, truth_path) != 0) {
			wk_free_moduli(m, n);
			return 1;
		}
		struct wk_set *s = wk_set_new(0, threads);
		rc = s ? 0 : -ENOMEM;
		double t0 = now();
		for (size_t i = 0; rc == 0 && i < n - incremental; i++)
			rc = wk_set_add(s, m[i], i);
		if (rc == 0)
			rc = wk_set_build(s);
		double t1 = now(), worst = 0;
		size_t flagged = 0;
		for (size_t i = n - incremental; rc == 0 && i < n; i++) {
			double c0 = now();
			rc = wk_set_check(s, m[i], i, true, &res);
			double c = now() - c0;
			worst = c > worst ? c : worst;
			flagged += res.count;
			wk_result_free(&res);
		}
		double t2 = now();
		wk_set_free(s);
		/* the same K new moduli in one wk_set_check_many call, on a fresh set */
		s = rc == 0 ? wk_set_new(0, threads) : NULL;
		rc = rc != 0 ? rc : s ? 0 : -ENOMEM;
		uint64_t *ids = rc == 0 ? malloc(incremental * sizeof(uint64_t)) : NULL;
		rc = rc != 0 ? rc : ids ? 0 : -ENOMEM;
		for (size_t i = 0; rc == 0 && i < n - incremental; i++)
			rc = wk_set_add(s, m[i], i);
		if (rc == 0)
			rc = wk_set_build(s);
		for (size_t i = 0; rc == 0 && i < incremental; i++)
			ids[i] = n - incremental + i;
		double t3 = now();
		if (rc == 0)
			rc = wk_set_check_many(s, (const mpz_t *)m + (n - incremental), ids, incremental,
					       &res);
		double t4 = now();
		size_t flagged_many = res.count;
		wk_result_free(&res);
		free(ids);
		wk_set_free(s);
		if (rc == 0)
			printf("mode=incremental stored=%zu checked=%zu build_seconds=%.2f "
			       "ms_per_check=%.2f worst_ms=%.2f findings=%zu many_seconds=%.2f "
			       "many_findings=%zu maxrss_kb=%ld\n",
			       n - incremental, incremental, t1 - t0,
			       1000 * (t2 - t1) / (double)(incremental ? incremental : 1), 1000 * worst,
			       flagged, t4 - t3, flagged_many, maxrss_kb());
	}
	wk_free_moduli(m, n);
	if (rc != 0) {
		fprintf(stderr, "gen_tls_moduli: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return -1;
	*out = (size_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = 100, bits = 1024, seed = 1, pairs = 0, triples = 0, dups = 0, cross = 0, threads = 0;
	size_t incremental = 0;
	const char *out_path = NULL, *truth_path = NULL, *time_path = NULL;
	int opt, rc = 1;
	while ((opt = getopt(argc, argv, "n:b:s:p:t:d:x:j:o:e:r:i:h")) != -1) {
		size_t *dst = NULL;
		switch (opt) {
		case 'n': dst = &n; break;
		case 'b': dst = &bits; break;
		case 's': dst = &seed; break;
		case 'p': dst = &pairs; break;
		case 't': dst = &triples; break;
		case 'd': dst = &dups; break;
		case 'x': dst = &cross; break;
		case 'j': dst = &threads; break;
		case 'o': out_path = optarg; break;
		case 'e': truth_path = optarg; break;
		case 'r': time_path = optarg; break;
		case 'i': dst = &incremental; break;
		default: usage(); return 2;
		}
		if (dst != NULL && parse_size(optarg, dst) != 0) {
			usage();
			return 2;
		}
	}
	if (time_path != NULL)
		return run_timing(time_path, incremental, threads > 64 ? 64u : (unsigned)threads,
				  truth_path);
	size_t weak = 2 * pairs + 3 * triples + 2 * dups + 3 * cross;
	if (bits < 16 || n < weak) {
		fprintf(stderr, "gen_tls_moduli: need BITS >= 16 and N >= %zu for the weak moduli\n", weak);
		return 2;
	}
	if (threads == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (size_t)c : 1;
	}
	if (threads > 64)
		threads = 64;

	/* moduli specs: which two primes each uses */
	struct spec *sp = calloc(n, sizeof(*sp));
	if (sp == NULL)
		return 1;
	size_t np = 0, m = 0, grp = 0;
	for (size_t i = 0; i < pairs; i++, grp++) {
		size_t s = np++;
		sp[m++] = (struct spec){s, np++, "pair", grp};
		sp[m++] = (struct spec){s, np++, "pair", grp};
	}
	for (size_t i = 0; i < triples; i++, grp++) {
		size_t s = np++;
		for (int k = 0; k < 3; k++)
			sp[m++] = (struct spec){s, np++, "triple", grp};
	}
	for (size_t i = 0; i < dups; i++, grp++) {
		size_t a = np++, b = np++;
		sp[m++] = (struct spec){a, b, "dup", grp};
		sp[m++] = (struct spec){a, b, "dup", grp};
	}
	for (size_t i = 0; i < cross; i++, grp++) {
		size_t p = np++, q = np++, r = np++, s = np++;
		sp[m++] = (struct spec){p, q, "cross", grp};
		sp[m++] = (struct spec){p, r, "cross", grp};
		sp[m++] = (struct spec){q, s, "cross", grp};
	}
	while (m < n) {
		size_t a = np++;
		sp[m++] = (struct spec){a, np++, NULL, 0};
	}

	struct gen g = {.nprimes = np};
	g.primes = malloc(np * sizeof(mpz_t));
	size_t *order = malloc(n * sizeof(size_t));
	if (g.primes == NULL || order == NULL)
		goto out_nomem;
	gmp_randstate_t rs;
	gmp_randinit_mt(rs);
	gmp_randseed_ui(rs, (unsigned long)seed);
	size_t pbits = bits / 2;
	for (size_t i = 0; i < np; i++) {
		mpz_init(g.primes[i]);
		mpz_urandomb(g.primes[i], rs, pbits);
		mpz_setbit(g.primes[i], pbits - 1); /* top two bits set: p·q has `bits` bits */
		mpz_setbit(g.primes[i], pbits - 2);
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) { /* Fisher-Yates, deterministic */
		size_t j = gmp_urandomm_ui(rs, i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	gmp_randclear(rs);

	atomic_init(&g.next, 0);
	pthread_t tid[64];
	size_t started = 0;
	for (size_t k = 1; k < threads; k++)
		if (pthread_create(&tid[started], NULL, prime_worker, &g) == 0)
			started++;
	prime_worker(&g);
	for (size_t k = 0; k < started; k++)
		pthread_join(tid[k], NULL);

	FILE *out = out_path ? fopen(out_path, "w") : stdout;
	FILE *truth = truth_path ? fopen(truth_path, "w") : NULL;
	if (out == NULL || (truth_path != NULL && truth == NULL)) {
		perror("gen_tls_moduli: open");
		goto out_close;
	}
	mpz_t nn;
	mpz_init(nn);
	for (size_t line = 0; line < n; line++) {
		const struct spec *s = &sp[order[line]];
		mpz_mul(nn, g.primes[s->a], g.primes[s->b]);
		gmp_fprintf(out, "%ZX\n", nn);
		if (truth != NULL && s->kind != NULL)
			fprintf(truth, "%zu %s %zu\n", line, s->kind, s->group);
	}
	mpz_clear(nn);
	rc = 0;
out_close:
	if (out != NULL && out != stdout && fclose(out) != 0)
		rc = 1;
	if (truth != NULL && fclose(truth) != 0)
		rc = 1;
	for (size_t i = 0; i < np; i++)
		mpz_clear(g.primes[i]);
	free(g.primes);
	free(order);
	free(sp);
	return rc;
out_nomem:
	free(g.primes);
	free(order);
	free(sp);
	fprintf(stderr, "gen_tls_moduli: out of memory\n");
	return 1;
}
