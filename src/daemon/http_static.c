/* http_static.c: the login page and its script and style, compiled in.
 * No external resource and no inline script or style, so the page works
 * under Content-Security-Policy default-src 'self'. The script posts JSON
 * to /api/auth/login; the session lives in the HttpOnly cookie only (the
 * script never stores the token). Layer: daemon. */
#include "http_int.h"

static const char login_html[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\">\n"
	"<head>\n"
	"<meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>dicomvault</title>\n"
	"<link rel=\"stylesheet\" href=\"/static/login.css\">\n"
	"<script src=\"/static/login.js\" defer></script>\n"
	"</head>\n"
	"<body>\n"
	"<main>\n"
	"<h1>dicomvault</h1>\n"
	"<form id=\"login\" autocomplete=\"on\">\n"
	"<label>User name <input name=\"username\" autocomplete=\"username\" required maxlength=\"64\"></label>\n"
	"<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n"
	"<label>TOTP code <input name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\""
	" maxlength=\"6\" required></label>\n"
	"<button type=\"submit\">Sign in</button>\n"
	"</form>\n"
	"<section id=\"session\" hidden>\n"
	"<p>Signed in as <b id=\"who\"></b> (<span id=\"role\"></span>).</p>\n"
	"<button id=\"logout\" type=\"button\">Sign out</button>\n"
	"</section>\n"
	"<p id=\"message\" role=\"alert\"></p>\n"
	"</main>\n"
	"</body>\n"
	"</html>\n";

static const char login_js[] =
	"'use strict';\n"
	"(function () {\n"
	"  const $ = (id) => document.getElementById(id);\n"
	"  const say = (text) => { $('message').textContent = text; };\n"
	"  async function whoami() {\n"
	"    const r = await fetch('/api/auth/whoami', { credentials: 'same-origin' });\n"
	"    if (!r.ok) { $('login').hidden = false; $('session').hidden = true; return; }\n"
	"    const me = await r.json();\n"
	"    $('who').textContent = me.username;\n"
	"    $('role').textContent = me.role;\n"
	"    $('login').hidden = true;\n"
	"    $('session').hidden = false;\n"
	"  }\n"
	"  document.addEventListener('DOMContentLoaded', () => {\n"
	"    $('login').addEventListener('submit', async (ev) => {\n"
	"      ev.preventDefault();\n"
	"      const f = ev.target;\n"
	"      const body = JSON.stringify({ username: f.username.value, password: f.password.value,\n"
	"                                    totp: f.totp.value });\n"
	"      f.password.value = '';\n"
	"      f.totp.value = '';\n"
	"      say('');\n"
	"      const r = await fetch('/api/auth/login', { method: 'POST', credentials: 'same-origin',\n"
	"        headers: { 'Content-Type': 'application/json' }, body: body });\n"
	"      if (r.ok) { await whoami(); return; }\n"
	"      let p = null;\n"
	"      try { p = await r.json(); } catch (e) { p = null; }\n"
	"      say(p && p.detail ? p.detail : 'Sign-in failed (' + r.status + ')');\n"
	"    });\n"
	"    $('logout').addEventListener('click', async () => {\n"
	"      await fetch('/api/auth/logout', { method: 'POST', credentials: 'same-origin' });\n"
	"      say('Signed out.');\n"
	"      await whoami();\n"
	"    });\n"
	"    whoami();\n"
	"  });\n"
	"})();\n";

static const char login_css[] =
	"body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; }\n"
	"main { max-width: 22rem; margin: 4rem auto; padding: 2rem; background: #fff; border-radius: 8px;\n"
	"       box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }\n"
	"label { display: block; margin: .8rem 0; }\n"
	"input { display: block; width: 100%; box-sizing: border-box; padding: .4rem; margin-top: .2rem; }\n"
	"button { padding: .5rem 1.2rem; }\n"
	"#message { color: #a32020; min-height: 1.2em; }\n";

enum MHD_Result http_page_login(struct http_req *r)
{
	return http_send(r, MHD_HTTP_OK, "text/html; charset=utf-8", login_html, sizeof login_html - 1, HTTP_R_HTML,
	                 NULL);
}

enum MHD_Result http_page_login_js(struct http_req *r)
{
	return http_send(r, MHD_HTTP_OK, "text/javascript; charset=utf-8", login_js, sizeof login_js - 1, 0, NULL);
}

enum MHD_Result http_page_login_css(struct http_req *r)
{
	return http_send(r, MHD_HTTP_OK, "text/css; charset=utf-8", login_css, sizeof login_css - 1, 0, NULL);
}
