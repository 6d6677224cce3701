/* reid_fuzz.c: libFuzzer target for re-identification (PS3.15 E.1.2,
 * core/deid_escrow.c: deid_reidentify over cms_open), which reads files
 * that come back from outside: de-identified files whose Encrypted
 * Attributes Sequence a recipient (or anyone on the way) may have changed.
 * The escrow key and certificate (P-256) are made at start with OpenSSL,
 * written under /dev/shm (else $TMPDIR) with mode 0600, and removed at
 * exit. Byte 0 of the input picks the mode (mod 3) and the profile
 * options (bits 2-7); the rest is
 *   0: a Part 10 file, de-identified with the escrow (deid_apply), written,
 *      read back and re-identified: the round trip of the product;
 *   1: a Part 10 file re-identified as it is (a hostile returned file);
 *   2: the plaintext of an escrow (a bare explicit VR little endian data
 *      set, as deid_escrow_attach encrypts it), enveloped to the escrow
 *      certificate into a small de-identified file, then re-identified:
 *      hostile escrow content, which a mutated ciphertext almost never
 *      reaches.
 * abort()s when
 *   - a refusal gives no reason or ERR_INTERNAL, or a re-identified file
 *     does not write;
 *   - round trip: a de-identified file that escrowed something does not
 *     re-identify, or re-identifies to a data set other than the original
 *     (element by element: tags, VRs, values, items; in any order, and
 *     odd-length values padded as every value set is, group lengths and
 *     the top level's group 0002 left out, as the writer drops them; an
 *     original with a tag twice in one data set is not compared);
 *   - escrow content: it is accepted and its Modified Attributes Sequence
 *     item's attributes are not the ones restored (their count), or it is
 *     refused although it is such a sequence of one item (unless an
 *     element of it cannot be copied: ERR_UNSUPPORTED).
 * Layer: fuzz. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "dicomvault/cms.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/deid.h"
#include "dicomvault/io.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TAG_ENCRYPTED_ATTRS 0x04000500u
#define TAG_MODIFIED_ATTRS  0x04000550u
#define WRITE_MAX ((size_t)64 << 20)

static char key_path[256], cert_path[256];
static struct cms_recipients *recips;
static struct secret *project_key;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "reid_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static void cleanup(void)
{
	(void)unlink(key_path);
	(void)unlink(cert_path);
}

/* A P-256 key and a self-signed certificate for it, as PEM files. */
static void make_key(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;
	FILE *fk, *fc;

	if (pk == NULL || x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) == NULL || X509_set_pubkey(x, pk) != 1)
		die("cannot make the escrow key", NULL);
	nm = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"reid-fuzz", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 || X509_sign(x, pk, EVP_sha256()) <= 0)
		die("cannot make the escrow certificate", NULL);
	umask(077);
	fk = fopen(key_path, "wx");
	fc = fopen(cert_path, "wx");
	if (fk == NULL || fc == NULL || PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_X509(fc, x) != 1 || fclose(fk) != 0 || fclose(fc) != 0)
		die("cannot write the escrow key", key_path);
	EVP_PKEY_free(pk);
	X509_free(x);
}

static void setup(void)
{
	static const uint8_t keybytes[32] = "dicomvault-reid-fuzz-project-ke";
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	char why[256];

	if (recips != NULL)
		return;
	snprintf(key_path, sizeof key_path, "%s/dv-reid-fuzz-%ld.key", dir ? dir : "/tmp", (long)getpid());
	snprintf(cert_path, sizeof cert_path, "%s/dv-reid-fuzz-%ld.crt", dir ? dir : "/tmp", (long)getpid());
	cleanup();
	atexit(cleanup);
	make_key();
	if (cms_recipients_load(cert_path, &recips, why, sizeof why) != ERR_OK)
		die("cannot load the escrow certificate", why);
	if (secret_from_bytes(keybytes, sizeof keybytes, &project_key) != ERR_OK)
		die("no project key", NULL);
}

static struct dcm_file *read_file(const uint8_t *p, size_t n, bool bare)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;

	memset(&ro, 0, sizeof ro);
	if (bare) {
		ro.no_meta = true;
		ro.ts = DCM_TS_EXPLICIT_LE;
	}
	src_mem_init(&s, &m, p, n);
	if (dcm_file_read(&s, &ro, &f, &ei) != ERR_OK)
		return NULL;
	return f;
}

/* Two values: the same bytes, or b the odd-length a padded to even (as
 * every value set in a data set is: dcm_elem_set). */
static bool same_value(const struct dcm_file *fa, const struct dcm_elem *a, const struct dcm_file *fb,
                       const struct dcm_elem *b)
{
	const uint8_t *va = NULL, *vb = NULL;
	bool oa = false, ob = false, same;

	if (a->len != b->len && !((a->len & 1) && b->len == a->len + 1))
		return false;
	if (dcm_elem_value(fa, a, &va, &oa) != ERR_OK || dcm_elem_value(fb, b, &vb, &ob) != ERR_OK) {
		same = false;
	} else {
		same = a->len == 0 || memcmp(va, vb, a->len) == 0;
		if (b->len != a->len)
			same = same && (vb[a->len] == 0 || vb[a->len] == ' ');
	}
	if (oa)
		free((void *)va);
	if (ob)
		free((void *)vb);
	return same;
}

/* Whether a tag comes twice in a data set or one of its items (a malformed
 * original: re-identification puts one element back per tag). */
static bool has_dups(const struct dcm_ds *ds, unsigned depth)
{
	uint32_t i, j;

	if (depth > 64)
		return true;
	for (i = 0; i < ds->n; i++) {
		if (dcm_ds_find(ds, ds->e[i].tag) != &ds->e[i])
			return true;
		if (ds->e[i].seq != NULL)
			for (j = 0; j < ds->e[i].seq->n; j++)
				if (has_dups(ds->e[i].seq->items[j], depth + 1))
					return true;
	}
	return false;
}

/* Whether the writer keeps an element: File Meta group 0002 elements in
 * a data set are invalid, and group lengths (gggg,0000) are retired;
 * both are left out when a data set is written (writer.c skip_elem). */
static bool writable(uint32_t tag, unsigned depth)
{
	return (tag & 0xFFFFu) != 0 && (depth > 0 || (tag >> 16) != 0x0002);
}

static uint32_t kept(const struct dcm_ds *ds, unsigned depth)
{
	uint32_t i, n = 0;

	for (i = 0; i < ds->n; i++)
		n += writable(ds->e[i].tag, depth);
	return n;
}

/* The same elements (tags, VRs, values; sequences item by item), in any
 * order: an original out of tag order comes back in order. */
static bool same_ds(const struct dcm_file *fa, const struct dcm_ds *a, const struct dcm_file *fb,
                    const struct dcm_ds *b, unsigned depth)
{
	uint32_t i, j;

	if (kept(a, depth) != kept(b, depth) || depth > 64)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct dcm_elem *x = &a->e[i], *y;
		if (!writable(x->tag, depth))
			continue;
		y = dcm_ds_find(b, x->tag);
		if (y == NULL || x->vr != y->vr || (x->seq == NULL) != (y->seq == NULL) ||
		    (x->flags & DCM_EF_ENCAPS) != (y->flags & DCM_EF_ENCAPS)) {
			fprintf(stderr, "reid_fuzz: (%08X) missing or of another kind\n", x->tag);
			return false;
		}
		if (x->flags & DCM_EF_ENCAPS)
			continue;   /* pixel data: neither escrowed nor changed without masks */
		if (x->seq != NULL) {
			if (x->seq->n != y->seq->n)
				return false;
			for (j = 0; j < x->seq->n; j++)
				if (!same_ds(fa, x->seq->items[j], fb, y->seq->items[j], depth + 1))
					return false;
		} else if (!same_value(fa, x, fb, y)) {
			fprintf(stderr, "reid_fuzz: (%08X): other value\n", x->tag);
			return false;
		}
	}
	return true;
}

static bool file_bytes(struct dcm_file *f, struct wbuf *w)
{
	struct dcm_write_opts wo;
	struct sink k;
	enum err rc;

	memset(&wo, 0, sizeof wo);
	wbuf_init(w, WRITE_MAX);
	sink_wbuf(&k, w);
	rc = dcm_file_write(f, &wo, &k);
	if (rc == ERR_INTERNAL)
		die("ERR_INTERNAL writing a file", NULL);
	return rc == ERR_OK && wbuf_err(w) == ERR_OK;
}

static enum err reid(struct dcm_file *f, unsigned *restored)
{
	char why[512] = "";
	enum err rc = deid_reidentify(f, key_path, cert_path, restored, why, sizeof why);
	struct wbuf w;

	if (rc != ERR_OK && (why[0] == 0 || rc == ERR_INTERNAL))
		die("a refusal without a reason", err_str(rc));
	if (rc == ERR_OK) {
		if (!file_bytes(f, &w) && wbuf_err(&w) == ERR_OK)
			die("a re-identified file does not write", NULL);
		wbuf_fini(&w);
	}
	return rc;
}

static void round_trip(const uint8_t *p, size_t n, unsigned options)
{
	struct dcm_file *f = read_file(p, n, false), *g = NULL, *orig = NULL;
	struct deid_opts o;
	struct deid_stats st;
	struct wbuf written;
	unsigned restored = 0;
	char why[512] = "";
	enum err rc;

	if (f == NULL)
		return;
	memset(&written, 0, sizeof written);
	orig = read_file(p, n, false);   /* kept as it was */
	if (orig == NULL)
		goto out;
	memset(&o, 0, sizeof o);
	o.options = options & DEID_ALL_OPTIONS;
	if ((o.options & DEID_RETAIN_LONG_FULL_DATES) && (o.options & DEID_RETAIN_LONG_MODIFIED_DATES))
		o.options &= ~DEID_RETAIN_LONG_FULL_DATES;
	o.project_key = project_key;
	o.escrow = recips;
	memset(&st, 0, sizeof st);
	rc = deid_apply(f, &o, &st, why, sizeof why);
	if (rc == ERR_INTERNAL)
		die("ERR_INTERNAL from deid_apply", why);
	if (rc != ERR_OK || !file_bytes(f, &written))
		goto out;
	g = read_file(written.p, written.len, false);
	if (g == NULL)
		die("a de-identified file we wrote does not read back", NULL);
	rc = reid(g, &restored);
	if (st.escrowed == 0)
		goto out;
	if (rc != ERR_OK)
		die("a file we de-identified with escrow does not re-identify", err_str(rc));
	if (!has_dups(&orig->ds, 0) && !same_ds(orig, &orig->ds, g, &g->ds, 0))
		die("the re-identified data set is not the original", NULL);
out:
	wbuf_fini(&written);
	dcm_file_free(orig);
	dcm_file_free(f);
	dcm_file_free(g);
}

/* A de-identified file whose one escrow item envelopes p. */
static void crafted(const uint8_t *p, size_t n)
{
	struct dcm_file *f = NULL, *content = read_file(p, n, true);
	struct dcm_elem *sq = NULL;
	const struct dcm_elem *mod;
	struct dcm_ds *item = NULL;
	struct wbuf der;
	unsigned restored = 0, want = 0;
	bool wellformed;
	enum err rc;

	mod = content != NULL ? dcm_ds_find(&content->ds, TAG_MODIFIED_ATTRS) : NULL;
	wellformed = mod != NULL && mod->seq != NULL && mod->seq->n == 1;
	if (wellformed)
		want = mod->seq->items[0]->n;
	wbuf_init(&der, WRITE_MAX);
	if (cms_envelope(recips, p, n, &der) != ERR_OK || wbuf_err(&der) != ERR_OK)
		die("cannot envelope", NULL);
	rc = dcm_file_new(&f);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&f->ds, 0x00080016, VR_UI, "1.2.840.10008.5.1.4.1.1.7");
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&f->ds, 0x00080018, VR_UI, "2.25.1");
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&f->ds, 0x00120062, VR_CS, "YES");
	if (rc == ERR_OK)
		rc = dcm_ds_set_seq(&f->ds, TAG_ENCRYPTED_ATTRS, &sq);
	if (rc == ERR_OK)
		rc = dcm_seq_add_item(&f->ds, sq, &item);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(item, 0x04000510, VR_UI, "1.2.840.10008.1.2.1");
	if (rc == ERR_OK)
		rc = dcm_ds_set(item, 0x04000520, VR_OB, der.p, der.len);
	if (rc != ERR_OK)
		die("cannot build the escrowed file", err_str(rc));
	rc = reid(f, &restored);
	if (rc == ERR_OK && (!wellformed || restored != want))
		die("escrow content accepted that is not one Modified Attributes item", NULL);
	/* (ERR_UNSUPPORTED: an element it cannot copy, such as OB of
	 * undefined length, read as encapsulated) */
	if (rc != ERR_OK && wellformed && rc != ERR_LIMIT && rc != ERR_NOMEM && rc != ERR_UNSUPPORTED)
		die("a Modified Attributes item refused", err_str(rc));
	wbuf_fini(&der);
	dcm_file_free(f);
	dcm_file_free(content);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dcm_file *f;
	unsigned restored = 0;

	if (size < 1)
		return 0;
	setup();
	switch (data[0] % 3) {
	case 0:
		round_trip(data + 1, size - 1, (unsigned)(data[0] >> 2) * 0x0101u);
		break;
	case 1:
		f = read_file(data + 1, size - 1, false);
		if (f != NULL)
			(void)reid(f, &restored);
		dcm_file_free(f);
		break;
	default:
		crafted(data + 1, size - 1);
		break;
	}
	return 0;
}
