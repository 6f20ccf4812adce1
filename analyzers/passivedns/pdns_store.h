/*
 * pdns_store.h — the passive DNS store: one LMDB environment written by d4-analyzer-passivedns
 * and read by d4-pdns-lookup and d4-web (any number of reader processes, one writer).
 *
 * Layout (docs/passivedns.md has the full description):
 *   s2i     reversed string -> u32 id      names and string rdata interned once; reversed so
 *                                          that a suffix query (*.example.com) is a prefix scan
 *   i2s     u32be bucket (id / 16) -> the strings of ids bucket*16 .. bucket*16+15, in order,
 *           each as varint length + bytes (one LMDB node per 16 strings, not per string:
 *           ~10 bucket nodes fill a 4 KiB page; 64 strings a node would leave a third empty)
 *   A record's logical key is name_id u32be | rrtype u16be | kind u8 | rdata (4: IPv4,
 *   16: IPv6, 4: string id), 11 or 23 bytes. It is stored in one of three databases:
 *   rec     MDB_DUPSORT | MDB_DUPFIXED, 11-byte keys whose (rrtype, kind) has a code
 *           (type_codes[] in pdns_store.c): LMDB key = the 2 high bytes of the name id, an
 *           18-byte duplicate = 2 low bytes of the name id, the type code u8, 4 rdata bytes,
 *           time_first u32be, time_last - time_first u32be, count u16be, sensor id u8 (0: none)
 *   rec6    the same for AAAA records with an IPv6 address: a 29-byte duplicate = 2 low bytes
 *           of the name id, 16 address bytes, then as rec
 *   rcx     the records that fit neither (other types, a second sensor, a sensor id over
 *           255, a count over 65535, times beyond u32): logical key -> varint time_first,
 *           varint (time_last - time_first), varint count, varint sensor ids (up to
 *           PDNS_MAX_SENSORS). A record is in one database only; one that stops fitting
 *           moves to rcx. The three are in logical key order (the type codes follow the
 *           order of (rrtype, kind)), merged by readers (pdns_rec_iter).
 *   rdx     the reverse index, MDB_DUPSORT | MDB_DUPFIXED: the index key
 *           kind u8 | rdata | rrtype u16be | name_id u32be (11 bytes, kinds '4' and 's') is
 *           split into an LMDB key (all of it but its last 8 bytes: '4' + 2 address bytes, 's'
 *           + the 2 high bytes of the string id) and an 8-byte duplicate (the rest): the
 *           duplicates of a key are packed 8 bytes each, without a node per entry
 *   rdx6    the same for the 23-byte index keys of IPv6 rdata: LMDB key '6' + 2 address
 *           bytes, a 20-byte duplicate
 *   sensor  'u' uuid[16] -> u32 id; 'i' u32be -> uuid[16]
 *   meta    text keys: "stat.<name>" -> u64 (little endian), "expire" -> "16=24000,99=26000",
 *           "format" -> PDNS_FORMAT (decimal text; a store of another format is refused)
 *
 * Writes are batched: records are merged in memory (a hash table keyed by the rec key) and
 * applied in key order in one write transaction by pdns_store_commit(). Nothing is visible
 * to readers, nor durable, before that commit.
 */
#ifndef PDNS_STORE_H
#define PDNS_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdns_parse.h"

#define PDNS_MAX_SENSORS 16  /* sensor ids kept per record (the first ones seen) */
#define PDNS_REC_KEY_MAX 23  /* 4 + 2 + 1 + 16 */
#define PDNS_STR_KEY_MAX 433 /* longest s2i key (long strings: prefix + SHA-256) */
#define PDNS_FORMAT "3"       /* meta "format": 3 = rec and rdx with fixed-size duplicates */

/* rdx / rdx6: the LMDB flags and the split of an index key into LMDB key + fixed-size
 * duplicate (8 bytes in rdx, 20 in rdx6: IPv6 index keys, 23 bytes). */
#define PDNS_RDX_FLAGS (MDB_DUPSORT | MDB_DUPFIXED)
#define PDNS_RDX_DUP 8
#define PDNS_RDX6_DUP 20
static inline size_t pdns_rdx_dup(size_t len)
{
	return len == 23 ? PDNS_RDX6_DUP : PDNS_RDX_DUP;
}
static inline void pdns_rdx_split(const uint8_t *ik, size_t len, MDB_val *k, MDB_val *d)
{
	size_t dup = pdns_rdx_dup(len);
	k->mv_data = (void *)ik;
	k->mv_size = len - dup;
	d->mv_data = (void *)(ik + len - dup);
	d->mv_size = dup;
}

/* rec, rec6: the LMDB flags, the key (2 high bytes of the name id) and duplicate sizes. */
#define PDNS_REC_FLAGS (MDB_DUPSORT | MDB_DUPFIXED)
#define PDNS_REC_KEY 2
#define PDNS_REC_DUP 18
#define PDNS_REC6_DUP 29
#define PDNS_REC_DUP_MAX 29
#define PDNS_REC_COUNT_MAX 0xffffu

/* Counters of the analyzer, persisted (added) at each commit under "stat.<name>". */
enum pdns_stat {
	PDNS_S_LINES,       /* lines read (CSV and COF) */
	PDNS_S_RECORDS,     /* records accepted (one CSV line, one COF rdata element) */
	PDNS_S_NEW,         /* distinct records created */
	PDNS_S_EXCLUDED,    /* records matching an exclusion pattern */
	PDNS_S_REJECTED,    /* lines refused, all reasons */
	PDNS_S_COF_SKIPPED, /* COF rdata elements that were not usable strings */
	PDNS_S_IGNORED,     /* frames of sessions of another type */
	PDNS_S_PURGED,      /* records removed by expiry */
	PDNS_S__BASE
};
/* then one counter per enum pdns_reason (index PDNS_S__BASE + reason), "rejected.<reason>" */
#define PDNS_S__COUNT (PDNS_S__BASE + PDNS_R__COUNT)
const char *pdns_stat_name(unsigned i, char *buf, size_t len);

struct pdns_store;

struct pdns_store_opts {
	const char *path;   /* directory, created if missing (writer) */
	size_t map_size_mb; /* writer: LMDB map size; 0 = 65536 MiB */
	size_t batch;       /* writer: distinct records merged in memory before a commit; 0 = 262144 */
	bool readonly;      /* readers: MDB_RDONLY, transactions usable from any thread */
};

/* 0, or -1 with a reason in err. */
int pdns_store_open(struct pdns_store **out, const struct pdns_store_opts *o, char *err,
                    size_t errlen);
/* Commits what is pending (writer) and closes. */
void pdns_store_close(struct pdns_store *st);

MDB_env *pdns_store_env(struct pdns_store *st);

/* ---- writer ---- */

/* The small id of a sensor (created at first sight). 0 or -1. */
int pdns_store_sensor(struct pdns_store *st, const uint8_t uuid[16], uint32_t *id);
/* Adds one record seen by sensor sid (merged in memory; may commit when the batch is full). */
int pdns_store_add(struct pdns_store *st, const struct pdns_rec *r, uint32_t sid);
/* Counters kept in memory until the next commit. */
void pdns_store_count(struct pdns_store *st, unsigned stat, uint64_t n);
/* Applies and commits everything pending (no-op when nothing is). 0 or -1. */
int pdns_store_commit(struct pdns_store *st);
/* Per-type expiry in seconds after time_last, written to meta at the next commit ("" = none). */
int pdns_store_set_expire(struct pdns_store *st, const char *spec);
/*
 * Removes records whose time_last + expiry(type) < now: at most max_delete deletions and
 * 4 * max_delete + 1000 keys examined per call, continuing where the previous call stopped.
 * 0 when the pass over the store is complete, 1 when there is more to examine, -1 on error.
 */
int pdns_store_purge(struct pdns_store *st, uint64_t now, size_t max_delete, size_t *deleted);
/* Totals since this process opened the store (for the end-of-run log line). */
const uint64_t *pdns_store_session_stats(const struct pdns_store *st);

/*
 * Copies the store at src into a new store at dst (a directory without a store), each
 * database rewritten in key order with full pages: the most compact form, for after a bulk
 * import (mdb_copy -c keeps half-full pages). src may be in use (one read snapshot is copied).
 * 0, or -1 with a reason in err.
 */
int pdns_store_repack(const char *src, const char *dst, char *err, size_t errlen);

/* ---- readers (also used by the writer's own code) ---- */

struct pdns_dbis {
	MDB_dbi s2i, i2s, rec, rec6, rcx, rdx, rdx6, sensor, meta;
};
const struct pdns_dbis *pdns_store_dbis(const struct pdns_store *st);

/* Begins a read-only transaction (handles a map grown by the writer). 0 or an LMDB error. */
int pdns_store_read_begin(struct pdns_store *st, MDB_txn **txn);

/* Expiry table parsed from a spec "type=seconds,..." (type: mnemonic or number). */
struct pdns_expire {
	size_t n;
	uint16_t type[64];
	uint64_t seconds[64];
};
int pdns_expire_parse(const char *spec, struct pdns_expire *e);
uint64_t pdns_expire_of(const struct pdns_expire *e, uint16_t type); /* 0: never */
/* The expiry table as stored in meta (readers). */
int pdns_store_load_expire(struct pdns_store *st, MDB_txn *txn, struct pdns_expire *e);

/* Key helpers shared with the queries. */
size_t pdns_rdata_key(uint8_t kind, const uint8_t *addr, uint32_t sid, uint8_t *out);
size_t pdns_str_key(const char *s, size_t len, uint8_t out[PDNS_STR_KEY_MAX]);
/* The id of an interned string: 0 found, MDB_NOTFOUND, or an LMDB error. */
int pdns_store_str_id(struct pdns_store *st, MDB_txn *txn, const char *s, size_t len,
                      uint32_t *id);

/* i2s buckets: PDNS_BUCKET strings per value, ids from PDNS_BUCKET on. */
#define PDNS_BUCKET 16u
/* Strings in a bucket value. */
size_t pdns_bucket_count(const uint8_t *p, size_t len);
/* The index-th string of a bucket value: 0 (s, slen point into p) or -1. */
int pdns_bucket_get(const uint8_t *p, size_t len, unsigned index, const uint8_t **s,
                    size_t *slen);
/* The string of an id: 0 (out points into the map, valid in txn), MDB_NOTFOUND or an error. */
int pdns_store_get_str(struct pdns_store *st, MDB_txn *txn, uint32_t id, MDB_val *out);

/* A decoded rec value. */
struct pdns_val {
	uint64_t first, last, count;
	size_t nsensors;
	uint32_t sensors[PDNS_MAX_SENSORS];
};
int pdns_val_decode(const uint8_t *p, size_t len, struct pdns_val *v);
size_t pdns_val_encode(const struct pdns_val *v, uint8_t *out); /* out: 16 * 10 bytes */
#define PDNS_VAL_MAX (10 * (3 + PDNS_MAX_SENSORS))

/* Which fixed database a logical key goes to: 0 rec, 1 rec6, -1 neither (rcx). */
int pdns_fixed_which(const uint8_t *key, size_t klen);
/* A record as a rec / rec6 duplicate: the duplicate's size, or 0 when it does not fit. */
size_t pdns_fixed_encode(int which, const uint8_t *key, size_t klen, const struct pdns_val *v,
                         uint8_t dup[PDNS_REC_DUP_MAX]);
/* A rec / rec6 entry (2-byte LMDB key + duplicate) into its logical key and value: klen. */
size_t pdns_fixed_decode(int which, const uint8_t *k2, const uint8_t *dup,
                         uint8_t key[PDNS_REC_KEY_MAX], struct pdns_val *v);
/* The record of a logical key, from rec, rec6 or rcx: 0, MDB_NOTFOUND or an LMDB error. */
int pdns_store_rec_get(struct pdns_store *st, MDB_txn *txn, const uint8_t *key, size_t klen,
                       struct pdns_val *v);

/*
 * The records of one name id in logical key order, rec, rec6 and rcx merged: open with the
 * 4-byte name id and, optionally, a key (a cursor) after which to start.
 */
struct pdns_rec_iter {
	MDB_cursor *c[3];                 /* rec, rec6, rcx */
	int rc[3];                        /* 0: the current entry of that database is valid */
	uint8_t key[3][PDNS_REC_KEY_MAX]; /* their current entries, decoded */
	size_t klen[3];
	struct pdns_val val[3];
	uint8_t id[4];
	uint8_t out[PDNS_REC_KEY_MAX];    /* the key handed out */
};
int pdns_rec_iter_open(struct pdns_store *st, MDB_txn *txn, struct pdns_rec_iter *it,
                       const uint8_t id[4], const uint8_t *after, size_t alen);
/* The next record: 0 (key, klen, v set; key valid until the next call), MDB_NOTFOUND, error. */
int pdns_rec_iter_next(struct pdns_rec_iter *it, const uint8_t **key, size_t *klen,
                       struct pdns_val *v);
void pdns_rec_iter_close(struct pdns_rec_iter *it);

static inline void pdns_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint32_t pdns_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#endif
