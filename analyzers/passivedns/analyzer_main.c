/*
 * d4-analyzer-passivedns — stores passive DNS records seen by D4 sensors in an LMDB store
 * (pdns_store.h) that d4-pdns-lookup and d4-web answer from.
 *
 * Input: sessions of type 8 (gamelinux/passivedns CSV lines) and sessions of type 254 whose
 * meta-type is the configured one (default "pdns-cof": Passive DNS COF NDJSON, for imports).
 * Lines may span D4 frames: the analyzer library's line reassembly gives whole lines. A line
 * that does not parse is counted by reason and skipped; the counters go to the store (read by
 * /info) and to one log line at the end.
 *
 * Durability: records are merged in memory and committed in one LMDB transaction when the
 * batch is full and at every flush_cb, which the library calls before each ACK: an ACK never
 * covers a record that is not committed.
 *
 * Options (command line, or the queue's param.<name> without the dashes):
 *   --db DIR  --batch N  --map-size MiB  --exclude SUBSTR[,SUBSTR...]  --exclude-regex ERE
 *   --expire TYPE=SECONDS[,...]  --meta-type NAME  --purge-interval SECONDS
 */
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "d4_analyzer.h"
#include "pdns_parse.h"
#include "pdns_store.h"

#define MAX_EXCLUDES 256

struct pd_ctx {
	char db[1024];
	size_t batch;
	size_t map_size_mb;
	char meta_type[128];
	char *excludes[MAX_EXCLUDES];
	size_t nexcludes;
	regex_t re;
	bool have_re;
	char expire[1024];
	bool expire_set;
	uint64_t purge_interval;
	time_t last_purge;
	bool purging; /* a purge pass is under way: continue at the next idle tick */
	struct pdns_store *st;
	struct pdns_rec rec; /* scratch, large: one per process */
	bool failed;
};

enum pd_mode { PD_CSV, PD_COF, PD_IGNORE };

struct pd_sess {
	struct d4_reasm_lines lines;
	enum pd_mode mode;
	uint32_t sid;
	struct pd_ctx *c;
};

static const char usage[] =
	"  --db DIR               LMDB store directory (default ./var/pdns)\n"
	"  --batch N              distinct records merged in memory per commit (default 262144)\n"
	"  --map-size MIB         LMDB map size (default 65536)\n"
	"  --exclude S[,S...]     skip names containing one of these substrings (repeatable)\n"
	"  --exclude-regex ERE    skip names matching this POSIX extended regex\n"
	"  --expire T=SEC[,...]   records of type T expire SEC seconds after their time_last\n"
	"  --meta-type NAME       meta-type of COF NDJSON imports (default pdns-cof)\n"
	"  --purge-interval SEC   how often expired records are removed (default 3600)\n"
	"  --repack DIR           no input: copy the --db store into DIR with full pages, exit\n";

static int add_excludes(struct pd_ctx *c, const char *list)
{
	const char *p = list;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > 0) {
			if (c->nexcludes == MAX_EXCLUDES)
				return -1;
			char *s = strndup(p, len);
			if (s == NULL)
				return -1;
			for (char *q = s; *q; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q = (char)(*q + 32);
			c->excludes[c->nexcludes++] = s;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int parse_size(const char *v, size_t min, size_t max, size_t *out)
{
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || n < min || n > max)
		return -1;
	*out = (size_t)n;
	return 0;
}

static int set_option(struct pd_ctx *c, const char *key, const char *value)
{
	size_t n;
	if (value == NULL)
		goto bad;
	if (strcmp(key, "db") == 0) {
		if (strlen(value) >= sizeof(c->db) || c->st != NULL)
			goto bad;
		snprintf(c->db, sizeof(c->db), "%s", value);
	} else if (strcmp(key, "batch") == 0) {
		if (parse_size(value, 1, 1u << 24, &c->batch) != 0)
			goto bad;
	} else if (strcmp(key, "map-size") == 0 || strcmp(key, "map_size") == 0) {
		if (parse_size(value, 1, (size_t)1 << 24, &c->map_size_mb) != 0)
			goto bad;
	} else if (strcmp(key, "exclude") == 0) {
		if (add_excludes(c, value) != 0)
			goto bad;
	} else if (strcmp(key, "exclude-regex") == 0 || strcmp(key, "exclude_regex") == 0) {
		if (c->have_re)
			regfree(&c->re);
		c->have_re = false;
		if (regcomp(&c->re, value, REG_EXTENDED | REG_NOSUB | REG_ICASE) != 0)
			goto bad;
		c->have_re = true;
	} else if (strcmp(key, "expire") == 0) {
		struct pdns_expire e;
		if (strlen(value) >= sizeof(c->expire) || pdns_expire_parse(value, &e) != 0)
			goto bad;
		snprintf(c->expire, sizeof(c->expire), "%s", value);
		c->expire_set = true;
	} else if (strcmp(key, "meta-type") == 0 || strcmp(key, "meta_type") == 0) {
		if (strlen(value) >= sizeof(c->meta_type) || *value == 0)
			goto bad;
		snprintf(c->meta_type, sizeof(c->meta_type), "%s", value);
	} else if (strcmp(key, "purge-interval") == 0 || strcmp(key, "purge_interval") == 0) {
		if (parse_size(value, 1, 1u << 30, &n) != 0)
			goto bad;
		c->purge_interval = n;
	} else {
		/* a typo in a queue's params must not go unnoticed (an exclusion not applied) */
		fprintf(stderr, "d4-analyzer-passivedns: unknown option '%s'\n", key);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "d4-analyzer-passivedns: bad value for %s: '%s'\n", key,
	        value ? value : "(missing)");
	return -1;
}

static int on_option(void *vctx, const char *arg, const char *next)
{
	static const char *const known[] = {"--db",      "--batch",         "--map-size",
	                                    "--exclude", "--exclude-regex", "--expire",
	                                    "--meta-type", "--purge-interval"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(arg, known[i]) == 0)
			return set_option(vctx, arg + 2, next) == 0 ? 2 : -1;
	return 0;
}

static int on_params(void *vctx, const char *key, const char *value)
{
	return set_option(vctx, key, value);
}

static int open_store(struct pd_ctx *c)
{
	char err[512];
	if (c->st != NULL)
		return 0;
	struct pdns_store_opts o = {.path = c->db, .map_size_mb = c->map_size_mb, .batch = c->batch};
	if (pdns_store_open(&c->st, &o, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-analyzer-passivedns: %s\n", err);
		return -1;
	}
	if (c->expire_set && pdns_store_set_expire(c->st, c->expire) != 0)
		return -1;
	c->last_purge = time(NULL);
	return 0;
}

static bool excluded(const struct pd_ctx *c, const struct pdns_rec *r)
{
	for (size_t i = 0; i < c->nexcludes; i++)
		if (strstr(r->name, c->excludes[i]) != NULL)
			return true;
	return c->have_re && regexec(&c->re, r->name, 0, NULL, 0) == 0;
}

static int store_rec(void *arg, const struct pdns_rec *r)
{
	struct pd_sess *s = arg;
	struct pd_ctx *c = s->c;
	if (excluded(c, r)) {
		pdns_store_count(c->st, PDNS_S_EXCLUDED, 1);
		return 0;
	}
	return pdns_store_add(c->st, r, s->sid);
}

static void reject(struct pd_ctx *c, enum pdns_reason why)
{
	pdns_store_count(c->st, PDNS_S_REJECTED, 1);
	pdns_store_count(c->st, PDNS_S__BASE + (unsigned)why, 1);
}

static int on_line(void *arg, const uint8_t *line, size_t len, unsigned flags)
{
	struct pd_sess *s = arg;
	struct pd_ctx *c = s->c;
	enum pdns_reason why;
	if (len == 0)
		return 0;
	pdns_store_count(c->st, PDNS_S_LINES, 1);
	if (flags & D4_LINE_TRUNCATED) {
		reject(c, PDNS_R_TRUNCATED);
		return 0;
	}
	if (s->mode == PD_CSV) {
		why = pdns_parse_csv(line, len, &c->rec);
		if (why != PDNS_OK) {
			reject(c, why);
			return 0;
		}
		return store_rec(s, &c->rec);
	}
	uint64_t skipped = 0;
	why = pdns_parse_cof(line, len, &c->rec, store_rec, s, &skipped);
	pdns_store_count(c->st, PDNS_S_COF_SKIPPED, skipped);
	if (why == PDNS_R__COUNT)
		return -1; /* the store failed */
	if (why != PDNS_OK)
		reject(c, why);
	return 0;
}

static int on_start(void *vctx, struct d4_an_session *s)
{
	struct pd_ctx *c = vctx;
	struct pd_sess *ps = calloc(1, sizeof(*ps));
	if (ps == NULL || open_store(c) != 0) {
		free(ps);
		return -1;
	}
	ps->c = c;
	if (s->type == D4_TYPE_PASSIVEDNS)
		ps->mode = PD_CSV;
	else if (s->type == D4_TYPE_META_DEFINED && strcmp(s->meta_type, c->meta_type) == 0)
		ps->mode = PD_COF;
	else
		ps->mode = PD_IGNORE;
	d4_reasm_lines_init(&ps->lines, 0);
	if (ps->mode != PD_IGNORE && pdns_store_sensor(c->st, s->uuid, &ps->sid) != 0) {
		fprintf(stderr, "d4-analyzer-passivedns: cannot record the sensor\n");
		d4_reasm_lines_free(&ps->lines);
		free(ps);
		return -1;
	}
	s->user = ps;
	return 0;
}

static int on_data(void *vctx, struct d4_an_session *s, const struct d4_header *h,
                   const uint8_t *payload, size_t len)
{
	struct pd_ctx *c = vctx;
	struct pd_sess *ps = s->user;
	if (h->type == D4_TYPE_META_HEADER)
		return 0;
	if (ps->mode == PD_IGNORE) {
		pdns_store_count(c->st, PDNS_S_IGNORED, 1);
		return 0;
	}
	int rc = d4_reasm_lines_feed(&ps->lines, payload, len, on_line, ps);
	return rc == 0 ? 0 : -1;
}

static int on_end(void *vctx, struct d4_an_session *s, unsigned reason)
{
	struct pd_ctx *c = vctx;
	struct pd_sess *ps = s->user;
	int rc = 0;
	(void)reason;
	(void)c;
	if (ps == NULL)
		return 0;
	if (ps->mode != PD_IGNORE && d4_reasm_lines_end(&ps->lines, on_line, ps) != 0)
		rc = -1;
	d4_reasm_lines_free(&ps->lines);
	free(ps);
	s->user = NULL;
	return rc;
}

static int on_flush(void *vctx)
{
	struct pd_ctx *c = vctx;
	if (c->st == NULL)
		return 0;
	return pdns_store_commit(c->st);
}

static int on_idle(void *vctx)
{
	struct pd_ctx *c = vctx;
	time_t now = time(NULL);
	size_t deleted;
	/* the store exists from the first second, before any data: d4-web then shows it empty
	 * rather than "not set up" */
	if (c->st == NULL && c->db[0] != '\0' && open_store(c) != 0)
		return -1;
	if (c->st == NULL || !c->expire_set ||
	    (!c->purging && now - c->last_purge < (time_t)c->purge_interval))
		return 0;
	/* a pass over a large store takes several idle ticks, one chunk each */
	if (!c->purging)
		c->last_purge = now;
	int rc = pdns_store_purge(c->st, (uint64_t)now, 100000, &deleted);
	if (rc < 0)
		return -1;
	c->purging = rc == 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct d4_analyzer_def def = {
		.name = "passivedns",
		.usage = usage,
		.option_cb = on_option,
		.params_cb = on_params,
		.start_cb = on_start,
		.data_cb = on_data,
		.end_cb = on_end,
		.flush_cb = on_flush,
		.idle_cb = on_idle,
	};
	/* maintenance mode: --repack DIR (with --db) copies the store and exits, reads nothing */
	const char *repack = NULL, *db = "./var/pdns";
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--repack") == 0)
			repack = argv[i + 1];
		else if (strcmp(argv[i], "--db") == 0)
			db = argv[i + 1];
	}
	if (repack != NULL) {
		char err[512];
		if (pdns_store_repack(db, repack, err, sizeof(err)) != 0) {
			fprintf(stderr, "d4-analyzer-passivedns: repack: %s\n", err);
			return 1;
		}
		return 0;
	}
	struct pd_ctx *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return 1;
	snprintf(c->db, sizeof(c->db), "./var/pdns");
	snprintf(c->meta_type, sizeof(c->meta_type), "pdns-cof");
	c->purge_interval = 3600;
	int rc = d4_analyzer_main(argc, argv, &def, c);
	if (c->st != NULL) {
		char name[64];
		const uint64_t *t = pdns_store_session_stats(c->st);
		if (pdns_store_commit(c->st) != 0 && rc == 0)
			rc = 1;
		fprintf(stderr, "d4-analyzer-passivedns: lines=%" PRIu64 " records=%" PRIu64
		                " distinct=%" PRIu64 " excluded=%" PRIu64 " rejected=%" PRIu64,
		        t[PDNS_S_LINES], t[PDNS_S_RECORDS], t[PDNS_S_NEW], t[PDNS_S_EXCLUDED],
		        t[PDNS_S_REJECTED]);
		for (unsigned i = PDNS_S__BASE + 1; i < PDNS_S__COUNT; i++)
			if (t[i])
				fprintf(stderr, " %s=%" PRIu64, pdns_stat_name(i, name, sizeof(name)), t[i]);
		fprintf(stderr, "\n");
		pdns_store_close(c->st);
	}
	for (size_t i = 0; i < c->nexcludes; i++)
		free(c->excludes[i]);
	if (c->have_re)
		regfree(&c->re);
	free(c);
	return rc;
}
