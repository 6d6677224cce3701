/* dv_rewrite.c: test tool. Reads a DICOM file and writes it again:
 *   dv_rewrite [--keep-meta] [--ts UID] [--bulk N] IN OUT
 * --keep-meta keeps the meta group as read (for byte-identical checks);
 * --ts writes with another transfer syntax; --bulk N leaves values over N
 * bytes in the source while writing (streamed copy). Layer: tests. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dicomvault/dataset.h"

int main(int argc, char **argv)
{
	struct dcm_read_opts ro = { 0 };
	struct dcm_write_opts wo = { 0 };
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src src;
	struct sink k;
	int i, fd;
	enum err rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--keep-meta") == 0) {
			wo.keep_meta = true;
		} else if (strcmp(argv[i], "--ts") == 0 && i + 1 < argc) {
			wo.ts = dict_ts(argv[i + 1], strlen(argv[i + 1]));
			if (wo.ts == NULL) {
				fprintf(stderr, "dv_rewrite: unknown transfer syntax %s\n", argv[i + 1]);
				return 2;
			}
			i++;
		} else if (strcmp(argv[i], "--bulk") == 0 && i + 1 < argc) {
			ro.bulk_threshold = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "dv_rewrite: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (argc - i != 2) {
		fputs("usage: dv_rewrite [--keep-meta] [--ts UID] [--bulk N] IN OUT\n", stderr);
		return 2;
	}
	if (src_file_open(&src, argv[i]) != ERR_OK) {
		fprintf(stderr, "dv_rewrite: %s: cannot open\n", argv[i]);
		return 1;
	}
	rc = dcm_file_read(&src, &ro, &f, &ei);
	if (rc != ERR_OK) {
		fprintf(stderr, "dv_rewrite: %s: offset %llu: %s\n", argv[i], (unsigned long long)ei.offset, ei.msg);
		src_close(&src);
		return 1;
	}
	fd = open(argv[i + 1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "dv_rewrite: %s: cannot create\n", argv[i + 1]);
		dcm_file_free(f);
		src_close(&src);
		return 1;
	}
	sink_fd(&k, &fd);
	rc = dcm_file_write(f, &wo, &k);
	close(fd);
	dcm_file_free(f);
	src_close(&src);
	if (rc != ERR_OK) {
		fprintf(stderr, "dv_rewrite: %s: write failed: %s\n", argv[i + 1], err_str(rc));
		return rc == ERR_UNSUPPORTED ? 3 : 1;
	}
	return 0;
}
