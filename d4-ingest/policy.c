/*
 * policy.c — what ingest decides from: registrations and keys, blocklists,
 * accepted types and meta-types, kick requests.
 *
 * d4-web and d4ctl write these to the store and bump its policy generation
 * in the same commit. Ingest reads the generation once a second (one read
 * transaction, a few microseconds) and, when it moved, loads everything into
 * sorted arrays in one snapshot: the per-packet path then decides with binary
 * searches in memory and never touches LMDB. IP ranges are merged so that a
 * lookup is one binary search however the operator's ranges overlap.
 *
 * Temporary entries (a ban with an expiry) are loaded only while in force;
 * the snapshot remembers the earliest expiry and is reloaded when it passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d4_log.h"
#include "ingest.h"

struct loader {
	struct policy *p;
	uint64_t now;
	size_t cap_sensors, cap_ranges, cap_uuids, cap_kicks, cap_meta;
	bool oom;
};

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return arr;
	size_t c = *cap ? *cap * 2 : 64;
	void *p = realloc(arr, c * elem);
	if (p)
		*cap = c;
	return p;
}

static int add_sensor(const struct d4_sensor *s, void *ctx)
{
	struct loader *l = ctx;
	struct policy *p = l->p;
	struct sensor_policy *arr = grow(p->sensors, &l->cap_sensors, p->n_sensors, sizeof(*arr));
	if (arr == NULL) {
		l->oom = true;
		return 1;
	}
	p->sensors = arr;
	struct sensor_policy *sp = &arr[p->n_sensors++];
	memset(sp, 0, sizeof(*sp));
	memcpy(sp->uuid, s->uuid, D4_UUID_SIZE);
	sp->state = s->state;
	memcpy(sp->key, s->hmac_key, s->hmac_key_len);
	sp->key_len = s->hmac_key_len;
	sp->max_payload = s->settings.max_payload;
	sp->rate_limit_bps = s->settings.rate_limit_bps;
	sp->has_cert_pin = s->settings.has_cert_pin;
	memcpy(sp->cert_pin, s->settings.cert_pin, D4_CERT_PIN_SIZE);
	return 0;
}

static void note_expiry(struct loader *l, uint64_t expires)
{
	if (expires && (l->p->next_expiry == 0 || expires < l->p->next_expiry))
		l->p->next_expiry = expires;
}

static int add_block_uuid(const struct d4_block_uuid *b, void *ctx)
{
	struct loader *l = ctx;
	struct policy *p = l->p;
	if (!d4_block_active(b->expires, l->now))
		return 0;
	note_expiry(l, b->expires);
	uint8_t(*arr)[D4_UUID_SIZE] =
		grow(p->blocked_uuids, &l->cap_uuids, p->n_blocked_uuids, sizeof(*arr));
	if (arr == NULL) {
		l->oom = true;
		return 1;
	}
	p->blocked_uuids = arr;
	memcpy(arr[p->n_blocked_uuids++], b->uuid, D4_UUID_SIZE);
	return 0;
}

static int add_block_ip(const struct d4_block_ip *b, void *ctx)
{
	struct loader *l = ctx;
	struct policy *p = l->p;
	if (!d4_block_active(b->expires, l->now))
		return 0;
	note_expiry(l, b->expires);
	struct d4_ip_range *arr =
		grow(p->blocked_ranges, &l->cap_ranges, p->n_blocked_ranges, sizeof(*arr));
	if (arr == NULL) {
		l->oom = true;
		return 1;
	}
	p->blocked_ranges = arr;
	arr[p->n_blocked_ranges++] = b->range;
	return 0;
}

static int add_kick(const uint8_t uuid[D4_UUID_SIZE], uint64_t requested, void *ctx)
{
	struct loader *l = ctx;
	struct policy *p = l->p;
	struct kick *arr = grow(p->kicks, &l->cap_kicks, p->n_kicks, sizeof(*arr));
	if (arr == NULL) {
		l->oom = true;
		return 1;
	}
	p->kicks = arr;
	memcpy(arr[p->n_kicks].uuid, uuid, D4_UUID_SIZE);
	arr[p->n_kicks++].requested = requested;
	return 0;
}

static int add_meta(const char *name, uint64_t added, void *ctx)
{
	struct loader *l = ctx;
	struct policy *p = l->p;
	(void)added;
	char(*arr)[D4_META_TYPE_MAX + 1] =
		grow(p->meta_types, &l->cap_meta, p->n_meta_types, sizeof(*arr));
	if (arr == NULL) {
		l->oom = true;
		return 1;
	}
	p->meta_types = arr;
	snprintf(arr[p->n_meta_types++], D4_META_TYPE_MAX + 1, "%s", name);
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct d4_ip_range *x = a, *y = b;
	int c = d4_ip_cmp(x->start, y->start);
	return c ? c : d4_ip_cmp(x->end, y->end);
}

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, D4_UUID_SIZE);
}

static int cmp_meta(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sorts and merges overlapping or adjacent ranges in place. */
static void merge_ranges(struct policy *p)
{
	if (p->n_blocked_ranges == 0)
		return;
	qsort(p->blocked_ranges, p->n_blocked_ranges, sizeof(struct d4_ip_range), cmp_range);
	size_t out = 0;
	for (size_t i = 1; i < p->n_blocked_ranges; i++) {
		struct d4_ip_range *cur = &p->blocked_ranges[out], *next = &p->blocked_ranges[i];
		/* overlapping (adjacency would need end+1, not worth it) */
		if (d4_ip_cmp(next->start, cur->end) <= 0) {
			if (d4_ip_cmp(next->end, cur->end) > 0)
				memcpy(cur->end, next->end, D4_IP_SIZE);
		} else {
			p->blocked_ranges[++out] = *next;
		}
	}
	p->n_blocked_ranges = out + 1;
}

void policy_free(struct policy *p)
{
	free(p->sensors);
	free(p->blocked_ranges);
	free(p->blocked_uuids);
	free(p->kicks);
	free(p->meta_types);
	memset(p, 0, sizeof(*p));
}

int policy_refresh(struct policy *p, struct d4_store *s, const struct ingest_conf *c,
                   uint64_t now, bool force)
{
	struct d4_txn t;
	uint64_t gen = 0;
	int rc = d4_txn_begin(s, &t, false);
	if (rc != 0) {
		d4_log(D4_LOG_ERR, "store", "op", "read", "error", d4_store_strerror(rc), NULL);
		return rc;
	}
	rc = d4_policy_generation(&t, &gen);
	if (rc != 0)
		goto out;
	bool expired = p->next_expiry && now >= p->next_expiry;
	if (p->loaded && gen == p->generation && !force && !expired)
		goto out;

	struct policy fresh;
	memset(&fresh, 0, sizeof(fresh));
	struct loader l = {.p = &fresh, .now = now};
	fresh.generation = gen;
	if ((rc = d4_sensor_iterate(&t, add_sensor, &l)) != 0 ||
	    (rc = d4_block_uuid_iterate(&t, add_block_uuid, &l)) != 0 ||
	    (rc = d4_block_ip_iterate(&t, add_block_ip, &l)) != 0 ||
	    (rc = d4_kick_iterate(&t, add_kick, &l)) != 0 ||
	    (rc = d4_types_accepted(&t, fresh.types)) != 0 ||
	    (rc = d4_meta_type_iterate(&t, add_meta, &l)) != 0 || l.oom) {
		policy_free(&fresh);
		if (rc == 0)
			rc = -ENOMEM;
		goto out;
	}
	/* the store names no accepted type or meta-type yet: the configuration's */
	bool any = false;
	for (unsigned i = 0; i < D4_TYPES; i++)
		any |= fresh.types[i];
	if (!any)
		memcpy(fresh.types, c->default_types, sizeof(fresh.types));
	if (fresh.n_meta_types == 0) {
		for (unsigned i = 0; i < c->n_default_meta_types; i++)
			if (add_meta(c->default_meta_types[i], 0, &l) != 0)
				break;
	}
	/* sensors come sorted by uuid from the store; the rest is sorted here */
	if (fresh.n_blocked_uuids)
		qsort(fresh.blocked_uuids, fresh.n_blocked_uuids, D4_UUID_SIZE, cmp_uuid);
	if (fresh.n_meta_types)
		qsort(fresh.meta_types, fresh.n_meta_types, D4_META_TYPE_MAX + 1, cmp_meta);
	merge_ranges(&fresh);
	fresh.loaded = true;
	policy_free(p);
	*p = fresh;
	rc = 1;
	d4_logf(D4_LOG_DEBUG, "policy-loaded", "generation %llu: %zu sensors, %zu blocked uuids, "
	        "%zu blocked ranges, %zu kicks", (unsigned long long)gen, p->n_sensors,
	        p->n_blocked_uuids, p->n_blocked_ranges, p->n_kicks);
out:
	d4_txn_abort(&t);
	if (rc < 0)
		d4_log(D4_LOG_ERR, "policy-load-failed", "error", d4_store_strerror(rc), NULL);
	return rc;
}

const struct sensor_policy *policy_sensor(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE])
{
	size_t lo = 0, hi = p->n_sensors;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(p->sensors[mid].uuid, uuid, D4_UUID_SIZE);
		if (c == 0)
			return &p->sensors[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool policy_uuid_blocked(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE])
{
	return p->n_blocked_uuids &&
	       bsearch(uuid, p->blocked_uuids, p->n_blocked_uuids, D4_UUID_SIZE, cmp_uuid) != NULL;
}

bool policy_addr_blocked(const struct policy *p, const uint8_t addr[D4_IP_SIZE])
{
	/* the last merged range starting at or before addr is the only candidate */
	size_t lo = 0, hi = p->n_blocked_ranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d4_ip_cmp(p->blocked_ranges[mid].start, addr) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && d4_ip_in_range(addr, &p->blocked_ranges[lo - 1]);
}

bool policy_meta_type_accepted(const struct policy *p, const char *name)
{
	return p->n_meta_types &&
	       bsearch(name, p->meta_types, p->n_meta_types, D4_META_TYPE_MAX + 1, cmp_meta) != NULL;
}

uint64_t policy_kick_time(const struct policy *p, const uint8_t uuid[D4_UUID_SIZE])
{
	uint64_t t = 0;
	for (size_t i = 0; i < p->n_kicks; i++)
		if (memcmp(p->kicks[i].uuid, uuid, D4_UUID_SIZE) == 0 && p->kicks[i].requested > t)
			t = p->kicks[i].requested;
	return t;
}
