/* admin_body_test.c: the administration API's request parsers (admin.h):
 * good bodies, unknown, missing and mistyped members, bad names, roles,
 * times, UIDs and reasons, deep nesting, and the audit query's
 * parameters. Layer: tests. */
#include <stdbool.h>
#include <stdlib.h>
#include "test.h"
#include "dicomvault/admin.h"
#include "dicomvault/limits.h"

#define NOW 1795000000   /* 2026-11-18T11:06:40Z */

static char detail[200];

static enum err user(const char *b, struct admin_user_req *u)
{
	detail[0] = 0;
	return admin_user_parse((const uint8_t *)b, strlen(b), NOW, u, detail, sizeof detail);
}

static enum err grant(const char *b, struct admin_grant_req *g)
{
	detail[0] = 0;
	return admin_grant_parse((const uint8_t *)b, strlen(b), NOW, g, detail, sizeof detail);
}

static enum err glass(const char *b, struct admin_break_glass_req *g)
{
	detail[0] = 0;
	return admin_break_glass_parse((const uint8_t *)b, strlen(b), g, detail, sizeof detail);
}

/* Refused with ERR_PARSE, a detail holding want, and *out untouched. */
static bool user_refused(const char *b, const char *want)
{
	struct admin_user_req u;

	memset(&u, 0x5a, sizeof u);
	if (user(b, &u) != ERR_PARSE || strstr(detail, want) == NULL || u.username[0] != 0x5a) {
		fprintf(stderr, "  %.70s: detail \"%s\" (want \"%s\")\n", b, detail, want);
		return false;
	}
	return true;
}

static bool grant_refused(const char *b, const char *want)
{
	struct admin_grant_req g;

	memset(&g, 0x5a, sizeof g);
	if (grant(b, &g) != ERR_PARSE || strstr(detail, want) == NULL || g.username[0] != 0x5a) {
		fprintf(stderr, "  %.70s: detail \"%s\" (want \"%s\")\n", b, detail, want);
		return false;
	}
	return true;
}

static bool glass_refused(const char *b, const char *want)
{
	struct admin_break_glass_req g;

	memset(&g, 0x5a, sizeof g);
	if (glass(b, &g) != ERR_PARSE || strstr(detail, want) == NULL || g.study[0] != 0x5a) {
		fprintf(stderr, "  %.70s: detail \"%s\" (want \"%s\")\n", b, detail, want);
		return false;
	}
	return true;
}

TEST(user_good)
{
	struct admin_user_req u;

	CHECK(user("{\"username\":\"dr.who@x\",\"role\":\"radiologist\"}", &u) == ERR_OK);
	CHECK_EQ_STR(u.username, "dr.who@x");
	CHECK(u.role == ACCESS_ROLE_RADIOLOGIST);
	CHECK_EQ_STR(u.collection, "");
	CHECK(u.expires == 0);
	CHECK(user("{\"expires\":\"+2d\",\"collection\":\"onco\",\"role\":\"admin\",\"username\":\"a\",\"collection\":"
	           "\"x\"}", &u) == ERR_PARSE);   /* a duplicate member */
	CHECK(user("{\"expires\":\"+2d\",\"collection\":\"onco\",\"role\":\"admin\",\"username\":\"a\"}", &u) == ERR_OK);
	CHECK_EQ_STR(u.collection, "onco");
	CHECK(u.expires == NOW + 2 * 86400);
	CHECK(user("{\"username\":\"a\",\"role\":\"admin\",\"collection\":null,\"expires\":\"2026-12-31\"}", &u) ==
	      ERR_OK);
	CHECK_EQ_STR(u.collection, "");
	CHECK(u.expires == 1798675200);
}

TEST(user_bad)
{
	CHECK(user_refused("", "required"));
	CHECK(user_refused("[]", "must be a JSON object"));
	CHECK(user_refused("{", "malformed JSON"));
	CHECK(user_refused("{}", "member \"username\": missing"));
	CHECK(user_refused("{\"username\":\"x y\",\"role\":\"admin\"}", "member \"username\": 1 to 64"));
	CHECK(user_refused("{\"username\":[\"a\"],\"role\":\"admin\"}", "member \"username\": not a string"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"king\"}", "member \"role\": not a role"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"Admin\"}", "not a role"));
	CHECK(user_refused("{\"username\":\"a\"}", "member \"role\": missing"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"collection\":\"\"}", "member \"collection\": empty"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"collection\":{}}", "not a string"));
	/* a misspelt member would make an account that never expires: refused */
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"expiry\":\"+1d\"}",
	                   "unexpected member: only username, role, collection and expires are allowed"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"expires\":\"tomorrow\"}", "member \"expires\": a time"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"expires\":1798675200}", "not a string"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"expires\":\"2026-02-30\"}", "a time"));
	CHECK(user_refused("{\"username\":\"a\\u0000b\",\"role\":\"admin\"}", ""));
	/* the unknown member's name is not quoted back */
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"SECRETNAME\":1}", "unexpected member"));
	CHECK(strstr(detail, "SECRETNAME") == NULL);
}

TEST(user_huge_and_deep)
{
	char b[4096];
	size_t i, n = 0;
	char *big = malloc(100000);

	CHECK(big != NULL);
	if (big == NULL)
		return;
	n = (size_t)snprintf(big, 100000, "{\"username\":\"");
	for (i = 0; i < 90000; i++)
		big[n++] = 'a';
	snprintf(big + n, 100000 - n, "\",\"role\":\"admin\"}");
	CHECK(user_refused(big, "member \"username\": empty or too long"));
	free(big);
	n = 0;
	for (i = 0; i < HTTP_JSON_MAX_DEPTH + 1; i++)
		b[n++] = '[';
	b[n] = 0;
	CHECK(user_refused(b, "nested too deeply"));
	memset(b, '{', 3000);
	b[3000] = 0;
	CHECK(user_refused(b, "nested too deeply"));
}

TEST(grant_good)
{
	struct admin_grant_req g;

	CHECK(grant("{\"username\":\"api_made\",\"role\":\"physician\",\"scope\":\"*\",\"expires\":\"+1d\",\"purpose\":"
	            "\"on call\"}", &g) == ERR_OK);
	CHECK_EQ_STR(g.username, "api_made");
	CHECK(g.role == ACCESS_ROLE_PHYSICIAN);
	CHECK_EQ_STR(g.scope, "*");
	CHECK_EQ_STR(g.purpose, "on call");
	CHECK(g.expires == NOW + 86400 && g.not_before == 0 && !g.with_priors);
	CHECK(grant("{\"username\":\"a\",\"role\":\"researcher\",\"scope\":\"study:1.2.3\",\"with_priors\":true,"
	            "\"from\":\"@1800000000\",\"purpose\":\"\"}", &g) == ERR_OK);
	CHECK(g.with_priors && g.not_before == 1800000000 && g.expires == 0);
	CHECK_EQ_STR(g.purpose, "");
	CHECK(grant("{\"username\":\"a\",\"role\":\"researcher\",\"scope\":\"x\",\"with_priors\":null}", &g) == ERR_OK);
	CHECK(!g.with_priors);
}

TEST(grant_bad)
{
	char b[512], p[IDX_PURPOSE_MAX + 2];

	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\"}", "member \"scope\": missing"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"\"}", "member \"scope\": empty"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"with_priors\":\"yes\"}",
	                    "member \"with_priors\": not a boolean"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"with_priors\":1}",
	                    "not a boolean"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"from\":\"+1y\"}",
	                    "member \"from\": a time"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"until\":\"+1d\"}",
	                    "unexpected member"));
	CHECK(grant_refused("{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"purpose\":7}", "not a string"));
	memset(p, 'p', sizeof p - 1);
	p[sizeof p - 1] = 0;
	snprintf(b, sizeof b, "{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"purpose\":\"%s\"}", p);
	CHECK(grant_refused(b, "member \"purpose\": empty or too long"));
	p[sizeof p - 2] = 0;
	struct admin_grant_req g;
	snprintf(b, sizeof b, "{\"username\":\"a\",\"role\":\"physician\",\"scope\":\"*\",\"purpose\":\"%s\"}", p);
	CHECK(grant(b, &g) == ERR_OK && strlen(g.purpose) == IDX_PURPOSE_MAX);
}

TEST(break_glass)
{
	struct admin_break_glass_req g;

	CHECK(glass("{\"study\":\"1.2.840.1\",\"reason\":\"trauma bay 2, unconscious\"}", &g) == ERR_OK);
	CHECK_EQ_STR(g.study, "1.2.840.1");
	CHECK_EQ_STR(g.reason, "trauma bay 2, unconscious");
	{
		/* a reason of 200 bytes, the most, fits the grant's purpose */
		char b[400], reason[ADMIN_REASON_MAX + 2];
		memset(reason, 'r', sizeof reason - 1);
		reason[ADMIN_REASON_MAX] = 0;
		snprintf(b, sizeof b, "{\"study\":\"1.2\",\"reason\":\"%s\"}", reason);
		CHECK(glass(b, &g) == ERR_OK && strlen(g.reason) == 200);
		reason[ADMIN_REASON_MAX] = 'r';
		reason[ADMIN_REASON_MAX + 1] = 0;
		snprintf(b, sizeof b, "{\"study\":\"1.2\",\"reason\":\"%s\"}", reason);
		CHECK(glass_refused(b, "member \"reason\": empty or too long"));
	}
	CHECK(glass_refused("{\"study\":\"1.2.840.1\"}", "member \"reason\": missing"));
	CHECK(glass_refused("{\"study\":\"1.2.840.1\",\"reason\":\"short\"}", "member \"reason\": empty or too long"));
	CHECK(glass_refused("{\"study\":\"1.2.840.1\",\"reason\":\"line one\\nline two\"}", "control characters"));
	CHECK(glass_refused("{\"study\":\"1.2.840.1\",\"reason\":\"a delete \\u007f here\"}", "control characters"));
	CHECK(glass_refused("{\"study\":\"1..2\",\"reason\":\"long enough\"}", "member \"study\": not a UID"));
	CHECK(glass_refused("{\"study\":\"1.2.x\",\"reason\":\"long enough\"}", "not a UID"));
	CHECK(glass_refused("{\"study\":1.2,\"reason\":\"long enough\"}", "not a string"));
	CHECK(glass_refused("{\"study\":\"1.2\",\"reason\":\"long enough\",\"minutes\":600}", "unexpected member"));
	/* 65 digits: longer than a UID may be */
	CHECK(glass_refused("{\"study\":\"12345678901234567890123456789012345678901234567890123456789012345\","
	                    "\"reason\":\"long enough\"}", "too long"));
}

static bool query_refused(const char *user, const char *action, const char *patient, const char *from,
                          const char *to, const char *want)
{
	struct admin_audit_query q;

	detail[0] = 0;
	if (admin_audit_query_parse(user, action, patient, from, to, NOW, &q, detail, sizeof detail) != ERR_PARSE ||
	    strstr(detail, want) == NULL) {
		fprintf(stderr, "  detail \"%s\" (want \"%s\")\n", detail, want);
		return false;
	}
	return true;
}

TEST(audit_query)
{
	struct admin_audit_query q;

	CHECK(admin_audit_query_parse(NULL, NULL, NULL, NULL, NULL, NOW, &q, detail, sizeof detail) == ERR_OK);
	CHECK(q.user[0] == 0 && q.action[0] == 0 && q.patient[0] == 0 && q.from == 0 && q.to == 0);
	CHECK(admin_audit_query_parse("dr.a", "break-glass", "PID 7", "2026-11-01", "+1h", NOW, &q, detail,
	                              sizeof detail) == ERR_OK);
	CHECK_EQ_STR(q.user, "dr.a");
	CHECK_EQ_STR(q.action, "break-glass");
	CHECK_EQ_STR(q.patient, "PID 7");
	CHECK(q.from == 1793491200 && q.to == NOW + 3600);
	CHECK(query_refused("x y", NULL, NULL, NULL, NULL, "parameter user"));
	CHECK(query_refused("", NULL, NULL, NULL, NULL, "parameter user"));
	CHECK(query_refused(NULL, "Login", NULL, NULL, NULL, "parameter action"));
	CHECK(query_refused(NULL, "", NULL, NULL, NULL, "parameter action"));
	CHECK(query_refused(NULL, "a-very-long-action-name-beyond-32-bytes", NULL, NULL, NULL, "parameter action"));
	CHECK(query_refused(NULL, NULL, "", NULL, NULL, "parameter patient"));
	CHECK(query_refused(NULL, NULL, "12345678901234567890123456789012345678901234567890123456789012345", NULL, NULL,
	                    "parameter patient"));
	CHECK(query_refused(NULL, NULL, NULL, "yesterday", NULL, "parameter from"));
	CHECK(query_refused(NULL, NULL, NULL, NULL, "2026-13-01", "parameter to"));
	CHECK(query_refused(NULL, NULL, NULL, "2026-11-02", "2026-11-01", "parameter to: not after from"));
	CHECK(query_refused(NULL, NULL, NULL, "2026-11-02", "2026-11-02", "not after from"));
	/* 0 would mean "not given": refused rather than read as no bound */
	CHECK(query_refused(NULL, NULL, NULL, NULL, "@0", "parameter to: a time after 1970"));
	CHECK(query_refused(NULL, NULL, NULL, "1970-01-01", NULL, "parameter from"));
	CHECK(user_refused("{\"username\":\"a\",\"role\":\"admin\",\"expires\":\"@0\"}", "a time after 1970"));
}

int main(void)
{
	RUN(user_good);
	RUN(user_bad);
	RUN(user_huge_and_deep);
	RUN(grant_good);
	RUN(grant_bad);
	RUN(break_glass);
	RUN(audit_query);
	return TEST_DONE();
}
