/*
 * tls_reason.h — why the TLS handshake tracker or the certificate parser refused something.
 *
 * One enum for the whole TLS parsing layer (tls_conn.h, tls_hello.h, tls_x509.h), so that a
 * caller keeps one counter array indexed by reason (TLS_R__COUNT entries) and logs one stable
 * name. Names returned by tls_reason_str() are lowercase with '-' and never change: they appear
 * in statistics keys and logs. docs/tls-fingerprints.md lists when each one is given.
 *
 * Owner: helper A of issue 8 (TLS record/handshake parsing). Everything here is stateless.
 */
#ifndef TLS_REASON_H
#define TLS_REASON_H

enum tls_reason {
	TLS_R_OK = 0,
	/* stream level (tls_conn_feed) */
	TLS_R_NOT_TLS,          /* first bytes of a direction are no TLS record header */
	TLS_R_SSLV2,            /* an SSLv2 (or SSLv2-compatible) ClientHello: not fingerprinted */
	TLS_R_RECORD_TOO_LONG,  /* record length > 2^14 + 2048 */
	TLS_R_BAD_RECORD,       /* bad content type or version in a later record header */
	TLS_R_BAD_HANDSHAKE,    /* handshake message interrupted by another record type, or empty */
	TLS_R_HELLO_TOO_LARGE,  /* ClientHello/ServerHello longer than limits.max_hello */
	TLS_R_CERT_TOO_LARGE,   /* Certificate message longer than limits.max_certificate */
	TLS_R_TOO_MANY_CERTS,   /* more than limits.max_certs certificates: the first ones are kept */
	TLS_R_TOO_MANY_HELLOS,  /* a third ClientHello or ServerHello: ignored */
	/* message level (tls_hello.h and the Certificate message) */
	TLS_R_TRUNCATED,        /* a length inside a message points past its end */
	TLS_R_TRAILING,         /* bytes left after the last field of a message */
	TLS_R_BAD_EXTENSION,    /* an extension whose inner lengths disagree with its own */
	TLS_R_BAD_HELLO,        /* a hello field out of range (odd cipher list, empty ALPN name) */
	TLS_R_BAD_CERT_LIST,    /* Certificate message: list lengths disagree, or an empty entry */
	/* certificate level (tls_x509_parse) */
	TLS_R_X509_DECODE,      /* OpenSSL d2i_X509 refused the DER */
	TLS_R_X509_TRAILING,    /* bytes after the certificate's outer SEQUENCE */
	TLS_R_X509_FIELD,       /* a field OpenSSL could not print (name, time, serial, key) */
	/* resources */
	TLS_R_NOMEM,
	TLS_R__COUNT
};

/* Stable short name of a reason ("ok", "not-tls", ...); "unknown" when out of range. */
const char *tls_reason_str(enum tls_reason r);

#endif
