/* transcode.h: a data set written in Explicit or Implicit VR Little
 * Endian for a peer or client that takes neither its stored transfer
 * syntax nor a compressed one: encapsulated pixel data decompressed,
 * native data sets re-encoded (PS3.4 C.4.2.1.4: the SCP may send an
 * instance in another transfer syntax than the one it stored it in;
 * PS3.18: Explicit VR Little Endian is WADO-RS's default transfer
 * syntax). Used by WADO-RS (both), and by the C-GET and C-MOVE
 * sub-operations to decompress (they re-encode with dcm_file_write).
 * Layer: dicom. */
#ifndef DICOMVAULT_TRANSCODE_H
#define DICOMVAULT_TRANSCODE_H

#include <stdbool.h>
#include <stddef.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"

/* Whether data sets of this transfer syntax can be decompressed: those
 * render_codec_of knows (render.h): JPEG Baseline (.4.50), JPEG Extended
 * (.4.51, 8 or 12 bits), JPEG Lossless (.4.57, .4.70), RLE Lossless
 * (1.2.840.10008.1.2.5), JPEG 2000 and HTJ2K (.4.90, .4.91, .4.201-203)
 * and JPEG-LS (.4.80, .4.81). */
bool dcm_decompress_takes(const char *ts_uid);

/* Whether data sets of this transfer syntax can be written by
 * dcm_transcode_begin: every native one (Implicit or Explicit VR, little
 * or big endian, deflated), and the ones dcm_decompress_takes. */
bool dcm_transcode_takes(const char *ts_uid);

/* The data set of f (read with bulk values: its source open until the
 * end) written in `to`, Explicit or Implicit VR Little Endian; with
 * part10, as a Part 10 file (preamble, File Meta Information naming `to`
 * and our implementation, then the data set).
 * begin does all that can fail before anything is sent but decoding the
 * later frames (or reading native pixels again): the first frame
 * decoded, the data set without its pixels written into memory.
 * ERR_UNSUPPORTED, a transfer syntax or image this does not take (the
 * decoders': 8-bit JPEG of 1 or 3 components, 12-bit JPEG of 1, JPEG
 * Lossless of 1 to 4 not subsampled, RLE of 8, 16 or 32 bits, ...;
 * native Pixel Data neither OB nor OW, or of odd length); ERR_PARSE, a
 * first frame that does not decode; ERR_LIMIT, over 4 GiB decompressed,
 * or over 64 MiB of other values. */
struct dcm_transcode;
WUR enum err dcm_transcode_begin(struct dcm_file *f, const struct dcm_ts *to, bool part10,
                                 struct dcm_transcode **out, char *why, size_t whylen);
/* Writes the data set (after a preamble and File Meta Information with
 * part10) to k. Decompressed: Pixel Data one frame at a time (one
 * compressed and one decoded frame in memory); the attributes that
 * describe the pixels follow: an 8-bit JPEG colour image becomes RGB,
 * samples interleaved (JPEG 2000's YBR_ICT/RCT too); an RLE one is laid
 * out as its Planar Configuration says (absent: 0); a lossy frame (JPEG
 * Baseline and Extended, a lossless JPEG's point transform, lossy JPEG
 * 2000, near-lossless JPEG-LS) makes Lossy Image Compression "01" and
 * adds its method (ISO_10918_1...) when absent. Group lengths,
 * the rest of group 7FE0 (Extended Offset Table), elements after Pixel
 * Data (trailing padding, Digital Signatures, which no longer hold) and
 * compressed pixels inside items (an icon's) are left out. A later frame
 * that does not decode fails it (ERR_PARSE) with part of the data set
 * written. Native: every element but group lengths and trailing
 * padding, values as they were (numbers swapped from big endian), Pixel
 * Data read from the source 1 MiB at a time. */
WUR enum err dcm_transcode_write(struct dcm_transcode *z, struct sink *k, char *why, size_t whylen);
/* The same bytes pulled piece by piece: the head (the data set up to the
 * Pixel Data element's header), then each frame (native: each chunk of
 * the Pixel Data value, then the elements after it), then the padding
 * byte of an odd length; *n 0 at the end. *p stays valid until the next
 * call or dcm_transcode_free. write and next are two ways of doing it
 * once. */
WUR enum err dcm_transcode_next(struct dcm_transcode *z, const uint8_t **p, size_t *n, char *why, size_t whylen);
void dcm_transcode_free(struct dcm_transcode *z);

struct dcm_frames;
struct render_image;
/* Frame i of fr decompressed (ts_uid: the stored transfer syntax, one
 * dcm_decompress_takes takes; im: the image as render_image_init read it)
 * into *out (malloc'd, *outlen bytes, little endian): an 8-bit JPEG
 * frame as 8-bit samples (3 components: RGB, interleaved), an RLE frame
 * laid out as im's Planar Configuration says, the others interleaved
 * (render_decode). */
WUR enum err dcm_frame_decompress(const struct dcm_frames *fr, const struct render_image *im, const char *ts_uid,
                                  uint32_t i, uint8_t **out, size_t *outlen, char *why, size_t whylen);

#endif
