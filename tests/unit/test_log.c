/*
 * test_log.c — the logger's line format, byte for byte: time stamp, ident[pid],
 * level, event, fields; quoting and escaping of hostile values (a newline in a
 * value must not start a second line), the 1024-byte value cap, the line cap,
 * level filtering, and level names.
 *
 * stderr is captured by pointing file descriptor 2 at a temporary file around
 * each call.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "d4_log.h"

#define IDENT "d4-test"

static char captured[64 << 10];
static FILE *capture_file;
static int saved_stderr = -1;

static void capture_begin(void)
{
	assert_int_equal(fflush(stderr), 0);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Restores stderr; returns what was written, NUL-terminated. */
static const char *capture_end(void)
{
	size_t n;

	assert_int_equal(fflush(stderr), 0);
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	assert_int_equal(close(saved_stderr), 0);
	rewind(capture_file);
	n = fread(captured, 1, sizeof(captured) - 1, capture_file);
	assert_int_equal(ferror(capture_file), 0);
	captured[n] = '\0';
	assert_int_equal(fclose(capture_file), 0);
	return captured;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

/* Returns the line with the "<time> ident[pid] " prefix checked and removed. */
static const char *after_prefix(const char *line)
{
	char prefix[64];
	regex_t re;
	size_t n;

	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ",
	                         REG_EXTENDED | REG_NOSUB),
	                 0);
	assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
	regfree(&re);
	n = (size_t)snprintf(prefix, sizeof(prefix), IDENT "[%ld] ", (long)getpid());
	assert_memory_equal(line + 21, prefix, n);
	return line + 21 + n;
}

/* Logs one WARN event with one field and checks the text after the prefix. */
static void expect_field(const char *value, const char *expected)
{
	const char *line;

	capture_begin();
	d4_log(D4_LOG_WARN, "ev", "k", value, NULL);
	line = capture_end();
	assert_string_equal(after_prefix(line), expected);
}

static int setup(void **state)
{
	(void)state;
	d4_log_init(IDENT, D4_LOG_STDERR, D4_LOG_INFO);
	return 0;
}

static void test_format(void **state)
{
	char before[32], after[32], stamp[32];
	struct tm tm;
	time_t t;
	const char *line;

	(void)state;
	t = time(NULL);
	assert_non_null(gmtime_r(&t, &tm));
	assert_true(strftime(before, sizeof(before), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
	capture_begin();
	d4_log(D4_LOG_WARN, "refused", "uuid", "cd980d75dcf147dabb60aabe94fea6b2", "peer",
	       "[::1]:4242", "reason", "hmac_mismatch", NULL);
	line = capture_end();
	t = time(NULL);
	assert_non_null(gmtime_r(&t, &tm));
	assert_true(strftime(after, sizeof(after), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);

	memcpy(stamp, line, 20);
	stamp[20] = '\0';
	assert_true(strcmp(stamp, before) >= 0 && strcmp(stamp, after) <= 0);
	assert_string_equal(after_prefix(line), "warn refused uuid=cd980d75dcf147dabb60aabe94fea6b2 "
	                                        "peer=[::1]:4242 reason=hmac_mismatch\n");

	capture_begin();
	d4_log(D4_LOG_ERR, "bare", NULL);
	assert_string_equal(after_prefix(capture_end()), "err bare\n");
}

static void test_quoting(void **state)
{
	(void)state;
	expect_field("plain-value_1.2:3/4", "warn ev k=plain-value_1.2:3/4\n");
	expect_field("a b", "warn ev k=\"a b\"\n");
	expect_field("a=b", "warn ev k=\"a=b\"\n");
	expect_field("say \"hi\"", "warn ev k=\"say \\\"hi\\\"\"\n");
	expect_field("", "warn ev k=\"\"\n");
	expect_field(NULL, "warn ev k=-\n");
	expect_field("C:\\dir", "warn ev k=C:\\dir\n");
	expect_field("C:\\my dir", "warn ev k=\"C:\\\\my dir\"\n");
	expect_field("tab\there", "warn ev k=\"tab\\x09here\"\n");
	expect_field("cr\r", "warn ev k=\"cr\\x0d\"\n");
	expect_field("del\x7f", "warn ev k=\"del\\x7f\"\n");
	expect_field("esc\x1b[31m", "warn ev k=\"esc\\x1b[31m\"\n");
	expect_field("caf\xc3\xa9", "warn ev k=\"caf\\xc3\\xa9\"\n");
	expect_field("nel\xc2\x85", "warn ev k=\"nel\\xc2\\x85\"\n");
}

static void test_newline_injection(void **state)
{
	const char *line;

	(void)state;
	capture_begin();
	d4_log(D4_LOG_WARN, "refused", "reason",
	       "x\n2026-01-01T00:00:00Z d4-ingest[1] err forged uuid=0", "peer", "p", NULL);
	line = capture_end();
	assert_int_equal(count_char(line, '\n'), 1);
	assert_string_equal(after_prefix(line),
	                    "warn refused reason=\"x\\x0a2026-01-01T00:00:00Z d4-ingest[1] err "
	                    "forged uuid=0\" peer=p\n");
}

/* Event names and keys never need quotes: bad bytes become '_'. */
static void test_hostile_names(void **state)
{
	(void)state;
	capture_begin();
	d4_log(D4_LOG_WARN, "ev ent\n", "k=v", "1", "a\"b", "2", "", "3", NULL);
	assert_string_equal(after_prefix(capture_end()), "warn ev_ent_ k_v=1 a_b=2 -=3\n");
	capture_begin();
	d4_log(D4_LOG_WARN, NULL, NULL);
	assert_string_equal(after_prefix(capture_end()), "warn -\n");
}

static void test_value_cap(void **state)
{
	char value[2001], expected[1100];

	(void)state;
	memset(value, 'a', 2000);
	value[2000] = '\0';
	memcpy(expected, "warn ev k=", 10);
	memset(expected + 10, 'a', 1024);
	memcpy(expected + 1034, "...\n", 5);
	expect_field(value, expected);

	/* exactly 1024 bytes is not cut */
	value[1024] = '\0';
	expected[1034] = '\n';
	expected[1035] = '\0';
	expect_field(value, expected);

	/* a quoted value keeps "..." inside its quotes */
	memset(value, ' ', 1025);
	value[1025] = '\0';
	memcpy(expected, "warn ev k=\"", 11);
	memset(expected + 11, ' ', 1024);
	memcpy(expected + 1035, "...\"\n", 6);
	expect_field(value, expected);
}

/* A line is at most 8 KiB: fields that do not fit are dropped whole and " ..." marks it. */
static void test_line_cap(void **state)
{
	char value[901];
	const char *line, *rest;
	size_t len;

	(void)state;
	memset(value, 1, 900);
	value[900] = '\0';
	capture_begin();
	d4_log(D4_LOG_WARN, "ev", "a", value, "b", value, "c", value, "d", "short", NULL);
	line = capture_end();
	len = strlen(line);
	assert_true(len <= 8192);
	assert_int_equal(count_char(line, '\n'), 1);
	rest = after_prefix(line);
	assert_memory_equal(rest, "warn ev a=\"\\x01", 15);
	assert_string_equal(line + len - 5, " ...\n");
	/* a and b fit (3605 bytes each), c does not, and d is dropped after it */
	assert_non_null(strstr(line, " b=\""));
	assert_null(strstr(line, " c="));
	assert_null(strstr(line, " d="));
	assert_int_equal(count_char(line, '"'), 4);
}

static void test_levels(void **state)
{
	(void)state;
	d4_log_set_level(D4_LOG_WARN);
	assert_true(d4_log_enabled(D4_LOG_ERR));
	assert_true(d4_log_enabled(D4_LOG_WARN));
	assert_false(d4_log_enabled(D4_LOG_NOTICE));
	assert_false(d4_log_enabled(D4_LOG_DEBUG));
	capture_begin();
	d4_log(D4_LOG_INFO, "hidden", NULL);
	d4_log(D4_LOG_NOTICE, "hidden", NULL);
	d4_logf(D4_LOG_DEBUG, "hidden", "%d", 1);
	assert_string_equal(capture_end(), "");

	d4_log_set_level(D4_LOG_DEBUG);
	capture_begin();
	d4_log(D4_LOG_DEBUG, "shown", NULL);
	assert_string_equal(after_prefix(capture_end()), "debug shown\n");

	d4_log_set_level(D4_LOG_ERR);
	capture_begin();
	d4_log(D4_LOG_WARN, "hidden", NULL);
	d4_log(D4_LOG_ERR, "shown", NULL);
	assert_string_equal(after_prefix(capture_end()), "err shown\n");
	d4_log_set_level(D4_LOG_INFO);

	/* the level given to init is the initial filter */
	d4_log_init(IDENT, D4_LOG_STDERR, D4_LOG_NOTICE);
	capture_begin();
	d4_log(D4_LOG_INFO, "hidden", NULL);
	d4_log(D4_LOG_NOTICE, "shown", NULL);
	assert_string_equal(after_prefix(capture_end()), "notice shown\n");
	d4_log_init(IDENT, D4_LOG_STDERR, D4_LOG_INFO);
}

static void test_logf(void **state)
{
	char big[1500], expected[1100];

	(void)state;
	capture_begin();
	d4_logf(D4_LOG_NOTICE, "started", "listening on %s:%d", "0.0.0.0", 4443);
	assert_string_equal(after_prefix(capture_end()),
	                    "notice started msg=\"listening on 0.0.0.0:4443\"\n");
	capture_begin();
	d4_logf(D4_LOG_INFO, "ready", "%s", "ok");
	assert_string_equal(after_prefix(capture_end()), "info ready msg=ok\n");
	capture_begin();
	d4_logf(D4_LOG_INFO, "inject", "a\nb%s", "\n");
	assert_string_equal(after_prefix(capture_end()), "info inject msg=\"a\\x0ab\\x0a\"\n");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(expected, "info long msg=", 14);
	memset(expected + 14, 'x', 1024);
	memcpy(expected + 14 + 1024, "...\n", 5);
	capture_begin();
	d4_logf(D4_LOG_INFO, "long", "%s", big);
	assert_string_equal(after_prefix(capture_end()), expected);
}

static void test_level_names(void **state)
{
	static const char *const names[] = {"err", "warn", "notice", "info", "debug"};
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		assert_string_equal(d4_log_level_name((enum d4_log_level)i), names[i]);
		assert_int_equal(d4_log_level_from_name(names[i]), i);
	}
	assert_int_equal(d4_log_level_from_name("WARN"), D4_LOG_WARN);
	assert_int_equal(d4_log_level_from_name("Debug"), D4_LOG_DEBUG);
	assert_int_equal(d4_log_level_from_name("warning"), -1);
	assert_int_equal(d4_log_level_from_name(""), -1);
	assert_int_equal(d4_log_level_from_name(NULL), -1);
	assert_string_equal(d4_log_level_name((enum d4_log_level)99), "unknown");
}

/* The ident is printed bare: a hostile one cannot break the prefix. */
static void test_ident(void **state)
{
	const char *line;
	char want[64];

	(void)state;
	d4_log_init("bad ident[x]\n", D4_LOG_STDERR, D4_LOG_INFO);
	capture_begin();
	d4_log(D4_LOG_INFO, "ev", NULL);
	line = capture_end();
	snprintf(want, sizeof(want), "bad_ident_x]_[%ld] info ev\n", (long)getpid());
	assert_string_equal(line + 21, want);
	d4_log_init(NULL, D4_LOG_STDERR, D4_LOG_INFO);
	capture_begin();
	d4_log(D4_LOG_INFO, "ev", NULL);
	line = capture_end();
	snprintf(want, sizeof(want), "d4[%ld] info ev\n", (long)getpid());
	assert_string_equal(line + 21, want);
	d4_log_init(IDENT, D4_LOG_STDERR, D4_LOG_INFO);
}

/* With the syslog target nothing goes to stderr (whether a syslog daemon listens or not). */
static void test_syslog_target(void **state)
{
	(void)state;
	capture_begin();
	d4_log_init(IDENT, D4_LOG_SYSLOG, D4_LOG_DEBUG);
	d4_log(D4_LOG_DEBUG, "test_log", "note", "unit test of the syslog target", NULL);
	d4_logf(D4_LOG_DEBUG, "test_log", "%s", "unit test");
	d4_log_init(IDENT, D4_LOG_STDERR, D4_LOG_INFO);
	assert_string_equal(capture_end(), "");
	expect_field("back", "warn ev k=back\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_format, setup),
		cmocka_unit_test_setup(test_quoting, setup),
		cmocka_unit_test_setup(test_newline_injection, setup),
		cmocka_unit_test_setup(test_hostile_names, setup),
		cmocka_unit_test_setup(test_value_cap, setup),
		cmocka_unit_test_setup(test_line_cap, setup),
		cmocka_unit_test_setup(test_levels, setup),
		cmocka_unit_test_setup(test_logf, setup),
		cmocka_unit_test_setup(test_level_names, setup),
		cmocka_unit_test_setup(test_ident, setup),
		cmocka_unit_test_setup(test_syslog_target, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
