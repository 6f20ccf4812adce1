/*
 * tls.h — the client side of TLS (OpenSSL 3): one context per run, one
 * session per connection.
 *
 * Verification policy, decided once in tls_ctx_new():
 *   - a CA file (--ca or rootCA.crt in the config directory): the server's
 *     chain must lead to it and its certificate must name the destination
 *     host (DNS name, or IP address for a numeric destination);
 *   - no CA file: the system's trust store, same checks;
 *   - --insecure: no verification at all (the Go client's default), with a
 *     warning, for a server with a throw-away self-signed certificate.
 * TLS 1.2 is the floor. A client certificate is presented when given.
 */
#ifndef D4_CLIENT_TLS_H
#define D4_CLIENT_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "clientconf.h"

/* NULL with a reason in err. */
SSL_CTX *tls_ctx_new(const struct client_conf *c, char *err, size_t errlen);
/* A client session on a connected socket, set up for the destination host. NULL + err. */
SSL *tls_session_new(SSL_CTX *ctx, int fd, const char *host, char *err, size_t errlen);
/*
 * Explains why an SSL call that returned `ret` failed: certificate
 * verification result, OpenSSL's error queue, or errno. Clears the queue.
 */
void tls_explain(SSL *ssl, int ret, int ssl_error, char *buf, size_t len);

#endif
