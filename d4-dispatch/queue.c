/*
 * queue.c — the analyzer queues: what each one holds, its memory limit, its
 * counters, and the queue set's life across reloads.
 *
 * A queue is a name, a configuration and `instances` analyzer processes
 * (analyzer.c), each with its own list of items. Every record a queue takes
 * stays in memory until its analyzer acknowledges it, so the memory limit
 * (`memory`) is what decides between the two honest answers to a slow
 * analyzer: push back on ingest (`when_full = pause`: sensors wait, nothing
 * is lost) or drop the oldest records not yet written (`drop-oldest`:
 * counted in `dropped`, visible in the store). A frame shared by several
 * queues is counted in full by each, so every queue's figure is its own.
 *
 * Between the two sits the disk spool (`spool`, spool.c): once the memory is
 * full, an instance's new records go to disk, and once anything of it is on
 * disk every new record goes behind it until it is read back, so its
 * analyzer sees the order they came in. Only when the memory and the spool
 * are both full does when_full apply: pause once the spool reaches its limit
 * (what still comes is spooled past it, in order, until ingest stops), or
 * drop the oldest records not yet written, those on disk included, and read
 * the next ones back so that the room made is the spool's. A spool write
 * error keeps the record in memory (when_full decides, as without a spool)
 * and rests the spool for a few seconds: nothing is lost silently.
 *
 * A queue that restarts its analyzer more than dispatch.max_restarts times
 * within dispatch.restart_window is marked failed: its records are dropped
 * and counted, so it neither holds memory nor pauses ingest for everyone
 * else, and it stays visible in the store until a reload (SIGHUP) tries it
 * again.
 *
 * An operator may pause a queue (queue_ctl in the store, read by control.c):
 * it keeps taking records, memory then spool then when_full as above, and
 * writes nothing to its analyzers until resumed; a paused `pause` queue
 * therefore ends up holding back ingest, which is the honest consequence
 * (docs/dispatch.md). "Empty" discards what the queue holds and has not
 * written (counted in `emptied`), which releases those frames' ingest slots.
 *
 * Reload: a queue that is gone stops taking records, delivers what it holds
 * for up to dispatch.bye_timeout, gets BYE, and is deleted from the store; a
 * queue whose program or params changed has its analyzers restarted (BYE,
 * then a new process gets every unacknowledged record); other changes apply
 * to sessions that start after the reload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d4_log.h"
#include "dispatch.h"

struct queue *queue_new(struct dispatch *d, const struct queue_conf *c)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->d = d;
	q->conf = *c; /* takes ownership of the conf's allocations */
	q->restart_ring = d->conf.max_restarts + 1;
	q->restart_times = calloc(q->restart_ring, sizeof(uint64_t));
	if (q->restart_times == NULL)
		goto fail;
	for (unsigned i = 0; i < c->instances; i++) {
		if ((q->an[i] = analyzer_new(q, i)) == NULL)
			goto fail;
		q->n_an++;
	}
	q->n_active = c->instances;
	q->dirty = true;
	return q;
fail:
	for (unsigned i = 0; i < q->n_an; i++)
		analyzer_release(q->an[i]);
	free(q->restart_times);
	free(q);
	return NULL;
}

void queue_free(struct queue *q)
{
	for (unsigned i = 0; i < q->n_an; i++)
		analyzer_release(q->an[i]);
	queue_conf_free(&q->conf);
	free(q->restart_times);
	free(q);
}

void queue_error(struct queue *q, const char *text)
{
	snprintf(q->last_error, sizeof(q->last_error), "%s", text);
	q->last_error_time = dispatch_now();
	q->dirty = true;
}

enum d4_queue_state queue_state(const struct queue *q)
{
	if (q->failed)
		return D4_QUEUE_FAILED;
	bool backoff = false, running = false;
	for (unsigned i = 0; i < q->n_an; i++) {
		if (q->an[i]->state == AN_BACKOFF)
			backoff = true;
		else if (q->an[i]->state != AN_STOPPED && q->an[i]->state != AN_FAILED)
			running = true;
	}
	if (backoff)
		return D4_QUEUE_BACKOFF;
	return running ? D4_QUEUE_RUNNING : D4_QUEUE_STOPPED;
}

static void queue_fail(struct queue *q)
{
	char msg[128];
	q->failed = true;
	snprintf(msg, sizeof(msg), "more than %u restarts within %llu s: queue failed",
	         q->d->conf.max_restarts, (unsigned long long)(q->d->conf.restart_window_ms / 1000));
	d4_log(D4_LOG_ERR, "queue-failed", "queue", q->conf.name, "reason", msg, NULL);
	queue_error(q, msg);
	for (unsigned i = 0; i < q->n_an; i++)
		analyzer_drop_all(q->an[i]);
	queues_update_pause(q->d);
}

bool queue_count_restart(struct queue *q)
{
	uint64_t now = dispatch_now_ms(q->d);
	q->restarts++;
	q->dirty = true;
	q->restart_times[q->restart_pos] = now;
	q->restart_pos = (q->restart_pos + 1) % q->restart_ring;
	/* the oldest of the last max_restarts + 1 restarts is within the window: too many */
	uint64_t oldest = q->restart_times[q->restart_pos];
	if (oldest != 0 && now - oldest < q->d->conf.restart_window_ms) {
		queue_fail(q);
		return false;
	}
	return true;
}

void queue_released(struct queue *q, uint64_t bytes)
{
	q->in_memory -= bytes < q->in_memory ? bytes : q->in_memory;
	q->dirty = true;
}

static struct item *item_new(struct dsession *s)
{
	struct item *it = calloc(1, sizeof(*it));
	if (it == NULL) {
		d4_log(D4_LOG_ERR, "out-of-memory", "where", "queue item", NULL);
		return NULL;
	}
	it->sess = s;
	s->refs++;
	return it;
}

bool queue_spool_usable(const struct queue *q)
{
	return q->conf.spool > 0 && dispatch_now_ms(q->d) >= q->spool_retry_ms;
}

bool queue_delivering(const struct queue *q)
{
	return !q->paused || q->removed;
}

bool queue_over_limit(const struct queue *q)
{
	if (q->removed || q->failed || q->conf.when_full != WHEN_FULL_PAUSE)
		return false;
	return queue_spool_usable(q) ? q->spooled >= q->conf.spool : q->in_memory >= q->conf.memory;
}

void queue_set_paused(struct queue *q, bool paused, const char *by)
{
	if (q->paused == paused)
		return;
	q->paused = paused;
	q->dirty = true;
	d4_log(D4_LOG_NOTICE, paused ? "queue-paused" : "queue-resumed", "queue", q->conf.name,
	       "by", by[0] ? by : "-", NULL);
	if (!paused)
		for (unsigned i = 0; i < q->n_an; i++)
			analyzer_pump(q->an[i]);
	queues_update_pause(q->d);
}

void queue_empty(struct queue *q, uint64_t seq, const char *by)
{
	uint64_t n = 0, bytes = 0;
	char ns[24], bs[24], ss[24];

	for (unsigned i = 0; i < q->n_an; i++)
		n += analyzer_empty(q->an[i], &bytes);
	q->emptied += n;
	q->dirty = true;
	snprintf(ns, sizeof(ns), "%llu", (unsigned long long)n);
	snprintf(bs, sizeof(bs), "%llu", (unsigned long long)bytes);
	snprintf(ss, sizeof(ss), "%llu", (unsigned long long)seq);
	d4_log(D4_LOG_NOTICE, "queue-emptied", "queue", q->conf.name, "records", ns, "bytes", bs,
	       "request", ss, "by", by[0] ? by : "-", NULL);
	/* the memory that freed may take what is on disk elsewhere; ingest may resume */
	for (unsigned i = 0; i < q->n_an; i++)
		analyzer_pump(q->an[i]);
	queues_update_pause(q->d);
}

void item_free(struct item *it)
{
	if (it->blob && it->unheld)
		blob_rehold(it->blob);
	if (it->blob)
		blob_unref(it->blob);
	slothold_release(it->hold);
	session_unref(it->sess);
	free(it);
}

/* The new record goes to disk: the memory is full, or the instance has records there. */
static bool spool_wanted(const struct queue *q, const struct analyzer *an, size_t len)
{
	return queue_spool_usable(q) && (an->disk_head != NULL || q->in_memory + len > q->conf.memory);
}

/*
 * drop-oldest with a full spool: drops the oldest records not yet written,
 * one per instance a round (those in memory come first: they are older than
 * those on disk), reading records back into the memory that frees, until the
 * spool can take the new one, or it need not. false: nothing was left to drop.
 */
static bool spool_make_room(struct queue *q, struct analyzer *an, size_t len)
{
	while (spool_wanted(q, an, len) && q->spooled + SPOOL_RECORD_HEAD + len > q->conf.spool) {
		bool progress = false;
		for (unsigned i = 0; i < q->n_an; i++)
			if (analyzer_drop_oldest(q->an[i]) > 0)
				progress = true;
		for (unsigned i = 0; i < q->n_an; i++)
			analyzer_refill(q->an[i]);
		if (!progress)
			return false;
	}
	return true;
}

void queue_push_data(struct analyzer *an, struct dsession *s, struct blob *b)
{
	struct queue *q = an->q;
	if (q->removed)
		return;
	q->received++;
	q->dirty = true;
	if (q->failed) {
		q->dropped++;
		return;
	}
	struct item *it = item_new(s);
	if (it == NULL) {
		q->dropped++;
		return;
	}
	it->kind = ITEM_DATA;
	if (spool_wanted(q, an, b->len)) {
		if (q->conf.when_full == WHEN_FULL_DROP_OLDEST && !spool_make_room(q, an, b->len)) {
			q->dropped++; /* everything held is in flight: the new record goes */
			item_free(it);
			return;
		}
		if (spool_wanted(q, an, b->len) && analyzer_push_spooled(an, it, b) == 0)
			return;
	}
	if (q->in_memory + b->len > q->conf.memory && q->conf.when_full == WHEN_FULL_DROP_OLDEST) {
		bool progress = true;
		while (progress && q->in_memory + b->len > q->conf.memory) {
			progress = false;
			for (unsigned i = 0; i < q->n_an && q->in_memory + b->len > q->conf.memory; i++)
				if (analyzer_drop_oldest(q->an[i]) > 0)
					progress = true;
		}
		if (q->in_memory + b->len > q->conf.memory) {
			q->dropped++; /* everything held is in flight: the new record goes */
			item_free(it);
			return;
		}
	}
	it->blob = b;
	blob_ref(b);
	if (q->conf.when_full == WHEN_FULL_DROP_OLDEST) {
		it->unheld = true;
		blob_unhold(b);
	}
	q->in_memory += b->len;
	analyzer_push(an, it);
}

void queue_push_end(struct analyzer *an, struct dsession *s, uint64_t time, uint8_t reason)
{
	struct queue *q = an->q;
	if (q->removed || q->failed)
		return;
	struct item *it = item_new(s);
	if (it == NULL)
		return;
	it->kind = ITEM_END;
	it->end_time = time;
	it->end_reason = reason;
	analyzer_push(an, it);
}

/* With a spool, a queue is full when its spool is (records go there only once the memory is
 * full), and below half when its spool is (the memory stays full while the spool drains). */
void queues_update_pause(struct dispatch *d)
{
	bool over = false, under_half = true;
	for (struct queue *q = d->queues; q; q = q->next) {
		if (q->removed || q->failed || q->conf.when_full != WHEN_FULL_PAUSE)
			continue;
		bool spool = queue_spool_usable(q);
		if (queue_over_limit(q))
			over = true;
		if (spool ? q->spooled >= q->conf.spool / 2 : q->in_memory >= q->conf.memory / 2)
			under_half = false;
	}
	if (!d->paused && over)
		link_set_pause(d, true);
	else if (d->paused && under_half)
		link_set_pause(d, false);
}

static void recompute_needs_groups(struct dispatch *d)
{
	d->needs_groups = false;
	for (struct queue *q = d->queues; q; q = q->next)
		if (!q->removed && q->conf.n_groups > 0)
			d->needs_groups = true;
}

static void append_queue(struct dispatch *d, struct queue *q)
{
	struct queue **pp = &d->queues;
	while (*pp)
		pp = &(*pp)->next;
	*pp = q;
}

int queues_start(struct dispatch *d)
{
	char root[D4_PATH_MAX + 8];
	snprintf(root, sizeof(root), "%s/spool", d->conf.data_dir);
	spool_remove_stale(root);
	for (unsigned i = 0; i < d->conf.n_queues; i++) {
		struct queue *q = queue_new(d, &d->conf.queues[i]);
		if (q == NULL)
			return -1;
		memset(&d->conf.queues[i], 0, sizeof(d->conf.queues[i])); /* the queue owns it now */
		append_queue(d, q);
		d4_log(D4_LOG_INFO, "queue-started", "queue", q->conf.name, "command", q->conf.command,
		       NULL);
		for (unsigned j = 0; j < q->n_an; j++)
			analyzer_start(q->an[j]);
	}
	recompute_needs_groups(d);
	return 0;
}

static void queue_remove(struct dispatch *d, struct queue *q)
{
	q->removed = true;
	q->removed_ms = dispatch_now_ms(d);
	d4_log(D4_LOG_NOTICE, "queue-removed", "queue", q->conf.name, "msg",
	       "draining what it holds, then BYE", NULL);
}

static void queue_resize(struct queue *q, unsigned instances)
{
	for (unsigned i = 0; i < instances && i < q->n_an; i++)
		q->an[i]->retiring = false;
	while (q->n_an < instances) {
		struct analyzer *an = analyzer_new(q, q->n_an);
		if (an == NULL)
			break;
		q->an[q->n_an++] = an;
		analyzer_start(an);
	}
	for (unsigned i = instances; i < q->n_an; i++)
		q->an[i]->retiring = true;
	q->n_active = instances < q->n_an ? instances : q->n_an;
	for (unsigned i = 0; i < q->n_active; i++)
		if (q->an[i]->state == AN_STOPPED && !q->failed)
			analyzer_start(q->an[i]);
}

void queues_reload(struct dispatch *d, struct dispatch_conf *nc)
{
	bool *taken = calloc(nc->n_queues ? nc->n_queues : 1, sizeof(bool));
	if (taken == NULL)
		return;
	for (struct queue *q = d->queues; q; q = q->next) {
		if (q->removed)
			continue;
		unsigned i;
		for (i = 0; i < nc->n_queues; i++)
			if (!taken[i] && strcmp(nc->queues[i].name, q->conf.name) == 0)
				break;
		if (i == nc->n_queues) {
			queue_remove(d, q);
			continue;
		}
		taken[i] = true;
		struct queue_conf *c = &nc->queues[i];
		bool restart = !queue_conf_same_program(&q->conf, c);
		queue_conf_free(&q->conf);
		q->conf = *c;
		if (q->restart_ring != d->conf.max_restarts + 1) {
			uint64_t *ring = calloc(d->conf.max_restarts + 1, sizeof(uint64_t));
			if (ring) {
				free(q->restart_times);
				q->restart_times = ring;
				q->restart_ring = d->conf.max_restarts + 1;
				q->restart_pos = 0;
			}
		}
		memset(c, 0, sizeof(*c));
		if (q->failed) {
			q->failed = false;
			memset(q->restart_times, 0, q->restart_ring * sizeof(uint64_t));
			for (unsigned j = 0; j < q->n_an; j++) {
				q->an[j]->fails = 0;
				if (q->an[j]->state == AN_FAILED)
					q->an[j]->state = AN_STOPPED;
			}
			d4_log(D4_LOG_NOTICE, "queue-retry", "queue", q->conf.name, NULL);
			restart = false;
		} else if (restart) {
			d4_log(D4_LOG_NOTICE, "queue-changed", "queue", q->conf.name, "msg",
			       "program or params changed: restarting its analyzers", NULL);
			for (unsigned j = 0; j < q->n_an; j++)
				analyzer_bye(q->an[j], true);
		}
		queue_resize(q, q->conf.instances);
		q->dirty = true;
	}
	for (unsigned i = 0; i < nc->n_queues; i++) {
		if (taken[i])
			continue;
		struct queue *q = queue_new(d, &nc->queues[i]);
		if (q == NULL) {
			d4_log(D4_LOG_ERR, "queue-add-failed", "queue", nc->queues[i].name, NULL);
			continue;
		}
		memset(&nc->queues[i], 0, sizeof(nc->queues[i]));
		append_queue(d, q);
		d4_log(D4_LOG_NOTICE, "queue-added", "queue", q->conf.name, "command", q->conf.command,
		       NULL);
		for (unsigned j = 0; j < q->n_an; j++)
			analyzer_start(q->an[j]);
	}
	free(taken);
	recompute_needs_groups(d);
	queues_update_pause(d);
}

static bool queue_gone(const struct queue *q)
{
	for (unsigned i = 0; i < q->n_an; i++)
		if (!analyzer_gone(q->an[i]) || q->an[i]->refs > 1)
			return false;
	return true;
}

void queues_tick(struct dispatch *d)
{
	uint64_t now = dispatch_now_ms(d);
	for (struct queue **qp = &d->queues; *qp;) {
		struct queue *q = *qp;
		for (unsigned i = 0; i < q->n_an; i++) {
			struct analyzer *an = q->an[i];
			if (an->state != AN_RUNNING)
				continue;
			bool drained = analyzer_idle(an);
			if (q->removed && (drained || now - q->removed_ms > d->conf.bye_timeout_ms))
				analyzer_bye(an, false);
			else if (an->retiring && an->routes == 0 && drained)
				analyzer_bye(an, false);
		}
		if (q->removed) {
			bool stopped = true;
			for (unsigned i = 0; i < q->n_an; i++)
				if (q->an[i]->proc_live || q->an[i]->state == AN_BYE)
					stopped = false;
			if (stopped) {
				for (unsigned i = 0; i < q->n_an; i++)
					analyzer_drop_all(q->an[i]);
			}
			if (stopped && d->store && q->stored) {
				struct d4_txn t;
				if (d4_txn_begin(d->store, &t, true) == 0) {
					int rc = d4_queue_delete(&t, q->conf.name);
					if ((rc == 0 || rc == -ENOENT) && d4_txn_commit(&t) == 0)
						q->stored = false;
					else if (rc != 0 && rc != -ENOENT)
						d4_txn_abort(&t);
				}
			}
			if (stopped && !q->stored && queue_gone(q)) {
				*qp = q->next;
				d4_log(D4_LOG_INFO, "queue-freed", "queue", q->conf.name, NULL);
				queue_free(q);
				continue;
			}
		}
		qp = &q->next;
	}
}

bool queues_idle(const struct dispatch *d)
{
	for (const struct queue *q = d->queues; q; q = q->next)
		for (unsigned i = 0; i < q->n_an; i++)
			if (!analyzer_settled(q->an[i]) && q->an[i]->state != AN_FAILED)
				return false;
	return true;
}
