/* auth.c: interactive login and sessions (SPEC sections 3 and 5).
 * Passwords are Argon2id (a dummy verification for unknown names, so that
 * timing does not tell accounts apart); TOTP codes are checked with one
 * step of skew and a step is accepted once (the last accepted step is kept
 * in the user's row and re-checked inside the transaction that opens the
 * session); failures lock an account and an address out for a while;
 * sessions are 256-bit random tokens of which only an HMAC-SHA-256 is
 * stored, ended by an idle timeout, an absolute lifetime or logout. Every
 * outcome is audited; a login whose record cannot be written gets no
 * session. See docs/internals/http.md. Layer: core. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/token.h"
#include "dicomvault/turns.h"
#include "dicomvault/users.h"

_Static_assert(sizeof(((struct auth_session *)0)->scope) == IDX_SCOPE_MAX + 1, "auth_session scope size");

#define LIM_KEY_MAX 80u       /* "u:" + a name, or "a:" + an address */
#define TOKEN_RAW_LEN 32u     /* 256 bits */

/* The reasons of the logout record of a session that ended by itself. */
#define AUTH_END_IDLE     "idle timeout"
#define AUTH_END_LIFETIME "session lifetime ended"

/* A failure counter of an account ("u:NAME") or an address ("a:ADDR"):
 * the times of its latest lockout_failures failures, in a ring of
 * struct auth's lim_times, so that N failures within any window of
 * lockout_window seconds lock it (a sliding window, not one that starts
 * at the first failure and forgets it at once). */
struct lim_slot {
	char key[LIM_KEY_MAX];
	int64_t last;             /* latest failure */
	int64_t locked_until;
	unsigned n;               /* failures in the ring, up to lockout_failures */
	unsigned head;            /* where the next one goes: the oldest when n is full */
	bool known;               /* an existing account's (kept longest when slots run out) */
	bool persisted;           /* its lock is written to the account's row (under ix_lock) */
	bool used;
};

struct auth {
	struct auth_conf conf;
	struct index_store *ix;
	pthread_mutex_t *ix_lock;
	const struct secret *mk;
	struct secret *token_key; /* HMAC key of stored token hashes */
	struct secret *api_key;   /* HMAC key of stored API token hashes (token.h) */
	struct audit *audit;      /* NULL: no records (tests) */
	sem_t pw_sem;             /* Argon2id verifications in progress */
	pthread_mutex_t lim_lock;
	/* a login's outcome after its password check: the lockout check, the
	 * code, the session and its record, or the failure and any lockout
	 * it causes with its record, one login at a time (taken before
	 * lim_lock and ix_lock): so a success is never on the record after a
	 * lockout it was not refused by */
	pthread_mutex_t decide_mu;
	struct lim_slot *lim;     /* conf.limiter_slots */
	int64_t *lim_times;       /* lockout_failures per slot: its failure times */
};

/* One audit record of a login or logout; a failure to write it is logged
 * and returned. */
static enum err audit_put(struct auth *a, const char *action, enum audit_outcome outcome, const char *reason,
                          const char *user, const char *role, const char *session, const char *addr, const char *ua)
{
	struct audit_rec r;
	enum err rc;

	if (a->audit == NULL)
		return ERR_OK;
	memset(&r, 0, sizeof r);
	r.action = action;
	r.outcome = outcome;
	r.reason = reason;
	r.actor.user = user;
	r.actor.role = role;
	r.actor.session = session;
	r.actor.addr = addr;
	r.actor.user_agent = ua;
	rc = audit_append(a->audit, &r);
	if (rc != ERR_OK)
		log_error("cannot write the audit record of a %s: %s", action, err_str(rc));
	return rc;
}

/* ---- configuration ---- */

static enum err conf_int(const struct ini *conf, const char *key, int64_t min, int64_t max, int64_t *out, char *why,
                         size_t whylen)
{
	const char *v = conf ? ini_get(conf, "auth", NULL, key) : NULL;
	char *end = NULL;
	long long n;

	if (v == NULL)
		return ERR_OK;   /* keep the default */
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != 0 || n < min || n > max) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "line %u: [auth] %s must be an integer from %lld to %lld", ini_line(conf, "auth", NULL, key),
			         key, (long long)min, (long long)max);
		return ERR_PARSE;
	}
	*out = n;
	return ERR_OK;
}

enum err auth_conf_load(const struct ini *conf, struct auth_conf *out, char *why, size_t whylen)
{
	struct auth_conf c = { .idle_timeout = 900, .session_lifetime = 43200, .lockout_failures = 5,
	                       .lockout_window = 900, .break_glass_minutes = 60, .limiter_slots = AUTH_LIMITER_SLOTS };
	int64_t failures = c.lockout_failures;
	enum err rc;

	rc = conf_int(conf, "idle_timeout", 1, 86400, &c.idle_timeout, why, whylen);
	if (rc == ERR_OK)
		rc = conf_int(conf, "session_lifetime", 1, 30 * 86400, &c.session_lifetime, why, whylen);
	if (rc == ERR_OK)
		rc = conf_int(conf, "lockout_failures", 1, AUTH_LOCKOUT_MAX_FAILURES, &failures, why, whylen);
	if (rc == ERR_OK)
		rc = conf_int(conf, "lockout_window", 1, 86400, &c.lockout_window, why, whylen);
	if (rc == ERR_OK)
		rc = conf_int(conf, "break_glass_minutes", 1, AUTH_BREAK_GLASS_MINUTES_MAX, &c.break_glass_minutes, why,
		              whylen);
	if (rc != ERR_OK)
		return rc;
	c.lockout_failures = (unsigned)failures;
	*out = c;
	return ERR_OK;
}

/* ---- lifetime ---- */

enum err auth_new(const struct auth_conf *c, struct index_store *ix, pthread_mutex_t *ix_lock,
                  const struct secret *mk, const struct secret *index_key, struct audit *audit,
                  struct auth **out)
{
	static const char info[] = "dicomvault session token v1";
	struct auth *a;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	a = calloc(1, sizeof *a);
	if (a == NULL)
		return ERR_NOMEM;
	a->conf = *c;
	a->ix = ix;
	a->ix_lock = ix_lock;
	a->mk = mk;
	a->audit = audit;
	rc = ERR_INTERNAL;
	if (c->limiter_slots == 0 || c->lockout_failures == 0 || c->lockout_failures > AUTH_LOCKOUT_MAX_FAILURES)
		goto fail;
	rc = ERR_NOMEM;
	a->lim = calloc(c->limiter_slots, sizeof *a->lim);
	a->lim_times = calloc((size_t)c->limiter_slots * c->lockout_failures, sizeof *a->lim_times);
	if (a->lim == NULL || a->lim_times == NULL)
		goto fail;
	rc = secret_new(KDF_HMAC_SHA256_LEN, &a->token_key);
	if (rc == ERR_OK)
		rc = kdf_hkdf_sha256(index_key, NULL, 0, info, sizeof info - 1, secret_mut(a->token_key),
		                     KDF_HMAC_SHA256_LEN);
	if (rc != ERR_OK)
		goto fail;
	secret_seal(a->token_key);
	rc = token_key_new(index_key, &a->api_key);
	if (rc != ERR_OK)
		goto fail;
	rc = ERR_INTERNAL;
	if (sem_init(&a->pw_sem, 0, AUTH_PWHASH_CONCURRENCY) != 0)
		goto fail;
	if (pthread_mutex_init(&a->lim_lock, NULL) != 0) {
		sem_destroy(&a->pw_sem);
		goto fail;
	}
	if (pthread_mutex_init(&a->decide_mu, NULL) != 0) {
		pthread_mutex_destroy(&a->lim_lock);
		sem_destroy(&a->pw_sem);
		goto fail;
	}
	*out = a;
	return ERR_OK;
fail:
	secret_free(a->api_key);
	secret_free(a->token_key);
	free(a->lim);
	free(a->lim_times);
	free(a);
	return rc;
}

int64_t auth_break_glass_minutes(const struct auth *a)
{
	return a->conf.break_glass_minutes;
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	sem_destroy(&a->pw_sem);
	pthread_mutex_destroy(&a->lim_lock);
	pthread_mutex_destroy(&a->decide_mu);
	secret_free(a->token_key);
	secret_free(a->api_key);
	mem_wipe(a->lim, a->conf.limiter_slots * sizeof *a->lim);
	free(a->lim);
	free(a->lim_times);
	free(a);
}

/* ---- names, addresses, tokens ---- */

/* A user name as received: 1..AUTH_NAME_MAX of [A-Za-z0-9._@-] (the rule
 * of vault_init); anything else cannot be an account. */
static bool name_copy(const char *s, size_t n, char out[AUTH_NAME_MAX + 1])
{
	size_t i;

	if (s == NULL || n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-' || ch == '@'))
			return false;
		out[i] = ch;
	}
	out[n] = 0;
	return true;
}

/* The limiter key of an address: IPv4 as is, IPv6 by its /64 (one host
 * usually holds a whole /64), IPv4-mapped IPv6 as IPv4. */
static void addr_key(const char *address, char out[LIM_KEY_MAX])
{
	char txt[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET6, address, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], 4);
			if (inet_ntop(AF_INET, &a4, txt, sizeof txt) != NULL) {
				snprintf(out, LIM_KEY_MAX, "a:%s", txt);
				return;
			}
		} else {
			memset(&a6.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &a6, txt, sizeof txt) != NULL) {
				snprintf(out, LIM_KEY_MAX, "a:%s/64", txt);
				return;
			}
		}
	}
	snprintf(out, LIM_KEY_MAX, "a:%.64s", address);
}

static bool token_ok(const char *t, size_t n)
{
	size_t i;

	if (t == NULL || n != AUTH_TOKEN_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

/* A new token (hex, sealed) and its stored hash. */
static enum err token_new(struct auth *a, struct secret **tok, uint8_t hash[KDF_HMAC_SHA256_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[TOKEN_RAW_LEN];
	struct secret *t = NULL;
	uint8_t *p;
	size_t i;
	enum err rc;

	rc = rand_bytes(raw, sizeof raw);
	if (rc == ERR_OK)
		rc = secret_new(AUTH_TOKEN_LEN, &t);
	if (rc != ERR_OK)
		goto out;
	p = secret_mut(t);
	for (i = 0; i < TOKEN_RAW_LEN; i++) {
		p[2 * i] = (uint8_t)hex[raw[i] >> 4];
		p[2 * i + 1] = (uint8_t)hex[raw[i] & 15];
	}
	secret_seal(t);
	rc = kdf_hmac_sha256(a->token_key, secret_view(t), AUTH_TOKEN_LEN, hash);
	if (rc != ERR_OK)
		goto out;
	*tok = t;
	t = NULL;
out:
	mem_wipe(raw, sizeof raw);
	secret_free(t);
	return rc;
}

/* ---- failure counters (in memory; under lim_lock) ---- */

/* Can slot s no longer lock, nor refuse, anyone? */
static bool lim_stale(const struct auth *a, const struct lim_slot *s, int64_t now)
{
	return s->locked_until <= now && now - s->last >= a->conf.lockout_window;
}

/* The slot of key; with create, a new one if there is none (known: the
 * key is an existing account's). When every slot is taken, one whose
 * failures are all older than the window goes first, then the least
 * recently failed open counter of an address or an unknown name, then
 * that of a known account, then the oldest lock. An existing account's
 * counter so outlives a flood of failures from many addresses or with
 * made-up names, which would otherwise push it out and let a distributed
 * guesser go on; the accounts are few, the rest is what a flood makes. */
static struct lim_slot *lim_find(struct auth *a, const char *key, int64_t now, bool create, bool known)
{
	struct lim_slot *unused = NULL, *stale = NULL, *open_other = NULL, *open_known = NULL, *old_any = NULL, *s;
	size_t i;

	for (i = 0; i < a->conf.limiter_slots; i++) {
		s = &a->lim[i];
		if (!s->used) {
			if (unused == NULL)
				unused = s;
			continue;
		}
		if (strcmp(s->key, key) == 0) {
			if (create)
				s->known = known;
			return s;
		}
		if (lim_stale(a, s, now)) {
			if (stale == NULL)
				stale = s;
		} else if (s->locked_until <= now && !s->known) {
			if (open_other == NULL || s->last < open_other->last)
				open_other = s;
		} else if (s->locked_until <= now) {
			if (open_known == NULL || s->last < open_known->last)
				open_known = s;
		}
		if (old_any == NULL || s->last < old_any->last)
			old_any = s;
	}
	if (!create)
		return NULL;
	s = unused ? unused : stale ? stale : open_other ? open_other : open_known ? open_known : old_any;
	if (s == NULL)
		return NULL;   /* no slot at all (auth_new refuses that) */
	memset(s, 0, sizeof *s);
	snprintf(s->key, sizeof s->key, "%s", key);
	s->used = true;
	s->known = known;
	s->last = now;
	return s;
}

/* Seconds the key stays locked, or 0. */
static int64_t lim_remaining(struct auth *a, const char *key, int64_t now)
{
	struct lim_slot *s = lim_find(a, key, now, false, false);

	return s != NULL && s->locked_until > now ? s->locked_until - now : 0;
}

/* Counts a failure; returns the lock's end if this one locked the key:
 * lockout_failures failures within lockout_window seconds. */
static int64_t lim_fail(struct auth *a, const char *key, bool known, int64_t now)
{
	struct lim_slot *s = lim_find(a, key, now, true, known);
	unsigned cap = a->conf.lockout_failures;
	int64_t *t;

	if (s == NULL)
		return 0;
	t = a->lim_times + (size_t)(s - a->lim) * cap;
	s->last = now;
	t[s->head] = now;
	s->head = (s->head + 1) % cap;
	if (s->n < cap)
		s->n++;
	/* full: head is the oldest of the last cap failures */
	if (s->n < cap || now - t[s->head] >= a->conf.lockout_window)
		return 0;
	s->n = 0;
	s->head = 0;
	s->locked_until = now + a->conf.lockout_window;
	s->persisted = false;   /* this lock is not in the row yet */
	return s->locked_until;
}

/* An account's lock lifted from its row (`dicomvault user unlock`, another
 * process) lifts the in-memory one: called under ix_lock with the row u
 * just read, so that a lock is looked at only once its row was written
 * (persisted, set under ix_lock too). */
static void unlocked_row(struct auth *a, const char *ukey, const struct idx_user *u, int64_t now)
{
	struct lim_slot *s;

	if (u->locked_until > now)
		return;
	pthread_mutex_lock(&a->lim_lock);
	s = lim_find(a, ukey, now, false, false);
	if (s != NULL && s->persisted && s->locked_until > now) {
		log_info("account %s was unlocked: its lockout lifted", u->name);
		memset(s, 0, sizeof *s);
	}
	pthread_mutex_unlock(&a->lim_lock);
}

/* Seconds the address (akey) or the account (ukey, "" for none) stays
 * locked in memory, the longer; 0 when neither is. */
static int64_t lim_wait(struct auth *a, const char *akey, const char *ukey, int64_t now)
{
	int64_t wait, w;

	pthread_mutex_lock(&a->lim_lock);
	wait = lim_remaining(a, akey, now);
	if (ukey[0] != 0 && (w = lim_remaining(a, ukey, now)) > wait)
		wait = w;
	pthread_mutex_unlock(&a->lim_lock);
	return wait;
}

static void lim_clear(struct auth *a, const char *key, int64_t now)
{
	struct lim_slot *s = lim_find(a, key, now, false, false);

	if (s != NULL)
		memset(s, 0, sizeof *s);
}

/* ---- login ---- */

/* Records a failed attempt against the address and the account (known or
 * not, so that a lockout does not tell them apart). The counters live in
 * memory; a known account's lock is also written to its row (it survives
 * a restart). Only the lock is written, not every failure: a write (an
 * fsync) on each failure of a known name would tell, by timing, known
 * names from unknown ones. */
static enum err login_failed(struct auth *a, const char *name, bool known, const char *ukey, const char *akey,
                             int64_t now, const char *addr, const char *ua, const char *why)
{
	int64_t ulock = 0, alock;
	struct idx_user u;
	char reason[128];
	enum err e;

	pthread_mutex_lock(&a->lim_lock);
	alock = lim_fail(a, akey, false, now);
	if (ukey[0] != 0)
		ulock = lim_fail(a, ukey, known, now);
	pthread_mutex_unlock(&a->lim_lock);
	log_info("login %s from %s refused (%s)", known ? name : "of an unknown name", addr, why);
	e = audit_put(a, AUDIT_LOGIN_FAILURE, AUDIT_FAILURE, why, known ? name : NULL, NULL, NULL, addr, ua);
	(void)e;   /* refused either way */
	snprintf(reason, sizeof reason, "%u failed logins in %lld s: locked for %lld s", a->conf.lockout_failures,
	         (long long)a->conf.lockout_window, (long long)a->conf.lockout_window);
	if (alock != 0) {
		log_warn("address %s locked out: %s", addr, reason);
		e = audit_put(a, AUDIT_LOCKOUT, AUDIT_DENIED, reason, NULL, NULL, NULL, addr, ua);
	}
	if (ulock != 0) {
		log_warn("account %s locked out: %s", known ? name : "(an unknown name)", reason);
		e = audit_put(a, AUDIT_LOCKOUT, AUDIT_DENIED, known ? reason : "an unknown name locked out",
		              known ? name : NULL, NULL, NULL, addr, ua);
	}
	if (known && ulock != 0) {
		pthread_mutex_lock(a->ix_lock);
		e = a->ix->ops->begin(a->ix);
		if (e == ERR_OK)
			e = a->ix->ops->user_get(a->ix, name, &u);
		if (e == ERR_OK) {
			u.failures = a->conf.lockout_failures;
			if (ulock > u.locked_until)
				u.locked_until = ulock;
			e = a->ix->ops->user_update(a->ix, &u);
		}
		if (e == ERR_OK)
			e = a->ix->ops->commit(a->ix);
		else
			a->ix->ops->rollback(a->ix);
		if (e == ERR_OK) {
			/* from now on a row without the lock means it was lifted
			 * (`user unlock`): see unlocked_row */
			struct lim_slot *s;
			pthread_mutex_lock(&a->lim_lock);
			s = lim_find(a, ukey, now, false, false);
			if (s != NULL && s->locked_until == ulock)
				s->persisted = true;
			pthread_mutex_unlock(&a->lim_lock);
		}
		pthread_mutex_unlock(a->ix_lock);
		mem_wipe(u.pwhash, sizeof u.pwhash);
		if (e != ERR_OK)
			log_error("cannot record a failed login of %s: %s", name, err_str(e));
	}
	return ERR_AUTH;
}

/* Why a session has ended at now, or NULL while it lasts: whichever of
 * its idle timeout and its lifetime came first. */
static const char *session_end_why(const struct auth *a, int64_t last_seen, int64_t expires, int64_t now)
{
	int64_t idle_end = last_seen + a->conf.idle_timeout;

	if (now < expires && now < idle_end)
		return NULL;
	return idle_end < expires ? AUTH_END_IDLE : AUTH_END_LIFETIME;
}

/* The logout records of the n sessions a login purged (ended, and not
 * used since): each with its user, role and reference, the address it
 * was opened from (no request found it) and why it ended. One fsync for
 * them all; the sessions are gone whether or not they are written, as
 * at logout. */
static void purged_put(struct auth *a, const struct idx_session *se, size_t n, int64_t now)
{
	struct audit_rec r;
	uint64_t ticket = 0;
	const char *why;
	enum err rc = ERR_OK;
	size_t i;

	if (a->audit == NULL || n == 0)
		return;
	for (i = 0; i < n && rc == ERR_OK; i++) {
		why = session_end_why(a, se[i].last_seen, se[i].expires, now);
		memset(&r, 0, sizeof r);
		r.action = AUDIT_LOGOUT;
		r.outcome = AUDIT_SUCCESS;
		r.reason = why != NULL ? why : AUTH_END_LIFETIME;
		r.actor.user = se[i].user_name;
		r.actor.role = se[i].user_role;
		r.actor.session = se[i].ref;
		r.actor.addr = se[i].address;
		rc = audit_append_start(a->audit, &r, &ticket);
	}
	if (rc == ERR_OK)
		rc = audit_wait(a->audit, ticket);
	if (rc != ERR_OK)
		log_error("cannot write the audit records of %zu ended sessions: %s", n, err_str(rc));
}

/* Accepts step and opens the session in one transaction, re-checking the
 * row: a concurrent login with the same code, a lock or a disable that
 * happened since the first read all refuse (ERR_AUTH). */
static enum err login_commit(struct auth *a, const char *name, uint64_t step, int64_t now, const char *addr,
                             struct secret **token, uint8_t hash[KDF_HMAC_SHA256_LEN], struct auth_session *out,
                             struct idx_session ended[AUTH_ENDED_PER_LOGIN], size_t *nended)
{
	struct secret *tok = NULL;
	struct idx_session se;
	struct idx_user u;
	bool tx = false;
	enum err rc;

	*nended = 0;
	memset(&se, 0, sizeof se);
	rc = token_new(a, &tok, se.token_hash);
	if (rc != ERR_OK)
		return rc;
	/* kept with the row so that its end can be recorded under the same
	 * reference when it is purged (no token then) */
	audit_session_ref(secret_view(tok), AUTH_TOKEN_LEN, se.ref);
	pthread_mutex_lock(a->ix_lock);
	rc = a->ix->ops->begin(a->ix);
	if (rc != ERR_OK)
		goto out;
	tx = true;
	rc = a->ix->ops->user_get(a->ix, name, &u);
	if (rc != ERR_OK)
		goto out;
	if (step > INT64_MAX || u.totp_last_step >= (int64_t)step || u.locked_until > now || u.disabled ||
	    (u.expires != 0 && u.expires <= now)) {
		rc = ERR_AUTH;
		goto out;
	}
	u.totp_last_step = (int64_t)step;
	u.failures = 0;
	u.locked_until = 0;
	rc = a->ix->ops->user_update(a->ix, &u);
	/* ended sessions nobody used again, a bounded number a login (each is
	 * a record to write: see purged_put) */
	if (rc == ERR_OK)
		rc = a->ix->ops->session_purge(a->ix, now, now - a->conf.idle_timeout, ended, AUTH_ENDED_PER_LOGIN,
		                               nended);
	if (rc != ERR_OK)
		goto out;
	se.user_id = u.id;
	se.created = now;
	se.last_seen = now;
	se.expires = now + a->conf.session_lifetime;
	snprintf(se.address, sizeof se.address, "%s", addr);
	rc = a->ix->ops->session_put(a->ix, &se);
	if (rc == ERR_OK)
		rc = a->ix->ops->commit(a->ix);
	tx = false;
	if (rc != ERR_OK)
		goto out;
	memset(out, 0, sizeof *out);
	out->session_id = se.id;
	out->user_id = u.id;
	snprintf(out->user, sizeof out->user, "%s", u.name);
	snprintf(out->role, sizeof out->role, "%s", u.role);
	out->expires = se.expires;
	out->idle_expires = now + a->conf.idle_timeout < se.expires ? now + a->conf.idle_timeout : se.expires;
	memcpy(hash, se.token_hash, KDF_HMAC_SHA256_LEN);
	*token = tok;
	tok = NULL;
out:
	if (tx)
		a->ix->ops->rollback(a->ix);
	if (rc != ERR_OK)
		*nended = 0;   /* rolled back: still there */
	pthread_mutex_unlock(a->ix_lock);
	mem_wipe(u.pwhash, sizeof u.pwhash);
	mem_wipe(se.token_hash, sizeof se.token_hash);
	secret_free(tok);
	return rc;
}

enum err auth_login(struct auth *a, const struct auth_login *in, int64_t now, struct secret **token,
                    struct auth_session *out, int64_t *retry_after)
{
	char name[AUTH_NAME_MAX + 1], ukey[LIM_KEY_MAX], akey[LIM_KEY_MAX], label[AUTH_NAME_MAX + 8];
	char ref[AUDIT_SESSION_REF_LEN];
	const char *addr = in->address != NULL ? in->address : "-", *ua = in->user_agent;
	uint8_t hash[KDF_HMAC_SHA256_LEN];
	struct idx_session ended[AUTH_ENDED_PER_LOGIN];
	size_t nended = 0;
	struct secret *seed = NULL, *tok = NULL;
	struct auth_session sess;
	uint8_t *seed_blob = NULL;
	size_t seed_n = 0;
	struct idx_user u;
	bool known = false, pw_ok = false, deciding = false;
	const char *why = "unknown user";
	uint64_t step = 0;
	int64_t wait;
	enum err rc = ERR_INTERNAL, e;

	memset(&u, 0, sizeof u);
	memset(hash, 0, sizeof hash);
	ukey[0] = 0;
	if (in->password == NULL)
		return ERR_INTERNAL;
	addr_key(addr, akey);
	if (name_copy(in->user, in->user_len, name))
		snprintf(ukey, sizeof ukey, "u:%s", name);
	else
		name[0] = 0;

	/* the account's row (only a copy of the wrapped seed leaves the lock) */
	if (name[0] != 0) {
		pthread_mutex_lock(a->ix_lock);
		e = a->ix->ops->user_get(a->ix, name, &u);
		if (e == ERR_OK)
			unlocked_row(a, ukey, &u, now);
		if (e == ERR_OK && u.totp_wrapped.n > 0 && u.totp_wrapped.n <= 4096) {
			seed_blob = malloc(u.totp_wrapped.n);
			if (seed_blob != NULL) {
				memcpy(seed_blob, u.totp_wrapped.p, u.totp_wrapped.n);
				seed_n = u.totp_wrapped.n;
			}
		}
		pthread_mutex_unlock(a->ix_lock);
		if (e != ERR_OK && e != ERR_NOTFOUND) {
			rc = e;
			goto out;
		}
		known = e == ERR_OK;
		if (known && seed_blob == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
	}

	/* locked out: refused before any hashing, for known and unknown
	 * names alike */
	wait = lim_wait(a, akey, ukey, now);
	if (known && u.locked_until > now && u.locked_until - now > wait)
		wait = u.locked_until - now;
	if (wait > 0) {
		log_info("login %s from %s refused: locked out for %lld s", known ? name : "of an unknown name", addr,
		         (long long)wait);
		e = audit_put(a, AUDIT_LOGIN_FAILURE, AUDIT_DENIED, "locked out", known ? name : NULL, NULL, NULL, addr,
		              ua);
		(void)e;
		*retry_after = wait;
		rc = ERR_DENIED;
		goto out;
	}

	/* the password: Argon2id, a bounded number at once (each takes
	 * 64 MiB and a core for ~0.1 s) */
	rc = turn_take(&a->pw_sem, AUTH_PWHASH_WAIT);
	if (rc != ERR_OK) {
		log_warn("login from %s refused: %u password checks already running", addr, AUTH_PWHASH_CONCURRENCY);
		e = audit_put(a, AUDIT_LOGIN_FAILURE, AUDIT_FAILURE, "too many logins in progress", known ? name : NULL,
		              NULL, NULL, addr, ua);
		(void)e;
		goto out;
	}
	if (known) {
		pw_ok = pwhash_verify(u.pwhash, in->password) == ERR_OK;
		why = "wrong password";
	} else {
		e = pwhash_verify_dummy(in->password);
		(void)e;   /* always ERR_AUTH */
	}
	sem_post(&a->pw_sem);
	pthread_mutex_lock(&a->decide_mu);
	deciding = true;
	/* locked meanwhile, by the failures of attempts that were waiting
	 * beside this one (a spray of concurrent guesses): its outcome is
	 * not told, and it neither logs in nor counts */
	wait = lim_wait(a, akey, ukey, now);
	if (wait > 0) {
		log_info("login %s from %s refused: locked out (while its password was checked) for %lld s",
		         known ? name : "of an unknown name", addr, (long long)wait);
		e = audit_put(a, AUDIT_LOGIN_FAILURE, AUDIT_DENIED, "locked out", known ? name : NULL, NULL, NULL, addr,
		              ua);
		(void)e;
		*retry_after = wait;
		rc = ERR_DENIED;
		goto out;
	}

	/* the account's state, then the code */
	if (pw_ok && (u.disabled || (u.expires != 0 && u.expires <= now))) {
		pw_ok = false;
		why = u.disabled ? "account disabled" : "account expired";
	}
	if (pw_ok) {
		snprintf(label, sizeof label, "totp:%s", name);
		rc = keywrap_unwrap(a->mk, label, strlen(label), seed_blob, seed_n, &seed);
		if (rc != ERR_OK) {
			log_error("cannot unwrap the TOTP seed of %s: %s", name, err_str(rc));
			goto out;
		}
		why = "wrong TOTP code";
		e = totp_verify(seed, (uint64_t)now, in->totp, in->totp_len, (uint64_t)u.totp_last_step + 1, &step);
		if (e != ERR_OK && totp_verify(seed, (uint64_t)now, in->totp, in->totp_len, 0, &step) == ERR_OK)
			why = "TOTP code already used";
		if (e == ERR_OK) {
			rc = login_commit(a, name, step, now, addr, &tok, hash, &sess, ended, &nended);
			if (rc != ERR_OK && rc != ERR_AUTH)
				goto out;
			if (rc == ERR_AUTH)
				why = "TOTP code already used (concurrent login)";
		}
	}
	if (tok == NULL) {
		rc = login_failed(a, name, known, ukey, akey, now, addr, ua, why);
		goto out;
	}

	/* the ends of the sessions it purged, then the success, once it is
	 * on the record */
	purged_put(a, ended, nended, now);
	audit_session_ref(secret_view(tok), AUTH_TOKEN_LEN, ref);
	rc = audit_put(a, AUDIT_LOGIN, AUDIT_SUCCESS, NULL, name, sess.role, ref, addr, ua);
	if (rc != ERR_OK) {
		pthread_mutex_lock(a->ix_lock);
		e = a->ix->ops->session_delete(a->ix, hash);
		pthread_mutex_unlock(a->ix_lock);
		if (e != ERR_OK)
			log_error("cannot delete the unaudited session of %s: %s", name, err_str(e));
		rc = ERR_IO;
		goto out;
	}
	pthread_mutex_lock(&a->lim_lock);
	lim_clear(a, ukey, now);
	pthread_mutex_unlock(&a->lim_lock);
	log_info("login of %s from %s", name, addr);
	*out = sess;
	*token = tok;
	tok = NULL;
	rc = ERR_OK;
out:
	if (deciding)
		pthread_mutex_unlock(&a->decide_mu);
	secret_free(tok);
	secret_free(seed);
	if (seed_blob != NULL) {
		mem_wipe(seed_blob, seed_n);
		free(seed_blob);
	}
	mem_wipe(u.pwhash, sizeof u.pwhash);
	mem_wipe(hash, sizeof hash);
	mem_wipe(ended, nended * sizeof ended[0]);
	return rc;
}

/* ---- sessions ---- */

/* A session that session_find found ended and deleted, for the record
 * of its end (why NULL: none). */
struct session_end {
	const char *why;
	char user[AUTH_NAME_MAX + 1];
	char role[sizeof ((struct idx_user *)0)->role];
};

/* Why the session se of user row u (read with rc) ends at now, or NULL. */
static const char *account_end_why(enum err rc, const struct idx_user *u, const struct idx_session *se, int64_t now)
{
	if (rc == ERR_NOTFOUND || (rc == ERR_OK && u->id != se->user_id))
		return "account removed";
	if (rc == ERR_OK && u->disabled)
		return "account disabled";
	if (rc == ERR_OK && u->expires != 0 && u->expires <= now)
		return "account expired";
	return NULL;
}

/* The live session of a token, under ix_lock. An ended one is deleted
 * and, if this call deleted it (once, whatever requests race), *end says
 * whose it was and why it ended, for the caller to record once it has
 * let go of ix_lock (session_end_put). */
static enum err session_find(struct auth *a, const uint8_t hash[KDF_HMAC_SHA256_LEN], int64_t now,
                             struct auth_session *out, struct session_end *end)
{
	struct idx_session se;
	struct idx_user u;
	int64_t touch_every = a->conf.idle_timeout / 16;
	const char *why;
	enum err rc;

	memset(&u, 0, sizeof u);
	memset(end, 0, sizeof *end);
	rc = a->ix->ops->session_get(a->ix, hash, &se);
	if (rc == ERR_NOTFOUND || (rc == ERR_OK && !ct_equal(se.token_hash, hash, KDF_HMAC_SHA256_LEN)))
		return ERR_AUTH;
	if (rc != ERR_OK)
		return rc;
	why = session_end_why(a, se.last_seen, se.expires, now);
	rc = a->ix->ops->user_get(a->ix, se.user_name, &u);
	if (why == NULL && rc != ERR_OK && rc != ERR_NOTFOUND)
		goto out;
	if (why == NULL)
		why = account_end_why(rc, &u, &se, now);
	if (why != NULL) {
		rc = ERR_AUTH;
		goto end;
	}
	if (now - se.last_seen >= touch_every) {
		rc = a->ix->ops->session_touch(a->ix, se.id, now);
		if (rc != ERR_OK)
			goto out;
		se.last_seen = now;
	}
	memset(out, 0, sizeof *out);
	out->session_id = se.id;
	out->user_id = u.id;
	snprintf(out->user, sizeof out->user, "%s", u.name);
	snprintf(out->role, sizeof out->role, "%s", u.role);
	out->expires = se.expires;
	out->idle_expires = se.last_seen + a->conf.idle_timeout < se.expires ? se.last_seen + a->conf.idle_timeout
	                                                                     : se.expires;
	rc = ERR_OK;
	goto out;
end:
	/* the session has ended: forget it; its end is recorded by whoever
	 * deleted it, so once */
	if (a->ix->ops->session_delete(a->ix, hash) != ERR_OK) {
		log_warn("cannot delete an ended session");
		goto out;
	}
	end->why = why;
	snprintf(end->user, sizeof end->user, "%s", se.user_name);
	if (u.id == se.user_id)
		snprintf(end->role, sizeof end->role, "%s", u.role);
out:
	mem_wipe(u.pwhash, sizeof u.pwhash);
	return rc;
}

/* The record of a session's end that session_find reported: a logout
 * (SPEC section 8: an automatic logout is a logout) with its reason,
 * from the request that found it (address, user agent). The session is
 * gone whether or not it is written. */
static void session_end_put(struct auth *a, const struct session_end *e, const char *token, size_t len,
                            const char *addr, const char *ua)
{
	char ref[AUDIT_SESSION_REF_LEN];

	if (e->why == NULL)
		return;
	log_info("session of %s ended: %s", e->user, e->why);
	audit_session_ref(token, len, ref);
	if (audit_put(a, AUDIT_LOGOUT, AUDIT_SUCCESS, e->why, e->user, e->role[0] ? e->role : NULL, ref, addr, ua) !=
	    ERR_OK)
		log_error("the end of a session of %s was not audited", e->user);
}

/* An API token: checked against its row and its user on every request
 * (nothing cached), so a revocation or a disabled user takes effect at
 * the next request. A refusal of a known token is audited. */
static enum err api_token_check(struct auth *a, const char *token, size_t len, int64_t now, const char *addr,
                                const char *ua, struct auth_session *out)
{
	char ref[AUDIT_SESSION_REF_LEN], reason[64], role[17];
	uint8_t hash[IDX_HMAC_LEN];
	struct idx_token t;
	const char *why = NULL;
	enum err rc, e;

	if (!token_form_ok(token, len))
		return ERR_AUTH;
	rc = token_hash(a->api_key, token, len, hash);
	if (rc != ERR_OK)
		return rc;
	memset(&t, 0, sizeof t);
	pthread_mutex_lock(a->ix_lock);
	rc = token_check(a->ix, hash, now, &t, role, &why);
	pthread_mutex_unlock(a->ix_lock);
	mem_wipe(hash, sizeof hash);
	if (rc == ERR_OK) {
		memset(out, 0, sizeof *out);
		out->session_id = t.id;
		out->user_id = t.user_id;
		snprintf(out->user, sizeof out->user, "%s", t.user_name);
		snprintf(out->role, sizeof out->role, "%s", role);
		out->expires = t.expires;
		out->idle_expires = t.expires;
		out->api_token = true;
		snprintf(out->scope, sizeof out->scope, "%s", t.scope);
	} else if (rc == ERR_AUTH && why != NULL) {
		log_info("API token %lld of %s from %s refused: %s", (long long)t.id, t.user_name, addr ? addr : "-", why);
		snprintf(reason, sizeof reason, "API token %lld %s", (long long)t.id, why);
		audit_session_ref(token, len, ref);
		e = audit_put(a, AUDIT_TOKEN_REFUSED, AUDIT_DENIED, reason, t.user_name, NULL, ref, addr, ua);
		(void)e;   /* refused either way */
	}
	mem_wipe(t.token_hash, sizeof t.token_hash);
	return rc;
}

enum err auth_user_check(struct auth *a, const char *name, int64_t now, int64_t until, struct auth_session *out)
{
	struct idx_user u;
	enum err rc;

	memset(&u, 0, sizeof u);
	memset(out, 0, sizeof *out);
	if (name == NULL || !users_name_ok(name))
		return ERR_AUTH;
	pthread_mutex_lock(a->ix_lock);
	rc = a->ix->ops->user_get(a->ix, name, &u);
	pthread_mutex_unlock(a->ix_lock);
	if (rc == ERR_NOTFOUND || (rc == ERR_OK && (u.disabled || (u.expires != 0 && u.expires <= now))))
		rc = ERR_AUTH;
	if (rc == ERR_OK) {
		out->user_id = u.id;
		snprintf(out->user, sizeof out->user, "%s", u.name);
		snprintf(out->role, sizeof out->role, "%s", u.role);
		out->expires = until;
		out->idle_expires = until;
	}
	mem_wipe(u.pwhash, sizeof u.pwhash);
	return rc;
}

enum err auth_session_check(struct auth *a, const char *token, size_t len, int64_t now, struct auth_session *out)
{
	return auth_request_check(a, token, len, now, NULL, NULL, out);
}

enum err auth_request_check(struct auth *a, const char *token, size_t len, int64_t now, const char *address,
                            const char *ua, struct auth_session *out)
{
	uint8_t hash[KDF_HMAC_SHA256_LEN];
	struct session_end end;
	enum err rc;

	if (token_is_api(token, len))
		return api_token_check(a, token, len, now, address, ua, out);
	if (!token_ok(token, len))
		return ERR_AUTH;
	rc = kdf_hmac_sha256(a->token_key, token, len, hash);
	if (rc != ERR_OK)
		return rc;
	pthread_mutex_lock(a->ix_lock);
	rc = session_find(a, hash, now, out, &end);
	pthread_mutex_unlock(a->ix_lock);
	mem_wipe(hash, sizeof hash);
	session_end_put(a, &end, token, len, address, ua);
	return rc;
}

enum err auth_logout(struct auth *a, const char *token, size_t len, int64_t now, const char *address,
                     const char *user_agent)
{
	char ref[AUDIT_SESSION_REF_LEN];
	uint8_t hash[KDF_HMAC_SHA256_LEN];
	struct session_end end;
	struct auth_session s;
	enum err rc;

	if (token_is_api(token, len))
		return ERR_DENIED;
	if (!token_ok(token, len))
		return ERR_AUTH;
	rc = kdf_hmac_sha256(a->token_key, token, len, hash);
	if (rc != ERR_OK)
		return rc;
	pthread_mutex_lock(a->ix_lock);
	rc = session_find(a, hash, now, &s, &end);
	if (rc == ERR_OK)
		rc = a->ix->ops->session_delete(a->ix, hash);
	pthread_mutex_unlock(a->ix_lock);
	mem_wipe(hash, sizeof hash);
	session_end_put(a, &end, token, len, address, user_agent);   /* it had ended before */
	if (rc == ERR_NOTFOUND)
		rc = ERR_AUTH;   /* ended concurrently */
	if (rc == ERR_OK) {
		/* the session is gone whether or not the record is written */
		log_info("logout of %s from %s", s.user, address ? address : "-");
		audit_session_ref(token, len, ref);
		if (audit_put(a, AUDIT_LOGOUT, AUDIT_SUCCESS, NULL, s.user, s.role, ref, address, user_agent) != ERR_OK)
			log_error("logout of %s was not audited", s.user);
	}
	return rc;
}
