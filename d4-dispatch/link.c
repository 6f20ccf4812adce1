/*
 * link.c — the ingest side of d4-dispatch: the dispatch socket, one
 * connection per ingest worker, and the sessions they announce
 * (docs/ipc.md).
 *
 * Every connection starts with HELLO; what comes before RESUME is the
 * replay (OPEN with the replay flag, META) and is not counted; RESUME sets
 * the running offset, and every later message adds its length. A message is
 * "taken in" once it is in the queues of every instance it is routed to;
 * the running offset is then acknowledged, once per read callback and at
 * least every dispatch.ack_interval bytes.
 *
 * An ingest process keeps its instance id across reconnects, so the stream
 * (instance, worker) outlives a connection: after a reconnect, counted
 * messages below the highest offset already processed are repeats (taken in
 * but not acknowledged before the link broke) and are skipped, so a queue
 * sees each frame once (bench/d4-sink.c does the same).
 *
 * Sessions are keyed by (instance, worker, session id). A closed session
 * stays in the table for a while so that a replayed OPEN for it is the
 * no-op the protocol asks for and not a new session that never ends; the
 * sessions of a stream whose ingest never comes back are ended after
 * STREAM_GONE_MS. Malformed messages close the connection (the peer is our
 * own process: it is a bug, and ingest reconnects and replays).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "d4_log.h"
#include "dispatch.h"

#define CLOSED_KEEP_MS 300000u /* a closed session is remembered this long */
#define STREAM_GONE_MS 120000u /* an ingest stream without connection this long is over */
#define END_LINK_LOST ((uint8_t)D4_R_TRUNCATED)

/*
 * One ingest worker's counted stream, across its reconnections. Every
 * counted message taken in gets a slot (its end offset) in a FIFO; a slot is
 * done when the message needs nothing more: at once for OPEN, META and CLOSE
 * and for a frame no queue takes, and for a frame when the last queue is
 * done with it (acknowledged by its analyzer, written to one that needs no
 * acknowledgement, or dropped and counted). Ingest is acknowledged up to the
 * end of the longest done prefix, so what an analyzer has not acknowledged
 * is still held by ingest: if dispatch dies, nothing is lost (ingest sends it
 * again). The stream lives while it is listed or a blob holds one of its
 * slots.
 */
struct slot {
	uint64_t end;
	bool done;
};

struct stream {
	struct stream *next;
	struct dispatch *d;     /* told when acknowledgements are due */
	uint64_t instance;
	uint16_t worker;
	uint64_t seen;          /* highest counted offset processed */
	unsigned conns;
	uint64_t disconnected_ms;
	unsigned refs;          /* blobs holding a slot, plus one while listed */
	struct slot *ring;      /* slots not yet acknowledged, oldest at head */
	size_t cap, head, len;
	uint64_t first_id;      /* id of ring[head] */
	uint64_t done_through;  /* every counted byte before it is done: what ACK says */
};

struct ilink {
	uv_pipe_t pipe; /* first: the handle's address is the link's */
	struct dispatch *d;
	struct ilink *prev, *next;
	unsigned id;
	struct d4_ipc_reader reader;
	struct stream *st;
	bool hello, counting, closing, reading;
	uint64_t offset, acked;
};

struct ctl_write {
	uv_write_t req;
	uint8_t buf[D4_IPC_OFFSET_LEN];
};

/* ---- stream slots ---- */

static void stream_unref(struct stream *st)
{
	if (--st->refs == 0) {
		free(st->ring);
		free(st);
	}
}

/* A slot for the counted message ending at `end`; its id, or UINT64_MAX without memory. */
static uint64_t slot_push(struct stream *st, uint64_t end, bool done)
{
	if (st->len == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 1024;
		struct slot *r = malloc(cap * sizeof(*r));
		if (r == NULL)
			return UINT64_MAX;
		for (size_t i = 0; i < st->len; i++)
			r[i] = st->ring[(st->head + i) % st->cap];
		free(st->ring);
		st->ring = r;
		st->cap = cap;
		st->head = 0;
	}
	st->ring[(st->head + st->len) % st->cap] = (struct slot){end, done};
	st->len++;
	return st->first_id + st->len - 1;
}

static void slot_done(struct stream *st, uint64_t id)
{
	if (id < st->first_id || id - st->first_id >= st->len)
		return;
	st->ring[(st->head + (id - st->first_id)) % st->cap].done = true;
	while (st->len && st->ring[st->head].done) {
		st->done_through = st->ring[st->head].end;
		st->head = (st->head + 1) % st->cap;
		st->len--;
		st->first_id++;
		st->d->acks_due = true;
	}
}

/* ---- blobs ---- */

struct blob *blob_alloc(size_t len)
{
	struct blob *b = malloc(sizeof(*b) + len);
	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->unheld = 0;
	b->slot_released = false;
	b->st = NULL;
	b->slot = 0;
	b->hold = NULL;
	b->len = len;
	return b;
}

struct blob *blob_new(const uint8_t *header, const uint8_t *payload, size_t payload_len)
{
	struct blob *b = blob_alloc(D4_HEADER_SIZE + payload_len);
	if (b == NULL)
		return NULL;
	memcpy(b->data, header, D4_HEADER_SIZE);
	if (payload_len)
		memcpy(b->data + D4_HEADER_SIZE, payload, payload_len);
	return b;
}

void blob_ref(struct blob *b)
{
	b->refs++;
}

/* The slot is done (or the blob's share of its holder let go) once only references that do
 * not hold it are left. */
static void blob_check_slot(struct blob *b)
{
	if (b->slot_released || b->refs != b->unheld || (b->st == NULL && b->hold == NULL))
		return;
	b->slot_released = true;
	if (b->st) {
		slot_done(b->st, b->slot);
	} else {
		slothold_release(b->hold);
		b->hold = NULL;
	}
}

void blob_unref(struct blob *b)
{
	if (b == NULL)
		return;
	if (--b->refs != 0) {
		blob_check_slot(b);
		return;
	}
	blob_check_slot(b);
	if (b->st)
		stream_unref(b->st);
	free(b);
}

void blob_unhold(struct blob *b)
{
	b->unheld++;
	blob_check_slot(b);
}

void blob_rehold(struct blob *b)
{
	b->unheld--;
}

/*
 * The slot moves from the blob into a holder on the first call (most frames
 * are never spooled and never pay for one); the blob then holds the holder
 * like any spooled copy does.
 */
int blob_hold(struct blob *b, struct slothold **out)
{
	*out = NULL;
	if (b->slot_released)
		return 0;
	if (b->hold == NULL && b->st != NULL) {
		struct slothold *h = malloc(sizeof(*h));
		if (h == NULL)
			return -1;
		h->refs = 1;
		h->st = b->st;
		h->slot = b->slot;
		b->st = NULL;
		b->hold = h;
	}
	if (b->hold) {
		b->hold->refs++;
		*out = b->hold;
	}
	return 0;
}

void slothold_release(struct slothold *h)
{
	if (h == NULL || --h->refs != 0)
		return;
	slot_done(h->st, h->slot);
	stream_unref(h->st);
	free(h);
}

/* The frame's acknowledgement waits for this blob. */
static void blob_hold_slot(struct blob *b, struct stream *st, uint64_t slot)
{
	b->st = st;
	b->slot = slot;
	st->refs++;
}

/* ---- sessions ---- */

static size_t sess_hash(uint64_t instance, uint16_t worker, uint64_t id)
{
	uint64_t h = instance ^ ((uint64_t)worker << 48) ^ (id * 0x9e3779b97f4a7c15ull);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (size_t)h;
}

static void session_free(struct dsession *s)
{
	for (unsigned i = 0; i < s->n_routes; i++) {
		if (!s->closed)
			s->routes[i].an->routes--;
		analyzer_unref(s->routes[i].an);
	}
	for (unsigned i = 0; i < s->n_held; i++)
		blob_unref(s->held[i]);
	free(s->held);
	free(s->routes);
	free(s->meta_json);
	resume_end(NULL, &s->resume, s->closed_ms / 1000);
	free(s);
}

void session_unref(struct dsession *s)
{
	if (--s->refs == 0)
		session_free(s);
}

struct route *session_route(struct dsession *s, const struct analyzer *an)
{
	for (unsigned i = 0; i < s->n_routes; i++)
		if (s->routes[i].an == an)
			return &s->routes[i];
	return NULL;
}

static struct dsession *sess_find(struct dispatch *d, const struct stream *st, uint64_t id)
{
	if (d->stab_cap == 0)
		return NULL;
	size_t i = sess_hash(st->instance, st->worker, id) & (d->stab_cap - 1);
	for (struct dsession *s = d->stab[i]; s; s = s->hnext)
		if (s->id == id && s->instance == st->instance && s->worker == st->worker)
			return s;
	return NULL;
}

static int stab_grow(struct dispatch *d)
{
	size_t cap = d->stab_cap ? d->stab_cap * 2 : 1024;
	struct dsession **tab = calloc(cap, sizeof(*tab));
	if (tab == NULL)
		return -1;
	for (size_t i = 0; i < d->stab_cap; i++) {
		for (struct dsession *s = d->stab[i], *next; s; s = next) {
			next = s->hnext;
			size_t j = sess_hash(s->instance, s->worker, s->id) & (cap - 1);
			s->hnext = tab[j];
			tab[j] = s;
		}
	}
	free(d->stab);
	d->stab = tab;
	d->stab_cap = cap;
	return 0;
}

static struct dsession *sess_add(struct dispatch *d, const struct stream *st, uint64_t id)
{
	if (d->stab_used + 1 > d->stab_cap && stab_grow(d) != 0)
		return NULL;
	struct dsession *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->instance = st->instance;
	s->worker = st->worker;
	s->id = id;
	s->refs = 1;
	s->in_table = true;
	size_t i = sess_hash(st->instance, st->worker, id) & (d->stab_cap - 1);
	s->hnext = d->stab[i];
	d->stab[i] = s;
	d->stab_used++;
	return s;
}

static void sess_remove(struct dispatch *d, struct dsession *s)
{
	size_t i = sess_hash(s->instance, s->worker, s->id) & (d->stab_cap - 1);
	for (struct dsession **pp = &d->stab[i]; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			d->stab_used--;
			s->in_table = false;
			session_unref(s);
			return;
		}
	}
}

/* Routes a session and delivers what it held while waiting for its META. */
static int sess_route(struct dispatch *d, struct dsession *s)
{
	if (route_session(d, s) != 0)
		return -1;
	s->routed = true;
	for (unsigned i = 0; i < s->n_held; i++) {
		for (unsigned r = 0; r < s->n_routes; r++)
			queue_push_data(s->routes[r].an, s, s->held[i]);
		blob_unref(s->held[i]);
	}
	s->n_held = 0;
	free(s->held);
	s->held = NULL;
	s->held_cap = 0;
	return 0;
}

static void sess_end(struct dispatch *d, struct dsession *s, uint64_t time, uint8_t reason)
{
	if (s->closed)
		return;
	if (!s->routed)
		(void)sess_route(d, s); /* a 254 session that never sent its META: by type 2 */
	s->closed = true;
	s->closed_ms = dispatch_now_ms(d);
	if (s->resume.skipped > 0) {
		char id[20], n[24];
		snprintf(id, sizeof(id), "%016" PRIx64, s->id);
		snprintf(n, sizeof(n), "%" PRIu64, s->resume.skipped);
		d4_log(D4_LOG_INFO, "resent-frames-skipped", "session", id, "frames", n, NULL);
	}
	resume_end(d->resume, &s->resume, s->closed_ms / 1000);
	for (unsigned r = 0; r < s->n_routes; r++) {
		queue_push_end(s->routes[r].an, s, time, reason);
		s->routes[r].an->routes--;
	}
}

/* ---- messages ---- */

static void link_close(struct ilink *l);

static int on_open(struct dispatch *d, struct ilink *l, const struct d4_ipc_open *o)
{
	struct dsession *s = sess_find(d, l->st, o->session);
	if (s != NULL) {
		if (!(o->flags & D4_IPC_OPEN_REPLAY) && l->counting)
			d4_logf(D4_LOG_WARN, "ingest-anomaly", "second open of session %016" PRIx64,
			        o->session);
		return 0; /* a known session: a no-op (docs/ipc.md) */
	}
	if ((s = sess_add(d, l->st, o->session)) == NULL)
		return -1;
	s->open = *o;
	s->open.flags &= (uint8_t)~D4_IPC_OPEN_REPLAY;
	s->type = o->type;
	/* a 254 session opens with its type-2 frames: routed by meta-type once META came */
	if (o->type != D4_TYPE_META_HEADER)
		return sess_route(d, s);
	return 0;
}

static int on_meta(struct dispatch *d, struct ilink *l, const struct d4_ipc_meta *m)
{
	struct dsession *s = sess_find(d, l->st, m->session);
	if (s == NULL || s->closed) {
		d4_logf(D4_LOG_WARN, "ingest-anomaly", "meta for unknown session %016" PRIx64,
		        m->session);
		return 0;
	}
	if (s->routed || m->meta_type_len > D4_META_TYPE_MAX)
		return 0; /* a replayed META of a session already routed */
	memcpy(s->meta_type, m->meta_type, m->meta_type_len);
	s->meta_type[m->meta_type_len] = '\0';
	if (m->json_len) {
		if ((s->meta_json = malloc(m->json_len)) == NULL)
			return -1;
		memcpy(s->meta_json, m->json, m->json_len);
		s->meta_json_len = m->json_len;
	}
	s->type = D4_TYPE_META_DEFINED;
	return sess_route(d, s);
}

static int on_frame(struct dispatch *d, struct ilink *l, const struct d4_ipc_frame *f,
                    uint64_t slot)
{
	struct dsession *s = sess_find(d, l->st, f->session);
	if (s == NULL || s->closed) {
		slot_done(l->st, slot);
		d->unknown_session_frames++;
		if (d->unknown_session_frames <= 20)
			d4_logf(D4_LOG_WARN, "ingest-anomaly", "frame for %s session %016" PRIx64
			        " dropped", s ? "a closed" : "an unknown", f->session);
		return 0;
	}
	/* a frame a reconnecting sensor sent again, already delivered: acknowledged, not routed */
	if (!resume_frame(d->resume, &s->resume, s->open.uuid, s->meta_type, f->header,
	                  dispatch_now_ms(d) / 1000)) {
		slot_done(l->st, slot);
		return 0;
	}
	d->frames++;
	d->bytes += f->payload_len;
	if (d->taps)
		tap_frame(d, f->header, f->payload, f->payload_len);
	if (!s->routed) {
		if (s->n_held == s->held_cap) {
			unsigned cap = s->held_cap ? s->held_cap * 2 : 4;
			struct blob **h = realloc(s->held, cap * sizeof(*h));
			if (h == NULL)
				return -1;
			s->held = h;
			s->held_cap = cap;
		}
		struct blob *b = blob_new(f->header, f->payload, f->payload_len);
		if (b == NULL)
			return -1;
		blob_hold_slot(b, l->st, slot);
		s->held[s->n_held++] = b;
		return 0;
	}
	if (s->n_routes == 0) {
		slot_done(l->st, slot);
		return 0;
	}
	struct blob *b = blob_new(f->header, f->payload, f->payload_len);
	if (b == NULL)
		return -1;
	blob_hold_slot(b, l->st, slot);
	for (unsigned r = 0; r < s->n_routes; r++)
		queue_push_data(s->routes[r].an, s, b);
	blob_unref(b);
	return 0;
}

static int on_close_msg(struct dispatch *d, struct ilink *l, const struct d4_ipc_close *c)
{
	struct dsession *s = sess_find(d, l->st, c->session);
	if (s == NULL || s->closed)
		return 0;
	sess_end(d, s, c->time, c->reason);
	return 0;
}

static struct stream *stream_get(struct dispatch *d, uint64_t instance, uint16_t worker)
{
	for (struct stream *st = d->streams; st; st = st->next)
		if (st->instance == instance && st->worker == worker)
			return st;
	struct stream *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->refs = 1;
	st->d = d;
	st->instance = instance;
	st->worker = worker;
	st->next = d->streams;
	d->streams = st;
	return st;
}

/* One message; -1 closes the connection. */
static int on_message(struct dispatch *d, struct ilink *l, const struct d4_ipc_msg *m)
{
	if (m->kind == D4_IPC_HELLO) {
		if (l->hello || m->u.hello.version != D4_IPC_VERSION) {
			d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: %s", l->id,
			        l->hello ? "second hello" : "unsupported link version");
			return -1;
		}
		if ((l->st = stream_get(d, m->u.hello.instance, m->u.hello.worker)) == NULL)
			return -1;
		l->st->conns++;
		l->hello = true;
		char w[8], inst[20];
		snprintf(w, sizeof(w), "%u", m->u.hello.worker);
		snprintf(inst, sizeof(inst), "%016" PRIx64, m->u.hello.instance);
		d4_log(D4_LOG_INFO, "ingest-connected", "worker", w, "instance", inst, NULL);
		return 0;
	}
	if (!l->hello) {
		d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: %s before hello", l->id,
		        d4_ipc_kind_name(m->kind));
		return -1;
	}
	if (m->kind == D4_IPC_RESUME) {
		if (l->counting) {
			d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: second resume", l->id);
			return -1;
		}
		l->counting = true;
		l->offset = l->acked = m->u.offset;
		/* a stream new to us starts where ingest says its acknowledged part ends */
		if (l->st->len == 0 && l->st->done_through < m->u.offset)
			l->st->done_through = l->st->seen = m->u.offset;
		return 0;
	}
	uint64_t slot = UINT64_MAX;
	if (l->counting) {
		l->offset += m->wire_len;
		if (l->offset <= l->st->seen)
			return 0; /* taken in before a reconnect, not acknowledged then */
		l->st->seen = l->offset;
		slot = slot_push(l->st, l->offset, m->kind != D4_IPC_FRAME);
		if (slot == UINT64_MAX)
			return -1;
		if (m->kind != D4_IPC_FRAME)
			slot_done(l->st, slot);
	} else if (m->kind != D4_IPC_OPEN && m->kind != D4_IPC_META) {
		d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: %s before resume", l->id,
		        d4_ipc_kind_name(m->kind));
		return -1;
	}
	switch (m->kind) {
	case D4_IPC_OPEN:
		return on_open(d, l, &m->u.open);
	case D4_IPC_META:
		return on_meta(d, l, &m->u.meta);
	case D4_IPC_FRAME:
		return on_frame(d, l, &m->u.frame, slot);
	case D4_IPC_CLOSE:
		return on_close_msg(d, l, &m->u.close);
	default:
		d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: unexpected %s", l->id,
		        d4_ipc_kind_name(m->kind));
		return -1;
	}
}

/* ---- writing ACK, PAUSE, UNPAUSE ---- */

static void ctl_write_cb(uv_write_t *req, int status)
{
	struct ilink *l = req->data;
	free(req);
	if (status != 0 && status != UV_ECANCELED) {
		d4_logf(D4_LOG_WARN, "ingest-write", "link %u: %s", l->id, uv_strerror(status));
		link_close(l);
	}
}

static int link_send(struct ilink *l, const uint8_t *msg, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);
	int n = uv_try_write((uv_stream_t *)&l->pipe, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN)
		return -1;
	size_t done = n > 0 ? (size_t)n : 0;
	struct ctl_write *w = malloc(sizeof(*w));
	if (w == NULL)
		return -1;
	memcpy(w->buf, msg + done, len - done);
	w->req.data = l;
	b = uv_buf_init((char *)w->buf, (unsigned)(len - done));
	if (uv_write(&w->req, (uv_stream_t *)&l->pipe, &b, 1, ctl_write_cb) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

/* ACK what is done with: never more than this connection has read, never less than before. */
static int link_ack(struct ilink *l)
{
	uint8_t msg[D4_IPC_OFFSET_LEN];
	if (!l->counting || l->closing)
		return 0;
	uint64_t upto = l->st->done_through < l->offset ? l->st->done_through : l->offset;
	if (upto <= l->acked)
		return 0;
	d4_ipc_put_offset(msg, D4_IPC_ACK, upto);
	if (link_send(l, msg, sizeof(msg)) != 0)
		return -1;
	l->acked = upto;
	return 0;
}

void link_send_acks(struct dispatch *d)
{
	if (!d->acks_due)
		return;
	d->acks_due = false;
	for (struct ilink *l = d->links, *next; l; l = next) {
		next = l->next;
		if (link_ack(l) != 0)
			link_close(l);
	}
}

static void ack_check_cb(uv_check_t *c)
{
	link_send_acks(c->data);
}

static int link_send_pause(struct ilink *l, bool paused)
{
	uint8_t msg[D4_IPC_PREFIX];
	d4_ipc_put_empty(msg, paused ? D4_IPC_PAUSE : D4_IPC_UNPAUSE);
	return link_send(l, msg, sizeof(msg));
}

void link_set_pause(struct dispatch *d, bool paused)
{
	if (d->paused == paused)
		return;
	d->paused = paused;
	d4_log(D4_LOG_NOTICE, paused ? "backpressure" : "backpressure-over", "msg",
	       paused ? "a queue is over its memory limit: ingest paused" : "ingest resumed",
	       NULL);
	for (struct ilink *l = d->links, *next; l; l = next) {
		next = l->next;
		if (!l->closing && link_send_pause(l, paused) != 0)
			link_close(l);
	}
}

/* ---- connections ---- */

static void link_closed_cb(uv_handle_t *h)
{
	struct ilink *l = (struct ilink *)h;
	d4_ipc_reader_free(&l->reader);
	free(l);
}

static void link_close(struct ilink *l)
{
	struct dispatch *d = l->d;
	if (l->closing)
		return;
	l->closing = true;
	if (l->prev)
		l->prev->next = l->next;
	else
		d->links = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (l->st && --l->st->conns == 0)
		l->st->disconnected_ms = dispatch_now_ms(d);
	uv_close((uv_handle_t *)&l->pipe, link_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ilink *l = (struct ilink *)h;
	(void)suggested;
	*buf = uv_buf_init((char *)l->d->read_buf, sizeof(l->d->read_buf));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct ilink *l = (struct ilink *)stream;
	struct dispatch *d = l->d;
	if (nread < 0) {
		d4_logf(D4_LOG_INFO, "ingest-disconnected", "link %u: %s", l->id,
		        nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
		link_close(l);
		return;
	}
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t len = (size_t)nread;
	uint64_t unacked_from = l->offset;
	while (len > 0 && !l->closing) {
		struct d4_ipc_msg m;
		const char *why = NULL;
		size_t used = 0;
		enum d4_ipc_status st = d4_ipc_reader_feed(&l->reader, p, len, &used, &m, &why);
		p += used;
		len -= used;
		if (st == D4_IPC_BAD) {
			d4_logf(D4_LOG_ERR, "ingest-protocol", "link %u: %s; closing", l->id, why);
			link_close(l);
			return;
		}
		if (st == D4_IPC_NEED_MORE)
			break;
		if (on_message(d, l, &m) != 0) {
			link_close(l);
			return;
		}
		if (l->offset - unacked_from >= d->conf.ack_bytes) {
			if (link_ack(l) != 0) {
				link_close(l);
				return;
			}
			unacked_from = l->offset;
		}
	}
	if (!l->closing && link_ack(l) != 0)
		link_close(l);
	queues_update_pause(d);
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct dispatch *d = server->data;
	static unsigned next_id;
	if (status != 0) {
		d4_logf(D4_LOG_ERR, "accept", "%s", uv_strerror(status));
		return;
	}
	struct ilink *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return;
	if (uv_pipe_init(d->loop, &l->pipe, 0) != 0) {
		free(l);
		return;
	}
	l->d = d;
	l->id = ++next_id;
	d4_ipc_reader_init(&l->reader);
	l->next = d->links;
	if (d->links)
		d->links->prev = l;
	d->links = l;
	int rc = uv_accept(server, (uv_stream_t *)&l->pipe);
	if (rc == 0 && d->paused && link_send_pause(l, true) != 0)
		rc = UV_EIO;
	if (rc == 0 && !d->stopping)
		rc = uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, read_cb);
	if (rc != 0) {
		d4_logf(D4_LOG_ERR, "accept", "%s", uv_strerror(rc));
		link_close(l);
		return;
	}
	l->reading = !d->stopping;
}

/* Removes a leftover socket file; refuses to remove anything that is not a socket. */
static int remove_stale_socket(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	return unlink(path);
}

int link_listen(struct dispatch *d)
{
	const char *path = d->conf.dispatch_socket;
	char dir[D4_PATH_MAX];
	int rc;

	if (d->resume == NULL &&
	    (d->resume = resume_create(d->conf.resume_window_s, d->conf.resume_frames)) == NULL) {
		d4_logf(D4_LOG_ERR, "listen-failed", "out of memory");
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (d4_mkdir_p(dir, 0700) != 0) {
			d4_logf(D4_LOG_ERR, "listen-failed", "%s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (remove_stale_socket(path) != 0) {
		d4_logf(D4_LOG_ERR, "listen-failed", "%s: %s", path,
		        errno == EEXIST ? "exists and is not a socket" : strerror(errno));
		return -1;
	}
	if ((rc = uv_check_init(d->loop, &d->ack_check)) != 0 ||
	    (rc = uv_check_start(&d->ack_check, ack_check_cb)) != 0)
		goto fail;
	d->ack_check.data = d;
	if ((rc = uv_pipe_init(d->loop, &d->server, 0)) != 0)
		goto fail;
	d->server_open = true;
	d->server.data = d;
	/* the socket is created 0600: only our user may talk to dispatch */
	mode_t old = umask(0177);
	rc = uv_pipe_bind(&d->server, path);
	umask(old);
	if (rc != 0)
		goto fail;
	if (chmod(path, 0600) != 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = uv_listen((uv_stream_t *)&d->server, 128, connection_cb)) != 0)
		goto fail;
	d4_log(D4_LOG_NOTICE, "listening", "socket", path, NULL);
	return 0;
fail:
	d4_logf(D4_LOG_ERR, "listen-failed", "%s: %s", path, uv_strerror(rc));
	return -1;
}

void link_stop_reading(struct dispatch *d)
{
	if (d->server_open) {
		uv_close((uv_handle_t *)&d->server, NULL);
		d->server_open = false;
		(void)unlink(d->conf.dispatch_socket);
	}
	for (struct ilink *l = d->links; l; l = l->next) {
		if (l->reading && uv_read_stop((uv_stream_t *)&l->pipe) == 0)
			l->reading = false;
	}
}

void link_close_all(struct dispatch *d)
{
	while (d->links) {
		(void)link_ack(d->links);
		link_close(d->links);
	}
}

void link_tick(struct dispatch *d)
{
	uint64_t now = dispatch_now_ms(d);
	resume_sweep(d->resume, now / 1000);
	for (struct stream **sp = &d->streams; *sp;) {
		struct stream *st = *sp;
		if (st->conns > 0 || now - st->disconnected_ms < STREAM_GONE_MS) {
			sp = &st->next;
			continue;
		}
		/* ingest went away for good (a new process has a new instance): end its sessions */
		for (size_t i = 0; i < d->stab_cap; i++)
			for (struct dsession *s = d->stab[i]; s; s = s->hnext)
				if (s->instance == st->instance && s->worker == st->worker && !s->closed)
					sess_end(d, s, dispatch_now(), END_LINK_LOST);
		*sp = st->next;
		stream_unref(st);
	}
	for (size_t i = 0; i < d->stab_cap; i++) {
		for (struct dsession *s = d->stab[i], *next; s; s = next) {
			next = s->hnext;
			if (s->closed && now - s->closed_ms > CLOSED_KEEP_MS)
				sess_remove(d, s);
		}
	}
}

void link_free_sessions(struct dispatch *d)
{
	for (size_t i = 0; i < d->stab_cap; i++) {
		/* queue items may keep a session past the table: it lets go of the resume table now */
		for (struct dsession *s = d->stab[i]; s; s = s->hnext)
			resume_end(d->resume, &s->resume, dispatch_now_ms(d) / 1000);
		while (d->stab[i])
			sess_remove(d, d->stab[i]);
	}
	free(d->stab);
	d->stab = NULL;
	d->stab_cap = 0;
	while (d->streams) {
		struct stream *st = d->streams;
		d->streams = st->next;
		stream_unref(st); /* freed once the queues let go of its frames */
	}
	struct resume_stats rs;
	resume_get_stats(d->resume, &rs);
	if (rs.resumed_sessions > 0)
		d4_logf(D4_LOG_INFO, "resent-frames", "%" PRIu64 " sessions began with frames sent "
		        "again after a reconnect: %" PRIu64 " frames (%" PRIu64 " bytes) skipped",
		        rs.resumed_sessions, rs.skipped_frames, rs.skipped_bytes);
	resume_destroy(d->resume);
	d->resume = NULL;
}
