/* recover.c: crash recovery of the object store at vault_open. A store
 * writes the object durably before the index transaction that references
 * it commits (SPEC section 6: an acknowledged store is durable), so a crash
 * between the two leaves an object no row points at, and a crash during the
 * write leaves a temporary file. Neither is visible (only indexed objects
 * are ever read), but they would pile up: the blob store keeps such objects
 * "pending" until store_instance settles them, and here every pending one
 * the index does not reference is removed. See docs/internals/tokens.md
 * (crash test). Layer: core. */
#include "dicomvault/blob.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/vault.h"

static enum err referenced(void *ctx, const char *key, bool *yes)
{
	struct index_store *ix = ctx;

	return ix->ops->object_key_used(ix, key, yes);
}

enum err vault_recover(struct vault *v, unsigned *removed)
{
	enum err rc;

	*removed = 0;
	rc = v->blobs->ops->recover(v->blobs, referenced, v->ix, removed);
	if (rc != ERR_OK)
		log_error("object store recovery: %s", err_str(rc));
	else if (*removed > 0)
		log_warn("object store recovery: %u unfinished or never indexed file(s) removed", *removed);
	return rc;
}
