/* wbuf.c: owned, capped output buffer with a sticky error. Layer: base. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/wbuf.h"
#include "dicomvault/rd.h"

void wbuf_init(struct wbuf *w, size_t max)
{
	w->p = NULL;
	w->len = 0;
	w->cap = 0;
	w->max = max;
	w->err = ERR_OK;
}

void wbuf_fini(struct wbuf *w)
{
	free(w->p);
	wbuf_init(w, w->max);
}

void wbuf_reset(struct wbuf *w)
{
	w->len = 0;
	w->err = ERR_OK;
}

enum err wbuf_err(const struct wbuf *w) { return w->err; }

/* Make room for n more bytes plus a trailing NUL. */
static int grow(struct wbuf *w, size_t n)
{
	size_t need, ncap;
	uint8_t *np;

	if (w->err != ERR_OK)
		return 0;
	if (size_add(w->len, n, &need) != ERR_OK || need > w->max) {
		w->err = ERR_LIMIT;
		return 0;
	}
	if (need + 1 <= w->cap)
		return 1;
	ncap = w->cap ? w->cap : 256;
	while (ncap < need + 1) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need + 1;
			break;
		}
		ncap *= 2;
	}
	if (ncap > w->max + 1 && need + 1 <= w->max + 1)
		ncap = w->max + 1;
	np = realloc(w->p, ncap);
	if (np == NULL) {
		w->err = ERR_NOMEM;
		return 0;
	}
	w->p = np;
	w->cap = ncap;
	return 1;
}

void wbuf_reserve(struct wbuf *w, size_t n) { (void)grow(w, n); }

void wbuf_put(struct wbuf *w, const void *p, size_t n)
{
	if (n == 0 || !grow(w, n))
		return;
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

void wbuf_putc(struct wbuf *w, char c)
{
	if (!grow(w, 1))
		return;
	w->p[w->len++] = (uint8_t)c;
}

void wbuf_puts(struct wbuf *w, const char *s) { wbuf_put(w, s, strlen(s)); }

void wbuf_put_u16le(struct wbuf *w, uint16_t v)
{
	uint8_t b[2];
	store_u16le(b, v);
	wbuf_put(w, b, 2);
}

void wbuf_put_u32le(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];
	store_u32le(b, v);
	wbuf_put(w, b, 4);
}

void wbuf_put_u16be(struct wbuf *w, uint16_t v)
{
	uint8_t b[2];
	store_u16be(b, v);
	wbuf_put(w, b, 2);
}

void wbuf_put_u32be(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];
	store_u32be(b, v);
	wbuf_put(w, b, 4);
}

void wbuf_vprintf(struct wbuf *w, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char small[128];

	if (w->err != ERR_OK)
		return;
	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof small, fmt, ap);
	if (n < 0) {
		w->err = ERR_INTERNAL;
		va_end(ap2);
		return;
	}
	if ((size_t)n < sizeof small) {
		wbuf_put(w, small, (size_t)n);
	} else if (grow(w, (size_t)n)) {
		(void)vsnprintf((char *)w->p + w->len, (size_t)n + 1, fmt, ap2);
		w->len += (size_t)n;
	}
	va_end(ap2);
}

void wbuf_printf(struct wbuf *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wbuf_vprintf(w, fmt, ap);
	va_end(ap);
}

void wbuf_patch_u32le(struct wbuf *w, size_t off, uint32_t v)
{
	if (w->err != ERR_OK)
		return;
	if (off > w->len || w->len - off < 4) {
		w->err = ERR_INTERNAL;
		return;
	}
	store_u32le(w->p + off, v);
}

const char *wbuf_cstr(struct wbuf *w)
{
	if (w->p == NULL && !grow(w, 0))
		return "";
	if (w->p == NULL)
		return "";
	w->p[w->len] = 0;
	return (const char *)w->p;
}

uint8_t *wbuf_take(struct wbuf *w, size_t *len)
{
	uint8_t *p = w->p;
	*len = w->len;
	w->p = NULL;
	w->len = w->cap = 0;
	w->err = ERR_OK;
	return p;
}
