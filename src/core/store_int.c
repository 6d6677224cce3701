/* store_int.c: small helpers shared by the ingest (store.c), retrieval
 * (retrieve.c) and query paths. Layer: core. */
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "store_int.h"

void store_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hexd[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexd[p[i] >> 4];
		out[2 * i + 1] = hexd[p[i] & 15];
	}
	out[2 * n] = 0;
}

void store_object_ad(struct wbuf *w, const char *object_key, const char *sop_uid)
{
	aead_ad_put(w, "dicomvault-object-v1", 20);
	aead_ad_put(w, object_key, strlen(object_key));
	aead_ad_put(w, sop_uid, strlen(sop_uid));
}

void store_ix_lock(struct vault *v, bool *locked)
{
	if (v->ix_lock != NULL && !*locked)
		pthread_mutex_lock(v->ix_lock);
	*locked = true;
}

void store_ix_unlock(struct vault *v, bool *locked)
{
	if (v->ix_lock != NULL && *locked)
		pthread_mutex_unlock(v->ix_lock);
	*locked = false;
}

enum err store_unindex(struct vault *v, const char *sop_uid)
{
	struct index_store *ix = v->ix;
	bool locked = false;
	enum err rc;

	store_ix_lock(v, &locked);
	rc = ix->ops->begin(ix);
	if (rc == ERR_OK) {
		rc = ix->ops->instance_remove(ix, sop_uid);
		if (rc == ERR_OK)
			rc = ix->ops->commit(ix);
		else
			ix->ops->rollback(ix);
	}
	store_ix_unlock(v, &locked);
	return rc;
}

enum err store_object_intact(struct vault *v, const char *sop_uid)
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
