/* qido.c: QIDO-RS (PS3.18 10.6) of the HTTPS listener: the query string
 * becomes an identifier (proto/qido.c), the resource path its level, scope
 * and default return keys, the matching engine (core/query.c) finds the
 * results, which go out as a DICOM JSON array with a RetrieveURL each.
 * Every query is audited once, without its values (they may name a
 * patient). Design: docs/internals/qido.md. Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "dicomvault/crypto.h"
#include "dicomvault/json.h"
#include "dicomvault/log.h"
#include "dicomvault/qido.h"
#include "dicomvault/query.h"
#include "dicomvault/vault.h"
#include "dicomvault/deid_view.h"
#include "dicomvault/index.h"
#include "dicomvault/vr.h"
#include "http_int.h"
#include "wado_int.h"

#define UID_MAX 64u

struct args {
	struct qido_arg a[QIDO_MAX_ARGS];
	size_t n;
	bool too_many;
};

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args *as = cls;

	(void)kind;
	if (as->n >= QIDO_MAX_ARGS) {
		as->too_many = true;
		return MHD_NO;
	}
	as->a[as->n].key = key ? key : "";
	as->a[as->n].klen = key ? strlen(key) : 0;
	as->a[as->n].val = value;
	as->a[as->n].vlen = value ? strlen(value) : 0;
	as->n++;
	return MHD_YES;
}

/* Appends one warning value (299, agent, quoted text) to the Warning
 * header w, whole or not at all (a cut one would leave a quote open). */
static void warn_add(char *w, size_t cap, const char *text)
{
	size_t n = strlen(w);
	int k = snprintf(w + n, cap - n, "%s299 dicomvault \"%s\"", n ? ", " : "", text);

	if (k < 0 || (size_t)k >= cap - n)
		w[n] = 0;
}

/* The Warning for query parameters this server ignored: their names when
 * they are plain (letters, digits, "_", "-", "."; at most 32 bytes), else
 * only their positions, so nothing the client sent reaches the header
 * unchecked. */
static void warn_ignored(char *w, size_t cap, const struct args *as, const struct qido_params *p)
{
	char text[400] = "Query parameters not supported, ignored:";
	size_t i, k;

	for (i = 0; i < p->n_ignored && i < QIDO_MAX_IGNORED; i++) {
		const struct qido_arg *a = &as->a[p->ignored[i]];
		bool plain = a->klen <= 32;
		for (k = 0; plain && k < a->klen; k++)
			plain = (a->key[k] >= 'a' && a->key[k] <= 'z') || (a->key[k] >= 'A' && a->key[k] <= 'Z') ||
			        (a->key[k] >= '0' && a->key[k] <= '9') || a->key[k] == '_' || a->key[k] == '-' ||
			        a->key[k] == '.';
		if (plain)
			snprintf(text + strlen(text), sizeof text - strlen(text), "%s %.*s", i ? "," : "", (int)a->klen,
			         a->key);
		else
			snprintf(text + strlen(text), sizeof text - strlen(text), "%s parameter %zu", i ? "," : "",
			         p->ignored[i] + 1);
	}
	if (p->n_ignored > QIDO_MAX_IGNORED)
		snprintf(text + strlen(text), sizeof text - strlen(text), " and %zu more", p->n_ignored - QIDO_MAX_IGNORED);
	warn_add(w, cap, text);
}

/* A warning listing tags as 8 hex digits after lead; none: nothing. */
static void warn_tags(char *w, size_t cap, const char *lead, const uint32_t *tags, size_t n)
{
	char text[700];
	size_t i;

	if (n == 0)
		return;
	snprintf(text, sizeof text, "%s", lead);
	for (i = 0; i < n && strlen(text) + 30 < sizeof text; i++)
		snprintf(text + strlen(text), sizeof text - strlen(text), "%s%08X", i ? "," : " ", (unsigned)tags[i]);
	if (i < n) {   /* the header's room (30 bytes kept for this): the rest counted */
		size_t len = strlen(text);
		if (snprintf(text + len, sizeof text - len, " and %zu more", n - i) >= (int)(sizeof text - len))
			text[len] = 0;
	}
	warn_add(w, cap, text);
}

struct out {
	struct http_req *r;
	enum qry_level level;
	struct wbuf w;
	const char *base;
	size_t bl;
	/* de-identified view (a researcher): results through the PS3.15
	 * engine, UIDs pseudonymous; the pairs handed out are remembered so
	 * that WADO can map them back */
	struct deid_view *dv;
	struct deid_opts dopts;
	struct wbuf pairs;          /* "pseudo\0real\0" ... */
};

/* The pseudonym of a stored UID in the view, remembered for the way back. */
static enum err pseudo(struct out *o, const char *real, char out[DEID_UID_MAX + 1])
{
	enum err rc = deid_view_uid(o->dv, real, out);

	if (rc == ERR_OK) {
		wbuf_put(&o->pairs, out, strlen(out) + 1);
		wbuf_put(&o->pairs, real, strlen(real) + 1);
		rc = wbuf_err(&o->pairs);
	}
	return rc;
}

static enum err emit(void *ctx, struct qry_hit *h)
{
	struct out *o = ctx;
	char p_study[DEID_UID_MAX + 1], p_series[DEID_UID_MAX + 1], p_sop[DEID_UID_MAX + 1];
	const char *study = h->study_uid, *series = h->series_uid, *sop = h->sop_uid;
	struct wbuf url;
	struct sink k;
	enum err rc;

	if (o->dv != NULL) {
		char why[160];
		rc = deid_apply(h->f, &o->dopts, NULL, why, sizeof why);
		if (rc == ERR_DENIED)
			return ERR_OK;   /* not offered de-identified: left out */
		if (rc == ERR_OK && study[0])
			rc = pseudo(o, study, p_study);
		if (rc == ERR_OK && o->level >= QRY_SERIES)
			rc = pseudo(o, series, p_series);
		if (rc == ERR_OK && o->level == QRY_INSTANCE)
			rc = pseudo(o, sop, p_sop);
		if (rc != ERR_OK)
			return rc;
		study = p_study;
		series = p_series;
		sop = p_sop;
	}
	wbuf_init(&url, 1024);
	wbuf_printf(&url, "%.*s/dicom-web/studies/%s", (int)o->bl, o->base, study);
	if (o->level >= QRY_SERIES)
		wbuf_printf(&url, "/series/%s", series);
	if (o->level == QRY_INSTANCE)
		wbuf_printf(&url, "/instances/%s", sop);
	rc = wbuf_err(&url);
	if (rc == ERR_OK)
		rc = dcm_ds_set(&h->f->ds, 0x00081190, VR_UR, url.p, url.len);
	wbuf_fini(&url);
	if (rc != ERR_OK)
		return rc;
	wbuf_puts(&o->w, o->w.len > 1 ? "," : "");
	sink_wbuf(&k, &o->w);
	rc = dcm_json_write(h->f, &h->f->ds, NULL, &k);
	return rc == ERR_OK ? wbuf_err(&o->w) : rc;
}

/* The resource: level, levels of the default return keys, scope. */
static bool resource(const char *const seg[], const size_t len[], size_t n, struct qry_opts *qo, const char **name)
{
	memset(qo, 0, sizeof *qo);
	if (n == 1) {
		if (dw_seg_is(seg[0], len[0], "studies")) {
			qo->level = QRY_STUDY;
			qo->ret_levels = QRY_LEVEL_BIT(QRY_PATIENT) | QRY_LEVEL_BIT(QRY_STUDY);
			*name = "qido-rs studies";
		} else if (dw_seg_is(seg[0], len[0], "series")) {
			qo->level = QRY_SERIES;
			qo->ret_levels = QRY_LEVEL_BIT(QRY_PATIENT) | QRY_LEVEL_BIT(QRY_STUDY) | QRY_LEVEL_BIT(QRY_SERIES);
			*name = "qido-rs series";
		} else {
			/* PS3.18 10.6.3.3.3: the study's attributes (its patient's
			 * among them, as for /series) */
			qo->level = QRY_INSTANCE;
			qo->ret_levels = QRY_LEVEL_BIT(QRY_PATIENT) | QRY_LEVEL_BIT(QRY_STUDY) | QRY_LEVEL_BIT(QRY_SERIES) |
			                 QRY_LEVEL_BIT(QRY_INSTANCE);
			*name = "qido-rs instances";
		}
		return true;
	}
	if (n == 3 && dw_seg_is(seg[2], len[2], "series")) {
		qo->level = QRY_SERIES;
		qo->ret_levels = QRY_LEVEL_BIT(QRY_SERIES);
		*name = "qido-rs study series";
		return true;
	}
	if (n == 3) {
		qo->level = QRY_INSTANCE;
		qo->ret_levels = QRY_LEVEL_BIT(QRY_SERIES) | QRY_LEVEL_BIT(QRY_INSTANCE);
		*name = "qido-rs study instances";
		return true;
	}
	qo->level = QRY_INSTANCE;
	qo->ret_levels = QRY_LEVEL_BIT(QRY_INSTANCE);
	*name = "qido-rs series instances";
	return true;
}

static enum MHD_Result bad(struct http_req *r, unsigned status, const char *name, const char *detail,
                           const char *study, const char *series)
{
	struct audit_rec rec;

	memset(&rec, 0, sizeof rec);
	rec.action = AUDIT_QUERY;
	rec.outcome = AUDIT_FAILURE;
	rec.reason = name;
	rec.objects.study_uid = study;
	rec.objects.series_uid = series;
	(void)dw_audit_rec(r, &rec);
	return http_problem(r, status, detail, NULL);
}

/* Only what the user's grants (and token scope) let them query. */
static bool visible(void *ctx, const char *collection, const char *study_uid, const uint8_t patient[32])
{
	struct access_object ob = { collection, study_uid, patient };

	return http_access(ctx, ACCESS_ACT_QUERY, &ob) == ACCESS_YES;
}

/* De-identified view: what a grant lets the user see de-identified. */
static bool visible_deid(void *ctx, const char *collection, const char *study_uid, const uint8_t patient[32])
{
	struct access_object ob = { collection, study_uid, patient };

	return http_access(ctx, ACCESS_ACT_QUERY, &ob) != ACCESS_NO;
}

/* A de-identified query matches on pseudonymous UIDs (mapped back here; an
 * unknown one matches nothing), Modality, Modalities in Study and SOP
 * Class only: matching on names, IDs or dates would let a researcher probe
 * the originals. ERR_PARSE with the attribute in why. */
static enum err deid_keys(struct http_req *r, struct dcm_ds *id, char *why, size_t whylen)
{
	static const uint32_t uids[] = { 0x0020000D, 0x0020000E, 0x00080018 };
	uint32_t i;
	size_t k;
	enum err rc = ERR_OK;

	for (i = 0; i < id->n; i++) {
		const struct dcm_elem *e = &id->e[i];
		bool ok = e->len == 0 || e->tag == 0x00080060 || e->tag == 0x00080061 || e->tag == 0x00080016 ||
		          e->tag == 0x00080005;
		for (k = 0; k < sizeof uids / sizeof uids[0]; k++)
			ok = ok || e->tag == uids[k];
		if (!ok)
			return err_why(why, whylen, ERR_PARSE, "(%04X,%04X): a de-identified query matches on UIDs, Modality, "
			               "ModalitiesInStudy and SOPClassUID only", (unsigned)(e->tag >> 16),
			               (unsigned)(e->tag & 0xFFFF));
	}
	for (k = 0; rc == ERR_OK && k < sizeof uids / sizeof uids[0]; k++) {
		char val[QRY_MAX_VALUES * 8 + 1], out[QRY_MAX_VALUES * (IDX_UID_MAX + 1) + 1];
		size_t n = 0, o = 0, nv;
		const char *v = dcm_ds_str(id, uids[k], &n), *p;
		if (v == NULL || n == 0)
			continue;
		if (n >= sizeof val)
			return err_why(why, whylen, ERR_LIMIT, "too many UIDs in one key");
		memcpy(val, v, n);
		val[n] = 0;
		for (p = val, nv = 0; p != NULL && *p; nv++) {
			char one[IDX_UID_MAX + 1], real[IDX_UID_MAX + 1];
			const char *e = strchr(p, '\\');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			if (nv == QRY_MAX_VALUES)   /* out holds QRY_MAX_VALUES UIDs of 64 and separators */
				return err_why(why, whylen, ERR_LIMIT, "more than %u UIDs in one key", QRY_MAX_VALUES);
			if (l == 0 || l > IDX_UID_MAX)
				return err_why(why, whylen, ERR_PARSE, "a UID of 1 to 64 characters is expected");
			memcpy(one, p, l);
			one[l] = 0;
			pthread_mutex_lock(r->srv->ix_lock);
			if (r->srv->vault->ix->ops->pseudo_get(r->srv->vault->ix, one, real) != ERR_OK)
				snprintf(real, sizeof real, "0.0");   /* a UID nothing has */
			pthread_mutex_unlock(r->srv->ix_lock);
			o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", o ? "\\" : "", real);
			p = e ? e + 1 : NULL;
		}
		rc = dcm_ds_set(id, uids[k], VR_UI, out, o);
	}
	return rc;
}

/* Remembers the pseudonyms handed out, in one transaction. */
static void save_pairs(struct http_req *r, const struct wbuf *pairs)
{
	struct index_store *ix = r->srv->vault->ix;
	size_t pos = 0;
	enum err rc;

	if (pairs->len == 0)
		return;
	pthread_mutex_lock(r->srv->ix_lock);
	rc = ix->ops->begin(ix);
	while (rc == ERR_OK && pos < pairs->len) {
		const char *ps = (const char *)pairs->p + pos, *real = ps + strlen(ps) + 1;
		rc = ix->ops->pseudo_put(ix, ps, real);
		pos = (size_t)(real + strlen(real) + 1 - (const char *)pairs->p);
	}
	if (rc == ERR_OK)
		rc = ix->ops->commit(ix);
	else
		ix->ops->rollback(ix);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc != ERR_OK)
		log_error("query by %s: cannot remember the pseudonymous UIDs: %s", r->sess.user, err_str(rc));
}

enum MHD_Result qido_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n)
{
	struct vault *v = r->srv->vault;
	struct args *as = NULL;
	struct qido_params p;
	struct qry_opts qo;
	struct qry *q = NULL;
	struct qry_stats st;
	struct audit_rec rec;
	struct out o;
	const uint32_t *ign;
	size_t nign;
	char why[256] = "", study[UID_MAX + 1] = "", series[UID_MAX + 1] = "", warn[2048] = "";
	const char *name = "qido-rs", *extra[3] = { NULL, NULL, NULL }, *json;
	bool clamped = false;
	int deid;
	enum MHD_Result ret;
	enum err rc;

	memset(&p, 0, sizeof p);
	memset(&o, 0, sizeof o);
	memset(&st, 0, sizeof st);
	wbuf_init(&o.w, QIDO_JSON_MAX);
	wbuf_init(&o.pairs, QIDO_JSON_MAX);
	resource(seg, len, n, &qo, &name);
	if (n >= 3) {
		if (!vr_uid_ok(seg[1], len[1]) || (n == 5 && !vr_uid_ok(seg[3], len[3]))) {
			ret = bad(r, MHD_HTTP_BAD_REQUEST, name, "a UID in the path is not 1 to 64 digits and dots", NULL, NULL);
			goto out;
		}
		memcpy(study, seg[1], len[1]);
		study[len[1]] = 0;
		if (n == 5) {
			memcpy(series, seg[3], len[3]);
			series[len[3]] = 0;
		}
	}
	json = wado_json_media(r);
	if (json == NULL) {
		ret = bad(r, MHD_HTTP_NOT_ACCEPTABLE, name, "only application/dicom+json (or application/json) is offered",
		          study, series);
		goto out;
	}
	/* a query needs a grant whose role may query (de-identified query
	 * results are not offered yet: such a grant is refused, never given
	 * originals); what it covers filters the results below */
	deid = http_access(r, ACCESS_ACT_QUERY, NULL);
	if (deid == ACCESS_NO) {
		ret = http_refuse(r, ACCESS_ACT_QUERY, NULL, AUDIT_QUERY, study[0] ? study : NULL, series[0] ? series : NULL,
		                  NULL);
		goto out;
	}
	if (deid == ACCESS_DEID) {
		if (deid_view_open(v, NULL, NULL, &o.dv, why, sizeof why) != ERR_OK) {
			log_error("de-identified query by %s: %s", r->sess.user, why);
			ret = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the de-identification settings are unusable", NULL);
			goto out;
		}
		o.dopts = *deid_view_opts(o.dv);
		o.dopts.escrow = NULL;   /* a view, not a release: no escrow in answers */
		why[0] = 0;
	}
	as = calloc(1, sizeof *as);
	if (as == NULL) {
		ret = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
		goto out;
	}
	MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, arg_cb, as);
	if (as->too_many) {
		ret = bad(r, MHD_HTTP_BAD_REQUEST, name, "too many query parameters", study, series);
		goto out;
	}
	rc = qido_parse(as->a, as->n, &p, why, sizeof why);
	if (rc == ERR_OK && study[0])   /* the path's scope wins over the query's */
		rc = dcm_ds_set_str(&p.id->ds, 0x0020000D, VR_UI, study);
	if (rc == ERR_OK && series[0])
		rc = dcm_ds_set_str(&p.id->ds, 0x0020000E, VR_UI, series);
	if (rc == ERR_OK && o.dv != NULL)
		rc = deid_keys(r, &p.id->ds, why, sizeof why);
	if (rc != ERR_OK) {
		ret = bad(r, rc == ERR_NOMEM ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_BAD_REQUEST, name,
		          why[0] ? why : "bad query", study, series);
		goto out;
	}
	/* limit: at most QIDO_MAX_RESULTS per answer (the rest with offset) */
	qo.limit = QIDO_MAX_RESULTS;
	if (p.has_limit && p.limit > 0 && p.limit <= QIDO_MAX_RESULTS)
		qo.limit = p.limit;
	else if (p.has_limit && p.limit > QIDO_MAX_RESULTS)
		clamped = true;
	qo.offset = p.offset;
	qo.include = p.include;
	qo.n_include = p.n_include;
	qo.include_all = p.include_all;
	qo.omit_unkept = true;
	qo.allow = o.dv != NULL ? visible_deid : visible;
	qo.allow_ctx = r;
	rc = qry_new(&qo, &p.id->ds, &q, why, sizeof why);
	if (rc != ERR_OK) {
		ret = bad(r, rc == ERR_NOMEM || rc == ERR_INTERNAL ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_BAD_REQUEST,
		          name, why[0] ? why : "bad query", study, series);
		goto out;
	}
	o.r = r;
	o.level = qo.level;
	o.base = dw_base_url(r, &o.bl);
	wbuf_putc(&o.w, '[');
	rc = qry_run(v, q, emit, &o, &st);
	wbuf_putc(&o.w, ']');
	if (rc == ERR_OK)
		rc = wbuf_err(&o.w);
	if (rc == ERR_OK && o.dv != NULL)
		save_pairs(r, &o.pairs);
	if (rc != ERR_OK) {
		log_error("query by %s: %s", r->sess.user, err_str(rc));
		ret = bad(r, MHD_HTTP_INTERNAL_SERVER_ERROR, name,
		          rc == ERR_LIMIT ? "the answer is too large: use limit" : "internal error", study, series);
		goto out;
	}
	/* the Warning header (RFC 7234 5.5, PS3.18 8.3.4): more matches than
	 * this answer holds, cut by the server's maximum or by the client's
	 * own limit (the text says which; the count left is not known) */
	if (st.truncated && (!p.has_limit || p.limit == 0 || clamped)) {
		char text[160];
		snprintf(text, sizeof text, "The number of results exceeded the maximum supported by the server (%u). "
		         "Additional results can be requested.", QIDO_MAX_RESULTS);
		warn_add(warn, sizeof warn, text);
	} else if (st.truncated) {
		warn_add(warn, sizeof warn, "There are additional results that can be requested.");
	}
	if (p.fuzzy)
		warn_add(warn, sizeof warn, "The fuzzymatching parameter is not supported. Only literal matching has been "
		                            "performed.");
	if (p.empty_value)
		warn_add(warn, sizeof warn, "The emptyvaluematching parameter is not supported. Empty Value Matching has "
		                            "not been performed.");
	/* multiplevaluematching=true needs no Warning: a value list (A\\B)
	 * always matches any of its values (PS3.4 C.2.2.2.8; query.c) */
	if (p.n_ignored > 0)
		warn_ignored(warn, sizeof warn, as, &p);
	nign = qry_ignored(q, &ign);
	warn_tags(warn, sizeof warn, "Not supported for matching, ignored:", ign, nign);
	nign = qry_omitted(q, &ign);
	{
		static const char *const levels[] = { "patient", "study", "series", "instance" };
		char lead[80];
		snprintf(lead, sizeof lead, "Not kept by this server at the %s level, left out of the results:",
		         levels[qo.level]);
		warn_tags(warn, sizeof warn, lead, ign, nign);
	}
	if (warn[0]) {
		extra[0] = "Warning";
		extra[1] = warn;
	}
	/* one audit record: what was asked (resource and scope) and how many
	 * answered, never the match values */
	memset(&rec, 0, sizeof rec);
	rec.action = AUDIT_QUERY;
	rec.outcome = AUDIT_SUCCESS;
	rec.reason = o.dv != NULL ? "de-identified view" : name;
	rec.objects.patient = st.one_patient ? st.patient : NULL;
	rec.objects.patient_list = st.one_patient ? NULL : st.patients;
	rec.objects.npatient_list = st.one_patient ? 0 : st.npatients;
	rec.objects.study_uid = study[0] ? study : NULL;
	rec.objects.series_uid = series[0] ? series : NULL;
	rec.objects.counted = true;
	if (qo.level == QRY_STUDY)
		rec.objects.studies = st.matches;
	else if (qo.level == QRY_SERIES)
		rec.objects.series = st.matches;
	else
		rec.objects.instances = st.matches;
	if (dw_audit_rec(r, &rec) != ERR_OK) {
		ret = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
		goto out;
	}
	/* no match: 200 with an empty array (CP-2473; Orthanc does the same,
	 * and dicomweb-client, OHIF and dcm4che handle it) */
	ret = http_send(r, MHD_HTTP_OK, json, o.w.p, o.w.len, 0, extra[0] ? extra : NULL);
out:
	qry_stats_fini(&st);
	qry_free(q);
	qido_params_fini(&p);
	free(as);
	if (o.w.p)
		mem_wipe(o.w.p, o.w.len);
	wbuf_fini(&o.w);
	wbuf_fini(&o.pairs);
	deid_view_free(o.dv);
	return ret;
}
