/*
 * d4_auth.c — Argon2id password hashes, random secrets, constant-time
 * comparison (see d4_auth.h for the formats and why).
 */
#include "d4_auth.h"

#include <errno.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define SALT_LEN 16
#define HASH_LEN 32

void d4_argon2_cost_default(struct d4_argon2_cost *c)
{
	c->t_cost = D4_ARGON2_T_DEFAULT;
	c->m_cost_kib = D4_ARGON2_M_DEFAULT;
	c->parallelism = D4_ARGON2_P_DEFAULT;
}

int d4_password_hash(const char *pw, size_t len, const struct d4_argon2_cost *cost, char *out,
                     size_t cap)
{
	uint8_t salt[SALT_LEN];
	int rc;

	if (len == 0 || len > D4_PASSWORD_MAX || cost->t_cost < 1 || cost->parallelism < 1 ||
	    cost->m_cost_kib < D4_ARGON2_M_MIN * cost->parallelism)
		return -EINVAL;
	if (argon2_encodedlen(cost->t_cost, cost->m_cost_kib, cost->parallelism, SALT_LEN,
	                      HASH_LEN, Argon2_id) > cap)
		return -ENOSPC;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	rc = argon2id_hash_encoded(cost->t_cost, cost->m_cost_kib, cost->parallelism, pw, len, salt,
	                           sizeof(salt), HASH_LEN, out, cap);
	OPENSSL_cleanse(salt, sizeof(salt));
	switch (rc) {
	case ARGON2_OK:
		return 0;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
		return -ENOMEM;
	case ARGON2_ENCODING_FAIL:
		return -ENOSPC;
	default:
		return -EINVAL;
	}
}

int d4_password_verify(const char *encoded, const char *pw, size_t len)
{
	if (strncmp(encoded, "$argon2id$", 10) != 0)
		return -EINVAL;
	if (len > D4_PASSWORD_MAX)
		return -EACCES;
	switch (argon2id_verify(encoded, pw, len)) {
	case ARGON2_OK:
		return 0;
	case ARGON2_VERIFY_MISMATCH:
		return -EACCES;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
		return -ENOMEM;
	default:
		return -EINVAL;
	}
}

int d4_password_generate(char out[D4_RANDOM_PASSWORD_LEN + 1])
{
	/* 56 characters a person reads back without confusing them */
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const unsigned n = sizeof(alphabet) - 1;
	const unsigned limit = 256 - 256 % n; /* rejection sampling: no modulo bias */
	size_t got = 0;
	uint8_t buf[64];

	while (got < D4_RANDOM_PASSWORD_LEN) {
		if (RAND_bytes(buf, sizeof(buf)) != 1)
			return -EIO;
		for (size_t i = 0; i < sizeof(buf) && got < D4_RANDOM_PASSWORD_LEN; i++)
			if (buf[i] < limit)
				out[got++] = alphabet[buf[i] % n];
	}
	out[got] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

void d4_base64url(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
	}
	out[o] = '\0';
}

bool d4_is_base64url(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

int d4_random_id(char out[D4_RANDOM_ID_LEN + 1])
{
	uint8_t raw[D4_RANDOM_BYTES];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	d4_base64url(raw, sizeof(raw), out);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

int d4_token_generate(char out[D4_TOKEN_LEN + 1])
{
	memcpy(out, D4_TOKEN_PREFIX, 3);
	return d4_random_id(out + 3);
}

bool d4_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool d4_ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}
