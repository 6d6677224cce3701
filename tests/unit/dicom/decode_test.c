/* decode_test.c: the JPEG 2000 (render_j2k.c) and JPEG-LS (render_jls.c)
 * decoders, and decompression through them (transcode.c), on pydicom's
 * test files. MR_small_jp2klossless and MR_small_jpeg_ls_lossless decode
 * to MR_small's pixels byte for byte (the same signed 16-bit image stored
 * three ways), alone and transcoded; a YBR_RCT image becomes RGB,
 * interleaved, lossless; an unsigned codestream of a signed image is read
 * as the bit patterns of its values; a lossy JPEG 2000 frame sets the
 * lossy marks and adds its method to those the data set has. Hostile
 * frames: cut at every length, bytes overwritten everywhere, a JP2 file
 * without its codestream, and headers that lie about the size, the
 * components, the precision or the tiles give an error with a reason and
 * never a crash or a leak (ASan). Layer: tests. */
#include <time.h>
#include "pixels.h"
#include "dicomvault/frame.h"
#include "dicomvault/rd.h"
#include "dicomvault/render.h"
#include "dicomvault/vr.h"

/* A file, its image and its first frame's compressed bytes. */
struct img {
	struct file file;
	struct render_image im;
	bool im_ok;
	uint8_t *frame;
	size_t flen;
	enum render_codec codec;
};

static bool img_open(struct img *x, const char *name)
{
	struct dcm_frames fr;
	char why[200];
	bool ok = false;

	memset(x, 0, sizeof *x);
	if (!open_file(&x->file, name))
		return false;
	x->codec = render_codec_of(x->file.f->ts_uid);
	if (render_image_init(x->file.f, &x->file.f->ds, &x->im, why, sizeof why) != ERR_OK)
		return false;
	x->im_ok = true;
	if (dcm_frames_init(x->file.f, &fr, why, sizeof why) != ERR_OK)
		return false;
	if (fr.encapsulated && fr.n > 0) {
		x->flen = (size_t)dcm_frame_size(&fr, 0);
		x->frame = malloc(x->flen ? x->flen : 1);
		ok = x->frame != NULL && dcm_frame_read(&fr, 0, 0, x->frame, x->flen) == ERR_OK;
	}
	dcm_frames_fini(&fr);
	return ok;
}

static void img_close(struct img *x)
{
	if (x->im_ok)
		render_image_fini(&x->im);
	free(x->frame);
	close_file(&x->file);
}

/* The native pixels of a file (malloc'd), *n bytes. */
static uint8_t *native_pixels(const char *name, size_t *n)
{
	struct file x;
	const struct dcm_elem *e;
	uint8_t *px = NULL;

	if (open_file(&x, name) && (e = dcm_ds_find(&x.f->ds, 0x7FE00010)) != NULL && (px = malloc(e->len)) != NULL) {
		if (dcm_elem_read_at(x.f, e, 0, px, e->len) == ERR_OK) {
			*n = e->len;
		} else {
			free(px);
			px = NULL;
		}
	}
	close_file(&x);
	return px;
}

/* The frame src (n bytes) of x decoded with x's codec (a copy of x->im,
 * returned in *dec when dec is given): ERR_*, checked to come with a
 * reason on failure and to leave *out untouched. */
static enum err decode(const struct img *x, const uint8_t *src, size_t n, const struct render_image *im,
                       uint8_t **out, size_t *outlen, struct render_image *dec)
{
	struct render_image d = *(im != NULL ? im : &x->im);
	char why[256] = "";
	uint8_t *o = NULL;
	size_t ol = 0;
	enum err rc = render_decode(x->codec, &d, src, n, &o, &ol, why, sizeof why);

	if (rc != ERR_OK) {
		CHECK(why[0] != 0 && o == NULL);
		if (getenv("DECODE_TEST_VERBOSE") != NULL)
			fprintf(stderr, "  %s\n", why);
	}
	if (out != NULL) {
		*out = o;
		*outlen = ol;
	} else {
		free(o);
	}
	if (dec != NULL)
		*dec = d;
	return rc;
}

/* f decompressed into explicit VR little endian and read back (values
 * loaded): NULL on failure. w is the caller's to free after the file. */
static struct dcm_file *transcoded(struct dcm_file *f, struct wbuf *w, struct src *s, struct src_mem *m)
{
	wbuf_init(w, 64 << 20);
	return decompress(f, EXPLICIT, w) == ERR_OK ? read_back(w, EXPLICIT, s, m) : NULL;
}

/* ---- lossless: MR_small's pixels ---- */

static void mr_small_as(const char *name, enum render_codec codec)
{
	struct img x;
	uint8_t *want = NULL, *got = NULL;
	size_t wn = 0, gn = 0;
	struct render_image dec;

	CHECK(img_open(&x, name));
	want = native_pixels(PYD "MR_small.dcm", &wn);
	CHECK(want != NULL && wn == 64 * 64 * 2);
	CHECK_EQ_INT(x.codec, codec);
	if (x.frame != NULL && want != NULL) {
		CHECK(x.im.is_signed);
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, &dec), ERR_OK);
		CHECK(got != NULL && gn == wn && memcmp(got, want, wn) == 0);
		CHECK(dec.lossy == NULL && dec.photo == RENDER_MONO2 && dec.bits_alloc == 16 && dec.bits_stored == 16);
		free(got);
		/* the same through dcm_frame_decompress (WADO-RS frames) */
		{
			struct dcm_frames fr;
			char why[200] = "";
			got = NULL;
			CHECK(dcm_frames_init(x.file.f, &fr, why, sizeof why) == ERR_OK);
			CHECK(dcm_frame_decompress(&fr, &x.im, x.file.f->ts_uid, 0, &got, &gn, why, sizeof why) == ERR_OK);
			CHECK(got != NULL && gn == wn && memcmp(got, want, wn) == 0);
			free(got);
			dcm_frames_fini(&fr);
		}
		/* and transcoded: MR_small's data set, no lossy marks */
		{
			struct wbuf w;
			struct src s;
			struct src_mem m;
			struct dcm_file *g = transcoded(x.file.f, &w, &s, &m);
			CHECK(g != NULL);
			if (g != NULL) {
				CHECK(pixels_are(g, want, wn));
				CHECK(str_is(&g->ds, 0x00280004, "MONOCHROME2"));
				CHECK_EQ_INT(us_of(&g->ds, 0x00280103), 1);
				CHECK_EQ_INT(us_of(&g->ds, 0x00280100), 16);
				CHECK(dcm_ds_find(&g->ds, 0x00282110) == NULL && dcm_ds_find(&g->ds, 0x00282114) == NULL);
				dcm_file_free(g);
			}
			wbuf_fini(&w);
		}
	}
	free(want);
	img_close(&x);
}

TEST(j2k_lossless_is_the_native_image)
{
	mr_small_as(PYD "MR_small_jp2klossless.dcm", RENDER_CODEC_J2K);
}

TEST(jls_lossless_is_the_native_image)
{
	mr_small_as(PYD "MR_small_jpeg_ls_lossless.dcm", RENDER_CODEC_JLS);
}

/* The same codestream in a JP2 file (signature, file type, codestream
 * boxes) decodes the same; one without a codestream box does not. */
TEST(j2k_in_a_jp2_file)
{
	static const uint8_t head[] = { 0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A,
		                        0, 0, 0, 20, 'f', 't', 'y', 'p', 'j', 'p', '2', ' ', 0, 0, 0, 0, 'j', 'p', '2', ' ' };
	struct img x;
	uint8_t *jp2 = NULL, *a = NULL, *b = NULL;
	size_t an = 0, bn = 0, n;

	CHECK(img_open(&x, PYD "MR_small_jp2klossless.dcm"));
	if (x.frame == NULL)
		goto out;
	n = sizeof head + 8 + x.flen;
	jp2 = malloc(n);
	CHECK(jp2 != NULL);
	if (jp2 == NULL)
		goto out;
	memcpy(jp2, head, sizeof head);
	store_u32be(jp2 + sizeof head, (uint32_t)(8 + x.flen));
	memcpy(jp2 + sizeof head + 4, "jp2c", 4);
	memcpy(jp2 + sizeof head + 8, x.frame, x.flen);
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &a, &an, NULL), ERR_OK);
	CHECK_EQ_INT(decode(&x, jp2, n, NULL, &b, &bn, NULL), ERR_OK);
	CHECK(a != NULL && b != NULL && an == bn && memcmp(a, b, an) == 0);
	/* the codestream box's length longer than the file; no such box */
	store_u32be(jp2 + sizeof head, (uint32_t)(9 + x.flen));
	CHECK_EQ_INT(decode(&x, jp2, n, NULL, NULL, NULL, NULL), ERR_PARSE);
	CHECK_EQ_INT(decode(&x, jp2, sizeof head, NULL, NULL, NULL, NULL), ERR_PARSE);
	CHECK_EQ_INT(decode(&x, jp2, 12, NULL, NULL, NULL, NULL), ERR_PARSE);
out:
	free(a);
	free(b);
	free(jp2);
	img_close(&x);
}

/* YBR_RCT (the codestream's reversible colour transform), 8 bits: RGB,
 * interleaved, lossless; transcoded, the data set says so. */
TEST(j2k_ybr_rct_becomes_rgb)
{
	struct img x;
	struct render_image dec;
	uint8_t *got = NULL;
	size_t gn = 0;

	CHECK(img_open(&x, PYD "GDCMJ2K_TextGBR.dcm"));
	if (x.frame == NULL)
		goto out;
	CHECK(x.im.photo == RENDER_YBR_RCT);
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, &dec), ERR_OK);
	CHECK(gn == 400u * 400 * 3 && dec.photo == RENDER_RGB && dec.planar == 0 && dec.lossy == NULL);
	/* it renders: a colour frame of the image's size */
	if (got != NULL) {
		struct render_out o;
		char why[200];
		memset(&o, 0, sizeof o);
		CHECK(render_frame(&dec, got, gn, NULL, &o, why, sizeof why) == ERR_OK && o.channels == 3 && o.w == 400);
		render_out_fini(&o);
	}
	{
		struct wbuf w;
		struct src s;
		struct src_mem m;
		struct dcm_file *g = transcoded(x.file.f, &w, &s, &m);
		CHECK(g != NULL);
		if (g != NULL) {
			CHECK(got != NULL && pixels_are(g, got, gn));
			CHECK(str_is(&g->ds, 0x00280004, "RGB"));
			CHECK_EQ_INT(us_of(&g->ds, 0x00280006), 0);
			CHECK(dcm_ds_find(&g->ds, 0x00282110) == NULL);
			dcm_file_free(g);
		}
		wbuf_fini(&w);
	}
	/* native pixels cannot be YBR_RCT */
	{
		struct render_image im;
		char why[200] = "";
		const struct dcm_ts *was = x.file.f->ts;
		x.file.f->ts = dict_ts(EXPLICIT, strlen(EXPLICIT));
		CHECK(render_image_init(x.file.f, &x.file.f->ds, &im, why, sizeof why) == ERR_PARSE && why[0] != 0);
		x.file.f->ts = was;
	}
	/* nor JPEG-LS or RLE frames */
	x.codec = RENDER_CODEC_JLS;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, NULL, NULL, NULL), ERR_PARSE);
	x.codec = RENDER_CODEC_RLE;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, NULL, NULL, NULL), ERR_PARSE);
out:
	free(got);
	img_close(&x);
}

/* J2K_pixelrep_mismatch: a signed image (13 bits stored) whose
 * codestream is unsigned: its samples are bit patterns, sign-extended,
 * all within 13-bit two's complement, some negative. */
TEST(j2k_unsigned_codestream_of_signed_image)
{
	struct img x;
	uint8_t *got = NULL;
	size_t gn = 0, i, neg = 0;
	bool in_range = true;

	CHECK(img_open(&x, PYD "J2K_pixelrep_mismatch.dcm"));
	if (x.frame == NULL)
		goto out;
	CHECK(x.im.is_signed && x.im.bits_stored == 13);
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, NULL), ERR_OK);
	CHECK(gn == 512u * 512 * 2);
	for (i = 0; got != NULL && i < gn / 2; i++) {
		int16_t v = (int16_t)load_u16le(got + 2 * i);
		in_range &= v >= -4096 && v < 4096;
		neg += v < 0;
	}
	CHECK(in_range && neg > 0);
out:
	free(got);
	img_close(&x);
}

/* Lossy JPEG 2000 (.91): the lossy marks set, the method added to what
 * the data set has, never twice. */
TEST(j2k_lossy_marks)
{
	static const char *const names[] = { PYD "JPEG2000.dcm", PYD "693_J2KI.dcm" };
	unsigned t;

	for (t = 0; t < 2; t++) {
		struct img x;
		struct render_image dec;
		CHECK(img_open(&x, names[t]));
		if (x.frame == NULL) {
			img_close(&x);
			continue;
		}
		CHECK_EQ_INT(x.codec, RENDER_CODEC_J2K_LOSSY);
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, NULL, NULL, &dec), ERR_OK);
		CHECK_EQ_STR(dec.lossy, "ISO_15444_1");
		/* the reversible codestream of 693_J2KI is lossless but for the
		 * transfer syntax; JPEG2000's is the irreversible wavelet:
		 * lossy even as .90 */
		if (t == 0) {
			x.codec = RENDER_CODEC_J2K;
			CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, NULL, NULL, &dec), ERR_OK);
			CHECK_EQ_STR(dec.lossy, "ISO_15444_1");
		}
		CHECK(dcm_ds_set_str(&x.file.f->ds, 0x00282110, VR_CS, "00") == ERR_OK);
		CHECK(dcm_ds_set_str(&x.file.f->ds, 0x00282114, VR_CS, t == 0 ? "ISO_10918_1" : "ISO_15444_1") == ERR_OK);
		/* the ratios go with the methods: one more with the method added */
		CHECK(dcm_ds_set_str(&x.file.f->ds, 0x00282112, VR_DS, "5") == ERR_OK);
		{
			struct wbuf w;
			struct src s;
			struct src_mem m;
			struct dcm_file *g = transcoded(x.file.f, &w, &s, &m);
			char want[64];
			snprintf(want, sizeof want, "5\\%.2f", (double)render_frame_bytes(&x.im) / (double)x.flen);
			CHECK(g != NULL);
			if (g != NULL) {
				CHECK(str_is(&g->ds, 0x00282110, "01"));
				CHECK(str_is(&g->ds, 0x00282114, t == 0 ? "ISO_10918_1\\ISO_15444_1" : "ISO_15444_1"));
				CHECK(str_is(&g->ds, 0x00282112, t == 0 ? want : "5"));
				dcm_file_free(g);
			}
			wbuf_fini(&w);
		}
		/* ratios that do not go with the methods are kept as they are;
		 * methods too long to be read are never dropped: refused */
		if (t == 0) {
			struct wbuf w;
			struct src s;
			struct src_mem m;
			struct dcm_file *g;
			char many[1100] = "";
			size_t k;
			CHECK(dcm_ds_set_str(&x.file.f->ds, 0x00282112, VR_DS, "5\\6") == ERR_OK);
			g = transcoded(x.file.f, &w, &s, &m);
			CHECK(g != NULL && str_is(&g->ds, 0x00282112, "5\\6"));
			dcm_file_free(g);
			wbuf_fini(&w);
			for (k = 0; k + 13 < sizeof many; k += 12)
				memcpy(many + k, "ISO_10918_1\\", 12);
			many[k] = 'X';
			CHECK(dcm_ds_set_str(&x.file.f->ds, 0x00282114, VR_CS, many) == ERR_OK);
			g = transcoded(x.file.f, &w, &s, &m);
			CHECK(g == NULL);
			dcm_file_free(g);
			wbuf_fini(&w);
		}
		img_close(&x);
	}
}

/* Samples per Pixel and Photometric Interpretation absent (the decoders
 * take 1 and MONOCHROME2): the decompressed data set says them, so that
 * its Pixel Data is described whole (render_fuzz found one without). */
TEST(absent_pixel_description_written)
{
	struct img x;

	CHECK(img_open(&x, PYD "MR_small_jpeg_ls_lossless.dcm"));
	if (x.file.f != NULL) {
		struct wbuf w;
		struct src s;
		struct src_mem m;
		struct dcm_file *g;
		dcm_ds_remove(&x.file.f->ds, 0x00280002);
		dcm_ds_remove(&x.file.f->ds, 0x00280004);
		g = transcoded(x.file.f, &w, &s, &m);
		CHECK(g != NULL);
		if (g != NULL) {
			CHECK_EQ_INT(us_of(&g->ds, 0x00280002), 1);
			CHECK(str_is(&g->ds, 0x00280004, "MONOCHROME2"));
			dcm_file_free(g);
		}
		wbuf_fini(&w);
	}
	img_close(&x);
}

/* ---- hostile frames ---- */

/* Every cut of the frame (every length below step, then every step-th)
 * fails with a reason, or decodes to the full frame (a cut in padding
 * after the end marker, or of the marker: at most max_ok cuts). */
static void cuts_ok(const char *name, size_t step, size_t max_ok)
{
	struct img x;
	size_t k, ok = 0, tried = 0;

	CHECK(img_open(&x, name));
	for (k = 0; x.frame != NULL && k < x.flen; k += k < step ? 1 : step) {
		uint8_t *cut = malloc(k ? k : 1), *got = NULL;
		size_t gn = 0;
		enum err rc;
		if (cut == NULL)
			break;
		memcpy(cut, x.frame, k);
		rc = decode(&x, cut, k, NULL, &got, &gn, NULL);
		CHECK(rc == ERR_OK || rc == ERR_PARSE);
		if (rc == ERR_OK) {
			CHECK(gn == render_frame_bytes(&x.im));
			ok++;
		}
		tried++;
		free(got);
		free(cut);
	}
	CHECK(tried > 50);
	CHECK(ok <= max_ok);
	img_close(&x);
}

static void cuts(const char *name, size_t step)
{
	cuts_ok(name, step, 2);   /* at most a cut of the final marker's bytes */
}

TEST(j2k_cut_short)
{
	cuts(PYD "MR_small_jp2klossless.dcm", 37);
	cuts(PYD "GDCMJ2K_TextGBR.dcm", 997);
}

/* CharLS 2.4 spins for seconds on scan data that ends without a marker:
 * a cut frame is refused before it is called (this test took minutes
 * before). */
TEST(jls_cut_short)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	cuts(PYD "MR_small_jpeg_ls_lossless.dcm", 37);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(b.tv_sec - a.tv_sec < 20);
}

/* Bytes overwritten one at a time across the frame (with 0x00, 0xFF and
 * their inverse): an error with a reason, or a frame of the right size. */
static void corrupted(const char *name, size_t step)
{
	static const uint8_t with[] = { 0x00, 0xFF, 0x80, 0x7F };
	struct img x;
	uint8_t *c = NULL;
	size_t k, bad = 0;
	unsigned v;

	CHECK(img_open(&x, name));
	if (x.frame != NULL)
		c = malloc(x.flen);
	for (k = 0; c != NULL && k < x.flen; k += k < 200 ? 1 : step)
		for (v = 0; v < sizeof with; v++) {
			uint8_t *got = NULL;
			size_t gn = 0;
			enum err rc;
			memcpy(c, x.frame, x.flen);
			if (c[k] == with[v])
				continue;
			c[k] = with[v];
			rc = decode(&x, c, x.flen, NULL, &got, &gn, NULL);
			CHECK(rc == ERR_OK || rc == ERR_PARSE || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT);
			if (rc == ERR_OK)
				CHECK(gn == render_frame_bytes(&x.im));
			else
				bad++;
			free(got);
		}
	CHECK(bad > 0);
	free(c);
	img_close(&x);
}

TEST(j2k_corrupted)
{
	corrupted(PYD "MR_small_jp2klossless.dcm", 13);
}

TEST(jls_corrupted)
{
	corrupted(PYD "MR_small_jpeg_ls_lossless.dcm", 13);
}

/* A JPEG 2000 header that lies about the image, or an image that lies
 * about the codestream: refused before decoding. SIZ (after SOC):
 * marker, Lsiz, Rsiz, Xsiz @8, Ysiz @12, XOsiz @16, YOsiz @20, XTsiz @24,
 * YTsiz @28, XTOsiz @32, YTOsiz @36, Csiz @40, Ssiz @42. */
TEST(j2k_size_lies)
{
	struct img x;
	struct render_image im;
	uint8_t *c = NULL;

	CHECK(img_open(&x, PYD "MR_small_jp2klossless.dcm"));
	if (x.frame == NULL || (c = malloc(x.flen)) == NULL)
		goto out;
	CHECK(x.frame[0] == 0xFF && x.frame[1] == 0x4F && x.frame[2] == 0xFF && x.frame[3] == 0x51);
#define LIE(off, put, want) do { \
		memcpy(c, x.frame, x.flen); \
		put; \
		CHECK_EQ_INT(decode(&x, c, x.flen, NULL, NULL, NULL, NULL), want); \
		(void)(off); \
	} while (0)
	LIE(8, store_u32be(c + 8, 65), ERR_PARSE);                 /* 65 wide */
	LIE(12, store_u32be(c + 12, 4096), ERR_PARSE);             /* 4096 high */
	LIE(12, store_u32be(c + 12, 0xFFFFFFFFu), ERR_PARSE);
	LIE(16, store_u32be(c + 16, 64), ERR_PARSE);               /* an origin at the end */
	LIE(24, store_u32be(c + 24, 0), ERR_PARSE);                /* tiles of width 0 */
	LIE(32, store_u32be(c + 32, 1), ERR_PARSE);                /* tile origin after the image's */
	LIE(40, store_u16be(c + 40, 3), ERR_PARSE);                /* 3 components (Lsiz then wrong too) */
	LIE(42, c[42] = 0x80 | 16, ERR_PARSE);                     /* 17-bit samples */
	LIE(43, c[43] = 2, ERR_UNSUPPORTED);                       /* subsampled */
	LIE(4, store_u16be(c + 4, 40), ERR_PARSE);                 /* Lsiz */
	LIE(2, c[3] = 0x52, ERR_PARSE);                            /* no SIZ */
	/* 128 x 64 tiles of 1 x 1 (of an image that says it is 128 wide):
	 * over RENDER_J2K_MAX_TILES, refused before OpenJPEG allocates them */
	im = x.im;
	im.cols = 128;
	memcpy(c, x.frame, x.flen);
	store_u32be(c + 8, 128);
	store_u32be(c + 24, 1);
	store_u32be(c + 28, 1);
	CHECK_EQ_INT(decode(&x, c, x.flen, &im, NULL, NULL, NULL), ERR_LIMIT);
	/* the data set lies instead */
	im = x.im;
	im.rows = 32;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	im = x.im;
	im.spp = 3;
	im.photo = RENDER_RGB;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	im = x.im;
	im.bits_alloc = 8;
	im.bits_stored = 8;
	im.high_bit = 7;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	/* Bits Stored 12 of a 16-bit lossless image: its samples do not fit */
	im = x.im;
	im.bits_stored = 12;
	im.high_bit = 11;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	/* unsigned, 11 bits: its largest sample (2145) does not fit; 16
	 * bits: it does (MR_small has no negative samples) */
	im = x.im;
	im.is_signed = false;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_OK);
	im.bits_stored = 11;
	im.high_bit = 10;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
#undef LIE
out:
	free(c);
	img_close(&x);
}

/* The same for JPEG-LS. SOF55 (FF F7) @2: Lf, P @6, Y @7, X @9, Nf @11. */
TEST(jls_size_lies)
{
	struct img x;
	struct render_image im;
	uint8_t *c = NULL;
	size_t sof = 0;

	CHECK(img_open(&x, PYD "MR_small_jpeg_ls_lossless.dcm"));
	if (x.frame == NULL || (c = malloc(x.flen)) == NULL)
		goto out;
	while (sof + 1 < x.flen && !(x.frame[sof] == 0xFF && x.frame[sof + 1] == 0xF7))
		sof++;
	CHECK(sof + 12 < x.flen);
	if (sof + 12 >= x.flen)
		goto out;
#define LIE(put, want) do { \
		memcpy(c, x.frame, x.flen); \
		put; \
		CHECK_EQ_INT(decode(&x, c, x.flen, NULL, NULL, NULL, NULL), want); \
	} while (0)
	LIE(store_u16be(c + sof + 5, 65), ERR_PARSE);      /* 65 high */
	LIE(store_u16be(c + sof + 7, 0xFFFF), ERR_PARSE);  /* 65535 wide */
	LIE(store_u16be(c + sof + 7, 0), ERR_PARSE);
	LIE(c[sof + 4] = 17, ERR_PARSE);                   /* 17-bit samples */
	LIE(c[sof + 4] = 1, ERR_PARSE);
	LIE(c[sof + 9] = 3, ERR_PARSE);                    /* 3 components */
	LIE(c[sof + 1] = 0xC0, ERR_PARSE);                 /* JPEG's SOF0 */
	LIE(memset(c, 0, 2), ERR_PARSE);                   /* no SOI */
#undef LIE
	im = x.im;
	im.cols = 32;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	im = x.im;
	im.bits_alloc = 8;
	im.bits_stored = 8;
	im.high_bit = 7;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
	/* 11 bits stored: the largest sample (2145) is no 11-bit pattern */
	im = x.im;
	im.bits_stored = 11;
	im.high_bit = 10;
	CHECK_EQ_INT(decode(&x, x.frame, x.flen, &im, NULL, NULL, NULL), ERR_PARSE);
out:
	free(c);
	img_close(&x);
}

/* Each transfer syntax's decoder, and what dcm_decompress_takes says. */
TEST(codecs_by_transfer_syntax)
{
	static const struct {
		const char *ts;
		enum render_codec c;
	} t[] = {
		{ "1.2.840.10008.1.2.4.50", RENDER_CODEC_JPEG },       { "1.2.840.10008.1.2.5", RENDER_CODEC_RLE },
		{ "1.2.840.10008.1.2.4.90", RENDER_CODEC_J2K },        { "1.2.840.10008.1.2.4.91", RENDER_CODEC_J2K_LOSSY },
		{ "1.2.840.10008.1.2.4.201", RENDER_CODEC_J2K },       { "1.2.840.10008.1.2.4.202", RENDER_CODEC_J2K },
		{ "1.2.840.10008.1.2.4.203", RENDER_CODEC_J2K_LOSSY }, { "1.2.840.10008.1.2.4.80", RENDER_CODEC_JLS },
		{ "1.2.840.10008.1.2.4.81", RENDER_CODEC_JLS },        { "1.2.840.10008.1.2.4.51", RENDER_CODEC_JPEG_EXT },
		{ "1.2.840.10008.1.2.4.57", RENDER_CODEC_JPEG_LL },    { "1.2.840.10008.1.2.4.70", RENDER_CODEC_JPEG_LL },
		{ "1.2.840.10008.1.2.4.92", RENDER_CODEC_NONE },       { "1.2.840.10008.1.2.1", RENDER_CODEC_NONE },
		{ "1.2.840.10008.1.2.4.9", RENDER_CODEC_NONE },        { "", RENDER_CODEC_NONE },
	};
	size_t i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		CHECK_EQ_INT(render_codec_of(t[i].ts), t[i].c);
		CHECK(dcm_decompress_takes(t[i].ts) == (t[i].c != RENDER_CODEC_NONE));
	}
	CHECK_EQ_INT(render_codec_of(NULL), RENDER_CODEC_NONE);
	CHECK(dcm_transcode_takes("1.2.840.10008.1.2.4.80") && dcm_transcode_takes("1.2.840.10008.1.2.4.91"));
}

/* ---- codestreams made by a review (tests/unit/dicom/codestreams/):
 * Pillow's 64x64 JPEG 2000 in four 32x32 tiles (t4: 16-bit; r53: 8-bit,
 * 5-3 wavelet), with tiles left out (their SOT segments removed, the EOC
 * kept) or one tile-part given a COD of the 9-7 wavelet (mixtile); CharLS's
 * 64x64 RGB JPEG-LS, one scan a component, NEAR 0 (n0) and 3 (n3), and n0
 * with its second scan taken from n3 (mixnear) ---- */
#define CS "tests/unit/dicom/codestreams/"

static uint8_t *cs_read(const char *name, size_t *n)
{
	uint8_t *p = NULL;

	*n = 0;
	CHECK(file_read_all(name, 1 << 20, &p, n) == ERR_OK);
	return p;
}

/* MR_small's image (64x64, 16 bits) as the data set of a J2K frame. */
static enum err j2k_as_mr(const char *name, bool *lossy, char *why, size_t whylen)
{
	struct img x;
	uint8_t *p, *out = NULL;
	size_t n, outlen = 0;
	enum err rc = ERR_INTERNAL;

	p = cs_read(name, &n);
	if (p != NULL && img_open(&x, PYD "MR_small_jp2klossless.dcm")) {
		struct render_image im = x.im;
		rc = render_j2k_decode(&im, false, p, n, &out, &outlen, why, whylen);
		CHECK(rc != ERR_OK || outlen == 64u * 64 * 2);
		*lossy = rc == ERR_OK && im.lossy != NULL;
		free(out);
	}
	img_close(&x);
	free(p);
	return rc;
}

TEST(j2k_every_tile_there)
{
	char why[256] = "";
	bool lossy = true;

	CHECK(j2k_as_mr(CS "t4.j2k", &lossy, why, sizeof why) == ERR_OK && !lossy);
	CHECK(j2k_as_mr(CS "r53.j2k", &lossy, why, sizeof why) == ERR_OK && !lossy);
	/* OpenJPEG alone decodes these as a success, the missing tiles blank */
	CHECK(j2k_as_mr(CS "t4_drop_1.j2k", &lossy, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "tile") != NULL);
	why[0] = 0;
	CHECK(j2k_as_mr(CS "t4_only0.j2k", &lossy, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "tile") != NULL);
	/* a lossy tile in a lossless stream would be marked lossless */
	why[0] = 0;
	CHECK(j2k_as_mr(CS "mixtile.j2k", &lossy, why, sizeof why) == ERR_UNSUPPORTED);
	CHECK(strstr(why, "coding style") != NULL);
}

TEST(jls_near_of_every_scan)
{
	static const char *const names[] = { CS "n0.jls", CS "n3.jls", CS "mixnear.jls" };
	static const int want[] = { 0, 3, 3 };
	struct img x;
	size_t i, n, k;

	for (i = 0; i < 3; i++) {
		uint8_t *p = cs_read(names[i], &n);
		if (p == NULL)
			continue;
		CHECK(render_jls_near_max(p, n) == want[i]);
		for (k = 0; k < n; k++)   /* cut anywhere: a value or -1, in bounds (ASan) */
			CHECK(render_jls_near_max(p, k) >= -1);
		free(p);
	}
	/* decoded: CharLS alone reports the first and the last scan's NEAR
	 * (0 and 0 in mixnear); the frame is lossy all the same */
	if (img_open(&x, PYD "MR_small_jpeg_ls_lossless.dcm")) {
		for (i = 0; i < 3; i += 2) {
			struct render_image im = x.im;
			uint8_t *p = cs_read(names[i], &n), *out = NULL;
			size_t outlen = 0;
			char why[256] = "";
			im.spp = 3;
			im.bits_alloc = im.bits_stored = 8;
			im.high_bit = 7;
			im.is_signed = false;
			im.photo = RENDER_RGB;
			CHECK(p != NULL && render_jls_decode(&im, p, n, &out, &outlen, why, sizeof why) == ERR_OK);
			CHECK(outlen == 64u * 64 * 3);
			CHECK((im.lossy != NULL) == (i == 2));
			free(out);
			free(p);
		}
	}
	img_close(&x);
}

/* ---- JPEG Lossless and 12-bit JPEG Extended (render_ljpeg.c), on files
 * DCMTK 3.6.7's dcmcjpeg made (tests/unit/dicom/codestreams/):
 * ljpeg_mr_svN: MR_small, +el +sv N (.57, predictor N); ljpeg_mr_70:
 * +e1 (.70); ljpeg_mr_pt2: +el +sv 1 +pt 2 (point transform 2);
 * ljpeg_ct_70: CT_small, +e1; ljpeg_rgb_70 and ljpeg_rgb_sv7:
 * SC_rgb_small_odd (RGB, 3 components, odd size), +e1 and +el +sv 7;
 * made by tests/integration/lib/ljpeg_enc.py (checked with dcmdjpeg):
 * ljpeg_mr_rst, MR_small --sv 4 --restart 3 (RST every 3 rows);
 * ljpeg_rgb_rstsep, SC_rgb_small_odd --sv 6 --restart 1 --separate (one
 * scan per component, RST every row);
 * jpeg12_mr_native: MR_small scaled to 12 bits unsigned (pydicom), and
 * its +ee (.51, 12-bit DCT) in jpeg12_mr_51, decoded by dcmdjpeg in
 * jpeg12_mr_51_dcmdjpeg; jpeg8_mr_51: the same image in 8 bits, +ee ---- */

TEST(ljpeg_every_predictor_is_the_native_image)
{
	static const char *const names[] = {
		CS "ljpeg_mr_sv1.dcm", CS "ljpeg_mr_sv2.dcm", CS "ljpeg_mr_sv3.dcm", CS "ljpeg_mr_sv4.dcm",
		CS "ljpeg_mr_sv5.dcm", CS "ljpeg_mr_sv6.dcm", CS "ljpeg_mr_sv7.dcm", CS "ljpeg_mr_70.dcm",
		CS "ljpeg_mr_rst.dcm",
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		mr_small_as(names[i], RENDER_CODEC_JPEG_LL);
}

/* name decodes to the native pixels of orig, byte for byte, lossless. */
static void ljpeg_is(const char *name, const char *orig, uint32_t spp)
{
	struct img x;
	uint8_t *want = NULL, *got = NULL;
	size_t wn = 0, gn = 0;
	struct render_image dec;

	CHECK(img_open(&x, name));
	want = native_pixels(orig, &wn);
	CHECK(want != NULL && x.codec == RENDER_CODEC_JPEG_LL && x.im.spp == spp);
	if (x.frame != NULL && want != NULL) {
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, &dec), ERR_OK);
		CHECK(got != NULL && (gn == wn || gn + 1 == wn) && memcmp(got, want, gn) == 0);   /* wn: padded to even */
		CHECK(dec.lossy == NULL && dec.planar == 0);
		free(got);
	}
	free(want);
	img_close(&x);
}

TEST(ljpeg_ct_and_rgb)
{
	ljpeg_is(CS "ljpeg_ct_70.dcm", PYD "CT_small.dcm", 1);
	ljpeg_is(CS "ljpeg_rgb_70.dcm", PYD "SC_rgb_small_odd.dcm", 3);
	ljpeg_is(CS "ljpeg_rgb_sv7.dcm", PYD "SC_rgb_small_odd.dcm", 3);
	ljpeg_is(CS "ljpeg_rgb_rstsep.dcm", PYD "SC_rgb_small_odd.dcm", 3);
}

/* A point transform drops its low bits: lossy, and each sample is the
 * original's bit pattern with those bits cleared. */
TEST(ljpeg_point_transform)
{
	struct img x;
	uint8_t *want = NULL, *got = NULL;
	size_t wn = 0, gn = 0, i;
	struct render_image dec;

	CHECK(img_open(&x, CS "ljpeg_mr_pt2.dcm"));
	want = native_pixels(PYD "MR_small.dcm", &wn);
	if (x.frame != NULL && want != NULL) {
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, &dec), ERR_OK);
		CHECK(got != NULL && gn == wn);
		for (i = 0; got != NULL && i + 1 < gn; i += 2)
			if (load_u16le(got + i) != (load_u16le(want + i) & 0xFFFC))
				break;
		CHECK(got != NULL && i + 1 >= gn);
		CHECK(dec.lossy != NULL && strcmp(dec.lossy, "ISO_10918_1") == 0);
		free(got);
	}
	free(want);
	img_close(&x);
}

/* 12-bit DCT: within 1 of dcmdjpeg's decode (IJG's integer inverse DCT
 * against our exact one), within the quality's error of the original. */
TEST(jpeg12_like_dcmdjpeg)
{
	struct img x;
	uint8_t *ref = NULL, *orig = NULL, *got = NULL;
	size_t rn = 0, on = 0, gn = 0, i;
	struct render_image dec;
	int worst = 0, off = 0;

	CHECK(img_open(&x, CS "jpeg12_mr_51.dcm"));
	ref = native_pixels(CS "jpeg12_mr_51_dcmdjpeg.dcm", &rn);
	orig = native_pixels(CS "jpeg12_mr_native.dcm", &on);
	CHECK(x.codec == RENDER_CODEC_JPEG_EXT && ref != NULL && orig != NULL && rn == on && rn == 64u * 64 * 2);
	if (x.frame != NULL && ref != NULL && orig != NULL && rn == on) {
		CHECK_EQ_INT(render_jpeg_precision(x.frame, x.flen), 12);
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, &dec), ERR_OK);
		CHECK(got != NULL && gn == rn);
		for (i = 0; got != NULL && i + 1 < gn; i += 2) {
			int d = abs((int)load_u16le(got + i) - (int)load_u16le(ref + i));
			int e = abs((int)load_u16le(got + i) - (int)load_u16le(orig + i));
			worst = d > worst ? d : worst;
			off = e > off ? e : off;
			CHECK(load_u16le(got + i) <= 4095);
		}
		CHECK(worst <= 1);
		CHECK(off > 0 && off < 200);   /* lossy, and near the original */
		CHECK(dec.lossy != NULL && strcmp(dec.lossy, "ISO_10918_1") == 0 && dec.bits_stored == 12);
		free(got);
	}
	free(ref);
	free(orig);
	img_close(&x);
}

/* 8-bit .51 goes to libjpeg-turbo; our DCT decodes it within 1 of it. */
TEST(jpeg8_extended_ours_and_libjpeg)
{
	struct img x;
	uint8_t *a = NULL, *b = NULL;
	size_t an = 0, bn = 0, i;
	char why[256] = "";
	int worst = 0;

	CHECK(img_open(&x, CS "jpeg8_mr_51.dcm"));
	if (x.frame != NULL) {
		struct render_image im = x.im;
		CHECK_EQ_INT(render_jpeg_precision(x.frame, x.flen), 8);
		CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &a, &an, NULL), ERR_OK);
		CHECK(render_ljpeg_decode(&im, false, x.frame, x.flen, &b, &bn, why, sizeof why) == ERR_OK);
		CHECK(a != NULL && b != NULL && an == bn && an == 64u * 64);
		for (i = 0; a != NULL && b != NULL && i < an && an == bn; i++) {
			int d = abs((int)a[i] - (int)b[i]);
			worst = d > worst ? d : worst;
		}
		CHECK(worst <= 1);
		/* Bits Stored 6 of an 8-bit frame: the words as coded, like
		 * dcmdjpeg (not clamped to 6 bits) */
		{
			uint8_t *c6 = NULL;
			size_t n6 = 0;
			im = x.im;
			im.bits_stored = 6;
			im.high_bit = 5;
			CHECK(render_ljpeg_decode(&im, false, x.frame, x.flen, &c6, &n6, why, sizeof why) == ERR_OK);
			CHECK(b != NULL && c6 != NULL && n6 == bn && memcmp(c6, b, bn) == 0);
			free(c6);
		}
		/* a lossless decode of a DCT frame is refused */
		im = x.im;
		why[0] = 0;
		CHECK(render_ljpeg_decode(&im, true, x.frame, x.flen, &b, &bn, why, sizeof why) == ERR_PARSE);
		CHECK(strstr(why, "not lossless") != NULL);
		free(a);
		free(b);
	}
	img_close(&x);
}

/* pydicom's two 12-bit JPEG Extended files decode (1024 x 256). */
TEST(jpeg12_pydicom_files)
{
	static const char *const names[] = { PYD "JPGExtended.dcm", PYD "JPEG-lossy.dcm" };
	size_t i;

	for (i = 0; i < 2; i++) {
		struct img x;
		uint8_t *got = NULL;
		size_t gn = 0;
		CHECK(img_open(&x, names[i]));
		if (x.frame != NULL) {
			CHECK_EQ_INT(decode(&x, x.frame, x.flen, NULL, &got, &gn, NULL), ERR_OK);
			CHECK(gn == 1024u * 256 * 2);
			free(got);
		}
		img_close(&x);
	}
}

/* Cut and overwritten frames: an error with a reason, or the full frame
 * (a lossless JPEG may end without its EOI and the fragment's padding:
 * three cuts). */
TEST(ljpeg_cut_and_corrupted)
{
	cuts_ok(CS "ljpeg_mr_sv4.dcm", 37, 3);
	cuts_ok(CS "ljpeg_rgb_sv7.dcm", 1, 3);
	cuts_ok(CS "jpeg12_mr_51.dcm", 37, 3);
	corrupted(CS "ljpeg_mr_sv6.dcm", 7);
	corrupted(CS "ljpeg_rgb_70.dcm", 1);
	corrupted(CS "jpeg12_mr_51.dcm", 7);
}

/* A frame's header that is not the data set's image, and marker
 * segments that lie: refused with a reason, nothing decoded. */
static enum err ljpeg_edited(const struct img *x, size_t at, const uint8_t *with, size_t n, bool lossless,
                             const struct render_image *im, char *why, size_t whylen)
{
	uint8_t *c = malloc(x->flen), *got = NULL;
	struct render_image d = *(im != NULL ? im : &x->im);
	size_t gn = 0;
	enum err rc = ERR_INTERNAL;

	if (c != NULL && at + n <= x->flen) {
		memcpy(c, x->frame, x->flen);
		memcpy(c + at, with, n);
		why[0] = 0;
		rc = render_ljpeg_decode(&d, lossless, c, x->flen, &got, &gn, why, whylen);
		CHECK(rc == ERR_OK || (why[0] != 0 && got == NULL));
		if (getenv("DECODE_TEST_VERBOSE") != NULL)
			fprintf(stderr, "  %s\n", why);
	}
	free(got);
	free(c);
	return rc;
}

/* the offset of the first marker m in the frame (after SOI), 0 if none */
static size_t marker_at(const struct img *x, uint8_t m)
{
	size_t i;

	for (i = 2; i + 1 < x->flen; i++)
		if (x->frame[i] == 0xFF && x->frame[i + 1] == m)
			return i;
	return 0;
}

TEST(ljpeg_lies)
{
	struct img x;
	struct render_image im;
	char why[256];
	size_t sof, dht, sos;

	CHECK(img_open(&x, CS "ljpeg_mr_sv1.dcm"));
	sof = marker_at(&x, 0xC3);
	dht = marker_at(&x, 0xC4);
	sos = marker_at(&x, 0xDA);
	CHECK(x.frame != NULL && sof != 0 && dht != 0 && sos != 0);
	if (x.frame == NULL || sof == 0 || dht == 0 || sos == 0)
		goto out;
	CHECK(ljpeg_edited(&x, 0, (const uint8_t *)"\xFF", 1, true, NULL, why, sizeof why) == ERR_OK);
	/* the image: rows, columns, components, precision, Bits Allocated */
	im = x.im;
	im.rows = 32;
	CHECK(ljpeg_edited(&x, 0, (const uint8_t *)"\xFF", 1, true, &im, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "64x64, the data set says 64x32") != NULL);
	im = x.im;
	im.spp = 3;
	CHECK(ljpeg_edited(&x, 0, (const uint8_t *)"\xFF", 1, true, &im, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "1 components, the data set says 3") != NULL);
	im = x.im;
	im.bits_alloc = 8;
	im.bits_stored = 8;
	im.high_bit = 7;
	CHECK(ljpeg_edited(&x, 0, (const uint8_t *)"\xFF", 1, true, &im, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "16-bit samples, Bits Allocated is 8") != NULL);
	/* precision 1 (SOF: FF C3, length, P) */
	CHECK(ljpeg_edited(&x, sof + 4, (const uint8_t *)"\x01", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	/* a DCT frame header where the transfer syntax says lossless, and
	 * the other way round */
	CHECK(ljpeg_edited(&x, sof + 1, (const uint8_t *)"\xC1", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "not lossless") != NULL);
	CHECK(ljpeg_edited(&x, 0, (const uint8_t *)"\xFF", 1, false, NULL, why, sizeof why) == ERR_PARSE);
	/* progressive and arithmetic coding: not decoded */
	CHECK(ljpeg_edited(&x, sof + 1, (const uint8_t *)"\xC2", 1, true, NULL, why, sizeof why) == ERR_UNSUPPORTED);
	CHECK(ljpeg_edited(&x, sof + 1, (const uint8_t *)"\xCB", 1, true, NULL, why, sizeof why) == ERR_UNSUPPORTED);
	/* a height of 0 (given by DNL) */
	CHECK(ljpeg_edited(&x, sof + 5, (const uint8_t *)"\x00\x00", 2, true, NULL, why, sizeof why) == ERR_UNSUPPORTED);
	/* sampling factors 2x1 of the only component: one data unit all the same */
	CHECK(ljpeg_edited(&x, sof + 11, (const uint8_t *)"\x21", 1, true, NULL, why, sizeof why) == ERR_OK);
	/* a Huffman table whose two 1-bit codes leave no room for the longer
	 * ones (DHT: FF C4, length, Tc/Th, the 16 counts; as many values) */
	if (dht + 21 <= x.flen) {
		uint8_t counts[16];
		int last = 15;
		memcpy(counts, x.frame + dht + 5, 16);
		while (last > 0 && counts[last] < 2)
			last--;
		counts[last] = (uint8_t)(counts[last] - 2);
		counts[0] = (uint8_t)(counts[0] + 2);
		CHECK(ljpeg_edited(&x, dht + 5, counts, 16, true, NULL, why, sizeof why) == ERR_PARSE);
		CHECK(strstr(why, "do not fit") != NULL);
	}
	/* the scan: a component the frame has not, a table not defined,
	 * predictor 0 (hierarchical) and 8, a point transform of 16 bits
	 * (SOS: FF DA, length, Ns, Cs, Td/Ta, Ss, Se, Ah/Al) */
	CHECK(ljpeg_edited(&x, sos + 5, (const uint8_t *)"\x63", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	CHECK(ljpeg_edited(&x, sos + 6, (const uint8_t *)"\x30", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "not defined") != NULL);
	CHECK(ljpeg_edited(&x, sos + 7, (const uint8_t *)"\x00", 1, true, NULL, why, sizeof why) == ERR_UNSUPPORTED);
	CHECK(ljpeg_edited(&x, sos + 7, (const uint8_t *)"\x08", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	CHECK(ljpeg_edited(&x, sos + 9, (const uint8_t *)"\x10", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	/* the frame header where the scan should be: two frame headers */
	CHECK(ljpeg_edited(&x, sos + 1, (const uint8_t *)"\xC3", 1, true, NULL, why, sizeof why) == ERR_PARSE);
	/* a restart interval of half a row (DRI before the scan, in place of
	 * the Huffman table's marker: FF DD 00 04 00 20, the table then
	 * missing) */
	CHECK(ljpeg_edited(&x, dht, (const uint8_t *)"\xFF\xDD\x00\x04\x00\x20", 6, true, NULL, why, sizeof why) !=
	      ERR_OK);
	/* an RSTn after the last scan (libjpeg and DCMTK skip it): the same
	 * image */
	{
		uint8_t *c = malloc(x.flen + 2), *a = NULL, *b = NULL;
		size_t eoi = x.flen - 2, an = 0, bn = 0;
		while (eoi > 0 && !(x.frame[eoi] == 0xFF && x.frame[eoi + 1] == 0xD9))
			eoi--;
		CHECK(c != NULL && eoi > sos);
		if (c != NULL && eoi > sos) {
			struct render_image d1 = x.im, d2 = x.im;
			memcpy(c, x.frame, eoi);
			memcpy(c + eoi, "\xFF\xD3", 2);
			memcpy(c + eoi + 2, x.frame + eoi, x.flen - eoi);
			CHECK(render_ljpeg_decode(&d1, true, x.frame, x.flen, &a, &an, why, sizeof why) == ERR_OK);
			CHECK(render_ljpeg_decode(&d2, true, c, x.flen + 2, &b, &bn, why, sizeof why) == ERR_OK);
			CHECK(a != NULL && b != NULL && an == bn && memcmp(a, b, an) == 0);
		}
		free(a);
		free(b);
		free(c);
	}
	CHECK(render_jpeg_precision(x.frame, x.flen) == 16);
	CHECK(render_jpeg_precision(x.frame, sof + 4) == 0);
	CHECK(render_jpeg_precision(x.frame + 2, x.flen - 2) == 0);
out:
	img_close(&x);
}

int main(void)
{
	RUN(j2k_lossless_is_the_native_image);
	RUN(jls_lossless_is_the_native_image);
	RUN(j2k_in_a_jp2_file);
	RUN(j2k_ybr_rct_becomes_rgb);
	RUN(j2k_unsigned_codestream_of_signed_image);
	RUN(j2k_lossy_marks);
	RUN(absent_pixel_description_written);
	RUN(j2k_cut_short);
	RUN(jls_cut_short);
	RUN(j2k_corrupted);
	RUN(jls_corrupted);
	RUN(j2k_size_lies);
	RUN(jls_size_lies);
	RUN(codecs_by_transfer_syntax);
	RUN(j2k_every_tile_there);
	RUN(jls_near_of_every_scan);
	RUN(ljpeg_every_predictor_is_the_native_image);
	RUN(ljpeg_ct_and_rgb);
	RUN(ljpeg_point_transform);
	RUN(jpeg12_like_dcmdjpeg);
	RUN(jpeg8_extended_ours_and_libjpeg);
	RUN(jpeg12_pydicom_files);
	RUN(ljpeg_cut_and_corrupted);
	RUN(ljpeg_lies);
	return TEST_DONE();
}
