/* wbuf.h: owned, capped output buffer with a sticky error. Once an append
 * fails every later append is a no-op and wbuf_err() reports the first
 * failure. Layer: base. */
#ifndef DICOMVAULT_WBUF_H
#define DICOMVAULT_WBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"

struct wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;    /* hard cap on len */
	enum err err;  /* sticky */
};

void wbuf_init(struct wbuf *w, size_t max);
void wbuf_fini(struct wbuf *w);
void wbuf_reset(struct wbuf *w);          /* len = 0, error cleared, memory kept */
WUR enum err wbuf_err(const struct wbuf *w);
void wbuf_reserve(struct wbuf *w, size_t n);
void wbuf_put(struct wbuf *w, const void *p, size_t n);
void wbuf_putc(struct wbuf *w, char c);
void wbuf_puts(struct wbuf *w, const char *s);
void wbuf_put_u16le(struct wbuf *w, uint16_t v);
void wbuf_put_u32le(struct wbuf *w, uint32_t v);
void wbuf_put_u16be(struct wbuf *w, uint16_t v);
void wbuf_put_u32be(struct wbuf *w, uint32_t v);
void wbuf_printf(struct wbuf *w, const char *fmt, ...) PRINTF_LIKE(2, 3);
void wbuf_vprintf(struct wbuf *w, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
/* Writes at an earlier offset (for lengths known afterwards). */
void wbuf_patch_u32le(struct wbuf *w, size_t off, uint32_t v);
/* A NUL-terminated view of the contents (a NUL is kept past len). */
const char *wbuf_cstr(struct wbuf *w);
/* Hand the buffer to the caller (who frees it); w is left empty. */
uint8_t *wbuf_take(struct wbuf *w, size_t *len);

#endif
