/*
 * tls_x509.c — one DER certificate parsed with OpenSSL 3 into struct tls_cert_info.
 *
 * OpenSSL does the ASN.1; this file decides what we keep and how it is rendered, so that the
 * store and the API show one stable form: lowercase hex for hashes and serials, RFC 2253 names
 * with UTF-8 kept, unix times, the key's type and size, the RSA modulus and exponent as
 * big-endian bytes (what GMP's mpz_import wants for the weak-key checks) and the SHA-256 of the
 * SubjectPublicKeyInfo (the key's identity across certificates).
 *
 * A certificate whose key OpenSSL cannot decode (an unknown algorithm, a broken RSA key) is
 * still kept: key_type comes from the SubjectPublicKeyInfo OID and the key fields stay empty.
 * What we cannot render at all (a name, a validity time) refuses the certificate.
 */
#include "tls_x509.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_hello.h" /* tls_hex */

static bool digest_hex(const EVP_MD *md, const void *data, size_t len, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (EVP_Digest(data, len, d, &dl, md, NULL) != 1)
		return false;
	tls_hex(d, dl, out);
	return true;
}

static char *name_str(const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *r = NULL;
	if (!b)
		return NULL;
	unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
	if (X509_NAME_print_ex(b, name, 0, flags) < 0)
		goto out;
	char *data;
	long n = BIO_get_mem_data(b, &data);
	if (n < 0)
		goto out;
	r = malloc((size_t)n + 1);
	if (!r)
		goto out;
	memcpy(r, data, (size_t)n);
	r[n] = '\0';
out:
	BIO_free(b);
	return r;
}

static char *last_cn(const X509_NAME *name)
{
	int idx = -1, last = -1;
	while ((idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0)
		last = idx;
	if (last < 0)
		return NULL;
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last));
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, s);
	if (n < 0)
		return NULL;
	char *r = malloc((size_t)n + 1);
	if (r) {
		memcpy(r, u, (size_t)n);
		r[n] = '\0';
	}
	OPENSSL_free(u);
	return r;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned mp = m > 2 ? m - 3 : m + 9; /* March-based month */
	unsigned doy = (153 * mp + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool time_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return false;
	*out = days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
			       (unsigned)tm.tm_mday) * 86400 +
	       tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
	return true;
}

static char *serial_str(const ASN1_INTEGER *ai)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	if (!bn)
		return NULL;
	char *h = BN_bn2hex(bn);
	BN_free(bn);
	if (!h)
		return NULL;
	size_t n = strlen(h);
	char *r = malloc(n + 1);
	if (r) {
		for (size_t i = 0; i <= n; i++)
			r[i] = (char)((h[i] >= 'A' && h[i] <= 'F') ? h[i] + 32 : h[i]);
	}
	OPENSSL_free(h);
	return r;
}

static bool add_sans(X509 *x, struct tls_cert_info *ci)
{
	int crit = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (!gens)
		return true; /* absent (or undecodable: treated as absent) */
	bool ok = false;
	int n = sk_GENERAL_NAME_num(gens);
	ci->san = calloc(n > 0 ? (size_t)n : 1, sizeof *ci->san);
	if (!ci->san)
		goto out;
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char buf[INET6_ADDRSTRLEN];
		const char *v = NULL;
		size_t vl = 0;
		enum tls_san_type type;
		if (g->type == GEN_DNS) {
			type = TLS_SAN_DNS;
			v = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
			vl = (size_t)ASN1_STRING_length(g->d.dNSName);
		} else if (g->type == GEN_IPADD) {
			type = TLS_SAN_IP;
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
			if (!af || !inet_ntop(af, a, buf, sizeof buf))
				continue;
			v = buf;
			vl = strlen(buf);
		} else {
			continue;
		}
		char *s = malloc(vl + 1);
		if (!s)
			goto out;
		memcpy(s, v, vl);
		s[vl] = '\0';
		ci->san[ci->n_san].type = type;
		ci->san[ci->n_san].value = s;
		ci->n_san++;
	}
	ok = true;
out:
	GENERAL_NAMES_free(gens);
	return ok;
}

static bool bn_param(EVP_PKEY *pk, const char *name, uint8_t **out, size_t *len)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1 || !bn)
		return false;
	int n = BN_num_bytes(bn);
	*out = malloc(n > 0 ? (size_t)n : 1);
	if (!*out) {
		BN_free(bn);
		return false;
	}
	*len = (size_t)BN_bn2bin(bn, *out);
	BN_free(bn);
	return true;
}

static enum tls_key_type key_type_of(int id)
{
	switch (id) {
	case EVP_PKEY_RSA: return TLS_KEY_RSA;
	case EVP_PKEY_RSA_PSS: return TLS_KEY_RSA_PSS;
	case EVP_PKEY_EC: return TLS_KEY_EC;
	case EVP_PKEY_DSA: return TLS_KEY_DSA;
	case EVP_PKEY_ED25519: return TLS_KEY_ED25519;
	case EVP_PKEY_ED448: return TLS_KEY_ED448;
	case EVP_PKEY_DH:
	case EVP_PKEY_DHX: return TLS_KEY_DH;
	default: return TLS_KEY_UNKNOWN;
	}
}

static const char *key_type_name(enum tls_key_type t)
{
	static const char *const names[] = {"unknown", "rsa", "rsa-pss", "ec",
					    "dsa",     "ed25519", "ed448", "dh"};
	return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Public key fields; false only on allocation failure or an SPKI we cannot re-encode. */
static bool add_key(X509 *x, struct tls_cert_info *ci)
{
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
	ASN1_OBJECT *alg = NULL;
	if (!xpk || X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, xpk) != 1)
		return false;
	unsigned char *spki = NULL;
	int spki_len = i2d_X509_PUBKEY(xpk, &spki);
	if (spki_len <= 0)
		return false;
	bool ok = digest_hex(EVP_sha256(), spki, (size_t)spki_len, ci->spki_sha256);
	OPENSSL_free(spki);
	if (!ok)
		return false;
	ci->key_type = key_type_of(OBJ_obj2nid(alg));
	EVP_PKEY *pk = X509_get0_pubkey(x); /* NULL when OpenSSL cannot decode the key */
	if (pk) {
		ci->key_type = key_type_of(EVP_PKEY_get_base_id(pk));
		ci->key_bits = EVP_PKEY_get_bits(pk);
		if (ci->key_type == TLS_KEY_RSA || ci->key_type == TLS_KEY_RSA_PSS) {
			if (!bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &ci->rsa_n, &ci->rsa_n_len) ||
			    !bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &ci->rsa_e, &ci->rsa_e_len))
				return false;
			if (ci->rsa_e_len <= 8)
				for (size_t i = 0; i < ci->rsa_e_len; i++)
					ci->rsa_e_u64 = ci->rsa_e_u64 << 8 | ci->rsa_e[i];
		} else if (ci->key_type == TLS_KEY_EC) {
			size_t n = 0;
			if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME,
							   ci->ec_curve, sizeof ci->ec_curve,
							   &n) != 1)
				ci->ec_curve[0] = '\0'; /* explicit parameters: no name */
		}
	}
	ci->key_type_name = key_type_name(ci->key_type);
	return true;
}

enum tls_reason tls_x509_parse(const uint8_t *der, size_t len, struct tls_cert_info *out)
{
	memset(out, 0, sizeof *out);
	out->key_type_name = "unknown";
	if (len == 0 || len > (size_t)INT32_MAX)
		return TLS_R_X509_DECODE;
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (!x)
		return TLS_R_X509_DECODE;
	enum tls_reason r = TLS_R_X509_FIELD;
	if (p != der + len) {
		r = TLS_R_X509_TRAILING;
		goto fail;
	}
	if (!digest_hex(EVP_sha1(), der, len, out->sha1) ||
	    !digest_hex(EVP_sha256(), der, len, out->sha256)) {
		r = TLS_R_NOMEM;
		goto fail;
	}
	const X509_NAME *subj = X509_get_subject_name(x), *iss = X509_get_issuer_name(x);
	out->subject = name_str(subj);
	out->issuer = name_str(iss);
	if (!out->subject || !out->issuer)
		goto fail;
	out->subject_cn = last_cn(subj);
	if (!time_unix(X509_get0_notBefore(x), &out->not_before) ||
	    !time_unix(X509_get0_notAfter(x), &out->not_after))
		goto fail;
	out->serial = serial_str(X509_get0_serialNumber(x));
	if (!out->serial)
		goto fail;
	int sig_nid = X509_get_signature_nid(x);
	if (sig_nid != NID_undef) {
		snprintf(out->sig_alg, sizeof out->sig_alg, "%s", OBJ_nid2ln(sig_nid));
	} else {
		const X509_ALGOR *sa = NULL;
		const ASN1_OBJECT *oid = NULL;
		X509_get0_signature(NULL, &sa, x);
		if (sa)
			X509_ALGOR_get0(&oid, NULL, NULL, sa);
		if (!oid || OBJ_obj2txt(out->sig_alg, sizeof out->sig_alg, oid, 1) <= 0)
			snprintf(out->sig_alg, sizeof out->sig_alg, "unknown");
	}
	if (!add_sans(x, out) || !add_key(x, out))
		goto fail;
	out->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
	out->self_signed = X509_NAME_cmp(subj, iss) == 0;
	X509_free(x);
	return TLS_R_OK;
fail:
	X509_free(x);
	tls_cert_info_free(out);
	return r;
}

bool tls_x509_sha256(const uint8_t *der, size_t len, char out[65])
{
	return digest_hex(EVP_sha256(), der, len, out);
}

void tls_cert_info_free(struct tls_cert_info *ci)
{
	if (!ci)
		return;
	free(ci->subject);
	free(ci->issuer);
	free(ci->subject_cn);
	free(ci->serial);
	for (size_t i = 0; i < ci->n_san; i++)
		free(ci->san[i].value);
	free(ci->san);
	free(ci->rsa_n);
	free(ci->rsa_e);
	memset(ci, 0, sizeof *ci);
	ci->key_type_name = "unknown";
}
