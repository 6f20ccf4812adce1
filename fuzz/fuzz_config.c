/*
 * fuzz_config.c — the configuration reader on arbitrary bytes.
 *
 * The input is parsed as a file (libFuzzer's buffer is exactly `size` bytes
 * and not NUL-terminated, so ASan sees any read past the end), and its first
 * line is also tried as a --set assignment. Then every key found through the
 * iterators goes through every typed getter, and the unknown-key check runs
 * with wildcard patterns. Invariants checked: a refusal always has a message,
 * a found key has a value and an origin.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "d4_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_walk {
	const struct d4_config *c;
	const char *section;
	size_t keys;
};

static void check_err(int rc, const struct d4_config_err *err)
{
	if (rc != 0 && (rc != -1 || err->msg[0] == '\0'))
		abort();
}

static void walk_key(const char *key, const char *value, void *arg)
{
	struct fuzz_walk *w = arg;
	const struct d4_config *c = w->c;
	struct d4_config_err err;
	uint64_t list[8], u;
	int64_t i;
	size_t n;
	bool b;

	w->keys++;
	if (!value || d4_config_get(c, w->section, key) != value ||
	    !d4_config_origin(c, w->section, key))
		abort();
	err.msg[0] = '\0';
	check_err(d4_config_get_int(c, w->section, key, INT64_MIN, INT64_MAX, 0, &i, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_int(c, w->section, key, -5, 5, 0, &i, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_bool(c, w->section, key, false, &b, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_size(c, w->section, key, 0, UINT64_MAX, 0, &u, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_size(c, w->section, key, 1024, 1u << 20, 0, &u, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_duration_ms(c, w->section, key, 0, UINT64_MAX, 0, &u, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_get_uint_list(c, w->section, key, 0, UINT64_MAX, NULL, 0, list, 8, &n,
	                                  &err),
	          &err);
	if (n > 8)
		abort();
	if (strcmp(d4_config_get_str(c, w->section, key, "x"), value) != 0)
		abort();
}

static void walk_section(const char *section, void *arg)
{
	struct fuzz_walk *w = arg;

	w->section = section;
	d4_config_each_key(w->c, section, walk_key, w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = {"ingest.listen", "queue.*.command", "*.*", "*", NULL};
	static const char *const foreign[] = {"web", "analyzer.", NULL};
	struct d4_config *c = d4_config_new();
	struct d4_config_err err;
	struct fuzz_walk w = {0};
	const uint8_t *nl;
	char *line;

	if (!c)
		return 0;
	err.msg[0] = '\0';
	check_err(d4_config_parse(c, "fuzz.conf", (const char *)data, size, &err), &err);

	/* The first line also as a --set assignment, whether the text parsed or not. */
	nl = memchr(data, '\n', size);
	line = strndup((const char *)data, nl ? (size_t)(nl - data) : size);
	if (!line)
		goto out;
	err.msg[0] = '\0';
	check_err(d4_config_set(c, line, &err), &err);
	free(line);

	w.c = c;
	d4_config_each_section(c, NULL, walk_section, &w);
	d4_config_each_section(c, "queue.", walk_section, &w);
	err.msg[0] = '\0';
	check_err(d4_config_check_known(c, known, foreign, &err), &err);
	err.msg[0] = '\0';
	check_err(d4_config_check_known(c, known + 1, NULL, &err), &err);
out:
	d4_config_free(c);
	return 0;
}
