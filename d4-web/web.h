/*
 * web.h — d4-web: the management REST API and web UI over the store.
 *
 * One process, one context (struct web) passed down to every function.
 * libmicrohttpd runs its own single epoll thread; every request handler
 * runs in that thread, so the session and throttling tables need no lock,
 * and the main thread only waits for a signal. The store is LMDB opened
 * with MDB_NOTLS: each request opens and ends its own short transaction.
 *
 *   main.c          options, --create-admin, TLS material, start and stop
 *   conf.c          the [web] section into struct web_conf
 *   http.c          libmicrohttpd glue: body limit, routing, auth checks, JSON replies
 *   auth.c          login, logout, password change, sessions, CSRF, throttling, tokens
 *   api_*.c         one file per group of routes
 *   metrics.c       GET /metrics (Prometheus text)
 *   ui.c, ui.h      the web UI: d4-web/ui/ compiled in (ui_embed.cmake), served at / and /ui/
 *   openapi.c       GET /api/v1/openapi.json
 */
#ifndef D4_WEB_H
#define D4_WEB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "d4_auth.h"
#include "d4_daemon.h"
#include "d4_net.h"
#include "d4_store.h"

#define WEB_MAX_PARAMS 2
#define WEB_PARAM_MAX 128
#define WEB_PATH_MAX 1024
#define WEB_SESSION_COOKIE "d4_session"

struct MHD_Connection;
struct MHD_Daemon;

struct web_conf {
	char listen[128];
	bool plain_http;
	bool forwarded_for;         /* trust the last X-Forwarded-For address (behind a proxy) */
	char tls_cert[D4_PATH_MAX];
	char tls_key[D4_PATH_MAX];
	char store[D4_PATH_MAX];
	char pdns_db[D4_PATH_MAX]; /* the passive DNS analyzer's store (api_pdns.c) */
	char tls_db[D4_PATH_MAX];  /* the TLS analyzer's store (api_tls.c) */
	uint64_t max_body;          /* bytes */
	unsigned timeout_s;         /* per connection, idle */
	unsigned max_connections;
	unsigned threads;           /* libmicrohttpd threads (TLS, I/O); handlers take `lock` */
	unsigned max_sessions;
	uint64_t session_idle_s;
	unsigned login_failures;    /* failures before throttling starts */
	uint64_t login_max_delay_s; /* ceiling of the exponential delay */
	struct d4_argon2_cost argon2;
};

enum web_role_set {
	/* who may call a route */
	PERM_PUBLIC = 0,     /* no authentication */
	PERM_ANY,            /* any authenticated user (logout, password) */
	PERM_READ,           /* admin, operator, read-only */
	PERM_OPERATE,        /* admin, operator */
	PERM_ADMIN,          /* admin */
	PERM_REGISTER,       /* admin, operator, sensor-register */
};

struct web_session {
	bool used;
	uint8_t id_hash[32]; /* SHA-256 of the cookie value: the id itself is not kept */
	char csrf[D4_RANDOM_ID_LEN + 1];
	char user[D4_USER_NAME_MAX + 1];
	uint64_t created;
	uint64_t last_used;
};

struct web_throttle {
	char key[D4_USER_NAME_MAX + 8]; /* "u:name" or "a:address"; "" = free slot */
	unsigned failures;
	uint64_t last_failure;
	uint64_t blocked_until;
};

#define WEB_THROTTLE_SLOTS 1024

/* The process's context. */
/*
 * A reply reused while the store's policy generation is the same and for at
 * most a second: ingest and dispatch write statistics and counters once a
 * second, so it is as fresh as the data, and a dashboard polled by many
 * browsers (or a scraper) costs one build per second.
 */
struct web_cache {
	char *text;
	size_t len;
	uint64_t generation;
	uint64_t built_ms;
	const char *content_type;
	char next_cursor[64]; /* the reply's X-Next-Cursor */
};

struct web {
	/*
	 * libmicrohttpd runs web.threads threads: they share the TLS work and the
	 * sockets, while every request handler runs under this one lock, so the
	 * session, throttle and cache tables below need no locking of their own.
	 * Handlers are short (the store is LMDB); encrypting and sending the
	 * reply happens after the handler, outside the lock.
	 */
	pthread_mutex_t lock;
	struct web_conf conf;
	struct d4_daemon *d;
	struct d4_store *store;
	struct MHD_Daemon *mhd;
	struct web_session *sessions; /* conf.max_sessions slots */
	struct web_throttle throttle[WEB_THROTTLE_SLOTS];
	char dummy_hash[D4_PWHASH_MAX + 1]; /* verified for unknown users: same cost, same time */
	uint64_t started;
	uint64_t last_sweep;
	uint64_t last_purge; /* expired blocks, stale kicks: once an hour */
	uint64_t requests;
	/* The unfiltered sensor list and /metrics as last sent (see struct web_cache). */
	struct web_cache sensor_list;
	struct web_cache metrics;
	/* the analyzers' stores, opened read-only on first use (api_pdns.c, api_tls.c) */
	struct pdns_store *pdns;
	struct tls_store *tls;
};

/* Who made a request. */
struct web_auth {
	bool ok;
	bool via_session;
	bool must_change;
	enum d4_role role;
	char user[D4_USER_NAME_MAX + 1];
	struct web_session *session;
};

enum web_method { M_GET, M_POST, M_PUT, M_DELETE, M_HEAD, M_OTHER };

/* One request, from the route match to the reply. */
struct web_req {
	struct web *w;
	struct MHD_Connection *conn;
	enum web_method method;
	const char *path;
	char params[WEB_MAX_PARAMS][WEB_PARAM_MAX + 1];
	unsigned n_params;
	const char *body;
	size_t body_len;
	json_t *json; /* the body when it was a JSON object */
	struct web_auth auth;
	uint8_t peer[D4_IP_SIZE];
	char peer_text[D4_IP_STR_MAX];
	uint64_t now;
	/* the reply */
	unsigned status;
	json_t *reply;
	char *text;              /* a non-JSON reply (metrics), malloc'd */
	size_t text_len;
	const char *content_type;
	/* a static reply (the UI's embedded files, ui.c): sent as is, never freed */
	const unsigned char *asset;
	size_t asset_len;
	const char *cache_control; /* NULL: no-store */
	const char *csp;           /* NULL: the API's "default-src 'none'" */
	char etag[24];
	char set_cookie[256];
	char allow[64];
	char next_cursor[64]; /* a paged list: X-Next-Cursor, where the next page starts */
	uint64_t retry_after;
};

typedef void (*web_handler)(struct web_req *r);

struct web_route {
	enum web_method method;
	const char *pattern; /* "/api/v1/sensors/{uuid}": {...} matches one non-empty segment */
	enum web_role_set perm;
	web_handler handler;
};

/* Replies from the cache when it is still valid for `generation`; true when it did. */
bool web_cache_reply(struct web_req *r, struct web_cache *c, uint64_t generation);
/* Keeps text (malloc'd, NUL-terminated; the cache owns it) and replies with a copy. */
void web_cache_store(struct web_req *r, struct web_cache *c, char *text, size_t len,
                     uint64_t generation, const char *content_type);
void web_cache_free(struct web_cache *c);

/* ---- conf.c ---- */
int web_conf_load(struct web_conf *c, const struct d4_daemon *d);

/* ---- http.c ---- */
int web_http_start(struct web *w, int listen_fd, const char *cert_pem, const char *key_pem);
void web_http_stop(struct web *w);
/* Replies (the reply takes the reference to j; NULL j means out of memory: 500). */
void web_reply(struct web_req *r, unsigned status, json_t *j);
/* {"status":"error","reason":...} with a printf-style reason. */
void web_error(struct web_req *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The usual reply to a store error (404 for -ENOENT, 409 -EEXIST, 500 otherwise). */
void web_store_error(struct web_req *r, int rc, const char *what);
/* A query argument, or NULL. */
const char *web_query(struct web_req *r, const char *name);
/* ISO 8601 UTC as a JSON string, or null for 0. */
json_t *web_json_time(uint64_t t);
void web_format_time(uint64_t t, char out[24]);
/* Parses a request body field that must be a string of at most max bytes (NULL if absent). */
int web_json_str(struct web_req *r, const char *field, size_t max, bool required, const char **out);
/* Rejects fields of r->json not in the NULL-terminated list (400). 0 or -1. */
int web_json_only(struct web_req *r, const char *const *fields);
/* A duration: JSON integer seconds or "90s", "10m", "2h", "1d", "1w". 0 or -1 (400 sent). */
int web_json_duration(struct web_req *r, const char *field, uint64_t *secs);
/* Begins a transaction or replies 500. 0 or -1. */
int web_begin(struct web_req *r, struct d4_txn *t, bool write);
/* Commits or replies 500. 0 or -1. */
int web_commit(struct web_req *r, struct d4_txn *t);

/* ---- auth.c ---- */
/* Authenticates r (session cookie or Authorization header) into r->auth. 0, or -1 (reply sent). */
int auth_authenticate(struct web_req *r);
/* The CSRF check for a state-changing request made with a session. 0 or -1 (403 sent). */
int auth_check_csrf(struct web_req *r);
bool auth_role_allows(enum d4_role role, enum web_role_set perm);
void auth_sweep(struct web *w, uint64_t now);
size_t auth_session_count(const struct web *w);
/* Drops every session of user (except keep, when not NULL). */
void auth_drop_sessions(struct web *w, const char *user, const struct web_session *keep);
int auth_init(struct web *w);
void auth_free(struct web *w);
/* Creates the first admin when no user exists (--create-admin); prints the password. */
int auth_create_admin(struct web *w, const char *name);
void api_login(struct web_req *r);
void api_logout(struct web_req *r);
void api_password(struct web_req *r);

/* ---- api_sensors.c ---- */
void api_sensor_register(struct web_req *r);
void api_sensors_errors(struct web_req *r);
void api_sensors_list(struct web_req *r);
void api_sensor_show(struct web_req *r);
void api_sensor_approve(struct web_req *r);
void api_sensor_reject(struct web_req *r);
void api_sensor_kick(struct web_req *r);
void api_sensor_block(struct web_req *r);
void api_sensor_unblock(struct web_req *r);
void api_sensor_delete(struct web_req *r);
void api_sensor_update(struct web_req *r);
void api_sensor_key(struct web_req *r);
/* Parses r->params[0] as a uuid or replies 400. 0 or -1. */
int api_param_uuid(struct web_req *r, uint8_t uuid[16]);

/* ---- api_blocklist.c ---- */
void api_block_uuids_list(struct web_req *r);
void api_block_uuids_add(struct web_req *r);
void api_block_uuids_delete(struct web_req *r);
void api_block_ips_list(struct web_req *r);
void api_block_ips_add(struct web_req *r);
void api_block_ips_delete(struct web_req *r);

/* ---- api_types.c ---- */
void api_types_get(struct web_req *r);
void api_types_put(struct web_req *r);
void api_metatypes_get(struct web_req *r);
void api_metatypes_add(struct web_req *r);
void api_metatypes_delete(struct web_req *r);

/* ---- api_stats.c ---- */
void api_stats_daily(struct web_req *r);
void api_stats_totals(struct web_req *r);
void api_info(struct web_req *r);
void api_health(struct web_req *r);

/* ---- api_pdns.c, api_tls.c: the analyzers' stores ---- */
void api_pdns_query(struct web_req *r);
void api_pdns_fquery(struct web_req *r);
void api_pdns_info(struct web_req *r);
void api_pdns_close(struct web *w);
void api_tls_summary(struct web_req *r);
void api_tls_pivot(struct web_req *r);
void api_tls_sessions(struct web_req *r);
void api_tls_findings(struct web_req *r);
void api_tls_cert(struct web_req *r);
void api_tls_close(struct web *w);

/* ---- api_queues.c ---- */
void api_queues(struct web_req *r);
void api_queue_pause(struct web_req *r);
void api_queue_resume(struct web_req *r);
void api_queue_empty(struct web_req *r);

/* ---- api_users.c ---- */
void api_users_list(struct web_req *r);
void api_users_add(struct web_req *r);
void api_users_delete(struct web_req *r);
void api_tokens_list(struct web_req *r);
void api_tokens_add(struct web_req *r);
void api_tokens_delete(struct web_req *r);

/* ---- metrics.c, openapi.c ---- */
void api_metrics(struct web_req *r);
void api_openapi(struct web_req *r);

#endif
