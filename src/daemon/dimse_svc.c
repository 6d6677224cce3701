/* dimse_svc.c: the DIMSE services of the DICOM listener (PS3.4, PS3.7):
 * which presentation contexts a peer's rights allow, and the commands on
 * an established association. C-ECHO; C-FIND (dimse_find.c); C-GET and
 * C-MOVE (dimse_get.c); C-STORE SCP for every storage SOP
 * class of sop_classes.tsv (the generated table dimse_storage_sop), in the
 * native and the common encapsulated transfer syntaxes, the data set kept
 * as received (never transcoded): its fragments are spooled (spool.h: in
 * memory up to 1 MiB, beyond that encrypted under a key of its own on
 * disk, as STOW spools its parts) behind a File Meta
 * Information header we write, then stored with store_instance into the
 * peer's collection. Commands the vault does not offer are answered with
 * status 0211H (unrecognized operation); a command set that does not parse
 * aborts the association. Layer: daemon. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/access.h"
#include "dicomvault/dataset.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/spool.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "dimse_int.h"

extern const char *const dimse_storage_sop[];
extern const size_t dimse_storage_sop_n;

#define UID_VERIFICATION "1.2.840.10008.1.1"

static const char *const ts_native[] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", NULL };

/* C-STORE, in this order of preference: a lossless encapsulated transfer
 * syntax when the peer proposes one (the object is then stored as it was
 * made, never decompressed; or compressed without loss by a peer that can),
 * then native (explicit VR little endian first), and a lossy one only when
 * the context offers nothing else: accepting a lossy syntax that a peer
 * holding native pixels also proposed would make it compress them
 * irreversibly (storescu +C), where native costs a peer holding lossy data
 * only a decompression (its Lossy Image Compression attribute stays). */
static const char *const ts_storage[] = {
	"1.2.840.10008.1.2.4.57",  /* JPEG lossless */
	"1.2.840.10008.1.2.4.70",  /* JPEG lossless SV1 */
	"1.2.840.10008.1.2.4.80",  /* JPEG-LS lossless */
	"1.2.840.10008.1.2.4.90",  /* JPEG 2000 lossless */
	"1.2.840.10008.1.2.4.201", /* HTJ2K lossless */
	"1.2.840.10008.1.2.4.202", /* HTJ2K lossless RPCL */
	"1.2.840.10008.1.2.5",     /* RLE lossless */
	"1.2.840.10008.1.2.1",     /* explicit VR little endian */
	"1.2.840.10008.1.2",       /* implicit VR little endian */
	"1.2.840.10008.1.2.1.99",  /* deflated explicit VR little endian */
	"1.2.840.10008.1.2.2",     /* explicit VR big endian (retired) */
	"1.2.840.10008.1.2.4.50",  /* JPEG baseline */
	"1.2.840.10008.1.2.4.51",  /* JPEG extended */
	"1.2.840.10008.1.2.4.81",  /* JPEG-LS near-lossless */
	"1.2.840.10008.1.2.4.91",  /* JPEG 2000 */
	"1.2.840.10008.1.2.4.203", /* HTJ2K */
	"1.2.840.10008.1.2.4.100", /* MPEG2 MP@ML */
	"1.2.840.10008.1.2.4.101", /* MPEG2 MP@HL */
	"1.2.840.10008.1.2.4.102", /* MPEG-4 AVC/H.264 HP@4.1 */
	"1.2.840.10008.1.2.4.103", /* MPEG-4 AVC/H.264 BD */
	"1.2.840.10008.1.2.4.104", /* MPEG-4 AVC/H.264 HP@4.2 2D */
	"1.2.840.10008.1.2.4.105", /* MPEG-4 AVC/H.264 HP@4.2 3D */
	"1.2.840.10008.1.2.4.106", /* MPEG-4 AVC/H.264 stereo HP@4.2 */
	"1.2.840.10008.1.2.4.107", /* HEVC/H.265 M@5.1 */
	"1.2.840.10008.1.2.4.108", /* HEVC/H.265 M10@5.1 */
	NULL
};

static bool is_storage(const char *uid)
{
	size_t i;

	for (i = 0; i < dimse_storage_sop_n; i++)
		if (strcmp(dimse_storage_sop[i], uid) == 0)
			return true;
	return false;
}

bool dimse_svc_is_storage(const char *uid)
{
	return is_storage(uid);
}

static bool accept_storage(void *ctx, const char *abstract)
{
	(void)ctx;
	return is_storage(abstract);
}

/* The services other than storage, each with the right that offers it,
 * in the order they are offered. */
static const struct {
	const char *abstract;
	unsigned right;
} services[] = {
	{ UID_VERIFICATION, PEER_RIGHT_ECHO },
	{ DIMSE_FIND_PATIENT_ROOT, PEER_RIGHT_FIND }, { DIMSE_FIND_STUDY_ROOT, PEER_RIGHT_FIND },
	{ DIMSE_GET_PATIENT_ROOT, PEER_RIGHT_GET },   { DIMSE_GET_STUDY_ROOT, PEER_RIGHT_GET },
	{ DIMSE_MOVE_PATIENT_ROOT, PEER_RIGHT_MOVE }, { DIMSE_MOVE_STUDY_ROOT, PEER_RIGHT_MOVE },
};

unsigned dimse_svc_right_of(const char *abstract)
{
	size_t i;

	for (i = 0; i < sizeof services / sizeof services[0]; i++)
		if (strcmp(abstract, services[i].abstract) == 0)
			return services[i].right;
	return is_storage(abstract) ? PEER_RIGHT_STORE | PEER_RIGHT_GET : 0;
}

/* The services of the peer's rights. Storage SOP classes are accepted for
 * the store right (the peer as SCU) and for the get right (the peer as
 * SCP of the C-GET sub-operations: the SCP role it proposes with SCP/SCU
 * role selection is then granted). */
void dimse_svc_policy(const struct peer *pe, struct ul_syntax syn[DIMSE_SVC_MAX_SYN], struct ul_policy *pol)
{
	size_t n = 0, i;

	memset(pol, 0, sizeof *pol);
	for (i = 0; i < sizeof services / sizeof services[0] && n < DIMSE_SVC_MAX_SYN; i++)
		if (pe->rights & services[i].right)
			syn[n++] = (struct ul_syntax){ services[i].abstract, ts_native, false };
	pol->syn = n > 0 ? syn : NULL;
	pol->nsyn = n;
	if (pe->rights & (PEER_RIGHT_STORE | PEER_RIGHT_GET))
		pol->accept_abstract = accept_storage;
	pol->default_requestor_scp = (pe->rights & PEER_RIGHT_GET) != 0;
	pol->default_ts = ts_storage;
}

/* ---- C-STORE ---- */

struct dimse_store {
	struct spool *sp;          /* the data set as it arrives (spool.h) */
	struct store_early_rx early; /* its object, encrypted as it arrives (store.h) */
	uint16_t status;           /* != 0: failed already; the rest is read and dropped */
	const char *comment;
};

#define SPOOL_LABEL "dimse-spool"

static void store_free(struct dimse_store *st)
{
	if (st == NULL)
		return;
	store_early_free(st->early.e);
	spool_free(st->sp);
	free(st);
}

/* An explicit VR little endian element of the meta group, short form. */
static void meta_str(struct wbuf *w, uint16_t elem, const char vr[2], const char *v, char pad)
{
	size_t n = strlen(v);
	size_t padded = n + (n & 1);

	wbuf_put_u16le(w, 0x0002);
	wbuf_put_u16le(w, elem);
	wbuf_put(w, vr, 2);
	wbuf_put_u16le(w, (uint16_t)padded);
	wbuf_put(w, v, n);
	if (n & 1)
		wbuf_putc(w, pad);
}

/* The preamble, "DICM" and the File Meta Information (PS3.10 7.1) of the
 * data set the command announces, in transfer syntax ts. */
static enum err meta_build(struct wbuf *w, const struct dimse_cmd *c, const char *ts, const char *source_ae)
{
	static const uint8_t zeros[128];
	struct wbuf g;
	enum err rc;

	wbuf_init(&g, 4096);
	wbuf_put_u16le(&g, 0x0002);
	wbuf_put_u16le(&g, 0x0001);
	wbuf_put(&g, "OB\0\0", 4);
	wbuf_put_u32le(&g, 2);
	wbuf_putc(&g, 0);
	wbuf_putc(&g, 1);
	meta_str(&g, 0x0002, "UI", c->sop_class, 0);
	meta_str(&g, 0x0003, "UI", c->sop_instance, 0);
	meta_str(&g, 0x0010, "UI", ts, 0);
	meta_str(&g, 0x0012, "UI", DCM_IMPL_CLASS_UID, 0);
	meta_str(&g, 0x0013, "SH", DCM_IMPL_VERSION, ' ');
	if (source_ae[0])
		meta_str(&g, 0x0016, "AE", source_ae, ' ');
	rc = wbuf_err(&g);
	if (rc == ERR_OK) {
		wbuf_put(w, zeros, sizeof zeros);
		wbuf_put(w, "DICM", 4);
		wbuf_put_u16le(w, 0x0002);
		wbuf_put_u16le(w, 0x0000);
		wbuf_put(w, "UL", 2);
		wbuf_put_u16le(w, 4);
		wbuf_put_u32le(w, (uint32_t)g.len);
		wbuf_put(w, g.p, g.len);
		rc = wbuf_err(w);
	}
	wbuf_fini(&g);
	return rc;
}

static void store_fail(struct dimse_store *st, uint16_t status, const char *comment)
{
	if (st->status == 0) {
		st->status = status;
		st->comment = comment;
	}
}

/* A C-STORE-RQ: starts the spool (a failure is answered once the data set
 * has gone by). */
static enum err store_begin(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c)
{
	struct dimse_store *st = calloc(1, sizeof *st);
	const char *abstract = NULL, *ts = NULL;
	struct wbuf meta;

	if (st == NULL)
		return ERR_NOMEM;
	a->st = st;
	a->in_data = true;
	a->data_pcid = pcid;
	a->rq = *c;
	if (!ul_context(&a->u, pcid, &abstract, &ts) || strcmp(abstract, c->sop_class) != 0) {
		store_fail(st, DIMSE_SOP_NOT_SUPPORTED, "SOP class does not match the presentation context");
		return ERR_OK;
	}
	if (!is_storage(c->sop_class)) {
		store_fail(st, DIMSE_SOP_NOT_SUPPORTED, "SOP class not supported");
		return ERR_OK;
	}
	/* a peer with the get right only has its storage contexts accepted
	 * (for the SCP role of C-GET sub-operations): its own C-STORE is not
	 * an unsupported class but a right it lacks */
	if (!(a->peer->rights & PEER_RIGHT_STORE)) {
		store_fail(st, DIMSE_NOT_AUTHORIZED, "Not authorized: this peer has no store right");
		return ERR_OK;
	}
	{
		char dir[VAULT_PATH_MAX + 8];
		snprintf(dir, sizeof dir, "%s/tmp", a->o->vault->dir);
		if (spool_new(&st->sp, dir, SPOOL_LABEL) != ERR_OK) {
			store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot start the spool");
			return ERR_OK;
		}
	}
	wbuf_init(&meta, 8192);
	if (meta_build(&meta, c, ts, a->calling) != ERR_OK || spool_write(st->sp, meta.p, meta.len) != ERR_OK)
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot write the spool");
	wbuf_fini(&meta);
	return ERR_OK;
}

static bool early_may(void *ctx, const struct dcm_file *head);

static void store_chunk(struct dimse_assoc *a, struct dimse_store *st, const uint8_t *p, size_t n)
{
	if (st->status != 0 || n == 0)
		return;
	if (spool_write(st->sp, p, n) != ERR_OK) {
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot write the spool");
		return;
	}
	store_early_feed(a->o->vault, st->sp, p, n, early_may, a, &st->early);
}

/* What the data set says, before it is stored: its UIDs, the patient's
 * keyed hash and the collection it joins. */
struct peeked {
	char sop[65], cls[65], study[65], series[65];
	bool vr_mismatch;   /* the data set is not in the context's VR encoding */
	bool has_meta;      /* File Meta Information elements (group 0002) in the data set */
	uint8_t patient[32];
	bool has_patient;
	char coll[ACCESS_NAME_MAX + 1];
};

static void peek_ds(struct dimse_assoc *a, const struct dcm_ds *ds, struct peeked *pk)
{
	char id[256], issuer[256];

	if (dcm_ds_get_cstr(ds, 0x00080018, pk->sop, sizeof pk->sop) != ERR_OK)
		pk->sop[0] = 0;
	if (dcm_ds_get_cstr(ds, 0x00080016, pk->cls, sizeof pk->cls) != ERR_OK)
		pk->cls[0] = 0;
	if (dcm_ds_get_cstr(ds, 0x0020000D, pk->study, sizeof pk->study) != ERR_OK)
		pk->study[0] = 0;
	if (dcm_ds_get_cstr(ds, 0x0020000E, pk->series, sizeof pk->series) != ERR_OK)
		pk->series[0] = 0;
	if (dcm_ds_get_cstr(ds, 0x00100020, id, sizeof id) == ERR_OK) {
		if (dcm_ds_get_cstr(ds, 0x00100021, issuer, sizeof issuer) != ERR_OK)
			issuer[0] = 0;
		pk->has_patient = store_patient_key(a->o->vault, id, issuer, pk->patient) == ERR_OK;
	}
	snprintf(pk->coll, sizeof pk->coll, "%s", access_collection_for(a->o->colls, ds, a->calling, a->peer->collection));
}

static enum err store_peek(struct dimse_assoc *a, struct src *src, struct peeked *pk)
{
	struct dcm_read_opts o;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	enum err rc;

	memset(&o, 0, sizeof o);
	o.bulk_threshold = DCM_DEFAULT_BULK;
	rc = dcm_file_read(src, &o, &f, &ei);
	if (rc != ERR_OK)
		return rc;
	peek_ds(a, &f->ds, pk);
	pk->vr_mismatch = f->vr_mismatch;
	pk->has_meta = dcm_ds_has_group(&f->ds, 0x0002);
	dcm_file_free(f);
	return ERR_OK;
}

/* Whether this association may store what pk describes: 0, or the status
 * and comment of the refusal. */
static uint16_t store_allowed(struct dimse_assoc *a, const struct peeked *pk, const char **comment)
{
	struct vault *v = a->o->vault;

	if (a->o->store_wanted != NULL && !a->o->store_wanted(a->o->on_store_ctx, pk->study, pk->sop)) {
		*comment = "Not asked for";
		return DIMSE_NOT_AUTHORIZED;
	}
	/* a peer stores only into its own collection, or one a `calling_ae`
	 * rule routes it to (zero trust: a data set whose attributes, which
	 * the sender writes, a `match` rule routes elsewhere gives the peer no
	 * right there). import --from, the operator's own migration, takes
	 * whatever the rules choose: it takes only what it asked for. */
	if (!a->o->any_collection && strcmp(pk->coll, a->peer->collection) != 0 &&
	    !access_collection_routes_ae(a->o->colls, pk->coll, a->calling)) {
		*comment = "Study would belong to another collection";
		return DIMSE_NOT_AUTHORIZED;
	}
	/* with a user identity, the user's grants must allow it too */
	if (a->as_user) {
		enum err ue = dimse_user_load(a);
		if (ue != ERR_OK || !dimse_user_may(a, ACCESS_ACT_STORE, pk->coll, pk->study[0] ? pk->study : NULL,
		                                    pk->has_patient ? pk->patient : NULL)) {
			*comment = ue == ERR_OK ? "User not authorised to store here" : "User identity no longer valid";
			return DIMSE_NOT_AUTHORIZED;
		}
	}
	/* a study already stored keeps its collection: the peer must be bound to it */
	if (pk->study[0]) {
		struct idx_study cur;
		bool other = false;
		pthread_mutex_lock(v->ix_lock);
		if (v->ix->ops->study_get(v->ix, pk->study, &cur) == ERR_OK && strcmp(cur.collection, pk->coll) != 0)
			other = true;
		pthread_mutex_unlock(v->ix_lock);
		if (other) {
			*comment = "Study belongs to another collection";
			return DIMSE_NOT_AUTHORIZED;
		}
	}
	return 0;
}

/* store_early_begin's question, on the head of the data set */
static bool early_may(void *ctx, const struct dcm_file *head)
{
	struct dimse_assoc *a = ctx;
	struct peeked pk;
	const char *comment = NULL;

	/* not with a user identity: its check reads the token again and
	 * audits a refusal, which the end of the store does once */
	if (a->as_user)
		return false;
	memset(&pk, 0, sizeof pk);
	peek_ds(a, &head->ds, &pk);
	return strcmp(pk.sop, a->rq.sop_instance) == 0 && store_allowed(a, &pk, &comment) == 0;
}

/* The success audit record of a C-STORE, written beside the index commit
 * (store_hook) and waited for before the answer; rc stays ERR_INTERNAL if
 * the hook was not called. A store that then fails (its rows refused by
 * the commit, its object not durable) voids that record: the failure
 * record names its object too (voids, object; its patient is obj's). */
struct stored_audit {
	struct dimse_assoc *a;
	const struct audit_objects *obj;
	uint64_t ticket;
	enum err rc;
	bool voids;
	char object[33];
};

static void stored_begin(void *ctx, const struct store_result *res)
{
	struct stored_audit *sa = ctx;
	struct audit_objects obj = *sa->obj;

	obj.object = res->object_key;   /* left out of the record when empty */
	sa->rc = dimse_assoc_audit_start(sa->a, AUDIT_STORE, AUDIT_SUCCESS,
	                                 res->existed ? "already stored (DIMSE)" : "DIMSE C-STORE", &obj, &sa->ticket);
	snprintf(sa->object, sizeof sa->object, "%s", res->object_key);
}

static void stored_end(void *ctx, const struct store_result *res, bool stored)
{
	struct stored_audit *sa = ctx;

	(void)res;
	if (stored && sa->rc == ERR_OK)
		sa->rc = audit_wait(sa->a->o->audit, sa->ticket);
	else if (!stored && sa->rc == ERR_OK)
		sa->voids = true;   /* its success record is in the log */
}

static uint16_t store_finish(struct dimse_assoc *a, const char **comment, bool *existed)
{
	struct dimse_store *st = a->st;
	struct vault *v = a->o->vault;
	struct audit_objects obj;
	struct store_result res;
	struct stored_audit sa = { .rc = ERR_INTERNAL };
	struct peeked pk;
	struct src src;
	const char *refusal = NULL;
	uint16_t refused;
	char why[256] = "";
	enum err rc;

	memset(&pk, 0, sizeof pk);
	memset(&obj, 0, sizeof obj);
	obj.sop_uid = a->rq.sop_instance;
	if (st->status != 0)
		goto fail;
	if (spool_finish(st->sp) != ERR_OK) {
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot finish the spool");
		goto fail;
	}
	if (spool_src(st->sp, &src) != ERR_OK) {
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot reopen the spool");
		goto fail;
	}
	rc = store_peek(a, &src, &pk);
	src_close(&src);
	/* PS3.4 B.2.3: what cannot be read is Cxxx (cannot understand); a
	 * data set that is not the instance the command names, A900 */
	if (rc != ERR_OK) {
		store_fail(st, DIMSE_ERR_UNABLE, "Cannot understand: data set cannot be parsed");
		goto fail;
	}
	/* stored as received under the context's transfer syntax: a data set
	 * in the other VR encoding would be served mislabelled (PS3.7 6.3.1) */
	if (pk.vr_mismatch) {
		store_fail(st, DIMSE_ERR_UNABLE, "Cannot understand: VR encoding differs from the transfer syntax");
		goto fail;
	}
	/* group 0002 belongs to a file's meta information, never to a DIMSE
	 * data set (PS3.10 7.1, PS3.7 6.3.1): stored as received, a reader of
	 * the Part 10 file would take it for the meta (a Transfer Syntax UID
	 * in it relabels the whole object) */
	if (pk.has_meta) {
		store_fail(st, DIMSE_ERR_UNABLE, "Cannot understand: File Meta elements (0002,xxxx) in the data set");
		goto fail;
	}
	obj.study_uid = pk.study;
	obj.series_uid = pk.series;
	obj.patient = pk.has_patient ? pk.patient : NULL;
	if (pk.sop[0] == 0) {
		store_fail(st, DIMSE_ERR_DATASET, "Data set has no SOP Instance UID");
		goto fail;
	}
	if (strcmp(pk.sop, a->rq.sop_instance) != 0) {
		store_fail(st, DIMSE_ERR_DATASET, "SOP Instance UID differs from the command's");
		goto fail;
	}
	if (strcmp(pk.cls, a->rq.sop_class) != 0) {
		store_fail(st, DIMSE_ERR_DATASET, "SOP Class UID differs from the command's");
		goto fail;
	}
	refused = store_allowed(a, &pk, &refusal);
	if (refused != 0) {
		store_fail(st, refused, refusal);
		goto fail;
	}
	/* no store without its record: when the log cannot be made durable,
	 * storing would only add instances that are never acknowledged */
	if (audit_broken(a->o->audit)) {
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: the audit log cannot be written");
		goto fail;
	}
	if (spool_src(st->sp, &src) != ERR_OK) {
		store_fail(st, DIMSE_REFUSED_OOR, "Out of resources: cannot reopen the spool");
		goto fail;
	}
	memset(&res, 0, sizeof res);
	sa.a = a;
	sa.obj = &obj;
	rc = store_instance_early(v, &src, spool_sha256(st->sp), st->early.e, &(struct store_hook){ stored_begin, stored_end, &sa },
	                          pk.coll, &res, why, sizeof why);
	st->early.e = NULL;   /* consumed */
	src_close(&src);
	if (rc != ERR_OK) {
		switch (rc) {
		case ERR_PARSE:
			store_fail(st, DIMSE_ERR_DATASET, "Data set does not match SOP class");
			break;
		case ERR_DENIED:   /* a conflict with what is stored: say which (why has UIDs, too long for LO) */
			store_fail(st, DIMSE_ERR_UNABLE, store_conflict_str(res.conflict) != NULL ?
			                                 store_conflict_str(res.conflict) : "Refused by the archive");
			break;
		case ERR_NOMEM:
		case ERR_LIMIT:
		case ERR_IO:
			store_fail(st, DIMSE_REFUSED_OOR, "Out of resources");
			break;
		default:
			store_fail(st, DIMSE_ERR_UNABLE, "Cannot process the data set");
			break;
		}
		log_warn("C-STORE from %s: %s", a->calling, why[0] ? why : err_str(rc));
		goto fail;
	}
	/* no success without its audit record (written by stored_audit) */
	if (sa.rc != ERR_OK) {
		*comment = "Audit record cannot be written";
		return DIMSE_ERR_UNABLE;
	}
	*comment = NULL;
	*existed = res.existed;
	return DIMSE_SUCCESS;
fail:
	if (sa.voids) {
		/* after its success record: the same patient (obj's) and object */
		char reason[AUDIT_FIELD_MAX + 32];   /* (the record keeps AUDIT_FIELD_MAX bytes) */
		snprintf(reason, sizeof reason, "voids the store record before: %s", st->comment ? st->comment : "refused");
		obj.object = sa.object;
		(void)dimse_assoc_audit(a, AUDIT_STORE, AUDIT_FAILURE, reason, &obj);
	} else {
		(void)dimse_assoc_audit(a, AUDIT_STORE, st->status == DIMSE_NOT_AUTHORIZED ? AUDIT_DENIED : AUDIT_FAILURE,
		                        st->comment, &obj);
	}
	*comment = st->comment;
	return st->status;
}

static enum err answer(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *rq, uint16_t status,
                       const char *comment)
{
	struct dimse_cmd rsp;

	dimse_cmd_rsp(&rsp, rq, status);
	if (comment != NULL) {
		snprintf(rsp.error_comment, sizeof rsp.error_comment, "%.64s", comment);
		rsp.has |= DIMSE_F_ERROR_COMMENT;
	}
	return dimse_assoc_send_cmd(a, pcid, &rsp);
}

/* A command we do not serve: 0211H, at once or, when it announced a data
 * set (data), after that has gone by (dimse_svc_data reads and drops it). */
static enum err unrecognized(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c, bool data,
                             const char *comment)
{
	if (data) {
		a->in_data = true;
		a->data_pcid = pcid;
		a->rq = *c;
		return ERR_OK;
	}
	return answer(a, pcid, c, DIMSE_UNRECOGNIZED_OP, comment);
}

enum err dimse_svc_command(struct dimse_assoc *a, uint8_t pcid, const uint8_t *p, size_t n)
{
	struct dimse_cmd c;
	const char *why = NULL;
	enum err rc;

	if (a->in_data) {
		/* the previous command announced a data set that has not come:
		 * a protocol error (as DCMTK treats it), so that its unfinished
		 * store or query is never left behind or fed the next one's */
		log_warn("%s from %s: a command before the data set of %s (message %u): aborting", a->calling, a->addr,
		         dimse_field_name(a->rq.field), (unsigned)a->rq.msg_id);
		return ERR_PARSE;
	}
	rc = dimse_cmd_parse(p, n, &c);
	if (rc != ERR_OK) {
		log_warn("%s from %s: a command set that does not parse", a->calling, a->addr);
		return rc;
	}
	if (c.field & DIMSE_RSP_BIT) {
		/* a response to nothing outstanding (a late C-STORE-RSP of a
		 * C-GET that gave up waiting, say): PS3.7 has no answer to a
		 * response, so it is logged and dropped, its data set too */
		log_warn("%s from %s: a %s (command field %04XH) to no outstanding request: ignored", a->calling,
		         a->addr, dimse_field_name(c.field), (unsigned)c.field);
		if (dimse_has_data_set(&c)) {
			a->in_data = true;
			a->data_pcid = pcid;
			a->rq = c;
		}
		return ERR_OK;
	}
	rc = dimse_cmd_check(&c, &why);
	if (rc == ERR_UNSUPPORTED) {
		/* not a C- service (an N-CREATE, say): rebuilt as a request
		 * of its own field that a response can be built for, then 0211H */
		bool data = dimse_has_data_set(&c);
		char cls[sizeof c.sop_class];
		/* a copy: dimse_cmd_rq clears c before it reads the class */
		snprintf(cls, sizeof cls, "%s", c.sop_class[0] ? c.sop_class : UID_VERIFICATION);
		dimse_cmd_rq(&c, (uint16_t)(c.field & 0x7FFF), c.msg_id, cls);
		return unrecognized(a, pcid, &c, data, "Unrecognized operation");
	}
	if (rc != ERR_OK) {
		log_warn("%s from %s: invalid %s: %s", a->calling, a->addr, dimse_field_name(c.field), why ? why : "?");
		return rc;
	}
	switch (c.field) {
	case DIMSE_C_ECHO_RQ: {
		/* the Verification SOP class, on a Verification context */
		const char *abstract = NULL, *ts = NULL;
		if (strcmp(c.sop_class, UID_VERIFICATION) != 0 || !ul_context(&a->u, pcid, &abstract, &ts) ||
		    strcmp(abstract, UID_VERIFICATION) != 0)
			return answer(a, pcid, &c, DIMSE_SOP_NOT_SUPPORTED, "C-ECHO is for the Verification SOP class");
		return answer(a, pcid, &c, DIMSE_SUCCESS, NULL);
	}
	case DIMSE_C_STORE_RQ:
		return store_begin(a, pcid, &c);
	case DIMSE_C_FIND_RQ:
	case DIMSE_C_GET_RQ:
	case DIMSE_C_MOVE_RQ:
		return dimse_find_begin(a, pcid, &c);   /* collects the identifier */
	case DIMSE_C_CANCEL_RQ:
		return ERR_OK;   /* nothing outstanding to cancel; no response is sent */
	default:
		return unrecognized(a, pcid, &c, dimse_has_data_set(&c), "Operation not supported");
	}
}

enum err dimse_svc_data(struct dimse_assoc *a, uint8_t pcid, const uint8_t *p, size_t n, bool last)
{
	if (!a->in_data || pcid != a->data_pcid)
		return ERR_PARSE;   /* a data set no command announced */
	if (a->st != NULL)
		store_chunk(a, a->st, p, n);
	else if (a->fq != NULL)
		dimse_find_chunk(a, p, n);
	if (!last)
		return ERR_OK;
	a->in_data = false;
	if (a->fq != NULL)
		return a->rq.field == DIMSE_C_FIND_RQ ? dimse_find_run(a, pcid) : dimse_get_run(a, pcid);
	if (a->st != NULL) {
		const char *comment = NULL;
		bool existed = false;
		uint16_t status = store_finish(a, &comment, &existed);
		store_free(a->st);
		a->st = NULL;
		if (a->o->on_store != NULL)
			a->o->on_store(a->o->on_store_ctx, a->rq.sop_instance, status, existed, comment);
		return answer(a, pcid, &a->rq, status, comment);
	}
	if (a->rq.field & DIMSE_RSP_BIT)
		return ERR_OK;   /* the data set of a stray response: dropped */
	return answer(a, pcid, &a->rq, DIMSE_UNRECOGNIZED_OP, "Operation not supported");
}

void dimse_svc_end(struct dimse_assoc *a)
{
	/* an unfinished C-STORE leaves nothing (its spool file has no name),
	 * but the attempt is on the record: the peer sent part of an
	 * instance and the association ended (A-ABORT, closed, released or
	 * aborted by us) before the last fragment */
	if (a->st != NULL) {
		struct audit_objects obj;
		memset(&obj, 0, sizeof obj);
		obj.sop_uid = a->rq.sop_instance;
		(void)dimse_assoc_audit(a, AUDIT_STORE, AUDIT_FAILURE,
		                        "association ended before the data set was complete: nothing stored", &obj);
	}
	store_free(a->st);
	a->st = NULL;
	dimse_find_free(a);
	a->in_data = false;
}
