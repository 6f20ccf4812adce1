/*
 * d4-analyzer-stdout — prints every record, for debugging a sensor or the dispatcher.
 *
 * One line per START and END; the data as text lines for the line types (3 logs, 6 NDJSON,
 * 8 passivedns CSV, 254 when the meta-type names a line format), as one line per pcap record
 * for type 1 (with its bytes under -x), and as a hex dump for everything else. Every line
 * starts with the session's tag (uuid prefix / type) so that interleaved sessions stay
 * readable. Text is printed as is except control bytes, which are escaped (\xNN): a sensor
 * must not be able to drive the operator's terminal.
 *
 * Lines and pcap records are reassembled per session (a frame boundary is not a record
 * boundary), with the bounded helpers of d4_analyzer.h.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "d4_analyzer.h"
#include "d4_uuid.h"

enum out_mode { MODE_TEXT, MODE_PCAP, MODE_HEX };

struct out_ctx {
	FILE *out;
	bool pcap_hex;   /* -x: dump each pcap record's bytes too */
	size_t max_line; /* --max-line */
};

struct out_sess {
	struct out_ctx *ctx;
	char tag[D4_AN_TAG_LEN];
	enum out_mode mode;
	struct d4_reasm_lines lines;
	struct d4_reasm_pcap pcap;
	uint64_t offset; /* stream offset of the next byte, for the hex dump */
};

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

static enum out_mode mode_of(const struct d4_an_session *s)
{
	switch (s->type) {
	case D4_TYPE_LOG:
	case D4_TYPE_NDJSON:
	case D4_TYPE_PASSIVEDNS:
		return MODE_TEXT;
	case D4_TYPE_PCAP:
		return MODE_PCAP;
	case D4_TYPE_META_DEFINED:
		return meta_is_lines(s->meta_type) ? MODE_TEXT : MODE_HEX;
	default:
		return MODE_HEX;
	}
}

/* Writes bytes with control bytes (but tab) escaped as \xNN. */
static void put_escaped(FILE *f, const uint8_t *p, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
			if (i > run)
				fwrite(p + run, 1, i - run, f);
			fprintf(f, "\\x%02x", p[i]);
			run = i + 1;
		}
	}
	if (n > run)
		fwrite(p + run, 1, n - run, f);
}

static void hex_dump(FILE *f, const char *tag, uint64_t offset, const uint8_t *p, size_t n)
{
	for (size_t at = 0; at < n; at += 16) {
		size_t k = n - at < 16 ? n - at : 16;
		fprintf(f, "%s %08" PRIx64 " ", tag, offset + at);
		for (size_t i = 0; i < 16; i++) {
			if (i == 8)
				fputc(' ', f);
			if (i < k)
				fprintf(f, " %02x", p[at + i]);
			else
				fputs("   ", f);
		}
		fputs("  |", f);
		for (size_t i = 0; i < k; i++) {
			uint8_t c = p[at + i];
			fputc(c >= 0x20 && c < 0x7f ? c : '.', f);
		}
		fputs("|\n", f);
	}
}

static void format_peer(const struct d4_an_session *s, char *out, size_t cap)
{
	static const uint8_t zero[16];
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char a[INET6_ADDRSTRLEN];
	if (memcmp(s->addr, zero, 16) == 0 && s->port == 0) {
		snprintf(out, cap, "-");
		return;
	}
	if (memcmp(s->addr, mapped, 12) == 0) {
		if (inet_ntop(AF_INET, s->addr + 12, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		snprintf(out, cap, "%s:%u", a, (unsigned)s->port);
		return;
	}
	if (inet_ntop(AF_INET6, s->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(out, cap, "[%s]:%u", a, (unsigned)s->port);
}

static int on_start(void *vctx, struct d4_an_session *s)
{
	struct out_ctx *c = vctx;
	struct out_sess *os = calloc(1, sizeof(*os));
	if (os == NULL)
		return -1;
	os->ctx = c;
	d4_an_session_tag(s, os->tag);
	os->mode = mode_of(s);
	d4_reasm_lines_init(&os->lines, c->max_line);
	d4_reasm_pcap_init(&os->pcap);
	s->user = os;

	char uuid[D4_UUID_STR_LEN + 1], peer[INET6_ADDRSTRLEN + 16];
	d4_uuid_format(s->uuid, uuid);
	format_peer(s, peer, sizeof(peer));
	fprintf(c->out, "%s START uuid=%s type=%u (%s) peer=%s time=%" PRIu64 " session=%" PRIu64,
	        os->tag, uuid, (unsigned)s->type, d4_type_name(s->type), peer, s->time, s->id);
	if (s->meta_type[0]) {
		fputs(" meta-type=", c->out);
		put_escaped(c->out, (const uint8_t *)s->meta_type, strlen(s->meta_type));
	}
	if (s->meta_json_len) {
		fputs(" meta=", c->out);
		put_escaped(c->out, (const uint8_t *)s->meta_json, s->meta_json_len);
	}
	fputc('\n', c->out);
	return 0;
}

static int print_line(void *arg, const uint8_t *line, size_t len, unsigned flags)
{
	struct out_sess *os = arg;
	FILE *f = os->ctx->out;
	fprintf(f, "%s | ", os->tag);
	put_escaped(f, line, len);
	fputc('\n', f);
	if (flags & D4_LINE_TRUNCATED)
		fprintf(f, "%s ! line longer than %zu bytes: truncated\n", os->tag, os->lines.max_line);
	if (flags & D4_LINE_UNTERMINATED)
		fprintf(f, "%s ! no newline at the end of the session\n", os->tag);
	return 0;
}

static int print_pcap_global(void *arg, const struct d4_pcap_global *g)
{
	struct out_sess *os = arg;
	fprintf(os->ctx->out, "%s pcap v%u.%u linktype=%u snaplen=%u %s%s\n", os->tag,
	        (unsigned)g->version_major, (unsigned)g->version_minor, g->linktype, g->snaplen,
	        g->nsec ? "nsec" : "usec", g->big_endian ? " big-endian" : "");
	return 0;
}

static int print_pcap_record(void *arg, const struct d4_pcap_global *g,
                             const struct d4_pcap_record *r)
{
	struct out_sess *os = arg;
	fprintf(os->ctx->out, g->nsec ? "%s pcap %u.%09u caplen=%u len=%u\n"
	                              : "%s pcap %u.%06u caplen=%u len=%u\n",
	        os->tag, r->ts_sec, r->ts_frac, r->caplen, r->len);
	if (os->ctx->pcap_hex)
		hex_dump(os->ctx->out, os->tag, 0, r->data, r->caplen);
	return 0;
}

static const struct d4_pcap_cbs pcap_cbs = {
	.global_cb = print_pcap_global,
	.record_cb = print_pcap_record,
};

static int on_data(void *vctx, struct d4_an_session *s, const struct d4_header *h,
                   const uint8_t *payload, size_t len)
{
	struct out_sess *os = s->user;
	(void)vctx;
	if (h->type == D4_TYPE_META_HEADER)
		return 0; /* the meta header is on the START line */
	int rc = 0;
	switch (os->mode) {
	case MODE_TEXT:
		rc = d4_reasm_lines_feed(&os->lines, payload, len, print_line, os);
		break;
	case MODE_PCAP:
		rc = d4_reasm_pcap_feed(&os->pcap, payload, len, &pcap_cbs, os);
		if (rc == D4_REASM_MALFORMED) {
			fprintf(os->ctx->out, "%s ! %s: the rest of the session is skipped\n", os->tag,
			        os->pcap.why);
			rc = 0;
		}
		break;
	case MODE_HEX:
		hex_dump(os->ctx->out, os->tag, os->offset, payload, len);
		break;
	}
	os->offset += len;
	return rc;
}

static const char *end_reason(unsigned reason, char *buf, size_t cap)
{
	if (reason == D4_AP_END_RESTARTED)
		return "restarted";
	if (reason == D4_AN_END_STOPPED)
		return "stopped";
	if (reason < D4_R_COUNT)
		return d4_reason_name((enum d4_reason)reason);
	snprintf(buf, cap, "%u", reason);
	return buf;
}

static int on_end(void *vctx, struct d4_an_session *s, unsigned reason)
{
	struct out_ctx *c = vctx;
	struct out_sess *os = s->user;
	int rc = 0;
	if (os->mode == MODE_TEXT) {
		rc = d4_reasm_lines_end(&os->lines, print_line, os);
	} else if (os->mode == MODE_PCAP && d4_reasm_pcap_end(&os->pcap) == D4_REASM_MALFORMED) {
		fprintf(c->out, "%s ! %s\n", os->tag, os->pcap.why);
	}
	char buf[16];
	fprintf(c->out, "%s END records=%" PRIu64 " bytes=%" PRIu64 " reason=%s\n", os->tag,
	        s->records, s->bytes, end_reason(reason, buf, sizeof(buf)));
	d4_reasm_lines_free(&os->lines);
	d4_reasm_pcap_free(&os->pcap);
	free(os);
	s->user = NULL;
	return rc;
}

static int on_flush(void *vctx)
{
	struct out_ctx *c = vctx;
	if (fflush(c->out) != 0 || ferror(c->out)) {
		perror("d4-analyzer-stdout: write");
		return -1;
	}
	return 0;
}

static int on_option(void *vctx, const char *arg, const char *next)
{
	struct out_ctx *c = vctx;
	if (strcmp(arg, "-x") == 0 || strcmp(arg, "--hex") == 0) {
		c->pcap_hex = true;
		return 1;
	}
	if (strcmp(arg, "--max-line") == 0) {
		char *end;
		unsigned long v = next ? strtoul(next, &end, 10) : 0;
		if (next == NULL || *end != '\0' || v < 16 || v > 16u * 1024 * 1024) {
			fprintf(stderr, "d4-analyzer-stdout: --max-line needs 16 .. 16777216\n");
			return -1;
		}
		c->max_line = v;
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct d4_analyzer_def def = {
		.name = "stdout",
		.usage = "  -x, --hex                   pcap: dump each record's bytes too\n"
		         "  --max-line N                longest text line printed whole (default 65536)\n",
		.option_cb = on_option,
		.start_cb = on_start,
		.data_cb = on_data,
		.end_cb = on_end,
		.flush_cb = on_flush,
	};
	struct out_ctx c = {.out = stdout};
	return d4_analyzer_main(argc, argv, &def, &c);
}
