/* fault_sync.c: an LD_PRELOAD shim for the durability tests. It makes
 * chosen fsync(2) or fdatasync(2) calls of `dicomvault serve` fail, or
 * wait, as a failing disk would, so that tests can drive the store's error
 * paths (tests/integration/store_faults.py).
 *
 * FAULT_DIR names a folder; the file FAULT_DIR/fsync (or /fdatasync, or
 * /unlink, whose path is its argument, or /tmpfile, for an openat(2) with
 * O_TMPFILE, whose path is its folder descriptor's: `export`'s) holds
 * one rule, "GLOB SKIP COUNT ACTION": a call whose descriptor's path
 * matches GLOB (fnmatch) is counted; the first SKIP pass, the next COUNT
 * get ACTION: EIO or EOPNOTSUPP (fail at once; the latter as a file system
 * without O_TMPFILE), or wait:MS or waitEIO:MS (wait MS
 * milliseconds, then succeed or fail). The rule is re-read at every call
 * and rewritten as it is used up, so a test changes it while the server
 * runs. Every call acted on is appended to FAULT_DIR/hits. Built without
 * sanitizers (it is loaded into an ASan binary: ASAN_OPTIONS
 * verify_asan_link_order=0). Layer: tests. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t rule_mu = PTHREAD_MUTEX_INITIALIZER;

static void wait_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The error the rule for fn gives this call on path (0: none). */
static int decide(const char *fn, const char *path)
{
	const char *dir = getenv("FAULT_DIR");
	char p[1024], glob[512], act[64];
	long skip, count, ms = 0;
	int err = 0, acted = 0;
	FILE *f;

	if (dir == NULL || path == NULL)
		return 0;
	snprintf(p, sizeof p, "%s/%s", dir, fn);
	pthread_mutex_lock(&rule_mu);
	f = fopen(p, "r");
	if (f != NULL) {
		if (fscanf(f, "%511s %ld %ld %63s", glob, &skip, &count, act) == 4 && count > 0 &&
		    fnmatch(glob, path, 0) == 0) {
			if (skip > 0) {
				skip--;
			} else {
				count--;
				acted = 1;
			}
			fclose(f);
			f = fopen(p, "w");
			if (f != NULL)
				fprintf(f, "%s %ld %ld %s\n", glob, skip, count, act);
		}
		if (f != NULL)
			fclose(f);
	}
	if (acted) {
		snprintf(p, sizeof p, "%s/hits", dir);
		f = fopen(p, "a");
		if (f != NULL) {
			fprintf(f, "%s %s %s\n", fn, path, act);
			fclose(f);
		}
	}
	pthread_mutex_unlock(&rule_mu);
	if (!acted)
		return 0;
	if (strcmp(act, "EIO") == 0)
		err = EIO;
	else if (strcmp(act, "EOPNOTSUPP") == 0)
		err = EOPNOTSUPP;
	else if (strncmp(act, "waitEIO:", 8) == 0) {
		ms = strtol(act + 8, NULL, 10);
		err = EIO;
	} else if (strncmp(act, "wait:", 5) == 0) {
		ms = strtol(act + 5, NULL, 10);
	}
	if (ms > 0)
		wait_ms(ms);
	return err;
}

static const char *path_of(int fd, char *buf, size_t cap)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, buf, cap - 1);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

/* The rule for fn on fd's path, then real(fd) unless it acted with an error. */
static int on_fd(const char *fn, int fd, int (*real)(int))
{
	char buf[1024];
	int err = decide(fn, path_of(fd, buf, sizeof buf));

	if (err != 0) {
		errno = err;
		return -1;
	}
	return real(fd);
}

int fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return on_fd("fsync", fd, real);
}

int fdatasync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return on_fd("fdatasync", fd, real);
}

int unlink(const char *path)
{
	static int (*real)(const char *);
	int err;

	if (real == NULL)
		real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
	err = decide("unlink", path);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return real(path);
}

/* Only O_TMPFILE opens are looked at (the rule names the folder): the
 * others pass untouched. */
int openat(int dfd, const char *path, int flags, ...)
{
	static int (*real)(int, const char *, int, ...);
	char buf[1024];
	mode_t mode = 0;
	va_list ap;
	int err;

	if (real == NULL)
		real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
	if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if ((flags & O_TMPFILE) == O_TMPFILE && (err = decide("tmpfile", path_of(dfd, buf, sizeof buf))) != 0) {
		errno = err;
		return -1;
	}
	return real(dfd, path, flags, mode);
}
