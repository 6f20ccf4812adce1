/*
 * test_config.c — the configuration reader: every syntax form and every
 * refusal (each asserted with its exact "origin:line: reason" message), --set
 * overrides, each typed getter's value, default and failure, iteration order,
 * unknown-key checks, the size limits, and loading from a file.
 *
 * Texts are parsed from exactly-sized heap copies without a terminating NUL,
 * so that AddressSanitizer catches a read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "d4_config.h"

#define ORIGIN "t.conf"

/* Parses text[0..len) from a copy that holds exactly len bytes. */
static int parse_exact(struct d4_config *c, const char *text, size_t len,
                       struct d4_config_err *err)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, text, len);
	rc = d4_config_parse(c, ORIGIN, copy, len, err);
	free(copy);
	return rc;
}

static int parse_str(struct d4_config *c, const char *text, struct d4_config_err *err)
{
	return parse_exact(c, text, strlen(text), err);
}

static struct d4_config *parse_ok(const char *text)
{
	struct d4_config *c = d4_config_new();
	struct d4_config_err err = {{0}};

	assert_non_null(c);
	if (parse_exact(c, text, strlen(text), &err) != 0)
		fail_msg("unexpected parse error: %s", err.msg);
	return c;
}

static void parse_fails_len(const char *text, size_t len, const char *msg)
{
	struct d4_config *c = d4_config_new();
	struct d4_config_err err = {{0}};

	assert_non_null(c);
	assert_int_equal(parse_exact(c, text, len, &err), -1);
	assert_string_equal(err.msg, msg);
	d4_config_free(c);
}

static void parse_fails(const char *text, const char *msg)
{
	parse_fails_len(text, strlen(text), msg);
}

/* ---- syntax ---- */

static void test_empty(void **state)
{
	struct d4_config *c = parse_ok("");
	struct d4_config_err err;

	(void)state;
	assert_null(d4_config_get(c, "", "a"));
	assert_int_equal(d4_config_parse(c, ORIGIN, NULL, 0, &err), 0);
	assert_int_equal(d4_config_parse(c, ORIGIN, "\n\n  \n\t\n", 6, &err), 0);
	assert_int_equal(d4_config_check_known(c, NULL, NULL, &err), 0);
	d4_config_free(c);
	d4_config_free(NULL);
}

static void test_forms(void **state)
{
	struct d4_config *c = parse_ok("top = 1\n"
	                               "[ingest]\n"
	                               "listen = 0.0.0.0:4443\n"
	                               "  indented\t=\t  spaced   value  \n"
	                               "empty =\n"
	                               "tight=x=y\n"
	                               "  [ queue.archive ]  \n"
	                               "command = gzip -c\n"
	                               "[A-b_9.c-d]\n"
	                               "Key_2-x = v\n"
	                               "last = no newline at the end");

	(void)state;
	assert_string_equal(d4_config_get(c, "", "top"), "1");
	assert_string_equal(d4_config_get(c, NULL, "top"), "1");
	assert_null(d4_config_get(c, "ingest", "top"));
	assert_string_equal(d4_config_get(c, "ingest", "listen"), "0.0.0.0:4443");
	assert_string_equal(d4_config_get(c, "ingest", "indented"), "spaced   value");
	assert_string_equal(d4_config_get(c, "ingest", "empty"), "");
	assert_string_equal(d4_config_get(c, "ingest", "tight"), "x=y");
	assert_string_equal(d4_config_get(c, "queue.archive", "command"), "gzip -c");
	assert_string_equal(d4_config_get(c, "A-b_9.c-d", "Key_2-x"), "v");
	assert_string_equal(d4_config_get(c, "A-b_9.c-d", "last"), "no newline at the end");
	assert_null(d4_config_get(c, "queue", "archive.command"));
	assert_null(d4_config_get(c, "ingest", NULL));
	assert_string_equal(d4_config_get_str(c, "ingest", "listen", "d"), "0.0.0.0:4443");
	assert_string_equal(d4_config_get_str(c, "ingest", "nope", "d"), "d");
	assert_null(d4_config_get_str(c, "ingest", "nope", NULL));
	assert_string_equal(d4_config_origin(c, "", "top"), ORIGIN ":1");
	assert_string_equal(d4_config_origin(c, "queue.archive", "command"), ORIGIN ":8");
	assert_null(d4_config_origin(c, "queue.archive", "nope"));
	d4_config_free(c);
}

static void test_comments(void **state)
{
	struct d4_config *c = parse_ok("# a comment = not a key\n"
	                               "; another\n"
	                               "   # indented comment\n"
	                               "[s] # after a section\n"
	                               "[t];tight after a section\n"
	                               "a = x # comment\n"
	                               "b = x;y\n"
	                               "c = x ;comment\n"
	                               "d=#fff\n"
	                               "e = #only a comment\n"
	                               "f = x\t# after a tab\n"
	                               "g = a#b c;d\n");

	(void)state;
	assert_string_equal(d4_config_get(c, "t", "a"), "x");
	assert_string_equal(d4_config_get(c, "t", "b"), "x;y");
	assert_string_equal(d4_config_get(c, "t", "c"), "x");
	assert_string_equal(d4_config_get(c, "t", "d"), "#fff");
	assert_string_equal(d4_config_get(c, "t", "e"), "");
	assert_string_equal(d4_config_get(c, "t", "f"), "x");
	assert_string_equal(d4_config_get(c, "t", "g"), "a#b c;d");
	assert_null(d4_config_get(c, "", "#"));
	d4_config_free(c);
}

static void test_quoting(void **state)
{
	struct d4_config *c = parse_ok("[q]\n"
	                               "a = \"  a # b ; c  \"\n"
	                               "b = \"x\\\"y\\\\z\\n\\t.\"\n"
	                               "c = \"\"\n"
	                               "d = \"x\"   # comment after the quote\n"
	                               "e = a \"b\"\n"
	                               "f=\"x\";c\n"
	                               "g = \"=[]\"\n");

	(void)state;
	assert_string_equal(d4_config_get(c, "q", "a"), "  a # b ; c  ");
	assert_string_equal(d4_config_get(c, "q", "b"), "x\"y\\z\n\t.");
	assert_string_equal(d4_config_get(c, "q", "c"), "");
	assert_string_equal(d4_config_get(c, "q", "d"), "x");
	assert_string_equal(d4_config_get(c, "q", "e"), "a \"b\"");
	assert_string_equal(d4_config_get(c, "q", "f"), "x");
	assert_string_equal(d4_config_get(c, "q", "g"), "=[]");
	d4_config_free(c);
}

static void test_quote_errors(void **state)
{
	(void)state;
	parse_fails("[q]\na = \"abc\n", ORIGIN ":2: unterminated quote");
	parse_fails("a = \"abc\\\"\n", ORIGIN ":1: unterminated quote");
	parse_fails("a = \"abc\\", ORIGIN ":1: unterminated quote");
	parse_fails("a = \"", ORIGIN ":1: unterminated quote");
	parse_fails("a = \"x\\q\"\n", ORIGIN ":1: unknown escape '\\q'");
	parse_fails("a = \"x\\\x01\"\n", ORIGIN ":1: unknown escape '\\\\x01'");
	parse_fails("a = \"x\" y\n", ORIGIN ":1: unexpected text after closing quote");
	parse_fails("a = \"x\"\"y\"\n", ORIGIN ":1: unexpected text after closing quote");
}

static void test_section_errors(void **state)
{
	(void)state;
	parse_fails("a = 1\n[abc\n", ORIGIN ":2: missing ']'");
	parse_fails("[", ORIGIN ":1: missing ']'");
	parse_fails("[]\n", ORIGIN ":1: invalid section name ''");
	parse_fails("[  ]\n", ORIGIN ":1: invalid section name ''");
	parse_fails("[a..b]\n", ORIGIN ":1: invalid section name 'a..b'");
	parse_fails("[.a]\n", ORIGIN ":1: invalid section name '.a'");
	parse_fails("[a.]\n", ORIGIN ":1: invalid section name 'a.'");
	parse_fails("[a b]\n", ORIGIN ":1: invalid section name 'a b'");
	parse_fails("[a\x01]\n", ORIGIN ":1: invalid section name 'a?'");
	parse_fails("[a] x\n", ORIGIN ":1: unexpected text after ']'");
	parse_fails("[a]]\n", ORIGIN ":1: unexpected text after ']'");
}

static void test_line_errors(void **state)
{
	char name[200];

	(void)state;
	parse_fails("# c\n\njust words\n", ORIGIN ":3: expected 'key = value'");
	parse_fails("= x\n", ORIGIN ":1: expected 'key = value'");
	parse_fails("  \t= x\n", ORIGIN ":1: expected 'key = value'");
	parse_fails("a b = c\n", ORIGIN ":1: invalid key 'a b'");
	parse_fails("a.b = c\n", ORIGIN ":1: invalid key 'a.b'");
	parse_fails("\"a\" = c\n", ORIGIN ":1: invalid key '\"a\"'");
	/* A name of 129 bytes is refused, and the message quotes a bounded part of it. */
	memset(name, 'k', 129);
	memcpy(name + 129, "=1", 3);
	parse_fails(name, ORIGIN ":1: invalid key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'");
	name[128] = '=';
	d4_config_free(parse_ok(name));
}

static void test_nul_byte(void **state)
{
	static const char text[] = "a = 1\nb = x\0y\nc = 3\n";

	(void)state;
	parse_fails_len(text, sizeof(text) - 1, ORIGIN ":2: NUL byte");
	parse_fails_len("\0", 1, ORIGIN ":1: NUL byte");
}

/* The buffer is not NUL-terminated: the parser must stop at len. */
static void test_exact_length(void **state)
{
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;

	(void)state;
	assert_non_null(c);
	assert_int_equal(parse_exact(c, "a = 12345", 5, &err), 0);
	assert_string_equal(d4_config_get(c, "", "a"), "1");
	assert_int_equal(parse_exact(c, "[s]\nb = \"xy\"", 11, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: unterminated quote");
	assert_int_equal(parse_exact(c, "[sec]", 4, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":1: missing ']'");
	assert_int_equal(parse_exact(c, "k = v # c", 7, &err), 0);
	assert_string_equal(d4_config_get(c, "", "k"), "v");
	assert_int_equal(parse_exact(c, "k", 1, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":1: expected 'key = value'");
	d4_config_free(c);
}

static void test_crlf(void **state)
{
	struct d4_config *c = parse_ok("a = 1\r\n"
	                               "[s]\r\n"
	                               "b = \"q\"\r\n"
	                               "c = x # y\r\n"
	                               "\r\n"
	                               "d = last\r\n");

	(void)state;
	assert_string_equal(d4_config_get(c, "", "a"), "1");
	assert_string_equal(d4_config_get(c, "s", "b"), "q");
	assert_string_equal(d4_config_get(c, "s", "c"), "x");
	assert_string_equal(d4_config_get(c, "s", "d"), "last");
	assert_string_equal(d4_config_origin(c, "s", "d"), ORIGIN ":6");
	d4_config_free(c);
	parse_fails("a = 1\r\n[s\r\n", ORIGIN ":2: missing ']'");
}

static void test_bom(void **state)
{
	struct d4_config *c = parse_ok("\xef\xbb\xbf[s]\nk = v\n");

	(void)state;
	assert_string_equal(d4_config_get(c, "s", "k"), "v");
	d4_config_free(c);
}

static void test_key_before_section(void **state)
{
	struct d4_config *c = parse_ok("name = d4\nn = x\n[s]\nname = other\n");
	struct d4_config_err err;
	int64_t v;

	(void)state;
	assert_string_equal(d4_config_get(c, "", "name"), "d4");
	assert_string_equal(d4_config_get(c, "s", "name"), "other");
	assert_int_equal(d4_config_get_int(c, "", "n", 0, 10, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: n: 'x' is not an integer");
	d4_config_free(c);
}

static void test_last_wins(void **state)
{
	struct d4_config *c = parse_ok("a = 1\n"
	                               "[s]\n"
	                               "x = first\n"
	                               "y = y\n"
	                               "[t]\n"
	                               "x = other\n"
	                               "[s]\n"
	                               "x = second\n"
	                               "z = z\n");
	struct d4_config_err err;

	(void)state;
	assert_string_equal(d4_config_get(c, "s", "x"), "second");
	assert_string_equal(d4_config_origin(c, "s", "x"), ORIGIN ":8");
	assert_string_equal(d4_config_get(c, "t", "x"), "other");
	/* A second text overrides the first, in the same configuration. */
	assert_int_equal(d4_config_parse(c, "u.conf", "[s]\ny = new\nw = w", 17, &err), 0);
	assert_string_equal(d4_config_get(c, "s", "y"), "new");
	assert_string_equal(d4_config_origin(c, "s", "y"), "u.conf:2");
	assert_string_equal(d4_config_get(c, "s", "x"), "second");
	assert_string_equal(d4_config_get(c, "", "a"), "1");
	d4_config_free(c);
}

/* A text with an error changes nothing. */
static void test_error_is_atomic(void **state)
{
	struct d4_config *c = parse_ok("[s]\na = 1\n");
	struct d4_config_err err;

	(void)state;
	assert_int_equal(parse_str(c, "[s]\na = 2\nb = 3\n[new]\nbad line\n", &err), -1);
	assert_string_equal(err.msg, ORIGIN ":5: expected 'key = value'");
	assert_string_equal(d4_config_get(c, "s", "a"), "1");
	assert_null(d4_config_get(c, "s", "b"));
	assert_null(d4_config_get(c, "new", "x"));
	d4_config_free(c);
}

static void test_limits(void **state)
{
	size_t big = (16u << 20) + 1, line = 70000;
	char *text = malloc(big);
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;

	(void)state;
	assert_non_null(text);
	assert_non_null(c);
	/* a line of exactly 64 KiB is accepted, one byte more is not */
	memcpy(text, "k = ", 4);
	memset(text + 4, 'v', 65536 - 4);
	assert_int_equal(d4_config_parse(c, ORIGIN, text, 65536, &err), 0);
	assert_int_equal(strlen(d4_config_get(c, "", "k")), 65532);
	memcpy(text, "a = 1\nk = ", 10);
	memset(text + 10, 'v', line);
	assert_int_equal(d4_config_parse(c, ORIGIN, text, 10 + line, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: line longer than 65536 bytes");
	/* more than 16 MiB is refused before it is read */
	memset(text, '\n', big);
	assert_int_equal(d4_config_parse(c, ORIGIN, text, big, &err), -1);
	assert_string_equal(err.msg, ORIGIN ": larger than 16 MiB");
	assert_int_equal(d4_config_parse(c, ORIGIN, text, big - 1, &err), 0);
	free(text);
	d4_config_free(c);
}

static void test_too_many(void **state)
{
	size_t i, len = 0, cap = 10001 * 16;
	char *text = malloc(cap);
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;

	(void)state;
	assert_non_null(text);
	assert_non_null(c);
	for (i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len, "k%zu = 1\n", i);
	/* redefining a key at the limit is fine, a new one is not */
	len += (size_t)snprintf(text + len, cap - len, "k0 = 2\n");
	assert_int_equal(d4_config_parse(c, ORIGIN, text, len, &err), 0);
	len += (size_t)snprintf(text + len, cap - len, "k10000 = 1\n");
	assert_int_equal(d4_config_parse(c, ORIGIN, text, len, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":10002: more than 10000 keys");

	/* the same for sections, where reopening one at the limit is fine */
	len = 0;
	for (i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len, "[s%zu]\n", i);
	len += (size_t)snprintf(text + len, cap - len, "[s0]\n");
	assert_int_equal(d4_config_parse(c, ORIGIN, text, len, &err), 0);
	len += (size_t)snprintf(text + len, cap - len, "[s10000]\n");
	assert_int_equal(d4_config_parse(c, ORIGIN, text, len, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":10002: more than 10000 sections");
	free(text);
	d4_config_free(c);
}

/* ---- --set ---- */

static void test_set(void **state)
{
	struct d4_config *c = parse_ok("[ingest]\nport = 4443\n");
	struct d4_config_err err;
	int64_t port;

	(void)state;
	assert_int_equal(d4_config_set(c, "ingest.port=5000", &err), 0);
	assert_string_equal(d4_config_get(c, "ingest", "port"), "5000");
	assert_string_equal(d4_config_origin(c, "ingest", "port"), "--set");
	assert_int_equal(d4_config_get_int(c, "ingest", "port", 1, 65535, 0, &port, &err), 0);
	assert_int_equal(port, 5000);
	assert_int_equal(d4_config_set(c, "queue.archive.command = gzip -c # literal ", &err), 0);
	assert_string_equal(d4_config_get(c, "queue.archive", "command"), "gzip -c # literal");
	assert_null(d4_config_get(c, "queue", "archive.command"));
	assert_int_equal(d4_config_set(c, "top=\"x\"", &err), 0);
	assert_string_equal(d4_config_get(c, "", "top"), "\"x\"");
	assert_int_equal(d4_config_set(c, "s.k=", &err), 0);
	assert_string_equal(d4_config_get(c, "s", "k"), "");
	assert_int_equal(d4_config_set(c, "s.k=a=b", &err), 0);
	assert_string_equal(d4_config_get(c, "s", "k"), "a=b");
	/* a later file overrides a --set, as the caller orders them */
	assert_int_equal(parse_str(c, "[s]\nk = f", &err), 0);
	assert_string_equal(d4_config_origin(c, "s", "k"), ORIGIN ":2");
	d4_config_free(c);
}

static void test_set_bad(void **state)
{
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	int64_t v;

	(void)state;
	assert_non_null(c);
	assert_int_equal(d4_config_set(c, NULL, &err), -1);
	assert_string_equal(err.msg, "--set: expected 'section.key=value'");
	assert_int_equal(d4_config_set(c, "ingest.port", &err), -1);
	assert_string_equal(err.msg, "--set: expected 'section.key=value', got 'ingest.port'");
	assert_int_equal(d4_config_set(c, "=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid key in '=x'");
	assert_int_equal(d4_config_set(c, "s.=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid key in 's.=x'");
	assert_int_equal(d4_config_set(c, ".k=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid section name ''");
	assert_int_equal(d4_config_set(c, "a..b.k=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid section name 'a..b'");
	assert_int_equal(d4_config_set(c, "s.k k=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid key in 's.k k=x'");
	assert_int_equal(d4_config_set(c, "s.k\n=x", &err), -1);
	assert_string_equal(err.msg, "--set: invalid key in 's.k?=x'");
	assert_null(d4_config_get(c, "s", "k"));
	/* a bad value given with --set is reported as coming from --set */
	assert_int_equal(d4_config_set(c, "ingest.port=many", &err), 0);
	assert_int_equal(d4_config_get_int(c, "ingest", "port", 1, 65535, 0, &v, &err), -1);
	assert_string_equal(err.msg, "--set: ingest.port: 'many' is not an integer");
	d4_config_free(c);
}

/* ---- typed getters ---- */

static void test_get_int(void **state)
{
	struct d4_config *c = parse_ok("[s]\n"
	                               "a = 42\n"
	                               "b = -7\n"
	                               "c = +3\n"
	                               "d = 007\n"
	                               "max = 9223372036854775807\n"
	                               "min = -9223372036854775808\n"
	                               "over = 9223372036854775808\n"
	                               "under = -9223372036854775809\n"
	                               "huge = 99999999999999999999999\n"
	                               "abc = abc\n"
	                               "trail = 12x\n"
	                               "empty =\n"
	                               "space = \" 1\"\n"
	                               "hex = 0x10\n"
	                               "sign = -\n"
	                               "big = 100\n");
	struct d4_config_err err;
	int64_t v = 0;

	(void)state;
	assert_int_equal(d4_config_get_int(c, "s", "a", 0, 100, 5, &v, &err), 0);
	assert_int_equal(v, 42);
	assert_int_equal(d4_config_get_int(c, "s", "b", -10, 10, 5, &v, &err), 0);
	assert_int_equal(v, -7);
	assert_int_equal(d4_config_get_int(c, "s", "c", 0, 10, 5, &v, &err), 0);
	assert_int_equal(v, 3);
	assert_int_equal(d4_config_get_int(c, "s", "d", 0, 10, 5, &v, &err), 0);
	assert_int_equal(v, 7);
	assert_int_equal(d4_config_get_int(c, "s", "absent", 0, 10, 5, &v, &err), 0);
	assert_int_equal(v, 5);
	assert_int_equal(d4_config_get_int(c, "s", "max", INT64_MIN, INT64_MAX, 0, &v, &err), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(d4_config_get_int(c, "s", "min", INT64_MIN, INT64_MAX, 0, &v, &err), 0);
	assert_true(v == INT64_MIN);

	v = 99;
	assert_int_equal(d4_config_get_int(c, "s", "over", INT64_MIN, INT64_MAX, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":8: s.over: '9223372036854775808' is not in "
	                             "[-9223372036854775808, 9223372036854775807]");
	assert_int_equal(v, 99);
	assert_int_equal(d4_config_get_int(c, "s", "under", INT64_MIN, INT64_MAX, 0, &v, &err), -1);
	assert_int_equal(d4_config_get_int(c, "s", "huge", INT64_MIN, INT64_MAX, 0, &v, &err), -1);
	assert_int_equal(d4_config_get_int(c, "s", "abc", 0, 10, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":11: s.abc: 'abc' is not an integer");
	assert_int_equal(d4_config_get_int(c, "s", "trail", 0, 100, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":12: s.trail: '12x' is not an integer");
	assert_int_equal(d4_config_get_int(c, "s", "empty", 0, 100, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":13: s.empty: '' is not an integer");
	assert_int_equal(d4_config_get_int(c, "s", "space", 0, 100, 0, &v, &err), -1);
	assert_int_equal(d4_config_get_int(c, "s", "hex", 0, 100, 0, &v, &err), -1);
	assert_int_equal(d4_config_get_int(c, "s", "sign", 0, 100, 0, &v, &err), -1);
	assert_int_equal(d4_config_get_int(c, "s", "big", 0, 10, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":17: s.big: '100' is not in [0, 10]");
	assert_int_equal(d4_config_get_int(c, "s", "b", 0, 10, 0, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":3: s.b: '-7' is not in [0, 10]");
	/* a NULL err is allowed */
	assert_int_equal(d4_config_get_int(c, "s", "abc", 0, 10, 0, &v, NULL), -1);
	d4_config_free(c);
}

static void test_get_bool(void **state)
{
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "oN"};
	static const char *const no[] = {"false", "no", "off", "0", "FALSE", "No", "OFF"};
	static const char *const bad[] = {"maybe", "2", "", "y", "truee", "\"on \""};
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	char text[64];
	bool b;
	size_t i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", yes[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		b = false;
		assert_int_equal(d4_config_get_bool(c, "s", "k", false, &b, &err), 0);
		assert_true(b);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", no[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		b = true;
		assert_int_equal(d4_config_get_bool(c, "s", "k", true, &b, &err), 0);
		assert_false(b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", bad[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		assert_int_equal(d4_config_get_bool(c, "s", "k", true, &b, &err), -1);
	}
	assert_int_equal(parse_str(c, "[s]\n\nk = maybe", &err), 0);
	assert_int_equal(d4_config_get_bool(c, "s", "k", true, &b, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":3: s.k: 'maybe' is not a boolean "
	                             "(true/false, yes/no, on/off, 1/0)");
	assert_int_equal(d4_config_get_bool(c, "s", "absent", true, &b, &err), 0);
	assert_true(b);
	assert_int_equal(d4_config_get_bool(c, "s", "absent", false, &b, &err), 0);
	assert_false(b);
	d4_config_free(c);
}

struct size_case {
	const char *text;
	uint64_t value;
};

static void test_get_size(void **state)
{
	static const struct size_case good[] = {
		{"0", 0},
		{"512", 512},
		{"5b", 5},
		{"64k", 64u << 10},
		{"64K", 64u << 10},
		{"4KiB", 4u << 10},
		{"4kib", 4u << 10},
		{"10M", 10u << 20},
		{"10m", 10u << 20},
		{"3 MiB", 3u << 20},
		{"2G", 2ull << 30},
		{"2GiB", 2ull << 30},
		{"1T", 1ull << 40},
		{"1tib", 1ull << 40},
		{"16777215T", 16777215ull << 40},
		{"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad[] = {"abc", "10x", "1.5G", "k", "-1", "", "10 M B", "1e3",
	                                  "10KB", "0x10", "1 2"};
	static const char *const overflow[] = {"16777216T", "18446744073709551616",
	                                       "99999999999999999999999k", "17179869184G"};
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	char text[64];
	uint64_t v;
	size_t i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", good[i].text);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		if (d4_config_get_size(c, "s", "k", 0, UINT64_MAX, 7, &v, &err) != 0)
			fail_msg("%s: %s", good[i].text, err.msg);
		assert_true(v == good[i].value);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", bad[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		if (d4_config_get_size(c, "s", "k", 0, UINT64_MAX, 7, &v, &err) != -1)
			fail_msg("'%s' accepted as a size", bad[i]);
		assert_non_null(strstr(err.msg, "is not a size"));
	}
	for (i = 0; i < sizeof(overflow) / sizeof(overflow[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", overflow[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		if (d4_config_get_size(c, "s", "k", 0, UINT64_MAX, 7, &v, &err) != -1)
			fail_msg("'%s' accepted as a size", overflow[i]);
		assert_non_null(strstr(err.msg, "is not in [0, 18446744073709551615]"));
	}
	assert_int_equal(parse_str(c, "[ingest]\nmax_payload = abc", &err), 0);
	assert_int_equal(d4_config_get_size(c, "ingest", "max_payload", 0, 100, 7, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: ingest.max_payload: 'abc' is not a size "
	                             "(e.g. 512, 64k, 10M, 2GiB)");
	assert_int_equal(parse_str(c, "[ingest]\nmax_payload = 2M", &err), 0);
	assert_int_equal(d4_config_get_size(c, "ingest", "max_payload", 1024, 1000000, 7, &v, &err),
	                 -1);
	assert_string_equal(err.msg, ORIGIN ":2: ingest.max_payload: '2M' is not in [1024, 1000000]");
	assert_int_equal(d4_config_get_size(c, "ingest", "absent", 0, 10, 7, &v, &err), 0);
	assert_true(v == 7);
	d4_config_free(c);
}

static void test_get_duration(void **state)
{
	static const struct size_case good[] = {
		{"250ms", 250},
		{"30s", 30000},
		{"5m", 300000},
		{"1h", 3600000},
		{"2d", 172800000},
		{"7", 7000},
		{"0", 0},
		{"10 S", 10000},
		{"1MS", 1},
		{"18446744073709551615ms", UINT64_MAX},
	};
	static const char *const bad[] = {"5x", "ms", "1.5s", "", "-1s", "1h30m", "5 min", "1w"};
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	char text[64];
	uint64_t v;
	size_t i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", good[i].text);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		if (d4_config_get_duration_ms(c, "s", "k", 0, UINT64_MAX, 7, &v, &err) != 0)
			fail_msg("%s: %s", good[i].text, err.msg);
		assert_true(v == good[i].value);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[s]\nk = %s\n", bad[i]);
		assert_int_equal(parse_exact(c, text, strlen(text), &err), 0);
		if (d4_config_get_duration_ms(c, "s", "k", 0, UINT64_MAX, 7, &v, &err) != -1)
			fail_msg("'%s' accepted as a duration", bad[i]);
	}
	assert_string_equal(err.msg, ORIGIN ":2: s.k: '1w' is not a duration "
	                             "(e.g. 250ms, 30s, 5m, 1h, 2d)");
	assert_int_equal(parse_str(c, "[s]\nk = 18446744073709551615d", &err), 0);
	assert_int_equal(d4_config_get_duration_ms(c, "s", "k", 0, UINT64_MAX, 7, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: s.k: '18446744073709551615d' is not in "
	                             "[0, 18446744073709551615]");
	assert_int_equal(parse_str(c, "[s]\nk = 2h", &err), 0);
	assert_int_equal(d4_config_get_duration_ms(c, "s", "k", 1000, 3600000, 7, &v, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: s.k: '2h' is not in [1000, 3600000]");
	assert_int_equal(d4_config_get_duration_ms(c, "s", "absent", 0, 10, 7, &v, &err), 0);
	assert_true(v == 7);
	d4_config_free(c);
}

static void test_get_uint_list(void **state)
{
	struct d4_config *c = parse_ok("[s]\n"
	                               "commas = 1,2,3\n"
	                               "spaces = 1 2\t3\n"
	                               "mixed = 1, 2 ,3\n"
	                               "empty =\n"
	                               "many = 1 2 3 4 5\n"
	                               "word = 1,x\n"
	                               "hole = 1,,2\n"
	                               "trailing = 1,\n"
	                               "leading = ,1\n"
	                               "range = 1, 500\n"
	                               "over = 18446744073709551616\n"
	                               "glued = 1-2\n"
	                               "max = 18446744073709551615\n");
	static const uint64_t def[] = {8, 9};
	struct d4_config_err err;
	uint64_t out[4];
	size_t n;

	(void)state;
	assert_int_equal(d4_config_get_uint_list(c, "s", "commas", 0, 100, def, 2, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 3);
	assert_true(out[0] == 1 && out[1] == 2 && out[2] == 3);
	assert_int_equal(d4_config_get_uint_list(c, "s", "spaces", 0, 100, def, 2, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 3);
	assert_true(out[0] == 1 && out[1] == 2 && out[2] == 3);
	assert_int_equal(d4_config_get_uint_list(c, "s", "mixed", 0, 100, def, 2, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 3);
	assert_true(out[0] == 1 && out[1] == 2 && out[2] == 3);
	assert_int_equal(d4_config_get_uint_list(c, "s", "empty", 0, 100, def, 2, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 0);
	assert_int_equal(d4_config_get_uint_list(c, "s", "absent", 0, 100, def, 2, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 2);
	assert_true(out[0] == 8 && out[1] == 9);
	assert_int_equal(d4_config_get_uint_list(c, "s", "absent", 0, 100, NULL, 0, out, 4, &n, &err),
	                 0);
	assert_int_equal(n, 0);
	assert_int_equal(d4_config_get_uint_list(c, "s", "absent", 0, 100, def, 2, out, 1, &n, &err),
	                 -1);
	assert_string_equal(err.msg, "s.absent: default list longer than 1");
	assert_int_equal(
		d4_config_get_uint_list(c, "s", "max", 0, UINT64_MAX, NULL, 0, out, 4, &n, &err), 0);
	assert_true(n == 1 && out[0] == UINT64_MAX);

	assert_int_equal(d4_config_get_uint_list(c, "s", "many", 0, 100, def, 2, out, 4, &n, &err),
	                 -1);
	assert_string_equal(err.msg, ORIGIN ":6: s.many: '1 2 3 4 5' has more than 4 items");
	assert_int_equal(d4_config_get_uint_list(c, "s", "word", 0, 100, def, 2, out, 4, &n, &err),
	                 -1);
	assert_string_equal(err.msg, ORIGIN ":7: s.word: '1,x' is not a list of unsigned integers");
	assert_int_equal(d4_config_get_uint_list(c, "s", "hole", 0, 100, def, 2, out, 4, &n, &err),
	                 -1);
	assert_string_equal(err.msg, ORIGIN ":8: s.hole: '1,,2' has an empty item");
	assert_int_equal(
		d4_config_get_uint_list(c, "s", "trailing", 0, 100, def, 2, out, 4, &n, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":9: s.trailing: '1,' has an empty item");
	assert_int_equal(
		d4_config_get_uint_list(c, "s", "leading", 0, 100, def, 2, out, 4, &n, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":10: s.leading: ',1' has an empty item");
	assert_int_equal(d4_config_get_uint_list(c, "s", "range", 0, 100, def, 2, out, 4, &n, &err),
	                 -1);
	assert_string_equal(err.msg, ORIGIN ":11: s.range: '1, 500' has an item not in [0, 100]");
	assert_int_equal(
		d4_config_get_uint_list(c, "s", "over", 0, UINT64_MAX, def, 2, out, 4, &n, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":12: s.over: '18446744073709551616' has an item not "
	                             "in [0, 18446744073709551615]");
	assert_int_equal(d4_config_get_uint_list(c, "s", "glued", 0, 100, def, 2, out, 4, &n, &err),
	                 -1);
	assert_int_equal(n, 0);
	d4_config_free(c);
}

/* ---- iteration and unknown keys ---- */

struct collect {
	char text[256];
};

static void collect_section(const char *section, void *arg)
{
	struct collect *col = arg;
	size_t len = strlen(col->text);

	snprintf(col->text + len, sizeof(col->text) - len, "[%s]", section);
}

static void collect_key(const char *key, const char *value, void *arg)
{
	struct collect *col = arg;
	size_t len = strlen(col->text);

	snprintf(col->text + len, sizeof(col->text) - len, "%s=%s;", key, value);
}

static void test_iteration(void **state)
{
	struct d4_config *c = parse_ok("top = t\n"
	                               "[queue.b]\n"
	                               "command = cb\n"
	                               "[ingest]\n"
	                               "z = 1\n"
	                               "a = 2\n"
	                               "[queue.a]\n"
	                               "[queued]\n"
	                               "[ingest]\n"
	                               "m = 3\n"
	                               "z = 4\n");
	struct d4_config_err err;
	struct collect col = {""};

	(void)state;
	d4_config_each_section(c, "queue.", collect_section, &col);
	assert_string_equal(col.text, "[queue.b][queue.a]");
	col.text[0] = '\0';
	d4_config_each_section(c, NULL, collect_section, &col);
	assert_string_equal(col.text, "[][queue.b][ingest][queue.a][queued]");
	col.text[0] = '\0';
	d4_config_each_section(c, "nothing", collect_section, &col);
	assert_string_equal(col.text, "");
	d4_config_each_key(c, "ingest", collect_key, &col);
	assert_string_equal(col.text, "z=4;a=2;m=3;");
	col.text[0] = '\0';
	d4_config_each_key(c, "", collect_key, &col);
	assert_string_equal(col.text, "top=t;");
	col.text[0] = '\0';
	d4_config_each_key(c, "queue.a", collect_key, &col);
	assert_string_equal(col.text, "");
	/* a --set section comes after the file's */
	assert_int_equal(d4_config_set(c, "queue.c.command=cc", &err), 0);
	d4_config_each_section(c, "queue.", collect_section, &col);
	assert_string_equal(col.text, "[queue.b][queue.a][queue.c]");
	d4_config_free(c);
}

static void test_check_known(void **state)
{
	static const char *const known[] = {"top", "ingest.listen", "ingest.port",
	                                    "queue.*.command", "queue.*.*", "*.shared", NULL};
	static const char *const foreign[] = {"web", "analyzer.", NULL};
	struct d4_config *c = parse_ok("top = 1\n"
	                               "[ingest]\n"
	                               "listen = x\n"
	                               "port = 1\n"
	                               "shared = 1\n"
	                               "[queue.archive]\n"
	                               "command = c\n"
	                               "[queue.a]\n"
	                               "x = 1\n"
	                               "[web]\n"
	                               "anything = 1\n"
	                               "[webhook]\n"
	                               "prefix_only = 1\n"
	                               "[analyzer.x]\n"
	                               "y = 1\n");
	struct d4_config_err err;

	(void)state;
	assert_int_equal(d4_config_check_known(c, known, foreign, &err), 0);
	/* without the foreign list, [web] is unknown */
	assert_int_equal(d4_config_check_known(c, known, NULL, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":11: unknown key 'web.anything'");

	/* "*" matches one component, not two */
	assert_int_equal(parse_str(c, "[queue.a.b.c]\ncommand = x\n", &err), 0);
	assert_int_equal(d4_config_check_known(c, known, foreign, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: unknown key 'queue.a.b.c.command'");
	d4_config_free(c);

	c = parse_ok("[ingest]\nlisten = x\nlisen = y\n");
	assert_int_equal(d4_config_check_known(c, known, foreign, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":3: unknown key 'ingest.lisen'");
	d4_config_free(c);

	c = parse_ok("[queue]\ncommand = x\n");
	assert_int_equal(d4_config_check_known(c, known, foreign, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":2: unknown key 'queue.command'");
	d4_config_free(c);

	c = parse_ok("shared = x\n");
	assert_int_equal(d4_config_check_known(c, known, foreign, &err), -1);
	assert_string_equal(err.msg, ORIGIN ":1: unknown key 'shared'");
	assert_int_equal(d4_config_set(c, "x.y=1", &err), 0);
	assert_int_equal(d4_config_check_known(c, (const char *const[]){"shared", NULL}, NULL, &err),
	                 -1);
	assert_string_equal(err.msg, "--set: unknown key 'x.y'");
	d4_config_free(c);
}

/* ---- files ---- */

static void test_load(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX", path[64], missing[160];
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	FILE *f;

	(void)state;
	assert_non_null(c);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d4.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# d4\n[ingest]\nlisten = [::]:4443\nmax_payload = 1M\n[web]\nport = x\n", f);
	assert_int_equal(fclose(f), 0);

	assert_int_equal(d4_config_load(c, path, &err), 0);
	assert_string_equal(d4_config_get(c, "ingest", "listen"), "[::]:4443");
	snprintf(missing, sizeof(missing), "%s:3", path);
	assert_string_equal(d4_config_origin(c, "ingest", "listen"), missing);
	{
		int64_t v;
		char want[160];

		assert_int_equal(d4_config_get_int(c, "web", "port", 1, 65535, 80, &v, &err), -1);
		snprintf(want, sizeof(want), "%s:6: web.port: 'x' is not an integer", path);
		assert_string_equal(err.msg, want);
	}

	/* a syntax error names the file and the line */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[ingest]\nlisten\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(d4_config_load(c, path, &err), -1);
	snprintf(missing, sizeof(missing), "%s:2: expected 'key = value'", path);
	assert_string_equal(err.msg, missing);
	assert_string_equal(d4_config_get(c, "ingest", "listen"), "[::]:4443");

	/* a missing file, and a directory */
	snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
	assert_int_equal(d4_config_load(c, missing, &err), -1);
	assert_true(strncmp(err.msg, missing, strlen(missing)) == 0);
	assert_non_null(strstr(err.msg, ": No such file or directory"));
	assert_int_equal(d4_config_load(c, dir, &err), -1);
	assert_true(strncmp(err.msg, dir, strlen(dir)) == 0);
	assert_non_null(strstr(err.msg, ": Is a directory"));

	/* an empty file */
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(d4_config_load(c, path, &err), 0);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	d4_config_free(c);
}

/* A file larger than 16 MiB is refused while reading (a sparse file costs no disk). */
static void test_load_too_large(void **state)
{
	char path[] = "/tmp/test_config_big.XXXXXX";
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	char want[80];
	int fd;

	(void)state;
	assert_non_null(c);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (16 << 20) + 1), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(d4_config_load(c, path, &err), -1);
	snprintf(want, sizeof(want), "%s: larger than 16 MiB", path);
	assert_string_equal(err.msg, want);
	assert_int_equal(unlink(path), 0);
	d4_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_quote_errors),
		cmocka_unit_test(test_section_errors),
		cmocka_unit_test(test_line_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_exact_length),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_key_before_section),
		cmocka_unit_test(test_last_wins),
		cmocka_unit_test(test_error_is_atomic),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_set_bad),
		cmocka_unit_test(test_get_int),
		cmocka_unit_test(test_get_bool),
		cmocka_unit_test(test_get_size),
		cmocka_unit_test(test_get_duration),
		cmocka_unit_test(test_get_uint_list),
		cmocka_unit_test(test_iteration),
		cmocka_unit_test(test_check_known),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_too_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
