/* admin_body.c: the administration API's requests parsed into fields
 * (admin.h). The JSON is read by jbody_object (nesting checked first, no
 * duplicates, no unknown members); each value is checked for its form
 * here (account names, roles, times, study UIDs, reasons, audit actions);
 * what the vault decides (a known collection, a grant's scope and times:
 * users_grant) is left to it. Pure.
 * Layer: core. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "dicomvault/admin.h"
#include "dicomvault/jbody.h"
#include "dicomvault/users.h"
#include "dicomvault/vr.h"

#define TIME_FORMS "a time after 1970: 2026-12-31, 2026-12-31T17:00Z, @SECONDS or +N[smhd]"

_Static_assert(ADMIN_REASON_MAX <= IDX_PURPOSE_MAX, "a break-glass reason fits a grant's purpose");

/* An account name (users_name_ok) into out. */
static enum err name_of(json_t *o, const char *key, char *out, char *detail, size_t dlen)
{
	const char *s;
	size_t len;
	enum err rc = jbody_str(o, key, 1, AUTH_NAME_MAX, false, &s, &len, detail, dlen);

	if (rc != ERR_OK)
		return rc;
	if (!users_name_ok(s))
		return jbody_member_why(detail, dlen, key, "1 to 64 of A-Z a-z 0-9 . _ @ -");
	memcpy(out, s, len + 1);
	return ERR_OK;
}

static enum err role_of(json_t *o, const char *key, enum access_role *out, char *detail, size_t dlen)
{
	const char *s;
	size_t len;
	enum err rc = jbody_str(o, key, 1, 32, false, &s, &len, detail, dlen);

	if (rc != ERR_OK)
		return rc;
	if (!access_role_parse(s, len, out))
		return jbody_member_why(detail, dlen, key, "not a role (docs/ACCESS.md)");
	return ERR_OK;
}

/* "username" and "role", which the users' and the grants' bodies share. */
static enum err user_and_role(json_t *o, char *name, enum access_role *role, char *detail, size_t dlen)
{
	enum err rc = name_of(o, "username", name, detail, dlen);

	return rc == ERR_OK ? role_of(o, "role", role, detail, dlen) : rc;
}

/* An optional time (users_parse_time); absent: 0. */
static enum err time_of(json_t *o, const char *key, int64_t now, int64_t *out, char *detail, size_t dlen)
{
	const char *s;
	size_t len;
	int64_t t = 0;
	enum err rc = jbody_str(o, key, 1, USERS_TIME_TEXT_MAX, true, &s, &len, detail, dlen);

	if (rc != ERR_OK)
		return rc;
	if (s != NULL && users_parse_time(s, now, &t) != ERR_OK)
		return jbody_member_why(detail, dlen, key, TIME_FORMS);
	*out = t;
	return ERR_OK;
}

enum err admin_user_parse(const uint8_t *body, size_t n, int64_t now, struct admin_user_req *out, char *detail,
                          size_t detaillen)
{
	static const char *const members[] = { "username", "role", "collection", "expires", NULL };
	struct admin_user_req r;
	const char *coll = NULL;
	size_t len = 0;
	json_t *o = NULL;
	enum err rc;

	memset(&r, 0, sizeof r);
	rc = jbody_object(body, n, members, &o, detail, detaillen);
	if (rc != ERR_OK)
		return rc;
	rc = user_and_role(o, r.username, &r.role, detail, detaillen);
	if (rc == ERR_OK)
		rc = jbody_str(o, "collection", 1, ACCESS_NAME_MAX, true, &coll, &len, detail, detaillen);
	if (rc == ERR_OK)
		rc = time_of(o, "expires", now, &r.expires, detail, detaillen);
	if (rc == ERR_OK) {
		snprintf(r.collection, sizeof r.collection, "%s", coll != NULL ? coll : "");
		*out = r;
	}
	json_decref(o);
	return rc;
}

enum err admin_grant_parse(const uint8_t *body, size_t n, int64_t now, struct admin_grant_req *out, char *detail,
                           size_t detaillen)
{
	static const char *const members[] = { "username", "role", "scope", "from", "expires", "purpose",
		                                "with_priors", NULL };
	struct admin_grant_req r;
	const char *scope = NULL, *purpose = NULL;
	size_t len = 0;
	json_t *o = NULL;
	enum err rc;

	memset(&r, 0, sizeof r);
	rc = jbody_object(body, n, members, &o, detail, detaillen);
	if (rc != ERR_OK)
		return rc;
	rc = user_and_role(o, r.username, &r.role, detail, detaillen);
	if (rc == ERR_OK)
		rc = jbody_str(o, "scope", 1, IDX_GRANT_SCOPE_MAX, false, &scope, &len, detail, detaillen);
	if (rc == ERR_OK)
		memcpy(r.scope, scope, len + 1);
	if (rc == ERR_OK)
		rc = jbody_str(o, "purpose", 0, IDX_PURPOSE_MAX, true, &purpose, &len, detail, detaillen);
	if (rc == ERR_OK && purpose != NULL)
		memcpy(r.purpose, purpose, len + 1);
	if (rc == ERR_OK)
		rc = jbody_bool(o, "with_priors", &r.with_priors, detail, detaillen);
	if (rc == ERR_OK)
		rc = time_of(o, "from", now, &r.not_before, detail, detaillen);
	if (rc == ERR_OK)
		rc = time_of(o, "expires", now, &r.expires, detail, detaillen);
	if (rc == ERR_OK)
		*out = r;
	json_decref(o);
	return rc;
}

enum err admin_break_glass_parse(const uint8_t *body, size_t n, struct admin_break_glass_req *out, char *detail,
                                 size_t detaillen)
{
	static const char *const members[] = { "study", "reason", NULL };
	struct admin_break_glass_req r;
	const char *study = NULL, *reason = NULL;
	size_t slen = 0, rlen = 0, i;
	json_t *o = NULL;
	enum err rc;

	memset(&r, 0, sizeof r);
	rc = jbody_object(body, n, members, &o, detail, detaillen);
	if (rc != ERR_OK)
		return rc;
	rc = jbody_str(o, "study", 1, sizeof r.study - 1, false, &study, &slen, detail, detaillen);
	if (rc == ERR_OK && !vr_uid_ok(study, slen))
		rc = jbody_member_why(detail, detaillen, "study", "not a UID");
	if (rc == ERR_OK)
		rc = jbody_str(o, "reason", ADMIN_REASON_MIN, ADMIN_REASON_MAX, false, &reason, &rlen, detail, detaillen);
	for (i = 0; rc == ERR_OK && i < rlen; i++)
		if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
			rc = jbody_member_why(detail, detaillen, "reason", "holds control characters");
	if (rc == ERR_OK) {
		memcpy(r.study, study, slen + 1);
		memcpy(r.reason, reason, rlen + 1);
		*out = r;
	}
	json_decref(o);
	return rc;
}

static enum err param_why(char *detail, size_t n, const char *name, const char *msg)
{
	if (detail != NULL && n > 0)
		snprintf(detail, n, "parameter %s: %s", name, msg);
	return ERR_PARSE;
}

enum err admin_audit_query_parse(const char *user, const char *action, const char *patient, const char *from,
                                 const char *to, int64_t now, struct admin_audit_query *out, char *detail,
                                 size_t detaillen)
{
	struct admin_audit_query q;

	memset(&q, 0, sizeof q);
	if (user != NULL && !users_name_ok(user))
		return param_why(detail, detaillen, "user", "an account name (1 to 64 of A-Z a-z 0-9 . _ @ -)");
	if (action != NULL && !audit_action_ok(action))
		return param_why(detail, detaillen, "action", "an action (1 to 32 of a-z 0-9 -)");
	if (patient != NULL && (patient[0] == 0 || strlen(patient) > ADMIN_PATIENT_MAX))
		return param_why(detail, detaillen, "patient", "a Patient ID of 1 to 64 bytes");
	if (from != NULL && users_parse_time(from, now, &q.from) != ERR_OK)
		return param_why(detail, detaillen, "from", TIME_FORMS);
	if (to != NULL && users_parse_time(to, now, &q.to) != ERR_OK)
		return param_why(detail, detaillen, "to", TIME_FORMS);
	if (q.from != 0 && q.to != 0 && q.to <= q.from)
		return param_why(detail, detaillen, "to", "not after from");
	snprintf(q.user, sizeof q.user, "%s", user != NULL ? user : "");
	snprintf(q.action, sizeof q.action, "%s", action != NULL ? action : "");
	snprintf(q.patient, sizeof q.patient, "%s", patient != NULL ? patient : "");
	*out = q;
	return ERR_OK;
}
