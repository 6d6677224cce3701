/* secret.c: library initialisation, guarded secrets (sodium_malloc),
 * reading key and passphrase files with a permission check, constant-time
 * compare, wiping and random bytes. Layer: crypto. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"

struct secret {
	uint8_t *p;     /* sodium_malloc'd, len + 1 rounded up to 16, p[len] == 0 */
	size_t len;
	bool sealed;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static void init_run(void)
{
	init_rc = sodium_init();   /* 0: done now, 1: already done */
}

enum err crypto_init(void)
{
	if (pthread_once(&init_once, init_run) != 0)
		return ERR_INTERNAL;
	return init_rc < 0 ? ERR_INTERNAL : ERR_OK;
}

enum err secret_new(size_t len, struct secret **out)
{
	struct secret *s = NULL;
	size_t alloc;
	enum err rc = crypto_init();

	if (rc != ERR_OK)
		return rc;
	rc = ERR_LIMIT;
	if (len >= SIZE_MAX / 2)
		goto out;
	rc = ERR_NOMEM;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		goto out;
	/* sodium_malloc puts the bytes right before a guard page, so the
	 * start is aligned only if the size is: round len + 1 up to 16 (for
	 * structures that need 16-byte alignment, as cipher states do). */
	alloc = (len + 1 + 15) & ~(size_t)15;
	s->p = sodium_malloc(alloc);
	if (s->p == NULL)
		goto out;
	sodium_memzero(s->p, alloc);
	s->len = len;
	*out = s;
	s = NULL;
	rc = ERR_OK;
out:
	free(s);
	return rc;
}

enum err secret_random(size_t len, struct secret **out)
{
	struct secret *s = NULL;
	enum err rc;

	rc = secret_new(len, &s);
	if (rc != ERR_OK)
		return rc;
	randombytes_buf(s->p, len);
	secret_seal(s);
	*out = s;
	return ERR_OK;
}

enum err secret_from_bytes(const void *p, size_t n, struct secret **out)
{
	struct secret *s = NULL;
	enum err rc;

	rc = secret_new(n, &s);
	if (rc != ERR_OK)
		return rc;
	if (n > 0)
		memcpy(s->p, p, n);
	secret_seal(s);
	*out = s;
	return ERR_OK;
}

void secret_free(struct secret *s)
{
	if (s == NULL)
		return;
	sodium_free(s->p);   /* makes it writable, checks the canary, wipes */
	free(s);
}

size_t secret_len(const struct secret *s) { return s->len; }

const uint8_t *secret_view(const struct secret *s) { return s->p; }

const char *secret_cstr(const struct secret *s) { return (const char *)s->p; }

uint8_t *secret_mut(struct secret *s)
{
	if (s->sealed)
		abort();   /* broken invariant: a sealed secret is read-only */
	return s->p;
}

void secret_seal(struct secret *s)
{
	if (s->sealed)
		return;
	/* Defence in depth only: if mprotect fails (no memory for another
	 * mapping) the secret stays writable but is treated as sealed. */
	if (sodium_mprotect_readonly(s->p) != 0)
		log_warn("cannot make a secret read-only");
	s->sealed = true;
}

/* Checks a regular file's mode and owner; logs the reason of a refusal
 * (what names the file). */
static enum err check_file(const struct stat *st, const char *what)
{
	if (st->st_mode & 077) {
		log_error("refusing key or passphrase file %s: mode %04o lets group or other access it "
		          "(chmod 600 it)", what, (unsigned)(st->st_mode & 07777));
		return ERR_DENIED;
	}
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		log_error("refusing key or passphrase file %s: owned by uid %lu, neither us (%lu) nor root",
		          what, (unsigned long)st->st_uid, (unsigned long)geteuid());
		return ERR_DENIED;
	}
	return ERR_OK;
}

static volatile sig_atomic_t tty_signal;

static void on_tty_signal(int sig)
{
	tty_signal = sig;
}

/* A passphrase typed on a terminal: a prompt on stderr, echo off while it
 * is typed, one line (Enter ends it; reading to the end of the input would
 * wait for Ctrl-D). The terminal is restored whatever happens: Ctrl-C,
 * Ctrl-\, SIGTERM or SIGHUP while typing end the read, the terminal and
 * the signal's disposition are put back, and the signal is raised again.
 * The signals are blocked but while ppoll waits for input, so one that
 * comes between the check of tty_signal and the wait is not lost (it was:
 * a Ctrl-C typed at once after the prompt left the read waiting); the
 * bytes are read without blocking, through an open file description of
 * our own (the shell's keeps its flags), since a Ctrl-C between ppoll and
 * read flushes the line that ppoll saw. */
static enum err from_tty(int fd, size_t max, struct secret **out)
{
	static const int sigs[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP };
	struct sigaction sa, was[sizeof sigs / sizeof sigs[0]];
	struct secret *buf = NULL;
	struct termios old, quiet;
	sigset_t block, orig;
	bool restore = false;
	size_t len = 0, i;
	char own[40];
	int nb, rfd;
	enum err rc = secret_new(max + 1, &buf);

	if (rc != ERR_OK)
		return rc;
	snprintf(own, sizeof own, "/proc/self/fd/%d", fd);
	nb = open(own, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	rfd = nb >= 0 ? nb : fd;   /* without /proc: blocking reads, as before */
	tty_signal = 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_tty_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&block, sigs[i]);
	(void)pthread_sigmask(SIG_BLOCK, &block, &orig);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		(void)sigaction(sigs[i], &sa, &was[i]);
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	(void)!write(STDERR_FILENO, "Passphrase: ", 12);   /* once echo is off */
	rc = ERR_OK;
	for (;;) {
		struct pollfd pfd = { rfd, POLLIN, 0 };
		char c;
		ssize_t r;
		if (tty_signal != 0)
			break;
		if (ppoll(&pfd, 1, NULL, &orig) < 0) {
			if (errno == EINTR)
				continue;
			rc = ERR_IO;
			break;
		}
		r = read(rfd, &c, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			rc = ERR_IO;
			break;
		}
		if (r == 0 || c == '\n')
			break;
		if (len == max) {
			rc = ERR_LIMIT;   /* the rest of the line is read and dropped */
			continue;
		}
		buf->p[len++] = (uint8_t)c;
	}
	if (nb >= 0)
		(void)close(nb);
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	(void)!write(STDERR_FILENO, "\n", 1);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		(void)sigaction(sigs[i], &was[i], NULL);
	(void)pthread_sigmask(SIG_SETMASK, &orig, NULL);
	if (tty_signal != 0) {
		secret_free(buf);
		raise(tty_signal);   /* as it would have been, now the terminal is back */
		return ERR_IO;       /* a signal that was ignored or handled */
	}
	if (len > 0 && buf->p[len - 1] == '\r')
		len--;
	if (rc == ERR_LIMIT)
		log_error("the passphrase typed is longer than %zu bytes", max);
	else if (rc == ERR_IO)
		log_error("cannot read the passphrase from the terminal");
	else if (len == 0) {
		log_error("no passphrase typed");
		rc = ERR_PARSE;
	}
	if (rc == ERR_OK)
		rc = secret_from_bytes(buf->p, len, out);
	secret_free(buf);
	return rc;
}

static enum err from_fd(int fd, const char *what, size_t max, unsigned flags, struct secret **out)
{
	struct secret *buf = NULL;
	struct stat st;
	size_t len = 0;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = ERR_LIMIT;
	if (max > CRYPTO_SECRET_FILE_MAX)
		goto out;
	rc = ERR_IO;
	if (fstat(fd, &st) != 0)
		goto out;
	if (S_ISDIR(st.st_mode)) {
		log_error("key or passphrase file %s is a directory", what);
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		rc = check_file(&st, what);
		if (rc != ERR_OK)
			goto out;
	}
	if (isatty(fd)) {
		rc = from_tty(fd, max, out);
		goto out;
	}
	/* One byte more than allowed, to tell "exactly max" from "longer". */
	rc = secret_new(max + 1, &buf);
	if (rc != ERR_OK)
		goto out;
	for (;;) {
		ssize_t r;

		if (len == max + 1)
			break;
		r = read(fd, buf->p + len, max + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		rc = ERR_IO;
		if (r < 0) {
			log_error("cannot read key or passphrase file %s", what);
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = ERR_LIMIT;
	if (len > max) {
		log_error("key or passphrase file %s: longer than %zu bytes", what, max);
		goto out;
	}
	if ((flags & SECRET_TRIM_NEWLINE) && len > 0 && buf->p[len - 1] == '\n') {
		len--;
		if (len > 0 && buf->p[len - 1] == '\r')
			len--;
	}
	rc = ERR_PARSE;
	if (len == 0) {
		log_error("key or passphrase file %s is empty", what);
		goto out;
	}
	rc = secret_from_bytes(buf->p, len, out);
out:
	secret_free(buf);
	return rc;
}

enum err secret_from_fd(int fd, size_t max, unsigned flags, struct secret **out)
{
	char what[32];

	snprintf(what, sizeof what, "on fd %d", fd);
	return from_fd(fd, what, max, flags, out);
}

enum err secret_read_file(const char *path, size_t max, unsigned flags, struct secret **out)
{
	enum err rc;
	int fd, e;

	do {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		e = errno;
		rc = e == ENOENT ? ERR_NOTFOUND : e == EACCES ? ERR_DENIED : ERR_IO;
		log_error("cannot open key or passphrase file %s: %s", path, strerror(e));
		return rc;
	}
	rc = from_fd(fd, path, max, flags, out);
	close(fd);
	return rc;
}

bool ct_equal(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return true;
	return sodium_memcmp(a, b, n) == 0;
}

void mem_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		sodium_memzero(p, n);
}

enum err rand_bytes(void *p, size_t n)
{
	enum err rc = crypto_init();

	if (rc != ERR_OK)
		return rc;
	if (n > 0)
		randombytes_buf(p, n);
	return ERR_OK;
}
