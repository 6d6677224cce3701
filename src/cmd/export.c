/* export.c: `dicomvault export --study UID --out DIR [--deidentify
 * PROFILE]`: writes a stored study out as Part 10 files, one folder per
 * series, each object's chunks authenticated and its SHA-256 fixity checked
 * while it is read; with --deidentify, each file goes through the PS3.15
 * engine under the vault's project key (derived from the master key, so the
 * same patient gets the same pseudonyms in every export of one project)
 * and the vault's masking rules, from an encrypted spool (the identified
 * object never reaches a readable file). Every export is recorded before its first file, and
 * again when less was written (failures, a signal). OUT/SERIES folders
 * are opened without following links; a file gets its name only when it is
 * complete and fsync'd (O_TMPFILE), so an export killed in the middle
 * leaves no partial plaintext copy (and the temporary files of a file
 * system without O_TMPFILE are removed by the next export). Layer: cmd. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
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
#include "dicomvault/io.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/spool.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"

#define EXPORT_MAX_INSTANCES 1000000u

static const char export_usage[] =
	"usage: dicomvault export --study UID --out DIR [--deidentify PROFILE] [--project NAME]\n"
	"                         [--vault DIR] [--passphrase-file F] [--json] [--quiet]\n"
	"Write a stored study out as Part 10 files, OUT/SERIES_UID/SOP_UID.dcm, each object\n"
	"authenticated and its SHA-256 fixity checked as it is read. Audited.\n"
	"  --study UID          the Study Instance UID\n"
	"  --out DIR            the output folder, outside the vault (refused there: exit 2);\n"
	"                       created; an existing SOP.dcm is replaced, the .export.* files\n"
	"                       of an export cut short removed, others kept\n"
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

/* SIGINT/SIGTERM: the export stops after the file being written, and its
 * record says how far it went. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

struct exp {
	struct vault *v;
	struct audit *au;
	struct deid_opts o;
	struct deid_stats st;
	bool deid;
	const char *out;
	int out_fd;                          /* OUT, opened once */
	char cleaned[IDX_UID_MAX + 1];       /* the series folder last rid of stale files */
	uint64_t done, failed, refused, bytes;
	char first_fail[IDX_UID_MAX + 48];   /* the first failed instance and why, for the audit record */
	const uint8_t *patient;              /* the study's patient key (NULL: unknown) and its UID, */
	const char *study;                   /* named by an integrity failure's record */
};

/* A temporary name's length: ".export." and 16 hex digits. */
#define EXPORT_TMP_LEN 24

/* Whether name is one of our temporary names (exactly ".export." and 16
 * lower-case hex digits): nothing else in OUT is ours to remove. */
static bool is_temp_name(const char *name)
{
	size_t i;

	if (strlen(name) != EXPORT_TMP_LEN || strncmp(name, ".export.", 8) != 0)
		return false;
	for (i = 8; i < EXPORT_TMP_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return true;
}

/* Removes the temporary files an export cut short (SIGKILL, a crash, a
 * power loss) left in dfd: each may be a plaintext copy of an identified
 * object that nobody would see or remove. Only regular files of our exact
 * name pattern; said on stderr. A concurrent export into the same folder
 * could lose a file being renamed into place, and says so itself. */
static void remove_stale(int dfd, const char *out, const char *series, bool quiet)
{
	struct dirent *de;
	struct stat st;
	unsigned n = 0;
	DIR *d;
	int fd;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (is_temp_name(de->d_name) && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	closedir(d);
	if (n > 0 && !quiet)
		fprintf(stderr, "dicomvault export: removed %u unfinished file%s left in %s/%s by an export cut short\n", n,
		        n == 1 ? "" : "s", out, series);
}

/* OUT/series, opened as a folder of its own: a symbolic link planted there
 * (by anyone who can write in OUT) is refused, not followed. The first
 * time a series is opened, the temporary files of an export cut short are
 * removed from it (instances come series by series). -1 and why. */
static int series_dir(struct exp *e, const char *series, bool quiet, char *why, size_t whylen)
{
	int fd;

	if (!cmd_uid_ok(series)) {
		(void)err_why(why, whylen, ERR_PARSE, "series UID %.64s is not a UID", series);
		return -1;
	}
	if (mkdirat(e->out_fd, series, 0700) != 0 && errno != EEXIST) {
		(void)err_why(why, whylen, ERR_IO, "cannot create %s/%s: %s", e->out, series, strerror(errno));
		return -1;
	}
	fd = openat(e->out_fd, series, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		(void)err_why(why, whylen, ERR_IO, "%s/%s: %s", e->out, series,
		              errno == ELOOP || errno == ENOTDIR ? "not a folder (a symbolic link?): refused"
		                                                 : strerror(errno));
		return -1;
	}
	if (strcmp(e->cleaned, series) != 0) {
		remove_stale(fd, e->out, series, quiet);
		snprintf(e->cleaned, sizeof e->cleaned, "%s", series);
	}
	return fd;
}

/* A random temporary name, ".export." and 16 hex digits. */
static enum err temp_name(char name[40])
{
	uint8_t r[8];

	if (rand_bytes(r, sizeof r) != ERR_OK)
		return ERR_INTERNAL;
	snprintf(name, 40, ".export.%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	return ERR_OK;
}

/* A new temporary file in dfd (O_EXCL, no link followed): -1 and why. */
static int temp_in(int dfd, char name[40], const char *where, char *why, size_t whylen)
{
	int fd, i;

	for (i = 0; i < 8 && temp_name(name) == ERR_OK; i++) {
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST) {
			if (fd < 0)
				(void)err_why(why, whylen, ERR_IO, "cannot create a file in %s: %s", where, strerror(errno));
			return fd;
		}
	}
	name[0] = 0;
	(void)err_why(why, whylen, ERR_IO, "cannot create a file in %s", where);
	return -1;
}

/* The file an instance is written to, in dfd: one with no name (O_TMPFILE,
 * name left empty), so that an export killed before it is complete leaves
 * no plaintext behind; a named temporary file (name) only where the file
 * system has no O_TMPFILE. -1 and why. */
static int out_file(int dfd, char name[40], const char *where, char *why, size_t whylen)
{
	int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	name[0] = 0;
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		(void)err_why(why, whylen, ERR_IO, "cannot create a file in %s: %s", where, strerror(errno));
		return -1;
	}
	return temp_in(dfd, name, where, why, whylen);
}

/* Links the complete, fsync'd file fd with no name into dfd: as dst when
 * that name is free, else under a temporary name (tmp) that the caller
 * renames over dst, so an existing file is replaced atomically (linkat
 * does not replace; neither follows a link planted as dst). */
static enum err link_in(int fd, int dfd, const char *dst, char tmp[40])
{
	char self[64];
	int i;

	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, self, dfd, dst, AT_SYMLINK_FOLLOW) == 0)
		return ERR_OK;
	if (errno != EEXIST)
		return ERR_IO;
	for (i = 0; i < 8 && temp_name(tmp) == ERR_OK; i++) {
		if (linkat(AT_FDCWD, self, dfd, tmp, AT_SYMLINK_FOLLOW) == 0)
			return ERR_OK;
		if (errno != EEXIST)
			break;
	}
	tmp[0] = 0;
	return ERR_IO;
}

/* Retrieves the object into a spool (memory, or beyond 1 MiB a file with
 * no name under the vault's tmp, encrypted under a key of its own: the
 * identified bytes never reach a readable file) and de-identifies it. The
 * result, as Part 10, in *out, its UIDs in sop and series. */
static enum err deid_one(struct exp *e, const struct item *it, struct wbuf *out, char *sop, char *series, char *why,
                         size_t whylen)
{
	struct dcm_read_opts ro;
	struct dcm_write_opts wo;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct spool *sp = NULL;
	char dir[VAULT_PATH_MAX + 8];
	bool have_src = false;
	struct sink k;
	struct src s;
	enum err rc;

	snprintf(dir, sizeof dir, "%s/tmp", e->v->dir);
	rc = spool_new(&sp, dir, "export-deid");
	if (rc == ERR_OK) {
		sink_spool(&k, sp);
		rc = retrieve_instance(e->v, it->sop, &k, why, whylen);
	}
	if (rc == ERR_OK)
		rc = spool_finish(sp);
	if (rc == ERR_OK && (rc = spool_src(sp, &s)) == ERR_OK) {
		have_src = true;
		memset(&ro, 0, sizeof ro);
		ro.bulk_threshold = DCM_DEFAULT_BULK;
		rc = dcm_file_read(&s, &ro, &f, &ei);
		if (rc != ERR_OK)
			(void)err_why(why, whylen, ERR_IO, "stored object does not parse: %s", ei.msg);
	}
	if (rc == ERR_OK) {
		rc = deid_apply(f, &e->o, &e->st, why, whylen);
		if (rc == ERR_DENIED)
			e->refused++;
	}
	if (rc == ERR_OK &&
	    (dcm_ds_get_cstr(&f->ds, 0x00080018, sop, IDX_UID_MAX + 1) != ERR_OK || !cmd_uid_ok(sop) ||
	     dcm_ds_get_cstr(&f->ds, 0x0020000E, series, IDX_UID_MAX + 1) != ERR_OK || !cmd_uid_ok(series))) {
		rc = ERR_PARSE;
		(void)err_why(why, whylen, ERR_IO, "the de-identified object has no usable SOP Instance or Series UID");
	}
	if (rc == ERR_OK) {
		memset(&wo, 0, sizeof wo);
		sink_wbuf(&k, out);
		rc = dcm_file_write(f, &wo, &k);
		if (rc == ERR_OK)
			rc = wbuf_err(out);
	}
	dcm_file_free(f);
	if (have_src)
		src_close(&s);
	spool_free(sp);
	return rc;
}

/* One instance: retrieved (authenticated, fixity checked) into a file with
 * no name in OUT/SERIES, fsync'd, then linked into place; or retrieved and
 * de-identified in memory, then written so. */
static void export_one(struct exp *e, const struct item *it, bool quiet)
{
	char tmp[40] = "", why[512] = "", sop[IDX_UID_MAX + 1], series[IDX_UID_MAX + 1], dst[IDX_UID_MAX + 8];
	struct wbuf w;
	struct sink k;
	int dfd = -1, fd = -1;
	bool named = false;   /* a named temporary file (no O_TMPFILE) */
	enum err rc = ERR_OK;

	wbuf_init(&w, (size_t)4 << 30);
	snprintf(sop, sizeof sop, "%s", it->sop);
	snprintf(series, sizeof series, "%s", it->series);
	if (e->deid)
		rc = deid_one(e, it, &w, sop, series, why, sizeof why);
	if (rc == ERR_OK && snprintf(dst, sizeof dst, "%s.dcm", sop) >= (int)sizeof dst)
		rc = ERR_LIMIT;
	if (rc == ERR_OK && (dfd = series_dir(e, series, quiet, why, sizeof why)) < 0)
		rc = ERR_IO;
	if (rc == ERR_OK && (fd = out_file(dfd, tmp, e->out, why, sizeof why)) < 0)
		rc = ERR_IO;
	named = tmp[0] != 0;
	if (rc == ERR_OK && e->deid) {
		sink_fd(&k, &fd);
		rc = sink_write(&k, w.p, w.len);
		if (rc != ERR_OK)
			(void)err_why(why, sizeof why, ERR_IO, "cannot write in %s/%s: %s", e->out, series, strerror(errno));
	} else if (rc == ERR_OK) {
		sink_fd(&k, &fd);
		rc = retrieve_instance(e->v, it->sop, &k, why, sizeof why);
	}
	if (rc == ERR_OK) {
		struct stat st;
		if (fstat(fd, &st) == 0)
			e->bytes += (uint64_t)st.st_size;
	}
	if (rc == ERR_OK && fsync(fd) != 0) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot write in %s/%s: %s", e->out, series, strerror(errno));
	}
	/* named only now, complete and durable: into place at once, or under
	 * a temporary name renamed over the existing file */
	if (rc == ERR_OK && !named && link_in(fd, dfd, dst, tmp) != ERR_OK) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot link into %s/%s/%s: %s", e->out, series, dst,
		              strerror(errno));
	}
	if (rc == ERR_OK && ((tmp[0] && renameat(dfd, tmp, dfd, dst) != 0) || fsync(dfd) != 0)) {
		rc = ERR_IO;
		(void)err_why(why, sizeof why, ERR_IO, "cannot rename into %s/%s/%s: %s", e->out, series, dst,
		              strerror(errno));
	}
	if (rc == ERR_OK)
		tmp[0] = 0;
	if (fd >= 0)
		close(fd);
	if (tmp[0] && dfd >= 0)
		(void)unlinkat(dfd, tmp, 0);
	if (dfd >= 0)
		close(dfd);
	wbuf_fini(&w);
	if (rc == ERR_OK) {
		e->done++;
		if (!quiet)
			fprintf(stderr, "exported %s/%s/%s\n", e->out, series, dst);
		return;
	}
	if (rc == ERR_AUTH &&
	    audit_append(e->au, &(struct audit_rec){
	            .action = AUDIT_INTEGRITY_FAILURE, .outcome = AUDIT_FAILURE, .reason = AUDIT_REASON_INTEGRITY,
	            .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
	            .objects = { .patient = e->patient, .study_uid = e->study, .series_uid = it->series,
	                         .sop_uid = it->sop } }) != ERR_OK)
		fputs("dicomvault export: cannot write the audit record\n", stderr);
	if (rc != ERR_DENIED)
		e->failed++;
	if (rc != ERR_DENIED && e->first_fail[0] == 0)
		snprintf(e->first_fail, sizeof e->first_fail, "%s: %s", it->sop, audit_reason_of(rc));
	fprintf(stderr, "dicomvault export: instance %s: %s: %s\n", it->sop, rc == ERR_DENIED ? "refused" : "failed",
	        why[0] ? why : err_str(rc));
}

/* Whether the folder out names, once made, is the vault dir or lies in it:
 * compared by real paths (links and ".." resolved), out's own or, when it
 * does not exist yet, its nearest existing ancestor's, so nothing is made
 * before the answer. ERR_DENIED when it is in the vault, ERR_LIMIT when out
 * is too long to tell; ERR_OK otherwise, also when the vault's real path
 * is unknown (a missing vault: vault_open says so). */
static enum err out_in_vault(const char *out, const char *vault)
{
	char o[PATH_MAX], v[PATH_MAX], p[PATH_MAX];
	size_t n;

	if (realpath(vault, v) == NULL)
		return ERR_OK;
	if (snprintf(p, sizeof p, "%s", out) >= (int)sizeof p)
		return ERR_LIMIT;
	while (realpath(p, o) == NULL) {
		if (strcmp(p, ".") == 0 || strcmp(p, "/") == 0)
			return ERR_OK;
		n = strlen(p);
		while (n > 1 && p[n - 1] == '/')
			p[--n] = 0;
		path_parent(p);
	}
	n = strlen(v);
	return strncmp(o, v, n) == 0 && (o[n] == 0 || o[n] == '/' || n == 1) ? ERR_DENIED : ERR_OK;
}

/* The usage error for an OUT in the vault (rc from out_in_vault). */
static int out_refused(enum err rc, const char *out, const char *dir)
{
	if (rc == ERR_LIMIT)
		fprintf(stderr, "dicomvault export: --out: path too long\n");
	else
		fprintf(stderr, "dicomvault export: --out %s is inside the vault %s, which never holds plaintext: "
		        "choose a folder outside it\n", out, dir);
	return EXIT_USAGE;
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
	e.out_fd = -1;
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
	if (cmd_vault_present("export", dir) != 0)
		return 1;
	/* identified plaintext never lands in the vault (nor in its backups) */
	if ((rc = out_in_vault(out, dir)) != ERR_OK)
		return out_refused(rc, out, dir);
	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = pass;
	rc = vault_open(dir, &vo, &v, why, sizeof why);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault export: %s: %s\n", dir, why[0] ? why : err_str(rc));
		return 1;
	}
	/* opened first: nothing is exported when it cannot be recorded (a
	 * missing or emptied log: audit_open) */
	if (vault_audit_open(v, &e.au) != ERR_OK) {
		fprintf(stderr, "dicomvault export: cannot open the audit log in %s: nothing exported\n", dir);
		goto done;
	}
	e.out_fd = -1;
	if (mkdir(out, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "dicomvault export: %s: cannot create: %s\n", out, strerror(errno));
		goto done;
	}
	e.out_fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e.out_fd < 0) {
		fprintf(stderr, "dicomvault export: %s: not a folder\n", out);
		goto done;
	}
	/* again for the folder opened, by its descriptor: a link swapped in
	 * since the first look */
	snprintf(why, sizeof why, "/proc/self/fd/%d", e.out_fd);
	if ((rc = out_in_vault(why, dir)) != ERR_OK) {
		rcode = out_refused(rc, out, dir);
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
		if (audit_append(e.au, &(struct audit_rec){ .action = AUDIT_EXPORT,
		                 .outcome = AUDIT_FAILURE,
		                 .reason = reason,
		                 .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
		                 .objects = { .study_uid = study } }) != ERR_OK)
			fputs("dicomvault export: cannot write the audit record\n", stderr);
		goto done;
	}
	e.v = v;
	e.out = out;
	e.patient = have_patient ? pkey : NULL;
	e.study = study;
	/* the record first, signed at once: a file leaves only when it is
	 * recorded, and an export cut short (SIGKILL, a crash) leaves it */
	snprintf(reason, sizeof reason, "%s%s to %.*s: %zu to write", e.deid ? "de-identified " : "original",
	         e.deid ? profile : "", VAULT_PATH_MAX, out, l.n);
	rc = audit_append(e.au, &(struct audit_rec){
		.action = AUDIT_EXPORT, .outcome = AUDIT_SUCCESS,
		.reason = reason, .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
		.objects = { .patient = have_patient ? pkey : NULL, .study_uid = study, .counted = true,
		             .patients = 1, .studies = 1, .series = sids->n, .instances = l.n } });
	if (rc == ERR_OK && v->audit_sk != NULL)
		rc = audit_checkpoint(e.au);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault export: cannot write the audit record (%s): nothing exported\n", err_str(rc));
		goto done;
	}
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_stop;
		sa.sa_flags = SA_RESTART;   /* the file being written is finished */
		sigemptyset(&sa.sa_mask);
		(void)sigaction(SIGINT, &sa, NULL);
		(void)sigaction(SIGTERM, &sa, NULL);
		(void)sigaction(SIGHUP, &sa, NULL);
	}
	for (i = 0; i < l.n && !stop_signal; i++)
		export_one(&e, &l.it[i], quiet || json);
	if (stop_signal)
		fprintf(stderr, "dicomvault export: stopped by signal %d after %llu of %zu instances\n", (int)stop_signal,
		        (unsigned long long)e.done, l.n);
	rc = ERR_OK;
	if (e.done < l.n) {
		/* less went than recorded: said so */
		snprintf(reason, sizeof reason, "%s%s to %.*s: %llu of %zu written, %llu refused, %llu failed%s%s%s%s",
		         e.deid ? "de-identified " : "original", e.deid ? profile : "", VAULT_PATH_MAX, out,
		         (unsigned long long)e.done, l.n, (unsigned long long)e.refused, (unsigned long long)e.failed,
		         stop_signal ? ", stopped by a signal" : "", e.first_fail[0] ? " (first: " : "", e.first_fail,
		         e.first_fail[0] ? ")" : "");
		rc = audit_append(e.au, &(struct audit_rec){
			.action = AUDIT_EXPORT, .outcome = AUDIT_FAILURE,
			.reason = reason, .actor = { .user = cmd_operator(), .role = "operator", .addr = "local" },
			.objects = { .patient = have_patient ? pkey : NULL, .study_uid = study, .counted = true,
			             .patients = 1, .studies = 1, .series = sids->n, .instances = e.done } });
		if (rc != ERR_OK)
			fprintf(stderr, "dicomvault export: cannot write the audit record: %s\n", err_str(rc));
	}
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
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "dicomvault export: cannot write the summary: %s\n", strerror(errno));
		rcode = 1;
	}
done:
	audit_close(e.au);
	if (e.out_fd >= 0)
		close(e.out_fd);
	free(l.it);
	free(sids);
	deid_view_free(dv);
	vault_close(v);
	return rcode;
}
