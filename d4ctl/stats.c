/*
 * stats.c — `d4ctl stats`: one day's packets and bytes per sensor and type.
 *
 * Read from the daily counters d4-ingest writes (d4_daily_iterate: one
 * cursor walk in (uuid, day, type, meta-type) order), so the rows come out
 * grouped by sensor without sorting. Days are UTC, as the store counts them.
 * The per-sensor totals since first contact are in `d4ctl sensor show`.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "d4_proto.h"
#include "d4_uuid.h"
#include "d4ctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] stats [--day YYYY-MM-DD] [--uuid UUID]\n\n"
		"One UTC day's packets and bytes (default: today) per sensor, type and meta-type,\n"
		"then a totals line. --uuid keeps one sensor. --json (a global option, before\n"
		"'stats') prints the same as JSON.\n");
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Strictly YYYY-MM-DD, a real date, 1970 or later. */
static int parse_day(const char *text, uint32_t *day)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, m, d;

	if (strlen(text) != 10 || text[4] != '-' || text[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (text[i] < '0' || text[i] > '9'))
			return -1;
	y = (unsigned)((text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 +
	               (text[3] - '0'));
	m = (unsigned)((text[5] - '0') * 10 + (text[6] - '0'));
	d = (unsigned)((text[8] - '0') * 10 + (text[9] - '0'));
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return -1;
	*day = (uint32_t)days_from_civil(y, m, d);
	return 0;
}

#define DAY_LEN 16 /* "YYYY-MM-DD" and room for a five-digit year */

static void format_day(uint32_t day, char out[DAY_LEN])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, DAY_LEN, "%Y-%m-%d", &tm) == 0)
		snprintf(out, DAY_LEN, "day %" PRIu32, day);
}

struct stats_walk {
	bool json;
	json_t *rows;
	size_t n;
	size_t sensors;
	uint8_t last_uuid[D4_UUID_SIZE];
	struct d4_counter total;
};

static int row_cb(const struct d4_daily *dl, void *ctx)
{
	struct stats_walk *w = ctx;
	char uuid[D4_UUID_STR_LEN + 1], meta[D4_META_TYPE_MAX + 1];

	if (w->n == 0 || memcmp(w->last_uuid, dl->uuid, D4_UUID_SIZE) != 0)
		w->sensors++;
	memcpy(w->last_uuid, dl->uuid, D4_UUID_SIZE);
	w->n++;
	w->total.packets += dl->c.packets;
	w->total.bytes += dl->c.bytes;
	d4_uuid_format(dl->uuid, uuid);
	if (w->json) {
		json_t *o = json_pack("{s:s, s:i, s:s, s:o, s:I, s:I}", "uuid", uuid, "type",
		                      (int)dl->type, "type_name", d4_type_name(dl->type), "meta_type",
		                      dl->meta_type[0] ? json_string(dl->meta_type) : json_null(),
		                      "packets", (json_int_t)dl->c.packets, "bytes",
		                      (json_int_t)dl->c.bytes);
		return o == NULL || json_array_append_new(w->rows, o) != 0 ? -1 : 0;
	}
	printf("%-36s  %3u %-12s  %-16s  %12" PRIu64 "  %15" PRIu64 "\n", uuid, (unsigned)dl->type,
	       d4_type_name(dl->type),
	       dl->meta_type[0] ? d4ctl_safe(dl->meta_type, meta, sizeof(meta)) : "-",
	       dl->c.packets, dl->c.bytes);
	return 0;
}

int cmd_stats(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"day", required_argument, NULL, 'd'},
		{"uuid", required_argument, NULL, 'u'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "stats";
	uint8_t uuid[D4_UUID_SIZE];
	bool one = false;
	uint32_t day = d4_day_from_time(ctl->now);
	struct stats_walk w = {.json = ctl->json};
	char day_text[DAY_LEN];
	struct d4_txn t;
	bool in_txn = false;
	int rc, src, c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":d:u:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (parse_day(optarg, &day) != 0) {
				d4ctl_err(where, "--day: '%s' is not a date as YYYY-MM-DD (1970 or later)",
				          optarg);
				return D4CTL_USAGE;
			}
			break;
		case 'u':
			if ((rc = d4ctl_parse_uuid(where, optarg, false, uuid)) != 0)
				return rc;
			one = true;
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if (optind != argc) {
		d4ctl_err(where, "unexpected argument '%s'", argv[optind]);
		return D4CTL_USAGE;
	}
	format_day(day, day_text);

	if ((rc = d4ctl_open_store(ctl, false)) != D4CTL_OK)
		return rc;
	if ((src = d4_txn_begin(ctl->store, &t, false)) != 0) {
		d4ctl_err(where, "cannot begin a transaction: %s", d4_store_strerror(src));
		return D4CTL_ERROR;
	}
	in_txn = true;
	if (ctl->json && (w.rows = json_array()) == NULL) {
		rc = D4CTL_ERROR;
		goto out;
	}
	if (!ctl->json)
		printf("%-36s  %-16s  %-16s  %12s  %15s\n", "UUID", "TYPE", "META-TYPE", "PACKETS",
		       "BYTES");
	src = d4_daily_iterate(&t, one ? uuid : NULL, day, day, row_cb, &w);
	if (src != 0) {
		if (src == -1)
			d4ctl_err(where, "out of memory building the JSON output");
		else
			d4ctl_err(where, "reading the daily counters: %s", d4_store_strerror(src));
		rc = D4CTL_ERROR;
		goto out;
	}
	if (ctl->json) {
		json_t *o = json_pack("{s:s, s:o, s:{s:I, s:I, s:I}}", "day", day_text, "rows", w.rows,
		                      "total", "sensors", (json_int_t)w.sensors, "packets",
		                      (json_int_t)w.total.packets, "bytes",
		                      (json_int_t)w.total.bytes);
		w.rows = NULL;
		rc = d4ctl_json_print(o);
		goto out;
	}
	if (w.n == 0)
		printf("(no traffic recorded on %s UTC%s)\n", day_text, one ? " for this sensor" : "");
	printf("total %s UTC: %zu sensor%s, %" PRIu64 " packets, %" PRIu64 " bytes\n", day_text,
	       w.sensors, w.sensors == 1 ? "" : "s", w.total.packets, w.total.bytes);
	rc = D4CTL_OK;
out:
	if (in_txn)
		d4_txn_abort(&t);
	json_decref(w.rows);
	return rc;
}
