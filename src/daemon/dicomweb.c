/* dicomweb.c: DICOMweb (PS3.18) routes of the HTTPS listener, part 1:
 * STOW-RS (POST /dicom-web/studies[/{study}], multipart/related bodies
 * streamed part by part through proto/multipart.c into a spool (memory
 * up to 1 MiB, else an anonymous encrypted file: core/spool.c), each
 * then stored by core/store.c), WADO-RS instance
 * retrieval (multipart/related with one application/dicom part) and
 * WADO-URI (application/dicom). Every request has a session (checked in
 * http.c); every index use holds the server's ix_lock; every store and
 * retrieve is audited. See docs/internals/dicomweb.md. Layer: daemon. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/index.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/spool.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "http_int.h"
#include "wado_int.h"

#define UID_MAX 64u
/* The pipeline of a STOW-RS request with several parts: up to
 * STOW_WORKERS parts are stored at once (their syncs then share the index
 * and audit commits, store.c) while the connection thread receives the
 * next; at most STOW_INFLIGHT parts wait or are being stored, so memory
 * stays bounded (each holds its spool, at most SPOOL_MEM_MAX in memory). */
#define STOW_WORKERS 2u
#define STOW_INFLIGHT 4u
/* Parts queued or being stored by all requests together: beyond it a
 * request that already has one waits, so that many uploads at once hold
 * at most this many spools besides the one each is receiving. */
#define STOW_INFLIGHT_ALL 16u

/* Failure Reason (0008,1197) values: PS3.18 Table I.2-2, plus 0111H
 * (Duplicate SOP Instance, PS3.7 C.4) and C409H (Study Instance UID
 * mismatch, implementation specific in the Cxxx range, as dcm4chee). */
#define FR_OUT_OF_RESOURCES 0xA700u
#define FR_NOT_SOP_CLASS    0xA900u
#define FR_CANNOT_UNDERSTAND 0xC000u
#define FR_PROCESSING       0x0110u
#define FR_DUPLICATE        0x0111u
#define FR_STUDY_MISMATCH   0xC409u
#define FR_NOT_AUTHORIZED   0x0124u   /* PS3.7 C.4.2: Refused: Not Authorized */

enum dw_kind { DW_NONE = 0, DW_STOW };

struct stow {
	struct mp_parser mp;
	enum err mp_rc;            /* ERR_AGAIN until done or failed */
	uint64_t after;            /* body bytes read after the end or an error */
	const char *closed_why;    /* the server closed the connection before the end: why */
	char study[UID_MAX + 1];   /* the path's study, or "" */
	char target[ACCESS_NAME_MAX + 1];   /* ?collection=NAME, or "" */
	char tmpdir[VAULT_PATH_MAX + 8];
	/* the current part (spool.h: in memory up to 1 MiB, beyond that
	 * encrypted under a key of its own that lives only in memory, SPEC 6:
	 * nothing plain on disk) */
	struct spool *sp;
	struct store_early_rx early; /* its object, encrypted as it arrives (store.h) */
	char part_sop[UID_MAX + 1];  /* its SOP Instance UID once its head was read, else "" */
	char part_cls[UID_MAX + 1], part_study[UID_MAX + 1], part_series[UID_MAX + 1];   /* the same */
	uint16_t reason;           /* 0: so far so good */
	const char *why;           /* for the log */
	/* parts received, stored by workers while the next part arrives
	 * (see "The pipeline" below); the lock guards everything below it */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct stow_job *head, *tail;   /* in part order */
	unsigned njobs;
	unsigned held;                  /* of the server's slots (g_mu guards it) */
	pthread_t th[STOW_WORKERS];
	unsigned nth;                   /* workers running */
	bool stop;                      /* no more parts: workers end when idle */
	/* the answer, written in part order */
	struct wbuf ok, failed;
	unsigned n_ok, n_failed;
	char one_study[UID_MAX + 1];
	bool many_studies;
};

/* A received part, from the end of its body to its line in the answer. */
struct stow_job {
	struct stow_job *next;
	struct spool *sp;          /* NULL when the part failed while received */
	struct store_early *early; /* or NULL */
	uint16_t reason;           /* set: it failed while received */
	const char *pre_why;
	bool started, done;
	char key_sop[UID_MAX + 1]; /* its SOP Instance UID as received ("": not known) */
	/* the outcome */
	uint16_t fr;               /* 0: stored (or already there, identical) */
	char cls[UID_MAX + 1], sop[UID_MAX + 1], study[UID_MAX + 1], series[UID_MAX + 1];
};

struct dw {
	enum dw_kind kind;
	struct http_req *r;
	const char *json_media;   /* of the answer: what the Accept header took */
	struct stow st;
};

/* ---- helpers ---- */

/* The base of absolute URLs in answers, without a final '/': [http]
 * public_url, else the bound address, "" (path-absolute URLs) when that
 * is a wildcard. */
const char *dw_base_url(struct http_req *r, size_t *n)
{
	const char *u = r->srv->base;

	*n = strlen(u);
	return u;
}

void dw_audit_actor(struct http_req *r, struct audit_actor *a, char ref[AUDIT_SESSION_REF_LEN])
{
	audit_session_ref(r->token, r->token_len, ref);
	memset(a, 0, sizeof *a);
	a->user = r->sess.user;
	a->role = r->sess.role;
	a->session = ref;
	a->addr = r->addr;
	a->user_agent = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
}

static bool is_read(const char *action)
{
	return strcmp(action, AUDIT_QUERY) == 0 || strcmp(action, AUDIT_RETRIEVE) == 0 ||
	       strcmp(action, AUDIT_VIEW) == 0 || strcmp(action, AUDIT_READ_TRAIL) == 0;
}

void dw_note_read(struct http_req *r, const struct audit_rec *rec)
{
	const struct audit_objects *ob = &rec->objects;

	if (rec->outcome != AUDIT_SUCCESS || !is_read(rec->action))
		return;
	r->read_rec.action = rec->action;   /* one of the constants above */
	r->read_rec.has_patient = ob->patient != NULL;
	if (ob->patient != NULL)
		memcpy(r->read_rec.patient, ob->patient, sizeof r->read_rec.patient);
	snprintf(r->read_rec.study, sizeof r->read_rec.study, "%s", ob->study_uid ? ob->study_uid : "");
	snprintf(r->read_rec.series, sizeof r->read_rec.series, "%s", ob->series_uid ? ob->series_uid : "");
	snprintf(r->read_rec.sop, sizeof r->read_rec.sop, "%s", ob->sop_uid ? ob->sop_uid : "");
	r->read_rec.counted = ob->counted;
	r->read_rec.patients = ob->patients;
	r->read_rec.studies = ob->studies;
	r->read_rec.series_n = ob->series;
	r->read_rec.instances = ob->instances;
}

enum err dw_audit_rec(struct http_req *r, struct audit_rec *rec)
{
	char ref[AUDIT_SESSION_REF_LEN];
	enum err rc;

	if (r->srv->audit == NULL)
		return ERR_OK;
	dw_audit_actor(r, &rec->actor, ref);
	rc = audit_append(r->srv->audit, rec);
	if (rc == ERR_OK)
		dw_note_read(r, rec);
	memset(&rec->actor, 0, sizeof rec->actor);
	if (rc != ERR_OK)
		log_error("%s by %s: cannot write the audit record: %s", rec->action, r->sess.user, err_str(rc));
	return rc;
}

/* A record of the request's actor about objects: appended whole (ticket
 * NULL) or started (audit_append_start, *ticket for audit_wait). */
static enum err audit_obj(struct http_req *r, const char *action, enum audit_outcome oc, const char *reason,
                          const struct audit_objects *ob, uint64_t *ticket)
{
	char ref[AUDIT_SESSION_REF_LEN];
	struct audit_rec rec;
	enum err rc;

	if (ticket != NULL)
		*ticket = 0;
	if (r->srv->audit == NULL)
		return ERR_OK;
	memset(&rec, 0, sizeof rec);
	rec.action = action;
	rec.outcome = oc;
	rec.reason = reason;
	dw_audit_actor(r, &rec.actor, ref);
	rec.objects = *ob;
	rc = ticket != NULL ? audit_append_start(r->srv->audit, &rec, ticket) : audit_append(r->srv->audit, &rec);
	if (rc != ERR_OK)
		log_error("%s by %s: cannot write the audit record: %s", action, r->sess.user, err_str(rc));
	else
		dw_note_read(r, &rec);
	return rc;
}

enum err dw_audit_obj(struct http_req *r, const char *action, enum audit_outcome oc, const char *reason,
                          const uint8_t *patient, const char *study, const char *series, const char *sop)
{
	struct audit_objects ob = {   /* NULL or empty: left out of the record */
		.patient = patient, .study_uid = study, .series_uid = series, .sop_uid = sop,
	};

	return audit_obj(r, action, oc, reason, &ob, NULL);
}

void http_send_refused(struct http_req *r)
{
	struct audit_objects ob;
	const char *action = r->read_rec.action;

	if (action == NULL || r->srv->audit == NULL)
		return;
	r->read_rec.action = NULL;
	memset(&ob, 0, sizeof ob);
	ob.patient = r->read_rec.has_patient ? r->read_rec.patient : NULL;
	ob.study_uid = r->read_rec.study[0] ? r->read_rec.study : NULL;
	ob.series_uid = r->read_rec.series[0] ? r->read_rec.series : NULL;
	ob.sop_uid = r->read_rec.sop[0] ? r->read_rec.sop : NULL;
	ob.counted = r->read_rec.counted;
	ob.patients = r->read_rec.patients;
	ob.studies = r->read_rec.studies;
	ob.series = r->read_rec.series_n;
	ob.instances = r->read_rec.instances;
	(void)audit_obj(r, action, AUDIT_FAILURE,
	                "not sent: 503, too many large answers waiting to be read (the record before was premature)",
	                &ob, NULL);
}

size_t dw_split(const char *p, const char *seg[DW_MAX_SEGS], size_t len[DW_MAX_SEGS], bool *too_many)
{
	size_t n = 0;

	*too_many = false;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (n == DW_MAX_SEGS) {
			*too_many = true;
			return n;
		}
		seg[n] = p;
		len[n++] = l;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return n;
}

bool dw_seg_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* ---- STOW ---- */

static void json_item(struct wbuf *w, unsigned n, const char *cls, const char *sop)
{
	wbuf_puts(w, n ? "," : "");
	wbuf_puts(w, "{");
	if (cls && cls[0])
		wbuf_printf(w, "\"00081150\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},", cls);
	if (sop && sop[0])
		wbuf_printf(w, "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},", sop);
}

/* A part that failed: logged and audited now, answered in part order; its
 * record names the patient and object when known (else NULL). */
static void job_failed_of(struct dw *d, struct stow_job *j, uint16_t reason, const char *why, const uint8_t *patient,
                          const char *object)
{
	struct audit_objects ob = {   /* NULL or empty: left out of the record */
		.patient = patient,
		.study_uid = j->study[0] ? j->study : NULL,
		.series_uid = j->series[0] ? j->series : NULL,
		.sop_uid = j->sop[0] ? j->sop : NULL,
		.object = object,
	};

	j->fr = reason;
	log_info("store by %s (%s): part failed (0x%04X): %s", d->r->sess.user, d->r->addr, (unsigned)reason,
	         why ? why : "-");
	/* a refusal by policy is denied, as a C-STORE's (0124H) */
	(void)audit_obj(d->r, AUDIT_STORE, reason == FR_NOT_AUTHORIZED ? AUDIT_DENIED : AUDIT_FAILURE, why, &ob, NULL);
}

static void job_failed(struct dw *d, struct stow_job *j, uint16_t reason, const char *why)
{
	job_failed_of(d, j, reason, why, NULL, NULL);
}

/* The part's line in the answer. */
static void job_answer(struct dw *d, const struct stow_job *j)
{
	struct stow *s = &d->st;
	const char *base;
	size_t bl;

	if (j->fr != 0) {
		json_item(&s->failed, s->n_failed++, j->cls, j->sop);
		wbuf_printf(&s->failed, "\"00081197\":{\"vr\":\"US\",\"Value\":[%u]}}", (unsigned)j->fr);
		return;
	}
	base = dw_base_url(d->r, &bl);
	json_item(&s->ok, s->n_ok++, j->cls, j->sop);
	wbuf_printf(&s->ok, "\"00081190\":{\"vr\":\"UR\",\"Value\":[\"%.*s/dicom-web/studies/%s/series/%s/instances/%s\"]}}",
	            (int)bl, base, j->study, j->series, j->sop);
	if (s->one_study[0] == 0)
		snprintf(s->one_study, sizeof s->one_study, "%s", j->study);
	else if (strcmp(s->one_study, j->study) != 0)
		s->many_studies = true;
}

/* Forgets the part being received: its memory, or its file and key. */
static void spool_end(struct stow *s)
{
	store_early_free(s->early.e);
	memset(&s->early, 0, sizeof s->early);
	spool_free(s->sp);
	s->sp = NULL;
}

/* The UIDs of a part's data set, and the collection a new study would
 * join ([collection] rules). */
static void head_uids(struct http_req *r, const char *target, const struct dcm_file *f, char cls[65], char sop[65],
                      char study[65], char series[65], char coll[ACCESS_NAME_MAX + 1])
{
	if (dcm_ds_get_cstr(&f->ds, 0x00080016, cls, 65) != ERR_OK || !vr_uid_ok(cls, strlen(cls)))
		cls[0] = 0;
	if (dcm_ds_get_cstr(&f->ds, 0x00080018, sop, 65) != ERR_OK || !vr_uid_ok(sop, strlen(sop)))
		sop[0] = 0;
	if (dcm_ds_get_cstr(&f->ds, 0x0020000D, study, 65) != ERR_OK || !vr_uid_ok(study, strlen(study)))
		study[0] = 0;
	if (dcm_ds_get_cstr(&f->ds, 0x0020000E, series, 65) != ERR_OK || !vr_uid_ok(series, strlen(series)))
		series[0] = 0;
	snprintf(coll, ACCESS_NAME_MAX + 1, "%s",
	         access_collection_for(r->srv->colls, &f->ds, NULL, target[0] ? target : NULL));
}

/* Reads the UIDs of the part before it is stored (the study must match
 * the path's). */
static enum err peek_uids(struct http_req *r, const char *target, struct src *src, char cls[65], char sop[65],
                          char study[65], char series[65], char coll[ACCESS_NAME_MAX + 1])
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
	head_uids(r, target, f, cls, sop, study, series, coll);
	dcm_file_free(f);
	return ERR_OK;
}

/* Whether the user may store into the study's collection: the stored
 * one, or coll, the one a new study joins (coll is set to the one that
 * applies). */
static bool may_store(struct http_req *r, const char *study, char coll[ACCESS_NAME_MAX + 1])
{
	struct vault *v = r->srv->vault;
	struct idx_study cur;
	struct access_object ob;

	pthread_mutex_lock(r->srv->ix_lock);
	if (study[0] && v->ix->ops->study_get(v->ix, study, &cur) == ERR_OK)
		snprintf(coll, ACCESS_NAME_MAX + 1, "%s", cur.collection);
	pthread_mutex_unlock(r->srv->ix_lock);
	ob.collection = coll;
	ob.study_uid = study[0] ? study : NULL;
	ob.patient = NULL;
	return http_access(r, ACCESS_ACT_STORE, &ob) == ACCESS_YES;
}

/* store_early_begin's question, on the head of the part: the checks
 * store_part makes (the path's study, the right to store into the
 * collection), so that a refused part records no patient. */
static bool early_may(void *ctx, const struct dcm_file *head)
{
	struct dw *d = ctx;
	struct stow *s = &d->st;
	char cls[65], sop[65], study[65], series[65], coll[ACCESS_NAME_MAX + 1];

	head_uids(d->r, s->target, head, cls, sop, study, series, coll);
	snprintf(s->part_sop, sizeof s->part_sop, "%s", sop);
	snprintf(s->part_cls, sizeof s->part_cls, "%s", cls);
	snprintf(s->part_study, sizeof s->part_study, "%s", study);
	snprintf(s->part_series, sizeof s->part_series, "%s", series);
	return (s->study[0] == 0 || strcmp(study, s->study) == 0) && may_store(d->r, study, coll);
}

static enum err p_data(void *ctx, const uint8_t *p, size_t n)
{
	struct dw *d = ctx;
	struct stow *s = &d->st;
	enum err rc;

	if (s->reason != 0 || s->sp == NULL)
		return ERR_OK;   /* a failed part is read to its end, not kept */
	rc = spool_write(s->sp, p, n);
	if (rc != ERR_OK) {
		s->reason = FR_OUT_OF_RESOURCES;
		s->why = rc == ERR_LIMIT ? "no space left for the temporary file" : "cannot write the temporary file";
		return ERR_OK;
	}
	store_early_feed(d->r->srv->vault, s->sp, p, n, early_may, d, &s->early);
	return ERR_OK;
}

/* The success audit record of a stored part, written beside the index
 * commit (store_hook) and waited for before the part counts as stored;
 * rc stays ERR_INTERNAL if the hook was not called. A store that then
 * fails (its rows refused by the commit, its object not durable) voids
 * that record: the failure record names what it named (voids, patient,
 * object). */
struct part_audit {
	struct http_req *r;
	uint64_t ticket;
	enum err rc;
	bool voids;
	bool has_patient;
	uint8_t patient[32];
	char object[33];
};

static void part_begin(void *ctx, const struct store_result *res)
{
	struct part_audit *pa = ctx;
	struct audit_objects ob = {   /* empty strings are left out of the record */
		.patient = res->has_patient_key ? res->patient_key : NULL,
		.study_uid = res->study_uid,
		.series_uid = res->series_uid,
		.sop_uid = res->sop_uid,
		.object = res->object_key,
	};

	pa->rc = audit_obj(pa->r, AUDIT_STORE, AUDIT_SUCCESS, res->existed ? "already stored" : NULL, &ob,
	                   &pa->ticket);
	pa->has_patient = res->has_patient_key;
	if (res->has_patient_key)
		memcpy(pa->patient, res->patient_key, sizeof pa->patient);
	snprintf(pa->object, sizeof pa->object, "%s", res->object_key);
}

static void part_end(void *ctx, const struct store_result *res, bool stored)
{
	struct part_audit *pa = ctx;

	(void)res;
	if (stored && pa->rc == ERR_OK)
		pa->rc = audit_wait(pa->r->srv->audit, pa->ticket);
	else if (!stored && pa->rc == ERR_OK)
		pa->voids = true;   /* its success record is in the log */
}

/* A part the store refused: its record names the patient once the store
 * knew it; after a success record (pa->voids) it names the same patient
 * and object, and says it voids that record (an audit report by patient
 * lists both). */
static void store_failed(struct dw *d, struct stow_job *j, uint16_t fr, const char *why,
                         const struct store_result *res, const struct part_audit *pa)
{
	char reason[AUDIT_FIELD_MAX + 32];   /* (the record keeps AUDIT_FIELD_MAX bytes) */

	if (!pa->voids) {
		job_failed_of(d, j, fr, why, res->has_patient_key ? res->patient_key : NULL, NULL);
		return;
	}
	snprintf(reason, sizeof reason, "voids the store record before: %s", why);
	job_failed_of(d, j, fr, reason, pa->has_patient ? pa->patient : NULL, pa->object);
}

/* Stores one received part (on a worker, or on the connection thread):
 * sets its outcome; never touches the answer. */
static void store_part(struct dw *d, struct stow_job *j)
{
	struct stow *s = &d->st;
	struct http_req *r = d->r;
	struct vault *v = r->srv->vault;
	char why[256] = "";
	char coll[ACCESS_NAME_MAX + 1] = "default";
	struct store_result res;
	struct part_audit pa = { .r = r, .rc = ERR_INTERNAL };
	struct src src;
	enum err rc;

	if (j->reason != 0) {
		job_failed(d, j, j->reason, j->pre_why);
		return;
	}
	if (spool_src(j->sp, &src) != ERR_OK) {
		job_failed(d, j, FR_OUT_OF_RESOURCES, "cannot reopen the temporary file");
		return;
	}
	rc = peek_uids(r, s->target, &src, j->cls, j->sop, j->study, j->series, coll);
	src_close(&src);
	if (rc != ERR_OK) {
		j->cls[0] = j->sop[0] = j->study[0] = j->series[0] = 0;
		job_failed(d, j, FR_CANNOT_UNDERSTAND, "not a DICOM Part 10 object");
		return;
	}
	if (s->study[0] && strcmp(j->study, s->study) != 0) {
		job_failed(d, j, FR_STUDY_MISMATCH, "the instance is not of the study in the path");
		return;
	}
	/* authorised for the study's collection: the stored one, or the one a
	 * new study joins */
	if (!may_store(r, j->study, coll)) {
		job_failed(d, j, FR_NOT_AUTHORIZED, "not authorised to store into this collection");
		return;
	}
	/* no store without its record: when the log cannot be made durable,
	 * storing would only add instances that are never acknowledged */
	if (audit_broken(r->srv->audit)) {
		job_failed(d, j, FR_OUT_OF_RESOURCES, "the audit log cannot be written: nothing is stored");
		return;
	}
	if (spool_src(j->sp, &src) != ERR_OK) {
		job_failed(d, j, FR_OUT_OF_RESOURCES, "cannot reopen the spool");
		return;
	}
	memset(&res, 0, sizeof res);
	/* store_instance takes v->ix_lock (the same lock) around its index
	 * work only: encryption and fsync run unlocked */
	rc = store_instance_early(v, &src, spool_sha256(j->sp), j->early,
	                          &(struct store_hook){ part_begin, part_end, &pa }, coll, &res, why, sizeof why);
	j->early = NULL;   /* consumed */
	src_close(&src);
	if (rc != ERR_OK) {
		uint16_t fr;
		switch (rc) {
		case ERR_PARSE:
			fr = why[0] && strstr(why, "UID") ? FR_NOT_SOP_CLASS : FR_CANNOT_UNDERSTAND;
			break;
		case ERR_DENIED:
			fr = res.conflict == STORE_CONFLICT_CONTENT ? FR_DUPLICATE : FR_PROCESSING;
			break;
		case ERR_NOMEM:
		case ERR_LIMIT:
		case ERR_IO:
			fr = FR_OUT_OF_RESOURCES;
			break;
		default:
			fr = FR_PROCESSING;
			break;
		}
		store_failed(d, j, fr, why[0] ? why : err_str(rc), &res, &pa);
		return;
	}
	snprintf(j->cls, sizeof j->cls, "%s", res.sop_class);
	snprintf(j->sop, sizeof j->sop, "%s", res.sop_uid);
	snprintf(j->study, sizeof j->study, "%s", res.study_uid);
	snprintf(j->series, sizeof j->series, "%s", res.series_uid);
	/* stored (or already there, identical); no acknowledgement without its
	 * audit record: if that cannot be written the client is told it failed
	 * (the object stays; sending it again succeeds as "already stored" and
	 * is audited then) */
	if (pa.rc != ERR_OK)
		job_failed(d, j, FR_PROCESSING, "the audit record cannot be written");
}

/* ---- the pipeline ---- */

/* The server's slots for parts in flight (STOW_INFLIGHT_ALL). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static unsigned g_inflight;

/* A slot for a part about to be queued: waits while the server is full
 * and this request already holds one (its workers free it; a request
 * holding none never waits, so every request makes progress). */
static void slot_take(struct stow *s)
{
	pthread_mutex_lock(&g_mu);
	while (g_inflight >= STOW_INFLIGHT_ALL && s->held > 0)
		pthread_cond_wait(&g_cv, &g_mu);
	g_inflight++;
	s->held++;
	pthread_mutex_unlock(&g_mu);
}

static void slot_give(struct stow *s)
{
	pthread_mutex_lock(&g_mu);
	g_inflight--;
	s->held--;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
}

/* Whether job j must wait for an unfinished job before it: one of the
 * same SOP Instance UID (or either not known), so that of two parts with
 * the same instance the first is stored first, whatever the timing. */
static bool must_wait(const struct stow *s, const struct stow_job *j)
{
	const struct stow_job *k;

	if (j->reason != 0)
		return false;   /* refused already: it stores nothing */
	for (k = s->head; k != j; k = k->next)
		if (!k->done && k->reason == 0 &&
		    (k->key_sop[0] == 0 || j->key_sop[0] == 0 || strcmp(k->key_sop, j->key_sop) == 0))
			return true;
	return false;
}

/* With s->mu held: stores the first part nobody has started that need
 * not wait (must_wait), if any (unlocked meanwhile), then answers every
 * finished part at the head of the queue, in part order, and frees it.
 * False if there was none. */
static bool work_once(struct dw *d)
{
	struct stow *s = &d->st;
	struct stow_job *j;

	for (j = s->head; j != NULL && (j->started || must_wait(s, j)); j = j->next)
		;
	if (j == NULL)
		return false;
	j->started = true;
	pthread_mutex_unlock(&s->mu);
	store_part(d, j);
	store_early_free(j->early);   /* a part refused before its store */
	j->early = NULL;
	spool_free(j->sp);
	j->sp = NULL;
	slot_give(s);
	pthread_mutex_lock(&s->mu);
	j->done = true;
	while (s->head != NULL && s->head->done) {
		j = s->head;
		s->head = j->next;
		if (s->head == NULL)
			s->tail = NULL;
		job_answer(d, j);
		free(j);
		s->njobs--;
	}
	pthread_cond_broadcast(&s->cv);
	return true;
}

static void *worker(void *arg)
{
	struct dw *d = arg;
	struct stow *s = &d->st;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (work_once(d))
			continue;
		if (s->stop)
			break;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Starts the workers (a second part is coming): when none can start, the
 * parts are stored on the connection thread, one by one, as before. */
static void workers_start(struct dw *d)
{
	struct stow *s = &d->st;
	pthread_attr_t at;

	if (pthread_attr_init(&at) != 0)
		return;
	if (pthread_attr_setstacksize(&at, HTTP_THREAD_STACK) == 0)
		while (s->nth < STOW_WORKERS && pthread_create(&s->th[s->nth], &at, worker, d) == 0)
			s->nth++;
	pthread_attr_destroy(&at);
}

/* Every received part stored and answered: by the workers (then joined),
 * else here. */
static void drain(struct dw *d)
{
	struct stow *s = &d->st;
	unsigned i;

	pthread_mutex_lock(&s->mu);
	if (s->nth == 0)
		while (work_once(d))
			;
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < s->nth; i++)
		(void)pthread_join(s->th[i], NULL);
	s->nth = 0;
}

static enum err p_begin(void *ctx, const struct mp_part *p)
{
	struct dw *d = ctx;
	struct stow *s = &d->st;

	/* a part before this one waits: store it while this one arrives */
	if (s->nth == 0 && s->head != NULL) {
		workers_start(d);
		if (s->nth == 0) {
			pthread_mutex_lock(&s->mu);
			while (work_once(d))
				;
			pthread_mutex_unlock(&s->mu);
		}
	}
	s->reason = 0;
	s->why = NULL;
	s->sp = NULL;
	s->part_sop[0] = s->part_cls[0] = s->part_study[0] = s->part_series[0] = 0;
	if (p->ctype[0] && !mp_media_is(p->ctype, strlen(p->ctype), "application/dicom")) {
		s->reason = FR_CANNOT_UNDERSTAND;
		s->why = "the part is not application/dicom";
		return ERR_OK;
	}
	if (spool_new(&s->sp, s->tmpdir, "stow-spool") != ERR_OK) {
		s->reason = FR_OUT_OF_RESOURCES;
		s->why = "cannot start the spool";
	}
	memset(&s->early, 0, sizeof s->early);
	return ERR_OK;
}

/* The SOP Instance UID of a whole part whose head store_early_begin did
 * not read (no Pixel Data: an SR, a presentation state...), from its
 * spool while that is in memory, so that must_wait need not hold it back
 * against every other part; "" when it cannot be read. */
static void part_key(struct dw *d, const struct spool *sp, char sop[UID_MAX + 1])
{
	const uint8_t *p;
	size_t n;
	struct src_mem m;
	struct src src;
	char cls[65], uid[65], study[65], series[65], coll[ACCESS_NAME_MAX + 1];

	sop[0] = 0;
	if (!spool_peek(sp, &p, &n))
		return;
	src_mem_init(&src, &m, p, n);
	if (peek_uids(d->r, d->st.target, &src, cls, uid, study, series, coll) == ERR_OK)
		snprintf(sop, UID_MAX + 1, "%s", uid);
}

/* The part's body is complete: queued for a worker (waiting while
 * STOW_INFLIGHT parts are ahead of it). */
static enum err p_end(void *ctx)
{
	struct dw *d = ctx;
	struct stow *s = &d->st;
	struct stow_job *j = calloc(1, sizeof *j);

	if (j == NULL) {
		spool_end(s);
		return ERR_NOMEM;
	}
	j->reason = s->reason;
	j->pre_why = s->why;
	memcpy(j->key_sop, s->part_sop, sizeof j->key_sop);
	if (j->reason != 0) {
		/* failed while it arrived (a full disk): its entry in the answer,
		 * and its audit record, name it when its head was read */
		memcpy(j->sop, s->part_sop, sizeof j->sop);
		memcpy(j->cls, s->part_cls, sizeof j->cls);
		memcpy(j->study, s->part_study, sizeof j->study);
		memcpy(j->series, s->part_series, sizeof j->series);
	}
	if (j->reason == 0 && spool_finish(s->sp) != ERR_OK) {
		j->reason = FR_OUT_OF_RESOURCES;
		j->pre_why = "cannot finish the spool";
	}
	if (j->reason == 0 && j->key_sop[0] == 0)
		part_key(d, s->sp, j->key_sop);
	if (j->reason == 0) {
		j->sp = s->sp;
		s->sp = NULL;
		j->early = s->early.e;
		s->early.e = NULL;
	}
	spool_end(s);
	slot_take(s);
	pthread_mutex_lock(&s->mu);
	while (s->nth > 0 && s->njobs >= STOW_INFLIGHT)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->tail != NULL)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	s->njobs++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return ERR_OK;
}

static enum MHD_Result stow_begin(struct http_req *r, const char *study, size_t study_len)
{
	const char *ct = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct mp_ctype mct;
	struct mp_cb cb;
	struct dw *d;
	const char *json;

	const char *target = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "collection");

	if (study != NULL && !vr_uid_ok(study, study_len))
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "the study UID in the path is not 1 to 64 digits and dots",
		                    NULL);
	if (target != NULL && !access_collection_known(r->srv->colls, target))
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "no such collection (see [collection] in dicomvault.conf)", NULL);
	/* a grant whose role may store, somewhere: else nothing is read */
	if (http_access(r, ACCESS_ACT_STORE, NULL) != ACCESS_YES)
		return http_refuse(r, ACCESS_ACT_STORE, NULL, AUDIT_STORE, NULL, NULL, NULL);
	/* a Content-Type that does not parse is a bad request; one that
	 * parses but is another media type, unsupported (415) */
	if (ct != NULL && mp_ctype_parse(ct, strlen(ct), &mct) != ERR_OK)
		return http_problem(r, MHD_HTTP_BAD_REQUEST,
		                    "the Content-Type is malformed (a boundary of 1 to 70 characters, each parameter once)",
		                    NULL);
	if (ct == NULL || strcmp(mct.media, "multipart/related") != 0 ||
	    (mct.type[0] && strcmp(mct.type, "application/dicom") != 0))
		return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                    "the body must be multipart/related; type=\"application/dicom\"", NULL);
	if (mct.boundary[0] == 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "the multipart/related Content-Type has no boundary", NULL);
	/* the answer is DICOM JSON (no DICOM XML). A client that asks for XML
	 * only (dcm4che's stowrs always does) still gets its instances stored
	 * and the answer in JSON: a server may disregard an Accept it cannot
	 * satisfy (RFC 9110 12.1), and a 406 before the store lost it all */
	json = wado_json_media(r);
	if (json == NULL)
		json = "application/dicom+json";
	/* a body in a content coding (gzip...) would not parse: 415 (RFC
	 * 9110 15.5.16), said at once */
	{
		const char *ce = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
		static const char *const identity[] = { "Accept-Encoding", "identity", NULL };
		if (ce != NULL && strcasecmp(ce, "identity") != 0)
			return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			                    "the body must not be content-encoded (Content-Encoding: identity only)", identity);
	}
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return MHD_NO;
	d->kind = DW_STOW;
	d->r = r;
	d->json_media = json;
	d->st.sp = NULL;
	d->st.mp_rc = ERR_AGAIN;
	if (pthread_mutex_init(&d->st.mu, NULL) != 0) {
		free(d);
		return MHD_NO;
	}
	if (pthread_cond_init(&d->st.cv, NULL) != 0) {
		pthread_mutex_destroy(&d->st.mu);
		free(d);
		return MHD_NO;
	}
	if (study != NULL) {
		memcpy(d->st.study, study, study_len);
		d->st.study[study_len] = 0;
	}
	if (target != NULL)
		snprintf(d->st.target, sizeof d->st.target, "%s", target);
	snprintf(d->st.tmpdir, sizeof d->st.tmpdir, "%s/tmp", r->srv->vault->dir);
	wbuf_init(&d->st.ok, DICOMWEB_JSON_MAX);
	wbuf_init(&d->st.failed, DICOMWEB_JSON_MAX);
	cb.part_begin = p_begin;
	cb.part_data = p_data;
	cb.part_end = p_end;
	cb.ctx = d;
	mp_parser_init(&d->st.mp, mct.boundary, &cb, NULL);
	r->ctx = d;
	return MHD_YES;
}

static enum MHD_Result stow_answer(struct http_req *r, struct dw *d)
{
	struct stow *s = &d->st;
	struct wbuf w;
	const char *base;
	size_t bl;
	unsigned status;
	enum MHD_Result q;
	char detail[160], warning[220], *c;
	const char *extra[3] = { NULL, NULL, NULL };

	if (s->mp_rc == ERR_AGAIN)
		s->mp_rc = mp_parser_finish(&s->mp);
	drain(d);
	if (s->mp_rc != ERR_OK) {
		snprintf(detail, sizeof detail, "malformed multipart body: %s (%u instance(s) stored before it)",
		         mp_parser_why(&s->mp), s->n_ok);
		/* 400 is "unable to store any Instances" (PS3.18 10.5.3.1): with
		 * some stored, their Store Instances Response (202), the rest
		 * said in a Warning header */
		if (s->n_ok == 0)
			return http_problem(r, s->mp_rc == ERR_LIMIT ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
			                    detail, NULL);
		for (c = detail; *c; c++)   /* quoted in a header: no quote, backslash or control */
			if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\')
				*c = '\'';
		snprintf(warning, sizeof warning, "299 dicomvault \"%s; the rest was not read\"", detail);
		extra[0] = "Warning";
		extra[1] = warning;
	}
	if (s->n_ok + s->n_failed == 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "the multipart body has no part", NULL);
	if (wbuf_err(&s->ok) != ERR_OK || wbuf_err(&s->failed) != ERR_OK)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the answer is too large", NULL);
	status = s->n_failed == 0 && s->mp_rc == ERR_OK ? MHD_HTTP_OK
	         : s->n_ok == 0                          ? MHD_HTTP_CONFLICT
	                                                 : MHD_HTTP_ACCEPTED;
	wbuf_init(&w, DICOMWEB_JSON_MAX * 2 + 4096);
	base = dw_base_url(r, &bl);
	wbuf_puts(&w, "{");
	/* the study's RetrieveURL once something of it is stored; empty (it
	 * is Type 2: PS3.18 Table I.1-1) when nothing was, or several studies */
	if (s->n_ok > 0 && (s->study[0] || (s->one_study[0] && !s->many_studies)))
		wbuf_printf(&w, "\"00081190\":{\"vr\":\"UR\",\"Value\":[\"%.*s/dicom-web/studies/%s\"]},", (int)bl, base,
		            s->study[0] ? s->study : s->one_study);
	else
		wbuf_puts(&w, "\"00081190\":{\"vr\":\"UR\"},");
	if (s->n_failed) {
		wbuf_puts(&w, "\"00081198\":{\"vr\":\"SQ\",\"Value\":[");
		wbuf_put(&w, s->failed.p, s->failed.len);
		wbuf_puts(&w, "]},");
	}
	wbuf_puts(&w, "\"00081199\":{\"vr\":\"SQ\"");
	if (s->n_ok) {
		wbuf_puts(&w, ",\"Value\":[");
		wbuf_put(&w, s->ok.p, s->ok.len);
		wbuf_puts(&w, "]");
	}
	wbuf_puts(&w, "}}");
	q = wbuf_err(&w) == ERR_OK ? http_send(r, status, d->json_media, w.p, w.len, 0, extra[0] ? extra : NULL)
	                           : http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	wbuf_fini(&w);
	return q;
}

/* ---- the route ---- */

enum dw_route dw_route_of(const char *const seg[], const size_t len[], size_t n, bool post)
{
	if (n == 0)
		return DW_ROUTE_NONE;
	if (post)
		return n <= 2 && dw_seg_is(seg[0], len[0], "studies") ? DW_ROUTE_STOW : DW_ROUTE_METHOD;
	/* QIDO-RS: /studies, /series, /instances, /studies/{s}/series,
	 * /studies/{s}/instances, /studies/{s}/series/{se}/instances */
	if ((n == 1 && (dw_seg_is(seg[0], len[0], "studies") || dw_seg_is(seg[0], len[0], "series") ||
	                dw_seg_is(seg[0], len[0], "instances"))) ||
	    (n == 3 && dw_seg_is(seg[0], len[0], "studies") &&
	     (dw_seg_is(seg[2], len[2], "series") || dw_seg_is(seg[2], len[2], "instances"))) ||
	    (n == 5 && dw_seg_is(seg[0], len[0], "studies") && dw_seg_is(seg[2], len[2], "series") &&
	     dw_seg_is(seg[4], len[4], "instances")))
		return DW_ROUTE_QIDO;
	if (dw_seg_is(seg[0], len[0], "studies") && n >= 2)
		return DW_ROUTE_WADO;
	return DW_ROUTE_NONE;
}

enum MHD_Result dicomweb_begin(struct http_req *r)
{
	static const char *const allow_get[] = { MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL };
	const char *seg[DW_MAX_SEGS];
	size_t len[DW_MAX_SEGS], n;
	bool too_many;

	if (r->srv->vault == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	n = dw_split(r->url + strlen("/dicom-web/"), seg, len, &too_many);
	if (too_many)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	switch (dw_route_of(seg, len, n, strcmp(r->method, "POST") == 0)) {
	case DW_ROUTE_STOW:
		return stow_begin(r, n == 2 ? seg[1] : NULL, n == 2 ? len[1] : 0);
	case DW_ROUTE_METHOD:
		return http_problem(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", allow_get);
	case DW_ROUTE_QIDO:
		return qido_rs(r, seg, len, n);
	case DW_ROUTE_WADO:
		return wado_rs(r, seg, len, n);
	case DW_ROUTE_NONE:
	default:
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	}
}

const char *dw_allow(const char *url)
{
	const char *seg[DW_MAX_SEGS];
	size_t len[DW_MAX_SEGS], n;
	bool too_many;

	if (strncmp(url, "/dicom-web/", 11) != 0)
		return "GET, HEAD";
	n = dw_split(url + 11, seg, len, &too_many);
	return !too_many && dw_route_of(seg, len, n, true) == DW_ROUTE_STOW ? "GET, HEAD, POST" : "GET, HEAD";
}

enum MHD_Result dicomweb_body(struct http_req *r, const uint8_t *p, size_t n)
{
	struct dw *d = r->ctx;
	struct stow *s;

	if (d == NULL || d->kind != DW_STOW)
		return MHD_YES;   /* a body on a GET: ignored */
	s = &d->st;
	if (s->mp_rc == ERR_AGAIN) {
		s->mp_rc = mp_parser_feed(&s->mp, p, n);
		return MHD_YES;
	}
	/* the epilogue, or what follows an error: read and dropped, up to a point */
	s->after += n;
	if (s->after > HTTP_BODY_DISCARD_MAX) {
		log_info("%s %s: too much after the multipart body, connection closed (%s)", r->method_log,
		         r->route->name, r->addr);
		s->closed_why = s->mp_rc == ERR_OK ? "more than 1 MiB after the multipart body"
		                                   : "more than 1 MiB after an error in the multipart body";
		return MHD_NO;
	}
	return MHD_YES;
}

enum MHD_Result dicomweb_end(struct http_req *r)
{
	struct dw *d = r->ctx;

	if (d == NULL || d->kind != DW_STOW)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	return stow_answer(r, d);
}

/* Why a request ended before its answer (libmicrohttpd's code). */
static const char *cut_why(enum MHD_RequestTerminationCode t)
{
	switch (t) {
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return "nothing received for the inactivity timeout";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
	case MHD_REQUEST_TERMINATED_READ_ERROR:
		return "the connection was closed by the client";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return "the server is stopping";
	default:
		return "the connection failed";
	}
}

/* A STOW-RS cut off before its answer (the client gone, the inactivity
 * timeout, or closed by dicomweb_body): the parts received whole were
 * stored and audited one by one; this says why the request ended, and
 * that the part being received, if any, was not stored. */
static void stow_cut(struct http_req *r, struct dw *d)
{
	char why[240];
	bool partial = d->st.sp != NULL;

	if (d->st.closed_why != NULL)
		snprintf(why, sizeof why, "the connection was closed by the server: %s (%s)", d->st.closed_why,
		         d->st.mp_rc == ERR_OK ? "the body was complete" : mp_parser_why(&d->st.mp));
	else
		snprintf(why, sizeof why, "the request ended before its body was complete (%s): %s", cut_why(r->term),
		         partial ? "the part being received was not stored" : "no part was being received");
	log_warn("store by %s (%s): %s; %u instance(s) stored, %u failed before it", r->sess.user, r->addr, why,
	         d->st.n_ok, d->st.n_failed);
	(void)dw_audit_obj(r, AUDIT_STORE, AUDIT_FAILURE, why, NULL, d->st.study[0] ? d->st.study : NULL, NULL,
	                   partial && d->st.part_sop[0] ? d->st.part_sop : NULL);
}

void dicomweb_done(struct http_req *r)
{
	struct dw *d = r->ctx;

	if (d == NULL)
		return;
	drain(d);   /* parts fully received are still stored (not answered) */
	if (d->kind == DW_STOW && !r->answered && r->authed)
		stow_cut(r, d);
	spool_end(&d->st);
	pthread_cond_destroy(&d->st.cv);
	pthread_mutex_destroy(&d->st.mu);
	wbuf_fini(&d->st.ok);
	wbuf_fini(&d->st.failed);
	free(d);
	r->ctx = NULL;
}
