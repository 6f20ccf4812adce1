/*
 * clientconf.c — reading and checking the client's settings.
 *
 * Each setting is resolved the same way: the flag if given, else the file in
 * the config directory if present, else a default (or an error when there is
 * no sensible default: key, type). Values read from files are trimmed of
 * surrounding blanks and of the trailing newline an editor or `echo` leaves;
 * the key alone keeps its inner and leading bytes exactly and loses only the
 * trailing CR/LF, because the HMAC is computed over the raw key bytes (as
 * d4-core's server and the Go client do).
 *
 * Facts carried over from the reference clients (D4-project/d4-core client/,
 * D4-project/d4-goclient): snaplen defaults to 4096; version must be 1; a
 * missing uuid is generated as v4 and written back to the directory (the C
 * client writes it with mode 0600); type 254 needs metaheader.json, one JSON
 * object with a string "type", at most 100000 bytes; destination is
 * "stdout" or "host:port", IPv6 as "[addr]:port"; rootCA.crt verifies the
 * server's certificate.
 */
#include "clientconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "d4_keyfile.h"
#include "d4_log.h"
#include "d4_uuid.h"

#define SMALL_FILE_MAX 4096u /* uuid, key, snaplen, ...: one short value each */

/* Where a value came from, for error messages: "--snaplen" or "conf.d/snaplen". */
struct origin {
	char text[4096 + 64];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Trims blanks at both ends in place; returns the new length. */
static size_t trim(char *s, size_t len)
{
	size_t start = 0;

	while (len > 0 && is_blank(s[len - 1]))
		len--;
	while (start < len && is_blank(s[start]))
		start++;
	if (start > 0)
		memmove(s, s + start, len - start);
	len -= start;
	s[len] = '\0';
	return len;
}

/*
 * Reads a whole file of at most `max` bytes into a NUL-terminated buffer.
 * 1 when read, 0 when the file does not exist, -1 on error (err set).
 */
static int read_file(const char *path, size_t max, char **out, size_t *outlen, char *err,
                     size_t errlen)
{
	int fd = -1;
	int rc = -1;
	char *buf = NULL;
	size_t len = 0;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(max + 2);
	if (buf == NULL) {
		set_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			set_err(err, errlen, "%s: larger than %zu bytes", path, max);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 1;
out:
	free(buf);
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

static int conf_path(const struct client_conf *c, const char *name, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/%s", c->confdir, name);

	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/*
 * One text setting: the flag when given, else the trimmed content of the file
 * `name` in the config directory. *value is NULL when neither exists (an empty
 * file counts as absent, as the Go client creates empty files).
 * 0 or -1 (err set).
 */
static int get_setting(const struct client_conf *c, const char *flag_value, const char *flag,
                       const char *name, char **value, struct origin *org, char *err,
                       size_t errlen)
{
	char path[4096];
	size_t len;
	int rc;

	*value = NULL;
	if (flag_value != NULL) {
		(void)snprintf(org->text, sizeof(org->text), "--%s", flag);
		*value = xstrdup(flag_value);
		if (*value == NULL) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	(void)snprintf(org->text, sizeof(org->text), "default");
	if (c->confdir == NULL)
		return 0;
	if (conf_path(c, name, path, sizeof(path)) != 0) {
		set_err(err, errlen, "%s/%s: path too long", c->confdir, name);
		return -1;
	}
	rc = read_file(path, SMALL_FILE_MAX, value, &len, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return 0;
	(void)snprintf(org->text, sizeof(org->text), "%s", path);
	if (trim(*value, len) == 0) {
		free(*value);
		*value = NULL;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

int clientconf_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1024ull;
		end++;
		break;
	case 'm': case 'M':
		mult = 1024ull * 1024;
		end++;
		break;
	case 'g': case 'G':
		mult = 1024ull * 1024 * 1024;
		end++;
		break;
	default:
		return -1;
	}
	if (mult > 1 && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int clientconf_parse_duration_ms(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int clientconf_check_metaheader(const char *json, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *root;
	json_t *type;
	int rc = -1;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		set_err(why, whylen, "not valid JSON (line %d column %d: %s)", jerr.line,
		        jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		set_err(why, whylen, "must be one JSON object");
		goto out;
	}
	type = json_object_get(root, "type");
	if (type == NULL) {
		set_err(why, whylen, "has no \"type\" member (the meta-type, e.g. \"ja3-jl\")");
		goto out;
	}
	if (!json_is_string(type) || json_string_length(type) == 0) {
		set_err(why, whylen, "\"type\" must be a non-empty string");
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Writes the uuid to DIR/uuid atomically (temporary file, then rename), mode 0600. */
static int write_uuid(const struct client_conf *c, const char *text, char *err, size_t errlen)
{
	char tmp[4096];
	char path[4096];
	int fd = -1;
	int rc = -1;
	size_t len = strlen(text);
	size_t off = 0;
	bool created = false;

	if (conf_path(c, ".uuid.XXXXXX", tmp, sizeof(tmp)) != 0 ||
	    conf_path(c, "uuid", path, sizeof(path)) != 0) {
		set_err(err, errlen, "%s: path too long", c->confdir);
		return -1;
	}
	fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0) {
		set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	created = true;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	created = false;
	rc = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	if (created)
		(void)unlink(tmp);
	return rc;
}

static int load_uuid(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen)
{
	struct origin org;
	char *v = NULL;
	char text[D4_UUID_STR_LEN + 2];
	int rc = -1;

	if (get_setting(c, o->uuid, "uuid", "uuid", &v, &org, err, errlen) != 0)
		return -1;
	if (v != NULL) {
		if (d4_uuid_parse_str(v, c->uuid) != 0) {
			set_err(err, errlen, "%s: not a UUID: \"%s\"", org.text, v);
			goto out;
		}
		if (!d4_uuid_is_v4(c->uuid)) {
			set_err(err, errlen,
			        "%s: %s is not a version 4 UUID (servers refuse it); "
			        "remove the file to have one generated",
			        org.text, v);
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (d4_uuid_generate_v4(c->uuid) != 0) {
		set_err(err, errlen, "cannot generate a uuid (no system randomness)");
		goto out;
	}
	d4_uuid_format(c->uuid, text);
	if (c->confdir == NULL) {
		d4_log(D4_LOG_WARN, "uuid_ephemeral", "uuid", text, "hint",
		       "pass --uuid or -c DIR to keep the sensor identity across runs", NULL);
		rc = 0;
		goto out;
	}
	(void)strcat(text, "\n");
	if (write_uuid(c, text, err, errlen) != 0)
		goto out;
	text[D4_UUID_STR_LEN] = '\0';
	d4_log(D4_LOG_NOTICE, "uuid_generated", "uuid", text, "dir", c->confdir, NULL);
	rc = 0;
out:
	free(v);
	return rc;
}

/* The key: --key as given, else --key-file or DIR/key, raw bytes minus trailing CR/LF. */
static int load_key(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen)
{
	char path[4096];
	const char *p = NULL;
	size_t len = 0;
	bool loose = false;

	if (o->key != NULL) {
		len = strlen(o->key);
		c->key = malloc(len + 1);
		if (c->key == NULL) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		memcpy(c->key, o->key, len + 1);
		c->key_len = len;
		p = "--key";
		goto check;
	}
	if (o->key_file != NULL) {
		p = o->key_file;
	} else if (c->confdir != NULL) {
		if (conf_path(c, "key", path, sizeof(path)) != 0) {
			set_err(err, errlen, "%s/key: path too long", c->confdir);
			return -1;
		}
		p = path;
	} else {
		set_err(err, errlen, "no HMAC key: give -c DIR (with a key file), --key-file or --key");
		return -1;
	}
	c->key = malloc(SMALL_FILE_MAX);
	if (c->key == NULL) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (d4_key_file_read(p, c->key, SMALL_FILE_MAX, &c->key_len, &loose, err, errlen) != 0)
		return -1;
	if (loose)
		d4_log(D4_LOG_WARN, "key_file_permissions", "file", p, "hint",
		       "readable by group or others; chmod 600 it", NULL);
check:
	if (c->key_len == 0) {
		set_err(err, errlen, "%s: the HMAC key is empty", p);
		return -1;
	}
	return 0;
}

static int load_number(struct client_conf *c, const char *flag_value, const char *name,
                       uint64_t min, uint64_t max, bool required, uint64_t def, uint64_t *out,
                       char *err, size_t errlen)
{
	struct origin org;
	char *v = NULL;
	int rc = -1;

	if (get_setting(c, flag_value, name, name, &v, &org, err, errlen) != 0)
		return -1;
	if (v == NULL) {
		if (required) {
			set_err(err, errlen, "no %s: give --%s%s", name, name,
			        c->confdir != NULL ? " or write it in the config directory" : "");
			return -1;
		}
		*out = def;
		return 0;
	}
	if (parse_u64(v, UINT64_MAX, out) != 0 || *out < min || *out > max) {
		set_err(err, errlen, "%s: \"%s\" is not a number in %" PRIu64 "..%" PRIu64, org.text,
		        v, min, max);
		goto out;
	}
	rc = 0;
out:
	free(v);
	return rc;
}

static int load_type(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen)
{
	uint64_t v;

	if (load_number(c, o->type, "type", 1, 255, true, 0, &v, err, errlen) != 0)
		return -1;
	if (v == D4_TYPE_META_HEADER) {
		set_err(err, errlen,
		        "type 2 is the meta header itself: use type 254 with a metaheader.json");
		return -1;
	}
	c->type = (uint8_t)v;
	if (!d4_type_is_known(c->type)) {
		char t[8];
		(void)snprintf(t, sizeof(t), "%u", c->type);
		d4_log(D4_LOG_WARN, "type_unknown", "type", t, "hint",
		       "not a type of the D4 protocol v1; servers may refuse it", NULL);
	}
	return 0;
}

static int load_source(struct client_conf *c, const struct client_opts *o, char *err,
                       size_t errlen)
{
	struct origin org;
	char *v = NULL;
	const char *arg;
	int rc = -1;

	if (get_setting(c, o->source, "source", "source", &v, &org, err, errlen) != 0)
		return -1;
	if (v == NULL || strcmp(v, "stdin") == 0 || strcmp(v, "-") == 0) {
		c->src_kind = SRC_STDIN;
		arg = "stdin";
	} else if (strncmp(v, "pcap:", 5) == 0) {
		c->src_kind = SRC_PCAP;
		arg = v + 5;
#ifndef D4_HAVE_PCAP
		set_err(err, errlen, "%s: this d4-client was built without libpcap", org.text);
		goto out;
#endif
		if (*arg == '\0') {
			set_err(err, errlen, "%s: \"pcap:\" needs an interface (pcap:eth0)", org.text);
			goto out;
		}
	} else if (strncmp(v, "file:", 5) == 0) {
		c->src_kind = SRC_FILE;
		arg = v + 5;
	} else if (strcmp(v, "d4server") == 0 || strcmp(v, "pcap") == 0) {
		set_err(err, errlen,
		        "%s: source \"%s\" is not supported (use stdin, a file path or pcap:IFACE)",
		        org.text, v);
		goto out;
	} else {
		c->src_kind = SRC_FILE;
		arg = v;
	}
	if (*arg == '\0') {
		set_err(err, errlen, "%s: empty file name", org.text);
		goto out;
	}
	c->src_arg = xstrdup(arg);
	if (c->src_arg == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(v);
	return rc;
}

static int load_destination(struct client_conf *c, const struct client_opts *o, char *err,
                            size_t errlen)
{
	struct origin org;
	char *v = NULL;
	char *host;
	char *port;
	uint64_t pnum;
	int rc = -1;

	if (get_setting(c, o->destination, "destination", "destination", &v, &org, err, errlen) !=
	    0)
		return -1;
	if (v == NULL || strcmp(v, "stdout") == 0 || strcmp(v, "-") == 0) {
		c->dst_kind = DST_STDOUT;
		rc = 0;
		goto out;
	}
	c->dst_kind = DST_NET;
	if (v[0] == '[') {
		char *close = strchr(v, ']');
		if (close == NULL || close[1] != ':') {
			set_err(err, errlen, "%s: \"%s\": IPv6 destinations are written [addr]:port",
			        org.text, v);
			goto out;
		}
		*close = '\0';
		host = v + 1;
		port = close + 2;
	} else {
		char *colon = strrchr(v, ':');
		if (colon == NULL || strchr(v, ':') != colon) {
			set_err(err, errlen,
			        "%s: \"%s\" is not stdout or host:port (IPv6: [addr]:port)", org.text,
			        v);
			goto out;
		}
		*colon = '\0';
		host = v;
		port = colon + 1;
	}
	if (*host == '\0' || parse_u64(port, 65535, &pnum) != 0 || pnum == 0) {
		set_err(err, errlen, "%s: bad host or port in the destination", org.text);
		goto out;
	}
	c->host = xstrdup(host);
	c->port = xstrdup(port);
	if (c->host == NULL || c->port == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(v);
	return rc;
}

static int load_metaheader(struct client_conf *c, const struct client_opts *o, char *err,
                           size_t errlen)
{
	char path[4096];
	const char *p;
	char why[256];
	size_t len;
	int rc;

	if (c->type != D4_TYPE_META_DEFINED) {
		if (o->metaheader != NULL) {
			set_err(err, errlen, "--metaheader: a meta header is only sent with type 254");
			return -1;
		}
		return 0;
	}
	if (o->metaheader != NULL) {
		p = o->metaheader;
	} else if (c->confdir != NULL) {
		if (conf_path(c, "metaheader.json", path, sizeof(path)) != 0) {
			set_err(err, errlen, "%s/metaheader.json: path too long", c->confdir);
			return -1;
		}
		p = path;
	} else {
		set_err(err, errlen, "type 254 needs a meta header: --metaheader FILE");
		return -1;
	}
	rc = read_file(p, CLIENT_METAHEADER_MAX, &c->metaheader, &len, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		set_err(err, errlen, "%s: no such file (type 254 needs a meta header)", p);
		return -1;
	}
	len = trim(c->metaheader, len);
	c->metaheader_len = len;
	if (clientconf_check_metaheader(c->metaheader, len, why, sizeof(why)) != 0) {
		set_err(err, errlen, "%s: bad meta header: %s", p, why);
		return -1;
	}
	return 0;
}

static int dup_opt(char **dst, const char *src, char *err, size_t errlen)
{
	if (src == NULL)
		return 0;
	*dst = xstrdup(src);
	if (*dst == NULL) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_tls(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;

	c->tls = !o->no_tls;
	c->insecure = o->insecure;
	if (dup_opt(&c->ca_file, o->ca, err, errlen) != 0 ||
	    dup_opt(&c->cert_file, o->cert, err, errlen) != 0 ||
	    dup_opt(&c->cert_key_file, o->cert_key, err, errlen) != 0)
		return -1;
	if (c->ca_file == NULL && c->confdir != NULL) {
		if (conf_path(c, "rootCA.crt", path, sizeof(path)) != 0) {
			set_err(err, errlen, "%s/rootCA.crt: path too long", c->confdir);
			return -1;
		}
		if (stat(path, &st) == 0 && dup_opt(&c->ca_file, path, err, errlen) != 0)
			return -1;
	}
	if ((c->cert_file == NULL) != (c->cert_key_file == NULL)) {
		set_err(err, errlen, "--cert and --cert-key go together");
		return -1;
	}
	if (c->dst_kind == DST_STDOUT) {
		if (o->ca != NULL || o->insecure || o->no_tls || c->cert_file != NULL)
			d4_log(D4_LOG_WARN, "tls_options_ignored", "reason",
			       "the destination is stdout", NULL);
		return 0;
	}
	if (!c->tls && (o->ca != NULL || o->insecure || c->cert_file != NULL)) {
		set_err(err, errlen, "--no-tls cannot be combined with --ca, --insecure or --cert");
		return -1;
	}
	return 0;
}

static int load_tuning(struct client_conf *c, const struct client_opts *o, char *err,
                       size_t errlen)
{
	uint64_t v;

	c->buffer_max = 64ull * 1024 * 1024;
	if (o->buffer != NULL && clientconf_parse_size(o->buffer, &c->buffer_max) != 0) {
		set_err(err, errlen, "--buffer: \"%s\" is not a size (64M, 512k, ...)", o->buffer);
		return -1;
	}
	if (c->buffer_max < 2 * ((uint64_t)c->snaplen + D4_HEADER_SIZE)) {
		set_err(err, errlen, "--buffer: must hold at least two frames (%" PRIu64 " bytes)",
		        2 * ((uint64_t)c->snaplen + D4_HEADER_SIZE));
		return -1;
	}
	/* the window covers what a broken connection may have swallowed: both socket buffers
	 * (a few MB each on Linux) and what a server process held when it died */
	c->resend_max = c->dst_kind == DST_STDOUT ? 0 : 16ull * 1024 * 1024;
	c->resend_age_ms = 60000;
	if (o->resend != NULL && clientconf_parse_size(o->resend, &c->resend_max) != 0) {
		set_err(err, errlen, "--resend: \"%s\" is not a size (16M, 0, ...)", o->resend);
		return -1;
	}
	if (o->resend_age != NULL &&
	    clientconf_parse_duration_ms(o->resend_age, &c->resend_age_ms) != 0) {
		set_err(err, errlen, "--resend-age: \"%s\" is not a duration", o->resend_age);
		return -1;
	}
	c->on_full = FULL_AUTO;
	if (o->on_full != NULL) {
		if (strcmp(o->on_full, "drop") == 0)
			c->on_full = FULL_DROP;
		else if (strcmp(o->on_full, "wait") == 0)
			c->on_full = FULL_WAIT;
		else if (strcmp(o->on_full, "auto") != 0) {
			set_err(err, errlen, "--on-full: \"%s\" is not drop, wait or auto", o->on_full);
			return -1;
		}
	}
	c->flush_timeout_ms = 30000;
	c->connect_timeout_ms = 10000;
	c->retry_min_ms = 1000;
	c->retry_max_ms = 60000;
	c->keepalive_s = 30;
	if (o->flush_timeout != NULL &&
	    clientconf_parse_duration_ms(o->flush_timeout, &c->flush_timeout_ms) != 0) {
		set_err(err, errlen, "--flush-timeout: \"%s\" is not a duration", o->flush_timeout);
		return -1;
	}
	if (o->connect_timeout != NULL &&
	    (clientconf_parse_duration_ms(o->connect_timeout, &c->connect_timeout_ms) != 0 ||
	     c->connect_timeout_ms == 0)) {
		set_err(err, errlen, "--connect-timeout: \"%s\" is not a positive duration",
		        o->connect_timeout);
		return -1;
	}
	if (o->retry_max != NULL &&
	    (clientconf_parse_duration_ms(o->retry_max, &c->retry_max_ms) != 0 ||
	     c->retry_max_ms < 100)) {
		set_err(err, errlen, "--retry-max: \"%s\" is not a duration of at least 100ms",
		        o->retry_max);
		return -1;
	}
	if (c->retry_min_ms > c->retry_max_ms)
		c->retry_min_ms = c->retry_max_ms;
	if (o->keepalive != NULL) {
		if (clientconf_parse_duration_ms(o->keepalive, &v) != 0 || v > 86400000ull ||
		    (v != 0 && v < 1000)) {
			set_err(err, errlen, "--keepalive: \"%s\" is not 0 or 1s..24h", o->keepalive);
			return -1;
		}
		c->keepalive_s = (unsigned)(v / 1000);
	}
	c->eof_frame = o->eof_frame;
	c->promisc = !o->no_promisc;
	if (dup_opt(&c->pcap_filter, o->pcap_filter, err, errlen) != 0)
		return -1;
	if (o->fixed_timestamp != NULL) {
		if (parse_u64(o->fixed_timestamp, UINT64_MAX, &c->timestamp) != 0) {
			set_err(err, errlen, "--fixed-timestamp: not a number of seconds");
			return -1;
		}
		c->fixed_time = true;
	}
	return 0;
}

int clientconf_load(struct client_conf *c, const struct client_opts *o, char *err, size_t errlen)
{
	struct stat st;
	uint64_t v;

	memset(c, 0, sizeof(*c));
	if (o->confdir != NULL) {
		size_t n = strlen(o->confdir);
		while (n > 1 && o->confdir[n - 1] == '/')
			n--;
		c->confdir = malloc(n + 1);
		if (c->confdir == NULL) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		memcpy(c->confdir, o->confdir, n);
		c->confdir[n] = '\0';
		if (stat(c->confdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			set_err(err, errlen, "-c %s: not a directory", c->confdir);
			return -1;
		}
	}
	if (load_number(c, o->version, "version", 0, 255, false, D4_VERSION, &v, err, errlen) != 0)
		return -1;
	if (v != D4_VERSION) {
		set_err(err, errlen, "version %" PRIu64 ": only D4 protocol version 1 exists", v);
		return -1;
	}
	c->version = (uint8_t)v;
	if (load_number(c, o->snaplen, "snaplen", 1, CLIENT_MAX_SNAPLEN, false,
	                CLIENT_DEFAULT_SNAPLEN, &v, err, errlen) != 0)
		return -1;
	c->snaplen = (uint32_t)v;
	if (load_type(c, o, err, errlen) != 0 || load_key(c, o, err, errlen) != 0 ||
	    load_source(c, o, err, errlen) != 0 || load_destination(c, o, err, errlen) != 0 ||
	    load_metaheader(c, o, err, errlen) != 0 || load_tls(c, o, err, errlen) != 0 ||
	    load_tuning(c, o, err, errlen) != 0 || load_uuid(c, o, err, errlen) != 0)
		return -1;
	return 0;
}

void clientconf_free(struct client_conf *c)
{
	free(c->confdir);
	if (c->key != NULL) {
		OPENSSL_cleanse(c->key, c->key_len);
		free(c->key);
	}
	free(c->src_arg);
	free(c->pcap_filter);
	free(c->host);
	free(c->port);
	free(c->ca_file);
	free(c->cert_file);
	free(c->cert_key_file);
	free(c->metaheader);
	memset(c, 0, sizeof(*c));
}
