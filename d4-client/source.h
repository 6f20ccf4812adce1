/*
 * source.h — where the sensor's bytes come from: stdin, a file or fifo, or a
 * live interface through libpcap.
 *
 * Every source exposes one file descriptor for poll() and a read of "what is
 * there now, up to n bytes": one such read becomes one D4 frame, as in the
 * reference clients. A live capture is turned into a libpcap 2.4 stream (the
 * payload of type 1): a global header, then one record header and the packet
 * bytes per packet, cut into frames wherever the snaplen falls.
 */
#ifndef D4_CLIENT_SOURCE_H
#define D4_CLIENT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clientconf.h"

struct pcap_src; /* source.c, only with libpcap */

struct source {
	enum src_kind kind;
	int fd;            /* for poll(); -1 once closed */
	bool eof;          /* nothing more will come */
	bool regular;      /* a regular file: always readable, may wait for buffer room */
	bool restore_fl;   /* fd's file status flags were changed and must be put back */
	int saved_fl;
	bool own_fd;       /* close fd on source_close() */
	char name[256];    /* for logs */
	uint64_t bytes;    /* read so far */
	struct pcap_src *pcap;
};

/* Opens the configured source, non-blocking. 0 or -1 with err. */
int source_open(struct source *s, const struct client_conf *c, char *err, size_t errlen);
/*
 * Reads up to cap bytes: >0 bytes read, 0 when nothing is available now (or at
 * EOF: check s->eof), -1 on a read error (err set; the source is then at EOF).
 */
ssize_t source_read(struct source *s, uint8_t *buf, size_t cap, char *err, size_t errlen);
/* True when bytes are staged and a read would return some without poll(). */
bool source_has_buffered(const struct source *s);
/* Stops reading (EOF, a signal) and logs capture statistics for a live interface. */
void source_close(struct source *s);

#endif
