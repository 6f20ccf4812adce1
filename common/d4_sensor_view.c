/*
 * d4_sensor_view.c — one sensor as the store knows it, and its JSON form (see
 * d4_sensor_view.h): shared by d4ctl and d4-web so that both print the same.
 */
#include "d4_sensor_view.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "d4_net.h"
#include "d4_proto.h"

json_t *d4_json_time(uint64_t t)
{
	char buf[32];
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0)
		return json_null();
	if (t > (uint64_t)INT64_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, sizeof(buf), "?");
	return json_string(buf);
}

int d4_sensor_view_load(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                        struct d4_sensor_view *v)
{
	int rc;

	if (v->uuid != uuid)
		memcpy(v->uuid, uuid, D4_UUID_SIZE);
	d4_uuid_format(v->uuid, v->uuid_text);
	if ((rc = d4_sensor_get(t, uuid, &v->s)) == 0)
		v->registered = true;
	else if (rc != -ENOENT)
		return rc;
	if ((rc = d4_stats_get(t, uuid, &v->st)) == 0)
		v->has_stats = true;
	else if (rc != -ENOENT)
		return rc;
	if ((rc = d4_block_uuid_get(t, uuid, &v->block)) == 0)
		v->has_block = true;
	else if (rc != -ENOENT)
		return rc;
	if ((rc = d4_kick_get(t, uuid, &v->kick)) == 0)
		v->has_kick = true;
	else if (rc != -ENOENT)
		return rc;
	return 0;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void ip_text(const uint8_t addr[D4_IP_SIZE], char out[D4_IP_STR_MAX])
{
	if (d4_ip_format(addr, out, D4_IP_STR_MAX) != 0)
		snprintf(out, D4_IP_STR_MAX, "?");
}

json_t *d4_sensor_registration_json(const struct d4_sensor *s)
{
	char pin[2 * D4_CERT_PIN_SIZE + 1];
	json_t *groups = json_array();

	if (groups == NULL)
		return NULL;
	for (unsigned i = 0; i < s->settings.n_groups; i++)
		if (json_array_append_new(groups, json_string(s->settings.groups[i])) != 0) {
			json_decref(groups);
			return NULL;
		}
	if (s->settings.has_cert_pin)
		hex_of(s->settings.cert_pin, D4_CERT_PIN_SIZE, pin);
	return json_pack("{s:s, s:b, s:o, s:o, s:{s:b, s:I}, s:s, s:s, s:{s:I, s:I, s:o, s:o}}",
	                 "state", d4_sensor_state_name(s->state), "third_party", s->third_party,
	                 "registered", d4_json_time(s->created), "updated", d4_json_time(s->updated),
	                 "key", "set", s->hmac_key_len > 0, "bytes", (json_int_t)s->hmac_key_len,
	                 "description", s->description, "mail", s->mail, "settings", "max_payload",
	                 (json_int_t)s->settings.max_payload, "rate_limit_bps",
	                 (json_int_t)s->settings.rate_limit_bps, "cert_pin",
	                 s->settings.has_cert_pin ? json_string(pin) : json_null(), "groups", groups);
}

json_t *d4_last_error_json(const struct d4_last_error *e)
{
	char ip[D4_IP_STR_MAX];

	if (e->time == 0)
		return json_null();
	ip_text(e->peer, ip);
	return json_pack("{s:o, s:s, s:s, s:i, s:s}", "time", d4_json_time(e->time), "reason",
	                 d4_reason_name(e->reason), "peer", ip, "peer_port", (int)e->peer_port, "text",
	                 e->text);
}

static json_t *stats_json(const struct d4_sensor_stats *st)
{
	char ip[D4_IP_STR_MAX];
	json_t *types = json_array(), *metas = json_array(), *addrs = json_array(),
	       *refusals = json_object(), *err = NULL;

	if (types == NULL || metas == NULL || addrs == NULL || refusals == NULL)
		goto fail;
	for (unsigned ty = 0; ty < D4_TYPES; ty++) {
		if (st->types[ty].packets == 0 && st->types[ty].bytes == 0)
			continue;
		if (json_array_append_new(types, json_pack("{s:i, s:s, s:I, s:I}", "type", (int)ty,
		                                           "name", d4_type_name(ty), "packets",
		                                           (json_int_t)st->types[ty].packets, "bytes",
		                                           (json_int_t)st->types[ty].bytes)) != 0)
			goto fail;
	}
	for (unsigned i = 0; i < st->n_meta && i < D4_STATS_META_MAX; i++)
		if (json_array_append_new(metas, json_pack("{s:s, s:I, s:I}", "name", st->meta[i].name,
		                                           "packets", (json_int_t)st->meta[i].c.packets,
		                                           "bytes", (json_int_t)st->meta[i].c.bytes)) != 0)
			goto fail;
	for (unsigned i = 0; i < st->n_addrs && i < D4_STATS_ADDRS; i++) {
		ip_text(st->addrs[i].addr, ip);
		if (json_array_append_new(addrs, json_pack("{s:s, s:o}", "address", ip, "time",
		                                           d4_json_time(st->addrs[i].time))) != 0)
			goto fail;
	}
	for (unsigned rs = 1; rs < D4_R_COUNT; rs++)
		if (st->refusals[rs] != 0 &&
		    json_object_set_new(refusals, d4_reason_name((enum d4_reason)rs),
		                        json_integer((json_int_t)st->refusals[rs])) != 0)
			goto fail;
	if ((err = d4_last_error_json(&st->last_error)) == NULL)
		goto fail;
	/* json_pack's "o" steals the references, even when it fails */
	return json_pack("{s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "first_seen",
	                 d4_json_time(st->first_seen), "last_seen", d4_json_time(st->last_seen),
	                 "packets", (json_int_t)st->total.packets, "bytes", (json_int_t)st->total.bytes,
	                 "active_sessions", (json_int_t)st->active_sessions, "types", types,
	                 "meta_types", metas, "last_addresses", addrs, "refusals", refusals,
	                 "last_error", err, "skewed_frames", (json_int_t)st->skewed, "last_skew",
	                 (json_int_t)st->last_skew);
fail:
	json_decref(types);
	json_decref(metas);
	json_decref(addrs);
	json_decref(refusals);
	json_decref(err);
	return NULL;
}

json_t *d4_sensor_view_json(const struct d4_sensor_view *d, uint64_t now)
{
	json_t *o = json_object(), *x;

	if (o == NULL || json_object_set_new(o, "uuid", json_string(d->uuid_text)) != 0)
		goto fail;
	x = d->registered ? d4_sensor_registration_json(&d->s) : json_null();
	if (x == NULL || json_object_set_new(o, "registration", x) != 0)
		goto fail;
	if (d->has_block && d4_block_active(d->block.expires, now))
		x = json_pack("{s:o, s:o, s:s}", "since", d4_json_time(d->block.created), "until",
		              d4_json_time(d->block.expires), "comment", d->block.comment);
	else
		x = json_null();
	if (x == NULL || json_object_set_new(o, "blocked", x) != 0)
		goto fail;
	if (json_object_set_new(o, "kick_requested",
	                        d->has_kick ? d4_json_time(d->kick) : json_null()) != 0)
		goto fail;
	x = d->has_stats ? stats_json(&d->st) : json_null();
	if (x == NULL || json_object_set_new(o, "statistics", x) != 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

