/* io.c: memory and file byte sources, buffer and fd sinks. Layer: base. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/io.h"

static enum err mem_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct src_mem *m = ctx;
	size_t n = m->len - m->pos;

	if (n > want)
		n = want;
	if (n > 0)
		memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	*got = n;
	return ERR_OK;
}

static enum err mem_read_at(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct src_mem *m = ctx;

	if (off > m->len || m->len - off < n)
		return ERR_PARSE;
	memcpy(buf, m->p + off, n);
	return ERR_OK;
}

static enum err mem_skip(void *ctx, uint64_t n)
{
	struct src_mem *m = ctx;

	if (n > m->len - m->pos)
		return ERR_PARSE;
	m->pos += (size_t)n;
	return ERR_OK;
}

void src_mem_init(struct src *s, struct src_mem *m, const void *p, size_t len)
{
	m->p = p;
	m->len = len;
	m->pos = 0;
	s->read = mem_read;
	s->read_at = mem_read_at;
	s->skip = mem_skip;
	s->close = NULL;
	s->size = (int64_t)len;
	s->ctx = m;
}

struct file_src {
	int fd;
	uint64_t pos;
};

static enum err file_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct file_src *f = ctx;
	ssize_t n;

	do {
		n = read(f->fd, buf, want);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return ERR_IO;
	f->pos += (uint64_t)n;
	*got = (size_t)n;
	return ERR_OK;
}

static enum err file_read_at(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct file_src *f = ctx;
	uint8_t *p = buf;

	while (n > 0) {
		ssize_t r = pread(f->fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ERR_IO;
		if (r == 0)
			return ERR_PARSE;
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return ERR_OK;
}

static enum err file_skip(void *ctx, uint64_t n)
{
	struct file_src *f = ctx;

	if (lseek(f->fd, (off_t)(f->pos + n), SEEK_SET) < 0)
		return ERR_IO;
	f->pos += n;
	return ERR_OK;
}

static void file_close(void *ctx)
{
	struct file_src *f = ctx;

	close(f->fd);
	free(f);
}

enum err src_file_fdopen(struct src *s, int fd)
{
	struct file_src *f;
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ERR_IO;
	}
	f = malloc(sizeof *f);
	if (f == NULL) {
		close(fd);
		return ERR_NOMEM;
	}
	f->fd = fd;
	f->pos = 0;
	s->read = file_read;
	s->read_at = file_read_at;
	s->skip = file_skip;
	s->close = file_close;
	s->size = (int64_t)st.st_size;
	s->ctx = f;
	return ERR_OK;
}

enum err src_file_open(struct src *s, const char *path)
{
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	return src_file_fdopen(s, fd);
}

/* What a file of this type is, for a refusal. */
const char *file_type_name(mode_t m)
{
	return S_ISLNK(m) ? "a symbolic link" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" :
	       S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISDIR(m) ? "a folder" :
	       "not a regular file";
}

enum err file_open_regular(const char *path, bool follow, int *fd_out, const char **what)
{
	return file_open_regular_at(AT_FDCWD, path, follow, fd_out, what);
}

enum err file_open_regular_at(int dfd, const char *path, bool follow, int *fd_out, const char **what)
{
	struct stat st;
	int fd, fl;

	do {
		fd = openat(dfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		if (errno == ELOOP && !follow) {
			*what = file_type_name(S_IFLNK);
			return ERR_DENIED;
		}
		if (errno == ENXIO) {   /* a socket, or a device without its driver */
			*what = "a socket or device";
			return ERR_DENIED;
		}
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		fl = errno;
		close(fd);
		errno = fl;
		return ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*what = file_type_name(st.st_mode);
		return ERR_DENIED;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)) {
		fl = errno;
		close(fd);
		errno = fl;
		return ERR_IO;
	}
	*fd_out = fd;
	return ERR_OK;
}

void src_close(struct src *s)
{
	if (s->close)
		s->close(s->ctx);
	s->close = NULL;
	s->ctx = NULL;
}

enum err src_read_full(struct src *s, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		size_t got = 0;
		enum err rc = s->read(s->ctx, p, n, &got);
		if (rc != ERR_OK)
			return rc;
		if (got == 0)
			return ERR_PARSE;
		p += got;
		n -= got;
	}
	return ERR_OK;
}

int src_file_fd(const struct src *s)
{
	return s != NULL && s->read == file_read && s->ctx != NULL ? ((const struct file_src *)s->ctx)->fd : -1;
}

static enum err wbuf_write(void *ctx, const void *p, size_t n)
{
	struct wbuf *w = ctx;

	wbuf_put(w, p, n);
	return wbuf_err(w);
}

void sink_wbuf(struct sink *k, struct wbuf *w)
{
	k->write = wbuf_write;
	k->ctx = w;
}

static enum err fd_write(void *ctx, const void *p, size_t n)
{
	int fd = *(int *)ctx;
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ERR_IO;
		b += r;
		n -= (size_t)r;
	}
	return ERR_OK;
}

void sink_fd(struct sink *k, int *fd)
{
	k->write = fd_write;
	k->ctx = fd;
}

int sink_fd_of(const struct sink *k)
{
	return k != NULL && k->write == fd_write && k->ctx != NULL ? *(const int *)k->ctx : -1;
}

enum err fd_copy_range(int in, uint64_t off, uint64_t n, int out)
{
	uint8_t buf[64 * 1024];
	loff_t o = (loff_t)off;
	int how = 0;   /* 0 copy_file_range, 1 sendfile, 2 through memory */

	while (n > 0) {
		size_t want = n > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)n;
		ssize_t got;
		if (how == 0) {
			got = copy_file_range(in, &o, out, NULL, want, 0);
			if (got < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
			                errno == EBADF)) {
				how = 1;   /* another file system: sendfile still copies in the kernel */
				continue;
			}
		} else if (how == 1) {
			off_t so = (off_t)o;
			got = sendfile(out, in, &so, want);
			if (got < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
				how = 2;   /* not a file sendfile takes: copy through memory */
				continue;
			}
			if (got > 0)
				o = (loff_t)so;
		} else {
			if (want > sizeof buf)
				want = sizeof buf;
			got = pread(in, buf, want, o);
			if (got > 0 && sink_write(&(struct sink){ .write = fd_write, .ctx = &out }, buf, (size_t)got) != ERR_OK)
				return ERR_IO;
			if (got > 0)
				o += got;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return ERR_IO;
		if (got == 0)
			return ERR_PARSE;   /* the source ended early */
		n -= (uint64_t)got;
	}
	return ERR_OK;
}

enum err sink_write(struct sink *k, const void *p, size_t n)
{
	if (n == 0)
		return ERR_OK;
	return k->write(k->ctx, p, n);
}

enum err file_read_all(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct src s;
	uint8_t *buf = NULL;
	enum err rc;

	rc = src_file_open(&s, path);
	if (rc != ERR_OK)
		return rc;
	rc = ERR_LIMIT;
	if (s.size < 0 || (uint64_t)s.size > max)
		goto out;
	rc = ERR_NOMEM;
	buf = malloc((size_t)s.size + 1);
	if (buf == NULL)
		goto out;
	rc = src_read_full(&s, buf, (size_t)s.size);
	if (rc != ERR_OK)
		goto out;
	buf[s.size] = 0;
	*out = buf;
	*len = (size_t)s.size;
	buf = NULL;
	rc = ERR_OK;
out:
	free(buf);
	src_close(&s);
	return rc;
}

enum err proc_harden(void)
{
	struct rlimit rl = { 0, 0 };
	enum err rc = ERR_OK;

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		rc = ERR_IO;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		rc = ERR_IO;
	return rc;
}

void path_parent(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == NULL) {
		path[0] = '.';
		path[1] = 0;
	} else if (slash == path) {
		path[1] = 0;
	} else {
		*slash = 0;
	}
}
