/* test_ipc.c — the ingest/dispatch link: every message round trip, any chunking, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "d4_bytes.h"
#include "d4_ipc.h"

static size_t build_stream(uint8_t *buf)
{
	size_t at = 0;
	struct d4_ipc_hello h = {.version = D4_IPC_VERSION, .worker = 3, .instance = 0x1122334455667788ull};
	d4_ipc_put_hello(buf + at, &h);
	at += D4_IPC_HELLO_LEN;
	struct d4_ipc_open o = {.session = 42, .time = 1700000000, .type = 2, .flags = D4_IPC_OPEN_REPLAY, .port = 4242};
	memset(o.uuid, 0xab, 16);
	memset(o.addr, 0x7f, 16);
	d4_ipc_put_open(buf + at, &o);
	at += D4_IPC_OPEN_LEN;
	struct d4_ipc_meta m = {.session = 42, .meta_type = "ja3-jl", .meta_type_len = 6,
	                        .json = (const uint8_t *)"{\"type\":\"ja3-jl\"}", .json_len = 17};
	d4_ipc_put_meta(buf + at, &m);
	at += d4_ipc_meta_len(6, 17);
	d4_ipc_put_offset(buf + at, D4_IPC_RESUME, 1000);
	at += D4_IPC_OFFSET_LEN;
	uint8_t hdr[D4_HEADER_SIZE];
	memset(hdr, 0, sizeof(hdr));
	d4_put_le32(hdr + D4_OFF_SIZE, 300);
	d4_ipc_put_frame_head(buf + at, 42, hdr, 300);
	at += D4_IPC_FRAME_FIXED;
	for (int i = 0; i < 300; i++)
		buf[at++] = (uint8_t)i;
	struct d4_ipc_close c = {.session = 42, .time = 1700000001, .reason = D4_R_HMAC_MISMATCH};
	d4_ipc_put_close(buf + at, &c);
	at += D4_IPC_CLOSE_LEN;
	d4_ipc_put_offset(buf + at, D4_IPC_ACK, 123456789);
	at += D4_IPC_OFFSET_LEN;
	d4_ipc_put_empty(buf + at, D4_IPC_PAUSE);
	at += D4_IPC_PREFIX;
	return at;
}

static void check_msg(unsigned idx, const struct d4_ipc_msg *m)
{
	static const enum d4_ipc_kind kinds[] = {D4_IPC_HELLO, D4_IPC_OPEN, D4_IPC_META, D4_IPC_RESUME,
	                                         D4_IPC_FRAME, D4_IPC_CLOSE, D4_IPC_ACK, D4_IPC_PAUSE};
	assert_true(idx < 8);
	assert_int_equal(m->kind, kinds[idx]);
	switch (m->kind) {
	case D4_IPC_HELLO:
		assert_int_equal(m->u.hello.worker, 3);
		assert_true(m->u.hello.instance == 0x1122334455667788ull);
		break;
	case D4_IPC_OPEN:
		assert_true(m->u.open.session == 42);
		assert_int_equal(m->u.open.type, 2);
		assert_int_equal(m->u.open.flags, D4_IPC_OPEN_REPLAY);
		assert_int_equal(m->u.open.port, 4242);
		assert_int_equal(m->u.open.uuid[15], 0xab);
		assert_int_equal(m->u.open.addr[0], 0x7f);
		break;
	case D4_IPC_META:
		assert_int_equal(m->u.meta.meta_type_len, 6);
		assert_memory_equal(m->u.meta.meta_type, "ja3-jl", 6);
		assert_int_equal(m->u.meta.json_len, 17);
		break;
	case D4_IPC_RESUME:
		assert_true(m->u.offset == 1000);
		break;
	case D4_IPC_FRAME:
		assert_int_equal(m->u.frame.payload_len, 300);
		assert_int_equal(m->u.frame.payload[299], (uint8_t)299);
		assert_int_equal(m->wire_len, D4_IPC_FRAME_FIXED + 300);
		break;
	case D4_IPC_CLOSE:
		assert_int_equal(m->u.close.reason, D4_R_HMAC_MISMATCH);
		break;
	case D4_IPC_ACK:
		assert_true(m->u.offset == 123456789);
		break;
	default:
		break;
	}
}

static unsigned feed_all(struct d4_ipc_reader *r, const uint8_t *p, size_t len, unsigned idx)
{
	while (len > 0) {
		size_t used;
		struct d4_ipc_msg m;
		const char *why = NULL;
		enum d4_ipc_status st = d4_ipc_reader_feed(r, p, len, &used, &m, &why);
		assert_int_not_equal(st, D4_IPC_BAD);
		assert_true(used <= len);
		p += used;
		len -= used;
		if (st == D4_IPC_MESSAGE)
			check_msg(idx++, &m);
		else
			assert_int_equal(len, 0);
	}
	return idx;
}

static void test_every_split(void **state)
{
	(void)state;
	uint8_t *buf = malloc(4096);
	assert_non_null(buf);
	size_t len = build_stream(buf);
	for (size_t cut = 0; cut <= len; cut++) {
		struct d4_ipc_reader r;
		d4_ipc_reader_init(&r);
		unsigned n = feed_all(&r, buf, cut, 0);
		n = feed_all(&r, buf + cut, len - cut, n);
		assert_int_equal(n, 8);
		d4_ipc_reader_free(&r);
	}
	struct d4_ipc_reader r;
	d4_ipc_reader_init(&r);
	unsigned n = 0;
	for (size_t i = 0; i < len; i++)
		n = feed_all(&r, buf + i, 1, n);
	assert_int_equal(n, 8);
	d4_ipc_reader_free(&r);
	free(buf);
}

static void expect_bad(const uint8_t *buf, size_t len)
{
	struct d4_ipc_reader r;
	d4_ipc_reader_init(&r);
	size_t used;
	struct d4_ipc_msg m;
	const char *why = NULL;
	assert_int_equal(d4_ipc_reader_feed(&r, buf, len, &used, &m, &why), D4_IPC_BAD);
	assert_non_null(why);
	assert_int_equal(d4_ipc_reader_feed(&r, buf, len, &used, &m, &why), D4_IPC_BAD);
	d4_ipc_reader_free(&r);
}

static void test_bad(void **state)
{
	(void)state;
	uint8_t b[128];
	memset(b, 0, sizeof(b));
	/* zero length */
	expect_bad(b, 10);
	/* huge length */
	d4_put_le32(b, 0xffffffffu);
	expect_bad(b, 10);
	/* unknown kind */
	d4_put_le32(b, 1);
	b[4] = 99;
	expect_bad(b, 5);
	/* short OPEN */
	d4_put_le32(b, 10);
	b[4] = D4_IPC_OPEN;
	expect_bad(b, 14);
	/* ACK with trailing bytes */
	d4_put_le32(b, 10);
	b[4] = D4_IPC_ACK;
	expect_bad(b, 14);
	/* FRAME whose header size disagrees with its payload */
	uint8_t hdr[D4_HEADER_SIZE] = {0};
	d4_put_le32(hdr + D4_OFF_SIZE, 5);
	d4_ipc_put_frame_head(b, 1, hdr, 4);
	expect_bad(b, D4_IPC_FRAME_FIXED + 4);
	assert_string_equal(d4_ipc_kind_name(D4_IPC_FRAME), "frame");
	assert_string_equal(d4_ipc_kind_name(200), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
