/* frame_fuzz.c: libFuzzer target for dicom/frame.c, which interprets
 * offset tables, fragment lists and image attributes that came from a
 * client (STOW) to locate frames. The input is parsed as Part 10 twice:
 * all values in memory, and bulk values (> 16 bytes) left in the source.
 * The target abort()s when
 *   * dcm_frames_init gives different results for the two parses (error
 *     code, number of frames, how they were located, frame sizes), or an
 *     error without a reason, or an error code other than NOTFOUND, PARSE,
 *     UNSUPPORTED, NOMEM;
 *   * a located frame cannot be read whole (ERR_INTERNAL, or any error with
 *     the in-memory parse), or reads differently whole, in pieces of 1..7
 *     bytes at odd offsets, and from the other parse;
 *   * dcm_elem_read_at of the pixel data (native) disagrees between the
 *     two parses.
 * At most 64 frames of at most 1 MiB each are read. Layer: tests (fuzz). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/frame.h"
#include "dicomvault/io.h"

#define MAX_FRAMES 64u
#define MAX_FRAME  ((uint64_t)1 << 20)

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "frame_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static uint8_t *read_frame(const struct dcm_frames *fr, uint32_t i, uint64_t size, bool pieces)
{
	uint8_t *b = malloc(size ? size : 1);
	uint64_t pos = 0;
	unsigned step = 1;
	enum err rc;

	if (b == NULL)
		die("out of memory", NULL);
	if (!pieces) {
		rc = dcm_frame_read(fr, i, 0, b, size);
		if (rc != ERR_OK) {
			free(b);
			return NULL;
		}
		return b;
	}
	while (pos < size) {
		uint64_t n = size - pos < step ? size - pos : step;
		rc = dcm_frame_read(fr, i, pos, b + pos, n);
		if (rc != ERR_OK) {
			free(b);
			return NULL;
		}
		pos += n;
		step = step % 7 + 1;
	}
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s[2];
	struct src_mem m[2];
	struct dcm_file *f[2] = { NULL, NULL };
	struct dcm_frames fr[2];
	struct dcm_read_opts o[2];
	struct dcm_errinfo ei;
	char why[2][256];
	enum err rc[2];
	unsigned k;
	uint32_t i;

	memset(o, 0, sizeof o);
	o[1].bulk_threshold = 16;
	for (k = 0; k < 2; k++) {
		src_mem_init(&s[k], &m[k], data, size);
		if (dcm_file_read(&s[k], &o[k], &f[k], &ei) != ERR_OK)
			goto out;
	}
	for (k = 0; k < 2; k++) {
		rc[k] = dcm_frames_init(f[k], &fr[k], why[k], sizeof why[k]);
		if (rc[k] != ERR_OK && rc[k] != ERR_NOTFOUND && rc[k] != ERR_PARSE && rc[k] != ERR_UNSUPPORTED &&
		    rc[k] != ERR_NOMEM)
			die("unexpected error from dcm_frames_init", err_str(rc[k]));
		if (rc[k] != ERR_OK && why[k][0] == 0)
			die("dcm_frames_init failed without a reason", err_str(rc[k]));
	}
	if (rc[0] == ERR_NOMEM || rc[1] == ERR_NOMEM)
		goto fini;
	if (rc[0] != rc[1])
		die("frames located differently with bulk values in the source", why[rc[0] == ERR_OK ? 1 : 0]);
	if (rc[0] != ERR_OK)
		goto fini;
	if (fr[0].n != fr[1].n || fr[0].encapsulated != fr[1].encapsulated || strcmp(fr[0].how, fr[1].how) != 0)
		die("frames differ between the two parses", fr[0].how);
	if (!fr[0].encapsulated) {
		const struct dcm_elem *p0 = fr[0].pixel, *p1 = fr[1].pixel;
		uint32_t n = p0->len < 4096 ? p0->len : 4096;
		uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
		if (a == NULL || b == NULL)
			die("out of memory", NULL);
		if (p0->len != p1->len || dcm_elem_read_at(f[0], p0, 0, a, n) != ERR_OK ||
		    dcm_elem_read_at(f[1], p1, 0, b, n) != ERR_OK || memcmp(a, b, n) != 0)
			die("pixel data values differ between the two parses", NULL);
		free(a);
		free(b);
	}
	for (i = 0; i < fr[0].n && i < MAX_FRAMES; i++) {
		uint64_t sz = dcm_frame_size(&fr[0], i);
		uint8_t *w0, *w1, *p0;
		if (sz != dcm_frame_size(&fr[1], i))
			die("frame sizes differ between the two parses", NULL);
		if (sz > MAX_FRAME)
			continue;
		w0 = read_frame(&fr[0], i, sz, false);
		p0 = read_frame(&fr[0], i, sz, true);
		w1 = read_frame(&fr[1], i, sz, false);
		if (w0 == NULL || p0 == NULL)
			die("a located frame cannot be read from memory", NULL);
		if (memcmp(w0, p0, sz) != 0)
			die("a frame reads differently in pieces", NULL);
		if (w1 == NULL || memcmp(w0, w1, sz) != 0)
			die("a frame reads differently from the source", NULL);
		free(w0);
		free(p0);
		free(w1);
	}
fini:
	dcm_frames_fini(&fr[0]);
	dcm_frames_fini(&fr[1]);
out:
	dcm_file_free(f[0]);
	dcm_file_free(f[1]);
	return 0;
}
