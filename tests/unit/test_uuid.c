/* test_uuid.c — uuid text forms, the v4 check and generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "d4_uuid.h"

static const uint8_t raw[16] = {0xcd, 0x98, 0x0d, 0x75, 0xdc, 0xf1, 0x47, 0xda,
                                0xbb, 0x60, 0xaa, 0xbe, 0x94, 0xfe, 0xa6, 0xb2};

static void test_parse_forms(void **state)
{
	(void)state;
	static const char *ok[] = {
		"cd980d75-dcf1-47da-bb60-aabe94fea6b2",
		"cd980d75dcf147dabb60aabe94fea6b2",
		"CD980D75-DCF1-47DA-BB60-AABE94FEA6B2",
		"  cd980d75-dcf1-47da-bb60-aabe94fea6b2\n",
		"cd980d75-dcf1-47da-bb60-aabe94fea6b2\r\n",
		"\tCd980d75DCF147dabb60aabe94fea6b2 ",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint8_t u[16];
		assert_int_equal(d4_uuid_parse_str(ok[i], u), 0);
		assert_memory_equal(u, raw, 16);
	}
}

static void test_parse_refusals(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		"   ",
		"cd980d75-dcf1-47da-bb60-aabe94fea6b",    /* short */
		"cd980d75-dcf1-47da-bb60-aabe94fea6b2a",  /* long */
		"cd980d75dcf1-47da-bb60-aabe94fea6b2",    /* some dashes */
		"cd980d7-5dcf1-47da-bb60-aabe94fea6b2",   /* dash moved */
		"cd980d75-dcf1-47da-bb60-aabe94fea6g2",   /* not hex */
		"cd980d75+dcf1+47da+bb60+aabe94fea6b2",   /* not dashes */
		"{cd980d75-dcf1-47da-bb60-aabe94fea6b2}", /* braces */
		"cd980d75-dcf1-47da-bb60-aabe94fea6b2 x",
		"-cd980d75dcf147dabb60aabe94fea6b2---",
		"cd980d75dcf147dabb60aabe94fea6b ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t u[16];
		memset(u, 0xaa, sizeof(u));
		assert_int_equal(d4_uuid_parse_str(bad[i], u), -1);
		for (int j = 0; j < 16; j++)
			assert_int_equal(u[j], 0xaa); /* untouched on failure */
	}
	/* a length that stops inside the text is honoured (no NUL needed) */
	uint8_t u[16];
	const char *s = "cd980d75dcf147dabb60aabe94fea6b2ffff";
	assert_int_equal(d4_uuid_parse(s, 32, u), 0);
	assert_memory_equal(u, raw, 16);
	assert_int_equal(d4_uuid_parse(s, 31, u), -1);
}

static void test_format(void **state)
{
	(void)state;
	char s[D4_UUID_STR_LEN + 1], h[D4_UUID_HEX_LEN + 1];
	d4_uuid_format(raw, s);
	assert_string_equal(s, "cd980d75-dcf1-47da-bb60-aabe94fea6b2");
	d4_uuid_format_hex(raw, h);
	assert_string_equal(h, "cd980d75dcf147dabb60aabe94fea6b2");
	uint8_t back[16];
	assert_int_equal(d4_uuid_parse_str(s, back), 0);
	assert_memory_equal(back, raw, 16);
}

static void test_v4(void **state)
{
	(void)state;
	uint8_t u[16];
	memcpy(u, raw, 16);
	assert_true(d4_uuid_is_v4(u));
	for (unsigned v = 0; v < 16; v++) {
		u[6] = (uint8_t)(v << 4 | 7);
		assert_int_equal(d4_uuid_is_v4(u), v == 4);
	}
	u[6] = 0x47;
	for (unsigned var = 0; var < 4; var++) {
		u[8] = (uint8_t)(var << 6 | 0x3b);
		assert_int_equal(d4_uuid_is_v4(u), var == 2);
	}
	memset(u, 0, 16);
	assert_false(d4_uuid_is_v4(u));
}

static void test_generate(void **state)
{
	(void)state;
	uint8_t a[16], b[16];
	assert_int_equal(d4_uuid_generate_v4(a), 0);
	assert_int_equal(d4_uuid_generate_v4(b), 0);
	assert_true(d4_uuid_is_v4(a));
	assert_true(d4_uuid_is_v4(b));
	assert_memory_not_equal(a, b, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_forms),  cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_format),       cmocka_unit_test(test_v4),
		cmocka_unit_test(test_generate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
