/* wado.c: WADO-RS (PS3.18 10.4: study, series, instance, metadata,
 * frames) and WADO-URI (PS3.18 9) of the HTTPS listener. Retrieval is
 * streamed from the decryptor (core/retrieve.c): every chunk is
 * authenticated before its plaintext is sent, the fixity is checked at the
 * end, and a failure cuts the response short. Every retrieval is audited.
 * Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "http_int.h"

#define UID_MAX 64u

/* ---- WADO ---- */

/* A retrieval streamed as libmicrohttpd pulls it: the multipart head, the
 * instance's plaintext (each chunk authenticated before it is released, the
 * fixity checked at the end), the close delimiter. A failure mid-way ends
 * the response with an error (the connection is closed, the client sees a
 * short body), is logged and cannot be mistaken for a whole object. */
struct wado_stream {
	struct retrieval *rt;
	struct wbuf head, tail;
	size_t headpos, tailpos;
	char sop[UID_MAX + 1];
};

static ssize_t wado_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct wado_stream *ws = cls;
	size_t got = 0;
	enum err rc;

	(void)pos;
	if (ws->headpos < ws->head.len) {
		size_t n = ws->head.len - ws->headpos;
		if (n > max)
			n = max;
		memcpy(buf, ws->head.p + ws->headpos, n);
		ws->headpos += n;
		return (ssize_t)n;
	}
	rc = retrieve_read(ws->rt, buf, max, &got);
	if (rc != ERR_OK) {
		log_error("retrieve %s: %s: response aborted", ws->sop,
		          rc == ERR_AUTH ? "integrity check failed" : err_str(rc));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (got > 0)
		return (ssize_t)got;
	if (ws->tailpos < ws->tail.len) {
		size_t n = ws->tail.len - ws->tailpos;
		if (n > max)
			n = max;
		memcpy(buf, ws->tail.p + ws->tailpos, n);
		ws->tailpos += n;
		return (ssize_t)n;
	}
	return MHD_CONTENT_READER_END_OF_STREAM;
}

static void wado_free(void *cls)
{
	struct wado_stream *ws = cls;

	retrieve_close(ws->rt);
	wbuf_fini(&ws->head);
	wbuf_fini(&ws->tail);
	free(ws);
}

/* Sends an instance: multipart/related with one part (mp), or bare
 * application/dicom. The UIDs are checked (digits and dots) by the
 * caller; study and series must be those of the stored instance. The
 * index is used (under ix_lock) only to find and open it. */
static enum MHD_Result send_instance(struct http_req *r, const char *study, const char *series, const char *sop,
                                     bool mp)
{
	struct vault *v = r->srv->vault;
	struct idx_instance in;
	struct idx_series se;
	struct idx_study st;
	struct idx_patient pa;
	struct wado_stream *ws;
	char why[256] = "", boundary[MP_BOUNDARY_MAX + 1], ctype[160];
	uint8_t rnd[16];
	enum err rc;

	ws = calloc(1, sizeof *ws);
	if (ws == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	wbuf_init(&ws->head, 4096);
	wbuf_init(&ws->tail, 4096);
	snprintf(ws->sop, sizeof ws->sop, "%s", sop);
	memset(&pa, 0, sizeof pa);
	pthread_mutex_lock(r->srv->ix_lock);
	rc = dw_locate(v, sop, &in, &se, &st, &pa);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc == ERR_OK && (strcmp(st.uid, study) != 0 || strcmp(se.uid, series) != 0))
		rc = ERR_NOTFOUND;
	if (rc == ERR_OK)   /* takes v->ix_lock (the same lock) for its look-up only */
		rc = retrieve_open(v, sop, &ws->rt, why, sizeof why);
	if (rc == ERR_NOTFOUND) {
		wado_free(ws);
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such instance", NULL);
	}
	if (rc == ERR_OK && rand_bytes(rnd, sizeof rnd) != ERR_OK)
		rc = ERR_IO;
	if (rc != ERR_OK) {
		wado_free(ws);
		log_error("retrieve %s by %s: %s", sop, r->sess.user, why[0] ? why : err_str(rc));
		(void)dw_audit_obj(r, AUDIT_RETRIEVE, AUDIT_FAILURE, rc == ERR_AUTH ? "integrity check failed" : err_str(rc),
		                pa.key_hmac, study, series, sop);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    rc == ERR_AUTH ? "the stored object failed its integrity check" : "internal error", NULL);
	}
	if (mp) {
		mp_boundary_make(rnd, boundary);
		mp_write_part_head(&ws->head, boundary, "application/dicom", true);
		mp_write_close(&ws->tail, boundary);
		snprintf(ctype, sizeof ctype, "multipart/related; type=\"application/dicom\"; boundary=%s", boundary);
	} else {
		snprintf(ctype, sizeof ctype, "application/dicom");
	}
	if (wbuf_err(&ws->head) != ERR_OK || wbuf_err(&ws->tail) != ERR_OK) {
		wado_free(ws);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	if (dw_audit_obj(r, AUDIT_RETRIEVE, AUDIT_SUCCESS, NULL, pa.key_hmac, study, series, sop) != ERR_OK) {
		wado_free(ws);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	return http_send_callback(r, MHD_HTTP_OK, ctype, ws->head.len + retrieve_size(ws->rt) + ws->tail.len, wado_read,
	                          ws, wado_free);
}

/* Accept: absent, or one of its ranges is multipart/related (type
 * application/dicom or none), multipart/ *, or * / *. */
static bool accept_mp(struct http_req *r)
{
	const char *a = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	const char *p = a;

	if (a == NULL)
		return true;
	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct mp_ctype ct;
		if (mp_ctype_parse(p, n, &ct) == ERR_OK &&
		    (strcmp(ct.media, "*/*") == 0 || strcmp(ct.media, "multipart/*") == 0 ||
		     (strcmp(ct.media, "multipart/related") == 0 &&
		      (ct.type[0] == 0 || strcmp(ct.type, "application/dicom") == 0))))
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

enum MHD_Result wado_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n)
{
	char uid[3][UID_MAX + 1];
	size_t i;

	if (n != 6 || !dw_seg_is(seg[2], len[2], "series") || !dw_seg_is(seg[4], len[4], "instances"))
		return http_problem(r, MHD_HTTP_NOT_FOUND,
		                    "no such resource (study, series, metadata and frames retrieval are not implemented yet)",
		                    NULL);
	for (i = 0; i < 3; i++) {
		size_t k = 1 + 2 * i;
		if (!dw_uid_ok(seg[k], len[k]))
			return http_problem(r, MHD_HTTP_BAD_REQUEST, "a UID in the path is not 1 to 64 digits and dots",
			                    NULL);
		memcpy(uid[i], seg[k], len[k]);
		uid[i][len[k]] = 0;
	}
	if (!accept_mp(r))
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "only multipart/related; type=\"application/dicom\" is offered", NULL);
	return send_instance(r, uid[0], uid[1], uid[2], true);
}

enum MHD_Result dicomweb_wado_uri(struct http_req *r)
{
	static const char *const names[] = { "studyUID", "seriesUID", "objectUID" };
	const char *uid[3], *rt, *ct;
	size_t i;

	if (r->srv->vault == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	rt = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "requestType");
	if (rt == NULL || strcmp(rt, "WADO") != 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "requestType=WADO is required", NULL);
	for (i = 0; i < 3; i++) {
		uid[i] = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, names[i]);
		if (uid[i] == NULL || !dw_uid_ok(uid[i], strlen(uid[i])))
			return http_problem(r, MHD_HTTP_BAD_REQUEST,
			                    "studyUID, seriesUID and objectUID must be 1 to 64 digits and dots", NULL);
	}
	ct = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "contentType");
	if (ct == NULL || !mp_media_is(ct, strlen(ct), "application/dicom"))
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, "only contentType=application/dicom is offered", NULL);
	return send_instance(r, uid[0], uid[1], uid[2], false);
}

