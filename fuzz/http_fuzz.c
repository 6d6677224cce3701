/* http_fuzz.c: libFuzzer target for what the HTTPS server does with a
 * request's bytes before it knows who is asking (daemon/http.c): the
 * percent-decoding of path and arguments (http_unescape), the token taken
 * from "Authorization: Bearer" or the session cookie (http_token_of), the
 * CSRF origin check (http_same_origin) and the JSON content type
 * (http_json_ctype). Input: newline-separated fields: path, Authorization
 * ("-" absent), cookie ("-" absent), method, Origin, Sec-Fetch-Site, Host,
 * Content-Type ("-" absent each). abort()s when
 *   - decoding lengthens the string, puts a NUL in it, changes a string
 *     without '%', or decodes "%00";
 *   - a token is found outside the header or cookie it came from, is
 *     empty, keeps spaces around it, is found under another scheme than
 *     Bearer, or comes from the cookie when there is an Authorization;
 *   - a state-changing cookie request passes the origin check with an
 *     Origin that is not https://HOST, or a GET, HEAD or bearer request
 *     fails it;
 *   - a content type is taken for JSON that is not application/json
 *     (any case) alone or followed by ';' or ' ', or the reverse.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "../src/daemon/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NF 8

static void unescape_check(const char *in)
{
	size_t n = strlen(in), o;
	char *s = strdup(in);

	if (s == NULL)
		return;
	o = http_unescape(s);
	if (o > n || strlen(s) != o || (strchr(in, '%') == NULL && strcmp(s, in) != 0))
		abort();
	if (strstr(in, "%00") != NULL && strstr(s, "%00") == NULL)
		abort();   /* "%00" decoded: no escape before it can take its '%' */
	free(s);
}

static void token_check(const char *auth, const char *cookie)
{
	const char *tok = NULL, *src = auth != NULL ? auth : cookie;
	size_t n = 0;
	bool ok = http_token_of(auth, auth != NULL ? NULL : cookie, &tok, &n);

	if (!ok)
		return;
	if (src == NULL || tok == NULL || n == 0 || tok < src || tok + n > src + strlen(src))
		abort();
	if (auth != NULL && (strncasecmp(auth, "Bearer ", 7) != 0 || tok[0] == ' ' || tok[n - 1] == ' '))
		abort();
}

static void origin_check(const char *method, const char *origin, const char *site, const char *host)
{
	bool cookie = http_same_origin(method, true, origin, site, host);

	if (!http_same_origin(method, false, origin, site, host))
		abort();   /* a bearer token is not sent by a browser on its own */
	if ((strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) && !cookie)
		abort();
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && origin != NULL &&
	    cookie != (host != NULL && strncmp(origin, "https://", 8) == 0 && strcmp(origin + 8, host) == 0))
		abort();
}

static void ctype_check(const char *ct)
{
	bool want = ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
	            (ct[16] == 0 || ct[16] == ';' || ct[16] == ' ');

	if (http_json_ctype(ct) != want)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[NF], *p;
	const char *v[NF];
	size_t i;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	if (strlen(buf) != size) {   /* headers hold no NUL */
		free(buf);
		return 0;
	}
	p = buf;
	for (i = 0; i < NF; i++) {
		f[i] = p;
		p = p != NULL ? strchr(p, '\n') : NULL;
		if (p != NULL)
			*p++ = 0;
		v[i] = f[i] != NULL && strcmp(f[i], "-") != 0 ? f[i] : NULL;
	}
	unescape_check(f[0]);
	token_check(v[1], v[2]);
	origin_check(f[3] != NULL ? f[3] : "POST", v[4], v[5], v[6]);
	ctype_check(v[7]);
	free(buf);
	return 0;
}
