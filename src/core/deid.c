/* deid.c: the de-identification engine, PS3.15 Annex E. Walks a data set
 * (recursively through sequences) and applies to each attribute the action
 * of the generated Table E.1-1 under the selected options: remove (X),
 * empty (Z), dummy (D), keyed UID (U), clean (C) or keep (K); composite
 * codes are resolved by deid_iod.c. Private attributes go unless retained as
 * safe (Table E.3.10-1). Then the attestation attributes are added. Design
 * and decisions: docs/internals/deid.md. Layer: core. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deid_int.h"
#include "dicomvault/limits.h"

/* ---- the table and the options ---- */

static const char *const opt_names[DEID_NOPTS] = {
	"retain-safe-private", "retain-uids", "retain-device-identity", "retain-institution-identity",
	"retain-patient-characteristics", "retain-long-full-dates", "retain-long-modified-dates",
	"clean-descriptors", "clean-structured-content", "clean-graphics"
};

/* PS3.16 CID 7050; [DEID_NOPTS] is the Basic Profile. */
static const char *const opt_codes[DEID_NOPTS + 1] = {
	"113111", "113110", "113109", "113112", "113108", "113106", "113107", "113105", "113104", "113103",
	"113100"
};

static const char *const opt_meanings[DEID_NOPTS + 1] = {
	"Retain Safe Private Option", "Retain UIDs Option", "Retain Device Identity Option",
	"Retain Institution Identity Option", "Retain Patient Characteristics Option",
	"Retain Longitudinal Temporal Information Full Dates Option",
	"Retain Longitudinal Temporal Information Modified Dates Option", "Clean Descriptors Option",
	"Clean Structured Content Option", "Clean Graphics Option",
	"Basic Application Confidentiality Profile"
};

static const char *const action_strs[DEID_NACTIONS] = {
	"", "X", "Z", "D", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"
};

const char *deid_option_name(unsigned idx)
{
	return idx < DEID_NOPTS ? opt_names[idx] : NULL;
}

const char *deid_option_code(unsigned idx)
{
	return idx <= DEID_NOPTS ? opt_codes[idx] : NULL;
}

const char *deid_option_meaning(unsigned idx)
{
	return idx <= DEID_NOPTS ? opt_meanings[idx] : NULL;
}

const char *deid_action_str(enum deid_action a)
{
	return (unsigned)a < DEID_NACTIONS ? action_strs[a] : "?";
}

static void set_why(char *why, size_t whylen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

enum err deid_parse_profile(const char *spec, unsigned *options, char *why, size_t whylen)
{
	unsigned opts = 0, i;
	const char *p = spec, *end;
	bool basic = false;

	if (spec == NULL || *spec == 0) {
		set_why(why, whylen, "empty profile (expected basic[,option...])");
		return ERR_PARSE;
	}
	for (;;) {
		size_t n;
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		if (n == 5 && memcmp(p, "basic", 5) == 0) {
			basic = true;
		} else {
			for (i = 0; i < DEID_NOPTS; i++)
				if (strlen(opt_names[i]) == n && memcmp(p, opt_names[i], n) == 0)
					break;
			if (i == DEID_NOPTS) {
				set_why(why, whylen, "unknown profile option '%.*s'", (int)(n > 64 ? 64 : n), p);
				return ERR_PARSE;
			}
			opts |= 1u << i;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (!basic) {
		set_why(why, whylen, "the profile must include 'basic' (options add to the Basic Profile)");
		return ERR_PARSE;
	}
	if ((opts & DEID_RETAIN_LONG_FULL_DATES) && (opts & DEID_RETAIN_LONG_MODIFIED_DATES)) {
		set_why(why, whylen, "retain-long-full-dates and retain-long-modified-dates exclude each other");
		return ERR_PARSE;
	}
	*options = opts;
	return ERR_OK;
}

const struct deid_rule *deid_rule_lookup(uint32_t tag)
{
	size_t lo = 0, hi = deid_rules_exact_n, i;

	if (TAG_IS_PRIVATE(tag))
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (deid_rules[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < deid_rules_exact_n && deid_rules[lo].tag == tag)
		return &deid_rules[lo];
	for (i = deid_rules_exact_n; i < deid_rules_exact_n + deid_rules_masked_n; i++)
		if ((tag & deid_rules[i].mask) == deid_rules[i].tag)
			return &deid_rules[i];
	return NULL;
}

enum deid_action deid_rule_action(const struct deid_rule *r, unsigned options)
{
	enum deid_action a = (enum deid_action)r->basic;
	bool c = false, k = false;
	unsigned i;

	for (i = 0; i < DEID_NOPTS; i++) {
		if (!(options & (1u << i)))
			continue;
		if (r->opt[i] == DEID_C)
			c = true;
		else if (r->opt[i] == DEID_K)
			k = true;
	}
	if (c)
		a = DEID_C;
	else if (k)
		a = DEID_K;
	if (a == DEID_U && (options & DEID_RETAIN_UIDS))
		a = DEID_K;
	return a;
}

const struct deid_safe_private *deid_safe_lookup(uint16_t group, uint8_t elem, const char *creator, size_t creator_len)
{
	size_t lo = 0, hi = deid_safe_private_n, i;
	uint32_t key = ((uint32_t)group << 8) | elem;

	while (creator_len > 0 && (creator[creator_len - 1] == ' ' || creator[creator_len - 1] == 0))
		creator_len--;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t k = ((uint32_t)deid_safe_private[mid].group << 8) | deid_safe_private[mid].elem;
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < deid_safe_private_n; i++) {
		const struct deid_safe_private *s = &deid_safe_private[i];
		if (s->group != group || s->elem != elem)
			break;
		if (strlen(s->creator) == creator_len && memcmp(s->creator, creator, creator_len) == 0)
			return s;
	}
	return NULL;
}

/* ---- the engine ---- */

/* Recursion modes: what happens to attributes Table E.1-1 does not list. */
#define M_DUMMY_TEXT 1u   /* inside a sequence replaced by D: free text gets a dummy */
#define M_DUMMY_CODE 2u   /* inside a code sequence replaced by D: every string gets a dummy */
#define M_CLEAN_TEXT 4u   /* inside a sequence cleaned by C: free text is cleaned */
#define M_LOCAL_CODE 8u   /* this item only, in dummy or clean mode: a code of a private or local scheme */

#define TAG_PATIENT_NAME  0x00100010u
#define TAG_PATIENT_ID    0x00100020u
#define TAG_BURNED_IN     0x00280301u
#define TAG_CODING_SCHEME 0x00080102u
#define TAG_CODE_MEANING  0x00080104u
#define TAG_CODE_VALUE    0x00080100u
#define TAG_LONG_CODE_VALUE 0x00080119u
#define TAG_TEXT_VALUE    0x0040A160u

#define DUMMY_TEXT "ANONYMIZED"

struct ctx {
	const struct deid_opts *o;
	unsigned opts;
	struct dcm_file *f;
	enum deid_family fam;
	struct deid_stats st;
	struct deid_tokens tok;
	int32_t days;
	const struct deid_mask_rule *mask;   /* burned-in annotation to mask */
	char *why;
	size_t whylen;
};

static enum err walk(struct ctx *c, struct dcm_ds *ds, unsigned depth, unsigned mode);

static bool is_text_vr(uint16_t vr)
{
	return vr == VR_ST || vr == VR_LT || vr == VR_UT;
}

static bool is_string_vr(uint16_t vr)
{
	return vr == VR_AE || vr == VR_AS || vr == VR_CS || vr == VR_DA || vr == VR_DS || vr == VR_DT ||
	       vr == VR_IS || vr == VR_LO || vr == VR_LT || vr == VR_PN || vr == VR_SH || vr == VR_ST ||
	       vr == VR_TM || vr == VR_UC || vr == VR_UI || vr == VR_UR || vr == VR_UT;
}

/* Whether the item ds is a code of a private or local coding scheme (PS3.16
 * 8.2: designators beginning with 99; HL7's L): its Code Meaning is then
 * the sender's own words, not a published vocabulary's. A designator that
 * cannot be read (left in the source) counts as local. */
static bool local_code(const struct dcm_ds *ds)
{
	size_t n = 0;
	const char *s;

	if (dcm_ds_find(ds, TAG_CODE_MEANING) == NULL || dcm_ds_find(ds, TAG_CODING_SCHEME) == NULL)
		return false;
	s = dcm_ds_str(ds, TAG_CODING_SCHEME, &n);
	if (s == NULL)
		return true;
	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	return (n >= 2 && s[0] == '9' && s[1] == '9') || (n == 1 && s[0] == 'L');
}

/* The VR to treat an element as (UN resolved by the dictionary). */
static uint16_t vr_of(const struct dcm_ds *ds, const struct dcm_elem *e)
{
	uint16_t vr = dcm_elem_effective_vr(ds, e);

	if (vr == VR_UN && e->seq == NULL) {
		const struct dict_entry *d = dict_lookup(e->tag);
		if (d != NULL && d->vr != VR_NONE && d->vr != VR_SQ)
			vr = d->vr;
	}
	if (e->seq != NULL && !(e->flags & DCM_EF_ENCAPS))
		vr = VR_SQ;
	return vr;
}

/* Replaces the value of e (in ds) by len bytes, padded to even length. */
static enum err elem_set(struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr, const void *val, size_t len)
{
	return dcm_elem_set(ds, e, vr, val, len);
}

/* The value bytes of e (loaded from the source when bulk). */
static enum err elem_bytes(struct ctx *c, const struct dcm_elem *e, const uint8_t **v, size_t *n, bool *owned)
{
	enum err rc;

	*owned = false;
	*n = 0;
	*v = NULL;
	if (e->len == 0 || e->len == DCM_UNDEF)
		return ERR_OK;
	rc = dcm_elem_value(c->f, e, v, owned);
	if (rc != ERR_OK)
		return rc;
	*n = e->len;
	return ERR_OK;
}

static enum err set_dummy(struct ctx *c, struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr)
{
	static const uint8_t zeros[8];
	const char *s;

	switch (vr) {
	case VR_DA: s = "19000101"; break;
	case VR_DT: s = "19000101000000"; break;
	case VR_TM: s = "000000"; break;
	case VR_DS: case VR_IS: s = "0"; break;
	case VR_AS: s = "000Y"; break;
	case VR_UR: s = "https://anonymized.invalid/"; break;
	case VR_AE: case VR_CS: case VR_LO: case VR_LT: case VR_PN: case VR_SH: case VR_ST:
	case VR_UC: case VR_UT:
		s = e->tag == TAG_CODING_SCHEME ? "99DVDEID" : DUMMY_TEXT;
		break;
	case VR_UI: {
		char uid[DEID_UID_MAX + 1];
		const uint8_t *v;
		size_t n;
		bool owned;
		enum err rc = elem_bytes(c, e, &v, &n, &owned);
		if (rc == ERR_OK)
			rc = deid_uid_map(c->o->project_key, (const char *)v, n, uid);
		if (owned)
			free((void *)(uintptr_t)v);
		if (rc == ERR_OK)
			rc = elem_set(ds, e, VR_UI, uid, strlen(uid));
		if (rc == ERR_OK)
			c->st.uids++;
		return rc;
	}
	case VR_SS: case VR_US: case VR_OB: case VR_OW: case VR_UN:
		return elem_set(ds, e, vr, zeros, 2);
	case VR_SL: case VR_UL: case VR_FL: case VR_AT: case VR_OF: case VR_OL:
		return elem_set(ds, e, vr, zeros, 4);
	case VR_FD: case VR_SV: case VR_UV: case VR_OD: case VR_OV:
		return elem_set(ds, e, vr, zeros, 8);
	default:
		return elem_set(ds, e, vr, zeros, 2);
	}
	return elem_set(ds, e, vr, s, strlen(s));
}

/* Maps each value of a UI element through deid_uid_map (well-known UIDs,
 * such as those of SOP classes or standard frames of reference, stay). */
static enum err map_uids(struct ctx *c, struct dcm_ds *ds, struct dcm_elem *e)
{
	const uint8_t *v;
	size_t n, i = 0;
	bool owned, changed = false;
	struct wbuf w;
	enum err rc;

	rc = elem_bytes(c, e, &v, &n, &owned);
	if (rc != ERR_OK)
		return rc;
	wbuf_init(&w, (size_t)DCM_MAX_VALUE_INMEM);
	while (i <= n && n > 0) {
		size_t s = i, len;
		char uid[DEID_UID_MAX + 1];
		while (i < n && v[i] != '\\')
			i++;
		len = i - s;
		while (len > 0 && (v[s + len - 1] == 0 || v[s + len - 1] == ' '))
			len--;
		if (s > 0)
			wbuf_putc(&w, '\\');
		if (len == 0 || dict_uid((const char *)v + s, len) != NULL) {
			wbuf_put(&w, v + s, len);
		} else {
			rc = deid_uid_map(c->o->project_key, (const char *)v + s, len, uid);
			if (rc != ERR_OK)
				goto out;
			wbuf_puts(&w, uid);
			c->st.uids++;
			changed = true;
		}
		i++;
	}
	rc = wbuf_err(&w);
	if (rc == ERR_OK && changed) {
		rc = elem_set(ds, e, VR_UI, w.p, w.len);
		if (rc == ERR_OK)
			c->st.replaced++;
	} else if (rc == ERR_OK) {
		c->st.kept++;
	}
out:
	if (owned)
		free((void *)(uintptr_t)v);
	wbuf_fini(&w);
	return rc;
}

/* C on a DA or DT: every value shifted by the patient's offset; a value that
 * is not a date becomes empty. */
static enum err shift_dates(struct ctx *c, struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr)
{
	const uint8_t *v;
	size_t n, i = 0;
	bool owned;
	struct wbuf w;
	enum err rc;

	rc = elem_bytes(c, e, &v, &n, &owned);
	if (rc != ERR_OK)
		return rc;
	if (n == 0) {
		c->st.kept++;
		goto out_nobuf;
	}
	wbuf_init(&w, 1u << 20);
	while (i <= n) {
		size_t s = i;
		char out[64];
		while (i < n && v[i] != '\\')
			i++;
		if (s > 0)
			wbuf_putc(&w, '\\');
		if (deid_shift_date((const char *)v + s, i - s, vr == VR_DT, c->days, out, sizeof out) == ERR_OK) {
			wbuf_puts(&w, out);
			c->st.dates_shifted++;
		}
		i++;
	}
	rc = wbuf_err(&w);
	if (rc == ERR_OK)
		rc = elem_set(ds, e, vr, w.p, w.len);
	if (rc == ERR_OK)
		c->st.replaced++;
	wbuf_fini(&w);
out_nobuf:
	if (owned)
		free((void *)(uintptr_t)v);
	return rc;
}

/* C on text: identifying words and date-like numbers overwritten. */
static enum err clean_text(struct ctx *c, struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr)
{
	const uint8_t *v;
	uint8_t *copy;
	size_t n;
	bool owned;
	enum err rc;

	if (e->len > DEID_MAX_CLEAN_TEXT) {
		c->st.replaced++;
		return set_dummy(c, ds, e, vr);
	}
	rc = elem_bytes(c, e, &v, &n, &owned);
	if (rc != ERR_OK)
		return rc;
	if (n == 0) {
		c->st.kept++;
		goto out;
	}
	copy = malloc(n);
	if (copy == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	memcpy(copy, v, n);
	if (deid_text_clean(&c->tok, copy, n)) {
		rc = elem_set(ds, e, vr, copy, n);
		c->st.replaced++;
		c->st.cleaned++;
	} else {
		c->st.kept++;
	}
	mem_wipe(copy, n);
	free(copy);
out:
	if (owned)
		free((void *)(uintptr_t)v);
	return rc;
}

static bool keyword_ends(const char *kw, const char *suffix)
{
	size_t a = strlen(kw), b = strlen(suffix);

	return a >= b && memcmp(kw + a - b, suffix, b) == 0;
}

/* A UI attribute Table E.1-1 does not list that names an instance (not a
 * class, transfer syntax, coding scheme...): replaced like a U, so that
 * references stay consistent (a decision beyond the table, see deid.md). */
static bool unlisted_instance_uid(uint32_t tag)
{
	const struct dict_entry *d = dict_lookup(tag);
	const char *kw;

	if (d == NULL || d->vr != VR_UI || d->keyword == NULL)
		return false;
	kw = d->keyword;
	return strstr(kw, "InstanceUID") != NULL || keyword_ends(kw, "FrameOfReferenceUID") ||
	       keyword_ends(kw, "EventUID") || keyword_ends(kw, "AssertionUID") ||
	       keyword_ends(kw, "FiducialUID") || keyword_ends(kw, "ModelGroupUID") ||
	       keyword_ends(kw, "InputSetUID") || keyword_ends(kw, "PrivateRecordUID") ||
	       strstr(kw, "UIDOfConcatenationSource") != NULL;
}

/* The resolved action for a standard (even group) element. *listed says
 * whether Table E.1-1 lists it. *code is set for D on a code sequence. */
static enum deid_action decide(struct ctx *c, const struct dcm_ds *ds, const struct dcm_elem *e, unsigned depth,
                               unsigned mode, bool *listed, bool *code)
{
	const struct deid_rule *r = deid_rule_lookup(e->tag);
	uint16_t vr = vr_of(ds, e);
	enum deid_action a;

	*code = false;
	*listed = r != NULL;
	if (TAG_GROUP(e->tag) >= 0x6000 && TAG_GROUP(e->tag) <= 0x60FF) {
		/* an overlay goes as a whole when its data goes (the rest of
		 * the group would describe an overlay that is not there) */
		const struct deid_rule *od = deid_rule_lookup(TAG((TAG_GROUP(e->tag)), 0x3000));
		if (od != NULL) {
			a = deid_rule_action(od, c->opts);
			if (a == DEID_X || a == DEID_C) {
				*listed = true;
				return DEID_X;
			}
		}
	}
	if (r != NULL) {
		a = deid_resolve(deid_rule_action(r, c->opts), e->tag, c->fam, depth > 0);
		if (a == DEID_D && vr == VR_SQ && keyword_ends(r->keyword, "CodeSequence"))
			*code = true;
		return a;
	}
	if ((mode & M_DUMMY_CODE) && is_string_vr(vr) && vr != VR_CS && vr != VR_UI && vr != VR_DA &&
	    vr != VR_DT && vr != VR_TM && vr != VR_DS && vr != VR_IS)
		return DEID_D;
	if ((mode & M_LOCAL_CODE) && (mode & M_DUMMY_TEXT) && e->tag == TAG_CODE_MEANING)
		return DEID_D;
	if ((mode & (M_DUMMY_TEXT | M_DUMMY_CODE)) && (is_text_vr(vr) || e->tag == TAG_TEXT_VALUE))
		return DEID_D;
	if ((mode & M_CLEAN_TEXT) && (is_text_vr(vr) || e->tag == TAG_TEXT_VALUE))
		return DEID_C;
	/* a published concept's meaning stays but loses identifying words; a
	 * local code's value is the sender's own too. Published code values,
	 * designators and versions name concepts, never a patient: kept (the
	 * cleaner would turn 121071 or 363698007 into X's, and every
	 * coded concept, a dose report's too, with them) */
	if ((mode & (M_DUMMY_TEXT | M_CLEAN_TEXT)) &&
	    (e->tag == TAG_CODE_MEANING ||
	     ((mode & M_LOCAL_CODE) && (e->tag == TAG_CODE_VALUE || e->tag == TAG_LONG_CODE_VALUE))))
		return DEID_C;
	if (vr == VR_UI && unlisted_instance_uid(e->tag)) {
		*listed = true;
		return (c->opts & DEID_RETAIN_UIDS) ? DEID_K : DEID_U;
	}
	return DEID_K;
}

/* Applies a (resolved) action to element i of ds. *drop: remove it. */
static enum err apply(struct ctx *c, struct dcm_ds *ds, struct dcm_elem *e, enum deid_action a, bool listed,
                      const char *pkey, size_t npkey, bool *drop)
{
	uint16_t vr = vr_of(ds, e);
	bool is_seq = e->seq != NULL && !(e->flags & DCM_EF_ENCAPS);
	enum err rc = ERR_OK;

	*drop = false;
	switch (a) {
	case DEID_X:
		*drop = true;
		c->st.removed++;
		return ERR_OK;
	case DEID_Z:
		if (e->tag == TAG_PATIENT_NAME && (c->o->flags & DEID_F_PSEUDONYM_NAME)) {
			char ps[DEID_PSEUDONYM_MAX + 1];
			rc = deid_pseudonym_name(c->o->project_key, pkey, npkey, ps);
			if (rc == ERR_OK)
				rc = elem_set(ds, e, VR_PN, ps, strlen(ps));
			c->st.replaced++;
			return rc;
		}
		if (is_seq) {
			if (e->seq->n > 0)
				c->st.replaced++;
			e->seq->n = 0;
			return ERR_OK;
		}
		if (e->len > 0)
			c->st.replaced++;
		else
			c->st.kept++;
		return elem_set(ds, e, vr, NULL, 0);
	case DEID_D:
		if (e->tag == TAG_PATIENT_ID && !is_seq) {
			char ps[DEID_PSEUDONYM_MAX + 1];
			rc = deid_pseudonym_id(c->o->project_key, pkey, npkey, ps);
			if (rc == ERR_OK)
				rc = elem_set(ds, e, VR_LO, ps, strlen(ps));
			c->st.replaced++;
			return rc;
		}
		if (is_seq)
			return ERR_OK;  /* the caller walks it in dummy mode */
		c->st.replaced++;
		return set_dummy(c, ds, e, vr);
	case DEID_U:
		if (is_seq)
			return ERR_OK;  /* X/Z/U* kept: the caller walks it */
		if (vr != VR_UI) {
			c->st.replaced++;
			return set_dummy(c, ds, e, vr);
		}
		return map_uids(c, ds, e);
	case DEID_C:
		if (is_seq)
			return ERR_OK;  /* the caller walks it in clean mode */
		if (vr == VR_DA || vr == VR_DT)
			return shift_dates(c, ds, e, vr);
		if (vr == VR_TM || vr == VR_DS || vr == VR_IS || vr == VR_UI || vr_fixed_size(vr) != 0) {
			c->st.kept++;   /* times of day stay (whole-day offsets); numbers stay */
			return ERR_OK;
		}
		if (is_string_vr(vr))
			return clean_text(c, ds, e, vr);
		/* binary (overlay or curve data, documents): cannot be inspected */
		*drop = true;
		c->st.removed++;
		return ERR_OK;
	default:  /* K */
		if (listed)
			c->st.kept++;
		return ERR_OK;
	}
}

/* The creator of private element e in ds: (pointer, length) or NULL. */
static const char *private_creator(const struct dcm_ds *ds, uint32_t tag, size_t *n)
{
	uint16_t block = (uint16_t)(TAG_ELEM(tag) >> 8);

	if (block < 0x10)
		return NULL;
	return dcm_ds_str(ds, TAG(TAG_GROUP(tag), block), n);
}

static enum err walk_seq(struct ctx *c, struct dcm_elem *e, unsigned depth, unsigned mode)
{
	uint32_t i;
	enum err rc;

	if (e->seq == NULL || (e->flags & DCM_EF_ENCAPS))
		return ERR_OK;
	for (i = 0; i < e->seq->n; i++) {
		rc = walk(c, e->seq->items[i], depth + 1, mode);
		if (rc != ERR_OK)
			return rc;
	}
	return ERR_OK;
}

static enum err walk(struct ctx *c, struct dcm_ds *ds, unsigned depth, unsigned mode)
{
	uint8_t *keep = NULL;
	char pkey[512];
	size_t npkey = 0;
	uint32_t i, w;
	unsigned imode = mode;
	enum err rc = ERR_INTERNAL;

	if (ds->n == 0)
		return ERR_OK;
	/* decided before anything of this item changes (its designator may
	 * be cleaned), and for this item only */
	if ((mode & (M_DUMMY_TEXT | M_CLEAN_TEXT)) && local_code(ds))
		imode |= M_LOCAL_CODE;
	keep = calloc(ds->n, 1);
	if (keep == NULL)
		return ERR_NOMEM;
	/* the patient of this data set or item, before anything changes */
	if (dcm_ds_find(ds, TAG_PATIENT_ID) != NULL || dcm_ds_find(ds, TAG_PATIENT_NAME) != NULL)
		npkey = deid_patient_key(ds, pkey, sizeof pkey);
	else
		pkey[0] = 0;
	for (i = 0; i < ds->n; i++) {
		struct dcm_elem *e = &ds->e[i];
		uint32_t tag = e->tag;
		bool drop = false, listed, code;
		enum deid_action a;

		if (TAG_ELEM(tag) == 0 || tag == 0x00080001) {
			continue;  /* group lengths (and Length to End) would be wrong */
		}
		if (TAG_IS_PRIVATE(tag)) {
			size_t cn = 0;
			const char *cr;
			if (TAG_IS_PRIVATE_CREATOR(tag)) {
				keep[i] = 2;   /* decided below */
				continue;
			}
			cr = private_creator(ds, tag, &cn);
			if (cr != NULL && (c->opts & DEID_RETAIN_SAFE_PRIVATE) &&
			    deid_safe_lookup(TAG_GROUP(tag), (uint8_t)TAG_ELEM(tag), cr, cn) != NULL) {
				keep[i] = 1;
				c->st.kept++;
				c->st.private_kept++;
				rc = walk_seq(c, e, depth, mode);
				if (rc != ERR_OK)
					goto out;
			} else {
				c->st.removed++;
				c->st.private_removed++;
			}
			continue;
		}
		a = decide(c, ds, e, depth, imode, &listed, &code);
		if (vr_of(ds, e) == VR_SQ && e->seq != NULL && a != DEID_X && a != DEID_Z) {
			unsigned m = mode;
			if (a == DEID_D) {
				m |= code ? M_DUMMY_CODE : M_DUMMY_TEXT;
				c->st.replaced++;
			} else if (a == DEID_C) {
				m |= M_CLEAN_TEXT;
				c->st.kept++;
			} else if (listed) {
				c->st.kept++;
			}
			rc = walk_seq(c, e, depth, m);
			if (rc != ERR_OK)
				goto out;
			keep[i] = 1;
			continue;
		}
		rc = apply(c, ds, e, a, listed, pkey, npkey, &drop);
		if (rc != ERR_OK)
			goto out;
		keep[i] = drop ? 0 : 1;
	}
	/* private creators stay only for blocks that still hold something */
	for (i = 0; i < ds->n; i++) {
		uint32_t j;
		uint16_t g, blk;
		if (keep[i] != 2)
			continue;
		g = TAG_GROUP(ds->e[i].tag);
		blk = TAG_ELEM(ds->e[i].tag);
		keep[i] = 0;
		for (j = 0; j < ds->n; j++)
			if (keep[j] == 1 && TAG_GROUP(ds->e[j].tag) == g && (TAG_ELEM(ds->e[j].tag) >> 8) == blk)
				keep[i] = 1;
		if (keep[i] == 0) {
			c->st.removed++;
			c->st.private_removed++;
		}
	}
	for (i = 0, w = 0; i < ds->n; i++) {
		if (!keep[i])
			continue;
		if (w != i)
			ds->e[w] = ds->e[i];
		w++;
	}
	ds->n = w;
	ds->order = NULL;   /* the sorted index of an unsorted data set is stale now */
	rc = ERR_OK;
out:
	free(keep);
	mem_wipe(pkey, sizeof pkey);
	return rc;
}

/* ---- before and after ---- */

static char ascii_upper(char a)
{
	return a >= 'a' && a <= 'z' ? (char)(a - 'a' + 'A') : a;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);

	return s != NULL && n >= pl && memcmp(s, p, pl) == 0;
}

/* One value of a multi-valued string, trimmed of spaces (and of the NUL
 * padding some writers use), is NO (ASCII case ignored, as CS is meant
 * upper case). */
static bool word_is_no(const uint8_t *v, size_t n)
{
	while (n > 0 && *v == ' ') {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	return n == 2 && (v[0] == 'N' || v[0] == 'n') && (v[1] == 'O' || v[1] == 'o');
}

static bool word_is_empty(const uint8_t *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] != ' ' && v[i] != 0)
			return false;
	return true;
}

/* Whether Burned In Annotation flags the image. Fail-safe: any value other
 * than NO flags it (YES\NO is YES somewhere), read whatever its size (a
 * value padded past the bulk threshold stays in the source, where
 * dcm_ds_str does not look); so does an attribute with no value at all
 * (zero length, or only padding and empty values): it says the sender does
 * not know, like a value that cannot be read or a sequence in its place.
 * Absent does not flag it: it is left to the modality check of
 * check_refuse, since most images of modalities that never burn in text
 * (CT, MR) were written without it. */
static enum err burned_in_flagged(const struct ctx *c, bool *flagged)
{
	const struct dcm_elem *e = dcm_ds_find(&c->f->ds, TAG_BURNED_IN);
	const uint8_t *v = NULL;
	size_t n, i = 0;
	bool owned = false, any = false;
	enum err rc;

	*flagged = false;
	if (e == NULL)
		return ERR_OK;
	if (e->len == 0 || e->seq != NULL || e->len == DCM_UNDEF) {
		*flagged = true;
		return ERR_OK;
	}
	rc = dcm_elem_value(c->f, e, &v, &owned);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc != ERR_OK || v == NULL) {
		*flagged = true;
		return ERR_OK;
	}
	n = e->len;
	while (i <= n && !*flagged) {
		size_t s = i;
		while (i < n && v[i] != '\\')
			i++;
		if (!word_is_empty(v + s, i - s)) {
			any = true;
			if (!word_is_no(v + s, i - s))
				*flagged = true;
		}
		i++;
	}
	if (!any)
		*flagged = true;
	if (owned)
		free((void *)(uintptr_t)v);
	return ERR_OK;
}

/* Whether the modality is one that often carries text in its pixels.
 * Fail-safe as burned_in_flagged: any of its values (Modality is VM 1, but
 * OT\US is an ultrasound too), read whatever its size, ASCII case ignored;
 * an unreadable Modality is suspect. */
static enum err suspect_modality(const struct ctx *c, bool *suspect)
{
	static const char *const mods[] = { "US", "OT", "SC", "XC", "ES", "GM" };
	struct wbuf w;
	const char *v;
	size_t pos = 0, vn, i;
	bool unreadable;
	enum err rc;

	*suspect = false;
	wbuf_init(&w, 4 * DEID_MATCH_MAX_VALUE);
	rc = deid_str_utf8(c->f, 0x00080060, &w, &unreadable);
	if (rc == ERR_OK && unreadable)
		*suspect = true;
	while (rc == ERR_OK && !*suspect && deid_str_next(&w, &pos, &v, &vn))
		for (i = 0; i < sizeof mods / sizeof mods[0]; i++)
			if (vn == 2 && ascii_upper(v[0]) == mods[i][0] && ascii_upper(v[1]) == mods[i][1])
				*suspect = true;
	wbuf_fini(&w);
	return rc;
}

/* Refusals, decided before anything changes. */
static enum err check_refuse(struct ctx *c)
{
	const struct dcm_ds *ds = &c->f->ds;
	const char *sop;
	size_t n = 0;
	bool pixels, burned;
	enum err rc;

	sop = dcm_ds_str(&c->f->meta, 0x00020002, &n);
	if ((sop != NULL && n == 20 && memcmp(sop, "1.2.840.10008.1.3.10", 20) == 0) ||
	    dcm_ds_find(ds, 0x00041220) != NULL) {
		set_why(c->why, c->whylen, "a DICOMDIR (media directory): its record offsets would be wrong after "
		        "de-identification; de-identify the files and make a new DICOMDIR");
		return ERR_DENIED;
	}
	rc = burned_in_flagged(c, &burned);
	if (rc != ERR_OK)
		return rc;
	if (burned) {
		rc = deid_masks_match(c->o->masks, c->f, &c->mask);
		if (rc != ERR_OK || c->mask != NULL)
			return rc;
		set_why(c->why, c->whylen, "burned-in annotation: Burned In Annotation (0028,0301) is YES (or empty, or "
		        "another value than NO) and no masking rule fits the image (modality, manufacturer, model, size): it may "
		        "show identifying text");
		return ERR_DENIED;
	}
	/* float pixel data (parametric maps) is pixel data too: it may be a
	 * suspect modality's, and masking refuses it (deid_mask_pixels) */
	pixels = dcm_ds_find(ds, TAG_PIXEL_DATA) != NULL || dcm_ds_find(ds, TAG_FLOAT_PIXEL) != NULL ||
	         dcm_ds_find(ds, TAG_DFLOAT_PIXEL) != NULL;
	if (pixels && dcm_ds_find(ds, TAG_BURNED_IN) == NULL) {
		bool suspect = false;
		sop = dcm_ds_str(ds, 0x00080016, &n);
		if (has_prefix(sop, n, "1.2.840.10008.5.1.4.1.1.7"))
			suspect = true;   /* Secondary Capture */
		else if ((rc = suspect_modality(c, &suspect)) != ERR_OK)
			return rc;
		if (suspect && ((rc = deid_masks_match(c->o->masks, c->f, &c->mask)) != ERR_OK || c->mask != NULL))
			return rc;
		if (suspect && (c->o->flags & DEID_F_REFUSE_SUSPECT)) {
			set_why(c->why, c->whylen, "possible burned-in annotation: Burned In Annotation (0028,0301) is "
			        "absent and the modality or SOP class often carries text in the pixels");
			return ERR_DENIED;
		}
		if (suspect)
			c->st.suspect++;
	}
	return ERR_OK;
}

static enum err add_pn_words(struct deid_tokens *t, const char *s, size_t n)
{
	size_t i = 0;
	unsigned comp = 0;
	enum err rc;

	/* family, given and middle names of each component group; not the
	 * prefix and suffix (Dr, Mr...) which would clean ordinary words */
	while (i < n) {
		size_t st = i;
		while (i < n && s[i] != '^' && s[i] != '=' && s[i] != '\\')
			i++;
		if (comp < 3) {
			rc = deid_tokens_add(t, s + st, i - st, 2);
			if (rc != ERR_OK)
				return rc;
		}
		if (i < n && s[i] == '^')
			comp++;
		else
			comp = 0;
		i++;
	}
	return ERR_OK;
}

/* The words that identify this patient, institution and staff. */
static enum err collect_tokens(struct ctx *c)
{
	static const uint32_t pn_tags[] = {
		0x00100010, 0x00101001, 0x00101060, 0x00101005, 0x00080090, 0x00081050, 0x00081060,
		0x00081070, 0x00321032, 0x00081048, 0x00400006, 0x0040A075, 0x00101002
	};
	static const uint32_t id_tags[] = {
		0x00100020, 0x00101000, 0x00080050, 0x00200010, 0x00100021, 0x00102154, 0x00380010, 0x00401001, 0x00400009, 0x00400253, 0x00120040, 0x00120042
	};
	static const uint32_t inst_tags[] = { 0x00080080, 0x00080081, 0x00081040 };
	static const uint32_t dev_tags[] = { 0x00081010, 0x00181000 };
	const struct dcm_ds *ds = &c->f->ds;
	size_t i, n = 0;
	const char *s;
	enum err rc;

	for (i = 0; i < sizeof pn_tags / sizeof pn_tags[0]; i++)
		if ((s = dcm_ds_str(ds, pn_tags[i], &n)) != NULL && (rc = add_pn_words(&c->tok, s, n)) != ERR_OK)
			return rc;
	for (i = 0; i < sizeof id_tags / sizeof id_tags[0]; i++) {
		if ((s = dcm_ds_str(ds, id_tags[i], &n)) == NULL)
			continue;
		if ((rc = deid_tokens_add_value(&c->tok, s, n, 3)) != ERR_OK ||
		    (rc = deid_tokens_add(&c->tok, s, n, 3)) != ERR_OK)
			return rc;
	}
	if ((s = dcm_ds_str(ds, 0x00100030, &n)) != NULL && (rc = deid_tokens_add(&c->tok, s, n, 3)) != ERR_OK)
		return rc;
	if (!(c->opts & DEID_RETAIN_INSTITUTION_IDENTITY))
		for (i = 0; i < sizeof inst_tags / sizeof inst_tags[0]; i++)
			if ((s = dcm_ds_str(ds, inst_tags[i], &n)) != NULL &&
			    (rc = deid_tokens_add(&c->tok, s, n, 4)) != ERR_OK)
				return rc;
	if (!(c->opts & DEID_RETAIN_DEVICE_IDENTITY))
		for (i = 0; i < sizeof dev_tags / sizeof dev_tags[0]; i++)
			if ((s = dcm_ds_str(ds, dev_tags[i], &n)) != NULL &&
			    (rc = deid_tokens_add(&c->tok, s, n, 3)) != ERR_OK)
				return rc;
	/* Patient's Address: words of 4 or more (house numbers go as digits) */
	if ((s = dcm_ds_str(ds, 0x00101040, &n)) != NULL && (rc = deid_tokens_add(&c->tok, s, n, 4)) != ERR_OK)
		return rc;
	return ERR_OK;
}

/* The meta group: the writer regenerates it; what it would carry over
 * (source/sending AE titles, presentation addresses, private information)
 * goes, and the Media Storage SOP Instance UID is mapped like the SOP
 * Instance UID (used when the data set has none). */
static enum err clean_meta(struct ctx *c)
{
	struct dcm_ds *m = &c->f->meta;
	uint32_t i, w;
	enum err rc;

	for (i = 0, w = 0; i < m->n; i++) {
		struct dcm_elem *e = &m->e[i];
		if (e->tag == 0x00020003 && !(c->opts & DEID_RETAIN_UIDS) && e->seq == NULL) {
			rc = map_uids(c, m, e);
			if (rc != ERR_OK)
				return rc;
		} else if (e->tag > 0x00020003 && e->tag != 0x00020010 && e->tag != 0x00020012 &&
		           e->tag != 0x00020013) {
			c->st.removed++;
			continue;
		}
		if (w != i)
			m->e[w] = m->e[i];
		w++;
	}
	m->n = w;
	m->order = NULL;
	return ERR_OK;
}

static enum err add_code_str(struct dcm_ds *ds, struct dcm_elem *sq, const char *code, const char *meaning)
{
	struct dcm_ds *item;
	enum err rc;

	rc = dcm_seq_add_item(ds, sq, &item);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(item, 0x00080100, VR_SH, code);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(item, 0x00080102, VR_SH, "DCM");
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(item, 0x00080104, VR_LO, meaning);
	return rc;
}

static enum err add_code(struct dcm_ds *ds, struct dcm_elem *sq, unsigned idx)
{
	return add_code_str(ds, sq, opt_codes[idx], opt_meanings[idx]);
}

static bool seq_has_code(const struct dcm_elem *sq, const char *code)
{
	uint32_t i;
	size_t n = 0, cl = strlen(code);

	for (i = 0; i < sq->seq->n; i++) {
		const char *v = dcm_ds_str(sq->seq->items[i], 0x00080100, &n);
		if (v != NULL && n == cl && memcmp(v, code, cl) == 0)
			return true;
	}
	return false;
}

/* Patient Identity Removed, De-identification Method (text) and Code
 * Sequence: the Basic Profile and every option applied. Values of an
 * earlier de-identification are kept, ours added. */
static enum err attest(struct ctx *c)
{
	struct dcm_ds *ds = &c->f->ds;
	struct dcm_elem *sq;
	struct wbuf w;
	const char *old;
	size_t n = 0;
	unsigned i;
	enum err rc;

	rc = dcm_ds_set_str(ds, 0x00120062, VR_CS, "YES");
	if (rc != ERR_OK)
		return rc;
	wbuf_init(&w, 64 * 1024);
	old = dcm_ds_str(ds, 0x00120063, &n);
	if (old != NULL && n > 0 && !has_prefix(old, n, "dicomvault ")) {
		wbuf_put(&w, old, n);
		wbuf_putc(&w, '\\');
	}
	wbuf_puts(&w, "dicomvault PS3.15 2026d Table E.1-1: Basic Profile");
	if (c->mask != NULL) {
		wbuf_puts(&w, "\\burned-in annotation masked (rule ");
		wbuf_put(&w, c->mask->name, strnlen(c->mask->name, 40));
		wbuf_putc(&w, ')');
	}
	for (i = 0; i < DEID_NOPTS; i++)
		if (c->opts & (1u << i)) {
			wbuf_putc(&w, '\\');
			wbuf_puts(&w, opt_meanings[i]);
		}
	rc = wbuf_err(&w);
	if (rc == ERR_OK)
		rc = dcm_ds_set(ds, 0x00120063, VR_LO, w.p, w.len);
	wbuf_fini(&w);
	if (rc != ERR_OK)
		return rc;
	sq = dcm_ds_find(ds, 0x00120064);
	if (sq == NULL || sq->seq == NULL || (sq->flags & DCM_EF_ENCAPS)) {
		rc = dcm_ds_set_seq(ds, 0x00120064, &sq);
		if (rc != ERR_OK)
			return rc;
	}
	if (!seq_has_code(sq, opt_codes[DEID_NOPTS]) && (rc = add_code(ds, sq, DEID_NOPTS)) != ERR_OK)
		return rc;
	for (i = 0; i < DEID_NOPTS; i++)
		if ((c->opts & (1u << i)) && !seq_has_code(sq, opt_codes[i]) && (rc = add_code(ds, sq, i)) != ERR_OK)
			return rc;
	/* PS3.16 CID 7050: burned-in text masked */
	if (c->mask != NULL && !seq_has_code(sq, "113101") &&
	    (rc = add_code_str(ds, sq, "113101", "Clean Pixel Data Option")) != ERR_OK)
		return rc;
	/* PS3.15 E.3.6: say what became of the dates (General Image module) */
	if (dcm_ds_find(ds, TAG_PIXEL_DATA) != NULL || dcm_ds_find(ds, 0x00280303) != NULL) {
		const char *v = (c->opts & DEID_RETAIN_LONG_MODIFIED_DATES) ? "MODIFIED"
		                : (c->opts & DEID_RETAIN_LONG_FULL_DATES) ? "UNMODIFIED" : "REMOVED";
		rc = dcm_ds_set_str(ds, 0x00280303, VR_CS, v);
	}
	return rc;
}

enum err deid_apply(struct dcm_file *f, const struct deid_opts *o, struct deid_stats *st, char *why, size_t whylen)
{
	struct ctx c;
	struct wbuf snap;
	char pkey[512];
	size_t npkey;
	enum err rc = ERR_INTERNAL;

	if (why != NULL && whylen > 0)
		why[0] = 0;
	if (f == NULL || o == NULL)
		return ERR_INTERNAL;
	if (o->project_key == NULL || secret_len(o->project_key) < DEID_KEY_MIN) {
		set_why(why, whylen, "a project key of at least %u bytes is needed", DEID_KEY_MIN);
		return ERR_UNSUPPORTED;
	}
	if ((o->options & DEID_RETAIN_LONG_FULL_DATES) && (o->options & DEID_RETAIN_LONG_MODIFIED_DATES)) {
		set_why(why, whylen, "retain-long-full-dates and retain-long-modified-dates exclude each other");
		return ERR_UNSUPPORTED;
	}
	memset(&c, 0, sizeof c);
	c.o = o;
	c.opts = o->options & DEID_ALL_OPTIONS;
	c.f = f;
	c.why = why;
	c.whylen = whylen;
	deid_tokens_init(&c.tok);
	wbuf_init(&snap, (size_t)1 << 31);
	rc = check_refuse(&c);
	if (rc == ERR_OK && o->escrow != NULL)
		rc = deid_escrow_snapshot(f, &snap);
	if (rc == ERR_OK && c.mask != NULL) {
		/* before the walk, which may remove what the rule matched on */
		rc = deid_mask_pixels(f, c.mask, why, whylen);
		if (rc == ERR_OK)
			c.st.masked++;
	}
	if (rc != ERR_OK)
		goto out;
	c.fam = deid_family_of(&f->ds);
	npkey = deid_patient_key(&f->ds, pkey, sizeof pkey);
	rc = deid_date_offset(o->project_key, pkey, npkey, &c.days);
	if (rc == ERR_OK)
		rc = collect_tokens(&c);
	if (rc == ERR_OK)
		rc = clean_meta(&c);
	if (rc == ERR_OK)
		rc = walk(&c, &f->ds, 0, 0);
	if (rc == ERR_OK)
		rc = attest(&c);
	if (rc == ERR_OK && o->escrow != NULL)
		rc = deid_escrow_attach(f, snap.p, snap.len, o->escrow, &c.st.escrowed, why, whylen);
	if (rc != ERR_OK) {
		if (why != NULL && whylen > 0 && why[0] == 0)
			set_why(why, whylen, "de-identification failed: %s", err_str(rc));
		goto out;
	}
	if (st != NULL) {
		st->files++;
		st->removed += c.st.removed;
		st->replaced += c.st.replaced;
		st->kept += c.st.kept;
		st->private_removed += c.st.private_removed;
		st->private_kept += c.st.private_kept;
		st->uids += c.st.uids;
		st->dates_shifted += c.st.dates_shifted;
		st->cleaned += c.st.cleaned;
		st->suspect += c.st.suspect;
		st->masked += c.st.masked;
		st->escrowed += c.st.escrowed;
	}
out:
	if (snap.p != NULL)
		mem_wipe(snap.p, snap.len);
	wbuf_fini(&snap);
	deid_tokens_fini(&c.tok);
	mem_wipe(pkey, sizeof pkey);
	mem_wipe(&c.days, sizeof c.days);
	return rc;
}
