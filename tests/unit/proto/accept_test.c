/* accept_test.c: Accept header media ranges (proto/accept.c): parameters,
 * quoting and escapes, commas inside quotes, q=0, case, malformed ranges
 * skipped, the empty header. Layer: tests. */
#include "test.h"
#include "dicomvault/accept.h"

struct got {
	struct accept_range r[8];
	int n;
};

static bool collect(void *ctx, const struct accept_range *a)
{
	struct got *g = ctx;

	if (g->n < 8)
		g->r[g->n++] = *a;
	return false;
}

static struct got parse(const char *h)
{
	struct got g;

	memset(&g, 0, sizeof g);
	(void)accept_each(h, strlen(h), collect, &g);
	return g;
}

TEST(dicom_ranges)
{
	struct got g = parse("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1, "
	                     "multipart/related;type=application/dicom;transfer-syntax=*;q=0.5");

	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.r[0].media, "multipart/related");
	CHECK_EQ_STR(g.r[0].type, "application/dicom");
	CHECK_EQ_STR(g.r[0].ts, "1.2.840.10008.1.2.1");
	CHECK(!g.r[0].q0);
	CHECK_EQ_STR(g.r[1].ts, "*");
	CHECK(!g.r[1].q0);
}

TEST(q_zero)
{
	struct got g = parse("a/b;q=0, a/c; q=0.000, a/d;q=0.001, a/e;Q=0.");

	CHECK_EQ_INT(g.n, 4);
	CHECK(g.r[0].q0);
	CHECK(g.r[1].q0);
	CHECK(!g.r[2].q0);
	CHECK(g.r[3].q0);
}

TEST(quotes_case_and_escapes)
{
	struct got g = parse("MULTIPART/Related; TYPE=\"Image/JPEG, x\\\"y\"; Transfer-Syntax=\"1.2.AbC\", */*");

	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.r[0].media, "multipart/related");
	CHECK_EQ_STR(g.r[0].type, "image/jpeg, x\"y");   /* the comma is inside quotes */
	CHECK_EQ_STR(g.r[0].ts, "1.2.AbC");               /* a UID keeps its case */
	CHECK_EQ_STR(g.r[1].media, "*/*");
}

TEST(malformed_ranges_are_skipped)
{
	struct got g = parse("/x, x/, ;type=a, a/b;=c, a/b;c, a/b; type=\"open, text/plain, a/b ; ");

	/* only the last range ("a/b ; ") is whole: the open quote swallows the
	 * commas up to the end, so that range is malformed and skipped */
	CHECK_EQ_INT(g.n, 0);
	g = parse("text/plain, a/b ; ");
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.r[1].media, "a/b");
}

TEST(long_values)
{
	char h[512];
	struct accept_range a;

	snprintf(h, sizeof h, "a/b; transfer-syntax=%0100d", 1);
	CHECK(accept_range_parse(h, strlen(h), &a) == ERR_OK);
	CHECK_EQ_STR(a.ts, "?");   /* longer than a UID: matches nothing */
	snprintf(h, sizeof h, "a/b; type=%0200d", 1);
	CHECK(accept_range_parse(h, strlen(h), &a) == ERR_PARSE);
}

TEST(empty_header_is_any)
{
	struct got g = parse(" \t");

	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.r[0].media, "*/*");
	g = parse("");
	CHECK_EQ_INT(g.n, 1);
}

static bool stop_at_c(void *ctx, const struct accept_range *a)
{
	(*(int *)ctx)++;
	return strcmp(a->media, "a/c") == 0;
}

TEST(stops_when_the_callback_says_so)
{
	struct accept_range a;
	int calls = 0;

	CHECK(accept_each("a/b, a/c, a/d", 13, stop_at_c, &calls));
	CHECK_EQ_INT(calls, 2);
	calls = 0;
	CHECK(!accept_each("a/b, a/d", 8, stop_at_c, &calls));
	CHECK_EQ_INT(calls, 2);
	CHECK(accept_range_parse("a/b\x01", 4, &a) == ERR_PARSE);
}

int main(void)
{
	RUN(dicom_ranges);
	RUN(q_zero);
	RUN(quotes_case_and_escapes);
	RUN(malformed_ranges_are_skipped);
	RUN(long_values);
	RUN(empty_header_is_any);
	RUN(stops_when_the_callback_says_so);
	return TEST_DONE();
}
