/*
 * http.c — libmicrohttpd glue: one table of routes, and around every handler
 * the same checks in the same order, so that no route can forget one:
 *
 *   1. body size: at most web.max_body bytes are kept; a larger body is read
 *      and thrown away up to 4 x max_body, so that the client gets its 413
 *      instead of a reset; a Content-Length beyond that is answered 413 at
 *      once, and a chunked body that grows beyond it has its connection cut
 *   2. route: 404 for an unknown path, 405 (with Allow) for a known path
 *      asked with another method
 *   3. authentication (401), CSRF for a state change made with a session
 *      cookie (403), "password change required" (403), role (403)
 *   4. body type: a body must be a JSON object sent as application/json
 *      (415 otherwise, 400 when it does not parse)
 *
 * Every reply is JSON ({"status":"error","reason":...} for errors) except
 * /metrics, with no-store caching and the usual defensive headers. The web
 * UI's files ("/", "/ui/...", ui.c) are public and take none of these steps
 * but the first; they bring their own CSP and caching headers.
 * Handlers run in libmicrohttpd's one internal thread (see web.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "d4_log.h"
#include "ui.h"
#include "web.h"

/* A body larger than max_body is drained up to DRAIN_FACTOR times it, then the connection is cut. */
#define DRAIN_FACTOR 4
#define PURGE_INTERVAL_S 3600

static const struct web_route routes[] = {
	{M_POST, "/api/v1/login", PERM_PUBLIC, api_login},
	{M_POST, "/api/v1/logout", PERM_ANY, api_logout},
	{M_POST, "/api/v1/password", PERM_ANY, api_password},
	{M_GET, "/api/v1/health", PERM_PUBLIC, api_health},
	{M_GET, "/api/v1/openapi.json", PERM_PUBLIC, api_openapi},
	{M_GET, "/api/v1/info", PERM_READ, api_info},
	{M_POST, "/api/v1/add/sensor/register", PERM_REGISTER, api_sensor_register},
	{M_GET, "/api/v1/sensors/monitoring/errors", PERM_READ, api_sensors_errors},
	{M_GET, "/api/v1/sensors", PERM_READ, api_sensors_list},
	{M_GET, "/api/v1/sensors/{uuid}", PERM_READ, api_sensor_show},
	{M_PUT, "/api/v1/sensors/{uuid}", PERM_OPERATE, api_sensor_update},
	{M_DELETE, "/api/v1/sensors/{uuid}", PERM_OPERATE, api_sensor_delete},
	{M_PUT, "/api/v1/sensors/{uuid}/key", PERM_OPERATE, api_sensor_key},
	{M_POST, "/api/v1/sensors/{uuid}/approve", PERM_OPERATE, api_sensor_approve},
	{M_POST, "/api/v1/sensors/{uuid}/reject", PERM_OPERATE, api_sensor_reject},
	{M_POST, "/api/v1/sensors/{uuid}/kick", PERM_OPERATE, api_sensor_kick},
	{M_POST, "/api/v1/sensors/{uuid}/block", PERM_OPERATE, api_sensor_block},
	{M_POST, "/api/v1/sensors/{uuid}/unblock", PERM_OPERATE, api_sensor_unblock},
	{M_GET, "/api/v1/blocklist/uuids", PERM_READ, api_block_uuids_list},
	{M_POST, "/api/v1/blocklist/uuids", PERM_OPERATE, api_block_uuids_add},
	{M_DELETE, "/api/v1/blocklist/uuids/{uuid}", PERM_OPERATE, api_block_uuids_delete},
	{M_GET, "/api/v1/blocklist/ips", PERM_READ, api_block_ips_list},
	{M_POST, "/api/v1/blocklist/ips", PERM_OPERATE, api_block_ips_add},
	{M_DELETE, "/api/v1/blocklist/ips", PERM_OPERATE, api_block_ips_delete},
	{M_GET, "/api/v1/types", PERM_READ, api_types_get},
	{M_PUT, "/api/v1/types", PERM_OPERATE, api_types_put},
	{M_GET, "/api/v1/metatypes", PERM_READ, api_metatypes_get},
	{M_POST, "/api/v1/metatypes", PERM_OPERATE, api_metatypes_add},
	{M_DELETE, "/api/v1/metatypes/{name}", PERM_OPERATE, api_metatypes_delete},
	{M_GET, "/api/v1/stats/daily", PERM_READ, api_stats_daily},
	{M_GET, "/api/v1/stats/totals", PERM_READ, api_stats_totals},
	{M_GET, "/api/v1/pdns/query", PERM_READ, api_pdns_query},
	{M_GET, "/api/v1/pdns/fquery", PERM_READ, api_pdns_fquery},
	{M_GET, "/api/v1/pdns/info", PERM_READ, api_pdns_info},
	{M_GET, "/api/v1/tls/summary", PERM_READ, api_tls_summary},
	{M_GET, "/api/v1/tls/pivot", PERM_READ, api_tls_pivot},
	{M_GET, "/api/v1/tls/sessions", PERM_READ, api_tls_sessions},
	{M_GET, "/api/v1/tls/findings", PERM_READ, api_tls_findings},
	{M_GET, "/api/v1/tls/cert", PERM_READ, api_tls_cert},
	{M_GET, "/api/v1/queues", PERM_READ, api_queues},
	{M_POST, "/api/v1/queues/{name}/pause", PERM_OPERATE, api_queue_pause},
	{M_POST, "/api/v1/queues/{name}/resume", PERM_OPERATE, api_queue_resume},
	{M_POST, "/api/v1/queues/{name}/empty", PERM_OPERATE, api_queue_empty},
	{M_GET, "/api/v1/users", PERM_ADMIN, api_users_list},
	{M_POST, "/api/v1/users", PERM_ADMIN, api_users_add},
	{M_DELETE, "/api/v1/users/{name}", PERM_ADMIN, api_users_delete},
	{M_GET, "/api/v1/tokens", PERM_ADMIN, api_tokens_list},
	{M_POST, "/api/v1/tokens", PERM_ADMIN, api_tokens_add},
	{M_DELETE, "/api/v1/tokens/{id}", PERM_ADMIN, api_tokens_delete},
	{M_GET, "/metrics", PERM_READ, api_metrics},
};

static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "?"};

/* What libmicrohttpd keeps for us between the calls of one request. */
struct req_ctx {
	char *body;
	size_t len, cap;
	size_t discarded;
	bool too_large;
};

/* ---- helpers for handlers ---- */

void web_format_time(uint64_t t, char out[24])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 24, "-");
}

json_t *web_json_time(uint64_t t)
{
	char buf[24];

	if (t == 0)
		return json_null();
	web_format_time(t, buf);
	return json_string(buf);
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void cache_copy_out(struct web_req *r, const struct web_cache *c)
{
	char *copy = malloc(c->len + 1);
	if (copy == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	memcpy(copy, c->text, c->len + 1);
	memcpy(r->next_cursor, c->next_cursor, sizeof(r->next_cursor));
	r->status = MHD_HTTP_OK;
	r->text = copy;
	r->text_len = c->len;
	r->content_type = c->content_type;
}

bool web_cache_reply(struct web_req *r, struct web_cache *c, uint64_t generation)
{
	if (c->text == NULL || c->generation != generation || monotonic_ms() - c->built_ms >= 1000)
		return false;
	cache_copy_out(r, c);
	return true;
}

void web_cache_store(struct web_req *r, struct web_cache *c, char *text, size_t len,
                     uint64_t generation, const char *content_type)
{
	free(c->text);
	c->text = text;
	c->len = len;
	c->generation = generation;
	c->built_ms = monotonic_ms();
	c->content_type = content_type;
	memcpy(c->next_cursor, r->next_cursor, sizeof(c->next_cursor));
	cache_copy_out(r, c);
}

void web_cache_free(struct web_cache *c)
{
	free(c->text);
	memset(c, 0, sizeof(*c));
}

void web_reply(struct web_req *r, unsigned status, json_t *j)
{
	json_decref(r->reply);
	r->reply = j;
	r->status = status;
	if (j == NULL) {
		r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		r->reply = json_pack("{s:s, s:s}", "status", "error", "reason", "out of memory");
	}
}

void web_error(struct web_req *r, unsigned status, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	web_reply(r, status, json_pack("{s:s, s:s}", "status", "error", "reason", reason));
}

void web_store_error(struct web_req *r, int rc, const char *what)
{
	if (rc == -ENOENT)
		web_error(r, MHD_HTTP_NOT_FOUND, "%s not found", what);
	else if (rc == -EEXIST)
		web_error(r, MHD_HTTP_CONFLICT, "%s already exists", what);
	else if (rc == -EPERM)
		web_error(r, MHD_HTTP_CONFLICT, "%s: change not allowed", what);
	else {
		d4_log(D4_LOG_ERR, "store-error", "what", what, "error", d4_store_strerror(rc), NULL);
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error: %s", d4_store_strerror(rc));
	}
}

int web_begin(struct web_req *r, struct d4_txn *t, bool write)
{
	int rc = d4_txn_begin(r->w->store, t, write);

	if (rc != 0) {
		web_store_error(r, rc == -ENOENT ? -EIO : rc, "transaction");
		return -1;
	}
	return 0;
}

int web_commit(struct web_req *r, struct d4_txn *t)
{
	int rc = d4_txn_commit(t);

	if (rc != 0) {
		web_store_error(r, rc == -ENOENT ? -EIO : rc, "commit");
		return -1;
	}
	return 0;
}

const char *web_query(struct web_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int web_json_str(struct web_req *r, const char *field, size_t max, bool required, const char **out)
{
	json_t *v = r->json ? json_object_get(r->json, field) : NULL;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "missing field '%s'", field);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' must be a string", field);
		return -1;
	}
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n > max) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' is longer than %zu bytes", field, max);
		return -1;
	}
	if (memchr(s, '\0', n) != NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' holds a NUL byte", field);
		return -1;
	}
	*out = s;
	return 0;
}

int web_json_only(struct web_req *r, const char *const *fields)
{
	const char *key;
	json_t *v;

	if (r->json == NULL)
		return 0;
	json_object_foreach(r->json, key, v) {
		bool known = false;
		for (size_t i = 0; fields[i] != NULL && !known; i++)
			known = strcmp(key, fields[i]) == 0;
		if (!known) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "unknown field '%.64s'", key);
			return -1;
		}
	}
	return 0;
}

int web_json_duration(struct web_req *r, const char *field, uint64_t *secs)
{
	json_t *v = r->json ? json_object_get(r->json, field) : NULL;
	const uint64_t max = 86400ull * 3650;

	*secs = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || (uint64_t)n > max)
			goto bad;
		*secs = (uint64_t)n;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		unsigned long long n = strtoull(s, &end, 10);
		if (errno != 0 || end == s || s[0] == '-')
			goto bad;
		uint64_t mult = 1;
		if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
			mult = 1;
		else if (strcmp(end, "m") == 0)
			mult = 60;
		else if (strcmp(end, "h") == 0)
			mult = 3600;
		else if (strcmp(end, "d") == 0)
			mult = 86400;
		else if (strcmp(end, "w") == 0)
			mult = 7 * 86400;
		else
			goto bad;
		if (n > max / mult)
			goto bad;
		*secs = n * mult;
		return 0;
	}
bad:
	web_error(r, MHD_HTTP_BAD_REQUEST,
	          "field '%s': a duration in seconds, or a number with s, m, h, d or w (at most 10 years)",
	          field);
	return -1;
}

/* ---- routing ---- */

/*
 * Whether path matches pattern; captures the {...} segments into r->params.
 * Segments are bounded: a capture longer than WEB_PARAM_MAX does not match.
 */
static bool match(const char *pattern, const char *path, struct web_req *r)
{
	const char *p = pattern, *s = path;
	unsigned n = 0;

	while (*p != '\0' && *s != '\0') {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *se = strchr(s, '/');
			size_t len = se ? (size_t)(se - s) : strlen(s);
			if (pe == NULL || len == 0 || len > WEB_PARAM_MAX || n >= WEB_MAX_PARAMS)
				return false;
			if (r != NULL) {
				memcpy(r->params[n], s, len);
				r->params[n][len] = '\0';
			}
			n++;
			p = pe + 1;
			s += len;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	if (*p != '\0' || *s != '\0')
		return false;
	if (r != NULL)
		r->n_params = n;
	return true;
}

static enum web_method method_of(const char *m)
{
	for (int i = 0; i < M_OTHER; i++)
		if (strcmp(m, method_names[i]) == 0)
			return (enum web_method)i;
	return M_OTHER;
}

static const struct web_route *find_route(struct web_req *r)
{
	size_t used = 0;

	r->allow[0] = '\0';
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!match(routes[i].pattern, r->path, NULL))
			continue;
		if (routes[i].method == r->method) {
			match(routes[i].pattern, r->path, r);
			return &routes[i];
		}
		int n = snprintf(r->allow + used, sizeof(r->allow) - used, "%s%s", used ? ", " : "",
		                 method_names[routes[i].method]);
		if (n > 0 && (size_t)n < sizeof(r->allow) - used)
			used += (size_t)n;
	}
	return NULL;
}

static bool is_json_type(const char *ct)
{
	static const char want[] = "application/json";

	if (ct == NULL || strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	ct += sizeof(want) - 1;
	return *ct == '\0' || *ct == ';' || *ct == ' ';
}

/* Runs the checks of the top of this file, then the handler. */
static void dispatch(struct web_req *r)
{
	const struct web_route *rt;

	if (strlen(r->path) > WEB_PATH_MAX) {
		web_error(r, MHD_HTTP_URI_TOO_LONG, "path longer than %d bytes", WEB_PATH_MAX);
		return;
	}
	if (ui_path(r->path)) {
		ui_serve(r);
		return;
	}
	if ((rt = find_route(r)) == NULL) {
		if (r->allow[0] != '\0')
			web_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here (allowed: %s)",
			          r->method == M_OTHER ? "?" : method_names[r->method], r->allow);
		else
			web_error(r, MHD_HTTP_NOT_FOUND, "no such route");
		return;
	}
	r->allow[0] = '\0';
	if (rt->perm != PERM_PUBLIC) {
		if (auth_authenticate(r) != 0)
			return;
		if (r->auth.via_session && r->method != M_GET && auth_check_csrf(r) != 0)
			return;
		if (r->auth.must_change && rt->handler != api_password && rt->handler != api_logout) {
			web_error(r, MHD_HTTP_FORBIDDEN, "password change required");
			return;
		}
		if (!auth_role_allows(r->auth.role, rt->perm)) {
			web_error(r, MHD_HTTP_FORBIDDEN, "role %s may not %s %s", d4_role_name(r->auth.role),
			          method_names[r->method], rt->pattern);
			return;
		}
	}
	if (r->body_len > 0) {
		const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_TYPE);
		json_error_t je;
		if (!is_json_type(ct)) {
			web_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json");
			return;
		}
		r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
		if (r->json == NULL) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "invalid JSON at line %d column %d: %s", je.line,
			          je.column, je.text);
			return;
		}
		if (!json_is_object(r->json)) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
			return;
		}
	}
	rt->handler(r);
	if (r->status == 0)
		web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no reply");
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result add_header(struct MHD_Response *resp, const char *name, const char *value)
{
	return MHD_add_response_header(resp, name, value);
}

static enum MHD_Result send_reply(struct web *w, struct web_req *r)
{
	struct MHD_Response *resp;
	char *text = NULL;
	size_t len;
	enum MHD_Result ret = MHD_NO;
	bool ok = true;

	if (r->asset != NULL) {
		resp = MHD_create_response_from_buffer(r->asset_len, (void *)r->asset,
		                                       MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
		goto headers;
	}
	if (r->text != NULL) {
		text = r->text;
		len = r->text_len;
		r->text = NULL;
	} else {
		if (r->reply == NULL)
			web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no reply");
		text = r->reply ? json_dumps(r->reply, JSON_COMPACT) : NULL;
		if (text == NULL) {
			static char oom[] = "{\"status\":\"error\",\"reason\":\"out of memory\"}";
			resp = MHD_create_response_from_buffer(sizeof(oom) - 1, oom,
			                                       MHD_RESPMEM_PERSISTENT);
			if (resp == NULL)
				return MHD_NO;
			ret = MHD_queue_response(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, resp);
			MHD_destroy_response(resp);
			return ret;
		}
		len = strlen(text);
		r->content_type = "application/json";
	}
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
headers:
	ok &= add_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type) == MHD_YES;
	ok &= add_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	                 r->cache_control ? r->cache_control : "no-store") == MHD_YES;
	if (r->etag[0] != '\0')
		ok &= add_header(resp, MHD_HTTP_HEADER_ETAG, r->etag) == MHD_YES;
	ok &= add_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES;
	ok &= add_header(resp, "X-Frame-Options", "DENY") == MHD_YES;
	ok &= add_header(resp, "Referrer-Policy", "no-referrer") == MHD_YES;
	ok &= add_header(resp, "Content-Security-Policy",
	                 r->csp ? r->csp : "default-src 'none'; frame-ancestors 'none'") == MHD_YES;
	if (!w->conf.plain_http)
		ok &= add_header(resp, MHD_HTTP_HEADER_STRICT_TRANSPORT_SECURITY, "max-age=31536000") ==
		      MHD_YES;
	if (r->set_cookie[0] != '\0')
		ok &= add_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->set_cookie) == MHD_YES;
	if (r->allow[0] != '\0')
		ok &= add_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow) == MHD_YES;
	if (r->next_cursor[0] != '\0')
		ok &= add_header(resp, "X-Next-Cursor", r->next_cursor) == MHD_YES;
	if (r->retry_after != 0) {
		char ra[24];
		snprintf(ra, sizeof(ra), "%llu", (unsigned long long)r->retry_after);
		ok &= add_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra) == MHD_YES;
	}
	if (r->status == MHD_HTTP_UNAUTHORIZED)
		ok &= add_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"d4\"") == MHD_YES;
	if (ok)
		ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * The peer's address, for logs and login throttling. Behind a reverse proxy
 * (web.forwarded_for = true) it is the last address of X-Forwarded-For, the
 * one the proxy itself appended; without that option the header is ignored,
 * since any client can send it.
 */
static void peer_of(struct web_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const char *xff = r->w->conf.forwarded_for
	                          ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                                        "X-Forwarded-For")
	                          : NULL;

	memset(r->peer, 0, sizeof(r->peer));
	if (ci != NULL && ci->client_addr != NULL)
		(void)d4_ip_from_sockaddr(ci->client_addr, r->peer);
	if (xff != NULL) {
		const char *last = strrchr(xff, ',');
		last = last ? last + 1 : xff;
		while (*last == ' ')
			last++;
		size_t n = strlen(last);
		while (n > 0 && last[n - 1] == ' ')
			n--;
		uint8_t a[D4_IP_SIZE];
		if (d4_ip_parse(last, n, a) == 0)
			memcpy(r->peer, a, sizeof(a));
	}
	if (d4_ip_format(r->peer, r->peer_text, sizeof(r->peer_text)) != 0)
		snprintf(r->peer_text, sizeof(r->peer_text), "?");
}

/*
 * Tidies the store once an hour, from the request path (no timer thread):
 * blocklist entries whose time ran out (they stopped applying by themselves)
 * and kick requests no d4-ingest acted on within an hour. One short write
 * transaction; a failure is logged and retried at the next hour.
 */
static void purge(struct web *w, uint64_t now)
{
	size_t blocks = 0, kicks = 0;
	struct d4_txn t;
	int rc;

	w->last_purge = now;
	if ((rc = d4_txn_begin(w->store, &t, true)) != 0)
		goto fail;
	if ((rc = d4_block_purge_expired(&t, now, &blocks)) != 0 ||
	    (rc = d4_kick_purge(&t, now - PURGE_INTERVAL_S, &kicks)) != 0) {
		d4_txn_abort(&t);
		goto fail;
	}
	if ((rc = d4_txn_commit(&t)) != 0)
		goto fail;
	if (blocks + kicks > 0)
		d4_logf(D4_LOG_INFO, "purged", "%zu expired blocklist entries, %zu stale kick requests",
		        blocks, kicks);
	return;
fail:
	d4_log(D4_LOG_WARN, "purge-failed", "error", d4_store_strerror(rc), NULL);
}

static enum MHD_Result handle(struct web *w, struct MHD_Connection *conn, const char *url,
                              const char *method, struct req_ctx *ctx)
{
	struct web_req *r = calloc(1, sizeof(*r));
	enum MHD_Result ret;
	char status[8];

	if (r == NULL)
		return MHD_NO;
	r->w = w;
	r->conn = conn;
	r->path = url;
	r->method = method_of(method);
	r->body = ctx->body;
	r->body_len = ctx->len;
	r->now = (uint64_t)time(NULL);
	r->content_type = "application/json";
	peer_of(r);
	w->requests++;
	if (r->now - w->last_sweep >= 10) {
		auth_sweep(w, r->now);
		w->last_sweep = r->now;
	}
	if (r->now - w->last_purge >= PURGE_INTERVAL_S)
		purge(w, r->now);
	if (ctx->too_large)
		web_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body larger than %llu bytes",
		          (unsigned long long)w->conf.max_body);
	else
		dispatch(r);
	snprintf(status, sizeof(status), "%u", r->status);
	/* reads that succeed (scrapes, UI polling) only at debug: the rest is an audit trail */
	enum d4_log_level lvl = r->status >= 500 ? D4_LOG_WARN
	                        : r->method == M_GET && r->status < 400 ? D4_LOG_DEBUG
	                                                                : D4_LOG_INFO;
	d4_log(lvl, "request", "peer", r->peer_text,
	       "method", method, "path", url, "status", status, "user",
	       r->auth.ok ? r->auth.user : NULL, NULL);
	ret = send_reply(w, r);
	json_decref(r->reply);
	json_decref(r->json);
	free(r->text);
	free(r);
	return ret;
}

static enum MHD_Result reply_now(struct web *w, struct MHD_Connection *conn, unsigned status,
                                 const char *reason)
{
	struct web_req r;
	enum MHD_Result ret;

	memset(&r, 0, sizeof(r));
	r.w = w;
	r.conn = conn;
	r.content_type = "application/json";
	web_error(&r, status, "%s", reason);
	ret = send_reply(w, &r);
	json_decref(r.reply);
	return ret;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct web *w = cls;
	struct req_ctx *ctx = *con_cls;
	const uint64_t drain_max = w->conf.max_body * DRAIN_FACTOR;
	(void)version;

	if (ctx == NULL) {
		if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
			return MHD_NO;
		*con_cls = ctx;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno != 0 || end == cl || *end != '\0' || n > drain_max) {
				ctx->too_large = true;
				pthread_mutex_lock(&w->lock);
				enum MHD_Result ret = reply_now(w, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				                                "body too large");
				pthread_mutex_unlock(&w->lock);
				return ret;
			}
			if (n > w->conf.max_body)
				ctx->too_large = true;
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (ctx->too_large || ctx->len + n > w->conf.max_body) {
			ctx->too_large = true;
			ctx->discarded += n;
			if (ctx->discarded > drain_max) {
				/* libmicrohttpd cannot reply in the middle of an upload: cut it */
				d4_log(D4_LOG_WARN, "body-too-large", "path", url, "hint",
				       "connection closed while the body was still arriving", NULL);
				return MHD_NO;
			}
			return MHD_YES;
		}
		if (ctx->len + n + 1 > ctx->cap) {
			size_t cap = ctx->cap ? ctx->cap : 4096;
			while (cap < ctx->len + n + 1)
				cap *= 2;
			char *b = realloc(ctx->body, cap);
			if (b == NULL)
				return MHD_NO;
			ctx->body = b;
			ctx->cap = cap;
		}
		memcpy(ctx->body + ctx->len, upload_data, n);
		ctx->len += n;
		ctx->body[ctx->len] = '\0';
		return MHD_YES;
	}
	pthread_mutex_lock(&w->lock);
	enum MHD_Result ret = handle(w, conn, url, method, ctx);
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct req_ctx *ctx = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;

	if (ctx == NULL)
		return;
	if (ctx->body != NULL)
		OPENSSL_cleanse(ctx->body, ctx->cap); /* bodies carry passwords and keys */
	free(ctx->body);
	free(ctx);
	*con_cls = NULL;
}

/* libmicrohttpd's own messages; fmt is its printf format, checked as such */
__attribute__((format(printf, 2, 0))) static void mhd_log_cb(void *cls, const char *fmt,
                                                           va_list ap)
{
	char msg[512];
	(void)cls;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	d4_log(D4_LOG_INFO, "http", "msg", msg, NULL);
}

int web_http_start(struct web *w, int listen_fd, const char *cert_pem, const char *key_pem)
{
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem ops[14];
	size_t n = 0;

	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log_cb, w};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
	                                   (intptr_t)w->conf.max_connections, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)w->conf.timeout_s,
	                                   NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, w};
	if (w->conf.threads > 1)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
		                                   (intptr_t)w->conf.threads, NULL};
	if (!w->conf.plain_http) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			d4_log(D4_LOG_ERR, "tls-unsupported", "hint",
			       "this libmicrohttpd has no TLS; set web.plain_http = true behind a proxy",
			       NULL);
			return -1;
		}
		flags |= MHD_USE_TLS;
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem};
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem};
		/* TLS 1.2 and 1.3 only, as d4-ingest */
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
		                                   (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
	}
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	w->mhd = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, w, MHD_OPTION_ARRAY, ops,
	                          MHD_OPTION_END);
	if (w->mhd == NULL) {
		d4_log(D4_LOG_ERR, "http-start-failed", "hint",
		       "libmicrohttpd refused the options or the TLS certificate and key", NULL);
		return -1;
	}
	return 0;
}

void web_http_stop(struct web *w)
{
	if (w->mhd != NULL)
		MHD_stop_daemon(w->mhd);
	w->mhd = NULL;
}
