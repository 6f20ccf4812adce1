/*
 * tls_reason.c — stable names of the TLS parsing refusal reasons (see tls_reason.h).
 */
#include "tls_reason.h"

const char *tls_reason_str(enum tls_reason r)
{
	static const char *const names[TLS_R__COUNT] = {
		[TLS_R_OK] = "ok",
		[TLS_R_NOT_TLS] = "not-tls",
		[TLS_R_SSLV2] = "sslv2",
		[TLS_R_RECORD_TOO_LONG] = "record-too-long",
		[TLS_R_BAD_RECORD] = "bad-record",
		[TLS_R_BAD_HANDSHAKE] = "bad-handshake",
		[TLS_R_HELLO_TOO_LARGE] = "hello-too-large",
		[TLS_R_CERT_TOO_LARGE] = "certificate-too-large",
		[TLS_R_TOO_MANY_CERTS] = "too-many-certificates",
		[TLS_R_TOO_MANY_HELLOS] = "too-many-hellos",
		[TLS_R_TRUNCATED] = "truncated",
		[TLS_R_TRAILING] = "trailing-bytes",
		[TLS_R_BAD_EXTENSION] = "bad-extension",
		[TLS_R_BAD_HELLO] = "bad-hello",
		[TLS_R_BAD_CERT_LIST] = "bad-certificate-list",
		[TLS_R_X509_DECODE] = "x509-decode",
		[TLS_R_X509_TRAILING] = "x509-trailing-bytes",
		[TLS_R_X509_FIELD] = "x509-field",
		[TLS_R_NOMEM] = "no-memory",
	};
	if ((unsigned)r >= TLS_R__COUNT || !names[r])
		return "unknown";
	return names[r];
}
