/*
 * tail.c — `d4ctl tail`: follow one sensor's or one type's stream live.
 *
 * Connects to d4-dispatch's tap socket (<data_dir>/run/tap.sock, see
 * d4-dispatch/tap.c), asks for the frames of a uuid and/or a type, and
 * prints them as `d4ctl decode` does (a line per frame, or JSON), or only
 * their payloads with --payload. The tap is best effort: when tail cannot
 * keep up, dispatch skips frames for it rather than slow anything down.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "d4_keyfile.h"
#include "d4_uuid.h"
#include "d4ctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: d4ctl [global options] [--json] tail [--uuid UUID] [--type TYPE] [options]\n"
		"Follows the frames d4-dispatch receives, live (Ctrl-C stops).\n\n"
		"  -u, --uuid UUID      only this sensor\n"
		"  -t, --type TYPE      only this D4 type (a number)\n"
		"  -k, --key KEY        check HMACs with this key (-K FILE: from a file)\n"
		"  -p, --payload        print the payloads only (e.g. the lines of a log stream)\n"
		"  -n, --count N        stop after N frames\n");
}

int cmd_tail(struct d4ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"uuid", required_argument, NULL, 'u'}, {"type", required_argument, NULL, 't'},
		{"key", required_argument, NULL, 'k'},  {"key-file", required_argument, NULL, 'K'},
		{"payload", no_argument, NULL, 'p'},    {"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *uuid_text = "*", *type_text = "*";
	uint8_t key[4096];
	size_t key_len = 0;
	bool have_key = false, payload_only = false;
	uint64_t count = 0, frames = 0;
	int c, fd = -1, rc = D4CTL_USAGE;
	char err[512];
	struct d4_decoder dec;
	bool dec_init = false;
	uint8_t *buf = NULL;

	optind = 0; /* reinitialise getopt (main parsed in "+" mode) */
	while ((c = getopt_long(argc, argv, ":u:t:k:K:pn:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': {
			uint8_t u[16];
			if (d4_uuid_parse_str(optarg, u) != 0) {
				d4ctl_err("tail", "'%s' is not a uuid", optarg);
				goto out;
			}
			uuid_text = optarg;
			break;
		}
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 255) {
				d4ctl_err("tail", "'%s' is not a type number", optarg);
				goto out;
			}
			type_text = optarg;
			break;
		}
		case 'k':
			key_len = strlen(optarg) < sizeof(key) ? strlen(optarg) : sizeof(key);
			memcpy(key, optarg, key_len);
			have_key = true;
			break;
		case 'K':
			if (d4_key_file_read(optarg, key, sizeof(key), &key_len, NULL, err, sizeof(err)) != 0) {
				d4ctl_err("tail", "%s", err);
				goto out;
			}
			have_key = true;
			break;
		case 'p':
			payload_only = true;
			break;
		case 'n':
			count = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			rc = D4CTL_OK;
			goto out;
		default:
			rc = d4ctl_getopt_error("tail", c, argv);
			goto out;
		}
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[D4_PATH_MAX];
	if (d4_path_join(path, sizeof(path), ctl->d.paths.data_dir, "run/tap.sock") != 0 ||
	    strlen(path) >= sizeof(sa.sun_path)) {
		d4ctl_err("tail", "the tap socket path is too long");
		rc = D4CTL_ERROR;
		goto out;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		d4ctl_err("tail", "%s: %s (is the server running?)", path, strerror(errno));
		rc = D4CTL_ERROR;
		goto out;
	}
	char line[160];
	int n = snprintf(line, sizeof(line), "tap %s %s\n", uuid_text, type_text);
	if (write(fd, line, (size_t)n) != n) {
		d4ctl_err("tail", "%s: %s", path, strerror(errno));
		rc = D4CTL_ERROR;
		goto out;
	}
	struct d4_decoder_opts o = {.max_payload = 64u << 20, .report_bad_hmac = true};
	d4_decoder_init(&dec, &o);
	dec_init = true;
	if (have_key && d4_decoder_set_key(&dec, key, key_len) != 0) {
		rc = D4CTL_ERROR;
		goto out;
	}
	buf = malloc(1 << 16);
	if (buf == NULL) {
		rc = D4CTL_ERROR;
		goto out;
	}
	rc = D4CTL_OK;
	while (count == 0 || frames < count) {
		ssize_t r = read(fd, buf, 1 << 16);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* dispatch stopped */
		const uint8_t *p = buf;
		size_t left = (size_t)r;
		while (count == 0 || frames < count) {
			struct d4_event ev;
			size_t used = d4_decoder_feed(&dec, p, left, &ev);
			p += used;
			left -= used;
			if (ev.kind == D4_EV_NONE)
				break;
			if (ev.kind == D4_EV_ERROR) {
				d4ctl_err("tail", "malformed stream from the tap: %s", d4_reason_name(ev.reason));
				rc = D4CTL_FAILED;
				goto out;
			}
			if (ev.kind != D4_EV_FRAME)
				continue;
			frames++;
			if (payload_only) {
				if (ev.payload_len && fwrite(ev.payload, 1, ev.payload_len, stdout) != ev.payload_len)
					goto out;
			} else {
				d4ctl_print_frame(ev.hdr, frames, dec.bytes_in - ev.payload_len - D4_HEADER_SIZE,
				                  ev.hmac, ctl->json);
			}
			fflush(stdout);
		}
	}
out:
	if (dec_init)
		d4_decoder_free(&dec);
	free(buf);
	if (fd >= 0)
		close(fd);
	memset(key, 0, sizeof(key));
	return rc;
}
