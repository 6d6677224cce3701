/* spool.h: a data set received before it is stored (a C-STORE's P-DATA,
 * a STOW-RS part): kept in memory up to SPOOL_MEM_MAX bytes, beyond that
 * in an unnamed temporary file encrypted under a key of its own. Read back
 * as a random-access plaintext source, as often as needed. Layer: core. */
#ifndef DICOMVAULT_SPOOL_H
#define DICOMVAULT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/io.h"

/* 1 MiB: a CT or MR slice, most single-frame objects; larger go to disk */
#define SPOOL_MEM_MAX (1u << 20)

struct spool;

/* A new, empty spool; a file, if one is needed, goes in dir (made if
 * missing); label is bound into the file's encryption. */
WUR enum err spool_new(struct spool **out, const char *dir, const char *label);
WUR enum err spool_write(struct spool *s, const void *p, size_t n);
/* A sink that writes to s (spool_write). */
void sink_spool(struct sink *k, struct spool *s);
/* No more writes. */
WUR enum err spool_finish(struct spool *s);
/* The bytes written so far while they are all in memory (true), for a
 * look at a data set's head before its end has arrived; false once
 * spilled to the file. */
bool spool_peek(const struct spool *s, const uint8_t **p, size_t *n);
/* Bytes written so far. */
uint64_t spool_size(const struct spool *s);
/* After spool_finish: the SHA-256 of every byte written (NULL before). */
const uint8_t *spool_sha256(const struct spool *s);
/* After spool_finish: a plaintext source (read_at, size) over it; release
 * it with src_close before the next spool_src or spool_free. */
WUR enum err spool_src(struct spool *s, struct src *out);
/* Wipes the memory, closes the file (it has no name: nothing is left). */
void spool_free(struct spool *s);

#endif
