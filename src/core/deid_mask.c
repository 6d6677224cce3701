/* deid_mask.c: masking of burned-in annotation (PS3.15 E.1, "Recognizable
 * visual features"): rules of the form [deid "mask NAME"] in an INI file
 * (dicomvault.conf or a file given to `deid --masks`) name the images they
 * apply to (modality, manufacturer and model patterns, rows and columns)
 * and the rectangles to blank. A matched image gets each rectangle filled
 * with the darkest value of its photometric interpretation in every frame,
 * and whatever pixel data lies past the frames zeroed; compressed pixel data cannot be masked without decompressing it and is
 * refused, as is float pixel data (no darkest value). See
 * docs/internals/deid.md. Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deid_int.h"
#include "dicomvault/charset.h"
#include "dicomvault/dict.h"
#include "dicomvault/ini.h"
#include "dicomvault/vr.h"

#define MASK_PREFIX "mask "

void deid_masks_free(struct deid_masks *m)
{
	if (m == NULL)
		return;
	free(m->r);
	free(m);
}

/* A whole decimal number in [lo, hi]. */
static bool parse_u32(const char *s, size_t n, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;

	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (!vr_uint_parse(s, n, hi, &v) || v < lo)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* "x,y,w,h" in pixels, the top left pixel being 0,0. */
static bool parse_rect(const char *s, struct deid_mask_rect *r)
{
	uint32_t v[4];
	unsigned k;

	for (k = 0; k < 4; k++) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if ((k < 3) != (e != NULL))
			return false;
		if (!parse_u32(s, n, k < 2 ? 0 : 1, 65535, &v[k]))
			return false;
		s = e ? e + 1 : s + n;
	}
	r->x = v[0];
	r->y = v[1];
	r->w = v[2];
	r->h = v[3];
	return true;
}

static bool copy_field(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return false;
	memcpy(dst, v, n + 1);
	return true;
}

/* A pattern is UTF-8, as the values it is matched against become: one in
 * another encoding (a Latin-1 rules file) would fit no non-ASCII name and
 * leave the image to a less specific rule. */
static bool copy_pattern(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v), i, k;

	for (i = 0; i < n; i += k)
		if ((k = charset_utf8_seq_len((const uint8_t *)v + i, n - i)) == 0)
			return false;
	return copy_field(dst, cap, v);
}

enum err deid_masks_load(const struct ini *ini, struct deid_masks **out, char *why, size_t whylen)
{
	struct deid_masks *m;
	size_t i, j, nrules = 0;
	enum err rc = ERR_PARSE;

	*out = NULL;
	for (i = 0; i < ini->nsections; i++) {
		const struct ini_entry *s = &ini->sections[i];
		if (strcmp(s->section, "deid") == 0 && s->sub != NULL && strncmp(s->sub, MASK_PREFIX, 5) == 0)
			nrules++;
	}
	if (nrules > DEID_MASK_MAX_RULES) {
		(void)err_why(why, whylen, ERR_PARSE, "more than %u masking rules", DEID_MASK_MAX_RULES);
		return ERR_LIMIT;
	}
	m = calloc(1, sizeof *m);
	if (m == NULL || (nrules > 0 && (m->r = calloc(nrules, sizeof *m->r)) == NULL)) {
		deid_masks_free(m);
		return ERR_NOMEM;
	}
	for (i = 0; i < ini->nsections; i++) {
		const struct ini_entry *s = &ini->sections[i];
		struct deid_mask_rule *r;
		if (strcmp(s->section, "deid") != 0 || s->sub == NULL || strncmp(s->sub, MASK_PREFIX, 5) != 0)
			continue;
		/* a section may appear twice: its keys are all in one rule */
		for (j = 0; j < m->n; j++)
			if (strcmp(m->r[j].name, s->sub + 5) == 0)
				break;
		if (j < m->n)
			continue;
		r = &m->r[m->n++];
		if (s->sub[5] == 0 || !copy_field(r->name, sizeof r->name, s->sub + 5)) {
			(void)err_why(why, whylen, ERR_PARSE, "line %u: a masking rule needs a name of 1 to %zu characters", s->line,
			        sizeof r->name - 1);
			goto out;
		}
		for (j = 0; j < ini->n; j++) {
			const struct ini_entry *e = &ini->e[j];
			bool ok = true;
			if (strcmp(e->section, "deid") != 0 || e->sub == NULL || strcmp(e->sub, s->sub) != 0)
				continue;
			if (strcmp(e->key, "modality") == 0)
				ok = copy_pattern(r->modality, sizeof r->modality, e->value);
			else if (strcmp(e->key, "manufacturer") == 0)
				ok = copy_pattern(r->manufacturer, sizeof r->manufacturer, e->value);
			else if (strcmp(e->key, "model") == 0)
				ok = copy_pattern(r->model, sizeof r->model, e->value);
			else if (strcmp(e->key, "rows") == 0)
				ok = parse_u32(e->value, strlen(e->value), 1, 65535, &r->rows);
			else if (strcmp(e->key, "columns") == 0)
				ok = parse_u32(e->value, strlen(e->value), 1, 65535, &r->columns);
			else if (strcmp(e->key, "rect") == 0) {
				/* x,y,w,h[; x,y,w,h...] */
				const char *p = e->value;
				while (ok && *p) {
					const char *semi = strchr(p, ';');
					size_t n = semi ? (size_t)(semi - p) : strlen(p);
					char one[64];
					if (r->nrect == DEID_MASK_MAX_RECTS) {
						(void)err_why(why, whylen, ERR_LIMIT, "line %u: more than %u rectangles in masking rule "
						              "\"%s\"", e->line, DEID_MASK_MAX_RECTS, r->name);
						rc = ERR_LIMIT;
						goto out;
					}
					ok = n < sizeof one;
					if (ok) {
						memcpy(one, p, n);
						one[n] = 0;
						ok = parse_rect(one, &r->rect[r->nrect]);
					}
					if (ok)
						r->nrect++;
					p = semi ? semi + 1 : p + n;
					ok = ok && !(semi && *p == 0);
				}
			} else {
				(void)err_why(why, whylen, ERR_PARSE, "line %u: unknown key \"%s\" in masking rule \"%s\" (modality, "
				        "manufacturer, model, rows, columns, rect)", e->line, e->key, r->name);
				goto out;
			}
			if (!ok) {
				(void)err_why(why, whylen, ERR_PARSE, "line %u: bad value for \"%s\" in masking rule \"%s\"%s", e->line, e->key,
				        r->name, strcmp(e->key, "rect") == 0 ? " (want x,y,width,height in pixels, several separated by ;)"
				        : strcmp(e->key, "rows") == 0 || strcmp(e->key, "columns") == 0 ? ""
				        : " (want UTF-8, at most 64 bytes)");
				goto out;
			}
		}
		if (r->nrect == 0) {
			(void)err_why(why, whylen, ERR_PARSE, "line %u: masking rule \"%s\" has no rect", s->line, r->name);
			goto out;
		}
		if (r->modality[0] == 0) {
			(void)err_why(why, whylen, ERR_PARSE, "line %u: masking rule \"%s\" needs a modality", s->line, r->name);
			goto out;
		}
		for (j = 0; j < r->nrect; j++)
			if ((r->columns && r->rect[j].x + r->rect[j].w > r->columns) ||
			    (r->rows && r->rect[j].y + r->rect[j].h > r->rows)) {
				(void)err_why(why, whylen, ERR_PARSE, "line %u: a rect of masking rule \"%s\" lies outside its %u x %u image",
				        s->line, r->name, r->columns, r->rows);
				goto out;
			}
	}
	*out = m;
	m = NULL;
	rc = ERR_OK;
out:
	deid_masks_free(m);
	return rc;
}

/* A US value, or def when absent or unreadable. */
static uint16_t u16_or(const struct dcm_ds *ds, uint32_t tag, uint16_t def)
{
	uint16_t v;

	return dcm_ds_get_u16(ds, tag, &v) == ERR_OK ? v : def;
}

/* The length of the character at v (n > 0 bytes of UTF-8): 1 for a byte
 * that begins no valid sequence. */
static size_t char_len(const char *v, size_t n)
{
	size_t k = charset_utf8_seq_len((const uint8_t *)v, n);

	return k ? k : 1;
}

/* Glob match, * and ? (one character, UTF-8), ASCII case-insensitive; v is
 * (pointer, length) with its padding already trimmed. */
static bool glob(const char *p, const char *v, size_t n)
{
	const char *star = NULL, *vs = NULL;
	size_t i = 0;

	while (i < n) {
		char a = *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
		char b = v[i] >= 'a' && v[i] <= 'z' ? (char)(v[i] - 32) : v[i];
		if (*p == '*') {
			star = p++;
			vs = v + i;
		} else if (*p == '?') {
			p++;
			i += char_len(v + i, n - i);
		} else if (*p != 0 && a == b) {
			p++;
			i++;
		} else if (star != NULL) {
			p = star + 1;
			vs += char_len(vs, n - (size_t)(vs - v));
			i = (size_t)(vs - v);
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == 0;
}

enum err deid_str_utf8(const struct dcm_file *f, uint32_t tag, struct wbuf *out, bool *unreadable)
{
	const struct dcm_elem *e = dcm_ds_find(&f->ds, tag);
	const uint8_t *v = NULL;
	struct dcm_charset cs;
	bool owned = false;
	size_t n;
	enum err rc;

	wbuf_reset(out);
	*unreadable = false;
	if (e == NULL || e->len == 0)
		return ERR_OK;
	if (e->seq != NULL || e->len == DCM_UNDEF) {
		*unreadable = true;
		return ERR_OK;
	}
	rc = dcm_elem_value(f, e, &v, &owned);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc != ERR_OK || v == NULL) {
		*unreadable = true;
		return ERR_OK;
	}
	/* padding off before decoding: a space or NUL is one in every DICOM
	 * character set (no multi-byte character ends with either) */
	n = e->len;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	if (n > DEID_MATCH_MAX_VALUE) {
		*unreadable = true;   /* no modality or maker is named so; not read as one */
		rc = ERR_OK;
		goto out;
	}
	dcm_ds_charset(&f->ds, &cs);
	rc = charset_to_utf8_lossy(&cs, false, v, n, out);
out:
	if (owned)
		free((void *)(uintptr_t)v);
	return rc;
}

bool deid_str_next(const struct wbuf *w, size_t *pos, const char **v, size_t *vn)
{
	const char *s = (const char *)w->p;
	size_t i = *pos, st;

	if (i > w->len || (i == w->len && i > 0 && s[i - 1] != '\\'))
		return false;
	st = i;
	while (i < w->len && s[i] != '\\')
		i++;
	*pos = i + 1;
	*vn = i - st;
	*v = s != NULL ? s + st : "";
	while (*vn > 0 && (**v == ' ' || **v == 0)) {
		(*v)++;
		(*vn)--;
	}
	while (*vn > 0 && ((*v)[*vn - 1] == ' ' || (*v)[*vn - 1] == 0))
		(*vn)--;
	return true;
}

/* Whether pattern pat fits the attribute's value w: an empty pattern fits
 * anything; otherwise every value of a multi-valued attribute must fit
 * (VM 1 attributes: a second value is a mistake, and a rule for one of the
 * two is no rule for the image), an absent attribute is one empty value,
 * and an unreadable one fits nothing. */
static bool str_matches(const struct wbuf *w, bool unreadable, const char *pat)
{
	const char *v;
	size_t pos = 0, vn;

	if (pat[0] == 0)
		return true;
	if (unreadable)
		return false;
	while (deid_str_next(w, &pos, &v, &vn))
		if (!glob(pat, v, vn))
			return false;
	return true;
}

enum err deid_masks_match(const struct deid_masks *m, const struct dcm_file *f, const struct deid_mask_rule **out)
{
	static const uint32_t tags[3] = { 0x00080060, 0x00080070, 0x00081090 };
	uint16_t rows = u16_or(&f->ds, 0x00280010, 0), cols = u16_or(&f->ds, 0x00280011, 0);
	struct wbuf w[3];
	bool bad[3];
	size_t i;
	enum err rc = ERR_OK;

	*out = NULL;
	if (m == NULL || m->n == 0)
		return ERR_OK;
	for (i = 0; i < 3; i++)
		wbuf_init(&w[i], 4 * DEID_MATCH_MAX_VALUE);
	for (i = 0; i < 3 && rc == ERR_OK; i++)
		rc = deid_str_utf8(f, tags[i], &w[i], &bad[i]);
	for (i = 0; rc == ERR_OK && i < m->n; i++) {
		const struct deid_mask_rule *r = &m->r[i];
		if (str_matches(&w[0], bad[0], r->modality) && str_matches(&w[1], bad[1], r->manufacturer) &&
		    str_matches(&w[2], bad[2], r->model) && (r->rows == 0 || r->rows == rows) &&
		    (r->columns == 0 || r->columns == cols)) {
			*out = r;
			break;
		}
	}
	for (i = 0; i < 3; i++)
		wbuf_fini(&w[i]);
	return rc;
}

/* The darkest sample value of the image, per sample (0..2), as raw bits. */
static void dark_value(const char *pi, size_t pin, uint16_t bits_stored, uint16_t pixrep, uint32_t dark[3])
{
	uint32_t max = bits_stored >= 32 ? 0xFFFFFFFFu : (1u << bits_stored) - 1u;

	dark[0] = dark[1] = dark[2] = 0;
	if (pin >= 11 && memcmp(pi, "MONOCHROME1", 11) == 0)
		dark[0] = pixrep ? max >> 1 : max;                 /* white is 0: the largest value */
	else if (pin >= 11 && memcmp(pi, "MONOCHROME2", 11) == 0 && pixrep)
		dark[0] = (max >> 1) + 1;                          /* the most negative value */
	else if (pin >= 3 && memcmp(pi, "YBR", 3) == 0)
		dark[1] = dark[2] = (max >> 1) + 1;                /* Y = 0, chroma neutral */
}

/* In-memory values are little endian whatever the transfer syntax (the
 * reader and dcm_elem_value swap, the writer swaps back). */
static void put_sample(uint8_t *p, uint16_t bytes, uint32_t v)
{
	uint16_t k;

	for (k = 0; k < bytes; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

enum err deid_mask_pixels(struct dcm_file *f, const struct deid_mask_rule *r, char *why, size_t whylen)
{
	struct dcm_ds *ds = &f->ds;
	struct dcm_elem *px = dcm_ds_find(ds, TAG_PIXEL_DATA);
	uint16_t rows = 0, cols = 0, spp = 1, alloc = 0, stored = 0, pixrep = 0, planar = 0;
	const uint8_t *val = NULL;
	uint8_t *buf = NULL;
	size_t pin = 0, vlen = 0;
	const char *pi;
	uint64_t frame, nframes = 1, fsz;
	uint32_t dark[3];
	bool owned = false;
	unsigned i;
	enum err rc = ERR_DENIED;

	/* Float and Double Float Pixel Data have no darkest value to fill with
	 * (their range is the data's own, not Bits Stored's), and beside Pixel
	 * Data they would go out unmasked under Burned In Annotation NO and
	 * 113101: refused, whether alone or not. */
	if (dcm_ds_find(ds, TAG_FLOAT_PIXEL) != NULL || dcm_ds_find(ds, TAG_DFLOAT_PIXEL) != NULL) {
		(void)err_why(why, whylen, ERR_PARSE, "float pixel data (Float or Double Float Pixel Data) cannot be "
		        "masked: masking needs integer Pixel Data");
		return ERR_DENIED;
	}
	if (px == NULL || px->seq != NULL || (px->flags & DCM_EF_ENCAPS)) {
		(void)err_why(why, whylen, ERR_PARSE, px == NULL ? "no Pixel Data to mask"
		        : "the pixel data is compressed: masking needs uncompressed (native) pixel data");
		return ERR_DENIED;
	}
	if (dcm_ds_get_u16(ds, 0x00280010, &rows) != ERR_OK || dcm_ds_get_u16(ds, 0x00280011, &cols) != ERR_OK ||
	    dcm_ds_get_u16(ds, 0x00280100, &alloc) != ERR_OK || rows == 0 || cols == 0) {
		(void)err_why(why, whylen, ERR_PARSE, "cannot mask: Rows, Columns or Bits Allocated missing");
		return ERR_DENIED;
	}
	spp = u16_or(ds, 0x00280002, 1);
	stored = u16_or(ds, 0x00280101, 0);
	pixrep = u16_or(ds, 0x00280103, 0);
	planar = u16_or(ds, 0x00280006, 0);
	if (stored == 0 || stored > alloc)
		stored = alloc;
	if ((alloc != 8 && alloc != 16 && alloc != 32) || (spp != 1 && spp != 3)) {
		(void)err_why(why, whylen, ERR_PARSE, "cannot mask: %u bits allocated, %u samples per pixel (8, 16 or 32 bits, 1 or 3 "
		        "samples are supported)", alloc, spp);
		return ERR_DENIED;
	}
	{
		char nf[16];
		size_t n = 0;
		const char *s = dcm_ds_str(ds, 0x00280008, &n);
		if (s != NULL && n > 0 && n < sizeof nf) {
			uint32_t v;
			memcpy(nf, s, n);
			nf[n] = 0;
			if (!parse_u32(nf, n, 1, 0x7FFFFFFF, &v)) {
				(void)err_why(why, whylen, ERR_PARSE, "cannot mask: Number of Frames is not a positive number");
				return ERR_DENIED;
			}
			nframes = v;
		}
	}
	for (i = 0; i < r->nrect; i++)
		if (r->rect[i].x + r->rect[i].w > cols || r->rect[i].y + r->rect[i].h > rows) {
			(void)err_why(why, whylen, ERR_PARSE, "masking rule \"%s\": a rect lies outside the %u x %u image", r->name, cols, rows);
			return ERR_DENIED;
		}
	fsz = (uint64_t)rows * cols * spp * (alloc / 8);
	rc = dcm_elem_value(f, px, &val, &owned);
	vlen = px->len;
	if (rc != ERR_OK) {
		(void)err_why(why, whylen, ERR_PARSE, "cannot read the pixel data to mask it: %s", err_str(rc));
		return rc;
	}
	/* divided, not multiplied: Rows x Columns x samples x bytes x frames
	 * can pass 2^64 and wrap below the length */
	if (nframes > vlen / fsz) {
		(void)err_why(why, whylen, ERR_PARSE, "cannot mask: the pixel data is shorter than Rows x Columns x frames");
		rc = ERR_DENIED;
		goto out;
	}
	buf = malloc(vlen ? vlen : 1);
	if (buf == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	memcpy(buf, val, vlen);
	pi = dcm_ds_str(ds, 0x00280004, &pin);
	dark_value(pi ? pi : "", pi ? pin : 0, stored, pixrep, dark);
	for (frame = 0; frame < nframes; frame++) {
		uint8_t *fp = buf + frame * fsz;
		uint16_t bytes = alloc / 8;
		for (i = 0; i < r->nrect; i++) {
			const struct deid_mask_rect *q = &r->rect[i];
			uint32_t y, x, s;
			for (y = q->y; y < q->y + q->h; y++)
				for (x = q->x; x < q->x + q->w; x++)
					for (s = 0; s < spp; s++) {
						uint64_t off = planar && spp > 1
						               ? ((uint64_t)s * rows * cols + (uint64_t)y * cols + x) * bytes
						               : (((uint64_t)y * cols + x) * spp + s) * bytes;
						put_sample(fp + off, bytes, dark[s]);
					}
		}
	}
	/* Bytes past the declared frames (a frame more than Number of Frames
	 * says, a stray tail) lie in no frame a rule describes, yet a viewer
	 * that guesses the frame count shows them and they may carry the text:
	 * they go whole (zeros, the length kept; an odd frame's pad byte too),
	 * as Burned In Annotation NO and code 113101 will claim clean pixels. */
	if (vlen > fsz * nframes)
		memset(buf + fsz * nframes, 0, vlen - fsz * nframes);
	rc = dcm_elem_set(ds, px, px->vr, buf, vlen);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(ds, 0x00280301, VR_CS, "NO");
out:
	free(buf);
	if (owned)
		free((void *)val);
	return rc;
}
