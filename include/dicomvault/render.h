/* render.h: one frame of a DICOM image rendered for WADO-RS /rendered and
 * /thumbnail (PS3.18 8.3.5.1, 9.5, 10.4.1.1.3): the query parameters
 * window, viewport and quality; the description of an image from its data
 * set; the pixel pipeline of PS3.3 C.11 (stored values, Modality rescale,
 * VOI window linear / linear-exact / sigmoid or the data set's VOI LUT,
 * MONOCHROME1 inverted,
 * RGB / YBR_FULL / YBR_FULL_422 / PALETTE COLOR to RGB); an area-average
 * downscale to a viewport; JPEG (libjpeg-turbo) and PNG (libpng) encoding;
 * JPEG Baseline, RLE Lossless (PS3.5 Annex G), JPEG Lossless and 12-bit
 * JPEG Extended (ours), JPEG 2000 (OpenJPEG) and JPEG-LS (CharLS) decoding
 * of encapsulated frames. Pure: bytes in, bytes
 * out. See docs/internals/dicomweb.md.
 * Layer: dicom. */
#ifndef DICOMVAULT_RENDER_H
#define DICOMVAULT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"

/* ---- query parameters (PS3.18 8.3.5.1) ---- */

enum render_voi_fn { RENDER_VOI_LINEAR = 0, RENDER_VOI_LINEAR_EXACT, RENDER_VOI_SIGMOID };

struct render_window {
	double center, width;
	enum render_voi_fn fn;
};

/* "center,width[,function]": decimal numbers, function linear (default),
 * linear-exact or sigmoid; width >= 1 for linear, > 0 otherwise
 * (PS3.3 C.11.2.1.2). ERR_PARSE with a reason in why. */
WUR enum err render_window_parse(const char *s, size_t n, struct render_window *w, char *why, size_t whylen);
/* "vw,vh": 1..RENDER_MAX_VIEWPORT each. The form with a source region
 * (vw,vh,sx,sy,sw,sh) is ERR_UNSUPPORTED. */
WUR enum err render_viewport_parse(const char *s, size_t n, uint32_t *vw, uint32_t *vh, char *why, size_t whylen);
/* "1".."100". */
WUR enum err render_quality_parse(const char *s, size_t n, int *q, char *why, size_t whylen);

/* ---- the image ---- */

enum render_photo {
	RENDER_MONO1 = 0,
	RENDER_MONO2,
	RENDER_RGB,
	RENDER_YBR_FULL,
	RENDER_YBR_FULL_422,
	RENDER_PALETTE,
	/* JPEG 2000's colour transforms (PS3.5 8.2.4): the pixel data of these
	 * is encapsulated only, and decodes to RGB */
	RENDER_YBR_ICT,
	RENDER_YBR_RCT
};

/* A lookup table (PS3.3 C.11): n entries for the values first,
 * first + 1, ..., each bits wide (values above the first and below the
 * last entry are clamped to them); v owned by the image. */
struct render_lut {
	uint16_t *v;
	uint32_t n;
	int32_t first;
	unsigned bits;
};

struct render_image {
	uint32_t rows, cols, spp;
	unsigned bits_alloc, bits_stored, high_bit;
	bool is_signed;
	unsigned planar;              /* 0: samples interleaved; 1: one plane per sample */
	enum render_photo photo;
	double slope, intercept;      /* Modality rescale (1, 0 when absent) */
	bool has_window;              /* the first Window Center / Width of the data set */
	struct render_window win;
	/* PALETTE COLOR: the red, green and blue tables (of one shape, each
	 * entry 8 or 16 bits wide) */
	struct render_lut pal[3];
	/* grey images without a window: the first VOI LUT of the VOI LUT
	 * Sequence (v NULL when none: the frame's range is used then) */
	struct render_lut voi;
	/* grey images: the first Modality LUT of the Modality LUT Sequence,
	 * used instead of the rescale (v NULL when none) */
	struct render_lut mlut;
	/* set by a decoder: the method of Lossy Image Compression Method
	 * (0028,2114) when the frame it decoded was compressed lossily
	 * ("ISO_10918_1", "ISO_15444_1", "ISO_14495_1"), else NULL */
	const char *lossy;
};

/* Reads the image attributes of ds (a data set of f, for bulk LUT values).
 * ERR_NOTFOUND: not an image (no Rows/Columns/Pixel Data);
 * ERR_UNSUPPORTED: a valid image this renderer does not handle (1-bit,
 * 64-bit, float pixels, another photometric interpretation);
 * YBR_ICT and YBR_RCT are taken with encapsulated pixel data only (a
 * decoder makes them RGB), ERR_PARSE otherwise;
 * ERR_PARSE: inconsistent attributes; ERR_LIMIT: over RENDER_MAX_PIXELS.
 * why says which. Free with render_image_fini. */
WUR enum err render_image_init(const struct dcm_file *f, const struct dcm_ds *ds, struct render_image *im, char *why,
                               size_t whylen);
void render_image_fini(struct render_image *im);
/* Bytes of one native (uncompressed) frame of im. */
uint64_t render_frame_bytes(const struct render_image *im);

/* ---- rendering ---- */

/* An 8-bit image, rows top to bottom: channels 1 (grey) or 3 (RGB). */
struct render_out {
	uint8_t *px;
	uint32_t w, h;
	unsigned channels;
};

void render_out_fini(struct render_out *o);

/* Renders one native frame (len bytes, little endian, as dcm_frame_read
 * gives it) of im into out. Greyscale: win, else im's own window, else
 * the frame's smallest and largest modality values (linear-exact); colour
 * ignores the window. */
WUR enum err render_frame(const struct render_image *im, const uint8_t *frame, size_t len,
                          const struct render_window *win, struct render_out *out, char *why, size_t whylen);

/* The size that fits w x h into vw x vh, preserving the aspect ratio,
 * never larger than w x h (no upscaling), at least 1 x 1. */
void render_fit(uint32_t w, uint32_t h, uint32_t vw, uint32_t vh, uint32_t *ow, uint32_t *oh);
/* Replaces o by its area-average downscale to fit vw x vh. */
WUR enum err render_scale(struct render_out *o, uint32_t vw, uint32_t vh);

/* ---- codecs ---- */

enum render_media { RENDER_JPEG = 0, RENDER_PNG };

/* Encodes o as JPEG (quality 1..100) or PNG (quality ignored) into w. */
WUR enum err render_encode(const struct render_out *o, enum render_media m, int quality, struct wbuf *w, char *why,
                           size_t whylen);

/* The decoders of encapsulated frames, by transfer syntax. */
enum render_codec {
	RENDER_CODEC_NONE = 0,   /* not decoded here */
	RENDER_CODEC_JPEG,       /* JPEG Baseline 1.2.840.10008.1.2.4.50 */
	RENDER_CODEC_RLE,        /* RLE Lossless 1.2.840.10008.1.2.5 */
	RENDER_CODEC_J2K,        /* JPEG 2000 lossless .4.90, HTJ2K lossless .4.201 and .4.202 */
	RENDER_CODEC_J2K_LOSSY,  /* JPEG 2000 .4.91, HTJ2K .4.203: lossy whatever the codestream */
	RENDER_CODEC_JLS,        /* JPEG-LS lossless .4.80 and near-lossless .4.81 */
	RENDER_CODEC_JPEG_EXT,   /* JPEG Extended .4.51: 8-bit (libjpeg-turbo) or 12-bit (ours) */
	RENDER_CODEC_JPEG_LL     /* JPEG Lossless .4.57 and its selection value 1 .4.70 */
};

enum render_codec render_codec_of(const char *ts_uid);

/* Decodes one frame (n bytes at src) of im with codec c into *out
 * (malloc'd, *outlen bytes, little endian) and updates im to describe
 * it, im->lossy included. RLE: colour planes one after the other
 * (im->planar 1); the others: samples interleaved (im->planar 0).
 * ERR_PARSE: a frame that does not decode, or that is not the image the
 * data set describes; ERR_UNSUPPORTED: an image this decoder does not
 * take; ERR_LIMIT, ERR_NOMEM. why says which. */
WUR enum err render_decode(enum render_codec c, struct render_image *im, const uint8_t *src, size_t n,
                           uint8_t **out, size_t *outlen, char *why, size_t whylen);

/* Decodes one RLE Lossless frame (PS3.5 Annex G) of im into a native
 * frame of render_frame_bytes(im) bytes (little endian; colour planes
 * one after the other, so im->planar must be read as 1). */
WUR enum err render_rle_decode(const struct render_image *im, const uint8_t *src, size_t n, uint8_t **out,
                               size_t *outlen, char *why, size_t whylen);
/* Decodes one JPEG Baseline (8-bit) frame into a native 8-bit frame and
 * updates im to describe it (3 components: RGB, interleaved). */
WUR enum err render_jpeg_decode(struct render_image *im, const uint8_t *src, size_t n, uint8_t **out,
                                size_t *outlen, char *why, size_t whylen);
/* Decodes one JPEG 2000 frame (PS3.5 A.4.4: a codestream, or a JP2 file
 * whose codestream box is used; HTJ2K too) into a native frame of
 * render_frame_bytes(im) bytes, samples interleaved. The codestream must
 * be the image im describes: its size, its number of components (each of
 * full size), a precision of at most Bits Allocated; samples are written
 * as Bits Stored and Pixel Representation say (an unsigned codestream of
 * a signed image read as the bit patterns of its values), and one outside
 * that range fails a lossless frame (clamped in a lossy one). YBR_ICT and
 * YBR_RCT become RGB (OpenJPEG undoes the codestream's colour
 * transform). im->lossy is "ISO_15444_1" when lossy is set (a lossy
 * transfer syntax) or the codestream uses the irreversible wavelet. */
WUR enum err render_j2k_decode(struct render_image *im, bool lossy, const uint8_t *src, size_t n, uint8_t **out,
                               size_t *outlen, char *why, size_t whylen);
/* Decodes one JPEG-LS frame (ISO 14495-1) the same way: its size, its
 * number of components and a sample precision of at most Bits Allocated;
 * samples are bit patterns of Bits Stored bits (signed as Pixel
 * Representation says). im->lossy is "ISO_14495_1" when a scan's NEAR is
 * above 0. */
WUR enum err render_jls_decode(struct render_image *im, const uint8_t *src, size_t n, uint8_t **out, size_t *outlen,
                               char *why, size_t whylen);
/* Decodes one JPEG frame of the processes libjpeg-turbo 2.1 does not
 * take (render_ljpeg.c): when lossless, process 14 (SOF3: 2 to 16-bit
 * samples, 1 to 4 components, none subsampled, every predictor, point
 * transform, restart intervals of whole rows); else the extended
 * sequential DCT of 8- or 12-bit samples (SOF0/SOF1, Huffman), one
 * component. Like render_jls_decode: the frame must be the image im
 * describes, samples are bit patterns of Bits Stored bits (a lossless
 * frame coding more bits than Bits Stored is written as it was coded:
 * the whole allocated word); samples interleaved; YBR_FULL_422 becomes
 * YBR_FULL. im->lossy is "ISO_10918_1" for a DCT frame or a point
 * transform above 0. */
WUR enum err render_ljpeg_decode(struct render_image *im, bool lossless, const uint8_t *src, size_t n, uint8_t **out,
                                 size_t *outlen, char *why, size_t whylen);
/* The sample precision in a JPEG frame's first frame header (SOFn), 0
 * when there is none before the first scan or the markers do not walk. */
int render_jpeg_precision(const uint8_t *p, size_t n);
/* The largest NEAR over a JPEG-LS frame's scans (0: lossless), or -1 when
 * its marker segments cannot be walked. Pure. */
int render_jls_near_max(const uint8_t *p, size_t n);

#endif
