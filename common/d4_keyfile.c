/*
 * d4_keyfile.c — an HMAC key from a file (see d4_keyfile.h).
 *
 * The read goes through a buffer one byte larger than the caller's limit
 * plus room for a line ending, so an oversize key is told apart from one
 * that fits; the buffer is wiped before returning.
 */
#include "d4_keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

int d4_key_file_read(const char *path, uint8_t *out, size_t cap, size_t *len, bool *group_readable,
                     char *err, size_t errlen)
{
	uint8_t buf[4096 + 3];
	size_t n = 0;
	int rc = -1;
	struct stat st;

	if (cap > sizeof(buf) - 3)
		cap = sizeof(buf) - 3;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
		         errno == ENOENT ? "no such file (the sensor's HMAC key)" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (group_readable)
		*group_readable = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf))
			break;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0) {
		snprintf(err, errlen, "%s: the key file is empty", path);
		goto out;
	}
	if (n > cap) {
		snprintf(err, errlen, "%s: the key is longer than %zu bytes", path, cap);
		goto out;
	}
	memcpy(out, buf, n);
	*len = n;
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}
