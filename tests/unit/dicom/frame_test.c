/* frame_test.c: dicom/frame.c on the generated seeds of fuzz/corpus/frame
 * (fuzz/corpus/gen_frame.py): how frames are located in each layout, the
 * errors of the broken ones, 1-bit frames re-aligned bit by bit, big
 * endian frames swapped, and the same frames found whatever the table
 * (Basic, Extended, none with end-of-image markers, one fragment each),
 * with values in memory and left in the source. Run from the repository
 * root (tests/run.sh does). Layer: tests. */
#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/frame.h"
#include "dicomvault/io.h"

#define DIR "fuzz/corpus/frame/"

struct img {
	uint8_t *data;
	size_t len;
	struct src s;
	struct src_mem m;
	struct dcm_file *f;
	struct dcm_frames fr;
	enum err rc;
	char why[256];
};

static int img_open(struct img *im, const char *name, uint32_t bulk)
{
	char path[256];
	struct dcm_read_opts o;
	struct dcm_errinfo ei;

	memset(im, 0, sizeof *im);
	snprintf(path, sizeof path, DIR "%s", name);
	if (file_read_all(path, 1 << 20, &im->data, &im->len) != ERR_OK) {
		fprintf(stderr, "  cannot read %s\n", path);
		return -1;
	}
	memset(&o, 0, sizeof o);
	o.bulk_threshold = bulk;
	src_mem_init(&im->s, &im->m, im->data, im->len);
	if (dcm_file_read(&im->s, &o, &im->f, &ei) != ERR_OK) {
		fprintf(stderr, "  %s does not parse: %s\n", path, ei.msg);
		free(im->data);
		return -1;
	}
	im->rc = dcm_frames_init(im->f, &im->fr, im->why, sizeof im->why);
	return 0;
}

static void img_close(struct img *im)
{
	dcm_frames_fini(&im->fr);
	dcm_file_free(im->f);
	free(im->data);
}

/* Frame i whole, in a buffer the caller frees. */
static uint8_t *frame(struct img *im, uint32_t i, uint64_t *size)
{
	uint8_t *b;

	*size = dcm_frame_size(&im->fr, i);
	b = malloc(*size + 1);
	if (b != NULL && dcm_frame_read(&im->fr, i, 0, b, *size) != ERR_OK) {
		free(b);
		return NULL;
	}
	return b;
}

static void expect_error(const char *name, enum err want)
{
	struct img im;

	if (img_open(&im, name, 0) != 0) {
		CHECK(0);
		return;
	}
	if (im.rc != want)
		fprintf(stderr, "  %s: %s (%s)\n", name, err_str(im.rc), im.why);
	CHECK_EQ_INT(im.rc, want);
	CHECK(im.why[0] != 0);
	img_close(&im);
}

TEST(broken_layouts_are_refused)
{
	expect_error("gen_bad_bot_between_fragments.dcm", ERR_PARSE);
	expect_error("gen_bad_bot_count.dcm", ERR_PARSE);
	expect_error("gen_bad_native_short.dcm", ERR_PARSE);
	expect_error("gen_bad_nframes_zero.dcm", ERR_PARSE);
	expect_error("gen_bad_rle_ambiguous.dcm", ERR_UNSUPPORTED);
	expect_error("gen_bad_nobot_no_eoi.dcm", ERR_UNSUPPORTED);
}

TEST(empty_number_of_frames_is_one)
{
	struct img im;

	if (img_open(&im, "gen_bad_nframes_empty.dcm", 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(im.rc, ERR_OK);
	CHECK_EQ_INT(im.fr.n, 1);
	img_close(&im);
}

/* Bit b of a little-endian bit string (PS3.5 8.1.1: first pixel in the
 * least significant bit). */
static int bit(const uint8_t *p, uint64_t b)
{
	return (p[b / 8] >> (b % 8)) & 1;
}

TEST(one_bit_frames_are_realigned)
{
	struct img im;
	const struct dcm_elem *px;
	uint32_t i, j;

	if (img_open(&im, "gen_native_1bit_unaligned.dcm", 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(im.rc, ERR_OK);
	CHECK_EQ_INT(im.fr.n, 3);
	CHECK_EQ_INT(im.fr.bits, 25);
	px = im.fr.pixel;
	for (i = 0; i < im.fr.n && im.rc == ERR_OK; i++) {
		uint64_t size = 0;
		uint8_t *b = frame(&im, i, &size);
		CHECK(b != NULL);
		CHECK_EQ_INT(size, 4);
		for (j = 0; b != NULL && j < 32; j++)
			CHECK_EQ_INT(bit(b, j), j < 25 ? bit(px->val, (uint64_t)i * 25 + j) : 0);
		free(b);
	}
	img_close(&im);
}

TEST(native_odd_frame_sizes)
{
	struct img im;
	uint64_t size = 0;
	uint8_t *b;

	if (img_open(&im, "gen_native_8bit_odd_frames.dcm", 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(im.rc, ERR_OK);
	CHECK_EQ_INT(im.fr.n, 3);
	b = frame(&im, 2, &size);
	CHECK_EQ_INT(size, 9);
	CHECK(b != NULL && memcmp(b, im.fr.pixel->val + 18, 9) == 0);
	free(b);
	img_close(&im);
}

TEST(big_endian_frames_are_little_endian)
{
	struct img mem, bulk;
	uint64_t s1 = 0, s2 = 0;
	uint8_t *a, *b;

	/* in memory the reader has swapped the value already; in the source
	 * frame.c swaps it: the two must agree */
	if (img_open(&mem, "gen_native_32bit_big_endian.dcm", 0) != 0 ||
	    img_open(&bulk, "gen_native_32bit_big_endian.dcm", 8) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(mem.rc, ERR_OK);
	CHECK_EQ_INT(bulk.rc, ERR_OK);
	CHECK((bulk.fr.pixel->flags & DCM_EF_BULK) != 0);
	CHECK_EQ_INT(bulk.fr.swap, 4);
	a = frame(&mem, 1, &s1);
	b = frame(&bulk, 1, &s2);
	CHECK_EQ_INT(s1, 16);
	CHECK(a != NULL && b != NULL && s1 == s2 && memcmp(a, b, s1) == 0);
	/* and they are the source's bytes reversed by 4 */
	CHECK(b != NULL && b[0] == bulk.data[bulk.fr.pixel->bulk_off + 16 + 3] &&
	      b[3] == bulk.data[bulk.fr.pixel->bulk_off + 16]);
	free(a);
	free(b);
	img_close(&mem);
	img_close(&bulk);
}

TEST(ybr422_frames_are_two_thirds)
{
	struct img im;

	if (img_open(&im, "gen_native_ybr422.dcm", 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(im.rc, ERR_OK);
	CHECK_EQ_INT(dcm_frame_size(&im.fr, 0), 8);
	img_close(&im);
}

TEST(encapsulated_tables_agree)
{
	static const char *const names[] = { "gen_jpeg_bot.dcm", "gen_jpeg_nobot_eoi.dcm", "gen_jpeg_eot.dcm",
		                             "gen_jpeg_one_per_frame.dcm" };
	static const char *const how[] = { "Basic Offset Table", "end-of-image markers (no offset table)",
		                           "Extended Offset Table", "one fragment per frame" };
	struct img ref;
	unsigned k, bulk;
	uint32_t i;

	if (img_open(&ref, names[0], 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(ref.rc, ERR_OK);
	CHECK_EQ_INT(ref.fr.n, 3);
	for (k = 0; k < 4; k++) {
		for (bulk = 0; bulk < 2; bulk++) {
			struct img im;
			if (img_open(&im, names[k], bulk ? 16 : 0) != 0) {
				CHECK(0);
				continue;
			}
			CHECK_EQ_INT(im.rc, ERR_OK);
			CHECK_EQ_STR(im.fr.how, how[k]);
			for (i = 0; i < 3 && im.rc == ERR_OK; i++) {
				uint64_t s1 = 0, s2 = 0;
				uint8_t *a = frame(&ref, i, &s1), *b = frame(&im, i, &s2);
				CHECK(a != NULL && b != NULL && s1 == s2 && memcmp(a, b, s1) == 0);
				/* each frame is one JPEG stream */
				CHECK(b != NULL && s2 > 4 && b[0] == 0xFF && b[1] == 0xD8 && b[s2 - 2] == 0xFF &&
				      b[s2 - 1] == 0xD9);
				free(a);
				free(b);
			}
			img_close(&im);
		}
	}
	img_close(&ref);
}

TEST(one_frame_in_all_fragments)
{
	struct img im;
	uint64_t size = 0;
	uint8_t *b;

	if (img_open(&im, "gen_jpeg_one_frame_many_fragments.dcm", 0) != 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(im.rc, ERR_OK);
	CHECK_EQ_INT(im.fr.n, 1);
	b = frame(&im, 0, &size);
	CHECK_EQ_INT(size, im.fr.pixel->seq->frags[1].len + im.fr.pixel->seq->frags[2].len +
	                       im.fr.pixel->seq->frags[3].len);
	CHECK(b != NULL && memcmp(b, im.fr.pixel->seq->frags[1].val, im.fr.pixel->seq->frags[1].len) == 0);
	free(b);
	img_close(&im);
}

TEST(no_pixel_data)
{
	struct dcm_file *f = NULL;
	struct dcm_frames fr;
	char why[128];

	CHECK(dcm_file_new(&f) == ERR_OK);
	if (f == NULL)
		return;
	CHECK(dcm_ds_set_str(&f->ds, 0x00100010, VR_PN, "X") == ERR_OK);
	CHECK_EQ_INT(dcm_frames_init(f, &fr, why, sizeof why), ERR_NOTFOUND);
	dcm_frames_fini(&fr);
	dcm_file_free(f);
}

int main(void)
{
	RUN(broken_layouts_are_refused);
	RUN(empty_number_of_frames_is_one);
	RUN(one_bit_frames_are_realigned);
	RUN(native_odd_frame_sizes);
	RUN(big_endian_frames_are_little_endian);
	RUN(ybr422_frames_are_two_thirds);
	RUN(encapsulated_tables_agree);
	RUN(one_frame_in_all_fragments);
	RUN(no_pixel_data);
	return TEST_DONE();
}
