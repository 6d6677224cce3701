/* io.h: byte sources and sinks, so that parsers never touch files or
 * sockets themselves. Layer: base. */
#ifndef DICOMVAULT_IO_H
#define DICOMVAULT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

struct src {
	/* Up to want bytes into buf; *got = 0 only at the end of the data. */
	enum err (*read)(void *ctx, void *buf, size_t want, size_t *got);
	/* Exactly n bytes at absolute offset off; NULL if not random access. */
	enum err (*read_at)(void *ctx, uint64_t off, void *buf, size_t n);
	/* Skip n bytes forward; NULL: the caller reads and discards. */
	enum err (*skip)(void *ctx, uint64_t n);
	void (*close)(void *ctx);
	int64_t size;   /* total bytes if known, else -1 */
	void *ctx;
};

struct src_mem {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

/* Borrowed memory; m is the caller's storage for the state. */
void src_mem_init(struct src *s, struct src_mem *m, const void *p, size_t len);
/* Opens a file read-only; src_close() releases it. */
WUR enum err src_file_open(struct src *s, const char *path);
/* The same over a descriptor already open (file_open_regular): s takes fd
 * (closed by src_close(), or at once when this fails); ERR_IO if it is not
 * a regular file. */
WUR enum err src_file_fdopen(struct src *s, int fd);
/* Opens path once for reading where someone else may write its folder
 * (import): O_NOFOLLOW unless follow (a symbolic link is not opened) and
 * O_NONBLOCK (a FIFO does not block the open), then fstat: a regular file
 * only (no FIFO, device, socket or folder), and O_NONBLOCK cleared. Read
 * everything from *fd, never path again. ERR_DENIED: not a regular file,
 * *what says what it is ("a symbolic link", "a FIFO", ...); ERR_NOTFOUND:
 * no such file; ERR_IO: errno says. */
WUR enum err file_open_regular(const char *path, bool follow, int *fd, const char **what);
/* What a file of mode m is, in words ("a FIFO", "a symbolic link", ...). */
const char *file_type_name(mode_t m);
/* The same for path relative to the folder open as dfd (openat): a walk
 * that holds each folder open, so that no folder on the way can be
 * swapped for a link between the listing and the open. */
WUR enum err file_open_regular_at(int dfd, const char *path, bool follow, int *fd, const char **what);
void src_close(struct src *s);
/* The descriptor of a src_file_open() source (for zero-copy transfers), else -1. */
int src_file_fd(const struct src *s);
/* Reads exactly n bytes (ERR_PARSE on a short read). */
WUR enum err src_read_full(struct src *s, void *buf, size_t n);

struct sink {
	enum err (*write)(void *ctx, const void *p, size_t n);
	void *ctx;
};

void sink_wbuf(struct sink *k, struct wbuf *w);
/* Writes to a file descriptor, retrying short writes. */
void sink_fd(struct sink *k, int *fd);
WUR enum err sink_write(struct sink *k, const void *p, size_t n);
/* The descriptor of a sink_fd() sink, else -1. */
int sink_fd_of(const struct sink *k);
/* n bytes of in from offset off appended at out's position, in the kernel
 * (copy_file_range; across file systems sendfile) when it can, else
 * through a small buffer. ERR_PARSE if in ends first. */
WUR enum err fd_copy_range(int in, uint64_t off, uint64_t n, int out);

/* Whole file into memory, at most max bytes. */
/* Cuts path, in place, to the folder holding it: "." when it has no
 * slash, "/" for a name at the root (a trailing slash is not stripped).
 * The buffer holds at least 2 bytes. */
void path_parent(char *path);

WUR enum err file_read_all(const char *path, size_t max, uint8_t **out, size_t *len);

/* For a process that holds keys or patient data: no core dumps
 * (RLIMIT_CORE 0) and not dumpable (no ptrace by the same user, no
 * /proc/PID/mem). ERR_IO if either could not be set. */
WUR enum err proc_harden(void);

#endif
