/*
 * api_tls.c — the TLS analyzer's store in d4-web (web.tls_db, read-only): pivots (JA3, JA3S,
 * JA4, certificate, key, server address, SNI, subject) with what is linked to them, the
 * sessions behind a pivot, weak-key findings, and a certificate's DER. The queries are the
 * analyzer's own (analyzers/tls/query.h); this file only maps HTTP onto them.
 *
 *   GET /api/v1/tls/summary
 *   GET /api/v1/tls/pivot?kind=ja3&value=...[&limit=&cursor=]
 *   GET /api/v1/tls/sessions?kind=cert&value=...[&limit=&cursor=]
 *   GET /api/v1/tls/findings[?limit=&cursor=]
 *   GET /api/v1/tls/cert?hash=<sha256 or sha1>     the DER (application/pkix-cert)
 *
 * Values go in the query string, not the path: a subject or an SNI may hold any character.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "d4_log.h"
#include "query.h"
#include "store.h"
#include "web.h"

static struct tls_store *tls(struct web_req *r)
{
	struct web *w = r->w;
	struct stat sb;

	if (w->tls != NULL)
		return w->tls;
	if (stat(w->conf.tls_db, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		web_error(r, MHD_HTTP_NOT_FOUND,
		          "the TLS analyzer is not set up here: no store at %s (web.tls_db; "
		          "see docs/tls-analyzer.md)", w->conf.tls_db);
		return NULL;
	}
	struct tls_store_config c = {.path = w->conf.tls_db, .readonly = true};
	int rc = tls_store_open(&w->tls, &c);
	if (rc != 0) {
		w->tls = NULL;
		d4_log(D4_LOG_WARN, "tls-open", "path", w->conf.tls_db, "error",
		       tls_store_strerror(rc), NULL);
		web_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "TLS store: %s", tls_store_strerror(rc));
		return NULL;
	}
	return w->tls;
}

/* limit= as a number 1..TLS_QUERY_MAX_LIMIT (0 when absent); -1 and a 400 when invalid. */
static int limit_param(struct web_req *r, unsigned *out)
{
	const char *v = web_query(r, "limit");
	char *end;

	*out = 0;
	if (v == NULL || v[0] == '\0')
		return 0;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || v[0] == '-' || n < 1 || n > TLS_QUERY_MAX_LIMIT) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "limit: 1 to %u", TLS_QUERY_MAX_LIMIT);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static void reply_query(struct web_req *r, json_t *j, int err, const char *what)
{
	if (j != NULL) {
		web_reply(r, MHD_HTTP_OK, j);
		return;
	}
	if (err == -ENOENT)
		web_error(r, MHD_HTTP_NOT_FOUND, "%s: not seen", what);
	else if (err == -EINVAL)
		web_error(r, MHD_HTTP_BAD_REQUEST, "%s: invalid kind, value or cursor", what);
	else {
		d4_log(D4_LOG_ERR, "tls-query", "what", what, "error", tls_store_strerror(err), NULL);
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "TLS store: %s", tls_store_strerror(err));
	}
}

/* kind= and value= of a pivot; NULL kind and a 400 sent when missing. */
static int pivot_params(struct web_req *r, const char **kind, const char **value)
{
	*kind = web_query(r, "kind");
	*value = web_query(r, "value");
	if (*kind == NULL || (*kind)[0] == '\0' || *value == NULL || (*value)[0] == '\0') {
		web_error(r, MHD_HTTP_BAD_REQUEST,
		          "kind (ja3, ja3s, ja4, cert, key, server, sni, subject) and value are needed");
		return -1;
	}
	return 0;
}

void api_tls_summary(struct web_req *r)
{
	struct tls_store *st = tls(r);
	int err = 0;

	if (st != NULL) {
		json_t *j = tls_query_summary(st, &err);
		reply_query(r, j, err, "summary");
	}
}

void api_tls_pivot(struct web_req *r)
{
	const char *kind, *value;
	struct tls_store *st;
	unsigned limit;
	int err = 0;

	if (pivot_params(r, &kind, &value) != 0 || limit_param(r, &limit) != 0 ||
	    (st = tls(r)) == NULL)
		return;
	json_t *j = tls_query_pivot(st, kind, value, web_query(r, "cursor"), limit, &err);
	reply_query(r, j, err, kind);
}

void api_tls_sessions(struct web_req *r)
{
	const char *kind, *value;
	struct tls_store *st;
	unsigned limit;
	int err = 0;

	if (pivot_params(r, &kind, &value) != 0 || limit_param(r, &limit) != 0 ||
	    (st = tls(r)) == NULL)
		return;
	json_t *j = tls_query_sessions(st, kind, value, web_query(r, "cursor"), limit, &err);
	reply_query(r, j, err, kind);
}

void api_tls_findings(struct web_req *r)
{
	struct tls_store *st;
	unsigned limit;
	int err = 0;

	if (limit_param(r, &limit) != 0 || (st = tls(r)) == NULL)
		return;
	json_t *j = tls_query_findings(st, web_query(r, "cursor"), limit, &err);
	reply_query(r, j, err, "findings");
}

void api_tls_cert(struct web_req *r)
{
	const char *hash = web_query(r, "hash");
	struct tls_store *st;
	uint8_t *der = NULL;
	size_t len = 0;

	if (hash == NULL || hash[0] == '\0') {
		web_error(r, MHD_HTTP_BAD_REQUEST, "hash: the certificate's SHA-256 or SHA-1 (hex)");
		return;
	}
	if ((st = tls(r)) == NULL)
		return;
	int rc = tls_query_cert_der(st, hash, &der, &len);
	if (rc != 0) {
		reply_query(r, NULL, rc, "certificate");
		return;
	}
	r->status = MHD_HTTP_OK;
	r->text = (char *)der; /* sent as is and freed by send_reply */
	r->text_len = len;
	r->content_type = "application/pkix-cert";
}

void api_tls_close(struct web *w)
{
	if (w->tls != NULL)
		tls_store_close(w->tls);
	w->tls = NULL;
}
