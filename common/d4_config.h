/*
 * d4_config.h — the INI-style configuration reader shared by every program.
 *
 *   # comment            ; comment too
 *   [section]
 *   key = value          values run to the end of the line, trimmed;
 *   key = "a # b"        double quotes keep spaces and comment signs (\" \\ \n \t escapes)
 *   [queue.archive]      a dotted section names one instance of a kind
 *
 * Keys are looked up as "section.key" (keys before any section are in section
 * ""). A key given twice: the last one wins. Every error names the file and
 * the line ("etc/d4.conf:12: ..."); an override from the command line
 * (d4_config_set, "section.key=value") is named "--set".
 * Typed getters return 0 and the value, the default when the key is absent,
 * or -1 with an error message that names where the bad value was written.
 */
#ifndef D4_CONFIG_H
#define D4_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define D4_CONFIG_ERR_LEN 256

struct d4_config;

struct d4_config_err {
	char msg[D4_CONFIG_ERR_LEN];
};

/* An empty configuration (all defaults). NULL only on allocation failure. */
struct d4_config *d4_config_new(void);
void d4_config_free(struct d4_config *c);
/* Reads and parses a file into c (adding to / overriding what c holds). 0 or -1. */
int d4_config_load(struct d4_config *c, const char *path, struct d4_config_err *err);
/* Parses text; `origin` names it in errors (a file name). 0 or -1. */
int d4_config_parse(struct d4_config *c, const char *origin, const char *text, size_t len,
                    struct d4_config_err *err);
/* Applies "section.key=value" (from --set). 0 or -1. */
int d4_config_set(struct d4_config *c, const char *assignment, struct d4_config_err *err);

/* Raw value of "section.key", or NULL when absent. */
const char *d4_config_get(const struct d4_config *c, const char *section, const char *key);
const char *d4_config_get_str(const struct d4_config *c, const char *section, const char *key,
                              const char *def);
int d4_config_get_int(const struct d4_config *c, const char *section, const char *key,
                      int64_t min, int64_t max, int64_t def, int64_t *out,
                      struct d4_config_err *err);
/* true/false, yes/no, on/off, 1/0 (case-insensitive). */
int d4_config_get_bool(const struct d4_config *c, const char *section, const char *key, bool def,
                       bool *out, struct d4_config_err *err);
/* Bytes with an optional suffix: 512, 64k, 10M, 2G (powers of 1024; "KiB" forms too). */
int d4_config_get_size(const struct d4_config *c, const char *section, const char *key,
                       uint64_t min, uint64_t max, uint64_t def, uint64_t *out,
                       struct d4_config_err *err);
/* Duration in milliseconds: 250ms, 30s, 5m, 1h, 2d; a bare number means seconds. */
int d4_config_get_duration_ms(const struct d4_config *c, const char *section, const char *key,
                              uint64_t min_ms, uint64_t max_ms, uint64_t def_ms, uint64_t *out,
                              struct d4_config_err *err);
/* Comma- or space-separated list of unsigned integers within [min,max], at most `cap` of them;
 * *n receives the count. The default (def, ndef) is copied when the key is absent. */
int d4_config_get_uint_list(const struct d4_config *c, const char *section, const char *key,
                            uint64_t min, uint64_t max, const uint64_t *def, size_t ndef,
                            uint64_t *out, size_t cap, size_t *n, struct d4_config_err *err);

/* Where a key was set ("file:line" or "--set"), for messages; NULL when absent. */
const char *d4_config_origin(const struct d4_config *c, const char *section, const char *key);

/* Calls fn for every section whose name starts with `prefix` (e.g. "queue.") in file order. */
void d4_config_each_section(const struct d4_config *c, const char *prefix,
                            void (*fn)(const char *section, void *arg), void *arg);
/* Calls fn for every key of a section in file order. */
void d4_config_each_key(const struct d4_config *c, const char *section,
                        void (*fn)(const char *key, const char *value, void *arg), void *arg);

/*
 * Rejects keys a program does not know, so that a typo is an error and not a
 * silently ignored option. `known` is a NULL-terminated list of "section.key"
 * patterns; "queue.*.command" matches any one section-name component.
 * Sections whose name starts with a prefix listed in `foreign` (other
 * programs' sections) are skipped. 0 or -1 naming the first unknown key.
 */
int d4_config_check_known(const struct d4_config *c, const char *const *known,
                          const char *const *foreign, struct d4_config_err *err);

#endif
