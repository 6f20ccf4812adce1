/*
 * tls.c — OpenSSL context and sessions for the sensor's outgoing stream.
 *
 * The socket is non-blocking and the sender drives SSL_connect/SSL_write
 * from poll(); partial writes are enabled so a frame can go out record by
 * record, and the moving-buffer mode lets a retried write pass the same
 * bytes from a recomputed pointer.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "d4_log.h"

/* The first error of OpenSSL's queue as text, then the queue cleared. */
static void ssl_queue_text(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		(void)snprintf(buf, len, "%s", fallback);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

SSL_CTX *tls_ctx_new(const struct client_conf *c, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char why[256];

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ssl_queue_text(why, sizeof(why), "SSL_CTX_new failed");
		(void)snprintf(err, errlen, "TLS: %s", why);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		ssl_queue_text(why, sizeof(why), "cannot set TLS 1.2 as minimum");
		(void)snprintf(err, errlen, "TLS: %s", why);
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (c->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		d4_log(D4_LOG_WARN, "tls_insecure", "hint",
		       "the server's certificate is NOT verified (--insecure): anyone on the path "
		       "can read and alter the stream",
		       NULL);
	} else {
		if (c->ca_file != NULL) {
			if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
				ssl_queue_text(why, sizeof(why), "cannot load");
				(void)snprintf(err, errlen, "CA file %s: %s", c->ca_file, why);
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			ssl_queue_text(why, sizeof(why), "cannot load the system trust store");
			(void)snprintf(err, errlen, "TLS: %s", why);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (c->cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
			ssl_queue_text(why, sizeof(why), "cannot load");
			(void)snprintf(err, errlen, "--cert %s: %s", c->cert_file, why);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, c->cert_key_file, SSL_FILETYPE_PEM) != 1) {
			ssl_queue_text(why, sizeof(why), "cannot load");
			(void)snprintf(err, errlen, "--cert-key %s: %s", c->cert_key_file, why);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			(void)snprintf(err, errlen, "--cert-key %s does not match --cert %s",
			               c->cert_key_file, c->cert_file);
			ERR_clear_error();
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* True when host is an IPv4 or IPv6 literal (no SNI, IP-address SAN check). */
static bool is_ip_literal(const char *host)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);

	if (ip == NULL) {
		ERR_clear_error();
		return false;
	}
	ASN1_OCTET_STRING_free(ip);
	return true;
}

SSL *tls_session_new(SSL_CTX *ctx, int fd, const char *host, char *err, size_t errlen)
{
	SSL *ssl = SSL_new(ctx);
	X509_VERIFY_PARAM *param;
	char why[256];

	if (ssl == NULL) {
		ssl_queue_text(why, sizeof(why), "SSL_new failed");
		(void)snprintf(err, errlen, "TLS: %s", why);
		return NULL;
	}
	if (SSL_set_fd(ssl, fd) != 1)
		goto fail;
	param = SSL_get0_param(ssl);
	if (is_ip_literal(host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
			goto fail;
	} else {
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1 ||
		    SSL_set_tlsext_host_name(ssl, host) != 1)
			goto fail;
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	ssl_queue_text(why, sizeof(why), "session setup failed");
	(void)snprintf(err, errlen, "TLS: %s", why);
	SSL_free(ssl);
	return NULL;
}

void tls_explain(SSL *ssl, int ret, int ssl_error, char *buf, size_t len)
{
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	int saved = errno;

	if (vr != X509_V_OK) {
		(void)snprintf(buf, len, "certificate verification failed: %s",
		               X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return;
	}
	if (ssl_error == SSL_ERROR_SSL) {
		ssl_queue_text(buf, len, "TLS protocol error");
		return;
	}
	if (ssl_error == SSL_ERROR_ZERO_RETURN) {
		(void)snprintf(buf, len, "closed by the server (TLS close_notify)");
	} else if (ssl_error == SSL_ERROR_SYSCALL) {
		if (ret == 0 || saved == 0)
			(void)snprintf(buf, len, "connection closed by the server");
		else
			(void)snprintf(buf, len, "%s", strerror(saved));
	} else {
		(void)snprintf(buf, len, "TLS error %d", ssl_error);
	}
	ERR_clear_error();
}
