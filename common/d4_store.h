/*
 * d4_store.h — the LMDB store every D4 process shares: sensors, blocklists,
 * accepted types, users, API tokens, kick requests, statistics, queue
 * counters and queue controls.
 *
 * One LMDB environment (a directory) holds one named database per kind of
 * record. The key layout of every database and the binary encoding of every
 * record are private to d4_store.c; a process only calls the accessors
 * below, so a layout change touches one file. docs/store.md is the one
 * description of the on-disk format, who writes what and why.
 *
 * Records are versioned (a leading u16), little-endian, strings as u16
 * length + bytes with a maximum each; decoding is bounds-checked and a record
 * that does not decode is -EINVAL, never a crash or a guess.
 *
 * Transactions: every accessor takes a struct d4_txn, so that a caller can
 * make several operations atomic (read a sensor and its statistics from one
 * snapshot; register a sensor and block its old uuid in one commit). The
 * d4_store_* functions at the end are one-shot forms that begin, run and
 * commit (or abort) their own transaction.
 *
 * LMDB allows one writer at a time across all processes. Keep write
 * transactions short (no I/O, no waiting on a peer inside one): d4-ingest
 * writes its statistics once a second and must never wait long on d4-web.
 *
 * Errors are negative: -ENOENT (absent), -EEXIST (already there), -EINVAL
 * (bad argument or malformed record), -EPERM (state transition not allowed),
 * D4_STORE_ESCHEMA, or an LMDB code (MDB_MAP_FULL, ...). d4_store_strerror()
 * turns any of them into text. Times are seconds since the epoch, given by
 * the caller (no hidden clock: tests and batch tools pass their own).
 */
#ifndef D4_STORE_H
#define D4_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_net.h"
#include "d4_proto.h"

/* Bumped when a key layout changes or a record loses a field: no silent migration. */
#define D4_STORE_SCHEMA_VERSION 1
#define D4_STORE_DEFAULT_MAP_SIZE ((size_t)1 << 30) /* 1 GiB, sparse on disk */
#define D4_STORE_DEFAULT_MAX_READERS 126u           /* LMDB's default; one per open read txn */
#define D4_STORE_ERR_LEN 256
/* Not an LMDB code (those are -30799..-30780): the store has another schema version. */
#define D4_STORE_ESCHEMA (-31000)

/* Limits of the variable-length fields (bytes, without a NUL). */
#define D4_SENSOR_KEY_MAX 256
#define D4_SENSOR_DESC_MAX 512
#define D4_SENSOR_MAIL_MAX 254
#define D4_SENSOR_GROUPS_MAX 8
#define D4_GROUP_NAME_MAX 32
#define D4_CERT_PIN_SIZE 32 /* SHA-256 of the client certificate (DER) */
#define D4_META_TYPE_MAX 64
#define D4_COMMENT_MAX 256
#define D4_USER_NAME_MAX 64
#define D4_PWHASH_MAX 256
#define D4_TOKEN_HASH_SIZE 32
#define D4_TOKEN_DESC_MAX 256
#define D4_ERROR_TEXT_MAX 256
#define D4_QUEUE_NAME_MAX 64
#define D4_STATS_ADDRS 16    /* last source addresses kept per sensor */
#define D4_STATS_META_MAX 32 /* meta-type names counted per sensor */
#define D4_TYPES 256

struct d4_store;
struct MDB_txn;

struct d4_store_opts {
	size_t map_size;      /* 0: D4_STORE_DEFAULT_MAP_SIZE */
	unsigned max_readers; /* 0: D4_STORE_DEFAULT_MAX_READERS */
	bool read_only;       /* tools: never creates or writes; a missing store is an error */
};

/*
 * A transaction. The caller owns the struct (on its stack); the fields are
 * the store's. A write transaction that touched policy (sensors,
 * blocklists, accepted types, kicks) bumps the policy generation once, at
 * commit, in the same commit.
 */
struct d4_txn {
	struct d4_store *store;
	struct MDB_txn *txn;
	bool write;
	bool policy_changed;
};

/*
 * Opens (or, unless read_only, creates) the store in directory `path`
 * (created 0700 when missing; files 0600). A fresh store is stamped with
 * D4_STORE_SCHEMA_VERSION; a store with another version is refused with
 * D4_STORE_ESCHEMA. On failure `err` (when not NULL) holds a sentence that
 * names the path. Open the store in each process after fork(), never before.
 */
int d4_store_open(struct d4_store **out, const char *path, const struct d4_store_opts *opts,
                  char *err, size_t errlen);
void d4_store_close(struct d4_store *s);
const char *d4_store_path(const struct d4_store *s);
const char *d4_store_strerror(int rc);

int d4_txn_begin(struct d4_store *s, struct d4_txn *t, bool write);
/* Commits (bumping the policy generation first if needed); the txn is over either way. */
int d4_txn_commit(struct d4_txn *t);
void d4_txn_abort(struct d4_txn *t);

/* ---- meta ---- */

/*
 * The policy generation: a counter every policy write bumps in its own
 * commit. d4-ingest reads it once a second and reloads its policy when it
 * changed; 0 for a store nobody has written policy to yet.
 */
int d4_policy_generation(struct d4_txn *t, uint64_t *gen);
/* The schema version the store was stamped with. */
int d4_schema_version(struct d4_txn *t, uint32_t *version);

/* ---- sensors ---- */

enum d4_sensor_state {
	D4_SENSOR_PENDING = 0,
	D4_SENSOR_APPROVED = 1,
	D4_SENSOR_REJECTED = 2,
};

struct d4_sensor_settings {
	uint32_t max_payload;    /* 0: the server's limit */
	uint64_t rate_limit_bps; /* bytes per second; 0: unlimited */
	bool has_cert_pin;
	uint8_t cert_pin[D4_CERT_PIN_SIZE];
	unsigned n_groups;
	char groups[D4_SENSOR_GROUPS_MAX][D4_GROUP_NAME_MAX + 1];
};

struct d4_sensor {
	uint8_t uuid[D4_UUID_SIZE];
	enum d4_sensor_state state;
	bool third_party;
	uint64_t created;
	uint64_t updated;
	size_t hmac_key_len; /* 0: the server's shared key applies */
	uint8_t hmac_key[D4_SENSOR_KEY_MAX];
	char description[D4_SENSOR_DESC_MAX + 1];
	char mail[D4_SENSOR_MAIL_MAX + 1];
	struct d4_sensor_settings settings;
};

typedef int (*d4_sensor_cb)(const struct d4_sensor *s, void *ctx);

const char *d4_sensor_state_name(enum d4_sensor_state st); /* "pending", ... */
int d4_sensor_state_from_name(const char *name);            /* -1 if unknown */

/* Adds a sensor (uuid must be v4); -EEXIST if the uuid is registered. Sets created/updated. */
int d4_sensor_register(struct d4_txn *t, const struct d4_sensor *s, uint64_t now);
/*
 * Replaces an existing registration (key, description, mail, third_party,
 * settings); keeps `state` and `created`, sets `updated`. -ENOENT if absent.
 */
int d4_sensor_update(struct d4_txn *t, const struct d4_sensor *s, uint64_t now);
/* Replaces only the settings; -ENOENT if absent. */
int d4_sensor_set_settings(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                           const struct d4_sensor_settings *st, uint64_t now);
/*
 * pending -> approved | rejected, approved <-> rejected; the same state is a
 * no-op. Back to pending is -EPERM (delete and register again instead).
 */
int d4_sensor_set_state(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                        enum d4_sensor_state st, uint64_t now);
int d4_sensor_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor *out);
/* Deletes the registration (statistics stay; see d4_stats_delete). */
int d4_sensor_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE]);
/* In uuid order. A nonzero callback return stops the walk and is returned. */
int d4_sensor_iterate(struct d4_txn *t, d4_sensor_cb cb, void *ctx);
/* The same from the first sensor whose uuid is >= from (a page's cursor); NULL: the first. */
int d4_sensor_iterate_from(struct d4_txn *t, const uint8_t *from, d4_sensor_cb cb, void *ctx);

/* ---- blocklists ---- */

struct d4_block_uuid {
	uint8_t uuid[D4_UUID_SIZE];
	uint64_t created;
	uint64_t expires; /* 0: permanent; else a temporary ban until then */
	char comment[D4_COMMENT_MAX + 1];
};

struct d4_block_ip {
	struct d4_ip_range range;
	uint64_t created;
	uint64_t expires; /* 0: permanent */
	char comment[D4_COMMENT_MAX + 1];
};

typedef int (*d4_block_uuid_cb)(const struct d4_block_uuid *b, void *ctx);
typedef int (*d4_block_ip_cb)(const struct d4_block_ip *b, void *ctx);

/* Whether an entry with this expiry is in force at `now`. */
static inline bool d4_block_active(uint64_t expires, uint64_t now)
{
	return expires == 0 || now < expires;
}

/* Adds or replaces. */
int d4_block_uuid_put(struct d4_txn *t, const struct d4_block_uuid *b);
/* The entry whatever its expiry; -ENOENT if none. */
int d4_block_uuid_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_block_uuid *out);
/* 0 (and *out when not NULL) if the uuid is blocked at `now`, -ENOENT otherwise. */
int d4_block_uuid_check(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t now,
                        struct d4_block_uuid *out);
int d4_block_uuid_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE]);
int d4_block_uuid_iterate(struct d4_txn *t, d4_block_uuid_cb cb, void *ctx);

/* Adds or replaces the entry for exactly this range (start <= end). */
int d4_block_ip_put(struct d4_txn *t, const struct d4_block_ip *b);
int d4_block_ip_get(struct d4_txn *t, const struct d4_ip_range *r, struct d4_block_ip *out);
int d4_block_ip_delete(struct d4_txn *t, const struct d4_ip_range *r);
/*
 * 0 (and the first matching entry in *out when not NULL) if an entry in
 * force at `now` holds addr, -ENOENT otherwise. Walks the ranges that start
 * at or before addr: O(entries) in the worst case, which is why d4-ingest
 * loads the list into memory on a generation change instead.
 */
int d4_block_ip_match(struct d4_txn *t, const uint8_t addr[D4_IP_SIZE], uint64_t now,
                      struct d4_block_ip *out);
/* In (start, end) order. */
int d4_block_ip_iterate(struct d4_txn *t, d4_block_ip_cb cb, void *ctx);
/* Deletes the uuid and ip entries that expired at or before `now`; *removed counts them. */
int d4_block_purge_expired(struct d4_txn *t, uint64_t now, size_t *removed);

/* ---- accepted types and meta-types ---- */

/* Adds (accepted) or removes a type from the accepted set. */
int d4_type_set_accepted(struct d4_txn *t, uint8_t type, bool accepted, uint64_t now);
/* out[type] is true for each accepted type. */
int d4_types_accepted(struct d4_txn *t, bool out[D4_TYPES]);

typedef int (*d4_meta_type_cb)(const char *name, uint64_t added, void *ctx);

/* name: 1..D4_META_TYPE_MAX printable ASCII bytes without spaces. */
int d4_meta_type_set_accepted(struct d4_txn *t, const char *name, bool accepted, uint64_t now);
/* 0 if accepted, -ENOENT if not. */
int d4_meta_type_check(struct d4_txn *t, const char *name);
int d4_meta_type_iterate(struct d4_txn *t, d4_meta_type_cb cb, void *ctx);

/* ---- users and API tokens ---- */

enum d4_role {
	D4_ROLE_ADMIN = 1,
	D4_ROLE_OPERATOR = 2,
	D4_ROLE_READ_ONLY = 3,
	D4_ROLE_SENSOR_REGISTER = 4,
};

struct d4_user {
	char name[D4_USER_NAME_MAX + 1];
	enum d4_role role;
	bool must_change; /* the password must be changed at next login */
	uint64_t created;
	uint64_t last_login; /* 0: never */
	char password_hash[D4_PWHASH_MAX + 1]; /* Argon2id encoded string, made elsewhere */
};

struct d4_token {
	uint8_t hash[D4_TOKEN_HASH_SIZE]; /* SHA-256 of the token text: the token itself is never stored */
	char user[D4_USER_NAME_MAX + 1];
	char description[D4_TOKEN_DESC_MAX + 1];
	uint64_t created;
	uint64_t last_used; /* 0: never */
};

typedef int (*d4_user_cb)(const struct d4_user *u, void *ctx);
typedef int (*d4_token_cb)(const struct d4_token *tk, void *ctx);

const char *d4_role_name(enum d4_role r); /* "admin", "operator", "read-only", "sensor-register" */
int d4_role_from_name(const char *name);  /* -1 if unknown */

/* -EEXIST if the name is taken. name: 1..D4_USER_NAME_MAX printable bytes, no spaces. */
int d4_user_add(struct d4_txn *t, const struct d4_user *u);
/* Replaces an existing user (role, flag, hash, times); -ENOENT if absent. */
int d4_user_update(struct d4_txn *t, const struct d4_user *u);
int d4_user_get(struct d4_txn *t, const char *name, struct d4_user *out);
/* Sets last_login. */
int d4_user_touch_login(struct d4_txn *t, const char *name, uint64_t now);
/* Deletes the user and every token of theirs, in the same transaction. */
int d4_user_delete(struct d4_txn *t, const char *name);
int d4_user_iterate(struct d4_txn *t, d4_user_cb cb, void *ctx);

/* SHA-256 of the token text: the key tokens are stored and found under. 0 or -EIO. */
int d4_token_hash(const char *token, size_t len, uint8_t out[D4_TOKEN_HASH_SIZE]);
/* -EEXIST for a known hash, -ENOENT if tk->user does not exist. */
int d4_token_add(struct d4_txn *t, const struct d4_token *tk);
int d4_token_get(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE], struct d4_token *out);
int d4_token_touch(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE], uint64_t now);
int d4_token_delete(struct d4_txn *t, const uint8_t hash[D4_TOKEN_HASH_SIZE]);
int d4_token_iterate(struct d4_txn *t, d4_token_cb cb, void *ctx);

/* ---- kick requests ---- */

typedef int (*d4_kick_cb)(const uint8_t uuid[D4_UUID_SIZE], uint64_t requested, void *ctx);

/*
 * Asks d4-ingest to close the sensor's sessions opened before `now` (a
 * policy write: ingest sees it within a second).
 */
int d4_kick_request(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t now);
int d4_kick_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t *requested);
/*
 * Clears a request ingest has acted on. Deletes only when the stored time is
 * still `requested` (0: whatever it is), so a newer request is not lost.
 * Not a policy change (no generation bump). -ENOENT if nothing was cleared.
 */
int d4_kick_clear(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], uint64_t requested);
int d4_kick_iterate(struct d4_txn *t, d4_kick_cb cb, void *ctx);
/* Deletes requests made before `before`; *removed counts them. */
int d4_kick_purge(struct d4_txn *t, uint64_t before, size_t *removed);

/* ---- statistics ---- */

struct d4_counter {
	uint64_t packets;
	uint64_t bytes;
};

struct d4_meta_counter {
	char name[D4_META_TYPE_MAX + 1];
	struct d4_counter c;
};

struct d4_seen_addr {
	uint8_t addr[D4_IP_SIZE];
	uint64_t time;
};

struct d4_last_error {
	uint64_t time; /* 0: no error recorded */
	enum d4_reason reason;
	uint8_t peer[D4_IP_SIZE];
	uint16_t peer_port;
	char text[D4_ERROR_TEXT_MAX + 1];
};

/*
 * A sensor's statistics (about 7 KiB: iterate, do not collect thousands).
 * The all-zero uuid is the server-wide record where d4-ingest counts
 * refusals of uuids that are not registered (so that a scan of random uuids
 * cannot grow the store).
 */
struct d4_sensor_stats {
	uint8_t uuid[D4_UUID_SIZE];
	uint64_t first_seen;
	uint64_t last_seen;
	struct d4_counter total;
	uint32_t active_sessions;
	struct d4_counter types[D4_TYPES];
	unsigned n_meta;
	struct d4_meta_counter meta[D4_STATS_META_MAX];
	unsigned n_addrs; /* most recent first, each address once */
	struct d4_seen_addr addrs[D4_STATS_ADDRS];
	uint64_t refusals[D4_R_COUNT];
	struct d4_last_error last_error;
	uint64_t skewed;   /* frames whose timestamp was off by more than ingest.skew_threshold */
	int64_t last_skew; /* seconds, frame time minus server time, of the last such frame */
};

/*
 * What d4-ingest observed for one sensor since its last flush, typically one
 * delta per session per second. Pointers are the caller's, read during the
 * call only.
 */
struct d4_stats_delta {
	uint8_t uuid[D4_UUID_SIZE];
	uint64_t time;         /* when: first/last seen, the day of the daily counters */
	uint8_t type;          /* D4 type the packets and bytes were received as */
	const char *meta_type; /* meta-type name for 254 (or NULL) */
	uint64_t packets;
	uint64_t bytes;
	const uint8_t *peer;      /* source address (16 bytes) or NULL */
	uint16_t peer_port;       /* for last_error */
	enum d4_reason refusal;   /* D4_OK: none */
	uint64_t refusals;        /* how many (0 counts as 1 when refusal != D4_OK) */
	const char *error;        /* text: with refusal, becomes last_error */
	int64_t active_sessions;  /* >= 0: the sensor's current count; < 0: unchanged */
	uint64_t skewed;          /* frames with a skewed timestamp */
	int64_t skew;             /* the last one's skew in seconds (frame minus server) */
};

/* One day's counters of one (sensor, type, meta-type). */
struct d4_daily {
	uint8_t uuid[D4_UUID_SIZE];
	uint32_t day; /* days since 1970-01-01 UTC */
	uint8_t type;
	char meta_type[D4_META_TYPE_MAX + 1]; /* "" when none */
	struct d4_counter c;
};

typedef int (*d4_stats_cb)(const struct d4_sensor_stats *st, void *ctx);
typedef int (*d4_daily_cb)(const struct d4_daily *d, void *ctx);

static inline uint32_t d4_day_from_time(uint64_t t)
{
	return (uint32_t)(t / 86400u);
}

/*
 * Applies n deltas with read-modify-write in the caller's write
 * transaction: totals, per type and per meta-type counters, first/last seen,
 * the ring of last addresses, refusal counters, last error, active sessions,
 * and the daily counters. Every delta is checked before anything is
 * written: one bad delta (-EINVAL) leaves the transaction untouched.
 */
int d4_stats_apply(struct d4_txn *t, const struct d4_stats_delta *deltas, size_t n);
int d4_stats_get(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor_stats *out);
int d4_stats_delete(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE]);
/* Sets every active_sessions to 0 (d4-ingest at start: nobody is connected yet). */
int d4_stats_reset_sessions(struct d4_txn *t);
int d4_stats_iterate(struct d4_txn *t, d4_stats_cb cb, void *ctx);
/*
 * Daily counters for days day_from..day_to (inclusive), in (uuid, day,
 * type, meta-type) order; uuid NULL means every sensor. One cursor walk.
 */
int d4_daily_iterate(struct d4_txn *t, const uint8_t *uuid, uint32_t day_from, uint32_t day_to,
                     d4_daily_cb cb, void *ctx);
/* Deletes daily counters of days before `before_day`; *removed counts them. */
int d4_daily_purge(struct d4_txn *t, uint32_t before_day, size_t *removed);

/* ---- analyzer queues (written by d4-dispatch) ---- */

enum d4_queue_state {
	D4_QUEUE_STOPPED = 0,
	D4_QUEUE_RUNNING = 1,
	D4_QUEUE_BACKOFF = 2, /* worker died, restart pending */
	D4_QUEUE_FAILED = 3,  /* gave up restarting */
};

struct d4_queue_stats {
	char name[D4_QUEUE_NAME_MAX + 1];
	uint64_t received;
	uint64_t delivered;
	uint64_t acknowledged;
	uint64_t in_memory; /* bytes buffered now */
	uint64_t spooled;   /* bytes on disk now */
	uint64_t dropped;
	uint32_t restarts;
	enum d4_queue_state state;
	uint64_t updated;
	uint64_t last_error_time;
	char last_error[D4_ERROR_TEXT_MAX + 1];
	/* queue v2 (a v1 record reads as false, false, false, 0) */
	bool paused;       /* an operator paused it (queue_ctl): it holds, delivers nothing */
	bool drop_oldest;  /* its when_full is drop-oldest (else pause) */
	bool backpressure; /* it is at its limit and makes d4-dispatch pause ingest */
	uint64_t emptied;  /* records discarded by operator "empty" requests */
};

typedef int (*d4_queue_cb)(const struct d4_queue_stats *q, void *ctx);

const char *d4_queue_state_name(enum d4_queue_state st);
/* Adds or replaces. */
int d4_queue_put(struct d4_txn *t, const struct d4_queue_stats *q);
int d4_queue_get(struct d4_txn *t, const char *name, struct d4_queue_stats *out);
int d4_queue_delete(struct d4_txn *t, const char *name);
int d4_queue_iterate(struct d4_txn *t, d4_queue_cb cb, void *ctx);

/*
 * Queue control: what an operator asked of a queue (d4-web, d4ctl), acted
 * on by d4-dispatch within a second (it reads the `queue_ctl` database on
 * its one-second tick, like d4-ingest reads kick requests). Not policy: no
 * generation bump. `paused` is a state (it stays until resumed, across
 * dispatch restarts); "empty" is a request numbered by empty_requested,
 * carried out once: dispatch records the number it acted on in
 * empty_applied, so a restart never empties a queue again.
 */
struct d4_queue_ctl {
	char name[D4_QUEUE_NAME_MAX + 1];
	bool paused;
	uint64_t empty_requested; /* number of the last empty request (0: none ever) */
	uint64_t empty_applied;   /* the last one d4-dispatch carried out */
	uint64_t updated;         /* time of the last request (pause, resume, empty) */
	char by[D4_USER_NAME_MAX + 1]; /* who made it ("" when unknown) */
};

typedef int (*d4_queue_ctl_cb)(const struct d4_queue_ctl *c, void *ctx);

/* -ENOENT: no record (the queue runs, nothing was ever asked). */
int d4_queue_ctl_get(struct d4_txn *t, const char *name, struct d4_queue_ctl *out);
/* Pauses or resumes (creates the record when needed); by: the user, may be NULL. */
int d4_queue_ctl_set_paused(struct d4_txn *t, const char *name, bool paused, const char *by,
                            uint64_t now);
/* Asks for one more "empty"; *seq (when not NULL) is its number. */
int d4_queue_ctl_request_empty(struct d4_txn *t, const char *name, const char *by, uint64_t now,
                               uint64_t *seq);
/* d4-dispatch: requests up to seq are done (never lowers it). -ENOENT: no record. */
int d4_queue_ctl_mark_applied(struct d4_txn *t, const char *name, uint64_t seq);
int d4_queue_ctl_delete(struct d4_txn *t, const char *name);
int d4_queue_ctl_iterate(struct d4_txn *t, d4_queue_ctl_cb cb, void *ctx);

/* ---- one-shot forms: each runs in its own transaction ---- */

int d4_store_policy_generation(struct d4_store *s, uint64_t *gen);
int d4_store_sensor_register(struct d4_store *s, const struct d4_sensor *sn, uint64_t now);
int d4_store_sensor_update(struct d4_store *s, const struct d4_sensor *sn, uint64_t now);
int d4_store_sensor_set_state(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE],
                              enum d4_sensor_state st, uint64_t now);
int d4_store_sensor_get(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE], struct d4_sensor *out);
int d4_store_sensor_delete(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE]);
int d4_store_block_uuid_put(struct d4_store *s, const struct d4_block_uuid *b);
int d4_store_block_uuid_delete(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE]);
int d4_store_block_ip_put(struct d4_store *s, const struct d4_block_ip *b);
int d4_store_block_ip_delete(struct d4_store *s, const struct d4_ip_range *r);
int d4_store_type_set_accepted(struct d4_store *s, uint8_t type, bool accepted, uint64_t now);
int d4_store_meta_type_set_accepted(struct d4_store *s, const char *name, bool accepted,
                                    uint64_t now);
int d4_store_user_add(struct d4_store *s, const struct d4_user *u);
int d4_store_user_get(struct d4_store *s, const char *name, struct d4_user *out);
int d4_store_token_add(struct d4_store *s, const struct d4_token *tk);
int d4_store_token_get(struct d4_store *s, const uint8_t hash[D4_TOKEN_HASH_SIZE],
                       struct d4_token *out);
int d4_store_kick_request(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE], uint64_t now);
int d4_store_stats_apply(struct d4_store *s, const struct d4_stats_delta *deltas, size_t n);
int d4_store_stats_get(struct d4_store *s, const uint8_t uuid[D4_UUID_SIZE],
                       struct d4_sensor_stats *out);
int d4_store_queue_put(struct d4_store *s, const struct d4_queue_stats *q);

#endif
