/* main.c: dicomvault command line entry point and dispatch. Layer: cmd. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pwd.h>
#include <qrencode.h>
#include "dicomvault/audit.h"
#include "dicomvault/index.h"
#include "dicomvault/json.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "cmd.h"

static void usage(FILE *out)
{
	fputs("usage: dicomvault COMMAND [OPTIONS]\n"
	      "\n"
	      "commands:\n"
	      "  init            create a vault (keys, TLS certificate, first administrator)\n"
	      "  serve           run the HTTPS server (TLS 1.3 only) until SIGINT or SIGTERM\n"
	      "  dump FILE...    print DICOM files as text (like dcmdump)\n"
	      "  json FILE       print a DICOM file as PS3.18 DICOM JSON\n"
	      "  deid --profile basic[,OPTION...] IN OUT\n"
	      "                  de-identify files or folders (PS3.15 Annex E)\n"
	      "  user add|list|disable|enable|unlock|grant|revoke|grants\n"
	      "                  accounts and their grants (docs/ACCESS.md)\n"
	      "  import PATH... | import --from AE [--study UID]...\n"
	      "                  migrate files/folders or an old archive (C-FIND, C-MOVE) in, verified\n"
	      "  export --study UID --out DIR [--deidentify PROFILE]\n"
	      "                  write a stored study out as Part 10 files (audited)\n"
	      "  reidentify --key KEY --reason TEXT IN OUT\n"
	      "                  restore escrowed original values of a de-identified file (audited)\n"
	      "  audit verify|export|report|reanchor\n"
	      "                  check the audit trail's hash chain / export it as JSON lines /\n"
	      "                  accounting of disclosures / anchor a restored, intact log\n"
	      "  token create|list|revoke\n"
	      "                  API tokens (bearer tokens for service accounts and scripts)\n"
	      "\n"
	      "Run 'dicomvault COMMAND --help' for a command's options.\n", out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("dicomvault %s\n", DCM_IMPL_VERSION);
		return 0;
	}
	/* every command may hold keys (the master key, data keys, a project or
	 * escrow key) or patient data: no core dump of them, whichever */
	if (proc_harden() != ERR_OK) {
		fputs("dicomvault: cannot disable core dumps\n", stderr);
		return 1;
	}
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "dump") == 0)
		return cmd_dump(argc - 1, argv + 1);
	if (strcmp(argv[1], "json") == 0)
		return cmd_json(argc - 1, argv + 1);
	if (strcmp(argv[1], "deid") == 0)
		return cmd_deid(argc - 1, argv + 1);
	if (strcmp(argv[1], "user") == 0)
		return cmd_user(argc - 1, argv + 1);
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(argc - 1, argv + 1);
	if (strcmp(argv[1], "export") == 0)
		return cmd_export(argc - 1, argv + 1);
	if (strcmp(argv[1], "reidentify") == 0)
		return cmd_reidentify(argc - 1, argv + 1);
	if (strcmp(argv[1], "audit") == 0)
		return cmd_audit(argc - 1, argv + 1);
	if (strcmp(argv[1], "token") == 0)
		return cmd_token(argc - 1, argv + 1);
	fprintf(stderr, "dicomvault: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}

int cmd_args(const char *name, const char *usage, int argc, char **argv, int first, const struct args_opt *opts,
             const char **pos, size_t cap, size_t *npos)
{
	char why[ARGS_WHY_MAX];

	switch (args_parse(argc, argv, first, opts, pos, cap, npos, why, sizeof why)) {
	case ARGS_OK:
		return CMD_ARGS_GO;
	case ARGS_HELP:
		fputs(usage, stdout);
		return 0;
	default:
		return cmd_usage_err(name, usage, "%s", why);
	}
}

int cmd_usage_verr(const char *name, const char *usage, const char *fmt, va_list ap)
{
	fprintf(stderr, "dicomvault %s: ", name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n%s", usage);
	return EXIT_USAGE;
}

int cmd_usage_err(const char *name, const char *usage, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = cmd_usage_verr(name, usage, fmt, ap);
	va_end(ap);
	return rc;
}

void cmd_opts_add(struct args_opt *t, size_t cap, size_t *k, struct args_opt o)
{
	if (*k + 1 >= cap)
		abort();   /* the table is too small for its options and the end: a bug */
	t[(*k)++] = o;
	t[*k] = (struct args_opt){ NULL };
}

bool cmd_wants_help(int argc, char **argv, int first)
{
	int i;

	for (i = first; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

struct dcm_file *cmd_read_file(const char *path, struct src *src, const struct dcm_read_opts *o)
{
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	enum err rc;

	rc = src_file_open(src, path);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault: %s: cannot open: %s\n", path, rc == ERR_NOTFOUND ? "no such file" : strerror(errno));
		return NULL;
	}
	rc = dcm_file_read(src, o, &f, &ei);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault: %s: %s at byte offset %llu%s: %s\n", path,
		        rc == ERR_LIMIT ? "limit exceeded" : "not valid DICOM",
		        (unsigned long long)ei.offset, ei.inflated ? " of the inflated data set" : "", ei.msg);
		src_close(src);
		return NULL;
	}
	if (f->nwarn)
		fprintf(stderr, "dicomvault: %s: warning: %u problem%s, first at byte offset %llu: %s\n", path, f->nwarn,
		        f->nwarn > 1 ? "s" : "", (unsigned long long)f->warn.offset, f->warn.msg);
	return f;
}

int cmd_write_stdout(const void *p, size_t n)
{
	const char *b = p;

	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "dicomvault: cannot write output: %s\n", strerror(errno));
			return 1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

enum err cmd_write_dicom(struct dcm_file *f, const char *out, bool private_file, char *why, size_t whylen)
{
	struct dcm_write_opts wo = { .keep_meta = false };
	struct sink k;
	char *tmp;
	size_t n = strlen(out);
	mode_t um;
	int fd;
	enum err rc;

	tmp = malloc(n + 16);
	if (tmp == NULL)
		return ERR_NOMEM;
	memcpy(tmp, out, n);
	memcpy(tmp + n, ".tmp.XXXXXX", 12);
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return ERR_IO;
	}
	/* a private file (patient data: reidentify) keeps mkstemp's 0600 */
	um = umask(0);
	umask(um);
	if (!private_file && fchmod(fd, 0666 & ~um) != 0) {
		/* keep mkstemp's 0600 */
	}
	sink_fd(&k, &fd);
	rc = dcm_file_write(f, &wo, &k);
	if (rc == ERR_OK && close(fd) != 0)
		rc = ERR_IO;
	else if (rc != ERR_OK)
		close(fd);
	if (rc == ERR_OK && rename(tmp, out) != 0) {
		snprintf(why, whylen, "cannot rename into %s: %s", out, strerror(errno));
		rc = ERR_IO;
	} else if (rc != ERR_OK) {
		snprintf(why, whylen, "cannot write %s: %s", out,
		         rc == ERR_UNSUPPORTED ? "a value cannot be encoded in the file's transfer syntax" : err_str(rc));
	}
	if (rc != ERR_OK)
		unlink(tmp);
	free(tmp);
	return rc;
}

void cmd_print_qr(const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int x, y, n;

	if (q == NULL)
		return;
	n = q->width;
	for (y = -2; y < n + 2; y += 2) {
		for (x = -2; x < n + 2; x++) {
			int top = y >= 0 && y < n && x >= 0 && x < n && (q->data[y * n + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < n && x >= 0 && x < n && (q->data[(y + 1) * n + x] & 1);
			/* dark modules are drawn as spaces on a light background */
			fputs(top ? (bot ? " " : "\xe2\x96\x84") : (bot ? "\xe2\x96\x80" : "\xe2\x96\x88"), stdout);
		}
		fputc('\n', stdout);
	}
	QRcode_free(q);
}

int cmd_print_json(const struct dcm_file *f, const struct dcm_ds *ds, const char *path)
{
	struct dcm_json_opts jo = { 0 };
	int fd = STDOUT_FILENO;
	struct sink k;
	enum err rc;

	sink_fd(&k, &fd);
	rc = dcm_json_write(f, ds, &jo, &k);
	/* the line ends even when the object is cut short, so that the next
	 * file's line stays a line of its own */
	if (sink_write(&k, "\n", 1) != ERR_OK && rc == ERR_OK)
		rc = ERR_IO;
	if (rc != ERR_OK)
		fprintf(stderr, "dicomvault: %s: cannot write JSON: %s\n", path, err_str(rc));
	return rc == ERR_OK ? 0 : 1;
}

void cmd_json_str(const char *s)
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

bool cmd_uid_ok(const char *s)
{
	return vr_uid_ok(s, strlen(s));
}

void cmd_no_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

int cmd_vault_present(const char *name, const char *dir)
{
	char why[VAULT_PATH_MAX + 128];

	if (vault_present(dir, why, sizeof why) == ERR_OK)
		return 0;
	fprintf(stderr, "dicomvault %s: %s\n", name, why);
	return 1;
}

void cmd_operator_rec(struct audit_rec *r, const char *action, enum audit_outcome oc, const char *reason)
{
	memset(r, 0, sizeof *r);
	r->action = action;
	r->outcome = oc;
	r->reason = reason;
	r->actor.user = cmd_operator();
	r->actor.role = "operator";
	r->actor.addr = "local";
}

const char *cmd_operator(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw != NULL && pw->pw_name != NULL ? pw->pw_name : "local";
}
