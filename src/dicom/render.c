/* render.c: the query parameters of a rendered resource (PS3.18 8.3.5.1),
 * the description of an image from its data set, and the pixel pipeline
 * of PS3.3 C.11 from one native frame to an 8-bit grey or RGB image, and
 * its area-average downscale. The codecs are in render_codec.c. Pure.
 * See docs/internals/dicomweb.md. Layer: dicom. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dict.h"
#include "dicomvault/render.h"
#include "dicomvault/vr.h"

#define TAG_SAMPLES        0x00280002u
#define TAG_PHOTOMETRIC    0x00280004u
#define TAG_PLANAR         0x00280006u
#define TAG_ROWS           0x00280010u
#define TAG_COLUMNS        0x00280011u
#define TAG_BITS_STORED    0x00280101u
#define TAG_HIGH_BIT       0x00280102u
#define TAG_WINDOW_CENTER  0x00281050u
#define TAG_WINDOW_WIDTH   0x00281051u
#define TAG_RESCALE_ICPT   0x00281052u
#define TAG_RESCALE_SLOPE  0x00281053u
#define TAG_VOI_LUT_FN     0x00281056u
#define TAG_PAL_DESC_RED   0x00281101u   /* green, blue: + 1, + 2 */
#define TAG_PAL_DATA_RED   0x00281201u
#define TAG_SEG_PAL_RED    0x00281221u
#define TAG_MOD_LUT_SEQ    0x00283000u
#define TAG_VOI_LUT_SEQ    0x00283010u
#define TAG_LUT_DESC       0x00283002u
#define TAG_LUT_DATA       0x00283006u

/* ---- numbers ---- */

/* A decimal number (as DS: [+-]digits[.digits][e[+-]digits], or
 * .digits) of n bytes at s, finite and at most 1e12 in magnitude. */
static bool decimal_parse(const char *s, size_t n, double *out)
{
	char buf[RENDER_MAX_PARAM + 1];
	char *end = NULL;
	double v;

	if (n == 0 || n > RENDER_MAX_PARAM || !vr_decimal_ok(s, n, false))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	v = strtod(buf, &end);
	if (end != buf + n || !isfinite(v) || fabs(v) > 1e12)
		return false;
	*out = v;
	return true;
}

/* An unsigned decimal integer of n bytes (no sign, no leading +), at most max. */
static bool uint_parse(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (n > 10 || !vr_uint_parse(s, n, max, &v))   /* at most 10 digits, leading zeros included */
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool token_is(const char *s, size_t n, const char *t)
{
	return strlen(t) == n && memcmp(s, t, n) == 0;
}

/* Splits s (n bytes) at commas into at most max fields; the count, or
 * max + 1 when there are more. */
static size_t split(const char *s, size_t n, const char *f[], size_t fl[], size_t max)
{
	size_t k = 0, start = 0, i;

	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == ',') {
			if (k == max)
				return max + 1;
			f[k] = s + start;
			fl[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k;
}

/* ---- query parameters ---- */

enum err render_window_parse(const char *s, size_t n, struct render_window *w, char *why, size_t whylen)
{
	const char *f[3];
	size_t fl[3], k;
	struct render_window v;

	if (n > RENDER_MAX_PARAM)
		return err_why(why, whylen, ERR_PARSE, "window is longer than %u bytes", RENDER_MAX_PARAM);
	k = split(s, n, f, fl, 3);
	if (k < 2 || k > 3)
		return err_why(why, whylen, ERR_PARSE, "window must be center,width[,function]");
	if (!decimal_parse(f[0], fl[0], &v.center) || !decimal_parse(f[1], fl[1], &v.width))
		return err_why(why, whylen, ERR_PARSE, "window center and width must be decimal numbers");
	v.fn = RENDER_VOI_LINEAR;
	if (k == 3) {
		if (token_is(f[2], fl[2], "linear"))
			v.fn = RENDER_VOI_LINEAR;
		else if (token_is(f[2], fl[2], "linear-exact"))
			v.fn = RENDER_VOI_LINEAR_EXACT;
		else if (token_is(f[2], fl[2], "sigmoid"))
			v.fn = RENDER_VOI_SIGMOID;
		else
			return err_why(why, whylen, ERR_PARSE, "window function must be linear, linear-exact or sigmoid");
	}
	if (v.fn == RENDER_VOI_LINEAR && v.width < 1)
		return err_why(why, whylen, ERR_PARSE, "window width must be at least 1 for the linear function");
	if (v.width <= 0)
		return err_why(why, whylen, ERR_PARSE, "window width must be greater than 0");
	*w = v;
	return ERR_OK;
}

enum err render_viewport_parse(const char *s, size_t n, uint32_t *vw, uint32_t *vh, char *why, size_t whylen)
{
	const char *f[6];
	size_t fl[6], k;
	uint32_t a, b;

	if (n > RENDER_MAX_PARAM)
		return err_why(why, whylen, ERR_PARSE, "viewport is longer than %u bytes", RENDER_MAX_PARAM);
	k = split(s, n, f, fl, 6);
	if (k == 6)
		return err_why(why, whylen, ERR_UNSUPPORTED,
		               "viewport with a source region (vw,vh,sx,sy,sw,sh) is not supported: use vw,vh");
	if (k != 2)
		return err_why(why, whylen, ERR_PARSE, "viewport must be vw,vh");
	if (!uint_parse(f[0], fl[0], RENDER_MAX_VIEWPORT, &a) || !uint_parse(f[1], fl[1], RENDER_MAX_VIEWPORT, &b) ||
	    a == 0 || b == 0)
		return err_why(why, whylen, ERR_PARSE, "viewport vw and vh must be whole numbers from 1 to %u",
		               RENDER_MAX_VIEWPORT);
	*vw = a;
	*vh = b;
	return ERR_OK;
}

enum err render_quality_parse(const char *s, size_t n, int *q, char *why, size_t whylen)
{
	uint32_t v;

	if (!uint_parse(s, n, 100, &v) || v == 0)
		return err_why(why, whylen, ERR_PARSE, "quality must be a whole number from 1 to 100");
	*q = (int)v;
	return ERR_OK;
}

/* ---- the image ---- */

/* The first value of a DS attribute. */
static bool ds_first(const struct dcm_ds *ds, uint32_t tag, double *out)
{
	size_t n = 0, a = 0, b;
	const char *s = dcm_ds_str(ds, tag, &n);

	if (s == NULL || n == 0)
		return false;
	while (a < n && s[a] == ' ')
		a++;
	b = a;
	while (b < n && s[b] != '\\')
		b++;
	while (b > a && s[b - 1] == ' ')
		b--;
	return decimal_parse(s + a, b - a, out);
}

static bool str_is(const struct dcm_ds *ds, uint32_t tag, const char *t)
{
	size_t n = 0, a = 0;
	const char *s = dcm_ds_str(ds, tag, &n);

	if (s == NULL)
		return false;
	while (a < n && s[a] == ' ')
		a++;
	return token_is(s + a, n - a, t);
}

/* A lookup table: its descriptor d (entries, 0 meaning 65536; the first
 * value mapped, signed when the descriptor is SS or the pixels are
 * signed; bits per entry: 8 or 16 for min_bits 8 (palettes), else from
 * min_bits to 16) and its data e (one 16-bit word per entry, or one byte
 * per entry for 8-bit tables). what names it in errors. */
static enum err lut_read(const struct dcm_file *f, const struct dcm_elem *d, const struct dcm_elem *e, bool sgn,
                         unsigned min_bits, const char *what, struct render_lut *out, char *why, size_t whylen)
{
	const uint8_t *val = NULL;
	bool owned = false;
	uint32_t i;

	memset(out, 0, sizeof *out);
	if (d == NULL || d->val == NULL || d->len < 6 || (d->vr != VR_US && d->vr != VR_SS) || e == NULL)
		return err_why(why, whylen, ERR_PARSE, "%s without its descriptor and data", what);
	out->n = (uint32_t)(d->val[0] | d->val[1] << 8);
	if (out->n == 0)
		out->n = 65536;
	out->first = (int32_t)(uint16_t)(d->val[2] | d->val[3] << 8);
	if (sgn || d->vr == VR_SS)
		out->first = (int16_t)(uint16_t)out->first;
	out->bits = (unsigned)(d->val[4] | d->val[5] << 8);
	if (out->bits < min_bits || out->bits > 16 || (min_bits == 8 && out->bits != 8 && out->bits != 16))
		return err_why(why, whylen, ERR_PARSE, "%s entries of %u bits", what, out->bits);
	if ((e->flags & DCM_EF_ENCAPS) || e->seq != NULL ||
	    (e->len != 2 * out->n && !(out->bits == 8 && e->len == out->n)))
		return err_why(why, whylen, ERR_PARSE, "%s data of %u bytes for %u entries", what, (unsigned)e->len,
		               (unsigned)out->n);
	out->v = calloc(out->n, sizeof *out->v);
	if (out->v == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	if (dcm_elem_value(f, e, &val, &owned) != ERR_OK) {
		free(out->v);
		out->v = NULL;
		return err_why(why, whylen, ERR_IO, "cannot read the %s data", what);
	}
	for (i = 0; i < out->n; i++) {
		unsigned v = e->len == out->n ? val[i] : (unsigned)(val[2 * i] | val[2 * i + 1] << 8);
		out->v[i] = (uint16_t)(v & ((1u << out->bits) - 1));
	}
	if (owned)
		free((void *)val);
	return ERR_OK;
}

static enum err palette_init(const struct dcm_file *f, const struct dcm_ds *ds, struct render_image *im, char *why,
                             size_t whylen)
{
	unsigned c;

	if (dcm_ds_find(ds, TAG_SEG_PAL_RED) != NULL)
		return err_why(why, whylen, ERR_UNSUPPORTED, "segmented palette colour lookup tables are not supported");
	for (c = 0; c < 3; c++) {
		struct render_lut *l = &im->pal[c];
		enum err rc = lut_read(f, dcm_ds_find(ds, TAG_PAL_DESC_RED + c), dcm_ds_find(ds, TAG_PAL_DATA_RED + c),
		                       im->is_signed, 8, "a palette colour lookup table", l, why, whylen);
		if (rc != ERR_OK)
			return rc;
		if (l->n != im->pal[0].n || l->first != im->pal[0].first || l->bits != im->pal[0].bits)
			return err_why(why, whylen, ERR_UNSUPPORTED, "palette lookup tables of different shapes");
	}
	return ERR_OK;
}

/* The lookup table of the first item of the sequence tag (the Modality
 * LUT Sequence, PS3.3 C.11.1; the VOI LUT Sequence, C.11.2.1.1): l->v
 * NULL when there is none. */
static enum err first_lut(const struct dcm_file *f, const struct dcm_ds *ds, uint32_t tag, bool sgn, const char *what,
                          struct render_lut *l, char *why, size_t whylen)
{
	const struct dcm_elem *sq = dcm_ds_find(ds, tag);
	const struct dcm_ds *it;

	memset(l, 0, sizeof *l);
	if (sq == NULL || sq->seq == NULL || sq->seq->n == 0)
		return ERR_OK;
	it = sq->seq->items[0];
	return lut_read(f, dcm_ds_find(it, TAG_LUT_DESC), dcm_ds_find(it, TAG_LUT_DATA), sgn, 1, what, l, why, whylen);
}

enum err render_image_init(const struct dcm_file *f, const struct dcm_ds *ds, struct render_image *im, char *why,
                           size_t whylen)
{
	uint16_t rows, cols, spp = 1, ba, bs, hb, pr = 0, pl = 0;
	double v;
	enum err rc;

	memset(im, 0, sizeof *im);
	if (dcm_ds_find(ds, TAG_PIXEL_DATA) == NULL) {
		if (dcm_ds_find(ds, TAG_FLOAT_PIXEL) != NULL || dcm_ds_find(ds, TAG_DFLOAT_PIXEL) != NULL)
			return err_why(why, whylen, ERR_UNSUPPORTED, "float pixel data is not rendered");
		return err_why(why, whylen, ERR_NOTFOUND, "the instance has no pixel data (not an image)");
	}
	if (dcm_ds_get_u16(ds, TAG_ROWS, &rows) != ERR_OK || dcm_ds_get_u16(ds, TAG_COLUMNS, &cols) != ERR_OK ||
	    dcm_ds_get_u16(ds, TAG_BITS_ALLOC, &ba) != ERR_OK)
		return err_why(why, whylen, ERR_PARSE, "the image lacks Rows, Columns or Bits Allocated");
	if (rows == 0 || cols == 0)
		return err_why(why, whylen, ERR_PARSE, "the image has no pixels (Rows or Columns 0)");
	if ((uint64_t)rows * cols > RENDER_MAX_PIXELS)
		return err_why(why, whylen, ERR_LIMIT, "the image is %ux%u pixels, more than the %u the renderer takes",
		               (unsigned)cols, (unsigned)rows, RENDER_MAX_PIXELS);
	if (dcm_ds_get_u16(ds, TAG_SAMPLES, &spp) != ERR_OK)
		spp = 1;
	if (dcm_ds_get_u16(ds, TAG_BITS_STORED, &bs) != ERR_OK)
		bs = ba;
	if (dcm_ds_get_u16(ds, TAG_HIGH_BIT, &hb) != ERR_OK)
		hb = (uint16_t)(bs - 1);
	if (dcm_ds_get_u16(ds, TAG_PIXEL_REPR, &pr) != ERR_OK)
		pr = 0;
	if (dcm_ds_get_u16(ds, TAG_PLANAR, &pl) != ERR_OK)
		pl = 0;
	if (ba != 8 && ba != 16 && ba != 32)
		return err_why(why, whylen, ERR_UNSUPPORTED, "Bits Allocated %u is not rendered (8, 16 or 32)",
		               (unsigned)ba);
	if (bs == 0 || bs > ba || hb >= ba || hb + 1 < bs)
		return err_why(why, whylen, ERR_PARSE, "Bits Stored %u / High Bit %u do not fit Bits Allocated %u",
		               (unsigned)bs, (unsigned)hb, (unsigned)ba);
	im->rows = rows;
	im->cols = cols;
	im->spp = spp;
	im->bits_alloc = ba;
	im->bits_stored = bs;
	im->high_bit = hb;
	im->is_signed = pr == 1;
	im->planar = pl == 1 ? 1 : 0;
	if (str_is(ds, TAG_PHOTOMETRIC, "MONOCHROME1"))
		im->photo = RENDER_MONO1;
	else if (str_is(ds, TAG_PHOTOMETRIC, "MONOCHROME2"))
		im->photo = RENDER_MONO2;
	else if (str_is(ds, TAG_PHOTOMETRIC, "RGB"))
		im->photo = RENDER_RGB;
	else if (str_is(ds, TAG_PHOTOMETRIC, "YBR_FULL"))
		im->photo = RENDER_YBR_FULL;
	else if (str_is(ds, TAG_PHOTOMETRIC, "YBR_FULL_422"))
		im->photo = RENDER_YBR_FULL_422;
	else if (str_is(ds, TAG_PHOTOMETRIC, "PALETTE COLOR"))
		im->photo = RENDER_PALETTE;
	else if (str_is(ds, TAG_PHOTOMETRIC, "YBR_ICT"))
		im->photo = RENDER_YBR_ICT;
	else if (str_is(ds, TAG_PHOTOMETRIC, "YBR_RCT"))
		im->photo = RENDER_YBR_RCT;
	else if (dcm_ds_find(ds, TAG_PHOTOMETRIC) == NULL && spp == 1)
		im->photo = RENDER_MONO2;
	else {
		char pi[20] = "";
		if (dcm_ds_get_cstr(ds, TAG_PHOTOMETRIC, pi, sizeof pi) != ERR_OK)
			snprintf(pi, sizeof pi, "?");
		for (size_t i = 0; pi[i]; i++)
			if (!((pi[i] >= 'A' && pi[i] <= 'Z') || (pi[i] >= '0' && pi[i] <= '9') || pi[i] == '_' || pi[i] == ' '))
				pi[i] = '?';
		return err_why(why, whylen, ERR_UNSUPPORTED, "photometric interpretation \"%s\" is not rendered", pi);
	}
	if ((im->photo <= RENDER_MONO2 || im->photo == RENDER_PALETTE) ? spp != 1 : spp != 3)
		return err_why(why, whylen, ERR_PARSE, "Samples per Pixel %u does not fit the photometric interpretation",
		               (unsigned)spp);
	if ((im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT) && (f->ts == NULL || !f->ts->encapsulated))
		return err_why(why, whylen, ERR_PARSE, "YBR_ICT or YBR_RCT with native pixel data");
	if (im->photo == RENDER_YBR_FULL_422 && (cols % 2 != 0 || ba != 8))
		return err_why(why, whylen, ERR_UNSUPPORTED, "YBR_FULL_422 is rendered with 8 bits and an even width only");
	if (im->photo == RENDER_PALETTE && ba > 16)
		return err_why(why, whylen, ERR_PARSE, "PALETTE COLOR with %u bits allocated", (unsigned)ba);
	im->slope = 1;
	im->intercept = 0;
	if (ds_first(ds, TAG_RESCALE_SLOPE, &v) && v != 0)
		im->slope = v;
	if (ds_first(ds, TAG_RESCALE_ICPT, &v))
		im->intercept = v;
	if (im->photo <= RENDER_MONO2) {
		/* a Modality LUT Sequence replaces the rescale (which it may not
		 * accompany; when both are there the table is used, as pydicom
		 * and most viewers do) */
		rc = first_lut(f, ds, TAG_MOD_LUT_SEQ, im->is_signed, "a modality lookup table", &im->mlut, why, whylen);
		if (rc != ERR_OK)
			return rc;
	}
	if (ds_first(ds, TAG_WINDOW_CENTER, &im->win.center) && ds_first(ds, TAG_WINDOW_WIDTH, &im->win.width)) {
		im->win.fn = RENDER_VOI_LINEAR;
		if (str_is(ds, TAG_VOI_LUT_FN, "LINEAR_EXACT"))
			im->win.fn = RENDER_VOI_LINEAR_EXACT;
		else if (str_is(ds, TAG_VOI_LUT_FN, "SIGMOID"))
			im->win.fn = RENDER_VOI_SIGMOID;
		/* a width the function cannot use is ignored (the frame's range is used) */
		im->has_window = im->win.fn == RENDER_VOI_LINEAR ? im->win.width >= 1 : im->win.width > 0;
	}
	if (im->photo == RENDER_PALETTE) {
		rc = palette_init(f, ds, im, why, whylen);
		if (rc != ERR_OK) {
			render_image_fini(im);
			return rc;
		}
	}
	if (im->photo <= RENDER_MONO2 && !im->has_window) {
		rc = first_lut(f, ds, TAG_VOI_LUT_SEQ, false, "a VOI lookup table", &im->voi, why, whylen);
		if (rc != ERR_OK) {
			render_image_fini(im);
			return rc;
		}
	}
	return ERR_OK;
}

void render_image_fini(struct render_image *im)
{
	unsigned c;

	for (c = 0; c < 3; c++) {
		free(im->pal[c].v);
		im->pal[c].v = NULL;
	}
	free(im->voi.v);
	im->voi.v = NULL;
	free(im->mlut.v);
	im->mlut.v = NULL;
}

uint64_t render_frame_bytes(const struct render_image *im)
{
	uint64_t px = (uint64_t)im->rows * im->cols;

	if (im->photo == RENDER_YBR_FULL_422)
		return px * 2 * (im->bits_alloc / 8);
	return px * im->spp * (im->bits_alloc / 8);
}

/* ---- the pipeline ---- */

void render_out_fini(struct render_out *o)
{
	free(o->px);
	memset(o, 0, sizeof *o);
}

/* The stored value bits of the sample at index i (in samples) of frame. */
static uint32_t raw_at(const struct render_image *im, const uint8_t *fr, size_t i)
{
	uint64_t raw;
	unsigned shift = im->high_bit + 1 - im->bits_stored;

	if (im->bits_alloc == 8)
		raw = fr[i];
	else if (im->bits_alloc == 16)
		raw = (uint64_t)fr[2 * i] | (uint64_t)fr[2 * i + 1] << 8;
	else
		raw = (uint64_t)fr[4 * i] | (uint64_t)fr[4 * i + 1] << 8 | (uint64_t)fr[4 * i + 2] << 16 |
		      (uint64_t)fr[4 * i + 3] << 24;
	return (uint32_t)((raw >> shift) & (((uint64_t)1 << im->bits_stored) - 1));
}

/* The stored value of raw bits (two's complement when signed). */
static int64_t stored_of(const struct render_image *im, uint32_t raw)
{
	if (im->is_signed && (raw >> (im->bits_stored - 1)) & 1)
		return (int64_t)raw - ((int64_t)1 << im->bits_stored);
	return raw;
}

/* PS3.3 C.11.2.1.2 with y in [0, 255], rounded half up. */
static uint8_t voi(double x, const struct render_window *w)
{
	double c = w->center, wd = w->width, y;

	if (w->fn == RENDER_VOI_LINEAR) {
		if (x <= c - 0.5 - (wd - 1) / 2)
			y = 0;
		else if (x > c - 0.5 + (wd - 1) / 2)
			y = 255;
		else
			y = ((x - (c - 0.5)) / (wd - 1) + 0.5) * 255;
	} else if (w->fn == RENDER_VOI_LINEAR_EXACT) {
		if (x <= c - wd / 2)
			y = 0;
		else if (x > c + wd / 2)
			y = 255;
		else
			y = ((x - c) / wd + 0.5) * 255;
	} else {
		y = 255 / (1 + exp(-4 * (x - c) / wd));
	}
	y = floor(y + 0.5);
	if (y < 0)
		y = 0;
	if (y > 255)
		y = 255;
	return (uint8_t)y;
}

/* Through the VOI LUT (PS3.3 C.11.2.1.1): the entry of the modality
 * value (rounded down), the first entry below the range and the last
 * above it, scaled from its bits to [0, 255] and rounded half up. */
static uint8_t voi_lut(const struct render_image *im, double x)
{
	double k = floor(x) - (double)im->voi.first;
	uint32_t i = k <= 0 ? 0 : k >= (double)(im->voi.n - 1) ? im->voi.n - 1 : (uint32_t)k;

	return (uint8_t)floor((double)im->voi.v[i] * 255.0 / (double)((1u << im->voi.bits) - 1) + 0.5);
}

/* The modality value of a stored value: through the Modality LUT (the
 * first entry below it, the last above), else the rescale. */
static double modality_of(const struct render_image *im, int64_t s)
{
	int64_t k;

	if (im->mlut.v == NULL)
		return (double)s * im->slope + im->intercept;
	k = s - (int64_t)im->mlut.first;
	return (double)im->mlut.v[k <= 0 ? 0 : k >= (int64_t)im->mlut.n - 1 ? im->mlut.n - 1 : (uint32_t)k];
}

static uint8_t grey_of(const struct render_image *im, const struct render_window *w, uint32_t raw)
{
	double x = modality_of(im, stored_of(im, raw));
	uint8_t y = w != NULL ? voi(x, w) : voi_lut(im, x);

	return im->photo == RENDER_MONO1 ? (uint8_t)(255 - y) : y;
}

static enum err render_grey(const struct render_image *im, const uint8_t *fr, const struct render_window *win,
                            uint8_t *out)
{
	size_t np = (size_t)im->rows * im->cols, i;
	struct render_window w;
	const struct render_window *wp = &w;   /* NULL: the VOI LUT */

	if (win != NULL) {
		w = *win;
	} else if (im->has_window) {
		w = im->win;
	} else if (im->voi.v != NULL) {
		wp = NULL;   /* the data set's VOI LUT */
	} else {
		/* the frame's range of modality values, linear-exact */
		int64_t lo = INT64_MAX, hi = INT64_MIN;
		double a = INFINITY, b = -INFINITY;
		for (i = 0; i < np; i++) {
			int64_t s = stored_of(im, raw_at(im, fr, i));
			if (im->mlut.v != NULL) {   /* a table need not be monotonic: its outputs */
				double x = modality_of(im, s);
				a = x < a ? x : a;
				b = x > b ? x : b;
			} else {                  /* the rescale is: the stored range */
				lo = s < lo ? s : lo;
				hi = s > hi ? s : hi;
			}
		}
		if (im->mlut.v == NULL) {
			a = modality_of(im, lo);
			b = modality_of(im, hi);
		}
		if (a > b) {
			double t = a;
			a = b;
			b = t;
		}
		w.center = (a + b) / 2;
		w.width = b - a;
		w.fn = RENDER_VOI_LINEAR_EXACT;
	}
	if (im->bits_stored <= 16) {
		size_t nl = (size_t)1 << im->bits_stored;
		uint8_t *lut = malloc(nl);
		if (lut == NULL)
			return ERR_NOMEM;
		for (i = 0; i < nl; i++)
			lut[i] = grey_of(im, wp, (uint32_t)i);
		for (i = 0; i < np; i++)
			out[i] = lut[raw_at(im, fr, i)];
		free(lut);
	} else {
		for (i = 0; i < np; i++)
			out[i] = grey_of(im, wp, raw_at(im, fr, i));
	}
	return ERR_OK;
}

/* A colour sample scaled to 8 bits. */
static unsigned to8(const struct render_image *im, uint32_t raw)
{
	if (im->bits_stored == 8)
		return raw;
	return (unsigned)floor((double)raw * 255 / (double)(((uint64_t)1 << im->bits_stored) - 1) + 0.5);
}

static uint8_t clamp8(double v)
{
	v = floor(v + 0.5);
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* PS3.3 C.7.6.3.1.2: YBR_FULL to RGB. */
static void ybr_rgb(unsigned y, unsigned cb, unsigned cr, uint8_t *o)
{
	double dy = y, dcb = (double)cb - 128, dcr = (double)cr - 128;

	o[0] = clamp8(dy + 1.402 * dcr);
	o[1] = clamp8(dy - 0.344136 * dcb - 0.714136 * dcr);
	o[2] = clamp8(dy + 1.772 * dcb);
}

static void render_colour(const struct render_image *im, const uint8_t *fr, uint8_t *out)
{
	size_t np = (size_t)im->rows * im->cols, p, s;

	if (im->photo == RENDER_YBR_FULL_422) {
		/* Y0 Y1 Cb Cr for each pair of pixels of a row */
		for (p = 0; p < np; p += 2) {
			size_t q = p * 2;
			ybr_rgb(fr[q], fr[q + 2], fr[q + 3], out + 3 * p);
			ybr_rgb(fr[q + 1], fr[q + 2], fr[q + 3], out + 3 * (p + 1));
		}
		return;
	}
	if (im->photo == RENDER_PALETTE) {
		for (p = 0; p < np; p++) {
			int64_t v = stored_of(im, raw_at(im, fr, p)) - im->pal[0].first;
			size_t k = v < 0 ? 0 : v >= (int64_t)im->pal[0].n ? im->pal[0].n - 1 : (size_t)v;
			for (s = 0; s < 3; s++)
				out[3 * p + s] = (uint8_t)(im->pal[s].bits == 16 ? im->pal[s].v[k] >> 8 : im->pal[s].v[k]);
		}
		return;
	}
	for (p = 0; p < np; p++) {
		unsigned c[3];
		for (s = 0; s < 3; s++)
			c[s] = to8(im, raw_at(im, fr, im->planar ? s * np + p : 3 * p + s));
		if (im->photo == RENDER_YBR_FULL) {
			ybr_rgb(c[0], c[1], c[2], out + 3 * p);
		} else {
			for (s = 0; s < 3; s++)
				out[3 * p + s] = (uint8_t)c[s];
		}
	}
}

enum err render_frame(const struct render_image *im, const uint8_t *frame, size_t len,
                      const struct render_window *win, struct render_out *out, char *why, size_t whylen)
{
	size_t np = (size_t)im->rows * im->cols;
	bool grey = im->photo == RENDER_MONO1 || im->photo == RENDER_MONO2;
	unsigned ch = grey ? 1 : 3;
	uint8_t *px;
	enum err rc;

	if (np == 0 || np > RENDER_MAX_PIXELS)
		return err_why(why, whylen, ERR_LIMIT, "image size out of range");
	if (len < render_frame_bytes(im))
		return err_why(why, whylen, ERR_PARSE, "the frame has %zu bytes, the image needs %llu", len,
		               (unsigned long long)render_frame_bytes(im));
	if (im->photo == RENDER_PALETTE && (im->pal[0].n == 0 || im->pal[0].v == NULL || im->pal[1].v == NULL || im->pal[2].v == NULL))
		return err_why(why, whylen, ERR_INTERNAL, "palette lookup tables missing");
	if (im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT)
		return err_why(why, whylen, ERR_PARSE, "YBR_ICT and YBR_RCT frames are rendered once decoded");
	px = malloc(np * ch);
	if (px == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	if (grey) {
		rc = render_grey(im, frame, win, px);
		if (rc != ERR_OK) {
			free(px);
			return err_why(why, whylen, rc, "out of memory");
		}
	} else {
		render_colour(im, frame, px);
	}
	out->px = px;
	out->w = im->cols;
	out->h = im->rows;
	out->channels = ch;
	return ERR_OK;
}

/* ---- scaling ---- */

void render_fit(uint32_t w, uint32_t h, uint32_t vw, uint32_t vh, uint32_t *ow, uint32_t *oh)
{
	uint64_t a, b;

	if (w <= vw && h <= vh) {
		*ow = w;
		*oh = h;
		return;
	}
	if ((uint64_t)w * vh <= (uint64_t)h * vw) {
		/* the height limits */
		a = ((uint64_t)w * vh + h / 2) / h;
		*ow = a == 0 ? 1 : (uint32_t)a;
		*oh = vh;
	} else {
		b = ((uint64_t)h * vw + w / 2) / w;
		*ow = vw;
		*oh = b == 0 ? 1 : (uint32_t)b;
	}
}

enum err render_scale(struct render_out *o, uint32_t vw, uint32_t vh)
{
	uint32_t ow, oh, ox, oy, x, y;
	unsigned ch = o->channels, c;
	uint8_t *px;

	render_fit(o->w, o->h, vw, vh, &ow, &oh);
	if (ow == o->w && oh == o->h)
		return ERR_OK;
	px = malloc((size_t)ow * oh * ch);
	if (px == NULL)
		return ERR_NOMEM;
	for (oy = 0; oy < oh; oy++) {
		uint32_t y0 = (uint32_t)((uint64_t)oy * o->h / oh), y1 = (uint32_t)((uint64_t)(oy + 1) * o->h / oh);
		for (ox = 0; ox < ow; ox++) {
			uint32_t x0 = (uint32_t)((uint64_t)ox * o->w / ow), x1 = (uint32_t)((uint64_t)(ox + 1) * o->w / ow);
			uint64_t cnt = (uint64_t)(x1 - x0) * (y1 - y0);
			for (c = 0; c < ch; c++) {
				uint64_t sum = 0;
				for (y = y0; y < y1; y++)
					for (x = x0; x < x1; x++)
						sum += o->px[((size_t)y * o->w + x) * ch + c];
				px[((size_t)oy * ow + ox) * ch + c] = (uint8_t)((sum + cnt / 2) / cnt);
			}
		}
	}
	free(o->px);
	o->px = px;
	o->w = ow;
	o->h = oh;
	return ERR_OK;
}
