/*
 * weakkeys.h — weak public keys: RSA moduli sharing a prime (batch GCD over a
 * whole set, and an incremental check of a new modulus against everything
 * stored), duplicate moduli, small keys and bad exponents. GMP does the
 * arithmetic; docs/weak-keys.md explains the algorithms and their costs.
 *
 * Three parts:
 *   - wk_batch_gcd(): Bernstein's product tree + remainder tree over n moduli,
 *     O(M(n·b)·log n) time, threaded; for each modulus i it finds
 *     gcd(N_i, prod_{j≠i} N_j) and, when that is not 1, the shared factor and
 *     which other moduli share it (or are identical).
 *   - struct wk_set: what the analyzer keeps in memory. Moduli are grouped in
 *     batches, each with the product of its moduli; checking a NEW modulus n is
 *     gcd(n, P_b mod n) per batch (linear in the size of the set, tens of ms for
 *     100,000 RSA-1024 moduli), then only a hit batch is scanned to name the
 *     partner. Loading the set from a store is wk_set_add() per modulus (no
 *     arithmetic; the products are built in bulk, by product tree, at the first
 *     check or by wk_set_build()).
 *   - wk_check_rsa() / wk_check_ec(): size, exponent and cheap factoring checks
 *     (even modulus, a prime factor under the trial-division limit, p and q so
 *     close that Fermat's method finds them in a few iterations).
 *
 * Moduli are given as mpz_t or as unsigned big-endian bytes (as in a
 * certificate; leading zero bytes are fine). Results are owned by the caller
 * and released with the matching *_free / *_clear function; every GMP value is
 * freed. Errors are negative errno codes (-EINVAL, -ENOMEM). No global state:
 * a struct wk_set may be used by one thread at a time (wk_batch_gcd and the
 * set use their own short-lived worker threads internally).
 */
#ifndef D4_TLS_WEAKKEYS_H
#define D4_TLS_WEAKKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gmp.h>

/* What is wrong with a key: bits of wk_finding.flags and wk_rsa_report.flags. */
enum wk_flag {
	/* shared moduli (batch GCD, incremental set) */
	WK_SHARED_PRIME = 1u << 0, /* shares a prime with another distinct modulus: factored */
	WK_DUPLICATE = 1u << 1,    /* the same modulus appears more than once */
	/* RSA size and exponent (wk_check_rsa) */
	WK_RSA_SMALL = 1u << 2,      /* modulus under policy.rsa_small_bits (2048) */
	WK_RSA_VERY_SMALL = 1u << 3, /* modulus of policy.rsa_very_small_bits (1024) or less */
	WK_EXP_ONE = 1u << 4,        /* e = 1: no encryption at all */
	WK_EXP_EVEN = 1u << 5,       /* e even (or 0): not invertible, not a valid RSA key */
	WK_EXP_SMALL = 1u << 6,      /* 1 < e < 65537 */
	WK_EXP_THREE = 1u << 7,      /* e = 3 (also WK_EXP_SMALL): Coppersmith/Bleichenbacher-06 */
	WK_EXP_LARGE = 1u << 8,      /* e >= n or e wider than 256 bits: not a sane key */
	WK_MOD_EVEN = 1u << 9,       /* n even: factored by 2 */
	WK_MOD_SMALL_FACTOR = 1u << 10, /* n has a prime factor below policy.trial_limit */
	WK_MOD_FERMAT = 1u << 11,       /* p and q so close that Fermat's method factors n */
	WK_MOD_INVALID = 1u << 12,      /* n < 3, or not parseable */
	/* other key types (wk_check_ec) */
	WK_EC_SMALL = 1u << 13, /* elliptic curve under policy.ec_small_bits (224) */
};

/* Number of peers listed in a finding at most (n_peers_total counts them all). */
#define WK_MAX_PEERS 64

struct wk_policy {
	unsigned rsa_small_bits;      /* 2048: RSA below this is WK_RSA_SMALL */
	unsigned rsa_very_small_bits; /* 1024: RSA at or below this is WK_RSA_VERY_SMALL */
	unsigned ec_small_bits;       /* 224: EC below this is WK_EC_SMALL */
	unsigned trial_limit;         /* 10000: trial division by the primes below this */
	unsigned fermat_iterations;   /* 1000: Fermat steps from ceil(sqrt(n)); 0 = off;
				       * never tried on moduli over 16384 bits */
};

/* Fills the defaults above. */
void wk_policy_default(struct wk_policy *pol);

/*
 * One weak modulus. For a batch, id is the modulus' index in the input (or
 * ids[index] when ids were given); for a set, the id given to wk_set_add().
 */
struct wk_finding {
	uint64_t id;
	unsigned flags; /* WK_SHARED_PRIME and/or WK_DUPLICATE */
	/*
	 * WK_SHARED_PRIME: N = p·q with p a factor shared with a peer (prime for a
	 * normal RSA modulus; q may be shared too); q = 1 when N divides another
	 * modulus (not a two-prime key). Both 0 when only WK_DUPLICATE.
	 */
	mpz_t p, q;
	/* Other moduli sharing a factor with this one or identical to it (ids), first
	 * WK_MAX_PEERS of them, ascending; n_peers_total counts all. */
	uint64_t peers[WK_MAX_PEERS];
	size_t n_peers;
	size_t n_peers_total;
};

struct wk_result {
	struct wk_finding *findings; /* sorted by id */
	size_t count;
};

/* Frees every finding and resets *r to empty (safe on an empty or zeroed result). */
void wk_result_free(struct wk_result *r);

/*
 * Batch GCD over n moduli. threads: 0 = number of online CPUs. ids may be
 * NULL (then a finding's id is the index). out receives one finding per weak
 * modulus (both ends of every shared prime, every copy of a duplicate);
 * moduli that are 0 or 1 are ignored. 0, -EINVAL or -ENOMEM.
 * Memory: the product tree (the total size of the moduli per level, ~220 MB
 * for 100,000 RSA-1024) plus GMP's FFT scratch at the top (~100 MB per thread).
 */
int wk_batch_gcd(const mpz_t *moduli, size_t n, const uint64_t *ids, unsigned threads,
		 struct wk_result *out);
/* Same, moduli as big-endian byte strings mod[i] of len[i] bytes. */
int wk_batch_gcd_bytes(const uint8_t *const *mod, const size_t *len, size_t n,
		       const uint64_t *ids, unsigned threads, struct wk_result *out);

/*
 * The incremental set. Not thread-safe: one caller at a time.
 * batch_size: moduli per batch product (0 = 4096; smaller = cheaper partner
 * scan on a hit, slightly more per-check overhead). threads: for bulk builds,
 * the per-batch reductions of a check and wk_set_batch_gcd (0 = online CPUs).
 */
struct wk_set;
struct wk_set *wk_set_new(unsigned batch_size, unsigned threads);
void wk_set_free(struct wk_set *s);
size_t wk_set_count(const struct wk_set *s);

/*
 * Adds a modulus without checking it (loading a store at start): no
 * arithmetic now; products are built in bulk at the next check or
 * wk_set_build(). The set keeps a copy. 0, -EINVAL (0 or 1) or -ENOMEM.
 */
int wk_set_add(struct wk_set *s, const mpz_t n, uint64_t id);
int wk_set_add_bytes(struct wk_set *s, const uint8_t *mod, size_t len, uint64_t id);
/* Builds the pending batch products now (threaded). 0 or -ENOMEM. */
int wk_set_build(struct wk_set *s);

/*
 * Checks n against every modulus in the set, then adds it (unless add is
 * false). out receives the findings: the new modulus (id) and every stored
 * modulus it shares a prime with or is identical to, each with its factors
 * and peers (peers limited to what this check saw: the new modulus for a
 * stored one). out->count == 0: nothing shared. Cost: one reduction of each
 * batch product mod n (linear in the set size) plus, on a hit, one gcd per
 * modulus of the hit batch. 0, -EINVAL or -ENOMEM.
 */
int wk_set_check(struct wk_set *s, const mpz_t n, uint64_t id, bool add, struct wk_result *out);
int wk_set_check_bytes(struct wk_set *s, const uint8_t *mod, size_t len, uint64_t id, bool add,
		       struct wk_result *out);

/*
 * Checks k new moduli at once and adds them all: the same findings as k calls
 * of wk_set_check(add=true) in order (a new modulus sharing a prime with an
 * earlier one of the k is reported too), in that order. Costs about one pass
 * over the set for all k (P_b mod Q with Q the product of the k, then a
 * remainder tree), plus a full wk_set_check for each modulus that turns out
 * weak: queue new moduli and call this every few seconds. 0, -EINVAL, -ENOMEM.
 * On error the set may hold some of the k.
 */
int wk_set_check_many(struct wk_set *s, const mpz_t *n, const uint64_t *ids, size_t k,
		      struct wk_result *out);
int wk_set_check_many_bytes(struct wk_set *s, const uint8_t *const *mod, const size_t *len,
			    const uint64_t *ids, size_t k, struct wk_result *out);

/* Batch GCD over everything in the set (findings by id). Same as wk_batch_gcd. */
int wk_set_batch_gcd(struct wk_set *s, struct wk_result *out);

/* RSA size, exponent and cheap factoring checks. */
struct wk_rsa_report {
	unsigned flags;              /* enum wk_flag bits; 0 = nothing found */
	size_t bits;                 /* size of n in bits */
	unsigned long small_factor;  /* WK_MOD_EVEN / WK_MOD_SMALL_FACTOR: the smallest one */
	mpz_t p, q;                  /* n = p·q when factored (even, small factor, Fermat), else 0 */
};
/* pol NULL = defaults. out must be cleared with wk_rsa_report_clear(). 0 or -EINVAL. */
int wk_check_rsa(const mpz_t n, const mpz_t e, const struct wk_policy *pol,
		 struct wk_rsa_report *out);
int wk_check_rsa_bytes(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
		       const struct wk_policy *pol, struct wk_rsa_report *out);
void wk_rsa_report_clear(struct wk_rsa_report *r);

/* Elliptic-curve (or other non-RSA) key of `bits` bits: WK_EC_SMALL or 0. */
unsigned wk_check_ec(unsigned bits, const struct wk_policy *pol);

/* The short name of one flag ("shared-prime", "rsa-small", ...), or "unknown". */
const char *wk_flag_name(unsigned flag);
/* All flags as "a,b,c" into buf (always NUL-terminated); returns the length it needed. */
size_t wk_flags_format(unsigned flags, char *buf, size_t size);

/* n from big-endian bytes (mpz_init'ed by the caller). */
void wk_mpz_from_bytes(mpz_t n, const uint8_t *buf, size_t len);
/* Lowercase hex of n, malloc'ed (free()), or NULL. */
char *wk_mpz_hex(const mpz_t n);

/*
 * Small CLI for the lead to wire into a tool: reads hex moduli (one per line,
 * '#' comments) from `in`, runs the batch GCD with `threads`, and writes one
 * line per finding to `out`: "<line-index> <flags> <p-hex> <q-hex> peers=a,b".
 * 0 or a negative errno.
 */
int wk_cli_batch(FILE *in, FILE *out, unsigned threads);
/* Reads hex moduli as above into a malloc'ed mpz array (*n entries). 0 or -errno. */
int wk_read_hex_moduli(FILE *in, mpz_t **moduli, size_t *n);
void wk_free_moduli(mpz_t *moduli, size_t n);

#endif
