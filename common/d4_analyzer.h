/*
 * d4_analyzer.h — what a C analyzer links: the analyzer protocol (docs/analyzer-protocol.md),
 * the offline mode, and per-session reassembly of lines and pcap records.
 *
 * An analyzer is a program that d4-dispatch starts with a Unix socket as its standard input
 * and that an operator may also run by hand on a saved D4 stream. Both cases reduce to the
 * same callbacks, so an analyzer is written once:
 *
 *   static const struct d4_analyzer_def def = {
 *           .name = "null", .start_cb = on_start, .data_cb = on_data, .end_cb = on_end,
 *   };
 *   int main(int argc, char **argv) { struct my_ctx c = {0}; return d4_analyzer_main(argc, argv, &def, &c); }
 *
 * d4_analyzer_main() reads descriptor 0 with plain blocking POSIX I/O (no event loop: an
 * analyzer does one thing at a time) and tells the modes apart by the first byte: the magic
 * "D4AP" starts the protocol, the version byte 0x01 a saved D4 stream. In protocol mode it
 * answers the handshake, keeps the sessions, and acknowledges cumulatively after each batch of
 * records it read in one read() (having called flush_cb first: an ACK covers only what the
 * analyzer made durable). A malformed message from the dispatcher is a bug in the dispatcher:
 * it is logged and the analyzer exits non-zero, never limps on.
 *
 * The messages are encoded and decoded by d4_anproto.h, shared with d4-dispatch.
 *
 * Ownership: the library owns every struct d4_an_session and the payload buffers; the analyzer
 * owns what it hangs on session->user (allocated in start_cb, released in end_cb, which the
 * library calls exactly once for every started session, also when it stops on an error).
 * Pointers given to a callback are valid during that call only.
 *
 * The reassembly helpers own a bounded buffer each (one line, or one pcap record): a sensor
 * cannot make an analyzer grow without limit.
 */
#ifndef D4_ANALYZER_H
#define D4_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_anproto.h"
#include "d4_proto.h"

/* END reason beyond enum d4_reason, never on the wire: BYE, EOF or an error came first.
 * (The wire's own extra reason is D4_AP_END_RESTARTED, 255, from d4_anproto.h.) */
#define D4_AN_END_STOPPED 254u

struct d4_an_session {
	uint64_t id;    /* the dispatcher's session id; offline: 1, 2, 3 ... */
	uint64_t time;  /* START time, seconds since the epoch (offline: first frame's timestamp) */
	uint64_t end_time; /* set before end_cb: END time (offline: last frame's timestamp), else 0 */
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t type;         /* the session's data type: 254 for a meta-defined session, never 2 */
	uint8_t addr[16];     /* peer, IPv4 as v4-mapped IPv6; offline: all zero */
	uint16_t port;        /* offline: 0 */
	const char *meta_type; /* NUL-terminated; "" unless type 254 */
	const char *meta_json; /* NUL-terminated meta header as sent; "" unless type 254 */
	size_t meta_json_len;
	uint64_t records; /* DATA delivered so far in this session */
	uint64_t bytes;   /* payload bytes delivered so far */
	void *user;       /* the analyzer's per-session state */
};

/*
 * Callbacks return 0, or a negative value to stop: d4_analyzer_main() then ends the open
 * sessions, sends no further ACK and returns 1. Every callback is optional.
 */
struct d4_analyzer_def {
	const char *name;  /* sent in REGISTER; prefix of the library's stderr lines */
	unsigned flags;    /* D4_AP_REGISTER_NO_ACK: the analyzer never acknowledges */
	const char *usage; /* the analyzer's own options, for --help (may be NULL) */
	/* A command-line argument the library does not know: arg is it, next the one after it
	 * (NULL at the end). Returns how many it used (1 or 2), 0 if unknown, < 0 if invalid. */
	int (*option_cb)(void *ctx, const char *arg, const char *next);
	/* One param.* option of the queue, from HELLO (protocol mode only). */
	int (*params_cb)(void *ctx, const char *key, const char *value);
	int (*start_cb)(void *ctx, struct d4_an_session *s);
	/* One D4 frame of the session: its decoded header and payload. Type-2 frames of a 254
	 * session are delivered too (the stream as the sensor sent it); skip h->type == 2 to see
	 * only the data. */
	int (*data_cb)(void *ctx, struct d4_an_session *s, const struct d4_header *h,
	               const uint8_t *payload, size_t len);
	/* reason: enum d4_reason (0 = clean end), D4_AP_END_RESTARTED or D4_AN_END_STOPPED. */
	int (*end_cb)(void *ctx, struct d4_an_session *s, unsigned reason);
	/* Make everything delivered so far durable (and visible): called after each batch of
	 * messages that delivered anything, before the ACK that covers it, and at the end. */
	int (*flush_cb)(void *ctx);
	/* About once a second, whether or not records flow (timers: rotation, expiry). */
	int (*idle_cb)(void *ctx);
};

/*
 * Runs the analyzer on descriptor 0 until BYE or end of input. Options it knows:
 * --key KEY / --key-file FILE (offline: check every frame's HMAC), -h/--help; others go to
 * def->option_cb. Returns the process exit status: 0 after BYE or a whole offline stream,
 * 1 on an error (logged on stderr), 2 on a usage error.
 */
int d4_analyzer_main(int argc, char **argv, const struct d4_analyzer_def *def, void *ctx);

/* "3f2a…" uuid/type tag used in analyzer output: 8 hex digits of the uuid, '/', the type. */
#define D4_AN_TAG_LEN 16
void d4_an_session_tag(const struct d4_an_session *s, char out[D4_AN_TAG_LEN]);

/* ---- reassembly helpers ---- */

#define D4_REASM_MALFORMED 1 /* returned once, by the call that found the data malformed */

/* Flags of a line given to a d4_line_cb. */
#define D4_LINE_TRUNCATED 0x01u    /* longer than max_line: its first max_line bytes; rest dropped */
#define D4_LINE_UNTERMINATED 0x02u /* the session ended without a final newline */

/* A line without its "\n" (and without the "\r" of a CRLF). Returns 0, or non-zero to stop. */
typedef int (*d4_line_cb)(void *arg, const uint8_t *line, size_t len, unsigned flags);

struct d4_reasm_lines {
	size_t max_line;
	uint8_t *buf; /* the partial line held between feeds; at most max_line bytes */
	size_t have;
	size_t cap;
	bool overlong;      /* the held line passed max_line: bytes are dropped until "\n" */
	uint64_t truncated; /* lines cut at max_line */
};

/* max_line 0 means 65536. No allocation until a line spans two feeds. */
void d4_reasm_lines_init(struct d4_reasm_lines *r, size_t max_line);
void d4_reasm_lines_free(struct d4_reasm_lines *r);
/* Gives each complete line in order. 0, -1 (out of memory) or the callback's non-zero return. */
int d4_reasm_lines_feed(struct d4_reasm_lines *r, const uint8_t *buf, size_t len, d4_line_cb cb,
                        void *arg);
/* End of the session: a held partial line is given with D4_LINE_UNTERMINATED. */
int d4_reasm_lines_end(struct d4_reasm_lines *r, d4_line_cb cb, void *arg);

/* pcap 2.4 stream: global header, then per packet a 16-byte record header and caplen bytes. */
#define D4_PCAP_GLOBAL_SIZE 24
#define D4_PCAP_RECORD_SIZE 16
#define D4_PCAP_MAX_CAPLEN 262144u /* largest record accepted, whatever the snaplen says */

struct d4_pcap_global {
	bool big_endian; /* the writer was big-endian (magic read as 0xd4c3b2a1 or 0x4d3cb2a1) */
	bool nsec;    /* timestamps in nanoseconds (magic 0xa1b23c4d) */
	uint16_t version_major, version_minor;
	int32_t thiszone;
	uint32_t sigfigs;
	uint32_t snaplen;
	uint32_t linktype;
};

struct d4_pcap_record {
	uint32_t ts_sec;
	uint32_t ts_frac; /* microseconds, or nanoseconds when global->nsec */
	uint32_t caplen;
	uint32_t len;
	const uint8_t *data; /* caplen bytes */
};

struct d4_pcap_cbs {
	int (*global_cb)(void *arg, const struct d4_pcap_global *g);
	int (*record_cb)(void *arg, const struct d4_pcap_global *g, const struct d4_pcap_record *r);
};

struct d4_reasm_pcap {
	struct d4_pcap_global global;
	bool have_global;
	bool failed;       /* malformed: the rest of the session is skipped */
	const char *why;   /* what was malformed (static text) */
	uint32_t max_caplen; /* from the snaplen, within [65535, D4_PCAP_MAX_CAPLEN] */
	uint8_t *buf;      /* a header or record spanning feeds */
	size_t have;
	size_t cap;
	uint64_t records;
	uint64_t skipped; /* bytes skipped after a failure */
};

void d4_reasm_pcap_init(struct d4_reasm_pcap *p);
void d4_reasm_pcap_free(struct d4_reasm_pcap *p);
/*
 * Gives the global header once, then each record whole. Returns 0, -1 (out of memory), the
 * callback's non-zero return, or D4_REASM_MALFORMED (p->why says what) once; after that the
 * session's bytes are counted in p->skipped and dropped.
 */
int d4_reasm_pcap_feed(struct d4_reasm_pcap *p, const uint8_t *buf, size_t len,
                       const struct d4_pcap_cbs *cbs, void *arg);
/* End of the session: D4_REASM_MALFORMED (why: truncated) when a record was cut short, else 0. */
int d4_reasm_pcap_end(struct d4_reasm_pcap *p);

#endif
