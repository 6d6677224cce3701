/* spool.c: a received data set waiting to be stored (spool.h). In memory
 * up to SPOOL_MEM_MAX (no inode, no write, no decrypting re-read: most of
 * the CPU of a C-STORE or STOW part before this), else spilled to an
 * unnamed file (O_TMPFILE, or a name unlinked at once) encrypted under a
 * random key of its own, so that nothing readable reaches the disk. Its
 * SHA-256 is computed as the bytes arrive (store_instance_hashed then
 * does not read them for it: the receive, waiting on the sender, has the
 * time). The
 * memory is wiped when the spool is freed (then kept for the next spool, up
 * to SPOOL_CACHE buffers) and kept out of core dumps.
 * Layer: core. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/crypto.h"
#include "dicomvault/spool.h"

struct spool {
	uint8_t *mem;             /* SPOOL_MEM_MAX bytes (mmap), NULL once spilled */
	size_t len;               /* bytes in mem */
	uint64_t size;            /* bytes written in all */
	int fd;                   /* the file once spilled, else -1 */
	struct secret *key;
	struct aead_enc *enc;
	struct sink fdsink;
	struct sha256 *h;         /* of every byte written, until finish */
	uint8_t sha[32];
	struct src_mem msrc;      /* the source over mem */
	struct src fsrc;          /* the file, while a source is open */
	bool fsrc_open;
	bool finished;
	char dir[4096];
	char label[32];
};

/* Buffers of spools freed, wiped, kept for the next ones (no mmap, no page
 * faults per data set): at most SPOOL_CACHE, that is 8 MiB once touched. */
#define SPOOL_CACHE 8
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *cache[SPOOL_CACHE];
static unsigned ncache;

static uint8_t *mem_get(void)
{
	uint8_t *m = NULL;

	pthread_mutex_lock(&cache_mu);
	if (ncache > 0)
		m = cache[--ncache];
	pthread_mutex_unlock(&cache_mu);
	if (m != NULL)
		return m;
	m = mmap(NULL, SPOOL_MEM_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	(void)madvise(m, SPOOL_MEM_MAX, MADV_DONTDUMP);
	return m;
}

/* m wiped already */
static void mem_put(uint8_t *m)
{
	pthread_mutex_lock(&cache_mu);
	if (ncache < SPOOL_CACHE) {
		cache[ncache++] = m;
		m = NULL;
	}
	pthread_mutex_unlock(&cache_mu);
	if (m != NULL)
		munmap(m, SPOOL_MEM_MAX);
}

static int tmp_open(const char *dir)
{
	char path[4096 + 16];
	int fd;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (snprintf(path, sizeof path, "%s/ds.XXXXXX", dir) >= (int)sizeof path)
		return -1;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

enum err spool_new(struct spool **out, const char *dir, const char *label)
{
	struct spool *s;

	if (strlen(dir) >= sizeof s->dir || strlen(label) >= sizeof s->label)
		return ERR_LIMIT;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return ERR_NOMEM;
	s->fd = -1;
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	snprintf(s->label, sizeof s->label, "%s", label);
	s->mem = mem_get();
	if (s->mem == NULL) {
		free(s);
		return ERR_NOMEM;
	}
	if (sha256_new(&s->h) != ERR_OK) {
		mem_put(s->mem);
		free(s);
		return ERR_NOMEM;
	}
	*out = s;
	return ERR_OK;
}

static void mem_drop(struct spool *s)
{
	if (s->mem == NULL)
		return;
	mem_wipe(s->mem, s->len);
	mem_put(s->mem);
	s->mem = NULL;
	s->len = 0;
}

/* From memory to the encrypted file: what was kept, then the rest. */
static enum err spill(struct spool *s)
{
	enum err rc;

	s->fd = tmp_open(s->dir);
	if (s->fd < 0)
		return ERR_IO;
	sink_fd(&s->fdsink, &s->fd);
	rc = secret_random(32, &s->key);
	if (rc == ERR_OK)
		rc = aead_enc_open(&s->enc, s->key, s->label, strlen(s->label), &s->fdsink);
	if (rc == ERR_OK && s->len > 0)
		rc = aead_enc_write(s->enc, s->mem, s->len);
	mem_drop(s);
	return rc;
}

enum err spool_write(struct spool *s, const void *p, size_t n)
{
	enum err rc;

	if (s->finished)
		return ERR_INTERNAL;
	if (n == 0)
		return ERR_OK;
	/* hashed as it arrives (while the sender sends the next fragment),
	 * not later in the store */
	sha256_update(s->h, p, n);
	if (s->mem != NULL && n <= SPOOL_MEM_MAX - s->len) {
		memcpy(s->mem + s->len, p, n);
		s->len += n;
		s->size += n;
		return ERR_OK;
	}
	if (s->mem != NULL) {
		rc = spill(s);
		if (rc != ERR_OK)
			return rc;
	}
	if (s->enc == NULL)
		return ERR_IO;
	rc = aead_enc_write(s->enc, p, n);
	if (rc == ERR_OK)
		s->size += n;
	return rc;
}

static enum err spool_sink_write(void *ctx, const void *p, size_t n)
{
	return spool_write(ctx, p, n);
}

void sink_spool(struct sink *k, struct spool *s)
{
	k->write = spool_sink_write;
	k->ctx = s;
}

enum err spool_finish(struct spool *s)
{
	enum err rc = ERR_OK;

	if (s->finished)
		return ERR_OK;
	s->finished = true;
	sha256_final(s->h, s->sha);
	s->h = NULL;
	if (s->enc != NULL) {
		rc = aead_enc_close(s->enc);
		aead_enc_free(s->enc);
		s->enc = NULL;
	} else if (s->mem == NULL) {
		rc = ERR_IO;
	}
	return rc;
}

bool spool_peek(const struct spool *s, const uint8_t **p, size_t *n)
{
	if (s->mem == NULL)
		return false;
	*p = s->mem;
	*n = s->len;
	return true;
}

uint64_t spool_size(const struct spool *s)
{
	return s->size;
}

const uint8_t *spool_sha256(const struct spool *s)
{
	return s->finished ? s->sha : NULL;
}

static void fsrc_done(void *ctx)
{
	struct spool *s = ctx;

	if (s->fsrc_open)
		src_close(&s->fsrc);
	s->fsrc_open = false;
}

enum err spool_src(struct spool *s, struct src *out)
{
	char path[64];
	struct aead_dec *dec = NULL;
	enum err rc;

	memset(out, 0, sizeof *out);
	if (!s->finished)
		return ERR_INTERNAL;
	if (s->mem != NULL) {
		src_mem_init(out, &s->msrc, s->mem, s->len);
		return ERR_OK;
	}
	fsrc_done(s);   /* the previous source's file (the caller closed it) */
	snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
	rc = src_file_open(&s->fsrc, path);
	if (rc != ERR_OK)
		return rc;
	s->fsrc_open = true;
	rc = aead_dec_open(&dec, s->key, s->label, strlen(s->label), &s->fsrc);
	if (rc == ERR_OK) {
		aead_dec_src(dec, out);
		if (out->read_at == NULL) {
			src_close(out);
			rc = ERR_AUTH;
		}
	}
	if (rc != ERR_OK)
		fsrc_done(s);
	return rc;
}

void spool_free(struct spool *s)
{
	if (s == NULL)
		return;
	fsrc_done(s);
	sha256_free(s->h);
	aead_enc_free(s->enc);
	secret_free(s->key);
	mem_drop(s);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
