/* retrieve.c: the retrieval half of the store: an instance found in the
 * index, its patient's data key unwrapped, its object decrypted with every
 * chunk authenticated before release and its SHA-256 fixity checked at the
 * end of a full sequential read; or read at random (retrieve_src, for
 * metadata, frames and bulk data), each chunk it touches authenticated.
 * Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/blob.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/index.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "store_int.h"

#define COPY_CHUNK (256u * 1024)

struct retrieval {
	struct secret *dk;
	bool dk_borrowed;  /* from a struct retrieve_keys */
	struct aead_dec *d;
	struct src blob;
	bool have_blob;
	struct sha256 *h;
	uint64_t n, size;
	uint8_t sha[32];
	enum err err;      /* sticky */
	bool done;
	uint64_t spos;     /* retrieve_src's sequential position */
};

void retrieve_close(struct retrieval *rt)
{
	if (rt == NULL)
		return;
	sha256_free(rt->h);
	aead_dec_free(rt->d);
	if (rt->have_blob)
		src_close(&rt->blob);
	if (!rt->dk_borrowed)
		secret_free(rt->dk);
	free(rt);
}

uint64_t retrieve_size(const struct retrieval *rt)
{
	return rt->size;
}

void retrieve_keys_fini(struct retrieve_keys *keys)
{
	secret_free(keys->dk);
	keys->dk = NULL;
}

enum err retrieve_open(struct vault *v, const char *sop_uid, struct retrieval **out, char *why, size_t whylen)
{
	return retrieve_open_keys(v, sop_uid, NULL, out, why, whylen);
}

enum err retrieve_open_keys(struct vault *v, const char *sop_uid, struct retrieve_keys *keys,
                            struct retrieval **out, char *why, size_t whylen)
{
	struct index_store *ix = v->ix;
	struct idx_instance inst;
	struct idx_series se;
	struct idx_study st;
	struct idx_patient pat;
	struct retrieval *rt;
	struct wbuf ad;
	char label[80], hex[65];
	uint8_t wrapped[256];
	size_t wrapped_n = 0;
	bool locked = false;
	enum err rc;

	if (why != NULL && whylen > 0)
		why[0] = 0;
	rt = calloc(1, sizeof *rt);
	if (rt == NULL)
		return ERR_NOMEM;
	wbuf_init(&ad, 4096);
	store_ix_lock(v, &locked);
	rc = ix->ops->instance_get(ix, sop_uid, &inst);
	if (rc == ERR_OK)
		rc = ix->ops->series_by_id(ix, inst.series_id, &se);
	if (rc == ERR_OK)
		rc = ix->ops->study_by_id(ix, se.study_id, &st);
	if (rc == ERR_OK)
		rc = ix->ops->patient_by_id(ix, st.patient_id, &pat);
	if (rc == ERR_OK) {
		/* the blobs point into the index's scratch: copy what we need */
		wrapped_n = pat.wrapped_key.n <= sizeof wrapped ? pat.wrapped_key.n : 0;
		if (wrapped_n == 0)
			rc = ERR_LIMIT;
		else
			memcpy(wrapped, pat.wrapped_key.p, wrapped_n);
	}
	store_ix_unlock(v, &locked);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "%s", rc == ERR_NOTFOUND ? "no such instance" : "index error");
		goto out;
	}
	if (keys != NULL && keys->dk != NULL && memcmp(keys->patient, pat.key_hmac, sizeof keys->patient) == 0) {
		rt->dk = keys->dk;   /* this patient's key, unwrapped for an instance before */
		rt->dk_borrowed = true;
	} else {
		store_hex(pat.key_hmac, 16, hex);
		snprintf(label, sizeof label, "dk:%s", hex);
		rc = keywrap_unwrap(v->mk, label, strlen(label), wrapped, wrapped_n, &rt->dk);
		if (rc != ERR_OK) {
			err_why(why, whylen, rc, "the patient's data key cannot be unwrapped (erased or damaged)");
			goto out;
		}
		if (keys != NULL) {
			retrieve_keys_fini(keys);
			keys->dk = rt->dk;
			memcpy(keys->patient, pat.key_hmac, sizeof keys->patient);
			rt->dk_borrowed = true;
		}
	}
	rc = v->blobs->ops->get(v->blobs, inst.object_key, &rt->blob);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "object %s is missing", inst.object_key);
		goto out;
	}
	rt->have_blob = true;
	store_object_ad(&ad, inst.object_key, inst.uid);
	rc = aead_dec_open(&rt->d, rt->dk, ad.p, ad.len, &rt->blob);
	if (rc == ERR_OK)
		rc = sha256_new(&rt->h);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "object %s failed authentication (tampered or damaged)", inst.object_key);
		goto out;
	}
	memcpy(rt->sha, inst.sha256, 32);
	rt->size = inst.size;
	*out = rt;
	rt = NULL;
out:
	wbuf_fini(&ad);
	retrieve_close(rt);
	return rc;
}

void retrieve_no_fixity(struct retrieval *rt)
{
	if (rt->n == 0 && !rt->done) {
		sha256_free(rt->h);
		rt->h = NULL;
	}
}

enum err retrieve_read(struct retrieval *rt, void *buf, size_t want, size_t *got)
{
	uint8_t sha[32];
	enum err rc;

	*got = 0;
	if (rt->err != ERR_OK)
		return rt->err;
	if (rt->done)
		return ERR_OK;
	rc = aead_dec_read(rt->d, buf, want, got);
	if (rc == ERR_OK && *got > 0) {
		if (rt->h != NULL)
			sha256_update(rt->h, buf, *got);
		rt->n += *got;
		if (rt->n > rt->size)
			rc = ERR_AUTH;
	} else if (rc == ERR_OK) {
		bool fixity_ok = true;
		if (rt->h != NULL) {
			sha256_final(rt->h, sha);
			rt->h = NULL;
			fixity_ok = ct_equal(sha, rt->sha, 32);
		}
		rt->done = true;
		if (!fixity_ok || rt->n != rt->size)
			rc = ERR_AUTH;
	}
	if (rc != ERR_OK) {
		*got = 0;
		rt->err = rc;
	}
	return rc;
}

/* retrieve_src: sequential reads and skips are random-access reads at
 * spos, so that a parser can skip bulk values without decrypting them. */
static enum err rsrc_read_at(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct retrieval *rt = ctx;
	enum err rc;

	if (rt->err != ERR_OK)
		return rt->err;
	rc = aead_dec_read_at(rt->d, off, buf, n);
	if (rc == ERR_AUTH)
		rt->err = rc;
	return rc;
}

static enum err rsrc_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct retrieval *rt = ctx;
	size_t n = want;
	enum err rc;

	*got = 0;
	if (rt->spos >= rt->size)
		return ERR_OK;
	if (rt->size - rt->spos < n)
		n = (size_t)(rt->size - rt->spos);
	rc = rsrc_read_at(rt, rt->spos, buf, n);
	if (rc != ERR_OK)
		return rc;
	rt->spos += n;
	*got = n;
	return ERR_OK;
}

static enum err rsrc_skip(void *ctx, uint64_t n)
{
	struct retrieval *rt = ctx;

	if (rt->size - rt->spos < n)
		return ERR_PARSE;
	rt->spos += n;
	return ERR_OK;
}

enum err retrieve_src(struct retrieval *rt, struct src *s)
{
	struct src view;

	if (rt->err != ERR_OK)
		return rt->err;
	/* the plaintext size the ciphertext implies must be the indexed one:
	 * an object cut at a chunk boundary is caught here, before any read */
	aead_dec_src(rt->d, &view);   /* a view only: never closed (it would free d) */
	if (view.read_at == NULL)
		return ERR_UNSUPPORTED;
	if (view.size < 0 || (uint64_t)view.size != rt->size) {
		rt->err = ERR_AUTH;
		return ERR_AUTH;
	}
	memset(s, 0, sizeof *s);
	s->read = rsrc_read;
	s->read_at = rsrc_read_at;
	s->skip = rsrc_skip;
	s->close = NULL;
	s->size = (int64_t)rt->size;
	s->ctx = rt;
	rt->spos = 0;
	return ERR_OK;
}

enum err retrieve_instance(struct vault *v, const char *sop_uid, struct sink *out, char *why, size_t whylen)
{
	struct retrieval *rt = NULL;
	uint8_t *buf = NULL;
	size_t got = 0;
	enum err rc;

	rc = retrieve_open(v, sop_uid, &rt, why, whylen);
	if (rc != ERR_OK)
		return rc;
	buf = malloc(COPY_CHUNK);
	if (buf == NULL)
		rc = ERR_NOMEM;
	while (rc == ERR_OK) {
		rc = retrieve_read(rt, buf, COPY_CHUNK, &got);
		if (rc != ERR_OK || got == 0)
			break;
		rc = sink_write(out, buf, got);
	}
	if (rc == ERR_AUTH)
		err_why(why, whylen, rc, "object of %s failed authentication or its fixity check (tampered or damaged)",
		        sop_uid);
	else if (rc != ERR_OK && why != NULL && whylen > 0 && why[0] == 0)
		err_why(why, whylen, rc, "%s", err_str(rc));
	free(buf);
	retrieve_close(rt);
	return rc;
}

enum err retrieve_parse(struct retrieval *rt, uint32_t bulk_threshold, struct src *s, struct dcm_file **f,
                        char *why, size_t whylen)
{
	struct dcm_read_opts o;
	struct dcm_errinfo ei;
	struct src probe;
	enum err rc = retrieve_src(rt, s);

	*f = NULL;
	if (rc != ERR_OK)
		return rc;
	memset(&o, 0, sizeof o);
	o.bulk_threshold = bulk_threshold;
	rc = dcm_file_read(s, &o, f, &ei);
	if (rc == ERR_OK || rc == ERR_AUTH)
		return rc;
	/* the parser may report a failed read as malformed data: the
	 * retrieval remembers an authentication failure */
	if (retrieve_src(rt, &probe) == ERR_AUTH)
		return ERR_AUTH;
	snprintf(why, whylen, "the stored object does not parse: %s", ei.msg);
	return rc;
}
