/* hash.c: SHA-256 for fixity values (the checksum of an object's plaintext
 * that scrub, migration and export verify). Layer: crypto. */
#include <sodium.h>
#include <stdlib.h>
#include "dicomvault/crypto.h"

struct sha256 {
	crypto_hash_sha256_state st;
};

enum err sha256_new(struct sha256 **h)
{
	enum err rc = crypto_init();

	if (rc != ERR_OK)
		return rc;
	*h = malloc(sizeof **h);
	if (*h == NULL)
		return ERR_NOMEM;
	crypto_hash_sha256_init(&(*h)->st);
	return ERR_OK;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	crypto_hash_sha256_update(&h->st, p, n);
}

void sha256_final(struct sha256 *h, uint8_t out[32])
{
	crypto_hash_sha256_final(&h->st, out);
	free(h);
}

void sha256_free(struct sha256 *h)
{
	free(h);
}

void sha256_once(const void *p, size_t n, uint8_t out[32])
{
	crypto_hash_sha256(out, p, n);
}
