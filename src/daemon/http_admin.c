/* http_admin.c: break-glass (POST /api/auth/break-glass) and the
 * administration API (/api/users, /api/grants), on core/users.c. Every
 * change is audited with who made it; administration needs a grant whose
 * role may manage users (docs/ACCESS.md). Layer: daemon. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/admin.h"
#include "dicomvault/audit.h"
#include "dicomvault/index.h"
#include "dicomvault/store.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/token.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "http_int.h"


static bool json_body_ok(struct http_req *r)
{
	const char *ct = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 && (ct[16] == 0 || ct[16] == ';');
}

/* A request the parser refused: 400 with its reason and the shape wanted. */
static enum MHD_Result request_refused(struct http_req *r, enum err rc, const char *detail, const char *want)
{
	char msg[400];

	if (rc == ERR_NOMEM)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	snprintf(msg, sizeof msg, "%s; want %s", detail, want);
	return http_problem(r, MHD_HTTP_BAD_REQUEST, msg, NULL);
}

/* The request's actor for users.c's records: the same as every other
 * record of the request (dw_audit_actor), with its session and user agent
 * (SPEC section 8; an administration or break-glass record had neither).
 * by->session points into ref. */
static void actor_of(struct http_req *r, struct users_actor *by, char ref[AUDIT_SESSION_REF_LEN])
{
	struct audit_actor a;

	dw_audit_actor(r, &a, ref);
	memset(by, 0, sizeof by[0]);
	by->user = a.user;
	by->role = a.role;
	by->addr = a.addr;
	by->session = a.session;
	by->user_agent = a.user_agent;
	by->audit = r->srv->audit;
}

static enum MHD_Result send_json(struct http_req *r, unsigned status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	enum MHD_Result q;

	json_decref(j);
	if (s == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	q = http_send(r, status, "application/json", s, strlen(s), 0, NULL);
	mem_wipe(s, strlen(s));
	free(s);
	return q;
}

enum MHD_Result http_break_glass(struct http_req *r)
{
	struct vault *v = r->srv->vault;
	const struct access_grant *by_grant = NULL;
	struct users_grant_req g;
	struct users_actor by;
	char ref[AUDIT_SESSION_REF_LEN];
	struct idx_study st;
	struct idx_patient pa;
	struct admin_break_glass_req bg;
	char scope[80], why[256] = "", detail[160] = "";
	const char *study = bg.study;
	int64_t now = (int64_t)time(NULL), id = 0, secs;
	unsigned i;
	enum err rc;

	if (v == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (!json_body_ok(r))
		return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json", NULL);
	rc = admin_break_glass_parse(r->body, r->len, &bg, detail, sizeof detail);
	if (rc != ERR_OK) {
		char what[200];
		snprintf(what, sizeof what, "refused: %s", rc == ERR_NOMEM ? "out of memory" : detail);
		(void)dw_audit_obj(r, AUDIT_BREAK_GLASS, AUDIT_FAILURE, what, NULL, NULL, NULL, NULL);
		return request_refused(r, rc, detail, "{\"study\": UID, \"reason\": 8 to 200 bytes of text}");
	}
	if (access_decide(r->grants, r->ngrants, ACCESS_ACT_BREAK_GLASS, NULL, now, &by_grant) != ACCESS_YES ||
	    r->sess.api_token) {
		(void)dw_audit_obj(r, AUDIT_BREAK_GLASS, AUDIT_DENIED, "refused: role not allowed to break the glass", NULL,
		                   study, NULL, NULL);
		return http_problem(r, MHD_HTTP_FORBIDDEN, "your role may not use break-glass access", NULL);
	}
	pthread_mutex_lock(r->srv->ix_lock);
	rc = v->ix->ops->study_get(v->ix, study, &st);
	if (rc == ERR_OK)
		rc = v->ix->ops->patient_by_id(v->ix, st.patient_id, &pa);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc != ERR_OK) {
		(void)dw_audit_obj(r, AUDIT_BREAK_GLASS, AUDIT_FAILURE, "refused: no such study", NULL, study, NULL, NULL);
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such study", NULL);
	}
	memcpy(scope, "patient:", 8);
	for (i = 0; i < 32; i++)
		snprintf(scope + 8 + 2 * i, 3, "%02x", pa.key_hmac[i]);
	/* [auth] break_glass_minutes, read (and a bad value refused) when
	 * the vault was opened: it used to be read here, a bad value
	 * silently replaced by the default */
	secs = auth_break_glass_minutes(r->srv->auth) * 60;
	memset(&g, 0, sizeof g);
	g.user = r->sess.user;
	g.role = by_grant->role;
	g.scope = scope;
	g.expires = now + secs;
	g.purpose = bg.reason;   /* the grant is flagged break_glass: the reason is its purpose */
	g.break_glass = true;
	g.about_study = study;
	actor_of(r, &by, ref);
	rc = users_grant(v, &by, &g, &id, why, sizeof why);
	if (rc != ERR_OK) {
		(void)dw_audit_obj(r, AUDIT_BREAK_GLASS, AUDIT_FAILURE, "failed: the grant could not be recorded", NULL,
		                   study, NULL, NULL);
		log_error("break-glass by %s: %s", r->sess.user, why);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the emergency access could not be recorded", NULL);
	}
	/* the alert: loud in the log; the audit record is flagged break-glass */
	log_warn("ALERT break-glass: %s (%s) opened the studies of the patient of study %s for %lld min (grant %lld)",
	         r->sess.user, access_role_name(g.role), study, (long long)(secs / 60), (long long)id);
	return send_json(r, MHD_HTTP_OK, json_pack("{s:I,s:I,s:s}", "grant", (json_int_t)id, "expires_in",
	                                           (json_int_t)secs, "scope", "the patient's studies"));
}

/* ---- administration ---- */

static bool may_manage(struct http_req *r)
{
	return http_access(r, ACCESS_ACT_MANAGE_USERS, NULL) == ACCESS_YES;
}

static enum err user_json(void *ctx, const struct idx_user *u)
{
	json_t *a = ctx;
	int64_t now = (int64_t)time(NULL);

	return json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I}", "username", u->name, "role", u->role, "state",
	                                          users_state(u, now),
	                                          "expires", (json_int_t)u->expires)) == 0
	               ? ERR_OK : ERR_NOMEM;
}

static enum err grant_json(void *ctx, const struct idx_grant *g)
{
	json_t *a = ctx;

	return json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:b,s:s,s:s}", "id", (json_int_t)g->id,
	                                          "username", g->user_name, "role", g->role, "scope", g->scope,
	                                          "with_priors", g->with_priors, "from", (json_int_t)g->not_before,
	                                          "expires", (json_int_t)g->expires, "revoked", (json_int_t)g->revoked,
	                                          "break_glass", g->break_glass, "created_by", g->created_by, "purpose",
	                                          g->purpose)) == 0
	               ? ERR_OK : ERR_NOMEM;
}

/* The 403 of a vault-wide action (manage-users, read-audit), true to its
 * cause: an API token's scope, or a role that allows it without a grant of
 * scope "*" (a new admin's or auditor's grant on a collection was told
 * "your role does not allow", which it does), or the role. */
static enum MHD_Result vault_wide_refused(struct http_req *r, enum access_action a, const char *what)
{
	char detail[200];

	if (r->sess.api_token && !token_scope_allows(r->sess.scope, a, NULL))
		snprintf(detail, sizeof detail, "an API token's scope does not allow %s", what);
	else if (access_role_allows(r->grants, r->ngrants, a, (int64_t)time(NULL)))
		snprintf(detail, sizeof detail, "%s needs a grant of scope * (the whole vault): your grants that allow it "
		         "are on part of it", what);
	else
		snprintf(detail, sizeof detail, "your role does not allow %s", what);
	return http_problem(r, MHD_HTTP_FORBIDDEN, detail, NULL);
}

static enum MHD_Result forbidden(struct http_req *r, const char *what)
{
	(void)dw_audit_obj(r, AUDIT_USER_CHANGE, AUDIT_DENIED, what, NULL, NULL, NULL, NULL);
	return vault_wide_refused(r, ACCESS_ACT_MANAGE_USERS, "administration");
}

static enum MHD_Result list(struct http_req *r, bool grants)
{
	struct vault *v = r->srv->vault;
	json_t *a = json_array();
	enum err rc;

	if (a == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	pthread_mutex_lock(r->srv->ix_lock);
	rc = grants ? v->ix->ops->grant_list(v->ix, 0, true, grant_json, a) : v->ix->ops->user_list(v->ix, user_json, a);
	pthread_mutex_unlock(r->srv->ix_lock);
	if (rc != ERR_OK) {
		json_decref(a);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	return send_json(r, MHD_HTTP_OK, a);
}

enum MHD_Result http_users(struct http_req *r)
{
	struct vault *v = r->srv->vault;
	struct secret *pw = NULL, *b32 = NULL, *uri = NULL;
	struct admin_user_req u;
	struct users_actor by;
	char ref[AUDIT_SESSION_REF_LEN];
	char scope[ACCESS_NAME_MAX + 16], why[256] = "", detail[160] = "";
	enum MHD_Result q;
	enum err rc;

	if (v == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (!may_manage(r))
		return forbidden(r, "refused: manage-users");
	if (strcmp(r->method, "POST") != 0)
		return list(r, false);
	if (!json_body_ok(r))
		return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json", NULL);
	rc = admin_user_parse(r->body, r->len, (int64_t)time(NULL), &u, detail, sizeof detail);
	if (rc != ERR_OK)
		return request_refused(r, rc, detail, "{\"username\", \"role\", \"collection\"?, \"expires\"?}");
	snprintf(scope, sizeof scope, "collection:%s", u.collection);
	actor_of(r, &by, ref);
	/* without a collection, the role's default (users_default_scope: an
	 * auditor's is "*", the only scope that gives read-audit) */
	if (users_add(v, &by, u.username, u.role, u.collection[0] ? scope : NULL, u.expires, NULL, &pw, &b32, &uri, why,
	              sizeof why) != ERR_OK)
		return http_problem(r, strstr(why, "already") ? MHD_HTTP_CONFLICT : MHD_HTTP_BAD_REQUEST, why, NULL);
	q = send_json(r, MHD_HTTP_CREATED, json_pack("{s:s,s:s,s:s,s:s,s:s}", "username", u.username, "role",
	                                             access_role_name(u.role), "password", secret_cstr(pw),
	                                             "totp_secret", secret_cstr(b32), "otpauth_uri", secret_cstr(uri)));
	secret_free(pw);
	secret_free(b32);
	secret_free(uri);
	return q;
}

enum MHD_Result http_grants(struct http_req *r)
{
	struct vault *v = r->srv->vault;
	struct users_grant_req g;
	struct admin_grant_req gr;
	struct users_actor by;
	char ref[AUDIT_SESSION_REF_LEN];
	const char *path = r->url + strlen("/api/grants");
	char why[256] = "", detail[160] = "";
	int64_t id = 0;
	enum err rc;

	if (v == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (!may_manage(r))
		return forbidden(r, "refused: manage-users");
	actor_of(r, &by, ref);
	if (strcmp(r->method, "DELETE") == 0) {
		char *end = NULL;
		long long n = path[0] == '/' ? strtoll(path + 1, &end, 10) : 0;
		if (path[0] != '/' || end == path + 1 || *end != 0 || n <= 0)
			return http_problem(r, MHD_HTTP_BAD_REQUEST, "DELETE /api/grants/{id}", NULL);
		switch (users_revoke(v, &by, n, why, sizeof why)) {
		case ERR_OK:
			return http_send(r, MHD_HTTP_NO_CONTENT, NULL, "", 0, 0, NULL);
		case ERR_NOTFOUND:
			return http_problem(r, MHD_HTTP_NOT_FOUND, "no such grant", NULL);
		case ERR_DENIED:
			return http_problem(r, MHD_HTTP_CONFLICT, "the grant was already revoked", NULL);
		default:
			return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
		}
	}
	if (path[0] != 0)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (strcmp(r->method, "POST") != 0)
		return list(r, true);
	if (!json_body_ok(r))
		return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json", NULL);
	rc = admin_grant_parse(r->body, r->len, (int64_t)time(NULL), &gr, detail, sizeof detail);
	if (rc != ERR_OK)
		return request_refused(r, rc, detail, "{\"username\", \"role\", \"scope\", \"from\"?, \"expires\"?, "
		                    "\"purpose\"?, \"with_priors\"?}");
	memset(&g, 0, sizeof g);
	g.user = gr.username;
	g.role = gr.role;
	g.scope = gr.scope;
	g.purpose = gr.purpose;
	g.with_priors = gr.with_priors;
	g.not_before = gr.not_before;
	g.expires = gr.expires;
	switch (users_grant(v, &by, &g, &id, why, sizeof why)) {
	case ERR_OK:
		return send_json(r, MHD_HTTP_CREATED, json_pack("{s:I}", "id", (json_int_t)id));
	case ERR_NOTFOUND:
		return http_problem(r, MHD_HTTP_NOT_FOUND, why, NULL);
	case ERR_PARSE:
		return http_problem(r, MHD_HTTP_BAD_REQUEST, why, NULL);
	default:
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
}

/* ---- the audit trail for auditors: GET /api/audit ---- */

#define AUDIT_API_MAX 1000   /* records of one answer (the most recent that match) */

struct aq {
	const char *user, *action;
	char patients[QRY_PATIENT_KEYS_MAX][65];   /* any of them; none: every record */
	size_t npatients;
	int64_t from, to;
	/* a ring of the last AUDIT_API_MAX matching lines */
	char **ring;
	size_t n, head;
	uint64_t matched;
	bool nomem;
};

static int aq_line(void *ctx, const char *line, size_t n)
{
	struct aq *q = ctx;
	json_t *o = json_loadb(line, n, 0, NULL), *a, *ob;
	const char *action, *user;
	int64_t t;
	bool keep, pat_ok = q->npatients == 0;

	if (o == NULL)
		return 0;
	action = json_string_value(json_object_get(o, "action"));
	a = json_object_get(o, "actor");
	ob = json_object_get(o, "objects");
	user = a ? json_string_value(json_object_get(a, "user")) : NULL;
	t = users_parse_stamp(json_string_value(json_object_get(o, "time")));
	if (!pat_ok && ob != NULL)
		pat_ok = audit_names_patient(ob, q->patients, q->npatients);
	keep = action != NULL && strcmp(action, "checkpoint") != 0 &&
	       (q->action == NULL || strcmp(action, q->action) == 0) &&
	       (q->user == NULL || (user != NULL && strcmp(user, q->user) == 0)) && pat_ok &&
	       (q->from == 0 || t >= q->from) && (q->to == 0 || t < q->to);
	json_decref(o);
	if (!keep)
		return 0;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	free(q->ring[q->head]);
	q->ring[q->head] = strndup(line, n);
	if (q->ring[q->head] == NULL)
		q->nomem = true;
	q->head = (q->head + 1) % AUDIT_API_MAX;
	if (q->n < AUDIT_API_MAX)
		q->n++;
	q->matched++;
	return 0;
}

static const char *arg(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

/* Reading the trail is an event of its own (ATNA's Audit Log Used, SPEC
 * section 8: every view), recorded before the answer leaves: the
 * request's actor, the filters (the Patient ID and issuer named, never
 * written: the patients searched are the objects, by their keys) and how
 * many records matched. */
static enum err audit_read_record(struct http_req *r, const struct aq *q, bool issuer, bool from, bool to)
{
	uint8_t keys[QRY_PATIENT_KEYS_MAX][32];
	struct audit_rec rec;
	char reason[200], user[80], action[48];
	const char *f[6];
	size_t i, nf = 0, nk = 0, k;

	for (i = 0; i < q->npatients; i++)
		if (qry_patient_key_bin(q->patients[i], keys[nk]))
			nk++;
	if (q->user != NULL) {
		snprintf(user, sizeof user, "user=%s", q->user);
		f[nf++] = user;
	}
	if (q->action != NULL) {
		snprintf(action, sizeof action, "action=%s", q->action);
		f[nf++] = action;
	}
	if (q->npatients > 0)
		f[nf++] = "patient";
	if (issuer)
		f[nf++] = "issuer";
	if (from)
		f[nf++] = "from";
	if (to)
		f[nf++] = "to";
	if (q->matched > q->n)
		k = (size_t)snprintf(reason, sizeof reason, "audit trail: the last %zu of %llu records", q->n,
		                     (unsigned long long)q->matched);
	else
		k = (size_t)snprintf(reason, sizeof reason, "audit trail: %zu record%s", q->n, q->n == 1 ? "" : "s");
	for (i = 0; i < nf && k < sizeof reason; i++)
		k += (size_t)snprintf(reason + k, sizeof reason - k, "%s%s", i ? ", " : " (", f[i]);
	if (nf > 0 && k < sizeof reason)
		snprintf(reason + k, sizeof reason - k, ")");
	memset(&rec, 0, sizeof rec);
	rec.action = AUDIT_READ_TRAIL;
	rec.outcome = AUDIT_SUCCESS;
	rec.reason = reason;
	rec.objects.patient_list = nk ? &keys[0][0] : NULL;
	rec.objects.npatient_list = nk;
	return dw_audit_rec(r, &rec);
}

enum MHD_Result http_audit(struct http_req *r)
{
	struct vault *v = r->srv->vault;
	struct audit_verify_opts vo;
	struct audit_verify_result vr;
	struct admin_audit_query aq;
	char path[VAULT_PATH_MAX + 64], count[32], detail[160] = "";
	const char *extra[3] = { NULL, NULL, NULL }, *issuer;
	struct aq q;
	struct wbuf w;
	enum MHD_Result res;
	size_t i;
	enum err rc;

	if (v == NULL)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	if (http_access(r, ACCESS_ACT_READ_AUDIT, NULL) != ACCESS_YES) {
		(void)dw_audit_obj(r, AUDIT_READ_TRAIL, AUDIT_DENIED, "refused: read-audit", NULL, NULL, NULL, NULL);
		return vault_wide_refused(r, ACCESS_ACT_READ_AUDIT, "reading the audit trail");
	}
	memset(&q, 0, sizeof q);
	rc = admin_audit_query_parse(arg(r, "user"), arg(r, "action"), arg(r, "patient"), arg(r, "from"), arg(r, "to"),
	                             (int64_t)time(NULL), &aq, detail, sizeof detail);
	if (rc != ERR_OK)
		return request_refused(r, rc, detail, "user=NAME, action=A, patient=ID, from=T, to=T "
		                    "(T: 2026-12-31, 2026-12-31T17:00Z, @SECONDS or +N[smhd])");
	q.user = aq.user[0] ? aq.user : NULL;
	q.action = aq.action[0] ? aq.action : NULL;
	q.from = aq.from;
	q.to = aq.to;
	issuer = arg(r, "issuer");
	if (issuer != NULL && (!aq.patient[0] || strlen(issuer) > 64))
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "parameter issuer: goes with patient, at most 64 characters",
		                    NULL);
	if (aq.patient[0]) {
		/* the patient under any issuer of that ID, unless one is given */
		rc = qry_patient_keys(v, aq.patient, issuer, q.patients, QRY_PATIENT_KEYS_MAX, &q.npatients);
		if (rc == ERR_PARSE)
			return http_problem(r, MHD_HTTP_BAD_REQUEST, "parameter patient: an empty ID", NULL);
		if (rc != ERR_OK)
			return http_problem(r, rc == ERR_LIMIT ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR,
			                    rc == ERR_LIMIT ? "parameter patient: too many patients with this ID; give issuer"
			                                    : "the index cannot be read", NULL);
	}
	q.ring = calloc(AUDIT_API_MAX, sizeof *q.ring);
	if (q.ring == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	snprintf(path, sizeof path, "%s/" AUDIT_LOG_PATH, v->dir);
	memset(&vo, 0, sizeof vo);
	vo.pk = v->audit_pk;
	vo.vault_log = true;
	vo.on_record = aq_line;
	vo.ctx = &q;
	rc = audit_verify_ex(path, &vo, &vr);
	wbuf_init(&w, (size_t)AUDIT_API_MAX * (AUDIT_LINE_MAX + 2) + 16);
	wbuf_putc(&w, '[');
	for (i = 0; i < q.n; i++) {
		size_t k = (q.head + AUDIT_API_MAX - q.n + i) % AUDIT_API_MAX;
		if (i)
			wbuf_putc(&w, ',');
		if (q.ring[k])
			wbuf_puts(&w, q.ring[k]);
	}
	wbuf_putc(&w, ']');
	snprintf(count, sizeof count, "%llu", (unsigned long long)q.matched);
	extra[0] = "X-Total-Count";
	extra[1] = count;
	if (rc != ERR_OK || q.nomem || wbuf_err(&w) != ERR_OK)
		res = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the audit trail cannot be read", NULL);
	else if (vr.fault != AUDIT_OK)
		res = http_problem(r, MHD_HTTP_CONFLICT, "the audit trail is damaged: run 'dicomvault audit verify'", NULL);
	else if (audit_read_record(r, &q, issuer != NULL, aq.from != 0, aq.to != 0) != ERR_OK)
		res = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the audit record cannot be written", NULL);
	else
		res = http_send(r, MHD_HTTP_OK, "application/json", w.p, w.len, 0, extra);
	wbuf_fini(&w);
	for (i = 0; i < AUDIT_API_MAX; i++)
		free(q.ring[i]);
	free(q.ring);
	return res;
}
