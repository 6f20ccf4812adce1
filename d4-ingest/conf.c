/*
 * conf.c — the [ingest] section of the configuration into struct ingest_conf.
 *
 * Every option is read and range-checked here, once, at start; the rest of
 * the process reads the struct. etc/d4.conf documents each option; the
 * defaults below are the embedded ones an empty file gets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "d4_keyfile.h"
#include "d4_log.h"
#include "ingest.h"

static const char *const known_keys[] = {
	D4_DAEMON_KNOWN_KEYS,
	"ingest.listen",
	"ingest.workers",
	"ingest.mode",
	"ingest.shared_key",
	"ingest.shared_key_file",
	"ingest.cert",
	"ingest.key",
	"ingest.client_cert",
	"ingest.client_ca",
	"ingest.max_payload",
	"ingest.meta_header_max",
	"ingest.accepted_types",
	"ingest.accepted_meta_types",
	"ingest.duplicate_session",
	"ingest.header_timeout",
	"ingest.payload_timeout",
	"ingest.keepalive",
	"ingest.timestamp_window",
	"ingest.skew_threshold",
	"ingest.kick_ban",
	"ingest.output_buffer",
	"ingest.max_connections",
	NULL,
};

/* Sections of the other programs, which d4-ingest does not check. */
static const char *const foreign_sections[] = {"dispatch", "web", "queue.", "ctl", "client", NULL};

static int err_out(const char *msg)
{
	fprintf(stderr, "d4-ingest: %s\n", msg);
	return -1;
}

/* Splits a comma- or blank-separated list into words; calls fn on each. */
static int each_word(const char *list, int (*fn)(const char *w, size_t n, void *arg), void *arg)
{
	const char *p = list;
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		const char *s = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (p > s && fn(s, (size_t)(p - s), arg) != 0)
			return -1;
	}
	return 0;
}

static int add_listen(const char *w, size_t n, void *arg)
{
	struct ingest_conf *c = arg;
	if (c->n_listen >= INGEST_MAX_LISTEN || n >= sizeof(c->listen[0]))
		return -1;
	memcpy(c->listen[c->n_listen], w, n);
	c->listen[c->n_listen][n] = '\0';
	c->n_listen++;
	return 0;
}

static int add_meta_type(const char *w, size_t n, void *arg)
{
	struct ingest_conf *c = arg;
	if (c->n_default_meta_types >= sizeof(c->default_meta_types) / sizeof(c->default_meta_types[0]) ||
	    n > D4_META_TYPE_MAX)
		return -1;
	memcpy(c->default_meta_types[c->n_default_meta_types], w, n);
	c->default_meta_types[c->n_default_meta_types][n] = '\0';
	c->n_default_meta_types++;
	return 0;
}

int ingest_conf_load(struct ingest_conf *c, const struct d4_daemon *d)
{
	const struct d4_config *cfg = d->cfg;
	struct d4_config_err e;
	int64_t i64;
	uint64_t u64;

	memset(c, 0, sizeof(*c));
	if (d4_config_check_known(cfg, known_keys, foreign_sections, &e) != 0)
		return err_out(e.msg);

	const char *listen = d4_config_get_str(cfg, "ingest", "listen", "127.0.0.1:4443");
	if (each_word(listen, add_listen, c) != 0 || c->n_listen == 0)
		return err_out("ingest.listen: one to eight host:port addresses");

	if (d4_config_get_int(cfg, "ingest", "workers", 0, 64, 1, &i64, &e) != 0)
		return err_out(e.msg);
	c->workers = (unsigned)i64;
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n > 0 && n <= 64 ? (unsigned)n : 1;
	}

	const char *mode = d4_config_get_str(cfg, "ingest", "mode", "registration");
	if (strcmp(mode, "registration") == 0)
		c->mode = MODE_REGISTRATION;
	else if (strcmp(mode, "shared-secret") == 0)
		c->mode = MODE_SHARED_SECRET;
	else
		return err_out("ingest.mode: 'registration' or 'shared-secret'");

	const char *sk = d4_config_get(cfg, "ingest", "shared_key");
	const char *skf = d4_config_get(cfg, "ingest", "shared_key_file");
	if (sk && skf)
		return err_out("ingest.shared_key and ingest.shared_key_file: give one, not both");
	if (sk) {
		size_t n = strlen(sk);
		if (n > D4_SENSOR_KEY_MAX)
			return err_out("ingest.shared_key: longer than 256 bytes");
		memcpy(c->shared_key, sk, n);
		c->shared_key_len = n;
	} else if (skf) {
		char e2[512];
		bool loose = false;
		if (d4_key_file_read(skf, c->shared_key, sizeof(c->shared_key), &c->shared_key_len,
		                     &loose, e2, sizeof(e2)) != 0) {
			fprintf(stderr, "d4-ingest: ingest.shared_key_file: %s\n", e2);
			return -1;
		}
		if (loose)
			d4_log(D4_LOG_WARN, "key-file-permissions", "file", skf, "hint",
			       "readable by group or others; chmod 600 it", NULL);
	}
	/* no built-in default key: shared-secret mode without one does not start */
	if (c->mode == MODE_SHARED_SECRET && c->shared_key_len == 0)
		return err_out("ingest.mode is shared-secret but no ingest.shared_key or "
		               "ingest.shared_key_file is set (there is no default key)");

	snprintf(c->cert, sizeof(c->cert), "%s", d4_config_get_str(cfg, "ingest", "cert", d->paths.tls_cert));
	snprintf(c->key, sizeof(c->key), "%s", d4_config_get_str(cfg, "ingest", "key", d->paths.tls_key));

	const char *cc = d4_config_get_str(cfg, "ingest", "client_cert", "off");
	if (strcmp(cc, "off") == 0)
		c->client_cert = CLIENT_CERT_OFF;
	else if (strcmp(cc, "optional") == 0)
		c->client_cert = CLIENT_CERT_OPTIONAL;
	else if (strcmp(cc, "required") == 0)
		c->client_cert = CLIENT_CERT_REQUIRED;
	else
		return err_out("ingest.client_cert: 'off', 'optional' or 'required'");
	snprintf(c->client_ca, sizeof(c->client_ca), "%s", d4_config_get_str(cfg, "ingest", "client_ca", ""));

	if (d4_config_get_size(cfg, "ingest", "max_payload", 1, INGEST_PAYLOAD_CEILING, D4_DEFAULT_MAX_PAYLOAD,
	                       &u64, &e) != 0)
		return err_out(e.msg);
	c->max_payload = (uint32_t)u64;
	if (d4_config_get_size(cfg, "ingest", "meta_header_max", 16, D4_IPC_META_MAX, D4_IPC_META_MAX, &u64,
	                       &e) != 0)
		return err_out(e.msg);
	c->meta_header_max = (uint32_t)u64;

	static const uint64_t def_types[] = {1, 2, 3, 4, 8, 254};
	uint64_t types[D4_TYPES];
	size_t nt;
	if (d4_config_get_uint_list(cfg, "ingest", "accepted_types", 1, 255, def_types, 6, types,
	                            D4_TYPES, &nt, &e) != 0)
		return err_out(e.msg);
	for (size_t i = 0; i < nt; i++) {
		if (!d4_type_is_known((unsigned)types[i]))
			return err_out("ingest.accepted_types: only the types the protocol defines "
			               "(1-8, 254)");
		c->default_types[types[i]] = true;
	}

	const char *mt = d4_config_get_str(cfg, "ingest", "accepted_meta_types",
	                                   "ja3-jl d4-telemetry fascia maltrail");
	if (each_word(mt, add_meta_type, c) != 0)
		return err_out("ingest.accepted_meta_types: at most 32 names of at most 64 bytes");

	const char *dup = d4_config_get_str(cfg, "ingest", "duplicate_session", "refuse-new");
	if (strcmp(dup, "refuse-new") == 0)
		c->duplicates = DUP_REFUSE_NEW;
	else if (strcmp(dup, "replace-old") == 0)
		c->duplicates = DUP_REPLACE_OLD;
	else
		return err_out("ingest.duplicate_session: 'refuse-new' or 'replace-old'");

	if (d4_config_get_duration_ms(cfg, "ingest", "header_timeout", 100, 3600000, 30000,
	                              &c->header_timeout_ms, &e) != 0 ||
	    d4_config_get_duration_ms(cfg, "ingest", "payload_timeout", 1000, 86400000, 300000,
	                              &c->payload_timeout_ms, &e) != 0)
		return err_out(e.msg);
	if (d4_config_get_duration_ms(cfg, "ingest", "keepalive", 1000, 86400000, 60000, &u64, &e) != 0)
		return err_out(e.msg);
	c->keepalive_s = u64 / 1000;
	if (d4_config_get_duration_ms(cfg, "ingest", "timestamp_window", 0, 86400000ull * 3650, 0,
	                              &u64, &e) != 0)
		return err_out(e.msg);
	c->timestamp_window_s = u64 / 1000;
	if (d4_config_get_duration_ms(cfg, "ingest", "skew_threshold", 1000, 86400000ull * 3650,
	                              300000, &u64, &e) != 0)
		return err_out(e.msg);
	c->skew_threshold_s = u64 / 1000;
	if (d4_config_get_duration_ms(cfg, "ingest", "kick_ban", 0, 86400000ull * 30, 60000, &u64,
	                              &e) != 0)
		return err_out(e.msg);
	c->kick_ban_s = u64 / 1000;
	if (d4_config_get_size(cfg, "ingest", "output_buffer", 1u << 20, 16ull << 30, 64u << 20,
	                       &c->output_high, &e) != 0)
		return err_out(e.msg);
	if (d4_config_get_int(cfg, "ingest", "max_connections", 1, 1000000, 20000, &i64, &e) != 0)
		return err_out(e.msg);
	c->max_connections = (uint64_t)i64;

	snprintf(c->dispatch_socket, sizeof(c->dispatch_socket), "%s", d->paths.dispatch_socket);
	snprintf(c->store, sizeof(c->store), "%s", d->paths.store);
	return 0;
}
