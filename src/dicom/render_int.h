/* render_int.h: what the decoders of render_codec.c, render_j2k.c and
 * render_jls.c share: a decoded sample checked against the image's Bits
 * Stored and Pixel Representation and written as a native sample.
 * Layer: dicom. */
#ifndef DICOMVAULT_RENDER_INT_H
#define DICOMVAULT_RENDER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/rd.h"
#include "dicomvault/render.h"

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
	if (im->bits_alloc == 8)
		p[0] = (uint8_t)v;
	else if (im->bits_alloc == 16)
		store_u16le(p, (uint16_t)v);
	else
		store_u32le(p, (uint32_t)v);
	return true;
}

#endif
