/*
 * framer.h — turns payload bytes into signed D4 frames for one sensor.
 *
 * The framer holds what every frame of this client shares (version, uuid,
 * the keyed HMAC context) and the clock: "now" in seconds, or a fixed
 * timestamp so that a test can reproduce a published vector byte for byte.
 */
#ifndef D4_CLIENT_FRAMER_H
#define D4_CLIENT_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_proto.h"
#include "framequeue.h"

struct framer {
	struct d4_hmac *mac;
	uint8_t version;
	uint8_t uuid[D4_UUID_SIZE];
	bool fixed_time;
	uint64_t timestamp; /* used when fixed_time */
};

/* 0, or -1 when the HMAC context cannot be created. */
int framer_init(struct framer *fr, uint8_t version, const uint8_t uuid[D4_UUID_SIZE],
                const uint8_t *key, size_t key_len);
void framer_free(struct framer *fr);
/*
 * A new signed frame of `type` holding a copy of payload[0..len). NULL when
 * out of memory or when the crypto library fails.
 */
struct frame *framer_build(struct framer *fr, uint8_t type, const uint8_t *payload, size_t len);
/*
 * Signs a frame whose payload was written in place (frame_new(len), then
 * payload into f->data + D4_HEADER_SIZE): the header is filled in. 0 or -1.
 */
int framer_seal(struct framer *fr, uint8_t type, struct frame *f);

#endif
