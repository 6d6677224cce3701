/* jwt.c: JSON Web Tokens as DICOM user identities (jwt.h): a strict
 * base64url decoder, the header and claims read with jansson (duplicate
 * members refused), and the signature checked with OpenSSL's libcrypto
 * against the one configured public key, whose type alone decides the
 * algorithm. Layer: crypto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "dicomvault/b64.h"
#include "dicomvault/jwt.h"
#include "ossl_int.h"

#define JWT_PART_MAX 4096   /* decoded header or claims */

struct jwt_verifier {
	EVP_PKEY *key;
	enum jwt_alg alg;
	size_t sig_len;          /* the signature length the key gives */
	char issuer[129];
	char audience[129];
	int64_t max_lifetime;
};

/* ---- base64url (RFC 4648 section 5, no padding, canonical) ---- */

/* Decodes n characters into out (room for n * 3 / 4 bytes); *outn gets the
 * length. false: a character outside the alphabet, a length that no
 * encoding has (n % 4 == 1), or non-zero bits after the last byte. */
static bool b64url_decode(const char *in, size_t n, uint8_t *out, size_t *outn)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, k = 0;
	int v;

	if (n % 4 == 1)
		return false;
	for (i = 0; i < n; i++) {
		v = b64_digit((unsigned char)in[i], true);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return false;   /* the unused low bits of the last character must be 0 */
	*outn = k;
	return true;
}

/* Decodes one part into a malloc'd, NUL-terminated buffer. */
static enum err part_decode(const char *in, size_t n, size_t max, uint8_t **out, size_t *outn, const char *what,
                            char *why, size_t whylen)
{
	uint8_t *b;

	if (n > max / 3 * 4 + 3)
		return err_why(why, whylen, ERR_LIMIT, "JWT %s is too long", what);
	b = malloc(n / 4 * 3 + 3);
	if (b == NULL)
		return ERR_NOMEM;
	if (!b64url_decode(in, n, b, outn)) {
		free(b);
		return err_why(why, whylen, ERR_PARSE, "JWT %s is not base64url", what);
	}
	b[*outn] = 0;
	*out = b;
	return ERR_OK;
}

/* ---- header and claims ---- */

static enum err num_claim(json_t *o, const char *name, bool required, int64_t *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, name);
	double d;

	*out = 0;
	if (v == NULL) {
		if (required)
			return err_why(why, whylen, ERR_PARSE, "JWT has no \"%s\" claim", name);
		return ERR_OK;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0 || json_integer_value(v) > 253402300799LL)   /* 9999-12-31 */
			return err_why(why, whylen, ERR_PARSE, "JWT \"%s\" is out of range", name);
		*out = (int64_t)json_integer_value(v);
		return ERR_OK;
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (!(d >= 1.0 && d <= 253402300799.0))
			return err_why(why, whylen, ERR_PARSE, "JWT \"%s\" is out of range", name);
		*out = (int64_t)d;
		return ERR_OK;
	}
	return err_why(why, whylen, ERR_PARSE, "JWT \"%s\" is not a NumericDate", name);
}

static enum err str_claim(json_t *o, const char *name, char *out, size_t cap, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, name);
	const char *s;
	size_t n;

	out[0] = 0;
	if (v == NULL)
		return err_why(why, whylen, ERR_PARSE, "JWT has no \"%s\" claim", name);
	if (!json_is_string(v))
		return err_why(why, whylen, ERR_PARSE, "JWT \"%s\" is not a string", name);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= cap || strlen(s) != n)
		return err_why(why, whylen, ERR_PARSE, "JWT \"%s\" is empty, too long or holds a NUL", name);
	memcpy(out, s, n + 1);
	return ERR_OK;
}

static bool aud_match(json_t *aud, const char *want)
{
	size_t i;
	json_t *e;

	if (want == NULL || aud == NULL)
		return false;
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0 && strlen(want) == json_string_length(aud);
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, e)
		if (json_is_string(e) && strlen(want) == json_string_length(e) && strcmp(json_string_value(e), want) == 0)
			return true;
	return false;
}

static enum err read_header(const uint8_t *p, size_t n, enum jwt_alg *alg, char *why, size_t whylen)
{
	json_error_t je;
	json_t *h = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je), *a, *t;
	const char *s;
	enum err rc = ERR_OK;

	if (h == NULL || !json_is_object(h)) {
		json_decref(h);
		return err_why(why, whylen, ERR_PARSE, "JWT header is not a JSON object");
	}
	a = json_object_get(h, "alg");
	t = json_object_get(h, "typ");
	if (a == NULL || !json_is_string(a)) {
		rc = err_why(why, whylen, ERR_PARSE, "JWT header has no \"alg\"");
	} else if (json_object_get(h, "crit") != NULL) {
		rc = err_why(why, whylen, ERR_UNSUPPORTED, "JWT header has critical extensions (\"crit\")");
	} else if (t != NULL && (!json_is_string(t) || strcasecmp(json_string_value(t), "JWT") != 0)) {
		rc = err_why(why, whylen, ERR_UNSUPPORTED, "JWT \"typ\" is not JWT");
	} else {
		s = json_string_value(a);
		if (strcmp(s, "EdDSA") == 0)
			*alg = JWT_ALG_EDDSA;
		else if (strcmp(s, "ES256") == 0)
			*alg = JWT_ALG_ES256;
		else if (strcmp(s, "RS256") == 0)
			*alg = JWT_ALG_RS256;
		else
			rc = err_why(why, whylen, ERR_UNSUPPORTED, "JWT algorithm not accepted (EdDSA, ES256 or RS256 only)");
	}
	json_decref(h);
	return rc;
}

static enum err read_claims(const uint8_t *p, size_t n, const char *audience, struct jwt_claims *out, char *why,
                            size_t whylen)
{
	json_error_t je;
	json_t *c = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
	enum err rc;

	if (c == NULL || !json_is_object(c)) {
		json_decref(c);
		return err_why(why, whylen, ERR_PARSE, "JWT claims are not a JSON object");
	}
	rc = str_claim(c, "iss", out->iss, sizeof out->iss, why, whylen);
	if (rc == ERR_OK)
		rc = str_claim(c, "sub", out->sub, sizeof out->sub, why, whylen);
	if (rc == ERR_OK)
		rc = num_claim(c, "exp", true, &out->exp, why, whylen);
	if (rc == ERR_OK)
		rc = num_claim(c, "nbf", false, &out->nbf, why, whylen);
	if (rc == ERR_OK)
		rc = num_claim(c, "iat", false, &out->iat, why, whylen);
	if (rc == ERR_OK)
		out->aud_has = aud_match(json_object_get(c, "aud"), audience);
	json_decref(c);
	return rc;
}

enum err jwt_parse(const char *tok, size_t len, const char *audience, struct jwt_claims *out, uint8_t **sig,
                   size_t *sig_len, size_t *signed_len, char *why, size_t whylen)
{
	const char *d1, *d2;
	uint8_t *hp = NULL, *cp = NULL;
	size_t hn, cn;
	enum err rc;

	memset(out, 0, sizeof *out);
	*sig = NULL;
	*sig_len = 0;
	*signed_len = 0;
	if (len > JWT_MAX_LEN)
		return err_why(why, whylen, ERR_LIMIT, "JWT longer than %u bytes", JWT_MAX_LEN);
	d1 = memchr(tok, '.', len);
	d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
		return err_why(why, whylen, ERR_PARSE, "JWT is not three dot-separated parts (an encrypted JWE is not accepted)");
	if (d1 == tok || d2 == d1 + 1 || d2 + 1 == tok + len)
		return err_why(why, whylen, ERR_PARSE, "JWT has an empty part");
	rc = part_decode(tok, (size_t)(d1 - tok), JWT_PART_MAX, &hp, &hn, "header", why, whylen);
	if (rc == ERR_OK)
		rc = read_header(hp, hn, &out->alg, why, whylen);
	if (rc == ERR_OK)
		rc = part_decode(d1 + 1, (size_t)(d2 - d1 - 1), JWT_PART_MAX, &cp, &cn, "claims", why, whylen);
	if (rc == ERR_OK)
		rc = read_claims(cp, cn, audience, out, why, whylen);
	if (rc == ERR_OK)
		rc = part_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), 1024, sig, sig_len, "signature", why, whylen);
	free(hp);
	free(cp);
	if (rc != ERR_OK) {
		free(*sig);
		*sig = NULL;
		*sig_len = 0;
		return rc;
	}
	*signed_len = (size_t)(d2 - tok);
	return ERR_OK;
}

/* ---- the key and the signature ---- */

static EVP_PKEY *load_key(const uint8_t *pem, size_t n)
{
	BIO *b = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	if (b == NULL)
		return NULL;
	k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	if (k == NULL) {
		ERR_clear_error();
		(void)BIO_reset(b);
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (x != NULL)
			k = X509_get_pubkey(x);
		X509_free(x);
	}
	BIO_free(b);
	return k;
}

enum err jwt_verifier_new(const uint8_t *key_pem, size_t n, const char *issuer, const char *audience,
                          int64_t max_lifetime, struct jwt_verifier **out, char *why, size_t whylen)
{
	struct jwt_verifier *v;
	char group[64];
	size_t glen = 0;
	int id;

	*out = NULL;
	if (issuer == NULL || issuer[0] == 0 || strlen(issuer) >= sizeof v->issuer)
		return err_why(why, whylen, ERR_PARSE, "JWT issuer missing or longer than 128 bytes");
	if (audience == NULL || audience[0] == 0 || strlen(audience) >= sizeof v->audience)
		return err_why(why, whylen, ERR_PARSE, "JWT audience missing or longer than 128 bytes");
	if (max_lifetime <= 0)
		return err_why(why, whylen, ERR_PARSE, "JWT maximum lifetime must be positive");
	if (n == 0 || n > 64 * 1024)
		return err_why(why, whylen, ERR_PARSE, "JWT key: empty or too large");
	v = calloc(1, sizeof *v);
	if (v == NULL)
		return ERR_NOMEM;
	v->key = load_key(key_pem, n);
	if (v->key == NULL) {
		free(v);
		ossl_reason(why, whylen, ERR_PARSE, "JWT key: not a PEM public key or certificate");
		return ERR_PARSE;
	}
	id = EVP_PKEY_get_base_id(v->key);
	if (id == EVP_PKEY_ED25519) {
		v->alg = JWT_ALG_EDDSA;
		v->sig_len = 64;
	} else if (id == EVP_PKEY_EC && EVP_PKEY_get_group_name(v->key, group, sizeof group, &glen) == 1 &&
	           (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
		v->alg = JWT_ALG_ES256;
		v->sig_len = 64;
	} else if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(v->key) >= 2048) {
		v->alg = JWT_ALG_RS256;
		v->sig_len = (size_t)EVP_PKEY_get_size(v->key);
	} else {
		EVP_PKEY_free(v->key);
		free(v);
		ERR_clear_error();
		return err_why(why, whylen, ERR_UNSUPPORTED,
		               "JWT key: Ed25519, EC P-256 or RSA of 2048 bits or more only");
	}
	memcpy(v->issuer, issuer, strlen(issuer) + 1);
	memcpy(v->audience, audience, strlen(audience) + 1);
	v->max_lifetime = max_lifetime;
	*out = v;
	return ERR_OK;
}

void jwt_verifier_free(struct jwt_verifier *v)
{
	if (v == NULL)
		return;
	EVP_PKEY_free(v->key);
	free(v);
}

/* r||s (32 + 32 bytes) as the DER ECDSA-Sig-Value OpenSSL verifies. */
static uint8_t *es256_der(const uint8_t *sig, int *dlen)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
	uint8_t *der = NULL;

	*dlen = 0;
	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return NULL;
	}
	*dlen = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (*dlen <= 0) {
		OPENSSL_free(der);
		return NULL;
	}
	return der;
}

static bool sig_ok(const struct jwt_verifier *v, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sn)
{
	EVP_MD_CTX *ctx;
	uint8_t *der = NULL;
	int dlen = 0, r = 0;

	if (sn != v->sig_len)
		return false;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return false;
	if (v->alg == JWT_ALG_EDDSA) {
		if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, v->key) == 1)
			r = EVP_DigestVerify(ctx, sig, sn, msg, n);
	} else if (v->alg == JWT_ALG_ES256) {
		der = es256_der(sig, &dlen);
		if (der != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, v->key) == 1)
			r = EVP_DigestVerify(ctx, der, (size_t)dlen, msg, n);
		OPENSSL_free(der);
	} else if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, v->key) == 1) {
		r = EVP_DigestVerify(ctx, sig, sn, msg, n);
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return r == 1;
}

enum err jwt_verify(const struct jwt_verifier *v, const char *tok, size_t len, int64_t now,
                    struct jwt_claims *out, char *why, size_t whylen)
{
	uint8_t *sig = NULL;
	size_t sn = 0, signed_len = 0;
	enum err rc;

	rc = jwt_parse(tok, len, v->audience, out, &sig, &sn, &signed_len, why, whylen);
	if (rc != ERR_OK)
		return rc;
	if (out->alg != v->alg)
		rc = err_why(why, whylen, ERR_AUTH, "JWT algorithm does not match the issuer's key");
	else if (!sig_ok(v, (const uint8_t *)tok, signed_len, sig, sn))
		rc = err_why(why, whylen, ERR_AUTH, "JWT signature does not verify");
	else if (strcmp(out->iss, v->issuer) != 0)
		rc = err_why(why, whylen, ERR_AUTH, "JWT issuer is not the configured one");
	else if (!out->aud_has)
		rc = err_why(why, whylen, ERR_AUTH, "JWT audience does not name us");
	else if (now >= out->exp + JWT_SKEW_SECONDS)
		rc = err_why(why, whylen, ERR_AUTH, "JWT has expired");
	else if (out->nbf != 0 && now + JWT_SKEW_SECONDS < out->nbf)
		rc = err_why(why, whylen, ERR_AUTH, "JWT is not valid yet (nbf)");
	else if (out->iat != 0 && now + JWT_SKEW_SECONDS < out->iat)
		rc = err_why(why, whylen, ERR_AUTH, "JWT was issued in the future (iat)");
	else if (out->exp - (out->iat != 0 ? out->iat : now) > v->max_lifetime)
		rc = err_why(why, whylen, ERR_AUTH, "JWT lives longer than the configured maximum");
	free(sig);
	if (rc != ERR_OK)
		memset(out->sub, 0, sizeof out->sub);
	return rc;
}
