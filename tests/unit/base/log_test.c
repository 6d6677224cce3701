/* log_test.c: log_scrub_quoted, which cleans libmicrohttpd's messages
 * before they reach our log. Layer: tests. */
#include "test.h"
#include "dicomvault/log.h"

static const char *scrub(const char *in)
{
	static char buf[256];

	snprintf(buf, sizeof buf, "%s", in);
	log_scrub_quoted(buf);
	return buf;
}

/* A request path quoted by libmicrohttpd (a QIDO query naming a patient)
 * never reaches the log; the rest of the message does. */
TEST(quoted_paths_removed)
{
	CHECK_EQ_STR(scrub("Failed to send the response headers for the request for "
	                   "`/dicom-web/studies?PatientName=DOE^JOHN'. Error: 32\n"),
	             "Failed to send the response headers for the request for `...'. Error: 32");
	CHECK_EQ_STR(scrub("a `x' and `yyy' b"), "a `' and `...' b");
	CHECK_EQ_STR(scrub("``'"), "`'");
	CHECK_EQ_STR(scrub("cut `/dicom-web/studies?PatientID=P1"), "cut ");   /* unclosed */
	CHECK_EQ_STR(scrub("no quotes here\r\n"), "no quotes here");
	/* a path it does not quote */
	CHECK_EQ_STR(scrub("Failed to send data in request for /dicom-web/studies?PatientName=DOE. Error"),
	             "Failed to send data in request for / Error");
	CHECK_EQ_STR(scrub("/x?a=b"), "/");
	CHECK_EQ_STR(scrub("HTTP/1.1 and a/b stay"), "HTTP/1.1 and a/b stay");
}

TEST(control_bytes_replaced)
{
	CHECK_EQ_STR(scrub("a\tb\x01" "c\xc3\xa9"), "a?b?c??");
	CHECK_EQ_STR(scrub(""), "");
	CHECK_EQ_STR(scrub("\n"), "");
}

int main(void)
{
	RUN(quoted_paths_removed);
	RUN(control_bytes_replaced);
	return TEST_DONE();
}
