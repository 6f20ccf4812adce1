/*
 * d4ctl.h — the operator's tool: one file per command group, dispatched from main.c.
 *
 * main.c parses the global options (-c FILE, --set, --json), loads the
 * configuration and hands every command a struct d4ctl: the one context of
 * the process. A command that needs the store asks for it with
 * d4ctl_open_store() (read-only for read commands, so that inspecting a
 * store never creates one); main.c closes it. The small helpers below are
 * shared by the command files, so that every command words its errors, its
 * times and its JSON the same way.
 */
#ifndef D4CTL_H
#define D4CTL_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "d4_daemon.h"
#include "d4_proto.h"
#include "d4_store.h"

/* Exit statuses shared by every command. */
enum {
	D4CTL_OK = 0,
	D4CTL_FAILED = 1, /* the command ran and found a problem (bad frame, refused ...) */
	D4CTL_USAGE = 2,  /* bad command line */
	D4CTL_ERROR = 3,  /* could not run (file, store, network) */
};

/* The process's context, owned by main(). */
struct d4ctl {
	bool json;                /* --json: machine-readable output */
	struct d4_daemon d;       /* configuration and paths (d.paths.store) */
	struct d4_store *store;   /* NULL until d4ctl_open_store() */
	bool store_writable;
	uint64_t now;             /* one clock reading per run: every write uses it */
	const char **sets;        /* the --set assignments, passed on to the servers by `run` */
	size_t nsets;
};

/* ISO 8601 UTC ("2026-11-25T10:41:01Z") and its NUL, or "-". */
#define D4CTL_TIME_LEN 24

int cmd_decode(int argc, char **argv);
int cmd_tail(struct d4ctl *ctl, int argc, char **argv);
/* One line (or JSON object) describing a frame, as `d4ctl decode` prints it. */
void d4ctl_print_frame(const struct d4_header *h, uint64_t frame_no, uint64_t offset,
                       enum d4_hmac_status hs, bool json);
int cmd_sensor(struct d4ctl *ctl, int argc, char **argv);
int cmd_block(struct d4ctl *ctl, int argc, char **argv);
int cmd_types(struct d4ctl *ctl, int argc, char **argv);
int cmd_stats(struct d4ctl *ctl, int argc, char **argv);
int cmd_user(struct d4ctl *ctl, int argc, char **argv);
int cmd_run(struct d4ctl *ctl, int argc, char **argv);
int cmd_start(struct d4ctl *ctl, int argc, char **argv);
int cmd_stop(struct d4ctl *ctl, int argc, char **argv);
int cmd_status(struct d4ctl *ctl, int argc, char **argv);
int cmd_reload(struct d4ctl *ctl, int argc, char **argv);
int cmd_queue(struct d4ctl *ctl, int argc, char **argv);

/* A self-signed server certificate and its key (certs.c). 0 or -1 with err. */
int d4ctl_make_cert(const char *cert_path, const char *key_path, char *err, size_t errlen);

/*
 * Opens the store at ctl->d.paths.store (once; a read-only handle is
 * reopened writable when a write is asked for). A read-only open of a
 * missing store says so. D4CTL_OK or D4CTL_ERROR after printing why.
 */
int d4ctl_open_store(struct d4ctl *ctl, bool write);
/* Opens the store as needed and begins a transaction. D4CTL_OK or a status after printing why. */
int d4ctl_begin(const char *where, struct d4ctl *ctl, struct d4_txn *t, bool write);
/* Commits; on failure prints why and returns the status for it. */
int d4ctl_commit(const char *where, struct d4_txn *t);
/* Exit status for a store error: not found, exists, refused -> 1; the rest -> 3. */
int d4ctl_store_status(int rc);

/* "d4ctl <where>: <message>" on stderr. */
void d4ctl_err(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Reports a getopt_long error (optstring starting with ':'): c is ':' for a
 * missing value, '?' for an unknown option. Returns D4CTL_USAGE.
 */
int d4ctl_getopt_error(const char *where, int c, char **argv);
/* Whether argv[i] is -h, --help or help. */
bool d4ctl_is_help(const char *arg);

/* One subcommand of a command group ("d4ctl sensor list ..."). */
struct d4ctl_sub {
	const char *name;
	int (*run)(struct d4ctl *ctl, int argc, char **argv);
};
/*
 * Runs the subcommand argv[1] of `group` with (argc - 1, argv + 1); no subcommand or an
 * unknown one prints the group's usage on stderr (D4CTL_USAGE), -h/--help on stdout.
 */
int d4ctl_subcommand(struct d4ctl *ctl, const char *group, const struct d4ctl_sub *subs,
                     size_t n, void (*group_usage)(FILE *out), int argc, char **argv);

/* A UUID (v4 only when need_v4). 0, or D4CTL_USAGE after printing why. */
int d4ctl_parse_uuid(const char *where, const char *text, bool need_v4, uint8_t out[16]);
/* 90, 90s, 10m, 2h, 1d, 1w: seconds, > 0. 0 or D4CTL_USAGE after printing why. */
int d4ctl_parse_duration(const char *where, const char *text, uint64_t *secs);
/* A decimal number with an optional k/M/G suffix (powers of 1024), at most max. */
int d4ctl_parse_size(const char *where, const char *what, const char *text, uint64_t max,
                     uint64_t *out);

/*
 * s with every control byte shown as '?', cut to fit cap: text that came
 * from a web form or a sensor must not move the operator's cursor.
 */
const char *d4ctl_safe(const char *s, char *buf, size_t cap);
/* ISO 8601 UTC of t, or "-" for 0. */
void d4ctl_format_time(uint64_t t, char out[D4CTL_TIME_LEN]);
/* The same as a JSON string, or JSON null for 0. */
json_t *d4ctl_json_time(uint64_t t);
/* Prints j (indented) and a newline, and releases it. D4CTL_OK, or D4CTL_ERROR (NULL j too). */
int d4ctl_json_print(json_t *j);

#endif
