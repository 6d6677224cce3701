/* store.h: the ingest and retrieve paths shared by every protocol: one
 * pipeline, two protocols (DICOMweb and DIMSE). Layer: core. */
#ifndef DICOMVAULT_STORE_H
#define DICOMVAULT_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/io.h"

struct vault;

struct store_result {
	char sop_uid[65];
	char sop_class[65];
	char study_uid[65];
	char series_uid[65];
	bool existed;          /* identical bytes were already stored */
	uint8_t sha256[32];    /* fixity of the plaintext */
	uint64_t size;
};

/* Stores one Part 10 object. in must be random access (memory or a file):
 * it is parsed, then encrypted under the patient's data key while its
 * SHA-256 is computed, written durably, then indexed. The same SOP
 * Instance UID again: identical bytes succeed (existed), different bytes are
 * refused (ERR_DENIED) and nothing is replaced. */
WUR enum err store_instance(struct vault *v, struct src *in, const char *collection, struct store_result *res,
                            char *why, size_t whylen);

/* Writes the stored bytes of an instance to out, releasing only
 * authenticated plaintext, and checks the SHA-256 fixity at the end
 * (ERR_AUTH on any mismatch or tampering; the sink may then hold a prefix). */
WUR enum err retrieve_instance(struct vault *v, const char *sop_uid, struct sink *out, char *why, size_t whylen);

#endif
