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
	CHECK(g.r[0].q != 0);
	CHECK_EQ_STR(g.r[1].ts, "*");
	CHECK(g.r[1].q != 0);
}

TEST(q_zero)
{
	struct got g = parse("a/b;q=0, a/c; q=0.000, a/d;q=0.001, a/e;Q=0.");

	CHECK_EQ_INT(g.n, 4);
	CHECK_EQ_STR(g.r[0].media, "a/d");   /* q=0.001 before the q=0 ones */
	CHECK(g.r[0].q != 0);
	CHECK(g.r[1].q == 0 && g.r[2].q == 0 && g.r[3].q == 0);
	CHECK_EQ_STR(g.r[3].media, "a/e");
}

static unsigned qof(const char *h, const char *media, const char *type, const char *ts)
{
	return accept_q_of(h, strlen(h), media, type, ts);
}

TEST(q_of_the_most_specific_range)
{
	const char *mr = "multipart/related", *dcm = "application/dicom";

	/* X;q=0 refuses X even beside a wildcard (RFC 9110 12.5.1) */
	CHECK_EQ_INT(qof("application/dicom+json;q=0, */*", "application/dicom+json", NULL, NULL), 0);
	CHECK_EQ_INT(qof("application/dicom+json;q=0, */*", "application/json", NULL, NULL), 1000);
	CHECK_EQ_INT(qof("application/*;q=0.5, */*;q=0.1", "application/json", NULL, NULL), 500);
	CHECK_EQ_INT(qof("image/*;q=0, image/png", "image/jpeg", NULL, NULL), 0);
	CHECK_EQ_INT(qof("image/*;q=0, image/png", "image/png", NULL, NULL), 1000);
	/* nothing matches: 0; an empty header takes anything */
	CHECK_EQ_INT(qof("text/html", "application/dicom+json", NULL, NULL), 0);
	CHECK_EQ_INT(qof("", "application/dicom+json", NULL, NULL), 1000);
	CHECK_EQ_INT(qof("  ", mr, dcm, "1.2.840.10008.1.2.1"), 1000);
	/* parameters: a range naming the transfer syntax is more specific */
	{
		const char *h = "multipart/related;type=\"application/dicom\";transfer-syntax=1.2.840.10008.1.2.4.50;q=0, "
		                "multipart/related;type=\"application/dicom\"";
		CHECK_EQ_INT(qof(h, mr, dcm, "1.2.840.10008.1.2.4.50"), 0);
		CHECK_EQ_INT(qof(h, mr, dcm, "1.2.840.10008.1.2.1"), 1000);
		CHECK_EQ_INT(qof(h, mr, "application/octet-stream", NULL), 0);   /* another type */
	}
	CHECK_EQ_INT(qof("multipart/related;type=application/dicom;transfer-syntax=*;q=0.3, multipart/*;q=0.9", mr,
	                 dcm, "1.2.3"), 300);
	CHECK_EQ_INT(qof("multipart/related;type=\"*/*\";q=0.2", mr, dcm, "1.2.3"), 200);
	/* a type parameter of "image/ *" takes image/jpeg, below an exact one */
	CHECK_EQ_INT(qof("multipart/related;type=\"image/*\"", mr, "image/jpeg", NULL), 1000);
	CHECK_EQ_INT(qof("multipart/related;type=image/*;q=0.5, multipart/related;type=image/jpeg;q=0", mr, "image/jpeg",
	                 NULL), 0);
	CHECK_EQ_INT(qof("multipart/related;type=image/*;q=0.5, multipart/related;type=image/jpeg;q=0", mr, "image/png",
	                 NULL), 500);
	CHECK_EQ_INT(qof("multipart/related;type=image/*", mr, dcm, NULL), 0);
	/* equally specific ranges: the highest q */
	CHECK_EQ_INT(qof("image/png;q=0, image/png;q=0.4", "image/png", NULL, NULL), 400);
	/* malformed ranges are skipped */
	CHECK_EQ_INT(qof("image/png;q=2, */*;q=0.7", "image/png", NULL, NULL), 700);
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

TEST(highest_q_first)
{
	struct got g = parse("image/png;q=0.5, image/jpeg, a/b;q=0, a/c;q=0.5, a/d;q=1.000, a/e;q=0.999");

	CHECK_EQ_INT(g.n, 6);
	CHECK_EQ_STR(g.r[0].media, "image/jpeg");   /* q=1, in the order given */
	CHECK_EQ_STR(g.r[1].media, "a/d");
	CHECK_EQ_INT((int)g.r[1].q, 1000);
	CHECK_EQ_STR(g.r[2].media, "a/e");
	CHECK_EQ_INT((int)g.r[2].q, 999);
	CHECK_EQ_STR(g.r[3].media, "image/png");    /* q=0.5, in the order given */
	CHECK_EQ_STR(g.r[4].media, "a/c");
	CHECK_EQ_STR(g.r[5].media, "a/b");          /* q=0 last */
	CHECK(g.r[5].q == 0 && g.r[4].q != 0);
}

TEST(bad_qvalues_are_malformed)
{
	struct got g = parse("a/b;q=1.5, a/c;q=0.0001, a/d;q=x, a/e;q=.5, a/f;q=2, a/g;q=1.001, a/h;q=0.25");

	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.r[0].media, "a/h");
	CHECK_EQ_INT((int)g.r[0].q, 250);
}

struct many {
	char media[16][MP_MEDIA_MAX + 1];
	int n;
};

static bool collect_many(void *ctx, const struct accept_range *a)
{
	struct many *m = ctx;

	if (m->n < 16)
		memcpy(m->media[m->n++], a->media, sizeof a->media);
	return false;
}

TEST(many_q_levels)
{
	/* ten distinct values: the eight highest in order, then the two lowest
	 * together, in the order given */
	const char *h = "a/a;q=0.1, a/b;q=0.2, a/c;q=0.3, a/d;q=0.4, a/e;q=0.5, a/f;q=0.6, a/g;q=0.7, a/h;q=0.8, "
	                "a/i;q=0.9, a/j";
	static const char *const want[] = { "a/j", "a/i", "a/h", "a/g", "a/f", "a/e", "a/d", "a/c", "a/a", "a/b" };
	struct many m;
	int i;

	memset(&m, 0, sizeof m);
	(void)accept_each(h, strlen(h), collect_many, &m);
	CHECK_EQ_INT(m.n, 10);
	for (i = 0; i < 10 && i < m.n; i++)
		CHECK_EQ_STR(m.media[i], want[i]);
}

static bool count_all(void *ctx, const struct accept_range *a)
{
	(void)a;
	(*(unsigned *)ctx)++;
	return false;
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

/* Only the first ACCEPT_MAX_RANGES ranges are read: a range past them is
 * neither visited nor given a q (6000 ranges made negotiation quadratic). */
TEST(ranges_past_the_cap_are_ignored)
{
	char h[8192];
	size_t n = 0;
	unsigned i, calls = 0;

	for (i = 0; i < ACCEPT_MAX_RANGES; i++)
		n += (size_t)snprintf(h + n, sizeof h - n, "a/x%u, ", i);
	n += (size_t)snprintf(h + n, sizeof h - n, "image/png");
	CHECK(!accept_each(h, n, count_all, &calls));
	CHECK_EQ_INT((int)calls, (int)ACCEPT_MAX_RANGES);
	CHECK_EQ_INT((int)accept_q_of(h, n, "image/png", NULL, NULL), 0);
	CHECK_EQ_INT((int)accept_q_of(h, n, "a/x63", NULL, NULL), 1000);
}

int main(void)
{
	RUN(dicom_ranges);
	RUN(q_zero);
	RUN(q_of_the_most_specific_range);
	RUN(quotes_case_and_escapes);
	RUN(malformed_ranges_are_skipped);
	RUN(long_values);
	RUN(empty_header_is_any);
	RUN(stops_when_the_callback_says_so);
	RUN(highest_q_first);
	RUN(bad_qvalues_are_malformed);
	RUN(many_q_levels);
	RUN(ranges_past_the_cap_are_ignored);
	return TEST_DONE();
}
