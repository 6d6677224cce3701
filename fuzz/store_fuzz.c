/* store_fuzz.c: libFuzzer target for the ingest pipeline, the one path
 * every DICOMweb part and C-STORE data set takes: the Part 10 read, the
 * checks (meta, VR encoding, the four UIDs), the index attributes taken
 * from the data set (person names split and folded, dates and times
 * normalised, numbers, modalities, the patient's keyed hashes, the
 * identifying attributes sealed), the encrypted object and the index
 * rows, into a real vault made once per process under /dev/shm (else
 * $TMPDIR) and made anew every STORE_FUZZ_RESET inputs. The input is
 * stored twice: first as a receiver stores it (store_early_begin on the
 * head, as it doubles, then the rest written into the early object and
 * store_instance_early), then by store_instance. abort()s when
 *   - a store fails without a reason, or with an error that a parse or a
 *     check does not give (ERR_INTERNAL, ERR_AUTH);
 *   - the two stores disagree: the first stored and the second did not
 *     say "already stored", or both failed with other error codes;
 *   - a stored instance does not come back byte for byte (its data set
 *     only, when the same data set was stored before under other file
 *     meta: "already stored"), or its fixity is not the SHA-256 of what
 *     comes back;
 *   - an instance-level query for its SOP Instance UID does not give
 *     exactly it, in its study and series, with its Patient ID (in
 *     UTF-8: a value its character set cannot decode is shown with
 *     U+FFFD, not left out).
 * Layer: fuzz. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dicomvault/charset.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/io.h"
#include "dicomvault/log.h"
#include "dicomvault/query.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STORE_FUZZ_RESET 2000

static char base[256];
static struct vault *v;
static unsigned runs;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 ? 0 : -1;
}

static void teardown(void)
{
	if (v != NULL)
		vault_close(v);
	v = NULL;
	if (base[0] != 0)
		(void)nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	struct vault_init_opts o;
	struct vault_created res;
	char vdir[300], why[256];

	if (v != NULL && runs++ % STORE_FUZZ_RESET != 0)
		return;
	if (base[0] == 0) {
		log_set_level(LOG_ERROR);
		snprintf(base, sizeof base, "%s/dv-store-fuzz-%ld", dir != NULL ? dir : "/tmp", (long)getpid());
		atexit(teardown);
		runs = 1;
	}
	teardown();
	if (mkdir(base, 0700) != 0)
		abort();
	snprintf(vdir, sizeof vdir, "%s/v", base);
	memset(&o, 0, sizeof o);
	o.dir = vdir;
	if (vault_init(&o, &res, why, sizeof why) != ERR_OK || vault_open(vdir, NULL, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "store_fuzz: vault: %s\n", why);
		abort();
	}
	vault_created_fini(&res);
}

/* What a store may answer on bytes from outside. */
static void check_outcome(enum err rc, const char *why)
{
	if (rc == ERR_OK)
		return;
	if (why[0] == 0 || rc == ERR_INTERNAL || rc == ERR_AUTH) {
		fprintf(stderr, "store_fuzz: %s: %s\n", err_str(rc), why);
		abort();
	}
}

/* As a receiver does (store_early_feed): the head tried as it doubles,
 * then every byte after it written into the early object. */
static enum err store_early(const uint8_t *data, size_t size, const uint8_t sha[32], struct store_result *res,
                            char *why, size_t whylen)
{
	struct store_early *e = NULL;
	struct src_mem m;
	struct src s;
	size_t have = size < 4096 ? size : 4096;
	enum err rc;

	for (;;) {
		rc = store_early_begin(v, data, have, NULL, NULL, &e);
		if (rc != ERR_AGAIN || have == size || have >= STORE_EARLY_HEAD_MAX)
			break;
		have = 2 * have < size ? 2 * have : size;
	}
	if (rc == ERR_OK && have < size && store_early_write(e, data + have, size - have) != ERR_OK) {
		store_early_free(e);
		e = NULL;
	}
	if (rc != ERR_OK)
		e = NULL;
	src_mem_init(&s, &m, data, size);
	return store_instance_early(v, &s, sha, e, NULL, "default", res, why, whylen);
}

/* The data sets (what follows the file meta) of two Part 10 files. */
/* Where f's data set ends for comparing two copies of an instance: before
 * a Data Set Trailing Padding (FFFC,FFFC) that is its last element (the
 * store takes a copy with or without one, or with another, as the same). */
static size_t cmp_end(const struct dcm_file *f, size_t n)
{
	const struct dcm_elem *last = f->ds.n > 0 ? &f->ds.e[f->ds.n - 1] : NULL;

	if (last == NULL || last->tag != 0xFFFCFFFCu || f->ts == NULL || f->ts->deflated || last->off < f->ds_off ||
	    last->off > n)
		return n;
	return (size_t)last->off;
}

/* a's and b's data sets, from their meta's end to cmp_end (whole = true:
 * to their end), are the same bytes. */
static bool same_data_set_to(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, bool whole)
{
	struct dcm_read_opts ro = { .bulk_threshold = 64, .stop_tag = whole ? 0x00080000 : 0 };
	struct dcm_file *fa = NULL, *fb = NULL;
	struct dcm_errinfo ei;
	struct src_mem m;
	struct src s;
	bool same = false;

	src_mem_init(&s, &m, a, an);
	if (dcm_file_read(&s, &ro, &fa, &ei) == ERR_OK) {
		src_mem_init(&s, &m, b, bn);
		if (dcm_file_read(&s, &ro, &fb, &ei) == ERR_OK) {
			size_t ea = whole ? an : cmp_end(fa, an), eb = whole ? bn : cmp_end(fb, bn);
			same = fa->ds_off <= ea && fb->ds_off <= eb && ea - fa->ds_off == eb - fb->ds_off &&
			       memcmp(a + fa->ds_off, b + fb->ds_off, ea - fa->ds_off) == 0;
		}
	}
	dcm_file_free(fa);
	dcm_file_free(fb);
	return same;
}

static bool same_data_set(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	return same_data_set_to(a, an, b, bn, true) || same_data_set_to(a, an, b, bn, false);
}

static size_t trimmed(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == 0))
		n--;
	return n;
}

struct found {
	unsigned n;
	const struct store_result *want;
	const char *pid;      /* the input's Patient ID, or NULL */
	size_t pid_len;
	bool ok;
};

static enum err on_hit(void *ctx, struct qry_hit *h)
{
	struct found *f = ctx;
	const char *pid;
	size_t n = 0;

	f->n++;
	f->ok = strcmp(h->sop_uid, f->want->sop_uid) == 0 && strcmp(h->series_uid, f->want->series_uid) == 0 &&
	        strcmp(h->study_uid, f->want->study_uid) == 0;
	pid = dcm_ds_str(&h->f->ds, 0x00100020, &n);
	n = pid != NULL ? trimmed(pid, n) : 0;
	if (f->ok && f->pid != NULL && (n != f->pid_len || (n > 0 && memcmp(pid, f->pid, n) != 0))) {
		fprintf(stderr, "store_fuzz: the query gives Patient ID '%.*s', the input '%.*s'\n", (int)n, pid,
		        (int)f->pid_len, f->pid);
		f->ok = false;
	}
	return ERR_OK;
}

/* The instance found by its SOP Instance UID, with its study, series and
 * Patient ID (as the input has it, when the Part 10 read gives one). */
static void check_indexed(const uint8_t *data, size_t size, const struct store_result *res)
{
	struct dcm_read_opts ro = { .bulk_threshold = 4096, .stop_tag = 0x7FE00010 };
	struct dcm_file *in = NULL, *id = NULL;
	struct dcm_errinfo ei;
	struct qry_opts o;
	struct qry_stats st;
	struct qry *q = NULL;
	struct found f;
	struct src_mem m;
	struct src s;
	struct dcm_charset cs;
	struct wbuf u;
	const char *pid;
	size_t n = 0;
	char why[256] = "";

	memset(&f, 0, sizeof f);
	f.want = res;
	src_mem_init(&s, &m, data, size);
	if (dcm_file_read(&s, &ro, &in, &ei) != ERR_OK)
		abort();   /* it was stored: it reads */
	/* as a record shows it: in UTF-8, what its character set cannot
	 * decode replaced (charset_to_utf8_lossy), padding trimmed */
	pid = dcm_ds_str(&in->ds, 0x00100020, &n);
	dcm_ds_charset(&in->ds, &cs);
	wbuf_init(&u, 1 << 16);
	if (pid != NULL && charset_to_utf8_lossy(&cs, false, (const uint8_t *)pid, n, &u) != ERR_OK)
		abort();
	if (pid != NULL) {
		f.pid = u.len > 0 ? (const char *)u.p : "";
		f.pid_len = trimmed(f.pid, u.len);
	}
	memset(&o, 0, sizeof o);
	o.level = QRY_INSTANCE;
	o.include_all = true;
	if (dcm_file_new(&id) != ERR_OK || dcm_ds_set_str(&id->ds, 0x00080018, VR_UI, res->sop_uid) != ERR_OK)
		abort();
	if (qry_new(&o, &id->ds, &q, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "store_fuzz: query for %s: %s\n", res->sop_uid, why);
		abort();
	}
	memset(&st, 0, sizeof st);
	if (qry_run(v, q, on_hit, &f, &st) != ERR_OK || f.n != 1 || !f.ok) {
		fprintf(stderr, "store_fuzz: %u hit(s) for %s (%s)\n", f.n, res->sop_uid, f.ok ? "as stored" : "other");
		abort();
	}
	qry_stats_fini(&st);
	qry_free(q);
	dcm_file_free(id);
	dcm_file_free(in);
	wbuf_fini(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_result r1, r2;
	struct src_mem m;
	struct src s;
	struct wbuf w;
	struct sink k;
	uint8_t sha[32], got[32];
	char why1[512] = "", why2[512] = "", why[256];
	enum err rc1, rc2;

	setup();
	sha256_once(data, size, sha);
	rc1 = store_early(data, size, sha, &r1, why1, sizeof why1);
	check_outcome(rc1, why1);
	src_mem_init(&s, &m, data, size);
	rc2 = store_instance(v, &s, "default", &r2, why2, sizeof why2);
	check_outcome(rc2, why2);
	if ((rc1 == ERR_OK) != (rc2 == ERR_OK) || (rc1 != ERR_OK && rc1 != rc2) ||
	    (rc1 == ERR_OK && (!r2.existed || strcmp(r1.sop_uid, r2.sop_uid) != 0))) {
		fprintf(stderr, "store_fuzz: early %s (%s), then %s (%s)%s\n", err_str(rc1), why1, err_str(rc2), why2,
		        rc2 == ERR_OK && !r2.existed ? ", stored anew" : "");
		abort();
	}
	if (rc1 != ERR_OK)
		return 0;
	wbuf_init(&w, (size_t)64 << 20);
	sink_wbuf(&k, &w);
	if (retrieve_instance(v, r1.sop_uid, &k, why, sizeof why) != ERR_OK)
		abort();
	sha256_once(w.p, w.len, got);
	if (memcmp(r1.sha256, got, 32) != 0 || memcmp(r2.sha256, got, 32) != 0 || r1.size != w.len ||
	    !(r1.existed ? same_data_set(data, size, w.p, w.len) : w.len == size && memcmp(w.p, data, size) == 0)) {
		fprintf(stderr, "store_fuzz: %s does not come back as stored (%zu of %zu bytes%s)\n", r1.sop_uid, w.len,
		        size, r1.existed ? ", stored before" : "");
		abort();
	}
	wbuf_fini(&w);
	check_indexed(data, size, &r1);
	return 0;
}
