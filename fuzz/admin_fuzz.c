/* admin_fuzz.c: libFuzzer target for the administration API's request
 * parsers (admin.h, core/admin_body.c on core/jbody.c): POST /api/users,
 * POST /api/grants, POST /api/auth/break-glass (bodies) and GET
 * /api/audit (parameters). The first byte picks the parser (mod 4); the
 * rest is the body, or for the audit query five parameters separated by
 * NUL, a parameter that begins with 0xff being absent. The target abort()s
 * when
 *  - the result is neither ERR_OK, ERR_PARSE nor ERR_NOMEM;
 *  - a refusal has no detail, a detail with a byte outside printable
 *    ASCII, or one not of our forms; a "member" detail that names a
 *    member the parser does not know (details never quote the input);
 *  - a refusal changed the output;
 *  - an accepted request has a field out of its form (account name, role,
 *    lengths, a UID, a reason's characters, an action), or, written back
 *    as JSON (or parameters) and parsed again, does not give the same
 *    fields: what is accepted is exactly what the parser understood.
 * Layer: fuzz. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/admin.h"
#include "dicomvault/users.h"
#include "dicomvault/vr.h"

#define NOW 1795000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const user_members[] = { "username", "role", "collection", "expires", NULL };
static const char *const grant_members[] = { "username", "role", "scope", "from", "expires", "purpose",
	                                     "with_priors", NULL };
static const char *const glass_members[] = { "study", "reason", NULL };
static const char *const params[] = { "user", "action", "patient", "from", "to", NULL };

static bool in(const char *name, size_t n, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strlen(*list) == n && memcmp(*list, name, n) == 0)
			return true;
	return false;
}

/* A refusal's detail: printable ASCII, of one of our forms, naming only
 * members (or parameters) of the list. */
static void check_detail(const char *d, const char *const *list)
{
	static const char *const forms[] = { "a JSON body is required", "the JSON body is nested too deeply",
		                             "malformed JSON at line ", "the body must be a JSON object",
		                             "unexpected member: only ", NULL };
	const char *q;
	size_t i;

	if (d[0] == 0)
		abort();
	for (i = 0; d[i]; i++)
		if (d[i] < 0x20 || d[i] > 0x7e)
			abort();
	for (i = 0; forms[i] != NULL; i++)
		if (strncmp(d, forms[i], strlen(forms[i])) == 0)
			return;
	if (strncmp(d, "member \"", 8) == 0) {
		q = strchr(d + 8, '"');
		if (q == NULL || !in(d + 8, (size_t)(q - d - 8), list))
			abort();
		return;
	}
	if (strncmp(d, "parameter ", 10) == 0) {
		q = strchr(d + 10, ':');
		if (q == NULL || !in(d + 10, (size_t)(q - d - 10), list))
			abort();
		return;
	}
	abort();
}

static bool printable(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* j as compact JSON text (NULL on no memory); j is released. */
static char *dump(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static void time_member(json_t *o, const char *key, int64_t t)
{
	char b[32];

	if (t != 0) {
		snprintf(b, sizeof b, "@%lld", (long long)t);
		json_object_set_new(o, key, json_string(b));
	}
}

static void fuzz_user(const uint8_t *p, size_t n)
{
	struct admin_user_req u, again, fresh;
	char detail[200] = "";
	json_t *o;
	char *s;
	enum err rc;

	memset(&u, 0xa5, sizeof u);
	memset(&fresh, 0xa5, sizeof fresh);
	rc = admin_user_parse(p, n, NOW, &u, detail, sizeof detail);
	if (rc == ERR_NOMEM)
		return;
	if (rc == ERR_PARSE) {
		check_detail(detail, user_members);
		if (memcmp(&u, &fresh, sizeof u) != 0)
			abort();
		return;
	}
	/* an empty collection: none given (the role's default scope) */
	if (rc != ERR_OK || !users_name_ok(u.username) || (unsigned)u.role >= ACCESS_ROLE__N ||
	    strlen(u.collection) > ACCESS_NAME_MAX || u.expires < 0)
		abort();
	o = json_object();
	if (o != NULL) {
		json_object_set_new(o, "username", json_string(u.username));
		json_object_set_new(o, "role", json_string(access_role_name(u.role)));
		if (u.collection[0] != 0)
			json_object_set_new(o, "collection", json_string(u.collection));
		time_member(o, "expires", u.expires);
	}
	s = dump(o);
	if (s == NULL)
		return;
	memset(&again, 0, sizeof again);
	rc = admin_user_parse((const uint8_t *)s, strlen(s), NOW, &again, detail, sizeof detail);
	free(s);
	if (rc == ERR_NOMEM)
		return;
	if (rc != ERR_OK || strcmp(again.username, u.username) != 0 || again.role != u.role ||
	    strcmp(again.collection, u.collection) != 0 || again.expires != u.expires)
		abort();
}

static void fuzz_grant(const uint8_t *p, size_t n)
{
	struct admin_grant_req g, again, fresh;
	char detail[200] = "";
	json_t *o;
	char *s;
	enum err rc;

	memset(&g, 0xa5, sizeof g);
	memset(&fresh, 0xa5, sizeof fresh);
	rc = admin_grant_parse(p, n, NOW, &g, detail, sizeof detail);
	if (rc == ERR_NOMEM)
		return;
	if (rc == ERR_PARSE) {
		check_detail(detail, grant_members);
		if (memcmp(&g, &fresh, sizeof g) != 0)
			abort();
		return;
	}
	if (rc != ERR_OK || !users_name_ok(g.username) || (unsigned)g.role >= ACCESS_ROLE__N ||
	    strlen(g.scope) == 0 || strlen(g.scope) > IDX_GRANT_SCOPE_MAX || strlen(g.purpose) > IDX_PURPOSE_MAX ||
	    g.not_before < 0 || g.expires < 0)
		abort();
	o = json_object();
	if (o != NULL) {
		json_object_set_new(o, "username", json_string(g.username));
		json_object_set_new(o, "role", json_string(access_role_name(g.role)));
		json_object_set_new(o, "scope", json_string(g.scope));
		json_object_set_new(o, "purpose", json_string(g.purpose));
		json_object_set_new(o, "with_priors", json_boolean(g.with_priors));
		time_member(o, "from", g.not_before);
		time_member(o, "expires", g.expires);
	}
	s = dump(o);
	if (s == NULL)
		return;
	memset(&again, 0, sizeof again);
	rc = admin_grant_parse((const uint8_t *)s, strlen(s), NOW, &again, detail, sizeof detail);
	free(s);
	if (rc == ERR_NOMEM)
		return;
	if (rc != ERR_OK || strcmp(again.username, g.username) != 0 || again.role != g.role ||
	    strcmp(again.scope, g.scope) != 0 || strcmp(again.purpose, g.purpose) != 0 ||
	    again.with_priors != g.with_priors || again.not_before != g.not_before || again.expires != g.expires)
		abort();
}

static void fuzz_glass(const uint8_t *p, size_t n)
{
	struct admin_break_glass_req g, again, fresh;
	char detail[200] = "";
	char *s;
	enum err rc;

	memset(&g, 0xa5, sizeof g);
	memset(&fresh, 0xa5, sizeof fresh);
	rc = admin_break_glass_parse(p, n, &g, detail, sizeof detail);
	if (rc == ERR_NOMEM)
		return;
	if (rc == ERR_PARSE) {
		check_detail(detail, glass_members);
		if (memcmp(&g, &fresh, sizeof g) != 0)
			abort();
		return;
	}
	if (rc != ERR_OK || !vr_uid_ok(g.study, strlen(g.study)) ||
	    !printable(g.reason, ADMIN_REASON_MIN, ADMIN_REASON_MAX))
		abort();
	s = dump(json_pack("{s:s,s:s}", "study", g.study, "reason", g.reason));
	if (s == NULL)
		return;
	memset(&again, 0, sizeof again);
	rc = admin_break_glass_parse((const uint8_t *)s, strlen(s), &again, detail, sizeof detail);
	free(s);
	if (rc == ERR_NOMEM)
		return;
	if (rc != ERR_OK || strcmp(again.study, g.study) != 0 || strcmp(again.reason, g.reason) != 0)
		abort();
}

static void fuzz_query(const uint8_t *p, size_t n)
{
	struct admin_audit_query q, again, fresh;
	char *buf = malloc(n + 1), detail[200] = "", from[32], to[32];
	const char *arg[5] = { NULL, NULL, NULL, NULL, NULL };
	size_t i, k = 0, start = 0;
	enum err rc;

	if (buf == NULL)
		return;
	memcpy(buf, p, n);
	buf[n] = 0;
	/* five fields, NUL-separated; a field beginning with 0xff is absent */
	for (i = 0; i <= n && k < 5; i++)
		if (i == n || buf[i] == 0) {
			buf[i] = 0;
			arg[k++] = (unsigned char)buf[start] == 0xff ? NULL : buf + start;
			start = i + 1;
		}
	memset(&q, 0xa5, sizeof q);
	memset(&fresh, 0xa5, sizeof fresh);
	rc = admin_audit_query_parse(arg[0], arg[1], arg[2], arg[3], arg[4], NOW, &q, detail, sizeof detail);
	free(buf);
	if (rc == ERR_NOMEM)
		return;
	if (rc == ERR_PARSE) {
		check_detail(detail, params);
		if (memcmp(&q, &fresh, sizeof q) != 0)
			abort();
		return;
	}
	if (rc != ERR_OK || (q.user[0] && !users_name_ok(q.user)) || (q.action[0] && !audit_action_ok(q.action)) ||
	    strlen(q.patient) > ADMIN_PATIENT_MAX || (q.from && q.to && q.to <= q.from))
		abort();
	snprintf(from, sizeof from, "@%lld", (long long)q.from);
	snprintf(to, sizeof to, "@%lld", (long long)q.to);
	memset(&again, 0, sizeof again);
	rc = admin_audit_query_parse(q.user[0] ? q.user : NULL, q.action[0] ? q.action : NULL,
	                             q.patient[0] ? q.patient : NULL, q.from ? from : NULL, q.to ? to : NULL, NOW, &again,
	                             detail, sizeof detail);
	if (rc != ERR_OK || strcmp(again.user, q.user) != 0 || strcmp(again.action, q.action) != 0 ||
	    strcmp(again.patient, q.patient) != 0 || again.from != q.from || again.to != q.to)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_user(data + 1, size - 1);
		break;
	case 1:
		fuzz_grant(data + 1, size - 1);
		break;
	case 2:
		fuzz_glass(data + 1, size - 1);
		break;
	default:
		fuzz_query(data + 1, size - 1);
		break;
	}
	return 0;
}
