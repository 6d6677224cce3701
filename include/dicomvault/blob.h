/* blob.h: object storage seen by core/ only through struct blob_ops (STYLE
 * section 1). A blob holds ciphertext; a key is 16-64 lower-case hex digits.
 * A committed put is durable (file and directory fsync'd) and atomic: the
 * object is either complete or absent after a crash. Objects are immutable:
 * putting an existing key fails with ERR_DENIED. Layer: backend. */
#ifndef DICOMVAULT_BLOB_H
#define DICOMVAULT_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/io.h"

#define BLOB_KEY_MIN 16
#define BLOB_KEY_MAX 64
#define BLOB_KEY_NEW 32   /* the length of a new_key key */

struct blob_store;
struct blob_writer;

struct blob_ops {
	const char *name;
	/* Start writing a new object. Nothing is durable or complete until
	 * commit; the fs backend may link the key's name during the writes
	 * (so get and list could find a partial object), which no reader
	 * sees: keys are random (new_key) and reach readers only through
	 * the index, which references a key once its put has committed. */
	enum err (*put_begin)(struct blob_store *s, const char *key, struct blob_writer **w);
	enum err (*put_write)(struct blob_writer *w, const void *p, size_t n);
	/* Optional, after the last put_write: the object is complete; its
	 * durability may be made in the background while the caller goes on
	 * (put_commit then waits for it). After it, a put_commit that fails
	 * leaves the key pending (as a committed put) for settle or
	 * recover() to end: the caller may have indexed the key meanwhile.
	 * On success, a crash from then on makes recover() call keep() for
	 * the key with written true, even if the data was lost: a durable
	 * record naming the key may be written after it. */
	enum err (*put_finish)(struct blob_writer *w);
	/* Durable and visible on success; w is freed either way. */
	enum err (*put_commit)(struct blob_writer *w);
	/* Discard; w is freed. Takes NULL. */
	void (*put_abort)(struct blob_writer *w);
	/* A source over the object's bytes; src_close() releases it. */
	enum err (*get)(struct blob_store *s, const char *key, struct src *out);
	enum err (*del)(struct blob_store *s, const char *key);
	/* Calls fn for every committed key, and possibly keys of puts in
	 * progress (order unspecified); stops on error. */
	enum err (*list)(struct blob_store *s, enum err (*fn)(void *ctx, const char *key), void *ctx);
	void (*close)(struct blob_store *s);
	/* Crash recovery. A committed object stays "pending" until settle()
	 * (called once the index references it and it is durable);
	 * recover() removes temporary files of writes that never committed
	 * and every pending object for which keep() says no (never indexed,
	 * or indexed before its put_commit and found incomplete: the caller
	 * removed its rows). recover() does nothing while another process has
	 * the store open (its writes may be in flight); *removed counts the
	 * files removed. keep() learns whether the object was written
	 * (bytes, or a put_finish: not a spare or a write that never
	 * began). */
	void (*settle)(struct blob_store *s, const char *key);
	enum err (*recover)(struct blob_store *s,
	                    enum err (*keep)(void *ctx, const char *key, bool written, bool *yes),
	                    void *ctx, unsigned *removed);
	/* A fresh, unpredictable key for a new object (the store may choose
	 * part of it to place objects well). */
	enum err (*new_key)(struct blob_store *s, char out[BLOB_KEY_NEW + 1]);
	/* A put of key by this process has begun and not yet been settled or
	 * deleted: its store has not ended, so its object may not be durable
	 * yet, and its rows may still go. */
	bool (*in_flight)(struct blob_store *s, const char *key);
	/* The object under key durable: when its pending entry is there (an
	 * object of another process's store, or one a crash left unsettled),
	 * its file and directory are fsync'd; else nothing to do. */
	enum err (*make_durable)(struct blob_store *s, const char *key);
};

struct blob_store {
	const struct blob_ops *ops;
};

/* True for a well-formed key (the only thing that ever becomes a path). */
bool blob_key_valid(const char *key);

/* Local directory store rooted at dir (created 0700 if missing). The
 * process holds a shared lock on dir/.lock while the store is open. */
WUR enum err blob_fs_open(const char *dir, struct blob_store **out);

/* A sink writing into a blob writer; c is the caller's storage. */
struct blob_sink_ctx {
	struct blob_store *s;
	struct blob_writer *w;
};
void blob_sink(struct sink *k, struct blob_sink_ctx *c, struct blob_store *s, struct blob_writer *w);

#endif
