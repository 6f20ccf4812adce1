/*
 * test_tls_flow.c — the TLS analyzer's flow layer (analyzers/tls/flow.c): decoding, in-order
 * reassembly with out-of-order, overlapping and retransmitted segments, midstream flows, the
 * end of a flow (consumer done, FIN/RST, idle, eviction, shutdown), the per-direction cap and
 * the fast path of finished flows. Packets are raw IPv4/IPv6 (LINKTYPE_RAW) built here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow.h"

#define SYN 0x02
#define ACK 0x10
#define FIN 0x01
#define RST 0x04
#define PSH 0x08

struct rec {
	uint8_t data[2][70000];
	size_t len[2];
	int calls;
	int ends[5];
	int want_done_at; /* return DONE once dir 0 has this many bytes (0: never) */
	unsigned last_dir;
};

static int on_data(void *arg, struct tls_flow *f, unsigned dir, const uint8_t *data, size_t len)
{
	struct rec *r = arg;
	(void)f;
	r->calls++;
	r->last_dir = dir;
	memcpy(r->data[dir], data, len);
	r->len[dir] = len;
	if (r->want_done_at && dir == 0 && len >= (size_t)r->want_done_at)
		return TLS_FLOW_DONE;
	return TLS_FLOW_MORE;
}

static void on_end(void *arg, struct tls_flow *f, enum tls_flow_end why)
{
	struct rec *r = arg;
	(void)f;
	r->ends[why]++;
}

/* A raw IPv4 TCP packet from 10.0.0.<a>:<sp> to 10.0.0.<b>:<dp>. */
static size_t pkt4(uint8_t *out, int a, int b, uint16_t sp, uint16_t dp, uint32_t seq, uint8_t flags,
                   const uint8_t *payload, size_t plen)
{
	size_t total = 20 + 20 + plen;
	memset(out, 0, 40);
	out[0] = 0x45;
	out[2] = (uint8_t)(total >> 8);
	out[3] = (uint8_t)total;
	out[8] = 64;
	out[9] = 6;
	out[12] = 10, out[15] = (uint8_t)a;
	out[16] = 10, out[19] = (uint8_t)b;
	uint8_t *t = out + 20;
	t[0] = (uint8_t)(sp >> 8), t[1] = (uint8_t)sp;
	t[2] = (uint8_t)(dp >> 8), t[3] = (uint8_t)dp;
	t[4] = (uint8_t)(seq >> 24), t[5] = (uint8_t)(seq >> 16), t[6] = (uint8_t)(seq >> 8), t[7] = (uint8_t)seq;
	t[12] = 5 << 4;
	t[13] = flags;
	if (plen)
		memcpy(out + 40, payload, plen);
	return total;
}

static uint8_t pbuf[80000];

static void send4(struct tls_flow_table *t, uint64_t ts, int a, int b, uint16_t sp, uint16_t dp,
                  uint32_t seq, uint8_t flags, const uint8_t *payload, size_t plen)
{
	size_t n = pkt4(pbuf, a, b, sp, dp, seq, flags, payload, plen);
	assert_int_equal(tls_flow_packet(t, TLS_LINK_RAW, ts, 0, pbuf, n), 0);
}

static uint8_t msg[4096];

static void fill_msg(void)
{
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
}

static void test_in_order_and_syn(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tls_flow_table *t = tls_flow_table_new(NULL, on_data, on_end, r);
	assert_non_null(t);
	send4(t, 100, 1, 2, 5000, 443, 999, SYN, NULL, 0);
	send4(t, 100, 2, 1, 443, 5000, 7999, SYN | ACK, NULL, 0);
	send4(t, 100, 1, 2, 5000, 443, 1000, ACK | PSH, msg, 300);
	send4(t, 100, 1, 2, 5000, 443, 1300, ACK | PSH, msg + 300, 200);
	send4(t, 100, 2, 1, 443, 5000, 8000, ACK | PSH, msg, 50);
	assert_int_equal(r->len[0], 500);
	assert_memory_equal(r->data[0], msg, 500);
	assert_int_equal(r->len[1], 50);
	assert_int_equal(r->last_dir, 1); /* the server answered: endpoint 1 */
	send4(t, 101, 1, 2, 5000, 443, 1500, FIN | ACK, NULL, 0);
	send4(t, 101, 2, 1, 443, 5000, 8050, FIN | ACK, NULL, 0);
	assert_int_equal(r->ends[TLS_FLOW_END_CLOSED], 1);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_int_equal(s->flows, 1);
	assert_int_equal(s->flows_live, 0);
	tls_flow_table_free(t);
	free(r);
}

static void test_out_of_order_overlap_retransmit(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tls_flow_table *t = tls_flow_table_new(NULL, on_data, on_end, r);
	send4(t, 1, 1, 2, 5001, 443, 0, SYN, NULL, 0);
	/* bytes [300,400), [100,250), [0,120) overlapping, [0,50) retransmitted, [240,310) */
	send4(t, 1, 1, 2, 5001, 443, 301, ACK, msg + 300, 100);
	send4(t, 1, 1, 2, 5001, 443, 101, ACK, msg + 100, 150);
	assert_int_equal(r->calls, 0);
	send4(t, 1, 1, 2, 5001, 443, 1, ACK, msg, 120);
	assert_int_equal(r->len[0], 250);
	send4(t, 1, 1, 2, 5001, 443, 1, ACK, msg, 50);
	send4(t, 1, 1, 2, 5001, 443, 241, ACK, msg + 240, 70);
	assert_int_equal(r->len[0], 400);
	assert_memory_equal(r->data[0], msg, 400);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_true(s->out_of_order >= 2);
	assert_int_equal(s->retransmits, 1);
	tls_flow_table_free(t);
	assert_int_equal(r->ends[TLS_FLOW_END_SHUTDOWN], 1);
	free(r);
}

static void test_too_many_gaps(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tls_flow_table *t = tls_flow_table_new(NULL, on_data, on_end, r);
	send4(t, 1, 1, 2, 5002, 443, 0, SYN, NULL, 0);
	for (int i = 0; i < TLS_FLOW_MAX_RANGES + 3; i++)
		send4(t, 1, 1, 2, 5002, 443, (uint32_t)(1 + 20 * (i + 1)), ACK, msg, 10);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_int_equal(s->ooo_dropped, 3);
	assert_int_equal(r->calls, 0);
	tls_flow_table_free(t);
	free(r);
}

static void test_midstream_and_done_fast_path(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	r->want_done_at = 100;
	struct tls_flow_table *t = tls_flow_table_new(NULL, on_data, on_end, r);
	send4(t, 1, 3, 4, 6000, 443, 123456, ACK | PSH, msg, 60); /* no SYN: starts here */
	assert_int_equal(r->len[0], 60);
	send4(t, 1, 3, 4, 6000, 443, 123516, ACK | PSH, msg + 60, 60);
	assert_int_equal(r->ends[TLS_FLOW_END_DONE], 1);
	for (int i = 0; i < 50; i++)
		send4(t, 1, 3, 4, 6000, 443, 123576 + 60u * (unsigned)i, ACK | PSH, msg, 60);
	send4(t, 1, 4, 3, 443, 6000, 5, ACK | PSH, msg, 60);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_int_equal(s->fast_path, 51);
	assert_int_equal(s->flows, 1);
	/* a SYN on the same 4-tuple is a new connection */
	send4(t, 2, 3, 4, 6000, 443, 9, SYN, NULL, 0);
	assert_int_equal(s->flows, 2);
	tls_flow_table_free(t);
	free(r);
}

static void test_limits(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tls_flow_config cfg = {.max_flows = 3, .max_dir_bytes = 1000, .idle_timeout = 10};
	struct tls_flow_table *t = tls_flow_table_new(&cfg, on_data, on_end, r);
	for (int i = 0; i < 5; i++)
		send4(t, 1, 10 + i, 2, 7000, 443, 0, SYN, NULL, 0);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_int_equal(s->flows_evicted, 2);
	assert_int_equal(r->ends[TLS_FLOW_END_EVICTED], 2);
	assert_int_equal(s->flows_live, 3);
	/* the cap: 1000 bytes kept of 1500 */
	send4(t, 1, 14, 2, 7000, 443, 1, ACK, msg, 1500);
	assert_int_equal(r->len[0], 1000);
	assert_int_equal(s->dir_cap_hits, 1);
	/* idle: 11 s later every flow is gone */
	send4(t, 20, 30, 31, 1, 2, 0, SYN, NULL, 0);
	assert_int_equal(r->ends[TLS_FLOW_END_IDLE], 3);
	send4(t, 20, 30, 31, 1, 2, 1, RST, NULL, 0);
	assert_int_equal(r->ends[TLS_FLOW_END_CLOSED], 1);
	assert_int_equal(s->flows_live, 0);
	tls_flow_table_free(t);
	free(r);
}

static void test_decode_errors(void **state)
{
	(void)state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tls_flow_table *t = tls_flow_table_new(NULL, on_data, on_end, r);
	uint8_t p[128];
	size_t n = pkt4(p, 1, 2, 1, 2, 0, SYN, NULL, 0);
	assert_int_equal(tls_flow_packet(t, TLS_LINK_RAW, 1, 0, p, 30), 0); /* TCP cut */
	p[6] = 0x20;                                                       /* more fragments */
	assert_int_equal(tls_flow_packet(t, TLS_LINK_RAW, 1, 0, p, n), 0);
	p[6] = 0;
	p[9] = 17; /* UDP */
	assert_int_equal(tls_flow_packet(t, TLS_LINK_RAW, 1, 0, p, n), 0);
	assert_int_equal(tls_flow_packet(t, 147, 1, 0, p, n), 0); /* unknown link type */
	assert_int_equal(tls_flow_packet(t, TLS_LINK_ETHERNET, 1, 0, p, 5), 0);
	/* IPv6 with a fragment header */
	uint8_t v6[60] = {0x60};
	v6[5] = 20;
	v6[6] = 44;
	assert_int_equal(tls_flow_packet(t, TLS_LINK_RAW, 1, 0, v6, sizeof(v6)), 0);
	const struct tls_flow_stats *s = tls_flow_stats(t);
	assert_int_equal(s->truncated, 2);
	assert_int_equal(s->fragments, 2);
	assert_int_equal(s->not_tcp, 1);
	assert_int_equal(s->not_ip, 1);
	assert_int_equal(s->flows, 0);
	tls_flow_table_free(t);
	free(r);
}

int main(void)
{
	fill_msg();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_and_syn),
		cmocka_unit_test(test_out_of_order_overlap_retransmit),
		cmocka_unit_test(test_too_many_gaps),
		cmocka_unit_test(test_midstream_and_done_fast_path),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_decode_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
