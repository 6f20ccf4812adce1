/*
 * sender.h — the destination side: stdout, or a TLS (or plain TCP)
 * connection to a D4 server that is re-established whenever it is lost.
 *
 * The sender is a state machine driven by the main loop's poll(): it says
 * which events it waits for and until when (sender_pollfds, sender_deadline),
 * and sender_step() reacts to what happened. It never blocks: connect(),
 * the TLS handshake and every write are non-blocking, and name resolution
 * runs in resolver.c's thread.
 *
 *   BACKOFF -> RESOLVING -> CONNECTING -> HANDSHAKE -> CONFIRM -> UP -> CLOSING -> DONE
 *      ^_________________ any failure, with exponential backoff _______|
 *
 * A connection that opens with type 254 first carries the meta header as a
 * type-2 frame (signed afresh for each connection), then the queued frames.
 */
#ifndef D4_CLIENT_SENDER_H
#define D4_CLIENT_SENDER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "clientconf.h"
#include "framequeue.h"
#include "framer.h"
#include "resolver.h"

enum sender_state {
	SND_STDOUT = 0, /* the destination is stdout: always ready */
	SND_BACKOFF,    /* waiting before the next connection attempt */
	SND_RESOLVING,
	SND_CONNECTING,
	SND_HANDSHAKE,
	SND_CONFIRM, /* TLS 1.3: waiting for the server to accept us (see sender.c) */
	SND_UP,
	SND_CLOSING, /* all written, close announced, waiting for the server to close */
	SND_DONE,
	SND_BROKEN, /* stdout failed: nothing can be sent any more */
};

struct sender {
	const struct client_conf *conf;
	struct framer *framer;
	SSL_CTX *ctx; /* NULL for stdout and --no-tls */
	struct resolver res;
	enum sender_state state;
	int fd;
	SSL *ssl;
	short want; /* events a blocked TLS call waits for (0: none) */
	struct addrinfo *ai_list;
	struct addrinfo *ai_cur;
	uint64_t deadline; /* ms, monotonic: end of backoff or of a timeout; 0 none */
	uint64_t backoff_ms;
	uint64_t up_since;
	struct frame *meta; /* type 254: the meta header frame of this connection */
	size_t meta_off;
	bool meta_pending;
	bool stdout_restore;
	int stdout_fl;
	char dest[300]; /* host:port as configured */
	char peer[80];  /* address being tried or connected */
	bool ignored_input_logged;
	bool ticket_seen; /* the server sent a TLS 1.3 session ticket: it accepted us */
	uint64_t connections;
	uint64_t frames_sent;
	uint64_t bytes_sent;
};

/* 0, or -1 with err. `now` is the monotonic clock in ms. */
int sender_init(struct sender *s, const struct client_conf *c, struct framer *fr, uint64_t now,
                char *err, size_t errlen);
void sender_free(struct sender *s);
/* Fills the socket and resolver entries of the loop's poll set (fd -1 when unused). */
void sender_pollfds(const struct sender *s, bool have_work, const struct framequeue *q,
                    struct pollfd *sock, struct pollfd *res);
/* The time (ms) at which sender_step must run even without events; 0 for none. */
uint64_t sender_deadline(const struct sender *s);
/*
 * Reacts to the events of the last poll() and to expired deadlines, and
 * writes what it can. 0, or -1 when the destination is broken for good.
 */
int sender_step(struct sender *s, short sock_revents, short res_revents, struct framequeue *q,
                uint64_t now);
/*
 * The source is done and the queue is empty: close the connection politely
 * (TLS close_notify, then wait for the server to close, until `deadline`).
 */
void sender_finish(struct sender *s, uint64_t now, uint64_t deadline);
static inline bool sender_done(const struct sender *s)
{
	return s->state == SND_DONE;
}

#endif
