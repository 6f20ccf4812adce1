/*
 * analyzer.c — one analyzer process of a queue: start it, talk to it
 * (docs/analyzer-protocol.md), restart it when it dies.
 *
 * The process is started with uv_spawn: its standard input is one end of a
 * socketpair (the protocol runs both ways on it), its standard output and
 * standard error are one pipe that we read and log line by line under the
 * queue's name, so an analyzer needs no logging setup of its own.
 *
 * Delivery keeps one list of items per instance, in the order they were
 * queued: DATA (a frame) and END (a session ended). START is not an item: it
 * is written just before the first DATA of a session in each incarnation of
 * the process (route.started remembers which), which gives "START again for
 * every session with unacknowledged records after a restart" for free.
 * Written items stay in the list until acknowledged (seq, per process, from
 * 1); an END goes once it is written and everything before it went. When
 * the process dies every item becomes unwritten again and a new process gets
 * them all, in order; an analyzer that registered "no ack" counts a record
 * acknowledged when the socket has taken it, and loses what it had not
 * processed when it dies, as the protocol says.
 *
 * The disk spool (spool.c) keeps the list whole: a DATA item whose frame
 * went to disk stays in its place without its blob (on_disk), so order,
 * ENDs and drops need nothing special; the pump stops at the first such item
 * until analyzer_refill() has read it back, which it does, oldest first,
 * whenever the queue's memory has room (or when nothing of this instance is
 * in flight, so that it always makes progress).
 *
 * What goes wrong with an analyzer stays with it: a malformed message, an
 * acknowledgement of something never sent, no REGISTER in time, or a write
 * error kills that process; the exit is logged with its cause and the
 * process is restarted with exponential backoff (500 ms doubling up to
 * dispatch.restart_backoff_max), and too many restarts mark the queue failed
 * (queue.c). The dispatcher and the other queues do not notice.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "d4_log.h"
#include "dispatch.h"

#define BACKOFF_BASE_MS 500u
#define STABLE_RUN_MS 30000u   /* a process that lived this long resets the backoff */
#define EXIT_EOF_WAIT_MS 500u  /* after exit: time to read its last ACKs */
#define LOG_LINE_MAX 1024u
#define SPOOL_RETRY_MS 10000u  /* after a spool write error, records stay in memory this long */

struct an_write {
	uv_write_t req;
	struct analyzer *an;
	struct blob *blob;
	uint64_t seq;         /* DATA: for "no ack" analyzers, acknowledged when written */
	uint64_t incarnation;
	uint8_t *own;
};

struct logpipe {
	uv_pipe_t pipe;
	char queue[D4_QUEUE_NAME_MAX + 1];
	char who[32];
	size_t len;
	char line[LOG_LINE_MAX + 1];
	char rbuf[4096];
};

static void spawn(struct analyzer *an);
static void after_exit(struct analyzer *an);
static void pump_end_trim(struct analyzer *an);

static struct dispatch *D(const struct analyzer *an)
{
	return an->q->d;
}

static void an_log(const struct analyzer *an, enum d4_log_level lvl, const char *event,
                   const char *key, const char *value)
{
	char idx[12], pid[16];
	snprintf(idx, sizeof(idx), "%u", an->index);
	snprintf(pid, sizeof(pid), "%d", an->pid);
	d4_log(lvl, event, "queue", an->q->conf.name, "instance", idx, "pid", pid, key, value, NULL);
}

/* ---- life of the struct ---- */

static void maybe_free(struct analyzer *an)
{
	if (an->refs == 0 && !an->proc_live && !an->sock_open && !an->timer_init) {
		d4_ap_reader_free(&an->reader);
		free(an);
	}
}

void analyzer_unref(struct analyzer *an)
{
	if (--an->refs == 0)
		maybe_free(an);
}

static void timer_closed_cb(uv_handle_t *h)
{
	struct analyzer *an = h->data;
	an->timer_init = false;
	maybe_free(an);
}

struct analyzer *analyzer_new(struct queue *q, unsigned index)
{
	struct analyzer *an = calloc(1, sizeof(*an));
	if (an == NULL)
		return NULL;
	an->q = q;
	an->index = index;
	an->refs = 1;
	an->next_seq = 1;
	char dir[SPOOL_DIR_MAX];
	snprintf(dir, sizeof(dir), "%s/spool/%s/%u", q->d->conf.data_dir, q->conf.name, index);
	spool_init(&an->spool, dir, 0, &q->d->spool_seg_num);
	d4_ap_reader_init(&an->reader, false);
	if (uv_timer_init(q->d->loop, &an->timer) != 0) {
		free(an);
		return NULL;
	}
	an->timer.data = an;
	an->timer_init = true;
	return an;
}

bool analyzer_idle(const struct analyzer *an)
{
	return an->head == NULL;
}

bool analyzer_gone(const struct analyzer *an)
{
	return !an->proc_live && !an->sock_open;
}

/* ---- the item list ---- */

static struct item *next_on_disk(struct item *it)
{
	while (it && !it->on_disk)
		it = it->next;
	return it;
}

static void spool_stopped_maybe(struct analyzer *an)
{
	char idx[12], n[24], ms[24];
	if (an->n_disk > 0 || an->disk_since_ms == 0)
		return;
	snprintf(idx, sizeof(idx), "%u", an->index);
	snprintf(n, sizeof(n), "%" PRIu64, an->spooled_total);
	snprintf(ms, sizeof(ms), "%" PRIu64, dispatch_now_ms(D(an)) - an->disk_since_ms);
	d4_log(D4_LOG_INFO, "spool-stop", "queue", an->q->conf.name, "instance", idx, "records", n,
	       "ms", ms, NULL);
	an->disk_since_ms = 0;
}

/* Consumes the spool's oldest record unread (it belongs to the disk head, being dropped). */
static void spool_consume(struct analyzer *an, struct item *it)
{
	uint64_t before = an->spool.bytes;
	spool_skip(&an->spool, it->disk_len);
	an->q->spooled -= before - an->spool.bytes;
	an->q->dirty = true;
}

static void unlink_item(struct analyzer *an, struct item *it)
{
	if (an->disk_head == it)
		an->disk_head = next_on_disk(it->next);
	if (an->unsent == it)
		an->unsent = it->next;
	if (it->prev)
		it->prev->next = it->next;
	else
		an->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		an->tail = it->prev;
	an->n_items--;
	if (it->kind == ITEM_DATA && it->on_disk)
		an->n_disk--;
	else if (it->kind == ITEM_DATA && it->blob)
		an->held -= it->blob->len;
}

/* Every item on disk comes after every item written, so the first on disk is always the
 * oldest DATA a drop can reach there: it is the spool's next record. */
static void drop_item(struct analyzer *an, struct item *it)
{
	unlink_item(an, it);
	if (it->kind == ITEM_DATA) {
		if (it->on_disk) {
			spool_consume(an, it);
		} else {
			if (it->sent)
				an->inflight -= it->blob->len < an->inflight ? it->blob->len : an->inflight;
			queue_released(an->q, it->blob->len);
		}
		an->q->dropped++;
	}
	item_free(it);
	spool_stopped_maybe(an);
}

uint64_t analyzer_drop_oldest(struct analyzer *an)
{
	for (struct item *it = an->unsent; it; it = it->next) {
		if (it->kind != ITEM_DATA)
			continue;
		uint64_t len = it->on_disk ? it->disk_len : it->blob->len;
		drop_item(an, it);
		return len;
	}
	return 0;
}

void analyzer_drop_all(struct analyzer *an)
{
	while (an->head)
		drop_item(an, an->head);
	an->inflight = 0;
}

/*
 * Every DATA from the first unwritten item on goes: they are unwritten (an
 * item on disk is never written), while everything before `unsent` awaits
 * its ACK and stays. ENDs stay in their place: an END whose session never
 * got a START from this process is skipped when its turn comes. Freeing an
 * item lets go of its frame's ingest slot (or its slot holder), so ingest's
 * acknowledgement moves on. The spool holds only records of items removed
 * here, so it is cleared as a whole.
 */
uint64_t analyzer_empty(struct analyzer *an, uint64_t *bytes)
{
	struct queue *q = an->q;
	uint64_t n = 0;

	for (struct item *it = an->unsent, *next; it; it = next) {
		next = it->next;
		if (it->kind != ITEM_DATA)
			continue;
		unlink_item(an, it);
		if (it->on_disk) {
			*bytes += it->disk_len;
		} else {
			*bytes += it->blob->len;
			queue_released(q, it->blob->len);
		}
		item_free(it);
		n++;
	}
	if (an->spool.bytes > 0 || an->spool.n_segs > 0) {
		q->spooled -= an->spool.bytes < q->spooled ? an->spool.bytes : q->spooled;
		spool_clear(&an->spool);
	}
	an->disk_head = NULL;
	an->n_disk = 0;
	spool_stopped_maybe(an);
	q->dirty = true;
	return n;
}

bool analyzer_settled(const struct analyzer *an)
{
	return an->head == NULL || (!queue_delivering(an->q) && an->unsent == an->head);
}

/* Everything up to seq is done with. */
static void ack_upto(struct analyzer *an, uint64_t seq)
{
	struct queue *q = an->q;
	if (seq > an->acked_seq)
		an->acked_seq = seq;
	while (an->head && an->head->sent &&
	       (an->head->kind == ITEM_END || an->head->seq <= an->acked_seq)) {
		struct item *it = an->head;
		unlink_item(an, it);
		if (it->kind == ITEM_DATA) {
			an->inflight -= it->blob->len < an->inflight ? it->blob->len : an->inflight;
			q->acknowledged++;
			queue_released(q, it->blob->len);
		}
		item_free(it);
	}
	q->dirty = true;
}

/* ---- writing ---- */

void analyzer_kill(struct analyzer *an, const char *why)
{
	if (!an->proc_live || an->pid <= 0)
		return;
	an_log(an, D4_LOG_WARN, "analyzer-kill", "reason", why);
	queue_error(an->q, why);
	int rc = uv_process_kill(&an->proc, SIGKILL);
	if (rc != 0 && rc != UV_ESRCH)
		an_log(an, D4_LOG_ERR, "analyzer-kill-failed", "error", uv_strerror(rc));
}

static void write_cb(uv_write_t *req, int status)
{
	struct an_write *w = (struct an_write *)req;
	struct analyzer *an = w->an;
	if (w->blob)
		blob_unref(w->blob);
	free(w->own);
	bool current = w->incarnation == an->incarnation;
	uint64_t seq = w->seq;
	free(w);
	if (!current)
		return;
	if (status < 0 && status != UV_ECANCELED) {
		analyzer_kill(an, uv_strerror(status));
		return;
	}
	if (status == 0 && an->no_ack && seq) {
		ack_upto(an, seq);
		queues_update_pause(D(an));
	}
	if (status == 0)
		analyzer_pump(an);
}

/* Writes own (and the blob after it); takes own in every case. */
static int write_msg(struct analyzer *an, uint8_t *own, size_t own_len, struct blob *b,
                     uint64_t seq)
{
	struct an_write *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		free(own);
		return -1;
	}
	w->an = an;
	w->own = own;
	w->seq = seq;
	w->incarnation = an->incarnation;
	uv_buf_t bufs[2];
	unsigned n = 0;
	bufs[n++] = uv_buf_init((char *)own, (unsigned)own_len);
	if (b) {
		bufs[n++] = uv_buf_init((char *)b->data, (unsigned)b->len);
		blob_ref(b);
		w->blob = b;
	}
	int rc = uv_write(&w->req, (uv_stream_t *)&an->sock, bufs, n, write_cb);
	if (rc != 0) {
		if (w->blob)
			blob_unref(w->blob);
		free(own);
		free(w);
		return rc;
	}
	return 0;
}

static size_t start_msg(const struct dsession *s, struct d4_ap_start *m)
{
	memset(m, 0, sizeof(*m));
	m->session = s->id;
	m->time = s->open.time;
	memcpy(m->uuid, s->open.uuid, D4_UUID_SIZE);
	m->type = s->type;
	memcpy(m->addr, s->open.addr, 16);
	m->port = s->open.port;
	if (s->type == D4_TYPE_META_DEFINED) {
		m->meta_type.p = s->meta_type;
		m->meta_type.len = strlen(s->meta_type);
		m->meta_json.p = (const char *)s->meta_json;
		m->meta_json.len = s->meta_json_len;
	}
	return d4_ap_start_len(m);
}

/* Writes one item; -1 when the socket failed (the analyzer is killed). */
static int write_item(struct analyzer *an, struct item *it)
{
	struct route *r = session_route(it->sess, an);
	bool started = r && r->started == an->incarnation;
	if (it->kind == ITEM_END) {
		if (!started)
			return 0; /* this process never heard of the session */
		uint8_t *own = malloc(D4_AP_END_LEN);
		if (own == NULL)
			return -1;
		struct d4_ap_end e = {it->sess->id, it->end_time, it->end_reason};
		d4_ap_put_end(own, &e);
		r->started = 0;
		return write_msg(an, own, D4_AP_END_LEN, NULL, 0);
	}
	struct d4_ap_start sm;
	size_t start_len = started ? 0 : start_msg(it->sess, &sm);
	uint8_t *own = malloc(start_len + D4_AP_DATA_HEAD);
	if (own == NULL)
		return -1;
	if (!started) {
		d4_ap_put_start(own, &sm);
		if (r)
			r->started = an->incarnation;
	}
	it->seq = an->next_seq++;
	d4_ap_put_data_head(own + start_len, it->sess->id, it->seq, it->blob->len);
	an->inflight += it->blob->len;
	an->q->delivered++;
	an->q->dirty = true;
	return write_msg(an, own, start_len + D4_AP_DATA_HEAD, it->blob, it->seq);
}

void analyzer_pump(struct analyzer *an)
{
	uint64_t window = D(an)->conf.window;
	analyzer_refill(an);
	while (an->state == AN_RUNNING && an->sock_open && an->unsent && !an->unsent->on_disk &&
	       queue_delivering(an->q) && an->inflight < window &&
	       uv_stream_get_write_queue_size((uv_stream_t *)&an->sock) < window) {
		struct item *it = an->unsent;
		an->unsent = it->next;
		it->sent = true;
		if (write_item(an, it) != 0) {
			analyzer_kill(an, "cannot write to the analyzer");
			return;
		}
	}
	pump_end_trim(an);
}

/* ENDs at the head that are written are done with. */
static void pump_end_trim(struct analyzer *an)
{
	while (an->head && an->head->sent && an->head->kind == ITEM_END) {
		struct item *it = an->head;
		unlink_item(an, it);
		item_free(it);
	}
}

static void list_append(struct analyzer *an, struct item *it)
{
	it->prev = an->tail;
	it->next = NULL;
	if (an->tail)
		an->tail->next = it;
	else
		an->head = it;
	an->tail = it;
	if (an->unsent == NULL)
		an->unsent = it;
	an->n_items++;
}

void analyzer_push(struct analyzer *an, struct item *it)
{
	list_append(an, it);
	if (it->kind == ITEM_DATA)
		an->held += it->blob->len;
	analyzer_pump(an);
}

/* Segments of an eighth of the limit, 64 KiB to 64 MiB: a full spool is a handful of files. */
static uint64_t segment_size(uint64_t spool)
{
	uint64_t s = spool / 8;
	if (s < (64u << 10))
		s = 64u << 10;
	if (s > (64u << 20))
		s = 64u << 20;
	return s;
}

int analyzer_push_spooled(struct analyzer *an, struct item *it, struct blob *b)
{
	struct queue *q = an->q;
	char err[SPOOL_DIR_MAX + 256], idx[12];
	uint64_t before = an->spool.bytes;

	snprintf(idx, sizeof(idx), "%u", an->index);
	an->spool.seg_max = segment_size(q->conf.spool);
	/* a drop-oldest queue does not hold back ingest's acknowledgement, spooled or not */
	if (q->conf.when_full != WHEN_FULL_DROP_OLDEST && blob_hold(b, &it->hold) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (spool_append(&an->spool, it->sess->id, b, err, sizeof(err)) != 0) {
		slothold_release(it->hold);
		it->hold = NULL;
		goto fail;
	}
	q->spooled += an->spool.bytes - before;
	q->dirty = true;
	it->on_disk = true;
	it->disk_len = (uint32_t)b->len;
	list_append(an, it);
	if (an->disk_head == NULL)
		an->disk_head = it;
	an->n_disk++;
	if (an->disk_since_ms == 0) {
		an->disk_since_ms = dispatch_now_ms(D(an));
		an->spooled_total = 0;
		d4_log(D4_LOG_INFO, "spool-start", "queue", q->conf.name, "instance", idx, "dir",
		       an->spool.dir, NULL);
	}
	an->spooled_total++;
	analyzer_pump(an); /* memory may have room for what is on disk */
	return 0;
fail:
	/* the record stays in memory and the queue's when_full decides; the spool rests a while */
	q->spool_errors++;
	q->spool_retry_ms = dispatch_now_ms(D(an)) + SPOOL_RETRY_MS;
	d4_log(D4_LOG_ERR, "spool-write-failed", "queue", q->conf.name, "instance", idx, "error",
	       err, NULL);
	queue_error(q, err);
	return -1;
}

/* Reads the disk head back into memory; a record that cannot be read is dropped, counted. */
static void load(struct analyzer *an, struct item *it)
{
	struct queue *q = an->q;
	char err[SPOOL_DIR_MAX + 256];
	struct blob *b = NULL;
	uint64_t before = an->spool.bytes;
	int rc = spool_read(&an->spool, it->sess->id, it->disk_len, &b, err, sizeof(err));
	q->spooled -= before - an->spool.bytes;
	q->dirty = true;
	if (rc != 0) {
		char idx[12];
		snprintf(idx, sizeof(idx), "%u", an->index);
		d4_log(D4_LOG_ERR, "spool-read-failed", "queue", q->conf.name, "instance", idx,
		       "error", err, NULL);
		queue_error(q, err);
		q->spool_errors++;
		q->dropped++;
		unlink_item(an, it);
		item_free(it);
		spool_stopped_maybe(an);
		return;
	}
	an->disk_head = next_on_disk(it->next);
	an->n_disk--;
	it->on_disk = false;
	it->blob = b;
	b->hold = it->hold; /* the slot now waits for this blob */
	it->hold = NULL;
	an->held += b->len;
	q->in_memory += b->len;
	spool_stopped_maybe(an);
}

/* Past the memory limit, a record is still read back when delivery waits for it and nothing
 * is in flight: no acknowledgement would come to free memory, so this instance would stall
 * (the memory may be full of other instances' records, or of records kept there after a
 * spool write error, behind this one). */
void analyzer_refill(struct analyzer *an)
{
	struct queue *q = an->q;
	/* a paused queue does not deliver: reading past the limit would not unstall anything */
	while (an->disk_head &&
	       (q->in_memory + an->disk_head->disk_len <= q->conf.memory ||
	        (an->unsent == an->disk_head && an->inflight == 0 && queue_delivering(q))))
		load(an, an->disk_head);
}

/* ---- reading ---- */

static void sock_closed_cb(uv_handle_t *h)
{
	struct analyzer *an = h->data;
	an->sock_open = false;
	after_exit(an);
}

static void sock_close(struct analyzer *an)
{
	if (an->sock_open && !uv_is_closing((uv_handle_t *)&an->sock))
		uv_close((uv_handle_t *)&an->sock, sock_closed_cb);
}

static void kill_timer_cb(uv_timer_t *t)
{
	struct analyzer *an = t->data;
	if (an->proc_live)
		analyzer_kill(an, an->state == AN_STARTING ? "no REGISTER in time"
		                                           : "did not exit in time");
	else
		sock_close(an);
}

static void on_message(struct analyzer *an, const struct d4_ap_msg *m)
{
	char buf[128];
	switch (m->kind) {
	case D4_AP_REGISTER:
		if (an->state != AN_STARTING) {
			analyzer_kill(an, "protocol: REGISTER twice");
			return;
		}
		if (m->u.reg.version != D4_AP_VERSION) {
			snprintf(buf, sizeof(buf), "protocol: REGISTER with version %u, we speak %u",
			         m->u.reg.version, D4_AP_VERSION);
			analyzer_kill(an, buf);
			return;
		}
		an->no_ack = (m->u.reg.flags & D4_AP_REGISTER_NO_ACK) != 0;
		snprintf(an->name, sizeof(an->name), "%.*s",
		         (int)(m->u.reg.name.len < 63 ? m->u.reg.name.len : 63), m->u.reg.name.p);
		an->state = AN_RUNNING;
		uv_timer_stop(&an->timer);
		an_log(an, D4_LOG_INFO, "analyzer-ready", "name", an->name);
		an->q->dirty = true;
		analyzer_pump(an);
		return;
	case D4_AP_ACK:
		if (an->state != AN_RUNNING && an->state != AN_BYE) {
			analyzer_kill(an, "protocol: ACK before REGISTER");
			return;
		}
		if (an->no_ack)
			return; /* it acknowledges although it need not: harmless */
		if (m->u.seq < an->acked_seq || m->u.seq >= an->next_seq) {
			snprintf(buf, sizeof(buf), "protocol: ACK %" PRIu64 " outside [%" PRIu64
			         ", %" PRIu64 "]", m->u.seq, an->acked_seq, an->next_seq - 1);
			analyzer_kill(an, buf);
			return;
		}
		ack_upto(an, m->u.seq);
		analyzer_pump(an);
		return;
	case D4_AP_BYE:
		an_log(an, D4_LOG_INFO, "analyzer-bye", "msg", "the analyzer says goodbye");
		return;
	default:
		snprintf(buf, sizeof(buf), "protocol: unexpected %s from the analyzer",
		         d4_ap_kind_name(m->kind));
		analyzer_kill(an, buf);
		return;
	}
}

static void sock_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct analyzer *an = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)an->q->d->read_buf, sizeof(an->q->d->read_buf));
}

static void sock_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct analyzer *an = s->data;
	if (nread < 0) {
		uv_read_stop(s);
		an->sock_eof = true;
		if (!an->proc_live) {
			sock_close(an);
		} else {
			/* it closed its input: it is exiting, or it will be made to */
			uv_timer_start(&an->timer, kill_timer_cb, D(an)->conf.bye_timeout_ms, 0);
		}
		return;
	}
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t len = (size_t)nread;
	while (len > 0) {
		struct d4_ap_msg m;
		const char *why = NULL;
		size_t used = 0;
		enum d4_ap_status st = d4_ap_reader_feed(&an->reader, p, len, &used, &m, &why);
		p += used;
		len -= used;
		if (st == D4_AP_BAD) {
			char msg[160];
			snprintf(msg, sizeof(msg), "protocol: %s", why);
			uv_read_stop(s);
			analyzer_kill(an, msg);
			return;
		}
		if (st == D4_AP_NEED_MORE)
			break;
		on_message(an, &m);
		if (!an->sock_open || uv_is_closing((uv_handle_t *)s))
			return;
	}
	queues_update_pause(D(an));
}

/* ---- the output pipe ---- */

static void log_line(struct logpipe *lp)
{
	lp->line[lp->len] = '\0';
	if (lp->len > 0)
		d4_log(D4_LOG_INFO, "analyzer-output", "queue", lp->queue, "analyzer", lp->who, "line",
		       lp->line, NULL);
	lp->len = 0;
}

static void logpipe_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void log_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct logpipe *lp = h->data;
	(void)suggested;
	*buf = uv_buf_init(lp->rbuf, sizeof(lp->rbuf));
}

static void log_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct logpipe *lp = s->data;
	if (nread < 0) {
		log_line(lp);
		uv_close((uv_handle_t *)s, logpipe_closed_cb);
		return;
	}
	for (ssize_t i = 0; i < nread; i++) {
		char c = buf->base[i];
		if (c == '\n') {
			log_line(lp);
			continue;
		}
		lp->line[lp->len++] = c;
		if (lp->len == LOG_LINE_MAX)
			log_line(lp);
	}
}

static int start_logpipe(struct analyzer *an, int fd)
{
	struct logpipe *lp = calloc(1, sizeof(*lp));
	if (lp == NULL)
		return -1;
	snprintf(lp->queue, sizeof(lp->queue), "%s", an->q->conf.name);
	snprintf(lp->who, sizeof(lp->who), "%u/%d", an->index, an->pid);
	if (uv_pipe_init(D(an)->loop, &lp->pipe, 0) != 0) {
		free(lp);
		return -1;
	}
	lp->pipe.data = lp;
	if (uv_pipe_open(&lp->pipe, fd) != 0 ||
	    uv_read_start((uv_stream_t *)&lp->pipe, log_alloc_cb, log_read_cb) != 0) {
		uv_close((uv_handle_t *)&lp->pipe, logpipe_closed_cb);
		return -1;
	}
	return 0;
}

/* ---- the process ---- */

static void proc_closed_cb(uv_handle_t *h)
{
	struct analyzer *an = h->data;
	an->proc_live = false;
	an->pid = 0;
	if (an->sock_eof)
		sock_close(an);
	after_exit(an);
}

static void exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
	struct analyzer *an = p->data;
	char why[96];
	bool expected = an->stop || an->restart_now || D(an)->byes_sent;
	if (term_signal)
		snprintf(why, sizeof(why), "killed by signal %d", term_signal);
	else
		snprintf(why, sizeof(why), "exit status %lld", (long long)status);
	an_log(an, expected ? D4_LOG_INFO : D4_LOG_WARN, "analyzer-exited", "reason", why);
	an->pid = 0; /* nothing left to kill: later write errors are only echoes of this */
	if (!expected)
		queue_error(an->q, why);
	uv_close((uv_handle_t *)p, proc_closed_cb);
	/* the socket reaches EOF after its last ACKs; do not wait for it for long */
	if (an->sock_open)
		uv_timer_start(&an->timer, kill_timer_cb, EXIT_EOF_WAIT_MS, 0);
}

static void backoff_cb(uv_timer_t *t)
{
	spawn(t->data);
}

/* Both the process and the socket are closed: decide what comes next. */
static void after_exit(struct analyzer *an)
{
	struct queue *q = an->q;
	if (an->proc_live || an->sock_open)
		return;
	uv_timer_stop(&an->timer);
	/* every item becomes unwritten: the next process gets them all again */
	for (struct item *it = an->head; it; it = it->next) {
		it->sent = false;
		it->seq = 0;
	}
	an->unsent = an->head;
	an->inflight = 0;
	an->next_seq = 1;
	an->acked_seq = 0;
	d4_ap_reader_free(&an->reader);
	d4_ap_reader_init(&an->reader, false);
	q->dirty = true;

	if (an->refs == 0 || an->stop || D(an)->byes_sent) {
		an->state = AN_STOPPED;
		maybe_free(an);
		return;
	}
	if (an->restart_now) {
		an->restart_now = false;
		spawn(an);
		return;
	}
	if (q->failed) {
		an->state = AN_FAILED;
		return;
	}
	if (!queue_count_restart(q)) {
		an->state = AN_FAILED;
		return;
	}
	if (dispatch_now_ms(D(an)) - an->spawned_ms >= STABLE_RUN_MS)
		an->fails = 0;
	an->fails++;
	uint64_t delay = BACKOFF_BASE_MS;
	for (unsigned i = 1; i < an->fails && delay < D(an)->conf.restart_backoff_max_ms; i++)
		delay *= 2;
	if (delay > D(an)->conf.restart_backoff_max_ms)
		delay = D(an)->conf.restart_backoff_max_ms;
	char ms[24];
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)delay);
	an_log(an, D4_LOG_NOTICE, "analyzer-restart", "delay_ms", ms);
	an->state = AN_BACKOFF;
	uv_timer_start(&an->timer, backoff_cb, delay, 0);
}

static int set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static void spawn(struct analyzer *an)
{
	struct queue *q = an->q;
	struct dispatch *d = q->d;
	int sv[2] = {-1, -1}, lp[2] = {-1, -1};
	char err[160];
	int rc;

	if (an->proc_live || an->sock_open || d->byes_sent || an->stop)
		return;
	an->incarnation++;
	an->sock_eof = false;
	an->spawned_ms = dispatch_now_ms(d);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe(lp) != 0 ||
	    set_cloexec(lp[0]) != 0 || set_cloexec(lp[1]) != 0) {
		snprintf(err, sizeof(err), "socketpair/pipe: %s", strerror(errno));
		goto fail;
	}
	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_INHERIT_FD;
	stdio[0].data.fd = sv[1];
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = lp[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = lp[1];
	uv_process_options_t o;
	memset(&o, 0, sizeof(o));
	o.exit_cb = exit_cb;
	o.file = q->conf.argv[0];
	o.args = q->conf.argv;
	o.stdio_count = 3;
	o.stdio = stdio;
	an->proc.data = an;
	rc = uv_spawn(d->loop, &an->proc, &o);
	an->proc_live = true; /* initialised either way: it must be closed */
	close(sv[1]);
	close(lp[1]);
	sv[1] = lp[1] = -1;
	if (rc != 0) {
		snprintf(err, sizeof(err), "cannot start %s: %s", q->conf.argv[0], uv_strerror(rc));
		an_log(an, D4_LOG_ERR, "analyzer-spawn-failed", "error", err);
		queue_error(q, err);
		close(sv[0]);
		close(lp[0]);
		an->state = AN_STARTING; /* counted as a death below */
		uv_close((uv_handle_t *)&an->proc, proc_closed_cb);
		return;
	}
	an->pid = an->proc.pid;
	if (start_logpipe(an, lp[0]) != 0)
		close(lp[0]);
	lp[0] = -1;
	if ((rc = uv_pipe_init(d->loop, &an->sock, 0)) != 0 || (an->sock.data = an, 0) ||
	    (rc = uv_pipe_open(&an->sock, sv[0])) != 0) {
		close(sv[0]);
		analyzer_kill(an, "cannot set up its socket");
		return;
	}
	an->sock_open = true;
	sv[0] = -1;
	if ((rc = uv_read_start((uv_stream_t *)&an->sock, sock_alloc_cb, sock_read_cb)) != 0) {
		analyzer_kill(an, uv_strerror(rc));
		sock_close(an);
		return;
	}

	/* D4AP, HELLO with the queue's params */
	struct d4_ap_param params[QUEUE_MAX_PARAMS];
	for (unsigned i = 0; i < q->conf.n_params; i++) {
		params[i].key.p = q->conf.param_keys[i];
		params[i].key.len = strlen(q->conf.param_keys[i]);
		params[i].value.p = q->conf.param_values[i];
		params[i].value.len = strlen(q->conf.param_values[i]);
	}
	size_t name_len = strlen(q->conf.name);
	size_t hl = d4_ap_hello_len(name_len, params, q->conf.n_params);
	uint8_t *hello = malloc(D4_AP_MAGIC_LEN + hl);
	if (hello == NULL) {
		analyzer_kill(an, "out of memory");
		return;
	}
	memcpy(hello, D4_AP_MAGIC, D4_AP_MAGIC_LEN);
	d4_ap_put_hello(hello + D4_AP_MAGIC_LEN, D4_AP_VERSION, q->conf.name, name_len, params,
	                q->conf.n_params);
	if (write_msg(an, hello, D4_AP_MAGIC_LEN + hl, NULL, 0) != 0) {
		analyzer_kill(an, "cannot write HELLO");
		return;
	}
	an->state = AN_STARTING;
	uv_timer_start(&an->timer, kill_timer_cb, d->conf.handshake_timeout_ms, 0);
	an_log(an, D4_LOG_INFO, "analyzer-started", "command", q->conf.command);
	q->dirty = true;
	return;
fail:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (lp[i] >= 0)
			close(lp[i]);
	}
	an_log(an, D4_LOG_ERR, "analyzer-spawn-failed", "error", err);
	queue_error(q, err);
	an->state = AN_STARTING;
	after_exit(an); /* nothing is open: counts as a death, backs off */
}

void analyzer_start(struct analyzer *an)
{
	if (an->state == AN_STOPPED && !an->q->failed)
		spawn(an);
}

void analyzer_bye(struct analyzer *an, bool restart)
{
	if (restart)
		an->restart_now = true;
	else
		an->stop = true;
	switch (an->state) {
	case AN_RUNNING: {
		uint8_t *own = malloc(D4_AP_BYE_LEN);
		if (own == NULL || (d4_ap_put_bye(own), write_msg(an, own, D4_AP_BYE_LEN, NULL, 0)) != 0) {
			analyzer_kill(an, "cannot write BYE");
			return;
		}
		an->state = AN_BYE;
		uv_timer_start(&an->timer, kill_timer_cb, D(an)->conf.bye_timeout_ms, 0);
		return;
	}
	case AN_STARTING:
		analyzer_kill(an, restart ? "restarted before its REGISTER" : "stopped before its REGISTER");
		return;
	case AN_BACKOFF:
	case AN_STOPPED:
	case AN_FAILED:
		uv_timer_stop(&an->timer);
		an->state = AN_STOPPED;
		if (restart) {
			an->restart_now = false;
			if (!an->q->failed)
				spawn(an);
		}
		return;
	case AN_BYE:
		return;
	}
}

void analyzer_release(struct analyzer *an)
{
	an->stop = true;
	analyzer_drop_all(an);
	spool_clear(&an->spool);
	if (an->proc_live && an->pid > 0)
		(void)uv_process_kill(&an->proc, SIGKILL);
	if (an->timer_init && !uv_is_closing((uv_handle_t *)&an->timer))
		uv_close((uv_handle_t *)&an->timer, timer_closed_cb);
	analyzer_unref(an);
}
