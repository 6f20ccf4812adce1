/*
 * d4_bytes.h — little-endian loads and stores, and bounds-checked readers and
 * writers for the binary records of the store and the ipc messages.
 *
 * A reader never reads past its end: each get either succeeds or marks the
 * reader failed (r->err) and returns zeros, so a decoder checks once at the
 * end instead of after every field (OpenSMTPD's m_get_* habit, minus the
 * abort: the caller decides whether a short record is fatal).
 */
#ifndef D4_BYTES_H
#define D4_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t d4_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t d4_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t d4_le64(const uint8_t *p)
{
	return (uint64_t)d4_le32(p) | (uint64_t)d4_le32(p + 4) << 32;
}
static inline void d4_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void d4_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void d4_put_le64(uint8_t *p, uint64_t v)
{
	d4_put_le32(p, (uint32_t)v);
	d4_put_le32(p + 4, (uint32_t)(v >> 32));
}
/* Big-endian forms, for keys that must sort numerically in LMDB. */
static inline void d4_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint32_t d4_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

struct d4_reader {
	const uint8_t *p;
	size_t left;
	bool err;
};

static inline struct d4_reader d4_reader_make(const void *buf, size_t len)
{
	struct d4_reader r = {(const uint8_t *)buf, len, false};
	return r;
}
static inline const uint8_t *d4_get_bytes(struct d4_reader *r, size_t n)
{
	if (r->err || r->left < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}
static inline uint8_t d4_get_u8(struct d4_reader *r)
{
	const uint8_t *p = d4_get_bytes(r, 1);
	return p ? p[0] : 0;
}
static inline uint16_t d4_get_u16(struct d4_reader *r)
{
	const uint8_t *p = d4_get_bytes(r, 2);
	return p ? d4_le16(p) : 0;
}
static inline uint32_t d4_get_u32(struct d4_reader *r)
{
	const uint8_t *p = d4_get_bytes(r, 4);
	return p ? d4_le32(p) : 0;
}
static inline uint64_t d4_get_u64(struct d4_reader *r)
{
	const uint8_t *p = d4_get_bytes(r, 8);
	return p ? d4_le64(p) : 0;
}

/* A writer over a caller-owned buffer; overflow marks it failed instead of writing. */
struct d4_writer {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool err;
};

static inline struct d4_writer d4_writer_make(void *buf, size_t cap)
{
	struct d4_writer w = {(uint8_t *)buf, cap, 0, false};
	return w;
}
static inline uint8_t *d4_put_space(struct d4_writer *w, size_t n)
{
	if (w->err || w->cap - w->len < n) {
		w->err = true;
		return NULL;
	}
	uint8_t *p = w->p + w->len;
	w->len += n;
	return p;
}
static inline void d4_put_bytes(struct d4_writer *w, const void *src, size_t n)
{
	uint8_t *p = d4_put_space(w, n);
	if (p && n)
		memcpy(p, src, n);
}
static inline void d4_put_u8(struct d4_writer *w, uint8_t v)
{
	uint8_t *p = d4_put_space(w, 1);
	if (p)
		p[0] = v;
}
static inline void d4_put_u16(struct d4_writer *w, uint16_t v)
{
	uint8_t *p = d4_put_space(w, 2);
	if (p)
		d4_put_le16(p, v);
}
static inline void d4_put_u32(struct d4_writer *w, uint32_t v)
{
	uint8_t *p = d4_put_space(w, 4);
	if (p)
		d4_put_le32(p, v);
}
static inline void d4_put_u64(struct d4_writer *w, uint64_t v)
{
	uint8_t *p = d4_put_space(w, 8);
	if (p)
		d4_put_le64(p, v);
}

#endif
