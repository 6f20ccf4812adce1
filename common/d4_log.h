/*
 * d4_log.h — one line per event, key=value fields, to stderr or syslog.
 *
 *   d4_log(D4_LOG_WARN, "refused", "uuid", u, "peer", addr, "reason", r, NULL);
 *
 * prints (on stderr)
 *
 *   2026-11-25T10:41:01Z d4-ingest[812] warn refused uuid=cd98... peer=[::1]:4242 reason=hmac_mismatch
 *
 * and sends the same text without time and program to syslog. Values that hold
 * spaces, quotes, '=' or control bytes are quoted and escaped, so that a sensor
 * cannot forge a log line. The logger is process-wide on purpose, as syslog is:
 * every file of a process logs to the same place, set once in main().
 */
#ifndef D4_LOG_H
#define D4_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum d4_log_level {
	D4_LOG_ERR = 0,
	D4_LOG_WARN,
	D4_LOG_NOTICE,
	D4_LOG_INFO,
	D4_LOG_DEBUG,
};

enum d4_log_target {
	D4_LOG_STDERR = 0,
	D4_LOG_SYSLOG,
};

/* ident: program name; level: the most verbose level written. */
void d4_log_init(const char *ident, enum d4_log_target target, enum d4_log_level level);
void d4_log_set_level(enum d4_log_level level);
bool d4_log_enabled(enum d4_log_level level);
/* "err", "warn", "notice", "info", "debug" <-> level; -1 if unknown. */
int d4_log_level_from_name(const char *name);
const char *d4_log_level_name(enum d4_log_level level);

/* Event name, then (key, value) string pairs, then NULL. A NULL value prints as -. */
void d4_log(enum d4_log_level level, const char *event, ...);
void d4_logv(enum d4_log_level level, const char *event, va_list ap);
/* Event with a free-text msg="..." field formatted printf-style. */
void d4_logf(enum d4_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
