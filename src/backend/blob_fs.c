/* blob_fs.c: the local-directory object store. Objects live at
 * DIR/ab/cd/<key> (fan-out on the key's first four hex digits: the 256
 * DIR/ab are made together, with one fsync of DIR, before the first object
 * is written; a DIR/ab/cd, and its parent fsync'd, the first time an
 * object needs it; a bitmap remembers which exist), written as
 * DIR/.tmp/<key>.<random>, fsync'd, linked as DIR/.pending/<key> (and that
 * directory fsync'd), linked into place (link(2) fails if the key exists,
 * so objects are never replaced), and the directory fsync'd before commit
 * returns. The pending link goes once the index references the object
 * (settle); after a crash, recover() removes what never committed: the
 * temporary files, and pending objects the index does not reference. Every
 * process with the store open holds a shared flock on DIR/.lock; recovery
 * runs only when it can take it exclusively. Layer: backend. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/blob.h"
#include "dicomvault/log.h"

#define PATH_CAP 4096

struct fs_store {
	struct blob_store base;
	char dir[PATH_CAP];
	char tmpdir[PATH_CAP];    /* DIR/.tmp: writes in progress */
	char pendir[PATH_CAP];    /* DIR/.pending: committed, not yet settled */
	int lock_fd;              /* DIR/.lock, flock shared while open */
	/* fan-out directories known to exist (and their entries durable):
	 * bit i of dir2 for DIR/xx/yy, i the hex value of xxyy. Bits are set (atomically) only after the
	 * directory's parent was fsync'd, never cleared; dir_mu serialises
	 * the making, so that no thread links an object into a directory
	 * whose own entry another thread has not yet made durable. */
	uint8_t dir2[65536 / 8];
	bool top_made;            /* every DIR/xx exists (under dir_mu) */
	pthread_mutex_t dir_mu;
};

struct blob_writer {
	struct fs_store *s;
	int fd;
	char tmp[PATH_CAP];
	char final[PATH_CAP];
	char subdir[PATH_CAP];
	enum err err;
};

bool blob_key_valid(const char *key)
{
	size_t n = 0;

	if (key == NULL)
		return false;
	for (; key[n]; n++) {
		char c = key[n];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n >= BLOB_KEY_MAX)
			return false;
	}
	return n >= BLOB_KEY_MIN;
}

static enum err fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	enum err rc = ERR_OK;

	if (fd < 0)
		return ERR_IO;
	if (fsync(fd) != 0)
		rc = ERR_IO;
	close(fd);
	return rc;
}

/* mkdir that tolerates existing directories and fsyncs the parent. */
static enum err mkdir_durable(const char *path, const char *parent)
{
	if (mkdir(path, 0700) == 0)
		return fsync_dir(parent);
	return errno == EEXIST ? ERR_OK : ERR_IO;
}

static bool bit_get(const uint8_t *map, unsigned i)
{
	return (__atomic_load_n(&map[i / 8], __ATOMIC_ACQUIRE) >> (i % 8)) & 1u;
}

static void bit_set(uint8_t *map, unsigned i)
{
	__atomic_fetch_or(&map[i / 8], (uint8_t)(1u << (i % 8)), __ATOMIC_RELEASE);
}

static unsigned hexval(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/* Makes the 256 DIR/xx (those missing) and fsyncs DIR once if it made any:
 * one fsync for all of them instead of one per new directory. */
static enum err top_dirs(struct fs_store *s)
{
	char p[PATH_CAP];
	bool made = false;
	unsigned i;

	for (i = 0; i < 256; i++) {
		if (snprintf(p, sizeof p, "%s/%02x", s->dir, i) >= (int)sizeof p)
			return ERR_LIMIT;
		if (mkdir(p, 0700) == 0)
			made = true;
		else if (errno != EEXIST)
			return ERR_IO;
	}
	return made ? fsync_dir(s->dir) : ERR_OK;
}

/* DIR/xx and DIR/xx/yy of a (valid) key exist and their entries are
 * durable. Made at most once per store handle; an existing directory is
 * taken as durable (whoever made it fsync'd its parent before using it). */
static enum err fanout_ready(struct fs_store *s, const char *key, const char *sub1, const char *sub2)
{
	unsigned i2 = hexval(key[0]) << 12 | hexval(key[1]) << 8 | hexval(key[2]) << 4 | hexval(key[3]);
	enum err rc = ERR_OK;

	if (bit_get(s->dir2, i2))
		return ERR_OK;
	pthread_mutex_lock(&s->dir_mu);
	if (!s->top_made) {
		rc = top_dirs(s);
		s->top_made = rc == ERR_OK;
	}
	if (rc == ERR_OK && !bit_get(s->dir2, i2)) {
		rc = mkdir_durable(sub2, sub1);
		if (rc == ERR_OK)
			bit_set(s->dir2, i2);
	}
	pthread_mutex_unlock(&s->dir_mu);
	return rc;
}

static enum err paths(struct fs_store *s, const char *key, char *sub1, char *sub2, char *final)
{
	int n1 = snprintf(sub1, PATH_CAP, "%s/%.2s", s->dir, key);
	int n2 = snprintf(sub2, PATH_CAP, "%s/%.2s/%.2s", s->dir, key, key + 2);
	int n3 = snprintf(final, PATH_CAP, "%s/%.2s/%.2s/%s", s->dir, key, key + 2, key);

	if (n1 < 0 || n2 < 0 || n3 < 0 || n3 >= PATH_CAP)
		return ERR_LIMIT;
	return ERR_OK;
}

static enum err fs_put_begin(struct blob_store *bs, const char *key, struct blob_writer **out)
{
	struct fs_store *s = (struct fs_store *)bs;
	struct blob_writer *w;
	char sub1[PATH_CAP];
	uint8_t rnd[8];
	enum err rc = ERR_INTERNAL;

	if (!blob_key_valid(key))
		return ERR_PARSE;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return ERR_NOMEM;
	w->s = s;
	w->fd = -1;
	rc = paths(s, key, sub1, w->subdir, w->final);
	if (rc != ERR_OK)
		goto out;
	rc = fanout_ready(s, key, sub1, w->subdir);
	if (rc != ERR_OK)
		goto out;
	if (access(w->final, F_OK) == 0) {
		rc = ERR_DENIED;   /* immutable */
		goto out;
	}
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		rc = ERR_IO;
		goto out;
	}
	if (snprintf(w->tmp, PATH_CAP, "%s/%s.%02x%02x%02x%02x%02x%02x%02x%02x", s->tmpdir, key, rnd[0], rnd[1],
	             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) >= PATH_CAP) {
		rc = ERR_LIMIT;
		goto out;
	}
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = ERR_IO;
		goto out;
	}
	*out = w;
	w = NULL;
	rc = ERR_OK;
out:
	free(w);
	return rc;
}

static enum err fs_put_write(struct blob_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (w->err != ERR_OK)
		return w->err;
	while (n > 0) {
		ssize_t r = write(w->fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			w->err = ERR_IO;
			return w->err;
		}
		b += r;
		n -= (size_t)r;
	}
	return ERR_OK;
}

static void fs_put_abort(struct blob_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp[0])
		unlink(w->tmp);
	free(w);
}

static bool pending_path(const struct fs_store *s, const char *key, char out[PATH_CAP])
{
	int n = snprintf(out, PATH_CAP, "%s/%s", s->pendir, key);

	return n > 0 && n < PATH_CAP;
}

static enum err fs_put_commit(struct blob_writer *w)
{
	const char *key = strrchr(w->final, '/') + 1;
	char pending[PATH_CAP];
	bool marked = false;
	enum err rc = w->err;

	if (rc == ERR_OK && fsync(w->fd) != 0)
		rc = ERR_IO;
	if (close(w->fd) != 0 && rc == ERR_OK)
		rc = ERR_IO;
	w->fd = -1;
	/* pending first: an object visible under its key is always either
	 * pending or referenced by the index */
	if (rc == ERR_OK && !pending_path(w->s, key, pending))
		rc = ERR_LIMIT;
	if (rc == ERR_OK && link(w->tmp, pending) != 0)
		rc = ERR_IO;
	if (rc == ERR_OK) {
		marked = true;
		rc = fsync_dir(w->s->pendir);
	}
	if (rc == ERR_OK && link(w->tmp, w->final) != 0)
		rc = errno == EEXIST ? ERR_DENIED : ERR_IO;
	if (rc != ERR_OK && marked)
		unlink(pending);
	unlink(w->tmp);
	w->tmp[0] = 0;
	if (rc == ERR_OK)
		rc = fsync_dir(w->subdir);
	fs_put_abort(w);
	return rc;
}

static enum err fs_get(struct blob_store *bs, const char *key, struct src *out)
{
	struct fs_store *s = (struct fs_store *)bs;
	char sub1[PATH_CAP], sub2[PATH_CAP], final[PATH_CAP];
	enum err rc;

	if (!blob_key_valid(key))
		return ERR_PARSE;
	rc = paths(s, key, sub1, sub2, final);
	if (rc != ERR_OK)
		return rc;
	return src_file_open(out, final);
}

static enum err fs_del(struct blob_store *bs, const char *key)
{
	struct fs_store *s = (struct fs_store *)bs;
	char sub1[PATH_CAP], sub2[PATH_CAP], final[PATH_CAP];
	enum err rc;

	if (!blob_key_valid(key))
		return ERR_PARSE;
	rc = paths(s, key, sub1, sub2, final);
	if (rc != ERR_OK)
		return rc;
	if (unlink(final) != 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	if (pending_path(s, key, final))
		unlink(final);
	return fsync_dir(sub2);
}

static void fs_settle(struct blob_store *bs, const char *key)
{
	struct fs_store *s = (struct fs_store *)bs;
	char p[PATH_CAP];

	/* not fsync'd: a marker back after a crash is dropped by recover */
	if (blob_key_valid(key) && pending_path(s, key, p))
		unlink(p);
}

static int flock_retry(int fd, int op)
{
	int r;

	while ((r = flock(fd, op)) != 0 && errno == EINTR)
		;
	return r;
}

/* Removes every file of dir (not recursing); counts them. */
static enum err clear_dir(const char *dir, unsigned *removed)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	enum err rc = ERR_OK;

	if (d == NULL)
		return ERR_IO;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			(*removed)++;
		else if (errno != ENOENT)
			rc = ERR_IO;
	}
	closedir(d);
	return rc;
}

static enum err fs_recover(struct blob_store *bs, enum err (*referenced)(void *ctx, const char *key, bool *yes),
                           void *ctx, unsigned *removed)
{
	struct fs_store *s = (struct fs_store *)bs;
	char sub1[PATH_CAP], sub2[PATH_CAP], final[PATH_CAP];
	DIR *d = NULL;
	struct dirent *e;
	bool yes;
	enum err rc = ERR_OK;

	*removed = 0;
	/* only when no other process has the store open (converting our
	 * shared lock is not atomic: on failure take it back) */
	if (flock_retry(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (flock_retry(s->lock_fd, LOCK_SH) != 0)
			return ERR_IO;
		return ERR_OK;
	}
	rc = clear_dir(s->tmpdir, removed);
	if (rc != ERR_OK)
		goto out;
	d = opendir(s->pendir);
	if (d == NULL) {
		rc = ERR_IO;
		goto out;
	}
	while (rc == ERR_OK && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		yes = false;
		if (blob_key_valid(e->d_name)) {
			rc = referenced(ctx, e->d_name, &yes);
			if (rc != ERR_OK)
				break;
			if (!yes && paths(s, e->d_name, sub1, sub2, final) == ERR_OK) {
				if (unlink(final) == 0) {
					(*removed)++;
					log_warn("object store: removed object %s, written but never indexed (a crash)",
					         e->d_name);
					rc = fsync_dir(sub2);
				} else if (errno != ENOENT) {
					rc = ERR_IO;
				}
			}
		}
		if (rc == ERR_OK && unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
			rc = ERR_IO;
	}
	if (rc == ERR_OK)
		rc = fsync_dir(s->pendir);
out:
	if (d != NULL)
		closedir(d);
	if (flock_retry(s->lock_fd, LOCK_SH) != 0 && rc == ERR_OK)
		rc = ERR_IO;
	return rc;
}

static bool is_hex2(const char *n)
{
	return strlen(n) == 2 &&
	       ((n[0] >= '0' && n[0] <= '9') || (n[0] >= 'a' && n[0] <= 'f')) &&
	       ((n[1] >= '0' && n[1] <= '9') || (n[1] >= 'a' && n[1] <= 'f'));
}

static enum err fs_list(struct blob_store *bs, enum err (*fn)(void *ctx, const char *key), void *ctx)
{
	struct fs_store *s = (struct fs_store *)bs;
	DIR *d1 = opendir(s->dir), *d2 = NULL, *d3 = NULL;
	struct dirent *e1, *e2, *e3;
	char p[PATH_CAP];
	enum err rc = ERR_OK;

	if (d1 == NULL)
		return ERR_IO;
	while (rc == ERR_OK && (e1 = readdir(d1)) != NULL) {
		if (!is_hex2(e1->d_name))
			continue;
		if (snprintf(p, sizeof p, "%s/%.2s", s->dir, e1->d_name) >= (int)sizeof p)
			continue;
		d2 = opendir(p);
		if (d2 == NULL)
			continue;
		while (rc == ERR_OK && (e2 = readdir(d2)) != NULL) {
			if (!is_hex2(e2->d_name))
				continue;
			if (snprintf(p, sizeof p, "%s/%.2s/%.2s", s->dir, e1->d_name, e2->d_name) >= (int)sizeof p)
				continue;
			d3 = opendir(p);
			if (d3 == NULL)
				continue;
			while (rc == ERR_OK && (e3 = readdir(d3)) != NULL)
				if (blob_key_valid(e3->d_name))
					rc = fn(ctx, e3->d_name);
			closedir(d3);
		}
		closedir(d2);
	}
	closedir(d1);
	return rc;
}

static void fs_close(struct blob_store *bs)
{
	struct fs_store *s = (struct fs_store *)bs;

	if (s == NULL)
		return;
	if (s->lock_fd >= 0)
		close(s->lock_fd);   /* releases the lock */
	pthread_mutex_destroy(&s->dir_mu);
	free(bs);
}

static const struct blob_ops fs_ops = {
	"fs", fs_put_begin, fs_put_write, fs_put_commit, fs_put_abort, fs_get, fs_del, fs_list, fs_close,
	fs_settle, fs_recover,
};

enum err blob_fs_open(const char *dir, struct blob_store **out)
{
	char lock[PATH_CAP + 8];
	struct fs_store *s;
	struct stat st;

	if (strlen(dir) > PATH_CAP - 128)
		return ERR_LIMIT;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ERR_IO;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ERR_IO;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return ERR_NOMEM;
	s->base.ops = &fs_ops;
	s->lock_fd = -1;
	pthread_mutex_init(&s->dir_mu, NULL);
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	snprintf(s->tmpdir, sizeof s->tmpdir, "%s/.tmp", dir);
	snprintf(s->pendir, sizeof s->pendir, "%s/.pending", dir);
	snprintf(lock, sizeof lock, "%s/.lock", dir);
	if (mkdir_durable(s->tmpdir, dir) != ERR_OK || mkdir_durable(s->pendir, dir) != ERR_OK)
		goto fail;
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0 || flock_retry(s->lock_fd, LOCK_SH) != 0)
		goto fail;
	*out = &s->base;
	return ERR_OK;
fail:
	log_error("object store %s: cannot prepare .tmp, .pending or .lock: %s", dir, strerror(errno));
	fs_close(&s->base);
	return ERR_IO;
}

static enum err bsink_write(void *ctx, const void *p, size_t n)
{
	struct blob_sink_ctx *c = ctx;
	return c->s->ops->put_write(c->w, p, n);
}

void blob_sink(struct sink *k, struct blob_sink_ctx *c, struct blob_store *s, struct blob_writer *w)
{
	c->s = s;
	c->w = w;
	k->write = bsink_write;
	k->ctx = c;
}
