/* charset_test.c: unit tests for dicom/charset.c: parsing (0008,0005),
 * known-answer decoding (vectors from pydicom's charset test files and
 * test_charset.py), encoding from UTF-8, and bad input. Layer: tests. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "dicomvault/charset.h"

#define BIG (1u << 24)

static bool parse(const char *csv, struct dcm_charset *cs)
{
	enum err rc = charset_parse((const uint8_t *)csv, strlen(csv), cs);

	CHECK_EQ_INT(rc, ERR_OK);
	return rc == ERR_OK;
}

/* Decode raw (rawlen bytes) under csv and compare with want. */
static void known(const char *csv, bool pn, const char *raw, size_t rawlen, const char *want)
{
	struct dcm_charset cs;
	struct wbuf w;
	enum err rc;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&w, BIG);
	rc = charset_to_utf8(&cs, pn, (const uint8_t *)raw, rawlen, &w);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc == ERR_OK) {
		CHECK_EQ_INT(w.len, strlen(want));
		CHECK_EQ_STR(wbuf_cstr(&w), want);
	}
	wbuf_fini(&w);
}

/* Encode utf8 under csv and compare with the expected raw bytes. */
static void enc_known(const char *csv, bool pn, const char *utf8, const char *raw, size_t rawlen)
{
	struct dcm_charset cs;
	struct wbuf w;
	enum err rc;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&w, BIG);
	rc = charset_from_utf8(&cs, pn, (const uint8_t *)utf8, strlen(utf8), &w);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc == ERR_OK) {
		CHECK_EQ_INT(w.len, rawlen);
		CHECK(w.len == rawlen && memcmp(wbuf_cstr(&w), raw, rawlen) == 0);
	}
	wbuf_fini(&w);
}

/* utf8 -> charset -> utf8 gives utf8 back. */
static void roundtrip(const char *csv, bool pn, const char *utf8)
{
	struct dcm_charset cs;
	struct wbuf enc, dec;
	enum err rc;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&enc, BIG);
	wbuf_init(&dec, BIG);
	rc = charset_from_utf8(&cs, pn, (const uint8_t *)utf8, strlen(utf8), &enc);
	CHECK_EQ_INT(rc, ERR_OK);
	if (rc == ERR_OK) {
		rc = charset_to_utf8(&cs, pn, enc.p, enc.len, &dec);
		CHECK_EQ_INT(rc, ERR_OK);
		CHECK_EQ_STR(wbuf_cstr(&dec), utf8);
	}
	wbuf_fini(&enc);
	wbuf_fini(&dec);
}

/* Decoding must fail with `want` and leave out exactly as it was. */
static void bad(const char *csv, bool pn, const char *raw, size_t rawlen, enum err want)
{
	struct dcm_charset cs;
	struct wbuf w;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&w, BIG);
	wbuf_puts(&w, "keep");
	CHECK_EQ_INT(charset_to_utf8(&cs, pn, (const uint8_t *)raw, rawlen, &w), want);
	CHECK_EQ_INT(wbuf_err(&w), ERR_OK);
	CHECK_EQ_STR(wbuf_cstr(&w), "keep");
	wbuf_fini(&w);
}

static void enc_bad(const char *csv, bool pn, const char *utf8, size_t len, enum err want)
{
	struct dcm_charset cs;
	struct wbuf w;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&w, BIG);
	wbuf_puts(&w, "keep");
	CHECK_EQ_INT(charset_from_utf8(&cs, pn, (const uint8_t *)utf8, len, &w), want);
	CHECK_EQ_INT(wbuf_err(&w), ERR_OK);
	CHECK_EQ_STR(wbuf_cstr(&w), "keep");
	wbuf_fini(&w);
}

#define KNOWN(cs, pn, raw, want) known(cs, pn, raw, sizeof(raw) - 1, want)
#define ENC(cs, pn, utf8, raw) enc_known(cs, pn, utf8, raw, sizeof(raw) - 1)
#define BAD(cs, pn, raw, want) bad(cs, pn, raw, sizeof(raw) - 1, want)
#define ENC_BAD(cs, pn, utf8, want) enc_bad(cs, pn, utf8, sizeof(utf8) - 1, want)

/* ---- parsing (0008,0005) ---- */

TEST(parse_empty_is_default)
{
	struct dcm_charset cs;

	CHECK_EQ_INT(charset_parse(NULL, 0, &cs), ERR_OK);
	CHECK_EQ_INT(cs.n, 0);
	CHECK(!cs.iso2022);
	CHECK(parse("  ", &cs));
	CHECK_EQ_INT(cs.n, 0);
}

TEST(parse_single_terms)
{
	struct dcm_charset cs;

	CHECK(parse("ISO_IR 100", &cs));
	CHECK_EQ_INT(cs.n, 1);
	CHECK_EQ_INT(cs.terms[0], CS_IR100);
	CHECK(!cs.iso2022);
	CHECK(parse(" ISO_IR 192 ", &cs));
	CHECK_EQ_INT(cs.terms[0], CS_IR192);
	CHECK(parse("GB18030", &cs));
	CHECK_EQ_INT(cs.terms[0], CS_GB18030);
	CHECK(parse("GBK ", &cs));
	CHECK_EQ_INT(cs.terms[0], CS_GBK);
	CHECK(parse("ISO_IR 166", &cs));
	CHECK_EQ_INT(cs.terms[0], CS_IR166);
	CHECK(parse("ISO 2022 IR 100", &cs));
	CHECK_EQ_INT(cs.terms[0], CS_IR100);
	CHECK(cs.iso2022);
}

TEST(parse_multi_valued)
{
	struct dcm_charset cs;

	CHECK(parse("\\ISO 2022 IR 87", &cs));
	CHECK_EQ_INT(cs.n, 2);
	CHECK_EQ_INT(cs.terms[0], CS_DEFAULT);
	CHECK_EQ_INT(cs.terms[1], CS_IR87);
	CHECK(cs.iso2022);
	CHECK(parse("ISO 2022 IR 13\\ISO 2022 IR 87 ", &cs));
	CHECK_EQ_INT(cs.n, 2);
	CHECK_EQ_INT(cs.terms[0], CS_IR13);
	CHECK(parse("ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", &cs));
	CHECK_EQ_INT(cs.n, 3);
	CHECK_EQ_INT(cs.terms[2], CS_IR159);
	CHECK(parse("ISO 2022 IR 100\\ISO 2022 IR 126", &cs));
	CHECK_EQ_INT(cs.terms[1], CS_IR126);
	CHECK(parse("\\ISO 2022 IR 149", &cs));
	CHECK_EQ_INT(cs.terms[1], CS_IR149);
	CHECK(parse("\\ISO 2022 IR 58", &cs));
	CHECK_EQ_INT(cs.terms[1], CS_IR58);
}

TEST(parse_errors_leave_cs_alone)
{
	struct dcm_charset cs;
	const char *nine = "\\\\\\\\\\\\\\\\";   /* 9 empty values */
	const char *eight = "\\\\\\\\\\\\\\";    /* 8 */

	memset(&cs, 0, sizeof cs);
	cs.n = 1;
	cs.terms[0] = CS_IR126;
	CHECK_EQ_INT(charset_parse((const uint8_t *)"ISO_IR 999", 10, &cs), ERR_UNSUPPORTED);
	CHECK_EQ_INT(charset_parse((const uint8_t *)"iso_ir 100", 10, &cs), ERR_UNSUPPORTED);
	CHECK_EQ_INT(charset_parse((const uint8_t *)"ISO_IR 100\\KOI8-R", 17, &cs), ERR_UNSUPPORTED);
	CHECK_EQ_INT(charset_parse((const uint8_t *)"ISO_IR 192\\ISO 2022 IR 87", 25, &cs), ERR_UNSUPPORTED);
	CHECK_EQ_INT(charset_parse((const uint8_t *)nine, strlen(nine), &cs), ERR_LIMIT);
	CHECK_EQ_INT(cs.n, 1);
	CHECK_EQ_INT(cs.terms[0], CS_IR126);
	CHECK_EQ_INT(charset_parse((const uint8_t *)eight, strlen(eight), &cs), ERR_OK);
	CHECK_EQ_INT(cs.n, CHARSET_MAX_TERMS);
}

TEST(term_names)
{
	CHECK_EQ_STR(charset_term(CS_IR100, false), "ISO_IR 100");
	CHECK_EQ_STR(charset_term(CS_IR100, true), "ISO 2022 IR 100");
	CHECK_EQ_STR(charset_term(CS_IR87, true), "ISO 2022 IR 87");
	CHECK_EQ_STR(charset_term(CS_IR192, false), "ISO_IR 192");
	CHECK_EQ_STR(charset_term(CS_GB18030, false), "GB18030");
	CHECK_EQ_STR(charset_term(CS_DEFAULT, true), "ISO 2022 IR 6");
	CHECK_EQ_STR(charset_term(CS_DEFAULT, false), "");
	CHECK(charset_term(CS__COUNT, false) == NULL);
}

/* ---- known answers: single-byte sets (pydicom chr*.dcm) ---- */

TEST(latin1)
{
	KNOWN("ISO_IR 100", true, "Buc^J\351r\364me", "Buc^J\303\251r\303\264me");
	KNOWN("ISO_IR 100", true, "\304neas^R\374diger ", "\303\204neas^R\303\274diger ");
	/* chrFrenMulti: two values */
	KNOWN("ISO_IR 100", true, "Buc^J\351r\364me\134Buc^J\351r\364me ",
	      "Buc^J\303\251r\303\264me\134Buc^J\303\251r\303\264me ");
}

TEST(cyrillic)
{
	KNOWN("ISO_IR 144", true, "\273\356\332ce\334\321yp\323",
	      "\320\233\321\216\320\272ce\320\274\320\261yp\320\263");
}

TEST(greek)
{
	KNOWN("ISO_IR 126", true, "\304\351\357\355\365\363\351\357\362 ",
	      "\316\224\316\271\316\277\316\275\317\205\317\203\316\271\316\277\317\202 ");
}

TEST(arabic)
{
	KNOWN("ISO_IR 127", true, "\342\310\307\346\352^\344\346\322\307\321 ",
	      "\331\202\330\250\330\247\331\206\331\212^\331\204\331\206\330\262\330\247\330\261 ");
}

TEST(hebrew)
{
	KNOWN("ISO_IR 138", true, "\371\370\345\357^\343\341\345\370\344",
	      "\327\251\327\250\327\225\327\237^\327\223\327\221\327\225\327\250\327\224");
}

TEST(thai)
{
	KNOWN("ISO_IR 166", false, "\271\322\301\312\241\330\305",
	      "\340\270\231\340\270\262\340\270\241\340\270\252\340\270\201\340\270\270\340\270\245");
}

TEST(other_latin)
{
	KNOWN("ISO_IR 101", true, "Wa\263\352sa", "Wa\305\202\304\231sa");
	KNOWN("ISO_IR 109", true, "anta\375nomo", "anta\305\255nomo");
	KNOWN("ISO_IR 110", true, "v\340rds", "v\304\201rds");
	KNOWN("ISO_IR 148", true, "\307avu\376o\360lu", "\303\207avu\305\237o\304\237lu");
}

TEST(default_and_ir13)
{
	KNOWN("", true, "Doctor^Who^^MD", "Doctor^Who^^MD");
	KNOWN("ISO_IR 6", false, "a\\b\r\n", "a\\b\r\n");
	/* JIS X 0201: katakana in GR, romaji (read as ASCII) in GL */
	KNOWN("ISO_IR 13", true, "\324\317\300\336^\300\333\263",
	      "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263");
}

TEST(utf8)
{
	KNOWN("ISO_IR 192", true, "Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261= ",
	      "Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261= ");
}

TEST(gb18030)
{
	KNOWN("GB18030", true, "Wang^XiaoDong=\315\365^\320\241\266\253=",
	      "Wang^XiaoDong=\347\216\213^\345\260\217\344\270\234=");
	/* four-byte sequences, beyond the BMP */
	KNOWN("GB18030", false, "Zo\2010\2125^\242\343\241\326\2249\3746",
	      "Zo\303\253^\342\202\254\342\211\210\360\237\230\200");
	/* a 0x5C trail byte is part of the character, not a delimiter */
	KNOWN("GB18030", false, "\201\134", "\344\271\227");
}

TEST(gbk)
{
	KNOWN("GBK", true, "Wang^XiaoDong=\315\365^\320\241\266\253=",
	      "Wang^XiaoDong=\347\216\213^\345\260\217\344\270\234=");
}

/* ---- known answers: code extensions ---- */

TEST(japanese_ir87_with_ir6)
{
	/* chrH31 */
	KNOWN("\\ISO 2022 IR 87", true,
	      "Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B",
	      "Yamada^Tarou=\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206");
	/* chrJapMulti, two values */
	KNOWN("\\ISO 2022 IR 87", true,
	      "\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B\134\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ",
	      "\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206\134\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206 ");
	/* chrJapMultiExplicitIR6 */
	KNOWN("ISO 2022 IR 6\\ISO 2022 IR 87", true,
	      "\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ",
	      "\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206 ");
	/* LT: text, not a name */
	KNOWN("\\ISO 2022 IR 87", false, "\033$B$\077$m$&\033(B",
	      "\343\201\237\343\202\215\343\201\206");
}

TEST(japanese_ir87_with_ir13)
{
	/* chrH32 */
	KNOWN("ISO 2022 IR 13\\ISO 2022 IR 87", true,
	      "\324\317\300\336^\300\333\263=\033$B;3ED\033(J^\033$BB@O:\033(J=\033$B$d$^$@\033(J^\033$B$\077$m$&\033(J",
	      "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263="
	      "\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206");
}

TEST(japanese_ir159)
{
	/* pydicom test_charset: Mori^Ogai, JIS X 0212 for the first kanji */
	KNOWN("ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", true,
	      "Mori^Ogai=\033$B\0779\033(B^\033$(Dl\077\033$B30\033(B=\033$B$b$j\033(B^\033$B$*$&$,$$\033(B",
	      "Mori^Ogai=\346\243\256^\351\267\227\345\244\226=\343\202\202\343\202\212^\343\201\212\343\201\206\343\201\214\343\201\204");
	/* all three Japanese sets mixed in one value */
	KNOWN("ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159", false,
	      "\033$B$\042\033(Ja\033)I\261\033$B%\042\033$(DmN\033(J",
	      "\343\201\202a\357\275\261\343\202\242\351\275\251");
}

TEST(korean_ir149)
{
	/* chrI2 */
	KNOWN("\\ISO 2022 IR 149", true,
	      "Hong^Gildong=\033$)C\373\363^\033$)C\321\316\324\327=\033$)C\310\253^\033$)C\261\346\265\277",
	      "Hong^Gildong=\346\264\252^\345\220\211\346\264\236=\355\231\215^\352\270\270\353\217\231");
	/* chrKoreanMulti, two values */
	KNOWN("\\ISO 2022 IR 149", true,
	      "\033$)C\261\350\310\361\301\337\033(B\134\033$)C\261\350\310\361\301\337\033(B ",
	      "\352\271\200\355\235\254\354\244\221\134\352\271\200\355\235\254\354\244\221 ");
}

TEST(chinese_ir58)
{
	/* PS3.5 Annex K style example */
	KNOWN("\\ISO 2022 IR 58", true,
	      "Zhang^XiaoDong=\033$)A\325\305^\033$)A\320\241\266\253=",
	      "Zhang^XiaoDong=\345\274\240^\345\260\217\344\270\234=");
}

TEST(single_byte_code_extensions)
{
	/* '=' component groups in different sets */
	KNOWN("ISO 2022 IR 100\\ISO 2022 IR 126", true,
	      "Dionysios=\033-F\304\351\357\355\365\363\351\357\362",
	      "Dionysios=\316\224\316\271\316\277\316\275\317\205\317\203\316\271\316\277\317\202");
	/* three values; each starts again in latin1 */
	KNOWN("ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", false,
	      "Buc^J\351r\364me\134\033-F\304\351\357\355\365\363\351\357\362\134\033-L\273\356\332ce\334\321yp\323",
	      "Buc^J\303\251r\303\264me\134\316\224\316\271\316\277\316\275\317\205\317\203\316\271\316\277\317\202\134"
	      "\320\233\321\216\320\272ce\320\274\320\261yp\320\263");
	/* designation back to the initial set after the '\' */
	KNOWN("ISO 2022 IR 100\\ISO 2022 IR 126", false,
	      "\033-F\304\134\351", "\316\224\134\303\251");
	/* Thai as a code extension */
	KNOWN("\\ISO 2022 IR 166", true, "ASCII+\033-T\271\322\301\312\241\330\305",
	      "ASCII+\340\270\231\340\270\262\340\270\241\340\270\252\340\270\201\340\270\270\340\270\245");
	/* single ISO 2022 term, no escape needed */
	KNOWN("ISO 2022 IR 100", true, "Buc^J\351r\364me", "Buc^J\303\251r\303\264me");
	/* ISO 2022 IR 13 in G1 after an escape */
	KNOWN("\\ISO 2022 IR 13", true, "\033)I\324\317\300\336^\033)I\300\333\263",
	      "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263");
}

TEST(resets_at_controls_and_pn_delimiters)
{
	/* Not a PN: '^' does not reset, so the katakana continue. */
	KNOWN("\\ISO 2022 IR 13", false, "\033)I\324\317\300\336^\300\333\263",
	      "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263");
	/* A PN: after '^' G1 is back to none, so GR bytes are invalid. */
	BAD("\\ISO 2022 IR 13", true, "\033)I\324\317\300\336^\300\333\263", ERR_PARSE);
	/* CR, LF, TAB, FF reset G0 too: "$d" is then two ASCII letters. */
	KNOWN("\\ISO 2022 IR 87", false, "\033$B$d\r\n$d\t\033$B$d\f$d",
	      "\343\202\204\r\n$d\t\343\202\204\f$d");
	/* '=' resets in PN */
	BAD("ISO 2022 IR 6\\ISO 2022 IR 100", true, "\033-A\351=\351", ERR_PARSE);
	KNOWN("ISO 2022 IR 6\\ISO 2022 IR 100", false, "\033-A\351=\351", "\303\251=\303\251");
	/* Inside a JIS X 0208 run 0x5C is half of a character, not '\'. */
	KNOWN("\\ISO 2022 IR 87", false, "\033$B$\134\033(B", "\343\201\274");
}

/* ---- encoding ---- */

TEST(encode_known)
{
	ENC("ISO_IR 100", true, "Buc^J\303\251r\303\264me", "Buc^J\351r\364me");
	ENC("ISO_IR 144", true, "\320\233\321\216\320\272ce\320\274\320\261yp\320\263",
	    "\273\356\332ce\334\321yp\323");
	ENC("GB18030", true, "Wang^XiaoDong=\347\216\213^\345\260\217\344\270\234=",
	    "Wang^XiaoDong=\315\365^\320\241\266\253=");
	ENC("ISO_IR 192", true, "\347\216\213", "\347\216\213");
	ENC("ISO_IR 13", true, "\357\276\224\357\276\217^abc", "\324\317^abc");
	/* the same bytes as pydicom / the standard's examples */
	ENC("\\ISO 2022 IR 87", true,
	    "Yamada^Tarou=\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206",
	    "Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B");
	ENC("ISO 2022 IR 13\\ISO 2022 IR 87", true,
	    "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263="
	    "\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206",
	    "\324\317\300\336^\300\333\263=\033$B;3ED\033(J^\033$BB@O:\033(J=\033$B$d$^$@\033(J^\033$B$\077$m$&\033(J");
	ENC("ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", true,
	    "Mori^Ogai=\346\243\256^\351\267\227\345\244\226=\343\202\202\343\202\212^\343\201\212\343\201\206\343\201\214\343\201\204",
	    "Mori^Ogai=\033$B\0779\033(B^\033$(Dl\077\033$B30\033(B=\033$B$b$j\033(B^\033$B$*$&$,$$\033(B");
	ENC("\\ISO 2022 IR 149", true,
	    "Hong^Gildong=\346\264\252^\345\220\211\346\264\236=\355\231\215^\352\270\270\353\217\231",
	    "Hong^Gildong=\033$)C\373\363^\033$)C\321\316\324\327=\033$)C\310\253^\033$)C\261\346\265\277");
	ENC("\\ISO 2022 IR 58", true,
	    "Zhang^XiaoDong=\345\274\240^\345\260\217\344\270\234=",
	    "Zhang^XiaoDong=\033$)A\325\305^\033$)A\320\241\266\253=");
	ENC("ISO 2022 IR 100\\ISO 2022 IR 126", true,
	    "Dionysios=\316\224\316\271\316\277\316\275\317\205\317\203\316\271\316\277\317\202",
	    "Dionysios=\033-F\304\351\357\355\365\363\351\357\362");
}

TEST(encode_roundtrip)
{
	roundtrip("ISO_IR 166", false, "\340\270\231\340\270\262\340\270\241");
	roundtrip("GBK", true, "Wang^XiaoDong=\347\216\213^\345\260\217\344\270\234=");
	roundtrip("GB18030", false, "Zo\303\253^\342\202\254\342\211\210\360\237\230\200");
	roundtrip("ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159", false,
	          "\343\201\202a\357\275\261\343\202\242\351\275\251");
	roundtrip("ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", false,
	          "Buc^J\303\251r\303\264me\134\316\224\316\271\316\277\134\320\233\321\216 x\r\n\303\251");
	roundtrip("\\ISO 2022 IR 87", false, "\345\261\261 \347\224\260\r\n\343\202\204\tA");
}

TEST(encode_errors)
{
	ENC_BAD("ISO_IR 100", false, "\316\224", ERR_UNSUPPORTED);       /* Greek in latin1 */
	ENC_BAD("", false, "\303\251", ERR_UNSUPPORTED);                 /* non-ASCII in default */
	ENC_BAD("\\ISO 2022 IR 87", false, "\352\271\200", ERR_UNSUPPORTED); /* Hangul */
	ENC_BAD("ISO_IR 192", false, "a\033b", ERR_UNSUPPORTED);
	ENC_BAD("ISO_IR 100", false, "\303", ERR_PARSE);                 /* truncated UTF-8 */
	ENC_BAD("ISO_IR 192", false, "\355\240\200", ERR_PARSE);         /* surrogate */
	ENC_BAD("GB18030", false, "\300\200", ERR_PARSE);                /* overlong */
}

/* ---- bad input ---- */

TEST(invalid_utf8)
{
	BAD("ISO_IR 192", false, "abc\377", ERR_PARSE);
	BAD("ISO_IR 192", false, "\300\257", ERR_PARSE);          /* overlong '/' */
	BAD("ISO_IR 192", false, "\355\240\200", ERR_PARSE);      /* surrogate */
	BAD("ISO_IR 192", false, "\364\220\200\200", ERR_PARSE);  /* > U+10FFFF */
	BAD("ISO_IR 192", false, "\347\216", ERR_PARSE);          /* truncated */
	BAD("ISO_IR 192", false, "a\033$Bb", ERR_PARSE);          /* ESC without extensions */
}

TEST(invalid_gb18030)
{
	BAD("GB18030", false, "\201\040", ERR_PARSE);     /* bad trail byte */
	BAD("GB18030", false, "ab\201", ERR_PARSE);       /* truncated */
	BAD("GB18030", false, "\2010\201", ERR_PARSE);    /* truncated 4-byte */
	BAD("GB18030", false, "\377\241", ERR_PARSE);
	BAD("GBK", false, "\201", ERR_PARSE);
}

TEST(invalid_single_byte)
{
	BAD("", false, "caf\351", ERR_PARSE);             /* 8-bit in the default */
	BAD("ISO_IR 6", false, "caf\351", ERR_PARSE);
	BAD("ISO_IR 109", false, "\245", ERR_PARSE);      /* unassigned in 8859-3 */
	BAD("ISO_IR 127", false, "\241", ERR_PARSE);      /* unassigned in 8859-6 */
	BAD("ISO_IR 166", false, "\377", ERR_PARSE);      /* unassigned in TIS-620 */
	BAD("ISO_IR 13", false, "\340", ERR_PARSE);       /* beyond katakana */
	BAD("ISO_IR 100", false, "a\033-Fb", ERR_PARSE);  /* ESC without extensions */
}

/* Decoded for showing: valid values as charset_to_utf8 gives them, others
 * as UTF-8 with U+FFFD for each byte that begins no valid sequence. */
static void lossy(const char *csv, const char *raw, size_t rawlen, const char *want)
{
	struct dcm_charset cs;
	struct wbuf w;

	if (!parse(csv, &cs))
		return;
	wbuf_init(&w, 64);
	CHECK_EQ_INT(charset_to_utf8_lossy(&cs, false, (const uint8_t *)raw, rawlen, &w), ERR_OK);
	CHECK_EQ_STR(wbuf_cstr(&w), want);
	wbuf_fini(&w);
}
#define LOSSY(cs, raw, want) lossy(cs, raw, sizeof(raw) - 1, want)

TEST(lossy_for_showing)
{
	struct dcm_charset cs;
	struct wbuf w;

	LOSSY("ISO_IR 100", "M\374ller", "M\303\274ller");              /* valid: decoded */
	LOSSY("GB18030", "X2EXAMP\340\177\020", "X2EXAMP\357\277\275\177\020");
	LOSSY("", "Jos\303\251", "Jos\303\251");                       /* UTF-8 under the default */
	LOSSY("ISO_IR 192", "a\377\300\257b", "a\357\277\275\357\277\275\357\277\275b");
	LOSSY("ISO_IR 192", "\347\216", "\357\277\275\357\277\275");   /* truncated */
	LOSSY("ISO_IR 192", "", "");
	/* only the buffer's limit fails */
	CHECK(parse("GB18030", &cs));
	wbuf_init(&w, 4);
	CHECK(charset_to_utf8_lossy(&cs, false, (const uint8_t *)"ab\201\040cd", 6, &w) != ERR_OK);
	wbuf_fini(&w);
	CHECK_EQ_INT(charset_utf8_seq_len((const uint8_t *)"\360\237\230\200", 4), 4);
	CHECK_EQ_INT(charset_utf8_seq_len((const uint8_t *)"\360\237\230\200", 3), 0);
	CHECK_EQ_INT(charset_utf8_seq_len((const uint8_t *)"\355\240\200", 3), 0);   /* surrogate */
	CHECK_EQ_INT(charset_utf8_seq_len((const uint8_t *)"", 0), 0);
}

TEST(bad_escapes)
{
	BAD("\\ISO 2022 IR 87", false, "abc\033", ERR_PARSE);          /* truncated */
	BAD("\\ISO 2022 IR 87", false, "abc\033$", ERR_PARSE);
	BAD("\\ISO 2022 IR 149", false, "\033$)", ERR_PARSE);
	BAD("\\ISO 2022 IR 87", false, "\033$A", ERR_PARSE);           /* unknown */
	BAD("\\ISO 2022 IR 87", false, "\033N", ERR_PARSE);            /* SS2 */
	BAD("\\ISO 2022 IR 87", false, "\033$$$$B", ERR_PARSE);        /* too long */
	BAD("\\ISO 2022 IR 87", false, "\033\001", ERR_PARSE);
	BAD("\\ISO 2022 IR 87", false, "\033-A\351", ERR_PARSE);       /* not declared */
	BAD("\\ISO 2022 IR 87", false, "\033$)C\261\350", ERR_PARSE);  /* not declared */
	BAD("\\ISO 2022 IR 87", false, "\033$B$", ERR_PARSE);          /* half a character */
	BAD("\\ISO 2022 IR 87", false, "\033$B$ ", ERR_PARSE);
	BAD("\\ISO 2022 IR 87", false, "\033$B$\177", ERR_PARSE);      /* DEL is no trail byte */
	KNOWN("\\ISO 2022 IR 87", false, "\033$B\177$d", "\177\343\202\204"); /* but a control */
	BAD("\\ISO 2022 IR 87", false, "\033$B~~", ERR_PARSE);         /* unassigned */
	BAD("\\ISO 2022 IR 149", false, "\033$)C\261", ERR_PARSE);     /* half */
	BAD("\\ISO 2022 IR 149", false, "\033$)C\261A", ERR_PARSE);
	BAD("\\ISO 2022 IR 149", false, "\033$)C\240\240", ERR_PARSE);
	BAD("\\ISO 2022 IR 58", false, "\033$)A\376\376", ERR_PARSE);  /* unassigned */
	BAD("\\ISO 2022 IR 87", false, "\351", ERR_PARSE);             /* no G1 */
}

TEST(empty_input)
{
	struct dcm_charset cs;
	struct wbuf w;
	const char *sets[] = { "", "ISO_IR 100", "ISO_IR 192", "GB18030", "\\ISO 2022 IR 87" };
	size_t i;

	wbuf_init(&w, 16);
	for (i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		if (!parse(sets[i], &cs))
			continue;
		CHECK_EQ_INT(charset_to_utf8(&cs, true, NULL, 0, &w), ERR_OK);
		CHECK_EQ_INT(charset_from_utf8(&cs, true, NULL, 0, &w), ERR_OK);
		CHECK_EQ_INT(w.len, 0);
	}
	wbuf_fini(&w);
}

TEST(huge_input)
{
	struct dcm_charset cs;
	struct wbuf w, small;
	size_t n = 1u << 20, i;
	uint8_t *in = malloc(n);
	bool ok = true;

	CHECK(in != NULL);
	if (in == NULL || !parse("ISO_IR 100", &cs)) {
		free(in);
		return;
	}
	for (i = 0; i < n; i++)
		in[i] = (i % 3 == 0) ? 0xE9 : (uint8_t)('a' + i % 26);
	wbuf_init(&w, 4u << 20);
	CHECK_EQ_INT(charset_to_utf8(&cs, false, in, n, &w), ERR_OK);
	CHECK_EQ_INT(w.len, n + (n + 2) / 3);
	for (i = 0; ok && i < 6; i++)
		ok = w.p[i] == (const uint8_t[]){ 0xC3, 0xA9, 'b', 'c', 0xC3, 0xA9 }[i];
	CHECK(ok);

	/* and back */
	wbuf_init(&small, 4u << 20);
	CHECK_EQ_INT(charset_from_utf8(&cs, false, w.p, w.len, &small), ERR_OK);
	CHECK(small.len == n && memcmp(small.p, in, n) == 0);
	wbuf_fini(&small);

	/* a small cap: ERR_LIMIT and the buffer as it was */
	wbuf_init(&small, 1000);
	wbuf_puts(&small, "x");
	CHECK_EQ_INT(charset_to_utf8(&cs, false, in, n, &small), ERR_LIMIT);
	CHECK_EQ_INT(wbuf_err(&small), ERR_OK);
	CHECK_EQ_STR(wbuf_cstr(&small), "x");
	CHECK_EQ_INT(charset_from_utf8(&cs, false, w.p, w.len, &small), ERR_LIMIT);
	CHECK_EQ_STR(wbuf_cstr(&small), "x");
	wbuf_fini(&small);

	/* UTF-8 and GB18030 paths too */
	if (parse("ISO_IR 192", &cs)) {
		wbuf_init(&small, 1000);
		CHECK_EQ_INT(charset_to_utf8(&cs, false, w.p, w.len, &small), ERR_LIMIT);
		CHECK_EQ_INT(small.len, 0);
		wbuf_fini(&small);
	}
	if (parse("GB18030", &cs)) {
		wbuf_init(&small, 1000);
		CHECK_EQ_INT(charset_to_utf8(&cs, false, (const uint8_t *)"abc", 3, &small), ERR_OK);
		wbuf_fini(&small);
		wbuf_init(&small, 2);
		CHECK_EQ_INT(charset_to_utf8(&cs, false, (const uint8_t *)"abc", 3, &small), ERR_LIMIT);
		CHECK_EQ_INT(small.len, 0);
		wbuf_fini(&small);
	}
	wbuf_fini(&w);
	free(in);
}

TEST(sticky_error_on_entry)
{
	struct dcm_charset cs;
	struct wbuf w;

	if (!parse("ISO_IR 100", &cs))
		return;
	wbuf_init(&w, 2);
	wbuf_puts(&w, "abc");                         /* sets ERR_LIMIT */
	CHECK_EQ_INT(charset_to_utf8(&cs, false, (const uint8_t *)"a", 1, &w), ERR_LIMIT);
	CHECK_EQ_INT(charset_from_utf8(&cs, false, (const uint8_t *)"a", 1, &w), ERR_LIMIT);
	wbuf_fini(&w);
}

TEST(hand_built_charset_checked)
{
	struct dcm_charset cs;
	struct wbuf w;

	memset(&cs, 0, sizeof cs);
	cs.n = 1;
	cs.terms[0] = CS__COUNT;
	wbuf_init(&w, 16);
	CHECK_EQ_INT(charset_to_utf8(&cs, false, (const uint8_t *)"a", 1, &w), ERR_INTERNAL);
	cs.n = CHARSET_MAX_TERMS + 1;
	cs.terms[0] = CS_DEFAULT;
	CHECK_EQ_INT(charset_to_utf8(&cs, false, (const uint8_t *)"a", 1, &w), ERR_INTERNAL);
	CHECK_EQ_INT(w.len, 0);
	wbuf_fini(&w);
}

int main(void)
{
	RUN(parse_empty_is_default);
	RUN(parse_single_terms);
	RUN(parse_multi_valued);
	RUN(parse_errors_leave_cs_alone);
	RUN(term_names);
	RUN(latin1);
	RUN(cyrillic);
	RUN(greek);
	RUN(arabic);
	RUN(hebrew);
	RUN(thai);
	RUN(other_latin);
	RUN(default_and_ir13);
	RUN(utf8);
	RUN(gb18030);
	RUN(gbk);
	RUN(japanese_ir87_with_ir6);
	RUN(japanese_ir87_with_ir13);
	RUN(japanese_ir159);
	RUN(korean_ir149);
	RUN(chinese_ir58);
	RUN(single_byte_code_extensions);
	RUN(resets_at_controls_and_pn_delimiters);
	RUN(encode_known);
	RUN(encode_roundtrip);
	RUN(encode_errors);
	RUN(invalid_utf8);
	RUN(invalid_gb18030);
	RUN(invalid_single_byte);
	RUN(lossy_for_showing);
	RUN(bad_escapes);
	RUN(empty_input);
	RUN(huge_input);
	RUN(sticky_error_on_entry);
	RUN(hand_built_charset_checked);
	return TEST_DONE();
}
