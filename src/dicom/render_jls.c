/* render_jls.c: JPEG-LS frames (PS3.5 A.4.3, ISO 14495-1) decoded with
 * CharLS through its C API. The frame's header is read first and checked
 * against the data set (size, components, precision), so that nothing is
 * allocated for a header that lies; CharLS decodes into a buffer of the
 * size it asks for (one or two bytes a sample), which is then written as
 * native samples, interleaved. A frame must end with its end-of-image
 * marker (below: why). CharLS reports errors as codes (its C++ exceptions
 * stay inside it) and prints nothing. Pure. Layer: dicom. */
#include <stdlib.h>
#include <string.h>
#include <charls/charls.h>
#include "dicomvault/limits.h"
#include "dicomvault/render.h"
#include "render_int.h"

static const char *jls_msg(charls_jpegls_errc e)
{
	const char *m = charls_get_error_message(e);

	return m != NULL ? m : "no reason given";
}

/* The decoded sample of component c at pixel i: CharLS's layout is one
 * plane per component when the scans are not interleaved, else the
 * components of a pixel together; bytes: 1 or 2 (host order). */
static uint32_t jls_sample(const uint8_t *d, size_t np, unsigned spp, bool planes, size_t bytes, size_t i,
                           unsigned c)
{
	size_t k = planes ? c * np + i : i * spp + c;
	uint16_t v;

	if (bytes == 1)
		return d[k];
	memcpy(&v, d + 2 * k, 2);
	return v;
}

/* The largest NEAR of the frame's scans (ISO 14495-1 C.2.3: each SOS
 * carries its own; CharLS tells the current scan's only), walking the
 * marker segments by their lengths and the scan data to the next marker
 * (in scan data 0xFF is always followed by a byte below 0x80, so a byte
 * from 0x80 after 0xFF is a marker). -1: the walk fails (taken as lossy). */
int render_jls_near_max(const uint8_t *p, size_t n)
{
	size_t i = 2;
	int near = -1;

	if (n < 4 || p[0] != 0xFF || p[1] != 0xD8)
		return -1;
	while (i + 1 < n) {
		uint8_t m;
		size_t len;
		if (p[i] != 0xFF)
			return -1;
		while (i + 1 < n && p[i + 1] == 0xFF)   /* fill bytes */
			i++;
		if (i + 1 >= n)
			return -1;
		m = p[i + 1];
		i += 2;
		if (m == 0xD9)   /* EOI */
			return near;
		if (m < 0xD0 || m > 0xD7) {   /* RSTn has no length */
			if (i + 2 > n)
				return -1;
			len = (size_t)p[i] << 8 | p[i + 1];
			if (len < 2 || len > n - i)
				return -1;
			if (m == 0xDA) {   /* SOS: Ls, Ns, Ns x (Ci, Tmi), NEAR, ILV, Al/Ah */
				size_t ns = len >= 3 ? p[i + 2] : 0;
				if (len < 6 + 2 * ns)
					return -1;
				if ((int)p[i + 3 + 2 * ns] > near)
					near = p[i + 3 + 2 * ns];
			}
			i += len;
			if (m != 0xDA)
				continue;
		}
		/* scan data (after SOS or RSTn), to the next marker */
		while (i + 1 < n && !(p[i] == 0xFF && p[i + 1] >= 0x80))
			i++;
	}
	return -1;
}

enum err render_jls_decode(struct render_image *im, const uint8_t *src, size_t n, uint8_t **out, size_t *outlen,
                           char *why, size_t whylen)
{
	charls_jpegls_decoder *d = NULL;
	charls_frame_info fi;
	charls_interleave_mode ilv = CHARLS_INTERLEAVE_MODE_NONE;
	charls_color_transformation ct = CHARLS_COLOR_TRANSFORMATION_NONE;
	charls_jpegls_errc e;
	struct render_image dec = *im;
	uint8_t *raw = NULL, *buf = NULL;
	size_t np = (size_t)im->rows * im->cols, bps = im->bits_alloc / 8, total = 0, rawlen = 0, bytes, i;
	bool lossy;
	unsigned c;
	enum err rc = ERR_INTERNAL;

	while (n > 4 && src[n - 1] == 0)   /* the fragment's padding */
		n--;
	rc = render_dec_check(im, "JPEG-LS", n, 4, &total, why, whylen);
	if (rc != ERR_OK)
		return rc;
	/* CharLS 2.4 reading scan data that runs to the end of its buffer
	 * without a marker (a cut frame) counts its bits below zero and then
	 * spins about 2^31 times (seconds of CPU) before failing; it stops at
	 * a marker. So the frame must end with EOI, as every frame does. */
	if (src[n - 2] != 0xFF || src[n - 1] != 0xD9)
		return err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame does not end with an end-of-image marker");
	if (im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT || im->photo == RENDER_YBR_FULL_422)
		return err_why(why, whylen, ERR_PARSE, "a JPEG-LS frame cannot be %s",
		               im->photo == RENDER_YBR_FULL_422 ? "YBR_FULL_422" : "a JPEG 2000 colour transform");
	d = charls_jpegls_decoder_create();
	if (d == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS)
		e = charls_jpegls_decoder_read_header(d);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS)
		e = charls_jpegls_decoder_get_frame_info(d, &fi);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS)
		e = charls_jpegls_decoder_get_interleave_mode(d, &ilv);
	if (e == CHARLS_JPEGLS_ERRC_SUCCESS)
		e = charls_jpegls_decoder_get_color_transformation(d, &ct);
	if (e != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS header does not decode: %s", jls_msg(e));
		goto out;
	}
	if (fi.width != im->cols || fi.height != im->rows) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame is %ux%u, the data set says %ux%u",
		             (unsigned)fi.width, (unsigned)fi.height, (unsigned)im->cols, (unsigned)im->rows);
		goto out;
	}
	if (fi.component_count < 0 || (uint32_t)fi.component_count != im->spp) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame has %d components, the data set says %u",
		             (int)fi.component_count, (unsigned)im->spp);
		goto out;
	}
	if (fi.bits_per_sample < 2 || fi.bits_per_sample > 16 || (unsigned)fi.bits_per_sample > im->bits_alloc) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame has %d-bit samples, Bits Allocated is %u",
		             (int)fi.bits_per_sample, im->bits_alloc);
		goto out;
	}
	if (ct != CHARLS_COLOR_TRANSFORMATION_NONE) {
		rc = err_why(why, whylen, ERR_UNSUPPORTED, "JPEG-LS frames with HP colour transforms are not decoded");
		goto out;
	}
	bytes = fi.bits_per_sample > 8 ? 2 : 1;
	e = charls_jpegls_decoder_get_destination_size(d, 0, &rawlen);
	if (e != CHARLS_JPEGLS_ERRC_SUCCESS || rawlen != np * im->spp * bytes) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame decodes to %zu bytes, not %zu", rawlen,
		             np * im->spp * bytes);
		goto out;
	}
	raw = malloc(rawlen);
	buf = malloc(total);
	if (raw == NULL || buf == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	e = charls_jpegls_decoder_decode_to_buffer(d, raw, rawlen, 0);
	if (e != CHARLS_JPEGLS_ERRC_SUCCESS) {
		rc = err_why(why, whylen, ERR_PARSE, "the JPEG-LS frame does not decode: %s", jls_msg(e));
		goto out;
	}
	/* lossy if any scan is (CharLS tells the current scan's NEAR only; a
	 * frame of three scans has a middle one); a frame whose markers do not
	 * walk counts as lossy */
	lossy = render_jls_near_max(src, n) != 0;
	for (i = 0; i < np; i++)
		for (c = 0; c < im->spp; c++) {
			uint32_t v = jls_sample(raw, np, im->spp, ilv == CHARLS_INTERLEAVE_MODE_NONE, bytes, i, c);
			if (!render_sample_put(im, v, true, lossy, buf + (i * im->spp + c) * bps)) {
				rc = err_why(why, whylen, ERR_PARSE, "a JPEG-LS sample (%u) does not fit Bits Stored %u",
				             (unsigned)v, im->bits_stored);
				goto out;
			}
		}
	render_dec_done(im, &dec, lossy ? "ISO_14495_1" : NULL, buf, total, out, outlen);
	buf = NULL;
	rc = ERR_OK;
out:
	free(raw);
	free(buf);
	charls_jpegls_decoder_destroy(d);
	return rc;
}
