/* frame.c: where the frames of an image are (native slices, encapsulated
 * fragments through the offset tables) and random access to the bytes of
 * one frame or one value, without loading bulk data. See frame.h.
 * Layer: dicom. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dict.h"
#include "dicomvault/frame.h"
#include "dicomvault/limits.h"
#include "dicomvault/vr.h"

#define TAG_NUMBER_OF_FRAMES  0x00280008u
#define TAG_SAMPLES           0x00280002u
#define TAG_PHOTOMETRIC       0x00280004u
#define TAG_ROWS              0x00280010u
#define TAG_COLUMNS           0x00280011u
#define TAG_EXT_OFFSET_TABLE  0x7FE00001u
#define RLE_TS_UID            "1.2.840.10008.1.2.5"

#define TMP_CHUNK 4096u

static void why_set(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Raw bytes (source byte order) of a value held in memory or in the source. */
static enum err raw_read(const struct dcm_file *f, const uint8_t *val, uint16_t flags, uint64_t bulk_off, uint64_t pos,
                         void *buf, size_t n)
{
	if (n == 0)
		return ERR_OK;
	if (!(flags & DCM_EF_BULK)) {
		if (val == NULL)
			return ERR_INTERNAL;
		memcpy(buf, val + pos, n);
		return ERR_OK;
	}
	if (!f->bulk_ok || f->src == NULL || f->src->read_at == NULL)
		return ERR_UNSUPPORTED;
	return f->src->read_at(f->src->ctx, bulk_off + pos, buf, n);
}

static unsigned elem_swap(const struct dcm_file *f, const struct dcm_elem *e)
{
	unsigned u;

	/* values in memory were made little endian by the reader */
	if (!(e->flags & DCM_EF_BULK) || f->ts == NULL || !f->ts->big_endian)
		return 1;
	u = dcm_swap_size(f, e->tag, e->vr);
	return u < 2 ? 1 : u;
}

/* n bytes at pos of a value whose source bytes are swapped by unit: whole
 * units read straight into out and swapped there; the ends through a
 * small buffer. */
static enum err swapped_read(const struct dcm_file *f, const struct dcm_elem *e, unsigned unit, uint64_t pos,
                             uint8_t *out, size_t n)
{
	uint8_t tmp[TMP_CHUNK];
	enum err rc;

	if (pos % unit == 0 && n >= unit) {
		size_t whole = n - n % unit;
		rc = raw_read(f, e->val, e->flags, e->bulk_off, pos, out, whole);
		if (rc != ERR_OK)
			return rc;
		dcm_swap_bytes(out, whole, unit);
		out += whole;
		pos += whole;
		n -= whole;
	}
	while (n > 0) {
		uint64_t a = pos - pos % unit;
		size_t skip = (size_t)(pos - a), take;
		size_t want = sizeof tmp;
		if ((uint64_t)e->len - a < want)
			want = (size_t)((uint64_t)e->len - a);
		/* whole units are swapped; the bytes of a last partial unit are
		 * left as they are, as the reader does with values it loads */
		if (want >= unit)
			want -= want % unit;
		if (want <= skip)
			return ERR_INTERNAL;
		rc = raw_read(f, e->val, e->flags, e->bulk_off, a, tmp, want);
		if (rc != ERR_OK)
			return rc;
		dcm_swap_bytes(tmp, want, unit);
		take = want - skip;
		if (take > n)
			take = n;
		memcpy(out, tmp + skip, take);
		out += take;
		pos += take;
		n -= take;
	}
	return ERR_OK;
}

enum err dcm_elem_read_at(const struct dcm_file *f, const struct dcm_elem *e, uint64_t pos, void *buf, size_t n)
{
	unsigned unit;

	if ((e->flags & DCM_EF_ENCAPS) || e->seq != NULL)
		return ERR_INTERNAL;
	if (pos > e->len || (uint64_t)e->len - pos < n)
		return ERR_PARSE;
	unit = elem_swap(f, e);
	if (unit > 1)
		return swapped_read(f, e, unit, pos, buf, n);
	return raw_read(f, e->val, e->flags, e->bulk_off, pos, buf, n);
}

/* ---- locating frames ---- */

/* An IS value: spaces around, an optional '+'. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	size_t n;

	while (*s == ' ')
		s++;
	if (*s == '+')
		s++;
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		n--;
	return vr_uint_parse(s, n, max, out);
}

static enum err number_of_frames(const struct dcm_ds *ds, uint32_t *n, char *why, size_t whylen)
{
	char buf[32];
	uint64_t v;

	if (dcm_ds_find(ds, TAG_NUMBER_OF_FRAMES) == NULL) {
		*n = 1;
		return ERR_OK;
	}
	if (dcm_ds_get_cstr(ds, TAG_NUMBER_OF_FRAMES, buf, sizeof buf) != ERR_OK || buf[0] == 0) {
		*n = 1;   /* present but empty: one frame */
		return ERR_OK;
	}
	if (!parse_uint(buf, UINT32_MAX, &v) || v == 0) {
		why_set(why, whylen, "Number of Frames is not a positive integer");
		return ERR_PARSE;
	}
	*n = (uint32_t)v;
	return ERR_OK;
}

/* A little-endian unsigned integer of size bytes (4 or 8) at index k of a value. */
static enum err table_get(const struct dcm_file *f, const uint8_t *val, uint16_t flags, uint64_t bulk_off,
                          unsigned size, uint64_t k, uint64_t *out)
{
	uint8_t b[8];
	uint64_t v = 0;
	unsigned i;
	enum err rc = raw_read(f, val, flags, bulk_off, k * size, b, size);

	if (rc != ERR_OK)
		return rc;
	for (i = size; i > 0; i--)
		v = (v << 8) | b[i - 1];
	*out = v;
	return ERR_OK;
}

/* Index of the fragment whose item starts at offset off (offs ascending), or 0. */
static uint32_t frag_at(const uint64_t *offs, uint32_t nfrags, uint64_t off)
{
	uint32_t lo = 1, hi = nfrags;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (offs[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nfrags && offs[lo] == off ? lo : 0;
}

/* Does fragment k end in an end-of-image / end-of-codestream marker
 * (FFD9), allowing one byte of padding after it? */
static enum err ends_in_eoi(const struct dcm_file *f, const struct dcm_frag *fr, bool *yes)
{
	uint8_t b[3] = { 0, 0, 0 };
	size_t n = fr->len < 3 ? fr->len : 3;
	enum err rc;

	*yes = false;
	if (n < 2)
		return ERR_OK;
	rc = raw_read(f, fr->val, fr->flags, fr->bulk_off, fr->len - n, b + 3 - n, n);
	if (rc != ERR_OK)
		return rc;
	*yes = (b[1] == 0xFF && b[2] == 0xD9) || (b[0] == 0xFF && b[1] == 0xD9 && b[2] == 0x00);
	return ERR_OK;
}

static enum err map_encapsulated(struct dcm_frames *fr, char *why, size_t whylen)
{
	const struct dcm_file *f = fr->f;
	const struct dcm_seq *sq = fr->pixel->seq;
	const struct dcm_elem *eot = dcm_ds_find(fr->ds, TAG_EXT_OFFSET_TABLE);
	uint64_t *offs = NULL;
	uint32_t nfrags = sq->nfrags, i, k;
	enum err rc = ERR_INTERNAL;

	if (nfrags < 2) {
		why_set(why, whylen, "encapsulated Pixel Data without fragments");
		return ERR_PARSE;
	}
	/* every frame starts on a fragment of its own: checked before the
	 * table is allocated (Number of Frames 4294967295 asked for 32 GB) */
	if (fr->n > nfrags - 1) {
		why_set(why, whylen, "%u fragments for %u frames", (unsigned)(nfrags - 1), (unsigned)fr->n);
		return ERR_PARSE;
	}
	fr->first = calloc((size_t)fr->n + 1, sizeof *fr->first);
	offs = calloc(nfrags, sizeof *offs);
	if (fr->first == NULL || offs == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	/* offsets of the item headers, from the first fragment after the BOT */
	for (k = 1; k < nfrags; k++)
		offs[k] = k == 1 ? 0 : offs[k - 1] + 8 + sq->frags[k - 1].len;
	fr->first[fr->n] = nfrags;
	if (eot != NULL && eot->len > 0 && !(eot->flags & DCM_EF_ENCAPS) && eot->seq == NULL) {
		if (eot->len % 8 != 0 || eot->len / 8 != fr->n) {
			why_set(why, whylen, "the Extended Offset Table lists %u frames, Number of Frames is %u",
			        (unsigned)(eot->len / 8), (unsigned)fr->n);
			rc = ERR_PARSE;
			goto out;
		}
		fr->how = "Extended Offset Table";
		for (i = 0; i < fr->n; i++) {
			uint64_t o = 0;
			rc = table_get(f, eot->val, eot->flags, eot->bulk_off, 8, i, &o);
			if (rc != ERR_OK)
				goto out;
			fr->first[i] = frag_at(offs, nfrags, o);
		}
	} else if (sq->frags[0].len > 0) {
		const struct dcm_frag *bot = &sq->frags[0];
		if (bot->len % 4 != 0 || bot->len / 4 != fr->n) {
			why_set(why, whylen, "the Basic Offset Table lists %u frames, Number of Frames is %u",
			        (unsigned)(bot->len / 4), (unsigned)fr->n);
			rc = ERR_PARSE;
			goto out;
		}
		fr->how = "Basic Offset Table";
		for (i = 0; i < fr->n; i++) {
			uint64_t o = 0;
			rc = table_get(f, bot->val, bot->flags, bot->bulk_off, 4, i, &o);
			if (rc != ERR_OK)
				goto out;
			fr->first[i] = frag_at(offs, nfrags, o);
		}
	} else if (nfrags - 1 == fr->n) {
		fr->how = "one fragment per frame";
		for (i = 0; i < fr->n; i++)
			fr->first[i] = i + 1;
	} else if (fr->n == 1) {
		fr->how = "one frame in all fragments";
		fr->first[0] = 1;
	} else if (nfrags - 1 < fr->n || strcmp(f->ts_uid, RLE_TS_UID) == 0) {
		why_set(why, whylen, "%u fragments for %u frames and no offset table", (unsigned)(nfrags - 1),
		        (unsigned)fr->n);
		rc = ERR_UNSUPPORTED;
		goto out;
	} else {
		/* JPEG family without a table: a frame ends with a fragment that
		 * ends in FFD9 (JPEG EOI, JPEG-LS EOI, JPEG 2000 EOC) */
		uint32_t nf = 0;
		bool start = true;
		fr->how = "end-of-image markers (no offset table)";
		for (k = 1; k < nfrags; k++) {
			bool eoi = false;
			if (start) {
				if (nf == fr->n)
					break;
				fr->first[nf++] = k;
				start = false;
			}
			rc = ends_in_eoi(f, &sq->frags[k], &eoi);
			if (rc != ERR_OK)
				goto out;
			start = eoi;
		}
		if (nf != fr->n || k != nfrags || !start) {
			why_set(why, whylen, "%u fragments for %u frames, no offset table, and end-of-image markers "
			        "do not split them into frames", (unsigned)(nfrags - 1), (unsigned)fr->n);
			rc = ERR_UNSUPPORTED;
			goto out;
		}
	}
	/* every frame starts on a fragment, in order */
	for (i = 0; i < fr->n; i++) {
		if (fr->first[i] == 0 || fr->first[i] >= fr->first[i + 1]) {
			why_set(why, whylen, "the %s does not point at the start of a fragment for frame %u, in order",
			        fr->how, (unsigned)i + 1);
			rc = ERR_PARSE;
			goto out;
		}
	}
	rc = ERR_OK;
out:
	free(offs);
	if (rc != ERR_OK) {
		free(fr->first);
		fr->first = NULL;
	}
	return rc;
}

enum err dcm_frames_init(const struct dcm_file *f, struct dcm_frames *fr, char *why, size_t whylen)
{
	return dcm_frames_init_in(f, &f->ds, fr, why, whylen);
}

enum err dcm_frames_init_in(const struct dcm_file *f, const struct dcm_ds *ds, struct dcm_frames *fr, char *why,
                            size_t whylen)
{
	static const uint32_t pixel_tags[] = { TAG_PIXEL_DATA, TAG_FLOAT_PIXEL, TAG_DFLOAT_PIXEL };
	const struct dcm_elem *px = NULL;
	uint16_t rows = 0, cols = 0, spp = 1, ba = 0;
	char pi[32] = "";
	enum err rc;
	size_t i;

	memset(fr, 0, sizeof *fr);
	fr->f = f;
	fr->ds = ds;
	fr->swap = 1;
	if (why != NULL && whylen > 0)
		why[0] = 0;
	for (i = 0; i < sizeof pixel_tags / sizeof pixel_tags[0] && px == NULL; i++)
		px = dcm_ds_find(ds, pixel_tags[i]);
	if (px == NULL || (px->len == 0 && !(px->flags & DCM_EF_ENCAPS))) {
		why_set(why, whylen, "the instance has no pixel data");
		return ERR_NOTFOUND;
	}
	fr->pixel = px;
	rc = number_of_frames(ds, &fr->n, why, whylen);
	if (rc != ERR_OK)
		return rc;
	if (px->flags & DCM_EF_ENCAPS) {
		fr->encapsulated = true;
		if (px->seq == NULL)
			return ERR_INTERNAL;
		return map_encapsulated(fr, why, whylen);
	}
	if (px->seq != NULL)
		return ERR_PARSE;
	if (dcm_ds_get_u16(ds, TAG_ROWS, &rows) != ERR_OK || dcm_ds_get_u16(ds, TAG_COLUMNS, &cols) != ERR_OK ||
	    dcm_ds_get_u16(ds, TAG_BITS_ALLOC, &ba) != ERR_OK || rows == 0 || cols == 0 || ba == 0) {
		why_set(why, whylen, "Rows, Columns or Bits Allocated missing or zero");
		return ERR_PARSE;
	}
	if (dcm_ds_find(ds, TAG_SAMPLES) != NULL && (dcm_ds_get_u16(ds, TAG_SAMPLES, &spp) != ERR_OK || spp == 0)) {
		why_set(why, whylen, "Samples per Pixel is not a positive integer");
		return ERR_PARSE;
	}
	/* at most 65535^4 < 2^64 */
	fr->bits = (uint64_t)rows * cols * spp * ba;
	if (dcm_ds_get_cstr(ds, TAG_PHOTOMETRIC, pi, sizeof pi) == ERR_OK && strcmp(pi, "YBR_FULL_422") == 0 &&
	    spp == 3)
		fr->bits = fr->bits / 3 * 2;   /* two chroma samples per two pixels */
	if (fr->bits == 0 || fr->n > ((uint64_t)px->len * 8) / fr->bits) {
		why_set(why, whylen, "Pixel Data (%u bytes) is shorter than %u frames of %llu bits", (unsigned)px->len,
		        (unsigned)fr->n, (unsigned long long)fr->bits);
		return ERR_PARSE;
	}
	fr->how = "native";
	/* a big-endian value in the source is swapped as it is read
	 * (dcm_elem_read_at, at any offset), so frames are slices of the
	 * little-endian value, as when the reader loads it */
	fr->swap = elem_swap(f, px);
	return ERR_OK;
}

void dcm_frames_fini(struct dcm_frames *fr)
{
	if (fr == NULL)
		return;
	free(fr->first);
	fr->first = NULL;
}

uint64_t dcm_frame_size(const struct dcm_frames *fr, uint32_t i)
{
	uint64_t n = 0;
	uint32_t k;

	if (i >= fr->n)
		return 0;
	if (!fr->encapsulated)
		return (fr->bits + 7) / 8;
	for (k = fr->first[i]; k < fr->first[i + 1]; k++)
		n += fr->pixel->seq->frags[k].len;
	return n;
}

/* Native frames whose first bit is not on a byte boundary: out byte j
 * holds the frame's bits 8j..8j+7 (LSB first, as PS3.5 8.1.1 packs them). */
static enum err read_shifted(const struct dcm_frames *fr, uint32_t i, uint64_t pos, uint8_t *out, size_t n)
{
	const struct dcm_elem *px = fr->pixel;
	uint64_t bit0 = (uint64_t)i * fr->bits, fsize = (fr->bits + 7) / 8;
	unsigned s = (unsigned)(bit0 % 8), tail = (unsigned)(fr->bits % 8);
	uint8_t tmp[TMP_CHUNK + 1];
	enum err rc;

	while (n > 0) {
		uint64_t b0 = bit0 / 8 + pos;
		size_t take = n > TMP_CHUNK ? TMP_CHUNK : n, have = take + 1, j;
		if ((uint64_t)px->len - b0 < have)
			have = (size_t)((uint64_t)px->len - b0);
		memset(tmp, 0, sizeof tmp);
		rc = dcm_elem_read_at(fr->f, px, b0, tmp, have);
		if (rc != ERR_OK)
			return rc;
		for (j = 0; j < take; j++) {
			uint8_t v = (uint8_t)(tmp[j] >> s);
			if (s > 0)
				v |= (uint8_t)(tmp[j + 1] << (8 - s));
			if (tail != 0 && pos + j == fsize - 1)
				v &= (uint8_t)((1u << tail) - 1);
			out[j] = v;
		}
		out += take;
		pos += take;
		n -= take;
	}
	return ERR_OK;
}

enum err dcm_frame_read(const struct dcm_frames *fr, uint32_t i, uint64_t pos, void *buf, size_t n)
{
	uint8_t *out = buf;
	uint64_t size = dcm_frame_size(fr, i), at = 0;
	uint32_t k;
	enum err rc;

	if (i >= fr->n || pos > size || size - pos < n)
		return ERR_INTERNAL;
	if (!fr->encapsulated) {
		if (fr->bits % 8 == 0)
			return dcm_elem_read_at(fr->f, fr->pixel, (uint64_t)i * (fr->bits / 8) + pos, buf, n);
		return read_shifted(fr, i, pos, out, n);
	}
	for (k = fr->first[i]; k < fr->first[i + 1] && n > 0; k++) {
		const struct dcm_frag *fg = &fr->pixel->seq->frags[k];
		uint64_t in, take;
		if (pos >= at + fg->len) {
			at += fg->len;
			continue;
		}
		in = pos - at;
		take = fg->len - in;
		if (take > n)
			take = n;
		rc = raw_read(fr->f, fg->val, fg->flags, fg->bulk_off, in, out, (size_t)take);
		if (rc != ERR_OK)
			return rc;
		out += take;
		pos += take;
		n -= (size_t)take;
		at += fg->len;
	}
	return n == 0 ? ERR_OK : ERR_INTERNAL;
}
