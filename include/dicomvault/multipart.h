/* multipart.h: multipart/related (RFC 2046 section 5.1, RFC 2387) for
 * DICOMweb: the Content-Type parameters (boundary, type), a streaming
 * parser fed arbitrary chunks that hands each part's body to a callback
 * as it arrives (a multi-GB part is never held), and a writer for
 * multipart responses. Pure: bytes in, callbacks and errors out. Limits:
 * MP_* in base/limits.h. See docs/internals/dicomweb.md. Layer: proto. */
#ifndef DICOMVAULT_MULTIPART_H
#define DICOMVAULT_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"

/* A Content-Type value split into what multipart needs. */
struct mp_ctype {
	char media[MP_MEDIA_MAX + 1];       /* type/subtype, lower-cased */
	char boundary[MP_BOUNDARY_MAX + 1]; /* "" when absent */
	char type[MP_MEDIA_MAX + 1];        /* the "type" parameter, lower-cased; "" when absent */
};

/* Parses "type/subtype *(; name=value)" (value a token or a quoted
 * string). A boundary, when present, must be 1..70 characters of RFC 2046
 * bchars not ending in a space (ERR_PARSE otherwise); a repeated
 * parameter, an over-long value or anything malformed is ERR_PARSE. */
WUR enum err mp_ctype_parse(const char *s, size_t n, struct mp_ctype *out);

/* True when the media type of Content-Type value s (before any ';',
 * spaces trimmed) is media, case-insensitively. */
bool mp_media_is(const char *s, size_t n, const char *media);

/* One part's headers, as given to part_begin. */
struct mp_part {
	unsigned index;                       /* 0-based */
	char ctype[MP_HEADER_VALUE_MAX + 1];  /* Content-Type, "" when absent */
	bool has_length;
	uint64_t length;                      /* Content-Length, if given */
};

/* Callbacks; a non-OK return stops the parse with that error. */
struct mp_cb {
	enum err (*part_begin)(void *ctx, const struct mp_part *part);
	enum err (*part_data)(void *ctx, const uint8_t *p, size_t n);
	enum err (*part_end)(void *ctx);
	void *ctx;
};

struct mp_limits {
	uint64_t max_part;     /* bytes of one part's body */
	unsigned max_parts;    /* parts in the body */
};

/* The parser: a resumable state machine. All state is here (no
 * allocation). */
struct mp_parser {
	struct mp_cb cb;
	struct mp_limits lim;
	char delim[MP_BOUNDARY_MAX + 4];   /* "\n--" boundary */
	size_t dlen;
	int state;
	size_t m;                          /* bytes of delim matched so far */
	bool cr;                           /* a body '\r' held back (may start "\r\n--") */
	uint64_t body;                     /* bytes of the current part's body delivered */
	unsigned parts;                    /* parts begun */
	struct mp_part part;               /* the current part's headers */
	char line[MP_HEADER_LINE_MAX];     /* the header line being read */
	size_t llen;
	size_t hbytes;                     /* header bytes of the current part */
	unsigned nheaders;
	enum err err;                      /* sticky */
	const char *why;                   /* a static sentence for err */
};

/* boundary: 1..MP_BOUNDARY_MAX bytes (as from mp_ctype_parse). lim NULL:
 * MP_MAX_PART_SIZE and MP_MAX_PARTS. */
void mp_parser_init(struct mp_parser *p, const char *boundary, const struct mp_cb *cb,
                    const struct mp_limits *lim);
/* Feeds the next n bytes (any split). ERR_AGAIN: more input is wanted;
 * ERR_OK: the close delimiter has been seen (what follows, the epilogue,
 * is ignored, and so are later feeds); another error: the body is
 * malformed (mp_parser_why() says how) and stays so:
 *   ERR_PARSE        no first boundary, bad delimiter line, bad header,
 *                    Content-Length disagrees with the part's size
 *   ERR_LIMIT        a header line, the headers, a part or the part count
 *                    over its limit
 *   ERR_UNSUPPORTED  a nested multipart part
 * Line ends: CRLF as RFC 2046 requires, and a bare LF is accepted too
 * (header lines, delimiter lines; a CR before the LF of a delimiter is
 * not part of the body). */
WUR enum err mp_parser_feed(struct mp_parser *p, const uint8_t *data, size_t n);
/* The end of the input: ERR_OK if the close delimiter was seen, else
 * ERR_PARSE (truncated) or the sticky error. */
WUR enum err mp_parser_finish(struct mp_parser *p);
const char *mp_parser_why(const struct mp_parser *p);

/* ---- writer ---- */

/* A boundary from 16 random bytes (caller's): "dv-" and 32 hex digits. */
void mp_boundary_make(const uint8_t rnd[16], char out[MP_BOUNDARY_MAX + 1]);
/* "--BOUNDARY\r\nContent-Type: CTYPE\r\n\r\n", preceded by "\r\n" unless
 * first. The part's body follows. */
void mp_write_part_head(struct wbuf *w, const char *boundary, const char *ctype, bool first);
/* "\r\n--BOUNDARY--\r\n". */
void mp_write_close(struct wbuf *w, const char *boundary);

#endif
