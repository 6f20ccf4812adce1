/*
 * tls_conn.h — per-connection TLS handshake tracker: the record layer and handshake message
 * reassembly of both directions of one TCP connection, up to the point where the handshake
 * turns encrypted.
 *
 * The caller (the analyzer's flow table, flow.c) feeds the in-order TCP payload of each
 * direction, split anywhere (one byte at a time works). The tracker parses record headers,
 * reassembles the handshake messages it wants (ClientHello, ServerHello, Certificate) and steps
 * over every other byte without copying: a message is copied only when it spans records or
 * feed calls, into a per-direction buffer bounded by the limits. When both directions have
 * nothing more to give (ChangeCipherSpec, application data, ServerHelloDone, a TLS 1.3
 * ServerHello, an alert) feed returns TLS_DONE and every later feed returns at once: the flow
 * can be released. A first record header that is no TLS gives TLS_NOT_TLS after at most 5
 * bytes. A refusal (oversize message, malformed hello, ...) stops that direction, sets the
 * reason, and the feed returns TLS_ERROR once both directions stopped; results gathered so far
 * stay readable in every case.
 *
 * HelloRetryRequest: the client sends a second ClientHello (client_hello[1]); the server's
 * HRR is kept in hello_retry_request and its real ServerHello in server_hello.
 *
 * Ownership: the tracker owns everything it returns; pointers from tls_conn_info() stay valid
 * until tls_conn_free(). The limits struct is copied at creation.
 *
 * Owner: helper A of issue 8. No global state; one tracker per connection, not thread-safe.
 */
#ifndef TLS_CONN_H
#define TLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_hello.h"
#include "tls_reason.h"

#define TLS_DEFAULT_MAX_HELLO 65536u        /* ClientHello/ServerHello body */
#define TLS_DEFAULT_MAX_CERTIFICATE 262144u /* Certificate message body */
#define TLS_DEFAULT_MAX_CERTS 16u           /* certificates kept per chain */

enum tls_dir { TLS_DIR_CLIENT = 0 /* client to server */, TLS_DIR_SERVER = 1 };

enum tls_status {
	TLS_MORE = 0,    /* feed more bytes */
	TLS_DONE = 1,    /* handshake seen as far as it is visible: release the flow */
	TLS_NOT_TLS = 2, /* not a TLS stream (reason NOT_TLS or SSLV2): release the flow */
	TLS_ERROR = 3,   /* a refusal stopped parsing (tls_conn_reason): release the flow */
};

struct tls_limits {
	uint32_t max_hello;       /* 0 means TLS_DEFAULT_MAX_HELLO */
	uint32_t max_certificate; /* 0 means TLS_DEFAULT_MAX_CERTIFICATE */
	uint32_t max_certs;       /* 0 means TLS_DEFAULT_MAX_CERTS */
};

struct tls_der {
	const uint8_t *der; /* one certificate, into the tracker's copy of the message */
	size_t len;
};

/* What the tracker found so far. Every pointer belongs to the tracker. */
struct tls_conn_info {
	unsigned n_client_hello;                 /* 0, 1, or 2 after a HelloRetryRequest */
	struct tls_client_hello client_hello[2];
	bool have_server_hello;                  /* the real ServerHello (not the HRR) */
	struct tls_server_hello server_hello;
	bool have_hello_retry;
	struct tls_server_hello hello_retry_request;
	size_t n_certs;                          /* server certificate chain, leaf first */
	const struct tls_der *certs;
	bool certs_truncated;                    /* more than max_certs: TLS_R_TOO_MANY_CERTS */
	uint16_t record_version;                 /* version of the client's first record header */
	enum tls_reason reason;                  /* first refusal, TLS_R_OK if none */
	enum tls_dir reason_dir;                 /* the direction that gave it */
};

/* NULL on allocation failure. lim may be NULL for the defaults. */
struct tls_conn *tls_conn_new(const struct tls_limits *lim);
/* Safe with NULL. */
void tls_conn_free(struct tls_conn *c);
/* In-order bytes of one direction; returns the connection's status after these bytes. */
enum tls_status tls_conn_feed(struct tls_conn *c, enum tls_dir dir, const uint8_t *data,
			      size_t len);
/* The current status (what the last feed returned; TLS_MORE before any). */
enum tls_status tls_conn_status(const struct tls_conn *c);
const struct tls_conn_info *tls_conn_info(const struct tls_conn *c);
enum tls_reason tls_conn_reason(const struct tls_conn *c);
/* Bytes the tracker holds in its buffers now (for the flow table's memory accounting). */
size_t tls_conn_mem(const struct tls_conn *c);

#endif
