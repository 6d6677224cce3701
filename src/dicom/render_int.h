/* render_int.h: what the decoders of encapsulated frames (render_j2k.c,
 * render_jls.c, render_ljpeg.c) share: the checks of the image before a
 * frame is read, a decoded sample checked against the image's Bits Stored
 * and Pixel Representation and written as a native sample, and the
 * decoded frame handed over. Layer: dicom. */
#ifndef DICOMVAULT_RENDER_INT_H
#define DICOMVAULT_RENDER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"
#include "dicomvault/render.h"

/* Before a frame of n bytes of codec name is read: n within
 * min..RENDER_MAX_OUTPUT, im no larger than RENDER_MAX_PIXELS, PALETTE
 * COLOR of at most 16 bits; *total: the bytes of the decoded frame,
 * samples interleaved. */
static inline enum err render_dec_check(const struct render_image *im, const char *name, size_t n, size_t min,
                                        size_t *total, char *why, size_t whylen)
{
	size_t np = (size_t)im->rows * im->cols;

	if (n < min || n > RENDER_MAX_OUTPUT)
		return err_why(why, whylen, ERR_PARSE, "a %s frame of %zu bytes", name, n);
	if ((uint64_t)np > RENDER_MAX_PIXELS || size_mul(np * im->spp, im->bits_alloc / 8, total) != ERR_OK)
		return err_why(why, whylen, ERR_LIMIT, "the image is too large");
	if (im->photo == RENDER_PALETTE && im->bits_alloc > 16)
		return err_why(why, whylen, ERR_PARSE, "PALETTE COLOR with %u bits allocated", im->bits_alloc);
	return ERR_OK;
}

/* A decoder's success: dec (samples interleaved and right-aligned;
 * method, when not NULL, the lossy compression its frame had) becomes
 * *im, and buf (total bytes) *out. */
static inline void render_dec_done(struct render_image *im, struct render_image *dec, const char *method, uint8_t *buf,
                                   size_t total, uint8_t **out, size_t *outlen)
{
	dec->planar = 0;
	dec->high_bit = dec->bits_stored - 1;
	if (method != NULL)
		dec->lossy = method;
	*im = *dec;
	*out = buf;
	*outlen = total;
}

/* v written at p as a word of im's Bits Allocated, little endian (its
 * low bits; a negative value as two's complement). */
static inline void render_sample_store(const struct render_image *im, int64_t v, uint8_t *p)
{
	if (im->bits_alloc == 8)
		p[0] = (uint8_t)v;
	else if (im->bits_alloc == 16)
		store_u16le(p, (uint16_t)v);
	else
		store_u32le(p, (uint32_t)v);
}

/* Sample v of a decoded frame written at p as a sample of im (Bits
 * Allocated wide, little endian, a signed value sign-extended). pattern:
 * v is the unsigned bit pattern of a value of Bits Stored bits, which a
 * signed image reads as two's complement (JPEG-LS has no signed samples;
 * some JPEG 2000 encoders write unsigned codestreams of signed images);
 * otherwise v is the value itself. False when v does not fit Bits Stored
 * (and Pixel Representation), unless clamp: then it is clamped into it
 * (a lossy decoder's ringing at the ends of the range). */
static inline bool render_sample_put(const struct render_image *im, int64_t v, bool pattern, bool clamp, uint8_t *p)
{
	unsigned bs = im->bits_stored;
	int64_t lo = 0, hi = ((int64_t)1 << bs) - 1;

	if (im->is_signed && !pattern) {
		lo = -((int64_t)1 << (bs - 1));
		hi = ((int64_t)1 << (bs - 1)) - 1;
	}
	if (v < lo || v > hi) {
		if (!clamp)
			return false;
		v = v < lo ? lo : hi;
	}
	if (im->is_signed && pattern && v > ((int64_t)1 << (bs - 1)) - 1)
		v -= (int64_t)1 << bs;
	render_sample_store(im, v, p);
	return true;
}

#endif
