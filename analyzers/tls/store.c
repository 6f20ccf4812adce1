/*
 * store.c — the LMDB layout of the TLS store and its batched writer (see store.h and
 * docs/tls-analyzer.md).
 *
 * Databases (all keys and values bytes; "agg" is 24 bytes: u64 first, u64 last, u64 count in
 * host byte order, i.e. little-endian on every platform we build for):
 *   meta         "schema" u32, "next_session" u64, "next_key" u64, "next_finding" u64
 *   sessions     u64 id (big-endian, so keys sort by id) → JSON object (one line)
 *   pivots       kind byte + value → agg [+ detail text: the full JA3/JA3S string, JA4_r]
 *   links        kind A + value A + '\0' + kind B + value B → agg (stored both ways)
 *   psess        kind + value → u64 session ids, big-endian (DUPSORT|DUPFIXED: paging by id)
 *   certs        SHA-256 hex → JSON of the parsed fields
 *   der          SHA-256 hex → DER
 *   cert_sha1    SHA-1 hex → SHA-256 hex
 *   keys         SPKI SHA-256 hex → JSON (id, type, bits, curve, e, n in hex)
 *   key_ids      u64 id (big-endian) → SPKI SHA-256 hex
 *   findings     u64 id (big-endian) → JSON (id, kind, key, time, evidence)
 *   finding_idx  kind + '\0' + SPKI hex → u64 id (one finding per kind and key)
 *
 * Session records are formatted by hand (no jansson on the per-handshake path); the rare
 * certificate, key and finding records use jansson.
 *
 * The pivot and link counters of a batch are merged in an open-addressing table (keys in one
 * growing arena) and written at the flush: one read-modify-write per distinct key per batch.
 */
#include "store.h"

#include "d4_daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AGG_SIZE 24

enum agg_db { AGG_PIVOT = 0, AGG_LINK = 1 };

struct agg_entry {
	uint64_t hash; /* 0: empty slot */
	uint64_t first, last, count;
	uint32_t key_off, detail_off;
	uint16_t key_len, detail_len;
	uint8_t db;
};

struct tls_store {
	struct tls_store_config cfg;
	MDB_env *env;
	struct tls_store_dbs dbs;
	MDB_txn *txn; /* the open batch, or NULL */
	uint64_t next_session, next_key, next_finding;
	unsigned batch_sessions;
	/* batch aggregation */
	struct agg_entry *agg;
	size_t agg_cap, agg_used; /* slots (power of two), used */
	uint8_t *arena;
	size_t arena_len, arena_cap;
	/* session formatting */
	char *sbuf;
	size_t sbuf_len, sbuf_cap;
	tls_store_key_cb key_cb;
	void *key_arg;
	struct tls_store_stats st;
};

static const struct {
	int kind;
	const char *name;
} pivot_names[] = {
	{TLS_PIVOT_JA3, "ja3"},   {TLS_PIVOT_JA3S, "ja3s"},     {TLS_PIVOT_JA4, "ja4"},
	{TLS_PIVOT_CERT, "cert"}, {TLS_PIVOT_KEY, "key"},       {TLS_PIVOT_SERVER, "server"},
	{TLS_PIVOT_SNI, "sni"},   {TLS_PIVOT_SUBJECT, "subject"},
};

int tls_pivot_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(pivot_names) / sizeof(pivot_names[0]); i++)
		if (!strcmp(name, pivot_names[i].name))
			return pivot_names[i].kind;
	return 0;
}

const char *tls_pivot_name(int kind)
{
	for (size_t i = 0; i < sizeof(pivot_names) / sizeof(pivot_names[0]); i++)
		if (kind == pivot_names[i].kind)
			return pivot_names[i].name;
	return "?";
}

const char *tls_store_strerror(int err)
{
	if (err < 0 && err >= -4096)
		return strerror(-err);
	return mdb_strerror(err);
}

const struct tls_store_stats *tls_store_stats(const struct tls_store *st) { return &st->st; }
const struct tls_store_dbs *tls_store_dbs(const struct tls_store *st) { return &st->dbs; }

void tls_store_set_key_cb(struct tls_store *st, tls_store_key_cb cb, void *arg)
{
	st->key_cb = cb;
	st->key_arg = arg;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	uint64_t x = 0;
	if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
		memcpy(&x, v.mv_data, 8);
	return x;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t x)
{
	MDB_val k = {strlen(name), (void *)name}, v = {8, &x};
	return mdb_put(txn, dbi, &k, &v, 0);
}

int tls_store_open(struct tls_store **out, const struct tls_store_config *cfg)
{
	struct tls_store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	int rc;
	if (!st)
		return -ENOMEM;
	st->cfg = *cfg;
	if (!st->cfg.map_size)
		st->cfg.map_size = TLS_STORE_DEFAULT_MAP_SIZE;
	if (!st->cfg.batch_max)
		st->cfg.batch_max = TLS_STORE_DEFAULT_BATCH;
	if (!st->cfg.shared_key_servers)
		st->cfg.shared_key_servers = TLS_STORE_DEFAULT_SHARED_KEY_SERVERS;
	if (!cfg->readonly && d4_mkdir_p(cfg->path, 0750) != 0) {
		rc = -errno;
		goto err;
	}
	if ((rc = mdb_env_create(&st->env)))
		goto err;
	if ((rc = mdb_env_set_mapsize(st->env, st->cfg.map_size)) ||
	    (rc = mdb_env_set_maxdbs(st->env, 16)))
		goto err;
	unsigned flags = MDB_NOTLS;
	if (cfg->readonly)
		flags |= MDB_RDONLY;
	if (cfg->no_sync)
		flags |= MDB_NOSYNC;
	if ((rc = mdb_env_open(st->env, cfg->path, flags, 0640)))
		goto err;
	/* a reader takes the map size the writer last recorded (it may have set a larger one) */
	if (cfg->readonly && (rc = mdb_env_set_mapsize(st->env, 0)))
		goto err;
	st->dbs.env = st->env;
	if ((rc = mdb_txn_begin(st->env, NULL, cfg->readonly ? MDB_RDONLY : 0, &txn)))
		goto err;
	static const char *names[] = {"meta", "sessions", "pivots", "links", "psess", "certs",
	                              "der", "cert_sha1", "keys", "key_ids", "findings", "finding_idx"};
	unsigned *handles[] = {&st->dbs.meta,  &st->dbs.sessions,  &st->dbs.pivots, &st->dbs.links,
	                       &st->dbs.psess, &st->dbs.certs,     &st->dbs.der,    &st->dbs.cert_sha1,
	                       &st->dbs.keys,  &st->dbs.key_ids,   &st->dbs.findings,
	                       &st->dbs.finding_idx};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		unsigned f = cfg->readonly ? 0 : MDB_CREATE;
		if (!strcmp(names[i], "psess"))
			f |= MDB_DUPSORT | MDB_DUPFIXED;
		MDB_dbi dbi;
		if ((rc = mdb_dbi_open(txn, names[i], f, &dbi)))
			goto err;
		*handles[i] = dbi;
	}
	MDB_val k = {6, "schema"}, v;
	uint32_t schema = TLS_STORE_SCHEMA;
	rc = mdb_get(txn, st->dbs.meta, &k, &v);
	if (rc == MDB_NOTFOUND && !cfg->readonly) {
		v.mv_size = 4;
		v.mv_data = &schema;
		if ((rc = mdb_put(txn, st->dbs.meta, &k, &v, 0)))
			goto err;
	} else if (rc) {
		goto err;
	} else if (v.mv_size != 4 || memcmp(v.mv_data, &schema, 4)) {
		rc = -EPROTO;
		goto err;
	}
	st->next_session = meta_u64(txn, st->dbs.meta, "next_session");
	st->next_key = meta_u64(txn, st->dbs.meta, "next_key");
	st->next_finding = meta_u64(txn, st->dbs.meta, "next_finding");
	if (!st->next_session)
		st->next_session = 1;
	if (!st->next_key)
		st->next_key = 1;
	if (!st->next_finding)
		st->next_finding = 1;
	/* committed even read-only: the database handles opened in it stay valid */
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		goto err;
	}
	*out = st;
	return 0;
err:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return rc;
}

static void batch_reset(struct tls_store *st)
{
	if (st->agg_used)
		memset(st->agg, 0, st->agg_cap * sizeof(*st->agg));
	st->agg_used = 0;
	st->arena_len = 0;
	st->batch_sessions = 0;
}

void tls_store_close(struct tls_store *st)
{
	if (!st)
		return;
	if (!st->cfg.readonly)
		(void)tls_store_flush(st);
	if (st->txn)
		mdb_txn_abort(st->txn);
	mdb_env_close(st->env);
	free(st->agg);
	free(st->arena);
	free(st->sbuf);
	free(st);
}

static int txn_open(struct tls_store *st)
{
	if (st->txn)
		return 0;
	if (st->cfg.readonly)
		return -EROFS;
	return mdb_txn_begin(st->env, NULL, 0, &st->txn);
}

/* ---- in-memory aggregation ---- */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* A word at a time: pivot values are hex strings and names, 30-200 bytes. */
static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 31;
	}
	uint64_t tail = 0;
	if (i < n)
		memcpy(&tail, p + i, n - i);
	return mix64(h ^ tail);
}

/* Never 0 (an empty slot); the database is part of the hash. */
static inline uint64_t agg_hash(uint64_t h, uint8_t db)
{
	h = mix64(h + db);
	return h ? h : 1;
}

static int arena_put(struct tls_store *st, const void *p, size_t n, uint32_t *off)
{
	if (st->arena_len + n > st->arena_cap) {
		size_t nc = st->arena_cap ? st->arena_cap * 2 : 1 << 20;
		while (nc < st->arena_len + n)
			nc *= 2;
		uint8_t *a = realloc(st->arena, nc);
		if (!a)
			return -ENOMEM;
		st->arena = a;
		st->arena_cap = nc;
	}
	memcpy(st->arena + st->arena_len, p, n);
	*off = (uint32_t)st->arena_len;
	st->arena_len += n;
	return 0;
}

static int agg_grow(struct tls_store *st)
{
	size_t nc = st->agg_cap ? st->agg_cap * 2 : 1 << 14;
	struct agg_entry *n = calloc(nc, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < st->agg_cap; i++) {
		if (!st->agg[i].hash)
			continue;
		size_t j = st->agg[i].hash & (nc - 1);
		while (n[j].hash)
			j = (j + 1) & (nc - 1);
		n[j] = st->agg[i];
	}
	free(st->agg);
	st->agg = n;
	st->agg_cap = nc;
	return 0;
}

static int agg_add(struct tls_store *st, uint8_t db, const uint8_t *key, size_t klen, uint64_t kh,
                   uint64_t t, const char *detail)
{
	if ((st->agg_used + 1) * 2 > st->agg_cap) {
		int rc = agg_grow(st);
		if (rc)
			return rc;
	}
	uint64_t h = agg_hash(kh, db);
	size_t i = h & (st->agg_cap - 1);
	for (;; i = (i + 1) & (st->agg_cap - 1)) {
		struct agg_entry *e = &st->agg[i];
		if (!e->hash)
			break;
		if (e->hash == h && e->db == db && e->key_len == klen &&
		    !memcmp(st->arena + e->key_off, key, klen)) {
			if (t < e->first)
				e->first = t;
			if (t > e->last)
				e->last = t;
			e->count++;
			return 0;
		}
	}
	struct agg_entry *e = &st->agg[i];
	int rc = arena_put(st, key, klen, &e->key_off);
	if (rc)
		return rc;
	e->detail_len = 0;
	if (detail && *detail) {
		size_t dl = strlen(detail);
		if (dl > 4000)
			dl = 4000;
		if ((rc = arena_put(st, detail, dl, &e->detail_off)))
			return rc;
		e->detail_len = (uint16_t)dl;
	}
	e->hash = h;
	e->db = db;
	e->key_len = (uint16_t)klen;
	e->first = e->last = t;
	e->count = 1;
	st->agg_used++;
	return 0;
}

/* A pivot: kind, value (cut to TLS_STORE_VALUE_MAX). */
struct pv {
	int kind;
	const char *val;
	size_t len;
	const char *detail;
	uint64_t hash; /* of the pivot key (kind + value) */
};

static size_t pv_key(const struct pv *p, uint8_t *out)
{
	out[0] = (uint8_t)p->kind;
	memcpy(out + 1, p->val, p->len);
	return 1 + p->len;
}

/* A link is kept once in the batch (the pair in a fixed order); the flush writes both ways. */
static int link_add(struct tls_store *st, const struct pv *a, const struct pv *b, uint64_t t)
{
	if (a->hash > b->hash) {
		const struct pv *x = a;
		a = b;
		b = x;
	}
	uint8_t key[2 * (TLS_STORE_VALUE_MAX + 1) + 1];
	size_t n = pv_key(a, key);
	key[n++] = 0;
	n += pv_key(b, key + n);
	return agg_add(st, AGG_LINK, key, n, a->hash * 31 + b->hash, t, NULL);
}

static bool pv_set(struct pv *p, int kind, const char *val, const char *detail)
{
	if (!val || !*val)
		return false;
	p->kind = kind;
	p->val = val;
	p->len = strlen(val);
	if (p->len > TLS_STORE_VALUE_MAX)
		p->len = TLS_STORE_VALUE_MAX;
	p->detail = detail;
	uint8_t key[TLS_STORE_VALUE_MAX + 1];
	p->hash = hash_bytes(key, pv_key(p, key));
	return true;
}

/* ---- session records ---- */

static int sb_reserve(struct tls_store *st, size_t n)
{
	if (st->sbuf_len + n <= st->sbuf_cap)
		return 0;
	size_t nc = st->sbuf_cap ? st->sbuf_cap : 4096;
	while (nc < st->sbuf_len + n)
		nc *= 2;
	char *b = realloc(st->sbuf, nc);
	if (!b)
		return -ENOMEM;
	st->sbuf = b;
	st->sbuf_cap = nc;
	return 0;
}

static int sb_raw(struct tls_store *st, const char *s, size_t n)
{
	if (sb_reserve(st, n))
		return -ENOMEM;
	memcpy(st->sbuf + st->sbuf_len, s, n);
	st->sbuf_len += n;
	return 0;
}

/* ,"name":"escaped value" — JSON string escaping; invalid UTF-8 bytes become \u00XX. */
static int sb_str(struct tls_store *st, const char *name, const char *v)
{
	if (!v)
		v = "";
	size_t n = strlen(v);
	if (sb_reserve(st, strlen(name) + 6 * n + 8))
		return -ENOMEM;
	char *o = st->sbuf + st->sbuf_len;
	size_t nl = strlen(name);
	*o++ = ',';
	*o++ = '"';
	memcpy(o, name, nl);
	o += nl;
	memcpy(o, "\":\"", 3);
	o += 3;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += sprintf(o, "\\u%04x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	st->sbuf_len = (size_t)(o - st->sbuf);
	return 0;
}

static void addr_str(const uint8_t a[16], char *out)
{
	static const uint8_t v4pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (!memcmp(a, v4pre, 12))
		inet_ntop(AF_INET, a + 12, out, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN);
}

/* ---- certificates and keys ---- */

static char *hex_of(const uint8_t *p, size_t n)
{
	char *s = malloc(2 * n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = 0;
	return s;
}

static int put_json(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	MDB_val v = {strlen(s), s};
	int rc = mdb_put(txn, dbi, k, &v, 0);
	free(s);
	return rc;
}

static int key_store(struct tls_store *st, const struct tls_cert_info *ci)
{
	MDB_val k = {strlen(ci->spki_sha256), (void *)ci->spki_sha256}, v;
	int rc = mdb_get(st->txn, st->dbs.keys, &k, &v);
	if (rc != MDB_NOTFOUND)
		return rc;
	uint64_t id = st->next_key++;
	json_t *j = json_object();
	if (!j)
		return -ENOMEM;
	json_object_set_new(j, "id", json_integer((json_int_t)id));
	json_object_set_new(j, "type", json_string(ci->key_type_name ? ci->key_type_name : "unknown"));
	json_object_set_new(j, "bits", json_integer(ci->key_bits));
	if (ci->ec_curve[0])
		json_object_set_new(j, "curve", json_string(ci->ec_curve));
	if (ci->rsa_n) {
		char *n = hex_of(ci->rsa_n, ci->rsa_n_len), *e = hex_of(ci->rsa_e, ci->rsa_e_len);
		if (n)
			json_object_set_new(j, "n", json_string(n));
		if (e)
			json_object_set_new(j, "e", json_string(e));
		json_object_set_new(j, "e_u64", json_integer((json_int_t)ci->rsa_e_u64));
		free(n);
		free(e);
	}
	rc = put_json(st->txn, st->dbs.keys, &k, j);
	json_decref(j);
	if (rc)
		return rc;
	uint8_t idk[8];
	put_be64(idk, id);
	MDB_val ik = {8, idk}, iv = {strlen(ci->spki_sha256), (void *)ci->spki_sha256};
	if ((rc = mdb_put(st->txn, st->dbs.key_ids, &ik, &iv, 0)))
		return rc;
	st->st.keys_new++;
	if (st->key_cb)
		st->key_cb(st->key_arg, id, ci->spki_sha256, ci);
	return 0;
}

static int cert_store(struct tls_store *st, const struct tls_store_cert *c)
{
	const struct tls_cert_info *ci = c->info;
	MDB_val k = {strlen(ci->sha256), (void *)ci->sha256}, v;
	int rc = mdb_get(st->txn, st->dbs.der, &k, &v);
	if (rc != MDB_NOTFOUND)
		return rc;
	v.mv_size = c->len;
	v.mv_data = (void *)c->der;
	if ((rc = mdb_put(st->txn, st->dbs.der, &k, &v, 0)))
		return rc;
	json_t *j = json_object(), *san = json_array();
	if (!j || !san) {
		json_decref(j);
		json_decref(san);
		return -ENOMEM;
	}
	json_object_set_new(j, "sha256", json_string(ci->sha256));
	json_object_set_new(j, "sha1", json_string(ci->sha1));
	json_object_set_new(j, "subject", json_string(ci->subject ? ci->subject : ""));
	json_object_set_new(j, "issuer", json_string(ci->issuer ? ci->issuer : ""));
	if (ci->subject_cn)
		json_object_set_new(j, "cn", json_string(ci->subject_cn));
	json_object_set_new(j, "not_before", json_integer(ci->not_before));
	json_object_set_new(j, "not_after", json_integer(ci->not_after));
	json_object_set_new(j, "serial", json_string(ci->serial ? ci->serial : ""));
	json_object_set_new(j, "sig_alg", json_string(ci->sig_alg));
	for (size_t i = 0; i < ci->n_san; i++)
		json_array_append_new(san, json_string(ci->san[i].value ? ci->san[i].value : ""));
	json_object_set_new(j, "san", san);
	json_object_set_new(j, "key", json_string(ci->spki_sha256));
	json_object_set_new(j, "key_type", json_string(ci->key_type_name ? ci->key_type_name : "unknown"));
	json_object_set_new(j, "key_bits", json_integer(ci->key_bits));
	json_object_set_new(j, "is_ca", json_boolean(ci->is_ca));
	json_object_set_new(j, "self_signed", json_boolean(ci->self_signed));
	json_object_set_new(j, "der_len", json_integer((json_int_t)c->len));
	rc = put_json(st->txn, st->dbs.certs, &k, j);
	json_decref(j);
	if (rc)
		return rc;
	MDB_val sk = {strlen(ci->sha1), (void *)ci->sha1};
	if ((rc = mdb_put(st->txn, st->dbs.cert_sha1, &sk, &k, 0)))
		return rc;
	st->st.certs_new++;
	return key_store(st, ci);
}

/* ---- sessions ---- */

static int psess_add(struct tls_store *st, const struct pv *p, const uint8_t id[8])
{
	uint8_t key[TLS_STORE_VALUE_MAX + 1];
	MDB_val k = {pv_key(p, key), key}, v = {8, (void *)id};
	return mdb_put(st->txn, st->dbs.psess, &k, &v, 0);
}

#define MAX_PV 64

int tls_store_add_session(struct tls_store *st, const struct tls_store_session *s)
{
	int rc = txn_open(st);
	if (rc)
		return rc;
	uint64_t id = st->next_session++;
	uint8_t idk[8];
	put_be64(idk, id);
	char cli[INET6_ADDRSTRLEN], srv[INET6_ADDRSTRLEN], num[128];
	addr_str(s->client, cli);
	addr_str(s->server, srv);

	/* the record */
	st->sbuf_len = 0;
	int n = snprintf(num, sizeof(num), "{\"id\":%llu,\"time\":%llu,\"usec\":%u",
	                 (unsigned long long)id, (unsigned long long)s->time, s->usec);
	rc = sb_raw(st, num, (size_t)n);
	char uuid[33];
	for (int i = 0; i < 16; i++)
		sprintf(uuid + 2 * i, "%02x", s->sensor[i]);
	rc = rc ? rc : sb_str(st, "client", cli);
	n = snprintf(num, sizeof(num), ",\"client_port\":%u", s->client_port);
	rc = rc ? rc : sb_raw(st, num, (size_t)n);
	rc = rc ? rc : sb_str(st, "server", srv);
	n = snprintf(num, sizeof(num), ",\"server_port\":%u,\"version\":%u", s->server_port, s->version);
	rc = rc ? rc : sb_raw(st, num, (size_t)n);
	rc = rc ? rc : sb_str(st, "sensor", uuid);
	/* the full JA3/JA3S strings are the detail of their pivot, kept once */
	rc = rc ? rc : sb_str(st, "ja3_md5", s->ja3_md5);
	rc = rc ? rc : sb_str(st, "ja3s_md5", s->ja3s_md5);
	rc = rc ? rc : sb_str(st, "ja4", s->ja4);
	rc = rc ? rc : sb_str(st, "sni", s->sni);
	rc = rc ? rc : sb_str(st, "alpn", s->alpn);
	rc = rc ? rc : sb_raw(st, ",\"certs\":[", 10);
	for (size_t i = 0; i < s->n_certs && !rc; i++) {
		if (!s->certs[i].info)
			continue;
		if (st->sbuf[st->sbuf_len - 1] != '[')
			rc = sb_raw(st, ",", 1);
		rc = rc ? rc : sb_raw(st, "\"", 1);
		rc = rc ? rc : sb_raw(st, s->certs[i].info->sha256, 64);
		rc = rc ? rc : sb_raw(st, "\"", 1);
	}
	rc = rc ? rc : sb_raw(st, "]}", 2);
	if (rc)
		return rc;
	MDB_val k = {8, idk}, v = {st->sbuf_len, st->sbuf};
	if ((rc = mdb_put(st->txn, st->dbs.sessions, &k, &v, MDB_APPEND)))
		return rc;

	/*
	 * Pivots and links of the session. Linked all with all: JA3, JA3S, JA4, server, SNI and the
	 * leaf certificate. A certificate is linked with its key and subject (and the key with the
	 * subject), the key with the server (the shared-key check counts both), every chain
	 * certificate with the server and the leaf. Keys and subjects are not linked with the
	 * fingerprints: the certificate leads to them, and each link costs a write per batch.
	 */
	struct pv pv[MAX_PV];
	size_t np = 0;
	np += pv_set(&pv[np], TLS_PIVOT_JA3, s->ja3_md5, s->ja3);
	np += pv_set(&pv[np], TLS_PIVOT_JA3S, s->ja3s_md5, s->ja3s);
	np += pv_set(&pv[np], TLS_PIVOT_JA4, s->ja4, s->ja4_r);
	int server = -1, leaf = -1;
	if (pv_set(&pv[np], TLS_PIVOT_SERVER, srv, NULL))
		server = (int)np++;
	np += pv_set(&pv[np], TLS_PIVOT_SNI, s->sni, NULL);
	size_t nsess = np;
	uint64_t t = s->time;
	for (size_t i = 0; i < s->n_certs && np + 3 <= MAX_PV; i++) {
		const struct tls_cert_info *ci = s->certs[i].info;
		if (!ci) {
			st->st.certs_unparsed++;
			continue;
		}
		if ((rc = cert_store(st, &s->certs[i])))
			return rc;
		struct pv *c = &pv[np], *kp = &pv[np + 1], *u = &pv[np + 2];
		if (!pv_set(c, TLS_PIVOT_CERT, ci->sha256, NULL))
			continue;
		bool hk = pv_set(kp, TLS_PIVOT_KEY, ci->spki_sha256, NULL);
		bool hu = pv_set(u, TLS_PIVOT_SUBJECT, ci->subject, NULL);
		uint8_t key[TLS_STORE_VALUE_MAX + 1];
		if ((rc = agg_add(st, AGG_PIVOT, key, pv_key(c, key), c->hash, t, NULL)) ||
		    (rc = psess_add(st, c, idk)))
			return rc;
		if (hk && ((rc = agg_add(st, AGG_PIVOT, key, pv_key(kp, key), kp->hash, t, NULL)) ||
		           (rc = link_add(st, c, kp, t))))
			return rc;
		if (hu && ((rc = agg_add(st, AGG_PIVOT, key, pv_key(u, key), u->hash, t, NULL)) ||
		           (rc = link_add(st, c, u, t))))
			return rc;
		if (hk && hu && (rc = link_add(st, kp, u, t)))
			return rc;
		if (server >= 0 && (rc = link_add(st, &pv[server], c, t)))
			return rc;
		if (leaf >= 0 && (rc = link_add(st, &pv[leaf], c, t)))
			return rc;
		if (leaf < 0) { /* the leaf: its key and subject have their sessions too */
			leaf = (int)np;
			if ((hk && (rc = psess_add(st, kp, idk))) || (hu && (rc = psess_add(st, u, idk))))
				return rc;
			if (hk && server >= 0 && (rc = link_add(st, &pv[server], kp, t)))
				return rc;
		}
		np += 3;
	}
	for (size_t i = 0; i < nsess; i++) {
		uint8_t key[TLS_STORE_VALUE_MAX + 1];
		if ((rc = agg_add(st, AGG_PIVOT, key, pv_key(&pv[i], key), pv[i].hash, t, pv[i].detail)) ||
		    (rc = psess_add(st, &pv[i], idk)))
			return rc;
		for (size_t j = i + 1; j < nsess; j++)
			if ((rc = link_add(st, &pv[i], &pv[j], t)))
				return rc;
		if (leaf >= 0 && (int)i != server && (rc = link_add(st, &pv[i], &pv[leaf], t)))
			return rc;
	}
	st->st.sessions++;
	if (++st->batch_sessions >= st->cfg.batch_max)
		return tls_store_flush(st);
	return 0;
}

/* ---- flush ---- */

static int agg_merge(struct tls_store *st, const struct agg_entry *e)
{
	MDB_dbi dbi = e->db == AGG_PIVOT ? st->dbs.pivots : st->dbs.links;
	MDB_val k = {e->key_len, st->arena + e->key_off}, v;
	uint64_t agg[3] = {e->first, e->last, e->count};
	const void *detail = e->detail_len ? st->arena + e->detail_off : NULL;
	size_t dlen = e->detail_len;
	int rc = mdb_get(st->txn, dbi, &k, &v);
	if (rc == 0 && v.mv_size >= AGG_SIZE) {
		uint64_t old[3];
		memcpy(old, v.mv_data, AGG_SIZE);
		if (old[0] < agg[0])
			agg[0] = old[0];
		if (old[1] > agg[1])
			agg[1] = old[1];
		agg[2] += old[2];
		if (v.mv_size > AGG_SIZE) { /* keep the first detail */
			detail = (const uint8_t *)v.mv_data + AGG_SIZE;
			dlen = v.mv_size - AGG_SIZE;
		}
	} else if (rc && rc != MDB_NOTFOUND) {
		return rc;
	}
	uint8_t buf[AGG_SIZE + 4096];
	memcpy(buf, agg, AGG_SIZE);
	if (dlen > sizeof(buf) - AGG_SIZE)
		dlen = sizeof(buf) - AGG_SIZE;
	if (detail)
		memmove(buf + AGG_SIZE, detail, dlen);
	v.mv_size = AGG_SIZE + dlen;
	v.mv_data = buf;
	if ((rc = mdb_put(st->txn, dbi, &k, &v, 0)) || e->db != AGG_LINK)
		return rc;
	/* the other way: "B\0A" from "A\0B" (values hold no NUL), same counters */
	const uint8_t *key = st->arena + e->key_off;
	const uint8_t *sep = memchr(key, 0, e->key_len);
	if (!sep)
		return -EINVAL;
	size_t alen = (size_t)(sep - key), blen = e->key_len - alen - 1;
	uint8_t rev[2 * (TLS_STORE_VALUE_MAX + 1) + 1];
	memcpy(rev, sep + 1, blen);
	rev[blen] = 0;
	memcpy(rev + blen + 1, key, alen);
	k.mv_size = e->key_len;
	k.mv_data = rev;
	v.mv_size = AGG_SIZE;
	v.mv_data = buf;
	return mdb_put(st->txn, dbi, &k, &v, 0);
}

/* Links of pivot `from` to pivots of kind `to`, counted up to cap. */
static size_t count_links(struct tls_store *st, const uint8_t *from, size_t flen, int to, size_t cap)
{
	uint8_t pre[TLS_STORE_VALUE_MAX + 3];
	memcpy(pre, from, flen);
	pre[flen] = 0;
	pre[flen + 1] = (uint8_t)to;
	size_t plen = flen + 2, n = 0;
	MDB_cursor *cur;
	if (mdb_cursor_open(st->txn, st->dbs.links, &cur))
		return 0;
	MDB_val k = {plen, pre}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && n < cap && k.mv_size > plen && !memcmp(k.mv_data, pre, plen)) {
		n++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return n;
}

static int shared_key_check(struct tls_store *st, const struct agg_entry *e, uint64_t now)
{
	const uint8_t *key = st->arena + e->key_off;
	size_t subjects = count_links(st, key, e->key_len, TLS_PIVOT_SUBJECT, 64);
	size_t servers = count_links(st, key, e->key_len, TLS_PIVOT_SERVER, st->cfg.shared_key_servers + 1);
	if (subjects <= 1 && servers <= st->cfg.shared_key_servers)
		return 0;
	char hash[65];
	size_t hl = e->key_len - 1 < 64 ? e->key_len - 1 : 64;
	memcpy(hash, key + 1, hl);
	hash[hl] = 0;
	json_t *ev = json_pack("{s:I, s:I, s:I}", "subjects", (json_int_t)subjects, "servers",
	                       (json_int_t)servers, "servers_limit", (json_int_t)st->cfg.shared_key_servers);
	if (!ev)
		return -ENOMEM;
	int rc = tls_store_add_finding(st, "shared-key", hash, now, ev);
	json_decref(ev);
	return rc;
}

struct agg_ref {
	const uint8_t *key;
	struct agg_entry *e;
};

static int agg_ref_cmp(const void *pa, const void *pb)
{
	const struct agg_ref *a = pa, *b = pb;
	if (a->e->db != b->e->db)
		return a->e->db < b->e->db ? -1 : 1;
	size_t n = a->e->key_len < b->e->key_len ? a->e->key_len : b->e->key_len;
	int c = memcmp(a->key, b->key, n);
	if (c)
		return c;
	return a->e->key_len < b->e->key_len ? -1 : a->e->key_len > b->e->key_len;
}

/*
 * Merges the batch's counters into LMDB in key order (sorted first: B-tree inserts in order touch
 * each page once), then runs the shared-key check for the keys seen in the batch, and commits.
 */
int tls_store_flush(struct tls_store *st)
{
	int rc = 0;
	struct agg_ref *refs = NULL;
	if (!st->txn)
		return 0;
	uint64_t now = 0;
	if (st->agg_used) {
		refs = malloc(st->agg_used * sizeof(*refs));
		if (!refs) {
			rc = -ENOMEM;
			goto out;
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < st->agg_cap; i++) {
		if (!st->agg[i].hash)
			continue;
		if (st->agg[i].last > now)
			now = st->agg[i].last;
		refs[n].key = st->arena + st->agg[i].key_off;
		refs[n].e = &st->agg[i];
		n++;
	}
	if (n > 1)
		qsort(refs, n, sizeof(*refs), agg_ref_cmp);
	for (size_t i = 0; i < n; i++)
		if ((rc = agg_merge(st, refs[i].e)))
			goto out;
	for (size_t i = 0; i < n; i++) {
		const struct agg_entry *e = refs[i].e;
		if (e->db == AGG_PIVOT && refs[i].key[0] == TLS_PIVOT_KEY)
			if ((rc = shared_key_check(st, e, now)))
				goto out;
	}
	/* empty the table slot by slot: a big table after a busy batch is not cleared whole at
	 * every small flush */
	for (size_t i = 0; i < n; i++)
		refs[i].e->hash = 0;
	st->agg_used = 0;
	if ((rc = meta_put_u64(st->txn, st->dbs.meta, "next_session", st->next_session)) ||
	    (rc = meta_put_u64(st->txn, st->dbs.meta, "next_key", st->next_key)) ||
	    (rc = meta_put_u64(st->txn, st->dbs.meta, "next_finding", st->next_finding)))
		goto out;
	rc = mdb_txn_commit(st->txn);
	st->txn = NULL;
	if (!rc)
		st->st.commits++;
out:
	free(refs);
	if (st->txn) {
		mdb_txn_abort(st->txn);
		st->txn = NULL;
	}
	batch_reset(st);
	return rc;
}

/* ---- findings and keys ---- */

int tls_store_add_finding(struct tls_store *st, const char *kind, const char *spki_sha256,
                          uint64_t time, json_t *evidence)
{
	int rc = txn_open(st);
	if (rc)
		return rc;
	char ik[128];
	int n = snprintf(ik, sizeof(ik), "%s%c%s", kind, 0, spki_sha256);
	if (n < 0 || (size_t)n >= sizeof(ik))
		return -EINVAL;
	MDB_val k = {(size_t)n, ik}, v;
	rc = mdb_get(st->txn, st->dbs.finding_idx, &k, &v);
	if (rc == 0)
		return 0;
	if (rc != MDB_NOTFOUND)
		return rc;
	uint64_t id = st->next_finding++;
	uint8_t idk[8];
	put_be64(idk, id);
	v.mv_size = 8;
	v.mv_data = idk;
	if ((rc = mdb_put(st->txn, st->dbs.finding_idx, &k, &v, 0)))
		return rc;
	json_t *j = json_pack("{s:I, s:s, s:s, s:I, s:O}", "id", (json_int_t)id, "kind", kind, "key",
	                      spki_sha256, "time", (json_int_t)time, "evidence",
	                      evidence ? evidence : json_null());
	if (!j)
		return -ENOMEM;
	MDB_val fk = {8, idk};
	rc = put_json(st->txn, st->dbs.findings, &fk, j);
	json_decref(j);
	if (!rc)
		st->st.findings_new++;
	return rc;
}

int tls_store_key_hash(struct tls_store *st, uint64_t key_id, char out[65])
{
	MDB_txn *txn = st->txn;
	bool own = false;
	int rc = 0;
	if (!txn) {
		if ((rc = tls_store_txn_read(st->env, &txn)))
			return rc;
		own = true;
	}
	uint8_t idk[8];
	put_be64(idk, key_id);
	MDB_val k = {8, idk}, v;
	rc = mdb_get(txn, st->dbs.key_ids, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = -ENOENT;
	else if (!rc) {
		size_t n = v.mv_size < 64 ? v.mv_size : 64;
		memcpy(out, v.mv_data, n);
		out[n] = 0;
	}
	if (own)
		mdb_txn_abort(txn);
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tls_store_each_rsa_key(struct tls_store *st,
                           int (*cb)(void *arg, uint64_t id, const uint8_t *n, size_t nlen),
                           void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc = tls_store_txn_read(st->env, &txn);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->dbs.keys, &cur)))
		goto out;
	MDB_val k, v;
	uint8_t *buf = NULL;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *j = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		const char *n = j ? json_string_value(json_object_get(j, "n")) : NULL;
		uint64_t id = j ? (uint64_t)json_integer_value(json_object_get(j, "id")) : 0;
		int r = 0;
		if (n && strlen(n) % 2 == 0) {
			size_t len = strlen(n) / 2;
			free(buf);
			buf = malloc(len ? len : 1);
			bool ok = buf != NULL;
			for (size_t i = 0; ok && i < len; i++) {
				int hi = hexval(n[2 * i]), lo = hexval(n[2 * i + 1]);
				ok = hi >= 0 && lo >= 0;
				if (ok)
					buf[i] = (uint8_t)(hi << 4 | lo);
			}
			if (ok)
				r = cb(arg, id, buf, len);
		}
		json_decref(j);
		if (r) {
			rc = r;
			break;
		}
	}
	free(buf);
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int tls_store_txn_read(MDB_env *env, MDB_txn **txn)
{
	int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, txn);

	if (rc == MDB_MAP_RESIZED) {
		/* the analyzer grew the map since we opened: take its size and try again */
		if ((rc = mdb_env_set_mapsize(env, 0)) == 0)
			rc = mdb_txn_begin(env, NULL, MDB_RDONLY, txn);
	}
	return rc;
}
