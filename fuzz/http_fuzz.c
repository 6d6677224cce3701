/* http_fuzz.c: libFuzzer target for what the HTTPS server does with a
 * request's bytes before it knows who is asking (daemon/http.c): the
 * percent-decoding of path and arguments (http_unescape), the token taken
 * from "Authorization: Bearer" or the session cookie (http_token_of), the
 * CSRF origin check (http_same_origin) and the JSON content type
 * (http_json_ctype), the DICOMweb routes (dw_split, dw_route_of,
 * wado_route_of) of the decoded path, and the listen address of the
 * configuration (http_listen_split). Input: newline-separated fields:
 * path, Authorization ("-" absent), cookie ("-" absent), method, Origin,
 * Sec-Fetch-Site, Host, Content-Type ("-" absent each), listen address
 * (absent: not checked), an X-Forwarded-For value and a trusted_proxies
 * list (http_xff_last, http_proxies_ok; absent: not checked). abort()s
 * when
 *   - decoding lengthens the string, puts a NUL in it, changes a string
 *     without '%', or decodes "%00";
 *   - a token is found outside the header or cookie it came from, is
 *     empty, keeps spaces around it, is found under another scheme than
 *     Bearer, or comes from the cookie when there is an Authorization;
 *   - a state-changing cookie request passes the origin check with an
 *     Origin that is not https://HOST, or a GET, HEAD or bearer request
 *     fails it;
 *   - a content type is taken for JSON that is not application/json
 *     (any case) alone or followed by ';' or ' ', or the reverse;
 *   - the path's segments are not the pieces between its slashes, in
 *     order (more than DW_MAX_SEGS only with too_many);
 *   - a route is given to a path that is not its shape: a store not a POST
 *     to /studies[/{study}], a search not under studies, series or
 *     instances, a retrieval not under /studies/{study};
 *   - a retrieval's UIDs are not its path's UID segments, or not valid,
 *     or its kind does not fit its segments (frames and bulk data of an
 *     instance with their list or path, metadata, rendered, thumbnail);
 *   - an accepted listen address is not HOST:PORT or [HOST]:PORT put
 *     back together, or its port is not 1 to 5 digits up to 65535;
 *   - the client taken from X-Forwarded-For is not an address in its
 *     canonical form, or not the field's last comma-separated piece;
 *   - a proxies list is accepted with an empty piece, more than
 *     HTTP_PROXIES_MAX pieces, or a piece that is not an address.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include "dicomvault/http.h"
#include "dicomvault/vr.h"
#include "../src/daemon/http_int.h"
#include "../src/daemon/wado_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NF 11

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

static bool seg_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static void wado_check(const char *const seg[], const size_t len[], size_t n)
{
	struct wado_route rt;
	size_t i;

	wado_route_of(seg, len, n, &rt);
	if (rt.k == WADO_K_NONE || rt.k == WADO_K_BAD_UID) {
		if (rt.nuid != 0)
			abort();
		return;
	}
	if (rt.nuid < 1 || rt.nuid > 3 || rt.n != n || n < 2 * rt.nuid)
		abort();
	for (i = 0; i < rt.nuid; i++)
		if (!seg_is(seg[1 + 2 * i], len[1 + 2 * i], rt.uid[i]) || !vr_uid_ok(rt.uid[i], strlen(rt.uid[i])) ||
		    (i > 0 && !seg_is(seg[2 * i], len[2 * i], i == 1 ? "series" : "instances")))
			abort();
	for (; i < 3; i++)
		if (rt.uid[i][0] != 0)
			abort();
	switch (rt.k) {
	case WADO_K_DICOM:
		if (n != 2 * rt.nuid)
			abort();
		break;
	case WADO_K_METADATA:
		if (n != 2 * rt.nuid + 1 || !seg_is(seg[n - 1], len[n - 1], "metadata"))
			abort();
		break;
	case WADO_K_FRAMES:
	case WADO_K_BULK:
		if (rt.nuid != 3 || n != 8 || rt.arg != seg[7] || rt.arglen != len[7] ||
		    !seg_is(seg[6], len[6], rt.k == WADO_K_FRAMES ? "frames" : "bulkdata"))
			abort();
		break;
	case WADO_K_RENDERED:
	case WADO_K_THUMBNAIL:
		if (!seg_is(seg[n - 1], len[n - 1], rt.k == WADO_K_RENDERED ? "rendered" : "thumbnail") ||
		    !(n == 2 * rt.nuid + 1 || (n == 9 && rt.arg == seg[7] && rt.arglen == len[7])))
			abort();
		break;
	case WADO_K_OTHER:
		if (n == 2 * rt.nuid)
			abort();
		break;
	default:
		abort();
	}
}

static void route_check(const char *path, const char *method)
{
	const char *seg[DW_MAX_SEGS], *p;
	size_t len[DW_MAX_SEGS], n, i;
	bool too_many, post = strcmp(method, "POST") == 0;
	enum dw_route r;

	if (strncmp(path, "/dicom-web/", 11) != 0)
		return;
	p = path + 11;
	n = dw_split(p, seg, len, &too_many);
	if (n > DW_MAX_SEGS || (too_many && n != DW_MAX_SEGS) || (n == 0 && p[0] != 0))
		abort();
	for (i = 0; i < n; i++) {
		const char *want = i == 0 ? p : seg[i - 1] + len[i - 1] + 1;
		if (seg[i] != want || memchr(seg[i], '/', len[i]) != NULL || (i > 0 && seg[i][-1] != '/'))
			abort();
	}
	if (n > 0 && !too_many && seg[n - 1][len[n - 1]] != 0 &&
	    !(seg[n - 1][len[n - 1]] == '/' && seg[n - 1][len[n - 1] + 1] == 0))
		abort();   /* the last segment ends the path, or a final '/' does */
	if (too_many || n == 0)
		return;
	r = dw_route_of(seg, len, n, post);
	switch (r) {
	case DW_ROUTE_STOW:
		if (!post || n > 2 || !seg_is(seg[0], len[0], "studies"))
			abort();
		break;
	case DW_ROUTE_METHOD:
		if (!post)
			abort();
		break;
	case DW_ROUTE_QIDO:
		if (post || !(seg_is(seg[0], len[0], "studies") || (n == 1 && (seg_is(seg[0], len[0], "series") ||
		                                                               seg_is(seg[0], len[0], "instances")))))
			abort();
		if (n > 1 && !seg_is(seg[n - 1], len[n - 1], "series") && !seg_is(seg[n - 1], len[n - 1], "instances"))
			abort();
		break;
	case DW_ROUTE_WADO:
		if (post || n < 2 || !seg_is(seg[0], len[0], "studies"))
			abort();
		wado_check(seg, len, n);
		break;
	case DW_ROUTE_NONE:
		if (post)
			abort();
		break;
	default:
		abort();
	}
}

static void listen_check(const char *s)
{
	char host[HTTP_HOST_MAX + 1], port[6], back[HTTP_HOST_MAX + 16];
	bool bracket;

	if (s == NULL || http_listen_split(s, host, port) != ERR_OK)
		return;
	bracket = s[0] == '[';
	snprintf(back, sizeof back, bracket ? "[%s]:%s" : "%s:%s", host, port);
	if (strcmp(back, s) != 0 || host[0] == 0 || (!bracket && strchr(host, ':') != NULL) ||
	    strlen(port) < 1 || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
	    strtoul(port, NULL, 10) > 65535)
		abort();
}

static void xff_check(const char *v)
{
	char out[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN], last[INET6_ADDRSTRLEN + 8];
	unsigned char bin[16];
	const char *s;
	int af;
	size_t n;

	if (v == NULL || !http_xff_last(v, out))
		return;
	af = strchr(out, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, out, bin) != 1 || inet_ntop(af, bin, again, sizeof again) == NULL || strcmp(again, out) != 0)
		abort();
	s = strrchr(v, ',');
	s = s != NULL ? s + 1 : v;
	s += strspn(s, " \t");
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= sizeof last)
		abort();
	memcpy(last, s, n);
	last[n] = 0;
	if (inet_pton(af, last, bin) != 1 || inet_ntop(af, bin, again, sizeof again) == NULL || strcmp(again, out) != 0)
		abort();
}

static void proxies_check(const char *s)
{
	char piece[INET6_ADDRSTRLEN + 16], out[INET6_ADDRSTRLEN];
	const char *p = s;
	unsigned n = 0;

	if (s == NULL || !http_proxies_ok(s))
		return;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (len >= sizeof piece || ++n > HTTP_PROXIES_MAX)
			abort();
		memcpy(piece, p, len);
		piece[len] = 0;
		if (!http_xff_last(piece, out))
			abort();
		if (e == NULL)
			break;
		p = e + 1;
	}
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
	(void)http_unescape(f[0]);
	route_check(f[0], f[3] != NULL ? f[3] : "GET");
	token_check(v[1], v[2]);
	origin_check(f[3] != NULL ? f[3] : "POST", v[4], v[5], v[6]);
	ctype_check(v[7]);
	listen_check(f[8]);
	xff_check(v[9]);
	proxies_check(v[10]);
	free(buf);
	return 0;
}
