/*
 * d4_uuid.h — sensor UUIDs: parse, format, v4 check, generation.
 *
 * On the wire a UUID is 16 raw RFC 4122 bytes. As text we accept 32 hex
 * digits with or without the four dashes (8-4-4-4-12), in either case, and
 * write the dashed lowercase form (as d4-core and uuidgen do).
 */
#ifndef D4_UUID_H
#define D4_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define D4_UUID_STR_LEN 36 /* dashed, without the NUL */
#define D4_UUID_HEX_LEN 32 /* undashed, without the NUL */

/*
 * Parses `len` bytes of text (surrounding spaces and a trailing newline are
 * tolerated, as in a file written by `uuidgen > uuid`). 0 on success, -1 if the
 * text is not a UUID. Does not check the version: see d4_uuid_is_v4().
 */
int d4_uuid_parse(const char *s, size_t len, uint8_t out[16]);
/* Same, for a NUL-terminated string. */
int d4_uuid_parse_str(const char *s, uint8_t out[16]);
/* Dashed lowercase form; out must hold D4_UUID_STR_LEN + 1 bytes. */
void d4_uuid_format(const uint8_t u[16], char out[D4_UUID_STR_LEN + 1]);
/* Undashed lowercase form; out must hold D4_UUID_HEX_LEN + 1 bytes. */
void d4_uuid_format_hex(const uint8_t u[16], char out[D4_UUID_HEX_LEN + 1]);
/* RFC 4122 version 4: version nibble 4 and variant bits 10. */
bool d4_uuid_is_v4(const uint8_t u[16]);
/* A random v4 UUID from the system CSPRNG. 0 or -1. */
int d4_uuid_generate_v4(uint8_t out[16]);

#endif
