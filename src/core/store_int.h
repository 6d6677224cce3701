/* store_int.h: what the store's files (store.c, retrieve.c, query.c)
 * share. Not a public header. Layer: core. */
#ifndef DICOMVAULT_STORE_INT_H
#define DICOMVAULT_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/wbuf.h"

struct vault;

/* n bytes as 2n lowercase hex digits and a NUL. */
void store_hex(const uint8_t *p, size_t n, char *out);
/* The associated data binding an object to its identity. */
void store_object_ad(struct wbuf *w, const char *object_key, const char *sop_uid);
/* v->ix_lock (if any), taken or released once: *locked tracks it. */
void store_ix_lock(struct vault *v, bool *locked);
void store_ix_unlock(struct vault *v, bool *locked);

#endif
