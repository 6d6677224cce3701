/* sign.c: Ed25519 signatures (crypto_sign_detached) of audit checkpoints:
 * key pairs, from a stored 32-byte seed or fresh, sign and verify.
 * Layer: crypto. */
#include <string.h>
#include <sodium.h>
#include "dicomvault/crypto.h"

_Static_assert(SIGN_PK_LEN == crypto_sign_ed25519_PUBLICKEYBYTES, "public key");
_Static_assert(SIGN_SK_LEN == crypto_sign_ed25519_SECRETKEYBYTES, "secret key");
_Static_assert(SIGN_SEED_LEN == crypto_sign_ed25519_SEEDBYTES, "seed");
_Static_assert(SIGN_SIG_LEN == crypto_sign_ed25519_BYTES, "signature");

enum err sign_keypair_from_seed(const struct secret *seed, uint8_t pk[SIGN_PK_LEN], struct secret **sk)
{
	uint8_t p[SIGN_PK_LEN];
	struct secret *k = NULL;
	enum err rc;

	rc = ERR_INTERNAL;
	if (secret_len(seed) != SIGN_SEED_LEN)
		goto out;
	rc = secret_new(SIGN_SK_LEN, &k);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_INTERNAL;
	if (crypto_sign_ed25519_seed_keypair(p, secret_mut(k), secret_view(seed)) != 0)
		goto out;
	secret_seal(k);
	memcpy(pk, p, sizeof p);
	*sk = k;
	k = NULL;
	rc = ERR_OK;
out:
	secret_free(k);
	return rc;
}

enum err sign_keypair(uint8_t pk[SIGN_PK_LEN], struct secret **sk)
{
	struct secret *seed = NULL;
	enum err rc;

	rc = secret_random(SIGN_SEED_LEN, &seed);
	if (rc != ERR_OK)
		return rc;
	rc = sign_keypair_from_seed(seed, pk, sk);
	secret_free(seed);
	return rc;
}

enum err sign_detached(const struct secret *sk, const void *m, size_t n, uint8_t sig[SIGN_SIG_LEN])
{
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	if (secret_len(sk) != SIGN_SK_LEN)
		return ERR_INTERNAL;
	if (crypto_sign_ed25519_detached(sig, NULL, m, n, secret_view(sk)) != 0)
		return ERR_INTERNAL;
	return ERR_OK;
}

enum err sign_verify(const uint8_t pk[SIGN_PK_LEN], const void *m, size_t n, const uint8_t sig[SIGN_SIG_LEN])
{
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	if (crypto_sign_ed25519_verify_detached(sig, m, n, pk) != 0)
		return ERR_AUTH;
	return ERR_OK;
}
