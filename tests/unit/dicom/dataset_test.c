/* dataset_test.c: building data sets with every VR, writing them in every
 * native transfer syntax and reading them back; editing; bulk values. Layer:
 * tests. */
#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/json.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

struct vrcase {
	uint32_t tag;
	uint16_t vr;
	const char *val;
	size_t len;
};

/* One element of every VR of PS3.5 (tags chosen with that VR in PS3.6). */
static const struct vrcase cases[] = {
	{ 0x00020016, VR_AE, "STATION1", 8 },
	{ 0x00080005, VR_CS, "ISO_IR 192", 10 },
	{ 0x00080020, VR_DA, "20260101", 8 },
	{ 0x00080030, VR_TM, "101010.123", 10 },
	{ 0x0008002A, VR_DT, "20260101101010", 14 },
	{ 0x00080050, VR_SH, "ACC1", 4 },
	{ 0x00080070, VR_LO, "Maker\\Other", 11 },
	{ 0x00080090, VR_PN, "Doe^John=\xE5\xB1\xB1\xE7\x94\xB0^\xE5\xA4\xAA\xE9\x83\x8E", 21 },
	{ 0x00081190, VR_UR, "https://example.org/x", 21 },
	{ 0x00100010, VR_PN, "M\xC3\xBCller^J\xC3\xBCrgen", 16 },
	{ 0x00101010, VR_AS, "045Y", 4 },
	{ 0x00102180, VR_SH, "Occ", 3 },
	{ 0x00104000, VR_LT, "line one\r\nline two \\ not a separator", 36 },
	{ 0x00180050, VR_DS, "1.25\\-3e2", 9 },
	{ 0x00200013, VR_IS, "42", 2 },
	{ 0x0020000D, VR_UI, "1.2.3.4", 7 },
	{ 0x00204000, VR_LT, "comment", 7 },
	{ 0x00280010, VR_US, "\x00\x02\x01\x00", 4 },
	{ 0x00280106, VR_SS, "\xff\xff", 2 },
	{ 0x00189219, VR_SS, "\x05\x00", 2 },
	{ 0x00209158, VR_LT, "t", 1 },
	{ 0x0040A30A, VR_DS, "3.5", 3 },
	{ 0x00720066, VR_LO, "x", 1 },
	{ 0x0072006E, VR_ST, "short text", 10 },
	{ 0x00720070, VR_UT, "unlimited text", 14 },
	{ 0x00720071, VR_UC, "unlimited\\characters", 20 },
	{ 0x00720072, VR_DS, "1", 1 },
	{ 0x00720074, VR_FD, "\x00\x00\x00\x00\x00\x00\xf0\x3f", 8 },
	{ 0x00720076, VR_FL, "\x00\x00\x80\x3f", 4 },
	{ 0x00720078, VR_UL, "\x01\x00\x00\x00\x02\x00\x00\x00", 8 },
	{ 0x0072007A, VR_US, "\x03\x00", 2 },
	{ 0x0072007C, VR_SL, "\xfe\xff\xff\xff", 4 },
	{ 0x0072007E, VR_SS, "\x80\xff", 2 },
	{ 0x00720080, VR_SQ, NULL, 0 },
	{ 0x00720082, VR_SV, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8 },
	{ 0x00720083, VR_UV, "\x01\x00\x00\x00\x00\x00\x00\x80", 8 },
	{ 0x00209165, VR_AT, "\x10\x00\x10\x00", 4 },
	{ 0x00660023, VR_OW, "\x01\x02\x03\x04", 4 },
	{ 0x00660016, VR_OF, "\x00\x00\x80\x3f", 4 },
	{ 0x00660040, VR_OL, "\x01\x00\x00\x00", 4 },
	{ 0x00640009, VR_OF, "\x00\x00\x00\x40", 4 },
	{ 0x00701A07, VR_OD, "\x00\x00\x00\x00\x00\x00\x00\x40", 8 },
	{ 0x00660129, VR_OV, "\x01\x02\x03\x04\x05\x06\x07\x08", 8 },
	{ 0x00420011, VR_OB, "\x25\x50\x44\x46\x00", 5 },
	{ 0x00091010, VR_UN, "\x01\x02\x03", 3 },
};

static struct dcm_file *build(void)
{
	struct dcm_file *f = NULL;
	struct dcm_elem *sq = NULL;
	struct dcm_ds *item = NULL;
	size_t i;

	if (dcm_file_new(&f) != ERR_OK)
		return NULL;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (cases[i].vr == VR_SQ) {
			if (dcm_ds_set_seq(&f->ds, cases[i].tag, &sq) != ERR_OK ||
			    dcm_seq_add_item(&f->ds, sq, &item) != ERR_OK ||
			    dcm_ds_set_str(item, 0x00081150, VR_UI, "1.2.840.10008.5.1.4.1.1.2") != ERR_OK)
				goto fail;
			continue;
		}
		if (TAG_GROUP(cases[i].tag) == 0x0002)
			continue;
		if (dcm_ds_set(&f->ds, cases[i].tag, cases[i].vr, cases[i].val, cases[i].len) != ERR_OK)
			goto fail;
	}
	if (dcm_ds_set_str(&f->ds, 0x00090010, VR_LO, "DICOMVAULT TEST") != ERR_OK)
		goto fail;
	if (dcm_ds_set_str(&f->ds, 0x00080016, VR_UI, "1.2.840.10008.5.1.4.1.1.7") != ERR_OK ||
	    dcm_ds_set_str(&f->ds, 0x00080018, VR_UI, "2.25.1234") != ERR_OK)
		goto fail;
	return f;
fail:
	dcm_file_free(f);
	return NULL;
}

static struct dcm_file *reread(struct dcm_file *f, const struct dcm_ts *ts, struct wbuf *w, struct src *s,
                               struct src_mem *m, uint32_t bulk)
{
	struct dcm_write_opts wo = { .ts = ts };
	struct dcm_read_opts ro = { .bulk_threshold = bulk };
	struct dcm_errinfo ei;
	struct dcm_file *g = NULL;
	struct sink k;

	sink_wbuf(&k, w);
	if (dcm_file_write(f, &wo, &k) != ERR_OK)
		return NULL;
	src_mem_init(s, m, w->p, w->len);
	if (dcm_file_read(s, &ro, &g, &ei) != ERR_OK) {
		fprintf(stderr, "  reread: offset %llu: %s\n", (unsigned long long)ei.offset, ei.msg);
		return NULL;
	}
	return g;
}

static void same_values(struct dcm_file *a, struct dcm_file *b, bool implicit)
{
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct dcm_elem *x, *y;
		const uint8_t *vy = NULL;
		bool owned = false;
		if (TAG_GROUP(cases[i].tag) == 0x0002)
			continue;
		x = dcm_ds_find(&a->ds, cases[i].tag);
		y = dcm_ds_find(&b->ds, cases[i].tag);
		CHECK(x != NULL && y != NULL);
		if (x == NULL || y == NULL)
			continue;
		/* implicit VR: the dictionary's VR (UN for unknown private) */
		CHECK_EQ_INT(y->vr, implicit ? dict_implicit_vr(x->tag) : x->vr);
		if (x->vr == VR_SQ) {
			CHECK(y->seq != NULL && y->seq->n == 1);
			continue;
		}
		CHECK_EQ_INT(y->len, x->len);
		CHECK(dcm_elem_value(b, y, &vy, &owned) == ERR_OK);
		if (vy != NULL && x->len == y->len)
			CHECK(memcmp(x->val, vy, x->len) == 0);
		if (owned)
			free((void *)(uintptr_t)vy);
	}
}

static void roundtrip(const struct dcm_ts *ts, uint32_t bulk)
{
	struct dcm_file *f = build(), *g;
	struct wbuf w;
	struct src s;
	struct src_mem m;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	wbuf_init(&w, 1 << 20);
	g = reread(f, ts, &w, &s, &m, bulk);
	CHECK(g != NULL);
	if (g != NULL) {
		CHECK(g->ts == ts);
		CHECK(g->has_meta && g->has_preamble);
		same_values(f, g, !ts->explicit_vr);
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	dcm_file_free(f);
}

TEST(every_vr_explicit_le) { roundtrip(DCM_TS_EXPLICIT_LE, 0); }
TEST(every_vr_implicit_le) { roundtrip(DCM_TS_IMPLICIT_LE, 0); }
TEST(every_vr_explicit_be) { roundtrip(DCM_TS_EXPLICIT_BE, 0); }
TEST(every_vr_explicit_be_bulk) { roundtrip(DCM_TS_EXPLICIT_BE, 2); }
TEST(every_vr_deflated) { roundtrip(DCM_TS_DEFLATED_LE, 0); }

/* A deflated data set is inflated whole into memory: one that would
 * inflate past DCM_MAX_INFLATED (zeros: a few hundred KB deflated) is
 * refused, one just under it read. */
TEST(deflate_bomb_refused)
{
	size_t sizes[2] = { (size_t)DCM_MAX_INFLATED - (1u << 20), (size_t)DCM_MAX_INFLATED + (1u << 20) };
	unsigned i;

	for (i = 0; i < 2; i++) {
		struct dcm_file *f = build(), *g = NULL;
		uint8_t *zeros = calloc(sizes[i], 1);
		struct wbuf w;
		struct src s;
		struct src_mem m;
		CHECK(f != NULL && zeros != NULL);
		if (f == NULL || zeros == NULL) {
			free(zeros);
			dcm_file_free(f);
			continue;
		}
		CHECK(dcm_ds_set(&f->ds, 0x7FE00010, VR_OB, zeros, sizes[i]) == ERR_OK);
		free(zeros);
		wbuf_init(&w, (size_t)8 << 20);
		g = reread(f, DCM_TS_DEFLATED_LE, &w, &s, &m, 0);
		CHECK(w.len < ((size_t)1 << 20));   /* it was a small file */
		if (i == 0)
			CHECK(g != NULL);
		else
			CHECK(g == NULL);
		dcm_file_free(g);
		wbuf_fini(&w);
		dcm_file_free(f);
	}
}
TEST(every_vr_bulk) { roundtrip(DCM_TS_EXPLICIT_LE, 2); }

/* Writing what we read, unchanged, with keep_meta gives the same bytes. */
TEST(byte_identical)
{
	struct dcm_file *f = build(), *g;
	struct dcm_write_opts wo = { .keep_meta = true };
	struct wbuf w, w2;
	struct src s;
	struct src_mem m;
	struct sink k;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	wbuf_init(&w, 1 << 20);
	wbuf_init(&w2, 1 << 20);
	g = reread(f, NULL, &w, &s, &m, 0);
	CHECK(g != NULL);
	if (g != NULL) {
		sink_wbuf(&k, &w2);
		CHECK(dcm_file_write(g, &wo, &k) == ERR_OK);
		CHECK_EQ_INT(w2.len, w.len);
		CHECK(w2.len == w.len && memcmp(w.p, w2.p, w.len) == 0);
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	wbuf_fini(&w2);
	dcm_file_free(f);
}

TEST(meta_group)
{
	struct dcm_file *f = build(), *g;
	struct wbuf w;
	struct src s;
	struct src_mem m;
	char buf[80];
	const struct dcm_elem *gl;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	wbuf_init(&w, 1 << 20);
	g = reread(f, DCM_TS_EXPLICIT_LE, &w, &s, &m, 0);
	CHECK(g != NULL);
	if (g != NULL) {
		CHECK(dcm_ds_get_cstr(&g->meta, 0x00020012, buf, sizeof buf) == ERR_OK);
		CHECK_EQ_STR(buf, DCM_IMPL_CLASS_UID);
		CHECK(dcm_ds_get_cstr(&g->meta, 0x00020013, buf, sizeof buf) == ERR_OK);
		CHECK_EQ_STR(buf, DCM_IMPL_VERSION);
		CHECK(dcm_ds_get_cstr(&g->meta, 0x00020003, buf, sizeof buf) == ERR_OK);
		CHECK_EQ_STR(buf, "2.25.1234");
		CHECK(dcm_ds_get_cstr(&g->meta, 0x00020010, buf, sizeof buf) == ERR_OK);
		CHECK_EQ_STR(buf, "1.2.840.10008.1.2.1");
		gl = dcm_ds_find(&g->meta, 0x00020000);
		/* the group length counts the bytes after itself up to the data set */
		CHECK(gl != NULL && gl->len == 4 && load_u32le(gl->val) == g->ds_off - 132 - 12);
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	dcm_file_free(f);
}

TEST(editing)
{
	struct dcm_file *f = NULL;
	char buf[16];
	uint16_t v = 0;

	CHECK(dcm_file_new(&f) == ERR_OK);
	if (f == NULL)
		return;
	CHECK(dcm_ds_set_str(&f->ds, 0x00100020, VR_LO, "ID1") == ERR_OK);
	CHECK(dcm_ds_set_str(&f->ds, 0x00100010, VR_PN, "A^B") == ERR_OK);
	CHECK(dcm_ds_set_str(&f->ds, 0x00080060, VR_CS, "CT") == ERR_OK);
	CHECK(dcm_ds_set(&f->ds, 0x00280010, VR_US, "\x00\x02", 2) == ERR_OK);
	CHECK_EQ_INT(f->ds.n, 4);
	CHECK(f->ds.e[0].tag == 0x00080060 && f->ds.e[3].tag == 0x00280010);  /* sorted */
	CHECK(dcm_ds_get_cstr(&f->ds, 0x00100020, buf, sizeof buf) == ERR_OK);
	CHECK_EQ_STR(buf, "ID1");   /* padding removed */
	CHECK_EQ_INT(dcm_ds_find(&f->ds, 0x00100020)->len, 4);  /* padded to even */
	CHECK(dcm_ds_get_u16(&f->ds, 0x00280010, &v) == ERR_OK && v == 512);
	CHECK(dcm_ds_set_str(&f->ds, 0x00100020, VR_LO, "ID22") == ERR_OK);   /* replace */
	CHECK_EQ_INT(f->ds.n, 4);
	dcm_ds_remove(&f->ds, 0x00100010);
	CHECK_EQ_INT(f->ds.n, 3);
	CHECK(dcm_ds_find(&f->ds, 0x00100010) == NULL);
	CHECK(dcm_ds_get_cstr(&f->ds, 0x00100010, buf, sizeof buf) == ERR_NOTFOUND);
	CHECK(dcm_ds_get_cstr(&f->ds, 0x00080060, buf, 2) == ERR_LIMIT);
	dcm_file_free(f);
}

TEST(encapsulated_roundtrip)
{
	struct dcm_file *f = NULL, *g;
	struct dcm_elem *px = NULL;
	struct wbuf w;
	struct src s;
	struct src_mem m;
	const struct dcm_ts *jpeg = dict_ts("1.2.840.10008.1.2.4.50", 22);

	CHECK(dcm_file_new(&f) == ERR_OK && jpeg != NULL);
	if (f == NULL || jpeg == NULL)
		return;
	f->ts = jpeg;
	CHECK(dcm_ds_set(&f->ds, TAG_PIXEL_DATA, VR_OB, NULL, 0) == ERR_OK);
	px = dcm_ds_find(&f->ds, TAG_PIXEL_DATA);
	CHECK(px != NULL);
	if (px == NULL)
		goto out;
	CHECK(dcm_elem_add_frag(&f->ds, px, "", 0) == ERR_OK);            /* empty offset table */
	CHECK(dcm_elem_add_frag(&f->ds, px, "\xff\xd8\xff\xd9", 4) == ERR_OK);
	CHECK(dcm_elem_add_frag(&f->ds, px, "abc", 3) == ERR_OK);          /* padded */
	wbuf_init(&w, 1 << 20);
	g = reread(f, NULL, &w, &s, &m, 0);
	CHECK(g != NULL);
	if (g != NULL) {
		const struct dcm_elem *e = dcm_ds_find(&g->ds, TAG_PIXEL_DATA);
		CHECK(g->ts == jpeg);
		CHECK(e != NULL && (e->flags & DCM_EF_ENCAPS) && e->seq->nfrags == 3);
		if (e != NULL && e->seq != NULL && e->seq->nfrags == 3) {
			CHECK_EQ_INT(e->seq->frags[0].len, 0);
			CHECK_EQ_INT(e->seq->frags[1].len, 4);
			CHECK_EQ_INT(e->seq->frags[2].len, 4);
			CHECK(memcmp(e->seq->frags[1].val, "\xff\xd8\xff\xd9", 4) == 0);
		}
		/* encapsulated pixel data is never transcoded */
		{
			struct dcm_write_opts wo = { .ts = DCM_TS_EXPLICIT_LE };
			struct wbuf w2;
			struct sink k;
			wbuf_init(&w2, 1 << 20);
			sink_wbuf(&k, &w2);
			CHECK(dcm_file_write(g, &wo, &k) == ERR_UNSUPPORTED);
			wbuf_fini(&w2);
		}
		dcm_file_free(g);
	}
	wbuf_fini(&w);
out:
	dcm_file_free(f);
}

int main(void)
{
	RUN(every_vr_explicit_le);
	RUN(every_vr_implicit_le);
	RUN(every_vr_explicit_be);
	RUN(every_vr_explicit_be_bulk);
	RUN(every_vr_deflated);
	RUN(deflate_bomb_refused);
	RUN(every_vr_bulk);
	RUN(byte_identical);
	RUN(meta_group);
	RUN(editing);
	RUN(encapsulated_roundtrip);
	return TEST_DONE();
}
