/* multipart_fuzz.c: libFuzzer target for the multipart/related parser and
 * the Content-Type parameters. Input: a first line used as a Content-Type
 * value (its boundary, else "b0undary"), then the body. The body is parsed
 * in one piece and again in chunks of sizes drawn from a generator seeded
 * by the input; the result and the completed parts must be the same.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOG_MAX (4u << 20)

struct rec {
	struct wbuf log;   /* completed parts: ctype, NUL, length, body */
	struct wbuf cur;   /* the open part's body */
	char ctype[MP_HEADER_VALUE_MAX + 1];
	int open;
};

static enum err r_begin(void *ctx, const struct mp_part *p)
{
	struct rec *r = ctx;

	if (r->open)
		abort();
	r->open = 1;
	memcpy(r->ctype, p->ctype, sizeof r->ctype);
	wbuf_reset(&r->cur);
	return ERR_OK;
}

static enum err r_data(void *ctx, const uint8_t *p, size_t n)
{
	struct rec *r = ctx;

	if (!r->open || n == 0)
		abort();
	wbuf_put(&r->cur, p, n);
	return ERR_OK;
}

static enum err r_end(void *ctx)
{
	struct rec *r = ctx;

	if (!r->open)
		abort();
	r->open = 0;
	wbuf_puts(&r->log, r->ctype);
	wbuf_putc(&r->log, 0);
	wbuf_put_u32le(&r->log, (uint32_t)r->cur.len);
	wbuf_put(&r->log, r->cur.p, r->cur.len);
	return ERR_OK;
}

static enum err run(const char *b, const uint8_t *d, size_t n, uint32_t seed, struct rec *r)
{
	struct mp_cb cb = { r_begin, r_data, r_end, r };
	struct mp_limits lim = { 1u << 20, 64 };
	struct mp_parser p;
	size_t off = 0;
	enum err rc = ERR_AGAIN;

	wbuf_init(&r->log, LOG_MAX);
	wbuf_init(&r->cur, LOG_MAX);
	r->open = 0;
	mp_parser_init(&p, b, &cb, &lim);
	while (off < n) {
		size_t c = n - off;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			c = 1 + (seed >> 16) % 97;
			if (c > n - off)
				c = n - off;
		}
		rc = mp_parser_feed(&p, d + off, c);
		off += c;
		if (rc != ERR_AGAIN)
			break;
	}
	if (rc == ERR_AGAIN)
		rc = mp_parser_finish(&p);
	if (n == 0 && rc != ERR_PARSE)
		abort();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const char *b = "b0undary";
	struct mp_ctype ct;
	struct rec a, c;
	enum err ra, rc2;
	uint32_t seed = 1;
	size_t i, hl = nl ? (size_t)(nl - data) : 0;

	if (nl != NULL && mp_ctype_parse((const char *)data, hl, &ct) == ERR_OK) {
		if (strlen(ct.boundary) > MP_BOUNDARY_MAX || strlen(ct.media) > MP_MEDIA_MAX)
			abort();
		if (ct.boundary[0])
			b = ct.boundary;
	}
	if (nl != NULL) {
		data = nl + 1;
		size -= hl + 1;
	}
	for (i = 0; i < size; i++)
		seed = seed * 31u + data[i];
	seed |= 1;
	ra = run(b, data, size, 0, &a);
	rc2 = run(b, data, size, seed, &c);
	if (ra != rc2 || ra == ERR_AGAIN)
		abort();
	if (wbuf_err(&a.log) == ERR_OK && wbuf_err(&c.log) == ERR_OK &&
	    (a.log.len != c.log.len || (a.log.len && memcmp(a.log.p, c.log.p, a.log.len) != 0)))
		abort();
	wbuf_fini(&a.log);
	wbuf_fini(&a.cur);
	wbuf_fini(&c.log);
	wbuf_fini(&c.cur);
	return 0;
}
