/*
 * d4_ipc.h — the link between d4-ingest and d4-dispatch (docs/ipc.md).
 *
 * A stream of typed messages over a Unix stream socket:
 *
 *   u32 len (little-endian, bytes after this field) | u8 kind | body
 *
 * Ingest sends sessions and their verified frames; dispatch acknowledges how
 * far it has taken the stream in (queued for every analyzer queue, in memory
 * or spooled), and ingest keeps what is not yet acknowledged so that it can
 * send it again after a reconnect. Nothing an analyzer needs is lost when
 * dispatch restarts.
 *
 * The peer is trusted (same machine, same user), so a malformed message is a
 * bug: the reader reports it and the link is closed, never limped past.
 */
#ifndef D4_IPC_H
#define D4_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_proto.h"

#define D4_IPC_VERSION 1
#define D4_IPC_PREFIX 5 /* u32 len + u8 kind */
/* Largest body: a frame with the largest payload any server allows, plus slack. */
#define D4_IPC_MAX_BODY (64u * 1024u * 1024u)
#define D4_IPC_META_MAX 65535u /* meta header JSON (a u16 length in the analyzer protocol) */

enum d4_ipc_kind {
	D4_IPC_HELLO = 1,  /* ingest -> dispatch: who is talking */
	D4_IPC_OPEN = 2,   /* a session started (or is replayed after a reconnect) */
	D4_IPC_META = 3,   /* the meta header of a 254 session */
	D4_IPC_FRAME = 4,  /* one verified D4 frame of a session */
	D4_IPC_CLOSE = 5,  /* a session ended */
	D4_IPC_RESUME = 6, /* ingest -> dispatch: the counted stream starts at this offset */
	D4_IPC_ACK = 7,    /* dispatch -> ingest: everything before this offset is taken in */
	D4_IPC_PAUSE = 8,  /* dispatch -> ingest: stop reading sensors (queues full) */
	D4_IPC_UNPAUSE = 9 /* dispatch -> ingest: read again */
};

const char *d4_ipc_kind_name(unsigned kind);

#define D4_IPC_OPEN_REPLAY 0x01 /* OPEN sent again after a reconnect */

struct d4_ipc_hello {
	uint16_t version;
	uint16_t worker;   /* ingest worker number */
	uint64_t instance; /* random per ingest process start */
};

struct d4_ipc_open {
	uint64_t session;
	uint64_t time;
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t type; /* the session's first type (2 for a 254 session) */
	uint8_t flags;
	uint8_t addr[16]; /* peer address, v4-mapped for IPv4 */
	uint16_t port;
};

struct d4_ipc_meta {
	uint64_t session;
	const char *meta_type; /* not NUL-terminated: meta_type_len bytes */
	size_t meta_type_len;
	const uint8_t *json; /* the meta header as the sensor sent it */
	size_t json_len;
};

struct d4_ipc_frame {
	uint64_t session;
	const uint8_t *header; /* the 62 header bytes as received */
	const uint8_t *payload;
	size_t payload_len;
};

struct d4_ipc_close {
	uint64_t session;
	uint64_t time;
	uint8_t reason; /* enum d4_reason: D4_OK for a clean end */
};

/* One decoded message; pointers point into the reader's buffer. */
struct d4_ipc_msg {
	enum d4_ipc_kind kind;
	size_t wire_len; /* prefix + body: what it adds to the stream offset */
	union {
		struct d4_ipc_hello hello;
		struct d4_ipc_open open;
		struct d4_ipc_meta meta;
		struct d4_ipc_frame frame;
		struct d4_ipc_close close;
		uint64_t offset; /* RESUME, ACK */
	} u;
};

/* Sizes of the encoded messages (prefix included). */
#define D4_IPC_HELLO_LEN (D4_IPC_PREFIX + 12)
#define D4_IPC_OPEN_LEN (D4_IPC_PREFIX + 52)
#define D4_IPC_CLOSE_LEN (D4_IPC_PREFIX + 17)
#define D4_IPC_OFFSET_LEN (D4_IPC_PREFIX + 8)
#define D4_IPC_FRAME_FIXED (D4_IPC_PREFIX + 8 + D4_HEADER_SIZE) /* + payload */
size_t d4_ipc_meta_len(size_t meta_type_len, size_t json_len);

/* Encoders write exactly the sizes above into out (the caller sized it). */
void d4_ipc_put_hello(uint8_t *out, const struct d4_ipc_hello *m);
void d4_ipc_put_open(uint8_t *out, const struct d4_ipc_open *m);
void d4_ipc_put_meta(uint8_t *out, const struct d4_ipc_meta *m);
/* Writes the fixed part of a FRAME; the payload follows it in the stream. */
void d4_ipc_put_frame_head(uint8_t *out, uint64_t session, const uint8_t header[D4_HEADER_SIZE],
                           size_t payload_len);
void d4_ipc_put_close(uint8_t *out, const struct d4_ipc_close *m);
/* RESUME and ACK. */
void d4_ipc_put_offset(uint8_t *out, enum d4_ipc_kind kind, uint64_t offset);
/* PAUSE and UNPAUSE (prefix only). */
void d4_ipc_put_empty(uint8_t *out, enum d4_ipc_kind kind);

/*
 * Decodes one message body. 0, or -1 with *why naming what is wrong
 * (unknown kind, short body, bad field).
 */
int d4_ipc_decode(enum d4_ipc_kind kind, const uint8_t *body, size_t len, struct d4_ipc_msg *out,
                  const char **why);

/*
 * The framing both message links use (u32 len | u8 kind | body), read
 * incrementally: fed chunks, it yields whole messages, in place when a chunk
 * holds one whole, gathered in its own buffer otherwise (grown only as bytes
 * arrive). The ingest link (d4_ipc_reader below) and the analyzer protocol
 * (d4_ap_reader, common/d4_anproto.h) decode what it yields.
 */
struct d4_msg_reader {
	uint8_t *buf;
	size_t cap;
	size_t have;
	size_t need; /* bytes of the current message, prefix included; 0 while unknown */
	bool failed;
};

enum d4_msg_status {
	D4_MSG_NEED_MORE = 0,
	D4_MSG_WHOLE = 1,
	D4_MSG_BAD = -1,
};

void d4_msg_reader_init(struct d4_msg_reader *r);
void d4_msg_reader_free(struct d4_msg_reader *r);
/*
 * Consumes bytes until one message is whole (D4_MSG_WHOLE: *kind, *body and
 * *body_len, valid until the next call) or the input is used up
 * (D4_MSG_NEED_MORE); *used says how much was taken. A length beyond max_body
 * is D4_MSG_BAD with *why; the reader then stays failed.
 */
enum d4_msg_status d4_msg_reader_feed(struct d4_msg_reader *r, const uint8_t *buf, size_t len,
                                      uint32_t max_body, size_t *used, unsigned *kind,
                                      const uint8_t **body, size_t *body_len, const char **why);

/* The ingest link's reader: the framing above, then d4_ipc_decode. */
struct d4_ipc_reader {
	struct d4_msg_reader m;
};

enum d4_ipc_status {
	D4_IPC_NEED_MORE = 0,
	D4_IPC_MESSAGE = 1,
	D4_IPC_BAD = -1,
};

void d4_ipc_reader_init(struct d4_ipc_reader *r);
void d4_ipc_reader_free(struct d4_ipc_reader *r);
/*
 * Consumes bytes until one message is complete (D4_IPC_MESSAGE, *msg filled,
 * valid until the next call) or the input is used up (D4_IPC_NEED_MORE), and
 * sets *used. When a message is whole in `buf` it is decoded in place,
 * without a copy. D4_IPC_BAD: *why says what; the reader stays failed.
 */
enum d4_ipc_status d4_ipc_reader_feed(struct d4_ipc_reader *r, const uint8_t *buf, size_t len,
                                      size_t *used, struct d4_ipc_msg *msg, const char **why);

#endif
