/* http_routes.c: the routes of the HTTPS listener so far: /healthz, the
 * login flow (/api/auth/login, /logout, /whoami) and the login page.
 * Login bodies are parsed with Jansson after a depth pre-pass, with every
 * member's presence and type checked; the password and code become
 * secrets and Jansson's copies are wiped. Layer: daemon. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "http_int.h"

#define LOGIN_FAILED "invalid user name, password or TOTP code"
#define COOKIE_ATTRS "; HttpOnly; Secure; SameSite=Strict; Path=/"

static enum MHD_Result h_healthz(struct http_req *r)
{
	static const char body[] = "{\"status\":\"ok\"}";

	return http_send(r, MHD_HTTP_OK, "application/json", body, sizeof body - 1, 0, NULL);
}

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

static enum MHD_Result h_login(struct http_req *r)
{
	static const char *const members[] = { "username", "password", "totp" };
	const char *user, *pw, *code, *key, *bad = NULL, *badkey = NULL;
	size_t ulen = 0, pwlen = 0, codelen = 0, i;
	struct secret *pass = NULL, *tok = NULL;
	struct auth_login in;
	struct auth_session sess;
	json_error_t jerr;
	json_t *root = NULL, *v;
	int64_t retry = 0, now = (int64_t)time(NULL);
	char detail[128], body[256], cookie[AUTH_TOKEN_LEN + 64], retry_s[24];
	enum MHD_Result q;
	enum err rc;

	if (r->len == 0 || !depth_ok(r->body, r->len, HTTP_JSON_MAX_DEPTH))
		return http_problem(r, MHD_HTTP_BAD_REQUEST, r->len ? "the JSON body is nested too deeply"
		                                                    : "a JSON body is required", NULL);
	root = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jerr.text may quote the input: only the position is told */
		snprintf(detail, sizeof detail, "malformed JSON at line %d, column %d", jerr.line, jerr.column);
		return http_problem(r, MHD_HTTP_BAD_REQUEST, detail, NULL);
	}
	if (!json_is_object(root)) {
		q = http_problem(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object", NULL);
		goto out;
	}
	json_object_foreach(root, key, v) {
		bool known = false;
		for (i = 0; i < sizeof members / sizeof members[0]; i++)
			known = known || strcmp(key, members[i]) == 0;
		if (!known) {
			q = http_problem(r, MHD_HTTP_BAD_REQUEST,
			                 "unexpected member: only username, password and totp are allowed", NULL);
			goto out;
		}
	}
	user = str_member(root, badkey = "username", HTTP_LOGIN_MAX_FIELD, &ulen, &bad);
	pw = user ? str_member(root, badkey = "password", CRYPTO_PASSWORD_MAX, &pwlen, &bad) : NULL;
	code = pw ? str_member(root, badkey = "totp", 16, &codelen, &bad) : NULL;
	if (code == NULL) {
		snprintf(detail, sizeof detail, "member \"%s\": %s", badkey, bad ? bad : "invalid");
		q = http_problem(r, MHD_HTTP_BAD_REQUEST, detail, NULL);
		goto out;
	}
	rc = secret_from_bytes(pw, pwlen, &pass);
	if (rc != ERR_OK) {
		q = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
		goto out;
	}
	memset(&in, 0, sizeof in);
	in.user = user;
	in.user_len = ulen;
	in.password = pass;
	in.totp = code;
	in.totp_len = codelen;
	in.address = r->addr;
	in.user_agent = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	rc = auth_login(r->srv->auth, &in, now, &tok, &sess, &retry);
	switch (rc) {
	case ERR_OK: {
		const char *extra[] = { MHD_HTTP_HEADER_SET_COOKIE, cookie, NULL };
		int n = snprintf(body, sizeof body, "{\"token\":\"%s\",\"expires_in\":%lld,\"idle_timeout\":%lld}",
		                 secret_cstr(tok), (long long)(sess.expires - now), (long long)(sess.idle_expires - now));
		snprintf(cookie, sizeof cookie, "dv_session=%s" COOKIE_ATTRS, secret_cstr(tok));
		q = n > 0 && (size_t)n < sizeof body
		        ? http_send(r, MHD_HTTP_OK, "application/json", body, (size_t)n, 0, extra)
		        : MHD_NO;
		break;
	}
	case ERR_AUTH:
		q = http_problem(r, MHD_HTTP_UNAUTHORIZED, LOGIN_FAILED, NULL);
		break;
	case ERR_DENIED: {
		const char *extra[] = { MHD_HTTP_HEADER_RETRY_AFTER, retry_s, NULL };
		snprintf(retry_s, sizeof retry_s, "%lld", (long long)retry);
		q = http_problem(r, MHD_HTTP_TOO_MANY_REQUESTS, "too many failed logins: try again later", extra);
		break;
	}
	case ERR_LIMIT: {
		const char *extra[] = { MHD_HTTP_HEADER_RETRY_AFTER, "5", NULL };
		q = http_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many logins in progress: try again shortly", extra);
		break;
	}
	default:
		log_error("login from %s: %s", r->addr, err_str(rc));
		q = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
		break;
	}
out:
	mem_wipe(body, sizeof body);
	mem_wipe(cookie, sizeof cookie);
	secret_free(tok);
	secret_free(pass);
	wipe_member(root, "password");
	wipe_member(root, "totp");
	json_decref(root);
	return q;
}

static enum MHD_Result h_logout(struct http_req *r)
{
	static const char *const clear[] = { MHD_HTTP_HEADER_SET_COOKIE, "dv_session=; Max-Age=0" COOKIE_ATTRS, NULL };
	enum err rc;

	rc = auth_logout(r->srv->auth, r->token, r->token_len, (int64_t)time(NULL), r->addr,
	                 MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT));
	if (rc == ERR_AUTH)
		return http_problem(r, MHD_HTTP_UNAUTHORIZED, "authentication required", NULL);
	if (rc == ERR_DENIED)
		return http_problem(r, MHD_HTTP_FORBIDDEN, "an API token is not logged out: revoke it with "
		                    "'dicomvault token revoke ID'", NULL);
	if (rc != ERR_OK) {
		log_error("logout from %s: %s", r->addr, err_str(rc));
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	return http_send(r, MHD_HTTP_NO_CONTENT, NULL, "", 0, 0, clear);
}

static enum MHD_Result h_whoami(struct http_req *r)
{
	char body[256] = "{\"username\":";

	if (!http_json_str(body, sizeof body, r->sess.user) || strlen(body) + 10 >= sizeof body)
		return MHD_NO;
	strncat(body, ",\"role\":", sizeof body - strlen(body) - 1);
	if (!http_json_str(body, sizeof body, r->sess.role) || strlen(body) + 2 >= sizeof body)
		return MHD_NO;
	strncat(body, "}", sizeof body - strlen(body) - 1);
	return http_send(r, MHD_HTTP_OK, "application/json", body, strlen(body), 0, NULL);
}

static enum MHD_Result h_none(struct http_req *r)
{
	return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
}

/* Exact paths (or prefixes, DICOMweb); the last entry (path NULL) is every other path: it needs a
 * session, then is 404. */
const struct http_route http_routes[] = {
	{ "/", "page", "GET, HEAD", true, false, http_page_login, false, NULL, NULL, NULL },
	{ "/static/login.js", "static", "GET, HEAD", true, false, http_page_login_js, false, NULL, NULL, NULL },
	{ "/static/login.css", "static", "GET, HEAD", true, false, http_page_login_css, false, NULL, NULL, NULL },
	{ "/healthz", "healthz", "GET, HEAD", true, false, h_healthz, false, NULL, NULL, NULL },
	{ "/api/auth/login", "login", "POST", true, true, h_login, false, NULL, NULL, NULL },
	{ "/api/auth/logout", "logout", "POST", false, false, h_logout, false, NULL, NULL, NULL },
	{ "/api/auth/whoami", "whoami", "GET, HEAD", false, false, h_whoami, false, NULL, NULL, NULL },
	{ "/dicom-web/", "dicomweb", "GET, HEAD, POST", false, false, dicomweb_end, true, dicomweb_begin,
	  dicomweb_body, dicomweb_done },
	{ "/wado", "wado-uri", "GET, HEAD", false, false, dicomweb_wado_uri, false, NULL, NULL, NULL },
	{ NULL, "other", "", false, false, h_none, false, NULL, NULL, NULL },
};
