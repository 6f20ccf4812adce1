/*
 * pdns_store.c — the LMDB store of passive DNS records (layout in pdns_store.h and
 * docs/passivedns.md).
 *
 * Why it is built so: the reference keeps five Redis keys per (name, type, rdata) and pays 11
 * round trips per line; here a record is an 18-byte fixed-size duplicate (29 for IPv6) under a
 * key shared by 65,536 consecutive name ids, plus an 8-byte (20) duplicate in the reverse
 * index: no LMDB node of its own (see apply_entry, apply_rdx). The few records that do not fit
 * a fixed size (several sensors, big counts, rare types) are ordinary keys of rcx. Names and
 * string rdata are interned once (a u32 id), addresses are their own bytes. Ingest cost is dominated by B-tree lookups, so
 * lines are first merged in an in-memory hash table (popular names repeat: one lookup per
 * distinct record per batch instead of one per line) and applied in key order, which keeps the
 * pages touched by consecutive puts close together. A string cache spares the s2i lookups of
 * names seen in earlier batches.
 *
 * The write transaction stays open between pdns_store_add() calls and is committed by
 * pdns_store_commit() (flush_cb, a full batch, the end); one process writes, readers never
 * block it (LMDB MVCC).
 */
#include "pdns_store.h"

#include "d4_daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AGG_SENSORS 4 /* sensors merged per record within one batch */
#define CACHE_SLOTS (1u << 21)
#define CACHE_ARENA (48u << 20)

struct agg_entry {
	uint64_t first, last, count;
	uint64_t hash; /* 0: free slot */
	uint32_t sens[AGG_SENSORS];
	uint8_t nsens;
	uint8_t klen;
	uint8_t key[PDNS_REC_KEY_MAX];
};

struct cache_slot {
	uint64_t hash; /* 0: free */
	uint32_t id;
	uint32_t off;
	uint32_t len;
};

struct pdns_store {
	MDB_env *env;
	struct pdns_dbis d;
	bool ro;
	MDB_txn *wtxn;
	uint32_t next_id;
	uint32_t next_sensor;
	/* the last i2s bucket, filled in memory and written at commit (pdns_store.h) */
	uint8_t *tail;
	size_t tail_len, tail_cap;
	uint32_t tail_bucket;
	bool tail_dirty;
	bool tail_stored; /* the bucket is in the database (a partial one from a commit) */
	/* batch */
	struct agg_entry *agg;
	size_t agg_cap, agg_n, batch;
	/* string cache */
	struct cache_slot *cache;
	size_t cache_n;
	char *arena;
	size_t arena_used;
	/* sensors last used */
	uint8_t last_uuid[16];
	uint32_t last_sid;
	bool have_last;
	uint64_t pending[PDNS_S__COUNT];
	uint64_t total[PDNS_S__COUNT];
	char *expire_spec; /* to write at next commit */
	uint8_t purge_pos[PDNS_REC_KEY + PDNS_REC_DUP_MAX]; /* see pdns_store_purge */
	size_t purge_pos_len;
	int purge_phase;
};

static const char *const stat_names[PDNS_S__BASE] = {
	[PDNS_S_LINES] = "lines",       [PDNS_S_RECORDS] = "records",
	[PDNS_S_NEW] = "distinct",      [PDNS_S_EXCLUDED] = "excluded",
	[PDNS_S_REJECTED] = "rejected", [PDNS_S_COF_SKIPPED] = "cof_skipped",
	[PDNS_S_IGNORED] = "ignored_frames", [PDNS_S_PURGED] = "expired",
};

const char *pdns_stat_name(unsigned i, char *buf, size_t len)
{
	if (i < PDNS_S__BASE)
		snprintf(buf, len, "%s", stat_names[i]);
	else if (i < PDNS_S__COUNT)
		snprintf(buf, len, "rejected.%s", pdns_reason_name((enum pdns_reason)(i - PDNS_S__BASE)));
	else
		snprintf(buf, len, "unknown");
	return buf;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 29;
	return h ? h : 1;
}

/* ---- varints and values ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*off >= len)
			return -1;
		uint8_t b = p[(*off)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

size_t pdns_bucket_count(const uint8_t *p, size_t len)
{
	size_t off = 0, n = 0;
	uint64_t l;
	while (off < len && n < PDNS_BUCKET) {
		if (get_varint(p, len, &off, &l) != 0 || l > len - off)
			break;
		off += l;
		n++;
	}
	return n;
}

int pdns_bucket_get(const uint8_t *p, size_t len, unsigned index, const uint8_t **s,
                    size_t *slen)
{
	size_t off = 0;
	uint64_t l;
	for (unsigned i = 0;; i++) {
		if (off >= len || get_varint(p, len, &off, &l) != 0 || l > len - off)
			return -1;
		if (i == index) {
			*s = p + off;
			*slen = (size_t)l;
			return 0;
		}
		off += l;
	}
}

int pdns_val_decode(const uint8_t *p, size_t len, struct pdns_val *v)
{
	size_t off = 0;
	uint64_t delta, s;
	if (get_varint(p, len, &off, &v->first) || get_varint(p, len, &off, &delta) ||
	    get_varint(p, len, &off, &v->count))
		return -1;
	v->last = v->first + delta;
	v->nsensors = 0;
	while (off < len && v->nsensors < PDNS_MAX_SENSORS) {
		if (get_varint(p, len, &off, &s) || s > UINT32_MAX)
			return -1;
		v->sensors[v->nsensors++] = (uint32_t)s;
	}
	return 0;
}

size_t pdns_val_encode(const struct pdns_val *v, uint8_t *out)
{
	size_t n = put_varint(out, v->first);
	n += put_varint(out + n, v->last - v->first);
	n += put_varint(out + n, v->count);
	for (size_t i = 0; i < v->nsensors && i < PDNS_MAX_SENSORS; i++)
		n += put_varint(out + n, v->sensors[i]);
	return n;
}

/* ---- rec duplicates (pdns_store.h) ---- */

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/*
 * The (rrtype, kind) pairs of rec, in their order: a code is its index + 1, so that the
 * duplicates of rec sort as their logical keys do. Part of the format: never reorder.
 */
static const struct {
	uint16_t type;
	uint8_t kind;
} type_codes[] = {
	{1, PDNS_RD_V4},  {1, PDNS_RD_STR},  {2, PDNS_RD_STR},   {5, PDNS_RD_STR},
	{6, PDNS_RD_STR}, {12, PDNS_RD_STR}, {13, PDNS_RD_STR},  {15, PDNS_RD_STR},
	{16, PDNS_RD_STR}, {28, PDNS_RD_STR}, {33, PDNS_RD_STR}, {35, PDNS_RD_STR},
	{39, PDNS_RD_STR}, {43, PDNS_RD_STR}, {48, PDNS_RD_STR}, {64, PDNS_RD_STR},
	{65, PDNS_RD_STR}, {99, PDNS_RD_STR}, {255, PDNS_RD_STR}, {257, PDNS_RD_STR},
};
#define N_CODES (sizeof(type_codes) / sizeof(type_codes[0]))

static unsigned type_code(uint16_t type, uint8_t kind)
{
	for (unsigned i = 0; i < N_CODES; i++)
		if (type_codes[i].type == type && type_codes[i].kind == kind)
			return i + 1;
	return 0;
}

int pdns_fixed_which(const uint8_t *key, size_t klen)
{
	uint16_t type = (uint16_t)((key[4] << 8) | key[5]);
	if (klen == 11 && type_code(type, key[6]) != 0)
		return 0;
	if (klen == 23 && type == 28 && key[6] == PDNS_RD_V6)
		return 1;
	return -1;
}

/* The identity part of a duplicate (the logical key but its first 2 bytes): its length. */
static size_t fixed_id(int which, const uint8_t *key, uint8_t *dup)
{
	memcpy(dup, key + 2, 2);
	if (which == 0) {
		dup[2] = (uint8_t)type_code((uint16_t)((key[4] << 8) | key[5]), key[6]);
		memcpy(dup + 3, key + 7, 4);
		return 7;
	}
	memcpy(dup + 2, key + 7, 16);
	return 18;
}

size_t pdns_fixed_encode(int which, const uint8_t *key, size_t klen, const struct pdns_val *v,
                         uint8_t dup[PDNS_REC_DUP_MAX])
{
	if (which < 0 || pdns_fixed_which(key, klen) != which || v->first > UINT32_MAX ||
	    v->last < v->first || v->last - v->first > UINT32_MAX ||
	    v->count > PDNS_REC_COUNT_MAX || v->nsensors > 1 ||
	    (v->nsensors == 1 && (v->sensors[0] == 0 || v->sensors[0] > 255)))
		return 0;
	size_t n = fixed_id(which, key, dup);
	pdns_be32(dup + n, (uint32_t)v->first);
	pdns_be32(dup + n + 4, (uint32_t)(v->last - v->first));
	dup[n + 8] = (uint8_t)(v->count >> 8);
	dup[n + 9] = (uint8_t)v->count;
	dup[n + 10] = v->nsensors ? (uint8_t)v->sensors[0] : 0;
	return n + 11;
}

size_t pdns_fixed_decode(int which, const uint8_t *k2, const uint8_t *dup,
                         uint8_t key[PDNS_REC_KEY_MAX], struct pdns_val *v)
{
	size_t n, klen;
	memcpy(key, k2, 2);
	memcpy(key + 2, dup, 2);
	if (which == 0) {
		unsigned c = dup[2];
		uint16_t type = c >= 1 && c <= N_CODES ? type_codes[c - 1].type : 0;
		key[4] = (uint8_t)(type >> 8);
		key[5] = (uint8_t)type;
		key[6] = c >= 1 && c <= N_CODES ? type_codes[c - 1].kind : 0;
		memcpy(key + 7, dup + 3, 4);
		n = 7;
		klen = 11;
	} else {
		key[4] = 0;
		key[5] = 28;
		key[6] = PDNS_RD_V6;
		memcpy(key + 7, dup + 2, 16);
		n = 18;
		klen = 23;
	}
	v->first = pdns_get_be32(dup + n);
	v->last = v->first + pdns_get_be32(dup + n + 4);
	v->count = ((uint64_t)dup[n + 8] << 8) | dup[n + 9];
	v->nsensors = dup[n + 10] ? 1 : 0;
	v->sensors[0] = dup[n + 10];
	return klen;
}

static size_t fixed_dup_size(int which)
{
	return which == 0 ? PDNS_REC_DUP : PDNS_REC6_DUP;
}

/* Positions c (on rec or rec6) on the duplicate of a logical key: 0, MDB_NOTFOUND, error. */
static int fixed_find(MDB_cursor *c, int which, const uint8_t *key, MDB_val *d)
{
	uint8_t probe[PDNS_REC_DUP_MAX] = {0};
	MDB_val k = {PDNS_REC_KEY, (void *)key};
	size_t idl = fixed_id(which, key, probe);
	d->mv_size = fixed_dup_size(which);
	d->mv_data = probe;
	int rc = mdb_cursor_get(c, &k, d, MDB_GET_BOTH_RANGE);
	if (rc == 0 && (d->mv_size != fixed_dup_size(which) || memcmp(d->mv_data, probe, idl) != 0))
		rc = MDB_NOTFOUND;
	return rc;
}

int pdns_store_rec_get(struct pdns_store *st, MDB_txn *txn, const uint8_t *key, size_t klen,
                       struct pdns_val *v)
{
	MDB_cursor *c;
	MDB_val k = {klen, (void *)key}, d;
	uint8_t lk[PDNS_REC_KEY_MAX];
	int rc, which = pdns_fixed_which(key, klen);
	if (which >= 0) {
		if ((rc = mdb_cursor_open(txn, which == 0 ? st->d.rec : st->d.rec6, &c)) != 0)
			return rc;
		rc = fixed_find(c, which, key, &d);
		if (rc == 0)
			pdns_fixed_decode(which, key, d.mv_data, lk, v);
		mdb_cursor_close(c);
		if (rc != MDB_NOTFOUND)
			return rc;
	}
	if ((rc = mdb_get(txn, st->d.rcx, &k, &d)) != 0)
		return rc;
	return pdns_val_decode(d.mv_data, d.mv_size, v) == 0 ? 0 : MDB_CORRUPTED;
}

/* The current entry of source i of the iterator (k, d: what the cursor gave): decoded if it
 * is still one of the name's, else rc[i] = MDB_NOTFOUND. Bad rcx values are skipped. */
static void iter_load(struct pdns_rec_iter *it, int i, MDB_val *k, MDB_val *d)
{
	for (;;) {
		if (it->rc[i] != 0)
			return;
		if (i < 2) {
			if (d->mv_size != fixed_dup_size(i) || k->mv_size != PDNS_REC_KEY ||
			    memcmp(d->mv_data, it->id + 2, 2) != 0) {
				it->rc[i] = MDB_NOTFOUND;
				return;
			}
			it->klen[i] = pdns_fixed_decode(i, k->mv_data, d->mv_data, it->key[i], &it->val[i]);
			return;
		}
		if (k->mv_size < 4 || k->mv_size > PDNS_REC_KEY_MAX || memcmp(k->mv_data, it->id, 4)) {
			it->rc[i] = MDB_NOTFOUND;
			return;
		}
		if (pdns_val_decode(d->mv_data, d->mv_size, &it->val[i]) == 0) {
			memcpy(it->key[i], k->mv_data, k->mv_size);
			it->klen[i] = k->mv_size;
			return;
		}
		it->rc[i] = mdb_cursor_get(it->c[i], k, d, MDB_NEXT);
	}
}

int pdns_rec_iter_open(struct pdns_store *st, MDB_txn *txn, struct pdns_rec_iter *it,
                       const uint8_t id[4], const uint8_t *after, size_t alen)
{
	const MDB_dbi dbis[3] = {st->d.rec, st->d.rec6, st->d.rcx};
	int rc;
	memset(it, 0, sizeof(*it));
	memcpy(it->id, id, 4);
	if (after != NULL && (alen < 4 || alen > PDNS_REC_KEY_MAX || memcmp(after, id, 4) != 0))
		after = NULL;
	for (int i = 0; i < 3; i++) {
		if ((rc = mdb_cursor_open(txn, dbis[i], &it->c[i])) != 0) {
			pdns_rec_iter_close(it);
			return rc;
		}
	}
	for (int i = 0; i < 3; i++) {
		uint8_t probe[PDNS_REC_DUP_MAX] = {0};
		MDB_val k, d;
		if (i < 2) {
			/* the first duplicate of the name at or after the cursor's bytes */
			k.mv_size = PDNS_REC_KEY;
			k.mv_data = it->id;
			memcpy(probe, id + 2, 2);
			if (after != NULL && alen > 4)
				memcpy(probe + 2, after + 4,
				       (alen - 4 < fixed_dup_size(i) - 2 ? alen - 4 : fixed_dup_size(i) - 2));
			if (i == 0 && after != NULL && alen > 4) {
				/* the cursor's type and kind as a code: the smallest code at or after them */
				uint8_t tk[3] = {0, 0, 0};
				memcpy(tk, after + 4, alen - 4 < 3 ? alen - 4 : 3);
				unsigned c = 1;
				while (c <= N_CODES) {
					uint8_t ck[3] = {(uint8_t)(type_codes[c - 1].type >> 8),
					                 (uint8_t)type_codes[c - 1].type, type_codes[c - 1].kind};
					if (memcmp(ck, tk, 3) >= 0)
						break;
					c++;
				}
				probe[2] = (uint8_t)c;
				memset(probe + 3, 0, sizeof(probe) - 3);
				if (c <= N_CODES && alen >= 11 &&
				    memcmp((uint8_t[3]){(uint8_t)(type_codes[c - 1].type >> 8),
				                        (uint8_t)type_codes[c - 1].type,
				                        type_codes[c - 1].kind},
				           tk, 3) == 0)
					memcpy(probe + 3, after + 7, 4);
			} else if (i == 1 && after != NULL && alen > 4) {
				/* rec6 holds (28, '6') only: before it, from the start; after it, nothing */
				uint8_t tk[3] = {0, 0, 0}, six[3] = {0, 28, PDNS_RD_V6};
				memcpy(tk, after + 4, alen - 4 < 3 ? alen - 4 : 3);
				int c = memcmp(tk, six, 3);
				memset(probe + 2, c > 0 ? 0xff : 0, sizeof(probe) - 2);
				if (c == 0 && alen >= 23)
					memcpy(probe + 2, after + 7, 16);
			}
			d.mv_size = fixed_dup_size(i);
			d.mv_data = probe;
			it->rc[i] = mdb_cursor_get(it->c[i], &k, &d, MDB_GET_BOTH_RANGE);
		} else {
			k.mv_data = (void *)(after ? after : id);
			k.mv_size = after ? alen : 4;
			it->rc[i] = mdb_cursor_get(it->c[i], &k, &d, MDB_SET_RANGE);
		}
		iter_load(it, i, &k, &d);
		/* past the cursor itself (and anything at or before it) */
		while (it->rc[i] == 0 && after && key_cmp(it->key[i], it->klen[i], after, alen) <= 0) {
			it->rc[i] = mdb_cursor_get(it->c[i], &k, &d, i < 2 ? MDB_NEXT_DUP : MDB_NEXT);
			iter_load(it, i, &k, &d);
		}
	}
	return 0;
}

int pdns_rec_iter_next(struct pdns_rec_iter *it, const uint8_t **key, size_t *klen,
                       struct pdns_val *v)
{
	int best = -1;
	for (int i = 0; i < 3; i++) {
		if (it->rc[i] == MDB_NOTFOUND)
			continue;
		if (it->rc[i] != 0)
			return it->rc[i];
		if (best < 0 || key_cmp(it->key[i], it->klen[i], it->key[best], it->klen[best]) < 0)
			best = i;
	}
	if (best < 0)
		return MDB_NOTFOUND;
	memcpy(it->out, it->key[best], it->klen[best]);
	*key = it->out;
	*klen = it->klen[best];
	*v = it->val[best];
	MDB_val k, d;
	it->rc[best] = mdb_cursor_get(it->c[best], &k, &d, best < 2 ? MDB_NEXT_DUP : MDB_NEXT);
	iter_load(it, best, &k, &d);
	return 0;
}

void pdns_rec_iter_close(struct pdns_rec_iter *it)
{
	for (int i = 0; i < 3; i++) {
		if (it->c[i])
			mdb_cursor_close(it->c[i]);
		it->c[i] = NULL;
	}
}

/* ---- keys ---- */

size_t pdns_rdata_key(uint8_t kind, const uint8_t *addr, uint32_t sid, uint8_t *out)
{
	out[0] = kind;
	if (kind == PDNS_RD_V4) {
		memcpy(out + 1, addr, 4);
		return 5;
	}
	if (kind == PDNS_RD_V6) {
		memcpy(out + 1, addr, 16);
		return 17;
	}
	pdns_be32(out + 1, sid);
	return 5;
}

size_t pdns_str_key(const char *s, size_t len, uint8_t out[PDNS_STR_KEY_MAX])
{
	size_t n = len <= 400 ? len : 400;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)s[len - 1 - i];
	if (len <= 400)
		return len;
	/* too long for an LMDB key: the reversed head, a NUL (never in a string), SHA-256 */
	out[400] = 0;
	SHA256((const unsigned char *)s, len, out + 401);
	return 433;
}

/* ---- open / close ---- */

static int fail(char *err, size_t errlen, const char *what, int rc)
{
	snprintf(err, errlen, "%s: %s", what, rc ? mdb_strerror(rc) : "failed");
	return -1;
}

static int load_counters(struct pdns_store *st, MDB_txn *txn)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;
	uint8_t key[5] = {0};
	/* next string id: after the last string of the last i2s bucket, which becomes the tail */
	if ((rc = mdb_cursor_open(txn, st->d.i2s, &c)) != 0)
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	st->tail_len = 0;
	st->tail_dirty = false;
	st->tail_stored = false;
	if (rc == 0 && k.mv_size == 4) {
		size_t n = pdns_bucket_count(v.mv_data, v.mv_size);
		st->tail_bucket = pdns_get_be32(k.mv_data);
		st->next_id = st->tail_bucket * PDNS_BUCKET + (uint32_t)n;
		if (n < PDNS_BUCKET && st->tail_cap >= v.mv_size) {
			memcpy(st->tail, v.mv_data, v.mv_size);
			st->tail_len = v.mv_size;
			st->tail_stored = true;
		} else if (n < PDNS_BUCKET) {
			rc = ENOMEM;
		}
	} else if (rc == MDB_NOTFOUND) {
		st->tail_bucket = 1;
		st->next_id = PDNS_BUCKET; /* ids start with bucket 1: id 0 is never one */
		rc = 0;
	}
	mdb_cursor_close(c);
	if (rc != 0)
		return rc;
	/* next sensor id: the last 'i' key of sensor */
	if ((rc = mdb_cursor_open(txn, st->d.sensor, &c)) != 0)
		return rc;
	key[0] = 'j';
	k.mv_data = key;
	k.mv_size = 1;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
	st->next_sensor = 1;
	if (rc == 0 && k.mv_size == 5 && ((uint8_t *)k.mv_data)[0] == 'i')
		st->next_sensor = pdns_get_be32((uint8_t *)k.mv_data + 1) + 1;
	mdb_cursor_close(c);
	return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : rc;
}

/* The format of the store in meta: written by a writer on a new store, refused if another. */
static int check_format(struct pdns_store *st, MDB_txn *txn, const char *path, char *err,
                        size_t errlen)
{
	MDB_val k = {6, "format"}, v;
	unsigned flags = 0;
	int rc = mdb_dbi_flags(txn, st->d.rdx, &flags);
	if (rc != 0)
		return fail(err, errlen, "format", rc);
	rc = mdb_get(txn, st->d.meta, &k, &v);
	if (rc == 0) {
		if (v.mv_size == strlen(PDNS_FORMAT) && memcmp(v.mv_data, PDNS_FORMAT, v.mv_size) == 0)
			return 0;
		snprintf(err, errlen, "%s: store format %.*s, this program reads format %s: ingest again",
		         path, (int)(v.mv_size < 16 ? v.mv_size : 16), (const char *)v.mv_data,
		         PDNS_FORMAT);
		return -1;
	}
	if (rc != MDB_NOTFOUND)
		return fail(err, errlen, "format", rc);
	/* LMDB opens a database with the flags it was created with, whatever is asked */
	if ((flags & PDNS_RDX_FLAGS) != PDNS_RDX_FLAGS) {
		snprintf(err, errlen, "%s: a store of an older format (1): ingest again", path);
		return -1;
	}
	if (st->ro)
		return 0; /* a store being created: its writer has not committed yet */
	v.mv_size = strlen(PDNS_FORMAT);
	v.mv_data = (void *)PDNS_FORMAT;
	if ((rc = mdb_put(txn, st->d.meta, &k, &v, 0)) != 0)
		return fail(err, errlen, "format", rc);
	return 0;
}

int pdns_store_open(struct pdns_store **out, const struct pdns_store_opts *o, char *err,
                    size_t errlen)
{
	struct pdns_store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	int rc;
	unsigned dbf = o->readonly ? 0 : MDB_CREATE;

	*out = NULL;
	if (st == NULL)
		return fail(err, errlen, "out of memory", 0);
	st->ro = o->readonly;
	if (!st->ro && d4_mkdir_p(o->path, 0750) != 0) {
		snprintf(err, errlen, "mkdir %s: %s", o->path, strerror(errno));
		goto err;
	}
	if ((rc = mdb_env_create(&st->env)) != 0 || (rc = mdb_env_set_maxdbs(st->env, 12)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, 512)) != 0) {
		fail(err, errlen, "mdb_env_create", rc);
		goto err;
	}
	if (!st->ro) {
		size_t mb = o->map_size_mb ? o->map_size_mb : 65536;
		if ((rc = mdb_env_set_mapsize(st->env, mb << 20)) != 0) {
			fail(err, errlen, "mdb_env_set_mapsize", rc);
			goto err;
		}
	}
	rc = mdb_env_open(st->env, o->path,
	                  st->ro ? (MDB_RDONLY | MDB_NOTLS) : (MDB_NOTLS | MDB_NORDAHEAD), 0640);
	if (rc != 0) {
		snprintf(err, errlen, "open %s: %s", o->path, mdb_strerror(rc));
		goto err;
	}
	/* meta and the format first: a store of another format may lack a database of this one */
	if ((rc = mdb_txn_begin(st->env, NULL, st->ro ? MDB_RDONLY : 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", dbf, &st->d.meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "rdx", dbf | PDNS_RDX_FLAGS, &st->d.rdx)) != 0) {
		snprintf(err, errlen, "%s: %s%s", o->path, mdb_strerror(rc),
		         rc == MDB_NOTFOUND ? " (no passive DNS store here yet)" : "");
		goto err;
	}
	if ((rc = check_format(st, txn, o->path, err, errlen)) != 0)
		goto err;
	if ((rc = mdb_dbi_open(txn, "s2i", dbf, &st->d.s2i)) != 0 ||
	    (rc = mdb_dbi_open(txn, "i2s", dbf, &st->d.i2s)) != 0 ||
	    (rc = mdb_dbi_open(txn, "rec", dbf | PDNS_REC_FLAGS, &st->d.rec)) != 0 ||
	    (rc = mdb_dbi_open(txn, "rec6", dbf | PDNS_REC_FLAGS, &st->d.rec6)) != 0 ||
	    (rc = mdb_dbi_open(txn, "rcx", dbf, &st->d.rcx)) != 0 ||
	    (rc = mdb_dbi_open(txn, "rdx6", dbf | PDNS_RDX_FLAGS, &st->d.rdx6)) != 0 ||
	    (rc = mdb_dbi_open(txn, "sensor", dbf, &st->d.sensor)) != 0) {
		snprintf(err, errlen, "%s: %s%s", o->path, mdb_strerror(rc),
		         rc == MDB_NOTFOUND ? " (no passive DNS store here yet)" : "");
		goto err;
	}
	if (!st->ro) {
		st->tail_cap = PDNS_BUCKET * (PDNS_RDATA_MAX + 8) + 16;
		if ((st->tail = malloc(st->tail_cap)) == NULL) {
			fail(err, errlen, "out of memory", 0);
			goto err;
		}
		if ((rc = load_counters(st, txn)) != 0) {
			fail(err, errlen, "load", rc);
			goto err;
		}
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc != 0) {
			fail(err, errlen, "commit", rc);
			goto err;
		}
		st->batch = o->batch ? o->batch : 262144;
		st->agg_cap = 1;
		while (st->agg_cap < st->batch * 2)
			st->agg_cap <<= 1;
		st->agg = calloc(st->agg_cap, sizeof(*st->agg));
		st->cache = calloc(CACHE_SLOTS, sizeof(*st->cache));
		st->arena = malloc(CACHE_ARENA);
		if (st->agg == NULL || st->cache == NULL || st->arena == NULL) {
			fail(err, errlen, "out of memory", 0);
			goto err;
		}
	} else {
		/* committed, not aborted: the dbi handles of an aborted transaction are closed */
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc != 0) {
			fail(err, errlen, "commit", rc);
			goto err;
		}
	}
	*out = st;
	return 0;
err:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st->agg);
	free(st->cache);
	free(st->arena);
	free(st->tail);
	free(st);
	return -1;
}

void pdns_store_close(struct pdns_store *st)
{
	if (st == NULL)
		return;
	if (!st->ro)
		(void)pdns_store_commit(st);
	if (st->wtxn)
		mdb_txn_abort(st->wtxn);
	mdb_env_close(st->env);
	free(st->agg);
	free(st->cache);
	free(st->arena);
	free(st->tail);
	free(st->expire_spec);
	free(st);
}

MDB_env *pdns_store_env(struct pdns_store *st)
{
	return st->env;
}

const struct pdns_dbis *pdns_store_dbis(const struct pdns_store *st)
{
	return &st->d;
}

const uint64_t *pdns_store_session_stats(const struct pdns_store *st)
{
	return st->total;
}

int pdns_store_read_begin(struct pdns_store *st, MDB_txn **txn)
{
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* the writer grew the map: adopt its size (safe: no transaction of ours is open
		 * in this thread; other threads' may be, which LMDB tolerates for readers) */
		if ((rc = mdb_env_set_mapsize(st->env, 0)) == 0)
			rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
	}
	return rc;
}

/* ---- writer ---- */

static int wtxn(struct pdns_store *st)
{
	if (st->ro)
		return EACCES;
	if (st->wtxn != NULL)
		return 0;
	return mdb_txn_begin(st->env, NULL, 0, &st->wtxn);
}

void pdns_store_count(struct pdns_store *st, unsigned stat, uint64_t n)
{
	if (stat < PDNS_S__COUNT) {
		st->pending[stat] += n;
		st->total[stat] += n;
	}
}

int pdns_store_sensor(struct pdns_store *st, const uint8_t uuid[16], uint32_t *id)
{
	uint8_t k[17], ik[5], vb[4];
	MDB_val key = {17, k}, val;
	int rc;
	if (st->have_last && memcmp(uuid, st->last_uuid, 16) == 0) {
		*id = st->last_sid;
		return 0;
	}
	if ((rc = wtxn(st)) != 0)
		return -1;
	k[0] = 'u';
	memcpy(k + 1, uuid, 16);
	rc = mdb_get(st->wtxn, st->d.sensor, &key, &val);
	if (rc == 0 && val.mv_size == 4) {
		*id = pdns_get_be32(val.mv_data);
	} else if (rc == MDB_NOTFOUND) {
		*id = st->next_sensor++;
		pdns_be32(vb, *id);
		val.mv_size = 4;
		val.mv_data = vb;
		if (mdb_put(st->wtxn, st->d.sensor, &key, &val, 0) != 0)
			return -1;
		ik[0] = 'i';
		pdns_be32(ik + 1, *id);
		key.mv_size = 5;
		key.mv_data = ik;
		val.mv_size = 16;
		val.mv_data = (void *)uuid;
		if (mdb_put(st->wtxn, st->d.sensor, &key, &val, 0) != 0)
			return -1;
	} else {
		return -1;
	}
	memcpy(st->last_uuid, uuid, 16);
	st->last_sid = *id;
	st->have_last = true;
	return 0;
}

static void cache_reset(struct pdns_store *st)
{
	memset(st->cache, 0, CACHE_SLOTS * sizeof(*st->cache));
	st->cache_n = 0;
	st->arena_used = 0;
}

static void cache_put(struct pdns_store *st, uint64_t h, const char *s, size_t len, uint32_t id)
{
	if (st->cache_n >= CACHE_SLOTS / 2 || st->arena_used + len > CACHE_ARENA)
		cache_reset(st);
	size_t i = h & (CACHE_SLOTS - 1);
	while (st->cache[i].hash != 0)
		i = (i + 1) & (CACHE_SLOTS - 1);
	memcpy(st->arena + st->arena_used, s, len);
	st->cache[i] = (struct cache_slot){h, id, (uint32_t)st->arena_used, (uint32_t)len};
	st->arena_used += len;
	st->cache_n++;
}

int pdns_store_str_id(struct pdns_store *st, MDB_txn *txn, const char *s, size_t len,
                      uint32_t *id)
{
	uint8_t kb[PDNS_STR_KEY_MAX];
	MDB_val k = {pdns_str_key(s, len, kb), kb}, v;
	int rc = mdb_get(txn, st->d.s2i, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4)
		return MDB_CORRUPTED;
	*id = pdns_get_be32(v.mv_data);
	return 0;
}

/* Writes the tail bucket into i2s (within the write transaction). */
static int tail_store(struct pdns_store *st)
{
	uint8_t kb[4];
	MDB_val k = {4, kb}, v = {st->tail_len, st->tail};
	int rc;
	if (!st->tail_dirty)
		return 0;
	pdns_be32(kb, st->tail_bucket);
	/* a new bucket is the last key: appended; a partial one from a commit is rewritten */
	if ((rc = mdb_put(st->wtxn, st->d.i2s, &k, &v, st->tail_stored ? 0 : MDB_APPEND)) != 0)
		return rc;
	st->tail_stored = true;
	st->tail_dirty = false;
	return 0;
}

/* The string of a new id (always the next one) into the tail bucket. */
static int tail_add(struct pdns_store *st, uint32_t id, const char *s, size_t len)
{
	int rc;
	if (id / PDNS_BUCKET != st->tail_bucket) {
		/* the tail is full: write it, start the next one */
		if ((rc = tail_store(st)) != 0)
			return rc;
		st->tail_bucket = id / PDNS_BUCKET;
		st->tail_len = 0;
		st->tail_stored = false;
	}
	if (st->tail_len + len + 10 > st->tail_cap)
		return MDB_BAD_VALSIZE;
	uint8_t *p = st->tail + st->tail_len;
	size_t n = 0;
	uint64_t l = len;
	while (l >= 0x80) {
		p[n++] = (uint8_t)(l | 0x80);
		l >>= 7;
	}
	p[n++] = (uint8_t)l;
	memcpy(p + n, s, len);
	st->tail_len += n + len;
	st->tail_dirty = true;
	return 0;
}

int pdns_store_get_str(struct pdns_store *st, MDB_txn *txn, uint32_t id, MDB_val *out)
{
	uint8_t kb[4];
	MDB_val k = {4, kb}, v;
	const uint8_t *p;
	size_t n;
	pdns_be32(kb, id / PDNS_BUCKET);
	int rc = mdb_get(txn, st->d.i2s, &k, &v);
	if (rc != 0)
		return rc;
	if (pdns_bucket_get(v.mv_data, v.mv_size, id % PDNS_BUCKET, &p, &n) != 0)
		return MDB_NOTFOUND;
	out->mv_data = (void *)p;
	out->mv_size = n;
	return 0;
}

static int intern(struct pdns_store *st, const char *s, size_t len, uint32_t *id)
{
	uint64_t h = hash_bytes(s, len);
	size_t i = h & (CACHE_SLOTS - 1);
	int rc;
	while (st->cache[i].hash != 0) {
		const struct cache_slot *c = &st->cache[i];
		if (c->hash == h && c->len == len && memcmp(st->arena + c->off, s, len) == 0) {
			*id = c->id;
			return 0;
		}
		i = (i + 1) & (CACHE_SLOTS - 1);
	}
	/* one B-tree search for "find or insert": MDB_NOOVERWRITE hands back the existing id */
	uint8_t kb[PDNS_STR_KEY_MAX], ib[4];
	MDB_val k = {pdns_str_key(s, len, kb), kb}, v = {4, ib};
	if (st->next_id == UINT32_MAX)
		return MDB_MAP_FULL;
	pdns_be32(ib, st->next_id);
	rc = mdb_put(st->wtxn, st->d.s2i, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		if (v.mv_size != 4)
			return MDB_CORRUPTED;
		*id = pdns_get_be32(v.mv_data);
	} else if (rc == 0) {
		*id = st->next_id++;
		if ((rc = tail_add(st, *id, s, len)) != 0)
			return rc;
	} else {
		return rc;
	}
	cache_put(st, h, s, len, *id);
	return 0;
}

static void sens_add(uint32_t *list, uint8_t *n, unsigned max, uint32_t sid)
{
	for (unsigned i = 0; i < *n; i++)
		if (list[i] == sid)
			return;
	if (*n < max)
		list[(*n)++] = sid;
}

int pdns_store_add(struct pdns_store *st, const struct pdns_rec *r, uint32_t sid)
{
	uint8_t key[PDNS_REC_KEY_MAX];
	uint32_t nid, rid = 0;
	int rc;
	if ((rc = wtxn(st)) != 0)
		goto err;
	if ((rc = intern(st, r->name, r->name_len, &nid)) != 0)
		goto err;
	if (r->rdata_kind == PDNS_RD_STR && (rc = intern(st, r->rdata, r->rdata_len, &rid)) != 0)
		goto err;
	pdns_be32(key, nid);
	key[4] = (uint8_t)(r->rrtype >> 8);
	key[5] = (uint8_t)r->rrtype;
	size_t klen = 6 + pdns_rdata_key(r->rdata_kind, r->addr, rid, key + 6);

	uint64_t h = hash_bytes(key, klen);
	size_t i = h & (st->agg_cap - 1);
	struct agg_entry *e;
	for (;;) {
		e = &st->agg[i];
		if (e->hash == 0) {
			e->hash = h;
			e->klen = (uint8_t)klen;
			memcpy(e->key, key, klen);
			e->first = r->ts;
			e->last = r->ts_last;
			e->count = 0;
			e->nsens = 0;
			st->agg_n++;
			break;
		}
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			break;
		i = (i + 1) & (st->agg_cap - 1);
	}
	if (r->ts < e->first)
		e->first = r->ts;
	if (r->ts_last > e->last)
		e->last = r->ts_last;
	e->count += r->count;
	sens_add(e->sens, &e->nsens, AGG_SENSORS, sid);
	pdns_store_count(st, PDNS_S_RECORDS, 1);
	if (st->agg_n >= st->batch)
		return pdns_store_commit(st);
	return 0;
err:
	fprintf(stderr, "pdns store: add: %s\n", mdb_strerror(rc));
	return -1;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct agg_entry *x = *(const struct agg_entry *const *)a;
	const struct agg_entry *y = *(const struct agg_entry *const *)b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (int)x->klen - (int)y->klen;
}

struct rdx_key {
	uint8_t len;
	uint8_t k[PDNS_REC_KEY_MAX];
};

static int cmp_rdx(const void *a, const void *b)
{
	const struct rdx_key *x = a, *y = b;
	return key_cmp(x->k, x->len, y->k, y->len);
}

static void val_merge(struct pdns_val *val, const struct agg_entry *e)
{
	if (e->first < val->first)
		val->first = e->first;
	if (e->last > val->last)
		val->last = e->last;
	val->count += e->count;
	for (unsigned i = 0; i < e->nsens; i++) {
		uint8_t n = (uint8_t)val->nsensors;
		sens_add(val->sensors, &n, PDNS_MAX_SENSORS, e->sens[i]);
		val->nsensors = n;
	}
}

/* Where the batch is applied: cursors and the last logical keys of rec, rec6 and rcx. */
struct apply_ctx {
	MDB_cursor *c[3];
	uint8_t tail[3][PDNS_REC_KEY_MAX];
	size_t tail_len[3]; /* 0: empty database */
};

static void agg_val(const struct agg_entry *e, struct pdns_val *v)
{
	v->first = e->first;
	v->last = e->last;
	v->count = e->count;
	v->nsensors = e->nsens;
	for (unsigned i = 0; i < e->nsens; i++)
		v->sensors[i] = e->sens[i];
}

static bool beyond(const struct apply_ctx *a, int i, const uint8_t *key, size_t klen)
{
	return a->tail_len[i] == 0 || key_cmp(key, klen, a->tail[i], a->tail_len[i]) > 0;
}

/* A record into rcx (appended when beyond its last key). */
static int put_rcx(struct apply_ctx *a, const uint8_t *key, size_t klen,
                   const struct pdns_val *v)
{
	uint8_t vb[PDNS_VAL_MAX];
	MDB_val k = {klen, (void *)key}, d = {pdns_val_encode(v, vb), vb};
	unsigned flags = 0;
	if (beyond(a, 2, key, klen)) {
		flags = MDB_APPEND;
		memcpy(a->tail[2], key, klen);
		a->tail_len[2] = klen;
	}
	return mdb_cursor_put(a->c[2], &k, &d, flags);
}

/*
 * One merged record. A record is looked up in its fixed database (rec or rec6) then rcx,
 * merged, and written back where it fits: rewritten in place (MDB_CURRENT: same size, same
 * place among the duplicates), or moved to rcx. Keys beyond the last key of a database
 * (records of names first seen in this batch: ids grow) skip its lookup, and new records
 * beyond it are appended (MDB_APPEND / MDB_APPENDDUP: full pages, not pages split in halves).
 */
static int apply_entry(struct pdns_store *st, struct apply_ctx *a, const struct agg_entry *e,
                       struct rdx_key *fresh, size_t *nfresh)
{
	struct pdns_val val, add;
	uint8_t dup[PDNS_REC_DUP_MAX], lk[PDNS_REC_KEY_MAX];
	MDB_val k, d;
	int rc, w = pdns_fixed_which(e->key, e->klen);
	size_t dl;
	agg_val(e, &add);
	if (w >= 0 && !beyond(a, w, e->key, e->klen)) {
		rc = fixed_find(a->c[w], w, e->key, &d);
		if (rc == 0) {
			pdns_fixed_decode(w, e->key, d.mv_data, lk, &val);
			goto merge_fixed;
		}
		if (rc != MDB_NOTFOUND)
			return rc;
	}
	if (!beyond(a, 2, e->key, e->klen)) {
		k.mv_size = e->klen;
		k.mv_data = (void *)e->key;
		rc = mdb_cursor_get(a->c[2], &k, &d, MDB_SET_KEY);
		if (rc == 0) {
			if (pdns_val_decode(d.mv_data, d.mv_size, &val) != 0)
				return MDB_CORRUPTED;
			goto merge_rcx;
		}
		if (rc != MDB_NOTFOUND)
			return rc;
	}
	/* a new record */
	if ((dl = pdns_fixed_encode(w, e->key, e->klen, &add, dup)) != 0) {
		unsigned flags = 0;
		if (beyond(a, w, e->key, e->klen)) {
			bool same = a->tail_len[w] != 0 && memcmp(a->tail[w], e->key, PDNS_REC_KEY) == 0;
			flags = same ? MDB_APPENDDUP : (MDB_APPEND | MDB_APPENDDUP);
			memcpy(a->tail[w], e->key, e->klen);
			a->tail_len[w] = e->klen;
		}
		k.mv_size = PDNS_REC_KEY;
		k.mv_data = (void *)e->key;
		d.mv_size = dl;
		d.mv_data = dup;
		rc = mdb_cursor_put(a->c[w], &k, &d, flags);
	} else {
		rc = put_rcx(a, e->key, e->klen, &add);
	}
	if (rc != 0)
		return rc;
	/* reverse index key kind|rdata|type|name_id, written after the batch, in order */
	struct rdx_key *rk = &fresh[(*nfresh)++];
	size_t rdl = e->klen - 6;
	rk->len = e->klen;
	memcpy(rk->k, e->key + 6, rdl);
	memcpy(rk->k + rdl, e->key + 4, 2);
	memcpy(rk->k + rdl + 2, e->key, 4);
	pdns_store_count(st, PDNS_S_NEW, 1);
	return 0;

merge_fixed:
	val_merge(&val, e);
	k.mv_size = PDNS_REC_KEY;
	k.mv_data = (void *)e->key;
	if ((dl = pdns_fixed_encode(w, e->key, e->klen, &val, dup)) != 0) {
		d.mv_size = dl;
		d.mv_data = dup;
		return mdb_cursor_put(a->c[w], &k, &d, MDB_CURRENT);
	}
	/* it no longer fits: moves to rcx */
	if ((rc = mdb_cursor_del(a->c[w], 0)) != 0)
		return rc;
	return put_rcx(a, e->key, e->klen, &val);

merge_rcx:
	val_merge(&val, e);
	{
		uint8_t vb[PDNS_VAL_MAX];
		k.mv_size = e->klen;
		k.mv_data = (void *)e->key;
		d.mv_size = pdns_val_encode(&val, vb);
		d.mv_data = vb;
		return mdb_cursor_put(a->c[2], &k, &d, MDB_CURRENT);
	}
}

/*
 * The new reverse index entries, in key order: each is an LMDB key and a fixed-size duplicate
 * (pdns_rdx_split). Duplicates are packed 8 bytes each in their key's sub-page or sub-tree, so
 * an entry costs 8 bytes plus its share of the key's node instead of a node of its own.
 */
static int apply_rdx(struct pdns_store *st, struct rdx_key *fresh, size_t n)
{
	MDB_cursor *cur, *cur6;
	int rc;
	qsort(fresh, n, sizeof(*fresh), cmp_rdx);
	if ((rc = mdb_cursor_open(st->wtxn, st->d.rdx, &cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(st->wtxn, st->d.rdx6, &cur6)) != 0) {
		mdb_cursor_close(cur);
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		MDB_val k, d;
		pdns_rdx_split(fresh[i].k, fresh[i].len, &k, &d);
		rc = mdb_cursor_put(fresh[i].len == 23 ? cur6 : cur, &k, &d, 0);
	}
	mdb_cursor_close(cur);
	mdb_cursor_close(cur6);
	return rc;
}

static int write_stats(struct pdns_store *st)
{
	char name[64], key[80];
	int rc;
	for (unsigned i = 0; i < PDNS_S__COUNT; i++) {
		if (st->pending[i] == 0)
			continue;
		snprintf(key, sizeof(key), "stat.%s", pdns_stat_name(i, name, sizeof(name)));
		MDB_val k = {strlen(key), key}, v;
		uint64_t cur = 0;
		uint8_t b[8];
		if ((rc = mdb_get(st->wtxn, st->d.meta, &k, &v)) == 0 && v.mv_size == 8) {
			for (int j = 7; j >= 0; j--)
				cur = (cur << 8) | ((const uint8_t *)v.mv_data)[j];
		} else if (rc != 0 && rc != MDB_NOTFOUND) {
			return rc;
		}
		cur += st->pending[i];
		for (int j = 0; j < 8; j++)
			b[j] = (uint8_t)(cur >> (8 * j));
		v.mv_size = 8;
		v.mv_data = b;
		if ((rc = mdb_put(st->wtxn, st->d.meta, &k, &v, 0)) != 0)
			return rc;
	}
	if (st->expire_spec != NULL) {
		MDB_val k = {6, "expire"}, v = {strlen(st->expire_spec), st->expire_spec};
		if ((rc = mdb_put(st->wtxn, st->d.meta, &k, &v, 0)) != 0)
			return rc;
	}
	return 0;
}

int pdns_store_commit(struct pdns_store *st)
{
	struct agg_entry **list = NULL;
	struct rdx_key *fresh = NULL;
	size_t nfresh = 0;
	struct apply_ctx ac = {0};
	int rc = 0;
	bool any = st->agg_n > 0 || st->expire_spec != NULL;
	for (unsigned i = 0; i < PDNS_S__COUNT && !any; i++)
		any = st->pending[i] != 0;
	if (st->ro || (!any && !st->tail_dirty)) {
		if (st->wtxn) {
			rc = mdb_txn_commit(st->wtxn); /* sensors only */
			st->wtxn = NULL;
		}
		return rc ? -1 : 0;
	}
	if ((rc = wtxn(st)) != 0)
		goto err;
	if (st->agg_n > 0) {
		size_t n = 0;
		if ((list = malloc(st->agg_n * sizeof(*list))) == NULL) {
			rc = ENOMEM;
			goto err;
		}
		for (size_t i = 0; i < st->agg_cap; i++)
			if (st->agg[i].hash != 0)
				list[n++] = &st->agg[i];
		qsort(list, n, sizeof(*list), cmp_entry);
		if ((fresh = malloc(n * sizeof(*fresh))) == NULL) {
			rc = ENOMEM;
			goto err;
		}
		const MDB_dbi dbis[3] = {st->d.rec, st->d.rec6, st->d.rcx};
		for (int j = 0; j < 3; j++) {
			MDB_val lk, lv;
			struct pdns_val unused;
			if ((rc = mdb_cursor_open(st->wtxn, dbis[j], &ac.c[j])) != 0)
				goto err;
			rc = mdb_cursor_get(ac.c[j], &lk, &lv, MDB_LAST);
			if (rc == 0 && j < 2 && lk.mv_size == PDNS_REC_KEY &&
			    lv.mv_size == fixed_dup_size(j)) {
				ac.tail_len[j] = pdns_fixed_decode(j, lk.mv_data, lv.mv_data, ac.tail[j], &unused);
			} else if (rc == 0 && j == 2 && lk.mv_size <= PDNS_REC_KEY_MAX) {
				memcpy(ac.tail[j], lk.mv_data, lk.mv_size);
				ac.tail_len[j] = lk.mv_size;
			} else if (rc != 0 && rc != MDB_NOTFOUND) {
				goto err;
			}
		}
		for (size_t i = 0; i < n; i++)
			if ((rc = apply_entry(st, &ac, list[i], fresh, &nfresh)) != 0)
				goto err;
		for (int j = 0; j < 3; j++) {
			mdb_cursor_close(ac.c[j]);
			ac.c[j] = NULL;
		}
		free(list);
		list = NULL;
		if ((rc = apply_rdx(st, fresh, nfresh)) != 0)
			goto err;
		free(fresh);
		fresh = NULL;
		memset(st->agg, 0, st->agg_cap * sizeof(*st->agg));
		st->agg_n = 0;
	}
	if ((rc = tail_store(st)) != 0 || (rc = write_stats(st)) != 0)
		goto err;
	rc = mdb_txn_commit(st->wtxn);
	st->wtxn = NULL;
	if (rc != 0)
		goto err;
	memset(st->pending, 0, sizeof(st->pending));
	free(st->expire_spec);
	st->expire_spec = NULL;
	return 0;
err:
	fprintf(stderr, "pdns store: commit: %s\n", rc > 0 && rc < 200 ? strerror(rc) : mdb_strerror(rc));
	for (int j = 0; j < 3; j++)
		if (ac.c[j])
			mdb_cursor_close(ac.c[j]);
	free(list);
	free(fresh);
	if (st->wtxn) {
		mdb_txn_abort(st->wtxn);
		st->wtxn = NULL;
	}
	/* ids handed out in the aborted transaction are gone: forget them */
	cache_reset(st);
	memset(st->agg, 0, st->agg_cap * sizeof(*st->agg));
	st->agg_n = 0;
	st->have_last = false;
	MDB_txn *t;
	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t) == 0) {
		(void)load_counters(st, t);
		mdb_txn_abort(t);
	}
	return -1;
}

/* ---- expiry ---- */

int pdns_expire_parse(const char *spec, struct pdns_expire *e)
{
	e->n = 0;
	const char *p = spec;
	while (p != NULL && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		if (len > 0) {
			uint16_t t;
			char num[24];
			if (eq == NULL || e->n >= 64 || pdns_rrtype_parse(p, (size_t)(eq - p), &t) != 0)
				return -1;
			size_t nl = len - (size_t)(eq - p) - 1;
			if (nl == 0 || nl >= sizeof(num))
				return -1;
			memcpy(num, eq + 1, nl);
			num[nl] = 0;
			char *ep;
			errno = 0;
			unsigned long long s = strtoull(num, &ep, 10);
			if (*ep || errno || num[0] == '-')
				return -1;
			e->type[e->n] = t;
			e->seconds[e->n++] = s;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

uint64_t pdns_expire_of(const struct pdns_expire *e, uint16_t type)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->type[i] == type)
			return e->seconds[i];
	return 0;
}

int pdns_store_set_expire(struct pdns_store *st, const char *spec)
{
	struct pdns_expire e;
	if (pdns_expire_parse(spec, &e) != 0)
		return -1;
	free(st->expire_spec);
	st->expire_spec = strdup(spec);
	return st->expire_spec ? 0 : -1;
}

int pdns_store_load_expire(struct pdns_store *st, MDB_txn *txn, struct pdns_expire *e)
{
	MDB_val k = {6, "expire"}, v;
	char buf[2048];
	e->n = 0;
	int rc = mdb_get(txn, st->d.meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || v.mv_size >= sizeof(buf))
		return -1;
	memcpy(buf, v.mv_data, v.mv_size);
	buf[v.mv_size] = 0;
	return pdns_expire_parse(buf, e);
}

/* Deletes the rdx entry of a logical key (purge). */
static int rdx_del(struct pdns_store *st, const uint8_t *kp, size_t klen)
{
	uint8_t rk[PDNS_REC_KEY_MAX];
	size_t rdl = klen - 6;
	MDB_val rkv, rdv;
	memcpy(rk, kp + 6, rdl);
	memcpy(rk + rdl, kp + 4, 2);
	memcpy(rk + rdl + 2, kp, 4);
	pdns_rdx_split(rk, klen, &rkv, &rdv);
	int rc = mdb_del(st->wtxn, klen == 23 ? st->d.rdx6 : st->d.rdx, &rkv, &rdv);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * The pass goes over rec, rec6 (phases 0, 1: position = 2-byte key + duplicate), then rcx
 * (phase 2: position = logical key). Deleting the current entry and then MDB_NEXT gives the
 * entry that followed it (duplicates included).
 */
int pdns_store_purge(struct pdns_store *st, uint64_t now, size_t max_delete, size_t *deleted)
{
	struct pdns_expire e;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;
	size_t scanned = 0, budget = 4 * max_delete + 1000;
	*deleted = 0;
	if (pdns_store_commit(st) != 0 || (rc = wtxn(st)) != 0)
		return -1;
	if (pdns_store_load_expire(st, st->wtxn, &e) != 0)
		goto err;
	if (e.n == 0)
		return pdns_store_commit(st);
	while (*deleted < max_delete && scanned < budget) {
		int ph = st->purge_phase;
		bool fixed = ph < 2;
		size_t dsz = fixed ? fixed_dup_size(ph) : 0;
		const MDB_dbi dbis[3] = {st->d.rec, st->d.rec6, st->d.rcx};
		if ((rc = mdb_cursor_open(st->wtxn, dbis[ph], &cur)) != 0)
			goto err;
		if (st->purge_pos_len == 0) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		} else if (fixed) {
			k.mv_size = PDNS_REC_KEY;
			k.mv_data = st->purge_pos;
			v.mv_size = dsz;
			v.mv_data = st->purge_pos + PDNS_REC_KEY;
			rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
			if (rc == MDB_NOTFOUND) {
				/* nothing left under that key: the next key */
				k.mv_size = PDNS_REC_KEY;
				k.mv_data = st->purge_pos;
				rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
				if (rc == 0 && k.mv_size == PDNS_REC_KEY &&
				    memcmp(k.mv_data, st->purge_pos, PDNS_REC_KEY) == 0)
					rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
			}
		} else {
			k.mv_size = st->purge_pos_len;
			k.mv_data = st->purge_pos;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		}
		while (rc == 0 && *deleted < max_delete && scanned < budget) {
			struct pdns_val val;
			uint8_t lk[PDNS_REC_KEY_MAX];
			const uint8_t *kp = k.mv_data;
			size_t klen = k.mv_size;
			scanned++;
			if (fixed) {
				if (k.mv_size != PDNS_REC_KEY || v.mv_size != dsz)
					goto next;
				klen = pdns_fixed_decode(ph, k.mv_data, v.mv_data, lk, &val);
				kp = lk;
			} else if (klen < 11 || klen > PDNS_REC_KEY_MAX ||
			           pdns_val_decode(v.mv_data, v.mv_size, &val) != 0) {
				goto next;
			}
			uint16_t type = (uint16_t)((kp[4] << 8) | kp[5]);
			uint64_t exp = pdns_expire_of(&e, type);
			if (exp == 0 || val.last + exp >= now)
				goto next;
			if ((rc = rdx_del(st, kp, klen)) != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
				goto err;
			(*deleted)++;
next:
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		if (rc == 0 && fixed && k.mv_size == PDNS_REC_KEY && v.mv_size == dsz) {
			memcpy(st->purge_pos, k.mv_data, PDNS_REC_KEY);
			memcpy(st->purge_pos + PDNS_REC_KEY, v.mv_data, dsz);
			st->purge_pos_len = PDNS_REC_KEY + dsz;
		} else if (rc == 0 && !fixed && k.mv_size <= PDNS_REC_KEY_MAX) {
			st->purge_pos_len = k.mv_size;
			memcpy(st->purge_pos, k.mv_data, k.mv_size);
		} else if (rc == 0 || rc == MDB_NOTFOUND) {
			/* this database is done: the next one, or the pass is over */
			st->purge_pos_len = 0;
			st->purge_phase = (ph + 1) % 3;
		} else {
			goto err;
		}
		mdb_cursor_close(cur);
		cur = NULL;
		if (st->purge_pos_len == 0 && st->purge_phase == 0)
			break;
	}
	pdns_store_count(st, PDNS_S_PURGED, *deleted);
	if (pdns_store_commit(st) != 0)
		return -1;
	return (st->purge_pos_len != 0 || st->purge_phase != 0) ? 1 : 0;
err:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(st->wtxn);
	st->wtxn = NULL;
	cache_reset(st);
	st->have_last = false;
	return -1;
}

/* ---- repack ---- */

/*
 * Pages filled by random inserts are split in halves and stay ~2/3 full; mdb_copy -c drops
 * free pages but keeps that slack. A repack rewrites every database in key order with
 * MDB_APPEND, so that each page is filled before the next is started: the smallest store the
 * layout allows, e.g. after a bulk import. Later random inserts split pages again.
 */
int pdns_store_repack(const char *src, const char *dst, char *err, size_t errlen)
{
	static const char *const names[] = {"s2i", "i2s", "rec", "rec6", "rcx", "rdx", "rdx6",
	                                     "sensor", "meta"};
	struct pdns_store *in = NULL;
	struct pdns_store_opts o = {.path = src, .readonly = true};
	MDB_env *out = NULL;
	MDB_txn *rtxn = NULL, *wtxn = NULL;
	MDB_cursor *rc_cur = NULL, *wc_cur = NULL;
	MDB_envinfo info;
	char path[4096];
	struct stat sb;
	int rc;

	if (pdns_store_open(&in, &o, err, errlen) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/data.mdb", dst);
	if (stat(path, &sb) == 0) {
		snprintf(err, errlen, "%s: a store is already there", dst);
		goto fail;
	}
	if (mkdir(dst, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dst, strerror(errno));
		goto fail;
	}
	const struct pdns_dbis *d = pdns_store_dbis(in);
	const MDB_dbi dbis[] = {d->s2i,  d->i2s,  d->rec,    d->rec6, d->rcx,
	                        d->rdx, d->rdx6, d->sensor, d->meta};
	if ((rc = mdb_env_info(in->env, &info)) != 0 || (rc = mdb_env_create(&out)) != 0 ||
	    (rc = mdb_env_set_maxdbs(out, 12)) != 0 ||
	    (rc = mdb_env_set_mapsize(out, info.me_mapsize)) != 0 ||
	    (rc = mdb_env_open(out, dst, MDB_NOTLS, 0640)) != 0 ||
	    (rc = mdb_txn_begin(in->env, NULL, MDB_RDONLY, &rtxn)) != 0) {
		fail(err, errlen, dst, rc);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		MDB_dbi wd;
		MDB_val k, v;
		size_t n = 0;
		unsigned flags = 0;
		uint8_t prev[PDNS_STR_KEY_MAX];
		size_t prev_len = 0;
		bool have_prev = false;
		if ((rc = mdb_dbi_flags(rtxn, dbis[i], &flags)) != 0 ||
		    (rc = mdb_txn_begin(out, NULL, 0, &wtxn)) != 0 ||
		    (rc = mdb_dbi_open(wtxn, names[i], MDB_CREATE | (flags & PDNS_RDX_FLAGS), &wd)) != 0 ||
		    (rc = mdb_cursor_open(wtxn, wd, &wc_cur)) != 0 ||
		    (rc = mdb_cursor_open(rtxn, dbis[i], &rc_cur)) != 0)
			goto lmdb_fail;
		rc = mdb_cursor_get(rc_cur, &k, &v, MDB_FIRST);
		while (rc == 0) {
			/* a duplicate of the key just written is appended to that key's duplicates */
			bool same = have_prev && k.mv_size == prev_len &&
			            memcmp(k.mv_data, prev, prev_len) == 0;
			unsigned pf = same ? MDB_APPENDDUP
			                   : MDB_APPEND | ((flags & MDB_DUPSORT) ? MDB_APPENDDUP : 0);
			if ((rc = mdb_cursor_put(wc_cur, &k, &v, pf)) != 0)
				goto lmdb_fail;
			if ((flags & MDB_DUPSORT) && k.mv_size <= sizeof(prev)) {
				memcpy(prev, k.mv_data, k.mv_size);
				prev_len = k.mv_size;
				have_prev = true;
			}
			/* bounded write transactions: LMDB keeps every dirty page in memory */
			if (++n % 200000 == 0) {
				mdb_cursor_close(wc_cur);
				wc_cur = NULL;
				rc = mdb_txn_commit(wtxn);
				wtxn = NULL;
				if (rc != 0 || (rc = mdb_txn_begin(out, NULL, 0, &wtxn)) != 0 ||
				    (rc = mdb_cursor_open(wtxn, wd, &wc_cur)) != 0)
					goto lmdb_fail;
			}
			rc = mdb_cursor_get(rc_cur, &k, &v, MDB_NEXT);
		}
		if (rc != MDB_NOTFOUND)
			goto lmdb_fail;
		mdb_cursor_close(rc_cur);
		rc_cur = NULL;
		mdb_cursor_close(wc_cur);
		wc_cur = NULL;
		rc = mdb_txn_commit(wtxn);
		wtxn = NULL;
		if (rc != 0)
			goto lmdb_fail;
	}
	mdb_txn_abort(rtxn);
	mdb_env_close(out);
	pdns_store_close(in);
	return 0;
lmdb_fail:
	fail(err, errlen, "repack", rc);
fail:
	if (rc_cur)
		mdb_cursor_close(rc_cur);
	if (wc_cur)
		mdb_cursor_close(wc_cur);
	if (wtxn)
		mdb_txn_abort(wtxn);
	if (rtxn)
		mdb_txn_abort(rtxn);
	if (out)
		mdb_env_close(out);
	pdns_store_close(in);
	return -1;
}
