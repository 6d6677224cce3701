/* aead_fuzz.c: libFuzzer target for the reader of encrypted objects
 * (crypto/aead.c): the header (magic, version, algorithm, chunk size,
 * salt), the chunk and size arithmetic, sequential reads, random access
 * (read_at) and skips: what a tamperer who edits an object file reaches.
 * The first byte picks the mode:
 *   even: the rest is an object file under a fixed key and identity. It is
 *     read through sequentially (reads of 1..256 bytes, or a whole chunk,
 *     as the first byte says), at offsets taken from the input, and
 *     through aead_dec_src with a skip. abort()s on an error code other
 *     than AUTH, PARSE, UNSUPPORTED, LIMIT or NOMEM, or when a read that
 *     succeeded gives other bytes than the whole sequential read (which
 *     verified every chunk) gave.
 *   odd: the rest is a plaintext, encrypted with chunks of 16..79 bytes
 *     (the second byte), written in pieces of 1..64 bytes, then read back
 *     the same three ways: abort()s unless every read gives the plaintext.
 *     Then one byte of the object is flipped, the object is cut at a chunk
 *     boundary and extended by one byte, and its identity changed: each
 *     must fail to read through with ERR_AUTH (ERR_PARSE or ERR_UNSUPPORTED
 *     for a damaged header), never give plaintext it did not check.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"
#include "aead_fuzz_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct secret *key;
#define WBUF_CAP ((size_t)64 << 20)   /* an object or a plaintext of the run, at most */

static bool expected(enum err rc)
{
	return rc == ERR_AUTH || rc == ERR_PARSE || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT || rc == ERR_NOMEM;
}

/* Reads the object ct through sequentially in reads of step bytes (0:
 * CRYPTO_AEAD_CHUNK_MAX, a whole chunk at a time). ERR_OK and the
 * plaintext in *pt (malloc'd) only if every chunk verified. */
static enum err read_all(const uint8_t *ct, size_t n, const char *id, size_t step, struct wbuf *pt)
{
	struct aead_dec *d = NULL;
	struct src in;
	struct src_mem m;
	size_t want = step ? step : CRYPTO_AEAD_CHUNK_MAX, got;
	uint8_t *buf = malloc(want);
	enum err rc;

	if (buf == NULL)
		return ERR_NOMEM;
	src_mem_init(&in, &m, ct, n);
	rc = aead_dec_open(&d, key, id, strlen(id), &in);
	while (rc == ERR_OK) {
		rc = aead_dec_read(d, buf, want, &got);
		if (rc != ERR_OK || got == 0)
			break;
		if (got > want)
			abort();
		wbuf_put(pt, buf, got);
	}
	aead_dec_free(d);
	free(buf);
	return rc;
}

/* read_at and the src view's skip on ct, each compared with want (the
 * verified plaintext, wlen bytes; NULL: none known, only codes checked).
 * Offsets and lengths come from sel. */
static void read_random(const uint8_t *ct, size_t n, const uint8_t *want, size_t wlen, const uint8_t *sel,
                        size_t nsel)
{
	struct aead_dec *d = NULL;
	struct src in, s;
	struct src_mem m;
	uint8_t buf[512];
	size_t i;
	enum err rc;

	src_mem_init(&in, &m, ct, n);
	rc = aead_dec_open(&d, key, aead_fuzz_ad, sizeof aead_fuzz_ad - 1, &in);
	if (rc != ERR_OK) {
		if (!expected(rc))
			abort();
		return;
	}
	for (i = 0; i + 1 < nsel && i < 16; i += 2) {
		uint64_t off = want != NULL && wlen > 0 ? sel[i] * 7919u % (wlen + 1) : (uint64_t)sel[i] * 131u;
		size_t len = sel[i + 1] % sizeof buf;
		rc = aead_dec_read_at(d, off, buf, len);
		if (rc == ERR_OK && want != NULL && (off + len > wlen || memcmp(buf, want + off, len) != 0))
			abort();   /* bytes that were not the object's, or past its end */
		if (rc != ERR_OK && !expected(rc))
			abort();
		if (rc != ERR_OK && want != NULL && off + len <= wlen && rc != ERR_NOMEM)
			abort();   /* an intact object refused a read inside it */
	}
	aead_dec_free(d);
	d = NULL;
	/* the src view: a skip (never of the last chunk), then a read */
	src_mem_init(&in, &m, ct, n);
	if (aead_dec_open(&d, key, aead_fuzz_ad, sizeof aead_fuzz_ad - 1, &in) != ERR_OK)
		abort();   /* opened above */
	aead_dec_src(d, &s);
	if (s.skip != NULL && nsel > 0) {
		uint64_t k = want != NULL && wlen > 0 ? sel[0] * 104729u % (wlen + 1) : sel[0];
		size_t got = 0;
		rc = s.skip(s.ctx, k);
		if (rc == ERR_OK)
			rc = s.read(s.ctx, buf, sizeof buf, &got);
		if (rc == ERR_OK && want != NULL && (k + got > wlen || memcmp(buf, want + k, got) != 0))
			abort();
		if (rc != ERR_OK && !expected(rc))
			abort();
	}
	if (s.close != NULL)
		s.close(s.ctx);   /* frees d */
	else
		aead_dec_free(d);
}

/* Mode even: the input is an object. */
static void as_object(uint8_t mode, const uint8_t *ct, size_t n)
{
	struct wbuf pt;
	size_t step = (mode >> 1) == 127 ? 0 : 1 + (mode >> 1) * 2;
	enum err rc;

	wbuf_init(&pt, WBUF_CAP);
	rc = read_all(ct, n, aead_fuzz_ad, step, &pt);
	if (rc != ERR_OK && !expected(rc))
		abort();
	read_random(ct, n, rc == ERR_OK ? pt.p : NULL, rc == ERR_OK ? pt.len : 0, ct + n / 2, n - n / 2);
	wbuf_fini(&pt);
}

static void must_refuse(const uint8_t *ct, size_t n, const char *id)
{
	struct wbuf pt;
	enum err rc;

	wbuf_init(&pt, WBUF_CAP);
	rc = read_all(ct, n, id, 0, &pt);
	if (rc == ERR_OK || !expected(rc))
		abort();   /* a damaged object read through, or an unexpected code */
	wbuf_fini(&pt);
}

/* Mode odd: the input is a plaintext. */
static void round_trip(const uint8_t *in, size_t n)
{
	struct aead_opts o;
	struct aead_enc *e = NULL;
	struct wbuf ct, pt;
	struct sink k;
	uint64_t ctlen = 0;
	size_t i, piece, nchunks, cut;
	uint8_t *bad;

	if (n < 1)
		return;
	memset(&o, 0, sizeof o);
	o.chunk = CRYPTO_AEAD_CHUNK_MIN + in[0] % 64;
	o.alg = in[0] & 0x40 ? AEAD_ALG_XCHACHA20POLY1305 : AEAD_ALG_AUTO;
	in++;
	n--;
	wbuf_init(&ct, WBUF_CAP);
	sink_wbuf(&k, &ct);
	if (aead_enc_open_opts(&e, key, aead_fuzz_ad, sizeof aead_fuzz_ad - 1, &k, &o) != ERR_OK)
		abort();
	for (i = 0; i < n; i += piece) {
		piece = 1 + in[i] % 64;
		if (piece > n - i)
			piece = n - i;
		if (aead_enc_write(e, in + i, piece) != ERR_OK)
			abort();
	}
	if (aead_enc_close(e) != ERR_OK || wbuf_err(&ct) != ERR_OK)
		abort();
	aead_enc_free(e);
	if (aead_ct_size(n, o.chunk, &ctlen) != ERR_OK || ctlen != ct.len)
		abort();   /* the size the store reserves is the size written */

	wbuf_init(&pt, WBUF_CAP);
	if (read_all(ct.p, ct.len, aead_fuzz_ad, 1 + (n % 97), &pt) != ERR_OK || pt.len != n ||
	    (n > 0 && memcmp(pt.p, in, n) != 0))
		abort();
	wbuf_reset(&pt);
	if (read_all(ct.p, ct.len, aead_fuzz_ad, 0, &pt) != ERR_OK || pt.len != n || (n > 0 && memcmp(pt.p, in, n) != 0))
		abort();
	wbuf_fini(&pt);
	read_random(ct.p, ct.len, in, n, in, n);

	/* tampering: every change is refused */
	bad = malloc(ct.len + 1);
	if (bad == NULL)
		abort();
	memcpy(bad, ct.p, ct.len);
	i = n > 0 ? (size_t)in[n - 1] * 977u % ct.len : ct.len - 1;
	bad[i] ^= (uint8_t)(1u << (n % 8));
	must_refuse(bad, ct.len, aead_fuzz_ad);
	bad[i] = ct.p[i];
	nchunks = n / o.chunk;   /* whole chunks before the last */
	if (nchunks > 0) {
		cut = AEAD_HEADER_LEN + (size_t)(in[0] % nchunks + 1) * (o.chunk + AEAD_TAG_LEN);
		if (cut < ct.len)
			must_refuse(bad, cut, aead_fuzz_ad);
	}
	bad[ct.len] = 0;
	must_refuse(bad, ct.len + 1, aead_fuzz_ad);
	must_refuse(bad, ct.len, "another-object");
	free(bad);
	wbuf_fini(&ct);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (key == NULL &&
	    (crypto_init() != ERR_OK || secret_from_bytes(aead_fuzz_key, sizeof aead_fuzz_key, &key) != ERR_OK))
		abort();
	if (size < 1)
		return 0;
	if (data[0] & 1)
		round_trip(data + 1, size - 1);
	else
		as_object(data[0], data + 1, size - 1);
	return 0;
}
