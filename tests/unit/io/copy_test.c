/* copy_test.c: fd_copy_range (copy_file_range with its buffered fallback)
 * and the zero-copy path of dcm_bulk_copy: file to file, file to a pipe
 * (the fallback), at odd offsets, a source that ends early. Layer: tests. */
#include <fcntl.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/dataset.h"
#include "dicomvault/io.h"

#define N (3u * 1024 * 1024 + 17)

static uint8_t *pattern(void)
{
	uint8_t *p = malloc(N);
	uint32_t x = 12345, i;

	for (i = 0; p && i < N; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
}

static int tmpfile_with(const uint8_t *p, size_t n, char *path)
{
	int fd;

	snprintf(path, 64, "/tmp/dv_copy_test.XXXXXX");
	fd = mkstemp(path);
	if (fd >= 0 && write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool file_is(int fd, const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n + 1);
	bool ok = b != NULL && pread(fd, b, n + 1, 0) == (ssize_t)n && memcmp(b, p, n) == 0;

	free(b);
	return ok;
}

TEST(file_to_file)
{
	uint8_t *p = pattern();
	char a[64], b[64];
	int in = tmpfile_with(p, N, a), out = tmpfile_with(p, 3, b);

	CHECK(in >= 0 && out >= 0);
	/* appended at out's position, from an odd offset */
	CHECK(fd_copy_range(in, 1001, N - 1001, out) == ERR_OK);
	{
		uint8_t *want = malloc(N - 1001 + 3);
		memcpy(want, p, 3);
		memcpy(want + 3, p + 1001, N - 1001);
		CHECK(file_is(out, want, N - 1001 + 3));
		free(want);
	}
	CHECK(fd_copy_range(in, N - 10, 11, out) == ERR_PARSE);   /* past the end */
	close(in);
	close(out);
	unlink(a);
	unlink(b);
	free(p);
}

TEST(file_to_pipe_falls_back)
{
	uint8_t *p = pattern(), *got = malloc(200000);
	char a[64];
	int in = tmpfile_with(p, N, a), fds[2];
	size_t have = 0;
	ssize_t r;

	CHECK(in >= 0 && pipe(fds) == 0);
	CHECK(fd_copy_range(in, 77, 60000, fds[1]) == ERR_OK);   /* fits in the pipe buffer */
	close(fds[1]);
	while ((r = read(fds[0], got + have, 200000 - have)) > 0)
		have += (size_t)r;
	CHECK_EQ_INT(have, 60000);
	CHECK(memcmp(got, p + 77, 60000) == 0);
	close(fds[0]);
	close(in);
	unlink(a);
	free(p);
	free(got);
}

TEST(bulk_value_file_to_file)
{
	/* a data set with a 1 MiB OB value left in the source, written to an fd */
	/* (7FE0,0010) OB, length 1 MiB, explicit VR LE */
	static const uint8_t hdr[12] = { 0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0, 0, 0x10, 0 };
	uint8_t *p = pattern(), *file;
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src s;
	struct sink k;
	char a[64], b[64];
	int in, out;

	file = malloc(12 + (1u << 20));
	memcpy(file, hdr, 12);
	memcpy(file + 12, p, 1u << 20);
	in = tmpfile_with(file, 12 + (1u << 20), a);
	close(in);
	memset(&ro, 0, sizeof ro);
	ro.no_meta = true;
	ro.ts = DCM_TS_EXPLICIT_LE;
	ro.bulk_threshold = 1024;
	CHECK(src_file_open(&s, a) == ERR_OK);
	CHECK(src_file_fd(&s) >= 0);
	CHECK(dcm_file_read(&s, &ro, &f, &ei) == ERR_OK);
	if (f != NULL) {
		const struct dcm_elem *e = dcm_ds_find(&f->ds, 0x7FE00010);
		CHECK(e != NULL && (e->flags & DCM_EF_BULK));
		out = tmpfile_with(p, 0, b);
		sink_fd(&k, &out);
		CHECK(sink_fd_of(&k) == out);
		CHECK(e != NULL && dcm_bulk_copy(f, e->bulk_off, e->len, NULL, &k) == ERR_OK);
		CHECK(file_is(out, p, 1u << 20));
		close(out);
		unlink(b);
	}
	dcm_file_free(f);
	src_close(&s);
	unlink(a);
	free(file);
	free(p);
}

TEST(not_fd_things)
{
	struct wbuf w;
	struct sink k;
	struct src s;
	struct src_mem m;

	wbuf_init(&w, 16);
	sink_wbuf(&k, &w);
	CHECK(sink_fd_of(&k) == -1);
	src_mem_init(&s, &m, "abc", 3);
	CHECK(src_file_fd(&s) == -1);
	CHECK(src_file_fd(NULL) == -1);
	wbuf_fini(&w);
}

int main(void)
{
	RUN(file_to_file);
	RUN(file_to_pipe_falls_back);
	RUN(bulk_value_file_to_file);
	RUN(not_fd_things);
	return TEST_DONE();
}
