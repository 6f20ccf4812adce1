/*
 * d4_uuid.c — sensor UUIDs as text and as 16 raw bytes.
 *
 * Parsing is strict about the shape (32 hex digits, dashes only at the four
 * RFC 4122 positions or nowhere) and lenient about what surrounds it (spaces,
 * a trailing newline), because uuids come from files written by uuidgen and
 * from web forms.
 */
#include "d4_uuid.h"

#include <string.h>

#include <openssl/rand.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int d4_uuid_parse(const char *s, size_t len, uint8_t out[16])
{
	while (len > 0 && is_space(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_space(s[len - 1]))
		len--;

	bool dashed;
	if (len == D4_UUID_STR_LEN)
		dashed = true;
	else if (len == D4_UUID_HEX_LEN)
		dashed = false;
	else
		return -1;

	uint8_t tmp[16];
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return -1;
			i++;
			continue;
		}
		int hi = hexval(s[i]);
		int lo = i + 1 < len ? hexval(s[i + 1]) : -1;
		if (hi < 0 || lo < 0 || n >= sizeof(tmp))
			return -1;
		tmp[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	if (n != sizeof(tmp))
		return -1;
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

int d4_uuid_parse_str(const char *s, uint8_t out[16])
{
	return d4_uuid_parse(s, strlen(s), out);
}

static const char hexdigits[] = "0123456789abcdef";

void d4_uuid_format(const uint8_t u[16], char out[D4_UUID_STR_LEN + 1])
{
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hexdigits[u[i] >> 4];
		*p++ = hexdigits[u[i] & 0x0f];
	}
	*p = '\0';
}

void d4_uuid_format_hex(const uint8_t u[16], char out[D4_UUID_HEX_LEN + 1])
{
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hexdigits[u[i] >> 4];
		out[2 * i + 1] = hexdigits[u[i] & 0x0f];
	}
	out[D4_UUID_HEX_LEN] = '\0';
}

bool d4_uuid_is_v4(const uint8_t u[16])
{
	return (u[6] & 0xf0) == 0x40 && (u[8] & 0xc0) == 0x80;
}

int d4_uuid_generate_v4(uint8_t out[16])
{
	if (RAND_bytes(out, 16) != 1)
		return -1;
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
	return 0;
}
