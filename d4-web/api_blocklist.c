/*
 * api_blocklist.c — the uuid and IP blocklists d4-ingest enforces.
 *
 * An IP entry is exactly the range the operator gave: a CIDR block is kept
 * as its two ends and listed back as the same CIDR (d4_ip_range_format),
 * never expanded into addresses (d4-core did that), and a CIDR with host
 * bits set is refused with d4_ip_range_parse()'s reason. An entry with an
 * expiry stops applying by itself; lists show its state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "d4_uuid.h"
#include "web.h"

static const char *state_of(uint64_t expires, uint64_t now)
{
	return d4_block_active(expires, now) ? (expires ? "temporary" : "permanent") : "expired";
}

struct list_walk {
	json_t *arr;
	uint64_t now;
};

static int add_entry(struct list_walk *lw, const char *kind, const char *what, uint64_t created,
                     uint64_t expires, const char *comment)
{
	json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:s}", kind, what, "created",
	                      web_json_time(created), "expires", web_json_time(expires), "state",
	                      state_of(expires, lw->now), "comment", comment);

	return o == NULL || json_array_append_new(lw->arr, o) != 0 ? -ENOMEM : 0;
}

static int uuid_cb(const struct d4_block_uuid *b, void *ctx)
{
	char uuid[D4_UUID_STR_LEN + 1];

	d4_uuid_format(b->uuid, uuid);
	return add_entry(ctx, "uuid", uuid, b->created, b->expires, b->comment);
}

static int ip_cb(const struct d4_block_ip *b, void *ctx)
{
	char range[D4_IP_RANGE_STR_MAX];

	if (d4_ip_range_format(&b->range, range, sizeof(range)) != 0)
		snprintf(range, sizeof(range), "?");
	return add_entry(ctx, "range", range, b->created, b->expires, b->comment);
}

static void list(struct web_req *r, bool ip)
{
	struct list_walk lw = {.arr = json_array(), .now = r->now};
	struct d4_txn t;
	int rc;

	if (lw.arr == NULL) {
		web_reply(r, 0, NULL);
		return;
	}
	if (web_begin(r, &t, false) != 0)
		goto out;
	rc = ip ? d4_block_ip_iterate(&t, ip_cb, &lw) : d4_block_uuid_iterate(&t, uuid_cb, &lw);
	d4_txn_abort(&t);
	if (rc != 0) {
		web_store_error(r, rc, "blocklist");
		goto out;
	}
	web_reply(r, MHD_HTTP_OK, lw.arr);
	lw.arr = NULL;
out:
	json_decref(lw.arr);
}

void api_block_uuids_list(struct web_req *r)
{
	list(r, false);
}

void api_block_ips_list(struct web_req *r)
{
	list(r, true);
}

/* comment and expires_in of an add request. 0 or -1 (400 sent). */
static int add_fields(struct web_req *r, const char *key, const char **what, const char **comment,
                      uint64_t *expires)
{
	const char *fields[] = {key, "comment", "expires_in", NULL};
	uint64_t secs;

	if (r->json == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "a JSON body {\"%s\", \"comment\"?, \"expires_in\"?} "
		                                   "is required", key);
		return -1;
	}
	if (web_json_only(r, fields) != 0 || web_json_str(r, key, 256, true, what) != 0 ||
	    web_json_str(r, "comment", D4_COMMENT_MAX, false, comment) != 0 ||
	    web_json_duration(r, "expires_in", &secs) != 0)
		return -1;
	*expires = secs ? r->now + secs : 0;
	return 0;
}

void api_block_uuids_add(struct web_req *r)
{
	const char *what, *comment;
	char uuid[D4_UUID_STR_LEN + 1];
	struct d4_block_uuid b;
	struct d4_txn t;
	int rc;

	memset(&b, 0, sizeof(b));
	if (add_fields(r, "uuid", &what, &comment, &b.expires) != 0)
		return;
	if (d4_uuid_parse_str(what, b.uuid) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid uuid '%.64s'", what);
		return;
	}
	b.created = r->now;
	snprintf(b.comment, sizeof(b.comment), "%s", comment ? comment : "");
	d4_uuid_format(b.uuid, uuid);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_block_uuid_put(&t, &b)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_CREATED,
	          json_pack("{s:s, s:o, s:o, s:s, s:s}", "uuid", uuid, "created",
	                    web_json_time(b.created), "expires", web_json_time(b.expires), "state",
	                    state_of(b.expires, r->now), "comment", b.comment));
}

void api_block_uuids_delete(struct web_req *r)
{
	uint8_t u[D4_UUID_SIZE];
	char uuid[D4_UUID_STR_LEN + 1];
	struct d4_txn t;
	int rc;

	if (api_param_uuid(r, u) != 0)
		return;
	d4_uuid_format(u, uuid);
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_block_uuid_delete(&t, u)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "uuid %s is not in the blocklist", uuid);
		else
			web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "uuid", uuid, "deleted", 1));
}

/* Parses a range or replies 400 with d4_ip_range_parse's reason. */
static int parse_range(struct web_req *r, const char *text, struct d4_ip_range *range)
{
	const char *why = NULL;

	if (d4_ip_range_parse_str(text, range, &why) != 0) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "invalid range '%.100s': %s", text,
		          why ? why : "not an IP address or range");
		return -1;
	}
	return 0;
}

void api_block_ips_add(struct web_req *r)
{
	const char *what, *comment;
	char range[D4_IP_RANGE_STR_MAX];
	struct d4_block_ip b;
	struct d4_txn t;
	int rc;

	memset(&b, 0, sizeof(b));
	if (add_fields(r, "range", &what, &comment, &b.expires) != 0)
		return;
	if (parse_range(r, what, &b.range) != 0)
		return;
	b.created = r->now;
	snprintf(b.comment, sizeof(b.comment), "%s", comment ? comment : "");
	if (d4_ip_range_format(&b.range, range, sizeof(range)) != 0)
		snprintf(range, sizeof(range), "?");
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_block_ip_put(&t, &b)) != 0) {
		d4_txn_abort(&t);
		web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_CREATED,
	          json_pack("{s:s, s:o, s:o, s:s, s:s}", "range", range, "created",
	                    web_json_time(b.created), "expires", web_json_time(b.expires), "state",
	                    state_of(b.expires, r->now), "comment", b.comment));
}

void api_block_ips_delete(struct web_req *r)
{
	const char *what = web_query(r, "range");
	char range[D4_IP_RANGE_STR_MAX];
	struct d4_ip_range ipr;
	struct d4_txn t;
	int rc;

	if (what == NULL) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "missing query argument 'range' (?range=10.0.0.0/8)");
		return;
	}
	if (strlen(what) > 256) {
		web_error(r, MHD_HTTP_BAD_REQUEST, "range: at most 256 bytes");
		return;
	}
	if (parse_range(r, what, &ipr) != 0)
		return;
	if (d4_ip_range_format(&ipr, range, sizeof(range)) != 0)
		snprintf(range, sizeof(range), "?");
	if (web_begin(r, &t, true) != 0)
		return;
	if ((rc = d4_block_ip_delete(&t, &ipr)) != 0) {
		d4_txn_abort(&t);
		if (rc == -ENOENT)
			web_error(r, MHD_HTTP_NOT_FOUND, "no blocklist entry for exactly %s", range);
		else
			web_store_error(r, rc, "block");
		return;
	}
	if (web_commit(r, &t) != 0)
		return;
	web_reply(r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "range", range, "deleted", 1));
}
