/* part10_fuzz.c: libFuzzer target for the Part 10 reader (dicom/reader.c,
 * dicom/dataset.c) and everything that walks a parsed file: dump, JSON and
 * the writer. The input is read three ways (everything loaded, bulk values
 * left in the source, strict); each parsed file is dumped, written as JSON
 * and written back as Part 10: in its own transfer syntax (regenerated
 * meta, and keep_meta) and, except in the strict pass, transcoded to
 * explicit LE, implicit LE, explicit BE and deflated. Every file we wrote
 * must read back (abort() otherwise) with the same elements and value
 * bytes (group lengths aside when the VR encoding changed). A streaming
 * source (no random access, unknown size, short reads) must read to the
 * same result as the memory source. Failed reads must carry a reason and
 * an offset inside the input. Layer: tests (fuzz). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/io.h"
#include "dicomvault/json.h"
#include "dicomvault/wbuf.h"

/* Caps of the output buffers: large enough for any input the fuzzer makes
 * (a tag-dense input of N bytes dumps to far less than 256*N), small enough
 * that a runaway writer shows as an error rather than an OOM. */
#define DUMP_MAX  ((size_t)16 << 20)
#define JSON_MAX  ((size_t)64 << 20)
#define WRITE_MAX ((size_t)256 << 20)

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "part10_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

/* A failed read must say why (and where, within the input or within the
 * inflated data set, which may be larger). */
static void check_error(enum err rc, const struct dcm_errinfo *ei, size_t size)
{
	if (rc == ERR_OK)
		return;
	if (rc != ERR_PARSE && rc != ERR_LIMIT && rc != ERR_NOMEM && rc != ERR_UNSUPPORTED)
		die("unexpected error code from dcm_file_read", err_str(rc));
	if (memchr(ei->msg, 0, sizeof ei->msg) == NULL || ei->msg[0] == 0)
		die("dcm_file_read failed without a message", err_str(rc));
	if (!ei->inflated && ei->offset > size)
		die("error offset past the end of the input", ei->msg);
}

/* Output of a file that parsed may fail on a cap or an unusual value, but
 * never on a broken invariant. */
static void check_output(enum err rc, const char *what)
{
	if (rc == ERR_INTERNAL)
		die(what, "ERR_INTERNAL on a file that parsed");
}

static enum err bulk_uri(void *ctx, const uint32_t *path, unsigned depth, struct wbuf *uri)
{
	unsigned i;

	(void)ctx;
	wbuf_puts(uri, "bulk:");
	for (i = 0; i < depth; i++)
		wbuf_printf(uri, "/%08X", path[i]);
	return wbuf_err(uri);
}

/* ---- what we wrote must read back, with the same values ---- */

struct cmp {
	const struct dcm_file *fa, *fb;  /* as read from the input, as read back */
	bool drop_gl;                     /* group lengths were dropped */
	bool implicit_out;                /* written in implicit VR */
	const char *how;
};

static void mismatch(const struct cmp *c, uint32_t tag, const char *what)
{
	char d[160];

	snprintf(d, sizeof d, "%s output: (%04X,%04X) %s", c->how, TAG_GROUP(tag), TAG_ELEM(tag), what);
	die("read back differs from what was written", d);
}

/* A value (in memory or left in the source) into w. */
static enum err value_of(const struct dcm_file *f, uint64_t bulk_off, uint32_t len, const uint8_t *val,
                         uint16_t flags, struct wbuf *w)
{
	struct sink k;

	wbuf_reset(w);
	sink_wbuf(&k, w);
	return dcm_bulk_copy(f, bulk_off, len, (flags & DCM_EF_BULK) ? NULL : val, &k);
}

static void same_bytes(const struct cmp *c, uint32_t tag, const struct dcm_elem *a, const struct dcm_elem *b)
{
	const uint8_t *va = NULL, *vb = NULL;
	bool oa = false, ob = false;

	if (a->len != b->len)
		mismatch(c, tag, "value length");
	if (a->len == 0)
		return;
	/* dcm_elem_value gives little endian bytes for both */
	if (dcm_elem_value(c->fa, a, &va, &oa) != ERR_OK || dcm_elem_value(c->fb, b, &vb, &ob) != ERR_OK) {
		if (oa)
			free((void *)(uintptr_t)va);
		return;  /* a value we cannot load (limit): nothing to compare */
	}
	if (memcmp(va, vb, a->len) != 0)
		mismatch(c, tag, "value bytes");
	if (oa)
		free((void *)(uintptr_t)va);
	if (ob)
		free((void *)(uintptr_t)vb);
}

static void same_frags(const struct cmp *c, const struct dcm_elem *a, const struct dcm_elem *b)
{
	struct wbuf wa, wb;
	uint32_t i;

	if (b->seq == NULL || !(b->flags & DCM_EF_ENCAPS) || a->seq->nfrags != b->seq->nfrags)
		mismatch(c, a->tag, "fragments");
	wbuf_init(&wa, WRITE_MAX);
	wbuf_init(&wb, WRITE_MAX);
	for (i = 0; i < a->seq->nfrags; i++) {
		const struct dcm_frag *x = &a->seq->frags[i], *y = &b->seq->frags[i];
		if (x->len != y->len)
			mismatch(c, a->tag, "fragment length");
		if (value_of(c->fa, x->bulk_off, x->len, x->val, x->flags, &wa) == ERR_OK &&
		    value_of(c->fb, y->bulk_off, y->len, y->val, y->flags, &wb) == ERR_OK &&
		    (wa.len != wb.len || (wa.len > 0 && memcmp(wa.p, wb.p, wa.len) != 0)))
			mismatch(c, a->tag, "fragment bytes");
	}
	wbuf_fini(&wa);
	wbuf_fini(&wb);
}

/* Group lengths are dropped when the VR encoding changes. Group 0002 in
 * the top-level data set (possible when the input's meta group is odd)
 * belongs to the meta group: a reader takes it for meta when it comes
 * first, so it is not compared. */
static bool skipped(const struct cmp *c, const struct dcm_elem *e, bool top)
{
	if (top && TAG_GROUP(e->tag) == 0x0002)
		return true;
	return c->drop_gl && TAG_ELEM(e->tag) == 0 && TAG_GROUP(e->tag) != 0x0002;
}

static void same_ds(const struct cmp *c, const struct dcm_ds *a, const struct dcm_ds *b, bool top)
{
	uint32_t i = 0, j = 0;

	for (;;) {
		const struct dcm_elem *x, *y;
		while (i < a->n && skipped(c, &a->e[i], top))
			i++;
		while (j < b->n && top && TAG_GROUP(b->e[j].tag) == 0x0002)
			j++;
		if (i == a->n || j == b->n)
			break;
		x = &a->e[i++];
		y = &b->e[j++];
		if (x->tag != y->tag)
			mismatch(c, x->tag, "tag (elements missing or reordered)");
		if (x->flags & DCM_EF_ENCAPS) {
			same_frags(c, x, y);
		} else if (x->seq != NULL) {
			uint32_t k;
			if (y->seq == NULL) {
				/* implicit VR cannot say that a tag the dictionary does
				 * not call SQ (private, unknown) holds a sequence of
				 * defined length: it reads back as a value */
				if (c->implicit_out && !(x->flags & DCM_EF_UNDEF))
					continue;
				mismatch(c, x->tag, "sequence read back as a value");
			}
			if (x->seq->n != y->seq->n)
				mismatch(c, x->tag, "number of items");
			for (k = 0; k < x->seq->n; k++)
				same_ds(c, x->seq->items[k], y->seq->items[k], false);
		} else {
			if (y->seq != NULL) {
				/* an empty value on a tag the dictionary calls SQ */
				if (c->implicit_out && x->len == 0 && y->seq->n == 0)
					continue;
				mismatch(c, x->tag, "value read back as a sequence");
			}
			same_bytes(c, x->tag, x, y);
		}
	}
	if (i != a->n || j != b->n)
		mismatch(c, i < a->n ? a->e[i].tag : b->e[j].tag, "number of elements");
}

/* Reads back what we wrote: it must parse, to the same values. */
static void read_back(const struct dcm_file *orig, const struct wbuf *w, const struct dcm_ts *ts, const char *how)
{
	struct dcm_read_opts o = { 0 };
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	struct cmp c;
	enum err rc;

	src_mem_init(&s, &m, w->p, w->len);
	rc = dcm_file_read(&s, &o, &f, &ei);
	if (rc != ERR_OK) {
		fprintf(stderr, "part10_fuzz: our own %s output (%zu bytes) does not read back: %s at offset %llu%s: %s\n",
		        how, w->len, err_str(rc), (unsigned long long)ei.offset,
		        ei.inflated ? " (inflated)" : "", ei.msg);
		abort();
	}
	c.fa = orig;
	c.fb = f;
	c.how = how;
	c.implicit_out = !ts->explicit_vr;
	c.drop_gl = orig->ts != NULL && orig->ts->explicit_vr != ts->explicit_vr;
	same_ds(&c, &orig->ds, &f->ds, true);
	dcm_file_free(f);
}

/* Writes f (in ts, NULL: its own) and reads it back. */
static void write_and_read_back(struct dcm_file *f, const struct dcm_ts *ts, bool keep_meta, const char *how)
{
	struct dcm_write_opts wo = { 0 };
	struct wbuf w;
	struct sink k;
	enum err rc;

	wo.keep_meta = keep_meta;
	wo.ts = ts;
	wbuf_init(&w, WRITE_MAX);
	sink_wbuf(&k, &w);
	rc = dcm_file_write(f, &wo, &k);
	check_output(rc, how);
	if (rc == ERR_OK)
		read_back(f, &w, ts ? ts : f->ts ? f->ts : DCM_TS_EXPLICIT_LE, how);
	wbuf_fini(&w);
}

static void exercise(struct dcm_file *f, bool transcode)
{
	struct dcm_json_opts jo = { 0 };
	struct wbuf w;
	struct sink k;

	wbuf_init(&w, DUMP_MAX);
	check_output(dcm_dump(f, &w), "dcm_dump");
	wbuf_fini(&w);

	wbuf_init(&w, JSON_MAX);
	sink_wbuf(&k, &w);
	check_output(dcm_json_write(f, &f->ds, &jo, &k), "dcm_json_write");
	wbuf_reset(&w);
	jo.bulk_threshold = 16;
	jo.bulk_uri = bulk_uri;
	check_output(dcm_json_write(f, &f->ds, &jo, &k), "dcm_json_write (bulk URIs)");
	wbuf_fini(&w);

	write_and_read_back(f, NULL, false, "default");
	write_and_read_back(f, NULL, true, "keep_meta");
	if (transcode) {
		write_and_read_back(f, DCM_TS_EXPLICIT_LE, false, "explicit LE");
		write_and_read_back(f, DCM_TS_IMPLICIT_LE, false, "implicit LE");
		write_and_read_back(f, DCM_TS_EXPLICIT_BE, false, "explicit BE");
		write_and_read_back(f, DCM_TS_DEFLATED_LE, false, "deflated");
	}
}

static void one(const uint8_t *data, size_t size, uint32_t bulk_threshold, bool strict)
{
	struct dcm_read_opts o = { 0 };
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	enum err rc;

	o.bulk_threshold = bulk_threshold;
	o.strict = strict;
	src_mem_init(&s, &m, data, size);
	rc = dcm_file_read(&s, &o, &f, &ei);
	check_error(rc, &ei, size);
	if (rc != ERR_OK)
		return;
	exercise(f, !strict);
	dcm_file_free(f);
}

/* A source that only streams (no random access, no skip, size unknown)
 * and returns short reads of 1 to 13 bytes, to shake the reader's window. */
struct trickle {
	const uint8_t *p;
	size_t len, pos;
};

static enum err trickle_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct trickle *t = ctx;
	size_t n = 1 + (t->pos * 7) % 13;

	if (n > want)
		n = want;
	if (n > t->len - t->pos)
		n = t->len - t->pos;
	if (n > 0)
		memcpy(buf, t->p + t->pos, n);
	t->pos += n;
	*got = n;
	return ERR_OK;
}

/* The same input through a streaming source reads to the same result. */
static void streamed(const uint8_t *data, size_t size)
{
	struct dcm_read_opts o = { 0 };
	struct dcm_errinfo ei, ei2;
	struct dcm_file *f = NULL, *g = NULL;
	struct trickle t = { data, size, 0 };
	struct src_mem m;
	struct src s, ts;
	struct cmp c;
	enum err rc, rc2;

	src_mem_init(&s, &m, data, size);
	rc = dcm_file_read(&s, &o, &f, &ei);
	memset(&ts, 0, sizeof ts);
	ts.read = trickle_read;
	ts.size = -1;
	ts.ctx = &t;
	rc2 = dcm_file_read(&ts, &o, &g, &ei2);
	check_error(rc2, &ei2, size);
	if ((rc == ERR_OK) != (rc2 == ERR_OK)) {
		fprintf(stderr, "part10_fuzz: memory source: %s (%s), streaming source: %s (%s)\n", err_str(rc),
		        rc ? ei.msg : "", err_str(rc2), rc2 ? ei2.msg : "");
		abort();
	}
	if (rc == ERR_OK) {
		c.fa = f;
		c.fb = g;
		c.how = "streaming source";
		c.implicit_out = false;
		c.drop_gl = false;
		same_ds(&c, &f->ds, &g->ds, false);
		exercise(g, false);  /* writing streams values from memory only */
	}
	dcm_file_free(f);
	dcm_file_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, 0, false);   /* everything in memory */
	one(data, size, 64, false);  /* bulk values left in the source */
	one(data, size, 0, true);    /* strict */
	streamed(data, size);        /* no random access, short reads */
	return 0;
}
