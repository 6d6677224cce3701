/* dump.c: `dicomvault dump FILE...`, a dcmdump-like listing. Layer: cmd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd.h"

static const char dump_usage[] =
	"usage: dicomvault dump [--strict] [--json] FILE...\n"
	"Print DICOM files (Part 10 or bare data sets) as text, like dcmdump.\n"
	"  --strict   treat questionable encodings (odd lengths...) as errors\n"
	"  --json     each file's data set as PS3.18 DICOM JSON, one line a file\n"
	"             (JSON lines; the same as 'dicomvault json' for one file)\n"
	"  --vault D  accepted like every subcommand; no vault is needed\n";

int cmd_dump(int argc, char **argv)
{
	struct dcm_read_opts o = { .bulk_threshold = 256 };
	const char *vault_ignored = NULL;
	bool json = false;
	const struct args_opt opts[] = {
		{ "--strict", .flag = &o.strict },
		{ "--json", .flag = &json },
		{ "--vault", .value = &vault_ignored },   /* every subcommand takes it (SPEC 2); no vault needed */
		{ NULL }
	};
	const char **files = calloc((size_t)argc, sizeof *files);
	size_t nfiles = 0, i;
	struct wbuf w;
	int rc, failed = 0;

	if (files == NULL) {
		fputs("dicomvault dump: out of memory\n", stderr);
		return 1;
	}
	rc = cmd_args("dump", dump_usage, argc, argv, 1, opts, files, (size_t)argc, &nfiles);
	if (rc == CMD_ARGS_GO && nfiles == 0)
		rc = cmd_usage_err("dump", dump_usage, "which FILE?");
	if (rc != CMD_ARGS_GO) {
		free(files);
		return rc;
	}
	wbuf_init(&w, (size_t)1 << 30);
	for (i = 0; i < nfiles; i++) {
		struct src src;
		struct dcm_file *f = cmd_read_file(files[i], &src, &o);
		if (f == NULL) {
			failed++;
			continue;
		}
		if (json) {
			if (cmd_print_json(f, &f->ds, files[i]) != 0)
				failed++;
		} else {
			wbuf_reset(&w);
			if (nfiles > 1)
				wbuf_printf(&w, "# %s\n", files[i]);
			if (dcm_dump(f, &w) != ERR_OK || cmd_write_stdout(w.p, w.len) != 0)
				failed++;
		}
		dcm_file_free(f);
		src_close(&src);
	}
	wbuf_fini(&w);
	free(files);
	return failed ? 1 : 0;
}
