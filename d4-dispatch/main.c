/*
 * main.c — d4-dispatch: options, the store, the dispatch socket, the queues,
 * signals, the loop.
 *
 *   d4-dispatch [-c FILE] [--set section.key=value ...]
 *
 * One process, one libuv loop: the ingest links, the analyzers' sockets and
 * output pipes, and a one-second tick (counters to the store, forgetting old
 * sessions, retiring removed queues).
 *
 * SIGHUP reloads the configuration (the same file and --set options):
 * queues are added, removed and changed without losing what they hold
 * (queue.c). A configuration with an error is refused as a whole and the
 * running one stays.
 *
 * SIGTERM / SIGINT stop without losing what ingest handed over, as far as
 * the analyzers allow: stop reading from ingest (it keeps what is not
 * acknowledged and replays it to the next dispatcher), deliver what the
 * queues hold for up to dispatch.stop_timeout, then BYE every analyzer,
 * wait up to dispatch.bye_timeout, kill what is left, write the counters.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "d4_log.h"
#include "dispatch.h"

static const char help[] =
	"\nThe router between d4-ingest and the analyzers: takes sessions and frames from\n"
	"ingest on the dispatch socket and feeds the analyzer queues ([dispatch] and\n"
	"[queue.NAME] sections; etc/d4.conf documents them). SIGHUP reloads the queues.\n";

uint64_t dispatch_now(void)
{
	return (uint64_t)time(NULL);
}

uint64_t dispatch_now_ms(struct dispatch *d)
{
	return uv_now(d->loop);
}

static void tick_cb(uv_timer_t *t)
{
	struct dispatch *d = t->data;
	link_tick(d);
	queues_tick(d);
	control_poll(d);
	queues_update_pause(d);
	counters_flush(d, false);
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static bool all_analyzers_gone(struct dispatch *d)
{
	for (struct queue *q = d->queues; q; q = q->next)
		for (unsigned i = 0; i < q->n_an; i++)
			if (!analyzer_gone(q->an[i]))
				return false;
	return true;
}

static void finish(struct dispatch *d)
{
	uint64_t held = 0;
	for (struct queue *q = d->queues; q; q = q->next)
		held += q->in_memory + q->spooled;
	if (held)
		d4_logf(D4_LOG_WARN, "stop-undelivered", "%llu bytes held for analyzers (in memory "
		        "and spooled) were not acknowledged at exit", (unsigned long long)held);
	counters_flush(d, true);
	tap_close_all(d);
	link_close_all(d);
	uv_timer_stop(&d->tick);
	uv_timer_stop(&d->stop_timer);
	uv_walk(d->loop, walk_close_cb, NULL);
}

static void stop_check_cb(uv_timer_t *t)
{
	struct dispatch *d = t->data;
	uint64_t now = dispatch_now_ms(d);
	if (!d->byes_sent) {
		if (!queues_idle(d) && now - d->stop_started_ms < d->conf.stop_timeout_ms)
			return;
		d->byes_sent = true;
		d->byes_ms = now;
		for (struct queue *q = d->queues; q; q = q->next)
			for (unsigned i = 0; i < q->n_an; i++)
				analyzer_bye(q->an[i], false);
		return;
	}
	if (all_analyzers_gone(d)) {
		finish(d);
		return;
	}
	if (now - d->byes_ms > d->conf.bye_timeout_ms + 1000) {
		for (struct queue *q = d->queues; q; q = q->next)
			for (unsigned i = 0; i < q->n_an; i++)
				analyzer_kill(q->an[i], "did not stop in time");
		if (now - d->byes_ms > d->conf.bye_timeout_ms + 3000)
			finish(d); /* a process that survives SIGKILL is not ours to wait for */
	}
}

static void begin_stop(struct dispatch *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d4_log(D4_LOG_NOTICE, "stopping", NULL);
	link_stop_reading(d);
	d->stop_started_ms = dispatch_now_ms(d);
	uv_timer_start(&d->stop_timer, stop_check_cb, 0, 50);
}

static void reload(struct dispatch *d)
{
	struct d4_daemon nd;
	struct dispatch_conf nc;
	char err[1024];

	d4_log(D4_LOG_NOTICE, "reload", NULL);
	int r = d4_daemon_init(&nd, "d4-dispatch", help, d->argc, d->argv);
	if (r != 0) {
		d4_daemon_free(&nd);
		d4_log(D4_LOG_ERR, "reload-failed", "reason", "the configuration does not load "
		       "(see stderr); keeping the running one", NULL);
		return;
	}
	if (dispatch_conf_load(&nc, &nd, err, sizeof(err)) != 0) {
		d4_daemon_free(&nd);
		d4_log(D4_LOG_ERR, "reload-failed", "reason", err, NULL);
		return;
	}
	if (strcmp(nc.dispatch_socket, d->conf.dispatch_socket) != 0 ||
	    strcmp(nc.store, d->conf.store) != 0)
		d4_log(D4_LOG_WARN, "reload-partial", "msg", "the socket and store paths change "
		       "only at restart", NULL);
	d->conf.restart_backoff_max_ms = nc.restart_backoff_max_ms;
	d->conf.max_restarts = nc.max_restarts;
	d->conf.restart_window_ms = nc.restart_window_ms;
	d->conf.ack_bytes = nc.ack_bytes;
	d->conf.handshake_timeout_ms = nc.handshake_timeout_ms;
	d->conf.stop_timeout_ms = nc.stop_timeout_ms;
	d->conf.bye_timeout_ms = nc.bye_timeout_ms;
	d->conf.window = nc.window;
	queues_reload(d, &nc);
	control_poll(d); /* a queue the reload added starts paused when it was */
	dispatch_conf_free(&nc);
	d4_daemon_free(&d->daemon);
	d->daemon = nd;
	for (struct queue *q = d->queues; q; q = q->next)
		for (unsigned i = 0; i < q->n_an; i++)
			analyzer_pump(q->an[i]);
}

static void signal_cb(uv_signal_t *sig, int signum)
{
	struct dispatch *d = sig->data;
	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d);
		return;
	}
	begin_stop(d);
}

static int start_signal(struct dispatch *d, uv_signal_t *h, int signum)
{
	int rc = uv_signal_init(d->loop, h);
	if (rc == 0) {
		h->data = d;
		rc = uv_signal_start(h, signal_cb, signum);
	}
	if (rc != 0)
		d4_log(D4_LOG_ERR, "signal-setup-failed", "error", uv_strerror(rc), NULL);
	return rc;
}

int main(int argc, char **argv)
{
	static struct dispatch disp; /* large (the read buffer): not on the stack */
	struct dispatch *d = &disp;
	uv_loop_t loop;
	bool loop_init = false;
	char err[1024];
	int rc = 1;

	int r = d4_daemon_init(&d->daemon, "d4-dispatch", help, argc, argv);
	if (r != 0) {
		d4_daemon_free(&d->daemon);
		return r > 0 ? 0 : 2;
	}
	d->argc = argc;
	d->argv = argv;
	if (dispatch_conf_load(&d->conf, &d->daemon, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-dispatch: %s\n", err);
		d4_daemon_free(&d->daemon);
		return 2;
	}
	/* frames come and go as blobs of up to a payload each: keep their pages in the heap
	 * rather than mapping and unmapping them (see d4-ingest/main.c tune_malloc) */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		goto out;
	if (uv_loop_init(&loop) != 0)
		goto out;
	loop_init = true;
	d->loop = &loop;

	struct d4_store_opts so = {0};
	if (d4_store_open(&d->store, d->conf.store, &so, err, sizeof(err)) != 0) {
		fprintf(stderr, "d4-dispatch: %s\n", err);
		d4_log(D4_LOG_ERR, "store-open-failed", "error", err, NULL);
		goto out;
	}
	if (uv_timer_init(&loop, &d->tick) != 0 || uv_timer_init(&loop, &d->stop_timer) != 0)
		goto out;
	d->tick.data = d->stop_timer.data = d;
	if (start_signal(d, &d->sigterm, SIGTERM) != 0 || start_signal(d, &d->sigint, SIGINT) != 0 ||
	    start_signal(d, &d->sighup, SIGHUP) != 0)
		goto out;
	if (queues_start(d) != 0) {
		d4_log(D4_LOG_ERR, "queues-start-failed", "error", "out of memory", NULL);
		goto out;
	}
	control_poll(d); /* paused queues stay paused: before ingest can send anything */
	(void)tap_listen(d); /* optional: `d4ctl tail` only */
	if (link_listen(d) != 0)
		goto out;
	if (uv_timer_start(&d->tick, tick_cb, 1000, 1000) != 0)
		goto out;
	counters_flush(d, true);
	char nq[12];
	unsigned n = 0;
	for (struct queue *q = d->queues; q; q = q->next)
		n++;
	snprintf(nq, sizeof(nq), "%u", n);
	d4_log(D4_LOG_NOTICE, "started", "queues", nq, NULL);

	uv_run(&loop, UV_RUN_DEFAULT);
	d4_logf(D4_LOG_NOTICE, "stopped", "%llu frames, %llu payload bytes taken in",
	        (unsigned long long)d->frames, (unsigned long long)d->bytes);
	rc = 0;
out:
	if (loop_init) {
		if (rc != 0) {
			/* a start that failed half-way: no analyzer may outlive us */
			d->byes_sent = true;
			for (struct queue *q = d->queues; q; q = q->next)
				for (unsigned i = 0; i < q->n_an; i++)
					analyzer_kill(q->an[i], "dispatch failed to start");
		}
		link_close_all(d);
		link_free_sessions(d);
		while (d->queues) {
			struct queue *q = d->queues;
			d->queues = q->next;
			queue_free(q);
		}
		uv_walk(&loop, walk_close_cb, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&loop) != 0)
			d4_log(D4_LOG_WARN, "exit", "msg", "the loop still had handles", NULL);
	}
	d4_store_close(d->store);
	dispatch_conf_free(&d->conf);
	d4_daemon_free(&d->daemon);
	return rc;
}
