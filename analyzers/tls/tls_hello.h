/*
 * tls_hello.h — ClientHello and ServerHello parsing, and the fingerprints built from them:
 * JA3 and JA3S (salesforce/ja3) and JA4 with its _r, _o and _ro forms (FoxIO JA4, the
 * BSD-3-Clause part: TLS client only; JA4S/JA4X/JA4L are under another licence and absent).
 *
 * The parsers take the body of one handshake message (after the 4-byte handshake header),
 * as (const uint8_t *, size_t), never read past it, and compute every fingerprint at once:
 * the result holds no pointer into the input, so the input may be a transient TCP segment.
 * docs/tls-fingerprints.md states the exact algorithms and every corner case chosen.
 *
 * Ownership: a parse fills *out and allocates ONE block (out->mem_) holding every variable
 * length string and array; tls_*_hello_free() releases it and zeroes the struct. Calling
 * free on a zeroed struct, or twice, is safe. On refusal nothing stays allocated.
 * The strings are NUL-terminated; sni and alpn values are the bytes as sent (they may hold any
 * byte but NUL, which ends a value early: a caller writing JSON must escape them).
 *
 * Owner: helper A of issue 8. No global state; thread-compatible.
 */
#ifndef TLS_HELLO_H
#define TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_reason.h"

#define TLS_JA4_LEN 36 /* "t13d1516h2_8daaf6152771_e5627efa2ab1" */
#define TLS_MD5_HEX_LEN 32

/* GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa. */
static inline bool tls_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

struct tls_bytes {
	const char *s; /* NUL-terminated copy */
	size_t len;    /* bytes before the NUL as sent (s may be shorter if the value held a NUL) */
};

struct tls_client_hello {
	uint16_t legacy_version; /* ClientHello.legacy_version (the JA3 SSLVersion) */
	uint16_t version;        /* highest non-GREASE supported_versions entry, else legacy */
	const char *ja3;         /* "771,4865-4866,0-23,29-23,0" (GREASE removed) */
	char ja3_md5[TLS_MD5_HEX_LEN + 1];
	char ja4[TLS_JA4_LEN + 1];    /* sorted, hashed */
	char ja4_o[TLS_JA4_LEN + 1];  /* original order, hashed (SNI and ALPN kept) */
	const char *ja4_r;            /* sorted, raw */
	const char *ja4_ro;           /* original order, raw */
	struct tls_bytes sni;         /* first host_name of server_name; s == NULL if absent */
	size_t n_alpn;                /* ALPN protocols in order sent; alpn[0] is the first */
	const struct tls_bytes *alpn;
	size_t n_versions;            /* supported_versions as sent (GREASE included) */
	const uint16_t *versions;
	size_t n_ciphers;             /* cipher suites as sent (GREASE included) */
	const uint16_t *ciphers;
	size_t n_extensions;          /* extension types as sent (GREASE included) */
	const uint16_t *extensions;
	void *mem_;                   /* private: the one allocation */
};

struct tls_server_hello {
	uint16_t legacy_version; /* ServerHello.legacy_version (the JA3S SSLVersion) */
	uint16_t version;        /* supported_versions selection if present, else legacy */
	uint16_t cipher;
	uint8_t compression;
	bool hello_retry;        /* random is the HelloRetryRequest magic (RFC 8446 4.1.3) */
	const char *ja3s;        /* "771,49199,65281-0-11-35-16" */
	char ja3s_md5[TLS_MD5_HEX_LEN + 1];
	struct tls_bytes alpn;   /* selected ALPN (TLS <= 1.2 only; 1.3 hides it); s NULL if absent */
	size_t n_extensions;
	const uint16_t *extensions;
	void *mem_;
};

/* body/len: the ClientHello message body, without the 4-byte handshake header. */
enum tls_reason tls_client_hello_parse(const uint8_t *body, size_t len,
				       struct tls_client_hello *out);
void tls_client_hello_free(struct tls_client_hello *ch);

/* body/len: the ServerHello message body, without the 4-byte handshake header. */
enum tls_reason tls_server_hello_parse(const uint8_t *body, size_t len,
				       struct tls_server_hello *out);
void tls_server_hello_free(struct tls_server_hello *sh);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void tls_hex(const uint8_t *in, size_t len, char *out);

#endif
