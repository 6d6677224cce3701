/* frame.h: the frames of an image and the bytes of one value, read piece
 * by piece from a parsed file (whose bulk values stay in its source), for
 * WADO-RS frames and bulk data. Native pixel data: frame i is the bits
 * [i * B, (i + 1) * B) of Pixel Data with B = Rows * Columns *
 * SamplesPerPixel * BitsAllocated (two thirds of it for YBR_FULL_422),
 * re-aligned to a byte when B is not a multiple of 8 (BitsAllocated 1),
 * little endian. Encapsulated pixel data: the fragments of frame i found
 * through the Extended Offset Table, the Basic Offset Table, one fragment
 * per frame, one frame in all fragments, or (JPEG family only) the
 * fragments ending in an end-of-image marker; anything else is ambiguous
 * and refused. See docs/internals/dicomweb.md. Pure. Layer: dicom. */
#ifndef DICOMVAULT_FRAME_H
#define DICOMVAULT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/err.h"

struct dcm_frames {
	const struct dcm_file *f;
	const struct dcm_ds *ds;       /* the data set of the image (top level, or an item: an icon) */
	const struct dcm_elem *pixel;  /* Pixel Data (or Float / Double Float Pixel Data) */
	uint32_t n;                    /* frames (Number of Frames, 1 when absent) */
	bool encapsulated;
	/* native */
	uint64_t bits;                 /* bits per frame */
	unsigned swap;                 /* byte-swap unit that gives little endian (1: none) */
	/* encapsulated: frame i is pixel->seq->frags[first[i] .. first[i + 1] - 1]
	 * (frags[0] is the Basic Offset Table) */
	uint32_t *first;
	const char *how;               /* how the frames were located (a static sentence) */
};

/* Locates the frames of f's top-level pixel data. ERR_NOTFOUND: no pixel
 * data; ERR_PARSE: inconsistent attributes (Pixel Data shorter than its
 * frames, an offset table that points between fragments or lists another
 * number of frames); ERR_UNSUPPORTED: fragments that cannot be mapped to
 * frames unambiguously. why (may be NULL) says which. */
WUR enum err dcm_frames_init(const struct dcm_file *f, struct dcm_frames *fr, char *why, size_t whylen);
/* The same for the image of data set ds of f (an item, e.g. an icon). */
WUR enum err dcm_frames_init_in(const struct dcm_file *f, const struct dcm_ds *ds, struct dcm_frames *fr, char *why,
                                size_t whylen);
void dcm_frames_fini(struct dcm_frames *fr);
/* Bytes of frame i (0-based, i < n). */
uint64_t dcm_frame_size(const struct dcm_frames *fr, uint32_t i);
/* n bytes of frame i from byte pos (pos + n <= its size). */
WUR enum err dcm_frame_read(const struct dcm_frames *fr, uint32_t i, uint64_t pos, void *buf, size_t n);

/* n bytes of e's value from byte pos (pos + n <= e->len), in memory or
 * in the source, little endian (a big-endian source is swapped). Not for
 * sequences or encapsulated values. */
WUR enum err dcm_elem_read_at(const struct dcm_file *f, const struct dcm_elem *e, uint64_t pos, void *buf,
                              size_t n);

#endif
