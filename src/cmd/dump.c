/* dump.c: `dicomvault dump FILE...`, a dcmdump-like listing. Layer: cmd. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"

int cmd_dump(int argc, char **argv)
{
	struct dcm_read_opts o = { .bulk_threshold = 256 };
	struct wbuf w;
	int i, nfiles = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			puts("usage: dicomvault dump [--strict] FILE...\n"
			     "Print DICOM files (Part 10 or bare data sets) as text, like dcmdump.\n"
			     "  --strict   treat questionable encodings (odd lengths...) as errors");
			return 0;
		} else if (strcmp(argv[i], "--strict") == 0) {
			o.strict = true;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "dicomvault dump: unknown option '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		fputs("usage: dicomvault dump [--strict] FILE...\n", stderr);
		return EXIT_USAGE;
	}
	wbuf_init(&w, (size_t)1 << 30);
	for (; i < argc; i++) {
		struct src src;
		struct dcm_file *f = cmd_read_file(argv[i], &src, &o);
		nfiles++;
		if (f == NULL) {
			failed++;
			continue;
		}
		wbuf_reset(&w);
		if (argc > 2)
			wbuf_printf(&w, "# %s\n", argv[i]);
		if (dcm_dump(f, &w) != ERR_OK || cmd_write_stdout(w.p, w.len) != 0)
			failed++;
		dcm_file_free(f);
		src_close(&src);
	}
	wbuf_fini(&w);
	(void)nfiles;
	return failed ? 1 : 0;
}
