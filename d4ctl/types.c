/*
 * types.c — `d4ctl types ...`: which D4 types and meta-types d4-ingest accepts.
 *
 * The store holds the accepted set; when it names no type at all (or no
 * meta-type at all), d4-ingest uses its configuration's ingest.accepted_types
 * (default 1 2 3 4 8 254) or ingest.accepted_meta_types (default ja3-jl
 * d4-telemetry fascia maltrail) instead. Two consequences handled here:
 *
 * - The first change to an empty set would silently replace those defaults
 *   by the one type named ("accept 5" would then refuse pcap). So the first
 *   change copies the configuration's set into the store, in the same
 *   transaction, and says so.
 * - Refusing the last member would empty the set and bring the defaults
 *   back, i.e. accept more instead of less. That is refused.
 *
 * The configuration read is d4ctl's own (-c FILE, --set): give d4ctl the
 * server's file so that both agree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d4_config.h"
#include "d4_proto.h"
#include "d4ctl.h"

#define META_MAX D4_STATS_META_MAX /* d4-ingest keeps at most this many from its configuration */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] types <subcommand> ...\n\n"
		"  list                     accepted types (with names) and meta-types\n"
		"  accept TYPE...           accept types: numbers or names, 1-8 and 254\n"
		"  refuse TYPE...           refuse types\n"
		"  meta accept NAME...      accept meta-types (type 254), e.g. ja3-jl\n"
		"  meta refuse NAME...      refuse meta-types\n\n"
		"Types: 1 pcap, 2 meta-header, 3 generic log, 4 dnscap, 5 pcapng, 6 ndjson,\n"
		"7 yaf, 8 passivedns, 254 defined by the meta header (see 'types list').\n"
		"While the store lists no accepted type (or meta-type), d4-ingest uses its\n"
		"configuration's ingest.accepted_types (ingest.accepted_meta_types); the first\n"
		"change copies that set into the store. The last member cannot be refused.\n");
}

/* One accepted set: the store's, or the configuration's when the store's is empty. */
struct accepted {
	bool types[D4_TYPES];
	size_t n_types;
	bool types_from_store;
	char meta[META_MAX][D4_META_TYPE_MAX + 1];
	size_t n_meta;
	size_t n_meta_extra; /* store names beyond META_MAX, not listed */
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
	(void)added;
	struct accepted *a = ctx;

	/* past META_MAX names the list shown is cut (d4-ingest's own limit) */
	if (add_meta(a, name, strlen(name)) != 0)
		a->n_meta_extra++;
	return 0;
}

/* The store's sets, in t. */
static int load_store(struct d4_txn *t, struct accepted *a)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if ((rc = d4_types_accepted(t, a->types)) != 0)
		return rc;
	for (unsigned i = 0; i < D4_TYPES; i++)
		a->n_types += a->types[i];
	a->types_from_store = true;
	a->meta_from_store = true;
	return d4_meta_type_iterate(t, store_meta_cb, a);
}

static int count_meta_cb(const char *name, uint64_t added, void *ctx)
{
	(void)name;
	(void)added;
	(*(size_t *)ctx)++;
	return 0;
}

/* The configuration's sets, read as d4-ingest reads them (d4-ingest/conf.c). */
static int load_config(const char *where, const struct d4ctl *ctl, bool want_types, bool want_meta,
                       struct accepted *a)
{
	static const uint64_t def_types[] = {1, 2, 3, 4, 8, 254};
	struct d4_config_err e;

	if (want_types) {
		uint64_t types[D4_TYPES];
		size_t n;
		memset(a->types, 0, sizeof(a->types));
		a->n_types = 0;
		a->types_from_store = false;
		if (d4_config_get_uint_list(ctl->d.cfg, "ingest", "accepted_types", 1, 255, def_types,
		                            sizeof(def_types) / sizeof(def_types[0]), types, D4_TYPES,
		                            &n, &e) != 0) {
			d4ctl_err(where, "%s", e.msg);
			return D4CTL_ERROR;
		}
		for (size_t i = 0; i < n; i++) {
			if (!d4_type_is_known((unsigned)types[i])) {
				d4ctl_err(where, "ingest.accepted_types: %" PRIu64 " is not a type the "
				                 "protocol defines (1-8, 254)",
				          types[i]);
				return D4CTL_ERROR;
			}
			if (!a->types[types[i]])
				a->n_types++;
			a->types[types[i]] = true;
		}
	}
	if (want_meta) {
		const char *p = d4_config_get_str(ctl->d.cfg, "ingest", "accepted_meta_types",
		                                  "ja3-jl d4-telemetry fascia maltrail");
		a->n_meta = 0;
		a->meta_from_store = false;
		while (*p != '\0') {
			while (*p == ',' || *p == ' ' || *p == '\t')
				p++;
			const char *s = p;
			while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if (p > s && add_meta(a, s, (size_t)(p - s)) != 0) {
				d4ctl_err(where, "ingest.accepted_meta_types: at most %d names of at most "
				                 "%d bytes",
				          META_MAX, D4_META_TYPE_MAX);
				return D4CTL_ERROR;
			}
		}
	}
	return D4CTL_OK;
}

/* ---- list ---- */

static int types_list(struct d4ctl *ctl, int argc, char **argv)
{
	const char *where = "types list";
	struct accepted *a = NULL;
	struct d4_txn t;
	bool in_txn = false;
	int rc, src;

	if (argc > 1) {
		if (d4ctl_is_help(argv[1])) {
			usage(stdout);
			return D4CTL_OK;
		}
		d4ctl_err(where, "unexpected argument '%s'", argv[1]);
		return D4CTL_USAGE;
	}
	if ((a = malloc(sizeof(*a))) == NULL) {
		d4ctl_err(where, "out of memory");
		return D4CTL_ERROR;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, false)) != D4CTL_OK)
		goto out;
	in_txn = true;
	if ((src = load_store(&t, a)) != 0) {
		d4ctl_err(where, "reading the accepted types: %s", d4_store_strerror(src));
		rc = D4CTL_ERROR;
		goto out;
	}
	if ((rc = load_config(where, ctl, a->n_types == 0, a->n_meta == 0, a)) != D4CTL_OK)
		goto out;

	if (ctl->json) {
		json_t *types = json_array(), *metas = json_array();
		for (unsigned i = 0; i < D4_TYPES && types; i++)
			if (a->types[i] &&
			    json_array_append_new(types, json_pack("{s:i, s:s}", "type", (int)i, "name",
			                                           d4_type_name(i))) != 0) {
				json_decref(types);
				types = NULL;
			}
		for (size_t i = 0; i < a->n_meta && metas; i++)
			if (json_array_append_new(metas, json_string(a->meta[i])) != 0) {
				json_decref(metas);
				metas = NULL;
			}
		rc = d4ctl_json_print(json_pack(
			"{s:{s:s, s:o}, s:{s:s, s:o}}", "types", "source",
			a->types_from_store ? "store" : "configuration", "accepted", types, "meta_types",
			"source", a->meta_from_store ? "store" : "configuration", "accepted", metas));
		goto out;
	}

	if (a->types_from_store)
		printf("accepted types (from the store):\n");
	else
		printf("the store lists no accepted type: d4-ingest uses its configuration's "
		       "ingest.accepted_types:\n");
	for (unsigned i = 0; i < D4_TYPES; i++)
		if (a->types[i])
			printf("  %3u  %s\n", i, d4_type_name(i));
	if (a->n_types == 0)
		printf("  (none)\n");
	if (a->meta_from_store)
		printf("accepted meta-types (from the store):\n");
	else
		printf("the store lists no accepted meta-type: d4-ingest uses its configuration's "
		       "ingest.accepted_meta_types:\n");
	for (size_t i = 0; i < a->n_meta; i++)
		printf("  %s\n", a->meta[i]);
	if (a->n_meta_extra > 0)
		printf("  (and %zu more)\n", a->n_meta_extra);
	if (a->n_meta == 0)
		printf("  (none)\n");
	if (a->types[D4_TYPE_META_DEFINED] && !a->types[D4_TYPE_META_HEADER])
		printf("note: type 254 is accepted but type 2 is not: a 254 session starts with a "
		       "type-2 meta header, so none can succeed\n");
	rc = D4CTL_OK;
out:
	if (in_txn)
		d4_txn_abort(&t);
	free(a);
	return rc;
}

/* ---- accept, refuse ---- */

/* A type by number or name; only the ones the protocol defines. -1 after printing why. */
static int parse_type(const char *where, const char *text)
{
	char *end;
	unsigned long v;

	if (text[0] >= '0' && text[0] <= '9') {
		errno = 0;
		v = strtoul(text, &end, 10);
		if (errno == 0 && *end == '\0' && v < D4_TYPES && d4_type_is_known((unsigned)v))
			return (int)v;
	} else {
		for (unsigned i = 1; i < D4_TYPES; i++)
			if (d4_type_is_known(i) && strcmp(text, d4_type_name(i)) == 0)
				return (int)i;
	}
	d4ctl_err(where, "'%s' is not a type the protocol defines (1-8, 254, or a name such as pcap)",
	          text);
	return -1;
}

/*
 * Seeds an empty set of the store with the configuration's (see the top of
 * this file). *seeded tells the caller to say so.
 */
static int seed_if_empty(const char *where, struct d4ctl *ctl, struct d4_txn *t, bool meta,
                         struct accepted *a, bool *seeded)
{
	int src;

	*seeded = false;
	if ((meta ? a->n_meta : a->n_types) != 0)
		return D4CTL_OK;
	if ((src = load_config(where, ctl, !meta, meta, a)) != D4CTL_OK)
		return src;
	if (!meta) {
		for (unsigned i = 0; i < D4_TYPES; i++)
			if (a->types[i] && (src = d4_type_set_accepted(t, (uint8_t)i, true, ctl->now)) != 0)
				goto fail;
	} else {
		for (size_t i = 0; i < a->n_meta; i++)
			if ((src = d4_meta_type_set_accepted(t, a->meta[i], true, ctl->now)) != 0)
				goto fail;
	}
	*seeded = true;
	return D4CTL_OK;
fail:
	d4ctl_err(where, "copying the configuration's set into the store: %s",
	          d4_store_strerror(src));
	return D4CTL_ERROR;
}

/* `types accept|refuse TYPE...` and `types meta accept|refuse NAME...`. */
static int change(struct d4ctl *ctl, int argc, char **argv, bool meta, bool accept)
{
	char where[32];
	struct accepted *a = NULL;
	struct d4_txn t;
	bool in_txn = false, seeded = false;
	bool want[D4_TYPES];
	size_t meta_count = 0;
	int rc, src = 0;

	snprintf(where, sizeof(where), "types %s%s", meta ? "meta " : "", accept ? "accept" : "refuse");
	if (argc == 2 && d4ctl_is_help(argv[1])) {
		usage(stdout);
		return D4CTL_OK;
	}
	if (argc < 2) {
		d4ctl_err(where, "name at least one %s", meta ? "meta-type" : "type");
		return D4CTL_USAGE;
	}
	/* every argument is checked before anything is written */
	memset(want, 0, sizeof(want));
	for (int i = 1; i < argc; i++) {
		if (meta) {
			if (!d4_meta_type_name_ok(argv[i])) {
				d4ctl_err(where, "'%s' is not a meta-type name (1 to %d printable "
				                 "characters, no space)",
				          argv[i], D4_META_TYPE_MAX);
				return D4CTL_USAGE;
			}
		} else {
			int ty = parse_type(where, argv[i]);
			if (ty < 0)
				return D4CTL_USAGE;
			want[ty] = true;
		}
	}
	if ((a = malloc(sizeof(*a))) == NULL) {
		d4ctl_err(where, "out of memory");
		return D4CTL_ERROR;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		goto out;
	in_txn = true;
	if ((src = load_store(&t, a)) != 0)
		goto store_error;
	if ((rc = seed_if_empty(where, ctl, &t, meta, a, &seeded)) != D4CTL_OK)
		goto out;

	if (!meta) {
		for (unsigned i = 0; i < D4_TYPES; i++) {
			if (!want[i])
				continue;
			if (!accept && a->types[i])
				a->n_types--;
			else if (accept && !a->types[i])
				a->n_types++;
			a->types[i] = accept;
			if ((src = d4_type_set_accepted(&t, (uint8_t)i, accept, ctl->now)) != 0)
				goto store_error;
		}
		if (a->n_types == 0) {
			d4ctl_err(where, "that would leave no accepted type, and d4-ingest would then "
			                 "fall back to its configuration's ingest.accepted_types; accept "
			                 "another type first, or block the sensors instead");
			rc = D4CTL_FAILED;
			goto out;
		}
	} else {
		for (int i = 1; i < argc; i++)
			if ((src = d4_meta_type_set_accepted(&t, argv[i], accept, ctl->now)) != 0)
				goto store_error;
		/* count the store itself: `a` holds at most META_MAX names */
		if ((src = d4_meta_type_iterate(&t, count_meta_cb, &meta_count)) != 0)
			goto store_error;
		if (meta_count == 0) {
			d4ctl_err(where, "that would leave no accepted meta-type, and d4-ingest would "
			                 "then fall back to its configuration's "
			                 "ingest.accepted_meta_types; accept another one first");
			rc = D4CTL_FAILED;
			goto out;
		}
	}
	in_txn = false;
	if ((src = d4_txn_commit(&t)) != 0)
		goto store_error;
	if (seeded)
		printf("the store listed no accepted %s: copied the configuration's "
		       "ingest.accepted_%s into it first\n",
		       meta ? "meta-type" : "type", meta ? "meta_types" : "types");
	for (int i = 1; i < argc; i++) {
		if (meta) {
			printf("%s meta-type %s\n", accept ? "accepted" : "refused", argv[i]);
		} else {
			int ty = parse_type(where, argv[i]);
			printf("%s type %d (%s)\n", accept ? "accepted" : "refused", ty,
			       d4_type_name((unsigned)ty));
		}
	}
	printf("d4-ingest applies the change within a second\n");
	rc = D4CTL_OK;
	goto out;

store_error:
	d4ctl_err(where, "%s", d4_store_strerror(src));
	rc = D4CTL_ERROR;
out:
	if (in_txn)
		d4_txn_abort(&t);
	free(a);
	return rc;
}

static int types_accept(struct d4ctl *ctl, int argc, char **argv)
{
	return change(ctl, argc, argv, false, true);
}

static int types_refuse(struct d4ctl *ctl, int argc, char **argv)
{
	return change(ctl, argc, argv, false, false);
}

static int types_meta(struct d4ctl *ctl, int argc, char **argv)
{
	if (argc < 2) {
		d4ctl_err("types meta", "expected 'accept' or 'refuse'");
		return D4CTL_USAGE;
	}
	if (d4ctl_is_help(argv[1])) {
		usage(stdout);
		return D4CTL_OK;
	}
	if (strcmp(argv[1], "accept") == 0)
		return change(ctl, argc - 1, argv + 1, true, true);
	if (strcmp(argv[1], "refuse") == 0)
		return change(ctl, argc - 1, argv + 1, true, false);
	d4ctl_err("types meta", "unknown subcommand '%s' (expected 'accept' or 'refuse')", argv[1]);
	return D4CTL_USAGE;
}

int cmd_types(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct d4ctl_sub subs[] = {
		{"list", types_list},
		{"accept", types_accept},
		{"refuse", types_refuse},
		{"meta", types_meta},
	};

	return d4ctl_subcommand(ctl, "types", subs, sizeof(subs) / sizeof(subs[0]), usage, argc,
	                        argv);
}
