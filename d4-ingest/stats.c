/*
 * stats.c — statistics gathered in memory, written to the store once a second.
 *
 * The per-packet path only adds to counters in its session (session.c); once
 * a second the sessions hand their counts here, together with what happened
 * in between (sessions opened and closed, refusals), and everything is
 * written with one d4_stats_apply() in one short write transaction. So the
 * store sees at most one ingest write per second per worker, whatever the
 * packet rate, and a slow store delays statistics, never packets: the write
 * (and its fsync, which takes 100 ms and more when an analyzer fills the same
 * disk) runs in libuv's thread pool on a batch of its own, while the loop goes
 * on gathering into the other one. A second that ends while a write is still
 * under way keeps gathering; the last flush at exit is written in the loop.
 *
 * Strings (meta-type names, error texts) are copied into an arena that lives
 * until the flush, because the deltas only point at them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "d4_log.h"
#include "ingest.h"

#define ARENA_CHUNK 16384u
/* Refusals beyond this many per second are counted but not detailed (a flood). */
#define MAX_DELTAS 100000u

struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	char data[ARENA_CHUNK];
};

struct stats {
	/* gathering (the loop) */
	struct d4_stats_delta *d;
	size_t n, cap;
	struct arena_chunk *arena;
	uint64_t dropped; /* deltas not kept because MAX_DELTAS was reached */
	/* being written (a thread-pool thread, while `writing`) */
	struct d4_stats_delta *wd;
	size_t wn, wcap;
	struct arena_chunk *warena;
	bool writing;
	int wrc;
	struct d4_store *store;
	uv_loop_t *loop;
	uv_work_t work;
};

struct stats *stats_create(uv_loop_t *loop)
{
	struct stats *st = calloc(1, sizeof(struct stats));
	if (st != NULL) {
		st->loop = loop;
		st->work.data = st;
	}
	return st;
}

static void arena_free(struct arena_chunk **head)
{
	struct arena_chunk *c = *head;
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	*head = NULL;
}

static void arena_reset(struct stats *st)
{
	arena_free(&st->arena);
}

void stats_destroy(struct stats *st)
{
	if (st == NULL)
		return;
	arena_reset(st);
	arena_free(&st->warena);
	free(st->d);
	free(st->wd);
	free(st);
}

static void *arena_alloc(struct stats *st, size_t n)
{
	if (n > ARENA_CHUNK)
		return NULL;
	if (st->arena == NULL || ARENA_CHUNK - st->arena->used < n) {
		struct arena_chunk *c = malloc(sizeof(*c));
		if (c == NULL)
			return NULL;
		c->next = st->arena;
		c->used = 0;
		st->arena = c;
	}
	void *p = st->arena->data + st->arena->used;
	st->arena->used += n;
	return p;
}

static const char *arena_strdup(struct stats *st, const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strnlen(s, D4_ERROR_TEXT_MAX);
	char *p = arena_alloc(st, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static const uint8_t *arena_addr(struct stats *st, const uint8_t *addr)
{
	if (addr == NULL)
		return NULL;
	uint8_t *p = arena_alloc(st, D4_IP_SIZE);
	if (p)
		memcpy(p, addr, D4_IP_SIZE);
	return p;
}

static struct d4_stats_delta *new_delta(struct stats *st, const uint8_t *uuid, uint64_t now)
{
	if (st->n >= MAX_DELTAS) {
		st->dropped++;
		return NULL;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 256;
		struct d4_stats_delta *d = realloc(st->d, cap * sizeof(*d));
		if (d == NULL) {
			st->dropped++;
			return NULL;
		}
		st->d = d;
		st->cap = cap;
	}
	struct d4_stats_delta *d = &st->d[st->n++];
	memset(d, 0, sizeof(*d));
	if (uuid)
		memcpy(d->uuid, uuid, D4_UUID_SIZE);
	d->time = now;
	d->active_sessions = -1;
	return d;
}

void stats_frames(struct stats *st, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                  const char *meta_type, uint64_t packets, uint64_t bytes, uint64_t now)
{
	struct d4_stats_delta *d = new_delta(st, uuid, now);
	if (d == NULL)
		return;
	d->type = type;
	d->meta_type = arena_strdup(st, meta_type);
	d->packets = packets;
	d->bytes = bytes;
}

void stats_refusal(struct stats *st, const uint8_t *uuid, enum d4_reason why,
                   const uint8_t peer[D4_IP_SIZE], uint16_t port, const char *text, uint64_t now)
{
	struct d4_stats_delta *d = new_delta(st, uuid, now); /* NULL uuid: the all-zero record */
	if (d == NULL)
		return;
	d->refusal = why;
	d->refusals = 1;
	d->peer = arena_addr(st, peer);
	d->peer_port = port;
	d->error = arena_strdup(st, text ? text : d4_reason_text(why));
}

void stats_session(struct stats *st, const uint8_t uuid[D4_UUID_SIZE],
                   const uint8_t peer[D4_IP_SIZE], uint16_t port, unsigned count, uint64_t now)
{
	struct d4_stats_delta *d = new_delta(st, uuid, now);
	if (d == NULL)
		return;
	d->peer = arena_addr(st, peer);
	d->peer_port = port;
	d->active_sessions = count;
}

void stats_skew(struct stats *st, const uint8_t uuid[D4_UUID_SIZE], uint64_t frames, int64_t skew,
                uint64_t now)
{
	struct d4_stats_delta *d = new_delta(st, uuid, now);
	if (d == NULL)
		return;
	d->skewed = frames;
	d->skew = skew;
}

static void write_work_cb(uv_work_t *w)
{
	struct stats *st = w->data;
	st->wrc = d4_store_stats_apply(st->store, st->wd, st->wn);
}

static void write_done_cb(uv_work_t *w, int status)
{
	struct stats *st = w->data;
	if (status == 0 && st->wrc != 0)
		d4_log(D4_LOG_ERR, "stats-write-failed", "error", d4_store_strerror(st->wrc), NULL);
	/* written or not, the batch is done with: a store that refuses a batch would refuse
	 * it again, and packets must not wait on it */
	st->wn = 0;
	arena_free(&st->warena);
	st->writing = false;
}

int stats_flush(struct stats *st, struct d4_store *s, uint64_t now, bool last)
{
	(void)now;
	if (st->dropped) {
		d4_logf(D4_LOG_WARN, "stats-dropped", "%llu statistics events not recorded in the "
		        "last second (more than %u)", (unsigned long long)st->dropped, MAX_DELTAS);
		st->dropped = 0;
	}
	if (st->n == 0 || (st->writing && !last))
		return 0; /* nothing, or the previous second is still being written: gather on */
	if (last || st->loop == NULL) {
		/* at exit, in the loop: the thread pool's write (if any) has its own batch and the
		 * store serialises the two transactions */
		int rc = d4_store_stats_apply(s, st->d, st->n);
		if (rc != 0)
			d4_log(D4_LOG_ERR, "stats-write-failed", "error", d4_store_strerror(rc), NULL);
		st->n = 0;
		arena_reset(st);
		return rc;
	}
	/* swap: this second's batch goes to the thread pool, gathering goes on in the other */
	struct d4_stats_delta *d = st->d;
	size_t cap = st->cap;
	st->d = st->wd;
	st->cap = st->wcap;
	st->wd = d;
	st->wcap = cap;
	st->wn = st->n;
	st->n = 0;
	st->warena = st->arena;
	st->arena = NULL;
	st->store = s;
	st->writing = true;
	int rc = uv_queue_work(st->loop, &st->work, write_work_cb, write_done_cb);
	if (rc != 0) { /* cannot happen with a live loop; write it here rather than lose it */
		st->wrc = d4_store_stats_apply(s, st->wd, st->wn);
		write_done_cb(&st->work, 0);
	}
	return 0;
}
