/*
 * link.c — the acknowledged stream from d4-ingest to d4-dispatch (docs/ipc.md).
 *
 * Messages are appended to a chain of output chunks and written to the Unix
 * socket as the loop allows. A chunk is freed only when dispatch has
 * acknowledged every byte of it, so when dispatch dies or restarts nothing
 * is lost: on reconnect ingest says HELLO, replays the announcement (OPEN,
 * META) of every session the unacknowledged part may refer to, sends RESUME
 * with the acknowledged offset, and writes everything after it again.
 * Dispatch may see a frame twice across such a restart (at-least-once), never
 * zero times.
 *
 * Memory is bounded by pausing: when the unacknowledged bytes reach
 * ingest.output_buffer (or dispatch asks with PAUSE), every sensor connection
 * stops being read and TCP pushes back to the sensors; reading resumes below
 * half of it. Sensors wait; nothing is dropped.
 *
 * A closed session stays known here as a "ghost" (its OPEN and META) until
 * its CLOSE is acknowledged, so that a replay can announce it again.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "d4_log.h"
#include "ingest.h"

#define CHUNK_SIZE (1u << 20)
#define RETRY_MIN_MS 100u
#define RETRY_MAX_MS 2000u

struct chunk {
	struct chunk *next;
	uint64_t start; /* stream offset of data[0] */
	size_t len;
	size_t cap;
	unsigned inflight; /* uv_write requests still referring to it */
	uint8_t data[];
};

struct ghost {
	struct ghost *next;
	uint64_t close_end; /* acknowledged past this: forget it */
	struct d4_ipc_open open;
	char *meta_type; /* NULL when the session had no meta header */
	uint8_t *json;
	size_t json_len;
};

struct link {
	struct ingest *ing;
	uv_pipe_t pipe;
	uv_connect_t connect_req;
	uv_timer_t retry;
	bool pipe_init;
	bool connected;
	bool connecting;
	bool destroying;
	unsigned retry_ms;
	struct chunk *head, *tail;
	uint64_t end;     /* offset after the last byte appended */
	uint64_t written; /* offset up to which writes were issued on this connection */
	uint64_t acked;
	struct ghost *ghosts;
	struct d4_ipc_reader reader;
	bool dispatch_paused;
	bool full; /* paused because too much is unacknowledged */
	uint64_t reconnects;
	uint64_t unreachable_logged_ms;
	uint8_t read_buf[4096];
};

struct write_req {
	uv_write_t req;
	struct link *link;
	struct chunk *chunk; /* NULL: `own` holds a buffer to free */
	uint8_t *own;
};

static void try_connect(struct link *l);

uint64_t link_offset(const struct link *l)
{
	return l->end;
}

uint64_t link_acked(const struct link *l)
{
	return l->acked;
}

bool link_connected(const struct link *l)
{
	return l->connected;
}

static void update_pause(struct link *l)
{
	uint64_t unacked = l->end - l->acked;
	uint64_t high = l->ing->conf.output_high;
	if (!l->full && unacked >= high) {
		l->full = true;
		d4_logf(D4_LOG_NOTICE, "backpressure", "%llu bytes not yet taken by dispatch: pausing "
		        "sensors", (unsigned long long)unacked);
	} else if (l->full && unacked < high / 2) {
		l->full = false;
		d4_log(D4_LOG_NOTICE, "backpressure-over", NULL);
	}
	sessions_set_paused(l->ing, l->full || l->dispatch_paused);
}

static void free_chunk_if_done(struct link *l)
{
	while (l->head && l->head->inflight == 0 && l->head->start + l->head->len <= l->acked &&
	       l->head != l->tail) {
		struct chunk *c = l->head;
		l->head = c->next;
		free(c);
	}
	/* the tail is reused once everything in it is acknowledged */
	if (l->head && l->head == l->tail && l->head->inflight == 0 &&
	    l->head->start + l->head->len <= l->acked) {
		l->head->start += l->head->len;
		l->head->len = 0;
	}
}

static void free_ghosts(struct link *l, bool all)
{
	struct ghost **gp = &l->ghosts;
	while (*gp) {
		struct ghost *g = *gp;
		if (all || g->close_end <= l->acked) {
			*gp = g->next;
			free(g->meta_type);
			free(g->json);
			free(g);
		} else {
			gp = &g->next;
		}
	}
}

/* Contiguous room for n bytes at the end of the stream. */
static uint8_t *append(struct link *l, size_t n)
{
	struct chunk *t = l->tail;
	if (t == NULL || t->cap - t->len < n) {
		size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
		struct chunk *c = malloc(sizeof(*c) + cap);
		if (c == NULL) {
			/* the process cannot go on without losing data: say so and stop */
			d4_log(D4_LOG_ERR, "out-of-memory", "where", "dispatch link", NULL);
			abort();
		}
		c->next = NULL;
		c->start = l->end;
		c->len = 0;
		c->cap = cap;
		c->inflight = 0;
		if (t)
			t->next = c;
		else
			l->head = c;
		l->tail = c;
		t = c;
	}
	uint8_t *p = t->data + t->len;
	t->len += n;
	l->end += n;
	return p;
}

static void after_append(struct link *l)
{
	if (!l->full && l->end - l->acked >= l->ing->conf.output_high)
		update_pause(l);
}

void link_open(struct link *l, const struct d4_ipc_open *m)
{
	d4_ipc_put_open(append(l, D4_IPC_OPEN_LEN), m);
	after_append(l);
}

void link_meta(struct link *l, const struct d4_ipc_meta *m)
{
	d4_ipc_put_meta(append(l, d4_ipc_meta_len(m->meta_type_len, m->json_len)), m);
	after_append(l);
}

void link_frame(struct link *l, uint64_t session, const uint8_t header[D4_HEADER_SIZE],
                const uint8_t *payload, size_t len)
{
	uint8_t *p = append(l, D4_IPC_FRAME_FIXED + len);
	d4_ipc_put_frame_head(p, session, header, len);
	if (len)
		memcpy(p + D4_IPC_FRAME_FIXED, payload, len);
	after_append(l);
}

void link_close(struct link *l, const struct d4_ipc_close *m, const struct d4_ipc_open *announced,
                const struct d4_ipc_meta *meta)
{
	d4_ipc_put_close(append(l, D4_IPC_CLOSE_LEN), m);
	after_append(l);
	struct ghost *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return; /* a replay then lacks this announcement; dispatch copes (docs/ipc.md) */
	g->close_end = l->end;
	g->open = *announced;
	g->open.flags |= D4_IPC_OPEN_REPLAY;
	if (meta) {
		g->meta_type = strndup(meta->meta_type, meta->meta_type_len);
		g->json = malloc(meta->json_len ? meta->json_len : 1);
		if (g->meta_type && g->json) {
			memcpy(g->json, meta->json, meta->json_len);
			g->json_len = meta->json_len;
		} else {
			free(g->meta_type);
			free(g->json);
			g->meta_type = NULL;
			g->json = NULL;
		}
	}
	g->next = l->ghosts;
	l->ghosts = g;
}

/* ---- writing ---- */

static void disconnect(struct link *l, const char *why);

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct link *l = w->link;
	if (w->chunk)
		w->chunk->inflight--;
	free(w->own);
	free(w);
	if (status < 0 && status != UV_ECANCELED && l->connected)
		disconnect(l, uv_strerror(status));
	free_chunk_if_done(l);
}

static int write_buf(struct link *l, struct chunk *c, uint8_t *own, const uint8_t *p, size_t n)
{
	struct write_req *w = malloc(sizeof(*w));
	if (w == NULL) {
		free(own);
		return -1;
	}
	w->link = l;
	w->chunk = c;
	w->own = own;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int rc = uv_write(&w->req, (uv_stream_t *)&l->pipe, &b, 1, write_cb);
	if (rc != 0) {
		free(own);
		free(w);
		return rc;
	}
	if (c)
		c->inflight++;
	return 0;
}

/* A message outside the counted stream (HELLO, replays, RESUME). */
static int write_copy(struct link *l, const uint8_t *p, size_t n)
{
	uint8_t *own = malloc(n);
	if (own == NULL)
		return -1;
	memcpy(own, p, n);
	return write_buf(l, NULL, own, own, n);
}

void link_flush(struct link *l)
{
	if (!l->connected)
		return;
	for (struct chunk *c = l->head; c && l->written < l->end; c = c->next) {
		uint64_t cend = c->start + c->len;
		if (cend <= l->written)
			continue;
		size_t from = (size_t)(l->written - c->start);
		int rc = write_buf(l, c, NULL, c->data + from, c->len - from);
		if (rc != 0) {
			disconnect(l, rc < 0 ? uv_strerror(rc) : "out of memory");
			return;
		}
		l->written = cend;
	}
}

void link_replay_open(struct link *l, const struct d4_ipc_open *m)
{
	uint8_t buf[D4_IPC_OPEN_LEN];
	struct d4_ipc_open o = *m;
	o.flags |= D4_IPC_OPEN_REPLAY;
	d4_ipc_put_open(buf, &o);
	if (write_copy(l, buf, sizeof(buf)) != 0)
		disconnect(l, "replay failed");
}

void link_replay_meta(struct link *l, const struct d4_ipc_meta *m)
{
	size_t n = d4_ipc_meta_len(m->meta_type_len, m->json_len);
	uint8_t *own = malloc(n);
	if (own == NULL || (d4_ipc_put_meta(own, m), write_buf(l, NULL, own, own, n)) != 0)
		disconnect(l, "replay failed");
}

/* ---- reading acknowledgements ---- */

static void on_ack(struct link *l, uint64_t offset)
{
	if (offset > l->written || offset < l->acked) {
		d4_logf(D4_LOG_ERR, "dispatch-protocol", "acknowledgement %llu outside [%llu, %llu]",
		        (unsigned long long)offset, (unsigned long long)l->acked,
		        (unsigned long long)l->written);
		disconnect(l, "bad acknowledgement");
		return;
	}
	l->acked = offset;
	free_chunk_if_done(l);
	free_ghosts(l, false);
	if (l->full)
		update_pause(l);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct link *l = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)l->read_buf, sizeof(l->read_buf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct link *l = s->data;
	if (nread < 0) {
		disconnect(l, nread == UV_EOF ? "dispatch closed the link" : uv_strerror((int)nread));
		return;
	}
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t left = (size_t)nread;
	while (left > 0 && l->connected) {
		size_t used;
		struct d4_ipc_msg m;
		const char *why = NULL;
		enum d4_ipc_status st = d4_ipc_reader_feed(&l->reader, p, left, &used, &m, &why);
		p += used;
		left -= used;
		if (st == D4_IPC_BAD) {
			d4_log(D4_LOG_ERR, "dispatch-protocol", "error", why, NULL);
			disconnect(l, why);
			return;
		}
		if (st == D4_IPC_NEED_MORE)
			break;
		switch (m.kind) {
		case D4_IPC_ACK:
			on_ack(l, m.u.offset);
			break;
		case D4_IPC_PAUSE:
		case D4_IPC_UNPAUSE:
			l->dispatch_paused = m.kind == D4_IPC_PAUSE;
			update_pause(l);
			break;
		default:
			d4_log(D4_LOG_ERR, "dispatch-protocol", "error", "unexpected message", "kind",
			       d4_ipc_kind_name(m.kind), NULL);
			disconnect(l, "unexpected message");
			return;
		}
	}
}

/* ---- connecting ---- */

static void retry_cb(uv_timer_t *t)
{
	try_connect(t->data);
}

static void schedule_retry(struct link *l)
{
	if (l->destroying)
		return;
	uv_timer_start(&l->retry, retry_cb, l->retry_ms, 0);
	l->retry_ms = l->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->retry_ms * 2;
}

static void link_free(struct link *l);

static void pipe_closed_cb(uv_handle_t *h)
{
	struct link *l = h->data;
	l->pipe_init = false;
	if (l->destroying) {
		link_free(l);
		return;
	}
	schedule_retry(l);
}

static void disconnect(struct link *l, const char *why)
{
	if (!l->pipe_init || uv_is_closing((uv_handle_t *)&l->pipe))
		return;
	if (l->connected)
		d4_log(D4_LOG_WARN, "dispatch-disconnected", "reason", why, NULL);
	l->connected = false;
	l->connecting = false;
	l->dispatch_paused = false;
	d4_ipc_reader_free(&l->reader);
	uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
}

static void hello(struct link *l)
{
	uint8_t buf[D4_IPC_HELLO_LEN > D4_IPC_OFFSET_LEN ? D4_IPC_HELLO_LEN : D4_IPC_OFFSET_LEN];
	struct d4_ipc_hello h = {
		.version = D4_IPC_VERSION,
		.worker = (uint16_t)l->ing->worker,
		.instance = l->ing->instance,
	};
	d4_ipc_put_hello(buf, &h);
	if (write_copy(l, buf, D4_IPC_HELLO_LEN) != 0)
		goto fail;
	/* announcements the unacknowledged stream may refer to */
	for (struct ghost *g = l->ghosts; g; g = g->next) {
		link_replay_open(l, &g->open);
		if (g->meta_type) {
			struct d4_ipc_meta m = {g->open.session, g->meta_type, strlen(g->meta_type),
			                        g->json, g->json_len};
			link_replay_meta(l, &m);
		}
	}
	sessions_replay(l->ing);
	d4_ipc_put_offset(buf, D4_IPC_RESUME, l->acked);
	if (!l->connected || write_copy(l, buf, D4_IPC_OFFSET_LEN) != 0)
		goto fail;
	l->written = l->acked;
	link_flush(l);
	return;
fail:
	disconnect(l, "could not write the hello");
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	l->connecting = false;
	if (status < 0) {
		/* said at the first failure, then once a minute while it lasts */
		uint64_t t = uv_now(l->ing->loop);
		if (l->reconnects == 0 || t - l->unreachable_logged_ms >= 60000) {
			d4_log(D4_LOG_NOTICE, "dispatch-unreachable", "socket",
			       l->ing->conf.dispatch_socket, "error", uv_strerror(status), NULL);
			l->unreachable_logged_ms = t;
		}
		l->reconnects++;
		uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
		return;
	}
	l->connected = true;
	l->retry_ms = RETRY_MIN_MS;
	d4_ipc_reader_init(&l->reader);
	d4_log(D4_LOG_INFO, "dispatch-connected", "socket", l->ing->conf.dispatch_socket, NULL);
	int rc = uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, read_cb);
	if (rc != 0) {
		disconnect(l, uv_strerror(rc));
		return;
	}
	hello(l);
	update_pause(l);
}

static void try_connect(struct link *l)
{
	if (l->destroying || l->pipe_init)
		return;
	if (uv_pipe_init(l->ing->loop, &l->pipe, 0) != 0) {
		schedule_retry(l);
		return;
	}
	l->pipe_init = true;
	l->pipe.data = l;
	l->connect_req.data = l;
	l->connecting = true;
	uv_pipe_connect(&l->connect_req, &l->pipe, l->ing->conf.dispatch_socket, connect_cb);
}

struct link *link_create(struct ingest *ing)
{
	struct link *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->ing = ing;
	l->retry_ms = RETRY_MIN_MS;
	if (uv_timer_init(ing->loop, &l->retry) != 0) {
		free(l);
		return NULL;
	}
	l->retry.data = l;
	return l;
}

void link_start(struct link *l)
{
	try_connect(l);
}

static void timer_closed_cb(uv_handle_t *h)
{
	struct link *l = h->data;
	if (l->pipe_init) {
		if (!uv_is_closing((uv_handle_t *)&l->pipe))
			uv_close((uv_handle_t *)&l->pipe, pipe_closed_cb);
		return; /* pipe_closed_cb frees */
	}
	link_free(l);
}

/* Frees the output and the link: called once no handle is left, so every
 * write callback has run (closing a pipe cancels its writes first). */
static void link_free(struct link *l)
{
	while (l->head) {
		struct chunk *c = l->head;
		l->head = c->next;
		free(c);
	}
	l->tail = NULL;
	free_ghosts(l, true);
	d4_ipc_reader_free(&l->reader);
	free(l);
}

/* Frees the link once its handles are closed (the loop must run on). */
void link_destroy(struct link *l)
{
	if (l == NULL)
		return;
	l->destroying = true;
	l->connected = false;
	uv_close((uv_handle_t *)&l->retry, timer_closed_cb);
}
