/* token_test.c: API tokens: scope strings, token form, creation, the
 * bearer check through auth (hard expiry, no idle timeout, revocation,
 * disabled and expired users, last_used), audit of refusals, and that only
 * a keyed hash reaches the index. Fake clock. Layer: tests. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/index.h"
#include "dicomvault/limits.h"
#include "dicomvault/token.h"
#include "dicomvault/vault.h"

#define PASSWORD "correct horse battery staple"
#define T0 1700000000

static char base[256], dir[512], audit_path[600];
static struct audit *au;
static struct vault *v;
static struct secret *key;
static pthread_mutex_t ix_lock = PTHREAD_MUTEX_INITIALIZER;

static bool last_audit_has(const char *a, const char *b)
{
	static char line[8192];
	FILE *fp = fopen(audit_path, "r");

	line[0] = 0;
	if (fp == NULL)
		return false;
	while (fgets(line, sizeof line, fp) != NULL)
		;
	fclose(fp);
	if (strstr(line, a) == NULL || (b != NULL && strstr(line, b) == NULL)) {
		fprintf(stderr, "  last audit record: %s", line);
		return false;
	}
	return true;
}

static long audit_lines(void)
{
	FILE *fp = fopen(audit_path, "r");
	long n = 0;
	int c;

	if (fp == NULL)
		return 0;
	while ((c = fgetc(fp)) != EOF)
		n += c == '\n';
	fclose(fp);
	return n;
}

static struct auth *new_auth(void)
{
	struct auth_conf c;
	struct auth *a = NULL;

	if (auth_conf_load(NULL, &c, NULL, 0) != ERR_OK)
		return NULL;
	c.idle_timeout = 60;   /* short: an API token must not be subject to it */
	if (auth_new(&c, v->ix, &ix_lock, v->mk, v->index_key, au, &a) != ERR_OK)
		return NULL;
	return a;
}

static bool scope_is(const char *in, const char *want, const char *want_coll)
{
	char out[IDX_SCOPE_MAX + 1], why[200];
	const char *coll = "unset";

	if (token_scope_parse(in, out, sizeof out, &coll, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "  scope %s: %s\n", in, why);
		return false;
	}
	if (strcmp(out, want) != 0 || (want_coll == NULL ? coll != NULL : coll == NULL || strcmp(coll, want_coll) != 0)) {
		fprintf(stderr, "  scope %s gave %s (collection %s)\n", in, out, coll ? coll : "(none)");
		return false;
	}
	return true;
}

static bool scope_bad(const char *in)
{
	char out[IDX_SCOPE_MAX + 1], why[200];

	why[0] = 0;
	if (token_scope_parse(in, out, sizeof out, NULL, why, sizeof why) != ERR_PARSE || why[0] == 0) {
		fprintf(stderr, "  scope '%s' accepted\n", in ? in : "(null)");
		return false;
	}
	return true;
}

TEST(scope_strings)
{
	char long_name[200];

	CHECK(scope_is("store", "store", NULL));
	CHECK(scope_is("retrieve,query,store", "store,query,retrieve", NULL));
	CHECK(scope_is("query,collection=research-1.a_b", "query,collection=research-1.a_b", "research-1.a_b"));
	CHECK(scope_is("collection=default,retrieve", "retrieve,collection=default", "default"));
	CHECK(scope_bad(NULL));
	CHECK(scope_bad(""));
	CHECK(scope_bad(","));
	CHECK(scope_bad("store,"));
	CHECK(scope_bad(",store"));
	CHECK(scope_bad("store,,query"));
	CHECK(scope_bad("store,store"));
	CHECK(scope_bad("STORE"));
	CHECK(scope_bad("store "));
	CHECK(scope_bad("admin"));
	CHECK(scope_bad("delete"));
	CHECK(scope_bad("collection=x"));                 /* no action */
	CHECK(scope_bad("store,collection="));
	CHECK(scope_bad("store,collection=a,collection=b"));
	CHECK(scope_bad("store,collection=a b"));
	CHECK(scope_bad("store,collection=a/b"));
	CHECK(scope_bad("store,collection=\"a\""));
	CHECK(scope_bad("store,collection=a\n"));
	memset(long_name, 'x', sizeof long_name);
	memcpy(long_name, "store,collection=", 17);
	long_name[17 + 65] = 0;                           /* a 65-character name */
	CHECK(scope_bad(long_name));
	long_name[17 + 64] = 0;
	CHECK(token_scope_parse(long_name, (char[IDX_SCOPE_MAX + 1]){ 0 }, IDX_SCOPE_MAX + 1, NULL, NULL, 0) == ERR_OK);
	memset(long_name + 17, 'x', sizeof long_name - 17);
	long_name[sizeof long_name - 1] = 0;
	CHECK(scope_bad(long_name));
}

TEST(token_forms)
{
	char t[TOKEN_LEN + 2];

	memset(t, 'a', sizeof t);
	memcpy(t, "dvt_", 4);
	CHECK(token_form_ok(t, TOKEN_LEN));
	CHECK(!token_form_ok(t, TOKEN_LEN - 1));
	CHECK(!token_form_ok(t, TOKEN_LEN + 1));
	t[10] = 'A';
	CHECK(!token_form_ok(t, TOKEN_LEN));
	t[10] = 'g';
	CHECK(!token_form_ok(t, TOKEN_LEN));
	t[10] = 0;
	CHECK(!token_form_ok(t, TOKEN_LEN));
	t[10] = 'a';
	t[0] = 'D';
	CHECK(!token_form_ok(t, TOKEN_LEN));
	CHECK(!token_is_api(t, TOKEN_LEN));
	CHECK(!token_is_api(NULL, 0));
	CHECK(!token_is_api("dvt", 3));
	CHECK(token_is_api("dvt_", 4));
}

TEST(create_and_use)
{
	struct secret *tok = NULL, *tok2 = NULL;
	struct idx_token row, row2;
	struct auth_session s;
	struct auth *a = new_auth();
	char ref[AUDIT_SESSION_REF_LEN];
	const char *t;
	int i;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK(token_create(v->ix, key, "admin", 3600, "query,store", T0, &tok, &row) == ERR_OK);
	if (tok == NULL)
		goto out;
	t = secret_cstr(tok);
	CHECK(token_form_ok(t, strlen(t)));
	CHECK_EQ_STR(row.scope, "store,query");
	CHECK_EQ_STR(row.user_name, "admin");
	CHECK_EQ_INT(row.expires, T0 + 3600);
	/* no idle timeout: used once an hour apart from creation (idle 60 s) */
	CHECK(auth_session_check(a, t, TOKEN_LEN, T0 + 1800, &s) == ERR_OK);
	CHECK(s.api_token);
	CHECK_EQ_STR(s.user, "admin");
	CHECK_EQ_STR(s.role, "admin");
	CHECK_EQ_STR(s.scope, "store,query");
	CHECK_EQ_INT(s.session_id, row.id);
	CHECK_EQ_INT(s.expires, T0 + 3600);
	/* last_used written, at most every TOKEN_TOUCH_EVERY */
	CHECK(v->ix->ops->token_by_id(v->ix, row.id, &row2) == ERR_OK);
	CHECK_EQ_INT(row2.last_used, T0 + 1800);
	CHECK(auth_session_check(a, t, TOKEN_LEN, T0 + 1800 + TOKEN_TOUCH_EVERY / 2, &s) == ERR_OK);
	CHECK(v->ix->ops->token_by_id(v->ix, row.id, &row2) == ERR_OK);
	CHECK_EQ_INT(row2.last_used, T0 + 1800);
	CHECK(auth_session_check(a, t, TOKEN_LEN, T0 + 3599, &s) == ERR_OK);
	CHECK(v->ix->ops->token_by_id(v->ix, row.id, &row2) == ERR_OK);
	CHECK_EQ_INT(row2.last_used, T0 + 3599);
	/* the hard end */
	CHECK(auth_session_check(a, t, TOKEN_LEN, T0 + 3600, &s) == ERR_AUTH);
	CHECK(last_audit_has("\"token-refused\"", "expired"));
	audit_session_ref(t, TOKEN_LEN, ref);
	CHECK(last_audit_has(ref, "\"denied\""));
	/* malformed or unknown: refused, not audited */
	i = (int)audit_lines();
	CHECK(auth_session_check(a, t, TOKEN_LEN - 1, T0, &s) == ERR_AUTH);
	CHECK(auth_session_check(a, "dvt_", 4, T0, &s) == ERR_AUTH);
	CHECK(auth_session_check(a, "dvt_0000000000000000000000000000000000000000000000000000000000000000", TOKEN_LEN, T0,
	                         &s) == ERR_AUTH);
	CHECK_EQ_INT(audit_lines(), i);
	/* an API token is not a session token and the other way round: the
	 * hex part alone is no session */
	CHECK(auth_session_check(a, t + TOKEN_PREFIX_LEN, AUTH_TOKEN_LEN, T0 + 10, &s) == ERR_AUTH);
	/* no logout of an API token */
	CHECK(token_create(v->ix, key, "admin", 100, "retrieve", T0, &tok2, &row2) == ERR_OK);
	if (tok2 != NULL) {
		CHECK(auth_logout(a, secret_cstr(tok2), TOKEN_LEN, T0 + 1, "127.0.0.1", NULL) == ERR_DENIED);
		CHECK(auth_session_check(a, secret_cstr(tok2), TOKEN_LEN, T0 + 2, &s) == ERR_OK);
		/* two tokens, two rows, different values */
		CHECK(strcmp(secret_cstr(tok2), t) != 0 && row2.id != row.id);
	}
out:
	secret_free(tok);
	secret_free(tok2);
	auth_free(a);
}

TEST(revoke_at_once)
{
	struct secret *tok = NULL;
	struct idx_token row, r2;
	struct auth_session s;
	struct auth *a = new_auth();

	if (a == NULL || token_create(v->ix, key, "admin", 3600, "store", T0, &tok, &row) != ERR_OK) {
		CHECK(false);
		goto out;
	}
	CHECK(auth_request_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 1, "192.0.2.9", NULL, &s) == ERR_OK);
	CHECK(token_revoke(v->ix, row.id, T0 + 2, &r2) == ERR_OK);
	CHECK_EQ_INT(r2.revoked, T0 + 2);
	CHECK_EQ_STR(token_state(&r2, T0 + 2), "revoked");
	CHECK(auth_request_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 2, "192.0.2.9", "curl/8.0 (test)", &s) == ERR_AUTH);
	CHECK(last_audit_has("revoked", "192.0.2.9"));
	CHECK(last_audit_has("revoked", "\"ua\":\"curl/8.0 (test)\""));   /* the refused request's user agent */
	CHECK(token_revoke(v->ix, row.id, T0 + 3, &r2) == ERR_DENIED);
	CHECK(token_revoke(v->ix, 999999, T0 + 3, &r2) == ERR_NOTFOUND);
	CHECK(token_revoke(v->ix, -1, T0 + 3, &r2) == ERR_NOTFOUND);
out:
	secret_free(tok);
	auth_free(a);
}

TEST(user_disabled_or_expired)
{
	struct secret *tok = NULL, *t2 = NULL;
	struct idx_token row;
	struct idx_user u;
	struct auth_session s;
	struct auth *a = new_auth();

	if (a == NULL || token_create(v->ix, key, "admin", 3600, "store", T0, &tok, &row) != ERR_OK) {
		CHECK(false);
		goto out;
	}
	CHECK(auth_session_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 1, &s) == ERR_OK);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	u.disabled = true;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	CHECK(auth_session_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 2, &s) == ERR_AUTH);
	CHECK(last_audit_has("user disabled", NULL));
	CHECK(token_create(v->ix, key, "admin", 3600, "store", T0, &t2, &row) == ERR_DENIED);
	CHECK(t2 == NULL);
	u.disabled = false;
	u.expires = T0 + 10;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	CHECK(auth_session_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 3, &s) == ERR_OK);
	CHECK(auth_session_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 10, &s) == ERR_AUTH);
	CHECK(last_audit_has("user expired", NULL));
	CHECK(token_create(v->ix, key, "admin", 3600, "store", T0 + 10, &t2, &row) == ERR_DENIED);
	u.expires = 0;
	CHECK(v->ix->ops->user_update(v->ix, &u) == ERR_OK);
	CHECK(auth_session_check(a, secret_cstr(tok), TOKEN_LEN, T0 + 11, &s) == ERR_OK);
	mem_wipe(u.pwhash, sizeof u.pwhash);
out:
	secret_free(tok);
	secret_free(t2);
	auth_free(a);
}

TEST(create_refusals)
{
	struct secret *tok = NULL;
	struct idx_token row;

	CHECK(token_create(v->ix, key, "nobody", 3600, "store", T0, &tok, &row) == ERR_NOTFOUND);
	CHECK(token_create(v->ix, key, "admin", 0, "store", T0, &tok, &row) == ERR_PARSE);
	CHECK(token_create(v->ix, key, "admin", -5, "store", T0, &tok, &row) == ERR_PARSE);
	CHECK(token_create(v->ix, key, "admin", TOKEN_TTL_MAX + 1, "store", T0, &tok, &row) == ERR_PARSE);
	CHECK(token_create(v->ix, key, "admin", 3600, "store,admin", T0, &tok, &row) == ERR_PARSE);
	CHECK(token_create(v->ix, key, "admin", 3600, NULL, T0, &tok, &row) == ERR_PARSE);
	CHECK(tok == NULL);
	CHECK(token_create(v->ix, key, "admin", TOKEN_TTL_MAX, "store", T0, &tok, &row) == ERR_OK);
	secret_free(tok);
}

/* The token never reaches the index file (nor does its hex part). */
TEST(only_a_hash_is_stored)
{
	struct secret *tok = NULL;
	struct idx_token row;
	char path[700];
	uint8_t *db = NULL;
	size_t n = 0, i;
	bool found = false;
	int fd;
	struct stat st;

	if (token_create(v->ix, key, "admin", 3600, "store", T0, &tok, &row) != ERR_OK) {
		CHECK(false);
		return;
	}
	snprintf(path, sizeof path, "%s/index.db", dir);
	for (i = 0; i < 2; i++) {
		/* the database, then its write-ahead log */
		if (i == 1)
			snprintf(path, sizeof path, "%s/index.db-wal", dir);
		fd = open(path, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		n = (size_t)st.st_size;
		db = malloc(n + 1);
		if (db != NULL && read(fd, db, n) == (ssize_t)n)
			found = found || memmem(db, n, secret_cstr(tok) + TOKEN_PREFIX_LEN, 32) != NULL;
		free(db);
		close(fd);
	}
	CHECK(!found);
	secret_free(tok);
}

int main(void)
{
	struct vault_init_opts o;
	struct vault_created res;
	char pwfile[300], why[300];
	int fd;

	snprintf(base, sizeof base, "/tmp/dv_token_test.XXXXXX");
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
	if (vault_init(&o, &res, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "init: %s\n", why);
		return 1;
	}
	vault_created_fini(&res);
	if (vault_open(dir, NULL, &v, why, sizeof why) != ERR_OK || token_key_new(v->index_key, &key) != ERR_OK) {
		fprintf(stderr, "open: %s\n", why);
		return 1;
	}
	snprintf(audit_path, sizeof audit_path, "%s/audit.log", base);
	if (audit_create_path(audit_path, &au) != ERR_OK)
		return 1;
	RUN(scope_strings);
	RUN(token_forms);
	RUN(create_and_use);
	RUN(revoke_at_once);
	RUN(user_disabled_or_expired);
	RUN(create_refusals);
	RUN(only_a_hash_is_stored);
	audit_close(au);
	secret_free(key);
	vault_close(v);
	snprintf(why, sizeof why, "rm -rf '%s'", base);
	if (system(why) != 0)
		fprintf(stderr, "cleanup failed\n");
	return TEST_DONE();
}
