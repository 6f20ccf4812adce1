/*
 * d4_config.c — the INI-style configuration reader (the syntax is in d4_config.h).
 *
 * A configuration is written by hand and holds tens of keys, so it is kept as
 * two growable arrays in file order: the sections, and the entries (section,
 * key, value, origin), each entry one allocation. Lookups are linear scans;
 * that is O(N) per lookup and O(N^2) to load, which is nothing for a real
 * file and is bounded for a hostile one by the limits below (16 MiB of text,
 * 64 KiB per line, 10000 keys and 10000 sections per text).
 *
 * The parser walks a (text, len) buffer that need not end with a NUL and
 * never reads past len. It fills a scratch configuration that is moved into
 * the caller's only when the whole text is valid, so a file with an error in
 * line 40 does not leave lines 1..39 applied.
 *
 * Syntax decisions the header leaves open:
 *   - names are [A-Za-z0-9_-]+; a section is such words joined by single
 *     dots; a key holds no dot, so "a.b.c" always means section "a.b", key "c";
 *   - in an unquoted value, '#' or ';' starts a comment only after a space or
 *     a tab ("key = #x" is empty, "color=#fff" is "#fff");
 *   - a quoted value ends at its closing quote; only blanks or a comment may
 *     follow it; \" \\ \n \t are the only escapes;
 *   - a --set value is taken literally (trimmed; no quotes, no comments);
 *   - a leading UTF-8 byte order mark is skipped, "\r\n" ends a line as "\n".
 */
#include "d4_config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_FILE (16u << 20)
#define CONFIG_MAX_LINE (64u << 10)
#define CONFIG_MAX_KEYS 10000u
#define CONFIG_MAX_SECTIONS 10000u
#define CONFIG_MAX_NAME 128u
/* How much of a bad value or name an error message quotes. */
#define CONFIG_SHOW_MAX 40u

struct config_entry {
	char *mem; /* one allocation holding the four strings below */
	const char *section;
	const char *key;
	const char *value;
	const char *origin; /* "file:line" or "--set" */
};

struct d4_config {
	struct config_entry *entries;
	size_t nentries;
	size_t entries_cap;
	char **sections;
	size_t nsections;
	size_t sections_cap;
};

static int fail(struct d4_config_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct d4_config_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
			err->msg[0] = '\0';
		va_end(ap);
	}
	return -1;
}

/*
 * Copies at most CONFIG_SHOW_MAX bytes of s[0..n) into buf for an error
 * message, non-printable bytes as '?', "..." when cut. buf holds
 * CONFIG_SHOW_MAX + 4 bytes.
 */
static const char *shown(char *buf, const char *s, size_t n)
{
	size_t i, m = n < CONFIG_SHOW_MAX ? n : CONFIG_SHOW_MAX;

	for (i = 0; i < m; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (m < n) {
		memcpy(buf + m, "...", 3);
		m += 3;
	}
	buf[m] = '\0';
	return buf;
}

/* "section.key", or "key" for a key before any section, for messages. */
static const char *full_name(char *buf, size_t cap, const char *section, const char *key)
{
	if (snprintf(buf, cap, "%s%s%s", section, *section ? "." : "", key) < 0)
		buf[0] = '\0';
	return buf;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

/* A key is [A-Za-z0-9_-]+; a section (dotted) is such words joined by single dots. */
static bool valid_name(const char *s, size_t n, bool dotted)
{
	bool word_start = true;
	size_t i;

	if (n == 0 || n > CONFIG_MAX_NAME)
		return false;
	for (i = 0; i < n; i++) {
		if (dotted && s[i] == '.') {
			if (word_start)
				return false;
			word_start = true;
			continue;
		}
		if (!is_name_char(s[i]))
			return false;
		word_start = false;
	}
	return !word_start;
}

/* Narrows [*b, *e) to exclude leading and trailing blanks. */
static void trim(const char *s, size_t *b, size_t *e)
{
	while (*b < *e && is_blank(s[*b]))
		(*b)++;
	while (*e > *b && is_blank(s[*e - 1]))
		(*e)--;
}

/* Grows an array to hold `need` elements; the new base, or NULL (array unchanged). */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return arr;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return NULL;
		ncap *= 2;
	}
	p = realloc(arr, ncap * elem);
	if (p)
		*cap = ncap;
	return p;
}

static size_t section_index(const struct d4_config *c, const char *section)
{
	size_t i;

	for (i = 0; i < c->nsections; i++)
		if (strcmp(c->sections[i], section) == 0)
			break;
	return i;
}

static size_t entry_index(const struct d4_config *c, const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < c->nentries; i++)
		if (strcmp(c->entries[i].key, key) == 0 && strcmp(c->entries[i].section, section) == 0)
			break;
	return i;
}

static const struct config_entry *entry_find(const struct d4_config *c, const char *section,
                                             const char *key)
{
	size_t i;

	if (!section)
		section = "";
	if (!key)
		return NULL;
	i = entry_index(c, section, key);
	return i < c->nentries ? &c->entries[i] : NULL;
}

/* Adds a section name in first-seen order. 0 or -1 (out of memory). */
static int section_add(struct d4_config *c, const char *section)
{
	char **p;
	char *s;

	if (section_index(c, section) < c->nsections)
		return 0;
	p = grow(c->sections, &c->sections_cap, c->nsections + 1, sizeof(*c->sections));
	if (!p)
		return -1;
	c->sections = p;
	s = strdup(section);
	if (!s)
		return -1;
	c->sections[c->nsections++] = s;
	return 0;
}

static int entry_make(struct config_entry *e, const char *section, const char *key,
                      const char *value, const char *origin)
{
	size_t ls = strlen(section) + 1, lk = strlen(key) + 1;
	size_t lv = strlen(value) + 1, lo = strlen(origin) + 1;
	char *mem = malloc(ls + lk + lv + lo);

	if (!mem)
		return -1;
	memcpy(mem, section, ls);
	memcpy(mem + ls, key, lk);
	memcpy(mem + ls + lk, value, lv);
	memcpy(mem + ls + lk + lv, origin, lo);
	e->mem = mem;
	e->section = mem;
	e->key = mem + ls;
	e->value = mem + ls + lk;
	e->origin = mem + ls + lk + lv;
	return 0;
}

/* Sets section.key (the last definition wins, in the place of the first). 0 or -1 (memory). */
static int config_put(struct d4_config *c, const char *section, const char *key,
                      const char *value, const char *origin)
{
	struct config_entry e, *p;
	size_t i;

	if (section_add(c, section) != 0)
		return -1;
	if (entry_make(&e, section, key, value, origin) != 0)
		return -1;
	i = entry_index(c, section, key);
	if (i < c->nentries) {
		free(c->entries[i].mem);
		c->entries[i] = e;
		return 0;
	}
	p = grow(c->entries, &c->entries_cap, c->nentries + 1, sizeof(*c->entries));
	if (!p) {
		free(e.mem);
		return -1;
	}
	c->entries = p;
	c->entries[c->nentries++] = e;
	return 0;
}

static void config_clear(struct d4_config *c)
{
	size_t i;

	for (i = 0; i < c->nentries; i++)
		free(c->entries[i].mem);
	for (i = 0; i < c->nsections; i++)
		free(c->sections[i]);
	free(c->entries);
	free(c->sections);
	memset(c, 0, sizeof(*c));
}

/*
 * Moves everything of `from` into c. Room is reserved first, so that once it
 * starts the move cannot fail half-way. 0, or -1 with c unchanged.
 */
static int config_merge(struct d4_config *c, struct d4_config *from)
{
	struct config_entry *ep;
	char **sp;
	size_t i, j;

	if (c->nentries == 0 && c->nsections == 0) {
		struct d4_config tmp = *c;
		*c = *from;
		*from = tmp;
		return 0;
	}
	sp = grow(c->sections, &c->sections_cap, c->nsections + from->nsections,
	          sizeof(*c->sections));
	if (!sp)
		return -1;
	c->sections = sp;
	ep = grow(c->entries, &c->entries_cap, c->nentries + from->nentries, sizeof(*c->entries));
	if (!ep)
		return -1;
	c->entries = ep;
	for (i = 0; i < from->nsections; i++) {
		if (section_index(c, from->sections[i]) < c->nsections)
			free(from->sections[i]);
		else
			c->sections[c->nsections++] = from->sections[i];
	}
	from->nsections = 0;
	for (i = 0; i < from->nentries; i++) {
		j = entry_index(c, from->entries[i].section, from->entries[i].key);
		if (j < c->nentries) {
			free(c->entries[j].mem);
			c->entries[j] = from->entries[i];
		} else {
			c->entries[c->nentries++] = from->entries[i];
		}
	}
	from->nentries = 0;
	return 0;
}

struct d4_config *d4_config_new(void)
{
	return calloc(1, sizeof(struct d4_config));
}

void d4_config_free(struct d4_config *c)
{
	if (!c)
		return;
	config_clear(c);
	free(c);
}

/* The parser's state across the lines of one text. */
struct parse_state {
	struct d4_config *c;
	const char *origin;
	size_t lineno;
	char section[CONFIG_MAX_NAME + 1]; /* the current section, "" before any */
	char *value;                       /* scratch: the decoded value of the line */
	struct d4_config_err *err;
};

static int parse_section(struct parse_state *ps, const char *line, size_t i, size_t n)
{
	const char *close = memchr(line + i, ']', n - i);
	char show[CONFIG_SHOW_MAX + 4];
	size_t b = i + 1, e, after;

	if (!close)
		return fail(ps->err, "%s:%zu: missing ']'", ps->origin, ps->lineno);
	e = (size_t)(close - line);
	after = e + 1;
	trim(line, &b, &e);
	if (!valid_name(line + b, e - b, true))
		return fail(ps->err, "%s:%zu: invalid section name '%s'", ps->origin, ps->lineno,
		            shown(show, line + b, e - b));
	while (after < n && is_blank(line[after]))
		after++;
	if (after < n && line[after] != '#' && line[after] != ';')
		return fail(ps->err, "%s:%zu: unexpected text after ']'", ps->origin, ps->lineno);
	memcpy(ps->section, line + b, e - b);
	ps->section[e - b] = '\0';
	if (ps->c->nsections >= CONFIG_MAX_SECTIONS &&
	    section_index(ps->c, ps->section) == ps->c->nsections)
		return fail(ps->err, "%s:%zu: more than %u sections", ps->origin, ps->lineno,
		            CONFIG_MAX_SECTIONS);
	if (section_add(ps->c, ps->section) != 0)
		return fail(ps->err, "%s:%zu: out of memory", ps->origin, ps->lineno);
	return 0;
}

/* Decodes a quoted value starting at line[i] == '"' into ps->value. */
static int parse_quoted(struct parse_state *ps, const char *line, size_t i, size_t n)
{
	size_t out = 0;

	for (i++; i < n && line[i] != '"'; i++) {
		char ch = line[i];

		if (ch == '\\') {
			if (++i == n)
				break;
			switch (line[i]) {
			case '"':
			case '\\':
				ch = line[i];
				break;
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			default:
				if (line[i] > 0x20 && line[i] < 0x7f)
					return fail(ps->err, "%s:%zu: unknown escape '\\%c'", ps->origin,
					            ps->lineno, line[i]);
				return fail(ps->err, "%s:%zu: unknown escape '\\\\x%02x'", ps->origin,
				            ps->lineno, (unsigned char)line[i]);
			}
		}
		ps->value[out++] = ch;
	}
	if (i >= n)
		return fail(ps->err, "%s:%zu: unterminated quote", ps->origin, ps->lineno);
	ps->value[out] = '\0';
	for (i++; i < n && is_blank(line[i]); i++)
		;
	if (i < n && line[i] != '#' && line[i] != ';')
		return fail(ps->err, "%s:%zu: unexpected text after closing quote", ps->origin,
		            ps->lineno);
	return 0;
}

/* Stores key = ps->value in the current section, its origin "file:line". 0 or -1 (memory). */
static int put_from_text(struct parse_state *ps, const char *key)
{
	size_t cap = strlen(ps->origin) + 1 + 20 + 1;
	char *origin = malloc(cap);
	int n, rc = -1;

	if (!origin)
		return -1;
	n = snprintf(origin, cap, "%s:%zu", ps->origin, ps->lineno);
	if (n >= 0 && (size_t)n < cap)
		rc = config_put(ps->c, ps->section, key, ps->value, origin);
	free(origin);
	return rc;
}

static int parse_assignment(struct parse_state *ps, const char *line, size_t i, size_t n)
{
	const char *eq = memchr(line + i, '=', n - i);
	char key[CONFIG_MAX_NAME + 1], show[CONFIG_SHOW_MAX + 4];
	size_t kb = i, ke, v, e;
	struct d4_config *c = ps->c;

	if (!eq)
		return fail(ps->err, "%s:%zu: expected 'key = value'", ps->origin, ps->lineno);
	ke = (size_t)(eq - line);
	trim(line, &kb, &ke);
	if (kb == ke)
		return fail(ps->err, "%s:%zu: expected 'key = value'", ps->origin, ps->lineno);
	if (!valid_name(line + kb, ke - kb, false))
		return fail(ps->err, "%s:%zu: invalid key '%s'", ps->origin, ps->lineno,
		            shown(show, line + kb, ke - kb));
	memcpy(key, line + kb, ke - kb);
	key[ke - kb] = '\0';

	v = (size_t)(eq - line) + 1;
	while (v < n && is_blank(line[v]))
		v++;
	if (v < n && line[v] == '"') {
		if (parse_quoted(ps, line, v, n) != 0)
			return -1;
	} else {
		for (e = v; e < n; e++)
			if ((line[e] == '#' || line[e] == ';') && is_blank(line[e - 1]))
				break;
		trim(line, &v, &e);
		memcpy(ps->value, line + v, e - v);
		ps->value[e - v] = '\0';
	}

	if (c->nentries >= CONFIG_MAX_KEYS && entry_index(c, ps->section, key) == c->nentries)
		return fail(ps->err, "%s:%zu: more than %u keys", ps->origin, ps->lineno,
		            CONFIG_MAX_KEYS);
	if (put_from_text(ps, key) != 0)
		return fail(ps->err, "%s:%zu: out of memory", ps->origin, ps->lineno);
	return 0;
}

static int parse_line(struct parse_state *ps, const char *line, size_t n)
{
	size_t i = 0;

	while (i < n && is_blank(line[i]))
		i++;
	if (i == n || line[i] == '#' || line[i] == ';')
		return 0;
	if (line[i] == '[')
		return parse_section(ps, line, i, n);
	return parse_assignment(ps, line, i, n);
}

int d4_config_parse(struct d4_config *c, const char *origin, const char *text, size_t len,
                    struct d4_config_err *err)
{
	struct d4_config scratch = {0};
	struct parse_state ps = {.c = &scratch, .origin = origin ? origin : "-", .err = err};
	size_t pos = 0;
	int rc = -1;

	if (!text && len)
		return fail(err, "%s: no text", ps.origin);
	if (len > CONFIG_MAX_FILE)
		return fail(err, "%s: larger than %u MiB", ps.origin, CONFIG_MAX_FILE >> 20);
	/* A value is never longer than its line. */
	ps.value = malloc((len < CONFIG_MAX_LINE ? len : CONFIG_MAX_LINE) + 1);
	if (!ps.value) {
		fail(err, "%s: out of memory", ps.origin);
		goto out;
	}
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		pos += n + (nl ? 1 : 0);
		ps.lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE) {
			fail(err, "%s:%zu: line longer than %u bytes", ps.origin, ps.lineno,
			     CONFIG_MAX_LINE);
			goto out;
		}
		if (memchr(line, '\0', n)) {
			fail(err, "%s:%zu: NUL byte", ps.origin, ps.lineno);
			goto out;
		}
		if (parse_line(&ps, line, n) != 0)
			goto out;
	}
	if (config_merge(c, &scratch) != 0) {
		fail(err, "%s: out of memory", ps.origin);
		goto out;
	}
	rc = 0;
out:
	free(ps.value);
	config_clear(&scratch);
	return rc;
}

int d4_config_load(struct d4_config *c, const char *path, struct d4_config_err *err)
{
	char *buf = NULL, *p;
	size_t len = 0, cap;
	struct stat st;
	ssize_t got;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		fail(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		fail(err, "%s: %s", path, strerror(EISDIR));
		goto out;
	}
	/* The size from fstat is a hint (a FIFO has none, a file may grow): read to EOF. */
	cap = (S_ISREG(st.st_mode) && st.st_size >= 0 && st.st_size < CONFIG_MAX_FILE)
	              ? (size_t)st.st_size + 1
	              : 64u << 10;
	buf = malloc(cap);
	if (!buf) {
		fail(err, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > CONFIG_MAX_FILE) {
				fail(err, "%s: larger than %u MiB", path, CONFIG_MAX_FILE >> 20);
				goto out;
			}
			cap = cap * 2 > CONFIG_MAX_FILE + 1u ? CONFIG_MAX_FILE + 1u : cap * 2;
			p = realloc(buf, cap);
			if (!p) {
				fail(err, "%s: out of memory", path);
				goto out;
			}
			buf = p;
		}
		got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			fail(err, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	rc = d4_config_parse(c, path, buf, len, err);
out:
	free(buf);
	if (close(fd) != 0 && rc == 0)
		rc = fail(err, "%s: %s", path, strerror(errno));
	return rc;
}

int d4_config_set(struct d4_config *c, const char *assignment, struct d4_config_err *err)
{
	char section[CONFIG_MAX_NAME + 1], key[CONFIG_MAX_NAME + 1], show[CONFIG_SHOW_MAX + 4];
	const char *eq;
	size_t nb = 0, ne, kb, vb, ve, i, n;

	if (!assignment)
		return fail(err, "--set: expected 'section.key=value'");
	n = strlen(assignment);
	eq = strchr(assignment, '=');
	if (!eq)
		return fail(err, "--set: expected 'section.key=value', got '%s'",
		            shown(show, assignment, n));
	if (n > CONFIG_MAX_LINE)
		return fail(err, "--set: longer than %u bytes", CONFIG_MAX_LINE);
	ne = (size_t)(eq - assignment);
	trim(assignment, &nb, &ne);
	/* The key is after the last dot: "queue.archive.command" is section "queue.archive". */
	kb = nb;
	for (i = nb; i < ne; i++)
		if (assignment[i] == '.')
			kb = i + 1;
	if (kb > nb && !valid_name(assignment + nb, kb - 1 - nb, true))
		return fail(err, "--set: invalid section name '%s'",
		            shown(show, assignment + nb, kb - 1 - nb));
	if (!valid_name(assignment + kb, ne - kb, false))
		return fail(err, "--set: invalid key in '%s'", shown(show, assignment, n));
	memcpy(section, assignment + nb, kb > nb ? kb - 1 - nb : 0);
	section[kb > nb ? kb - 1 - nb : 0] = '\0';
	memcpy(key, assignment + kb, ne - kb);
	key[ne - kb] = '\0';
	vb = (size_t)(eq - assignment) + 1;
	ve = n;
	trim(assignment, &vb, &ve);
	/* Terminate the value in a copy: assignment is const. */
	{
		char *value = strndup(assignment + vb, ve - vb);
		int rc;

		if (!value)
			return fail(err, "--set: out of memory");
		rc = config_put(c, section, key, value, "--set");
		free(value);
		if (rc != 0)
			return fail(err, "--set: out of memory");
	}
	return 0;
}

const char *d4_config_get(const struct d4_config *c, const char *section, const char *key)
{
	const struct config_entry *e = entry_find(c, section, key);

	return e ? e->value : NULL;
}

const char *d4_config_get_str(const struct d4_config *c, const char *section, const char *key,
                              const char *def)
{
	const char *v = d4_config_get(c, section, key);

	return v ? v : def;
}

const char *d4_config_origin(const struct d4_config *c, const char *section, const char *key)
{
	const struct config_entry *e = entry_find(c, section, key);

	return e ? e->origin : NULL;
}

/* "origin: section.key: 'value' <what>", the message of every bad value. */
static int bad_value(struct d4_config_err *err, const struct config_entry *e, const char *what)
{
	char name[2 * CONFIG_MAX_NAME + 2], show[CONFIG_SHOW_MAX + 4];

	return fail(err, "%s: %s: '%s' %s", e->origin, full_name(name, sizeof(name), e->section, e->key),
	            shown(show, e->value, strlen(e->value)), what);
}

static int bad_range(struct d4_config_err *err, const struct config_entry *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad_range(struct d4_config_err *err, const struct config_entry *e, const char *fmt, ...)
{
	char what[96];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (n < 0)
		what[0] = '\0';
	return bad_value(err, e, what);
}

/*
 * Reads decimal digits at *s into *out and advances *s. 0, -1 when there is
 * no digit, -2 when the number does not fit in 64 bits.
 */
static int parse_digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	bool overflow = false;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return overflow ? -2 : 0;
}

/* Case-insensitive ASCII comparison of a suffix against a lowercase word. */
static bool suffix_is(const char *s, const char *word)
{
	for (; *s && *word; s++, word++) {
		char ch = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;

		if (ch != *word)
			return false;
	}
	return *s == '\0' && *word == '\0';
}

int d4_config_get_int(const struct d4_config *c, const char *section, const char *key,
                      int64_t min, int64_t max, int64_t def, int64_t *out,
                      struct d4_config_err *err)
{
	const struct config_entry *e = entry_find(c, section, key);
	const char *p;
	bool negative = false;
	uint64_t mag;
	int64_t v;
	int rc;

	if (!e) {
		*out = def;
		return 0;
	}
	p = e->value;
	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	rc = parse_digits(&p, &mag);
	if (rc == -1 || *p != '\0')
		return bad_value(err, e, "is not an integer");
	if (rc == -2 || mag > (negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		goto range;
	if (negative)
		v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		v = (int64_t)mag;
	if (v < min || v > max)
		goto range;
	*out = v;
	return 0;
range:
	return bad_range(err, e, "is not in [%" PRId64 ", %" PRId64 "]", min, max);
}

int d4_config_get_bool(const struct d4_config *c, const char *section, const char *key, bool def,
                       bool *out, struct d4_config_err *err)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	const struct config_entry *e = entry_find(c, section, key);
	size_t i;

	if (!e) {
		*out = def;
		return 0;
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (suffix_is(e->value, yes[i])) {
			*out = true;
			return 0;
		}
		if (suffix_is(e->value, no[i])) {
			*out = false;
			return 0;
		}
	}
	return bad_value(err, e, "is not a boolean (true/false, yes/no, on/off, 1/0)");
}

struct unit {
	const char *name;
	uint64_t mult;
};

/*
 * A number with an optional unit from `units` (blanks allowed between).
 * 0, -1 for bad syntax, -2 for a value that does not fit in 64 bits.
 */
static int parse_with_unit(const char *s, const struct unit *units, size_t nunits, uint64_t *out)
{
	uint64_t v;
	size_t i;
	int rc = parse_digits(&s, &v);

	if (rc == -1)
		return -1;
	while (is_blank(*s))
		s++;
	for (i = 0; i < nunits; i++)
		if (suffix_is(s, units[i].name))
			break;
	if (i == nunits)
		return -1;
	if (rc == -2 || v > UINT64_MAX / units[i].mult)
		return -2;
	*out = v * units[i].mult;
	return 0;
}

static int get_with_unit(const struct d4_config *c, const char *section, const char *key,
                         const struct unit *units, size_t nunits, const char *what, uint64_t min,
                         uint64_t max, uint64_t def, uint64_t *out, struct d4_config_err *err)
{
	const struct config_entry *e = entry_find(c, section, key);
	uint64_t v = 0;
	int rc;

	if (!e) {
		*out = def;
		return 0;
	}
	rc = parse_with_unit(e->value, units, nunits, &v);
	if (rc == -1)
		return bad_value(err, e, what);
	if (rc == -2 || v < min || v > max)
		return bad_range(err, e, "is not in [%" PRIu64 ", %" PRIu64 "]", min, max);
	*out = v;
	return 0;
}

int d4_config_get_size(const struct d4_config *c, const char *section, const char *key,
                       uint64_t min, uint64_t max, uint64_t def, uint64_t *out,
                       struct d4_config_err *err)
{
	static const struct unit units[] = {
		{"", 1},
		{"b", 1},
		{"k", 1ull << 10},
		{"kib", 1ull << 10},
		{"m", 1ull << 20},
		{"mib", 1ull << 20},
		{"g", 1ull << 30},
		{"gib", 1ull << 30},
		{"t", 1ull << 40},
		{"tib", 1ull << 40},
	};

	return get_with_unit(c, section, key, units, sizeof(units) / sizeof(units[0]),
	                     "is not a size (e.g. 512, 64k, 10M, 2GiB)", min, max, def, out, err);
}

int d4_config_get_duration_ms(const struct d4_config *c, const char *section, const char *key,
                              uint64_t min_ms, uint64_t max_ms, uint64_t def_ms, uint64_t *out,
                              struct d4_config_err *err)
{
	static const struct unit units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};

	return get_with_unit(c, section, key, units, sizeof(units) / sizeof(units[0]),
	                     "is not a duration (e.g. 250ms, 30s, 5m, 1h, 2d)", min_ms, max_ms,
	                     def_ms, out, err);
}

int d4_config_get_uint_list(const struct d4_config *c, const char *section, const char *key,
                            uint64_t min, uint64_t max, const uint64_t *def, size_t ndef,
                            uint64_t *out, size_t cap, size_t *n, struct d4_config_err *err)
{
	const struct config_entry *e = entry_find(c, section, key);
	const char *p;
	size_t count = 0;
	int commas = 1; /* a leading comma is an empty item */
	uint64_t v;
	int rc;

	*n = 0;
	if (!e) {
		char name[2 * CONFIG_MAX_NAME + 2];

		if (ndef > cap)
			return fail(err, "%s: default list longer than %zu",
			            full_name(name, sizeof(name), section ? section : "", key), cap);
		if (ndef)
			memcpy(out, def, ndef * sizeof(*out));
		*n = ndef;
		return 0;
	}
	p = e->value;
	for (;;) {
		while (is_blank(*p) || *p == ',') {
			if (*p == ',' && ++commas > 1)
				return bad_value(err, e, "has an empty item");
			p++;
		}
		if (*p == '\0')
			break;
		rc = parse_digits(&p, &v);
		if (rc == -1 || (*p != '\0' && *p != ',' && !is_blank(*p)))
			return bad_value(err, e, "is not a list of unsigned integers");
		if (rc == -2 || v < min || v > max)
			return bad_range(err, e, "has an item not in [%" PRIu64 ", %" PRIu64 "]", min,
			                 max);
		if (count == cap)
			return bad_range(err, e, "has more than %zu items", cap);
		out[count++] = v;
		commas = 0;
	}
	if (commas > 0 && count > 0)
		return bad_value(err, e, "has an empty item");
	*n = count;
	return 0;
}

void d4_config_each_section(const struct d4_config *c, const char *prefix,
                            void (*fn)(const char *section, void *arg), void *arg)
{
	size_t i, plen = prefix ? strlen(prefix) : 0;

	for (i = 0; i < c->nsections; i++)
		if (strncmp(c->sections[i], prefix ? prefix : "", plen) == 0)
			fn(c->sections[i], arg);
}

void d4_config_each_key(const struct d4_config *c, const char *section,
                        void (*fn)(const char *key, const char *value, void *arg), void *arg)
{
	size_t i;

	if (!section)
		section = "";
	for (i = 0; i < c->nentries; i++)
		if (strcmp(c->entries[i].section, section) == 0)
			fn(c->entries[i].key, c->entries[i].value, arg);
}

/* Dotted names, component by component; a pattern component "*" matches any one. */
static bool name_matches(const char *pat, const char *name)
{
	for (;;) {
		size_t pl = strcspn(pat, "."), nl = strcspn(name, ".");

		if (!(pl == 1 && pat[0] == '*') && (pl != nl || memcmp(pat, name, pl) != 0))
			return false;
		pat += pl;
		name += nl;
		if (*pat == '\0' || *name == '\0')
			return *pat == *name;
		pat++;
		name++;
	}
}

int d4_config_check_known(const struct d4_config *c, const char *const *known,
                          const char *const *foreign, struct d4_config_err *err)
{
	char name[2 * CONFIG_MAX_NAME + 2];
	const struct config_entry *e;
	const char *const *k;
	size_t i;

	for (i = 0; i < c->nentries; i++) {
		e = &c->entries[i];
		for (k = foreign; k && *k; k++)
			if (strncmp(e->section, *k, strlen(*k)) == 0)
				break;
		if (k && *k)
			continue;
		full_name(name, sizeof(name), e->section, e->key);
		for (k = known; k && *k; k++)
			if (name_matches(*k, name))
				break;
		if (!k || !*k)
			return fail(err, "%s: unknown key '%s'", e->origin, name);
	}
	return 0;
}
