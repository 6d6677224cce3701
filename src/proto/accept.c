/* accept.c: media ranges of an HTTP Accept header for DICOMweb content
 * negotiation. Read through struct rd, every byte checked before use;
 * output bounded by the fields' sizes. See accept.h. Layer: proto. */
#include <string.h>
#include "dicomvault/accept.h"
#include "dicomvault/rd.h"

#define NAME_MAX_ 32u   /* a parameter name we care about is shorter */

static int peek(const struct rd *r)
{
	return rd_remaining(r) > 0 ? *rd_cur(r) : -1;
}

static void advance(struct rd *r)
{
	if (rd_skip(r, 1) != ERR_OK)
		r->pos = r->len;
}

static void skip_ows(struct rd *r)
{
	while (peek(r) == ' ' || peek(r) == '\t')
		advance(r);
}

static char lower(int c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : (char)c;
}

/* A token (up to ';', space or tab) or a quoted string into out; false if
 * malformed (an unclosed quote, a control character) or too long. */
static bool value(struct rd *r, char *out, size_t cap, bool fold)
{
	size_t o = 0;
	int c;

	if (peek(r) == '"') {
		advance(r);
		for (;;) {
			c = peek(r);
			if (c < 0)
				return false;
			advance(r);
			if (c == '"')
				break;
			if (c == '\\') {
				c = peek(r);
				if (c < 0)
					return false;
				advance(r);
			}
			if (c < 0x20 || c == 0x7F || o + 1 >= cap)
				return false;
			out[o++] = fold ? lower(c) : (char)c;
		}
	} else {
		while ((c = peek(r)) >= 0 && c != ';' && c != ' ' && c != '\t') {
			if (c < 0x21 || c == 0x7F || c == '"' || o + 1 >= cap)
				return false;
			out[o++] = fold ? lower(c) : (char)c;
			advance(r);
		}
	}
	out[o] = 0;
	return true;
}

/* An RFC 9110 qvalue ("0" ["." 0*3DIGIT] / "1" ["." 0*3("0")]) in
 * thousandths; -1 when it is not one. */
static int qvalue(const char *v)
{
	int q, scale = 100;
	size_t i;

	if (v[0] != '0' && v[0] != '1')
		return -1;
	q = v[0] == '1' ? 1000 : 0;
	if (v[1] == 0)
		return q;
	if (v[1] != '.')
		return -1;
	for (i = 2; v[i] != 0; i++) {
		if (i > 4 || v[i] < '0' || v[i] > '9')
			return -1;
		q += (v[i] - '0') * scale;
		scale /= 10;
	}
	return q > 1000 ? -1 : q;
}

enum err accept_range_parse(const char *s, size_t n, struct accept_range *out)
{
	struct accept_range a;
	struct rd r;
	size_t o = 0;
	int c;

	memset(&a, 0, sizeof a);
	a.q = 1000;
	rd_init(&r, s, n);
	skip_ows(&r);
	while ((c = peek(&r)) >= 0 && c != ';' && c != ' ' && c != '\t') {
		if (c < 0x21 || c == 0x7F || c == '"' || c == ',' || o + 1 >= sizeof a.media)
			return ERR_PARSE;
		a.media[o++] = lower(c);
		advance(&r);
	}
	if (o < 3 || strchr(a.media, '/') == NULL || a.media[0] == '/' || a.media[o - 1] == '/')
		return ERR_PARSE;
	for (;;) {
		char name[NAME_MAX_], val[MP_MEDIA_MAX + 1];
		size_t k = 0;
		skip_ows(&r);
		if (peek(&r) < 0)
			break;
		if (peek(&r) != ';')
			return ERR_PARSE;
		advance(&r);
		skip_ows(&r);
		if (peek(&r) < 0)
			break;   /* a trailing ';' */
		while ((c = peek(&r)) >= 0 && c != '=' && c != ';' && c != ' ' && c != '\t') {
			if (c < 0x21 || c == 0x7F || k + 1 >= sizeof name)
				return ERR_PARSE;
			name[k++] = lower(c);
			advance(&r);
		}
		name[k] = 0;
		skip_ows(&r);
		if (k == 0 || peek(&r) != '=')
			return ERR_PARSE;
		advance(&r);
		skip_ows(&r);
		if (!value(&r, val, sizeof val, strcmp(name, "transfer-syntax") != 0))
			return ERR_PARSE;
		if (strcmp(name, "type") == 0) {
			memcpy(a.type, val, strlen(val) + 1);
		} else if (strcmp(name, "transfer-syntax") == 0) {
			if (strlen(val) > ACCEPT_TS_MAX)
				memcpy(a.ts, "?", 2);   /* names no transfer syntax we have */
			else
				memcpy(a.ts, val, strlen(val) + 1);
		} else if (strcmp(name, "q") == 0) {
			int q = qvalue(val);
			if (q < 0)
				return ERR_PARSE;
			a.q = (unsigned)q;
		}
	}
	*out = a;
	return ERR_OK;
}

/* Calls visit on each well-formed range of the first ACCEPT_MAX_RANGES of
 * h in the order given, until it returns true. */
static bool walk(const char *h, size_t n, bool (*visit)(void *ctx, const struct accept_range *a), void *ctx)
{
	struct accept_range a;
	struct rd r;
	unsigned seen = 0;

	rd_init(&r, h, n);
	while (rd_remaining(&r) > 0 && seen++ < ACCEPT_MAX_RANGES) {
		size_t start = r.pos;
		bool quoted = false;
		int c;
		/* a comma inside a quoted string does not end the range */
		while ((c = peek(&r)) >= 0 && (quoted || c != ',')) {
			advance(&r);
			if (c == '"')
				quoted = !quoted;
			else if (c == '\\' && quoted && peek(&r) >= 0)
				advance(&r);
		}
		if (accept_range_parse(h + start, r.pos - start, &a) == ERR_OK && visit(ctx, &a))
			return true;
		if (peek(&r) == ',')
			advance(&r);
	}
	return false;
}

/* The distinct q values of a header, highest first. */
struct levels {
	unsigned q[ACCEPT_Q_LEVELS];
	size_t n;
	bool more;                 /* lower ones were left out */
};

static bool level_note(void *ctx, const struct accept_range *a)
{
	struct levels *l = ctx;
	size_t i, j;

	for (i = 0; i < l->n && l->q[i] > a->q; i++)
		;
	if (i < l->n && l->q[i] == a->q)
		return false;
	if (l->n == ACCEPT_Q_LEVELS) {
		l->more = true;
		if (i == l->n)
			return false;
		l->n--;   /* the lowest makes room */
	}
	for (j = l->n; j > i; j--)
		l->q[j] = l->q[j - 1];
	l->q[i] = a->q;
	l->n++;
	return false;
}

/* fn on the ranges whose q is in [lo, hi]. */
struct band {
	unsigned lo, hi;
	bool (*fn)(void *ctx, const struct accept_range *a);
	void *ctx;
};

static bool band_visit(void *ctx, const struct accept_range *a)
{
	struct band *b = ctx;

	return a->q >= b->lo && a->q <= b->hi && b->fn(b->ctx, a);
}

bool accept_each(const char *h, size_t n, bool (*fn)(void *ctx, const struct accept_range *a), void *ctx)
{
	struct accept_range a;
	struct levels l;
	struct band b;
	size_t i;

	for (i = 0; i < n && (h[i] == ' ' || h[i] == '\t'); i++)
		;
	if (i == n) {
		memset(&a, 0, sizeof a);
		memcpy(a.media, "*/*", 4);
		a.q = 1000;
		return fn(ctx, &a);
	}
	memset(&l, 0, sizeof l);
	(void)walk(h, n, level_note, &l);
	b.fn = fn;
	b.ctx = ctx;
	for (i = 0; i < l.n; i++) {
		b.lo = b.hi = l.q[i];
		if (walk(h, n, band_visit, &b))
			return true;
	}
	if (l.more && l.n > 0) {
		b.lo = 0;
		b.hi = l.q[l.n - 1] - 1;
		return walk(h, n, band_visit, &b);
	}
	return false;
}

/* ---- the q of one representation ---- */

struct qof {
	const char *media, *type, *ts;
	int best;          /* specificity of the best match so far; -1: none */
	unsigned q;
};

/* How specifically a matches the representation; -1 when it does not. */
static int specificity(const struct qof *w, const struct accept_range *a)
{
	const char *slash = strchr(w->media, '/');
	size_t tl = slash ? (size_t)(slash - w->media) : strlen(w->media);
	int s;

	if (strcmp(a->media, w->media) == 0)
		s = 16;
	else if (strncmp(a->media, w->media, tl) == 0 && strcmp(a->media + tl, "/*") == 0)
		s = 8;
	else if (strcmp(a->media, "*/*") == 0)
		s = 0;
	else
		return -1;
	if (a->type[0] && strcmp(a->type, "*/*") != 0) {
		size_t k = strlen(a->type);
		if (w->type == NULL)
			return -1;
		if (strcmp(a->type, w->type) == 0)
			s += 4;
		else if (k >= 2 && strcmp(a->type + k - 2, "/*") == 0 && strncmp(a->type, w->type, k - 1) == 0)
			s += 2;   /* a type of "image/ *" takes image/jpeg, less specifically */
		else
			return -1;
	}
	if (a->ts[0] && strcmp(a->ts, "*") != 0) {
		if (w->ts == NULL || strcmp(a->ts, w->ts) != 0)
			return -1;
		s += 1;
	}
	return s;
}

static bool qof_visit(void *ctx, const struct accept_range *a)
{
	struct qof *w = ctx;
	int s = specificity(w, a);

	if (s > w->best || (s == w->best && s >= 0 && a->q > w->q)) {
		w->best = s;
		w->q = a->q;
	}
	return false;   /* every range is looked at */
}

unsigned accept_q_of(const char *h, size_t n, const char *media, const char *type, const char *ts)
{
	struct qof w;
	size_t i;

	for (i = 0; i < n && (h[i] == ' ' || h[i] == '\t'); i++)
		;
	if (i == n)
		return 1000;
	w.media = media;
	w.type = type;
	w.ts = ts;
	w.best = -1;
	w.q = 0;
	(void)walk(h, n, qof_visit, &w);
	return w.best < 0 ? 0 : w.q;
}
