/*
 * test_dispatch_resume.c — d4-dispatch's recognition of frames a reconnecting sensor sends
 * again (d4-dispatch/resume.c): copies skipped once, new frames and genuine repeats kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "d4_bytes.h"
#include "resume.h"

static const uint8_t UUID_A[D4_UUID_SIZE] = {0xaa, 1, 2, 3, 4, 5, 6, 0x47, 0x88, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t UUID_B[D4_UUID_SIZE] = {0xbb, 1, 2, 3, 4, 5, 6, 0x47, 0x88, 9, 10, 11, 12, 13, 14, 15};

/* A header whose HMAC field is derived from n (distinct n: distinct frames). */
static void hdr(uint8_t h[D4_HEADER_SIZE], uint8_t type, uint64_t n)
{
	memset(h, 0, D4_HEADER_SIZE);
	h[D4_OFF_VERSION] = 1;
	h[D4_OFF_TYPE] = type;
	d4_put_le64(h + D4_OFF_HMAC, n * 0x9e3779b97f4a7c15ull + 1);
	d4_put_le32(h + D4_OFF_SIZE, 100);
}

static bool feed(struct resume_table *t, struct resume_session *s, const uint8_t *uuid,
                 uint8_t type, uint64_t n, uint64_t now)
{
	uint8_t h[D4_HEADER_SIZE];
	hdr(h, type, n);
	return resume_frame(t, s, uuid, "", h, now);
}

/* Session 1 delivers 1..10 and dies; session 2 sends 6..15 again: 6..10 skipped, 11.. kept. */
static void test_copies_skipped_once(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 1024);
	struct resume_session s1 = {0}, s2 = {0};
	struct resume_stats st;

	assert_non_null(t);
	for (uint64_t n = 1; n <= 10; n++)
		assert_true(feed(t, &s1, UUID_A, 3, n, 1000));
	resume_end(t, &s1, 1001);
	for (uint64_t n = 6; n <= 10; n++)
		assert_false(feed(t, &s2, UUID_A, 3, n, 1002));
	for (uint64_t n = 11; n <= 15; n++)
		assert_true(feed(t, &s2, UUID_A, 3, n, 1002));
	/* once past the copies, even a frame equal to an old one is delivered */
	assert_true(feed(t, &s2, UUID_A, 3, 7, 1002));
	assert_int_equal(s2.skipped, 5);
	resume_get_stats(t, &st);
	assert_int_equal(st.resumed_sessions, 1);
	assert_int_equal(st.skipped_frames, 5);
	assert_int_equal(st.skipped_bytes, 500);
	resume_end(t, &s2, 1003);
	resume_destroy(t);
}

/* The resent window starts before what was delivered... is impossible; it may start inside it
 * or after it: a first frame never delivered means everything is new. */
static void test_nothing_lost_when_window_is_new(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 1024);
	struct resume_session s1 = {0}, s2 = {0};

	for (uint64_t n = 1; n <= 5; n++)
		assert_true(feed(t, &s1, UUID_A, 1, n, 10));
	resume_end(t, &s1, 10);
	for (uint64_t n = 6; n <= 9; n++)
		assert_true(feed(t, &s2, UUID_A, 1, n, 11));
	assert_int_equal(s2.skipped, 0);
	resume_end(t, &s2, 11);
	resume_destroy(t);
}

/* A window that begins before what this dispatcher saw (it restarted meanwhile): the older
 * frames are delivered (again), the ones it delivered are skipped, the rest delivered. */
static void test_window_older_than_memory(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 1024);
	struct resume_session s1 = {0}, s2 = {0}, s3 = {0};

	for (uint64_t n = 5; n <= 10; n++)
		assert_true(feed(t, &s1, UUID_A, 3, n, 50));
	resume_end(t, &s1, 50);
	for (uint64_t n = 1; n <= 4; n++)
		assert_true(feed(t, &s2, UUID_A, 3, n, 51));
	for (uint64_t n = 5; n <= 10; n++)
		assert_false(feed(t, &s2, UUID_A, 3, n, 51));
	for (uint64_t n = 11; n <= 12; n++)
		assert_true(feed(t, &s2, UUID_A, 3, n, 51));
	assert_int_equal(s2.skipped, 6);
	resume_end(t, &s2, 51);
	/* a session still probing when it ends frees its probe (ASan checks) */
	assert_true(feed(t, &s3, UUID_A, 3, 99, 52));
	assert_non_null(s3.index);
	resume_end(t, &s3, 52);
	assert_null(s3.index);
	resume_destroy(t);
}

/* Genuine repeats: the same frame twice in a row delivered twice; a copy run that diverges
 * delivers from the divergence on. */
static void test_repeats_and_divergence(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 1024);
	struct resume_session s1 = {0}, s2 = {0}, s3 = {0};

	assert_true(feed(t, &s1, UUID_A, 8, 1, 5));
	assert_true(feed(t, &s1, UUID_A, 8, 1, 5)); /* a true repeat within one session */
	assert_true(feed(t, &s1, UUID_A, 8, 2, 5));
	assert_true(feed(t, &s1, UUID_A, 8, 3, 5));
	resume_end(t, &s1, 5);
	/* resent: 1 1 2 3 are copies (earliest occurrence of 1), then 4 is new */
	assert_false(feed(t, &s2, UUID_A, 8, 1, 6));
	assert_false(feed(t, &s2, UUID_A, 8, 1, 6));
	assert_false(feed(t, &s2, UUID_A, 8, 2, 6));
	assert_false(feed(t, &s2, UUID_A, 8, 3, 6));
	assert_true(feed(t, &s2, UUID_A, 8, 4, 6));
	resume_end(t, &s2, 6);
	/* a session starting with 2 then 9 (not 3): 2 skipped, 9 delivered, then 3 delivered */
	assert_false(feed(t, &s3, UUID_A, 8, 2, 7));
	assert_true(feed(t, &s3, UUID_A, 8, 9, 7));
	assert_true(feed(t, &s3, UUID_A, 8, 3, 7));
	resume_end(t, &s3, 7);
	resume_destroy(t);
}

/* Streams are apart: another sensor, another type, another meta-type; meta headers pass. */
static void test_streams_apart(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 1024);
	struct resume_session a = {0}, b = {0}, c = {0}, m1 = {0}, m2 = {0};
	uint8_t h[D4_HEADER_SIZE];

	assert_true(feed(t, &a, UUID_A, 3, 1, 1));
	assert_true(feed(t, &b, UUID_B, 3, 1, 1)); /* same frame bytes, another sensor */
	assert_true(feed(t, &c, UUID_A, 8, 1, 1)); /* another type */
	hdr(h, 254, 42);
	assert_true(resume_frame(t, &m1, UUID_A, "ja3-jl", h, 1));
	resume_end(t, &m1, 1);
	/* a new 254 session: its meta header (type 2) passes and does not end the probe */
	hdr(h, 2, 77);
	assert_true(resume_frame(t, &m2, UUID_A, "ja3-jl", h, 2));
	assert_true(resume_frame(t, &m2, UUID_A, "ja3-jl", h, 2));
	hdr(h, 254, 42);
	assert_false(resume_frame(t, &m2, UUID_A, "ja3-jl", h, 2));
	/* the same 254 frame under another meta-type is another stream */
	struct resume_session m3 = {0};
	assert_true(resume_frame(t, &m3, UUID_A, "maltrail", h, 2));
	resume_end(t, &a, 2);
	resume_end(t, &b, 2);
	resume_end(t, &c, 2);
	resume_end(t, &m2, 2);
	resume_end(t, &m3, 2);
	resume_destroy(t);
}

/* Bounds: frames older than keep are forgotten, at most max_frames are remembered, and a
 * stream without sessions goes away after keep seconds. */
static void test_bounds(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(10, 8);
	struct resume_session s1 = {0}, s2 = {0}, s3 = {0};
	struct resume_stats st;

	for (uint64_t n = 1; n <= 20; n++)
		assert_true(feed(t, &s1, UUID_A, 1, n, 100));
	resume_get_stats(t, &st);
	assert_int_equal(st.frames, 8); /* 13..20 */
	resume_end(t, &s1, 100);
	/* 12 was forgotten: a window starting there is delivered whole (a copy, never a loss) */
	assert_true(feed(t, &s2, UUID_A, 1, 12, 101));
	resume_end(t, &s2, 101);
	/* 20 s later everything is forgotten */
	assert_true(feed(t, &s3, UUID_A, 1, 20, 125));
	resume_end(t, &s3, 125);
	resume_sweep(t, 200);
	resume_get_stats(t, &st);
	assert_int_equal(st.streams, 0);
	assert_int_equal(st.frames, 0);
	resume_destroy(t);
}

/* A matching session keeps its place while the ring forgets its oldest entries. */
static void test_match_survives_forgetting(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 4);
	struct resume_session s1 = {0}, s2 = {0}, s3 = {0};

	for (uint64_t n = 1; n <= 4; n++)
		assert_true(feed(t, &s1, UUID_A, 1, n, 1));
	resume_end(t, &s1, 1);
	assert_false(feed(t, &s2, UUID_A, 1, 2, 2)); /* expects 3 next */
	/* another session of the same stream pushes new frames: 1, 2 forgotten */
	assert_true(feed(t, &s3, UUID_A, 1, 50, 2));
	assert_true(feed(t, &s3, UUID_A, 1, 51, 2));
	assert_false(feed(t, &s2, UUID_A, 1, 3, 2));
	assert_false(feed(t, &s2, UUID_A, 1, 4, 2));
	assert_true(feed(t, &s2, UUID_A, 1, 5, 2));
	resume_end(t, &s2, 2);
	resume_end(t, &s3, 2);
	resume_destroy(t);
}

/* Off (max_frames 0) or no table: everything is delivered. */
static void test_off(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 0);
	struct resume_session s1 = {0}, s2 = {0}, s3 = {0};

	assert_true(feed(t, &s1, UUID_A, 1, 1, 1));
	resume_end(t, &s1, 1);
	assert_true(feed(t, &s2, UUID_A, 1, 1, 1));
	assert_true(feed(NULL, &s3, UUID_A, 1, 1, 1));
	resume_destroy(t);
}

/* Many streams: the table grows and finds each again. */
static void test_many_streams(void **state)
{
	(void)state;
	struct resume_table *t = resume_create(60, 16);
	static struct resume_session s[2000], r[2000];
	uint8_t uuid[D4_UUID_SIZE];
	struct resume_stats st;

	for (unsigned i = 0; i < 2000; i++) {
		memcpy(uuid, UUID_A, sizeof(uuid));
		d4_put_le32(uuid + 8, i);
		assert_true(feed(t, &s[i], uuid, 1, i, 1));
		resume_end(t, &s[i], 1);
	}
	resume_get_stats(t, &st);
	assert_int_equal(st.streams, 2000);
	for (unsigned i = 0; i < 2000; i++) {
		memcpy(uuid, UUID_A, sizeof(uuid));
		d4_put_le32(uuid + 8, i);
		assert_false(feed(t, &r[i], uuid, 1, i, 2));
		resume_end(t, &r[i], 2);
	}
	resume_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copies_skipped_once),
		cmocka_unit_test(test_nothing_lost_when_window_is_new),
		cmocka_unit_test(test_window_older_than_memory),
		cmocka_unit_test(test_repeats_and_divergence),
		cmocka_unit_test(test_streams_apart),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_match_survives_forgetting),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_many_streams),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
