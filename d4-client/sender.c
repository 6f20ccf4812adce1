/*
 * sender.c — connecting, reconnecting and writing frames to the destination.
 *
 * Frames leave the queue only once they were written whole; a connection lost
 * in the middle of a frame rewinds the queue so that the frame goes out again
 * from its first byte on the next connection (the server discards the cut
 * copy with the rest of that session). Bytes accepted by the kernel before a
 * connection died cannot be known to have arrived: D4 has no
 * acknowledgements, so frames already written on a connection that breaks
 * may be lost: the resend window (framequeue.h) sends the last ones again on
 * the next connection, and d4-dispatch skips those it already delivered. The
 * polite close at the end (TLS close_notify, shutdown of our
 * direction, wait for the server's close) is what makes "exit 0" mean the
 * server read everything.
 *
 * TLS 1.3 ends the client's handshake before the server has checked the
 * client's certificate: a server that refuses us says so one round trip
 * later, and whatever we wrote meanwhile is lost without a trace. So after a
 * TLS 1.3 handshake the sender waits (CONFIRM, at most CONFIRM_WAIT_MS) for
 * the server's first post-handshake message: a session ticket means we were
 * accepted, an alert means we were not (and nothing was sent). A server that
 * sends no tickets costs that wait once per connection.
 *
 * Backoff: retry_min doubling up to retry_max, each wait drawn uniformly from
 * [d/2, d] so that sensors cut off together do not come back together. It
 * restarts from retry_min after a connection that lasted 10 seconds.
 */
#include "sender.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "d4_log.h"
#include "tls.h"

#define STABLE_CONNECTION_MS 10000u /* a connection this old resets the backoff */
#define CLOSE_WAIT_MS 5000u         /* how long the polite close waits for the server */
#define WRITES_PER_STEP 256         /* bound the work of one step, keep reading fair */
#define CONFIRM_WAIT_MS 1000u       /* TLS 1.3: wait for a session ticket before sending */

static void log_u64(enum d4_log_level lvl, const char *event, const char *k1, uint64_t v1,
                    const char *k2, const char *v2)
{
	char b[24];

	(void)snprintf(b, sizeof(b), "%" PRIu64, v1);
	d4_log(lvl, event, k1, b, k2, v2, NULL);
}

static void close_conn(struct sender *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		(void)close(s->fd);
	s->fd = -1;
	s->want = 0;
	if (s->meta != NULL) {
		frame_free(s->meta);
		s->meta = NULL;
	}
	s->meta_pending = false;
	s->meta_off = 0;
}

static uint64_t jitter(uint64_t d)
{
	uint32_t r;

	if (d < 2)
		return d;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)rand();
	return d / 2 + (uint64_t)r % (d / 2 + 1);
}

/* Gives up on the current attempt or connection and schedules the next one. */
static void retry_later_at(struct sender *s, uint64_t now, enum d4_log_level lvl,
                           const char *event, const char *reason)
{
	uint64_t delay;
	char in[24];

	close_conn(s);
	if (s->ai_list != NULL) {
		freeaddrinfo(s->ai_list);
		s->ai_list = NULL;
		s->ai_cur = NULL;
	}
	delay = jitter(s->backoff_ms);
	s->backoff_ms = s->backoff_ms * 2 > s->conf->retry_max_ms ? s->conf->retry_max_ms
	                                                          : s->backoff_ms * 2;
	(void)snprintf(in, sizeof(in), "%" PRIu64 "ms", delay);
	d4_log(lvl, event, "destination", s->dest, "peer", s->peer[0] ? s->peer : NULL, "reason",
	       reason, "retry_in", in, NULL);
	s->state = SND_BACKOFF;
	s->deadline = now + delay;
}

static void retry_later(struct sender *s, uint64_t now, const char *event, const char *reason)
{
	retry_later_at(s, now, D4_LOG_WARN, event, reason);
}

static void set_keepalive(struct sender *s, int fd)
{
	int on = 1;
	int idle = (int)s->conf->keepalive_s;
	int intvl = idle / 3 > 0 ? idle / 3 : 1;
	int cnt = 3;

	if (s->conf->keepalive_s == 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
		goto fail;
#ifdef TCP_KEEPIDLE
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0)
		goto fail;
#endif
#ifdef TCP_USER_TIMEOUT
	{
		/* unacknowledged data for this long means the peer is gone */
		unsigned int ms = (unsigned)(idle + intvl * cnt) * 1000u;
		if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) != 0)
			goto fail;
	}
#endif
	return;
fail:
	d4_log(D4_LOG_WARN, "keepalive_failed", "reason", strerror(errno), NULL);
}

static void format_peer(const struct addrinfo *ai, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN + 16]; /* numeric only: room for a scope id */
	char serv[8];

	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		(void)snprintf(out, len, "?");
		return;
	}
	if (snprintf(out, len, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv) < 0)
		out[0] = '\0';
}

/* OpenSSL hands us each session ticket; we only note that one came. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct sender *s = SSL_get_app_data(ssl);

	(void)sess;
	if (s != NULL)
		s->ticket_seen = true;
	return 0; /* not kept: the session is freed by OpenSSL */
}

static void become_up(struct sender *s, uint64_t now)
{
	s->state = SND_UP;
	s->up_since = now;
	s->deadline = 0;
	s->want = 0;
	s->connections++;
	if (s->ssl != NULL)
		d4_log(D4_LOG_NOTICE, "connected", "destination", s->dest, "peer", s->peer, "tls",
		       SSL_get_version(s->ssl), "cipher", SSL_get_cipher_name(s->ssl), NULL);
	else
		d4_log(D4_LOG_NOTICE, "connected", "destination", s->dest, "peer", s->peer, "tls",
		       "off", NULL);
	if (s->conf->type == D4_TYPE_META_DEFINED) {
		s->meta = framer_build(s->framer, D4_TYPE_META_HEADER,
		                       (const uint8_t *)s->conf->metaheader,
		                       s->conf->metaheader_len);
		if (s->meta == NULL) {
			retry_later(s, now, "meta_header_failed", "cannot build the meta header frame");
			return;
		}
		s->meta_off = 0;
		s->meta_pending = true;
	}
}

static void do_handshake(struct sender *s, uint64_t now)
{
	int rc = SSL_connect(s->ssl);
	int e;
	char why[300];

	if (rc == 1) {
		if (SSL_version(s->ssl) >= TLS1_3_VERSION && !s->ticket_seen) {
			s->state = SND_CONFIRM;
			s->want = 0;
			s->deadline = now + (s->conf->connect_timeout_ms < CONFIRM_WAIT_MS
			                         ? s->conf->connect_timeout_ms
			                         : CONFIRM_WAIT_MS);
			return;
		}
		become_up(s, now);
		return;
	}
	e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ) {
		s->want = POLLIN;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		s->want = POLLOUT;
		return;
	}
	tls_explain(s->ssl, rc, e, why, sizeof(why));
	retry_later(s, now, "tls_handshake_failed", why);
}

static void connected(struct sender *s, uint64_t now)
{
	char err[300];

	if (s->ctx == NULL) {
		become_up(s, now);
		return;
	}
	s->ssl = tls_session_new(s->ctx, s->fd, s->conf->host, err, sizeof(err));
	if (s->ssl == NULL) {
		retry_later(s, now, "tls_setup_failed", err);
		return;
	}
	s->ticket_seen = false;
	if (SSL_set_app_data(s->ssl, s) != 1) {
		retry_later(s, now, "tls_setup_failed", "SSL_set_app_data failed");
		return;
	}
	s->state = SND_HANDSHAKE;
	s->deadline = now + s->conf->connect_timeout_ms;
	do_handshake(s, now);
}

/* Tries the remaining addresses of the resolution in turn. */
static void connect_next(struct sender *s, uint64_t now, const char *last_error)
{
	while (s->ai_cur != NULL) {
		struct addrinfo *ai = s->ai_cur;
		int fd;

		s->ai_cur = ai->ai_next;
		format_peer(ai, s->peer, sizeof(s->peer));
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			last_error = strerror(errno);
			continue;
		}
		set_keepalive(s, fd);
		s->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			connected(s, now);
			return;
		}
		if (errno == EINPROGRESS) {
			s->state = SND_CONNECTING;
			s->deadline = now + s->conf->connect_timeout_ms;
			return;
		}
		last_error = strerror(errno);
		d4_log(D4_LOG_DEBUG, "connect_failed", "peer", s->peer, "reason", last_error, NULL);
		(void)close(fd);
		s->fd = -1;
	}
	retry_later(s, now, "connect_failed", last_error ? last_error : "no address");
}

static void resolved(struct sender *s, uint64_t now, struct addrinfo *ai, int gai_err)
{
	if (gai_err != 0 || ai == NULL) {
		if (ai != NULL)
			freeaddrinfo(ai);
		retry_later(s, now, "resolve_failed",
		            gai_err != 0 ? gai_strerror(gai_err) : "no address");
		return;
	}
	s->ai_list = ai;
	s->ai_cur = ai;
	connect_next(s, now, NULL);
}

static void attempt(struct sender *s, uint64_t now)
{
	struct addrinfo *ai;
	int gai_err;
	int rc;

	s->peer[0] = '\0';
	if (s->res.busy) {
		/* an earlier resolution is still running: wait for it */
		s->state = SND_RESOLVING;
		s->deadline = 0;
		return;
	}
	rc = resolver_start(&s->res, s->conf->host, s->conf->port, &ai, &gai_err);
	if (rc < 0) {
		retry_later(s, now, "resolve_failed", strerror(errno));
		return;
	}
	if (rc == 0) {
		s->state = SND_RESOLVING;
		s->deadline = 0;
		return;
	}
	resolved(s, now, ai, gai_err);
}

/* The connection broke while up: rewind the half-sent frame and come back. */
static void lost(struct sender *s, struct framequeue *q, uint64_t now, const char *reason)
{
	char unsent[24];

	char resend[24];

	framequeue_rewind(q);
	/* what the lost connection carried may not have arrived: send it again */
	(void)snprintf(resend, sizeof(resend), "%zu", framequeue_resend(q, now));
	if (now - s->up_since >= STABLE_CONNECTION_MS)
		s->backoff_ms = s->conf->retry_min_ms;
	(void)snprintf(unsent, sizeof(unsent), "%zu", q->count);
	d4_log(D4_LOG_WARN, "disconnected", "destination", s->dest, "peer", s->peer, "reason",
	       reason, "queued_frames", unsent, "resend_frames", resend, NULL);
	retry_later_at(s, now, D4_LOG_INFO, "reconnect_scheduled", reason);
}

/* Writes up to len bytes: >0 written, 0 would block (s->want set), -1 failed (why set). */
static ssize_t link_write(struct sender *s, const uint8_t *buf, size_t len, char *why,
                          size_t whylen)
{
	ssize_t n;

	if (s->ssl != NULL) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		int rc;
		int e;

		ERR_clear_error();
		rc = SSL_write(s->ssl, buf, chunk);
		if (rc > 0) {
			s->want = 0;
			return rc;
		}
		e = SSL_get_error(s->ssl, rc);
		if (e == SSL_ERROR_WANT_WRITE) {
			s->want = POLLOUT;
			return 0;
		}
		if (e == SSL_ERROR_WANT_READ) {
			s->want = POLLIN;
			return 0;
		}
		tls_explain(s->ssl, rc, e, why, whylen);
		return -1;
	}
	do
		n = write(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		s->want = 0;
		return n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->want = POLLOUT;
		return 0;
	}
	(void)snprintf(why, whylen, "%s", strerror(errno));
	return -1;
}

/* Writes the meta header then queued frames until the link would block. 0 or -1 (why). */
static int send_some(struct sender *s, struct framequeue *q, uint64_t now, char *why,
                     size_t whylen)
{
	for (int i = 0; i < WRITES_PER_STEP; i++) {
		const uint8_t *buf;
		size_t len;
		ssize_t n;
		struct frame *f = NULL;

		if (s->meta_pending) {
			buf = s->meta->data + s->meta_off;
			len = s->meta->len - s->meta_off;
		} else {
			f = framequeue_head(q);
			if (f == NULL)
				return 0;
			q->head_busy = true;
			buf = f->data + q->head_off;
			len = f->len - q->head_off;
		}
		n = link_write(s, buf, len, why, whylen);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		s->bytes_sent += (uint64_t)n;
		if (f == NULL) {
			s->meta_off += (size_t)n;
			if (s->meta_off == s->meta->len) {
				s->meta_pending = false;
				d4_log(D4_LOG_INFO, "meta_header_sent", "peer", s->peer, NULL);
			}
		} else {
			q->head_off += (size_t)n;
			if (q->head_off == f->len) {
				framequeue_pop(q, now);
				s->frames_sent++;
			}
		}
	}
	return 0;
}

/*
 * Reads whatever the server sent (a D4 server sends nothing but TLS
 * housekeeping such as session tickets). 0 while the link is fine, -1 when it
 * is closed or broken (why set).
 */
static int drain_input(struct sender *s, char *why, size_t whylen)
{
	uint8_t scratch[4096];

	for (;;) {
		ssize_t n;

		if (s->ssl != NULL) {
			int rc;
			int e;

			ERR_clear_error();
			rc = SSL_read(s->ssl, scratch, (int)sizeof(scratch));
			if (rc > 0) {
				n = rc;
			} else {
				e = SSL_get_error(s->ssl, rc);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return 0;
				tls_explain(s->ssl, rc, e, why, whylen);
				return -1;
			}
		} else {
			do
				n = read(s->fd, scratch, sizeof(scratch));
			while (n < 0 && errno == EINTR);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0;
				(void)snprintf(why, whylen, "%s", strerror(errno));
				return -1;
			}
			if (n == 0) {
				(void)snprintf(why, whylen, "connection closed by the server");
				return -1;
			}
		}
		if (!s->ignored_input_logged) {
			d4_log(D4_LOG_INFO, "server_data_ignored", "peer", s->peer, "hint",
			       "a D4 server is not expected to send data", NULL);
			s->ignored_input_logged = true;
		}
	}
}

int sender_init(struct sender *s, const struct client_conf *c, struct framer *fr, uint64_t now,
                char *err, size_t errlen)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->conf = c;
	s->framer = fr;
	s->fd = -1;
	s->res.rd = s->res.wr = -1;
	s->backoff_ms = c->retry_min_ms;
	if (c->dst_kind == DST_STDOUT) {
		(void)snprintf(s->dest, sizeof(s->dest), "stdout");
		if (isatty(STDOUT_FILENO)) {
			(void)snprintf(err, errlen,
			               "the destination is stdout and stdout is a terminal: pipe it "
			               "(| socat - OPENSSL:host:port) or set a host:port destination");
			return -1;
		}
		if (fstat(STDOUT_FILENO, &st) != 0) {
			(void)snprintf(err, errlen, "stdout: %s", strerror(errno));
			return -1;
		}
		if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
			int fl = fcntl(STDOUT_FILENO, F_GETFL);
			if (fl < 0 || fcntl(STDOUT_FILENO, F_SETFL, fl | O_NONBLOCK) != 0) {
				(void)snprintf(err, errlen, "stdout: %s", strerror(errno));
				return -1;
			}
			s->stdout_fl = fl;
			s->stdout_restore = true;
		}
		s->fd = STDOUT_FILENO;
		s->state = SND_STDOUT;
		(void)snprintf(s->peer, sizeof(s->peer), "stdout");
		if (c->type == D4_TYPE_META_DEFINED) {
			s->meta = framer_build(fr, D4_TYPE_META_HEADER, (const uint8_t *)c->metaheader,
			                       c->metaheader_len);
			if (s->meta == NULL) {
				(void)snprintf(err, errlen, "cannot build the meta header frame");
				return -1;
			}
			s->meta_pending = true;
		}
		return 0;
	}
	if (strchr(c->host, ':') != NULL)
		(void)snprintf(s->dest, sizeof(s->dest), "[%s]:%s", c->host, c->port);
	else
		(void)snprintf(s->dest, sizeof(s->dest), "%s:%s", c->host, c->port);
	if (resolver_init(&s->res) != 0) {
		(void)snprintf(err, errlen, "resolver: %s", strerror(errno));
		return -1;
	}
	if (c->tls) {
		s->ctx = tls_ctx_new(c, err, errlen);
		if (s->ctx == NULL)
			return -1;
		SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_CLIENT |
		                                           SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(s->ctx, on_new_session);
	}
	s->state = SND_BACKOFF;
	s->deadline = now; /* first attempt right away */
	return 0;
}

void sender_free(struct sender *s)
{
	if (s->conf != NULL && s->conf->dst_kind == DST_STDOUT) {
		if (s->stdout_restore)
			(void)fcntl(STDOUT_FILENO, F_SETFL, s->stdout_fl);
		s->stdout_restore = false;
		s->fd = -1;
	}
	close_conn(s);
	if (s->ai_list != NULL)
		freeaddrinfo(s->ai_list);
	s->ai_list = NULL;
	resolver_free(&s->res);
	if (s->ctx != NULL)
		SSL_CTX_free(s->ctx);
	s->ctx = NULL;
}

void sender_pollfds(const struct sender *s, bool have_work, const struct framequeue *q,
                    struct pollfd *sock, struct pollfd *res)
{
	bool work = have_work || s->meta_pending || (q != NULL && q->head != NULL);

	sock->fd = -1;
	sock->events = 0;
	sock->revents = 0;
	res->fd = s->res.busy ? s->res.rd : -1;
	res->events = POLLIN;
	res->revents = 0;
	switch (s->state) {
	case SND_STDOUT:
		if (work) {
			sock->fd = s->fd;
			sock->events = POLLOUT;
		}
		break;
	case SND_CONNECTING:
		sock->fd = s->fd;
		sock->events = POLLOUT;
		break;
	case SND_HANDSHAKE:
		sock->fd = s->fd;
		sock->events = s->want ? s->want : POLLIN;
		break;
	case SND_CONFIRM:
		sock->fd = s->fd;
		sock->events = POLLIN;
		break;
	case SND_UP:
		sock->fd = s->fd;
		sock->events = POLLIN;
		if (work && s->want != POLLIN)
			sock->events |= POLLOUT;
		break;
	case SND_CLOSING:
		sock->fd = s->fd;
		sock->events = POLLIN;
		break;
	default:
		break;
	}
}

uint64_t sender_deadline(const struct sender *s)
{
	switch (s->state) {
	case SND_BACKOFF:
	case SND_CONNECTING:
	case SND_HANDSHAKE:
	case SND_CONFIRM:
	case SND_CLOSING:
		return s->deadline;
	default:
		return 0;
	}
}

static int step_stdout(struct sender *s, short ev, struct framequeue *q, uint64_t now)
{
	char why[256];

	if (ev == 0 && !s->meta_pending && q->head == NULL)
		return 0;
	if (send_some(s, q, now, why, sizeof(why)) == 0)
		return 0;
	s->state = SND_BROKEN;
	d4_log(D4_LOG_ERR, "stdout_failed", "reason", why, NULL);
	return -1;
}

int sender_step(struct sender *s, short sock_ev, short res_ev, struct framequeue *q,
                uint64_t now)
{
	char why[300];
	bool timed_out = s->deadline != 0 && now >= s->deadline;

	if (res_ev != 0 && s->res.busy) {
		struct addrinfo *ai;
		int gai_err;
		if (resolver_collect(&s->res, &ai, &gai_err) == 1) {
			if (s->state == SND_RESOLVING)
				resolved(s, now, ai, gai_err);
			else if (ai != NULL)
				freeaddrinfo(ai); /* finished after we gave up on it */
		}
	}
	switch (s->state) {
	case SND_STDOUT:
		return step_stdout(s, sock_ev, q, now);
	case SND_BACKOFF:
		if (timed_out)
			attempt(s, now);
		break;
	case SND_RESOLVING:
		if (!s->res.busy)
			attempt(s, now); /* a stale resolution ended: start ours */
		break;
	case SND_CONNECTING:
		if (sock_ev != 0) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
				soerr = errno;
			if (soerr == 0) {
				connected(s, now);
			} else {
				d4_log(D4_LOG_DEBUG, "connect_failed", "peer", s->peer, "reason",
				       strerror(soerr), NULL);
				(void)close(s->fd);
				s->fd = -1;
				connect_next(s, now, strerror(soerr));
			}
		} else if (timed_out) {
			(void)close(s->fd);
			s->fd = -1;
			connect_next(s, now, "connect timeout");
		}
		break;
	case SND_HANDSHAKE:
		if (sock_ev != 0)
			do_handshake(s, now);
		else if (timed_out)
			retry_later(s, now, "tls_handshake_failed", "handshake timeout");
		break;
	case SND_CONFIRM:
		if (sock_ev != 0 && drain_input(s, why, sizeof(why)) != 0)
			retry_later(s, now, "tls_rejected", why);
		else if (s->ticket_seen || timed_out)
			become_up(s, now);
		break;
	case SND_UP:
		if ((sock_ev & (POLLIN | POLLHUP | POLLERR)) != 0 &&
		    drain_input(s, why, sizeof(why)) != 0) {
			lost(s, q, now, why);
			break;
		}
		if (send_some(s, q, now, why, sizeof(why)) != 0)
			lost(s, q, now, why);
		break;
	case SND_CLOSING:
		if (sock_ev != 0) {
			if (drain_input(s, why, sizeof(why)) != 0) {
				close_conn(s);
				s->state = SND_DONE;
			}
		} else if (timed_out) {
			d4_log(D4_LOG_INFO, "close_timeout", "peer", s->peer, "hint",
			       "the server did not close its side; everything was written", NULL);
			close_conn(s);
			s->state = SND_DONE;
		}
		break;
	case SND_DONE:
		break;
	case SND_BROKEN:
		return -1;
	}
	return 0;
}

void sender_finish(struct sender *s, uint64_t now, uint64_t deadline)
{
	switch (s->state) {
	case SND_UP:
		if (s->ssl != NULL) {
			ERR_clear_error();
			(void)SSL_shutdown(s->ssl); /* best effort: queue close_notify */
			ERR_clear_error();
		}
		(void)shutdown(s->fd, SHUT_WR);
		s->state = SND_CLOSING;
		s->deadline = now + CLOSE_WAIT_MS < deadline ? now + CLOSE_WAIT_MS : deadline;
		log_u64(D4_LOG_INFO, "flushed", "frames_sent", s->frames_sent, "peer", s->peer);
		break;
	case SND_CLOSING:
	case SND_DONE:
	case SND_BROKEN:
		break;
	case SND_STDOUT:
		s->state = SND_DONE; /* stdout stays open; sender_free restores its flags */
		break;
	default:
		close_conn(s);
		s->state = SND_DONE;
		break;
	}
}
