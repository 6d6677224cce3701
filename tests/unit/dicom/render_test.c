/* render_test.c: dicom/render.c and render_codec.c: the window, viewport
 * and quality parsers on good and bad input; image attributes read from a
 * data set (and the images refused); the pixel pipeline against values
 * computed by hand from PS3.3 C.11.2.1.2 (signed 12-in-16-bit with
 * rescale, linear edge cases, linear-exact, sigmoid, the frame's range
 * when no window is given, MONOCHROME1), colour (interleaved and planar
 * RGB, 16-bit RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR), the viewport
 * fit and area-average downscale, RLE frames decoded by hand-made
 * segments, and JPEG / PNG encoding. Layer: tests. */
#include "test.h"
#include <math.h>
#include "dicomvault/dataset.h"
#include "dicomvault/render.h"
#include "dicomvault/vr.h"

static char why[256];

/* ---- parsers ---- */

static enum err win(const char *s, struct render_window *w)
{
	why[0] = 0;
	return render_window_parse(s, strlen(s), w, why, sizeof why);
}

TEST(window_good)
{
	struct render_window w;

	CHECK_EQ_INT(win("40,400", &w), ERR_OK);
	CHECK(w.center == 40 && w.width == 400 && w.fn == RENDER_VOI_LINEAR);
	CHECK_EQ_INT(win("-1.5e2,2,sigmoid", &w), ERR_OK);
	CHECK(w.center == -150 && w.width == 2 && w.fn == RENDER_VOI_SIGMOID);
	CHECK_EQ_INT(win(".5,0.25,linear-exact", &w), ERR_OK);
	CHECK(w.center == 0.5 && w.width == 0.25 && w.fn == RENDER_VOI_LINEAR_EXACT);
	CHECK_EQ_INT(win("+7,1,linear", &w), ERR_OK);
	CHECK(w.center == 7 && w.width == 1);
}

TEST(window_bad)
{
	static const char *const bad[] = {
		"", "40", "40,", ",400", "40,400,", "40,0", "40,0.5", "40,0.5,linear", "40,-1,sigmoid", "40,0,linear-exact",
		"a,b", "40,400,cubic", "40,400,LINEAR", "40,400,linear,x", "nan,1", "inf,1", "1e400,1", "1e13,1",
		"0x10,5", "40 ,400", " 40,400", "40,400 ", "4-0,400", "1e,5", "1.2.3,5", "+,5", ".,5", "40;400",
		"1111111111111111111111111111111111111111111111111111111111111111111,1",
	};
	struct render_window w = { 1, 2, RENDER_VOI_LINEAR };
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum err rc = win(bad[i], &w);
		if (rc != ERR_PARSE)
			fprintf(stderr, "  window \"%s\" gave %s\n", bad[i], err_str(rc));
		CHECK_EQ_INT(rc, ERR_PARSE);
		CHECK(why[0] != 0);
	}
	CHECK(w.center == 1 && w.width == 2);   /* untouched on failure */
	/* embedded NUL: the length counts */
	CHECK_EQ_INT(render_window_parse("40\0,400", 7, &w, why, sizeof why), ERR_PARSE);
}

TEST(viewport)
{
	static const char *const bad[] = {
		"", "0,10", "10,0", "8193,10", "10,8193", "10", "10,", ",10", "10,10,", "-1,10", "+1,10", "a,b", "1,2,3",
		"1 ,2", "99999999999,1", "1.5,2", "1,2,3,4,5,6,7",
	};
	uint32_t vw = 7, vh = 9;
	size_t i;

	CHECK_EQ_INT(render_viewport_parse("512,256", 7, &vw, &vh, why, sizeof why), ERR_OK);
	CHECK(vw == 512 && vh == 256);
	CHECK_EQ_INT(render_viewport_parse("8192,1", 6, &vw, &vh, why, sizeof why), ERR_OK);
	CHECK(vw == 8192 && vh == 1);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum err rc = render_viewport_parse(bad[i], strlen(bad[i]), &vw, &vh, why, sizeof why);
		if (rc != ERR_PARSE)
			fprintf(stderr, "  viewport \"%s\" gave %s\n", bad[i], err_str(rc));
		CHECK_EQ_INT(rc, ERR_PARSE);
	}
	CHECK_EQ_INT(render_viewport_parse("10,10,0,0,5,5", 13, &vw, &vh, why, sizeof why), ERR_UNSUPPORTED);
	CHECK(vw == 8192 && vh == 1);
}

TEST(quality)
{
	static const char *const bad[] = { "", "0", "101", "5a", "-5", "+5", " 5", "1e2", "00000000000001" };
	int q = 3;
	size_t i;

	CHECK_EQ_INT(render_quality_parse("1", 1, &q, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(q, 1);
	CHECK_EQ_INT(render_quality_parse("100", 3, &q, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(q, 100);
	CHECK_EQ_INT(render_quality_parse("075", 3, &q, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(q, 75);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_EQ_INT(render_quality_parse(bad[i], strlen(bad[i]), &q, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(q, 75);
}

/* ---- image attributes ---- */

static int set_u16(struct dcm_ds *ds, uint32_t tag, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	return dcm_ds_set(ds, tag, VR_US, b, 2) == ERR_OK ? 0 : -1;
}

/* A MONOCHROME2 16-bit image of rows x cols, its pixel data zero. */
static struct dcm_file *mkfile(uint16_t rows, uint16_t cols, const char *photo, uint16_t spp, uint16_t ba)
{
	struct dcm_file *f = NULL;
	uint8_t px[64] = { 0 };

	if (dcm_file_new(&f) != ERR_OK)
		return NULL;
	if (set_u16(&f->ds, 0x00280010, rows) || set_u16(&f->ds, 0x00280011, cols) || set_u16(&f->ds, 0x00280002, spp) ||
	    set_u16(&f->ds, 0x00280100, ba) || set_u16(&f->ds, 0x00280101, ba) ||
	    set_u16(&f->ds, 0x00280102, (uint16_t)(ba - 1)) ||
	    dcm_ds_set_str(&f->ds, 0x00280004, VR_CS, photo) != ERR_OK ||
	    dcm_ds_set(&f->ds, TAG_PIXEL_DATA, VR_OW, px, sizeof px) != ERR_OK) {
		dcm_file_free(f);
		return NULL;
	}
	return f;
}

TEST(image_attributes)
{
	struct dcm_file *f = mkfile(2, 3, "MONOCHROME1", 1, 16);
	struct render_image im;

	if (f == NULL) {
		CHECK(0);
		return;
	}
	CHECK(set_u16(&f->ds, 0x00280101, 12) == 0 && set_u16(&f->ds, 0x00280102, 11) == 0 &&
	      set_u16(&f->ds, TAG_PIXEL_REPR, 1) == 0);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281050, VR_DS, " 40\\80"), ERR_OK);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281051, VR_DS, "400.5 \\10"), ERR_OK);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281053, VR_DS, "2"), ERR_OK);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281052, VR_DS, "-1024"), ERR_OK);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281056, VR_CS, "SIGMOID"), ERR_OK);
	CHECK_EQ_INT(render_image_init(f, &f->ds, &im, why, sizeof why), ERR_OK);
	CHECK(im.rows == 2 && im.cols == 3 && im.bits_alloc == 16 && im.bits_stored == 12 && im.high_bit == 11);
	CHECK(im.is_signed && im.photo == RENDER_MONO1);
	CHECK(im.slope == 2 && im.intercept == -1024);
	CHECK(im.has_window && im.win.center == 40 && im.win.width == 400.5 && im.win.fn == RENDER_VOI_SIGMOID);
	CHECK_EQ_INT(render_frame_bytes(&im), 12);
	render_image_fini(&im);
	/* a width the linear function cannot take is not a window */
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281051, VR_DS, "0.5"), ERR_OK);
	CHECK_EQ_INT(dcm_ds_set_str(&f->ds, 0x00281056, VR_CS, "LINEAR"), ERR_OK);
	CHECK_EQ_INT(render_image_init(f, &f->ds, &im, why, sizeof why), ERR_OK);
	CHECK(!im.has_window);
	render_image_fini(&im);
	dcm_file_free(f);
}

static void expect_refused(struct dcm_file *f, enum err want)
{
	struct render_image im;
	enum err rc;

	if (f == NULL) {
		CHECK(0);
		return;
	}
	why[0] = 0;
	rc = render_image_init(f, &f->ds, &im, why, sizeof why);
	if (rc != want)
		fprintf(stderr, "  got %s (%s)\n", err_str(rc), why);
	CHECK_EQ_INT(rc, want);
	CHECK(why[0] != 0);
	if (rc == ERR_OK)
		render_image_fini(&im);
	dcm_file_free(f);
}

TEST(images_refused)
{
	struct dcm_file *f;

	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	if (f != NULL)
		dcm_ds_remove(&f->ds, TAG_PIXEL_DATA);
	expect_refused(f, ERR_NOTFOUND);
	expect_refused(mkfile(2, 2, "MONOCHROME2", 1, 1), ERR_UNSUPPORTED);
	expect_refused(mkfile(2, 2, "MONOCHROME2", 1, 64), ERR_UNSUPPORTED);
	expect_refused(mkfile(5000, 5000, "MONOCHROME2", 1, 16), ERR_LIMIT);
	expect_refused(mkfile(0, 5, "MONOCHROME2", 1, 16), ERR_PARSE);
	expect_refused(mkfile(2, 2, "YBR_PARTIAL_420", 3, 8), ERR_UNSUPPORTED);
	/* JPEG 2000's colour transforms, of native pixels: never decoded */
	expect_refused(mkfile(2, 2, "YBR_ICT", 3, 8), ERR_PARSE);
	expect_refused(mkfile(2, 2, "YBR_RCT", 3, 8), ERR_PARSE);
	expect_refused(mkfile(2, 2, "RGB", 1, 8), ERR_PARSE);
	expect_refused(mkfile(2, 2, "MONOCHROME2", 3, 8), ERR_PARSE);
	expect_refused(mkfile(2, 3, "YBR_FULL_422", 3, 8), ERR_UNSUPPORTED);
	expect_refused(mkfile(2, 2, "PALETTE COLOR", 1, 8), ERR_PARSE);   /* no lookup tables */
	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	if (f != NULL && set_u16(&f->ds, 0x00280101, 17) != 0)
		CHECK(0);
	expect_refused(f, ERR_PARSE);
	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	if (f != NULL && (set_u16(&f->ds, 0x00280101, 12) != 0 || set_u16(&f->ds, 0x00280102, 16) != 0))
		CHECK(0);
	expect_refused(f, ERR_PARSE);
}

/* ---- greyscale ---- */

static struct render_image grey(uint32_t cols, unsigned ba, unsigned bs, unsigned hb, bool sgn)
{
	struct render_image im;

	memset(&im, 0, sizeof im);
	im.rows = 1;
	im.cols = cols;
	im.spp = 1;
	im.bits_alloc = ba;
	im.bits_stored = bs;
	im.high_bit = hb;
	im.is_signed = sgn;
	im.photo = RENDER_MONO2;
	im.slope = 1;
	im.intercept = 0;
	return im;
}

/* Renders frame and compares with want (n bytes). */
static void expect_px(const struct render_image *im, const uint8_t *frame, size_t len, const struct render_window *w,
                      const uint8_t *want, size_t n)
{
	struct render_out o;
	size_t i;

	memset(&o, 0, sizeof o);
	CHECK_EQ_INT(render_frame(im, frame, len, w, &o, why, sizeof why), ERR_OK);
	if (o.px == NULL)
		return;
	CHECK_EQ_INT((size_t)o.w * o.h * o.channels, n);
	for (i = 0; i < n && i < (size_t)o.w * o.h * o.channels; i++) {
		if (o.px[i] != want[i])
			fprintf(stderr, "  pixel byte %zu: %u, expected %u\n", i, o.px[i], want[i]);
		CHECK_EQ_INT(o.px[i], want[i]);
	}
	render_out_fini(&o);
}

TEST(signed_12_in_16_with_rescale)
{
	/* stored 12 bits, high bit 11, signed: 0x0FFF -1, 0xF800 (upper bits
	 * are not the value) -2048, 0x07FF 2047, 0x1005 5; rescale 2x + 10:
	 * 8, -4086, 4104, 20. Window 20/41 linear: below -0.5 black, above
	 * 39.5 white, else ((x - 19.5) / 40 + 0.5) * 255: 8 -> 54.1875,
	 * 20 -> 130.6875 */
	static const uint8_t fr[] = { 0xFF, 0x0F, 0x00, 0xF8, 0xFF, 0x07, 0x05, 0x10 };
	static const uint8_t want[] = { 54, 0, 255, 131 };
	static const uint8_t want1[] = { 201, 255, 0, 124 };
	struct render_image im = grey(4, 16, 12, 11, true);
	struct render_window w = { 20, 41, RENDER_VOI_LINEAR };

	im.slope = 2;
	im.intercept = 10;
	expect_px(&im, fr, sizeof fr, &w, want, 4);
	im.photo = RENDER_MONO1;
	expect_px(&im, fr, sizeof fr, &w, want1, 4);
	/* the same window from the data set */
	im.photo = RENDER_MONO2;
	im.has_window = true;
	im.win = w;
	expect_px(&im, fr, sizeof fr, NULL, want, 4);
}

TEST(high_bit_not_at_the_top)
{
	/* 8 bits stored at bits 4..11 of 16: 0x0FF0 -> 255, 0x0010 -> 1,
	 * 0xF00F -> 0 */
	static const uint8_t fr[] = { 0xF0, 0x0F, 0x10, 0x00, 0x0F, 0xF0 };
	static const uint8_t want[] = { 255, 1, 0 };
	struct render_image im = grey(3, 16, 8, 11, false);
	struct render_window w = { 128, 256, RENDER_VOI_LINEAR };

	expect_px(&im, fr, sizeof fr, &w, want, 3);
}

TEST(window_linear_edges)
{
	/* width 1: x <= c - 0.5 black, else white; with slope 0.5 the
	 * values 99, 99.5, 100 */
	static const uint8_t fr1[] = { 198, 199, 200 };
	static const uint8_t want1[] = { 0, 0, 255 };
	/* 128/256 on 8 bits is the identity */
	static const uint8_t fr2[] = { 0, 1, 128, 255 };
	struct render_image im = grey(3, 8, 8, 7, false);
	struct render_window w1 = { 100, 1, RENDER_VOI_LINEAR }, w2 = { 128, 256, RENDER_VOI_LINEAR };

	im.slope = 0.5;
	expect_px(&im, fr1, sizeof fr1, &w1, want1, 3);
	im = grey(4, 8, 8, 7, false);
	expect_px(&im, fr2, sizeof fr2, &w2, fr2, 4);
}

TEST(window_linear_exact_and_sigmoid)
{
	/* linear-exact 50/100: x <= 0 black, x > 100 white, else
	 * ((x - 50) / 100 + 0.5) * 255: 25 -> 63.75, 100 -> 255 */
	static const uint8_t fr[] = { 0, 25, 100, 101 };
	static const uint8_t want[] = { 0, 64, 255, 255 };
	/* sigmoid 0/100: 255 / (1 + exp(-4 x / 100)): 0 -> 127.5, 25 ->
	 * 186.42, 100 -> 250.41, 101 -> 250.59 */
	static const uint8_t want_s[] = { 128, 186, 250, 251 };
	struct render_image im = grey(4, 8, 8, 7, false);
	struct render_window le = { 50, 100, RENDER_VOI_LINEAR_EXACT }, sg = { 0, 100, RENDER_VOI_SIGMOID };

	expect_px(&im, fr, sizeof fr, &le, want, 4);
	CHECK(fabs(255 / (1 + exp(-1.0)) - 186.42) < 0.01);
	expect_px(&im, fr, sizeof fr, &sg, want_s, 4);
}

TEST(default_window_is_the_frame_range)
{
	/* 10..30: center 20, width 20, linear-exact: 0, 127.5, 255 */
	static const uint8_t fr[] = { 10, 20, 30 };
	static const uint8_t want[] = { 0, 128, 255 };
	static const uint8_t flat[] = { 7, 7 };
	static const uint8_t zero[] = { 0, 0 };
	/* signed 16-bit, slope -1: stored -100, 0, 100 -> 100, 0, -100;
	 * range -100..100: 255, 127.5, 0 */
	static const uint8_t fr16[] = { 0x9C, 0xFF, 0x00, 0x00, 0x64, 0x00 };
	static const uint8_t want16[] = { 255, 128, 0 };
	struct render_image im = grey(3, 8, 8, 7, false);

	expect_px(&im, fr, sizeof fr, NULL, want, 3);
	im = grey(2, 8, 8, 7, false);
	expect_px(&im, flat, sizeof flat, NULL, zero, 2);
	im = grey(3, 16, 16, 15, true);
	im.slope = -1;
	expect_px(&im, fr16, sizeof fr16, NULL, want16, 3);
}

TEST(short_frame_refused)
{
	static const uint8_t fr[] = { 1, 2, 3 };
	struct render_image im = grey(2, 16, 16, 15, false);
	struct render_out o;

	memset(&o, 0, sizeof o);
	CHECK_EQ_INT(render_frame(&im, fr, sizeof fr, NULL, &o, why, sizeof why), ERR_PARSE);
	CHECK(o.px == NULL);
}

/* ---- colour ---- */

static struct render_image colour(uint32_t cols, enum render_photo ph, unsigned ba, unsigned planar)
{
	struct render_image im = grey(cols, ba, ba, ba - 1, false);

	im.spp = 3;
	im.photo = ph;
	im.planar = planar;
	return im;
}

TEST(rgb_interleaved_and_planar)
{
	static const uint8_t inter[] = { 10, 30, 50, 20, 40, 60 };
	static const uint8_t planar[] = { 10, 20, 30, 40, 50, 60 };
	/* 16 bits: 65535 -> 255, 0 -> 0, 32768 -> 127.5 + 0.5 */
	static const uint8_t fr16[] = { 0xFF, 0xFF, 0, 0, 0x00, 0x80 };
	static const uint8_t want16[] = { 255, 0, 128 };
	struct render_image im = colour(2, RENDER_RGB, 8, 0);
	struct render_window w = { 0, 1, RENDER_VOI_LINEAR };   /* ignored for colour */

	expect_px(&im, inter, sizeof inter, &w, inter, 6);
	im.planar = 1;
	expect_px(&im, planar, sizeof planar, NULL, inter, 6);
	im = colour(1, RENDER_RGB, 16, 0);
	expect_px(&im, fr16, sizeof fr16, NULL, want16, 3);
}

TEST(ybr_full_and_422)
{
	/* grey stays grey; Y 0, Cr 255: R = 1.402 * 127 = 178.05, G below 0 */
	static const uint8_t fr[] = { 128, 128, 128, 0, 128, 255 };
	static const uint8_t want[] = { 128, 128, 128, 178, 0, 0 };
	/* 4:2:2: Y0 Y1 Cb Cr */
	static const uint8_t fr422[] = { 100, 200, 128, 128 };
	static const uint8_t want422[] = { 100, 100, 100, 200, 200, 200 };
	struct render_image im = colour(2, RENDER_YBR_FULL, 8, 0);

	expect_px(&im, fr, sizeof fr, NULL, want, 6);
	im = colour(2, RENDER_YBR_FULL_422, 8, 0);
	CHECK_EQ_INT(render_frame_bytes(&im), 4);
	expect_px(&im, fr422, sizeof fr422, NULL, want422, 6);
}

TEST(palette_colour)
{
	/* 4 entries from 10, 16-bit: values below clamp to the first entry,
	 * above to the last; each output is entry >> 8 */
	static uint16_t r[] = { 0x0000, 0x1000, 0xFF00, 0xFFFF }, g[] = { 0x0100, 0x0200, 0x0300, 0x0400 },
	                b[] = { 0xFFFF, 0x8000, 0x4000, 0x0000 };
	static const uint8_t fr[] = { 9, 10, 12, 200 };
	static const uint8_t want[] = { 0, 1, 255, 0, 1, 255, 255, 3, 64, 255, 4, 0 };
	struct render_image im = grey(4, 8, 8, 7, false);

	im.photo = RENDER_PALETTE;
	im.pal[0] = (struct render_lut){ r, 4, 10, 16 };
	im.pal[1] = (struct render_lut){ g, 4, 10, 16 };
	im.pal[2] = (struct render_lut){ b, 4, 10, 16 };
	expect_px(&im, fr, sizeof fr, NULL, want, 12);
}

TEST(voi_lut)
{
	/* 5 entries from -2, 10 bits: below the range the first entry, above
	 * it the last; entry * 255 / 1023 rounded half up; a rescale of -3
	 * first; MONOCHROME1 inverts */
	static uint16_t lut[] = { 0, 100, 512, 1000, 1023 };
	static const uint8_t fr[] = { 0, 1, 2, 3, 4, 5, 6, 9 };   /* modality values -3 .. 6 */
	static const uint8_t want[] = { 0, 0, 25, 128, 249, 255, 255, 255 };
	struct render_image im = grey(8, 8, 8, 7, false);
	uint8_t inv[8];
	size_t i;

	im.intercept = -3;
	im.voi = (struct render_lut){ lut, 5, -2, 10 };
	expect_px(&im, fr, sizeof fr, NULL, want, 8);
	im.photo = RENDER_MONO1;
	for (i = 0; i < 8; i++)
		inv[i] = (uint8_t)(255 - want[i]);
	expect_px(&im, fr, sizeof fr, NULL, inv, 8);
	/* a window given in the request wins over the LUT */
	{
		struct render_window w = { 2, 2, RENDER_VOI_LINEAR_EXACT };
		static const uint8_t want_w[] = { 255, 255, 255, 255, 255, 127, 0, 0 };   /* inverted */
		expect_px(&im, fr, sizeof fr, &w, want_w, 8);
	}
}

TEST(modality_lut)
{
	/* 4 entries from 1, 16 bits, not monotonic: stored 0 takes the first
	 * entry, 9 the last; the rescale is ignored; without a window the
	 * range of the table's outputs in the frame (100 .. 400) is used */
	static uint16_t mlut[] = { 100, 400, 300, 200 };
	static const uint8_t fr[] = { 0, 1, 2, 3, 4, 9 };          /* modality 100 100 400 300 200 200 */
	static const uint8_t want[] = { 0, 0, 255, 170, 85, 85 };  /* linear-exact over 100..400 */
	static const uint8_t want_w[] = { 0, 0, 255, 255, 128, 128 };
	struct render_window w = { 200, 200, RENDER_VOI_LINEAR_EXACT };   /* 100 .. 300 */
	struct render_image im = grey(6, 8, 8, 7, false);

	im.slope = 7;
	im.intercept = -1000;
	im.mlut = (struct render_lut){ mlut, 4, 1, 16 };
	expect_px(&im, fr, sizeof fr, NULL, want, 6);
	expect_px(&im, fr, sizeof fr, &w, want_w, 6);
}

/* A VOI LUT Sequence item with descriptor (VR vr) n, first, bits and
 * data of nd 16-bit words. */
static int add_voi(struct dcm_file *f, uint16_t vr, uint16_t n, uint16_t first, uint16_t bits, const uint16_t *d,
                   size_t nd)
{
	struct dcm_elem *sq = NULL;
	struct dcm_ds *it = NULL;
	uint8_t desc[6] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)first, (uint8_t)(first >> 8), (uint8_t)bits,
		            (uint8_t)(bits >> 8) };
	uint8_t data[64];
	size_t i;

	for (i = 0; i < nd && i < 32; i++) {
		data[2 * i] = (uint8_t)d[i];
		data[2 * i + 1] = (uint8_t)(d[i] >> 8);
	}
	if (dcm_ds_set_seq(&f->ds, 0x00283010, &sq) != ERR_OK || dcm_seq_add_item(&f->ds, sq, &it) != ERR_OK ||
	    dcm_ds_set(it, 0x00283002, vr, desc, sizeof desc) != ERR_OK ||
	    dcm_ds_set(it, 0x00283006, VR_OW, data, 2 * nd) != ERR_OK)
		return -1;
	return 0;
}

TEST(voi_lut_from_the_data_set)
{
	static const uint16_t d[] = { 10, 20, 30, 40 };
	struct dcm_file *f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	struct render_image im;

	/* SS descriptor: first value mapped -1 */
	CHECK(f != NULL && add_voi(f, VR_SS, 4, 0xFFFF, 12, d, 4) == 0);
	CHECK_EQ_INT(render_image_init(f, &f->ds, &im, why, sizeof why), ERR_OK);
	CHECK(im.voi.v != NULL);
	CHECK_EQ_INT((int)im.voi.n, 4);
	CHECK_EQ_INT(im.voi.first, -1);
	CHECK_EQ_INT((int)im.voi.bits, 12);
	CHECK(im.voi.v != NULL && im.voi.v[3] == 40);
	render_image_fini(&im);
	dcm_file_free(f);
	/* a window in the data set is used instead: the LUT is not read */
	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	CHECK(f != NULL && add_voi(f, VR_US, 4, 0, 12, d, 4) == 0 &&
	      dcm_ds_set_str(&f->ds, 0x00281050, VR_DS, "40") == ERR_OK &&
	      dcm_ds_set_str(&f->ds, 0x00281051, VR_DS, "400") == ERR_OK);
	CHECK_EQ_INT(render_image_init(f, &f->ds, &im, why, sizeof why), ERR_OK);
	CHECK(im.voi.v == NULL && im.has_window);
	render_image_fini(&im);
	dcm_file_free(f);
	/* data that does not fit the descriptor; entries of 17 bits */
	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	CHECK(f != NULL && add_voi(f, VR_US, 5, 0, 12, d, 4) == 0);
	expect_refused(f, ERR_PARSE);
	f = mkfile(2, 2, "MONOCHROME2", 1, 16);
	CHECK(f != NULL && add_voi(f, VR_US, 4, 0, 17, d, 4) == 0);
	expect_refused(f, ERR_PARSE);
}

/* ---- viewport ---- */

TEST(fit)
{
	uint32_t w, h;

	render_fit(512, 256, 128, 128, &w, &h);
	CHECK(w == 128 && h == 64);
	render_fit(100, 300, 50, 50, &w, &h);
	CHECK(w == 17 && h == 50);
	render_fit(10, 10, 100, 100, &w, &h);   /* never upscaled */
	CHECK(w == 10 && h == 10);
	render_fit(1, 1000, 10, 10, &w, &h);
	CHECK(w == 1 && h == 10);
	render_fit(3, 2, 2, 2, &w, &h);
	CHECK(w == 2 && h == 1);
	render_fit(640, 480, 640, 100, &w, &h);
	CHECK(w == 133 && h == 100);
}

TEST(area_average)
{
	uint8_t px[16];
	struct render_out o;
	size_t i;

	for (i = 0; i < 16; i++)
		px[i] = (uint8_t)i;
	o.px = malloc(16);
	if (o.px == NULL) {
		CHECK(0);
		return;
	}
	memcpy(o.px, px, 16);
	o.w = o.h = 4;
	o.channels = 1;
	CHECK_EQ_INT(render_scale(&o, 2, 2), ERR_OK);
	/* blocks 0 1 4 5 (2.5 -> 3), 2 3 6 7 (4.5 -> 5), 8 9 12 13 (10.5),
	 * 10 11 14 15 (12.5) */
	CHECK(o.w == 2 && o.h == 2);
	CHECK(o.px[0] == 3 && o.px[1] == 5 && o.px[2] == 11 && o.px[3] == 13);
	/* 2x2 into 10x10: unchanged */
	CHECK_EQ_INT(render_scale(&o, 10, 10), ERR_OK);
	CHECK(o.w == 2 && o.h == 2 && o.px[3] == 13);
	render_out_fini(&o);
	/* 3x1 RGB into 2 wide: columns [0,1) and [1,3) */
	o.px = malloc(9);
	if (o.px == NULL) {
		CHECK(0);
		return;
	}
	memcpy(o.px, (const uint8_t[]){ 10, 0, 255, 20, 100, 0, 40, 201, 0 }, 9);
	o.w = 3;
	o.h = 1;
	o.channels = 3;
	CHECK_EQ_INT(render_scale(&o, 2, 5), ERR_OK);
	CHECK(o.w == 2 && o.h == 1);
	CHECK(o.px[0] == 10 && o.px[1] == 0 && o.px[2] == 255 && o.px[3] == 30 && o.px[4] == 151 && o.px[5] == 0);
	render_out_fini(&o);
}

/* ---- codecs ---- */

TEST(rle_decode)
{
	/* 8-bit grey, 4 pixels: literal run of 2 (a, b), replicate c twice */
	uint8_t f8[64 + 5] = { 1, 0, 0, 0, 64 };
	/* 16-bit grey, 2 pixels: segment 1 the high bytes (0x12 twice),
	 * segment 2 the low (literal 0x34 0x56) */
	uint8_t f16[64 + 6] = { 2, 0, 0, 0, 64, 0, 0, 0, 66 };
	struct render_image im = grey(4, 8, 8, 7, false);
	uint8_t *out = NULL;
	size_t n = 0;

	memcpy(f8 + 64, (const uint8_t[]){ 0x01, 7, 9, 0xFF, 5 }, 5);
	CHECK_EQ_INT(render_rle_decode(&im, f8, sizeof f8, &out, &n, why, sizeof why), ERR_OK);
	CHECK(n == 4 && out != NULL && out[0] == 7 && out[1] == 9 && out[2] == 5 && out[3] == 5);
	free(out);
	out = NULL;
	/* a segment that does not fill the frame */
	CHECK_EQ_INT(render_rle_decode(&im, f8, sizeof f8 - 2, &out, &n, why, sizeof why), ERR_PARSE);
	CHECK(out == NULL);
	/* a run past the end of the frame */
	f8[64 + 3] = 0xFD;
	CHECK_EQ_INT(render_rle_decode(&im, f8, sizeof f8, &out, &n, why, sizeof why), ERR_PARSE);
	im = grey(2, 16, 16, 15, false);
	memcpy(f16 + 64, (const uint8_t[]){ 0xFF, 0x12, 0x01, 0x34, 0x56 }, 5);
	CHECK_EQ_INT(render_rle_decode(&im, f16, 69, &out, &n, why, sizeof why), ERR_OK);
	CHECK(n == 4 && out != NULL && out[0] == 0x34 && out[1] == 0x12 && out[2] == 0x56 && out[3] == 0x12);
	free(out);
	out = NULL;
	/* wrong number of segments, offsets out of order or range */
	CHECK_EQ_INT(render_rle_decode(&im, f8, sizeof f8, &out, &n, why, sizeof why), ERR_PARSE);
	f16[8] = 64;
	CHECK_EQ_INT(render_rle_decode(&im, f16, 69, &out, &n, why, sizeof why), ERR_PARSE);
	f16[8] = 200;
	CHECK_EQ_INT(render_rle_decode(&im, f16, 69, &out, &n, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(render_rle_decode(&im, f16, 10, &out, &n, why, sizeof why), ERR_PARSE);
	CHECK(out == NULL);
}

TEST(png_and_jpeg)
{
	struct render_out o;
	struct wbuf w;
	struct render_image im;
	uint8_t *dec = NULL;
	size_t n = 0, i;
	int far = 0;

	o.w = 16;
	o.h = 8;
	o.channels = 1;
	o.px = malloc(128);
	if (o.px == NULL) {
		CHECK(0);
		return;
	}
	memset(o.px, 100, 128);
	wbuf_init(&w, 1 << 20);
	CHECK_EQ_INT(render_encode(&o, RENDER_PNG, 0, &w, why, sizeof why), ERR_OK);
	/* signature, IHDR: width 16, height 8, depth 8, colour type 0 */
	CHECK(w.len > 33 && memcmp(w.p, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(w.p + 12, "IHDR", 4) == 0);
	CHECK(w.len > 33 && w.p[19] == 16 && w.p[23] == 8 && w.p[24] == 8 && w.p[25] == 0);
	wbuf_reset(&w);
	CHECK_EQ_INT(render_encode(&o, RENDER_JPEG, 95, &w, why, sizeof why), ERR_OK);
	CHECK(w.len > 4 && w.p[0] == 0xFF && w.p[1] == 0xD8 && w.p[w.len - 2] == 0xFF && w.p[w.len - 1] == 0xD9);
	/* decoded back: the same size, the grey within a step or two */
	im = grey(16, 16, 16, 15, false);
	im.rows = 8;
	im.spp = 1;
	CHECK_EQ_INT(render_jpeg_decode(&im, w.p, w.len, &dec, &n, why, sizeof why), ERR_OK);
	CHECK(n == 128 && dec != NULL && im.bits_alloc == 8);
	for (i = 0; dec != NULL && i < n; i++)
		if (dec[i] < 98 || dec[i] > 102)
			far++;
	CHECK_EQ_INT(far, 0);
	free(dec);
	dec = NULL;
	/* another size than the data set says, garbage, a truncated frame */
	im = grey(15, 8, 8, 7, false);
	im.rows = 8;
	CHECK_EQ_INT(render_jpeg_decode(&im, w.p, w.len, &dec, &n, why, sizeof why), ERR_PARSE);
	im.cols = 16;
	CHECK_EQ_INT(render_jpeg_decode(&im, (const uint8_t *)"\xFF\xD8garbage", 9, &dec, &n, why, sizeof why),
	             ERR_PARSE);
	CHECK(dec == NULL);
	/* a cap too small for the encoding fails cleanly */
	wbuf_fini(&w);
	wbuf_init(&w, 20);
	CHECK(render_encode(&o, RENDER_PNG, 0, &w, why, sizeof why) != ERR_OK);
	wbuf_fini(&w);
	render_out_fini(&o);
}

int main(void)
{
	RUN(window_good);
	RUN(window_bad);
	RUN(viewport);
	RUN(quality);
	RUN(image_attributes);
	RUN(images_refused);
	RUN(signed_12_in_16_with_rescale);
	RUN(high_bit_not_at_the_top);
	RUN(window_linear_edges);
	RUN(window_linear_exact_and_sigmoid);
	RUN(default_window_is_the_frame_range);
	RUN(short_frame_refused);
	RUN(rgb_interleaved_and_planar);
	RUN(ybr_full_and_422);
	RUN(palette_colour);
	RUN(voi_lut);
	RUN(modality_lut);
	RUN(voi_lut_from_the_data_set);
	RUN(fit);
	RUN(area_average);
	RUN(rle_decode);
	RUN(png_and_jpeg);
	return TEST_DONE();
}
