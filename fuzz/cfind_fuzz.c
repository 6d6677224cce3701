/* cfind_fuzz.c: libFuzzer target for C-FIND's identifier path and the
 * matching engine's walk over a record: a bare data set read as the
 * C-FIND SCP reads one (no meta, the presentation context's transfer
 * syntax: dimse_find_parse), made a query (qry_new) at a level, and
 * matched against a second bare data set as a record (qry_match: values
 * split on backslashes and trimmed, ranges, wildcards, person names,
 * numbers, character sets, sequences item by item). qido_fuzz reaches
 * qry_new only with identifiers of its own making and never a record.
 * Input: byte 0 = level (bits 0-1), the identifier's and the record's
 * encodings (bit 2, bit 3: implicit or explicit VR little endian); bytes
 * 1-2 = the identifier's length (little endian, cut to what follows);
 * then the identifier, then the record. abort()s when
 *   - a refused identifier has no reason, or an unexpected error code;
 *   - the same record matches once and not the next time;
 *   - a query that matches an empty record does not match every record
 *     (an absent attribute matches no match key: such a query has none).
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"
#include "dicomvault/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dcm_file *bare(const uint8_t *p, size_t n, bool implicit)
{
	static const char *ts[2] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2" };
	const char *uid = ts[implicit];
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;

	memset(&ro, 0, sizeof ro);
	ro.no_meta = true;
	ro.ts = dict_ts(uid, strlen(uid));
	if (ro.ts == NULL)
		abort();
	src_mem_init(&s, &m, p, n);
	if (dcm_file_read(&s, &ro, &f, &ei) != ERR_OK)
		return NULL;
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qry_opts o;
	struct dcm_file *id, *rec, *empty = NULL;
	struct qry *q = NULL;
	char why[256] = "";
	size_t idlen;
	bool m1, m2, m_empty;
	enum err rc;

	if (size < 3)
		return 0;
	idlen = (size_t)data[1] | (size_t)data[2] << 8;
	if (idlen > size - 3)
		idlen = size - 3;
	id = bare(data + 3, idlen, data[0] & 4);
	if (id == NULL)
		return 0;
	memset(&o, 0, sizeof o);
	o.level = (enum qry_level)(data[0] & 3);
	o.seq_items_asked = (data[0] & 8) != 0;   /* as C-FIND asks */
	rc = qry_new(&o, &id->ds, &q, why, sizeof why);
	dcm_file_free(id);   /* the query keeps nothing of it */
	if (rc != ERR_OK) {
		if ((rc != ERR_PARSE && rc != ERR_LIMIT && rc != ERR_NOMEM && rc != ERR_UNSUPPORTED) ||
		    (rc != ERR_NOMEM && why[0] == 0))
			abort();
		return 0;
	}
	rec = bare(data + 3 + idlen, size - 3 - idlen, data[0] & 8);
	if (dcm_file_new(&empty) != ERR_OK)
		abort();
	m_empty = qry_match(q, &empty->ds);
	if (rec != NULL) {
		m1 = qry_match(q, &rec->ds);
		m2 = qry_match(q, &rec->ds);
		if (m1 != m2 || (m_empty && !m1))
			abort();
	}
	dcm_file_free(rec);
	dcm_file_free(empty);
	qry_free(q);
	return 0;
}
