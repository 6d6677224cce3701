/* recover.c: crash recovery of the object store at vault_open. A store
 * writes its object, then indexes it while the object's fsync runs, and
 * answers only once both are durable (SPEC section 6: an acknowledged
 * store is durable; docs/internals/durability.md has the steps). The blob
 * store keeps such an object "pending" until store_common settles it. A
 * crash can leave a pending object the index does not reference (written,
 * never indexed: removed), or one the index references whose fsync may
 * not have completed: it is read back whole, every chunk authenticated and
 * its SHA-256 fixity checked against the index; if it fails, the
 * instance's rows are removed with it (the store was never acknowledged).
 * Layer: core. */
#include "dicomvault/blob.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"

/* Reads the stored instance back whole: ERR_OK if intact. */
static enum err object_intact(struct vault *v, const char *sop_uid)
{
	struct retrieval *rt = NULL;
	uint8_t buf[65536];
	size_t got;
	char why[160];
	enum err rc;

	rc = retrieve_open(v, sop_uid, &rt, why, sizeof why);
	do
		rc = rc == ERR_OK ? retrieve_read(rt, buf, sizeof buf, &got) : rc;
	while (rc == ERR_OK && got > 0);
	retrieve_close(rt);
	return rc;
}

/* Whether the pending object key stays: indexed and intact. */
static enum err keep(void *ctx, const char *key, bool *yes)
{
	struct vault *v = ctx;
	struct index_store *ix = v->ix;
	struct idx_instance in;
	enum err rc;

	*yes = false;
	rc = ix->ops->instance_by_key(ix, key, &in);
	if (rc == ERR_NOTFOUND)
		return ERR_OK;   /* never indexed */
	if (rc != ERR_OK)
		return rc;
	rc = object_intact(v, in.uid);
	if (rc == ERR_OK) {
		*yes = true;
		return ERR_OK;
	}
	if (rc == ERR_NOMEM)
		return rc;
	/* indexed before its object was durable, and the crash came first */
	rc = ix->ops->begin(ix);
	if (rc == ERR_OK) {
		rc = ix->ops->instance_remove(ix, in.uid);
		if (rc == ERR_OK)
			rc = ix->ops->commit(ix);
		else
			ix->ops->rollback(ix);
	}
	if (rc == ERR_OK)
		log_warn("object store recovery: object %s was indexed but incomplete after a crash (never acknowledged): "
		         "its instance is removed", key);
	return rc;
}

enum err vault_recover(struct vault *v, unsigned *removed)
{
	enum err rc;

	*removed = 0;
	rc = v->blobs->ops->recover(v->blobs, keep, v, removed);
	if (rc != ERR_OK)
		log_error("object store recovery: %s", err_str(rc));
	else if (*removed > 0)
		log_warn("object store recovery: %u unfinished or never indexed file(s) removed", *removed);
	return rc;
}
