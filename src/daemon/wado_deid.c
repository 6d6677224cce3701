/* wado_deid.c: WADO-RS de-identified views (docs/ACCESS.md, `deid` cells:
 * researchers). The path holds the pseudonymous UIDs a de-identified
 * QIDO-RS answer gave (mapped back through the index); each instance is
 * read (authenticated, fixity checked), de-identified with the vault's
 * profile and project key (core/deid_view.c) and sent: study, series and
 * instance retrieval as multipart/related application/dicom (chunked: the
 * sizes are only known once each instance is de-identified), and metadata
 * as DICOM JSON without bulk values. Frames and bulk data are not offered
 * in views. One instance is held in memory at a time (at most
 * WADO_DEID_MAX bytes); an instance the profile refuses (burned-in
 * annotation without a masking rule) is left out and audited.
 * Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/deid_view.h"
#include "dicomvault/json.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "http_int.h"
#include "wado_int.h"

#define WADO_DEID_MAX ((size_t)256 << 20)

/* The de-identified Part 10 bytes of one stored instance (out), or
 * ERR_DENIED with the reason when the profile refuses it. */
static enum err deid_one(struct vault *v, const struct deid_opts *o, const char *sop, struct wbuf *out, char *why,
                         size_t whylen, struct dcm_file **keep)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct wbuf raw;
	struct sink k;
	struct src s;
	struct src_mem m;
	enum err rc;

	wbuf_init(&raw, WADO_DEID_MAX);
	sink_wbuf(&k, &raw);
	rc = retrieve_instance(v, sop, &k, why, whylen);
	if (rc == ERR_OK)
		rc = wbuf_err(&raw);
	if (rc == ERR_OK) {
		memset(&ro, 0, sizeof ro);
		src_mem_init(&s, &m, raw.p, raw.len);
		rc = dcm_file_read(&s, &ro, &f, &ei);
		if (rc != ERR_OK)
			(void)err_why(why, whylen, rc, "the stored object does not parse: %s", ei.msg);
	}
	if (rc == ERR_OK)
		rc = deid_apply(f, o, NULL, why, whylen);
	if (rc == ERR_OK && out != NULL) {
		struct dcm_write_opts wo;
		memset(&wo, 0, sizeof wo);
		sink_wbuf(&k, out);
		rc = dcm_file_write(f, &wo, &k);
		if (rc == ERR_OK)
			rc = wbuf_err(out);
	}
	if (rc == ERR_OK && keep != NULL) {
		/* values are in f's arena except bulk ones, which point into raw:
		 * none, since everything was loaded (bulk_threshold 0) */
		*keep = f;
		f = NULL;
	}
	dcm_file_free(f);
	if (raw.p != NULL)
		mem_wipe(raw.p, raw.len);
	wbuf_fini(&raw);
	return rc;
}

struct vstream {
	struct vault *v;
	struct deid_view *dv;
	struct deid_opts o;
	struct wado_list l;
	struct wado_who who;
	char boundary[MP_BOUNDARY_MAX + 1];
	size_t i;                 /* next instance */
	bool first, closed;
	struct wbuf piece;        /* the current part (head and body) or the tail */
	size_t ppos;
	uint64_t sent, refused;
};

static void vstream_free(void *cls)
{
	struct vstream *vs = cls;

	if (vs->piece.p != NULL)
		mem_wipe(vs->piece.p, vs->piece.len);
	wbuf_fini(&vs->piece);
	wado_list_fini(&vs->l);
	deid_view_free(vs->dv);
	free(vs);
}

/* The next piece: a de-identified part, or the close delimiter. */
static enum err next_piece(struct vstream *vs)
{
	char why[256];

	wbuf_reset(&vs->piece);
	vs->ppos = 0;
	while (vs->i < vs->l.n) {
		const struct wado_item *it = &vs->l.it[vs->i++];
		struct wbuf body;
		enum err rc;
		wbuf_init(&body, WADO_DEID_MAX);
		why[0] = 0;
		rc = deid_one(vs->v, &vs->o, it->sop, &body, why, sizeof why, NULL);
		if (rc == ERR_OK) {
			mp_write_part_head(&vs->piece, vs->boundary, "application/dicom", vs->first);
			wbuf_put(&vs->piece, body.p, body.len);
			vs->first = false;
			vs->sent++;
		} else if (rc != ERR_DENIED && rc != ERR_LIMIT) {
			log_error("de-identified retrieval of an instance of study %s by %s: %s", vs->l.study, vs->who.user,
			          why[0] ? why : err_str(rc));
			(void)wado_audit_fail(&vs->who, rc, vs->l.patient, vs->l.study, NULL, it->sop);
			if (body.p)
				mem_wipe(body.p, body.len);
			wbuf_fini(&body);
			return rc;
		} else {
			vs->refused++;
			(void)wado_audit(&vs->who, AUDIT_FAILURE, why[0] ? why : "refused by the profile", vs->l.patient,
			                 vs->l.study, NULL, it->sop, 0);
		}
		if (body.p)
			mem_wipe(body.p, body.len);
		wbuf_fini(&body);
		if (vs->piece.len > 0)
			return wbuf_err(&vs->piece);
	}
	if (!vs->closed) {
		mp_write_close(&vs->piece, vs->boundary);
		vs->closed = true;
	}
	return wbuf_err(&vs->piece);
}

static ssize_t vstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct vstream *vs = cls;
	size_t n;

	(void)pos;
	if (vs->ppos == vs->piece.len) {
		if (vs->closed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (next_piece(vs) != ERR_OK)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (vs->piece.len == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = vs->piece.len - vs->ppos;
	if (n > max)
		n = max;
	memcpy(buf, vs->piece.p + vs->ppos, n);
	vs->ppos += n;
	return (ssize_t)n;
}

static enum MHD_Result metadata(struct http_req *r, struct vstream *vs, const char *json)
{
	struct wbuf w;
	struct sink k;
	size_t i;
	enum MHD_Result q;
	enum err rc = ERR_OK;

	wbuf_init(&w, (size_t)64 << 20);
	wbuf_putc(&w, '[');
	for (i = 0; rc == ERR_OK && i < vs->l.n; i++) {
		struct dcm_file *f = NULL;
		char why[256] = "";
		rc = deid_one(vs->v, &vs->o, vs->l.it[i].sop, NULL, why, sizeof why, &f);
		if (rc == ERR_DENIED || rc == ERR_LIMIT) {
			(void)wado_audit(&vs->who, AUDIT_FAILURE, why, vs->l.patient, vs->l.study, NULL, vs->l.it[i].sop, 0);
			rc = ERR_OK;
			continue;
		}
		if (rc != ERR_OK) {
			log_error("de-identified metadata of %s by %s: %s", vs->l.it[i].sop, vs->who.user,
			          why[0] ? why : err_str(rc));
			(void)wado_audit_fail(&vs->who, rc, vs->l.patient, vs->l.study, NULL, vs->l.it[i].sop);
			break;
		}
		/* no bulk data in a view's metadata */
		dcm_ds_remove(&f->ds, 0x7FE00010);
		dcm_ds_remove(&f->ds, 0x7FE00008);
		dcm_ds_remove(&f->ds, 0x7FE00009);
		if (w.len > 1)
			wbuf_putc(&w, ',');
		sink_wbuf(&k, &w);
		rc = dcm_json_write(f, &f->ds, NULL, &k);
		dcm_file_free(f);
	}
	wbuf_putc(&w, ']');
	if (rc == ERR_OK)
		rc = wbuf_err(&w);
	if (rc != ERR_OK) {
		log_error("de-identified metadata of study %s by %s: %s", vs->l.study, vs->who.user, err_str(rc));
		q = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                 rc == ERR_AUTH ? "the stored object failed its integrity check" : "internal error", NULL);
	} else {
		q = http_send(r, MHD_HTTP_OK, json, w.p, w.len, 0, NULL);
	}
	if (w.p != NULL)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	vstream_free(vs);
	return q;
}

enum MHD_Result wado_deid(struct http_req *r, const char *study, const char *series, const char *sop, bool meta)
{
	struct vstream *vs;
	char why[256] = "", ctype[160];
	const char *json = wado_json_media(r);
	uint8_t rnd[16];
	enum err rc;

	if (meta && json == NULL)
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "only application/dicom+json (or application/json) is offered", NULL);
	vs = calloc(1, sizeof *vs);
	if (vs == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	vs->v = r->srv->vault;
	vs->first = true;
	wbuf_init(&vs->piece, WADO_DEID_MAX + 4096);
	wado_who_init(r, &vs->who);
	rc = deid_view_open(vs->v, NULL, NULL, &vs->dv, why, sizeof why);
	if (rc != ERR_OK) {
		log_error("de-identified retrieval by %s: %s", r->sess.user, why);
		vstream_free(vs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the de-identification settings are unusable", NULL);
	}
	vs->o = *deid_view_opts(vs->dv);
	vs->o.escrow = NULL;   /* a view, not a release */
	rc = wado_list_make(r, study, series, sop, &vs->l);
	if (rc != ERR_OK) {
		vstream_free(vs);
		return http_problem(r, rc == ERR_NOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    rc == ERR_NOTFOUND ? "no such resource" : "internal error", NULL);
	}
	if (wado_audit(&vs->who, AUDIT_SUCCESS, "de-identified view", vs->l.patient, vs->l.study, series, sop,
	               vs->l.n) != ERR_OK) {
		vstream_free(vs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	if (meta) {
		wado_note_sent(r, vs->l.patient, vs->l.study, series, sop, vs->l.n);
		return metadata(r, vs, json);
	}
	if (rand_bytes(rnd, sizeof rnd) != ERR_OK) {
		vstream_free(vs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	mp_boundary_make(rnd, vs->boundary);
	snprintf(ctype, sizeof ctype, "multipart/related; type=\"application/dicom\"; boundary=%s", vs->boundary);
	return http_send_callback(r, MHD_HTTP_OK, ctype, MHD_SIZE_UNKNOWN, vstream_read, vs, vstream_free);
}
