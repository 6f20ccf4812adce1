/*
 * flow.h — from pcap records to the first bytes of each TCP direction, for the TLS analyzer.
 *
 * A packet goes link layer (Ethernet with 802.1Q/QinQ tags, Linux SLL and SLL2, BSD loopback,
 * raw IP) → IPv4 or IPv6 (extension headers walked; fragments are counted and ignored) → TCP.
 * Each TCP connection is one struct tls_flow holding both directions; each direction keeps
 * only the first bytes of its stream (max_dir_bytes), reassembled in order: out-of-order
 * segments are copied at their offset and remembered as a few filled ranges, retransmissions
 * are dropped, a missing SYN (capture started midstream) takes the first seen sequence number
 * as the start.
 *
 * The consumer (the TLS tracker in main.c) sees the contiguous prefix of a direction each
 * time it grows and says when it has had enough of a direction or of the whole flow. A flow
 * it is done with is released at once and its key goes into a small set of recently finished
 * flows, so the bulk packets that follow a handshake cost one array probe and nothing else.
 * Evicted and idle flows that carried payload go into that set too: one connection, one report.
 *
 * Everything is bounded and every limit is counted (struct tls_flow_stats): the number of live
 * flows (the least recently seen flow is ended, reason EVICTED, to make room), the bytes per
 * direction, the bytes buffered in total, the out-of-order ranges per direction. Idle flows end
 * after idle_timeout seconds of capture time (packet timestamps, so that an offline run is
 * reproducible; tls_flow_table_expire() lets a caller move that clock, e.g. when a live source goes
 * quiet). Every flow ends through end_cb exactly once, whatever the reason.
 *
 * No allocation per packet: flows come from a pool, a direction's buffer is allocated at its
 * first payload and grown by doubling up to max_dir_bytes.
 */
#ifndef TLS_FLOW_H
#define TLS_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_FLOW_DEFAULT_MAX_FLOWS (1u << 18)
#define TLS_FLOW_DEFAULT_MAX_DIR_BYTES (64u * 1024)
#define TLS_FLOW_DEFAULT_MAX_TOTAL_BYTES ((uint64_t)512 << 20)
#define TLS_FLOW_DEFAULT_IDLE_TIMEOUT 60u
#define TLS_FLOW_MAX_RANGES 8 /* out-of-order filled ranges kept per direction */

/* Link types (pcap LINKTYPE_*) the decoder knows. */
#define TLS_LINK_NULL 0
#define TLS_LINK_ETHERNET 1
#define TLS_LINK_RAW 101
#define TLS_LINK_LINUX_SLL 113
#define TLS_LINK_IPV4 228
#define TLS_LINK_IPV6 229
#define TLS_LINK_LINUX_SLL2 276

/* What the consumer returns from data_cb. */
#define TLS_FLOW_MORE 0     /* keep reassembling */
#define TLS_FLOW_DIR_DONE 1 /* nothing more wanted from this direction */
#define TLS_FLOW_DONE 2     /* nothing more wanted from the flow: release it */

/* Why a flow ended (end_cb). */
enum tls_flow_end {
	TLS_FLOW_END_DONE = 0, /* the consumer said so */
	TLS_FLOW_END_CLOSED,   /* RST, or FIN in both directions */
	TLS_FLOW_END_IDLE,     /* idle past idle_timeout */
	TLS_FLOW_END_EVICTED,  /* the table was full: the least recently seen flow made room */
	TLS_FLOW_END_SHUTDOWN, /* tls_flow_table_finish() */
};
const char *tls_flow_end_str(enum tls_flow_end why);

struct tls_flow_dir {
	uint32_t isn;      /* sequence number of stream byte 0 */
	bool have_isn;     /* a SYN or a first payload set isn */
	bool done;         /* the consumer wants no more of it */
	bool fin;          /* FIN seen */
	bool capped;       /* bytes past max_dir_bytes (or past the total budget) were dropped */
	uint8_t nranges;
	uint8_t *buf;
	uint32_t len;  /* contiguous bytes from stream byte 0 */
	uint32_t cap;  /* allocated */
	struct {
		uint32_t start, end;
	} ranges[TLS_FLOW_MAX_RANGES]; /* filled beyond len, sorted, disjoint */
};

struct tls_flow {
	/* endpoint 0 is the initiator: the sender of the SYN, else of the first packet seen */
	uint8_t addr[2][16]; /* IPv4 as v4-mapped IPv6 */
	uint16_t port[2];
	bool ipv6;
	bool midstream; /* no SYN seen */
	uint64_t first_ts, last_ts; /* seconds of capture time */
	uint64_t first_usec;        /* microseconds of the first packet (within first_ts) */
	struct tls_flow_dir dir[2]; /* dir[i]: bytes sent by endpoint i */
	void *user;                 /* the consumer's state */
	/* private */
	uint64_t hash;
	struct tls_flow *hnext;        /* hash chain */
	struct tls_flow *lprev, *lnext; /* least recently seen first */
};

struct tls_flow_stats {
	uint64_t packets, bytes;   /* records given, their captured bytes */
	uint64_t truncated;        /* a header cut short by the snaplen or malformed */
	uint64_t not_ip;           /* other ethertypes, unknown link types */
	uint64_t not_tcp;          /* IP but another transport */
	uint64_t fragments;        /* IP fragments (ignored) */
	uint64_t tcp_packets;      /* TCP segments decoded */
	uint64_t fast_path;        /* segments of recently finished flows, dropped at once */
	uint64_t flows;            /* flows created */
	uint64_t flows_done, flows_closed, flows_idle, flows_evicted, flows_shutdown;
	uint64_t flows_live, flows_live_max;
	uint64_t payload_bytes;    /* TCP payload bytes of live flows */
	uint64_t stored_bytes;     /* bytes that went into the reassembly buffers */
	uint64_t retransmits;      /* segments with nothing new */
	uint64_t out_of_order;     /* segments stored ahead of a gap */
	uint64_t ooo_dropped;      /* ahead of a gap but no range left: dropped (the gap stays) */
	uint64_t dir_cap_hits;     /* directions that reached max_dir_bytes */
	uint64_t total_cap_hits;   /* buffer growth refused by the total budget */
	uint64_t buffered_bytes;   /* allocated now */
	uint64_t buffered_max;
};

typedef int (*tls_flow_data_cb)(void *arg, struct tls_flow *f, unsigned dir,
                                const uint8_t *data, size_t len);
typedef void (*tls_flow_end_cb)(void *arg, struct tls_flow *f, enum tls_flow_end why);

struct tls_flow_config {
	uint32_t max_flows;      /* 0: default */
	uint32_t max_dir_bytes;  /* 0: default */
	uint64_t max_total_bytes; /* 0: default */
	uint32_t idle_timeout;   /* seconds, 0: default */
};

struct tls_flow_table;

/* NULL when out of memory. */
struct tls_flow_table *tls_flow_table_new(const struct tls_flow_config *cfg, tls_flow_data_cb data_cb,
                                          tls_flow_end_cb end_cb, void *arg);
/* Ends every live flow (SHUTDOWN) and frees the table. NULL is fine. */
void tls_flow_table_free(struct tls_flow_table *t);
/* Ends every live flow with reason SHUTDOWN (end of input); the table stays usable. */
void tls_flow_table_finish(struct tls_flow_table *t);
/* Ends flows idle past the timeout at capture time now (also done by tls_flow_packet). */
void tls_flow_table_expire(struct tls_flow_table *t, uint64_t now);

/*
 * One captured packet: linktype, timestamp, caplen bytes. Returns 0; a packet that does not
 * decode is counted in the stats, never an error.
 */
int tls_flow_packet(struct tls_flow_table *t, uint32_t linktype, uint64_t ts_sec, uint32_t ts_usec,
                    const uint8_t *pkt, size_t caplen);

const struct tls_flow_stats *tls_flow_stats(const struct tls_flow_table *t);
/* The table's clock: the latest packet timestamp seen (seconds), 0 before any packet. */
uint64_t tls_flow_table_now(const struct tls_flow_table *t);

#endif
