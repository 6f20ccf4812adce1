/*
 * d4_auth.h — account secrets shared by d4-web and d4ctl: Argon2id password
 * hashes, random passwords, API tokens and session identifiers, and
 * constant-time comparison.
 *
 * Passwords are stored as Argon2id encoded strings ("$argon2id$v=19$m=...,
 * t=...,p=...$salt$hash"), so the cost parameters travel with each hash: a
 * hash made with a lower cost (tests, `web.argon2_memory`) still verifies
 * after the configuration is raised, and the next password change uses the
 * new cost. API tokens are "d4_" followed by 32 random bytes in base64url;
 * only their SHA-256 is stored (d4_token_hash in d4_store.h), the text is
 * shown once. Randomness comes from the system CSPRNG (OpenSSL RAND_bytes);
 * a failure of it is an error, never a weaker fallback.
 *
 * Programs that call the password functions link libargon2 (pkg-config
 * libargon2); the rest of libd4common does not need it.
 */
#ifndef D4_AUTH_H
#define D4_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Argon2id costs: passes, memory in KiB, lanes. */
struct d4_argon2_cost {
	uint32_t t_cost;
	uint32_t m_cost_kib;
	uint32_t parallelism;
};

#define D4_ARGON2_T_DEFAULT 3u
#define D4_ARGON2_M_DEFAULT (64u * 1024u) /* 64 MiB */
#define D4_ARGON2_P_DEFAULT 1u
#define D4_ARGON2_M_MIN 8u                /* libargon2's floor is 8 KiB per lane */

#define D4_PASSWORD_MIN 10   /* bytes, for a password a person chooses */
#define D4_PASSWORD_MAX 1024 /* longer input is refused before any hashing */
#define D4_RANDOM_PASSWORD_LEN 20 /* generated: 20 characters from 56, about 116 bits */

#define D4_TOKEN_PREFIX "d4_"
#define D4_RANDOM_BYTES 32
#define D4_B64URL_LEN(n) (((n) * 4 + 2) / 3) /* without padding, without NUL */
/* "d4_" + base64url of 32 bytes: 46 characters */
#define D4_TOKEN_LEN (3 + D4_B64URL_LEN(D4_RANDOM_BYTES))
/* A session id or CSRF token: base64url of 32 bytes, 43 characters. */
#define D4_RANDOM_ID_LEN D4_B64URL_LEN(D4_RANDOM_BYTES)

/* Fills c with the defaults above. */
void d4_argon2_cost_default(struct d4_argon2_cost *c);

/*
 * Hashes len bytes of password with Argon2id, a fresh 16-byte salt and a
 * 32-byte output, into an encoded string of at most cap bytes (with NUL).
 * 0, -EINVAL (empty or too long password, bad cost), -ENOSPC (cap too
 * small), -ENOMEM, -EIO (random generator failed).
 */
int d4_password_hash(const char *pw, size_t len, const struct d4_argon2_cost *cost, char *out,
                     size_t cap);
/*
 * 0 when pw matches the encoded hash, -EACCES when it does not, -EINVAL when
 * the hash is not an Argon2id encoded string, -ENOMEM. Argon2's own
 * comparison is constant-time.
 */
int d4_password_verify(const char *encoded, const char *pw, size_t len);

/* A random password of D4_RANDOM_PASSWORD_LEN characters (no 0/O/1/l/I). 0 or -EIO. */
int d4_password_generate(char out[D4_RANDOM_PASSWORD_LEN + 1]);
/* A new API token "d4_<43 base64url characters>". 0 or -EIO. */
int d4_token_generate(char out[D4_TOKEN_LEN + 1]);
/* 32 random bytes as 43 base64url characters (session ids, CSRF tokens). 0 or -EIO. */
int d4_random_id(char out[D4_RANDOM_ID_LEN + 1]);

/* base64url without padding of n bytes; out holds D4_B64URL_LEN(n) + 1. */
void d4_base64url(const uint8_t *in, size_t n, char *out);
/* Whether s (len bytes) is only base64url characters. */
bool d4_is_base64url(const char *s, size_t len);

/* Constant-time equality of two buffers of n bytes. */
bool d4_ct_equal(const void *a, const void *b, size_t n);
/* Constant-time equality of two strings (the lengths are not secret). */
bool d4_ct_streq(const char *a, const char *b);

#endif
