/* auth_body_test.c: the login body parser (auth_login_parse) with good
 * and bad inputs: wrong types, missing, extra and duplicate members, NULs,
 * huge strings, deep nesting, non-JSON, trailing data. Layer: tests. */
#include <stdbool.h>
#include <stdlib.h>
#include "test.h"
#include "dicomvault/auth.h"
#include "dicomvault/limits.h"

static enum err parse(const char *body, size_t n, struct auth_login_req *r, char *detail)
{
	detail[0] = 0;
	memset(r, 0, sizeof *r);
	return auth_login_parse((const uint8_t *)body, n, r, detail, 128);
}

/* Refused with ERR_PARSE and a detail that holds want and never the
 * input's marker "SECRET". */
static bool refused(const char *body, size_t n, const char *want)
{
	struct auth_login_req r;
	char detail[128];
	enum err rc = parse(body, n, &r, detail);

	if (rc != ERR_PARSE || r.password != NULL || strstr(detail, want) == NULL || strstr(detail, "SECRET") != NULL) {
		fprintf(stderr, "  %.60s: rc %d, detail \"%s\" (want \"%s\")\n", body, (int)rc, detail, want);
		return false;
	}
	return true;
}
#define REFUSED(lit, want) refused(lit, sizeof lit - 1, want)

TEST(good)
{
	static const char b[] = "{\"username\":\"admin\",\"password\":\"pa\\\"ss word\",\"totp\":\"123456\"}";
	struct auth_login_req r;
	char detail[128];

	CHECK(parse(b, sizeof b - 1, &r, detail) == ERR_OK);
	CHECK_EQ_STR(r.user, "admin");
	CHECK_EQ_INT(r.user_len, 5);
	CHECK_EQ_STR(r.totp, "123456");
	CHECK_EQ_INT(r.totp_len, 6);
	CHECK(r.password != NULL && secret_len(r.password) == 10 && strcmp(secret_cstr(r.password), "pa\"ss word") == 0);
	auth_login_req_fini(&r);
	CHECK(r.password == NULL && r.user_len == 0);
	/* members in any order, white space, UTF-8 and escapes */
	static const char b2[] = " \n{ \"totp\" : \"0\",\"password\":\"\\u00e9t\\u00e9\" , \"username\":\"a\\u0062\"}\t";
	CHECK(parse(b2, sizeof b2 - 1, &r, detail) == ERR_OK);
	CHECK_EQ_STR(r.user, "ab");
	CHECK(r.password != NULL && strcmp(secret_cstr(r.password), "\xc3\xa9t\xc3\xa9") == 0);
	auth_login_req_fini(&r);
	auth_login_req_fini(NULL);
}

TEST(not_json)
{
	CHECK(refused(NULL, 0, "required"));
	CHECK(REFUSED("", "required"));
	CHECK(REFUSED("SECRET", "malformed JSON at line 1"));
	CHECK(REFUSED("{\"username\":\"SECRET\"", "malformed JSON"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\"} x", "malformed JSON"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\"}{}", "malformed JSON"));
	CHECK(REFUSED("{'username':'a'}", "malformed JSON"));
	CHECK(REFUSED("{\"username\":\"a\xff\",\"password\":\"SECRET\",\"totp\":\"1\"}", "malformed JSON"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\",}", "malformed JSON"));
	/* a NUL byte in the body (not \u0000): not JSON */
	CHECK(refused("{\"username\":\"a\0\",\"password\":\"SECRET\",\"totp\":\"1\"}", 44, "malformed JSON"));
}

TEST(shape)
{
	CHECK(REFUSED("[]", "must be a JSON object"));
	/* Jansson takes only an object or array at the top without JSON_DECODE_ANY */
	CHECK(REFUSED("\"SECRET\"", "malformed JSON"));
	CHECK(REFUSED("null", "malformed JSON"));
	CHECK(REFUSED("42", "malformed JSON"));
	CHECK(REFUSED("{}", "member \"username\": missing"));
	CHECK(REFUSED("{\"username\":\"a\",\"totp\":\"1\"}", "member \"password\": missing"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\"}", "member \"totp\": missing"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\",\"x\":1}", "unexpected member"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\",\"Username\":\"b\"}",
	              "unexpected member"));
	/* duplicates: the second value must not silently win */
	CHECK(REFUSED("{\"username\":\"a\",\"username\":\"b\",\"password\":\"SECRET\",\"totp\":\"1\"}", "malformed JSON"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"password\":\"x\",\"totp\":\"1\"}", "malformed JSON"));
}

TEST(wrong_types)
{
	CHECK(REFUSED("{\"username\":1,\"password\":\"SECRET\",\"totp\":\"1\"}", "member \"username\": not a string"));
	CHECK(REFUSED("{\"username\":null,\"password\":\"SECRET\",\"totp\":\"1\"}", "not a string"));
	CHECK(REFUSED("{\"username\":[\"a\"],\"password\":\"SECRET\",\"totp\":\"1\"}", "not a string"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":{\"SECRET\":1},\"totp\":\"1\"}", "member \"password\": not a string"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":true,\"totp\":\"1\"}", "not a string"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":123456}", "member \"totp\": not a string"));
	CHECK(REFUSED("{\"username\":\"\",\"password\":\"SECRET\",\"totp\":\"1\"}", "member \"username\": empty"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"\",\"totp\":\"1\"}", "member \"password\": empty"));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"\"}", "member \"totp\": empty"));
}

TEST(nul_in_strings)
{
	/* Jansson refuses \u0000 itself; either way, refused */
	CHECK(REFUSED("{\"username\":\"a\\u0000b\",\"password\":\"SECRET\",\"totp\":\"1\"}", ""));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\\u0000x\",\"totp\":\"1\"}", ""));
	CHECK(REFUSED("{\"username\":\"a\",\"password\":\"SECRET\",\"totp\":\"1\\u0000\"}", ""));
}

static bool huge_member(const char *member, size_t len, bool want_ok)
{
	size_t cap = len + 200, n;
	char *b = malloc(cap), *v = malloc(len + 1);
	struct auth_login_req r;
	char detail[128];
	enum err rc;

	if (b == NULL || v == NULL) {
		free(b);
		free(v);
		return false;
	}
	memset(v, 'x', len);
	v[len] = 0;
	n = (size_t)snprintf(b, cap, "{\"username\":\"%s\",\"password\":\"%s\",\"totp\":\"%s\"}",
	                     strcmp(member, "username") == 0 ? v : "a", strcmp(member, "password") == 0 ? v : "p",
	                     strcmp(member, "totp") == 0 ? v : "1");
	rc = parse(b, n, &r, detail);
	auth_login_req_fini(&r);
	free(b);
	free(v);
	if ((rc == ERR_OK) != want_ok)
		fprintf(stderr, "  %s of %zu bytes: rc %d (%s)\n", member, len, (int)rc, detail);
	return (rc == ERR_OK) == want_ok && (want_ok || strstr(detail, "too long") != NULL);
}

TEST(huge_strings)
{
	CHECK(huge_member("username", HTTP_LOGIN_MAX_FIELD, true));
	CHECK(huge_member("username", HTTP_LOGIN_MAX_FIELD + 1, false));
	CHECK(huge_member("password", CRYPTO_PASSWORD_MAX, true));
	CHECK(huge_member("password", CRYPTO_PASSWORD_MAX + 1, false));
	CHECK(huge_member("totp", 16, true));
	CHECK(huge_member("totp", 17, false));
	CHECK(huge_member("username", 1u << 20, false));
}

TEST(deep_nesting)
{
	char b[4096];
	size_t i, n = 0;

	/* HTTP_JSON_MAX_DEPTH levels: past the pre-pass, refused as a member */
	for (i = 0; i < HTTP_JSON_MAX_DEPTH; i++)
		b[n++] = '[';
	for (i = 0; i < HTTP_JSON_MAX_DEPTH; i++)
		b[n++] = ']';
	CHECK(refused(b, n, "must be a JSON object"));
	/* one more, and 2000 (Jansson would recurse): refused before parsing */
	n = 0;
	for (i = 0; i < HTTP_JSON_MAX_DEPTH + 1; i++)
		b[n++] = '[';
	CHECK(refused(b, n, "nested too deeply"));
	memset(b, '{', 2000);
	CHECK(refused(b, 2000, "nested too deeply"));
	/* brackets inside strings do not count; escaped quotes do not end them */
	static const char s[] = "{\"username\":\"[[[[[[[[[[\\\"{{{{{{{{{{\",\"password\":\"SECRET\",\"totp\":\"1\"}";
	struct auth_login_req r;
	char detail[128];
	CHECK(parse(s, sizeof s - 1, &r, detail) == ERR_OK);
	auth_login_req_fini(&r);
	/* closing brackets first cannot drive the count below zero */
	static const char c[] = "]]]]]]]]]]]]{\"username\":\"a\"}";
	CHECK(REFUSED(c, "malformed JSON"));
}

int main(void)
{
	RUN(good);
	RUN(not_json);
	RUN(shape);
	RUN(wrong_types);
	RUN(nul_in_strings);
	RUN(huge_strings);
	RUN(deep_nesting);
	return TEST_DONE();
}
