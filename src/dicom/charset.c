/* charset.c: DICOM Specific Character Set (0008,0005): parsing of the
 * defined terms and conversion of text values to and from UTF-8 (PS3.5
 * 6.1.2 and Annexes H, I, J, K). Single-byte sets, ISO 2022 code
 * extensions (G0/G1 designations by escape sequence, reset at control
 * characters and delimiters), UTF-8, GB18030 and GBK. Table conversions go
 * through glibc iconv with descriptors opened and closed within each call,
 * so there is no shared mutable state. Pure (bytes in, bytes out).
 * Layer: dicom. */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include "dicomvault/charset.h"
#include "dicomvault/rd.h"

/* "No set designated" for G1, and "bytes are already UTF-8" for a run. */
#define CHARSET_NOSET ((uint8_t)CS__COUNT)

/* Pending bytes converted by one iconv call. */
#define CHARSET_RUN_CAP 512u

/* Bytes of one character in a single-byte or multi-byte set (at most 3:
 * EUC-JP 0x8F + 2 for JIS X 0212). */
#define CHARSET_CHAR_BYTES 8u

enum kind {
	K_ASCII,     /* default repertoire (ISO-IR 6) */
	K_SB,        /* ISO 8859 style: ASCII in G0, a 96-set (or TIS-620) in G1 */
	K_JIS0201,   /* ISO-IR 13 katakana in G1, ISO-IR 14 romaji in G0 */
	K_UTF8,      /* ISO_IR 192; no code extensions */
	K_WHOLE,     /* GB18030, GBK: multi-byte, no code extensions */
	K_G0MB,      /* 94x94 set designated to G0 (JIS X 0208, JIS X 0212) */
	K_G1MB       /* 94x94 set designated to G1 (KS X 1001, GB 2312) */
};

struct csinfo {
	const char *term;       /* defined term without code extensions, or NULL */
	const char *term2022;   /* defined term with code extensions, or NULL */
	const char *iconv;      /* glibc name of the byte form we hand to iconv */
	uint8_t kind;           /* enum kind */
};

static const struct csinfo info[CS__COUNT] = {
	[CS_DEFAULT] = { "ISO_IR 6", "ISO 2022 IR 6", NULL, K_ASCII },
	[CS_IR100] = { "ISO_IR 100", "ISO 2022 IR 100", "ISO-8859-1", K_SB },
	[CS_IR101] = { "ISO_IR 101", "ISO 2022 IR 101", "ISO-8859-2", K_SB },
	[CS_IR109] = { "ISO_IR 109", "ISO 2022 IR 109", "ISO-8859-3", K_SB },
	[CS_IR110] = { "ISO_IR 110", "ISO 2022 IR 110", "ISO-8859-4", K_SB },
	[CS_IR144] = { "ISO_IR 144", "ISO 2022 IR 144", "ISO-8859-5", K_SB },
	[CS_IR127] = { "ISO_IR 127", "ISO 2022 IR 127", "ISO-8859-6", K_SB },
	[CS_IR126] = { "ISO_IR 126", "ISO 2022 IR 126", "ISO-8859-7", K_SB },
	[CS_IR138] = { "ISO_IR 138", "ISO 2022 IR 138", "ISO-8859-8", K_SB },
	[CS_IR148] = { "ISO_IR 148", "ISO 2022 IR 148", "ISO-8859-9", K_SB },
	[CS_IR166] = { "ISO_IR 166", "ISO 2022 IR 166", "TIS-620", K_SB },
	[CS_IR13] = { "ISO_IR 13", "ISO 2022 IR 13", NULL, K_JIS0201 },
	[CS_IR192] = { "ISO_IR 192", NULL, NULL, K_UTF8 },
	[CS_GB18030] = { "GB18030", NULL, "GB18030", K_WHOLE },
	[CS_GBK] = { "GBK", NULL, "GBK", K_WHOLE },
	/* JIS X 0208 / 0212 go to iconv as EUC-JP (GL bytes | 0x80, and 0x8F
	 * before JIS X 0212); KS X 1001 and GB 2312 in G1 are EUC-KR / EUC-CN. */
	[CS_IR87] = { NULL, "ISO 2022 IR 87", "EUC-JP", K_G0MB },
	[CS_IR159] = { NULL, "ISO 2022 IR 159", "EUC-JP", K_G0MB },
	[CS_IR149] = { NULL, "ISO 2022 IR 149", "EUC-KR", K_G1MB },
	[CS_IR58] = { NULL, "ISO 2022 IR 58", "EUC-CN", K_G1MB },
};

/* Escape sequences (PS3.3 Tables C.12-3 and C.12-4), bytes after ESC. */
struct escseq {
	uint8_t len;
	uint8_t b[3];
	uint8_t id;    /* enum charset_id */
	uint8_t g;     /* 0: designates G0, 1: designates G1 */
};

static const struct escseq escs[] = {
	{ 2, { '(', 'B', 0 }, CS_DEFAULT, 0 },
	{ 2, { '(', 'J', 0 }, CS_IR13, 0 },
	{ 2, { ')', 'I', 0 }, CS_IR13, 1 },
	{ 2, { '-', 'A', 0 }, CS_IR100, 1 },
	{ 2, { '-', 'B', 0 }, CS_IR101, 1 },
	{ 2, { '-', 'C', 0 }, CS_IR109, 1 },
	{ 2, { '-', 'D', 0 }, CS_IR110, 1 },
	{ 2, { '-', 'L', 0 }, CS_IR144, 1 },
	{ 2, { '-', 'G', 0 }, CS_IR127, 1 },
	{ 2, { '-', 'F', 0 }, CS_IR126, 1 },
	{ 2, { '-', 'H', 0 }, CS_IR138, 1 },
	{ 2, { '-', 'M', 0 }, CS_IR148, 1 },
	{ 2, { '-', 'T', 0 }, CS_IR166, 1 },
	{ 2, { '$', 'B', 0 }, CS_IR87, 0 },
	{ 3, { '$', '(', 'D' }, CS_IR159, 0 },
	{ 3, { '$', ')', 'C' }, CS_IR149, 1 },
	{ 3, { '$', ')', 'A' }, CS_IR58, 1 },
};

#define CHARSET_NESCS (sizeof escs / sizeof escs[0])

/* ---- small helpers ---------------------------------------------------- */

static bool cs_has(const struct dcm_charset *cs, uint8_t id)
{
	size_t i;

	for (i = 0; i < cs->n && i < CHARSET_MAX_TERMS; i++)
		if (cs->terms[i] == id)
			return true;
	return false;
}

static uint8_t cs_first(const struct dcm_charset *cs)
{
	return cs->n > 0 ? cs->terms[0] : (uint8_t)CS_DEFAULT;
}

/* A struct that charset_parse() could have produced. */
static WUR enum err cs_check(const struct dcm_charset *cs)
{
	size_t i;
	uint8_t k;

	if (cs == NULL || cs->n > CHARSET_MAX_TERMS)
		return ERR_INTERNAL;
	for (i = 0; i < cs->n; i++) {
		if (cs->terms[i] >= CS__COUNT)
			return ERR_INTERNAL;
		k = info[cs->terms[i]].kind;
		if ((k == K_UTF8 || k == K_WHOLE) && cs->n > 1)
			return ERR_UNSUPPORTED;
		if ((k == K_G0MB || k == K_G1MB) && !cs->iso2022)
			return ERR_INTERNAL;
	}
	if (cs->n > 1 && !cs->iso2022)
		return ERR_INTERNAL;
	return ERR_OK;
}

/* The initial G0 and G1 designations: those of value 1 (PS3.5 6.1.2.5.2).
 * A G0 multi-byte set as value 1 leaves G0 ASCII (it needs its escape). */
static void initial_state(const struct dcm_charset *cs, uint8_t *g0, uint8_t *g1)
{
	uint8_t first = cs_first(cs);

	*g0 = CS_DEFAULT;
	*g1 = CHARSET_NOSET;
	switch (info[first].kind) {
	case K_SB:
	case K_G1MB:
		*g1 = first;
		break;
	case K_JIS0201:
		*g0 = CS_IR13;
		*g1 = CS_IR13;
		break;
	default:
		break;
	}
}

/* Where ISO 2022 designations return to the initial ones (PS3.5 6.1.2.5.3). */
static bool is_reset(uint8_t b, bool is_pn)
{
	return b == '\t' || b == '\n' || b == '\f' || b == '\r' || b == '\\' ||
	       (is_pn && (b == '^' || b == '='));
}

/* Strict UTF-8: no overlong forms, surrogates or values above U+10FFFF.
 * On failure r is left where it was. */
static WUR enum err utf8_next(struct rd *r, uint32_t *cp)
{
	size_t save = r->pos, i, more;
	uint8_t b0, b;
	uint32_t c, min;

	if (rd_get_u8(r, &b0) != ERR_OK)
		return ERR_PARSE;
	if (b0 < 0x80) {
		*cp = b0;
		return ERR_OK;
	}
	if (b0 >= 0xC2 && b0 <= 0xDF) {
		more = 1; c = b0 & 0x1Fu; min = 0x80;
	} else if (b0 >= 0xE0 && b0 <= 0xEF) {
		more = 2; c = b0 & 0x0Fu; min = 0x800;
	} else if (b0 >= 0xF0 && b0 <= 0xF4) {
		more = 3; c = b0 & 0x07u; min = 0x10000;
	} else {
		goto bad;
	}
	for (i = 0; i < more; i++) {
		if (rd_get_u8(r, &b) != ERR_OK || (b & 0xC0u) != 0x80u)
			goto bad;
		c = (c << 6) | (b & 0x3Fu);
	}
	if (c < min || c > 0x10FFFFu || (c >= 0xD800u && c <= 0xDFFFu))
		goto bad;
	*cp = c;
	return ERR_OK;
bad:
	r->pos = save;
	return ERR_PARSE;
}

size_t charset_utf8_seq_len(const uint8_t *p, size_t n)
{
	struct rd r;
	uint32_t cp;

	rd_init(&r, p, n);
	return utf8_next(&r, &cp) == ERR_OK ? r.pos : 0;
}

void charset_utf8_sanitize(const uint8_t *p, size_t n, struct wbuf *out)
{
	size_t i = 0, l;

	while (i < n) {
		l = charset_utf8_seq_len(p + i, n - i);
		if (l == 0) {
			wbuf_put(out, "\xEF\xBF\xBD", 3);
			i++;
		} else {
			wbuf_put(out, p + i, l);
			i += l;
		}
	}
}

/* cp must be a valid scalar value; returns the length (1..4). */
static size_t utf8_put(uint32_t cp, uint8_t b[4])
{
	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (uint8_t)(0xC0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (uint8_t)(0xE0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	b[0] = (uint8_t)(0xF0 | (cp >> 18));
	b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
	b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
	b[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

/* Any ESC byte: text without code extensions may not contain one. */
static bool has_esc(const uint8_t *in, size_t n)
{
	return n > 0 && memchr(in, 0x1B, n) != NULL;
}

/* ---- iconv descriptors, per call -------------------------------------- */

struct conv {
	bool to_utf8;
	iconv_t cd[CS__COUNT];
};

static void conv_init(struct conv *c, bool to_utf8)
{
	size_t i;

	c->to_utf8 = to_utf8;
	for (i = 0; i < CS__COUNT; i++)
		c->cd[i] = (iconv_t)-1;
}

static void conv_fini(struct conv *c)
{
	size_t i;

	for (i = 0; i < CS__COUNT; i++) {
		if (c->cd[i] != (iconv_t)-1)
			(void)iconv_close(c->cd[i]);
		c->cd[i] = (iconv_t)-1;
	}
}

/* The descriptor for id's iconv form, opened on first use. */
static WUR enum err conv_get(struct conv *c, uint8_t id, iconv_t *cd)
{
	const char *name;
	iconv_t d;

	if (id >= CS__COUNT || info[id].iconv == NULL)
		return ERR_INTERNAL;
	if (id == CS_IR159)
		id = CS_IR87;   /* both are EUC-JP */
	name = info[id].iconv;
	if (c->cd[id] == (iconv_t)-1) {
		d = c->to_utf8 ? iconv_open("UTF-8", name) : iconv_open(name, "UTF-8");
		if (d == (iconv_t)-1)
			return errno == EINVAL ? ERR_UNSUPPORTED : ERR_NOMEM;
		c->cd[id] = d;
	}
	*cd = c->cd[id];
	return ERR_OK;
}

/* iconv's input parameter is not const-qualified, but it is only read. */
static char *in_ptr(const uint8_t *p)
{
	return (char *)(uintptr_t)p;
}

/* Convert all of in[0..n) with cd, appending to out. Input that iconv
 * rejects (invalid, incomplete or unrepresentable) gives `bad`. */
static WUR enum err iconv_all(iconv_t cd, const uint8_t *in, size_t n,
                              struct wbuf *out, enum err bad)
{
	char tmp[1024];
	char *ip = in_ptr(in), *op;
	size_t il = n, ol, r;

	(void)iconv(cd, NULL, NULL, NULL, NULL);
	while (il > 0) {
		op = tmp;
		ol = sizeof tmp;
		r = iconv(cd, &ip, &il, &op, &ol);
		wbuf_put(out, tmp, sizeof tmp - ol);
		if (r == (size_t)-1) {
			if (errno != E2BIG)
				return bad;          /* EILSEQ, EINVAL */
			if (ol == sizeof tmp)
				return ERR_INTERNAL; /* no progress */
		} else if (r != 0) {
			return bad;                  /* lossy conversion */
		}
		if (wbuf_err(out) != ERR_OK)
			return wbuf_err(out);
	}
	op = tmp;
	ol = sizeof tmp;
	if (iconv(cd, NULL, NULL, &op, &ol) == (size_t)-1)
		return bad;
	wbuf_put(out, tmp, sizeof tmp - ol);
	return wbuf_err(out);
}

/* Convert one character; anything but a clean, complete conversion of all
 * of it is ERR_UNSUPPORTED. */
static WUR enum err iconv_one(iconv_t cd, const uint8_t *in, size_t n,
                              uint8_t *b, size_t cap, size_t *bn)
{
	char *ip = in_ptr(in), *op = (char *)b;
	size_t il = n, ol = cap;

	(void)iconv(cd, NULL, NULL, NULL, NULL);
	if (iconv(cd, &ip, &il, &op, &ol) != 0 || il != 0)
		return ERR_UNSUPPORTED;
	if (iconv(cd, NULL, NULL, &op, &ol) != 0)
		return ERR_UNSUPPORTED;
	*bn = cap - ol;
	return ERR_OK;
}

/* ---- parsing (0008,0005) ---------------------------------------------- */

/* The defined term in v, spaces around it ignored; blank is the default. */
static WUR enum err term_lookup(struct rd v, uint8_t *id, bool *is2022, bool *empty)
{
	struct rd scan = v;
	size_t n = 0, lead = 0, keep = 0, tlen, i;
	const uint8_t *t;
	uint8_t b;

	while (rd_get_u8(&scan, &b) == ERR_OK) {
		n++;
		if (b != ' ') {
			if (keep == 0)
				lead = n - 1;
			keep = n;
		}
	}
	*empty = false;
	*is2022 = false;
	if (keep == 0) {
		*id = CS_DEFAULT;
		*empty = true;
		return ERR_OK;
	}
	tlen = keep - lead;
	if (rd_skip(&v, lead) != ERR_OK || rd_view(&v, tlen, &t) != ERR_OK)
		return ERR_INTERNAL;
	for (i = 0; i < CS__COUNT; i++) {
		if (info[i].term != NULL && strlen(info[i].term) == tlen &&
		    memcmp(info[i].term, t, tlen) == 0) {
			*id = (uint8_t)i;
			return ERR_OK;
		}
		if (info[i].term2022 != NULL && strlen(info[i].term2022) == tlen &&
		    memcmp(info[i].term2022, t, tlen) == 0) {
			*id = (uint8_t)i;
			*is2022 = true;
			return ERR_OK;
		}
	}
	return ERR_UNSUPPORTED;
}

enum err charset_parse(const uint8_t *val, size_t len, struct dcm_charset *cs)
{
	struct dcm_charset tmp;
	struct rd r, scan, v;
	size_t nvals = 1, vlen;
	bool any2022 = false, standalone = false, all_empty = true, last = false;
	bool is2022, empty;
	uint8_t b, id;
	enum err rc;

	if (cs == NULL || (val == NULL && len > 0))
		return ERR_INTERNAL;
	memset(&tmp, 0, sizeof tmp);
	if (len == 0) {
		*cs = tmp;                          /* absent or empty: default */
		return ERR_OK;
	}

	rd_init(&r, val, len);
	scan = r;
	while (rd_get_u8(&scan, &b) == ERR_OK)
		if (b == '\\')
			nvals++;
	if (nvals > CHARSET_MAX_TERMS)
		return ERR_LIMIT;

	while (!last) {
		scan = r;
		vlen = 0;
		while (rd_get_u8(&scan, &b) == ERR_OK && b != '\\')
			vlen++;
		if (rd_child(&r, vlen, &v) != ERR_OK)
			return ERR_INTERNAL;
		last = rd_skip(&r, 1) != ERR_OK;    /* the backslash, if any */
		rc = term_lookup(v, &id, &is2022, &empty);
		if (rc != ERR_OK)
			return rc;
		if (tmp.n >= CHARSET_MAX_TERMS)
			return ERR_INTERNAL;
		tmp.terms[tmp.n++] = id;
		any2022 |= is2022;
		all_empty &= empty;
		standalone |= info[id].kind == K_UTF8 || info[id].kind == K_WHOLE;
	}
	if (tmp.n == 1 && all_empty)
		tmp.n = 0;                          /* blank: default repertoire */
	/* UTF-8, GB18030 and GBK exclude code extensions (PS3.5 6.1.2.5.4). */
	if (standalone && tmp.n > 1)
		return ERR_UNSUPPORTED;
	/* Several values mean code extensions; a single-byte term written
	 * without "2022" among them is taken as its ISO 2022 form. */
	tmp.iso2022 = any2022 || tmp.n > 1;
	*cs = tmp;
	return ERR_OK;
}

const char *charset_term(enum charset_id id, bool iso2022)
{
	if ((unsigned)id >= CS__COUNT)
		return NULL;
	if (id == CS_DEFAULT && !iso2022)
		return "";                          /* the default has no term */
	if (iso2022 && info[id].term2022 != NULL)
		return info[id].term2022;
	if (info[id].term != NULL)
		return info[id].term;
	return info[id].term2022;
}

/* ---- decoding to UTF-8 ------------------------------------------------ */

struct dec {
	struct conv conv;
	struct wbuf *out;
	uint8_t run_cs;         /* iconv form of run[]; CHARSET_NOSET: already UTF-8 */
	size_t run_len;
	uint8_t run[CHARSET_RUN_CAP];
};

static WUR enum err dec_flush(struct dec *d)
{
	enum err rc;
	iconv_t cd;

	if (d->run_len == 0)
		return ERR_OK;
	if (d->run_cs == CHARSET_NOSET) {
		wbuf_put(d->out, d->run, d->run_len);
		rc = wbuf_err(d->out);
	} else {
		rc = conv_get(&d->conv, d->run_cs, &cd);
		if (rc == ERR_OK)
			rc = iconv_all(cd, d->run, d->run_len, d->out, ERR_PARSE);
	}
	d->run_len = 0;
	return rc;
}

/* Queue one character for conversion from set `via` (CHARSET_NOSET: b is UTF-8). */
static WUR enum err dec_put(struct dec *d, uint8_t via, const uint8_t *b, size_t n)
{
	enum err rc;

	if (via != d->run_cs) {
		if ((rc = dec_flush(d)) != ERR_OK)
			return rc;
		d->run_cs = via;
	}
	if (CHARSET_RUN_CAP - d->run_len < n) {
		if ((rc = dec_flush(d)) != ERR_OK)
			return rc;
	}
	if (n > CHARSET_RUN_CAP)
		return ERR_INTERNAL;
	memcpy(&d->run[d->run_len], b, n);
	d->run_len += n;
	return ERR_OK;
}

/* An ASCII byte: every iconv form used here maps 0x00-0x7F to itself, so
 * it joins whatever run is pending. */
static WUR enum err dec_ascii(struct dec *d, uint8_t b)
{
	return dec_put(d, d->run_cs, &b, 1);
}

/* After ESC: read the rest of an escape sequence and apply it. */
static WUR enum err dec_escape(struct rd *r, const struct dcm_charset *cs,
                               uint8_t *g0, uint8_t *g1)
{
	uint8_t seq[3], b;
	size_t n = 0, i;

	/* Intermediate bytes 02/00-02/15, then one final byte 03/00-07/14. */
	for (;;) {
		if (rd_get_u8(r, &b) != ERR_OK)
			return ERR_PARSE;            /* truncated */
		if (n >= sizeof seq)
			return ERR_PARSE;            /* too long to be one of ours */
		seq[n++] = b;
		if (b >= 0x30 && b <= 0x7E)
			break;
		if (b < 0x20 || b > 0x2F)
			return ERR_PARSE;
	}
	for (i = 0; i < CHARSET_NESCS; i++) {
		if (escs[i].len != n || memcmp(escs[i].b, seq, n) != 0)
			continue;
		/* Only sets named in (0008,0005); ASCII is always allowed. */
		if (escs[i].id != CS_DEFAULT && !cs_has(cs, escs[i].id))
			return ERR_PARSE;
		if (escs[i].g == 0)
			*g0 = escs[i].id;
		else
			*g1 = escs[i].id;
		return ERR_OK;
	}
	return ERR_PARSE;
}

static WUR enum err dec_2022(struct dec *d, const struct dcm_charset *cs, bool is_pn,
                             const uint8_t *in, size_t n)
{
	struct rd r;
	uint8_t g0, g1, init0, init1, b, b2, c[4];
	uint32_t cp;
	size_t cn;
	enum err rc;

	initial_state(cs, &init0, &init1);
	g0 = init0;
	g1 = init1;
	rd_init(&r, in, n);
	while (rd_get_u8(&r, &b) == ERR_OK) {
		if (b == 0x1B) {
			if (!cs->iso2022)
				return ERR_PARSE;
			if ((rc = dec_escape(&r, cs, &g0, &g1)) != ERR_OK)
				return rc;
			continue;
		}
		if (b <= 0x20 || b == 0x7F) {        /* C0, SP, DEL: in any state */
			if ((rc = dec_ascii(d, b)) != ERR_OK)
				return rc;
			if (is_reset(b, is_pn)) {
				g0 = init0;
				g1 = init1;
			}
			continue;
		}
		if (b < 0x80) {                       /* GL: G0 */
			if (info[g0].kind == K_G0MB) {
				if (rd_get_u8(&r, &b2) != ERR_OK || b2 < 0x21 || b2 > 0x7E)
					return ERR_PARSE;
				cn = 0;
				if (g0 == CS_IR159)
					c[cn++] = 0x8F;
				c[cn++] = (uint8_t)(b | 0x80);
				c[cn++] = (uint8_t)(b2 | 0x80);
				if ((rc = dec_put(d, g0, c, cn)) != ERR_OK)
					return rc;
				continue;
			}
			/* ASCII, or ISO-IR 14 romaji read as ASCII so that 05/12
			 * stays the value delimiter. */
			if ((rc = dec_ascii(d, b)) != ERR_OK)
				return rc;
			if (is_reset(b, is_pn)) {
				g0 = init0;
				g1 = init1;
			}
			continue;
		}
		/* 0x80-0xFF: G1 (and C1, which only ISO 8859 sets pass on). */
		if (g1 == CHARSET_NOSET)
			return ERR_PARSE;
		switch (info[g1].kind) {
		case K_SB:
			rc = dec_put(d, g1, &b, 1);
			break;
		case K_JIS0201:
			if (b < 0xA1 || b > 0xDF)
				return ERR_PARSE;
			cp = 0xFF61u + (uint32_t)(b - 0xA1);
			cn = utf8_put(cp, c);
			rc = dec_put(d, CHARSET_NOSET, c, cn);
			break;
		case K_G1MB:
			if (b < 0xA1 || b > 0xFE || rd_get_u8(&r, &b2) != ERR_OK ||
			    b2 < 0xA1 || b2 > 0xFE)
				return ERR_PARSE;
			c[0] = b;
			c[1] = b2;
			rc = dec_put(d, g1, c, 2);
			break;
		default:
			rc = ERR_INTERNAL;
			break;
		}
		if (rc != ERR_OK)
			return rc;
	}
	return dec_flush(d);
}

static WUR enum err dec_utf8(const uint8_t *in, size_t n, struct wbuf *out)
{
	struct rd r;
	uint32_t cp;

	if (has_esc(in, n))
		return ERR_PARSE;
	rd_init(&r, in, n);
	while (rd_remaining(&r) > 0)
		if (utf8_next(&r, &cp) != ERR_OK)
			return ERR_PARSE;
	wbuf_put(out, in, n);
	return wbuf_err(out);
}

enum err charset_to_utf8(const struct dcm_charset *cs, bool is_pn,
                         const uint8_t *in, size_t n, struct wbuf *out)
{
	struct dec d;
	size_t mark;
	uint8_t first;
	iconv_t cd;
	enum err rc;

	if (out == NULL)
		return ERR_INTERNAL;
	if ((rc = wbuf_err(out)) != ERR_OK)
		return rc;
	if ((rc = cs_check(cs)) != ERR_OK)
		return rc;
	if (n == 0)
		return ERR_OK;
	if (in == NULL)
		return ERR_INTERNAL;

	mark = out->len;
	conv_init(&d.conv, true);
	d.out = out;
	d.run_cs = CHARSET_NOSET;
	d.run_len = 0;
	first = cs_first(cs);

	switch (info[first].kind) {
	case K_UTF8:
		rc = dec_utf8(in, n, out);
		break;
	case K_WHOLE:
		if (has_esc(in, n)) {
			rc = ERR_PARSE;
			break;
		}
		rc = conv_get(&d.conv, first, &cd);
		if (rc == ERR_OK)
			rc = iconv_all(cd, in, n, out, ERR_PARSE);
		break;
	default:
		rc = dec_2022(&d, cs, is_pn, in, n);
		break;
	}
	if (rc == ERR_OK)
		rc = wbuf_err(out);
	conv_fini(&d.conv);
	if (rc != ERR_OK) {
		/* Nothing appended, and out's error state as it was (ERR_OK). */
		out->len = mark;
		out->err = ERR_OK;
	}
	return rc;
}

enum err charset_to_utf8_lossy(const struct dcm_charset *cs, bool is_pn,
                               const uint8_t *in, size_t n, struct wbuf *out)
{
	enum err rc;

	if (out == NULL)
		return ERR_INTERNAL;
	rc = charset_to_utf8(cs, is_pn, in, n, out);
	if (rc != ERR_PARSE && rc != ERR_UNSUPPORTED)
		return rc;   /* done, or out is full */
	if (in != NULL)
		charset_utf8_sanitize(in, n, out);
	return wbuf_err(out);
}

/* ---- encoding from UTF-8 ---------------------------------------------- */

struct enc {
	const struct dcm_charset *cs;
	struct conv conv;
	struct wbuf *out;
	uint8_t g0, g1, init0, init1;
};

static WUR enum err enc_escape(struct enc *e, uint8_t id, uint8_t g)
{
	size_t i;

	if (!e->cs->iso2022)
		return ERR_INTERNAL;
	for (i = 0; i < CHARSET_NESCS; i++) {
		if (escs[i].id == id && escs[i].g == g) {
			wbuf_putc(e->out, 0x1B);
			wbuf_put(e->out, escs[i].b, escs[i].len);
			if (g == 0)
				e->g0 = id;
			else
				e->g1 = id;
			return wbuf_err(e->out);
		}
	}
	return ERR_INTERNAL;
}

/* The bytes of cp (>= 0x80) in set id, in their GL (G0) or GR (G1) form.
 * ERR_UNSUPPORTED: not in the set. */
static WUR enum err enc_try(struct enc *e, uint8_t id, uint32_t cp,
                            const uint8_t *u, size_t un, uint8_t *b, size_t *bn)
{
	uint8_t t[CHARSET_CHAR_BYTES];
	size_t tn = 0;
	iconv_t cd;
	enum err rc;

	switch (info[id].kind) {
	case K_JIS0201:
		if (cp < 0xFF61u || cp > 0xFF9Fu)
			return ERR_UNSUPPORTED;
		b[0] = (uint8_t)(0xA1u + (cp - 0xFF61u));
		*bn = 1;
		return ERR_OK;
	case K_SB:
	case K_G0MB:
	case K_G1MB:
		break;
	default:
		return ERR_UNSUPPORTED;
	}
	if ((rc = conv_get(&e->conv, id, &cd)) != ERR_OK)
		return rc;
	if ((rc = iconv_one(cd, u, un, t, sizeof t, &tn)) != ERR_OK)
		return rc;
	switch (info[id].kind) {
	case K_SB:
		if (tn != 1 || t[0] < 0x80)
			return ERR_UNSUPPORTED;
		b[0] = t[0];
		*bn = 1;
		return ERR_OK;
	case K_G1MB:
		if (tn != 2 || t[0] < 0xA1 || t[0] > 0xFE || t[1] < 0xA1 || t[1] > 0xFE)
			return ERR_UNSUPPORTED;
		b[0] = t[0];
		b[1] = t[1];
		*bn = 2;
		return ERR_OK;
	default: /* K_G0MB, from EUC-JP */
		if (id == CS_IR87 && tn == 2 && t[0] >= 0xA1 && t[0] <= 0xFE &&
		    t[1] >= 0xA1 && t[1] <= 0xFE) {
			b[0] = t[0] & 0x7F;
			b[1] = t[1] & 0x7F;
		} else if (id == CS_IR159 && tn == 3 && t[0] == 0x8F &&
		           t[1] >= 0xA1 && t[1] <= 0xFE && t[2] >= 0xA1 && t[2] <= 0xFE) {
			b[0] = t[1] & 0x7F;
			b[1] = t[2] & 0x7F;
		} else {
			return ERR_UNSUPPORTED;
		}
		*bn = 2;
		return ERR_OK;
	}
}

/* Write cp >= 0x80 with the first set that has it: the ones designated
 * now, then the terms of (0008,0005) in order. */
static WUR enum err enc_char(struct enc *e, uint32_t cp)
{
	uint8_t u[4], b[CHARSET_CHAR_BYTES], cand[CHARSET_MAX_TERMS + 2], id;
	size_t un, bn = 0, nc = 0, i;
	bool g1set;
	enum err rc;

	un = utf8_put(cp, u);
	if (e->g1 != CHARSET_NOSET)
		cand[nc++] = e->g1;
	if (info[e->g0].kind == K_G0MB)
		cand[nc++] = e->g0;
	for (i = 0; i < e->cs->n && i < CHARSET_MAX_TERMS; i++)
		cand[nc++] = e->cs->terms[i];
	for (i = 0; i < nc; i++) {
		id = cand[i];
		rc = enc_try(e, id, cp, u, un, b, &bn);
		if (rc == ERR_UNSUPPORTED)
			continue;
		if (rc != ERR_OK)
			return rc;
		g1set = info[id].kind != K_G0MB;
		if (g1set && e->g1 != id)
			rc = enc_escape(e, id, 1);
		else if (!g1set && e->g0 != id)
			rc = enc_escape(e, id, 0);
		if (rc != ERR_OK)
			return rc;
		wbuf_put(e->out, b, bn);
		return wbuf_err(e->out);
	}
	return ERR_UNSUPPORTED;
}

static WUR enum err enc_2022(struct enc *e, bool is_pn, const uint8_t *in, size_t n)
{
	struct rd r;
	uint32_t cp;
	uint8_t b;
	bool reset, ctl;
	enum err rc;

	initial_state(e->cs, &e->init0, &e->init1);
	e->g0 = e->init0;
	e->g1 = e->init1;
	rd_init(&r, in, n);
	while (rd_remaining(&r) > 0) {
		if (utf8_next(&r, &cp) != ERR_OK)
			return ERR_PARSE;
		if (cp == 0x1B)
			return ERR_UNSUPPORTED;   /* reserved for code extensions */
		if (cp >= 0x80) {
			if ((rc = enc_char(e, cp)) != ERR_OK)
				return rc;
			continue;
		}
		b = (uint8_t)cp;
		reset = is_reset(b, is_pn);
		ctl = b < 0x20 || b == 0x7F;
		/* The initial G0 must be active at controls and delimiters,
		 * and some single-byte G0 for any other ASCII graphic. */
		if ((reset || ctl) && e->g0 != e->init0)
			rc = enc_escape(e, e->init0, 0);
		else if (b != 0x20 && info[e->g0].kind == K_G0MB)
			rc = enc_escape(e, e->init0, 0);
		else
			rc = ERR_OK;
		if (rc != ERR_OK)
			return rc;
		wbuf_putc(e->out, (char)b);
		if (reset) {
			e->g0 = e->init0;
			e->g1 = e->init1;
		}
	}
	if (e->g0 != e->init0)
		if ((rc = enc_escape(e, e->init0, 0)) != ERR_OK)
			return rc;
	return wbuf_err(e->out);
}

/* Check UTF-8 and refuse ESC, for the sets without code extensions. */
static WUR enum err utf8_check_no_esc(const uint8_t *in, size_t n)
{
	struct rd r;
	uint32_t cp;

	rd_init(&r, in, n);
	while (rd_remaining(&r) > 0) {
		if (utf8_next(&r, &cp) != ERR_OK)
			return ERR_PARSE;
		if (cp == 0x1B)
			return ERR_UNSUPPORTED;
	}
	return ERR_OK;
}

enum err charset_from_utf8(const struct dcm_charset *cs, bool is_pn,
                           const uint8_t *in, size_t n, struct wbuf *out)
{
	struct enc e;
	size_t mark;
	uint8_t first;
	iconv_t cd;
	enum err rc;

	if (out == NULL)
		return ERR_INTERNAL;
	if ((rc = wbuf_err(out)) != ERR_OK)
		return rc;
	if ((rc = cs_check(cs)) != ERR_OK)
		return rc;
	if (n == 0)
		return ERR_OK;
	if (in == NULL)
		return ERR_INTERNAL;

	mark = out->len;
	e.cs = cs;
	e.out = out;
	conv_init(&e.conv, false);
	first = cs_first(cs);

	switch (info[first].kind) {
	case K_UTF8:
		rc = utf8_check_no_esc(in, n);
		if (rc == ERR_OK) {
			wbuf_put(out, in, n);
			rc = wbuf_err(out);
		}
		break;
	case K_WHOLE:
		rc = utf8_check_no_esc(in, n);
		if (rc == ERR_OK)
			rc = conv_get(&e.conv, first, &cd);
		if (rc == ERR_OK)
			rc = iconv_all(cd, in, n, out, ERR_UNSUPPORTED);
		break;
	default:
		rc = enc_2022(&e, is_pn, in, n);
		break;
	}
	if (rc == ERR_OK)
		rc = wbuf_err(out);
	conv_fini(&e.conv);
	if (rc != ERR_OK) {
		out->len = mark;
		out->err = ERR_OK;
	}
	return rc;
}
