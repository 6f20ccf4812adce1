/*
 * api_types.c — which D4 types and meta-types d4-ingest accepts, with the
 * semantics of d4ctl/types.c:
 *
 * - While the store names no type (no meta-type), d4-ingest uses its
 *   configuration's ingest.accepted_types (ingest.accepted_meta_types); GET
 *   shows that set with "source": "configuration".
 * - PUT /types replaces the whole set, so it never mixes with the fallback;
 *   an empty set is refused (it would bring the fallback back, i.e. accept
 *   more instead of less).
 * - The first meta-type change copies the configuration's set into the
 *   store in the same transaction (else "accept x" would silently refuse the
 *   defaults), and the last meta-type cannot be refused.
 *
 * d4-web reads the same configuration file as d4-ingest for this: give both
 * the same -c FILE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "d4_proto.h"
#include "web.h"

#define META_MAX D4_STATS_META_MAX /* d4-ingest keeps at most this many from its configuration */

struct accepted {
	bool types[D4_TYPES];
	size_t n_types;
	bool types_from_store;
	char meta[META_MAX][D4_META_TYPE_MAX + 1];
	size_t n_meta;
	size_t n_meta_store; /* every name in the store, also past META_MAX */
	bool meta_from_store;
};

static int add_meta(struct accepted *a, const char *name, size_t len)
{
	if (a->n_meta >= META_MAX || len == 0 || len > D4_META_TYPE_MAX)
		return -EINVAL;
	memcpy(a->meta[a->n_meta], name, len);
	a->meta[a->n_meta][len] = '\0';
	a->n_meta++;
	return 0;
}

static int store_meta_cb(const char *name, uint64_t added, void *ctx)
{
	struct accepted *a = ctx;
	(void)added;

	a->n_meta_store++;
	(void)add_meta(a, name, strlen(name)); /* past META_MAX the list shown is cut */
	return 0;
}

/* The store's sets, then the configuration's for an empty one. 0, or -1 (reply sent). */
static int load(struct web_req *r, struct d4_txn *t, struct accepted *a)
{
	static const uint64_t def_types[] = {1, 2, 3, 4, 8, 254};
	const struct d4_config *cfg = r->w->d->cfg;
	struct d4_config_err e;
	int rc;

	memset(a, 0, sizeof(*a));
	if ((rc = d4_types_accepted(t, a->types)) != 0 ||
	    (rc = d4_meta_type_iterate(t, store_meta_cb, a)) != 0) {
		web_store_error(r, rc, "accepted types");
		return -1;
	}
	for (unsigned i = 0; i < D4_TYPES; i++)
		a->n_types += a->types[i];
	a->types_from_store = a->n_types > 0;
	a->meta_from_store = a->n_meta_store > 0;
	if (a->n_types == 0) {
		uint64_t types[D4_TYPES];
		size_t n;
		if (d4_config_get_uint_list(cfg, "ingest", "accepted_types", 1, 255, def_types,
		                            sizeof(def_types) / sizeof(def_types[0]), types, D4_TYPES,
		                            &n, &e) != 0) {
			web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "configuration: %s", e.msg);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			if (d4_type_is_known((unsigned)types[i]) && !a->types[types[i]]) {
				a->types[types[i]] = true;
				a->n_types++;
			}
	}
	if (a->n_meta_store == 0) {
		const char *p = d4_config_get_str(cfg, "ingest", "accepted_meta_types",
		                                  "ja3-jl d4-telemetry fascia maltrail");
		while (*p != '\0') {
			while (*p == ',' || *p == ' ' || *p == '\t')
				p++;
			const char *s = p;
			while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if (p > s && add_meta(a, s, (size_t)(p - s)) != 0) {
				web_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
				          "configuration: ingest.accepted_meta_types: at most %d names of at "
				          "most %d bytes", META_MAX, D4_META_TYPE_MAX);
				return -1;
			}
		}
	}
	return 0;
}

static json_t *types_json(const struct accepted *a)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < D4_TYPES && arr != NULL; i++)
		if (a->types[i] && json_array_append_new(arr, json_pack("{s:i, s:s}", "type", (int)i,
		                                                        "name", d4_type_name(i))) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	return json_pack("{s:s, s:o}", "source", a->types_from_store ? "store" : "configuration",
	                 "accepted", arr);
}

static json_t *meta_json(const struct accepted *a)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < a->n_meta && arr != NULL; i++)
		if (json_array_append_new(arr, json_string(a->meta[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	return json_pack("{s:s, s:o}", "source", a->meta_from_store ? "store" : "configuration",
	                 "accepted", arr);
}

/* GET /types and GET /metatypes share this: one read transaction, one view. */
static void show(struct web_req *r, bool meta_only, unsigned status)
{
	struct accepted *a = malloc(sizeof(*a));
	struct d4_txn t;
	int rc;

	if (a == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = load(r, &t, a);
	d4_txn_abort(&t);
	if (rc != 0)
		goto out;
	if (meta_only)
		web_reply(r, status, meta_json(a));
	else
		web_reply(r, status, json_pack("{s:o, s:o}", "types", types_json(a), "meta_types",
		                               meta_json(a)));
out:
	free(a);
}

void api_types_get(struct web_req *r)
{
	show(r, false, MHD_HTTP_OK);
}

void api_metatypes_get(struct web_req *r)
{
	show(r, true, MHD_HTTP_OK);
}

/* A type by number or name; only the types the protocol defines. -1 if not one. */
static int type_of(json_t *v)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		return n >= 0 && n < D4_TYPES && d4_type_is_known((unsigned)n) ? (int)n : -1;
	}
	if (json_is_string(v))
		for (unsigned i = 1; i < D4_TYPES; i++)
			if (d4_type_is_known(i) && strcmp(json_string_value(v), d4_type_name(i)) == 0)
				return (int)i;
	return -1;
}

void api_types_put(struct web_req *r)
{
	static const char *const fields[] = {"accepted", NULL};
	bool want[D4_TYPES], cur[D4_TYPES];
	size_t i, n = 0;
	json_t *list, *v;
	struct d4_txn t;
	int rc;

	if (r->json == NULL || web_json_only(r, fields) != 0)
		goto usage;
	list = json_object_get(r->json, "accepted");
	if (!json_is_array(list))
		goto usage;
	memset(want, 0, sizeof(want));
	json_array_foreach(list, i, v) {
		int ty = type_of(v);
		if (ty < 0) {
			web_error(r, MHD_HTTP_BAD_REQUEST, "accepted[%zu] is not a type the protocol defines "
			                                   "(1-8, 254, or a name such as pcap)", i);
			return;
		}
		n += !want[ty];
		want[ty] = true;
	}
	if (n == 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "an empty set would make d4-ingest fall back to its "
		                                   "configuration's ingest.accepted_types; block the "
		                                   "sensors instead");
		return;
	}
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_types_accepted(&t, cur)) != 0)
		goto store_error;
	for (unsigned ty = 0; ty < D4_TYPES; ty++)
		if (want[ty] != cur[ty] &&
		    (rc = d4_type_set_accepted(&t, (uint8_t)ty, want[ty], r->now)) != 0)
			goto store_error;
	if (web_commit(r, &t) != 0)
		return;
	show(r, false, MHD_HTTP_OK);
	return;
store_error:
	d4_txn_abort(&t);
	web_store_error(r, rc, "accepted types");
	return;
usage:
	web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"accepted\": [1, 2, \"pcap\", ...]} is required");
}

/* Seeds an empty meta-type set of the store with the configuration's (see the top). */
static int seed_meta(struct d4_txn *t, const struct accepted *a, uint64_t now)
{
	int rc;

	if (a->meta_from_store)
		return 0;
	for (size_t i = 0; i < a->n_meta; i++)
		if ((rc = d4_meta_type_set_accepted(t, a->meta[i], true, now)) != 0)
			return rc;
	return 0;
}

static int count_cb(const char *name, uint64_t added, void *ctx)
{
	(void)name;
	(void)added;
	(*(size_t *)ctx)++;
	return 0;
}

static void meta_change(struct web_req *r, const char *name, bool accept)
{
	struct accepted *a = malloc(sizeof(*a));
	struct d4_txn t;
	bool in_txn = false;
	size_t count = 0;
	int rc;

	if (a == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (!d4_meta_type_name_ok(name)) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "'%.64s' is not a meta-type name (1 to %d printable "
		                                   "characters, no space)", name, D4_META_TYPE_MAX);
		goto out;
	}
	if (web_begin(r, &t, true) != 0)
		goto out;
	in_txn = true;
	if (load(r, &t, a) != 0)
		goto out;
	bool present = false;
	for (size_t i = 0; i < a->n_meta && !present; i++)
		present = strcmp(a->meta[i], name) == 0;
	if (a->meta_from_store && !present)
		present = d4_meta_type_check(&t, name) == 0;
	if (!accept && !present) {
		web_error(r, MHD_HTTP_NOT_FOUND, "meta-type %s is not accepted", name);
		goto out;
	}
	if ((rc = seed_meta(&t, a, r->now)) != 0 ||
	    (rc = d4_meta_type_set_accepted(&t, name, accept, r->now)) != 0 ||
	    (rc = d4_meta_type_iterate(&t, count_cb, &count)) != 0) {
		web_store_error(r, rc, "meta-type");
		goto out;
	}
	if (count == 0) {
		web_error(r, MHD_HTTP_CONFLICT, "that would leave no accepted meta-type, and d4-ingest "
		                                "would fall back to its configuration's "
		                                "ingest.accepted_meta_types; accept another one first");
		goto out;
	}
	in_txn = false;
	if (web_commit(r, &t) != 0)
		goto out;
	show(r, true, accept && !present ? MHD_HTTP_CREATED : MHD_HTTP_OK);
out:
	if (in_txn)
		d4_txn_abort(&t);
	free(a);
}

void api_metatypes_add(struct web_req *r)
{
	static const char *const fields[] = {"name", NULL};
	const char *name;

	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"name\"} is required");
		return;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, "name", 256, true, &name) != 0)
		return;
	meta_change(r, name, true);
}

void api_metatypes_delete(struct web_req *r)
{
	meta_change(r, r->params[0], false);
}
