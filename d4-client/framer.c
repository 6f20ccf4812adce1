/*
 * framer.c — signing frames with the protocol library (common/d4_proto.h).
 *
 * The payload is read straight into the frame's allocation by the source and
 * sealed in place, so a chunk is copied once (kernel to frame) on its way to
 * the queue.
 */
#include "framer.h"

#include <string.h>
#include <time.h>

int framer_init(struct framer *fr, uint8_t version, const uint8_t uuid[D4_UUID_SIZE],
                const uint8_t *key, size_t key_len)
{
	memset(fr, 0, sizeof(*fr));
	fr->version = version;
	memcpy(fr->uuid, uuid, D4_UUID_SIZE);
	fr->mac = d4_hmac_new(key, key_len);
	return fr->mac != NULL ? 0 : -1;
}

void framer_free(struct framer *fr)
{
	if (fr->mac != NULL)
		d4_hmac_free(fr->mac);
	fr->mac = NULL;
}

int framer_seal(struct framer *fr, uint8_t type, struct frame *f)
{
	struct d4_header h;
	size_t len = f->len - D4_HEADER_SIZE;

	memset(&h, 0, sizeof(h));
	h.version = fr->version;
	h.type = type;
	memcpy(h.uuid, fr->uuid, D4_UUID_SIZE);
	h.timestamp = fr->fixed_time ? fr->timestamp : (uint64_t)time(NULL);
	return d4_frame_sign(fr->mac, &h, f->data + D4_HEADER_SIZE, len, f->data);
}

struct frame *framer_build(struct framer *fr, uint8_t type, const uint8_t *payload, size_t len)
{
	struct frame *f = frame_new(len);

	if (f == NULL)
		return NULL;
	if (len > 0)
		memcpy(f->data + D4_HEADER_SIZE, payload, len);
	if (framer_seal(fr, type, f) != 0) {
		frame_free(f);
		return NULL;
	}
	return f;
}
