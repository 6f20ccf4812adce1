/*
 * api_queues.c — the analyzer queues: their counters (written by
 * d4-dispatch once a second) and the operator's controls over them: pause,
 * resume, empty.
 *
 * d4-web does not talk to d4-dispatch: a control is a `queue_ctl` record in
 * the store (docs/store.md), which d4-dispatch reads within a second and
 * acts on (docs/dispatch.md, "Queue control"), as d4-ingest does with kick
 * requests. The reply therefore says what was asked; GET /api/v1/queues
 * shows both what was asked (`control`) and what dispatch reports
 * (`paused`, `emptied`, the counters), so a client can tell a request not
 * yet carried out from one that was.
 *
 * A queue is known when d4-dispatch has written its counters: asking about
 * any other name is 404, so a typo does not leave a record for a queue that
 * does not exist.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "web.h"

/* ---- GET /api/v1/queues ---- */

struct queues_walk {
	struct d4_txn *t;
	json_t *arr;
};

static json_t *control_json(struct d4_txn *t, const char *name)
{
	struct d4_queue_ctl c;

	if (d4_queue_ctl_get(t, name, &c) != 0)
		return json_null(); /* none, or unreadable: nothing asked that we can show */
	return json_pack("{s:b, s:I, s:I, s:s, s:o}", "paused", c.paused, "empty_requested",
	                 (json_int_t)c.empty_requested, "empty_applied",
	                 (json_int_t)c.empty_applied, "by", c.by, "updated",
	                 web_json_time(c.updated));
}

static int queue_cb(const struct d4_queue_stats *q, void *ctx)
{
	struct queues_walk *qw = ctx;
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:s}", "name",
	                      q->name, "state", d4_queue_state_name(q->state), "received",
	                      (json_int_t)q->received, "delivered", (json_int_t)q->delivered,
	                      "acknowledged", (json_int_t)q->acknowledged, "in_memory",
	                      (json_int_t)q->in_memory, "spooled", (json_int_t)q->spooled, "dropped",
	                      (json_int_t)q->dropped, "restarts", (json_int_t)q->restarts, "updated",
	                      web_json_time(q->updated), "last_error_time",
	                      web_json_time(q->last_error_time), "last_error", q->last_error);

	if (o == NULL ||
	    json_object_set_new(o, "paused", json_boolean(q->paused)) != 0 ||
	    json_object_set_new(o, "emptied", json_integer((json_int_t)q->emptied)) != 0 ||
	    json_object_set_new(o, "when_full",
	                        json_string(q->drop_oldest ? "drop-oldest" : "pause")) != 0 ||
	    json_object_set_new(o, "backpressure", json_boolean(q->backpressure)) != 0 ||
	    json_object_set_new(o, "control", control_json(qw->t, q->name)) != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	return json_array_append_new(qw->arr, o) != 0 ? -ENOMEM : 0;
}

void api_queues(struct web_req *r)
{
	struct queues_walk qw = {NULL, json_array()};
	struct d4_txn t;
	int rc;

	if (qw.arr == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	qw.t = &t;
	rc = d4_queue_iterate(&t, queue_cb, &qw);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "queues");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, qw.arr);
	qw.arr = NULL;
out:
	json_decref(qw.arr);
}

/* ---- POST /api/v1/queues/{name}/pause, resume, empty ---- */

enum queue_action { QA_PAUSE, QA_RESUME, QA_EMPTY };

static bool queue_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > D4_QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static const char *const pause_warning =
	"the queue keeps taking records and delivers none: it fills its memory, then its spool; "
	"at that limit a when_full=pause queue makes d4-dispatch pause ingest (every sensor "
	"waits), a drop-oldest queue drops its oldest records. Its held frames also count in "
	"ingest's output_buffer, which pauses sensors when full.";

static void queue_action(struct web_req *r, enum queue_action action)
{
	const char *name = r->params[0];
	struct d4_queue_stats q;
	struct d4_queue_ctl c;
	struct d4_txn t;
	uint64_t seq = 0;
	json_t *reply;
	int rc;

	if (r->body_len > 0 && web_json_only(r, (const char *const[]){NULL}) != 0)
		return;
	if (!queue_name_ok(name)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "'%.64s' is not a queue name (1 to %d printable "
		                                   "characters, no space)", name, D4_QUEUE_NAME_MAX);
		return;
	}
	if (web_begin(r, &t, true) != 0)
		return;
	rc = d4_queue_get(&t, name, &q);
	if (rc == -ENOENT) {
		d4_txn_abort(&t);
		web_error(r, MHD_HTTP_NOT_FOUND, "no queue '%s' (d4-dispatch reports its queues in the "
		                                 "store: is it configured and was dispatch started?)",
		          name);
		return;
	}
	if (rc == 0 && action == QA_EMPTY)
		rc = d4_queue_ctl_request_empty(&t, name, r->auth.user, r->now, &seq);
	else if (rc == 0)
		rc = d4_queue_ctl_set_paused(&t, name, action == QA_PAUSE, r->auth.user, r->now);
	if (rc == 0)
		rc = d4_queue_ctl_get(&t, name, &c);
	if (rc != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "queue control");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	reply = json_pack("{s:s, s:s, s:b, s:s, s:I, s:I, s:s}", "status", "ok", "queue", name,
	                  "paused", c.paused, "when_full", q.drop_oldest ? "drop-oldest" : "pause",
	                  "in_memory", (json_int_t)q.in_memory, "spooled", (json_int_t)q.spooled,
	                  "note", "d4-dispatch acts on it within a second");
	if (reply != NULL && action == QA_EMPTY &&
	    json_object_set_new(reply, "empty_request", json_integer((json_int_t)seq)) != 0) {
		json_decref(reply);
		reply = NULL;
	}
	if (reply != NULL && action == QA_PAUSE &&
	    json_object_set_new(reply, "warning", json_string(pause_warning)) != 0) {
		json_decref(reply);
		reply = NULL;
	}
	web_reply(r, MHD_HTTP_OK, reply);
}

void api_queue_pause(struct web_req *r)
{
	queue_action(r, QA_PAUSE);
}

void api_queue_resume(struct web_req *r)
{
	queue_action(r, QA_RESUME);
}

void api_queue_empty(struct web_req *r)
{
	queue_action(r, QA_EMPTY);
}
