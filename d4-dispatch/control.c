/*
 * control.c — what operators ask of the queues: pause, resume, empty.
 *
 * d4-web and d4ctl never talk to d4-dispatch directly: they write a
 * `queue_ctl` record in the store (docs/store.md), and d4-dispatch reads
 * those records once a second from its tick — the same shape as the kick
 * requests d4-ingest reads — and at start and after a reload, before
 * anything is delivered. One short read transaction per second over a
 * handful of records costs nothing next to the counters it already writes.
 *
 * Pause is a state: the queue follows the record's flag, so a paused queue
 * stays paused across a restart of d4-dispatch or a reload. Empty is a
 * numbered request: dispatch first records in the store that it carries
 * request N out (empty_applied, in its own write transaction) and only then
 * discards, so a request is acted on at most once, even when dispatch is
 * killed in between. A request found pending when a queue is first seen (at
 * start, or when a reload adds the queue) is recorded as done without
 * discarding anything: a queue that was not running holds nothing of the
 * time it was made, and what ingest sends again after a restart is newer
 * than the request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d4_log.h"
#include "dispatch.h"

struct wanted {
	struct queue *q;
	struct d4_queue_ctl c;
	bool found;
	bool mark;  /* record c.empty_requested as applied */
	bool empty; /* and discard what the queue holds */
};

static void control_failed(struct dispatch *d, int rc, const char *what)
{
	if (rc != d->control_last_rc)
		d4_log(D4_LOG_ERR, "queue-control-failed", "what", what, "error",
		       d4_store_strerror(rc), NULL);
	d->control_last_rc = rc;
}

/* Reads every configured queue's record in one snapshot. */
static int read_all(struct dispatch *d, struct wanted *w, unsigned n)
{
	struct d4_txn t;
	int rc = d4_txn_begin(d->store, &t, false);

	if (rc != 0)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		rc = d4_queue_ctl_get(&t, w[i].q->conf.name, &w[i].c);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == -EINVAL) { /* a record we cannot read: leave the queue as it is */
			d4_log(D4_LOG_WARN, "queue-control-malformed", "queue", w[i].q->conf.name, NULL);
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		w[i].found = true;
	}
	d4_txn_abort(&t);
	return rc;
}

/* Records the empty requests about to be carried out, before discarding anything. */
static int mark_all(struct dispatch *d, struct wanted *w, unsigned n)
{
	struct d4_txn t;
	bool any = false;
	int rc;

	for (unsigned i = 0; i < n; i++)
		any |= w[i].mark;
	if (!any)
		return 0;
	if ((rc = d4_txn_begin(d->store, &t, true)) != 0)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		if (!w[i].mark)
			continue;
		rc = d4_queue_ctl_mark_applied(&t, w[i].q->conf.name, w[i].c.empty_requested);
		if (rc != 0) {
			d4_txn_abort(&t);
			return rc;
		}
	}
	return d4_txn_commit(&t);
}

void control_poll(struct dispatch *d)
{
	struct wanted *w = NULL;
	unsigned n = 0, i = 0;
	int rc;

	if (d->store == NULL)
		return;
	for (struct queue *q = d->queues; q; q = q->next)
		n += !q->removed;
	if (n == 0)
		return;
	if ((w = calloc(n, sizeof(*w))) == NULL) {
		control_failed(d, -ENOMEM, "read");
		return;
	}
	for (struct queue *q = d->queues; q; q = q->next)
		if (!q->removed)
			w[i++].q = q;
	if ((rc = read_all(d, w, n)) != 0) {
		control_failed(d, rc, "read");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct queue *q = w[i].q;
		if (!w[i].found)
			continue;
		if (!q->ctl_seen) {
			/* first sight: a pending request is void (see the top of this file) */
			if (w[i].c.empty_requested > w[i].c.empty_applied) {
				char seq[24];
				snprintf(seq, sizeof(seq), "%" PRIu64, w[i].c.empty_requested);
				d4_log(D4_LOG_NOTICE, "queue-empty-void", "queue", q->conf.name, "request",
				       seq, "msg", "made while this queue was not running: it holds "
				       "nothing of that time", NULL);
				w[i].mark = true;
			}
			continue;
		}
		if (w[i].c.empty_requested > q->empty_applied) {
			w[i].mark = true;
			w[i].empty = true;
		}
	}
	if ((rc = mark_all(d, w, n)) != 0) {
		control_failed(d, rc, "record an empty request");
		for (i = 0; i < n; i++)
			w[i].empty = false; /* not recorded: not done; tried again next second */
	} else {
		d->control_last_rc = 0;
	}
	for (i = 0; i < n; i++) {
		struct queue *q = w[i].q;
		if (!q->ctl_seen && rc == 0) {
			q->ctl_seen = true;
			q->empty_applied = w[i].found ? w[i].c.empty_requested : 0;
		}
		queue_set_paused(q, w[i].found && w[i].c.paused, w[i].c.by);
		if (w[i].empty) {
			q->empty_applied = w[i].c.empty_requested;
			queue_empty(q, w[i].c.empty_requested, w[i].c.by);
		}
	}
out:
	free(w);
}
