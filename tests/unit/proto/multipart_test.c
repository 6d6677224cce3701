/* multipart_test.c: the multipart/related parser and writer: one-shot and
 * chunked at every byte boundary give the same parts, the boundary split
 * across chunks, CRLF and bare LF, Content-Type parameters, and hostile
 * inputs (no boundary, truncation, caps, nesting). Layer: tests. */
#include "test.h"
#include "dicomvault/multipart.h"

#define MAXP 8

struct got {
	unsigned n;
	char ctype[MAXP][MP_HEADER_VALUE_MAX + 1];
	struct wbuf body[MAXP];
	bool open;
	unsigned begins, ends;
};

static enum err g_begin(void *ctx, const struct mp_part *p)
{
	struct got *g = ctx;

	if (g->n >= MAXP || g->open)
		return ERR_INTERNAL;
	snprintf(g->ctype[g->n], sizeof g->ctype[0], "%s", p->ctype);
	wbuf_init(&g->body[g->n], 1 << 20);
	g->open = true;
	g->begins++;
	return ERR_OK;
}

static enum err g_data(void *ctx, const uint8_t *p, size_t n)
{
	struct got *g = ctx;

	if (!g->open || n == 0)
		return ERR_INTERNAL;   /* never empty, never outside a part */
	wbuf_put(&g->body[g->n], p, n);
	return ERR_OK;
}

static enum err g_end(void *ctx)
{
	struct got *g = ctx;

	if (!g->open)
		return ERR_INTERNAL;
	g->open = false;
	g->n++;
	g->ends++;
	return ERR_OK;
}

static void got_fini(struct got *g)
{
	unsigned i;

	for (i = 0; i < g->n + (g->open ? 1u : 0u); i++)
		wbuf_fini(&g->body[i]);
	memset(g, 0, sizeof *g);
}

/* Parses s in chunks of the given sizes (cycled; 0: all at once). */
static enum err parse(const char *boundary, const void *s, size_t n, const size_t *chunks, size_t nch,
                      struct got *g, const char **why)
{
	struct mp_cb cb = { g_begin, g_data, g_end, g };
	struct mp_parser p;
	const uint8_t *d = s;
	size_t off = 0, k = 0;
	enum err rc = ERR_AGAIN;

	memset(g, 0, sizeof *g);
	mp_parser_init(&p, boundary, &cb, NULL);
	while (off < n) {
		size_t c = nch ? chunks[k++ % nch] : n;
		if (c > n - off)
			c = n - off;
		rc = mp_parser_feed(&p, d + off, c);
		off += c;
		if (rc != ERR_AGAIN)
			break;
	}
	if (rc == ERR_AGAIN || n == 0)
		rc = mp_parser_finish(&p);
	if (why)
		*why = mp_parser_why(&p);
	return rc;
}

static bool same(const struct got *a, const struct got *b)
{
	unsigned i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->ctype[i], b->ctype[i]) != 0 || a->body[i].len != b->body[i].len ||
		    (a->body[i].len && memcmp(a->body[i].p, b->body[i].p, a->body[i].len) != 0))
			return false;
	return true;
}

static const char two_parts[] =
	"preamble to ignore\r\n"
	"--XyZ\r\n"
	"Content-Type: application/dicom\r\n"
	"Content-Location: ignored\r\n"
	"\r\n"
	"DICM\r\n--XyZnot a delimiter? no: \r\n-- XyZ \n\r\r\n-\r\n--X\r"
	"\r\n--XyZ  \t\r\n"
	"content-type: Application/DICOM\r\n"
	"Content-Length: 5\r\n"
	"\r\n"
	"ab\ncd"
	"\r\n--XyZ--\r\n"
	"epilogue --XyZ garbage";

/* the first body contains "\r\n--XyZnot": the boundary followed by other
 * text is not a delimiter line, so it is an error by RFC 2046 (the
 * boundary must not occur in a part); use a body without it */
static const char good[] =
	"preamble to ignore\r\n"
	"--XyZ\r\n"
	"Content-Type: application/dicom\r\n"
	"Content-Location: ignored\r\n"
	"\r\n"
	"DICM\r\n--XY\r\n-- XyZ \n\r\r\n-\r\n--X\r\r\r"
	"\r\n--XyZ  \t\r\n"
	"content-type: Application/DICOM\r\n"
	"Content-Length: 5\r\n"
	"\r\n"
	"ab\ncd"
	"\r\n--XyZ--\r\n"
	"epilogue --XyZ garbage";
static const char body0[] = "DICM\r\n--XY\r\n-- XyZ \n\r\r\n-\r\n--X\r\r\r";

TEST(one_shot)
{
	struct got g;
	CHECK_EQ_INT(parse("XyZ", good, sizeof good - 1, NULL, 0, &g, NULL), ERR_OK);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.ctype[0], "application/dicom");
	CHECK_EQ_STR(g.ctype[1], "application/dicom");
	CHECK_EQ_INT(g.body[0].len, sizeof body0 - 1);
	CHECK(g.body[0].len == sizeof body0 - 1 && memcmp(g.body[0].p, body0, sizeof body0 - 1) == 0);
	CHECK(g.body[1].len == 5 && memcmp(g.body[1].p, "ab\ncd", 5) == 0);
	got_fini(&g);
}

TEST(boundary_inside_part_refused)
{
	struct got g;
	CHECK_EQ_INT(parse("XyZ", two_parts, sizeof two_parts - 1, NULL, 0, &g, NULL), ERR_PARSE);
	got_fini(&g);
}

TEST(every_chunk_size_and_split)
{
	struct got ref, g;
	size_t n = sizeof good - 1, cs, cut;

	CHECK_EQ_INT(parse("XyZ", good, n, NULL, 0, &ref, NULL), ERR_OK);
	for (cs = 1; cs <= n; cs++) {
		CHECK_EQ_INT(parse("XyZ", good, n, &cs, 1, &g, NULL), ERR_OK);
		CHECK(same(&ref, &g));
		got_fini(&g);
	}
	/* two chunks, cut at every byte (the boundary split everywhere) */
	for (cut = 0; cut <= n; cut++) {
		size_t ch[2] = { cut ? cut : n, n };
		CHECK_EQ_INT(parse("XyZ", good, n, ch, 2, &g, NULL), ERR_OK);
		CHECK(same(&ref, &g));
		got_fini(&g);
	}
	{   /* irregular chunks */
		size_t ch[] = { 3, 1, 7, 2, 13, 1, 1, 5 };
		CHECK_EQ_INT(parse("XyZ", good, n, ch, 8, &g, NULL), ERR_OK);
		CHECK(same(&ref, &g));
		got_fini(&g);
	}
	got_fini(&ref);
}

TEST(bare_lf)
{
	static const char s[] = "--b\nContent-Type: application/dicom\n\nx\r\ny\n--b\n\nz\n--b--";
	struct got g;
	size_t one = 1;
	CHECK_EQ_INT(parse("b", s, sizeof s - 1, NULL, 0, &g, NULL), ERR_OK);
	CHECK_EQ_INT(g.n, 2);
	CHECK(g.body[0].len == 4 && memcmp(g.body[0].p, "x\r\ny", 4) == 0);
	CHECK_EQ_STR(g.ctype[1], "");
	CHECK(g.body[1].len == 1 && g.body[1].p[0] == 'z');
	got_fini(&g);
	CHECK_EQ_INT(parse("b", s, sizeof s - 1, &one, 1, &g, NULL), ERR_OK);
	CHECK_EQ_INT(g.n, 2);
	got_fini(&g);
}

TEST(empty_and_binary_bodies)
{
	static const char s[] = "--b\r\n\r\n\r\n--b\r\n\r\n\0\r\0\n\0\r\n--b--";
	struct got g;
	CHECK_EQ_INT(parse("b", s, sizeof s - 1, NULL, 0, &g, NULL), ERR_OK);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_INT(g.body[0].len, 0);
	CHECK(g.body[1].len == 5 && memcmp(g.body[1].p, "\0\r\0\n\0", 5) == 0);
	got_fini(&g);
}

static void bad(const char *boundary, const char *s, enum err want, const char *needle)
{
	struct got g;
	const char *why = NULL;
	size_t n = strlen(s), cs;
	CHECK_EQ_INT(parse(boundary, s, n, NULL, 0, &g, &why), want);
	if (why == NULL || strstr(why, needle) == NULL) {
		fprintf(stderr, "  why \"%s\" lacks \"%s\"\n", why ? why : "", needle);
		t_failed_now = 1;
	}
	got_fini(&g);
	for (cs = 1; cs < 4; cs++) {
		CHECK_EQ_INT(parse(boundary, s, n, &cs, 1, &g, NULL), want);
		got_fini(&g);
	}
}

TEST(hostile)
{
	char big[MP_HEADER_LINE_MAX + 64];
	char many[MP_MAX_HEADERS * 8 + 64];
	size_t i;

	bad("b", "", ERR_PARSE, "no boundary");
	bad("b", "just some text without any delimiter", ERR_PARSE, "no boundary");
	bad("b", "--b\r\nContent-Type: application/dicom\r\n\r\nDICM", ERR_PARSE, "truncated");
	bad("b", "--b\r\nContent-Type: application/dicom\r\n", ERR_PARSE, "truncated");
	bad("b", "--b\r\n\r\nx\r\n--b", ERR_PARSE, "truncated");
	bad("b", "--b\r\n\r\nx\r\n--b-", ERR_PARSE, "truncated");
	bad("b", "--b\r\n\r\nx\r\n--b-x", ERR_PARSE, "close delimiter");
	bad("b", "--b\r\nContent-Type: multipart/related; boundary=c\r\n\r\n--c--\r\n--b--", ERR_UNSUPPORTED, "nested");
	bad("b", "--b\r\nno colon here\r\n\r\nx\r\n--b--", ERR_PARSE, "malformed");
	bad("b", "--b\r\n: empty name\r\n\r\nx\r\n--b--", ERR_PARSE, "malformed");
	bad("b", "--b\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n\r\n\r\n--b--", ERR_PARSE, "repeated");
	bad("b", "--b\r\nContent-Length: 4\r\n\r\nabc\r\n--b--", ERR_PARSE, "shorter");
	bad("b", "--b\r\nContent-Length: 2\r\n\r\nabc\r\n--b--", ERR_PARSE, "longer");
	bad("b", "--b\r\nContent-Length: -1\r\n\r\nabc\r\n--b--", ERR_PARSE, "Content-Length");
	bad("b", "--b\r\nContent-Length: 99999999999999999999999\r\n\r\n", ERR_PARSE, "Content-Length");
	bad("b", "--b\r\nContent-Length: 9999999999999\r\n\r\n", ERR_LIMIT, "limit");
	bad("b", "--b\rX\r\n\r\n--b--", ERR_PARSE, "delimiter line");
	bad("b", "--b\r\nX: \x01\r\n\r\n--b--", ERR_PARSE, "control");
	memcpy(big, "--b\r\nX: ", 8);
	for (i = 8; i < sizeof big - 1; i++)
		big[i] = 'a';
	big[sizeof big - 1] = 0;
	bad("b", big, ERR_LIMIT, "too long");
	{
		size_t o = 0;
		o += (size_t)snprintf(many + o, sizeof many - o, "--b\r\n");
		for (i = 0; i <= MP_MAX_HEADERS; i++)
			o += (size_t)snprintf(many + o, sizeof many - o, "X: 1\r\n");
		bad("b", many, ERR_LIMIT, "too many");
	}
}

TEST(limits)
{
	static const char s[] = "--b\r\n\r\n12345\r\n--b\r\n\r\nx\r\n--b--";
	struct mp_limits lim = { 4, 10 };
	struct got g;
	struct mp_cb cb = { g_begin, g_data, g_end, &g };
	struct mp_parser p;

	memset(&g, 0, sizeof g);
	mp_parser_init(&p, "b", &cb, &lim);
	CHECK_EQ_INT(mp_parser_feed(&p, (const uint8_t *)s, sizeof s - 1), ERR_LIMIT);
	CHECK_EQ_INT(mp_parser_feed(&p, (const uint8_t *)"x", 1), ERR_LIMIT);   /* sticky */
	CHECK_EQ_INT(mp_parser_finish(&p), ERR_LIMIT);
	got_fini(&g);
	lim.max_part = 100;
	lim.max_parts = 1;
	memset(&g, 0, sizeof g);
	mp_parser_init(&p, "b", &cb, &lim);
	CHECK_EQ_INT(mp_parser_feed(&p, (const uint8_t *)s, sizeof s - 1), ERR_LIMIT);
	CHECK_EQ_INT(g.n, 1);
	got_fini(&g);
}

TEST(done_ignores_epilogue)
{
	struct got g;
	struct mp_cb cb = { g_begin, g_data, g_end, &g };
	struct mp_parser p;

	memset(&g, 0, sizeof g);
	mp_parser_init(&p, "b", &cb, NULL);
	CHECK_EQ_INT(mp_parser_feed(&p, (const uint8_t *)"--b\r\n\r\nx\r\n--b--", 15), ERR_OK);
	CHECK_EQ_INT(mp_parser_feed(&p, (const uint8_t *)"\r\n--b\r\n\r\ny", 10), ERR_OK);
	CHECK_EQ_INT(mp_parser_finish(&p), ERR_OK);
	CHECK_EQ_INT(g.n, 1);
	got_fini(&g);
}

TEST(ctype)
{
	struct mp_ctype ct;
	const char *s;
	char b70[13 + 70 + 1], b71[13 + 71 + 1];

	s = "multipart/related; type=\"application/dicom\"; boundary=abc";
	CHECK_EQ_INT(mp_ctype_parse(s, strlen(s), &ct), ERR_OK);
	CHECK_EQ_STR(ct.media, "multipart/related");
	CHECK_EQ_STR(ct.type, "application/dicom");
	CHECK_EQ_STR(ct.boundary, "abc");
	s = "Multipart/Related;boundary=\"a b:c?=\\\"\" ;TYPE=Application/DICOM; start=\"<x>\";";
	CHECK_EQ_INT(mp_ctype_parse(s, strlen(s), &ct), ERR_PARSE);   /* '"' is no bchar */
	s = "Multipart/Related;boundary=\"a b:c?=\" ;TYPE=Application/DICOM; start=\"<x>\";";
	CHECK_EQ_INT(mp_ctype_parse(s, strlen(s), &ct), ERR_OK);
	CHECK_EQ_STR(ct.boundary, "a b:c?=");
	CHECK_EQ_STR(ct.type, "application/dicom");
	s = "multipart/related";
	CHECK_EQ_INT(mp_ctype_parse(s, strlen(s), &ct), ERR_OK);
	CHECK_EQ_STR(ct.boundary, "");
	memset(b70, 'a', sizeof b70);
	memcpy(b70, "a/b;boundary=", 13);
	b70[13 + 70] = 0;
	CHECK_EQ_INT(mp_ctype_parse(b70, strlen(b70), &ct), ERR_OK);
	CHECK_EQ_INT(strlen(ct.boundary), 70);
	memset(b71, 'a', sizeof b71);
	memcpy(b71, "a/b;boundary=", 13);
	b71[13 + 71] = 0;
	CHECK_EQ_INT(mp_ctype_parse(b71, strlen(b71), &ct), ERR_PARSE);
	{
		static const char *const bads[] = {
			"", "multipart", "/x", "x/", "a/b/c", "a/b; boundary=", "a/b; boundary=\"\"",
			"a/b; boundary=\"x \"", "a/b; boundary=\"unterminated", "a/b; boundary=x; boundary=y",
			"a/b; boundary=x{y}", "a/b junk", "a/b; =x", "a/b; type=", "a/b; boundary=\"a\x01\"",
		};
		size_t i;
		for (i = 0; i < sizeof bads / sizeof bads[0]; i++)
			if (mp_ctype_parse(bads[i], strlen(bads[i]), &ct) != ERR_PARSE) {
				fprintf(stderr, "  accepted: %s\n", bads[i]);
				t_failed_now = 1;
			}
	}
	CHECK(mp_media_is("application/dicom", 17, "application/dicom"));
	CHECK(mp_media_is(" Application/DICOM ; transfer-syntax=*", 39, "application/dicom"));
	CHECK(!mp_media_is("application/dicom+json", 22, "application/dicom"));
	CHECK(!mp_media_is("", 0, "application/dicom"));
}

TEST(writer_round_trip)
{
	uint8_t rnd[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff };
	char b[MP_BOUNDARY_MAX + 1];
	struct wbuf w;
	struct got g;

	mp_boundary_make(rnd, b);
	CHECK_EQ_STR(b, "dv-0102030405060708090a0b0c0d0e0fff");
	wbuf_init(&w, 1 << 16);
	mp_write_part_head(&w, b, "application/dicom", true);
	wbuf_put(&w, "\r\nONE\r\n", 7);
	mp_write_part_head(&w, b, "application/dicom", false);
	wbuf_put(&w, "TWO", 3);
	mp_write_close(&w, b);
	CHECK_EQ_INT(wbuf_err(&w), ERR_OK);
	CHECK_EQ_INT(parse(b, w.p, w.len, NULL, 0, &g, NULL), ERR_OK);
	CHECK_EQ_INT(g.n, 2);
	CHECK(g.body[0].len == 7 && memcmp(g.body[0].p, "\r\nONE\r\n", 7) == 0);
	CHECK(g.body[1].len == 3 && memcmp(g.body[1].p, "TWO", 3) == 0);
	got_fini(&g);
	wbuf_fini(&w);
}

int main(void)
{
	RUN(one_shot);
	RUN(boundary_inside_part_refused);
	RUN(every_chunk_size_and_split);
	RUN(bare_lf);
	RUN(empty_and_binary_bodies);
	RUN(hostile);
	RUN(limits);
	RUN(done_ignores_epilogue);
	RUN(ctype);
	RUN(writer_round_trip);
	return TEST_DONE();
}
