/* wado.c: WADO-RS (PS3.18 10.4) and WADO-URI (PS3.18 9) of the HTTPS
 * listener: the routes under /dicom-web/studies/{study} that are not
 * QIDO, study, series and instance retrieval (multipart/related, one
 * application/dicom part per instance) and WADO-URI. Retrieval is streamed
 * from the decryptor (core/retrieve.c), one instance at a time, each
 * opened only when the one before it has been sent: every chunk is
 * authenticated before its plaintext is sent (the last one flagged, the
 * length the index holds: an object cut or extended fails), and a failure
 * cuts the response short and is audited. The whole-object SHA-256 of the
 * index (fixity) is not recomputed here: export, C-GET and C-MOVE (of an
 * object sent as stored), import's read-back and scrub do that. The index (under ix_lock) is used to list the instances before
 * the answer starts and for an instant as each one is opened, never while
 * decrypting or sending. Metadata, bulk data and frames: wado_meta.c.
 * See docs/internals/dicomweb.md. Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/accept.h"
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/render.h"
#include "dicomvault/store.h"
#include "dicomvault/transcode.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "http_int.h"
#include "wado_int.h"

/* ---- audit ---- */

static void copy_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

void wado_who_init(struct http_req *r, struct wado_who *w)
{
	memset(w, 0, sizeof *w);
	w->audit = r->srv->audit;
	copy_str(w->user, sizeof w->user, r->sess.user);
	copy_str(w->role, sizeof w->role, r->sess.role);
	audit_session_ref(r->token, r->token_len, w->session);
	copy_str(w->addr, sizeof w->addr, r->addr);
	copy_str(w->ua, sizeof w->ua, MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT));
}

/* A record's objects: the UIDs given (empty ones left out) and, n > 0,
 * the instances counted. */
static void objects_of(struct audit_objects *o, const uint8_t *patient, const char *study, const char *series,
                       const char *sop, uint64_t n)
{
	o->patient = patient;
	o->study_uid = study && study[0] ? study : NULL;
	o->series_uid = series && series[0] ? series : NULL;
	o->sop_uid = sop && sop[0] ? sop : NULL;
	if (n > 0) {
		o->counted = true;
		o->patients = 1;
		o->studies = 1;
		o->instances = n;
	}
}

/* One record of action by w (n > 0: the instances counted). */
static enum err audit_one(const struct wado_who *w, const char *action, enum audit_outcome oc,
                          const char *reason, const uint8_t *patient, const char *study, const char *series,
                          const char *sop, uint64_t n)
{
	struct audit_rec rec;
	enum err rc;

	if (w->audit == NULL)
		return ERR_OK;
	memset(&rec, 0, sizeof rec);
	rec.action = action;
	rec.outcome = oc;
	rec.reason = reason;
	rec.actor.user = w->user;
	rec.actor.role = w->role;
	rec.actor.session = w->session;
	rec.actor.addr = w->addr;
	rec.actor.user_agent = w->ua[0] ? w->ua : NULL;
	objects_of(&rec.objects, patient, study, series, sop, n);
	rc = audit_append(w->audit, &rec);
	if (rc != ERR_OK)
		log_error("retrieve by %s: cannot write the audit record: %s", w->user, err_str(rc));
	return rc;
}

enum err wado_audit(const struct wado_who *w, enum audit_outcome oc, const char *reason, const uint8_t *patient,
                    const char *study, const char *series, const char *sop, uint64_t n)
{
	return audit_one(w, AUDIT_RETRIEVE, oc, reason, patient, study, series, sop, n);
}

void wado_note_sent(struct http_req *r, const uint8_t *patient, const char *study, const char *series,
                    const char *sop, uint64_t n)
{
	struct audit_rec rec;

	memset(&rec, 0, sizeof rec);
	rec.action = AUDIT_RETRIEVE;
	rec.outcome = AUDIT_SUCCESS;
	objects_of(&rec.objects, patient, study, series, sop, n);
	dw_note_read(r, &rec);
}

enum err wado_audit_fail(const struct wado_who *w, enum err why, const uint8_t *patient, const char *study,
                         const char *series, const char *sop)
{
	enum err rc = audit_one(w, AUDIT_RETRIEVE, AUDIT_FAILURE, audit_reason_of(why), patient, study, series, sop, 0);

	/* a stored object that failed its check on this read: besides the
	 * read's failure, an event of its own, naming the object and who was
	 * reading it */
	if (rc == ERR_OK && why == ERR_AUTH)
		rc = audit_one(w, AUDIT_INTEGRITY_FAILURE, AUDIT_FAILURE, AUDIT_REASON_INTEGRITY, patient, study, series,
		               sop, 0);
	return rc;
}

/* ---- the instances a request names ---- */

static enum err add_series(void *ctx, const struct idx_series *se)
{
	struct wado_list *l = ctx;
	struct wado_series *p;

	if (l->nseries % 64 == 0) {
		if (l->nseries >= DICOMWEB_MAX_INSTANCES)
			return ERR_LIMIT;
		p = realloc(l->series, (l->nseries + 64) * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		l->series = p;
	}
	p = &l->series[l->nseries++];
	copy_str(p->uid, sizeof p->uid, se->uid);
	p->id = se->id;
	p->number = se->number;
	return ERR_OK;
}

static enum err add_instance(struct wado_list *l, uint32_t series, const struct idx_instance *in)
{
	struct wado_item *it;
	size_t t;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		if (l->n >= DICOMWEB_MAX_INSTANCES)
			return ERR_LIMIT;
		it = realloc(l->it, cap * sizeof *it);
		if (it == NULL)
			return ERR_NOMEM;
		l->it = it;
		l->cap = cap;
	}
	for (t = 0; t < l->nts && strcmp(l->ts[t], in->ts_uid) != 0; t++)
		;
	if (t == l->nts) {
		if (l->nts == DICOMWEB_MAX_TS)
			return ERR_LIMIT;
		copy_str(l->ts[l->nts++], sizeof l->ts[0], in->ts_uid);
	}
	it = &l->it[l->n++];
	copy_str(it->sop, sizeof it->sop, in->uid);
	it->series = series;
	it->ts = (uint32_t)t;
	it->number = in->number;
	it->size = in->size;
	it->frames = in->frames;
	it->rows = in->rows;
	return ERR_OK;
}

struct walk {
	struct wado_list *l;
	uint32_t series;
};

static enum err walk_instance(void *ctx, const struct idx_instance *in)
{
	struct walk *w = ctx;

	return add_instance(w->l, w->series, in);
}

static int64_t order_key(int64_t number)
{
	return number < 0 ? INT64_MAX : number;
}

static int cmp_item(const void *a, const void *b, void *ctx)
{
	const struct wado_list *l = ctx;
	const struct wado_item *x = a, *y = b;
	const struct wado_series *sx = &l->series[x->series], *sy = &l->series[y->series];
	int64_t kx = order_key(sx->number), ky = order_key(sy->number);
	int c;

	if (kx != ky)
		return kx < ky ? -1 : 1;
	c = strcmp(sx->uid, sy->uid);
	if (c != 0)
		return c;
	kx = order_key(x->number);
	ky = order_key(y->number);
	if (kx != ky)
		return kx < ky ? -1 : 1;
	return strcmp(x->sop, y->sop);
}

enum err wado_list_make(struct http_req *r, const char *study, const char *series, const char *sop,
                        struct wado_list *l)
{
	struct index_store *ix = r->srv->vault->ix;
	struct idx_study st;
	struct idx_series se;
	struct idx_instance in;
	struct idx_patient pa;
	enum err rc;
	size_t i;

	memset(l, 0, sizeof *l);
	copy_str(l->study, sizeof l->study, study);
	pthread_mutex_lock(r->srv->ix_lock);
	rc = ix->ops->study_get(ix, study, &st);
	if (rc == ERR_OK)
		rc = ix->ops->patient_by_id(ix, st.patient_id, &pa);
	if (rc == ERR_OK)
		memcpy(l->patient, pa.key_hmac, sizeof l->patient);
	if (rc == ERR_OK && series != NULL) {
		rc = ix->ops->series_get(ix, series, &se);
		if (rc == ERR_OK && se.study_id != st.id)
			rc = ERR_NOTFOUND;
		if (rc == ERR_OK)
			rc = add_series(l, &se);
	} else if (rc == ERR_OK) {
		rc = ix->ops->series_list(ix, st.id, add_series, l);
	}
	if (rc == ERR_OK && sop != NULL) {
		rc = ix->ops->instance_get(ix, sop, &in);
		if (rc == ERR_OK && in.series_id != l->series[0].id)
			rc = ERR_NOTFOUND;
		if (rc == ERR_OK)
			rc = add_instance(l, 0, &in);
	} else {
		for (i = 0; rc == ERR_OK && i < l->nseries; i++) {
			struct walk w = { l, (uint32_t)i };
			rc = ix->ops->instance_list(ix, l->series[i].id, walk_instance, &w);
		}
	}
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc == ERR_OK && l->n == 0)
		rc = ERR_NOTFOUND;   /* a study or series without instances is not retrievable */
	if (rc == ERR_OK && l->n > 1)
		qsort_r(l->it, l->n, sizeof *l->it, cmp_item, l);
	if (rc != ERR_OK)
		wado_list_fini(l);
	return rc;
}

void wado_list_fini(struct wado_list *l)
{
	free(l->series);
	free(l->it);
	l->series = NULL;
	l->it = NULL;
	l->n = l->cap = l->nseries = 0;
}

/* ---- Accept ---- */

/* The accept query parameter when given (PS3.18 8.3.3.1: a browser's
 * link cannot set the header; the parameter then replaces it), else the
 * Accept header. */
const char *wado_accept_header(struct http_req *r)
{
	const char *h = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "accept");

	if (h == NULL)
		h = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return h ? h : "";
}

bool wado_accept_any(struct http_req *r, bool (*fn)(void *ctx, const struct accept_range *a), void *ctx)
{
	const char *h = wado_accept_header(r);

	return accept_each(h, strlen(h), fn, ctx);
}

unsigned wado_accept_q(struct http_req *r, const char *media, const char *type, const char *ts)
{
	const char *h = wado_accept_header(r);

	return accept_q_of(h, strlen(h), media, type, ts);
}

const char *wado_json_media(struct http_req *r)
{
	unsigned qd = wado_accept_q(r, "application/dicom+json", NULL, NULL);
	unsigned qj = wado_accept_q(r, "application/json", NULL, NULL);

	if (qd == 0 && qj == 0)
		return NULL;
	return qj > qd ? "application/json" : "application/dicom+json";
}

/* multipart/related; type="application/dicom" for every instance: each
 * stored transfer syntax t as stored when the Accept header takes it (a
 * range without transfer-syntax, with *, or naming t), else re-encoded
 * (native) or decompressed into explicit VR little endian when that is
 * taken and the decoders take t: dz[t] set. The q of the most specific
 * range decides, so that a syntax refused with q=0 is never sent, and of
 * the two the one with the higher q is sent (explicit VR little endian
 * asked with q=1 beside transfer-syntax=* with q=0.1: re-encoded). Nothing
 * is compressed. */
static bool web_forbidden_ts(const char *ts);

static bool accept_dicom(struct http_req *r, const struct wado_list *l, bool dz[DICOMWEB_MAX_TS],
                         bool raw_ok[DICOMWEB_MAX_TS])
{
	size_t i;

	unsigned qe = wado_accept_q(r, "multipart/related", "application/dicom", NATIVE_TS);

	memset(dz, 0, DICOMWEB_MAX_TS * sizeof dz[0]);
	memset(raw_ok, 0, DICOMWEB_MAX_TS * sizeof raw_ok[0]);
	for (i = 0; i < l->nts; i++) {
		unsigned qs = wado_accept_q(r, "multipart/related", "application/dicom", l->ts[i]);
		bool barred = web_forbidden_ts(l->ts[i]);
		unsigned qt = barred ? 0 : qs;
		/* barred but taken: re-encoded, or as stored if it cannot be */
		raw_ok[i] = barred && qs > 0;
		bool can = strcmp(l->ts[i], NATIVE_TS) != 0 && dcm_transcode_takes(l->ts[i]);
		/* the higher q wins (RFC 9110 12.5.1), the stored bytes on a tie */
		if (qt > 0 && !(can && qe > qt))
			continue;
		if (!can || qe == 0)
			return false;
		dz[i] = true;
	}
	return l->nts > 0;
}

/* PS3.18 8.7.3: implicit VR little endian and explicit VR big endian
 * "shall not be used with Web Services". An object stored in one of them
 * (a C-STORE peer that offered only implicit VR, an imported file) is
 * re-encoded into explicit VR little endian, the same data set, whatever
 * the Accept header says; 406 if that is refused. */
static bool web_forbidden_ts(const char *ts)
{
	return strcmp(ts, "1.2.840.10008.1.2") == 0 || strcmp(ts, "1.2.840.10008.1.2.2") == 0;
}

/* ---- study, series and instance retrieval ---- */

enum dphase { D_HEAD = 0, D_OPEN, D_BODY, D_TAIL };

/* A retrieval streamed as libmicrohttpd pulls it: for each instance in
 * turn its part head, its plaintext (opened only now; each chunk
 * authenticated before it is released, the last chunk flagged as last),
 * then the close delimiter. A failure ends the response with an error
 * (the connection is closed and the client sees a short body), is logged
 * and audited, and cannot be mistaken for a whole answer. */
struct dstream {
	struct vault *v;
	struct wado_list l;
	struct wado_who who;
	bool mp;
	char boundary[MP_BOUNDARY_MAX + 1];
	size_t i;
	enum dphase phase;
	struct retrieval *rt;
	struct retrieve_keys keys;  /* the patient's data key, unwrapped once for all instances */
	/* instances sent transcoded (their list transfer syntax marked in
	 * dz): the current one parsed from its retrieval, and its transcoder
	 * with the piece being sent */
	bool dz[DICOMWEB_MAX_TS];
	/* a syntax re-encoded only because PS3.18 bars it from the web, which
	 * the client takes as stored: an instance the transcoder cannot take
	 * goes as stored (inst_open) */
	bool raw_ok[DICOMWEB_MAX_TS];
	bool cur_dz;                /* the instance being sent is transcoded */
	struct src zsrc;
	struct dcm_file *zf;
	struct dcm_transcode *z;
	const uint8_t *zp;
	size_t zlen, zpos;
	uint8_t *pre;               /* the first instance's first bytes, read (and authenticated) before the answer */
	size_t pre_len, pre_pos;
	struct wbuf piece;          /* the current part head or the tail */
	size_t ppos;
	bool failed;
	struct http_req *req;       /* valid while libmicrohttpd pulls the body */
};

static void part_head(const struct dstream *ds, size_t i, bool dz, struct wbuf *w)
{
	char ct[160];

	snprintf(ct, sizeof ct, "application/dicom; transfer-syntax=%s", dz ? NATIVE_TS : ds->l.ts[ds->l.it[i].ts]);
	mp_write_part_head(w, ds->boundary, ct, i == 0);
}

static ssize_t dstream_fail(struct dstream *ds, enum err rc, const char *what)
{
	const struct wado_item *it = &ds->l.it[ds->i];

	http_push_flush(ds->req);   /* the verified bytes before the failure go out */
	log_error("retrieve %s (instance %zu of %zu of study %s) by %s: %s: %s: response aborted", it->sop, ds->i + 1,
	          ds->l.n, ds->l.study, ds->who.user, what, audit_reason_of(rc));
	if (!ds->failed)
		(void)wado_audit_fail(&ds->who, rc, ds->l.patient, ds->l.study, ds->l.series[it->series].uid, it->sop);
	ds->failed = true;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The transcoder of instance i, opened in ds->rt: the object parsed
 * (bulk values left in it, every chunk read authenticated), its first
 * frame decoded if it is compressed. */
static enum err dz_open(struct dstream *ds, char *why, size_t whylen)
{
	enum err rc = retrieve_parse(ds->rt, DCM_DEFAULT_BULK, &ds->zsrc, &ds->zf, why, whylen);

	if (rc == ERR_OK)
		rc = dcm_transcode_begin(ds->zf, dict_ts(NATIVE_TS, strlen(NATIVE_TS)), true, &ds->z, why, whylen);
	ds->zp = NULL;
	ds->zlen = ds->zpos = 0;
	return rc;
}

static void dz_close(struct dstream *ds)
{
	dcm_transcode_free(ds->z);
	ds->z = NULL;
	dcm_file_free(ds->zf);
	ds->zf = NULL;
}

static enum err obj_open(struct dstream *ds, size_t i, char *why, size_t whylen)
{
	enum err rc = retrieve_open_keys(ds->v, ds->l.it[i].sop, &ds->keys, &ds->rt, why, whylen);

	if (rc != ERR_OK)
		return rc;
	retrieve_no_fixity(ds->rt);   /* chunks authenticated; fixity is scrub's */
	if (retrieve_size(ds->rt) != ds->l.it[i].size)
		return err_why(why, whylen, ERR_AUTH, "size changed since the answer began");
	return ERR_OK;
}

/* Opens instance i: its object, and its transcoder when it is to be
 * transcoded (ds->cur_dz). *tz: a failure is the transcoder's. An instance
 * transcoded only because its stored syntax is barred from the web
 * (raw_ok) that the transcoder cannot take (a value beyond its memory
 * bound, a data set it cannot read) goes as stored, opened again: the
 * client took that syntax, and stored bytes beat no answer. */
static enum err inst_open(struct dstream *ds, size_t i, bool *tz, char *why, size_t whylen)
{
	size_t t = ds->l.it[i].ts;
	enum err rc = ERR_OK;

	*tz = false;
	if (ds->rt == NULL && (rc = obj_open(ds, i, why, whylen)) != ERR_OK)
		return rc;
	ds->cur_dz = ds->dz[t];
	if (!ds->cur_dz)
		return ERR_OK;
	rc = dz_open(ds, why, whylen);
	if (rc == ERR_OK)
		return rc;
	if (!ds->raw_ok[t] || (rc != ERR_LIMIT && rc != ERR_UNSUPPORTED && rc != ERR_PARSE)) {
		*tz = true;
		return rc;
	}
	log_info("retrieve %s: sent in its stored transfer syntax %s: not re-encoded: %s", ds->l.it[i].sop,
	         ds->l.ts[t], why);
	dz_close(ds);
	retrieve_close(ds->rt);
	ds->rt = NULL;
	ds->cur_dz = false;
	why[0] = 0;
	return obj_open(ds, i, why, whylen);
}

/* Up to max bytes of the transcoded instance; 0 at its end. */
static enum err dz_read(struct dstream *ds, char *buf, size_t max, size_t *got, char *why, size_t whylen)
{
	enum err rc;

	*got = 0;
	if (ds->zpos == ds->zlen) {
		rc = dcm_transcode_next(ds->z, &ds->zp, &ds->zlen, why, whylen);
		ds->zpos = 0;
		if (rc != ERR_OK || ds->zlen == 0)
			return rc;
	}
	*got = ds->zlen - ds->zpos < max ? ds->zlen - ds->zpos : max;
	memcpy(buf, ds->zp + ds->zpos, *got);
	ds->zpos += *got;
	return ERR_OK;
}

static ssize_t dstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct dstream *ds = cls;
	enum err rc;

	(void)pos;
	if (ds->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	for (;;) {
		if (ds->phase == D_HEAD) {
			if (ds->i == ds->l.n) {
				wbuf_reset(&ds->piece);
				if (ds->mp)
					mp_write_close(&ds->piece, ds->boundary);
				ds->ppos = 0;
				ds->phase = D_TAIL;
				continue;
			}
			if (ds->ppos == 0 && ds->piece.len == 0) {
				/* opened lazily, as the one before has been sent (the
				 * first was opened before the answer began), before its
				 * part head, which names its transfer syntax; takes
				 * ix_lock for its look-up only */
				if (ds->rt == NULL) {
					char why[256] = "";
					bool tz;
					rc = inst_open(ds, ds->i, &tz, why, sizeof why);
					if (rc != ERR_OK)
						return dstream_fail(ds, rc, why[0] ? why : tz ? "transcode" : "open");
				}
				if (ds->mp)
					part_head(ds, ds->i, ds->cur_dz, &ds->piece);
			}
			if (wbuf_err(&ds->piece) != ERR_OK)
				return dstream_fail(ds, ERR_NOMEM, "part head");
			if (ds->ppos < ds->piece.len) {
				size_t n = ds->piece.len - ds->ppos;
				if (n > max)
					n = max;
				memcpy(buf, ds->piece.p + ds->ppos, n);
				ds->ppos += n;
				return (ssize_t)n;
			}
			wbuf_reset(&ds->piece);
			ds->ppos = 0;
			ds->phase = D_OPEN;
		} else if (ds->phase == D_OPEN) {
			ds->phase = D_BODY;   /* (opened before its part head) */
		} else if (ds->phase == D_BODY) {
			size_t got = 0;
			char why[256] = "";
			if (ds->pre_pos < ds->pre_len) {
				got = ds->pre_len - ds->pre_pos < max ? ds->pre_len - ds->pre_pos : max;
				memcpy(buf, ds->pre + ds->pre_pos, got);
				ds->pre_pos += got;
				return (ssize_t)got;
			}
			if (ds->z != NULL)
				rc = dz_read(ds, buf, max, &got, why, sizeof why);
			else
				rc = retrieve_read(ds->rt, buf, max, &got);
			if (rc != ERR_OK)
				return dstream_fail(ds, rc, why[0] ? why : "read");
			if (got > 0)
				return (ssize_t)got;
			dz_close(ds);
			retrieve_close(ds->rt);   /* whole: every chunk authenticated, the last one last */
			ds->rt = NULL;
			ds->i++;
			ds->phase = D_HEAD;
		} else {
			if (ds->ppos < ds->piece.len) {
				size_t n = ds->piece.len - ds->ppos;
				if (n > max)
					n = max;
				memcpy(buf, ds->piece.p + ds->ppos, n);
				ds->ppos += n;
				return (ssize_t)n;
			}
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
	}
}

static void dstream_free(void *cls)
{
	struct dstream *ds = cls;

	dz_close(ds);
	retrieve_close(ds->rt);
	retrieve_keys_fini(&ds->keys);
	free(ds->pre);
	wado_list_fini(&ds->l);
	wbuf_fini(&ds->piece);
	free(ds);
}

static enum MHD_Result not_found(struct http_req *r, enum err rc, const char *what)
{
	if (rc == ERR_NOTFOUND)
		return http_problem(r, MHD_HTTP_NOT_FOUND, what, NULL);
	if (rc == ERR_LIMIT)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "too many instances or transfer syntaxes in one answer",
		                    NULL);
	log_error("retrieve by %s: index: %s", r->sess.user, err_str(rc));
	return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
}

/* Sends the instances of a study, a series or one instance: mp, a
 * multipart/related answer with one part each; else (WADO-URI) the one
 * instance as application/dicom. */
static enum MHD_Result send_dicom(struct http_req *r, const char *study, const char *series, const char *sop,
                                  bool mp, const char *want_ts)
{
	struct dstream *ds;
	struct wbuf w;
	char ctype[160];
	uint8_t rnd[16];
	uint64_t total = 0;
	bool dz_any = false;
	enum err rc;
	size_t i;

	ds = calloc(1, sizeof *ds);
	if (ds == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	ds->v = r->srv->vault;
	ds->req = r;
	ds->mp = mp;
	wbuf_init(&ds->piece, 4096);
	wado_who_init(r, &ds->who);
	rc = wado_list_make(r, study, series, sop, &ds->l);
	if (rc != ERR_OK) {
		dstream_free(ds);
		return not_found(r, rc, sop ? "no such instance" : series ? "no such series" : "no such study");
	}
	/* WADO-URI's transferSyntax: the stored one, or explicit VR little
	 * endian as for WADO-RS */
	if (want_ts != NULL && strcmp(ds->l.ts[ds->l.it[0].ts], want_ts) != 0) {
		if (strcmp(want_ts, NATIVE_TS) != 0 || !dcm_transcode_takes(ds->l.ts[ds->l.it[0].ts])) {
			dstream_free(ds);
			return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
			                    "the object is offered in its stored transfer syntax, or in 1.2.840.10008.1.2.1 "
			                    "when it is native, JPEG (Baseline, Extended, Lossless), RLE, JPEG 2000 or JPEG-LS: "
			                    "leave out "
			                    "transferSyntax, or ask for one of those",
			                    NULL);
		}
		ds->dz[ds->l.it[0].ts] = true;
	}
	/* WADO-URI too: re-encoded, as stored if it cannot be when that
	 * syntax was taken (no transferSyntax, or it named) */
	if (!mp && web_forbidden_ts(ds->l.ts[ds->l.it[0].ts]) &&
	    (want_ts == NULL || strcmp(want_ts, ds->l.ts[ds->l.it[0].ts]) == 0))
		ds->dz[ds->l.it[0].ts] = ds->raw_ok[ds->l.it[0].ts] = true;
	if (mp && !accept_dicom(r, &ds->l, ds->dz, ds->raw_ok)) {
		dstream_free(ds);
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "only multipart/related; type=\"application/dicom\" is offered, with transfer-syntax=*, "
		                    "the stored transfer syntax, or 1.2.840.10008.1.2.1 for native (re-encoded), JPEG "
		                    "(Baseline, Extended, Lossless), RLE, JPEG 2000 and JPEG-LS (decompressed) instances",
		                    NULL);
	}
	if (rand_bytes(rnd, sizeof rnd) != ERR_OK) {
		dstream_free(ds);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	mp_boundary_make(rnd, ds->boundary);
	/* the length is known: part heads, sizes from the index, the tail */
	wbuf_init(&w, 4096);
	for (i = 0; i < ds->l.n; i++) {
		wbuf_reset(&w);
		if (mp)
			part_head(ds, i, ds->dz[ds->l.it[i].ts], &w);
		total += w.len + ds->l.it[i].size;
		dz_any |= ds->dz[ds->l.it[i].ts];
	}
	wbuf_reset(&w);
	if (mp)
		mp_write_close(&w, ds->boundary);
	total += w.len;
	rc = wbuf_err(&w);
	wbuf_fini(&w);
	if (rc != ERR_OK) {
		dstream_free(ds);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	if (mp)
		snprintf(ctype, sizeof ctype, "multipart/related; type=\"application/dicom\"; boundary=%s", ds->boundary);
	else
		snprintf(ctype, sizeof ctype, "application/dicom");
	/* one record for the request, before any byte leaves (no unaudited
	 * access); a failure in the middle adds a failure record */
	if (wado_audit(&ds->who, AUDIT_SUCCESS, NULL, ds->l.patient, study, series,
	               sop ? sop : ds->l.n == 1 ? ds->l.it[0].sop : NULL, sop ? 0 : ds->l.n) != ERR_OK) {
		dstream_free(ds);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	/* the first instance is opened now, so that a missing key or object
	 * is a 500 rather than an empty answer cut short */
	{
		char why[256] = "";
		bool tz;
		/* and, transcoded, its first frame decoded (its head re-encoded)
		 * before the answer begins: an image the decoders do not take is
		 * a 406 naming why */
		rc = inst_open(ds, 0, &tz, why, sizeof why);
		if (tz && (rc == ERR_UNSUPPORTED || rc == ERR_PARSE || rc == ERR_LIMIT)) {
			const char *t = ds->l.ts[ds->l.it[0].ts];
			char detail[512];
			log_info("retrieve %s by %s: not transcoded: %s", ds->l.it[0].sop, r->sess.user, why);
			/* the request was audited as a success: it did not happen */
			(void)wado_audit(&ds->who, AUDIT_FAILURE, "not transcoded (406)", ds->l.patient, study,
			                 ds->l.series[ds->l.it[0].series].uid, ds->l.it[0].sop, 0);
			snprintf(detail, sizeof detail, "instance %s cannot be %s (%s): ask for %s", ds->l.it[0].sop,
			         dcm_decompress_takes(t) ? "decompressed" : "re-encoded", why,
			         !web_forbidden_ts(t) ? "its stored transfer syntax"
			         : mp ? "transfer-syntax=* to have it as stored" : "no transferSyntax to have it as stored");
			if (!web_forbidden_ts(t))
				snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " %s", t);
			dstream_free(ds);
			return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, detail, NULL);
		}
		if (rc == ERR_OK && !ds->cur_dz) {
			/* and its first bytes read: an object that fails its
			 * authentication there (damaged, or another object put in
			 * its place) is a 500, not a 200 cut short */
			ds->pre = malloc(WADO_PREFETCH);
			rc = ds->pre != NULL ? retrieve_read(ds->rt, ds->pre, WADO_PREFETCH, &ds->pre_len) : ERR_NOMEM;
		}
		if (rc != ERR_OK) {
			enum MHD_Result q = wado_fail_500(r, &ds->who, &ds->l, 0, rc, why);
			dstream_free(ds);
			return q;
		}
		if (mp)
			part_head(ds, 0, ds->cur_dz, &ds->piece);
		ds->phase = D_HEAD;
	}
	/* a transcoded instance's length is known once it is written:
	 * then the answer goes chunked */
	return http_send_callback_large(r, MHD_HTTP_OK, ctype, dz_any ? MHD_SIZE_UNKNOWN : total, dstream_read, ds,
	                                dstream_free);
}

/* ---- routes ---- */

static bool uid_copy(const char *s, size_t n, char out[WADO_UID_MAX + 1])
{
	if (!vr_uid_ok(s, n))
		return false;
	memcpy(out, s, n);
	out[n] = 0;
	return true;
}

/* Authorisation of a retrieval of (part of) a study: the study's
 * collection and patient from the index, then the user's grants. A study
 * that does not exist and one outside every grant get the same 404.
 * *ok false: the answer was queued. */
static enum MHD_Result gate(struct http_req *r, const char *study, const char *series, const char *sop, bool *ok)
{
	struct index_store *ix = r->srv->vault->ix;
	struct idx_study st;
	struct idx_patient pa;
	struct access_object ob;
	enum err rc;

	*ok = false;
	pthread_mutex_lock(r->srv->ix_lock);
	rc = ix->ops->study_get(ix, study, &st);
	if (rc == ERR_OK)
		rc = ix->ops->patient_by_id(ix, st.patient_id, &pa);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc == ERR_NOTFOUND)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (rc != ERR_OK)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	ob.collection = st.collection;
	ob.study_uid = st.uid;
	ob.patient = pa.key_hmac;
	if (http_access(r, ACCESS_ACT_RETRIEVE_ORIGINAL, &ob) != ACCESS_YES)
		return http_refuse(r, ACCESS_ACT_RETRIEVE, &ob, AUDIT_RETRIEVE, study, series, sop);
	*ok = true;
	return MHD_YES;
}

/* The UIDs of a de-identified view (pseudonyms a de-identified QIDO-RS
 * answer gave) mapped back to the stored ones; false if the study UID is a
 * stored one (not a view) or a pseudonym is unknown (*known false). */
static bool view_uids(struct http_req *r, char uid[][WADO_UID_MAX + 1], size_t nuid, bool *known)
{
	struct index_store *ix = r->srv->vault->ix;
	char real[3][IDX_UID_MAX + 1];
	struct idx_study st;
	bool view = false;
	size_t i;

	*known = true;
	pthread_mutex_lock(r->srv->ix_lock);
	if (ix->ops->study_get(ix, uid[0], &st) == ERR_NOTFOUND) {
		view = true;
		for (i = 0; i < nuid && *known; i++)
			*known = ix->ops->pseudo_get(ix, uid[i], real[i]) == ERR_OK;
	}
	pthread_mutex_unlock(r->srv->ix_lock);
	for (i = 0; view && *known && i < nuid; i++)
		*known = uid_copy(real[i], strnlen(real[i], IDX_UID_MAX), uid[i]);
	return view && *known;
}

/* A de-identified view: allowed when a grant covers the study for
 * retrieval, de-identified or not. Study, series and instance retrieval
 * and metadata only. */
static enum MHD_Result view(struct http_req *r, char uid[][WADO_UID_MAX + 1], size_t nuid, enum wado_kind k)
{
	struct index_store *ix = r->srv->vault->ix;
	struct idx_study st;
	struct idx_patient pa;
	struct access_object ob;
	enum err rc;

	pthread_mutex_lock(r->srv->ix_lock);
	rc = ix->ops->study_get(ix, uid[0], &st);
	if (rc == ERR_OK)
		rc = ix->ops->patient_by_id(ix, st.patient_id, &pa);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc != ERR_OK)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	ob.collection = st.collection;
	ob.study_uid = st.uid;
	ob.patient = pa.key_hmac;
	if (http_access(r, ACCESS_ACT_RETRIEVE, &ob) == ACCESS_NO)
		return http_refuse(r, ACCESS_ACT_RETRIEVE, &ob, AUDIT_RETRIEVE, NULL, NULL, NULL);
	if (k != WADO_K_METADATA && k != WADO_K_DICOM)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "frames and bulk data are not offered in de-identified views",
		                    NULL);
	return wado_deid(r, uid[0], nuid > 1 ? uid[1] : NULL, nuid > 2 ? uid[2] : NULL, k == WADO_K_METADATA);
}

void wado_route_of(const char *const seg[], const size_t len[], size_t n, struct wado_route *rt)
{
	bool series = n >= 4 && dw_seg_is(seg[2], len[2], "series");
	bool inst = series && n >= 6 && dw_seg_is(seg[4], len[4], "instances");
	const char *last = n > 0 ? seg[n - 1] : "";
	size_t lastlen = n > 0 ? len[n - 1] : 0, i;

	memset(rt, 0, sizeof *rt);
	rt->arg = "";
	/* how many UIDs the path holds, and what follows them */
	if (n == 2 || (n == 3 && !series))
		rt->nuid = 1;
	else if (series && (n == 4 || (n == 5 && !inst)))
		rt->nuid = 2;
	else if (inst && n >= 6 && n <= 9)
		rt->nuid = 3;
	else {
		rt->k = WADO_K_NONE;
		return;
	}
	for (i = 0; i < rt->nuid; i++)
		if (!uid_copy(seg[1 + 2 * i], len[1 + 2 * i], rt->uid[i])) {
			memset(rt->uid, 0, sizeof rt->uid);
			rt->nuid = 0;
			rt->k = WADO_K_BAD_UID;
			return;
		}
	rt->n = n;
	if (2 * rt->nuid == n)
		rt->k = WADO_K_DICOM;
	else if (2 * rt->nuid + 1 == n && dw_seg_is(last, lastlen, "metadata"))
		rt->k = WADO_K_METADATA;
	else if (n == 8 && dw_seg_is(seg[6], len[6], "frames"))
		rt->k = WADO_K_FRAMES;
	else if (n == 8 && dw_seg_is(seg[6], len[6], "bulkdata"))
		rt->k = WADO_K_BULK;
	else if ((dw_seg_is(last, lastlen, "rendered") || dw_seg_is(last, lastlen, "thumbnail")) &&
	         (2 * rt->nuid + 1 == n || (n == 9 && dw_seg_is(seg[6], len[6], "frames"))))
		rt->k = dw_seg_is(last, lastlen, "thumbnail") ? WADO_K_THUMBNAIL : WADO_K_RENDERED;
	else
		rt->k = WADO_K_OTHER;
	/* (8 and 9 segments are below an instance only) the frame list of
	 * frames and .../frames/{list}/rendered, the path of bulk data */
	if (n >= 8 && rt->k != WADO_K_OTHER) {
		rt->arg = seg[7];
		rt->arglen = len[7];
	}
}

enum MHD_Result wado_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n)
{
	struct wado_route rt;
	const char *study, *series, *sop;
	bool ok, known;
	enum MHD_Result q;

	wado_route_of(seg, len, n, &rt);
	if (rt.k == WADO_K_NONE)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (rt.k == WADO_K_BAD_UID)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "a UID in the path is not 1 to 64 digits and dots", NULL);
	if (view_uids(r, rt.uid, rt.nuid, &known))
		return view(r, rt.uid, rt.nuid, rt.k);
	if (!known)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	study = rt.uid[0];
	series = rt.nuid > 1 ? rt.uid[1] : NULL;
	sop = rt.nuid > 2 ? rt.uid[2] : NULL;
	q = gate(r, study, series, sop, &ok);
	if (!ok)
		return q;
	switch (rt.k) {
	case WADO_K_DICOM:
		return send_dicom(r, study, series, sop, true, NULL);
	case WADO_K_METADATA:
		return wado_metadata(r, study, series, sop);
	case WADO_K_FRAMES:
		return wado_frames(r, study, series, sop, rt.arg, rt.arglen);
	case WADO_K_BULK:
		return wado_bulkdata(r, study, series, sop, rt.arg, rt.arglen);
	case WADO_K_RENDERED:
	case WADO_K_THUMBNAIL:
		return wado_rendered(r, study, series, sop, rt.n == 9 ? rt.arg : NULL, rt.arglen,
		                     rt.k == WADO_K_THUMBNAIL);
	default:
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	}
}

/* WADO-URI's contentType: a list of media types (with q, as an Accept
 * header); the first offered wins. */
struct uri_media {
	bool found, dicom;
	enum render_media m;
};

static bool uri_pick(void *ctx, const struct accept_range *a)
{
	struct uri_media *u = ctx;

	if (a->q == 0)
		return false;
	if (strcmp(a->media, "application/dicom") == 0)
		u->dicom = true;
	else if (strcmp(a->media, "image/jpeg") == 0)
		u->m = RENDER_JPEG;
	else if (strcmp(a->media, "image/png") == 0)
		u->m = RENDER_PNG;
	else
		return false;
	u->found = true;
	return true;
}

enum MHD_Result dicomweb_wado_uri(struct http_req *r)
{
	static const char *const names[] = { "studyUID", "seriesUID", "objectUID" };
	const char *uid[3], *rt, *ct, *ts, *anon;
	struct uri_media um;
	size_t i;

	if (r->srv->vault == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	rt = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "requestType");
	if (rt == NULL || strcmp(rt, "WADO") != 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "requestType=WADO is required", NULL);
	for (i = 0; i < 3; i++) {
		uid[i] = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, names[i]);
		if (uid[i] == NULL || !vr_uid_ok(uid[i], strlen(uid[i])))
			return http_problem(r, MHD_HTTP_BAD_REQUEST,
			                    "studyUID, seriesUID and objectUID must be 1 to 64 digits and dots", NULL);
	}
	/* PS3.18 9.4.2: the server either removes the patient's identity or
	 * refuses; identified bytes are never sent to who asked otherwise */
	anon = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "anonymize");
	if (anon != NULL && strcmp(anon, "no") != 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST,
		                    "anonymize=yes is not offered by WADO-URI: ask for a de-identified view (WADO-RS with a "
		                    "researcher's grant) or a de-identified export",
		                    NULL);
	if (MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "region") != NULL)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "region is not offered: leave it out for the whole image",
		                    NULL);
	ts = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "transferSyntax");
	if (ts != NULL && !vr_uid_ok(ts, strlen(ts)))
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "transferSyntax must be a UID (1 to 64 digits and dots)", NULL);
	memset(&um, 0, sizeof um);
	ct = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "contentType");
	if (ct != NULL && !accept_each(ct, strlen(ct), uri_pick, &um))
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "contentType: application/dicom, image/jpeg and image/png are offered", NULL);
	if (ts != NULL && um.found && !um.dicom)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "transferSyntax goes with contentType=application/dicom only",
		                    NULL);
	{
		bool ok;
		enum MHD_Result q = gate(r, uid[0], uid[1], uid[2], &ok);
		if (!ok)
			return q;
	}
	/* no contentType: a single-frame image as image/jpeg, any other
	 * object (multi-frame, video, not an image) as application/dicom
	 * (PS3.18 WADO-URI default) */
	if (!um.dicom && ts == NULL) {
		bool as_dicom = false;
		enum MHD_Result q = wado_uri_image(r, uid[0], uid[1], uid[2], um.found ? (int)um.m : -1, &as_dicom);
		if (!as_dicom)
			return q;
	}
	return send_dicom(r, uid[0], uid[1], uid[2], false, ts);
}
