/* store_int.h: what the store's files (store.c, retrieve.c, query.c)
 * share. Not a public header. Layer: core. */
#ifndef DICOMVAULT_STORE_INT_H
#define DICOMVAULT_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

struct vault;

/* Keyed hashes of the index (HMAC-SHA-256 under the index key of a label
 * and a value): store.c writes them, query.c looks rows up by them. The
 * name is upper-cased (ASCII) first; values have no trailing padding. */
#define STORE_KEY_PATIENT_ID   "patient-id-only"
#define STORE_KEY_PATIENT_NAME "patient-name"
#define STORE_KEY_ACCESSION    "accession"
WUR enum err store_keyed(const struct vault *v, const char *label, const void *p, size_t n, uint8_t out[32]);
/* The keyed hash of one component group of a patient's name, as
 * qry_pn_split gives it (UTF-8, no trailing padding or empty components),
 * folded by qry_pn_fold: the store hashes every group of the name, a query
 * an exact name's group. ERR_LIMIT for a group over STORE_PN_HASH_MAX
 * bytes. (Schema 3 hashed groups upper-cased in ASCII only, under
 * "patient-name-group"; schema 4 dropped those hashes.) */
#define STORE_KEY_PATIENT_PN "patient-name-folded"
#define STORE_PN_HASH_MAX 1024u
WUR enum err store_pn_keyed(const struct vault *v, const char *g, size_t n, uint8_t out[32]);

/* n bytes as 2n lowercase hex digits and a NUL. */
void store_hex(const uint8_t *p, size_t n, char *out);
/* The associated data binding an object to its identity. */
void store_object_ad(struct wbuf *w, const char *object_key, const char *sop_uid);
/* v->ix_lock (if any), taken or released once: *locked tracks it. */
void store_ix_lock(struct vault *v, bool *locked);
void store_ix_unlock(struct vault *v, bool *locked);
/* Removes the index rows of an instance (and its series and study when
 * it was their last), in a transaction of its own under v->ix_lock: an
 * instance indexed whose object did not become durable (store.c after a
 * failed fsync; recover.c after a crash). */
WUR enum err store_unindex(struct vault *v, const char *sop_uid);
/* Reads the stored instance back whole (every chunk authenticated, the
 * SHA-256 of the whole checked against the index): ERR_OK if intact,
 * ERR_AUTH if not (recover.c after a crash; store.c before answering
 * "already stored" for identical bytes). */
WUR enum err store_object_intact(struct vault *v, const char *sop_uid);

#endif
