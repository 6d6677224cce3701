/* pixels.h: what the decompression tests (decode_test.c, transcode_test.c)
 * share: pydicom's test files, a data set decompressed by transcode.c and
 * read back, its Pixel Data and pixel attributes compared. Static inline,
 * so that a test that does not use one does not warn. Layer: tests. */
#ifndef DICOMVAULT_TEST_PIXELS_H
#define DICOMVAULT_TEST_PIXELS_H

#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"
#include "dicomvault/transcode.h"
#include "dicomvault/wbuf.h"

#define PYD "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
#define EXPLICIT "1.2.840.10008.1.2.1"
#define IMPLICIT "1.2.840.10008.1.2"

/* A file read into memory and parsed (values over 256 bytes left in it). */
struct file {
	uint8_t *data;
	size_t len;
	struct src s;
	struct src_mem m;
	struct dcm_file *f;
};

static inline bool open_file(struct file *x, const char *name)
{
	struct dcm_read_opts o;
	struct dcm_errinfo ei;

	memset(x, 0, sizeof *x);
	if (file_read_all(name, 16 << 20, &x->data, &x->len) != ERR_OK)
		return false;
	memset(&o, 0, sizeof o);
	o.bulk_threshold = 256;
	src_mem_init(&x->s, &x->m, x->data, x->len);
	return dcm_file_read(&x->s, &o, &x->f, &ei) == ERR_OK;
}

static inline void close_file(struct file *x)
{
	dcm_file_free(x->f);
	free(x->data);
}

static inline const struct dcm_ts *ts_of(const char *uid)
{
	return dict_ts(uid, strlen(uid));
}

/* f decompressed into w (in ts); ERR_* of begin or write, the reason
 * printed; a refusal without a reason is ERR_INTERNAL. */
static inline enum err decompress(struct dcm_file *f, const char *ts, struct wbuf *w)
{
	struct dcm_transcode *z = NULL;
	struct sink k;
	char why[256] = "";
	enum err rc = dcm_transcode_begin(f, ts_of(ts), false, &z, why, sizeof why);

	if (rc != ERR_OK) {
		fprintf(stderr, "  transcode: %s\n", why[0] ? why : "refused without a reason");
		return why[0] ? rc : ERR_INTERNAL;
	}
	sink_wbuf(&k, w);
	rc = dcm_transcode_write(z, &k, why, sizeof why);
	dcm_transcode_free(z);
	return rc;
}

/* The bare data set in w, read in ts (values loaded). */
static inline struct dcm_file *read_back(struct wbuf *w, const char *ts, struct src *s, struct src_mem *m)
{
	struct dcm_read_opts o;
	struct dcm_errinfo ei;
	struct dcm_file *g = NULL;

	memset(&o, 0, sizeof o);
	o.no_meta = true;
	o.ts = ts_of(ts);
	src_mem_init(s, m, w->p, w->len);
	return dcm_file_read(s, &o, &g, &ei) == ERR_OK ? g : NULL;
}

/* Whether g's Pixel Data is the n bytes at want (padded to even). */
static inline bool pixels_are(const struct dcm_file *g, const uint8_t *want, size_t n)
{
	const struct dcm_elem *e = dcm_ds_find(&g->ds, 0x7FE00010);
	const uint8_t *v = NULL;
	bool owned = false, same;

	if (e == NULL || e->len != n + (n & 1) || dcm_elem_value(g, e, &v, &owned) != ERR_OK)
		return false;
	same = memcmp(v, want, n) == 0;
	if (owned)
		free((void *)v);
	return same;
}

static inline bool str_is(const struct dcm_ds *ds, uint32_t tag, const char *want)
{
	char buf[128];

	return dcm_ds_get_cstr(ds, tag, buf, sizeof buf) == ERR_OK && strcmp(buf, want) == 0;
}

/* The US value of tag, 0xFFFF when absent. */
static inline unsigned us_of(const struct dcm_ds *ds, uint32_t tag)
{
	uint16_t v = 0xFFFF;

	return dcm_ds_get_u16(ds, tag, &v) == ERR_OK ? v : 0xFFFF;
}

#endif
