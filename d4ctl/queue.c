/*
 * queue.c — `d4ctl queue ...`: the analyzer queues d4-dispatch runs, their
 * counters, and the operator's controls: pause, resume, empty.
 *
 * Like d4-web, d4ctl does not talk to d4-dispatch: it writes a `queue_ctl`
 * record in the store, which d4-dispatch reads within a second and acts on
 * (docs/dispatch.md, "Queue control"). `list` shows both what dispatch
 * reports and what was asked, so a request not yet carried out shows as
 * such. A name dispatch never reported is refused (exit 1): a typo must not
 * leave a record for a queue that does not exist.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "d4ctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] queue <subcommand> ...\n\n"
		"  list          every queue: state, counters, paused, emptied, pending requests\n"
		"  pause NAME    the queue keeps taking records and delivers none until resumed;\n"
		"                full (memory, then spool), its when_full applies: `pause` makes\n"
		"                d4-dispatch pause ingest (every sensor), `drop-oldest` drops\n"
		"  resume NAME   delivery starts again where it stopped, nothing lost\n"
		"  empty NAME    discard what the queue holds and has not delivered (memory and\n"
		"                spool; counted in emptied); records awaiting the analyzer's ACK stay\n\n"
		"d4-dispatch acts on a request within a second; a paused queue stays paused across\n"
		"restarts. --json (a global option, before 'queue') prints list as JSON.\n");
}

/* ---- list ---- */

struct list_walk {
	struct d4_txn *t;
	bool json;
	json_t *arr;
	size_t n;
};

/* What the STATE column shows: paused wins over running (the processes run, idle). */
static const char *shown_state(const struct d4_queue_stats *q)
{
	if (q->paused && (q->state == D4_QUEUE_RUNNING || q->state == D4_QUEUE_STOPPED))
		return "paused";
	return d4_queue_state_name(q->state);
}

static int list_cb(const struct d4_queue_stats *q, void *ctx)
{
	struct list_walk *w = ctx;
	struct d4_queue_ctl c;
	char t1[D4CTL_TIME_LEN], buf[D4_ERROR_TEXT_MAX + 1], pending[96];
	int rc = d4_queue_ctl_get(w->t, q->name, &c);

	if (rc == -ENOENT || rc == -EINVAL)
		memset(&c, 0, sizeof(c)); /* none, or unreadable: nothing we can show as asked */
	else if (rc != 0)
		return rc;
	w->n++;
	if (w->json) {
		json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		                      "s:I, s:o, s:s, s:o, s:{s:b, s:I, s:I, s:s, s:o}}",
		                      "name", q->name, "state", d4_queue_state_name(q->state), "paused",
		                      q->paused, "when_full", q->drop_oldest ? "drop-oldest" : "pause",
		                      "backpressure", q->backpressure, "received",
		                      (json_int_t)q->received, "delivered", (json_int_t)q->delivered,
		                      "acknowledged", (json_int_t)q->acknowledged, "in_memory",
		                      (json_int_t)q->in_memory, "spooled", (json_int_t)q->spooled,
		                      "dropped", (json_int_t)q->dropped, "emptied",
		                      (json_int_t)q->emptied, "restarts", (json_int_t)q->restarts,
		                      "updated", d4ctl_json_time(q->updated),
		                      "last_error", q->last_error, "last_error_time",
		                      d4ctl_json_time(q->last_error_time), "control", "paused",
		                      c.paused, "empty_requested", (json_int_t)c.empty_requested,
		                      "empty_applied", (json_int_t)c.empty_applied, "by", c.by,
		                      "updated", d4ctl_json_time(c.updated));
		return o == NULL || json_array_append_new(w->arr, o) != 0 ? -ENOMEM : 0;
	}
	pending[0] = '\0';
	if (c.paused != q->paused)
		snprintf(pending, sizeof(pending), "%s requested", c.paused ? "pause" : "resume");
	if (c.empty_requested > c.empty_applied)
		snprintf(pending + strlen(pending), sizeof(pending) - strlen(pending), "%sempty requested",
		         pending[0] ? ", " : "");
	d4ctl_format_time(q->updated, t1);
	printf("%-20s %-8s %-11s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
	       " %8" PRIu64 " %8" PRIu64 " %8" PRIu32 "  %s%s%s\n",
	       q->name, shown_state(q), q->drop_oldest ? "drop-oldest" : "pause", q->received,
	       q->delivered, q->acknowledged, q->in_memory, q->spooled, q->dropped, q->emptied,
	       q->restarts, pending[0] ? pending : (q->backpressure ? "holding back ingest" : "-"),
	       q->last_error[0] ? "; last error: " : "",
	       d4ctl_safe(q->last_error, buf, sizeof(buf)));
	return 0;
}

static int queue_list(struct d4ctl *ctl, int argc, char **argv)
{
	const char *where = "queue list";
	struct list_walk w = {.json = ctl->json};
	struct d4_txn t;
	int rc, src;

	if (argc > 1) {
		if (d4ctl_is_help(argv[1])) {
			usage(stdout);
			return D4CTL_OK;
		}
		d4ctl_err(where, "unexpected argument '%s'", argv[1]);
		return D4CTL_USAGE;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, false)) != D4CTL_OK)
		return rc;
	w.t = &t;
	if (ctl->json && (w.arr = json_array()) == NULL) {
		rc = D4CTL_ERROR;
		goto out;
	}
	if (!ctl->json)
		printf("%-20s %-8s %-11s %10s %10s %10s %10s %10s %8s %8s %8s  %s\n", "QUEUE", "STATE",
		       "WHEN_FULL", "RECEIVED", "DELIVERED", "ACKED", "MEM_BYTES", "SPOOL_B", "DROPPED",
		       "EMPTIED", "RESTARTS", "NOTE");
	if ((src = d4_queue_iterate(&t, list_cb, &w)) != 0) {
		d4ctl_err(where, "reading the queues: %s", d4_store_strerror(src));
		rc = D4CTL_ERROR;
		goto out;
	}
	if (ctl->json) {
		rc = d4ctl_json_print(w.arr);
		w.arr = NULL;
	} else {
		if (w.n == 0)
			printf("(no analyzer queue: d4-dispatch has not reported any)\n");
		rc = D4CTL_OK;
	}
out:
	d4_txn_abort(&t);
	json_decref(w.arr);
	return rc;
}

/* ---- pause, resume, empty ---- */

enum action { A_PAUSE, A_RESUME, A_EMPTY };

/* "d4ctl:<login>" as the request's author, cut to fit. */
static void who(char out[D4_USER_NAME_MAX + 1])
{
	const struct passwd *pw = getpwuid(getuid());
	snprintf(out, D4_USER_NAME_MAX + 1, "d4ctl:%.*s", D4_USER_NAME_MAX - 6,
	         pw != NULL && pw->pw_name != NULL ? pw->pw_name : "?");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

static int queue_act(struct d4ctl *ctl, int argc, char **argv, enum action a)
{
	static const char *const names[] = {"queue pause", "queue resume", "queue empty"};
	const char *where = names[a];
	struct d4_queue_stats q;
	struct d4_txn t;
	char by[D4_USER_NAME_MAX + 1];
	uint64_t seq = 0;
	int rc, src;

	if (argc == 2 && d4ctl_is_help(argv[1])) {
		usage(stdout);
		return D4CTL_OK;
	}
	if (argc != 2) {
		d4ctl_err(where, "expected one queue name");
		return D4CTL_USAGE;
	}
	const char *name = argv[1];
	if (strlen(name) == 0 || strlen(name) > D4_QUEUE_NAME_MAX) {
		d4ctl_err(where, "'%.64s' is not a queue name", name);
		return D4CTL_USAGE;
	}
	who(by);
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	src = d4_queue_get(&t, name, &q);
	if (src == -ENOENT) {
		d4_txn_abort(&t);
		d4ctl_err(where, "no queue '%s' (d4-dispatch reports its queues; see 'd4ctl queue list')",
		          name);
		return D4CTL_FAILED;
	}
	if (src == 0 && a == A_EMPTY)
		src = d4_queue_ctl_request_empty(&t, name, by, ctl->now, &seq);
	else if (src == 0)
		src = d4_queue_ctl_set_paused(&t, name, a == A_PAUSE, by, ctl->now);
	if (src != 0) {
		d4_txn_abort(&t);
		d4ctl_err(where, "%s: %s", name, d4_store_strerror(src));
		return d4ctl_store_status(src);
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	switch (a) {
	case A_PAUSE:
		printf("queue %s: pause requested (d4-dispatch acts within a second). It keeps taking\n"
		       "records and delivers none; at its limit %s.\n",
		       name, q.drop_oldest ? "it drops its oldest records (when_full = drop-oldest)"
		                           : "d4-dispatch pauses ingest, every sensor waits "
		                             "(when_full = pause)");
		break;
	case A_RESUME:
		printf("queue %s: resume requested (d4-dispatch acts within a second)\n", name);
		break;
	case A_EMPTY:
		printf("queue %s: empty requested (request %" PRIu64 "; it held %" PRIu64
		       " bytes in memory, %" PRIu64 " spooled at the last count)\n",
		       name, seq, q.in_memory, q.spooled);
		break;
	}
	return D4CTL_OK;
}

static int queue_pause(struct d4ctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, A_PAUSE);
}

static int queue_resume(struct d4ctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, A_RESUME);
}

static int queue_empty(struct d4ctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, A_EMPTY);
}

int cmd_queue(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct d4ctl_sub subs[] = {
		{"list", queue_list},
		{"pause", queue_pause},
		{"resume", queue_resume},
		{"empty", queue_empty},
	};

	return d4ctl_subcommand(ctl, "queue", subs, sizeof(subs) / sizeof(subs[0]), usage, argc,
	                        argv);
}
