/*
 * ingest.h — d4-ingest, the TLS sensor server: its configuration, its one
 * context struct, and the interfaces between its files.
 *
 *   main.c     options, configuration, workers, signals
 *   conf.c     [ingest] options into struct ingest_conf
 *   tls.c      OpenSSL over libuv streams (a BIO that reads the bytes libuv
 *              just read, and queues what OpenSSL writes)
 *   session.c  one sensor connection: TLS, D4 decoding, every check, hand-off
 *   policy.c   registrations, keys, blocklists, accepted types, kicks: an
 *              in-memory snapshot of the store, reloaded when it changes
 *   active.c   the (uuid, type) sessions open across all workers
 *   stats.c    per-sensor statistics, flushed to the store once a second
 *   link.c     the acknowledged stream to d4-dispatch (docs/ipc.md)
 *
 * One process (or one per worker, sharing the listening sockets) runs one
 * libuv loop; nothing blocks it but the store's short transactions.
 */
#ifndef D4_INGEST_H
#define D4_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "d4_config.h"
#include "d4_daemon.h"
#include "d4_ipc.h"
#include "d4_net.h"
#include "d4_proto.h"
#include "d4_store.h"

#define INGEST_MAX_LISTEN 8
#define INGEST_READ_BUF (256u * 1024u)
/* No configuration may accept a larger payload (ingest.max_payload, per-sensor limits). */
#define INGEST_PAYLOAD_CEILING (64u << 20)

enum server_mode {
	MODE_REGISTRATION = 0, /* only approved sensors, each with its own key */
	MODE_SHARED_SECRET,    /* any v4 uuid, with the configured shared key */
};

enum client_cert_mode {
	CLIENT_CERT_OFF = 0,
	CLIENT_CERT_OPTIONAL, /* asked for; required for sensors with a pin */
	CLIENT_CERT_REQUIRED,
};

enum duplicate_policy {
	DUP_REFUSE_NEW = 0, /* the newer connection is refused (as d4-core) */
	DUP_REPLACE_OLD,    /* the older one is closed */
};

struct ingest_conf {
	char listen[INGEST_MAX_LISTEN][128];
	unsigned n_listen;
	unsigned workers;
	enum server_mode mode;
	uint8_t shared_key[D4_SENSOR_KEY_MAX];
	size_t shared_key_len;
	char cert[D4_PATH_MAX];
	char key[D4_PATH_MAX];
	enum client_cert_mode client_cert;
	char client_ca[D4_PATH_MAX];
	uint32_t max_payload;
	uint32_t meta_header_max;
	bool default_types[D4_TYPES];             /* when the store names none */
	char default_meta_types[32][D4_META_TYPE_MAX + 1];
	unsigned n_default_meta_types;
	enum duplicate_policy duplicates;
	uint64_t header_timeout_ms;  /* handshake + a header in progress */
	uint64_t payload_timeout_ms; /* a payload in progress without progress */
	uint64_t keepalive_s;
	uint64_t timestamp_window_s; /* 0: off */
	uint64_t skew_threshold_s;   /* counted in the stats beyond this, refused or not */
	uint64_t kick_ban_s;
	uint64_t output_high;        /* unacknowledged bytes to dispatch before pausing sensors */
	uint64_t max_connections;
	char dispatch_socket[D4_PATH_MAX];
	char store[D4_PATH_MAX];
};

int ingest_conf_load(struct ingest_conf *c, const struct d4_daemon *d);

/* ---- tls.c ---- */

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	BIO_METHOD *bio_method;
};

int tls_ctx_init(struct tls_ctx *t, const struct ingest_conf *c, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

/* The TLS state of one connection; lives inside struct session. */
struct tls_conn {
	SSL *ssl;
	const uint8_t *in; /* ciphertext libuv just read, not yet taken by OpenSSL */
	size_t in_len;
	uint8_t *out; /* ciphertext OpenSSL wrote, to be sent */
	size_t out_len;
	size_t out_cap;
	bool handshake_done;
};

int tls_conn_init(struct tls_conn *tc, struct tls_ctx *t);
void tls_conn_free(struct tls_conn *tc);
/* Last OpenSSL error as text (for logs), or `fallback`. */
const char *tls_error_text(char *buf, size_t len, const char *fallback);

/* ---- active.c: (uuid, type) sessions across workers ---- */

struct active_table;

struct active_table *active_create(unsigned slots);
void active_destroy(struct active_table *a);
/*
 * Claims (uuid, type) for a session: 0 when it was free; with `replace`, 1
 * when it took the claim over from another session (whose owner sees it is
 * no longer the owner and closes); -EEXIST when another session holds it and
 * !replace (*owner_pid, *owner_session name it); -ENOSPC when the table is full.
 */
int active_claim(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                 uint64_t session, bool replace, int *owner_pid, uint64_t *owner_session);
/* Releases the claim if this session still holds it. */
void active_release(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                    uint64_t session);
bool active_owns(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                 uint64_t session);
/* Sessions of this uuid across all workers. */
unsigned active_count(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE]);
/* Forgets every claim of a dead worker. */
void active_release_pid(struct active_table *a, int pid);

/* ---- policy.c ---- */

struct sensor_policy {
	uint8_t uuid[D4_UUID_SIZE];
	enum d4_sensor_state state;
	uint8_t key[D4_SENSOR_KEY_MAX];
	size_t key_len;
	uint32_t max_payload;
	uint64_t rate_limit_bps;
	bool has_cert_pin;
	uint8_t cert_pin[D4_CERT_PIN_SIZE];
};

struct policy {
	uint64_t generation;
	bool loaded;
	struct sensor_policy *sensors; /* sorted by uuid */
	size_t n_sensors;
	struct d4_ip_range *blocked_ranges; /* merged, sorted, in force now */
	size_t n_blocked_ranges;
	uint8_t (*blocked_uuids)[D4_UUID_SIZE]; /* sorted, in force now */
	size_t n_blocked_uuids;
	uint64_t next_expiry; /* earliest expiry of a temporary entry; 0: none */
	struct kick {
		uint8_t uuid[D4_UUID_SIZE];
		uint64_t requested;
	} *kicks;
	size_t n_kicks;
	bool types[D4_TYPES];
	char (*meta_types)[D4_META_TYPE_MAX + 1];
	size_t n_meta_types;
};

/* Reloads from the store when its generation changed (or `force`). 1 when reloaded. */
int policy_refresh(struct policy *p, struct d4_store *s, const struct ingest_conf *c,
                   uint64_t now, bool force);
void policy_free(struct policy *p);
const struct sensor_policy *policy_sensor(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE]);
bool policy_uuid_blocked(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE]);
bool policy_addr_blocked(const struct policy *p, const uint8_t addr[D4_IP_SIZE]);
bool policy_meta_type_accepted(const struct policy *p, const char *name);
/* The newest kick request for a uuid, 0 when none. */
uint64_t policy_kick_time(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE]);

/* ---- the context of one ingest process ---- */

struct session;

struct ingest {
	uv_loop_t *loop;
	struct ingest_conf conf;
	struct tls_ctx tls;
	struct d4_store *store;
	struct policy policy;
	struct active_table *active; /* shared with the other workers */
	unsigned worker;
	uint64_t instance;    /* random per process start: session ids are instance-unique */
	uint64_t next_session;
	uv_tcp_t listeners[INGEST_MAX_LISTEN];
	unsigned n_listeners;
	uv_timer_t tick; /* once a second: policy, timeouts, statistics */
	uv_signal_t sigterm, sigint;
	struct session *sessions; /* doubly linked, every open connection */
	uint64_t n_sessions;
	bool paused; /* reading from sensors is stopped (dispatch is behind) */
	bool policy_reloaded;       /* reloaded outside the tick: recheck sessions at the next */
	bool stopping;
	uint8_t read_buf[INGEST_READ_BUF];  /* ciphertext: libuv reads here */
	uint8_t plain_buf[INGEST_READ_BUF]; /* plaintext: OpenSSL decrypts here */
	struct link *link;
	struct stats *stats;
	/* counters for the log line at exit */
	uint64_t accepted_conns, refused_conns, frames, bytes;
};

/* ---- session.c ---- */

void session_on_connection(uv_stream_t *server, int status);
/* Once a second: timeouts, kicks, policy changes (when reloaded), statistics hand-over. */
void sessions_tick(struct ingest *ing, bool policy_reloaded);
/* Stops or resumes reading from every sensor (backpressure from dispatch). */
void sessions_set_paused(struct ingest *ing, bool paused);
/* Closes every session (shutdown). */
void sessions_close_all(struct ingest *ing, enum d4_reason why);
/* Replays OPEN (+META) of every session the link has announced (after a reconnect). */
void sessions_replay(struct ingest *ing);

/* ---- stats.c ---- */

struct stats *stats_create(uv_loop_t *loop);
void stats_destroy(struct stats *st);
/* Packets and bytes a session accepted since the last flush. */
void stats_frames(struct stats *st, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                  const char *meta_type, uint64_t packets, uint64_t bytes, uint64_t now);
/* Records a refusal for a uuid (NULL: not known or not registered -> server-wide record). */
void stats_refusal(struct stats *st, const uint8_t *uuid, enum d4_reason why,
                   const uint8_t peer[D4_IP_SIZE], uint16_t port, const char *text, uint64_t now);
/* A session of a uuid was opened from a peer, or closed; count = its sessions open now. */
void stats_session(struct stats *st, const uint8_t uuid[D4_UUID_SIZE],
                   const uint8_t peer[D4_IP_SIZE], uint16_t port, unsigned count, uint64_t now);
/* Frames whose timestamp was off beyond the threshold; skew: the last one's, in seconds. */
void stats_skew(struct stats *st, const uint8_t uuid[D4_UUID_SIZE], uint64_t frames, int64_t skew,
                uint64_t now);
/* Once a second: hands what was gathered to a thread-pool write (unless one is still under
 * way: then it gathers on). last: at exit, written at once in the loop. */
int stats_flush(struct stats *st, struct d4_store *s, uint64_t now, bool last);

/* ---- link.c: to d4-dispatch ---- */

struct link *link_create(struct ingest *ing);
void link_destroy(struct link *l);
void link_start(struct link *l);
/* Appends messages to the stream (never fails: memory is bounded by pausing sensors). */
void link_open(struct link *l, const struct d4_ipc_open *m);
void link_meta(struct link *l, const struct d4_ipc_meta *m);
void link_frame(struct link *l, uint64_t session, const uint8_t header[D4_HEADER_SIZE],
                const uint8_t *payload, size_t len);
/* Ends a session; its announcement is kept for replays until the CLOSE is acknowledged. */
void link_close(struct link *l, const struct d4_ipc_close *m, const struct d4_ipc_open *announced,
                const struct d4_ipc_meta *meta);
/* The stream offset after everything appended so far. */
uint64_t link_offset(const struct link *l);
/* Everything before this offset has been taken in by dispatch. */
uint64_t link_acked(const struct link *l);
/* Sends what was appended (called after each read batch; cheap when nothing is new). */
void link_flush(struct link *l);
/* Replay of one session's announcement after a reconnect (not counted in offsets). */
void link_replay_open(struct link *l, const struct d4_ipc_open *m);
void link_replay_meta(struct link *l, const struct d4_ipc_meta *m);
bool link_connected(const struct link *l);

/* Wall clock in seconds and milliseconds. */
uint64_t ingest_now(void);
uint64_t ingest_now_ms(void);

#endif
