/*
 * d4_keyfile.h — reading an HMAC key from a file, the one way every program does it.
 *
 * A key file holds the key's raw bytes; trailing CR and LF are not part of
 * the key (an editor or `echo` adds them). This is what the reference
 * clients' `key` file holds and what d4-client, d4ctl and d4-ingest read.
 */
#ifndef D4_KEYFILE_H
#define D4_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Reads the key in `path` into out (at most cap bytes) and sets *len.
 * *group_readable (when not NULL) tells whether group or others may read the
 * file, for a warning. 0, or -1 with err holding "PATH: reason" (no such
 * file, empty, longer than cap bytes, a system error).
 */
int d4_key_file_read(const char *path, uint8_t *out, size_t cap, size_t *len, bool *group_readable,
                     char *err, size_t errlen);

#endif
