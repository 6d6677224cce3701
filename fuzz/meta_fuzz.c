/* meta_fuzz.c: libFuzzer target for the File Meta Information reader of
 * C-GET and C-MOVE sub-operations (dimse_meta_scan, daemon/dimse_get.c),
 * which finds where a stored object's data set begins and in which
 * transfer syntax, to send it as stored. The input is the object's first
 * bytes. abort()s when
 *   - it answers differently for the whole input than when the bytes come
 *     a few at a time (as retrieve_read gives them), or asks for fewer
 *     bytes than it has, or for more than it can take;
 *   - it accepts a meta whose data set would begin past the input, or a
 *     transfer syntax that is not a valid UID;
 *   - it and the Part 10 reader both accept the input but disagree on the
 *     transfer syntax or on where the data set begins.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/io.h"
#include "dicomvault/vr.h"
#include "../src/daemon/dimse_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* As read_head does: more bytes until the scan stops asking. */
static enum err scan_growing(const uint8_t *data, size_t size, size_t step, size_t *off, char ts[PDU_UID_MAX + 1])
{
	size_t have = 0, need = 0;
	enum err rc;

	for (;;) {
		rc = dimse_meta_scan(data, have, &need, off, ts);
		if (rc != ERR_AGAIN)
			return rc;
		if (need <= have || need > 144 + (size_t)DIMSE_MAX_META)
			abort();
		if (have == size)
			return ERR_AGAIN;
		have = have + step < size ? have + step : size;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ts[PDU_UID_MAX + 1], ts2[PDU_UID_MAX + 1];
	size_t off = 0, off2 = 0, need = 0, n;
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	enum err rc, rc2;

	rc = dimse_meta_scan(data, size, &need, &off, ts);
	rc2 = scan_growing(data, size, 1 + (size % 97), &off2, ts2);
	if (rc != rc2 || (rc == ERR_OK && (off != off2 || strcmp(ts, ts2) != 0)))
		abort();
	if (rc != ERR_OK)
		return 0;
	n = strlen(ts);
	if (off > size || off < 144 || !vr_uid_ok(ts, n))
		abort();
	memset(&ro, 0, sizeof ro);
	ro.stop_tag = 0x00080000;
	src_mem_init(&s, &m, data, size);
	if (dcm_file_read(&s, &ro, &f, &ei) == ERR_OK && f->has_meta && f->ts_uid[0] != 0) {
		if (strcmp(f->ts_uid, ts) != 0 || f->ds_off != off)
			abort();
	}
	dcm_file_free(f);
	return 0;
}
