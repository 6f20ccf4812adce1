/*
 * api_sensors.c — sensors: d4-core's registration call, the list, one
 * sensor, its state (approve, reject), its settings and key, block, kick,
 * delete, and the sensors with errors.
 *
 * A sensor's HMAC key is written here (register, PUT .../key) and never read
 * back into a reply: replies say whether a key is set and how long it is.
 * Every change is one short write transaction (read, check, write, commit),
 * the same operations as d4ctl/sensor.c, so d4-ingest sees them at its next
 * policy-generation check (within a second). A sensor and its statistics
 * are read in one read transaction (one snapshot).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "d4_proto.h"
#include "d4_uuid.h"
#include "d4_sensor_view.h"
#include "web.h"

int api_param_uuid(struct web_req *r, uint8_t uuid[D4_UUID_SIZE])
{
	if (r->n_params < 1 || d4_uuid_parse_str(r->params[0], uuid) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid uuid '%.64s'",
		          r->n_params ? r->params[0] : "");
		return -1;
	}
	return 0;
}

/* ---- POST /api/v1/add/sensor/register (d4-core's call, same shape) ---- */

/* third_party as d4-core clients send it: a boolean, 0/1, or "true"/"false". */
static int lenient_bool(json_t *v, bool *out)
{
	*out = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 0;
	}
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		*out = json_integer_value(v) == 1;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 || s[0] == '\0')
			return 0;
	}
	return -1;
}

void api_sensor_register(struct web_req *r)
{
	const char *uuid_s, *key, *desc, *mail;
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_sensor s;
	struct d4_txn t;
	int rc;

	memset(&s, 0, sizeof(s));
	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"uuid\", \"hmac_key\"} is required");
		return;
	}
	/* unknown fields are ignored here: d4-core's clients may send more */
	if (web_json_str(r, "uuid", 64, true, &uuid_s) != 0)
		return;
	if (d4_uuid_parse_str(uuid_s, s.uuid) != 0 || !d4_uuid_is_v4(s.uuid)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid uuid: a version 4 UUID is required");
		return;
	}
	if (web_json_str(r, "hmac_key", D4_SENSOR_KEY_MAX, true, &key) != 0)
		return;
	if (key[0] == '\0') {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid hmac_key: empty");
		return;
	}
	if (web_json_str(r, "description", D4_SENSOR_DESC_MAX, false, &desc) != 0 ||
	    web_json_str(r, "mail", D4_SENSOR_MAIL_MAX, false, &mail) != 0)
		return;
	if (lenient_bool(json_object_get(r->json, "third_party"), &s.third_party) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "field 'third_party' must be a boolean");
		return;
	}
	s.hmac_key_len = strlen(key);
	memcpy(s.hmac_key, key, s.hmac_key_len);
	snprintf(s.description, sizeof(s.description), "%s", desc ? desc : "");
	snprintf(s.mail, sizeof(s.mail), "%s", mail ? mail : "");
	s.state = D4_SENSOR_PENDING;
	d4_uuid_format(s.uuid, uuid_text);
	if (web_begin(r, &t, true) != 0)
		goto out;
	if ((rc = d4_sensor_register(&t, &s, r->now)) != 0) {
		d4_txn_abort(&t);
		if (rc == -EEXIST)
			web_error(r, MHD_HTTP_CONFLICT, "sensor %s is already registered", uuid_text);
		else
			web_store_error(r, rc, "sensor");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s}", "uuid", uuid_text));
out:
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
}

/* ---- GET /api/v1/sensors/monitoring/errors ---- */

struct errors_walk {
	struct d4_txn *t;
	json_t *arr;
	struct d4_sensor s;
};

static int errors_cb(const struct d4_sensor_stats *st, void *ctx)
{
	struct errors_walk *ew = ctx;
	static const uint8_t zero[D4_UUID_SIZE];
	char uuid[D4_UUID_STR_LEN + 1];
	bool server_wide = memcmp(st->uuid, zero, sizeof(zero)) == 0;
	uint64_t refused = 0;
	int rc;

	if (st->last_error.time == 0)
		return 0;
	for (unsigned i = 1; i < D4_R_COUNT; i++)
		refused += st->refusals[i];
	rc = server_wide ? -ENOENT : d4_sensor_get(ew->t, st->uuid, &ew->s);
	OPENSSL_cleanse(ew->s.hmac_key, sizeof(ew->s.hmac_key));
	if (rc != 0 && rc != -ENOENT)
		return rc;
	d4_uuid_format(st->uuid, uuid);
	json_t *o = json_pack("{s:s, s:b, s:o, s:s, s:I, s:o}", "uuid", uuid, "server_wide",
	                      server_wide, "state",
	                      rc == 0 ? json_string(d4_sensor_state_name(ew->s.state)) : json_null(),
	                      "description", rc == 0 ? ew->s.description : "", "refusals",
	                      (json_int_t)refused, "last_error", d4_last_error_json(&st->last_error));
	return o == NULL || json_array_append_new(ew->arr, o) != 0 ? -ENOMEM : 0;
}

void api_sensors_errors(struct web_req *r)
{
	struct errors_walk *ew = calloc(1, sizeof(*ew));
	struct d4_txn t;
	int rc;

	if (ew == NULL || (ew->arr = json_array()) == NULL) {
		web_reply(r, 0, NULL);
		free(ew);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	ew->t = &t;
	rc = d4_stats_iterate(&t, errors_cb, ew);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "statistics");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, ew->arr);
	ew->arr = NULL;
out:
	json_decref(ew->arr);
	free(ew);
}

/* ---- GET /api/v1/sensors ---- */

struct list_walk {
	struct d4_txn *t;
	json_t *arr;
	int status;     /* -1: any */
	int type;       /* -1: any */
	const char *q;  /* NULL: no search */
	uint64_t now;
	unsigned limit;   /* sensors in one page */
	unsigned count;   /* in this page so far */
	char next[D4_UUID_STR_LEN + 1]; /* the first sensor of the next page, "" at the end */
	struct d4_sensor_stats st;
	struct d4_block_uuid b;
};

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return n == 0;
}

static int list_cb(const struct d4_sensor *s, void *ctx)
{
	struct list_walk *lw = ctx;
	char uuid[D4_UUID_STR_LEN + 1];
	bool blocked;
	int rc;

	if (lw->status >= 0 && (int)s->state != lw->status)
		return 0;
	d4_uuid_format(s->uuid, uuid);
	if (lw->q != NULL && !contains_ci(uuid, lw->q) && !contains_ci(s->description, lw->q) &&
	    !contains_ci(s->mail, lw->q))
		return 0;
	rc = d4_stats_get(lw->t, s->uuid, &lw->st);
	if (rc == -ENOENT)
		memset(&lw->st, 0, sizeof(lw->st));
	else if (rc != 0)
		return rc;
	if (lw->type >= 0 && lw->st.types[lw->type].packets == 0)
		return 0;
	if (lw->count == lw->limit) { /* one match past the page: where the next one starts */
		memcpy(lw->next, uuid, sizeof(lw->next));
		return 1;
	}
	lw->count++;
	rc = d4_block_uuid_check(lw->t, s->uuid, lw->now, &lw->b);
	if (rc != 0 && rc != -ENOENT)
		return rc;
	blocked = rc == 0;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:I, s:I, s:I}", "uuid", uuid,
	                      "state", d4_sensor_state_name(s->state), "description", s->description,
	                      "mail", s->mail, "third_party", s->third_party, "blocked", blocked,
	                      "registered", web_json_time(s->created), "last_seen",
	                      web_json_time(lw->st.last_seen), "packets",
	                      (json_int_t)lw->st.total.packets, "bytes", (json_int_t)lw->st.total.bytes,
	                      "active_sessions", (json_int_t)lw->st.active_sessions);
	return o == NULL || json_array_append_new(lw->arr, o) != 0 ? -ENOMEM : 0;
}

/* A type by number (0-255) or name ("pcap"). -1 if neither. */
static int parse_type_text(const char *s)
{
	char *end;

	if (s[0] >= '0' && s[0] <= '9') {
		errno = 0;
		unsigned long v = strtoul(s, &end, 10);
		return errno == 0 && *end == '\0' && v < D4_TYPES ? (int)v : -1;
	}
	for (unsigned i = 0; i < D4_TYPES; i++)
		if (d4_type_is_known(i) && strcmp(s, d4_type_name(i)) == 0)
			return (int)i;
	return -1;
}

/*
 * GET /api/v1/sensors: a page of at most `limit` sensors (default 100, at most 1000) in uuid
 * order, from `cursor` on; when more match, X-Next-Cursor names the first sensor of the next
 * page (the same query with cursor=that uuid). A page keeps the reply small whatever the size
 * of the network: the list is what the UI and scripts poll.
 */
#define SENSOR_PAGE_DEFAULT 100u
#define SENSOR_PAGE_MAX 1000u

void api_sensors_list(struct web_req *r)
{
	const char *status = web_query(r, "status"), *type = web_query(r, "type"),
	           *q = web_query(r, "q"), *limit = web_query(r, "limit"),
	           *cursor = web_query(r, "cursor");
	uint8_t from[D4_UUID_SIZE];
	struct list_walk *lw = calloc(1, sizeof(*lw)); /* holds a 7 KiB statistics record */
	struct d4_txn t;
	int rc;

	if (lw == NULL || (lw->arr = json_array()) == NULL) {
		web_reply(r, 0, NULL);
		free(lw);
		return;
	}
	lw->status = lw->type = -1;
	lw->now = r->now;
	if (status != NULL && status[0] != '\0' &&
	    (lw->status = d4_sensor_state_from_name(status)) < 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "status: pending, approved or rejected");
		goto out;
	}
	if (type != NULL && type[0] != '\0' && (lw->type = parse_type_text(type)) < 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "type: a number 0-255 or a type name such as pcap");
		goto out;
	}
	if (q != NULL && strlen(q) > 256) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "q: at most 256 bytes");
		goto out;
	}
	lw->q = q != NULL && q[0] != '\0' ? q : NULL;
	lw->limit = SENSOR_PAGE_DEFAULT;
	if (limit != NULL && limit[0] != '\0') {
		char *end;
		errno = 0;
		unsigned long v = strtoul(limit, &end, 10);
		if (errno != 0 || *end != '\0' || limit[0] == '-' || v < 1 || v > SENSOR_PAGE_MAX) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "limit: 1 to %u", SENSOR_PAGE_MAX);
			goto out;
		}
		lw->limit = (unsigned)v;
	}
	if (cursor != NULL && cursor[0] != '\0' && d4_uuid_parse_str(cursor, from) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "cursor: a sensor uuid (X-Next-Cursor)");
		goto out;
	}
	bool has_cursor = cursor != NULL && cursor[0] != '\0';
	if (web_begin(r, &t, false) != 0)
		goto out;
	/* the first page of the unfiltered list is what dashboards poll: built once a second */
	bool cacheable = lw->status < 0 && lw->type < 0 && lw->q == NULL && !has_cursor &&
	                 lw->limit == SENSOR_PAGE_DEFAULT;
	uint64_t gen = 0;
	if (cacheable && d4_policy_generation(&t, &gen) == 0 &&
	    web_cache_reply(r, &r->w->sensor_list, gen)) {
		d4_txn_abort(&t);
		goto out;
	}
	lw->t = &t;
	rc = d4_sensor_iterate_from(&t, has_cursor ? from : NULL, list_cb, lw);
	d4_txn_abort(&t);
	if (rc < 0) {
		web_store_error(r, rc, "sensors");
		goto out;
	}
	snprintf(r->next_cursor, sizeof(r->next_cursor), "%s", lw->next);
	if (cacheable) {
		char *text = json_dumps(lw->arr, JSON_COMPACT);
		if (text != NULL) {
			web_cache_store(r, &r->w->sensor_list, text, strlen(text), gen,
			                "application/json");
			goto out;
		}
	}
	web_reply(r, MHD_HTTP_OK, lw->arr);
	lw->arr = NULL;
out:
	json_decref(lw->arr);
	free(lw);
}

/* ---- GET /api/v1/sensors/{uuid} ---- */

void api_sensor_show(struct web_req *r)
{
	struct d4_sensor_view *d = calloc(1, sizeof(*d)); /* large: statistics */
	uint8_t uuid[D4_UUID_SIZE];
	struct d4_txn t;
	int rc;

	if (d == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (api_param_uuid(r, uuid) != 0)
		goto out;
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = d4_sensor_view_load(&t, uuid, d);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "sensor");
		goto out;
	}
	if (!d->registered && !d->has_stats) {
		web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not registered", d->uuid_text);
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, d4_sensor_view_json(d, r->now));
out:
	OPENSSL_cleanse(d->s.hmac_key, sizeof(d->s.hmac_key));
	free(d);
}

/* ---- state changes: approve, reject, kick, block, unblock, delete ---- */

/*
 * Begins a write transaction and reads the registered sensor into s.
 * 0, or -1 with the reply sent and nothing left open.
 */
static int begin_sensor(struct web_req *r, struct d4_txn *t, uint8_t uuid[D4_UUID_SIZE],
                        char uuid_text[D4_UUID_STR_LEN + 1], struct d4_sensor *s)
{
	int rc;

	if (api_param_uuid(r, uuid) != 0)
		return -1;
	d4_uuid_format(uuid, uuid_text);
	if (web_begin(r, t, true) != 0)
		return -1;
	rc = d4_sensor_get(t, uuid, s);
	OPENSSL_cleanse(s->hmac_key, sizeof(s->hmac_key));
	if (rc != 0) {
		d4_txn_abort(t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not registered", uuid_text);
		else
			web_store_error(r, rc, "sensor");
		return -1;
	}
	return 0;
}

static void set_state(struct web_req *r, enum d4_sensor_state want)
{
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_sensor s;
	struct d4_txn t;
	bool changed;
	int rc;

	if (r->body_len > 0 && web_json_only(r, (const char *const[]){NULL}) != 0)
		return;
	if (begin_sensor(r, &t, uuid, uuid_text, &s) != 0)
		return;
	changed = s.state != want;
	if (changed && (rc = d4_sensor_set_state(&t, uuid, want, r->now)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "sensor");
		return;
	}
	if (!changed)
		d4_txn_abort(&t);
	else if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:b}", "uuid", uuid_text, "state",
	                                    d4_sensor_state_name(want), "changed", changed));
}

void api_sensor_approve(struct web_req *r)
{
	set_state(r, D4_SENSOR_APPROVED);
}

void api_sensor_reject(struct web_req *r)
{
	set_state(r, D4_SENSOR_REJECTED);
}

void api_sensor_kick(struct web_req *r)
{
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_sensor s;
	struct d4_txn t;
	int rc;

	if (r->body_len > 0 && web_json_only(r, (const char *const[]){NULL}) != 0)
		return;
	if (begin_sensor(r, &t, uuid, uuid_text, &s) != 0)
		return;
	if ((rc = d4_kick_request(&t, uuid, r->now)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "kick request");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:o}", "uuid", uuid_text, "kick_requested",
	                                    web_json_time(r->now)));
}

void api_sensor_block(struct web_req *r)
{
	static const char *const fields[] = {"comment", "expires_in", NULL};
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	const char *comment;
	uint64_t secs;
	struct d4_block_uuid b;
	struct d4_sensor s;
	struct d4_txn t;
	int rc;

	if (web_json_only(r, fields) != 0 ||
	    web_json_str(r, "comment", D4_COMMENT_MAX, false, &comment) != 0 ||
	    web_json_duration(r, "expires_in", &secs) != 0)
		return;
	/* a typo must not block a uuid nobody uses: POST /api/v1/blocklist/uuids does that */
	if (begin_sensor(r, &t, uuid, uuid_text, &s) != 0)
		return;
	memset(&b, 0, sizeof(b));
	memcpy(b.uuid, uuid, sizeof(b.uuid));
	b.created = r->now;
	b.expires = secs ? r->now + secs : 0;
	snprintf(b.comment, sizeof(b.comment), "%s", comment ? comment : "");
	if ((rc = d4_block_uuid_put(&t, &b)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:{s:o, s:o, s:s}}", "uuid", uuid_text, "blocked",
	                                    "since", web_json_time(b.created), "until",
	                                    web_json_time(b.expires), "comment", b.comment));
}

void api_sensor_unblock(struct web_req *r)
{
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_txn t;
	int rc;

	if (r->body_len > 0 && web_json_only(r, (const char *const[]){NULL}) != 0)
		return;
	if (api_param_uuid(r, uuid) != 0)
		return;
	d4_uuid_format(uuid, uuid_text);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_block_uuid_delete(&t, uuid)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not blocked", uuid_text);
		else
			web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:n}", "uuid", uuid_text, "blocked"));
}

void api_sensor_delete(struct web_req *r)
{
	const char *stats = web_query(r, "stats");
	bool with_stats = stats != NULL && (strcmp(stats, "1") == 0 || strcmp(stats, "true") == 0);
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_txn t;
	int rc;

	if (stats != NULL && !with_stats && strcmp(stats, "0") != 0 && strcmp(stats, "false") != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "stats: true or false");
		return;
	}
	if (api_param_uuid(r, uuid) != 0)
		return;
	d4_uuid_format(uuid, uuid_text);
	if (web_begin(r, &t, true) != 0)
		return;
	rc = d4_sensor_delete(&t, uuid);
	if (rc == 0 && with_stats && (rc = d4_stats_delete(&t, uuid)) == -ENOENT)
		rc = 0; /* never connected: nothing to delete */
	if (rc != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not registered", uuid_text);
		else
			web_store_error(r, rc, "sensor");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:b, s:b}", "uuid", uuid_text, "deleted", 1,
	                                    "statistics_deleted", with_stats));
}

/* ---- PUT /api/v1/sensors/{uuid}: description, mail, limits, pin, groups ---- */

static bool group_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > D4_GROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* 64 hex digits, colons allowed between bytes (as `openssl x509 -fingerprint` prints). */
static int parse_pin(const char *text, uint8_t pin[D4_CERT_PIN_SIZE])
{
	const char *p = text;
	size_t n = 0;

	while (*p != '\0' && n < D4_CERT_PIN_SIZE) {
		int hi = hex_digit(p[0]), lo = hi < 0 ? -1 : hex_digit(p[1]);
		if (hi < 0 || lo < 0)
			break;
		pin[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
		if (*p == ':' && n < D4_CERT_PIN_SIZE)
			p++;
	}
	return n == D4_CERT_PIN_SIZE && *p == '\0' ? 0 : -1;
}

/* An unsigned integer field within [0, max]. 0, 1 when absent, -1 (400 sent). */
static int json_uint(struct web_req *r, const char *field, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(r->json, field);

	if (v == NULL)
		return 1;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' must be an integer from 0 to %llu", field,
		          (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

void api_sensor_update(struct web_req *r)
{
	static const char *const fields[] = {"description", "mail", "max_payload", "rate_limit",
	                                     "cert_pin", "groups", "third_party", NULL};
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	const char *desc, *mail;
	uint64_t max_payload = 0, rate = 0;
	int has_max, has_rate, rc;
	struct d4_sensor_settings want;
	bool set_pin = false, set_groups = false, third_party = false;
	json_t *v, *x;
	struct d4_sensor s;
	struct d4_txn t;

	memset(&want, 0, sizeof(want));
	memset(&s, 0, sizeof(s));
	if (r->json == NULL || json_object_size(r->json) == 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "nothing to update: give description, mail, "
		                                   "max_payload, rate_limit, cert_pin or groups");
		return;
	}
	/* everything is checked before the transaction: a bad field writes nothing */
	if (web_json_only(r, fields) != 0 ||
	    web_json_str(r, "description", D4_SENSOR_DESC_MAX, false, &desc) != 0 ||
	    web_json_str(r, "mail", D4_SENSOR_MAIL_MAX, false, &mail) != 0)
		return;
	/* the server's own payload limit is at most 64 MiB (ingest.max_payload) */
	if ((has_max = json_uint(r, "max_payload", 64u << 20, &max_payload)) < 0 ||
	    (has_rate = json_uint(r, "rate_limit", UINT64_MAX >> 30, &rate)) < 0)
		return;
	if ((v = json_object_get(r->json, "third_party")) != NULL) {
		if (!json_is_boolean(v)) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "field 'third_party' must be a boolean");
			return;
		}
		third_party = json_is_true(v);
	}
	if ((v = json_object_get(r->json, "cert_pin")) != NULL) {
		set_pin = true;
		if (json_is_string(v) && strcmp(json_string_value(v), "none") != 0) {
			if (json_string_length(v) > 128 || parse_pin(json_string_value(v), want.cert_pin) != 0) {
				web_error(r, MHD_HTTP_BAD_REQUEST,
				          "field 'cert_pin': a SHA-256 (64 hex digits), \"none\" or null");
				return;
			}
			want.has_cert_pin = true;
		} else if (!json_is_null(v) && !json_is_string(v)) {
			web_error(r, MHD_HTTP_BAD_REQUEST,
			          "field 'cert_pin': a SHA-256 (64 hex digits), \"none\" or null");
			return;
		}
	}
	if ((v = json_object_get(r->json, "groups")) != NULL) {
		size_t i;
		set_groups = true;
		if (!json_is_array(v) || json_array_size(v) > D4_SENSOR_GROUPS_MAX) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "field 'groups': an array of at most %d names",
			          D4_SENSOR_GROUPS_MAX);
			return;
		}
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) || !group_name_ok(json_string_value(x), json_string_length(x)) ||
			    strlen(json_string_value(x)) != json_string_length(x)) {
				web_error(r, MHD_HTTP_BAD_REQUEST, "field 'groups': each name is 1 to %d "
				                                   "printable characters, no space or comma",
				          D4_GROUP_NAME_MAX);
				return;
			}
			memcpy(want.groups[i], json_string_value(x), json_string_length(x) + 1);
			want.n_groups++;
		}
	}
	if (api_param_uuid(r, uuid) != 0)
		return;
	d4_uuid_format(uuid, uuid_text);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_sensor_get(&t, uuid, &s)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not registered", uuid_text);
		else
			web_store_error(r, rc, "sensor");
		goto out;
	}
	if (desc)
		snprintf(s.description, sizeof(s.description), "%s", desc);
	if (mail)
		snprintf(s.mail, sizeof(s.mail), "%s", mail);
	if (has_max == 0)
		s.settings.max_payload = (uint32_t)max_payload;
	if (has_rate == 0)
		s.settings.rate_limit_bps = rate;
	if (json_object_get(r->json, "third_party") != NULL)
		s.third_party = third_party;
	if (set_pin) {
		s.settings.has_cert_pin = want.has_cert_pin;
		memcpy(s.settings.cert_pin, want.cert_pin, sizeof(want.cert_pin));
	}
	if (set_groups) {
		s.settings.n_groups = want.n_groups;
		memcpy(s.settings.groups, want.groups, sizeof(want.groups));
	}
	if ((rc = d4_sensor_update(&t, &s, r->now)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "sensor");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	s.updated = r->now;
	web_reply(r, MHD_HTTP_OK,
	          json_pack("{s:s, s:o}", "uuid", uuid_text, "registration", d4_sensor_registration_json(&s)));
out:
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
}

/* ---- PUT /api/v1/sensors/{uuid}/key ---- */

void api_sensor_key(struct web_req *r)
{
	static const char *const fields[] = {"hmac_key", NULL};
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	const char *key;
	struct d4_sensor s;
	struct d4_txn t;
	size_t n;
	int rc;

	memset(&s, 0, sizeof(s));
	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"hmac_key\"} is required");
		return;
	}
	if (web_json_only(r, fields) != 0 ||
	    web_json_str(r, "hmac_key", D4_SENSOR_KEY_MAX, true, &key) != 0)
		return;
	if ((n = strlen(key)) == 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid hmac_key: empty");
		return;
	}
	if (api_param_uuid(r, uuid) != 0)
		return;
	d4_uuid_format(uuid, uuid_text);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_sensor_get(&t, uuid, &s)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "sensor %s is not registered", uuid_text);
		else
			web_store_error(r, rc, "sensor");
		goto out;
	}
	memcpy(s.hmac_key, key, n);
	s.hmac_key_len = n;
	if ((rc = d4_sensor_update(&t, &s, r->now)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "sensor");
		goto out;
	}
	if (web_commit(r, &t) != 0)
		goto out;
	/* open sessions keep the old key until they reconnect: the reply says so */
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:{s:b, s:I}, s:s}", "uuid", uuid_text, "key", "set",
	                                    1, "bytes", (json_int_t)n, "note",
	                                    "open sessions keep the old key until they reconnect "
	                                    "(kick the sensor to apply it now)"));
out:
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
}
