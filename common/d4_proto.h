/*
 * d4_proto.h — the D4 encapsulation protocol v1: header codec, HMAC, streaming decoder.
 *
 * A D4 stream is a sequence of frames, each a 62-byte header followed by `size`
 * bytes of payload. Every multi-byte field is little-endian and is read and
 * written byte by byte here (never through a struct cast). The HMAC-SHA256
 * covers the header with its 32 hmac bytes zeroed, followed by the payload.
 * docs/protocol.md is the one description of the byte layout and of every
 * refusal reason; enum d4_reason below is its mirror in code.
 *
 * The decoder is fed arbitrary chunks and reports events (header, frame,
 * error). It checks a header before it buffers a single payload byte, hashes
 * payload bytes as they arrive (one pass, no copy for hashing), and hands a
 * payload out without copying when the caller's chunk held it whole.
 */
#ifndef D4_PROTO_H
#define D4_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define D4_VERSION 1
#define D4_HEADER_SIZE 62
#define D4_UUID_SIZE 16
#define D4_HMAC_SIZE 32
#define D4_OFF_VERSION 0
#define D4_OFF_TYPE 1
#define D4_OFF_UUID 2
#define D4_OFF_TIMESTAMP 18
#define D4_OFF_HMAC 26
#define D4_OFF_SIZE 58
#define D4_DEFAULT_MAX_PAYLOAD 1000000u

enum d4_type {
	D4_TYPE_RESERVED = 0,
	D4_TYPE_PCAP = 1,
	D4_TYPE_META_HEADER = 2,
	D4_TYPE_LOG = 3,
	D4_TYPE_DNSCAP = 4,
	D4_TYPE_PCAPNG = 5,
	D4_TYPE_NDJSON = 6,
	D4_TYPE_YAF = 7,
	D4_TYPE_PASSIVEDNS = 8,
	D4_TYPE_META_DEFINED = 254,
};

/* True for the types the protocol defines (1..8 and 254). */
bool d4_type_is_known(unsigned type);
/* A meta-type name (the meta header's "type"): 1..64 printable ASCII bytes, no blank. */
bool d4_meta_type_name_ok(const char *name);
/* Short lowercase name ("pcap", "meta-header", ...), "unknown" otherwise. */
const char *d4_type_name(unsigned type);

/*
 * Why a stream, a frame or a session is refused. The first group is decided
 * by this library from the bytes alone; the second by the server from its
 * policy (registrations, blocklists, session rules). Names are stable: they
 * appear in logs, in statistics keys and in the REST API.
 */
enum d4_reason {
	D4_OK = 0,
	/* wire level: d4_header_validate() and the decoder */
	D4_R_BAD_VERSION,
	D4_R_UNKNOWN_TYPE,
	D4_R_UUID_NOT_V4,
	D4_R_PAYLOAD_TOO_LARGE,
	D4_R_HMAC_MISMATCH,
	D4_R_TRUNCATED,
	/* session and policy level: decided by d4-ingest */
	D4_R_UUID_CHANGED,
	D4_R_TYPE_NOT_ACCEPTED,
	D4_R_TYPE_CHANGED,
	D4_R_META_HEADER_MISSING,
	D4_R_META_HEADER_INVALID,
	D4_R_META_HEADER_TOO_LARGE,
	D4_R_META_TYPE_NOT_ACCEPTED,
	D4_R_SENSOR_NOT_REGISTERED,
	D4_R_SENSOR_PENDING,
	D4_R_SENSOR_REJECTED,
	D4_R_UUID_BLOCKED,
	D4_R_ADDRESS_BLOCKED,
	D4_R_TEMPORARY_BAN,
	D4_R_DUPLICATE_SESSION,
	D4_R_HEADER_TIMEOUT,
	D4_R_TIMESTAMP_SKEW,
	D4_R_CLIENT_CERT,
	D4_R_RATE_LIMIT,
	D4_R_KICKED,
	D4_R_PAYLOAD_TIMEOUT,
	D4_R_COUNT /* number of reasons, keep last */
};

/* Stable snake_case name of a reason ("hmac_mismatch"); "invalid" if out of range. */
const char *d4_reason_name(enum d4_reason r);
/* One-line human explanation of a reason. */
const char *d4_reason_text(enum d4_reason r);
/* Reverse of d4_reason_name(); -1 when the name is unknown. */
int d4_reason_from_name(const char *name);

struct d4_header {
	uint8_t version;
	uint8_t type;
	uint8_t uuid[D4_UUID_SIZE];
	uint64_t timestamp; /* seconds since the epoch */
	uint8_t hmac[D4_HMAC_SIZE];
	uint32_t size; /* payload length in bytes */
};

/* Writes exactly D4_HEADER_SIZE bytes. */
void d4_header_encode(const struct d4_header *h, uint8_t out[D4_HEADER_SIZE]);
/* Reads exactly D4_HEADER_SIZE bytes; no validation (see d4_header_validate). */
void d4_header_decode(const uint8_t in[D4_HEADER_SIZE], struct d4_header *h);
/*
 * The checks every receiver makes from the header alone, in this order:
 * version, type known, uuid v4, size <= max_payload.
 */
enum d4_reason d4_header_validate(const struct d4_header *h, uint32_t max_payload);

/*
 * HMAC-SHA256 keyed once, used for many frames. A context is cheap to reuse:
 * d4_hmac_begin() restarts it with the same key.
 */
struct d4_hmac;

struct d4_hmac *d4_hmac_new(const uint8_t *key, size_t key_len);
void d4_hmac_free(struct d4_hmac *m);
/* Re-key an existing context (no-op when the key is unchanged). 0 or -1. */
int d4_hmac_set_key(struct d4_hmac *m, const uint8_t *key, size_t key_len);
/* Starts a frame: hashes the 62 header bytes with the hmac field taken as zeros. */
int d4_hmac_begin(struct d4_hmac *m, const uint8_t header[D4_HEADER_SIZE]);
int d4_hmac_update(struct d4_hmac *m, const uint8_t *data, size_t len);
int d4_hmac_final(struct d4_hmac *m, uint8_t out[D4_HMAC_SIZE]);
/* Constant-time comparison of two HMAC values: true when equal. */
bool d4_hmac_equal(const uint8_t a[D4_HMAC_SIZE], const uint8_t b[D4_HMAC_SIZE]);

/*
 * Encodes a header for `payload` and signs it: h->size is set to len and
 * h->hmac to the HMAC of the frame; `out` receives the encoded header.
 * 0 on success, -1 on a crypto failure.
 */
int d4_frame_sign(struct d4_hmac *m, struct d4_header *h, const uint8_t *payload, size_t len,
                  uint8_t out[D4_HEADER_SIZE]);
/* True when the encoded header's hmac field matches header ‖ payload under m's key. */
bool d4_frame_verify(struct d4_hmac *m, const uint8_t header[D4_HEADER_SIZE],
                     const uint8_t *payload, size_t len);

/* ---- streaming decoder ---- */

enum d4_event_kind {
	D4_EV_NONE = 0, /* every byte given was consumed; feed more */
	D4_EV_HEADER,   /* a valid header is complete; set the key now if needed */
	D4_EV_FRAME,    /* a whole frame: header, payload, hmac status */
	D4_EV_ERROR,    /* refused: ev->reason says why; the decoder stays failed */
};

enum d4_hmac_status {
	D4_HMAC_UNCHECKED = 0, /* no key was set for this frame */
	D4_HMAC_OK,
	D4_HMAC_BAD, /* only reported with report_bad_hmac; otherwise an error */
};

struct d4_event {
	enum d4_event_kind kind;
	enum d4_reason reason;       /* D4_EV_ERROR */
	const struct d4_header *hdr; /* HEADER, FRAME, and ERROR once a header was read */
	const uint8_t *raw_header;   /* the 62 header bytes as received (HEADER, FRAME) */
	const uint8_t *payload;      /* FRAME: valid until the next feed call */
	size_t payload_len;
	enum d4_hmac_status hmac;
};

struct d4_decoder_opts {
	uint32_t max_payload; /* 0 means D4_DEFAULT_MAX_PAYLOAD */
	/* false (default): a bad HMAC is an error event (D4_R_HMAC_MISMATCH).
	 * true: it is a FRAME event with hmac == D4_HMAC_BAD and decoding goes on. */
	bool report_bad_hmac;
};

struct d4_decoder {
	struct d4_decoder_opts opts;
	int state;
	enum d4_reason error;
	uint8_t hdr_raw[D4_HEADER_SIZE];
	size_t hdr_have;
	struct d4_header hdr;
	uint8_t *key; /* owned copy of the key; NULL: HMACs are not checked */
	size_t key_len;
	struct d4_hmac *mac; /* owned; made from key when a frame starts, freed by trim */
	bool mac_active;     /* a key applies to the current frame */
	uint8_t *buf;        /* payload being gathered, capacity buf_cap */
	size_t buf_cap;
	size_t payload_have;
	uint64_t frames;   /* complete frames decoded */
	uint64_t bytes_in; /* bytes consumed */
};

void d4_decoder_init(struct d4_decoder *d, const struct d4_decoder_opts *opts);
void d4_decoder_free(struct d4_decoder *d);
/*
 * Sets the HMAC key checked from now on (call before the first feed, or on a
 * D4_EV_HEADER event to pick a key by the header's uuid). NULL clears it.
 * Returns 0, or -1 if the crypto library failed.
 */
int d4_decoder_set_key(struct d4_decoder *d, const uint8_t *key, size_t key_len);
/*
 * Consumes bytes from buf until an event happens or the input is used up;
 * returns how many bytes were consumed and fills *ev. Call it again with the
 * rest (possibly zero bytes) until it reports D4_EV_NONE.
 */
size_t d4_decoder_feed(struct d4_decoder *d, const uint8_t *buf, size_t len, struct d4_event *ev);
/* At end of stream: D4_OK if it ended on a frame boundary, else D4_R_TRUNCATED
 * (or the error the decoder already failed with). */
enum d4_reason d4_decoder_finish(const struct d4_decoder *d);
enum d4_decoder_position {
	D4_POS_BOUNDARY = 0, /* between frames (or before the first) */
	D4_POS_HEADER,       /* part of a header received */
	D4_POS_PAYLOAD,      /* header done, payload in progress */
	D4_POS_FAILED,
};
/* Where the stream stands (timeouts depend on it). */
enum d4_decoder_position d4_decoder_position(const struct d4_decoder *d);
/* Releases the payload buffer, and between frames the HMAC context, while the
 * stream is idle (an idle sensor then costs the decoder about 300 bytes). */
void d4_decoder_trim(struct d4_decoder *d);

#endif
