/* pwhash.c: user password hashes, Argon2id in the PHC string format
 * ("$argon2id$v=19$m=65536,t=2,p=1$salt$hash") with libsodium's INTERACTIVE
 * limits by default (2 passes, 64 MiB: about 0.15 s per login on one core,
 * and a second factor, TOTP, is required anyway). Layer: crypto. */
#include <string.h>
#include <sodium.h>
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"

#define PREFIX "$argon2id$"

_Static_assert(PWHASH_STR_MAX == crypto_pwhash_argon2id_STRBYTES, "hash string size");

static void limits_get(const struct pwhash_limits *lim, uint64_t *ops, size_t *mem)
{
	if (lim != NULL && lim->opslimit != 0) {
		*ops = lim->opslimit;
		*mem = lim->memlimit;
	} else {
		*ops = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
		*mem = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
	}
}

static enum err limits_ok(uint64_t ops, size_t mem)
{
	if (ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || ops > CRYPTO_PWHASH_MAX_OPS ||
	    mem < crypto_pwhash_argon2id_MEMLIMIT_MIN || mem > CRYPTO_PWHASH_MAX_MEM)
		return ERR_LIMIT;
	return ERR_OK;
}

/* A NUL-terminated string of the Argon2id form, shorter than the maximum. */
static enum err hash_ok(const char *hash)
{
	size_t n = strnlen(hash, PWHASH_STR_MAX);

	if (n == PWHASH_STR_MAX || n < sizeof PREFIX - 1 || memcmp(hash, PREFIX, sizeof PREFIX - 1) != 0)
		return ERR_PARSE;
	return ERR_OK;
}

enum err pwhash_str(const struct secret *pw, const struct pwhash_limits *lim, char out[PWHASH_STR_MAX])
{
	char h[PWHASH_STR_MAX];
	uint64_t ops;
	size_t mem;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	limits_get(lim, &ops, &mem);
	rc = limits_ok(ops, mem);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_LIMIT;
	if (secret_len(pw) > CRYPTO_PASSWORD_MAX)
		goto out;
	rc = ERR_NOMEM;   /* fails only when it cannot allocate */
	if (crypto_pwhash_argon2id_str(h, secret_cstr(pw), secret_len(pw), ops, mem) != 0)
		goto out;
	memcpy(out, h, sizeof h);
	rc = ERR_OK;
out:
	mem_wipe(h, sizeof h);
	return rc;
}

enum err pwhash_verify(const char *hash, const struct secret *pw)
{
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = hash_ok(hash);
	if (rc != ERR_OK)
		return rc;
	if (secret_len(pw) > CRYPTO_PASSWORD_MAX)
		return ERR_AUTH;
	/* -1 for a mismatch, a malformed string or a failed allocation. */
	if (crypto_pwhash_argon2id_str_verify(hash, secret_cstr(pw), secret_len(pw)) != 0)
		return ERR_AUTH;
	return ERR_OK;
}

enum err pwhash_verify_dummy(const struct secret *pw)
{
	static const uint8_t salt[crypto_pwhash_argon2id_SALTBYTES];
	uint8_t out[32];
	size_t n = secret_len(pw);
	enum err rc;
	int r;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	if (n > CRYPTO_PASSWORD_MAX)
		n = CRYPTO_PASSWORD_MAX;
	/* The work of one verification with the default limits; the result
	 * does not matter (out of memory is still a refusal). */
	r = crypto_pwhash(out, sizeof out, secret_cstr(pw), n, salt,
	                  crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
	                  crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE,
	                  crypto_pwhash_argon2id_ALG_ARGON2ID13);
	(void)r;
	mem_wipe(out, sizeof out);
	return ERR_AUTH;
}

enum err pwhash_needs_rehash(const char *hash, const struct pwhash_limits *lim, bool *needs)
{
	uint64_t ops;
	size_t mem;
	enum err rc;
	int r;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = hash_ok(hash);
	if (rc != ERR_OK)
		return rc;
	limits_get(lim, &ops, &mem);
	r = crypto_pwhash_argon2id_str_needs_rehash(hash, ops, mem);
	if (r < 0)
		return ERR_PARSE;
	*needs = r != 0;
	return ERR_OK;
}
