/* http_routes.c: the routes of the HTTPS listener so far: /healthz, the
 * login flow (/api/auth/login, /logout, /whoami) and the login page.
 * Login bodies are parsed by auth_login_parse() (core/auth_body.c).
 * Layer: daemon. */
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

static enum MHD_Result h_login(struct http_req *r)
{
	struct secret *tok = NULL;
	struct auth_login_req lr;
	struct auth_login in;
	struct auth_session sess;
	int64_t retry = 0, now = (int64_t)time(NULL);
	char detail[128], body[256], cookie[sizeof COOKIE_NAME "=" + AUTH_TOKEN_LEN + sizeof COOKIE_ATTRS], retry_s[24];
	enum MHD_Result q;
	enum err rc;

	memset(&lr, 0, sizeof lr);
	rc = auth_login_parse(r->body, r->len, &lr, detail, sizeof detail);
	if (rc == ERR_PARSE)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, detail, NULL);
	if (rc != ERR_OK)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	memset(&in, 0, sizeof in);
	in.user = lr.user;
	in.user_len = lr.user_len;
	in.password = lr.password;
	in.totp = lr.totp;
	in.totp_len = lr.totp_len;
	in.address = r->addr;
	in.user_agent = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	rc = auth_login(r->srv->auth, &in, now, &tok, &sess, &retry);
	switch (rc) {
	case ERR_OK: {
		const char *extra[] = { MHD_HTTP_HEADER_SET_COOKIE, cookie, NULL };
		int n = snprintf(body, sizeof body, "{\"token\":\"%s\",\"expires_in\":%lld,\"idle_timeout\":%lld}",
		                 secret_cstr(tok), (long long)(sess.expires - now), (long long)(sess.idle_expires - now));
		snprintf(cookie, sizeof cookie, COOKIE_NAME "=%s" COOKIE_ATTRS, secret_cstr(tok));
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
	mem_wipe(body, sizeof body);
	mem_wipe(cookie, sizeof cookie);
	secret_free(tok);
	auth_login_req_fini(&lr);
	return q;
}

static enum MHD_Result h_logout(struct http_req *r)
{
	static const char *const clear[] = { MHD_HTTP_HEADER_SET_COOKIE, COOKIE_NAME "=; Max-Age=0" COOKIE_ATTRS, NULL };
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
	{ "/api/auth/break-glass", "break-glass", "POST", false, false, http_break_glass, false, NULL, NULL, NULL },
	{ "/api/users", "users", "GET, HEAD, POST", false, false, http_users, false, NULL, NULL, NULL },
	{ "/api/grants", "grants", "GET, HEAD, POST", false, false, http_grants, false, NULL, NULL, NULL },
	{ "/api/grants/", "grants", "DELETE", false, false, http_grants, true, NULL, NULL, NULL },
	{ "/api/audit", "audit", "GET, HEAD", false, false, http_audit, false, NULL, NULL, NULL },
	{ "/dicom-web/", "dicomweb", "GET, HEAD, POST", false, false, dicomweb_end, true, dicomweb_begin,
	  dicomweb_body, dicomweb_done },
	{ "/wado", "wado-uri", "GET, HEAD", false, false, dicomweb_wado_uri, false, NULL, NULL, NULL },
	{ NULL, "other", "", false, false, h_none, false, NULL, NULL, NULL },
};
