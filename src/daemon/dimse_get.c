/* dimse_get.c: the C-GET and C-MOVE SCPs of the DICOM listener (PS3.4
 * C.4.3, C.4.2), Patient Root and Study Root information models. The
 * identifier names patients, studies, series or instances by their unique
 * keys (UID lists allowed); it is resolved with the query engine at the
 * instance level, the peer's collection as the access filter. Each
 * instance is sent as a C-STORE-RQ sub-operation: for C-GET on the same
 * association, over a presentation context the requestor proposed for its
 * SOP class with the SCP role (SCP/SCU role selection); for C-MOVE on a
 * DICOM-TLS association we request to the Move Destination (a [peer] with
 * host and port, its certificate checked as for an incoming one). The
 * stored object's data set goes as stored (the file minus its preamble and
 * File Meta Information), read through retrieve_read (authenticated,
 * fixity checked at its end), or, when no context has its transfer syntax,
 * written in Explicit or Implicit VR Little Endian: re-encoded if it is
 * native (dcm_file_write), decompressed if it is JPEG (Baseline,
 * Extended, Lossless), RLE, JPEG 2000 or JPEG-LS (transcode.h; pixel data
 * is never compressed). After each sub-operation a pending response
 * with the counts; then the final status (0000H, B000H, A702H, FE00H on
 * C-CANCEL, with the Failed SOP Instance UID List). One audit record
 * ("retrieve") per C-GET or C-MOVE, written before the first image
 * leaves ("N to send"), and a second at the end only when less than that
 * went (failures, cancel, the association gone). Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/index.h"
#include "dicomvault/io.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/rd.h"
#include "dicomvault/store.h"
#include "dicomvault/transcode.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "dimse_int.h"

#define TAG_QR_LEVEL    0x00080052u
#define TAG_PATIENT_ID  0x00100020u
#define TAG_STUDY_UID   0x0020000Du
#define TAG_SERIES_UID  0x0020000Eu
#define TAG_SOP_UID     0x00080018u
#define TAG_FAILED_LIST 0x00080058u
#define TS_IMPLICIT     "1.2.840.10008.1.2"
#define TS_EXPLICIT     "1.2.840.10008.1.2.1"
#define READ_CHUNK      (64u * 1024)
#define FAILED_LIST_MAX DIMSE_MAX_FAILED_LIST

bool dimse_get_model(const char *sop_class)
{
	return strcmp(sop_class, DIMSE_GET_PATIENT_ROOT) == 0 || strcmp(sop_class, DIMSE_GET_STUDY_ROOT) == 0;
}

bool dimse_move_model(const char *sop_class)
{
	return strcmp(sop_class, DIMSE_MOVE_PATIENT_ROOT) == 0 || strcmp(sop_class, DIMSE_MOVE_STUDY_ROOT) == 0;
}

struct get_run {
	struct dimse_assoc *a;
	uint8_t pcid;
	char (*uids)[IDX_UID_MAX + 1];   /* the instances to send */
	size_t n, cap;
	bool too_many;
	bool cancelled, release, bad_peer;
	uint16_t sub_msg_id;             /* the sub-operation awaiting its C-STORE-RSP */
	bool sub_done;
	uint16_t sub_status;
	unsigned completed, failed, warning;
	struct wbuf failed_list;         /* backslash-separated */
	uint8_t *buf;                    /* READ_CHUNK */
};

/* ---- resolving the identifier ---- */

static bool allow_coll(void *ctx, const char *collection, const char *study_uid, const uint8_t patient[32])
{
	struct get_run *gr = ctx;

	return collection != NULL && strcmp(collection, gr->a->peer->collection) == 0 &&
	       dimse_user_may(gr->a, ACCESS_ACT_RETRIEVE_ORIGINAL, collection, study_uid, patient);
}

static enum err on_hit(void *ctx, struct qry_hit *h)
{
	struct get_run *gr = ctx;

	if (h->sop_uid == NULL || h->sop_uid[0] == 0 || strlen(h->sop_uid) > IDX_UID_MAX)
		return ERR_OK;
	if (gr->n == DIMSE_MAX_GET_INSTANCES) {
		gr->too_many = true;
		return ERR_LIMIT;
	}
	if (gr->n == gr->cap) {
		size_t cap = gr->cap ? gr->cap * 2 : 64;
		void *p = realloc(gr->uids, cap * sizeof *gr->uids);
		if (p == NULL)
			return ERR_NOMEM;
		gr->uids = p;
		gr->cap = cap;
	}
	memcpy(gr->uids[gr->n++], h->sop_uid, strlen(h->sop_uid) + 1);
	return ERR_OK;
}

static const char *const level_names[] = { "PATIENT", "STUDY", "SERIES", "IMAGE" };
static const uint32_t unique_keys[] = { TAG_PATIENT_ID, TAG_STUDY_UID, TAG_SERIES_UID, TAG_SOP_UID };

/* What is wrong with v (n bytes), the value of unique key tag, if
 * anything (NULL: nothing): PS3.4 C.4.2.2.1 and C.4.3.2 want one value or
 * a list of UIDs, so no empty value in the list and, of a UID key, only
 * UIDs. The query engine drops empty values: "\\" (two of them) would be
 * universal matching, the whole collection retrieved. */
static const char *unique_values_bad(uint32_t tag, const char *v, size_t n)
{
	size_t start, end, i;
	const char *p;

	for (start = 0; start <= n; start = end + 1) {
		end = start;
		while (end < n && v[end] != '\\')
			end++;
		p = v + start;
		i = end - start;
		while (i > 0 && (p[i - 1] == ' ' || p[i - 1] == 0))
			i--;
		while (i > 0 && *p == ' ') {
			p++;
			i--;
		}
		if (i == 0)
			return "Unique key of the level missing or empty";
		if (tag != TAG_PATIENT_ID && !vr_uid_ok(p, i))
			return "Unique key of the level not a UID or a list of UIDs";
	}
	return NULL;
}

/* The query of the identifier: the unique keys of its level and of the
 * levels above (when given) and nothing else; the level's own key must
 * have a value, or a list of them, none empty (no wildcard; of a UID key,
 * UIDs). A900H otherwise. */
static uint16_t resolve_query(const struct dcm_ds *id, bool patient_root, enum qry_level *level,
                              struct dcm_file *q, const char **comment)
{
	char s[17];
	unsigned l, i;
	const char *v;
	size_t n;

	if (dcm_ds_get_cstr(id, TAG_QR_LEVEL, s, sizeof s) != ERR_OK) {
		*comment = "QueryRetrieveLevel missing";
		return DIMSE_ERR_DATASET;
	}
	for (l = patient_root ? 0 : 1; l < 4; l++)
		if (strcmp(s, level_names[l]) == 0)
			break;
	if (l == 4) {
		*comment = "QueryRetrieveLevel invalid for the model";
		return DIMSE_ERR_DATASET;
	}
	v = dcm_ds_str(id, unique_keys[l], &n);
	if (v == NULL || n == 0 || memchr(v, '*', n) != NULL || memchr(v, '?', n) != NULL) {
		*comment = "Unique key of the level missing or empty";
		return DIMSE_ERR_DATASET;
	}
	*comment = unique_values_bad(unique_keys[l], v, n);
	if (*comment != NULL)
		return DIMSE_ERR_DATASET;
	for (i = 0; i <= l; i++) {
		const struct dcm_elem *e = dcm_ds_find(id, unique_keys[i]);
		v = dcm_ds_str(id, unique_keys[i], &n);
		if (e == NULL || v == NULL || n == 0)
			continue;
		if (memchr(v, '*', n) != NULL || memchr(v, '?', n) != NULL) {
			*comment = "Wildcard in a unique key";
			return DIMSE_ERR_DATASET;
		}
		if (dcm_ds_set(&q->ds, unique_keys[i], e->vr, v, n) != ERR_OK) {
			*comment = "Out of resources";
			return DIMSE_REFUSED_OOR;
		}
	}
	*level = (enum qry_level)l;
	return DIMSE_SUCCESS;
}

/* ---- one sub-operation ---- */

/* What the peer sends meanwhile: the C-STORE-RSP awaited, a C-CANCEL-RQ
 * of this C-GET, an A-RELEASE-RQ (answered after the final response);
 * anything else breaks one-operation-at-a-time: abort. */
static void on_event(struct dimse_assoc *a, const struct ul_event *ev, void *ctx)
{
	struct get_run *gr = ctx;
	struct dimse_cmd c;

	switch (ev->kind) {
	case UL_EV_COMMAND:
		if (dimse_cmd_parse(ev->p, ev->n, &c) == ERR_OK) {
			if (c.field == DIMSE_C_CANCEL_RQ) {
				if (a == gr->a && (c.has & DIMSE_F_MSG_ID_RSP) && c.msg_id_rsp == a->rq.msg_id)
					gr->cancelled = true;
				return;
			}
			if (c.field == DIMSE_C_STORE_RSP && !gr->sub_done && dimse_cmd_check(&c, NULL) == ERR_OK &&
			    c.msg_id_rsp == gr->sub_msg_id && !dimse_has_data_set(&c)) {
				gr->sub_done = true;
				gr->sub_status = c.status;
				return;
			}
		}
		gr->bad_peer = true;
		break;
	case UL_EV_RELEASE_RQ:
		gr->release = true;
		return;
	case UL_EV_ABORT:
	case UL_EV_CLOSED:
		return;
	default:
		gr->bad_peer = true;
		break;
	}
	if (gr->bad_peer && a->u.state != UL_STA13 && a->u.state != UL_STA1) {
		log_warn("association of %s (%s): an unexpected message during a retrieval; aborting", a->calling,
		         a->addr);
		ul_abort(&a->u);
	}
}

/* An accepted context for sop_class in transfer syntax ts on which the
 * requestor took the SCP role; 0 if none. *out_ts: the context's transfer
 * syntax. */
static uint8_t store_context(const struct dimse_assoc *a, bool need_scp_role, const char *sop_class, const char *ts,
                             const char **out_ts)
{
	const struct pdu_assoc *ac = a->u.ac;
	const char *abs = NULL, *t = NULL;
	bool scp = false;
	unsigned i;

	for (i = 0; i < ac->nroles && !scp; i++)
		scp = strcmp(ac->role[i].uid, sop_class) == 0 && ac->role[i].scp == 1;
	if (need_scp_role && !scp)
		return 0;
	for (i = 0; i < ac->npc; i++)
		if (ul_context(&a->u, ac->pc[i].id, &abs, &t) && strcmp(abs, sop_class) == 0 && strcmp(t, ts) == 0) {
			*out_ts = t;
			return ac->pc[i].id;
		}
	return 0;
}

/* Data set bytes as the sub-operation's P-DATA (a sink for dcm_transcode_write). */
struct pdata_sink {
	struct dimse_assoc *a;
	uint8_t pcid;
};

static enum err pdata_write(void *ctx, const void *p, size_t n)
{
	struct pdata_sink *ps = ctx;
	enum err rc = ul_send_data(&ps->a->u, ps->pcid, p, n, false);

	if (rc == ERR_OK)
		rc = dimse_assoc_flush(ps->a);
	return rc;
}

static enum err meta_scan(const uint8_t *p, size_t n, size_t *need, size_t *off, char ts[PDU_UID_MAX + 1])
{
	struct rd r, g;
	uint32_t glen;

	ts[0] = 0;
	*need = 144;
	if (n < 144)
		return ERR_AGAIN;
	if (memcmp(p + 128, "DICM", 4) != 0 || load_u16le(p + 132) != 0x0002 || load_u16le(p + 134) != 0x0000 ||
	    memcmp(p + 136, "UL", 2) != 0 || load_u16le(p + 138) != 4)
		return ERR_PARSE;
	glen = load_u32le(p + 140);
	if (glen > DIMSE_MAX_META)
		return ERR_LIMIT;
	*need = 144 + (size_t)glen;
	if (n < *need)
		return ERR_AGAIN;
	rd_init(&r, p + 144, glen);
	while (rd_remaining(&r) > 0) {
		uint16_t grp, el, l16;
		uint32_t len;
		uint8_t vr[2];
		if (rd_get_u16le(&r, &grp) != ERR_OK || rd_get_u16le(&r, &el) != ERR_OK || rd_get_bytes(&r, vr, 2) != ERR_OK)
			return ERR_PARSE;
		if (grp != 0x0002)
			return ERR_PARSE;
		if ((vr[0] == 'O' && (vr[1] == 'B' || vr[1] == 'W' || vr[1] == 'F')) || (vr[0] == 'S' && vr[1] == 'Q') ||
		    (vr[0] == 'U' && (vr[1] == 'T' || vr[1] == 'N' || vr[1] == 'C' || vr[1] == 'R'))) {
			if (rd_skip(&r, 2) != ERR_OK || rd_get_u32le(&r, &len) != ERR_OK)
				return ERR_PARSE;
		} else {
			if (rd_get_u16le(&r, &l16) != ERR_OK)
				return ERR_PARSE;
			len = l16;
		}
		if (rd_child(&r, len, &g) != ERR_OK)
			return ERR_PARSE;
		if (el == 0x0010 && ts[0] == 0) {   /* the first, as the Part 10 reader (and the store) takes it */
			size_t k = len;
			const uint8_t *v = rd_cur(&g);
			while (k > 0 && (v[k - 1] == 0 || v[k - 1] == ' '))
				k--;
			if (k == 0 || k > PDU_UID_MAX || !vr_uid_ok((const char *)v, k))
				return ERR_PARSE;
			memcpy(ts, v, k);
			ts[k] = 0;
		}
	}
	if (ts[0] == 0)
		return ERR_PARSE;
	*off = *need;
	return ERR_OK;
}

enum err dimse_meta_scan(const uint8_t *p, size_t n, size_t *need, size_t *off, char ts[PDU_UID_MAX + 1])
{
	enum err rc = meta_scan(p, n, need, off, ts);

	if (rc != ERR_OK)
		ts[0] = 0;   /* nothing half-read is left */
	return rc;
}

/* Reads the stored object's preamble and File Meta Information into head:
 * *off is where the data set begins, ts its transfer syntax. */
static enum err read_head(struct retrieval *rt, struct wbuf *head, uint8_t *buf, size_t *off, char ts[PDU_UID_MAX + 1])
{
	size_t need, got;
	enum err rc;

	for (;;) {
		rc = dimse_meta_scan(head->p, head->len, &need, off, ts);
		if (rc != ERR_AGAIN)
			return rc;
		rc = retrieve_read(rt, buf, READ_CHUNK, &got);
		if (rc != ERR_OK)
			return rc;
		if (got == 0)
			return ERR_PARSE;
		wbuf_put(head, buf, got);
		if (wbuf_err(head) != ERR_OK)
			return wbuf_err(head);
	}
}

static void sub_failed(struct get_run *gr, const char *sop)
{
	size_t n = strlen(sop);

	gr->failed++;
	if (gr->failed_list.len + n + 1 > FAILED_LIST_MAX)
		return;
	if (gr->failed_list.len > 0)
		wbuf_putc(&gr->failed_list, '\\');
	wbuf_put(&gr->failed_list, sop, n);
}

/* A stored object that failed its check while read for a sub-operation:
 * an integrity-failure record of its own, naming it as WADO-RS's do (its
 * patient key, study, series and SOP instance, read from the index: the
 * patient's accounting lists it), the C-GET's or C-MOVE's record counting
 * it among the failed. A row not found leaves its UIDs out. */
static void integrity_audit(struct get_run *gr, const struct idx_instance *in, enum err rc)
{
	struct vault *v = gr->a->o->vault;
	struct audit_objects obj;
	struct idx_series se;
	struct idx_study st;
	struct idx_patient pa;
	enum err lrc;

	if (rc != ERR_AUTH)
		return;
	memset(&obj, 0, sizeof obj);
	obj.sop_uid = in->uid;
	pthread_mutex_lock(v->ix_lock);
	lrc = v->ix->ops->series_by_id(v->ix, in->series_id, &se);
	if (lrc == ERR_OK) {
		obj.series_uid = se.uid;
		lrc = v->ix->ops->study_by_id(v->ix, se.study_id, &st);
	}
	if (lrc == ERR_OK) {
		obj.study_uid = st.uid;
		lrc = v->ix->ops->patient_by_id(v->ix, st.patient_id, &pa);
	}
	if (lrc == ERR_OK)
		obj.patient = pa.key_hmac;
	pthread_mutex_unlock(v->ix_lock);
	(void)dimse_assoc_audit(gr->a, AUDIT_INTEGRITY_FAILURE, AUDIT_FAILURE, AUDIT_REASON_INTEGRITY, &obj);
}

static uint16_t next_msg_id(struct dimse_assoc *a)
{
	if (++a->next_msg_id == 0)
		a->next_msg_id = 1;
	return a->next_msg_id;
}

/* A C-STORE-RSP status of the warning class (PS3.4 B.2.3, PS3.7 C.4):
 * coercion of data elements (B000), elements discarded (B007), data set
 * does not match SOP class (B006), and the general warning 0001 and the
 * attribute warnings 0107 and 0116 (PS3.7 C.4): a sub-operation that
 * stored, counted as a warning, not a failure. */
static bool store_warning(uint16_t st)
{
	return (st & 0xF000) == 0xB000 || st == 0x0001 || st == 0x0107 || st == 0x0116;
}

/* Sends one instance. ERR_OK: done (completed, failed or warning, as
 * counted); an error: the association cannot go on (gone, or to abort:
 * ERR_AUTH when the stored object failed its check after part of it was
 * sent). */
static enum err subop(struct get_run *gr, struct dimse_assoc *o, const char *sop)
{
	struct dimse_assoc *a = gr->a;
	struct vault *v = a->o->vault;
	struct retrieval *rt = NULL;
	struct idx_instance in;
	struct dimse_cmd rq;
	struct wbuf head;
	struct dcm_file *f = NULL;
	struct src rs;
	const char *ctx_ts = NULL;
	struct dcm_transcode *z = NULL;
	bool native = false;   /* re-encoded by the writer (else decompressed), when not sent as stored */
	char ts[PDU_UID_MAX + 1], why[256] = "";
	size_t off = 0, got;
	uint8_t pcid;
	enum err rc;

	wbuf_init(&head, DIMSE_MAX_META + 256 + READ_CHUNK);
	pthread_mutex_lock(v->ix_lock);
	rc = v->ix->ops->instance_get(v->ix, sop, &in);
	pthread_mutex_unlock(v->ix_lock);
	if (rc != ERR_OK) {
		sub_failed(gr, sop);   /* gone since the identifier was resolved */
		rc = ERR_OK;
		goto out;
	}
	rc = retrieve_open(v, sop, &rt, why, sizeof why);
	if (rc == ERR_OK)
		rc = read_head(rt, &head, gr->buf, &off, ts);
	if (rc != ERR_OK) {
		log_error("C-GET of %s: instance %s cannot be read: %s", a->calling, sop, why[0] ? why : err_str(rc));
		integrity_audit(gr, &in, rc);
		sub_failed(gr, sop);
		rc = ERR_OK;
		goto out;
	}
	pcid = store_context(o, o == a, in.sop_class, ts, &ctx_ts);
	if (pcid == 0) {
		/* no context in the stored transfer syntax: a native one is
		 * re-encoded, JPEG, RLE, JPEG 2000 and JPEG-LS are decompressed, for an
		 * Explicit (preferred) or Implicit VR Little Endian context
		 * (never compressed) */
		const struct dcm_ts *d = dict_ts(ts, strlen(ts));
		native = d != NULL && !d->encapsulated;
		if (dcm_transcode_takes(ts)) {
			pcid = store_context(o, o == a, in.sop_class, TS_EXPLICIT, &ctx_ts);
			if (pcid == 0)
				pcid = store_context(o, o == a, in.sop_class, TS_IMPLICIT, &ctx_ts);
		}
		if (pcid == 0) {
			log_info("C-GET of %s: no presentation context with the SCP role for %s in %s", a->calling,
			         in.sop_class, ts);
			sub_failed(gr, sop);
			rc = ERR_OK;
			goto out;
		}
		/* parsed from a random-access view: every chunk read is
		 * authenticated (the whole-object fixity is scrub's) */
		retrieve_close(rt);
		rt = NULL;
		rc = retrieve_open(v, sop, &rt, why, sizeof why);
		if (rc == ERR_OK)
			rc = retrieve_parse(rt, DCM_DEFAULT_BULK, &rs, &f, why, sizeof why);
		if (rc != ERR_OK) {
			log_error("C-GET of %s: instance %s cannot be read: %s", a->calling, sop, why[0] ? why : err_str(rc));
			integrity_audit(gr, &in, rc);
			sub_failed(gr, sop);
			rc = ERR_OK;
			goto out;
		}
		/* what cannot be decompressed is known before the
		 * C-STORE-RQ: that sub-operation fails, the association goes
		 * on */
		if (!native && dcm_transcode_begin(f, dict_ts(ctx_ts, strlen(ctx_ts)), false, &z, why, sizeof why) != ERR_OK) {
			log_info("C-GET of %s: instance %s (%s) cannot be decompressed for the peer: %s", a->calling, sop, ts,
			         why);
			sub_failed(gr, sop);
			rc = ERR_OK;
			goto out;
		}
	}
	dimse_cmd_rq(&rq, DIMSE_C_STORE_RQ, next_msg_id(o), in.sop_class);
	memcpy(rq.sop_instance, sop, strlen(sop) + 1);
	rq.has |= DIMSE_F_SOP_INSTANCE;
	if (o != a) {   /* C-MOVE: who asked for it */
		memcpy(rq.move_orig_ae, a->calling, sizeof rq.move_orig_ae);
		rq.move_orig_id = a->rq.msg_id;
		rq.has |= DIMSE_F_MOVE_ORIG_AE | DIMSE_F_MOVE_ORIG_ID;
	}
	rc = dimse_assoc_send_cmd(o, pcid, &rq);
	if (rc == ERR_PARSE) {
		/* the request could not be built (a stored value the command
		 * set cannot carry): nothing was sent, so this sub-operation
		 * fails and the association goes on (it was taken for the
		 * peer gone: no final C-GET response, every later C-MOVE
		 * sub-operation failed) */
		log_warn("C-%s of %s: instance %s: its C-STORE-RQ cannot be built", o == a ? "GET" : "MOVE", a->calling,
		         sop);
		sub_failed(gr, sop);
		rc = ERR_OK;
		goto out;
	}
	if (rc != ERR_OK)
		goto out;
	gr->sub_msg_id = rq.msg_id;
	gr->sub_done = false;
	if (f != NULL) {
		/* a native data set re-encoded by the writer (bulk values
		 * streamed from the object), an encapsulated one decompressed */
		struct pdata_sink ps = { o, pcid };
		struct sink k = { pdata_write, &ps };
		struct dcm_write_opts wo = { .ts = dict_ts(ctx_ts, strlen(ctx_ts)), .no_preamble = true };
		rc = z != NULL ? dcm_transcode_write(z, &k, why, sizeof why) : dcm_file_write(f, &wo, &k);
		if (rc == ERR_OK)
			rc = ul_send_data(&o->u, pcid, NULL, 0, true);
		if (rc == ERR_OK)
			rc = dimse_assoc_flush(o);
		if (rc != ERR_OK) {
			/* part of it may be sent: the association is aborted */
			log_error("C-GET of %s: instance %s cannot be %s: %s", a->calling, sop,
			          native ? "re-encoded" : "decompressed", why[0] ? why : err_str(rc));
			integrity_audit(gr, &in, rc);
			rc = ERR_AUTH;
			goto out;
		}
	} else {
		rc = ul_send_data(&o->u, pcid, head.p + off, head.len - off, false);
		if (rc == ERR_OK)
			rc = dimse_assoc_flush(o);
		while (rc == ERR_OK) {
			rc = retrieve_read(rt, gr->buf, READ_CHUNK, &got);
			if (rc != ERR_OK) {
				/* part of it is sent: the association is aborted */
				log_error("C-GET of %s: instance %s failed its integrity check: %s", a->calling, sop,
				          err_str(rc));
				integrity_audit(gr, &in, rc);
				rc = ERR_AUTH;
				goto out;
			}
			rc = ul_send_data(&o->u, pcid, gr->buf, got, got == 0);
			if (rc == ERR_OK)
				rc = dimse_assoc_flush(o);
			if (got == 0)
				break;
		}
		if (rc != ERR_OK)
			goto out;
	}
	dcm_transcode_free(z);
	z = NULL;
	dcm_file_free(f);
	f = NULL;
	retrieve_close(rt);
	rt = NULL;
	while (!gr->sub_done) {
		rc = dimse_assoc_wait(o, on_event, gr);
		if (rc == ERR_AGAIN) {
			log_warn("C-GET of %s: no C-STORE-RSP within the idle timeout; aborting", a->calling);
			goto out;
		}
		if (rc != ERR_OK || gr->bad_peer) {
			rc = ERR_IO;
			goto out;
		}
	}
	if (gr->sub_status == DIMSE_SUCCESS)
		gr->completed++;
	else if (store_warning(gr->sub_status))
		gr->warning++;
	else
		sub_failed(gr, sop);
out:
	dcm_transcode_free(z);
	dcm_file_free(f);
	retrieve_close(rt);
	wbuf_fini(&head);
	return rc;
}

/* C-MOVE: the association with the destination, proposing a context for
 * each SOP class and stored transfer syntax of the instances (a native one
 * with explicit and implicit VR little endian too, for re-encoding; a JPEG
 * Baseline or RLE one with a second context of those two, for
 * decompressing when the destination does not take the first). */
static enum err move_connect(struct get_run *gr, const struct peer *dest, struct dimse_assoc **out, char *why,
                             size_t whylen)
{
	struct dimse_assoc *a = gr->a;
	struct vault *v = a->o->vault;
	struct pdu_assoc *rq = calloc(1, sizeof *rq);
	struct idx_instance in;
	size_t i;
	unsigned k;
	enum err rc = ERR_OK;

	if (rq == NULL)
		return ERR_NOMEM;
	pdu_assoc_init(rq, PDU_ASSOC_RQ);
	snprintf(rq->called, sizeof rq->called, "%s", dest->ae);
	snprintf(rq->calling, sizeof rq->calling, "%s", a->o->ae);
	snprintf(rq->app_context, sizeof rq->app_context, PDU_APP_CONTEXT);
	snprintf(rq->impl_uid, sizeof rq->impl_uid, "%s", DCM_IMPL_CLASS_UID);
	snprintf(rq->impl_version, sizeof rq->impl_version, "%s", DCM_IMPL_VERSION);
	for (i = 0; i < gr->n && rc == ERR_OK; i++) {
		const struct dcm_ts *d;
		bool seen = false, native;
		pthread_mutex_lock(v->ix_lock);
		rc = v->ix->ops->instance_get(v->ix, gr->uids[i], &in);
		pthread_mutex_unlock(v->ix_lock);
		if (rc != ERR_OK) {
			rc = ERR_OK;   /* gone: its sub-operation fails */
			continue;
		}
		for (k = 0; k < rq->npc && !seen; k++)
			seen = strcmp(rq->pc[k].abstract, in.sop_class) == 0 &&
			       strcmp(rq->ts[rq->pc[k].ts_first], in.ts_uid) == 0;
		if (seen)
			continue;
		if (rq->npc >= PDU_MAX_PCTX || rq->npc >= 127)
			break;   /* the others fail: no context */
		d = dict_ts(in.ts_uid, strlen(in.ts_uid));
		rc = pdu_assoc_add_pc(rq, (uint8_t)(2 * rq->npc + 1), 0, in.sop_class);
		if (rc == ERR_OK)
			rc = pdu_assoc_add_ts(rq, in.ts_uid);
		native = d != NULL && !d->encapsulated;
		if (rc == ERR_OK && d != NULL && d->encapsulated && dcm_decompress_takes(in.ts_uid) &&
		    rq->npc < PDU_MAX_PCTX && rq->npc < 127) {
			/* a context of its own for the uncompressed syntaxes, so
			 * that a destination that takes the stored one gets the
			 * stored bytes (each context is accepted with one syntax) */
			rc = pdu_assoc_add_pc(rq, (uint8_t)(2 * rq->npc + 1), 0, in.sop_class);
			native = true;
		}
		if (rc == ERR_OK && native && strcmp(in.ts_uid, TS_EXPLICIT) != 0)
			rc = pdu_assoc_add_ts(rq, TS_EXPLICIT);
		if (rc == ERR_OK && native && strcmp(in.ts_uid, TS_IMPLICIT) != 0)
			rc = pdu_assoc_add_ts(rq, TS_IMPLICIT);
	}
	if (rc == ERR_OK && rq->npc == 0)
		rc = ERR_NOTFOUND;
	if (rc == ERR_OK)
		rc = dimse_assoc_connect(a, dest, rq, out, why, whylen);
	pdu_assoc_fini(rq);
	free(rq);
	return rc;
}

/* ---- responses ---- */

static enum err respond(struct get_run *gr, uint16_t status, bool remaining, const char *comment)
{
	struct dimse_assoc *a = gr->a;
	const char *abstract = NULL, *ts = NULL;
	struct dcm_file *f = NULL;
	struct dimse_cmd rsp;
	struct wbuf w;
	struct sink k;
	size_t done = (size_t)gr->completed + gr->failed + gr->warning;
	bool list = gr->failed_list.len > 0 && status != DIMSE_PENDING;
	enum err rc;

	dimse_cmd_rsp(&rsp, &a->rq, status);
	if (comment != NULL) {
		snprintf(rsp.error_comment, sizeof rsp.error_comment, "%.64s", comment);
		rsp.has |= DIMSE_F_ERROR_COMMENT;
	}
	if (status == DIMSE_PENDING || status == DIMSE_CANCEL || status == DIMSE_SUCCESS ||
	    status == DIMSE_WARNING_SUBOPS || status == DIMSE_REFUSED_SUBOPS) {
		if (remaining) {
			rsp.remaining = (uint16_t)(gr->n - done > 0xFFFF ? 0xFFFF : gr->n - done);
			rsp.has |= DIMSE_F_REMAINING;
		}
		rsp.completed = (uint16_t)(gr->completed > 0xFFFF ? 0xFFFF : gr->completed);
		rsp.failed = (uint16_t)(gr->failed > 0xFFFF ? 0xFFFF : gr->failed);
		rsp.warning = (uint16_t)(gr->warning > 0xFFFF ? 0xFFFF : gr->warning);
		rsp.has |= DIMSE_F_COMPLETED | DIMSE_F_FAILED | DIMSE_F_WARNING;
	}
	if (!list)
		return dimse_assoc_send_cmd(a, gr->pcid, &rsp);
	/* the Failed SOP Instance UID List, in an identifier */
	if (!ul_context(&a->u, gr->pcid, &abstract, &ts))
		return ERR_INTERNAL;
	wbuf_init(&w, FAILED_LIST_MAX + 1024);
	sink_wbuf(&k, &w);
	wbuf_putc(&gr->failed_list, 0);
	rc = wbuf_err(&gr->failed_list);
	if (rc == ERR_OK)
		rc = dcm_file_new(&f);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&f->ds, TAG_FAILED_LIST, VR_UI, (const char *)gr->failed_list.p);
	if (rc == ERR_OK)
		rc = dcm_ds_write(f, &f->ds, strcmp(ts, TS_IMPLICIT) != 0, false, &k);
	if (rc == ERR_OK)
		rc = wbuf_err(&w);
	if (rc == ERR_OK) {
		rsp.data_set_type = DIMSE_HAS_DATA_SET;
		rc = dimse_assoc_send_cmd(a, gr->pcid, &rsp);
	}
	if (rc == ERR_OK)
		rc = ul_send_data(&a->u, gr->pcid, w.p, w.len, true);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(a);
	dcm_file_free(f);
	wbuf_fini(&w);
	return rc;
}

/* What a retrieve's record names of the instances it resolved (st): the
 * patient, or every patient; and, as WADO-RS's records do, the study,
 * series and instance when all are of one (whole: only when the
 * identifier was resolved to its end, not stopped at too many). */
static void retrieved_objects(const struct qry_stats *st, bool any, bool whole, struct audit_objects *obj)
{
	obj->patient = st->one_patient && any ? st->patient : NULL;
	obj->patient_list = st->one_patient ? NULL : st->patients;
	obj->npatient_list = st->one_patient ? 0 : st->npatients;
	obj->study_uid = st->one_study && any && whole ? st->study : NULL;
	obj->series_uid = st->one_series && any && whole ? st->series : NULL;
	obj->sop_uid = st->one_sop && any && whole ? st->sop : NULL;
}

enum err dimse_get_run(struct dimse_assoc *a, uint8_t pcid)
{
	struct dimse_find *fq = a->fq;
	const char *abstract = NULL, *ts = NULL, *comment = NULL, *level_name = "?";
	struct dcm_file *idf = NULL, *qf = NULL;
	struct qry_opts qo;
	struct qry *q = NULL;
	struct qry_stats st;
	struct audit_objects obj;
	struct get_run gr;
	enum qry_level level = QRY_STUDY;
	const uint32_t *ign;
	char why[256] = "", reason[220];
	uint16_t status = DIMSE_SUCCESS;
	bool move = a->rq.field == DIMSE_C_MOVE_RQ;
	bool gone = false, recorded = false, audit_refused = false, resolved = false, patient_root = strcmp(a->rq.sop_class, move ? DIMSE_MOVE_PATIENT_ROOT : DIMSE_GET_PATIENT_ROOT) == 0;
	const struct peer *dest = NULL;
	struct dimse_assoc *out = NULL;
	enum audit_outcome outcome = AUDIT_SUCCESS;
	enum err rc, arc = ERR_OK;
	size_t i;

	memset(&gr, 0, sizeof gr);
	memset(&st, 0, sizeof st);
	gr.a = a;
	gr.pcid = pcid;
	wbuf_init(&gr.failed_list, FAILED_LIST_MAX + 1);
	if (!ul_context(&a->u, pcid, &abstract, &ts) || strcmp(abstract, a->rq.sop_class) != 0 ||
	    !(move ? dimse_move_model(a->rq.sop_class) : dimse_get_model(a->rq.sop_class))) {
		status = DIMSE_SOP_NOT_SUPPORTED;   /* on this context */
		comment = "SOP class does not match the presentation context";
		goto done;
	}
	if (!(a->peer->rights & (move ? PEER_RIGHT_MOVE : PEER_RIGHT_GET))) {
		status = DIMSE_NOT_AUTHORIZED;
		comment = "No right to retrieve";
		goto done;
	}
	if (dimse_user_load(a) != ERR_OK) {
		status = DIMSE_NOT_AUTHORIZED;
		comment = "User identity no longer valid";
		goto done;
	}
	if (move) {
		dest = peers_find(a->o->peers, a->rq.move_dest);
		if (dest == NULL || dest->host[0] == 0 || dest->port == 0) {
			status = DIMSE_REFUSED_MOVE_DEST;
			comment = "Move destination unknown";
			goto done;
		}
		/* the destination receives only what it could retrieve itself:
		 * its collection must be the requester's (zero trust: a peer
		 * cannot push another collection's images to a third party) */
		if (strcmp(dest->collection, a->peer->collection) != 0) {
			status = DIMSE_REFUSED_MOVE_DEST;
			comment = "Move destination may not receive this collection";
			goto done;
		}
		if (dest->plain) {
			status = DIMSE_REFUSED_MOVE_DEST;
			comment = "Move destination is plain TCP only; C-MOVE sends over DICOM-TLS";
			goto done;
		}
	}
	if (fq->too_big) {
		status = DIMSE_ERR_UNABLE;
		comment = "Identifier too large";
		goto done;
	}
	if (!dimse_find_parse(fq, ts, &idf)) {
		status = DIMSE_ERR_DATASET;
		comment = "Identifier cannot be parsed";
		goto done;
	}
	if (dcm_file_new(&qf) != ERR_OK) {
		status = DIMSE_REFUSED_OOR;
		comment = "Out of resources";
		goto done;
	}
	status = resolve_query(&idf->ds, patient_root, &level, qf, &comment);
	if (status != DIMSE_SUCCESS)
		goto done;
	level_name = level_names[level];
	memset(&qo, 0, sizeof qo);
	qo.level = QRY_INSTANCE;
	qo.allow = allow_coll;
	qo.allow_ctx = &gr;
	rc = qry_new(&qo, &qf->ds, &q, why, sizeof why);
	if (rc == ERR_OK && qry_ignored(q, &ign) > 0)
		rc = ERR_INTERNAL;   /* every unique key is matched */
	if (rc != ERR_OK) {
		status = rc == ERR_PARSE || rc == ERR_LIMIT ? DIMSE_ERR_DATASET : DIMSE_ERR_UNABLE;
		comment = why[0] ? why : "Identifier cannot be processed";
		goto done;
	}
	rc = qry_run(a->o->vault, q, on_hit, &gr, &st);
	if (rc != ERR_OK) {
		status = gr.too_many ? DIMSE_REFUSED_MATCHES : DIMSE_ERR_UNABLE;
		comment = gr.too_many ? "Too many instances for one C-GET" : "Unable to process";
		if (!gr.too_many)
			log_error("C-GET from %s: %s", a->calling, err_str(rc));
		goto done;
	}
	resolved = true;
	gr.buf = malloc(READ_CHUNK);
	if (gr.buf == NULL) {
		status = DIMSE_REFUSED_OOR;
		comment = "Out of resources";
		goto done;
	}
	if (move && gr.n > 0) {
		rc = move_connect(&gr, dest, &out, why, sizeof why);
		if (rc != ERR_OK) {
			log_warn("C-MOVE of %s to %s: %s", a->calling, dest->ae, why[0] ? why : err_str(rc));
			for (i = 0; i < gr.n; i++)
				sub_failed(&gr, gr.uids[i]);
		}
	}
	/* the record before the first image leaves (docs/internals/audit.md,
	 * "Records before disclosure"): what is about to be sent; the one at
	 * the end is written only if less went. No record, no image. */
	if (gr.n > 0 && (!move || out != NULL)) {
		memset(&obj, 0, sizeof obj);
		obj.counted = true;
		obj.instances = gr.n;
		retrieved_objects(&st, true, true, &obj);
		snprintf(reason, sizeof reason, "DIMSE %s %s %s%s%s: %zu to send", move ? "C-MOVE" : "C-GET",
		         patient_root ? "patient root" : "study root", level_name, move ? " to " : "",
		         move ? a->rq.move_dest : "", gr.n);
		if (dimse_assoc_audit(a, AUDIT_RETRIEVE, AUDIT_SUCCESS, reason, &obj) == ERR_OK) {
			recorded = true;
		} else {
			for (i = 0; i < gr.n; i++)
				sub_failed(&gr, gr.uids[i]);
			audit_refused = true;
		}
	}
	for (i = 0; i < gr.n && (!move || out != NULL) && !audit_refused; i++) {
		if (dimse_assoc_poll(a, on_event, &gr) != ERR_OK) {
			gone = true;
			break;
		}
		if (gr.cancelled)
			break;
		arc = subop(&gr, move ? out : a, gr.uids[i]);
		if (arc != ERR_OK && move && !a->failed && (a->u.state == UL_STA6 || a->u.state == UL_STA8)) {
			/* the destination is gone: the rest fails */
			log_warn("C-MOVE of %s to %s: the association with the destination failed", a->calling, dest->ae);
			for (; i < gr.n; i++)
				sub_failed(&gr, gr.uids[i]);
			arc = ERR_OK;
			gr.bad_peer = false;
			break;
		}
		if (arc != ERR_OK) {
			gone = true;
			break;
		}
		if (respond(&gr, DIMSE_PENDING, true, NULL) != ERR_OK) {
			gone = true;
			break;
		}
	}
	if (gone)
		status = DIMSE_ERR_UNABLE;
	else if (gr.cancelled)
		status = DIMSE_CANCEL;
	else if (gr.failed + gr.warning == 0)
		status = DIMSE_SUCCESS;
	else if (gr.completed + gr.warning == 0)
		status = DIMSE_REFUSED_SUBOPS;
	else
		status = DIMSE_WARNING_SUBOPS;
	if (audit_refused)
		comment = "Audit record cannot be written";
done:
	memset(&obj, 0, sizeof obj);
	obj.counted = true;
	obj.instances = (uint64_t)gr.completed + gr.warning;
	retrieved_objects(&st, gr.n > 0, resolved, &obj);
	if (gone || (status != DIMSE_SUCCESS && status != DIMSE_CANCEL && status != DIMSE_WARNING_SUBOPS))
		outcome = status == DIMSE_NOT_AUTHORIZED ? AUDIT_DENIED : AUDIT_FAILURE;
	dimse_assoc_close(out);
	snprintf(reason, sizeof reason, "DIMSE %s %s %s%s%s: %u of %zu sent, %u failed, %u warning%s%s",
	         move ? "C-MOVE" : "C-GET", patient_root ? "patient root" : "study root", level_name,
	         move ? " to " : "", move ? a->rq.move_dest : "", gr.completed + gr.warning, gr.n, gr.failed,
	         gr.warning, status == DIMSE_CANCEL ? " (cancelled)" : gone ? " (association ended)" : "",
	         comment ? ": " : "");
	if (comment != NULL)
		snprintf(reason + strlen(reason), sizeof reason - strlen(reason), "%.80s", comment);
	/* a full success was recorded before it began */
	rc = recorded && status == DIMSE_SUCCESS ? ERR_OK : dimse_assoc_audit(a, AUDIT_RETRIEVE, outcome, reason, &obj);
	if (rc != ERR_OK && status == DIMSE_SUCCESS) {
		status = DIMSE_ERR_UNABLE;
		comment = "Audit record cannot be written";
	}
	qry_stats_fini(&st);
	qry_free(q);
	dcm_file_free(qf);
	dcm_file_free(idf);
	dimse_find_free(a);
	free(gr.uids);
	free(gr.buf);
	if (a->failed || (a->u.state != UL_STA6 && a->u.state != UL_STA8)) {
		wbuf_fini(&gr.failed_list);
		return ERR_OK;   /* closed or aborted meanwhile: the main loop sees it */
	}
	if (arc != ERR_OK) {
		/* a data set cut short, or no C-STORE-RSP in time: abort */
		wbuf_fini(&gr.failed_list);
		return arc == ERR_AGAIN ? ERR_IO : arc;
	}
	if (gone) {
		wbuf_fini(&gr.failed_list);
		return ERR_OK;   /* closed or aborted meanwhile: the main loop sees it */
	}
	rc = respond(&gr, status, status == DIMSE_CANCEL, comment);
	wbuf_fini(&gr.failed_list);
	if (rc == ERR_OK && gr.release && a->u.state == UL_STA8)
		rc = ul_release_rp(&a->u);
	return rc;
}
