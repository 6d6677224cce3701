/* cms.c: CMS EnvelopedData for the re-identification escrow (cms.h), on
 * OpenSSL's libcrypto. Private keys are read into guarded memory (struct
 * secret) and parsed from there; OpenSSL's copies are freed (and cleansed
 * by OpenSSL) when the key is freed. Layer: crypto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "dicomvault/cms.h"
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"
#include "ossl_int.h"

struct cms_recipients {
	STACK_OF(X509) *certs;
};

void ossl_reason(char *why, size_t whylen, enum err rc, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[160] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	(void)err_why(why, whylen, rc, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

void cms_recipients_free(struct cms_recipients *r)
{
	if (r == NULL)
		return;
	sk_X509_pop_free(r->certs, X509_free);
	free(r);
}

static enum err read_small(const char *path, uint8_t **p, size_t *n, char *why, size_t whylen)
{
	enum err rc = file_read_all(path, CMS_MAX_PEM, p, n);

	if (rc != ERR_OK)
		(void)err_why(why, whylen, rc, "%s: %s", path,
		              rc == ERR_NOTFOUND ? "no such file" : rc == ERR_LIMIT ? "too large for a certificate file"
		              : "cannot read");
	return rc;
}

enum err cms_recipients_load(const char *pem_path, struct cms_recipients **out, char *why, size_t whylen)
{
	struct cms_recipients *r = NULL;
	uint8_t *text = NULL;
	size_t n = 0;
	BIO *b = NULL;
	X509 *x;
	enum err rc;

	*out = NULL;
	rc = read_small(pem_path, &text, &n, why, whylen);
	if (rc != ERR_OK)
		return rc;
	rc = ERR_NOMEM;
	r = calloc(1, sizeof *r);
	if (r == NULL || (r->certs = sk_X509_new_null()) == NULL || (b = BIO_new_mem_buf(text, (int)n)) == NULL)
		goto out;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if ((size_t)sk_X509_num(r->certs) == CMS_MAX_RECIPIENTS || !sk_X509_push(r->certs, x)) {
			X509_free(x);
			rc = ERR_LIMIT;
			(void)err_why(why, whylen, rc, "%s: more than %u certificates", pem_path, CMS_MAX_RECIPIENTS);
			goto out;
		}
	}
	ERR_clear_error();   /* the end of the PEM stream */
	if (sk_X509_num(r->certs) == 0) {
		rc = ERR_PARSE;
		(void)err_why(why, whylen, rc, "%s: no PEM certificate in it", pem_path);
		goto out;
	}
	*out = r;
	r = NULL;
	rc = ERR_OK;
out:
	BIO_free(b);
	free(text);
	cms_recipients_free(r);
	return rc;
}

enum err cms_envelope(const struct cms_recipients *r, const uint8_t *p, size_t n, struct wbuf *out)
{
	BIO *in = NULL, *der = NULL;
	CMS_ContentInfo *ci = NULL;
	BUF_MEM *bm = NULL;
	enum err rc = ERR_INTERNAL;

	if (n > (size_t)1 << 30)
		return ERR_LIMIT;
	in = BIO_new_mem_buf(p, (int)n);
	der = BIO_new(BIO_s_mem());
	if (in == NULL || der == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	ci = CMS_encrypt(r->certs, in, EVP_aes_256_cbc(), CMS_BINARY);
	if (ci == NULL || i2d_CMS_bio(der, ci) != 1) {
		rc = ERR_INTERNAL;
		ERR_clear_error();
		goto out;
	}
	BIO_get_mem_ptr(der, &bm);
	wbuf_put(out, bm->data, bm->length);
	rc = wbuf_err(out);
out:
	CMS_ContentInfo_free(ci);
	BIO_free(in);
	BIO_free(der);
	return rc;
}

enum err cms_open(const char *key_path, const char *cert_path, const uint8_t *der, size_t n, struct wbuf *out,
                  char *why, size_t whylen)
{
	struct secret *keytext = NULL;
	uint8_t *certtext = NULL;
	size_t certlen = 0;
	BIO *kb = NULL, *cb = NULL, *in = NULL, *plain = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	CMS_ContentInfo *ci = NULL;
	BUF_MEM *bm = NULL;
	enum err rc;

	rc = secret_read_file(key_path, CRYPTO_SECRET_FILE_MAX, 0, &keytext);
	if (rc != ERR_OK) {
		(void)err_why(why, whylen, rc, "%s: %s", key_path,
		              rc == ERR_DENIED ? "readable by group or others, or not ours (chmod 600)"
		              : rc == ERR_NOTFOUND ? "no such file" : rc == ERR_LIMIT ? "too large for a private key file"
		              : "cannot read the key");
		return rc;
	}
	rc = ERR_NOMEM;
	kb = BIO_new_mem_buf(secret_view(keytext), (int)secret_len(keytext));
	if (kb == NULL)
		goto out;
	key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (key == NULL) {
		rc = ERR_PARSE;
		ossl_reason(why, whylen, rc, "not a PEM private key (without a passphrase)");
		goto out;
	}
	if (cert_path != NULL) {
		rc = read_small(cert_path, &certtext, &certlen, why, whylen);
		if (rc != ERR_OK)
			goto out;
		rc = ERR_NOMEM;
		cb = BIO_new_mem_buf(certtext, (int)certlen);
		if (cb == NULL)
			goto out;
		cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
		if (cert == NULL) {
			rc = ERR_PARSE;
			ossl_reason(why, whylen, rc, "not a PEM certificate");
			goto out;
		}
	}
	if (n > (size_t)1 << 30) {
		rc = ERR_LIMIT;
		goto out;
	}
	rc = ERR_NOMEM;
	in = BIO_new_mem_buf(der, (int)n);
	plain = BIO_new(BIO_s_mem());
	if (in == NULL || plain == NULL)
		goto out;
	ci = d2i_CMS_bio(in, NULL);
	if (ci == NULL || OBJ_obj2nid(CMS_get0_type(ci)) != NID_pkcs7_enveloped) {
		rc = ERR_PARSE;
		ossl_reason(why, whylen, rc, "the encrypted content is not a CMS EnvelopedData");
		goto out;
	}
	if (CMS_decrypt(ci, key, cert, NULL, plain, CMS_BINARY) != 1) {
		rc = ERR_AUTH;
		ossl_reason(why, whylen, rc, "cannot decrypt (not a recipient's key, or the data was changed)");
		goto out;
	}
	BIO_get_mem_ptr(plain, &bm);
	wbuf_put(out, bm->data, bm->length);
	rc = wbuf_err(out);
	OPENSSL_cleanse(bm->data, bm->length);
out:
	CMS_ContentInfo_free(ci);
	BIO_free(in);
	BIO_free(plain);
	X509_free(cert);
	BIO_free(cb);
	free(certtext);
	EVP_PKEY_free(key);
	BIO_free(kb);
	secret_free(keytext);
	ERR_clear_error();
	return rc;
}
