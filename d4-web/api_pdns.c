/*
 * api_pdns.c — passive DNS in d4-web: the same lookups as d4-pdns-lookup (COF records), read
 * from the passive DNS analyzer's own LMDB environment (web.pdns_db), for the UI's search box
 * and for scripts that already hold a d4-web token.
 *
 *   GET /api/v1/pdns/query?q=<name, *.suffix or address>[&rrtype=&since=&until=&limit=&cursor=]
 *   GET /api/v1/pdns/fquery?q=<rdata>[&...]
 *   GET /api/v1/pdns/info
 *
 * The answer is one JSON object, {"records": [COF objects], "next": cursor or null,
 * "scanned": n}: the UI pages with "next" (never a silent truncation), and the records are the
 * objects d4-pdns-lookup sends one a line. The store is opened read-only on first use (the
 * analyzer may create it after d4-web starts) and kept open; queries run under the handler
 * lock like every other handler, in their own read transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "d4_log.h"
#include "pdns_query.h"
#include "pdns_store.h"
#include "web.h"

/* The store, opened on first use; NULL with a 404 sent when it does not exist. */
static struct pdns_store *pdns(struct web_req *r)
{
	struct web *w = r->w;
	struct stat sb;
	char err[256];

	if (w->pdns != NULL)
		return w->pdns;
	if (stat(w->conf.pdns_db, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		web_error(r, MHD_HTTP_NOT_FOUND,
		          "passive DNS is not set up here: no store at %s (web.pdns_db; "
		          "see docs/passivedns.md)", w->conf.pdns_db);
		return NULL;
	}
	struct pdns_store_opts o = {.path = w->conf.pdns_db, .readonly = true};
	if (pdns_store_open(&w->pdns, &o, err, sizeof(err)) != 0) {
		w->pdns = NULL;
		d4_log(D4_LOG_WARN, "pdns-open", "path", w->conf.pdns_db, "error", err, NULL);
		web_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "passive DNS store: %s", err);
		return NULL;
	}
	return w->pdns;
}

static int emit_cb(void *arg, const char *json, size_t len)
{
	json_error_t je;
	json_t *o = json_loadb(json, len, 0, &je);

	return o == NULL || json_array_append_new(arg, o) != 0 ? -1 : 0;
}

static void run(struct web_req *r, enum pdns_qkind kind)
{
	static const char *const params[] = {"rrtype", "since", "until", "limit", "cursor"};
	const char *q = web_query(r, "q"), *why = NULL;
	struct pdns_query *pq = NULL;
	struct pdns_query_result res;
	struct pdns_store *st;
	json_t *records = NULL;
	int rc;

	if (q == NULL || q[0] == '\0') {
		web_error(r, MHD_HTTP_BAD_REQUEST, "q: a name, *.suffix or address to look up");
		return;
	}
	if ((st = pdns(r)) == NULL)
		return;
	if ((pq = malloc(sizeof(*pq))) == NULL || (records = json_array()) == NULL) {
		web_reply(r, 0, NULL);
		goto out;
	}
	pdns_query_init(pq, kind);
	pq->limit = 100; /* a page of the UI; limit= asks for more */
	if (pdns_query_set_term(pq, q, &why) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "q: %s", why);
		goto out;
	}
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = web_query(r, params[i]);
		if (v != NULL && v[0] != '\0' && pdns_query_set_param(pq, params[i], v, &why) < 0) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "%s: %s", params[i], why);
			goto out;
		}
	}
	rc = pdns_query_run(st, pq, emit_cb, records, &res, &why);
	if (rc == -1) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "%s", why ? why : "invalid query");
		goto out;
	}
	if (rc != 0) {
		d4_log(D4_LOG_ERR, "pdns-query", "error", why ? why : "?", NULL);
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "passive DNS store: %s",
		          why ? why : "error");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK,
	          json_pack("{s:o, s:o, s:I}", "records", records, "next",
	                    res.more ? json_string(res.next_cursor) : json_null(), "scanned",
	                    (json_int_t)res.scanned));
	records = NULL;
out:
	json_decref(records);
	free(pq);
}

void api_pdns_query(struct web_req *r)
{
	run(r, PDNS_Q_QUERY);
}

void api_pdns_fquery(struct web_req *r)
{
	run(r, PDNS_Q_FQUERY);
}

void api_pdns_info(struct web_req *r)
{
	struct pdns_store *st = pdns(r);
	char *text = NULL;
	json_error_t je;

	if (st == NULL)
		return;
	if (pdns_query_info(st, &text) != 0) {
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "passive DNS store: cannot read /info");
		return;
	}
	web_reply(r, MHD_HTTP_OK, json_loads(text, 0, &je));
	free(text);
}

void api_pdns_close(struct web *w)
{
	if (w->pdns != NULL)
		pdns_store_close(w->pdns);
	w->pdns = NULL;
}
