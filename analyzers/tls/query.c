/*
 * query.c — read side of the TLS store (see query.h; layout in store.c and
 * docs/tls-analyzer.md). Each call: one read transaction, cursors over sorted keys, JSON out.
 *
 * Cursors are the last key of the page written in hex (links: the linked kind+value; sessions
 * and findings: the id in decimal), prefixed with a letter naming the list, so that a cursor
 * of one list is refused by another.
 */
#include "query.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGG_SIZE 24

static unsigned page_limit(unsigned limit)
{
	if (!limit)
		return TLS_QUERY_DEFAULT_LIMIT;
	return limit > TLS_QUERY_MAX_LIMIT ? TLS_QUERY_MAX_LIMIT : limit;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static json_t *load_json(const MDB_val *v)
{
	json_t *j = json_loadb(v->mv_data, v->mv_size, 0, NULL);
	return j ? j : json_null();
}

static bool all_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

/*
 * The key of a pivot (kind byte + normalized value) into out; returns its length, or a
 * negative error. A cert SHA-1 is mapped to its SHA-256 through cert_sha1 (txn needed).
 */
static int pivot_key(MDB_txn *txn, const struct tls_store_dbs *d, const char *kind_name,
                     const char *value, uint8_t *out)
{
	int kind = tls_pivot_from_name(kind_name ? kind_name : "");
	if (!kind || !value || !*value)
		return -EINVAL;
	char v[TLS_STORE_VALUE_MAX + 1];
	size_t n = strlen(value);
	if (n > TLS_STORE_VALUE_MAX)
		n = TLS_STORE_VALUE_MAX;
	memcpy(v, value, n);
	v[n] = 0;
	switch (kind) {
	case TLS_PIVOT_JA3:
	case TLS_PIVOT_JA3S:
	case TLS_PIVOT_CERT:
	case TLS_PIVOT_KEY:
		if (!all_hex(v))
			return -EINVAL;
		for (char *p = v; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		break;
	case TLS_PIVOT_SERVER: {
		uint8_t a[16];
		if (inet_pton(AF_INET, v, a) == 1) {
			inet_ntop(AF_INET, a, v, sizeof(v));
		} else if (inet_pton(AF_INET6, v, a) == 1) {
			static const uint8_t v4pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
			if (!memcmp(a, v4pre, 12))
				inet_ntop(AF_INET, a + 12, v, sizeof(v));
			else
				inet_ntop(AF_INET6, a, v, sizeof(v));
		} else {
			return -EINVAL;
		}
		break;
	}
	default: break;
	}
	n = strlen(v);
	if (kind == TLS_PIVOT_CERT && n == 40) {
		MDB_val k = {n, v}, r;
		int rc = mdb_get(txn, d->cert_sha1, &k, &r);
		if (rc)
			return rc == MDB_NOTFOUND ? -ENOENT : rc;
		n = r.mv_size < TLS_STORE_VALUE_MAX ? r.mv_size : TLS_STORE_VALUE_MAX;
		memcpy(v, r.mv_data, n);
	}
	out[0] = (uint8_t)kind;
	memcpy(out + 1, v, n);
	return (int)(n + 1);
}

static void agg_to_json(json_t *j, const MDB_val *v)
{
	uint64_t agg[3] = {0, 0, 0};
	if (v->mv_size >= AGG_SIZE)
		memcpy(agg, v->mv_data, AGG_SIZE);
	json_object_set_new(j, "first_seen", json_integer((json_int_t)agg[0]));
	json_object_set_new(j, "last_seen", json_integer((json_int_t)agg[1]));
	json_object_set_new(j, "count", json_integer((json_int_t)agg[2]));
}

static char *hex_encode(const uint8_t *p, size_t n, char prefix)
{
	char *s = malloc(2 * n + 2);
	if (!s)
		return NULL;
	s[0] = prefix;
	for (size_t i = 0; i < n; i++)
		sprintf(s + 1 + 2 * i, "%02x", p[i]);
	s[2 * n + 1] = 0;
	return s;
}

static int hex_decode(const char *s, uint8_t *out, size_t max)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > max)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned x;
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &x) != 1)
			return -EINVAL;
		out[i] = (uint8_t)x;
	}
	return (int)(n / 2);
}

static json_t *fail(int *err, int rc)
{
	*err = rc;
	return NULL;
}

json_t *tls_query_pivot(struct tls_store *st, const char *kind, const char *value,
                        const char *cursor, unsigned limit, int *err)
{
	const struct tls_store_dbs *d = tls_store_dbs(st);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	json_t *out = NULL, *links = NULL;
	uint8_t key[TLS_STORE_VALUE_MAX + 2], start[2 * TLS_STORE_VALUE_MAX + 4];
	int rc = tls_store_txn_read(d->env, &txn);
	if (rc)
		return fail(err, rc);
	int kl = pivot_key(txn, d, kind, value, key);
	if (kl < 0) {
		rc = kl;
		goto out;
	}
	MDB_val k = {(size_t)kl, key}, v;
	if ((rc = mdb_get(txn, d->pivots, &k, &v))) {
		rc = rc == MDB_NOTFOUND ? -ENOENT : rc;
		goto out;
	}
	out = json_object();
	links = json_array();
	if (!out || !links) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_set_new(out, "kind", json_string(tls_pivot_name(key[0])));
	json_object_set_new(out, "value", json_stringn((const char *)key + 1, (size_t)kl - 1));
	agg_to_json(out, &v);
	if (v.mv_size > AGG_SIZE)
		json_object_set_new(out, "detail", json_stringn((const char *)v.mv_data + AGG_SIZE,
		                                                v.mv_size - AGG_SIZE));
	if (key[0] == TLS_PIVOT_CERT || key[0] == TLS_PIVOT_KEY) {
		MDB_val hk = {(size_t)kl - 1, key + 1}, hv;
		if (mdb_get(txn, key[0] == TLS_PIVOT_CERT ? d->certs : d->keys, &hk, &hv) == 0)
			json_object_set_new(out, key[0] == TLS_PIVOT_CERT ? "cert" : "key", load_json(&hv));
	}
	/* links: keys "<pivot>\0<kind><value>", from the cursor on */
	memcpy(start, key, (size_t)kl);
	start[kl] = 0;
	size_t plen = (size_t)kl + 1, slen = plen;
	bool skip_first = false;
	if (cursor && *cursor) {
		if (cursor[0] != 'L') {
			rc = -EINVAL;
			goto out;
		}
		int cl = hex_decode(cursor + 1, start + plen, TLS_STORE_VALUE_MAX + 1);
		if (cl <= 0) {
			rc = -EINVAL;
			goto out;
		}
		slen = plen + (size_t)cl;
		skip_first = true;
	}
	if ((rc = mdb_cursor_open(txn, d->links, &cur)))
		goto out;
	unsigned max = page_limit(limit), n = 0;
	MDB_val ck = {slen, start}, cv;
	rc = mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE);
	if (rc == 0 && skip_first && ck.mv_size == slen && !memcmp(ck.mv_data, start, slen))
		rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
	const uint8_t *last = NULL;
	size_t last_len = 0;
	bool more = false;
	while (rc == 0 && ck.mv_size > plen && !memcmp(ck.mv_data, start, plen)) {
		if (n == max) {
			more = true;
			break;
		}
		const uint8_t *o = (const uint8_t *)ck.mv_data + plen;
		size_t ol = ck.mv_size - plen;
		json_t *l = json_object();
		if (!l) {
			rc = -ENOMEM;
			goto out;
		}
		json_object_set_new(l, "kind", json_string(tls_pivot_name(o[0])));
		json_object_set_new(l, "value", json_stringn((const char *)o + 1, ol - 1));
		agg_to_json(l, &cv);
		json_array_append_new(links, l);
		last = o;
		last_len = ol;
		n++;
		rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
	}
	if (rc && rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	json_object_set(out, "links", links);
	char *next = more && last ? hex_encode(last, last_len, 'L') : NULL;
	json_object_set_new(out, "next", next ? json_string(next) : json_null());
	free(next);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	json_decref(links);
	if (rc) {
		json_decref(out);
		return fail(err, rc);
	}
	*err = 0;
	return out;
}

static int parse_id_cursor(const char *cursor, char tag, uint64_t *id)
{
	*id = 0;
	if (!cursor || !*cursor)
		return 0;
	if (cursor[0] != tag)
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(cursor + 1, &end, 10);
	if (errno || end == cursor + 1 || *end)
		return -EINVAL;
	*id = v;
	return 1;
}

static json_t *next_id(bool more, char tag, uint64_t id)
{
	if (!more)
		return json_null();
	char buf[32];
	snprintf(buf, sizeof(buf), "%c%llu", tag, (unsigned long long)id);
	return json_string(buf);
}

json_t *tls_query_sessions(struct tls_store *st, const char *kind, const char *value,
                           const char *cursor, unsigned limit, int *err)
{
	const struct tls_store_dbs *d = tls_store_dbs(st);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	json_t *out = NULL, *arr = NULL;
	uint8_t key[TLS_STORE_VALUE_MAX + 2];
	uint64_t after = 0;
	int rc = parse_id_cursor(cursor, 'S', &after);
	if (rc < 0)
		return fail(err, rc);
	bool have_cursor = rc == 1;
	if ((rc = tls_store_txn_read(d->env, &txn)))
		return fail(err, rc);
	int kl = pivot_key(txn, d, kind, value, key);
	if (kl < 0) {
		rc = kl;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, d->psess, &cur)))
		goto out;
	uint8_t idk[8];
	put_be64(idk, have_cursor ? after + 1 : 0);
	MDB_val k = {(size_t)kl, key}, v = {8, idk};
	rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
	if (rc == MDB_NOTFOUND) {
		/* no session at or after the cursor: an empty page if the pivot exists */
		MDB_val k2 = {(size_t)kl, key};
		rc = mdb_cursor_get(cur, &k2, &v, MDB_SET);
		if (rc)
			goto out;
		rc = MDB_NOTFOUND;
	} else if (rc) {
		goto out;
	}
	out = json_object();
	arr = json_array();
	if (!out || !arr) {
		rc = -ENOMEM;
		goto out;
	}
	unsigned max = page_limit(limit), n = 0;
	uint64_t last = 0;
	bool more = false;
	while (rc == 0) {
		if (n == max) {
			more = true;
			break;
		}
		last = get_be64(v.mv_data);
		MDB_val sk = {8, v.mv_data}, sv;
		if (mdb_get(txn, d->sessions, &sk, &sv) == 0)
			json_array_append_new(arr, load_json(&sv));
		n++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
	}
	if (rc && rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	json_object_set(out, "sessions", arr);
	json_object_set_new(out, "next", next_id(more, 'S', last));
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	json_decref(arr);
	if (rc) {
		json_decref(out);
		return fail(err, rc == MDB_NOTFOUND ? -ENOENT : rc);
	}
	*err = 0;
	return out;
}

json_t *tls_query_findings(struct tls_store *st, const char *cursor, unsigned limit, int *err)
{
	const struct tls_store_dbs *d = tls_store_dbs(st);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	json_t *out = NULL, *arr = NULL;
	uint64_t after = 0;
	int rc = parse_id_cursor(cursor, 'F', &after);
	if (rc < 0)
		return fail(err, rc);
	if ((rc = tls_store_txn_read(d->env, &txn)))
		return fail(err, rc);
	if ((rc = mdb_cursor_open(txn, d->findings, &cur)))
		goto out;
	out = json_object();
	arr = json_array();
	if (!out || !arr) {
		rc = -ENOMEM;
		goto out;
	}
	uint8_t idk[8];
	put_be64(idk, after + 1);
	MDB_val k = {8, idk}, v;
	unsigned max = page_limit(limit), n = 0;
	uint64_t last = 0;
	bool more = false;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (n == max) {
			more = true;
			break;
		}
		if (k.mv_size == 8)
			last = get_be64(k.mv_data);
		json_array_append_new(arr, load_json(&v));
		n++;
	}
	if (rc && rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	json_object_set(out, "findings", arr);
	json_object_set_new(out, "next", next_id(more, 'F', last));
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	json_decref(arr);
	if (rc) {
		json_decref(out);
		return fail(err, rc);
	}
	*err = 0;
	return out;
}

int tls_query_cert_der(struct tls_store *st, const char *hash, uint8_t **der, size_t *len)
{
	const struct tls_store_dbs *d = tls_store_dbs(st);
	MDB_txn *txn;
	uint8_t key[TLS_STORE_VALUE_MAX + 2];
	int rc = tls_store_txn_read(d->env, &txn);
	if (rc)
		return rc;
	int kl = pivot_key(txn, d, "cert", hash, key);
	if (kl < 0) {
		rc = kl;
		goto out;
	}
	MDB_val k = {(size_t)kl - 1, key + 1}, v;
	if ((rc = mdb_get(txn, d->der, &k, &v))) {
		rc = rc == MDB_NOTFOUND ? -ENOENT : rc;
		goto out;
	}
	*der = malloc(v.mv_size ? v.mv_size : 1);
	if (!*der) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(*der, v.mv_data, v.mv_size);
	*len = v.mv_size;
out:
	mdb_txn_abort(txn);
	return rc;
}

json_t *tls_query_summary(struct tls_store *st, int *err)
{
	const struct tls_store_dbs *d = tls_store_dbs(st);
	MDB_txn *txn;
	int rc = tls_store_txn_read(d->env, &txn);
	if (rc)
		return fail(err, rc);
	static const char *names[] = {"sessions", "certs", "keys", "pivots", "links", "findings"};
	unsigned dbis[] = {d->sessions, d->certs, d->keys, d->pivots, d->links, d->findings};
	json_t *out = json_object();
	for (size_t i = 0; out && i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		MDB_stat s;
		if ((rc = mdb_stat(txn, dbis[i], &s)))
			break;
		json_object_set_new(out, names[i], json_integer((json_int_t)s.ms_entries));
	}
	mdb_txn_abort(txn);
	if (rc || !out) {
		json_decref(out);
		return fail(err, rc ? rc : -ENOMEM);
	}
	*err = 0;
	return out;
}
