/* export.c: `dicomvault export --study UID --out DIR [--deidentify
 * PROFILE]`: writes a stored study out as Part 10 files, one folder per
 * series, each object's chunks authenticated and its SHA-256 fixity checked
 * while it is read; with --deidentify, each file goes through the PS3.15
 * engine under the vault's project key (derived from the master key, so the
 * same patient gets the same pseudonyms in every export of one project)
 * and the vault's masking rules. Every export is audited. Layer: cmd. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/audit.h"
#include "dicomvault/cms.h"
#include "dicomvault/crypto.h"
#include "dicomvault/deid.h"
#include "dicomvault/deid_view.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"

#define EXPORT_MAX_INSTANCES 1000000u

static const char export_usage[] =
	"usage: dicomvault export --study UID --out DIR [--deidentify PROFILE] [--project NAME]\n"
	"                         [--vault DIR] [--passphrase-file F] [--json] [--quiet]\n"
	"Write a stored study out as Part 10 files, OUT/SERIES_UID/SOP_UID.dcm, each object\n"
	"authenticated and its SHA-256 fixity checked as it is read. Audited.\n"
	"  --study UID          the Study Instance UID\n"
	"  --out DIR            the output folder (created; files already there are kept)\n"
	"  --deidentify P       de-identify with the PS3.15 profile P (basic[,OPTION...], as\n"
	"                       for 'dicomvault deid'), under the vault's project key and its\n"
	"                       masking rules ([deid \"mask NAME\"] in dicomvault.conf); with\n"
	"                       [deid] escrow_cert = CERT.pem the original values are kept,\n"
	"                       encrypted to it, for 'dicomvault reidentify'\n"
	"  --project NAME       the project whose key makes the pseudonyms (default: [deid]\n"
	"                       project in dicomvault.conf, else \"default\"); the same project\n"
	"                       gives the same pseudonyms, UIDs and date offsets every time\n"
	"  --vault DIR          the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --passphrase-file F  the master key passphrase, for a passphrase vault\n"
	"  --json               print the summary as JSON\n"
	"  --quiet              no progress lines\n"
	"Exit status: 0 every instance written, 1 any failed or was refused, 2 usage error.\n";

struct item {
	char series[IDX_UID_MAX + 1];
	char sop[IDX_UID_MAX + 1];
};

struct list {
	struct item *it;
	size_t n, cap;
	const char *series;   /* the series being listed */
	enum err err;
};

static enum err add_instance(void *ctx, const struct idx_instance *in)
{
	struct list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct item *p;
		if (cap > EXPORT_MAX_INSTANCES)
			return ERR_LIMIT;
		p = realloc(l->it, cap * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		l->it = p;
		l->cap = cap;
	}
	snprintf(l->it[l->n].series, sizeof l->it[l->n].series, "%s", l->series);
	snprintf(l->it[l->n].sop, sizeof l->it[l->n].sop, "%s", in->uid);
	l->n++;
	return ERR_OK;
}

struct series_ids {
	int64_t id[4096];
	char uid[4096][IDX_UID_MAX + 1];
	size_t n;
};

static enum err add_series(void *ctx, const struct idx_series *se)
{
	struct series_ids *s = ctx;

	if (s->n == sizeof s->id / sizeof s->id[0])
		return ERR_LIMIT;
	s->id[s->n] = se->id;
	snprintf(s->uid[s->n], sizeof s->uid[s->n], "%s", se->uid);
	s->n++;
	return ERR_OK;
}

/* mkdir -p of one level under an existing folder. */
static int ensure_dir(const char *p)
{
	if (mkdir(p, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

struct exp {
	struct vault *v;
	struct deid_opts o;
	struct deid_stats st;
	bool deid;
	const char *out;
	uint64_t done, failed, refused, bytes;
	char first_fail[IDX_UID_MAX + 48];   /* the first failed instance and why, for the audit record */
};

/* One instance: retrieved (authenticated, fixity checked) into a temporary
 * file in OUT, then renamed, or read back, de-identified and written. */
static void export_one(struct exp *e, const struct item *it, bool quiet)
{
	char tmp[PATH_MAX], dst[PATH_MAX], dir[PATH_MAX], why[512] = "";
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct sink k;
	struct src s;
	bool have_src = false;
	int fd = -1;
	enum err rc;

	if (snprintf(tmp, sizeof tmp, "%s/.export.XXXXXX", e->out) >= (int)sizeof tmp) {
		rc = ERR_LIMIT;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot create a file in %s: %s", e->out, strerror(errno));
		goto out;
	}
	sink_fd(&k, &fd);
	rc = retrieve_instance(e->v, it->sop, &k, why, sizeof why);
	if (rc != ERR_OK)
		goto out;
	if (e->deid) {
		char sop[IDX_UID_MAX + 1] = "", series[IDX_UID_MAX + 1] = "";
		struct wbuf w;
		struct sink ks;
		memset(&ro, 0, sizeof ro);
		ro.bulk_threshold = DCM_DEFAULT_BULK;
		rc = src_file_open(&s, tmp);
		if (rc == ERR_OK) {
			have_src = true;
			rc = dcm_file_read(&s, &ro, &f, &ei);
			if (rc != ERR_OK)
				(void)err_why(why, sizeof why, ERR_IO, "stored object does not parse: %s", ei.msg);
		}
		if (rc == ERR_OK) {
			rc = deid_apply(f, &e->o, &e->st, why, sizeof why);
			if (rc == ERR_DENIED)
				e->refused++;
		}
		if (rc == ERR_OK && (dcm_ds_get_cstr(&f->ds, 0x00080018, sop, sizeof sop) != ERR_OK || !cmd_uid_ok(sop) ||
		                     dcm_ds_get_cstr(&f->ds, 0x0020000E, series, sizeof series) != ERR_OK ||
		                     !cmd_uid_ok(series))) {
			rc = ERR_PARSE;
			(void)err_why(why, sizeof why, ERR_IO, "the de-identified object has no usable SOP Instance or Series UID");
		}
		if (rc == ERR_OK && (snprintf(dir, sizeof dir, "%s/%s", e->out, series) >= (int)sizeof dir ||
		                     snprintf(dst, sizeof dst, "%s/%s.dcm", dir, sop) >= (int)sizeof dst))
			rc = ERR_LIMIT;
		if (rc == ERR_OK && ensure_dir(dir) != 0) {
			rc = ERR_IO;
			(void)err_why(why, sizeof why, ERR_IO, "cannot create %s: %s", dir, strerror(errno));
		}
		if (rc == ERR_OK) {
			/* write to memory first: the source is the temporary file */
			struct dcm_write_opts wo;
			memset(&wo, 0, sizeof wo);
			wbuf_init(&w, (size_t)4 << 30);
			sink_wbuf(&ks, &w);
			rc = dcm_file_write(f, &wo, &ks);
			if (rc == ERR_OK)
				rc = wbuf_err(&w);
			if (rc == ERR_OK && (ftruncate(fd, 0) != 0 || pwrite(fd, w.p, w.len, 0) != (ssize_t)w.len)) {
				rc = ERR_IO;
				(void)err_why(why, sizeof why, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
			}
			if (rc == ERR_OK)
				e->bytes += w.len;
			wbuf_fini(&w);
		}
	} else {
		if (snprintf(dir, sizeof dir, "%s/%s", e->out, it->series) >= (int)sizeof dir ||
		    snprintf(dst, sizeof dst, "%s/%s.dcm", dir, it->sop) >= (int)sizeof dst)
			rc = ERR_LIMIT;
		if (rc == ERR_OK && ensure_dir(dir) != 0) {
			rc = ERR_IO;
			(void)err_why(why, sizeof why, ERR_IO, "cannot create %s: %s", dir, strerror(errno));
		}
		if (rc == ERR_OK) {
			struct stat st;
			if (fstat(fd, &st) == 0)
				e->bytes += (uint64_t)st.st_size;
		}
	}
	if (rc == ERR_OK && fsync(fd) != 0) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	}
	if (rc == ERR_OK && rename(tmp, dst) != 0) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot rename into %s: %s", dst, strerror(errno));
	}
	if (rc == ERR_OK)
		tmp[0] = 0;
out:
	dcm_file_free(f);
	if (have_src)
		src_close(&s);
	if (fd >= 0)
		close(fd);
	if (fd >= 0 && tmp[0])
		unlink(tmp);
	if (rc == ERR_OK) {
		e->done++;
		if (!quiet)
			fprintf(stderr, "exported %s\n", dst);
	} else {
		if (rc == ERR_AUTH &&
		    audit_append_once(e->v->dir, e->v->audit_sk, e->v->audit_pk, &(struct audit_rec){
		            .action = AUDIT_INTEGRITY_FAILURE, .outcome = AUDIT_FAILURE, .reason = AUDIT_REASON_INTEGRITY,
		            .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
		            .objects = { .series_uid = it->series, .sop_uid = it->sop } }) != ERR_OK)
			fputs("dicomvault export: cannot write the audit record\n", stderr);
		if (rc != ERR_DENIED)
			e->failed++;
		if (rc != ERR_DENIED && e->first_fail[0] == 0)
			snprintf(e->first_fail, sizeof e->first_fail, "%s: %s", it->sop,
			         audit_reason_of(rc));
		fprintf(stderr, "dicomvault export: instance %s: %s: %s\n", it->sop, rc == ERR_DENIED ? "refused" : "failed",
		        why[0] ? why : err_str(rc));
	}
}

int cmd_export(int argc, char **argv)
{
	const char *study = NULL, *out = NULL, *profile = NULL, *vault_arg = NULL, *pass = NULL, *project = NULL;
	char dir[VAULT_PATH_MAX], why[512] = "", reason[VAULT_PATH_MAX + 256];
	struct vault_open_opts vo;
	struct vault *v = NULL;
	struct deid_view *dv = NULL;
	struct series_ids *sids = NULL;
	struct idx_study st;
	struct idx_patient pa;
	uint8_t pkey[IDX_HMAC_LEN];
	struct list l;
	struct exp e;
	bool json = false, quiet = false, have_patient = false;
	struct stat sb;
	const struct args_opt opts[] = {
		{ "--json", .flag = &json },
		{ "--quiet", .flag = &quiet },
		{ "--study", .value = &study },
		{ "--out", .value = &out },
		{ "--deidentify", .value = &profile },
		{ "--project", .value = &project },
		{ "--vault", .value = &vault_arg },
		{ "--passphrase-file", .value = &pass },
		{ "--passphrase", .refused = "--passphrase-file" },
		{ NULL }
	};
	size_t i, npos = 0;
	int rcode = 1;
	enum err rc;

	memset(&l, 0, sizeof l);
	memset(&e, 0, sizeof e);
	rcode = cmd_args("export", export_usage, argc, argv, 1, opts, NULL, 0, &npos);
	if (rcode != CMD_ARGS_GO)
		return rcode;
	rcode = 1;
	if (study == NULL || out == NULL) {
		fputs("dicomvault export: --study and --out are required\n", stderr);
		fputs(export_usage, stderr);
		return EXIT_USAGE;
	}
	if (!cmd_uid_ok(study)) {
		fputs("dicomvault export: --study: not a UID (1 to 64 digits and dots)\n", stderr);
		return EXIT_USAGE;
	}
	if (profile != NULL) {
		e.deid = true;
		if (deid_parse_profile(profile, &e.o.options, why, sizeof why) != ERR_OK) {
			fprintf(stderr, "dicomvault export: --deidentify: %s\n", why);
			return EXIT_USAGE;
		}
	} else if (project != NULL) {
		fputs("dicomvault export: --project needs --deidentify\n", stderr);
		return EXIT_USAGE;
	}
	if (vault_resolve(vault_arg, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault export: vault path too long\n", stderr);
		return EXIT_USAGE;
	}
	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = pass;
	rc = vault_open(dir, &vo, &v, why, sizeof why);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault export: %s: %s\n", dir, why[0] ? why : err_str(rc));
		return 1;
	}
	if (mkdir(out, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "dicomvault export: %s: cannot create: %s\n", out, strerror(errno));
		goto done;
	}
	if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "dicomvault export: %s: not a folder\n", out);
		goto done;
	}
	if (e.deid) {
		if (deid_view_open(v, project, profile, &dv, why, sizeof why) != ERR_OK) {
			fprintf(stderr, "dicomvault export: %s/dicomvault.conf: %s\n", dir, why[0] ? why : "bad [deid] settings");
			goto done;
		}
		e.o = *deid_view_opts(dv);
	}
	/* the study's instances, series by series */
	sids = calloc(1, sizeof *sids);
	if (sids == NULL) {
		fputs("dicomvault export: out of memory\n", stderr);
		goto done;
	}
	rc = v->ix->ops->study_get(v->ix, study, &st);
	if (rc == ERR_OK && v->ix->ops->patient_by_id(v->ix, st.patient_id, &pa) == ERR_OK) {
		memcpy(pkey, pa.key_hmac, sizeof pkey);
		have_patient = true;
	}
	if (rc == ERR_OK)
		rc = v->ix->ops->series_list(v->ix, st.id, add_series, sids);
	for (i = 0; rc == ERR_OK && i < sids->n; i++) {
		l.series = sids->uid[i];
		rc = v->ix->ops->instance_list(v->ix, sids->id[i], add_instance, &l);
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault export: study %s: %s\n", study,
		        rc == ERR_NOTFOUND ? "no such study in this vault" : err_str(rc));
		snprintf(reason, sizeof reason, "%s", rc == ERR_NOTFOUND ? "no such study" : err_str(rc));
		if (audit_append_once(dir, v->audit_sk, v->audit_pk, &(struct audit_rec){ .action = AUDIT_EXPORT,
		                      .outcome = AUDIT_FAILURE,
		                      .reason = reason,
		                      .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
		                      .objects = { .study_uid = study } }) != ERR_OK)
			fputs("dicomvault export: cannot write the audit record\n", stderr);
		goto done;
	}
	e.v = v;
	e.out = out;
	for (i = 0; i < l.n; i++)
		export_one(&e, &l.it[i], quiet || json);
	snprintf(reason, sizeof reason, "%s%s to %.*s: %llu written, %llu refused, %llu failed%s%s%s",
	         e.deid ? "de-identified " : "original", e.deid ? profile : "", VAULT_PATH_MAX, out,
	         (unsigned long long)e.done, (unsigned long long)e.refused, (unsigned long long)e.failed,
	         e.first_fail[0] ? " (first: " : "", e.first_fail, e.first_fail[0] ? ")" : "");
	rc = audit_append_once(dir, v->audit_sk, v->audit_pk, &(struct audit_rec){
		.action = AUDIT_EXPORT, .outcome = e.failed || e.refused ? AUDIT_FAILURE : AUDIT_SUCCESS,
		.reason = reason, .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
		.objects = { .patient = have_patient ? pkey : NULL, .study_uid = study, .counted = true,
		             .patients = 1, .studies = 1, .series = sids->n, .instances = e.done } });
	if (rc != ERR_OK)
		fprintf(stderr, "dicomvault export: cannot write the audit record: %s\n", err_str(rc));
	if (json)
		printf("{\"study\":\"%s\",\"instances\":%zu,\"written\":%llu,\"refused\":%llu,\"failed\":%llu,"
		       "\"bytes\":%llu,\"deidentified\":%s}\n", study, l.n, (unsigned long long)e.done,
		       (unsigned long long)e.refused, (unsigned long long)e.failed, (unsigned long long)e.bytes,
		       e.deid ? "true" : "false");
	else
		printf("export: %llu of %zu instance%s written to %s%s, %llu refused, %llu failed\n",
		       (unsigned long long)e.done, l.n, l.n == 1 ? "" : "s", out, e.deid ? " (de-identified)" : "",
		       (unsigned long long)e.refused, (unsigned long long)e.failed);
	rcode = rc == ERR_OK && e.failed == 0 && e.refused == 0 && e.done == l.n ? 0 : 1;
done:
	free(l.it);
	free(sids);
	deid_view_free(dv);
	vault_close(v);
	return rcode;
}
