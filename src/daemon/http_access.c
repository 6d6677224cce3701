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

/* An API token's scope as a filter (token_scope_allows). */
static bool scope_allows(const struct http_req *r, enum access_action a, const struct access_object *o)
{
	if (!r->sess.api_token)
		return true;
	return token_scope_allows(r->sess.scope, a, o != NULL ? o->collection : NULL);
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
	/* denied: refused by policy, as over DIMSE (failure says the
	 * operation itself failed) */
	(void)dw_audit_obj(r, audit_action, AUDIT_DENIED, reason, o ? o->patient : NULL, study, series, sop);
	if (o == NULL || covered)
		return http_problem(r, MHD_HTTP_FORBIDDEN,
		                    v == ACCESS_DEID ? "your grants allow de-identified data only, which this resource "
		                                       "does not offer yet"
		                                     : "your role does not allow this", NULL);
	return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
}
