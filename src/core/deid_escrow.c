/* deid_escrow.c: the re-identification escrow of PS3.15 E.1.2. Before
 * de-identification the data set (its pixel data and overlays aside) is
 * snapshotted; afterwards every top-level attribute that was removed or
 * changed, with its original value, goes into a Modified Attributes
 * Sequence (0400,0550) item, which is encoded as an explicit VR little
 * endian data set, enveloped in CMS to the escrow certificates and stored
 * in an Encrypted Attributes Sequence (0400,0500) item with Encrypted
 * Content Transfer Syntax UID (0400,0510) and Encrypted Content (0400,0520).
 * deid_reidentify() reverses it with an escrow private key. The snapshot
 * and the plaintext are wiped before they are freed. Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/cms.h"
#include "dicomvault/crypto.h"
#include "dicomvault/deid.h"
#include "dicomvault/dict.h"
#include "deid_int.h"

#define TAG_ENCRYPTED_ATTRS  0x04000500u
#define TAG_ENC_TS           0x04000510u
#define TAG_ENC_CONTENT      0x04000520u
#define TAG_MODIFIED_ATTRS   0x04000550u
#define ESCROW_TS            "1.2.840.10008.1.2.1"

/* What de-identification adds or sets whatever the input had: escrowed when
 * present in the original, removed at re-identification when not. */
static const uint32_t attest_tags[] = { 0x00120062, 0x00120063, 0x00120064, 0x00280301, 0x00280303 };

static bool is_attest(uint32_t tag)
{
	size_t i;

	for (i = 0; i < sizeof attest_tags / sizeof attest_tags[0]; i++)
		if (attest_tags[i] == tag)
			return true;
	return false;
}

/* Pixel data, float/double pixel data, overlay data: not escrowed (the
 * image is the same, or masked on purpose). */
static bool is_bulk_image(uint32_t tag)
{
	uint16_t g = (uint16_t)(tag >> 16), el = (uint16_t)tag;

	return g == 0x7FE0 || ((g & 0xFF01) == 0x6000 && el == 0x3000);
}

static void wipe_wbuf(struct wbuf *w)
{
	if (w->p != NULL)
		mem_wipe(w->p, w->cap > w->len ? w->cap : w->len);
	wbuf_fini(w);
}

/* Explicit VR LE encoding of the elements of ds that keep(tag) accepts
 * (a shallow view: nothing is copied but the element headers). */
static enum err encode_some(const struct dcm_file *f, const struct dcm_ds *ds, bool (*keep)(uint32_t, void *),
                            void *ctx, struct wbuf *w)
{
	struct dcm_ds view = *ds;
	struct sink k;
	uint32_t i, n = 0;
	enum err rc;

	view.e = malloc((ds->n ? ds->n : 1) * sizeof *view.e);
	if (view.e == NULL)
		return ERR_NOMEM;
	for (i = 0; i < ds->n; i++)
		if (keep(ds->e[i].tag, ctx))
			view.e[n++] = ds->e[i];
	view.n = n;
	view.cap = n;
	view.order = NULL;
	sink_wbuf(&k, w);
	rc = dcm_ds_write(f, &view, true, false, &k);
	if (rc == ERR_OK)
		rc = wbuf_err(w);
	free(view.e);
	return rc;
}

static bool keep_not_image(uint32_t tag, void *ctx)
{
	(void)ctx;
	return !is_bulk_image(tag);
}

static bool keep_one(uint32_t tag, void *ctx)
{
	return tag == *(const uint32_t *)ctx;
}

enum err deid_escrow_snapshot(const struct dcm_file *f, struct wbuf *out)
{
	return encode_some(f, &f->ds, keep_not_image, NULL, out);
}

/* Whether the element with this tag differs between the two files (compared
 * as encoded, so byte order and bulk storage do not matter). */
static enum err differs(const struct dcm_file *a, const struct dcm_file *b, uint32_t tag, bool *out)
{
	struct wbuf x, y;
	enum err rc;

	wbuf_init(&x, (size_t)1 << 31);
	wbuf_init(&y, (size_t)1 << 31);
	rc = encode_some(a, &a->ds, keep_one, &tag, &x);
	if (rc == ERR_OK)
		rc = encode_some(b, &b->ds, keep_one, &tag, &y);
	if (rc == ERR_OK)
		*out = x.len != y.len || (x.len > 0 && memcmp(x.p, y.p, x.len) != 0);
	wipe_wbuf(&x);
	wipe_wbuf(&y);
	return rc;
}

static enum err read_bare(const uint8_t *p, size_t n, struct src *s, struct src_mem *m, struct dcm_file **out)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;

	memset(&ro, 0, sizeof ro);
	ro.no_meta = true;
	ro.ts = DCM_TS_EXPLICIT_LE;
	src_mem_init(s, m, p, n);
	return dcm_file_read(s, &ro, out, &ei);
}

enum err deid_escrow_attach(struct dcm_file *f, const uint8_t *snap, size_t snaplen,
                            const struct cms_recipients *to, uint64_t *escrowed, char *why, size_t whylen)
{
	struct dcm_file *orig = NULL, *t = NULL;
	struct dcm_elem *sq, *enc;
	struct dcm_ds *item, *eitem;
	struct wbuf plain, der;
	struct src s;
	struct src_mem m;
	struct sink k;
	uint32_t i;
	uint64_t n = 0;
	enum err rc;

	wbuf_init(&plain, (size_t)1 << 31);
	wbuf_init(&der, (size_t)1 << 31);
	rc = read_bare(snap, snaplen, &s, &m, &orig);
	if (rc == ERR_OK)
		rc = dcm_file_new(&t);
	if (rc == ERR_OK)
		rc = dcm_ds_set_seq(&t->ds, TAG_MODIFIED_ATTRS, &sq);
	if (rc == ERR_OK)
		rc = dcm_seq_add_item(&t->ds, sq, &item);
	for (i = 0; rc == ERR_OK && i < orig->ds.n; i++) {
		const struct dcm_elem *e = &orig->ds.e[i];
		bool take = is_attest(e->tag) || dcm_ds_find(&f->ds, e->tag) == NULL;
		if (!take)
			rc = differs(orig, f, e->tag, &take);
		if (rc == ERR_OK && take) {
			rc = dcm_ds_copy_elem(item, orig, e, 0);
			n++;
		}
	}
	sink_wbuf(&k, &plain);
	if (rc == ERR_OK)
		rc = dcm_ds_write(t, &t->ds, true, false, &k);
	if (rc == ERR_OK)
		rc = wbuf_err(&plain);
	if (rc == ERR_OK)
		rc = cms_envelope(to, plain.p, plain.len, &der);
	if (rc != ERR_OK) {
		(void)err_why(why, whylen, rc, "cannot make the re-identification escrow: %s", err_str(rc));
		goto out;
	}
	/* a new item in Encrypted Attributes Sequence (kept if there is one) */
	enc = dcm_ds_find(&f->ds, TAG_ENCRYPTED_ATTRS);
	if (enc == NULL || enc->seq == NULL || (enc->flags & DCM_EF_ENCAPS))
		rc = dcm_ds_set_seq(&f->ds, TAG_ENCRYPTED_ATTRS, &enc);
	if (rc == ERR_OK)
		rc = dcm_seq_add_item(&f->ds, enc, &eitem);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(eitem, TAG_ENC_TS, VR_UI, ESCROW_TS);
	if (rc == ERR_OK)
		rc = dcm_ds_set(eitem, TAG_ENC_CONTENT, VR_OB, der.p, der.len);
	if (rc == ERR_OK && escrowed != NULL)
		*escrowed += n;
out:
	wipe_wbuf(&plain);
	wbuf_fini(&der);
	dcm_file_free(t);   /* its arena held copies of original values */
	dcm_file_free(orig);
	return rc;
}

enum err deid_reidentify(struct dcm_file *f, const char *key_path, const char *cert_path, unsigned *restored,
                         char *why, size_t whylen)
{
	struct dcm_elem *enc = dcm_ds_find(&f->ds, TAG_ENCRYPTED_ATTRS);
	struct dcm_file *pf = NULL;
	struct wbuf plain;
	uint32_t i, j;
	size_t k;
	enum err rc = ERR_NOTFOUND, last = ERR_NOTFOUND;
	char lastwhy[256] = "";

	*restored = 0;
	if (enc == NULL || enc->seq == NULL || enc->seq->n == 0)
		return err_why(why, whylen, ERR_NOTFOUND, "no Encrypted Attributes Sequence (0400,0500): nothing escrowed");
	wbuf_init(&plain, (size_t)1 << 31);
	for (i = 0; i < enc->seq->n; i++) {
		struct dcm_ds *it = enc->seq->items[i];
		const struct dcm_elem *c = dcm_ds_find(it, TAG_ENC_CONTENT);
		const uint8_t *der = NULL;
		char ts[65] = "";
		bool owned = false;
		if (dcm_ds_get_cstr(it, TAG_ENC_TS, ts, sizeof ts) != ERR_OK || strcmp(ts, ESCROW_TS) != 0 || c == NULL ||
		    c->seq != NULL || c->len == 0)
			continue;
		rc = dcm_elem_value(f, c, &der, &owned);
		if (rc == ERR_OK) {
			plain.len = 0;
			rc = cms_open(key_path, cert_path, der, c->len, &plain, lastwhy, sizeof lastwhy);
		}
		if (owned)
			free((void *)der);
		if (rc == ERR_OK) {
			/* this item is ours: restore, then drop it */
			struct src s;
			struct src_mem m;
			const struct dcm_elem *sq;
			rc = read_bare(plain.p, plain.len, &s, &m, &pf);
			sq = rc == ERR_OK ? dcm_ds_find(&pf->ds, TAG_MODIFIED_ATTRS) : NULL;
			if (rc != ERR_OK || sq == NULL || sq->seq == NULL || sq->seq->n != 1) {
				rc = err_why(why, whylen, ERR_PARSE, "the escrow decrypted but holds no Modified Attributes "
				             "Sequence with one item");
				goto out;
			}
			for (k = 0; k < sizeof attest_tags / sizeof attest_tags[0]; k++)
				if (dcm_ds_find(sq->seq->items[0], attest_tags[k]) == NULL)
					dcm_ds_remove(&f->ds, attest_tags[k]);
			for (j = 0; rc == ERR_OK && j < sq->seq->items[0]->n; j++) {
				rc = dcm_ds_copy_elem(&f->ds, pf, &sq->seq->items[0]->e[j], 0);
				if (rc == ERR_OK)
					(*restored)++;
			}
			/* the sequence element may have moved: find it again */
			enc = dcm_ds_find(&f->ds, TAG_ENCRYPTED_ATTRS);
			if (rc == ERR_OK && enc != NULL && enc->seq != NULL && i < enc->seq->n) {
				memmove(&enc->seq->items[i], &enc->seq->items[i + 1],
				        (enc->seq->n - i - 1) * sizeof enc->seq->items[0]);
				enc->seq->n--;
				if (enc->seq->n == 0)
					dcm_ds_remove(&f->ds, TAG_ENCRYPTED_ATTRS);
			}
			if (rc != ERR_OK)
				(void)err_why(why, whylen, rc, "cannot restore the escrowed attributes: %s", err_str(rc));
			goto out;
		}
		last = rc;
	}
	rc = last == ERR_NOTFOUND ? ERR_NOTFOUND : ERR_AUTH;
	(void)err_why(why, whylen, rc, "%s", last == ERR_NOTFOUND ? "no escrow item this program understands"
	              : lastwhy[0] ? lastwhy : "no escrow item opens with this key");
out:
	wipe_wbuf(&plain);
	dcm_file_free(pf);
	return rc;
}
