/*
 * store.h — the TLS analyzer's store of links over time: its own LMDB environment (a
 * directory), written by d4-analyzer-tls, read by the query API (query.h) in the analyzer,
 * in tests and in d4-web.
 *
 * What is kept (docs/tls-analyzer.md has the exact layout of every database):
 *   - sessions: one record per handshake (time, client and server address and port, sensor
 *     uuid, JA3, JA3S, JA4, SNI, ALPN, version, the certificate chain as SHA-256 hashes);
 *   - certificates: the DER once per SHA-256, the parsed fields, a SHA-1 → SHA-256 index;
 *   - public keys: SHA-256 of the SubjectPublicKeyInfo → type, bits, curve, RSA modulus and
 *     exponent, and a numeric id (the weak-key set's id);
 *   - pivots: JA3, JA3S, JA4, certificate, key, server address, SNI, subject: each with first
 *     and last seen and a count, the sessions it appears in, and the other pivots it was seen
 *     with (a link, also with first/last seen and count);
 *   - weak-key findings with their evidence (JSON), one per (kind, key).
 *
 * Writes are batched: everything goes into one write transaction, and the first/last/count
 * updates of pivots and links are first merged in memory (a busy JA3 seen 10,000 times in a
 * batch costs one LMDB write at the flush). tls_store_flush() commits; the analyzer calls it
 * from flush_cb, before the ACK, and at the end. A batch also commits by itself when it holds
 * batch_max sessions, so memory stays bounded.
 *
 * The shared-key check is here: at each flush, a key whose links reach more than one subject,
 * or more than shared_key_servers server addresses, becomes a "shared-key" finding.
 *
 * Errors are negative: -errno or an LMDB code (MDB_MAP_FULL ...); tls_store_strerror().
 * One writer at a time (LMDB); readers (query.h) never block it.
 */
#ifndef TLS_STORE_H
#define TLS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "tls_x509.h"

#define TLS_STORE_SCHEMA 1
#define TLS_STORE_DEFAULT_MAP_SIZE ((size_t)4 << 30)
#define TLS_STORE_DEFAULT_BATCH 10000u
#define TLS_STORE_DEFAULT_SHARED_KEY_SERVERS 16u
#define TLS_STORE_VALUE_MAX 200 /* pivot values are cut to this many bytes in keys */

/* Pivot kinds: the byte that starts a pivot key, and the name used in the query API. */
enum tls_pivot {
	TLS_PIVOT_JA3 = 'j',
	TLS_PIVOT_JA3S = 's',
	TLS_PIVOT_JA4 = '4',
	TLS_PIVOT_CERT = 'c',    /* SHA-256 of the certificate DER, hex */
	TLS_PIVOT_KEY = 'k',     /* SHA-256 of the SubjectPublicKeyInfo, hex */
	TLS_PIVOT_SERVER = 'a',  /* server address, text (inet_ntop) */
	TLS_PIVOT_SNI = 'n',
	TLS_PIVOT_SUBJECT = 'u', /* certificate subject, RFC 2253 */
};
/* "ja3" → TLS_PIVOT_JA3 ...; 0 when unknown. */
int tls_pivot_from_name(const char *name);
const char *tls_pivot_name(int kind);

struct tls_store_config {
	const char *path;            /* directory, created if absent */
	size_t map_size;             /* 0: TLS_STORE_DEFAULT_MAP_SIZE */
	bool readonly;               /* query only */
	unsigned batch_max;          /* sessions per automatic commit, 0: default */
	unsigned shared_key_servers; /* 0: default */
	bool no_sync;                /* MDB_NOSYNC (benchmarks, tests): a crash may lose commits */
};

/* One certificate of a chain: the DER and what tls_x509_parse gave (info NULL: unparsed). */
struct tls_store_cert {
	const uint8_t *der;
	size_t len;
	const struct tls_cert_info *info;
};

struct tls_store_session {
	uint64_t time; /* seconds since the epoch */
	uint32_t usec;
	uint8_t client[16], server[16]; /* IPv4 as v4-mapped IPv6 */
	uint16_t client_port, server_port;
	uint8_t sensor[16]; /* D4 sensor uuid; zero offline */
	/* NULL or "" when absent */
	const char *ja3, *ja3_md5, *ja3s, *ja3s_md5, *ja4, *ja4_r, *sni, *alpn;
	uint16_t version;
	size_t n_certs;
	const struct tls_store_cert *certs; /* leaf first */
};

struct tls_store_stats {
	uint64_t sessions;      /* written by this process */
	uint64_t certs_new, keys_new;
	uint64_t certs_unparsed; /* chain entries without info: counted, their DER not kept */
	uint64_t commits;
	uint64_t findings_new;
};

struct tls_store;

/* Called for each new public key (RSA: n/e set) inside the batch, e.g. the weak-key check. */
typedef void (*tls_store_key_cb)(void *arg, uint64_t key_id, const char *spki_sha256,
                                 const struct tls_cert_info *ci);

int tls_store_open(struct tls_store **out, const struct tls_store_config *cfg);
/* A read-only transaction; adopts the map size when the writer grew it (MDB_MAP_RESIZED, which
 * a long-lived reader such as d4-web meets). 0 or an LMDB error. */
int tls_store_txn_read(MDB_env *env, MDB_txn **txn);
/* Commits what is pending (if writable) and closes. NULL is fine. */
void tls_store_close(struct tls_store *st);
const char *tls_store_strerror(int err);
void tls_store_set_key_cb(struct tls_store *st, tls_store_key_cb cb, void *arg);

/* Buffers one handshake; may commit when the batch is full. 0 or a negative error. */
int tls_store_add_session(struct tls_store *st, const struct tls_store_session *s);
/* Commits the batch. 0 or a negative error (the batch is lost: the caller stops). */
int tls_store_flush(struct tls_store *st);

/*
 * A weak-key finding for the key with that SPKI hash: kind ("shared-prime", "rsa-small",
 * "shared-key" ...), evidence a JSON object (borrowed). One finding per (kind, key): a second
 * one is ignored (returns 0). Goes into the current batch.
 */
int tls_store_add_finding(struct tls_store *st, const char *kind, const char *spki_sha256,
                          uint64_t time, json_t *evidence);
/* SPKI hash of a key id (the weak-key set's ids), into out[65]. 0 or -ENOENT. */
int tls_store_key_hash(struct tls_store *st, uint64_t key_id, char out[65]);
/*
 * Calls cb for every stored RSA key (loading the weak-key set at start): modulus bytes and id.
 * Runs in its own read transaction.
 */
int tls_store_each_rsa_key(struct tls_store *st,
                           int (*cb)(void *arg, uint64_t id, const uint8_t *n, size_t nlen),
                           void *arg);

const struct tls_store_stats *tls_store_stats(const struct tls_store *st);

/* For query.c: the environment and the database handles (read side). */
struct tls_store_dbs {
	void *env; /* MDB_env * */
	unsigned meta, sessions, pivots, links, psess, certs, der, cert_sha1, keys, key_ids,
		findings, finding_idx;
};
const struct tls_store_dbs *tls_store_dbs(const struct tls_store *st);

#endif
