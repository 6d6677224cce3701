/* users.h: user accounts and their grants (SPEC sections 2 and 5,
 * docs/ACCESS.md), the same for the command line (`dicomvault user`) and
 * the API (/api/users, /api/grants). Every change is audited with who made
 * it. The index is used under v->ix_lock when the caller set one.
 * Layer: core. */
#ifndef DICOMVAULT_USERS_H
#define DICOMVAULT_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/access.h"
#include "dicomvault/err.h"

struct vault;
struct audit;
struct secret;
struct index_store;

/* Who makes a change, for the audit record (its actor, SPEC section 8). */
struct users_actor {
	const char *user;        /* "admin", or the local operator's login name */
	const char *role;
	const char *addr;        /* "local" for the command line */
	struct audit *audit;     /* NULL: append to the vault's log and close it */
	const char *session;     /* audit_session_ref() of the request's session; NULL on the command line */
	const char *user_agent;  /* the request's User-Agent; NULL on the command line */
};

/* A random, readable password: 24 base32 characters (120 bits). */
WUR enum err users_gen_password(struct secret **out);

/* Account names: 1-64 of [A-Za-z0-9._@-]. */
bool users_name_ok(const char *s);

/* A new account with a role, an Argon2id password (given, or generated:
 * *password_out gets it) and a new TOTP seed wrapped by the master key;
 * *totp_b32 and *totp_uri get the seed to show once. ERR_DENIED if the
 * name is taken. expires: 0 never. The caller frees the secrets. */
WUR enum err users_create(struct index_store *ix, const struct secret *mk, const char *name, enum access_role role,
                          const struct secret *password, int64_t expires, struct secret **password_out,
                          struct secret **totp_b32, struct secret **totp_uri);

/* The scope of user add's grant when none is given: "*" for a role whose
 * every action is the whole vault's (auditor: read-audit is given only by
 * a grant of scope "*", so one on a collection would give it nothing), else
 * "collection:default" (an admin given "*" would see every patient's
 * studies: it is told instead, users_scope_lacks). */
const char *users_default_scope(enum access_role role);
/* The actions of role that a grant of it on scope does not give, because
 * they are the whole vault's (access_action_vault_wide) and scope is not
 * "*": a bit (1u << action) each; 0 when none. */
unsigned users_scope_lacks(enum access_role role, const char *scope);

/* `user add`: users_create, then a grant of the role on scope (NULL:
 * users_default_scope), both audited. A collection scope must name
 * "default" or a [collection] of v->colls (ERR_PARSE, "no such
 * collection", as for users_grant). */
WUR enum err users_add(struct vault *v, const struct users_actor *by, const char *name, enum access_role role,
                       const char *scope, int64_t expires, const struct secret *password,
                       struct secret **password_out, struct secret **totp_b32, struct secret **totp_uri, char *why,
                       size_t whylen);

/* Enable or disable an account (a disabled account's sessions end). */
WUR enum err users_set_disabled(struct vault *v, const struct users_actor *by, const char *name, bool disabled,
                                char *why, size_t whylen);
/* Clears failed logins and a lockout. */
WUR enum err users_unlock(struct vault *v, const struct users_actor *by, const char *name, char *why, size_t whylen);

/* A new grant; *id gets its id. A study scope with with_priors records the
 * study's patient (the study must be stored). ERR_NOTFOUND: no such user
 * (or study, for priors); ERR_PARSE: a bad scope or times, or a collection
 * scope naming neither "default" nor a [collection] of v->colls. */
struct users_grant_req {
	const char *user;
	enum access_role role;
	const char *scope;        /* as access_scope_parse reads it */
	bool with_priors;
	int64_t not_before, expires;
	const char *purpose;      /* optional, at most IDX_PURPOSE_MAX bytes */
	bool break_glass;
	const char *about_study;  /* optional: the study that asked for it (break-glass), named in its record */
};
WUR enum err users_grant(struct vault *v, const struct users_actor *by, const struct users_grant_req *g, int64_t *id,
                         char *why, size_t whylen);
/* Revokes grant id (ERR_NOTFOUND, or ERR_DENIED if already revoked). */
WUR enum err users_revoke(struct vault *v, const struct users_actor *by, int64_t id, char *why, size_t whylen);

/* The grants of a user in force at now, as the policy reads them, after
 * checking the account (ERR_AUTH if disabled, expired or unknown). *out is
 * malloc'd (the caller frees it); at most ACCESS_MAX_GRANTS. Takes
 * v->ix_lock if set. The account is read every time; the grants are kept
 * between calls only while the index's grants generation (bumped by every
 * grant and revocation, in any process) is unchanged, and their times are
 * checked at each call, so a change or an expiry takes effect at once. */
WUR enum err users_grants_now(struct vault *v, int64_t user_id, int64_t now, struct access_grant **out, size_t *n);

/* Drops what users_grants_now keeps of v's grants (vault_close calls it). */
void users_forget(const struct vault *v);

/* The latest time users_parse_time gives: 9999-12-31T23:59:59Z. */
#define USERS_TIME_MAX 253402300799LL
#define USERS_TIME_TEXT_MAX 40u   /* the longest text it reads */

/* "2026-11-30", "2026-11-30T17:00", "2026-11-30T17:00:00Z" or with an
 * offset (+01:00), "@UNIXSECONDS", or "+N" with s, m, h or d (from now;
 * at most 100 years). Every form gives a time from 1 to USERS_TIME_MAX,
 * so that any time it gives can be written back as "@N" and none is
 * taken for 0, which grants, accounts and queries read as "not given"
 * (1970-01-01T00:00:00Z itself is refused). ERR_PARSE otherwise. */
WUR enum err users_parse_time(const char *s, int64_t now, int64_t *out);
/* An audit record's "time" ("2026-11-22T18:06:24.007Z") in unix seconds,
 * to the second; 0 if it is not one. */
int64_t users_parse_stamp(const char *t);

struct idx_user;
/* What an account is at now, as `user list` and GET /api/users say it:
 * "disabled", "expired", "locked" or "active". */
const char *users_state(const struct idx_user *u, int64_t now);

#endif
