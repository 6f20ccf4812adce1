/*
 * clientconf.h — the sensor's settings: the reference clients' config
 * directory, overridden by command-line flags, checked once.
 *
 * The config directory (-c DIR) is the one the C and Go reference clients
 * read: one value per file (uuid, key, snaplen, type, version, source,
 * destination), plus metaheader.json and rootCA.crt. A flag always wins over
 * the file; without -c everything comes from flags and defaults. Every
 * refusal names where the bad value came from ("conf.d/snaplen: ..." or
 * "--snaplen: ...").
 */
#ifndef D4_CLIENT_CLIENTCONF_H
#define D4_CLIENT_CLIENTCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "d4_proto.h"

#define CLIENT_DEFAULT_SNAPLEN 4096u
#define CLIENT_MAX_SNAPLEN D4_DEFAULT_MAX_PAYLOAD
#define CLIENT_METAHEADER_MAX 100000u /* the Go client's limit for metaheader.json */

enum src_kind {
	SRC_STDIN = 0,
	SRC_FILE, /* a regular file or a fifo, by path */
	SRC_PCAP, /* live capture on an interface (libpcap) */
};

enum dst_kind {
	DST_STDOUT = 0,
	DST_NET, /* host:port, TLS unless --no-tls */
};

/* What to do when the buffer is full. */
enum full_policy {
	FULL_AUTO = 0, /* wait for a regular file, drop for anything live */
	FULL_DROP,     /* discard the oldest frames and keep reading */
	FULL_WAIT,     /* stop reading until there is room (back-pressure) */
};

/* Option strings exactly as given on the command line; NULL when absent. */
struct client_opts {
	const char *confdir;
	const char *uuid;
	const char *key;
	const char *key_file;
	const char *snaplen;
	const char *type;
	const char *version;
	const char *source;
	const char *destination;
	const char *metaheader;
	const char *ca;
	const char *cert;
	const char *cert_key;
	const char *buffer;
	const char *resend;
	const char *resend_age;
	const char *on_full;
	const char *flush_timeout;
	const char *connect_timeout;
	const char *retry_max;
	const char *keepalive;
	const char *pcap_filter;
	const char *fixed_timestamp;
	bool insecure;
	bool no_tls;
	bool eof_frame;
	bool no_promisc;
};

struct client_conf {
	char *confdir; /* NULL without -c */
	uint8_t uuid[D4_UUID_SIZE];
	uint8_t *key;
	size_t key_len;
	uint32_t snaplen;
	uint8_t type;
	uint8_t version;

	enum src_kind src_kind;
	char *src_arg; /* path or interface */
	char *pcap_filter;
	bool promisc;

	enum dst_kind dst_kind;
	char *host; /* without brackets */
	char *port;
	bool tls;
	bool insecure;
	char *ca_file;
	char *cert_file;
	char *cert_key_file;

	char *metaheader; /* type 254: the JSON sent as the type-2 frame */
	size_t metaheader_len;

	uint64_t buffer_max;
	uint64_t resend_max;    /* the resend window (framequeue.h); 0: none */
	uint64_t resend_age_ms;
	enum full_policy on_full;
	uint64_t flush_timeout_ms;
	uint64_t connect_timeout_ms;
	uint64_t retry_min_ms;
	uint64_t retry_max_ms;
	unsigned keepalive_s; /* 0: no TCP keepalive */
	bool eof_frame;
	bool fixed_time;
	uint64_t timestamp;
};

/*
 * Builds c from the flags in o and the config directory o->confdir. A
 * missing uuid is generated and, with a config directory, written back to
 * it. 0, or -1 with a one-line reason in err.
 */
int clientconf_load(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen);
void clientconf_free(struct client_conf *c);

/* "64M", "512k", "1G", "4096" -> bytes (powers of 1024). 0 or -1. */
int clientconf_parse_size(const char *s, uint64_t *out);
/* "250ms", "30s", "5m", "1h"; a bare number is seconds. 0 or -1. */
int clientconf_parse_duration_ms(const char *s, uint64_t *out);
/* Validates a meta header: one JSON object holding a non-empty string "type". 0 or -1 + why. */
int clientconf_check_metaheader(const char *json, size_t len, char *why, size_t whylen);

#endif
