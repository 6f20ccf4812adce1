/*
 * metrics.c — GET /metrics in the Prometheus text exposition format (0.0.4).
 *
 * Everything is read from the store in one read transaction at scrape time
 * (nothing is kept in d4-web): sensors registered by state and connected,
 * packets and bytes per type, refusals by reason, and every analyzer
 * queue's counters. Counters are totals since a sensor or queue record was
 * created, so rate() works across d4-web restarts.
 *
 * Auth: like every read route, an API token (Authorization: Bearer ...) or
 * a session of any role that may read (read-only is enough). Give
 * Prometheus a token of a read-only user (authorization: credentials_file).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "d4_proto.h"
#include "web.h"

struct out {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)n + 1;
		char *b = realloc(o->buf, cap);
		if (b == NULL) {
			o->failed = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
}

/* A label value with \, " and newline escaped (names are printable ASCII, but be strict). */
static void label(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src != '\0' && o + 3 < cap; src++) {
		if (*src == '\\' || *src == '"') {
			dst[o++] = '\\';
			dst[o++] = *src;
		} else if (*src == '\n') {
			dst[o++] = '\\';
			dst[o++] = 'n';
		} else {
			dst[o++] = *src;
		}
	}
	dst[o] = '\0';
}

struct scrape {
	size_t states[3];
	size_t connected;
	uint64_t sessions;
	struct d4_counter types[D4_TYPES];
	uint64_t refusals[D4_R_COUNT];
	struct out *o;
};

static int sensor_cb(const struct d4_sensor *s, void *ctx)
{
	struct scrape *sc = ctx;

	if ((unsigned)s->state < 3)
		sc->states[s->state]++;
	return 0;
}

static int stats_cb(const struct d4_sensor_stats *st, void *ctx)
{
	struct scrape *sc = ctx;

	for (unsigned i = 1; i < D4_R_COUNT; i++)
		sc->refusals[i] += st->refusals[i];
	sc->connected += st->active_sessions > 0;
	sc->sessions += st->active_sessions;
	for (unsigned i = 0; i < D4_TYPES; i++) {
		sc->types[i].packets += st->types[i].packets;
		sc->types[i].bytes += st->types[i].bytes;
	}
	return 0;
}

static const char *const queue_metrics[][2] = {
	{"d4_queue_received_bytes_total", "Bytes received by the queue"},
	{"d4_queue_delivered_bytes_total", "Bytes delivered to the analyzer"},
	{"d4_queue_acknowledged_bytes_total", "Bytes acknowledged by the analyzer"},
	{"d4_queue_memory_bytes", "Bytes buffered in memory now"},
	{"d4_queue_spooled_bytes", "Bytes spooled on disk now"},
	{"d4_queue_dropped_total", "Data dropped by the queue"},
	{"d4_queue_restarts_total", "Analyzer worker restarts"},
	{"d4_queue_up", "1 when the analyzer worker is running"},
	{"d4_queue_emptied_total", "Records discarded by operator empty requests"},
	{"d4_queue_paused", "1 while an operator has the queue paused (it delivers nothing)"},
	{"d4_queue_backpressure", "1 while the queue is at its limit and holds back ingest"},
};

struct queue_pass {
	struct out *o;
	unsigned metric;
};

static int queue_cb(const struct d4_queue_stats *q, void *ctx)
{
	struct queue_pass *qp = ctx;
	char name[2 * D4_QUEUE_NAME_MAX + 1];
	uint64_t v = 0;

	label(name, sizeof(name), q->name);
	switch (qp->metric) {
	case 0: v = q->received; break;
	case 1: v = q->delivered; break;
	case 2: v = q->acknowledged; break;
	case 3: v = q->in_memory; break;
	case 4: v = q->spooled; break;
	case 5: v = q->dropped; break;
	case 6: v = q->restarts; break;
	case 7: v = q->state == D4_QUEUE_RUNNING; break;
	case 8: v = q->emptied; break;
	case 9: v = q->paused; break;
	default: v = q->backpressure; break;
	}
	put(qp->o, "%s{queue=\"%s\"} %llu\n", queue_metrics[qp->metric][0], name, (unsigned long long)v);
	return 0;
}

void api_metrics(struct web_req *r)
{
	struct out o = {.buf = malloc(16384), .cap = 16384};
	struct scrape *sc = calloc(1, sizeof(*sc));
	struct d4_txn t;
	bool in_txn = false;
	int rc;

	if (o.buf == NULL || sc == NULL) {
		web_reply(r, 0, NULL);
		goto out;
	}
	sc->o = &o;
	if (web_begin(r, &t, false) != 0)
		goto out;
	in_txn = true;
	uint64_t gen = 0;
	if (d4_policy_generation(&t, &gen) == 0 && web_cache_reply(r, &r->w->metrics, gen))
		goto out;
	if ((rc = d4_sensor_iterate(&t, sensor_cb, sc)) != 0 ||
	    (rc = d4_stats_iterate(&t, stats_cb, sc)) != 0) {
		web_store_error(r, rc, "statistics");
		goto out;
	}
	put(&o, "# HELP d4_sensors_registered Registered sensors by state.\n"
	        "# TYPE d4_sensors_registered gauge\n");
	for (unsigned i = 0; i < 3; i++)
		put(&o, "d4_sensors_registered{state=\"%s\"} %zu\n",
		    d4_sensor_state_name((enum d4_sensor_state)i), sc->states[i]);
	put(&o, "# HELP d4_sensors_connected Sensors with at least one open session.\n"
	        "# TYPE d4_sensors_connected gauge\nd4_sensors_connected %zu\n", sc->connected);
	put(&o, "# HELP d4_sessions_active Open sensor sessions.\n"
	        "# TYPE d4_sessions_active gauge\nd4_sessions_active %llu\n",
	    (unsigned long long)sc->sessions);
	put(&o, "# HELP d4_packets_total D4 packets accepted, by type.\n"
	        "# TYPE d4_packets_total counter\n");
	for (unsigned i = 0; i < D4_TYPES; i++)
		if (sc->types[i].packets || d4_type_is_known(i))
			put(&o, "d4_packets_total{type=\"%u\",name=\"%s\"} %llu\n", i, d4_type_name(i),
			    (unsigned long long)sc->types[i].packets);
	put(&o, "# HELP d4_bytes_total D4 payload bytes accepted, by type.\n"
	        "# TYPE d4_bytes_total counter\n");
	for (unsigned i = 0; i < D4_TYPES; i++)
		if (sc->types[i].bytes || d4_type_is_known(i))
			put(&o, "d4_bytes_total{type=\"%u\",name=\"%s\"} %llu\n", i, d4_type_name(i),
			    (unsigned long long)sc->types[i].bytes);
	put(&o, "# HELP d4_refusals_total Refused packets or connections, by reason.\n"
	        "# TYPE d4_refusals_total counter\n");
	for (unsigned i = 1; i < D4_R_COUNT; i++)
		put(&o, "d4_refusals_total{reason=\"%s\"} %llu\n", d4_reason_name((enum d4_reason)i),
		    (unsigned long long)sc->refusals[i]);
	for (unsigned m = 0; m < sizeof(queue_metrics) / sizeof(queue_metrics[0]); m++) {
		struct queue_pass qp = {.o = &o, .metric = m};
		bool counter = strstr(queue_metrics[m][0], "_total") != NULL;
		put(&o, "# HELP %s %s.\n# TYPE %s %s\n", queue_metrics[m][0], queue_metrics[m][1],
		    queue_metrics[m][0], counter ? "counter" : "gauge");
		if ((rc = d4_queue_iterate(&t, queue_cb, &qp)) != 0) {
			web_store_error(r, rc, "queues");
			goto out;
		}
	}
	put(&o, "# HELP d4_web_sessions Logged-in web sessions.\n"
	        "# TYPE d4_web_sessions gauge\nd4_web_sessions %zu\n", auth_session_count(r->w));
	if (o.failed) {
		web_reply(r, 0, NULL);
		goto out;
	}
	web_cache_store(r, &r->w->metrics, o.buf, o.len, gen,
	                "text/plain; version=0.0.4; charset=utf-8");
	o.buf = NULL;
out:
	if (in_txn)
		d4_txn_abort(&t);
	free(o.buf);
	free(sc);
}
