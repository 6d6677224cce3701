/* json.c: `dicomvault json FILE`, the file as PS3.18 DICOM JSON. Layer: cmd. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "dicomvault/json.h"

static const char json_usage[] =
	"usage: dicomvault json [--strict] [--meta] FILE\n"
	"Print a DICOM file as PS3.18 DICOM JSON (binary values inline, base64).\n"
	"  --strict   treat questionable encodings (odd lengths...) as errors\n"
	"  --meta     print the file meta information group instead of the data set\n"
	"  --vault D  accepted like every subcommand; no vault is needed\n";

int cmd_json(int argc, char **argv)
{
	struct dcm_read_opts o = { .bulk_threshold = 64 * 1024 };
	struct src src;
	struct dcm_file *f;
	int rcode;
	bool meta = false, json_anyway = false;
	const char *vault_ignored = NULL;
	const struct args_opt opts[] = {
		{ "--strict", .flag = &o.strict },
		{ "--vault", .value = &vault_ignored },   /* every subcommand takes it (SPEC 2); no vault needed */
		{ "--meta", .flag = &meta },
		{ "--json", .flag = &json_anyway },   /* every subcommand takes it (SPEC 2): the output is JSON */
		{ NULL }
	};
	const char *file = NULL;
	size_t npos = 0;

	rcode = cmd_args("json", json_usage, argc, argv, 1, opts, &file, 1, &npos);
	if (rcode == CMD_ARGS_GO && npos == 0)
		rcode = cmd_usage_err("json", json_usage, "which FILE?");
	if (rcode != CMD_ARGS_GO)
		return rcode;
	f = cmd_read_file(file, &src, &o);
	if (f == NULL)
		return 1;
	rcode = cmd_print_json(f, meta ? &f->meta : &f->ds, file);
	dcm_file_free(f);
	src_close(&src);
	return rcode;
}
