/*
 * test_store_queue_ctl.c — analyzer queue control in the store
 * (common/d4_store.c): the `queue_ctl` records d4-web and d4ctl write and
 * d4-dispatch acts on, the queue v2 counters record (paused, when_full,
 * backpressure, emptied) and its reading of v1 records, and a read-only open
 * of a store made before `queue_ctl` existed.
 *
 * Records no accessor would write (a v1 counters record, a bad flag, a store
 * without the new database) are made with raw LMDB calls on a closed store:
 * LMDB forbids opening one environment twice in one process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "d4_store.h"

struct fixture {
	char dir[64];
	char path[96];
	struct d4_store *s;
};

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
	snprintf(f->dir, sizeof(f->dir), "/tmp/d4-test-qctl-XXXXXX");
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

/* Runs fn on the raw environment of the (closed) store, in one write transaction. */
static void raw(struct fixture *f, void (*fn)(MDB_txn *txn, void *arg), void *arg)
{
	MDB_env *env;
	MDB_txn *txn;

	d4_store_close(f->s);
	f->s = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
	assert_int_equal(mdb_env_open(env, f->path, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	fn(txn, arg);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void raw_put(MDB_txn *txn, const char *db, const char *key, const uint8_t *val, size_t len)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};

	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/* ---- queue_ctl ---- */

static int count_ctl(const struct d4_queue_ctl *c, void *ctx)
{
	(void)c;
	(*(unsigned *)ctx)++;
	return 0;
}

static void test_ctl_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_ctl c;
	struct d4_txn t;
	uint64_t gen0, gen1, seq = 0;
	unsigned n = 0;
	char long_name[D4_QUEUE_NAME_MAX + 2], long_user[D4_USER_NAME_MAX + 2];

	assert_int_equal(d4_store_policy_generation(f->s, &gen0), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), -ENOENT);
	assert_int_equal(d4_queue_ctl_mark_applied(&t, "archive", 1), -ENOENT);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "archive", true, "alice", 100), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), 0);
	assert_string_equal(c.name, "archive");
	assert_true(c.paused);
	assert_int_equal(c.empty_requested, 0);
	assert_int_equal(c.empty_applied, 0);
	assert_int_equal(c.updated, 100);
	assert_string_equal(c.by, "alice");

	/* empty requests are numbered; pausing or resuming keeps the numbers */
	assert_int_equal(d4_queue_ctl_request_empty(&t, "archive", "bob", 101, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(d4_queue_ctl_request_empty(&t, "archive", NULL, 102, &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "archive", false, "carol", 103), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), 0);
	assert_false(c.paused);
	assert_int_equal(c.empty_requested, 2);
	assert_int_equal(c.updated, 103);
	assert_string_equal(c.by, "carol");

	/* dispatch's mark never lowers what it recorded, and leaves the rest alone */
	assert_int_equal(d4_queue_ctl_mark_applied(&t, "archive", 2), 0);
	assert_int_equal(d4_queue_ctl_mark_applied(&t, "archive", 1), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), 0);
	assert_int_equal(c.empty_applied, 2);
	assert_int_equal(c.empty_requested, 2);
	assert_false(c.paused);
	assert_string_equal(c.by, "carol");

	/* an empty request on a queue without a record creates it, not paused */
	assert_int_equal(d4_queue_ctl_request_empty(&t, "pdns", "alice", 104, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(d4_queue_ctl_get(&t, "pdns", &c), 0);
	assert_false(c.paused);
	assert_int_equal(d4_queue_ctl_iterate(&t, count_ctl, &n), 0);
	assert_int_equal(n, 2);

	/* names and users are checked */
	memset(long_name, 'q', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(long_user, 'u', sizeof(long_user) - 1);
	long_user[sizeof(long_user) - 1] = '\0';
	assert_int_equal(d4_queue_ctl_set_paused(&t, long_name, true, "alice", 1), -EINVAL);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "two words", true, "alice", 1), -EINVAL);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "", true, "alice", 1), -EINVAL);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "pdns", true, long_user, 1), -EINVAL);
	assert_int_equal(d4_queue_ctl_delete(&t, "pdns"), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "pdns", &c), -ENOENT);
	assert_int_equal(d4_queue_ctl_delete(&t, "pdns"), -ENOENT);
	assert_int_equal(d4_txn_commit(&t), 0);

	/* not policy: ingest has nothing to reload */
	assert_int_equal(d4_store_policy_generation(f->s, &gen1), 0);
	assert_int_equal(gen1, gen0);

	/* a read transaction cannot write it */
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "archive", true, "alice", 1), -EACCES);
	d4_txn_abort(&t);
}

static void put_bad_ctl(MDB_txn *txn, void *arg)
{
	/* v1, flags 0x02 (unknown), then the rest */
	static const uint8_t bad_flag[] = {1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	                                   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t short_rec[] = {1, 0, 1, 5};
	(void)arg;
	raw_put(txn, "queue_ctl", "badflag", bad_flag, sizeof(bad_flag));
	raw_put(txn, "queue_ctl", "short", short_rec, sizeof(short_rec));
}

static void test_ctl_malformed(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_ctl c;
	struct d4_txn t;
	unsigned n = 0;

	raw(f, put_bad_ctl, NULL);
	f->s = open_store(f->path, false);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "badflag", &c), -EINVAL);
	assert_int_equal(d4_queue_ctl_get(&t, "short", &c), -EINVAL);
	assert_int_equal(d4_queue_ctl_iterate(&t, count_ctl, &n), -EINVAL);
	d4_txn_abort(&t);
	/* a malformed record is never built upon */
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "short", true, "alice", 1), -EINVAL);
	assert_int_equal(d4_queue_ctl_delete(&t, "short"), 0);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "short", true, "alice", 1), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
}

/* ---- queue counters v2 and v1 ---- */

static void test_queue_v2(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_stats q = {.received = 10, .delivered = 4, .acknowledged = 3,
	                           .in_memory = 700, .dropped = 1, .state = D4_QUEUE_RUNNING,
	                           .updated = 50, .paused = true, .drop_oldest = false,
	                           .backpressure = true, .emptied = 6},
	                      got;
	struct d4_txn t;

	snprintf(q.name, sizeof(q.name), "archive");
	assert_int_equal(d4_store_queue_put(f->s, &q), 0);
	q.paused = false;
	q.drop_oldest = true;
	q.backpressure = false;
	q.emptied = 0;
	snprintf(q.name, sizeof(q.name), "pdns");
	assert_int_equal(d4_store_queue_put(f->s, &q), 0);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_get(&t, "archive", &got), 0);
	assert_true(got.paused);
	assert_false(got.drop_oldest);
	assert_true(got.backpressure);
	assert_int_equal(got.emptied, 6);
	assert_int_equal(got.received, 10);
	assert_int_equal(got.in_memory, 700);
	assert_int_equal(d4_queue_get(&t, "pdns", &got), 0);
	assert_false(got.paused);
	assert_true(got.drop_oldest);
	assert_false(got.backpressure);
	assert_int_equal(got.emptied, 0);
	d4_txn_abort(&t);
}

/* A queue v1 record as a program before queue control wrote it. */
static size_t queue_v1(uint8_t *p, uint16_t version, bool extra)
{
	size_t n = 0;
	p[n++] = (uint8_t)version;
	p[n++] = (uint8_t)(version >> 8);
	for (int i = 0; i < 6; i++) { /* received .. dropped */
		memset(p + n, 0, 8);
		p[n] = (uint8_t)(i + 1);
		n += 8;
	}
	memset(p + n, 0, 4); /* restarts */
	p[n] = 2;
	n += 4;
	p[n++] = 1;        /* running */
	memset(p + n, 0, 16); /* updated, last_error_time */
	n += 16;
	p[n++] = 2;        /* last_error "ok" */
	p[n++] = 0;
	p[n++] = 'o';
	p[n++] = 'k';
	if (extra) {
		p[n++] = 0x08; /* an unknown flag */
		memset(p + n, 0, 8);
		n += 8;
	}
	return n;
}

static void put_old_queues(MDB_txn *txn, void *arg)
{
	uint8_t buf[256];
	size_t n;
	(void)arg;
	n = queue_v1(buf, 1, false);
	raw_put(txn, "queues", "old", buf, n);
	n = queue_v1(buf, 1, true); /* v1 with v2's tail: bytes left over */
	raw_put(txn, "queues", "v1long", buf, n);
	n = queue_v1(buf, 2, false); /* v2 without its tail */
	raw_put(txn, "queues", "v2short", buf, n);
	n = queue_v1(buf, 2, true); /* v2 with an unknown flag */
	raw_put(txn, "queues", "v2flag", buf, n);
	n = queue_v1(buf, 3, false);
	raw_put(txn, "queues", "v3", buf, n);
}

static void test_queue_v1_read(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_stats got;
	struct d4_txn t;

	raw(f, put_old_queues, NULL);
	f->s = open_store(f->path, false);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_get(&t, "old", &got), 0);
	assert_int_equal(got.received, 1);
	assert_int_equal(got.dropped, 6);
	assert_int_equal(got.restarts, 2);
	assert_int_equal(got.state, D4_QUEUE_RUNNING);
	assert_string_equal(got.last_error, "ok");
	assert_false(got.paused);
	assert_false(got.drop_oldest);
	assert_int_equal(got.emptied, 0);
	assert_int_equal(d4_queue_get(&t, "v1long", &got), -EINVAL);
	assert_int_equal(d4_queue_get(&t, "v2short", &got), -EINVAL);
	assert_int_equal(d4_queue_get(&t, "v2flag", &got), -EINVAL);
	assert_int_equal(d4_queue_get(&t, "v3", &got), -EINVAL);
	d4_txn_abort(&t);
}

/* ---- a store from before queue_ctl ---- */

static void drop_queue_ctl(MDB_txn *txn, void *arg)
{
	MDB_dbi dbi;
	(void)arg;
	assert_int_equal(mdb_dbi_open(txn, "queue_ctl", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
}

static void test_old_store(void **state)
{
	struct fixture *f = *state;
	struct d4_queue_ctl c;
	struct d4_txn t;
	unsigned n = 0;

	raw(f, drop_queue_ctl, NULL);
	/* read-only: the missing database reads as empty, the open does not fail */
	f->s = open_store(f->path, true);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), -ENOENT);
	assert_int_equal(d4_queue_ctl_iterate(&t, count_ctl, &n), 0);
	assert_int_equal(n, 0);
	d4_txn_abort(&t);
	assert_int_equal(d4_txn_begin(f->s, &t, true), -EROFS);
	d4_store_close(f->s);
	/* writable: created */
	f->s = open_store(f->path, false);
	assert_int_equal(d4_txn_begin(f->s, &t, true), 0);
	assert_int_equal(d4_queue_ctl_set_paused(&t, "archive", true, "alice", 5), 0);
	assert_int_equal(d4_txn_commit(&t), 0);
	d4_store_close(f->s);
	f->s = open_store(f->path, true);
	assert_int_equal(d4_txn_begin(f->s, &t, false), 0);
	assert_int_equal(d4_queue_ctl_get(&t, "archive", &c), 0);
	assert_true(c.paused);
	d4_txn_abort(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ctl_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_v1_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_store, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
