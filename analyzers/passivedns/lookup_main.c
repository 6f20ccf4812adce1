/*
 * d4-pdns-lookup — the passive DNS lookup server: HTTP (libmicrohttpd) answering in COF
 * NDJSON from the store that d4-analyzer-passivedns writes.
 *
 * Routes (the reference's, answered as docs/passivedns.md says):
 *   GET /query/<name | *.suffix | address>   GET /fquery/<rdata>   GET /info
 * Query-string: rrtype, since, until, limit, cursor (pdns_query.h). More results than the
 * limit: the header X-Next-Cursor carries the cursor of the next page (never a silent cut).
 * Errors: 400/401/404/405/500 with one JSON line {"error": "..."}. A miss is an empty 200.
 *
 * The query logic is in the d4pdns library (pdns_query.c): this file is options, HTTP and
 * the token check only. Requests run in MHD's thread pool; each one opens its own LMDB read
 * transaction, so the server never blocks the analyzer and sees each commit as it lands.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "d4_log.h"
#include "d4_net.h"
#include "pdns_query.h"

struct lk_ctx {
	struct pdns_store *st;
	char token[256];
	size_t token_len;
	unsigned threads;
};

struct lk_buf {
	char *p;
	size_t len, cap;
	int failed;
};

static int buf_add(struct lk_buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 4096;
		while (ncap < b->len + len + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->failed = 1;
			return -1;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	return 0;
}

static int emit_line(void *arg, const char *json, size_t len)
{
	struct lk_buf *b = arg;
	if (buf_add(b, json, len) != 0 || buf_add(b, "\n", 1) != 0)
		return -1;
	return 0;
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *type,
                                struct lk_buf *b, const char *cursor, size_t count)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(b->len, b->p ? b->p : (void *)"", b->p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;
	char n[32];
	if (r == NULL) {
		free(b->p);
		return MHD_NO;
	}
	b->p = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (count != (size_t)-1) {
		snprintf(n, sizeof(n), "%zu", count);
		MHD_add_response_header(r, "X-Result-Count", n);
	}
	if (cursor != NULL && *cursor)
		MHD_add_response_header(r, "X-Next-Cursor", cursor);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
	struct lk_buf b = {0};
	char tmp[600];
	size_t at = 0;
	memcpy(tmp, "{\"error\":", 9);
	at = pdns_json_str(tmp, 9, sizeof(tmp) - 3, why, strnlen(why, 400));
	if (at == 0)
		at = (size_t)snprintf(tmp, sizeof(tmp), "{\"error\":\"error\"");
	tmp[at++] = '}';
	tmp[at++] = '\n';
	if (buf_add(&b, tmp, at) != 0)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(b.p);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static bool token_ok(const struct lk_ctx *c, struct MHD_Connection *conn)
{
	if (c->token_len == 0)
		return true;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL)
		return false;
	if (strncasecmp(h, "Bearer ", 7) == 0)
		h += 7;
	size_t len = strlen(h);
	return len == c->token_len && CRYPTO_memcmp(h, c->token, len) == 0;
}

struct arg_state {
	struct pdns_query *q;
	const char *why;
	char bad_key[64];
};

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
	struct arg_state *a = cls;
	(void)kind;
	int rc = pdns_query_set_param(a->q, key, value, &a->why);
	if (rc == 1) {
		snprintf(a->bad_key, sizeof(a->bad_key), "%.40s", key);
		a->why = "unknown parameter (rrtype, since, until, limit, cursor)";
		return MHD_NO;
	}
	return rc == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct lk_ctx *c = cls;
	struct lk_buf b = {0};
	enum pdns_qkind kind;
	const char *term;
	static int first_call_marker;
	(void)version;
	(void)upload_data;

	/* answer on the second call, when the request is whole: a response queued on the first
	 * call makes libmicrohttpd close the connection (no keep-alive) */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET");
	if (*con_cls == NULL) {
		*con_cls = &first_call_marker;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0; /* a body on a GET is read and ignored */
		return MHD_YES;
	}
	if (!token_ok(c, conn))
		return send_error(conn, MHD_HTTP_UNAUTHORIZED, "a valid API token is required");
	if (strcmp(url, "/info") == 0) {
		char *info;
		if (pdns_query_info(c->st, &info) != 0)
			return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "store unreadable");
		b.p = info;
		b.len = strlen(info);
		if (buf_add(&b, "\n", 1) != 0) {
			free(b.p);
			return MHD_NO;
		}
		return send_buf(conn, MHD_HTTP_OK, "application/json", &b, NULL, (size_t)-1);
	}
	if (strncmp(url, "/query/", 7) == 0) {
		kind = PDNS_Q_QUERY;
		term = url + 7;
	} else if (strncmp(url, "/fquery/", 8) == 0) {
		kind = PDNS_Q_FQUERY;
		term = url + 8;
	} else {
		return send_error(conn, MHD_HTTP_NOT_FOUND, "no such route: /query/<name|address>, "
		                                            "/fquery/<rdata>, /info");
	}

	struct pdns_query *q = malloc(sizeof(*q));
	struct pdns_query_result res;
	struct arg_state a = {.q = q};
	const char *why = NULL;
	enum MHD_Result ret;
	if (q == NULL)
		return MHD_NO;
	pdns_query_init(q, kind);
	if (pdns_query_set_term(q, term, &why) != 0) {
		ret = send_error(conn, MHD_HTTP_BAD_REQUEST, why);
		goto out;
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, arg_cb, &a);
	if (a.why != NULL) {
		char msg[160];
		if (a.bad_key[0])
			snprintf(msg, sizeof(msg), "%s: %s", a.bad_key, a.why);
		else
			snprintf(msg, sizeof(msg), "%s", a.why);
		ret = send_error(conn, MHD_HTTP_BAD_REQUEST, msg);
		goto out;
	}
	int rc = pdns_query_run(c->st, q, emit_line, &b, &res, &why);
	if (rc == 0 && b.failed)
		rc = -2, why = "out of memory";
	if (rc != 0) {
		free(b.p);
		ret = send_error(conn, rc == -1 ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR,
		                 why);
		goto out;
	}
	ret = send_buf(conn, MHD_HTTP_OK, "application/x-ndjson", &b,
	               res.more ? res.next_cursor : NULL, res.emitted);
out:
	free(q);
	return ret;
}

static int listen_on(const char *text, int *fd_out)
{
	return d4_listen_tcp(text, 1024, "d4-pdns-lookup", "--listen", fd_out);
}

static int read_token_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(out, 1, cap - 1, f);
	fclose(f);
	out[n] = 0;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = 0;
	return n > 0 ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: d4-pdns-lookup [options]\n"
	           "  --db DIR            the store of d4-analyzer-passivedns (default ./var/pdns)\n"
	           "  --listen ADDR:PORT  (default 127.0.0.1:8400; port 0: the kernel picks, logged)\n"
	           "  --token TOKEN       require 'Authorization: [Bearer ]TOKEN'\n"
	           "  --token-file FILE   the same, the token read from FILE\n"
	           "  --threads N         worker threads (default 2)\n"
	           "  --log-level LEVEL   err, warn, notice, info, debug (default notice)\n");
}

int main(int argc, char **argv)
{
	struct lk_ctx c = {.threads = 2};
	const char *db = "./var/pdns", *listen_addr = "127.0.0.1:8400";
	int level = D4_LOG_NOTICE, fd = -1, rc = 1, sig;
	struct MHD_Daemon *d = NULL;
	char err[512];
	sigset_t set;

	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		if (strcmp(a, "--db") == 0) {
			db = v;
		} else if (strcmp(a, "--listen") == 0) {
			listen_addr = v;
		} else if (strcmp(a, "--token") == 0) {
			if (strlen(v) >= sizeof(c.token) || *v == 0)
				return 2;
			snprintf(c.token, sizeof(c.token), "%s", v);
		} else if (strcmp(a, "--token-file") == 0) {
			if (read_token_file(v, c.token, sizeof(c.token)) != 0) {
				fprintf(stderr, "d4-pdns-lookup: cannot read a token from %s\n", v);
				return 2;
			}
		} else if (strcmp(a, "--threads") == 0) {
			int n = atoi(v);
			if (n < 1 || n > 256)
				return 2;
			c.threads = (unsigned)n;
		} else if (strcmp(a, "--log-level") == 0) {
			if ((level = d4_log_level_from_name(v)) < 0)
				return 2;
		} else {
			usage(stderr);
			return 2;
		}
	}
	c.token_len = strlen(c.token);
	d4_log_init("d4-pdns-lookup", D4_LOG_STDERR, (enum d4_log_level)level);

	struct pdns_store_opts o = {.path = db, .readonly = true};
	if (pdns_store_open(&c.st, &o, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-pdns-lookup: %s\n", err);
		return 1;
	}
	/* signals are taken by sigwait() here; MHD's threads inherit the blocked mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		goto out;
	if (listen_on(listen_addr, &fd) != 0)
		goto out;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY;
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &c, MHD_OPTION_LISTEN_SOCKET, fd,
	                     MHD_OPTION_THREAD_POOL_SIZE, c.threads, MHD_OPTION_CONNECTION_TIMEOUT,
	                     (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
	                     MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "d4-pdns-lookup: libmicrohttpd did not start\n");
		goto out;
	}
	fd = -1; /* MHD closes it */
	if (sigwait(&set, &sig) != 0)
		goto out;
	d4_log(D4_LOG_NOTICE, "stopping", "signal", sig == SIGINT ? "INT" : "TERM", NULL);
	rc = 0;
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (fd >= 0)
		close(fd);
	pdns_store_close(c.st);
	return rc;
}
