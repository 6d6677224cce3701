/* json_read.c: DICOM JSON (PS3.18 F.2) to a data set, the inverse of
 * json_write.c. Jansson checks the JSON syntax; this file checks the DICOM
 * model (keys, VRs, value types and ranges), encodes numbers little endian,
 * decodes InlineBinary and converts text from UTF-8 to the data set's
 * Specific Character Set. Layer: dicom. */
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/b64.h"
#include "dicomvault/charset.h"
#include "dicomvault/json.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

/* Limits that belong in limits.h; defined here until they move there.
 * JSON_MAX_VALUE: bytes of one element's value (all its values together).
 * jansson builds the whole tree first, at about 40 bytes per number or
 * string and 230 per object, so the count of JSON values (keys included)
 * and of objects/arrays is capped before it runs: a 256 MiB input would
 * otherwise cost up to 20 GB. A data set of DCM_MAX_ELEMENTS elements needs
 * about 7 values and 2 containers per element. */
#ifndef JSON_MAX_VALUE
#define JSON_MAX_VALUE      (64u * 1024 * 1024)
#endif
#ifndef JSON_MAX_NODES
#define JSON_MAX_NODES      (16u * 1024 * 1024)
#endif
#ifndef JSON_MAX_CONTAINERS
#define JSON_MAX_CONTAINERS (4u * 1024 * 1024)
#endif

/* Where a number token is in the JSON text. */
struct span {
	uint32_t off, len;
};

/* A number node of the jansson tree and its text. */
struct numref {
	const json_t *node;
	uint32_t off, len;
};

/* The Specific Character Set that applies to a data set. */
struct scope {
	bool declared;           /* some (0008,0005) applies */
	bool known;              /* ... and charset_parse() understood it */
	struct dcm_charset cs;
	char term[48];           /* its value, for messages */
};

struct member {
	uint32_t tag;
	json_t *v;
};

struct jr {
	const uint8_t *in;
	size_t inlen;
	struct dcm_file *f;
	struct dcm_errinfo *ei;
	struct span *spans;      /* every number token, in document order */
	size_t nspans, capspans;
	struct numref *nums;     /* sorted by node; NULL if the map failed */
	size_t nnums;
	uint32_t nelems;
	bool need_utf8;          /* non-ASCII text outside any (0008,0005) */
	struct {
		uint32_t tag;
		long item;       /* item index inside tag, -1 if none */
	} path[DCM_MAX_DEPTH + 2];
	unsigned depth;          /* entries of path in use */
	struct wbuf val;         /* the value being built */
	struct wbuf conv;        /* the value in the target character set */
};

/* ---- messages ---- */

/* Peer text for a message: printable ASCII only, shortened. */
static const char *clean(const char *s, size_t n, char *buf, size_t cap)
{
	size_t i, k = 0;

	for (i = 0; i < n && k + 4 < cap; i++)
		buf[k++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') ? s[i] : '?';
	if (i < n && k + 3 < cap) {
		memcpy(buf + k, "...", 3);
		k += 3;
	}
	buf[k] = 0;
	return buf;
}

static void put_msg(char *buf, size_t cap, size_t *n, const char *fmt, ...) PRINTF_LIKE(4, 5);

static void put_msg(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*n + 1 >= cap)
		return;
	va_start(ap, fmt);
	k = vsnprintf(buf + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	*n += (size_t)k;
	if (*n >= cap)
		*n = cap - 1;
}

/* "(0008,1115)[0](0008,1150)" */
static void put_path(const struct jr *j, char *buf, size_t cap, size_t *n)
{
	unsigned i;

	for (i = 0; i < j->depth; i++) {
		put_msg(buf, cap, n, "(%04X,%04X)", TAG_GROUP(j->path[i].tag), TAG_ELEM(j->path[i].tag));
		if (j->path[i].item >= 0)
			put_msg(buf, cap, n, "[%ld]", j->path[i].item);
	}
}

static enum err fail(struct jr *j, enum err rc, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* A semantic error: offset 0, the tag path leads the message. */
static enum err fail(struct jr *j, enum err rc, const char *fmt, ...)
{
	struct dcm_errinfo *ei = j->ei;
	va_list ap;
	size_t n = 0;

	if (ei == NULL)
		return rc;
	ei->offset = 0;
	ei->inflated = false;
	ei->msg[0] = 0;
	put_path(j, ei->msg, sizeof ei->msg, &n);
	if (n > 0)
		put_msg(ei->msg, sizeof ei->msg, &n, ": ");
	if (n + 1 < sizeof ei->msg) {
		va_start(ap, fmt);
		vsnprintf(ei->msg + n, sizeof ei->msg - n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void warn_bulk(struct jr *j)
{
	struct dcm_errinfo *w = &j->f->warn;
	size_t n = 0;

	if (j->f->nwarn++ > 0)
		return;
	w->offset = 0;
	w->inflated = false;
	w->msg[0] = 0;
	put_msg(w->msg, sizeof w->msg, &n, "BulkDataURI not resolved for ");
	put_path(j, w->msg, sizeof w->msg, &n);
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static const char *vrs(uint16_t vr, char buf[3]) { return vr_name(vr, buf); }

/* ---- before and around jansson ---- */

static enum err add_span(struct jr *j, size_t off, size_t len)
{
	if (j->nspans == j->capspans) {
		size_t ncap = j->capspans ? j->capspans * 2 : 256, bytes;
		struct span *ns;
		if (size_mul(ncap, sizeof *ns, &bytes) != ERR_OK)
			return ERR_NOMEM;
		ns = realloc(j->spans, bytes);
		if (ns == NULL)
			return ERR_NOMEM;
		j->spans = ns;
		j->capspans = ncap;
	}
	j->spans[j->nspans].off = (uint32_t)off;
	j->spans[j->nspans].len = (uint32_t)len;
	j->nspans++;
	return ERR_OK;
}

static bool num_char(uint8_t c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static enum err too_big(struct jr *j, size_t off, const char *what, unsigned max)
{
	enum err rc = fail(j, ERR_LIMIT, "JSON %s more than %u", what, max);

	if (j->ei != NULL)
		j->ei->offset = off;
	return rc;
}

/* A lexical pass before jansson: caps the nesting depth (jansson's own cap
 * is 2048) and the number of values, and notes where each number token is,
 * so that IS and DS values keep their exact text ("5.000000" stays as
 * written). */
static enum err prescan(struct jr *j)
{
	const uint8_t *p = j->in;
	size_t i = 0, n = j->inlen, nodes = 0, containers = 0;
	unsigned depth = 0;
	enum err rc;

	while (i < n) {
		uint8_t c = p[i];
		if (c == '"' || c == '{' || c == '[' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))
			if (++nodes > JSON_MAX_NODES)
				return too_big(j, i, "values (keys included):", JSON_MAX_NODES);
		if (c == '"') {
			i++;
			while (i < n && p[i] != '"')
				i += p[i] == '\\' ? 2 : 1;
			i++;
		} else if (c == '{' || c == '[') {
			if (++depth > JSON_MAX_DEPTH)
				return too_big(j, i, "nesting levels:", JSON_MAX_DEPTH);
			if (++containers > JSON_MAX_CONTAINERS)
				return too_big(j, i, "objects and arrays:", JSON_MAX_CONTAINERS);
			i++;
		} else if (c == '}' || c == ']') {
			if (depth > 0)
				depth--;
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = i;
			while (i < n && num_char(p[i]))
				i++;
			rc = add_span(j, start, i - start);
			if (rc != ERR_OK)
				return fail(j, rc, "out of memory");
		} else if (c >= 'a' && c <= 'z') {
			while (i < n && p[i] >= 'a' && p[i] <= 'z')  /* true, false, null */
				i++;
		} else {
			i++;
		}
	}
	return ERR_OK;
}

static bool span_is_real(const struct jr *j, const struct span *s)
{
	uint32_t i;

	for (i = 0; i < s->len; i++) {
		uint8_t c = j->in[s->off + i];
		if (c == '.' || c == 'e' || c == 'E')
			return true;
	}
	return false;
}

/* Pairs the number nodes, visited in document order (jansson keeps the
 * order of object members), with the tokens of prescan(). */
static void collect(struct jr *j, json_t *v, size_t *k, bool *ok)
{
	size_t i;
	void *it;

	if (!*ok)
		return;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		for (it = json_object_iter(v); it != NULL && *ok; it = json_object_iter_next(v, it))
			collect(j, json_object_iter_value(it), k, ok);
		break;
	case JSON_ARRAY:
		for (i = 0; i < json_array_size(v) && *ok; i++)
			collect(j, json_array_get(v, i), k, ok);
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		if (*k >= j->nspans || span_is_real(j, &j->spans[*k]) != json_is_real(v)) {
			*ok = false;
			return;
		}
		j->nums[*k].node = v;
		j->nums[*k].off = j->spans[*k].off;
		j->nums[*k].len = j->spans[*k].len;
		(*k)++;
		break;
	default:
		break;
	}
}

static int numref_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct numref *)a)->node;
	uintptr_t y = (uintptr_t)((const struct numref *)b)->node;

	return x < y ? -1 : x > y;
}

/* If the pairing fails (it should not), numbers are formatted instead. */
static enum err index_numbers(struct jr *j, json_t *root)
{
	size_t k = 0, bytes;
	bool ok = true;

	if (j->nspans == 0)
		return ERR_OK;
	if (size_mul(j->nspans, sizeof *j->nums, &bytes) != ERR_OK)
		return fail(j, ERR_NOMEM, "out of memory");
	j->nums = malloc(bytes);
	if (j->nums == NULL)
		return fail(j, ERR_NOMEM, "out of memory");
	collect(j, root, &k, &ok);
	if (!ok || k != j->nspans) {
		free(j->nums);
		j->nums = NULL;
		return ERR_OK;
	}
	j->nnums = k;
	qsort(j->nums, k, sizeof *j->nums, numref_cmp);
	return ERR_OK;
}

/* The text of a number as written in the JSON, NULL if unknown. */
static const struct numref *num_text(const struct jr *j, const json_t *v)
{
	struct numref key;

	if (j->nums == NULL)
		return NULL;
	key.node = v;
	return bsearch(&key, j->nums, j->nnums, sizeof *j->nums, numref_cmp);
}

static enum err syntax_error(struct jr *j, const json_error_t *je)
{
	enum err rc = ERR_PARSE;
	char text[JSON_ERROR_TEXT_LENGTH];
	char *near;

	switch (json_error_code(je)) {
	case json_error_out_of_memory: rc = ERR_NOMEM; break;
	case json_error_stack_overflow: rc = ERR_LIMIT; break;
	default: break;
	}
	/* jansson quotes the input after " near "; peer bytes stay out */
	memcpy(text, je->text, sizeof text);
	text[sizeof text - 1] = 0;
	near = strstr(text, " near ");
	if (near != NULL)
		*near = 0;
	if (json_error_code(je) == json_error_null_character)
		snprintf(text, sizeof text, "a string contains \\u0000 (NUL)");
	else if (json_error_code(je) == json_error_numeric_overflow)
		snprintf(text, sizeof text, "number out of range (SV/UV values beyond 64 bits signed go as strings)");
	j->depth = 0;
	fail(j, rc, "JSON syntax error at line %d, column %d: %s", je->line, je->column, text);
	if (j->ei != NULL && je->position > 0)
		j->ei->offset = (uint64_t)je->position;
	return rc;
}

/* ---- values ---- */

static enum err set(struct jr *j, struct dcm_ds *ds, uint32_t tag, uint16_t vr, const void *p, size_t n)
{
	enum err rc = dcm_ds_set(ds, tag, vr, n ? p : NULL, n);

	if (rc != ERR_OK)
		return fail(j, rc, "cannot store a value of %zu bytes: %s", n, err_str(rc));
	return ERR_OK;
}

static enum err val_err(struct jr *j)
{
	enum err rc = wbuf_err(&j->val);

	if (rc == ERR_LIMIT)
		return fail(j, rc, "value longer than %u bytes", JSON_MAX_VALUE);
	if (rc != ERR_OK)
		return fail(j, rc, "cannot build the value: %s", err_str(rc));
	return ERR_OK;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* "GGGGEEEE", 8 hex digits of either case. */
static bool parse_tag(const char *s, size_t n, uint32_t *tag)
{
	uint32_t v = 0;
	size_t i;

	if (n != 8)
		return false;
	for (i = 0; i < 8; i++) {
		char c = s[i];
		if (!is_hex(c))
			return false;
		v = (v << 4) | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	*tag = v;
	return true;
}

static bool has_non_ascii(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

/* A string entry of a Value array: no NUL, and no backslash unless the VR
 * holds one value only. */
static enum err check_text(struct jr *j, uint16_t vr, size_t idx, const char *s, size_t n)
{
	char vb[3];

	if (memchr(s, 0, n) != NULL)
		return fail(j, ERR_PARSE, "value %zu contains a NUL character", idx);
	if (!vr_is_single_text(vr) && memchr(s, '\\', n) != NULL)
		return fail(j, ERR_PARSE, "value %zu of a multi-valued %s contains a backslash", idx, vrs(vr, vb));
	return ERR_OK;
}

/* The shortest "%.Ng" that reads back as d, cut to the 16 characters of
 * a DS if it is longer. Only used if a number's text is unknown. */
static void format_ds(double d, char *buf, size_t cap)
{
	int prec, k = 0;

	for (prec = 1; prec <= 17; prec++) {
		k = snprintf(buf, cap, "%.*g", prec, d);
		if (k < 0 || (size_t)k >= cap || strtod(buf, NULL) == d)
			break;
	}
	while (k > 16 && prec > 1) {
		prec--;
		k = snprintf(buf, cap, "%.*g", prec, d);
	}
	if (k < 0 || (size_t)k >= cap)
		snprintf(buf, cap, "0");
}

/* One IS or DS entry: a number keeps its JSON text; a string must hold a
 * number; null or "" is an empty value. */
static enum err put_decimal(struct jr *j, uint16_t vr, size_t idx, const json_t *x)
{
	char vb[3], buf[40];
	bool is = vr == VR_IS;

	if (json_is_string(x)) {
		const char *s = json_string_value(x);
		size_t n = json_string_length(x);
		while (n > 0 && s[n - 1] == ' ')
			n--;
		while (n > 0 && s[0] == ' ') {
			s++;
			n--;
		}
		if (n > 0 && !vr_decimal_ok(s, n, is))
			return fail(j, ERR_PARSE, "value %zu of %s: the string \"%s\" is not %s", idx, vrs(vr, vb),
			            clean(s, n, buf, sizeof buf), is ? "an integer" : "a decimal number");
		wbuf_put(&j->val, s, n);
		return ERR_OK;
	}
	if (json_is_number(x)) {
		const struct numref *t = num_text(j, x);
		if (is && json_is_real(x)) {
			double d = json_real_value(x);
			if (d != floor(d) || fabs(d) >= 0x1p63)
				return fail(j, ERR_PARSE, "value %zu of IS: %.17g is not an integer", idx, d);
		}
		if (t != NULL) {
			wbuf_put(&j->val, j->in + t->off, t->len);
		} else if (json_is_integer(x)) {
			wbuf_printf(&j->val, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
		} else if (is) {
			wbuf_printf(&j->val, "%lld", (long long)json_real_value(x));
		} else {
			format_ds(json_real_value(x), buf, sizeof buf);
			wbuf_puts(&j->val, buf);
		}
		return ERR_OK;
	}
	return fail(j, ERR_PARSE, "value %zu of %s: expected a number, got %s", idx, vrs(vr, vb), type_name(x));
}

/* One PN entry: {"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...}
 * joined with '=', trailing empty groups dropped. */
static enum err put_pn(struct jr *j, size_t idx, json_t *x)
{
	static const char *names[3] = { "Alphabetic", "Ideographic", "Phonetic" };
	const char *gs[3] = { NULL, NULL, NULL };
	size_t gn[3] = { 0, 0, 0 };
	char kb[40];
	void *it;
	int g, last = -1;
	enum err rc;

	if (!json_is_object(x))
		return fail(j, ERR_PARSE, "value %zu of PN: expected an object, got %s", idx, type_name(x));
	for (it = json_object_iter(x); it != NULL; it = json_object_iter_next(x, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		json_t *v = json_object_iter_value(it);
		for (g = 0; g < 3; g++)
			if (klen == strlen(names[g]) && memcmp(key, names[g], klen) == 0)
				break;
		if (g == 3)
			return fail(j, ERR_PARSE, "value %zu of PN: unknown component group \"%s\"", idx,
			            clean(key, klen, kb, sizeof kb));
		if (json_is_null(v))
			continue;
		if (!json_is_string(v))
			return fail(j, ERR_PARSE, "value %zu of PN: %s is %s, expected a string", idx, names[g], type_name(v));
		gs[g] = json_string_value(v);
		gn[g] = json_string_length(v);
		rc = check_text(j, VR_PN, idx, gs[g], gn[g]);
		if (rc != ERR_OK)
			return rc;
		if (memchr(gs[g], '=', gn[g]) != NULL)
			return fail(j, ERR_PARSE, "value %zu of PN: %s contains '='", idx, names[g]);
		if (gn[g] > 0 && g > last)
			last = g;
	}
	for (g = 0; g <= last; g++) {
		if (g > 0)
			wbuf_putc(&j->val, '=');
		if (gn[g] > 0)
			wbuf_put(&j->val, gs[g], gn[g]);
	}
	return ERR_OK;
}

/* Text in UTF-8 (j->val) to the character set in scope. */
static enum err encode_text(struct jr *j, uint16_t vr, const struct scope *sc, const uint8_t **p, size_t *n)
{
	enum err rc;

	*p = j->val.p;
	*n = j->val.len;
	if (!vr_uses_charset(vr) || !has_non_ascii(j->val.p, j->val.len))
		return ERR_OK;
	if (!sc->declared) {
		j->need_utf8 = true;  /* (0008,0005) "ISO_IR 192" is added at the end */
		return ERR_OK;
	}
	if (!sc->known)
		return fail(j, ERR_UNSUPPORTED, "non-ASCII text, but Specific Character Set \"%s\" is not supported",
		            sc->term);
	wbuf_reset(&j->conv);
	rc = charset_from_utf8(&sc->cs, vr == VR_PN, j->val.p, j->val.len, &j->conv);
	if (rc == ERR_UNSUPPORTED || rc == ERR_PARSE)
		return fail(j, ERR_PARSE, "text cannot be represented in Specific Character Set \"%s\"", sc->term);
	if (rc != ERR_OK)
		return fail(j, rc, "cannot convert text to \"%s\": %s", sc->term, err_str(rc));
	*p = j->conv.p;
	*n = j->conv.len;
	return ERR_OK;
}

static enum err read_strings(struct jr *j, struct dcm_ds *ds, uint32_t tag, uint16_t vr, json_t *arr,
                             const struct scope *sc)
{
	size_t n = json_array_size(arr), i, len;
	const uint8_t *p;
	char vb[3];
	enum err rc;

	if (n > DCM_MAX_STRING_VM)
		return fail(j, ERR_LIMIT, "%zu values, more than %u", n, DCM_MAX_STRING_VM);
	if (vr_is_single_text(vr) && n > 1)
		return fail(j, ERR_PARSE, "%s holds one value, Value has %zu", vrs(vr, vb), n);
	wbuf_reset(&j->val);
	for (i = 0; i < n; i++) {
		json_t *x = json_array_get(arr, i);
		if (i > 0)
			wbuf_putc(&j->val, '\\');
		if (json_is_null(x)) {
			rc = ERR_OK;
		} else if (vr == VR_PN) {
			rc = put_pn(j, i, x);
		} else if (vr == VR_IS || vr == VR_DS) {
			rc = put_decimal(j, vr, i, x);
		} else if (json_is_string(x)) {
			rc = check_text(j, vr, i, json_string_value(x), json_string_length(x));
			if (rc == ERR_OK)
				wbuf_put(&j->val, json_string_value(x), json_string_length(x));
		} else {
			rc = fail(j, ERR_PARSE, "value %zu of %s: expected a string, got %s", i, vrs(vr, vb), type_name(x));
		}
		if (rc != ERR_OK)
			return rc;
		rc = val_err(j);
		if (rc != ERR_OK)
			return rc;
	}
	rc = encode_text(j, vr, sc, &p, &len);
	if (rc != ERR_OK)
		return rc;
	return set(j, ds, tag, vr, p, len);
}

/* An integer entry of a binary VR in [lo, hi]. */
static enum err get_int(struct jr *j, uint16_t vr, size_t idx, const json_t *x, long long lo, long long hi,
                        long long *out)
{
	char vb[3];
	long long v;

	if (json_is_integer(x)) {
		v = json_integer_value(x);
	} else if (json_is_real(x)) {
		double d = json_real_value(x);
		if (d != floor(d) || fabs(d) > 0x1p53)
			return fail(j, ERR_PARSE, "%s value %.17g is not an integer", vrs(vr, vb), d);
		v = (long long)d;
	} else {
		return fail(j, ERR_PARSE, "value %zu of %s: expected a number, got %s", idx, vrs(vr, vb), type_name(x));
	}
	if (v < lo || v > hi)
		return fail(j, ERR_PARSE, "%s value %lld out of range", vrs(vr, vb), v);
	*out = v;
	return ERR_OK;
}

/* SV and UV: a number, or (PS3.18 F.2.3.1) a string of decimal digits. */
static enum err get_64(struct jr *j, uint16_t vr, size_t idx, const json_t *x, uint64_t *out)
{
	char vb[3], buf[32];
	long long v;
	enum err rc;

	if (json_is_string(x)) {
		const char *s = json_string_value(x);
		size_t n = json_string_length(x), i = 0;
		char *end;
		if (vr == VR_SV && n > 0 && s[0] == '-')
			i = 1;
		if (n == i || n >= sizeof buf)
			goto bad;
		for (; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				goto bad;
		memcpy(buf, s, n);
		buf[n] = 0;
		errno = 0;
		if (vr == VR_SV) {
			long long sv = strtoll(buf, &end, 10);
			*out = (uint64_t)sv;
		} else {
			*out = (uint64_t)strtoull(buf, &end, 10);
		}
		if (errno == ERANGE || *end != 0)
			return fail(j, ERR_PARSE, "%s value \"%s\" out of range", vrs(vr, vb), buf);
		return ERR_OK;
bad:
		return fail(j, ERR_PARSE, "value %zu of %s: the string \"%s\" is not an integer", idx, vrs(vr, vb),
		            clean(s, n, buf, sizeof buf));
	}
	rc = get_int(j, vr, idx, x, vr == VR_UV ? 0 : INT64_MIN, INT64_MAX, &v);
	if (rc == ERR_OK)
		*out = (uint64_t)v;
	return rc;
}

/* FL and FD: a number, or the strings the writer uses for non-finite values. */
static enum err get_float(struct jr *j, uint16_t vr, size_t idx, const json_t *x, double *out)
{
	char vb[3];

	if (json_is_number(x)) {
		const struct numref *t = num_text(j, x);
		*out = json_number_value(x);
		/* "-0" is the integer 0 to jansson; FL/FD keep the sign */
		if (json_is_integer(x) && *out == 0 && t != NULL && t->len > 0 && j->in[t->off] == '-')
			*out = -0.0;
	} else if (json_is_string(x)) {
		const char *s = json_string_value(x);
		if (strcmp(s, "NaN") == 0)
			*out = NAN;
		else if (strcmp(s, "Infinity") == 0)
			*out = INFINITY;
		else if (strcmp(s, "-Infinity") == 0)
			*out = -INFINITY;
		else
			return fail(j, ERR_PARSE, "value %zu of %s: expected a number, got a string", idx, vrs(vr, vb));
	} else {
		return fail(j, ERR_PARSE, "value %zu of %s: expected a number, got %s", idx, vrs(vr, vb), type_name(x));
	}
	return ERR_OK;
}

/* US SS UL SL FL FD SV UV AT: little-endian binary values. */
static enum err read_binary(struct jr *j, struct dcm_ds *ds, uint32_t tag, uint16_t vr, json_t *arr)
{
	size_t n = json_array_size(arr), i;
	unsigned sz = vr_fixed_size(vr);
	char vb[3];
	enum err rc;

	if (sz == 0)
		return fail(j, ERR_INTERNAL, "no size for %s", vrs(vr, vb));
	if (n > JSON_MAX_VALUE / sz)
		return fail(j, ERR_LIMIT, "value longer than %u bytes", JSON_MAX_VALUE);
	wbuf_reset(&j->val);
	wbuf_reserve(&j->val, n * sz);
	for (i = 0; i < n; i++) {
		json_t *x = json_array_get(arr, i);
		long long v = 0;
		uint64_t u = 0;
		double d = 0;
		if (json_is_null(x))
			return fail(j, ERR_PARSE, "value %zu of %s is null; a binary VR has no empty values", i, vrs(vr, vb));
		switch (vr) {
		case VR_US:
		case VR_SS:
			rc = get_int(j, vr, i, x, vr == VR_US ? 0 : INT16_MIN, vr == VR_US ? UINT16_MAX : INT16_MAX, &v);
			if (rc != ERR_OK)
				return rc;
			wbuf_put_u16le(&j->val, (uint16_t)v);
			break;
		case VR_UL:
		case VR_SL:
			rc = get_int(j, vr, i, x, vr == VR_UL ? 0 : INT32_MIN, vr == VR_UL ? UINT32_MAX : INT32_MAX, &v);
			if (rc != ERR_OK)
				return rc;
			wbuf_put_u32le(&j->val, (uint32_t)v);
			break;
		case VR_SV:
		case VR_UV:
			rc = get_64(j, vr, i, x, &u);
			if (rc != ERR_OK)
				return rc;
			wbuf_put_u32le(&j->val, (uint32_t)u);
			wbuf_put_u32le(&j->val, (uint32_t)(u >> 32));
			break;
		case VR_FL: {
			float fv;
			uint32_t bits;
			rc = get_float(j, vr, i, x, &d);
			if (rc != ERR_OK)
				return rc;
			if (isfinite(d) && fabs(d) > FLT_MAX) {
				/* beyond half an ulp above FLT_MAX it would round to infinity */
				if (fabs(d) >= (double)FLT_MAX + 0x1p103)
					return fail(j, ERR_PARSE, "FL value %.17g out of range", d);
				fv = d > 0 ? FLT_MAX : -FLT_MAX;
			} else {
				fv = (float)d;
			}
			memcpy(&bits, &fv, 4);
			wbuf_put_u32le(&j->val, bits);
			break;
		}
		case VR_FD:
			rc = get_float(j, vr, i, x, &d);
			if (rc != ERR_OK)
				return rc;
			memcpy(&u, &d, 8);
			wbuf_put_u32le(&j->val, (uint32_t)u);
			wbuf_put_u32le(&j->val, (uint32_t)(u >> 32));
			break;
		case VR_AT: {
			uint32_t at;
			if (!json_is_string(x))
				return fail(j, ERR_PARSE, "value %zu of AT: expected a string, got %s", i, type_name(x));
			if (!parse_tag(json_string_value(x), json_string_length(x), &at)) {
				char buf[24];
				return fail(j, ERR_PARSE, "value %zu of AT: \"%s\" is not GGGGEEEE", i,
				            clean(json_string_value(x), json_string_length(x), buf, sizeof buf));
			}
			wbuf_put_u16le(&j->val, TAG_GROUP(at));
			wbuf_put_u16le(&j->val, TAG_ELEM(at));
			break;
		}
		default:
			return fail(j, ERR_INTERNAL, "unexpected VR %s", vrs(vr, vb));
		}
	}
	rc = val_err(j);
	if (rc != ERR_OK)
		return rc;
	return set(j, ds, tag, vr, j->val.p, j->val.len);
}

/* RFC 4648 base64, standard alphabet, padded; no white space. */
static enum err b64_decode(struct jr *j, const uint8_t *s, size_t n)
{
	size_t i, pad = 0, outlen;

	if (n % 4 != 0)
		return fail(j, ERR_PARSE, "InlineBinary: %zu characters, not a multiple of 4", n);
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	outlen = n / 4 * 3 - pad;
	if (outlen > JSON_MAX_VALUE)
		return fail(j, ERR_LIMIT, "value longer than %u bytes", JSON_MAX_VALUE);
	wbuf_reset(&j->val);
	wbuf_reserve(&j->val, outlen);
	for (i = 0; i < n; i += 4) {
		uint8_t b[3];
		uint32_t w = 0;
		unsigned k, keep = 3;
		for (k = 0; k < 4; k++) {
			int v;
			if (s[i + k] == '=' && i + 4 == n && k >= 4 - pad) {
				v = 0;
			} else {
				v = b64_digit(s[i + k], false);
				if (v < 0)
					return fail(j, ERR_PARSE, "InlineBinary: invalid base64 character at index %zu", i + k);
			}
			w = (w << 6) | (uint32_t)v;
		}
		if (i + 4 == n)
			keep = 3 - (unsigned)pad;
		b[0] = (uint8_t)(w >> 16);
		b[1] = (uint8_t)(w >> 8);
		b[2] = (uint8_t)w;
		wbuf_put(&j->val, b, keep);
	}
	return val_err(j);
}

static enum err read_ds(struct jr *j, json_t *obj, struct dcm_ds *ds, const struct scope *up, unsigned depth);

static enum err read_seq(struct jr *j, struct dcm_ds *ds, uint32_t tag, json_t *val, const struct scope *sc,
                         unsigned depth)
{
	struct dcm_elem *e;
	size_t n, i;
	enum err rc;

	rc = dcm_ds_set_seq(ds, tag, &e);
	if (rc != ERR_OK)
		return fail(j, rc, "cannot add the sequence: %s", err_str(rc));
	if (val == NULL)
		return ERR_OK;
	n = json_array_size(val);
	if (n > DCM_MAX_ITEMS)
		return fail(j, ERR_LIMIT, "%zu items, more than %u", n, DCM_MAX_ITEMS);
	if (n > 0 && depth + 1 > DCM_MAX_DEPTH)
		return fail(j, ERR_LIMIT, "sequences nested deeper than %u", DCM_MAX_DEPTH);
	for (i = 0; i < n; i++) {
		json_t *x = json_array_get(val, i);
		struct dcm_ds *item;
		j->path[j->depth - 1].item = (long)i;
		if (!json_is_object(x))
			return fail(j, ERR_PARSE, "a sequence item must be an object, not %s", type_name(x));
		rc = dcm_seq_add_item(ds, e, &item);
		if (rc != ERR_OK)
			return fail(j, rc, "cannot add an item: %s", err_str(rc));
		rc = read_ds(j, x, item, sc, depth + 1);
		if (rc != ERR_OK)
			return rc;
	}
	j->path[j->depth - 1].item = -1;
	return ERR_OK;
}

static bool key_is(const char *key, size_t klen, const char *name)
{
	return klen == strlen(name) && memcmp(key, name, klen) == 0;
}

/* One attribute object: {"vr": ..., and at most one of "Value",
 * "InlineBinary", "BulkDataURI"}. */
static enum err read_elem(struct jr *j, struct dcm_ds *ds, uint32_t tag, json_t *obj, const struct scope *sc,
                          unsigned depth)
{
	json_t *jvr = NULL, *val = NULL, *inl = NULL, *bulk = NULL;
	uint16_t vr = VR_NONE;
	char vb[3], kb[40];
	void *it;
	enum err rc = ERR_INTERNAL;

	j->path[j->depth].tag = tag;
	j->path[j->depth].item = -1;
	j->depth++;
	if (++j->nelems > DCM_MAX_ELEMENTS) {
		rc = fail(j, ERR_LIMIT, "more than %u elements", DCM_MAX_ELEMENTS);
		goto out;
	}
	if (!json_is_object(obj)) {
		rc = fail(j, ERR_PARSE, "an attribute must be an object, not %s", type_name(obj));
		goto out;
	}
	for (it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		json_t *v = json_object_iter_value(it);
		if (key_is(key, klen, "vr")) {
			jvr = v;
		} else if (key_is(key, klen, "Value")) {
			val = v;
		} else if (key_is(key, klen, "InlineBinary")) {
			inl = v;
		} else if (key_is(key, klen, "BulkDataURI")) {
			bulk = v;
		} else {
			rc = fail(j, ERR_PARSE, "unknown member \"%s\"", clean(key, klen, kb, sizeof kb));
			goto out;
		}
	}
	if (jvr == NULL) {
		rc = fail(j, ERR_PARSE, "missing \"vr\"");
		goto out;
	}
	if (!json_is_string(jvr)) {
		rc = fail(j, ERR_PARSE, "\"vr\" must be a string, not %s", type_name(jvr));
		goto out;
	}
	if (json_string_length(jvr) == 2)
		vr = vr_from_str(json_string_value(jvr));
	if (vr == VR_NONE) {
		rc = fail(j, ERR_PARSE, "unknown VR \"%s\"",
		          clean(json_string_value(jvr), json_string_length(jvr), kb, sizeof kb));
		goto out;
	}
	if ((val != NULL) + (inl != NULL) + (bulk != NULL) > 1) {
		rc = fail(j, ERR_PARSE, "more than one of Value, InlineBinary and BulkDataURI");
		goto out;
	}
	if (val != NULL && !json_is_array(val)) {
		rc = fail(j, ERR_PARSE, "Value must be an array, not %s", type_name(val));
		goto out;
	}
	if (vr == VR_SQ) {
		if (inl != NULL || bulk != NULL)
			rc = fail(j, ERR_PARSE, "a sequence has no %s", inl != NULL ? "InlineBinary" : "BulkDataURI");
		else
			rc = read_seq(j, ds, tag, val, sc, depth);
	} else if (bulk != NULL) {
		if (!json_is_string(bulk)) {
			rc = fail(j, ERR_PARSE, "BulkDataURI must be a string, not %s", type_name(bulk));
			goto out;
		}
		rc = set(j, ds, tag, vr, NULL, 0);
		if (rc == ERR_OK)
			warn_bulk(j);
	} else if (inl != NULL) {
		if (!vr_is_bulk(vr)) {
			rc = fail(j, ERR_PARSE, "InlineBinary is for OB, OD, OF, OL, OV, OW and UN, not %s", vrs(vr, vb));
			goto out;
		}
		if (!json_is_string(inl)) {
			rc = fail(j, ERR_PARSE, "InlineBinary must be a string, not %s", type_name(inl));
			goto out;
		}
		/* Encapsulated Pixel Data arrives as its items (FE FF 00 E0 ...)
		 * and is kept as these bytes, an OB value. */
		rc = b64_decode(j, (const uint8_t *)json_string_value(inl), json_string_length(inl));
		if (rc == ERR_OK)
			rc = set(j, ds, tag, vr, j->val.p, j->val.len);
	} else if (val == NULL || json_array_size(val) == 0) {
		rc = set(j, ds, tag, vr, NULL, 0);
	} else if (vr_is_bulk(vr)) {
		rc = fail(j, ERR_PARSE, "%s takes InlineBinary or BulkDataURI, not Value", vrs(vr, vb));
	} else if (vr_is_string(vr)) {
		rc = read_strings(j, ds, tag, vr, val, sc);
	} else {
		rc = read_binary(j, ds, tag, vr, val);
	}
out:
	if (rc == ERR_OK)
		j->depth--;
	return rc;
}

static int member_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct member *)a)->tag, y = ((const struct member *)b)->tag;

	return x < y ? -1 : x > y;
}

/* The (0008,0005) just stored in ds decides how the rest is encoded. */
static enum err set_scope(struct jr *j, const struct dcm_ds *ds, struct scope *sc)
{
	const struct dcm_elem *e = dcm_ds_find(ds, TAG_SPECIFIC_CHARSET);
	size_t n;

	if (e == NULL)
		return ERR_OK;
	if (e->vr != VR_CS)
		return fail(j, ERR_PARSE, "Specific Character Set (0008,0005) must be CS");
	n = e->len;
	while (n > 0 && (e->val[n - 1] == ' ' || e->val[n - 1] == 0))
		n--;
	memset(sc, 0, sizeof *sc);
	sc->declared = true;
	clean(n ? (const char *)e->val : "", n, sc->term, sizeof sc->term);
	sc->known = charset_parse(n ? e->val : (const uint8_t *)"", n, &sc->cs) == ERR_OK;
	return ERR_OK;
}

/* One data set object: keys "GGGGEEEE", stored in tag order. */
static enum err read_ds(struct jr *j, json_t *obj, struct dcm_ds *ds, const struct scope *up, unsigned depth)
{
	struct member *m = NULL;
	size_t n = json_object_size(obj), i = 0, k, bytes;
	struct scope sc;
	char kb[40];
	void *it;
	enum err rc = ERR_INTERNAL;

	if (up != NULL)
		sc = *up;
	else
		memset(&sc, 0, sizeof sc);
	if (n == 0)
		return ERR_OK;
	if (n > DCM_MAX_ELEMENTS)
		return fail(j, ERR_LIMIT, "more than %u elements", DCM_MAX_ELEMENTS);
	if (size_mul(n, sizeof *m, &bytes) != ERR_OK || (m = malloc(bytes)) == NULL)
		return fail(j, ERR_NOMEM, "out of memory");
	for (it = json_object_iter(obj); it != NULL && i < n; it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		uint32_t tag;
		if (!parse_tag(key, klen, &tag)) {
			rc = fail(j, ERR_PARSE, "bad key \"%s\": expected 8 hex digits GGGGEEEE",
			          clean(key, klen, kb, sizeof kb));
			goto out;
		}
		if (TAG_GROUP(tag) == 0x0002 || TAG_GROUP(tag) == 0xFFFE) {
			rc = fail(j, ERR_PARSE, "key \"%s\": %s is not a data set attribute", clean(key, klen, kb, sizeof kb),
			          TAG_GROUP(tag) == 0x0002 ? "File Meta Information" : "an item or delimiter tag");
			goto out;
		}
		m[i].tag = tag;
		m[i].v = json_object_iter_value(it);
		i++;
	}
	n = i;
	qsort(m, n, sizeof *m, member_cmp);
	for (k = 1; k < n; k++) {
		if (m[k].tag == m[k - 1].tag) {
			rc = fail(j, ERR_PARSE, "duplicate tag (%04X,%04X)", TAG_GROUP(m[k].tag), TAG_ELEM(m[k].tag));
			goto out;
		}
	}
	/* (0008,0005) first: it says how the text of this data set is encoded */
	for (k = 0; k < n && m[k].tag <= TAG_SPECIFIC_CHARSET; k++) {
		if (m[k].tag == TAG_SPECIFIC_CHARSET) {
			rc = read_elem(j, ds, m[k].tag, m[k].v, &sc, depth);
			if (rc == ERR_OK)
				rc = set_scope(j, ds, &sc);
			if (rc != ERR_OK)
				goto out;
		}
	}
	for (k = 0; k < n; k++) {
		if (m[k].tag == TAG_SPECIFIC_CHARSET)
			continue;
		rc = read_elem(j, ds, m[k].tag, m[k].v, &sc, depth);
		if (rc != ERR_OK)
			goto out;
	}
	rc = ERR_OK;
out:
	free(m);
	return rc;
}

enum err dcm_json_read(const uint8_t *json, size_t len, struct dcm_file **out, struct dcm_errinfo *ei)
{
	struct jr j;
	json_error_t je;
	json_t *root = NULL, *top;
	struct dcm_file *f = NULL;
	enum err rc = ERR_INTERNAL;

	memset(&j, 0, sizeof j);
	j.ei = ei;
	wbuf_init(&j.val, JSON_MAX_VALUE);
	wbuf_init(&j.conv, JSON_MAX_VALUE);
	if (ei != NULL)
		memset(ei, 0, sizeof *ei);
	if (json == NULL && len > 0) {
		rc = fail(&j, ERR_INTERNAL, "no input");
		goto out;
	}
	if (len > JSON_MAX_INPUT) {
		rc = fail(&j, ERR_LIMIT, "JSON text of %zu bytes is larger than the limit of %u", len, JSON_MAX_INPUT);
		goto out;
	}
	j.in = json ? json : (const uint8_t *)"";
	j.inlen = len;
	rc = prescan(&j);
	if (rc != ERR_OK)
		goto out;
	root = json_loadb((const char *)j.in, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		rc = syntax_error(&j, &je);
		goto out;
	}
	rc = index_numbers(&j, root);
	if (rc != ERR_OK)
		goto out;
	top = root;
	if (json_is_array(root)) {
		if (json_array_size(root) != 1) {
			rc = fail(&j, ERR_PARSE, "a top-level array must hold exactly one data set, not %zu",
			          json_array_size(root));
			goto out;
		}
		top = json_array_get(root, 0);
	}
	if (!json_is_object(top)) {
		rc = fail(&j, ERR_PARSE, "expected a DICOM JSON object, got %s", type_name(top));
		goto out;
	}
	rc = dcm_file_new(&f);
	if (rc != ERR_OK) {
		rc = fail(&j, rc, "out of memory");
		goto out;
	}
	j.f = f;
	rc = read_ds(&j, top, &f->ds, NULL, 0);
	if (rc != ERR_OK)
		goto out;
	if (j.need_utf8 && dcm_ds_find(&f->ds, TAG_SPECIFIC_CHARSET) == NULL) {
		rc = set(&j, &f->ds, TAG_SPECIFIC_CHARSET, VR_CS, "ISO_IR 192", 10);
		if (rc != ERR_OK)
			goto out;
	}
	f->nelems = j.nelems;
	*out = f;
	f = NULL;
	rc = ERR_OK;
out:
	dcm_file_free(f);
	json_decref(root);
	free(j.nums);
	free(j.spans);
	wbuf_fini(&j.conv);
	wbuf_fini(&j.val);
	return rc;
}
