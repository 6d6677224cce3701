/* x509.c: self-signed server certificates and fingerprints with GnuTLS.
 * Layer: crypto. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "dicomvault/crypto.h"
#include "dicomvault/x509.h"

enum err x509_self_signed(unsigned days, struct wbuf *cert_pem, struct wbuf *key_pem)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t out = { NULL, 0 };
	uint8_t serial[16];
	static const uint8_t lo[4] = { 127, 0, 0, 1 };
	time_t now = time(NULL);
	enum err rc = ERR_INTERNAL;

	if (rand_bytes(serial, sizeof serial) != ERR_OK)
		return ERR_IO;
	serial[0] &= 0x7f;   /* positive */
	if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
		goto out;
	if (gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
		goto out;
	if (gnutls_x509_crt_set_version(crt, 3) < 0 || gnutls_x509_crt_set_serial(crt, serial, sizeof serial) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 300) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400) < 0 ||
	    gnutls_x509_crt_set_dn(crt, "CN=localhost,O=dicomvault", NULL) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo, 4, GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_set_key(crt, key) < 0 || gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0) < 0)
		goto out;
	if (gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
		goto out;
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) < 0)
		goto out;
	wbuf_put(cert_pem, out.data, out.size);
	gnutls_free(out.data);
	out.data = NULL;
	if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &out) < 0)
		goto out;
	wbuf_put(key_pem, out.data, out.size);
	mem_wipe(out.data, out.size);
	gnutls_free(out.data);
	out.data = NULL;
	rc = wbuf_err(cert_pem) != ERR_OK ? wbuf_err(cert_pem) : wbuf_err(key_pem);
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return rc;
}

enum err x509_fingerprint(const uint8_t *pem, size_t n, char out[96])
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t in;
	uint8_t fp[32];
	size_t fplen = sizeof fp, i;
	enum err rc = ERR_PARSE;

	if (n > (1u << 20))
		return ERR_LIMIT;
	in.data = (unsigned char *)(uintptr_t)pem;
	in.size = (unsigned)n;
	if (gnutls_x509_crt_init(&crt) < 0)
		return ERR_NOMEM;
	if (gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0)
		goto out;
	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen) < 0 || fplen != 32)
		goto out;
	for (i = 0; i < 32; i++)
		snprintf(out + i * 3, 4, "%02X%s", fp[i], i < 31 ? ":" : "");
	rc = ERR_OK;
out:
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* The key's type and strength as words, for a refusal. */
static void key_words(gnutls_pk_algorithm_t pk, unsigned bits, char *out, size_t cap)
{
	const char *name = gnutls_pk_get_name(pk);

	snprintf(out, cap, "%s of %u bits", name != NULL ? name : "an unknown algorithm", bits);
}

enum err x509_check_pair(const uint8_t *cert, size_t certlen, const uint8_t *key, size_t keylen, time_t *expires,
                         char *why, size_t whylen)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t pk = NULL;
	gnutls_datum_t cd, kd;
	uint8_t cid[32], kid[32];
	size_t cidlen = sizeof cid, kidlen = sizeof kid;
	unsigned bits = 0;
	char words[96];
	int alg, sig;
	enum err rc;

	rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
	if (certlen > X509_PEM_MAX || keylen > X509_PEM_MAX)
		return err_why(why, whylen, ERR_LIMIT, "the TLS certificate or key is over %u bytes", X509_PEM_MAX);
	cd.data = (unsigned char *)(uintptr_t)cert;
	cd.size = (unsigned)certlen;
	kd.data = (unsigned char *)(uintptr_t)key;
	kd.size = (unsigned)keylen;
	if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_privkey_init(&pk) < 0)
		goto out;
	rc = err_why(why, whylen, ERR_PARSE, "the TLS certificate is not a PEM X.509 certificate");
	if (gnutls_x509_crt_import(crt, &cd, GNUTLS_X509_FMT_PEM) < 0)
		goto out;
	/* PKCS#1, PKCS#8 (unencrypted) or SEC1, as openssl writes them */
	rc = err_why(why, whylen, ERR_PARSE, "the TLS key is not an unencrypted PEM private key");
	if (gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) < 0)
		goto out;
	rc = err_why(why, whylen, ERR_DENIED, "the TLS key does not belong to the certificate");
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, cid, &cidlen) < 0 ||
	    gnutls_x509_privkey_get_key_id(pk, GNUTLS_KEYID_USE_SHA256, kid, &kidlen) < 0 || cidlen != kidlen ||
	    memcmp(cid, kid, cidlen) != 0)
		goto out;
	/* 112 bits of security at least: RSA of 2048 bits, an elliptic
	 * curve of 256 (NIST SP 800-57; what browsers and DCMTK accept) */
	alg = gnutls_x509_privkey_get_pk_algorithm2(pk, &bits);
	key_words((gnutls_pk_algorithm_t)(alg < 0 ? GNUTLS_PK_UNKNOWN : alg), bits, words, sizeof words);
	/* and a curve TLS 1.3 can sign with (RFC 8446 4.2.3: P-256, P-384,
	 * P-521; P-224 would pass the 112 bits, and no handshake) */
	if (alg == GNUTLS_PK_DSA || gnutls_x509_privkey_sec_param(pk) < GNUTLS_SEC_PARAM_MEDIUM ||
	    (alg == GNUTLS_PK_ECDSA && bits < 256)) {
		rc = err_why(why, whylen, ERR_DENIED,
		             "the TLS key is too weak (%s): use RSA of 2048 bits or more, or ECDSA P-256 or stronger",
		             words);
		goto out;
	}
	sig = gnutls_x509_crt_get_signature_algorithm(crt);
	if (sig < 0 || gnutls_sign_is_secure2((gnutls_sign_algorithm_t)sig, GNUTLS_SIGN_FLAG_SECURE_FOR_CERTS) == 0) {
		const char *s = sig < 0 ? NULL : gnutls_sign_get_name((gnutls_sign_algorithm_t)sig);
		rc = err_why(why, whylen, ERR_DENIED, "the TLS certificate is signed with %s, which clients refuse: "
		             "sign it with SHA-256 or stronger", s != NULL ? s : "an unknown algorithm");
		goto out;
	}
	*expires = gnutls_x509_crt_get_expiration_time(crt);
	if (why != NULL && whylen > 0)
		why[0] = 0;
	rc = ERR_OK;
out:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (pk != NULL)
		gnutls_x509_privkey_deinit(pk);   /* zeroes the key's numbers */
	return rc;
}
