/*
 * run.c — `d4ctl run | start | stop | status | reload`: the master process.
 *
 * run (foreground) and start (background) prepare a data directory on first
 * use (the directory, the store, a TLS certificate, the first admin), then
 * start d4-dispatch, d4-ingest and d4-web from the directory d4ctl itself
 * lives in, each with the same -c FILE and --set options, and restart one
 * that dies, with a backoff that doubles up to 30 s (reset after a minute
 * of good health), logging why it died.
 *
 * The loop is a sigtimedwait() on blocked signals with a one-second timeout:
 * no handler runs asynchronously, so there is nothing to race with.
 *
 * Stopping (SIGTERM, SIGINT, `d4ctl stop`) goes in the order that loses
 * nothing: ingest first (it stops reading sensors and waits until dispatch
 * has acknowledged what it accepted), then dispatch (which says BYE to its
 * analyzers), then web. A process that does not exit within its grace time
 * is killed.
 *
 * <data_dir>/run/d4ctl.pid holds the master's pid (locked while it runs, so
 * two masters cannot share a data directory); <data_dir>/run/processes holds
 * "name pid" lines for `d4ctl status`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "d4_log.h"
#include "d4ctl.h"

#define MAX_CHILDREN 3
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 30000u
#define HEALTHY_MS 60000u
#define GRACE_MS 15000u

struct child {
	const char *name; /* "ingest" */
	char path[PATH_MAX];
	pid_t pid;
	uint64_t started_ms;
	uint64_t restart_at_ms; /* 0: not waiting to restart */
	unsigned backoff_ms;
	unsigned restarts;
};

struct master {
	struct d4ctl *ctl;
	struct child child[MAX_CHILDREN];
	unsigned n;
	char pidfile[D4_PATH_MAX];
	char procfile[D4_PATH_MAX];
	int pid_fd;
	bool stopping;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The directory of the running executable, where the server programs are installed too. */
static int own_dir(char *out, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	return snprintf(out, cap, "%s", exe) < (int)cap ? 0 : -1;
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* ---- first run ---- */

static int prepare(struct d4ctl *ctl)
{
	const struct d4_paths *p = &ctl->d.paths;
	char dir[D4_PATH_MAX], err[512];

	if (d4_mkdir_p(p->data_dir, 0700) != 0) {
		d4ctl_err("run", "%s: %s", p->data_dir, strerror(errno));
		return D4CTL_ERROR;
	}
	if (d4_path_join(dir, sizeof(dir), p->data_dir, "run") != 0 || d4_mkdir_p(dir, 0700) != 0) {
		d4ctl_err("run", "%s: %s", dir, strerror(errno));
		return D4CTL_ERROR;
	}
	if (d4ctl_open_store(ctl, true) != D4CTL_OK)
		return D4CTL_ERROR;

	bool has_cert = file_exists(p->tls_cert), has_key = file_exists(p->tls_key);
	if (has_cert != has_key) {
		d4ctl_err("run", "%s exists but %s does not: give both or neither",
		          has_cert ? p->tls_cert : p->tls_key, has_cert ? p->tls_key : p->tls_cert);
		return D4CTL_ERROR;
	}
	if (!has_cert) {
		snprintf(dir, sizeof(dir), "%s", p->tls_cert);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			if (d4_mkdir_p(dir, 0700) != 0) {
				d4ctl_err("run", "%s: %s", dir, strerror(errno));
				return D4CTL_ERROR;
			}
		}
		if (d4ctl_make_cert(p->tls_cert, p->tls_key, err, sizeof(err)) != 0) {
			d4ctl_err("run", "%s", err);
			return D4CTL_ERROR;
		}
		printf("d4: created a self-signed TLS certificate: %s\n", p->tls_cert);
	}
	return D4CTL_OK;
}

static int stop_at_first_user(const struct d4_user *u, void *ctx)
{
	(void)u;
	*(bool *)ctx = true;
	return 1;
}

static void child_args(const struct master *m, const struct child *c, char **argv, size_t cap,
                       const char *extra1, const char *extra2)
{
	size_t n = 0;
	argv[n++] = (char *)c->path;
	if (m->ctl->d.config_path && n + 2 < cap) {
		argv[n++] = (char *)"-c";
		argv[n++] = (char *)m->ctl->d.config_path;
	}
	for (size_t i = 0; i < m->ctl->nsets && n + 2 < cap; i++) {
		argv[n++] = (char *)"--set";
		argv[n++] = (char *)m->ctl->sets[i];
	}
	if (extra1 && n + 1 < cap)
		argv[n++] = (char *)extra1;
	if (extra2 && n + 1 < cap)
		argv[n++] = (char *)extra2;
	argv[n] = NULL;
}

/*
 * The first admin: when the store has no user, `d4-web --create-admin admin`
 * makes one and prints its password, once, on our terminal.
 */
static int first_admin(struct master *m)
{
	struct d4_txn t;
	bool any = false;
	struct child *web = NULL;

	for (unsigned i = 0; i < m->n; i++)
		if (strcmp(m->child[i].name, "web") == 0)
			web = &m->child[i];
	if (web == NULL)
		return D4CTL_OK;
	if (d4_txn_begin(m->ctl->store, &t, false) != 0)
		return D4CTL_ERROR;
	int rc = d4_user_iterate(&t, stop_at_first_user, &any);
	d4_txn_abort(&t);
	if (rc < 0)
		return D4CTL_ERROR;
	if (any)
		return D4CTL_OK;

	char *argv[64];
	child_args(m, web, argv, 64, "--create-admin", "admin");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return D4CTL_ERROR;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		d4ctl_err("run", "could not create the first admin (d4-web --create-admin)");
		return D4CTL_ERROR;
	}
	return D4CTL_OK;
}

/* ---- children ---- */

static void write_procfile(const struct master *m)
{
	char tmp[D4_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->procfile);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "master %d\n", (int)getpid());
	for (unsigned i = 0; i < m->n; i++)
		fprintf(f, "%s %d %u\n", m->child[i].name, (int)m->child[i].pid, m->child[i].restarts);
	if (fclose(f) == 0)
		rename(tmp, m->procfile);
}

static void spawn(struct master *m, struct child *c, const sigset_t *oldmask)
{
	char *argv[64];
	child_args(m, c, argv, 64, NULL, NULL);
	pid_t pid = fork();
	if (pid < 0) {
		d4_log(D4_LOG_ERR, "spawn-failed", "process", c->name, "error", strerror(errno), NULL);
		c->restart_at_ms = now_ms() + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		/* a process group of its own: Ctrl-C reaches the master only, which
		 * then stops the processes in the order that loses nothing */
		(void)setpgid(0, 0);
		execv(argv[0], argv);
		fprintf(stderr, "d4ctl: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	c->started_ms = now_ms();
	c->restart_at_ms = 0;
	char p[16];
	snprintf(p, sizeof(p), "%d", (int)pid);
	d4_log(D4_LOG_NOTICE, "process-started", "process", c->name, "pid", p, NULL);
	write_procfile(m);
}

static void describe_exit(int status, char *out, size_t cap)
{
	if (WIFSIGNALED(status))
		snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(out, cap, "exit status %d", WEXITSTATUS(status));
}

static void reap(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < m->n; i++) {
			struct child *c = &m->child[i];
			if (c->pid != pid)
				continue;
			char why[96];
			describe_exit(status, why, sizeof(why));
			c->pid = 0;
			if (m->stopping) {
				d4_log(D4_LOG_INFO, "process-stopped", "process", c->name, "status", why, NULL);
				break;
			}
			uint64_t ran = now_ms() - c->started_ms;
			if (ran >= HEALTHY_MS)
				c->backoff_ms = BACKOFF_MIN_MS;
			char in[32];
			snprintf(in, sizeof(in), "%u ms", c->backoff_ms);
			d4_log(D4_LOG_WARN, "process-died", "process", c->name, "reason", why, "restart_in",
			       in, NULL);
			c->restart_at_ms = now_ms() + c->backoff_ms;
			c->restarts++;
			c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
			write_procfile(m);
		}
	}
}

/* Stops one child: SIGTERM, wait up to GRACE_MS, then SIGKILL. */
static void stop_child(struct child *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGTERM);
	uint64_t deadline = now_ms() + GRACE_MS;
	int status;
	for (;;) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);
		if (r == c->pid || (r < 0 && errno == ECHILD))
			break;
		if (now_ms() > deadline) {
			d4_log(D4_LOG_WARN, "process-killed", "process", c->name, "reason",
			       "did not stop within 15 s", NULL);
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	c->pid = 0;
}

static int lock_pidfile(struct master *m)
{
	m->pid_fd = open(m->pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->pid_fd < 0) {
		d4ctl_err("run", "%s: %s", m->pidfile, strerror(errno));
		return D4CTL_ERROR;
	}
	if (flock(m->pid_fd, LOCK_EX | LOCK_NB) != 0) {
		d4ctl_err("run", "another d4ctl runs on this data directory (%s is locked)", m->pidfile);
		close(m->pid_fd);
		m->pid_fd = -1;
		return D4CTL_FAILED;
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(m->pid_fd, 0) != 0 || write(m->pid_fd, buf, (size_t)n) != n) {
		d4ctl_err("run", "%s: %s", m->pidfile, strerror(errno));
		return D4CTL_ERROR;
	}
	return D4CTL_OK;
}

static int setup_master(struct master *m, struct d4ctl *ctl)
{
	static const char *const order[MAX_CHILDREN] = {"dispatch", "ingest", "web"};
	char dir[PATH_MAX];

	memset(m, 0, sizeof(*m));
	m->ctl = ctl;
	m->pid_fd = -1;
	if (own_dir(dir, sizeof(dir)) != 0) {
		d4ctl_err("run", "cannot find the directory d4ctl runs from");
		return D4CTL_ERROR;
	}
	const char *wanted = d4_config_get_str(ctl->d.cfg, "ctl", "processes", "dispatch ingest web");
	for (unsigned i = 0; i < MAX_CHILDREN; i++) {
		if (strstr(wanted, order[i]) == NULL)
			continue;
		struct child *c = &m->child[m->n];
		c->name = order[i];
		if (snprintf(c->path, sizeof(c->path), "%.4000s/d4-%s", dir, order[i]) >=
		        (int)sizeof(c->path) ||
		    access(c->path, X_OK) != 0) {
			d4_log(D4_LOG_WARN, "process-missing", "process", c->name, "path", c->path, NULL);
			continue;
		}
		c->backoff_ms = BACKOFF_MIN_MS;
		m->n++;
	}
	if (m->n == 0) {
		d4ctl_err("run", "none of d4-dispatch, d4-ingest, d4-web is installed next to d4ctl (%s)",
		          dir);
		return D4CTL_ERROR;
	}
	if (d4_path_join(m->pidfile, sizeof(m->pidfile), ctl->d.paths.data_dir, "run/d4ctl.pid") != 0 ||
	    d4_path_join(m->procfile, sizeof(m->procfile), ctl->d.paths.data_dir, "run/processes") != 0)
		return D4CTL_ERROR;
	int rc = prepare(ctl);
	if (rc == D4CTL_OK)
		rc = first_admin(m);
	/* the servers open the store themselves; an LMDB handle must not cross a fork */
	d4_store_close(ctl->store);
	ctl->store = NULL;
	return rc;
}

static void print_where(const struct d4ctl *ctl)
{
	const struct d4_config *cfg = ctl->d.cfg;
	bool plain = false;
	const char *p = d4_config_get(cfg, "web", "plain_http");
	if (p && (strcmp(p, "true") == 0 || strcmp(p, "yes") == 0 || strcmp(p, "on") == 0))
		plain = true;
	printf("d4: sensors connect to %s (TLS), the web UI is %s://%s/\n"
	       "d4: data in %s; stop with Ctrl-C or `d4ctl stop`\n",
	       d4_config_get_str(cfg, "ingest", "listen", "127.0.0.1:4443"), plain ? "http" : "https",
	       d4_config_get_str(cfg, "web", "listen", "127.0.0.1:7000"), ctl->d.paths.data_dir);
	fflush(stdout);
}

/* The loop of a master whose setup is done. */
static int master_loop(struct master *m)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);

	if (lock_pidfile(m) != D4CTL_OK) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return D4CTL_FAILED;
	}
	for (unsigned i = 0; i < m->n; i++) {
		spawn(m, &m->child[i], &old);
		if (strcmp(m->child[i].name, "dispatch") == 0) {
			/* give dispatch a moment to listen, so ingest's first connect succeeds */
			for (int k = 0; k < 50 && !file_exists(m->ctl->d.paths.dispatch_socket); k++)
				usleep(20000);
		}
	}
	d4_log(D4_LOG_NOTICE, "master-started", NULL);

	while (!m->stopping) {
		struct timespec tick = {1, 0};
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			d4_log(D4_LOG_NOTICE, "master-stopping", "signal", strsignal(sig), NULL);
			m->stopping = true;
			break;
		}
		if (sig == SIGHUP) {
			for (unsigned i = 0; i < m->n; i++)
				if (strcmp(m->child[i].name, "dispatch") == 0 && m->child[i].pid > 0)
					kill(m->child[i].pid, SIGHUP);
			d4_log(D4_LOG_NOTICE, "reload", "process", "dispatch", NULL);
		}
		reap(m);
		uint64_t t = now_ms();
		for (unsigned i = 0; i < m->n; i++) {
			struct child *c = &m->child[i];
			if (c->pid == 0 && c->restart_at_ms && t >= c->restart_at_ms)
				spawn(m, c, &old);
		}
	}
	/* ingest first (it drains into dispatch), then dispatch, then web */
	static const char *const stop_order[] = {"ingest", "dispatch", "web"};
	for (unsigned k = 0; k < 3; k++)
		for (unsigned i = 0; i < m->n; i++)
			if (strcmp(m->child[i].name, stop_order[k]) == 0)
				stop_child(&m->child[i]);
	reap(m);
	unlink(m->procfile);
	unlink(m->pidfile);
	close(m->pid_fd);
	d4_log(D4_LOG_NOTICE, "master-stopped", NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return D4CTL_OK;
}

static bool wants_help(int argc, char **argv, const char *text)
{
	for (int i = 1; i < argc; i++)
		if (d4ctl_is_help(argv[i])) {
			fputs(text, stdout);
			return true;
		}
	return false;
}

int cmd_run(struct d4ctl *ctl, int argc, char **argv)
{
	struct master m;
	if (wants_help(argc, argv,
	               "usage: d4ctl [-c FILE] [--set S.K=V]... run\n"
	               "Prepares the data directory on first use (store, TLS certificate, first\n"
	               "admin) and runs d4-dispatch, d4-ingest and d4-web in the foreground,\n"
	               "restarting one that dies. Ctrl-C (or SIGTERM) stops everything.\n"))
		return D4CTL_OK;
	if (argc > 1) {
		d4ctl_err("run", "unexpected argument '%s'", argv[1]);
		return D4CTL_USAGE;
	}
	int rc = setup_master(&m, ctl);
	if (rc != D4CTL_OK)
		return rc;
	print_where(ctl);
	return master_loop(&m);
}

static int read_pid(const struct d4ctl *ctl, pid_t *pid)
{
	char path[D4_PATH_MAX], buf[32];
	if (d4_path_join(path, sizeof(path), ctl->d.paths.data_dir, "run/d4ctl.pid") != 0)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* a pid file nobody holds locked is stale */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	long v = strtol(buf, NULL, 10);
	if (v <= 1 || kill((pid_t)v, 0) != 0)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

int cmd_start(struct d4ctl *ctl, int argc, char **argv)
{
	struct master m;
	pid_t pid;
	if (wants_help(argc, argv,
	               "usage: d4ctl [-c FILE] [--set S.K=V]... start\n"
	               "As `run`, in the background; the log goes to <data_dir>/log/d4.log.\n"))
		return D4CTL_OK;
	if (read_pid(ctl, &pid) == 0) {
		d4ctl_err("start", "already running (pid %d)", (int)pid);
		return D4CTL_FAILED;
	}
	int rc = setup_master(&m, ctl);
	if (rc != D4CTL_OK)
		return rc;
	char logdir[D4_PATH_MAX], logfile[D4_PATH_MAX];
	if (d4_path_join(logdir, sizeof(logdir), ctl->d.paths.data_dir, "log") != 0 ||
	    d4_mkdir_p(logdir, 0700) != 0 ||
	    d4_path_join(logfile, sizeof(logfile), logdir, "d4.log") != 0) {
		d4ctl_err("start", "%s: %s", logdir, strerror(errno));
		return D4CTL_ERROR;
	}
	int logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		d4ctl_err("start", "%s: %s", logfile, strerror(errno));
		return D4CTL_ERROR;
	}
	print_where(ctl);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(logfd);
		return D4CTL_ERROR;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (setsid() < 0 || devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
		    dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
			_exit(D4CTL_ERROR);
		close(devnull);
		close(logfd);
		_exit(master_loop(&m));
	}
	close(logfd);
	/* wait until the master holds its pid file (or gave up) */
	for (int i = 0; i < 100; i++) {
		pid_t running;
		if (read_pid(ctl, &running) == 0) {
			printf("d4: started (master pid %d), log in %s\n", (int)running, logfile);
			return D4CTL_OK;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			d4ctl_err("start", "the master exited at once: see %s", logfile);
			return D4CTL_FAILED;
		}
		usleep(50000);
	}
	d4ctl_err("start", "the master did not come up within 5 s: see %s", logfile);
	return D4CTL_FAILED;
}

int cmd_stop(struct d4ctl *ctl, int argc, char **argv)
{
	pid_t pid;
	if (wants_help(argc, argv, "usage: d4ctl [-c FILE] [--set S.K=V]... stop\n"
	                           "Stops the master and every process it started.\n"))
		return D4CTL_OK;
	if (read_pid(ctl, &pid) != 0) {
		d4ctl_err("stop", "not running (no live master for %s)", ctl->d.paths.data_dir);
		return D4CTL_FAILED;
	}
	if (kill(pid, SIGTERM) != 0) {
		d4ctl_err("stop", "pid %d: %s", (int)pid, strerror(errno));
		return D4CTL_ERROR;
	}
	for (int i = 0; i < 600; i++) { /* 60 s: the processes have 15 s each */
		if (kill(pid, 0) != 0) {
			printf("d4: stopped\n");
			return D4CTL_OK;
		}
		usleep(100000);
	}
	d4ctl_err("stop", "pid %d still runs after 60 s", (int)pid);
	return D4CTL_FAILED;
}

int cmd_reload(struct d4ctl *ctl, int argc, char **argv)
{
	pid_t pid;
	if (wants_help(argc, argv, "usage: d4ctl [-c FILE] [--set S.K=V]... reload\n"
	                           "Makes d4-dispatch re-read the analyzer queues (SIGHUP).\n"))
		return D4CTL_OK;
	if (read_pid(ctl, &pid) != 0) {
		d4ctl_err("reload", "not running (no live master for %s)", ctl->d.paths.data_dir);
		return D4CTL_FAILED;
	}
	if (kill(pid, SIGHUP) != 0) {
		d4ctl_err("reload", "pid %d: %s", (int)pid, strerror(errno));
		return D4CTL_ERROR;
	}
	printf("d4: reload requested\n");
	return D4CTL_OK;
}

struct sensor_counts {
	uint64_t all, approved, pending, connected;
};

static int count_sensor(const struct d4_sensor *s, void *ctx)
{
	struct sensor_counts *c = ctx;
	c->all++;
	c->approved += s->state == D4_SENSOR_APPROVED;
	c->pending += s->state == D4_SENSOR_PENDING;
	return 0;
}

static int count_connected(const struct d4_sensor_stats *st, void *ctx)
{
	struct sensor_counts *c = ctx;
	static const uint8_t zero[D4_UUID_SIZE];
	if (memcmp(st->uuid, zero, sizeof(zero)) != 0 && st->active_sessions > 0)
		c->connected++;
	return 0;
}

int cmd_status(struct d4ctl *ctl, int argc, char **argv)
{
	pid_t pid;
	char path[D4_PATH_MAX], line[256];
	if (wants_help(argc, argv, "usage: d4ctl [-c FILE] [--set S.K=V]... [--json] status\n"
	                           "Whether the server runs, its processes, and its sensors.\n"))
		return D4CTL_OK;
	bool running = read_pid(ctl, &pid) == 0;
	json_t *procs = json_array();
	if (running && d4_path_join(path, sizeof(path), ctl->d.paths.data_dir, "run/processes") == 0) {
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			char name[32];
			int p = 0;
			unsigned restarts = 0;
			int got = sscanf(line, "%31s %d %u", name, &p, &restarts);
			if (got >= 2 && strcmp(name, "master") != 0)
				json_array_append_new(procs, json_pack("{s:s, s:i, s:b, s:i}", "name", name, "pid",
				                                       p, "alive", p > 0 && kill(p, 0) == 0,
				                                       "restarts", (int)restarts));
		}
		if (f)
			fclose(f);
	}
	/* sensors from the store, when there is one */
	uint64_t sensors = 0, approved = 0, pending = 0, connected = 0;
	if (file_exists(ctl->d.paths.store) && d4ctl_open_store(ctl, false) == D4CTL_OK) {
		struct d4_txn t;
		if (d4_txn_begin(ctl->store, &t, false) == 0) {
			struct sensor_counts sc = {0};
			if (d4_sensor_iterate(&t, count_sensor, &sc) == 0 &&
			    d4_stats_iterate(&t, count_connected, &sc) == 0) {
				sensors = sc.all;
				approved = sc.approved;
				pending = sc.pending;
				connected = sc.connected;
			}
			d4_txn_abort(&t);
		}
	}
	if (ctl->json) {
		json_t *j = json_pack("{s:b, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:s}", "running", running,
		                      "master_pid", running ? json_integer(pid) : json_null(), "processes",
		                      procs, "sensors", "registered", (json_int_t)sensors, "approved",
		                      (json_int_t)approved, "pending", (json_int_t)pending, "connected",
		                      (json_int_t)connected, "data_dir", ctl->d.paths.data_dir);
		int rc = d4ctl_json_print(j);
		return rc != D4CTL_OK ? rc : running ? D4CTL_OK : D4CTL_FAILED;
	}
	if (running)
		printf("running: master pid %d, data in %s\n", (int)pid, ctl->d.paths.data_dir);
	else
		printf("not running (data in %s)\n", ctl->d.paths.data_dir);
	size_t i;
	json_t *p;
	json_array_foreach(procs, i, p)
	{
		printf("  %-9s pid %-7" JSON_INTEGER_FORMAT " %s, %" JSON_INTEGER_FORMAT " restarts\n",
		       json_string_value(json_object_get(p, "name")),
		       json_integer_value(json_object_get(p, "pid")),
		       json_is_true(json_object_get(p, "alive")) ? "up" : "DOWN",
		       json_integer_value(json_object_get(p, "restarts")));
	}
	json_decref(procs);
	printf("sensors: %" PRIu64 " registered (%" PRIu64 " approved, %" PRIu64 " pending), %" PRIu64
	       " connected\n",
	       sensors, approved, pending, connected);
	return running ? D4CTL_OK : D4CTL_FAILED;
}
