/*
 * conf.c — the [web] section of the configuration into struct web_conf.
 *
 * Every option is read and range-checked here, once, at start; etc/d4.conf
 * documents each one, with the defaults below. d4-web also reads
 * ingest.accepted_types / ingest.accepted_meta_types (api_types.c) so that
 * it shows the set d4-ingest falls back to, as d4ctl does.
 */
#include <stdio.h>
#include <string.h>

#include "d4_log.h"
#include "web.h"

static const char *const known_keys[] = {
	D4_DAEMON_KNOWN_KEYS,
	"web.listen",
	"web.plain_http",
	"web.forwarded_for",
	"web.tls_cert",
	"web.tls_key",
	"web.max_body",
	"web.timeout",
	"web.max_connections",
	"web.threads",
	"web.max_sessions",
	"web.session_idle",
	"web.login_failures",
	"web.login_max_delay",
	"web.argon2_memory",
	"web.argon2_passes",
	"web.pdns_db",
	"web.tls_db",
	NULL,
};

static const char *const foreign_sections[] = {"ingest", "dispatch", "queue.", "ctl", "client",
                                               "analyzer", NULL};

static int err_out(const char *msg)
{
	fprintf(stderr, "d4-web: %s\n", msg);
	return -1;
}

int web_conf_load(struct web_conf *c, const struct d4_daemon *d)
{
	const struct d4_config *cfg = d->cfg;
	struct d4_config_err e;
	int64_t i64;
	uint64_t u64;
	bool b;

	memset(c, 0, sizeof(*c));
	if (d4_config_check_known(cfg, known_keys, foreign_sections, &e) != 0)
		return err_out(e.msg);
	const char *listen = d4_config_get_str(cfg, "web", "listen", "127.0.0.1:7000");
	if (snprintf(c->listen, sizeof(c->listen), "%s", listen) >= (int)sizeof(c->listen))
		return err_out("web.listen: too long");
	if (d4_config_get_bool(cfg, "web", "plain_http", false, &b, &e) != 0)
		return err_out(e.msg);
	c->plain_http = b;
	if (d4_config_get_bool(cfg, "web", "forwarded_for", false, &b, &e) != 0)
		return err_out(e.msg);
	c->forwarded_for = b;
	snprintf(c->tls_cert, sizeof(c->tls_cert), "%s",
	         d4_config_get_str(cfg, "web", "tls_cert", d->paths.tls_cert));
	snprintf(c->tls_key, sizeof(c->tls_key), "%s",
	         d4_config_get_str(cfg, "web", "tls_key", d->paths.tls_key));
	snprintf(c->store, sizeof(c->store), "%s", d->paths.store);
	/* where etc/quickstart.conf has the analyzers write (their param.db) */
	char def[D4_PATH_MAX + 32];
	snprintf(def, sizeof(def), "%s/analyzers/pdns", d->paths.data_dir);
	if (snprintf(c->pdns_db, sizeof(c->pdns_db), "%s",
	             d4_config_get_str(cfg, "web", "pdns_db", def)) >= (int)sizeof(c->pdns_db))
		return err_out("web.pdns_db: too long");
	snprintf(def, sizeof(def), "%s/analyzers/tls", d->paths.data_dir);
	if (snprintf(c->tls_db, sizeof(c->tls_db), "%s",
	             d4_config_get_str(cfg, "web", "tls_db", def)) >= (int)sizeof(c->tls_db))
		return err_out("web.tls_db: too long");

	if (d4_config_get_size(cfg, "web", "max_body", 1024, 64u << 20, 1u << 20, &c->max_body, &e) != 0)
		return err_out(e.msg);
	if (d4_config_get_duration_ms(cfg, "web", "timeout", 1000, 3600000, 30000, &u64, &e) != 0)
		return err_out(e.msg);
	c->timeout_s = (unsigned)(u64 / 1000);
	if (d4_config_get_int(cfg, "web", "max_connections", 1, 100000, 256, &i64, &e) != 0)
		return err_out(e.msg);
	c->max_connections = (unsigned)i64;
	if (d4_config_get_int(cfg, "web", "threads", 1, 64, 1, &i64, &e) != 0)
		return err_out(e.msg);
	c->threads = (unsigned)i64;
	if (d4_config_get_int(cfg, "web", "max_sessions", 1, 100000, 1000, &i64, &e) != 0)
		return err_out(e.msg);
	c->max_sessions = (unsigned)i64;
	if (d4_config_get_duration_ms(cfg, "web", "session_idle", 10000, 86400000ull * 30, 1800000,
	                              &u64, &e) != 0)
		return err_out(e.msg);
	c->session_idle_s = u64 / 1000;
	if (d4_config_get_int(cfg, "web", "login_failures", 1, 1000, 5, &i64, &e) != 0)
		return err_out(e.msg);
	c->login_failures = (unsigned)i64;
	if (d4_config_get_duration_ms(cfg, "web", "login_max_delay", 1000, 86400000, 900000, &u64,
	                              &e) != 0)
		return err_out(e.msg);
	c->login_max_delay_s = u64 / 1000;

	d4_argon2_cost_default(&c->argon2);
	if (d4_config_get_size(cfg, "web", "argon2_memory", D4_ARGON2_M_MIN * 1024, 4ull << 30,
	                       (uint64_t)D4_ARGON2_M_DEFAULT * 1024, &u64, &e) != 0)
		return err_out(e.msg);
	c->argon2.m_cost_kib = (uint32_t)(u64 / 1024);
	if (d4_config_get_int(cfg, "web", "argon2_passes", 1, 100, D4_ARGON2_T_DEFAULT, &i64, &e) != 0)
		return err_out(e.msg);
	c->argon2.t_cost = (uint32_t)i64;
	if (c->argon2.m_cost_kib < 19 * 1024) {
		char kib[24];
		snprintf(kib, sizeof(kib), "%u", c->argon2.m_cost_kib);
		d4_log(D4_LOG_WARN, "weak-password-hashing", "argon2_memory_kib", kib, "hint",
		       "fine for tests; keep the default (64M) in production", NULL);
	}
	return 0;
}
