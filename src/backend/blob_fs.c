/* blob_fs.c: the local-directory object store. Objects live at
 * DIR/ab/cd/<key> (fan-out on the key's first four hex digits), written as
 * DIR/ab/cd/.tmp.<key>.<random>, fsync'd, linked into place (link(2) fails
 * if the key exists, so objects are never replaced), and the directory
 * fsync'd before commit returns. Layer: backend. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/blob.h"
#include "dicomvault/log.h"

#define PATH_CAP 4096

struct fs_store {
	struct blob_store base;
	char dir[PATH_CAP];
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
	rc = mkdir_durable(sub1, s->dir);
	if (rc == ERR_OK)
		rc = mkdir_durable(w->subdir, sub1);
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
	if (snprintf(w->tmp, PATH_CAP, "%s/.tmp.%s.%02x%02x%02x%02x%02x%02x%02x%02x", w->subdir, key, rnd[0], rnd[1],
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

static enum err fs_put_commit(struct blob_writer *w)
{
	enum err rc = w->err;

	if (rc == ERR_OK && fsync(w->fd) != 0)
		rc = ERR_IO;
	if (close(w->fd) != 0 && rc == ERR_OK)
		rc = ERR_IO;
	w->fd = -1;
	if (rc == ERR_OK && link(w->tmp, w->final) != 0)
		rc = errno == EEXIST ? ERR_DENIED : ERR_IO;
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
	return fsync_dir(sub2);
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
	free(bs);
}

static const struct blob_ops fs_ops = {
	"fs", fs_put_begin, fs_put_write, fs_put_commit, fs_put_abort, fs_get, fs_del, fs_list, fs_close,
};

enum err blob_fs_open(const char *dir, struct blob_store **out)
{
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
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	*out = &s->base;
	return ERR_OK;
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
