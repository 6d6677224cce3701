/* accept_fuzz.c: libFuzzer target for proto/accept.c (the Accept header of
 * DICOMweb requests, read before anything else of a WADO request). The
 * input is one header value. The target abort()s when a range handed to
 * the callback has a media type that is empty, not lower-case, without a
 * '/', or with a byte under 0x21; a "type" that is not lower-case or holds
 * a control character; a transfer syntax longer than ACCEPT_TS_MAX; or
 * when a range, written back as `media; type="..."; transfer-syntax="...";
 * q=0|1` (quoted, escaped), does not parse to the same range, or when
 * accept_q_of() of that range alone, for the representation it names
 * (no '*' in it), is not its q; or accept_q_of() of the input is over
 * 1000. The first line of the input is also parsed alone as one range.
 * Layer: tests (fuzz). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/accept.h"
#include "dicomvault/wbuf.h"

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "accept_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static void check_text(const char *s, size_t cap, bool fold, bool ctl_ok, const char *what)
{
	const char *e = memchr(s, 0, cap);
	const char *p;

	if (e == NULL)
		die(what, "not NUL-terminated");
	for (p = s; p < e; p++) {
		unsigned char c = (unsigned char)*p;
		if (fold && c >= 'A' && c <= 'Z')
			die(what, "not lower-case");
		if (!ctl_ok && (c < 0x20 || c == 0x7F))
			die(what, "control character");
	}
}

static void quoted(struct wbuf *w, const char *s)
{
	wbuf_putc(w, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			wbuf_putc(w, '\\');
		wbuf_putc(w, *s);
	}
	wbuf_putc(w, '"');
}

static bool each(void *ctx, const struct accept_range *a)
{
	struct accept_range b;
	struct wbuf w;
	const char *p;

	(void)ctx;
	check_text(a->media, sizeof a->media, true, false, "media");
	if (a->media[0] == 0 || strchr(a->media, '/') == NULL)
		die("media", "empty or without '/'");
	for (p = a->media; *p; p++)
		if ((unsigned char)*p < 0x21)
			die("media", "space or control character");
	check_text(a->type, sizeof a->type, true, false, "type");
	check_text(a->ts, sizeof a->ts, false, false, "transfer-syntax");
	if (strlen(a->ts) > ACCEPT_TS_MAX)
		die("transfer-syntax", "too long");
	wbuf_init(&w, 4096);
	wbuf_puts(&w, a->media);
	if (a->type[0]) {
		wbuf_puts(&w, "; type=");
		quoted(&w, a->type);
	}
	if (a->ts[0]) {
		wbuf_puts(&w, "; transfer-syntax=");
		quoted(&w, a->ts);
	}
	wbuf_printf(&w, "; q=%u.%03u", a->q / 1000, a->q % 1000);
	if (wbuf_err(&w) != ERR_OK)
		die("wbuf", NULL);
	if (accept_range_parse((const char *)w.p, w.len, &b) != ERR_OK)
		die("a range written back does not parse", wbuf_cstr(&w));
	if (strcmp(a->media, b.media) != 0 || strcmp(a->type, b.type) != 0 || strcmp(a->ts, b.ts) != 0 ||
	    a->q != b.q)
		die("a range written back parses differently", wbuf_cstr(&w));
	if (strchr(a->media, '*') == NULL && strchr(a->type, '*') == NULL && strchr(a->ts, '*') == NULL &&
	    accept_q_of((const char *)w.p, w.len, a->media, a->type[0] ? a->type : NULL, a->ts[0] ? a->ts : NULL) !=
	        a->q)
		die("the q of a range alone, for what it names, is not its q", wbuf_cstr(&w));
	wbuf_fini(&w);
	return false;   /* see every range */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = memchr(s, '\n', size);
	struct accept_range a;

	if (accept_each(s, size, each, NULL))
		die("accept_each says a callback returned true", NULL);
	if (accept_q_of(s, size, "multipart/related", "application/dicom", "1.2.840.10008.1.2.1") > 1000 ||
	    accept_q_of(s, size, "application/dicom+json", NULL, NULL) > 1000)
		die("a q over 1000", NULL);
	if (accept_range_parse(s, nl ? (size_t)(nl - s) : size, &a) == ERR_OK)
		(void)each(NULL, &a);
	return 0;
}
