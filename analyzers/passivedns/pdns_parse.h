/*
 * pdns_parse.h — the two inputs of the passive DNS analyzer, parsed and normalised into one
 * record shape: gamelinux/passivedns CSV lines (D4 type 8) and Passive DNS COF NDJSON objects
 * (a 254 meta-type, for imports from other passive DNS sources).
 *
 * Normalisation is done here, once, so that the store and every lookup compare the same
 * spelling: names lowercase ASCII without the trailing dot (IDN in its A-label form), IPv4 and
 * IPv6 rdata in inet_ntop()'s canonical form (and kept as bytes), names inside rdata of the
 * name-valued types (NS, CNAME, PTR, DNAME, MX) normalised like names. TXT and other rdata stay
 * as the sensor gave them (case matters there).
 *
 * A refused line names its reason (enum pdns_reason); the analyzer counts it and goes on.
 * Parsers take (buf, len), never read past len and never allocate except in pdns_parse_cof
 * (jansson).
 */
#ifndef PDNS_PARSE_H
#define PDNS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PDNS_NAME_MAX 253   /* a DNS name in text form, without the trailing dot */
#define PDNS_RDATA_MAX 2048 /* longest rdata text kept (longer: refused as oversize) */
#define PDNS_FIELD_MAX 256  /* timestamp, addresses, class, ttl, count */
#define PDNS_TYPE_TEXT_MAX 16 /* "TYPE65535" and the longest mnemonic fit */

/* Why an input line was refused (or not stored). Stable names: pdns_reason_name(). */
enum pdns_reason {
	PDNS_OK = 0,
	PDNS_R_FIELDS,    /* "fields": not 9 "||"-separated fields */
	PDNS_R_TIMESTAMP, /* "timestamp": not seconds[.fraction] */
	PDNS_R_TTL,       /* "ttl": not a decimal number below 2^32 */
	PDNS_R_COUNT,     /* "count": not a decimal number below 2^48 */
	PDNS_R_BINARY,    /* "binary": a control byte (below 0x20, or 0x7f) */
	PDNS_R_UTF8,      /* "utf8": bytes that are not UTF-8 */
	PDNS_R_OVERSIZE,  /* "oversize": a field longer than its limit */
	PDNS_R_NAME,      /* "name": empty name or one IDNA refuses */
	PDNS_R_TYPE,      /* "type": a type that is neither a mnemonic, TYPEnnn nor a number */
	PDNS_R_RDATA,     /* "rdata": A/AAAA rdata that is no address (and not NXDOMAIN) */
	PDNS_R_TRUNCATED, /* "truncated": a line longer than the reassembly limit */
	PDNS_R_JSON,      /* "json": a COF line that is not a JSON object with the fields needed */
	PDNS_R__COUNT
};

const char *pdns_reason_name(enum pdns_reason r);

/* How the rdata is held: an address (as bytes) or a string. */
enum pdns_rdata_kind {
	PDNS_RD_STR = 's',
	PDNS_RD_V4 = '4',
	PDNS_RD_V6 = '6',
};

struct pdns_rec {
	uint64_t ts;     /* seconds since the epoch (fraction dropped) */
	uint64_t count;  /* CSV count column; 1 for COF unless it gives one */
	uint64_t ts_last; /* COF time_last (CSV: = ts) */
	uint32_t ttl;
	uint16_t rrtype;
	uint8_t rdata_kind; /* enum pdns_rdata_kind */
	uint8_t addr[16];   /* the address when kind is V4 (4 bytes) or V6 */
	size_t name_len;
	size_t rdata_len;
	char name[PDNS_NAME_MAX + 1];   /* NUL-terminated, normalised */
	char rdata[PDNS_RDATA_MAX + 1]; /* NUL-terminated, normalised text form */
};

/* RR type number <-> text. pdns_rrtype_name writes the mnemonic, or "TYPE123" (RFC 3597). */
void pdns_rrtype_name(uint16_t type, char out[PDNS_TYPE_TEXT_MAX]);
/* Mnemonic (any case), "TYPEnnn" or a decimal number. 0 on success, -1 if unknown. */
int pdns_rrtype_parse(const char *text, size_t len, uint16_t *type);

/*
 * Name normalisation: lowercase ASCII, one trailing dot dropped ("." stays "."), non-ASCII
 * UTF-8 converted to its A-label form with libidn2 (kept as lowercase UTF-8 when IDNA refuses
 * it: passive DNS records what was seen). out has PDNS_NAME_MAX + 1 bytes.
 */
enum pdns_reason pdns_normalise_name(const uint8_t *in, size_t len, char *out, size_t *out_len);

/* rdata of rrtype normalised into r->rdata, r->rdata_kind, r->addr. */
enum pdns_reason pdns_normalise_rdata(struct pdns_rec *r, const uint8_t *in, size_t len);

/* A line is UTF-8 without control bytes (tab allowed). PDNS_OK, PDNS_R_BINARY or PDNS_R_UTF8. */
enum pdns_reason pdns_check_text(const uint8_t *buf, size_t len);

/* One CSV line without its newline: ts||client||server||class||query||type||answer||ttl||count */
enum pdns_reason pdns_parse_csv(const uint8_t *buf, size_t len, struct pdns_rec *out);

/*
 * One COF NDJSON line: a JSON object with rrname, rrtype (text or number), rdata (a string or an
 * array of strings), time_first, time_last and optionally count. cb is called once per rdata
 * element (one record each); an element that does not normalise is counted in *skipped and
 * skipped. Returns PDNS_OK, a reason when the whole line is refused, or PDNS_R__COUNT when cb
 * returned non-zero (stop).
 */
typedef int (*pdns_rec_cb)(void *arg, const struct pdns_rec *r);
enum pdns_reason pdns_parse_cof(const uint8_t *buf, size_t len, struct pdns_rec *scratch,
                                pdns_rec_cb cb, void *arg, uint64_t *skipped);

/* True if text is an IPv4 or IPv6 address; fills kind and addr. */
bool pdns_parse_addr(const char *text, uint8_t *kind, uint8_t addr[16]);

#endif
