/* users_test.c: times for grants and accounts (users_parse_time), and the
 * grants in force for a request (users_grants_now) over a real vault:
 * expiry, not-before, revocation, disabled and expired accounts, a study
 * grant with priors taking the study's patient; changes whose audit record
 * cannot be written undone (a new user, an enable) or said (a disable).
 * Layer: tests. */
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/audit.h"
#include "dicomvault/index.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"

TEST(times)
{
	int64_t t = 0;

	CHECK(users_parse_time("1970-01-02", 0, &t) == ERR_OK && t == 86400);
	/* 0 reads as "not given" in grants, accounts and queries: never given for a time */
	CHECK(users_parse_time("1970-01-01", 0, &t) == ERR_PARSE);
	CHECK(users_parse_time("@0", 0, &t) == ERR_PARSE);
	CHECK(users_parse_time("1970-01-01T00:00:00Z", 0, &t) == ERR_PARSE);
	CHECK(users_parse_time("+0s", 0, &t) == ERR_PARSE);
	CHECK(users_parse_time("@1", 0, &t) == ERR_OK && t == 1);
	CHECK(users_parse_time("+0s", 5, &t) == ERR_OK && t == 5);
	CHECK(users_parse_time("2026-11-22", 0, &t) == ERR_OK && t == 1795305600);
	CHECK(users_parse_time("2026-11-22T18:30Z", 0, &t) == ERR_OK && t == 1795305600 + 18 * 3600 + 1800);
	CHECK(users_parse_time("2026-11-22T18:30:15", 0, &t) == ERR_OK && t == 1795305600 + 18 * 3600 + 1815);
	CHECK(users_parse_time("2026-11-22T18:30:00+01:00", 0, &t) == ERR_OK && t == 1795305600 + 17 * 3600 + 1800);
	CHECK(users_parse_time("2026-11-22T18:30:00-05:30", 0, &t) == ERR_OK && t == 1795305600 + 24 * 3600);
	CHECK(users_parse_time("2024-02-29", 0, &t) == ERR_OK);
	CHECK(users_parse_time("@1700000000", 0, &t) == ERR_OK && t == 1700000000);
	CHECK(users_parse_time("+90s", 1000, &t) == ERR_OK && t == 1090);
	CHECK(users_parse_time("+2m", 1000, &t) == ERR_OK && t == 1120);
	CHECK(users_parse_time("+3h", 0, &t) == ERR_OK && t == 10800);
	CHECK(users_parse_time("+7d", 0, &t) == ERR_OK && t == 7 * 86400);
	{
		static const char *const bad[] = { "", "2026", "2026-13-01", "2026-02-30", "2025-02-29", "2026-11-22T25:00",
			"2026-11-22T18:60", "2026-11-22T18:30:61", "2026-11-22X", "2026-11-22T18:30+1", "2026-11-22T18:30+15:00",
			"+", "+5", "+5y", "+-5d", "@", "@-1", "@12x", "+99999999999d", "1969-12-31", "tomorrow",
			"2026-11-22T18:30:00Z trailing", "2026-1-22",
			/* before 1970 or after 9999 once the offset is applied; an "@" past 9999 */
			"1970-01-01T00:00+01:00", "9999-12-31T23:30-01:00", "@253402300800" };
		size_t i;
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			if (users_parse_time(bad[i], 0, &t) != ERR_PARSE)
				fprintf(stderr, "  accepted '%s'\n", bad[i]);
			CHECK(users_parse_time(bad[i], 0, &t) == ERR_PARSE);
		}
	}
	CHECK(users_parse_time(NULL, 0, &t) == ERR_PARSE);
	/* every time a form gives can be written back as "@N" (admin_fuzz) */
	CHECK(users_parse_time("9999-12-31T23:59:59Z", 0, &t) == ERR_OK && t == USERS_TIME_MAX);
	CHECK(users_parse_time("@253402300799", 0, &t) == ERR_OK && t == USERS_TIME_MAX);
	CHECK(users_parse_time("8047-10-02", 0, &t) == ERR_OK && t > 100000000000LL);
	CHECK(users_parse_time("1970-01-01T00:00-01:00", 0, &t) == ERR_OK && t == 3600);
	CHECK(users_parse_time("+1d", USERS_TIME_MAX - 3600, &t) == ERR_PARSE);
}

TEST(names)
{
	CHECK(users_name_ok("alice"));
	CHECK(users_name_ok("dr.jones@hospital-1_x"));
	CHECK(!users_name_ok(""));
	CHECK(!users_name_ok("a b"));
	CHECK(!users_name_ok("a/b"));
	CHECK(!users_name_ok("'; DROP TABLE users; --"));
	CHECK(!users_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	CHECK(!users_name_ok(NULL));
}

static struct vault *make_vault(char *dir, size_t cap)
{
	struct vault_init_opts io;
	struct vault_created res;
	struct vault_open_opts vo;
	struct vault *v = NULL;
	char why[256], pwf[300];
	FILE *f;

	snprintf(dir, cap, "/tmp/dv_users_test.%d", (int)getpid());
	snprintf(pwf, sizeof pwf, "%s.pw", dir);
	f = fopen(pwf, "w");
	if (f == NULL)
		return NULL;
	fputs("correct horse battery staple\n", f);
	fclose(f);
	chmod(pwf, 0600);
	memset(&io, 0, sizeof io);
	io.dir = dir;
	io.password_file = pwf;
	if (vault_init(&io, &res, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "  init: %s\n", why);
		return NULL;
	}
	vault_created_fini(&res);
	unlink(pwf);
	/* a collection to grant on (a collection scope names one that exists) */
	snprintf(pwf, sizeof pwf, "%s/dicomvault.conf", dir);
	f = fopen(pwf, "a");
	if (f == NULL)
		return NULL;
	fputs("\n[collection \"onco\"]\nmatch = InstitutionalDepartmentName=Onco*\n", f);
	fclose(f);
	memset(&vo, 0, sizeof vo);
	if (vault_open(dir, &vo, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "  open: %s\n", why);
		return NULL;
	}
	return v;
}

/* user add's grant without a scope: * for a role of vault-wide actions
 * only (auditor), a collection for the others, which are told what it
 * does not give */
TEST(default_scope)
{
	CHECK_EQ_STR(users_default_scope(ACCESS_ROLE_AUDITOR), "*");
	CHECK_EQ_STR(users_default_scope(ACCESS_ROLE_ADMIN), "collection:default");
	CHECK_EQ_STR(users_default_scope(ACCESS_ROLE_PHYSICIAN), "collection:default");
	CHECK(users_scope_lacks(ACCESS_ROLE_AUDITOR, NULL) == 0);
	CHECK(users_scope_lacks(ACCESS_ROLE_AUDITOR, "collection:onco") == 1u << ACCESS_ACT_READ_AUDIT);
	CHECK(users_scope_lacks(ACCESS_ROLE_ADMIN, NULL) ==
	      ((1u << ACCESS_ACT_MANAGE_USERS) | (1u << ACCESS_ACT_READ_AUDIT)));
	CHECK(users_scope_lacks(ACCESS_ROLE_ADMIN, "*") == 0);
	CHECK(users_scope_lacks(ACCESS_ROLE_RADIOLOGIST, "collection:default") == 0);
}

TEST(grants_now)
{
	char dir[256], why[256], cmd[400];
	struct vault *v = make_vault(dir, sizeof dir);
	struct users_actor by = { .user = "tester", .role = "admin", .addr = "local" };
	struct secret *b32 = NULL, *uri = NULL, *pw = NULL;
	struct access_grant *g = NULL;
	struct users_grant_req r;
	struct idx_user u;
	int64_t id1 = 0, id2 = 0, now = (int64_t)time(NULL);
	size_t n = 0;

	CHECK(v != NULL);
	if (v == NULL)
		return;
	/* the first admin has a grant on everything */
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK);
	CHECK(n == 1 && g[0].scope == ACCESS_SCOPE_ALL && g[0].role == ACCESS_ROLE_ADMIN);
	free(g);
	g = NULL;
	CHECK(users_add(v, &by, "dana", ACCESS_ROLE_PHYSICIAN, NULL, 0, NULL, &pw, &b32, &uri, why, sizeof why) == ERR_OK);
	CHECK(pw != NULL && secret_len(pw) == 24);
	CHECK(users_add(v, &by, "dana", ACCESS_ROLE_PHYSICIAN, NULL, 0, NULL, NULL, &b32, &uri, why, sizeof why) ==
	      ERR_DENIED);
	CHECK(v->ix->ops->user_get(v->ix, "dana", &u) == ERR_OK);
	memset(&r, 0, sizeof r);
	r.user = "dana";
	r.role = ACCESS_ROLE_RADIOLOGIST;
	r.scope = "collection:onco";
	r.not_before = now + 100;
	r.expires = now + 200;
	CHECK(users_grant(v, &by, &r, &id1, why, sizeof why) == ERR_OK);
	/* a collection the configuration has not got: refused, saying so
	 * (also at `user add`) */
	r.scope = "collection:oncco";
	CHECK(users_grant(v, &by, &r, &id2, why, sizeof why) == ERR_PARSE && strstr(why, "no such collection oncco"));
	CHECK(users_add(v, &by, "erin", ACCESS_ROLE_PHYSICIAN, "collection:oncco", 0, NULL, NULL, &b32, &uri, why,
	                sizeof why) == ERR_PARSE && strstr(why, "no such collection"));
	CHECK(v->ix->ops->user_get(v->ix, "erin", &u) == ERR_NOTFOUND);
	CHECK(v->ix->ops->user_get(v->ix, "dana", &u) == ERR_OK);
	r.scope = "study:1.2.3";
	r.not_before = 0;
	r.expires = now + 50;
	CHECK(users_grant(v, &by, &r, &id2, why, sizeof why) == ERR_OK);
	/* at now: the initial grant, the pending onco one (access_decide looks
	 * at not_before) and the study grant */
	CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK && n == 3);
	CHECK(n == 3 && access_decide(g, n, ACCESS_ACT_RETRIEVE, &(struct access_object){ "x", "1.2.3", NULL }, now,
	                              NULL) == ACCESS_YES);
	free(g);
	/* at now+60: the study grant has expired */
	CHECK(users_grants_now(v, u.id, now + 60, &g, &n) == ERR_OK && n == 2);
	CHECK(n == 2 && access_decide(g, n, ACCESS_ACT_RETRIEVE, &(struct access_object){ "onco", "9.9", NULL }, now + 60,
	                              NULL) == ACCESS_NO);
	CHECK(n == 2 && access_decide(g, n, ACCESS_ACT_RETRIEVE, &(struct access_object){ "onco", "9.9", NULL },
	                              now + 150, NULL) == ACCESS_YES);
	free(g);
	/* revoked: gone at once */
	CHECK(users_revoke(v, &by, id1, why, sizeof why) == ERR_OK);
	CHECK(users_revoke(v, &by, id1, why, sizeof why) == ERR_DENIED);
	CHECK(users_revoke(v, &by, 99999, why, sizeof why) == ERR_NOTFOUND);
	CHECK(users_grants_now(v, u.id, now + 150, &g, &n) == ERR_OK && n == 1);
	free(g);
	/* bad requests */
	r.scope = "collection:onco";
	r.expires = 5;
	r.not_before = 10;
	CHECK(users_grant(v, &by, &r, NULL, why, sizeof why) == ERR_PARSE);
	r.not_before = 0;
	r.expires = 0;
	r.with_priors = true;
	CHECK(users_grant(v, &by, &r, NULL, why, sizeof why) == ERR_PARSE);   /* priors need a study */
	r.scope = "study:1.2.3";
	CHECK(users_grant(v, &by, &r, NULL, why, sizeof why) == ERR_NOTFOUND);   /* the study is not stored */
	r.with_priors = false;
	r.user = "nobody";
	CHECK(users_grant(v, &by, &r, NULL, why, sizeof why) == ERR_NOTFOUND);
	/* a disabled account has no grants */
	CHECK(users_set_disabled(v, &by, "dana", true, why, sizeof why) == ERR_OK);
	CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_AUTH);
	CHECK(users_set_disabled(v, &by, "dana", false, why, sizeof why) == ERR_OK);
	CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK);
	free(g);
	CHECK(users_set_disabled(v, &by, "nobody", true, why, sizeof why) == ERR_NOTFOUND);
	/* the grants kept between calls follow changes made by another process
	 * (here: a second open of the same vault) at once */
	{
		struct vault_open_opts vo;
		struct vault *v2 = NULL;
		size_t before = 0;
		int64_t gid = 0;
		memset(&vo, 0, sizeof vo);
		CHECK(vault_open(dir, &vo, &v2, why, sizeof why) == ERR_OK);
		CHECK(users_grants_now(v, u.id, now, &g, &before) == ERR_OK);
		free(g);
		CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK && n == before);   /* from the cache */
		free(g);
		r.user = "dana";
		r.scope = "*";
		r.with_priors = false;
		r.not_before = 0;
		r.expires = now + 1000;
		CHECK(v2 != NULL && users_grant(v2, &by, &r, &gid, why, sizeof why) == ERR_OK);
		CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK && n == before + 1);

		free(g);
		/* an expiry is checked at each call, also on kept grants (at now+1000
		 * the new grant and the study grant of now+50 have both expired) */
		CHECK(users_grants_now(v, u.id, now + 1000, &g, &n) == ERR_OK && n == before - 1);
		free(g);
		CHECK(v2 != NULL && users_revoke(v2, &by, gid, why, sizeof why) == ERR_OK);
		CHECK(users_grants_now(v, u.id, now, &g, &n) == ERR_OK && n == before);
		free(g);
		vault_close(v2);
	}
	CHECK(users_grants_now(v, 424242, now, &g, &n) == ERR_AUTH);
	secret_free(pw);
	secret_free(b32);
	secret_free(uri);
	vault_close(v);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* A change whose record cannot be written: a new user is removed, an
 * enable is undone, a disable is kept (and said so). The log is made to
 * refuse by shortening it under the open handle (a writer refuses to
 * continue a chain that shrank). */
TEST(unrecorded_changes_undone)
{
	char dir[256], why[256], cmd[400], log[300];
	struct vault *v = make_vault(dir, sizeof dir);
	struct users_actor by = { .user = "tester", .role = "admin", .addr = "local" };
	struct secret *b32 = NULL, *uri = NULL, *pw = NULL;
	struct audit *au = NULL;
	struct idx_user u;
	struct stat st;

	CHECK(v != NULL);
	if (v == NULL)
		return;
	CHECK(users_add(v, &by, "erin", ACCESS_ROLE_PHYSICIAN, NULL, 0, NULL, &pw, &b32, &uri, why, sizeof why) ==
	      ERR_OK);
	secret_free(pw);
	secret_free(b32);
	secret_free(uri);
	pw = b32 = uri = NULL;
	CHECK(users_set_disabled(v, &by, "erin", true, why, sizeof why) == ERR_OK);
	snprintf(log, sizeof log, "%s/" AUDIT_LOG_PATH, dir);
	CHECK(audit_open(dir, &au) == ERR_OK);
	by.audit = au;
	CHECK(stat(log, &st) == 0 && truncate(log, st.st_size - 1) == 0);
	why[0] = 0;
	CHECK(users_add(v, &by, "fred", ACCESS_ROLE_PHYSICIAN, NULL, 0, NULL, &pw, &b32, &uri, why, sizeof why) ==
	      ERR_IO);
	CHECK(strstr(why, "not created") != NULL);
	CHECK(pw == NULL && b32 == NULL && uri == NULL);
	CHECK(v->ix->ops->user_get(v->ix, "fred", &u) == ERR_NOTFOUND);
	why[0] = 0;
	CHECK(users_set_disabled(v, &by, "erin", false, why, sizeof why) == ERR_IO);
	CHECK(strstr(why, "nothing was changed") != NULL);
	CHECK(v->ix->ops->user_get(v->ix, "erin", &u) == ERR_OK && u.disabled);
	/* an unlock of a disabled, locked account is undone too (it gives
	 * access back): its counters return, nothing else of the row moves */
	CHECK(v->ix->ops->user_get(v->ix, "erin", &u) == ERR_OK);
	u.failures = 5;
	u.locked_until = (int64_t)time(NULL) + 600;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	why[0] = 0;
	CHECK(users_unlock(v, &by, "erin", why, sizeof why) == ERR_IO);
	CHECK(strstr(why, "nothing was changed") != NULL);
	CHECK(v->ix->ops->user_get(v->ix, "erin", &u) == ERR_OK && u.disabled && u.failures == 5 && u.locked_until != 0);
	why[0] = 0;
	CHECK(users_set_disabled(v, &by, "admin", true, why, sizeof why) == ERR_IO);
	CHECK(strstr(why, "done, but") != NULL);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK && u.disabled);
	audit_close(au);
	/* the vault's own log missing: nothing is changed at all */
	by.audit = NULL;
	CHECK(unlink(log) == 0);
	why[0] = 0;
	CHECK(users_add(v, &by, "gina", ACCESS_ROLE_PHYSICIAN, NULL, 0, NULL, &pw, &b32, &uri, why, sizeof why) ==
	      ERR_NOTFOUND);
	CHECK(strstr(why, "nothing was changed") != NULL);
	CHECK(v->ix->ops->user_get(v->ix, "gina", &u) == ERR_NOTFOUND);
	CHECK(users_set_disabled(v, &by, "erin", false, why, sizeof why) == ERR_NOTFOUND);
	CHECK(v->ix->ops->user_get(v->ix, "erin", &u) == ERR_OK && u.disabled);
	CHECK(access(log, F_OK) != 0);
	vault_close(v);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	RUN(times);
	RUN(names);
	RUN(default_scope);
	RUN(grants_now);
	RUN(unrecorded_changes_undone);
	return TEST_DONE();
}
