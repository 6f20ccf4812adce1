/*
 * api_stats.c — what d4-ingest wrote: daily counters over a date range,
 * totals across sensors; and the server's own information and health (the
 * analyzer queues are api_queues.c).
 *
 * Every reply is read in one read transaction (one snapshot). The daily
 * walk is bounded (366 days, DAILY_ROWS_MAX rows) so one request cannot
 * build an unbounded reply; ask per sensor or for a shorter range.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "d4_proto.h"
#include "d4_uuid.h"
#include "web.h"

#define DAILY_DAYS_MAX 366
#define DAILY_ROWS_MAX 100000

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DD" (exactly) into a day number. 0 or -1. */
static int parse_day(const char *s, uint32_t *day)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y = 0, m = 0, d = 0;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++) {
		if (i == 4 || i == 7)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned v = (unsigned)(s[i] - '0');
		if (i < 4)
			y = y * 10 + v;
		else if (i < 7)
			m = m * 10 + v;
		else
			d = d * 10 + v;
	}
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	int64_t n = days_from_civil(y, m, d);
	if (n < 0 || n > UINT32_MAX)
		return -1;
	*day = (uint32_t)n;
	return 0;
}

static void format_day(uint32_t day, char out[16])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
		snprintf(out, 16, "?");
}

/* ---- GET /api/v1/stats/daily ---- */

struct daily_walk {
	json_t *rows;
	size_t n;
};

static int daily_cb(const struct d4_daily *dl, void *ctx)
{
	struct daily_walk *dw = ctx;
	char uuid[D4_UUID_STR_LEN + 1], day[16];

	if (++dw->n > DAILY_ROWS_MAX)
		return -E2BIG;
	d4_uuid_format(dl->uuid, uuid);
	format_day(dl->day, day);
	json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:I}", "day", day, "uuid", uuid, "type",
	                      (int)dl->type, "name", d4_type_name(dl->type), "meta_type", dl->meta_type,
	                      "packets", (json_int_t)dl->c.packets, "bytes", (json_int_t)dl->c.bytes);
	return o == NULL || json_array_append_new(dw->rows, o) != 0 ? -ENOMEM : 0;
}

void api_stats_daily(struct web_req *r)
{
	const char *from_s = web_query(r, "from"), *to_s = web_query(r, "to"),
	           *uuid_s = web_query(r, "uuid");
	uint32_t from, to = d4_day_from_time(r->now);
	uint8_t uuid[D4_UUID_SIZE];
	struct daily_walk dw = {.rows = NULL};
	char f[16], tt[16];
	struct d4_txn t;
	int rc;

	if (to_s != NULL && parse_day(to_s, &to) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "to: a date YYYY-MM-DD");
		return;
	}
	from = to >= 6 ? to - 6 : 0;
	if (from_s != NULL && parse_day(from_s, &from) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "from: a date YYYY-MM-DD");
		return;
	}
	if (from > to || to - from >= DAILY_DAYS_MAX) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "from must not be after to, and the range is at "
		                                   "most %d days", DAILY_DAYS_MAX);
		return;
	}
	if (uuid_s != NULL && d4_uuid_parse_str(uuid_s, uuid) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid uuid '%.64s'", uuid_s);
		return;
	}
	if ((dw.rows = json_array()) == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = d4_daily_iterate(&t, uuid_s ? uuid : NULL, from, to, daily_cb, &dw);
	d4_txn_abort(&t);
	if (rc == -E2BIG) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "more than %d rows: narrow the range or give a uuid",
		          DAILY_ROWS_MAX);
		goto out;
	}
	if (rc != 0) {
		web_store_error(r, rc, "daily statistics");
		goto out;
	}
	format_day(from, f);
	format_day(to, tt);
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:o}", "from", f, "to", tt, "rows", dw.rows));
	dw.rows = NULL;
out:
	json_decref(dw.rows);
}

/* ---- GET /api/v1/stats/totals ---- */

struct totals {
	size_t states[3];
	size_t sensors_seen, connected;
	uint64_t sessions;
	struct d4_counter total;
	struct d4_counter types[D4_TYPES];
	uint64_t refusals[D4_R_COUNT];
	json_t *meta; /* name -> [packets, bytes] */
};

static int totals_sensor_cb(const struct d4_sensor *s, void *ctx)
{
	struct totals *tot = ctx;

	if ((unsigned)s->state < 3)
		tot->states[s->state]++;
	return 0;
}

static int totals_stats_cb(const struct d4_sensor_stats *st, void *ctx)
{
	struct totals *tot = ctx;
	static const uint8_t zero[D4_UUID_SIZE];

	for (unsigned i = 1; i < D4_R_COUNT; i++)
		tot->refusals[i] += st->refusals[i];
	if (memcmp(st->uuid, zero, sizeof(zero)) == 0)
		return 0; /* the server-wide record counts refusals only */
	tot->sensors_seen++;
	tot->connected += st->active_sessions > 0;
	tot->sessions += st->active_sessions;
	tot->total.packets += st->total.packets;
	tot->total.bytes += st->total.bytes;
	for (unsigned i = 0; i < D4_TYPES; i++) {
		tot->types[i].packets += st->types[i].packets;
		tot->types[i].bytes += st->types[i].bytes;
	}
	for (unsigned i = 0; i < st->n_meta && i < D4_STATS_META_MAX; i++) {
		json_t *m = json_object_get(tot->meta, st->meta[i].name);
		if (m == NULL) {
			m = json_pack("{s:I, s:I}", "packets", (json_int_t)0, "bytes", (json_int_t)0);
			if (m == NULL || json_object_set_new(tot->meta, st->meta[i].name, m) != 0)
				return -ENOMEM;
		}
		json_int_t p = json_integer_value(json_object_get(m, "packets"));
		json_int_t b = json_integer_value(json_object_get(m, "bytes"));
		if (json_object_set_new(m, "packets",
		                        json_integer(p + (json_int_t)st->meta[i].c.packets)) != 0 ||
		    json_object_set_new(m, "bytes", json_integer(b + (json_int_t)st->meta[i].c.bytes)) != 0)
			return -ENOMEM;
	}
	return 0;
}

void api_stats_totals(struct web_req *r)
{
	struct totals *tot = calloc(1, sizeof(*tot));
	json_t *types = NULL, *refusals = NULL;
	struct d4_txn t;
	int rc;

	if (tot == NULL || (tot->meta = json_object()) == NULL || (types = json_array()) == NULL ||
	    (refusals = json_object()) == NULL) {
		web_reply(r, 0, NULL);
		goto out;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = d4_sensor_iterate(&t, totals_sensor_cb, tot);
	if (rc == 0)
		rc = d4_stats_iterate(&t, totals_stats_cb, tot);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "statistics");
		goto out;
	}
	for (unsigned i = 0; i < D4_TYPES; i++)
		if ((tot->types[i].packets || tot->types[i].bytes) &&
		    json_array_append_new(types, json_pack("{s:i, s:s, s:I, s:I}", "type", (int)i, "name",
		                                           d4_type_name(i), "packets",
		                                           (json_int_t)tot->types[i].packets, "bytes",
		                                           (json_int_t)tot->types[i].bytes)) != 0)
			goto oom;
	for (unsigned i = 1; i < D4_R_COUNT; i++)
		if (tot->refusals[i] != 0 &&
		    json_object_set_new(refusals, d4_reason_name((enum d4_reason)i),
		                        json_integer((json_int_t)tot->refusals[i])) != 0)
			goto oom;
	web_reply(r, MHD_HTTP_OK,
	          json_pack("{s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
	                    "sensors", "registered",
	                    (json_int_t)(tot->states[0] + tot->states[1] + tot->states[2]), "pending",
	                    (json_int_t)tot->states[0], "approved", (json_int_t)tot->states[1],
	                    "rejected", (json_int_t)tot->states[2], "sensors_seen",
	                    (json_int_t)tot->sensors_seen, "connected", (json_int_t)tot->connected,
	                    "active_sessions", (json_int_t)tot->sessions, "packets",
	                    (json_int_t)tot->total.packets, "bytes", (json_int_t)tot->total.bytes,
	                    "types", types, "meta_types", tot->meta, "refusals", refusals));
	types = refusals = NULL;
	tot->meta = NULL;
	goto out;
oom:
	web_reply(r, 0, NULL);
out:
	json_decref(types);
	json_decref(refusals);
	if (tot != NULL)
		json_decref(tot->meta);
	free(tot);
}

/* ---- GET /api/v1/info, /api/v1/health ---- */

void api_info(struct web_req *r)
{
	uint64_t gen = 0;
	uint32_t schema = 0;
	struct d4_txn t;
	int rc;

	if (web_begin(r, &t, false) != 0)
		return;
	rc = d4_policy_generation(&t, &gen);
	if (rc == 0)
		rc = d4_schema_version(&t, &schema);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "store");
		return;
	}
	web_reply(r, MHD_HTTP_OK,
	          json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:b, s:{s:s, s:i, s:I}, s:I, s:{s:s, s:s}}",
	                    "name", "d4", "program", "d4-web", "version", D4_VERSION_STRING, "time",
	                    web_json_time(r->now), "started", web_json_time(r->w->started),
	                    "uptime_s", (json_int_t)(r->now - r->w->started), "tls",
	                    !r->w->conf.plain_http, "store", "path", d4_store_path(r->w->store),
	                    "schema_version", (int)schema, "policy_generation", (json_int_t)gen,
	                    "sessions", (json_int_t)auth_session_count(r->w), "you", "user",
	                    r->auth.user, "role", d4_role_name(r->auth.role)));
}

void api_health(struct web_req *r)
{
	uint64_t gen;
	struct d4_txn t;
	int rc = d4_txn_begin(r->w->store, &t, false);

	if (rc == 0) {
		rc = d4_policy_generation(&t, &gen);
		d4_txn_abort(&t);
	}
	if (rc != 0) {
		web_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store: %s", d4_store_strerror(rc));
		return;
	}
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}
