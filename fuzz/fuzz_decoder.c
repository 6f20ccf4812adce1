/*
 * fuzz_decoder.c — the streaming frame decoder on arbitrary bytes.
 *
 * The first input byte picks the chunking (so that the fuzzer explores split
 * points), the second whether a key is set and bad HMACs are reported. The
 * decoder must never read outside its input, must account for every byte,
 * and must end in OK, TRUNCATED or the error it reported.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "d4_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t chunk = (size_t)data[0] * 7 + 1;
	uint8_t mode = data[1];
	data += 2;
	size -= 2;

	struct d4_decoder d;
	struct d4_decoder_opts o = {
		.max_payload = (mode & 4) ? 300 : 0,
		.report_bad_hmac = (mode & 2) != 0,
	};
	d4_decoder_init(&d, &o);
	if ((mode & 1) && d4_decoder_set_key(&d, (const uint8_t *)"fuzz", 4) != 0)
		abort();

	size_t at = 0, consumed = 0;
	enum d4_reason err = D4_OK;
	while (at < size && err == D4_OK) {
		size_t n = size - at < chunk ? size - at : chunk;
		/* copy to an exact-size heap buffer so ASan sees any overread */
		uint8_t *piece = malloc(n);
		if (piece == NULL)
			abort();
		for (size_t i = 0; i < n; i++)
			piece[i] = data[at + i];
		size_t off = 0;
		for (;;) {
			struct d4_event ev;
			size_t used = d4_decoder_feed(&d, piece + off, n - off, &ev);
			if (used > n - off)
				abort();
			off += used;
			if (ev.kind == D4_EV_NONE) {
				if (off != n)
					abort();
				break;
			}
			if (ev.kind == D4_EV_ERROR) {
				err = ev.reason;
				if (err == D4_OK)
					abort();
				break;
			}
			if (ev.kind == D4_EV_FRAME) {
				if (ev.payload_len != ev.hdr->size || ev.payload_len > 0x100000)
					abort();
				volatile uint8_t sink = 0;
				for (size_t i = 0; i < ev.payload_len; i++)
					sink ^= ev.payload[i];
				(void)sink;
				if ((mode & 1) == 0 && ev.hmac != D4_HMAC_UNCHECKED)
					abort();
			}
		}
		consumed += off;
		at += n;
		free(piece);
	}
	enum d4_reason fin = d4_decoder_finish(&d);
	if (err != D4_OK && fin != err)
		abort();
	if (err == D4_OK && (consumed != size || (fin != D4_OK && fin != D4_R_TRUNCATED)))
		abort();
	if (d.bytes_in != consumed)
		abort();
	d4_decoder_free(&d);
	return 0;
}
