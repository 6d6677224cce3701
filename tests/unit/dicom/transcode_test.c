/* transcode_test.c: dicom/transcode.c on pydicom's test files. MR_small_RLE
 * decompressed is MR_small's pixels byte for byte (the same image stored
 * both ways), in explicit and implicit VR; its other attributes kept,
 * group lengths and what follows Pixel Data left out; an RLE colour image
 * is laid out as its Planar Configuration says (0: the decoder's planes
 * interleaved, checked sample by sample against a decoding of frame 2 on
 * its own); a JPEG Baseline YBR image
 * becomes RGB with the lossy marks; a frame that does not decode fails
 * before anything is written, and an input it does not take (JPEG
 * Extended, native pixels neither OB nor OW), or a target that is not little endian
 * native, is refused with nothing written. A native data set (implicit VR,
 * big endian) is re-encoded: every element kept, numbers swapped, pixels
 * streamed in chunks, what follows Pixel Data after it.
 * Layer: tests. */
#include <unistd.h>
#include "pixels.h"
#include "dicomvault/frame.h"
#include "dicomvault/render.h"
#include "dicomvault/vr.h"

/* The file decompressed into explicit VR LE and read back (NULL on any
 * failure, checked); x and w are the caller's to close. */
static struct dcm_file *explicit_of(const char *name, struct file *x, struct wbuf *w, struct src *s, struct src_mem *m)
{
	struct dcm_file *g = NULL;

	CHECK(open_file(x, name));
	wbuf_init(w, 1 << 20);
	if (x->f != NULL && decompress(x->f, EXPLICIT, w) == ERR_OK)
		g = read_back(w, EXPLICIT, s, m);
	CHECK(g != NULL);
	return g;
}

static enum err set_us(struct dcm_ds *ds, uint32_t tag, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v & 0xFF), (uint8_t)(v >> 8) };

	return dcm_ds_set(ds, tag, VR_US, b, 2);
}

TEST(rle_is_the_native_image)
{
	static const char *const targets[] = { EXPLICIT, IMPLICIT };
	struct file rle, nat;
	const struct dcm_elem *npx;
	const uint8_t *want = NULL;
	bool owned = false;
	unsigned t;

	CHECK(open_file(&rle, PYD "MR_small_RLE.dcm") && open_file(&nat, PYD "MR_small.dcm"));
	if (rle.f == NULL || nat.f == NULL)
		goto out;
	npx = dcm_ds_find(&nat.f->ds, 0x7FE00010);
	CHECK(npx != NULL && npx->len == 64 * 64 * 2);
	if (npx == NULL || dcm_elem_value(nat.f, npx, &want, &owned) != ERR_OK)
		goto out;
	/* a group length and trailing padding: left out */
	CHECK(dcm_ds_set(&rle.f->ds, 0x00080000, VR_UL, "\x04\0\0\0", 4) == ERR_OK);
	CHECK(dcm_ds_set(&rle.f->ds, 0xFFFCFFFC, VR_OB, "\0\0\0\0", 4) == ERR_OK);
	for (t = 0; t < 2; t++) {
		struct wbuf w;
		struct src s;
		struct src_mem m;
		struct dcm_file *g;
		wbuf_init(&w, 1 << 20);
		CHECK(decompress(rle.f, targets[t], &w) == ERR_OK);
		g = read_back(&w, targets[t], &s, &m);
		CHECK(g != NULL);
		if (g != NULL) {
			CHECK(pixels_are(g, want, 64 * 64 * 2));
			CHECK(str_is(&g->ds, 0x00080018, "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"));
			CHECK(str_is(&g->ds, 0x00100010, "CompressedSamples^MR1"));
			CHECK(str_is(&g->ds, 0x00280004, "MONOCHROME2"));
			CHECK_EQ_INT(us_of(&g->ds, 0x00280100), 16);
			CHECK(dcm_ds_find(&g->ds, 0x00080000) == NULL);
			CHECK(dcm_ds_find(&g->ds, 0xFFFCFFFC) == NULL);
			CHECK(dcm_ds_find(&g->ds, 0x00282110) == NULL);   /* RLE is lossless */
			/* the data set otherwise: MR_small's elements up to
			 * Pixel Data (the same image stored natively; it ends
			 * with trailing padding too) */
			{
				uint32_t i, n = 0;
				for (i = 0; i < nat.f->ds.n; i++)
					n += (nat.f->ds.e[i].tag & 0xFFFFu) != 0 && nat.f->ds.e[i].tag <= 0x7FE00010;
				CHECK_EQ_INT(g->ds.n, n);
			}
			dcm_file_free(g);
		}
		wbuf_fini(&w);
	}
out:
	if (owned)
		free((void *)want);
	close_file(&rle);
	close_file(&nat);
}

/* As a Part 10 file, pulled piece by piece (what WADO-RS sends): a
 * preamble, File Meta Information naming explicit VR little endian and
 * the instance, MR_small's pixels. */
TEST(part10_pulled)
{
	struct file rle, nat;
	struct dcm_transcode *z = NULL;
	struct wbuf w;
	const uint8_t *p;
	size_t n, pieces = 0;
	char why[256] = "";
	enum err rc;

	wbuf_init(&w, 1 << 20);
	CHECK(open_file(&rle, PYD "MR_small_RLE.dcm") && open_file(&nat, PYD "MR_small.dcm"));
	if (rle.f == NULL || nat.f == NULL)
		goto out;
	CHECK(dcm_transcode_begin(rle.f, ts_of(EXPLICIT), true, &z, why, sizeof why) == ERR_OK);
	if (z == NULL)
		goto out;
	do {
		rc = dcm_transcode_next(z, &p, &n, why, sizeof why);
		if (rc == ERR_OK && n > 0) {
			wbuf_put(&w, p, n);
			pieces++;
		}
	} while (rc == ERR_OK && n > 0);
	CHECK(rc == ERR_OK);
	CHECK_EQ_INT(pieces, 2);   /* the head, one frame */
	CHECK(dcm_transcode_next(z, &p, &n, why, sizeof why) == ERR_OK && n == 0);   /* stays ended */
	{
		struct src s;
		struct src_mem m;
		struct dcm_read_opts o;
		struct dcm_errinfo ei;
		struct dcm_file *g = NULL;
		const struct dcm_elem *npx = dcm_ds_find(&nat.f->ds, 0x7FE00010);
		const uint8_t *want = NULL;
		bool owned = false;
		memset(&o, 0, sizeof o);
		src_mem_init(&s, &m, w.p, w.len);
		CHECK(w.len > 132 && memcmp(w.p + 128, "DICM", 4) == 0);
		CHECK(dcm_file_read(&s, &o, &g, &ei) == ERR_OK);
		if (g != NULL) {
			CHECK(g->has_meta && strcmp(g->ts_uid, EXPLICIT) == 0);
			CHECK(str_is(&g->meta, 0x00020003, "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"));
			CHECK(npx != NULL && dcm_elem_value(nat.f, npx, &want, &owned) == ERR_OK &&
			      pixels_are(g, want, 64 * 64 * 2));
			if (owned)
				free((void *)want);
			dcm_file_free(g);
		}
	}
out:
	dcm_transcode_free(z);
	wbuf_fini(&w);
	close_file(&rle);
	close_file(&nat);
}

/* What only encapsulated pixels may carry is left out: the Extended
 * Offset Table (7FE0,0001/0002) and an icon's compressed pixels inside a
 * sequence item (the item and its other elements kept). Before, the
 * table was copied and the nested icon failed the whole write after
 * begin had said yes. */
TEST(encapsulated_leftovers_left_out)
{
	struct file rle;
	struct wbuf w;
	struct src s;
	struct src_mem m;
	struct dcm_elem *sq, *icon, *px;
	struct dcm_ds *item, *iitem;
	struct dcm_file *g = NULL;

	wbuf_init(&w, 1 << 20);
	CHECK(open_file(&rle, PYD "MR_small_RLE.dcm"));
	if (rle.f == NULL)
		goto out;
	CHECK(dcm_ds_set(&rle.f->ds, 0x7FE00001, VR_OV, "\0\0\0\0\0\0\0\0", 8) == ERR_OK);
	CHECK(dcm_ds_set(&rle.f->ds, 0x7FE00002, VR_OV, "\1\0\0\0\0\0\0\0", 8) == ERR_OK);
	CHECK(dcm_ds_set_seq(&rle.f->ds, 0x00081140, &sq) == ERR_OK && dcm_seq_add_item(&rle.f->ds, sq, &item) == ERR_OK);
	CHECK(dcm_ds_set_str(item, 0x00081155, VR_UI, "1.2.3.4") == ERR_OK);
	CHECK(dcm_ds_set_seq(item, 0x00880200, &icon) == ERR_OK && dcm_seq_add_item(item, icon, &iitem) == ERR_OK);
	CHECK(dcm_ds_set_str(iitem, 0x00280004, VR_CS, "MONOCHROME2") == ERR_OK);
	CHECK(dcm_ds_set(iitem, 0x7FE00010, VR_OB, NULL, 0) == ERR_OK);
	px = dcm_ds_find(iitem, 0x7FE00010);
	CHECK(px != NULL && dcm_elem_add_frag(iitem, px, "", 0) == ERR_OK && dcm_elem_add_frag(iitem, px, "ab", 2) == ERR_OK);
	CHECK(decompress(rle.f, EXPLICIT, &w) == ERR_OK);
	g = read_back(&w, EXPLICIT, &s, &m);
	CHECK(g != NULL);
	if (g != NULL) {
		const struct dcm_elem *rs = dcm_ds_find(&g->ds, 0x00081140);
		CHECK(dcm_ds_find(&g->ds, 0x7FE00001) == NULL && dcm_ds_find(&g->ds, 0x7FE00002) == NULL);
		CHECK(rs != NULL && rs->seq != NULL && rs->seq->n == 1);
		if (rs != NULL && rs->seq != NULL && rs->seq->n == 1) {
			const struct dcm_ds *it = rs->seq->items[0];
			const struct dcm_elem *ic = dcm_ds_find(it, 0x00880200);
			CHECK(str_is(it, 0x00081155, "1.2.3.4"));
			CHECK(ic != NULL && ic->seq != NULL && ic->seq->n == 1 &&
			      dcm_ds_find(ic->seq->items[0], 0x7FE00010) == NULL &&
			      str_is(ic->seq->items[0], 0x00280004, "MONOCHROME2"));
		}
		CHECK(dcm_ds_find(&g->ds, 0x7FE00010) != NULL);
		dcm_file_free(g);
	}
out:
	wbuf_fini(&w);
	close_file(&rle);
}

TEST(rle_colour_as_its_planar_configuration)
{
	struct file x;
	struct wbuf w;
	struct src s;
	struct src_mem m;
	struct dcm_file *g = explicit_of(PYD "SC_rgb_rle_16bit_2frame.dcm", &x, &w, &s, &m);

	if (g != NULL) {
		const struct dcm_elem *e = dcm_ds_find(&g->ds, 0x7FE00010);
		CHECK(e != NULL && e->len == 2u * 100 * 100 * 3 * 2 && e->vr == VR_OW);
		CHECK_EQ_INT(us_of(&g->ds, 0x00280006), 0);
		CHECK(str_is(&g->ds, 0x00280004, "RGB"));
		{
			/* frame 2 decoded on its own, planar, against the
			 * written one, interleaved */
			struct render_image im, dec;
			struct dcm_frames fr;
			uint8_t *raw = NULL, *planes = NULL, *got = NULL;
			size_t n = 0, plen = 0;
			char why[128];
			bool same = false;
			const uint8_t *v = NULL;
			bool owned = false;
			if (render_image_init(x.f, &x.f->ds, &im, why, sizeof why) == ERR_OK) {
				if (dcm_frames_init(x.f, &fr, why, sizeof why) == ERR_OK) {
					n = (size_t)dcm_frame_size(&fr, 1);
					raw = malloc(n);
					dec = im;
					if (raw != NULL && dcm_frame_read(&fr, 1, 0, raw, n) == ERR_OK &&
					    render_rle_decode(&dec, raw, n, &planes, &plen, why, sizeof why) == ERR_OK &&
					    e != NULL && dcm_elem_value(g, e, &v, &owned) == ERR_OK) {
						size_t px = 100 * 100, k, c;
						got = (uint8_t *)v + plen;   /* frame 2 */
						same = plen == px * 3 * 2;
						for (k = 0; same && k < px; k++)
							for (c = 0; c < 3; c++)
								same &= memcmp(got + (k * 3 + c) * 2, planes + (c * px + k) * 2, 2) == 0;
					}
					dcm_frames_fini(&fr);
				}
				render_image_fini(&im);
			}
			CHECK(same);
			if (owned)
				free((void *)v);
			free(raw);
			free(planes);
		}
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	close_file(&x);
}

TEST(jpeg_becomes_rgb_and_says_lossy)
{
	struct file x;
	struct wbuf w;
	struct src s;
	struct src_mem m;
	/* 3 x 3 YBR_FULL: 27 bytes, padded */
	struct dcm_file *g = explicit_of(PYD "SC_rgb_small_odd_jpeg.dcm", &x, &w, &s, &m);

	CHECK(x.f != NULL && str_is(&x.f->ds, 0x00280004, "YBR_FULL"));
	if (g != NULL) {
		const struct dcm_elem *e = dcm_ds_find(&g->ds, 0x7FE00010);
		CHECK(e != NULL && e->len == 28 && e->vr == VR_OB);
		CHECK(str_is(&g->ds, 0x00280004, "RGB"));
		CHECK_EQ_INT(us_of(&g->ds, 0x00280006), 0);
		CHECK(str_is(&g->ds, 0x00282110, "01"));
		CHECK(dcm_ds_find(&g->ds, 0x00282114) != NULL);
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	close_file(&x);
}

TEST(refusals_write_nothing)
{
	struct file nat, rle, jpg;
	struct wbuf w;

	wbuf_init(&w, 1 << 20);
	CHECK(open_file(&nat, PYD "MR_small.dcm") && open_file(&rle, PYD "MR_small_RLE.dcm"));
	CHECK(open_file(&jpg, PYD "SC_rgb_jpeg_dcmtk.dcm"));
	if (nat.f != NULL) {
		struct dcm_file *ext = NULL;
		struct file x;
		CHECK(open_file(&x, PYD "JPEG-lossy.dcm"));
		ext = x.f;
		if (ext != NULL) {   /* its frames said to be JPEG 2000 Part 2: no decoder for that */
			static const char part2[] = "1.2.840.10008.1.2.4.92";
			ext->ts = dict_ts(part2, sizeof part2 - 1);
			CHECK(ext->ts != NULL);
			if (ext->ts != NULL)
				CHECK_EQ_INT(decompress(ext, EXPLICIT, &w), ERR_UNSUPPORTED);
		}
		close_file(&x);
		/* native Pixel Data that is not OB or OW */
		CHECK(dcm_ds_set(&nat.f->ds, 0x7FE00010, VR_UN, "abcd", 4) == ERR_OK);
		CHECK_EQ_INT(decompress(nat.f, EXPLICIT, &w), ERR_UNSUPPORTED);
	}
	if (rle.f != NULL) {
		CHECK_EQ_INT(decompress(rle.f, "1.2.840.10008.1.2.2", &w), ERR_UNSUPPORTED);   /* big endian */
		CHECK_EQ_INT(decompress(rle.f, "1.2.840.10008.1.2.4.50", &w), ERR_UNSUPPORTED);
	}
	if (jpg.f != NULL) {
		/* the JPEG frame's first bytes broken: it does not decode */
		struct dcm_frames fr;
		char why[128];
		uint8_t head[4];
		CHECK(dcm_frames_init(jpg.f, &fr, why, sizeof why) == ERR_OK && fr.n == 1);
		CHECK(dcm_frame_read(&fr, 0, 0, head, 4) == ERR_OK && head[0] == 0xFF && head[1] == 0xD8);
		{
			uint8_t *p = memmem(jpg.data, jpg.len, "\xFF\xD8\xFF", 3);
			CHECK(p != NULL);
			if (p != NULL)
				memset(p, 0x11, 3);
		}
		dcm_frames_fini(&fr);
		CHECK_EQ_INT(decompress(jpg.f, EXPLICIT, &w), ERR_PARSE);
	}
	CHECK_EQ_INT(w.len, 0);
	wbuf_fini(&w);
	close_file(&nat);
	close_file(&rle);
	close_file(&jpg);
}

/* MR_small stored in implicit VR and in explicit VR big endian, written
 * in explicit VR little endian: MR_small's data set, element for element
 * (values compared as read, so big endian numbers are swapped), group
 * lengths and trailing padding left out; elements after Pixel Data kept
 * after it. */
TEST(native_reencoded)
{
	static const char *const names[] = { PYD "MR_small_implicit.dcm", PYD "MR_small_bigendian.dcm" };
	struct file nat;
	unsigned t;

	CHECK(open_file(&nat, PYD "MR_small.dcm"));
	for (t = 0; nat.f != NULL && t < 2; t++) {
		struct file x;
		struct wbuf w;
		struct src s;
		struct src_mem m;
		struct dcm_file *g;
		CHECK(open_file(&x, names[t]));
		if (x.f == NULL)
			continue;
		CHECK(dcm_ds_set_str(&x.f->ds, 0x7FE10010, VR_LO, "ACME 1.0") == ERR_OK);
		CHECK(dcm_ds_set(&x.f->ds, 0x7FE11000, VR_OB, "tail", 4) == ERR_OK);
		CHECK(dcm_ds_set(&x.f->ds, 0x00080000, VR_UL, "\x04\0\0\0", 4) == ERR_OK);
		{   /* a group length inside an item: wrong once the VRs are written out */
			struct dcm_elem *sq;
			struct dcm_ds *item;
			CHECK(dcm_ds_set_seq(&x.f->ds, 0x00081140, &sq) == ERR_OK &&
			      dcm_seq_add_item(&x.f->ds, sq, &item) == ERR_OK);
			CHECK(dcm_ds_set(item, 0x00080000, VR_UL, "\x1c\0\0\0", 4) == ERR_OK);
			CHECK(dcm_ds_set_str(item, 0x00081150, VR_UI, "1.2.840.10008.5.1.4.1.1.4") == ERR_OK);
			CHECK(dcm_ds_set_str(item, 0x00081155, VR_UI, "1.2.3.4") == ERR_OK);
		}
		wbuf_init(&w, 1 << 20);
		CHECK(decompress(x.f, EXPLICIT, &w) == ERR_OK);
		g = read_back(&w, EXPLICIT, &s, &m);
		CHECK(g != NULL);
		if (g != NULL) {
			uint32_t i, n = 0;
			const struct dcm_elem *tail = dcm_ds_find(&g->ds, 0x7FE11000);
			CHECK(dcm_ds_find(&g->ds, 0x00080000) == NULL);
			CHECK(dcm_ds_find(&g->ds, 0xFFFCFFFC) == NULL);
			CHECK(tail != NULL && tail->len == 4 && tail->val != NULL && memcmp(tail->val, "tail", 4) == 0);
			CHECK(str_is(&g->ds, 0x7FE10010, "ACME 1.0"));
			{
				const struct dcm_elem *rs = dcm_ds_find(&g->ds, 0x00081140);
				bool nested_gl = t == 0;   /* implicit -> explicit: dropped in items too */
				CHECK(rs != NULL && rs->seq != NULL && rs->seq->n == 1);
				if (rs != NULL && rs->seq != NULL && rs->seq->n == 1)
					CHECK((dcm_ds_find(rs->seq->items[0], 0x00080000) == NULL) == nested_gl);
			}
			for (i = 0; i < nat.f->ds.n; i++) {
				const struct dcm_elem *a = &nat.f->ds.e[i], *b;
				const uint8_t *va = NULL, *vb = NULL;
				bool oa = false, ob = false, same;
				if ((a->tag & 0xFFFFu) == 0 || a->tag == 0xFFFCFFFC)
					continue;
				n++;
				b = dcm_ds_find(&g->ds, a->tag);
				if (b == NULL) {
					fprintf(stderr, "  %08X missing\n", (unsigned)a->tag);
					CHECK(b != NULL);
					continue;
				}
				if (a->seq != NULL) {
					CHECK(b->seq != NULL && b->seq->n == a->seq->n);
					continue;
				}
				same = a->len == b->len && (a->len == 0 || (dcm_elem_value(nat.f, a, &va, &oa) == ERR_OK &&
				                                            dcm_elem_value(g, b, &vb, &ob) == ERR_OK &&
				                                            memcmp(va, vb, a->len) == 0));
				if (!same)
					fprintf(stderr, "  %08X differs\n", (unsigned)a->tag);
				CHECK(same);
				if (oa)
					free((void *)va);
				if (ob)
					free((void *)vb);
			}
			CHECK_EQ_INT(g->ds.n, n + 3);   /* and the sequence, and the two after Pixel Data */
			dcm_file_free(g);
		}
		wbuf_fini(&w);
		close_file(&x);
	}
	close_file(&nat);
}

/* A big endian image of 2.5 MiB of 16-bit pixels (three chunks, the last
 * short), as a Part 10 file pulled piece by piece: the head, each chunk,
 * nothing after; every number swapped. */
TEST(native_big_endian_in_chunks)
{
	enum { ROWS = 1280, COLS = 1024 };
	size_t npx = (size_t)ROWS * COLS, i, pieces = 0;
	uint8_t *pix = malloc(npx * 2);
	struct dcm_file *f = NULL, *g = NULL, *h = NULL;
	struct dcm_transcode *z = NULL;
	struct wbuf be, out;
	struct sink k;
	struct src s, s2;
	struct src_mem m, m2;
	struct dcm_read_opts o;
	struct dcm_write_opts wo;
	struct dcm_errinfo ei;
	const uint8_t *p;
	size_t n;
	char why[256] = "";
	enum err rc;

	wbuf_init(&be, 8 << 20);
	wbuf_init(&out, 8 << 20);
	CHECK(pix != NULL && dcm_file_new(&f) == ERR_OK);
	if (pix == NULL || f == NULL)
		goto out;
	for (i = 0; i < npx; i++) {   /* little endian in memory */
		pix[2 * i] = (uint8_t)(i * 7);
		pix[2 * i + 1] = (uint8_t)(i >> 3);
	}
	CHECK(dcm_ds_set_str(&f->ds, 0x00080016, VR_UI, "1.2.840.10008.5.1.4.1.1.7") == ERR_OK);
	CHECK(dcm_ds_set_str(&f->ds, 0x00080018, VR_UI, "1.2.3.4.5.6") == ERR_OK);
	CHECK(set_us(&f->ds, 0x00280010, ROWS) == ERR_OK && set_us(&f->ds, 0x00280011, COLS) == ERR_OK);
	CHECK(set_us(&f->ds, 0x00280100, 16) == ERR_OK && set_us(&f->ds, 0x00280101, 12) == ERR_OK);
	CHECK(dcm_ds_set(&f->ds, 0x7FE00010, VR_OW, pix, npx * 2) == ERR_OK);
	memset(&wo, 0, sizeof wo);
	wo.ts = ts_of("1.2.840.10008.1.2.2");
	sink_wbuf(&k, &be);
	CHECK(dcm_file_write(f, &wo, &k) == ERR_OK);
	memset(&o, 0, sizeof o);
	o.bulk_threshold = 256;
	src_mem_init(&s, &m, be.p, be.len);
	CHECK(dcm_file_read(&s, &o, &g, &ei) == ERR_OK);
	if (g == NULL)
		goto out;
	CHECK(strcmp(g->ts_uid, "1.2.840.10008.1.2.2") == 0);
	CHECK(dcm_transcode_begin(g, ts_of(EXPLICIT), true, &z, why, sizeof why) == ERR_OK);
	if (z == NULL)
		goto out;
	do {
		rc = dcm_transcode_next(z, &p, &n, why, sizeof why);
		if (rc == ERR_OK && n > 0) {
			wbuf_put(&out, p, n);
			pieces++;
		}
	} while (rc == ERR_OK && n > 0);
	CHECK(rc == ERR_OK);
	CHECK_EQ_INT(pieces, 4);   /* the head, 1 + 1 + 0.5 MiB */
	memset(&o, 0, sizeof o);
	src_mem_init(&s2, &m2, out.p, out.len);
	CHECK(dcm_file_read(&s2, &o, &h, &ei) == ERR_OK);
	if (h != NULL) {
		const struct dcm_elem *e = dcm_ds_find(&h->ds, 0x7FE00010);
		CHECK(strcmp(h->ts_uid, EXPLICIT) == 0);
		CHECK(e != NULL && e->vr == VR_OW && e->len == npx * 2 && e->val != NULL &&
		      memcmp(e->val, pix, npx * 2) == 0);
		CHECK_EQ_INT(us_of(&h->ds, 0x00280010), ROWS);
		CHECK(str_is(&h->meta, 0x00020003, "1.2.3.4.5.6"));
		dcm_file_free(h);
	}
out:
	dcm_transcode_free(z);
	dcm_file_free(g);
	dcm_file_free(f);
	wbuf_fini(&be);
	wbuf_fini(&out);
	free(pix);
}

int main(void)
{
	if (access(PYD "MR_small_RLE.dcm", R_OK) != 0) {
		printf("ok - transcode_test skipped: pydicom test files missing\n");
		return 0;
	}
	RUN(rle_is_the_native_image);
	RUN(part10_pulled);
	RUN(encapsulated_leftovers_left_out);
	RUN(rle_colour_as_its_planar_configuration);
	RUN(jpeg_becomes_rgb_and_says_lossy);
	RUN(refusals_write_nothing);
	RUN(native_reencoded);
	RUN(native_big_endian_in_chunks);
	return TEST_DONE();
}
