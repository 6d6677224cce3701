/* rd.h: bounded reader over borrowed bytes. Every getter checks what
 * remains before it reads and fails with no side effect. Layer: base. */
#ifndef DICOMVAULT_RD_H
#define DICOMVAULT_RD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "dicomvault/err.h"

struct rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

static inline void rd_init(struct rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
}

static inline size_t rd_remaining(const struct rd *r) { return r->len - r->pos; }

static inline const uint8_t *rd_cur(const struct rd *r) { return r->pos ? r->p + r->pos : r->p; }

static inline WUR enum err rd_skip(struct rd *r, size_t n)
{
	if (rd_remaining(r) < n)
		return ERR_PARSE;
	r->pos += n;
	return ERR_OK;
}

static inline WUR enum err rd_get_bytes(struct rd *r, void *out, size_t n)
{
	if (rd_remaining(r) < n)
		return ERR_PARSE;
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
	return ERR_OK;
}

/* Borrow n bytes without copying. */
static inline WUR enum err rd_view(struct rd *r, size_t n, const uint8_t **out)
{
	if (rd_remaining(r) < n)
		return ERR_PARSE;
	*out = n ? r->p + r->pos : r->p;  /* no NULL + 0 */
	r->pos += n;
	return ERR_OK;
}

/* A child reader of exactly n bytes; the parent advances past them. */
static inline WUR enum err rd_child(struct rd *r, size_t n, struct rd *child)
{
	if (rd_remaining(r) < n)
		return ERR_PARSE;
	rd_init(child, n ? r->p + r->pos : r->p, n);
	r->pos += n;
	return ERR_OK;
}

static inline uint16_t load_u16le(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }
static inline uint16_t load_u16be(const uint8_t *b) { return (uint16_t)(b[1] | (b[0] << 8)); }
static inline uint32_t load_u32le(const uint8_t *b)
{
	return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static inline uint32_t load_u32be(const uint8_t *b)
{
	return (uint32_t)b[3] | ((uint32_t)b[2] << 8) | ((uint32_t)b[1] << 16) | ((uint32_t)b[0] << 24);
}
static inline uint64_t load_u64le(const uint8_t *b)
{
	return (uint64_t)load_u32le(b) | ((uint64_t)load_u32le(b + 4) << 32);
}
static inline void store_u16le(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static inline void store_u32le(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
}
static inline void store_u16be(uint8_t *b, uint16_t v) { b[1] = (uint8_t)v; b[0] = (uint8_t)(v >> 8); }
static inline void store_u32be(uint8_t *b, uint32_t v)
{
	b[3] = (uint8_t)v; b[2] = (uint8_t)(v >> 8); b[1] = (uint8_t)(v >> 16); b[0] = (uint8_t)(v >> 24);
}

static inline WUR enum err rd_get_u8(struct rd *r, uint8_t *v)
{
	if (rd_remaining(r) < 1)
		return ERR_PARSE;
	*v = r->p[r->pos++];
	return ERR_OK;
}

static inline WUR enum err rd_get_u16le(struct rd *r, uint16_t *v)
{
	if (rd_remaining(r) < 2)
		return ERR_PARSE;
	*v = load_u16le(r->p + r->pos);
	r->pos += 2;
	return ERR_OK;
}

static inline WUR enum err rd_get_u16be(struct rd *r, uint16_t *v)
{
	if (rd_remaining(r) < 2)
		return ERR_PARSE;
	*v = load_u16be(r->p + r->pos);
	r->pos += 2;
	return ERR_OK;
}

static inline WUR enum err rd_get_u32le(struct rd *r, uint32_t *v)
{
	if (rd_remaining(r) < 4)
		return ERR_PARSE;
	*v = load_u32le(r->p + r->pos);
	r->pos += 4;
	return ERR_OK;
}

static inline WUR enum err rd_get_u32be(struct rd *r, uint32_t *v)
{
	if (rd_remaining(r) < 4)
		return ERR_PARSE;
	*v = load_u32be(r->p + r->pos);
	r->pos += 4;
	return ERR_OK;
}

/* Checked size arithmetic. */
static inline WUR enum err size_add(size_t a, size_t b, size_t *out)
{
	if (a > SIZE_MAX - b)
		return ERR_LIMIT;
	*out = a + b;
	return ERR_OK;
}

static inline WUR enum err size_mul(size_t a, size_t b, size_t *out)
{
	if (a != 0 && b > SIZE_MAX / a)
		return ERR_LIMIT;
	*out = a * b;
	return ERR_OK;
}

#endif
