/* token.h: API tokens (SPEC section 2 `token create`, section 3 bearer
 * tokens): long-lived bearer tokens for service accounts and scripts.
 * A token is "dvt_" and 256 random bits as 64 lower-case hex digits; it is
 * shown once and only its HMAC-SHA-256 under a key derived from the index
 * key is stored (as for sessions, with a key of its own). A token has a
 * hard expiry (no idle timeout), a scope, and can be revoked; it acts as
 * its user with the user's role, and stops working once the user is
 * disabled or expired. See docs/internals/tokens.md. Layer: core. */
#ifndef DICOMVAULT_TOKEN_H
#define DICOMVAULT_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/access.h"
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"
#include "dicomvault/index.h"

#define TOKEN_PREFIX     "dvt_"
#define TOKEN_PREFIX_LEN 4u
#define TOKEN_LEN        (TOKEN_PREFIX_LEN + 64u)   /* the whole token */

/* A scope as given to `token create --scope`: a comma list of actions
 * among store, query, retrieve (each at most once, at least one) and at
 * most one collection=NAME (NAME 1..64 of [A-Za-z0-9._-]). out receives
 * the canonical form (actions in that order, then the collection) and
 * *collection points at the NAME inside out (or is NULL). ERR_PARSE with
 * why set otherwise. */
WUR enum err token_scope_parse(const char *s, char *out, size_t cap, const char **collection, char *why,
                               size_t whylen);

/* Whether a canonical scope ("" : no restriction) lets a token do action
 * a on an object of collection (NULL: not in one): the action must be
 * listed (store, query, retrieve for both retrieve actions; nothing else),
 * and the collection, when the scope names one, must be that one. */
bool token_scope_allows(const char *scope, enum access_action a, const char *collection);

/* Whether t has the form of an API token (prefix and 64 lower-case hex). */
bool token_form_ok(const char *t, size_t n);
/* Whether t starts like an API token (the prefix): the caller then does
 * not treat it as a session token. */
bool token_is_api(const char *t, size_t n);

/* The key of stored token hashes, derived with HKDF from the index key. */
WUR enum err token_key_new(const struct secret *index_key, struct secret **out);
/* HMAC-SHA-256 of a token under that key. */
WUR enum err token_hash(const struct secret *key, const char *t, size_t n, uint8_t out[IDX_HMAC_LEN]);

/* A new token for user, valid ttl seconds from now (1..TOKEN_TTL_MAX), with
 * a canonical scope (token_scope_parse). *token (TOKEN_LEN characters, a
 * sealed secret the caller frees) and *out (the row; user_name set) are
 * set. ERR_NOTFOUND: no such user; ERR_DENIED: the user is disabled or
 * expired; ERR_PARSE: a bad ttl or scope. One index transaction. */
WUR enum err token_create(struct index_store *ix, const struct secret *key, const char *user, int64_t ttl,
                          const char *scope, int64_t now, struct secret **token, struct idx_token *out);

/* Revokes token id from now on (*out: its row). ERR_NOTFOUND: no such
 * token; ERR_DENIED: already revoked. */
WUR enum err token_revoke(struct index_store *ix, int64_t id, int64_t now, struct idx_token *out);

/* The state of a token row at time now: "active", "expired" or "revoked". */
const char *token_state(const struct idx_token *t, int64_t now);

/* The check of one request's token hash at time now (the caller holds the
 * index lock). ERR_OK: *tok and *role (the user's role) are set and
 * last_used is written when it is TOKEN_TOUCH_EVERY old. ERR_AUTH: refused;
 * *why says why when the token is known ("revoked", "expired", "user
 * disabled", "user expired"), NULL when it is not; *tok is set when known
 * (for the audit record). */
WUR enum err token_check(struct index_store *ix, const uint8_t hash[IDX_HMAC_LEN], int64_t now, struct idx_token *tok,
                         char role[17], const char **why);

#endif
