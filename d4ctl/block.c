/*
 * block.c — `d4ctl block ...`: the uuid and IP blocklists d4-ingest enforces.
 *
 * An IP entry is exactly the range the operator typed: a CIDR block is kept
 * as its two ends and listed back as the same CIDR, never expanded, and a
 * CIDR with host bits set is refused with d4_ip_range_parse()'s reason rather
 * than silently widened. Entries with an expiry stop applying by themselves
 * (d4-ingest compares the time); `purge` only tidies the list.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d4_net.h"
#include "d4_uuid.h"
#include "d4ctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] block <subcommand> ...\n\n"
		"  list                          every uuid and IP entry, with comment, creation, expiry\n"
		"  ip add RANGE [--for DURATION] [--comment C]\n"
		"                                RANGE: 10.0.0.0/8, 2001:db8::/32, 192.0.2.7,\n"
		"                                or 10.0.0.5-10.0.0.9 (a CIDR with host bits set is refused)\n"
		"  ip del RANGE                  remove the entry for exactly that range\n"
		"  uuid add UUID [--for DURATION] [--comment C]\n"
		"  uuid del UUID\n"
		"  purge                         delete the entries whose time ran out\n\n"
		"DURATION: 90s, 10m, 2h, 1d, 1w; without --for an entry is permanent.\n"
		"--json (a global option, before 'block') prints list as JSON.\n");
}

/* ---- list ---- */

struct list_walk {
	uint64_t now;
	bool json;
	json_t *arr;
	size_t n;
};

static const char *state_of(uint64_t expires, uint64_t now)
{
	return d4_block_active(expires, now) ? (expires ? "temporary" : "permanent") : "expired";
}

static int list_one(struct list_walk *w, const char *kind, const char *what, uint64_t created,
                    uint64_t expires, const char *comment)
{
	char t1[D4CTL_TIME_LEN], t2[D4CTL_TIME_LEN], buf[D4_COMMENT_MAX + 1];

	w->n++;
	if (w->json) {
		json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:s, s:s}", "kind", kind, "entry", what,
		                      "created", d4ctl_json_time(created), "expires",
		                      d4ctl_json_time(expires), "state", state_of(expires, w->now),
		                      "comment", comment);
		return o == NULL || json_array_append_new(w->arr, o) != 0 ? -ENOMEM : 0;
	}
	d4ctl_format_time(created, t1);
	d4ctl_format_time(expires, t2);
	printf("%-4s  %-36s  %-20s  %-20s  %-9s  %s\n", kind, what, t1, t2, state_of(expires, w->now),
	       d4ctl_safe(comment, buf, sizeof(buf)));
	return 0;
}

static int list_uuid_cb(const struct d4_block_uuid *b, void *ctx)
{
	char uuid[D4_UUID_STR_LEN + 1];

	d4_uuid_format(b->uuid, uuid);
	return list_one(ctx, "uuid", uuid, b->created, b->expires, b->comment);
}

static int list_ip_cb(const struct d4_block_ip *b, void *ctx)
{
	char range[D4_IP_RANGE_STR_MAX];

	if (d4_ip_range_format(&b->range, range, sizeof(range)) != 0)
		snprintf(range, sizeof(range), "?");
	return list_one(ctx, "ip", range, b->created, b->expires, b->comment);
}

static int block_list(struct d4ctl *ctl, int argc, char **argv)
{
	const char *where = "block list";
	struct list_walk w = {.now = ctl->now, .json = ctl->json};
	struct d4_txn t;
	int rc, src;

	if (argc > 1) {
		if (d4ctl_is_help(argv[1])) {
			usage(stdout);
			return D4CTL_OK;
		}
		d4ctl_err(where, "unexpected argument '%s'", argv[1]);
		return D4CTL_USAGE;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, false)) != D4CTL_OK)
		return rc;
	if (ctl->json && (w.arr = json_array()) == NULL) {
		rc = D4CTL_ERROR;
		goto out;
	}
	if (!ctl->json)
		printf("%-4s  %-36s  %-20s  %-20s  %-9s  %s\n", "KIND", "ENTRY", "CREATED", "EXPIRES",
		       "STATE", "COMMENT");
	if ((src = d4_block_uuid_iterate(&t, list_uuid_cb, &w)) != 0 ||
	    (src = d4_block_ip_iterate(&t, list_ip_cb, &w)) != 0) {
		d4ctl_err(where, "reading the blocklists: %s", d4_store_strerror(src));
		rc = D4CTL_ERROR;
		goto out;
	}
	if (ctl->json) {
		rc = d4ctl_json_print(w.arr);
		w.arr = NULL;
	} else {
		if (w.n == 0)
			printf("(the blocklists are empty)\n");
		rc = D4CTL_OK;
	}
out:
	d4_txn_abort(&t);
	json_decref(w.arr);
	return rc;
}

/* ---- add, del ---- */

struct entry {
	bool is_ip;
	uint8_t uuid[D4_UUID_SIZE];
	struct d4_ip_range range;
	char text[D4_IP_RANGE_STR_MAX]; /* canonical form, for messages */
};

static int parse_entry(const char *where, const char *arg, bool is_ip, struct entry *e)
{
	e->is_ip = is_ip;
	if (!is_ip) {
		int rc = d4ctl_parse_uuid(where, arg, false, e->uuid);
		if (rc != 0)
			return rc;
		d4_uuid_format(e->uuid, e->text);
		return 0;
	}
	const char *why = NULL;
	if (d4_ip_range_parse_str(arg, &e->range, &why) != 0) {
		d4ctl_err(where, "'%s': %s", arg, why ? why : "not an address range");
		return D4CTL_USAGE;
	}
	if (d4_ip_range_format(&e->range, e->text, sizeof(e->text)) != 0)
		snprintf(e->text, sizeof(e->text), "%s", arg);
	return 0;
}

static int entry_add(struct d4ctl *ctl, int argc, char **argv, bool is_ip)
{
	static const struct option longopts[] = {
		{"for", required_argument, NULL, 'f'},
		{"comment", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = is_ip ? "block ip add" : "block uuid add";
	const char *comment = "";
	uint64_t duration = 0;
	struct entry e;
	struct d4_txn t;
	bool existed;
	char until[D4CTL_TIME_LEN];
	int rc, src, c;

	memset(&e, 0, sizeof(e));
	optind = 0;
	while ((c = getopt_long(argc, argv, ":f:C:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if ((rc = d4ctl_parse_duration(where, optarg, &duration)) != 0)
				return rc;
			break;
		case 'C':
			comment = optarg;
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if (argc - optind != 1) {
		d4ctl_err(where, "expected one %s", is_ip ? "address range" : "UUID");
		return D4CTL_USAGE;
	}
	if ((rc = parse_entry(where, argv[optind], is_ip, &e)) != 0)
		return rc;
	if (strlen(comment) > D4_COMMENT_MAX) {
		d4ctl_err(where, "--comment is at most %d bytes", D4_COMMENT_MAX);
		return D4CTL_USAGE;
	}
	uint64_t expires = duration ? ctl->now + duration : 0;
	d4ctl_format_time(expires, until);

	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	/* the get only tells "blocked" from "replaced": put adds or replaces */
	if (is_ip) {
		struct d4_block_ip b, old;
		src = d4_block_ip_get(&t, &e.range, &old);
		existed = src == 0;
		memset(&b, 0, sizeof(b));
		b.range = e.range;
		b.created = ctl->now;
		b.expires = expires;
		memcpy(b.comment, comment, strlen(comment) + 1);
		if (src == 0 || src == -ENOENT)
			src = d4_block_ip_put(&t, &b);
	} else {
		struct d4_block_uuid b, old;
		src = d4_block_uuid_get(&t, e.uuid, &old);
		existed = src == 0;
		memset(&b, 0, sizeof(b));
		memcpy(b.uuid, e.uuid, sizeof(b.uuid));
		b.created = ctl->now;
		b.expires = expires;
		memcpy(b.comment, comment, strlen(comment) + 1);
		if (src == 0 || src == -ENOENT)
			src = d4_block_uuid_put(&t, &b);
	}
	if (src != 0) {
		d4_txn_abort(&t);
		d4ctl_err(where, "%s: %s", e.text, d4_store_strerror(src));
		return d4ctl_store_status(src);
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	printf("%s %s %s %s%s\n", existed ? "replaced the block of" : "blocked",
	       is_ip ? "range" : "uuid", e.text, expires ? "until " : "permanently",
	       expires ? until : "");
	return D4CTL_OK;
}

static int entry_del(struct d4ctl *ctl, int argc, char **argv, bool is_ip)
{
	const char *where = is_ip ? "block ip del" : "block uuid del";
	struct entry e;
	struct d4_txn t;
	int rc, src;

	memset(&e, 0, sizeof(e));
	if (argc == 2 && d4ctl_is_help(argv[1])) {
		usage(stdout);
		return D4CTL_OK;
	}
	if (argc != 2) {
		d4ctl_err(where, "expected one %s", is_ip ? "address range" : "UUID");
		return D4CTL_USAGE;
	}
	if ((rc = parse_entry(where, argv[1], is_ip, &e)) != 0)
		return rc;
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	src = is_ip ? d4_block_ip_delete(&t, &e.range) : d4_block_uuid_delete(&t, e.uuid);
	if (src != 0) {
		d4_txn_abort(&t);
		if (src == -ENOENT) {
			d4ctl_err(where, "no entry for %s%s", e.text,
			          is_ip ? " (give the range exactly as 'd4ctl block list' shows it)" : "");
			return D4CTL_FAILED;
		}
		d4ctl_err(where, "%s: %s", e.text, d4_store_strerror(src));
		return d4ctl_store_status(src);
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	printf("removed the block of %s %s\n", is_ip ? "range" : "uuid", e.text);
	return D4CTL_OK;
}

/* `block ip add|del ...` and `block uuid add|del ...` */
static int block_kind(struct d4ctl *ctl, int argc, char **argv, bool is_ip)
{
	const char *where = is_ip ? "block ip" : "block uuid";

	if (argc < 2) {
		d4ctl_err(where, "expected 'add' or 'del'");
		return D4CTL_USAGE;
	}
	if (d4ctl_is_help(argv[1])) {
		usage(stdout);
		return D4CTL_OK;
	}
	if (strcmp(argv[1], "add") == 0)
		return entry_add(ctl, argc - 1, argv + 1, is_ip);
	if (strcmp(argv[1], "del") == 0 || strcmp(argv[1], "delete") == 0)
		return entry_del(ctl, argc - 1, argv + 1, is_ip);
	d4ctl_err(where, "unknown subcommand '%s' (expected 'add' or 'del')", argv[1]);
	return D4CTL_USAGE;
}

static int block_ip(struct d4ctl *ctl, int argc, char **argv)
{
	return block_kind(ctl, argc, argv, true);
}

static int block_uuid(struct d4ctl *ctl, int argc, char **argv)
{
	return block_kind(ctl, argc, argv, false);
}

/* ---- purge ---- */

static int block_purge(struct d4ctl *ctl, int argc, char **argv)
{
	const char *where = "block purge";
	struct d4_txn t;
	size_t removed = 0;
	int rc, src;

	if (argc > 1) {
		if (d4ctl_is_help(argv[1])) {
			usage(stdout);
			return D4CTL_OK;
		}
		d4ctl_err(where, "unexpected argument '%s'", argv[1]);
		return D4CTL_USAGE;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	if ((src = d4_block_purge_expired(&t, ctl->now, &removed)) != 0) {
		d4_txn_abort(&t);
		d4ctl_err(where, "%s", d4_store_strerror(src));
		return D4CTL_ERROR;
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	printf("removed %zu expired entr%s\n", removed, removed == 1 ? "y" : "ies");
	return D4CTL_OK;
}

int cmd_block(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct d4ctl_sub subs[] = {
		{"list", block_list},
		{"ip", block_ip},
		{"uuid", block_uuid},
		{"purge", block_purge},
	};

	return d4ctl_subcommand(ctl, "block", subs, sizeof(subs) / sizeof(subs[0]), usage, argc,
	                        argv);
}
