/*
 * fuzz_ipc.c — the ingest/dispatch message reader on arbitrary bytes.
 *
 * The link's peer is trusted, but a reader that can be driven out of bounds
 * by a bug on the other side is a reader that can crash the dispatcher. The
 * first byte picks the chunk size; every message handed out must lie inside
 * what was fed and agree with its own length.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "d4_bytes.h"
#include "d4_ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] * 3 + 1;
	data++;
	size--;
	struct d4_ipc_reader r;
	d4_ipc_reader_init(&r);
	for (size_t at = 0; at < size;) {
		size_t n = size - at < chunk ? size - at : chunk;
		uint8_t *piece = malloc(n);
		if (piece == NULL)
			abort();
		memcpy(piece, data + at, n);
		size_t off = 0;
		bool bad = false;
		while (off < n) {
			size_t used;
			struct d4_ipc_msg m;
			const char *why = NULL;
			enum d4_ipc_status st = d4_ipc_reader_feed(&r, piece + off, n - off, &used, &m, &why);
			if (used > n - off)
				abort();
			off += used;
			if (st == D4_IPC_BAD) {
				if (why == NULL)
					abort();
				bad = true;
				break;
			}
			if (st == D4_IPC_NEED_MORE)
				break;
			if (m.kind == D4_IPC_FRAME) {
				if (m.u.frame.payload_len != d4_le32(m.u.frame.header + D4_OFF_SIZE))
					abort();
				volatile uint8_t x = 0;
				for (size_t i = 0; i < m.u.frame.payload_len; i++)
					x ^= m.u.frame.payload[i];
				(void)x;
			}
			if (m.kind == D4_IPC_META) {
				volatile uint8_t x = 0;
				for (size_t i = 0; i < m.u.meta.json_len; i++)
					x ^= m.u.meta.json[i];
				for (size_t i = 0; i < m.u.meta.meta_type_len; i++)
					x ^= (uint8_t)m.u.meta.meta_type[i];
				(void)x;
			}
		}
		free(piece);
		at += n;
		if (bad)
			break;
	}
	d4_ipc_reader_free(&r);
	return 0;
}
