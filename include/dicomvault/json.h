/* json.h: the DICOM JSON model (PS3.18 Annex F), both ways. Layer: dicom. */
#ifndef DICOMVAULT_JSON_H
#define DICOMVAULT_JSON_H

#include "dicomvault/dataset.h"

struct dcm_json_opts {
	/* Bulk values (OB, OW, UN, OF...) longer than this become BulkDataURI
	 * when bulk_uri is set; 0 inlines everything. */
	uint32_t bulk_threshold;
	/* Writes the URI of the value at the tag path (outermost first). */
	enum err (*bulk_uri)(void *ctx, const uint32_t *path, unsigned depth, struct wbuf *uri);
	void *ctx;
	bool include_group_length;  /* (gggg,0000); PS3.18 leaves them out */
};

/* The data set as one DICOM JSON object, streamed to k. */
WUR enum err dcm_json_write(const struct dcm_file *f, const struct dcm_ds *ds, const struct dcm_json_opts *o,
                            struct sink *k);

/* Parse one DICOM JSON object (or a one-element array of it) into a new
 * file (explicit VR LE, no meta). InlineBinary is decoded; BulkDataURI values
 * are left empty and listed in the file's warnings. On failure *ei says
 * where (byte offset in the JSON text) and why. */
WUR enum err dcm_json_read(const uint8_t *json, size_t len, struct dcm_file **out, struct dcm_errinfo *ei);

#endif
