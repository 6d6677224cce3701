/* qr_test.c: the Query/Retrieve identifiers of `import --from`
 * (proto/qr.c): golden bytes, round trips in both VR encodings, and the
 * reading of response identifiers from the peer: truncated at every
 * offset, a UID that is not one, a missing or empty key, too large.
 * Layer: tests. */
#include "test.h"
#include "dicomvault/qr.h"

#define STUDY "1.2.826.0.1.3680043.2.1143.1"
#define SERIES "1.2.826.0.1.3680043.2.1143.1.2"
#define SOP "1.2.826.0.1.3680043.2.1143.1.2.3"

TEST(golden_implicit)
{
	static const uint8_t want[] = {
		0x08, 0x00, 0x52, 0x00, 0x06, 0x00, 0x00, 0x00, 'S', 'T', 'U', 'D', 'Y', ' ',
		0x20, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct wbuf w;

	wbuf_init(&w, 1024);
	CHECK_EQ_INT(qr_ident_build(&w, false, "STUDY", NULL, NULL, NULL), ERR_OK);
	CHECK_EQ_INT(w.len, sizeof want);
	CHECK(w.len == sizeof want && memcmp(w.p, want, sizeof want) == 0);
	wbuf_fini(&w);
}

TEST(golden_explicit)
{
	/* the C-MOVE identifier: STUDY level, an odd-length UID padded with NUL */
	static const uint8_t want[] = {
		0x08, 0x00, 0x52, 0x00, 'C', 'S', 0x06, 0x00, 'S', 'T', 'U', 'D', 'Y', ' ',
		0x20, 0x00, 0x0D, 0x00, 'U', 'I', 0x06, 0x00, '1', '.', '2', '.', '3', 0,
	};
	struct wbuf w;

	wbuf_init(&w, 1024);
	CHECK_EQ_INT(qr_ident_build(&w, true, "STUDY", "1.2.3", NULL, NULL), ERR_OK);
	CHECK(w.len == sizeof want && memcmp(w.p, want, sizeof want) == 0);
	wbuf_fini(&w);
}

TEST(round_trip)
{
	int ex;

	for (ex = 0; ex < 2; ex++) {
		struct wbuf w;
		char out[65] = "";
		wbuf_init(&w, 1024);
		CHECK_EQ_INT(qr_ident_build(&w, ex, "IMAGE", STUDY, SERIES, SOP), ERR_OK);
		CHECK_EQ_INT(qr_ident_uid(w.p, w.len, ex, qr_level_key("IMAGE"), out), ERR_OK);
		CHECK_EQ_STR(out, SOP);
		CHECK_EQ_INT(qr_ident_uid(w.p, w.len, ex, qr_level_key("SERIES"), out), ERR_OK);
		CHECK_EQ_STR(out, SERIES);
		CHECK_EQ_INT(qr_ident_uid(w.p, w.len, ex, qr_level_key("STUDY"), out), ERR_OK);
		CHECK_EQ_STR(out, STUDY);
		wbuf_fini(&w);
		/* the level's key empty: not found, out untouched */
		wbuf_init(&w, 1024);
		CHECK_EQ_INT(qr_ident_build(&w, ex, "SERIES", STUDY, NULL, NULL), ERR_OK);
		snprintf(out, sizeof out, "x");
		CHECK_EQ_INT(qr_ident_uid(w.p, w.len, ex, qr_level_key("SERIES"), out), ERR_NOTFOUND);
		CHECK_EQ_STR(out, "x");
		CHECK_EQ_INT(qr_ident_uid(w.p, w.len, ex, 0x00100010, out), ERR_NOTFOUND);
		wbuf_fini(&w);
	}
}

TEST(build_refusals)
{
	struct wbuf w;

	wbuf_init(&w, 1024);
	CHECK_EQ_INT(qr_ident_build(&w, true, "PATIENT", NULL, NULL, NULL), ERR_PARSE);
	CHECK_EQ_INT(qr_ident_build(&w, true, "STUDY", "1..2", NULL, NULL), ERR_PARSE);
	CHECK_EQ_INT(qr_ident_build(&w, true, "IMAGE", STUDY, "x", NULL), ERR_PARSE);
	CHECK_EQ_INT(qr_ident_build(&w, true, NULL, NULL, NULL, NULL), ERR_PARSE);
	CHECK_EQ_INT(w.len, 0);
	CHECK_EQ_INT(qr_level_key("study"), 0);
	/* a legacy study UID with a leading-zero component is moved */
	CHECK_EQ_INT(qr_ident_build(&w, true, "STUDY", "1.2.05.3", NULL, NULL), ERR_OK);
	CHECK(w.len > 0);
	wbuf_fini(&w);
}

TEST(truncated)
{
	struct wbuf w;
	size_t cut;

	wbuf_init(&w, 1024);
	CHECK_EQ_INT(qr_ident_build(&w, true, "IMAGE", STUDY, SERIES, SOP), ERR_OK);
	for (cut = 0; cut < w.len; cut++) {
		char out[65] = "";
		enum err rc = qr_ident_uid(w.p, cut, true, qr_level_key("IMAGE"), out);
		/* the SOP Instance UID is the first element: whole only at its end */
		CHECK(rc == ERR_PARSE || rc == ERR_NOTFOUND || (rc == ERR_OK && strcmp(out, SOP) == 0));
	}
	wbuf_fini(&w);
}

TEST(bad_values)
{
	/* implicit VR: (0020,000D) with a value that is not a UID */
	static const uint8_t letters[] = { 0x20, 0x00, 0x0D, 0x00, 0x04, 0x00, 0x00, 0x00, '1', '.', 'a', 0 };
	static const uint8_t leading0[] = { 0x20, 0x00, 0x0D, 0x00, 0x04, 0x00, 0x00, 0x00, '1', '.', '0', '1' };
	static const uint8_t nul_inside[] = { 0x20, 0x00, 0x0D, 0x00, 0x04, 0x00, 0x00, 0x00, '1', 0, '2', 0 };
	static const uint8_t overrun[] = { 0x20, 0x00, 0x0D, 0x00, 0xFF, 0x00, 0x00, 0x00, '1', '.', '2', 0 };
	static const uint8_t spaces[] = { 0x20, 0x00, 0x0D, 0x00, 0x04, 0x00, 0x00, 0x00, '1', '.', '2', ' ' };
	uint8_t *big;
	char out[65];

	CHECK_EQ_INT(qr_ident_uid(letters, sizeof letters, false, 0x0020000D, out), ERR_PARSE);
	/* a legacy leading-zero component is read, as the store takes it */
	CHECK_EQ_INT(qr_ident_uid(leading0, sizeof leading0, false, 0x0020000D, out), ERR_OK);
	CHECK_EQ_STR(out, "1.01");
	CHECK_EQ_INT(qr_ident_uid(nul_inside, sizeof nul_inside, false, 0x0020000D, out), ERR_PARSE);
	CHECK_EQ_INT(qr_ident_uid(overrun, sizeof overrun, false, 0x0020000D, out), ERR_PARSE);
	CHECK_EQ_INT(qr_ident_uid(spaces, sizeof spaces, false, 0x0020000D, out), ERR_OK);
	CHECK_EQ_STR(out, "1.2");
	CHECK_EQ_INT(qr_ident_uid(NULL, 0, false, 0x0020000D, out), ERR_PARSE);   /* no data set */
	big = calloc(1, QR_MAX_IDENTIFIER + 1);
	CHECK(big != NULL);
	if (big != NULL)
		CHECK_EQ_INT(qr_ident_uid(big, QR_MAX_IDENTIFIER + 1, false, 0x0020000D, out), ERR_LIMIT);
	free(big);
}

int main(void)
{
	RUN(golden_implicit);
	RUN(golden_explicit);
	RUN(round_trip);
	RUN(build_refusals);
	RUN(truncated);
	RUN(bad_values);
	return TEST_DONE();
}
