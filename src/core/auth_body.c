/* auth_body.c: the login request body (POST /api/auth/login) parsed into
 * its three fields. Pure (bytes in, fields or an error out: no I/O, no
 * globals), so that it can be fuzzed (fuzz/login_fuzz.c). A pre-pass
 * rejects deep nesting before Jansson (whose parser recurses) sees the
 * bytes; Jansson then rejects duplicate members, "\u0000" and trailing
 * data. Error details never quote the input (Jansson's messages do, so
 * only its line and column are used). Layer: core. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "dicomvault/auth.h"
#include "dicomvault/limits.h"

_Static_assert(sizeof(((struct auth_login_req *)0)->user) == HTTP_LOGIN_MAX_FIELD + 1, "auth_login_req user size");

#define TOTP_FIELD_MAX 16u

/* Nesting depth of a JSON text, outside strings; beyond max: false. */
static bool depth_ok(const uint8_t *p, size_t n, unsigned max)
{
	unsigned depth = 0;
	bool in_str = false, esc = false;
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return false;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

/* A string member of at most max bytes, without NUL; *bad names the
 * problem otherwise. */
static const char *str_member(json_t *o, const char *key, size_t max, size_t *len, const char **bad)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	if (v == NULL) {
		*bad = "missing";
		return NULL;
	}
	if (!json_is_string(v)) {
		*bad = "not a string";
		return NULL;
	}
	s = json_string_value(v);
	*len = json_string_length(v);
	if (*len == 0 || *len > max || strlen(s) != *len) {
		*bad = "empty or too long";
		return NULL;
	}
	return s;
}

/* Wipes a string Jansson holds (it is ours until the decref). */
static void wipe_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (v != NULL && json_is_string(v))
		mem_wipe((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

static enum err why(char *detail, size_t n, const char *msg)
{
	if (detail != NULL && n > 0)
		snprintf(detail, n, "%s", msg);
	return ERR_PARSE;
}

enum err auth_login_parse(const uint8_t *body, size_t n, struct auth_login_req *out, char *detail, size_t detaillen)
{
	static const char *const members[] = { "username", "password", "totp" };
	const char *user, *pw, *code, *key, *bad = NULL, *badkey = NULL;
	size_t ulen = 0, pwlen = 0, codelen = 0, i;
	struct auth_login_req r;
	json_error_t jerr;
	json_t *root = NULL, *v;
	enum err rc;

	memset(&r, 0, sizeof r);
	if (body == NULL || n == 0)
		return why(detail, detaillen, "a JSON body is required");
	if (!depth_ok(body, n, HTTP_JSON_MAX_DEPTH))
		return why(detail, detaillen, "the JSON body is nested too deeply");
	root = json_loadb((const char *)body, n, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jerr.text may quote the input: only the position is told */
		if (detail != NULL && detaillen > 0)
			snprintf(detail, detaillen, "malformed JSON at line %d, column %d", jerr.line, jerr.column);
		return ERR_PARSE;
	}
	rc = ERR_PARSE;
	if (!json_is_object(root)) {
		why(detail, detaillen, "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		bool known = false;
		for (i = 0; i < sizeof members / sizeof members[0]; i++)
			known = known || strcmp(key, members[i]) == 0;
		if (!known) {
			why(detail, detaillen, "unexpected member: only username, password and totp are allowed");
			goto out;
		}
	}
	user = str_member(root, badkey = "username", HTTP_LOGIN_MAX_FIELD, &ulen, &bad);
	pw = user ? str_member(root, badkey = "password", CRYPTO_PASSWORD_MAX, &pwlen, &bad) : NULL;
	code = pw ? str_member(root, badkey = "totp", TOTP_FIELD_MAX, &codelen, &bad) : NULL;
	if (code == NULL) {
		if (detail != NULL && detaillen > 0)
			snprintf(detail, detaillen, "member \"%s\": %s", badkey, bad ? bad : "invalid");
		goto out;
	}
	rc = secret_from_bytes(pw, pwlen, &r.password);
	if (rc != ERR_OK)
		goto out;
	memcpy(r.user, user, ulen);
	r.user_len = ulen;
	memcpy(r.totp, code, codelen);
	r.totp_len = codelen;
	*out = r;
	rc = ERR_OK;
out:
	wipe_member(root, "password");
	wipe_member(root, "totp");
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
