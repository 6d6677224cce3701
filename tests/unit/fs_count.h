/* fs_count.h: what the object store's tests count in a directory, shared
 * by blob_fs_test and store_test. Layer: tests. */
#ifndef DICOMVAULT_FS_COUNT_H
#define DICOMVAULT_FS_COUNT_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

/* Entries of path holding data (empty pending entries are spares, made
 * ahead under fresh keys: blob_fs.c); -1 when path cannot be read. */
static inline int t_count_written(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	struct stat st;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 && st.st_size > 0)
			n++;
	closedir(d);
	return n;
}

#endif
