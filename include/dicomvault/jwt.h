/* jwt.h: JSON Web Tokens (RFC 7519, JWS compact serialisation, RFC 7515)
 * as a DICOM user identity (PS3.7 D.3.3.7, User-Identity-Type 5): an
 * identity provider the operator trusts signs a short-lived token whose
 * "sub" names a vault user. Only asymmetric signatures, and only the one
 * algorithm that fits the configured public key (EdDSA for Ed25519, ES256
 * for P-256, RS256 for RSA of 2048 bits or more): "none", HMAC and any
 * other "alg" are refused, so a token cannot choose how it is checked.
 * Claims: "iss" must be the configured issuer, "aud" (a string or an
 * array) must hold the configured audience, "exp" is required, "nbf" and
 * "iat" are honoured, 60 s of clock skew; a token may not live longer
 * than the configured maximum; a "crit" header is refused (we understand
 * no extension). Pure (bytes in, claims out), fuzzed by fuzz/jwt_fuzz.c.
 * Layer: crypto. */
#ifndef DICOMVAULT_JWT_H
#define DICOMVAULT_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"

#define JWT_MAX_LEN      (16u * 1024)   /* a whole token (PDU_MAX_IDENTITY) */
#define JWT_SKEW_SECONDS 60
#define JWT_SUB_MAX      64             /* a vault user name */

enum jwt_alg { JWT_ALG_EDDSA = 1, JWT_ALG_ES256, JWT_ALG_RS256 };

/* What a token says, once its form is checked (not yet its signature). */
struct jwt_claims {
	enum jwt_alg alg;
	char iss[129];
	char sub[JWT_SUB_MAX + 1];
	int64_t exp;               /* required */
	int64_t nbf, iat;          /* 0: absent */
	bool aud_has;              /* the audience asked for is among "aud" */
};

/* Splits and decodes tok (len bytes, the compact form h.p.s): header and
 * claims as above, aud compared with audience (NULL: aud_has false).
 * *sig and *sig_len: the decoded signature (malloc'd, the caller frees);
 * *signed_len: the length of the signed prefix "h.p" of tok.
 * ERR_PARSE (why says what, never echoing the token), ERR_UNSUPPORTED (an
 * algorithm or a critical header we do not accept), ERR_LIMIT (too long),
 * ERR_NOMEM. */
WUR enum err jwt_parse(const char *tok, size_t len, const char *audience, struct jwt_claims *out, uint8_t **sig,
                       size_t *sig_len, size_t *signed_len, char *why, size_t whylen);

struct jwt_verifier;

/* key_pem: the issuer's public key (PEM "PUBLIC KEY", or a certificate);
 * its type sets the one algorithm accepted. issuer and audience are
 * required; max_lifetime (seconds, > 0) bounds exp - (iat, else now). */
WUR enum err jwt_verifier_new(const uint8_t *key_pem, size_t n, const char *issuer, const char *audience,
                              int64_t max_lifetime, struct jwt_verifier **out, char *why, size_t whylen);
void jwt_verifier_free(struct jwt_verifier *v);

/* Checks tok at time now: form, algorithm, signature, issuer, audience,
 * times. ERR_OK: *out holds the claims (out->sub names the user).
 * ERR_AUTH: a well-formed token that is refused (bad signature, wrong
 * issuer or audience, expired, not yet valid, living too long); ERR_PARSE,
 * ERR_UNSUPPORTED, ERR_LIMIT as jwt_parse. why says which, never echoing
 * token bytes. */
WUR enum err jwt_verify(const struct jwt_verifier *v, const char *tok, size_t len, int64_t now,
                        struct jwt_claims *out, char *why, size_t whylen);

#endif
