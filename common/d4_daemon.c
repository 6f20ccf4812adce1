/*
 * d4_daemon.c — command line, configuration, logging and paths of a server process.
 *
 * Every process (d4-ingest, d4-dispatch, d4-web, and d4ctl run which starts
 * them) reads the same configuration file and takes the same overrides, so
 * that a test or a script sets `--set ingest.listen=127.0.0.1:0` once and
 * every process agrees on the data directory.
 */
#include "d4_daemon.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "d4_log.h"

int d4_path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n;
	if (name[0] == '/')
		n = snprintf(out, cap, "%s", name);
	else
		n = snprintf(out, cap, "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int d4_mkdir_p(const char *path, unsigned mode)
{
	char tmp[D4_PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int derive_paths(struct d4_daemon *d)
{
	struct d4_paths *p = &d->paths;
	const char *data = d4_config_get_str(d->cfg, "d4", "data_dir", "./var");
	int rc = 0;

	if (snprintf(p->data_dir, sizeof(p->data_dir), "%s", data) >= (int)sizeof(p->data_dir))
		return -1;
	rc |= d4_path_join(p->store, sizeof(p->store), p->data_dir,
	                   d4_config_get_str(d->cfg, "d4", "store", "store"));
	rc |= d4_path_join(p->tls_cert, sizeof(p->tls_cert), p->data_dir,
	                   d4_config_get_str(d->cfg, "d4", "tls_cert", "tls/server.crt"));
	rc |= d4_path_join(p->tls_key, sizeof(p->tls_key), p->data_dir,
	                   d4_config_get_str(d->cfg, "d4", "tls_key", "tls/server.key"));
	rc |= d4_path_join(p->dispatch_socket, sizeof(p->dispatch_socket), p->data_dir,
	                   d4_config_get_str(d->cfg, "d4", "dispatch_socket", "run/dispatch.sock"));
	return rc;
}

int d4_daemon_init(struct d4_daemon *d, const char *prog, const char *help, int argc,
                   char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c, r;

	memset(d, 0, sizeof(*d));
	d->prog = prog;
	d->cfg = d4_config_new();
	if (d->cfg == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	/* the file first, then every --set in order: collect the sets */
	char **sets = calloc((size_t)argc + 1, sizeof(char *));
	size_t nsets = 0;
	if (sets == NULL)
		return -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->config_path = optarg;
			break;
		case 's':
			sets[nsets++] = optarg;
			break;
		case 'h':
			printf("usage: %s [-c FILE] [--set section.key=value ...]\n\n"
			       "  -c, --config FILE    configuration file (default: embedded defaults)\n"
			       "  -s, --set S.K=V      override one option (repeatable)\n"
			       "  -h, --help           this text\n"
			       "  -V, --version        print the version\n%s",
			       prog, help ? help : "");
			free(sets);
			return 1;
		case 'V':
			printf("%s %s\n", prog, D4_VERSION_STRING);
			free(sets);
			return 1;
		default:
			fprintf(stderr, "%s: try --help\n", prog);
			free(sets);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		free(sets);
		return -1;
	}
	r = d4_daemon_configure(d, (const char *const *)sets, nsets);
	free(sets);
	return r;
}

int d4_daemon_configure(struct d4_daemon *d, const char *const *sets, size_t nsets)
{
	struct d4_config_err err;
	const char *prog = d->prog;

	if (d->cfg == NULL && (d->cfg = d4_config_new()) == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	if (d->config_path && d4_config_load(d->cfg, d->config_path, &err) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return -1;
	}
	for (size_t i = 0; i < nsets; i++) {
		if (d4_config_set(d->cfg, sets[i], &err) != 0) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			return -1;
		}
	}

	const char *lvl = d4_config_get_str(d->cfg, "d4", "log_level", "info");
	int level = d4_log_level_from_name(lvl);
	if (level < 0) {
		fprintf(stderr, "%s: %s: d4.log_level: '%s' is not err, warn, notice, info or debug\n",
		        prog, d4_config_origin(d->cfg, "d4", "log_level"), lvl);
		return -1;
	}
	const char *target = d4_config_get_str(d->cfg, "d4", "log", "stderr");
	enum d4_log_target t;
	if (strcmp(target, "stderr") == 0) {
		t = D4_LOG_STDERR;
	} else if (strcmp(target, "syslog") == 0) {
		t = D4_LOG_SYSLOG;
	} else {
		fprintf(stderr, "%s: %s: d4.log: '%s' is not stderr or syslog\n", prog,
		        d4_config_origin(d->cfg, "d4", "log"), target);
		return -1;
	}
	d4_log_init(prog, t, (enum d4_log_level)level);
	if (derive_paths(d) != 0) {
		fprintf(stderr, "%s: a path under d4.data_dir is too long\n", prog);
		return -1;
	}
	return 0;
}

void d4_daemon_free(struct d4_daemon *d)
{
	d4_config_free(d->cfg);
	d->cfg = NULL;
}
