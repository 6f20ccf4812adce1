/*
 * main.c — d4-web: options, the first admin, TLS material, the listening
 * socket, then libmicrohttpd until SIGTERM or SIGINT.
 *
 *   d4-web [-c FILE] [--set section.key=value ...]
 *   d4-web [-c FILE] [--set ...] --create-admin NAME
 *
 * The socket is bound here (not by libmicrohttpd) so that port 0 works and
 * the port is logged as `listening ... port=N`, as d4-ingest does. The main
 * thread blocks the signals before libmicrohttpd starts its thread, then
 * waits for one with sigwait(): no handler runs inside a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "d4_log.h"
#include "web.h"

#define PEM_MAX (1u << 20)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4-web [-c FILE] [--set section.key=value ...] [--create-admin NAME]\n\n"
		"  -c, --config FILE      configuration file (default: embedded defaults)\n"
		"  -s, --set S.K=V        override one option (repeatable)\n"
		"      --create-admin NAME  create the first admin (only in a store without users),\n"
		"                         print its random password once on stdout, and exit\n"
		"  -h, --help             this text\n"
		"  -V, --version          print the version\n\n"
		"The management REST API (docs/web.md). Options live in the [web] section\n"
		"(etc/d4.conf documents them).\n");
}


static int bind_listener(const char *text, int *fd_out)
{
	return d4_listen_tcp(text, 1024, "d4-web", "web.listen", fd_out);
}

/* A whole PEM file, NUL-terminated, malloc'd. NULL after printing why. */
static char *read_pem(const char *what, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "d4-web: %s %s: %s (set web.plain_http = true only behind a TLS "
		                "reverse proxy)\n", what, path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(PEM_MAX + 1)) == NULL)
		goto fail;
	n = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f) || n == 0 || n > PEM_MAX) {
		fprintf(stderr, "d4-web: %s %s: empty, unreadable or larger than 1 MiB\n", what, path);
		goto fail;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
fail:
	if (buf != NULL)
		OPENSSL_cleanse(buf, PEM_MAX + 1);
	free(buf);
	fclose(f);
	return NULL;
}

static void free_pem(char *p)
{
	if (p != NULL)
		OPENSSL_cleanse(p, strlen(p));
	free(p);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"set", required_argument, NULL, 's'},
		{"create-admin", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct web w; /* the throttle table is large: not on the stack */
	struct d4_daemon d;
	const char *create_admin = NULL;
	char **sets = NULL;
	size_t nsets = 0;
	char *cert = NULL, *key = NULL, err[512];
	int fd = -1, rc = 1, c, sig;
	sigset_t mask;
	struct d4_store_opts so = {0};

	memset(&d, 0, sizeof(d));
	d.prog = "d4-web";
	if ((sets = calloc((size_t)argc + 1, sizeof(*sets))) == NULL)
		return 1;
	while ((c = getopt_long(argc, argv, "c:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 's':
			sets[nsets++] = optarg;
			break;
		case 'A':
			create_admin = optarg;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		case 'V':
			printf("d4-web %s\n", D4_VERSION_STRING);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "d4-web: unexpected argument '%s'\n", argv[optind]);
		rc = 2;
		goto out;
	}
	if (d4_daemon_configure(&d, (const char *const *)sets, nsets) != 0)
		goto out;
	w.d = &d;
	if (pthread_mutex_init(&w.lock, NULL) != 0)
		goto out;
	if (web_conf_load(&w.conf, &d) != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	if (d4_store_open(&w.store, w.conf.store, &so, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-web: %s\n", err);
		goto out;
	}
	if (create_admin != NULL) {
		rc = auth_create_admin(&w, create_admin) == 0 ? 0 : 1;
		goto out;
	}
	if (!w.conf.plain_http) {
		if ((cert = read_pem("web.tls_cert", w.conf.tls_cert)) == NULL ||
		    (key = read_pem("web.tls_key", w.conf.tls_key)) == NULL)
			goto out;
	} else {
		d4_log(D4_LOG_WARN, "plain-http", "hint",
		       "web.plain_http is set: serve this only behind a TLS reverse proxy", NULL);
	}
	if (auth_init(&w) != 0) {
		fprintf(stderr, "d4-web: cannot set up the session table or hash a password\n");
		goto out;
	}
	if (bind_listener(w.conf.listen, &fd) != 0)
		goto out;
	/* block before libmicrohttpd's thread exists: it inherits the mask */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
		goto out;
	w.started = w.last_sweep = (uint64_t)time(NULL);
	if (web_http_start(&w, fd, cert, key) != 0)
		goto out;
	fd = -1; /* libmicrohttpd owns it now */
	d4_log(D4_LOG_NOTICE, "started", "tls", w.conf.plain_http ? "off" : "on", NULL);
	do {
		c = sigwait(&mask, &sig);
	} while (c == EINTR);
	d4_log(D4_LOG_NOTICE, "stopping", NULL);
	web_http_stop(&w);
	rc = 0;
out:
	web_http_stop(&w);
	if (fd >= 0)
		close(fd);
	auth_free(&w);
	api_pdns_close(&w);
	api_tls_close(&w);
	web_cache_free(&w.sensor_list);
	web_cache_free(&w.metrics);
	free_pem(cert);
	free_pem(key);
	if (w.store != NULL)
		d4_store_close(w.store);
	free(sets);
	d4_daemon_free(&d);
	return rc;
}
