/* deid_test.c: de-identification (core/deid): the generated Table E.1-1,
 * actions on built data sets (Z, D, U, X, C, K and composite codes),
 * keyed pseudonyms and UIDs, references, private and safe private
 * attributes, date shifting, attestation, refusals, nested sequences,
 * options, and the meta group after writing. Layer: tests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/deid.h"
#include "dicomvault/deid_table.h"
#include "dicomvault/limits.h"

#define CT_IMAGE "1.2.840.10008.5.1.4.1.1.2"
#define COMPREHENSIVE_SR "1.2.840.10008.5.1.4.1.1.88.33"

static struct secret *key_a, *key_b;

static struct secret *mkkey(const char *s)
{
	struct secret *k = NULL;

	if (secret_from_bytes(s, strlen(s), &k) != ERR_OK)
		abort();
	return k;
}

static void set(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *v)
{
	if (dcm_ds_set_str(ds, tag, vr, v) != ERR_OK)
		abort();
}

static struct dcm_ds *add_seq_item(struct dcm_ds *ds, uint32_t tag)
{
	struct dcm_elem *sq = dcm_ds_find(ds, tag);
	struct dcm_ds *item = NULL;

	if (sq == NULL && dcm_ds_set_seq(ds, tag, &sq) != ERR_OK)
		abort();
	if (dcm_seq_add_item(ds, sq, &item) != ERR_OK)
		abort();
	return item;
}

/* A small CT image with identifying attributes. */
static struct dcm_file *mkfile(const char *pid, const char *sop, const char *study)
{
	struct dcm_file *f = NULL;
	static const uint8_t px[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	if (dcm_file_new(&f) != ERR_OK)
		abort();
	set(&f->ds, 0x00080016, VR_UI, CT_IMAGE);
	set(&f->ds, 0x00080018, VR_UI, sop);
	set(&f->ds, 0x00080020, VR_DA, "20200101");
	set(&f->ds, 0x00080021, VR_DA, "20200102");
	set(&f->ds, 0x00080030, VR_TM, "101500");
	set(&f->ds, 0x0008002A, VR_DT, "20200101120000.5+0100");
	set(&f->ds, 0x00080050, VR_SH, "ACC123456");
	set(&f->ds, 0x00080060, VR_CS, "CT");
	set(&f->ds, 0x00080080, VR_LO, "Saint Example Hospital");
	set(&f->ds, 0x0008103E, VR_LO, "Chest of Doe 20200101");
	set(&f->ds, 0x00100010, VR_PN, "Doe^John");
	set(&f->ds, 0x00100020, VR_LO, pid);
	set(&f->ds, 0x00100030, VR_DA, "19700304");
	set(&f->ds, 0x00100040, VR_CS, "M");
	set(&f->ds, 0x00181000, VR_LO, "SN-998877");
	set(&f->ds, 0x0020000D, VR_UI, study);
	set(&f->ds, 0x0020000E, VR_UI, "1.2.3.4.5.6.7.100");
	if (dcm_ds_set(&f->ds, 0x00280010, VR_US, "\x02\x00", 2) != ERR_OK ||
	    dcm_ds_set(&f->ds, 0x00280011, VR_US, "\x02\x00", 2) != ERR_OK ||
	    dcm_ds_set(&f->ds, TAG_PIXEL_DATA, VR_OW, px, sizeof px) != ERR_OK)
		abort();
	return f;
}

static enum err run(struct dcm_file *f, unsigned options, const struct secret *key, char *why, size_t whylen)
{
	struct deid_opts o = { .options = options, .flags = 0, .project_key = key };
	struct deid_stats st;

	memset(&st, 0, sizeof st);
	return deid_apply(f, &o, &st, why, whylen);
}

static void must_run(struct dcm_file *f, unsigned options, const struct secret *key)
{
	char why[256];
	enum err rc = run(f, options, key, why, sizeof why);

	if (rc != ERR_OK)
		fprintf(stderr, "  deid_apply: %s: %s\n", err_str(rc), why);
	CHECK_EQ_INT(rc, ERR_OK);
}

static const char *str(const struct dcm_ds *ds, uint32_t tag, char *buf, size_t cap)
{
	if (dcm_ds_get_cstr(ds, tag, buf, cap) != ERR_OK)
		return NULL;
	return buf;
}

static bool valid_uid(const char *u)
{
	size_t i, n = strlen(u);
	bool start = true;

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++) {
		if (u[i] == '.') {
			if (start)
				return false;
			start = true;
			continue;
		}
		if (u[i] < '0' || u[i] > '9')
			return false;
		if (start && u[i] == '0' && i + 1 < n && u[i + 1] != '.')
			return false;   /* leading zero */
		start = false;
	}
	return !start;
}

/* ---- the table ---- */

TEST(table_generated_completely)
{
	size_t counts[DEID_NACTIONS] = { 0 };
	size_t i;

	CHECK_EQ_INT(deid_rules_n, 657);
	CHECK_EQ_INT(deid_rules_exact_n + deid_rules_masked_n + 1, 657);
	CHECK_EQ_INT(deid_rules_masked_n, 3);
	CHECK_EQ_INT(deid_safe_private_n, 479);
	for (i = 1; i < deid_rules_exact_n; i++)
		CHECK(deid_rules[i - 1].tag < deid_rules[i].tag);
	for (i = 0; i < deid_rules_n; i++)
		counts[deid_rules[i].basic]++;
	/* the Basic Profile counts of ../shared/standard/README.md */
	CHECK_EQ_INT(counts[DEID_X], 417);
	CHECK_EQ_INT(counts[DEID_D], 93);
	CHECK_EQ_INT(counts[DEID_U], 55);
	CHECK_EQ_INT(counts[DEID_Z], 42);
	CHECK_EQ_INT(counts[DEID_XD], 23);
	CHECK_EQ_INT(counts[DEID_XZ], 11);
	CHECK_EQ_INT(counts[DEID_XZD], 8);
	CHECK_EQ_INT(counts[DEID_ZD], 6);
	CHECK_EQ_INT(counts[DEID_XZU], 2);
	CHECK_EQ_INT(deid_rules[deid_rules_n - 1].kind, DEID_RULE_PRIVATE);
	CHECK_EQ_INT(deid_rules[deid_rules_n - 1].opt[DEID_OPT_RETAIN_SAFE_PRIVATE], DEID_C);
	for (i = 1; i < deid_safe_private_n; i++)
		CHECK(((uint32_t)deid_safe_private[i - 1].group << 8 | deid_safe_private[i - 1].elem) <=
		      ((uint32_t)deid_safe_private[i].group << 8 | deid_safe_private[i].elem));
}

TEST(table_lookup)
{
	const struct deid_rule *r;

	r = deid_rule_lookup(0x00100010);
	CHECK(r != NULL && r->basic == DEID_Z && strcmp(r->keyword, "PatientName") == 0);
	r = deid_rule_lookup(0x00100020);
	CHECK(r != NULL && r->basic == DEID_ZD);
	r = deid_rule_lookup(0x00080018);
	CHECK(r != NULL && r->basic == DEID_U && r->opt[DEID_OPT_RETAIN_UIDS] == DEID_K);
	CHECK_EQ_INT(deid_rule_action(r, 0), DEID_U);
	CHECK_EQ_INT(deid_rule_action(r, DEID_RETAIN_UIDS), DEID_K);
	r = deid_rule_lookup(0x60023000);   /* repeating overlay group */
	CHECK(r != NULL && r->kind == DEID_RULE_MASKED && strcmp(r->keyword, "OverlayData") == 0);
	r = deid_rule_lookup(0x50100020);   /* curve data */
	CHECK(r != NULL && r->kind == DEID_RULE_MASKED && r->basic == DEID_X);
	CHECK(deid_rule_lookup(0x00091001) == NULL);   /* private */
	CHECK(deid_rule_lookup(0x00280010) == NULL);   /* Rows: not listed */
	/* an option's C wins over another option's K */
	r = deid_rule_lookup(0x0018700C);   /* Date of Last Detector Calibration */
	CHECK(r != NULL);
	CHECK_EQ_INT(deid_rule_action(r, DEID_RETAIN_DEVICE_IDENTITY), DEID_K);
	CHECK_EQ_INT(deid_rule_action(r, DEID_RETAIN_DEVICE_IDENTITY | DEID_RETAIN_LONG_MODIFIED_DATES), DEID_C);
	CHECK(deid_safe_lookup(0x7053, 0x00, "Philips PET Private Group", 25) != NULL);
	CHECK(deid_safe_lookup(0x7053, 0x00, "Philips PET Private Group  ", 27) != NULL);
	CHECK(deid_safe_lookup(0x7053, 0x00, "Philips PET", 11) == NULL);
	CHECK(deid_safe_lookup(0x0009, 0x01, "GEMS_IDEN_01", 12) == NULL);
	CHECK_EQ_STR(deid_action_str(DEID_XZU), "X/Z/U*");
}

TEST(profile_parsing)
{
	unsigned o = 99;
	char why[128];

	CHECK_EQ_INT(deid_parse_profile("basic", &o, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(o, 0);
	CHECK_EQ_INT(deid_parse_profile("basic,retain-uids,clean-graphics", &o, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(o, DEID_RETAIN_UIDS | DEID_CLEAN_GRAPHICS);
	CHECK_EQ_INT(deid_parse_profile("basic,retain-long-full-dates,retain-long-modified-dates", &o, why, sizeof why),
	             ERR_PARSE);
	CHECK(strstr(why, "exclude") != NULL);
	CHECK_EQ_INT(deid_parse_profile("basic,retain-everything", &o, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(deid_parse_profile("retain-uids", &o, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(deid_parse_profile("", &o, why, sizeof why), ERR_PARSE);
	CHECK_EQ_INT(deid_parse_profile("basic,", &o, why, sizeof why), ERR_PARSE);
	CHECK_EQ_STR(deid_option_name(DEID_OPT_RETAIN_SAFE_PRIVATE), "retain-safe-private");
	CHECK_EQ_STR(deid_option_code(DEID_OPT_CLEAN_GRAPHICS), "113103");
	CHECK_EQ_STR(deid_option_code(DEID_NOPTS), "113100");
}

/* ---- actions ---- */

TEST(patient_name_z_empty)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	const struct dcm_elem *e;

	must_run(f, 0, key_a);
	e = dcm_ds_find(&f->ds, 0x00100010);
	CHECK(e != NULL && e->len == 0);
	e = dcm_ds_find(&f->ds, 0x00100030);   /* birth date Z */
	CHECK(e != NULL && e->len == 0);
	e = dcm_ds_find(&f->ds, 0x00080050);   /* accession number Z */
	CHECK(e != NULL && e->len == 0);
	CHECK(dcm_ds_find(&f->ds, 0x00080080) == NULL);   /* institution X/Z/D: Type 3 */
	CHECK(dcm_ds_find(&f->ds, 0x00181000) == NULL);   /* serial number X/Z/D: Type 3 in CT */
	CHECK(dcm_ds_find(&f->ds, 0x0008103E) == NULL);   /* series description X */
	CHECK(dcm_ds_find(&f->ds, TAG_PIXEL_DATA) != NULL);
	dcm_file_free(f);
}

TEST(patient_id_pseudonym)
{
	struct dcm_file *f1 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f2 = mkfile("PID-1", "1.2.3.4.5.6.7.2", "1.2.3.4.5.6.7.8");
	struct dcm_file *f3 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f4 = mkfile("PID-2", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	char a[80], b[80], c[80], d[80];

	must_run(f1, 0, key_a);
	must_run(f2, 0, key_a);
	must_run(f3, 0, key_b);
	must_run(f4, 0, key_a);
	CHECK(str(&f1->ds, 0x00100020, a, sizeof a) != NULL);
	CHECK(str(&f2->ds, 0x00100020, b, sizeof b) != NULL);
	CHECK(str(&f3->ds, 0x00100020, c, sizeof c) != NULL);
	CHECK(str(&f4->ds, 0x00100020, d, sizeof d) != NULL);
	CHECK_EQ_STR(a, b);                   /* stable across calls and studies */
	CHECK(strcmp(a, c) != 0);             /* another key: unrelated */
	CHECK(strcmp(a, d) != 0);             /* another patient */
	CHECK(strcmp(a, "PID-1") != 0);
	CHECK_EQ_INT(strlen(a), 22);
	CHECK(strncmp(a, "DV", 2) == 0);
	dcm_file_free(f1);
	dcm_file_free(f2);
	dcm_file_free(f3);
	dcm_file_free(f4);
}

TEST(pseudonym_name_flag)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct deid_opts o = { .options = 0, .flags = DEID_F_PSEUDONYM_NAME, .project_key = key_a };
	char n[80];

	CHECK_EQ_INT(deid_apply(f, &o, NULL, NULL, 0), ERR_OK);
	CHECK(str(&f->ds, 0x00100010, n, sizeof n) != NULL);
	CHECK(strncmp(n, "ANONYMOUS^", 10) == 0 && strlen(n) == 22);
	dcm_file_free(f);
}

TEST(sop_instance_uid_replaced)
{
	struct dcm_file *f1 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f2 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f3 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	char a[80], b[80], c[80], s1[80], s2[80];

	must_run(f1, 0, key_a);
	must_run(f2, 0, key_a);
	must_run(f3, DEID_RETAIN_UIDS, key_a);
	CHECK(str(&f1->ds, 0x00080018, a, sizeof a) != NULL);
	CHECK(str(&f2->ds, 0x00080018, b, sizeof b) != NULL);
	CHECK(str(&f3->ds, 0x00080018, c, sizeof c) != NULL);
	CHECK(strncmp(a, "2.25.", 5) == 0);
	CHECK(valid_uid(a));
	CHECK(strlen(a) <= 64);
	CHECK_EQ_STR(a, b);                   /* same input, same output */
	CHECK_EQ_STR(c, "1.2.3.4.5.6.7.1");   /* Retain UIDs */
	CHECK(str(&f1->ds, 0x0020000D, s1, sizeof s1) != NULL);
	CHECK(str(&f2->ds, 0x0020000D, s2, sizeof s2) != NULL);
	CHECK_EQ_STR(s1, s2);
	CHECK(strcmp(s1, a) != 0);
	/* the SOP Class UID is not an instance UID */
	CHECK(str(&f1->ds, 0x00080016, s1, sizeof s1) != NULL);
	CHECK_EQ_STR(s1, CT_IMAGE);
	dcm_file_free(f1);
	dcm_file_free(f2);
	dcm_file_free(f3);
}

TEST(uid_map_shape)
{
	char u[DEID_UID_MAX + 1], v[DEID_UID_MAX + 1];
	int i;

	for (i = 0; i < 200; i++) {
		char in[32];
		snprintf(in, sizeof in, "1.2.3.%d", i);
		CHECK_EQ_INT(deid_uid_map(key_a, in, strlen(in), u), ERR_OK);
		CHECK(valid_uid(u));
		CHECK(strlen(u) <= 44);
	}
	/* trailing padding does not change the mapping */
	CHECK_EQ_INT(deid_uid_map(key_a, "1.2.3", 5, u), ERR_OK);
	CHECK_EQ_INT(deid_uid_map(key_a, "1.2.3\0", 6, v), ERR_OK);
	CHECK_EQ_STR(u, v);
	CHECK_EQ_INT(deid_uid_map(key_b, "1.2.3", 5, v), ERR_OK);
	CHECK(strcmp(u, v) != 0);
}

TEST(references_map_to_new_uid)
{
	struct dcm_file *a = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *b = mkfile("PID-1", "1.2.3.4.5.6.7.2", "1.2.3.4.5.6.7.9");
	struct dcm_ds *ser, *ref, *der, *src;
	char na[80], r1[80], r2[80];
	struct dcm_elem *e;

	/* b refers to a: Referenced Series Sequence > Referenced SOP Sequence,
	 * and Derivation Image Sequence > Source Image Sequence (X/Z/U*, nested) */
	ser = add_seq_item(&b->ds, 0x00081115);
	set(ser, 0x0020000E, VR_UI, "1.2.3.4.5.6.7.100");
	ref = add_seq_item(ser, 0x00081199);
	set(ref, 0x00081150, VR_UI, CT_IMAGE);
	set(ref, 0x00081155, VR_UI, "1.2.3.4.5.6.7.1");
	der = add_seq_item(&b->ds, 0x00089215);
	src = add_seq_item(der, 0x00082112);
	set(src, 0x00081150, VR_UI, CT_IMAGE);
	set(src, 0x00081155, VR_UI, "1.2.3.4.5.6.7.1");
	/* and a top-level Referenced Image Sequence (Type 3 here: removed) */
	ref = add_seq_item(&b->ds, 0x00081140);
	set(ref, 0x00081155, VR_UI, "1.2.3.4.5.6.7.1");
	must_run(a, 0, key_a);
	must_run(b, 0, key_a);
	CHECK(str(&a->ds, 0x00080018, na, sizeof na) != NULL);
	e = dcm_ds_find(&b->ds, 0x00081115);
	CHECK(e != NULL && e->seq != NULL && e->seq->n == 1);
	if (e != NULL && e->seq != NULL && e->seq->n == 1) {
		struct dcm_elem *r = dcm_ds_find(e->seq->items[0], 0x00081199);
		CHECK(r != NULL && r->seq != NULL && r->seq->n == 1);
		if (r != NULL && r->seq != NULL && r->seq->n == 1) {
			CHECK(str(r->seq->items[0], 0x00081155, r1, sizeof r1) != NULL);
			CHECK_EQ_STR(r1, na);
			CHECK(str(r->seq->items[0], 0x00081150, r2, sizeof r2) != NULL);
			CHECK_EQ_STR(r2, CT_IMAGE);
		}
	}
	e = dcm_ds_find(&b->ds, 0x00089215);
	CHECK(e != NULL && e->seq != NULL && e->seq->n == 1);
	if (e != NULL && e->seq != NULL && e->seq->n == 1) {
		struct dcm_elem *s = dcm_ds_find(e->seq->items[0], 0x00082112);
		CHECK(s != NULL && s->seq != NULL && s->seq->n == 1);
		if (s != NULL && s->seq != NULL && s->seq->n == 1) {
			CHECK(str(s->seq->items[0], 0x00081155, r1, sizeof r1) != NULL);
			CHECK_EQ_STR(r1, na);
		}
	}
	CHECK(dcm_ds_find(&b->ds, 0x00081140) == NULL);
	dcm_file_free(a);
	dcm_file_free(b);
}

TEST(private_removed_safe_kept)
{
	struct dcm_file *f1 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f2 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *fs[2] = { f1, f2 };
	int i;

	for (i = 0; i < 2; i++) {
		struct dcm_ds *ds = &fs[i]->ds;
		set(ds, 0x00090010, VR_LO, "GEMS_IDEN_01");
		set(ds, 0x00091001, VR_LO, "secret patient stuff");
		set(ds, 0x70530010, VR_LO, "Philips PET Private Group");
		set(ds, 0x70531000, VR_DS, "1.5");    /* safe: SUV factor */
		set(ds, 0x70531050, VR_LO, "unsafe"); /* same creator, not in the table */
		set(ds, 0x00190010, VR_LO, "OTHER");
		set(ds, 0x00191000, VR_DS, "2");      /* unknown creator */
		set(ds, 0x00290005, VR_LO, "no creator");
	}
	must_run(f1, 0, key_a);
	must_run(f2, DEID_RETAIN_SAFE_PRIVATE, key_a);
	CHECK(dcm_ds_find(&f1->ds, 0x00090010) == NULL);
	CHECK(dcm_ds_find(&f1->ds, 0x00091001) == NULL);
	CHECK(dcm_ds_find(&f1->ds, 0x70530010) == NULL);
	CHECK(dcm_ds_find(&f1->ds, 0x70531000) == NULL);
	CHECK(dcm_ds_find(&f1->ds, 0x00290005) == NULL);
	/* with the option: the safe one and its creator stay */
	CHECK(dcm_ds_find(&f2->ds, 0x70530010) != NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x70531000) != NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x70531050) == NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x00090010) == NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x00091001) == NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x00190010) == NULL);
	CHECK(dcm_ds_find(&f2->ds, 0x00191000) == NULL);
	dcm_file_free(f1);
	dcm_file_free(f2);
}

static int32_t day_diff(const char *a, const char *b)
{
	/* days between two YYYYMMDD dates, by a simple count */
	struct tm ta, tb;
	memset(&ta, 0, sizeof ta);
	memset(&tb, 0, sizeof tb);
	ta.tm_year = (a[0] - '0') * 1000 + (a[1] - '0') * 100 + (a[2] - '0') * 10 + (a[3] - '0') - 1900;
	ta.tm_mon = (a[4] - '0') * 10 + (a[5] - '0') - 1;
	ta.tm_mday = (a[6] - '0') * 10 + (a[7] - '0');
	ta.tm_hour = 12;
	tb.tm_year = (b[0] - '0') * 1000 + (b[1] - '0') * 100 + (b[2] - '0') * 10 + (b[3] - '0') - 1900;
	tb.tm_mon = (b[4] - '0') * 10 + (b[5] - '0') - 1;
	tb.tm_mday = (b[6] - '0') * 10 + (b[7] - '0');
	tb.tm_hour = 12;
	return (int32_t)((timegm(&tb) - timegm(&ta)) / 86400);
}

TEST(dates_shifted_consistently)
{
	struct dcm_file *f1 = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *f2 = mkfile("PID-1", "1.2.3.4.5.6.7.2", "1.2.3.4.5.6.7.8");
	struct dcm_file *f3 = mkfile("PID-1", "1.2.3.4.5.6.7.2", "1.2.3.4.5.6.7.8");
	char sd[80], se[80], dt[80], tm[80], sd2[80], pkey[128];
	int32_t off = 0;
	size_t n;

	set(&f2->ds, 0x00080020, VR_DA, "20210615");
	n = deid_patient_key(&f1->ds, pkey, sizeof pkey);
	CHECK_EQ_INT(deid_date_offset(key_a, pkey, n, &off), ERR_OK);
	CHECK(off <= -DEID_SHIFT_MIN_DAYS && off >= -DEID_SHIFT_MAX_DAYS);
	must_run(f1, DEID_RETAIN_LONG_MODIFIED_DATES, key_a);
	must_run(f2, DEID_RETAIN_LONG_MODIFIED_DATES, key_a);
	must_run(f3, DEID_RETAIN_LONG_FULL_DATES, key_a);
	CHECK(str(&f1->ds, 0x00080020, sd, sizeof sd) != NULL);
	CHECK(str(&f1->ds, 0x00080021, se, sizeof se) != NULL);
	CHECK(str(&f1->ds, 0x0008002A, dt, sizeof dt) != NULL);
	CHECK(str(&f1->ds, 0x00080030, tm, sizeof tm) != NULL);
	CHECK(str(&f2->ds, 0x00080020, sd2, sizeof sd2) != NULL);
	CHECK_EQ_INT(strlen(sd), 8);
	CHECK_EQ_INT(day_diff("20200101", sd), off);
	CHECK_EQ_INT(day_diff("20200102", se), off);
	CHECK_EQ_INT(day_diff("20210615", sd2), off);  /* same patient, other study */
	CHECK_EQ_INT(day_diff("20200101", dt), off);
	CHECK_EQ_STR(dt + 8, "120000.5+0100");         /* time and offset kept */
	CHECK_EQ_STR(tm, "101500");                    /* time of day kept */
	CHECK(str(&f1->ds, 0x00280303, tm, sizeof tm) != NULL);
	CHECK_EQ_STR(tm, "MODIFIED");
	/* full dates: kept */
	CHECK(str(&f3->ds, 0x00080020, sd, sizeof sd) != NULL);
	CHECK_EQ_STR(sd, "20200101");
	/* birth date is Z whatever the option */
	CHECK(dcm_ds_find(&f1->ds, 0x00100030) != NULL && dcm_ds_find(&f1->ds, 0x00100030)->len == 0);
	dcm_file_free(f1);
	dcm_file_free(f2);
	dcm_file_free(f3);
}

TEST(date_shift_function)
{
	char out[64];

	CHECK_EQ_INT(deid_shift_date("20240301", 8, false, -1, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "20240229");
	CHECK_EQ_INT(deid_shift_date("20230301", 8, false, -1, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "20230228");
	CHECK_EQ_INT(deid_shift_date("20000101 ", 9, false, -365, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "19990101");
	CHECK_EQ_INT(deid_shift_date("2020.01.10", 10, false, -10, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "20191231");
	CHECK_EQ_INT(deid_shift_date("202003", 6, true, -20, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "202002");
	CHECK_EQ_INT(deid_shift_date("2020", 4, true, -400, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "2019");
	CHECK_EQ_INT(deid_shift_date("20200101235959.123456-0500", 26, true, -1, out, sizeof out), ERR_OK);
	CHECK_EQ_STR(out, "20191231235959.123456-0500");
	CHECK_EQ_INT(deid_shift_date("20201301", 8, false, -1, out, sizeof out), ERR_PARSE);
	CHECK_EQ_INT(deid_shift_date("20200230", 8, false, -1, out, sizeof out), ERR_PARSE);
	CHECK_EQ_INT(deid_shift_date("hello", 5, false, -1, out, sizeof out), ERR_PARSE);
	CHECK_EQ_INT(deid_shift_date("00010102", 8, false, -5, out, sizeof out), ERR_PARSE);
}

TEST(attestation_present)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	const struct dcm_elem *sq;
	char v[256];
	bool has[4] = { false, false, false, false };
	uint32_t i;

	must_run(f, DEID_RETAIN_UIDS | DEID_CLEAN_DESCRIPTORS | DEID_RETAIN_SAFE_PRIVATE, key_a);
	CHECK(str(&f->ds, 0x00120062, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "YES");
	CHECK(str(&f->ds, 0x00120063, v, sizeof v) != NULL);
	CHECK(strstr(v, "Basic Profile") != NULL && strstr(v, "Retain UIDs Option") != NULL);
	sq = dcm_ds_find(&f->ds, 0x00120064);
	CHECK(sq != NULL && sq->seq != NULL && sq->seq->n == 4);
	for (i = 0; sq != NULL && sq->seq != NULL && i < sq->seq->n; i++) {
		char cv[32], cs[32], cm[80];
		const struct dcm_ds *it = sq->seq->items[i];
		CHECK(str(it, 0x00080100, cv, sizeof cv) != NULL);
		CHECK(str(it, 0x00080102, cs, sizeof cs) != NULL && strcmp(cs, "DCM") == 0);
		CHECK(str(it, 0x00080104, cm, sizeof cm) != NULL && strlen(cm) > 0);
		has[0] |= strcmp(cv, "113100") == 0;
		has[1] |= strcmp(cv, "113110") == 0;
		has[2] |= strcmp(cv, "113105") == 0;
		has[3] |= strcmp(cv, "113111") == 0;
	}
	CHECK(has[0] && has[1] && has[2] && has[3]);
	/* applying again does not duplicate the codes */
	must_run(f, DEID_RETAIN_UIDS, key_a);
	sq = dcm_ds_find(&f->ds, 0x00120064);
	CHECK(sq != NULL && sq->seq != NULL && sq->seq->n == 4);
	dcm_file_free(f);
}

TEST(burned_in_annotation_refused)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *g = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct deid_opts o = { .options = 0, .flags = DEID_F_REFUSE_SUSPECT, .project_key = key_a };
	static const uint8_t fpx[32] = { 0 };
	struct deid_stats st;
	char why[256], n[80];
	unsigned k;

	set(&f->ds, 0x00280301, VR_CS, "YES");
	CHECK_EQ_INT(run(f, 0, key_a, why, sizeof why), ERR_DENIED);
	CHECK(strstr(why, "Burned In Annotation") != NULL);
	CHECK(str(&f->ds, 0x00100010, n, sizeof n) != NULL);   /* unchanged */
	CHECK_EQ_STR(n, "Doe^John");
	/* NO passes */
	set(&f->ds, 0x00280301, VR_CS, "NO");
	CHECK_EQ_INT(run(f, 0, key_a, why, sizeof why), ERR_OK);
	/* US without the flag: passed and counted, or refused when asked */
	set(&g->ds, 0x00080060, VR_CS, "US");
	memset(&st, 0, sizeof st);
	CHECK_EQ_INT(deid_apply(g, &o, &st, why, sizeof why), ERR_DENIED);
	CHECK(strstr(why, "burned-in") != NULL);
	o.flags = 0;
	CHECK_EQ_INT(deid_apply(g, &o, &st, why, sizeof why), ERR_OK);
	CHECK_EQ_INT(st.suspect, 1);
	CHECK_EQ_INT(st.files, 1);
	dcm_file_free(f);
	dcm_file_free(g);
	/* any value of Modality counts, ASCII case ignored, padding too */
	for (k = 0; k < 4; k++) {
		static const char *const mods[4] = { "CT\\us", " ot \\CT", "CT\\MR", "MR " };
		g = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
		set(&g->ds, 0x00080060, VR_CS, mods[k]);
		o.flags = DEID_F_REFUSE_SUSPECT;
		CHECK_EQ_INT(deid_apply(g, &o, &st, why, sizeof why), k < 2 ? ERR_DENIED : ERR_OK);
		dcm_file_free(g);
	}
	/* the same with Float or Double Float Pixel Data in place of Pixel Data */
	for (k = 0; k < 2; k++) {
		g = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
		dcm_ds_remove(&g->ds, TAG_PIXEL_DATA);
		CHECK(dcm_ds_set(&g->ds, k ? TAG_DFLOAT_PIXEL : TAG_FLOAT_PIXEL, k ? VR_OD : VR_OF, fpx,
		                 k ? 32 : 16) == ERR_OK);
		set(&g->ds, 0x00080060, VR_CS, "US");
		o.flags = DEID_F_REFUSE_SUSPECT;
		CHECK_EQ_INT(deid_apply(g, &o, &st, why, sizeof why), ERR_DENIED);
		CHECK(strstr(why, "burned-in") != NULL);
		dcm_file_free(g);
	}
}

/* A file written out and read back: its bytes and the source the file
 * read reads its bulk values from (both must outlive it). */
struct reread {
	struct wbuf w;
	struct src_mem sm;
	struct src s;
};

/* f written as a Part 10 file into rr (the caller finishes rr->w after
 * freeing the result) and read back with ro: NULL on failure (a failed
 * check said so). */
static struct dcm_file *reread(struct dcm_file *f, const struct dcm_read_opts *ro, struct reread *rr)
{
	struct dcm_write_opts wo = { .keep_meta = false };
	struct dcm_file *g = NULL;
	struct dcm_errinfo ei;
	struct sink k;

	wbuf_init(&rr->w, 1u << 20);
	sink_wbuf(&k, &rr->w);
	CHECK_EQ_INT(dcm_file_write(f, &wo, &k), ERR_OK);
	src_mem_init(&rr->s, &rr->sm, rr->w.p, rr->w.len);
	CHECK_EQ_INT(dcm_file_read(&rr->s, ro, &g, &ei), ERR_OK);
	return g;
}

/* Burned In Annotation as the file may carry it: the image is flagged when
 * any of its values, trimmed of spaces, is not NO, or when it has no value
 * at all (empty: unknown), fail-safe; absent is left to the modality check. */
static enum err run_burned(const char *val)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	char why[256];
	enum err rc;

	set(&f->ds, 0x00280301, VR_CS, val);
	rc = run(f, 0, key_a, why, sizeof why);
	if (rc == ERR_DENIED && strstr(why, "Burned In Annotation") == NULL)
		rc = ERR_INTERNAL;
	dcm_file_free(f);
	return rc;
}

/* A value left in the source: (0028,0301) as UN padded past the bulk
 * threshold, written and read back as `deid` reads files. */
static enum err run_burned_bulk(const char *word)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *g = NULL;
	struct dcm_read_opts ro = { .bulk_threshold = DCM_DEFAULT_BULK };
	const struct dcm_elem *e;
	size_t n = DCM_DEFAULT_BULK + 4464;
	char *val = malloc(n), why[256];
	struct reread rr;
	enum err rc = ERR_INTERNAL;

	if (val == NULL)
		abort();
	memset(val, ' ', n);
	memcpy(val, word, strlen(word));
	CHECK(dcm_ds_set(&f->ds, 0x00280301, VR_UN, val, n) == ERR_OK);
	g = reread(f, &ro, &rr);
	if (g != NULL) {
		e = dcm_ds_find(&g->ds, 0x00280301);
		CHECK(e != NULL && (e->flags & DCM_EF_BULK));   /* the case under test */
		rc = run(g, 0, key_a, why, sizeof why);
		dcm_file_free(g);
	}
	wbuf_fini(&rr.w);
	free(val);
	dcm_file_free(f);
	return rc;
}

TEST(burned_in_annotation_any_value)
{
	CHECK_EQ_INT(run_burned("YES\\NO"), ERR_DENIED);
	CHECK_EQ_INT(run_burned("NO\\YES"), ERR_DENIED);
	CHECK_EQ_INT(run_burned(" NO \\ yes "), ERR_DENIED);
	CHECK_EQ_INT(run_burned("NO\\"), ERR_OK);
	CHECK_EQ_INT(run_burned("MAYBE"), ERR_DENIED);   /* not NO: may have text */
	CHECK_EQ_INT(run_burned("NO\\NO"), ERR_OK);
	CHECK_EQ_INT(run_burned(" no "), ERR_OK);
	CHECK_EQ_INT(run_burned(""), ERR_DENIED);        /* empty: unknown, so flagged */
	CHECK_EQ_INT(run_burned("  "), ERR_DENIED);      /* only padding: empty */
	CHECK_EQ_INT(run_burned("\\"), ERR_DENIED);      /* two empty values */
	CHECK_EQ_INT(run_burned_bulk(""), ERR_DENIED);   /* empty but padded past the bulk threshold */
	CHECK_EQ_INT(run_burned_bulk("YES"), ERR_DENIED);
	CHECK_EQ_INT(run_burned_bulk("NO"), ERR_OK);
}

TEST(bad_options_refused)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct secret *shortkey = mkkey("short");
	char why[256];

	CHECK_EQ_INT(run(f, DEID_RETAIN_LONG_FULL_DATES | DEID_RETAIN_LONG_MODIFIED_DATES, key_a, why, sizeof why),
	             ERR_UNSUPPORTED);
	CHECK_EQ_INT(run(f, 0, shortkey, why, sizeof why), ERR_UNSUPPORTED);
	CHECK_EQ_INT(run(f, 0, NULL, why, sizeof why), ERR_UNSUPPORTED);
	secret_free(shortkey);
	dcm_file_free(f);
}

TEST(nested_sequence_cleaning)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_ds *l1, *l2;
	const struct dcm_elem *e1, *e2;
	char v[80], top[80];

	/* a sequence the table does not list, two levels deep */
	l1 = add_seq_item(&f->ds, 0x00081115);
	set(l1, 0x0020000E, VR_UI, "1.2.3.4.5.6.7.100");
	set(l1, 0x00090010, VR_LO, "ACME 1.0");
	set(l1, 0x00091000, VR_LO, "hidden");
	l2 = add_seq_item(l1, 0x00400275);   /* Request Attributes Sequence: X */
	set(l2, 0x00401001, VR_SH, "REQ1");
	l2 = add_seq_item(l1, 0x00081250);   /* Related Series Sequence: not listed */
	set(l2, 0x00100010, VR_PN, "Doe^John");
	set(l2, 0x00080080, VR_LO, "Hospital");  /* X/Z/D nested: dummy */
	set(l2, 0x00200000, VR_UL, "\x04\x00\x00\x00");
	must_run(f, 0, key_a);
	CHECK(str(&f->ds, 0x0020000E, top, sizeof top) != NULL);
	e1 = dcm_ds_find(&f->ds, 0x00081115);
	CHECK(e1 != NULL && e1->seq != NULL && e1->seq->n == 1);
	if (e1 == NULL || e1->seq == NULL || e1->seq->n != 1)
		goto out;
	l1 = e1->seq->items[0];
	CHECK(str(l1, 0x0020000E, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, top);                  /* same mapping as at the top */
	CHECK(dcm_ds_find(l1, 0x00090010) == NULL);
	CHECK(dcm_ds_find(l1, 0x00091000) == NULL);
	CHECK(dcm_ds_find(l1, 0x00400275) == NULL);
	e2 = dcm_ds_find(l1, 0x00081250);
	CHECK(e2 != NULL && e2->seq != NULL && e2->seq->n == 1);
	if (e2 == NULL || e2->seq == NULL || e2->seq->n != 1)
		goto out;
	l2 = e2->seq->items[0];
	CHECK(dcm_ds_find(l2, 0x00100010) != NULL && dcm_ds_find(l2, 0x00100010)->len == 0);
	CHECK(str(l2, 0x00080080, v, sizeof v) != NULL);
	CHECK(strcmp(v, "Hospital") != 0 && strlen(v) > 0);
	CHECK(dcm_ds_find(l2, 0x00200000) == NULL);   /* group length dropped */
out:
	dcm_file_free(f);
}

TEST(options_change_actions)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	char v[80];

	must_run(f, DEID_RETAIN_INSTITUTION_IDENTITY | DEID_RETAIN_DEVICE_IDENTITY | DEID_RETAIN_PATIENT_CHARACTERISTICS |
	            DEID_CLEAN_DESCRIPTORS, key_a);
	CHECK(str(&f->ds, 0x00080080, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "Saint Example Hospital");
	CHECK(str(&f->ds, 0x00181000, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "SN-998877");
	CHECK(str(&f->ds, 0x00100040, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "M");
	/* Series Description cleaned: the patient's name and the date go */
	CHECK(str(&f->ds, 0x0008103E, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "Chest of XXX XXXXXXXX");
	dcm_file_free(f);
	f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	must_run(f, 0, key_a);
	CHECK(dcm_ds_find(&f->ds, 0x00100040) != NULL && dcm_ds_find(&f->ds, 0x00100040)->len == 0);
	dcm_file_free(f);
}

TEST(composite_codes_by_iod)
{
	struct dcm_file *ct = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *sr = NULL;
	struct dcm_ds *it;
	const struct dcm_elem *e;
	char v[80];

	set(&ct->ds, 0x00080023, VR_DA, "20200101");   /* Content Date Z/D: Type 2C in CT */
	set(&ct->ds, 0x00080022, VR_DA, "20200101");   /* Acquisition Date X/Z: Type 3 */
	set(&ct->ds, 0x00180010, VR_LO, "Contrast");   /* Z/D: Type 2 */
	must_run(ct, 0, key_a);
	e = dcm_ds_find(&ct->ds, 0x00080023);
	CHECK(e != NULL && e->len == 0);
	CHECK(dcm_ds_find(&ct->ds, 0x00080022) == NULL);
	e = dcm_ds_find(&ct->ds, 0x00180010);
	CHECK(e != NULL && e->len == 0);
	CHECK(dcm_file_new(&sr) == ERR_OK);
	set(&sr->ds, 0x00080016, VR_UI, COMPREHENSIVE_SR);
	set(&sr->ds, 0x00080018, VR_UI, "1.2.3.99");
	set(&sr->ds, 0x00080023, VR_DA, "20200101");   /* Type 1 in SR: dummy */
	set(&sr->ds, 0x0040A032, VR_DT, "20200101101010");
	it = add_seq_item(&sr->ds, 0x0040A730);        /* Content Sequence D */
	set(it, 0x0040A040, VR_CS, "TEXT");
	set(it, 0x0040A160, VR_UT, "Mr Doe has a cold since 20191225");
	set(it, 0x0040A123, VR_PN, "Dr^Who");
	it = add_seq_item(&sr->ds, 0x00401101);        /* Person Identification Code Sequence D */
	set(it, 0x00080100, VR_SH, "EMP-4711");
	set(it, 0x00080102, VR_SH, "LOCAL");
	set(it, 0x00080104, VR_LO, "Employee 4711");
	must_run(sr, 0, key_a);
	CHECK(str(&sr->ds, 0x00080023, v, sizeof v) != NULL);
	CHECK(strlen(v) == 8 && strcmp(v, "20200101") != 0);
	CHECK(str(&sr->ds, 0x0040A032, v, sizeof v) != NULL);
	CHECK(strcmp(v, "20200101101010") != 0);
	e = dcm_ds_find(&sr->ds, 0x0040A730);
	CHECK(e != NULL && e->seq != NULL && e->seq->n == 1);
	if (e != NULL && e->seq != NULL && e->seq->n == 1) {
		CHECK(str(e->seq->items[0], 0x0040A160, v, sizeof v) != NULL);
		CHECK(strstr(v, "Doe") == NULL);
		CHECK(str(e->seq->items[0], 0x0040A040, v, sizeof v) != NULL);
		CHECK_EQ_STR(v, "TEXT");
		CHECK(str(e->seq->items[0], 0x0040A123, v, sizeof v) != NULL);
		CHECK(strcmp(v, "Dr^Who") != 0);
	}
	e = dcm_ds_find(&sr->ds, 0x00401101);
	CHECK(e != NULL && e->seq != NULL && e->seq->n == 1);
	if (e != NULL && e->seq != NULL && e->seq->n == 1) {
		CHECK(str(e->seq->items[0], 0x00080100, v, sizeof v) != NULL);
		CHECK(strcmp(v, "EMP-4711") != 0);
		CHECK(str(e->seq->items[0], 0x00080104, v, sizeof v) != NULL);
		CHECK(strstr(v, "4711") == NULL);
	}
	dcm_file_free(ct);
	dcm_file_free(sr);
}

TEST(clean_structured_content)
{
	struct dcm_file *sr = NULL;
	struct dcm_ds *it;
	const struct dcm_elem *e;
	char v[80];

	CHECK(dcm_file_new(&sr) == ERR_OK);
	set(&sr->ds, 0x00080016, VR_UI, COMPREHENSIVE_SR);
	set(&sr->ds, 0x00080018, VR_UI, "1.2.3.99");
	set(&sr->ds, 0x00100010, VR_PN, "Doe^John");
	it = add_seq_item(&sr->ds, 0x0040A730);
	set(it, 0x0040A160, VR_UT, "Mr Doe has a cold since 20191225");
	must_run(sr, DEID_CLEAN_STRUCTURED_CONTENT, key_a);
	e = dcm_ds_find(&sr->ds, 0x0040A730);
	CHECK(e != NULL && e->seq != NULL && e->seq->n == 1);
	if (e != NULL && e->seq != NULL && e->seq->n == 1) {
		CHECK(str(e->seq->items[0], 0x0040A160, v, sizeof v) != NULL);
		CHECK_EQ_STR(v, "Mr XXX has a cold since XXXXXXXX");
	}
	dcm_file_free(sr);
}

/* An SR whose content tree holds codes: a local concept (scheme 99... or
 * L) whose Code Meaning names the patient, a standard one that does too, and
 * a standard one that does not. */
static struct dcm_file *mk_sr_codes(void)
{
	struct dcm_file *sr = NULL;
	struct dcm_ds *it, *code;

	if (dcm_file_new(&sr) != ERR_OK)
		abort();
	set(&sr->ds, 0x00080016, VR_UI, COMPREHENSIVE_SR);
	set(&sr->ds, 0x00080018, VR_UI, "1.2.3.99");
	set(&sr->ds, 0x00100010, VR_PN, "Smithson^Johnathan");
	set(&sr->ds, 0x00100020, VR_LO, "MRN-778899");
	it = add_seq_item(&sr->ds, 0x0040A730);
	set(it, 0x0040A040, VR_CS, "CODE");
	code = add_seq_item(it, 0x0040A043);           /* Concept Name: standard, kept */
	set(code, 0x00080100, VR_SH, "121071");
	set(code, 0x00080102, VR_SH, "DCM");
	set(code, 0x00080104, VR_LO, "Finding");
	code = add_seq_item(it, 0x0040A168);           /* Concept Code: local */
	set(code, 0x00080100, VR_SH, "L1");
	set(code, 0x00080102, VR_SH, "99LOCAL");
	set(code, 0x00080104, VR_LO, "Smithson Johnathan (family)");
	it = add_seq_item(&sr->ds, 0x0040A730);
	set(it, 0x0040A040, VR_CS, "CODE");
	code = add_seq_item(it, 0x0040A168);           /* HL7's local scheme */
	set(code, 0x00080100, VR_SH, "MRN-778899");
	set(code, 0x00080102, VR_SH, "L");
	set(code, 0x00080104, VR_LO, "Seen by the family");
	code = add_seq_item(it, 0x0040A043);           /* standard, but naming the patient */
	set(code, 0x00080100, VR_SH, "363698007");    /* 6 digits and more: a concept, kept */
	set(code, 0x00080102, VR_SH, "SCT");
	set(code, 0x00080104, VR_LO, "Smithson fracture");
	return sr;
}

/* The item's code of sequence tag in content item k, or NULL. */
static const struct dcm_ds *sr_code(const struct dcm_file *sr, uint32_t k, uint32_t tag)
{
	const struct dcm_elem *e = dcm_ds_find(&sr->ds, 0x0040A730), *c;

	if (e == NULL || e->seq == NULL || e->seq->n <= k)
		return NULL;
	c = dcm_ds_find(e->seq->items[k], tag);
	if (c == NULL || c->seq == NULL || c->seq->n != 1)
		return NULL;
	return c->seq->items[0];
}

TEST(sr_code_meaning)
{
	struct dcm_file *sr = mk_sr_codes();
	const struct dcm_ds *code;
	char v[80];

	/* Basic Profile (Content Sequence D): a local concept is the sender's
	 * free text, its meaning gets the dummy and its value is cleaned; a
	 * published concept's meaning is cleaned, its value and designator
	 * kept whatever their digits */
	must_run(sr, 0, key_a);
	code = sr_code(sr, 0, 0x0040A043);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "Finding") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "121071") == 0);
	CHECK(code != NULL && str(code, 0x00080102, v, sizeof v) != NULL && strcmp(v, "DCM") == 0);
	code = sr_code(sr, 0, 0x0040A168);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "ANONYMIZED") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "L1") == 0);
	code = sr_code(sr, 1, 0x0040A168);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "ANONYMIZED") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "XXX-XXXXXX") == 0);
	code = sr_code(sr, 1, 0x0040A043);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "XXXXXXXX fracture") == 0);
	CHECK(code != NULL && str(code, 0x00080102, v, sizeof v) != NULL && strcmp(v, "SCT") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "363698007") == 0);
	dcm_file_free(sr);
	/* Clean Structured Content: the strings are cleaned, meanings stay */
	sr = mk_sr_codes();
	must_run(sr, DEID_CLEAN_STRUCTURED_CONTENT, key_a);
	code = sr_code(sr, 0, 0x0040A043);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "Finding") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "121071") == 0);
	code = sr_code(sr, 0, 0x0040A168);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL &&
	      strcmp(v, "XXXXXXXX XXXXXXXXX (family)") == 0);
	code = sr_code(sr, 1, 0x0040A168);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "Seen by the family") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "XXX-XXXXXX") == 0);
	code = sr_code(sr, 1, 0x0040A043);
	CHECK(code != NULL && str(code, 0x00080104, v, sizeof v) != NULL && strcmp(v, "XXXXXXXX fracture") == 0);
	CHECK(code != NULL && str(code, 0x00080100, v, sizeof v) != NULL && strcmp(v, "363698007") == 0);
	dcm_file_free(sr);
}

TEST(overlay_and_curves_removed)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	static const uint8_t bits[8] = { 0xFF };

	CHECK(dcm_ds_set(&f->ds, 0x60000010, VR_US, "\x02\x00", 2) == ERR_OK);
	CHECK(dcm_ds_set(&f->ds, 0x60003000, VR_OW, bits, sizeof bits) == ERR_OK);
	set(&f->ds, 0x60024000, VR_LT, "overlay comment");
	CHECK(dcm_ds_set(&f->ds, 0x50003000, VR_OW, bits, sizeof bits) == ERR_OK);
	must_run(f, DEID_CLEAN_GRAPHICS, key_a);
	CHECK(dcm_ds_find(&f->ds, 0x60000010) == NULL);
	CHECK(dcm_ds_find(&f->ds, 0x60003000) == NULL);
	CHECK(dcm_ds_find(&f->ds, 0x60024000) == NULL);
	CHECK(dcm_ds_find(&f->ds, 0x50003000) == NULL);
	CHECK(dcm_ds_find(&f->ds, TAG_PIXEL_DATA) != NULL);
	dcm_file_free(f);
}

TEST(meta_follows_new_uid)
{
	struct dcm_file *f = mkfile("PID-1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	struct dcm_file *g = NULL;
	struct dcm_read_opts ro = { 0 };
	struct reread rr;
	char a[80], b[80];

	/* a meta group as a modality would send it */
	set(&f->meta, 0x00020002, VR_UI, CT_IMAGE);
	set(&f->meta, 0x00020003, VR_UI, "1.2.3.4.5.6.7.1");
	set(&f->meta, 0x00020016, VR_AE, "MODALITY_AE");
	f->has_meta = true;
	must_run(f, 0, key_a);
	CHECK(dcm_ds_find(&f->meta, 0x00020016) == NULL);
	g = reread(f, &ro, &rr);
	if (g != NULL) {
		CHECK(str(&g->meta, 0x00020003, a, sizeof a) != NULL);
		CHECK(str(&g->ds, 0x00080018, b, sizeof b) != NULL);
		CHECK_EQ_STR(a, b);
		CHECK(strcmp(a, "1.2.3.4.5.6.7.1") != 0);
		CHECK(dcm_ds_find(&g->meta, 0x00020016) == NULL);
		dcm_file_free(g);
	}
	wbuf_fini(&rr.w);
	dcm_file_free(f);
}

TEST(text_cleaning)
{
	struct dcm_file *f = mkfile("AB-123456", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	char v[128];

	set(&f->ds, 0x00081030, VR_LO, "Johnson knee, JOHN DOE, ab-123456, 12/25/2019");  /* Study Description */
	must_run(f, DEID_CLEAN_DESCRIPTORS, key_a);
	CHECK(str(&f->ds, 0x00081030, v, sizeof v) != NULL);
	/* whole words only: "Johnson" stays; the ID's parts and the date go */
	CHECK_EQ_STR(v, "Johnson knee, XXXX XXX, XX-XXXXXX, XX/XX/XXXX");
	dcm_file_free(f);
	/* ISO 2022: the Japanese given name (JIS X 0208 between escapes) is
	 * found; escapes stay; digits inside a multi-byte segment are not numbers */
	f = mkfile("P1", "1.2.3.4.5.6.7.1", "1.2.3.4.5.6.7.9");
	set(&f->ds, 0x00080005, VR_CS, "\\ISO 2022 IR 87");
	set(&f->ds, 0x00100010, VR_PN, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B");
	set(&f->ds, 0x001021B0, VR_LT, "\x1b$BB@O:\x1b(B 20200101 \x1b$B012345678901\x1b(B tarou");
	must_run(f, DEID_CLEAN_DESCRIPTORS, key_a);
	CHECK(str(&f->ds, 0x001021B0, v, sizeof v) != NULL);
	CHECK_EQ_STR(v, "\x1b$BXXXX\x1b(B XXXXXXXX \x1b$B012345678901\x1b(B XXXXX");
	dcm_file_free(f);
}

int main(void)
{
	key_a = mkkey("project key A: 0123456789abcdef");
	key_b = mkkey("project key B: 0123456789abcdef");
	RUN(table_generated_completely);
	RUN(table_lookup);
	RUN(profile_parsing);
	RUN(patient_name_z_empty);
	RUN(patient_id_pseudonym);
	RUN(pseudonym_name_flag);
	RUN(sop_instance_uid_replaced);
	RUN(uid_map_shape);
	RUN(references_map_to_new_uid);
	RUN(private_removed_safe_kept);
	RUN(dates_shifted_consistently);
	RUN(date_shift_function);
	RUN(attestation_present);
	RUN(burned_in_annotation_refused);
	RUN(burned_in_annotation_any_value);
	RUN(bad_options_refused);
	RUN(nested_sequence_cleaning);
	RUN(options_change_actions);
	RUN(composite_codes_by_iod);
	RUN(clean_structured_content);
	RUN(sr_code_meaning);
	RUN(overlay_and_curves_removed);
	RUN(meta_follows_new_uid);
	RUN(text_cleaning);
	secret_free(key_a);
	secret_free(key_b);
	return TEST_DONE();
}
