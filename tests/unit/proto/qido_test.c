/* qido_test.c: QIDO-RS query parameters into an identifier (proto/qido.c):
 * attributes by keyword and tag, UID lists by commas and by repetition,
 * the boolean parameters in any case, unsupported parameters ignored and
 * recorded, attribute-shaped names that are unknown refused. Layer: tests. */
#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/qido.h"

#define MAXA 16

struct q {
	struct qido_arg a[MAXA];
	size_t n;
};

/* "k=v&k2&..." into args (pointers into s, which must outlive them) */
static struct q args(char *s)
{
	struct q q;
	char *p = s;

	memset(&q, 0, sizeof q);
	while (*p && q.n < MAXA) {
		char *amp = strchr(p, '&'), *eq;
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		struct qido_arg *a = &q.a[q.n++];
		a->key = p;
		eq = memchr(p, '=', n);
		a->klen = eq ? (size_t)(eq - p) : n;
		a->val = eq ? eq + 1 : NULL;
		a->vlen = eq ? n - a->klen - 1 : 0;
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return q;
}

static enum err parse(const char *text, struct qido_params *p, char *why, size_t whylen)
{
	static char buf[512];
	struct q q;

	snprintf(buf, sizeof buf, "%s", text);
	q = args(buf);
	return qido_parse(q.a, q.n, p, why, whylen);
}

static bool value_is(const struct qido_params *p, uint32_t tag, const char *want)
{
	const struct dcm_elem *e = dcm_ds_find(&p->id->ds, tag);
	size_t n = e != NULL ? e->len : 0;

	while (n > 0 && (e->val[n - 1] == 0 || e->val[n - 1] == ' '))   /* the even-length pad */
		n--;
	return e != NULL && n == strlen(want) && (n == 0 || memcmp(e->val, want, n) == 0);
}

TEST(keywords_and_tags)
{
	struct qido_params p;
	char why[128];

	CHECK(parse("PatientID=P1&00080060=CT&StudyDescription", &p, why, sizeof why) == ERR_OK);
	CHECK(value_is(&p, 0x00100020, "P1"));
	CHECK(value_is(&p, 0x00080060, "CT"));
	CHECK(value_is(&p, 0x00081030, ""));
	CHECK_EQ_INT((int)p.n_ignored, 0);
	qido_params_fini(&p);
}

TEST(uid_lists_by_comma_and_by_repetition)
{
	struct qido_params p;
	char why[128];

	CHECK(parse("StudyInstanceUID=1.2,1.3", &p, why, sizeof why) == ERR_OK);
	CHECK(value_is(&p, 0x0020000D, "1.2\\1.3"));
	qido_params_fini(&p);
	CHECK(parse("StudyInstanceUID=1.2&StudyInstanceUID=1.3,1.4&0020000D=1.5", &p, why, sizeof why) == ERR_OK);
	CHECK(value_is(&p, 0x0020000D, "1.2\\1.3\\1.4\\1.5"));
	qido_params_fini(&p);
	/* an empty one among them is not a list */
	CHECK(parse("StudyInstanceUID=1.2&StudyInstanceUID=", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "parameter 2") != NULL);
	/* other attributes stay once only */
	CHECK(parse("PatientID=a&PatientID=b", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "given twice") != NULL);
}

TEST(booleans_in_any_case)
{
	struct qido_params p;
	char why[128];

	CHECK(parse("fuzzymatching=TRUE&emptyvaluematching=True&multiplevaluematching=false", &p, why, sizeof why) ==
	      ERR_OK);
	CHECK(p.fuzzy && p.empty_value && !p.multiple_value);
	qido_params_fini(&p);
	CHECK(parse("multiplevaluematching=true&fuzzymatching=False", &p, why, sizeof why) == ERR_OK);
	CHECK(!p.fuzzy && !p.empty_value && p.multiple_value);
	qido_params_fini(&p);
	CHECK(parse("emptyvaluematching=yes", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "emptyvaluematching") != NULL);
	CHECK(parse("fuzzymatching=maybe", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("multiplevaluematching", &p, why, sizeof why) == ERR_PARSE);
}

TEST(unsupported_parameters_are_ignored)
{
	struct qido_params p;
	char why[128];

	CHECK(parse("_=1700000000&PatientID=P1&requestid=7&x.y=2", &p, why, sizeof why) == ERR_OK);
	CHECK(value_is(&p, 0x00100020, "P1"));
	CHECK_EQ_INT((int)p.n_ignored, 3);
	CHECK_EQ_INT((int)p.ignored[0], 0);
	CHECK_EQ_INT((int)p.ignored[1], 2);
	CHECK_EQ_INT((int)p.ignored[2], 3);
	CHECK_EQ_INT((int)p.id->ds.n, 2);   /* Specific Character Set and PatientID only */
	qido_params_fini(&p);
	/* more than QIDO_MAX_IGNORED: counted, the first ones kept */
	CHECK(parse("a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10", &p, why, sizeof why) == ERR_OK);
	CHECK_EQ_INT((int)p.n_ignored, 10);
	CHECK_EQ_INT((int)p.ignored[QIDO_MAX_IGNORED - 1], (int)QIDO_MAX_IGNORED - 1);
	qido_params_fini(&p);
}

TEST(unknown_attributes_are_refused)
{
	struct qido_params p;
	char why[128];

	/* attribute-shaped (upper-case or a digit first): a typo must
	 * not widen the query to everything */
	CHECK(parse("PatientNam=x", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "parameter 1") != NULL && strstr(why, "x") == NULL);
	CHECK(parse("limit=1&0010001Z=x", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "parameter 2") != NULL);
	/* limit and offset once each (a second offset was taken, the last winning) */
	CHECK(parse("limit=1&limit=2", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("offset=1&offset=2", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "parameter 2") != NULL && strstr(why, "once") != NULL);
	CHECK(parse("offset=1&limit=2", &p, why, sizeof why) == ERR_OK);
	CHECK(p.offset == 1 && p.limit == 2);
	qido_params_fini(&p);
	CHECK(parse("00091010=x", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("PatientID.PatientName=x", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("00100010.=x", &p, why, sizeof why) == ERR_PARSE);
	/* includefield: Sequence.Attribute only when the first is a sequence */
	CHECK(parse("includefield=00100010.00100020", &p, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "sequence") != NULL);
	CHECK(parse("includefield=PatientName,StudyDescription.PatientID", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("includefield=ReferencedStudySequence.PatientNam", &p, why, sizeof why) == ERR_PARSE);
	CHECK(parse("includefield=ReferencedStudySequence.ReferencedSOPInstanceUID,00100010", &p, why,
	            sizeof why) == ERR_OK);
	CHECK_EQ_INT((int)p.n_include, 2);
	CHECK_EQ_INT((int)p.include[0], 0x00081110);
	qido_params_fini(&p);
}

int main(void)
{
	RUN(keywords_and_tags);
	RUN(uid_lists_by_comma_and_by_repetition);
	RUN(booleans_in_any_case);
	RUN(unsupported_parameters_are_ignored);
	RUN(unknown_attributes_are_refused);
	return TEST_DONE();
}
