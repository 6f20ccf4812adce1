/*
 * api_users.c — users and API tokens (admin only).
 *
 * A user made here without a password gets a random one, returned once in
 * the reply, and must change it at first login (as the first admin does).
 * A token is "d4_" + 32 random bytes in base64url, returned once; the store
 * keeps its SHA-256 only, and lists and deletes tokens by a hex prefix of
 * that hash ("id", 16 hex digits shown; at least 8 accepted to delete).
 * Password hashes are never put into a reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "d4_log.h"
#include "web.h"

#define TOKEN_ID_HEX 16
#define TOKEN_ID_MIN 8

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool user_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > D4_USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* ---- users ---- */

static int user_cb(const struct d4_user *u, void *ctx)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:o}", "name", u->name, "role",
	                      d4_role_name(u->role), "must_change", u->must_change, "created",
	                      web_json_time(u->created), "last_login", web_json_time(u->last_login));

	return o == NULL || json_array_append_new(ctx, o) != 0 ? -ENOMEM : 0;
}

void api_users_list(struct web_req *r)
{
	json_t *arr = json_array();
	struct d4_txn t;
	int rc;

	if (arr == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = d4_user_iterate(&t, user_cb, arr);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "users");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, arr);
	arr = NULL;
out:
	json_decref(arr);
}

void api_users_add(struct web_req *r)
{
	static const char *const fields[] = {"name", "role", "password", NULL};
	const char *name, *role, *pw;
	char generated[D4_RANDOM_PASSWORD_LEN + 1] = "";
	struct d4_user u;
	struct d4_txn t;
	int rc, ro;

	memset(&u, 0, sizeof(u));
	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"name\", \"role\", \"password\"?} is "
		                                   "required");
		return;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, "name", 256, true, &name) != 0 ||
	    web_json_str(r, "role", 32, true, &role) != 0 ||
	    web_json_str(r, "password", D4_PASSWORD_MAX, false, &pw) != 0)
		return;
	if (!user_name_ok(name)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "name: 1 to %d printable characters, no space",
		          D4_USER_NAME_MAX);
		return;
	}
	if ((ro = d4_role_from_name(role)) < 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "role: admin, operator, read-only or sensor-register");
		return;
	}
	if (pw != NULL && strlen(pw) < D4_PASSWORD_MIN) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "password: at least %d bytes (or none: a random one "
		                                   "is made)", D4_PASSWORD_MIN);
		return;
	}
	if (pw == NULL) {
		if (d4_password_generate(generated) != 0) {
			web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the random generator failed");
			return;
		}
		pw = generated;
	}
	snprintf(u.name, sizeof(u.name), "%s", name);
	u.role = (enum d4_role)ro;
	u.must_change = true; /* an admin chose or made it: the user picks their own */
	u.created = r->now;
	if ((rc = d4_password_hash(pw, strlen(pw), &r->w->conf.argon2, u.password_hash,
	                           sizeof(u.password_hash))) != 0) {
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot hash the password (%s)", strerror(-rc));
		goto out;
	}
	if (web_begin(r, &t, true) != 0)
		goto out;
	if ((rc = d4_user_add(&t, &u)) != 0) {
		d4_txn_abort(&t);
		if (rc == -EEXIST)
			web_error(r, MHD_HTTP_CONFLICT, "user %s already exists", u.name);
		else
			web_store_error(r, rc, "user");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	d4_log(D4_LOG_NOTICE, "user-added", "user", u.name, "role", d4_role_name(u.role), "by",
	       r->auth.user, NULL);
	json_t *o = json_pack("{s:s, s:s, s:b, s:o}", "name", u.name, "role", d4_role_name(u.role),
	                      "must_change", 1, "created", web_json_time(u.created));
	if (o != NULL && generated[0] != '\0' &&
	    json_object_set_new(o, "password", json_string(generated)) != 0) {
		json_decref(o);
		o = NULL;
	}
	web_reply(r, MHD_HTTP_CREATED, o);
out:
	OPENSSL_cleanse(generated, sizeof(generated));
	OPENSSL_cleanse(&u, sizeof(u));
}

void api_users_delete(struct web_req *r)
{
	const char *name = r->params[0];
	struct d4_txn t;
	int rc;

	if (!user_name_ok(name)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid user name");
		return;
	}
	/* an admin always remains: nobody deletes the account they are using */
	if (strcmp(name, r->auth.user) == 0) {
		web_error(r, MHD_HTTP_CONFLICT, "you cannot delete your own account");
		return;
	}
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_user_delete(&t, name)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "no user %s", name);
		else
			web_store_error(r, rc, "user");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	auth_drop_sessions(r->w, name, NULL);
	d4_log(D4_LOG_NOTICE, "user-deleted", "user", name, "by", r->auth.user, NULL);
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

/* ---- tokens ---- */

static json_t *token_json(const struct d4_token *tk)
{
	char id[2 * D4_TOKEN_HASH_SIZE + 1];

	hex_of(tk->hash, D4_TOKEN_HASH_SIZE, id);
	id[TOKEN_ID_HEX] = '\0';
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", id, "user", tk->user, "description",
	                 tk->description, "created", web_json_time(tk->created), "last_used",
	                 web_json_time(tk->last_used));
}

static int token_cb(const struct d4_token *tk, void *ctx)
{
	json_t *o = token_json(tk);

	return o == NULL || json_array_append_new(ctx, o) != 0 ? -ENOMEM : 0;
}

void api_tokens_list(struct web_req *r)
{
	json_t *arr = json_array();
	struct d4_txn t;
	int rc;

	if (arr == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = d4_token_iterate(&t, token_cb, arr);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "tokens");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, arr);
	arr = NULL;
out:
	json_decref(arr);
}

void api_tokens_add(struct web_req *r)
{
	static const char *const fields[] = {"user", "description", NULL};
	const char *user, *desc;
	char tok[D4_TOKEN_LEN + 1];
	struct d4_token tk;
	struct d4_txn t;
	int rc;

	memset(&tk, 0, sizeof(tk));
	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"user\", \"description\"?} is required");
		return;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, "user", D4_USER_NAME_MAX, true, &user) != 0 ||
	    web_json_str(r, "description", D4_TOKEN_DESC_MAX, false, &desc) != 0)
		return;
	if (d4_token_generate(tok) != 0 || d4_token_hash(tok, strlen(tok), tk.hash) != 0) {
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot make a token");
		goto out;
	}
	snprintf(tk.user, sizeof(tk.user), "%s", user);
	snprintf(tk.description, sizeof(tk.description), "%s", desc ? desc : "");
	tk.created = r->now;
	if (web_begin(r, &t, true) != 0)
		goto out;
	if ((rc = d4_token_add(&t, &tk)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_BAD_REQUEST, "no user %s", tk.user);
		else
			web_store_error(r, rc, "token");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	d4_log(D4_LOG_NOTICE, "token-added", "user", tk.user, "by", r->auth.user, NULL);
	json_t *o = token_json(&tk);
	if (o != NULL && json_object_set_new(o, "token", json_string(tok)) != 0) {
		json_decref(o);
		o = NULL;
	}
	web_reply(r, MHD_HTTP_CREATED, o);
out:
	OPENSSL_cleanse(tok, sizeof(tok));
}

struct token_find {
	const char *prefix;
	size_t n;
	struct d4_token found;
};

static int find_cb(const struct d4_token *tk, void *ctx)
{
	struct token_find *tf = ctx;
	char id[2 * D4_TOKEN_HASH_SIZE + 1];

	hex_of(tk->hash, D4_TOKEN_HASH_SIZE, id);
	if (strncmp(id, tf->prefix, strlen(tf->prefix)) == 0) {
		tf->n++;
		tf->found = *tk;
	}
	return 0;
}

void api_tokens_delete(struct web_req *r)
{
	struct token_find tf = {.prefix = r->params[0]};
	size_t n = strlen(tf.prefix);
	struct d4_txn t;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (!((tf.prefix[i] >= '0' && tf.prefix[i] <= '9') ||
		      (tf.prefix[i] >= 'a' && tf.prefix[i] <= 'f')))
			n = 0;
	if (n < TOKEN_ID_MIN || n > 2 * D4_TOKEN_HASH_SIZE) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "token id: %d to %d lowercase hex digits", TOKEN_ID_MIN,
		          2 * D4_TOKEN_HASH_SIZE);
		return;
	}
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_token_iterate(&t, find_cb, &tf)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "tokens");
		return;
	}
	if (tf.n != 1) {
		d4_txn_abort(&t);
		if (tf.n == 0)
			web_error(r, MHD_HTTP_NOT_FOUND, "no token %s", tf.prefix);
		else
			web_error(r, MHD_HTTP_CONFLICT, "%zu tokens start with %s: give more digits", tf.n,
			          tf.prefix);
		return;
	}
	if ((rc = d4_token_delete(&t, tf.found.hash)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "token");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	d4_log(D4_LOG_NOTICE, "token-deleted", "user", tf.found.user, "by", r->auth.user, NULL);
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "id", tf.prefix, "deleted", 1));
}
