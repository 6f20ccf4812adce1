/*
 * framequeue.c — a singly linked FIFO of whole frames, bounded in bytes.
 *
 * A list and not a ring buffer: frames have different sizes, are produced one
 * read() at a time and consumed one write at a time, and the discard policy
 * has to remove whole frames from the front. One malloc per frame is noise
 * beside the HMAC and the TLS record of the same frame.
 */
#include "framequeue.h"

#include "d4_proto.h"

#include <stdlib.h>

struct frame *frame_new(size_t payload_len)
{
	struct frame *f;

	if (payload_len > SIZE_MAX - sizeof(*f) - D4_HEADER_SIZE)
		return NULL;
	f = malloc(sizeof(*f) + D4_HEADER_SIZE + payload_len);
	if (f == NULL)
		return NULL;
	f->next = NULL;
	f->len = D4_HEADER_SIZE + payload_len;
	return f;
}

void frame_free(struct frame *f)
{
	free(f);
}

void framequeue_init(struct framequeue *q, uint64_t max_bytes)
{
	q->head = NULL;
	q->tail = NULL;
	q->count = 0;
	q->bytes = 0;
	q->max_bytes = max_bytes;
	q->head_off = 0;
	q->head_busy = false;
	q->dropped_frames = 0;
	q->dropped_bytes = 0;
	q->sent_head = NULL;
	q->sent_tail = NULL;
	q->sent_count = 0;
	q->sent_bytes = 0;
	q->resend_max_bytes = 0;
	q->resend_max_ms = 0;
	q->resent_frames = 0;
}

static void free_list(struct frame *f)
{
	while (f != NULL) {
		struct frame *next = f->next;
		frame_free(f);
		f = next;
	}
}

void framequeue_free(struct framequeue *q)
{
	uint64_t rb = q->resend_max_bytes, rms = q->resend_max_ms;

	free_list(q->head);
	free_list(q->sent_head);
	framequeue_init(q, q->max_bytes);
	framequeue_set_resend(q, rb, rms);
}

void framequeue_set_resend(struct framequeue *q, uint64_t max_bytes, uint64_t max_ms)
{
	q->resend_max_bytes = max_bytes;
	q->resend_max_ms = max_ms;
}

/* Frees the window's oldest frames past its bounds (bytes, and age at now_ms). */
static void trim_sent(struct framequeue *q, uint64_t now_ms)
{
	while (q->sent_head != NULL &&
	       (q->sent_bytes > q->resend_max_bytes ||
	        now_ms - q->sent_head->sent_ms > q->resend_max_ms)) {
		struct frame *f = q->sent_head;
		q->sent_head = f->next;
		if (q->sent_head == NULL)
			q->sent_tail = NULL;
		q->sent_count--;
		q->sent_bytes -= f->len;
		frame_free(f);
	}
}

size_t framequeue_resend(struct framequeue *q, uint64_t now_ms)
{
	size_t n;

	trim_sent(q, now_ms);
	if (q->sent_head == NULL)
		return 0;
	/* the head is not on the wire any more (framequeue_rewind): the window goes before it */
	q->sent_tail->next = q->head;
	if (q->head == NULL)
		q->tail = q->sent_tail;
	q->head = q->sent_head;
	q->count += q->sent_count;
	q->bytes += q->sent_bytes;
	n = q->sent_count;
	q->resent_frames += n;
	q->sent_head = q->sent_tail = NULL;
	q->sent_count = 0;
	q->sent_bytes = 0;
	return n;
}

bool framequeue_would_drop(const struct framequeue *q, size_t len)
{
	return q->max_bytes != 0 && q->bytes + len > q->max_bytes;
}

/* Unlinks the oldest frame that may be discarded; false when there is none. */
static bool drop_oldest(struct framequeue *q)
{
	struct frame *victim;

	if (q->head == NULL)
		return false;
	if (q->head_off == 0 && !q->head_busy) {
		victim = q->head;
		q->head = victim->next;
		if (q->head == NULL)
			q->tail = NULL;
	} else {
		/* the head is on the wire: the next one is the oldest we may drop */
		victim = q->head->next;
		if (victim == NULL)
			return false;
		q->head->next = victim->next;
		if (q->tail == victim)
			q->tail = q->head;
	}
	q->count--;
	q->bytes -= victim->len;
	q->dropped_frames++;
	q->dropped_bytes += victim->len;
	frame_free(victim);
	return true;
}

size_t framequeue_push(struct framequeue *q, struct frame *f)
{
	size_t dropped = 0;

	while (framequeue_would_drop(q, f->len) && drop_oldest(q))
		dropped++;
	f->next = NULL;
	if (q->tail != NULL)
		q->tail->next = f;
	else
		q->head = f;
	q->tail = f;
	q->count++;
	q->bytes += f->len;
	return dropped;
}

void framequeue_pop(struct framequeue *q, uint64_t now_ms)
{
	struct frame *f = q->head;

	if (f == NULL)
		return;
	q->head = f->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->count--;
	q->bytes -= f->len;
	q->head_off = 0;
	q->head_busy = false;
	if (q->resend_max_bytes == 0 || f->len > q->resend_max_bytes) {
		frame_free(f);
		return;
	}
	f->next = NULL;
	f->sent_ms = now_ms;
	if (q->sent_tail != NULL)
		q->sent_tail->next = f;
	else
		q->sent_head = f;
	q->sent_tail = f;
	q->sent_count++;
	q->sent_bytes += f->len;
	trim_sent(q, now_ms);
}
