/* aead.c: chunked streaming AEAD for objects at rest (SPEC section 6).
 *
 * An object is a 44-byte header ("DVOB", version, algorithm, chunk size,
 * random 32-byte salt) followed by chunks of `chunk` plaintext bytes, each
 * followed by its 16-byte tag; the last chunk is shorter than `chunk`
 * (possibly empty) and is the only one sealed with the last flag. The key
 * of the object is HKDF-SHA-256(data key, salt, "dicomvault object v1");
 * the nonce of chunk i is u64be(i) || u32be(last); the associated data of
 * every chunk is the header followed by the caller's object identity.
 * Plaintext leaves the decryptor only after its chunk's tag verified.
 * Byte layouts and reasons: docs/internals/crypto.md. Layer: crypto. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"

#define MAGIC "DVOB"
#define VERSION 1u
#define SALT_LEN 32u
#define NONCE_LEN 12u
#define INFO "dicomvault object v1"

_Static_assert(AEAD_TAG_LEN == crypto_aead_aes256gcm_ABYTES, "GCM tag");
_Static_assert(AEAD_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "Poly1305 tag");
_Static_assert(NONCE_LEN == crypto_aead_aes256gcm_NPUBBYTES, "GCM nonce");
_Static_assert(NONCE_LEN <= crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "XChaCha nonce");
_Static_assert(AEAD_KEY_LEN == crypto_aead_aes256gcm_KEYBYTES, "GCM key");
_Static_assert(AEAD_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "XChaCha key");
_Static_assert(AEAD_HEADER_LEN == 4 + 2 + 1 + 1 + 4 + SALT_LEN, "header layout");
_Static_assert(CRYPTO_AEAD_CHUNK_MAX <= UINT32_MAX - AEAD_TAG_LEN, "chunk size");

/* The per-object cipher. AES-256-GCM runs through GnuTLS (its AES-NI +
 * PCLMUL/AVX code is 1.4-1.8x libsodium's on the CPUs we measured): the
 * key schedule lives in GnuTLS's heap, zeroed by gnutls_aead_cipher_deinit
 * (docs/internals/crypto.md, "Where the keys live"). XChaCha20-Poly1305 is
 * libsodium's, with the object key in guarded memory. */
struct cipher {
	enum aead_alg alg;
	gnutls_aead_cipher_hd_t gcm;   /* AES-256-GCM */
	struct secret *k;              /* XChaCha20-Poly1305 */
};

static void cipher_fini(struct cipher *c)
{
	if (c->gcm != NULL)
		gnutls_aead_cipher_deinit(c->gcm);
	c->gcm = NULL;
	secret_free(c->k);
	c->k = NULL;
}

/* AES-256-GCM (SPEC section 6) on every CPU, through GnuTLS: with AES-NI
 * and PCLMUL (x86-64) or the ARMv8 crypto extensions its code is fast and
 * constant-time; without them nettle's table-based code runs, slower and
 * not constant-time (aead_gcm_hw says which; serve warns).
 * XChaCha20-Poly1305 objects (sealed so by older versions) are opened
 * too. Whether alg is one of the two. */
static bool alg_known(enum aead_alg alg)
{
	return alg == AEAD_ALG_AES256GCM || alg == AEAD_ALG_XCHACHA20POLY1305;
}

bool aead_gcm_hw(void)
{
#if defined(__x86_64__) || defined(__i386__)
	/* libsodium's CPU check answers 0 before sodium_init */
	return crypto_init() == ERR_OK && crypto_aead_aes256gcm_is_available() != 0;
#elif defined(__aarch64__) && defined(__linux__)
	unsigned long hw = getauxval(AT_HWCAP);
	return (hw & HWCAP_AES) != 0 && (hw & HWCAP_PMULL) != 0;
#else
	return false;
#endif
}

static enum err cipher_init(struct cipher *c, enum aead_alg alg, const struct secret *data_key,
                            const uint8_t salt[SALT_LEN])
{
	uint8_t okm[AEAD_KEY_LEN];
	struct secret *k = NULL;
	enum err rc = ERR_INTERNAL;

	if (secret_len(data_key) != AEAD_KEY_LEN)
		goto out;
	rc = ERR_UNSUPPORTED;
	if (!alg_known(alg))
		goto out;
	if (alg == AEAD_ALG_AES256GCM) {
		/* the object key on the stack for the moment GnuTLS takes to
		 * expand it into its schedule (which it copies), then wiped */
		gnutls_datum_t kd = { okm, AEAD_KEY_LEN };

		rc = kdf_hkdf_sha256(data_key, salt, SALT_LEN, INFO, sizeof INFO - 1, okm, AEAD_KEY_LEN);
		if (rc != ERR_OK)
			goto out;
		rc = ERR_INTERNAL;
		if (gnutls_aead_cipher_init(&c->gcm, GNUTLS_CIPHER_AES_256_GCM, &kd) < 0) {
			c->gcm = NULL;
			goto out;
		}
	} else {
		/* libsodium takes the raw key on every chunk: guarded memory */
		rc = secret_new(AEAD_KEY_LEN, &k);
		if (rc != ERR_OK)
			goto out;
		rc = kdf_hkdf_sha256(data_key, salt, SALT_LEN, INFO, sizeof INFO - 1, secret_mut(k), AEAD_KEY_LEN);
		if (rc != ERR_OK)
			goto out;
		secret_seal(k);
		c->k = k;
		k = NULL;
	}
	c->alg = alg;
	rc = ERR_OK;
out:
	mem_wipe(okm, sizeof okm);
	secret_free(k);
	return rc;
}

static void make_nonce(uint8_t n[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], uint64_t idx, bool last)
{
	unsigned i;

	memset(n, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	for (i = 0; i < 8; i++)
		n[i] = (uint8_t)(idx >> (56 - 8 * i));
	n[11] = last ? 1 : 0;
}

/* ct receives n bytes of ciphertext and the tag. */
static enum err chunk_seal(const struct cipher *c, uint64_t idx, bool last, const uint8_t *ad, size_t adlen,
                           const uint8_t *pt, size_t n, uint8_t *ct)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	int r;

	make_nonce(nonce, idx, last);
	if (c->alg == AEAD_ALG_AES256GCM) {
		size_t ctlen = n + AEAD_TAG_LEN;   /* ciphertext then tag, as our layout */

		r = gnutls_aead_cipher_encrypt(c->gcm, nonce, NONCE_LEN, ad, adlen, AEAD_TAG_LEN, pt, n, ct, &ctlen);
		if (r == 0 && ctlen != n + AEAD_TAG_LEN)
			r = -1;
	} else
		r = crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, ct + n, NULL, pt, n, ad, adlen, NULL,
			nonce, secret_view(c->k));
	return r == 0 ? ERR_OK : ERR_INTERNAL;
}

/* ct holds n bytes of ciphertext and the tag; pt receives n bytes, which
 * are garbage (wiped here) when the tag does not verify. */
static enum err chunk_open(const struct cipher *c, uint64_t idx, bool last, const uint8_t *ad, size_t adlen,
                           const uint8_t *ct, size_t n, uint8_t *pt)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	int r;

	make_nonce(nonce, idx, last);
	if (c->alg == AEAD_ALG_AES256GCM) {
		size_t ptlen = n;

		r = gnutls_aead_cipher_decrypt(c->gcm, nonce, NONCE_LEN, ad, adlen, AEAD_TAG_LEN, ct, n + AEAD_TAG_LEN,
		                               pt, &ptlen);
		if (r == 0 && ptlen != n)
			r = -1;
	} else
		r = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(pt, NULL, ct, n, ct + n, ad, adlen,
			nonce, secret_view(c->k));
	if (r != 0) {
		mem_wipe(pt, n);
		return ERR_AUTH;
	}
	return ERR_OK;
}

static enum err chunk_size(uint32_t want, uint32_t *chunk)
{
	if (want == 0)
		want = CRYPTO_AEAD_CHUNK_DEFAULT;
	if (want < CRYPTO_AEAD_CHUNK_MIN || want > CRYPTO_AEAD_CHUNK_MAX)
		return ERR_LIMIT;
	*chunk = want;
	return ERR_OK;
}

enum err aead_ct_size(uint64_t ptlen, uint32_t chunk, uint64_t *ctlen)
{
	uint64_t tags, n;
	enum err rc;

	rc = chunk_size(chunk, &chunk);
	if (rc != ERR_OK)
		return rc;
	tags = ptlen / chunk + 1;
	if (tags > (UINT64_MAX - AEAD_HEADER_LEN) / AEAD_TAG_LEN)
		return ERR_LIMIT;
	n = AEAD_HEADER_LEN + tags * AEAD_TAG_LEN;
	if (ptlen > UINT64_MAX - n)
		return ERR_LIMIT;
	*ctlen = n + ptlen;
	return ERR_OK;
}

/* Header || caller's ad, the associated data of every chunk. */
static enum err ad_make(const uint8_t hdr[AEAD_HEADER_LEN], const void *ad, size_t adlen,
                        uint8_t **out, size_t *outlen)
{
	uint8_t *p;

	if (adlen > CRYPTO_AEAD_AD_MAX)
		return ERR_LIMIT;
	p = malloc(AEAD_HEADER_LEN + adlen);
	if (p == NULL)
		return ERR_NOMEM;
	memcpy(p, hdr, AEAD_HEADER_LEN);
	if (adlen > 0)
		memcpy(p + AEAD_HEADER_LEN, ad, adlen);
	*out = p;
	*outlen = AEAD_HEADER_LEN + adlen;
	return ERR_OK;
}

void aead_ad_put(struct wbuf *w, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		if (w->err == ERR_OK)
			w->err = ERR_LIMIT;
		return;
	}
	wbuf_put_u32be(w, (uint32_t)n);
	wbuf_put(w, p, n);
}

/* ---- encryption ---- */

struct aead_enc {
	struct sink *out;
	struct cipher c;
	uint32_t chunk;
	uint64_t idx;        /* of the next chunk */
	uint8_t *ad;
	size_t adlen;
	uint8_t *pt;         /* buffered plaintext, fewer than chunk bytes */
	size_t ptlen;
	uint8_t *ct;         /* chunk + tag */
	enum err err;        /* sticky */
	bool closed;
};

enum err aead_enc_open(struct aead_enc **e, const struct secret *data_key,
                       const void *ad, size_t adlen, struct sink *out)
{
	return aead_enc_open_opts(e, data_key, ad, adlen, out, NULL);
}

enum err aead_enc_open_opts(struct aead_enc **e, const struct secret *data_key,
                            const void *ad, size_t adlen, struct sink *out,
                            const struct aead_opts *o)
{
	uint8_t hdr[AEAD_HEADER_LEN];
	struct aead_enc *x = NULL;
	enum aead_alg alg = o ? o->alg : AEAD_ALG_AUTO;
	uint32_t chunk;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = chunk_size(o ? o->chunk : 0, &chunk);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_INTERNAL;
	if (alg == AEAD_ALG_AUTO)
		alg = AEAD_ALG_AES256GCM;
	else if (!alg_known(alg))
		goto out;
	rc = ERR_NOMEM;
	x = calloc(1, sizeof *x);
	if (x == NULL)
		goto out;
	memcpy(hdr, MAGIC, 4);
	hdr[4] = (uint8_t)(VERSION >> 8);
	hdr[5] = (uint8_t)VERSION;
	hdr[6] = (uint8_t)alg;
	hdr[7] = 0;
	hdr[8] = (uint8_t)(chunk >> 24);
	hdr[9] = (uint8_t)(chunk >> 16);
	hdr[10] = (uint8_t)(chunk >> 8);
	hdr[11] = (uint8_t)chunk;
	randombytes_buf(hdr + 12, SALT_LEN);
	rc = cipher_init(&x->c, alg, data_key, hdr + 12);
	if (rc != ERR_OK)
		goto out;
	rc = ad_make(hdr, ad, adlen, &x->ad, &x->adlen);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_NOMEM;
	x->pt = malloc(chunk);
	x->ct = malloc((size_t)chunk + AEAD_TAG_LEN);
	if (x->pt == NULL || x->ct == NULL)
		goto out;
	x->out = out;
	x->chunk = chunk;
	rc = sink_write(out, hdr, sizeof hdr);
	if (rc != ERR_OK)
		goto out;
	*e = x;
	x = NULL;
	rc = ERR_OK;
out:
	aead_enc_free(x);
	return rc;
}

/* Seals n bytes of p as chunk e->idx and writes it. */
static enum err enc_emit(struct aead_enc *e, const uint8_t *p, size_t n, bool last)
{
	enum err rc;

	if (e->idx == UINT64_MAX)
		return ERR_LIMIT;
	rc = chunk_seal(&e->c, e->idx, last, e->ad, e->adlen, p, n, e->ct);
	if (rc != ERR_OK)
		return rc;
	rc = e->out->write(e->out->ctx, e->ct, n + AEAD_TAG_LEN);
	if (rc != ERR_OK)
		return rc;
	e->idx++;
	return ERR_OK;
}

enum err aead_enc_write(struct aead_enc *e, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (e->err != ERR_OK)
		return e->err;
	if (e->closed)
		return e->err = ERR_INTERNAL;
	while (n > 0) {
		size_t k;

		/* Whole chunks straight from the caller's buffer. */
		if (e->ptlen == 0 && n >= e->chunk) {
			e->err = enc_emit(e, b, e->chunk, false);
			if (e->err != ERR_OK)
				return e->err;
			b += e->chunk;
			n -= e->chunk;
			continue;
		}
		k = e->chunk - e->ptlen;
		if (k > n)
			k = n;
		memcpy(e->pt + e->ptlen, b, k);
		e->ptlen += k;
		b += k;
		n -= k;
		/* A full chunk is never the last: the last one is shorter. */
		if (e->ptlen == e->chunk) {
			e->err = enc_emit(e, e->pt, e->chunk, false);
			if (e->err != ERR_OK)
				return e->err;
			e->ptlen = 0;
		}
	}
	return ERR_OK;
}

static enum err enc_sink_write(void *ctx, const void *p, size_t n)
{
	return aead_enc_write(ctx, p, n);
}

void aead_enc_sink(struct aead_enc *e, struct sink *k)
{
	k->write = enc_sink_write;
	k->ctx = e;
}

enum err aead_enc_close(struct aead_enc *e)
{
	if (e->err != ERR_OK)
		return e->err;
	if (e->closed)
		return e->err = ERR_INTERNAL;
	e->err = enc_emit(e, e->pt, e->ptlen, true);
	mem_wipe(e->pt, e->ptlen);
	e->ptlen = 0;
	e->closed = true;
	return e->err;
}

void aead_enc_free(struct aead_enc *e)
{
	if (e == NULL)
		return;
	cipher_fini(&e->c);
	if (e->pt != NULL)
		mem_wipe(e->pt, e->chunk);
	free(e->pt);
	free(e->ct);
	free(e->ad);
	free(e);
}

/* ---- decryption ---- */

struct aead_dec {
	struct src *in;
	struct cipher c;
	uint32_t chunk;
	uint64_t idx;        /* of the next chunk */
	uint8_t *ad;
	size_t adlen;
	uint8_t *ct;         /* chunk + tag */
	uint8_t *pt;         /* verified plaintext of the current chunk */
	size_t ptlen, ptpos;
	int64_t size;        /* plaintext size if known, else -1 */
	enum err err;        /* sticky */
	bool done;           /* the last chunk verified */
	/* random access (read_at): its own one-chunk cache */
	uint8_t *ra_pt;
	size_t ra_len;
	uint64_t ra_idx;     /* chunk in ra_pt, UINT64_MAX if none */
	int64_t ctsize;
};

/* Reads up to n bytes; fewer only at the end of in. */
static enum err read_upto(struct src *in, uint8_t *buf, size_t n, size_t *got)
{
	size_t have = 0;

	while (have < n) {
		size_t k = 0;
		enum err rc = in->read(in->ctx, buf + have, n - have, &k);

		if (rc != ERR_OK)
			return rc;
		if (k == 0)
			break;
		if (k > n - have)
			return ERR_INTERNAL;
		have += k;
	}
	*got = have;
	return ERR_OK;
}

/* The plaintext size implied by a ciphertext size, or -1 if none is. */
static int64_t pt_size(int64_t ctsize, uint32_t chunk)
{
	uint64_t body, full, rem, stride = (uint64_t)chunk + AEAD_TAG_LEN;

	if (ctsize < (int64_t)(AEAD_HEADER_LEN + AEAD_TAG_LEN))
		return -1;
	body = (uint64_t)ctsize - AEAD_HEADER_LEN;
	full = body / stride;
	rem = body % stride;
	if (rem < AEAD_TAG_LEN)
		return -1;
	return (int64_t)(full * chunk + (rem - AEAD_TAG_LEN));
}

enum err aead_dec_open(struct aead_dec **d, const struct secret *data_key,
                       const void *ad, size_t adlen, struct src *in)
{
	uint8_t hdr[AEAD_HEADER_LEN];
	struct aead_dec *x = NULL;
	size_t got = 0;
	uint32_t chunk;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = ERR_NOMEM;
	x = calloc(1, sizeof *x);
	if (x == NULL)
		goto out;
	rc = read_upto(in, hdr, sizeof hdr, &got);
	if (rc != ERR_OK)
		goto out;
	/* Whatever is wrong with the header, the object fails verification:
	 * the header is covered by every tag, so any change to it is found. */
	rc = ERR_AUTH;
	if (got != sizeof hdr || memcmp(hdr, MAGIC, 4) != 0)
		goto out;
	if (hdr[4] != (uint8_t)(VERSION >> 8) || hdr[5] != (uint8_t)VERSION || hdr[7] != 0)
		goto out;
	if (hdr[6] != AEAD_ALG_AES256GCM && hdr[6] != AEAD_ALG_XCHACHA20POLY1305)
		goto out;
	chunk = (uint32_t)hdr[8] << 24 | (uint32_t)hdr[9] << 16 | (uint32_t)hdr[10] << 8 | hdr[11];
	if (chunk < CRYPTO_AEAD_CHUNK_MIN || chunk > CRYPTO_AEAD_CHUNK_MAX)
		goto out;
	rc = cipher_init(&x->c, (enum aead_alg)hdr[6], data_key, hdr + 12);
	if (rc != ERR_OK)
		goto out;
	rc = ad_make(hdr, ad, adlen, &x->ad, &x->adlen);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_NOMEM;
	x->pt = malloc(chunk);
	x->ct = malloc((size_t)chunk + AEAD_TAG_LEN);
	if (x->pt == NULL || x->ct == NULL)
		goto out;
	x->in = in;
	x->chunk = chunk;
	x->size = pt_size(in->size, chunk);
	x->ctsize = in->size;
	x->ra_idx = UINT64_MAX;
	*d = x;
	x = NULL;
	rc = ERR_OK;
out:
	aead_dec_free(x);
	return rc;
}

/* Reads, verifies and decrypts the next chunk into out (d->pt, or a
 * caller's buffer of at least d->chunk bytes); *n its plaintext length. On
 * failure out holds nothing of the chunk (chunk_open wipes it). */
static enum err dec_chunk(struct aead_dec *d, uint8_t *out, size_t *n)
{
	size_t got = 0;
	bool last;
	enum err rc;

	rc = read_upto(d->in, d->ct, (size_t)d->chunk + AEAD_TAG_LEN, &got);
	if (rc != ERR_OK)
		return rc;
	/* A full chunk is never the last; anything shorter must be. Less than
	 * a tag: the stream was cut (at or inside a chunk). */
	if (got < AEAD_TAG_LEN || d->idx == UINT64_MAX)
		return ERR_AUTH;
	last = got < (size_t)d->chunk + AEAD_TAG_LEN;
	*n = got - AEAD_TAG_LEN;
	rc = chunk_open(&d->c, d->idx, last, d->ad, d->adlen, d->ct, *n, out);
	if (rc != ERR_OK)
		return rc;
	d->idx++;
	d->done = last;
	return ERR_OK;
}

/* Reads, verifies and decrypts the next chunk into d->pt. */
static enum err dec_next(struct aead_dec *d)
{
	size_t n = 0;
	enum err rc = dec_chunk(d, d->pt, &n);

	if (rc != ERR_OK)
		return rc;
	d->ptlen = n;
	d->ptpos = 0;
	return ERR_OK;
}

enum err aead_dec_read(struct aead_dec *d, void *buf, size_t want, size_t *got)
{
	size_t n;

	if (d->err != ERR_OK)
		return d->err;
	while (d->ptpos == d->ptlen) {
		if (d->done) {
			*got = 0;
			return ERR_OK;
		}
		if (d->ptlen > 0)
			mem_wipe(d->pt, d->ptlen);
		d->ptlen = d->ptpos = 0;
		/* room for a whole chunk: it is decrypted straight into the
		 * caller's buffer (no copy), which receives it only verified */
		if (want >= d->chunk) {
			n = 0;
			d->err = dec_chunk(d, buf, &n);
			if (d->err != ERR_OK)
				return d->err;
			if (n == 0)
				continue;   /* the empty last chunk */
			*got = n;
			return ERR_OK;
		}
		d->err = dec_next(d);
		if (d->err != ERR_OK)
			return d->err;
	}
	n = d->ptlen - d->ptpos;
	if (n > want)
		n = want;
	memcpy(buf, d->pt + d->ptpos, n);
	d->ptpos += n;
	*got = n;
	return ERR_OK;
}

/* Verifies and decrypts chunk k into the random-access cache. */
static enum err ra_load(struct aead_dec *d, uint64_t k)
{
	uint64_t stride = (uint64_t)d->chunk + AEAD_TAG_LEN, off, nchunks, ctlen;
	enum err rc;

	if (d->ra_idx == k)
		return ERR_OK;
	nchunks = (uint64_t)d->size / d->chunk + 1;
	if (k >= nchunks)
		return ERR_INTERNAL;
	off = AEAD_HEADER_LEN + k * stride;
	ctlen = k + 1 == nchunks ? (uint64_t)d->ctsize - off : stride;
	if (ctlen < AEAD_TAG_LEN || ctlen > stride)
		return ERR_AUTH;
	if (d->ra_pt == NULL) {
		d->ra_pt = malloc(d->chunk);
		if (d->ra_pt == NULL)
			return ERR_NOMEM;
	}
	d->ra_idx = UINT64_MAX;
	rc = d->in->read_at(d->in->ctx, off, d->ct, (size_t)ctlen);
	if (rc == ERR_OK)
		rc = chunk_open(&d->c, k, k + 1 == nchunks, d->ad, d->adlen, d->ct, (size_t)ctlen - AEAD_TAG_LEN, d->ra_pt);
	if (rc != ERR_OK)
		return rc == ERR_PARSE ? ERR_AUTH : rc;
	d->ra_len = (size_t)ctlen - AEAD_TAG_LEN;
	d->ra_idx = k;
	return ERR_OK;
}

enum err aead_dec_read_at(struct aead_dec *d, uint64_t off, void *buf, size_t n)
{
	uint8_t *out = buf;
	enum err rc;

	if (d->in->read_at == NULL || d->size < 0)
		return ERR_UNSUPPORTED;
	if (off > (uint64_t)d->size || (uint64_t)d->size - off < n)
		return ERR_PARSE;
	while (n > 0) {
		uint64_t k = off / d->chunk;
		size_t in_chunk = (size_t)(off % d->chunk), take;
		rc = ra_load(d, k);
		if (rc != ERR_OK)
			return rc;
		if (in_chunk >= d->ra_len)
			return ERR_AUTH;
		take = d->ra_len - in_chunk;
		if (take > n)
			take = n;
		memcpy(out, d->ra_pt + in_chunk, take);
		out += take;
		off += take;
		n -= take;
	}
	return ERR_OK;
}

static enum err dec_src_read(void *ctx, void *buf, size_t want, size_t *got)
{
	return aead_dec_read(ctx, buf, want, got);
}

static enum err dec_src_read_at(void *ctx, uint64_t off, void *buf, size_t n)
{
	return aead_dec_read_at(ctx, off, buf, n);
}

/* Advances the sequential position by n plaintext bytes. Whole chunks are
 * skipped in the ciphertext (in->skip) without being decrypted, and so
 * without being verified: their plaintext is never released, a chunk read
 * after them is still checked against its index (a dropped or moved chunk
 * fails there), and the last chunk is never skipped, so the end of the
 * object is still proven. A caller that needs every byte verified reads
 * them (the STOW spool does, through read_at, when it stores the object).
 * Needs a known size; partial chunks are decrypted and discarded. */
static enum err dec_skip(struct aead_dec *d, uint64_t n)
{
	uint64_t stride = (uint64_t)d->chunk + AEAD_TAG_LEN, last, whole;
	size_t k;

	if (d->err != ERR_OK)
		return d->err;
	k = d->ptlen - d->ptpos < n ? d->ptlen - d->ptpos : (size_t)n;
	d->ptpos += k;
	n -= k;
	if (n == 0)
		return ERR_OK;
	/* the buffer is empty: the next chunk to read is d->idx */
	if (d->done)
		return d->err = ERR_PARSE;
	last = (uint64_t)d->size / d->chunk;   /* index of the last chunk */
	whole = n / d->chunk;
	if (d->idx > last)
		return d->err = ERR_AUTH;
	if (whole > last - d->idx)
		whole = last - d->idx;
	if (whole > 0 && whole <= UINT64_MAX / stride) {
		mem_wipe(d->pt, d->ptlen);
		d->ptlen = d->ptpos = 0;
		d->err = d->in->skip(d->in->ctx, whole * stride);
		if (d->err != ERR_OK)
			return d->err;
		d->idx += whole;
		n -= whole * d->chunk;
	}
	while (n > 0) {
		mem_wipe(d->pt, d->ptlen);
		d->ptlen = d->ptpos = 0;
		if (d->done)
			return d->err = ERR_PARSE;
		d->err = dec_next(d);
		if (d->err != ERR_OK)
			return d->err;
		k = d->ptlen < n ? d->ptlen : (size_t)n;
		d->ptpos = k;
		n -= k;
	}
	return ERR_OK;
}

static enum err dec_src_skip(void *ctx, uint64_t n)
{
	return dec_skip(ctx, n);
}

static void dec_src_close(void *ctx)
{
	aead_dec_free(ctx);
}

void aead_dec_src(struct aead_dec *d, struct src *s)
{
	s->read = dec_src_read;
	s->read_at = d->in->read_at != NULL && d->size >= 0 ? dec_src_read_at : NULL;
	s->skip = d->in->skip != NULL && d->size >= 0 ? dec_src_skip : NULL;
	s->close = dec_src_close;
	s->size = d->size;
	s->ctx = d;
}

void aead_dec_free(struct aead_dec *d)
{
	if (d == NULL)
		return;
	cipher_fini(&d->c);
	if (d->pt != NULL)
		mem_wipe(d->pt, d->chunk);
	if (d->ra_pt != NULL)
		mem_wipe(d->ra_pt, d->chunk);
	free(d->ra_pt);
	free(d->pt);
	free(d->ct);
	free(d->ad);
	free(d);
}

/* ---- one-shot ---- */

enum err aead_seal(const struct secret *data_key, const void *ad, size_t adlen,
                   const void *pt, size_t n, const struct aead_opts *o,
                   uint8_t **out, size_t *outlen)
{
	struct aead_enc *e = NULL;
	struct wbuf w;
	struct sink k;
	uint64_t ctlen;
	enum err rc;

	wbuf_init(&w, 0);
	rc = aead_ct_size(n, o ? o->chunk : 0, &ctlen);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_LIMIT;
	if (ctlen > SIZE_MAX - 1)
		goto out;
	wbuf_init(&w, (size_t)ctlen);
	wbuf_reserve(&w, (size_t)ctlen);
	sink_wbuf(&k, &w);
	rc = aead_enc_open_opts(&e, data_key, ad, adlen, &k, o);
	if (rc != ERR_OK)
		goto out;
	rc = aead_enc_write(e, pt, n);
	if (rc != ERR_OK)
		goto out;
	rc = aead_enc_close(e);
	if (rc != ERR_OK)
		goto out;
	rc = wbuf_err(&w);
	if (rc != ERR_OK)
		goto out;
	*out = wbuf_take(&w, outlen);
	rc = ERR_OK;
out:
	aead_enc_free(e);
	wbuf_fini(&w);
	return rc;
}

enum err aead_open(const struct secret *data_key, const void *ad, size_t adlen,
                   const void *ct, size_t n, uint8_t **out, size_t *outlen)
{
	struct aead_dec *d = NULL;
	struct src_mem m;
	struct src s;
	uint8_t *buf = NULL;
	size_t have = 0, got = 0, size = 0;
	enum err rc;

	if (n > INT64_MAX)
		return ERR_LIMIT;
	src_mem_init(&s, &m, ct, n);
	rc = aead_dec_open(&d, data_key, ad, adlen, &s);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_AUTH;
	if (d->size < 0)
		goto out;
	size = (size_t)d->size;
	rc = ERR_NOMEM;
	buf = malloc(size + 1);
	if (buf == NULL)
		goto out;
	for (;;) {
		rc = aead_dec_read(d, buf + have, size + 1 - have, &got);
		if (rc != ERR_OK)
			goto out;
		if (got == 0)
			break;
		have += got;
		rc = ERR_INTERNAL;
		if (have > size)
			goto out;
	}
	rc = ERR_INTERNAL;
	if (have != size)
		goto out;
	*out = buf;
	*outlen = size;
	buf = NULL;
	rc = ERR_OK;
out:
	if (buf != NULL) {
		mem_wipe(buf, size + 1);
		free(buf);
	}
	aead_dec_free(d);
	return rc;
}
