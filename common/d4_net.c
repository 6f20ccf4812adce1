/*
 * d4_net.c — IP addresses and ranges in one 16-byte form (see d4_net.h).
 *
 * Parsing leans on inet_pton(), which is strict (no "1.2.3", no octal, no
 * zone ids), and only adds the prefix and range syntax on top. Everything
 * else is byte arithmetic on 16-byte big-endian numbers, where memcmp()
 * is numeric comparison.
 */
#include "d4_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "d4_log.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool d4_ip_is_v4(const uint8_t a[D4_IP_SIZE])
{
	return memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

int d4_ip_cmp(const uint8_t a[D4_IP_SIZE], const uint8_t b[D4_IP_SIZE])
{
	int c = memcmp(a, b, D4_IP_SIZE);
	return (c > 0) - (c < 0);
}

bool d4_ip_in_range(const uint8_t a[D4_IP_SIZE], const struct d4_ip_range *r)
{
	return memcmp(r->start, a, D4_IP_SIZE) <= 0 && memcmp(a, r->end, D4_IP_SIZE) <= 0;
}

/* Parses an address; *is_v4 tells whether it was written as a dotted quad. */
static int parse_addr(const char *s, size_t len, uint8_t out[D4_IP_SIZE], bool *is_v4)
{
	char buf[D4_IP_STR_MAX + 1];
	struct in_addr a4;
	struct in6_addr a6;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memcpy(out, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out + 12, &a4.s_addr, 4);
		*is_v4 = true;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &a6) == 1) {
		memcpy(out, a6.s6_addr, D4_IP_SIZE);
		*is_v4 = false;
		return 0;
	}
	return -EINVAL;
}

int d4_ip_parse(const char *s, size_t len, uint8_t out[D4_IP_SIZE])
{
	bool is_v4;
	return parse_addr(s, len, out, &is_v4);
}

int d4_ip_from_sockaddr(const struct sockaddr *sa, uint8_t out[D4_IP_SIZE])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(out, v4_mapped_prefix, sizeof(v4_mapped_prefix));
		memcpy(out + 12, &in->sin_addr.s_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out, in6->sin6_addr.s6_addr, D4_IP_SIZE);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int d4_ip_format(const uint8_t a[D4_IP_SIZE], char *out, size_t cap)
{
	char buf[D4_IP_STR_MAX];
	const char *p;

	if (d4_ip_is_v4(a))
		p = inet_ntop(AF_INET, a + 12, buf, sizeof(buf));
	else
		p = inet_ntop(AF_INET6, a, buf, sizeof(buf));
	if (p == NULL || strlen(buf) + 1 > cap)
		return -ENOSPC;
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Sets *end to start with every bit from position `bits` on set; false if start had one. */
static bool apply_prefix(const uint8_t start[D4_IP_SIZE], unsigned bits, uint8_t end[D4_IP_SIZE])
{
	bool clean = true;

	for (unsigned i = 0; i < D4_IP_SIZE; i++) {
		uint8_t host;
		if (bits >= 8 * (i + 1))
			host = 0;
		else if (bits <= 8 * i)
			host = 0xff;
		else
			host = (uint8_t)(0xffu >> (bits - 8 * i));
		if (start[i] & host)
			clean = false;
		end[i] = start[i] | host;
	}
	return clean;
}

int d4_ip_range_parse(const char *s, size_t len, struct d4_ip_range *out, const char **why)
{
	const char *reason = "not an IP address";
	const char *slash, *dash;
	bool v4, v4_end;

	while (len > 0 && is_blank(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_blank(s[len - 1]))
		len--;

	slash = memchr(s, '/', len);
	dash = memchr(s, '-', len);
	if (slash != NULL) {
		size_t alen = (size_t)(slash - s), plen = len - alen - 1;
		unsigned prefix = 0, max;

		if (parse_addr(s, alen, out->start, &v4) != 0)
			goto fail;
		reason = "bad prefix length";
		if (plen == 0 || plen > 3)
			goto fail;
		for (size_t i = 0; i < plen; i++) {
			char c = slash[1 + i];
			if (c < '0' || c > '9')
				goto fail;
			prefix = prefix * 10 + (unsigned)(c - '0');
		}
		max = v4 ? 32 : 128;
		reason = "prefix length out of range";
		if (prefix > max)
			goto fail;
		reason = "host bits set";
		if (!apply_prefix(out->start, v4 ? 96 + prefix : prefix, out->end))
			goto fail;
		return 0;
	}
	if (dash != NULL) {
		size_t alen = (size_t)(dash - s);
		size_t a_trim = alen, b_off = alen + 1;

		while (a_trim > 0 && is_blank(s[a_trim - 1]))
			a_trim--;
		while (b_off < len && is_blank(s[b_off]))
			b_off++;
		if (parse_addr(s, a_trim, out->start, &v4) != 0 ||
		    parse_addr(s + b_off, len - b_off, out->end, &v4_end) != 0)
			goto fail;
		reason = "mixed address families";
		if (d4_ip_is_v4(out->start) != d4_ip_is_v4(out->end))
			goto fail;
		reason = "range start after end";
		if (memcmp(out->start, out->end, D4_IP_SIZE) > 0)
			goto fail;
		return 0;
	}
	if (parse_addr(s, len, out->start, &v4) != 0)
		goto fail;
	memcpy(out->end, out->start, D4_IP_SIZE);
	return 0;

fail:
	if (why != NULL)
		*why = reason;
	return -EINVAL;
}

int d4_ip_range_parse_str(const char *s, struct d4_ip_range *out, const char **why)
{
	return d4_ip_range_parse(s, strlen(s), out, why);
}

int d4_ip_range_prefix(const struct d4_ip_range *r)
{
	unsigned bits = 0;
	size_t i = 0;

	/* The common prefix: bytes, then bits, where start and end agree. */
	while (i < D4_IP_SIZE && r->start[i] == r->end[i]) {
		bits += 8;
		i++;
	}
	if (i < D4_IP_SIZE) {
		uint8_t diff = r->start[i] ^ r->end[i];
		while (!(diff & 0x80)) {
			diff = (uint8_t)(diff << 1);
			bits++;
		}
	}
	/* It is one block iff start..end is exactly start with every bit past the prefix set. */
	uint8_t end[D4_IP_SIZE];
	if (!apply_prefix(r->start, bits, end) || memcmp(end, r->end, D4_IP_SIZE) != 0)
		return -1;
	if (d4_ip_is_v4(r->start) && bits >= 96)
		return (int)bits - 96;
	return (int)bits;
}

int d4_ip_range_format(const struct d4_ip_range *r, char *out, size_t cap)
{
	char a[D4_IP_STR_MAX], b[D4_IP_STR_MAX];
	int prefix = d4_ip_range_prefix(r);
	int n;

	if (d4_ip_format(r->start, a, sizeof(a)) != 0)
		return -ENOSPC;
	if (prefix >= 0) {
		n = snprintf(out, cap, "%s/%d", a, prefix);
	} else {
		if (d4_ip_format(r->end, b, sizeof(b)) != 0)
			return -ENOSPC;
		n = snprintf(out, cap, "%s-%s", a, b);
	}
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return 0;
}

int d4_listen_addr_parse(const char *text, struct sockaddr_storage *ss, unsigned *len)
{
	char host[128];
	const char *colon;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
			return -1;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
			return -1;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
	}
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

int d4_listen_tcp(const char *text, int backlog, const char *prog, const char *what, int *fd_out)
{
	struct sockaddr_storage ss, got;
	socklen_t glen = sizeof(got);
	unsigned len;
	int fd = -1, one = 1;

	if (d4_listen_addr_parse(text, &ss, &len) != 0) {
		fprintf(stderr, "%s: %s: '%s' is not address:port\n", prog, what, text);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto err;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto err;
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		goto err;
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)len) != 0 || listen(fd, backlog) != 0 ||
	    getsockname(fd, (struct sockaddr *)&got, &glen) != 0)
		goto err;
	char port[8];
	unsigned p = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
	                                             : ((struct sockaddr_in *)&got)->sin_port);
	snprintf(port, sizeof(port), "%u", p);
	d4_log(D4_LOG_NOTICE, "listening", "address", text, "port", port, NULL);
	*fd_out = fd;
	return 0;
err:
	fprintf(stderr, "%s: %s %s: %s\n", prog, what, text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}
