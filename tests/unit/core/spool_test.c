/* spool_test.c: the receive spool (core/spool.c): a small data set stays
 * in memory, a large one spills to an encrypted unnamed file; either reads
 * back identical, as often as asked, at any offset, and its SHA-256 is
 * that of the bytes written; nothing is left in the
 * directory; plaintext never reaches the file. Layer: tests. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/spool.h"

static char dir[256];

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Writes n pattern bytes in pieces of step, reads them back twice. */
static void roundtrip(size_t n, size_t step)
{
	struct spool *s = NULL;
	struct src src;
	uint8_t *data = malloc(n + 1), *back = malloc(n + 1);
	size_t i, off;

	CHECK(data != NULL && back != NULL);
	if (data == NULL || back == NULL)
		goto out;
	for (i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	CHECK(spool_new(&s, dir, "test-spool") == ERR_OK);
	if (s == NULL)
		goto out;
	for (off = 0; off < n; off += step)
		CHECK(spool_write(s, data + off, n - off < step ? n - off : step) == ERR_OK);
	CHECK(spool_src(s, &src) == ERR_INTERNAL);   /* not finished */
	CHECK(spool_sha256(s) == NULL);
	CHECK(spool_finish(s) == ERR_OK);
	{
		/* hashed as written: the SHA-256 of the whole */
		struct sha256 *h = NULL;
		uint8_t want[32];
		CHECK(sha256_new(&h) == ERR_OK);
		if (h != NULL) {
			sha256_update(h, data, n);
			sha256_final(h, want);
			CHECK(spool_sha256(s) != NULL && memcmp(spool_sha256(s), want, 32) == 0);
		}
	}
	CHECK(spool_write(s, "x", 1) != ERR_OK);
	CHECK_EQ_INT(spool_size(s), n);
	for (i = 0; i < 2; i++) {
		CHECK(spool_src(s, &src) == ERR_OK);
		CHECK_EQ_INT(src.size, n);
		CHECK(src.read_at != NULL);
		if (src.read_at != NULL && n > 0) {
			memset(back, 0, n);
			CHECK(src.read_at(src.ctx, 0, back, n) == ERR_OK);
			CHECK(memcmp(back, data, n) == 0);
			if (n > 10) {
				CHECK(src.read_at(src.ctx, n - 10, back, 10) == ERR_OK);
				CHECK(memcmp(back, data + n - 10, 10) == 0);
				CHECK(src.read_at(src.ctx, n - 5, back, 10) != ERR_OK);   /* past the end */
			}
		}
		src_close(&src);
	}
	/* the file, if any, has no name */
	CHECK(count_entries(dir) <= 0);
out:
	spool_free(s);
	free(data);
	free(back);
}

TEST(small_in_memory)
{
	roundtrip(0, 1);
	roundtrip(1, 1);
	roundtrip(527 * 1024, 16384);
	roundtrip(SPOOL_MEM_MAX, 4096);   /* exactly the limit */
}

TEST(large_spills)
{
	roundtrip(SPOOL_MEM_MAX + 1, 65536);
	roundtrip(3 * SPOOL_MEM_MAX + 12345, 16384);
	roundtrip(2 * SPOOL_MEM_MAX, 3 * SPOOL_MEM_MAX);   /* one write past the limit */
}

int main(void)
{
	char cmd[300];

	if (crypto_init() != ERR_OK)
		return 1;
	snprintf(dir, sizeof dir, "/tmp/dv_spool_test.%d", (int)getpid());
	RUN(small_in_memory);
	RUN(large_spills);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_DONE();
}
