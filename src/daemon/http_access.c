/* http_access.c: authorisation of each request of the HTTPS listener
 * (docs/ACCESS.md): the user's grants in force are read from the index
 * when the request arrives, each object the request touches is decided on
 * with core/access.c, an API token's scope narrows the decision, and
 * every refusal is audited. Objects outside every grant answer 404, as if
 * they did not exist. Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/token.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"
#include "http_int.h"

enum err http_load_grants(struct http_req *r)
{
	free(r->grants);
	r->grants = NULL;
	r->ngrants = 0;
	if (r->srv->vault == NULL)
		return ERR_OK;
	return users_grants_now(r->srv->vault, r->sess.user_id, (int64_t)time(NULL), &r->grants, &r->ngrants);
}

/* An API token's scope ("store,query,retrieve,collection=NAME", canonical;
 * "" for a login session) as a filter: the action must be listed, and the
 * object, if in a collection, must be in that one. */
static bool scope_allows(const struct http_req *r, enum access_action a, const struct access_object *o)
{
	const char *s = r->sess.scope, *coll;
	const char *want;

	if (!r->sess.api_token || s[0] == 0)
		return true;
	switch (a) {
	case ACCESS_ACT_STORE: want = "store"; break;
	case ACCESS_ACT_QUERY: want = "query"; break;
	case ACCESS_ACT_RETRIEVE:
	case ACCESS_ACT_RETRIEVE_ORIGINAL: want = "retrieve"; break;
	default: return false;   /* tokens are for data, not administration */
	}
	{
		size_t n = strlen(want);
		const char *p = s;
		bool found = false;
		while (p && *p) {
			const char *e = strchr(p, ',');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			if (l == n && memcmp(p, want, n) == 0)
				found = true;
			p = e ? e + 1 : NULL;
		}
		if (!found)
			return false;
	}
	coll = strstr(s, "collection=");
	if (coll != NULL && o != NULL && o->collection != NULL)
		return strcmp(coll + 11, o->collection) == 0;
	return true;
}

int http_access(struct http_req *r, enum access_action a, const struct access_object *o)
{
	if (!r->authed)
		return ACCESS_NO;
	if (!scope_allows(r, a, o))
		return ACCESS_NO;
	return access_decide(r->grants, r->ngrants, a, o, (int64_t)time(NULL), NULL);
}

bool http_covers(struct http_req *r, enum access_action a, const struct access_object *o)
{
	int64_t now = (int64_t)time(NULL);
	size_t i;

	if (!scope_allows(r, a, o))
		return false;
	for (i = 0; i < r->ngrants; i++)
		if (access_grant_covers(&r->grants[i], o, now))
			return true;
	return false;
}

enum MHD_Result http_refuse(struct http_req *r, enum access_action a, const struct access_object *o,
                            const char *audit_action, const char *study, const char *series, const char *sop)
{
	bool covered = o != NULL && http_covers(r, a, o);
	int v = covered ? access_decide(r->grants, r->ngrants, a, o, (int64_t)time(NULL), NULL) : ACCESS_NO;
	char reason[96];

	snprintf(reason, sizeof reason, "not authorised: %s%s", access_action_name(a),
	         covered ? (v == ACCESS_DEID ? " (de-identified only)" : " (role)") : " (no grant)");
	(void)dw_audit_obj(r, audit_action, AUDIT_FAILURE, reason, o ? o->patient : NULL, study, series, sop);
	if (o == NULL || covered)
		return http_problem(r, MHD_HTTP_FORBIDDEN,
		                    v == ACCESS_DEID ? "your grants allow de-identified data only, which this resource "
		                                       "does not offer yet"
		                                     : "your role does not allow this", NULL);
	return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
}
