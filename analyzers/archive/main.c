/*
 * d4-analyzer-archive — writes each sensor's stream to files laid out as d4-core lays them
 * out, rotated by time and size, compressed on rotation (analyzers/archive/README.md).
 *
 *   <out>/<uuid>/<type>/YYYY/MM/DD/<uuid>-YYYY-MM-DD-HHMMSS[-n].<ext>[.gz]
 *   <out>/<uuid>/254/<meta-type>/YYYY/MM/DD/...     (meta-defined sessions)
 *
 * The time in a name is the D4 header timestamp (UTC) of the first frame written to that file,
 * so a saved stream replayed offline gives the same files as it did live. A file is rotated
 * where its format allows a cut, so that every closed file stands alone:
 *   - pcap (type 1): between records; every file starts with the session's 24-byte global
 *     header (d4_reasm_pcap reassembles records across frames; the header and each record
 *     are written back byte for byte in the sensor's byte order);
 *   - line types (3, 6, 8, and 254 with a line meta-type): after a newline; the bytes are
 *     written as received (a CRLF stays a CRLF, a long line stays whole), only the cut waits
 *     for a newline; dnscap text (4) after a newline followed by "[" (an entry's start);
 *   - pcapng (5): never within a session (a file would need the section and interface
 *     blocks again): one file per session;
 *   - everything else (7, 254 binary meta-types): at frame boundaries.
 * A rotation is due when the frame time passed the file's time by --rotate seconds or
 * entered another UTC day, when the file would pass --max-size, or (protocol mode only, from
 * idle_cb) when the file has been open --rotate seconds of wall-clock time.
 *
 * Durability follows the library's contract: flush_cb hands what was written to the kernel
 * before the records are acknowledged; a rotated or ended file is fdatasync()ed before it is
 * compressed. A write error stops the analyzer (exit 1) so the dispatcher restarts it and
 * sends again what was not acknowledged. Sending again means possible duplicates: a record
 * written but not yet acknowledged when the analyzer died is written again, into a new file
 * (names are claimed exclusively, nothing is ever overwritten or appended to).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive_file.h"
#include "d4_analyzer.h"
#include "d4_bytes.h"
#include "d4_uuid.h"

#define ARC_NAME "d4-analyzer-archive"
#define ARC_DEFAULT_ROTATE 300u
#define ARC_DEFAULT_MAX_SIZE (256ull * 1024 * 1024)
#define ARC_META_NAME_MAX 64
#define ARC_DAY 86400u

enum arc_kind {
	ARC_PCAP,   /* records, global header at the head of every file */
	ARC_LINES,  /* cut after "\n" */
	ARC_DNSCAP, /* cut after "\n" before "[" */
	ARC_PCAPNG, /* never cut */
	ARC_BIN,    /* cut between frames */
};

struct arc_ctx {
	char *out;         /* --out / param dir */
	uint64_t rotate;   /* seconds; 0: no time rotation */
	uint64_t max_size; /* bytes; 0: no size rotation */
	bool gzip;
	struct arc_sess *sessions; /* open sessions, for flush_cb and idle_cb */
};

struct arc_sess {
	struct arc_ctx *ctx;
	struct arc_sess *prev, *next;
	uint64_t id;
	enum arc_kind kind;
	const char *ext;
	char uuid[D4_UUID_STR_LEN + 1];
	char *dir;          /* "<out>/<uuid>/<type>[/<meta-type>]" */
	char *meta_json;    /* 254: the meta header, written beside the session's first file */
	size_t meta_json_len;
	struct arc_file file;
	uint64_t frame_ts;  /* timestamp of the frame being handled */
	bool rotate_pending;   /* cut at the next boundary the format allows */
	uint64_t pending_size; /* file size when the cut became pending */
	bool expired;       /* open longer than --rotate of wall-clock time */
	struct d4_reasm_pcap pcap;
	uint8_t pcap_global[D4_PCAP_GLOBAL_SIZE];
	bool have_global;
	bool pcap_reported; /* a malformed stream was logged */
	uint8_t pcap_pre[D4_PCAP_GLOBAL_SIZE]; /* the bytes before the global header is whole */
	size_t pcap_pre_len;
};

/* ---- options ---- */

static int parse_u64(const char *v, bool size_suffix, uint64_t *out)
{
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	unsigned long long n = strtoull(v, &end, 10);
	uint64_t mult = 1;
	if (size_suffix && *end != '\0' && end[1] == '\0') {
		switch (*end) {
		case 'k': case 'K': mult = 1024u; break;
		case 'm': case 'M': mult = 1024u * 1024u; break;
		case 'g': case 'G': mult = 1024u * 1024u * 1024u; break;
		default: return -1;
		}
		end++;
	}
	if (*end != '\0' || n > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)n * mult;
	return 0;
}

/* One option by its name without dashes (argv and HELLO params share the names). */
static int set_option(struct arc_ctx *c, const char *name, const char *v)
{
	if (strcmp(name, "out") == 0 || strcmp(name, "dir") == 0) {
		if (v == NULL || *v == '\0')
			goto bad;
		char *d = strdup(v);
		if (d == NULL)
			return -1;
		size_t n = strlen(d);
		while (n > 1 && d[n - 1] == '/')
			d[--n] = '\0';
		free(c->out);
		c->out = d;
		return 0;
	}
	if (strcmp(name, "rotate") == 0) {
		if (parse_u64(v, false, &c->rotate) != 0 || c->rotate > 366u * ARC_DAY)
			goto bad;
		return 0;
	}
	if (strcmp(name, "max-size") == 0 || strcmp(name, "max_size") == 0) {
		if (parse_u64(v, true, &c->max_size) != 0)
			goto bad;
		return 0;
	}
	if (strcmp(name, "compress") == 0) {
		if (v && strcmp(v, "gzip") == 0)
			c->gzip = true;
		else if (v && strcmp(v, "none") == 0)
			c->gzip = false;
		else
			goto bad;
		return 0;
	}
	fprintf(stderr, ARC_NAME ": unknown option %s\n", name);
	return -1;
bad:
	fprintf(stderr, ARC_NAME ": invalid %s: %s\n", name, v ? v : "(missing)");
	return -1;
}

static int on_option(void *vctx, const char *arg, const char *next)
{
	static const char *const known[] = {"--out", "--dir", "--rotate", "--max-size", "--compress"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(arg, known[i]) == 0)
			return set_option(vctx, arg + 2, next) == 0 ? 2 : -1;
	return 0;
}

static int on_params(void *vctx, const char *key, const char *value)
{
	return set_option(vctx, key, value);
}

/* ---- layout ---- */

/* Meta-types whose data is text lines (JSON lines, log lines). */
static bool meta_is_lines(const char *mt)
{
	static const char *const names[] = {"ja3-jl", "maltrail", "d4-telemetry", "fascia"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(mt, names[i]) == 0)
			return true;
	size_t n = strlen(mt);
	return (n > 3 && strcmp(mt + n - 3, "-jl") == 0) ||
	       (n >= 5 && strcmp(mt + n - 5, "jsonl") == 0) ||
	       (n >= 6 && strcmp(mt + n - 6, "ndjson") == 0);
}

static enum arc_kind kind_of(const struct d4_an_session *s)
{
	switch (s->type) {
	case D4_TYPE_PCAP:
		return ARC_PCAP;
	case D4_TYPE_LOG:
	case D4_TYPE_NDJSON:
	case D4_TYPE_PASSIVEDNS:
		return ARC_LINES;
	case D4_TYPE_DNSCAP:
		return ARC_DNSCAP;
	case D4_TYPE_PCAPNG:
		return ARC_PCAPNG;
	case D4_TYPE_META_DEFINED:
		return meta_is_lines(s->meta_type) ? ARC_LINES : ARC_BIN;
	default:
		return ARC_BIN;
	}
}

static const char *ext_of(enum arc_kind kind)
{
	static const char *const ext[] = {
		[ARC_PCAP] = "pcap",     [ARC_LINES] = "txt", [ARC_DNSCAP] = "dnscap.txt",
		[ARC_PCAPNG] = "pcapng", [ARC_BIN] = "bin",
	};
	return ext[kind];
}

/* A meta-type as one safe path component: [A-Za-z0-9._-], no leading dot, at most 64 bytes.
 * The meta-type comes from the sensor: "../x" must not leave the archive. */
static void meta_dir_name(const char *mt, char out[ARC_META_NAME_MAX + 1])
{
	size_t n = 0;
	for (; mt[n] && n < ARC_META_NAME_MAX; n++) {
		char ch = mt[n];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || (ch == '.' && n > 0);
		out[n] = ok ? ch : '_';
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, ARC_META_NAME_MAX + 1, "_unknown");
}

/* ---- files ---- */

/* Opens the session's next file, named after the current frame's time. */
static int sess_open(struct arc_sess *as)
{
	time_t t = (time_t)as->frame_ts;
	struct tm tm;
	if ((uint64_t)t != as->frame_ts || gmtime_r(&t, &tm) == NULL) {
		fprintf(stderr, ARC_NAME ": session %" PRIu64 ": timestamp %" PRIu64 " out of range\n",
		        as->id, as->frame_ts);
		return -1;
	}
	char dir[PATH_MAX], base[D4_UUID_STR_LEN + 32];
	int kd = snprintf(dir, sizeof(dir), "%s/%04d/%02d/%02d", as->dir, tm.tm_year + 1900,
	                  tm.tm_mon + 1, tm.tm_mday);
	int kb = snprintf(base, sizeof(base), "%s-%04d-%02d-%02d-%02d%02d%02d", as->uuid,
	                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                  tm.tm_sec);
	if (kd < 0 || (size_t)kd >= sizeof(dir) || kb < 0 || (size_t)kb >= sizeof(base)) {
		fprintf(stderr, ARC_NAME ": path too long under %s\n", as->dir);
		return -1;
	}
	char *stem = NULL;
	if (arc_file_open(&as->file, dir, base, as->ext, as->frame_ts,
	                  as->meta_json ? &stem : NULL) != 0)
		return -1;
	as->rotate_pending = as->expired = false;
	if (as->meta_json == NULL)
		return 0;
	/* the meta header once per session, beside its first file, as d4-core keeps it */
	char path[PATH_MAX];
	int kp = snprintf(path, sizeof(path), "%s.json", stem);
	free(stem);
	int rc = kp < 0 || (size_t)kp >= sizeof(path) ? -1
	                                              : arc_write_whole(path, as->meta_json,
	                                                                as->meta_json_len);
	free(as->meta_json);
	as->meta_json = NULL;
	return rc;
}

static int sess_close(struct arc_sess *as)
{
	return arc_file_close(&as->file, as->ctx->gzip);
}

static int sess_write(struct arc_sess *as, const void *p, size_t len)
{
	if (len == 0)
		return 0; /* never an empty file after a cut at the end of a frame */
	if (as->file.f == NULL && sess_open(as) != 0)
		return -1;
	return arc_file_write(&as->file, p, len);
}

/* Is the open file due for a cut by time (frame time) or by size (after adding len bytes)? */
static bool rotation_due(const struct arc_sess *as, uint64_t len)
{
	const struct arc_ctx *c = as->ctx;
	const struct arc_file *f = &as->file;
	if (f->f == NULL || f->size == 0)
		return false;
	if (as->expired)
		return true;
	if (c->rotate && (as->frame_ts >= f->first_ts + c->rotate ||
	                  as->frame_ts / ARC_DAY != f->first_ts / ARC_DAY))
		return true;
	return c->max_size && f->size + len > c->max_size;
}

/* ---- pcap ---- */

static void put32(uint8_t *b, uint32_t v, bool big)
{
	if (big)
		d4_put_be32(b, v);
	else
		d4_put_le32(b, v);
}

static void put16(uint8_t *b, uint16_t v, bool big)
{
	b[big ? 0 : 1] = (uint8_t)(v >> 8);
	b[big ? 1 : 0] = (uint8_t)v;
}

/* The global header as the sensor wrote it (every field is kept by d4_reasm_pcap). */
static int pcap_global_cb(void *arg, const struct d4_pcap_global *g)
{
	struct arc_sess *as = arg;
	uint8_t *b = as->pcap_global;
	put32(b, g->nsec ? 0xa1b23c4du : 0xa1b2c3d4u, g->big_endian);
	put16(b + 4, g->version_major, g->big_endian);
	put16(b + 6, g->version_minor, g->big_endian);
	put32(b + 8, (uint32_t)g->thiszone, g->big_endian);
	put32(b + 12, g->sigfigs, g->big_endian);
	put32(b + 16, g->snaplen, g->big_endian);
	put32(b + 20, g->linktype, g->big_endian);
	as->have_global = true;
	/* a session with a header and no record still gives a (valid, empty) pcap */
	return as->file.f ? 0 : sess_write(as, as->pcap_global, sizeof(as->pcap_global));
}

static int pcap_record_cb(void *arg, const struct d4_pcap_global *g, const struct d4_pcap_record *r)
{
	struct arc_sess *as = arg;
	uint8_t head[D4_PCAP_RECORD_SIZE];
	put32(head, r->ts_sec, g->big_endian);
	put32(head + 4, r->ts_frac, g->big_endian);
	put32(head + 8, r->caplen, g->big_endian);
	put32(head + 12, r->len, g->big_endian);
	uint64_t n = sizeof(head) + (uint64_t)r->caplen;
	if (as->file.units > 0 && rotation_due(as, n) && sess_close(as) != 0)
		return -1;
	if (as->file.f == NULL && sess_write(as, as->pcap_global, sizeof(as->pcap_global)) != 0)
		return -1;
	if (arc_file_write(&as->file, head, sizeof(head)) != 0 ||
	    arc_file_write(&as->file, r->data, r->caplen) != 0)
		return -1;
	as->file.units++;
	return 0;
}

static const struct d4_pcap_cbs pcap_cbs = {
	.global_cb = pcap_global_cb,
	.record_cb = pcap_record_cb,
};

static void pcap_report(struct arc_sess *as)
{
	if (as->pcap_reported)
		return;
	as->pcap_reported = true;
	fprintf(stderr, ARC_NAME ": %s session %" PRIu64 ": %s: the rest of the session is not "
	        "archived\n", as->uuid, as->id, as->pcap.why);
}

/*
 * A stream that is not pcap from its first byte is archived as it came, in ".raw" files cut
 * at frame boundaries, rather than lost: that is what a replay after an analyzer restart looks
 * like (it starts at the first unacknowledged frame, mid-stream, without the global header).
 * A stream that goes bad after a valid start loses its rest (logged).
 */
static int pcap_data(struct arc_sess *as, const uint8_t *p, size_t len)
{
	int rc = d4_reasm_pcap_feed(&as->pcap, p, len, &pcap_cbs, as);
	if (rc == 0 && !as->pcap.have_global && !as->pcap.failed) {
		/* under 24 bytes so far, all held: keep a copy in case they turn out not pcap */
		if (len > sizeof(as->pcap_pre) - as->pcap_pre_len)
			return -1; /* cannot happen: the reassembler would have parsed them */
		memcpy(as->pcap_pre + as->pcap_pre_len, p, len);
		as->pcap_pre_len += len;
		return 0;
	}
	if (rc != D4_REASM_MALFORMED)
		return rc == 0 ? 0 : -1;
	if (as->pcap.have_global) {
		pcap_report(as);
		return 0;
	}
	fprintf(stderr, ARC_NAME ": %s session %" PRIu64 ": %s: archived as it came (.raw)\n",
	        as->uuid, as->id, as->pcap.why);
	as->pcap_reported = true;
	as->kind = ARC_BIN;
	as->ext = "raw";
	if (sess_write(as, as->pcap_pre, as->pcap_pre_len) != 0)
		return -1;
	return sess_write(as, p, len);
}

/* ---- text ---- */

/* Where a file may end: the first offset i in [0, len] such that the bytes before i end a
 * line (and, for dnscap, p[i] starts an entry). */
static bool find_cut(const struct arc_sess *as, const uint8_t *p, size_t len, size_t *cut)
{
	for (size_t i = 0; i <= len; i++) {
		int before = i == 0 ? as->file.last_byte : p[i - 1];
		if (before != '\n')
			continue;
		if (as->kind == ARC_DNSCAP && (i == len || p[i] != '['))
			continue;
		*cut = i;
		return true;
	}
	return false;
}

static int text_data(struct arc_sess *as, const uint8_t *p, size_t len)
{
	size_t pos = 0;
	if (!as->rotate_pending && rotation_due(as, len)) {
		as->rotate_pending = true;
		as->pending_size = as->file.size;
	}
	if (as->rotate_pending && as->file.f) {
		size_t cut;
		if (find_cut(as, p, len, &cut)) {
			if (arc_file_write(&as->file, p, cut) != 0 || sess_close(as) != 0)
				return -1;
			pos = cut;
		} else if (as->ctx->max_size && as->file.size - as->pending_size > as->ctx->max_size) {
			/* no line end in another --max-size bytes: cut anyway, or the file never ends */
			fprintf(stderr, ARC_NAME ": %s: no line end in %" PRIu64 " bytes: cut mid-line\n",
			        as->file.path, as->file.size - as->pending_size);
			if (sess_close(as) != 0)
				return -1;
		}
	}
	return sess_write(as, p + pos, len - pos);
}

/* ---- callbacks ---- */

static int on_start(void *vctx, struct d4_an_session *s)
{
	struct arc_ctx *c = vctx;
	if (c->out == NULL) {
		fprintf(stderr, ARC_NAME ": no output directory: give --out DIR (or param dir)\n");
		return -1;
	}
	struct arc_sess *as = calloc(1, sizeof(*as));
	if (as == NULL)
		return -1;
	as->ctx = c;
	as->id = s->id;
	as->frame_ts = s->time;
	d4_uuid_format(s->uuid, as->uuid);
	as->kind = kind_of(s);
	as->ext = ext_of(as->kind);
	d4_reasm_pcap_init(&as->pcap);
	char mt[ARC_META_NAME_MAX + 1] = "";
	if (s->type == D4_TYPE_META_DEFINED)
		meta_dir_name(s->meta_type, mt);
	size_t n = strlen(c->out) + strlen(as->uuid) + strlen(mt) + 16;
	as->dir = malloc(n);
	if (as->dir == NULL)
		goto fail;
	if (mt[0])
		snprintf(as->dir, n, "%s/%s/%u/%s", c->out, as->uuid, (unsigned)s->type, mt);
	else
		snprintf(as->dir, n, "%s/%s/%u", c->out, as->uuid, (unsigned)s->type);
	if (s->meta_json_len) {
		as->meta_json = malloc(s->meta_json_len);
		if (as->meta_json == NULL)
			goto fail;
		memcpy(as->meta_json, s->meta_json, s->meta_json_len);
		as->meta_json_len = s->meta_json_len;
	}
	as->next = c->sessions;
	if (c->sessions)
		c->sessions->prev = as;
	c->sessions = as;
	s->user = as;
	return 0;
fail:
	fprintf(stderr, ARC_NAME ": out of memory\n");
	free(as->dir);
	free(as);
	return -1;
}

static int on_data(void *vctx, struct d4_an_session *s, const struct d4_header *h,
                   const uint8_t *payload, size_t len)
{
	struct arc_sess *as = s->user;
	(void)vctx;
	if (h->type == D4_TYPE_META_HEADER || len == 0)
		return 0; /* the meta header goes beside the data, as .json */
	as->frame_ts = h->timestamp;
	switch (as->kind) {
	case ARC_PCAP:
		return pcap_data(as, payload, len);
	case ARC_LINES:
	case ARC_DNSCAP:
		return text_data(as, payload, len);
	case ARC_PCAPNG:
		return sess_write(as, payload, len);
	case ARC_BIN:
		if (rotation_due(as, len) && sess_close(as) != 0)
			return -1;
		return sess_write(as, payload, len);
	}
	return -1;
}

static int on_end(void *vctx, struct d4_an_session *s, unsigned reason)
{
	struct arc_ctx *c = vctx;
	struct arc_sess *as = s->user;
	(void)reason;
	if (as == NULL)
		return 0;
	int rc = 0;
	if (as->kind == ARC_PCAP && !as->pcap.have_global && as->pcap_pre_len > 0) {
		as->ext = "raw"; /* fewer bytes than a global header: kept as they came */
		rc = sess_write(as, as->pcap_pre, as->pcap_pre_len);
	} else if (as->kind == ARC_PCAP && d4_reasm_pcap_end(&as->pcap) == D4_REASM_MALFORMED) {
		pcap_report(as); /* a record cut short is not written: every file stays valid */
	}
	if (sess_close(as) != 0)
		rc = -1;
	if (as->prev)
		as->prev->next = as->next;
	else
		c->sessions = as->next;
	if (as->next)
		as->next->prev = as->prev;
	d4_reasm_pcap_free(&as->pcap);
	free(as->meta_json);
	free(as->dir);
	free(as);
	s->user = NULL;
	return rc;
}

static int on_flush(void *vctx)
{
	struct arc_ctx *c = vctx;
	for (struct arc_sess *as = c->sessions; as; as = as->next)
		if (arc_file_flush(&as->file) != 0)
			return -1;
	return 0;
}

/* Protocol mode, about once a second: a file open --rotate seconds is closed now if it is at
 * a boundary (always, between pcap records or frames), else at the next line end. */
static int on_idle(void *vctx)
{
	struct arc_ctx *c = vctx;
	uint64_t now = arc_now_ms();
	if (c->rotate == 0)
		return 0;
	for (struct arc_sess *as = c->sessions; as; as = as->next) {
		if (as->file.f == NULL || as->kind == ARC_PCAPNG ||
		    (as->kind == ARC_PCAP && as->file.units == 0) ||
		    now - as->file.opened_ms < c->rotate * 1000u)
			continue;
		bool at_cut = as->kind == ARC_PCAP || as->kind == ARC_BIN || as->file.last_byte == '\n';
		if (at_cut) {
			if (sess_close(as) != 0)
				return -1;
		} else {
			as->expired = true;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct d4_analyzer_def def = {
		.name = "archive",
		.usage = "  --out DIR                   archive directory (required; queue param dir)\n"
		         "  --rotate SECONDS            a new file every SECONDS (default 300, 0: never)\n"
		         "  --max-size BYTES            a new file before BYTES, k/M/G suffixes "
		         "(default 256M, 0: no limit)\n"
		         "  --compress gzip|none        compress rotated files (default gzip)\n",
		.option_cb = on_option,
		.params_cb = on_params,
		.start_cb = on_start,
		.data_cb = on_data,
		.end_cb = on_end,
		.flush_cb = on_flush,
		.idle_cb = on_idle,
	};
	struct arc_ctx c = {
		.rotate = ARC_DEFAULT_ROTATE,
		.max_size = ARC_DEFAULT_MAX_SIZE,
		.gzip = true,
	};
	int rc = d4_analyzer_main(argc, argv, &def, &c);
	free(c.out);
	return rc;
}
