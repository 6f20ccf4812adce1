/*
 * query.h — lookups in the TLS store (store.h), answered as JSON (jansson), for d4-web's
 * HTTP API, tests and tools. Every function runs in its own LMDB read transaction: it sees the
 * last committed batch and never blocks the analyzer writing.
 *
 * Pivots are named as in the API: "ja3" (MD5 hex), "ja3s" (MD5 hex), "ja4", "cert" (SHA-256
 * or SHA-1 hex of the DER: a SHA-1 is mapped to its SHA-256), "key" (SHA-256 hex of the
 * SubjectPublicKeyInfo), "server" (address as text, IPv4 dotted or IPv6 in any spelling),
 * "sni" (as sent), "subject" (RFC 2253). Hex values are case-insensitive.
 *
 * Paging: a list returns at most `limit` entries (0: TLS_QUERY_DEFAULT_LIMIT, capped at
 * TLS_QUERY_MAX_LIMIT) and "next": an opaque cursor string to pass back for the following page,
 * or null at the end. A cursor of another query is refused (-EINVAL).
 *
 * Errors: NULL with *err set: -ENOENT (unknown pivot value), -EINVAL (bad kind, value or
 * cursor), or an LMDB code. The caller owns the returned json_t (json_decref).
 */
#ifndef TLS_QUERY_H
#define TLS_QUERY_H

#include <jansson.h>

#include "store.h"

#define TLS_QUERY_DEFAULT_LIMIT 100u
#define TLS_QUERY_MAX_LIMIT 1000u

/*
 * One pivot and what is linked to it:
 *   {"kind":"cert","value":"<sha256>","first_seen":T,"last_seen":T,"count":N,
 *    "detail":"<full JA3 string, JA3S string or JA4_r>"            (ja3, ja3s, ja4 only)
 *    "cert":{sha1, sha256, subject, issuer, cn, not_before, not_after, serial, sig_alg, san[],
 *            key, key_type, key_bits, is_ca, self_signed, der_len}   (cert only)
 *    "key":{id, type, bits, curve, e, e_u64, n}                        (key only)
 *    "links":[{"kind":"server","value":"192.0.2.1","first_seen":T,"last_seen":T,"count":N}...],
 *    "next":cursor|null}
 * links are sorted by kind, then value; paged by cursor.
 */
json_t *tls_query_pivot(struct tls_store *st, const char *kind, const char *value,
                        const char *cursor, unsigned limit, int *err);

/* Sessions where the pivot appears, oldest first: {"sessions":[record...],"next":...}.
 * A record: {id, time, usec, client, client_port, server, server_port, version, sensor,
 * ja3_md5, ja3s_md5, ja4, sni, alpn, certs:[sha256...]} (the full JA3/JA3S strings are the
 * "detail" of their pivot). */
json_t *tls_query_sessions(struct tls_store *st, const char *kind, const char *value,
                           const char *cursor, unsigned limit, int *err);

/* Weak-key findings, oldest first: {"findings":[{id, kind, key, time, evidence}...],"next":...}. */
json_t *tls_query_findings(struct tls_store *st, const char *cursor, unsigned limit, int *err);

/* The DER of a certificate (SHA-256 or SHA-1 hex) into a malloc'ed buffer. 0 or an error. */
int tls_query_cert_der(struct tls_store *st, const char *hash, uint8_t **der, size_t *len);

/* Counts of the databases: {"sessions":N,"certs":N,"keys":N,"pivots":N,"links":N,"findings":N}. */
json_t *tls_query_summary(struct tls_store *st, int *err);

#endif
