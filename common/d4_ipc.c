/*
 * d4_ipc.c — encoders, decoder and incremental reader of the ingest/dispatch link.
 *
 * Bodies are fixed little-endian layouts read through d4_reader, which fails
 * rather than reads past the end; docs/ipc.md has the tables. The reader
 * decodes a message in place when the chunk holds it whole (the common case
 * for small messages) and gathers it in its own buffer otherwise.
 */
#include "d4_ipc.h"

#include <stdlib.h>
#include <string.h>

#include "d4_bytes.h"

const char *d4_ipc_kind_name(unsigned kind)
{
	static const char *const names[] = {
		[D4_IPC_HELLO] = "hello", [D4_IPC_OPEN] = "open",     [D4_IPC_META] = "meta",
		[D4_IPC_FRAME] = "frame", [D4_IPC_CLOSE] = "close",   [D4_IPC_RESUME] = "resume",
		[D4_IPC_ACK] = "ack",     [D4_IPC_PAUSE] = "pause",   [D4_IPC_UNPAUSE] = "unpause",
	};
	if (kind >= sizeof(names) / sizeof(names[0]) || names[kind] == NULL)
		return "unknown";
	return names[kind];
}

static void put_prefix(uint8_t *out, enum d4_ipc_kind kind, size_t total)
{
	d4_put_le32(out, (uint32_t)(total - 4));
	out[4] = (uint8_t)kind;
}

size_t d4_ipc_meta_len(size_t meta_type_len, size_t json_len)
{
	return D4_IPC_PREFIX + 8 + 2 + meta_type_len + json_len;
}

void d4_ipc_put_hello(uint8_t *out, const struct d4_ipc_hello *m)
{
	put_prefix(out, D4_IPC_HELLO, D4_IPC_HELLO_LEN);
	d4_put_le16(out + 5, m->version);
	d4_put_le16(out + 7, m->worker);
	d4_put_le64(out + 9, m->instance);
}

void d4_ipc_put_open(uint8_t *out, const struct d4_ipc_open *m)
{
	put_prefix(out, D4_IPC_OPEN, D4_IPC_OPEN_LEN);
	uint8_t *p = out + D4_IPC_PREFIX;
	d4_put_le64(p, m->session);
	d4_put_le64(p + 8, m->time);
	memcpy(p + 16, m->uuid, D4_UUID_SIZE);
	p[32] = m->type;
	p[33] = m->flags;
	memcpy(p + 34, m->addr, 16);
	d4_put_le16(p + 50, m->port);
}

void d4_ipc_put_meta(uint8_t *out, const struct d4_ipc_meta *m)
{
	size_t total = d4_ipc_meta_len(m->meta_type_len, m->json_len);
	put_prefix(out, D4_IPC_META, total);
	uint8_t *p = out + D4_IPC_PREFIX;
	d4_put_le64(p, m->session);
	d4_put_le16(p + 8, (uint16_t)m->meta_type_len);
	memcpy(p + 10, m->meta_type, m->meta_type_len);
	if (m->json_len)
		memcpy(p + 10 + m->meta_type_len, m->json, m->json_len);
}

void d4_ipc_put_frame_head(uint8_t *out, uint64_t session, const uint8_t header[D4_HEADER_SIZE],
                           size_t payload_len)
{
	put_prefix(out, D4_IPC_FRAME, D4_IPC_FRAME_FIXED + payload_len);
	d4_put_le64(out + D4_IPC_PREFIX, session);
	memcpy(out + D4_IPC_PREFIX + 8, header, D4_HEADER_SIZE);
}

void d4_ipc_put_close(uint8_t *out, const struct d4_ipc_close *m)
{
	put_prefix(out, D4_IPC_CLOSE, D4_IPC_CLOSE_LEN);
	d4_put_le64(out + 5, m->session);
	d4_put_le64(out + 13, m->time);
	out[21] = m->reason;
}

void d4_ipc_put_offset(uint8_t *out, enum d4_ipc_kind kind, uint64_t offset)
{
	put_prefix(out, kind, D4_IPC_OFFSET_LEN);
	d4_put_le64(out + 5, offset);
}

void d4_ipc_put_empty(uint8_t *out, enum d4_ipc_kind kind)
{
	put_prefix(out, kind, D4_IPC_PREFIX);
}

int d4_ipc_decode(enum d4_ipc_kind kind, const uint8_t *body, size_t len, struct d4_ipc_msg *out,
                  const char **why)
{
	struct d4_reader r = d4_reader_make(body, len);
	const char *bad = "short body";

	memset(out, 0, sizeof(*out));
	out->kind = kind;
	out->wire_len = D4_IPC_PREFIX + len;
	switch (kind) {
	case D4_IPC_HELLO:
		out->u.hello.version = d4_get_u16(&r);
		out->u.hello.worker = d4_get_u16(&r);
		out->u.hello.instance = d4_get_u64(&r);
		break;
	case D4_IPC_OPEN: {
		struct d4_ipc_open *o = &out->u.open;
		o->session = d4_get_u64(&r);
		o->time = d4_get_u64(&r);
		const uint8_t *u = d4_get_bytes(&r, D4_UUID_SIZE);
		o->type = d4_get_u8(&r);
		o->flags = d4_get_u8(&r);
		const uint8_t *a = d4_get_bytes(&r, 16);
		o->port = d4_get_u16(&r);
		if (u && a) {
			memcpy(o->uuid, u, D4_UUID_SIZE);
			memcpy(o->addr, a, 16);
		}
		break;
	}
	case D4_IPC_META: {
		struct d4_ipc_meta *m = &out->u.meta;
		m->session = d4_get_u64(&r);
		m->meta_type_len = d4_get_u16(&r);
		m->meta_type = (const char *)d4_get_bytes(&r, m->meta_type_len);
		m->json_len = r.left;
		m->json = d4_get_bytes(&r, r.left);
		if (!r.err && (m->meta_type_len == 0 || m->json_len > D4_IPC_META_MAX)) {
			bad = "bad meta-type or meta header length";
			r.err = true;
		}
		break;
	}
	case D4_IPC_FRAME: {
		struct d4_ipc_frame *f = &out->u.frame;
		f->session = d4_get_u64(&r);
		f->header = d4_get_bytes(&r, D4_HEADER_SIZE);
		f->payload_len = r.left;
		f->payload = d4_get_bytes(&r, r.left);
		if (!r.err && d4_le32(f->header + D4_OFF_SIZE) != f->payload_len) {
			bad = "frame size does not match its header";
			r.err = true;
		}
		break;
	}
	case D4_IPC_CLOSE:
		out->u.close.session = d4_get_u64(&r);
		out->u.close.time = d4_get_u64(&r);
		out->u.close.reason = d4_get_u8(&r);
		break;
	case D4_IPC_RESUME:
	case D4_IPC_ACK:
		out->u.offset = d4_get_u64(&r);
		break;
	case D4_IPC_PAUSE:
	case D4_IPC_UNPAUSE:
		break;
	default:
		*why = "unknown message kind";
		return -1;
	}
	if (!r.err && r.left != 0) {
		bad = "trailing bytes";
		r.err = true;
	}
	if (r.err) {
		*why = bad;
		return -1;
	}
	return 0;
}

/* ---- the framing both links share ---- */

void d4_msg_reader_init(struct d4_msg_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void d4_msg_reader_free(struct d4_msg_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static int reader_reserve(struct d4_msg_reader *r, size_t need)
{
	if (r->cap >= need)
		return 0;
	size_t cap = r->cap ? r->cap : 4096;
	while (cap < need)
		cap *= 2;
	uint8_t *b = realloc(r->buf, cap);
	if (b == NULL)
		return -1;
	r->buf = b;
	r->cap = cap;
	return 0;
}

static enum d4_msg_status fail(struct d4_msg_reader *r, const char **why, const char *what)
{
	r->failed = true;
	*why = what;
	return D4_MSG_BAD;
}

enum d4_msg_status d4_msg_reader_feed(struct d4_msg_reader *r, const uint8_t *buf, size_t len,
                                      uint32_t max_body, size_t *used, unsigned *kind,
                                      const uint8_t **body, size_t *body_len, const char **why)
{
	*used = 0;
	if (r->failed)
		return fail(r, why, "stream already failed");
	/* a big buffer is not kept past the message that needed it (which the
	 * caller was done with when it called again) */
	if (r->have == 0 && r->cap > (1u << 20)) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}

	/* fast path: nothing gathered and a whole message in the chunk */
	if (r->have == 0 && len >= D4_IPC_PREFIX) {
		size_t n = d4_le32(buf);
		if (n < 1 || n - 1 > max_body)
			return fail(r, why, "message length out of range");
		if (len >= 4 + n) {
			*kind = buf[4];
			*body = buf + D4_IPC_PREFIX;
			*body_len = n - 1;
			*used = 4 + n;
			return D4_MSG_WHOLE;
		}
	}

	/* gather: first the prefix, then the rest */
	size_t take;
	if (r->have < D4_IPC_PREFIX) {
		if (reader_reserve(r, D4_IPC_PREFIX) != 0)
			return fail(r, why, "out of memory");
		take = D4_IPC_PREFIX - r->have;
		if (take > len)
			take = len;
		memcpy(r->buf + r->have, buf, take);
		r->have += take;
		*used += take;
		buf += take;
		len -= take;
		if (r->have < D4_IPC_PREFIX)
			return D4_MSG_NEED_MORE;
		size_t n = d4_le32(r->buf);
		if (n < 1 || n - 1 > max_body)
			return fail(r, why, "message length out of range");
		r->need = 4 + n;
	}
	take = r->need - r->have;
	if (take > len)
		take = len;
	/* grown as bytes arrive, not to the announced length at once: a
	 * length that lies costs nothing until the bytes are really there */
	if (reader_reserve(r, r->have + take) != 0)
		return fail(r, why, "out of memory");
	if (take)
		memcpy(r->buf + r->have, buf, take);
	r->have += take;
	*used += take;
	if (r->have < r->need)
		return D4_MSG_NEED_MORE;
	*kind = r->buf[4];
	*body = r->buf + D4_IPC_PREFIX;
	*body_len = r->need - D4_IPC_PREFIX;
	r->have = 0;
	r->need = 0;
	return D4_MSG_WHOLE;
}

/* ---- the ingest link's reader ---- */

void d4_ipc_reader_init(struct d4_ipc_reader *r)
{
	d4_msg_reader_init(&r->m);
}

void d4_ipc_reader_free(struct d4_ipc_reader *r)
{
	d4_msg_reader_free(&r->m);
}

enum d4_ipc_status d4_ipc_reader_feed(struct d4_ipc_reader *r, const uint8_t *buf, size_t len,
                                      size_t *used, struct d4_ipc_msg *msg, const char **why)
{
	unsigned kind;
	const uint8_t *body;
	size_t n;
	enum d4_msg_status st = d4_msg_reader_feed(&r->m, buf, len, D4_IPC_MAX_BODY, used, &kind,
	                                           &body, &n, why);
	if (st != D4_MSG_WHOLE)
		return st == D4_MSG_NEED_MORE ? D4_IPC_NEED_MORE : D4_IPC_BAD;
	if (d4_ipc_decode((enum d4_ipc_kind)kind, body, n, msg, why) != 0) {
		r->m.failed = true;
		return D4_IPC_BAD;
	}
	return D4_IPC_MESSAGE;
}
