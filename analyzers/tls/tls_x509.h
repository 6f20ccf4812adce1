/*
 * tls_x509.h — one X.509 certificate (DER) parsed with OpenSSL into the fields the TLS store
 * indexes and the weak-key detector needs.
 *
 * tls_x509_parse() takes (const uint8_t *der, size_t len), hands exactly len bytes to
 * d2i_X509 and refuses trailing bytes. Hashes are computed over the DER as given. Names are
 * one-line RFC 2253 strings (XN_FLAG_RFC2253, UTF-8 kept, not escaped to \XX). Times are unix
 * seconds (GeneralizedTime beyond 2038 works: int64). A field OpenSSL cannot render gives
 * TLS_R_X509_FIELD and no result (we never store half a certificate).
 *
 * Ownership: *out is filled with heap strings/arrays; tls_cert_info_free() releases them and
 * zeroes the struct (safe on a zeroed struct and twice). On refusal nothing stays allocated.
 *
 * Owner: helper A of issue 8. No global state; thread-compatible.
 */
#ifndef TLS_X509_H
#define TLS_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_reason.h"

enum tls_key_type {
	TLS_KEY_UNKNOWN = 0,
	TLS_KEY_RSA,
	TLS_KEY_RSA_PSS,
	TLS_KEY_EC,
	TLS_KEY_DSA,
	TLS_KEY_ED25519,
	TLS_KEY_ED448,
	TLS_KEY_DH,
};

enum tls_san_type { TLS_SAN_DNS = 1, TLS_SAN_IP = 2 };

struct tls_san {
	enum tls_san_type type;
	char *value; /* DNS name as sent, or textual IPv4/IPv6 address */
};

struct tls_cert_info {
	char sha1[41];         /* lowercase hex of SHA-1(DER) */
	char sha256[65];       /* lowercase hex of SHA-256(DER) */
	char *subject;         /* RFC 2253, e.g. "CN=localhost,O=Org" ("" for an empty name) */
	char *issuer;
	char *subject_cn;      /* last CN of the subject, NULL if none */
	int64_t not_before;    /* unix seconds */
	int64_t not_after;
	char *serial;          /* lowercase hex, no leading zeros ("0" for zero), '-' if negative */
	char sig_alg[64];      /* OpenSSL long name, e.g. "sha256WithRSAEncryption" */
	size_t n_san;
	struct tls_san *san;   /* DNS and IP SANs in certificate order; others skipped */
	enum tls_key_type key_type;
	const char *key_type_name; /* "rsa", "rsa-pss", "ec", "dsa", "ed25519", "ed448", "dh", "unknown" */
	int key_bits;          /* EVP_PKEY_get_bits */
	uint8_t *rsa_n;        /* RSA modulus, big-endian, no leading zero byte (RSA/RSA-PSS) */
	size_t rsa_n_len;
	uint8_t *rsa_e;        /* RSA public exponent, big-endian */
	size_t rsa_e_len;
	uint64_t rsa_e_u64;    /* exponent when it fits in 64 bits, else 0 */
	char ec_curve[32];     /* EC curve short name ("prime256v1", "secp384r1"), "" otherwise */
	char spki_sha256[65];  /* lowercase hex of SHA-256(SubjectPublicKeyInfo DER) */
	bool is_ca;            /* basicConstraints CA:TRUE */
	bool self_signed;      /* subject == issuer (names only, signature not checked) */
};

enum tls_reason tls_x509_parse(const uint8_t *der, size_t len, struct tls_cert_info *out);

/* Lowercase hex SHA-256 of the DER as given, without parsing it (the store's key). Parsing
 * costs ~100-150 us per certificate with OpenSSL 3.0 (d2i_X509 decodes the key through the
 * provider layer), hashing a few us: look the hash up first and parse only certificates not
 * seen before. false only if the digest fails. */
bool tls_x509_sha256(const uint8_t *der, size_t len, char out[65]);
void tls_cert_info_free(struct tls_cert_info *ci);

#endif
