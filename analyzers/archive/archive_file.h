/*
 * archive_file.h — one file of the archive: claimed under a unique name, written, made
 * durable, closed and compressed.
 *
 * A file's name is claimed with O_CREAT|O_EXCL, so two sessions (or a restarted analyzer
 * replaying what it had not acknowledged) never write into one file: when "<base>.<ext>" or
 * its compressed "<base>.<ext>.gz" exists, the next free "<base>-<n>.<ext>" (n = 1, 2, ...)
 * is taken. Closing flushes, fdatasync()s and closes the file, then (gzip) compresses it in
 * process into "<name>.gz.tmp", syncs that, renames it to "<name>.gz" and only then unlinks
 * the plain file: at every moment one of the two holds the data, and a failed compression
 * leaves the plain file in place (logged, not fatal). Directories are created 0750, files
 * 0640 (less what the umask removes).
 */
#ifndef ARCHIVE_FILE_H
#define ARCHIVE_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct arc_file {
	FILE *f;          /* NULL while no file is open */
	char *path;       /* the plain file's path (malloc'd) */
	uint64_t first_ts; /* D4 timestamp of the first frame written: the name's time */
	uint64_t opened_ms; /* monotonic clock at open, for the wall-clock rotation */
	uint64_t size;    /* bytes written */
	uint64_t units;   /* pcap records / frames written */
	int last_byte;    /* the last byte written, -1 before the first */
};

/* Creates dir and its missing parents (mode 0750). 0, or -1 with errno set. */
int arc_mkdir_p(const char *dir);

/*
 * Opens a new file "<dir>/<base>[-n].<ext>" (dir is created). On success *name_base receives
 * the malloc'd "<dir>/<base>[-n]" (for a sibling such as the meta header's ".json"; may be
 * NULL). 0, or -1 (logged).
 */
int arc_file_open(struct arc_file *af, const char *dir, const char *base, const char *ext,
                  uint64_t first_ts, char **name_base);

/* Writes len bytes. 0, or -1 (logged): a write error is fatal to the analyzer. */
int arc_file_write(struct arc_file *af, const void *p, size_t len);

/* Hands the buffered bytes to the kernel (fflush). 0 or -1 (logged). */
int arc_file_flush(struct arc_file *af);

/*
 * Flushes, syncs and closes the file, then compresses it when gzip is set. 0, or -1 (logged)
 * when the data could not be made durable; a failed compression only logs. No-op when closed.
 */
int arc_file_close(struct arc_file *af, bool gzip);

/* Writes a small file in one go under a fresh name (O_EXCL), synced. 0 or -1 (logged). */
int arc_write_whole(const char *path, const void *p, size_t len);

/* Monotonic clock in milliseconds. */
uint64_t arc_now_ms(void);

#endif
