/*
 * decode.c — `d4ctl decode`: read a saved D4 stream and print one line per frame.
 *
 * This is the operator's and the test suite's window on the wire: it uses the
 * same decoder as the server, so a stream it accepts is a stream the server
 * accepts (as far as the bytes alone can tell). A bad HMAC is reported and
 * decoding goes on; a malformed frame stops it, since nothing after it can be
 * framed reliably. The exit status is 1 if anything was wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "d4_keyfile.h"
#include "d4_proto.h"
#include "d4_uuid.h"
#include "d4ctl.h"

struct decode_opts {
	const char *input;
	char *key;
	size_t key_len;
	uint32_t max_payload;
	const char *payload_out;
	bool json;
	bool quiet;
};

struct decode_run {
	const struct decode_opts *o;
	FILE *payload;
	uint64_t frame_no;
	uint64_t offset; /* stream offset of the current frame */
	uint64_t bad_hmac;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl decode [options] [FILE|-]\n"
		"Prints one line per frame of a D4 stream (default: stdin).\n\n"
		"  -k, --key KEY          check every frame's HMAC with this key\n"
		"  -K, --key-file FILE    read the key from FILE (one trailing newline ignored)\n"
		"  -m, --max-payload N    refuse payloads larger than N bytes (default %u)\n"
		"  -p, --payload FILE     write the concatenated payloads to FILE ('-' for stdout)\n"
		"  -j, --json             one JSON object per frame\n"
		"  -q, --quiet            print only problems\n\n"
		"Exit status: 0 all frames well-formed (and HMACs good with a key),\n"
		"1 a frame was malformed, truncated or failed its HMAC, 2 usage, 3 I/O error.\n",
		D4_DEFAULT_MAX_PAYLOAD);
}

static int read_key_file(const char *path, struct decode_opts *o)
{
	uint8_t key[4096];
	size_t n;
	char err[512];
	if (d4_key_file_read(path, key, sizeof(key), &n, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4ctl decode: %s\n", err);
		return -1;
	}
	o->key = malloc(n + 1);
	if (o->key != NULL) {
		memcpy(o->key, key, n);
		o->key[n] = '\0';
		o->key_len = n;
	}
	OPENSSL_cleanse(key, sizeof(key));
	return o->key ? 0 : -1;
}

static void format_time(uint64_t ts, char *out, size_t len)
{
	time_t t = (time_t)ts;
	struct tm tm;
	if (ts > (uint64_t)253402300799u || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "out-of-range");
}

static const char *hmac_word(enum d4_hmac_status s)
{
	return s == D4_HMAC_OK ? "ok" : s == D4_HMAC_BAD ? "bad" : "unchecked";
}

void d4ctl_print_frame(const struct d4_header *h, uint64_t frame_no, uint64_t offset,
                       enum d4_hmac_status hs, bool json)
{
	char uuid[D4_UUID_STR_LEN + 1], when[32];
	d4_uuid_format(h->uuid, uuid);
	format_time(h->timestamp, when, sizeof(when));
	if (json) {
		json_t *j = json_pack("{s:I, s:I, s:i, s:i, s:s, s:s, s:I, s:s, s:I, s:s}",
		                      "frame", (json_int_t)frame_no, "offset", (json_int_t)offset,
		                      "version", h->version, "type", h->type, "type_name",
		                      d4_type_name(h->type), "uuid", uuid, "timestamp",
		                      (json_int_t)h->timestamp, "time", when, "size",
		                      (json_int_t)h->size, "hmac", hmac_word(hs));
		if (j) {
			char *s = json_dumps(j, JSON_COMPACT);
			if (s)
				printf("%s\n", s);
			free(s);
			json_decref(j);
		}
		return;
	}
	printf("frame=%" PRIu64 " offset=%" PRIu64 " version=%u type=%u(%s) uuid=%s "
	       "timestamp=%" PRIu64 "(%s) size=%" PRIu32 " hmac=%s\n",
	       frame_no, offset, h->version, h->type, d4_type_name(h->type), uuid, h->timestamp,
	       when, h->size, hmac_word(hs));
}

static void print_frame(struct decode_run *r, const struct d4_header *h, enum d4_hmac_status hs)
{
	if (r->o->quiet && hs != D4_HMAC_BAD)
		return;
	d4ctl_print_frame(h, r->frame_no, r->offset, hs, r->o->json);
}

static void print_error(struct decode_run *r, enum d4_reason why, const struct d4_header *h,
                        bool have_header)
{
	char uuid[D4_UUID_STR_LEN + 1] = "-";
	if (have_header)
		d4_uuid_format(h->uuid, uuid);
	if (r->o->json) {
		json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s}", "frame", (json_int_t)r->frame_no + 1,
		                      "offset", (json_int_t)r->offset, "error", d4_reason_name(why),
		                      "text", d4_reason_text(why), "uuid", uuid);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		printf("frame=%" PRIu64 " offset=%" PRIu64 " error=%s uuid=%s", r->frame_no + 1,
		       r->offset, d4_reason_name(why), uuid);
		if (have_header && why == D4_R_PAYLOAD_TOO_LARGE)
			printf(" size=%" PRIu32, h->size);
		if (have_header && (why == D4_R_BAD_VERSION || why == D4_R_UNKNOWN_TYPE))
			printf(" version=%u type=%u", h->version, h->type);
		printf(" msg=\"%s\"\n", d4_reason_text(why));
	}
	fflush(stdout);
}

/* Returns D4_OK, or the reason decoding stopped. */
static enum d4_reason run_decoder(struct decode_run *r, int fd, int *io_error)
{
	struct d4_decoder d;
	struct d4_decoder_opts dopts = {.max_payload = r->o->max_payload, .report_bad_hmac = true};
	enum d4_reason result = D4_OK;
	uint8_t *buf = malloc(1 << 20);

	*io_error = 0;
	d4_decoder_init(&d, &dopts);
	if (buf == NULL || (r->o->key && d4_decoder_set_key(&d, (uint8_t *)r->o->key,
	                                                    r->o->key_len) != 0)) {
		*io_error = ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*io_error = errno;
			goto out;
		}
		if (n == 0)
			break;
		const uint8_t *p = buf;
		size_t left = (size_t)n;
		for (;;) {
			struct d4_event ev;
			size_t used = d4_decoder_feed(&d, p, left, &ev);
			p += used;
			left -= used;
			if (ev.kind == D4_EV_NONE)
				break;
			if (ev.kind == D4_EV_ERROR) {
				/* hdr is filled when the header was complete */
				print_error(r, ev.reason, ev.hdr, d.hdr_have == D4_HEADER_SIZE);
				result = ev.reason;
				goto out;
			}
			if (ev.kind != D4_EV_FRAME)
				continue;
			r->frame_no++;
			print_frame(r, ev.hdr, ev.hmac);
			if (ev.hmac == D4_HMAC_BAD)
				r->bad_hmac++;
			if (r->payload && ev.payload_len &&
			    fwrite(ev.payload, 1, ev.payload_len, r->payload) != ev.payload_len) {
				*io_error = errno ? errno : EIO;
				goto out;
			}
			r->offset = d.bytes_in; /* where the next frame starts */
		}
	}
	result = d4_decoder_finish(&d);
	if (result != D4_OK)
		print_error(r, result, &d.hdr, d.hdr_have == D4_HEADER_SIZE);
out:
	d4_decoder_free(&d);
	free(buf);
	return result;
}

int cmd_decode(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"key", required_argument, NULL, 'k'},
		{"key-file", required_argument, NULL, 'K'},
		{"max-payload", required_argument, NULL, 'm'},
		{"payload", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct decode_opts o = {.max_payload = D4_DEFAULT_MAX_PAYLOAD};
	struct decode_run r = {.o = &o};
	int status = D4CTL_ERROR, fd = -1, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "k:K:m:p:jqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			free(o.key);
			o.key = strdup(optarg);
			if (o.key == NULL)
				goto out;
			o.key_len = strlen(optarg);
			break;
		case 'K':
			free(o.key);
			o.key = NULL;
			if (read_key_file(optarg, &o) != 0)
				goto out;
			break;
		case 'm': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "d4ctl decode: --max-payload: '%s' is not a size "
				                "between 1 and 4294967295\n", optarg);
				status = D4CTL_USAGE;
				goto out;
			}
			o.max_payload = (uint32_t)v;
			break;
		}
		case 'p':
			o.payload_out = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			status = D4CTL_OK;
			goto out;
		default:
			usage(stderr);
			status = D4CTL_USAGE;
			goto out;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		status = D4CTL_USAGE;
		goto out;
	}
	o.input = optind < argc ? argv[optind] : "-";
	fd = strcmp(o.input, "-") == 0 ? STDIN_FILENO : open(o.input, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "d4ctl decode: %s: %s\n", o.input, strerror(errno));
		goto out;
	}
	if (o.payload_out) {
		r.payload = strcmp(o.payload_out, "-") == 0 ? stdout : fopen(o.payload_out, "wb");
		if (r.payload == NULL) {
			fprintf(stderr, "d4ctl decode: %s: %s\n", o.payload_out, strerror(errno));
			goto out;
		}
		if (r.payload == stdout)
			o.quiet = true; /* keep the payload stream clean */
	}

	int io_error;
	enum d4_reason why = run_decoder(&r, fd, &io_error);
	if (io_error) {
		fprintf(stderr, "d4ctl decode: %s: %s\n", o.input, strerror(io_error));
		goto out;
	}
	if (r.payload && fflush(r.payload) != 0) {
		fprintf(stderr, "d4ctl decode: %s: %s\n", o.payload_out, strerror(errno));
		goto out;
	}
	if (!o.quiet && !o.json)
		fprintf(stderr, "d4ctl decode: %" PRIu64 " frames, %" PRIu64 " with a bad HMAC%s%s\n",
		        r.frame_no, r.bad_hmac, why == D4_OK ? "" : ", stopped: ",
		        why == D4_OK ? "" : d4_reason_name(why));
	status = (why == D4_OK && r.bad_hmac == 0) ? D4CTL_OK : D4CTL_FAILED;
out:
	if (r.payload && r.payload != stdout)
		fclose(r.payload);
	if (fd > STDIN_FILENO)
		close(fd);
	if (o.key) {
		memset(o.key, 0, o.key_len);
		free(o.key);
	}
	return status;
}
