/*
 * resolver.c — getaddrinfo() in a detached thread, result through a pipe.
 *
 * One resolution at a time: the sender only asks again after it collected
 * the previous answer. The pipe carries one pointer per job (PIPE_BUF makes
 * that write atomic). If the loop has closed the pipe when the thread
 * finishes, the write fails (SIGPIPE is ignored by main) and the thread frees
 * its own job.
 */
#include "resolver.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct resolve_job {
	char *host;
	char *port;
	int wr;
	int err;
	struct addrinfo *res;
};

static void job_free(struct resolve_job *j)
{
	if (j == NULL)
		return;
	if (j->res != NULL)
		freeaddrinfo(j->res);
	free(j->host);
	free(j->port);
	free(j);
}

static void hints_init(struct addrinfo *h, int flags)
{
	memset(h, 0, sizeof(*h));
	h->ai_family = AF_UNSPEC;
	h->ai_socktype = SOCK_STREAM;
	h->ai_protocol = IPPROTO_TCP;
	h->ai_flags = flags;
}

static void *resolve_thread(void *arg)
{
	struct resolve_job *j = arg;
	struct addrinfo hints;
	ssize_t n;
	int wr = j->wr;

	hints_init(&hints, AI_ADDRCONFIG);
	j->err = getaddrinfo(j->host, j->port, &hints, &j->res);
	if (j->err != 0)
		j->res = NULL;
	do
		n = write(wr, &j, sizeof(j));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(j))
		job_free(j); /* nobody is listening any more */
	(void)close(wr);
	return NULL;
}

static int set_flags(int fd, int fdflags, int flflags)
{
	int fl = fcntl(fd, F_GETFL);
	int fdf = fcntl(fd, F_GETFD);

	if (fl < 0 || fdf < 0)
		return -1;
	if (fcntl(fd, F_SETFL, fl | flflags) != 0 || fcntl(fd, F_SETFD, fdf | fdflags) != 0)
		return -1;
	return 0;
}

int resolver_init(struct resolver *r)
{
	int p[2];

	r->rd = r->wr = -1;
	r->busy = false;
	if (pipe(p) != 0)
		return -1;
	r->rd = p[0];
	r->wr = p[1];
	if (set_flags(r->rd, FD_CLOEXEC, O_NONBLOCK) != 0 || set_flags(r->wr, FD_CLOEXEC, 0) != 0) {
		int e = errno;
		resolver_free(r);
		errno = e;
		return -1;
	}
	return 0;
}

void resolver_free(struct resolver *r)
{
	if (r->rd >= 0)
		(void)close(r->rd);
	if (r->wr >= 0)
		(void)close(r->wr);
	r->rd = r->wr = -1;
	r->busy = false;
}

int resolver_start(struct resolver *r, const char *host, const char *port,
                   struct addrinfo **res, int *gai_err)
{
	struct addrinfo hints;
	struct resolve_job *j = NULL;
	pthread_attr_t attr;
	pthread_t tid;
	int e;

	*res = NULL;
	*gai_err = 0;
	hints_init(&hints, AI_NUMERICHOST | AI_NUMERICSERV);
	e = getaddrinfo(host, port, &hints, res);
	if (e == 0)
		return 1;
	*res = NULL;
	if (e != EAI_NONAME) {
		*gai_err = e;
		return 1;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	j->wr = -1;
	j->host = strdup(host);
	j->port = strdup(port);
	if (j->host == NULL || j->port == NULL)
		goto err;
	j->wr = fcntl(r->wr, F_DUPFD_CLOEXEC, 0);
	if (j->wr < 0)
		goto err;
	if ((e = pthread_attr_init(&attr)) != 0) {
		errno = e;
		goto err;
	}
	e = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (e == 0)
		e = pthread_create(&tid, &attr, resolve_thread, j);
	(void)pthread_attr_destroy(&attr);
	if (e != 0) {
		errno = e;
		goto err;
	}
	r->busy = true;
	return 0;
err:
	e = errno;
	if (j->wr >= 0)
		(void)close(j->wr);
	job_free(j);
	errno = e;
	return -1;
}

int resolver_collect(struct resolver *r, struct addrinfo **res, int *gai_err)
{
	struct resolve_job *j;
	ssize_t n;

	*res = NULL;
	*gai_err = 0;
	do
		n = read(r->rd, &j, sizeof(j));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(j))
		return 0;
	r->busy = false;
	*res = j->res;
	*gai_err = j->err;
	j->res = NULL;
	job_free(j);
	return 1;
}
