/* dict_test.c: the generated dictionary, transfer syntax and UID tables,
 * and VR properties. Layer: tests. */
#include "test.h"
#include "dicomvault/dict.h"
#include "dicomvault/vr.h"

TEST(lookup_by_tag)
{
	const struct dict_entry *d = dict_lookup(0x00100010);
	CHECK(d != NULL);
	if (d) {
		CHECK_EQ_STR(d->keyword, "PatientName");
		CHECK_EQ_INT(d->vr, VR_PN);
		CHECK_EQ_STR(d->vm, "1");
		CHECK_EQ_INT(d->retired, 0);
	}
	d = dict_lookup(0x7FE00010);
	CHECK(d != NULL && d->amb == VR_AMB_OB_OW);
	d = dict_lookup(0x00280106);
	CHECK(d != NULL && d->amb == VR_AMB_US_SS);
	CHECK(dict_lookup(0x001000FF) == NULL);
	CHECK(dict_lookup(0x00090010) == NULL);   /* private */
}

TEST(every_row_is_found_and_sorted)
{
	size_t i;
	for (i = 1; i < dict_exact_n; i++)
		CHECK(dict_exact[i - 1].tag < dict_exact[i].tag);
	for (i = 0; i < dict_exact_n; i++)
		CHECK(dict_lookup(dict_exact[i].tag) == &dict_exact[i]);
	CHECK(dict_exact_n + dict_masked_n == 5356);  /* the TSV's rows */
}

TEST(repeating_groups)
{
	const struct dict_entry *d = dict_lookup(0x60003000);
	CHECK(d != NULL && d->keyword[0] && d->vr == VR_OB);
	if (d)
		CHECK_EQ_STR(d->keyword, "OverlayData");
	d = dict_lookup(0x601E3000);
	CHECK(d != NULL);
	if (d)
		CHECK_EQ_STR(d->keyword, "OverlayData");
	d = dict_lookup(0x50023000);
	CHECK(d != NULL);
	if (d)
		CHECK_EQ_STR(d->keyword, "CurveData");
	d = dict_lookup(0x10000011);   /* (1000,xxx1) */
	CHECK(d != NULL);
}

TEST(lookup_by_keyword)
{
	const struct dict_entry *d = dict_lookup_keyword("StudyInstanceUID", 16);
	CHECK(d != NULL && d->tag == 0x0020000D);
	d = dict_lookup_keyword("PatientNameX", 11);   /* length-limited */
	CHECK(d != NULL && d->tag == 0x00100010);
	CHECK(dict_lookup_keyword("PatientNam", 10) == NULL);
	CHECK(dict_lookup_keyword("PatientName\0XYZ", 15) == NULL);   /* a NUL inside the key (qido_fuzz) */
	CHECK(dict_lookup_keyword("NoSuchKeyword", 13) == NULL);
	CHECK(dict_lookup_keyword("", 0) == NULL);
	d = dict_lookup_keyword("OverlayData", 11);
	CHECK(d != NULL && d->mask != 0xFFFFFFFFu);
}

TEST(private_by_creator)
{
	static const char c1[] = "Philips PET Private Group";
	static const char c2[] = "GEMS_PARM_01 ";   /* padded, as on the wire */
	const struct dict_private *p = dict_lookup_private(0x70531000, c1, sizeof c1 - 1);
	CHECK(p != NULL && p->vr == VR_DS);
	/* same element in another block (xx = 0x11) */
	p = dict_lookup_private(0x70531100, c1, sizeof c1 - 1);
	CHECK(p != NULL);
	CHECK(dict_lookup_private(0x70531000, "Other", 5) == NULL);
	CHECK(dict_lookup_private(0x00100010, c1, sizeof c1 - 1) == NULL);
	p = dict_lookup_private(0x00431001, c2, sizeof c2 - 1);
	(void)p;  /* GEMS_PARM_01 rows exist for some elements only */
}

TEST(transfer_syntaxes)
{
	const struct dcm_ts *t;
	CHECK_EQ_STR(DCM_TS_IMPLICIT_LE->uid, "1.2.840.10008.1.2");
	CHECK(!DCM_TS_IMPLICIT_LE->explicit_vr);
	CHECK_EQ_STR(DCM_TS_EXPLICIT_LE->uid, "1.2.840.10008.1.2.1");
	CHECK(DCM_TS_EXPLICIT_LE->explicit_vr && !DCM_TS_EXPLICIT_LE->big_endian);
	CHECK_EQ_STR(DCM_TS_DEFLATED_LE->uid, "1.2.840.10008.1.2.1.99");
	CHECK(DCM_TS_DEFLATED_LE->deflated);
	CHECK_EQ_STR(DCM_TS_EXPLICIT_BE->uid, "1.2.840.10008.1.2.2");
	CHECK(DCM_TS_EXPLICIT_BE->big_endian);
	t = dict_ts("1.2.840.10008.1.2.4.50\0", 23);   /* NUL padded */
	CHECK(t != NULL && t->encapsulated);
	t = dict_ts("1.2.840.10008.1.2.5", 19);
	CHECK(t != NULL && t->encapsulated);
	CHECK(dict_ts("1.2.840.10008.1.2.1.", 20) == NULL);
	CHECK(dict_ts("", 0) == NULL);
}

TEST(uids)
{
	const struct uid_entry *u = dict_uid("1.2.840.10008.5.1.4.1.1.2", 25);
	CHECK(u != NULL);
	if (u)
		CHECK_EQ_STR(u->keyword, "CTImageStorage");
	CHECK(dict_uid("1.2.3", 5) == NULL);
	CHECK(dict_uid("1.2.840.10008.1.2\0", 18) != NULL);   /* NUL padded */
	CHECK(dict_uid("1.2.840.10008.1.", 16) == NULL);       /* a prefix is not a match */
	CHECK(dict_uid("", 0) == NULL);
	{
		size_t i;
		for (i = 0; i < dict_uid_n; i++) {
			const struct uid_entry *e = dict_uid(dict_uid_tab[i].uid, strlen(dict_uid_tab[i].uid));
			CHECK(e != NULL && strcmp(e->uid, dict_uid_tab[i].uid) == 0);
		}
	}
}

TEST(implicit_vr)
{
	CHECK_EQ_INT(dict_implicit_vr(0x00100010), VR_PN);
	CHECK_EQ_INT(dict_implicit_vr(0x00080000), VR_UL);      /* group length */
	CHECK_EQ_INT(dict_implicit_vr(0x00090010), VR_LO);      /* private creator */
	CHECK_EQ_INT(dict_implicit_vr(0x00091001), VR_UN);      /* private data */
	CHECK_EQ_INT(dict_implicit_vr(0x7FE00010), VR_OW);      /* PS3.5 A.1 */
	CHECK_EQ_INT(dict_implicit_vr(0x00080100 + 0x1234), VR_UN);
	CHECK_EQ_INT(dict_implicit_vr(0x00081115), VR_SQ);
}

TEST(vr_properties)
{
	static const char *all[] = { "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
	                             "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
	                             "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV" };
	size_t i;
	char b[3];
	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		uint16_t v = vr_from_str(all[i]);
		CHECK(vr_is_known(v));
		CHECK_EQ_STR(vr_name(v, b), all[i]);
	}
	CHECK(vr_from_str("ZZ") == VR_NONE);
	CHECK(vr_from_str("A") == VR_NONE);
	CHECK(vr_from_str("AEX") == VR_NONE);
	CHECK(vr_has_long_length(VR_OV) && vr_has_long_length(VR_SV) && vr_has_long_length(VR_UV));
	CHECK(vr_has_long_length(VR_UC) && vr_has_long_length(VR_UR) && vr_has_long_length(VR_UT));
	CHECK(!vr_has_long_length(VR_LO) && !vr_has_long_length(VR_US));
	CHECK_EQ_INT(vr_pad(VR_UI), 0);
	CHECK_EQ_INT(vr_pad(VR_LO), ' ');
	CHECK_EQ_INT(vr_pad(VR_OB), 0);
	CHECK_EQ_INT(vr_swap_size(VR_AT), 2);
	CHECK_EQ_INT(vr_swap_size(VR_OV), 8);
	CHECK_EQ_INT(vr_swap_size(VR_OB), 0);
	CHECK(vr_uses_charset(VR_PN) && !vr_uses_charset(VR_CS));
	CHECK_EQ_STR(vr_name(0x0102, b), "??");
}

/* vr_uint_parse: digits only, at most max (a digit above a small max
 * too), no overflow of 64 bits. */
/* DS and IS values (PS3.5 6.2) as vr_decimal_ok reads them, padding
 * already trimmed */
static bool dec(const char *s, bool is)
{
	return vr_decimal_ok(s, strlen(s), is);
}

TEST(decimal_ok)
{
	CHECK(dec("1", false) && dec("+1", false) && dec("-1.5", false) && dec(".5", false) && dec("5.", false));
	CHECK(dec("1e3", false) && dec("1E-3", false) && dec("-.5e+12", false) && dec("0012", false));
	CHECK(!dec("", false) && !dec("+", false) && !dec(".", false) && !dec("-.", false));
	CHECK(!dec("1e", false) && !dec("1e+", false) && !dec("e3", false) && !dec(".e3", false));
	CHECK(!dec("1.2.3", false) && !dec("1 ", false) && !dec("1,5", false) && !dec("++1", false) && !dec("0x10", false));
	CHECK(dec("12", true) && dec("-7", true) && dec("+0", true));
	CHECK(!dec("1.0", true) && !dec("1e3", true) && !dec("-", true) && !dec("", true) && !dec("1a", true));
}

TEST(uint_parse)
{
	uint64_t v = 0;

	CHECK(vr_uint_parse("123", 3, 1000, &v) && v == 123);
	CHECK(vr_uint_parse("1000", 4, 1000, &v) && v == 1000);
	CHECK(!vr_uint_parse("1001", 4, 1000, &v));
	CHECK(!vr_uint_parse("9", 1, 5, &v));
	CHECK(vr_uint_parse("5", 1, 5, &v) && v == 5);
	CHECK(!vr_uint_parse("", 0, 5, &v));
	CHECK(!vr_uint_parse("1a", 2, 100, &v));
	CHECK(!vr_uint_parse("-1", 2, 100, &v));
	CHECK(vr_uint_parse("18446744073709551615", 20, UINT64_MAX, &v) && v == UINT64_MAX);
	CHECK(!vr_uint_parse("18446744073709551616", 20, UINT64_MAX, &v));
	CHECK(!vr_uint_parse("100000000000000000000", 21, UINT64_MAX, &v));
}

/* vr_uid_ok: numbers separated by single dots, 1 to 64 characters; never
 * ".", ".." or an empty component (a path segment or a file name that
 * means something else); leading zeros tolerated. */
TEST(uid_ok)
{
	static const char *const good[] = { "1", "1.2", "1.2.840.10008.1.2.1", "2.25.0", "1.2.03.4", "0" };
	static const char *const bad[] = { "", ".", "..", "...", ".1", "1.", "1..2", "1.2.", "1.a", "1 .2", "1/2",
		                           "1.2.840.10008.1.2.1\\x00" };
	char longest[66];
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(vr_uid_ok(good[i], strlen(good[i])));
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (vr_uid_ok(bad[i], strlen(bad[i]))) {
			fprintf(stderr, "  taken: '%s'\n", bad[i]);
			CHECK(false);
		}
	memset(longest, '1', sizeof longest);
	CHECK(vr_uid_ok(longest, 64));
	CHECK(!vr_uid_ok(longest, 65));
	CHECK(!vr_uid_ok("1.2", 4));   /* the NUL counted: not a digit */
}

int main(void)
{
	RUN(lookup_by_tag);
	RUN(every_row_is_found_and_sorted);
	RUN(repeating_groups);
	RUN(lookup_by_keyword);
	RUN(private_by_creator);
	RUN(transfer_syntaxes);
	RUN(uids);
	RUN(implicit_vr);
	RUN(vr_properties);
	RUN(uint_parse);
	RUN(decimal_ok);
	RUN(uid_ok);
	return TEST_DONE();
}
