/*
 * resolver.h — name resolution that does not stall the event loop.
 *
 * getaddrinfo() blocks, for seconds when a DNS server is down, and the loop
 * must keep reading the source meanwhile. A numeric address is resolved in
 * place; a name is resolved by a short-lived detached thread that hands its
 * result back through a pipe the loop polls. The thread shares nothing with
 * the loop but its job (which it owns until it writes the pointer) and a
 * duplicate of the pipe's write end (which it closes), so the loop can tear
 * the resolver down at any time.
 */
#ifndef D4_CLIENT_RESOLVER_H
#define D4_CLIENT_RESOLVER_H

#include <stdbool.h>

struct addrinfo;

struct resolver {
	int rd; /* polled by the loop; -1 when closed */
	int wr;
	bool busy;
};

/* 0, or -1 with errno set. */
int resolver_init(struct resolver *r);
void resolver_free(struct resolver *r);
/*
 * Starts resolving host:port for a TCP connection. Returns 1 when the result
 * is already in *res (numeric host) or *gai_err (failure), 0 when a thread
 * was started (wait for resolver_fd() to become readable), -1 with errno set
 * when no thread could be started.
 */
int resolver_start(struct resolver *r, const char *host, const char *port,
                   struct addrinfo **res, int *gai_err);
/*
 * Picks up a finished resolution: 1 with *res or *gai_err set, 0 when none is
 * ready yet.
 */
int resolver_collect(struct resolver *r, struct addrinfo **res, int *gai_err);

#endif
