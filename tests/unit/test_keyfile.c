/* test_keyfile.c — HMAC keys from files: line endings, limits, errors. */
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

#include "d4_keyfile.h"

static char dir[] = "/tmp/d4-keyfile-XXXXXX";

static const char *put(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_line_endings(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *key;
	} cases[] = {
		{"private key to change", "private key to change"},
		{"private key to change\n", "private key to change"},
		{"private key to change\r\n", "private key to change"},
		{"key\n\n\r\n", "key"},
		{"two\nlines\n", "two\nlines"}, /* only trailing line endings go */
		{" spaces kept ", " spaces kept "},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = put("k", cases[i].text, strlen(cases[i].text), 0600);
		uint8_t key[64];
		size_t n = 0;
		bool loose = true;
		char err[256];
		assert_int_equal(d4_key_file_read(p, key, sizeof(key), &n, &loose, err, sizeof(err)), 0);
		assert_int_equal(n, strlen(cases[i].key));
		assert_memory_equal(key, cases[i].key, n);
		assert_false(loose);
	}
}

static void test_errors(void **state)
{
	(void)state;
	uint8_t key[8];
	size_t n;
	bool loose;
	char err[256];
	char path[256];

	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(d4_key_file_read(path, key, sizeof(key), &n, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no such file"));
	assert_non_null(strstr(err, path));

	const char *p = put("empty", "\n", 1, 0600);
	assert_int_equal(d4_key_file_read(p, key, sizeof(key), &n, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));

	p = put("long", "123456789", 9, 0600);
	assert_int_equal(d4_key_file_read(p, key, sizeof(key), &n, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 8 bytes"));
	p = put("fits", "12345678\n", 9, 0644);
	assert_int_equal(d4_key_file_read(p, key, sizeof(key), &n, &loose, err, sizeof(err)), 0);
	assert_int_equal(n, 8);
	assert_true(loose); /* readable by others: the caller warns */

	assert_int_equal(d4_key_file_read(dir, key, sizeof(key), &n, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
