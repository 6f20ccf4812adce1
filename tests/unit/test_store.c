/*
 * test_store.c — the LMDB store (common/d4_store.c) and the address ranges
 * it keeps (common/d4_net.c).
 *
 * Each test gets a fresh store in a mkdtemp() directory, removed afterwards.
 * Tests that need bytes the accessors would never write (a schema version
 * from the future, garbage records) close the store and write them with raw
 * LMDB calls: LMDB forbids opening one environment twice in one process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "d4_net.h"
#include "d4_store.h"

struct fixture {
	char dir[64];
	char path[96];
	struct d4_store *s;
};

/* A v4 uuid whose last byte is n. */
static void make_uuid(uint8_t u[16], uint8_t n)
{
	for (int i = 0; i < 16; i++)
		u[i] = (uint8_t)(0x10 + i);
	u[6] = 0x4a;
	u[8] = 0x9b;
	u[15] = n;
}

static void ip(const char *text, uint8_t out[16])
{
	assert_int_equal(d4_ip_parse(text, strlen(text), out), 0);
}

static struct d4_store *open_store(const char *path, bool read_only)
{
	struct d4_store_opts o = {.map_size = 64u << 20, .read_only = read_only};
	struct d4_store *s = NULL;
	char err[D4_STORE_ERR_LEN] = "";
	int rc = d4_store_open(&s, path, &o, err, sizeof(err));

	if (rc != 0)
		fail_msg("open %s: %s (%s)", path, err, d4_store_strerror(rc));
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/d4-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store", f->dir);
	f->s = open_store(f->path, false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	d4_store_close(f->s);
	snprintf(p, sizeof(p), "%s/data.mdb", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", f->path);
	unlink(p);
	rmdir(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- raw LMDB, with the store closed ---- */

static MDB_env *raw_open(const char *path, MDB_txn **txn)
{
	MDB_env *env;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, txn), 0);
	return env;
}

static void raw_put(const char *path, const char *db, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_env *env = raw_open(path, &txn);
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static size_t raw_get(const char *path, const char *db, const void *key, size_t klen, uint8_t *out,
                      size_t cap)
{
	MDB_txn *txn;
	MDB_env *env = raw_open(path, &txn);
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v;

	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_true(v.mv_size <= cap);
	memcpy(out, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return v.mv_size;
}

static size_t raw_entries(const char *path, const char *db)
{
	MDB_txn *txn;
	MDB_env *env = raw_open(path, &txn);
	MDB_dbi dbi;
	MDB_stat st;

	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &st), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

static uint64_t generation(struct d4_store *s)
{
	uint64_t g = 99;
	assert_int_equal(d4_store_policy_generation(s, &g), 0);
	return g;
}

static void sample_sensor(struct d4_sensor *sn, uint8_t n)
{
	memset(sn, 0, sizeof(*sn));
	make_uuid(sn->uuid, n);
	sn->state = D4_SENSOR_PENDING;
	sn->third_party = true;
	sn->hmac_key_len = 9;
	memcpy(sn->hmac_key, "s3cr\0t-k!", 9);
	snprintf(sn->description, sizeof(sn->description), "honeypot %u, rack 4", n);
	snprintf(sn->mail, sizeof(sn->mail), "csirt@example.org");
	sn->settings.max_payload = 65536;
	sn->settings.rate_limit_bps = 10u << 20;
	sn->settings.has_cert_pin = true;
	memset(sn->settings.cert_pin, 0xab, sizeof(sn->settings.cert_pin));
	sn->settings.n_groups = 2;
	snprintf(sn->settings.groups[0], sizeof(sn->settings.groups[0]), "telescope");
	snprintf(sn->settings.groups[1], sizeof(sn->settings.groups[1]), "eu-west");
}

/* ---- environment ---- */

static void test_open_create_reopen(void **state)
{
	struct fixture *f = *state;
	struct d4_sensor sn, got;
	struct d4_txn t;
	struct stat st;
	uint32_t version = 0;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_schema_version(&t, &version), 0);
	d4_txn_abort(&t);
	assert_int_equal(version, D4_STORE_SCHEMA_VERSION);
	assert_string_equal(d4_store_path(f->s), f->path);

	sample_sensor(&sn, 1);
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 1000), 0);
	d4_store_close(f->s);
	f->s = open_store(f->path, false);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_string_equal(got.description, sn.description);

	/* A read-only open of an existing store reads, and refuses to write. */
	d4_store_close(f->s);
	f->s = open_store(f->path, true);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, true), -EROFS);
	assert_int_equal(d4_store_sensor_delete(f->s, sn.uuid), -EROFS);
}

static void test_schema_mismatch(void **state)
{
	struct fixture *f = *state;
	struct d4_store *s = NULL;
	char err[D4_STORE_ERR_LEN] = "";
	uint8_t v[4] = {2, 0, 0, 0};

	d4_store_close(f->s);
	f->s = NULL;
	raw_put(f->path, "meta", "schema_version", 14, v, sizeof(v));
	assert_int_equal(d4_store_open(&s, f->path, NULL, err, sizeof(err)), D4_STORE_ESCHEMA);
	assert_null(s);
	assert_non_null(strstr(err, "schema version 2"));
	assert_non_null(strstr(err, f->path));
	struct d4_store_opts ro = {.read_only = true};
	assert_int_equal(d4_store_open(&s, f->path, &ro, err, sizeof(err)), D4_STORE_ESCHEMA);
	assert_non_null(strstr(d4_store_strerror(D4_STORE_ESCHEMA), "schema"));

	/* A schema version that is not 4 bytes is refused too. */
	raw_put(f->path, "meta", "schema_version", 14, v, 2);
	assert_int_equal(d4_store_open(&s, f->path, NULL, err, sizeof(err)), -EINVAL);
	assert_null(s);
}

static void test_readonly_missing(void **state)
{
	struct fixture *f = *state;
	struct d4_store_opts ro = {.read_only = true};
	struct d4_store *s = NULL;
	char err[D4_STORE_ERR_LEN] = "";
	char missing[160];
	struct stat st;

	snprintf(missing, sizeof(missing), "%s/nothing-here", f->dir);
	assert_int_equal(d4_store_open(&s, missing, &ro, err, sizeof(err)), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(err, "no store at"));
	assert_int_not_equal(stat(missing, &st), 0); /* nothing created */

	/* A writable open under a missing parent fails cleanly too. */
	snprintf(missing, sizeof(missing), "%s/no/such/dir", f->dir);
	assert_int_equal(d4_store_open(&s, missing, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot create store directory"));
}

/* ---- sensors ---- */

static int count_sensor(const struct d4_sensor *s, void *ctx)
{
	(void)s;
	(*(int *)ctx)++;
	return 0;
}

static void test_sensor_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct d4_sensor sn, got, bad;
	struct d4_txn t;
	int n = 0;

	sample_sensor(&sn, 1);
	sn.created = 5; /* ignored: register stamps the times */
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 1000), 0);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_memory_equal(got.uuid, sn.uuid, 16);
	assert_int_equal(got.state, D4_SENSOR_PENDING);
	assert_true(got.third_party);
	assert_int_equal(got.created, 1000);
	assert_int_equal(got.updated, 1000);
	assert_int_equal(got.hmac_key_len, 9);
	assert_memory_equal(got.hmac_key, "s3cr\0t-k!", 9);
	assert_string_equal(got.description, "honeypot 1, rack 4");
	assert_string_equal(got.mail, "csirt@example.org");
	assert_int_equal(got.settings.max_payload, 65536);
	assert_int_equal(got.settings.rate_limit_bps, 10u << 20);
	assert_true(got.settings.has_cert_pin);
	assert_memory_equal(got.settings.cert_pin, sn.settings.cert_pin, 32);
	assert_int_equal(got.settings.n_groups, 2);
	assert_string_equal(got.settings.groups[1], "eu-west");

	assert_int_equal(d4_store_sensor_register(f->s, &sn, 2000), -EEXIST);

	bad = sn;
	bad.uuid[6] = 0x1a; /* version 1 */
	assert_int_equal(d4_store_sensor_register(f->s, &bad, 1000), -EINVAL);
	sample_sensor(&bad, 2);
	bad.hmac_key_len = D4_SENSOR_KEY_MAX + 1;
	assert_int_equal(d4_store_sensor_register(f->s, &bad, 1000), -EINVAL);
	sample_sensor(&bad, 2);
	snprintf(bad.settings.groups[0], sizeof(bad.settings.groups[0]), "has space");
	assert_int_equal(d4_store_sensor_register(f->s, &bad, 1000), -EINVAL);

	/* Update keeps created; settings alone; a sensor without key nor pin. */
	got.settings.has_cert_pin = false;
	got.settings.n_groups = 0;
	got.hmac_key_len = 0;
	snprintf(got.description, sizeof(got.description), "moved");
	assert_int_equal(d4_store_sensor_update(f->s, &got, 3000), 0);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_int_equal(got.created, 1000);
	assert_int_equal(got.updated, 3000);
	assert_string_equal(got.description, "moved");
	assert_false(got.settings.has_cert_pin);
	assert_int_equal(got.hmac_key_len, 0);

	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	struct d4_sensor_settings st = sn.settings;
	st.rate_limit_bps = 42;
	assert_int_equal(d4_sensor_set_settings(&t, sn.uuid, &st, 4000), 0);
	sample_sensor(&bad, 7);
	assert_int_equal(d4_sensor_set_settings(&t, bad.uuid, &st, 4000), -ENOENT);
	assert_int_equal(d4_sensor_register(&t, &bad, 4000), 0);
	assert_int_equal(d4_sensor_iterate(&t, count_sensor, &n), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(n, 2);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_int_equal(got.settings.rate_limit_bps, 42);
	assert_string_equal(got.description, "moved");

	assert_int_equal(d4_store_sensor_delete(f->s, bad.uuid), 0);
	assert_int_equal(d4_store_sensor_delete(f->s, bad.uuid), -ENOENT);
	assert_int_equal(d4_store_sensor_get(f->s, bad.uuid, &got), -ENOENT);
}

static void test_sensor_states(void **state)
{
	struct fixture *f = *state;
	struct d4_sensor sn, got;
	uint8_t other[16];

	sample_sensor(&sn, 3);
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 100), 0);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_APPROVED, 200), 0);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_int_equal(got.state, D4_SENSOR_APPROVED);
	assert_int_equal(got.updated, 200);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_REJECTED, 300), 0);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_APPROVED, 400), 0);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_APPROVED, 500), 0);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_PENDING, 600), -EPERM);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, (enum d4_sensor_state)7, 600),
	                 -EINVAL);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), 0);
	assert_int_equal(got.state, D4_SENSOR_APPROVED);
	assert_int_equal(got.updated, 400); /* the no-op did not touch it */
	make_uuid(other, 99);
	assert_int_equal(d4_store_sensor_set_state(f->s, other, D4_SENSOR_APPROVED, 1), -ENOENT);

	assert_string_equal(d4_sensor_state_name(D4_SENSOR_REJECTED), "rejected");
	assert_int_equal(d4_sensor_state_from_name("approved"), D4_SENSOR_APPROVED);
	assert_int_equal(d4_sensor_state_from_name("blocked"), -1);
	assert_non_null(strstr(d4_store_strerror(-EPERM), "transition"));
}

/* ---- policy generation ---- */

static void test_generation(void **state)
{
	struct fixture *f = *state;
	struct d4_sensor sn;
	struct d4_block_uuid bu = {.created = 1};
	struct d4_block_ip bi = {.created = 1};
	struct d4_user u = {.role = D4_ROLE_ADMIN, .created = 1};
	struct d4_queue_stats q = {.state = D4_QUEUE_RUNNING};
	struct d4_stats_delta d = {.time = 5, .type = 1, .packets = 1, .bytes = 10,
	                           .active_sessions = -1};
	struct d4_txn t;
	uint64_t g;

	assert_int_equal(generation(f->s), 0);
	sample_sensor(&sn, 4);
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 1), 0);
	assert_int_equal(generation(f->s), 1);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_APPROVED, 2), 0);
	assert_int_equal(generation(f->s), 2);
	assert_int_equal(d4_store_sensor_update(f->s, &sn, 3), 0);
	assert_int_equal(generation(f->s), 3);
	make_uuid(bu.uuid, 8);
	assert_int_equal(d4_store_block_uuid_put(f->s, &bu), 0);
	assert_int_equal(generation(f->s), 4);
	assert_int_equal(d4_ip_range_parse_str("192.0.2.0/24", &bi.range, NULL), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &bi), 0);
	assert_int_equal(generation(f->s), 5);
	assert_int_equal(d4_store_type_set_accepted(f->s, 1, true, 1), 0);
	assert_int_equal(generation(f->s), 6);
	assert_int_equal(d4_store_meta_type_set_accepted(f->s, "ja3-jl", true, 1), 0);
	assert_int_equal(generation(f->s), 7);
	assert_int_equal(d4_store_kick_request(f->s, sn.uuid, 10), 0);
	assert_int_equal(generation(f->s), 8);
	assert_int_equal(d4_store_block_uuid_delete(f->s, bu.uuid), 0);
	assert_int_equal(generation(f->s), 9);
	assert_int_equal(d4_store_block_ip_delete(f->s, &bi.range), 0);
	assert_int_equal(generation(f->s), 10);

	/* Not policy: users, stats, queues, clearing a kick. */
	snprintf(u.name, sizeof(u.name), "alice");
	assert_int_equal(d4_store_user_add(f->s, &u), 0);
	memcpy(d.uuid, sn.uuid, 16);
	assert_int_equal(d4_store_stats_apply(f->s, &d, 1), 0);
	snprintf(q.name, sizeof(q.name), "archive");
	assert_int_equal(d4_store_queue_put(f->s, &q), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_kick_clear(&t, sn.uuid, 10), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(generation(f->s), 10);

	/* Several policy writes in one transaction: one bump. An aborted one: none. */
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_type_set_accepted(&t, 3, true, 1), 0);
	assert_int_equal(d4_type_set_accepted(&t, 8, true, 1), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(generation(f->s), 11);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_type_set_accepted(&t, 4, true, 1), 0);
	d4_txn_abort(&t);
	assert_int_equal(generation(f->s), 11);
	/* A failed write does not count. */
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 1), -EEXIST);
	assert_int_equal(generation(f->s), 11);

	/* Read in the same snapshot as the policy it describes. */
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_policy_generation(&t, &g), 0);
	d4_txn_abort(&t);
	assert_int_equal(g, 11);
}

/* ---- statistics ---- */

static void test_stats_batches(void **state)
{
	struct fixture *f = *state;
	uint8_t a[16], b[16], p1[16], p2[16], p3[16];
	struct d4_sensor_stats *st = malloc(sizeof(*st));

	assert_non_null(st);
	make_uuid(a, 1);
	make_uuid(b, 2);
	ip("192.0.2.1", p1);
	ip("2001:db8::1", p2);
	ip("198.51.100.7", p3);

	struct d4_stats_delta first[] = {
		{.time = 1000, .type = 1, .packets = 10, .bytes = 4000, .peer = p1,
		 .active_sessions = 1},
		{.time = 1001, .type = 254, .meta_type = "ja3-jl", .packets = 2, .bytes = 300,
		 .peer = p2, .active_sessions = 2},
		{.time = 1001, .refusal = D4_R_HMAC_MISMATCH, .refusals = 3, .peer = p3,
		 .peer_port = 40000, .error = "hmac mismatch", .active_sessions = -1},
		{.time = 990, .type = 3, .packets = 1, .bytes = 50, .active_sessions = -1},
	};
	for (size_t i = 0; i < 3; i++)
		memcpy(first[i].uuid, a, 16);
	memcpy(first[3].uuid, b, 16);
	assert_int_equal(d4_store_stats_apply(f->s, first, 4), 0);

	struct d4_stats_delta second[] = {
		{.time = 2000, .type = 1, .packets = 5, .bytes = 1000, .peer = p1,
		 .active_sessions = 1},
		{.time = 2001, .refusal = D4_R_HMAC_MISMATCH, .active_sessions = -1},
		{.time = 2002, .refusal = D4_R_RATE_LIMIT, .peer = p2, .peer_port = 5,
		 .error = "over 10 MiB/s", .active_sessions = 0},
		{.time = 1500, .type = 254, .meta_type = "ja3-jl", .packets = 1, .bytes = 1,
		 .active_sessions = -1},
	};
	for (size_t i = 0; i < 4; i++)
		memcpy(second[i].uuid, a, 16);
	assert_int_equal(d4_store_stats_apply(f->s, second, 4), 0);

	assert_int_equal(d4_store_stats_get(f->s, a, st), 0);
	assert_int_equal(st->first_seen, 1000); /* kept */
	assert_int_equal(st->last_seen, 2002);  /* updated */
	assert_int_equal(st->total.packets, 18);
	assert_int_equal(st->total.bytes, 5301);
	assert_int_equal(st->types[1].packets, 15);
	assert_int_equal(st->types[1].bytes, 5000);
	assert_int_equal(st->types[254].packets, 3);
	assert_int_equal(st->n_meta, 1);
	assert_string_equal(st->meta[0].name, "ja3-jl");
	assert_int_equal(st->meta[0].c.packets, 3);
	assert_int_equal(st->meta[0].c.bytes, 301);
	assert_int_equal(st->refusals[D4_R_HMAC_MISMATCH], 4);
	assert_int_equal(st->refusals[D4_R_RATE_LIMIT], 1);
	assert_int_equal(st->refusals[D4_R_KICKED], 0);
	assert_int_equal(st->active_sessions, 0);
	/* p1 seen twice is listed once, most recent first: p2, p1, p3. */
	assert_int_equal(st->n_addrs, 3);
	assert_memory_equal(st->addrs[0].addr, p2, 16);
	assert_int_equal(st->addrs[0].time, 2002);
	assert_memory_equal(st->addrs[1].addr, p1, 16);
	assert_int_equal(st->addrs[1].time, 2000);
	assert_memory_equal(st->addrs[2].addr, p3, 16);
	assert_int_equal(st->last_error.time, 2002);
	assert_int_equal(st->last_error.reason, D4_R_RATE_LIMIT);
	assert_memory_equal(st->last_error.peer, p2, 16);
	assert_int_equal(st->last_error.peer_port, 5);
	assert_string_equal(st->last_error.text, "over 10 MiB/s");

	assert_int_equal(d4_store_stats_get(f->s, b, st), 0);
	assert_int_equal(st->first_seen, 990);
	assert_int_equal(st->types[3].bytes, 50);
	assert_int_equal(st->n_addrs, 0);

	/* The ring keeps the last 16 distinct addresses. */
	struct d4_stats_delta ring[20];
	uint8_t addrs[20][16];
	memset(ring, 0, sizeof(ring));
	for (int i = 0; i < 20; i++) {
		char text[32];
		snprintf(text, sizeof(text), "10.0.0.%d", i);
		ip(text, addrs[i]);
		memcpy(ring[i].uuid, b, 16);
		ring[i].time = 3000 + (uint64_t)i;
		ring[i].peer = addrs[i];
		ring[i].active_sessions = -1;
	}
	assert_int_equal(d4_store_stats_apply(f->s, ring, 20), 0);
	assert_int_equal(d4_store_stats_get(f->s, b, st), 0);
	assert_int_equal(st->n_addrs, D4_STATS_ADDRS);
	assert_memory_equal(st->addrs[0].addr, addrs[19], 16);
	assert_memory_equal(st->addrs[15].addr, addrs[4], 16);

	/* One bad delta: nothing of the batch is written. */
	struct d4_stats_delta bad[2] = {
		{.time = 4000, .type = 1, .packets = 1000, .active_sessions = -1},
		{.time = 4000, .type = 254, .meta_type = "has space", .packets = 1,
		 .active_sessions = -1},
	};
	memcpy(bad[0].uuid, a, 16);
	memcpy(bad[1].uuid, a, 16);
	assert_int_equal(d4_store_stats_apply(f->s, bad, 2), -EINVAL);
	bad[1].meta_type = NULL;
	bad[1].refusal = D4_R_COUNT;
	assert_int_equal(d4_store_stats_apply(f->s, bad, 2), -EINVAL);
	assert_int_equal(d4_store_stats_get(f->s, a, st), 0);
	assert_int_equal(st->total.packets, 18);

	/* Sessions reset at ingest start. */
	struct d4_stats_delta live = {.time = 5000, .active_sessions = 7};
	memcpy(live.uuid, b, 16);
	assert_int_equal(d4_store_stats_apply(f->s, &live, 1), 0);
	struct d4_txn t;
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_stats_reset_sessions(&t), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(d4_store_stats_get(f->s, b, st), 0);
	assert_int_equal(st->active_sessions, 0);
	assert_int_equal(st->n_addrs, D4_STATS_ADDRS); /* the rest untouched */
	free(st);
}

struct daily_seen {
	int n;
	struct d4_daily d[16];
};

static int collect_daily(const struct d4_daily *d, void *ctx)
{
	struct daily_seen *s = ctx;
	if (s->n < 16)
		s->d[s->n] = *d;
	s->n++;
	return 0;
}

static void test_daily_range(void **state)
{
	struct fixture *f = *state;
	uint8_t a[16], b[16];
	struct daily_seen seen;
	struct d4_txn t;
	size_t removed = 0;

	make_uuid(a, 1);
	make_uuid(b, 2);
	/* Days 100..104 for a (type 1; type 254 "ja3-jl" on day 102), days 101 and 103 for b. */
	struct d4_stats_delta ds[9];
	memset(ds, 0, sizeof(ds));
	for (int i = 0; i < 5; i++) {
		memcpy(ds[i].uuid, a, 16);
		ds[i].time = (uint64_t)(100 + i) * 86400 + 3600;
		ds[i].type = 1;
		ds[i].packets = (uint64_t)i + 1;
		ds[i].bytes = 100;
		ds[i].active_sessions = -1;
	}
	memcpy(ds[5].uuid, a, 16);
	ds[5].time = 102 * 86400 + 7200;
	ds[5].type = 254;
	ds[5].meta_type = "ja3-jl";
	ds[5].packets = 9;
	ds[5].active_sessions = -1;
	ds[6] = ds[2]; /* the same (sensor, day, type) again: added */
	ds[6].time += 60;
	for (int i = 7; i < 9; i++) {
		memcpy(ds[i].uuid, b, 16);
		ds[i].time = (uint64_t)(101 + 2 * (i - 7)) * 86400;
		ds[i].type = 8;
		ds[i].packets = 1;
		ds[i].active_sessions = -1;
	}
	assert_int_equal(d4_store_stats_apply(f->s, ds, 9), 0);

	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(d4_daily_iterate(&t, a, 101, 103, collect_daily, &seen), 0);
	assert_int_equal(seen.n, 4);
	assert_int_equal(seen.d[0].day, 101);
	assert_int_equal(seen.d[1].day, 102);
	assert_int_equal(seen.d[1].type, 1);
	assert_int_equal(seen.d[1].c.packets, 6); /* 3 + 3 */
	assert_int_equal(seen.d[1].c.bytes, 200);
	assert_string_equal(seen.d[1].meta_type, "");
	assert_int_equal(seen.d[2].day, 102);
	assert_int_equal(seen.d[2].type, 254);
	assert_string_equal(seen.d[2].meta_type, "ja3-jl");
	assert_int_equal(seen.d[2].c.packets, 9);
	assert_int_equal(seen.d[3].day, 103);
	assert_memory_equal(seen.d[3].uuid, a, 16);

	/* Every sensor, days 103..200: a's 103, 104 and b's 103. */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(d4_daily_iterate(&t, NULL, 103, 200, collect_daily, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.d[1].day, 104);
	assert_memory_equal(seen.d[2].uuid, b, 16);
	assert_int_equal(seen.d[2].day, 103);
	assert_int_equal(seen.d[2].type, 8);

	/* A range with nothing in it, and a reversed one. */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(d4_daily_iterate(&t, b, 104, 110, collect_daily, &seen), 0);
	assert_int_equal(seen.n, 0);
	assert_int_equal(d4_daily_iterate(&t, b, 110, 104, collect_daily, &seen), -EINVAL);
	d4_txn_abort(&t);

	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_daily_purge(&t, 102, &removed), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(removed, 3); /* a 100, a 101, b 101 */
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(d4_daily_iterate(&t, NULL, 0, UINT32_MAX, collect_daily, &seen), 0);
	assert_int_equal(seen.n, 5);
	d4_txn_abort(&t);
}

/* ---- blocklists ---- */

static int count_ip(const struct d4_block_ip *b, void *ctx)
{
	(void)b;
	(*(int *)ctx)++;
	return 0;
}

static int stop_at_first(const struct d4_block_ip *b, void *ctx)
{
	(void)b;
	(*(int *)ctx)++;
	return 42;
}

static void test_block_ip(void **state)
{
	struct fixture *f = *state;
	struct d4_block_ip b8 = {.created = 1}, b16 = {.created = 2, .expires = 500},
	                   b6 = {.created = 3}, got;
	struct d4_txn t;
	uint8_t a[16];
	char text[D4_IP_RANGE_STR_MAX];
	int n = 0;
	size_t removed = 0;

	assert_int_equal(d4_ip_range_parse_str("10.0.0.0/8", &b8.range, NULL), 0);
	snprintf(b8.comment, sizeof(b8.comment), "internal");
	assert_int_equal(d4_ip_range_parse_str("10.1.0.0/16", &b16.range, NULL), 0);
	snprintf(b16.comment, sizeof(b16.comment), "temporary ban");
	assert_int_equal(d4_ip_range_parse_str("2001:db8::/32", &b6.range, NULL), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &b8), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &b16), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &b6), 0);
	b6.created = 4; /* the same range again replaces, never duplicates */
	assert_int_equal(d4_store_block_ip_put(f->s, &b6), 0);

	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_block_ip_iterate(&t, count_ip, &n), 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(d4_block_ip_iterate(&t, stop_at_first, &n), 42);
	assert_int_equal(n, 1);

	ip("10.200.3.4", a);
	assert_int_equal(d4_block_ip_match(&t, a, 100, &got), 0);
	assert_string_equal(got.comment, "internal");
	ip("10.1.2.3", a); /* inside both: either entry blocks it */
	assert_int_equal(d4_block_ip_match(&t, a, 100, &got), 0);
	ip("11.0.0.0", a);
	assert_int_equal(d4_block_ip_match(&t, a, 100, NULL), -ENOENT);
	ip("9.255.255.255", a);
	assert_int_equal(d4_block_ip_match(&t, a, 100, NULL), -ENOENT);
	ip("2001:db8:ffff::1", a);
	assert_int_equal(d4_block_ip_match(&t, a, 100, &got), 0);
	assert_int_equal(got.created, 4);
	ip("2001:db9::", a);
	assert_int_equal(d4_block_ip_match(&t, a, 100, NULL), -ENOENT);
	ip("::ffff:10.0.0.1", a); /* v4-mapped text is the same address */
	assert_int_equal(d4_block_ip_match(&t, a, 100, NULL), 0);

	assert_int_equal(d4_block_ip_get(&t, &b16.range, &got), 0);
	assert_int_equal(got.expires, 500);
	assert_int_equal(d4_ip_range_format(&got.range, text, sizeof(text)), 0);
	assert_string_equal(text, "10.1.0.0/16");
	d4_txn_abort(&t);

	/* Remove the /8: the expired /16 no longer blocks after its expiry. */
	assert_int_equal(d4_store_block_ip_delete(f->s, &b8.range), 0);
	assert_int_equal(d4_store_block_ip_delete(f->s, &b8.range), -ENOENT);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	ip("10.1.2.3", a);
	assert_int_equal(d4_block_ip_match(&t, a, 499, NULL), 0);
	assert_int_equal(d4_block_ip_match(&t, a, 500, NULL), -ENOENT);
	assert_int_equal(d4_block_purge_expired(&t, 500, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(d4_block_ip_get(&t, &b16.range, &got), -ENOENT);
	assert_int_equal(d4_txn_commit(&t), 0);

	/* Never expanded: a /8 and a /0 are one record each. */
	struct d4_block_ip all = {.created = 1};
	assert_int_equal(d4_ip_range_parse_str("::/0", &all.range, NULL), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &all), 0);
	assert_int_equal(d4_store_block_ip_put(f->s, &b8), 0);
	d4_store_close(f->s);
	f->s = NULL;
	assert_int_equal(raw_entries(f->path, "block_ip"), 3);
	f->s = open_store(f->path, false);

	/* start > end is refused. */
	struct d4_block_ip rev = b8;
	memcpy(rev.range.start, b8.range.end, 16);
	memcpy(rev.range.end, b8.range.start, 16);
	assert_int_equal(d4_store_block_ip_put(f->s, &rev), -EINVAL);
}

static int count_uuid(const struct d4_block_uuid *b, void *ctx)
{
	(void)b;
	(*(int *)ctx)++;
	return 0;
}

static void test_block_uuid(void **state)
{
	struct fixture *f = *state;
	struct d4_block_uuid perm = {.created = 10}, temp = {.created = 10, .expires = 100}, got;
	struct d4_txn t;
	size_t removed = 0;
	int n = 0;

	make_uuid(perm.uuid, 1);
	make_uuid(temp.uuid, 2);
	snprintf(perm.comment, sizeof(perm.comment), "stolen key");
	assert_int_equal(d4_store_block_uuid_put(f->s, &perm), 0);
	assert_int_equal(d4_store_block_uuid_put(f->s, &temp), 0);

	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_block_uuid_check(&t, perm.uuid, 1u << 30, &got), 0);
	assert_string_equal(got.comment, "stolen key");
	assert_int_equal(d4_block_uuid_check(&t, temp.uuid, 99, NULL), 0);
	assert_int_equal(d4_block_uuid_check(&t, temp.uuid, 100, NULL), -ENOENT);
	assert_int_equal(d4_block_uuid_get(&t, temp.uuid, &got), 0); /* still there */
	assert_int_equal(got.expires, 100);
	assert_int_equal(d4_block_purge_expired(&t, 100, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(d4_block_uuid_iterate(&t, count_uuid, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(d4_txn_commit(&t), 0);

	/* A comment over the limit is refused. */
	memset(perm.comment, 'x', sizeof(perm.comment)); /* no NUL at all */
	assert_int_equal(d4_store_block_uuid_put(f->s, &perm), -EINVAL);
}

/* ---- accepted types ---- */

static int collect_meta(const char *name, uint64_t added, void *ctx)
{
	char *out = ctx;
	(void)added;
	strcat(out, name);
	strcat(out, ";");
	return 0;
}

static void test_types(void **state)
{
	struct fixture *f = *state;
	bool acc[D4_TYPES];
	struct d4_txn t;
	char names[256] = "";

	assert_int_equal(d4_store_type_set_accepted(f->s, 1, true, 1), 0);
	assert_int_equal(d4_store_type_set_accepted(f->s, 254, true, 1), 0);
	assert_int_equal(d4_store_type_set_accepted(f->s, 8, true, 1), 0);
	assert_int_equal(d4_store_type_set_accepted(f->s, 8, false, 1), 0);
	assert_int_equal(d4_store_type_set_accepted(f->s, 9, false, 1), 0); /* absent: fine */
	assert_int_equal(d4_store_meta_type_set_accepted(f->s, "maltrail", true, 1), 0);
	assert_int_equal(d4_store_meta_type_set_accepted(f->s, "ja3-jl", true, 1), 0);
	assert_int_equal(d4_store_meta_type_set_accepted(f->s, "", true, 1), -EINVAL);
	assert_int_equal(d4_store_meta_type_set_accepted(f->s, "a b", true, 1), -EINVAL);

	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_types_accepted(&t, acc), 0);
	for (int i = 0; i < D4_TYPES; i++)
		assert_int_equal(acc[i], i == 1 || i == 254);
	assert_int_equal(d4_meta_type_check(&t, "ja3-jl"), 0);
	assert_int_equal(d4_meta_type_check(&t, "fascia"), -ENOENT);
	assert_int_equal(d4_meta_type_check(&t, "bad name"), -ENOENT);
	assert_int_equal(d4_meta_type_iterate(&t, collect_meta, names), 0);
	assert_string_equal(names, "ja3-jl;maltrail;");
	d4_txn_abort(&t);
}

/* ---- users and tokens ---- */

static int count_token(const struct d4_token *tk, void *ctx)
{
	(void)tk;
	(*(int *)ctx)++;
	return 0;
}

static void test_users_tokens(void **state)
{
	struct fixture *f = *state;
	struct d4_user u = {.role = D4_ROLE_OPERATOR, .must_change = true, .created = 100}, gu;
	struct d4_token tk = {.created = 200}, gt;
	uint8_t h2[32];
	struct d4_txn t;
	int n = 0;
	static const uint8_t sha_abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};

	snprintf(u.name, sizeof(u.name), "bob");
	snprintf(u.password_hash, sizeof(u.password_hash),
	         "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
	assert_int_equal(d4_store_user_add(f->s, &u), 0);
	assert_int_equal(d4_store_user_add(f->s, &u), -EEXIST);
	assert_int_equal(d4_store_user_get(f->s, "bob", &gu), 0);
	assert_string_equal(gu.name, "bob");
	assert_int_equal(gu.role, D4_ROLE_OPERATOR);
	assert_true(gu.must_change);
	assert_int_equal(gu.created, 100);
	assert_int_equal(gu.last_login, 0);
	assert_string_equal(gu.password_hash, u.password_hash);
	assert_int_equal(d4_store_user_get(f->s, "carol", &gu), -ENOENT);
	u.role = (enum d4_role)9;
	snprintf(u.name, sizeof(u.name), "carol");
	assert_int_equal(d4_store_user_add(f->s, &u), -EINVAL);
	assert_string_equal(d4_role_name(D4_ROLE_SENSOR_REGISTER), "sensor-register");
	assert_int_equal(d4_role_from_name("read-only"), D4_ROLE_READ_ONLY);
	assert_int_equal(d4_role_from_name("root"), -1);

	assert_int_equal(d4_token_hash("abc", 3, tk.hash), 0);
	assert_memory_equal(tk.hash, sha_abc, 32);
	snprintf(tk.user, sizeof(tk.user), "bob");
	snprintf(tk.description, sizeof(tk.description), "d4ctl on jump host");
	assert_int_equal(d4_store_token_add(f->s, &tk), 0);
	assert_int_equal(d4_store_token_add(f->s, &tk), -EEXIST);
	assert_int_equal(d4_store_token_get(f->s, sha_abc, &gt), 0);
	assert_string_equal(gt.user, "bob");
	assert_string_equal(gt.description, "d4ctl on jump host");
	assert_int_equal(gt.created, 200);
	assert_int_equal(d4_token_hash("abd", 3, h2), 0);
	assert_int_equal(d4_store_token_get(f->s, h2, &gt), -ENOENT);
	memcpy(tk.hash, h2, 32);
	snprintf(tk.user, sizeof(tk.user), "nobody");
	assert_int_equal(d4_store_token_add(f->s, &tk), -ENOENT);
	snprintf(tk.user, sizeof(tk.user), "bob");
	assert_int_equal(d4_store_token_add(f->s, &tk), 0);

	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_user_touch_login(&t, "bob", 300), 0);
	assert_int_equal(d4_token_touch(&t, sha_abc, 301), 0);
	u = gu;
	u.must_change = false;
	assert_int_equal(d4_user_update(&t, &u), 0);
	assert_int_equal(d4_user_get(&t, "bob", &gu), 0);
	assert_int_equal(gu.last_login, 0); /* update replaced it with u's */
	assert_false(gu.must_change);
	assert_int_equal(d4_user_touch_login(&t, "bob", 300), 0);
	assert_int_equal(d4_token_get(&t, sha_abc, &gt), 0);
	assert_int_equal(gt.last_used, 301);
	assert_int_equal(d4_token_iterate(&t, count_token, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_int_equal(d4_store_user_get(f->s, "bob", &gu), 0);
	assert_int_equal(gu.last_login, 300);

	/* Deleting a user takes their tokens with them. */
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_user_delete(&t, "bob"), 0);
	n = 0;
	assert_int_equal(d4_token_iterate(&t, count_token, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(d4_user_delete(&t, "bob"), -ENOENT);
	assert_int_equal(d4_txn_commit(&t), 0);
}

/* ---- kicks and queues ---- */

static void test_kicks(void **state)
{
	struct fixture *f = *state;
	uint8_t a[16], b[16];
	uint64_t when = 0;
	struct d4_txn t;
	size_t removed = 0;

	make_uuid(a, 1);
	make_uuid(b, 2);
	assert_int_equal(d4_store_kick_request(f->s, a, 100), 0);
	assert_int_equal(d4_store_kick_request(f->s, b, 50), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_kick_get(&t, a, &when), 0);
	assert_int_equal(when, 100);
	/* Ingest acted on the request of time 100, but a newer one (150) arrived meanwhile. */
	assert_int_equal(d4_kick_request(&t, a, 150), 0);
	assert_int_equal(d4_kick_clear(&t, a, 100), -ENOENT);
	assert_int_equal(d4_kick_get(&t, a, &when), 0);
	assert_int_equal(when, 150);
	assert_int_equal(d4_kick_clear(&t, a, 150), 0);
	assert_int_equal(d4_kick_get(&t, a, &when), -ENOENT);
	assert_int_equal(d4_kick_purge(&t, 60, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(d4_kick_get(&t, b, &when), -ENOENT);
	assert_int_equal(d4_txn_commit(&t), 0);
}

static int sum_queue(const struct d4_queue_stats *q, void *ctx)
{
	*(uint64_t *)ctx += q->dropped;
	return 0;
}

static void test_queues(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_stats q = {.received = 10, .delivered = 8, .acknowledged = 7,
	                           .in_memory = 4096, .spooled = 1 << 20, .dropped = 2,
	                           .restarts = 3, .state = D4_QUEUE_BACKOFF, .updated = 99,
	                           .last_error_time = 98},
	                      got;
	struct d4_txn t;
	uint64_t dropped = 0;

	snprintf(q.name, sizeof(q.name), "passivedns");
	snprintf(q.last_error, sizeof(q.last_error), "worker exited with status 1");
	assert_int_equal(d4_store_queue_put(f->s, &q), 0);
	snprintf(q.name, sizeof(q.name), "archive");
	q.dropped = 5;
	q.state = D4_QUEUE_RUNNING;
	assert_int_equal(d4_store_queue_put(f->s, &q), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_queue_get(&t, "passivedns", &got), 0);
	assert_int_equal(got.received, 10);
	assert_int_equal(got.acknowledged, 7);
	assert_int_equal(got.spooled, 1 << 20);
	assert_int_equal(got.restarts, 3);
	assert_int_equal(got.state, D4_QUEUE_BACKOFF);
	assert_int_equal(got.last_error_time, 98);
	assert_string_equal(got.last_error, "worker exited with status 1");
	assert_int_equal(d4_queue_iterate(&t, sum_queue, &dropped), 0);
	assert_int_equal(dropped, 7);
	assert_int_equal(d4_queue_delete(&t, "archive"), 0);
	assert_int_equal(d4_queue_get(&t, "archive", &got), -ENOENT);
	q.state = (enum d4_queue_state)9;
	assert_int_equal(d4_queue_put(&t, &q), -EINVAL);
	assert_int_equal(d4_txn_commit(&t), 0);
	assert_string_equal(d4_queue_state_name(D4_QUEUE_FAILED), "failed");
}

/* ---- malformed records ---- */

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	struct d4_sensor sn, got;
	struct d4_sensor_stats *st = malloc(sizeof(*st));
	uint8_t rec[4096], garbage[7] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3}, u2[16];
	size_t len;
	struct d4_txn t;
	int n = 0;

	assert_non_null(st);
	sample_sensor(&sn, 1);
	assert_int_equal(d4_store_sensor_register(f->s, &sn, 1), 0);
	struct d4_stats_delta d = {.time = 9, .type = 1, .packets = 1, .bytes = 1,
	                           .active_sessions = -1};
	memcpy(d.uuid, sn.uuid, 16);
	assert_int_equal(d4_store_stats_apply(f->s, &d, 1), 0);
	d4_store_close(f->s);
	f->s = NULL;

	/* Every truncation of a valid record, and one byte too many, is -EINVAL. */
	len = raw_get(f->path, "sensors", sn.uuid, 16, rec, sizeof(rec) - 1);
	rec[len] = 0;
	for (size_t cut = 0; cut <= len; cut++) {
		size_t l = cut < len ? cut : len + 1;
		raw_put(f->path, "sensors", sn.uuid, 16, rec, l);
		f->s = open_store(f->path, true);
		assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), -EINVAL);
		d4_store_close(f->s);
		f->s = NULL;
	}
	/* A version from the future; a string length past the record. */
	rec[0] = 2;
	raw_put(f->path, "sensors", sn.uuid, 16, rec, len);
	f->s = open_store(f->path, true);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), -EINVAL);
	d4_store_close(f->s);
	f->s = NULL;
	rec[0] = 1;
	rec[21] = 0xff; /* the high byte of the hmac key length (offset 20, LE) */
	raw_put(f->path, "sensors", sn.uuid, 16, rec, len);

	/* Garbage everywhere else, and a key of the wrong size. */
	make_uuid(u2, 2);
	raw_put(f->path, "stats", sn.uuid, 16, garbage, sizeof(garbage));
	raw_put(f->path, "users", "eve", 3, garbage, sizeof(garbage));
	raw_put(f->path, "sensors", "short", 5, garbage, sizeof(garbage));
	raw_put(f->path, "block_ip", "short", 5, garbage, sizeof(garbage));
	raw_put(f->path, "daily", "x", 1, garbage, sizeof(garbage));
	raw_put(f->path, "kicks", u2, 16, garbage, sizeof(garbage));
	raw_put(f->path, "meta", "policy_generation", 17, garbage, 3);

	f->s = open_store(f->path, false);
	assert_int_equal(d4_store_sensor_get(f->s, sn.uuid, &got), -EINVAL);
	assert_int_equal(d4_store_sensor_set_state(f->s, sn.uuid, D4_SENSOR_APPROVED, 1), -EINVAL);
	assert_int_equal(d4_store_stats_get(f->s, sn.uuid, st), -EINVAL);
	assert_int_equal(d4_store_stats_apply(f->s, &d, 1), -EINVAL);
	struct d4_user u;
	assert_int_equal(d4_store_user_get(f->s, "eve", &u), -EINVAL);
	uint64_t g;
	assert_int_equal(d4_store_policy_generation(f->s, &g), -EINVAL);
	/* A policy write cannot bump a malformed generation: the whole commit fails. */
	assert_int_equal(d4_store_type_set_accepted(f->s, 1, true, 1), -EINVAL);

	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_sensor_iterate(&t, count_sensor, &n), -EINVAL);
	assert_int_equal(d4_block_ip_iterate(&t, count_ip, &n), -EINVAL);
	struct daily_seen seen = {0};
	assert_int_equal(d4_daily_iterate(&t, NULL, 0, 10, collect_daily, &seen), -EINVAL);
	uint64_t when;
	assert_int_equal(d4_kick_get(&t, u2, &when), -EINVAL);
	assert_int_equal(d4_kick_clear(&t, u2, 0), 0); /* a malformed request can be cleared */
	d4_txn_abort(&t);
	free(st);
}

/* ---- d4_net ---- */

static void expect_range(const char *text, const char *start, const char *end, int prefix,
                         const char *formatted)
{
	struct d4_ip_range r;
	uint8_t a[16], b[16];
	char out[D4_IP_RANGE_STR_MAX];
	const char *why = NULL;

	if (d4_ip_range_parse_str(text, &r, &why) != 0)
		fail_msg("%s: %s", text, why);
	ip(start, a);
	ip(end, b);
	assert_memory_equal(r.start, a, 16);
	assert_memory_equal(r.end, b, 16);
	assert_int_equal(d4_ip_range_prefix(&r), prefix);
	assert_int_equal(d4_ip_range_format(&r, out, sizeof(out)), 0);
	assert_string_equal(out, formatted);
}

static void expect_refused(const char *text, const char *reason)
{
	struct d4_ip_range r;
	const char *why = NULL;

	assert_int_equal(d4_ip_range_parse_str(text, &r, &why), -EINVAL);
	assert_non_null(why);
	if (strcmp(why, reason) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", text, why, reason);
}

static void test_net_cidr(void **state)
{
	uint8_t a[16];
	char out[D4_IP_STR_MAX];
	(void)state;

	expect_range("10.0.0.0/8", "10.0.0.0", "10.255.255.255", 8, "10.0.0.0/8");
	expect_range("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 0, "0.0.0.0/0");
	expect_range("192.0.2.7/32", "192.0.2.7", "192.0.2.7", 32, "192.0.2.7/32");
	expect_range("192.0.2.7", "192.0.2.7", "192.0.2.7", 32, "192.0.2.7/32");
	expect_range(" 192.0.2.0/25\n", "192.0.2.0", "192.0.2.127", 25, "192.0.2.0/25");
	expect_range("2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 32,
	             "2001:db8::/32");
	expect_range("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, "::/0");
	expect_range("2001:db8::1/128", "2001:db8::1", "2001:db8::1", 128, "2001:db8::1/128");
	expect_range("2001:DB8::1", "2001:db8::1", "2001:db8::1", 128, "2001:db8::1/128");
	/* v4-mapped in v6 form takes a v6 prefix and is the same range as the v4 form. */
	expect_range("::ffff:10.0.0.0/104", "10.0.0.0", "10.255.255.255", 8, "10.0.0.0/8");
	expect_range("::ffff:0:0/96", "0.0.0.0", "255.255.255.255", 0, "0.0.0.0/0");
	/* Ranges that are not one block. */
	expect_range("10.0.0.5-10.0.0.9", "10.0.0.5", "10.0.0.9", -1, "10.0.0.5-10.0.0.9");
	expect_range("10.0.0.0 - 10.0.1.255", "10.0.0.0", "10.0.1.255", 23, "10.0.0.0/23");
	expect_range("2001:db8::-2001:db8::2", "2001:db8::", "2001:db8::2", -1,
	             "2001:db8::-2001:db8::2");

	expect_refused("10.0.0.1/8", "host bits set");
	expect_refused("2001:db8::1/32", "host bits set");
	expect_refused("10.0.0.0/33", "prefix length out of range");
	expect_refused("2001:db8::/129", "prefix length out of range");
	expect_refused("10.0.0.0/", "bad prefix length");
	expect_refused("10.0.0.0/-1", "bad prefix length");
	expect_refused("10.0.0.0/8/8", "bad prefix length");
	expect_refused("10.0.0.0/1000", "bad prefix length");
	expect_refused("10.0.0.0/ 8", "bad prefix length");
	expect_refused("10.0.0/8", "not an IP address");
	expect_refused("256.0.0.0", "not an IP address");
	expect_refused("hello", "not an IP address");
	expect_refused("", "not an IP address");
	expect_refused("/8", "not an IP address");
	expect_refused("fe80::1%eth0", "not an IP address");
	expect_refused("10.0.0.9-10.0.0.5", "range start after end");
	expect_refused("10.0.0.1-2001:db8::1", "mixed address families");
	expect_refused("10.0.0.1-", "not an IP address");

	/* in_range at the edges. */
	struct d4_ip_range r;
	assert_int_equal(d4_ip_range_parse_str("10.0.0.0/8", &r, NULL), 0);
	ip("10.0.0.0", a);
	assert_true(d4_ip_in_range(a, &r));
	ip("10.255.255.255", a);
	assert_true(d4_ip_in_range(a, &r));
	ip("11.0.0.0", a);
	assert_false(d4_ip_in_range(a, &r));
	ip("::a00:1", a); /* 10.0.0.1 as v4-compatible v6 is another address */
	assert_false(d4_ip_in_range(a, &r));
	assert_false(d4_ip_is_v4(a));

	ip("::ffff:192.0.2.1", a);
	assert_true(d4_ip_is_v4(a));
	assert_int_equal(d4_ip_format(a, out, sizeof(out)), 0);
	assert_string_equal(out, "192.0.2.1");
	assert_int_equal(d4_ip_format(a, out, 5), -ENOSPC);
	assert_int_equal(d4_ip_format(r.end, out, sizeof(out)), 0);
	assert_string_equal(out, "10.255.255.255");
	assert_int_equal(d4_ip_range_format(&r, out, 8), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_create_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sensor_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sensor_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daily_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_ip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_uuid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kicks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test(test_net_cidr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
