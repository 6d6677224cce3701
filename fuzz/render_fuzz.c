/* render_fuzz.c: libFuzzer target for dicom/render.c and render_codec.c:
 * the query parameters of rendered resources (window, viewport, quality:
 * client input) and small frames through the pixel pipeline, the viewport
 * scaling, the PNG and JPEG encoders and the RLE, JPEG (libjpeg-turbo's,
 * and ours of JPEG Lossless and 12-bit JPEG Extended), JPEG 2000 and
 * JPEG-LS decoders. Input:
 * "window\nviewport\nquality\n" then an image: 8 header bytes (rows,
 * columns, bits, stored bits, high bit, sign and photometric
 * interpretation, planar configuration, rescale) and the frame bytes.
 * An image part that starts with 'P' is instead a Part 10 file: its image
 * attributes (render_image_init: rescale, window, palette tables...) are
 * read as the server reads a stored object, and its first frame (at most
 * 64 x 64 pixels) goes through the pipeline and the decoders.
 * The target abort()s when
 *   * a parser succeeds with a value out of its range (width < 1 for
 *     linear or <= 0, viewport 0 or over RENDER_MAX_VIEWPORT, quality
 *     outside 1..100), fails without a reason, or changes its outputs on
 *     failure;
 *   * render_frame fails on a frame long enough for its image, succeeds on
 *     a shorter one, or gives another size or channel count than the image;
 *     MONOCHROME1 is not the inverse of MONOCHROME2;
 *   * scaling gives a size other than render_fit's, or larger than the
 *     viewport or the image; an encoder fails on a valid image;
 *   * a decoder succeeds with a frame of another size than the image's
 *     (JPEG 2000, JPEG-LS, JPEG Lossless and 12-bit JPEG: or not
 *     interleaved, or a 12-bit JPEG not marked lossy, or with another Bits
 *     Allocated, or says a lossless transfer syntax's frame is lossy
 *     when its codestream is not);
 *   * render_image_init fails without a reason or with an unexpected
 *     code, or a Part 10 frame at least as long as its image does not
 *     render (or a shorter one does);
 *   * an encapsulated Part 10 image that dcm_transcode_begin takes is
 *     written (transcode.h) as something that does not read back as an
 *     explicit VR data set, or whose Pixel Data is not every frame at the
 *     size its own attributes give (odd lengths padded); a native one
 *     re-encoded does not read back, or with Pixel Data of another
 *     length.
 * Layer: tests (fuzz). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/frame.h"
#include "dicomvault/io.h"
#include "dicomvault/render.h"
#include "dicomvault/transcode.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

static void die(const char *what)
{
	fprintf(stderr, "render_fuzz: %s\n", what);
	abort();
}

/* The next line of data (without its '\n'); false at the end. */
static bool line(const uint8_t **p, size_t *n, const char **s, size_t *len)
{
	const uint8_t *nl = memchr(*p, '\n', *n);

	if (nl == NULL)
		return false;
	*s = (const char *)*p;
	*len = (size_t)(nl - *p);
	*n -= *len + 1;
	*p = nl + 1;
	return true;
}

static void params(const char *w, size_t wl, const char *v, size_t vl, const char *q, size_t ql,
                   struct render_window *win, bool *has_win, uint32_t *vw, uint32_t *vh)
{
	char why[200];
	struct render_window x = { 123, 456, RENDER_VOI_SIGMOID };
	uint32_t a = 7, b = 9;
	int qq = 55;
	enum err rc;

	why[0] = 0;
	rc = render_window_parse(w, wl, &x, why, sizeof why);
	if (rc == ERR_OK) {
		if (x.fn == RENDER_VOI_LINEAR ? !(x.width >= 1) : !(x.width > 0))
			die("window width out of range accepted");
		if (x.center != x.center)
			die("window center NaN");
		*win = x;
		*has_win = true;
	} else {
		if (rc != ERR_PARSE || why[0] == 0)
			die("window refused without ERR_PARSE and a reason");
		if (x.center != 123 || x.width != 456 || x.fn != RENDER_VOI_SIGMOID)
			die("window changed on failure");
	}
	why[0] = 0;
	rc = render_viewport_parse(v, vl, &a, &b, why, sizeof why);
	if (rc == ERR_OK) {
		if (a == 0 || b == 0 || a > RENDER_MAX_VIEWPORT || b > RENDER_MAX_VIEWPORT)
			die("viewport out of range accepted");
		*vw = a;
		*vh = b;
	} else if ((rc != ERR_PARSE && rc != ERR_UNSUPPORTED) || why[0] == 0 || a != 7 || b != 9) {
		die("viewport refused badly");
	}
	why[0] = 0;
	rc = render_quality_parse(q, ql, &qq, why, sizeof why);
	if (rc == ERR_OK ? (qq < 1 || qq > 100) : (rc != ERR_PARSE || why[0] == 0 || qq != 55))
		die("quality");
}

static void decoders(const struct render_image *im0, const uint8_t *p, size_t n)
{
	struct render_image im = *im0;
	char why[200];
	uint8_t *out = NULL;
	size_t len = 0;

	if (render_rle_decode(&im, p, n, &out, &len, why, sizeof why) == ERR_OK) {
		if (len != render_frame_bytes(&im))
			die("RLE frame of another size");
		free(out);
	}
	out = NULL;
	if (im.photo != RENDER_PALETTE && render_jpeg_decode(&im, p, n, &out, &len, why, sizeof why) == ERR_OK) {
		if (len != (size_t)im.rows * im.cols * im.spp || im.bits_alloc != 8)
			die("JPEG frame of another size");
		free(out);
	}
	for (unsigned lossy = 0; lossy < 2; lossy++) {
		im = *im0;
		out = NULL;
		why[0] = 0;
		if (render_j2k_decode(&im, lossy, p, n, &out, &len, why, sizeof why) == ERR_OK) {
			if (len != render_frame_bytes(&im) || im.planar != 0 || im.bits_alloc != im0->bits_alloc ||
			    (lossy && im.lossy == NULL))
				die("JPEG 2000 frame of another size or layout");
			free(out);
		} else if (why[0] == 0 || out != NULL) {
			die("JPEG 2000 frame refused without a reason");
		}
	}
	for (unsigned lossless = 0; lossless < 2; lossless++) {
		im = *im0;
		out = NULL;
		why[0] = 0;
		if (render_ljpeg_decode(&im, lossless, p, n, &out, &len, why, sizeof why) == ERR_OK) {
			if (len != render_frame_bytes(&im) || im.planar != 0 || im.bits_alloc != im0->bits_alloc ||
			    (!lossless && im.lossy == NULL))
				die("lossless or 12-bit JPEG frame of another size or layout");
			free(out);
		} else if (why[0] == 0 || out != NULL) {
			die("lossless or 12-bit JPEG frame refused without a reason");
		}
	}
	im = *im0;
	out = NULL;
	why[0] = 0;
	if (render_jls_decode(&im, p, n, &out, &len, why, sizeof why) == ERR_OK) {
		if (len != render_frame_bytes(&im) || im.planar != 0 || im.bits_alloc != im0->bits_alloc)
			die("JPEG-LS frame of another size or layout");
		free(out);
	} else if (why[0] == 0 || out != NULL) {
		die("JPEG-LS frame refused without a reason");
	}
}

static unsigned us_of(const struct dcm_ds *ds, uint32_t tag)
{
	uint16_t v = 0;

	return dcm_ds_get_u16(ds, tag, &v) == ERR_OK ? v : 0;
}

/* A Part 10 file transcoded into explicit VR little endian (an
 * encapsulated one decompressed, a native one re-encoded), read back. */
static void transcoded(struct dcm_file *f)
{
	static const char explicit_le[] = "1.2.840.10008.1.2.1";
	const struct dcm_ts *ts = dict_ts(explicit_le, sizeof explicit_le - 1);
	struct dcm_transcode *z = NULL;
	struct dcm_file *g = NULL;
	struct dcm_read_opts o;
	struct dcm_errinfo ei;
	struct dcm_elem *px;
	struct wbuf w;
	struct sink k;
	struct src s;
	struct src_mem m;
	char why[256];
	uint64_t want;

	if (dcm_transcode_begin(f, ts, false, &z, why, sizeof why) != ERR_OK)
		return;
	wbuf_init(&w, 64u << 20);
	sink_wbuf(&k, &w);
	if (dcm_transcode_write(z, &k, why, sizeof why) == ERR_OK) {
		memset(&o, 0, sizeof o);
		o.no_meta = true;
		o.ts = ts;
		src_mem_init(&s, &m, w.p, w.len);
		if (dcm_file_read(&s, &o, &g, &ei) != ERR_OK)
			die("a transcoded data set does not read back");
		px = dcm_ds_find(&g->ds, 0x7FE00010);
		if (!f->ts->encapsulated) {
			const struct dcm_elem *was = dcm_ds_find(&f->ds, 0x7FE00010);
			if ((px == NULL) != (was == NULL) || (px != NULL && px->len != was->len))
				die("re-encoded Pixel Data of another length");
			dcm_file_free(g);
			goto out;
		}
		want = (uint64_t)us_of(&g->ds, 0x00280010) * us_of(&g->ds, 0x00280011) * us_of(&g->ds, 0x00280002) *
		       (us_of(&g->ds, 0x00280100) / 8);
		{
			char nf[16] = "";
			uint64_t frames = 1;
			if (dcm_ds_get_cstr(&g->ds, 0x00280008, nf, sizeof nf) == ERR_OK &&
			    (!vr_uint_parse(nf, strlen(nf), UINT32_MAX, &frames) || frames == 0))
				frames = 1;
			want *= frames;
		}
		if (px == NULL || (uint64_t)px->len != want + (want & 1))
			die("decompressed Pixel Data of another length than the frames");
		dcm_file_free(g);
	}
out:
	wbuf_fini(&w);
	dcm_transcode_free(z);
}

/* A Part 10 file: attributes, first frame. */
static void part10(const uint8_t *p, size_t n, const struct render_window *win, uint32_t vw, uint32_t vh)
{
	struct src s;
	struct src_mem m;
	struct dcm_file *f = NULL;
	struct dcm_read_opts o;
	struct dcm_errinfo ei;
	struct render_image im;
	struct dcm_frames fr;
	struct render_out out;
	char why[256];
	uint8_t *buf;
	uint64_t sz;
	enum err rc;

	memset(&o, 0, sizeof o);
	o.bulk_threshold = 64;
	src_mem_init(&s, &m, p, n);
	if (dcm_file_read(&s, &o, &f, &ei) != ERR_OK)
		return;
	why[0] = 0;
	rc = render_image_init(f, &f->ds, &im, why, sizeof why);
	if (rc != ERR_OK) {
		if ((rc != ERR_NOTFOUND && rc != ERR_UNSUPPORTED && rc != ERR_PARSE && rc != ERR_LIMIT &&
		     rc != ERR_NOMEM && rc != ERR_IO) || why[0] == 0)
			die("render_image_init failed badly");
		dcm_file_free(f);
		return;
	}
	if ((uint64_t)im.rows * im.cols > 64 * 64 || dcm_frames_init(f, &fr, why, sizeof why) != ERR_OK) {
		render_image_fini(&im);
		dcm_file_free(f);
		return;
	}
	sz = fr.n > 0 ? dcm_frame_size(&fr, 0) : 0;
	buf = sz > 0 && sz <= (1u << 20) ? malloc((size_t)sz) : NULL;
	if (buf != NULL && dcm_frame_read(&fr, 0, 0, buf, (size_t)sz) == ERR_OK) {
		transcoded(f);
		if (fr.encapsulated) {
			decoders(&im, buf, (size_t)sz);
		} else {
			memset(&out, 0, sizeof out);
			rc = render_frame(&im, buf, (size_t)sz, win, &out, why, sizeof why);
			if ((rc == ERR_OK) != (sz >= render_frame_bytes(&im)))
				die("a Part 10 frame rendered against its size");
			if (rc == ERR_OK && render_scale(&out, vw ? vw : 7, vh ? vh : 5) != ERR_OK)
				die("scale failed");
			render_out_fini(&out);
		}
	}
	free(buf);
	dcm_frames_fini(&fr);
	render_image_fini(&im);
	dcm_file_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum render_photo photos[] = { RENDER_MONO1, RENDER_MONO2, RENDER_RGB,
		                                    RENDER_YBR_FULL, RENDER_YBR_FULL_422, RENDER_PALETTE };
	static const unsigned allocs[] = { 8, 16, 32 };
	const char *w = "", *v = "", *q = "";
	size_t wl = 0, vl = 0, ql = 0;
	struct render_window win;
	bool has_win = false;
	uint32_t vw = 0, vh = 0, ow, oh;
	struct render_image im;
	struct render_out o, o1;
	uint16_t lut[3][16];
	char why[200];
	struct wbuf wb;
	uint64_t need;
	enum err rc;
	unsigned c;

	if (!line(&data, &size, &w, &wl) || !line(&data, &size, &v, &vl) || !line(&data, &size, &q, &ql)) {
		params((const char *)data, size, (const char *)data, size, (const char *)data, size, &win, &has_win, &vw,
		       &vh);
		return 0;
	}
	params(w, wl, v, vl, q, ql, &win, &has_win, &vw, &vh);
	if (size > 0 && data[0] == 'P') {
		part10(data + 1, size - 1, has_win ? &win : NULL, vw, vh);
		return 0;
	}
	if (size < 8)
		return 0;
	memset(&im, 0, sizeof im);
	im.rows = 1 + data[0] % 16;
	im.cols = 1 + data[1] % 16;
	im.bits_alloc = allocs[data[2] % 3];
	im.bits_stored = 1 + data[3] % im.bits_alloc;
	im.high_bit = im.bits_stored - 1 + data[4] % (im.bits_alloc - im.bits_stored + 1);
	im.is_signed = data[5] & 1;
	im.photo = photos[(data[5] >> 1) % 6];
	im.planar = data[6] & 1;
	im.slope = (double)((int8_t)data[7] | 1) / 4;
	im.intercept = (double)(int8_t)data[6];
	im.spp = im.photo <= RENDER_MONO2 || im.photo == RENDER_PALETTE ? 1 : 3;
	if (im.photo == RENDER_YBR_FULL_422) {
		im.bits_alloc = im.bits_stored = 8;
		im.high_bit = 7;
		im.cols += im.cols % 2;
	}
	if (im.photo == RENDER_PALETTE) {
		if (im.bits_alloc > 16)
			im.bits_alloc = 16;
		if (im.bits_stored > im.bits_alloc)
			im.bits_stored = im.bits_alloc;
		im.high_bit = im.bits_stored - 1;
		for (c = 0; c < 3; c++) {
			for (size_t i = 0; i < 16; i++)
				lut[c][i] = (uint16_t)(data[(c * 16 + i) % size] * 257u);
			im.pal[c] = (struct render_lut){ lut[c], 1 + data[4] % 16u, (int8_t)data[3], data[2] & 1 ? 16 : 8 };
		}
	}
	data += 8;
	size -= 8;
	decoders(&im, data, size);
	need = render_frame_bytes(&im);
	memset(&o, 0, sizeof o);
	rc = render_frame(&im, data, size, has_win ? &win : NULL, &o, why, sizeof why);
	if (size < need) {
		if (rc != ERR_PARSE)
			die("a short frame rendered");
		return 0;
	}
	if (rc != ERR_OK)
		die("a whole frame did not render");
	if (o.w != im.cols || o.h != im.rows || o.channels != (im.spp == 1 && im.photo != RENDER_PALETTE ? 1u : 3u))
		die("rendered size or channels differ from the image");
	if (im.photo == RENDER_MONO2) {
		im.photo = RENDER_MONO1;
		memset(&o1, 0, sizeof o1);
		if (render_frame(&im, data, size, has_win ? &win : NULL, &o1, why, sizeof why) != ERR_OK)
			die("MONOCHROME1 did not render");
		for (size_t i = 0; i < (size_t)o.w * o.h; i++)
			if (o1.px[i] != 255 - o.px[i])
				die("MONOCHROME1 is not MONOCHROME2 inverted");
		render_out_fini(&o1);
	}
	if (vw == 0) {
		vw = 1 + data[0] % 20;
		vh = 1 + (size > 1 ? data[1] : 0) % 20;
	}
	render_fit(o.w, o.h, vw, vh, &ow, &oh);
	if (render_scale(&o, vw, vh) != ERR_OK)
		die("scale failed");
	if (o.w != ow || o.h != oh || ow == 0 || oh == 0 || ow > im.cols || oh > im.rows ||
	    ((ow > vw || oh > vh) && !(ow == im.cols && oh == im.rows)))
		die("scaled to another size than render_fit's, or larger than asked");
	wbuf_init(&wb, 1 << 20);
	if (render_encode(&o, RENDER_PNG, 0, &wb, why, sizeof why) != ERR_OK)
		die("PNG encoding failed");
	wbuf_reset(&wb);
	if (render_encode(&o, RENDER_JPEG, 1 + data[0] % 100, &wb, why, sizeof why) != ERR_OK)
		die("JPEG encoding failed");
	wbuf_fini(&wb);
	render_out_fini(&o);
	return 0;
}
