/*
 * d4_log.c — one line per event, key=value fields, to stderr or syslog (see d4_log.h).
 *
 * The logger is the one piece of process-wide state in the project, on
 * purpose, as syslog is: main() sets it once (d4_log_init) before other
 * threads start, and every file of the process logs through it. d4_log()
 * itself only reads that state and builds the line in a stack buffer, so it
 * may be called from any thread.
 *
 * A line is written with a single fwrite on stderr followed by fflush, so that
 * the lines of worker processes sharing one stderr do not interleave (a write
 * of up to PIPE_BUF bytes to a pipe is atomic; longer lines are rare).
 *
 * Values come from sensors and peers, so they are made unable to forge a line
 * or a field: a value holding a blank, '"', '=', a control byte, DEL or any
 * byte >= 0x80 is written in double quotes with '"' and '\' escaped by a
 * backslash and every other such byte as \xNN. Non-ASCII is escaped rather
 * than passed through because some UTF-8 sequences (NEL U+0085, the line and
 * paragraph separators, bidirectional overrides) break or disguise lines in
 * log viewers. A value is cut after 1024 bytes and marked with "...". Event
 * names and keys come from the program, but get the same treatment reduced
 * to replacing a bad byte by '_' so that they never need quotes.
 */
#include "d4_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192u
#define LOG_VALUE_MAX 1024u
#define LOG_NAME_MAX 64u
#define LOG_IDENT_MAX 64u
/* Room kept at the end of every line for " ...\n" when fields are dropped. */
#define LOG_TAIL 5u

static struct {
	char ident[LOG_IDENT_MAX]; /* openlog keeps the pointer: static storage */
	enum d4_log_target target;
	enum d4_log_level level;
	bool syslog_open;
} d4_logger = {"d4", D4_LOG_STDERR, D4_LOG_INFO, false};

static const char *const level_names[] = {"err", "warn", "notice", "info", "debug"};
#define LEVEL_COUNT (sizeof(level_names) / sizeof(level_names[0]))

/* A line being built; `full` once something did not fit. */
struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	size_t body; /* where the text sent to syslog starts (the level name) */
	bool full;
};

void d4_log_init(const char *ident, enum d4_log_target target, enum d4_log_level level)
{
	size_t n = 0;

	if (d4_logger.syslog_open) {
		closelog();
		d4_logger.syslog_open = false;
	}
	/* The ident is printed bare before "[pid]": keep it to safe bytes. */
	for (; ident && ident[n] && n < LOG_IDENT_MAX - 1; n++) {
		char ch = ident[n];

		d4_logger.ident[n] = (ch > 0x20 && ch < 0x7f && ch != '[') ? ch : '_';
	}
	d4_logger.ident[n] = '\0';
	if (n == 0)
		memcpy(d4_logger.ident, "d4", 3);
	d4_logger.target = target;
	d4_log_set_level(level);
	if (target == D4_LOG_SYSLOG) {
		openlog(d4_logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		d4_logger.syslog_open = true;
	}
}

void d4_log_set_level(enum d4_log_level level)
{
	if ((unsigned)level >= LEVEL_COUNT)
		level = D4_LOG_DEBUG;
	d4_logger.level = level;
}

bool d4_log_enabled(enum d4_log_level level)
{
	return (unsigned)level <= (unsigned)d4_logger.level;
}

int d4_log_level_from_name(const char *name)
{
	size_t i;

	if (!name)
		return -1;
	for (i = 0; i < LEVEL_COUNT; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *d4_log_level_name(enum d4_log_level level)
{
	return (unsigned)level < LEVEL_COUNT ? level_names[level] : "unknown";
}

static int syslog_priority(enum d4_log_level level)
{
	switch (level) {
	case D4_LOG_ERR:
		return LOG_ERR;
	case D4_LOG_WARN:
		return LOG_WARNING;
	case D4_LOG_NOTICE:
		return LOG_NOTICE;
	case D4_LOG_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

/* Appends n bytes, or marks the line full and appends nothing. */
static void put(struct log_line *l, const char *s, size_t n)
{
	if (l->full || n > LOG_LINE_MAX - LOG_TAIL - l->len) {
		l->full = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_str(struct log_line *l, const char *s)
{
	put(l, s, strlen(s));
}

static bool needs_quotes(unsigned char ch)
{
	return ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '=';
}

/* An event name or a key: printable, no blank, '=' or '"', at most LOG_NAME_MAX bytes. */
static void put_name(struct log_line *l, const char *name)
{
	char buf[LOG_NAME_MAX];
	size_t n;

	for (n = 0; name[n] && n < LOG_NAME_MAX; n++)
		buf[n] = needs_quotes((unsigned char)name[n]) ? '_' : name[n];
	if (n == 0)
		buf[n++] = '-';
	put(l, buf, n);
}

static void put_value(struct log_line *l, const char *value)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = strnlen(value, LOG_VALUE_MAX + 1);
	bool cut = n > LOG_VALUE_MAX, quote = n == 0;

	if (cut)
		n = LOG_VALUE_MAX;
	for (i = 0; i < n && !quote; i++)
		quote = needs_quotes((unsigned char)value[i]);
	if (!quote) {
		put(l, value, n);
		if (cut)
			put(l, "...", 3);
		return;
	}
	put(l, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)value[i];

		if (ch == '"' || ch == '\\') {
			char esc[2] = {'\\', (char)ch};
			put(l, esc, 2);
		} else if (ch < 0x20 || ch >= 0x7f) {
			char esc[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};
			put(l, esc, 4);
		} else {
			put(l, (const char *)&ch, 1);
		}
	}
	if (cut)
		put(l, "...", 3);
	put(l, "\"", 1);
}

/* " key=value"; a field that does not fit is dropped whole, and so are the ones after it. */
static void put_field(struct log_line *l, const char *key, const char *value)
{
	size_t mark = l->len;

	if (l->full)
		return;
	put(l, " ", 1);
	put_name(l, key);
	put(l, "=", 1);
	put_value(l, value ? value : "-");
	if (l->full)
		l->len = mark;
}

static void line_begin(struct log_line *l, enum d4_log_level level, const char *event)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	l->len = 0;
	l->full = false;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm) ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		memcpy(stamp, "-", 2);
	n = snprintf(l->buf, LOG_LINE_MAX - LOG_TAIL, "%s %s[%ld] ", stamp, d4_logger.ident,
	             (long)getpid());
	if (n > 0)
		l->len = (size_t)n < LOG_LINE_MAX - LOG_TAIL ? (size_t)n : LOG_LINE_MAX - LOG_TAIL - 1;
	l->body = l->len;
	put_str(l, d4_log_level_name(level));
	put(l, " ", 1);
	put_name(l, event ? event : "-");
}

static void line_end(struct log_line *l, enum d4_log_level level)
{
	/* LOG_TAIL bytes are always free here. */
	if (l->full) {
		memcpy(l->buf + l->len, " ...", 4);
		l->len += 4;
	}
	if (d4_logger.target == D4_LOG_SYSLOG) {
		l->buf[l->len] = '\0';
		syslog(syslog_priority(level), "%s", l->buf + l->body);
		return;
	}
	l->buf[l->len++] = '\n';
	/* Nowhere to report a failure to write the log: forget it, keep the stream usable. */
	if (fwrite(l->buf, 1, l->len, stderr) != l->len || fflush(stderr) != 0)
		clearerr(stderr);
}

void d4_logv(enum d4_log_level level, const char *event, va_list ap)
{
	struct log_line l;
	const char *key;

	if (!d4_log_enabled(level))
		return;
	line_begin(&l, level, event);
	while ((key = va_arg(ap, const char *)) != NULL)
		put_field(&l, key, va_arg(ap, const char *));
	line_end(&l, level);
}

void d4_log(enum d4_log_level level, const char *event, ...)
{
	va_list ap;

	va_start(ap, event);
	d4_logv(level, event, ap);
	va_end(ap);
}

void d4_logf(enum d4_log_level level, const char *event, const char *fmt, ...)
{
	/* One byte more than a value keeps, so that put_value sees a long message as cut. */
	char msg[LOG_VALUE_MAX + 2];
	struct log_line l;
	va_list ap;
	int n;

	if (!d4_log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		memcpy(msg, "(format error)", 15);
	line_begin(&l, level, event);
	put_field(&l, "msg", msg);
	line_end(&l, level);
}
