/*
 * tls_hello.c — ClientHello/ServerHello parsing and the JA3, JA3S and JA4 fingerprints.
 *
 * Two passes over the message body. The first validates every length and notes where the
 * fields that matter are (cipher list, extension block, the few extensions we read); nothing
 * is allocated and nothing is copied. The second sizes ONE allocation from what the first pass
 * counted (an upper bound of every string), carves the arrays and strings out of it, and
 * writes the fingerprints straight into it. The JA4 hashes are taken over substrings of the
 * raw forms (JA4_r/JA4_ro), so no list is rendered twice.
 *
 * Strictness: a length that disagrees with its container refuses the whole hello (dpkt, which
 * the reference JA3 code uses, refuses such packets too): a fingerprint of a half-parsed hello
 * would be a fingerprint of nothing. Unknown extensions are only listed, never interpreted.
 * The exact algorithms and the corner cases chosen are in docs/tls-fingerprints.md.
 */
#include "tls_hello.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define EXT_SERVER_NAME 0x0000
#define EXT_SUPPORTED_GROUPS 0x000a
#define EXT_EC_POINT_FORMATS 0x000b
#define EXT_SIGNATURE_ALGORITHMS 0x000d
#define EXT_ALPN 0x0010
#define EXT_SUPPORTED_VERSIONS 0x002b

static const char hexdig[] = "0123456789abcdef";

/* RFC 8446 4.1.3: SHA-256("HelloRetryRequest") */
static const uint8_t hrr_random[32] = {
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

void tls_hex(const uint8_t *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Bounds-checked cursor: a failed get sets err and returns 0, checked once per field group. */
struct cur {
	const uint8_t *p;
	size_t n;
	bool err;
};

static uint8_t get8(struct cur *c)
{
	if (c->n < 1) {
		c->err = true;
		return 0;
	}
	c->n--;
	return *c->p++;
}

static uint16_t get16(struct cur *c)
{
	if (c->n < 2) {
		c->err = true;
		c->n = 0;
		return 0;
	}
	uint16_t v = be16(c->p);
	c->p += 2;
	c->n -= 2;
	return v;
}

static const uint8_t *getn(struct cur *c, size_t k)
{
	if (c->n < k) {
		c->err = true;
		c->n = 0;
		return NULL;
	}
	const uint8_t *r = c->p;
	c->p += k;
	c->n -= k;
	return r;
}

/* Digest of len bytes as lowercase hex truncated to hexlen characters (hexlen <= 2*size). */
static bool digest_hex(const EVP_MD *md, const void *data, size_t len, char *out, size_t hexlen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (EVP_Digest(data, len, d, &dl, md, NULL) != 1 || hexlen > 2 * (size_t)dl)
		return false;
	char full[2 * EVP_MAX_MD_SIZE + 1];
	tls_hex(d, dl, full);
	memcpy(out, full, hexlen);
	out[hexlen] = '\0';
	return true;
}

static char *put_dec(char *o, unsigned v)
{
	char tmp[8];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = tmp[--n];
	return o;
}

static char *put_hex4(char *o, uint16_t v)
{
	o[0] = hexdig[v >> 12];
	o[1] = hexdig[(v >> 8) & 15];
	o[2] = hexdig[(v >> 4) & 15];
	o[3] = hexdig[v & 15];
	return o + 4;
}

/* Decimal list, '-' joined, GREASE removed (the JA3 segment). vals are big-endian pairs when
 * width is 2, single bytes when width is 1. */
static char *put_ja3_list(char *o, const uint8_t *vals, size_t n, int width)
{
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		uint16_t v = width == 2 ? be16(vals + 2 * i) : vals[i];
		if (width == 2 && tls_is_grease(v))
			continue;
		if (!first)
			*o++ = '-';
		o = put_dec(o, v);
		first = false;
	}
	return o;
}

static char *put_hex_list(char *o, const uint16_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			*o++ = ',';
		o = put_hex4(o, v[i]);
	}
	return o;
}

static int cmp_u16(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
	return (x > y) - (x < y);
}

static void sort_u16(uint16_t *v, size_t n)
{
	if (n < 32) { /* the usual case: a few dozen values, insertion sort beats qsort's calls */
		for (size_t i = 1; i < n; i++) {
			uint16_t x = v[i];
			size_t j = i;
			for (; j > 0 && v[j - 1] > x; j--)
				v[j] = v[j - 1];
			v[j] = x;
		}
		return;
	}
	qsort(v, n, sizeof *v, cmp_u16);
}

static bool is_alnum(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static const char *ja4_version(uint16_t v)
{
	switch (v) {
	case 0x0304: return "13";
	case 0x0303: return "12";
	case 0x0302: return "11";
	case 0x0301: return "10";
	case 0x0300: return "s3";
	case 0x0002: return "s2";
	case 0xfeff: return "d1";
	case 0xfefd: return "d2";
	case 0xfefc: return "d3";
	default: return "00";
	}
}

/* ---- ClientHello ---- */

struct ch_scan {
	uint16_t legacy;
	const uint8_t *ciphers; /* n_ciphers big-endian pairs */
	size_t n_ciphers;
	const uint8_t *ext;     /* the extension block (types and bodies) */
	size_t ext_len;
	size_t n_ext;
	bool has_ext_block;
	const uint8_t *groups;
	size_t n_groups;
	const uint8_t *pf;
	size_t n_pf;
	const uint8_t *sigs;
	size_t n_sigs;
	const uint8_t *vers;
	size_t n_vers;
	bool has_versions;
	bool has_sni_ext;
	const uint8_t *sni;
	size_t sni_len;
	bool has_alpn_ext;
	const uint8_t *alpn; /* the protocol_name_list, its entries length-prefixed */
	size_t alpn_len;
	size_t n_alpn;
};

static enum tls_reason scan_sni(const uint8_t *d, size_t n, struct ch_scan *s)
{
	s->has_sni_ext = true;
	if (n == 0)
		return TLS_R_OK; /* the empty form (as a server sends it): a domain nonetheless */
	struct cur c = {d, n, false};
	uint16_t list = get16(&c);
	if (c.err || list != c.n)
		return TLS_R_BAD_EXTENSION;
	while (c.n) {
		uint8_t type = get8(&c);
		uint16_t len = get16(&c);
		const uint8_t *name = getn(&c, len);
		if (c.err)
			return TLS_R_BAD_EXTENSION;
		if (type == 0 && !s->sni) {
			s->sni = name;
			s->sni_len = len;
		}
	}
	return TLS_R_OK;
}

static enum tls_reason scan_alpn(const uint8_t *d, size_t n, struct ch_scan *s)
{
	struct cur c = {d, n, false};
	uint16_t list = get16(&c);
	if (c.err || list != c.n)
		return TLS_R_BAD_EXTENSION;
	s->has_alpn_ext = true;
	s->alpn = c.p;
	s->alpn_len = c.n;
	while (c.n) {
		uint8_t len = get8(&c);
		getn(&c, len);
		if (c.err)
			return TLS_R_BAD_EXTENSION;
		s->n_alpn++;
	}
	return TLS_R_OK;
}

/* A u16-length (or u8-length when len8) list of 2-byte values filling the extension exactly. */
static enum tls_reason scan_u16_list(const uint8_t *d, size_t n, bool len8, const uint8_t **out,
				     size_t *count)
{
	struct cur c = {d, n, false};
	size_t list = len8 ? get8(&c) : get16(&c);
	if (c.err || list != c.n || (list & 1))
		return TLS_R_BAD_EXTENSION;
	*out = c.p;
	*count = list / 2;
	return TLS_R_OK;
}

static enum tls_reason scan_ext_block(struct cur *c, size_t *n_ext, const uint8_t **blk,
				      size_t *blk_len)
{
	/* No extension block at all is legal (SSL 3.0 style hellos). */
	*n_ext = 0;
	*blk = c->p;
	*blk_len = 0;
	if (c->n == 0)
		return TLS_R_OK;
	uint16_t len = get16(c);
	if (c->err)
		return TLS_R_TRUNCATED;
	if (len > c->n)
		return TLS_R_TRUNCATED;
	if (len < c->n)
		return TLS_R_TRAILING;
	*blk = c->p;
	*blk_len = len;
	struct cur e = {c->p, len, false};
	while (e.n) {
		get16(&e);
		uint16_t el = get16(&e);
		getn(&e, el);
		if (e.err)
			return TLS_R_TRUNCATED;
		(*n_ext)++;
	}
	return TLS_R_OK;
}

static enum tls_reason ch_scan(const uint8_t *body, size_t len, struct ch_scan *s)
{
	struct cur c = {body, len, false};
	memset(s, 0, sizeof *s);
	s->legacy = get16(&c);
	getn(&c, 32); /* random */
	uint8_t sid = get8(&c);
	getn(&c, sid);
	uint16_t cl = get16(&c);
	if (c.err)
		return TLS_R_TRUNCATED;
	if (sid > 32 || (cl & 1))
		return TLS_R_BAD_HELLO;
	s->ciphers = getn(&c, cl);
	s->n_ciphers = cl / 2;
	uint8_t compl = get8(&c);
	getn(&c, compl);
	if (c.err)
		return TLS_R_TRUNCATED;
	enum tls_reason r = scan_ext_block(&c, &s->n_ext, &s->ext, &s->ext_len);
	if (r != TLS_R_OK)
		return r;
	/* Second walk: the extensions we read. The first occurrence of each counts. */
	bool seen_sni = false, seen_alpn = false, seen_groups = false, seen_pf = false;
	bool seen_sigs = false, seen_vers = false;
	struct cur e = {s->ext, s->ext_len, false};
	while (e.n) {
		uint16_t type = get16(&e);
		uint16_t el = get16(&e);
		const uint8_t *d = getn(&e, el);
		if (e.err)
			return TLS_R_TRUNCATED; /* cannot happen: scan_ext_block walked it */
		r = TLS_R_OK;
		switch (type) {
		case EXT_SERVER_NAME:
			if (!seen_sni)
				r = scan_sni(d, el, s);
			seen_sni = true;
			break;
		case EXT_ALPN:
			if (!seen_alpn)
				r = scan_alpn(d, el, s);
			seen_alpn = true;
			break;
		case EXT_SUPPORTED_GROUPS:
			if (!seen_groups)
				r = scan_u16_list(d, el, false, &s->groups, &s->n_groups);
			seen_groups = true;
			break;
		case EXT_EC_POINT_FORMATS:
			if (!seen_pf) {
				struct cur p = {d, el, false};
				uint8_t n = get8(&p);
				if (p.err || n != p.n)
					return TLS_R_BAD_EXTENSION;
				s->pf = p.p;
				s->n_pf = n;
			}
			seen_pf = true;
			break;
		case EXT_SIGNATURE_ALGORITHMS:
			if (!seen_sigs)
				r = scan_u16_list(d, el, false, &s->sigs, &s->n_sigs);
			seen_sigs = true;
			break;
		case EXT_SUPPORTED_VERSIONS:
			if (!seen_vers) {
				r = scan_u16_list(d, el, true, &s->vers, &s->n_vers);
				s->has_versions = true;
			}
			seen_vers = true;
			break;
		default:
			break;
		}
		if (r != TLS_R_OK)
			return r;
	}
	return TLS_R_OK;
}

/* Carves aligned pieces out of the one allocation. */
struct arena {
	char *p;
	char *end;
};

static void *take(struct arena *a, size_t n, size_t align)
{
	uintptr_t x = ((uintptr_t)a->p + (align - 1)) & ~(uintptr_t)(align - 1);
	char *r = (char *)x;
	if (r > a->end || (size_t)(a->end - r) < n)
		return NULL; /* sizing bug: callers treat it as out of memory */
	a->p = r + n;
	return r;
}

static void set_bytes(struct tls_bytes *b, char *dst, const uint8_t *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
	b->s = dst;
	b->len = len;
}

/* JA4 a-part: "t13d1516h2" (10 characters + NUL). */
static void ja4_prefix(const struct ch_scan *s, size_t nc, size_t ne, uint16_t version, char *o)
{
	const char *v = ja4_version(version);
	o[0] = 't';
	o[1] = v[0];
	o[2] = v[1];
	o[3] = s->has_sni_ext ? 'd' : 'i';
	if (nc > 99)
		nc = 99;
	if (ne > 99)
		ne = 99;
	o[4] = (char)('0' + nc / 10);
	o[5] = (char)('0' + nc % 10);
	o[6] = (char)('0' + ne / 10);
	o[7] = (char)('0' + ne % 10);
	o[8] = o[9] = '0';
	if (s->n_alpn > 0 && s->alpn[0] > 0) {
		const uint8_t *a = s->alpn + 1;
		uint8_t first = a[0], last = a[s->alpn[0] - 1];
		if (is_alnum(first) && is_alnum(last)) {
			o[8] = (char)first;
			o[9] = (char)last;
		} else {
			o[8] = hexdig[first >> 4];
			o[9] = hexdig[last & 15];
		}
	}
	o[10] = '\0';
}

/* raw = "prefix_ciphers_exts[_sigs]"; hashed = "prefix_h(ciphers)_h(exts[_sigs])", an empty
 * list giving twelve zeros. cipher_len/ext_len are the lengths of the two lists in raw. */
static bool ja4_hash(const char *raw, size_t ciphers_len, size_t n_ciphers, size_t n_ext,
		     size_t tail_len, char out[TLS_JA4_LEN + 1])
{
	const EVP_MD *sha = EVP_sha256();
	memcpy(out, raw, 11);
	if (n_ciphers == 0)
		memcpy(out + 11, "000000000000", 13);
	else if (!digest_hex(sha, raw + 11, ciphers_len, out + 11, 12))
		return false;
	out[23] = '_';
	if (n_ext == 0)
		memcpy(out + 24, "000000000000", 13);
	else if (!digest_hex(sha, raw + 11 + ciphers_len + 1, tail_len, out + 24, 12))
		return false;
	return true;
}

enum tls_reason tls_client_hello_parse(const uint8_t *body, size_t len,
				       struct tls_client_hello *out)
{
	struct ch_scan s;
	memset(out, 0, sizeof *out);
	enum tls_reason r = ch_scan(body, len, &s);
	if (r != TLS_R_OK)
		return r;

	size_t n_list = s.n_ciphers + s.n_ext + s.n_sigs;
	size_t ja3_max = 16 + 6 * (s.n_ciphers + s.n_ext + s.n_groups) + 4 * s.n_pf;
	size_t ja4r_max = 16 + 5 * n_list;
	size_t need = s.n_alpn * sizeof(struct tls_bytes) + 16 +
		      2 * (2 * s.n_ciphers + 3 * s.n_ext + s.n_vers + s.n_sigs) + 16 +
		      (s.sni ? s.sni_len + 1 : 0) + s.alpn_len + 1 + ja3_max + 2 * ja4r_max;
	char *mem = malloc(need);
	if (!mem)
		return TLS_R_NOMEM;
	struct arena a = {mem, mem + need};
	struct tls_bytes *alpn = take(&a, s.n_alpn * sizeof *alpn, _Alignof(struct tls_bytes));
	uint16_t *ciphers = take(&a, 2 * s.n_ciphers, 2);
	uint16_t *exts = take(&a, 2 * s.n_ext, 2);
	uint16_t *vers = take(&a, 2 * s.n_vers, 2);
	uint16_t *c_sorted = take(&a, 2 * s.n_ciphers, 2); /* non-GREASE, later sorted */
	uint16_t *e_orig = take(&a, 2 * s.n_ext, 2);       /* non-GREASE, original order */
	uint16_t *e_sorted = take(&a, 2 * s.n_ext, 2);     /* non-GREASE, no SNI/ALPN, sorted */
	uint16_t *sigs = take(&a, 2 * s.n_sigs, 2);        /* non-GREASE, original order */
	if (!alpn || !ciphers || !exts || !vers || !c_sorted || !e_orig || !e_sorted || !sigs)
		goto nomem;

	size_t nc = 0, ne = 0, nes = 0, ns = 0;
	for (size_t i = 0; i < s.n_ciphers; i++) {
		ciphers[i] = be16(s.ciphers + 2 * i);
		if (!tls_is_grease(ciphers[i]))
			c_sorted[nc++] = ciphers[i];
	}
	struct cur e = {s.ext, s.ext_len, false};
	for (size_t i = 0; i < s.n_ext; i++) {
		exts[i] = get16(&e);
		getn(&e, get16(&e));
		if (tls_is_grease(exts[i]))
			continue;
		e_orig[ne++] = exts[i];
		if (exts[i] != EXT_SERVER_NAME && exts[i] != EXT_ALPN)
			e_sorted[nes++] = exts[i];
	}
	uint16_t version = s.legacy, best = 0;
	bool have_best = false;
	for (size_t i = 0; i < s.n_vers; i++) {
		vers[i] = be16(s.vers + 2 * i);
		if (!tls_is_grease(vers[i]) && (!have_best || vers[i] > best)) {
			best = vers[i];
			have_best = true;
		}
	}
	if (s.has_versions && have_best)
		version = best;
	for (size_t i = 0; i < s.n_sigs; i++) {
		uint16_t v = be16(s.sigs + 2 * i);
		if (!tls_is_grease(v))
			sigs[ns++] = v;
	}

	/* strings */
	if (s.sni) {
		char *d = take(&a, s.sni_len + 1, 1);
		if (!d)
			goto nomem;
		set_bytes(&out->sni, d, s.sni, s.sni_len);
	}
	{
		struct cur l = {s.alpn, s.alpn_len, false};
		for (size_t i = 0; i < s.n_alpn; i++) {
			uint8_t n = get8(&l);
			const uint8_t *v = getn(&l, n);
			char *d = take(&a, (size_t)n + 1, 1);
			if (!d)
				goto nomem;
			set_bytes(&alpn[i], d, v, n);
		}
	}
	char *ja3 = take(&a, ja3_max, 1);
	char *ja4_r = take(&a, ja4r_max, 1);
	char *ja4_ro = take(&a, ja4r_max, 1);
	if (!ja3 || !ja4_r || !ja4_ro)
		goto nomem;

	/* JA3: SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats */
	char *o = put_dec(ja3, s.legacy);
	*o++ = ',';
	o = put_ja3_list(o, s.ciphers, s.n_ciphers, 2);
	*o++ = ',';
	{
		bool first = true;
		for (size_t i = 0; i < s.n_ext; i++) {
			if (tls_is_grease(exts[i]))
				continue;
			if (!first)
				*o++ = '-';
			o = put_dec(o, exts[i]);
			first = false;
		}
	}
	*o++ = ',';
	o = put_ja3_list(o, s.groups, s.n_groups, 2);
	*o++ = ',';
	o = put_ja3_list(o, s.pf, s.n_pf, 1);
	*o = '\0';
	if (!digest_hex(EVP_md5(), ja3, (size_t)(o - ja3), out->ja3_md5, TLS_MD5_HEX_LEN))
		goto nomem;

	/* JA4_ro, then JA4_r: the lists in the two orders. */
	char prefix[11];
	ja4_prefix(&s, nc, ne, version, prefix);
	o = ja4_ro;
	memcpy(o, prefix, 10);
	o += 10;
	*o++ = '_';
	o = put_hex_list(o, c_sorted, nc); /* not sorted yet: original order */
	size_t ciphers_len = (size_t)(o - ja4_ro) - 11;
	*o++ = '_';
	char *tail = o;
	o = put_hex_list(o, e_orig, ne);
	if (ns) {
		*o++ = '_';
		o = put_hex_list(o, sigs, ns);
	}
	*o = '\0';
	if (!ja4_hash(ja4_ro, ciphers_len, nc, ne, (size_t)(o - tail), out->ja4_o))
		goto nomem;

	sort_u16(c_sorted, nc);
	sort_u16(e_sorted, nes);
	o = ja4_r;
	memcpy(o, prefix, 10);
	o += 10;
	*o++ = '_';
	o = put_hex_list(o, c_sorted, nc);
	*o++ = '_';
	tail = o;
	o = put_hex_list(o, e_sorted, nes);
	if (ns) {
		*o++ = '_';
		o = put_hex_list(o, sigs, ns);
	}
	*o = '\0';
	if (!ja4_hash(ja4_r, ciphers_len, nc, nes, (size_t)(o - tail), out->ja4))
		goto nomem;

	out->legacy_version = s.legacy;
	out->version = version;
	out->ja3 = ja3;
	out->ja4_r = ja4_r;
	out->ja4_ro = ja4_ro;
	out->n_alpn = s.n_alpn;
	out->alpn = alpn;
	out->n_versions = s.n_vers;
	out->versions = vers;
	out->n_ciphers = s.n_ciphers;
	out->ciphers = ciphers;
	out->n_extensions = s.n_ext;
	out->extensions = exts;
	out->mem_ = mem;
	return TLS_R_OK;
nomem:
	free(mem);
	memset(out, 0, sizeof *out);
	return TLS_R_NOMEM;
}

void tls_client_hello_free(struct tls_client_hello *ch)
{
	if (!ch)
		return;
	free(ch->mem_);
	memset(ch, 0, sizeof *ch);
}

/* ---- ServerHello ---- */

enum tls_reason tls_server_hello_parse(const uint8_t *body, size_t len,
				       struct tls_server_hello *out)
{
	memset(out, 0, sizeof *out);
	struct cur c = {body, len, false};
	uint16_t legacy = get16(&c);
	const uint8_t *random = getn(&c, 32);
	uint8_t sid = get8(&c);
	getn(&c, sid);
	uint16_t cipher = get16(&c);
	uint8_t comp = get8(&c);
	if (c.err)
		return TLS_R_TRUNCATED;
	if (sid > 32)
		return TLS_R_BAD_HELLO;
	size_t n_ext, blk_len;
	const uint8_t *blk;
	enum tls_reason r = scan_ext_block(&c, &n_ext, &blk, &blk_len);
	if (r != TLS_R_OK)
		return r;

	uint16_t version = legacy;
	const uint8_t *alpn = NULL;
	size_t alpn_len = 0;
	bool seen_vers = false, seen_alpn = false;
	struct cur e = {blk, blk_len, false};
	while (e.n) {
		uint16_t type = get16(&e);
		uint16_t el = get16(&e);
		const uint8_t *d = getn(&e, el);
		if (type == EXT_SUPPORTED_VERSIONS && !seen_vers) {
			if (el != 2)
				return TLS_R_BAD_EXTENSION;
			version = be16(d);
			seen_vers = true;
		} else if (type == EXT_ALPN && !seen_alpn) {
			struct cur l = {d, el, false};
			uint16_t list = get16(&l);
			uint8_t n = get8(&l);
			alpn = getn(&l, n);
			if (l.err || list != (size_t)n + 1 || l.n != 0)
				return TLS_R_BAD_EXTENSION;
			alpn_len = n;
			seen_alpn = true;
		}
	}

	size_t ja3s_max = 16 + 6 * n_ext;
	size_t need = 2 * n_ext + 2 + ja3s_max + alpn_len + 1;
	char *mem = malloc(need);
	if (!mem)
		return TLS_R_NOMEM;
	struct arena a = {mem, mem + need};
	uint16_t *exts = take(&a, 2 * n_ext, 2);
	char *ja3s = take(&a, ja3s_max, 1);
	char *alpn_s = take(&a, alpn_len + 1, 1);
	if (!exts || !ja3s || !alpn_s) {
		free(mem);
		return TLS_R_NOMEM;
	}
	char *o = put_dec(ja3s, legacy);
	*o++ = ',';
	o = put_dec(o, cipher);
	*o++ = ',';
	e = (struct cur){blk, blk_len, false};
	bool first = true;
	for (size_t i = 0; i < n_ext; i++) {
		exts[i] = get16(&e);
		getn(&e, get16(&e));
		if (tls_is_grease(exts[i]))
			continue;
		if (!first)
			*o++ = '-';
		o = put_dec(o, exts[i]);
		first = false;
	}
	*o = '\0';
	if (!digest_hex(EVP_md5(), ja3s, (size_t)(o - ja3s), out->ja3s_md5, TLS_MD5_HEX_LEN)) {
		free(mem);
		memset(out, 0, sizeof *out);
		return TLS_R_NOMEM;
	}
	if (alpn)
		set_bytes(&out->alpn, alpn_s, alpn, alpn_len);
	out->legacy_version = legacy;
	out->version = version;
	out->cipher = cipher;
	out->compression = comp;
	out->hello_retry = memcmp(random, hrr_random, 32) == 0;
	out->ja3s = ja3s;
	out->n_extensions = n_ext;
	out->extensions = exts;
	out->mem_ = mem;
	return TLS_R_OK;
}

void tls_server_hello_free(struct tls_server_hello *sh)
{
	if (!sh)
		return;
	free(sh->mem_);
	memset(sh, 0, sizeof *sh);
}
