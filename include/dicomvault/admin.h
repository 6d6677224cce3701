/* admin.h: the requests of the administration API (docs/ACCESS.md,
 * "Administration" and "Break-glass") parsed into fields: POST /api/users,
 * POST /api/grants, POST /api/auth/break-glass and the parameters of GET
 * /api/audit. Pure (bytes or strings and the time in, fields or a reason
 * out), so that they can be fuzzed (fuzz/admin_fuzz.c); what needs the
 * vault (a collection that exists, a user that exists, a patient's keyed
 * hash) stays with the handlers. Layer: core. */
#ifndef DICOMVAULT_ADMIN_H
#define DICOMVAULT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/err.h"
#include "dicomvault/index.h"
#include "dicomvault/limits.h"

#define ADMIN_REASON_MIN  8u     /* a break-glass reason, bytes (it becomes the grant's purpose) */
#define ADMIN_REASON_MAX  IDX_PURPOSE_MAX
#define ADMIN_PATIENT_MAX 64u    /* a Patient ID in an audit query */

/* POST /api/users {"username", "role", "collection"?, "expires"?} */
struct admin_user_req {
	char username[AUTH_NAME_MAX + 1];
	enum access_role role;
	char collection[ACCESS_NAME_MAX + 1];   /* "" when not given: users_default_scope */
	int64_t expires;                        /* unix seconds; 0: never */
};

/* POST /api/grants {"username", "role", "scope", "from"?, "expires"?,
 * "purpose"?, "with_priors"?}; the scope as access_scope_parse reads it. */
struct admin_grant_req {
	char username[AUTH_NAME_MAX + 1];
	enum access_role role;
	char scope[IDX_GRANT_SCOPE_MAX + 1];
	char purpose[IDX_PURPOSE_MAX + 1];      /* "" when not given */
	bool with_priors;
	int64_t not_before, expires;            /* unix seconds; 0: open, never */
};

/* POST /api/auth/break-glass {"study": UID, "reason": 8 to 200 bytes
 * without control characters}. */
struct admin_break_glass_req {
	char study[IDX_UID_MAX + 1];
	char reason[ADMIN_REASON_MAX + 1];
};

/* GET /api/audit?user=&action=&patient=&from=&to= (each optional). */
struct admin_audit_query {
	char user[AUTH_NAME_MAX + 1];          /* "" when not given */
	char action[AUDIT_ACTION_MAX + 1];
	char patient[ADMIN_PATIENT_MAX + 1];    /* the Patient ID as given; the handler hashes it */
	int64_t from, to;                       /* unix seconds, > 0; 0: not given */
};

/* Each: ERR_OK and *out filled, or ERR_PARSE with the reason in detail
 * (names a member and its problem; never quotes input bytes), or
 * ERR_NOMEM. Unknown members are refused, so that a misspelt "expires"
 * never makes an account that does not expire. now: for relative times
 * ("+30d"). */
WUR enum err admin_user_parse(const uint8_t *body, size_t n, int64_t now, struct admin_user_req *out, char *detail,
                              size_t detaillen);
WUR enum err admin_grant_parse(const uint8_t *body, size_t n, int64_t now, struct admin_grant_req *out,
                               char *detail, size_t detaillen);
WUR enum err admin_break_glass_parse(const uint8_t *body, size_t n, struct admin_break_glass_req *out, char *detail,
                                     size_t detaillen);
/* The query's parameters as given (NULL: absent). */
WUR enum err admin_audit_query_parse(const char *user, const char *action, const char *patient, const char *from,
                                     const char *to, int64_t now, struct admin_audit_query *out, char *detail,
                                     size_t detaillen);

#endif
