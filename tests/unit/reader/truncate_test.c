/* truncate_test.c: the Part 10 reader (dicom/reader.c, dicom/dataset.c) on
 * truncated and hand-made hostile input, and byte-identical write back.
 *
 * 1. Every prefix of several pydicom test files (every transfer syntax kind,
 *    sequences, UN, private sequences) is read three ways (all in memory,
 *    bulk values left in the source, strict; the last two sample the cuts
 *    inside large values). A prefix that ends exactly at
 *    an element boundary of the top-level data set is a valid shorter data
 *    set and may be read; any other prefix must fail with ERR_PARSE or
 *    ERR_LIMIT, a message, and an offset inside the prefix. The prefix is
 *    copied into a buffer of exactly its length so that ASan sees any
 *    read past it.
 * 2. Hand-made files: a length past the end, undefined length on US and UT,
 *    nesting 40 deep, odd lengths (warning, or error when strict), items and
 *    delimiters at top level, unknown and invalid VRs, a US of 60000 values.
 * 3. Files read and written with keep_meta come back byte for byte.
 * Layer: tests. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"

#define PYDICOM "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

/* ---- helpers ---- */

struct blob {
	uint8_t *p;
	size_t n;
};

static bool load(const char *name, struct blob *b)
{
	char path[512];

	snprintf(path, sizeof path, "%s%s", PYDICOM, name);
	b->p = NULL;
	b->n = 0;
	if (file_read_all(path, (size_t)64 << 20, &b->p, &b->n) != ERR_OK) {
		printf("# skipped %s (not installed)\n", path);
		return false;
	}
	return true;
}

/* Reads len bytes of p; *f is set on success (caller frees). */
static enum err read_mem(const uint8_t *p, size_t len, uint32_t bulk, bool strict, struct dcm_file **f,
                         struct dcm_errinfo *ei, struct src *s, struct src_mem *m)
{
	struct dcm_read_opts o = { 0 };

	o.bulk_threshold = bulk;
	o.strict = strict;
	src_mem_init(s, m, p, len);
	return dcm_file_read(s, &o, f, ei);
}

/* Offsets at which a prefix of the file is itself a complete file: the
 * start of every top-level meta and data set element, and the end. */
struct bounds {
	uint64_t *off;
	size_t n;
};

static void bounds_add(struct bounds *bd, uint64_t off)
{
	bd->off[bd->n++] = off;
}

static bool bounds_has(const struct bounds *bd, uint64_t off)
{
	size_t i;

	for (i = 0; i < bd->n; i++)
		if (bd->off[i] == off)
			return true;
	return false;
}

static bool bounds_init(struct bounds *bd, const struct blob *b)
{
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	uint32_t i;

	bd->off = NULL;
	bd->n = 0;
	if (read_mem(b->p, b->n, 0, false, &f, &ei, &s, &m) != ERR_OK) {
		fprintf(stderr, "  full file does not read: %s\n", ei.msg);
		return false;
	}
	bd->off = calloc((size_t)f->meta.n + f->ds.n + 2, sizeof *bd->off);
	if (bd->off == NULL) {
		dcm_file_free(f);
		return false;
	}
	for (i = 0; i < f->meta.n; i++)
		bounds_add(bd, f->meta.e[i].off);
	bounds_add(bd, f->ds_off);
	for (i = 0; i < f->ds.n; i++)
		bounds_add(bd, f->ds.e[i].off);
	bounds_add(bd, b->n);
	dcm_file_free(f);
	return true;
}

/* Cuts inside one large top-level element (pixel data, the deflated
 * stream) all take the same path; the bulk and strict passes sample them
 * (64 offsets at each end, every 61st between) to keep the test fast under
 * ASan. The in-memory pass tries every offset. */
static bool exhaustive_here(const struct bounds *bd, uint64_t len)
{
	uint64_t lo = 0, hi = UINT64_MAX;
	size_t i;

	for (i = 0; i < bd->n; i++) {
		if (bd->off[i] <= len && bd->off[i] >= lo)
			lo = bd->off[i];
		if (bd->off[i] > len && bd->off[i] < hi)
			hi = bd->off[i];
	}
	if (hi == UINT64_MAX || hi - lo <= 1024)
		return true;
	return len - lo < 64 || hi - len <= 64 || (len - lo) % 61 == 0;
}

struct trunc_stats {
	size_t ok, failed;
};

/* Reads the first len bytes of b, from an exact-size copy. */
static void truncated_once(const struct blob *b, size_t len, uint32_t bulk, bool strict, const struct bounds *bd,
                           bool deflated, struct trunc_stats *st)
{
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	uint8_t *copy = malloc(len ? len : 1);
	enum err rc;

	if (copy == NULL) {
		CHECK(copy != NULL);
		return;
	}
	memcpy(copy, b->p, len);
	memset(&ei, 0x5A, sizeof ei);
	rc = read_mem(copy, len, bulk, strict, &f, &ei, &s, &m);
	if (rc == ERR_OK) {
		st->ok++;
		/* a shorter complete file: only at a top-level boundary (a prefix
		 * of the preamble reads as a bare data set of zeros; a cut in a
		 * deflate stream ends the inflated data set anywhere) */
		if (len > 132 && !deflated && !bounds_has(bd, len)) {
			fprintf(stderr, "  %zu-byte prefix (bulk %u, strict %d) read although it cuts an element\n", len,
			        bulk, strict);
			t_failed_now = 1;
		}
		/* values in the source are past the prefix: they must not be used */
		dcm_file_free(f);
	} else {
		st->failed++;
		if (rc != ERR_PARSE && rc != ERR_LIMIT) {
			fprintf(stderr, "  %zu-byte prefix: unexpected %s\n", len, err_str(rc));
			t_failed_now = 1;
		}
		if (memchr(ei.msg, 0, sizeof ei.msg) == NULL || ei.msg[0] == 0) {
			fprintf(stderr, "  %zu-byte prefix: error without a message\n", len);
			t_failed_now = 1;
		} else if (!ei.inflated && ei.offset > len) {
			fprintf(stderr, "  %zu-byte prefix: error offset %llu past the data: %s\n", len,
			        (unsigned long long)ei.offset, ei.msg);
			t_failed_now = 1;
		}
	}
	free(copy);
}

static void truncate_file(const char *name, bool deflated)
{
	struct blob b;
	struct bounds bd;
	struct trunc_stats st[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };
	size_t len;

	if (!load(name, &b))
		return;
	if (!bounds_init(&bd, &b)) {
		CHECK(!"the whole file reads");
		free(b.p);
		return;
	}
	for (len = 0; len < b.n; len++) {
		truncated_once(&b, len, 0, false, &bd, deflated, &st[0]);
		if (exhaustive_here(&bd, len)) {
			truncated_once(&b, len, 16, false, &bd, deflated, &st[1]);
			truncated_once(&b, len, 0, true, &bd, deflated, &st[2]);
		}
		if (t_failed_now)
			break;  /* one report per file is enough */
	}
	printf("# %s: %zu prefixes: %zu/%zu/%zu read, %zu/%zu/%zu failed (in memory/bulk/strict)\n", name, b.n,
	       st[0].ok, st[1].ok, st[2].ok, st[0].failed, st[1].failed, st[2].failed);
	/* most cuts land inside an element */
	CHECK(st[0].failed > b.n / 2);
	CHECK(st[1].failed > (st[1].ok + st[1].failed) / 2);
	CHECK(st[2].failed > (st[2].ok + st[2].failed) / 2);
	/* strict refuses what lenient reads with a warning, never the reverse */
	CHECK(st[2].ok <= st[0].ok);
	free(bd.off);
	free(b.p);
}

/* ---- 1. every truncation ---- */

TEST(truncate_ct_small) { truncate_file("CT_small.dcm", false); }
TEST(truncate_rtplan) { truncate_file("rtplan.dcm", false); }
TEST(truncate_mr_small_bigendian) { truncate_file("MR_small_bigendian.dcm", false); }
TEST(truncate_image_dfl_deflated) { truncate_file("image_dfl.dcm", true); }
TEST(truncate_jpeg2000_encapsulated) { truncate_file("JPEG2000.dcm", false); }
TEST(truncate_un_sequence) { truncate_file("UN_sequence.dcm", false); }
TEST(truncate_nested_priv_sq) { truncate_file("nested_priv_SQ.dcm", false); }

/* ---- 2. hand-made input ---- */

struct bb {
	uint8_t p[4096];
	size_t n;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
	if (n > sizeof b->p - b->n) {
		fprintf(stderr, "  test buffer too small\n");
		abort();
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void bb_u16(struct bb *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	bb_put(b, x, 2);
}

static void bb_u32(struct bb *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	bb_put(b, x, 4);
}

static void bb_tag(struct bb *b, uint32_t tag)
{
	bb_u16(b, (uint16_t)(tag >> 16));
	bb_u16(b, (uint16_t)tag);
}

/* Explicit VR LE header with a 16-bit length. */
static void bb_short(struct bb *b, uint32_t tag, const char *vr, uint16_t len)
{
	bb_tag(b, tag);
	bb_put(b, vr, 2);
	bb_u16(b, len);
}

/* Explicit VR LE header with a 32-bit length (OB, SQ, UT...). */
static void bb_long(struct bb *b, uint32_t tag, const char *vr, uint32_t len)
{
	bb_tag(b, tag);
	bb_put(b, vr, 2);
	bb_u16(b, 0);
	bb_u32(b, len);
}

/* Preamble, magic and a meta group with just the transfer syntax. */
static void bb_part10(struct bb *b, const char *ts)
{
	size_t n = strlen(ts);
	uint8_t zero[128];

	memset(zero, 0, sizeof zero);
	b->n = 0;
	bb_put(b, zero, sizeof zero);
	bb_put(b, "DICM", 4);
	bb_short(b, 0x00020010, "UI", (uint16_t)(n + (n & 1)));
	bb_put(b, ts, n);
	if (n & 1)
		bb_put(b, "", 1);
	/* a first element so that every file has some content */
	bb_short(b, 0x00080060, "CS", 2);
	bb_put(b, "OT", 2);
}

#define TS_EXPLICIT "1.2.840.10008.1.2.1"
#define TS_IMPLICIT "1.2.840.10008.1.2"

struct result {
	enum err rc;
	struct dcm_errinfo ei;
	unsigned nwarn;
	char warn[200];
	struct dcm_file *f;
};

/* Reads b (exact-size copy); keeps the file in r->f (freed by done()). */
static void try_read(const struct bb *b, bool strict, struct result *r)
{
	struct dcm_read_opts o = { 0 };
	struct src_mem m;
	struct src s;
	uint8_t *copy = malloc(b->n ? b->n : 1);

	memset(r, 0, sizeof *r);
	if (copy == NULL) {
		r->rc = ERR_NOMEM;
		return;
	}
	memcpy(copy, b->p, b->n);
	o.strict = strict;
	src_mem_init(&s, &m, copy, b->n);
	r->rc = dcm_file_read(&s, &o, &r->f, &r->ei);
	if (r->rc == ERR_OK) {
		r->nwarn = r->f->nwarn;
		snprintf(r->warn, sizeof r->warn, "%s", r->f->warn.msg);
	}
	free(copy);  /* bulk_threshold 0: nothing refers to the source */
}

static void done(struct result *r)
{
	dcm_file_free(r->f);
	r->f = NULL;
}

/* Expect failure rc at offset off with a message containing what. */
static void expect_error(const struct bb *b, bool strict, enum err rc, uint64_t off, const char *what)
{
	struct result r;

	try_read(b, strict, &r);
	CHECK_EQ_INT(r.rc, rc);
	if (r.rc != ERR_OK) {
		CHECK_EQ_INT(r.ei.offset, off);
		if (strstr(r.ei.msg, what) == NULL) {
			fprintf(stderr, "  message \"%s\" does not mention \"%s\"\n", r.ei.msg, what);
			t_failed_now = 1;
		}
	}
	done(&r);
}

TEST(length_past_end)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_short(&b, 0x00081030, "LO", 200);
	bb_put(&b, "short", 6);
	expect_error(&b, false, ERR_PARSE, off, "past the end");
}

TEST(length_past_enclosing_item)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00081032, "SQ", 8 + 8 + 4);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 8 + 4);
	off = b.n;
	bb_short(&b, 0x00080100, "SH", 6);  /* 6 > the 4 bytes left in the item */
	bb_put(&b, "ABCDEF", 6);
	expect_error(&b, false, ERR_PARSE, off, "item");
}

TEST(undefined_length_on_us_implicit)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_IMPLICIT);
	b.n -= 10;  /* drop the explicit first element */
	bb_tag(&b, 0x00080060);
	bb_u32(&b, 2);
	bb_put(&b, "OT", 2);
	off = b.n;
	bb_tag(&b, 0x00280010);  /* Rows, US */
	bb_u32(&b, DCM_UNDEF);
	bb_u16(&b, 1);
	expect_error(&b, false, ERR_PARSE, off, "undefined length");
}

TEST(undefined_length_on_ut)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_long(&b, 0x0040A160, "UT", DCM_UNDEF);
	bb_put(&b, "text", 4);
	expect_error(&b, false, ERR_PARSE, off, "undefined length");
}

TEST(us_ffff_length_explicit)
{
	/* 0xFFFF is a real 16-bit length, not "undefined": past the end here */
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_short(&b, 0x00280010, "US", 0xFFFF);
	bb_u16(&b, 1);
	expect_error(&b, false, ERR_PARSE, off, "past the end");
}

/* depth Content Sequences, each holding one item, all of undefined length
 * (20 header bytes per level). */
static void nest(struct bb *b, unsigned depth)
{
	unsigned i;

	for (i = 0; i < depth; i++) {
		bb_long(b, 0x0040A730, "SQ", DCM_UNDEF);
		bb_tag(b, 0xFFFEE000);
		bb_u32(b, DCM_UNDEF);
	}
	bb_short(b, 0x0040A010, "CS", 8);
	bb_put(b, "CONTAINS", 8);
	for (i = 0; i < depth; i++) {
		bb_tag(b, 0xFFFEE00D);
		bb_u32(b, 0);
		bb_tag(b, 0xFFFEE0DD);
		bb_u32(b, 0);
	}
}

TEST(nesting_40_deep)
{
	struct bb b;
	size_t start;

	bb_part10(&b, TS_EXPLICIT);
	start = b.n;
	nest(&b, 40);
	/* the 33rd sequence header is refused */
	expect_error(&b, false, ERR_LIMIT, start + (size_t)DCM_MAX_DEPTH * 20, "nested");
}

TEST(nesting_at_the_limit)
{
	struct bb b;
	struct result r;

	bb_part10(&b, TS_EXPLICIT);
	nest(&b, DCM_MAX_DEPTH);
	try_read(&b, true, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	done(&r);
}

TEST(odd_length_warns_or_fails_when_strict)
{
	struct bb b;
	struct result r;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_short(&b, 0x00081030, "LO", 5);
	bb_put(&b, "ABCDE", 5);
	bb_short(&b, 0x00100010, "PN", 4);
	bb_put(&b, "A^B ", 4);
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	CHECK_EQ_INT(r.nwarn, 1);
	CHECK(strstr(r.warn, "odd") != NULL);
	if (r.f != NULL) {
		CHECK_EQ_INT(r.f->warn.offset, off);
		CHECK(dcm_ds_find(&r.f->ds, 0x00100010) != NULL);  /* read on after it */
	}
	done(&r);
	expect_error(&b, true, ERR_PARSE, off, "odd");
}

TEST(item_at_top_level)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 0);
	expect_error(&b, false, ERR_PARSE, off, "item");
}

TEST(delimiters_at_top_level)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_tag(&b, 0xFFFEE0DD);
	bb_u32(&b, 0);
	expect_error(&b, false, ERR_PARSE, off, "sequence delimiter");
	bb_part10(&b, TS_EXPLICIT);
	bb_tag(&b, 0xFFFEE00D);
	bb_u32(&b, 0);
	expect_error(&b, false, ERR_PARSE, off, "item delimiter");
}

TEST(unknown_vr)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_short(&b, 0x00081030, "ZZ", 2);
	bb_put(&b, "ab", 2);
	expect_error(&b, false, ERR_PARSE, off, "unknown VR");
}

TEST(invalid_vr_bytes)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	off = b.n;
	bb_short(&b, 0x00081030, "l\x01", 2);
	bb_put(&b, "ab", 2);
	expect_error(&b, false, ERR_PARSE, off, "VR");
}

TEST(sequence_item_wrong_tag)
{
	struct bb b;
	size_t off;

	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00081032, "SQ", DCM_UNDEF);
	off = b.n;
	bb_short(&b, 0x00080100, "SH", 2);  /* an element where an item belongs */
	bb_put(&b, "AB", 2);
	expect_error(&b, false, ERR_PARSE, off, "expected an item");
}

TEST(us_with_60000_values_implicit)
{
	uint8_t *p;
	size_t n = 8 + 60000 * 2, i;
	struct src_mem m;
	struct src s;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct dcm_read_opts o = { 0 };
	struct dcm_elem *e;
	enum err rc;

	p = malloc(n);
	if (p == NULL) {
		CHECK(p != NULL);
		return;
	}
	/* bare implicit VR LE data set: (0028,0010) with 60000 values */
	p[0] = 0x28; p[1] = 0x00; p[2] = 0x10; p[3] = 0x00;
	p[4] = (uint8_t)(60000 * 2); p[5] = (uint8_t)((60000 * 2) >> 8); p[6] = (uint8_t)((60000 * 2) >> 16); p[7] = 0;
	for (i = 0; i < 60000; i++) {
		p[8 + 2 * i] = (uint8_t)i;
		p[9 + 2 * i] = (uint8_t)(i >> 8);
	}
	o.no_meta = true;
	o.ts = NULL;
	src_mem_init(&s, &m, p, n);
	rc = dcm_file_read(&s, &o, &f, &ei);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc == ERR_OK) {
		e = dcm_ds_find(&f->ds, 0x00280010);
		CHECK(e != NULL);
		if (e != NULL) {
			CHECK_EQ_INT(e->vr, VR_US);
			CHECK_EQ_INT(e->len, 120000);
			CHECK(e->val != NULL && e->val[2 * 59999] == (uint8_t)59999);
		}
		{
			/* written as explicit VR: the US cannot carry 120000 bytes
			 * in a 16-bit length; whatever the writer does, it reads back */
			struct wbuf w;
			struct sink k;
			struct dcm_write_opts wo = { 0 };
			wo.ts = DCM_TS_EXPLICIT_LE;
			wbuf_init(&w, (size_t)1 << 24);
			sink_wbuf(&k, &w);
			rc = dcm_file_write(f, &wo, &k);
			CHECK_EQ_INT(rc, ERR_OK);
			if (rc == ERR_OK) {
				struct dcm_file *g = NULL;
				struct src_mem m2;
				struct src s2;
				struct dcm_read_opts o2 = { 0 };
				src_mem_init(&s2, &m2, w.p, w.len);
				rc = dcm_file_read(&s2, &o2, &g, &ei);
				CHECK_EQ_INT(rc, ERR_OK);
				if (rc == ERR_OK) {
					e = dcm_ds_find(&g->ds, 0x00280010);
					CHECK(e != NULL && e->len == 120000);
				}
				dcm_file_free(g);
			}
			wbuf_fini(&w);
		}
	}
	dcm_file_free(f);
	free(p);
}

TEST(empty_and_tiny_input)
{
	struct bb b;
	struct result r;

	b.n = 0;
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_PARSE);
	CHECK(strstr(r.ei.msg, "empty") != NULL);
	done(&r);
	b.p[0] = 0x08;
	b.n = 1;
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_PARSE);
	CHECK(r.ei.msg[0] != 0 && r.ei.offset <= 1);
	done(&r);
}

/* ---- regressions: library bugs found by this test and part10_fuzz ----
 * Fixed in commits ad23cf3 (the first four) and 289a57a (the rest). */

/* Preamble + "DICM" + body. */
static void bb_raw_part10(struct bb *b, const uint8_t *body, size_t n)
{
	uint8_t zero[128];

	memset(zero, 0, sizeof zero);
	b->n = 0;
	bb_put(b, zero, sizeof zero);
	bb_put(b, "DICM", 4);
	bb_put(b, body, n);
}

/* Top-level elements other than group lengths and group 0002 (which a
 * writer may drop: they would be wrong, or taken for meta). */
static uint32_t count_plain(const struct dcm_ds *ds)
{
	uint32_t i, n = 0;

	for (i = 0; i < ds->n; i++)
		if (TAG_ELEM(ds->e[i].tag) != 0 && TAG_GROUP(ds->e[i].tag) != 0x0002)
			n++;
	return n;
}

/* Reads b, writes it in ts (NULL: its own transfer syntax), and reads the
 * output back: a file we wrote must be readable by us, with the same
 * top-level elements. The writer may refuse what the transfer syntax
 * cannot carry (ERR_UNSUPPORTED). */
static void expect_write_reads_back(const struct bb *b, const struct dcm_ts *ts)
{
	struct dcm_write_opts wo = { 0 };
	struct result r;
	struct wbuf w;
	struct sink k;
	enum err rc;

	try_read(b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	if (r.rc != ERR_OK)
		return;
	wbuf_init(&w, (size_t)1 << 20);
	sink_wbuf(&k, &w);
	wo.ts = ts;
	rc = dcm_file_write(r.f, &wo, &k);
	CHECK(rc == ERR_OK || rc == ERR_UNSUPPORTED);
	if (rc == ERR_OK) {
		struct dcm_errinfo ei;
		struct dcm_file *g = NULL;
		struct src_mem m;
		struct src s;
		struct dcm_read_opts o = { 0 };
		src_mem_init(&s, &m, w.p, w.len);
		rc = dcm_file_read(&s, &o, &g, &ei);
		CHECK_EQ_INT(rc, ERR_OK);
		if (rc != ERR_OK)
			fprintf(stderr, "  written file does not read back: %s at offset %llu\n", ei.msg,
			        (unsigned long long)ei.offset);
		else
			CHECK_EQ_INT(count_plain(&g->ds), count_plain(&r.f->ds));
		dcm_file_free(g);
	}
	wbuf_fini(&w);
	done(&r);
}

/* Explicit VR big endian file with a UN of undefined length (CP-246: the
 * value, delimiter included, is implicit VR little endian). The writer
 * writes the sequence delimiter big endian (writer.c put_elem uses c->big
 * instead of the inner encoding), so the output does not read back. */
TEST(be_un_sequence_delimiter_written_little_endian)
{
	static const uint8_t body[] = {
		0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0x14, 0x00, 0x31, 0x2e, 0x32, 0x2e, 0x38, 0x34, 0x30, 0x2e,
		0x31, 0x30, 0x30, 0x30, 0x38, 0x2e, 0x31, 0x2e, 0x32, 0x2e, 0x32, 0x00,  /* TS explicit BE */
		0x00, 0x09, 0x00, 0x10, 0x4c, 0x4f, 0x00, 0x04, 0x41, 0x43, 0x4d, 0x45,  /* (0009,0010) LO ACME */
		0x00, 0x09, 0x10, 0x10, 0x55, 0x4e, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,  /* (0009,1010) UN u/l */
		0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff,                          /* item u/l (LE) */
		0x08, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x41, 0x42,              /* (0008,0100) AB */
		0xfe, 0xff, 0x0d, 0xe0, 0x00, 0x00, 0x00, 0x00,                          /* item delimiter */
		0xfe, 0xff, 0xdd, 0xe0, 0x00, 0x00, 0x00, 0x00,                          /* sequence delimiter */
	};
	struct bb b;

	bb_raw_part10(&b, body, sizeof body);
	expect_write_reads_back(&b, NULL);
}

/* The meta says implicit VR, the data set is explicit (read with a warning,
 * f->ts stays implicit). An SQ of undefined length on (0008,0070), which
 * the dictionary calls LO, is written in implicit VR, where our reader
 * refuses undefined length on LO. */
TEST(sq_on_non_sq_tag_written_implicit)
{
	static const uint8_t body[] = {
		0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0x12, 0x00, 0x31, 0x2e, 0x32, 0x2e, 0x38, 0x34, 0x30, 0x2e,
		0x31, 0x30, 0x30, 0x30, 0x38, 0x2e, 0x31, 0x2e, 0x32, 0x00,              /* TS implicit LE */
		0x08, 0x00, 0x70, 0x00, 0x53, 0x51, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,  /* (0008,0070) SQ u/l */
		0xfe, 0xff, 0x00, 0xe0, 0x00, 0x00, 0x00, 0x00,                          /* empty item */
		0xfe, 0xff, 0xdd, 0xe0, 0x00, 0x00, 0x00, 0x00,                          /* sequence delimiter */
	};
	struct bb b;

	bb_raw_part10(&b, body, sizeof body);
	expect_write_reads_back(&b, NULL);
}

/* A deflated file cut inside its compressed stream: the inflater treated
 * the end of the input as the end of the data set (dataset.c
 * inflate_read), so a cut that happened to fall at an element boundary of
 * the inflated data read "successfully" with the rest of the data set
 * silently missing: 568 of image_dfl.dcm's 4637 bytes gave 11 elements and
 * no pixel data. pydicom: "incomplete or truncated stream". Every cut
 * between the start of the deflate stream and its end must fail (the 8
 * bytes after the stream's end in image_dfl.dcm are not part of it). */
TEST(truncated_deflate_stream_is_an_error)
{
	struct blob b;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	uint64_t start, end;
	size_t len, nok = 0;
	z_stream z;
	uint8_t out[4096];
	enum err rc;

	if (!load("image_dfl.dcm", &b))
		return;
	rc = read_mem(b.p, b.n, 0, false, &f, &ei, &s, &m);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc != ERR_OK) {
		free(b.p);
		return;
	}
	start = f->ds_off;
	dcm_file_free(f);
	f = NULL;
	/* where the raw deflate stream ends */
	memset(&z, 0, sizeof z);
	CHECK(inflateInit2(&z, -MAX_WBITS) == Z_OK);
	z.next_in = b.p + start;
	z.avail_in = (uInt)(b.n - start);
	do {
		z.next_out = out;
		z.avail_out = sizeof out;
	} while (inflate(&z, Z_NO_FLUSH) == Z_OK);
	end = b.n - z.avail_in;
	inflateEnd(&z);
	CHECK(end > start + 100 && end <= b.n);
	for (len = (size_t)start + 1; len < end; len++) {
		rc = read_mem(b.p, len, 0, false, &f, &ei, &s, &m);
		if (rc == ERR_OK) {
			if (nok++ == 0)
				fprintf(stderr, "  %zu-byte prefix (stream ends at %llu) read with %u elements\n", len,
				        (unsigned long long)end, f->ds.n);
			dcm_file_free(f);
			f = NULL;
		} else {
			CHECK(rc == ERR_PARSE);
		}
	}
	CHECK_EQ_INT(nok, 0);
	/* the stream complete, the trailing bytes cut: fine */
	rc = read_mem(b.p, (size_t)end, 0, false, &f, &ei, &s, &m);
	CHECK_EQ_INT(rc, ERR_OK);
	dcm_file_free(f);
	free(b.p);
}

/* docs/DESIGN.md: a missing transfer syntax UID, or a data set whose VR
 * encoding disagrees with its transfer syntax, is read with a warning and
 * "strict turns warnings into errors". dataset.c recorded these two with
 * r.nwarn++ directly instead of warn(), so --strict accepted them. */
TEST(strict_rejects_meta_warnings)
{
	struct bb b;
	struct result r;
	static const uint8_t no_ts[] = {
		0x02, 0x00, 0x01, 0x00, 0x4f, 0x42, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x08, 0x00, 0x60, 0x00, 0x43, 0x53, 0x02, 0x00, 0x4f, 0x54,
	};

	bb_raw_part10(&b, no_ts, sizeof no_ts);
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	CHECK(r.nwarn >= 1);
	done(&r);
	try_read(&b, true, &r);
	CHECK_EQ_INT(r.rc, ERR_PARSE);
	done(&r);

	/* transfer syntax implicit, data explicit */
	bb_part10(&b, TS_IMPLICIT);
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	CHECK(r.nwarn >= 1);
	done(&r);
	try_read(&b, true, &r);
	CHECK_EQ_INT(r.rc, ERR_PARSE);
	done(&r);
}

/* An explicit VR element with a non-SQ VR on a tag the dictionary
 * calls SQ ((0008,1115) Referenced Series Sequence as LO "abcd"; the fuzzer
 * found (0054,0016) as AE) is written in implicit VR with its defined
 * length; reading back, the dictionary says SQ and the value is parsed as
 * items: "data ends inside sequence (0008,1115)". The mirror of
 * sq_on_non_sq_tag_written_implicit. */
TEST(value_on_sq_tag_written_implicit)
{
	struct bb b;

	bb_part10(&b, TS_EXPLICIT);
	bb_short(&b, 0x00081115, "LO", 4);
	bb_put(&b, "abcd", 4);
	expect_write_reads_back(&b, DCM_TS_IMPLICIT_LE);
}

/* The data set holds group 0002 (a meta group that ends early, here
 * none at all: the first element is (0000,0000)). Written in implicit VR
 * the group length (0000,0000) is dropped, so the data set starts with
 * (0002,0002); reading back, the meta reader (explicit VR LE, "while the
 * group is 0002") takes it for meta: "(0002,0002): invalid VR bytes". */
TEST(group_0002_in_data_set_written_implicit)
{
	static const uint8_t body[] = {
		0x00, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,  /* (0000,0000) UL 0 */
		0x02, 0x00, 0x02, 0x00, 0x55, 0x49, 0x04, 0x00, 0x31, 0x2e, 0x32, 0x00,  /* (0002,0002) UI */
	};
	struct bb b;

	bb_raw_part10(&b, body, sizeof body);
	expect_write_reads_back(&b, DCM_TS_IMPLICIT_LE);
}

/* A data set whose first element is in group 0x0200, written in
 * explicit VR big endian, starts with the bytes 02 00 ..: the meta reader,
 * which ignores (0002,0000) and reads little endian elements "while the
 * group is 0002", takes it for meta. Input: the 8-byte bare implicit VR
 * data set (0200,004F) of length 0. */
TEST(be_data_set_starting_with_group_0200)
{
	static const uint8_t raw[] = { 0x00, 0x02, 0x4f, 0x00, 0x00, 0x00, 0x00, 0x00 };
	struct bb b;

	b.n = 0;
	bb_put(&b, raw, sizeof raw);
	expect_write_reads_back(&b, DCM_TS_EXPLICIT_BE);
}

/* An 8-byte item or sequence delimiter that crosses the end of the
 * enclosing defined-length sequence or item is consumed without a check
 * (reader.c dcm_reader_next, delimiter branch; next_in_seq); the next
 * call finds pos > end and returns ERR_INTERNAL "read past the end of a
 * container". Bad input must be ERR_PARSE (STYLE.md: ERR_INTERNAL is a
 * broken invariant, which may abort). Found by part10_fuzz. */
TEST(delimiter_crossing_container_end)
{
	struct bb b;

	/* SQ of 12 bytes: an item of undefined length, its delimiter at 8..16 */
	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00081032, "SQ", 12);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, DCM_UNDEF);
	bb_tag(&b, 0xFFFEE00D);
	bb_u32(&b, 0);
	bb_short(&b, 0x00100010, "PN", 4);
	bb_put(&b, "A^B ", 4);
	{
		struct result r;
		try_read(&b, false, &r);
		CHECK_EQ_INT(r.rc, ERR_PARSE);
		done(&r);
	}
	/* item of 12 bytes holding a sequence of undefined length whose
	 * delimiter is at 12..20 */
	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00081032, "SQ", 8 + 12);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 12);
	bb_long(&b, 0x00081199, "SQ", DCM_UNDEF);
	bb_tag(&b, 0xFFFEE0DD);
	bb_u32(&b, 0);
	bb_short(&b, 0x00100010, "PN", 4);
	bb_put(&b, "A^B ", 4);
	{
		struct result r;
		try_read(&b, false, &r);
		CHECK_EQ_INT(r.rc, ERR_PARSE);
		done(&r);
	}
}

/* An empty sequence on a tag the dictionary does not call SQ
 * ((0018,1111) Distance Source to Patient, DS) is written in implicit VR
 * with undefined length (writer.c seq_needs_undef), so the sequence
 * delimiter follows at once; the reader's check for "an item tag next"
 * (reader.c, item_next) does not accept a sequence delimiter, and the
 * output fails to read back: "undefined length on VR DS". Found by
 * part10_fuzz. */
TEST(empty_sq_on_non_sq_tag_written_implicit)
{
	struct bb b;

	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00181111, "SQ", 0);
	expect_write_reads_back(&b, DCM_TS_IMPLICIT_LE);
	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00181111, "SQ", DCM_UNDEF);
	bb_tag(&b, 0xFFFEE0DD);
	bb_u32(&b, 0);
	expect_write_reads_back(&b, DCM_TS_IMPLICIT_LE);
}

/* A regression of ad23cf3: in implicit VR, undefined length on a tag
 * the dictionary calls OB or OW ((0042,0011) Encapsulated Document) used
 * to be read as fragments, like Pixel Data; the new "an item tag next
 * means a sequence" rule (reader.c, item_next) now comes first and parses
 * the fragments as data sets: "(5025,4644): length 875442477 runs past the
 * end of its enclosing item". The same file in explicit VR (OB, undefined
 * length) reads, and its implicit VR rewrite does not read back. */
TEST(fragments_on_ob_tag_implicit)
{
	struct bb b;
	struct result r;

	/* explicit VR LE: reads, written as implicit must read back */
	bb_part10(&b, TS_EXPLICIT);
	bb_long(&b, 0x00420011, "OB", DCM_UNDEF);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 0);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 8);
	bb_put(&b, "%PDF-1.4", 8);
	bb_tag(&b, 0xFFFEE0DD);
	bb_u32(&b, 0);
	expect_write_reads_back(&b, DCM_TS_IMPLICIT_LE);

	/* implicit VR LE input */
	bb_part10(&b, TS_IMPLICIT);
	b.n -= 10;  /* drop the explicit first element */
	bb_tag(&b, 0x00420011);
	bb_u32(&b, DCM_UNDEF);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 0);
	bb_tag(&b, 0xFFFEE000);
	bb_u32(&b, 8);
	bb_put(&b, "%PDF-1.4", 8);
	bb_tag(&b, 0xFFFEE0DD);
	bb_u32(&b, 0);
	try_read(&b, false, &r);
	CHECK_EQ_INT(r.rc, ERR_OK);
	if (r.rc == ERR_OK) {
		struct dcm_elem *e = dcm_ds_find(&r.f->ds, 0x00420011);
		CHECK(e != NULL && (e->flags & DCM_EF_ENCAPS) && e->seq != NULL && e->seq->nfrags == 2);
	}
	done(&r);
}

/* ---- 3. byte-identical write back ---- */

static void identical(const char *name, uint32_t bulk)
{
	struct blob b;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct dcm_write_opts wo = { 0 };
	struct src_mem m;
	struct src s;
	struct wbuf w;
	struct sink k;
	enum err rc;

	if (!load(name, &b))
		return;
	rc = read_mem(b.p, b.n, bulk, false, &f, &ei, &s, &m);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc != ERR_OK) {
		fprintf(stderr, "  %s: %s at %llu\n", name, ei.msg, (unsigned long long)ei.offset);
		free(b.p);
		return;
	}
	wo.keep_meta = true;
	wbuf_init(&w, (size_t)1 << 28);
	sink_wbuf(&k, &w);
	rc = dcm_file_write(f, &wo, &k);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc == ERR_OK) {
		size_t i = 0;
		while (i < w.len && i < b.n && w.p[i] == b.p[i])
			i++;
		if (w.len != b.n || i != b.n) {
			fprintf(stderr, "  %s (bulk %u): wrote %zu bytes for %zu, first difference at offset %zu\n", name,
			        bulk, w.len, b.n, i);
			t_failed_now = 1;
		}
	}
	wbuf_fini(&w);
	dcm_file_free(f);
	free(b.p);
}

/* Files written back with keep_meta must come back byte for byte: the
 * explicit VR LE ones asked for (CT_small, MR_small, JPEG2000), and as
 * they do too, implicit VR LE (rtplan, nested_priv_SQ with its odd-length
 * value, MR_small_implicit), explicit VR BE (MR_small_bigendian, also with
 * its pixel data left in the source) and CP-246 UN (UN_sequence).
 * Left out, as they cannot: image_dfl.dcm (deflated: our zlib settings
 * compress differently), SC_rgb_jpeg.dcm (data set in implicit VR under an
 * explicit transfer syntax: written as the transfer syntax says),
 * rtstruct.dcm, no_meta.dcm and *NoMeta.dcm (no preamble or meta: the
 * writer adds them), the *_truncated.dcm files (do not read). */
static const char *const identical_files[] = {
	"CT_small.dcm", "rtplan.dcm", "MR_small.dcm", "JPEG2000.dcm", "nested_priv_SQ.dcm",
	"MR_small_implicit.dcm", "MR_small_bigendian.dcm", "UN_sequence.dcm",
};

TEST(write_back_identical)
{
	size_t i;

	for (i = 0; i < sizeof identical_files / sizeof identical_files[0]; i++)
		identical(identical_files[i], 0);
}

TEST(write_back_identical_with_bulk_in_source)
{
	size_t i;

	for (i = 0; i < sizeof identical_files / sizeof identical_files[0]; i++)
		identical(identical_files[i], 16);
}

int main(void)
{
	RUN(truncate_ct_small);
	RUN(truncate_rtplan);
	RUN(truncate_mr_small_bigendian);
	RUN(truncate_image_dfl_deflated);
	RUN(truncate_jpeg2000_encapsulated);
	RUN(truncate_un_sequence);
	RUN(truncate_nested_priv_sq);
	RUN(length_past_end);
	RUN(length_past_enclosing_item);
	RUN(undefined_length_on_us_implicit);
	RUN(undefined_length_on_ut);
	RUN(us_ffff_length_explicit);
	RUN(nesting_40_deep);
	RUN(nesting_at_the_limit);
	RUN(odd_length_warns_or_fails_when_strict);
	RUN(item_at_top_level);
	RUN(delimiters_at_top_level);
	RUN(unknown_vr);
	RUN(invalid_vr_bytes);
	RUN(sequence_item_wrong_tag);
	RUN(us_with_60000_values_implicit);
	RUN(empty_and_tiny_input);
	RUN(be_un_sequence_delimiter_written_little_endian);
	RUN(sq_on_non_sq_tag_written_implicit);
	RUN(truncated_deflate_stream_is_an_error);
	RUN(strict_rejects_meta_warnings);
	RUN(value_on_sq_tag_written_implicit);
	RUN(group_0002_in_data_set_written_implicit);
	RUN(be_data_set_starting_with_group_0200);
	RUN(delimiter_crossing_container_end);
	RUN(empty_sq_on_non_sq_tag_written_implicit);
	RUN(fragments_on_ob_tag_implicit);
	RUN(write_back_identical);
	RUN(write_back_identical_with_bulk_in_source);
	return TEST_DONE();
}
