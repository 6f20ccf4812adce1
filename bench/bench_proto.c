/*
 * bench_proto.c — decode + HMAC-verify throughput of the protocol library.
 *
 * Builds a stream of signed frames in memory, then feeds it to the decoder in
 * 64 KiB chunks (what a TLS read hands the server) with the key set, checking
 * every HMAC, for a fixed time. The reference is `openssl speed -hmac sha256`
 * at the same block size, run in the same process lifetime (via popen), so
 * that the printed ratio says what the decoder costs beside the hash.
 *
 *   bench_proto [seconds]       default 3 seconds per measurement
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "d4_proto.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MB/s (10^6 bytes) of `openssl speed -hmac sha256` at one block size, or 0. */
static double openssl_hmac_mbs(size_t block, int seconds)
{
	char cmd[256], line[1024];
	snprintf(cmd, sizeof(cmd),
	         "openssl speed -seconds %d -bytes %zu -hmac sha256 2>/dev/null | tail -n 1", seconds,
	         block);
	FILE *p = popen(cmd, "r");
	if (p == NULL)
		return 0;
	double kbs = 0;
	if (fgets(line, sizeof(line), p)) {
		char *k = strrchr(line, 'k');
		if (k) {
			*k = '\0';
			char *num = strrchr(line, ' ');
			kbs = num ? atof(num + 1) : 0;
		}
	}
	pclose(p);
	return kbs * 1000.0 / 1e6;
}

struct result {
	double mbs;
	double fps;
};

static int bench(size_t payload, double seconds, struct result *res)
{
	const size_t stream_len = 32u << 20;
	size_t nframes = stream_len / (payload + D4_HEADER_SIZE);
	size_t len = nframes * (payload + D4_HEADER_SIZE);
	uint8_t *stream = malloc(len), *data = malloc(payload);
	struct d4_hmac *m = d4_hmac_new((const uint8_t *)"bench key", 9);
	int rc = -1;

	if (stream == NULL || data == NULL || m == NULL)
		goto out;
	for (size_t i = 0; i < payload; i++)
		data[i] = (uint8_t)(i * 31);
	for (size_t f = 0; f < nframes; f++) {
		uint8_t *at = stream + f * (payload + D4_HEADER_SIZE);
		struct d4_header h = {.version = 1, .type = 1, .timestamp = 1700000000,
		                      .uuid = {1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}};
		if (d4_frame_sign(m, &h, data, payload, at) != 0)
			goto out;
		memcpy(at + D4_HEADER_SIZE, data, payload);
	}

	uint64_t bytes = 0, frames = 0;
	double start = now(), elapsed;
	do {
		struct d4_decoder d;
		d4_decoder_init(&d, NULL);
		if (d4_decoder_set_key(&d, (const uint8_t *)"bench key", 9) != 0)
			goto out;
		const size_t chunk = 64 * 1024;
		for (size_t at = 0; at < len; at += chunk) {
			const uint8_t *p = stream + at;
			size_t left = len - at < chunk ? len - at : chunk;
			for (;;) {
				struct d4_event ev;
				size_t n = d4_decoder_feed(&d, p, left, &ev);
				p += n;
				left -= n;
				if (ev.kind == D4_EV_NONE)
					break;
				if (ev.kind == D4_EV_ERROR || (ev.kind == D4_EV_FRAME && ev.hmac != D4_HMAC_OK)) {
					fprintf(stderr, "bench: decode failed: %s\n", d4_reason_name(ev.reason));
					d4_decoder_free(&d);
					goto out;
				}
				if (ev.kind == D4_EV_FRAME) {
					frames++;
					bytes += ev.payload_len;
				}
			}
		}
		d4_decoder_free(&d);
		elapsed = now() - start;
	} while (elapsed < seconds);
	res->mbs = (double)bytes / elapsed / 1e6;
	res->fps = (double)frames / elapsed;
	rc = 0;
out:
	d4_hmac_free(m);
	free(stream);
	free(data);
	return rc;
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 3;
	if (seconds < 1)
		seconds = 1;
	static const size_t sizes[] = {4096, 65536};
	int worst = 0;

	printf("%-8s %14s %14s %18s %8s\n", "payload", "decode MB/s", "frames/s",
	       "openssl hmac MB/s", "ratio");
	for (size_t i = 0; i < 2; i++) {
		struct result r;
		if (bench(sizes[i], seconds, &r) != 0)
			return 1;
		double ref = openssl_hmac_mbs(sizes[i], seconds);
		double ratio = ref > 0 ? r.mbs / ref : 0;
		printf("%-8zu %14.1f %14.0f %18.1f %8.2f\n", sizes[i], r.mbs, r.fps, ref, ratio);
		if (ref > 0 && ratio < 0.9)
			worst = 1;
	}
	printf("target: ratio >= 0.90 (decoder + HMAC verify against the bare HMAC at the same "
	       "block size)\n");
	return worst ? 2 : 0;
}
