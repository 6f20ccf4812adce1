/*
 * tap.c — `d4ctl tail`: a live copy of the frames of one sensor or one type.
 *
 * Dispatch listens on <data_dir>/run/tap.sock (0600, like the dispatch
 * socket). A client sends one line, `tap <uuid|*> <type|*>\n`, and from then
 * on receives every accepted frame that matches, as raw D4 frames (62-byte
 * header + payload), the same bytes `d4ctl decode` reads.
 *
 * A tap is for looking, never for keeping: frames are written with
 * uv_try_write; a frame the socket takes only in part has its rest queued
 * (one frame at most per tap), and frames that come while the socket is full
 * or a rest is on its way are skipped and counted (in the log when the tap
 * closes). A slow or stuck `tail` therefore costs the pipeline at most one
 * frame of memory, never a wait.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "d4_log.h"
#include "d4_uuid.h"
#include "dispatch.h"

#define TAP_MAX 16
#define TAP_LINE_MAX 128

struct tap {
	uv_pipe_t pipe; /* first: the handle's address is the tap's */
	struct dispatch *d;
	struct tap *next;
	bool ready;     /* the filter line was read */
	bool any_uuid, any_type;
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t type;
	char line[TAP_LINE_MAX];
	size_t line_len;
	uint64_t sent, skipped;
	bool pending; /* the rest of a partly written frame is on its way */
	bool closing;
};

struct tap_write {
	uv_write_t req;
	struct tap *t;
	uint8_t data[];
};

static void tap_closed_cb(uv_handle_t *h)
{
	free(h);
}

static void tap_write_cb(uv_write_t *req, int status)
{
	struct tap_write *w = (struct tap_write *)req;
	(void)status;
	if (!w->t->closing)
		w->t->pending = false;
	free(w);
}

static void tap_close(struct tap *t)
{
	struct dispatch *d = t->d;
	if (t->closing)
		return;
	t->closing = true;
	for (struct tap **p = &d->taps; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	d->n_taps--;
	char s[24], k[24];
	snprintf(s, sizeof(s), "%" PRIu64, t->sent);
	snprintf(k, sizeof(k), "%" PRIu64, t->skipped);
	d4_log(D4_LOG_INFO, "tap-closed", "frames", s, "skipped", k, NULL);
	uv_close((uv_handle_t *)&t->pipe, tap_closed_cb);
}

/* "tap <uuid|*> <type|*>" */
static int parse_filter(struct tap *t)
{
	char u[64], ty[16];
	if (sscanf(t->line, "tap %63s %15s", u, ty) != 2)
		return -1;
	t->any_uuid = strcmp(u, "*") == 0;
	if (!t->any_uuid && d4_uuid_parse_str(u, t->uuid) != 0)
		return -1;
	t->any_type = strcmp(ty, "*") == 0;
	if (!t->any_type) {
		char *end;
		long v = strtol(ty, &end, 10);
		if (*end || v < 0 || v > 255)
			return -1;
		t->type = (uint8_t)v;
	}
	return 0;
}

static void tap_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tap *t = (struct tap *)h;
	(void)suggested;
	*buf = uv_buf_init(t->line + t->line_len, (unsigned)(TAP_LINE_MAX - 1 - t->line_len));
}

static void tap_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tap *t = (struct tap *)s;
	(void)buf;
	if (nread < 0) {
		tap_close(t);
		return;
	}
	if (t->ready) /* nothing more is expected from a client */
		return;
	t->line_len += (size_t)nread;
	t->line[t->line_len] = '\0';
	char *nl = strchr(t->line, '\n');
	if (nl == NULL) {
		if (t->line_len >= TAP_LINE_MAX - 1)
			tap_close(t);
		return;
	}
	*nl = '\0';
	if (parse_filter(t) != 0) {
		d4_log(D4_LOG_WARN, "tap-refused", "line", t->line, NULL);
		tap_close(t);
		return;
	}
	t->ready = true;
	d4_log(D4_LOG_INFO, "tap-opened", "filter", t->line, NULL);
}

static void tap_connection_cb(uv_stream_t *server, int status)
{
	struct dispatch *d = server->data;
	if (status != 0)
		return;
	struct tap *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return;
	if (uv_pipe_init(d->loop, &t->pipe, 0) != 0) {
		free(t);
		return;
	}
	t->d = d;
	if (uv_accept(server, (uv_stream_t *)&t->pipe) != 0 || d->n_taps >= TAP_MAX) {
		uv_close((uv_handle_t *)&t->pipe, tap_closed_cb);
		return;
	}
	t->next = d->taps;
	d->taps = t;
	d->n_taps++;
	if (uv_read_start((uv_stream_t *)&t->pipe, tap_alloc_cb, tap_read_cb) != 0)
		tap_close(t);
}

int tap_listen(struct dispatch *d)
{
	char path[D4_PATH_MAX];
	if (d4_path_join(path, sizeof(path), d->conf.data_dir, "run/tap.sock") != 0)
		return -1;
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	if (uv_pipe_init(d->loop, &d->tap_server, 0) != 0)
		return -1;
	d->tap_server.data = d;
	d->tap_open = true;
	mode_t old = umask(0177);
	int rc = uv_pipe_bind(&d->tap_server, path);
	umask(old);
	if (rc != 0 || uv_listen((uv_stream_t *)&d->tap_server, 8, tap_connection_cb) != 0) {
		d4_log(D4_LOG_WARN, "tap-unavailable", "socket", path, "error",
		       rc ? uv_strerror(rc) : "listen failed", NULL);
		return -1;
	}
	return 0;
}

void tap_frame(struct dispatch *d, const uint8_t header[D4_HEADER_SIZE], const uint8_t *payload,
               size_t len)
{
	for (struct tap *t = d->taps, *next; t; t = next) {
		next = t->next;
		if (t->ready && !t->closing && t->pending) {
			t->skipped++;
			continue;
		}
		if (!t->ready || t->closing || (!t->any_type && header[D4_OFF_TYPE] != t->type) ||
		    (!t->any_uuid && memcmp(header + D4_OFF_UUID, t->uuid, D4_UUID_SIZE) != 0))
			continue;
		/* whole frames only: a frame the socket cannot take entirely now is skipped, and
		 * a partial write ends the tap (the stream would no longer be framed) */
		uv_buf_t b[2] = {uv_buf_init((char *)header, D4_HEADER_SIZE),
		                 uv_buf_init((char *)payload, (unsigned)len)};
		size_t total = D4_HEADER_SIZE + len;
		int n = uv_try_write((uv_stream_t *)&t->pipe, b, len ? 2 : 1);
		if (n == UV_EAGAIN) {
			t->skipped++;
			continue;
		}
		if (n < 0) {
			tap_close(t);
			continue;
		}
		t->sent++;
		if ((size_t)n == total)
			continue;
		/* the rest of this frame goes out with uv_write; nothing more until it has */
		size_t rest = total - (size_t)n;
		struct tap_write *w = malloc(sizeof(*w) + rest);
		if (w == NULL) {
			tap_close(t);
			continue;
		}
		w->t = t;
		size_t hdr_left = (size_t)n < D4_HEADER_SIZE ? D4_HEADER_SIZE - (size_t)n : 0;
		memcpy(w->data, header + (D4_HEADER_SIZE - hdr_left), hdr_left);
		memcpy(w->data + hdr_left, payload + (len - (rest - hdr_left)), rest - hdr_left);
		uv_buf_t wb = uv_buf_init((char *)w->data, (unsigned)rest);
		if (uv_write(&w->req, (uv_stream_t *)&t->pipe, &wb, 1, tap_write_cb) != 0) {
			free(w);
			tap_close(t);
			continue;
		}
		t->pending = true;
	}
}

void tap_close_all(struct dispatch *d)
{
	while (d->taps)
		tap_close(d->taps);
	if (d->tap_open && !uv_is_closing((uv_handle_t *)&d->tap_server))
		uv_close((uv_handle_t *)&d->tap_server, NULL);
}
