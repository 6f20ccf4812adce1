/*
 * d4_daemon.h — what every server process does before its loop: the command
 * line (-c FILE, --set section.key=value, -h), the configuration, logging,
 * and the paths under the data directory.
 *
 *   [d4]
 *   data_dir  = ./var          where the store, the TLS material and sockets live
 *   log_level = info           err | warn | notice | info | debug
 *   log       = stderr         stderr | syslog
 *
 * Paths derived from data_dir (each can be overridden in its own section):
 *   <data_dir>/store           the LMDB environment
 *   <data_dir>/tls/server.crt, server.key
 *   <data_dir>/run/dispatch.sock
 */
#ifndef D4_DAEMON_H
#define D4_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "d4_config.h"

#define D4_PATH_MAX 4096

struct d4_paths {
	char data_dir[D4_PATH_MAX];
	char store[D4_PATH_MAX];
	char tls_cert[D4_PATH_MAX];
	char tls_key[D4_PATH_MAX];
	char dispatch_socket[D4_PATH_MAX];
};

struct d4_daemon {
	const char *prog;     /* "d4-ingest" */
	const char *config_path;
	struct d4_config *cfg;
	struct d4_paths paths;
};

/*
 * Parses argv (-c/--config FILE, -s/--set section.key=value (repeatable),
 * -h/--help, -V/--version), loads the configuration (an absent -c means
 * embedded defaults only), sets up logging from [d4], and derives the paths.
 * `help` is printed under the common options for -h.
 * Returns 0 to go on, 1 when the process should exit 0 (help, version),
 * -1 after printing an error (exit 2 for usage, 1 otherwise is the caller's choice).
 */
int d4_daemon_init(struct d4_daemon *d, const char *prog, const char *help, int argc,
                   char **argv);
/*
 * The second half of d4_daemon_init, for programs that parse their own
 * command line (d4ctl): set d->prog and d->config_path (or NULL) first.
 * Loads the file, applies the --set assignments in order, sets up logging
 * and derives the paths. 0 or -1 after printing an error.
 */
int d4_daemon_configure(struct d4_daemon *d, const char *const *sets, size_t nsets);
void d4_daemon_free(struct d4_daemon *d);

/* Joins dir and name into out; -1 if it does not fit. */
int d4_path_join(char *out, size_t cap, const char *dir, const char *name);
/* mkdir -p with mode for each created component; 0 or -1 (errno set). */
int d4_mkdir_p(const char *path, unsigned mode);

/* Keys of [d4] every process knows (for d4_config_check_known lists). */
#define D4_DAEMON_KNOWN_KEYS                                                             \
	"d4.data_dir", "d4.log_level", "d4.log", "d4.store", "d4.tls_cert", "d4.tls_key",  \
		"d4.dispatch_socket"

#endif
