/* hash.c: SHA-256 for fixity values (the checksum of an object's plaintext
 * that scrub, migration and export verify). Through GnuTLS (nettle), which
 * uses the CPU's SHA extensions (SHA-NI) when it has them; libsodium's
 * SHA-256 is portable C, 3-5x slower on such CPUs. Same digests.
 * Layer: crypto. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include "dicomvault/crypto.h"

struct sha256 {
	gnutls_hash_hd_t h;
};

enum err sha256_new(struct sha256 **h)
{
	struct sha256 *x;
	enum err rc = crypto_init();

	if (rc != ERR_OK)
		return rc;
	x = malloc(sizeof *x);
	if (x == NULL)
		return ERR_NOMEM;
	if (gnutls_hash_init(&x->h, GNUTLS_DIG_SHA256) < 0) {
		free(x);
		return ERR_NOMEM;   /* its only failure: an allocation */
	}
	*h = x;
	return ERR_OK;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	/* cannot fail for SHA-256 (nettle's update has no error path) */
	(void)gnutls_hash(h->h, p, n);
}

void sha256_final(struct sha256 *h, uint8_t out[32])
{
	gnutls_hash_deinit(h->h, out);
	free(h);
}

void sha256_free(struct sha256 *h)
{
	if (h == NULL)
		return;
	gnutls_hash_deinit(h->h, NULL);
	free(h);
}

void sha256_once(const void *p, size_t n, uint8_t out[32])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) < 0)
		abort();   /* broken invariant: SHA-256 is always available */
}
