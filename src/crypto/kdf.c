/* kdf.c: HKDF-SHA-256 (RFC 5869) and HMAC-SHA-256 keyed hashes, on
 * libsodium's crypto_auth_hmacsha256 (libsodium 1.0.18, Debian 12, has no
 * crypto_kdf_hkdf_sha256). Layer: crypto. */
#include <string.h>
#include <sodium.h>
#include "dicomvault/crypto.h"

_Static_assert(KDF_HMAC_SHA256_LEN == crypto_auth_hmacsha256_BYTES, "HMAC-SHA-256 size");

enum err kdf_hkdf_sha256(const struct secret *ikm, const void *salt, size_t saltlen,
                         const void *info, size_t infolen, void *out, size_t outlen)
{
	static const uint8_t zero_salt[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	uint8_t prk[crypto_auth_hmacsha256_BYTES];
	uint8_t t[crypto_auth_hmacsha256_BYTES];
	uint8_t *o = out;
	size_t done = 0, tlen = 0;
	unsigned i;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = ERR_LIMIT;
	if (outlen == 0 || outlen > 255u * sizeof t)
		goto out;
	/* Extract: PRK = HMAC(salt, IKM); no salt means HashLen zero bytes. */
	if (saltlen == 0) {
		salt = zero_salt;
		saltlen = sizeof zero_salt;
	}
	rc = ERR_INTERNAL;
	if (crypto_auth_hmacsha256_init(&st, salt, saltlen) != 0 ||
	    crypto_auth_hmacsha256_update(&st, secret_view(ikm), secret_len(ikm)) != 0 ||
	    crypto_auth_hmacsha256_final(&st, prk) != 0)
		goto out;
	/* Expand: T(i) = HMAC(PRK, T(i-1) || info || i). */
	for (i = 1; done < outlen; i++) {
		uint8_t c = (uint8_t)i;
		size_t n;

		if (crypto_auth_hmacsha256_init(&st, prk, sizeof prk) != 0 ||
		    crypto_auth_hmacsha256_update(&st, t, tlen) != 0 ||
		    crypto_auth_hmacsha256_update(&st, info, infolen) != 0 ||
		    crypto_auth_hmacsha256_update(&st, &c, 1) != 0 ||
		    crypto_auth_hmacsha256_final(&st, t) != 0)
			goto out;
		tlen = sizeof t;
		n = outlen - done < sizeof t ? outlen - done : sizeof t;
		memcpy(o + done, t, n);
		done += n;
	}
	rc = ERR_OK;
out:
	if (rc != ERR_OK && outlen > 0 && outlen <= 255u * sizeof t)
		mem_wipe(out, outlen);
	mem_wipe(&st, sizeof st);
	mem_wipe(prk, sizeof prk);
	mem_wipe(t, sizeof t);
	return rc;
}

enum err kdf_hmac_sha256(const struct secret *key, const void *m, size_t n,
                         uint8_t out[KDF_HMAC_SHA256_LEN])
{
	crypto_auth_hmacsha256_state st;
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = ERR_INTERNAL;
	if (crypto_auth_hmacsha256_init(&st, secret_view(key), secret_len(key)) != 0 ||
	    crypto_auth_hmacsha256_update(&st, m, n) != 0 ||
	    crypto_auth_hmacsha256_final(&st, mac) != 0)
		goto out;
	memcpy(out, mac, sizeof mac);
	rc = ERR_OK;
out:
	mem_wipe(&st, sizeof st);
	mem_wipe(mac, sizeof mac);
	return rc;
}
