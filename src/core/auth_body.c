/* auth_body.c: the login request body (POST /api/auth/login) parsed into
 * its three fields. Pure (bytes in, fields or an error out: no I/O, no
 * globals), so that it can be fuzzed (fuzz/login_fuzz.c). The JSON is read
 * by jbody_object (jbody.c: nesting checked first, no duplicates, no
 * trailing data, details that never quote the input). Layer: core. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "dicomvault/auth.h"
#include "dicomvault/jbody.h"
#include "dicomvault/limits.h"

_Static_assert(sizeof(((struct auth_login_req *)0)->user) == HTTP_LOGIN_MAX_FIELD + 1, "auth_login_req user size");

#define TOTP_FIELD_MAX 16u

enum err auth_login_parse(const uint8_t *body, size_t n, struct auth_login_req *out, char *detail, size_t detaillen)
{
	static const char *const members[] = { "username", "password", "totp", NULL };
	const char *user = NULL, *pw = NULL, *code = NULL;
	size_t ulen = 0, pwlen = 0, codelen = 0;
	struct auth_login_req r;
	json_t *root = NULL;
	enum err rc;

	memset(&r, 0, sizeof r);
	rc = jbody_object(body, n, members, &root, detail, detaillen);
	if (rc != ERR_OK)
		return rc;
	rc = jbody_str(root, "username", 1, HTTP_LOGIN_MAX_FIELD, false, &user, &ulen, detail, detaillen);
	if (rc == ERR_OK)
		rc = jbody_str(root, "password", 1, CRYPTO_PASSWORD_MAX, false, &pw, &pwlen, detail, detaillen);
	if (rc == ERR_OK)
		rc = jbody_str(root, "totp", 1, TOTP_FIELD_MAX, false, &code, &codelen, detail, detaillen);
	if (rc == ERR_OK)
		rc = secret_from_bytes(pw, pwlen, &r.password);
	if (rc != ERR_OK)
		goto out;
	memcpy(r.user, user, ulen);
	r.user_len = ulen;
	memcpy(r.totp, code, codelen);
	r.totp_len = codelen;
	*out = r;
out:
	jbody_wipe(root, "password");
	jbody_wipe(root, "totp");
	json_decref(root);
	return rc;
}

void auth_login_req_fini(struct auth_login_req *r)
{
	if (r == NULL)
		return;
	secret_free(r->password);
	mem_wipe(r, sizeof *r);
}
