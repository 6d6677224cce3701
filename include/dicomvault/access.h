/* access.h: the access policy (SPEC section 5, docs/ACCESS.md): roles,
 * actions, the permission matrix generated from docs/ACCESS.md, grants and
 * their scopes, the decision for one request on one object, and the
 * collection a new study belongs to. Pure: no index, no clock of its own
 * (the caller passes now). Layer: core. */
#ifndef DICOMVAULT_ACCESS_H
#define DICOMVAULT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"

enum access_role {
	ACCESS_ROLE_ADMIN,
	ACCESS_ROLE_RADIOLOGIST,
	ACCESS_ROLE_PHYSICIAN,
	ACCESS_ROLE_TECHNOLOGIST,
	ACCESS_ROLE_RESEARCHER,
	ACCESS_ROLE_AUDITOR,
	ACCESS_ROLE__N
};

enum access_action {
	ACCESS_ACT_STORE,
	ACCESS_ACT_QUERY,
	ACCESS_ACT_RETRIEVE,
	ACCESS_ACT_RETRIEVE_ORIGINAL,
	ACCESS_ACT_EXPORT,
	ACCESS_ACT_SHARE,
	ACCESS_ACT_DELETE,
	ACCESS_ACT_MANAGE_USERS,
	ACCESS_ACT_READ_AUDIT,
	ACCESS_ACT_BREAK_GLASS,
	ACCESS_ACT__N
};

/* Cells of the matrix. */
enum { ACCESS_NO = 0, ACCESS_YES = 1, ACCESS_DEID = 2 };

/* Generated from docs/ACCESS.md (tools/gen_access.awk). */
extern const uint8_t access_matrix[ACCESS_ROLE__N][ACCESS_ACT__N];

const char *access_role_name(enum access_role r);
const char *access_action_name(enum access_action a);
/* Exact names as in docs/ACCESS.md; false for anything else. */
bool access_role_parse(const char *s, size_t n, enum access_role *out);
bool access_action_parse(const char *s, size_t n, enum access_action *out);

#define ACCESS_NAME_MAX 64u      /* collection names */
#define ACCESS_PURPOSE_MAX 200u
#define ACCESS_MAX_GRANTS 100000u   /* grants of one user considered per decision */

enum access_scope {
	ACCESS_SCOPE_ALL,          /* "*": every collection */
	ACCESS_SCOPE_COLLECTION,   /* "collection:NAME" */
	ACCESS_SCOPE_STUDY,        /* "study:UID" (with_priors: the patient's other studies too) */
	ACCESS_SCOPE_PATIENT       /* "patient:HEX" (64 hex digits: the patient's key hash) */
};

struct access_grant {
	int64_t id;
	enum access_role role;
	enum access_scope scope;
	char target[ACCESS_NAME_MAX + 1];   /* collection name or study UID; "" for ALL and PATIENT */
	uint8_t patient[32];                /* PATIENT, or STUDY with with_priors: the patient */
	bool with_priors;
	int64_t not_before;                 /* unix seconds; 0: open */
	int64_t expires;                    /* unix seconds; 0: never */
	bool break_glass;                   /* opened by break-glass (flagged in the audit) */
};

/* "*", "collection:NAME" (NAME: 1-64 of [A-Za-z0-9._-]), "study:UID"
 * (digits and dots, 1-64) or "patient:" and 64 hex digits into g's scope
 * fields. ERR_PARSE with the reason in why. */
WUR enum err access_scope_parse(const char *s, struct access_grant *g, char *why, size_t whylen);
/* The scope as text, as access_scope_parse reads it. */
void access_scope_format(const struct access_grant *g, char *out, size_t cap);

/* The object a request touches. Any field may be NULL when the request is
 * not about one (a query over everything, user management): then only
 * grants of scope ALL can decide for a collection-wide action, and actions
 * that touch no patient data (manage-users, read-audit) need any grant in
 * force whose role allows them. */
struct access_object {
	const char *collection;
	const char *study_uid;
	const uint8_t *patient;   /* 32 bytes */
};

/* The decision for one action on one object under a user's grants at now:
 * ACCESS_YES, ACCESS_DEID (de-identified only) or ACCESS_NO. The most
 * permissive grant in force that covers the object wins; *by, if not NULL,
 * gets the deciding grant (NULL when none). manage-users and read-audit
 * are the whole vault's: only a grant of scope "*" gives them. */
int access_decide(const struct access_grant *g, size_t n, enum access_action a, const struct access_object *o,
                  int64_t now, const struct access_grant **by);
/* manage-users and read-audit: the whole vault's (its users and grants,
 * its one audit trail), given only by a grant of scope "*". */
bool access_action_vault_wide(enum access_action a);
/* Whether a grant in force at now has a role that allows a, whatever its
 * scope: a refusal of a vault-wide action to such a user is for want of a
 * grant of scope "*", not because of its role (the 403 says which). */
bool access_role_allows(const struct access_grant *g, size_t n, enum access_action a, int64_t now);
/* Whether grant g is in force at now and covers o. */
bool access_grant_covers(const struct access_grant *g, const struct access_object *o, int64_t now);

/* ---- collections (SPEC 5): [collection "NAME"] match / calling_ae ---- */

struct ini;
struct dcm_ds;
struct access_collections;

#define ACCESS_MAX_COLLECTIONS 1000u

/* The [collection "NAME"] sections of conf, in order: `match =
 * Keyword=value` (the keyword from the data dictionary; the value a
 * pattern with * and ?) and/or `calling_ae = AE`. A section with neither
 * is a named collection that STOW or grants may target. ERR_PARSE with the
 * line and reason in why. */
WUR enum err access_collections_load(const struct ini *conf, struct access_collections **out, char *why,
                                     size_t whylen);
void access_collections_free(struct access_collections *c);
/* Whether NAME is "default" or a configured collection. */
bool access_collection_known(const struct access_collections *c, const char *name);
/* The collection of a new study: the first section whose rules fit (match
 * against ds, calling_ae against the DIMSE peer; both must fit when both
 * are given), else target (a STOW target collection, if known), else
 * "default". */
const char *access_collection_for(const struct access_collections *c, const struct dcm_ds *ds, const char *calling_ae,
                                  const char *target);
/* Whether a section of collection NAME has `calling_ae = AE` naming
 * calling_ae: the administrator routes that peer's stores there. */
bool access_collection_routes_ae(const struct access_collections *c, const char *name, const char *calling_ae);

#endif
