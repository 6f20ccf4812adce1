/*
 * pdns_query.h — passive DNS lookups answering in COF (one JSON object per record), shared by
 * d4-pdns-lookup and d4-web so that both serve the same answers from the same store.
 *
 * A caller fills a struct pdns_query (the term of /query/<term> or /fquery/<term>, then any
 * query-string parameters through pdns_query_set_param), and pdns_query_run() runs it in one
 * read transaction, giving each COF object (without the newline) to an emit callback. Results
 * come in index order; at most `limit` objects are given, and when more remain the result says
 * so with an opaque cursor that continues the listing (never a silent truncation). A query
 * also stops, with a cursor, after examining PDNS_QUERY_SCAN_MAX index entries, so that a
 * selective filter on a huge wildcard cannot hold a worker for long.
 *
 *   /query/<name>      records of that name (any type)           rec index, prefix name
 *   /query/STAR.SUFFIX records of every name under the suffix (STAR: "*")  s2i, then rec
 *   /query/<address>   records whose rdata is that address        rdx index
 *   /fquery/<rdata>    records whose rdata is exactly that value  rdx index (an address, a
 *                      (a CNAME/NS/MX/PTR target, a TXT string)   name, any string rdata)
 *
 * Thread safety: pdns_query_run may run in many threads at once on one read-only store.
 */
#ifndef PDNS_QUERY_H
#define PDNS_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdns_store.h"

#define PDNS_QUERY_LIMIT_DEFAULT 1000
#define PDNS_QUERY_LIMIT_MAX 100000
#define PDNS_QUERY_SCAN_MAX 1000000
#define PDNS_CURSOR_MAX (2 * PDNS_REC_KEY_MAX + 2)
#define PDNS_QUERY_TYPES_MAX 16

enum pdns_qkind {
	PDNS_Q_QUERY,  /* /query/<name, *.suffix or address> */
	PDNS_Q_FQUERY, /* /fquery/<rdata> */
};

struct pdns_query {
	enum pdns_qkind kind;
	char term[PDNS_RDATA_MAX + 1];
	size_t term_len;
	uint16_t types[PDNS_QUERY_TYPES_MAX]; /* rrtype filter; none = every type */
	size_t ntypes;
	uint64_t since; /* keep records with time_last >= since (0: no bound) */
	uint64_t until; /* keep records with time_first <= until (0: no bound) */
	size_t limit;
	uint8_t cursor[PDNS_REC_KEY_MAX]; /* decoded cursor: the index key to continue after */
	size_t cursor_len;
	char cursor_tag; /* 'r' rec key, 'x' rdx key */
	uint64_t now;    /* clock for expiry; 0: time(NULL) */
	size_t scan_max; /* 0: PDNS_QUERY_SCAN_MAX */
};

struct pdns_query_result {
	size_t emitted;
	size_t scanned;
	bool more;                              /* there may be more: next_cursor continues */
	char next_cursor[PDNS_CURSOR_MAX + 1]; /* "" unless more */
};

/* One COF object, len bytes, no newline, valid during the call. Non-zero stops the query. */
typedef int (*pdns_emit_cb)(void *arg, const char *json, size_t len);

void pdns_query_init(struct pdns_query *q, enum pdns_qkind kind);
/* The path part after /query/ or /fquery/ (already URL-decoded). 0, or -1 with *why. */
int pdns_query_set_term(struct pdns_query *q, const char *term, const char **why);
/*
 * A query-string parameter: rrtype (comma list: A,AAAA or numbers or TYPEnnn), since, until
 * (Unix seconds), limit (1..PDNS_QUERY_LIMIT_MAX), cursor (from a previous answer). Unknown
 * keys return 1 (the caller may ignore them or refuse). 0, 1, or -1 with *why.
 */
int pdns_query_set_param(struct pdns_query *q, const char *key, const char *value,
                         const char **why);

/* 0; -1 bad input (*why, e.g. a cursor of another query); -2 store error (*why). */
int pdns_query_run(struct pdns_store *st, const struct pdns_query *q, pdns_emit_cb cb,
                   void *arg, struct pdns_query_result *res, const char **why);

/* The /info object (software, version, store sizes, analyzer counters, expiry), malloc'd
 * NUL-terminated JSON in *out. 0 or -1. */
int pdns_query_info(struct pdns_store *st, char **out);

/* Appends s as a JSON string (quotes included) to buf; returns the new length, or 0 when cap
 * is too small. */
size_t pdns_json_str(char *buf, size_t at, size_t cap, const char *s, size_t len);

#endif
