/* token.c: API tokens (SPEC sections 2 and 3): creation, revocation and
 * the per-request check; scope strings. Only an HMAC-SHA-256 of a token is
 * stored, under a key derived from the index key with an HKDF label of its
 * own (a session hash cannot be replayed as a token hash and the other way
 * round). See docs/internals/tokens.md. Layer: core. */
#include <stdio.h>
#include <string.h>
#include "dicomvault/limits.h"
#include "dicomvault/token.h"

#define TOKEN_RAW_LEN 32u   /* 256 bits */

static enum err why_set(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
	return ERR_PARSE;
}

static bool coll_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

enum err token_scope_parse(const char *s, char *out, size_t cap, const char **collection, char *why, size_t whylen)
{
	static const char *const actions[] = { "store", "query", "retrieve" };
	static const char coll[] = "collection=";
	bool have[3] = { false, false, false };
	const char *p, *end, *cname = NULL;
	size_t n, cn = 0, i, o = 0;
	int w;

	if (s == NULL || *s == 0)
		return why_set(why, whylen, "the scope is empty");
	if (strlen(s) > IDX_SCOPE_MAX)
		return why_set(why, whylen, "the scope is too long");
	for (p = s;; p = end + 1) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (n == 0)
			return why_set(why, whylen, "empty item in the scope (two commas, or a comma at an end)");
		for (i = 0; i < 3; i++)
			if (n == strlen(actions[i]) && memcmp(p, actions[i], n) == 0)
				break;
		if (i < 3) {
			if (have[i])
				return why_set(why, whylen, "an action appears twice in the scope");
			have[i] = true;
		} else if (n > sizeof coll - 1 && memcmp(p, coll, sizeof coll - 1) == 0) {
			if (cname != NULL)
				return why_set(why, whylen, "more than one collection= in the scope");
			cname = p + sizeof coll - 1;
			cn = n - (sizeof coll - 1);
			if (cn > 64)
				return why_set(why, whylen, "collection name longer than 64 characters");
			for (i = 0; i < cn; i++)
				if (!coll_char(cname[i]))
					return why_set(why, whylen, "collection name: only letters, digits, '.', '_' and '-'");
		} else {
			return why_set(why, whylen,
			               "unknown scope item: the scope is a comma list of store, query, retrieve and "
			               "optionally collection=NAME");
		}
		if (*end == 0)
			break;
	}
	if (!have[0] && !have[1] && !have[2])
		return why_set(why, whylen, "the scope names no action (store, query or retrieve)");
	if (cap == 0)
		return ERR_LIMIT;
	out[0] = 0;
	for (i = 0; i < 3; i++) {
		if (!have[i])
			continue;
		w = snprintf(out + o, cap - o, "%s%s", o ? "," : "", actions[i]);
		if (w < 0 || (size_t)w >= cap - o)
			return ERR_LIMIT;
		o += (size_t)w;
	}
	if (cname != NULL) {
		w = snprintf(out + o, cap - o, ",%s%.*s", coll, (int)cn, cname);
		if (w < 0 || (size_t)w >= cap - o)
			return ERR_LIMIT;
		if (collection != NULL)
			*collection = out + o + 1 + sizeof coll - 1;
	} else if (collection != NULL) {
		*collection = NULL;
	}
	return ERR_OK;
}

bool token_is_api(const char *t, size_t n)
{
	return t != NULL && n >= TOKEN_PREFIX_LEN && memcmp(t, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0;
}

bool token_form_ok(const char *t, size_t n)
{
	size_t i;

	if (n != TOKEN_LEN || !token_is_api(t, n))
		return false;
	for (i = TOKEN_PREFIX_LEN; i < n; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

enum err token_key_new(const struct secret *index_key, struct secret **out)
{
	static const char info[] = "dicomvault api token v1";
	struct secret *k = NULL;
	enum err rc;

	rc = secret_new(KDF_HMAC_SHA256_LEN, &k);
	if (rc == ERR_OK)
		rc = kdf_hkdf_sha256(index_key, NULL, 0, info, sizeof info - 1, secret_mut(k), KDF_HMAC_SHA256_LEN);
	if (rc != ERR_OK) {
		secret_free(k);
		return rc;
	}
	secret_seal(k);
	*out = k;
	return ERR_OK;
}

enum err token_hash(const struct secret *key, const char *t, size_t n, uint8_t out[IDX_HMAC_LEN])
{
	return kdf_hmac_sha256(key, t, n, out);
}

/* A new token string (sealed) and its hash. */
static enum err token_make(const struct secret *key, struct secret **tok, uint8_t hash[IDX_HMAC_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[TOKEN_RAW_LEN];
	struct secret *t = NULL;
	uint8_t *p;
	size_t i;
	enum err rc;

	rc = rand_bytes(raw, sizeof raw);
	if (rc == ERR_OK)
		rc = secret_new(TOKEN_LEN, &t);
	if (rc != ERR_OK)
		goto out;
	p = secret_mut(t);
	memcpy(p, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	for (i = 0; i < TOKEN_RAW_LEN; i++) {
		p[TOKEN_PREFIX_LEN + 2 * i] = (uint8_t)hex[raw[i] >> 4];
		p[TOKEN_PREFIX_LEN + 2 * i + 1] = (uint8_t)hex[raw[i] & 15];
	}
	secret_seal(t);
	rc = token_hash(key, secret_cstr(t), TOKEN_LEN, hash);
	if (rc != ERR_OK)
		goto out;
	*tok = t;
	t = NULL;
out:
	mem_wipe(raw, sizeof raw);
	secret_free(t);
	return rc;
}

enum err token_create(struct index_store *ix, const struct secret *key, const char *user, int64_t ttl,
                      const char *scope, int64_t now, struct secret **token, struct idx_token *out)
{
	char canon[IDX_SCOPE_MAX + 1];
	struct secret *tok = NULL;
	struct idx_token t;
	struct idx_user u;
	bool tx = false;
	enum err rc;

	memset(&t, 0, sizeof t);
	memset(&u, 0, sizeof u);
	if (ttl < 1 || ttl > TOKEN_TTL_MAX || user == NULL)
		return ERR_PARSE;
	rc = token_scope_parse(scope, canon, sizeof canon, NULL, NULL, 0);
	if (rc != ERR_OK)
		return ERR_PARSE;
	rc = token_make(key, &tok, t.token_hash);
	if (rc != ERR_OK)
		goto out;
	rc = ix->ops->begin(ix);
	if (rc != ERR_OK)
		goto out;
	tx = true;
	rc = ix->ops->user_get(ix, user, &u);
	if (rc != ERR_OK)
		goto out;
	if (u.disabled || (u.expires != 0 && u.expires <= now)) {
		rc = ERR_DENIED;
		goto out;
	}
	t.user_id = u.id;
	t.created = now;
	t.expires = now + ttl;
	snprintf(t.scope, sizeof t.scope, "%s", canon);
	snprintf(t.user_name, sizeof t.user_name, "%s", u.name);
	rc = ix->ops->token_put(ix, &t);
	if (rc == ERR_DENIED)
		rc = ERR_INTERNAL;   /* a 256-bit collision: the generator is broken */
	if (rc == ERR_OK)
		rc = ix->ops->commit(ix);
	tx = false;
	if (rc != ERR_OK)
		goto out;
	*out = t;
	*token = tok;
	tok = NULL;
out:
	if (tx)
		ix->ops->rollback(ix);
	mem_wipe(u.pwhash, sizeof u.pwhash);
	mem_wipe(t.token_hash, sizeof t.token_hash);
	secret_free(tok);
	return rc;
}

enum err token_revoke(struct index_store *ix, int64_t id, int64_t now, struct idx_token *out)
{
	enum err rc;

	rc = ix->ops->begin(ix);
	if (rc != ERR_OK)
		return rc;
	rc = ix->ops->token_revoke(ix, id, now);
	if (rc == ERR_OK)
		rc = ix->ops->token_by_id(ix, id, out);
	if (rc == ERR_OK)
		return ix->ops->commit(ix);
	if (rc == ERR_DENIED && ix->ops->token_by_id(ix, id, out) != ERR_OK)
		rc = ERR_NOTFOUND;
	ix->ops->rollback(ix);
	return rc;
}

bool token_scope_allows(const char *scope, enum access_action a, const char *collection)
{
	const char *want, *p, *coll;
	bool found = false;
	size_t n;

	if (scope == NULL || scope[0] == 0)
		return true;
	switch (a) {
	case ACCESS_ACT_STORE: want = "store"; break;
	case ACCESS_ACT_QUERY: want = "query"; break;
	case ACCESS_ACT_RETRIEVE:
	case ACCESS_ACT_RETRIEVE_ORIGINAL: want = "retrieve"; break;
	default: return false;   /* tokens are for data, not administration */
	}
	n = strlen(want);
	for (p = scope; p != NULL && *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && memcmp(p, want, n) == 0)
			found = true;
		p = e ? e + 1 : NULL;
	}
	if (!found)
		return false;
	coll = strstr(scope, "collection=");
	if (coll != NULL && collection != NULL)
		return strcmp(coll + 11, collection) == 0;
	return true;
}

const char *token_state(const struct idx_token *t, int64_t now)
{
	if (t->revoked != 0)
		return "revoked";
	if (now >= t->expires)
		return "expired";
	return "active";
}

enum err token_check(struct index_store *ix, const uint8_t hash[IDX_HMAC_LEN], int64_t now, struct idx_token *tok,
                     char role[17], const char **why)
{
	struct idx_user u;
	enum err rc;

	*why = NULL;
	memset(&u, 0, sizeof u);
	rc = ix->ops->token_get(ix, hash, tok);
	if (rc == ERR_NOTFOUND || (rc == ERR_OK && !ct_equal(tok->token_hash, hash, IDX_HMAC_LEN)))
		return ERR_AUTH;
	if (rc != ERR_OK)
		return rc;
	if (tok->revoked != 0) {
		*why = "revoked";
		return ERR_AUTH;
	}
	if (now >= tok->expires) {
		*why = "expired";
		return ERR_AUTH;
	}
	rc = ix->ops->user_get(ix, tok->user_name, &u);
	if (rc == ERR_NOTFOUND || (rc == ERR_OK && u.id != tok->user_id)) {
		*why = "user removed";
		rc = ERR_AUTH;
	} else if (rc == ERR_OK && u.disabled) {
		*why = "user disabled";
		rc = ERR_AUTH;
	} else if (rc == ERR_OK && u.expires != 0 && u.expires <= now) {
		*why = "user expired";
		rc = ERR_AUTH;
	}
	if (rc != ERR_OK)
		goto out;
	if (now - tok->last_used >= TOKEN_TOUCH_EVERY) {
		rc = ix->ops->token_touch(ix, tok->id, now);
		if (rc != ERR_OK)
			goto out;
		tok->last_used = now;
	}
	snprintf(role, 17, "%s", u.role);
out:
	mem_wipe(u.pwhash, sizeof u.pwhash);
	return rc;
}
