/*
 * framequeue.h — the client's bounded buffer of signed D4 frames.
 *
 * A frame is stored whole (62-byte header and payload in one allocation) and
 * already signed, so that what is sent after a reconnect is byte for byte
 * what was read. The queue is bounded in bytes; making room discards the
 * oldest frames first and counts them, except the head frame while it is
 * half-written on a live connection (dropping it would cut a frame on the
 * wire, which the server discards anyway but only after desynchronising).
 *
 * head_off is how many bytes of the head frame went out on the current
 * connection: the sender advances it, and a lost connection resets it to 0 so
 * that the frame is sent again from its first byte. head_busy marks the head
 * as being written even before its first byte is accepted: a TLS write that
 * would block has already sealed the bytes into a record and must be retried
 * with the same frame, so that frame may not be discarded.
 *
 * The resend window: a frame written whole is not freed at once but kept on a
 * second list for a while (bounded in bytes and in age). D4 has no
 * acknowledgement, so when a connection breaks the client cannot know what the
 * server took: what sat in the socket buffers of both ends, or in a server
 * process that was killed, is gone. framequeue_resend() puts the window back
 * in front of the queue, to be sent again byte for byte on the next
 * connection; d4-dispatch recognises the frames it already delivered by their
 * HMAC and skips them (docs/client.md, "Reconnecting"; docs/dispatch.md).
 */
#ifndef D4_CLIENT_FRAMEQUEUE_H
#define D4_CLIENT_FRAMEQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct frame {
	struct frame *next;
	uint64_t sent_ms; /* when it was written whole (on the sent list) */
	size_t len;     /* header + payload */
	uint8_t data[]; /* len bytes */
};

struct framequeue {
	struct frame *head;
	struct frame *tail;
	size_t count;
	uint64_t bytes;     /* sum of len over the queued frames */
	uint64_t max_bytes; /* the bound; 0 means unbounded */
	size_t head_off;    /* bytes of head already written on this connection */
	bool head_busy;     /* a write of head is under way (TLS holds its record) */
	uint64_t dropped_frames;
	uint64_t dropped_bytes;
	/* the resend window: frames written whole, oldest first */
	struct frame *sent_head;
	struct frame *sent_tail;
	size_t sent_count;
	uint64_t sent_bytes;
	uint64_t resend_max_bytes; /* 0: no window (frames are freed once written) */
	uint64_t resend_max_ms;    /* frames older than this are not sent again */
	uint64_t resent_frames;    /* put back by framequeue_resend(), in total */
};

/* A frame with room for `payload_len` payload bytes; NULL when out of memory. */
struct frame *frame_new(size_t payload_len);
void frame_free(struct frame *f);

void framequeue_init(struct framequeue *q, uint64_t max_bytes);
void framequeue_free(struct framequeue *q);
/* True when pushing a frame of `len` bytes would discard older frames. */
bool framequeue_would_drop(const struct framequeue *q, size_t len);
/*
 * Appends f (the queue takes ownership), discarding the oldest frames first
 * when the bound would be passed. Returns how many frames were discarded.
 */
size_t framequeue_push(struct framequeue *q, struct frame *f);
/* The frame to send next, or NULL. */
static inline struct frame *framequeue_head(const struct framequeue *q)
{
	return q->head;
}
/* Keeps frames written whole for a reconnect: at most max_bytes, for at most max_ms. */
void framequeue_set_resend(struct framequeue *q, uint64_t max_bytes, uint64_t max_ms);
/* Removes the head frame (it was written whole): into the resend window, or freed. */
void framequeue_pop(struct framequeue *q, uint64_t now_ms);
/*
 * The connection was lost: the resend window's frames that are not too old go back in
 * front of the queue (after framequeue_rewind()). Returns how many.
 */
size_t framequeue_resend(struct framequeue *q, uint64_t now_ms);
/* The connection was lost: the head frame, if begun, must go out again whole. */
static inline void framequeue_rewind(struct framequeue *q)
{
	q->head_off = 0;
	q->head_busy = false;
}

#endif
