/*
 * d4_sensor_view.h — everything the store knows about one sensor, and its JSON form.
 *
 * `d4ctl --json sensor show` and d4-web's GET /api/v1/sensors/{uuid} give the
 * same object (registration without the key, block, kick request, statistics),
 * so it is read and written here once. The key is never part of the JSON: only
 * whether one is set and its length.
 */
#ifndef D4_SENSOR_VIEW_H
#define D4_SENSOR_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "d4_store.h"
#include "d4_uuid.h"

struct d4_sensor_view {
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	bool registered, has_stats, has_block, has_kick;
	struct d4_sensor s; /* holds the key: wipe it when done */
	struct d4_sensor_stats st;
	struct d4_block_uuid block;
	uint64_t kick;
};

/*
 * Reads the registration, statistics, uuid block and kick request of a uuid in
 * t (each may be absent). 0, or the first store error other than -ENOENT.
 */
int d4_sensor_view_load(struct d4_txn *t, const uint8_t uuid[D4_UUID_SIZE],
                        struct d4_sensor_view *v);
/* The JSON object (NULL without memory); `now` decides whether a block is in force. */
json_t *d4_sensor_view_json(const struct d4_sensor_view *v, uint64_t now);
/* Parts of it, for replies that show only these. */
json_t *d4_sensor_registration_json(const struct d4_sensor *s);
json_t *d4_last_error_json(const struct d4_last_error *e); /* JSON null when none */
/* ISO 8601 UTC ("2026-11-25T10:41:01Z") as a JSON string, or JSON null for 0. */
json_t *d4_json_time(uint64_t t);

#endif
