/* render_codec.c: the codecs of rendered resources: an 8-bit grey or RGB
 * image encoded as JPEG (libjpeg-turbo) or PNG (libpng) into a capped
 * buffer; the decoders of encapsulated frames by transfer syntax (JPEG
 * 2000 in render_j2k.c, JPEG-LS in render_jls.c, JPEG Lossless and 12-bit
 * JPEG Extended in render_ljpeg.c), and two of them: JPEG
 * Baseline (libjpeg-turbo, 8-bit) and RLE Lossless (PS3.5 Annex G,
 * PackBits segments, decoded here). libjpeg and libpng report errors through
 * longjmp: all state they touch lives in a heap block whose pointer is
 * set before setjmp, so nothing is indeterminate after the jump. Pure.
 * Layer: dicom. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include "dicomvault/rd.h"
#include "dicomvault/render.h"
#include "dicomvault/turns.h"

/* ---- JPEG ---- */

struct jstate {
	struct jpeg_error_mgr mgr;   /* first: libjpeg's err pointer is this block */
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
	union {
		struct jpeg_compress_struct c;
		struct jpeg_decompress_struct d;
	} u;
	bool lost;                   /* a warning that pixels were made up (data missing or corrupt) */
	uint8_t *eoi;                /* the frame with the EOI it lacked */
	const uint8_t *in;           /* what libjpeg reads: the frame, or eoi */
	size_t inlen;
	const uint8_t *src;          /* the frame as given */
	size_t srclen;
	unsigned char *mem;          /* jpeg_mem_dest's buffer */
	unsigned long memlen;
	uint8_t *out;                /* decoded frame */
};

static void jerr_exit(j_common_ptr c)
{
	struct jstate *st = (struct jstate *)(void *)c->err;

	(*c->err->format_message)(c, st->msg);
	longjmp(st->jb, 1);
}

static void jerr_quiet(j_common_ptr c)
{
	(void)c;   /* nothing is written to stderr */
}

/* libjpeg's warnings (level -1): on data that runs out or is corrupt it
 * goes on with made-up pixels (a fake EOI, grey rows) and reports
 * success, so a warning that scan data was lost makes the decode fail (as
 * a cut JPEG-LS, lossless JPEG or JPEG 2000 frame does): a marker or the
 * end of the data in the middle of the scan, a bad Huffman or arithmetic
 * code, a resynchronisation. The others lose nothing and pass, as they
 * did (a JFIF version 2, a missing EOI after the whole scan, a baseline
 * SOS with Se 0, extraneous bytes before a marker). */
static void jerr_emit(j_common_ptr c, int level)
{
	struct jstate *st = (struct jstate *)(void *)c->err;
	int code = c->err->msg_code;
	bool lost;

	if (level >= 0)
		return;   /* trace messages */
	c->err->num_warnings++;
	lost = code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC || code == JWRN_HUFF_BAD_CODE ||
	       code == JWRN_ARITH_BAD_CODE;
	if (code == JWRN_JPEG_EOF && c->is_decompressor) {
		const struct jpeg_decompress_struct *d = (const struct jpeg_decompress_struct *)(const void *)c;
		lost = d->global_state != 0 && d->output_scanline < d->output_height;   /* within the scan */
	}
	if (!lost || st->lost)
		return;
	st->lost = true;
	(*c->err->format_message)(c, st->msg);
}

static struct jstate *jstate_new(void)
{
	struct jstate *st = calloc(1, sizeof *st);

	if (st == NULL)
		return NULL;
	jpeg_std_error(&st->mgr);
	st->mgr.error_exit = jerr_exit;
	st->mgr.output_message = jerr_quiet;
	st->mgr.emit_message = jerr_emit;
	return st;
}

static enum err jpeg_encode(const struct render_out *o, int quality, struct wbuf *w, char *why, size_t whylen)
{
	struct jstate *st = jstate_new();
	enum err rc = ERR_INTERNAL;
	uint32_t y;

	if (st == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	st->u.c.err = &st->mgr;
	if (setjmp(st->jb) != 0) {
		rc = err_why(why, whylen, ERR_INTERNAL, "JPEG encoder: %s", st->msg);
		goto out;
	}
	jpeg_create_compress(&st->u.c);
	jpeg_mem_dest(&st->u.c, &st->mem, &st->memlen);
	st->u.c.image_width = o->w;
	st->u.c.image_height = o->h;
	st->u.c.input_components = (int)o->channels;
	st->u.c.in_color_space = o->channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
	jpeg_set_defaults(&st->u.c);
	jpeg_set_quality(&st->u.c, quality, TRUE);
	jpeg_start_compress(&st->u.c, TRUE);
	for (y = 0; y < o->h; y++) {
		JSAMPROW row = o->px + (size_t)y * o->w * o->channels;
		(void)jpeg_write_scanlines(&st->u.c, &row, 1);
	}
	jpeg_finish_compress(&st->u.c);
	if (st->memlen > RENDER_MAX_OUTPUT) {
		rc = err_why(why, whylen, ERR_LIMIT, "the encoded image is too large");
		goto out;
	}
	wbuf_put(w, st->mem, st->memlen);
	rc = wbuf_err(w);
	if (rc != ERR_OK)
		rc = err_why(why, whylen, rc, "the encoded image does not fit its buffer");
out:
	jpeg_destroy_compress(&st->u.c);
	free(st->mem);
	free(st);
	return rc;
}

enum err render_jpeg_decode(struct render_image *im, const uint8_t *src, size_t n, uint8_t **out, size_t *outlen,
                            char *why, size_t whylen)
{
	struct jstate *st;
	enum err rc = ERR_INTERNAL;
	size_t stride, total;
	unsigned comps;

	if (n < 4 || n > (size_t)RENDER_MAX_OUTPUT)
		return err_why(why, whylen, ERR_PARSE, "a JPEG frame of %zu bytes", n);
	st = jstate_new();
	if (st == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	st->in = st->src = src;
	st->inlen = st->srclen = n;
	{
		/* a frame that ends without its EOI (some encoders leave it out):
		 * given one after its bytes as they are (a last 00 may be the
		 * scan's own, after a stuffed FF; a padding byte before a marker
		 * is skipped), so that the end of its data is not taken for a cut
		 * (a frame of one scan really cut short then hits it inside the
		 * scan; one of several is read as it is: below) */
		size_t m = n;
		while (m > 2 && src[m - 1] == 0)
			m--;   /* the fragment's padding, for the look only */
		if (src[m - 2] != 0xFF || src[m - 1] != 0xD9) {
			st->eoi = malloc(n + 2);
			if (st->eoi == NULL) {
				free(st);
				return err_why(why, whylen, ERR_NOMEM, "out of memory");
			}
			memcpy(st->eoi, src, n);
			st->eoi[n] = 0xFF;
			st->eoi[n + 1] = 0xD9;
			st->in = st->eoi;
			st->inlen = n + 2;
		}
	}
	st->u.d.err = &st->mgr;
	if (setjmp(st->jb) != 0) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame does not decode: %s", st->msg);
		goto out;
	}
	jpeg_create_decompress(&st->u.d);
	jpeg_mem_src(&st->u.d, st->in, (unsigned long)st->inlen);
	if (jpeg_read_header(&st->u.d, TRUE) != JPEG_HEADER_OK) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame has no image");
		goto out;
	}
	if (st->eoi != NULL && jpeg_has_multiple_scans(&st->u.d)) {
		/* an EOI given to a frame of several scans would end it where
		 * a frame cut between two scans stops, with no warning: such a
		 * frame is read as it is (its missing end then lost) */
		jpeg_abort_decompress(&st->u.d);
		st->in = st->src;
		st->inlen = st->srclen;
		jpeg_mem_src(&st->u.d, st->in, (unsigned long)st->inlen);
		if (jpeg_read_header(&st->u.d, TRUE) != JPEG_HEADER_OK) {
			rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame has no image");
			goto out;
		}
	}
	comps = (unsigned)st->u.d.num_components;
	if (st->u.d.image_width != im->cols || st->u.d.image_height != im->rows) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame is %ux%u, the data set says %ux%u",
		             (unsigned)st->u.d.image_width, (unsigned)st->u.d.image_height, (unsigned)im->cols,
		             (unsigned)im->rows);
		goto out;
	}
	if (st->u.d.data_precision != 8 || (comps != 1 && comps != 3) || comps != im->spp) {
		rc = err_why(why, whylen, ERR_UNSUPPORTED, "JPEG frames of %d-bit precision and %u components are not rendered",
		             st->u.d.data_precision, comps);
		goto out;
	}
	if (comps == 3) {
		/* the data set says whether the encoder transformed the colours */
		st->u.d.jpeg_color_space = im->photo == RENDER_RGB ? JCS_RGB : JCS_YCbCr;
		st->u.d.out_color_space = JCS_RGB;
	} else {
		st->u.d.out_color_space = JCS_GRAYSCALE;
	}
	jpeg_start_decompress(&st->u.d);
	stride = (size_t)im->cols * comps;
	total = stride * im->rows;
	st->out = malloc(total);
	if (st->out == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	while (st->u.d.output_scanline < st->u.d.output_height) {
		JSAMPROW row = st->out + (size_t)st->u.d.output_scanline * stride;
		if (jpeg_read_scanlines(&st->u.d, &row, 1) != 1) {
			rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame ends early");
			goto out;
		}
	}
	(void)jpeg_finish_decompress(&st->u.d);
	if (st->lost) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG frame does not decode: %s", st->msg);
		goto out;
	}
	im->bits_alloc = 8;
	im->bits_stored = 8;
	im->high_bit = 7;
	im->planar = 0;
	if (comps == 3)
		im->photo = RENDER_RGB;
	im->lossy = "ISO_10918_1";
	*out = st->out;
	*outlen = total;
	st->out = NULL;
	rc = ERR_OK;
out:
	jpeg_destroy_decompress(&st->u.d);
	free(st->out);
	free(st->eoi);
	free(st);
	return rc;
}

/* ---- PNG ---- */

struct pstate {
	png_structp p;
	png_infop info;
	struct wbuf *w;
	char msg[128];
};

static void png_fail(png_structp p, png_const_charp msg)
{
	struct pstate *st = png_get_error_ptr(p);

	snprintf(st->msg, sizeof st->msg, "%s", msg ? msg : "error");
	png_longjmp(p, 1);
}

static void png_warn(png_structp p, png_const_charp msg)
{
	(void)p;
	(void)msg;
}

static void png_put(png_structp p, png_bytep data, size_t n)
{
	struct pstate *st = png_get_io_ptr(p);

	wbuf_put(st->w, data, n);
	if (wbuf_err(st->w) != ERR_OK)
		png_error(p, "the encoded image does not fit its buffer");
}

static void png_flush_none(png_structp p)
{
	(void)p;
}

static enum err png_encode(const struct render_out *o, struct wbuf *w, char *why, size_t whylen)
{
	struct pstate *st = calloc(1, sizeof *st);
	enum err rc = ERR_INTERNAL;
	uint32_t y;

	if (st == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	st->w = w;
	st->p = png_create_write_struct(PNG_LIBPNG_VER_STRING, st, png_fail, png_warn);
	if (st->p != NULL)
		st->info = png_create_info_struct(st->p);
	if (st->p == NULL || st->info == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (setjmp(png_jmpbuf(st->p)) != 0) {
		rc = err_why(why, whylen, wbuf_err(w) != ERR_OK ? ERR_LIMIT : ERR_INTERNAL, "PNG encoder: %s", st->msg);
		goto out;
	}
	png_set_write_fn(st->p, st, png_put, png_flush_none);
	png_set_IHDR(st->p, st->info, o->w, o->h, 8, o->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
	             PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(st->p, st->info);
	for (y = 0; y < o->h; y++)
		png_write_row(st->p, o->px + (size_t)y * o->w * o->channels);
	png_write_end(st->p, NULL);
	rc = ERR_OK;
out:
	if (st->p != NULL)
		png_destroy_write_struct(&st->p, st->info != NULL ? &st->info : NULL);
	free(st);
	return rc;
}

enum err render_encode(const struct render_out *o, enum render_media m, int quality, struct wbuf *w, char *why,
                       size_t whylen)
{
	if (o->px == NULL || o->w == 0 || o->h == 0 || (o->channels != 1 && o->channels != 3))
		return err_why(why, whylen, ERR_INTERNAL, "nothing to encode");
	if (m == RENDER_PNG)
		return png_encode(o, w, why, whylen);
	if (quality < 1 || quality > 100)
		quality = RENDER_JPEG_QUALITY;
	return jpeg_encode(o, quality, w, why, whylen);
}

/* ---- RLE Lossless (PS3.5 Annex G) ---- */

/* PackBits of segment seg into np bytes at out, each step of stride:
 * false when a run does not fit the frame or the segment ends first
 * (bytes after a full frame are padding). */
static bool packbits(struct rd *seg, uint8_t *out, size_t np, size_t stride)
{
	size_t o = 0;
	uint8_t h, b;

	while (o < np) {
		if (rd_get_u8(seg, &h) != ERR_OK)
			return false;
		if (h < 128) {
			size_t k = (size_t)h + 1;
			if (k > np - o || rd_remaining(seg) < k)
				return false;
			while (k-- > 0) {
				if (rd_get_u8(seg, &b) != ERR_OK)
					return false;
				out[o++ * stride] = b;
			}
		} else if (h != 128) {
			size_t k = 257u - h;   /* 1 - (int8_t)h */
			if (k > np - o || rd_get_u8(seg, &b) != ERR_OK)
				return false;
			while (k-- > 0)
				out[o++ * stride] = b;
		}
	}
	return true;
}

enum err render_rle_decode(const struct render_image *im, const uint8_t *src, size_t n, uint8_t **out,
                           size_t *outlen, char *why, size_t whylen)
{
	size_t np = (size_t)im->rows * im->cols, bps = im->bits_alloc / 8, total, s, k;
	uint32_t nseg, want, off[16];
	struct rd r, seg;
	uint8_t *buf;

	if (im->photo == RENDER_YBR_FULL_422)
		return err_why(why, whylen, ERR_PARSE, "RLE frames are never YBR_FULL_422");
	want = (uint32_t)(im->spp * bps);
	rd_init(&r, src, n);
	if (n < 64 || rd_get_u32le(&r, &nseg) != ERR_OK)
		return err_why(why, whylen, ERR_PARSE, "the RLE frame is shorter than its header");
	if (nseg != want || nseg > 15)
		return err_why(why, whylen, ERR_PARSE, "the RLE frame has %u segments, the image needs %u", (unsigned)nseg,
		               (unsigned)want);
	for (s = 0; s < nseg; s++) {
		if (rd_get_u32le(&r, &off[s]) != ERR_OK || off[s] < 64 || off[s] > n || (s > 0 && off[s] <= off[s - 1]))
			return err_why(why, whylen, ERR_PARSE, "the RLE segment offsets are out of order or range");
	}
	off[nseg] = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
	if (size_mul(np, nseg, &total) != ERR_OK)
		return err_why(why, whylen, ERR_LIMIT, "the RLE frame is too large");
	buf = calloc(total ? total : 1, 1);
	if (buf == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	/* segment s * bps + k: sample s, byte k counted from the most
	 * significant; the native frame is little endian, planes in order */
	for (s = 0; s < im->spp; s++) {
		for (k = 0; k < bps; k++) {
			size_t g = s * bps + k;
			rd_init(&r, src, n);
			if (rd_skip(&r, off[g]) != ERR_OK || rd_child(&r, off[g + 1] - off[g], &seg) != ERR_OK ||
			    !packbits(&seg, buf + s * np * bps + (bps - 1 - k), np, bps)) {
				free(buf);
				return err_why(why, whylen, ERR_PARSE, "RLE segment %zu does not decode to %zu bytes", g + 1, np);
			}
		}
	}
	*out = buf;
	*outlen = total;
	return ERR_OK;
}

/* ---- by transfer syntax ---- */

static const struct {
	const char *ts;
	enum render_codec c;
} codecs[] = {
	{ "1.2.840.10008.1.2.4.50", RENDER_CODEC_JPEG },      { "1.2.840.10008.1.2.5", RENDER_CODEC_RLE },
	{ "1.2.840.10008.1.2.4.90", RENDER_CODEC_J2K },       { "1.2.840.10008.1.2.4.91", RENDER_CODEC_J2K_LOSSY },
	{ "1.2.840.10008.1.2.4.201", RENDER_CODEC_J2K },      { "1.2.840.10008.1.2.4.202", RENDER_CODEC_J2K },
	{ "1.2.840.10008.1.2.4.203", RENDER_CODEC_J2K_LOSSY }, { "1.2.840.10008.1.2.4.80", RENDER_CODEC_JLS },
	{ "1.2.840.10008.1.2.4.81", RENDER_CODEC_JLS },       { "1.2.840.10008.1.2.4.51", RENDER_CODEC_JPEG_EXT },
	{ "1.2.840.10008.1.2.4.57", RENDER_CODEC_JPEG_LL },   { "1.2.840.10008.1.2.4.70", RENDER_CODEC_JPEG_LL },
};

enum render_codec render_codec_of(const char *ts_uid)
{
	size_t i;

	for (i = 0; ts_uid != NULL && i < sizeof codecs / sizeof codecs[0]; i++)
		if (strcmp(codecs[i].ts, ts_uid) == 0)
			return codecs[i].c;
	return RENDER_CODEC_NONE;
}

/* JPEG 2000, JPEG-LS, JPEG Lossless and 12-bit JPEG decodes at once,
 * process-wide: every DIMSE connection (C-GET/C-MOVE to an
 * uncompressed-only peer) and every WADO request may decode, and a small
 * frame can declare an image whose decoding takes hundreds of MB (ours:
 * a plane of 16 bits per sample and component, then the output); the
 * others wait up to RENDER_WAIT seconds for a turn (one frame each). */
static struct turns heavy = TURNS_INIT(RENDER_HEAVY_DECODES);

/* Whether frames of c (n bytes at src) take a heavy turn. */
static bool is_heavy(enum render_codec c, const uint8_t *src, size_t n)
{
	return c == RENDER_CODEC_J2K || c == RENDER_CODEC_J2K_LOSSY || c == RENDER_CODEC_JLS ||
	       c == RENDER_CODEC_JPEG_LL || (c == RENDER_CODEC_JPEG_EXT && render_jpeg_precision(src, n) != 8);
}

static enum err decode_by(enum render_codec c, struct render_image *im, const uint8_t *src, size_t n,
                          uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	enum err rc;

	switch (c) {
	case RENDER_CODEC_JPEG:
		return render_jpeg_decode(im, src, n, out, outlen, why, whylen);
	case RENDER_CODEC_JPEG_EXT:   /* 8-bit by libjpeg-turbo (colour too), 12-bit by ours */
		if (render_jpeg_precision(src, n) == 8)
			return render_jpeg_decode(im, src, n, out, outlen, why, whylen);
		return render_ljpeg_decode(im, false, src, n, out, outlen, why, whylen);
	case RENDER_CODEC_JPEG_LL:
		return render_ljpeg_decode(im, true, src, n, out, outlen, why, whylen);
	case RENDER_CODEC_RLE:
		rc = render_rle_decode(im, src, n, out, outlen, why, whylen);
		if (rc == ERR_OK)
			im->planar = 1;
		return rc;
	case RENDER_CODEC_J2K:
	case RENDER_CODEC_J2K_LOSSY:
		return render_j2k_decode(im, c == RENDER_CODEC_J2K_LOSSY, src, n, out, outlen, why, whylen);
	case RENDER_CODEC_JLS:
		return render_jls_decode(im, src, n, out, outlen, why, whylen);
	case RENDER_CODEC_NONE:
		break;
	}
	return err_why(why, whylen, ERR_UNSUPPORTED, "no decoder for these frames");
}

enum err render_decode(enum render_codec c, struct render_image *im, const uint8_t *src, size_t n,
                       uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	bool turn = is_heavy(c, src, n);
	enum err rc;

	if ((im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT) && c != RENDER_CODEC_J2K &&
	    c != RENDER_CODEC_J2K_LOSSY)
		return err_why(why, whylen, ERR_PARSE, "YBR_ICT and YBR_RCT are JPEG 2000's only");
	if (turn) {
		rc = turns_take(&heavy, RENDER_WAIT);
		if (rc == ERR_LIMIT)
			return err_why(why, whylen, rc, "no decoding turn came free in %d s", RENDER_WAIT);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "no decoding turns");
	}
	rc = decode_by(c, im, src, n, out, outlen, why, whylen);
	if (turn)
		turns_give(&heavy);
	return rc;
}
