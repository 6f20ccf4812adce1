/*
 * main.c — d4ctl, the operator's command-line tool.
 *
 *   d4ctl [-c FILE] [-s section.key=value]... [--json] <command> [options]
 *
 * The global options come first (getopt_long stops at the command name); the
 * configuration they describe is the servers' (same file, same --set
 * overrides), so that d4ctl finds the store where d4-ingest and d4-web keep
 * it: <d4.data_dir>/store. Each command lives in its own file and gets argv
 * from its own name on, so that it parses its options like a small program.
 * The helpers at the end are shared by the command files.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "d4_uuid.h"
#include "d4ctl.h"

static int run_decode(struct d4ctl *ctl, int argc, char **argv);

static const struct {
	const char *name;
	int (*run)(struct d4ctl *ctl, int argc, char **argv);
	bool needs_config; /* decode works on a file alone: no configuration, no store */
	const char *summary;
} commands[] = {
	{"run", cmd_run, true, "run the server in the foreground (first run: store, certificate, admin)"},
	{"start", cmd_start, true, "run the server in the background"},
	{"stop", cmd_stop, true, "stop the server started by run or start"},
	{"status", cmd_status, true, "whether the server runs, its processes and sensors"},
	{"reload", cmd_reload, true, "make d4-dispatch re-read the analyzer queues"},
	{"queue", cmd_queue, true, "analyzer queues: list, pause, resume, empty"},
	{"sensor", cmd_sensor, true, "list, show, register, approve, block, kick and tune sensors"},
	{"block", cmd_block, true, "the uuid and IP blocklists"},
	{"types", cmd_types, true, "accepted types and meta-types"},
	{"user", cmd_user, true, "web accounts and API tokens"},
	{"stats", cmd_stats, true, "one day's packets and bytes per sensor and type"},
	{"tail", cmd_tail, true, "follow one sensor's or one type's frames live"},
	{"decode", run_decode, false, "print the frames of a saved D4 stream, check HMACs"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: d4ctl [-c FILE] [-s section.key=value]... [--json] <command> [options]\n\n"
	             "  -c, --config FILE   the servers' configuration file (default: embedded defaults)\n"
	             "  -s, --set S.K=V     override one configuration key (repeatable),\n"
	             "                      e.g. --set d4.data_dir=/var/lib/d4\n"
	             "  -j, --json          machine-readable output\n"
	             "  -V, --version       print the version\n\n"
	             "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'd4ctl <command> --help' describes a command's options.\n"
	             "Exit status: 0 ok, 1 failed or refused (not found, exists ...), 2 usage,\n"
	             "3 could not run (configuration, store, I/O).\n");
}

/*
 * decode keeps its own signature (it needs no context). Two adaptations:
 * --json given before the command is passed on, and getopt is re-initialised
 * in its default (permuting) mode, since decode resets only optind = 1 and
 * glibc would otherwise keep the '+' mode main's parse left behind.
 */
static int run_decode(struct d4ctl *ctl, int argc, char **argv)
{
	char *reset_argv[] = {argv[0], NULL};
	char **args = NULL;
	int rc;

	optind = 0;
	opterr = 0;
	if (getopt(1, reset_argv, "") != -1)
		return D4CTL_USAGE;
	opterr = 1;
	if (!ctl->json)
		return cmd_decode(argc, argv);
	args = calloc((size_t)argc + 2, sizeof(*args));
	if (args == NULL) {
		d4ctl_err("decode", "out of memory");
		return D4CTL_ERROR;
	}
	args[0] = argv[0];
	args[1] = (char *)"--json";
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	rc = cmd_decode(argc + 1, args);
	free(args);
	return rc;
}

int d4ctl_begin(const char *where, struct d4ctl *ctl, struct d4_txn *t, bool write)
{
	int rc = d4ctl_open_store(ctl, write);

	if (rc != D4CTL_OK)
		return rc;
	if ((rc = d4_txn_begin(ctl->store, t, write)) != 0) {
		d4ctl_err(where, "cannot begin a transaction: %s", d4_store_strerror(rc));
		return D4CTL_ERROR;
	}
	return D4CTL_OK;
}

int d4ctl_commit(const char *where, struct d4_txn *t)
{
	int rc = d4_txn_commit(t);

	if (rc != 0) {
		d4ctl_err(where, "commit failed: %s", d4_store_strerror(rc));
		return d4ctl_store_status(rc);
	}
	return D4CTL_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"set", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct d4ctl ctl;
	const char *config_path = NULL;
	const char **sets = NULL;
	size_t nsets = 0;
	int rc = D4CTL_USAGE, c;
	time_t now;

	memset(&ctl, 0, sizeof(ctl));
	sets = calloc((size_t)argc + 1, sizeof(*sets));
	if (sets == NULL) {
		fprintf(stderr, "d4ctl: out of memory\n");
		return D4CTL_ERROR;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:c:s:jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			/* the form only; d4_config_set checks the rest once the file is loaded */
			if (strchr(optarg, '=') == NULL || strchr(optarg, '.') == NULL ||
			    strchr(optarg, '.') > strchr(optarg, '=')) {
				fprintf(stderr, "d4ctl: --set: expected section.key=value, got '%s'\n",
				        optarg);
				goto out;
			}
			sets[nsets++] = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			usage(stdout);
			rc = D4CTL_OK;
			goto out;
		case 'V':
			printf("d4ctl %s\n", D4_VERSION_STRING);
			rc = D4CTL_OK;
			goto out;
		default:
			if (c == ':')
				fprintf(stderr, "d4ctl: option '%s' needs a value\n", argv[optind - 1]);
			else
				fprintf(stderr, "d4ctl: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			goto out;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		goto out;
	}
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		rc = D4CTL_OK;
		goto out;
	}

	size_t i;
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "d4ctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		goto out;
	}
	if (commands[i].needs_config) {
		ctl.d.prog = "d4ctl";
		ctl.d.config_path = config_path;
		if (d4_daemon_configure(&ctl.d, sets, nsets) != 0) {
			rc = D4CTL_ERROR; /* d4_daemon_configure said what */
			goto out;
		}
	}
	if ((now = time(NULL)) == (time_t)-1) {
		fprintf(stderr, "d4ctl: cannot read the clock: %s\n", strerror(errno));
		rc = D4CTL_ERROR;
		goto out;
	}
	ctl.now = (uint64_t)now;
	ctl.sets = sets;
	ctl.nsets = nsets;
	rc = commands[i].run(&ctl, argc - optind, argv + optind);

out:
	if (ctl.store != NULL)
		d4_store_close(ctl.store);
	d4_daemon_free(&ctl.d);
	free(sets);
	if (fflush(stdout) != 0 && rc == D4CTL_OK) {
		fprintf(stderr, "d4ctl: writing the output: %s\n", strerror(errno));
		rc = D4CTL_ERROR;
	}
	return rc;
}

/* ---- helpers shared by the commands ---- */

int d4ctl_open_store(struct d4ctl *ctl, bool write)
{
	struct d4_store_opts opts = {.read_only = !write};
	char err[D4_STORE_ERR_LEN], data[D4_PATH_MAX + 16];
	const char *path = ctl->d.paths.store;
	struct stat st;
	bool existed;
	int rc;

	if (ctl->store != NULL) {
		if (!write || ctl->store_writable)
			return D4CTL_OK;
		d4_store_close(ctl->store);
		ctl->store = NULL;
	}
	rc = snprintf(data, sizeof(data), "%s/data.mdb", path);
	if (rc < 0 || (size_t)rc >= sizeof(data)) {
		fprintf(stderr, "d4ctl: store path too long: %s\n", path);
		return D4CTL_ERROR;
	}
	existed = stat(data, &st) == 0;
	if (!existed && !write) {
		fprintf(stderr, "d4ctl: no store at %s (has the server run? d4ctl run creates it)\n",
		        path);
		return D4CTL_ERROR;
	}
	rc = d4_store_open(&ctl->store, path, &opts, err, sizeof(err));
	if (rc != 0) {
		ctl->store = NULL;
		fprintf(stderr, "d4ctl: %s\n", err);
		return D4CTL_ERROR;
	}
	ctl->store_writable = write;
	if (!existed)
		fprintf(stderr, "d4ctl: created a new store at %s\n", path);
	return D4CTL_OK;
}

int d4ctl_store_status(int rc)
{
	switch (rc) {
	case 0:
		return D4CTL_OK;
	case -ENOENT:
	case -EEXIST:
	case -EPERM:
	case -EINVAL:
		return D4CTL_FAILED;
	default:
		return D4CTL_ERROR;
	}
}

void d4ctl_err(const char *where, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "d4ctl %s: ", where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int d4ctl_getopt_error(const char *where, int c, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (c == ':')
		d4ctl_err(where, "option '%s' needs a value", arg);
	else if (optopt != 0)
		d4ctl_err(where, "unknown option '-%c'", optopt);
	else
		d4ctl_err(where, "unknown option '%s'", arg);
	if (strcmp(arg, "--json") == 0 || strcmp(arg, "-j") == 0)
		fprintf(stderr, "(--json is a global option: d4ctl --json %s ...)\n", where);
	else
		fprintf(stderr, "(see 'd4ctl %s --help')\n", where);
	return D4CTL_USAGE;
}

bool d4ctl_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

int d4ctl_subcommand(struct d4ctl *ctl, const char *group, const struct d4ctl_sub *subs,
                     size_t n, void (*group_usage)(FILE *out), int argc, char **argv)
{
	if (argc < 2) {
		group_usage(stderr);
		return D4CTL_USAGE;
	}
	if (d4ctl_is_help(argv[1])) {
		group_usage(stdout);
		return D4CTL_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(ctl, argc - 1, argv + 1);
	d4ctl_err(group, "unknown subcommand '%s'", argv[1]);
	group_usage(stderr);
	return D4CTL_USAGE;
}

int d4ctl_parse_uuid(const char *where, const char *text, bool need_v4, uint8_t out[16])
{
	if (d4_uuid_parse_str(text, out) != 0) {
		d4ctl_err(where, "'%s' is not a UUID (32 hex digits, dashes optional)", text);
		return D4CTL_USAGE;
	}
	if (need_v4 && !d4_uuid_is_v4(out)) {
		d4ctl_err(where, "'%s' is not a version 4 UUID (D4 sensors use random v4 UUIDs)",
		          text);
		return D4CTL_USAGE;
	}
	return 0;
}

/* Digits then an optional suffix; *mult is looked up by the caller's table. */
static int parse_number(const char *text, uint64_t *value, const char **suffix)
{
	uint64_t v = 0;
	const char *p = text;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*value = v;
	*suffix = p;
	return 0;
}

int d4ctl_parse_duration(const char *where, const char *text, uint64_t *secs)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
	const char *suffix;
	uint64_t v;

	if (parse_number(text, &v, &suffix) == 0) {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(suffix, units[i].suffix) != 0)
				continue;
			/* at most ten years: a longer ban is a permanent one */
			if (v == 0 || v > 10 * 366 * 86400ULL / units[i].mult)
				break;
			*secs = v * units[i].mult;
			return 0;
		}
	}
	d4ctl_err(where, "'%s' is not a duration (like 90s, 10m, 2h, 1d, 1w; at most ten years)",
	          text);
	return D4CTL_USAGE;
}

int d4ctl_parse_size(const char *where, const char *what, const char *text, uint64_t max,
                     uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {{"", 0}, {"k", 10}, {"K", 10}, {"M", 20}, {"G", 30}};
	const char *suffix;
	uint64_t v;

	if (parse_number(text, &v, &suffix) == 0) {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(suffix, units[i].suffix) != 0)
				continue;
			if (v > (max >> units[i].shift))
				break;
			*out = v << units[i].shift;
			return 0;
		}
	}
	d4ctl_err(where, "%s: '%s' is not a number of bytes up to %" PRIu64
	                 " (a k, M or G suffix counts powers of 1024)",
	          what, text, max);
	return D4CTL_USAGE;
}

const char *d4ctl_safe(const char *s, char *buf, size_t cap)
{
	size_t i;

	if (cap == 0)
		return "";
	for (i = 0; s[i] != '\0' && i + 1 < cap; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

void d4ctl_format_time(uint64_t t, char out[D4CTL_TIME_LEN])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || t > (uint64_t)INT64_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, D4CTL_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, D4CTL_TIME_LEN, "%s", t == 0 ? "-" : "?");
}

json_t *d4ctl_json_time(uint64_t t)
{
	char buf[D4CTL_TIME_LEN];

	if (t == 0)
		return json_null();
	d4ctl_format_time(t, buf);
	return json_string(buf);
}

int d4ctl_json_print(json_t *j)
{
	char *s;

	if (j == NULL) {
		fprintf(stderr, "d4ctl: out of memory building the JSON output\n");
		return D4CTL_ERROR;
	}
	s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (s == NULL) {
		fprintf(stderr, "d4ctl: out of memory building the JSON output\n");
		return D4CTL_ERROR;
	}
	int rc = printf("%s\n", s) < 0 ? D4CTL_ERROR : D4CTL_OK;
	free(s);
	return rc;
}
