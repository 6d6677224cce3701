/* import.c: `dicomvault import` (SPEC section 2, issue 5), migration into
 * the vault, two ways:
 *   import PATH...          Part 10 files and folders (recursively); a
 *                           bare data set (no meta) is wrapped as Part 10;
 *                           each file opened once (no symbolic link in a
 *                           folder, no FIFO or device) and copied, so that
 *                           what is stored is what is audited;
 *   import --from AE        an old archive, a [peer "AE"] of
 *                           dicomvault.conf: Study Root C-FIND (STUDY,
 *                           then SERIES and IMAGE per study: the SOP
 *                           Instance UIDs to expect), then one C-MOVE per
 *                           study to our own AE title, whose C-STORE
 *                           sub-operations arrive on a DICOM listener this
 *                           command runs for the time of the import.
 * Both ingest through the vault's one pipeline (store_instance: the
 * collection rules, dedupe of identical bytes, refusal of other bytes
 * under a stored UID, a `store` audit record each; the network way is the
 * C-STORE SCP of `serve` itself), then VERIFY every expected object: it
 * is in the index and reading it back (every chunk authenticated) gives
 * the SHA-256 fixity recorded at ingest. A report of counts and of each
 * failure with its reason (text or --json); exit 0 only when every object
 * verified, 1 otherwise, 2 for a usage error. The import is audited
 * (start and end, the peer, the counts). No patient data is printed:
 * objects are named by file name or SOP Instance UID. Layer: cmd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dimse.h"
#include "dicomvault/dimse_scu.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/peers.h"
#include "dicomvault/spool.h"
#include "dicomvault/store.h"
#include "dicomvault/vr.h"
#include "dicomvault/vault.h"

#define AUDIT_IMPORT "import"
#define IMPORT_MAX_OBJECTS 10000000u
#define IMPORT_MAX_LISTED 10000u     /* failures listed one by one; the rest only counted */
#define IMPORT_MAX_STUDIES 1000000u
#define IMPORT_MAX_DEPTH 64
#define CERT_MAX (1u << 20)
#define DICOMDIR_CLASS "1.2.840.10008.1.3.10"

static const char import_usage[] =
	"usage: dicomvault import PATH... [--vault DIR] [--passphrase-file F] [--json]\n"
	"       dicomvault import --from AE [--study UID]... [--port N] [--vault DIR]\n"
	"                         [--passphrase-file F] [--json]\n"
	"Migrate objects into the vault, then verify every one: it is in the index and\n"
	"reading it back (each chunk authenticated) gives the SHA-256 recorded at ingest.\n"
	"  PATH...              Part 10 files and folders (recursively); a bare data set\n"
	"                       (no meta, as old archives hold them) is stored as Part 10;\n"
	"                       files that are not DICOM (and DICOMDIRs) are skipped and counted;\n"
	"                       each file is opened and read once; a FIFO, device or socket\n"
	"                       fails, and so does a symbolic link to a file inside a folder\n"
	"                       (not followed; one to a folder is skipped)\n"
	"  --from AE            pull from the [peer \"AE\"] of dicomvault.conf (host and port\n"
	"                       required; DICOM-TLS, or plain TCP with tls = no): Study Root\n"
	"                       C-FIND of every study (or of the --study ones) and its\n"
	"                       instances, then C-MOVE of each study to our AE title\n"
	"                       ([dicom] ae_title, default DICOMVAULT): the peer must know\n"
	"                       that AE title at this host and --port\n"
	"  --study UID          only this study (repeatable)\n"
	"  --port N             where the C-STORE sub-operations are received: the host of\n"
	"                       [dicom] listen (default 127.0.0.1) on port N (default the\n"
	"                       port of [dicom] listen, 2762: stop `serve` or give another)\n"
	"  --vault DIR          the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --passphrase-file F  the master key passphrase, for a passphrase vault\n"
	"  --json               print the report as JSON\n"
	"SIGINT (Ctrl-C) or SIGTERM stops it cleanly: the C-MOVE under way is cancelled\n"
	"(C-CANCEL), no other study is moved, what arrived is verified and reported\n"
	"(the rest counted as skipped); with PATH..., no file after the current one.\n"
	"Running it again imports the rest (what is stored counts as already present).\n"
	"Exit status: 0 every object stored and verified, 1 any failed or is missing,\n"
	"or the import was cancelled, 2 usage error. Audited (start, end, counts).\n";

/* ---- the report ---- */

enum what { W_FAILED, W_MISSING, W_SKIPPED, W_ERROR };   /* W_ERROR: not of one object (a study, the peer) */

struct item {
	enum what kind;
	char *object;      /* file name or SOP Instance UID */
	char *reason;
};

struct report {
	uint64_t expected, received, stored, present, failed, missing, skipped, verified, errors;
	uint64_t pending;          /* pending C-MOVE responses consumed */
	bool cancelled;            /* stopped by SIGINT or SIGTERM */
	struct item *it;
	size_t n, cap;
	uint64_t unlisted;
};

static void note(struct report *r, enum what kind, const char *object, const char *fmt, ...) PRINTF_LIKE(4, 5);
static void note(struct report *r, enum what kind, const char *object, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	if (kind == W_FAILED)
		r->failed++;
	else if (kind == W_MISSING)
		r->missing++;
	else if (kind == W_SKIPPED)
		r->skipped++;
	else
		r->errors++;
	if (r->n >= IMPORT_MAX_LISTED) {
		r->unlisted++;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct item *p = realloc(r->it, cap * sizeof *p);
		if (p == NULL) {
			r->unlisted++;
			return;
		}
		r->it = p;
		r->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	r->it[r->n].kind = kind;
	r->it[r->n].object = strdup(object);
	r->it[r->n].reason = strdup(reason);
	if (r->it[r->n].object == NULL || r->it[r->n].reason == NULL) {
		free(r->it[r->n].object);
		free(r->it[r->n].reason);
		r->unlisted++;
		return;
	}
	r->n++;
}

static void report_free(struct report *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->it[i].object);
		free(r->it[i].reason);
	}
	free(r->it);
}

static const char *kind_name(enum what k)
{
	return k == W_FAILED ? "failed" : k == W_MISSING ? "missing" : k == W_SKIPPED ? "skipped" : "error";
}

static void report_print(const struct report *r, const char *source, bool json)
{
	size_t i;

	if (json) {
		fputs("{\"source\":", stdout);
		cmd_json_str(source);
		printf(",\"expected\":%llu,\"received\":%llu,\"stored\":%llu,\"already_present\":%llu,\"failed\":%llu,"
		       "\"missing\":%llu,\"skipped\":%llu,\"verified\":%llu,\"errors\":%llu,\"pending_responses\":%llu,"
		       "\"unlisted\":%llu,\"problems\":[",
		       (unsigned long long)r->expected, (unsigned long long)r->received, (unsigned long long)r->stored,
		       (unsigned long long)r->present, (unsigned long long)r->failed, (unsigned long long)r->missing,
		       (unsigned long long)r->skipped, (unsigned long long)r->verified, (unsigned long long)r->errors,
		       (unsigned long long)r->pending, (unsigned long long)r->unlisted);
		for (i = 0; i < r->n; i++) {
			printf("%s{\"kind\":\"%s\",\"object\":", i ? "," : "", kind_name(r->it[i].kind));
			cmd_json_str(r->it[i].object);
			fputs(",\"reason\":", stdout);
			cmd_json_str(r->it[i].reason);
			fputs("}", stdout);
		}
		printf("],\"cancelled\":%s,\"ok\":%s}\n", r->cancelled ? "true" : "false",
		       r->failed == 0 && r->missing == 0 && r->errors == 0 ? "true" : "false");
		return;
	}
	for (i = 0; i < r->n; i++)
		printf("%s: %s: %s\n", kind_name(r->it[i].kind), r->it[i].object, r->it[i].reason);
	if (r->unlisted)
		printf("(%llu more not listed)\n", (unsigned long long)r->unlisted);
	printf("import from %s: %llu expected, %llu received, %llu stored, %llu already present, %llu failed, "
	       "%llu missing, %llu skipped; %llu verified%s\n",
	       source, (unsigned long long)r->expected, (unsigned long long)r->received, (unsigned long long)r->stored,
	       (unsigned long long)r->present, (unsigned long long)r->failed, (unsigned long long)r->missing,
	       (unsigned long long)r->skipped, (unsigned long long)r->verified,
	       r->cancelled ? "; cancelled" : r->errors ? "; errors above" : "");
}

/* ---- cancelling ---- */

/* Set by SIGINT or SIGTERM: no new file or study is started, the C-FIND
 * or C-MOVE under way is cancelled (dimse_scu_set_cancel). */
static volatile sig_atomic_t cancel_flag;

static void on_cancel(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

/* Installs on_cancel (without SA_RESTART: a blocking read returns). */
static void cancel_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_cancel;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
}

/* The report's note, once, when the import stops early. */
static void cancel_note(struct report *r, const char *what)
{
	if (r->cancelled)
		return;
	r->cancelled = true;
	note(r, W_ERROR, "import", "cancelled by the operator (SIGINT or SIGTERM): %s", what);
}

/* ---- shared state ---- */

struct imp {
	struct vault *v;
	pthread_mutex_t lock;           /* the index (v->ix_lock) */
	struct audit *au;
	const struct access_collections *colls;   /* the vault's */
	struct report r;
	bool json, tty;
	uint64_t done, total;           /* progress */
};

static void progress(struct imp *x, const char *what)
{
	if (!x->tty)
		return;
	if (x->total)
		fprintf(stderr, "\rimport: %s %llu/%llu   ", what, (unsigned long long)x->done,
		        (unsigned long long)x->total);
	else
		fprintf(stderr, "\rimport: %s %llu   ", what, (unsigned long long)x->done);
	fflush(stderr);
}

static void progress_end(struct imp *x)
{
	if (x->tty)
		fputs("\n", stderr);
}

static struct audit_actor operator_actor(void)
{
	struct audit_actor a = { .user = cmd_operator(), .role = "operator", .addr = "local" };

	return a;
}

/* Bytes read back are only counted: retrieve_instance itself checks the
 * whole object against the SHA-256 and size of the index. */
static enum err count_write(void *ctx, const void *p, size_t n)
{
	(void)p;
	*(uint64_t *)ctx += n;
	return ERR_OK;
}

/* The object of sop is in the index and reads back (each chunk
 * authenticated; retrieve_instance's fixity check against the SHA-256 and
 * size recorded at ingest), and that record is want, when given (what
 * ingest reported). ERR_NOTFOUND: not in the index. */
static enum err verify_one(struct imp *x, const char *sop, const uint8_t *want, char *why, size_t whylen)
{
	struct idx_instance in;
	uint64_t n = 0;
	struct sink k = { count_write, &n };
	enum err rc;

	pthread_mutex_lock(&x->lock);
	rc = x->v->ix->ops->instance_get(x->v->ix, sop, &in);
	pthread_mutex_unlock(&x->lock);
	if (rc != ERR_OK) {
		snprintf(why, whylen, "%s", rc == ERR_NOTFOUND ? "not in the vault's index" : err_str(rc));
		return rc;
	}
	why[0] = 0;
	rc = retrieve_instance(x->v, sop, &k, why, whylen);
	if (rc != ERR_OK) {
		if (why[0] == 0)
			snprintf(why, whylen, "read back failed: %s", err_str(rc));
		return rc == ERR_NOTFOUND ? ERR_IO : rc;
	}
	if (n != in.size || (want != NULL && !ct_equal(in.sha256, want, 32))) {
		snprintf(why, whylen, "read back does not match the SHA-256 fixity recorded at ingest");
		return ERR_AUTH;
	}
	return ERR_OK;
}

/* ---- import PATH... ---- */

/* Whether s starts like Part 10: 128 bytes, then "DICM". */
static bool part10_magic(struct src *s)
{
	uint8_t h[132];

	return s->size >= (int64_t)sizeof h && s->read_at(s->ctx, 0, h, sizeof h) == ERR_OK &&
	       memcmp(h + 128, "DICM", 4) == 0;
}

/* Whether s, from its start, reads as a data set (the encoding guessed
 * from its first element, as DCMTK and pydicom do) up to (0008,0018),
 * with a valid SOP Class and SOP Instance UID; *has_meta (may be NULL):
 * it begins with a meta group. ERR_UNSUPPORTED: not DICOM. */
static enum err bare_head(struct src *s, bool *has_meta)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	char uid[65];
	size_t n = 0;
	const char *u;
	enum err rc;

	memset(&ro, 0, sizeof ro);
	ro.bulk_threshold = DCM_DEFAULT_BULK;
	ro.stop_tag = 0x00080019;
	rc = dcm_file_read(s, &ro, &f, &ei);
	if (rc == ERR_OK) {
		u = dcm_ds_str(&f->ds, 0x00080018, &n);
		rc = dcm_ds_get_cstr(&f->ds, 0x00080016, uid, sizeof uid) == ERR_OK && vr_uid_ok(uid, strlen(uid)) &&
		     u != NULL && vr_uid_ok(u, n) ? ERR_OK : ERR_UNSUPPORTED;
	}
	if (rc == ERR_OK && has_meta != NULL)
		*has_meta = f->has_meta;
	dcm_file_free(f);
	return rc == ERR_OK ? ERR_OK : ERR_UNSUPPORTED;
}

/* A file without the DICM prefix (its bytes in raw) whose head reads as a
 * data set (old archives and ACR-NEMA-era tools wrote them so) with a
 * valid SOP Class and SOP Instance UID: its Part 10 form into *out, as the
 * C-STORE SCP wraps a received data set. A bare data set is written with a
 * meta group made for it (in the encoding it was read in); a meta group
 * without the preamble keeps its bytes, behind a preamble (re-encoded, an
 * unknown transfer syntax would be relabelled). ERR_UNSUPPORTED: not
 * DICOM; any other failure (a damaged data set included) is said in why. */
static enum err bare_wrap(struct imp *x, struct spool *raw, struct spool **out, char *why, size_t whylen)
{
	static const uint8_t preamble[132] = { [128] = 'D', [129] = 'I', [130] = 'C', [131] = 'M' };
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_write_opts wo;
	struct dcm_file *f = NULL;
	struct spool *sp = NULL;
	struct sink k;
	struct src s;
	char dir[VAULT_PATH_MAX + 8];
	uint8_t buf[64 * 1024];
	size_t n = 0;
	bool has_meta = false, open = false;
	enum err rc;

	*out = NULL;
	rc = spool_src(raw, &s);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot read its copy: %s", err_str(rc));
	/* DICOM or not: the head up to (0008,0018) */
	rc = bare_head(&s, &has_meta);
	src_close(&s);
	if (rc != ERR_OK)
		return ERR_UNSUPPORTED;
	rc = spool_src(raw, &s);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot read its copy: %s", err_str(rc));
	open = true;
	snprintf(dir, sizeof dir, "%s/tmp", x->v->dir);
	rc = spool_new(&sp, dir, "import-bare");
	if (rc != ERR_OK) {
		rc = err_why(why, whylen, rc, "cannot start a temporary file in the vault's tmp folder");
		goto out;
	}
	if (has_meta) {
		rc = spool_write(sp, preamble, sizeof preamble);
		while (rc == ERR_OK && (rc = s.read(s.ctx, buf, sizeof buf, &n)) == ERR_OK && n > 0)
			rc = spool_write(sp, buf, n);
		if (rc != ERR_OK)
			rc = err_why(why, whylen, rc, "cannot copy it: %s", err_str(rc));
	} else {
		memset(&ro, 0, sizeof ro);
		ro.bulk_threshold = DCM_DEFAULT_BULK;
		rc = dcm_file_read(&s, &ro, &f, &ei);
		if (rc != ERR_OK) {
			rc = err_why(why, whylen, ERR_PARSE, "a bare data set, not readable at byte %llu: %s",
			             (unsigned long long)ei.offset, ei.msg);
			goto out;
		}
		memset(&wo, 0, sizeof wo);
		sink_spool(&k, sp);
		rc = dcm_file_write(f, &wo, &k);
		if (rc != ERR_OK)
			rc = err_why(why, whylen, rc == ERR_UNSUPPORTED ? ERR_PARSE : rc,
			             "a bare data set that cannot be written as Part 10: %s", err_str(rc));
	}
	if (rc == ERR_OK)
		rc = spool_finish(sp);
out:
	dcm_file_free(f);
	if (open)
		src_close(&s);
	if (rc != ERR_OK) {
		spool_free(sp);
		return rc;
	}
	*out = sp;
	return ERR_OK;
}

/* path's bytes, read once. Whoever can write path's folder may replace
 * the file between any two looks at it by name (a FIFO that blocks the
 * open, a symbolic link, another patient's object after the first was
 * parsed), and whoever can write the file may change its bytes between
 * two reads: so it is opened once (file_open_regular: a regular file, no
 * symbolic link unless follow, no blocking open) and copied whole into
 * *out (in memory, or encrypted in the vault's tmp folder, as a received
 * data set is spooled), and every later step (its kind, the parse, the
 * store and its SHA-256, the audit record) reads that copy, never path.
 * A file whose head is neither Part 10 nor a data set is not copied:
 * ERR_UNSUPPORTED. Any other failure is said in why. */
static enum err file_take(struct imp *x, int dfd, const char *name, bool follow, struct spool **out, char *why,
                          size_t whylen)
{
	struct spool *sp = NULL;
	struct src s;
	char dir[VAULT_PATH_MAX + 8];
	uint8_t buf[64 * 1024];
	const char *what = "not a regular file";
	uint64_t off = 0;
	ssize_t got;
	int fd = -1;
	enum err rc;

	rc = file_open_regular_at(dfd, name, follow, &fd, &what);
	if (rc == ERR_DENIED)
		return err_why(why, whylen, rc, "%s, not a regular file: not read", what);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot open: %s",
		               rc == ERR_NOTFOUND ? "no such file (removed after the folder was listed)" : strerror(errno));
	rc = src_file_fdopen(&s, fd);   /* s owns fd */
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot read: %s", err_str(rc));
	fd = src_file_fd(&s);
	/* its head first, so that a large file that is not DICOM is not
	 * copied (the copy is looked at again: it decides) */
	if (!part10_magic(&s) && bare_head(&s, NULL) != ERR_OK) {
		rc = ERR_UNSUPPORTED;
		goto out;
	}
	snprintf(dir, sizeof dir, "%s/tmp", x->v->dir);
	rc = spool_new(&sp, dir, "import-file");
	if (rc != ERR_OK) {
		rc = err_why(why, whylen, rc, "cannot start a temporary file in the vault's tmp folder");
		goto out;
	}
	for (;;) {
		got = pread(fd, buf, sizeof buf, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = err_why(why, whylen, ERR_IO, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		rc = spool_write(sp, buf, (size_t)got);
		if (rc != ERR_OK) {
			rc = err_why(why, whylen, rc, "cannot copy it: %s", err_str(rc));
			goto out;
		}
		off += (uint64_t)got;
	}
	rc = spool_finish(sp);
	if (rc != ERR_OK)
		rc = err_why(why, whylen, rc, "cannot copy it: %s", err_str(rc));
out:
	mem_wipe(buf, sizeof buf);
	src_close(&s);
	if (rc != ERR_OK) {
		spool_free(sp);
		return rc;
	}
	*out = sp;
	return ERR_OK;
}

/* One file, name in the folder open as dfd (AT_FDCWD: name is the path
 * the operator gave), path for the report: read once (file_take), then its
 * Part 10 form is parsed, stored, audited and verified from that copy.
 * follow: a symbolic link the operator named. */
static void ingest_file(struct imp *x, int dfd, const char *name, const char *path, bool follow)
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct store_result res;
	struct src s;
	struct idx_study cur;
	char coll[ACCESS_NAME_MAX + 1] = "default", study[65] = "", cls[65] = "", pid[65] = "", iss[65] = "";
	char why[512] = "", conflict[80];
	uint8_t pkey[32];
	bool have_pkey = false, have_src = false;
	struct audit_rec ar;
	struct spool *raw = NULL;  /* the file's bytes */
	struct spool *sp = NULL;   /* a bare data set made Part 10 */
	struct spool *in;          /* raw or sp: what is stored */
	bool m;
	enum err rc;

	x->done++;
	progress(x, "files");
	rc = file_take(x, dfd, name, follow, &raw, why, sizeof why);
	if (rc == ERR_UNSUPPORTED) {
		note(&x->r, W_SKIPPED, path, "not DICOM (no DICM prefix, and not a data set with SOP Class and "
		     "Instance UIDs)");
		return;
	}
	if (rc != ERR_OK) {
		note(&x->r, W_FAILED, path, "%s", why);
		return;
	}
	why[0] = 0;
	rc = spool_src(raw, &s);
	if (rc != ERR_OK) {
		x->r.expected++;
		note(&x->r, W_FAILED, path, "cannot read its copy: %s", err_str(rc));
		goto out;
	}
	m = part10_magic(&s);
	src_close(&s);
	if (!m) {
		rc = bare_wrap(x, raw, &sp, why, sizeof why);
		if (rc == ERR_UNSUPPORTED) {
			note(&x->r, W_SKIPPED, path, "not DICOM (no DICM prefix, and not a data set with SOP Class and "
			     "Instance UIDs)");
			goto out;
		}
		if (rc != ERR_OK) {
			x->r.expected++;
			note(&x->r, W_FAILED, path, "%s", why);
			goto out;
		}
		why[0] = 0;
		spool_free(raw);   /* sp is what is stored */
		raw = NULL;
	}
	in = sp != NULL ? sp : raw;
	x->r.expected++;
	rc = spool_src(in, &s);
	if (rc != ERR_OK) {
		note(&x->r, W_FAILED, path, "cannot read its copy: %s", err_str(rc));
		goto out;
	}
	have_src = true;
	memset(&ro, 0, sizeof ro);
	ro.bulk_threshold = DCM_DEFAULT_BULK;
	rc = dcm_file_read(&s, &ro, &f, &ei);
	if (rc != ERR_OK) {
		note(&x->r, W_FAILED, path, "not readable DICOM at byte %llu: %s", (unsigned long long)ei.offset, ei.msg);
		goto out;
	}
	if ((dcm_ds_get_cstr(&f->meta, 0x00020002, cls, sizeof cls) == ERR_OK && strcmp(cls, DICOMDIR_CLASS) == 0)) {
		x->r.expected--;
		note(&x->r, W_SKIPPED, path, "a DICOMDIR (a media directory, not an object)");
		goto out;
	}
	x->r.received++;
	if (dcm_ds_get_cstr(&f->ds, 0x0020000D, study, sizeof study) != ERR_OK)
		study[0] = 0;
	if (dcm_ds_get_cstr(&f->ds, 0x00100020, pid, sizeof pid) == ERR_OK && pid[0]) {
		if (dcm_ds_get_cstr(&f->ds, 0x00100021, iss, sizeof iss) != ERR_OK)
			iss[0] = 0;
		have_pkey = store_patient_key(x->v, pid, iss, pkey) == ERR_OK;
	}
	mem_wipe(pid, sizeof pid);
	/* a stored study keeps its collection; a new one joins the first
	 * [collection] whose rules fit */
	pthread_mutex_lock(&x->lock);
	if (study[0] && x->v->ix->ops->study_get(x->v->ix, study, &cur) == ERR_OK)
		snprintf(coll, sizeof coll, "%s", cur.collection);
	else
		snprintf(coll, sizeof coll, "%s", access_collection_for(x->colls, &f->ds, NULL, NULL));
	pthread_mutex_unlock(&x->lock);
	dcm_file_free(f);
	f = NULL;
	src_close(&s);
	have_src = false;
	rc = spool_src(in, &s);
	if (rc != ERR_OK) {
		note(&x->r, W_FAILED, path, "cannot read its copy: %s", err_str(rc));
		goto out;
	}
	have_src = true;
	memset(&res, 0, sizeof res);
	rc = store_instance_hashed(x->v, &s, spool_sha256(in), coll, &res, why, sizeof why);
	memset(&ar, 0, sizeof ar);
	ar.action = AUDIT_STORE;
	ar.actor = operator_actor();
	/* stored: the record names what the store indexed (its patient key,
	 * as STOW-RS records it); refused: what the file says */
	ar.objects.patient = rc == ERR_OK && res.has_patient_key ? res.patient_key : have_pkey ? pkey : NULL;
	ar.objects.study_uid = rc == ERR_OK ? res.study_uid : (study[0] ? study : NULL);
	ar.objects.series_uid = rc == ERR_OK ? res.series_uid : NULL;
	ar.objects.sop_uid = rc == ERR_OK ? res.sop_uid : NULL;
	if (rc != ERR_OK) {
		ar.outcome = AUDIT_FAILURE;
		/* the store's reason names the conflict (other content, a
		 * study of another patient, a series of another study) */
		snprintf(conflict, sizeof conflict, "import: %s",
		         store_conflict_str(res.conflict) != NULL ? store_conflict_str(res.conflict) : "refused");
		ar.reason = conflict;
		if (audit_append(x->au, &ar) != ERR_OK)
			fputs("dicomvault import: cannot write an audit record\n", stderr);
		note(&x->r, W_FAILED, path, "%s", why[0] ? why : err_str(rc));
		goto out;
	}
	ar.outcome = AUDIT_SUCCESS;
	if (sp != NULL)
		ar.reason = res.existed ? "already stored (import of a bare data set, as Part 10)"
		                        : "import of a bare data set, as Part 10";
	else
		ar.reason = res.existed ? "already stored (import)" : "import";
	if (audit_append(x->au, &ar) != ERR_OK) {
		note(&x->r, W_FAILED, path, "the audit record of its store cannot be written");
		goto out;
	}
	if (res.existed)
		x->r.present++;
	else
		x->r.stored++;
	rc = verify_one(x, res.sop_uid, res.sha256, why, sizeof why);
	if (rc == ERR_OK)
		x->r.verified++;
	else
		note(&x->r, W_FAILED, path, "SOP Instance %s: verification failed: %s", res.sop_uid, why);
out:
	dcm_file_free(f);
	if (have_src)
		src_close(&s);
	spool_free(sp);
	spool_free(raw);
}

/* Files under a folder (depth-first, sorted names), walked through open
 * folders (openat, O_NOFOLLOW at every step): no folder on the way can be
 * swapped for a link between its listing and the opens under it. In a
 * folder only regular files and folders are entered: a symbolic link is
 * not followed (one to a file fails, naming it; any other is skipped), so
 * nothing outside the tree is read (no loops). A FIFO, device or socket
 * fails. A path the operator names may be a symbolic link. What fstatat
 * sees is only a first sorting: ingest_file opens each file once and
 * refuses there what it is by then, if not a regular file. */
static void walk_dir(struct imp *x, int dfd, const char *path, int depth);

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entry nm of the folder open as dfd (path/nm for the report). */
static void walk_entry(struct imp *x, int dfd, const char *nm, const char *sub, int depth)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		note(&x->r, W_FAILED, sub, "%s", strerror(errno));
		return;
	}
	if (S_ISLNK(st.st_mode)) {
		if (fstatat(dfd, nm, &st, 0) == 0 && S_ISREG(st.st_mode))
			note(&x->r, W_FAILED, sub, "a symbolic link to a file: not followed in a folder (import the file "
			     "by its own name)");
		else
			note(&x->r, W_SKIPPED, sub, "a symbolic link that is not to a regular file");
		return;
	}
	if (S_ISREG(st.st_mode)) {
		ingest_file(x, dfd, nm, sub, false);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		note(&x->r, W_FAILED, sub, "%s, not a regular file or folder: not read", file_type_name(st.st_mode));
		return;
	}
	if (depth + 1 >= IMPORT_MAX_DEPTH) {
		note(&x->r, W_FAILED, sub, "folders nested deeper than %d", IMPORT_MAX_DEPTH);
		return;
	}
	fd = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		note(&x->r, W_FAILED, sub, "%s", errno == ELOOP || errno == ENOTDIR
		                                      ? "no longer a folder (replaced by a link?): not followed"
		                                      : strerror(errno));
		return;
	}
	walk_dir(x, fd, sub, depth + 1);
	close(fd);
}

static void walk_dir(struct imp *x, int dfd, const char *path, int depth)
{
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	DIR *d;
	int fd = dup(dfd);

	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		note(&x->r, W_FAILED, path, "cannot list the folder: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			char **p = c <= IMPORT_MAX_OBJECTS ? realloc(names, c * sizeof *p) : NULL;
			if (p == NULL)
				break;
			names = p;
			cap = c;
		}
		names[n] = strdup(e->d_name);
		if (names[n] == NULL)
			break;
		n++;
	}
	if (e != NULL)
		note(&x->r, W_FAILED, path, "too many entries to list (out of memory): the rest not read");
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof *names, name_cmp);
	for (i = 0; i < n; i++) {
		char sub[PATH_MAX];
		if (cancel_flag)
			cancel_note(&x->r, "the files after the last one stored were not read");
		else if (snprintf(sub, sizeof sub, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]) >=
		         (int)sizeof sub)
			note(&x->r, W_FAILED, names[i], "path too long under %s", path);
		else
			walk_entry(x, dfd, names[i], sub, depth);
		free(names[i]);
	}
	free(names);
}

/* A path the operator named: a file, a folder, or a link to either. */
static void walk(struct imp *x, const char *path)
{
	struct stat st, lst;
	bool link;
	int fd;

	if (lstat(path, &lst) != 0) {
		note(&x->r, W_ERROR, path, "%s", strerror(errno));
		return;
	}
	st = lst;
	link = S_ISLNK(lst.st_mode);
	if (link && stat(path, &st) != 0) {
		note(&x->r, W_ERROR, path, "%s", strerror(errno));
		return;
	}
	if (S_ISREG(st.st_mode)) {
		if (cancel_flag)
			cancel_note(&x->r, "the files after the last one stored were not read");
		else
			ingest_file(x, AT_FDCWD, path, path, link);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		note(&x->r, W_FAILED, path, "%s, not a regular file or folder: not read", file_type_name(st.st_mode));
		return;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		note(&x->r, W_FAILED, path, "cannot list the folder: %s", strerror(errno));
		return;
	}
	walk_dir(x, fd, path, 0);
	close(fd);
}

/* ---- import --from AE ---- */

struct expect {
	char study[IDX_UID_MAX + 1];
	char sop[IDX_UID_MAX + 1];
	bool before;               /* in the vault before the import */
};

struct got {
	char sop[IDX_UID_MAX + 1];
	size_t seq;                /* arrival order: the last of a UID says how it went */
	uint16_t status;
	bool existed;
	char comment[80];
};

struct net {
	struct imp *x;
	const char *peer;
	struct expect *e;
	size_t ne, cap;
	size_t study_first;        /* of the study being listed */
	char study[IDX_UID_MAX + 1];
	char series[IDX_UID_MAX + 1];
	char (*series_uids)[IDX_UID_MAX + 1];
	size_t nseries, capseries;
	char (*studies)[IDX_UID_MAX + 1];
	size_t nstudies, capstudies;
	size_t cut;                /* e[cut..]: of studies not moved in full (cancelled); ne when none */
	pthread_mutex_t mu;        /* got, and want, from the listener's threads */
	struct got *g;
	size_t ng, capg;
	bool g_oom;
	/* what the C-MOVE under way asked for: the study and its listed
	 * instances, sorted (store_wanted); empty between moves */
	char want_study[IDX_UID_MAX + 1];
	char (*want)[IDX_UID_MAX + 1];
	size_t nwant, capwant;
};

static int got_cmp(const void *a, const void *b)
{
	const struct got *x = a, *y = b;
	int c = strcmp(x->sop, y->sop);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* bsearch of got by UID alone (any of its C-STOREs) */
static int got_sop_cmp(const void *a, const void *b)
{
	return strcmp(((const struct got *)a)->sop, ((const struct got *)b)->sop);
}

static int sop_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* dimse_srv_opts.store_wanted: only instances listed for the study being
 * moved (a source sending others, of another study or patient, is
 * refused: an import takes in nothing it did not ask for). */
static bool store_wanted(void *ctx, const char *study, const char *sop)
{
	struct net *nt = ctx;
	bool ok;

	pthread_mutex_lock(&nt->mu);
	ok = nt->nwant > 0 && strcmp(study, nt->want_study) == 0 &&
	     bsearch(sop, nt->want, nt->nwant, sizeof *nt->want, sop_cmp) != NULL;
	pthread_mutex_unlock(&nt->mu);
	return ok;
}

/* The instances e[study_first..ne) of study sdy become what the listener
 * takes (none when sdy is NULL). */
static enum err want_set(struct net *nt, const char *sdy)
{
	size_t n = sdy != NULL ? nt->ne - nt->study_first : 0, i;
	enum err rc = ERR_OK;

	pthread_mutex_lock(&nt->mu);
	nt->nwant = 0;
	if (n > nt->capwant) {
		char (*p)[IDX_UID_MAX + 1] = realloc(nt->want, n * sizeof *p);
		if (p == NULL) {
			rc = ERR_NOMEM;
			n = 0;
		} else {
			nt->want = p;
			nt->capwant = n;
		}
	}
	for (i = 0; i < n; i++)
		memcpy(nt->want[i], nt->e[nt->study_first + i].sop, sizeof nt->want[i]);
	if (n > 1)
		qsort(nt->want, n, sizeof *nt->want, sop_cmp);
	snprintf(nt->want_study, sizeof nt->want_study, "%s", sdy != NULL ? sdy : "");
	nt->nwant = n;
	pthread_mutex_unlock(&nt->mu);
	return rc;
}

static void on_store(void *ctx, const char *sop, uint16_t status, bool existed, const char *comment)
{
	struct net *nt = ctx;
	struct got *g;

	pthread_mutex_lock(&nt->mu);
	nt->x->r.received++;
	if (nt->ng == nt->capg) {
		size_t cap = nt->capg ? nt->capg * 2 : 256;
		struct got *p = cap <= IMPORT_MAX_OBJECTS ? realloc(nt->g, cap * sizeof *p) : NULL;
		if (p == NULL) {
			nt->g_oom = true;
			pthread_mutex_unlock(&nt->mu);
			return;
		}
		nt->g = p;
		nt->capg = cap;
	}
	g = &nt->g[nt->ng];
	g->seq = nt->ng++;
	snprintf(g->sop, sizeof g->sop, "%s", sop);
	g->status = status;
	g->existed = existed;
	snprintf(g->comment, sizeof g->comment, "%s", comment != NULL ? comment : "");
	pthread_mutex_unlock(&nt->mu);
}

static enum err add_uid(char (**arr)[IDX_UID_MAX + 1], size_t *n, size_t *cap, const char *uid, size_t max)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		char (*p)[IDX_UID_MAX + 1];
		if (c > max)
			return ERR_LIMIT;
		p = realloc(*arr, c * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		*arr = p;
		*cap = c;
	}
	snprintf((*arr)[*n], sizeof (*arr)[*n], "%s", uid);
	(*n)++;
	return ERR_OK;
}

/* Listed UIDs are gathered as they come and made unique once the listing
 * is over (sort_unique, sort_unique_expect): a linear search per answer
 * let a source listing a million studies keep the import busy for hours. */
static enum err study_found(void *ctx, const char *uid)
{
	struct net *nt = ctx;

	return add_uid(&nt->studies, &nt->nstudies, &nt->capstudies, uid, IMPORT_MAX_STUDIES);
}

/* Sorts arr[0..*n) and drops repeats. */
static void sort_unique(char (*arr)[IDX_UID_MAX + 1], size_t *n)
{
	size_t i, o = 0;

	if (*n < 2)
		return;
	qsort(arr, *n, sizeof *arr, sop_cmp);
	for (i = 0; i < *n; i++)
		if (o == 0 || strcmp(arr[o - 1], arr[i]) != 0) {
			if (o != i)
				memcpy(arr[o], arr[i], sizeof arr[o]);
			o++;
		}
	*n = o;
}

static int expect_cmp(const void *a, const void *b)
{
	return strcmp(((const struct expect *)a)->sop, ((const struct expect *)b)->sop);
}

/* The instances listed for the study being listed, e[study_first..ne):
 * sorted, each once, and whether each was in the vault already. */
static void sort_unique_expect(struct net *nt)
{
	struct expect *e = nt->e + nt->study_first;
	size_t n = nt->ne - nt->study_first, i, o = 0;
	struct idx_instance in;

	if (n > 1)
		qsort(e, n, sizeof *e, expect_cmp);
	for (i = 0; i < n; i++)
		if (o == 0 || strcmp(e[o - 1].sop, e[i].sop) != 0) {
			if (o != i)
				e[o] = e[i];
			o++;
		}
	nt->ne = nt->study_first + o;
	pthread_mutex_lock(&nt->x->lock);
	for (i = 0; i < o; i++)
		e[i].before = nt->x->v->ix->ops->instance_get(nt->x->v->ix, e[i].sop, &in) == ERR_OK;
	pthread_mutex_unlock(&nt->x->lock);
}

static enum err series_found(void *ctx, const char *uid)
{
	struct net *nt = ctx;

	return add_uid(&nt->series_uids, &nt->nseries, &nt->capseries, uid, IMPORT_MAX_OBJECTS);
}

static enum err instance_found(void *ctx, const char *uid)
{
	struct net *nt = ctx;

	if (nt->ne == nt->cap) {
		size_t c = nt->cap ? nt->cap * 2 : 256;
		struct expect *p;
		if (c > IMPORT_MAX_OBJECTS)
			return ERR_LIMIT;
		p = realloc(nt->e, c * sizeof *p);
		if (p == NULL)
			return ERR_NOMEM;
		nt->e = p;
		nt->cap = c;
	}
	snprintf(nt->e[nt->ne].study, sizeof nt->e[nt->ne].study, "%s", nt->study);
	snprintf(nt->e[nt->ne].sop, sizeof nt->e[nt->ne].sop, "%s", uid);
	nt->e[nt->ne].before = false;   /* sort_unique_expect tells */
	nt->ne++;
	return ERR_OK;
}

/* Matches of a C-FIND whose identifier gave no unique key (none, not a
 * UID, not a readable data set) cannot be listed, so nothing of them is
 * moved or checked: each one is an error of the import (the exit status,
 * the audit's end record), said once per C-FIND with the level and the
 * parent it was asked under (UIDs, never the identifier's content). */
static void skipped_note(struct report *r, const char *parent, const char *what, const char *key, unsigned n)
{
	if (n == 0)
		return;
	note(r, W_ERROR, parent, "%s: %u match%s without a readable %s, not imported", what, n, n == 1 ? "" : "es",
	     key);
	r->errors += n - 1;   /* one line for the n */
}

static void move_progress(void *ctx, const struct dimse_scu_move *m)
{
	struct net *nt = ctx;

	if (nt->x->tty) {
		fprintf(stderr, "\rimport: study %zu/%zu: %u completed, %u failed, %u remaining   ", nt->x->done + 1,
		        nt->nstudies, m->completed, m->failed, m->remaining);
		fflush(stderr);
	}
}

/* Lists, moves and checks; the report is x->r. */
static void import_net(struct imp *x, struct net *nt, const struct peer *pe, const char *listen_addr,
                       const char *const *want_studies, size_t nwant)
{
	struct dimse_srv_opts o;
	struct dimse_srv *srv = NULL;
	struct dimse_scu *scu = NULL;
	struct peer only;
	struct peers only_ps = { &only, 1 };
	uint8_t *cert = NULL;
	size_t cert_len = 0, i, j;
	struct secret *key = NULL;
	char why[512] = "", comment[80], path_c[VAULT_PATH_MAX + 64], path_k[VAULT_PATH_MAX + 64];
	uint16_t st;
	unsigned skipped = 0;
	bool lost = false;
	enum err rc;

	/* our AE title, timeouts and maximum PDU length as serve's */
	if (dimse_srv_opts_conf(x->v->conf, &o, why, sizeof why) != ERR_OK) {
		note(&x->r, W_ERROR, pe->ae, "%s", why);
		return;
	}
	if (vault_conf_path(x->v, "http", "cert", "keys/tls.crt", path_c, sizeof path_c) != 0 ||
	    vault_conf_path(x->v, "http", "key", "keys/tls.key", path_k, sizeof path_k) != 0 ||
	    file_read_all(path_c, CERT_MAX, &cert, &cert_len) != ERR_OK ||
	    secret_read_file(path_k, CRYPTO_SECRET_FILE_MAX, 0, &key) != ERR_OK) {
		note(&x->r, W_ERROR, pe->ae, "cannot read the vault's TLS certificate and key ([http] cert, key)");
		goto out;
	}
	/* the listener serves this peer only, and only its C-STOREs */
	only = *pe;
	only.rights = PEER_RIGHT_STORE | PEER_RIGHT_ECHO;
	only.require_user = false;
	o.listen = pe->plain ? NULL : listen_addr;
	o.plain_listen = pe->plain ? listen_addr : NULL;
	o.cert_pem = cert;
	o.cert_len = cert_len;
	o.key_pem = key;
	o.peers = &only_ps;
	o.colls = x->colls;
	o.vault = x->v;
	o.audit = x->au;
	o.max_assoc = 4;
	o.on_store = on_store;
	o.on_store_ctx = nt;
	o.store_wanted = store_wanted;
	o.any_collection = true;   /* routed by the rules, as import PATH */
	if (pe->plain)
		fprintf(stderr, "dicomvault import: warning: peer %s has tls = no: the associations with it (and the "
		        "images it sends to %s) are neither encrypted nor authenticated by certificate\n", pe->ae,
		        listen_addr);
	rc = dimse_srv_start(&o, &srv, why, sizeof why);
	if (rc != ERR_OK) {
		note(&x->r, W_ERROR, pe->ae, "cannot start the DICOM listener for the C-STORE sub-operations: %s", why);
		goto out;
	}
	rc = dimse_scu_open(srv, &only, &scu, why, sizeof why);   /* the listener's own table: its CA */
	if (rc != ERR_OK) {
		note(&x->r, W_ERROR, pe->ae, "association refused or failed: %s", why);
		goto out;
	}
	dimse_scu_set_cancel(scu, &cancel_flag);
	/* the studies */
	for (i = 0; i < nwant; i++)
		if (study_found(nt, want_studies[i]) != ERR_OK) {
			note(&x->r, W_ERROR, pe->ae, "out of memory");
			goto out;
		}
	if (nwant == 0) {
		rc = dimse_scu_find(scu, "STUDY", NULL, NULL, study_found, nt, &skipped, &st, comment, sizeof comment, why,
		                    sizeof why);
		if (rc == ERR_OK)
			skipped_note(&x->r, pe->ae, "C-FIND of the studies", "StudyInstanceUID", skipped);
		if (cancel_flag) {
			cancel_note(&x->r, "while the studies were listed: nothing was moved");
			goto out;
		}
		if (rc != ERR_OK || st != DIMSE_SUCCESS) {
			if (rc == ERR_OK)
				note(&x->r, W_ERROR, pe->ae, "C-FIND of the studies: status %04XH (%s)%s%s", st,
				     dimse_scu_status_str(st), comment[0] ? ": " : "", comment);
			else
				note(&x->r, W_ERROR, pe->ae, "C-FIND of the studies: %s", why);
			goto out;
		}
	}
	sort_unique(nt->studies, &nt->nstudies);
	/* each study: its series, their instances, then the C-MOVE */
	for (i = 0; i < nt->nstudies && !lost; i++) {
		struct dimse_scu_move m;
		const char *sdy = nt->studies[i];
		bool listed = true;
		if (cancel_flag) {
			nt->cut = nt->ne;
			cancel_note(&x->r, "the C-MOVE under way was cancelled, no further study was moved");
			break;
		}
		x->done = i;
		snprintf(nt->study, sizeof nt->study, "%s", sdy);
		nt->study_first = nt->ne;
		nt->nseries = 0;
		rc = dimse_scu_find(scu, "SERIES", sdy, NULL, series_found, nt, &skipped, &st, comment, sizeof comment, why,
		                    sizeof why);
		if (rc == ERR_OK)
			skipped_note(&x->r, sdy, "study: C-FIND of its series", "SeriesInstanceUID", skipped);
		if (rc == ERR_OK && st == DIMSE_SUCCESS)
			sort_unique(nt->series_uids, &nt->nseries);
		for (j = 0; rc == ERR_OK && st == DIMSE_SUCCESS && j < nt->nseries; j++) {
			rc = dimse_scu_find(scu, "IMAGE", sdy, nt->series_uids[j], instance_found, nt, &skipped, &st, comment,
			                    sizeof comment, why, sizeof why);
			if (rc == ERR_OK)
				skipped_note(&x->r, nt->series_uids[j], "series: C-FIND of its instances", "SOPInstanceUID",
				             skipped);
		}
		sort_unique_expect(nt);
		if (cancel_flag) {
			nt->cut = nt->study_first;   /* its instances listed so far: not moved */
			cancel_note(&x->r, "the C-MOVE under way was cancelled, no further study was moved");
			break;
		}
		if (rc != ERR_OK || st != DIMSE_SUCCESS) {
			listed = false;
			if (rc == ERR_OK)
				note(&x->r, W_ERROR, sdy, "study: C-FIND of its instances: status %04XH (%s)%s%s", st,
				     dimse_scu_status_str(st), comment[0] ? ": " : "", comment);
			else
				note(&x->r, W_ERROR, sdy, "study: C-FIND of its instances: %s", why);
			if (rc == ERR_IO) {
				lost = true;
				break;
			}
		}
		if (listed && nt->ne == nt->study_first) {
			note(&x->r, W_ERROR, sdy, "study: %s lists no instance of it", pe->ae);
			continue;
		}
		if (!listed)
			continue;
		if (want_set(nt, sdy) != ERR_OK) {
			note(&x->r, W_ERROR, pe->ae, "out of memory");
			break;
		}
		memset(&m, 0, sizeof m);
		rc = dimse_scu_move(scu, sdy, o.ae, move_progress, nt, &m, why, sizeof why);
		(void)want_set(nt, NULL);   /* a late C-STORE is not asked for */
		x->r.pending += m.pending;
		if (cancel_flag) {
			/* what the peer had sent when it ended the move is kept */
			nt->cut = nt->study_first;
			cancel_note(&x->r, "the C-MOVE under way was cancelled, no further study was moved");
			if (rc != ERR_OK)
				note(&x->r, W_ERROR, sdy, "study: C-MOVE: %s", why);
			break;
		}
		if (rc != ERR_OK) {
			note(&x->r, W_ERROR, sdy, "study: C-MOVE: %s", why);
			lost = rc == ERR_IO;
		} else if (m.status != DIMSE_SUCCESS) {
			note(&x->r, W_ERROR, sdy, "study: C-MOVE to %s ended with status %04XH (%s)%s%s; %u completed, %u "
			     "failed, %u warning", o.ae, m.status, dimse_scu_status_str(m.status), m.comment[0] ? ": " : "",
			     m.comment, m.completed, m.failed, m.warning);
		}
	}
	x->done = nt->nstudies;
	progress_end(x);
out:
	dimse_scu_close(scu);
	dimse_srv_stop(srv);   /* waits for the listener's associations */
	secret_free(key);
	free(cert);
}

/* After the moves: each expected object received and verified. */
static void check_net(struct imp *x, struct net *nt)
{
	size_t i;
	char why[512];

	if (nt->g_oom)
		note(&x->r, W_ERROR, nt->peer, "out of memory recording the C-STOREs received");
	if (nt->ng > 1)
		qsort(nt->g, nt->ng, sizeof *nt->g, got_cmp);
	x->r.expected = nt->ne;
	for (i = 0; i < nt->ng; i++) {
		if (nt->g[i].status == DIMSE_NOT_AUTHORIZED && strcmp(nt->g[i].comment, "Not asked for") == 0 &&
		    (i == 0 || strcmp(nt->g[i - 1].sop, nt->g[i].sop) != 0))
			note(&x->r, W_FAILED, nt->g[i].sop, "sent by %s without being asked for (not listed by C-FIND for "
			     "the study being moved): refused", nt->peer);
	}
	for (i = 0; i < nt->ne; i++) {
		struct got key, *g;
		enum err rc;
		snprintf(key.sop, sizeof key.sop, "%s", nt->e[i].sop);
		g = nt->ng ? bsearch(&key, nt->g, nt->ng, sizeof *nt->g, got_sop_cmp) : NULL;
		/* the last C-STORE of this UID says how it went, except that a
		 * later one refused as not asked for (the source sending it again
		 * during another study's move) does not undo a success; stored
		 * or already present is its first success's word, once per UID
		 * (a second copy of the same bytes, "already stored", counted
		 * it as both) */
		if (g != NULL) {
			struct got *last = g, *ok = NULL, *first_ok = NULL;
			while (g > nt->g && strcmp(g[-1].sop, key.sop) == 0)
				g--;
			for (; g < nt->g + nt->ng && strcmp(g->sop, key.sop) == 0; g++) {
				last = g;
				if (g->status == DIMSE_SUCCESS) {
					ok = g;
					if (first_ok == NULL)
						first_ok = g;
				}
			}
			if (first_ok != NULL && first_ok->existed)
				x->r.present++;
			else if (first_ok != NULL)
				x->r.stored++;
			g = ok != NULL && last->status == DIMSE_NOT_AUTHORIZED && strcmp(last->comment, "Not asked for") == 0
			        ? ok
			        : last;
		}
		if (g != NULL && g->status != DIMSE_SUCCESS) {
			note(&x->r, W_FAILED, nt->e[i].sop, "C-STORE refused with status %04XH%s%s", g->status,
			     g->comment[0] ? ": " : "", g->comment);
			continue;
		}
		if (g == NULL && nt->e[i].before)
			x->r.present++;   /* not sent again, but already here */
		rc = verify_one(x, nt->e[i].sop, NULL, why, sizeof why);
		if (rc == ERR_OK)
			x->r.verified++;
		else if (rc == ERR_NOTFOUND && i >= nt->cut)
			note(&x->r, W_SKIPPED, nt->e[i].sop, "study %s: not imported (the import was cancelled)",
			     nt->e[i].study);
		else if (rc == ERR_NOTFOUND)
			note(&x->r, W_MISSING, nt->e[i].sop, "study %s: listed by C-FIND but never received", nt->e[i].study);
		else
			note(&x->r, W_FAILED, nt->e[i].sop, "verification failed: %s", why);
	}
}

/* ---- the command ---- */

int cmd_import(int argc, char **argv)
{
	const char *vault_arg = NULL, *pass = NULL, *from = NULL, *port_arg = NULL;
	const char **paths = NULL, **studies = NULL;
	size_t npaths = 0, nstudies = 0, i;
	char dir[VAULT_PATH_MAX], why[512] = "", reason[900], listen_addr[300], source[320];
	struct vault_open_opts vo;
	const struct peer *pe = NULL;
	struct imp x;
	struct net nt;
	struct audit_rec ar;
	unsigned long port = 0;
	struct args_list studies_l = { NULL, 0, 0 };
	const struct args_opt opts[] = {
		{ "--json", .flag = &x.json },
		{ "--from", .value = &from },
		{ "--study", .list = &studies_l },
		{ "--port", .value = &port_arg },
		{ "--vault", .value = &vault_arg },
		{ "--passphrase-file", .value = &pass },
		{ "--passphrase", .refused = "--passphrase-file" },
		{ NULL }
	};
	int rcode = 1;
	enum err rc;

	memset(&x, 0, sizeof x);
	memset(&nt, 0, sizeof nt);
	nt.cut = SIZE_MAX;
	pthread_mutex_init(&x.lock, NULL);
	pthread_mutex_init(&nt.mu, NULL);
	paths = calloc((size_t)argc + 1, sizeof *paths);
	studies = calloc((size_t)argc + 1, sizeof *studies);
	if (paths == NULL || studies == NULL) {
		fputs("dicomvault import: out of memory\n", stderr);
		goto done;
	}
	studies_l.v = studies;
	studies_l.cap = (size_t)argc;
	rcode = cmd_args("import", import_usage, argc, argv, 1, opts, paths, (size_t)argc, &npaths);
	if (rcode != CMD_ARGS_GO)
		goto done;
	rcode = 1;
	nstudies = studies_l.n;
	for (i = 0; i < nstudies; i++)
		if (!cmd_uid_ok(studies[i])) {
			fputs("dicomvault import: --study: not a UID (1 to 64 digits and dots)\n", stderr);
			rcode = EXIT_USAGE;
			goto done;
		}
	if ((from == NULL) == (npaths == 0)) {
		fputs(from == NULL ? "dicomvault import: give PATH... or --from AE\n"
		                   : "dicomvault import: give either PATH... or --from AE, not both\n", stderr);
		fputs(import_usage, stderr);
		rcode = EXIT_USAGE;
		goto done;
	}
	if (from == NULL && (nstudies > 0 || port_arg != NULL)) {
		fputs("dicomvault import: --study and --port go with --from\n", stderr);
		rcode = EXIT_USAGE;
		goto done;
	}
	if (from != NULL && !pdu_ae_ok(from)) {
		fputs("dicomvault import: --from: an AE title of 1 to 16 characters, no backslash\n", stderr);
		rcode = EXIT_USAGE;
		goto done;
	}
	if (port_arg != NULL) {
		char *end = NULL;
		port = strtoul(port_arg, &end, 10);
		if (port_arg[0] < '0' || port_arg[0] > '9' || *end != 0 || port < 1 || port > 65535) {
			fputs("dicomvault import: --port: a number from 1 to 65535\n", stderr);
			rcode = EXIT_USAGE;
			goto done;
		}
	}
	if (vault_resolve(vault_arg, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault import: vault path too long\n", stderr);
		rcode = EXIT_USAGE;
		goto done;
	}
	if (cmd_vault_present("import", dir) != 0)
		goto done;
	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = pass;
	rc = vault_open(dir, &vo, &x.v, why, sizeof why);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault import: %s: %s\n", dir, why[0] ? why : err_str(rc));
		goto done;
	}
	x.v->ix_lock = &x.lock;
	x.tty = !x.json && isatty(2);
	if (vault_audit_open(x.v, &x.au) != ERR_OK) {
		fprintf(stderr, "dicomvault import: cannot open the audit trail %s/%s (run 'dicomvault audit verify')\n",
		        x.v->dir, AUDIT_LOG_PATH);
		goto done;
	}
	x.colls = x.v->colls;
	if (from != NULL) {
		const char *l;
		const char *colon;
		pe = peers_find(x.v->peers, from);
		if (pe == NULL) {
			fprintf(stderr, "dicomvault import: no [peer \"%s\"] in %s/dicomvault.conf\n", from, x.v->dir);
			goto done;
		}
		if (pe->host[0] == 0 || pe->port == 0) {
			fprintf(stderr, "dicomvault import: [peer \"%s\"] has no host and port to connect to\n", from);
			goto done;
		}
		l = ini_get(x.v->conf, "dicom", NULL, "listen");
		if (l == NULL || l[0] == 0)
			l = DIMSE_SRV_DEFAULT_LISTEN;
		colon = strrchr(l, ':');
		if (colon == NULL || colon == l || (size_t)(colon - l) > 255) {
			fprintf(stderr, "dicomvault import: [dicom] listen: HOST:PORT\n");
			goto done;
		}
		if (port == 0) {
			char *end = NULL;
			port = strtoul(colon + 1, &end, 10);
			if (*end != 0 || port < 1 || port > 65535) {
				fprintf(stderr, "dicomvault import: [dicom] listen: HOST:PORT with a port from 1 to 65535\n");
				goto done;
			}
		}
		snprintf(listen_addr, sizeof listen_addr, "%.*s:%lu", (int)(colon - l), l, port);
		snprintf(source, sizeof source, "peer %s", from);
	} else {
		snprintf(source, sizeof source, "%zu path%s", npaths, npaths == 1 ? "" : "s");
	}
	/* the start */
	memset(&ar, 0, sizeof ar);
	ar.action = AUDIT_IMPORT;
	ar.outcome = AUDIT_SUCCESS;
	ar.actor = operator_actor();
	if (from != NULL)
		snprintf(reason, sizeof reason, "start: from peer %s (%s:%u%s), %s", from, pe->host, pe->port,
		         pe->plain ? ", plain TCP" : ", DICOM-TLS", nstudies ? "the studies given" : "every study");
	else
		snprintf(reason, sizeof reason, "start: from %s", source);
	ar.reason = reason;
	if (from != NULL && nstudies == 1)
		ar.objects.study_uid = studies[0];
	if (audit_append(x.au, &ar) != ERR_OK) {
		fputs("dicomvault import: cannot write the audit record\n", stderr);
		goto done;
	}
	cancel_install();
	if (from != NULL) {
		/* a peer that closes while we write (GnuTLS sends without
		 * MSG_NOSIGNAL) is an error, not the end of the process */
		signal(SIGPIPE, SIG_IGN);
		nt.x = &x;
		nt.peer = from;
		import_net(&x, &nt, pe, listen_addr, studies, nstudies);
		check_net(&x, &nt);
	} else {
		for (i = 0; i < npaths; i++)
			walk(&x, paths[i]);
		progress_end(&x);
	}
	/* the end */
	snprintf(reason, sizeof reason, "end%s: from %s: %llu expected, %llu received, %llu stored, %llu already present, "
	         "%llu failed, %llu missing, %llu skipped, %llu verified, %llu errors", x.r.cancelled ? " (cancelled)" : "",
	         source, (unsigned long long)x.r.expected,
	         (unsigned long long)x.r.received, (unsigned long long)x.r.stored, (unsigned long long)x.r.present,
	         (unsigned long long)x.r.failed, (unsigned long long)x.r.missing, (unsigned long long)x.r.skipped,
	         (unsigned long long)x.r.verified, (unsigned long long)x.r.errors);
	ar.outcome = x.r.failed || x.r.missing || x.r.errors ? AUDIT_FAILURE : AUDIT_SUCCESS;
	ar.reason = reason;
	ar.objects.counted = true;
	ar.objects.instances = x.r.verified;
	ar.objects.studies = from != NULL ? nt.nstudies : 0;
	rc = audit_append(x.au, &ar);
	if (rc != ERR_OK)
		fputs("dicomvault import: cannot write the audit record\n", stderr);
	report_print(&x.r, source, x.json);
	rcode = rc == ERR_OK && x.r.failed == 0 && x.r.missing == 0 && x.r.errors == 0 ? 0 : 1;
done:
	report_free(&x.r);
	free(nt.e);
	free(nt.g);
	free(nt.want);
	free(nt.series_uids);
	free(nt.studies);
	audit_close(x.au);
	if (x.v != NULL)
		x.v->ix_lock = NULL;
	vault_close(x.v);
	pthread_mutex_destroy(&nt.mu);
	pthread_mutex_destroy(&x.lock);
	free(paths);
	free(studies);
	return rcode;
}
