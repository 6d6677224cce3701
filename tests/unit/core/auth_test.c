/* auth_test.c: login, TOTP replay, lockout, sessions and their timeouts,
 * with a fake clock. Layer: tests. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/vault.h"

#define PASSWORD "correct horse battery staple"
#define T0 1700000000   /* 20 s into a TOTP step */

static char base[256], dir[512], audit_path[600];
static struct audit *au;
static struct vault *v;
static struct secret *seed;
static pthread_mutex_t ix_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *audit_last_line(void)
{
	static char line[8192];
	FILE *fp = fopen(audit_path, "r");

	line[0] = 0;
	if (fp == NULL)
		return line;
	while (fgets(line, sizeof line, fp) != NULL)
		;
	fclose(fp);
	return line;
}

/* Whether the last audit record holds each of the NULL-terminated
 * fragments. */
static bool last_audit(const char *first, ...)
{
	const char *f, *line = audit_last_line();
	va_list ap;
	bool ok = true;

	va_start(ap, first);
	for (f = first; f != NULL; f = va_arg(ap, const char *))
		if (strstr(line, f) == NULL) {
			fprintf(stderr, "  audit: no %s in %s", f, line);
			ok = false;
		}
	va_end(ap);
	return ok;
}

/* How many audit records hold each of the NULL-terminated fragments. */
static int count_audit(const char *first, ...)
{
	static char line[8192];
	const char *f;
	FILE *fp = fopen(audit_path, "r");
	va_list ap;
	int n = 0;
	bool all;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof line, fp) != NULL) {
		all = true;
		va_start(ap, first);
		for (f = first; f != NULL && all; f = va_arg(ap, const char *))
			all = strstr(line, f) != NULL;
		va_end(ap);
		n += all;
	}
	fclose(fp);
	return n;
}

/* "\"session\":\"REF\"" of a session token, as its records name it. */
static void session_field(const char *tok, char out[40])
{
	char ref[AUDIT_SESSION_REF_LEN];

	audit_session_ref(tok, strlen(tok), ref);
	snprintf(out, 40, "\"session\":\"%s\"", ref);
}

static void code_at(int64_t t, char out[7])
{
	uint32_t c = 0;
	if (totp_code(seed, (uint64_t)t, 6, &c) != ERR_OK)
		fprintf(stderr, "  totp_code failed\n");
	snprintf(out, 7, "%06u", (unsigned)c);
}

/* An auth with the default [auth] settings but these; slots: failure
 * counters (0: the default). */
static struct auth *new_auth_slots(int64_t idle, int64_t life, unsigned slots)
{
	struct auth_conf c;
	struct auth *a = NULL;

	if (auth_conf_load(NULL, &c, NULL, 0) != ERR_OK)
		return NULL;
	c.idle_timeout = idle;
	c.session_lifetime = life;
	if (slots != 0)
		c.limiter_slots = slots;
	if (auth_new(&c, v->ix, &ix_lock, v->mk, v->index_key, au, &a) != ERR_OK)
		return NULL;
	return a;
}

static struct auth *new_auth(int64_t idle, int64_t life)
{
	return new_auth_slots(idle, life, 0);
}

/* One attempt; the token (if any) is copied to tok. */
static enum err login(struct auth *a, const char *user, const char *pw, const char *code, const char *addr,
                      int64_t now, char tok[AUTH_TOKEN_LEN + 1], int64_t *retry)
{
	struct secret *p = NULL, *t = NULL;
	struct auth_login in;
	struct auth_session s;
	int64_t r = -1;
	enum err rc;

	if (secret_from_bytes(pw, strlen(pw), &p) != ERR_OK)
		return ERR_INTERNAL;
	memset(&in, 0, sizeof in);
	in.user = user;
	in.user_len = strlen(user);
	in.password = p;
	in.totp = code;
	in.totp_len = strlen(code);
	in.address = addr;
	rc = auth_login(a, &in, now, &t, &s, &r);
	if (rc == ERR_OK) {
		if (tok)
			snprintf(tok, AUTH_TOKEN_LEN + 1, "%s", secret_cstr(t));
		if (strcmp(s.user, "admin") != 0 || strcmp(s.role, "admin") != 0)
			rc = ERR_INTERNAL;
	}
	if (retry)
		*retry = r;
	secret_free(t);
	secret_free(p);
	return rc;
}

static enum err check(struct auth *a, const char *tok, int64_t now)
{
	struct auth_session s;
	return auth_session_check(a, tok, strlen(tok), now, &s);
}

TEST(conf_defaults_and_ranges)
{
	struct auth_conf c;
	struct ini *ini = NULL;
	struct ini_error ie;
	char why[128];
	static const char good[] = "[auth]\nidle_timeout = 60\nsession_lifetime = 3600\nlockout_failures = 3\n";
	static const char bad[] = "[auth]\nidle_timeout = 0\n";
	static const char junk[] = "[auth]\nlockout_window = 10s\n";
	static const char many[] = "[auth]\nlockout_failures = 101\n";   /* times kept per counter */
	static const char most[] = "[auth]\nlockout_failures = 100\n";
	/* break_glass_minutes: refused when it is not minutes in range (it
	 * was read per request, and the default used instead) */
	static const char bg[] = "[auth]\nbreak_glass_minutes = 30\n";
	static const char *const bg_bad[] = { "[auth]\nbreak_glass_minutes = 30m\n", "[auth]\nbreak_glass_minutes = 2000\n",
	                                      "[auth]\nbreak_glass_minutes = 0\n", "[auth]\nbreak_glass_minutes = \n" };
	size_t i;

	CHECK(auth_conf_load(NULL, &c, NULL, 0) == ERR_OK);
	CHECK_EQ_INT(c.idle_timeout, 900);
	CHECK_EQ_INT(c.session_lifetime, 43200);
	CHECK_EQ_INT(c.lockout_failures, 5);
	CHECK_EQ_INT(c.lockout_window, 900);
	CHECK_EQ_INT(c.break_glass_minutes, 60);
	CHECK(ini_parse((const uint8_t *)good, strlen(good), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_OK);
	CHECK_EQ_INT(c.idle_timeout, 60);
	CHECK_EQ_INT(c.session_lifetime, 3600);
	CHECK_EQ_INT(c.lockout_failures, 3);
	ini_free(ini);
	CHECK(ini_parse((const uint8_t *)bad, strlen(bad), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_PARSE && strstr(why, "idle_timeout") != NULL);
	ini_free(ini);
	CHECK(ini_parse((const uint8_t *)junk, strlen(junk), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_PARSE && strstr(why, "lockout_window") != NULL);
	ini_free(ini);
	CHECK(ini_parse((const uint8_t *)many, strlen(many), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_PARSE && strstr(why, "lockout_failures") != NULL);
	ini_free(ini);
	CHECK(ini_parse((const uint8_t *)most, strlen(most), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_OK && c.lockout_failures == 100);
	ini_free(ini);
	CHECK(ini_parse((const uint8_t *)bg, strlen(bg), &ini, &ie) == ERR_OK);
	CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_OK && c.break_glass_minutes == 30);
	ini_free(ini);
	for (i = 0; i < sizeof bg_bad / sizeof bg_bad[0]; i++) {
		why[0] = 0;
		CHECK(ini_parse((const uint8_t *)bg_bad[i], strlen(bg_bad[i]), &ini, &ie) == ERR_OK);
		CHECK(auth_conf_load(ini, &c, why, sizeof why) == ERR_PARSE);
		CHECK(strstr(why, "line 2: [auth] break_glass_minutes must be an integer from 1 to 1440") != NULL);
		ini_free(ini);
	}
}

TEST(login_session_logout)
{
	struct auth *a = new_auth(900, 43200);
	char code[7], tok[AUTH_TOKEN_LEN + 1], tok2[AUTH_TOKEN_LEN + 1];
	struct auth_session s;
	size_t i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(T0, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", T0, tok, NULL) == ERR_OK);
	CHECK(last_audit("\"action\":\"login\",\"outcome\":\"success\"", "\"user\":\"admin\"",
	                 "\"role\":\"admin\"", "\"addr\":\"127.0.0.1\"", "\"session\":\"", NULL));
	CHECK(strstr(audit_last_line(), tok) == NULL);
	CHECK_EQ_INT(strlen(tok), AUTH_TOKEN_LEN);
	for (i = 0; i < strlen(tok); i++)
		CHECK((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f'));
	CHECK(auth_session_check(a, tok, strlen(tok), T0 + 10, &s) == ERR_OK);
	CHECK_EQ_STR(s.user, "admin");
	CHECK_EQ_STR(s.role, "admin");
	CHECK_EQ_INT(s.expires, T0 + 43200);
	/* the next step's code works once; two sessions are independent */
	code_at(T0 + 30, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", T0 + 5, tok2, NULL) == ERR_OK);
	CHECK(strcmp(tok, tok2) != 0);
	CHECK(auth_logout(a, tok, strlen(tok), T0 + 20, "127.0.0.1", "curl/8") == ERR_OK);
	CHECK(last_audit("\"action\":\"logout\",\"outcome\":\"success\"", "\"user\":\"admin\"",
	                 "\"ua\":\"curl/8\"", NULL));
	CHECK(check(a, tok, T0 + 21) == ERR_AUTH);
	CHECK(auth_logout(a, tok, strlen(tok), T0 + 22, "127.0.0.1", NULL) == ERR_AUTH);
	CHECK(check(a, tok2, T0 + 23) == ERR_OK);
	/* malformed tokens never reach the index */
	CHECK(check(a, "", T0) == ERR_AUTH);
	tok2[0] = tok2[0] == 'A' ? 'B' : 'A';
	CHECK(check(a, tok2, T0 + 23) == ERR_AUTH);
	tok2[AUTH_TOKEN_LEN - 1] = 0;
	CHECK(check(a, tok2, T0 + 23) == ERR_AUTH);
	auth_free(a);
}

TEST(totp_replay_and_skew)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 3000;
	char code[7];

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now - 30, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.0.1", now, NULL, NULL) == ERR_OK);   /* one step late */
	CHECK(login(a, "admin", PASSWORD, code, "10.0.0.2", now, NULL, NULL) == ERR_AUTH);  /* replay */
	CHECK(last_audit("\"action\":\"login-failure\",\"outcome\":\"failure\"",
	                 "\"reason\":\"TOTP code already used\"", "\"user\":\"admin\"", NULL));
	code_at(now + 60, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.0.3", now, NULL, NULL) == ERR_AUTH);  /* two steps early */
	code_at(now, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.0.4", now, NULL, NULL) == ERR_OK);
	/* an earlier step than the last accepted one is refused too */
	code_at(now - 30, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.0.5", now, NULL, NULL) == ERR_AUTH);
	CHECK(login(a, "admin", PASSWORD, "12345", "10.0.0.6", now, NULL, NULL) == ERR_AUTH);
	CHECK(login(a, "admin", PASSWORD, "12345a", "10.0.0.7", now, NULL, NULL) == ERR_AUTH);
	auth_free(a);
}

TEST(same_answer_for_every_failure)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 6000;
	char code[7], bad[7];

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now, code);
	snprintf(bad, sizeof bad, "%06u", (unsigned)((strtoul(code, NULL, 10) + 1) % 1000000));
	CHECK(login(a, "admin", "wrong password!", code, "10.1.0.1", now, NULL, NULL) == ERR_AUTH);
	CHECK(login(a, "admin", PASSWORD, bad, "10.1.0.2", now, NULL, NULL) == ERR_AUTH);
	CHECK(login(a, "nobody", PASSWORD, code, "10.1.0.3", now, NULL, NULL) == ERR_AUTH);
	CHECK(last_audit("\"action\":\"login-failure\"", "\"reason\":\"unknown user\"", "\"addr\":\"10.1.0.3\"", NULL));
	CHECK(strstr(audit_last_line(), "nobody") == NULL);
	CHECK(login(a, "bad name; drop", PASSWORD, code, "10.1.0.4", now, NULL, NULL) == ERR_AUTH);
	CHECK(login(a, "", PASSWORD, code, "10.1.0.5", now, NULL, NULL) == ERR_AUTH);
	/* the right code is still good: failures did not consume it */
	CHECK(login(a, "admin", PASSWORD, code, "10.1.0.6", now, NULL, NULL) == ERR_OK);
	auth_free(a);
}

static double secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

TEST(unknown_user_costs_a_hash)
{
	struct auth *a = new_auth(900, 43200);
	double t0, known = 0, unknown = 0;
	int64_t now = T0 + 9000;
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (i = 0; i < 2; i++) {
		t0 = secs();
		CHECK(login(a, "admin", "wrong password!", "000000", "10.2.0.1", now + i, NULL, NULL) == ERR_AUTH);
		known += secs() - t0;
		t0 = secs();
		CHECK(login(a, "nobody", "wrong password!", "000000", "10.2.0.2", now + i, NULL, NULL) == ERR_AUTH);
		unknown += secs() - t0;
	}
	if (!(unknown > known * 0.5 && unknown < known * 2))
		fprintf(stderr, "  known %.3f s, unknown %.3f s\n", known, unknown);
	CHECK(unknown > known * 0.5 && unknown < known * 2);
	auth_free(a);
}

TEST(lockout_per_account)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 12000, retry = 0;
	char code[7], addr[32];
	struct idx_user u;
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	/* five failures from five addresses lock the account */
	for (i = 0; i < 5; i++) {
		snprintf(addr, sizeof addr, "192.0.2.%d", i + 1);
		CHECK(login(a, "admin", "wrong password!", "000000", addr, now + i, NULL, NULL) == ERR_AUTH);
	}
	CHECK(last_audit("\"action\":\"lockout\",\"outcome\":\"denied\"", "\"user\":\"admin\"", NULL));
	code_at(now + 10, code);
	CHECK(login(a, "admin", PASSWORD, code, "192.0.2.99", now + 10, NULL, &retry) == ERR_DENIED);
	CHECK(retry > 880 && retry <= 900);
	CHECK(last_audit("\"action\":\"login-failure\",\"outcome\":\"denied\"", "\"reason\":\"locked out\"", NULL));
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	CHECK(u.locked_until > now && u.failures >= 5);
	/* the lock survives a restart (kept in the row) */
	auth_free(a);
	a = new_auth(900, 43200);
	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK(login(a, "admin", PASSWORD, code, "192.0.2.98", now + 20, NULL, NULL) == ERR_DENIED);
	/* and ends */
	code_at(now + 1000, code);
	CHECK(login(a, "admin", PASSWORD, code, "192.0.2.97", now + 1000, NULL, NULL) == ERR_OK);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	CHECK(u.locked_until == 0 && u.failures == 0);
	/* unknown names lock the same way (no enumeration by lockout) */
	for (i = 0; i < 5; i++) {
		snprintf(addr, sizeof addr, "198.51.100.%d", i + 1);
		CHECK(login(a, "ghost", "wrong password!", "000000", addr, now + 1000 + i, NULL, NULL) == ERR_AUTH);
	}
	CHECK(login(a, "ghost", "wrong password!", "000000", "198.51.100.99", now + 1010, NULL, NULL) == ERR_DENIED);
	auth_free(a);
}

TEST(lockout_per_address)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 20000, retry = 0;
	char code[7], name[32];
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "user%d", i);
		CHECK(login(a, name, "wrong password!", "000000", "203.0.113.7", now + i, NULL, NULL) == ERR_AUTH);
	}
	code_at(now + 10, code);
	CHECK(login(a, "admin", PASSWORD, code, "203.0.113.7", now + 10, NULL, &retry) == ERR_DENIED);
	CHECK(retry > 0);
	/* the code was not consumed: the same one works from elsewhere */
	CHECK(login(a, "admin", PASSWORD, code, "203.0.113.8", now + 10, NULL, NULL) == ERR_OK);
	/* an IPv6 address is counted by its /64 */
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "2001:db8::%d", i + 1);
		CHECK(login(a, "nobody", "wrong password!", "000000", name, now + 20 + i, NULL, NULL) == ERR_AUTH);
	}
	code_at(now + 40, code);
	CHECK(login(a, "admin", PASSWORD, code, "2001:db8::ffff", now + 40, NULL, NULL) == ERR_DENIED);
	CHECK(login(a, "admin", PASSWORD, code, "2001:db8:1::1", now + 40, NULL, NULL) == ERR_OK);
	auth_free(a);
}

/* Five failures within any 900 s lock, not only five counted from the
 * first: a window that restarted at T+900 let failures at T, T+897..901
 * (six in 904 s, five in 4 s) through. */
TEST(lockout_window_slides)
{
	struct auth *a = new_auth(900, 43200);
	static const int at[] = { 0, 897, 898, 899, 900, 901 };
	int64_t now = T0 + 60000;
	char code[7], addr[32];
	size_t i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (i = 0; i < sizeof at / sizeof at[0]; i++) {
		snprintf(addr, sizeof addr, "192.0.2.%zu", 100 + i);
		CHECK(login(a, "admin", "wrong password!", "000000", addr, now + at[i], NULL, NULL) == ERR_AUTH);
		/* the fifth (T+900) makes five in exactly 900 s: not yet a
		 * lock (its record is the last, no lockout after it) */
		if (at[i] == 900)
			CHECK(last_audit("\"action\":\"login-failure\"", NULL));
	}
	CHECK(last_audit("\"action\":\"lockout\",\"outcome\":\"denied\"", "\"user\":\"admin\"", NULL));
	code_at(now + 902, code);
	CHECK(login(a, "admin", PASSWORD, code, "192.0.2.120", now + 902, NULL, NULL) == ERR_DENIED);
	/* and it ends after the window */
	code_at(now + 1810, code);
	CHECK(login(a, "admin", PASSWORD, code, "192.0.2.121", now + 1810, NULL, NULL) == ERR_OK);
	auth_free(a);
}

/* When the counters run out, a flood of failures from other addresses
 * with made-up names does not push out a real account's counter: its
 * fifth failure still locks it. (Eight slots stand for the 4096.) */
TEST(lockout_survives_a_flood)
{
	struct auth *a = new_auth_slots(900, 43200, 8);
	int64_t now = T0 + 70000;
	char code[7], addr[32], name[32];
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (i = 0; i < 4; i++) {
		snprintf(addr, sizeof addr, "198.18.0.%d", i + 1);
		CHECK(login(a, "admin", "wrong password!", "000000", addr, now + i, NULL, NULL) == ERR_AUTH);
	}
	for (i = 0; i < 12; i++) {
		snprintf(addr, sizeof addr, "198.18.1.%d", i + 1);
		snprintf(name, sizeof name, "flood%d", i);
		CHECK(login(a, name, "wrong password!", "000000", addr, now + 10 + i, NULL, NULL) == ERR_AUTH);
	}
	CHECK(login(a, "admin", "wrong password!", "000000", "198.18.2.1", now + 30, NULL, NULL) == ERR_AUTH);
	CHECK(last_audit("\"action\":\"lockout\",\"outcome\":\"denied\"", "\"user\":\"admin\"", NULL));
	code_at(now + 40, code);
	CHECK(login(a, "admin", PASSWORD, code, "198.18.2.2", now + 40, NULL, NULL) == ERR_DENIED);
	code_at(now + 1000, code);
	CHECK(login(a, "admin", PASSWORD, code, "198.18.2.3", now + 1000, NULL, NULL) == ERR_OK);
	auth_free(a);
}

TEST(idle_timeout_and_lifetime)
{
	struct auth *a = new_auth(100, 1000);
	int64_t now = T0 + 30000;
	char code[7], tok[AUTH_TOKEN_LEN + 1], sref[40];
	struct auth_session s;
	int n;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", now, tok, NULL) == ERR_OK);
	/* activity keeps it alive past the idle timeout... */
	CHECK(check(a, tok, now + 90) == ERR_OK);
	CHECK(check(a, tok, now + 180) == ERR_OK);
	CHECK(check(a, tok, now + 270) == ERR_OK);
	CHECK(check(a, tok, now + 360) == ERR_OK);
	CHECK(check(a, tok, now + 450) == ERR_OK);
	CHECK(check(a, tok, now + 540) == ERR_OK);
	CHECK(check(a, tok, now + 630) == ERR_OK);
	CHECK(check(a, tok, now + 720) == ERR_OK);
	CHECK(check(a, tok, now + 810) == ERR_OK);
	CHECK(check(a, tok, now + 900) == ERR_OK);
	CHECK(check(a, tok, now + 990) == ERR_OK);
	/* ...but not past its lifetime: its end is a logout on the record,
	 * with the address and user agent of the request that found it */
	session_field(tok, sref);
	CHECK(auth_request_check(a, tok, strlen(tok), now + 1000, "10.0.0.9", "UA-late", &s) == ERR_AUTH);
	CHECK(last_audit("\"action\":\"logout\",\"outcome\":\"success\"", "\"reason\":\"session lifetime ended\"",
	                 "\"user\":\"admin\"", "\"role\":\"admin\"", sref, "\"addr\":\"10.0.0.9\"",
	                 "\"ua\":\"UA-late\"", NULL));
	n = count_audit("\"action\":\"logout\"", NULL);
	CHECK(check(a, tok, now + 990) == ERR_AUTH);   /* it was deleted, and ends once */
	CHECK_EQ_INT(count_audit("\"action\":\"logout\"", NULL), n);
	/* idle */
	code_at(now + 30, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", now + 30, tok, NULL) == ERR_OK);
	CHECK(check(a, tok, now + 129) == ERR_OK);
	session_field(tok, sref);
	CHECK(auth_logout(a, tok, strlen(tok), now + 229, "10.0.0.8", NULL) == ERR_AUTH);
	CHECK(last_audit("\"action\":\"logout\",\"outcome\":\"success\"", "\"reason\":\"idle timeout\"",
	                 "\"user\":\"admin\"", "\"role\":\"admin\"", sref, "\"addr\":\"10.0.0.8\"", NULL));
	CHECK(check(a, tok, now + 230) == ERR_AUTH);
	CHECK_EQ_INT(count_audit("\"action\":\"logout\"", NULL), n + 1);
	auth_free(a);
}

/* Ended sessions nobody uses again are deleted at a later login: each is
 * a logout on the record (the session's own address: no request found
 * it), before the login's record, at most AUTH_ENDED_PER_LOGIN a login. */
TEST(ended_sessions_recorded_at_login)
{
	struct auth *a = new_auth(100, 1000);
	int64_t now = T0 + 35000;
	char code[7], tok[AUTH_TOKEN_LEN + 1], sref[40], ref[40];
	struct idx_session se;
	struct idx_user u;
	unsigned i, extra = AUTH_ENDED_PER_LOGIN + 3;
	int idle0;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.1.1", now, tok, NULL) == ERR_OK);
	session_field(tok, sref);
	code_at(now + 150, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.1.2", now + 150, NULL, NULL) == ERR_OK);
	CHECK(last_audit("\"action\":\"login\",\"outcome\":\"success\"", "\"addr\":\"10.0.1.2\"", NULL));
	CHECK_EQ_INT(count_audit("\"action\":\"logout\"", "\"reason\":\"idle timeout\"", "\"user\":\"admin\"",
	                         "\"role\":\"admin\"", sref, "\"addr\":\"10.0.1.1\"", NULL), 1);
	CHECK(check(a, tok, now + 151) == ERR_AUTH);   /* gone */
	CHECK_EQ_INT(count_audit(sref, NULL), 2);      /* its login and its end */
	/* many ended at once: a login ends a bounded number of them */
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	for (i = 0; i < extra; i++) {
		memset(&se, 0, sizeof se);
		se.user_id = u.id;
		memset(se.token_hash, 0xa0, sizeof se.token_hash);
		se.token_hash[0] = (uint8_t)i;
		se.created = se.last_seen = now + 160;
		se.expires = now + 1160;
		snprintf(se.address, sizeof se.address, "10.0.2.%u", i);
		snprintf(se.ref, sizeof se.ref, "fe%014x", i);
		CHECK(v->ix->ops->session_put(v->ix, &se) == ERR_OK);
	}
	idle0 = count_audit("\"reason\":\"idle timeout\"", "\"session\":\"fe", NULL);
	CHECK_EQ_INT(idle0, 0);
	code_at(now + 300, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.1.3", now + 300, NULL, NULL) == ERR_OK);
	CHECK(last_audit("\"action\":\"login\",\"outcome\":\"success\"", "\"addr\":\"10.0.1.3\"", NULL));
	CHECK(count_audit("\"reason\":\"idle timeout\"", "\"session\":\"fe", NULL) <= (int)AUTH_ENDED_PER_LOGIN);
	code_at(now + 330, code);
	CHECK(login(a, "admin", PASSWORD, code, "10.0.1.4", now + 330, NULL, NULL) == ERR_OK);
	for (i = 0; i < extra; i++) {
		snprintf(ref, sizeof ref, "\"session\":\"fe%014x\"", i);
		CHECK_EQ_INT(count_audit("\"action\":\"logout\"", "\"reason\":\"idle timeout\"", ref, NULL), 1);
	}
	auth_free(a);
}

TEST(disabled_user_loses_sessions_and_login)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 40000;
	char code[7], tok[AUTH_TOKEN_LEN + 1];
	struct idx_user u;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", now, tok, NULL) == ERR_OK);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	u.disabled = true;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	CHECK(check(a, tok, now + 1) == ERR_AUTH);
	code_at(now + 30, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.2", now + 30, NULL, NULL) == ERR_AUTH);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	u.disabled = false;
	u.expires = now + 100;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	code_at(now + 200, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.3", now + 200, NULL, NULL) == ERR_AUTH);   /* expired */
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	u.expires = 0;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	auth_free(a);
}

TEST(token_stored_only_as_hash)
{
	struct auth *a = new_auth(900, 43200);
	int64_t now = T0 + 50000;
	char code[7], tok[AUTH_TOKEN_LEN + 1], p[600];
	uint8_t *db = NULL;
	size_t n = 0;
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	code_at(now, code);
	CHECK(login(a, "admin", PASSWORD, code, "127.0.0.1", now, tok, NULL) == ERR_OK);
	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/index.db%s", dir, i ? "-wal" : "");
		if (file_read_all(p, 1 << 28, &db, &n) == ERR_OK) {
			CHECK(memmem(db, n, tok, AUTH_TOKEN_LEN) == NULL);
			CHECK(memmem(db, n, PASSWORD, strlen(PASSWORD)) == NULL);
			free(db);
			db = NULL;
		}
	}
	auth_free(a);
}

int main(void)
{
	struct vault_init_opts o;
	struct vault_created res;
	char pwfile[300], why[300];
	int fd;

	snprintf(base, sizeof base, "/tmp/dv_auth_test.XXXXXX");
	if (mkdtemp(base) == NULL)
		return 1;
	snprintf(pwfile, sizeof pwfile, "%s/pw", base);
	fd = open(pwfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, PASSWORD "\n", strlen(PASSWORD) + 1) < 0)
		return 1;
	close(fd);
	snprintf(dir, sizeof dir, "%s/v", base);
	memset(&o, 0, sizeof o);
	o.dir = dir;
	o.password_file = pwfile;
	if (vault_init(&o, &res, why, sizeof why) != ERR_OK ||
	    totp_seed_parse(secret_cstr(res.totp_b32), strlen(secret_cstr(res.totp_b32)), &seed) != ERR_OK) {
		fprintf(stderr, "init: %s\n", why);
		return 1;
	}
	vault_created_fini(&res);
	if (vault_open(dir, NULL, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "open: %s\n", why);
		return 1;
	}
	snprintf(audit_path, sizeof audit_path, "%s/audit.log", base);
	if (audit_create_path(audit_path, &au) != ERR_OK)
		return 1;
	RUN(conf_defaults_and_ranges);
	RUN(login_session_logout);
	RUN(totp_replay_and_skew);
	RUN(same_answer_for_every_failure);
	RUN(unknown_user_costs_a_hash);
	RUN(lockout_per_account);
	RUN(lockout_per_address);
	RUN(idle_timeout_and_lifetime);
	RUN(ended_sessions_recorded_at_login);
	RUN(disabled_user_loses_sessions_and_login);
	RUN(token_stored_only_as_hash);
	RUN(lockout_window_slides);
	RUN(lockout_survives_a_flood);
	{
		struct audit_verify_result vr;
		audit_close(au);
		t_failed_now = 0;
		CHECK(audit_verify(audit_path, &vr) == ERR_OK && vr.fault == AUDIT_OK && vr.records > 50);
		if (t_failed_now) { t_fail++; printf("not ok - audit_chain_intact\n"); }
		else { t_pass++; printf("ok - audit_chain_intact\n"); }
	}
	vault_close(v);
	secret_free(seed);
	snprintf(why, sizeof why, "rm -rf '%s'", base);
	if (system(why) != 0)
		fprintf(stderr, "cleanup failed\n");
	return TEST_DONE();
}
