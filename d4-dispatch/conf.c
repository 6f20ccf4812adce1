/*
 * conf.c — the [dispatch] section and the [queue.NAME] sections into struct
 * dispatch_conf.
 *
 * Everything is read and checked here, once (at start, and again on SIGHUP
 * into a fresh struct that replaces the running one only when it is whole),
 * so that a typo is an error with the file and line and never a queue that
 * silently takes nothing. etc/d4.conf documents every option.
 *
 * A queue's analyzer params are the keys of the sub-section
 * [queue.NAME.param] (on the command line: --set queue.NAME.param.KEY=VALUE):
 * the configuration syntax allows no dot inside a key, and a section of its
 * own keeps the params apart from the queue's options.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "d4_log.h"
#include "d4_uuid.h"
#include "dispatch.h"

static const char *const known_keys[] = {
	D4_DAEMON_KNOWN_KEYS,
	"dispatch.restart_backoff_max",
	"dispatch.max_restarts",
	"dispatch.restart_window",
	"dispatch.ack_interval",
	"dispatch.handshake_timeout",
	"dispatch.stop_timeout",
	"dispatch.bye_timeout",
	"dispatch.window",
	"dispatch.resume_window",
	"dispatch.resume_frames",
	"queue.*.types",
	"queue.*.meta_types",
	"queue.*.sensors",
	"queue.*.groups",
	"queue.*.command",
	"queue.*.instances",
	"queue.*.memory",
	"queue.*.spool",
	"queue.*.when_full",
	"queue.*.param.*",
	NULL,
};

/* Sections of the other programs. */
static const char *const foreign_sections[] = {"ingest", "web", "ctl", "client", NULL};

struct load_ctx {
	const struct d4_config *cfg;
	struct dispatch_conf *c;
	char *err;
	size_t errlen;
	int rc;
	const char *section; /* param walk: the queue being filled */
	struct queue_conf *q;
};

static int fail(struct load_ctx *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct load_ctx *lc, const char *fmt, ...)
{
	if (lc->rc == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(lc->err, lc->errlen, fmt, ap);
		va_end(ap);
	}
	lc->rc = -1;
	return -1;
}

void queue_conf_free(struct queue_conf *q)
{
	free(q->meta_types);
	free(q->sensors);
	free(q->groups);
	free(q->command);
	if (q->argv)
		for (unsigned i = 0; i < q->argc; i++)
			free(q->argv[i]);
	free(q->argv);
	for (unsigned i = 0; i < q->n_params; i++) {
		free(q->param_keys[i]);
		free(q->param_values[i]);
	}
	free(q->param_keys);
	free(q->param_values);
	memset(q, 0, sizeof(*q));
}

void dispatch_conf_free(struct dispatch_conf *c)
{
	for (unsigned i = 0; i < c->n_queues; i++)
		queue_conf_free(&c->queues[i]);
	free(c->queues);
	c->queues = NULL;
	c->n_queues = 0;
}

bool queue_conf_same_program(const struct queue_conf *a, const struct queue_conf *b)
{
	if (a->argc != b->argc || a->n_params != b->n_params)
		return false;
	for (unsigned i = 0; i < a->argc; i++)
		if (strcmp(a->argv[i], b->argv[i]) != 0)
			return false;
	for (unsigned i = 0; i < a->n_params; i++)
		if (strcmp(a->param_keys[i], b->param_keys[i]) != 0 ||
		    strcmp(a->param_values[i], b->param_values[i]) != 0)
			return false;
	return true;
}

/* Splits a list on blanks and commas; calls fn with each word (NUL-terminated copy). */
static int each_word(const char *list, int (*fn)(const char *w, void *arg), void *arg)
{
	const char *p = list;
	char w[256];
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		const char *s = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - s);
		if (n == 0)
			continue;
		if (n >= sizeof(w))
			return -1;
		memcpy(w, s, n);
		w[n] = '\0';
		if (fn(w, arg) != 0)
			return -1;
	}
	return 0;
}

static bool printable_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int add_meta_type(const char *w, void *arg)
{
	struct queue_conf *q = arg;
	if (q->n_meta_types >= QUEUE_MAX_LIST || !printable_name(w, D4_META_TYPE_MAX))
		return -1;
	snprintf(q->meta_types[q->n_meta_types++], D4_META_TYPE_MAX + 1, "%s", w);
	return 0;
}

static int add_sensor(const char *w, void *arg)
{
	struct queue_conf *q = arg;
	if (q->n_sensors >= QUEUE_MAX_LIST || d4_uuid_parse_str(w, q->sensors[q->n_sensors]) != 0)
		return -1;
	q->n_sensors++;
	return 0;
}

static int add_group(const char *w, void *arg)
{
	struct queue_conf *q = arg;
	if (q->n_groups >= QUEUE_MAX_LIST || !printable_name(w, D4_GROUP_NAME_MAX))
		return -1;
	snprintf(q->groups[q->n_groups++], D4_GROUP_NAME_MAX + 1, "%s", w);
	return 0;
}

/*
 * Splits a command line on blanks; double quotes group words ("a b"), and
 * inside them \" and \\ stand for themselves. No other shell syntax.
 */
static int split_command(const char *cmd, struct queue_conf *q)
{
	size_t len = strlen(cmd);
	char *word = malloc(len + 1);
	if (word == NULL)
		return -1;
	q->argv = calloc(QUEUE_MAX_ARGS + 1, sizeof(char *));
	if (q->argv == NULL)
		goto fail;
	const char *p = cmd;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		size_t n = 0;
		bool quoted = false;
		while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
			if (*p == '"') {
				quoted = !quoted;
				p++;
				continue;
			}
			if (quoted && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			word[n++] = *p++;
		}
		if (quoted || q->argc >= QUEUE_MAX_ARGS)
			goto fail;
		word[n] = '\0';
		if ((q->argv[q->argc] = strdup(word)) == NULL)
			goto fail;
		q->argc++;
	}
	free(word);
	return q->argc > 0 ? 0 : -1;
fail:
	free(word);
	return -1;
}

static bool executable(const char *path)
{
	return access(path, X_OK) == 0;
}

/* A bare name: next to the d4-dispatch binary first, then in PATH. */
static int resolve_program(struct queue_conf *q)
{
	char path[D4_PATH_MAX];
	const char *name = q->argv[0];
	if (strchr(name, '/'))
		return executable(name) ? 0 : -1;
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (slash && (size_t)(slash - path) + 1 + strlen(name) < sizeof(path)) {
			strcpy(slash + 1, name);
			if (executable(path))
				goto found;
		}
	}
	const char *env = getenv("PATH");
	if (env == NULL)
		env = "/usr/local/bin:/usr/bin:/bin";
	while (*env) {
		const char *colon = strchr(env, ':');
		size_t dl = colon ? (size_t)(colon - env) : strlen(env);
		if (dl > 0 && dl + 1 + strlen(name) < sizeof(path)) {
			memcpy(path, env, dl);
			path[dl] = '/';
			strcpy(path + dl + 1, name);
			if (executable(path))
				goto found;
		}
		env += dl;
		if (*env == ':')
			env++;
	}
	return -1;
found: {
	char *copy = strdup(path);
	if (copy == NULL)
		return -1;
	free(q->argv[0]);
	q->argv[0] = copy;
	return 0;
}
}

static void add_param(const char *key, const char *value, void *arg)
{
	struct load_ctx *lc = arg;
	struct queue_conf *q = lc->q;
	if (lc->rc != 0)
		return;
	if (q->n_params >= QUEUE_MAX_PARAMS) {
		fail(lc, "%s: more than 64 params (%s)", lc->section, key);
		return;
	}
	q->param_keys[q->n_params] = strdup(key);
	q->param_values[q->n_params] = strdup(value);
	if (q->param_keys[q->n_params] == NULL || q->param_values[q->n_params] == NULL) {
		free(q->param_keys[q->n_params]);
		free(q->param_values[q->n_params]);
		fail(lc, "%s: out of memory", lc->section);
		return;
	}
	if (strlen(value) > D4_AP_STR_MAX) {
		q->n_params++;
		fail(lc, "%s.param.%s: longer than 65535 bytes", lc->section, key);
		return;
	}
	q->n_params++;
}

static int load_queue(struct load_ctx *lc, const char *section, struct queue_conf *q)
{
	const struct d4_config *cfg = lc->cfg;
	struct d4_config_err e;
	uint64_t list[D4_TYPES];
	size_t n;
	int64_t i64;
	const char *name = section + strlen("queue.");

	if (strlen(name) > D4_QUEUE_NAME_MAX)
		return fail(lc, "[%s]: a queue name has at most 64 bytes", section);
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->meta_types = calloc(QUEUE_MAX_LIST, sizeof(*q->meta_types));
	q->sensors = calloc(QUEUE_MAX_LIST, sizeof(*q->sensors));
	q->groups = calloc(QUEUE_MAX_LIST, sizeof(*q->groups));
	q->param_keys = calloc(QUEUE_MAX_PARAMS, sizeof(char *));
	q->param_values = calloc(QUEUE_MAX_PARAMS, sizeof(char *));
	if (!q->meta_types || !q->sensors || !q->groups || !q->param_keys || !q->param_values)
		return fail(lc, "%s: out of memory", section);

	if (d4_config_get_uint_list(cfg, section, "types", 1, 255, NULL, 0, list, D4_TYPES, &n,
	                            &e) != 0)
		return fail(lc, "%s", e.msg);
	for (size_t i = 0; i < n; i++) {
		if (!d4_type_is_known((unsigned)list[i]))
			return fail(lc, "%s: queue.%s.types: only the types the protocol defines (1-8, 254)",
			            d4_config_origin(cfg, section, "types"), name);
		q->types[list[i]] = true;
	}
	const char *v = d4_config_get(cfg, section, "meta_types");
	if (v && each_word(v, add_meta_type, q) != 0)
		return fail(lc, "%s: queue.%s.meta_types: at most 64 names of 1-64 printable bytes",
		            d4_config_origin(cfg, section, "meta_types"), name);
	if (n == 0 && q->n_meta_types == 0)
		return fail(lc, "[%s]: give types or meta_types (the queue would take nothing)%s",
		            section, "");
	v = d4_config_get(cfg, section, "sensors");
	if (v && each_word(v, add_sensor, q) != 0)
		return fail(lc, "%s: queue.%s.sensors: at most 64 uuids",
		            d4_config_origin(cfg, section, "sensors"), name);
	v = d4_config_get(cfg, section, "groups");
	if (v && each_word(v, add_group, q) != 0)
		return fail(lc, "%s: queue.%s.groups: at most 64 names of 1-32 printable bytes",
		            d4_config_origin(cfg, section, "groups"), name);

	v = d4_config_get(cfg, section, "command");
	if (v == NULL)
		return fail(lc, "[%s]: no command (the analyzer to run)", section);
	if ((q->command = strdup(v)) == NULL || split_command(v, q) != 0)
		return fail(lc, "%s: queue.%s.command: empty, unbalanced quotes or more than 64 words",
		            d4_config_origin(cfg, section, "command"), name);
	if (resolve_program(q) != 0) {
		char msg[D4_PATH_MAX + 128];
		snprintf(msg, sizeof(msg), "queue.%s.command: '%s' is not an executable file (looked "
		         "next to d4-dispatch, then in PATH)", name, q->argv[0]);
		return fail(lc, "%s: %s", d4_config_origin(cfg, section, "command"), msg);
	}

	if (d4_config_get_int(cfg, section, "instances", 1, QUEUE_MAX_INSTANCES, 1, &i64, &e) != 0)
		return fail(lc, "%s", e.msg);
	q->instances = (unsigned)i64;
	if (d4_config_get_size(cfg, section, "memory", 1u << 16, 1ull << 40, 64u << 20, &q->memory,
	                       &e) != 0)
		return fail(lc, "%s", e.msg);
	if (d4_config_get_size(cfg, section, "spool", 0, 1ull << 50, 1ull << 30, &q->spool, &e) != 0)
		return fail(lc, "%s", e.msg);
	if (q->spool > 0 && q->spool < (64u << 10))
		return fail(lc, "%s: queue.%s.spool: 0 (no spool) or at least 64k",
		            d4_config_origin(cfg, section, "spool"), name);
	const char *wf = d4_config_get_str(cfg, section, "when_full", "pause");
	if (strcmp(wf, "pause") == 0)
		q->when_full = WHEN_FULL_PAUSE;
	else if (strcmp(wf, "drop-oldest") == 0)
		q->when_full = WHEN_FULL_DROP_OLDEST;
	else
		return fail(lc, "%s: queue.%s.when_full: 'pause' or 'drop-oldest'",
		            d4_config_origin(cfg, section, "when_full"), name);

	char psec[D4_QUEUE_NAME_MAX + 32];
	snprintf(psec, sizeof(psec), "%s.param", section);
	lc->q = q;
	lc->section = section;
	d4_config_each_key(cfg, psec, add_param, lc);
	return lc->rc;
}

static void count_section(const char *section, void *arg)
{
	unsigned *n = arg;
	if (strchr(section + strlen("queue."), '.') == NULL)
		(*n)++;
}

static void queue_section(const char *section, void *arg)
{
	struct load_ctx *lc = arg;
	if (lc->rc != 0 || strchr(section + strlen("queue."), '.') != NULL)
		return;
	struct queue_conf *q = &lc->c->queues[lc->c->n_queues++];
	(void)load_queue(lc, section, q);
}

static void param_section_check(const char *section, void *arg)
{
	struct load_ctx *lc = arg;
	const char *rest = section + strlen("queue.");
	const char *dot = strchr(rest, '.');
	if (lc->rc != 0 || dot == NULL)
		return;
	if (strcmp(dot, ".param") != 0) {
		fail(lc, "[%s]: unknown section (a queue's params go in [queue.NAME.param])%s",
		     section, "");
		return;
	}
	for (unsigned i = 0; i < lc->c->n_queues; i++)
		if (strlen(lc->c->queues[i].name) == (size_t)(dot - rest) &&
		    strncmp(lc->c->queues[i].name, rest, (size_t)(dot - rest)) == 0)
			return;
	fail(lc, "[%s]: params of a queue that has no [queue.NAME] section", section);
}

int dispatch_conf_load(struct dispatch_conf *c, const struct d4_daemon *d, char *err,
                       size_t errlen)
{
	const struct d4_config *cfg = d->cfg;
	struct d4_config_err e;
	struct load_ctx lc = {.cfg = cfg, .c = c, .err = err, .errlen = errlen};
	int64_t i64;
	unsigned nq = 0;

	memset(c, 0, sizeof(*c));
	if (d4_config_check_known(cfg, known_keys, foreign_sections, &e) != 0)
		return fail(&lc, "%s", e.msg);
	if (d4_config_get_duration_ms(cfg, "dispatch", "restart_backoff_max", 100, 3600000, 60000,
	                              &c->restart_backoff_max_ms, &e) != 0 ||
	    d4_config_get_duration_ms(cfg, "dispatch", "restart_window", 1000, 86400000, 300000,
	                              &c->restart_window_ms, &e) != 0 ||
	    d4_config_get_duration_ms(cfg, "dispatch", "handshake_timeout", 100, 600000, 10000,
	                              &c->handshake_timeout_ms, &e) != 0 ||
	    d4_config_get_duration_ms(cfg, "dispatch", "stop_timeout", 0, 3600000, 10000,
	                              &c->stop_timeout_ms, &e) != 0 ||
	    d4_config_get_duration_ms(cfg, "dispatch", "bye_timeout", 100, 600000, 5000,
	                              &c->bye_timeout_ms, &e) != 0 ||
	    d4_config_get_size(cfg, "dispatch", "ack_interval", 4096, 64u << 20, 1u << 20,
	                       &c->ack_bytes, &e) != 0 ||
	    d4_config_get_size(cfg, "dispatch", "window", 64u << 10, 1ull << 30, 4u << 20,
	                       &c->window, &e) != 0)
		return fail(&lc, "%s", e.msg);
	if (d4_config_get_int(cfg, "dispatch", "max_restarts", 0, 100000, 10, &i64, &e) != 0)
		return fail(&lc, "%s", e.msg);
	c->max_restarts = (unsigned)i64;
	uint64_t resume_ms;
	if (d4_config_get_duration_ms(cfg, "dispatch", "resume_window", 1000, 3600000, 120000,
	                              &resume_ms, &e) != 0 ||
	    d4_config_get_int(cfg, "dispatch", "resume_frames", 0, 1 << 24, 65536, &i64, &e) != 0)
		return fail(&lc, "%s", e.msg);
	c->resume_window_s = (uint32_t)(resume_ms / 1000);
	c->resume_frames = (uint32_t)i64;

	d4_config_each_section(cfg, "queue.", count_section, &nq);
	if (nq > 0 && (c->queues = calloc(nq, sizeof(*c->queues))) == NULL)
		return fail(&lc, "out of memory");
	d4_config_each_section(cfg, "queue.", queue_section, &lc);
	if (lc.rc == 0)
		d4_config_each_section(cfg, "queue.", param_section_check, &lc);
	snprintf(c->dispatch_socket, sizeof(c->dispatch_socket), "%s", d->paths.dispatch_socket);
	snprintf(c->store, sizeof(c->store), "%s", d->paths.store);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", d->paths.data_dir);
	if (lc.rc != 0)
		dispatch_conf_free(c);
	return lc.rc;
}
