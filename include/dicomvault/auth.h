/* auth.h: interactive login (Argon2id password + TOTP), lockout and
 * sessions (SPEC sections 3 and 5), independent of HTTP: the caller passes
 * the client's address and the time, so the rules are testable with a
 * fake clock. Every login, failure, lockout and logout is audited
 * (audit.h). Thread-safe: index calls are serialised by the caller's index
 * lock, failure counters by a lock of their own. Layer: core. */
#ifndef DICOMVAULT_AUTH_H
#define DICOMVAULT_AUTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"

#define AUTH_TOKEN_LEN 64u   /* a session token: 256 random bits as lower-case hex */

/* [auth] of dicomvault.conf. */
struct auth_conf {
	int64_t idle_timeout;       /* idle_timeout, seconds (default 900) */
	int64_t session_lifetime;   /* session_lifetime, seconds (default 43200) */
	unsigned lockout_failures;  /* lockout_failures (default 5) */
	int64_t lockout_window;     /* lockout_window, seconds (default 900): counting window and lock time */
	int64_t break_glass_minutes; /* break_glass_minutes (default 60): a break-glass grant's life */
	unsigned limiter_slots;     /* failure counters kept in memory (AUTH_LIMITER_SLOTS; not a key) */
};

struct audit;
struct ini;
struct index_store;

/* Defaults, then the [auth] keys of conf (NULL: defaults only). A value
 * that is not an integer in range is ERR_PARSE with why set ("line N:
 * [auth] KEY must be ..."); vault_conf_check runs it for every command. */
WUR enum err auth_conf_load(const struct ini *conf, struct auth_conf *out, char *why, size_t whylen);

struct auth;

/* The configured life of a break-glass grant, in minutes. */
int64_t auth_break_glass_minutes(const struct auth *a);

/* ix, ix_lock, mk, index_key and audit are borrowed and must outlive the
 * auth. ix_lock serialises every use of ix (the SQLite store is not
 * thread-safe); other users of ix in the process take the same lock. mk
 * unwraps TOTP seeds; the session-token key is derived from index_key.
 * audit receives the records (NULL: none, for tests). */
WUR enum err auth_new(const struct auth_conf *c, struct index_store *ix, pthread_mutex_t *ix_lock,
                      const struct secret *mk, const struct secret *index_key, struct audit *audit,
                      struct auth **out);
void auth_free(struct auth *a);

/* A login attempt. Strings are (pointer, length) as received; none needs
 * to be NUL-terminated except address. */
struct auth_login {
	const char *user;
	size_t user_len;
	const struct secret *password;
	const char *totp;
	size_t totp_len;
	const char *address;     /* the client's numeric address (lockout, audit) */
	const char *user_agent;  /* for the audit record, or NULL */
};

/* The body of POST /api/auth/login, parsed (auth_body.c, pure: bytes in,
 * fields out; fuzzed by fuzz/login_fuzz.c). */
struct auth_login_req {
	char user[1025];           /* HTTP_LOGIN_MAX_FIELD + 1; user_len bytes, NUL-terminated */
	size_t user_len;
	char totp[17];             /* the code as sent (at most 16 bytes) */
	size_t totp_len;
	struct secret *password;   /* sealed */
};

/* A JSON object of exactly "username", "password" and "totp", each a
 * non-empty string without NUL (username at most HTTP_LOGIN_MAX_FIELD
 * bytes, password CRYPTO_PASSWORD_MAX, totp 16), nested at most
 * HTTP_JSON_MAX_DEPTH, no duplicate member, nothing after it. ERR_PARSE:
 * detail says why (a member's name and problem, or the line and column of
 * a syntax error; never input bytes); ERR_NOMEM. Jansson's copies of the
 * password and code are wiped. *out is set only on success; release it
 * with auth_login_req_fini(). */
WUR enum err auth_login_parse(const uint8_t *body, size_t n, struct auth_login_req *out, char *detail,
                              size_t detaillen);
void auth_login_req_fini(struct auth_login_req *r);

/* An authenticated session, or an API token (token.h). */
struct auth_session {
	int64_t session_id;     /* the session's id, or the API token's */
	int64_t user_id;
	char user[65];
	char role[17];
	int64_t expires;        /* absolute end, unix seconds */
	int64_t idle_expires;   /* end if there is no further request (an API token: expires) */
	bool api_token;         /* an API token, not a login session */
	char scope[129];        /* an API token's scope (IDX_SCOPE_MAX + 1 bytes), "" for a session */
};

/* ERR_OK: a new session; *token (AUTH_TOKEN_LEN hex characters, a sealed
 * secret the caller frees) and *out are set.
 * ERR_AUTH: refused; the reason (unknown user, password, TOTP code, a code
 *   already used, disabled or expired account) is audited, not returned.
 * ERR_DENIED: the account or the address is locked out; *retry_after is
 *   set to the seconds left.
 * ERR_LIMIT: too many logins in progress; try again later.
 * ERR_IO: the success could not be audited, so there is no session.
 * Unknown users cost the same Argon2id time as known ones. */
WUR enum err auth_login(struct auth *a, const struct auth_login *in, int64_t now, struct secret **token,
                        struct auth_session *out, int64_t *retry_after);

/* The session of a token (cookie or bearer). ERR_AUTH if the token is
 * malformed, unknown, idle too long or past its lifetime, or its user is
 * disabled or expired (an ended session is deleted, and its end recorded
 * as a logout with the reason: http.md, Sessions). Updates last_seen.
 * An API token (token.h: "dvt_" + 64 hex) is checked against the
 * api_tokens table instead, on every call: no idle timeout, refused once
 * revoked or expired or its user disabled or expired; a refusal of a
 * known token is audited (token-refused). *out then has api_token set. */
WUR enum err auth_session_check(struct auth *a, const char *token, size_t len, int64_t now,
                                struct auth_session *out);
/* The same for a request from address (numeric) with user agent ua, for
 * the audit record of a refused API token or of a session's end (NULL:
 * unknown). */
WUR enum err auth_request_check(struct auth *a, const char *token, size_t len, int64_t now, const char *address,
                                const char *ua, struct auth_session *out);

/* The account named by an identity provider's token (a JWT's "sub",
 * jwt.h): ERR_OK with *out set (user_id, user, role; session_id 0,
 * api_token false, no scope, expires = until) when the account exists and
 * is neither disabled nor expired at now; ERR_AUTH otherwise; another
 * error when the index cannot be read. Read from the index at each call. */
WUR enum err auth_user_check(struct auth *a, const char *name, int64_t now, int64_t until, struct auth_session *out);

/* Ends the session of a valid token (ERR_AUTH otherwise; ERR_DENIED for an
 * API token: those end by `dicomvault token revoke`). */
WUR enum err auth_logout(struct auth *a, const char *token, size_t len, int64_t now, const char *address,
                         const char *user_agent);

#endif
