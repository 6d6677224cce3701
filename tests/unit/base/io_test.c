/* io_test.c: file_open_regular, the one open of a file whose folder
 * someone else may write (import): a regular file opens (blocking reads,
 * O_NONBLOCK cleared) and src_file_fdopen reads it; a FIFO is refused at
 * once, without a writer and without blocking; a symbolic link is refused
 * unless follow; a folder and a UNIX socket are refused and named; a
 * missing file is ERR_NOTFOUND. src_file_fdopen refuses a descriptor of
 * anything but a regular file (and closes it). Layer: tests. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/io.h"

static char dir[] = "/tmp/dv-io-test.XXXXXX";
static char path[sizeof dir + 32];

static const char *at(const char *name)
{
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return path;
}

TEST(regular_file_once)
{
	struct src s;
	const char *what = NULL;
	char buf[16];
	int fd = -1;
	FILE *f = fopen(at("a.dcm"), "wb");

	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("hello", f);
	fclose(f);
	CHECK(file_open_regular(at("a.dcm"), false, &fd, &what) == ERR_OK);
	CHECK(fd >= 0);
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	if (fd < 0)
		return;
	CHECK(src_file_fdopen(&s, fd) == ERR_OK);
	CHECK_EQ_INT(s.size, 5);
	CHECK(src_file_fd(&s) == fd);
	CHECK(src_read_full(&s, buf, 5) == ERR_OK && memcmp(buf, "hello", 5) == 0);
	src_close(&s);
}

TEST(fifo_refused_without_blocking)
{
	const char *what = NULL;
	int fd = -1;

	CHECK(mkfifo(at("f.dcm"), 0600) == 0);
	alarm(10);   /* a blocking open would hang here */
	CHECK(file_open_regular(at("f.dcm"), false, &fd, &what) == ERR_DENIED);
	CHECK(file_open_regular(at("f.dcm"), true, &fd, &what) == ERR_DENIED);
	alarm(0);
	CHECK_EQ_STR(what, "a FIFO");
	CHECK_EQ_INT(fd, -1);
}

TEST(symlink_refused_unless_follow)
{
	const char *what = NULL;
	char target[sizeof path];
	int fd = -1;

	snprintf(target, sizeof target, "%s", at("a.dcm"));
	CHECK(symlink(target, at("l.dcm")) == 0);
	CHECK(file_open_regular(at("l.dcm"), false, &fd, &what) == ERR_DENIED);
	CHECK_EQ_STR(what, "a symbolic link");
	CHECK_EQ_INT(fd, -1);
	CHECK(file_open_regular(at("l.dcm"), true, &fd, &what) == ERR_OK);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

TEST(folder_socket_missing)
{
	struct sockaddr_un a;
	const char *what = NULL;
	int fd = -1, s;

	CHECK(mkdir(at("d"), 0700) == 0);
	CHECK(file_open_regular(at("d"), false, &fd, &what) == ERR_DENIED);
	CHECK_EQ_STR(what, "a folder");
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0);
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", at("s.dcm"));
	CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
	what = NULL;
	CHECK(file_open_regular(at("s.dcm"), false, &fd, &what) == ERR_DENIED);
	CHECK(what != NULL && strncmp(what, "a socket", 8) == 0);
	close(s);
	CHECK(file_open_regular(at("none.dcm"), false, &fd, &what) == ERR_NOTFOUND);
	CHECK_EQ_INT(fd, -1);
}

TEST(fdopen_refuses_other_files)
{
	struct src s;
	int fd = open(dir, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(src_file_fdopen(&s, fd) == ERR_IO);
	errno = 0;
	CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);   /* closed */
}

TEST(parent_of_a_path)
{
	static const char *const cases[][2] = {
		{ "a/b/c", "a/b" }, { "/x", "/" }, { "name", "." }, { "/a/b", "/a" }, { "a/", "a" },
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(buf, sizeof buf, "%s", cases[i][0]);
		path_parent(buf);
		CHECK_EQ_STR(buf, cases[i][1]);
	}
}

int main(void)
{
	static const char *names[] = { "a.dcm", "f.dcm", "l.dcm", "s.dcm", "d" };
	size_t i;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(regular_file_once);
	RUN(fifo_refused_without_blocking);
	RUN(symlink_refused_unless_follow);
	RUN(folder_socket_missing);
	RUN(fdopen_refuses_other_files);
	RUN(parent_of_a_path);
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (unlink(at(names[i])) != 0)
			(void)rmdir(at(names[i]));
	(void)rmdir(dir);
	return TEST_DONE();
}
