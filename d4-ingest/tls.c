/*
 * tls.c — OpenSSL on libuv streams.
 *
 * OpenSSL reads and writes through a small BIO of our own instead of a
 * socket or a pair of memory BIOs: its read side hands out the ciphertext
 * libuv has just read into the process-wide read buffer, and its write side
 * appends to a per-connection output buffer that session.c gives to
 * uv_write. Nothing is buffered between reads (session.c always drains
 * OpenSSL before returning to the loop), so an idle connection holds no I/O
 * buffer at all: with SSL_MODE_RELEASE_BUFFERS the SSL object is all that is
 * left, which is what keeps 10,000 idle sensors within a few KiB each.
 *
 * Policy: TLS 1.2 and 1.3 only, forward-secret AEAD suites for 1.2, no
 * renegotiation, no compression, no session tickets or cache (sensors hold
 * long connections; resumption buys nothing and costs memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "ingest.h"

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
	struct tls_conn *tc = BIO_get_data(b);
	*written = 0;
	if (tc->out_cap - tc->out_len < len) {
		size_t cap = tc->out_cap ? tc->out_cap : 4096;
		while (cap - tc->out_len < len)
			cap *= 2;
		uint8_t *p = realloc(tc->out, cap);
		if (p == NULL)
			return 0;
		tc->out = p;
		tc->out_cap = cap;
	}
	memcpy(tc->out + tc->out_len, data, len);
	tc->out_len += len;
	*written = len;
	return 1;
}

static int bio_read_ex(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct tls_conn *tc = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (tc->in_len == 0) {
		BIO_set_retry_read(b);
		*readbytes = 0;
		return 0;
	}
	size_t n = len < tc->in_len ? len : tc->in_len;
	memcpy(data, tc->in, n);
	tc->in += n;
	tc->in_len -= n;
	*readbytes = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *tc = BIO_get_data(b);
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return tc ? (long)tc->in_len : 0;
	case BIO_CTRL_WPENDING:
		return tc ? (long)tc->out_len : 0;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

/* Client certificates are checked against client_ca when one is configured;
 * without one they are accepted here and must match the sensor's pin. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX *ctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;
	bool have_ca = ctx && SSL_CTX_get_app_data(ctx) != NULL;
	return have_ca ? preverify_ok : 1;
}

const char *tls_error_text(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();
	if (e == 0) {
		snprintf(buf, len, "%s", fallback);
	} else {
		ERR_error_string_n(e, buf, len);
		ERR_clear_error();
	}
	return buf;
}

int tls_ctx_init(struct tls_ctx *t, const struct ingest_conf *c, char *err, size_t errlen)
{
	char e[256];
	memset(t, 0, sizeof(*t));
	t->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (t->ssl_ctx == NULL)
		goto fail;
	SSL_CTX *ctx = t->ssl_ctx;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_num_tickets(ctx, 0))
		goto fail;
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"))
		goto fail;
	if (!SSL_CTX_set_dh_auto(ctx, 1))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		snprintf(err, errlen, "certificate %s: %s", c->cert,
		         tls_error_text(e, sizeof(e), "unreadable"));
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "private key %s: %s", c->key,
		         tls_error_text(e, sizeof(e), "unreadable"));
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "private key %s does not match certificate %s", c->key, c->cert);
		goto out;
	}
	if (c->client_cert != CLIENT_CERT_OFF) {
		int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
		if (c->client_cert == CLIENT_CERT_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		if (c->client_ca[0]) {
			if (SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) != 1) {
				snprintf(err, errlen, "client CA %s: %s", c->client_ca,
				         tls_error_text(e, sizeof(e), "unreadable"));
				goto out;
			}
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_ca);
			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
			SSL_CTX_set_app_data(ctx, (void *)1); /* verify_cb: a CA is configured */
		}
		SSL_CTX_set_verify(ctx, mode, verify_cb);
		/* a session id context is required once peers are verified */
		static const unsigned char sid[] = "d4-ingest";
		if (!SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1))
			goto fail;
	}

	t->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "d4-uv");
	if (t->bio_method == NULL || !BIO_meth_set_write_ex(t->bio_method, bio_write_ex) ||
	    !BIO_meth_set_read_ex(t->bio_method, bio_read_ex) ||
	    !BIO_meth_set_ctrl(t->bio_method, bio_ctrl) ||
	    !BIO_meth_set_create(t->bio_method, bio_create) ||
	    !BIO_meth_set_destroy(t->bio_method, bio_destroy))
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "TLS setup: %s", tls_error_text(e, sizeof(e), "failed"));
out:
	tls_ctx_free(t);
	return -1;
}

void tls_ctx_free(struct tls_ctx *t)
{
	SSL_CTX_free(t->ssl_ctx);
	BIO_meth_free(t->bio_method);
	memset(t, 0, sizeof(*t));
}

int tls_conn_init(struct tls_conn *tc, struct tls_ctx *t)
{
	memset(tc, 0, sizeof(*tc));
	tc->ssl = SSL_new(t->ssl_ctx);
	if (tc->ssl == NULL)
		return -1;
	BIO *b = BIO_new(t->bio_method);
	if (b == NULL) {
		SSL_free(tc->ssl);
		tc->ssl = NULL;
		return -1;
	}
	BIO_set_data(b, tc);
	SSL_set_bio(tc->ssl, b, b); /* one BIO both ways: SSL_set_bio takes one reference */
	SSL_set_accept_state(tc->ssl);
	return 0;
}

void tls_conn_free(struct tls_conn *tc)
{
	SSL_free(tc->ssl);
	free(tc->out);
	memset(tc, 0, sizeof(*tc));
}
