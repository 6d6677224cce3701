/* ini_test.c: dicomvault.conf parsing, good and hostile. Layer: tests. */
#include "test.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"

static struct ini *parse(const char *text, struct ini_error *e)
{
	struct ini *ini = NULL;
	if (ini_parse((const uint8_t *)text, strlen(text), &ini, e) != ERR_OK)
		return NULL;
	return ini;
}

static void bad(const char *text, unsigned line, const char *needle)
{
	struct ini_error e;
	struct ini *ini = parse(text, &e);
	CHECK(ini == NULL);
	ini_free(ini);
	CHECK_EQ_INT(e.line, line);
	if (strstr(e.msg, needle) == NULL) {
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", e.msg, needle);
		t_failed_now = 1;
	}
}

TEST(sections_and_peers)
{
	struct ini_error e;
	struct ini *ini = parse("# dicomvault.conf\n"
	                        "[http]\n"
	                        "listen = 127.0.0.1:8443\n"
	                        "\n"
	                        "[Peer \"MODALITY1\"]\r\n"
	                        "  fingerprint = AA:BB:CC  \n"
	                        "rights = echo, store\n"
	                        "; comment\n"
	                        "[collection \"onco\"]\n"
	                        "match = InstitutionalDepartmentName=ONCO*\n"
	                        "note = \"quoted \\\"value\\\" # not a comment\"\n"
	                        "empty =\n"
	                        "[deid]\n", &e);
	CHECK(ini != NULL);
	if (ini == NULL) {
		fprintf(stderr, "  line %u: %s\n", e.line, e.msg);
		return;
	}
	CHECK_EQ_STR(ini_get(ini, "http", NULL, "listen"), "127.0.0.1:8443");
	CHECK_EQ_STR(ini_get(ini, "peer", "MODALITY1", "fingerprint"), "AA:BB:CC");
	CHECK_EQ_STR(ini_get(ini, "peer", "MODALITY1", "rights"), "echo, store");
	CHECK(ini_get(ini, "peer", "OTHER", "rights") == NULL);
	CHECK(ini_get(ini, "peer", NULL, "rights") == NULL);
	CHECK_EQ_STR(ini_get(ini, "collection", "onco", "match"), "InstitutionalDepartmentName=ONCO*");
	CHECK_EQ_STR(ini_get(ini, "collection", "onco", "note"), "quoted \"value\" # not a comment");
	CHECK_EQ_STR(ini_get(ini, "collection", "onco", "empty"), "");
	CHECK_EQ_INT(ini->nsections, 4);
	CHECK_EQ_STR(ini->sections[3].section, "deid");
	CHECK_EQ_INT(ini->e[1].line, 6);
	ini_free(ini);
}

/* No comment after a value: ';' and '#' are comments only at the start of
 * a line. A value may hold " ;" or " #" meaningfully (a masking rule's
 * rectangles, "x,y,w,h ; x,y,w,h", spaces allowed; a match pattern on an
 * institution "Ward #2"), and cutting there would change what an existing
 * dicomvault.conf means (a rectangle left unmasked). */
TEST(no_comment_after_a_value)
{
	struct ini_error e;
	struct ini *ini = parse("[deid \"mask US\"]\n"
	                        "rect = 0,0,10,4 ; 0,12,10,4\n"
	                        "[collection \"ward2\"]\n"
	                        "match = InstitutionalDepartmentName=Ward #2\n"
	                        "[auth]\n"
	                        "idle_timeout = 900 ; 15 min\n", &e);
	CHECK(ini != NULL);
	if (ini == NULL)
		return;
	CHECK_EQ_STR(ini_get(ini, "deid", "mask US", "rect"), "0,0,10,4 ; 0,12,10,4");
	CHECK_EQ_STR(ini_get(ini, "collection", "ward2", "match"), "InstitutionalDepartmentName=Ward #2");
	/* kept whole, so [auth] refuses it as not an integer, not 900 */
	CHECK_EQ_STR(ini_get(ini, "auth", NULL, "idle_timeout"), "900 ; 15 min");
	ini_free(ini);
}

TEST(bom_and_no_final_newline)
{
	struct ini *ini = parse("\xEF\xBB\xBF[a]\nk=v", NULL);
	CHECK(ini != NULL && ini_get(ini, "a", NULL, "k") != NULL);
	ini_free(ini);
	ini = parse("", NULL);
	CHECK(ini != NULL && ini->n == 0);
	ini_free(ini);
}

TEST(malformed)
{
	bad("key = v\n", 1, "outside");
	bad("[a]\nkey v\n", 2, "'='");
	bad("[a\n", 1, "']'");
	bad("[]\n", 1, "section name");
	bad("[a b]\n", 1, "quoted");
	bad("[a \"x]\n", 1, "quoted");
	bad("[a \"\"]\n", 1, "empty");
	bad("[a \"x\" y]\n", 1, "after");
	bad("[a]\nk=1\nk=2\n", 3, "twice");
	bad("[a]\n[b]\n[a]\n", 3, "twice");
	bad("[a]\n=v\n", 2, "key");
	bad("[a]\nk=\"open\n", 2, "quoted");
	bad("[a]\nk=\"x\" trailing\n", 2, "after");
	bad("[a]\nk=\"bad \\q escape\"\n", 2, "quoted");
	bad("[a]\nk=v\x01\n", 2, "control");
	bad("[a]\nk=v\x7f\n", 2, "control");
	bad("[a]\nk\xc3\xa9=v\n", 2, "key");
}

TEST(embedded_nul)
{
	static const uint8_t t[] = "[a]\nk=v\0w\n";
	struct ini *ini = NULL;
	struct ini_error e;
	CHECK(ini_parse(t, sizeof t - 1, &ini, &e) == ERR_PARSE);
	CHECK(e.line == 2 && strstr(e.msg, "control") != NULL);
}

TEST(limits)
{
	size_t n = INI_MAX_LINE + 10, i;
	char *big = malloc(n + 8);
	struct ini *ini = NULL;
	struct ini_error e;

	CHECK(big != NULL);
	if (big == NULL)
		return;
	memcpy(big, "[a]\nk=", 6);
	for (i = 6; i < n; i++)
		big[i] = 'x';
	big[n] = '\n';
	CHECK(ini_parse((uint8_t *)big, n + 1, &ini, &e) == ERR_PARSE);
	CHECK(e.line == 2 && strstr(e.msg, "longer") != NULL);
	free(big);
	/* oversized input is refused before it is read */
	CHECK(ini_parse((const uint8_t *)"x", (size_t)INI_MAX_INPUT + 1, &ini, &e) == ERR_PARSE);
	/* too many settings */
	{
		size_t cap = 32 + (size_t)(INI_MAX_ENTRIES + 1) * 16, len = 0;
		char *t = malloc(cap);
		CHECK(t != NULL);
		if (t == NULL)
			return;
		len += (size_t)snprintf(t, cap, "[a]\n");
		for (i = 0; i <= INI_MAX_ENTRIES; i++)
			len += (size_t)snprintf(t + len, cap - len, "k%zu=1\n", i);
		CHECK(ini_parse((uint8_t *)t, len, &ini, &e) == ERR_PARSE);
		CHECK(strstr(e.msg, "settings") != NULL);
		free(t);
	}
}

int main(void)
{
	RUN(sections_and_peers);
	RUN(no_comment_after_a_value);
	RUN(bom_and_no_final_newline);
	RUN(malformed);
	RUN(embedded_nul);
	RUN(limits);
	return TEST_DONE();
}
