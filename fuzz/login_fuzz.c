/* login_fuzz.c: libFuzzer target for the login body parser
 * (auth_login_parse, core/auth_body.c), the one parser a client reaches
 * before authenticating. The target abort()s when
 *  - the result is neither ERR_OK, ERR_PARSE nor ERR_NOMEM;
 *  - a refusal has no detail, or a detail with a byte outside printable
 *    ASCII (details are ours, never input bytes);
 *  - an accepted body gives a field that is empty, too long, holds a NUL,
 *    or a password that is not a sealed secret of its length.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/auth.h"
#include "dicomvault/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_login_req r;
	char detail[128];
	size_t i;
	enum err rc;

	memset(detail, 0, sizeof detail);
	rc = auth_login_parse(data, size, &r, detail, sizeof detail);
	if (rc == ERR_NOMEM)
		return 0;
	if (rc == ERR_PARSE) {
		if (detail[0] == 0)
			abort();
		for (i = 0; detail[i]; i++)
			if (detail[i] < 0x20 || detail[i] > 0x7e)
				abort();
		return 0;
	}
	if (rc != ERR_OK)
		abort();
	if (r.user_len == 0 || r.user_len > HTTP_LOGIN_MAX_FIELD || strlen(r.user) != r.user_len)
		abort();
	if (r.totp_len == 0 || r.totp_len > 16 || strlen(r.totp) != r.totp_len)
		abort();
	if (r.password == NULL || secret_len(r.password) == 0 || secret_len(r.password) > CRYPTO_PASSWORD_MAX ||
	    strlen(secret_cstr(r.password)) != secret_len(r.password))
		abort();
	auth_login_req_fini(&r);
	return 0;
}
