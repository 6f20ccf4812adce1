/*
 * route.c — which queues take a session, and which instance of each.
 *
 * A queue takes a session when its type is in the queue's `types` (for a
 * 254 session: when its meta-type is in `meta_types`, or when 254 is in
 * `types` and `meta_types` is empty), and, when the queue names `sensors`
 * or `groups`, when the sensor is one of them or in one of those groups.
 * Groups are a sensor setting in the store (d4-web, d4ctl); they are read
 * once per session, in one short read transaction, and only when some queue
 * filters on them.
 *
 * The decision is made once, when the session starts (at META for a 254
 * session), so a session's records never change queue in the middle, and a
 * session goes to exactly one instance of a queue (a hash of its id), so that
 * one analyzer process sees the whole byte stream and can reassemble it.
 */
#include <stdlib.h>
#include <string.h>

#include "d4_log.h"
#include "dispatch.h"

static bool type_matches(const struct queue_conf *c, const struct dsession *s)
{
	if (s->type != D4_TYPE_META_DEFINED)
		return c->types[s->type];
	if (c->n_meta_types == 0)
		return c->types[D4_TYPE_META_DEFINED];
	for (unsigned i = 0; i < c->n_meta_types; i++)
		if (strcmp(c->meta_types[i], s->meta_type) == 0)
			return true;
	return false;
}

struct sensor_groups {
	bool loaded, found;
	struct d4_sensor_settings st;
};

static void load_groups(struct dispatch *d, const uint8_t uuid[D4_UUID_SIZE],
                        struct sensor_groups *g)
{
	struct d4_txn t;
	struct d4_sensor sn;
	g->loaded = true;
	if (d->store == NULL || d4_txn_begin(d->store, &t, false) != 0)
		return;
	if (d4_sensor_get(&t, uuid, &sn) == 0) {
		g->found = true;
		g->st = sn.settings;
	}
	d4_txn_abort(&t);
}

static bool sensor_matches(struct dispatch *d, const struct queue_conf *c,
                           const struct dsession *s, struct sensor_groups *g)
{
	if (c->n_sensors == 0 && c->n_groups == 0)
		return true;
	for (unsigned i = 0; i < c->n_sensors; i++)
		if (memcmp(c->sensors[i], s->open.uuid, D4_UUID_SIZE) == 0)
			return true;
	if (c->n_groups == 0)
		return false;
	if (!g->loaded)
		load_groups(d, s->open.uuid, g);
	if (!g->found)
		return false;
	for (unsigned i = 0; i < c->n_groups; i++)
		for (unsigned j = 0; j < g->st.n_groups; j++)
			if (strcmp(c->groups[i], g->st.groups[j]) == 0)
				return true;
	return false;
}

static unsigned pick_instance(const struct dsession *s, unsigned n)
{
	uint64_t h = s->id ^ s->instance ^ ((uint64_t)s->worker << 32);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (unsigned)(h % n);
}

int route_session(struct dispatch *d, struct dsession *s)
{
	struct sensor_groups g = {0};
	unsigned n = 0;

	for (struct queue *q = d->queues; q; q = q->next)
		if (!q->removed && q->n_active > 0)
			n++;
	if (n == 0)
		return 0;
	if ((s->routes = calloc(n, sizeof(*s->routes))) == NULL)
		return -1;
	for (struct queue *q = d->queues; q; q = q->next) {
		if (q->removed || q->n_active == 0 || !type_matches(&q->conf, s) ||
		    !sensor_matches(d, &q->conf, s, &g))
			continue;
		struct analyzer *an = q->an[pick_instance(s, q->n_active)];
		s->routes[s->n_routes].an = an;
		s->routes[s->n_routes].started = 0;
		s->n_routes++;
		an->routes++;
		an->refs++;
	}
	return 0;
}
