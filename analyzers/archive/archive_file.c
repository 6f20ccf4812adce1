/*
 * archive_file.c — one file of the archive (see archive_file.h): unique names, durable
 * writes, compression on close.
 *
 * Compression runs in the analyzer's one thread when a file is closed: a 256 MiB file takes a
 * few seconds at zlib's default level, during which no record is read (the dispatcher keeps
 * them; nothing is lost). The plain file is never removed before its compressed copy is
 * synced and renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "archive_file.h"

#define ARC_DIR_MODE 0750
#define ARC_FILE_MODE 0640
#define ARC_MAX_SUFFIX 100000u  /* "<base>-<n>": beyond that something is wrong */
#define ARC_GZ_CHUNK (128u * 1024u)
#define ARC_FILE_BUFFER (64u * 1024u)

static void arc_log(const char *what, const char *path)
{
	fprintf(stderr, "d4-analyzer-archive: %s %s: %s\n", what, path, strerror(errno));
}

uint64_t arc_now_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int arc_mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, n + 1);
	/* fast path: the directory is usually there already */
	struct stat st;
	if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, ARC_DIR_MODE) != 0 && errno != EEXIST)
			return -1;
		buf[i] = c;
	}
	return 0;
}

static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 || errno != ENOENT;
}

/* Syncs a directory so that a created, renamed or removed entry survives a power loss. */
static int sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 1;
	if (n == 0)
		n = 1;
	if (n >= sizeof(dir))
		return -1;
	memcpy(dir, slash ? path : ".", n);
	dir[n] = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		arc_log("cannot open directory", dir);
		return -1;
	}
	int rc = fsync(fd);
	if (rc != 0)
		arc_log("cannot sync directory", dir);
	(void)close(fd);
	return rc;
}

int arc_file_open(struct arc_file *af, const char *dir, const char *base, const char *ext,
                  uint64_t first_ts, char **name_base)
{
	char path[PATH_MAX], gz[PATH_MAX], stem[PATH_MAX];
	int fd = -1;
	if (arc_mkdir_p(dir) != 0) {
		arc_log("cannot create directory", dir);
		return -1;
	}
	for (unsigned n = 0; n < ARC_MAX_SUFFIX; n++) {
		int k = n == 0 ? snprintf(stem, sizeof(stem), "%s/%s", dir, base)
		               : snprintf(stem, sizeof(stem), "%s/%s-%u", dir, base, n);
		int kp = snprintf(path, sizeof(path), "%s.%s", stem, ext);
		int kg = snprintf(gz, sizeof(gz), "%s.gz", path);
		if (k < 0 || kp < 0 || kg < 0 || (size_t)kg >= sizeof(gz)) {
			errno = ENAMETOOLONG;
			arc_log("cannot name a file in", dir);
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, ARC_FILE_MODE);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0) {
			arc_log("cannot create", path);
			return -1;
		}
		if (!path_exists(gz))
			break;
		/* its compressed form is there: the name is taken */
		(void)close(fd);
		fd = -1;
		if (unlink(path) != 0) {
			arc_log("cannot remove", path);
			return -1;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "d4-analyzer-archive: no free name for %s/%s.%s\n", dir, base, ext);
		return -1;
	}
	char *p = strdup(path);
	char *nb = name_base ? strdup(stem) : NULL;
	FILE *f = p && (nb || !name_base) ? fdopen(fd, "wb") : NULL;
	if (f == NULL) {
		fprintf(stderr, "d4-analyzer-archive: cannot open %s: out of memory\n", path);
		(void)close(fd);
		(void)unlink(path);
		free(p);
		free(nb);
		return -1;
	}
	(void)setvbuf(f, NULL, _IOFBF, ARC_FILE_BUFFER); /* on failure the default buffer: slower */
	af->f = f;
	af->path = p;
	af->first_ts = first_ts;
	af->opened_ms = arc_now_ms();
	af->size = 0;
	af->units = 0;
	af->last_byte = -1;
	if (name_base)
		*name_base = nb;
	return 0;
}

int arc_file_write(struct arc_file *af, const void *p, size_t len)
{
	if (len == 0)
		return 0;
	if (fwrite(p, 1, len, af->f) != len) {
		arc_log("cannot write", af->path);
		return -1;
	}
	af->size += len;
	af->last_byte = ((const uint8_t *)p)[len - 1];
	return 0;
}

int arc_file_flush(struct arc_file *af)
{
	if (af->f && fflush(af->f) != 0) {
		arc_log("cannot write", af->path);
		return -1;
	}
	return 0;
}

/* Compresses path into path.gz (through path.gz.tmp), then removes path. 0 or -1 (logged). */
static int gzip_file(const char *path)
{
	char tmp[PATH_MAX], gz[PATH_MAX];
	int rc = -1, in = -1, out = -1;
	gzFile z = NULL;
	uint8_t *buf = NULL;
	int kt = snprintf(tmp, sizeof(tmp), "%s.gz.tmp", path);
	int kg = snprintf(gz, sizeof(gz), "%s.gz", path);
	if (kt < 0 || kg < 0 || (size_t)kt >= sizeof(tmp)) {
		fprintf(stderr, "d4-analyzer-archive: name too long to compress %s\n", path);
		return -1;
	}
	buf = malloc(ARC_GZ_CHUNK);
	if (buf == NULL) {
		fprintf(stderr, "d4-analyzer-archive: out of memory compressing %s\n", path);
		goto out;
	}
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		arc_log("cannot read", path);
		goto out;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, ARC_FILE_MODE);
	if (out < 0) {
		arc_log("cannot create", tmp);
		goto out;
	}
	int zfd = dup(out); /* gzclose() closes its descriptor; ours stays open for fdatasync */
	if (zfd < 0) {
		arc_log("cannot dup the descriptor of", tmp);
		goto out;
	}
	z = gzdopen(zfd, "wb6");
	if (z == NULL) {
		(void)close(zfd);
		fprintf(stderr, "d4-analyzer-archive: cannot start compressing %s\n", tmp);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, ARC_GZ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arc_log("cannot read", path);
			goto out;
		}
		if (n == 0)
			break;
		if (gzwrite(z, buf, (unsigned)n) != (int)n) {
			int zerr;
			fprintf(stderr, "d4-analyzer-archive: cannot write %s: %s\n", tmp, gzerror(z, &zerr));
			goto out;
		}
	}
	int zrc = gzclose(z);
	z = NULL;
	if (zrc != Z_OK) {
		fprintf(stderr, "d4-analyzer-archive: cannot finish %s (zlib error %d)\n", tmp, zrc);
		goto out;
	}
	if (fdatasync(out) != 0) {
		arc_log("cannot sync", tmp);
		goto out;
	}
	if (close(out) != 0) {
		out = -1;
		arc_log("cannot close", tmp);
		goto out;
	}
	out = -1;
	if (rename(tmp, gz) != 0) {
		arc_log("cannot rename", tmp);
		goto out;
	}
	if (sync_dir_of(gz) != 0)
		goto out; /* both the plain file and the .gz are there: harmless */
	if (unlink(path) != 0) {
		arc_log("cannot remove", path);
		goto out;
	}
	rc = 0;
out:
	if (z)
		(void)gzclose(z);
	if (out >= 0)
		(void)close(out);
	if (in >= 0)
		(void)close(in);
	if (rc != 0 && path_exists(tmp))
		(void)unlink(tmp);
	free(buf);
	return rc;
}

int arc_file_close(struct arc_file *af, bool gzip)
{
	if (af->f == NULL)
		return 0;
	int rc = 0;
	if (fflush(af->f) != 0) {
		arc_log("cannot write", af->path);
		rc = -1;
	} else if (fdatasync(fileno(af->f)) != 0) {
		arc_log("cannot sync", af->path);
		rc = -1;
	}
	if (fclose(af->f) != 0 && rc == 0) {
		arc_log("cannot close", af->path);
		rc = -1;
	}
	af->f = NULL;
	if (rc == 0) {
		if (gzip) {
			if (gzip_file(af->path) != 0) {
				fprintf(stderr, "d4-analyzer-archive: %s stays uncompressed\n", af->path);
				rc = sync_dir_of(af->path);
			}
		} else {
			rc = sync_dir_of(af->path);
		}
	}
	free(af->path);
	af->path = NULL;
	return rc;
}

int arc_write_whole(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, ARC_FILE_MODE);
	if (fd < 0) {
		arc_log("cannot create", path);
		return -1;
	}
	const uint8_t *b = p;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, b + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arc_log("cannot write", path);
			(void)close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (fdatasync(fd) != 0) {
		arc_log("cannot sync", path);
		(void)close(fd);
		return -1;
	}
	if (close(fd) != 0) {
		arc_log("cannot close", path);
		return -1;
	}
	return 0;
}
