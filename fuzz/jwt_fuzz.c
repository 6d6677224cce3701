/* jwt_fuzz.c: libFuzzer target for JSON Web Tokens (crypto/jwt.c), the
 * parser a DICOM peer reaches with a type 5 user identity before it is
 * authenticated. The input is parsed (jwt_parse) and verified (jwt_verify)
 * against a fixed Ed25519 key. The target abort()s when
 *  - a result is not one of ERR_OK, ERR_PARSE, ERR_UNSUPPORTED, ERR_LIMIT,
 *    ERR_AUTH (verify only) or ERR_NOMEM;
 *  - a refusal has no reason, or a reason with a byte outside printable
 *    ASCII (reasons are ours, never token bytes);
 *  - an accepted parse gives an empty or unterminated "sub" or "iss", no
 *    "exp", a signature pointer without length (or the reverse), or a
 *    signed prefix that is not the input up to its second dot;
 *  - a refused verify leaves a "sub" behind;
 *  - the same input verifies (no signature of ours can be guessed).
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Ed25519 public key whose private half nobody kept */
static const char key_pem[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MCowBQYDK2VwAyEAl6zjsvk79UaR4jNYHZCVkwzgnUNXccru5EiqNXoQiP0=\n"
	"-----END PUBLIC KEY-----\n";

static void reason_ok(const char *why)
{
	size_t i;

	if (why[0] == 0)
		abort();
	for (i = 0; why[i]; i++)
		if (why[i] < 0x20 || why[i] > 0x7e)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jwt_verifier *v;
	struct jwt_claims c;
	uint8_t *sig = NULL;
	size_t sn = 0, signed_len = 0;
	char why[160];
	const char *d2;
	enum err rc;

	if (v == NULL &&
	    jwt_verifier_new((const uint8_t *)key_pem, sizeof key_pem - 1, "iss", "DICOMVAULT", 3600, &v, why,
	                     sizeof why) != ERR_OK)
		abort();
	why[0] = 0;
	rc = jwt_parse((const char *)data, size, "DICOMVAULT", &c, &sig, &sn, &signed_len, why, sizeof why);
	if (rc == ERR_OK) {
		if (c.sub[0] == 0 || c.iss[0] == 0 || memchr(c.sub, 0, sizeof c.sub) == NULL ||
		    memchr(c.iss, 0, sizeof c.iss) == NULL || c.exp <= 0 || (sig == NULL) != (sn == 0))
			abort();
		d2 = memchr(data, '.', size);
		d2 = d2 != NULL ? memchr(d2 + 1, '.', size - (size_t)(d2 + 1 - (const char *)data)) : NULL;
		if (d2 == NULL || signed_len != (size_t)(d2 - (const char *)data))
			abort();
		free(sig);
	} else if (rc == ERR_PARSE || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT) {
		reason_ok(why);
		if (sig != NULL)
			abort();
	} else if (rc != ERR_NOMEM) {
		abort();
	}
	why[0] = 0;
	rc = jwt_verify(v, (const char *)data, size, 1800000000LL, &c, why, sizeof why);
	if (rc == ERR_OK)
		abort();
	if (rc == ERR_NOMEM)
		return 0;
	if (rc != ERR_AUTH && rc != ERR_PARSE && rc != ERR_UNSUPPORTED && rc != ERR_LIMIT)
		abort();
	reason_ok(why);
	if (rc == ERR_AUTH && c.sub[0] != 0)
		abort();
	return 0;
}
