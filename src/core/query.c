/* query.c: the matching engine shared by QIDO-RS and C-FIND (query.h,
 * docs/internals/qido.md). A query becomes (1) an index filter on what is
 * in the clear (UIDs, dates, modality) or keyed-hashed (Patient ID and name,
 * accession number, exact ASCII values only) and (2) match keys checked on
 * each candidate's record: its clear columns and its sealed attributes,
 * decrypted under the patient's data key outside the index lock and
 * converted to UTF-8. Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/charset.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dict.h"
#include "dicomvault/index.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "pn_fold_table.h"
#include "store_int.h"

#define SEQ_DEPTH 4u          /* sequence nesting copied into records */

/* ---- what the vault keeps, by level ---- */

enum {
	A_SEALED = 1,   /* in the level's sealed data set (else from index columns) */
	A_REQ = 2,      /* required return key of its level (PS3.18 Tables 10.6.3-3..5) */
	A_AVAIL = 4,    /* InstanceAvailability: required at study and instance level */
	A_OWN = 8       /* only at its own level (patient counts) */
};

struct qattr {
	uint32_t tag;
	uint16_t vr;
	uint8_t level;
	uint8_t flags;
};

static const struct qattr attrs[] = {
	{ 0x00080016, VR_UI, QRY_INSTANCE, A_REQ },           /* SOPClassUID */
	{ 0x00080018, VR_UI, QRY_INSTANCE, A_REQ },           /* SOPInstanceUID */
	{ 0x00080020, VR_DA, QRY_STUDY, A_REQ },              /* StudyDate */
	{ 0x00080030, VR_TM, QRY_STUDY, A_REQ },              /* StudyTime */
	{ 0x00080050, VR_SH, QRY_STUDY, A_SEALED | A_REQ },   /* AccessionNumber */
	{ 0x00080056, VR_CS, QRY_STUDY, A_REQ | A_AVAIL },    /* InstanceAvailability */
	{ 0x00080060, VR_CS, QRY_SERIES, A_REQ },             /* Modality */
	{ 0x00080061, VR_CS, QRY_STUDY, A_REQ },              /* ModalitiesInStudy */
	{ 0x00080090, VR_PN, QRY_STUDY, A_SEALED | A_REQ },   /* ReferringPhysicianName */
	{ 0x00081030, VR_LO, QRY_STUDY, A_SEALED },           /* StudyDescription */
	{ 0x0008103E, VR_LO, QRY_SERIES, A_SEALED | A_REQ },  /* SeriesDescription */
	{ 0x00083002, VR_UI, QRY_INSTANCE, 0 },               /* AvailableTransferSyntaxUID */
	{ 0x00100010, VR_PN, QRY_PATIENT, A_SEALED | A_REQ }, /* PatientName */
	{ 0x00100020, VR_LO, QRY_PATIENT, A_SEALED | A_REQ }, /* PatientID */
	{ 0x00100021, VR_LO, QRY_PATIENT, A_SEALED },         /* IssuerOfPatientID */
	{ 0x00100030, VR_DA, QRY_PATIENT, A_SEALED | A_REQ }, /* PatientBirthDate */
	{ 0x00100040, VR_CS, QRY_PATIENT, A_SEALED | A_REQ }, /* PatientSex */
	{ 0x00180015, VR_CS, QRY_SERIES, A_SEALED },          /* BodyPartExamined */
	{ 0x0020000D, VR_UI, QRY_STUDY, A_REQ },              /* StudyInstanceUID */
	{ 0x0020000E, VR_UI, QRY_SERIES, A_REQ },             /* SeriesInstanceUID */
	{ 0x00200010, VR_SH, QRY_STUDY, A_SEALED | A_REQ },   /* StudyID */
	{ 0x00200011, VR_IS, QRY_SERIES, A_REQ },             /* SeriesNumber */
	{ 0x00200013, VR_IS, QRY_INSTANCE, A_REQ },           /* InstanceNumber */
	{ 0x00201200, VR_IS, QRY_PATIENT, A_REQ | A_OWN },    /* NumberOfPatientRelatedStudies */
	{ 0x00201202, VR_IS, QRY_PATIENT, A_REQ | A_OWN },    /* NumberOfPatientRelatedSeries */
	{ 0x00201204, VR_IS, QRY_PATIENT, A_REQ | A_OWN },    /* NumberOfPatientRelatedInstances */
	{ 0x00201206, VR_IS, QRY_STUDY, A_REQ },              /* NumberOfStudyRelatedSeries */
	{ 0x00201208, VR_IS, QRY_STUDY, A_REQ },              /* NumberOfStudyRelatedInstances */
	{ 0x00201209, VR_IS, QRY_SERIES, A_REQ },             /* NumberOfSeriesRelatedInstances */
	{ 0x00280008, VR_IS, QRY_INSTANCE, A_REQ },           /* NumberOfFrames */
	{ 0x00280010, VR_US, QRY_INSTANCE, A_REQ },           /* Rows */
	{ 0x00280011, VR_US, QRY_INSTANCE, A_REQ },           /* Columns */
	{ 0x00280100, VR_US, QRY_INSTANCE, A_REQ },           /* BitsAllocated */
	{ 0x00400244, VR_DA, QRY_SERIES, A_SEALED | A_REQ },  /* PerformedProcedureStepStartDate */
	{ 0x00400245, VR_TM, QRY_SERIES, A_SEALED | A_REQ },  /* PerformedProcedureStepStartTime */
	{ 0x00400275, VR_SQ, QRY_SERIES, A_SEALED | A_REQ },  /* RequestAttributesSequence */
};
#define NATTRS (sizeof attrs / sizeof attrs[0])

static const struct qattr *attr_find(uint32_t tag)
{
	size_t i;

	for (i = 0; i < NATTRS; i++)
		if (attrs[i].tag == tag)
			return &attrs[i];
	return NULL;
}

/* Can a key on a be matched in a query at level? */
static bool attr_matchable(const struct qattr *a, enum qry_level level)
{
	if (a == NULL || a->level > level)
		return false;
	return !(a->flags & A_OWN) || a->level == level;
}

/* ---- the query ---- */

enum mkind { M_EXACT, M_WILD, M_RANGE };

struct mval {
	uint8_t kind;
	const char *s;          /* UTF-8, in the query's arena */
	size_t n;
	char lo[24], hi[24];    /* M_RANGE, normalised; "" = open */
	long long num;          /* IS, US...: the number */
	bool is_num;
};

struct qkey {
	uint32_t tag;
	uint16_t vr;
	struct mval *v;         /* nv == 0: universal */
	size_t nv;
	struct qkey *sub;       /* a sequence key's item keys */
	size_t nsub;
};

/* A sequence key whose item names attributes (o.seq_items_asked): the
 * attributes named, and the key holding the item keys to match (NULL when
 * none has a value: every item goes). */
struct seqret {
	uint32_t tag;
	uint32_t *want;
	size_t nwant;
	const struct qkey *key;
};

#define QRY_MAX_SEQRET 16   /* sequence keys answered item by item; more: whole */

struct qry {
	struct arena a;
	struct seqret seqret[QRY_MAX_SEQRET];
	size_t nseqret;
	struct qry_opts o;
	char collection[IDX_UID_MAX + 1];
	struct qkey *keys;      /* match keys (those with a value) */
	size_t nkeys, nkeys_total, nelems;
	uint32_t *ret;          /* return keys */
	size_t nret;
	uint32_t ignored[QRY_MAX_KEYS];
	size_t nignored;
	uint32_t omitted[QRY_MAX_KEYS + QRY_MAX_INCLUDE];   /* o.omit_unkept: return keys left out */
	size_t nomitted;
	unsigned sealed;        /* QRY_LEVEL_BIT of levels whose sealed attributes are needed */
	struct idx_query iq;    /* the index filter; hashes are made by qry_run */
	const struct mval *pid, *acc;
	const char *pname;      /* one group of an exact name (pn_filter) */
	size_t pname_n;
};

static void why_set(char *why, size_t whylen, uint32_t tag, const char *what)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "(%04X,%04X): %s", TAG_GROUP(tag), TAG_ELEM(tag), what);
}

static int tag_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* An attribute given twice in one data set (PS3.5 7.1: a tag occurs at
 * most once) is refused rather than matched twice: its tag in why. */
static enum err no_twice(const struct dcm_ds *ds, char *why, size_t whylen)
{
	uint32_t *t;
	size_t i;
	enum err rc = ERR_OK;

	if (ds->n < 2)
		return ERR_OK;
	t = malloc(sizeof *t * ds->n);
	if (t == NULL)
		return ERR_NOMEM;
	for (i = 0; i < ds->n; i++)
		t[i] = ds->e[i].tag;
	qsort(t, ds->n, sizeof *t, tag_cmp);
	for (i = 1; i < ds->n && rc == ERR_OK; i++)
		if (t[i] == t[i - 1]) {
			why_set(why, whylen, t[i], "given twice");
			rc = ERR_PARSE;
		}
	free(t);
	return rc;
}

static bool wild_vr(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_CS: case VR_LO: case VR_LT: case VR_PN: case VR_SH: case VR_ST: case VR_UC: case VR_UR:
	case VR_UT:
		return true;
	default:
		return false;
	}
}

/* Leading spaces are insignificant for these VRs (PS3.5 6.2). */
static bool trim_leading(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_AS: case VR_CS: case VR_DA: case VR_DS: case VR_DT: case VR_IS: case VR_TM: case VR_UI:
		return true;
	default:
		return false;
	}
}

static void trim(uint16_t vr, const char **s, size_t *n)
{
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == 0))
		(*n)--;
	if (trim_leading(vr))
		while (*n > 0 && **s == ' ') {
			(*s)++;
			(*n)--;
		}
}

static bool parse_ll(const char *s, size_t n, long long *out)
{
	long long v = 0;
	size_t i = 0;
	bool neg = false;

	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n || n - i > 12)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

static bool digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Time part HH[MM[SS[.F{1,6}]]] into out (13 chars: HHMMSS.FFFFFF). */
static bool norm_time(const char *s, size_t n, bool upper, char *out)
{
	static const char *const hi = "235959.999999", *const lo = "000000.000000";
	size_t i = 0, f;

	memcpy(out, upper ? hi : lo, 13);
	out[13] = 0;
	if (n < 2 || !digits(s, 2) || num2(s) > 23)
		return false;
	memcpy(out, s, 2);
	i = 2;
	if (i == n)
		return true;
	if (n - i < 2 || !digits(s + i, 2) || num2(s + i) > 59)
		return false;
	memcpy(out + 2, s + i, 2);
	i += 2;
	if (i == n)
		return true;
	if (n - i < 2 || !digits(s + i, 2) || num2(s + i) > 60)
		return false;
	memcpy(out + 4, s + i, 2);
	i += 2;
	if (i == n)
		return true;
	if (s[i] != '.' || n - i < 2 || n - i > 7 || !digits(s + i + 1, n - i - 1))
		return false;
	f = n - i - 1;
	memcpy(out + 7, s + i + 1, f);
	return true;
}

static bool norm_date(const char *s, size_t n, char *out)
{
	if (n != 8 || !digits(s, 8))
		return false;
	if (num2(s + 4) < 1 || num2(s + 4) > 12 || num2(s + 6) < 1 || num2(s + 6) > 31)
		return false;
	memcpy(out, s, 8);
	out[8] = 0;
	return true;
}

/* DT: YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX] (the offset is ignored). */
static bool norm_dt(const char *s, size_t n, bool upper, char *out)
{
	char date[9];
	size_t i, cut = n;

	for (i = 4; i < n; i++)
		if (s[i] == '+' || s[i] == '-') {
			if (n - i != 5 || !digits(s + i + 1, 4))
				return false;
			cut = i;
			break;
		}
	n = cut;
	if (n < 4 || !digits(s, 4))
		return false;
	memcpy(date, s, 4);
	memcpy(date + 4, upper ? "1231" : "0101", 4);
	if (n >= 6) {
		if (!digits(s + 4, 2))
			return false;
		memcpy(date + 4, s + 4, 2);
	}
	if (n >= 8) {
		if (!digits(s + 6, 2))
			return false;
		memcpy(date + 6, s + 6, 2);
	}
	if (n == 5 || n == 7 || !norm_date(date, 8, out))
		return false;
	if (n <= 8)
		return norm_time(upper ? "23" : "00", 2, upper, out + 8);
	return norm_time(s + 8, n - 8, upper, out + 8);
}

bool qry_norm_datetime(uint16_t vr, const char *s, size_t n, bool upper, char out[24])
{
	char tmp[11];

	out[0] = 0;
	if (vr == VR_DA) {
		/* an ACR-NEMA date YYYY.MM.DD in a record */
		if (n == 10 && s[4] == '.' && s[7] == '.') {
			memcpy(tmp, s, 4);
			memcpy(tmp + 4, s + 5, 2);
			memcpy(tmp + 6, s + 8, 2);
			return norm_date(tmp, 8, out);
		}
		return norm_date(s, n, out);
	}
	if (vr == VR_TM)
		return norm_time(s, n, upper, out);
	if (vr == VR_DT)
		return norm_dt(s, n, upper, out);
	return false;
}

/* A DA, TM or DT value or range into v. */
static bool parse_range(uint16_t vr, const char *s, size_t n, struct mval *v)
{
	size_t i;

	v->kind = M_RANGE;
	for (i = 0; i < n; i++) {
		if (s[i] != '-')
			continue;
		/* a DT offset also has '-': the range's dash is where both halves parse */
		if (i == 0 && n == 1)
			return false;
		if ((i == 0 || qry_norm_datetime(vr, s, i, false, v->lo)) &&
		    (i == n - 1 || qry_norm_datetime(vr, s + i + 1, n - i - 1, true, v->hi))) {
			if (i == 0)
				v->lo[0] = 0;
			if (i == n - 1)
				v->hi[0] = 0;
			return !(v->lo[0] && v->hi[0] && strcmp(v->lo, v->hi) > 0);
		}
		if (vr != VR_DT)
			return false;
	}
	return qry_norm_datetime(vr, s, n, false, v->lo) && qry_norm_datetime(vr, s, n, true, v->hi);
}

/* One value of a key. *universal: it is "*" (matches all). */
static enum err parse_value(uint32_t tag, uint16_t vr, const char *s, size_t n, struct mval *v, bool *universal,
                            char *why, size_t whylen)
{
	size_t i;
	bool wild = false, all_star = true;

	memset(v, 0, sizeof *v);
	v->s = s;
	v->n = n;
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			why_set(why, whylen, tag, "control character in the value");
			return ERR_PARSE;
		}
		if (s[i] == '*' || s[i] == '?')
			wild = true;
		if (s[i] != '*')
			all_star = false;
	}
	if (all_star) {   /* "*" is universal for every VR */
		*universal = true;
		return ERR_OK;
	}
	switch (vr) {
	case VR_UI:
		if (!vr_uid_ok(s, n)) {
			why_set(why, whylen, tag, "not a UID (1 to 64 digits and dots)");
			return ERR_PARSE;
		}
		v->kind = M_EXACT;
		return ERR_OK;
	case VR_DA: case VR_TM: case VR_DT:
		if (!parse_range(vr, s, n, v)) {
			why_set(why, whylen, tag, vr == VR_DA ? "not a date (YYYYMMDD) or date range"
			                          : vr == VR_TM ? "not a time (HHMMSS.FFFFFF) or time range"
			                                        : "not a date-time or date-time range");
			return ERR_PARSE;
		}
		return ERR_OK;
	case VR_IS: case VR_US: case VR_SS: case VR_UL: case VR_SL:
		if (!parse_ll(s, n, &v->num)) {
			why_set(why, whylen, tag, "not an integer");
			return ERR_PARSE;
		}
		v->is_num = true;
		v->kind = M_EXACT;
		return ERR_OK;
	default:
		break;
	}
	if (wild && !wild_vr(vr)) {
		why_set(why, whylen, tag, "wildcards are not allowed for this attribute's VR");
		return ERR_PARSE;
	}
	v->kind = wild ? M_WILD : M_EXACT;
	return ERR_OK;
}

/* The key's value as text: strings converted to UTF-8 (into the arena),
 * binary integers printed. *s = NULL: no value (universal). */
static enum err key_text(struct qry *q, const struct dcm_ds *id, const struct dcm_elem *e, uint16_t vr,
                         const char **s, size_t *n, char *why, size_t whylen)
{
	struct dcm_charset cs;
	struct wbuf w;
	char *p;
	size_t len = e->len;
	enum err rc;

	*s = NULL;
	*n = 0;
	if (e->len == 0)
		return ERR_OK;
	if (e->val == NULL || (e->flags & DCM_EF_BULK) || e->len > QRY_MAX_VALUE_LEN) {
		why_set(why, whylen, e->tag, "value too long");
		return ERR_LIMIT;
	}
	if (vr == VR_US || vr == VR_SS || vr == VR_UL || vr == VR_SL) {
		long long v;
		p = arena_alloc(&q->a, 24);
		if (p == NULL)
			return ERR_NOMEM;
		if (e->len < vr_fixed_size(vr)) {
			why_set(why, whylen, e->tag, "binary value too short");
			return ERR_PARSE;
		}
		if (vr == VR_US)
			v = (long long)(e->val[0] | (e->val[1] << 8));
		else if (vr == VR_SS)
			v = (long long)(int16_t)(e->val[0] | (e->val[1] << 8));
		else if (vr == VR_UL)
			v = (long long)((uint32_t)e->val[0] | ((uint32_t)e->val[1] << 8) | ((uint32_t)e->val[2] << 16) |
			                ((uint32_t)e->val[3] << 24));
		else
			v = (long long)(int32_t)((uint32_t)e->val[0] | ((uint32_t)e->val[1] << 8) | ((uint32_t)e->val[2] << 16) |
			                         ((uint32_t)e->val[3] << 24));
		*n = (size_t)snprintf(p, 24, "%lld", v);
		*s = p;
		return ERR_OK;
	}
	if (!vr_is_string(vr)) {
		why_set(why, whylen, e->tag, "matching on this VR is not supported");
		return ERR_UNSUPPORTED;
	}
	while (len > 0 && (e->val[len - 1] == ' ' || e->val[len - 1] == 0))
		len--;
	if (len == 0)
		return ERR_OK;
	if (!vr_uses_charset(vr)) {
		p = arena_alloc(&q->a, len + 1);
		if (p == NULL)
			return ERR_NOMEM;
		memcpy(p, e->val, len);
		p[len] = 0;
		*s = p;
		*n = len;
		return ERR_OK;
	}
	dcm_ds_charset(id, &cs);
	wbuf_init(&w, 4 * QRY_MAX_VALUE_LEN);
	rc = charset_to_utf8(&cs, vr == VR_PN, e->val, len, &w);
	if (rc == ERR_OK && (p = arena_alloc(&q->a, w.len + 1)) != NULL) {
		if (w.len)
			memcpy(p, w.p, w.len);
		p[w.len] = 0;
		*s = p;
		*n = w.len;
	} else if (rc == ERR_OK) {
		rc = ERR_NOMEM;
	} else {
		why_set(why, whylen, e->tag, "value not valid in the identifier's character set");
		rc = ERR_PARSE;
	}
	wbuf_fini(&w);
	return rc;
}

static enum err parse_key(struct qry *q, const struct dcm_ds *id, const struct dcm_elem *e, uint16_t vr,
                          unsigned depth, struct qkey *k, char *why, size_t whylen);

/* A sequence key: one item of keys (none: universal). */
static enum err parse_seq(struct qry *q, const struct dcm_elem *e, unsigned depth, struct qkey *k, char *why,
                          size_t whylen)
{
	const struct dcm_ds *item;
	uint32_t i;
	enum err rc;

	if (e->seq == NULL || e->seq->n == 0)
		return ERR_OK;
	if (e->seq->n > 1) {
		why_set(why, whylen, e->tag, "a sequence key has one item");
		return ERR_PARSE;
	}
	if (depth > 0)   /* nested sequence keys: not matched */
		return ERR_OK;
	item = e->seq->items[0];
	rc = no_twice(item, why, whylen);
	if (rc != ERR_OK)
		return rc;
	k->sub = arena_zalloc(&q->a, sizeof *k->sub * (item->n ? item->n : 1));
	if (k->sub == NULL)
		return ERR_NOMEM;
	for (i = 0; i < item->n; i++) {
		const struct dcm_elem *se = &item->e[i];
		const struct dict_entry *d = dict_lookup(se->tag);
		struct qkey *sk = &k->sub[k->nsub];
		if (se->tag == TAG_SPECIFIC_CHARSET || d == NULL || TAG_IS_PRIVATE(se->tag))
			continue;
		rc = parse_key(q, item, se, d->vr, depth + 1, sk, why, whylen);
		if (rc == ERR_UNSUPPORTED)
			continue;
		if (rc != ERR_OK)
			return rc;
		if (sk->nv > 0 || sk->nsub > 0)
			k->nsub++;
	}
	return ERR_OK;
}

static enum err parse_key(struct qry *q, const struct dcm_ds *id, const struct dcm_elem *e, uint16_t vr,
                          unsigned depth, struct qkey *k, char *why, size_t whylen);

static enum err parse_key_value(struct qry *q, const struct dcm_ds *id, const struct dcm_elem *e, uint16_t vr,
                                unsigned depth, struct qkey *k, char *why, size_t whylen)
{
	const char *s, *p;
	size_t n, i, start, count = 1;
	bool universal = false, single = vr_is_single_text(vr);
	enum err rc;

	if (vr == VR_SQ)
		return parse_seq(q, e, depth, k, why, whylen);
	rc = key_text(q, id, e, vr, &s, &n, why, whylen);
	if (rc != ERR_OK || s == NULL)
		return rc;
	if (!single)
		for (i = 0; i < n; i++)
			count += s[i] == '\\';
	if (count > QRY_MAX_VALUES) {
		why_set(why, whylen, e->tag, "too many values");
		return ERR_LIMIT;
	}
	k->v = arena_zalloc(&q->a, sizeof *k->v * count);
	if (k->v == NULL)
		return ERR_NOMEM;
	for (start = 0; start <= n;) {
		size_t end = start;
		while (end < n && (single || s[end] != '\\'))
			end++;
		p = s + start;
		i = end - start;
		trim(vr, &p, &i);
		if (i > 0) {
			rc = parse_value(e->tag, vr, p, i, &k->v[k->nv], &universal, why, whylen);
			if (rc != ERR_OK)
				return rc;
			if (universal) {
				k->nv = 0;
				return ERR_OK;
			}
			k->nv++;
		}
		start = end + 1;
	}
	return ERR_OK;
}

/* One key of the identifier (or of a sequence item in it): at most
 * QRY_MAX_ELEMS elements in all, of which at most QRY_MAX_KEYS with a
 * value to match (an empty one is a return key only: PS3.4 C.2.2.1.2 lets
 * a query ask for any number of them). */
static enum err parse_key(struct qry *q, const struct dcm_ds *id, const struct dcm_elem *e, uint16_t vr,
                          unsigned depth, struct qkey *k, char *why, size_t whylen)
{
	enum err rc;

	memset(k, 0, sizeof *k);
	k->tag = e->tag;
	k->vr = vr;
	if (++q->nelems > QRY_MAX_ELEMS) {
		why_set(why, whylen, e->tag, "too many attributes");
		return ERR_LIMIT;
	}
	rc = parse_key_value(q, id, e, vr, depth, k, why, whylen);
	if (rc == ERR_OK && k->nv > 0 && ++q->nkeys_total > QRY_MAX_KEYS) {
		why_set(why, whylen, e->tag, "too many keys with a value");
		return ERR_LIMIT;
	}
	return rc;
}

static void list_of(struct qry *q, const struct qkey *k, struct idx_list *l)
{
	const char **v;
	size_t i;

	for (i = 0; i < k->nv; i++)
		if (k->v[i].kind != M_EXACT)
			return;
	v = arena_alloc(&q->a, sizeof *v * k->nv);
	if (v == NULL)
		return;   /* no index filter: the key is still matched */
	for (i = 0; i < k->nv; i++) {
		char *c = arena_alloc(&q->a, k->v[i].n + 1);
		if (c == NULL)
			return;
		memcpy(c, k->v[i].s, k->v[i].n);
		c[k->v[i].n] = 0;
		v[i] = c;
	}
	l->v = v;
	l->n = k->nv;
}

static bool ascii(const struct mval *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if ((unsigned char)v->s[i] >= 0x80)
			return false;
	return true;
}

/* An exact Patient's Name filters on the keyed hash of one of its groups
 * (its first non-empty one): the store hashes each group of the name, in
 * UTF-8, and a match has that group among them (qry_pn_match). */
static void pn_filter(struct qry *q, const struct mval *v)
{
	struct qry_pn k;
	unsigned i;

	qry_pn_split(v->s, v->n, &k);
	for (i = 0; i < 3 && k.n[i] == 0; i++)
		;
	if (i < 3 && k.n[i] <= STORE_PN_HASH_MAX) {
		q->pname = k.g[i];
		q->pname_n = k.n[i];
	}
}

/* The index filter: a superset of the matches (every key is checked again
 * on the record). Hashes only for one exact ASCII value (Patient ID,
 * accession: stored values are hashed in their own character set, which
 * agrees with UTF-8 on ASCII), and for one exact name (pn_filter). */
static void plan(struct qry *q)
{
	size_t i;

	q->iq.level = (enum idx_level)q->o.level;
	q->iq.collection = q->o.collection ? q->collection : NULL;
	for (i = 0; i < q->nkeys; i++) {
		const struct qkey *k = &q->keys[i];
		const struct mval *one = k->nv == 1 ? &k->v[0] : NULL;
		switch (k->tag) {
		case 0x0020000D: list_of(q, k, &q->iq.study_uids); break;
		case 0x0020000E: list_of(q, k, &q->iq.series_uids); break;
		case 0x00080018: list_of(q, k, &q->iq.sop_uids); break;
		case 0x00080016: list_of(q, k, &q->iq.sop_classes); break;
		case 0x00080060: list_of(q, k, &q->iq.modalities); break;
		case 0x00080061: list_of(q, k, &q->iq.study_modalities); break;
		case 0x00080020:
			if (one) {
				q->iq.date_from = one->lo[0] ? one->lo : NULL;
				q->iq.date_to = one->hi[0] ? one->hi : NULL;
			}
			break;
		case 0x00100020:
			if (one && one->kind == M_EXACT && ascii(one))
				q->pid = one;
			break;
		case 0x00100010:
			if (one && one->kind == M_EXACT)
				pn_filter(q, one);
			break;
		case 0x00080050:
			if (one && one->kind == M_EXACT && ascii(one))
				q->acc = one;
			break;
		default:
			break;
		}
	}
}

static bool has_ret(const struct qry *q, uint32_t tag)
{
	size_t i;

	for (i = 0; i < q->nret; i++)
		if (q->ret[i] == tag)
			return true;
	return false;
}

/* With o.omit_unkept, whether a return key is left out (and listed): an
 * attribute not kept at the query's level would only ever be empty. The
 * RetrieveURL is the caller's to add; the Specific Character Set is in
 * every result. */
static bool omit(struct qry *q, uint32_t tag)
{
	size_t i;

	if (!q->o.omit_unkept || tag == 0x00081190 || tag == TAG_SPECIFIC_CHARSET ||
	    attr_matchable(attr_find(tag), q->o.level))
		return false;
	for (i = 0; i < q->nomitted; i++)
		if (q->omitted[i] == tag)
			return true;
	if (q->nomitted < sizeof q->omitted / sizeof q->omitted[0])
		q->omitted[q->nomitted++] = tag;
	return true;
}

static void add_ret(struct qry *q, uint32_t tag)
{
	const struct qattr *a = attr_find(tag);

	if (!has_ret(q, tag))
		q->ret[q->nret++] = tag;
	if (a != NULL && (a->flags & A_SEALED) && attr_matchable(a, q->o.level))
		q->sealed |= QRY_LEVEL_BIT(a->level);
}

/* Notes a sequence key of the identifier whose one item names attributes
 * (o.seq_items_asked): k its parsed key (item keys with a value, if any). */
static enum err seq_asked(struct qry *q, const struct dcm_elem *e, const struct qkey *k)
{
	const struct dcm_ds *item;
	struct seqret *sr;
	size_t i;

	if (!q->o.seq_items_asked || e->vr != VR_SQ || e->seq == NULL || e->seq->n != 1 ||
	    q->nseqret == QRY_MAX_SEQRET)
		return ERR_OK;
	item = e->seq->items[0];
	if (item->n == 0)
		return ERR_OK;   /* an empty item: the sequence whole */
	sr = &q->seqret[q->nseqret];
	sr->want = arena_alloc(&q->a, sizeof *sr->want * item->n);
	if (sr->want == NULL)
		return ERR_NOMEM;
	sr->nwant = 0;
	for (i = 0; i < item->n; i++)
		if (item->e[i].tag != TAG_SPECIFIC_CHARSET && TAG_ELEM(item->e[i].tag) != 0 &&
		    dict_lookup(item->e[i].tag) != NULL && !TAG_IS_PRIVATE(item->e[i].tag))
			sr->want[sr->nwant++] = item->e[i].tag;
	if (sr->nwant == 0)
		return ERR_OK;   /* nothing asked for in the item: the sequence whole */
	sr->tag = e->tag;
	sr->key = NULL;
	if (k->nsub > 0) {
		/* a copy: k's slot is reused when the key is not kept for
		 * matching; its item keys live in the arena */
		struct qkey *kc = arena_alloc(&q->a, sizeof *kc);
		if (kc == NULL)
			return ERR_NOMEM;
		*kc = *k;
		sr->key = kc;
	}
	q->nseqret++;
	return ERR_OK;
}

enum err qry_new(const struct qry_opts *o, const struct dcm_ds *id, struct qry **out, char *why, size_t whylen)
{
	struct qry *q;
	size_t i;
	unsigned l;
	enum err rc = ERR_OK;

	if (why != NULL && whylen > 0)
		why[0] = 0;
	if (o->level > QRY_INSTANCE || o->limit < 0 || o->offset < 0 || o->n_include > QRY_MAX_INCLUDE ||
	    (o->collection && strlen(o->collection) > IDX_UID_MAX))
		return ERR_INTERNAL;
	if (id != NULL && id->n > QRY_MAX_ELEMS) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "too many attributes (at most %u)", QRY_MAX_ELEMS);
		return ERR_LIMIT;
	}
	if (id != NULL && (rc = no_twice(id, why, whylen)) != ERR_OK)
		return rc;
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return ERR_NOMEM;
	arena_init(&q->a, 16u << 20);
	q->o = *o;
	if (q->o.ret_levels == 0)
		q->o.ret_levels = QRY_LEVEL_BIT(o->level);
	q->o.include = NULL;
	if (o->collection)
		snprintf(q->collection, sizeof q->collection, "%s", o->collection);
	q->keys = arena_zalloc(&q->a, sizeof *q->keys * (QRY_MAX_KEYS + 1));
	q->ret = arena_zalloc(&q->a, sizeof *q->ret * (NATTRS + QRY_MAX_ELEMS + QRY_MAX_INCLUDE + 4));
	if (q->keys == NULL || q->ret == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	/* the keys of the identifier */
	for (i = 0; id != NULL && i < id->n; i++) {
		const struct dcm_elem *e = &id->e[i];
		const struct qattr *a = attr_find(e->tag);
		const struct dict_entry *d = dict_lookup(e->tag);
		struct qkey *k = &q->keys[q->nkeys];
		/* the character set, C-FIND's level, group 0002 and group lengths
		 * (gggg,0000; retired, PS3.5 7.2) are not keys: neither matched
		 * nor answered */
		if (e->tag == TAG_SPECIFIC_CHARSET || e->tag == 0x00080052 || TAG_GROUP(e->tag) == 0x0002 ||
		    TAG_ELEM(e->tag) == 0)
			continue;
		if (d == NULL || TAG_IS_PRIVATE(e->tag)) {
			if (q->nignored < QRY_MAX_KEYS)
				q->ignored[q->nignored++] = e->tag;
			continue;
		}
		if (!omit(q, e->tag))
			add_ret(q, e->tag);
		rc = parse_key(q, id, e, a ? a->vr : d->vr, 0, k, why, whylen);
		if (rc == ERR_UNSUPPORTED) {
			rc = ERR_OK;
			k->nv = 0;
			k->nsub = 0;
		}
		if (rc == ERR_OK)
			rc = seq_asked(q, e, k);
		if (rc != ERR_OK)
			goto out;
		if (k->nv == 0 && k->nsub == 0)
			continue;   /* universal: a return key only */
		if (!attr_matchable(a, o->level)) {
			if (q->nignored < QRY_MAX_KEYS)
				q->ignored[q->nignored++] = e->tag;
			continue;
		}
		if (a->flags & A_SEALED)
			q->sealed |= QRY_LEVEL_BIT(a->level);
		q->nkeys++;
	}
	/* return keys: the required ones of the levels asked for, the
	 * hierarchy's UIDs, those asked for */
	for (i = 0; i < NATTRS; i++) {
		const struct qattr *a = &attrs[i];
		if (!attr_matchable(a, o->level))
			continue;
		if (((a->flags & A_REQ) && (q->o.ret_levels & QRY_LEVEL_BIT(a->level)) && !(a->flags & A_AVAIL)) ||
		    ((a->flags & A_AVAIL) && (q->o.ret_levels & (QRY_LEVEL_BIT(QRY_STUDY) | QRY_LEVEL_BIT(QRY_INSTANCE)))))
			add_ret(q, a->tag);
	}
	if (o->level >= QRY_STUDY)
		add_ret(q, 0x0020000D);
	if (o->level >= QRY_SERIES)
		add_ret(q, 0x0020000E);
	if (o->level == QRY_INSTANCE)
		add_ret(q, 0x00080018);
	if (o->level == QRY_PATIENT)
		add_ret(q, 0x00100020);
	for (i = 0; i < o->n_include; i++)
		if (!omit(q, o->include[i]))
			add_ret(q, o->include[i]);
	if (o->include_all)
		for (l = 0; l <= (unsigned)o->level; l++)
			q->sealed |= QRY_LEVEL_BIT(l);
	q->sealed &= ~QRY_LEVEL_BIT(QRY_INSTANCE);
	plan(q);
out:
	if (rc != ERR_OK) {
		qry_free(q);
		return rc;
	}
	*out = q;
	return ERR_OK;
}

void qry_free(struct qry *q)
{
	if (q == NULL)
		return;
	arena_fini(&q->a);
	free(q);
}

size_t qry_ignored(const struct qry *q, const uint32_t **tags)
{
	*tags = q->ignored;
	return q->nignored;
}

size_t qry_omitted(const struct qry *q, const uint32_t **tags)
{
	*tags = q->omitted;
	return q->nomitted;
}

/* ---- matching ---- */

static size_t utf8_len(const char *s, size_t n)
{
	unsigned char c = (unsigned char)s[0];
	size_t l = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;

	return l < n ? l : n;
}

static char fold(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

bool qry_wild_match(const char *p, size_t pn, const char *s, size_t n, bool fc)
{
	size_t pi = 0, si = 0, star_p = 0, star_s = 0;
	bool star = false;

	while (si < n) {
		if (pi < pn && p[pi] == '*') {
			star = true;
			star_p = ++pi;
			star_s = si;
		} else if (pi < pn && p[pi] == '?') {
			pi++;
			si += utf8_len(s + si, n - si);
		} else if (pi < pn && (fc ? fold(p[pi]) == fold(s[si]) : p[pi] == s[si])) {
			pi++;
			si++;
		} else if (star) {
			pi = star_p;
			star_s += utf8_len(s + star_s, n - star_s);
			si = star_s;
		} else {
			return false;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

void qry_pn_split(const char *s, size_t n, struct qry_pn *out)
{
	size_t i, g = 0, start = 0;

	memset(out, 0, sizeof *out);
	for (i = 0; i <= n && g < 3; i++) {
		if (i < n && (s[i] != '=' || g == 2))
			continue;
		out->g[g] = s + start;
		out->n[g] = i - start;
		while (out->n[g] > 0 && (out->g[g][out->n[g] - 1] == ' ' || out->g[g][out->n[g] - 1] == '^'))
			out->n[g]--;
		if (i < n)
			out->grouped = true;
		start = i + 1;
		g++;
	}
}

static unsigned fold_cp(unsigned cp)
{
	size_t lo = 0, hi = sizeof pn_fold_table / sizeof pn_fold_table[0];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pn_fold_table[mid][0] == cp)
			return pn_fold_table[mid][1];
		if (pn_fold_table[mid][0] < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return cp;
}

size_t qry_pn_fold(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			out[o++] = fold((char)c);
			i++;
		} else if (c >= 0xC2 && c <= 0xDF && i + 1 < n && ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
			/* (0xC0 and 0xC1 begin overlong forms: copied as they are) */
			unsigned cp = fold_cp(((c & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu));
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else {
				out[o++] = (char)(0xC0 | (cp >> 6));
				out[o++] = (char)(0x80 | (cp & 0x3F));
			}
			i += 2;
		} else {
			out[o++] = s[i++];
		}
	}
	return o;
}

/* One group of a key against one of a value, both folded; a group longer
 * than any valid one matches nothing. */
static bool pn_group_match(const char *k, size_t kn, bool wild, const char *s, size_t n)
{
	char fk[STORE_PN_HASH_MAX], fs[STORE_PN_HASH_MAX];

	if (kn > sizeof fk || n > sizeof fs)
		return false;
	kn = qry_pn_fold(k, kn, fk);
	n = qry_pn_fold(s, n, fs);
	if (wild)
		return qry_wild_match(fk, kn, fs, n, false);
	return kn == n && memcmp(fk, fs, n) == 0;
}

bool qry_pn_match(const char *key, size_t kn, bool wild, const char *s, size_t n)
{
	struct qry_pn k, v;
	unsigned i;

	qry_pn_split(key, kn, &k);
	qry_pn_split(s, n, &v);
	if (!k.grouped) {
		for (i = 0; i < 3; i++)
			if ((i == 0 || v.n[i] > 0) && pn_group_match(k.g[0], k.n[0], wild, v.g[i], v.n[i]))
				return true;
		return false;
	}
	for (i = 0; i < 3; i++)
		if (k.n[i] > 0 && !pn_group_match(k.g[i], k.n[i], wild, v.g[i], v.n[i]))
			return false;
	return true;
}

static bool match_one(const struct qkey *k, const struct mval *v, const char *s, size_t n)
{
	char norm[24];
	long long x;

	if (k->vr == VR_PN && v->kind != M_RANGE)
		return qry_pn_match(v->s, v->n, v->kind == M_WILD, s, n);
	switch (v->kind) {
	case M_WILD:
		return qry_wild_match(v->s, v->n, s, n, false);
	case M_RANGE:
		if (!qry_norm_datetime(k->vr, s, n, false, norm))
			return false;
		return (v->lo[0] == 0 || strcmp(norm, v->lo) >= 0) && (v->hi[0] == 0 || strcmp(norm, v->hi) <= 0);
	default:
		break;
	}
	if (v->is_num)
		return parse_ll(s, n, &x) && x == v->num;
	return n == v->n && memcmp(s, v->s, n) == 0;
}

static bool match_ds(const struct qkey *keys, size_t n, const struct dcm_ds *rec);

static bool match_key(const struct qkey *k, const struct dcm_ds *rec)
{
	const struct dcm_elem *e;
	const char *s;
	char num[24];
	size_t n, start, i;
	uint16_t u;

	if (k->nsub > 0) {
		e = dcm_ds_find(rec, k->tag);
		if (e == NULL || e->seq == NULL)
			return false;
		for (i = 0; i < e->seq->n; i++)
			if (match_ds(k->sub, k->nsub, e->seq->items[i]))
				return true;
		return false;
	}
	if (k->vr == VR_US) {
		if (dcm_ds_get_u16(rec, k->tag, &u) != ERR_OK)
			return false;
		n = (size_t)snprintf(num, sizeof num, "%u", u);
		s = num;
	} else {
		s = dcm_ds_str(rec, k->tag, &n);
		if (s == NULL || n == 0)
			return false;
	}
	/* any value of the record against any value of the key */
	for (start = 0; start <= n;) {
		size_t end = start, len;
		const char *p;
		while (end < n && (vr_is_single_text(k->vr) || s[end] != '\\'))
			end++;
		p = s + start;
		len = end - start;
		trim(k->vr, &p, &len);
		for (i = 0; len > 0 && i < k->nv; i++)
			if (match_one(k, &k->v[i], p, len))
				return true;
		start = end + 1;
	}
	return false;
}

static bool match_ds(const struct qkey *keys, size_t n, const struct dcm_ds *rec)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!match_key(&keys[i], rec))
			return false;
	return true;
}

bool qry_match(const struct qry *q, const struct dcm_ds *rec)
{
	return match_ds(q->keys, q->nkeys, rec);
}

/* ---- records ---- */

/* Copies e of from (whose character set is cs) into to, text converted to
 * UTF-8; a value its set cannot decode is kept with U+FFFD
 * (charset_to_utf8_lossy), so that results show it and queries match it
 * as shown (a wildcard finds it; an identifier must be valid itself). */
static enum err copy_utf8(struct dcm_ds *to, const struct dcm_charset *cs, const struct dcm_elem *e, struct wbuf *tmp,
                          unsigned depth)
{
	struct dcm_elem *sq;
	struct dcm_charset ics;
	uint32_t i, j;
	enum err rc;

	if (e->tag == TAG_SPECIFIC_CHARSET || (e->flags & (DCM_EF_BULK | DCM_EF_ENCAPS | DCM_EF_UNSEQ)))
		return ERR_OK;
	if (e->seq != NULL) {
		if (e->vr != VR_SQ || depth >= SEQ_DEPTH)
			return ERR_OK;
		rc = dcm_ds_set_seq(to, e->tag, &sq);
		for (i = 0; rc == ERR_OK && i < e->seq->n; i++) {
			const struct dcm_ds *from = e->seq->items[i];
			struct dcm_ds *item;
			dcm_ds_charset(from, &ics);
			rc = dcm_seq_add_item(to, sq, &item);
			for (j = 0; rc == ERR_OK && j < from->n; j++)
				rc = copy_utf8(item, &ics, &from->e[j], tmp, depth + 1);
		}
		return rc;
	}
	if (!vr_uses_charset(e->vr) || e->len == 0)
		return dcm_ds_set(to, e->tag, e->vr, e->val, e->len);
	wbuf_reset(tmp);
	/* a value its character set cannot decode is shown, not dropped */
	rc = charset_to_utf8_lossy(cs, e->vr == VR_PN, e->val, e->len, tmp);
	if (rc != ERR_OK)
		return rc;
	return dcm_ds_set(to, e->tag, e->vr, tmp->len ? tmp->p : (const uint8_t *)"", tmp->len);
}

static enum err set_str(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *s)
{
	return s[0] ? dcm_ds_set_str(ds, tag, vr, s) : ERR_OK;
}

static enum err set_num(struct dcm_ds *ds, uint32_t tag, long long v)
{
	char b[24];

	if (v < 0)
		return ERR_OK;
	snprintf(b, sizeof b, "%lld", v);
	return dcm_ds_set_str(ds, tag, VR_IS, b);
}

static enum err set_us(struct dcm_ds *ds, uint32_t tag, int64_t v)
{
	uint8_t b[2];

	if (v < 0 || v > 0xFFFF)
		return ERR_OK;
	b[0] = (uint8_t)(v & 0xFF);
	b[1] = (uint8_t)(v >> 8);
	return dcm_ds_set(ds, tag, VR_US, b, 2);
}

/* A batch of index rows, copied out under the lock. */
struct brow {
	struct idx_qrow r;
	size_t off[4], len[4];
};

struct batch {
	struct brow rows[QRY_BATCH];
	size_t n;
	struct wbuf buf;
};

static enum err collect(void *ctx, const struct idx_qrow *row)
{
	struct batch *b = ctx;
	struct brow *br;
	const struct idx_blob *bl[4];
	size_t i;

	if (b->n >= QRY_BATCH)
		return ERR_INTERNAL;
	br = &b->rows[b->n++];
	br->r = *row;
	bl[0] = &row->pat.wrapped_key;
	bl[1] = &row->pat.enc;
	bl[2] = &row->st.enc;
	bl[3] = &row->se.enc;
	for (i = 0; i < 4; i++) {
		br->off[i] = b->buf.len;
		br->len[i] = bl[i]->n;
		if (bl[i]->n)
			wbuf_put(&b->buf, bl[i]->p, bl[i]->n);
	}
	return wbuf_err(&b->buf);
}

static void batch_fix(struct batch *b)
{
	struct idx_blob *bl[4];
	size_t r, i;

	for (r = 0; r < b->n; r++) {
		struct brow *br = &b->rows[r];
		bl[0] = &br->r.pat.wrapped_key;
		bl[1] = &br->r.pat.enc;
		bl[2] = &br->r.st.enc;
		bl[3] = &br->r.se.enc;
		for (i = 0; i < 4; i++) {
			bl[i]->p = br->len[i] ? b->buf.p + br->off[i] : (const uint8_t *)"";
			bl[i]->n = br->len[i];
		}
	}
}

struct dk_cache {
	int64_t pid[QRY_DK_CACHE];
	struct secret *dk[QRY_DK_CACHE];
	unsigned next;
};

static void dk_cache_fini(struct dk_cache *c)
{
	unsigned i;

	for (i = 0; i < QRY_DK_CACHE; i++)
		secret_free(c->dk[i]);
	memset(c, 0, sizeof *c);
}

static enum err dk_get(struct vault *v, struct dk_cache *c, const struct idx_patient *p, const struct secret **out)
{
	char hex[65], label[80];
	unsigned i;
	enum err rc;

	for (i = 0; i < QRY_DK_CACHE; i++)
		if (c->dk[i] != NULL && c->pid[i] == p->id) {
			*out = c->dk[i];
			return ERR_OK;
		}
	i = c->next++ % QRY_DK_CACHE;
	secret_free(c->dk[i]);
	c->dk[i] = NULL;
	store_hex(p->key_hmac, 16, hex);
	snprintf(label, sizeof label, "dk:%s", hex);
	rc = keywrap_unwrap(v->mk, label, strlen(label), p->wrapped_key.p, p->wrapped_key.n, &c->dk[i]);
	if (rc != ERR_OK)
		return rc;
	c->pid[i] = p->id;
	*out = c->dk[i];
	return ERR_OK;
}

/* Opens a sealed attribute set and copies it into rec as UTF-8. */
/* Opens a sealed attribute set into rec; patient_only: only its patient
 * attributes (group 0010). */
static enum err add_sealed(struct dcm_ds *rec, const struct secret *dk, const char *ad, const struct idx_blob *b,
                           bool patient_only, struct wbuf *tmp)
{
	struct dcm_read_opts ro = { 0 };
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct dcm_charset cs;
	struct src s;
	struct src_mem m;
	uint8_t *pt = NULL;
	size_t ptn = 0;
	uint32_t i;
	enum err rc;

	if (b->n == 0)
		return ERR_OK;
	rc = aead_open(dk, ad, strlen(ad), b->p, b->n, &pt, &ptn);
	if (rc != ERR_OK)
		return rc;
	if (ptn == 0)   /* none of the attributes was present */
		goto out;
	if (ptn > QRY_RECORD_MAX) {
		rc = ERR_LIMIT;
		goto out;
	}
	ro.no_meta = true;
	ro.ts = dict_ts("1.2.840.10008.1.2.1", 19);
	src_mem_init(&s, &m, pt, ptn);
	rc = dcm_file_read(&s, &ro, &f, &ei);
	if (rc != ERR_OK)
		goto out;
	dcm_ds_charset(&f->ds, &cs);
	for (i = 0; rc == ERR_OK && i < f->ds.n; i++)
		if (!patient_only || f->ds.e[i].tag >> 16 == 0x0010)
			rc = copy_utf8(rec, &cs, &f->ds.e[i], tmp, 0);
out:
	dcm_file_free(f);
	if (pt != NULL)
		mem_wipe(pt, ptn);
	free(pt);
	return rc;
}

/* The sealed set of study_uid into rec (patient_only: its patient
 * attributes only), then, when the patient attributes are wanted and the
 * set has none of its own, the patient row's. A study's set holds its own
 * copy of the patient attributes, with (0010,0020) always (empty if the
 * instance had none), since session 27; the patient row, shared by every
 * collection, holds what the patient's first instance said, whatever its
 * collection: answering from it told a user of one collection the name,
 * birth date and sex another collection stored for the Patient ID. */
static enum err add_study_set(struct dcm_ds *rec, const struct secret *dk, const struct idx_patient *pat,
                              const char *study_uid, const struct idx_blob *study_enc, bool patient_only,
                              bool patient, struct wbuf *tmp)
{
	char hex[65], ad[96];
	enum err rc = ERR_OK;

	if (study_uid != NULL && study_enc != NULL) {
		snprintf(ad, sizeof ad, "study:%s", study_uid);
		rc = add_sealed(rec, dk, ad, study_enc, patient_only, tmp);
	}
	if (rc != ERR_OK || !patient || dcm_ds_find(rec, 0x00100020) != NULL)
		return rc;
	store_hex(pat->key_hmac, 16, hex);
	snprintf(ad, sizeof ad, "patient:%s", hex);
	return add_sealed(rec, dk, ad, &pat->enc, false, tmp);
}

/* The record of a row: clear columns of every level down to the query's,
 * sealed attributes of the levels the query needs. The patient attributes
 * of a study, series or instance are the study's own (add_patient_attrs);
 * at the patient level, those of the study q->o.patient_study names. */
static enum err build_record(struct vault *v, const struct qry *q, struct dk_cache *dc, const struct idx_qrow *r,
                             struct dcm_ds *rec, struct wbuf *tmp)
{
	const struct secret *dk = NULL;
	char ad[96];
	enum qry_level l = q->o.level;
	enum err rc = dcm_ds_set_str(rec, TAG_SPECIFIC_CHARSET, VR_CS, "ISO_IR 192");

	if (rc == ERR_OK && q->sealed)
		rc = dk_get(v, dc, &r->pat, &dk);
	if (rc == ERR_OK && l == QRY_PATIENT && (q->sealed & QRY_LEVEL_BIT(QRY_PATIENT))) {
		const char *uid = NULL;
		const struct idx_blob *enc = NULL;
		if (q->o.patient_study == NULL || !q->o.patient_study(q->o.allow_ctx, r->pat.key_hmac, &uid, &enc))
			uid = NULL;
		rc = add_study_set(rec, dk, &r->pat, uid, enc, true, true, tmp);
	}
	if (rc == ERR_OK && l == QRY_PATIENT) {
		int64_t n[3] = { r->n_studies, r->n_series, r->n_instances };
		/* what the caller may see, before it is matched (a count over
		 * other collections would answer for them) */
		if (q->o.patient_counts != NULL && !q->o.patient_counts(q->o.allow_ctx, r->pat.key_hmac, n)) {
			n[0] = r->n_studies;
			n[1] = r->n_series;
			n[2] = r->n_instances;
		}
		rc = set_num(rec, 0x00201200, n[0]);
		if (rc == ERR_OK)
			rc = set_num(rec, 0x00201202, n[1]);
		if (rc == ERR_OK)
			rc = set_num(rec, 0x00201204, n[2]);
		return rc;
	}
	if (rc == ERR_OK && (q->sealed & (QRY_LEVEL_BIT(QRY_PATIENT) | QRY_LEVEL_BIT(QRY_STUDY))))
		rc = add_study_set(rec, dk, &r->pat, r->st.uid, &r->st.enc, !(q->sealed & QRY_LEVEL_BIT(QRY_STUDY)),
		                   (q->sealed & QRY_LEVEL_BIT(QRY_PATIENT)) != 0, tmp);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00080020, VR_DA, r->st.date);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00080030, VR_TM, r->st.time);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(rec, 0x00080056, VR_CS, "ONLINE");
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00080061, VR_CS, r->st.modalities);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x0020000D, VR_UI, r->st.uid);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00201206, r->st.n_series);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00201208, r->st.n_instances);
	if (rc != ERR_OK || l == QRY_STUDY)
		return rc;
	if (q->sealed & QRY_LEVEL_BIT(QRY_SERIES)) {
		snprintf(ad, sizeof ad, "series:%s", r->se.uid);
		rc = add_sealed(rec, dk, ad, &r->se.enc, false, tmp);
	}
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00080060, VR_CS, r->se.modality);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x0020000E, VR_UI, r->se.uid);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00200011, r->se.number);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00201209, r->se.n_instances);
	if (rc != ERR_OK || l == QRY_SERIES)
		return rc;
	rc = set_str(rec, 0x00080016, VR_UI, r->in.sop_class);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00080018, VR_UI, r->in.uid);
	if (rc == ERR_OK)
		rc = set_str(rec, 0x00083002, VR_UI, r->in.ts_uid);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00200013, r->in.number);
	if (rc == ERR_OK)
		rc = set_num(rec, 0x00280008, r->in.frames);
	if (rc == ERR_OK)
		rc = set_us(rec, 0x00280010, r->in.rows);
	if (rc == ERR_OK)
		rc = set_us(rec, 0x00280011, r->in.columns);
	if (rc == ERR_OK)
		rc = set_us(rec, 0x00280100, r->in.bits_allocated);
	return rc;
}

static const struct seqret *seqret_of(const struct qry *q, uint32_t tag)
{
	size_t i;

	for (i = 0; i < q->nseqret; i++)
		if (q->seqret[i].tag == tag)
			return &q->seqret[i];
	return NULL;
}

/* A return key the record lacks, answered empty (as C-FIND returns it):
 * an empty sequence, or a value of length 0 in its dictionary VR. */
static enum err set_empty(struct dcm_ds *ds, uint32_t tag)
{
	const struct dict_entry *d = dict_lookup(tag);
	struct dcm_elem *sq;

	if (d == NULL || dcm_ds_find(ds, tag) != NULL)
		return ERR_OK;
	if (d->vr == VR_SQ)
		return dcm_ds_set_seq(ds, tag, &sq);
	return dcm_ds_set(ds, tag, d->vr == VR_NONE ? VR_UN : d->vr, NULL, 0);
}

/* The stored sequence e as a C-FIND asked for it (sr): the items that
 * match its item keys, each with the attributes named only (empty when
 * the item has none: a return key, as at the top level). */
static enum err copy_items(struct dcm_ds *res, const struct seqret *sr, const struct dcm_elem *e, struct wbuf *tmp)
{
	struct dcm_charset ics;
	struct dcm_elem *sq;
	uint32_t i;
	size_t j;
	enum err rc = dcm_ds_set_seq(res, e->tag, &sq);

	for (i = 0; rc == ERR_OK && i < e->seq->n; i++) {
		const struct dcm_ds *from = e->seq->items[i];
		struct dcm_ds *item;
		if (sr->key != NULL && !match_ds(sr->key->sub, sr->key->nsub, from))
			continue;
		dcm_ds_charset(from, &ics);
		rc = dcm_seq_add_item(res, sq, &item);
		for (j = 0; rc == ERR_OK && j < sr->nwant; j++) {
			const struct dcm_elem *x = dcm_ds_find(from, sr->want[j]);
			rc = x != NULL ? copy_utf8(item, &ics, x, tmp, 1) : set_empty(item, sr->want[j]);
		}
	}
	return rc;
}

/* The result: the return keys of the record (absent ones empty, as C-FIND
 * returns them), or all of it. */
static enum err build_result(const struct qry *q, const struct dcm_ds *rec, struct dcm_ds *res, struct wbuf *tmp)
{
	struct dcm_charset cs;
	size_t i;
	enum err rc = dcm_ds_set_str(res, TAG_SPECIFIC_CHARSET, VR_CS, "ISO_IR 192");

	dcm_ds_charset(rec, &cs);
	if (q->o.include_all)
		for (i = 0; rc == ERR_OK && i < rec->n; i++)
			rc = copy_utf8(res, &cs, &rec->e[i], tmp, 0);
	for (i = 0; rc == ERR_OK && i < q->nret; i++) {
		const struct dcm_elem *e = dcm_ds_find(rec, q->ret[i]);
		const struct seqret *sr = seqret_of(q, q->ret[i]);
		if (e != NULL && sr != NULL && e->seq != NULL)
			rc = copy_items(res, sr, e, tmp);
		else if (e != NULL)
			rc = copy_utf8(res, &cs, e, tmp, 0);
		else
			rc = set_empty(res, q->ret[i]);
	}
	return rc;
}

struct run {
	struct vault *v;
	const struct qry *q;
	struct dk_cache dc;
	struct wbuf tmp;
	struct qry_stats *st;
	int64_t matched;
	bool done;
	enum err (*fn)(void *ctx, struct qry_hit *h);
	void *ctx;
};

void qry_stats_fini(struct qry_stats *st)
{
	free(st->patients);
	free(st->pslots_);
	st->patients = NULL;
	st->pslots_ = NULL;
	st->npatients = st->npslots_ = 0;
}

/* The slot of key in st's table: its own, or the free one it would take. */
static uint32_t *pslot(const struct qry_stats *st, const uint8_t key[32])
{
	uint64_t h;
	size_t i;

	memcpy(&h, key, sizeof h);   /* a keyed hash: its bytes are uniform */
	for (i = (size_t)h & (st->npslots_ - 1);; i = (i + 1) & (st->npslots_ - 1)) {
		uint32_t x = st->pslots_[i];
		if (x == 0 || memcmp(st->patients + (size_t)(x - 1) * 32, key, 32) == 0)
			return &st->pslots_[i];
	}
}

/* key among st's patients, once. */
static enum err add_patient(struct qry_stats *st, const uint8_t key[32])
{
	uint32_t *slot;
	uint8_t *grown;
	size_t i;

	if (st->npatients > 0 && memcmp(st->patients + (st->npatients - 1) * 32, key, 32) == 0)
		return ERR_OK;   /* results come grouped by patient more often than not */
	if (st->npslots_ < 2 * (st->npatients + 1)) {
		size_t n = st->npslots_ ? 2 * st->npslots_ : 64;
		uint32_t *t;
		if (n > UINT32_MAX / 2 || n > SIZE_MAX / 32)
			return ERR_LIMIT;
		t = calloc(n, sizeof *t);
		grown = realloc(st->patients, n / 2 * 32);
		if (t == NULL || grown == NULL) {
			free(t);
			if (grown != NULL)
				st->patients = grown;
			return ERR_NOMEM;
		}
		free(st->pslots_);
		st->patients = grown;
		st->pslots_ = t;
		st->npslots_ = n;
		for (i = 0; i < st->npatients; i++)
			*pslot(st, st->patients + i * 32) = (uint32_t)(i + 1);
	}
	slot = pslot(st, key);
	if (*slot != 0)
		return ERR_OK;
	memcpy(st->patients + st->npatients * 32, key, 32);
	*slot = (uint32_t)++st->npatients;
	return ERR_OK;
}

/* Keeps uid as the one of every result so far (first: the first result),
 * or notes that there are several (or none, above the level). */
static void one_uid(bool first, bool *one, char kept[IDX_UID_MAX + 1], const char *uid)
{
	size_t n = strlen(uid);

	if (first) {
		*one = n > 0 && n <= IDX_UID_MAX;
		if (*one)
			memcpy(kept, uid, n + 1);
	} else if (*one && strcmp(kept, uid) != 0) {
		*one = false;
	}
}

static enum err process(struct run *ru, const struct idx_qrow *r)
{
	const struct qry *q = ru->q;
	struct dcm_file *rec = NULL, *res = NULL;
	struct qry_hit h;
	enum err rc;

	if (q->o.allow != NULL &&
	    !q->o.allow(q->o.allow_ctx, r->st.uid[0] ? r->st.collection : NULL, r->st.uid[0] ? r->st.uid : NULL,
	                r->pat.key_hmac))
		return ERR_OK;   /* not visible to the caller: as if absent */
	ru->st->candidates++;
	rc = dcm_file_new(&rec);
	if (rc != ERR_OK)
		return rc;
	rc = build_record(ru->v, q, &ru->dc, r, &rec->ds, &ru->tmp);
	if (rc == ERR_AUTH || rc == ERR_PARSE || rc == ERR_LIMIT) {
		/* an erased or damaged key or record: not a match, not an outage */
		log_error("query: the record of study %s cannot be read: %s", r->st.uid[0] ? r->st.uid : "(patient)",
		          err_str(rc));
		ru->st->skipped++;
		rc = ERR_OK;
		goto out;
	}
	if (rc != ERR_OK || !qry_match(q, &rec->ds))
		goto out;
	if (++ru->matched <= q->o.offset)
		goto out;
	if (q->o.limit > 0 && (int64_t)ru->st->matches >= q->o.limit) {
		ru->st->truncated = true;
		ru->done = true;
		goto out;
	}
	rc = dcm_file_new(&res);
	if (rc == ERR_OK)
		rc = build_result(q, &rec->ds, &res->ds, &ru->tmp);
	if (rc != ERR_OK)
		goto out;
	rc = add_patient(ru->st, r->pat.key_hmac);
	if (rc != ERR_OK)
		goto out;
	if (ru->st->matches == 0) {
		ru->st->one_patient = true;
		memcpy(ru->st->patient, r->pat.key_hmac, 32);
	} else if (memcmp(ru->st->patient, r->pat.key_hmac, 32) != 0) {
		ru->st->one_patient = false;
	}
	one_uid(ru->st->matches == 0, &ru->st->one_study, ru->st->study, r->st.uid);
	one_uid(ru->st->matches == 0, &ru->st->one_series, ru->st->series, r->se.uid);
	one_uid(ru->st->matches == 0, &ru->st->one_sop, ru->st->sop, r->in.uid);
	ru->st->matches++;
	memset(&h, 0, sizeof h);
	h.f = res;
	h.study_uid = r->st.uid;
	h.series_uid = r->se.uid;
	h.sop_uid = r->in.uid;
	h.patient = r->pat.key_hmac;
	rc = ru->fn(ru->ctx, &h);
out:
	dcm_file_free(res);
	dcm_file_free(rec);
	return rc;
}

static int64_t row_id(enum qry_level l, const struct idx_qrow *r)
{
	switch (l) {
	case QRY_PATIENT: return r->pat.id;
	case QRY_STUDY: return r->st.id;
	case QRY_SERIES: return r->se.id;
	default: return r->in.id;
	}
}

enum err qry_run(struct vault *v, const struct qry *q, enum err (*fn)(void *ctx, struct qry_hit *h), void *ctx,
                 struct qry_stats *st)
{
	struct index_store *ix = v->ix;
	struct idx_query iq = q->iq;
	struct batch *b;
	struct run ru;
	uint8_t h_id[32], h_name[32], h_acc[32];
	bool locked = false;
	size_t i;
	enum err rc = ERR_OK;

	memset(st, 0, sizeof *st);
	memset(&ru, 0, sizeof ru);
	if (q->pid != NULL && (rc = store_keyed(v, STORE_KEY_PATIENT_ID, q->pid->s, q->pid->n, h_id)) == ERR_OK)
		iq.patient_id_hmac = h_id;
	if (rc == ERR_OK && q->pname != NULL && (rc = store_pn_keyed(v, q->pname, q->pname_n, h_name)) == ERR_OK)
		iq.patient_name_hmac = h_name;
	if (rc == ERR_OK && q->acc != NULL && (rc = store_keyed(v, STORE_KEY_ACCESSION, q->acc->s, q->acc->n, h_acc)) == ERR_OK)
		iq.accession_hmac = h_acc;
	if (rc != ERR_OK)
		return rc;
	b = calloc(1, sizeof *b);
	if (b == NULL)
		return ERR_NOMEM;
	wbuf_init(&b->buf, (size_t)QRY_BATCH * 2 * QRY_RECORD_MAX);
	wbuf_init(&ru.tmp, 4 * QRY_RECORD_MAX);
	ru.v = v;
	ru.q = q;
	ru.st = st;
	ru.fn = fn;
	ru.ctx = ctx;
	iq.max_rows = QRY_BATCH;
	iq.after = 0;
	while (!ru.done) {
		b->n = 0;
		wbuf_reset(&b->buf);
		store_ix_lock(v, &locked);
		rc = ix->ops->level_query(ix, &iq, collect, b);
		store_ix_unlock(v, &locked);
		if (rc != ERR_OK)
			break;
		batch_fix(b);
		for (i = 0; rc == ERR_OK && !ru.done && i < b->n; i++)
			rc = process(&ru, &b->rows[i].r);
		if (rc != ERR_OK || b->n < QRY_BATCH)
			break;
		iq.after = row_id(q->o.level, &b->rows[b->n - 1].r);
	}
	if (b->buf.p)
		mem_wipe(b->buf.p, b->buf.len);
	wbuf_fini(&b->buf);
	free(b);
	if (ru.tmp.p)
		mem_wipe(ru.tmp.p, ru.tmp.len);
	wbuf_fini(&ru.tmp);
	dk_cache_fini(&ru.dc);
	mem_wipe(h_name, sizeof h_name);
	return rc;
}

struct pkeys {
	char (*out)[65];
	size_t max, *n;
};

static enum err pkey_hit(void *ctx, struct qry_hit *h)
{
	struct pkeys *pk = ctx;
	char hex[65];
	size_t i;

	store_hex(h->patient, 32, hex);
	for (i = 0; i < *pk->n; i++)
		if (strcmp(pk->out[i], hex) == 0)
			return ERR_OK;
	if (*pk->n == pk->max)
		return ERR_LIMIT;
	memcpy(pk->out[(*pk->n)++], hex, sizeof hex);
	return ERR_OK;
}

bool qry_patient_key_bin(const char hex[65], uint8_t out[32])
{
	size_t i;

	for (i = 0; i < 64; i++) {
		char c = hex[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] << 4) | d : d);
	}
	return hex[64] == 0;
}

enum err qry_patient_keys(struct vault *v, const char *id, const char *issuer, char (*out)[65], size_t max,
                          size_t *n)
{
	struct qry_opts qo;
	struct qry_stats st;
	struct dcm_file *f = NULL;
	struct qry *q = NULL;
	struct pkeys pk = { out, max, n };
	uint8_t key[32];
	char why[160];
	enum err rc;

	*n = 0;
	if (max == 0)
		return ERR_LIMIT;
	rc = store_patient_key(v, id, issuer, key);
	if (rc != ERR_OK)
		return rc;
	store_hex(key, 32, out[0]);
	*n = 1;
	if (issuer != NULL || strpbrk(id, "*?\\") != NULL)
		return ERR_OK;
	memset(&qo, 0, sizeof qo);
	qo.level = QRY_PATIENT;
	rc = dcm_file_new(&f);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(&f->ds, 0x00100020, VR_LO, id);
	if (rc == ERR_OK)
		rc = qry_new(&qo, &f->ds, &q, why, sizeof why);
	if (rc == ERR_OK) {
		memset(&st, 0, sizeof st);
		rc = qry_run(v, q, pkey_hit, &pk, &st);
		qry_stats_fini(&st);
	}
	qry_free(q);
	dcm_file_free(f);
	return rc;
}
