/*
 * d4_anproto.c — encoders, decoder and incremental reader of the analyzer
 * protocol (docs/analyzer-protocol.md).
 *
 * Variable bodies are written through d4_writer and read through d4_reader,
 * which fail instead of running past an end; every decoder finishes by
 * refusing trailing bytes, so a message is either exactly what the table in
 * the document says or an error that names the field.
 */
#include "d4_anproto.h"

#include <stdlib.h>
#include <string.h>

#include "d4_bytes.h"
#include "d4_ipc.h"

const char *d4_ap_kind_name(unsigned kind)
{
	switch (kind) {
	case D4_AP_HELLO:
		return "hello";
	case D4_AP_REGISTER:
		return "register";
	case D4_AP_START:
		return "start";
	case D4_AP_DATA:
		return "data";
	case D4_AP_END:
		return "end";
	case D4_AP_ACK:
		return "ack";
	case D4_AP_BYE:
		return "bye";
	default:
		return "unknown";
	}
}

static void put_prefix(uint8_t *out, enum d4_ap_kind kind, size_t total)
{
	d4_put_le32(out, (uint32_t)(total - 4));
	out[4] = (uint8_t)kind;
}

/* Strings carry a u16 length. Callers keep them shorter (ingest caps meta headers at
 * D4_IPC_META_MAX); a longer one is cut here, in the length functions too, so the
 * framing can never be corrupted by a length that wrapped. */
static size_t str_len(size_t len)
{
	return len > UINT16_MAX ? UINT16_MAX : len;
}

static void put_str(struct d4_writer *w, const char *p, size_t len)
{
	len = str_len(len);
	d4_put_u16(w, (uint16_t)len);
	d4_put_bytes(w, p, len);
}

static struct d4_ap_str get_str(struct d4_reader *r)
{
	struct d4_ap_str s;
	s.len = d4_get_u16(r);
	s.p = (const char *)d4_get_bytes(r, s.len);
	if (s.p == NULL)
		s.len = 0;
	return s;
}

size_t d4_ap_hello_len(size_t queue_len, const struct d4_ap_param *params, size_t n)
{
	size_t len = D4_AP_PREFIX + 2 + 2 + str_len(queue_len) + 2;
	for (size_t i = 0; i < n; i++)
		len += 4 + str_len(params[i].key.len) + str_len(params[i].value.len);
	return len;
}

void d4_ap_put_hello(uint8_t *out, uint16_t version, const char *queue, size_t queue_len,
                     const struct d4_ap_param *params, size_t n)
{
	size_t total = d4_ap_hello_len(queue_len, params, n);
	struct d4_writer w = d4_writer_make(out + D4_AP_PREFIX, total - D4_AP_PREFIX);
	put_prefix(out, D4_AP_HELLO, total);
	d4_put_u16(&w, version);
	put_str(&w, queue, queue_len);
	d4_put_u16(&w, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		put_str(&w, params[i].key.p, params[i].key.len);
		put_str(&w, params[i].value.p, params[i].value.len);
	}
}

size_t d4_ap_register_len(size_t name_len)
{
	return D4_AP_PREFIX + 2 + 1 + 2 + str_len(name_len);
}

void d4_ap_put_register(uint8_t *out, uint16_t version, uint8_t flags, const char *name,
                        size_t name_len)
{
	size_t total = d4_ap_register_len(name_len);
	struct d4_writer w = d4_writer_make(out + D4_AP_PREFIX, total - D4_AP_PREFIX);
	put_prefix(out, D4_AP_REGISTER, total);
	d4_put_u16(&w, version);
	d4_put_u8(&w, flags);
	put_str(&w, name, name_len);
}

size_t d4_ap_start_len(const struct d4_ap_start *m)
{
	return D4_AP_PREFIX + 8 + 8 + D4_UUID_SIZE + 1 + 16 + 2 + 2 + str_len(m->meta_type.len) + 2 +
	       str_len(m->meta_json.len);
}

void d4_ap_put_start(uint8_t *out, const struct d4_ap_start *m)
{
	size_t total = d4_ap_start_len(m);
	struct d4_writer w = d4_writer_make(out + D4_AP_PREFIX, total - D4_AP_PREFIX);
	put_prefix(out, D4_AP_START, total);
	d4_put_u64(&w, m->session);
	d4_put_u64(&w, m->time);
	d4_put_bytes(&w, m->uuid, D4_UUID_SIZE);
	d4_put_u8(&w, m->type);
	d4_put_bytes(&w, m->addr, 16);
	d4_put_u16(&w, m->port);
	put_str(&w, m->meta_type.p, m->meta_type.len);
	put_str(&w, m->meta_json.p, m->meta_json.len);
}

void d4_ap_put_data_head(uint8_t *out, uint64_t session, uint64_t seq, size_t frame_len)
{
	put_prefix(out, D4_AP_DATA, D4_AP_DATA_HEAD + frame_len);
	d4_put_le64(out + D4_AP_PREFIX, session);
	d4_put_le64(out + D4_AP_PREFIX + 8, seq);
}

void d4_ap_put_end(uint8_t *out, const struct d4_ap_end *m)
{
	put_prefix(out, D4_AP_END, D4_AP_END_LEN);
	d4_put_le64(out + 5, m->session);
	d4_put_le64(out + 13, m->time);
	out[21] = m->reason;
}

void d4_ap_put_ack(uint8_t *out, uint64_t seq)
{
	put_prefix(out, D4_AP_ACK, D4_AP_ACK_LEN);
	d4_put_le64(out + 5, seq);
}

void d4_ap_put_bye(uint8_t *out)
{
	put_prefix(out, D4_AP_BYE, D4_AP_BYE_LEN);
}

void d4_ap_param_iter_init(struct d4_ap_param_iter *it, const struct d4_ap_hello *h)
{
	it->p = h->params;
	it->left = h->params_len;
	it->n = h->n_params;
}

bool d4_ap_param_next(struct d4_ap_param_iter *it, struct d4_ap_param *out)
{
	if (it->n == 0)
		return false;
	struct d4_reader r = d4_reader_make(it->p, it->left);
	out->key = get_str(&r);
	out->value = get_str(&r);
	if (r.err)
		return false; /* the decoder checked the list: cannot happen */
	it->p = r.p;
	it->left = r.left;
	it->n--;
	return true;
}

int d4_ap_decode(unsigned kind, const uint8_t *body, size_t len, struct d4_ap_msg *out,
                 const char **why)
{
	struct d4_reader r = d4_reader_make(body, len);
	const char *bad = "short body";

	memset(out, 0, sizeof(*out));
	out->kind = (enum d4_ap_kind)kind;
	switch (kind) {
	case D4_AP_HELLO: {
		struct d4_ap_hello *h = &out->u.hello;
		h->version = d4_get_u16(&r);
		h->queue = get_str(&r);
		h->n_params = d4_get_u16(&r);
		h->params = r.p;
		for (unsigned i = 0; i < h->n_params && !r.err; i++) {
			(void)get_str(&r);
			(void)get_str(&r);
		}
		h->params_len = r.err ? 0 : (size_t)(r.p - h->params);
		break;
	}
	case D4_AP_REGISTER:
		out->u.reg.version = d4_get_u16(&r);
		out->u.reg.flags = d4_get_u8(&r);
		out->u.reg.name = get_str(&r);
		break;
	case D4_AP_START: {
		struct d4_ap_start *s = &out->u.start;
		s->session = d4_get_u64(&r);
		s->time = d4_get_u64(&r);
		const uint8_t *u = d4_get_bytes(&r, D4_UUID_SIZE);
		s->type = d4_get_u8(&r);
		const uint8_t *a = d4_get_bytes(&r, 16);
		s->port = d4_get_u16(&r);
		s->meta_type = get_str(&r);
		s->meta_json = get_str(&r);
		if (u && a) {
			memcpy(s->uuid, u, D4_UUID_SIZE);
			memcpy(s->addr, a, 16);
		}
		break;
	}
	case D4_AP_DATA: {
		struct d4_ap_data *d = &out->u.data;
		d->session = d4_get_u64(&r);
		d->seq = d4_get_u64(&r);
		d->frame_len = r.left;
		d->frame = d4_get_bytes(&r, D4_HEADER_SIZE);
		d->payload_len = r.left;
		d->payload = d4_get_bytes(&r, r.left);
		if (!r.err && d4_le32(d->frame + D4_OFF_SIZE) != d->payload_len) {
			bad = "frame size does not match its header";
			r.err = true;
		}
		break;
	}
	case D4_AP_END:
		out->u.end.session = d4_get_u64(&r);
		out->u.end.time = d4_get_u64(&r);
		out->u.end.reason = d4_get_u8(&r);
		break;
	case D4_AP_ACK:
		out->u.seq = d4_get_u64(&r);
		break;
	case D4_AP_BYE:
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

void d4_ap_reader_init(struct d4_ap_reader *r, bool expect_magic)
{
	memset(r, 0, sizeof(*r));
	d4_msg_reader_init(&r->m);
	r->expect_magic = expect_magic;
}

void d4_ap_reader_free(struct d4_ap_reader *r)
{
	d4_msg_reader_free(&r->m);
}

enum d4_ap_status d4_ap_reader_feed(struct d4_ap_reader *r, const uint8_t *buf, size_t len,
                                    size_t *used, struct d4_ap_msg *msg, const char **why)
{
	*used = 0;
	if (r->m.failed) {
		*why = "stream already failed";
		return D4_AP_BAD;
	}
	while (r->expect_magic && r->magic_have < D4_AP_MAGIC_LEN) {
		if (len == 0)
			return D4_AP_NEED_MORE;
		if (buf[0] != (uint8_t)D4_AP_MAGIC[r->magic_have]) {
			r->m.failed = true;
			*why = "no D4AP magic";
			return D4_AP_BAD;
		}
		r->magic_have++;
		buf++;
		len--;
		(*used)++;
	}
	unsigned kind;
	const uint8_t *body;
	size_t n, taken;
	enum d4_msg_status st = d4_msg_reader_feed(&r->m, buf, len, D4_AP_MAX_BODY, &taken, &kind,
	                                           &body, &n, why);
	*used += taken;
	if (st != D4_MSG_WHOLE)
		return st == D4_MSG_NEED_MORE ? D4_AP_NEED_MORE : D4_AP_BAD;
	if (d4_ap_decode(kind, body, n, msg, why) != 0) {
		r->m.failed = true;
		return D4_AP_BAD;
	}
	return D4_AP_MESSAGE;
}
