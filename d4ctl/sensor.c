/*
 * sensor.c — `d4ctl sensor ...`: the operator's view of sensor registrations
 * and what d4-ingest observed of each sensor.
 *
 * Every change is one short write transaction (read, check, write, commit),
 * so that d4-ingest, which writes its statistics once a second, never waits
 * long, and sees the change at its next policy-generation check. Reads use
 * one read transaction, so that a sensor, its statistics and its block entry
 * come from one snapshot.
 *
 * Keys: a sensor's HMAC key is a secret shared with one sensor. It is never
 * printed, except a key made here by --generate-key, shown exactly once so
 * that it can be put in the sensor's `key` file. The stored key is the text
 * the sensor reads from that file (trailing CR/LF removed, as the clients
 * do), so a generated key is stored as its 64 hex characters.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "d4_keyfile.h"
#include "d4_net.h"
#include "d4_proto.h"
#include "d4_sensor_view.h"
#include "d4_uuid.h"
#include "d4ctl.h"

#define GENERATED_KEY_BYTES 32
#define SAFE_MAX (D4_SENSOR_DESC_MAX + 1)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] sensor <subcommand> ...\n\n"
		"  list [--status pending|approved|rejected]\n"
		"                               one line per registered sensor\n"
		"  show UUID                    registration, settings, statistics, blocks\n"
		"  register UUID (--key KEY | --key-file FILE | --generate-key)\n"
		"           [--description D] [--mail M] [--third-party] [--approve]\n"
		"                               add a sensor (pending unless --approve)\n"
		"  approve UUID | reject UUID   let the sensor in, or keep it out\n"
		"  delete UUID [--stats]        forget the registration (--stats: and its statistics)\n"
		"  set-key UUID (--key KEY | --key-file FILE | --generate-key)\n"
		"                               replace the HMAC key (a given key is never echoed)\n"
		"  set UUID [--description D] [--mail M] [--max-payload N] [--rate-limit BYTES_PER_S]\n"
		"           [--cert-pin SHA256HEX|none] [--groups a,b]\n"
		"                               tune a sensor (0 = the server's limit / unlimited;\n"
		"                               --groups '' clears the groups)\n"
		"  block UUID [--for DURATION] [--comment C]\n"
		"                               refuse the sensor (permanently unless --for 10m, 2h, 1d)\n"
		"  unblock UUID                 lift the block\n"
		"  kick UUID                    close the sensor's sessions (it may reconnect)\n"
		"  block-ip UUID [--for DURATION] [--comment C]\n"
		"                               block the address the sensor last connected from\n\n"
		"A key given with --key shows in the process list and the shell history:\n"
		"prefer --key-file or --generate-key. A generated key is shown once.\n"
		"--json (a global option, before 'sensor') prints list and show as JSON.\n");
}

/* ---- shared bits ---- */

/* Exactly one positional argument (the UUID) after the options. */
static int one_uuid(const char *where, int argc, char **argv, bool need_v4,
                    uint8_t uuid[D4_UUID_SIZE])
{
	if (argc - optind != 1) {
		d4ctl_err(where, argc - optind == 0 ? "missing the sensor UUID"
		                                    : "expected one sensor UUID, got more arguments");
		fprintf(stderr, "(see 'd4ctl sensor --help')\n");
		return D4CTL_USAGE;
	}
	return d4ctl_parse_uuid(where, argv[optind], need_v4, uuid);
}

/* The usual reply to a store error: what failed and on which sensor. */
static int store_fail(const char *where, const char *uuid_text, int rc)
{
	if (rc == -ENOENT)
		d4ctl_err(where, "no sensor %s is registered", uuid_text);
	else if (rc == -EEXIST)
		d4ctl_err(where, "sensor %s is already registered", uuid_text);
	else
		d4ctl_err(where, "%s: %s", uuid_text, d4_store_strerror(rc));
	return d4ctl_store_status(rc);
}

/* Commits t; on failure says so. */
/* ---- keys ---- */

struct key_opts {
	const char *key;
	const char *key_file;
	bool generate;
};

/* The key bytes of a `key` file: raw, minus trailing CR/LF (as the clients read it). */
static int read_key_file(const char *where, const char *path, struct d4_sensor *s)
{
	char err[512];
	if (d4_key_file_read(path, s->hmac_key, D4_SENSOR_KEY_MAX, &s->hmac_key_len, NULL, err,
	                     sizeof(err)) != 0) {
		d4ctl_err(where, "%s", err);
		return D4CTL_USAGE; /* the file named on the command line will not do */
	}
	return D4CTL_OK;
}

/*
 * Fills s->hmac_key from exactly one of the key options. A generated key is
 * GENERATED_KEY_BYTES random bytes written as hex: those hex characters are
 * the key (what the sensor's `key` file holds).
 */
static int choose_key(const char *where, const struct key_opts *k, struct d4_sensor *s)
{
	int given = (k->key != NULL) + (k->key_file != NULL) + k->generate;

	if (given != 1) {
		d4ctl_err(where, given == 0 ? "give the key: --key KEY, --key-file FILE or --generate-key"
		                            : "--key, --key-file and --generate-key exclude each other");
		return D4CTL_USAGE;
	}
	if (k->key != NULL) {
		size_t n = strlen(k->key);
		if (n == 0 || n > D4_SENSOR_KEY_MAX) {
			d4ctl_err(where, "--key: the key must be 1 to %d bytes", D4_SENSOR_KEY_MAX);
			return D4CTL_USAGE;
		}
		memcpy(s->hmac_key, k->key, n);
		s->hmac_key_len = n;
		return D4CTL_OK;
	}
	if (k->key_file != NULL)
		return read_key_file(where, k->key_file, s);

	uint8_t raw[GENERATED_KEY_BYTES];
	static const char hex[] = "0123456789abcdef";
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		d4ctl_err(where, "the random generator failed");
		return D4CTL_ERROR;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		s->hmac_key[2 * i] = (uint8_t)hex[raw[i] >> 4];
		s->hmac_key[2 * i + 1] = (uint8_t)hex[raw[i] & 15];
	}
	s->hmac_key_len = 2 * sizeof(raw);
	OPENSSL_cleanse(raw, sizeof(raw));
	return D4CTL_OK;
}

/* Prints a generated key, once, with what to do with it. */
static void show_generated_key(const struct d4_sensor *s)
{
	printf("key: %.*s\n", (int)s->hmac_key_len, (const char *)s->hmac_key);
	printf("(shown once: write it to the sensor's 'key' file; it is not displayed again)\n");
}

/* ---- list ---- */

struct list_walk {
	struct d4_txn *t;
	bool json;
	int status; /* -1: every state */
	json_t *arr;
	size_t n;
	struct d4_sensor_stats st;
};

static int list_cb(const struct d4_sensor *s, void *ctx)
{
	struct list_walk *w = ctx;
	char uuid[D4_UUID_STR_LEN + 1], seen[D4CTL_TIME_LEN], desc[SAFE_MAX];
	int rc;

	if (w->status >= 0 && (int)s->state != w->status)
		return 0;
	rc = d4_stats_get(w->t, s->uuid, &w->st);
	if (rc == -ENOENT)
		memset(&w->st, 0, sizeof(w->st));
	else if (rc != 0)
		return rc;
	d4_uuid_format(s->uuid, uuid);
	w->n++;
	if (w->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "uuid", uuid, "state",
		                      d4_sensor_state_name(s->state), "description", s->description,
		                      "last_seen", d4ctl_json_time(w->st.last_seen), "packets",
		                      (json_int_t)w->st.total.packets, "bytes",
		                      (json_int_t)w->st.total.bytes, "active_sessions",
		                      (json_int_t)w->st.active_sessions);
		if (o == NULL || json_array_append_new(w->arr, o) != 0)
			return -ENOMEM;
		return 0;
	}
	d4ctl_format_time(w->st.last_seen, seen);
	printf("%-36s  %-8s  %-20s  %12" PRIu64 "  %15" PRIu64 "  %4" PRIu32 "  %s\n", uuid,
	       d4_sensor_state_name(s->state), seen, w->st.total.packets, w->st.total.bytes,
	       w->st.active_sessions, d4ctl_safe(s->description, desc, sizeof(desc)));
	return 0;
}

static int sensor_list(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"status", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "sensor list";
	struct list_walk *w = NULL;
	struct d4_txn t;
	bool in_txn = false;
	int status = -1, rc, c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			status = d4_sensor_state_from_name(optarg);
			if (status < 0) {
				d4ctl_err(where, "--status: '%s' is not pending, approved or rejected",
				          optarg);
				return D4CTL_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if (optind != argc) {
		d4ctl_err(where, "unexpected argument '%s'", argv[optind]);
		return D4CTL_USAGE;
	}
	/* the walk holds one statistics record (about 7 KiB): keep it off the stack */
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		d4ctl_err(where, "out of memory");
		return D4CTL_ERROR;
	}
	if ((rc = d4ctl_begin(where, ctl, &t, false)) != D4CTL_OK)
		goto out;
	in_txn = true;
	w->t = &t;
	w->json = ctl->json;
	w->status = status;
	if (ctl->json && (w->arr = json_array()) == NULL) {
		rc = D4CTL_ERROR;
		goto out;
	}
	if (!ctl->json)
		printf("%-36s  %-8s  %-20s  %12s  %15s  %4s  %s\n", "UUID", "STATE", "LAST SEEN",
		       "PACKETS", "BYTES", "SESS", "DESCRIPTION");
	int wrc = d4_sensor_iterate(&t, list_cb, w);
	if (wrc != 0) {
		d4ctl_err(where, "reading the sensors: %s", d4_store_strerror(wrc));
		rc = wrc == -ENOMEM ? D4CTL_ERROR : d4ctl_store_status(wrc);
		if (rc == D4CTL_FAILED)
			rc = D4CTL_ERROR; /* a malformed record is a broken store, not a refusal */
		goto out;
	}
	if (ctl->json) {
		rc = d4ctl_json_print(w->arr);
		w->arr = NULL;
	} else {
		if (w->n == 0)
			printf("(no sensor%s%s)\n", status >= 0 ? " is " : " is registered",
			       status >= 0 ? d4_sensor_state_name((enum d4_sensor_state)status) : "");
		rc = D4CTL_OK;
	}
out:
	if (in_txn)
		d4_txn_abort(&t);
	if (w != NULL)
		json_decref(w->arr);
	free(w);
	return rc;
}

/* ---- show ---- */


static void hex_of(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void groups_text(const struct d4_sensor_settings *st, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < st->n_groups; i++) {
		int n = snprintf(out + used, cap - used, "%s%s", i ? "," : "", st->groups[i]);
		if (n < 0 || (size_t)n >= cap - used)
			break;
		used += (size_t)n;
	}
}

static void ip_text(const uint8_t addr[D4_IP_SIZE], char out[D4_IP_STR_MAX])
{
	if (d4_ip_format(addr, out, D4_IP_STR_MAX) != 0)
		snprintf(out, D4_IP_STR_MAX, "?");
}

static void show_text(const struct d4_sensor_view *d, uint64_t now)
{
	const struct d4_sensor *s = &d->s;
	const struct d4_sensor_stats *st = &d->st;
	char t1[D4CTL_TIME_LEN], t2[D4CTL_TIME_LEN], buf[SAFE_MAX], ip[D4_IP_STR_MAX];

	printf("uuid:            %s\n", d->uuid_text);
	if (d->registered) {
		char pin[2 * D4_CERT_PIN_SIZE + 1];
		char groups[D4_SENSOR_GROUPS_MAX * (D4_GROUP_NAME_MAX + 1) + 1];

		d4ctl_format_time(s->created, t1);
		d4ctl_format_time(s->updated, t2);
		printf("state:           %s\n", d4_sensor_state_name(s->state));
		printf("third party:     %s\n", s->third_party ? "yes" : "no");
		printf("registered:      %s\n", t1);
		printf("updated:         %s\n", t2);
		if (s->hmac_key_len > 0)
			printf("key:             set (%zu bytes)\n", s->hmac_key_len);
		else
			printf("key:             not set (the server's shared key applies)\n");
		printf("description:     %s\n", d4ctl_safe(s->description, buf, sizeof(buf)));
		printf("mail:            %s\n", d4ctl_safe(s->mail, buf, sizeof(buf)));
		if (s->settings.max_payload != 0)
			printf("max payload:     %" PRIu32 " bytes\n", s->settings.max_payload);
		else
			printf("max payload:     the server's limit\n");
		if (s->settings.rate_limit_bps != 0)
			printf("rate limit:      %" PRIu64 " bytes/s\n", s->settings.rate_limit_bps);
		else
			printf("rate limit:      unlimited\n");
		if (s->settings.has_cert_pin) {
			hex_of(s->settings.cert_pin, D4_CERT_PIN_SIZE, pin);
			printf("cert pin:        sha256 %s\n", pin);
		} else {
			printf("cert pin:        none\n");
		}
		groups_text(&s->settings, groups, sizeof(groups));
		printf("groups:          %s\n", s->settings.n_groups ? groups : "none");
	} else {
		printf("state:           not registered (statistics remain from an earlier registration)\n");
	}
	if (d->has_block && d4_block_active(d->block.expires, now)) {
		d4ctl_format_time(d->block.created, t1);
		d4ctl_format_time(d->block.expires, t2);
		printf("blocked:         yes, %s%s (since %s)%s%s\n",
		       d->block.expires ? "until " : "permanently", d->block.expires ? t2 : "", t1,
		       d->block.comment[0] ? ": " : "",
		       d4ctl_safe(d->block.comment, buf, sizeof(buf)));
	} else if (d->has_block) {
		d4ctl_format_time(d->block.expires, t2);
		printf("blocked:         no (a temporary block ended %s)\n", t2);
	} else {
		printf("blocked:         no\n");
	}
	if (d->has_kick) {
		d4ctl_format_time(d->kick, t1);
		printf("kick requested:  %s (not yet acted on by d4-ingest)\n", t1);
	}
	if (!d->has_stats) {
		printf("statistics:      none (d4-ingest has seen nothing of this sensor)\n");
		return;
	}
	d4ctl_format_time(st->first_seen, t1);
	d4ctl_format_time(st->last_seen, t2);
	printf("statistics:\n");
	printf("  first seen:      %s\n", t1);
	printf("  last seen:       %s\n", t2);
	printf("  packets:         %" PRIu64 "\n", st->total.packets);
	printf("  bytes:           %" PRIu64 "\n", st->total.bytes);
	printf("  active sessions: %" PRIu32 "\n", st->active_sessions);
	printf("  per type:%s\n", st->total.packets || st->total.bytes ? "" : "        none");
	for (unsigned ty = 0; ty < D4_TYPES; ty++)
		if (st->types[ty].packets != 0 || st->types[ty].bytes != 0)
			printf("    %3u %-14s packets %" PRIu64 ", bytes %" PRIu64 "\n", ty,
			       d4_type_name(ty), st->types[ty].packets, st->types[ty].bytes);
	if (st->n_meta > 0)
		printf("  per meta-type:\n");
	for (unsigned i = 0; i < st->n_meta; i++)
		printf("    %-18s packets %" PRIu64 ", bytes %" PRIu64 "\n",
		       d4ctl_safe(st->meta[i].name, buf, sizeof(buf)), st->meta[i].c.packets,
		       st->meta[i].c.bytes);
	printf("  last addresses:%s\n", st->n_addrs ? "" : "  none");
	for (unsigned i = 0; i < st->n_addrs; i++) {
		ip_text(st->addrs[i].addr, ip);
		d4ctl_format_time(st->addrs[i].time, t1);
		printf("    %-39s %s\n", ip, t1);
	}
	bool any = false;
	for (unsigned r = 1; r < D4_R_COUNT; r++)
		any |= st->refusals[r] != 0;
	printf("  refusals:%s\n", any ? "" : "        none");
	for (unsigned r = 1; r < D4_R_COUNT; r++)
		if (st->refusals[r] != 0)
			printf("    %-28s %" PRIu64 "\n", d4_reason_name((enum d4_reason)r),
			       st->refusals[r]);
	if (st->last_error.time != 0) {
		ip_text(st->last_error.peer, ip);
		d4ctl_format_time(st->last_error.time, t1);
		printf("  last error:      %s %s from [%s]:%u: %s\n", t1,
		       d4_reason_name(st->last_error.reason), ip, (unsigned)st->last_error.peer_port,
		       d4ctl_safe(st->last_error.text, buf, sizeof(buf)));
	} else {
		printf("  last error:      none\n");
	}
	printf("  skewed frames:   %" PRIu64, st->skewed);
	if (st->skewed != 0)
		printf(" (last off by %+" PRId64 " s)", st->last_skew);
	printf("\n");
}

static int sensor_show(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "sensor show";
	struct d4_sensor_view *d = NULL;
	struct d4_txn t;
	bool in_txn = false;
	int rc, c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return D4CTL_OK;
		}
		return d4ctl_getopt_error(where, c, argv);
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		d4ctl_err(where, "out of memory");
		return D4CTL_ERROR;
	}
	if ((rc = one_uuid(where, argc, argv, false, d->uuid)) != 0)
		goto out;
	if ((rc = d4ctl_begin(where, ctl, &t, false)) != D4CTL_OK)
		goto out;
	in_txn = true;

	int src;
	if ((src = d4_sensor_view_load(&t, d->uuid, d)) != 0)
		goto store_error;
	if (!d->registered && !d->has_stats) {
		rc = store_fail(where, d->uuid_text, -ENOENT);
		goto out;
	}
	if (ctl->json)
		rc = d4ctl_json_print(d4_sensor_view_json(d, ctl->now));
	else {
		show_text(d, ctl->now);
		rc = D4CTL_OK;
	}
	goto out;

store_error:
	d4ctl_err(where, "%s: %s", d->uuid_text, d4_store_strerror(src));
	rc = D4CTL_ERROR;
out:
	if (in_txn)
		d4_txn_abort(&t);
	if (d != NULL)
		OPENSSL_cleanse(d->s.hmac_key, sizeof(d->s.hmac_key));
	free(d);
	return rc;
}

/* ---- register, set-key ---- */

static int sensor_register(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"key", required_argument, NULL, 'k'},
		{"key-file", required_argument, NULL, 'K'},
		{"generate-key", no_argument, NULL, 'g'},
		{"description", required_argument, NULL, 'd'},
		{"mail", required_argument, NULL, 'm'},
		{"third-party", no_argument, NULL, 't'},
		{"approve", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "sensor register";
	struct key_opts k = {0};
	struct d4_sensor s;
	const char *desc = "", *mail = "";
	bool approve = false;
	struct d4_txn t;
	char uuid_text[D4_UUID_STR_LEN + 1];
	int rc, src, c;

	memset(&s, 0, sizeof(s));
	optind = 0;
	while ((c = getopt_long(argc, argv, ":k:K:gd:m:tah", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k.key = optarg;
			break;
		case 'K':
			k.key_file = optarg;
			break;
		case 'g':
			k.generate = true;
			break;
		case 'd':
			desc = optarg;
			break;
		case 'm':
			mail = optarg;
			break;
		case 't':
			s.third_party = true;
			break;
		case 'a':
			approve = true;
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if ((rc = one_uuid(where, argc, argv, true, s.uuid)) != 0)
		return rc;
	d4_uuid_format(s.uuid, uuid_text);
	if (strlen(desc) > D4_SENSOR_DESC_MAX || strlen(mail) > D4_SENSOR_MAIL_MAX) {
		d4ctl_err(where, "--description is at most %d bytes, --mail at most %d",
		          D4_SENSOR_DESC_MAX, D4_SENSOR_MAIL_MAX);
		return D4CTL_USAGE;
	}
	memcpy(s.description, desc, strlen(desc) + 1);
	memcpy(s.mail, mail, strlen(mail) + 1);
	s.state = approve ? D4_SENSOR_APPROVED : D4_SENSOR_PENDING;
	if ((rc = choose_key(where, &k, &s)) != D4CTL_OK)
		goto out;

	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		goto out;
	if ((src = d4_sensor_register(&t, &s, ctl->now)) != 0) {
		d4_txn_abort(&t);
		rc = store_fail(where, uuid_text, src);
		goto out;
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		goto out;
	printf("registered sensor %s (%s)\n", uuid_text, d4_sensor_state_name(s.state));
	if (k.generate)
		show_generated_key(&s);
	if (!approve)
		printf("it is refused until approved: d4ctl sensor approve %s\n", uuid_text);
out:
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
	return rc;
}

static int sensor_set_key(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"key", required_argument, NULL, 'k'},
		{"key-file", required_argument, NULL, 'K'},
		{"generate-key", no_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "sensor set-key";
	struct key_opts k = {0};
	struct d4_sensor s, fresh;
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_txn t;
	int rc, src, c;

	memset(&s, 0, sizeof(s));
	memset(&fresh, 0, sizeof(fresh));
	optind = 0;
	while ((c = getopt_long(argc, argv, ":k:K:gh", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k.key = optarg;
			break;
		case 'K':
			k.key_file = optarg;
			break;
		case 'g':
			k.generate = true;
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if ((rc = one_uuid(where, argc, argv, false, uuid)) != 0)
		return rc;
	d4_uuid_format(uuid, uuid_text);
	if ((rc = choose_key(where, &k, &fresh)) != D4CTL_OK)
		goto out;
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		goto out;
	if ((src = d4_sensor_get(&t, uuid, &s)) != 0) {
		d4_txn_abort(&t);
		rc = store_fail(where, uuid_text, src);
		goto out;
	}
	memcpy(s.hmac_key, fresh.hmac_key, fresh.hmac_key_len);
	s.hmac_key_len = fresh.hmac_key_len;
	if ((src = d4_sensor_update(&t, &s, ctl->now)) != 0) {
		d4_txn_abort(&t);
		rc = store_fail(where, uuid_text, src);
		goto out;
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		goto out;
	printf("replaced the key of sensor %s (%zu bytes)\n", uuid_text, s.hmac_key_len);
	if (k.generate)
		show_generated_key(&s);
	printf("its open sessions keep the old key until they reconnect: d4ctl sensor kick %s\n",
	       uuid_text);
out:
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
	OPENSSL_cleanse(fresh.hmac_key, sizeof(fresh.hmac_key));
	return rc;
}

/* ---- approve, reject, delete, unblock, kick: UUID and nothing else ---- */

enum simple_op { OP_APPROVE, OP_REJECT, OP_DELETE, OP_UNBLOCK, OP_KICK };

static int simple_op(struct d4ctl *ctl, int argc, char **argv, const char *where, enum simple_op op)
{
	static const struct option longopts[] = {
		{"stats", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_sensor s;
	struct d4_txn t;
	bool with_stats = false, already = false;
	int rc, src = 0, c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":sh", longopts, NULL)) != -1) {
		if (c == 's' && op == OP_DELETE) {
			with_stats = true;
			continue;
		}
		if (c == 'h') {
			usage(stdout);
			return D4CTL_OK;
		}
		if (c == 's')
			c = '?';
		return d4ctl_getopt_error(where, c, argv);
	}
	if ((rc = one_uuid(where, argc, argv, false, uuid)) != 0)
		return rc;
	d4_uuid_format(uuid, uuid_text);
	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;

	switch (op) {
	case OP_APPROVE:
	case OP_REJECT: {
		enum d4_sensor_state want = op == OP_APPROVE ? D4_SENSOR_APPROVED : D4_SENSOR_REJECTED;
		if ((src = d4_sensor_get(&t, uuid, &s)) != 0)
			break;
		OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
		already = s.state == want;
		if (!already)
			src = d4_sensor_set_state(&t, uuid, want, ctl->now);
		break;
	}
	case OP_DELETE:
		if ((src = d4_sensor_delete(&t, uuid)) == 0 && with_stats) {
			src = d4_stats_delete(&t, uuid);
			if (src == -ENOENT)
				src = 0; /* never connected: nothing to delete */
		}
		break;
	case OP_UNBLOCK:
		src = d4_block_uuid_delete(&t, uuid);
		if (src == -ENOENT) {
			d4_txn_abort(&t);
			d4ctl_err(where, "sensor %s is not blocked", uuid_text);
			return D4CTL_FAILED;
		}
		break;
	case OP_KICK:
		if ((src = d4_sensor_get(&t, uuid, &s)) != 0)
			break;
		OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
		src = d4_kick_request(&t, uuid, ctl->now);
		break;
	}
	if (src != 0) {
		d4_txn_abort(&t);
		return store_fail(where, uuid_text, src);
	}
	if (already) {
		d4_txn_abort(&t);
		printf("sensor %s is already %s\n", uuid_text,
		       op == OP_APPROVE ? "approved" : "rejected");
		return D4CTL_OK;
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	switch (op) {
	case OP_APPROVE:
		printf("approved sensor %s\n", uuid_text);
		break;
	case OP_REJECT:
		printf("rejected sensor %s (its open sessions are closed when d4-ingest reloads)\n",
		       uuid_text);
		break;
	case OP_DELETE:
		printf("deleted sensor %s%s\n", uuid_text,
		       with_stats ? " and its statistics" : " (statistics kept; --stats deletes them)");
		break;
	case OP_UNBLOCK:
		printf("unblocked sensor %s\n", uuid_text);
		break;
	case OP_KICK:
		printf("kick requested for sensor %s: d4-ingest closes its sessions within a second\n"
		       "(the sensor may reconnect: 'd4ctl sensor block' keeps it out)\n",
		       uuid_text);
		break;
	}
	return D4CTL_OK;
}

static int sensor_approve(struct d4ctl *ctl, int argc, char **argv)
{
	return simple_op(ctl, argc, argv, "sensor approve", OP_APPROVE);
}

static int sensor_reject(struct d4ctl *ctl, int argc, char **argv)
{
	return simple_op(ctl, argc, argv, "sensor reject", OP_REJECT);
}

static int sensor_delete(struct d4ctl *ctl, int argc, char **argv)
{
	return simple_op(ctl, argc, argv, "sensor delete", OP_DELETE);
}

static int sensor_unblock(struct d4ctl *ctl, int argc, char **argv)
{
	return simple_op(ctl, argc, argv, "sensor unblock", OP_UNBLOCK);
}

static int sensor_kick(struct d4ctl *ctl, int argc, char **argv)
{
	return simple_op(ctl, argc, argv, "sensor kick", OP_KICK);
}

/* ---- set ---- */

static bool group_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > D4_GROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* "a,b" (or "" for none) into st->groups. */
static int parse_groups(const char *where, const char *text, struct d4_sensor_settings *st)
{
	const char *p = text;

	st->n_groups = 0;
	if (*p == '\0')
		return 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (!group_name_ok(p, len)) {
			d4ctl_err(where, "--groups: '%.*s' is not a group name (1 to %d printable "
			                 "characters, no space or comma)",
			          (int)len, p, D4_GROUP_NAME_MAX);
			return D4CTL_USAGE;
		}
		if (st->n_groups == D4_SENSOR_GROUPS_MAX) {
			d4ctl_err(where, "--groups: at most %d groups", D4_SENSOR_GROUPS_MAX);
			return D4CTL_USAGE;
		}
		memcpy(st->groups[st->n_groups], p, len);
		st->groups[st->n_groups][len] = '\0';
		st->n_groups++;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* 64 hex digits, colons allowed between bytes (as `openssl x509 -fingerprint` prints). */
static int parse_pin(const char *where, const char *text, struct d4_sensor_settings *st)
{
	const char *p = text;
	size_t n = 0;

	if (strcmp(text, "none") == 0) {
		st->has_cert_pin = false;
		memset(st->cert_pin, 0, sizeof(st->cert_pin));
		return 0;
	}
	while (*p != '\0' && n < D4_CERT_PIN_SIZE) {
		int hi = hex_digit(p[0]), lo = hi < 0 ? -1 : hex_digit(p[1]);
		if (hi < 0 || lo < 0)
			break;
		st->cert_pin[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
		if (*p == ':' && n < D4_CERT_PIN_SIZE)
			p++;
	}
	if (n != D4_CERT_PIN_SIZE || *p != '\0') {
		d4ctl_err(where, "--cert-pin: '%s' is not a SHA-256 (64 hex digits) or 'none'", text);
		return D4CTL_USAGE;
	}
	st->has_cert_pin = true;
	return 0;
}

static int sensor_set(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"description", required_argument, NULL, 'd'},
		{"mail", required_argument, NULL, 'm'},
		{"max-payload", required_argument, NULL, 'p'},
		{"rate-limit", required_argument, NULL, 'r'},
		{"cert-pin", required_argument, NULL, 'P'},
		{"groups", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = "sensor set";
	const char *desc = NULL, *mail = NULL, *max_payload = NULL, *rate = NULL, *pin = NULL,
	           *groups = NULL;
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1];
	struct d4_sensor s;
	struct d4_txn t;
	uint64_t v;
	int rc, src, c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":d:m:p:r:P:g:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			desc = optarg;
			break;
		case 'm':
			mail = optarg;
			break;
		case 'p':
			max_payload = optarg;
			break;
		case 'r':
			rate = optarg;
			break;
		case 'P':
			pin = optarg;
			break;
		case 'g':
			groups = optarg;
			break;
		case 'h':
			usage(stdout);
			return D4CTL_OK;
		default:
			return d4ctl_getopt_error(where, c, argv);
		}
	}
	if ((rc = one_uuid(where, argc, argv, false, uuid)) != 0)
		return rc;
	d4_uuid_format(uuid, uuid_text);
	if (!desc && !mail && !max_payload && !rate && !pin && !groups) {
		d4ctl_err(where, "nothing to set (see 'd4ctl sensor --help')");
		return D4CTL_USAGE;
	}
	if ((desc && strlen(desc) > D4_SENSOR_DESC_MAX) ||
	    (mail && strlen(mail) > D4_SENSOR_MAIL_MAX)) {
		d4ctl_err(where, "--description is at most %d bytes, --mail at most %d",
		          D4_SENSOR_DESC_MAX, D4_SENSOR_MAIL_MAX);
		return D4CTL_USAGE;
	}

	/* parse everything before the transaction: a usage error writes nothing */
	struct d4_sensor_settings want;
	memset(&want, 0, sizeof(want));
	uint32_t want_max = 0;
	uint64_t want_rate = 0;
	if (max_payload) {
		/* the server's own limit is at most 64 MiB (ingest.max_payload) */
		if ((rc = d4ctl_parse_size(where, "--max-payload", max_payload, 64u << 20, &v)) != 0)
			return rc;
		want_max = (uint32_t)v;
	}
	if (rate && (rc = d4ctl_parse_size(where, "--rate-limit", rate, UINT64_MAX >> 30,
	                                   &want_rate)) != 0)
		return rc;
	if (pin && (rc = parse_pin(where, pin, &want)) != 0)
		return rc;
	if (groups && (rc = parse_groups(where, groups, &want)) != 0)
		return rc;

	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	if ((src = d4_sensor_get(&t, uuid, &s)) != 0) {
		d4_txn_abort(&t);
		return store_fail(where, uuid_text, src);
	}
	if (desc)
		memcpy(s.description, desc, strlen(desc) + 1);
	if (mail)
		memcpy(s.mail, mail, strlen(mail) + 1);
	if (max_payload)
		s.settings.max_payload = want_max;
	if (rate)
		s.settings.rate_limit_bps = want_rate;
	if (pin) {
		s.settings.has_cert_pin = want.has_cert_pin;
		memcpy(s.settings.cert_pin, want.cert_pin, sizeof(want.cert_pin));
	}
	if (groups) {
		s.settings.n_groups = want.n_groups;
		memcpy(s.settings.groups, want.groups, sizeof(want.groups));
	}
	src = d4_sensor_update(&t, &s, ctl->now);
	OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
	if (src != 0) {
		d4_txn_abort(&t);
		return store_fail(where, uuid_text, src);
	}
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		return rc;
	printf("updated sensor %s\n", uuid_text);
	return D4CTL_OK;
}

/* ---- block, block-ip ---- */

static int sensor_block_common(struct d4ctl *ctl, int argc, char **argv, bool by_ip)
{
	static const struct option longopts[] = {
		{"for", required_argument, NULL, 'f'},
		{"comment", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *where = by_ip ? "sensor block-ip" : "sensor block";
	const char *comment = NULL;
	uint8_t uuid[D4_UUID_SIZE];
	char uuid_text[D4_UUID_STR_LEN + 1], until[D4CTL_TIME_LEN], ip[D4_IP_STR_MAX];
	uint64_t duration = 0;
	struct d4_sensor_stats *st = NULL;
	struct d4_sensor s;
	struct d4_txn t;
	bool in_txn = false;
	int rc, src = 0, c;

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
	if ((rc = one_uuid(where, argc, argv, false, uuid)) != 0)
		return rc;
	d4_uuid_format(uuid, uuid_text);
	if (comment && strlen(comment) > D4_COMMENT_MAX) {
		d4ctl_err(where, "--comment is at most %d bytes", D4_COMMENT_MAX);
		return D4CTL_USAGE;
	}
	uint64_t expires = duration ? ctl->now + duration : 0;
	d4ctl_format_time(expires, until);

	if ((rc = d4ctl_begin(where, ctl, &t, true)) != D4CTL_OK)
		return rc;
	in_txn = true;
	if (!by_ip) {
		/* a typo must not block a uuid nobody uses: 'd4ctl block uuid add' does that */
		if ((src = d4_sensor_get(&t, uuid, &s)) != 0) {
			rc = store_fail(where, uuid_text, src);
			if (src == -ENOENT)
				fprintf(stderr, "(to block an unregistered uuid: d4ctl block uuid add %s)\n",
				        uuid_text);
			goto out;
		}
		OPENSSL_cleanse(s.hmac_key, sizeof(s.hmac_key));
		struct d4_block_uuid b;
		memset(&b, 0, sizeof(b));
		memcpy(b.uuid, uuid, sizeof(b.uuid));
		b.created = ctl->now;
		b.expires = expires;
		snprintf(b.comment, sizeof(b.comment), "%s", comment ? comment : "");
		if ((src = d4_block_uuid_put(&t, &b)) != 0) {
			rc = store_fail(where, uuid_text, src);
			goto out;
		}
	} else {
		if ((st = malloc(sizeof(*st))) == NULL) {
			d4ctl_err(where, "out of memory");
			rc = D4CTL_ERROR;
			goto out;
		}
		src = d4_stats_get(&t, uuid, st);
		if (src == -ENOENT || (src == 0 && st->n_addrs == 0)) {
			d4ctl_err(where, "no address is known for sensor %s (it has not connected)",
			          uuid_text);
			rc = D4CTL_FAILED;
			goto out;
		}
		if (src != 0) {
			rc = store_fail(where, uuid_text, src);
			goto out;
		}
		struct d4_block_ip b;
		memset(&b, 0, sizeof(b));
		memcpy(b.range.start, st->addrs[0].addr, D4_IP_SIZE);
		memcpy(b.range.end, st->addrs[0].addr, D4_IP_SIZE);
		b.created = ctl->now;
		b.expires = expires;
		if (comment)
			snprintf(b.comment, sizeof(b.comment), "%s", comment);
		else
			snprintf(b.comment, sizeof(b.comment), "last address of sensor %s", uuid_text);
		ip_text(b.range.start, ip);
		if ((src = d4_block_ip_put(&t, &b)) != 0) {
			d4ctl_err(where, "%s: %s", ip, d4_store_strerror(src));
			rc = d4ctl_store_status(src);
			goto out;
		}
	}
	in_txn = false;
	if ((rc = d4ctl_commit(where, &t)) != D4CTL_OK)
		goto out;
	if (by_ip)
		printf("blocked address %s (last address of sensor %s) %s%s\n", ip, uuid_text,
		       expires ? "until " : "permanently", expires ? until : "");
	else
		printf("blocked sensor %s %s%s\n", uuid_text, expires ? "until " : "permanently",
		       expires ? until : "");
out:
	if (in_txn)
		d4_txn_abort(&t);
	free(st);
	return rc;
}

static int sensor_block(struct d4ctl *ctl, int argc, char **argv)
{
	return sensor_block_common(ctl, argc, argv, false);
}

static int sensor_block_ip(struct d4ctl *ctl, int argc, char **argv)
{
	return sensor_block_common(ctl, argc, argv, true);
}

/* ---- dispatch ---- */

int cmd_sensor(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct d4ctl_sub subs[] = {
		{"list", sensor_list},       {"show", sensor_show},       {"register", sensor_register},
		{"approve", sensor_approve}, {"reject", sensor_reject},   {"delete", sensor_delete},
		{"set-key", sensor_set_key}, {"set", sensor_set},         {"block", sensor_block},
		{"unblock", sensor_unblock}, {"kick", sensor_kick},       {"block-ip", sensor_block_ip},
	};

	return d4ctl_subcommand(ctl, "sensor", subs, sizeof(subs) / sizeof(subs[0]), usage, argc,
	                        argv);
}
