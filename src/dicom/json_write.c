/* json_write.c: data set to DICOM JSON (PS3.18 F.2). Text is converted to
 * UTF-8 by Specific Character Set; numbers follow F.2.3; binary values are
 * InlineBinary (base64, streamed) or BulkDataURI. Layer: dicom. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/charset.h"
#include "dicomvault/json.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

#define JFLUSH (64u * 1024)

struct jw {
	const struct dcm_file *f;
	const struct dcm_json_opts *o;
	struct sink *k;
	struct wbuf w;
	enum err err;
	uint32_t path[DCM_MAX_DEPTH + 2];
	unsigned depth;
};

static void jflush(struct jw *j)
{
	if (j->err == ERR_OK)
		j->err = wbuf_err(&j->w);
	if (j->err == ERR_OK && j->w.len)
		j->err = sink_write(j->k, j->w.p, j->w.len);
	wbuf_reset(&j->w);
}

static void maybe_flush(struct jw *j)
{
	if (j->w.len >= JFLUSH)
		jflush(j);
}

/* A JSON string from UTF-8 bytes; invalid sequences become U+FFFD. */
static void put_jstr(struct wbuf *w, const uint8_t *p, size_t n)
{
	size_t i = 0;

	wbuf_putc(w, '"');
	while (i < n) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\') {
			wbuf_putc(w, '\\');
			wbuf_putc(w, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': wbuf_puts(w, "\\n"); break;
			case '\r': wbuf_puts(w, "\\r"); break;
			case '\t': wbuf_puts(w, "\\t"); break;
			default: wbuf_printf(w, "\\u%04x", c); break;
			}
			i++;
		} else if (c < 0x80) {
			wbuf_putc(w, (char)c);
			i++;
		} else {
			size_t len = charset_utf8_seq_len(p + i, n - i);
			if (len > 0) {
				wbuf_put(w, p + i, len);
				i += len;
			} else {
				wbuf_puts(w, "\xEF\xBF\xBD");
				i++;
			}
		}
	}
	wbuf_putc(w, '"');
}

static const char b64tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Streaming base64 encoder as a sink. */
struct b64 {
	struct jw *j;
	uint8_t carry[3];
	unsigned nc;
};

static void b64_block(struct wbuf *w, const uint8_t *b, unsigned n)
{
	char out[4];
	uint32_t v = (uint32_t)b[0] << 16 | (n > 1 ? (uint32_t)b[1] << 8 : 0) | (n > 2 ? b[2] : 0);

	out[0] = b64tab[(v >> 18) & 63];
	out[1] = b64tab[(v >> 12) & 63];
	out[2] = n > 1 ? b64tab[(v >> 6) & 63] : '=';
	out[3] = n > 2 ? b64tab[v & 63] : '=';
	wbuf_put(w, out, 4);
}

static enum err b64_write(void *ctx, const void *data, size_t n)
{
	struct b64 *b = ctx;
	const uint8_t *p = data;

	while (n > 0) {
		b->carry[b->nc++] = *p++;
		n--;
		if (b->nc == 3) {
			b64_block(&b->j->w, b->carry, 3);
			b->nc = 0;
			/* fast path for whole blocks */
			while (n >= 3) {
				b64_block(&b->j->w, p, 3);
				p += 3;
				n -= 3;
				if (b->j->w.len >= JFLUSH) {
					jflush(b->j);
					if (b->j->err != ERR_OK)
						return b->j->err;
				}
			}
		}
	}
	maybe_flush(b->j);
	return b->j->err;
}

static void put_base64(struct jw *j, uint64_t off, uint32_t len, const uint8_t *val)
{
	struct b64 b = { j, { 0 }, 0 };
	struct sink k = { b64_write, &b };

	if (j->err != ERR_OK)
		return;
	j->err = dcm_bulk_copy(j->f, off, len, val, &k);
	if (j->err == ERR_OK && b.nc)
		b64_block(&j->w, b.carry, b.nc);
}

/* Trims padding: trailing spaces (NULs for UI), leading spaces where the
 * VR allows them to be insignificant. */
static void trim(uint16_t vr, const uint8_t **p, size_t *n)
{
	bool lead = vr != VR_LT && vr != VR_ST && vr != VR_UT && vr != VR_UR && vr != VR_PN;

	while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == 0))
		(*n)--;
	if (lead)
		while (*n > 0 && (*p)[0] == ' ') {
			(*p)++;
			(*n)--;
		}
}

/* Is s (len n) a JSON number? */
static bool json_number(const uint8_t *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return false;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return false;
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == n;
}

static void put_double(struct wbuf *w, double d, int prec)
{
	char b[40];

	if (!isfinite(d)) {
		wbuf_puts(w, isnan(d) ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	snprintf(b, sizeof b, "%.*g", prec, d);
	wbuf_puts(w, b);
}

/* One IS or DS value: as written if already a JSON number, else parsed. */
static void put_decimal(struct wbuf *w, uint16_t vr, const uint8_t *s, size_t n)
{
	char tmp[64];
	char *end;

	if (n == 0) {
		wbuf_puts(w, "null");
		return;
	}
	if (n < sizeof tmp) {
		memcpy(tmp, s, n);
		tmp[n] = 0;
		if (json_number(s, n) && !(n > 1 && s[0] == '0' && s[1] != '.') &&
		    !(n > 2 && s[0] == '-' && s[1] == '0' && s[2] != '.')) {
			/* as written, if a JSON parser can hold it: integers within
			 * +-(2^53-1) (IS) or 64 bits (DS), reals that are finite */
			bool integral = memchr(s, '.', n) == NULL && memchr(s, 'e', n) == NULL && memchr(s, 'E', n) == NULL;
			errno = 0;
			if (integral) {
				long long v = strtoll(tmp, &end, 10);
				if (errno == 0 && (vr == VR_DS || (v <= 9007199254740991LL && v >= -9007199254740991LL))) {
					wbuf_put(w, s, n);
					return;
				}
			} else if (isfinite(strtod(tmp, &end)) && errno == 0) {
				wbuf_put(w, s, n);
				return;
			}
			if (vr == VR_IS) {
				put_jstr(w, s, n);   /* CP 1861: a string when a number cannot hold it */
				return;
			}
		}
	}
	if (n < sizeof tmp) {
		memcpy(tmp, s, n);
		tmp[n] = 0;
		if (vr == VR_IS) {
			long long v;
			errno = 0;
			v = strtoll(tmp, &end, 10);
			if (end != tmp && *end == 0 && errno == 0 && v <= 9007199254740991LL && v >= -9007199254740991LL) {
				wbuf_printf(w, "%lld", v);
				return;
			}
			put_jstr(w, s, n);   /* beyond what a JSON number holds exactly: a string (CP 1861) */
			return;
		}
		{
			double d = strtod(tmp, &end);
			if (end != tmp && *end == 0 && isfinite(d)) {
				put_double(w, d, 17);
				return;
			}
		}
	}
	put_jstr(w, s, n);  /* not a number: keep the text */
}

static void put_pn(struct wbuf *w, const uint8_t *s, size_t n)
{
	static const char *groups[] = { "Alphabetic", "Ideographic", "Phonetic" };
	size_t start = 0, i;
	unsigned g = 0;
	bool any = false;

	if (n == 0) {
		wbuf_puts(w, "null");
		return;
	}
	wbuf_putc(w, '{');
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '=') {
			size_t len = i - start;
			if (len > 0 && g < 3) {
				if (any)
					wbuf_putc(w, ',');
				wbuf_printf(w, "\"%s\":", groups[g]);
				put_jstr(w, s + start, len);
				any = true;
			}
			g++;
			start = i + 1;
		}
	}
	wbuf_putc(w, '}');
}

static void put_strings(struct jw *j, const struct dcm_charset *cs, const struct dcm_elem *e)
{
	const uint8_t *p = e->val;
	size_t n = e->len, start, i;
	struct wbuf conv;
	bool single = vr_is_single_text(e->vr);
	bool first = true;

	wbuf_init(&conv, (size_t)e->len * 4 + 64);
	if (vr_uses_charset(e->vr)) {
		if (charset_to_utf8(cs, e->vr == VR_PN, p, n, &conv) == ERR_OK && wbuf_err(&conv) == ERR_OK) {
			p = conv.p;
			n = conv.len;
		}
	}
	trim(VR_LT, &p, &n);
	if (e->vr == VR_UI)
		while (n > 0 && p[n - 1] == 0)
			n--;
	if (n == 0) {
		wbuf_fini(&conv);
		return;   /* only padding: an empty value (PS3.18 F.2.5) */
	}
	wbuf_puts(&j->w, ",\"Value\":[");
	start = 0;
	for (i = 0; i <= n; i++) {
		if (i == n || (!single && p[i] == '\\')) {
			const uint8_t *v = p + start;
			size_t len = i - start;
			trim(e->vr, &v, &len);
			if (!first)
				wbuf_putc(&j->w, ',');
			first = false;
			if (e->vr == VR_PN)
				put_pn(&j->w, v, len);
			else if (e->vr == VR_IS || e->vr == VR_DS)
				put_decimal(&j->w, e->vr, v, len);
			else if (len == 0)
				wbuf_puts(&j->w, "null");
			else
				put_jstr(&j->w, v, len);
			start = i + 1;
			maybe_flush(j);
		}
	}
	wbuf_putc(&j->w, ']');
	wbuf_fini(&conv);
}

static void put_numbers(struct jw *j, const struct dcm_elem *e, const uint8_t *val)
{
	unsigned sz = vr_fixed_size(e->vr);
	uint32_t i, count = sz ? e->len / sz : 0;
	struct wbuf *w = &j->w;

	wbuf_puts(w, ",\"Value\":[");
	for (i = 0; i < count; i++) {
		const uint8_t *b = val + (size_t)i * sz;
		if (i)
			wbuf_putc(w, ',');
		switch (e->vr) {
		case VR_US: wbuf_printf(w, "%u", load_u16le(b)); break;
		case VR_SS: wbuf_printf(w, "%d", (int16_t)load_u16le(b)); break;
		case VR_UL: wbuf_printf(w, "%u", load_u32le(b)); break;
		case VR_SL: wbuf_printf(w, "%d", (int32_t)load_u32le(b)); break;
		case VR_UV: {
			unsigned long long v = (unsigned long long)load_u64le(b);
			/* beyond 2^53 a JSON number loses precision: a string (CP 1861) */
			wbuf_printf(w, v > 9007199254740991ULL ? "\"%llu\"" : "%llu", v);
			break;
		}
		case VR_SV: {
			long long v = (long long)load_u64le(b);
			wbuf_printf(w, (v > 9007199254740991LL || v < -9007199254740991LL) ? "\"%lld\"" : "%lld", v);
			break;
		}
		case VR_AT: wbuf_printf(w, "\"%04X%04X\"", load_u16le(b), load_u16le(b + 2)); break;
		case VR_FL: {
			float f;
			uint32_t u = load_u32le(b);
			memcpy(&f, &u, 4);
			put_double(w, (double)f, 9);
			break;
		}
		case VR_FD: {
			double d;
			uint64_t u = load_u64le(b);
			memcpy(&d, &u, 8);
			put_double(w, d, 17);
			break;
		}
		default: break;
		}
		maybe_flush(j);
	}
	wbuf_putc(w, ']');
}

static void put_ds(struct jw *j, const struct dcm_ds *ds);

static bool want_bulk_uri(struct jw *j, uint32_t len)
{
	return j->o->bulk_uri != NULL && len > j->o->bulk_threshold;
}

static void put_bulk_uri(struct jw *j)
{
	struct wbuf uri;

	wbuf_init(&uri, 4096);
	if (j->err == ERR_OK)
		j->err = j->o->bulk_uri(j->o->ctx, j->path, j->depth, &uri);
	if (j->err == ERR_OK && wbuf_err(&uri) == ERR_OK) {
		wbuf_puts(&j->w, ",\"BulkDataURI\":");
		put_jstr(&j->w, uri.p ? uri.p : (const uint8_t *)"", uri.len);
	}
	wbuf_fini(&uri);
}

static void put_elem(struct jw *j, const struct dcm_ds *ds, const struct dcm_charset *cs, const struct dcm_elem *e)
{
	char vb[3];
	uint16_t vr = dcm_elem_effective_vr(ds, e);
	struct dcm_elem eff = *e;
	uint32_t i;

	eff.vr = vr;
	e = &eff;

	if ((e->flags & DCM_EF_UNSEQ) || (vr == VR_UN && e->seq != NULL && !(e->flags & DCM_EF_ENCAPS)))
		vr = VR_SQ;
	if (!vr_is_known(vr))
		vr = VR_UN;
	wbuf_printf(&j->w, "\"%04X%04X\":{\"vr\":\"%s\"", TAG_GROUP(e->tag), TAG_ELEM(e->tag), vr_name(vr, vb));
	if (j->depth >= DCM_MAX_DEPTH + 1) {
		j->err = ERR_LIMIT;
		return;
	}
	j->path[j->depth++] = e->tag;
	if (e->flags & DCM_EF_ENCAPS) {
		uint64_t total = 8;
		for (i = 0; i < e->seq->nfrags; i++)
			total += 8 + (uint64_t)e->seq->frags[i].len;
		if (want_bulk_uri(j, total > UINT32_MAX ? UINT32_MAX : (uint32_t)total)) {
			put_bulk_uri(j);
		} else {
			/* the encapsulated value: items, then the sequence delimiter is not part of it */
			struct b64 b = { j, { 0 }, 0 };
			struct sink k = { b64_write, &b };
			wbuf_puts(&j->w, ",\"InlineBinary\":\"");
			for (i = 0; i < e->seq->nfrags && j->err == ERR_OK; i++) {
				const struct dcm_frag *fr = &e->seq->frags[i];
				uint8_t hdr[8];
				store_u32le(hdr, 0xE000FFFEu);
				store_u32le(hdr + 4, fr->len);
				j->err = b64_write(&b, hdr, 8);
				if (j->err == ERR_OK)
					j->err = dcm_bulk_copy(j->f, fr->bulk_off, fr->len, fr->val, &k);
			}
			if (j->err == ERR_OK && b.nc)
				b64_block(&j->w, b.carry, b.nc);
			wbuf_putc(&j->w, '"');
		}
	} else if (e->seq != NULL) {
		if (e->seq->n > 0) {
			wbuf_puts(&j->w, ",\"Value\":[");
			for (i = 0; i < e->seq->n && j->err == ERR_OK; i++) {
				if (i)
					wbuf_putc(&j->w, ',');
				put_ds(j, e->seq->items[i]);
			}
			wbuf_putc(&j->w, ']');
		}
	} else if (e->len == 0) {
		/* no value */
	} else if (vr_is_bulk(e->vr)) {
		if (want_bulk_uri(j, e->len)) {
			put_bulk_uri(j);
		} else {
			wbuf_puts(&j->w, ",\"InlineBinary\":\"");
			put_base64(j, e->bulk_off, e->len, (e->flags & DCM_EF_BULK) ? NULL : e->val);
			wbuf_putc(&j->w, '"');
		}
	} else if (e->flags & DCM_EF_BULK) {
		const uint8_t *v = NULL;
		bool owned = false;
		if (j->err == ERR_OK)
			j->err = dcm_elem_value(j->f, e, &v, &owned);
		if (j->err == ERR_OK) {
			struct dcm_elem tmp = *e;
			tmp.val = (uint8_t *)(uintptr_t)v;
			tmp.flags &= (uint16_t)~DCM_EF_BULK;
			if (vr_is_string(e->vr))
				put_strings(j, cs, &tmp);
			else
				put_numbers(j, &tmp, v);
		}
		if (owned)
			free((void *)(uintptr_t)v);
	} else if (vr_is_string(e->vr)) {
		put_strings(j, cs, e);
	} else {
		put_numbers(j, e, e->val);
	}
	j->depth--;
	wbuf_putc(&j->w, '}');
	maybe_flush(j);
}

static void put_ds(struct jw *j, const struct dcm_ds *ds)
{
	struct dcm_charset cs;
	uint32_t i;
	bool first = true;

	dcm_ds_charset(ds, &cs);   /* once per data set, not per element */
	wbuf_putc(&j->w, '{');
	for (i = 0; i < ds->n && j->err == ERR_OK; i++) {
		const struct dcm_elem *e = &ds->e[i];
		if (TAG_ELEM(e->tag) == 0 && !j->o->include_group_length)
			continue;
		if (!first)
			wbuf_putc(&j->w, ',');
		first = false;
		put_elem(j, ds, &cs, e);
	}
	wbuf_putc(&j->w, '}');
}

enum err dcm_json_write(const struct dcm_file *f, const struct dcm_ds *ds, const struct dcm_json_opts *o,
                        struct sink *k)
{
	static const struct dcm_json_opts dflt = { 0 };
	struct jw j;

	memset(&j, 0, sizeof j);
	j.f = f;
	j.o = o ? o : &dflt;
	j.k = k;
	wbuf_init(&j.w, 4 * JFLUSH + 1024 * 1024);
	put_ds(&j, ds);
	jflush(&j);
	wbuf_fini(&j.w);
	return j.err;
}
