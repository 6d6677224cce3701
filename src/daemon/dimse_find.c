/* dimse_find.c: the C-FIND SCP of the DICOM listener (PS3.4 C.4.1),
 * Patient Root and Study Root information models, every level. The
 * identifier (collected whole, at most DIMSE_MAX_IDENTIFIER bytes, in the
 * context's transfer syntax) becomes a query of the engine QIDO-RS uses
 * (core/query.c: its elements with a value are match keys, the empty ones
 * return keys), run with the peer's collection as the access filter; each
 * match is answered with a pending C-FIND-RSP carrying exactly the keys
 * asked for (plus the level's unique key), then a final status. Between
 * two results the socket is read without waiting: a C-CANCEL-RQ ends the
 * run with FE00H. One audit record ("query") per C-FIND, written before
 * the first match leaves: the matches are counted by a first run of the
 * query, then answered by a second, only those counted; one more
 * record when it ends short (cancel, failure, the association gone).
 * Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dict.h"
#include "dicomvault/index.h"
#include "dicomvault/io.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/vault.h"
#include "dimse_int.h"

#define TAG_QR_LEVEL      0x00080052u
#define TAG_CHARSET       0x00080005u
#define TAG_RETRIEVE_AE   0x00080054u
#define TAG_PATIENT_ID    0x00100020u

bool dimse_find_model(const char *sop_class)
{
	return strcmp(sop_class, DIMSE_FIND_PATIENT_ROOT) == 0 || strcmp(sop_class, DIMSE_FIND_STUDY_ROOT) == 0;
}

enum err dimse_find_begin(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c)
{
	struct dimse_find *fq = calloc(1, sizeof *fq);

	if (fq == NULL)
		return ERR_NOMEM;
	wbuf_init(&fq->id, DIMSE_MAX_IDENTIFIER);
	a->fq = fq;
	a->in_data = true;
	a->data_pcid = pcid;
	a->rq = *c;
	return ERR_OK;
}

void dimse_find_chunk(struct dimse_assoc *a, const uint8_t *p, size_t n)
{
	struct dimse_find *fq = a->fq;

	if (fq->too_big || n == 0)
		return;
	if (n > DIMSE_MAX_IDENTIFIER - fq->id.len) {
		fq->too_big = true;
		return;
	}
	wbuf_put(&fq->id, p, n);
}

bool dimse_find_parse(const struct dimse_find *fq, const char *ts, struct dcm_file **out)
{
	const struct dcm_ts *dts = dict_ts(ts, strlen(ts));
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct src_mem m;
	struct src s;

	*out = NULL;
	if (dts == NULL)
		return false;
	memset(&ro, 0, sizeof ro);
	ro.no_meta = true;
	ro.ts = dts;
	src_mem_init(&s, &m, fq->id.p != NULL ? fq->id.p : (const uint8_t *)"", fq->id.len);
	return dcm_file_read(&s, &ro, out, &ei) == ERR_OK;
}

void dimse_find_free(struct dimse_assoc *a)
{
	if (a->fq == NULL)
		return;
	if (a->fq->id.p)
		mem_wipe(a->fq->id.p, a->fq->id.len);
	wbuf_fini(&a->fq->id);
	free(a->fq);
	a->fq = NULL;
}

/* ---- the run ---- */

struct run {
	struct dimse_assoc *a;
	uint8_t pcid;
	bool explicit_vr;
	enum qry_level level;
	const char *level_name;
	const struct dcm_ds *id;    /* the identifier: the keys of every answer */
	uint16_t pending;           /* FF00H, or FF01H when a key is not matched */
	bool cancelled, release, bad_peer;
	uint64_t sent;
	/* what the record counted: a keyed hash (8 bytes of HMAC under a key
	 * of this run) of each match's patient and unique key, sorted; only
	 * those are answered (a row that began to match between the two runs,
	 * or moved to another patient, is left out, as if the query had come
	 * a moment earlier) */
	struct secret *idkey;
	uint64_t *ids;
	size_t nids, capids;
	/* patient level: the counts of the patient last judged visible, in
	 * the peer's collection only */
	uint8_t cnt_patient[32];
	bool cnt_ok;
	int64_t n_studies, n_series, n_instances;
	/* and the latest of those studies: its own copy of the patient
	 * attributes answers for the patient (qry_opts.patient_study) */
	char cnt_study[65];
	struct wbuf cnt_enc;
	struct idx_blob cnt_blob;
};

struct counts {
	int64_t studies, series, instances;
	const struct dimse_assoc *a;   /* with a user: only the studies it may query count */
	const uint8_t *patient;
	struct run *ru;                /* gets the latest study's UID and sealed set */
	enum err rc;
};

static enum err count_study(void *ctx, const struct idx_study *st)
{
	struct counts *c = ctx;

	if (c->a != NULL && !dimse_user_may(c->a, ACCESS_ACT_QUERY, st->collection, st->uid, c->patient))
		return ERR_OK;   /* not the user's to see: not counted */

	c->studies++;
	c->series += st->n_series;
	c->instances += st->n_instances;
	/* in date order: the last one is the latest */
	snprintf(c->ru->cnt_study, sizeof c->ru->cnt_study, "%s", st->uid);
	if (c->ru->cnt_enc.p != NULL)
		mem_wipe(c->ru->cnt_enc.p, c->ru->cnt_enc.len);
	wbuf_reset(&c->ru->cnt_enc);
	wbuf_put(&c->ru->cnt_enc, st->enc.p, st->enc.n);
	if (wbuf_err(&c->ru->cnt_enc) != ERR_OK)
		c->rc = wbuf_err(&c->ru->cnt_enc);
	return ERR_OK;
}

/* The peer sees the studies of its collection; a patient when one of its
 * studies is there (counted here, so the patient's related counts tell of
 * the collection only). */
static bool visible(void *ctx, const char *collection, const char *study_uid, const uint8_t patient[32])
{
	struct run *ru = ctx;
	struct vault *v = ru->a->o->vault;
	struct idx_study_query sq;
	struct counts c = { 0, 0, 0, NULL, NULL, ru, ERR_OK };
	enum err rc;

	if (collection != NULL)
		return strcmp(collection, ru->a->peer->collection) == 0 &&
		       dimse_user_may(ru->a, ACCESS_ACT_QUERY, collection, study_uid, patient);
	c.a = ru->a;
	c.patient = patient;
	memset(&sq, 0, sizeof sq);
	sq.collection = ru->a->peer->collection;
	sq.patient_key_hmac = patient;
	pthread_mutex_lock(v->ix_lock);
	rc = v->ix->ops->study_query(v->ix, &sq, count_study, &c);
	pthread_mutex_unlock(v->ix_lock);
	ru->cnt_ok = rc == ERR_OK && c.rc == ERR_OK && c.studies > 0;
	if (!ru->cnt_ok)
		return false;
	memcpy(ru->cnt_patient, patient, 32);
	ru->n_studies = c.studies;
	ru->n_series = c.series;
	ru->n_instances = c.instances;
	return true;
}

/* qry_opts.patient_study: the latest study visible() just saw of this
 * patient */
static bool own_study(void *ctx, const uint8_t patient[32], const char **uid, const struct idx_blob **enc)
{
	struct run *ru = ctx;

	if (!ru->cnt_ok || memcmp(patient, ru->cnt_patient, 32) != 0)
		return false;
	ru->cnt_blob.p = ru->cnt_enc.p;
	ru->cnt_blob.n = ru->cnt_enc.len;
	*uid = ru->cnt_study;
	*enc = &ru->cnt_blob;
	return true;
}

/* qry_opts.patient_counts: the counts visible() just made for this patient */
static bool own_counts(void *ctx, const uint8_t patient[32], int64_t n[3])
{
	struct run *ru = ctx;

	if (!ru->cnt_ok || memcmp(patient, ru->cnt_patient, 32) != 0)
		return false;
	n[0] = ru->n_studies;
	n[1] = ru->n_series;
	n[2] = ru->n_instances;
	return true;
}

static bool has_8bit(const struct dcm_ds *ds)
{
	uint32_t i, k, j;

	for (i = 0; i < ds->n; i++) {
		const struct dcm_elem *e = &ds->e[i];
		if (e->seq != NULL) {
			for (k = 0; k < e->seq->n; k++)
				if (has_8bit(e->seq->items[k]))
					return true;
			continue;
		}
		for (j = 0; e->val != NULL && j < e->len; j++)
			if (e->val[j] >= 0x80)
				return true;
	}
	return false;
}

/* The answer's identifier: every key of the request (its value from the
 * result, else empty), the level, the unique key of the level. */
static enum err answer_ds(struct run *ru, const struct qry_hit *h, struct dcm_file *out)
{
	static const uint32_t unique[] = { TAG_PATIENT_ID, 0x0020000D, 0x0020000E, 0x00080018 };
	const struct dcm_ds *res = &h->f->ds;
	struct dcm_elem *sq;
	uint32_t i;
	enum err rc = ERR_OK;

	for (i = 0; rc == ERR_OK && i < ru->id->n; i++) {
		const struct dcm_elem *q = &ru->id->e[i], *e;
		if (q->tag == TAG_QR_LEVEL || q->tag == TAG_CHARSET || TAG_GROUP(q->tag) < 0x0008)
			continue;
		if (q->tag == TAG_RETRIEVE_AE) {
			rc = dcm_ds_set_str(&out->ds, q->tag, VR_AE, ru->a->o->ae);
			continue;
		}
		e = dcm_ds_find(res, q->tag);
		if (e != NULL)
			rc = dcm_ds_copy_elem(&out->ds, h->f, e, 0);
		else if (q->vr == VR_SQ)
			rc = dcm_ds_set_seq(&out->ds, q->tag, &sq);
		else
			rc = dcm_ds_set(&out->ds, q->tag, q->vr, NULL, 0);
	}
	if (rc == ERR_OK) {
		const struct dcm_elem *e = dcm_ds_find(res, unique[ru->level]);
		if (e != NULL && dcm_ds_find(&out->ds, unique[ru->level]) == NULL)
			rc = dcm_ds_copy_elem(&out->ds, h->f, e, 0);
	}
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&out->ds, TAG_QR_LEVEL, VR_CS, ru->level_name);
	if (rc == ERR_OK && (dcm_ds_find(ru->id, TAG_CHARSET) != NULL || has_8bit(&out->ds)))
		rc = dcm_ds_set_str(&out->ds, TAG_CHARSET, VR_CS, "ISO_IR 192");
	return rc;
}

/* What the peer sent while we answer: a C-CANCEL-RQ for this C-FIND; an
 * A-RELEASE-RQ is answered once the C-FIND is over; anything else breaks
 * the one-operation-at-a-time we negotiated: the association is aborted. */
static void on_event(struct dimse_assoc *a, const struct ul_event *ev, void *ctx)
{
	struct run *ru = ctx;
	struct dimse_cmd c;

	switch (ev->kind) {
	case UL_EV_COMMAND:
		if (dimse_cmd_parse(ev->p, ev->n, &c) == ERR_OK && c.field == DIMSE_C_CANCEL_RQ) {
			if ((c.has & DIMSE_F_MSG_ID_RSP) && c.msg_id_rsp == a->rq.msg_id)
				ru->cancelled = true;
			return;   /* a C-CANCEL of something else: nothing to do */
		}
		ru->bad_peer = true;
		break;
	case UL_EV_RELEASE_RQ:
		ru->release = true;
		return;
	case UL_EV_ABORT:
	case UL_EV_CLOSED:
		return;
	default:
		ru->bad_peer = true;
		break;
	}
	if (ru->bad_peer && a->u.state != UL_STA13 && a->u.state != UL_STA1) {
		log_warn("association of %s from %s: a message during a C-FIND; aborting", a->calling, a->addr);
		ul_abort(&a->u);   /* sent by dimse_assoc_poll; the run stops (Sta13) */
	}
}

static enum err send_ds(struct dimse_assoc *a, uint8_t pcid, struct dcm_file *f, bool explicit_vr)
{
	struct wbuf w;
	struct sink k;
	enum err rc;

	wbuf_init(&w, DIMSE_MAX_IDENTIFIER * 4);
	sink_wbuf(&k, &w);
	rc = dcm_ds_write(f, &f->ds, explicit_vr, false, &k);
	if (rc == ERR_OK)
		rc = wbuf_err(&w);
	if (rc == ERR_OK)
		rc = ul_send_data(&a->u, pcid, w.p, w.len, true);
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(a);
	return rc;
}

/* The keyed hash of a match's identity at the run's level: its patient
 * and, below the patient level, its unique key. */
static enum err hit_id(const struct run *ru, const struct qry_hit *h, uint64_t *id)
{
	uint8_t mac[KDF_HMAC_SHA256_LEN], m[32 + IDX_UID_MAX];
	const char *uid = ru->level == QRY_PATIENT ? ""
	                  : ru->level == QRY_STUDY ? h->study_uid
	                  : ru->level == QRY_SERIES ? h->series_uid
	                                            : h->sop_uid;
	size_t n = strnlen(uid, IDX_UID_MAX);
	enum err rc;

	memcpy(m, h->patient, 32);
	memcpy(m + 32, uid, n);
	rc = kdf_hmac_sha256(ru->idkey, m, 32 + n, mac);
	if (rc == ERR_OK)
		memcpy(id, mac, sizeof *id);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static enum err on_hit(void *ctx, struct qry_hit *h)
{
	struct run *ru = ctx;
	struct dimse_assoc *a = ru->a;
	struct dcm_file *f = NULL;
	struct dimse_cmd rsp;
	uint64_t id;
	enum err rc;

	if (dimse_assoc_poll(a, on_event, ru) != ERR_OK)
		return ERR_IO;
	if (ru->cancelled)
		return ERR_AGAIN;   /* stops the run */
	rc = hit_id(ru, h, &id);
	if (rc != ERR_OK)
		return rc;
	if (bsearch(&id, ru->ids, ru->nids, sizeof *ru->ids, id_cmp) == NULL)
		return ERR_OK;   /* not among what the record counted */
	rc = dcm_file_new(&f);
	if (rc == ERR_OK)
		rc = answer_ds(ru, h, f);
	if (rc == ERR_OK) {
		dimse_cmd_rsp(&rsp, &a->rq, ru->pending);
		rsp.data_set_type = DIMSE_HAS_DATA_SET;
		rc = dimse_assoc_send_cmd(a, ru->pcid, &rsp);
	}
	if (rc == ERR_OK)
		rc = send_ds(a, ru->pcid, f, ru->explicit_vr);
	dcm_file_free(f);
	if (rc == ERR_OK)
		ru->sent++;
	return rc;
}

static bool level_of(const struct dcm_ds *id, bool patient_root, enum qry_level *l, const char **name)
{
	static const char *const names[] = { "PATIENT", "STUDY", "SERIES", "IMAGE" };
	char s[17];
	unsigned i;

	if (dcm_ds_get_cstr(id, TAG_QR_LEVEL, s, sizeof s) != ERR_OK)
		return false;
	for (i = patient_root ? 0 : 1; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*l = (enum qry_level)i;
			*name = names[i];
			return true;
		}
	return false;
}

static enum err final(struct dimse_assoc *a, uint8_t pcid, uint16_t status, const char *comment)
{
	struct dimse_cmd rsp;

	dimse_cmd_rsp(&rsp, &a->rq, status);
	if (comment != NULL) {
		snprintf(rsp.error_comment, sizeof rsp.error_comment, "%.64s", comment);
		rsp.has |= DIMSE_F_ERROR_COMMENT;
	}
	return dimse_assoc_send_cmd(a, pcid, &rsp);
}

/* The first pass: matches counted (qry_stats) and their identities kept
 * (hit_id), nothing sent. */
static enum err count_hit(void *ctx, struct qry_hit *h)
{
	struct run *ru = ctx;
	uint32_t max = ru->a->o->max_find ? ru->a->o->max_find : DIMSE_FIND_MATCHES_DEFAULT;
	uint64_t id;
	enum err rc;

	if (ru->nids >= max)
		return ERR_LIMIT;   /* A700H: narrow the query */
	if (ru->nids == ru->capids) {
		size_t c = ru->capids ? ru->capids * 2 : 256;
		uint64_t *p = realloc(ru->ids, c * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		ru->ids = p;
		ru->capids = c;
	}
	rc = hit_id(ru, h, &id);
	if (rc == ERR_OK)
		ru->ids[ru->nids++] = id;
	return rc;
}

/* The C-FIND's query record: n matches at the run's level. */
static enum err find_audit(struct dimse_assoc *a, const struct run *ru, const struct qry_stats *st, uint64_t n,
                           enum audit_outcome outcome, uint16_t status, const char *comment)
{
	struct audit_objects obj;
	char reason[200];

	memset(&obj, 0, sizeof obj);
	obj.counted = true;
	obj.patient = st->one_patient ? st->patient : NULL;
	obj.patient_list = st->one_patient ? NULL : st->patients;
	obj.npatient_list = st->one_patient ? 0 : st->npatients;
	switch (ru->level) {
	case QRY_PATIENT: obj.patients = n; break;
	case QRY_STUDY: obj.studies = n; break;
	case QRY_SERIES: obj.series = n; break;
	default: obj.instances = n; break;
	}
	snprintf(reason, sizeof reason, "DIMSE C-FIND %s %s%s%s", strcmp(a->rq.sop_class, DIMSE_FIND_STUDY_ROOT) == 0 ?
	         "study root" : "patient root", ru->level_name ? ru->level_name : "?",
	         status == DIMSE_CANCEL ? " (cancelled)" : "", comment ? ": " : "");
	if (comment != NULL)
		snprintf(reason + strlen(reason), sizeof reason - strlen(reason), "%.100s", comment);
	return dimse_assoc_audit(a, AUDIT_QUERY, outcome, reason, &obj);
}

enum err dimse_find_run(struct dimse_assoc *a, uint8_t pcid)
{
	struct dimse_find *fq = a->fq;
	const char *abstract = NULL, *ts = NULL, *comment = NULL;
	struct dcm_file *idf = NULL;
	struct qry_opts qo;
	struct qry *q = NULL;
	struct qry_stats st, st2;
	struct run ru;
	const uint32_t *ign;
	char why[256] = "";
	uint16_t status = DIMSE_SUCCESS;
	bool gone = false, recorded = false;
	enum audit_outcome outcome = AUDIT_SUCCESS;
	enum err rc;

	memset(&ru, 0, sizeof ru);
	memset(&st, 0, sizeof st);
	memset(&st2, 0, sizeof st2);
	wbuf_init(&ru.cnt_enc, QRY_RECORD_MAX);
	ru.a = a;
	ru.pcid = pcid;
	if (!ul_context(&a->u, pcid, &abstract, &ts) || strcmp(abstract, a->rq.sop_class) != 0 ||
	    !dimse_find_model(a->rq.sop_class)) {
		status = DIMSE_SOP_NOT_SUPPORTED;   /* "Refused: SOP Class not supported" (on this context) */
		comment = "SOP class does not match the presentation context";
		goto done;
	}
	if (!(a->peer->rights & PEER_RIGHT_FIND)) {
		status = DIMSE_NOT_AUTHORIZED;
		comment = "No right to query";
		goto done;
	}
	if (dimse_user_load(a) != ERR_OK) {
		status = DIMSE_NOT_AUTHORIZED;
		comment = "User identity no longer valid";
		goto done;
	}
	if (fq->too_big) {
		status = DIMSE_ERR_UNABLE;
		comment = "Identifier too large";
		goto done;
	}
	if (!dimse_find_parse(fq, ts, &idf)) {
		status = DIMSE_ERR_UNABLE;
		comment = "Identifier cannot be parsed";
		goto done;
	}
	ru.id = &idf->ds;
	ru.explicit_vr = strcmp(ts, "1.2.840.10008.1.2") != 0;
	if (!level_of(&idf->ds, strcmp(a->rq.sop_class, DIMSE_FIND_PATIENT_ROOT) == 0, &ru.level, &ru.level_name)) {
		status = DIMSE_ERR_DATASET;
		comment = "QueryRetrieveLevel missing or invalid for the model";
		goto done;
	}
	memset(&qo, 0, sizeof qo);
	qo.level = ru.level;
	qo.allow = visible;
	qo.allow_ctx = &ru;
	qo.patient_counts = own_counts;
	qo.patient_study = own_study;
	qo.seq_items_asked = true;   /* PS3.4 C.2.2.2.6 */
	rc = qry_new(&qo, &idf->ds, &q, why, sizeof why);
	if (rc != ERR_OK) {
		status = rc == ERR_PARSE ? DIMSE_ERR_DATASET : rc == ERR_LIMIT ? DIMSE_REFUSED_OOR : DIMSE_ERR_UNABLE;
		comment = why[0] ? why : "Identifier cannot be processed";
		goto done;
	}
	ru.pending = qry_ignored(q, &ign) > 0 ? DIMSE_PENDING_WARNING : DIMSE_PENDING;
	/* the record before the first match leaves (docs/internals/audit.md,
	 * "Records before disclosure"): the matches counted, recorded, then
	 * answered, no more of them than were counted */
	rc = secret_random(32, &ru.idkey);
	if (rc == ERR_OK)
		rc = qry_run(a->o->vault, q, count_hit, &ru, &st);
	if (rc == ERR_OK && ru.nids > 1)
		qsort(ru.ids, ru.nids, sizeof *ru.ids, id_cmp);
	if (rc == ERR_LIMIT) {
		snprintf(why, sizeof why, "More than %u matches: narrow the query",
		         a->o->max_find ? a->o->max_find : DIMSE_FIND_MATCHES_DEFAULT);
		status = DIMSE_REFUSED_OOR;
		comment = why;
		goto done;
	}
	if (rc != ERR_OK) {
		log_error("C-FIND from %s: %s", a->calling, err_str(rc));
		status = DIMSE_ERR_UNABLE;
		comment = "Unable to process";
		goto done;
	}
	if (find_audit(a, &ru, &st, st.matches, AUDIT_SUCCESS, DIMSE_SUCCESS, NULL) != ERR_OK) {
		status = DIMSE_ERR_UNABLE;
		comment = "Audit record cannot be written";
		goto done;
	}
	recorded = true;
	rc = qry_run(a->o->vault, q, on_hit, &ru, &st2);
	if (ru.cancelled) {
		status = DIMSE_CANCEL;
	} else if (rc == ERR_IO && (a->failed || (a->u.state != UL_STA6 && a->u.state != UL_STA8))) {
		gone = true;   /* the association is over: no answer */
	} else if (rc != ERR_OK) {
		log_error("C-FIND from %s: %s", a->calling, err_str(rc));
		status = DIMSE_ERR_UNABLE;
		comment = "Unable to process";
	}
done:
	if (gone)
		outcome = AUDIT_FAILURE;
	else if (status != DIMSE_SUCCESS && status != DIMSE_CANCEL)
		outcome = status == DIMSE_NOT_AUTHORIZED ? AUDIT_DENIED : AUDIT_FAILURE;
	/* a success was recorded before its first answer; anything else is
	 * recorded now, with what was sent */
	if (!recorded || gone || status != DIMSE_SUCCESS)
		(void)find_audit(a, &ru, &st, ru.sent, outcome, status, comment);
	qry_stats_fini(&st);
	qry_stats_fini(&st2);
	qry_free(q);
	dcm_file_free(idf);
	dimse_find_free(a);
	secret_free(ru.idkey);
	free(ru.ids);
	if (ru.cnt_enc.p != NULL)
		mem_wipe(ru.cnt_enc.p, ru.cnt_enc.len);
	wbuf_fini(&ru.cnt_enc);
	if (gone || a->failed || (a->u.state != UL_STA6 && a->u.state != UL_STA8))
		return ERR_OK;   /* closed or aborted meanwhile: the main loop sees it */
	rc = final(a, pcid, status, comment);
	if (rc == ERR_OK && ru.release && a->u.state == UL_STA8)
		rc = ul_release_rp(&a->u);
	return rc;
}
