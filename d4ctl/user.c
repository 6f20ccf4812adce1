/*
 * user.c — `d4ctl user ...`: accounts and API tokens of d4-web, from a shell.
 *
 * The same records d4-web writes (common/d4_store.h), hashed the same way
 * (common/d4_auth.h, with the [web] argon2 costs of the configuration d4ctl
 * reads). A password or a token is printed once and never stored: the
 * store keeps the Argon2id hash of a password and the SHA-256 of a token.
 * A generated password must be changed at the first login.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "d4_auth.h"
#include "d4ctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] user <subcommand> ...\n\n"
		"  list                               users with role, state and last login\n"
		"  add NAME [--role ROLE] [--password-stdin]\n"
		"                                     ROLE: admin, operator, read-only (default),\n"
		"                                     sensor-register; without --password-stdin a\n"
		"                                     random password is printed once and must be\n"
		"                                     changed at the first login\n"
		"  passwd NAME [--password-stdin]     set a new password (random unless given)\n"
		"  role NAME ROLE                     change a user's role\n"
		"  del NAME                           delete a user and every token of theirs\n"
		"  token NAME [--description D]       a new API token for NAME, printed once\n"
		"  tokens [NAME]                      tokens (hash prefix, user, description, use)\n"
		"  revoke HASH-PREFIX                 delete a token (at least 8 hex characters)\n");
}

static int read_cost(struct d4ctl *ctl, struct d4_argon2_cost *cost)
{
	struct d4_config_err e;
	uint64_t mem;
	int64_t passes;

	d4_argon2_cost_default(cost);
	if (d4_config_get_size(ctl->d.cfg, "web", "argon2_memory", D4_ARGON2_M_MIN * 1024,
	                       4ull << 30, (uint64_t)cost->m_cost_kib * 1024, &mem, &e) != 0 ||
	    d4_config_get_int(ctl->d.cfg, "web", "argon2_passes", 1, 100, cost->t_cost, &passes,
	                      &e) != 0) {
		d4ctl_err("user", "%s", e.msg);
		return D4CTL_USAGE;
	}
	cost->m_cost_kib = (uint32_t)(mem / 1024);
	cost->t_cost = (uint32_t)passes;
	return D4CTL_OK;
}

static bool name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > D4_USER_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (*p <= ' ' || *p > '~')
			return false;
	return true;
}

/* A password from stdin (one line) or a generated one; *generated says which. */
static int get_password(bool from_stdin, char *out, size_t cap, bool *generated)
{
	if (!from_stdin) {
		*generated = true;
		if (cap < D4_RANDOM_PASSWORD_LEN + 1 || d4_password_generate(out) != 0) {
			d4ctl_err("user", "cannot generate a password (no system randomness)");
			return D4CTL_ERROR;
		}
		return D4CTL_OK;
	}
	*generated = false;
	if (fgets(out, (int)cap, stdin) == NULL) {
		d4ctl_err("user", "no password on stdin");
		return D4CTL_USAGE;
	}
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	if (n < D4_PASSWORD_MIN) {
		d4ctl_err("user", "the password is shorter than %d characters", D4_PASSWORD_MIN);
		OPENSSL_cleanse(out, cap);
		return D4CTL_USAGE;
	}
	return D4CTL_OK;
}

static int hash_into(struct d4ctl *ctl, const char *pw, struct d4_user *u)
{
	struct d4_argon2_cost cost;
	int rc = read_cost(ctl, &cost);
	if (rc != D4CTL_OK)
		return rc;
	rc = d4_password_hash(pw, strlen(pw), &cost, u->password_hash, sizeof(u->password_hash));
	if (rc != 0) {
		d4ctl_err("user", "cannot hash the password: %s", strerror(-rc));
		return D4CTL_ERROR;
	}
	return D4CTL_OK;
}

struct pw_opts {
	const char *role;
	bool from_stdin;
};

static int parse_pw_opts(const char *where, int argc, char **argv, struct pw_opts *o)
{
	static const struct option longopts[] = {
		{"role", required_argument, NULL, 'r'},
		{"password-stdin", no_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 0; /* reinitialise getopt (main parsed in "+" mode) */
	while ((c = getopt_long(argc, argv, ":r:p", longopts, NULL)) != -1) {
		if (c == 'r')
			o->role = optarg;
		else if (c == 'p')
			o->from_stdin = true;
		else
			return d4ctl_getopt_error(where, c, argv);
	}
	return D4CTL_OK;
}

static int user_add(struct d4ctl *ctl, int argc, char **argv)
{
	struct pw_opts o = {.role = "read-only"};
	struct d4_user u;
	struct d4_txn t;
	char pw[D4_PASSWORD_MAX + 2];
	bool generated;
	int rc;

	if ((rc = parse_pw_opts("user add", argc, argv, &o)) != D4CTL_OK)
		return rc;
	if (argc - optind != 1 || !name_ok(argv[optind])) {
		d4ctl_err("user add", "give one user name (1-%d printable characters, no spaces)",
		          D4_USER_NAME_MAX);
		return D4CTL_USAGE;
	}
	int role = d4_role_from_name(o.role);
	if (role < 0) {
		d4ctl_err("user add", "unknown role '%s' (admin, operator, read-only, sensor-register)",
		          o.role);
		return D4CTL_USAGE;
	}
	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "%s", argv[optind]);
	u.role = (enum d4_role)role;
	u.created = ctl->now;
	if ((rc = get_password(o.from_stdin, pw, sizeof(pw), &generated)) != D4CTL_OK)
		return rc;
	u.must_change = generated;
	if ((rc = hash_into(ctl, pw, &u)) != D4CTL_OK)
		goto out;
	if ((rc = d4ctl_begin("user add", ctl, &t, true)) != D4CTL_OK)
		goto out;
	int r = d4_user_add(&t, &u);
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user add", "%s: %s", u.name,
		          r == -EEXIST ? "this user exists" : d4_store_strerror(r));
		rc = d4ctl_store_status(r);
		goto out;
	}
	if ((rc = d4ctl_commit("user add", &t)) != D4CTL_OK)
		goto out;
	printf("user: %s (%s)\n", u.name, d4_role_name(u.role));
	if (generated)
		printf("password: %s\n(shown once; it must be changed at the first login)\n", pw);
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(&u, sizeof(u));
	return rc;
}

static int user_passwd(struct d4ctl *ctl, int argc, char **argv)
{
	struct pw_opts o = {0};
	struct d4_user u;
	struct d4_txn t;
	char pw[D4_PASSWORD_MAX + 2];
	bool generated;
	int rc;

	if ((rc = parse_pw_opts("user passwd", argc, argv, &o)) != D4CTL_OK)
		return rc;
	if (argc - optind != 1) {
		d4ctl_err("user passwd", "give one user name");
		return D4CTL_USAGE;
	}
	if ((rc = get_password(o.from_stdin, pw, sizeof(pw), &generated)) != D4CTL_OK)
		return rc;
	if ((rc = d4ctl_begin("user passwd", ctl, &t, true)) != D4CTL_OK)
		goto out;
	int r = d4_user_get(&t, argv[optind], &u);
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user passwd", "%s: %s", argv[optind],
		          r == -ENOENT ? "no such user" : d4_store_strerror(r));
		rc = d4ctl_store_status(r);
		goto out;
	}
	u.must_change = generated;
	if ((rc = hash_into(ctl, pw, &u)) != D4CTL_OK) {
		d4_txn_abort(&t);
		goto out;
	}
	if ((r = d4_user_update(&t, &u)) != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user passwd", "%s", d4_store_strerror(r));
		rc = d4ctl_store_status(r);
		goto out;
	}
	if ((rc = d4ctl_commit("user passwd", &t)) != D4CTL_OK)
		goto out;
	printf("password of %s changed\n", u.name);
	if (generated)
		printf("password: %s\n(shown once; it must be changed at the next login)\n", pw);
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(&u, sizeof(u));
	return rc;
}

static int user_role(struct d4ctl *ctl, int argc, char **argv)
{
	struct d4_user u;
	struct d4_txn t;
	int rc;

	if (argc != 3) {
		d4ctl_err("user role", "give a user name and a role");
		return D4CTL_USAGE;
	}
	int role = d4_role_from_name(argv[2]);
	if (role < 0) {
		d4ctl_err("user role", "unknown role '%s'", argv[2]);
		return D4CTL_USAGE;
	}
	if ((rc = d4ctl_begin("user role", ctl, &t, true)) != D4CTL_OK)
		return rc;
	int r = d4_user_get(&t, argv[1], &u);
	if (r == 0) {
		u.role = (enum d4_role)role;
		r = d4_user_update(&t, &u);
	}
	OPENSSL_cleanse(&u, sizeof(u));
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user role", "%s: %s", argv[1],
		          r == -ENOENT ? "no such user" : d4_store_strerror(r));
		return d4ctl_store_status(r);
	}
	if ((rc = d4ctl_commit("user role", &t)) == D4CTL_OK)
		printf("%s is now %s\n", argv[1], argv[2]);
	return rc;
}

static int user_del(struct d4ctl *ctl, int argc, char **argv)
{
	struct d4_txn t;
	int rc;

	if (argc != 2) {
		d4ctl_err("user del", "give one user name");
		return D4CTL_USAGE;
	}
	if ((rc = d4ctl_begin("user del", ctl, &t, true)) != D4CTL_OK)
		return rc;
	int r = d4_user_delete(&t, argv[1]);
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user del", "%s: %s", argv[1],
		          r == -ENOENT ? "no such user" : d4_store_strerror(r));
		return d4ctl_store_status(r);
	}
	if ((rc = d4ctl_commit("user del", &t)) == D4CTL_OK)
		printf("deleted %s and their tokens\n", argv[1]);
	return rc;
}

/* ---- listing ---- */

struct list_walk {
	struct d4ctl *ctl;
	json_t *arr;
	const char *only_user;
};

static int list_user(const struct d4_user *u, void *ctx)
{
	struct list_walk *w = ctx;
	char created[D4CTL_TIME_LEN], login[D4CTL_TIME_LEN];
	if (w->arr)
		return json_array_append_new(w->arr, json_pack("{s:s, s:s, s:b, s:o, s:o}", "name",
		                                               u->name, "role", d4_role_name(u->role),
		                                               "must_change", u->must_change, "created",
		                                               d4ctl_json_time(u->created), "last_login",
		                                               d4ctl_json_time(u->last_login))) != 0;
	d4ctl_format_time(u->created, created);
	d4ctl_format_time(u->last_login, login);
	printf("%-24s %-16s %-14s created %s, last login %s\n", u->name, d4_role_name(u->role),
	       u->must_change ? "must-change" : "-", created, login);
	return 0;
}

static int list_token(const struct d4_token *tk, void *ctx)
{
	struct list_walk *w = ctx;
	char hex[17], created[D4CTL_TIME_LEN], used[D4CTL_TIME_LEN], desc[D4_TOKEN_DESC_MAX + 1];
	if (w->only_user && strcmp(tk->user, w->only_user) != 0)
		return 0;
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", tk->hash[i]);
	if (w->arr)
		return json_array_append_new(w->arr, json_pack("{s:s, s:s, s:s, s:o, s:o}", "hash_prefix",
		                                               hex, "user", tk->user, "description",
		                                               tk->description, "created",
		                                               d4ctl_json_time(tk->created), "last_used",
		                                               d4ctl_json_time(tk->last_used))) != 0;
	d4ctl_format_time(tk->created, created);
	d4ctl_format_time(tk->last_used, used);
	printf("%s  %-20s created %s, last used %s  %s\n", hex, tk->user, created, used,
	       d4ctl_safe(tk->description, desc, sizeof(desc)));
	return 0;
}

static int user_list(struct d4ctl *ctl, int argc, char **argv, bool tokens)
{
	struct d4_txn t;
	struct list_walk w = {.ctl = ctl, .only_user = tokens && argc > 1 ? argv[1] : NULL};
	int rc;

	if ((rc = d4ctl_begin(tokens ? "user tokens" : "user list", ctl, &t, false)) != D4CTL_OK)
		return rc;
	if (ctl->json && (w.arr = json_array()) == NULL) {
		d4_txn_abort(&t);
		return D4CTL_ERROR;
	}
	int r = tokens ? d4_token_iterate(&t, list_token, &w) : d4_user_iterate(&t, list_user, &w);
	d4_txn_abort(&t);
	if (r != 0) {
		json_decref(w.arr);
		d4ctl_err("user", "%s", r > 0 ? "out of memory" : d4_store_strerror(r));
		return D4CTL_ERROR;
	}
	return w.arr ? d4ctl_json_print(w.arr) : D4CTL_OK;
}

/* ---- tokens ---- */

static int user_token(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"description", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *desc = "";
	struct d4_token tk;
	struct d4_txn t;
	char text[D4_TOKEN_LEN + 1];
	int c, rc;

	optind = 0; /* reinitialise getopt (main parsed in "+" mode) */
	while ((c = getopt_long(argc, argv, ":d:", longopts, NULL)) != -1) {
		if (c == 'd')
			desc = optarg;
		else
			return d4ctl_getopt_error("user token", c, argv);
	}
	if (argc - optind != 1) {
		d4ctl_err("user token", "give one user name");
		return D4CTL_USAGE;
	}
	if (strlen(desc) > D4_TOKEN_DESC_MAX) {
		d4ctl_err("user token", "the description is longer than %d bytes", D4_TOKEN_DESC_MAX);
		return D4CTL_USAGE;
	}
	memset(&tk, 0, sizeof(tk));
	if (d4_token_generate(text) != 0 || d4_token_hash(text, strlen(text), tk.hash) != 0) {
		d4ctl_err("user token", "cannot generate a token (no system randomness)");
		return D4CTL_ERROR;
	}
	snprintf(tk.user, sizeof(tk.user), "%s", argv[optind]);
	snprintf(tk.description, sizeof(tk.description), "%s", desc);
	tk.created = ctl->now;
	if ((rc = d4ctl_begin("user token", ctl, &t, true)) != D4CTL_OK)
		goto out;
	int r = d4_token_add(&t, &tk);
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user token", "%s: %s", tk.user,
		          r == -ENOENT ? "no such user" : d4_store_strerror(r));
		rc = d4ctl_store_status(r);
		goto out;
	}
	if ((rc = d4ctl_commit("user token", &t)) != D4CTL_OK)
		goto out;
	printf("token for %s: %s\n(shown once; send it as 'Authorization: <token>' or "
	       "'Authorization: Bearer <token>')\n",
	       tk.user, text);
out:
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}

struct revoke_walk {
	uint8_t prefix[32];
	size_t n;
	unsigned matches;
	uint8_t hash[D4_TOKEN_HASH_SIZE];
};

static int match_token(const struct d4_token *tk, void *ctx)
{
	struct revoke_walk *w = ctx;
	if (memcmp(tk->hash, w->prefix, w->n) == 0) {
		w->matches++;
		memcpy(w->hash, tk->hash, sizeof(w->hash));
	}
	return 0;
}

static int user_revoke(struct d4ctl *ctl, int argc, char **argv)
{
	struct revoke_walk w = {0};
	struct d4_txn t;
	int rc;

	if (argc != 2) {
		d4ctl_err("user revoke", "give a token's hash prefix (from 'user tokens')");
		return D4CTL_USAGE;
	}
	size_t len = strlen(argv[1]);
	if (len < 8 || len > 64 || len % 2) {
		d4ctl_err("user revoke", "the prefix is 8 to 64 hex characters, an even number");
		return D4CTL_USAGE;
	}
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;
		if (sscanf(argv[1] + 2 * i, "%2x", &v) != 1) {
			d4ctl_err("user revoke", "'%s' is not hexadecimal", argv[1]);
			return D4CTL_USAGE;
		}
		w.prefix[i] = (uint8_t)v;
	}
	w.n = len / 2;
	if ((rc = d4ctl_begin("user revoke", ctl, &t, true)) != D4CTL_OK)
		return rc;
	int r = d4_token_iterate(&t, match_token, &w);
	if (r == 0 && w.matches != 1) {
		d4_txn_abort(&t);
		d4ctl_err("user revoke", "%s", w.matches ? "several tokens match: give a longer prefix"
		                                          : "no token matches");
		return D4CTL_FAILED;
	}
	if (r == 0)
		r = d4_token_delete(&t, w.hash);
	if (r != 0) {
		d4_txn_abort(&t);
		d4ctl_err("user revoke", "%s", d4_store_strerror(r));
		return d4ctl_store_status(r);
	}
	if ((rc = d4ctl_commit("user revoke", &t)) == D4CTL_OK)
		printf("token %s revoked\n", argv[1]);
	return rc;
}

static int user_list_users(struct d4ctl *ctl, int argc, char **argv)
{
	return user_list(ctl, argc, argv, false);
}

static int user_list_tokens(struct d4ctl *ctl, int argc, char **argv)
{
	return user_list(ctl, argc, argv, true);
}

int cmd_user(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct d4ctl_sub subs[] = {
		{"list", user_list_users}, {"add", user_add},     {"passwd", user_passwd},
		{"role", user_role},       {"del", user_del},     {"token", user_token},
		{"tokens", user_list_tokens}, {"revoke", user_revoke},
	};

	return d4ctl_subcommand(ctl, "user", subs, sizeof(subs) / sizeof(subs[0]), usage, argc,
	                        argv);
}
