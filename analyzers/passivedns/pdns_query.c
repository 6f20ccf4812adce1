/*
 * pdns_query.c — lookups in the passive DNS store, answered as COF objects (pdns_query.h).
 *
 * Every answer is built from index keys: a name lookup is a scan of the records of its name id
 * (rec and rcx merged in key order, pdns_rec_iter), an address or rdata lookup a prefix scan of
 * rdx followed by one record get per hit, a
 * wildcard a prefix scan of the reversed names in s2i with a rec scan per name. Strings are
 * fetched from i2s per record; nothing is cached across queries, so many threads may query at
 * once with one read transaction each. The cursor is the hex of the last index key given (or
 * examined), tagged with the index it belongs to, and a query checks that a cursor belongs to
 * it before continuing.
 */
#include "pdns_query.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OBJ_MAX (PDNS_RDATA_MAX * 6 + PDNS_NAME_MAX * 6 + 64 * PDNS_MAX_SENSORS + 512)

void pdns_query_init(struct pdns_query *q, enum pdns_qkind kind)
{
	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->limit = PDNS_QUERY_LIMIT_DEFAULT;
}

int pdns_query_set_term(struct pdns_query *q, const char *term, const char **why)
{
	size_t len = strlen(term);
	while (len > 0 && (term[len - 1] == ' '))
		len--;
	while (len > 0 && term[0] == ' ') {
		term++;
		len--;
	}
	if (len == 0) {
		*why = "empty query";
		return -1;
	}
	if (len > PDNS_RDATA_MAX) {
		*why = "query too long";
		return -1;
	}
	if (pdns_check_text((const uint8_t *)term, len) != PDNS_OK) {
		*why = "query is not UTF-8 text";
		return -1;
	}
	memcpy(q->term, term, len);
	q->term[len] = 0;
	q->term_len = len;
	return 0;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == 0)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int pdns_query_set_param(struct pdns_query *q, const char *key, const char *value,
                         const char **why)
{
	uint64_t v;
	if (value == NULL)
		value = "";
	if (strcmp(key, "rrtype") == 0 || strcmp(key, "type") == 0) {
		const char *p = value;
		q->ntypes = 0;
		while (*p) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			if (q->ntypes == PDNS_QUERY_TYPES_MAX ||
			    pdns_rrtype_parse(p, len, &q->types[q->ntypes]) != 0) {
				*why = "rrtype: unknown type (a mnemonic, TYPEnnn or a number)";
				return -1;
			}
			q->ntypes++;
			p = end ? end + 1 : p + len;
		}
		if (q->ntypes == 0) {
			*why = "rrtype: empty";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "since") == 0 || strcmp(key, "until") == 0) {
		if (parse_uint(value, (uint64_t)1 << 40, &v) != 0) {
			*why = "since/until: Unix seconds expected";
			return -1;
		}
		*(key[0] == 's' ? &q->since : &q->until) = v;
		return 0;
	}
	if (strcmp(key, "limit") == 0) {
		if (parse_uint(value, PDNS_QUERY_LIMIT_MAX, &v) != 0 || v == 0) {
			*why = "limit: a number from 1 to 100000 expected";
			return -1;
		}
		q->limit = (size_t)v;
		return 0;
	}
	if (strcmp(key, "cursor") == 0) {
		size_t len = strlen(value);
		if (len < 3 || len > PDNS_CURSOR_MAX || (len - 1) % 2 != 0 ||
		    (value[0] != 'r' && value[0] != 'x')) {
			*why = "cursor: not a cursor of this server";
			return -1;
		}
		q->cursor_tag = value[0];
		q->cursor_len = (len - 1) / 2;
		for (size_t i = 0; i < q->cursor_len; i++) {
			int hi = hexval(value[1 + 2 * i]), lo = hexval(value[2 + 2 * i]);
			if (hi < 0 || lo < 0) {
				*why = "cursor: not a cursor of this server";
				return -1;
			}
			q->cursor[i] = (uint8_t)(hi << 4 | lo);
		}
		return 0;
	}
	return 1;
}

/* ---- JSON ---- */

size_t pdns_json_str(char *buf, size_t at, size_t cap, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (at + 2 > cap)
		return 0;
	buf[at++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (at + 8 > cap)
			return 0;
		if (c == '"' || c == '\\') {
			buf[at++] = '\\';
			buf[at++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			buf[at++] = '\\';
			buf[at++] = 'u';
			buf[at++] = '0';
			buf[at++] = '0';
			buf[at++] = hex[c >> 4];
			buf[at++] = hex[c & 15];
		} else {
			buf[at++] = (char)c;
		}
	}
	if (at + 1 > cap)
		return 0;
	buf[at++] = '"';
	return at;
}

/* ---- running ---- */

struct run {
	struct pdns_store *st;
	const struct pdns_dbis *d;
	MDB_txn *txn;
	const struct pdns_query *q;
	struct pdns_query_result *res;
	struct pdns_expire expire;
	uint64_t now;
	size_t scan_max;
	pdns_emit_cb cb;
	void *arg;
	char *obj;
	bool stopped;     /* limit reached with more to come, scan budget spent, or cb stop */
	uint8_t last[PDNS_REC_KEY_MAX]; /* last key given or examined */
	size_t last_len;
	char last_tag;
	const char *why;
	/* lookups repeated from one record to the next (the records of one name, one sensor):
	 * the values point into the map and stay valid for the read transaction */
	uint32_t name_id;
	MDB_val name;
	uint32_t sensor_id;
	char sensor[40];
};

static int get_str(struct run *r, uint32_t id, MDB_val *out)
{
	return pdns_store_get_str(r->st, r->txn, id, out);
}

static bool type_ok(const struct pdns_query *q, uint16_t t)
{
	if (q->ntypes == 0)
		return true;
	for (size_t i = 0; i < q->ntypes; i++)
		if (q->types[i] == t)
			return true;
	return false;
}

static void set_last(struct run *r, char tag, const uint8_t *k, size_t len)
{
	r->last_tag = tag;
	r->last_len = len;
	memcpy(r->last, k, len);
}

static void make_cursor(struct run *r)
{
	static const char hex[] = "0123456789abcdef";
	char *c = r->res->next_cursor;
	c[0] = r->last_tag;
	for (size_t i = 0; i < r->last_len; i++) {
		c[1 + 2 * i] = hex[r->last[i] >> 4];
		c[2 + 2 * i] = hex[r->last[i] & 15];
	}
	c[1 + 2 * r->last_len] = 0;
	r->res->more = true;
}

/*
 * One record (logical key + decoded value). Returns 0 to go on, 1 when the scan must stop.
 * tag/ikey: the index key that led here (for the cursor).
 */
static int visit(struct run *r, const uint8_t *key, size_t klen, const struct pdns_val *vp,
                 char tag, const uint8_t *ikey, size_t iklen)
{
	const struct pdns_val v = *vp;
	char tname[PDNS_TYPE_TEXT_MAX];
	char addr[INET6_ADDRSTRLEN];
	MDB_val name, rdata;
	size_t at = 0, cap = OBJ_MAX;
	char *o = r->obj;

	if (r->res->scanned++ >= r->scan_max) {
		r->stopped = true;
		make_cursor(r); /* continue after the last key examined */
		return 1;
	}
	if (klen < 11)
		goto skip;
	uint16_t type = (uint16_t)((key[4] << 8) | key[5]);
	if (!type_ok(r->q, type) || (r->q->since && v.last < r->q->since) ||
	    (r->q->until && v.first > r->q->until))
		goto skip;
	uint64_t exp = pdns_expire_of(&r->expire, type);
	if (exp && v.last + exp < r->now)
		goto skip;
	if (r->res->emitted == r->q->limit) {
		/* one more matching record exists: stop with a cursor after the last one given */
		r->stopped = true;
		make_cursor(r);
		return 1;
	}
	uint32_t nid = pdns_get_be32(key);
	if (nid != r->name_id || r->name.mv_data == NULL) {
		if (get_str(r, nid, &r->name) != 0) {
			r->name.mv_data = NULL;
			goto skip;
		}
		r->name_id = nid;
	}
	name = r->name;
	uint8_t kind = key[6];
	if (kind == PDNS_RD_V4 && klen == 11) {
		inet_ntop(AF_INET, key + 7, addr, sizeof(addr));
		rdata.mv_data = addr;
		rdata.mv_size = strlen(addr);
	} else if (kind == PDNS_RD_V6 && klen == 23) {
		inet_ntop(AF_INET6, key + 7, addr, sizeof(addr));
		rdata.mv_data = addr;
		rdata.mv_size = strlen(addr);
	} else if (kind == PDNS_RD_STR && klen == 11) {
		if (get_str(r, pdns_get_be32(key + 7), &rdata) != 0)
			goto skip;
	} else {
		goto skip;
	}
	pdns_rrtype_name(type, tname);
	memcpy(o, "{\"rrname\":", 10);
	at = 10;
	if ((at = pdns_json_str(o, at, cap, name.mv_data, name.mv_size)) == 0)
		goto skip;
	at += (size_t)snprintf(o + at, cap - at, ",\"rrtype\":\"%s\",\"rdata\":[", tname);
	if ((at = pdns_json_str(o, at, cap, rdata.mv_data, rdata.mv_size)) == 0)
		goto skip;
	at += (size_t)snprintf(o + at, cap - at,
	                       "],\"time_first\":%" PRIu64 ",\"time_last\":%" PRIu64
	                       ",\"count\":%" PRIu64,
	                       v.first, v.last, v.count);
	for (size_t i = 0; i < v.nsensors; i++) {
		uint8_t sk[5];
		MDB_val skv = {5, sk}, uv;
		char ubuf[40];
		const char *u = ubuf;
		if (v.sensors[i] != 0 && v.sensors[i] == r->sensor_id) {
			u = r->sensor;
		} else {
			sk[0] = 'i';
			pdns_be32(sk + 1, v.sensors[i]);
			if (mdb_get(r->txn, r->d->sensor, &skv, &uv) != 0 || uv.mv_size != 16)
				continue;
			const uint8_t *b = uv.mv_data;
			snprintf(ubuf, sizeof(ubuf),
			         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
			         b[12], b[13], b[14], b[15]);
			if (i == 0) {
				r->sensor_id = v.sensors[i];
				memcpy(r->sensor, ubuf, sizeof(r->sensor));
			}
		}
		if (i == 0)
			at += (size_t)snprintf(o + at, cap - at, ",\"sensor_id\":\"%s\",\"sensor_ids\":[\"%s\"",
			                       u, u);
		else
			at += (size_t)snprintf(o + at, cap - at, ",\"%s\"", u);
	}
	if (v.nsensors > 0)
		o[at++] = ']';
	o[at++] = '}';
	o[at] = 0;
	set_last(r, tag, ikey, iklen);
	r->res->emitted++;
	if (r->cb(r->arg, o, at) != 0) {
		r->stopped = true;
		return 1;
	}
	return 0;
skip:
	set_last(r, tag, ikey, iklen);
	return 0;
}

/* The records of a name id (rec, rec6 and rcx merged), after `after` when given. */
static int scan_rec(struct run *r, const uint8_t prefix[4], const uint8_t *after, size_t alen)
{
	struct pdns_rec_iter it;
	struct pdns_val v;
	const uint8_t *k;
	size_t klen;
	int rc = pdns_rec_iter_open(r->st, r->txn, &it, prefix, after, alen);
	if (rc != 0)
		return rc;
	while ((rc = pdns_rec_iter_next(&it, &k, &klen, &v)) == 0)
		if (visit(r, k, klen, &v, 'r', k, klen) != 0)
			break;
	pdns_rec_iter_close(&it);
	return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : rc;
}

/*
 * rdx (rdx6 for IPv6) entries with the prefix kind|rdata, then their records. An index key is
 * an LMDB key (rdx: the prefix but its last 2 bytes; rdx6: '6' + 2 address bytes) and a
 * fixed-size duplicate (the rest): one key's duplicates from the first with the prefix's
 * remaining bytes (or after the cursor) on.
 */
static int scan_rdx(struct run *r, const uint8_t *prefix, size_t plen)
{
	MDB_cursor *c;
	MDB_val k, d;
	uint8_t ik[PDNS_REC_KEY_MAX];
	const uint8_t *after = r->q->cursor_len ? r->q->cursor : NULL;
	size_t alen = r->q->cursor_len, ilen = plen + 6;
	if (ilen > PDNS_REC_KEY_MAX || ilen <= PDNS_RDX_DUP)
		return 0;
	size_t dsz = pdns_rdx_dup(ilen); /* rdx, or rdx6 for IPv6 */
	size_t klen = ilen - dsz, tail = plen - klen; /* duplicate bytes of the prefix */
	if (after != NULL && (alen != ilen || memcmp(after, prefix, plen) != 0)) {
		r->why = "cursor: not a cursor of this query";
		return -1;
	}
	if (after != NULL) {
		memcpy(ik, after, ilen);
	} else {
		memcpy(ik, prefix, plen);
		memset(ik + plen, 0, 6);
	}
	int rc = mdb_cursor_open(r->txn, ilen == 23 ? r->d->rdx6 : r->d->rdx, &c);
	if (rc != 0)
		return rc;
	pdns_rdx_split(ik, ilen, &k, &d);
	rc = mdb_cursor_get(c, &k, &d, MDB_GET_BOTH_RANGE);
	if (rc == 0 && after && d.mv_size == dsz && memcmp(d.mv_data, after + klen, dsz) == 0)
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT_DUP);
	while (rc == 0 && d.mv_size == dsz && memcmp(d.mv_data, prefix + klen, tail) == 0) {
		uint8_t x[PDNS_REC_KEY_MAX], rk[PDNS_REC_KEY_MAX];
		size_t rdl = ilen - 6;
		memcpy(x, prefix, klen);
		memcpy(x + klen, d.mv_data, dsz);
		memcpy(rk, x + rdl + 2, 4);
		memcpy(rk + 4, x + rdl, 2);
		memcpy(rk + 6, x, rdl);
		struct pdns_val rv;
		int g = pdns_store_rec_get(r->st, r->txn, rk, ilen, &rv);
		if (g == 0) {
			if (visit(r, rk, ilen, &rv, 'x', x, ilen) != 0)
				break;
		} else if (g != MDB_NOTFOUND) {
			rc = g;
			break;
		}
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT_DUP);
	}
	mdb_cursor_close(c);
	return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : rc;
}

static int run_name(struct run *r, const char *name, size_t len)
{
	uint32_t id;
	uint8_t p[4];
	int rc = pdns_store_str_id(r->st, r->txn, name, len, &id);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	pdns_be32(p, id);
	if (r->q->cursor_len) {
		if (r->q->cursor_tag != 'r' || r->q->cursor_len < 4 || memcmp(r->q->cursor, p, 4)) {
			r->why = "cursor: not a cursor of this query";
			return -1;
		}
		return scan_rec(r, p, r->q->cursor, r->q->cursor_len);
	}
	return scan_rec(r, p, NULL, 0);
}

static int run_wildcard(struct run *r, const char *suffix, size_t slen)
{
	uint8_t prefix[PDNS_NAME_MAX + 2], start[PDNS_STR_KEY_MAX];
	size_t plen = slen + 1, startlen = 0;
	const uint8_t *after = NULL;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	for (size_t i = 0; i < slen; i++)
		prefix[i] = (uint8_t)suffix[slen - 1 - i];
	prefix[slen] = '.';
	if (r->q->cursor_len) {
		MDB_val nm;
		if (r->q->cursor_tag != 'r' || r->q->cursor_len < 4 ||
		    get_str(r, pdns_get_be32(r->q->cursor), &nm) != 0 || nm.mv_size > PDNS_NAME_MAX ||
		    nm.mv_size < plen) {
			r->why = "cursor: not a cursor of this query";
			return -1;
		}
		startlen = pdns_str_key(nm.mv_data, nm.mv_size, start);
		if (memcmp(start, prefix, plen) != 0) {
			r->why = "cursor: not a cursor of this query";
			return -1;
		}
		after = r->q->cursor;
	} else {
		memcpy(start, prefix, plen);
		startlen = plen;
	}
	if ((rc = mdb_cursor_open(r->txn, r->d->s2i, &c)) != 0)
		return rc;
	k.mv_data = start;
	k.mv_size = startlen;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && !r->stopped && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
		if (k.mv_size <= PDNS_NAME_MAX && v.mv_size == 4) {
			uint8_t p[4];
			memcpy(p, v.mv_data, 4);
			if (after && memcmp(after, p, 4) == 0) {
				rc = scan_rec(r, p, after, r->q->cursor_len);
			} else {
				/* a cursor made before this name's records continues with all of them:
				 * the bare name id sorts before every record key of the name */
				set_last(r, 'r', p, 4);
				if (r->res->scanned++ >= r->scan_max) {
					r->stopped = true;
					make_cursor(r);
					break;
				}
				rc = scan_rec(r, p, NULL, 0);
			}
			after = NULL;
			if (rc != 0 || r->stopped)
				break;
			/* every record of this name examined: a cursor continues after them */
			uint8_t end[11] = {p[0], p[1], p[2], p[3], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
			set_last(r, 'r', end, sizeof(end));
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : rc;
}

static int run_rdata_str(struct run *r, const char *s, size_t len)
{
	uint32_t id;
	uint8_t p[5];
	int rc = pdns_store_str_id(r->st, r->txn, s, len, &id);
	if (rc == MDB_NOTFOUND) {
		/* a name spelled another way (case, trailing dot, IDN) */
		char n[PDNS_NAME_MAX + 1];
		size_t nl;
		if (pdns_normalise_name((const uint8_t *)s, len, n, &nl) != PDNS_OK)
			return 0;
		rc = pdns_store_str_id(r->st, r->txn, n, nl, &id);
		if (rc == MDB_NOTFOUND)
			return 0;
	}
	if (rc != 0)
		return rc;
	size_t plen = pdns_rdata_key(PDNS_RD_STR, NULL, id, p);
	return scan_rdx(r, p, plen);
}

int pdns_query_run(struct pdns_store *st, const struct pdns_query *q, pdns_emit_cb cb,
                   void *arg, struct pdns_query_result *res, const char **why)
{
	struct run r = {.st = st, .d = pdns_store_dbis(st), .q = q, .res = res, .cb = cb,
	                .arg = arg};
	int rc;
	uint8_t kind, addr[16];

	memset(res, 0, sizeof(*res));
	*why = NULL;
	if (q->term_len == 0) {
		*why = "empty query";
		return -1;
	}
	r.now = q->now ? q->now : (uint64_t)time(NULL);
	r.scan_max = q->scan_max ? q->scan_max : PDNS_QUERY_SCAN_MAX;
	if ((r.obj = malloc(OBJ_MAX)) == NULL) {
		*why = "out of memory";
		return -2;
	}
	if ((rc = pdns_store_read_begin(st, &r.txn)) != 0) {
		free(r.obj);
		*why = mdb_strerror(rc);
		return -2;
	}
	if (pdns_store_load_expire(st, r.txn, &r.expire) != 0)
		r.expire.n = 0;

	if (pdns_parse_addr(q->term, &kind, addr)) {
		uint8_t p[17];
		size_t plen = pdns_rdata_key(kind, addr, 0, p);
		if (q->cursor_len && (q->cursor_tag != 'x' || q->cursor_len < plen ||
		                      memcmp(q->cursor, p, plen) != 0)) {
			r.why = "cursor: not a cursor of this query";
			rc = -1;
		} else {
			rc = scan_rdx(&r, p, plen);
		}
	} else if (q->kind == PDNS_Q_FQUERY) {
		if (q->cursor_len && q->cursor_tag != 'x') {
			r.why = "cursor: not a cursor of this query";
			rc = -1;
		} else {
			rc = run_rdata_str(&r, q->term, q->term_len);
		}
	} else {
		char n[PDNS_NAME_MAX + 1];
		size_t nl;
		bool wild = q->term_len > 2 && q->term[0] == '*' && q->term[1] == '.';
		const char *t = wild ? q->term + 2 : q->term;
		size_t tl = wild ? q->term_len - 2 : q->term_len;
		enum pdns_reason pr = pdns_normalise_name((const uint8_t *)t, tl, n, &nl);
		if (pr != PDNS_OK) {
			r.why = pr == PDNS_R_OVERSIZE ? "name longer than 253 characters" : "bad name";
			rc = -1;
		} else if (wild) {
			rc = run_wildcard(&r, n, nl);
		} else {
			rc = run_name(&r, n, nl);
		}
	}
	mdb_txn_abort(r.txn);
	free(r.obj);
	if (rc == -1) {
		*why = r.why ? r.why : "bad query";
		return -1;
	}
	if (rc != 0) {
		*why = mdb_strerror(rc);
		return -2;
	}
	return 0;
}

/* ---- /info ---- */

int pdns_query_info(struct pdns_store *st, char **out)
{
	const struct pdns_dbis *d = pdns_store_dbis(st);
	MDB_txn *txn;
	MDB_stat s_rec, s_rec6, s_rcx, s_str, s_sen, s_env;
	MDB_envinfo info;
	MDB_cursor *c;
	MDB_val k, v;
	struct pdns_expire e;
	size_t cap = 8192, at = 0;
	char *b = malloc(cap);
	int rc;

	*out = NULL;
	if (b == NULL)
		return -1;
	if (pdns_store_read_begin(st, &txn) != 0) {
		free(b);
		return -1;
	}
	if (mdb_stat(txn, d->rec, &s_rec) != 0 || mdb_stat(txn, d->rec6, &s_rec6) != 0 ||
	    mdb_stat(txn, d->rcx, &s_rcx) != 0 || mdb_stat(txn, d->s2i, &s_str) != 0 ||
	    mdb_stat(txn, d->sensor, &s_sen) != 0 || mdb_env_stat(pdns_store_env(st), &s_env) != 0 ||
	    mdb_env_info(pdns_store_env(st), &info) != 0)
		goto err;
	uint64_t used = (uint64_t)(info.me_last_pgno + 1) * s_env.ms_psize;
	at += (size_t)snprintf(b + at, cap - at,
	                       "{\"software\":\"d4-pdns-lookup\",\"version\":\"%s\","
	                       "\"store\":{\"records\":%zu,\"strings\":%zu,\"sensors\":%zu,"
	                       "\"used_bytes\":%" PRIu64 ",\"map_bytes\":%zu,\"page_size\":%u},"
	                       "\"stats\":{",
	                       D4_VERSION_STRING,
	                       s_rec.ms_entries + s_rec6.ms_entries + s_rcx.ms_entries,
	                       s_str.ms_entries, s_sen.ms_entries / 2, used, info.me_mapsize, s_env.ms_psize);
	if ((rc = mdb_cursor_open(txn, d->meta, &c)) != 0)
		goto err;
	k.mv_data = "stat.";
	k.mv_size = 5;
	bool first = true;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size > 5 && k.mv_size < 64 && memcmp(k.mv_data, "stat.", 5) == 0) {
		uint64_t n = 0;
		if (v.mv_size == 8)
			for (int j = 7; j >= 0; j--)
				n = (n << 8) | ((const uint8_t *)v.mv_data)[j];
		if (cap - at < 128)
			break;
		at += (size_t)snprintf(b + at, cap - at, "%s\"%.*s\":%" PRIu64, first ? "" : ",",
		                       (int)k.mv_size - 5, (const char *)k.mv_data + 5, n);
		first = false;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	at += (size_t)snprintf(b + at, cap - at, "},\"expire\":{");
	if (pdns_store_load_expire(st, txn, &e) == 0) {
		for (size_t i = 0; i < e.n; i++) {
			char t[PDNS_TYPE_TEXT_MAX];
			pdns_rrtype_name(e.type[i], t);
			at += (size_t)snprintf(b + at, cap - at, "%s\"%s\":%" PRIu64, i ? "," : "", t,
			                       e.seconds[i]);
		}
	}
	at += (size_t)snprintf(b + at, cap - at, "},\"limit_max\":%d,\"limit_default\":%d}",
	                       PDNS_QUERY_LIMIT_MAX, PDNS_QUERY_LIMIT_DEFAULT);
	mdb_txn_abort(txn);
	*out = b;
	return 0;
err:
	mdb_txn_abort(txn);
	free(b);
	return -1;
}
