/* json.c: `dicomvault json FILE`, the file as PS3.18 DICOM JSON. Layer: cmd. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/json.h"

int cmd_json(int argc, char **argv)
{
	struct dcm_read_opts o = { .bulk_threshold = 64 * 1024 };
	struct dcm_json_opts jo = { 0 };
	struct src src;
	struct dcm_file *f;
	struct sink k;
	int fd = STDOUT_FILENO, i;
	bool meta = false;
	enum err rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			puts("usage: dicomvault json [--strict] [--meta] FILE\n"
			     "Print a DICOM file as PS3.18 DICOM JSON (binary values inline, base64).\n"
			     "  --strict   treat questionable encodings (odd lengths...) as errors\n"
			     "  --meta     print the file meta information group instead of the data set");
			return 0;
		} else if (strcmp(argv[i], "--strict") == 0) {
			o.strict = true;
		} else if (strcmp(argv[i], "--meta") == 0) {
			meta = true;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "dicomvault json: unknown option '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i != argc - 1) {
		fputs("usage: dicomvault json [--strict] [--meta] FILE\n", stderr);
		return EXIT_USAGE;
	}
	f = cmd_read_file(argv[i], &src, &o);
	if (f == NULL)
		return 1;
	sink_fd(&k, &fd);
	rc = dcm_json_write(f, meta ? &f->meta : &f->ds, &jo, &k);
	if (rc == ERR_OK)
		rc = sink_write(&k, "\n", 1);
	if (rc != ERR_OK)
		fprintf(stderr, "dicomvault: %s: cannot write JSON: %s\n", argv[i], err_str(rc));
	dcm_file_free(f);
	src_close(&src);
	return rc == ERR_OK ? 0 : 1;
}
