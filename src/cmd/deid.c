/* deid.c: `dicomvault deid --profile basic[,OPTION...] [--key-file F] IN OUT`,
 * offline de-identification (SPEC section 7) of a file, or of a folder
 * recursively into a mirror folder. Each file is read, de-identified by
 * core/deid (deid_apply) and written with a regenerated meta group; a bad
 * or refused file is reported and the rest go on. Exit 0 if every file was
 * done, 1 if any failed or was refused, 2 on usage errors. The project key
 * comes from a file (never argv). Layer: cmd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/crypto.h"
#include "dicomvault/deid.h"
#include "dicomvault/cms.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"

#define DEID_DIR_DEPTH_MAX 64u      /* folder nesting we follow */
#define DEID_SUMMARY_LIST  20u      /* problems listed again in the summary */
#define DEID_RANDOM_KEY    32u

static const char deid_usage[] =
	"usage: dicomvault deid --profile basic[,OPTION...] [--key-file F] [--json] [--quiet]\n"
	"                       [--pseudonym-name] [--refuse-unflagged] [--masks F]\n"
	"                       [--escrow-cert CERT] IN OUT\n"
	"De-identify a DICOM file, or a folder recursively into a mirror folder, with the\n"
	"PS3.15 Annex E Basic Application Level Confidentiality Profile and its options.\n"
	"  --profile P         basic, then options separated by commas:\n"
	"                      retain-safe-private, retain-uids, retain-device-identity,\n"
	"                      retain-institution-identity, retain-patient-characteristics,\n"
	"                      retain-long-full-dates | retain-long-modified-dates,\n"
	"                      clean-descriptors, clean-structured-content, clean-graphics\n"
	"  --key-file F        project key (at least 16 bytes, mode 0600): the same key gives\n"
	"                      the same pseudonyms, UIDs and date offsets; without it a random\n"
	"                      key is used and nothing is reproducible\n"
	"  --pseudonym-name    Patient's Name becomes a keyed pseudonym instead of empty\n"
	"  --refuse-unflagged  also refuse images without Burned In Annotation (0028,0301)\n"
	"                      whose modality often has burned-in text (US, SC, OT, XC, ES, GM)\n"
	"  --masks F           masking rules for burned-in annotation: [deid \"mask NAME\"]\n"
	"                      sections (modality, manufacturer, model, rows, columns,\n"
	"                      rect = x,y,w,h[; x,y,w,h...]), e.g. the vault's dicomvault.conf\n"
	"  --escrow-cert CERT  keep the original values of what changed, encrypted (CMS) to\n"
	"                      the certificate(s) in CERT, in an Encrypted Attributes\n"
	"                      Sequence (PS3.15 E.1.2); 'dicomvault reidentify' with the\n"
	"                      matching private key restores them (audited)\n"
	"  --json              print the summary as JSON\n"
	"  --quiet             no progress bar\n"
	"Images whose Burned In Annotation has a value other than NO (YES, YES\\NO...) are\n"
	"masked by the first rule that fits them, else refused; so are unflagged suspect\n"
	"images under --refuse-unflagged.\n"
	"Options may come before or after IN and OUT; put -- before a name that begins\n"
	"with - (dicomvault deid --profile basic -- -in.dcm out.dcm).\n"
	"Exit status: 0 all done, 1 a file failed or was refused, 2 usage error.\n";

struct problem {
	char *path;
	char *why;
	bool refused;
};

struct run {
	struct deid_opts o;
	struct deid_stats st;
	struct dcm_read_opts ro;
	uint64_t done, refused, failed, total, seen;
	struct problem *probs;
	size_t nprobs, capprobs;
	bool progress;
	bool progress_shown;
};

static void progress_clear(struct run *r)
{
	if (r->progress && r->progress_shown) {
		fputs("\r\033[K", stderr);
		r->progress_shown = false;
	}
}

static void progress_draw(struct run *r)
{
	char bar[31];
	uint64_t fill;
	size_t i;

	if (!r->progress || r->total == 0)
		return;
	fill = r->seen * 30 / r->total;
	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = 0;
	fprintf(stderr, "\rdeid [%s] %llu/%llu", bar, (unsigned long long)r->seen, (unsigned long long)r->total);
	r->progress_shown = true;
}

static void note_problem(struct run *r, const char *path, const char *why, bool refused)
{
	struct problem *p;

	progress_clear(r);
	fprintf(stderr, "dicomvault deid: %s: %s: %s\n", path, refused ? "refused" : "failed", why);
	if (refused)
		r->refused++;
	else
		r->failed++;
	if (r->nprobs == r->capprobs) {
		size_t nc = r->capprobs ? r->capprobs * 2 : 16;
		struct problem *np = realloc(r->probs, nc * sizeof *np);
		if (np == NULL)
			return;
		r->probs = np;
		r->capprobs = nc;
	}
	p = &r->probs[r->nprobs];
	p->path = strdup(path);
	p->why = strdup(why);
	p->refused = refused;
	if (p->path != NULL && p->why != NULL) {
		r->nprobs++;
	} else {
		free(p->path);
		free(p->why);
	}
}

/* Writes f to out through a temporary file in the same folder, renamed
 * into place when complete. */
static void one_file(struct run *r, const char *in, const char *out)
{
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src src;
	char why[512];
	uint64_t suspect = r->st.suspect;
	enum err rc;

	r->seen++;
	rc = src_file_open(&src, in);
	if (rc != ERR_OK) {
		note_problem(r, in, rc == ERR_NOTFOUND ? "no such file" : "cannot open (not a readable regular file)", false);
		return;
	}
	rc = dcm_file_read(&src, &r->ro, &f, &ei);
	if (rc != ERR_OK) {
		snprintf(why, sizeof why, "%s at byte offset %llu%s: %s", rc == ERR_LIMIT ? "limit exceeded" : "not valid DICOM",
		         (unsigned long long)ei.offset, ei.inflated ? " of the inflated data set" : "", ei.msg);
		note_problem(r, in, why, false);
		src_close(&src);
		return;
	}
	rc = deid_apply(f, &r->o, &r->st, why, sizeof why);
	if (rc == ERR_DENIED) {
		note_problem(r, in, why, true);
	} else if (rc != ERR_OK) {
		note_problem(r, in, why, false);
	} else {
		rc = cmd_write_dicom(f, out, false, why, sizeof why);
		if (rc != ERR_OK) {
			note_problem(r, in, why, false);
		} else {
			r->done++;
			if (r->st.suspect > suspect) {
				progress_clear(r);
				fprintf(stderr, "dicomvault deid: %s: warning: no Burned In Annotation (0028,0301) on an image "
				        "whose modality often has burned-in text; check its pixels\n", in);
			}
		}
	}
	dcm_file_free(f);
	src_close(&src);
	progress_draw(r);
}

static char *path_join(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *p = malloc(na + nb + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, a, na);
	p[na] = '/';
	memcpy(p + na + 1, b, nb + 1);
	return p;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls one_file for every regular file under in (sorted, symbolic links
 * not followed), mirroring the folders under out. count_only: just count. */
static int walk_dir(struct run *r, const char *in, const char *out, unsigned depth, bool count_only)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int bad = 0;

	if (depth > DEID_DIR_DEPTH_MAX) {
		if (!count_only)
			note_problem(r, in, "folders nested too deep", false);
		return 1;
	}
	d = opendir(in);
	if (d == NULL) {
		if (!count_only)
			note_problem(r, in, strerror(errno), false);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = realloc(names, nc * sizeof *nn);
			if (nn == NULL)
				break;
			names = nn;
			cap = nc;
		}
		names[n] = strdup(de->d_name);
		if (names[n] != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, cmp_names);
	if (!count_only && mkdir(out, 0777) != 0 && errno != EEXIST) {
		note_problem(r, out, strerror(errno), false);
		bad = 1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		char *pi = path_join(in, names[i]), *po = path_join(out, names[i]);
		struct stat st;
		if (pi == NULL || po == NULL) {
			free(pi);
			free(po);
			bad = 1;
			break;
		}
		if (lstat(pi, &st) != 0) {
			if (!count_only)
				note_problem(r, pi, strerror(errno), false);
		} else if (S_ISDIR(st.st_mode)) {
			bad |= walk_dir(r, pi, po, depth + 1, count_only);
		} else if (S_ISREG(st.st_mode)) {
			if (count_only)
				r->total++;
			else
				one_file(r, pi, po);
		} else if (!count_only) {
			progress_clear(r);
			fprintf(stderr, "dicomvault deid: %s: skipped (not a regular file or folder; links are not followed)\n", pi);
		}
		free(pi);
		free(po);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return bad;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void summary(const struct run *r, bool json)
{
	size_t i;

	if (json) {
		printf("{\"files\":%llu,\"done\":%llu,\"refused\":%llu,\"failed\":%llu,",
		       (unsigned long long)r->total, (unsigned long long)r->done, (unsigned long long)r->refused,
		       (unsigned long long)r->failed);
		printf("\"removed\":%llu,\"replaced\":%llu,\"kept\":%llu,\"private_removed\":%llu,\"private_kept\":%llu,"
		       "\"uids_replaced\":%llu,\"dates_shifted\":%llu,\"cleaned\":%llu,\"unflagged_suspect\":%llu,\"masked\":%llu,\"escrowed\":%llu,\"problems\":[",
		       (unsigned long long)r->st.removed, (unsigned long long)r->st.replaced,
		       (unsigned long long)r->st.kept, (unsigned long long)r->st.private_removed,
		       (unsigned long long)r->st.private_kept, (unsigned long long)r->st.uids,
		       (unsigned long long)r->st.dates_shifted, (unsigned long long)r->st.cleaned,
		       (unsigned long long)r->st.suspect, (unsigned long long)r->st.masked,
		       (unsigned long long)r->st.escrowed);
		for (i = 0; i < r->nprobs; i++) {
			printf("%s{\"path\":", i ? "," : "");
			json_str(r->probs[i].path);
			printf(",\"status\":\"%s\",\"reason\":", r->probs[i].refused ? "refused" : "failed");
			json_str(r->probs[i].why);
			putchar('}');
		}
		puts("]}");
		return;
	}
	printf("deid: %llu of %llu file%s de-identified, %llu refused, %llu failed\n", (unsigned long long)r->done,
	       (unsigned long long)r->total, r->total == 1 ? "" : "s", (unsigned long long)r->refused,
	       (unsigned long long)r->failed);
	printf("  attributes: %llu removed (%llu private), %llu replaced (%llu UIDs, %llu dates shifted, "
	       "%llu texts cleaned), %llu kept (%llu safe private)\n",
	       (unsigned long long)r->st.removed, (unsigned long long)r->st.private_removed,
	       (unsigned long long)r->st.replaced, (unsigned long long)r->st.uids,
	       (unsigned long long)r->st.dates_shifted, (unsigned long long)r->st.cleaned,
	       (unsigned long long)r->st.kept, (unsigned long long)r->st.private_kept);
	if (r->st.masked > 0)
		printf("  burned-in annotation masked in %llu image%s\n", (unsigned long long)r->st.masked,
		       r->st.masked == 1 ? "" : "s");
	for (i = 0; i < r->nprobs && i < DEID_SUMMARY_LIST; i++)
		printf("  %s: %s: %s\n", r->probs[i].refused ? "refused" : "failed", r->probs[i].path, r->probs[i].why);
	if (r->nprobs > DEID_SUMMARY_LIST)
		printf("  ... and %zu more (see the messages above)\n", r->nprobs - DEID_SUMMARY_LIST);
	if (r->st.suspect > 0)
		printf("  warning: %llu image%s without a Burned In Annotation flag from modalities that often have "
		       "burned-in text were passed: check them, or use --refuse-unflagged\n",
		       (unsigned long long)r->st.suspect, r->st.suspect == 1 ? "" : "s");
}

/* The masking rules of an INI file. */
static enum err load_masks(const char *path, struct deid_masks **out)
{
	struct ini_error ie;
	struct ini *ini = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	char why[256];
	enum err rc;

	rc = file_read_all(path, INI_MAX_INPUT, &text, &len);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault deid: %s: cannot read: %s\n", path,
		        rc == ERR_NOTFOUND ? "no such file" : rc == ERR_LIMIT ? "too long" : err_str(rc));
		return rc;
	}
	rc = ini_parse(text, len, &ini, &ie);
	if (rc != ERR_OK)
		fprintf(stderr, "dicomvault deid: %s: line %u: %s\n", path, ie.line, ie.msg);
	if (rc == ERR_OK) {
		rc = deid_masks_load(ini, out, why, sizeof why);
		if (rc != ERR_OK)
			fprintf(stderr, "dicomvault deid: %s: %s\n", path, why);
	}
	ini_free(ini);
	free(text);
	return rc;
}

/* True if path b is a or lies under it (both resolved). */
static bool is_under(const char *a, const char *b)
{
	size_t n = strlen(a);

	return strncmp(a, b, n) == 0 && (b[n] == 0 || b[n] == '/' || (n == 1 && a[0] == '/'));
}

int cmd_deid(int argc, char **argv)
{
	struct run r;
	struct secret *key = NULL;
	const char *profile = NULL, *key_file = NULL, *masks_file = NULL, *escrow_file = NULL, *in, *out;
	struct cms_recipients *escrow = NULL;
	struct deid_masks *masks = NULL;
	bool json = false, quiet = false, pseudonym_name = false, refuse_unflagged = false;
	const char *vault_ignored = NULL, *pos[2] = { NULL, NULL };
	const struct args_opt opts[] = {
		{ "--profile", .value = &profile },
		{ "--key-file", .value = &key_file },
		{ "--masks", .value = &masks_file },
		{ "--escrow-cert", .value = &escrow_file },
		{ "--vault", .value = &vault_ignored },   /* accepted like every subcommand; deid needs none */
		{ "--json", .flag = &json },
		{ "--quiet", .flag = &quiet },
		{ "--pseudonym-name", .flag = &pseudonym_name },
		{ "--refuse-unflagged", .flag = &refuse_unflagged },
		{ NULL }
	};
	char why[256];
	struct stat sin, sout;
	size_t npos = 0;
	int rcode = 1;
	size_t k;
	enum err rc;

	memset(&r, 0, sizeof r);
	r.ro.bulk_threshold = DCM_DEFAULT_BULK;
	rcode = cmd_args("deid", deid_usage, argc, argv, 1, opts, pos, 2, &npos);
	if (rcode != CMD_ARGS_GO)
		return rcode;
	rcode = 1;
	if (profile == NULL || npos != 2)
		return cmd_usage_err("deid", deid_usage, "%s", profile == NULL ? "--profile is required" : "expected IN and OUT");
	in = pos[0];
	out = pos[1];
	if (pseudonym_name)
		r.o.flags |= DEID_F_PSEUDONYM_NAME;
	if (refuse_unflagged)
		r.o.flags |= DEID_F_REFUSE_SUSPECT;
	if (deid_parse_profile(profile, &r.o.options, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault deid: --profile: %s\n", why);
		return EXIT_USAGE;
	}
	if (stat(in, &sin) != 0) {
		fprintf(stderr, "dicomvault deid: %s: %s\n", in, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(sin.st_mode) && !S_ISREG(sin.st_mode)) {
		fprintf(stderr, "dicomvault deid: %s: not a file or folder\n", in);
		return 1;
	}
	if (S_ISDIR(sin.st_mode)) {
		char rin[PATH_MAX], rout[PATH_MAX];
		if (stat(out, &sout) == 0 && !S_ISDIR(sout.st_mode)) {
			fprintf(stderr, "dicomvault deid: %s: IN is a folder, so OUT must be a folder\n", out);
			return EXIT_USAGE;
		}
		if (mkdir(out, 0777) != 0 && errno != EEXIST) {
			fprintf(stderr, "dicomvault deid: %s: cannot create: %s\n", out, strerror(errno));
			return 1;
		}
		if (realpath(in, rin) == NULL || realpath(out, rout) == NULL) {
			fprintf(stderr, "dicomvault deid: cannot resolve %s or %s: %s\n", in, out, strerror(errno));
			return 1;
		}
		if (is_under(rin, rout) || is_under(rout, rin)) {
			fprintf(stderr, "dicomvault deid: OUT (%s) and IN (%s) must not contain each other\n", out, in);
			return EXIT_USAGE;
		}
	} else if (stat(out, &sout) == 0 && !S_ISDIR(sout.st_mode) && sout.st_dev == sin.st_dev &&
	           sout.st_ino == sin.st_ino) {
		fprintf(stderr, "dicomvault deid: OUT is IN; the original would be overwritten\n");
		return EXIT_USAGE;
	}
	if (masks_file != NULL && load_masks(masks_file, &masks) != ERR_OK)
		return 1;
	r.o.masks = masks;
	if (escrow_file != NULL && cms_recipients_load(escrow_file, &escrow, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault deid: --escrow-cert: %s\n", why);
		goto done;
	}
	r.o.escrow = escrow;
	/* the project key */
	if (key_file != NULL) {
		rc = secret_read_file(key_file, CRYPTO_SECRET_FILE_MAX, 0, &key);
		if (rc != ERR_OK) {
			fprintf(stderr, "dicomvault deid: %s: cannot use as a key file: %s\n", key_file,
			        rc == ERR_DENIED ? "readable by group or others, or not ours (chmod 600)"
			        : rc == ERR_NOTFOUND ? "no such file" : rc == ERR_LIMIT ? "too long" : err_str(rc));
			goto done;
		}
		if (secret_len(key) < DEID_KEY_MIN) {
			fprintf(stderr, "dicomvault deid: %s: a project key needs at least %u bytes\n", key_file, DEID_KEY_MIN);
			goto done;
		}
	} else {
		rc = secret_random(DEID_RANDOM_KEY, &key);
		if (rc != ERR_OK) {
			fprintf(stderr, "dicomvault deid: cannot make a random key: %s\n", err_str(rc));
			goto done;
		}
		fputs("dicomvault deid: warning: no --key-file: a random key is used for this run; pseudonyms, UIDs and "
		      "date offsets will not be reproducible\n", stderr);
	}
	r.o.project_key = key;
	r.progress = !quiet && isatty(STDERR_FILENO);
	if (S_ISDIR(sin.st_mode)) {
		(void)walk_dir(&r, in, out, 0, true);
		progress_draw(&r);
		(void)walk_dir(&r, in, out, 0, false);
	} else {
		char *dst = NULL;
		r.total = 1;
		if (stat(out, &sout) == 0 && S_ISDIR(sout.st_mode)) {
			const char *base = strrchr(in, '/');
			dst = path_join(out, base ? base + 1 : in);
			if (dst == NULL) {
				fputs("dicomvault deid: out of memory\n", stderr);
				goto done;
			}
			if (stat(dst, &sout) == 0 && sout.st_dev == sin.st_dev && sout.st_ino == sin.st_ino) {
				fprintf(stderr, "dicomvault deid: %s is IN; the original would be overwritten\n", dst);
				free(dst);
				rcode = EXIT_USAGE;
				goto done;
			}
		}
		one_file(&r, in, dst ? dst : out);
		free(dst);
	}
	progress_clear(&r);
	summary(&r, json);
	rcode = r.refused || r.failed ? 1 : 0;
done:
	for (k = 0; k < r.nprobs; k++) {
		free(r.probs[k].path);
		free(r.probs[k].why);
	}
	free(r.probs);
	secret_free(key);
	deid_masks_free(masks);
	cms_recipients_free(escrow);
	return rcode;
}
