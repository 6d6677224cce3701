/* jwt_test.c: JSON Web Tokens as user identities (crypto/jwt.c). Keys are
 * made here with OpenSSL (Ed25519, P-256, RSA 2048, and a P-384 and an RSA
 * 1024 that must be refused), tokens signed here with them: good tokens of
 * each algorithm verify; every refusal has its own case (signature,
 * payload changed after signing, algorithm not the key's, "none", HS256,
 * "crit", issuer, audience, expiry with and without the skew, nbf, iat in
 * the future, lifetime above the maximum, missing claims, malformed parts,
 * non-canonical base64url, duplicate members, JWE-like five parts,
 * oversized tokens). Layer: tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "test.h"
#include "dicomvault/jwt.h"

#define NOW 1800000000LL

static EVP_PKEY *k_ed, *k_ec, *k_rsa;
static struct jwt_verifier *v_ed, *v_ec, *v_rsa;

static void b64url(const uint8_t *p, size_t n, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, k = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	for (i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[k++] = al[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[k++] = al[(acc << (6 - bits)) & 63];
	out[k] = 0;
}

static char *pub_pem(EVP_PKEY *k, size_t *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long len;

	PEM_write_bio_PUBKEY(b, k);
	len = BIO_get_mem_data(b, &p);
	out = malloc((size_t)len + 1);
	memcpy(out, p, (size_t)len);
	out[len] = 0;
	*n = (size_t)len;
	BIO_free(b);
	return out;
}

/* header.claims.signature, signed with k (NULL: signature "c2ln") as alg
 * says (EdDSA, ES256 as r||s, RS256). */
static char *make(EVP_PKEY *k, const char *alg, const char *header, const char *claims)
{
	char *out = malloc(16384), sigb[1024];
	uint8_t sig[512], raw[64];
	size_t sn = sizeof sig, n;
	EVP_MD_CTX *ctx;
	const uint8_t *q;
	ECDSA_SIG *es;

	b64url((const uint8_t *)header, strlen(header), out);
	n = strlen(out);
	out[n++] = '.';
	b64url((const uint8_t *)claims, strlen(claims), out + n);
	n = strlen(out);
	if (k == NULL) {
		memcpy(out + n, ".c2ln", 6);
		return out;
	}
	ctx = EVP_MD_CTX_new();
	if (strcmp(alg, "EdDSA") == 0) {
		EVP_DigestSignInit(ctx, NULL, NULL, NULL, k);
		EVP_DigestSign(ctx, sig, &sn, (const uint8_t *)out, n);
	} else {
		EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k);
		EVP_DigestSign(ctx, sig, &sn, (const uint8_t *)out, n);
		if (strcmp(alg, "ES256") == 0) {
			q = sig;
			es = d2i_ECDSA_SIG(NULL, &q, (long)sn);
			memset(raw, 0, sizeof raw);
			BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
			ECDSA_SIG_free(es);
			memcpy(sig, raw, 64);
			sn = 64;
		}
	}
	EVP_MD_CTX_free(ctx);
	b64url(sig, sn, sigb);
	out[n++] = '.';
	memcpy(out + n, sigb, strlen(sigb) + 1);
	return out;
}

static const char *claims_ok =
	"{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"iat\":1800000000,\"exp\":1800000600}";

static enum err verify(const struct jwt_verifier *v, const char *tok, struct jwt_claims *c, char *why)
{
	why[0] = 0;
	return jwt_verify(v, tok, strlen(tok), NOW, c, why, 160);
}

static enum err one(EVP_PKEY *k, const struct jwt_verifier *v, const char *alg, const char *hdr, const char *cl,
                    char *why)
{
	struct jwt_claims c;
	char *t = make(k, alg, hdr, cl);
	enum err rc = verify(v, t, &c, why);

	free(t);
	return rc;
}

TEST(good_tokens_of_each_algorithm)
{
	struct jwt_claims c;
	char why[160], *t;

	t = make(k_ed, "EdDSA", "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", claims_ok);
	CHECK_EQ_INT(verify(v_ed, t, &c, why), ERR_OK);
	CHECK_EQ_STR(c.sub, "alice");
	CHECK_EQ_INT(c.exp, 1800000600LL);
	free(t);
	t = make(k_ec, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k1\"}", claims_ok);
	CHECK_EQ_INT(verify(v_ec, t, &c, why), ERR_OK);
	CHECK_EQ_STR(c.sub, "alice");
	free(t);
	t = make(k_rsa, "RS256", "{\"alg\":\"RS256\"}", claims_ok);
	CHECK_EQ_INT(verify(v_rsa, t, &c, why), ERR_OK);
	free(t);
	/* aud as an array holding us */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":[\"other\",\"DICOMVAULT\"],"
	                 "\"exp\":1800000300}", why), ERR_OK);
	/* expired 30 s ago: within the skew */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":1799999970}",
	                 why), ERR_OK);
}

TEST(signature_refusals)
{
	struct jwt_claims c;
	char why[160], *t, *dot;

	/* the payload changed after signing */
	{
		char *a = make(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}", claims_ok);
		char *b = make(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
		               "{\"iss\":\"https://idp.example\",\"sub\":\"admin\",\"aud\":\"DICOMVAULT\",\"exp\":1800000600}");
		/* b's header and claims with a's signature */
		dot = strrchr(b, '.');
		t = malloc(strlen(b) + strlen(a));
		memcpy(t, b, (size_t)(dot - b));
		memcpy(t + (dot - b), strrchr(a, '.'), strlen(strrchr(a, '.')) + 1);
		CHECK_EQ_INT(verify(v_ed, t, &c, why), ERR_AUTH);
		CHECK(strstr(why, "signature") != NULL);
		CHECK_EQ_STR(c.sub, "");
		free(a);
		free(b);
		free(t);
	}
	/* signed by another key of the same type */
	{
		EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		CHECK_EQ_INT(one(other, v_ed, "EdDSA", "{\"alg\":\"EdDSA\"}", claims_ok, why), ERR_AUTH);
		EVP_PKEY_free(other);
	}
	/* the right signature for an ES256 key presented to an EdDSA verifier */
	CHECK_EQ_INT(one(k_ec, v_ed, "ES256", "{\"alg\":\"ES256\"}", claims_ok, why), ERR_AUTH);
	CHECK(strstr(why, "algorithm") != NULL);
	/* RS256 key, token claims EdDSA */
	CHECK_EQ_INT(one(k_ed, v_rsa, "EdDSA", "{\"alg\":\"EdDSA\"}", claims_ok, why), ERR_AUTH);
	/* no signature at all, alg none, HMAC */
	CHECK_EQ_INT(one(NULL, v_ed, "none", "{\"alg\":\"none\"}", claims_ok, why), ERR_UNSUPPORTED);
	CHECK_EQ_INT(one(NULL, v_ed, "HS256", "{\"alg\":\"HS256\"}", claims_ok, why), ERR_UNSUPPORTED);
	CHECK_EQ_INT(one(NULL, v_ed, "EdDSA", "{\"alg\":\"EdDSA\"}", claims_ok, why), ERR_AUTH);   /* "sig" */
	/* critical extensions, a typ that is not JWT */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"],\"b64\":false}", claims_ok, why),
	             ERR_UNSUPPORTED);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}", claims_ok, why),
	             ERR_UNSUPPORTED);
}

TEST(claim_refusals)
{
	char why[160];
	const char *h = "{\"alg\":\"EdDSA\"}";

	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://evil.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":1800000600}",
	                 why), ERR_AUTH);
	CHECK(strstr(why, "issuer") != NULL);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"OTHERAE\",\"exp\":1800000600}", why),
	             ERR_AUTH);
	CHECK(strstr(why, "audience") != NULL);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"exp\":1800000600}", why), ERR_AUTH);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":[1,2],\"exp\":1800000600}", why),
	             ERR_AUTH);
	/* expired beyond the skew */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":1799999940}",
	                 why), ERR_AUTH);
	CHECK(strstr(why, "expired") != NULL);
	/* not yet valid, issued in the future */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"nbf\":1800000100,"
	                 "\"exp\":1800000600}", why), ERR_AUTH);
	CHECK(strstr(why, "nbf") != NULL);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"iat\":1800000100,"
	                 "\"exp\":1800000600}", why), ERR_AUTH);
	/* nbf within the skew is fine */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"nbf\":1800000030,"
	                 "\"exp\":1800000600}", why), ERR_OK);
	/* lives a day (maximum 3600 s): refused, with or without iat */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"iat\":1800000000,"
	                 "\"exp\":1800086400}", why), ERR_AUTH);
	CHECK(strstr(why, "longer") != NULL);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":1800086400}",
	                 why), ERR_AUTH);
	/* missing or mistyped claims */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h, "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\"}",
	                 why), ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h, "{\"iss\":\"https://idp.example\",\"aud\":\"DICOMVAULT\",\"exp\":1800000600}",
	                 why), ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"\",\"aud\":\"DICOMVAULT\",\"exp\":1800000600}", why),
	             ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":\"soon\"}", why),
	             ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"aud\":\"DICOMVAULT\",\"exp\":-5}", why),
	             ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"al\\u0000ice\",\"aud\":\"DICOMVAULT\",\"exp\":1800000600}",
	                 why), ERR_PARSE);
	/* a member twice */
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h,
	                 "{\"iss\":\"https://idp.example\",\"sub\":\"alice\",\"sub\":\"admin\",\"aud\":\"DICOMVAULT\","
	                 "\"exp\":1800000600}", why), ERR_PARSE);
	CHECK_EQ_INT(one(k_ed, v_ed, "EdDSA", h, "[1,2,3]", why), ERR_PARSE);
}

TEST(malformed_tokens)
{
	struct jwt_claims c;
	char why[160], *t, *big;
	size_t n;

	CHECK_EQ_INT(verify(v_ed, "", &c, why), ERR_PARSE);
	CHECK_EQ_INT(verify(v_ed, "abc", &c, why), ERR_PARSE);
	CHECK_EQ_INT(verify(v_ed, "a.b", &c, why), ERR_PARSE);
	CHECK_EQ_INT(verify(v_ed, "..", &c, why), ERR_PARSE);
	CHECK_EQ_INT(verify(v_ed, "a.b.c.d.e", &c, why), ERR_PARSE);
	CHECK(strstr(why, "JWE") != NULL);
	CHECK_EQ_INT(verify(v_ed, "e30.e30.", &c, why), ERR_PARSE);   /* empty signature */
	CHECK_EQ_INT(verify(v_ed, "e30=.e30.c2ln", &c, why), ERR_PARSE);   /* padding */
	CHECK_EQ_INT(verify(v_ed, "e3+.e30.c2ln", &c, why), ERR_PARSE);   /* base64, not base64url */
	CHECK_EQ_INT(verify(v_ed, "e31.e30.c2ln", &c, why), ERR_PARSE);   /* non-zero unused bits */
	CHECK_EQ_INT(verify(v_ed, "e.e30.c2ln", &c, why), ERR_PARSE);     /* impossible length */
	CHECK_EQ_INT(verify(v_ed, "e30.e30.c2ln", &c, why), ERR_PARSE);   /* {} has no alg */
	/* a good token with a byte after it, a NUL inside */
	t = make(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}", claims_ok);
	n = strlen(t);
	CHECK(jwt_verify(v_ed, t, n - 1, NOW, &c, why, sizeof why) != ERR_OK);   /* signature shortened */
	CHECK(jwt_verify(v_ed, t, n - 2, NOW, &c, why, sizeof why) != ERR_OK);
	t[n / 2] = 0;
	CHECK(jwt_verify(v_ed, t, n, NOW, &c, why, sizeof why) != ERR_OK);
	free(t);
	/* oversized */
	big = malloc(JWT_MAX_LEN + 2);
	memset(big, 'A', JWT_MAX_LEN + 1);
	big[10] = '.';
	big[20] = '.';
	big[JWT_MAX_LEN + 1] = 0;
	CHECK_EQ_INT(verify(v_ed, big, &c, why), ERR_LIMIT);
	free(big);
	/* why never echoes the token */
	CHECK_EQ_INT(verify(v_ed, "SECRETSECRET.e30.c2ln", &c, why), ERR_PARSE);
	CHECK(strstr(why, "SECRET") == NULL);
}

TEST(keys_refused_and_config)
{
	struct jwt_verifier *v = NULL;
	EVP_PKEY *k;
	char why[160], *pem;
	size_t n;

	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	pem = pub_pem(k, &n);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "i", "a", 60, &v, why, sizeof why), ERR_UNSUPPORTED);
	CHECK(v == NULL);
	free(pem);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	pem = pub_pem(k, &n);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "i", "a", 60, &v, why, sizeof why), ERR_UNSUPPORTED);
	free(pem);
	EVP_PKEY_free(k);
	CHECK_EQ_INT(jwt_verifier_new((const uint8_t *)"not a key", 9, "i", "a", 60, &v, why, sizeof why), ERR_PARSE);
	pem = pub_pem(k_ed, &n);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "", "a", 60, &v, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "i", NULL, 60, &v, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "i", "a", 0, &v, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(jwt_verifier_new((uint8_t *)pem, n, "i", "a", 60, &v, why, sizeof why), ERR_OK);
	jwt_verifier_free(v);
	jwt_verifier_free(NULL);
	free(pem);
}

static struct jwt_verifier *verifier(EVP_PKEY *k)
{
	struct jwt_verifier *v = NULL;
	char why[160], *pem;
	size_t n;

	pem = pub_pem(k, &n);
	if (jwt_verifier_new((uint8_t *)pem, n, "https://idp.example", "DICOMVAULT", 3600, &v, why, sizeof why) != ERR_OK)
		fprintf(stderr, "verifier: %s\n", why);
	free(pem);
	return v;
}

int main(void)
{
	k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	k_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	v_ed = verifier(k_ed);
	v_ec = verifier(k_ec);
	v_rsa = verifier(k_rsa);
	if (v_ed == NULL || v_ec == NULL || v_rsa == NULL) {
		printf("not ok - jwt_keys\n");
		return 1;
	}
	RUN(good_tokens_of_each_algorithm);
	RUN(signature_refusals);
	RUN(claim_refusals);
	RUN(malformed_tokens);
	RUN(keys_refused_and_config);
	jwt_verifier_free(v_ed);
	jwt_verifier_free(v_ec);
	jwt_verifier_free(v_rsa);
	EVP_PKEY_free(k_ed);
	EVP_PKEY_free(k_ec);
	EVP_PKEY_free(k_rsa);
	return TEST_DONE();
}
