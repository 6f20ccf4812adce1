/*
 * test_analyzer.c — the reassembly helpers of d4_analyzer.h: lines and pcap records come out
 * whole and identical wherever the stream is cut into frames; overlong lines, CRLF, both pcap
 * byte orders, nanosecond pcap, a cut last record and a bad magic are reported, never overrun.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "d4_analyzer.h"
#include "d4_bytes.h"

/* ---- lines ---- */

#define MAX_LINES 16

struct got_lines {
	unsigned n;
	char text[MAX_LINES][80];
	size_t len[MAX_LINES];
	unsigned flags[MAX_LINES];
};

static int collect_line(void *arg, const uint8_t *line, size_t len, unsigned flags)
{
	struct got_lines *g = arg;
	assert_true(g->n < MAX_LINES);
	assert_true(len < sizeof(g->text[0]));
	memcpy(g->text[g->n], line, len);
	g->text[g->n][len] = '\0';
	g->len[g->n] = len;
	g->flags[g->n] = flags;
	g->n++;
	return 0;
}

/* Feeds `in` cut at `cut` (and byte by byte when cut == SIZE_MAX), then ends the session. */
static void run_lines(const char *in, size_t cut, size_t max_line, struct got_lines *g)
{
	struct d4_reasm_lines r;
	size_t len = strlen(in);
	const uint8_t *p = (const uint8_t *)in;
	memset(g, 0, sizeof(*g));
	d4_reasm_lines_init(&r, max_line);
	if (cut == SIZE_MAX) {
		for (size_t i = 0; i < len; i++)
			assert_int_equal(d4_reasm_lines_feed(&r, p + i, 1, collect_line, g), 0);
	} else {
		assert_int_equal(d4_reasm_lines_feed(&r, p, cut, collect_line, g), 0);
		assert_int_equal(d4_reasm_lines_feed(&r, p + cut, len - cut, collect_line, g), 0);
	}
	assert_int_equal(d4_reasm_lines_end(&r, collect_line, g), 0);
	assert_true(r.cap <= max_line + 1);
	d4_reasm_lines_free(&r);
}

static void check_line(const struct got_lines *g, unsigned i, const char *text, unsigned flags)
{
	assert_true(i < g->n);
	assert_string_equal(g->text[i], text);
	assert_int_equal(g->flags[i], flags);
}

static void test_lines_every_split(void **state)
{
	(void)state;
	const char *in = "alpha\nbeta\r\n\ngamma delta\nlast";
	struct got_lines g;
	for (size_t cut = 0; cut <= strlen(in) + 1; cut++) {
		run_lines(in, cut > strlen(in) ? SIZE_MAX : cut, 64, &g);
		assert_int_equal(g.n, 5);
		check_line(&g, 0, "alpha", 0);
		check_line(&g, 1, "beta", 0);
		check_line(&g, 2, "", 0);
		check_line(&g, 3, "gamma delta", 0);
		check_line(&g, 4, "last", D4_LINE_UNTERMINATED);
	}
}

static void test_lines_overlong(void **state)
{
	(void)state;
	/* max_line 8: a 13-byte line is cut, a line of exactly 8 + CRLF is not */
	const char *in = "0123456789abc\nshort\n01234567\r\nABCDEFGHIJ";
	struct got_lines g;
	for (size_t cut = 0; cut <= strlen(in) + 1; cut++) {
		run_lines(in, cut > strlen(in) ? SIZE_MAX : cut, 8, &g);
		assert_int_equal(g.n, 4);
		check_line(&g, 0, "01234567", D4_LINE_TRUNCATED);
		check_line(&g, 1, "short", 0);
		check_line(&g, 2, "01234567", 0);
		/* an overlong unterminated tail: given truncated once, when it overflows */
		check_line(&g, 3, "ABCDEFGH", D4_LINE_TRUNCATED);
	}
}

static void test_lines_crlf(void **state)
{
	(void)state;
	struct got_lines g;
	run_lines("a\r\nb\rc\r\n\r\n", 3, 64, &g);
	assert_int_equal(g.n, 3);
	check_line(&g, 0, "a", 0);
	check_line(&g, 1, "b\rc", 0); /* a lone CR inside a line stays */
	check_line(&g, 2, "", 0);
	/* an unterminated last line ending in CR keeps it (it is not a CRLF) */
	run_lines("x\r", 1, 64, &g);
	assert_int_equal(g.n, 1);
	check_line(&g, 0, "x\r", D4_LINE_UNTERMINATED);
}

static int stop_at_b(void *arg, const uint8_t *line, size_t len, unsigned flags)
{
	(void)flags;
	(*(unsigned *)arg)++;
	return len == 1 && line[0] == 'b' ? 7 : 0;
}

static void test_lines_callback_stops(void **state)
{
	(void)state;
	struct d4_reasm_lines r;
	unsigned calls = 0;
	d4_reasm_lines_init(&r, 0);
	assert_int_equal(r.max_line, 65536);
	assert_int_equal(d4_reasm_lines_feed(&r, (const uint8_t *)"a\nb\nc\n", 6, stop_at_b, &calls), 7);
	assert_int_equal(calls, 2);
	d4_reasm_lines_free(&r);
}

/* ---- pcap ---- */

struct got_pcap {
	unsigned globals;
	struct d4_pcap_global g;
	unsigned n;
	struct d4_pcap_record rec[8];
	uint8_t data[8][64];
};

static int collect_global(void *arg, const struct d4_pcap_global *gl)
{
	struct got_pcap *g = arg;
	g->globals++;
	g->g = *gl;
	return 0;
}

static int collect_record(void *arg, const struct d4_pcap_global *gl, const struct d4_pcap_record *r)
{
	struct got_pcap *g = arg;
	(void)gl;
	assert_true(g->n < 8);
	assert_true(r->caplen <= sizeof(g->data[0]));
	g->rec[g->n] = *r;
	memcpy(g->data[g->n], r->data, r->caplen);
	g->rec[g->n].data = NULL;
	g->n++;
	return 0;
}

static const struct d4_pcap_cbs collect_cbs = {collect_global, collect_record};

static void put32(uint8_t *p, uint32_t v, bool be)
{
	if (be)
		d4_put_be32(p, v);
	else
		d4_put_le32(p, v);
}

static const uint32_t rec_caplen[3] = {10, 0, 40};

/* A global header and 3 records (caplen 10, 0, 40); returns the length. */
static size_t build_pcap(uint8_t *buf, bool be, bool nsec)
{
	put32(buf, nsec ? 0xa1b23c4du : 0xa1b2c3d4u, be);
	if (be) {
		buf[4] = 0;
		buf[5] = 2;
		buf[6] = 0;
		buf[7] = 4;
	} else {
		d4_put_le16(buf + 4, 2);
		d4_put_le16(buf + 6, 4);
	}
	put32(buf + 8, 0, be);
	put32(buf + 12, 0, be);
	put32(buf + 16, 65535, be);
	put32(buf + 20, 1, be);
	size_t at = 24;
	for (uint32_t i = 0; i < 3; i++) {
		put32(buf + at, 1700000000u + i, be);
		put32(buf + at + 4, 123 + i, be);
		put32(buf + at + 8, rec_caplen[i], be);
		put32(buf + at + 12, rec_caplen[i] + 100, be);
		at += 16;
		for (uint32_t k = 0; k < rec_caplen[i]; k++)
			buf[at++] = (uint8_t)(i * 50 + k);
	}
	return at;
}

static void check_pcap(const struct got_pcap *g, bool be, bool nsec, unsigned nrec)
{
	assert_int_equal(g->globals, 1);
	assert_int_equal(g->g.big_endian, be);
	assert_int_equal(g->g.nsec, nsec);
	assert_int_equal(g->g.version_major, 2);
	assert_int_equal(g->g.version_minor, 4);
	assert_int_equal(g->g.snaplen, 65535);
	assert_int_equal(g->g.linktype, 1);
	assert_int_equal(g->n, nrec);
	for (unsigned i = 0; i < nrec; i++) {
		assert_int_equal(g->rec[i].ts_sec, 1700000000u + i);
		assert_int_equal(g->rec[i].ts_frac, 123 + i);
		assert_int_equal(g->rec[i].caplen, rec_caplen[i]);
		assert_int_equal(g->rec[i].len, rec_caplen[i] + 100);
		for (uint32_t k = 0; k < rec_caplen[i]; k++)
			assert_int_equal(g->data[i][k], (uint8_t)(i * 50 + k));
	}
}

static void test_pcap_every_split(void **state)
{
	(void)state;
	uint8_t buf[256];
	for (int variant = 0; variant < 4; variant++) {
		bool be = variant & 1, nsec = variant & 2;
		size_t len = build_pcap(buf, be, nsec);
		for (size_t cut = 0; cut <= len + 1; cut++) {
			struct d4_reasm_pcap p;
			struct got_pcap g;
			memset(&g, 0, sizeof(g));
			d4_reasm_pcap_init(&p);
			if (cut > len) {
				for (size_t i = 0; i < len; i++)
					assert_int_equal(d4_reasm_pcap_feed(&p, buf + i, 1, &collect_cbs, &g), 0);
			} else {
				assert_int_equal(d4_reasm_pcap_feed(&p, buf, cut, &collect_cbs, &g), 0);
				assert_int_equal(d4_reasm_pcap_feed(&p, buf + cut, len - cut, &collect_cbs, &g),
				                 0);
			}
			assert_int_equal(d4_reasm_pcap_end(&p), 0);
			check_pcap(&g, be, nsec, 3);
			assert_int_equal(p.records, 3);
			assert_false(p.failed);
			d4_reasm_pcap_free(&p);
		}
	}
}

static void test_pcap_truncated(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = build_pcap(buf, false, false);
	for (size_t cut = 0; cut < len - 5; cut++) {
		struct d4_reasm_pcap p;
		struct got_pcap g;
		memset(&g, 0, sizeof(g));
		d4_reasm_pcap_init(&p);
		assert_int_equal(d4_reasm_pcap_feed(&p, buf, cut, &collect_cbs, &g), 0);
		assert_int_equal(d4_reasm_pcap_feed(&p, buf + cut, len - 5 - cut, &collect_cbs, &g), 0);
		assert_int_equal(d4_reasm_pcap_end(&p), D4_REASM_MALFORMED);
		assert_non_null(p.why);
		check_pcap(&g, false, false, 2);
		d4_reasm_pcap_free(&p);
	}
}

static void test_pcap_bad(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = build_pcap(buf, false, false);
	struct d4_reasm_pcap p;
	struct got_pcap g;

	/* bad magic: reported once, the rest of the session is counted and skipped */
	buf[0] ^= 0xff;
	memset(&g, 0, sizeof(g));
	d4_reasm_pcap_init(&p);
	assert_int_equal(d4_reasm_pcap_feed(&p, buf, 10, &collect_cbs, &g), 0);
	assert_int_equal(d4_reasm_pcap_feed(&p, buf + 10, 30, &collect_cbs, &g), D4_REASM_MALFORMED);
	assert_string_equal(p.why, "bad pcap magic");
	assert_int_equal(d4_reasm_pcap_feed(&p, buf + 40, len - 40, &collect_cbs, &g), 0);
	assert_int_equal(p.skipped, len - 24);
	assert_int_equal(d4_reasm_pcap_end(&p), 0);
	assert_int_equal(g.globals, 0);
	assert_int_equal(g.n, 0);
	d4_reasm_pcap_free(&p);
	buf[0] ^= 0xff;

	/* a record longer than any snaplen allows is malformed, not a 4 GiB allocation */
	d4_put_le32(buf + 24 + 8, 0xfffffff0u);
	for (size_t cut = 0; cut <= 40; cut += 20) {
		memset(&g, 0, sizeof(g));
		d4_reasm_pcap_init(&p);
		int a = d4_reasm_pcap_feed(&p, buf, cut, &collect_cbs, &g);
		int b = d4_reasm_pcap_feed(&p, buf + cut, len - cut, &collect_cbs, &g);
		assert_int_equal(a + b, D4_REASM_MALFORMED);
		assert_true(p.failed);
		assert_int_equal(g.n, 0);
		assert_true(p.cap <= 4096);
		d4_reasm_pcap_free(&p);
	}

	/* pcapng is named */
	d4_put_le32(buf, 0x0a0d0d0au);
	d4_reasm_pcap_init(&p);
	assert_int_equal(d4_reasm_pcap_feed(&p, buf, len, &collect_cbs, &g), D4_REASM_MALFORMED);
	assert_non_null(strstr(p.why, "pcapng"));
	d4_reasm_pcap_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_every_split), cmocka_unit_test(test_lines_overlong),
		cmocka_unit_test(test_lines_crlf),
		cmocka_unit_test(test_lines_callback_stops), cmocka_unit_test(test_pcap_every_split),
		cmocka_unit_test(test_pcap_truncated), cmocka_unit_test(test_pcap_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
