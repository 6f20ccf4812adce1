/*
 * flow.c — packet decoding, the flow table and per-direction reassembly (see flow.h).
 *
 * The table is a chained hash of 2^k buckets (k from max_flows) plus a doubly-linked list of
 * flows by last packet time, so that the idle and the least recently seen flows are found at
 * its head without a scan. A packet moves its flow to the tail: O(1).
 *
 * The set of recently finished flows is 4-way set-associative: FIN_SLOTS 64-bit hashes of flow
 * keys in buckets of FIN_WAYS (one cache line), the oldest way of a full bucket overwritten. A false hit would need two different keys with the same 64-bit
 * hash; a SYN always removes its key from the set, so a reused 4-tuple starts a new flow.
 * It is probed before the table: a bulk packet of a finished flow costs one probe.
 */
#include "flow.h"

#include <stdlib.h>
#include <string.h>

#define FIN_SLOTS (1u << 18) /* 2 MiB: 4-way buckets of recently finished flows */
#define FIN_WAYS 4
#define POOL_CHUNK 1024u

struct pool_chunk {
	struct pool_chunk *next;
	struct tls_flow flows[POOL_CHUNK];
};

struct tls_flow_table {
	struct tls_flow_config cfg;
	tls_flow_data_cb data_cb;
	tls_flow_end_cb end_cb;
	void *arg;
	struct tls_flow **buckets;
	uint64_t mask;
	struct tls_flow *lru_head, *lru_tail;
	struct tls_flow *free_list;
	struct pool_chunk *chunks;
	uint64_t *finished; /* FIN_SLOTS hashes, 0 = empty */
	uint64_t now;
	struct tls_flow_stats st;
};

/* A parsed TCP segment. */
struct seg {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	bool ipv6;
	uint32_t seq;
	uint8_t flags;
	const uint8_t *payload;
	size_t plen;
};

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

const char *tls_flow_end_str(enum tls_flow_end why)
{
	switch (why) {
	case TLS_FLOW_END_DONE: return "done";
	case TLS_FLOW_END_CLOSED: return "closed";
	case TLS_FLOW_END_IDLE: return "idle";
	case TLS_FLOW_END_EVICTED: return "evicted";
	case TLS_FLOW_END_SHUTDOWN: return "shutdown";
	}
	return "?";
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Symmetric: both directions of a connection hash alike. Never 0 (0 marks an empty slot). */
static uint64_t key_hash(const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb)
{
	uint64_t ha = mix64(load64(a) ^ mix64(load64(a + 8) ^ ((uint64_t)pa << 1)));
	uint64_t hb = mix64(load64(b) ^ mix64(load64(b + 8) ^ ((uint64_t)pb << 1)));
	uint64_t h = mix64(ha + hb) ^ mix64(ha ^ hb);
	return h ? h : 1;
}

/* ---- link and network layers ---- */

static void v4mapped(uint8_t out[16], const uint8_t *v4)
{
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* 0 ok, 1 not counted here (counter already bumped) */
static int decode_tcp(struct tls_flow_table *t, const uint8_t *p, size_t len, struct seg *s)
{
	if (len < 20) {
		t->st.truncated++;
		return 1;
	}
	size_t off = (size_t)(p[12] >> 4) * 4;
	if (off < 20 || off > len) {
		t->st.truncated++;
		return 1;
	}
	s->sport = rd16(p);
	s->dport = rd16(p + 2);
	s->seq = rd32(p + 4);
	s->flags = p[13];
	s->payload = p + off;
	s->plen = len - off;
	t->st.tcp_packets++;
	return 0;
}

static int decode_ipv4(struct tls_flow_table *t, const uint8_t *p, size_t len, struct seg *s)
{
	if (len < 20 || (p[0] >> 4) != 4) {
		t->st.truncated++;
		return 1;
	}
	size_t ihl = (size_t)(p[0] & 0x0f) * 4;
	size_t total = rd16(p + 2);
	if (ihl < 20 || ihl > len || total < ihl) {
		t->st.truncated++;
		return 1;
	}
	if (total < len)
		len = total; /* Ethernet padding */
	uint16_t frag = rd16(p + 6);
	if (frag & 0x3fff) { /* MF or an offset */
		t->st.fragments++;
		return 1;
	}
	if (p[9] != 6) {
		t->st.not_tcp++;
		return 1;
	}
	v4mapped(s->src, p + 12);
	v4mapped(s->dst, p + 16);
	s->ipv6 = false;
	return decode_tcp(t, p + ihl, len - ihl, s);
}

static int decode_ipv6(struct tls_flow_table *t, const uint8_t *p, size_t len, struct seg *s)
{
	if (len < 40 || (p[0] >> 4) != 6) {
		t->st.truncated++;
		return 1;
	}
	size_t plen = rd16(p + 4);
	if (40 + plen < len)
		len = 40 + plen;
	uint8_t nh = p[6];
	size_t off = 40;
	for (int i = 0; i < 8; i++) { /* at most 8 extension headers */
		if (nh == 6)
			break;
		if (nh == 44) {
			t->st.fragments++;
			return 1;
		}
		if (nh != 0 && nh != 43 && nh != 60 && nh != 51) {
			t->st.not_tcp++;
			return 1;
		}
		if (off + 8 > len) {
			t->st.truncated++;
			return 1;
		}
		size_t hl = nh == 51 ? ((size_t)p[off + 1] + 2) * 4 : ((size_t)p[off + 1] + 1) * 8;
		nh = p[off];
		off += hl;
		if (off > len) {
			t->st.truncated++;
			return 1;
		}
	}
	if (nh != 6) {
		t->st.not_tcp++;
		return 1;
	}
	memcpy(s->src, p + 8, 16);
	memcpy(s->dst, p + 24, 16);
	s->ipv6 = true;
	return decode_tcp(t, p + off, len - off, s);
}

static int decode_ip_by_version(struct tls_flow_table *t, const uint8_t *p, size_t len, struct seg *s)
{
	if (len < 1) {
		t->st.truncated++;
		return 1;
	}
	switch (p[0] >> 4) {
	case 4: return decode_ipv4(t, p, len, s);
	case 6: return decode_ipv6(t, p, len, s);
	default: t->st.not_ip++; return 1;
	}
}

static int decode_ethertype(struct tls_flow_table *t, uint16_t et, const uint8_t *p, size_t len,
                            struct seg *s)
{
	if (et == 0x0800)
		return decode_ipv4(t, p, len, s);
	if (et == 0x86dd)
		return decode_ipv6(t, p, len, s);
	t->st.not_ip++;
	return 1;
}

static int decode_link(struct tls_flow_table *t, uint32_t linktype, const uint8_t *p, size_t len,
                       struct seg *s)
{
	switch (linktype) {
	case TLS_LINK_ETHERNET: {
		if (len < 14) {
			t->st.truncated++;
			return 1;
		}
		uint16_t et = rd16(p + 12);
		size_t off = 14;
		for (int i = 0; i < 3 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); i++) {
			if (off + 4 > len) {
				t->st.truncated++;
				return 1;
			}
			et = rd16(p + off + 2);
			off += 4;
		}
		return decode_ethertype(t, et, p + off, len - off, s);
	}
	case TLS_LINK_LINUX_SLL:
		if (len < 16) {
			t->st.truncated++;
			return 1;
		}
		return decode_ethertype(t, rd16(p + 14), p + 16, len - 16, s);
	case TLS_LINK_LINUX_SLL2:
		if (len < 20) {
			t->st.truncated++;
			return 1;
		}
		return decode_ethertype(t, rd16(p), p + 20, len - 20, s);
	case TLS_LINK_NULL:
		if (len < 4) {
			t->st.truncated++;
			return 1;
		}
		return decode_ip_by_version(t, p + 4, len - 4, s);
	case TLS_LINK_RAW:
	case 12: /* LINKTYPE_RAW on some systems */
		return decode_ip_by_version(t, p, len, s);
	case TLS_LINK_IPV4: return decode_ipv4(t, p, len, s);
	case TLS_LINK_IPV6: return decode_ipv6(t, p, len, s);
	default: t->st.not_ip++; return 1;
	}
}

/* ---- table ---- */

struct tls_flow_table *tls_flow_table_new(const struct tls_flow_config *cfg, tls_flow_data_cb data_cb,
                                          tls_flow_end_cb end_cb, void *arg)
{
	struct tls_flow_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (cfg)
		t->cfg = *cfg;
	if (!t->cfg.max_flows)
		t->cfg.max_flows = TLS_FLOW_DEFAULT_MAX_FLOWS;
	if (!t->cfg.max_dir_bytes)
		t->cfg.max_dir_bytes = TLS_FLOW_DEFAULT_MAX_DIR_BYTES;
	if (!t->cfg.max_total_bytes)
		t->cfg.max_total_bytes = TLS_FLOW_DEFAULT_MAX_TOTAL_BYTES;
	if (!t->cfg.idle_timeout)
		t->cfg.idle_timeout = TLS_FLOW_DEFAULT_IDLE_TIMEOUT;
	t->data_cb = data_cb;
	t->end_cb = end_cb;
	t->arg = arg;
	uint64_t nb = 1024;
	while (nb < t->cfg.max_flows && nb < (1ull << 30))
		nb <<= 1;
	t->buckets = calloc(nb, sizeof(*t->buckets));
	t->finished = calloc(FIN_SLOTS, sizeof(*t->finished));
	if (!t->buckets || !t->finished)
		goto err;
	t->mask = nb - 1;
	return t;
err:
	free(t->buckets);
	free(t->finished);
	free(t);
	return NULL;
}

static void lru_unlink(struct tls_flow_table *t, struct tls_flow *f)
{
	if (f->lprev)
		f->lprev->lnext = f->lnext;
	else
		t->lru_head = f->lnext;
	if (f->lnext)
		f->lnext->lprev = f->lprev;
	else
		t->lru_tail = f->lprev;
	f->lprev = f->lnext = NULL;
}

static void lru_append(struct tls_flow_table *t, struct tls_flow *f)
{
	f->lprev = t->lru_tail;
	f->lnext = NULL;
	if (t->lru_tail)
		t->lru_tail->lnext = f;
	else
		t->lru_head = f;
	t->lru_tail = f;
}

static void dir_free(struct tls_flow_table *t, struct tls_flow_dir *d)
{
	if (d->buf) {
		t->st.buffered_bytes -= d->cap;
		free(d->buf);
	}
	d->buf = NULL;
	d->cap = 0;
}

static inline uint64_t *fin_bucket(struct tls_flow_table *t, uint64_t h)
{
	return &t->finished[(h >> 20) & (FIN_SLOTS - FIN_WAYS)];
}

static void fin_add(struct tls_flow_table *t, uint64_t h)
{
	uint64_t *b = fin_bucket(t, h);
	/* newest first: shift the others down, the oldest falls out */
	memmove(b + 1, b, (FIN_WAYS - 1) * sizeof(*b));
	b[0] = h;
}

/* true when h is in the set; remove: take it out (a SYN reuses the 4-tuple). */
static inline bool fin_has(struct tls_flow_table *t, uint64_t h, bool remove)
{
	uint64_t *b = fin_bucket(t, h);
	for (unsigned i = 0; i < FIN_WAYS; i++) {
		if (b[i] == h) {
			if (remove)
				b[i] = 0;
			return true;
		}
	}
	return false;
}

static void flow_end(struct tls_flow_table *t, struct tls_flow *f, enum tls_flow_end why)
{
	if (t->end_cb)
		t->end_cb(t->arg, f, why);
	switch (why) {
	case TLS_FLOW_END_DONE: t->st.flows_done++; break;
	case TLS_FLOW_END_CLOSED: t->st.flows_closed++; break;
	case TLS_FLOW_END_IDLE: t->st.flows_idle++; break;
	case TLS_FLOW_END_EVICTED: t->st.flows_evicted++; break;
	case TLS_FLOW_END_SHUTDOWN: t->st.flows_shutdown++; break;
	}
	/* the finished set keeps what follows off the table: the bulk after a handshake, and the
	 * rest of an evicted or idle connection that carried payload, whose handshake was reported
	 * when it ended (a new midstream flow would report its remains as a second, partial
	 * session). One ended before any payload stays out: its first bytes start a new flow. */
	bool had_payload = f->dir[0].len || f->dir[1].len || f->dir[0].done || f->dir[1].done;
	if (why == TLS_FLOW_END_DONE || why == TLS_FLOW_END_CLOSED ||
	    (why != TLS_FLOW_END_SHUTDOWN && had_payload))
		fin_add(t, f->hash);
	struct tls_flow **pp = &t->buckets[f->hash & t->mask];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	lru_unlink(t, f);
	dir_free(t, &f->dir[0]);
	dir_free(t, &f->dir[1]);
	t->st.flows_live--;
	f->hnext = t->free_list;
	t->free_list = f;
}

void tls_flow_table_expire(struct tls_flow_table *t, uint64_t now)
{
	if (now > t->now)
		t->now = now;
	while (t->lru_head && t->lru_head->last_ts + t->cfg.idle_timeout < t->now)
		flow_end(t, t->lru_head, TLS_FLOW_END_IDLE);
}

void tls_flow_table_finish(struct tls_flow_table *t)
{
	while (t->lru_head)
		flow_end(t, t->lru_head, TLS_FLOW_END_SHUTDOWN);
}

void tls_flow_table_free(struct tls_flow_table *t)
{
	if (!t)
		return;
	tls_flow_table_finish(t);
	while (t->chunks) {
		struct pool_chunk *c = t->chunks;
		t->chunks = c->next;
		free(c);
	}
	free(t->buckets);
	free(t->finished);
	free(t);
}

const struct tls_flow_stats *tls_flow_stats(const struct tls_flow_table *t)
{
	return &t->st;
}

uint64_t tls_flow_table_now(const struct tls_flow_table *t)
{
	return t->now;
}

static struct tls_flow *flow_alloc(struct tls_flow_table *t)
{
	if (t->st.flows_live >= t->cfg.max_flows && t->lru_head)
		flow_end(t, t->lru_head, TLS_FLOW_END_EVICTED);
	if (!t->free_list) {
		struct pool_chunk *c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		c->next = t->chunks;
		t->chunks = c;
		for (unsigned i = 0; i < POOL_CHUNK; i++) {
			c->flows[i].hnext = t->free_list;
			t->free_list = &c->flows[i];
		}
	}
	struct tls_flow *f = t->free_list;
	t->free_list = f->hnext;
	memset(f, 0, sizeof(*f));
	return f;
}

/* ---- reassembly ---- */

/* Make room for `need` bytes of d (need <= max_dir_bytes). false: the total budget refused. */
static bool dir_reserve(struct tls_flow_table *t, struct tls_flow_dir *d, uint32_t need)
{
	if (need <= d->cap)
		return true;
	uint32_t ncap = d->cap ? d->cap : 2048;
	while (ncap < need)
		ncap *= 2;
	if (ncap > t->cfg.max_dir_bytes)
		ncap = t->cfg.max_dir_bytes;
	if (t->st.buffered_bytes + (ncap - d->cap) > t->cfg.max_total_bytes) {
		t->st.total_cap_hits++;
		return false;
	}
	uint8_t *nb = realloc(d->buf, ncap);
	if (!nb) {
		t->st.total_cap_hits++;
		return false;
	}
	t->st.buffered_bytes += ncap - d->cap;
	if (t->st.buffered_bytes > t->st.buffered_max)
		t->st.buffered_max = t->st.buffered_bytes;
	d->buf = nb;
	d->cap = ncap;
	return true;
}

/* Adds [start, end) to the ranges, merging; false when no slot is left. */
static bool range_add(struct tls_flow_dir *d, uint32_t start, uint32_t end)
{
	unsigned i = 0;
	while (i < d->nranges && d->ranges[i].end < start)
		i++;
	if (i < d->nranges && d->ranges[i].start <= end) {
		/* overlaps or touches range i: widen it, then swallow the ranges it reaches */
		if (start < d->ranges[i].start)
			d->ranges[i].start = start;
		if (end > d->ranges[i].end)
			d->ranges[i].end = end;
		unsigned j = i + 1;
		while (j < d->nranges && d->ranges[j].start <= d->ranges[i].end) {
			if (d->ranges[j].end > d->ranges[i].end)
				d->ranges[i].end = d->ranges[j].end;
			j++;
		}
		unsigned gone = j - i - 1;
		if (gone) {
			memmove(&d->ranges[i + 1], &d->ranges[j], (d->nranges - j) * sizeof(d->ranges[0]));
			d->nranges = (uint8_t)(d->nranges - gone);
		}
		return true;
	}
	if (d->nranges == TLS_FLOW_MAX_RANGES)
		return false;
	memmove(&d->ranges[i + 1], &d->ranges[i], (d->nranges - i) * sizeof(d->ranges[0]));
	d->ranges[i].start = start;
	d->ranges[i].end = end;
	d->nranges++;
	return true;
}

/* Stores a segment; true when the contiguous prefix grew. */
static bool dir_add(struct tls_flow_table *t, struct tls_flow_dir *d, uint32_t seq,
                    const uint8_t *data, size_t len)
{
	if (!d->have_isn) {
		d->isn = seq;
		d->have_isn = true;
	}
	int64_t off = (int32_t)(seq - d->isn);
	if (off < 0) { /* starts before byte 0: keep its tail */
		if ((uint64_t)-off >= len) {
			t->st.retransmits++;
			return false;
		}
		data += -off;
		len -= (size_t)-off;
		off = 0;
	}
	uint64_t start = (uint64_t)off, end = start + len;
	if (end <= d->len) {
		t->st.retransmits++;
		return false;
	}
	uint32_t max = t->cfg.max_dir_bytes;
	if (start >= max) {
		if (!d->capped) {
			d->capped = true;
			t->st.dir_cap_hits++;
		}
		return false;
	}
	if (end > max) {
		if (!d->capped) {
			d->capped = true;
			t->st.dir_cap_hits++;
		}
		end = max;
	}
	if (!dir_reserve(t, d, (uint32_t)end)) {
		d->capped = true;
		/* keep what fits in the buffer we have */
		if (start >= d->cap)
			return false;
		if (end > d->cap)
			end = d->cap;
	}
	if (start > d->len) {
		if (!range_add(d, (uint32_t)start, (uint32_t)end)) {
			t->st.ooo_dropped++;
			return false;
		}
		memcpy(d->buf + start, data, (size_t)(end - start));
		t->st.stored_bytes += end - start;
		t->st.out_of_order++;
		return false;
	}
	size_t skip = (size_t)(d->len - start);
	memcpy(d->buf + d->len, data + skip, (size_t)(end - d->len));
	t->st.stored_bytes += end - d->len;
	d->len = (uint32_t)end;
	/* ranges now reached by the prefix join it */
	unsigned used = 0;
	while (used < d->nranges && d->ranges[used].start <= d->len) {
		if (d->ranges[used].end > d->len)
			d->len = d->ranges[used].end;
		used++;
	}
	if (used) {
		memmove(&d->ranges[0], &d->ranges[used], (d->nranges - used) * sizeof(d->ranges[0]));
		d->nranges = (uint8_t)(d->nranges - used);
	}
	return true;
}

static struct tls_flow *flow_find(struct tls_flow_table *t, uint64_t h, const struct seg *s,
                                  unsigned *dir)
{
	for (struct tls_flow *f = t->buckets[h & t->mask]; f; f = f->hnext) {
		if (f->hash != h || f->ipv6 != s->ipv6)
			continue;
		if (f->port[0] == s->sport && f->port[1] == s->dport &&
		    !memcmp(f->addr[0], s->src, 16) && !memcmp(f->addr[1], s->dst, 16)) {
			*dir = 0;
			return f;
		}
		if (f->port[1] == s->sport && f->port[0] == s->dport &&
		    !memcmp(f->addr[1], s->src, 16) && !memcmp(f->addr[0], s->dst, 16)) {
			*dir = 1;
			return f;
		}
	}
	return NULL;
}

int tls_flow_packet(struct tls_flow_table *t, uint32_t linktype, uint64_t ts_sec, uint32_t ts_usec,
                    const uint8_t *pkt, size_t caplen)
{
	struct seg s;
	t->st.packets++;
	t->st.bytes += caplen;
	if (ts_sec > t->now) {
		t->now = ts_sec;
		if (t->lru_head && t->lru_head->last_ts + t->cfg.idle_timeout < t->now)
			tls_flow_table_expire(t, ts_sec);
	}
	if (decode_link(t, linktype, pkt, caplen, &s))
		return 0;
	uint64_t h = key_hash(s.src, s.sport, s.dst, s.dport);
	if (fin_has(t, h, false)) {
		if (!(s.flags & TCP_SYN)) {
			t->st.fast_path++;
			return 0;
		}
		(void)fin_has(t, h, true); /* a new connection on a finished 4-tuple */
	}
	unsigned dir = 0;
	struct tls_flow *f = flow_find(t, h, &s, &dir);
	if (!f) {
		if (s.flags & TCP_RST)
			return 0;
		/* a segment with nothing in it starts nothing, but a SYN does */
		if (!s.plen && !(s.flags & (TCP_SYN | TCP_FIN)))
			return 0;
		if (s.flags & TCP_FIN && !s.plen)
			return 0;
		f = flow_alloc(t);
		if (!f)
			return -1;
		bool swap = (s.flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK); /* SYN-ACK: dst began */
		memcpy(f->addr[swap], s.src, 16);
		memcpy(f->addr[!swap], s.dst, 16);
		f->port[swap] = s.sport;
		f->port[!swap] = s.dport;
		f->ipv6 = s.ipv6;
		f->hash = h;
		f->first_ts = ts_sec;
		f->first_usec = ts_usec;
		f->midstream = !(s.flags & TCP_SYN);
		dir = swap;
		f->hnext = t->buckets[h & t->mask];
		t->buckets[h & t->mask] = f;
		t->st.flows++;
		t->st.flows_live++;
		if (t->st.flows_live > t->st.flows_live_max)
			t->st.flows_live_max = t->st.flows_live;
		lru_append(t, f);
	} else if (f != t->lru_tail) {
		lru_unlink(t, f);
		lru_append(t, f);
	}
	f->last_ts = ts_sec > f->last_ts ? ts_sec : f->last_ts;
	struct tls_flow_dir *d = &f->dir[dir];
	if (s.flags & TCP_SYN) {
		d->isn = s.seq + 1;
		d->have_isn = true;
		s.seq++;
	}
	if (s.flags & TCP_RST) {
		flow_end(t, f, TLS_FLOW_END_CLOSED);
		return 0;
	}
	if (s.plen && !d->done) {
		t->st.payload_bytes += s.plen;
		if (dir_add(t, d, s.seq, s.payload, s.plen) && t->data_cb) {
			int r = t->data_cb(t->arg, f, dir, d->buf, d->len);
			if (r == TLS_FLOW_DONE) {
				flow_end(t, f, TLS_FLOW_END_DONE);
				return 0;
			}
			if (r == TLS_FLOW_DIR_DONE) {
				d->done = true;
				dir_free(t, d);
				if (f->dir[!dir].done) {
					flow_end(t, f, TLS_FLOW_END_DONE);
					return 0;
				}
			}
		}
		if (d->capped && !d->done && d->len >= t->cfg.max_dir_bytes) {
			/* nothing more will come: the consumer has all it will get */
			d->done = true;
			dir_free(t, d);
			if (f->dir[!dir].done) {
				flow_end(t, f, TLS_FLOW_END_DONE);
				return 0;
			}
		}
	}
	if (s.flags & TCP_FIN) {
		d->fin = true;
		if (f->dir[!dir].fin)
			flow_end(t, f, TLS_FLOW_END_CLOSED);
	}
	return 0;
}
