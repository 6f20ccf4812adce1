/*
 * spool.c — an analyzer instance's disk spool: the records that did not fit
 * in its queue's memory, in segment files, read back in the order written.
 *
 * Segments rather than one file: a segment is deleted as soon as it is read
 * through, so the disk gives space back while a long backlog drains, without
 * rewriting anything, and at most two files are open per spool (the one
 * being read, the one being written). queue.c sizes segments from the
 * queue's spool limit (an eighth of it, between 64 KiB and 64 MiB), so a full
 * spool is a handful of files.
 *
 * Layout (docs/dispatch.md): <data_dir>/spool/<queue>/<instance>/<num>.seg,
 * num a 16-digit hex counter unique within the dispatch process, so a queue
 * removed and added again by a reload can drain its old spool beside the new
 * one without a clash. A record is u32 length (of the frame), u64 session id,
 * the D4 frame (62-byte header + payload), little-endian. The queue keeps in
 * memory one item per record, with its session and its length, so reading
 * back needs no index, and a record whose length or session does not match
 * its item is an error (reported, counted and dropped), never a guess.
 *
 * Sizes are ours, not the files': a write that fails half-way leaves a torn
 * tail that is never read, and seals the segment (the next record begins a
 * new one).
 *
 * No fsync: a spooled frame is not acknowledged to ingest before its
 * analyzer acknowledges it (docs/dispatch.md, "Disk spool"), so the spool
 * never holds the only copy, and what a previous process left is deleted at
 * start (ingest sends those frames again).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "d4_log.h"
#include "dispatch.h"

void spool_init(struct spool *sp, const char *dir, uint64_t seg_max, uint64_t *next_num)
{
	memset(sp, 0, sizeof(*sp));
	snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
	sp->seg_max = seg_max;
	sp->next_num = next_num;
	sp->wfd = -1;
	sp->rfd = -1;
}

static void seg_path(const struct spool *sp, uint64_t num, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%016" PRIx64 ".seg", sp->dir, num);
}

static void close_fd(int *fd)
{
	if (*fd >= 0 && close(*fd) != 0)
		d4_logf(D4_LOG_WARN, "spool-close-failed", "%s", strerror(errno));
	*fd = -1;
}

static void seg_unlink(const struct spool *sp, uint64_t num)
{
	char path[SPOOL_DIR_MAX + 32];
	seg_path(sp, num, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		d4_logf(D4_LOG_WARN, "spool-unlink-failed", "%s: %s", path, strerror(errno));
}

/* Every record is read: the files go. */
static void drop_files(struct spool *sp)
{
	close_fd(&sp->rfd);
	close_fd(&sp->wfd);
	for (unsigned i = 0; i < sp->n_segs; i++)
		seg_unlink(sp, sp->segs[i].num);
	sp->n_segs = 0;
	sp->roff = 0;
}

/* After a record was consumed: deletes the segments read through. */
static void advance(struct spool *sp)
{
	if (sp->records == 0) {
		drop_files(sp);
		return;
	}
	while (sp->n_segs > 1 && sp->roff >= sp->segs[0].size) {
		close_fd(&sp->rfd);
		seg_unlink(sp, sp->segs[0].num);
		memmove(sp->segs, sp->segs + 1, (sp->n_segs - 1) * sizeof(*sp->segs));
		sp->n_segs--;
		sp->roff = 0;
	}
}

static int begin_segment(struct spool *sp, char *err, size_t errlen)
{
	char path[SPOOL_DIR_MAX + 32];
	int rc;

	if (sp->n_segs == sp->cap_segs) {
		unsigned cap = sp->cap_segs ? sp->cap_segs * 2 : 8;
		struct spool_seg *s = realloc(sp->segs, cap * sizeof(*s));
		if (s == NULL) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		sp->segs = s;
		sp->cap_segs = cap;
	}
	if (d4_mkdir_p(sp->dir, 0700) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", sp->dir, strerror(errno));
		return rc;
	}
	uint64_t num = (*sp->next_num)++;
	seg_path(sp, num, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return rc;
	}
	sp->segs[sp->n_segs++] = (struct spool_seg){num, 0};
	sp->wfd = fd;
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

int spool_append(struct spool *sp, uint64_t session, const struct blob *b, char *err,
                 size_t errlen)
{
	uint8_t head[SPOOL_RECORD_HEAD];
	int rc;

	if (b->len > UINT32_MAX) {
		snprintf(err, errlen, "a frame of %zu bytes does not fit a spool record", b->len);
		return -EFBIG;
	}
	if (sp->wfd >= 0 && sp->segs[sp->n_segs - 1].size >= sp->seg_max)
		close_fd(&sp->wfd);
	if (sp->wfd < 0 && (rc = begin_segment(sp, err, errlen)) != 0)
		return rc;
	put_le32(head, (uint32_t)b->len);
	put_le64(head + 4, session);
	struct iovec iov[2] = {{head, sizeof(head)}, {(void *)b->data, b->len}};
	struct iovec *v = iov;
	int n = 2;
	size_t total = sizeof(head) + b->len;
	while (n > 0) {
		ssize_t w = writev(sp->wfd, v, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			snprintf(err, errlen, "write to %s: %s", sp->dir, strerror(-rc));
			close_fd(&sp->wfd); /* sealed at its last whole record */
			return rc;
		}
		while (n > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	sp->segs[sp->n_segs - 1].size += total;
	sp->records++;
	sp->bytes += total;
	return 0;
}

/* Reads exactly len bytes at off; 0 or a negative errno (-EIO at the end of the file). */
static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = pread(fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

void spool_skip(struct spool *sp, uint32_t len)
{
	uint64_t total = SPOOL_RECORD_HEAD + (uint64_t)len;
	if (sp->records == 0)
		return;
	sp->roff += total;
	sp->records--;
	sp->bytes -= total < sp->bytes ? total : sp->bytes;
	advance(sp);
}

int spool_read(struct spool *sp, uint64_t session, uint32_t len, struct blob **out, char *err,
               size_t errlen)
{
	char path[SPOOL_DIR_MAX + 32];
	uint8_t head[SPOOL_RECORD_HEAD];
	struct blob *b = NULL;
	int rc;

	*out = NULL;
	if (sp->records == 0 || sp->n_segs == 0) {
		snprintf(err, errlen, "the spool is empty");
		return -ENODATA;
	}
	seg_path(sp, sp->segs[0].num, path, sizeof(path));
	if (sp->roff + SPOOL_RECORD_HEAD + len > sp->segs[0].size) {
		snprintf(err, errlen, "%s: record past the end of the segment", path);
		rc = -EIO;
		goto out;
	}
	if (sp->rfd < 0 && (sp->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if ((rc = pread_full(sp->rfd, head, sizeof(head), sp->roff)) != 0) {
		snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
		goto out;
	}
	if (get_le32(head) != len || get_le64(head + 4) != session) {
		snprintf(err, errlen, "%s at %" PRIu64 ": record of session %016" PRIx64 ", %" PRIu32
		         " bytes, where session %016" PRIx64 ", %" PRIu32 " bytes was expected", path,
		         sp->roff, get_le64(head + 4), get_le32(head), session, len);
		rc = -EIO;
		goto out;
	}
	if ((b = blob_alloc(len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pread_full(sp->rfd, b->data, len, sp->roff + SPOOL_RECORD_HEAD)) != 0) {
		snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
		blob_unref(b);
		b = NULL;
		goto out;
	}
	*out = b;
out:
	spool_skip(sp, len); /* consumed either way: the next record stays readable */
	return rc;
}

void spool_clear(struct spool *sp)
{
	drop_files(sp);
	sp->records = 0;
	sp->bytes = 0;
	free(sp->segs);
	sp->segs = NULL;
	sp->cap_segs = 0;
	if (rmdir(sp->dir) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
		d4_logf(D4_LOG_WARN, "spool-rmdir-failed", "%s: %s", sp->dir, strerror(errno));
}

/* dir/name into buf; false (and logged) when it does not fit. */
static bool join(char *buf, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap) {
		d4_logf(D4_LOG_WARN, "spool-stale", "%s/%s: path too long", dir, name);
		return false;
	}
	return true;
}

/* Removes the *.seg files of one directory, then the directory; the number removed. */
static unsigned remove_segments(const char *dir)
{
	char path[D4_PATH_MAX + 300];
	unsigned n = 0;
	DIR *dh = opendir(dir);
	if (dh == NULL) {
		if (errno != ENOENT && errno != ENOTDIR)
			d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", dir, strerror(errno));
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(dh)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".seg") != 0)
			continue;
		if (!join(path, sizeof(path), dir, e->d_name))
			continue;
		if (unlink(path) == 0)
			n++;
		else
			d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", path, strerror(errno));
	}
	if (closedir(dh) != 0)
		d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", dir, strerror(errno));
	if (rmdir(dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
		d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", dir, strerror(errno));
	return n;
}

/* The .seg files of <root>/<queue>/<instance>/: only our own layout is touched. */
void spool_remove_stale(const char *root)
{
	char qdir[D4_PATH_MAX + 300], idir[D4_PATH_MAX + 600];
	unsigned n = 0;
	DIR *rd = opendir(root);
	if (rd == NULL) {
		if (errno != ENOENT)
			d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", root, strerror(errno));
		return;
	}
	struct dirent *qe;
	while ((qe = readdir(rd)) != NULL) {
		if (qe->d_name[0] == '.')
			continue;
		if (!join(qdir, sizeof(qdir), root, qe->d_name))
			continue;
		DIR *qd = opendir(qdir);
		if (qd == NULL)
			continue; /* not a directory: not ours */
		struct dirent *ie;
		while ((ie = readdir(qd)) != NULL) {
			if (ie->d_name[0] == '.')
				continue;
			if (join(idir, sizeof(idir), qdir, ie->d_name))
				n += remove_segments(idir);
		}
		if (closedir(qd) != 0)
			d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", qdir, strerror(errno));
		if (rmdir(qdir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
			d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", qdir, strerror(errno));
	}
	if (closedir(rd) != 0)
		d4_logf(D4_LOG_WARN, "spool-stale", "%s: %s", root, strerror(errno));
	if (n > 0)
		d4_logf(D4_LOG_NOTICE, "spool-stale", "%u segment files of a previous run removed "
		        "(ingest sends their frames again)", n);
}
