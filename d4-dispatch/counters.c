/*
 * counters.c — the queue counters, written to the store (the `queues`
 * database, docs/store.md) where d4-web and d4ctl read them.
 *
 * Counters change on every record; the store is written at most once a
 * second, every changed queue in one short write transaction, so that the
 * delivery path never waits on LMDB and the web reads figures at most a
 * second old. A failed write is logged (once per kind of error) and retried
 * at the next tick: counters are never worth stopping delivery for.
 */
#include <stdio.h>
#include <string.h>

#include "d4_log.h"
#include "dispatch.h"

static void fill(const struct queue *q, struct d4_queue_stats *st, uint64_t now)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", q->conf.name);
	st->received = q->received;
	st->delivered = q->delivered;
	st->acknowledged = q->acknowledged;
	st->in_memory = q->in_memory;
	st->spooled = q->spooled;
	st->dropped = q->dropped;
	st->restarts = q->restarts;
	st->state = queue_state(q);
	st->updated = now;
	st->last_error_time = q->last_error_time;
	snprintf(st->last_error, sizeof(st->last_error), "%s", q->last_error);
	st->paused = q->paused;
	st->drop_oldest = q->conf.when_full == WHEN_FULL_DROP_OLDEST;
	st->backpressure = queue_over_limit(q);
	st->emptied = q->emptied;
}

void counters_flush(struct dispatch *d, bool force)
{
	struct d4_txn t;
	struct d4_queue_stats st;
	uint64_t now = dispatch_now();
	bool any = false;
	int rc;

	if (d->store == NULL)
		return;
	for (struct queue *q = d->queues; q; q = q->next)
		if (!q->removed && (q->dirty || force))
			any = true;
	if (!any)
		return;
	if ((rc = d4_txn_begin(d->store, &t, true)) != 0)
		goto fail;
	for (struct queue *q = d->queues; q; q = q->next) {
		if (q->removed || !(q->dirty || force))
			continue;
		fill(q, &st, now);
		if ((rc = d4_queue_put(&t, &st)) != 0) {
			d4_txn_abort(&t);
			goto fail;
		}
	}
	if ((rc = d4_txn_commit(&t)) != 0)
		goto fail;
	for (struct queue *q = d->queues; q; q = q->next) {
		if (!q->removed && (q->dirty || force)) {
			q->dirty = false;
			q->stored = true;
		}
	}
	d->counters_last_rc = 0;
	return;
fail:
	if (rc != d->counters_last_rc)
		d4_log(D4_LOG_ERR, "counters-write-failed", "error", d4_store_strerror(rc), NULL);
	d->counters_last_rc = rc;
}
