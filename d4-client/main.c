/*
 * main.c — d4-client: options, setup and the event loop of the D4 sensor
 * client.
 *
 * The client reads a source (stdin, a file or fifo, a live interface) in
 * chunks of up to snaplen bytes, turns each chunk into one signed D4 frame,
 * and sends the frames to stdout or to a D4 server over TLS. It replaces the
 * reference clients of d4-core (C) and d4-goclient (Go) and reads the same
 * config directory; see docs/client.md.
 *
 * Why one thread and poll(): the source must be read while the server is
 * unreachable (a live capture that is not read loses packets in the kernel),
 * so reading and sending are decoupled by a bounded queue of signed frames
 * (framequeue.c). A single poll() loop over non-blocking descriptors does that
 * without locks: the source descriptor, the destination socket driven by the
 * sender's state machine (sender.c: connect, TLS handshake, write, backoff),
 * the resolver's pipe (resolver.c runs getaddrinfo() in a helper thread, the
 * one blocking call) and a self-pipe for SIGINT/SIGTERM. Each pass reads a
 * bounded number of chunks and writes until the socket would block, so
 * neither side starves the other.
 *
 * End of input (or a first signal) stops reading; the loop then flushes the
 * queue, reconnecting if it has to, until --flush-timeout. A second signal,
 * a second or more after the first, exits at once. The exit status says whether data was lost (see usage()).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clientconf.h"
#include "d4_log.h"
#include "d4_uuid.h"
#include "framequeue.h"
#include "framer.h"
#include "sender.h"
#include "source.h"

#ifndef D4_CLIENT_VERSION
#define D4_CLIENT_VERSION "0.0.0"
#endif

enum exit_status {
	EXIT_OK = 0,
	EXIT_FATAL = 1,     /* stdout broken, source read error, out of memory */
	EXIT_USAGE = 2,     /* bad flag or configuration */
	EXIT_DISCARDED = 3, /* the buffer overflowed and frames were discarded */
	EXIT_UNSENT = 4,    /* frames were still queued at exit (flush timeout, signal) */
};

#define READS_PER_PASS 16  /* chunks read per loop pass before writing again */
#define DROP_LOG_MS 10000u /* at most one buffer_full line per interval */
#define SIGNAL_REPEAT_MS 1000u /* a signal this soon after the first is the same request
                                * (timeout(1) and some supervisors send it twice) */

enum { PFD_SIGNAL, PFD_SOURCE, PFD_SOCKET, PFD_RESOLVER, PFD_COUNT };

struct client {
	struct client_conf conf;
	struct framer framer;
	struct framequeue queue;
	struct source src;
	struct sender snd;
	uint8_t *chunk;
	int sig_rd;
	int sig_wr;
	int signals;
	uint64_t first_signal_at;
	bool finishing;
	bool fatal;
	uint64_t flush_deadline;
	uint64_t frames_read;
	uint64_t drop_logged_at;
	uint64_t drops_logged;
};

static volatile sig_atomic_t g_sig_fd = -1;

static void on_signal(int signo)
{
	int saved = errno;
	unsigned char b = (unsigned char)signo;

	if (g_sig_fd >= 0)
		(void)!write(g_sig_fd, &b, 1);
	errno = saved;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: d4-client [-c DIR] [options]\n"
	        "\n"
	        "Reads a source in chunks of up to snaplen bytes and sends each chunk as a signed\n"
	        "D4 frame to stdout or to a D4 server over TLS, reconnecting when needed.\n"
	        "\n"
	        "Settings (a flag overrides the file of the same name in DIR):\n"
	        "  -c, --config DIR        config directory of the reference clients: uuid, key,\n"
	        "                          snaplen, type, version, source, destination,\n"
	        "                          metaheader.json, rootCA.crt\n"
	        "  -u, --uuid UUID         sensor uuid (v4); generated and written to DIR/uuid if absent\n"
	        "  -k, --key KEY           HMAC key (visible in ps: prefer --key-file)\n"
	        "  -K, --key-file FILE     HMAC key file (raw bytes, trailing newline ignored)\n"
	        "  -t, --type N            D4 type (1 pcap, 3 log, 4 dnscap, 5 pcapng, 6 ndjson,\n"
	        "                          7 yaf, 8 passivedns, 254 with a meta header)\n"
	        "  -s, --snaplen N         bytes per frame, 1..1000000 (default 4096)\n"
	        "      --proto-version N   D4 protocol version (only 1)\n"
	        "  -S, --source SRC        stdin (default), a file or fifo path, file:PATH, pcap:IFACE\n"
	        "  -d, --destination DST   stdout (default), host:port or [v6addr]:port\n"
	        "  -m, --metaheader FILE   meta header JSON for type 254 (default DIR/metaheader.json)\n"
	        "\n"
	        "TLS (host:port destinations):\n"
	        "      --ca FILE           CA to verify the server with (default DIR/rootCA.crt,\n"
	        "                          else the system store); the host name is checked too\n"
	        "      --insecure          do not verify the server's certificate (warned)\n"
	        "      --cert FILE         client certificate (PEM chain) for mutual TLS\n"
	        "      --cert-key FILE     its private key\n"
	        "      --no-tls            plain TCP (for a TLS terminator on the same host)\n"
	        "\n"
	        "Delivery:\n"
	        "  -b, --buffer SIZE       frames kept while the server is unreachable (default 64M)\n"
	        "      --on-full POLICY    drop: discard the oldest frames; wait: stop reading;\n"
	        "                          auto (default): wait for a regular file, else drop\n"
	        "      --flush-timeout DUR how long to keep trying to send at the end (default 30s)\n"
	        "      --connect-timeout DUR  TCP connect + TLS handshake limit (default 10s)\n"
	        "      --retry-max DUR     longest wait between connection attempts (default 60s)\n"
	        "      --keepalive DUR     TCP keepalive idle time, 0 to disable (default 30s)\n"
	        "      --eof-frame         send a zero-length frame at the end of the input\n"
	        "      --resend SIZE       after a reconnect, send again the last frames written\n"
	        "                          (at most SIZE, default 16M; 0: never): d4 skips those\n"
	        "                          it already has, nothing is lost when a server dies\n"
	        "      --resend-age DUR    only frames written this recently (default 60s)\n"
	        "\n"
	        "Live capture (source pcap:IFACE):\n"
	        "      --pcap-filter EXPR  BPF filter (the connection to the server is always excluded)\n"
	        "      --no-promisc        do not put the interface in promiscuous mode\n"
	        "\n"
	        "Logging (stderr, key=value):\n"
	        "  -v, --verbose           debug messages\n"
	        "  -q, --quiet             warnings and errors only\n"
	        "      --log-level LEVEL   err, warn, notice, info (default), debug\n"
	        "      --syslog            log to syslog instead of stderr\n"
	        "  -h, --help              this text\n"
	        "  -V, --version           the version\n"
	        "\n"
	        "Durations: 250ms, 30s, 5m, 1h (a bare number is seconds). Sizes: 512k, 64M, 1G.\n"
	        "\n"
	        "Exit status: 0 everything was sent; 1 fatal error; 2 bad usage or configuration;\n"
	        "3 frames were discarded because the buffer was full; 4 frames were left unsent\n"
	        "at exit (flush timeout or second signal). 1 wins over 4, 4 over 3.\n"
	        "SIGINT/SIGTERM: stop reading and flush; a second signal (1s later) exits at once.\n");
}

enum {
	OPT_PROTO_VERSION = 256,
	OPT_CA,
	OPT_INSECURE,
	OPT_CERT,
	OPT_CERT_KEY,
	OPT_NO_TLS,
	OPT_ON_FULL,
	OPT_FLUSH_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_RETRY_MAX,
	OPT_KEEPALIVE,
	OPT_EOF_FRAME,
	OPT_RESEND,
	OPT_RESEND_AGE,
	OPT_PCAP_FILTER,
	OPT_NO_PROMISC,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_FIXED_TIMESTAMP,
};

static const struct option long_opts[] = {
	{"config", required_argument, NULL, 'c'},
	{"uuid", required_argument, NULL, 'u'},
	{"key", required_argument, NULL, 'k'},
	{"key-file", required_argument, NULL, 'K'},
	{"type", required_argument, NULL, 't'},
	{"snaplen", required_argument, NULL, 's'},
	{"proto-version", required_argument, NULL, OPT_PROTO_VERSION},
	{"source", required_argument, NULL, 'S'},
	{"destination", required_argument, NULL, 'd'},
	{"metaheader", required_argument, NULL, 'm'},
	{"ca", required_argument, NULL, OPT_CA},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	{"cert", required_argument, NULL, OPT_CERT},
	{"cert-key", required_argument, NULL, OPT_CERT_KEY},
	{"no-tls", no_argument, NULL, OPT_NO_TLS},
	{"buffer", required_argument, NULL, 'b'},
	{"on-full", required_argument, NULL, OPT_ON_FULL},
	{"flush-timeout", required_argument, NULL, OPT_FLUSH_TIMEOUT},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"retry-max", required_argument, NULL, OPT_RETRY_MAX},
	{"keepalive", required_argument, NULL, OPT_KEEPALIVE},
	{"eof-frame", no_argument, NULL, OPT_EOF_FRAME},
	{"resend", required_argument, NULL, OPT_RESEND},
	{"resend-age", required_argument, NULL, OPT_RESEND_AGE},
	{"pcap-filter", required_argument, NULL, OPT_PCAP_FILTER},
	{"no-promisc", no_argument, NULL, OPT_NO_PROMISC},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"syslog", no_argument, NULL, OPT_SYSLOG},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	/* for tests: every frame carries this timestamp (reproduces published vectors) */
	{"fixed-timestamp", required_argument, NULL, OPT_FIXED_TIMESTAMP},
	{NULL, 0, NULL, 0},
};

/* 0 to run, 1 to exit 0 (--help, --version), -1 on a usage error. */
static int parse_args(int argc, char **argv, struct client_opts *o, enum d4_log_level *level,
                      enum d4_log_target *target)
{
	int ch;
	int lvl;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "c:u:k:K:t:s:S:d:m:b:vqhV", long_opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->confdir = optarg; break;
		case 'u': o->uuid = optarg; break;
		case 'k': o->key = optarg; break;
		case 'K': o->key_file = optarg; break;
		case 't': o->type = optarg; break;
		case 's': o->snaplen = optarg; break;
		case OPT_PROTO_VERSION: o->version = optarg; break;
		case 'S': o->source = optarg; break;
		case 'd': o->destination = optarg; break;
		case 'm': o->metaheader = optarg; break;
		case OPT_CA: o->ca = optarg; break;
		case OPT_INSECURE: o->insecure = true; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_CERT_KEY: o->cert_key = optarg; break;
		case OPT_NO_TLS: o->no_tls = true; break;
		case 'b': o->buffer = optarg; break;
		case OPT_ON_FULL: o->on_full = optarg; break;
		case OPT_FLUSH_TIMEOUT: o->flush_timeout = optarg; break;
		case OPT_CONNECT_TIMEOUT: o->connect_timeout = optarg; break;
		case OPT_RETRY_MAX: o->retry_max = optarg; break;
		case OPT_KEEPALIVE: o->keepalive = optarg; break;
		case OPT_EOF_FRAME: o->eof_frame = true; break;
		case OPT_RESEND: o->resend = optarg; break;
		case OPT_RESEND_AGE: o->resend_age = optarg; break;
		case OPT_PCAP_FILTER: o->pcap_filter = optarg; break;
		case OPT_NO_PROMISC: o->no_promisc = true; break;
		case OPT_FIXED_TIMESTAMP: o->fixed_timestamp = optarg; break;
		case 'v': *level = D4_LOG_DEBUG; break;
		case 'q': *level = D4_LOG_WARN; break;
		case OPT_LOG_LEVEL:
			lvl = d4_log_level_from_name(optarg);
			if (lvl < 0) {
				fprintf(stderr, "d4-client: --log-level: unknown level \"%s\"\n", optarg);
				return -1;
			}
			*level = (enum d4_log_level)lvl;
			break;
		case OPT_SYSLOG: *target = D4_LOG_SYSLOG; break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("d4-client %s\n", D4_CLIENT_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try 'd4-client --help' for more information.\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "d4-client: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return -1;
	}
	return 0;
}

static int setup_signals(struct client *c)
{
	struct sigaction sa;
	int p[2];

	if (pipe(p) != 0)
		return -1;
	c->sig_rd = p[0];
	c->sig_wr = p[1];
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(p[i], F_GETFL);
		if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
		    fcntl(p[i], F_SETFD, FD_CLOEXEC) != 0)
			return -1;
	}
	g_sig_fd = c->sig_wr;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGTERM, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	return 0;
}

static void log_u64s(enum d4_log_level lvl, const char *event, const char *k1, uint64_t v1,
                     const char *k2, uint64_t v2, const char *k3, uint64_t v3)
{
	char b1[24], b2[24], b3[24];

	(void)snprintf(b1, sizeof(b1), "%" PRIu64, v1);
	(void)snprintf(b2, sizeof(b2), "%" PRIu64, v2);
	(void)snprintf(b3, sizeof(b3), "%" PRIu64, v3);
	d4_log(lvl, event, k1, b1, k2, b2, k3, k3 != NULL ? b3 : NULL, NULL);
}

static void log_drops(struct client *c, uint64_t now, bool force)
{
	struct framequeue *q = &c->queue;

	if (q->dropped_frames == c->drops_logged)
		return;
	if (!force && c->drops_logged != 0 && now - c->drop_logged_at < DROP_LOG_MS)
		return;
	log_u64s(D4_LOG_WARN, "buffer_full", "dropped_frames", q->dropped_frames, "dropped_bytes",
	         q->dropped_bytes, "buffer_bytes", q->max_bytes);
	c->drops_logged = q->dropped_frames;
	c->drop_logged_at = now;
}

static bool reading_paused(const struct client *c)
{
	bool wait = c->conf.on_full == FULL_WAIT || (c->conf.on_full == FULL_AUTO && c->src.regular);

	return wait && framequeue_would_drop(&c->queue, (size_t)c->conf.snaplen + D4_HEADER_SIZE);
}

/* Queues one frame; -1 when it cannot be built (out of memory, crypto failure). */
static int enqueue(struct client *c, const uint8_t *payload, size_t len, uint64_t now)
{
	struct frame *f = framer_build(&c->framer, c->conf.type, payload, len);

	if (f == NULL) {
		d4_log(D4_LOG_ERR, "frame_failed", "reason", "out of memory or HMAC failure", NULL);
		return -1;
	}
	(void)framequeue_push(&c->queue, f);
	c->frames_read++;
	if (d4_log_enabled(D4_LOG_DEBUG))
		log_u64s(D4_LOG_DEBUG, "frame_read", "frame", c->frames_read, "bytes", len, NULL, 0);
	log_drops(c, now, false);
	return 0;
}

static int read_source(struct client *c, uint64_t now)
{
	char err[512];

	for (int i = 0; i < READS_PER_PASS && !c->src.eof && !reading_paused(c); i++) {
		ssize_t n = source_read(&c->src, c->chunk, c->conf.snaplen, err, sizeof(err));
		if (n < 0) {
			d4_log(D4_LOG_ERR, "source_failed", "reason", err, NULL);
			c->fatal = true;
			return 0;
		}
		if (n == 0)
			return 0;
		if (enqueue(c, c->chunk, (size_t)n, now) != 0)
			return -1;
	}
	return 0;
}

/* End of input or a signal: stop reading and start flushing. */
static int begin_finish(struct client *c, uint64_t now, const char *why)
{
	char bytes[24];

	c->finishing = true;
	c->flush_deadline = now + c->conf.flush_timeout_ms;
	(void)snprintf(bytes, sizeof(bytes), "%" PRIu64, c->src.bytes);
	d4_log(D4_LOG_INFO, "source_done", "source", c->src.name, "reason", why, "bytes", bytes,
	       NULL);
	source_close(&c->src);
	if (c->conf.eof_frame)
		return enqueue(c, NULL, 0, now);
	return 0;
}

static int poll_timeout(const struct client *c, uint64_t now)
{
	uint64_t when = sender_deadline(&c->snd);

	if (!c->finishing && !reading_paused(c) && source_has_buffered(&c->src))
		return 0;
	if (c->finishing && (when == 0 || c->flush_deadline < when))
		when = c->flush_deadline;
	if (when == 0)
		return -1;
	if (when <= now)
		return 0;
	return when - now > INT_MAX ? INT_MAX : (int)(when - now);
}

static int run(struct client *c)
{
	struct pollfd pfd[PFD_COUNT];

	for (;;) {
		uint64_t now = now_ms();
		struct framequeue *q = &c->queue;
		int rc;

		if (!c->finishing && (c->src.eof || c->signals > 0) &&
		    begin_finish(c, now, c->signals > 0 ? "signal" : c->fatal ? "error" : "eof") != 0)
			return EXIT_FATAL;
		if (c->finishing && q->head == NULL)
			sender_finish(&c->snd, now, c->flush_deadline);
		if (sender_done(&c->snd))
			break;
		if (c->finishing && now >= c->flush_deadline) {
			log_u64s(D4_LOG_ERR, "flush_timeout", "unsent_frames", q->count, "unsent_bytes",
			         q->bytes, NULL, 0);
			break;
		}

		pfd[PFD_SIGNAL].fd = c->sig_rd;
		pfd[PFD_SIGNAL].events = POLLIN;
		pfd[PFD_SOURCE].fd = c->finishing || reading_paused(c) ? -1 : c->src.fd;
		pfd[PFD_SOURCE].events = POLLIN;
		sender_pollfds(&c->snd, false, q, &pfd[PFD_SOCKET], &pfd[PFD_RESOLVER]);
		for (int i = 0; i < PFD_COUNT; i++)
			pfd[i].revents = 0;
		rc = poll(pfd, PFD_COUNT, poll_timeout(c, now));
		if (rc < 0 && errno != EINTR) {
			d4_log(D4_LOG_ERR, "poll_failed", "reason", strerror(errno), NULL);
			return EXIT_FATAL;
		}
		now = now_ms();
		if (pfd[PFD_SIGNAL].revents != 0) {
			unsigned char b[16];
			ssize_t n = read(c->sig_rd, b, sizeof(b));
			if (n > 0 && c->signals == 0) {
				c->signals = 1;
				c->first_signal_at = now;
				d4_log(D4_LOG_NOTICE, "signal", "action", "stop reading, flush", NULL);
			} else if (n > 0 && now - c->first_signal_at >= SIGNAL_REPEAT_MS) {
				c->signals++;
				d4_log(D4_LOG_NOTICE, "signal", "action", "exit now", NULL);
				break;
			}
		}
		if (!c->finishing && c->signals == 0 &&
		    (pfd[PFD_SOURCE].revents != 0 || source_has_buffered(&c->src) ||
		     (c->src.regular && pfd[PFD_SOURCE].fd >= 0)) &&
		    read_source(c, now) != 0)
			return EXIT_FATAL;
		if (sender_step(&c->snd, pfd[PFD_SOCKET].revents, pfd[PFD_RESOLVER].revents, q,
		                now) != 0)
			return EXIT_FATAL;
	}
	if (c->fatal)
		return EXIT_FATAL;
	if (c->queue.head != NULL)
		return EXIT_UNSENT;
	if (c->queue.dropped_frames > 0)
		return EXIT_DISCARDED;
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct client c;
	struct client_opts o;
	enum d4_log_level level = D4_LOG_INFO;
	enum d4_log_target target = D4_LOG_STDERR;
	char err[1024];
	char uuid[D4_UUID_STR_LEN + 1];
	char type[8];
	int status = EXIT_FATAL;
	int rc;

	memset(&c, 0, sizeof(c));
	c.sig_rd = c.sig_wr = -1;
	c.src.fd = -1;
	c.snd.fd = -1;
	c.snd.res.rd = c.snd.res.wr = -1;
	rc = parse_args(argc, argv, &o, &level, &target);
	if (rc != 0)
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	d4_log_init("d4-client", target, level);
	framequeue_init(&c.queue, 0);

	if (clientconf_load(&c.conf, &o, err, sizeof(err)) != 0) {
		d4_log(D4_LOG_ERR, "config_error", "reason", err, NULL);
		status = EXIT_USAGE;
		goto out;
	}
	framequeue_init(&c.queue, c.conf.buffer_max);
	framequeue_set_resend(&c.queue, c.conf.resend_max, c.conf.resend_age_ms);
	if (setup_signals(&c) != 0) {
		d4_log(D4_LOG_ERR, "signal_setup_failed", "reason", strerror(errno), NULL);
		goto out;
	}
	if (framer_init(&c.framer, c.conf.version, c.conf.uuid, c.conf.key, c.conf.key_len) != 0) {
		d4_log(D4_LOG_ERR, "hmac_setup_failed", NULL);
		goto out;
	}
	c.framer.fixed_time = c.conf.fixed_time;
	c.framer.timestamp = c.conf.timestamp;
	c.chunk = malloc(c.conf.snaplen);
	if (c.chunk == NULL) {
		d4_log(D4_LOG_ERR, "out_of_memory", NULL);
		goto out;
	}
	if (sender_init(&c.snd, &c.conf, &c.framer, now_ms(), err, sizeof(err)) != 0) {
		d4_log(D4_LOG_ERR, "destination_error", "reason", err, NULL);
		status = EXIT_USAGE;
		goto out;
	}
	if (source_open(&c.src, &c.conf, err, sizeof(err)) != 0) {
		d4_log(D4_LOG_ERR, "source_error", "reason", err, NULL);
		status = EXIT_USAGE;
		goto out;
	}
	d4_uuid_format(c.conf.uuid, uuid);
	(void)snprintf(type, sizeof(type), "%u", c.conf.type);
	d4_log(D4_LOG_INFO, "start", "uuid", uuid, "type", type, "source", c.src.name,
	       "destination", c.snd.dest, NULL);

	status = run(&c);
	log_drops(&c, now_ms(), true);
	log_u64s(status == EXIT_OK ? D4_LOG_INFO : D4_LOG_WARN, "exit", "frames_read",
	         c.frames_read, "frames_sent", c.snd.frames_sent, "unsent_frames", c.queue.count);
out:
	source_close(&c.src);
	sender_free(&c.snd);
	framer_free(&c.framer);
	framequeue_free(&c.queue);
	free(c.chunk);
	g_sig_fd = -1;
	if (c.sig_rd >= 0)
		(void)close(c.sig_rd);
	if (c.sig_wr >= 0)
		(void)close(c.sig_wr);
	clientconf_free(&c.conf);
	return status;
}
