/*
 * openapi.c — GET /api/v1/openapi.json: an OpenAPI 3.0 description of every
 * route http.c serves.
 *
 * The document is written here as a table (one line per operation: method,
 * path, who may call it, summary, query parameters, request body fields,
 * the statuses it answers) and turned into JSON once, at the first request.
 * A table keeps the document next to the facts it describes and the test
 * (tests/integration/test_web_api.py) checks it against the routes the
 * server actually answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "web.h"

struct op {
	const char *method; /* lowercase, as OpenAPI wants */
	const char *path;
	const char *who;     /* roles, for the description */
	const char *summary;
	const char *query;   /* "name,name" or NULL */
	const char *body;    /* "field:type,field:type" (a trailing ? = optional) or NULL */
	const char *statuses;
	bool public_route;
};

#define R "admin, operator, read-only"
#define O "admin, operator"
#define A "admin"

static const struct op ops[] = {
	{"post", "/api/v1/login", "anyone", "Log in: sets the session cookie, returns the CSRF token",
	 NULL, "user:string,password:string", "200,400,401,429", true},
	{"post", "/api/v1/logout", "any user", "End the session", NULL, NULL, "200,401,403", false},
	{"post", "/api/v1/password", "any user", "Change one's own password", NULL,
	 "old:string,new:string", "200,400,401,403,429", false},
	{"get", "/api/v1/health", "anyone", "Liveness: the store can be read", NULL, NULL, "200,503",
	 true},
	{"get", "/api/v1/openapi.json", "anyone", "This document", NULL, NULL, "200", true},
	{"get", "/api/v1/info", R, "Server version, uptime, store generation", NULL, NULL,
	 "200,401,403", false},
	{"post", "/api/v1/add/sensor/register", "admin, operator, sensor-register",
	 "Register a sensor (d4-core's call): pending until approved", NULL,
	 "uuid:string,hmac_key:string,description:string?,mail:string?,third_party:boolean?",
	 "200,400,401,403,409", false},
	{"get", "/api/v1/sensors/monitoring/errors", R, "Sensors with their last error", NULL, NULL,
	 "200,401,403", false},
	{"get", "/api/v1/sensors", R,
	 "List sensors (filter by state, type seen, text), a page of `limit` (default 100, at most "
	 "1000) from `cursor`; the X-Next-Cursor header names the next page's cursor",
	 "status,type,q,limit,cursor", NULL, "200,400,401,403", false},
	{"get", "/api/v1/sensors/{uuid}", R,
	 "One sensor: registration (never the key), settings, block, statistics", NULL, NULL,
	 "200,400,401,403,404", false},
	{"put", "/api/v1/sensors/{uuid}", O, "Change a sensor's description, mail, limits, pin, groups",
	 NULL,
	 "description:string?,mail:string?,max_payload:integer?,rate_limit:integer?,cert_pin:string?,"
	 "groups:array?,third_party:boolean?",
	 "200,400,401,403,404", false},
	{"delete", "/api/v1/sensors/{uuid}", O, "Delete a registration (stats=true: and its statistics)",
	 "stats", NULL, "200,400,401,403,404", false},
	{"put", "/api/v1/sensors/{uuid}/key", O, "Replace the sensor's HMAC key (never shown back)", NULL,
	 "hmac_key:string", "200,400,401,403,404", false},
	{"post", "/api/v1/sensors/{uuid}/approve", O, "Approve a sensor", NULL, NULL,
	 "200,400,401,403,404", false},
	{"post", "/api/v1/sensors/{uuid}/reject", O, "Reject a sensor", NULL, NULL, "200,400,401,403,404",
	 false},
	{"post", "/api/v1/sensors/{uuid}/kick", O, "Close the sensor's sessions (it may reconnect)", NULL,
	 NULL, "200,400,401,403,404", false},
	{"post", "/api/v1/sensors/{uuid}/block", O, "Block a registered sensor", NULL,
	 "comment:string?,expires_in:integer?", "200,400,401,403,404", false},
	{"post", "/api/v1/sensors/{uuid}/unblock", O, "Lift a sensor's block", NULL, NULL,
	 "200,400,401,403,404", false},
	{"get", "/api/v1/blocklist/uuids", R, "The uuid blocklist", NULL, NULL, "200,401,403", false},
	{"post", "/api/v1/blocklist/uuids", O, "Block a uuid (registered or not)", NULL,
	 "uuid:string,comment:string?,expires_in:integer?", "201,400,401,403", false},
	{"delete", "/api/v1/blocklist/uuids/{uuid}", O, "Remove a uuid from the blocklist", NULL, NULL,
	 "200,400,401,403,404", false},
	{"get", "/api/v1/blocklist/ips", R, "The IP blocklist (ranges as given, never expanded)", NULL,
	 NULL, "200,401,403", false},
	{"post", "/api/v1/blocklist/ips", O, "Block an address, CIDR block or start-end range", NULL,
	 "range:string,comment:string?,expires_in:integer?", "201,400,401,403", false},
	{"delete", "/api/v1/blocklist/ips", O, "Remove the entry for exactly this range", "range", NULL,
	 "200,400,401,403,404", false},
	{"get", "/api/v1/types", R, "Accepted types and meta-types (and where the set comes from)", NULL,
	 NULL, "200,401,403", false},
	{"put", "/api/v1/types", O, "Replace the set of accepted types", NULL, "accepted:array",
	 "200,400,401,403", false},
	{"get", "/api/v1/metatypes", R, "Accepted meta-types", NULL, NULL, "200,401,403", false},
	{"post", "/api/v1/metatypes", O, "Accept a meta-type", NULL, "name:string", "200,201,400,401,403",
	 false},
	{"delete", "/api/v1/metatypes/{name}", O, "Refuse a meta-type (not the last one)", NULL, NULL,
	 "200,400,401,403,404,409", false},
	{"get", "/api/v1/stats/daily", R, "Daily packets and bytes per sensor, type and meta-type",
	 "from,to,uuid", NULL, "200,400,401,403", false},
	{"get", "/api/v1/stats/totals", R, "Totals across sensors", NULL, NULL, "200,401,403", false},
	{"get", "/api/v1/pdns/query", R,
	 "Passive DNS (COF records) of a name, a *.suffix or an address; next: the cursor of the "
	 "next page", "q,rrtype,since,until,limit,cursor", NULL, "200,400,401,403,404", false},
	{"get", "/api/v1/pdns/fquery", R, "Passive DNS (COF records) whose rdata is exactly q",
	 "q,rrtype,since,until,limit,cursor", NULL, "200,400,401,403,404", false},
	{"get", "/api/v1/pdns/info", R, "The passive DNS store: sizes, analyzer counters, expiry",
	 NULL, NULL, "200,401,403,404", false},
	{"get", "/api/v1/tls/summary", R, "The TLS analyzer's store: counts", NULL, NULL,
	 "200,401,403,404", false},
	{"get", "/api/v1/tls/pivot", R,
	 "A JA3, JA3S, JA4, cert, key, server, sni or subject and what is linked to it, with first "
	 "and last seen", "kind,value,limit,cursor", NULL, "200,400,401,403,404", false},
	{"get", "/api/v1/tls/sessions", R, "TLS sessions where a pivot appears",
	 "kind,value,limit,cursor", NULL, "200,400,401,403,404", false},
	{"get", "/api/v1/tls/findings", R, "Weak-key findings with their evidence", "limit,cursor",
	 NULL, "200,400,401,403,404", false},
	{"get", "/api/v1/tls/cert", R, "A certificate's DER (application/pkix-cert)", "hash", NULL,
	 "200,400,401,403,404", false},
	{"get", "/api/v1/queues", R, "Analyzer queues and their counters", NULL, NULL, "200,401,403",
	 false},
	{"post", "/api/v1/queues/{name}/pause", O,
	 "Pause a queue: it holds what it takes, delivers nothing (at its limit, when_full applies)",
	 NULL, NULL, "200,400,401,403,404", false},
	{"post", "/api/v1/queues/{name}/resume", O, "Resume a paused queue where it stopped", NULL,
	 NULL, "200,400,401,403,404", false},
	{"post", "/api/v1/queues/{name}/empty", O,
	 "Discard what a queue holds and has not delivered (counted in emptied)", NULL, NULL,
	 "200,400,401,403,404", false},
	{"get", "/api/v1/users", A, "Users (never their password hashes)", NULL, NULL, "200,401,403",
	 false},
	{"post", "/api/v1/users", A, "Add a user (a random password is returned once when none is given)",
	 NULL, "name:string,role:string,password:string?", "201,400,401,403,409", false},
	{"delete", "/api/v1/users/{name}", A, "Delete a user and their tokens", NULL, NULL,
	 "200,400,401,403,404,409", false},
	{"get", "/api/v1/tokens", A, "API tokens (id = hex prefix of the token's SHA-256)", NULL, NULL,
	 "200,401,403", false},
	{"post", "/api/v1/tokens", A, "Make an API token (returned once)", NULL,
	 "user:string,description:string?", "201,400,401,403", false},
	{"delete", "/api/v1/tokens/{id}", A, "Delete a token by id (8 or more hex digits)", NULL, NULL,
	 "200,400,401,403,404,409", false},
	{"get", "/metrics", R, "Prometheus text format", NULL, NULL, "200,401,403", false},
};

static const char *status_text(const char *code)
{
	static const char *const texts[][2] = {
		{"200", "OK"},
		{"201", "Created"},
		{"400", "Bad input"},
		{"401", "Not authenticated"},
		{"403", "Role not allowed, CSRF token missing, or password change required"},
		{"404", "Not found"},
		{"409", "Conflict"},
		{"429", "Too many failed attempts (Retry-After)"},
		{"503", "Store unavailable"},
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (strcmp(texts[i][0], code) == 0)
			return texts[i][1];
	return "";
}

/* Calls fn on each comma-separated word of list (words at most 63 bytes). */
static int each(const char *list, int (*fn)(const char *word, void *arg), void *arg)
{
	char word[64];

	while (list != NULL && *list != '\0') {
		const char *comma = strchr(list, ',');
		size_t n = comma ? (size_t)(comma - list) : strlen(list);
		if (n >= sizeof(word))
			return -1;
		memcpy(word, list, n);
		word[n] = '\0';
		if (fn(word, arg) != 0)
			return -1;
		list = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int add_query(const char *word, void *arg)
{
	return json_array_append_new(arg, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", word, "in",
	                                            "query", "required", 0, "schema", "type",
	                                            "string"));
}

struct body_build {
	json_t *props, *required;
};

static int add_field(const char *word, void *arg)
{
	struct body_build *bb = arg;
	char name[64];
	const char *colon = strchr(word, ':');
	size_t n = colon ? (size_t)(colon - word) : strlen(word);
	char type[32];

	if (colon == NULL || n >= sizeof(name))
		return -1;
	memcpy(name, word, n);
	name[n] = '\0';
	snprintf(type, sizeof(type), "%s", colon + 1);
	bool optional = type[0] != '\0' && type[strlen(type) - 1] == '?';
	if (optional)
		type[strlen(type) - 1] = '\0';
	if (json_object_set_new(bb->props, name, json_pack("{s:s}", "type", type)) != 0)
		return -1;
	return optional ? 0 : json_array_append_new(bb->required, json_string(name));
}

static int add_status(const char *word, void *arg)
{
	json_t *content = json_pack("{s:{s:{s:s}}}", "application/json", "schema", "$ref",
	                            word[0] == '2' ? "#/components/schemas/Reply"
	                                           : "#/components/schemas/Error");
	return json_object_set_new(arg, word, json_pack("{s:s, s:o}", "description",
	                                                status_text(word), "content", content));
}

static json_t *operation(const struct op *op)
{
	json_t *o = json_pack("{s:s, s:s, s:[s], s:o}", "summary", op->summary, "description", op->who,
	                      "tags", op->path[1] == 'm' ? "metrics" : "api", "responses",
	                      json_object());
	json_t *params = json_array();
	const char *p;

	if (o == NULL || params == NULL)
		goto fail;
	/* path parameters from the {name} segments */
	for (p = strchr(op->path, '{'); p != NULL; p = strchr(p + 1, '{')) {
		const char *e = strchr(p, '}');
		if (e == NULL || json_array_append_new(params, json_pack("{s:s#, s:s, s:b, s:{s:s}}",
		                                                         "name", p + 1, (int)(e - p - 1),
		                                                         "in", "path", "required", 1,
		                                                         "schema", "type", "string")) != 0)
			goto fail;
	}
	if (each(op->query, add_query, params) != 0)
		goto fail;
	if (json_array_size(params) > 0 && json_object_set(o, "parameters", params) != 0)
		goto fail;
	if (op->body != NULL) {
		struct body_build bb = {json_object(), json_array()};
		json_t *schema = json_pack("{s:s, s:o, s:o}", "type", "object", "properties", bb.props,
		                           "required", bb.required);
		if (schema == NULL || each(op->body, add_field, &bb) != 0 ||
		    json_object_set_new(o, "requestBody",
		                        json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content",
		                                  "application/json", "schema", schema)) != 0)
			goto fail;
	}
	if (each(op->statuses, add_status, json_object_get(o, "responses")) != 0)
		goto fail;
	if (op->public_route && json_object_set_new(o, "security", json_array()) != 0)
		goto fail;
	json_decref(params);
	return o;
fail:
	json_decref(params);
	json_decref(o);
	return NULL;
}

static json_t *build(void)
{
	json_t *paths = json_object();
	json_t *doc = json_pack(
		"{s:s, s:{s:s, s:s, s:s}, s:o,"
		" s:{s:{s:{s:s, s:[s, s], s:{s:{s:s}, s:{s:s}}}, s:{s:s}},"
		"    s:{s:{s:s, s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:s}}},"
		" s:[{s:[]}, {s:[]}, {s:[]}]}",
		"openapi", "3.0.3", "info", "title", "d4-web REST API", "version", D4_VERSION_STRING,
		"description",
		"Errors are {\"status\":\"error\",\"reason\":...}. Sessions must send X-CSRF-Token on "
		"every POST, PUT and DELETE; API tokens need not.",
		"paths", paths, "components", "schemas", "Error", "type", "object", "required", "status",
		"reason", "properties", "status", "type", "string", "reason", "type", "string", "Reply",
		"type", "object", "securitySchemes", "session", "type", "apiKey", "in", "cookie", "name",
		WEB_SESSION_COOKIE, "bearer", "type", "http", "scheme", "bearer", "token", "type",
		"apiKey", "in", "header", "name", "Authorization", "security", "session", "bearer",
		"token");

	if (doc == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		json_t *item = json_object_get(paths, ops[i].path);
		if (item == NULL) {
			item = json_object();
			if (item == NULL || json_object_set_new(paths, ops[i].path, item) != 0)
				goto fail;
		}
		if (json_object_set_new(item, ops[i].method, operation(&ops[i])) != 0)
			goto fail;
	}
	return doc;
fail:
	json_decref(doc);
	return NULL;
}

void api_openapi(struct web_req *r)
{
	web_reply(r, MHD_HTTP_OK, build());
}
