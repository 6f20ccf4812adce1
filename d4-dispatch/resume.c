/*
 * resume.c — the table of recently delivered frames per stream (see resume.h for why).
 *
 * A hash table of streams, each with a ring of (8 bytes of HMAC, time) for the frames
 * delivered in the last `keep` seconds. Frames are numbered per stream (seq): the ring holds
 * seq base .. base+count-1, so a session that is matching remembers the seq it expects next
 * and is not disturbed when old frames are forgotten meanwhile. A probing session looks its
 * frames up in a hash index of the ring as it was when the session started (built once, freed
 * when the probe ends); every other frame costs one compare or one append.
 */
#include "resume.h"

#include "d4_bytes.h"
#include "d4_store.h"

#include <stdlib.h>
#include <string.h>

enum { RESUME_DETACHED = 0, RESUME_PROBING, RESUME_MATCHING, RESUME_LIVE };

/* Open addressing over (mac, seq), built once per probing session: O(1) per probe. */
struct resume_index {
	uint32_t mask;
	struct {
		uint64_t mac;
		uint64_t seq1; /* seq + 1; 0: empty */
	} slot[];
};

struct resume_stream {
	struct resume_stream *hnext;
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t type;
	char meta_type[D4_META_TYPE_MAX + 1];
	uint32_t refs;      /* sessions attached */
	uint64_t last_used; /* seconds */
	uint64_t *mac;      /* ring of cap entries */
	uint32_t *time;
	uint32_t cap, head, count;
	uint64_t base; /* seq of the oldest entry */
};

struct resume_table {
	struct resume_stream **buckets;
	size_t nbuckets; /* a power of two */
	uint32_t keep;
	uint32_t max_frames;
	struct resume_stats st;
};

struct resume_table *resume_create(uint32_t keep, uint32_t max_frames)
{
	struct resume_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->keep = keep;
	t->max_frames = max_frames;
	t->nbuckets = 256;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void stream_free(struct resume_stream *st)
{
	free(st->mac);
	free(st->time);
	free(st);
}

void resume_destroy(struct resume_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct resume_stream *st = t->buckets[i];
		while (st != NULL) {
			struct resume_stream *next = st->hnext;
			stream_free(st);
			st = next;
		}
	}
	free(t->buckets);
	free(t);
}

static uint64_t stream_hash(const uint8_t *uuid, uint8_t type, const char *meta_type)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < D4_UUID_SIZE; i++)
		h = (h ^ uuid[i]) * 1099511628211ull;
	h = (h ^ type) * 1099511628211ull;
	for (const char *p = meta_type; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h ^ (h >> 29);
}

/* Doubles the bucket array when streams outnumber buckets (chains stay short). */
static void maybe_grow(struct resume_table *t)
{
	size_t n = t->nbuckets * 2;
	struct resume_stream **b;

	if (t->st.streams <= t->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct resume_stream *st = t->buckets[i];
		while (st != NULL) {
			struct resume_stream *next = st->hnext;
			size_t j = stream_hash(st->uuid, st->type, st->meta_type) & (n - 1);
			st->hnext = b[j];
			b[j] = st;
			st = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static struct resume_stream *stream_get(struct resume_table *t, const uint8_t *uuid,
                                        uint8_t type, const char *meta_type)
{
	size_t i = stream_hash(uuid, type, meta_type) & (t->nbuckets - 1);
	struct resume_stream *st;

	for (st = t->buckets[i]; st != NULL; st = st->hnext)
		if (st->type == type && memcmp(st->uuid, uuid, D4_UUID_SIZE) == 0 &&
		    strcmp(st->meta_type, meta_type) == 0)
			return st;
	if (strlen(meta_type) > D4_META_TYPE_MAX || (st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	memcpy(st->uuid, uuid, D4_UUID_SIZE);
	st->type = type;
	strcpy(st->meta_type, meta_type);
	st->hnext = t->buckets[i];
	t->buckets[i] = st;
	t->st.streams++;
	maybe_grow(t);
	return st;
}

static void forget_oldest(struct resume_table *t, struct resume_stream *st)
{
	st->head = st->head + 1 == st->cap ? 0 : st->head + 1;
	st->count--;
	st->base++;
	t->st.frames--;
}

/* Forgets what is older than keep seconds. */
static void forget_old(struct resume_table *t, struct resume_stream *st, uint64_t now)
{
	while (st->count > 0 && (uint64_t)st->time[st->head] + t->keep < now)
		forget_oldest(t, st);
}

/* Room for one more entry: forget the oldest at max_frames, else grow the ring. */
static bool make_room(struct resume_table *t, struct resume_stream *st)
{
	if (st->count == t->max_frames) {
		forget_oldest(t, st);
		return true;
	}
	if (st->count < st->cap)
		return true;
	uint32_t cap = st->cap ? st->cap * 2 : 16;
	if (cap > t->max_frames)
		cap = t->max_frames;
	uint64_t *mac = malloc((size_t)cap * sizeof(*mac));
	uint32_t *time = malloc((size_t)cap * sizeof(*time));
	if (mac == NULL || time == NULL) {
		free(mac);
		free(time);
		return false;
	}
	for (uint32_t i = 0; i < st->count; i++) {
		uint32_t j = (st->head + i) % st->cap;
		mac[i] = st->mac[j];
		time[i] = st->time[j];
	}
	free(st->mac);
	free(st->time);
	st->mac = mac;
	st->time = time;
	st->cap = cap;
	st->head = 0;
	return true;
}

static void remember(struct resume_table *t, struct resume_stream *st, uint64_t mac,
                     uint64_t now)
{
	forget_old(t, st, now);
	if (!make_room(t, st))
		return; /* out of memory: this frame cannot be recognised later; nothing else */
	uint32_t j = (st->head + st->count) % st->cap;
	st->mac[j] = mac;
	st->time[j] = (uint32_t)now;
	st->count++;
	st->last_used = now;
	t->st.frames++;
}

static struct resume_index *index_build(const struct resume_stream *st)
{
	uint32_t cap = 16;
	struct resume_index *ix;

	while (cap < 2 * st->count)
		cap *= 2;
	if ((ix = calloc(1, sizeof(*ix) + (size_t)cap * sizeof(ix->slot[0]))) == NULL)
		return NULL;
	ix->mask = cap - 1;
	/* oldest first, and an occupied slot is never replaced: a mac seen twice keeps its
	 * earliest seq */
	for (uint32_t i = 0; i < st->count; i++) {
		uint64_t mac = st->mac[(st->head + i) % st->cap];
		uint32_t j = (uint32_t)(mac ^ (mac >> 32)) & ix->mask;
		while (ix->slot[j].seq1 != 0 && ix->slot[j].mac != mac)
			j = (j + 1) & ix->mask;
		if (ix->slot[j].seq1 == 0) {
			ix->slot[j].mac = mac;
			ix->slot[j].seq1 = st->base + i + 1;
		}
	}
	return ix;
}

/* The earliest seq remembered with that mac at the probe's start, or 0 (as seq + 1). */
static uint64_t index_find(const struct resume_index *ix, uint64_t mac)
{
	uint32_t j = (uint32_t)(mac ^ (mac >> 32)) & ix->mask;

	while (ix->slot[j].seq1 != 0) {
		if (ix->slot[j].mac == mac)
			return ix->slot[j].seq1;
		j = (j + 1) & ix->mask;
	}
	return 0;
}

static void end_probe(struct resume_session *s)
{
	free(s->index);
	s->index = NULL;
}

bool resume_frame(struct resume_table *t, struct resume_session *s, const uint8_t *uuid,
                  const char *meta_type, const uint8_t header[D4_HEADER_SIZE], uint64_t now)
{
	uint8_t type = header[D4_OFF_TYPE];
	uint64_t mac = d4_le64(header + D4_OFF_HMAC);
	uint32_t size = d4_le32(header + D4_OFF_SIZE);
	struct resume_stream *st;

	if (t == NULL || t->max_frames == 0 || type == D4_TYPE_META_HEADER)
		return true;
	if (s->state == RESUME_DETACHED) {
		s->state = RESUME_LIVE;
		if ((st = stream_get(t, uuid, type, meta_type)) == NULL)
			return true; /* out of memory: delivered unchecked */
		s->stream = st;
		st->refs++;
		st->last_used = now;
		forget_old(t, st, now);
		if (st->count > 0 && (s->index = index_build(st)) != NULL) {
			s->state = RESUME_PROBING;
			s->probes_left = st->count + 16;
			s->probe_end = now + t->keep;
		}
	}
	st = s->stream;
	if (st == NULL)
		return true;
	if (s->state == RESUME_PROBING) {
		uint64_t seq1 = index_find(s->index, mac);
		if (seq1 != 0) {
			end_probe(s);
			s->state = RESUME_MATCHING;
			s->expect = seq1; /* the seq after the one found */
			s->skipped++;
			t->st.resumed_sessions++;
			t->st.skipped_frames++;
			t->st.skipped_bytes += size;
			return false;
		}
		if (--s->probes_left == 0 || now > s->probe_end) {
			end_probe(s);
			s->state = RESUME_LIVE;
		}
		remember(t, st, mac, now);
		return true;
	}
	if (s->state == RESUME_MATCHING) {
		if (s->expect >= st->base && s->expect - st->base < st->count &&
		    st->mac[(st->head + (s->expect - st->base)) % st->cap] == mac) {
			s->expect++;
			s->skipped++;
			t->st.skipped_frames++;
			t->st.skipped_bytes += size;
			return false;
		}
		s->state = RESUME_LIVE; /* past the copies: new data from here on */
	}
	remember(t, st, mac, now);
	return true;
}

void resume_end(struct resume_table *t, struct resume_session *s, uint64_t now)
{
	(void)t;
	end_probe(s);
	if (s->stream != NULL) {
		s->stream->refs--;
		s->stream->last_used = now;
		s->stream = NULL;
	}
	s->state = RESUME_LIVE; /* a late frame is delivered unchecked */
}

void resume_sweep(struct resume_table *t, uint64_t now)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct resume_stream **pp = &t->buckets[i]; *pp != NULL;) {
			struct resume_stream *st = *pp;
			forget_old(t, st, now);
			if (st->refs == 0 && st->last_used + t->keep < now) {
				*pp = st->hnext;
				t->st.frames -= st->count;
				t->st.streams--;
				stream_free(st);
				continue;
			}
			pp = &st->hnext;
		}
	}
}

void resume_get_stats(const struct resume_table *t, struct resume_stats *out)
{
	if (t == NULL)
		memset(out, 0, sizeof(*out));
	else
		*out = t->st;
}
