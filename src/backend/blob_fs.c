/* blob_fs.c: the local-directory object store. Objects live at
 * DIR/ab/cd/<key> (fan-out on the key's first four hex digits: the 256
 * DIR/ab are made together, with one fsync of DIR, when the store is first
 * opened (else before the first object is written); a DIR/ab/cd, and its
 * parent fsync'd, the first time an object needs it; a bitmap remembers
 * which exist; new_key reuses a DIR/ab/cd for FANOUT_REUSE keys, so that
 * a young vault does not pay a mkdir and a directory fsync per object).
 *
 * A put (docs/internals/durability.md has the argument):
 *   0. ahead of it, the store's sync thread makes a few empty files
 *      DIR/.pending/<key> under fresh keys and fsyncs DIR/.pending once
 *      for them all ("spares"); new_key hands out the key of one whose
 *      entry is durable;
 *   1. put_begin with such a key takes its file: the pending entry is
 *      already durable, so the file is linked as DIR/ab/cd/<key> at once
 *      (link(2) fails if the key exists, so objects are never replaced)
 *      and the sync thread asked to fsync DIR/ab/cd while the object is
 *      encrypted and written into the file. Any other key (none ready, or
 *      a caller's own) makes DIR/.pending/<key> itself and asks for an
 *      fsync of DIR/.pending; the link then waits for that fsync (made
 *      by the first put_write that finds it done, else by put_commit);
 *   2. put_commit fsyncs the file here while the directory's fsync runs,
 *      and returns once both are done; or put_finish starts the file's
 *      write-back and queues its fsync on the sync thread, so that the
 *      caller indexes the object meanwhile, and put_commit waits for it.
 * So an object visible under its key after a crash always has its pending
 * entry (made durable before the link), until settle, called once the
 * index references the object, unlinks it. After a crash, recover()
 * removes what never committed: pending entries the index does not
 * reference, with their object if it was linked (spares among them, and
 * any DIR/.tmp file of older versions). Every process with the store open
 * holds a shared flock on DIR/.lock; recovery runs only when it can take
 * it exclusively.
 * Layer: backend. */
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
#define FANOUT_REUSE 256   /* keys per DIR/ab/cd before new_key picks another */
#define SPARES 8           /* empty pending entries made ahead (spares_make) */
#define RESERVED 32        /* spares whose key new_key gave, not yet put */

/* An empty DIR/.pending/<key>, made ahead by the sync thread. */
struct spare {
	int fd;
	char key[BLOB_KEY_NEW + 1];
};

/* A directory fsync asked of the sync thread. */
struct sync_job {
	int fd;
	const char *dir;          /* its path: jobs of one directory share a fsync */
	enum err rc;
	int done;                 /* atomic: set (release) once rc is final */
	struct sync_job *next;
};

struct fs_store {
	struct blob_store base;
	char dir[PATH_CAP];
	char tmpdir[PATH_CAP];    /* DIR/.tmp: left by older versions, emptied by recover */
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
	/* new_key's current fan-out prefix and how many keys it has given */
	pthread_mutex_t key_mu;
	char prefix[5];
	unsigned prefix_uses;
	/* the sync thread: directory fsyncs in the background, those queued
	 * together done as one batch (one fsync per distinct descriptor) */
	int pend_fd;              /* DIR/.pending, open */
	/* spares (under sync_mu): made, their entry not yet fsync'd; ready
	 * (entry durable) for new_key; handed out by new_key, waiting for
	 * put_begin with their key (the oldest dropped when full) */
	struct spare unready[SPARES], ready[SPARES], reserved[RESERVED];
	unsigned nunready, nready, nreserved;
	bool want_spares;         /* from the first new_key on */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_work, sync_done;
	struct sync_job *queue;
	bool sync_started, sync_stop;
	pthread_t sync_th;
	/* keys of this process's puts from put_begin until settle or del
	 * (fs_in_flight): a few, as many as stores at once */
	pthread_mutex_t fl_mu;
	struct flight *flights;
};

struct flight {
	struct flight *next;
	char key[BLOB_KEY_MAX + 1];
};

struct blob_writer {
	struct fs_store *s;
	int fd;
	struct sync_job pjob;     /* the fsync of DIR/.pending after our entry */
	bool pjob_sent;
	char tmp[PATH_CAP];       /* DIR/.pending/<key> until committed */
	char final[PATH_CAP];
	char subdir[PATH_CAP];
	/* linked early: at put_begin (a spare's entry is durable), or once
	 * the pending fsync is done, put_write links the final name and
	 * queues the fsync of its directory (djob on dfd), so that it runs
	 * while the rest is written instead of after the last byte; the
	 * index references the name only after put_finish (and recovery
	 * reads such an object back while its pending entry is there) */
	bool linked;
	bool djob_sent;
	int dfd;
	struct sync_job djob;
	/* put_finish: the file's own fsync, run by the sync thread */
	bool finished, fjob_sent;
	struct sync_job fjob;
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

/* A fresh key: 16 random bytes in hex, except that the first four digits
 * (the fan-out directory) are kept for FANOUT_REUSE keys in a row (then
 * drawn again), so that DIR/ab/cd is made once for many objects. */
static enum err key_make(struct fs_store *s, char out[BLOB_KEY_NEW + 1])
{
	static const char hexd[] = "0123456789abcdef";
	uint8_t r[16];
	unsigned i;

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return ERR_IO;
	for (i = 0; i < 16; i++) {
		out[2 * i] = hexd[r[i] >> 4];
		out[2 * i + 1] = hexd[r[i] & 15];
	}
	out[32] = 0;
	pthread_mutex_lock(&s->key_mu);
	if (s->prefix_uses == 0 || s->prefix_uses >= FANOUT_REUSE) {
		memcpy(s->prefix, out, 4);
		s->prefix_uses = 0;
	}
	s->prefix_uses++;
	memcpy(out, s->prefix, 4);
	pthread_mutex_unlock(&s->key_mu);
	return ERR_OK;
}

/* Closes a spare and removes its entry (not fsync'd: an empty pending
 * entry back after a crash is removed by recover). */
static void spare_drop(struct fs_store *s, struct spare *sp)
{
	close(sp->fd);
	(void)unlinkat(s->pend_fd, sp->key, 0);
}

/* Called by the sync thread with sync_mu held: the spares missing, made
 * (empty, in DIR/.pending) and put in unready; the batch's fsync of
 * DIR/.pending makes them ready. On failure, stops making them. */
static void spares_make(struct fs_store *s)
{
	struct spare made[SPARES];
	unsigned n = SPARES - s->nready - s->nunready, k = 0, i;

	pthread_mutex_unlock(&s->sync_mu);
	for (; k < n; k++) {
		if (key_make(s, made[k].key) != ERR_OK)
			break;
		made[k].fd = openat(s->pend_fd, made[k].key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (made[k].fd < 0)
			break;
	}
	pthread_mutex_lock(&s->sync_mu);
	if (k < n)
		s->want_spares = false;
	for (i = 0; i < k; i++) {
		if (s->sync_stop || s->nready + s->nunready >= SPARES)
			spare_drop(s, &made[i]);
		else
			s->unready[s->nunready++] = made[i];
	}
}

/* The file of the spare new_key gave with this key, or -1 (none: the
 * caller makes the pending entry itself). */
static int spare_take(struct fs_store *s, const char *key)
{
	unsigned i;
	int fd = -1;

	pthread_mutex_lock(&s->sync_mu);
	for (i = 0; i < s->nreserved; i++)
		if (strcmp(s->reserved[i].key, key) == 0) {
			fd = s->reserved[i].fd;
			s->reserved[i] = s->reserved[--s->nreserved];
			break;
		}
	pthread_mutex_unlock(&s->sync_mu);
	return fd;
}

static void *sync_main(void *arg)
{
	struct fs_store *s = arg;
	struct sync_job *batch, *j, *k;
	unsigned nmade, i;
	enum err prc;
	bool pend_done;

	pthread_mutex_lock(&s->sync_mu);
	for (;;) {
		while (s->queue == NULL && !s->sync_stop && !(s->want_spares && s->nready + s->nunready < SPARES))
			pthread_cond_wait(&s->sync_work, &s->sync_mu);
		if (s->queue == NULL && s->sync_stop)
			break;
		if (s->want_spares && !s->sync_stop && s->nready + s->nunready < SPARES)
			spares_make(s);
		batch = s->queue;
		s->queue = NULL;
		nmade = s->nunready;   /* made before the fsyncs below begin */
		if (batch == NULL && nmade == 0)
			continue;
		pthread_mutex_unlock(&s->sync_mu);
		/* every job of the batch was queued before these fsyncs began:
		 * one fsync per directory covers them all */
		pend_done = false;
		prc = ERR_OK;
		for (j = batch; j != NULL; j = j->next) {
			for (k = batch; k != j && strcmp(k->dir, j->dir) != 0; k = k->next)
				;
			if (k != j)
				j->rc = k->rc;   /* the same directory, synced just now */
			else
				j->rc = fsync(j->fd) == 0 ? ERR_OK : ERR_IO;
			if (strcmp(j->dir, s->pendir) == 0) {
				pend_done = true;
				prc = j->rc;
			}
		}
		if (nmade > 0 && !pend_done)
			prc = fsync(s->pend_fd) == 0 ? ERR_OK : ERR_IO;
		pthread_mutex_lock(&s->sync_mu);
		for (j = batch; j != NULL; j = k) {
			k = j->next;
			__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
		}
		/* the spares made before that fsync: their entries durable */
		for (i = 0; i < nmade; i++) {
			if (prc == ERR_OK && s->nready < SPARES)
				s->ready[s->nready++] = s->unready[i];
			else
				spare_drop(s, &s->unready[i]);
		}
		memmove(s->unready, s->unready + nmade, (s->nunready - nmade) * sizeof s->unready[0]);
		s->nunready -= nmade;
		if (prc != ERR_OK)
			s->want_spares = false;
		pthread_cond_broadcast(&s->sync_done);
	}
	pthread_mutex_unlock(&s->sync_mu);
	return NULL;
}

/* With sync_mu held: the sync thread running (started on first use). */
static bool sync_start(struct fs_store *s)
{
	if (!s->sync_started && !s->sync_stop)
		s->sync_started = pthread_create(&s->sync_th, NULL, sync_main, s) == 0;
	return s->sync_started;
}

/* Queues an fsync of fd (a directory) for the sync thread, started on
 * first use; without a thread, fsyncs at once. */
static void sync_submit(struct fs_store *s, struct sync_job *j, int fd, const char *dir)
{
	j->fd = fd;
	j->dir = dir;
	j->rc = ERR_IO;
	j->done = 0;
	pthread_mutex_lock(&s->sync_mu);
	if (sync_start(s)) {
		j->next = s->queue;
		s->queue = j;
		pthread_cond_signal(&s->sync_work);
		pthread_mutex_unlock(&s->sync_mu);
		return;
	}
	pthread_mutex_unlock(&s->sync_mu);
	j->rc = fsync(fd) == 0 ? ERR_OK : ERR_IO;
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
}

static enum err sync_wait(struct fs_store *s, struct sync_job *j)
{
	if (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&s->sync_mu);
		while (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&s->sync_done, &s->sync_mu);
		pthread_mutex_unlock(&s->sync_mu);
	}
	return j->rc;
}

/* mkdir that tolerates existing directories and fsyncs the parent, also
 * when the directory existed: a process killed between its mkdir and that
 * fsync left an entry that a power loss may still take, with every object
 * stored under it since (the callers do this once per directory and
 * process). */
static enum err mkdir_durable(const char *path, const char *parent)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return ERR_IO;
	return fsync_dir(parent);
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

/* Makes the 256 DIR/xx (those missing) and fsyncs DIR once: one fsync for
 * all of them instead of one per new directory; also when none was made
 * (mkdir_durable says why). */
static enum err top_dirs(struct fs_store *s)
{
	char p[PATH_CAP];
	unsigned i;

	for (i = 0; i < 256; i++) {
		if (snprintf(p, sizeof p, "%s/%02x", s->dir, i) >= (int)sizeof p)
			return ERR_LIMIT;
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return ERR_IO;
	}
	return fsync_dir(s->dir);
}

/* DIR/xx and DIR/xx/yy of a (valid) key exist and their entries are
 * durable. Made (or, existing, its parent fsync'd) at most once per store
 * handle. */
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
		if (rc != ERR_OK && errno == ENOENT) {
			/* DIR/xx lost (a crash while top_dirs ran, before DIR's fsync) */
			rc = mkdir_durable(sub1, s->dir);
			if (rc == ERR_OK)
				rc = mkdir_durable(sub2, sub1);
		}
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

static bool pending_path(const struct fs_store *s, const char *key, char out[PATH_CAP])
{
	int n = snprintf(out, PATH_CAP, "%s/%s", s->pendir, key);

	return n > 0 && n < PATH_CAP;
}

static void fs_put_abort(struct blob_writer *w);

/* With the pending entry durable: links the final name and queues the
 * fsync of its directory. Sets w->err on failure. */
static void link_now(struct blob_writer *w)
{
	enum err rc = ERR_OK;

	if (link(w->tmp, w->final) != 0)
		rc = errno == EEXIST ? ERR_DENIED : ERR_IO;
	if (rc == ERR_OK) {
		w->linked = true;
		w->dfd = open(w->subdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (w->dfd < 0)
			rc = ERR_IO;
		else {
			sync_submit(w->s, &w->djob, w->dfd, w->subdir);
			w->djob_sent = true;
		}
	}
	if (rc != ERR_OK && w->err == ERR_OK)
		w->err = rc;
}

static void flight_add(struct fs_store *s, const char *key)
{
	struct flight *f = calloc(1, sizeof *f);

	if (f == NULL)
		return;   /* not known to be in flight: a waiter answers from the object alone, as before */
	snprintf(f->key, sizeof f->key, "%s", key);
	pthread_mutex_lock(&s->fl_mu);
	f->next = s->flights;
	s->flights = f;
	pthread_mutex_unlock(&s->fl_mu);
}

static void flight_end(struct fs_store *s, const char *key)
{
	struct flight **pp, *f;

	pthread_mutex_lock(&s->fl_mu);
	for (pp = &s->flights; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0) {
			f = *pp;
			*pp = f->next;
			free(f);
			break;
		}
	pthread_mutex_unlock(&s->fl_mu);
}

static enum err fs_put_begin(struct blob_store *bs, const char *key, struct blob_writer **out)
{
	struct fs_store *s = (struct fs_store *)bs;
	struct blob_writer *w;
	char sub1[PATH_CAP];
	enum err rc = ERR_INTERNAL;

	if (!blob_key_valid(key))
		return ERR_PARSE;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return ERR_NOMEM;
	w->s = s;
	w->fd = -1;
	w->dfd = -1;
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
	if (!pending_path(s, key, w->tmp)) {
		rc = ERR_LIMIT;
		goto out;
	}
	w->fd = spare_take(s, key);
	if (w->fd >= 0) {
		/* a spare: its entry is durable already, the name can be made */
		link_now(w);
		if (w->err != ERR_OK) {
			rc = w->err;
			fs_put_abort(w);
			return rc;
		}
		flight_add(s, key);
		*out = w;
		return ERR_OK;
	}
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = errno == EEXIST ? ERR_DENIED : ERR_IO;
		w->tmp[0] = 0;
		goto out;
	}
	/* the entry made durable while the caller writes */
	sync_submit(s, &w->pjob, s->pend_fd, s->pendir);
	w->pjob_sent = true;
	flight_add(s, key);
	*out = w;
	w = NULL;
	rc = ERR_OK;
out:
	free(w);
	return rc;
}

/* The pending entry is durable (its fsync done): the final name may be
 * made (I1 of docs/internals/durability.md) and its directory's fsync
 * queued. Called by put_write without waiting, or by put_commit. Sets
 * w->err on failure. */
static void link_early(struct blob_writer *w)
{
	enum err rc = sync_wait(w->s, &w->pjob);

	w->pjob_sent = false;
	if (rc == ERR_OK)
		link_now(w);
	else if (w->err == ERR_OK)
		w->err = rc;
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
	if (!w->linked && w->pjob_sent && __atomic_load_n(&w->pjob.done, __ATOMIC_ACQUIRE))
		link_early(w);
	return ERR_OK;
}

static void fs_put_abort(struct blob_writer *w)
{
	if (w == NULL)
		return;
	if (w->pjob_sent)
		(void)sync_wait(w->s, &w->pjob);   /* the jobs live in w */
	if (w->djob_sent)
		(void)sync_wait(w->s, &w->djob);
	if (w->fjob_sent)
		(void)sync_wait(w->s, &w->fjob);
	if (w->fd >= 0)
		close(w->fd);
	if (w->linked) {
		/* the final name goes first and durably: the pending entry
		 * (durable) tells recovery about it until then */
		unlink(w->final);
		(void)fsync_dir(w->subdir);
	}
	if (w->dfd >= 0)
		close(w->dfd);
	if (w->tmp[0])
		unlink(w->tmp);
	free(w);
}

/* The object complete: its name linked (waiting for the pending entry's
 * fsync if need be), its data's write-back started now, and its fsync
 * queued on the sync thread, so that it runs while the caller indexes the
 * object; put_commit waits for it. Returns once the name is durable: the
 * caller may then write a durable record naming the key (a store's audit
 * record), and a crash after it leaves a name that recovery finds, even
 * if the data was lost and the pending entry is empty as a spare's is.
 * With a spare the name was linked at put_begin, so its fsync is done. */
static enum err fs_put_finish(struct blob_writer *w)
{
	enum err rc;

	if (w->err == ERR_OK && !w->linked)
		link_early(w);
	if (w->err != ERR_OK)
		return w->err;
	w->finished = true;
	(void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);   /* a hint: the fsync makes it durable */
	sync_submit(w->s, &w->fjob, w->fd, w->final);
	w->fjob_sent = true;
	if (w->djob_sent) {
		rc = sync_wait(w->s, &w->djob);
		w->djob_sent = false;
		if (rc != ERR_OK) {
			w->err = rc;
			return rc;
		}
	}
	return ERR_OK;
}

static enum err fs_put_commit(struct blob_writer *w)
{
	enum err rc, r2;

	/* the pending entry durable before the object's own can be: link
	 * now unless put_write did (and its directory's fsync queued) */
	if (!w->linked && w->err == ERR_OK)
		link_early(w);
	rc = w->err;
	/* the data synced here (or by the sync thread after put_finish)
	 * while the sync thread syncs the directory */
	if (w->fjob_sent) {
		r2 = sync_wait(w->s, &w->fjob);
		w->fjob_sent = false;
		if (r2 != ERR_OK && rc == ERR_OK)
			rc = r2;
	} else if (rc == ERR_OK && fsync(w->fd) != 0) {
		rc = ERR_IO;
	}
	if (w->djob_sent) {
		r2 = sync_wait(w->s, &w->djob);
		w->djob_sent = false;
		if (r2 != ERR_OK && rc == ERR_OK)
			rc = r2;
	}
	if (close(w->fd) != 0 && rc == ERR_OK)
		rc = ERR_IO;
	w->fd = -1;
	if (rc == ERR_OK) {
		w->linked = false;  /* kept */
		w->tmp[0] = 0;      /* the pending entry stays until settle */
	} else if (w->finished) {
		w->tmp[0] = 0;      /* the name goes; the entry stays, for settle or recover */
	}
	fs_put_abort(w);            /* on failure: unlinks the name (and the entry) */
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
	flight_end(s, key);
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
	flight_end(s, key);
}

static bool fs_in_flight(struct blob_store *bs, const char *key)
{
	struct fs_store *s = (struct fs_store *)bs;
	struct flight *f;
	bool yes = false;

	pthread_mutex_lock(&s->fl_mu);
	for (f = s->flights; f != NULL && !yes; f = f->next)
		yes = strcmp(f->key, key) == 0;
	pthread_mutex_unlock(&s->fl_mu);
	return yes;
}

static enum err fs_make_durable(struct blob_store *bs, const char *key)
{
	struct fs_store *s = (struct fs_store *)bs;
	char sub1[PATH_CAP], sub2[PATH_CAP], final[PATH_CAP], p[PATH_CAP];
	enum err rc;
	int fd;

	if (!blob_key_valid(key))
		return ERR_PARSE;
	if (!pending_path(s, key, p) || access(p, F_OK) != 0)
		return ERR_OK;   /* settled: durable */
	rc = paths(s, key, sub1, sub2, final);
	if (rc != ERR_OK)
		return rc;
	fd = open(final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	rc = fsync(fd) == 0 ? ERR_OK : ERR_IO;
	close(fd);
	return rc == ERR_OK ? fsync_dir(sub2) : rc;
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
			*removed += strncmp(e->d_name, "spare.", 6) != 0;   /* spare_make's: empty */
		else if (errno != ENOENT)
			rc = ERR_IO;
	}
	closedir(d);
	return rc;
}

static enum err fs_recover(struct blob_store *bs,
                           enum err (*keep)(void *ctx, const char *key, bool written, bool *yes),
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
			/* the entry is the object's file, or its start (a spare
			 * or a write that began is empty). Written: it holds
			 * bytes, or its name was linked (the data of a finished
			 * put may have been lost with the crash, but not its
			 * name: put_finish waits for it). A spare never handed
			 * to put_begin has no name; one taken by put_begin is
			 * linked at once, so a crash before its put_finish also
			 * counts as written: its removal gets a failure record
			 * that no success record needed (noise, never a loss) */
			struct stat st;
			bool named = paths(s, e->d_name, sub1, sub2, final) == ERR_OK &&
			             fstatat(AT_FDCWD, final, &st, AT_SYMLINK_NOFOLLOW) == 0;
			bool written = named || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			               st.st_size > 0;
			rc = keep(ctx, e->d_name, written, &yes);
			if (rc != ERR_OK)
				break;
			if (!yes && paths(s, e->d_name, sub1, sub2, final) == ERR_OK) {
				if (unlink(final) == 0) {
					(*removed)++;
					log_warn("object store: removed object %s after a crash (never indexed, or incomplete)",
					         e->d_name);
					rc = fsync_dir(sub2);
				} else if (errno == ENOENT) {
					/* a write cut short, or a spare (empty, never
					 * linked: not counted) */
					if (written)
						(*removed)++;
				} else {
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
	pthread_mutex_lock(&s->sync_mu);
	s->sync_stop = true;
	pthread_cond_signal(&s->sync_work);
	pthread_mutex_unlock(&s->sync_mu);
	if (s->sync_started)
		pthread_join(s->sync_th, NULL);   /* after the queue is drained */
	while (s->nready > 0)
		spare_drop(s, &s->ready[--s->nready]);
	while (s->nunready > 0)
		spare_drop(s, &s->unready[--s->nunready]);
	while (s->nreserved > 0)
		spare_drop(s, &s->reserved[--s->nreserved]);
	if (s->pend_fd >= 0)
		close(s->pend_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);   /* releases the lock */
	pthread_mutex_destroy(&s->dir_mu);
	pthread_mutex_destroy(&s->key_mu);
	pthread_mutex_destroy(&s->sync_mu);
	pthread_mutex_destroy(&s->fl_mu);
	while (s->flights != NULL) {
		struct flight *f = s->flights;
		s->flights = f->next;
		free(f);
	}
	pthread_cond_destroy(&s->sync_work);
	pthread_cond_destroy(&s->sync_done);
	free(bs);
}

/* A fresh key (key_make): that of a spare whose pending entry is durable
 * when one is ready (put_begin then takes its file), else a new one. */
static enum err fs_new_key(struct blob_store *bs, char out[BLOB_KEY_NEW + 1])
{
	struct fs_store *s = (struct fs_store *)bs;
	struct spare sp;

	pthread_mutex_lock(&s->sync_mu);
	if (!s->want_spares && !s->sync_stop && sync_start(s))
		s->want_spares = true;   /* from the first key on */
	if (s->nready > 0) {
		sp = s->ready[--s->nready];
		if (s->nreserved == RESERVED) {
			/* a key given and never put: its spare goes */
			spare_drop(s, &s->reserved[0]);
			memmove(s->reserved, s->reserved + 1, (RESERVED - 1) * sizeof s->reserved[0]);
			s->nreserved--;
		}
		s->reserved[s->nreserved++] = sp;
		memcpy(out, sp.key, sizeof sp.key);
		pthread_cond_signal(&s->sync_work);   /* make another */
		pthread_mutex_unlock(&s->sync_mu);
		return ERR_OK;
	}
	if (s->want_spares)
		pthread_cond_signal(&s->sync_work);
	pthread_mutex_unlock(&s->sync_mu);
	return key_make(s, out);
}

static const struct blob_ops fs_ops = {
	"fs", fs_put_begin, fs_put_write, fs_put_finish, fs_put_commit, fs_put_abort, fs_get, fs_del, fs_list, fs_close,
	fs_settle, fs_recover, fs_new_key, fs_in_flight, fs_make_durable,
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
	s->pend_fd = -1;
	pthread_mutex_init(&s->dir_mu, NULL);
	pthread_mutex_init(&s->key_mu, NULL);
	pthread_mutex_init(&s->sync_mu, NULL);
	pthread_mutex_init(&s->fl_mu, NULL);
	pthread_cond_init(&s->sync_work, NULL);
	pthread_cond_init(&s->sync_done, NULL);
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	snprintf(s->tmpdir, sizeof s->tmpdir, "%s/.tmp", dir);
	snprintf(s->pendir, sizeof s->pendir, "%s/.pending", dir);
	snprintf(lock, sizeof lock, "%s/.lock", dir);
	if (mkdir_durable(s->tmpdir, dir) != ERR_OK || mkdir_durable(s->pendir, dir) != ERR_OK)
		goto fail;
	s->pend_fd = open(s->pendir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->pend_fd < 0)
		goto fail;
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0 || flock_retry(s->lock_fd, LOCK_SH) != 0)
		goto fail;
	/* the 256 DIR/xx now (at init, in practice) rather than in the first
	 * store: DIR/ff, made last, says they all exist */
	if (snprintf(lock, sizeof lock, "%s/ff", dir) < (int)sizeof lock && stat(lock, &st) == 0 && S_ISDIR(st.st_mode))
		s->top_made = true;
	else if (top_dirs(s) == ERR_OK)
		s->top_made = true;
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
