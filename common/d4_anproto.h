/*
 * d4_anproto.h — the analyzer protocol (docs/analyzer-protocol.md): the
 * messages d4-dispatch and an analyzer exchange on the analyzer's standard
 * input, a Unix stream socket.
 *
 * The framing is the ingest link's (common/d4_ipc.h): u32 len | u8 kind |
 * body, little-endian, strings as u16 length + bytes. The kinds are 32..38 so
 * that a message of one protocol is never taken for one of the other. The
 * dispatcher sends the 4-byte magic "D4AP" once, before its first message;
 * the analyzer's reader is told to expect it.
 *
 * Both sides use this file: the dispatcher (d4-dispatch/analyzer.c) and the
 * analyzer library (common/d4_analyzer.c). As on the ingest link, every
 * decoder checks every length against the end of the body and names what is
 * wrong when it refuses; the caller decides what a malformed message costs
 * (the dispatcher kills and restarts the analyzer).
 */
#ifndef D4_ANPROTO_H
#define D4_ANPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_ipc.h"
#include "d4_proto.h"

#define D4_AP_MAGIC "D4AP"
#define D4_AP_MAGIC_LEN 4
#define D4_AP_VERSION 1
#define D4_AP_PREFIX 5                   /* u32 len + u8 kind */
#define D4_AP_MAX_BODY (64u * 1024u * 1024u) /* + 1 for the kind byte, as on the ingest link */
#define D4_AP_STR_MAX 65535u
#define D4_AP_META_MAX 65536u

enum d4_ap_kind {
	D4_AP_HELLO = 32,    /* dispatcher -> analyzer: version, queue name, params */
	D4_AP_REGISTER = 33, /* analyzer -> dispatcher: version, flags, analyzer name */
	D4_AP_START = 34,    /* a session begins (or is announced again after a restart) */
	D4_AP_DATA = 35,     /* one D4 frame of a session, numbered */
	D4_AP_END = 36,      /* a session ended */
	D4_AP_ACK = 37,      /* analyzer -> dispatcher: every record up to seq is done */
	D4_AP_BYE = 38,      /* either way: orderly shutdown */
};

#define D4_AP_REGISTER_NO_ACK 0x01 /* REGISTER flag: count a record acknowledged when written */
#define D4_AP_END_RESTARTED 255    /* END reason: earlier data went to a previous instance */

const char *d4_ap_kind_name(unsigned kind);

/* A string inside a message: not NUL-terminated. */
struct d4_ap_str {
	const char *p;
	size_t len;
};

struct d4_ap_param {
	struct d4_ap_str key;
	struct d4_ap_str value;
};

struct d4_ap_hello {
	uint16_t version;
	struct d4_ap_str queue;
	uint16_t n_params;
	const uint8_t *params; /* n_params x (str key, str value), checked by the decoder */
	size_t params_len;
};

/* Walks the params of a decoded HELLO. */
struct d4_ap_param_iter {
	const uint8_t *p;
	size_t left;
	unsigned n;
};
void d4_ap_param_iter_init(struct d4_ap_param_iter *it, const struct d4_ap_hello *h);
/* true and *out filled while params remain. */
bool d4_ap_param_next(struct d4_ap_param_iter *it, struct d4_ap_param *out);

struct d4_ap_register {
	uint16_t version;
	uint8_t flags;
	struct d4_ap_str name;
};

struct d4_ap_start {
	uint64_t session;
	uint64_t time;
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t type; /* 254 for a session routed by its meta-type */
	uint8_t addr[16];
	uint16_t port;
	struct d4_ap_str meta_type; /* empty unless 254 */
	struct d4_ap_str meta_json; /* empty unless 254 */
};

struct d4_ap_data {
	uint64_t session;
	uint64_t seq;
	const uint8_t *frame; /* 62-byte D4 header + payload */
	size_t frame_len;
	const uint8_t *payload; /* frame + 62 */
	size_t payload_len;
};

struct d4_ap_end {
	uint64_t session;
	uint64_t time;
	uint8_t reason; /* enum d4_reason, or D4_AP_END_RESTARTED */
};

struct d4_ap_msg {
	enum d4_ap_kind kind;
	union {
		struct d4_ap_hello hello;
		struct d4_ap_register reg;
		struct d4_ap_start start;
		struct d4_ap_data data;
		struct d4_ap_end end;
		uint64_t seq; /* ACK */
	} u;
};

/* ---- encoders: *_len gives the size (prefix included), put writes exactly that ---- */

size_t d4_ap_hello_len(size_t queue_len, const struct d4_ap_param *params, size_t n);
void d4_ap_put_hello(uint8_t *out, uint16_t version, const char *queue, size_t queue_len,
                     const struct d4_ap_param *params, size_t n);
size_t d4_ap_register_len(size_t name_len);
void d4_ap_put_register(uint8_t *out, uint16_t version, uint8_t flags, const char *name,
                        size_t name_len);
size_t d4_ap_start_len(const struct d4_ap_start *m);
void d4_ap_put_start(uint8_t *out, const struct d4_ap_start *m);
/* DATA is written as this fixed head followed by the frame (62-byte header + payload). */
#define D4_AP_DATA_HEAD (D4_AP_PREFIX + 16)
void d4_ap_put_data_head(uint8_t *out, uint64_t session, uint64_t seq, size_t frame_len);
#define D4_AP_END_LEN (D4_AP_PREFIX + 17)
void d4_ap_put_end(uint8_t *out, const struct d4_ap_end *m);
#define D4_AP_ACK_LEN (D4_AP_PREFIX + 8)
void d4_ap_put_ack(uint8_t *out, uint64_t seq);
#define D4_AP_BYE_LEN D4_AP_PREFIX
void d4_ap_put_bye(uint8_t *out);

/*
 * Decodes one message body of the given kind. 0, or -1 with *why naming what
 * is wrong (unknown kind, short body, bad field, trailing bytes).
 */
int d4_ap_decode(unsigned kind, const uint8_t *body, size_t len, struct d4_ap_msg *out,
                 const char **why);

/*
 * An incremental reader: the framing of common/d4_ipc.h (d4_msg_reader), then
 * d4_ap_decode. With expect_magic (the analyzer's side) the first four bytes
 * must be "D4AP".
 */
struct d4_ap_reader {
	struct d4_msg_reader m;
	size_t magic_have;
	bool expect_magic;
};

enum d4_ap_status {
	D4_AP_NEED_MORE = 0,
	D4_AP_MESSAGE = 1,
	D4_AP_BAD = -1,
};

void d4_ap_reader_init(struct d4_ap_reader *r, bool expect_magic);
void d4_ap_reader_free(struct d4_ap_reader *r);
/*
 * Consumes bytes until one message is complete (D4_AP_MESSAGE, *msg valid
 * until the next call) or the input is used up (D4_AP_NEED_MORE); *used says
 * how much was taken. D4_AP_BAD: *why says what; the reader stays failed.
 */
enum d4_ap_status d4_ap_reader_feed(struct d4_ap_reader *r, const uint8_t *buf, size_t len,
                                    size_t *used, struct d4_ap_msg *msg, const char **why);

#endif
