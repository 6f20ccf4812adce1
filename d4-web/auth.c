/*
 * auth.c — who is asking: logins, sessions, CSRF tokens, API tokens, login
 * throttling, and the first admin.
 *
 * Sessions live in memory only (a restart logs everybody out, which is the
 * safe failure): a fixed table of web.max_sessions slots holding the SHA-256
 * of the cookie value (the value itself is never kept), the user's name, a
 * CSRF token and the last use. The user record is read from the store on
 * every request, so a deleted user or a changed role takes effect at once.
 * When the table is full the least recently used session goes.
 *
 * A session authenticates with the cookie `d4_session` (HttpOnly,
 * SameSite=Strict, Secure unless web.plain_http); every state-changing
 * request made with it must carry the session's CSRF token in X-CSRF-Token.
 * An API token (`Authorization: <token>` as d4-core, or `Bearer <token>`)
 * needs no CSRF token: a browser never adds that header by itself.
 *
 * Throttling: failures are counted per peer address and per user name (a
 * fixed table, oldest entries reused). From web.login_failures failures on,
 * each further failure blocks the key for 15 s, 30 s, 60 s ... up to
 * web.login_max_delay; while blocked, attempts get 429 with Retry-After
 * without any password being checked. A success clears both keys; a key
 * with no failure for web.login_max_delay is forgotten.
 *
 * Argon2id runs in libmicrohttpd's one thread: a login costs the other
 * requests about one hash time (tens of ms at 64 MiB). Unknown users are
 * checked against a dummy hash of the same cost, so the time does not tell
 * whether a name exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "d4_log.h"
#include "web.h"

#define THROTTLE_BASE_S 15

/* ---- roles ---- */

bool auth_role_allows(enum d4_role role, enum web_role_set perm)
{
	switch (perm) {
	case PERM_PUBLIC:
	case PERM_ANY:
		return true;
	case PERM_READ:
		return role == D4_ROLE_ADMIN || role == D4_ROLE_OPERATOR || role == D4_ROLE_READ_ONLY;
	case PERM_OPERATE:
		return role == D4_ROLE_ADMIN || role == D4_ROLE_OPERATOR;
	case PERM_ADMIN:
		return role == D4_ROLE_ADMIN;
	case PERM_REGISTER:
		return role == D4_ROLE_ADMIN || role == D4_ROLE_OPERATOR ||
		       role == D4_ROLE_SENSOR_REGISTER;
	}
	return false;
}

/* ---- throttling ---- */

static struct web_throttle *throttle_find(struct web *w, const char *key, bool create)
{
	struct web_throttle *oldest = NULL;

	for (size_t i = 0; i < WEB_THROTTLE_SLOTS; i++) {
		struct web_throttle *t = &w->throttle[i];
		if (t->key[0] != '\0' && strcmp(t->key, key) == 0)
			return t;
		if (oldest == NULL || t->key[0] == '\0' ||
		    (oldest->key[0] != '\0' && t->last_failure < oldest->last_failure))
			oldest = t;
	}
	if (!create || oldest == NULL)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->key, sizeof(oldest->key), "%s", key);
	return oldest;
}

static void throttle_key(char *out, size_t cap, char kind, const char *what)
{
	snprintf(out, cap, "%c:%s", kind, what);
}

/* Seconds the key stays blocked, 0 when it is not. */
static uint64_t throttle_blocked(struct web *w, const char *key, uint64_t now)
{
	struct web_throttle *t = throttle_find(w, key, false);

	return t != NULL && t->blocked_until > now ? t->blocked_until - now : 0;
}

static void throttle_fail(struct web *w, const char *key, uint64_t now)
{
	struct web_throttle *t = throttle_find(w, key, true);

	if (t == NULL)
		return;
	if (t->failures > 0 && now - t->last_failure > w->conf.login_max_delay_s)
		t->failures = 0;
	t->failures++;
	t->last_failure = now;
	if (t->failures >= w->conf.login_failures) {
		unsigned over = t->failures - w->conf.login_failures;
		uint64_t delay = over >= 32 ? w->conf.login_max_delay_s
		                            : (uint64_t)THROTTLE_BASE_S << over;
		if (delay > w->conf.login_max_delay_s)
			delay = w->conf.login_max_delay_s;
		t->blocked_until = now + delay;
	}
}

static void throttle_clear(struct web *w, const char *key)
{
	struct web_throttle *t = throttle_find(w, key, false);

	if (t != NULL)
		memset(t, 0, sizeof(*t));
}

/* 429 when the address or the user is blocked. 0 or -1 (reply sent). */
static int throttle_check(struct web_req *r, const char *user)
{
	char key[sizeof(r->w->throttle[0].key)];
	uint64_t a, u = 0;

	throttle_key(key, sizeof(key), 'a', r->peer_text);
	a = throttle_blocked(r->w, key, r->now);
	if (user != NULL) {
		throttle_key(key, sizeof(key), 'u', user);
		u = throttle_blocked(r->w, key, r->now);
	}
	if (a == 0 && u == 0)
		return 0;
	r->retry_after = a > u ? a : u;
	web_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "too many failed attempts; retry in %llu s",
	          (unsigned long long)r->retry_after);
	return -1;
}

static void throttle_failure(struct web_req *r, const char *user)
{
	char key[sizeof(r->w->throttle[0].key)];

	throttle_key(key, sizeof(key), 'a', r->peer_text);
	throttle_fail(r->w, key, r->now);
	if (user != NULL) {
		throttle_key(key, sizeof(key), 'u', user);
		throttle_fail(r->w, key, r->now);
	}
}

static void throttle_success(struct web_req *r, const char *user)
{
	char key[sizeof(r->w->throttle[0].key)];

	throttle_key(key, sizeof(key), 'a', r->peer_text);
	throttle_clear(r->w, key);
	throttle_key(key, sizeof(key), 'u', user);
	throttle_clear(r->w, key);
}

/* ---- sessions ---- */

int auth_init(struct web *w)
{
	char pw[D4_RANDOM_PASSWORD_LEN + 1];
	int rc;

	w->sessions = calloc(w->conf.max_sessions, sizeof(*w->sessions));
	if (w->sessions == NULL)
		return -ENOMEM;
	if ((rc = d4_password_generate(pw)) != 0)
		return rc;
	rc = d4_password_hash(pw, strlen(pw), &w->conf.argon2, w->dummy_hash, sizeof(w->dummy_hash));
	OPENSSL_cleanse(pw, sizeof(pw));
	return rc;
}

void auth_free(struct web *w)
{
	if (w->sessions != NULL)
		OPENSSL_cleanse(w->sessions, w->conf.max_sessions * sizeof(*w->sessions));
	free(w->sessions);
	w->sessions = NULL;
}

void auth_sweep(struct web *w, uint64_t now)
{
	for (unsigned i = 0; i < w->conf.max_sessions; i++) {
		struct web_session *s = &w->sessions[i];
		if (s->used && now - s->last_used > w->conf.session_idle_s)
			memset(s, 0, sizeof(*s));
	}
}

size_t auth_session_count(const struct web *w)
{
	size_t n = 0;

	for (unsigned i = 0; i < w->conf.max_sessions; i++)
		n += w->sessions[i].used;
	return n;
}

void auth_drop_sessions(struct web *w, const char *user, const struct web_session *keep)
{
	for (unsigned i = 0; i < w->conf.max_sessions; i++) {
		struct web_session *s = &w->sessions[i];
		if (s->used && s != keep && strcmp(s->user, user) == 0)
			memset(s, 0, sizeof(*s));
	}
}

/* The session of a cookie value, or NULL. Compares every slot in constant time. */
static struct web_session *session_find(struct web *w, const char *cookie, uint64_t now)
{
	uint8_t h[D4_TOKEN_HASH_SIZE];
	struct web_session *found = NULL;
	size_t len = strlen(cookie);

	if (len != D4_RANDOM_ID_LEN || !d4_is_base64url(cookie, len) ||
	    d4_token_hash(cookie, len, h) != 0)
		return NULL;
	for (unsigned i = 0; i < w->conf.max_sessions; i++) {
		struct web_session *s = &w->sessions[i];
		if (s->used && d4_ct_equal(s->id_hash, h, sizeof(h)))
			found = s;
	}
	if (found != NULL && now - found->last_used > w->conf.session_idle_s) {
		memset(found, 0, sizeof(*found));
		found = NULL;
	}
	return found;
}

/* A new session for user; its cookie value in id. NULL on failure. */
static struct web_session *session_new(struct web *w, const char *user, uint64_t now,
                                       char id[D4_RANDOM_ID_LEN + 1])
{
	struct web_session *slot = NULL;

	for (unsigned i = 0; i < w->conf.max_sessions; i++) {
		struct web_session *s = &w->sessions[i];
		if (!s->used) {
			slot = s;
			break;
		}
		if (slot == NULL || s->last_used < slot->last_used)
			slot = s;
	}
	if (slot == NULL)
		return NULL;
	if (slot->used)
		d4_log(D4_LOG_NOTICE, "session-evicted", "user", slot->user, "hint",
		       "web.max_sessions reached: the least recently used session was closed", NULL);
	memset(slot, 0, sizeof(*slot));
	if (d4_random_id(id) != 0 || d4_random_id(slot->csrf) != 0 ||
	    d4_token_hash(id, D4_RANDOM_ID_LEN, slot->id_hash) != 0) {
		memset(slot, 0, sizeof(*slot));
		return NULL;
	}
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->created = slot->last_used = now;
	slot->used = true;
	return slot;
}

static void set_cookie(struct web_req *r, const char *value, bool clear)
{
	snprintf(r->set_cookie, sizeof(r->set_cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s",
	         WEB_SESSION_COOKIE, value, clear ? "; Max-Age=0" : "",
	         r->w->conf.plain_http ? "" : "; Secure");
}

/* ---- authentication of a request ---- */

static int load_user(struct web_req *r, const char *name, struct d4_user *u)
{
	struct d4_txn t;
	int rc;

	if (web_begin(r, &t, false) != 0)
		return -1;
	rc = d4_user_get(&t, name, u);
	d4_txn_abort(&t);
	if (rc == -ENOENT)
		return 1;
	if (rc != 0) {
		web_store_error(r, rc, "user");
		return -1;
	}
	return 0;
}

static int auth_token(struct web_req *r, const char *header)
{
	const char *tok = header;
	uint8_t h[D4_TOKEN_HASH_SIZE];
	struct d4_token tk;
	struct d4_user u;
	struct d4_txn t;
	size_t len;
	int rc;

	if (strncasecmp(tok, "Bearer ", 7) == 0)
		tok += 7;
	while (*tok == ' ')
		tok++;
	len = strlen(tok);
	while (len > 0 && tok[len - 1] == ' ')
		len--;
	if (throttle_check(r, NULL) != 0)
		return -1;
	if (len == 0 || len > 256 || d4_token_hash(tok, len, h) != 0)
		goto invalid;
	if (web_begin(r, &t, false) != 0)
		return -1;
	rc = d4_token_get(&t, h, &tk);
	if (rc == 0)
		rc = d4_user_get(&t, tk.user, &u);
	d4_txn_abort(&t);
	if (rc == -ENOENT)
		goto invalid;
	if (rc != 0) {
		web_store_error(r, rc, "token");
		return -1;
	}
	/* last_used at minute resolution: not one write per API call */
	if (r->now - tk.last_used >= 60 && d4_txn_begin(r->w->store, &t, true) == 0) {
		if (d4_token_touch(&t, h, r->now) == 0)
			(void)d4_txn_commit(&t);
		else
			d4_txn_abort(&t);
	}
	r->auth.ok = true;
	r->auth.role = u.role;
	r->auth.must_change = false; /* a token is not a password login */
	snprintf(r->auth.user, sizeof(r->auth.user), "%s", u.name);
	OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
	return 0;
invalid:
	throttle_failure(r, NULL);
	d4_log(D4_LOG_WARN, "token-refused", "peer", r->peer_text, NULL);
	web_error(r, MHD_HTTP_UNAUTHORIZED, "invalid API token");
	return -1;
}

int auth_authenticate(struct web_req *r)
{
	const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND,
	                                                 WEB_SESSION_COOKIE);
	struct web_session *s;
	struct d4_user u;
	int rc;

	memset(&r->auth, 0, sizeof(r->auth));
	if (authz != NULL)
		return auth_token(r, authz);
	if (cookie == NULL) {
		web_error(r, MHD_HTTP_UNAUTHORIZED, "authentication required (log in, or send an API token)");
		return -1;
	}
	if ((s = session_find(r->w, cookie, r->now)) == NULL) {
		set_cookie(r, "", true);
		web_error(r, MHD_HTTP_UNAUTHORIZED, "session expired or unknown: log in again");
		return -1;
	}
	if ((rc = load_user(r, s->user, &u)) != 0) {
		if (rc > 0) {
			memset(s, 0, sizeof(*s));
			set_cookie(r, "", true);
			web_error(r, MHD_HTTP_UNAUTHORIZED, "the session's user no longer exists");
		}
		return -1;
	}
	s->last_used = r->now;
	r->auth.ok = true;
	r->auth.via_session = true;
	r->auth.session = s;
	r->auth.role = u.role;
	r->auth.must_change = u.must_change;
	snprintf(r->auth.user, sizeof(r->auth.user), "%s", u.name);
	OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
	return 0;
}

int auth_check_csrf(struct web_req *r)
{
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");

	if (h != NULL && r->auth.session != NULL && d4_ct_streq(h, r->auth.session->csrf))
		return 0;
	d4_log(D4_LOG_WARN, "csrf-refused", "peer", r->peer_text, "user", r->auth.user, NULL);
	web_error(r, MHD_HTTP_FORBIDDEN, "missing or invalid CSRF token (X-CSRF-Token)");
	return -1;
}

/* ---- POST /api/v1/login, /logout, /password ---- */

void api_login(struct web_req *r)
{
	static const char *const fields[] = {"user", "password", NULL};
	const char *name, *pw;
	char id[D4_RANDOM_ID_LEN + 1];
	struct web_session *s;
	struct d4_user u;
	struct d4_txn t;
	int rc, vrc;

	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"user\", \"password\"} is required");
		return;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, "user", D4_USER_NAME_MAX, true, &name) != 0 ||
	    web_json_str(r, "password", D4_PASSWORD_MAX, true, &pw) != 0)
		return;
	if (throttle_check(r, name) != 0)
		return;
	memset(&u, 0, sizeof(u));
	if ((rc = load_user(r, name, &u)) < 0)
		return;
	if (rc > 0)
		(void)d4_password_verify(r->w->dummy_hash, pw, strlen(pw)); /* same time either way */
	vrc = rc > 0 ? -EACCES : d4_password_verify(u.password_hash, pw, strlen(pw));
	OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
	if (vrc == -ENOMEM) {
		web_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory while checking the password");
		return;
	}
	if (vrc != 0) {
		throttle_failure(r, name);
		d4_log(D4_LOG_WARN, "login-failed", "peer", r->peer_text, "user", name, NULL);
		web_error(r, MHD_HTTP_UNAUTHORIZED, "invalid user or password");
		return;
	}
	throttle_success(r, name);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_user_touch_login(&t, u.name, r->now)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "user");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	/* a new id at every login (no session fixation); the old session, if any, ends */
	const char *old = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, WEB_SESSION_COOKIE);
	struct web_session *olds = old ? session_find(r->w, old, r->now) : NULL;
	if (olds != NULL)
		memset(olds, 0, sizeof(*olds));
	if ((s = session_new(r->w, u.name, r->now, id)) == NULL) {
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot create a session");
		return;
	}
	set_cookie(r, id, false);
	OPENSSL_cleanse(id, sizeof(id));
	d4_log(D4_LOG_NOTICE, "login", "peer", r->peer_text, "user", u.name, NULL);
	web_reply(r, MHD_HTTP_OK,
	          json_pack("{s:s, s:s, s:s, s:b, s:s}", "status", "ok", "user", u.name, "role",
	                    d4_role_name(u.role), "must_change", u.must_change, "csrf", s->csrf));
}

void api_logout(struct web_req *r)
{
	if (r->auth.session != NULL) {
		memset(r->auth.session, 0, sizeof(*r->auth.session));
		r->auth.session = NULL;
		set_cookie(r, "", true);
	}
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

void api_password(struct web_req *r)
{
	static const char *const fields[] = {"old", "new", NULL};
	const char *old, *neu;
	struct d4_user u;
	struct d4_txn t;
	int rc;

	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"old\", \"new\"} is required");
		return;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, "old", D4_PASSWORD_MAX, true, &old) != 0 ||
	    web_json_str(r, "new", D4_PASSWORD_MAX, true, &neu) != 0)
		return;
	if (strlen(neu) < D4_PASSWORD_MIN) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "the new password must be at least %d bytes",
		          D4_PASSWORD_MIN);
		return;
	}
	if (strcmp(old, neu) == 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "the new password must differ from the old one");
		return;
	}
	if (throttle_check(r, r->auth.user) != 0)
		return;
	if ((rc = load_user(r, r->auth.user, &u)) != 0) {
		if (rc > 0)
			web_error(r, MHD_HTTP_UNAUTHORIZED, "the user no longer exists");
		return;
	}
	rc = d4_password_verify(u.password_hash, old, strlen(old));
	if (rc != 0) {
		OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
		if (rc == -ENOMEM) {
			web_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory while checking the password");
			return;
		}
		throttle_failure(r, r->auth.user);
		d4_log(D4_LOG_WARN, "password-change-refused", "peer", r->peer_text, "user", u.name, NULL);
		web_error(r, MHD_HTTP_FORBIDDEN, "the old password does not match");
		return;
	}
	rc = d4_password_hash(neu, strlen(neu), &r->w->conf.argon2, u.password_hash,
	                      sizeof(u.password_hash));
	if (rc != 0) {
		OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot hash the password (%s)", strerror(-rc));
		return;
	}
	u.must_change = false;
	if (web_begin(r, &t, true) != 0)
		goto out;
	if ((rc = d4_user_update(&t, &u)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "user");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	/* every other session of this user ends: whoever had the old password is out */
	auth_drop_sessions(r->w, u.name, r->auth.session);
	d4_log(D4_LOG_NOTICE, "password-changed", "peer", r->peer_text, "user", u.name, NULL);
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
out:
	OPENSSL_cleanse(u.password_hash, sizeof(u.password_hash));
}

/* ---- the first admin ---- */

static int count_user_cb(const struct d4_user *u, void *ctx)
{
	(void)u;
	(*(size_t *)ctx)++;
	return 0;
}

int auth_create_admin(struct web *w, const char *name)
{
	char pw[D4_RANDOM_PASSWORD_LEN + 1];
	struct d4_user u;
	struct d4_txn t;
	size_t n = 0;
	int rc = -1, src;
	bool in_txn = false;

	memset(&u, 0, sizeof(u));
	if (strlen(name) == 0 || strlen(name) > D4_USER_NAME_MAX) {
		fprintf(stderr, "d4-web: --create-admin: the name must be 1 to %d bytes\n",
		        D4_USER_NAME_MAX);
		return -1;
	}
	snprintf(u.name, sizeof(u.name), "%s", name);
	u.role = D4_ROLE_ADMIN;
	u.must_change = true;
	u.created = (uint64_t)time(NULL);
	if (d4_password_generate(pw) != 0 ||
	    d4_password_hash(pw, strlen(pw), &w->conf.argon2, u.password_hash,
	                     sizeof(u.password_hash)) != 0) {
		fprintf(stderr, "d4-web: --create-admin: cannot make a password\n");
		goto out;
	}
	if ((src = d4_txn_begin(w->store, &t, true)) != 0)
		goto store_error;
	in_txn = true;
	if ((src = d4_user_iterate(&t, count_user_cb, &n)) != 0)
		goto store_error;
	if (n > 0) {
		fprintf(stderr, "d4-web: --create-admin: the store already has %zu user%s; the first "
		                "admin is made only in an empty store (an admin adds users with the API)\n",
		        n, n == 1 ? "" : "s");
		goto out;
	}
	if ((src = d4_user_add(&t, &u)) != 0)
		goto store_error;
	in_txn = false;
	if ((src = d4_txn_commit(&t)) != 0)
		goto store_error;
	printf("user: %s\npassword: %s\n", u.name, pw);
	fflush(stdout);
	fprintf(stderr, "d4-web: created admin '%s'; the password above is shown once and must be "
	                "changed at the first login\n", u.name);
	d4_log(D4_LOG_NOTICE, "admin-created", "user", u.name, NULL);
	rc = 0;
	goto out;
store_error:
	fprintf(stderr, "d4-web: --create-admin: %s\n",
	        src == -EINVAL ? "the name must be printable ASCII without spaces"
	                       : d4_store_strerror(src));
out:
	if (in_txn)
		d4_txn_abort(&t);
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(&u, sizeof(u));
	return rc;
}
