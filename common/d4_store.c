/*
 * d4_store.c — the shared LMDB store: environment, transactions, and the
 * key layout and record encoding of every named database.
 *
 * This file is the only place that knows a key layout or a record format
 * (docs/store.md is their description). Records are encoded with d4_writer
 * into a stack or heap buffer and put as one value; values read from LMDB
 * point into the read-only map and are decoded with d4_reader, which never
 * reads past the value, into caller-owned structs. Every record starts with
 * its own u16 version; a record that does not decode exactly (wrong
 * version, bad length, a value out of range, bytes left over) is -EINVAL.
 *
 * Why one record per sensor for the statistics instead of one key per
 * counter: d4-ingest updates a sensor's counters together once a second,
 * and d4-web shows them together; one get and one put per sensor per second
 * is the cheapest shape for both, and LMDB's copy-on-write makes a 8 KiB
 * rewrite a few page copies. The daily counters, which grow with time, are
 * keyed finely instead, so that a date range is one cursor walk.
 */
#include "d4_store.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "d4_bytes.h"

enum db_id {
	DB_META,
	DB_SENSORS,
	DB_BLOCK_UUID,
	DB_BLOCK_IP,
	DB_TYPES,
	DB_META_TYPES,
	DB_USERS,
	DB_TOKENS,
	DB_KICKS,
	DB_STATS,
	DB_DAILY,
	DB_QUEUES,
	DB_QUEUE_CTL, /* added after schema 1: optional for a read-only open (see d4_store_open) */
	DB_COUNT
};

static const char *const db_names[DB_COUNT] = {
	[DB_META] = "meta",
	[DB_SENSORS] = "sensors",
	[DB_BLOCK_UUID] = "block_uuid",
	[DB_BLOCK_IP] = "block_ip",
	[DB_TYPES] = "types",
	[DB_META_TYPES] = "meta_types",
	[DB_USERS] = "users",
	[DB_TOKENS] = "tokens",
	[DB_KICKS] = "kicks",
	[DB_STATS] = "stats",
	[DB_DAILY] = "daily",
	[DB_QUEUES] = "queues",
	[DB_QUEUE_CTL] = "queue_ctl",
};

/*
 * Databases added to schema 1 later: a writable open creates them, a
 * read-only open of a store no newer program has opened writable yet finds
 * them missing and reads them as empty. Adding a database this way changes
 * no key layout and no record, so it is not a schema change.
 */
static bool db_optional(int db)
{
	return db == DB_QUEUE_CTL;
}

/* Record versions, one per record kind (docs/store.md). */
#define SENSOR_REC_V 1
#define BLOCK_REC_V 1
#define ACCEPT_REC_V 1
#define USER_REC_V 1
#define TOKEN_REC_V 1
#define KICK_REC_V 1
#define STATS_REC_V 1
#define DAILY_REC_V 1
#define QUEUE_REC_V 2 /* v1 read too: no flags, emptied 0 */
#define QUEUE_CTL_REC_V 1

#define META_KEY_SCHEMA "schema_version"
#define META_KEY_GENERATION "policy_generation"

#define SENSOR_REC_MAX 2048
#define SMALL_REC_MAX 1024
/* 38 fixed + 256 types x 17 + 32 meta x 82 + 16 addrs x 24 + reasons x 9 + last error 285 */
#define STATS_REC_MAX 12288
#define DAILY_KEY_MAX (D4_UUID_SIZE + 4 + 1 + D4_META_TYPE_MAX)
#define DAILY_KEY_MIN (D4_UUID_SIZE + 4 + 1)

struct d4_store {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	bool absent[DB_COUNT]; /* an optional database a read-only open did not find */
	bool read_only;
	char path[];
};

/* ---- errors ---- */

/* LMDB returns its own negative codes or a positive errno; ours are all negative. */
static int mdb_rc(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	if (rc > 0)
		return -rc;
	return rc;
}

const char *d4_store_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case D4_STORE_ESCHEMA:
		return "the store has another schema version than this program";
	case -ENOENT:
		return "not found";
	case -EEXIST:
		return "already exists";
	case -EINVAL:
		return "invalid argument or malformed record";
	case -EPERM:
		return "state transition not allowed";
	case -EROFS:
		return "store opened read-only";
	case -EACCES:
		return "write in a read transaction, or permission denied";
	default:
		break;
	}
	if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE)
		return mdb_strerror(rc);
	if (rc < 0)
		return strerror(-rc);
	return "unknown error";
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t len, const char *fmt,
                                                          ...)
{
	va_list ap;

	if (err == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- environment ---- */

static int read_schema(MDB_txn *txn, MDB_dbi meta, uint32_t *version)
{
	MDB_val k = {sizeof(META_KEY_SCHEMA) - 1, (void *)META_KEY_SCHEMA}, v;
	int rc = mdb_get(txn, meta, &k, &v);

	if (rc != 0)
		return mdb_rc(rc);
	if (v.mv_size != 4)
		return -EINVAL;
	*version = d4_le32(v.mv_data);
	return 0;
}

int d4_store_open(struct d4_store **out, const char *path, const struct d4_store_opts *opts,
                  char *err, size_t errlen)
{
	struct d4_store_opts o = {0};
	struct d4_store *s = NULL;
	MDB_txn *txn = NULL;
	unsigned create;
	uint32_t version = 0;
	int rc;

	*out = NULL;
	if (opts != NULL)
		o = *opts;
	if (o.map_size == 0)
		o.map_size = D4_STORE_DEFAULT_MAP_SIZE;
	if (o.max_readers == 0)
		o.max_readers = D4_STORE_DEFAULT_MAX_READERS;
	create = o.read_only ? 0 : MDB_CREATE;

	if (o.read_only) {
		struct stat st;
		char data[4096];
		int n = snprintf(data, sizeof(data), "%s/data.mdb", path);
		if (n < 0 || (size_t)n >= sizeof(data)) {
			rc = -ENAMETOOLONG;
			set_err(err, errlen, "store path too long: %s", path);
			goto fail;
		}
		if (stat(data, &st) != 0) {
			rc = -errno;
			set_err(err, errlen, "no store at %s: %s", path, strerror(errno));
			goto fail;
		}
	} else if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		set_err(err, errlen, "cannot create store directory %s: %s", path, strerror(errno));
		goto fail;
	}

	s = calloc(1, sizeof(*s) + strlen(path) + 1);
	if (s == NULL) {
		rc = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(s->path, path, strlen(path) + 1);
	s->read_only = o.read_only;

	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		s->env = NULL;
		goto lmdb_fail;
	}
	if ((rc = mdb_env_set_mapsize(s->env, o.map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, o.max_readers)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 4)) != 0)
		goto lmdb_fail;
	/* MDB_NOTLS: a read txn is not tied to a thread (libuv callbacks, worker threads). */
	rc = mdb_env_open(s->env, path, MDB_NOTLS | (o.read_only ? MDB_RDONLY : 0), 0600);
	if (rc != 0)
		goto lmdb_fail;
	/* Free reader slots left by processes that died inside a read txn. */
	int dead = 0;
	if ((rc = mdb_reader_check(s->env, &dead)) != 0)
		goto lmdb_fail;

	if ((rc = mdb_txn_begin(s->env, NULL, o.read_only ? MDB_RDONLY : 0, &txn)) != 0)
		goto lmdb_fail;
	rc = mdb_dbi_open(txn, db_names[DB_META], create, &s->dbi[DB_META]);
	if (rc == MDB_NOTFOUND) {
		rc = -ENOENT;
		set_err(err, errlen, "%s is not a d4 store (no meta database)", path);
		goto fail;
	}
	if (rc != 0)
		goto lmdb_fail;
	rc = read_schema(txn, s->dbi[DB_META], &version);
	if (rc == -ENOENT && !o.read_only) {
		/* A fresh store: stamp it. */
		uint8_t v4[4];
		MDB_val k = {sizeof(META_KEY_SCHEMA) - 1, (void *)META_KEY_SCHEMA};
		MDB_val v = {sizeof(v4), v4};
		d4_put_le32(v4, D4_STORE_SCHEMA_VERSION);
		if ((rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0)) != 0)
			goto lmdb_fail;
		version = D4_STORE_SCHEMA_VERSION;
	} else if (rc == -ENOENT) {
		set_err(err, errlen, "%s is not a d4 store (no schema version)", path);
		goto fail;
	} else if (rc != 0) {
		set_err(err, errlen, "store %s: unreadable schema version: %s", path,
		        d4_store_strerror(rc));
		goto fail;
	}
	if (version != D4_STORE_SCHEMA_VERSION) {
		rc = D4_STORE_ESCHEMA;
		set_err(err, errlen,
		        "store %s has schema version %u, this program uses version %u; "
		        "refusing to open it (migrate or point to another store)",
		        path, (unsigned)version, (unsigned)D4_STORE_SCHEMA_VERSION);
		goto fail;
	}
	for (int i = DB_META + 1; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], create, &s->dbi[i]);
		if (rc == MDB_NOTFOUND && o.read_only && db_optional(i)) {
			s->absent[i] = true;
			continue;
		}
		if (rc == MDB_NOTFOUND) {
			rc = -ENOENT;
			set_err(err, errlen, "store %s lacks database \"%s\"", path, db_names[i]);
			goto fail;
		}
		if (rc != 0)
			goto lmdb_fail;
	}
	/* Committing (even a read txn) makes the dbi handles valid for the whole env. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto lmdb_fail;
	*out = s;
	return 0;

lmdb_fail:
	rc = mdb_rc(rc);
	set_err(err, errlen, "cannot open store %s: %s", path, d4_store_strerror(rc));
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (s != NULL && s->env != NULL)
		mdb_env_close(s->env);
	free(s);
	return rc;
}

void d4_store_close(struct d4_store *s)
{
	if (s == NULL)
		return;
	mdb_env_close(s->env);
	free(s);
}

const char *d4_store_path(const struct d4_store *s)
{
	return s->path;
}

/* ---- transactions ---- */

int d4_txn_begin(struct d4_store *s, struct d4_txn *t, bool write)
{
	MDB_txn *txn = NULL;
	int rc;

	memset(t, 0, sizeof(*t));
	if (write && s->read_only)
		return -EROFS;
	rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry once. */
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &txn);
	}
	if (rc != 0)
		return mdb_rc(rc);
	t->store = s;
	t->txn = txn;
	t->write = write;
	return 0;
}

static int bump_generation(struct d4_txn *t)
{
	MDB_dbi dbi = t->store->dbi[DB_META];
	MDB_val k = {sizeof(META_KEY_GENERATION) - 1, (void *)META_KEY_GENERATION}, v;
	uint8_t buf[8];
	uint64_t gen = 0;
	int rc = mdb_get(t->txn, dbi, &k, &v);

	if (rc == 0 && v.mv_size == 8)
		gen = d4_le64(v.mv_data);
	else if (rc == 0)
		return -EINVAL;
	else if (rc != MDB_NOTFOUND)
		return mdb_rc(rc);
	d4_put_le64(buf, gen + 1);
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	return mdb_rc(mdb_put(t->txn, dbi, &k, &v, 0));
}

int d4_txn_commit(struct d4_txn *t)
{
	int rc = 0;

	if (t->txn == NULL)
		return -EINVAL;
	if (t->write && t->policy_changed)
		rc = bump_generation(t);
	if (rc == 0)
		rc = mdb_rc(mdb_txn_commit(t->txn));
	else
		mdb_txn_abort(t->txn);
	t->txn = NULL;
	return rc;
}

void d4_txn_abort(struct d4_txn *t)
{
	if (t->txn != NULL)
		mdb_txn_abort(t->txn);
	t->txn = NULL;
}

/* ---- raw access ---- */

static int db_get(struct d4_txn *t, enum db_id db, const void *key, size_t klen, MDB_val *v)
{
	MDB_val k = {klen, (void *)key};

	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	if (t->store->absent[db])
		return -ENOENT;
	return mdb_rc(mdb_get(t->txn, t->store->dbi[db], &k, v));
}

static int db_put(struct d4_txn *t, enum db_id db, const void *key, size_t klen, const void *val,
                  size_t vlen, unsigned flags)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	return mdb_rc(mdb_put(t->txn, t->store->dbi[db], &k, &v, flags));
}

static int db_del(struct d4_txn *t, enum db_id db, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};

	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	return mdb_rc(mdb_del(t->txn, t->store->dbi[db], &k, NULL));
}

enum walk_action {
	WALK_NEXT = 0,
	WALK_STOP,
	WALK_DELETE, /* delete the current record, then go on */
};

/*
 * Calls fn for each record from the first key >= start (or the first key),
 * in key order. fn's nonzero return ends the walk and is returned; *action
 * lets it stop quietly or delete the record it was given.
 */
typedef int (*walk_fn)(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action);

static int db_walk(struct d4_txn *t, enum db_id db, const void *start, size_t slen, walk_fn fn,
                   void *ctx)
{
	MDB_cursor *cur = NULL;
	MDB_val k = {slen, (void *)start}, v;
	MDB_cursor_op op = start != NULL ? MDB_SET_RANGE : MDB_FIRST;
	int rc;

	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	if (t->store->absent[db])
		return 0; /* an optional database not created yet: empty */
	rc = mdb_cursor_open(t->txn, t->store->dbi[db], &cur);
	if (rc != 0)
		return mdb_rc(rc);
	for (;;) {
		enum walk_action action = WALK_NEXT;

		rc = mdb_cursor_get(cur, &k, &v, op);
		op = MDB_NEXT;
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0) {
			rc = mdb_rc(rc);
			break;
		}
		rc = fn(&k, &v, ctx, &action);
		if (rc != 0 || action == WALK_STOP)
			break;
		if (action == WALK_DELETE) {
			if (!t->write) {
				rc = -EACCES;
				break;
			}
			if ((rc = mdb_cursor_del(cur, 0)) != 0) {
				rc = mdb_rc(rc);
				break;
			}
		}
	}
	mdb_cursor_close(cur);
	return rc;
}

/* ---- encoding helpers ---- */

/* A C string of at most max bytes (the array holds max + 1). */
static bool str_fits(const char *s, size_t max)
{
	return memchr(s, '\0', max + 1) != NULL;
}

/* Names used as keys: 1..max bytes of printable ASCII without spaces. */
static bool name_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return false;
	}
	return n > 0;
}

static bool name_bytes_ok(const uint8_t *p, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return false;
	return true;
}

static void put_str(struct d4_writer *w, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT16_MAX) {
		w->err = true;
		return;
	}
	d4_put_u16(w, (uint16_t)n);
	d4_put_bytes(w, s, n);
}

/* Reads a u16-length string of at most max bytes, without NUL bytes, into out[max + 1]. */
static void get_str(struct d4_reader *r, char *out, size_t max)
{
	uint16_t n = d4_get_u16(r);
	const uint8_t *p;

	out[0] = '\0';
	if (n > max) {
		r->err = true;
		return;
	}
	p = d4_get_bytes(r, n);
	if (p == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		r->err = true;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static void get_version(struct d4_reader *r, uint16_t want)
{
	if (d4_get_u16(r) != want)
		r->err = true;
}

/* A record decodes only if every byte was used and none was missing. */
static int rec_done(const struct d4_reader *r)
{
	return (r->err || r->left != 0) ? -EINVAL : 0;
}

static int put_written(struct d4_txn *t, enum db_id db, const void *key, size_t klen,
                       const struct d4_writer *w, unsigned flags)
{
	if (w->err)
		return -EINVAL;
	return db_put(t, db, key, klen, w->p, w->len, flags);
}

/* RFC 4122 version 4 (kept here so the store does not need d4_uuid.c). */
static bool uuid_is_v4(const uint8_t u[D4_UUID_SIZE])
{
	return (u[6] >> 4) == 4 && (u[8] & 0xc0) == 0x80;
}

/* ---- meta ---- */

int d4_policy_generation(struct d4_txn *t, uint64_t *gen)
{
	MDB_val v;
	int rc = db_get(t, DB_META, META_KEY_GENERATION, sizeof(META_KEY_GENERATION) - 1, &v);

	*gen = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != 8)
		return -EINVAL;
	*gen = d4_le64(v.mv_data);
	return 0;
}

int d4_schema_version(struct d4_txn *t, uint32_t *version)
{
	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	return read_schema(t->txn, t->store->dbi[DB_META], version);
}

/* ---- sensors ---- */

static const char *const sensor_state_names[] = {"pending", "approved", "rejected"};

const char *d4_sensor_state_name(enum d4_sensor_state st)
{
	if ((unsigned)st < sizeof(sensor_state_names) / sizeof(sensor_state_names[0]))
		return sensor_state_names[st];
	return "invalid";
}

int d4_sensor_state_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(sensor_state_names) / sizeof(sensor_state_names[0]); i++)
		if (strcmp(name, sensor_state_names[i]) == 0)
			return (int)i;
	return -1;
}

static bool settings_ok(const struct d4_sensor_settings *st)
{
	if (st->n_groups > D4_SENSOR_GROUPS_MAX)
		return false;
	for (unsigned i = 0; i < st->n_groups; i++)
		if (!name_ok(st->groups[i], D4_GROUP_NAME_MAX))
			return false;
	return true;
}

static bool sensor_ok(const struct d4_sensor *s)
{
	return (unsigned)s->state <= D4_SENSOR_REJECTED && s->hmac_key_len <= D4_SENSOR_KEY_MAX &&
	       str_fits(s->description, D4_SENSOR_DESC_MAX) &&
	       str_fits(s->mail, D4_SENSOR_MAIL_MAX) && settings_ok(&s->settings);
}

static int sensor_encode(const struct d4_sensor *s, struct d4_writer *w)
{
	const struct d4_sensor_settings *st = &s->settings;

	if (!sensor_ok(s))
		return -EINVAL;
	d4_put_u16(w, SENSOR_REC_V);
	d4_put_u8(w, (uint8_t)s->state);
	d4_put_u8(w, s->third_party ? 1 : 0);
	d4_put_u64(w, s->created);
	d4_put_u64(w, s->updated);
	d4_put_u16(w, (uint16_t)s->hmac_key_len);
	d4_put_bytes(w, s->hmac_key, s->hmac_key_len);
	put_str(w, s->description);
	put_str(w, s->mail);
	d4_put_u32(w, st->max_payload);
	d4_put_u64(w, st->rate_limit_bps);
	d4_put_u8(w, st->has_cert_pin ? D4_CERT_PIN_SIZE : 0);
	if (st->has_cert_pin)
		d4_put_bytes(w, st->cert_pin, D4_CERT_PIN_SIZE);
	d4_put_u8(w, (uint8_t)st->n_groups);
	for (unsigned i = 0; i < st->n_groups; i++)
		put_str(w, st->groups[i]);
	return w->err ? -EINVAL : 0;
}

static int sensor_decode(const uint8_t uuid[D4_UUID_SIZE], const MDB_val *v, struct d4_sensor *s)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	struct d4_sensor_settings *st = &s->settings;
	const uint8_t *p;
	uint8_t state, flags, pin_len;

	memset(s, 0, sizeof(*s));
	memcpy(s->uuid, uuid, D4_UUID_SIZE);
	get_version(&r, SENSOR_REC_V);
	state = d4_get_u8(&r);
	flags = d4_get_u8(&r);
	if (state > D4_SENSOR_REJECTED || (flags & ~1u) != 0)
		r.err = true;
	s->state = (enum d4_sensor_state)state;
	s->third_party = flags & 1;
	s->created = d4_get_u64(&r);
	s->updated = d4_get_u64(&r);
	s->hmac_key_len = d4_get_u16(&r);
	if (s->hmac_key_len > D4_SENSOR_KEY_MAX) {
		r.err = true;
		s->hmac_key_len = 0;
	}
	p = d4_get_bytes(&r, s->hmac_key_len);
	if (p != NULL)
		memcpy(s->hmac_key, p, s->hmac_key_len);
	get_str(&r, s->description, D4_SENSOR_DESC_MAX);
	get_str(&r, s->mail, D4_SENSOR_MAIL_MAX);
	st->max_payload = d4_get_u32(&r);
	st->rate_limit_bps = d4_get_u64(&r);
	pin_len = d4_get_u8(&r);
	if (pin_len == D4_CERT_PIN_SIZE) {
		p = d4_get_bytes(&r, D4_CERT_PIN_SIZE);
		if (p != NULL) {
			memcpy(st->cert_pin, p, D4_CERT_PIN_SIZE);
			st->has_cert_pin = true;
		}
	} else if (pin_len != 0) {
		r.err = true;
	}
	st->n_groups = d4_get_u8(&r);
	if (st->n_groups > D4_SENSOR_GROUPS_MAX) {
		r.err = true;
		st->n_groups = 0;
	}
	for (unsigned i = 0; i < st->n_groups && !r.err; i++) {
		get_str(&r, st->groups[i], D4_GROUP_NAME_MAX);
		if (!r.err && !name_ok(st->groups[i], D4_GROUP_NAME_MAX))
			r.err = true;
	}
	return rec_done(&r);
}

static int sensor_write(struct d4_txn *t, const struct d4_sensor *s, unsigned flags)
{
	uint8_t buf[SENSOR_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc = sensor_encode(s, &w);

	if (rc == 0)
		rc = put_written(t, DB_SENSORS, s->uuid, D4_UUID_SIZE, &w, flags);
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

int d4_sensor_register(struct d4_txn *t, const struct d4_sensor *s, uint64_t now)
{
	struct d4_sensor copy;

	if (!uuid_is_v4(s->uuid) || !sensor_ok(s))
		return -EINVAL;
	copy = *s;
	copy.created = now;
	copy.updated = now;
	return sensor_write(t, &copy, MDB_NOOVERWRITE);
}

int d4_sensor_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor *out)
{
	MDB_val v;
	int rc = db_get(t, DB_SENSORS, uuid, D4_UUID_SIZE, &v);

	if (rc != 0)
		return rc;
	return sensor_decode(uuid, &v, out);
}

int d4_sensor_update(struct d4_txn *t, const struct d4_sensor *s, uint64_t now)
{
	struct d4_sensor cur, copy;
	int rc = d4_sensor_get(t, s->uuid, &cur);

	if (rc != 0)
		return rc;
	copy = *s;
	copy.state = cur.state; /* states change through d4_sensor_set_state() only */
	copy.created = cur.created;
	copy.updated = now;
	return sensor_write(t, &copy, 0);
}

int d4_sensor_set_settings(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                           const struct d4_sensor_settings *st, uint64_t now)
{
	struct d4_sensor cur;
	int rc;

	if (!settings_ok(st))
		return -EINVAL;
	if ((rc = d4_sensor_get(t, uuid, &cur)) != 0)
		return rc;
	cur.settings = *st;
	cur.updated = now;
	return sensor_write(t, &cur, 0);
}

int d4_sensor_set_state(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                        enum d4_sensor_state st, uint64_t now)
{
	struct d4_sensor cur;
	int rc;

	if ((unsigned)st > D4_SENSOR_REJECTED)
		return -EINVAL;
	if ((rc = d4_sensor_get(t, uuid, &cur)) != 0)
		return rc;
	if (cur.state == st)
		return 0;
	if (st == D4_SENSOR_PENDING)
		return -EPERM;
	cur.state = st;
	cur.updated = now;
	return sensor_write(t, &cur, 0);
}

int d4_sensor_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE])
{
	int rc = db_del(t, DB_SENSORS, uuid, D4_UUID_SIZE);

	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

struct sensor_walk {
	d4_sensor_cb cb;
	void *ctx;
	struct d4_sensor s;
};

static int sensor_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct sensor_walk *sw = ctx;
	int rc;

	(void)action;
	if (k->mv_size != D4_UUID_SIZE)
		return -EINVAL;
	if ((rc = sensor_decode(k->mv_data, v, &sw->s)) != 0)
		return rc;
	return sw->cb(&sw->s, sw->ctx);
}

int d4_sensor_iterate_from(struct d4_txn *t, const uint8_t *from, d4_sensor_cb cb, void *ctx)
{
	struct sensor_walk *sw = malloc(sizeof(*sw));
	int rc;

	if (sw == NULL)
		return -ENOMEM;
	sw->cb = cb;
	sw->ctx = ctx;
	rc = db_walk(t, DB_SENSORS, from, from != NULL ? D4_UUID_SIZE : 0, sensor_walk_fn, sw);
	free(sw);
	return rc;
}

int d4_sensor_iterate(struct d4_txn *t, d4_sensor_cb cb, void *ctx)
{
	return d4_sensor_iterate_from(t, NULL, cb, ctx);
}

/* ---- blocklists ---- */

/* Both blocklists share one value layout: version, created, expires, comment. */
static int block_encode(uint64_t created, uint64_t expires, const char *comment,
                        struct d4_writer *w)
{
	if (!str_fits(comment, D4_COMMENT_MAX))
		return -EINVAL;
	d4_put_u16(w, BLOCK_REC_V);
	d4_put_u64(w, created);
	d4_put_u64(w, expires);
	put_str(w, comment);
	return w->err ? -EINVAL : 0;
}

static int block_decode(const MDB_val *v, uint64_t *created, uint64_t *expires, char *comment)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);

	get_version(&r, BLOCK_REC_V);
	*created = d4_get_u64(&r);
	*expires = d4_get_u64(&r);
	get_str(&r, comment, D4_COMMENT_MAX);
	return rec_done(&r);
}

int d4_block_uuid_put(struct d4_txn *t, const struct d4_block_uuid *b)
{
	uint8_t buf[SMALL_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc = block_encode(b->created, b->expires, b->comment, &w);

	if (rc == 0)
		rc = put_written(t, DB_BLOCK_UUID, b->uuid, D4_UUID_SIZE, &w, 0);
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

int d4_block_uuid_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_block_uuid *out)
{
	MDB_val v;
	int rc = db_get(t, DB_BLOCK_UUID, uuid, D4_UUID_SIZE, &v);

	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, uuid, D4_UUID_SIZE);
	return block_decode(&v, &out->created, &out->expires, out->comment);
}

int d4_block_uuid_check(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t now,
                        struct d4_block_uuid *out)
{
	struct d4_block_uuid b;
	int rc = d4_block_uuid_get(t, uuid, &b);

	if (rc != 0)
		return rc;
	if (!d4_block_active(b.expires, now))
		return -ENOENT;
	if (out != NULL)
		*out = b;
	return 0;
}

int d4_block_uuid_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE])
{
	int rc = db_del(t, DB_BLOCK_UUID, uuid, D4_UUID_SIZE);

	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

struct block_uuid_walk {
	d4_block_uuid_cb cb;
	void *ctx;
};

static int block_uuid_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx,
                              enum walk_action *action)
{
	struct block_uuid_walk *bw = ctx;
	struct d4_block_uuid b;
	int rc;

	(void)action;
	if (k->mv_size != D4_UUID_SIZE)
		return -EINVAL;
	memset(&b, 0, sizeof(b));
	memcpy(b.uuid, k->mv_data, D4_UUID_SIZE);
	if ((rc = block_decode(v, &b.created, &b.expires, b.comment)) != 0)
		return rc;
	return bw->cb(&b, bw->ctx);
}

int d4_block_uuid_iterate(struct d4_txn *t, d4_block_uuid_cb cb, void *ctx)
{
	struct block_uuid_walk bw = {cb, ctx};
	return db_walk(t, DB_BLOCK_UUID, NULL, 0, block_uuid_walk_fn, &bw);
}

/* block_ip key: start(16) | end(16), so ranges sort by start then end. */
static void ip_key(const struct d4_ip_range *r, uint8_t key[2 * D4_IP_SIZE])
{
	memcpy(key, r->start, D4_IP_SIZE);
	memcpy(key + D4_IP_SIZE, r->end, D4_IP_SIZE);
}

static int block_ip_from(const MDB_val *k, const MDB_val *v, struct d4_block_ip *b)
{
	if (k->mv_size != 2 * D4_IP_SIZE)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	memcpy(b->range.start, k->mv_data, D4_IP_SIZE);
	memcpy(b->range.end, (const uint8_t *)k->mv_data + D4_IP_SIZE, D4_IP_SIZE);
	if (d4_ip_cmp(b->range.start, b->range.end) > 0)
		return -EINVAL;
	return block_decode(v, &b->created, &b->expires, b->comment);
}

int d4_block_ip_put(struct d4_txn *t, const struct d4_block_ip *b)
{
	uint8_t buf[SMALL_REC_MAX], key[2 * D4_IP_SIZE];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc;

	if (d4_ip_cmp(b->range.start, b->range.end) > 0)
		return -EINVAL;
	rc = block_encode(b->created, b->expires, b->comment, &w);
	ip_key(&b->range, key);
	if (rc == 0)
		rc = put_written(t, DB_BLOCK_IP, key, sizeof(key), &w, 0);
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

int d4_block_ip_get(struct d4_txn *t, const struct d4_ip_range *r, struct d4_block_ip *out)
{
	uint8_t key[2 * D4_IP_SIZE];
	MDB_val v, k = {sizeof(key), key};
	int rc;

	ip_key(r, key);
	if ((rc = db_get(t, DB_BLOCK_IP, key, sizeof(key), &v)) != 0)
		return rc;
	return block_ip_from(&k, &v, out);
}

int d4_block_ip_delete(struct d4_txn *t, const struct d4_ip_range *r)
{
	uint8_t key[2 * D4_IP_SIZE];
	int rc;

	ip_key(r, key);
	rc = db_del(t, DB_BLOCK_IP, key, sizeof(key));
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

struct block_ip_walk {
	d4_block_ip_cb cb; /* iterate */
	void *ctx;
	const uint8_t *addr; /* match */
	uint64_t now;
	struct d4_block_ip *out;
	bool found;
};

static int block_ip_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx,
                            enum walk_action *action)
{
	struct block_ip_walk *bw = ctx;
	struct d4_block_ip b;
	int rc = block_ip_from(k, v, &b);

	if (rc != 0)
		return rc;
	if (bw->addr == NULL)
		return bw->cb(&b, bw->ctx);
	if (d4_ip_cmp(b.range.start, bw->addr) > 0) {
		*action = WALK_STOP; /* sorted by start: nothing further can hold addr */
		return 0;
	}
	if (d4_ip_in_range(bw->addr, &b.range) && d4_block_active(b.expires, bw->now)) {
		if (bw->out != NULL)
			*bw->out = b;
		bw->found = true;
		*action = WALK_STOP;
	}
	return 0;
}

int d4_block_ip_match(struct d4_txn *t, const uint8_t addr[D4_IP_SIZE], uint64_t now,
                      struct d4_block_ip *out)
{
	struct block_ip_walk bw = {NULL, NULL, addr, now, out, false};
	int rc = db_walk(t, DB_BLOCK_IP, NULL, 0, block_ip_walk_fn, &bw);

	if (rc != 0)
		return rc;
	return bw.found ? 0 : -ENOENT;
}

int d4_block_ip_iterate(struct d4_txn *t, d4_block_ip_cb cb, void *ctx)
{
	struct block_ip_walk bw = {cb, ctx, NULL, 0, NULL, false};
	return db_walk(t, DB_BLOCK_IP, NULL, 0, block_ip_walk_fn, &bw);
}

struct purge_walk {
	uint64_t now;
	size_t removed;
};

static int block_purge_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct purge_walk *pw = ctx;
	char comment[D4_COMMENT_MAX + 1];
	uint64_t created, expires;
	int rc = block_decode(v, &created, &expires, comment);

	(void)k;
	if (rc != 0)
		return rc;
	if (!d4_block_active(expires, pw->now)) {
		*action = WALK_DELETE;
		pw->removed++;
	}
	return 0;
}

int d4_block_purge_expired(struct d4_txn *t, uint64_t now, size_t *removed)
{
	struct purge_walk pw = {now, 0};
	int rc = db_walk(t, DB_BLOCK_UUID, NULL, 0, block_purge_fn, &pw);

	if (rc == 0)
		rc = db_walk(t, DB_BLOCK_IP, NULL, 0, block_purge_fn, &pw);
	if (rc == 0 && pw.removed > 0)
		t->policy_changed = true;
	if (removed != NULL)
		*removed = pw.removed;
	return rc;
}

/* ---- accepted types and meta-types ---- */

/* Both sets store a value of version and time added under the member as key. */
static int accept_set(struct d4_txn *t, enum db_id db, const void *key, size_t klen, bool accepted,
                      uint64_t now)
{
	uint8_t buf[16];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc;

	if (accepted) {
		d4_put_u16(&w, ACCEPT_REC_V);
		d4_put_u64(&w, now);
		rc = put_written(t, db, key, klen, &w, 0);
	} else {
		rc = db_del(t, db, key, klen);
		if (rc == -ENOENT)
			rc = 0; /* removing a member that is not there is not an error */
	}
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

static int accept_decode(const MDB_val *v, uint64_t *added)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);

	get_version(&r, ACCEPT_REC_V);
	*added = d4_get_u64(&r);
	return rec_done(&r);
}

int d4_type_set_accepted(struct d4_txn *t, uint8_t type, bool accepted, uint64_t now)
{
	return accept_set(t, DB_TYPES, &type, 1, accepted, now);
}

static int types_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	bool *out = ctx;
	uint64_t added;
	int rc;

	(void)action;
	if (k->mv_size != 1)
		return -EINVAL;
	if ((rc = accept_decode(v, &added)) != 0)
		return rc;
	out[*(const uint8_t *)k->mv_data] = true;
	return 0;
}

int d4_types_accepted(struct d4_txn *t, bool out[D4_TYPES])
{
	memset(out, 0, D4_TYPES * sizeof(out[0]));
	return db_walk(t, DB_TYPES, NULL, 0, types_walk_fn, out);
}

int d4_meta_type_set_accepted(struct d4_txn *t, const char *name, bool accepted, uint64_t now)
{
	if (!name_ok(name, D4_META_TYPE_MAX))
		return -EINVAL;
	return accept_set(t, DB_META_TYPES, name, strlen(name), accepted, now);
}

int d4_meta_type_check(struct d4_txn *t, const char *name)
{
	MDB_val v;
	uint64_t added;
	int rc;

	if (!name_ok(name, D4_META_TYPE_MAX))
		return -ENOENT; /* a name that cannot be stored is not accepted */
	if ((rc = db_get(t, DB_META_TYPES, name, strlen(name), &v)) != 0)
		return rc;
	return accept_decode(&v, &added);
}

struct meta_type_walk {
	d4_meta_type_cb cb;
	void *ctx;
};

static int meta_type_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx,
                             enum walk_action *action)
{
	struct meta_type_walk *mw = ctx;
	char name[D4_META_TYPE_MAX + 1];
	uint64_t added;
	int rc;

	(void)action;
	if (!name_bytes_ok(k->mv_data, k->mv_size, D4_META_TYPE_MAX))
		return -EINVAL;
	if ((rc = accept_decode(v, &added)) != 0)
		return rc;
	memcpy(name, k->mv_data, k->mv_size);
	name[k->mv_size] = '\0';
	return mw->cb(name, added, mw->ctx);
}

int d4_meta_type_iterate(struct d4_txn *t, d4_meta_type_cb cb, void *ctx)
{
	struct meta_type_walk mw = {cb, ctx};
	return db_walk(t, DB_META_TYPES, NULL, 0, meta_type_walk_fn, &mw);
}

/* ---- users ---- */

static const char *const role_names[] = {
	[D4_ROLE_ADMIN] = "admin",
	[D4_ROLE_OPERATOR] = "operator",
	[D4_ROLE_READ_ONLY] = "read-only",
	[D4_ROLE_SENSOR_REGISTER] = "sensor-register",
};

static bool role_ok(unsigned r)
{
	return r >= D4_ROLE_ADMIN && r <= D4_ROLE_SENSOR_REGISTER;
}

const char *d4_role_name(enum d4_role r)
{
	return role_ok((unsigned)r) ? role_names[r] : "invalid";
}

int d4_role_from_name(const char *name)
{
	for (unsigned r = D4_ROLE_ADMIN; r <= D4_ROLE_SENSOR_REGISTER; r++)
		if (strcmp(name, role_names[r]) == 0)
			return (int)r;
	return -1;
}

static int user_encode(const struct d4_user *u, struct d4_writer *w)
{
	if (!name_ok(u->name, D4_USER_NAME_MAX) || !role_ok((unsigned)u->role) ||
	    !str_fits(u->password_hash, D4_PWHASH_MAX))
		return -EINVAL;
	d4_put_u16(w, USER_REC_V);
	d4_put_u8(w, (uint8_t)u->role);
	d4_put_u8(w, u->must_change ? 1 : 0);
	d4_put_u64(w, u->created);
	d4_put_u64(w, u->last_login);
	put_str(w, u->password_hash);
	return w->err ? -EINVAL : 0;
}

static int user_decode(const MDB_val *k, const MDB_val *v, struct d4_user *u)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	uint8_t role, flags;

	memset(u, 0, sizeof(*u));
	if (!name_bytes_ok(k->mv_data, k->mv_size, D4_USER_NAME_MAX))
		return -EINVAL;
	memcpy(u->name, k->mv_data, k->mv_size);
	get_version(&r, USER_REC_V);
	role = d4_get_u8(&r);
	flags = d4_get_u8(&r);
	if (!role_ok(role) || (flags & ~1u) != 0)
		r.err = true;
	u->role = (enum d4_role)role;
	u->must_change = flags & 1;
	u->created = d4_get_u64(&r);
	u->last_login = d4_get_u64(&r);
	get_str(&r, u->password_hash, D4_PWHASH_MAX);
	return rec_done(&r);
}

static int user_write(struct d4_txn *t, const struct d4_user *u, unsigned flags)
{
	uint8_t buf[SMALL_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc = user_encode(u, &w);

	if (rc == 0)
		rc = put_written(t, DB_USERS, u->name, strlen(u->name), &w, flags);
	return rc;
}

int d4_user_add(struct d4_txn *t, const struct d4_user *u)
{
	return user_write(t, u, MDB_NOOVERWRITE);
}

int d4_user_get(struct d4_txn *t, const char *name, struct d4_user *out)
{
	MDB_val v, k;
	int rc;

	if (!name_ok(name, D4_USER_NAME_MAX))
		return -EINVAL;
	if ((rc = db_get(t, DB_USERS, name, strlen(name), &v)) != 0)
		return rc;
	k.mv_size = strlen(name);
	k.mv_data = (void *)name;
	return user_decode(&k, &v, out);
}

int d4_user_update(struct d4_txn *t, const struct d4_user *u)
{
	struct d4_user cur;
	int rc = d4_user_get(t, u->name, &cur);

	if (rc != 0)
		return rc;
	return user_write(t, u, 0);
}

int d4_user_touch_login(struct d4_txn *t, const char *name, uint64_t now)
{
	struct d4_user u;
	int rc = d4_user_get(t, name, &u);

	if (rc != 0)
		return rc;
	u.last_login = now;
	return user_write(t, &u, 0);
}

struct user_walk {
	d4_user_cb cb;
	void *ctx;
};

static int user_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct user_walk *uw = ctx;
	struct d4_user u;
	int rc = user_decode(k, v, &u);

	(void)action;
	if (rc != 0)
		return rc;
	return uw->cb(&u, uw->ctx);
}

int d4_user_iterate(struct d4_txn *t, d4_user_cb cb, void *ctx)
{
	struct user_walk uw = {cb, ctx};
	return db_walk(t, DB_USERS, NULL, 0, user_walk_fn, &uw);
}

/* ---- tokens ---- */

int d4_token_hash(const char *token, size_t len, uint8_t out[D4_TOKEN_HASH_SIZE])
{
	unsigned n = 0;

	if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != D4_TOKEN_HASH_SIZE)
		return -EIO;
	return 0;
}

static int token_encode(const struct d4_token *tk, struct d4_writer *w)
{
	if (!name_ok(tk->user, D4_USER_NAME_MAX) || !str_fits(tk->description, D4_TOKEN_DESC_MAX))
		return -EINVAL;
	d4_put_u16(w, TOKEN_REC_V);
	put_str(w, tk->user);
	put_str(w, tk->description);
	d4_put_u64(w, tk->created);
	d4_put_u64(w, tk->last_used);
	return w->err ? -EINVAL : 0;
}

static int token_decode(const MDB_val *k, const MDB_val *v, struct d4_token *tk)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);

	memset(tk, 0, sizeof(*tk));
	if (k->mv_size != D4_TOKEN_HASH_SIZE)
		return -EINVAL;
	memcpy(tk->hash, k->mv_data, D4_TOKEN_HASH_SIZE);
	get_version(&r, TOKEN_REC_V);
	get_str(&r, tk->user, D4_USER_NAME_MAX);
	get_str(&r, tk->description, D4_TOKEN_DESC_MAX);
	tk->created = d4_get_u64(&r);
	tk->last_used = d4_get_u64(&r);
	if (!r.err && !name_ok(tk->user, D4_USER_NAME_MAX))
		r.err = true;
	return rec_done(&r);
}

static int token_write(struct d4_txn *t, const struct d4_token *tk, unsigned flags)
{
	uint8_t buf[SMALL_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc = token_encode(tk, &w);

	if (rc == 0)
		rc = put_written(t, DB_TOKENS, tk->hash, D4_TOKEN_HASH_SIZE, &w, flags);
	return rc;
}

int d4_token_add(struct d4_txn *t, const struct d4_token *tk)
{
	struct d4_user u;
	int rc = d4_user_get(t, tk->user, &u);

	if (rc != 0)
		return rc;
	return token_write(t, tk, MDB_NOOVERWRITE);
}

int d4_token_get(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE], struct d4_token *out)
{
	MDB_val v, k = {D4_TOKEN_HASH_SIZE, (void *)hash};
	int rc = db_get(t, DB_TOKENS, hash, D4_TOKEN_HASH_SIZE, &v);

	if (rc != 0)
		return rc;
	return token_decode(&k, &v, out);
}

int d4_token_touch(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE], uint64_t now)
{
	struct d4_token tk;
	int rc = d4_token_get(t, hash, &tk);

	if (rc != 0)
		return rc;
	tk.last_used = now;
	return token_write(t, &tk, 0);
}

int d4_token_delete(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE])
{
	return db_del(t, DB_TOKENS, hash, D4_TOKEN_HASH_SIZE);
}

struct token_walk {
	d4_token_cb cb;      /* iterate */
	void *ctx;
	const char *delete_user; /* d4_user_delete */
};

static int token_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct token_walk *tw = ctx;
	struct d4_token tk;
	int rc = token_decode(k, v, &tk);

	if (rc != 0)
		return rc;
	if (tw->delete_user != NULL) {
		if (strcmp(tk.user, tw->delete_user) == 0)
			*action = WALK_DELETE;
		return 0;
	}
	return tw->cb(&tk, tw->ctx);
}

int d4_token_iterate(struct d4_txn *t, d4_token_cb cb, void *ctx)
{
	struct token_walk tw = {cb, ctx, NULL};
	return db_walk(t, DB_TOKENS, NULL, 0, token_walk_fn, &tw);
}

int d4_user_delete(struct d4_txn *t, const char *name)
{
	struct token_walk tw = {NULL, NULL, name};
	int rc;

	if (!name_ok(name, D4_USER_NAME_MAX))
		return -EINVAL;
	if ((rc = db_del(t, DB_USERS, name, strlen(name))) != 0)
		return rc;
	return db_walk(t, DB_TOKENS, NULL, 0, token_walk_fn, &tw);
}

/* ---- kick requests ---- */

static int kick_decode(const MDB_val *v, uint64_t *requested)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);

	get_version(&r, KICK_REC_V);
	*requested = d4_get_u64(&r);
	return rec_done(&r);
}

int d4_kick_request(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t now)
{
	uint8_t buf[16];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	int rc;

	d4_put_u16(&w, KICK_REC_V);
	d4_put_u64(&w, now);
	rc = put_written(t, DB_KICKS, uuid, D4_UUID_SIZE, &w, 0);
	if (rc == 0)
		t->policy_changed = true;
	return rc;
}

int d4_kick_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t *requested)
{
	MDB_val v;
	int rc = db_get(t, DB_KICKS, uuid, D4_UUID_SIZE, &v);

	if (rc != 0)
		return rc;
	return kick_decode(&v, requested);
}

int d4_kick_clear(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t requested)
{
	uint64_t cur;
	int rc = d4_kick_get(t, uuid, &cur);

	if (rc != 0 && rc != -EINVAL)
		return rc;
	if (rc == 0 && requested != 0 && cur != requested)
		return -ENOENT;
	/* A malformed request is cleared too: it can never be acted on. */
	return db_del(t, DB_KICKS, uuid, D4_UUID_SIZE);
}

struct kick_walk {
	d4_kick_cb cb; /* iterate */
	void *ctx;
	bool purge;
	uint64_t before;
	size_t removed;
};

static int kick_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct kick_walk *kw = ctx;
	uint64_t requested;
	int rc;

	if (k->mv_size != D4_UUID_SIZE)
		return -EINVAL;
	rc = kick_decode(v, &requested);
	if (kw->purge) {
		if (rc != 0 || requested < kw->before) {
			*action = WALK_DELETE;
			kw->removed++;
		}
		return 0;
	}
	if (rc != 0)
		return rc;
	return kw->cb(k->mv_data, requested, kw->ctx);
}

int d4_kick_iterate(struct d4_txn *t, d4_kick_cb cb, void *ctx)
{
	struct kick_walk kw = {cb, ctx, false, 0, 0};
	return db_walk(t, DB_KICKS, NULL, 0, kick_walk_fn, &kw);
}

int d4_kick_purge(struct d4_txn *t, uint64_t before, size_t *removed)
{
	struct kick_walk kw = {NULL, NULL, true, before, 0};
	int rc = db_walk(t, DB_KICKS, NULL, 0, kick_walk_fn, &kw);

	if (removed != NULL)
		*removed = kw.removed;
	return rc;
}

/* ---- statistics ---- */

static int stats_encode(const struct d4_sensor_stats *st, struct d4_writer *w)
{
	const struct d4_last_error *le = &st->last_error;
	uint16_t n_types = 0;
	uint8_t n_reasons = 0;

	for (unsigned i = 0; i < D4_TYPES; i++)
		if (st->types[i].packets || st->types[i].bytes)
			n_types++;
	for (unsigned i = 1; i < D4_R_COUNT; i++)
		if (st->refusals[i])
			n_reasons++;

	d4_put_u16(w, STATS_REC_V);
	d4_put_u64(w, st->first_seen);
	d4_put_u64(w, st->last_seen);
	d4_put_u64(w, st->total.packets);
	d4_put_u64(w, st->total.bytes);
	d4_put_u32(w, st->active_sessions);
	d4_put_u16(w, n_types);
	for (unsigned i = 0; i < D4_TYPES; i++) {
		if (st->types[i].packets || st->types[i].bytes) {
			d4_put_u8(w, (uint8_t)i);
			d4_put_u64(w, st->types[i].packets);
			d4_put_u64(w, st->types[i].bytes);
		}
	}
	d4_put_u8(w, (uint8_t)st->n_meta);
	for (unsigned i = 0; i < st->n_meta; i++) {
		put_str(w, st->meta[i].name);
		d4_put_u64(w, st->meta[i].c.packets);
		d4_put_u64(w, st->meta[i].c.bytes);
	}
	d4_put_u8(w, (uint8_t)st->n_addrs);
	for (unsigned i = 0; i < st->n_addrs; i++) {
		d4_put_bytes(w, st->addrs[i].addr, D4_IP_SIZE);
		d4_put_u64(w, st->addrs[i].time);
	}
	d4_put_u8(w, n_reasons);
	for (unsigned i = 1; i < D4_R_COUNT; i++) {
		if (st->refusals[i]) {
			d4_put_u8(w, (uint8_t)i);
			d4_put_u64(w, st->refusals[i]);
		}
	}
	d4_put_u64(w, le->time);
	d4_put_u8(w, (uint8_t)le->reason);
	d4_put_bytes(w, le->peer, D4_IP_SIZE);
	d4_put_u16(w, le->peer_port);
	put_str(w, le->text);
	d4_put_u64(w, st->skewed);
	d4_put_u64(w, (uint64_t)st->last_skew);
	return w->err ? -EINVAL : 0;
}

static int stats_decode(const uint8_t uuid[D4_UUID_SIZE], const MDB_val *v,
                        struct d4_sensor_stats *st)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	struct d4_last_error *le = &st->last_error;
	const uint8_t *p;
	unsigned n;

	memset(st, 0, sizeof(*st));
	memcpy(st->uuid, uuid, D4_UUID_SIZE);
	get_version(&r, STATS_REC_V);
	st->first_seen = d4_get_u64(&r);
	st->last_seen = d4_get_u64(&r);
	st->total.packets = d4_get_u64(&r);
	st->total.bytes = d4_get_u64(&r);
	st->active_sessions = d4_get_u32(&r);
	n = d4_get_u16(&r);
	if (n > D4_TYPES)
		r.err = true;
	for (unsigned i = 0; i < n && !r.err; i++) {
		uint8_t type = d4_get_u8(&r);
		st->types[type].packets = d4_get_u64(&r);
		st->types[type].bytes = d4_get_u64(&r);
	}
	st->n_meta = d4_get_u8(&r);
	if (st->n_meta > D4_STATS_META_MAX) {
		r.err = true;
		st->n_meta = 0;
	}
	for (unsigned i = 0; i < st->n_meta && !r.err; i++) {
		get_str(&r, st->meta[i].name, D4_META_TYPE_MAX);
		if (!r.err && !name_ok(st->meta[i].name, D4_META_TYPE_MAX))
			r.err = true;
		st->meta[i].c.packets = d4_get_u64(&r);
		st->meta[i].c.bytes = d4_get_u64(&r);
	}
	st->n_addrs = d4_get_u8(&r);
	if (st->n_addrs > D4_STATS_ADDRS) {
		r.err = true;
		st->n_addrs = 0;
	}
	for (unsigned i = 0; i < st->n_addrs && !r.err; i++) {
		p = d4_get_bytes(&r, D4_IP_SIZE);
		if (p != NULL)
			memcpy(st->addrs[i].addr, p, D4_IP_SIZE);
		st->addrs[i].time = d4_get_u64(&r);
	}
	n = d4_get_u8(&r);
	for (unsigned i = 0; i < n && !r.err; i++) {
		uint8_t reason = d4_get_u8(&r);
		uint64_t count = d4_get_u64(&r);
		if (reason == D4_OK)
			r.err = true;
		/* A reason this program does not know was written by a newer one: skipped. */
		else if (reason < D4_R_COUNT)
			st->refusals[reason] = count;
	}
	le->time = d4_get_u64(&r);
	le->reason = (enum d4_reason)d4_get_u8(&r);
	if ((unsigned)le->reason >= D4_R_COUNT)
		le->reason = D4_OK;
	p = d4_get_bytes(&r, D4_IP_SIZE);
	if (p != NULL)
		memcpy(le->peer, p, D4_IP_SIZE);
	le->peer_port = d4_get_u16(&r);
	get_str(&r, le->text, D4_ERROR_TEXT_MAX);
	st->skewed = d4_get_u64(&r);
	st->last_skew = (int64_t)d4_get_u64(&r);
	return rec_done(&r);
}

static bool delta_ok(const struct d4_stats_delta *d)
{
	if (d->meta_type != NULL && !name_ok(d->meta_type, D4_META_TYPE_MAX))
		return false;
	return (unsigned)d->refusal < D4_R_COUNT;
}

static void note_addr(struct d4_sensor_stats *st, const uint8_t addr[D4_IP_SIZE], uint64_t time)
{
	unsigned i, n = st->n_addrs;

	/* The same address again moves to the front: each address appears once. */
	for (i = 0; i < n; i++)
		if (memcmp(st->addrs[i].addr, addr, D4_IP_SIZE) == 0)
			break;
	if (i == n && n == D4_STATS_ADDRS)
		i = n - 1; /* full: the oldest falls off */
	else if (i == n)
		st->n_addrs++;
	memmove(&st->addrs[1], &st->addrs[0], i * sizeof(st->addrs[0]));
	memcpy(st->addrs[0].addr, addr, D4_IP_SIZE);
	st->addrs[0].time = time;
}

static void count_meta(struct d4_sensor_stats *st, const char *name, uint64_t packets,
                       uint64_t bytes)
{
	unsigned i;

	for (i = 0; i < st->n_meta; i++)
		if (strcmp(st->meta[i].name, name) == 0)
			break;
	if (i == st->n_meta) {
		if (st->n_meta == D4_STATS_META_MAX)
			return; /* counted in the totals and per type only; see docs/store.md */
		st->n_meta++;
		memset(&st->meta[i], 0, sizeof(st->meta[i]));
		memcpy(st->meta[i].name, name, strlen(name) + 1);
	}
	st->meta[i].c.packets += packets;
	st->meta[i].c.bytes += bytes;
}

static void stats_add(struct d4_sensor_stats *st, const struct d4_stats_delta *d)
{
	if (d->time != 0) {
		if (st->first_seen == 0 || d->time < st->first_seen)
			st->first_seen = d->time;
		if (d->time > st->last_seen)
			st->last_seen = d->time;
	}
	if (d->packets || d->bytes) {
		st->total.packets += d->packets;
		st->total.bytes += d->bytes;
		st->types[d->type].packets += d->packets;
		st->types[d->type].bytes += d->bytes;
		if (d->meta_type != NULL)
			count_meta(st, d->meta_type, d->packets, d->bytes);
	}
	if (d->peer != NULL)
		note_addr(st, d->peer, d->time);
	if (d->refusal != D4_OK)
		st->refusals[d->refusal] += d->refusals ? d->refusals : 1;
	if ((d->refusal != D4_OK || d->error != NULL) && d->time >= st->last_error.time) {
		struct d4_last_error *le = &st->last_error;
		const char *text = d->error != NULL ? d->error : "";
		size_t n = strnlen(text, D4_ERROR_TEXT_MAX); /* longer texts are cut */

		le->time = d->time;
		le->reason = d->refusal;
		if (d->peer != NULL)
			memcpy(le->peer, d->peer, D4_IP_SIZE);
		else
			memset(le->peer, 0, D4_IP_SIZE);
		le->peer_port = d->peer_port;
		memcpy(le->text, text, n);
		le->text[n] = '\0';
	}
	if (d->skewed) {
		st->skewed += d->skewed;
		st->last_skew = d->skew;
	}
	if (d->active_sessions >= 0)
		st->active_sessions =
		        d->active_sessions > UINT32_MAX ? UINT32_MAX : (uint32_t)d->active_sessions;
}

/* daily key: uuid(16) | day u32 BE | type u8 | meta-type name (0..64 bytes) */
static size_t daily_key(const uint8_t uuid[D4_UUID_SIZE], uint32_t day, uint8_t type,
                        const char *meta, uint8_t key[DAILY_KEY_MAX])
{
	size_t n = meta != NULL ? strlen(meta) : 0;

	memcpy(key, uuid, D4_UUID_SIZE);
	d4_put_be32(key + D4_UUID_SIZE, day);
	key[D4_UUID_SIZE + 4] = type;
	if (n != 0)
		memcpy(key + DAILY_KEY_MIN, meta, n);
	return DAILY_KEY_MIN + n;
}

static int daily_decode(const MDB_val *k, const MDB_val *v, struct d4_daily *d)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	const uint8_t *key = k->mv_data;
	size_t meta_len;

	memset(d, 0, sizeof(*d));
	if (k->mv_size < DAILY_KEY_MIN || k->mv_size > DAILY_KEY_MAX)
		return -EINVAL;
	meta_len = k->mv_size - DAILY_KEY_MIN;
	if (meta_len != 0 && !name_bytes_ok(key + DAILY_KEY_MIN, meta_len, D4_META_TYPE_MAX))
		return -EINVAL;
	memcpy(d->uuid, key, D4_UUID_SIZE);
	d->day = d4_be32(key + D4_UUID_SIZE);
	d->type = key[D4_UUID_SIZE + 4];
	memcpy(d->meta_type, key + DAILY_KEY_MIN, meta_len);
	d->meta_type[meta_len] = '\0';
	get_version(&r, DAILY_REC_V);
	d->c.packets = d4_get_u64(&r);
	d->c.bytes = d4_get_u64(&r);
	return rec_done(&r);
}

static int daily_add(struct d4_txn *t, const struct d4_stats_delta *d)
{
	uint8_t key[DAILY_KEY_MAX], buf[32];
	size_t klen = daily_key(d->uuid, d4_day_from_time(d->time), d->type, d->meta_type, key);
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));
	struct d4_daily cur;
	MDB_val v, k = {klen, key};
	int rc = db_get(t, DB_DAILY, key, klen, &v);

	if (rc == 0)
		rc = daily_decode(&k, &v, &cur);
	else if (rc == -ENOENT) {
		memset(&cur, 0, sizeof(cur));
		rc = 0;
	}
	if (rc != 0)
		return rc;
	d4_put_u16(&w, DAILY_REC_V);
	d4_put_u64(&w, cur.c.packets + d->packets);
	d4_put_u64(&w, cur.c.bytes + d->bytes);
	return put_written(t, DB_DAILY, key, klen, &w, 0);
}

/* The sensor record d4_stats_apply() is working on, and its encode buffer. */
struct stats_work {
	bool loaded;
	struct d4_sensor_stats st;
	uint8_t buf[STATS_REC_MAX];
};

static int stats_load(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct stats_work *sw)
{
	MDB_val v;
	int rc = db_get(t, DB_STATS, uuid, D4_UUID_SIZE, &v);

	if (rc == -ENOENT) {
		memset(&sw->st, 0, sizeof(sw->st));
		memcpy(sw->st.uuid, uuid, D4_UUID_SIZE);
		rc = 0;
	} else if (rc == 0) {
		rc = stats_decode(uuid, &v, &sw->st);
	}
	sw->loaded = rc == 0;
	return rc;
}

static int stats_flush(struct d4_txn *t, struct stats_work *sw)
{
	struct d4_writer w = d4_writer_make(sw->buf, sizeof(sw->buf));
	int rc = stats_encode(&sw->st, &w);

	if (rc == 0)
		rc = put_written(t, DB_STATS, sw->st.uuid, D4_UUID_SIZE, &w, 0);
	sw->loaded = false;
	return rc;
}

int d4_stats_apply(struct d4_txn *t, const struct d4_stats_delta *deltas, size_t n)
{
	struct stats_work *sw;
	int rc = 0;

	if (t == NULL || t->txn == NULL)
		return -EINVAL;
	if (!t->write)
		return -EACCES;
	for (size_t i = 0; i < n; i++)
		if (!delta_ok(&deltas[i]))
			return -EINVAL;
	if ((sw = malloc(sizeof(*sw))) == NULL)
		return -ENOMEM;
	sw->loaded = false;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct d4_stats_delta *d = &deltas[i];

		/* Consecutive deltas of one sensor share one decode and one put. */
		if (sw->loaded && memcmp(sw->st.uuid, d->uuid, D4_UUID_SIZE) != 0)
			rc = stats_flush(t, sw);
		if (rc == 0 && !sw->loaded)
			rc = stats_load(t, d->uuid, sw);
		if (rc != 0)
			break;
		stats_add(&sw->st, d);
		if (d->packets || d->bytes)
			rc = daily_add(t, d);
	}
	if (rc == 0 && sw->loaded)
		rc = stats_flush(t, sw);
	free(sw);
	return rc;
}

int d4_stats_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor_stats *out)
{
	MDB_val v;
	int rc = db_get(t, DB_STATS, uuid, D4_UUID_SIZE, &v);

	if (rc != 0)
		return rc;
	return stats_decode(uuid, &v, out);
}

int d4_stats_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE])
{
	return db_del(t, DB_STATS, uuid, D4_UUID_SIZE);
}

struct stats_walk {
	d4_stats_cb cb; /* iterate; NULL: reset sessions */
	void *ctx;
	struct d4_txn *t;
	struct stats_work work;
};

static int stats_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct stats_walk *sw = ctx;
	int rc;

	(void)action;
	if (k->mv_size != D4_UUID_SIZE)
		return -EINVAL;
	if ((rc = stats_decode(k->mv_data, v, &sw->work.st)) != 0)
		return rc;
	if (sw->cb != NULL)
		return sw->cb(&sw->work.st, sw->ctx);
	if (sw->work.st.active_sessions == 0)
		return 0;
	/* Overwriting the current key's value keeps the cursor where it is. */
	sw->work.st.active_sessions = 0;
	return stats_flush(sw->t, &sw->work);
}

static int stats_walk(struct d4_txn *t, d4_stats_cb cb, void *ctx)
{
	struct stats_walk *sw = malloc(sizeof(*sw));
	int rc;

	if (sw == NULL)
		return -ENOMEM;
	sw->cb = cb;
	sw->ctx = ctx;
	sw->t = t;
	rc = db_walk(t, DB_STATS, NULL, 0, stats_walk_fn, sw);
	free(sw);
	return rc;
}

int d4_stats_iterate(struct d4_txn *t, d4_stats_cb cb, void *ctx)
{
	return stats_walk(t, cb, ctx);
}

int d4_stats_reset_sessions(struct d4_txn *t)
{
	if (t != NULL && !t->write)
		return -EACCES;
	return stats_walk(t, NULL, NULL);
}

/* Adds one to a 16-byte big-endian number; false when it wraps. */
static bool uuid_next(uint8_t u[D4_UUID_SIZE])
{
	for (int i = D4_UUID_SIZE - 1; i >= 0; i--)
		if (++u[i] != 0)
			return true;
	return false;
}

int d4_daily_iterate(struct d4_txn *t, const uint8_t *uuid, uint32_t day_from, uint32_t day_to,
                     d4_daily_cb cb, void *ctx)
{
	MDB_cursor *cur = NULL;
	uint8_t seek[DAILY_KEY_MAX];
	uint8_t zero[D4_UUID_SIZE] = {0};
	MDB_val k, v;
	struct d4_daily d;
	int rc;

	if (t == NULL || t->txn == NULL || day_from > day_to)
		return -EINVAL;
	if ((rc = mdb_cursor_open(t->txn, t->store->dbi[DB_DAILY], &cur)) != 0)
		return mdb_rc(rc);
	k.mv_size = daily_key(uuid != NULL ? uuid : zero, day_from, 0, NULL, seek);
	k.mv_data = seek;
	rc = mdb_rc(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
	while (rc == 0) {
		if ((rc = daily_decode(&k, &v, &d)) != 0)
			goto out;
		if (uuid != NULL && memcmp(d.uuid, uuid, D4_UUID_SIZE) != 0)
			break; /* past this sensor */
		if (d.day > day_to || d.day < day_from) {
			/*
			 * Outside the range: skip to day_from of this sensor (day too
			 * early) or of the next one (too late). Only reached when
			 * walking every sensor: one seek per sensor, not per record.
			 */
			if (uuid != NULL || (d.day > day_to && !uuid_next(d.uuid)))
				break;
			k.mv_size = daily_key(d.uuid, day_from, 0, NULL, seek);
			k.mv_data = seek;
			rc = mdb_rc(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
			continue;
		}
		if ((rc = cb(&d, ctx)) != 0)
			goto out;
		rc = mdb_rc(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
	}
	if (rc == -ENOENT)
		rc = 0; /* the end of the database */
out:
	mdb_cursor_close(cur);
	return rc;
}

struct daily_purge {
	uint32_t before;
	size_t removed;
};

static int daily_purge_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct daily_purge *dp = ctx;

	(void)v;
	if (k->mv_size < DAILY_KEY_MIN)
		return -EINVAL;
	if (d4_be32((const uint8_t *)k->mv_data + D4_UUID_SIZE) < dp->before) {
		*action = WALK_DELETE;
		dp->removed++;
	}
	return 0;
}

int d4_daily_purge(struct d4_txn *t, uint32_t before_day, size_t *removed)
{
	struct daily_purge dp = {before_day, 0};
	int rc = db_walk(t, DB_DAILY, NULL, 0, daily_purge_fn, &dp);

	if (removed != NULL)
		*removed = dp.removed;
	return rc;
}

/* ---- analyzer queues ---- */

static const char *const queue_state_names[] = {"stopped", "running", "backoff", "failed"};

const char *d4_queue_state_name(enum d4_queue_state st)
{
	if ((unsigned)st < sizeof(queue_state_names) / sizeof(queue_state_names[0]))
		return queue_state_names[st];
	return "invalid";
}

/* queue v2 flags */
#define QUEUE_F_PAUSED 0x01u
#define QUEUE_F_DROP_OLDEST 0x02u
#define QUEUE_F_BACKPRESSURE 0x04u
#define QUEUE_F_ALL 0x07u

static int queue_decode(const MDB_val *k, const MDB_val *v, struct d4_queue_stats *q)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	uint16_t version;
	uint8_t state;

	memset(q, 0, sizeof(*q));
	if (!name_bytes_ok(k->mv_data, k->mv_size, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	memcpy(q->name, k->mv_data, k->mv_size);
	version = d4_get_u16(&r);
	if (version != 1 && version != QUEUE_REC_V)
		r.err = true;
	q->received = d4_get_u64(&r);
	q->delivered = d4_get_u64(&r);
	q->acknowledged = d4_get_u64(&r);
	q->in_memory = d4_get_u64(&r);
	q->spooled = d4_get_u64(&r);
	q->dropped = d4_get_u64(&r);
	q->restarts = d4_get_u32(&r);
	state = d4_get_u8(&r);
	if (state > D4_QUEUE_FAILED)
		r.err = true;
	q->state = (enum d4_queue_state)state;
	q->updated = d4_get_u64(&r);
	q->last_error_time = d4_get_u64(&r);
	get_str(&r, q->last_error, D4_ERROR_TEXT_MAX);
	if (version >= 2) {
		uint8_t flags = d4_get_u8(&r);
		if (flags & ~QUEUE_F_ALL)
			r.err = true;
		q->paused = (flags & QUEUE_F_PAUSED) != 0;
		q->drop_oldest = (flags & QUEUE_F_DROP_OLDEST) != 0;
		q->backpressure = (flags & QUEUE_F_BACKPRESSURE) != 0;
		q->emptied = d4_get_u64(&r);
	}
	return rec_done(&r);
}

int d4_queue_put(struct d4_txn *t, const struct d4_queue_stats *q)
{
	uint8_t buf[SMALL_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));

	if (!name_ok(q->name, D4_QUEUE_NAME_MAX) || (unsigned)q->state > D4_QUEUE_FAILED ||
	    !str_fits(q->last_error, D4_ERROR_TEXT_MAX))
		return -EINVAL;
	d4_put_u16(&w, QUEUE_REC_V);
	d4_put_u64(&w, q->received);
	d4_put_u64(&w, q->delivered);
	d4_put_u64(&w, q->acknowledged);
	d4_put_u64(&w, q->in_memory);
	d4_put_u64(&w, q->spooled);
	d4_put_u64(&w, q->dropped);
	d4_put_u32(&w, q->restarts);
	d4_put_u8(&w, (uint8_t)q->state);
	d4_put_u64(&w, q->updated);
	d4_put_u64(&w, q->last_error_time);
	put_str(&w, q->last_error);
	d4_put_u8(&w, (uint8_t)((q->paused ? QUEUE_F_PAUSED : 0) |
	                        (q->drop_oldest ? QUEUE_F_DROP_OLDEST : 0) |
	                        (q->backpressure ? QUEUE_F_BACKPRESSURE : 0)));
	d4_put_u64(&w, q->emptied);
	return put_written(t, DB_QUEUES, q->name, strlen(q->name), &w, 0);
}

int d4_queue_get(struct d4_txn *t, const char *name, struct d4_queue_stats *out)
{
	MDB_val v, k;
	int rc;

	if (!name_ok(name, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	if ((rc = db_get(t, DB_QUEUES, name, strlen(name), &v)) != 0)
		return rc;
	k.mv_size = strlen(name);
	k.mv_data = (void *)name;
	return queue_decode(&k, &v, out);
}

int d4_queue_delete(struct d4_txn *t, const char *name)
{
	if (!name_ok(name, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	return db_del(t, DB_QUEUES, name, strlen(name));
}

struct queue_walk {
	d4_queue_cb cb;
	void *ctx;
};

static int queue_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx, enum walk_action *action)
{
	struct queue_walk *qw = ctx;
	struct d4_queue_stats q;
	int rc = queue_decode(k, v, &q);

	(void)action;
	if (rc != 0)
		return rc;
	return qw->cb(&q, qw->ctx);
}

int d4_queue_iterate(struct d4_txn *t, d4_queue_cb cb, void *ctx)
{
	struct queue_walk qw = {cb, ctx};
	return db_walk(t, DB_QUEUES, NULL, 0, queue_walk_fn, &qw);
}

/* ---- analyzer queue control (written by d4-web and d4ctl, acted on by d4-dispatch) ---- */

#define QUEUE_CTL_F_PAUSED 0x01u

static int queue_ctl_decode(const MDB_val *k, const MDB_val *v, struct d4_queue_ctl *c)
{
	struct d4_reader r = d4_reader_make(v->mv_data, v->mv_size);
	uint8_t flags;

	memset(c, 0, sizeof(*c));
	if (!name_bytes_ok(k->mv_data, k->mv_size, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	memcpy(c->name, k->mv_data, k->mv_size);
	get_version(&r, QUEUE_CTL_REC_V);
	flags = d4_get_u8(&r);
	if (flags & ~QUEUE_CTL_F_PAUSED)
		r.err = true;
	c->paused = (flags & QUEUE_CTL_F_PAUSED) != 0;
	c->empty_requested = d4_get_u64(&r);
	c->empty_applied = d4_get_u64(&r);
	c->updated = d4_get_u64(&r);
	get_str(&r, c->by, D4_USER_NAME_MAX);
	return rec_done(&r);
}

static int queue_ctl_put(struct d4_txn *t, const struct d4_queue_ctl *c)
{
	uint8_t buf[SMALL_REC_MAX];
	struct d4_writer w = d4_writer_make(buf, sizeof(buf));

	if (!name_ok(c->name, D4_QUEUE_NAME_MAX) || !str_fits(c->by, D4_USER_NAME_MAX))
		return -EINVAL;
	d4_put_u16(&w, QUEUE_CTL_REC_V);
	d4_put_u8(&w, c->paused ? QUEUE_CTL_F_PAUSED : 0);
	d4_put_u64(&w, c->empty_requested);
	d4_put_u64(&w, c->empty_applied);
	d4_put_u64(&w, c->updated);
	put_str(&w, c->by);
	return put_written(t, DB_QUEUE_CTL, c->name, strlen(c->name), &w, 0);
}

int d4_queue_ctl_get(struct d4_txn *t, const char *name, struct d4_queue_ctl *out)
{
	MDB_val v, k;
	int rc;

	if (!name_ok(name, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	if ((rc = db_get(t, DB_QUEUE_CTL, name, strlen(name), &v)) != 0)
		return rc;
	k.mv_size = strlen(name);
	k.mv_data = (void *)name;
	return queue_ctl_decode(&k, &v, out);
}

/* The record to change: the stored one, or a fresh one (not paused, nothing requested). */
static int queue_ctl_load(struct d4_txn *t, const char *name, struct d4_queue_ctl *c)
{
	int rc = d4_queue_ctl_get(t, name, c);

	if (rc == -ENOENT) {
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", name);
		return 0;
	}
	return rc;
}

static int queue_ctl_request(struct d4_txn *t, struct d4_queue_ctl *c, const char *by,
                             uint64_t now)
{
	if (by == NULL)
		by = "";
	if (!str_fits(by, D4_USER_NAME_MAX))
		return -EINVAL;
	snprintf(c->by, sizeof(c->by), "%s", by);
	c->updated = now;
	return queue_ctl_put(t, c);
}

int d4_queue_ctl_set_paused(struct d4_txn *t, const char *name, bool paused, const char *by,
                            uint64_t now)
{
	struct d4_queue_ctl c;
	int rc = queue_ctl_load(t, name, &c);

	if (rc != 0)
		return rc;
	c.paused = paused;
	return queue_ctl_request(t, &c, by, now);
}

int d4_queue_ctl_request_empty(struct d4_txn *t, const char *name, const char *by, uint64_t now,
                               uint64_t *seq)
{
	struct d4_queue_ctl c;
	int rc = queue_ctl_load(t, name, &c);

	if (rc != 0)
		return rc;
	if (c.empty_requested == UINT64_MAX)
		return -EINVAL;
	c.empty_requested++;
	if ((rc = queue_ctl_request(t, &c, by, now)) == 0 && seq != NULL)
		*seq = c.empty_requested;
	return rc;
}

int d4_queue_ctl_mark_applied(struct d4_txn *t, const char *name, uint64_t seq)
{
	struct d4_queue_ctl c;
	int rc = d4_queue_ctl_get(t, name, &c);

	if (rc != 0)
		return rc;
	if (seq <= c.empty_applied)
		return 0;
	c.empty_applied = seq;
	return queue_ctl_put(t, &c);
}

int d4_queue_ctl_delete(struct d4_txn *t, const char *name)
{
	if (!name_ok(name, D4_QUEUE_NAME_MAX))
		return -EINVAL;
	return db_del(t, DB_QUEUE_CTL, name, strlen(name));
}

struct queue_ctl_walk {
	d4_queue_ctl_cb cb;
	void *ctx;
};

static int queue_ctl_walk_fn(const MDB_val *k, const MDB_val *v, void *ctx,
                             enum walk_action *action)
{
	struct queue_ctl_walk *qw = ctx;
	struct d4_queue_ctl c;
	int rc = queue_ctl_decode(k, v, &c);

	(void)action;
	if (rc != 0)
		return rc;
	return qw->cb(&c, qw->ctx);
}

int d4_queue_ctl_iterate(struct d4_txn *t, d4_queue_ctl_cb cb, void *ctx)
{
	struct queue_ctl_walk qw = {cb, ctx};
	return db_walk(t, DB_QUEUE_CTL, NULL, 0, queue_ctl_walk_fn, &qw);
}

/* ---- one-shot forms ---- */

/* Ends a one-shot transaction: commit a successful write, abort anything else. */
static int oneshot_end(struct d4_txn *t, int rc)
{
	if (rc == 0 && t->write)
		return d4_txn_commit(t);
	d4_txn_abort(t);
	return rc;
}

#define ONESHOT(store, write, call)                                                                \
	do {                                                                                       \
		struct d4_txn t_;                                                                  \
		int rc_ = d4_txn_begin((store), &t_, (write));                                     \
		if (rc_ != 0)                                                                      \
			return rc_;                                                                \
		return oneshot_end(&t_, call);                                                     \
	} while (0)

int d4_store_policy_generation(struct d4_store *s, uint64_t *gen)
{
	ONESHOT(s, false, d4_policy_generation(&t_, gen));
}

int d4_store_sensor_register(struct d4_store *s, const struct d4_sensor *sn, uint64_t now)
{
	ONESHOT(s, true, d4_sensor_register(&t_, sn, now));
}

int d4_store_sensor_update(struct d4_store *s, const struct d4_sensor *sn, uint64_t now)
{
	ONESHOT(s, true, d4_sensor_update(&t_, sn, now));
}

int d4_store_sensor_set_state(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE],
                              enum d4_sensor_state st, uint64_t now)
{
	ONESHOT(s, true, d4_sensor_set_state(&t_, uuid, st, now));
}

int d4_store_sensor_get(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor *out)
{
	ONESHOT(s, false, d4_sensor_get(&t_, uuid, out));
}

int d4_store_sensor_delete(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE])
{
	ONESHOT(s, true, d4_sensor_delete(&t_, uuid));
}

int d4_store_block_uuid_put(struct d4_store *s, const struct d4_block_uuid *b)
{
	ONESHOT(s, true, d4_block_uuid_put(&t_, b));
}

int d4_store_block_uuid_delete(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE])
{
	ONESHOT(s, true, d4_block_uuid_delete(&t_, uuid));
}

int d4_store_block_ip_put(struct d4_store *s, const struct d4_block_ip *b)
{
	ONESHOT(s, true, d4_block_ip_put(&t_, b));
}

int d4_store_block_ip_delete(struct d4_store *s, const struct d4_ip_range *r)
{
	ONESHOT(s, true, d4_block_ip_delete(&t_, r));
}

int d4_store_type_set_accepted(struct d4_store *s, uint8_t type, bool accepted, uint64_t now)
{
	ONESHOT(s, true, d4_type_set_accepted(&t_, type, accepted, now));
}

int d4_store_meta_type_set_accepted(struct d4_store *s, const char *name, bool accepted,
                                    uint64_t now)
{
	ONESHOT(s, true, d4_meta_type_set_accepted(&t_, name, accepted, now));
}

int d4_store_user_add(struct d4_store *s, const struct d4_user *u)
{
	ONESHOT(s, true, d4_user_add(&t_, u));
}

int d4_store_user_get(struct d4_store *s, const char *name, struct d4_user *out)
{
	ONESHOT(s, false, d4_user_get(&t_, name, out));
}

int d4_store_token_add(struct d4_store *s, const struct d4_token *tk)
{
	ONESHOT(s, true, d4_token_add(&t_, tk));
}

int d4_store_token_get(struct d4_store *s, const uint8_t hash[D4_TOKEN_HASH_SIZE],
                       struct d4_token *out)
{
	ONESHOT(s, false, d4_token_get(&t_, hash, out));
}

int d4_store_kick_request(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE], uint64_t now)
{
	ONESHOT(s, true, d4_kick_request(&t_, uuid, now));
}

int d4_store_stats_apply(struct d4_store *s, const struct d4_stats_delta *deltas, size_t n)
{
	ONESHOT(s, true, d4_stats_apply(&t_, deltas, n));
}

int d4_store_stats_get(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE],
                       struct d4_sensor_stats *out)
{
	ONESHOT(s, false, d4_stats_get(&t_, uuid, out));
}

int d4_store_queue_put(struct d4_store *s, const struct d4_queue_stats *q)
{
	ONESHOT(s, true, d4_queue_put(&t_, q));
}
