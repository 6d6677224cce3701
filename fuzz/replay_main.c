/* replay_main.c: runs a libFuzzer target over files without libFuzzer, so
 * `make check` replays every corpus (under ASan/UBSan) as plain tests.
 * Usage: TARGET DIR_OR_FILE...; prints "ok - " per input. Layer: tests. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "dicomvault/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	if (file_read_all(path, (size_t)64 << 20, &buf, &len) != ERR_OK) {
		printf("not ok - replay %s (cannot read)\n", path);
		return 1;
	}
	fprintf(stderr, "replaying %s\n", path);   /* a crash below still shows which input */
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok - replay %s\n", path);
	fflush(stdout);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *de;
			char **names = NULL;
			size_t n = 0, cap = 0, k;
			if (d == NULL)
				continue;
			while ((de = readdir(d)) != NULL) {
				char *p;
				size_t l;
				if (de->d_name[0] == '.')
					continue;
				l = strlen(argv[i]) + strlen(de->d_name) + 2;
				p = malloc(l);
				if (p == NULL)
					break;
				snprintf(p, l, "%s/%s", argv[i], de->d_name);
				if (n == cap) {
					char **nn;
					cap = cap ? cap * 2 : 64;
					nn = realloc(names, cap * sizeof *names);
					if (nn == NULL) {
						free(p);
						break;
					}
					names = nn;
				}
				names[n++] = p;
			}
			closedir(d);
			if (names != NULL)
				qsort(names, n, sizeof *names, cmp);
			for (k = 0; k < n; k++) {
				bad += replay_file(names[k]);
				free(names[k]);
			}
			free(names);
		} else {
			bad += replay_file(argv[i]);
		}
	}
	return bad ? 1 : 0;
}
