/*
 * main.c — d4-ingest: options, listening sockets, workers, the loop.
 *
 *   d4-ingest [-c FILE] [--set section.key=value ...]
 *
 * The parent binds every listening socket, then either runs the loop itself
 * (ingest.workers = 1) or forks that many workers which all accept on the
 * same sockets, each with its own loop, store handle and dispatch link, and
 * restarts a worker that dies. The (uuid, type) session table is the only
 * thing the workers share (active.c).
 *
 * Shutdown (SIGTERM, SIGINT) is lossless for what was accepted: stop
 * accepting and reading, wait (up to 5 s) until dispatch has acknowledged
 * every frame, then close the sessions and write the last statistics.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <malloc.h>

#include <openssl/rand.h>

#include "d4_log.h"
#include "ingest.h"

#define DRAIN_TIMEOUT_MS 5000

static const char help[] =
	"\nThe sensor server: terminates TLS, checks every D4 packet, hands the data to\n"
	"d4-dispatch. Options live in the [ingest] section (etc/d4.conf documents them).\n";

uint64_t ingest_now(void)
{
	return (uint64_t)time(NULL);
}

uint64_t ingest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}


static int bind_listener(const char *text, int *fd_out)
{
	return d4_listen_tcp(text, 4096, "d4-ingest", "ingest.listen", fd_out);
}

/* ---- one worker's loop ---- */

static void tick_cb(uv_timer_t *t)
{
	struct ingest *ing = t->data;
	uint64_t now = ingest_now();
	bool reloaded = policy_refresh(&ing->policy, ing->store, &ing->conf, now, false) == 1;
	reloaded |= ing->policy_reloaded;
	ing->policy_reloaded = false;
	sessions_tick(ing, reloaded);
	stats_flush(ing->stats, ing->store, now, false);
	link_flush(ing->link);
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void drain_check_cb(uv_timer_t *t);

static void begin_stop(struct ingest *ing)
{
	if (ing->stopping)
		return;
	ing->stopping = true;
	d4_log(D4_LOG_NOTICE, "stopping", NULL);
	for (unsigned i = 0; i < ing->n_listeners; i++)
		uv_close((uv_handle_t *)&ing->listeners[i], NULL);
	sessions_set_paused(ing, true); /* read nothing more; what was read goes out */
	uv_timer_stop(&ing->tick);
	uv_timer_start(&ing->tick, drain_check_cb, 0, 50);
}

static void finish(struct ingest *ing)
{
	uv_timer_stop(&ing->tick);
	sessions_close_all(ing, D4_OK);
	stats_flush(ing->stats, ing->store, ingest_now(), true);
	link_flush(ing->link);
	link_destroy(ing->link);
	ing->link = NULL;
	uv_signal_stop(&ing->sigterm);
	uv_signal_stop(&ing->sigint);
	uv_walk(ing->loop, walk_close_cb, NULL);
}

static void drain_check_cb(uv_timer_t *t)
{
	struct ingest *ing = t->data;
	static uint64_t started;
	uint64_t now = uv_now(ing->loop);
	if (started == 0)
		started = now;
	bool drained = link_acked(ing->link) == link_offset(ing->link);
	if (drained || now - started > DRAIN_TIMEOUT_MS) {
		if (!drained)
			d4_logf(D4_LOG_WARN, "stop-undrained", "%llu bytes not acknowledged by dispatch "
			        "at exit", (unsigned long long)(link_offset(ing->link) - link_acked(ing->link)));
		finish(ing);
	}
}

static void signal_cb(uv_signal_t *sig, int signum)
{
	(void)signum;
	begin_stop(sig->data);
}

static int run_worker(struct ingest *ing, const int *fds, unsigned nfds)
{
	char err[512];
	int rc = 1;
	uv_loop_t loop;

	if (uv_loop_init(&loop) != 0)
		return 1;
	ing->loop = &loop;
	if (RAND_bytes((unsigned char *)&ing->instance, sizeof(ing->instance)) != 1)
		goto out;
	ing->instance &= ~(uint64_t)0xffffffffu; /* low half counts sessions */
	struct d4_store_opts so = {0};
	if (d4_store_open(&ing->store, ing->conf.store, &so, err, sizeof(err)) != 0) {
		d4_log(D4_LOG_ERR, "store-open-failed", "error", err, NULL);
		goto out;
	}
	if (policy_refresh(&ing->policy, ing->store, &ing->conf, ingest_now(), true) < 0)
		goto out;
	ing->stats = stats_create(&loop);
	ing->link = link_create(ing);
	if (ing->stats == NULL || ing->link == NULL)
		goto out;
	for (unsigned i = 0; i < nfds; i++) {
		uv_tcp_t *l = &ing->listeners[i];
		if (uv_tcp_init(&loop, l) != 0 || uv_tcp_open(l, fds[i]) != 0)
			goto out;
		l->data = ing;
		ing->n_listeners++;
		int r = uv_listen((uv_stream_t *)l, 4096, session_on_connection);
		if (r != 0) {
			d4_log(D4_LOG_ERR, "listen-failed", "error", uv_strerror(r), NULL);
			goto out;
		}
	}
	uv_timer_init(&loop, &ing->tick);
	ing->tick.data = ing;
	uv_timer_start(&ing->tick, tick_cb, 1000, 1000);
	uv_signal_init(&loop, &ing->sigterm);
	uv_signal_init(&loop, &ing->sigint);
	ing->sigterm.data = ing->sigint.data = ing;
	uv_signal_start(&ing->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&ing->sigint, signal_cb, SIGINT);
	link_start(ing->link);
	d4_log(D4_LOG_NOTICE, "started", "mode",
	       ing->conf.mode == MODE_REGISTRATION ? "registration" : "shared-secret", NULL);

	uv_run(&loop, UV_RUN_DEFAULT);
	d4_logf(D4_LOG_NOTICE, "stopped", "%llu connections accepted, %llu refused, %llu frames, "
	        "%llu bytes", (unsigned long long)ing->accepted_conns,
	        (unsigned long long)ing->refused_conns, (unsigned long long)ing->frames,
	        (unsigned long long)ing->bytes);
	rc = 0;
out:
	if (rc != 0) {
		if (ing->link) {
			link_destroy(ing->link);
			ing->link = NULL;
		}
		uv_walk(&loop, walk_close_cb, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&loop);
	stats_destroy(ing->stats);
	policy_free(&ing->policy);
	d4_store_close(ing->store);
	return rc;
}

/* ---- the parent of several workers ---- */

static volatile sig_atomic_t parent_stop;

static void parent_signal(int sig)
{
	(void)sig;
	parent_stop = 1;
}

static pid_t spawn(struct ingest *ing, unsigned worker, const int *fds, unsigned nfds)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		ing->worker = worker;
		_exit(run_worker(ing, fds, nfds));
	}
	if (pid > 0) {
		char w[16], p[16];
		snprintf(w, sizeof(w), "%u", worker);
		snprintf(p, sizeof(p), "%d", (int)pid);
		d4_log(D4_LOG_INFO, "worker-started", "worker", w, "pid", p, NULL);
	}
	return pid;
}

static int supervise(struct ingest *ing, const int *fds, unsigned nfds)
{
	unsigned n = ing->conf.workers;
	pid_t *pids = calloc(n, sizeof(pid_t));
	if (pids == NULL)
		return 1;
	struct sigaction sa = {0};
	sa.sa_handler = parent_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (unsigned i = 0; i < n; i++)
		pids[i] = spawn(ing, i, fds, nfds);

	while (!parent_stop) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			if (pids[i] != pid)
				continue;
			char w[16], why[64];
			snprintf(w, sizeof(w), "%u", i);
			if (WIFSIGNALED(status))
				snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
			else
				snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
			d4_log(D4_LOG_WARN, "worker-died", "worker", w, "reason", why, NULL);
			active_release_pid(ing->active, (int)pid);
			pids[i] = -1;
			if (!parent_stop) {
				sleep(1); /* a worker that dies at once must not spin */
				pids[i] = spawn(ing, i, fds, nfds);
			}
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (unsigned i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	free(pids);
	return 0;
}

/*
 * Output chunks (1 MiB) and large payload buffers come and go at the packet
 * rate. glibc would serve each from a fresh mmap and unmap it on free, so
 * every chunk would cost 256 page faults; keeping such blocks in the heap
 * (and the heap from shrinking at once) reuses the same pages.
 */
static void tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct d4_daemon d;
	static struct ingest ing; /* large (I/O buffers): not on the stack */
	int fds[INGEST_MAX_LISTEN];
	unsigned nfds = 0;
	char err[512];
	int rc = 1;

	int r = d4_daemon_init(&d, "d4-ingest", help, argc, argv);
	if (r != 0) {
		d4_daemon_free(&d);
		return r > 0 ? 0 : 2;
	}
	if (ingest_conf_load(&ing.conf, &d) != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	tune_malloc();
	if (tls_ctx_init(&ing.tls, &ing.conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-ingest: %s\n", err);
		d4_log(D4_LOG_ERR, "tls-setup-failed", "error", err, NULL);
		goto out;
	}
	/* nobody is connected yet: the store's session counts start at zero */
	struct d4_store *s = NULL;
	struct d4_store_opts so = {0};
	if (d4_store_open(&s, ing.conf.store, &so, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-ingest: %s\n", err);
		goto out;
	}
	struct d4_txn t;
	if (d4_txn_begin(s, &t, true) == 0) {
		if (d4_stats_reset_sessions(&t) == 0)
			d4_txn_commit(&t);
		else
			d4_txn_abort(&t);
	}
	d4_store_close(s);

	ing.active = active_create((unsigned)ing.conf.max_connections * 2);
	if (ing.active == NULL) {
		fprintf(stderr, "d4-ingest: cannot map the session table\n");
		goto out;
	}
	for (unsigned i = 0; i < ing.conf.n_listen; i++) {
		if (bind_listener(ing.conf.listen[i], &fds[nfds]) != 0)
			goto out;
		nfds++;
	}
	rc = ing.conf.workers > 1 ? supervise(&ing, fds, nfds) : run_worker(&ing, fds, nfds);
out:
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	active_destroy(ing.active);
	tls_ctx_free(&ing.tls);
	d4_daemon_free(&d);
	return rc;
}
