/* recover.c: crash recovery of the object store at vault_open. A store
 * writes its object, then indexes it while the object's fsync runs, and
 * answers only once both are durable (SPEC section 6: an acknowledged
 * store is durable; docs/internals/durability.md has the steps). The blob
 * store keeps such an object "pending" until store_common settles it. A
 * crash can leave a pending object the index does not reference (written,
 * never indexed: removed), or one the index references whose fsync may
 * not have completed: it is read back whole, every chunk authenticated and
 * its SHA-256 fixity checked against the index; if it fails because its
 * write never reached the disk whole (missing, short, a page of zeros),
 * the instance's rows are removed with it (the store was never
 * acknowledged; its success may have been audited: the removal is audited
 * too). A whole object that fails is damage of a durable one (the pending
 * entry of an acknowledged store can come back after a power loss: settle
 * does not fsync its unlink): kept, logged and audited as an integrity
 * failure, for reads and export to name, never removed as unacknowledged. An
 * object written but never indexed is removed, and its removal audited
 * under its key: the store's success record, written beside the index
 * commit, may have become durable while the commit did not ("written"
 * also when the data was lost but the object's name was not: the record
 * comes after put_finish, which makes the name durable).
 * Layer: core. */
#include <stdio.h>
#include <string.h>
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/blob.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "store_int.h"

struct recovery {
	struct vault *v;
	struct audit *au;   /* the vault's log, opened at the first removal */
};

/* An audit record of recovery: a removed object (action AUDIT_STORE, a
 * store failure: its store was never acknowledged, but its success record,
 * written beside the index commit by store_hook, may be durable; this one,
 * naming the same object, says it does not stand), or a kept object that
 * failed its check (AUDIT_INTEGRITY_FAILURE). */
/* The vault's log, opened before recovery changes anything: when it cannot
 * be (missing or emptied: audit_open), nothing is removed and the vault
 * does not open, so that no removal goes unrecorded; the entries stay for
 * a recovery once the log is back. */
static enum err need_log(struct recovery *r)
{
	enum err rc;

	if (r->au != NULL)
		return ERR_OK;
	rc = vault_audit_open(r->v, &r->au);   /* signed at close */
	if (rc != ERR_OK) {
		log_error("object store recovery: the audit log cannot be opened (%s): nothing is removed until it is "
		          "restored", err_str(rc));
		return ERR_DENIED;
	}
	return ERR_OK;
}

static void audit_recovery(struct recovery *r, const char *action, const char *reason, const struct audit_objects *ob)
{
	enum err rc = need_log(r);

	if (rc == ERR_OK)
		rc = audit_append(r->au, &(struct audit_rec){ .action = action, .outcome = AUDIT_FAILURE,
		                                             .reason = reason,
		                                             .actor = { .user = "dicomvault", .addr = "local" },
		                                             .objects = *ob });
	if (rc != ERR_OK)
		log_error("object store recovery: cannot write the audit record (%s): %s", action, err_str(rc));
}

#define PAGE 4096u

/* Fills page from s as far as it goes: the bytes read (< PAGE at the end). */
static size_t read_page(struct src *s, uint8_t page[PAGE], enum err *rc)
{
	size_t n = 0, got = 0;

	while (n < PAGE && (*rc = s->read(s->ctx, page + n, PAGE - n, &got)) == ERR_OK && got > 0)
		n += got;
	return n;
}

/* Whether an object that failed its read-back was cut by the crash, its
 * write never on the disk whole: missing, shorter than the index's
 * plaintext size makes its ciphertext (objects are written in the default
 * chunk size), shorter than its header, or holding a page of zeros (a page
 * never written reads as zeros; no page of ciphertext is). Anything else
 * (a flipped bit, in the header too, a read error) is damage of a durable
 * object. */
static bool torn(struct vault *v, const struct idx_instance *in)
{
	static const uint8_t zero[PAGE];
	uint8_t page[PAGE];
	uint64_t total = 0, want = AEAD_HEADER_LEN;
	bool cut = false;
	struct src s;
	enum err rc;
	size_t n;

	if (aead_ct_size(in->size, 0, &want) != ERR_OK)
		want = AEAD_HEADER_LEN;
	rc = v->blobs->ops->get(v->blobs, in->object_key, &s);
	if (rc != ERR_OK)
		return rc == ERR_NOTFOUND;
	do {
		n = read_page(&s, page, &rc);
		cut = rc == ERR_OK && n > 0 && memcmp(page, zero, n) == 0;
		total += n;
	} while (rc == ERR_OK && !cut && n == PAGE);
	src_close(&s);
	if (rc != ERR_OK)
		return false;   /* unreadable now: kept for the reads to name */
	return cut || total < want;   /* want covers the header */
}

/* The series, study and patient rows of an instance row. */
static enum err locate(struct vault *v, const struct idx_instance *in, struct idx_series *se, struct idx_study *st,
                       struct idx_patient *pa)
{
	struct index_store *ix = v->ix;
	enum err rc = ix->ops->series_by_id(ix, in->series_id, se);

	if (rc == ERR_OK)
		rc = ix->ops->study_by_id(ix, se->study_id, st);
	if (rc == ERR_OK)
		rc = ix->ops->patient_by_id(ix, st->patient_id, pa);
	return rc;
}

/* Whether the pending object key stays: indexed and intact. */
static enum err keep(void *ctx, const char *key, bool written, bool *yes)
{
	struct recovery *r = ctx;
	struct vault *v = r->v;
	struct index_store *ix = v->ix;
	struct idx_instance in;
	struct idx_series se;
	struct idx_study st;
	struct idx_patient pa;
	bool located;
	enum err rc;

	*yes = false;
	rc = ix->ops->instance_by_key(ix, key, &in);
	if (rc == ERR_NOTFOUND && written && need_log(r) != ERR_OK) {
		*yes = true;   /* kept until the log is back */
		return ERR_DENIED;
	}
	if (rc == ERR_NOTFOUND) {
		if (written)
			audit_recovery(r, AUDIT_STORE,
			               "removed by recovery: its object was written but never indexed (never acknowledged)",
			               &(struct audit_objects){ .object = key });
		return ERR_OK;   /* never indexed */
	}
	if (rc != ERR_OK)
		return rc;
	rc = store_object_intact(v, in.uid);
	if (rc == ERR_OK) {
		*yes = true;
		return ERR_OK;
	}
	if (rc == ERR_NOMEM)
		return rc;
	rc = need_log(r);
	if (rc != ERR_OK) {
		*yes = true;
		return rc;
	}
	located = locate(v, &in, &se, &st, &pa) == ERR_OK;
	if (!torn(v, &in)) {
		/* whole but failing: damaged since it was durable (its store may
		 * well have been acknowledged), so kept and named */
		log_error("object store recovery: object %s of a stored instance fails its integrity check: kept (not "
		          "removed as unacknowledged); reads and export will name it",
		          key);
		audit_recovery(r, AUDIT_INTEGRITY_FAILURE, AUDIT_REASON_INTEGRITY,
		               &(struct audit_objects){ .patient = located ? pa.key_hmac : NULL,
		                                        .study_uid = located ? st.uid : "",
		                                        .series_uid = located ? se.uid : "", .sop_uid = in.uid,
		                                        .object = key });
		*yes = true;
		return ERR_OK;
	}
	/* indexed before its object was durable, and the crash came first:
	 * its rows go */
	rc = store_unindex(v, in.uid);
	if (rc != ERR_OK)
		return rc;
	log_warn("object store recovery: object %s was indexed but incomplete after a crash (never acknowledged): "
	         "its instance is removed", key);
	/* its store may have been audited as a success before the crash
	 * (store_hook): the removal is audited too */
	audit_recovery(r, AUDIT_STORE, "removed by recovery: its object was not durable at a crash (never acknowledged)",
	              &(struct audit_objects){ .patient = located ? pa.key_hmac : NULL,
	                                       .study_uid = located ? st.uid : "", .series_uid = located ? se.uid : "",
	                                       .sop_uid = in.uid, .object = key });
	return ERR_OK;
}

enum err vault_recover(struct vault *v, unsigned *removed)
{
	struct recovery r = { v, NULL };
	enum err rc;

	*removed = 0;
	rc = v->blobs->ops->recover(v->blobs, keep, &r, removed);
	audit_close(r.au);
	if (rc != ERR_OK)
		log_error("object store recovery: %s", err_str(rc));
	else if (*removed > 0)
		log_warn("object store recovery: %u unfinished or never indexed file(s) removed", *removed);
	return rc;
}
