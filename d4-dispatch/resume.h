/*
 * resume.h — recognising the frames a reconnecting sensor sends again.
 *
 * D4 has no acknowledgement: when a connection breaks (a network cut, or d4-ingest killed
 * while a sensor streams), what sat in the socket buffers and in the dying process is lost,
 * and the sensor cannot know how much. d4-client therefore sends the frames of its last
 * seconds again on the next connection (its "resend window", docs/client.md), byte for byte:
 * same timestamps, same HMACs. This table lets d4-dispatch deliver each of them once.
 *
 * For every stream — a sensor's (uuid, type, meta-type) — it remembers the HMACs (8 bytes of
 * them) of the frames delivered in the last `keep` seconds, oldest first, at most `max_frames`.
 * A new session of the stream starts in "probe": its data frames are looked up among them
 * (in an index of the frames remembered when the session started).
 *   - not found: delivered (and remembered); the probe goes on, for as many frames as were
 *     remembered (a resent window may begin with frames this dispatcher never saw: sent
 *     before it restarted) and at most `keep` seconds;
 *   - found at position p: the frame is skipped, and so is every following frame while it
 *     equals the one remembered after it; the first that differs, or the first past the end
 *     of what was remembered, is new and delivered, and the session leaves the check for good.
 * Matching a sequence, not single frames, keeps a sensor's genuinely repeated frames (the same
 * payload twice in one second) from being taken for copies. When a frame occurs several
 * times, the earliest occurrence is taken: a wrong guess can then only deliver a copy twice,
 * never skip a frame that was not delivered. Type-2 frames (a meta header, rebuilt with a new
 * timestamp on every connection) pass through and do not end the probe.
 *
 * What it cannot do: a dispatcher that restarted has forgotten what it delivered before, so a
 * sensor that reconnects within `keep` seconds of that gets the older part of its window
 * delivered twice (at least once, never lost).
 *
 * Memory: 12 bytes per frame remembered; frames older than `keep` are forgotten as new ones
 * come, and a stream without sessions is dropped after `keep` seconds, so an idle network
 * costs nothing and a busy stream at most max_frames * 12 bytes.
 */
#ifndef D4_DISPATCH_RESUME_H
#define D4_DISPATCH_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_proto.h"

struct resume_table;
struct resume_stream;

struct resume_index;

/* A session's view of the check; zeroed memory is a session not attached yet. */
struct resume_session {
	struct resume_stream *stream;
	struct resume_index *index; /* probing: the frames remembered at the start */
	uint64_t expect;  /* matching: the stream's seq of the frame expected next */
	uint64_t probe_end; /* probing: until this time (s) */
	uint32_t probes_left;
	uint8_t state;    /* RESUME_* in resume.c */
	uint64_t skipped; /* frames skipped as copies */
};

struct resume_stats {
	uint64_t streams;         /* streams remembered now */
	uint64_t frames;          /* frames remembered now */
	uint64_t resumed_sessions; /* sessions that started with copies */
	uint64_t skipped_frames;  /* copies skipped, in total */
	uint64_t skipped_bytes;
};

/* keep: seconds a delivered frame is remembered; max_frames per stream (0: the table is off). */
struct resume_table *resume_create(uint32_t keep, uint32_t max_frames);
void resume_destroy(struct resume_table *t);

/*
 * One frame of a session, before it is delivered: true to deliver it, false when it is a copy
 * of a frame already delivered (skip it). The session attaches to its stream on its first
 * frame that is not a meta header. uuid and meta_type ("" unless 254) name the stream; now in
 * seconds. Never fails: out of memory, the frame is delivered unchecked.
 */
bool resume_frame(struct resume_table *t, struct resume_session *s, const uint8_t *uuid,
                  const char *meta_type, const uint8_t header[D4_HEADER_SIZE], uint64_t now);
/* The session ended (or is freed): detaches it and frees its probe; idempotent. */
void resume_end(struct resume_table *t, struct resume_session *s, uint64_t now);
/* Forgets streams without sessions idle for `keep` seconds; call about once a second. */
void resume_sweep(struct resume_table *t, uint64_t now);
void resume_get_stats(const struct resume_table *t, struct resume_stats *out);

#endif
