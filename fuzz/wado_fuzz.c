/* wado_fuzz.c: libFuzzer target for the two parsers of WADO-RS URL
 * segments: the frame list of .../frames/{list} and .../rendered
 * (wado_frame_list_parse: "1,3,5", 1-based, at most DICOMWEB_MAX_FRAMES)
 * and the bulk data path of .../bulkdata/{path} (wado_bulk_path_find:
 * "GGGGEEEE(.ITEM.GGGGEEEE)*" walked into a parsed instance). Input: the
 * segment up to the first newline, then a Part 10 file for the path to
 * walk (pydicom writes the seeds: fuzz/corpus/gen_wado.py). abort()s when
 *   - a frame list is refused with another code than PARSE, LIMIT, NOMEM;
 *   - an accepted list is empty, longer than the maximum, holds a 0, or
 *     does not come back the same when written out with commas and parsed
 *     again (and that writing is not the segment itself whenever the
 *     segment has no leading zeros);
 *   - a path names an element that is not in the data set it says holds
 *     it, or one whose tag is not the path's last, or calls encapsulated
 *     Pixel Data what is not;
 *   - a path found in the file is not found again in the same file.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"
#include "../src/daemon/wado_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void frames(const char *s, size_t n)
{
	uint32_t *v = NULL, *v2 = NULL;
	size_t k = 0, k2 = 0, i;
	bool zero_led = false;
	struct wbuf w;
	enum err rc = wado_frame_list_parse(s, n, &v, &k);

	if (rc != ERR_OK) {
		if (rc != ERR_PARSE && rc != ERR_LIMIT && rc != ERR_NOMEM)
			abort();
		return;
	}
	if (k == 0 || k > DICOMWEB_MAX_FRAMES)
		abort();
	wbuf_init(&w, (size_t)16 << 20);
	for (i = 0; i < k; i++) {
		if (v[i] == 0)
			abort();
		wbuf_printf(&w, "%s%u", i ? "," : "", (unsigned)v[i]);
	}
	for (i = 0; i < n; i++)
		zero_led |= s[i] == '0' && (i == 0 || s[i - 1] == ',');
	if (wbuf_err(&w) != ERR_OK || wado_frame_list_parse((const char *)w.p, w.len, &v2, &k2) != ERR_OK || k2 != k ||
	    memcmp(v, v2, k * sizeof *v) != 0 || (!zero_led && (w.len != n || memcmp(w.p, s, n) != 0)))
		abort();
	wbuf_fini(&w);
	free(v);
	free(v2);
}

static void path(const char *s, size_t n, const uint8_t *file, size_t flen)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	const struct dcm_elem *e, *e2;
	const struct dcm_ds *in = NULL, *in2 = NULL;
	struct src_mem m;
	struct src src;
	uint16_t vr = 0, vr2 = 0;
	bool pixel = false, pixel2 = false;
	uint32_t last = 0;
	size_t i;

	memset(&ro, 0, sizeof ro);
	src_mem_init(&src, &m, file, flen);
	if (dcm_file_read(&src, &ro, &f, &ei) != ERR_OK)
		return;
	e = wado_bulk_path_find(f, s, n, &pixel, &vr, &in);
	if (e != NULL) {
		/* the last 8 characters are the element's tag, in hex */
		if (n < 8 || in == NULL || dcm_ds_find(in, e->tag) != e)
			abort();
		for (i = n - 8; i < n; i++) {
			char c = s[i];
			last = last << 4 |
			       (uint32_t)(c <= '9' ? c - '0' : c >= 'a' ? c - 'a' + 10 : c - 'A' + 10);
		}
		if (last != e->tag || (pixel && (e->tag != TAG_PIXEL_DATA || !(e->flags & DCM_EF_ENCAPS))))
			abort();
		e2 = wado_bulk_path_find(f, s, n, &pixel2, &vr2, &in2);
		if (e2 != e || in2 != in || pixel2 != pixel || vr2 != vr)
			abort();
	}
	dcm_file_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n = nl != NULL ? (size_t)(nl - data) : size;

	frames((const char *)data, n);
	if (nl != NULL)
		path((const char *)data, n, nl + 1, size - n - 1);
	return 0;
}
