/*
 * fuzz_tls_flow.c — the TLS analyzer's packet path on arbitrary bytes: link-layer, IP and TCP
 * decoding, the flow table (small limits, so that eviction, caps and the out-of-order ranges are
 * reached) and the handshake tracker fed from the reassembled directions, as d4-analyzer-tls
 * does.
 *
 * Input: a sequence of packets, each [u8 link selector][u8 ts step][u16 length, big-endian][bytes].
 * Every prefix handed to the consumer must lie inside the direction's buffer and grow.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "tls_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_flow {
	struct tls_conn *tc;
	size_t fed[2];
};

static int fz_data(void *arg, struct tls_flow *f, unsigned dir, const uint8_t *buf, size_t len)
{
	(void)arg;
	struct fz_flow *s = f->user;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			abort();
		s->tc = tls_conn_new(NULL);
		f->user = s;
	}
	if (dir > 1 || len < s->fed[dir] || len > f->dir[dir].cap)
		abort();
	volatile uint8_t sink = 0;
	for (size_t i = s->fed[dir]; i < len; i++)
		sink ^= buf[i]; /* every byte readable */
	(void)sink;
	enum tls_status st = TLS_MORE;
	if (s->tc)
		st = tls_conn_feed(s->tc, dir ? TLS_DIR_SERVER : TLS_DIR_CLIENT, buf + s->fed[dir], len - s->fed[dir]);
	s->fed[dir] = len;
	return st == TLS_MORE ? TLS_FLOW_MORE : TLS_FLOW_DONE;
}

static void fz_end(void *arg, struct tls_flow *f, enum tls_flow_end why)
{
	(void)arg;
	(void)why;
	struct fz_flow *s = f->user;
	if (s) {
		if (s->tc)
			(void)tls_conn_info(s->tc);
		tls_conn_free(s->tc);
		free(s);
		f->user = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t links[] = {TLS_LINK_ETHERNET, TLS_LINK_RAW, TLS_LINK_LINUX_SLL,
	                                 TLS_LINK_LINUX_SLL2, TLS_LINK_NULL, TLS_LINK_IPV4,
	                                 TLS_LINK_IPV6, 147};
	struct tls_flow_config cfg = {.max_flows = 8, .max_dir_bytes = 4096, .max_total_bytes = 32768,
	                              .idle_timeout = 5};
	struct tls_flow_table *t = tls_flow_table_new(&cfg, fz_data, fz_end, NULL);
	if (!t)
		return 0;
	uint64_t ts = 1000;
	size_t off = 0;
	while (off + 4 <= size) {
		uint32_t lt = links[data[off] & 7];
		ts += data[off + 1] & 3;
		size_t len = (size_t)data[off + 2] << 8 | data[off + 3];
		off += 4;
		if (len > size - off)
			len = size - off;
		/* a copy of exactly len bytes, so that ASan sees any read past the packet */
		uint8_t *pkt = malloc(len ? len : 1);
		if (!pkt)
			abort();
		memcpy(pkt, data + off, len);
		(void)tls_flow_packet(t, lt, ts, 0, pkt, len);
		free(pkt);
		off += len;
	}
	const struct tls_flow_stats *s = tls_flow_stats(t);
	if (s->buffered_bytes > cfg.max_total_bytes || s->flows_live > cfg.max_flows)
		abort();
	tls_flow_table_free(t);
	return 0;
}
