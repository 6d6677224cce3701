/* users.c: accounts and grants (users.h): creation with Argon2id and a
 * wrapped TOTP seed, enable/disable/unlock, grants and their revocation,
 * each audited with who made the change; and the grants in force for one
 * request, read from the index every time. Layer: core. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/store.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"
#include "store_int.h"

bool users_name_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == 0 || strlen(s) > 64)
		return false;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '_' || s[i] == '-' || s[i] == '@'))
			return false;
	return true;
}

enum err users_gen_password(struct secret **out)
{
	uint8_t raw[15];
	char txt[32];
	size_t n = 0;
	enum err rc;

	rc = rand_bytes(raw, sizeof raw);
	if (rc == ERR_OK)
		rc = b32_encode(raw, sizeof raw, false, txt, sizeof txt, &n);
	if (rc == ERR_OK)
		rc = secret_from_bytes(txt, n, out);
	mem_wipe(raw, sizeof raw);
	mem_wipe(txt, sizeof txt);
	return rc;
}

enum err users_create(struct index_store *ix, const struct secret *mk, const char *name, enum access_role role,
                      const struct secret *password, int64_t expires, struct secret **password_out,
                      struct secret **totp_b32, struct secret **totp_uri_out)
{
	struct secret *pw = NULL, *seed = NULL, *b32s = NULL, *uri = NULL;
	char label[96], b32[64];
	struct idx_user u;
	struct wbuf w;
	size_t n = 0;
	enum err rc = ERR_OK;

	if (!users_name_ok(name) || (unsigned)role >= ACCESS_ROLE__N)
		return ERR_PARSE;
	wbuf_init(&w, 4096);
	memset(&u, 0, sizeof u);
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.role, sizeof u.role, "%s", access_role_name(role));
	u.created = (int64_t)time(NULL);
	u.expires = expires;
	if (password == NULL) {
		rc = users_gen_password(&pw);
		password = pw;
	}
	if (rc == ERR_OK)
		rc = pwhash_str(password, NULL, u.pwhash);
	if (rc == ERR_OK)
		rc = totp_seed_new(&seed);
	snprintf(label, sizeof label, "totp:%s", name);
	if (rc == ERR_OK)
		rc = keywrap_wrap(mk, label, strlen(label), seed, &w);
	if (rc == ERR_OK)
		rc = totp_uri("dicomvault", name, seed, &uri);
	if (rc == ERR_OK)
		rc = b32_encode(secret_view(seed), secret_len(seed), false, b32, sizeof b32, &n);
	if (rc == ERR_OK)
		rc = secret_from_bytes(b32, n, &b32s);
	if (rc == ERR_OK) {
		u.totp_wrapped.p = w.p;
		u.totp_wrapped.n = w.len;
		rc = ix->ops->user_put(ix, &u);
	}
	if (rc == ERR_OK) {
		if (password_out != NULL) {
			*password_out = pw;
			pw = NULL;
		}
		*totp_b32 = b32s;
		*totp_uri_out = uri;
		b32s = uri = NULL;
	}
	mem_wipe(b32, sizeof b32);
	mem_wipe(u.pwhash, sizeof u.pwhash);
	secret_free(pw);
	secret_free(seed);
	secret_free(b32s);
	secret_free(uri);
	wbuf_fini(&w);
	return rc;
}

/* ---- audit of changes ---- */

/* A record of a change by `by` in its log (log_for opened it), naming ob
 * (NULL: no patient data concerned). */
static enum err audited_on(const struct users_actor *by, const char *action, enum audit_outcome oc,
                           const char *reason, const struct audit_objects *ob)
{
	struct audit_rec r;

	memset(&r, 0, sizeof r);
	if (ob != NULL)
		r.objects = *ob;
	r.action = action;
	r.outcome = oc;
	r.reason = reason;
	r.actor.user = by->user;
	r.actor.role = by->role;
	r.actor.addr = by->addr;
	r.actor.session = by->session;
	r.actor.user_agent = by->user_agent;
	return audit_append(by->audit, &r);
}

static enum err audited(const struct users_actor *by, const char *action, enum audit_outcome oc, const char *reason)
{
	return audited_on(by, action, oc, reason, NULL);
}

/* The log a change's records go to: the caller's (serve's), or the vault's,
 * opened here before anything changes, so that nothing is changed when its
 * record cannot be written (a missing or emptied log: audit_open). me is by
 * with that log; *own is closed by the caller (audit_close takes NULL). */
static enum err log_for(struct vault *v, const struct users_actor *by, struct users_actor *me, struct audit **own,
                        char *why, size_t whylen)
{
	enum err rc;

	*me = *by;
	*own = NULL;
	if (by->audit != NULL)
		return ERR_OK;
	rc = vault_audit_open(v, own);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot open the vault's audit log (%s): nothing was changed", err_str(rc));
	me->audit = *own;
	return ERR_OK;
}

static void lock(struct vault *v, bool *locked)
{
	store_ix_lock(v, locked);
}

static void unlock(struct vault *v, bool *locked)
{
	store_ix_unlock(v, locked);
}

static enum err grant(struct vault *v, const struct users_actor *by, const struct users_grant_req *r, int64_t *id,
                      char *why, size_t whylen);

/* A scope "collection:NAME" names "default" or a [collection] of the
 * vault's configuration: a misspelt one would give nothing today and, once
 * a [collection] of that name is added, access nobody reviewed then. The
 * CLI and the admin API both come here. ERR_PARSE with why. */
static enum err scope_collection_ok(const struct vault *v, const struct access_grant *ag, char *why, size_t whylen)
{
	if (ag->scope != ACCESS_SCOPE_COLLECTION || access_collection_known(v->colls, ag->target))
		return ERR_OK;
	return err_why(why, whylen, ERR_PARSE, "no such collection %s (\"default\" or a [collection] of dicomvault.conf)",
	               ag->target);
}

const char *users_default_scope(enum access_role role)
{
	bool any = false;
	unsigned a;

	if ((unsigned)role >= ACCESS_ROLE__N)
		return "collection:default";
	for (a = 0; a < ACCESS_ACT__N; a++) {
		if (access_matrix[role][a] == ACCESS_NO)
			continue;
		if (!access_action_vault_wide((enum access_action)a))
			return "collection:default";
		any = true;
	}
	return any ? "*" : "collection:default";
}

_Static_assert(ACCESS_ACT__N <= 32, "users_scope_lacks: one bit per action");

unsigned users_scope_lacks(enum access_role role, const char *scope)
{
	unsigned a, lacks = 0;

	if (scope == NULL)
		scope = users_default_scope(role);
	if ((unsigned)role >= ACCESS_ROLE__N || strcmp(scope, "*") == 0)
		return 0;
	for (a = 0; a < ACCESS_ACT__N; a++)
		if (access_matrix[role][a] != ACCESS_NO && access_action_vault_wide((enum access_action)a))
			lacks |= 1u << a;
	return lacks;
}

static enum err add(struct vault *v, const struct users_actor *by, const char *name, enum access_role role,
                    const char *scope, int64_t expires, const struct secret *password, struct secret **password_out,
                    struct secret **totp_b32, struct secret **totp_uri, char *why, size_t whylen)
{
	struct users_grant_req g;
	struct access_grant ag;
	char reason[256];
	bool locked = false;
	int64_t gid = 0;
	enum err rc;

	if (!users_name_ok(name))
		return err_why(why, whylen, ERR_PARSE, "a user name is 1 to 64 of A-Z a-z 0-9 . _ @ -");
	if (scope == NULL)
		scope = users_default_scope(role);
	memset(&ag, 0, sizeof ag);
	rc = access_scope_parse(scope, &ag, why, whylen);
	if (rc == ERR_OK)
		rc = scope_collection_ok(v, &ag, why, whylen);
	if (rc != ERR_OK)
		return rc;
	lock(v, &locked);
	rc = users_create(v->ix, v->mk, name, role, password, expires, password_out, totp_b32, totp_uri);
	unlock(v, &locked);
	snprintf(reason, sizeof reason, "user-add %s role %s", name, access_role_name(role));
	if (rc == ERR_DENIED) {
		(void)audited(by, AUDIT_USER_CHANGE, AUDIT_FAILURE, "user-add: the name is taken");
		return err_why(why, whylen, rc, "there is already a user %s", name);
	}
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot create the user: %s", err_str(rc));
	if (audited(by, AUDIT_USER_CHANGE, AUDIT_SUCCESS, reason) != ERR_OK) {
		/* no user without its record: nothing refers to it yet */
		struct idx_user u;
		lock(v, &locked);
		rc = v->ix->ops->user_get(v->ix, name, &u);
		if (rc == ERR_OK)
			rc = v->ix->ops->user_delete(v->ix, u.id);
		unlock(v, &locked);
		if (rc != ERR_OK)
			log_error("user %s: created, its audit record not written, and it cannot be removed: %s", name,
			          err_str(rc));
		secret_free(*totp_b32);
		secret_free(*totp_uri);
		*totp_b32 = *totp_uri = NULL;
		if (password_out != NULL) {
			secret_free(*password_out);
			*password_out = NULL;
		}
		return err_why(why, whylen, ERR_IO, "the audit record could not be written: user %s %s", name,
		               rc == ERR_OK ? "not created" : "created and left without any grant");
	}
	memset(&g, 0, sizeof g);
	g.user = name;
	g.role = role;
	g.scope = scope;
	g.expires = expires;
	g.purpose = "initial grant (user add)";
	return grant(v, by, &g, &gid, why, whylen);
}

enum err users_add(struct vault *v, const struct users_actor *by, const char *name, enum access_role role,
                   const char *scope, int64_t expires, const struct secret *password, struct secret **password_out,
                   struct secret **totp_b32, struct secret **totp_uri, char *why, size_t whylen)
{
	struct users_actor me;
	struct audit *own;
	enum err rc;

	rc = log_for(v, by, &me, &own, why, whylen);
	if (rc == ERR_OK)
		rc = add(v, &me, name, role, scope, expires, password, password_out, totp_b32, totp_uri, why, whylen);
	audit_close(own);
	return rc;
}

static void do_disable(struct idx_user *u, const struct idx_user *before)
{
	(void)before;
	u->disabled = true;
}

static void do_enable(struct idx_user *u, const struct idx_user *before)
{
	(void)before;
	u->disabled = false;
}

static void do_unlock(struct idx_user *u, const struct idx_user *before)
{
	(void)before;
	u->failures = 0;
	u->locked_until = 0;
}

/* The undos, applied to the row as it is now (re-read), so that changes
 * made meanwhile (a failure counted, a TOTP step, another admin's recorded
 * change) are not overwritten: only the fields this change set go back,
 * and only while they still hold what it set. */
static void undo_enable(struct idx_user *u, const struct idx_user *before)
{
	(void)before;
	u->disabled = true;
}

static void undo_unlock(struct idx_user *u, const struct idx_user *before)
{
	if (u->failures == 0 && u->locked_until == 0) {
		u->failures = before->failures;
		u->locked_until = before->locked_until;
	}
}

/* name's row read, changed by fn and written back in one write transaction
 * (BEGIN IMMEDIATE: no other process, a server's login among them, commits
 * to the row between the read and the write, which would otherwise be
 * written over with the stale copy: a used TOTP step made usable again, a
 * lockout lifted). *row: the row as it was read (fn's before is *row when
 * changed_from is NULL, else changed_from). */
static enum err rewrite_user(struct vault *v, const char *name,
                             void (*fn)(struct idx_user *u, const struct idx_user *before),
                             const struct idx_user *changed_from, struct idx_user *row)
{
	struct index_store *ix = v->ix;
	struct idx_user u;
	bool locked = false;
	enum err rc;

	lock(v, &locked);
	rc = ix->ops->begin(ix);
	if (rc == ERR_OK) {
		rc = ix->ops->user_get(ix, name, &u);
		if (rc == ERR_OK) {
			*row = u;
			fn(&u, changed_from != NULL ? changed_from : row);
			rc = ix->ops->user_update(ix, &u);
			if (rc == ERR_OK && u.disabled)
				rc = ix->ops->session_delete_user(ix, u.id);
		}
		if (rc == ERR_OK)
			rc = ix->ops->commit(ix);
		else
			ix->ops->rollback(ix);
	}
	unlock(v, &locked);
	return rc;
}

/* A change of one user's flags (fn). When its record cannot be written, a
 * change that gives access (enable, unlock: undo) is undone; one that
 * takes it away (disable: undo NULL) is kept, and said so. */
static enum err change_user(struct vault *v, const struct users_actor *by, const char *name, const char *what,
                            void (*fn)(struct idx_user *u, const struct idx_user *before),
                            void (*undo)(struct idx_user *u, const struct idx_user *before), char *why, size_t whylen)
{
	struct idx_user before, now;
	struct users_actor me;
	struct audit *own;
	char reason[160];
	enum err rc;

	rc = log_for(v, by, &me, &own, why, whylen);
	if (rc != ERR_OK)
		return rc;
	rc = rewrite_user(v, name, fn, NULL, &before);
	snprintf(reason, sizeof reason, "%s %s", what, name);
	if (audited(&me, AUDIT_USER_CHANGE, rc == ERR_OK ? AUDIT_SUCCESS : AUDIT_FAILURE, reason) != ERR_OK &&
	    rc == ERR_OK) {
		if (undo == NULL) {
			rc = err_why(why, whylen, ERR_IO, "done, but the audit record could not be written");
		} else {
			rc = rewrite_user(v, name, undo, &before, &now);
			rc = err_why(why, whylen, ERR_IO, "the audit record could not be written: %s",
			             rc == ERR_OK ? "nothing was changed" : "changed, and it could not be undone");
		}
	}
	audit_close(own);
	if (rc == ERR_NOTFOUND)
		return err_why(why, whylen, rc, "no user %s", name);
	if (rc != ERR_OK && why != NULL && why[0] == 0)
		(void)err_why(why, whylen, rc, "%s", err_str(rc));
	return rc;
}

enum err users_set_disabled(struct vault *v, const struct users_actor *by, const char *name, bool disabled, char *why,
                            size_t whylen)
{
	return change_user(v, by, name, disabled ? "user-disable" : "user-enable", disabled ? do_disable : do_enable,
	                   disabled ? NULL : undo_enable, why, whylen);
}

enum err users_unlock(struct vault *v, const struct users_actor *by, const char *name, char *why, size_t whylen)
{
	return change_user(v, by, name, "user-unlock", do_unlock, undo_unlock, why, whylen);
}

/* The longest break-glass record reason: its prefix and a whole purpose. */
#define BG_REASON_PREFIX "grant -9223372036854775808 (break-glass): "
_Static_assert(sizeof BG_REASON_PREFIX - 1 + IDX_PURPOSE_MAX <= AUDIT_FIELD_MAX,
               "a break-glass record holds the clinician's reason whole");

/* The reason of a grant's record, with its purpose: the purpose is in the
 * grants table too, but only the record is in the signed chain, and a
 * break-glass is reviewed from its record (audit report --break-glass). A
 * break-glass names only the grant and the reason, so that a reason of
 * IDX_PURPOSE_MAX bytes is never cut by the writer (AUDIT_FIELD_MAX): its
 * user is the record's actor and its patient and study are the record's
 * objects. Another grant is described whole, its purpose last (the writer
 * cuts a long one at AUDIT_FIELD_MAX). The purpose is the user's text: the
 * audit writer escapes it, audit report's text cleans it. */
static void grant_reason(const struct idx_grant *g, const char *user, char *out, size_t outlen)
{
	if (g->break_glass) {
		snprintf(out, outlen, "grant %lld (break-glass): %s", (long long)g->id, g->purpose);
		return;
	}
	snprintf(out, outlen, "grant %lld: %s as %s on %s%s%s%s%s", (long long)g->id, user, g->role, g->scope,
	         g->with_priors ? " with priors" : "", g->expires ? "" : " without expiry",
	         g->purpose[0] ? "; purpose: " : "", g->purpose);
}

/* The patient (key hash) of a stored study; ERR_NOTFOUND: not stored.
 * Under the lock. */
static enum err study_patient(struct vault *v, const char *uid, uint8_t out[32])
{
	struct idx_study st;
	struct idx_patient pa;
	enum err rc;

	rc = v->ix->ops->study_get(v->ix, uid, &st);
	if (rc == ERR_OK)
		rc = v->ix->ops->patient_by_id(v->ix, st.patient_id, &pa);
	if (rc == ERR_OK)
		memcpy(out, pa.key_hmac, 32);
	return rc;
}

/* The objects of a grant's record, from its stored scope, as grant()
 * names them at its creation (about_study aside: not stored): a study
 * scope its study and, if stored, that study's patient (or the patient
 * kept for its priors); a patient scope its patient; a collection or *
 * none. ag holds the parsed scope, which ob's study points into. Under
 * the lock. */
static void grant_objects(struct vault *v, const struct idx_grant *g, struct access_grant *ag, uint8_t patient[32],
                          struct audit_objects *ob)
{
	static const uint8_t none[IDX_HMAC_LEN];
	char why[64];

	memset(ob, 0, sizeof *ob);
	memset(ag, 0, sizeof *ag);
	if (access_scope_parse(g->scope, ag, why, sizeof why) != ERR_OK)
		return;
	if (ag->scope == ACCESS_SCOPE_STUDY) {
		ob->study_uid = ag->target;
		if (study_patient(v, ag->target, patient) == ERR_OK)
			ob->patient = patient;
		else if (memcmp(g->patient, none, sizeof none) != 0) {
			memcpy(patient, g->patient, 32);
			ob->patient = patient;
		}
	} else if (ag->scope == ACCESS_SCOPE_PATIENT) {
		memcpy(patient, ag->patient, 32);
		ob->patient = patient;
	}
}

static enum err grant(struct vault *v, const struct users_actor *by, const struct users_grant_req *r, int64_t *id,
                      char *why, size_t whylen)
{
	struct access_grant ag;
	struct idx_grant g;
	struct idx_user u;
	struct audit_objects ob;
	uint8_t rec_patient[32];
	bool has_patient = false;
	char reason[128 + 64 + IDX_GRANT_SCOPE_MAX + IDX_PURPOSE_MAX];
	bool locked = false;
	enum err rc;

	memset(&ag, 0, sizeof ag);
	memset(&g, 0, sizeof g);
	if ((unsigned)r->role >= ACCESS_ROLE__N)
		return err_why(why, whylen, ERR_PARSE, "unknown role");
	rc = access_scope_parse(r->scope, &ag, why, whylen);
	if (rc == ERR_OK)
		rc = scope_collection_ok(v, &ag, why, whylen);
	if (rc != ERR_OK)
		return rc;
	if (r->with_priors && ag.scope != ACCESS_SCOPE_STUDY)
		return err_why(why, whylen, ERR_PARSE, "prior studies go with a study scope only");
	if (r->expires != 0 && r->expires <= r->not_before)
		return err_why(why, whylen, ERR_PARSE, "the grant would expire before it starts");
	if (r->purpose != NULL && strlen(r->purpose) > IDX_PURPOSE_MAX)
		return err_why(why, whylen, ERR_PARSE, "the purpose is longer than %u characters", IDX_PURPOSE_MAX);
	snprintf(g.role, sizeof g.role, "%s", access_role_name(r->role));
	access_scope_format(&ag, g.scope, sizeof g.scope);
	memcpy(g.patient, ag.patient, sizeof g.patient);
	g.with_priors = r->with_priors;
	g.not_before = r->not_before;
	g.expires = r->expires;
	snprintf(g.purpose, sizeof g.purpose, "%s", r->purpose ? r->purpose : "");
	g.break_glass = r->break_glass;
	g.created = (int64_t)time(NULL);
	snprintf(g.created_by, sizeof g.created_by, "%s", by->user ? by->user : "?");
	lock(v, &locked);
	rc = v->ix->ops->user_get(v->ix, r->user, &u);
	if (rc == ERR_NOTFOUND) {
		unlock(v, &locked);
		(void)audited(by, AUDIT_GRANT, AUDIT_FAILURE, "grant: no such user");
		return err_why(why, whylen, rc, "no user %s", r->user);
	}
	g.user_id = u.id;
	if (rc == ERR_OK && ag.scope == ACCESS_SCOPE_STUDY) {
		/* the study's patient: the grant's with priors, its record's always
		 * (an accounting of disclosures by patient lists it) */
		rc = study_patient(v, ag.target, rec_patient);
		if (rc == ERR_OK) {
			has_patient = true;
			if (r->with_priors)
				memcpy(g.patient, rec_patient, sizeof g.patient);
		}
		if (rc == ERR_NOTFOUND && r->with_priors) {
			unlock(v, &locked);
			return err_why(why, whylen, rc, "prior studies: study %s is not stored", ag.target);
		}
		if (rc == ERR_NOTFOUND)
			rc = ERR_OK;   /* a grant on a study still to come */
	} else if (ag.scope == ACCESS_SCOPE_PATIENT) {
		memcpy(rec_patient, ag.patient, sizeof rec_patient);
		has_patient = true;
	}
	if (rc == ERR_OK)
		rc = v->ix->ops->grant_put(v->ix, &g);
	unlock(v, &locked);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot record the grant: %s", err_str(rc));
	grant_reason(&g, r->user, reason, sizeof reason);
	memset(&ob, 0, sizeof ob);
	ob.patient = has_patient ? rec_patient : NULL;
	ob.study_uid = ag.scope == ACCESS_SCOPE_STUDY ? ag.target : r->about_study;
	if (audited_on(by, r->break_glass ? AUDIT_BREAK_GLASS : AUDIT_GRANT, AUDIT_SUCCESS, reason, &ob) != ERR_OK) {
		/* no grant without its record */
		lock(v, &locked);
		(void)v->ix->ops->grant_revoke(v->ix, g.id, (int64_t)time(NULL));
		unlock(v, &locked);
		return err_why(why, whylen, ERR_IO, "the audit record could not be written: grant withdrawn");
	}
	if (id != NULL)
		*id = g.id;
	return ERR_OK;
}

enum err users_grant(struct vault *v, const struct users_actor *by, const struct users_grant_req *r, int64_t *id,
                     char *why, size_t whylen)
{
	struct users_actor me;
	struct audit *own;
	enum err rc;

	rc = log_for(v, by, &me, &own, why, whylen);
	if (rc == ERR_OK)
		rc = grant(v, &me, r, id, why, whylen);
	audit_close(own);
	return rc;
}

static enum err revoke(struct vault *v, const struct users_actor *by, int64_t id, char *why, size_t whylen)
{
	struct access_grant ag;
	struct audit_objects ob;
	struct idx_grant g;
	uint8_t patient[32];
	char reason[128];
	bool locked = false;
	enum err rc;

	memset(&ob, 0, sizeof ob);
	lock(v, &locked);
	/* what it opened, named in the record as at its creation, so that
	 * the accounting by patient shows the access taken away too */
	if (v->ix->ops->grant_by_id(v->ix, id, &g) == ERR_OK)
		grant_objects(v, &g, &ag, patient, &ob);
	rc = v->ix->ops->grant_revoke(v->ix, id, (int64_t)time(NULL));
	unlock(v, &locked);
	snprintf(reason, sizeof reason, "revoke grant %lld%s", (long long)id,
	         rc == ERR_NOTFOUND ? ": no such grant" : rc == ERR_DENIED ? ": already revoked" : "");
	if (audited_on(by, AUDIT_GRANT, rc == ERR_OK ? AUDIT_SUCCESS : AUDIT_FAILURE, reason, &ob) != ERR_OK &&
	    rc == ERR_OK)
		return err_why(why, whylen, ERR_IO, "revoked, but the audit record could not be written");
	if (rc == ERR_NOTFOUND)
		return err_why(why, whylen, rc, "no grant %lld", (long long)id);
	if (rc == ERR_DENIED)
		return err_why(why, whylen, rc, "grant %lld was already revoked", (long long)id);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "%s", err_str(rc));
	return ERR_OK;
}

enum err users_revoke(struct vault *v, const struct users_actor *by, int64_t id, char *why, size_t whylen)
{
	struct users_actor me;
	struct audit *own;
	enum err rc;

	rc = log_for(v, by, &me, &own, why, whylen);
	if (rc == ERR_OK)
		rc = revoke(v, &me, id, why, whylen);
	audit_close(own);
	return rc;
}

/* ---- the grants of a request ---- */

struct collect {
	struct access_grant *g;
	size_t n, cap;
	int64_t now;
};

static enum err collect_one(void *ctx, const struct idx_grant *ig)
{
	struct collect *c = ctx;
	struct access_grant *g;
	char why[64];

	if (ig->revoked != 0 || (ig->expires != 0 && ig->expires <= c->now))
		return ERR_OK;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		struct access_grant *p;
		if (cap > ACCESS_MAX_GRANTS)
			return ERR_LIMIT;
		p = realloc(c->g, cap * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		c->g = p;
		c->cap = cap;
	}
	g = &c->g[c->n];
	memset(g, 0, sizeof *g);
	g->id = ig->id;
	if (!access_role_parse(ig->role, strlen(ig->role), &g->role) ||
	    access_scope_parse(ig->scope, g, why, sizeof why) != ERR_OK)
		return ERR_OK;   /* a row this version cannot read grants nothing */
	if (g->scope == ACCESS_SCOPE_STUDY)
		memcpy(g->patient, ig->patient, sizeof g->patient);
	g->with_priors = ig->with_priors;
	g->not_before = ig->not_before;
	g->expires = ig->expires;
	g->break_glass = ig->break_glass;
	c->n++;
	return ERR_OK;
}

/* The grants of recent users, tagged with the index's grants generation
 * read before they were loaded: reused only while the generation is the
 * same, i.e. while no grant was added or revoked anywhere (by this server
 * or the command line). Times are checked at each use, so an expiry still
 * takes effect at once; the account itself is read every time. */
#define GRANT_CACHE 32u

struct gcache {
	const struct vault *v;
	int64_t user_id, gen;
	struct access_grant *g;
	size_t n;
	uint64_t used;
};

static struct gcache gcache[GRANT_CACHE];
static uint64_t gcache_clock;
static pthread_mutex_t gcache_mu = PTHREAD_MUTEX_INITIALIZER;

static bool cache_get(const struct vault *v, int64_t user_id, int64_t gen, int64_t now, struct access_grant **out,
                      size_t *n)
{
	bool hit = false;
	size_t i, k;

	pthread_mutex_lock(&gcache_mu);
	for (i = 0; i < GRANT_CACHE; i++) {
		struct gcache *c = &gcache[i];
		if (c->v != v || c->user_id != user_id || c->gen != gen || c->g == NULL)
			continue;
		*out = malloc((c->n ? c->n : 1) * sizeof **out);
		if (*out != NULL) {
			for (k = 0, *n = 0; k < c->n; k++)
				if (c->g[k].expires == 0 || now < c->g[k].expires)
					(*out)[(*n)++] = c->g[k];
			c->used = ++gcache_clock;
			hit = true;
		}
		break;
	}
	pthread_mutex_unlock(&gcache_mu);
	return hit;
}

static void cache_put(const struct vault *v, int64_t user_id, int64_t gen, const struct access_grant *g, size_t n)
{
	struct gcache *victim = &gcache[0];
	struct access_grant *copy = malloc((n ? n : 1) * sizeof *copy);
	size_t i;

	if (copy == NULL)
		return;
	if (n > 0)
		memcpy(copy, g, n * sizeof *copy);
	pthread_mutex_lock(&gcache_mu);
	for (i = 0; i < GRANT_CACHE; i++) {
		struct gcache *c = &gcache[i];
		if (c->v == v && c->user_id == user_id) {
			victim = c;
			break;
		}
		if (c->used < victim->used)
			victim = c;
	}
	free(victim->g);
	victim->v = v;
	victim->user_id = user_id;
	victim->gen = gen;
	victim->g = copy;
	victim->n = n;
	victim->used = ++gcache_clock;
	pthread_mutex_unlock(&gcache_mu);
}

void users_forget(const struct vault *v)
{
	size_t i;

	pthread_mutex_lock(&gcache_mu);
	for (i = 0; i < GRANT_CACHE; i++)
		if (gcache[i].v == v) {
			free(gcache[i].g);
			memset(&gcache[i], 0, sizeof gcache[i]);
		}
	pthread_mutex_unlock(&gcache_mu);
}

/* The grants of g[0..n) not expired at now, in place. */
static size_t drop_expired(struct access_grant *g, size_t n, int64_t now)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (g[i].expires == 0 || now < g[i].expires)
			g[k++] = g[i];
	return k;
}

enum err users_grants_now(struct vault *v, int64_t user_id, int64_t now, struct access_grant **out, size_t *n)
{
	struct collect c;
	struct idx_user u;
	bool locked = false, have_gen = false;
	int64_t gen = 0;
	enum err rc;

	memset(&c, 0, sizeof c);
	c.now = 0;   /* every grant not revoked: times are checked per call */
	lock(v, &locked);
	rc = v->ix->ops->user_by_id(v->ix, user_id, &u);
	if (rc == ERR_OK && (u.disabled || (u.expires != 0 && u.expires <= now)))
		rc = ERR_AUTH;
	else if (rc == ERR_NOTFOUND)
		rc = ERR_AUTH;
	if (rc == ERR_OK && v->ix->ops->grants_generation != NULL &&
	    v->ix->ops->grants_generation(v->ix, &gen) == ERR_OK) {
		have_gen = true;
		if (cache_get(v, user_id, gen, now, out, n)) {
			unlock(v, &locked);
			return ERR_OK;
		}
	}
	if (rc == ERR_OK)
		rc = v->ix->ops->grant_list(v->ix, user_id, false, collect_one, &c);
	unlock(v, &locked);
	if (rc != ERR_OK) {
		free(c.g);
		return rc;
	}
	if (have_gen)
		cache_put(v, user_id, gen, c.g, c.n);
	*out = c.g;
	*n = drop_expired(c.g, c.n, now);
	return ERR_OK;
}

/* ---- times ---- */

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

enum err users_parse_time(const char *s, int64_t now, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0;
	size_t n;
	int64_t t;

	if (s == NULL || (n = strlen(s)) == 0 || n > USERS_TIME_TEXT_MAX)
		return ERR_PARSE;
	if (s[0] == '@' || s[0] == '+') {
		char *end = NULL;
		long long v;
		if (!isdigit((unsigned char)s[1]))
			return ERR_PARSE;
		v = strtoll(s + 1, &end, 10);
		if (v < 0 || v > USERS_TIME_MAX || (s[0] == '@' && v == 0))
			return ERR_PARSE;
		if (s[0] == '@') {
			if (*end != 0)
				return ERR_PARSE;
			*out = v;
			return ERR_OK;
		}
		if (end[0] == 0 || end[1] != 0)
			return ERR_PARSE;
		switch (end[0]) {
		case 's': break;
		case 'm': v *= 60; break;
		case 'h': v *= 3600; break;
		case 'd': v *= 86400; break;
		default: return ERR_PARSE;
		}
		if (v > 100LL * 366 * 86400 || now < 0 || now > USERS_TIME_MAX - v || now + v == 0)
			return ERR_PARSE;
		*out = now + v;
		return ERR_OK;
	}
	if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d))
		return ERR_PARSE;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
		return ERR_PARSE;
	s += 10;
	if (*s == 'T' || *s == ' ') {
		if (strlen(s) < 6 || s[3] != ':' || !digits(s + 1, 2, &h) || !digits(s + 4, 2, &mi))
			return ERR_PARSE;
		s += 6;
		if (*s == ':') {
			if (!digits(s + 1, 2, &se) || strlen(s) < 3)
				return ERR_PARSE;
			s += 3;
		}
		if (h > 23 || mi > 59 || se > 59)
			return ERR_PARSE;
	}
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;
		if (strlen(s) != 6 || s[3] != ':' || !digits(s + 1, 2, &oh) || !digits(s + 4, 2, &om) || oh > 14 || om > 59)
			return ERR_PARSE;
		t -= sign * (oh * 3600 + om * 60);
		s += 6;
	}
	if (*s != 0 || t <= 0 || t > USERS_TIME_MAX)   /* 1970-01-01T00:00+01:00, 9999-12-31T23:59-01:00 */
		return ERR_PARSE;
	*out = t;
	return ERR_OK;
}

int64_t users_parse_stamp(const char *t)
{
	int64_t out = 0;
	char d[21];

	if (t == NULL || strlen(t) < 20)
		return 0;
	memcpy(d, t, 19);
	d[19] = 'Z';
	d[20] = 0;
	return users_parse_time(d, 0, &out) == ERR_OK ? out : 0;
}

const char *users_state(const struct idx_user *u, int64_t now)
{
	return u->disabled ? "disabled" : (u->expires && u->expires <= now) ? "expired"
	       : u->locked_until > now ? "locked" : "active";
}
