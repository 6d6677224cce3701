/* qido.c: QIDO-RS query parameters into an identifier (qido.h). Values are
 * data only: they go into the identifier's elements, never into any
 * query text. Layer: proto. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "dicomvault/dict.h"
#include "dicomvault/qido.h"

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static unsigned hexval(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : c <= 'F' ? (unsigned)(c - 'A' + 10) : (unsigned)(c - 'a' + 10);
}

uint32_t qido_attr(const char *s, size_t n)
{
	const struct dict_entry *d;
	uint32_t tag = 0;
	size_t i;
	bool hex = n == 8;

	for (i = 0; hex && i < n; i++)
		hex = is_hex(s[i]);
	if (hex) {
		for (i = 0; i < n; i++)
			tag = (tag << 4) | hexval(s[i]);
		if (TAG_IS_PRIVATE(tag) || TAG_GROUP(tag) == 0x0002 || TAG_GROUP(tag) == 0xFFFE || TAG_ELEM(tag) == 0)
			return 0;
		d = dict_lookup(tag);
		return d != NULL && d->vr != VR_NONE ? tag : 0;
	}
	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)   /* keywords are letters and digits */
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	d = dict_lookup_keyword(s, n);
	if (d == NULL || d->mask != 0xFFFFFFFFu || d->vr == VR_NONE || TAG_GROUP(d->tag) == 0x0002)
		return 0;
	return d->tag;
}

static bool name_is(const struct qido_arg *a, const char *lit)
{
	return a->klen == strlen(lit) && memcmp(a->key, lit, a->klen) == 0;
}

/* ABNF literals ("true", "false") are case-insensitive (RFC 5234 2.3). */
static bool value_is(const struct qido_arg *a, const char *lit)
{
	return a->val != NULL && a->vlen == strlen(lit) && strncasecmp(a->val, lit, a->vlen) == 0;
}

/* true or false into *out; false if neither. */
static bool boolean(const struct qido_arg *a, bool *out)
{
	if (value_is(a, "true"))
		*out = true;
	else if (!value_is(a, "false"))
		return false;
	else
		*out = false;
	return true;
}

/* An attribute ID starts with a keyword (an upper-case letter first, as
 * every keyword of PS3.6) or a tag (8 hex digits): a name starting with
 * either is taken as one (a malformed one is refused). Any other name is
 * a query parameter (PS3.18 8.3.4 spells them in lower case). */
static bool attribute_shaped(const struct qido_arg *a)
{
	return (a->key[0] >= 'A' && a->key[0] <= 'Z') || (a->key[0] >= '0' && a->key[0] <= '9');
}

/* A decimal number 0..QIDO_MAX_NUMBER. */
static bool number(const struct qido_arg *a, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (a->val == NULL || a->vlen == 0 || a->vlen > 10)
		return false;
	for (i = 0; i < a->vlen; i++) {
		if (a->val[i] < '0' || a->val[i] > '9')
			return false;
		v = v * 10 + (a->val[i] - '0');
	}
	if (v > QIDO_MAX_NUMBER)
		return false;
	*out = v;
	return true;
}

static enum err fail(char *why, size_t whylen, enum err rc, size_t i, const char *what)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "query parameter %zu: %s", i + 1, what);
	return rc;
}

static uint16_t vr_of(uint32_t tag)
{
	const struct dict_entry *d = dict_lookup(tag);

	if (d == NULL)
		return VR_UN;
	if (d->amb == VR_AMB_US_SS || d->amb == VR_AMB_US_SS_OW || d->amb == VR_AMB_US_OW)
		return VR_US;
	return d->vr;
}

static enum err includefield(const struct qido_arg *a, size_t ai, struct qido_params *p, char *why, size_t whylen)
{
	size_t i = 0, n = a->val ? a->vlen : 0;

	if (n == 0)
		return fail(why, whylen, ERR_PARSE, ai, "includefield needs a value");
	while (i <= n) {
		size_t e = i, k;
		uint32_t tag;
		while (e < n && a->val[e] != ',')
			e++;
		if (e - i == 3 && memcmp(a->val + i, "all", 3) == 0) {
			p->include_all = true;
		} else {
			/* Sequence.Attribute: the sequence is returned whole */
			for (k = i; k < e && a->val[k] != '.'; k++)
				;
			tag = qido_attr(a->val + i, k - i);
			if (tag == 0)
				return fail(why, whylen, ERR_PARSE, ai, "includefield names an unknown attribute");
			if (k < e && qido_attr(a->val + k + 1, e - k - 1) == 0)
				return fail(why, whylen, ERR_PARSE, ai, "includefield names an unknown attribute");
			if (k < e && vr_of(tag) != VR_SQ)
				return fail(why, whylen, ERR_PARSE, ai,
				            "includefield: only a sequence has attributes inside (Sequence.Attribute)");
			if (p->n_include >= QRY_MAX_INCLUDE)
				return fail(why, whylen, ERR_LIMIT, ai, "too many includefield attributes");
			p->include[p->n_include++] = tag;
		}
		i = e + 1;
	}
	return ERR_OK;
}

/* The value as the element's bytes: UID commas become backslashes,
 * binary integers are encoded. */
static enum err set_value(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const struct qido_arg *a, size_t ai, char *why,
                          size_t whylen)
{
	const char *v = a->val ? a->val : "";
	size_t n = a->val ? a->vlen : 0, i;
	uint8_t buf[QRY_MAX_VALUE_LEN];
	long long x = 0;

	if (n > QRY_MAX_VALUE_LEN)
		return fail(why, whylen, ERR_LIMIT, ai, "value too long");
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(why, whylen, ERR_PARSE, ai, "control character in the value");
	if (n > 0 && (vr == VR_US || vr == VR_SS || vr == VR_UL || vr == VR_SL)) {
		bool neg = v[0] == '-';
		size_t d = neg ? 1 : 0;
		if (n - d == 0 || n - d > 10)
			return fail(why, whylen, ERR_PARSE, ai, "not an integer");
		for (i = d; i < n; i++) {
			if (v[i] < '0' || v[i] > '9')
				return fail(why, whylen, ERR_PARSE, ai, "not an integer");
			x = x * 10 + (v[i] - '0');
		}
		if (neg)
			x = -x;
		if ((vr == VR_US && (x < 0 || x > 0xFFFF)) || (vr == VR_SS && (x < -32768 || x > 32767)) ||
		    (vr == VR_UL && (x < 0 || x > 0xFFFFFFFFll)) || (vr == VR_SL && (x < -2147483648ll || x > 2147483647ll)))
			return fail(why, whylen, ERR_PARSE, ai, "integer out of range");
		for (i = 0; i < vr_fixed_size(vr); i++)
			buf[i] = (uint8_t)(((unsigned long long)x >> (8 * i)) & 0xFF);
		return dcm_ds_set(ds, tag, vr, buf, vr_fixed_size(vr));
	}
	if (n > 0 && !vr_is_string(vr))
		return fail(why, whylen, ERR_PARSE, ai, "this attribute cannot be matched");
	memcpy(buf, v, n);
	/* a comma list: UIDs (PS3.18 8.3.4.1 uid-list-match), and CS values,
	 * which cannot hold a comma (ModalitiesInStudy=CT,MR: any of them, as
	 * CT\MR; Orthanc takes commas so too) */
	if (vr == VR_UI || vr == VR_CS)
		for (i = 0; i < n; i++)
			if (buf[i] == ',')
				buf[i] = '\\';
	return dcm_ds_set(ds, tag, vr, buf, n);
}

/* A UID attribute given again (StudyInstanceUID=a&StudyInstanceUID=b):
 * its values join the list, as commas would (PS3.18 8.3.4.1 uid-list-match). */
static enum err more_uids(struct dcm_ds *ds, struct dcm_elem *e, const struct qido_arg *a, size_t ai, char *why,
                          size_t whylen)
{
	struct qido_arg both = *a;
	char buf[QRY_MAX_VALUE_LEN];
	size_t had = e->len;

	while (had > 0 && (e->val[had - 1] == 0 || e->val[had - 1] == ' '))   /* the even-length pad */
		had--;
	if (a->val == NULL || a->vlen == 0 || had == 0)
		return fail(why, whylen, ERR_PARSE, ai, "a UID attribute given twice with an empty value");
	if (had + 1 + a->vlen > sizeof buf)
		return fail(why, whylen, ERR_LIMIT, ai, "value too long");
	memcpy(buf, e->val, had);
	buf[had] = '\\';
	memcpy(buf + had + 1, a->val, a->vlen);
	both.val = buf;
	both.vlen = had + 1 + a->vlen;
	return set_value(ds, e->tag, VR_UI, &both, ai, why, whylen);
}

static enum err attribute(const struct qido_arg *a, size_t ai, struct qido_params *p, char *why, size_t whylen)
{
	struct dcm_ds *ds = &p->id->ds;
	struct dcm_elem *sq;
	struct dcm_ds *item;
	size_t k;
	uint32_t tag, sub = 0;
	enum err rc;

	for (k = 0; k < a->klen && a->key[k] != '.'; k++)
		;
	tag = qido_attr(a->key, k);
	if (tag == 0 || tag == TAG_SPECIFIC_CHARSET)
		return fail(why, whylen, ERR_PARSE, ai, "unknown parameter or attribute");
	if (k < a->klen) {
		sub = qido_attr(a->key + k + 1, a->klen - k - 1);
		if (vr_of(tag) != VR_SQ || sub == 0 || vr_of(sub) == VR_SQ || sub == TAG_SPECIFIC_CHARSET)
			return fail(why, whylen, ERR_PARSE, ai, "unknown attribute in a sequence");
	} else if (vr_of(tag) == VR_SQ) {
		if (a->val != NULL && a->vlen > 0)
			return fail(why, whylen, ERR_PARSE, ai, "a sequence is matched through Sequence.Attribute");
		if (dcm_ds_find(ds, tag) != NULL)
			return fail(why, whylen, ERR_PARSE, ai, "attribute given twice");
		return dcm_ds_set_seq(ds, tag, &sq);
	}
	if (ds->n >= QRY_MAX_KEYS)
		return fail(why, whylen, ERR_LIMIT, ai, "too many attributes");
	if (sub == 0) {
		struct dcm_elem *e = dcm_ds_find(ds, tag);
		if (e != NULL && vr_of(tag) == VR_UI)
			return more_uids(ds, e, a, ai, why, whylen);
		if (e != NULL)
			return fail(why, whylen, ERR_PARSE, ai, "attribute given twice");
		return set_value(ds, tag, vr_of(tag), a, ai, why, whylen);
	}
	sq = dcm_ds_find(ds, tag);
	if (sq != NULL && (sq->seq == NULL || sq->seq->n > 1))
		return fail(why, whylen, ERR_PARSE, ai, "attribute given twice");
	if (sq == NULL && (rc = dcm_ds_set_seq(ds, tag, &sq)) != ERR_OK)
		return rc;
	if (sq->seq == NULL || sq->seq->n == 0) {
		rc = dcm_seq_add_item(ds, sq, &item);
		if (rc != ERR_OK)
			return rc;
	} else {
		item = sq->seq->items[0];
	}
	if (dcm_ds_find(item, sub) != NULL)
		return fail(why, whylen, ERR_PARSE, ai, "attribute given twice");
	if (item->n >= QRY_MAX_KEYS)
		return fail(why, whylen, ERR_LIMIT, ai, "too many attributes");
	return set_value(item, sub, vr_of(sub), a, ai, why, whylen);
}

/* The flag a boolean parameter sets (PS3.18 8.3.4.2, .5, .6), or NULL. */
static bool *flag_of(const struct qido_arg *a, struct qido_params *p)
{
	return name_is(a, "fuzzymatching") ? &p->fuzzy : name_is(a, "emptyvaluematching") ? &p->empty_value
	       : name_is(a, "multiplevaluematching") ? &p->multiple_value : NULL;
}

enum err qido_parse(const struct qido_arg *args, size_t n, struct qido_params *p, char *why, size_t whylen)
{
	size_t i;
	bool *flag;
	enum err rc;

	memset(p, 0, sizeof *p);
	if (why != NULL && whylen > 0)
		why[0] = 0;
	if (n > QIDO_MAX_ARGS) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "too many query parameters (at most %u)", QIDO_MAX_ARGS);
		return ERR_LIMIT;
	}
	rc = dcm_file_new(&p->id);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&p->id->ds, TAG_SPECIFIC_CHARSET, VR_CS, "ISO_IR 192");
	for (i = 0; rc == ERR_OK && i < n; i++) {
		const struct qido_arg *a = &args[i];
		if (a->klen == 0)
			continue;
		if (name_is(a, "limit")) {
			if (p->has_limit || !number(a, &p->limit))
				rc = fail(why, whylen, ERR_PARSE, i, "limit must be given once, a number from 0 to 1000000000");
			p->has_limit = true;
		} else if (name_is(a, "offset")) {
			if (p->has_offset || !number(a, &p->offset))
				rc = fail(why, whylen, ERR_PARSE, i, "offset must be given once, a number from 0 to 1000000000");
			p->has_offset = true;
		} else if ((flag = flag_of(a, p)) != NULL) {
			if (!boolean(a, flag))
				rc = fail(why, whylen, ERR_PARSE, i, "fuzzymatching, emptyvaluematching and multiplevaluematching "
				                                     "must be true or false");
		} else if (name_is(a, "includefield")) {
			rc = includefield(a, i, p, why, whylen);
		} else if (name_is(a, "charset") || name_is(a, "accept")) {
			continue;   /* the HTTP layer's (accept: PS3.18 8.3.3.1, in place of the Accept header) */
		} else if (attribute_shaped(a)) {
			rc = attribute(a, i, p, why, whylen);
		} else {
			/* a parameter this server does not support: ignored
			 * (PS3.18 8.3.4), the caller says so in a Warning */
			if (p->n_ignored < QIDO_MAX_IGNORED)
				p->ignored[p->n_ignored] = i;
			p->n_ignored++;
		}
	}
	if (rc != ERR_OK) {
		if (why != NULL && whylen > 0 && why[0] == 0)
			snprintf(why, whylen, "%s", err_str(rc));
		qido_params_fini(p);
		memset(p, 0, sizeof *p);
	}
	return rc;
}

void qido_params_fini(struct qido_params *p)
{
	dcm_file_free(p->id);
	p->id = NULL;
}
