/*
 * pdns_parse.c — passivedns CSV lines and COF NDJSON objects into normalised records.
 *
 * The CSV parser is the hot path of the analyzer (every line of every sensor): one pass to
 * check the bytes (UTF-8, no control byte), one pass to split at "||", then per-field checks
 * with no allocation. IDNA (libidn2) only runs for names with non-ASCII bytes, which passivedns
 * rarely prints. The COF parser uses jansson: imports are rare and JSON is not worth a
 * hand-written parser here.
 */
#include "pdns_parse.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <jansson.h>
#include <string.h>

static const struct {
	uint16_t value;
	const char *name;
} rrtypes[] = {
#include "pdns_rrtype_table.inc"
};
#define N_RRTYPES (sizeof(rrtypes) / sizeof(rrtypes[0]))

static const char *const reason_names[PDNS_R__COUNT] = {
	[PDNS_OK] = "ok",
	[PDNS_R_FIELDS] = "fields",
	[PDNS_R_TIMESTAMP] = "timestamp",
	[PDNS_R_TTL] = "ttl",
	[PDNS_R_COUNT] = "count",
	[PDNS_R_BINARY] = "binary",
	[PDNS_R_UTF8] = "utf8",
	[PDNS_R_OVERSIZE] = "oversize",
	[PDNS_R_NAME] = "name",
	[PDNS_R_TYPE] = "type",
	[PDNS_R_RDATA] = "rdata",
	[PDNS_R_TRUNCATED] = "truncated",
	[PDNS_R_JSON] = "json",
};

const char *pdns_reason_name(enum pdns_reason r)
{
	return (unsigned)r < PDNS_R__COUNT ? reason_names[r] : "unknown";
}

void pdns_rrtype_name(uint16_t type, char out[PDNS_TYPE_TEXT_MAX])
{
	size_t lo = 0, hi = N_RRTYPES;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (rrtypes[mid].value == type) {
			snprintf(out, PDNS_TYPE_TEXT_MAX, "%s", rrtypes[mid].name);
			return;
		}
		if (rrtypes[mid].value < type)
			lo = mid + 1;
		else
			hi = mid;
	}
	snprintf(out, PDNS_TYPE_TEXT_MAX, "TYPE%u", (unsigned)type);
}

static int parse_u64(const uint8_t *p, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int ascii_casecmp_n(const char *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char x = (unsigned char)a[i], y = b[i];
		if (x == 0)
			return -1;
		if (y >= 'a' && y <= 'z')
			y = (unsigned char)(y - 32);
		if (x != y)
			return -1;
	}
	return a[len] == 0 ? 0 : -1;
}

int pdns_rrtype_parse(const char *text, size_t len, uint16_t *type)
{
	const uint8_t *t = (const uint8_t *)text;
	uint64_t v;
	if (len == 0 || len >= PDNS_TYPE_TEXT_MAX)
		return -1;
	if (parse_u64(t, len, 65535, &v) == 0) {
		*type = (uint16_t)v;
		return 0;
	}
	if (len > 4 && (t[0] | 0x20) == 't' && (t[1] | 0x20) == 'y' && (t[2] | 0x20) == 'p' &&
	    (t[3] | 0x20) == 'e' && parse_u64(t + 4, len - 4, 65535, &v) == 0) {
		*type = (uint16_t)v;
		return 0;
	}
	for (size_t i = 0; i < N_RRTYPES; i++) {
		if (ascii_casecmp_n(rrtypes[i].name, t, len) == 0) {
			*type = rrtypes[i].value;
			return 0;
		}
	}
	return -1;
}

enum pdns_reason pdns_check_text(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return PDNS_R_BINARY;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return PDNS_R_UTF8;
		}
		if (len - i <= n)
			return PDNS_R_UTF8;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return PDNS_R_UTF8;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return PDNS_R_UTF8;
		i += n + 1;
	}
	return PDNS_OK;
}

enum pdns_reason pdns_normalise_name(const uint8_t *in, size_t len, char *out, size_t *out_len)
{
	bool ascii = true;
	if (len > 1 && in[len - 1] == '.')
		len--;
	if (len == 0)
		return PDNS_R_NAME;
	if (len > PDNS_NAME_MAX)
		return PDNS_R_OVERSIZE;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + 32);
		if (c >= 0x80)
			ascii = false;
		out[i] = (char)c;
	}
	out[len] = 0;
	*out_len = len;
	if (!ascii) {
		char *a = NULL;
		if (idn2_to_ascii_8z(out, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK &&
		    a != NULL) {
			size_t alen = strlen(a);
			if (alen > 1 && a[alen - 1] == '.')
				alen--;
			if (alen > 0 && alen <= PDNS_NAME_MAX) {
				for (size_t i = 0; i < alen; i++)
					out[i] = (a[i] >= 'A' && a[i] <= 'Z') ? (char)(a[i] + 32) : a[i];
				out[alen] = 0;
				*out_len = alen;
			}
		}
		idn2_free(a);
	}
	return PDNS_OK;
}

bool pdns_parse_addr(const char *text, uint8_t *kind, uint8_t addr[16])
{
	if (inet_pton(AF_INET, text, addr) == 1) {
		*kind = PDNS_RD_V4;
		return true;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*kind = PDNS_RD_V6;
		return true;
	}
	return false;
}

static size_t fmt_ipv4(const uint8_t a[4], char *out)
{
	size_t n = 0;
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (i)
			out[n++] = '.';
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
	}
	out[n] = 0;
	return n;
}

static bool is_name_type(uint16_t t)
{
	return t == 2 || t == 5 || t == 12 || t == 15 || t == 39; /* NS CNAME PTR MX DNAME */
}

enum pdns_reason pdns_normalise_rdata(struct pdns_rec *r, const uint8_t *in, size_t len)
{
	if (len > PDNS_RDATA_MAX)
		return PDNS_R_OVERSIZE;
	r->rdata_kind = PDNS_RD_STR;
	if (r->rrtype == 1 || r->rrtype == 28) {
		char tmp[64];
		if (len < sizeof(tmp)) {
			memcpy(tmp, in, len);
			tmp[len] = 0;
			int af = r->rrtype == 1 ? AF_INET : AF_INET6;
			if (inet_pton(af, tmp, r->addr) == 1) {
				if (af == AF_INET) {
					/* the canonical dotted quad without inet_ntop's printf */
					r->rdata_len = fmt_ipv4(r->addr, r->rdata);
					r->rdata_kind = PDNS_RD_V4;
					return PDNS_OK;
				}
				if (inet_ntop(af, r->addr, r->rdata, sizeof(r->rdata)) != NULL) {
					r->rdata_kind = PDNS_RD_V6;
					r->rdata_len = strlen(r->rdata);
					return PDNS_OK;
				}
			}
		}
		if (ascii_casecmp_n("NXDOMAIN", in, len) == 0) {
			memcpy(r->rdata, "NXDOMAIN", 9);
			r->rdata_len = 8;
			return PDNS_OK;
		}
		return PDNS_R_RDATA;
	}
	if (is_name_type(r->rrtype) && len > 0 && ascii_casecmp_n("NXDOMAIN", in, len) != 0) {
		enum pdns_reason why = pdns_normalise_name(in, len, r->rdata, &r->rdata_len);
		if (why == PDNS_OK)
			return PDNS_OK;
		/* fall through: kept as given */
	}
	memcpy(r->rdata, in, len);
	r->rdata[len] = 0;
	r->rdata_len = len;
	return PDNS_OK;
}

enum pdns_reason pdns_parse_csv(const uint8_t *buf, size_t len, struct pdns_rec *out)
{
	const uint8_t *f[9];
	size_t fl[9];
	size_t nf = 0, start = 0;
	enum pdns_reason why;

	if ((why = pdns_check_text(buf, len)) != PDNS_OK)
		return why;
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] == '|' && buf[i + 1] == '|') {
			if (nf == 8)
				return PDNS_R_FIELDS;
			f[nf] = buf + start;
			fl[nf] = i - start;
			nf++;
			i++;
			start = i + 1;
		}
	}
	if (nf != 8)
		return PDNS_R_FIELDS;
	f[8] = buf + start;
	fl[8] = len - start;
	for (size_t i = 0; i < 9; i++) {
		if (i == 4 && fl[i] > PDNS_NAME_MAX + 1)
			return PDNS_R_OVERSIZE;
		if (i == 6 && fl[i] > PDNS_RDATA_MAX)
			return PDNS_R_OVERSIZE;
		if (i != 4 && i != 6 && fl[i] > PDNS_FIELD_MAX)
			return PDNS_R_OVERSIZE;
	}

	/* timestamp: seconds[.fraction] */
	size_t dot = 0;
	while (dot < fl[0] && f[0][dot] != '.')
		dot++;
	if (parse_u64(f[0], dot, (uint64_t)1 << 40, &out->ts) != 0)
		return PDNS_R_TIMESTAMP;
	if (dot < fl[0]) {
		uint64_t frac;
		if (dot + 1 == fl[0] || parse_u64(f[0] + dot + 1, fl[0] - dot - 1, UINT64_MAX, &frac))
			return PDNS_R_TIMESTAMP;
	}
	out->ts_last = out->ts;
	uint64_t v;
	if (parse_u64(f[7], fl[7], UINT32_MAX, &v) != 0)
		return PDNS_R_TTL;
	out->ttl = (uint32_t)v;
	if (parse_u64(f[8], fl[8], (uint64_t)1 << 48, &out->count) != 0)
		return PDNS_R_COUNT;
	if (pdns_rrtype_parse((const char *)f[5], fl[5], &out->rrtype) != 0)
		return PDNS_R_TYPE;
	if ((why = pdns_normalise_name(f[4], fl[4], out->name, &out->name_len)) != PDNS_OK)
		return why;
	return pdns_normalise_rdata(out, f[6], fl[6]);
}

/* ---- COF ---- */

static int json_u64(json_t *v, uint64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e15) {
		*out = (uint64_t)json_real_value(v);
		return 0;
	}
	return -1;
}

static int cof_one(json_t *el, struct pdns_rec *r, pdns_rec_cb cb, void *arg, uint64_t *skipped)
{
	if (!json_is_string(el)) {
		(*skipped)++;
		return 0;
	}
	const char *s = json_string_value(el);
	size_t n = json_string_length(el);
	if (pdns_check_text((const uint8_t *)s, n) != PDNS_OK ||
	    pdns_normalise_rdata(r, (const uint8_t *)s, n) != PDNS_OK) {
		(*skipped)++;
		return 0;
	}
	return cb(arg, r);
}

enum pdns_reason pdns_parse_cof(const uint8_t *buf, size_t len, struct pdns_rec *r,
                                pdns_rec_cb cb, void *arg, uint64_t *skipped)
{
	enum pdns_reason why = PDNS_R_JSON;
	json_t *o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL || !json_is_object(o))
		goto out;
	json_t *name = json_object_get(o, "rrname"), *type = json_object_get(o, "rrtype");
	json_t *rdata = json_object_get(o, "rdata");
	if (!json_is_string(name) || rdata == NULL)
		goto out;
	if (json_u64(json_object_get(o, "time_first"), &r->ts) != 0 ||
	    json_u64(json_object_get(o, "time_last"), &r->ts_last) != 0 || r->ts_last < r->ts)
		goto out;
	r->count = 1;
	json_t *cnt = json_object_get(o, "count");
	if (cnt != NULL && json_u64(cnt, &r->count) != 0)
		goto out;
	r->ttl = 0;
	if (json_is_string(type)) {
		if (pdns_rrtype_parse(json_string_value(type), json_string_length(type), &r->rrtype)) {
			why = PDNS_R_TYPE;
			goto out;
		}
	} else if (json_is_integer(type) && json_integer_value(type) >= 0 &&
	           json_integer_value(type) <= 65535) {
		r->rrtype = (uint16_t)json_integer_value(type);
	} else {
		why = PDNS_R_TYPE;
		goto out;
	}
	const char *ns = json_string_value(name);
	size_t nl = json_string_length(name);
	if ((why = pdns_check_text((const uint8_t *)ns, nl)) != PDNS_OK)
		goto out;
	if ((why = pdns_normalise_name((const uint8_t *)ns, nl, r->name, &r->name_len)) != PDNS_OK)
		goto out;
	why = PDNS_OK;
	if (json_is_array(rdata)) {
		size_t i;
		json_t *el;
		json_array_foreach(rdata, i, el)
		{
			if (cof_one(el, r, cb, arg, skipped) != 0) {
				why = PDNS_R__COUNT;
				break;
			}
		}
	} else if (cof_one(rdata, r, cb, arg, skipped) != 0) {
		why = PDNS_R__COUNT;
	}
out:
	json_decref(o);
	return why;
}
