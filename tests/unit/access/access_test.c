/* access_test.c: the access policy: the generated matrix against
 * docs/ACCESS.md's intent, names, scopes, decisions at the edges of time
 * and scope, and the collection rules. Layer: tests. */
#include "test.h"
#include "dicomvault/access.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/ini.h"

static struct access_grant grant(enum access_role role, const char *scope, int64_t nb, int64_t exp)
{
	struct access_grant g;
	char why[128];

	memset(&g, 0, sizeof g);
	g.role = role;
	g.not_before = nb;
	g.expires = exp;
	if (access_scope_parse(scope, &g, why, sizeof why) != ERR_OK)
		fprintf(stderr, "  scope %s: %s\n", scope, why);
	return g;
}

TEST(matrix_cells)
{
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_RESEARCHER][ACCESS_ACT_RETRIEVE], ACCESS_DEID);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_RESEARCHER][ACCESS_ACT_RETRIEVE_ORIGINAL], ACCESS_NO);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_TECHNOLOGIST][ACCESS_ACT_STORE], ACCESS_YES);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_TECHNOLOGIST][ACCESS_ACT_QUERY], ACCESS_NO);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_AUDITOR][ACCESS_ACT_READ_AUDIT], ACCESS_YES);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_AUDITOR][ACCESS_ACT_RETRIEVE], ACCESS_NO);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_ADMIN][ACCESS_ACT_MANAGE_USERS], ACCESS_YES);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_ADMIN][ACCESS_ACT_BREAK_GLASS], ACCESS_NO);
	CHECK_EQ_INT(access_matrix[ACCESS_ROLE_PHYSICIAN][ACCESS_ACT_BREAK_GLASS], ACCESS_YES);
}

TEST(names)
{
	enum access_role r;
	enum access_action a;
	unsigned i;

	for (i = 0; i < ACCESS_ROLE__N; i++) {
		const char *n = access_role_name((enum access_role)i);
		CHECK(access_role_parse(n, strlen(n), &r) && r == (enum access_role)i);
	}
	for (i = 0; i < ACCESS_ACT__N; i++) {
		const char *n = access_action_name((enum access_action)i);
		CHECK(access_action_parse(n, strlen(n), &a) && a == (enum access_action)i);
	}
	CHECK(!access_role_parse("Admin", 5, &r));
	CHECK(!access_role_parse("admi", 4, &r));
	CHECK(!access_role_parse("adminx", 6, &r));
	CHECK(!access_role_parse("", 0, &r));
	CHECK(!access_action_parse("retrieve-", 9, &a));
	CHECK(!access_action_parse(NULL, 0, &a));
}

TEST(scopes)
{
	static const char *const good[] = { "*", "collection:onco", "collection:A.b_c-9", "study:1.2.840.1",
		"patient:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF" };
	static const char *const bad[] = { "", "**", "collection:", "collection:on co", "collection:x/y", "study:",
		"study:1.2.a", "study:1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29",
		"patient:0011", "patient:zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "user:bob",
		"collection:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	struct access_grant g;
	char why[128], back[160];
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		memset(&g, 0, sizeof g);
		CHECK(access_scope_parse(good[i], &g, why, sizeof why) == ERR_OK);
		access_scope_format(&g, back, sizeof back);
		if (good[i][0] != 'p')
			CHECK_EQ_STR(back, good[i]);
		else
			CHECK(strncmp(back, "patient:00112233", 16) == 0 && strstr(back, "aabbccddeeff") != NULL);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = 0;
		CHECK(access_scope_parse(bad[i], &g, why, sizeof why) == ERR_PARSE);
		CHECK(why[0] != 0);
	}
}

TEST(time_edges)
{
	struct access_grant g = grant(ACCESS_ROLE_PHYSICIAN, "*", 1000, 2000);
	struct access_object o = { "default", "1.2.3", NULL };

	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_RETRIEVE, &o, 999, NULL), ACCESS_NO);
	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_RETRIEVE, &o, 1000, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_RETRIEVE, &o, 1999, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_RETRIEVE, &o, 2000, NULL), ACCESS_NO);   /* expired at once */
	g.not_before = 0;
	g.expires = 0;
	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_RETRIEVE, &o, 1, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(&g, 1, ACCESS_ACT_DELETE, &o, 1, NULL), ACCESS_NO);
	CHECK_EQ_INT(access_decide(NULL, 0, ACCESS_ACT_RETRIEVE, &o, 1, NULL), ACCESS_NO);
}

/* manage-users and read-audit are the whole vault's: a grant of "*" only */
TEST(vault_wide_actions)
{
	struct access_grant g[2] = { grant(ACCESS_ROLE_ADMIN, "collection:onco", 0, 0),
		                     grant(ACCESS_ROLE_AUDITOR, "study:1.2.3", 0, 0) };
	struct access_grant all = grant(ACCESS_ROLE_ADMIN, "*", 0, 0);
	struct access_object o = { "onco", "1.2.3", NULL };

	CHECK_EQ_INT(access_decide(g, 2, ACCESS_ACT_MANAGE_USERS, NULL, 1, NULL), ACCESS_NO);
	CHECK_EQ_INT(access_decide(g, 2, ACCESS_ACT_READ_AUDIT, NULL, 1, NULL), ACCESS_NO);
	CHECK_EQ_INT(access_decide(g, 2, ACCESS_ACT_DELETE, &o, 1, NULL), ACCESS_YES);   /* inside its part */
	CHECK_EQ_INT(access_decide(&all, 1, ACCESS_ACT_MANAGE_USERS, NULL, 1, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(&all, 1, ACCESS_ACT_READ_AUDIT, NULL, 1, NULL), ACCESS_YES);
	/* the roles allow them all the same (the 403 says "scope *", not "role") */
	CHECK(access_role_allows(g, 2, ACCESS_ACT_MANAGE_USERS, 1));
	CHECK(access_role_allows(g + 1, 1, ACCESS_ACT_READ_AUDIT, 1));
	CHECK(!access_role_allows(g + 1, 1, ACCESS_ACT_MANAGE_USERS, 1));
	CHECK(!access_role_allows(g, 2, ACCESS_ACT_BREAK_GLASS, 1));
	g[0].expires = 1;   /* not in force at 1 */
	CHECK(!access_role_allows(g, 1, ACCESS_ACT_MANAGE_USERS, 1));
	CHECK(access_action_vault_wide(ACCESS_ACT_READ_AUDIT) && !access_action_vault_wide(ACCESS_ACT_DELETE));
}

TEST(scope_edges)
{
	uint8_t pat[32], other[32];
	struct access_grant gs[3];
	const struct access_grant *by;
	struct access_object in = { "onco", "1.2.3", NULL }, out = { "cardio", "1.2.4", NULL };

	memset(pat, 0xAB, sizeof pat);
	memset(other, 0xCD, sizeof other);
	gs[0] = grant(ACCESS_ROLE_RADIOLOGIST, "collection:onco", 0, 0);
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &in, 5, &by), ACCESS_YES);
	CHECK(by == &gs[0]);
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &out, 5, &by), ACCESS_NO);
	CHECK(by == NULL);
	/* "onco" must not cover "oncology" */
	out.collection = "oncology";
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &out, 5, NULL), ACCESS_NO);
	/* a study grant with priors covers the patient's other studies */
	gs[0] = grant(ACCESS_ROLE_PHYSICIAN, "study:1.2.3", 0, 0);
	memcpy(gs[0].patient, pat, 32);
	in.patient = pat;
	out.patient = pat;
	out.study_uid = "1.2.9";
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &in, 5, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &out, 5, NULL), ACCESS_NO);
	gs[0].with_priors = true;
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &out, 5, NULL), ACCESS_YES);
	out.patient = other;
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &out, 5, NULL), ACCESS_NO);
	/* the most permissive grant in force wins */
	gs[0] = grant(ACCESS_ROLE_RESEARCHER, "*", 0, 0);
	gs[1] = grant(ACCESS_ROLE_PHYSICIAN, "collection:onco", 0, 100);
	gs[2] = grant(ACCESS_ROLE_AUDITOR, "*", 0, 0);
	in.patient = NULL;
	CHECK_EQ_INT(access_decide(gs, 3, ACCESS_ACT_RETRIEVE, &in, 5, &by), ACCESS_YES);
	CHECK(by == &gs[1]);
	CHECK_EQ_INT(access_decide(gs, 3, ACCESS_ACT_RETRIEVE, &in, 100, &by), ACCESS_DEID);
	CHECK(by == &gs[0]);
	CHECK_EQ_INT(access_decide(gs, 3, ACCESS_ACT_READ_AUDIT, NULL, 5, &by), ACCESS_YES);
	CHECK(by == &gs[2]);
	/* no object: any grant in force whose role allows the action */
	CHECK_EQ_INT(access_decide(gs + 1, 1, ACCESS_ACT_QUERY, NULL, 5, NULL), ACCESS_YES);
	CHECK_EQ_INT(access_decide(gs + 1, 1, ACCESS_ACT_QUERY, NULL, 100, NULL), ACCESS_NO);
	/* a role out of range is ignored */
	gs[0].role = (enum access_role)99;
	CHECK_EQ_INT(access_decide(gs, 1, ACCESS_ACT_RETRIEVE, &in, 5, NULL), ACCESS_NO);
}

static struct ini *conf(const char *text)
{
	struct ini *ini = NULL;
	struct ini_error e;

	if (ini_parse((const uint8_t *)text, strlen(text), &ini, &e) != ERR_OK)
		fprintf(stderr, "  ini: line %u: %s\n", e.line, e.msg);
	return ini;
}

static struct dcm_file *ds_with(const char *dept, const char *mod)
{
	struct dcm_file *f = NULL;

	if (dcm_file_new(&f) != ERR_OK)
		return NULL;
	if (dept != NULL && dcm_ds_set_str(&f->ds, 0x00081040, VR_LO, dept) != ERR_OK)
		return NULL;
	if (mod != NULL && dcm_ds_set_str(&f->ds, 0x00080060, VR_CS, mod) != ERR_OK)
		return NULL;
	return f;
}

TEST(collections)
{
	struct ini *ini = conf("[collection \"onco\"]\nmatch = InstitutionalDepartmentName=Onco*\n"
	                       "[collection \"cardio-ct\"]\nmatch = Modality=CT\ncalling_ae = CARDIO_CT\n"
	                       "[collection \"ward\"]\ncalling_ae = WARD7\n"
	                       "[collection \"research\"]\n");
	struct access_collections *c = NULL;
	struct dcm_file *a = ds_with("Oncology ", "CT"), *b = ds_with("Cardiology", "CT"), *d = ds_with(NULL, "MR");
	char why[160];

	CHECK(ini != NULL && a != NULL && b != NULL && d != NULL);
	CHECK(access_collections_load(ini, &c, why, sizeof why) == ERR_OK);
	CHECK_EQ_STR(access_collection_for(c, &a->ds, NULL, NULL), "onco");
	CHECK_EQ_STR(access_collection_for(c, &a->ds, "CARDIO_CT", NULL), "onco");   /* first section wins */
	CHECK_EQ_STR(access_collection_for(c, &b->ds, NULL, NULL), "default");        /* both rules must fit */
	CHECK_EQ_STR(access_collection_for(c, &b->ds, "CARDIO_CT ", NULL), "cardio-ct");
	CHECK_EQ_STR(access_collection_for(c, &d->ds, "WARD7", NULL), "ward");
	CHECK_EQ_STR(access_collection_for(c, &d->ds, NULL, "research"), "research");
	CHECK_EQ_STR(access_collection_for(c, &d->ds, NULL, "nonexistent"), "default");
	CHECK(access_collection_known(c, "research") && access_collection_known(c, "default"));
	CHECK(!access_collection_known(c, "Research") && !access_collection_known(c, NULL));
	CHECK_EQ_STR(access_collection_for(NULL, &d->ds, NULL, "research"), "default");
	access_collections_free(c);
	ini_free(ini);
	dcm_file_free(a);
	dcm_file_free(b);
	dcm_file_free(d);
}

/* A rule is written in UTF-8; the attribute is matched as decoded from
 * the data set's character set, whatever the modality sent. */
TEST(collections_decoded)
{
	struct ini *ini = conf("[collection \"munich\"]\nmatch = PatientName=M\xc3\xbcller*\n"
	                       "[collection \"tokyo\"]\nmatch = PatientName=*=\xe5\xb1\xb1\xe7\x94\xb0*\n");
	struct dcm_file *jis = NULL;
	struct access_collections *c = NULL;
	struct dcm_file *latin1 = NULL, *utf8 = NULL, *other = NULL, *bad = NULL;
	char why[160];

	CHECK(ini != NULL && dcm_file_new(&latin1) == ERR_OK && dcm_file_new(&utf8) == ERR_OK &&
	      dcm_file_new(&other) == ERR_OK && dcm_file_new(&bad) == ERR_OK);
	if (ini == NULL || latin1 == NULL || utf8 == NULL || other == NULL || bad == NULL)
		return;
	CHECK(dcm_ds_set_str(&latin1->ds, 0x00080005, VR_CS, "ISO_IR 100") == ERR_OK);
	CHECK(dcm_ds_set_str(&latin1->ds, 0x00100010, VR_PN, "M\xfcller^Hans") == ERR_OK);
	CHECK(dcm_ds_set_str(&utf8->ds, 0x00080005, VR_CS, "ISO_IR 192") == ERR_OK);
	CHECK(dcm_ds_set_str(&utf8->ds, 0x00100010, VR_PN, "M\xc3\xbcller^Hans") == ERR_OK);
	CHECK(dcm_ds_set_str(&other->ds, 0x00080005, VR_CS, "ISO_IR 100") == ERR_OK);
	CHECK(dcm_ds_set_str(&other->ds, 0x00100010, VR_PN, "Muller^Hans") == ERR_OK);
	/* bytes invalid in UTF-8: matched as sent (no match, no failure) */
	CHECK(dcm_ds_set_str(&bad->ds, 0x00080005, VR_CS, "ISO_IR 192") == ERR_OK);
	CHECK(dcm_ds_set_str(&bad->ds, 0x00100010, VR_PN, "M\xfcller^Hans") == ERR_OK);
	CHECK(access_collections_load(ini, &c, why, sizeof why) == ERR_OK);
	CHECK_EQ_STR(access_collection_for(c, &latin1->ds, NULL, NULL), "munich");
	CHECK_EQ_STR(access_collection_for(c, &utf8->ds, NULL, NULL), "munich");
	CHECK_EQ_STR(access_collection_for(c, &other->ds, NULL, NULL), "default");
	CHECK_EQ_STR(access_collection_for(c, &bad->ds, NULL, NULL), "default");
	/* ISO 2022 IR 87 (JIS X 0208): 7-bit bytes between escapes; the
	 * ideographic group Yamada (U+5C71 U+7530) as JIS 3B33 4544 */
	CHECK(dcm_file_new(&jis) == ERR_OK);
	if (jis != NULL) {
		CHECK(dcm_ds_set_str(&jis->ds, 0x00080005, VR_CS, "\\ISO 2022 IR 87") == ERR_OK);
		CHECK(dcm_ds_set_str(&jis->ds, 0x00100010, VR_PN, "Yamada^Taro=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B") ==
		      ERR_OK);
		CHECK_EQ_STR(access_collection_for(c, &jis->ds, NULL, NULL), "tokyo");
		dcm_file_free(jis);
	}
	access_collections_free(c);
	ini_free(ini);
	dcm_file_free(latin1);
	dcm_file_free(utf8);
	dcm_file_free(other);
	dcm_file_free(bad);
}

TEST(collections_bad)
{
	static const char *const bad[] = {
		"[collection \"x\"]\nmatch = NoSuchKeyword=1\n",
		"[collection \"x\"]\nmatch = Modality\n",
		"[collection \"x\"]\nmatch = =CT\n",
		"[collection \"x\"]\ncalling_ae = SEVENTEEN_CHARS_XX\n",
		"[collection \"x\"]\ncolour = red\n",
		"[collection \"default\"]\nmatch = Modality=CT\n",
		"[collection \"a b\"]\nmatch = Modality=CT\n",
		"[collection]\nmatch = Modality=CT\n",
		"[collection \"x\"]\nmatch = Rows=8\n",            /* a number: never matched as text */
		"[collection \"x\"]\nmatch = PixelData=1\n",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ini *ini = conf(bad[i]);
		struct access_collections *c = NULL;
		char why[160] = "";
		CHECK(ini != NULL);
		CHECK(access_collections_load(ini, &c, why, sizeof why) != ERR_OK);
		CHECK(c == NULL && strstr(why, "line") != NULL);
		ini_free(ini);
	}
}

int main(void)
{
	RUN(matrix_cells);
	RUN(names);
	RUN(scopes);
	RUN(time_edges);
	RUN(vault_wide_actions);
	RUN(scope_edges);
	RUN(collections);
	RUN(collections_decoded);
	RUN(collections_bad);
	return TEST_DONE();
}
