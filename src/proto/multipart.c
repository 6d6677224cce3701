/* multipart.c: multipart/related (RFC 2046 5.1, RFC 2387): Content-Type
 * parameters, a streaming parser and a response writer. The parser is a
 * resumable state machine over arbitrary chunks: body bytes are handed to
 * the caller as they arrive, holding back only what may still turn out to
 * be a delimiter ("\r" and up to 73 bytes of "\n--boundary"). Since the
 * delimiter starts with the only '\n' it contains, a mismatch never needs
 * back-tracking beyond re-reading the current byte. Layer: proto. */
#include <string.h>
#include "dicomvault/multipart.h"

enum {
	S_PREAMBLE = 0,   /* before the first delimiter: discarded */
	S_AFTER_DELIM,    /* just after "--boundary": "--", padding or the line end */
	S_DASH,           /* one '-' of the close delimiter seen */
	S_PAD,            /* transport padding after the delimiter */
	S_PAD_CR,         /* a '\r' after the delimiter */
	S_HEADERS,        /* part header lines */
	S_BODY,           /* the part's body */
	S_DONE,           /* close delimiter seen: epilogue ignored */
	S_ERROR
};

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bchars (space included; it may not end the boundary). */
static bool is_bchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
}

static bool ieq(const char *a, size_t an, const char *b)
{
	size_t i;

	if (an != strlen(b))
		return false;
	for (i = 0; i < an; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/* ---- Content-Type ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

enum err mp_ctype_parse(const char *s, size_t n, struct mp_ctype *out)
{
	struct mp_ctype ct;
	size_t i = 0, st, k;
	bool slash = false;

	memset(&ct, 0, sizeof ct);
	i = skip_ws(s, n, i);
	st = i;
	while (i < n && (is_tchar((unsigned char)s[i]) || (s[i] == '/' && !slash))) {
		slash = slash || s[i] == '/';
		i++;
	}
	if (!slash || i - st > MP_MEDIA_MAX || s[i - 1] == '/' || s[st] == '/')
		return ERR_PARSE;
	for (k = st; k < i; k++)
		ct.media[k - st] = (char)lower((unsigned char)s[k]);
	for (;;) {
		char name[32], val[MP_MEDIA_MAX + 1];
		size_t nl = 0, vl = 0;
		i = skip_ws(s, n, i);
		if (i == n)
			break;
		if (s[i] != ';')
			return ERR_PARSE;
		i = skip_ws(s, n, i + 1);
		if (i == n)
			break;   /* a trailing ';' is tolerated */
		while (i < n && is_tchar((unsigned char)s[i])) {
			if (nl + 1 >= sizeof name)
				return ERR_PARSE;
			name[nl++] = (char)lower((unsigned char)s[i++]);
		}
		name[nl] = 0;
		if (nl == 0 || i == n || s[i] != '=')
			return ERR_PARSE;
		i++;
		if (i < n && s[i] == '"') {
			i++;
			for (;;) {
				unsigned char c;
				if (i == n)
					return ERR_PARSE;   /* unterminated */
				c = (unsigned char)s[i++];
				if (c == '"')
					break;
				if (c == '\\') {
					if (i == n)
						return ERR_PARSE;
					c = (unsigned char)s[i++];
				}
				if (c < 0x20 || c == 0x7f || vl >= MP_MEDIA_MAX)
					return ERR_PARSE;
				val[vl++] = (char)c;
			}
		} else {
			/* '/' is a tspecial, but type=application/dicom unquoted is common */
			while (i < n && (is_tchar((unsigned char)s[i]) || s[i] == '/')) {
				if (vl >= MP_MEDIA_MAX)
					return ERR_PARSE;
				val[vl++] = s[i++];
			}
			if (vl == 0)
				return ERR_PARSE;
		}
		val[vl] = 0;
		if (strcmp(name, "boundary") == 0) {
			if (ct.boundary[0] || vl == 0 || vl > MP_BOUNDARY_MAX || val[vl - 1] == ' ')
				return ERR_PARSE;
			for (k = 0; k < vl; k++)
				if (!is_bchar((unsigned char)val[k]))
					return ERR_PARSE;
			memcpy(ct.boundary, val, vl + 1);
		} else if (strcmp(name, "type") == 0) {
			if (ct.type[0] || vl == 0)
				return ERR_PARSE;
			for (k = 0; k <= vl; k++)
				ct.type[k] = (char)lower((unsigned char)val[k]);
		}
		/* other parameters (start, start-info, charset...) are ignored */
	}
	*out = ct;
	return ERR_OK;
}

bool mp_media_is(const char *s, size_t n, const char *media)
{
	size_t i = skip_ws(s, n, 0), e;

	e = i;
	while (e < n && s[e] != ';' && s[e] != ' ' && s[e] != '\t')
		e++;
	if (!ieq(s + i, e - i, media))
		return false;
	e = skip_ws(s, n, e);
	return e == n || s[e] == ';';
}

/* ---- parser ---- */

static enum err fail(struct mp_parser *p, enum err e, const char *why)
{
	p->err = e;
	p->why = why;
	p->state = S_ERROR;
	return e;
}

void mp_parser_init(struct mp_parser *p, const char *boundary, const struct mp_cb *cb, const struct mp_limits *lim)
{
	size_t bl = strlen(boundary);

	memset(p, 0, sizeof *p);
	p->cb = *cb;
	p->lim.max_part = lim ? lim->max_part : MP_MAX_PART_SIZE;
	p->lim.max_parts = lim ? lim->max_parts : MP_MAX_PARTS;
	p->err = ERR_AGAIN;
	if (bl == 0 || bl > MP_BOUNDARY_MAX) {
		fail(p, ERR_PARSE, "bad boundary");
		return;
	}
	memcpy(p->delim, "\n--", 3);
	memcpy(p->delim + 3, boundary, bl);
	p->dlen = bl + 3;
	/* the first delimiter may open the body: as if a line end preceded */
	p->state = S_PREAMBLE;
	p->m = 1;
}

/* Body bytes: to the callback in a part, dropped in the preamble. */
static enum err emit(struct mp_parser *p, const uint8_t *d, size_t n)
{
	enum err rc;

	if (n == 0 || p->state != S_BODY)
		return ERR_OK;
	if (n > p->lim.max_part - p->body)
		return fail(p, ERR_LIMIT, "a part is larger than the limit");
	p->body += n;
	if (p->part.has_length && p->body > p->part.length)
		return fail(p, ERR_PARSE, "a part is longer than its Content-Length");
	rc = p->cb.part_data ? p->cb.part_data(p->cb.ctx, d, n) : ERR_OK;
	return rc == ERR_OK ? ERR_OK : fail(p, rc, "the part was refused");
}

static enum err flush_held(struct mp_parser *p)
{
	enum err rc = ERR_OK;

	if (p->cr) {
		p->cr = false;
		rc = emit(p, (const uint8_t *)"\r", 1);
	}
	if (rc == ERR_OK && p->m > 0)
		rc = emit(p, (const uint8_t *)p->delim, p->m);
	p->m = 0;
	return rc;
}

static enum err delim_seen(struct mp_parser *p)
{
	enum err rc;

	p->cr = false;
	p->m = 0;
	if (p->state == S_BODY) {
		if (p->part.has_length && p->body != p->part.length)
			return fail(p, ERR_PARSE, "a part is shorter than its Content-Length");
		rc = p->cb.part_end ? p->cb.part_end(p->cb.ctx) : ERR_OK;
		if (rc != ERR_OK)
			return fail(p, rc, "the part was refused");
	}
	p->state = S_AFTER_DELIM;
	return ERR_OK;
}

static enum err header_line(struct mp_parser *p)
{
	char *l = p->line, *colon;
	size_t n = p->llen, nl, vs, ve;

	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n == 0) {   /* end of the headers */
		enum err rc;
		if (p->parts >= p->lim.max_parts)
			return fail(p, ERR_LIMIT, "too many parts");
		if (p->part.ctype[0] && strncmp(p->part.ctype, "multipart/", 10) == 0)
			return fail(p, ERR_UNSUPPORTED, "nested multipart is not supported");
		p->part.index = p->parts++;
		p->state = S_BODY;
		p->body = 0;
		rc = p->cb.part_begin ? p->cb.part_begin(p->cb.ctx, &p->part) : ERR_OK;
		return rc == ERR_OK ? ERR_OK : fail(p, rc, "the part was refused");
	}
	if (++p->nheaders > MP_MAX_HEADERS)
		return fail(p, ERR_LIMIT, "too many part header fields");
	colon = memchr(l, ':', n);
	if (colon == NULL || colon == l)
		return fail(p, ERR_PARSE, "malformed part header");
	nl = (size_t)(colon - l);
	for (vs = 0; vs < nl; vs++)
		if (!is_tchar((unsigned char)l[vs]))
			return fail(p, ERR_PARSE, "malformed part header name");
	vs = nl + 1;
	while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	for (size_t i = vs; i < ve; i++)
		if ((unsigned char)l[i] < 0x20 && l[i] != '\t')
			return fail(p, ERR_PARSE, "control character in a part header");
	if (ieq(l, nl, "content-type")) {
		size_t i;
		if (p->part.ctype[0] || ve == vs)
			return fail(p, ERR_PARSE, "repeated or empty part Content-Type");
		if (ve - vs > MP_HEADER_VALUE_MAX)
			return fail(p, ERR_LIMIT, "part Content-Type too long");
		for (i = vs; i < ve; i++)
			p->part.ctype[i - vs] = (char)lower((unsigned char)l[i]);
		p->part.ctype[ve - vs] = 0;
	} else if (ieq(l, nl, "content-length")) {
		uint64_t v = 0;
		size_t i;
		if (p->part.has_length || ve == vs)
			return fail(p, ERR_PARSE, "repeated or empty part Content-Length");
		for (i = vs; i < ve; i++) {
			unsigned d = (unsigned)(l[i] - '0');
			if (d > 9 || v > (UINT64_MAX - d) / 10)
				return fail(p, ERR_PARSE, "bad part Content-Length");
			v = v * 10 + d;
		}
		if (v > p->lim.max_part)
			return fail(p, ERR_LIMIT, "a part is larger than the limit");
		p->part.has_length = true;
		p->part.length = v;
	}
	/* Content-Location, Content-ID, Content-Transfer-Encoding...: ignored */
	return ERR_OK;
}

enum err mp_parser_feed(struct mp_parser *p, const uint8_t *d, size_t n)
{
	size_t i = 0;
	enum err rc;

	if (p->state == S_ERROR)
		return p->err;
	while (i < n) {
		uint8_t c;
		switch (p->state) {
		case S_DONE:
			return ERR_OK;
		case S_PREAMBLE:
		case S_BODY:
			if (p->m == 0) {
				/* the run up to the next '\n' is body, but a final '\r' */
				const uint8_t *nlp = memchr(d + i, '\n', n - i);
				size_t end = nlp ? (size_t)(nlp - d) : n;
				if (end > i) {
					bool cr_last = d[end - 1] == '\r';
					rc = flush_held(p);
					if (rc == ERR_OK)
						rc = emit(p, d + i, end - i - (cr_last ? 1 : 0));
					if (rc != ERR_OK)
						return rc;
					p->cr = cr_last;
				}
				i = end;
				if (nlp != NULL) {
					p->m = 1;
					i++;
				}
				break;
			}
			c = d[i];
			if (c == (uint8_t)p->delim[p->m]) {
				i++;
				if (++p->m == p->dlen && (rc = delim_seen(p)) != ERR_OK)
					return rc;
			} else {
				rc = flush_held(p);   /* c is read again with m == 0 */
				if (rc != ERR_OK)
					return rc;
			}
			break;
		case S_AFTER_DELIM:
			c = d[i++];
			if (c == '-')
				p->state = S_DASH;
			else if (c == ' ' || c == '\t')
				p->state = S_PAD;
			else if (c == '\r')
				p->state = S_PAD_CR;
			else if (c == '\n')
				goto headers;
			else
				return fail(p, ERR_PARSE, "the boundary appears inside a part");
			break;
		case S_DASH:
			if (d[i++] != '-')
				return fail(p, ERR_PARSE, "malformed close delimiter");
			p->state = S_DONE;
			return ERR_OK;
		case S_PAD:
			c = d[i++];
			if (c == '\r')
				p->state = S_PAD_CR;
			else if (c == '\n')
				goto headers;
			else if (c != ' ' && c != '\t')
				return fail(p, ERR_PARSE, "the boundary appears inside a part");
			break;
		case S_PAD_CR:
			if (d[i++] != '\n')
				return fail(p, ERR_PARSE, "malformed delimiter line");
headers:
			p->state = S_HEADERS;
			memset(&p->part, 0, sizeof p->part);
			p->llen = 0;
			p->hbytes = 0;
			p->nheaders = 0;
			break;
		case S_HEADERS: {
			const uint8_t *nlp = memchr(d + i, '\n', n - i);
			size_t end = nlp ? (size_t)(nlp - d) : n, take = end - i;
			if (take > sizeof p->line - p->llen)
				return fail(p, ERR_LIMIT, "a part header line is too long");
			if (take + 1 > MP_HEADERS_MAX - p->hbytes)
				return fail(p, ERR_LIMIT, "the part headers are too large");
			memcpy(p->line + p->llen, d + i, take);
			p->llen += take;
			p->hbytes += take;
			i = end;
			if (nlp != NULL) {
				i++;
				p->hbytes++;
				if (memchr(p->line, 0, p->llen) != NULL)
					return fail(p, ERR_PARSE, "NUL in a part header");
				if ((rc = header_line(p)) != ERR_OK)
					return rc;
				p->llen = 0;
			}
			break;
		}
		default:
			return fail(p, ERR_INTERNAL, "parser state");
		}
	}
	return p->state == S_DONE ? ERR_OK : ERR_AGAIN;
}

enum err mp_parser_finish(struct mp_parser *p)
{
	if (p->state == S_ERROR)
		return p->err;
	if (p->state == S_DONE)
		return ERR_OK;
	if (p->state == S_PREAMBLE && p->parts == 0)
		return fail(p, ERR_PARSE, "no boundary delimiter in the body");
	return fail(p, ERR_PARSE, "the body ends without the close delimiter (truncated)");
}

const char *mp_parser_why(const struct mp_parser *p)
{
	return p->state == S_ERROR && p->why ? p->why : "";
}

/* ---- writer ---- */

void mp_boundary_make(const uint8_t rnd[16], char out[MP_BOUNDARY_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	memcpy(out, "dv-", 3);
	for (i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex[rnd[i] >> 4];
		out[4 + 2 * i] = hex[rnd[i] & 15];
	}
	out[35] = 0;
}

void mp_write_part_head(struct wbuf *w, const char *boundary, const char *ctype, bool first)
{
	wbuf_printf(w, "%s--%s\r\nContent-Type: %s\r\n\r\n", first ? "" : "\r\n", boundary, ctype);
}

void mp_write_close(struct wbuf *w, const char *boundary)
{
	wbuf_printf(w, "\r\n--%s--\r\n", boundary);
}
