/*
 * fuzz_tls_handshake.c — the TLS handshake tracker (tls_conn) on arbitrary byte streams.
 *
 * Input: byte 0 picks the chunk size, byte 1 the mode (bit 0: small limits, so that the limit
 * paths are reached with small inputs; bit 1: parse the first certificate with OpenSSL), then
 * frames of [2-byte header: bit 15 the direction, bits 0..14 the length] + bytes. Each frame is
 * fed in chunks copied to exact-size heap buffers, so ASan sees any read past a chunk. After
 * every feed: a final status never changes, and the results hold together (NUL-terminated
 * strings, 36-character JA4s, certificates inside their message).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_conn.h"
#include "tls_x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_info(const struct tls_conn_info *in)
{
	if (in->n_client_hello > 2 || (unsigned)in->reason >= TLS_R__COUNT)
		abort();
	for (unsigned i = 0; i < in->n_client_hello; i++) {
		const struct tls_client_hello *ch = &in->client_hello[i];
		if (strlen(ch->ja4) != TLS_JA4_LEN || strlen(ch->ja4_o) != TLS_JA4_LEN ||
		    strlen(ch->ja3_md5) != TLS_MD5_HEX_LEN || !ch->ja3 || !ch->ja4_r || !ch->ja4_ro)
			abort();
		if (strncmp(ch->ja4, ch->ja4_r, 11) || strncmp(ch->ja4_o, ch->ja4_ro, 11))
			abort();
		for (size_t k = 0; k < ch->n_alpn; k++)
			if (strlen(ch->alpn[k].s) > ch->alpn[k].len)
				abort();
		if (ch->sni.s && strlen(ch->sni.s) > ch->sni.len)
			abort();
	}
	if (in->have_server_hello && strlen(in->server_hello.ja3s_md5) != TLS_MD5_HEX_LEN)
		abort();
	for (size_t k = 0; k < in->n_certs; k++)
		if (in->certs[k].len == 0 || !in->certs[k].der)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t chunk = (size_t)data[0] * 13 + 1;
	uint8_t mode = data[1];
	data += 2;
	size -= 2;
	struct tls_limits lim = {0};
	if (mode & 1)
		lim = (struct tls_limits){.max_hello = 300, .max_certificate = 2000, .max_certs = 2};
	struct tls_conn *c = tls_conn_new(&lim);
	if (!c)
		return 0;
	enum tls_status last = TLS_MORE;
	size_t at = 0;
	while (at + 2 <= size) {
		unsigned hdr = (unsigned)data[at] << 8 | data[at + 1];
		at += 2;
		enum tls_dir dir = (hdr & 0x8000) ? TLS_DIR_SERVER : TLS_DIR_CLIENT;
		size_t len = hdr & 0x7fff;
		if (len > size - at)
			len = size - at;
		for (size_t off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;
			uint8_t *piece = malloc(n ? n : 1);
			if (!piece)
				abort();
			memcpy(piece, data + at + off, n);
			enum tls_status st = tls_conn_feed(c, dir, piece, n);
			free(piece);
			if (last != TLS_MORE && st != last)
				abort();
			last = st;
			check_info(tls_conn_info(c));
		}
		at += len;
	}
	const struct tls_conn_info *in = tls_conn_info(c);
	if ((mode & 2) && in->n_certs > 0) {
		struct tls_cert_info ci;
		if (tls_x509_parse(in->certs[0].der, in->certs[0].len, &ci) == TLS_R_OK)
			tls_cert_info_free(&ci);
	}
	tls_conn_free(c);
	return 0;
}
