/*
 * d4_net.h — IP addresses and address ranges as the blocklists and the
 * statistics keep them.
 *
 * Every address is 16 bytes in network order: IPv6 as is, IPv4 as the
 * v4-mapped IPv6 address ::ffff:a.b.c.d. One representation means one key
 * layout in the store, one comparison (memcmp is numeric order) and one
 * lookup path for both families. A range is [start, end], both inclusive; a
 * CIDR block is stored as its two ends and never expanded, so 10.0.0.0/8 is
 * one record, not sixteen million.
 *
 * Text accepted by d4_ip_range_parse():
 *
 *   10.0.0.0/8   2001:db8::/32   192.0.2.7   2001:db8::1   10.0.0.5-10.0.0.9
 *
 * A CIDR whose address has bits set below the prefix (10.0.0.1/8) is refused
 * with "host bits set" rather than silently normalised: an operator who typed
 * it probably meant something else, and the blocklist must say exactly what
 * it blocks. An IPv4 prefix counts IPv4 bits (0..32); a v4-mapped address
 * written in IPv6 form takes an IPv6 prefix (::ffff:10.0.0.0/104 == 10.0.0.0/8).
 */
#ifndef D4_NET_H
#define D4_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define D4_IP_SIZE 16
/* Longest text d4_ip_range_format() writes: two full IPv6 forms and a dash, NUL. */
#define D4_IP_RANGE_STR_MAX 96
#define D4_IP_STR_MAX 46 /* INET6_ADDRSTRLEN */

struct sockaddr;

struct d4_ip_range {
	uint8_t start[D4_IP_SIZE];
	uint8_t end[D4_IP_SIZE];
};

/* True for ::ffff:0:0/96 (an IPv4 address in its v4-mapped form). */
bool d4_ip_is_v4(const uint8_t a[D4_IP_SIZE]);
/* Parses one address (dotted quad or IPv6 text) of exactly len bytes. 0 or -EINVAL. */
int d4_ip_parse(const char *s, size_t len, uint8_t out[D4_IP_SIZE]);
/* The address of an AF_INET or AF_INET6 sockaddr (port dropped). 0 or -EAFNOSUPPORT. */
int d4_ip_from_sockaddr(const struct sockaddr *sa, uint8_t out[D4_IP_SIZE]);
/* Dotted quad for v4-mapped addresses, RFC 5952 text otherwise. 0 or -ENOSPC. */
int d4_ip_format(const uint8_t a[D4_IP_SIZE], char *out, size_t cap);

/*
 * Parses a CIDR block, a single address or "start-end" (same family,
 * start <= end) from len bytes of text (surrounding blanks tolerated).
 * 0 or -EINVAL; *why (when not NULL) then names the reason: "not an IP
 * address", "bad prefix length", "prefix length out of range", "host bits
 * set", "mixed address families", "range start after end".
 */
int d4_ip_range_parse(const char *s, size_t len, struct d4_ip_range *out, const char **why);
/* Same for a NUL-terminated string. */
int d4_ip_range_parse_str(const char *s, struct d4_ip_range *out, const char **why);
/*
 * The prefix length when the range is exactly one CIDR block, counted in its
 * own family (0..32 for IPv4, 0..128 otherwise); -1 when it is not one.
 */
int d4_ip_range_prefix(const struct d4_ip_range *r);
/*
 * Text for a range: "10.0.0.0/8" when it is one CIDR block (a single
 * address keeps its /32 or /128), "start-end" otherwise. 0 or -ENOSPC.
 */
int d4_ip_range_format(const struct d4_ip_range *r, char *out, size_t cap);
/* start <= a <= end. */
bool d4_ip_in_range(const uint8_t a[D4_IP_SIZE], const struct d4_ip_range *r);
struct sockaddr_storage;
/*
 * A listening address as configured: "a.b.c.d:port" or "[v6]:port", numeric
 * (no name lookup), port 0..65535 (0: the kernel picks). Fills *ss and *len.
 * 0 or -1.
 */
int d4_listen_addr_parse(const char *text, struct sockaddr_storage *ss, unsigned *len);
/*
 * A listening TCP socket on `text` (as above; SO_REUSEADDR, IPv6 only for a v6 address,
 * close-on-exec), and the log line "listening address=TEXT port=N" with the port bound (tests
 * and scripts read it when the port was 0). 0 and *fd, or -1 after printing
 * "PROG: WHAT ...: reason" on stderr (what: the option, e.g. "web.listen").
 */
int d4_listen_tcp(const char *text, int backlog, const char *prog, const char *what, int *fd);
/* -1, 0, 1 like memcmp, numeric order. */
int d4_ip_cmp(const uint8_t a[D4_IP_SIZE], const uint8_t b[D4_IP_SIZE]);

#endif
