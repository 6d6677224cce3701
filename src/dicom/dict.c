/* dict.c: lookups in the generated dictionary tables. Layer: dicom. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dict.h"

const struct dcm_ts *const DCM_TS_IMPLICIT_LE = &dict_ts_tab[0];
const struct dcm_ts *const DCM_TS_EXPLICIT_LE = &dict_ts_tab[1];
const struct dcm_ts *const DCM_TS_DEFLATED_LE = &dict_ts_tab[3];
const struct dcm_ts *const DCM_TS_EXPLICIT_BE = &dict_ts_tab[4];

const struct dict_entry *dict_lookup(uint32_t tag)
{
	size_t lo = 0, hi = dict_exact_n, i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dict_exact[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < dict_exact_n && dict_exact[lo].tag == tag)
		return &dict_exact[lo];
	for (i = 0; i < dict_masked_n; i++)
		if ((tag & dict_masked[i].mask) == dict_masked[i].tag)
			return &dict_masked[i];
	return NULL;
}

/* Keyword index: sorted once, on first use. */
static const void **kw_index;   /* const struct dict_entry * */
static size_t kw_n;
static pthread_once_t kw_once = PTHREAD_ONCE_INIT;

static int kw_cmp(const void *a, const void *b)
{
	const struct dict_entry *x = *(const void *const *)a;
	const struct dict_entry *y = *(const void *const *)b;
	return strcmp(x->keyword, y->keyword);
}

static void kw_build(void)
{
	size_t i, n = 0;

	kw_index = malloc((dict_exact_n + dict_masked_n) * sizeof *kw_index);
	if (kw_index == NULL)
		return;
	for (i = 0; i < dict_exact_n; i++)
		if (dict_exact[i].keyword[0])
			kw_index[n++] = &dict_exact[i];
	for (i = 0; i < dict_masked_n; i++)
		if (dict_masked[i].keyword[0])
			kw_index[n++] = &dict_masked[i];
	qsort(kw_index, n, sizeof *kw_index, kw_cmp);
	kw_n = n;
}

/* Binary search of a sorted array of n pointers for the entry whose
 * string (at byte offset field of the pointed-to struct) equals key. */
static const void *bsearch_str(const void **idx, size_t n, size_t field, const char *key, size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = *(const char *const *)((const char *)idx[mid] + field);
		int c = strncmp(k, key, len);
		/* equal up to a NUL in key: k may be shorter than len (found by qido_fuzz) */
		if (c == 0 && strnlen(k, len + 1) != len)
			c = 1;
		if (c < 0)
			lo = mid + 1;
		else if (c > 0)
			hi = mid;
		else
			return idx[mid];
	}
	return NULL;
}

const struct dict_entry *dict_lookup_keyword(const char *kw, size_t len)
{
	if (pthread_once(&kw_once, kw_build) != 0 || kw_index == NULL)
		return NULL;
	return bsearch_str(kw_index, kw_n, offsetof(struct dict_entry, keyword), kw, len);
}

/* Compare a wire string (padded with spaces or NULs) with a C string. */
static bool padded_eq(const char *wire, size_t len, const char *s)
{
	size_t n = strlen(s);

	while (len > 0 && (wire[len - 1] == ' ' || wire[len - 1] == 0))
		len--;
	while (len > 0 && wire[0] == ' ') {
		wire++;
		len--;
	}
	return len == n && memcmp(wire, s, n) == 0;
}

const struct dict_private *dict_lookup_private(uint32_t tag, const char *creator, size_t creator_len)
{
	uint16_t g = TAG_GROUP(tag);
	uint8_t e = (uint8_t)(TAG_ELEM(tag) & 0xFF);
	size_t i;

	if (!TAG_IS_PRIVATE(tag) || TAG_ELEM(tag) < 0x1000)
		return NULL;
	for (i = 0; i < dict_private_n; i++) {
		const struct dict_private *p = &dict_private_tab[i];
		if (p->group == g && p->elem == e && padded_eq(creator, creator_len, p->creator))
			return p;
	}
	return NULL;
}

const struct dcm_ts *dict_ts(const char *uid, size_t len)
{
	size_t i;

	for (i = 0; i < dict_ts_n; i++)
		if (padded_eq(uid, len, dict_ts_tab[i].uid))
			return &dict_ts_tab[i];
	return NULL;
}

/* UID index: sorted once, on first use (lookups run for every UID a
 * de-identification or a dump meets). */
static const void **uid_index;  /* const struct uid_entry * */
static pthread_once_t uid_once = PTHREAD_ONCE_INIT;

static int uid_cmp(const void *a, const void *b)
{
	const struct uid_entry *x = *(const void *const *)a, *y = *(const void *const *)b;

	return strcmp(x->uid, y->uid);
}

static void uid_build(void)
{
	size_t i;

	uid_index = malloc(dict_uid_n * sizeof *uid_index);
	if (uid_index == NULL)
		return;
	for (i = 0; i < dict_uid_n; i++)
		uid_index[i] = &dict_uid_tab[i];
	qsort(uid_index, dict_uid_n, sizeof *uid_index, uid_cmp);
}

const struct uid_entry *dict_uid(const char *uid, size_t len)
{
	while (len > 0 && (uid[len - 1] == ' ' || uid[len - 1] == 0))
		len--;
	while (len > 0 && uid[0] == ' ') {
		uid++;
		len--;
	}
	if (len == 0 || pthread_once(&uid_once, uid_build) != 0 || uid_index == NULL)
		return NULL;
	return bsearch_str(uid_index, dict_uid_n, offsetof(struct uid_entry, uid), uid, len);
}

uint16_t dict_implicit_vr(uint32_t tag)
{
	const struct dict_entry *d;
	uint16_t elem = TAG_ELEM(tag);

	if (elem == 0x0000)
		return VR_UL;  /* group length */
	if (TAG_IS_PRIVATE(tag)) {
		if (TAG_IS_PRIVATE_CREATOR(tag))
			return VR_LO;
		return VR_UN;
	}
	d = dict_lookup(tag);
	if (d == NULL || d->vr == VR_NONE)
		return VR_UN;
	switch (d->amb) {
	case VR_AMB_OB_OW:
	case VR_AMB_US_OW:
	case VR_AMB_US_SS_OW:
		return VR_OW;
	default:
		return d->vr;
	}
}
