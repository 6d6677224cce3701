/* store.c: ingest and retrieval of instances. Identifying attributes are
 * sealed under the patient's data key (so erasing the key erases them) and
 * indexed only as keyed hashes; the object is encrypted in chunks with its
 * identity (object key, SOP Instance UID) bound in; the blob is durable
 * before the index commits. Layer: core. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/blob.h"
#include "dicomvault/charset.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/spool.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "store_int.h"

#define COPY_CHUNK (256u * 1024)
#define SEAL_MAX_DEPTH 4u   /* sequence nesting kept in sealed attributes */
#define TAG_TRAILING_PADDING 0xFFFCFFFCu   /* Data Set Trailing Padding */

const char *store_conflict_str(enum store_conflict c)
{
	switch (c) {
	case STORE_CONFLICT_CONTENT:
		return "SOP Instance already stored with other content";
	case STORE_CONFLICT_PATIENT:
		return "Study belongs to another patient";
	case STORE_CONFLICT_STUDY:
		return "Series belongs to another study";
	case STORE_CONFLICT_NONE:
		break;
	}
	return NULL;
}

/* A UID value (vr_uid_ok). */
static enum err get_uid(const struct dcm_ds *ds, uint32_t tag, char out[65])
{
	size_t n = 0;
	const char *s = dcm_ds_str(ds, tag, &n);

	if (s == NULL || !vr_uid_ok(s, n))
		return ERR_PARSE;
	memcpy(out, s, n);
	out[n] = 0;
	return ERR_OK;
}

/* A short plain string (dates, modality...); "" if absent or unusable. */
static void get_plain(const struct dcm_ds *ds, uint32_t tag, char *out, size_t cap)
{
	size_t n = 0, i;
	const char *s = dcm_ds_str(ds, tag, &n);

	out[0] = 0;
	/* leading and trailing spaces are not significant in the VRs kept
	 * so (CS, DA, TM, IS: PS3.5 Table 6.2-1): the index holds the value
	 * the matching sees, else its filter would drop a row the record
	 * check matches (" MR" and Modality=MR) */
	while (s != NULL && n > 0 && s[0] == ' ') {
		s++;
		n--;
	}
	while (s != NULL && n > 0 && s[n - 1] == ' ')
		n--;
	if (s == NULL || n >= cap)
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return;
	memcpy(out, s, n);
	out[n] = 0;
}

/* A DA or TM value as the index keeps it (DICOM's YYYYMMDD, HHMMSS.F),
 * also from ACR-NEMA's YYYY.MM.DD and HH:MM:SS.F, which old archives hold
 * (PS3.5 Table 6.2-1, notes): else it would be too long for the index, or
 * its range matching would compare colons. Anything else as get_plain. */
static void get_datetime(const struct dcm_ds *ds, uint32_t tag, bool is_time, char *out, size_t cap)
{
	char raw[32];
	size_t i, o = 0, n;

	get_plain(ds, tag, raw, sizeof raw);
	n = strlen(raw);
	if ((!is_time && n == 10 && raw[4] == '.' && raw[7] == '.') || (is_time && n >= 5 && raw[2] == ':')) {
		for (i = 0; i < n; i++)
			if (raw[i] != (is_time ? ':' : '.') || (is_time && i != 2 && i != 5))
				raw[o++] = raw[i];
		raw[o] = 0;
		n = o;
	}
	out[0] = 0;
	if (n < cap)
		memcpy(out, raw, n + 1);
}

static int64_t get_int(const struct dcm_ds *ds, uint32_t tag)
{
	char b[16], *end;
	long long v;

	get_plain(ds, tag, b, sizeof b);
	if (b[0] == 0)
		return -1;
	v = strtoll(b, &end, 10);
	while (*end == ' ')
		end++;
	return *end == 0 ? (int64_t)v : -1;
}

static int64_t get_u16(const struct dcm_ds *ds, uint32_t tag)
{
	uint16_t v;

	return dcm_ds_get_u16(ds, tag, &v) == ERR_OK ? (int64_t)v : -1;
}

/* HMAC under the index key of a labelled value (store_int.h). */
enum err store_keyed(const struct vault *v, const char *label, const void *p, size_t n, uint8_t out[32])
{
	struct wbuf w;
	enum err rc;

	wbuf_init(&w, 1 << 16);
	aead_ad_put(&w, label, strlen(label));
	aead_ad_put(&w, p, n);
	rc = wbuf_err(&w);
	if (rc == ERR_OK)
		rc = kdf_hmac_sha256(v->index_key, w.p, w.len, out);
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	return rc;
}

enum err store_patient_key(const struct vault *v, const char *id, const char *issuer, uint8_t out[32])
{
	size_t n = id ? strlen(id) : 0, ni = issuer ? strlen(issuer) : 0;
	struct wbuf w;
	enum err rc;

	/* as patient_keys() below: values compared without their padding */
	while (n > 0 && id[n - 1] == ' ')
		n--;
	while (ni > 0 && issuer[ni - 1] == ' ')
		ni--;
	if (n == 0)
		return ERR_PARSE;
	wbuf_init(&w, 4096);
	aead_ad_put(&w, id, n);
	aead_ad_put(&w, issuer ? issuer : "", ni);
	rc = wbuf_err(&w);
	if (rc == ERR_OK)
		rc = store_keyed(v, "patient-id", w.p, w.len, out);
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	return rc;
}

enum err store_pn_keyed(const struct vault *v, const char *g, size_t n, uint8_t out[32])
{
	char up[STORE_PN_HASH_MAX];
	enum err rc;

	if (n > sizeof up)
		return ERR_LIMIT;
	n = qry_pn_fold(g, n, up);
	rc = store_keyed(v, STORE_KEY_PATIENT_PN, up, n, out);
	mem_wipe(up, n);
	return rc;
}

/* The keyed hash of a text value of ds (an ID, an accession number) as a
 * query sees it: in UTF-8, trailing spaces dropped. Printable ASCII is
 * hashed as it is (the same bytes; vaults before this hashed every value
 * so); anything else (an ISO 2022 escape, bytes of another character set)
 * is decoded first by the data set's Specific Character Set, so that
 * "ESC ( B" + "PID7" in ISO 2022 IR 87 hashes as "PID7" does, which a
 * query for it hashes (query.c). A value that does not decode is hashed
 * as it is. */
static enum err store_keyed_text(const struct vault *v, const char *label, const struct dcm_ds *ds, const char *val,
                                 size_t n, uint8_t out[32])
{
	struct dcm_charset cs;
	struct wbuf w;
	size_t i;
	enum err rc;

	for (i = 0; i < n && (uint8_t)val[i] >= 0x20 && (uint8_t)val[i] < 0x7f; i++)
		;
	if (i == n)
		return store_keyed(v, label, val, n, out);
	dcm_ds_charset(ds, &cs);
	wbuf_init(&w, 4 * n + 16);
	if (charset_to_utf8(&cs, false, (const uint8_t *)val, n, &w) == ERR_OK && wbuf_err(&w) == ERR_OK) {
		while (w.len > 0 && (w.p[w.len - 1] == ' ' || w.p[w.len - 1] == 0))
			w.len--;
		rc = store_keyed(v, label, w.p, w.len, out);
	} else {
		rc = store_keyed(v, label, val, n, out);
	}
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	return rc;
}

/* The name's group hashes for the patient row (p->pn_hmac): the name in
 * UTF-8, split as a query splits it. A name that does not convert has
 * none (no name query can match it); one that cannot be hashed whole (a
 * group too long, or several values, which a query matches one by one)
 * makes the patient a candidate for every name query. */
static enum err patient_pn(const struct vault *v, const struct dcm_ds *ds, struct idx_patient *p)
{
	struct dcm_charset cs;
	struct qry_pn pn;
	struct wbuf w;
	size_t n = 0;
	const char *name = dcm_ds_str(ds, 0x00100010, &n);
	unsigned i;
	enum err rc = ERR_OK;

	p->n_pn = 0;
	p->pn_any = false;
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == 0))
		n--;
	if (name == NULL || n == 0)
		return ERR_OK;
	dcm_ds_charset(ds, &cs);
	wbuf_init(&w, 4 * n + 16);
	if (charset_to_utf8(&cs, true, (const uint8_t *)name, n, &w) == ERR_OK && wbuf_err(&w) == ERR_OK) {
		qry_pn_split((const char *)w.p, w.len, &pn);
		for (i = 0; rc == ERR_OK && i < 3; i++) {
			if (pn.n[i] == 0)
				continue;
			rc = store_pn_keyed(v, pn.g[i], pn.n[i], p->pn_hmac[p->n_pn]);
			if (rc == ERR_OK)
				p->n_pn++;
		}
		if (rc == ERR_LIMIT || (w.len > 0 && memchr(w.p, '\\', w.len) != NULL)) {
			p->pn_any = true;
			rc = ERR_OK;
		}
	}
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	return rc;
}

/* The patient's identity for keying: Patient ID and issuer, or, when there
 * is no ID, name and birth date. */
static enum err patient_keys(const struct vault *v, const struct dcm_ds *ds, uint8_t key_hmac[32],
                             uint8_t name_hmac[32], uint8_t id_hmac[32], bool *has_id)
{
	size_t n1 = 0, n2 = 0, n3 = 0, i;
	const char *id = dcm_ds_str(ds, 0x00100020, &n1);
	const char *issuer = dcm_ds_str(ds, 0x00100021, &n2);
	const char *name = dcm_ds_str(ds, 0x00100010, &n3);
	char up[256];
	struct wbuf w;
	enum err rc;

	wbuf_init(&w, 4096);
	if (id != NULL && n1 > 0) {
		aead_ad_put(&w, id, n1);
		aead_ad_put(&w, issuer ? issuer : "", issuer ? n2 : 0);
		rc = wbuf_err(&w);
		if (rc == ERR_OK)
			rc = store_keyed(v, "patient-id", w.p, w.len, key_hmac);
		/* the ID alone, for queries that do not give the issuer */
		if (rc == ERR_OK)
			rc = store_keyed_text(v, STORE_KEY_PATIENT_ID, ds, id, n1, id_hmac);
		*has_id = true;
	} else {
		size_t nb = 0;
		const char *birth = dcm_ds_str(ds, 0x00100030, &nb);
		aead_ad_put(&w, name ? name : "", name ? n3 : 0);
		aead_ad_put(&w, birth ? birth : "", birth ? nb : 0);
		rc = wbuf_err(&w);
		if (rc == ERR_OK)
			rc = store_keyed(v, "patient-noid", w.p, w.len, key_hmac);
	}
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	if (rc != ERR_OK)
		return rc;
	/* names match case-insensitively (ASCII), padding ignored */
	if (name == NULL)
		n3 = 0;
	if (n3 > sizeof up)
		n3 = sizeof up;
	for (i = 0; i < n3; i++)
		up[i] = (name[i] >= 'a' && name[i] <= 'z') ? (char)(name[i] - 32) : name[i];
	rc = store_keyed(v, STORE_KEY_PATIENT_NAME, up, n3, name_hmac);
	mem_wipe(up, sizeof up);
	return rc;
}

/* Copies e into to; a sequence with its items (nested up to a depth).
 * Bulk values and encapsulated data are left out. */
static enum err copy_elem(struct dcm_ds *to, const struct dcm_elem *e, unsigned depth)
{
	struct dcm_elem *sq;
	uint32_t i, j;
	enum err rc;

	if (e->flags & (DCM_EF_BULK | DCM_EF_ENCAPS | DCM_EF_UNSEQ))
		return ERR_OK;
	if (e->seq == NULL)
		return dcm_ds_set(to, e->tag, e->vr, e->val, e->len);
	if (e->vr != VR_SQ || depth >= SEAL_MAX_DEPTH)
		return ERR_OK;
	rc = dcm_ds_set_seq(to, e->tag, &sq);
	for (i = 0; rc == ERR_OK && i < e->seq->n; i++) {
		const struct dcm_ds *from = e->seq->items[i];
		struct dcm_ds *item;
		rc = dcm_seq_add_item(to, sq, &item);
		for (j = 0; rc == ERR_OK && j < from->n; j++)
			rc = copy_elem(item, &from->e[j], depth + 1);
	}
	return rc;
}

/* The listed attributes of ds (those present), as an explicit VR LE data
 * set, sealed under key with ad; always (0: none), a tag put in empty when
 * ds has not got it. */
static enum err seal_attrs(const struct dcm_file *f, const uint32_t *tags, size_t ntags, uint32_t always,
                           const struct secret *key, const char *ad, uint8_t **out, size_t *outlen)
{
	struct dcm_file *t = NULL;
	struct wbuf w;
	struct sink k;
	size_t i;
	enum err rc;

	wbuf_init(&w, 1 << 20);
	rc = dcm_file_new(&t);
	for (i = 0; rc == ERR_OK && i < ntags; i++) {
		const struct dcm_elem *e = dcm_ds_find(&f->ds, tags[i]);
		if (e == NULL)
			continue;
		rc = copy_elem(&t->ds, e, 0);
	}
	if (rc == ERR_OK && always != 0 && dcm_ds_find(&t->ds, always) == NULL)
		rc = dcm_ds_set(&t->ds, always, dict_implicit_vr(always), (const uint8_t *)"", 0);
	sink_wbuf(&k, &w);
	if (rc == ERR_OK)
		rc = dcm_ds_write(t, &t->ds, true, false, &k);
	if (rc == ERR_OK)
		rc = aead_seal(key, ad, strlen(ad), w.p ? w.p : (const uint8_t *)"", w.len, NULL, out, outlen);
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	dcm_file_free(t);
	return rc;
}

static const uint32_t patient_tags[] = { 0x00080005, 0x00100010, 0x00100020, 0x00100021, 0x00100030, 0x00100040 };
/* the study's own copy of the patient attributes, with (0010,0020) always
 * (empty when the instance has none): what queries answer and match for
 * the study (a patient row is shared by every collection, and written by
 * the patient's first instance: answering from it told a user of one
 * collection the name another collection stored for that Patient ID).
 * Studies sealed before have no (0010,0020) in their set; queries then
 * read the patient row. */
static const uint32_t study_tags[] = { 0x00080005, 0x00080050, 0x00080090, 0x00081030, 0x00100010, 0x00100020,
                                       0x00100021, 0x00100030, 0x00100040, 0x00200010 };
/* series: description, body part, and for QIDO-RS the performed procedure
 * step start and the request attributes (a sequence) */
static const uint32_t series_tags[] = { 0x00080005, 0x0008103E, 0x00180015, 0x00400244, 0x00400245, 0x00400275 };

struct ctx {
	struct vault *v;
	struct dcm_file *f;
	struct secret *dk;        /* patient data key */
	struct idx_patient pat;
	uint8_t *enc[3];
	size_t enclen[3];
	char why_buf[8];
};

/* Finds the patient or creates it with a new wrapped data key. */
static enum err patient(struct ctx *c, char *why, size_t whylen)
{
	struct index_store *ix = c->v->ix;
	char label[80], ad[80], hex[65];
	struct wbuf w;
	enum err rc;

	memset(&c->pat, 0, sizeof c->pat);
	rc = patient_keys(c->v, &c->f->ds, c->pat.key_hmac, c->pat.name_hmac, c->pat.id_hmac, &c->pat.has_id);
	if (rc != ERR_OK)
		return rc;
	store_hex(c->pat.key_hmac, 16, hex);
	snprintf(label, sizeof label, "dk:%s", hex);
	rc = ix->ops->patient_get(ix, c->pat.key_hmac, &c->pat);
	if (rc == ERR_OK)
		return keywrap_unwrap(c->v->mk, label, strlen(label), c->pat.wrapped_key.p, c->pat.wrapped_key.n, &c->dk);
	if (rc != ERR_NOTFOUND)
		return rc;
	wbuf_init(&w, 4096);
	rc = secret_random(32, &c->dk);
	if (rc == ERR_OK)
		rc = keywrap_wrap(c->v->mk, label, strlen(label), c->dk, &w);
	snprintf(ad, sizeof ad, "patient:%s", hex);
	if (rc == ERR_OK)
		rc = patient_pn(c->v, &c->f->ds, &c->pat);
	if (rc == ERR_OK)
		rc = seal_attrs(c->f, patient_tags, sizeof patient_tags / sizeof patient_tags[0], 0, c->dk, ad, &c->enc[0],
		                &c->enclen[0]);
	if (rc == ERR_OK) {
		c->pat.wrapped_key.p = w.p;
		c->pat.wrapped_key.n = w.len;
		c->pat.enc.p = c->enc[0];
		c->pat.enc.n = c->enclen[0];
		rc = ix->ops->patient_put(ix, &c->pat);
	}
	wbuf_fini(&w);
	if (rc != ERR_OK)
		err_why(why, whylen, rc, "cannot record the patient");
	return rc;
}

/* patient() in a transaction of its own (the caller holds ix_lock), so
 * that the index is free while the object is encrypted. */
static enum err patient_recorded(struct ctx *c, char *why, size_t whylen)
{
	struct index_store *ix = c->v->ix;
	enum err rc = ix->ops->begin(ix);

	if (rc != ERR_OK)
		return rc;
	rc = patient(c, why, whylen);
	if (rc == ERR_OK)
		return ix->ops->commit(ix);
	ix->ops->rollback(ix);
	return rc;
}

/* The study and series as the index has them, against this instance's
 * patient and study (phase 1, under ix_lock): a conflict refuses the store
 * here, before its hook writes a success record (the store's record comes
 * before the index commit, durability.md step 8). p3_rows still refuses
 * one that appears after (a store of the same UIDs at the same time). */
static enum err rows_conflict(struct ctx *c, struct store_result *res, char *why, size_t whylen)
{
	struct index_store *ix = c->v->ix;
	struct idx_study st;
	struct idx_series se;
	bool has_study = ix->ops->study_get(ix, res->study_uid, &st) == ERR_OK;

	if (has_study && st.patient_id != c->pat.id) {
		res->conflict = STORE_CONFLICT_PATIENT;
		return err_why(why, whylen, ERR_DENIED, "Study Instance UID %s belongs to another patient", res->study_uid);
	}
	/* a series stored under no study yet: another study's */
	if (ix->ops->series_get(ix, res->series_uid, &se) == ERR_OK && (!has_study || se.study_id != st.id)) {
		res->conflict = STORE_CONFLICT_STUDY;
		return err_why(why, whylen, ERR_DENIED, "Series Instance UID %s belongs to another study", res->series_uid);
	}
	return ERR_OK;
}

/* Hashes the source's bytes [from, to) (for comparing a duplicate). */
static enum err hash_src(struct src *in, uint64_t from, uint64_t to, uint8_t out[32])
{
	struct sha256 *h = NULL;
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t off = from;
	enum err rc = buf ? sha256_new(&h) : ERR_NOMEM;

	while (rc == ERR_OK && off < to) {
		size_t n = to - off > COPY_CHUNK ? COPY_CHUNK : (size_t)(to - off);
		rc = in->read_at(in->ctx, off, buf, n);
		if (rc == ERR_OK)
			sha256_update(h, buf, n);
		off += n;
	}
	if (rc == ERR_OK)
		sha256_final(h, out);
	else
		sha256_free(h);
	free(buf);
	return rc;
}

/* Encrypts in into a new blob while hashing it (unless known, the hash
 * the caller already has). On success the blob is finished (put_finish:
 * being made durable) and *out is its writer, for put_commit. */
static enum err write_object(struct ctx *c, struct src *in, const char *object_key, const char *sop_uid,
                             const uint8_t *known, uint8_t sha[32], struct blob_writer **out)
{
	struct blob_store *bs = c->v->blobs;
	struct blob_writer *bw = NULL;
	struct blob_sink_ctx bc;
	struct aead_enc *e = NULL;
	struct sha256 *h = NULL;
	struct sink k;
	struct wbuf ad;
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t off = 0, size = (uint64_t)in->size;
	enum err rc = buf ? ERR_OK : ERR_NOMEM;

	wbuf_init(&ad, 4096);
	store_object_ad(&ad, object_key, sop_uid);
	if (rc == ERR_OK)
		rc = bs->ops->put_begin(bs, object_key, &bw);
	if (rc == ERR_OK) {
		blob_sink(&k, &bc, bs, bw);
		rc = aead_enc_open(&e, c->dk, ad.p, ad.len, &k);
	}
	if (rc == ERR_OK && known == NULL)
		rc = sha256_new(&h);
	while (rc == ERR_OK && off < size) {
		size_t n = size - off > COPY_CHUNK ? COPY_CHUNK : (size_t)(size - off);
		rc = in->read_at(in->ctx, off, buf, n);
		if (rc == ERR_OK) {
			if (h != NULL)
				sha256_update(h, buf, n);
			rc = aead_enc_write(e, buf, n);
		}
		off += n;
	}
	if (rc == ERR_OK)
		rc = aead_enc_close(e);
	if (rc == ERR_OK) {
		if (h != NULL)
			sha256_final(h, sha);
		else
			memcpy(sha, known, 32);
		h = NULL;
		rc = bs->ops->put_finish(bw);
	}
	if (rc == ERR_OK) {
		*out = bw;
		bw = NULL;
	}
	sha256_free(h);
	aead_enc_free(e);
	if (bw != NULL)
		bs->ops->put_abort(bw);
	wbuf_fini(&ad);
	free(buf);
	return rc;
}

static void merge_modality(char *mods, size_t cap, const char *m)
{
	size_t len = strlen(mods), ml = strlen(m);
	const char *p = mods;

	if (ml == 0)
		return;
	while (p != NULL && *p) {
		const char *q = strchr(p, '\\');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == ml && memcmp(p, m, n) == 0)
			return;
		p = q ? q + 1 : NULL;
	}
	if (len + ml + 2 > cap) {
		log_warn("store: ModalitiesInStudy is full (%zu bytes): modality %.16s not added", len, m);
		return;
	}
	if (len)
		mods[len++] = '\\';
	memcpy(mods + len, m, ml + 1);
}

/* Where the data set of f (read from a source of size bytes) ends for
 * comparing it with another copy of the same instance: before its last
 * top-level element when that is a Data Set Trailing Padding (FFFC,FFFC),
 * else at size. The padding means nothing (PS3.10) and a sender may
 * leave it out (DCMTK's storescu does): with it or without it, the data
 * set is the same. Elements are kept in the order read and the reader
 * takes no bytes after the last one, so the padding, when last, runs to
 * the end. A deflated data set's offsets are in its inflated stream:
 * there the whole data set counts, as before. */
static uint64_t ds_cmp_end(const struct dcm_file *f, uint64_t size)
{
	const struct dcm_elem *last;

	if (f->ts == NULL || f->ts->deflated || f->ds.n == 0)
		return size;
	last = &f->ds.e[f->ds.n - 1];
	if (last->tag != TAG_TRAILING_PADDING || last->off < f->ds_off || last->off > size)
		return size;
	return last->off;
}

/* SHA-256 of the data set of the stored instance sop_uid (the bytes after
 * its file meta information, to ds_cmp_end), read back through the
 * retrieval path: every chunk authenticated, and the whole-object fixity
 * checked too. The stored object is only read, never rewritten. */
static enum err stored_ds_hash(struct vault *v, const char *sop_uid, uint8_t out[32])
{
	struct dcm_read_opts ro = { .bulk_threshold = 4096, .stop_tag = 1 };
	struct retrieval *rt = NULL;
	struct dcm_file *f = NULL;
	struct dcm_errinfo ei;
	struct src s;
	char why[160];
	bool whole = false;
	enum err rc;

	rc = retrieve_open(v, sop_uid, &rt, why, sizeof why);
	if (rc == ERR_OK)
		rc = retrieve_parse(rt, 4096, &s, &f, why, sizeof why);   /* to its last element */
	if (rc == ERR_PARSE || rc == ERR_LIMIT) {
		/* it parsed when it was stored: a reader stricter since must not
		 * make it "different content", so its whole data set is compared,
		 * as before (from the meta alone: stops at the data set's first
		 * element) */
		whole = true;
		rc = retrieve_src(rt, &s);
		if (rc == ERR_OK)
			rc = dcm_file_read(&s, &ro, &f, &ei);
	}
	if (rc == ERR_OK && !f->has_meta)
		rc = ERR_PARSE;
	if (rc == ERR_OK)
		rc = hash_src(&s, f->ds_off, whole ? (uint64_t)s.size : ds_cmp_end(f, (uint64_t)s.size), out);
	dcm_file_free(f);
	retrieve_close(rt);
	return rc;
}

#define SETTLE_WAIT_MS 30000   /* for a store of the same instance to end (await_settled) */

/* old (the row of sop, read from the index) may be the row of a store
 * still running: indexed, its object not yet durable, its rows still to
 * go if that fails (docs/internals/durability.md, steps 6-9). "Already
 * stored" must not be answered over it, so this waits (up to
 * SETTLE_WAIT_MS) until that store, when it is this process's, has ended,
 * then reads the row again: ERR_OK with *old the settled row, or
 * ERR_NOTFOUND when that store failed and took its rows with it. An
 * object still pending that is not this process's (another process's
 * store, or one a crash left unsettled until the next start's recovery)
 * is made durable here instead (make_durable), so that the answer rests
 * on durable bytes either way. */
static enum err await_settled(struct vault *v, const char *sop, struct idx_instance *old, char *why, size_t whylen)
{
	struct index_store *ix = v->ix;
	bool locked = false;
	unsigned waited = 0, rounds;
	enum err rc = ERR_OK;

	for (rounds = 0; rounds < 8; rounds++) {
		while (v->blobs->ops->in_flight(v->blobs, old->object_key)) {
			if (waited >= SETTLE_WAIT_MS)
				return err_why(why, whylen, ERR_IO, "SOP Instance UID %s is being stored by another request: "
				               "send it again later", sop);
			{
				const struct timespec ts = { 0, 2000000L };
				(void)nanosleep(&ts, NULL);
			}
			waited += 2;
		}
		store_ix_lock(v, &locked);
		{
			char key[sizeof old->object_key];
			snprintf(key, sizeof key, "%s", old->object_key);
			rc = ix->ops->instance_get(ix, sop, old);
			store_ix_unlock(v, &locked);
			if (rc == ERR_OK && strcmp(key, old->object_key) == 0) {
				rc = v->blobs->ops->make_durable(v->blobs, old->object_key);
				if (rc != ERR_OK)
					return err_why(why, whylen, ERR_IO, "SOP Instance UID %s: the stored object cannot be "
					               "made durable", sop);
				return ERR_OK;
			}
			if (rc != ERR_OK)
				return rc;   /* gone with its failed store */
		}
		/* another store of it since: wait for that one */
	}
	return err_why(why, whylen, ERR_IO, "SOP Instance UID %s is being stored by other requests: send it again later",
	               sop);
}

/* The SOP Instance UID is already stored: identical bytes succeed; so do
 * the same data set bytes under other file meta information (a re-send by
 * another AE, or the same image imported from a file and over the
 * network: the meta says who wrote the file, not what the image is), and
 * with or without a Data Set Trailing Padding at the end (ds_cmp_end; on
 * both sides). Anything else is refused, never replaced: what is stored
 * stays byte for byte. f: in as parsed. */
static enum err same_as_stored(struct vault *v, struct src *in, const struct dcm_file *f, const uint8_t *known,
                               const struct idx_instance *old, struct store_result *res, char *why, size_t whylen)
{
	uint8_t a[32], b[32];
	enum err rc = ERR_OK;

	if (known != NULL)
		memcpy(res->sha256, known, 32);
	else
		rc = hash_src(in, 0, (uint64_t)in->size, res->sha256);

	if (rc != ERR_OK)
		return rc;
	if (ct_equal(res->sha256, old->sha256, 32) && old->size == res->size) {
		/* "already stored" only over a stored copy that is intact:
		 * a sender must not be told so of a damaged one */
		rc = store_object_intact(v, res->sop_uid);
		if (rc == ERR_OK)
			res->existed = true;
	} else {
		rc = hash_src(in, f->ds_off, ds_cmp_end(f, (uint64_t)in->size), a);
		if (rc == ERR_OK)
			rc = stored_ds_hash(v, res->sop_uid, b);
	}
	if (rc == ERR_OK && res->existed)
		return ERR_OK;
	if (rc == ERR_OK && ct_equal(a, b, 32)) {
		memcpy(res->sha256, old->sha256, 32);   /* what is stored stays */
		res->size = old->size;
		res->existed = true;
		return ERR_OK;
	}
	if (rc == ERR_AUTH)
		return err_why(why, whylen, ERR_AUTH, "SOP Instance UID %s is already stored, and the stored copy fails "
		               "its integrity check", res->sop_uid);
	if (rc != ERR_OK)
		return rc;
	res->conflict = STORE_CONFLICT_CONTENT;
	return err_why(why, whylen, ERR_DENIED, "SOP Instance UID %s is already stored with different content",
	               res->sop_uid);
}

/* One store's phase 3: what it waits on and what it gets back. */
struct p3_job {
	struct vault *v;
	struct ctx *c;
	struct store_result *res;
	const char *collection;
	const char *object_key;
	char *why;
	size_t whylen;
	enum err rc;
	bool dup;                  /* the instance was stored meanwhile: old */
	bool unknown;              /* its rows were in a commit that failed: they may come back after a crash */
	struct idx_instance old;
	bool done;
	struct p3_job *next;
};

/* The study, series and instance rows of one store, in the open
 * transaction. */
static enum err p3_rows(struct p3_job *j)
{
	struct vault *v = j->v;
	struct ctx *c = j->c;
	struct store_result *res = j->res;
	const char *collection = j->collection, *object_key = j->object_key;
	char *why = j->why;
	size_t whylen = j->whylen;
	struct index_store *ix = v->ix;
	struct idx_instance inst;
	struct idx_study st, cur;
	struct idx_series se;
	char hex[65], ad[96];
	enum err rc = ERR_OK;

	/* study */
	memset(&st, 0, sizeof st);
	st.patient_id = c->pat.id;
	snprintf(st.uid, sizeof st.uid, "%s", res->study_uid);
	snprintf(st.collection, sizeof st.collection, "%s", collection ? collection : "default");
	get_datetime(&c->f->ds, 0x00080020, false, st.date, sizeof st.date);
	get_datetime(&c->f->ds, 0x00080030, true, st.time, sizeof st.time);
	if (ix->ops->study_get(ix, st.uid, &cur) == ERR_OK)
		snprintf(st.modalities, sizeof st.modalities, "%s", cur.modalities);
	{
		char m[17];
		size_t n = 0;
		get_plain(&c->f->ds, 0x00080060, m, sizeof m);
		merge_modality(st.modalities, sizeof st.modalities, m);
		if (dcm_ds_str(&c->f->ds, 0x00080050, &n) != NULL && n > 0) {
			const char *acc = dcm_ds_str(&c->f->ds, 0x00080050, &n);
			rc = store_keyed_text(v, STORE_KEY_ACCESSION, &c->f->ds, acc, n, st.accession_hmac);
			st.has_accession = true;
		}
	}
	store_hex(c->pat.key_hmac, 16, hex);
	snprintf(ad, sizeof ad, "study:%s", res->study_uid);
	if (rc == ERR_OK)
		rc = seal_attrs(c->f, study_tags, sizeof study_tags / sizeof study_tags[0], 0x00100020, c->dk, ad, &c->enc[1],
		                &c->enclen[1]);
	st.enc.p = c->enc[1];
	st.enc.n = c->enclen[1];
	if (rc == ERR_OK)
		rc = ix->ops->study_put(ix, &st);
	if (rc == ERR_DENIED) {
		res->conflict = STORE_CONFLICT_PATIENT;
		err_why(why, whylen, rc, "Study Instance UID %s belongs to another patient", res->study_uid);
		return rc;
	}
	if (rc == ERR_OK && c->pat.n_pn == 0 && !c->pat.pn_any) {
		/* the study's name, which queries answer and match for it (the
		 * sealed set just written, every instance's), is found by an
		 * exact name too: its group hashes join the patient row's
		 * (written by the patient's first instance), a superset the
		 * records decide on; for every instance, not only a new study's
		 * first: a study stored before session 27 takes its own name
		 * with its next instance, and an instance may rename it. (A
		 * patient this store made, n_pn or pn_any set by patient(), has
		 * this instance's hashes already.) */
		struct idx_patient names;
		memset(&names, 0, sizeof names);
		names.id = c->pat.id;
		rc = patient_pn(v, &c->f->ds, &names);
		if (rc == ERR_OK)
			rc = ix->ops->patient_names_add(ix, &names);
	}
	/* series */
	memset(&se, 0, sizeof se);
	se.study_id = st.id;
	snprintf(se.uid, sizeof se.uid, "%s", res->series_uid);
	get_plain(&c->f->ds, 0x00080060, se.modality, sizeof se.modality);
	se.number = get_int(&c->f->ds, 0x00200011);
	snprintf(ad, sizeof ad, "series:%s", res->series_uid);
	if (rc == ERR_OK)
		rc = seal_attrs(c->f, series_tags, sizeof series_tags / sizeof series_tags[0], 0, c->dk, ad, &c->enc[2],
		                &c->enclen[2]);
	se.enc.p = c->enc[2];
	se.enc.n = c->enclen[2];
	if (rc == ERR_OK)
		rc = ix->ops->series_put(ix, &se);
	if (rc == ERR_DENIED) {
		res->conflict = STORE_CONFLICT_STUDY;
		err_why(why, whylen, rc, "Series Instance UID %s belongs to another study", res->series_uid);
		return rc;
	}
	/* instance */
	memset(&inst, 0, sizeof inst);
	inst.series_id = se.id;
	snprintf(inst.uid, sizeof inst.uid, "%s", res->sop_uid);
	snprintf(inst.sop_class, sizeof inst.sop_class, "%s", res->sop_class);
	snprintf(inst.ts_uid, sizeof inst.ts_uid, "%s", c->f->ts_uid[0] ? c->f->ts_uid : c->f->ts->uid);
	inst.number = get_int(&c->f->ds, 0x00200013);
	snprintf(inst.object_key, sizeof inst.object_key, "%s", object_key);
	inst.size = res->size;
	memcpy(inst.sha256, res->sha256, 32);
	inst.created = (int64_t)time(NULL);
	inst.rows = get_u16(&c->f->ds, 0x00280010);
	inst.columns = get_u16(&c->f->ds, 0x00280011);
	inst.bits_allocated = get_u16(&c->f->ds, 0x00280100);
	inst.frames = get_int(&c->f->ds, 0x00280008);
	if (rc == ERR_OK)
		rc = ix->ops->instance_put(ix, &inst);
	if (rc == ERR_DENIED && ix->ops->instance_get(ix, res->sop_uid, &j->old) == ERR_OK)
		j->dup = true;   /* stored meanwhile by another request */
	return rc;
}

/* Group commit: the phase 3 of the stores waiting at the same time (on one
 * vault) run in one index transaction, one savepoint each, so that they
 * share its commit, i.e. the WAL fsync. The first waiting store leads: it
 * takes every waiting job of its vault, runs them, commits, wakes their
 * owners; then the next batch gets a leader. */
static pthread_mutex_t gc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gc_cv = PTHREAD_COND_INITIALIZER;
static struct p3_job *gc_queue;   /* FIFO, newest last */
static bool gc_leading;

static void run_batch(struct vault *v, struct p3_job *batch)
{
	struct index_store *ix = v->ix;
	struct p3_job *j;
	bool locked = false, any = false;
	enum err rc, r;

	store_ix_lock(v, &locked);
	rc = ix->ops->begin(ix);
	for (j = batch; j != NULL; j = j->next) {
		if (rc != ERR_OK) {
			j->rc = rc;
			continue;
		}
		r = ix->ops->savepoint(ix);
		if (r == ERR_OK) {
			r = p3_rows(j);
			if (r == ERR_OK)
				r = ix->ops->release(ix);
			else
				ix->ops->rollback_to(ix);
		}
		j->rc = r;
		if (r == ERR_OK)
			any = true;
		else if (r != ERR_DENIED)
			rc = r;   /* not this store's data: the batch stops */
	}
	if (rc == ERR_OK && any) {
		rc = ix->ops->commit(ix);
		/* a commit that failed may still have written its frames whole
		 * (an fsync error after the writes): invisible now, they come
		 * back if the process dies before the next commit overwrites
		 * them, so the objects stay for recovery to judge */
		for (j = batch; rc != ERR_OK && j != NULL; j = j->next)
			j->unknown = j->rc == ERR_OK;
	} else {
		ix->ops->rollback(ix);
	}
	/* nothing of the batch is durable: every store fails, also one that
	 * found its instance stored by another of the batch */
	for (j = batch; rc != ERR_OK && j != NULL; j = j->next)
		if (j->rc == ERR_OK || j->dup) {
			j->rc = rc;
			j->dup = false;
		}
	store_ix_unlock(v, &locked);
}

static void group_commit(struct p3_job *mine)
{
	struct p3_job **pp, *batch, **bt, *j;
	struct vault *v;

	pthread_mutex_lock(&gc_mu);
	mine->next = NULL;
	for (pp = &gc_queue; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = mine;
	while (!mine->done) {
		if (gc_leading) {
			pthread_cond_wait(&gc_cv, &gc_mu);
			continue;
		}
		gc_leading = true;
		/* every waiting job of the first one's vault, in order */
		v = gc_queue->v;
		batch = NULL;
		bt = &batch;
		for (pp = &gc_queue; *pp != NULL;) {
			j = *pp;
			if (j->v == v) {
				*pp = j->next;
				j->next = NULL;
				*bt = j;
				bt = &j->next;
			} else {
				pp = &j->next;
			}
		}
		pthread_mutex_unlock(&gc_mu);
		run_batch(v, batch);
		pthread_mutex_lock(&gc_mu);
		for (j = batch; j != NULL; j = batch) {
			batch = j->next;
			j->done = true;
		}
		gc_leading = false;
		pthread_cond_broadcast(&gc_cv);
	}
	pthread_mutex_unlock(&gc_mu);
}

enum err store_instance(struct vault *v, struct src *in, const char *collection, struct store_result *res,
                        char *why, size_t whylen)
{
	return store_instance_hashed(v, in, NULL, collection, res, why, whylen);
}

/* ---- the early object (store.h) ---- */

struct store_early {
	struct vault *v;
	struct ctx c;              /* dk, pat (its id and keyed hashes), enc[0] */
	char sop_uid[65];
	char object_key[BLOB_KEY_NEW + 1];
	struct blob_writer *bw;
	struct blob_sink_ctx bc;
	struct sink k;             /* bc and k: the encryptor's sink, by address */
	struct aead_enc *e;
	uint64_t size;             /* bytes encrypted so far */
	enum err err;              /* sticky */
};

/* (7FE0,0010) as its tag is written in little endian */
static const uint8_t pixel_tag_le[4] = { 0xE0, 0x7F, 0x10, 0x00 };

void store_early_free(struct store_early *e)
{
	if (e == NULL)
		return;
	aead_enc_free(e->e);
	if (e->bw != NULL)
		e->v->blobs->ops->put_abort(e->bw);
	secret_free(e->c.dk);
	free(e->c.enc[0]);
	dcm_file_free(e->c.f);
	free(e);
}

enum err store_early_begin(struct vault *v, const uint8_t *head, size_t n, store_may_fn may, void *ctx,
                           struct store_early **out)
{
	struct dcm_read_opts ro = { .bulk_threshold = 4096, .stop_tag = 0x7FE00010 };
	struct index_store *ix = v->ix;
	struct store_early *e;
	struct idx_instance old;
	struct dcm_errinfo ei;
	struct src_mem sm;
	struct src in;
	struct wbuf ad;
	bool locked = false;
	char why[8];
	enum err rc;

	/* every element before the pixel data is here once its tag is (a
	 * match inside a value only makes the parse below fail or, at the
	 * end, the check of the whole data set refuse the early object) */
	const uint8_t *px = n < sizeof pixel_tag_le ? NULL : memmem(head, n, pixel_tag_le, sizeof pixel_tag_le);

	*out = NULL;
	/* (and the 12 bytes of an element header from there: what the reader
	 * looks at before it stops) */
	if (px == NULL || n - (size_t)(px - head) < 12)
		return ERR_AGAIN;
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return ERR_NOMEM;
	e->v = v;
	e->c.v = v;
	src_mem_init(&in, &sm, head, n);
	rc = dcm_file_read(&in, &ro, &e->c.f, &ei);
	if (rc != ERR_OK) {
		store_early_free(e);
		return ERR_AGAIN;   /* cut inside an element: more bytes may help */
	}
	if (!e->c.f->has_meta || get_uid(&e->c.f->ds, 0x00080018, e->sop_uid) != ERR_OK) {
		store_early_free(e);
		return ERR_UNSUPPORTED;
	}
	if (may != NULL && !may(ctx, e->c.f)) {
		store_early_free(e);
		return ERR_DENIED;
	}
	/* phase 1 as in store_common; an instance already stored is compared
	 * at the end instead */
	store_ix_lock(v, &locked);
	rc = ix->ops->instance_get(ix, e->sop_uid, &old) == ERR_OK ? ERR_UNSUPPORTED
	                                                            : patient_recorded(&e->c, why, sizeof why);
	store_ix_unlock(v, &locked);
	/* its pointers are the index's or freed: only id and hashes are used */
	memset(&e->c.pat.wrapped_key, 0, sizeof e->c.pat.wrapped_key);
	memset(&e->c.pat.enc, 0, sizeof e->c.pat.enc);
	dcm_file_free(e->c.f);   /* over head: not kept */
	e->c.f = NULL;
	if (rc == ERR_OK)
		rc = v->blobs->ops->new_key(v->blobs, e->object_key);
	if (rc == ERR_OK)
		rc = v->blobs->ops->put_begin(v->blobs, e->object_key, &e->bw);
	wbuf_init(&ad, 4096);
	store_object_ad(&ad, e->object_key, e->sop_uid);
	if (rc == ERR_OK) {
		blob_sink(&e->k, &e->bc, v->blobs, e->bw);
		rc = aead_enc_open(&e->e, e->c.dk, ad.p, ad.len, &e->k);
	}
	wbuf_fini(&ad);
	if (rc == ERR_OK)
		rc = store_early_write(e, head, n);
	if (rc != ERR_OK) {
		store_early_free(e);
		return rc == ERR_AGAIN ? ERR_INTERNAL : rc;
	}
	*out = e;
	return ERR_OK;
}

enum err store_early_write(struct store_early *e, const void *p, size_t n)
{
	if (e->err == ERR_OK)
		e->err = aead_enc_write(e->e, p, n);
	if (e->err == ERR_OK)
		e->size += n;
	return e->err;
}

void store_early_feed(struct vault *v, struct spool *sp, const void *p, size_t n, store_may_fn may, void *ctx,
                      struct store_early_rx *rx)
{
	const uint8_t *head;
	size_t have;
	enum err rc;

	if (rx->e != NULL) {
		if (store_early_write(rx->e, p, n) != ERR_OK) {
			store_early_free(rx->e);
			rx->e = NULL;
			rx->off = true;
		}
		return;
	}
	if (rx->off || spool_size(sp) < rx->next)
		return;
	if (!spool_peek(sp, &head, &have)) {
		rx->off = true;
		return;
	}
	rc = store_early_begin(v, head, have, may, ctx, &rx->e);
	if (rc == ERR_AGAIN && have < STORE_EARLY_HEAD_MAX)
		rx->next = 2 * have;
	else if (rc != ERR_OK)
		rx->off = true;
}

/* Whether e holds exactly in, keyed as the whole data set c->f says. */
static bool early_fits(struct store_early *e, const struct ctx *c, const struct src *in, const uint8_t *known,
                       const char *sop_uid)
{
	struct idx_patient now;
	uint8_t key[32], name[32], id[32];
	bool has_id = false, fits, locked = false;

	if (e->err != ERR_OK || known == NULL || e->size != (uint64_t)in->size || strcmp(e->sop_uid, sop_uid) != 0)
		return false;
	if (patient_keys(e->v, &c->f->ds, key, name, id, &has_id) != ERR_OK)
		return false;
	fits = ct_equal(key, e->c.pat.key_hmac, 32) && ct_equal(name, e->c.pat.name_hmac, 32) &&
	       has_id == e->c.pat.has_id && (!has_id || ct_equal(id, e->c.pat.id_hmac, 32));
	/* the patient's row still there (not erased while we received) */
	if (fits) {
		store_ix_lock(e->v, &locked);
		fits = e->v->ix->ops->patient_get(e->v->ix, key, &now) == ERR_OK && now.id == e->c.pat.id;
		store_ix_unlock(e->v, &locked);
	}
	mem_wipe(key, sizeof key);
	return fits;
}

/* Phase 2 of an early object: the last chunk, then finished (being made
 * durable); *out: its writer, for put_commit. */
static enum err early_finish(struct store_early *e, const uint8_t *known, uint8_t sha[32], struct blob_writer **out)
{
	enum err rc = e->err;

	if (rc == ERR_OK)
		rc = aead_enc_close(e->e);
	if (rc == ERR_OK) {
		memcpy(sha, known, 32);
		rc = e->v->blobs->ops->put_finish(e->bw);
	}
	if (rc == ERR_OK) {
		*out = e->bw;
		e->bw = NULL;
	}
	return rc;
}

static enum err store_common(struct vault *v, struct src *in, const uint8_t *known, struct store_early *early,
                             const struct store_hook *hook, const char *collection, struct store_result *res,
                             char *why, size_t whylen)
{
	struct dcm_read_opts ro = { .bulk_threshold = 4096, .strict = false };
	struct ctx c;
	struct dcm_errinfo ei;
	struct idx_instance old;
	struct p3_job j;
	struct index_store *ix = v->ix;
	struct blob_writer *bw = NULL;
	char object_key[33] = "";
	bool locked = false;
	enum err rc, rcw;
	bool begun = false;   /* hook->begin called, hook->end not yet */

	memset(&c, 0, sizeof c);
	memset(res, 0, sizeof *res);
	c.v = v;
	if (why != NULL && whylen > 0)
		why[0] = 0;
	if (in->read_at == NULL || in->size < 0) {
		store_early_free(early);
		return err_why(why, whylen, ERR_INTERNAL, "store needs a random-access source");
	}
	rc = dcm_file_read(in, &ro, &c.f, &ei);
	if (rc != ERR_OK) {
		store_early_free(early);
		return err_why(why, whylen, rc, "not valid DICOM at byte offset %llu: %s", (unsigned long long)ei.offset, ei.msg);
	}
	if (!c.f->has_meta) {
		rc = err_why(why, whylen, ERR_PARSE, "not a DICOM Part 10 file (no file meta information)");
		goto out;
	}
	/* stored as received under its meta's transfer syntax: a data set in
	 * the other VR encoding would be served mislabelled (as the C-STORE
	 * SCP refuses it against its context's) */
	if (c.f->vr_mismatch) {
		rc = err_why(why, whylen, ERR_PARSE,
		             "the data set's VR encoding (implicit or explicit) differs from its transfer syntax %s: "
		             "stored so it would be served mislabelled (convert it first, e.g. with dcmconv)",
		             c.f->ts_uid);
		goto out;
	}
	/* group 0002 belongs to the meta information only (PS3.10 7.1):
	 * stored as received, a reader that takes the meta as the elements of
	 * group 0002 (pydicom) would read such a one as meta, a Transfer
	 * Syntax UID in it relabelling the whole object */
	if (dcm_ds_has_group(&c.f->ds, 0x0002)) {
		rc = err_why(why, whylen, ERR_PARSE,
		             "File Meta elements (0002,xxxx) in the data set, after the meta information: readers "
		             "would take them for the meta");
		goto out;
	}
	if (get_uid(&c.f->ds, 0x00080018, res->sop_uid) != ERR_OK ||
	    get_uid(&c.f->ds, 0x00080016, res->sop_class) != ERR_OK ||
	    get_uid(&c.f->ds, 0x0020000D, res->study_uid) != ERR_OK ||
	    get_uid(&c.f->ds, 0x0020000E, res->series_uid) != ERR_OK) {
		rc = err_why(why, whylen, ERR_PARSE, "SOP Class, SOP Instance, Study or Series Instance UID missing or invalid");
		goto out;
	}
	res->size = (uint64_t)in->size;
	if (early != NULL && !early_fits(early, &c, in, known, res->sop_uid)) {
		store_early_free(early);   /* its head said otherwise: as usual */
		early = NULL;
	}
	/* phase 1, index: the same SOP Instance UID again? the patient (its
	 * own transaction, so that the index is free while we encrypt); its
	 * study or series another patient's or study's? */
	store_ix_lock(v, &locked);
	if (ix->ops->instance_get(ix, res->sop_uid, &old) == ERR_OK) {
		store_ix_unlock(v, &locked);
		rc = await_settled(v, res->sop_uid, &old, why, whylen);
		if (rc == ERR_OK) {
			rc = same_as_stored(v, in, c.f, known, &old, res, why, whylen);
			goto out;
		}
		if (rc != ERR_NOTFOUND)
			goto out;
		/* that store failed: this one stores it */
		rc = ERR_OK;
		store_ix_lock(v, &locked);
	}
	/* the patient: an early object's phase 1 found or made it at its start */
	if (early != NULL)
		c.pat = early->c.pat;   /* its id and hashes only */
	else
		rc = patient_recorded(&c, why, whylen);
	if (rc == ERR_OK) {
		/* named by the failure record too */
		memcpy(res->patient_key, c.pat.key_hmac, sizeof res->patient_key);
		res->has_patient_key = true;
		rc = rows_conflict(&c, res, why, whylen);
	}
	store_ix_unlock(v, &locked);
	if (rc != ERR_OK)
		goto out;   /* (an early object is discarded by store_early_free) */
	if (early != NULL) {
		/* its key and object */
		c.dk = early->c.dk;
		c.enc[0] = early->c.enc[0];
		early->c.dk = NULL;
		early->c.enc[0] = NULL;
		snprintf(object_key, sizeof object_key, "%s", early->object_key);
		rc = early_finish(early, known, res->sha256, &bw);
	} else {
		/* phase 2, no index: encrypt, hash, write durably */
		if (v->blobs->ops->new_key(v->blobs, object_key) != ERR_OK) {
			object_key[0] = 0;
			rc = ERR_IO;
			goto out;
		}
		rc = write_object(&c, in, object_key, res->sop_uid, known, res->sha256, &bw);
	}
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot write the encrypted object");
		object_key[0] = 0;
		goto out;
	}
	/* phase 3, index: study, series, instance, committed together with
	 * those of the stores waiting at the same time (group commit), while
	 * the object's fsync runs (docs/internals/durability.md, step 6: its
	 * pending entry makes recovery check it if a crash comes first) */
	snprintf(res->object_key, sizeof res->object_key, "%s", object_key);
	if (hook != NULL) {
		hook->begin(hook->ctx, res);   /* its fsync beside the commit's */
		begun = true;
	}
	memset(&j, 0, sizeof j);
	j.v = v;
	j.c = &c;
	j.res = res;
	j.collection = collection;
	j.object_key = object_key;
	j.why = why;
	j.whylen = whylen;
	group_commit(&j);
	rc = j.rc;
	rcw = v->blobs->ops->put_commit(bw);   /* the object durable: waited for */
	bw = NULL;
	if (rcw != ERR_OK && rc == ERR_OK && !j.dup) {
		/* indexed, but its object failed to become durable: the rows go
		 * (the pending entry tells recovery until then) */
		if (store_unindex(v, res->sop_uid) != ERR_OK) {
			/* the pending entry stays: recovery removes them */
			log_error("store: cannot remove the rows of an instance whose object failed");
			object_key[0] = 0;
		}
		err_why(why, whylen, rcw, "cannot write the encrypted object");
		rc = rcw;
		goto out;
	}
	if (j.dup) {
		/* stored meanwhile by another request: compare with it (its
		 * record, if any, comes again: "already stored") */
		if (begun)
			hook->end(hook->ctx, res, false);
		begun = false;
		res->object_key[0] = 0;
		(void)v->blobs->ops->del(v->blobs, object_key);
		object_key[0] = 0;
		rc = await_settled(v, res->sop_uid, &j.old, why, whylen);
		if (rc == ERR_NOTFOUND)
			rc = err_why(why, whylen, ERR_IO, "SOP Instance UID %s was stored at the same time by another request, "
			             "which failed: send it again", res->sop_uid);
		if (rc == ERR_OK)
			rc = same_as_stored(v, in, c.f, known, &j.old, res, why, whylen);
		goto out;
	}
	if (rc != ERR_OK && why != NULL && whylen > 0 && why[0] == 0)
		err_why(why, whylen, rc, "cannot index the instance");
	if (rc != ERR_OK && j.unknown) {
		/* its rows may come back after a crash (run_batch): the object
		 * and its pending entry stay, for recovery at the next open to
		 * keep it (rows back, object whole) or remove it, audited */
		log_error("store: the index commit failed; the object of %s stays until the next start decides",
		          res->sop_uid);
		object_key[0] = 0;
	}
out:
	store_ix_unlock(v, &locked);
	if (rc == ERR_OK && res->existed && !res->has_patient_key) {   /* (the j.dup path has it from c.pat) */
		uint8_t name[32], id[32];
		bool has_id = false;
		res->has_patient_key = patient_keys(v, &c.f->ds, res->patient_key, name, id, &has_id) == ERR_OK;
	}
	if (rc == ERR_OK && hook != NULL && !begun) {
		hook->begin(hook->ctx, res);   /* already stored */
		begun = true;
	}
	if (begun)
		hook->end(hook->ctx, res, rc == ERR_OK);
	if (bw != NULL)
		v->blobs->ops->put_abort(bw);
	if (object_key[0] && rc != ERR_OK)
		(void)v->blobs->ops->del(v->blobs, object_key);
	/* indexed (or dropped): no longer pending */
	if (object_key[0])
		v->blobs->ops->settle(v->blobs, object_key);
	if (rc != ERR_OK && why != NULL && whylen > 0 && why[0] == 0)
		err_why(why, whylen, rc, "%s", err_str(rc));
	store_early_free(early);
	secret_free(c.dk);
	free(c.enc[0]);
	free(c.enc[1]);
	free(c.enc[2]);
	dcm_file_free(c.f);
	return rc;
}

enum err store_instance_hashed(struct vault *v, struct src *in, const uint8_t *known, const char *collection,
                               struct store_result *res, char *why, size_t whylen)
{
	return store_common(v, in, known, NULL, NULL, collection, res, why, whylen);
}

enum err store_instance_early(struct vault *v, struct src *in, const uint8_t *known, struct store_early *e,
                              const struct store_hook *hook, const char *collection, struct store_result *res,
                              char *why, size_t whylen)
{
	return store_common(v, in, known, e, hook, collection, res, why, whylen);
}
