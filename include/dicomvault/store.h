/* store.h: the ingest and retrieve paths shared by every protocol: one
 * pipeline, two protocols (DICOMweb and DIMSE). Layer: core. */
#ifndef DICOMVAULT_STORE_H
#define DICOMVAULT_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/io.h"

struct vault;

/* Why a store was refused with ERR_DENIED: a conflict with what is stored. */
enum store_conflict {
	STORE_CONFLICT_NONE = 0,
	STORE_CONFLICT_CONTENT,    /* the SOP Instance UID is stored with other bytes */
	STORE_CONFLICT_PATIENT,    /* the Study Instance UID belongs to another patient */
	STORE_CONFLICT_STUDY,      /* the Series Instance UID belongs to another study */
};

/* What a conflict is, in a sentence (no UIDs: short enough for a DIMSE
 * error comment); NULL for STORE_CONFLICT_NONE. */
const char *store_conflict_str(enum store_conflict c);

struct store_result {
	char sop_uid[65];
	char sop_class[65];
	char study_uid[65];
	char series_uid[65];
	bool existed;          /* identical bytes were already stored */
	uint8_t sha256[32];    /* fixity of the plaintext */
	uint64_t size;
	uint8_t patient_key[32];   /* the patient's keyed hash (index and audit), */
	bool has_patient_key;      /* set on success */
	char object_key[33];       /* the new object's key (store_hook), else "" */
	enum store_conflict conflict;   /* set with ERR_DENIED (the why names the UIDs) */
};

/* Stores one Part 10 object. in must be random access (memory or a file):
 * it is parsed, then encrypted under the patient's data key while its
 * SHA-256 is computed, written durably, then indexed. The same SOP
 * Instance UID again: identical bytes succeed (existed), different bytes are
 * refused (ERR_DENIED) and nothing is replaced. */
WUR enum err store_instance(struct vault *v, struct src *in, const char *collection, struct store_result *res,
                            char *why, size_t whylen);
/* The same, for a caller that already has the SHA-256 of in's bytes (a
 * spool hashes as it receives, spool_sha256): the store does not hash
 * them again. sha256 NULL: as store_instance. */
WUR enum err store_instance_hashed(struct vault *v, struct src *in, const uint8_t *sha256, const char *collection,
                                   struct store_result *res, char *why, size_t whylen);

/* The early object: a data set encrypted and written while it is still
 * being received (a C-STORE's P-DATA, a STOW-RS part), so that after its
 * last byte only the syncs are left. store_early_begin takes the first n
 * bytes of a Part 10 file once they hold every element before the Pixel
 * Data (the patient's and the SOP Instance UID: the data key and the
 * object's identity), asks may (when not NULL) whether the data set that
 * head begins may be stored at all (the caller's access checks, so that a
 * refused store records no patient), finds or records the patient, starts
 * the object and encrypts those bytes into it. ERR_AGAIN: the head is not
 * complete yet (call again with more bytes); ERR_DENIED: may said no; any
 * other error: do not start early. In every case but ERR_OK the store then
 * runs as usual at the end, and its checks decide. Nothing is visible until
 * store_instance_early. */
struct store_early;
struct dcm_file;
/* The longest head a caller waits for (one whose Pixel Data begins later
 * is stored at its end, as usual). */
#define STORE_EARLY_HEAD_MAX (512u * 1024)
typedef bool (*store_may_fn)(void *ctx, const struct dcm_file *head);
WUR enum err store_early_begin(struct vault *v, const uint8_t *head, size_t n, store_may_fn may, void *ctx,
                               struct store_early **out);
/* The next bytes, in order. An error leaves the early object unusable:
 * free it (the store then runs as usual). */
WUR enum err store_early_write(struct store_early *e, const void *p, size_t n);
/* What a receiver keeps for it (zeroed at the start of each data set). */
struct store_early_rx {
	struct store_early *e;   /* started, or NULL */
	size_t next;             /* try again once the spool holds this much */
	bool off;                /* not for this data set (any more) */
};
struct spool;
/* Called after each spool_write(sp, p, n) of a data set: the bytes go
 * into its early object, or one is tried (store_early_begin over what the
 * spool holds, each time it has doubled, up to STORE_EARLY_HEAD_MAX). A
 * failure only means the store runs as usual at the end. */
void store_early_feed(struct vault *v, struct spool *sp, const void *p, size_t n, store_may_fn may, void *ctx,
                      struct store_early_rx *rx);
/* Discards an early object that is not stored (takes NULL). */
void store_early_free(struct store_early *e);
/* The caller's success audit record of a store, written so that its
 * fsync runs beside the index commit's and the object's
 * (docs/internals/durability.md, steps 6-8). begin: the instance's rows
 * are about to be committed (res filled: UIDs, patient key, object key);
 * the caller writes its record and starts its fsync (audit_append_start).
 * end, once after each begin: stored, the store stands and the caller
 * waits for the record (audit_wait) before the store returns; !stored, it
 * does not (the commit or the object's fsync failed, a study or series
 * another store gave another patient or study meanwhile, or another store
 * of the same SOP Instance UID committed first): the store returns its
 * error and the caller's failure record voids its success record (the
 * same patient and object), or, when it was the same bytes, begin and end
 * come again with res->existed. For identical bytes already stored, begin
 * and end come one after the other. A conflict with the stored study or
 * series found before begin refuses the store with no call (res has the
 * patient key). */
struct store_hook {
	void (*begin)(void *ctx, const struct store_result *res);
	void (*end)(void *ctx, const struct store_result *res, bool stored);
	void *ctx;
};

/* store_instance_hashed for bytes an early object has (every one, in
 * order, sha256 their hash): when the whole data set has the SOP Instance
 * UID and the patient its head had, the object is finished and indexed;
 * otherwise it is discarded and in stored as usual. e is consumed (may be
 * NULL: stored as usual); hook may be NULL. */
WUR enum err store_instance_early(struct vault *v, struct src *in, const uint8_t *sha256, struct store_early *e,
                                  const struct store_hook *hook, const char *collection, struct store_result *res,
                                  char *why, size_t whylen);

/* The keyed hash that identifies a patient in the index (and in grants of
 * a patient scope): Patient ID and Issuer of Patient ID (NULL or "" when
 * none), trailing spaces ignored. ERR_PARSE for an empty ID. */
WUR enum err store_patient_key(const struct vault *v, const char *id, const char *issuer, uint8_t out[32]);

/* Writes the stored bytes of an instance to out, releasing only
 * authenticated plaintext, and checks the SHA-256 fixity at the end
 * (ERR_AUTH on any mismatch or tampering; the sink may then hold a prefix). */
WUR enum err retrieve_instance(struct vault *v, const char *sop_uid, struct sink *out, char *why, size_t whylen);

/* Retrieval in two steps, so that the index (which the caller may guard
 * with a lock) is used only while opening: retrieve_open looks the instance
 * up and unwraps its key; retrieve_read then releases authenticated
 * plaintext without touching the index and, at the end, checks the SHA-256
 * fixity (ERR_AUTH on any tampering or mismatch: the bytes already given
 * must then be discarded by the caller, e.g. by aborting the response). */
struct retrieval;
WUR enum err retrieve_open(struct vault *v, const char *sop_uid, struct retrieval **out, char *why, size_t whylen);
WUR enum err retrieve_read(struct retrieval *rt, void *buf, size_t want, size_t *got);
/* Before the first read: skip the whole-object SHA-256 (serving reads:
 * every chunk is still authenticated by AES-GCM with its index, the last
 * flag and the object's identity bound in, and the length is checked, so a
 * changed, truncated, reordered or swapped object still fails; the fixity
 * value stays for scrub, export and migration, which keep checking it). */
void retrieve_no_fixity(struct retrieval *rt);
uint64_t retrieve_size(const struct retrieval *rt);
void retrieve_close(struct retrieval *rt);
/* The data key of the last patient opened, kept by a caller that opens
 * many instances in a row (a study or series answer), so that one
 * patient's key is unwrapped once, not once an instance. Zeroed storage is
 * empty; retrieve_keys_fini frees the key (guarded memory, wiped). Every
 * retrieval opened with it must be closed before. */
struct retrieve_keys {
	uint8_t patient[16];
	struct secret *dk;
};
WUR enum err retrieve_open_keys(struct vault *v, const char *sop_uid, struct retrieve_keys *keys,
                                struct retrieval **out, char *why, size_t whylen);
void retrieve_keys_fini(struct retrieve_keys *keys);
/* The plaintext as a random-access source (read, read_at, skip; size
 * known) for parsing a stored object without reading its bulk data:
 * every chunk a read touches is authenticated (its GCM tag) before any of
 * its bytes are released, and the object's length is checked against the
 * index at once (ERR_AUTH), but the whole-object SHA-256 fixity is checked
 * only by a full sequential retrieve_read. s borrows rt (valid until
 * retrieve_close; src_close(s) is a no-op); do not mix with retrieve_read.
 * ERR_AUTH from a read is sticky. */
WUR enum err retrieve_src(struct retrieval *rt, struct src *s);
/* The object parsed from retrieve_src(rt, s) (s: the caller's storage,
 * valid as long as *f), values over bulk_threshold left in it. A read that
 * failed authentication is ERR_AUTH even where the parser reported it as
 * malformed data; a parse error says why. */
struct dcm_file;
WUR enum err retrieve_parse(struct retrieval *rt, uint32_t bulk_threshold, struct src *s, struct dcm_file **f,
                            char *why, size_t whylen);

#endif
