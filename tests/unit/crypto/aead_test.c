/* aead_test.c: properties of the chunked object AEAD (crypto/aead.c), for
 * both algorithms: round trips at the chunk-size edges (0, 1, C-1, C, C+1,
 * 3C+17) and of 5 MB, with odd write and read sizes; every single-bit flip,
 * every truncation, extension, chunk swaps, drops and duplicates, splicing
 * between objects, a wrong identity or key all fail with ERR_AUTH; the
 * decryptor never hands out a byte of a chunk whose tag did not verify and
 * never writes past what it returns. Layer: tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"

#define SMALL_CHUNK 64u
#define SENTINEL 0xA5

static enum aead_alg algs[2];
static size_t nalgs;

static struct secret *key_a, *key_b;

/* ---- helpers ---- */

static void ad_make(struct wbuf *w, const char *object_id, const char *sop_uid)
{
	wbuf_init(w, 1024);
	aead_ad_put(w, object_id, strlen(object_id));
	aead_ad_put(w, sop_uid, strlen(sop_uid));
}

static uint8_t *rand_buf(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	randombytes_buf(p, n);
	return p;
}

/* Streaming encryption with writes of varying sizes. */
static enum err enc_stream(const struct secret *k, const struct wbuf *ad, const uint8_t *pt, size_t n,
                           uint32_t chunk, enum aead_alg alg, struct wbuf *out)
{
	struct aead_opts o = { chunk, alg };
	struct aead_enc *e = NULL;
	struct sink k_out, k_in;
	size_t pos = 0, step = 1;
	enum err rc;

	wbuf_init(out, (size_t)1 << 30);
	sink_wbuf(&k_out, out);
	rc = aead_enc_open_opts(&e, k, ad->p, ad->len, &k_out, &o);
	if (rc != ERR_OK)
		return rc;
	aead_enc_sink(e, &k_in);
	while (pos < n) {
		size_t w = n - pos < step ? n - pos : step;

		rc = sink_write(&k_in, pt + pos, w);
		if (rc != ERR_OK)
			goto out;
		pos += w;
		step = step * 3 + 1;
		if (step > 3 * (size_t)chunk + 5)
			step = 7;
	}
	rc = aead_enc_close(e);
out:
	aead_enc_free(e);
	return rc;
}

/* What a streaming decryption gave before it stopped. */
struct dec_result {
	enum err open_rc, rc;   /* of aead_dec_open, then of the first failing read */
	size_t got;             /* bytes returned */
	int wrote_past;         /* bytes beyond those returned hold anything but SENTINEL or 0 */
	int64_t size;           /* the src's size */
};

/* Decrypts through the struct src view with reads of varying sizes into a
 * buffer full of SENTINEL; checks that nothing beyond what was returned
 * holds any plaintext: a read with room for a whole chunk opens it in the
 * caller's buffer, which is wiped (zeros) if its tag does not verify. */
static uint8_t *dec_stream(const struct secret *k, const struct wbuf *ad, const uint8_t *ct, size_t n,
                           size_t cap, struct dec_result *r)
{
	struct aead_dec *d = NULL;
	struct src_mem m;
	struct src in, s;
	uint8_t *buf = malloc(cap + 1);
	size_t want = 1, i;

	if (buf == NULL)
		abort();
	memset(buf, SENTINEL, cap + 1);
	memset(r, 0, sizeof *r);
	src_mem_init(&in, &m, ct, n);
	r->open_rc = aead_dec_open(&d, k, ad->p, ad->len, &in);
	r->rc = r->open_rc;
	if (r->open_rc != ERR_OK)
		return buf;
	aead_dec_src(d, &s);
	r->size = s.size;
	for (;;) {
		size_t got = 0, w = cap + 1 - r->got < want ? cap + 1 - r->got : want;

		r->rc = s.read(s.ctx, buf + r->got, w, &got);
		if (r->rc != ERR_OK || got == 0)
			break;
		r->got += got;
		want = want * 2 + 3;
		if (want > 200000)
			want = 5;
		if (r->got > cap)
			break;
	}
	src_close(&s);
	for (i = r->got; i <= cap; i++)
		if (buf[i] != SENTINEL && buf[i] != 0)
			r->wrote_past = 1;
	return buf;
}

static const char *alg_name(enum aead_alg a)
{
	return a == AEAD_ALG_AES256GCM ? "aes256gcm" : "xchacha20poly1305";
}

/* ---- round trips ---- */

static void round_trip(size_t n, uint32_t chunk)
{
	struct wbuf ad, ct;
	struct dec_result r;
	uint8_t *pt = rand_buf(n), *back, *one = NULL;
	uint64_t want_len = 0;
	size_t i, onelen = 0;
	uint32_t c = chunk ? chunk : CRYPTO_AEAD_CHUNK_DEFAULT;

	ad_make(&ad, "obj-0001", "1.2.826.0.1.3680043.2.1125.1");
	for (i = 0; i < nalgs; i++) {
		struct aead_opts o = { chunk, algs[i] };
		uint8_t *one_ct = NULL;
		size_t one_ctlen = 0;

		CHECK(enc_stream(key_a, &ad, pt, n, chunk, algs[i], &ct) == ERR_OK);
		CHECK(wbuf_err(&ct) == ERR_OK);
		CHECK(aead_ct_size(n, chunk, &want_len) == ERR_OK);
		CHECK_EQ_INT(ct.len, want_len);
		CHECK_EQ_INT(ct.len, AEAD_HEADER_LEN + n + (n / c + 1) * AEAD_TAG_LEN);
		CHECK_EQ_INT(ct.p[6], algs[i]);
		back = dec_stream(key_a, &ad, ct.p, ct.len, n, &r);
		if (r.rc != ERR_OK || r.got != n)
			fprintf(stderr, "  %s n=%zu chunk=%u: %s, got %zu\n", alg_name(algs[i]), n, c,
			        err_str(r.rc), r.got);
		CHECK(r.rc == ERR_OK);
		CHECK_EQ_INT(r.got, n);
		CHECK_EQ_INT(r.size, (int64_t)n);
		CHECK(n == 0 || memcmp(back, pt, n) == 0);
		CHECK(!r.wrote_past);
		free(back);
		/* one-shot forms agree */
		CHECK(aead_open(key_a, ad.p, ad.len, ct.p, ct.len, &one, &onelen) == ERR_OK);
		CHECK(onelen == n && (n == 0 || memcmp(one, pt, n) == 0));
		free(one);
		one = NULL;
		CHECK(aead_seal(key_a, ad.p, ad.len, pt, n, &o, &one_ct, &one_ctlen) == ERR_OK);
		CHECK_EQ_INT(one_ctlen, want_len);
		CHECK(aead_open(key_a, ad.p, ad.len, one_ct, one_ctlen, &one, &onelen) == ERR_OK);
		CHECK(onelen == n && (n == 0 || memcmp(one, pt, n) == 0));
		/* a fresh salt each time: the same input never gives the same bytes */
		CHECK(one_ctlen != ct.len || memcmp(one_ct, ct.p, ct.len) != 0);
		free(one);
		one = NULL;
		free(one_ct);
		wbuf_fini(&ct);
	}
	wbuf_fini(&ad);
	free(pt);
}

TEST(round_trip_default_chunk_edges)
{
	const size_t c = CRYPTO_AEAD_CHUNK_DEFAULT;
	const size_t sizes[] = { 0, 1, c - 1, c, c + 1, 3 * c + 17 };
	size_t i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		round_trip(sizes[i], 0);
}

TEST(round_trip_small_chunk_edges)
{
	const size_t c = SMALL_CHUNK;
	size_t n;

	for (n = 0; n <= 4 * c + 1; n++)
		round_trip(n, SMALL_CHUNK);
	round_trip(CRYPTO_AEAD_CHUNK_MIN * 5, CRYPTO_AEAD_CHUNK_MIN);
}

TEST(round_trip_5mb)
{
	round_trip((size_t)5 * 1000 * 1000, 0);
	round_trip((size_t)5 << 20, 0);
}

TEST(round_trip_max_chunk)
{
	round_trip((size_t)CRYPTO_AEAD_CHUNK_MAX + 3, CRYPTO_AEAD_CHUNK_MAX);
}

/* ---- tampering ---- */

/* Expects failure with ERR_AUTH (or open_rc), no more than ok_prefix bytes
 * returned, those equal to the plaintext, and nothing written past them. */
static void expect_auth_fail(const struct secret *k, const struct wbuf *ad, const uint8_t *ct, size_t n,
                             const uint8_t *pt, size_t ptlen, size_t ok_prefix, const char *what, size_t where)
{
	struct dec_result r;
	uint8_t *back = dec_stream(k, ad, ct, n, ptlen + 64, &r);
	uint8_t *one = NULL;
	size_t onelen = 12345;
	enum err rc;

	if (r.rc != ERR_AUTH || r.got > ok_prefix || r.wrote_past) {
		fprintf(stderr, "  %s at %zu: %s, got %zu (allowed %zu), wrote past %d\n", what, where,
		        err_str(r.rc), r.got, ok_prefix, r.wrote_past);
		t_failed_now = 1;
	}
	if (r.got > 0 && memcmp(back, pt, r.got < ptlen ? r.got : ptlen) != 0) {
		fprintf(stderr, "  %s at %zu: released bytes differ from the plaintext\n", what, where);
		t_failed_now = 1;
	}
	free(back);
	rc = aead_open(k, ad->p, ad->len, ct, n, &one, &onelen);
	if (rc != ERR_AUTH || one != NULL || onelen != 12345) {
		fprintf(stderr, "  %s at %zu: one-shot gave %s\n", what, where, err_str(rc));
		t_failed_now = 1;
	}
	free(one);
}

/* A small object of 3 full chunks and a short last one. */
static void small_object(enum aead_alg alg, const struct wbuf *ad, uint8_t **pt, size_t *ptlen, struct wbuf *ct)
{
	*ptlen = 3 * SMALL_CHUNK + 21;
	*pt = rand_buf(*ptlen);
	if (enc_stream(key_a, ad, *pt, *ptlen, SMALL_CHUNK, alg, ct) != ERR_OK)
		abort();
}

/* Which plaintext prefix is verified before byte off of the ciphertext. */
static size_t verified_before(size_t off)
{
	if (off < AEAD_HEADER_LEN)
		return 0;
	return (off - AEAD_HEADER_LEN) / (SMALL_CHUNK + AEAD_TAG_LEN) * SMALL_CHUNK;
}

TEST(every_bit_flip_fails)
{
	struct wbuf ad, ct;
	uint8_t *pt;
	size_t ptlen, i, bit;

	ad_make(&ad, "obj-0001", "1.2.3");
	for (i = 0; i < nalgs; i++) {
		small_object(algs[i], &ad, &pt, &ptlen, &ct);
		for (bit = 0; bit < ct.len * 8; bit++) {
			ct.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			expect_auth_fail(key_a, &ad, ct.p, ct.len, pt, ptlen, verified_before(bit / 8), "bit flip", bit);
			ct.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* and the untouched object is still fine */
		{
			uint8_t *one = NULL;
			size_t n = 0;
			CHECK(aead_open(key_a, ad.p, ad.len, ct.p, ct.len, &one, &n) == ERR_OK);
			CHECK(n == ptlen && memcmp(one, pt, n) == 0);
			free(one);
		}
		wbuf_fini(&ct);
		free(pt);
	}
	wbuf_fini(&ad);
}

TEST(every_truncation_fails)
{
	struct wbuf ad, ct;
	uint8_t *pt;
	size_t ptlen, i, n;

	ad_make(&ad, "obj-0001", "1.2.3");
	for (i = 0; i < nalgs; i++) {
		small_object(algs[i], &ad, &pt, &ptlen, &ct);
		/* every length: at chunk boundaries and inside chunks, tags, header */
		for (n = 0; n < ct.len; n++) {
			uint8_t *cut = malloc(n ? n : 1);   /* exact size, so ASan sees overreads */
			if (n)
				memcpy(cut, ct.p, n);
			expect_auth_fail(key_a, &ad, cut, n, pt, ptlen, verified_before(n), "truncation", n);
			free(cut);
		}
		wbuf_fini(&ct);
		free(pt);
	}
	wbuf_fini(&ad);
}

TEST(extension_fails)
{
	struct wbuf ad, ct;
	uint8_t *pt, *ext;
	size_t ptlen, i, extra;
	const size_t extras[] = { 1, 15, 16, 17, SMALL_CHUNK + AEAD_TAG_LEN, 200 };

	ad_make(&ad, "obj-0001", "1.2.3");
	for (i = 0; i < nalgs; i++) {
		small_object(algs[i], &ad, &pt, &ptlen, &ct);
		for (extra = 0; extra < sizeof extras / sizeof extras[0]; extra++) {
			size_t n = ct.len + extras[extra];

			ext = malloc(n);
			memcpy(ext, ct.p, ct.len);
			randombytes_buf(ext + ct.len, extras[extra]);
			expect_auth_fail(key_a, &ad, ext, n, pt, ptlen, 3 * SMALL_CHUNK, "extension", extras[extra]);
			free(ext);
		}
		/* an object whose last chunk was full-sized and flagged is impossible:
		 * appending the first chunk again (a valid non-last chunk) fails too */
		ext = malloc(ct.len + SMALL_CHUNK + AEAD_TAG_LEN);
		memcpy(ext, ct.p, ct.len);
		memcpy(ext + ct.len, ct.p + AEAD_HEADER_LEN, SMALL_CHUNK + AEAD_TAG_LEN);
		expect_auth_fail(key_a, &ad, ext, ct.len + SMALL_CHUNK + AEAD_TAG_LEN, pt, ptlen, 3 * SMALL_CHUNK,
		                 "chunk appended", 0);
		free(ext);
		wbuf_fini(&ct);
		free(pt);
	}
	wbuf_fini(&ad);
}

static size_t chunk_off(size_t i) { return AEAD_HEADER_LEN + i * (SMALL_CHUNK + AEAD_TAG_LEN); }

TEST(chunk_swap_drop_duplicate_fail)
{
	const size_t cl = SMALL_CHUNK + AEAD_TAG_LEN;
	struct wbuf ad, ct;
	uint8_t *pt, *x, tmp[SMALL_CHUNK + AEAD_TAG_LEN];
	size_t ptlen, i, a, b;

	ad_make(&ad, "obj-0001", "1.2.3");
	for (i = 0; i < nalgs; i++) {
		small_object(algs[i], &ad, &pt, &ptlen, &ct);
		x = malloc(ct.len);
		/* swap any two full chunks */
		for (a = 0; a < 3; a++) {
			for (b = a + 1; b < 3; b++) {
				memcpy(x, ct.p, ct.len);
				memcpy(tmp, x + chunk_off(a), cl);
				memcpy(x + chunk_off(a), x + chunk_off(b), cl);
				memcpy(x + chunk_off(b), tmp, cl);
				expect_auth_fail(key_a, &ad, x, ct.len, pt, ptlen, a * SMALL_CHUNK, "swap", a * 10 + b);
			}
		}
		/* drop the middle chunk */
		memcpy(x, ct.p, chunk_off(1));
		memcpy(x + chunk_off(1), ct.p + chunk_off(2), ct.len - chunk_off(2));
		expect_auth_fail(key_a, &ad, x, ct.len - cl, pt, ptlen, SMALL_CHUNK, "drop", 1);
		/* replace chunk 2 by chunk 1 (duplicate) */
		memcpy(x, ct.p, ct.len);
		memcpy(x + chunk_off(2), ct.p + chunk_off(1), cl);
		expect_auth_fail(key_a, &ad, x, ct.len, pt, ptlen, 2 * SMALL_CHUNK, "duplicate", 2);
		/* drop the last chunk: ends on a full chunk without a last one */
		expect_auth_fail(key_a, &ad, ct.p, chunk_off(3), pt, ptlen, 3 * SMALL_CHUNK, "drop last", 3);
		free(x);
		wbuf_fini(&ct);
		free(pt);
	}
	wbuf_fini(&ad);
}

TEST(wrong_identity_key_and_splice_fail)
{
	struct wbuf ad, ad_other, ad_swapped, ct, ct2;
	uint8_t *pt, *x;
	size_t ptlen, i;

	ad_make(&ad, "obj-0001", "1.2.3");
	ad_make(&ad_other, "obj-0002", "1.2.3");
	/* the same bytes split differently: length prefixes keep them apart */
	ad_make(&ad_swapped, "obj-00011", ".2.3");
	for (i = 0; i < nalgs; i++) {
		small_object(algs[i], &ad, &pt, &ptlen, &ct);
		expect_auth_fail(key_a, &ad_other, ct.p, ct.len, pt, ptlen, 0, "other object id", 0);
		expect_auth_fail(key_a, &ad_swapped, ct.p, ct.len, pt, ptlen, 0, "shifted fields", 0);
		expect_auth_fail(key_b, &ad, ct.p, ct.len, pt, ptlen, 0, "wrong key", 0);
		/* a second object under the same key and identity: chunks of one
		 * spliced into the other fail (each object has its own key) */
		CHECK(enc_stream(key_a, &ad, pt, ptlen, SMALL_CHUNK, algs[i], &ct2) == ERR_OK);
		x = malloc(ct.len);
		memcpy(x, ct.p, ct.len);
		memcpy(x + chunk_off(1), ct2.p + chunk_off(1), SMALL_CHUNK + AEAD_TAG_LEN);
		expect_auth_fail(key_a, &ad, x, ct.len, pt, ptlen, SMALL_CHUNK, "splice", 1);
		/* header of one, body of the other */
		memcpy(x, ct2.p, AEAD_HEADER_LEN);
		memcpy(x + AEAD_HEADER_LEN, ct.p + AEAD_HEADER_LEN, ct.len - AEAD_HEADER_LEN);
		expect_auth_fail(key_a, &ad, x, ct.len, pt, ptlen, 0, "header swap", 0);
		free(x);
		wbuf_fini(&ct2);
		wbuf_fini(&ct);
		free(pt);
	}
	wbuf_fini(&ad_swapped);
	wbuf_fini(&ad_other);
	wbuf_fini(&ad);
}

TEST(unclosed_encryptor_is_unreadable)
{
	struct wbuf ad, ct;
	struct aead_enc *e = NULL;
	struct sink k;
	uint8_t pt[2 * SMALL_CHUNK + 5];
	struct aead_opts o = { SMALL_CHUNK, AEAD_ALG_AUTO };

	randombytes_buf(pt, sizeof pt);
	ad_make(&ad, "obj", "1.2");
	wbuf_init(&ct, 1 << 20);
	sink_wbuf(&k, &ct);
	CHECK(aead_enc_open_opts(&e, key_a, ad.p, ad.len, &k, &o) == ERR_OK);
	CHECK(aead_enc_write(e, pt, sizeof pt) == ERR_OK);
	aead_enc_free(e);   /* never closed: the last chunk is missing */
	CHECK_EQ_INT(ct.len, AEAD_HEADER_LEN + 2 * (SMALL_CHUNK + AEAD_TAG_LEN));
	expect_auth_fail(key_a, &ad, ct.p, ct.len, pt, sizeof pt, 2 * SMALL_CHUNK, "unclosed", 0);
	wbuf_fini(&ct);
	wbuf_fini(&ad);
}

TEST(errors_are_sticky)
{
	struct wbuf ad, ct;
	struct aead_dec *d = NULL;
	struct src_mem m;
	struct src in;
	uint8_t *pt, buf[4 * SMALL_CHUNK];
	size_t ptlen, got = 0, total = 0;
	enum err rc;

	ad_make(&ad, "obj", "1.2");
	small_object(algs[0], &ad, &pt, &ptlen, &ct);
	ct.p[chunk_off(1) + 3] ^= 0x40;
	src_mem_init(&in, &m, ct.p, ct.len);
	CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_OK);
	do {
		rc = aead_dec_read(d, buf + total, sizeof buf - total, &got);
		if (rc == ERR_OK)
			total += got;
	} while (rc == ERR_OK && got > 0);
	CHECK(rc == ERR_AUTH);
	CHECK_EQ_INT(total, SMALL_CHUNK);
	CHECK(aead_dec_read(d, buf, sizeof buf, &got) == ERR_AUTH);
	CHECK(aead_dec_read(d, buf, sizeof buf, &got) == ERR_AUTH);
	aead_dec_free(d);
	wbuf_fini(&ct);
	free(pt);
	wbuf_fini(&ad);
}

/* A source that fails with ERR_IO after some bytes. */
struct failing {
	struct src_mem m;
	size_t fail_at;
};

static enum err failing_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct failing *f = ctx;

	if (f->m.pos >= f->fail_at)
		return ERR_IO;
	if (want > f->fail_at - f->m.pos)
		want = f->fail_at - f->m.pos;
	memcpy(buf, f->m.p + f->m.pos, want);
	f->m.pos += want;
	*got = want;
	return ERR_OK;
}

TEST(source_errors_pass_through)
{
	struct wbuf ad, ct;
	struct aead_dec *d = NULL;
	struct failing f;
	struct src in = { 0 };
	uint8_t *pt, buf[512];
	size_t ptlen, got = 0;
	enum err rc;

	ad_make(&ad, "obj", "1.2");
	small_object(algs[0], &ad, &pt, &ptlen, &ct);
	f.m.p = ct.p;
	f.m.len = ct.len;
	f.m.pos = 0;
	f.fail_at = 10;
	in.read = failing_read;
	in.size = -1;
	in.ctx = &f;
	CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_IO);
	f.m.pos = 0;
	f.fail_at = chunk_off(2) + 5;
	CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_OK);
	do
		rc = aead_dec_read(d, buf, sizeof buf, &got);
	while (rc == ERR_OK && got > 0);
	CHECK(rc == ERR_IO);
	aead_dec_free(d);
	wbuf_fini(&ct);
	free(pt);
	wbuf_fini(&ad);
}

TEST(sink_errors_are_sticky)
{
	struct wbuf ad, ct;
	struct aead_enc *e = NULL;
	struct sink k;
	uint8_t pt[4 * SMALL_CHUNK];
	struct aead_opts o = { SMALL_CHUNK, AEAD_ALG_AUTO };

	randombytes_buf(pt, sizeof pt);
	ad_make(&ad, "obj", "1.2");
	wbuf_init(&ct, AEAD_HEADER_LEN + SMALL_CHUNK + AEAD_TAG_LEN + 3);   /* room for one chunk */
	sink_wbuf(&k, &ct);
	CHECK(aead_enc_open_opts(&e, key_a, ad.p, ad.len, &k, &o) == ERR_OK);
	CHECK(aead_enc_write(e, pt, SMALL_CHUNK) == ERR_OK);
	CHECK(aead_enc_write(e, pt, SMALL_CHUNK) == ERR_LIMIT);
	CHECK(aead_enc_write(e, pt, 1) == ERR_LIMIT);
	CHECK(aead_enc_close(e) == ERR_LIMIT);
	aead_enc_free(e);
	wbuf_fini(&ct);
	wbuf_fini(&ad);
}

TEST(limits_and_bad_arguments)
{
	struct wbuf ad, ct;
	struct aead_enc *e = NULL;
	struct aead_dec *d = NULL;
	struct sink k;
	struct secret *short_key = NULL;
	uint8_t big_ad[CRYPTO_AEAD_AD_MAX + 1] = { 0 };
	uint8_t hdr[AEAD_HEADER_LEN + AEAD_TAG_LEN];
	struct aead_opts tiny = { CRYPTO_AEAD_CHUNK_MIN - 1, AEAD_ALG_AUTO };
	struct aead_opts huge = { CRYPTO_AEAD_CHUNK_MAX + 1, AEAD_ALG_AUTO };
	struct aead_opts badalg = { 0, (enum aead_alg)7 };
	struct src_mem m;
	struct src in;
	uint64_t n = 0;

	ad_make(&ad, "obj", "1.2");
	wbuf_init(&ct, 1 << 20);
	sink_wbuf(&k, &ct);
	CHECK(aead_enc_open_opts(&e, key_a, ad.p, ad.len, &k, &tiny) == ERR_LIMIT);
	CHECK(aead_enc_open_opts(&e, key_a, ad.p, ad.len, &k, &huge) == ERR_LIMIT);
	CHECK(aead_enc_open_opts(&e, key_a, ad.p, ad.len, &k, &badalg) == ERR_INTERNAL);
	CHECK(aead_enc_open(&e, key_a, big_ad, sizeof big_ad, &k) == ERR_LIMIT);
	CHECK(aead_enc_open(&e, key_a, big_ad, CRYPTO_AEAD_AD_MAX, &k) == ERR_OK);
	CHECK(aead_enc_close(e) == ERR_OK);
	CHECK(aead_enc_close(e) == ERR_INTERNAL);   /* twice */
	CHECK(aead_enc_write(e, "x", 1) == ERR_INTERNAL);
	aead_enc_free(e);
	e = NULL;
	CHECK(secret_random(16, &short_key) == ERR_OK);
	CHECK(aead_enc_open(&e, short_key, ad.p, ad.len, &k) == ERR_INTERNAL);
	CHECK(e == NULL);
	/* a header declaring a chunk size out of range is refused before any
	 * allocation of that size (it is covered by the tags anyway) */
	memcpy(hdr, "DVOB\x00\x01\x01\x00\xff\xff\xff\xff", 12);
	memset(hdr + 12, 0, sizeof hdr - 12);
	src_mem_init(&in, &m, hdr, sizeof hdr);
	CHECK(aead_dec_open(&d, key_a, NULL, 0, &in) == ERR_AUTH);
	CHECK(d == NULL);
	CHECK(aead_ct_size(0, 0, &n) == ERR_OK);
	CHECK_EQ_INT(n, AEAD_HEADER_LEN + AEAD_TAG_LEN);
	CHECK(aead_ct_size(UINT64_MAX - 10, 0, &n) == ERR_LIMIT);
	CHECK(aead_ct_size(10, 3, &n) == ERR_LIMIT);
	secret_free(short_key);
	wbuf_fini(&ct);
	wbuf_fini(&ad);
}

TEST(auto_prefers_aes_gcm)
{
	struct wbuf ad;
	uint8_t *ct = NULL;
	size_t n = 0;

	ad_make(&ad, "obj", "1.2");
	CHECK(aead_seal(key_a, ad.p, ad.len, "abc", 3, NULL, &ct, &n) == ERR_OK);
	CHECK(n > 6 && ct[6] == AEAD_ALG_AES256GCM);   /* on every CPU (SPEC section 6) */
	CHECK(n > 12 && ct[8] == 0 && ct[9] == 1 && ct[10] == 0 && ct[11] == 0);   /* 64 KiB */
	free(ct);
	wbuf_fini(&ad);
}

/* The src view's skip: from every start, over every distance up to the
 * end, then the rest read and compared; the end is still proven (a flipped
 * bit in the last chunk fails after any skip); a skip past the end fails. */
TEST(src_skip_positions)
{
	const size_t n = 5 * SMALL_CHUNK + 17;
	uint8_t *pt = rand_buf(n), buf[8 * SMALL_CHUNK];
	struct wbuf ad, ct;
	size_t a, start, dist;

	ad_make(&ad, "obj", "1.2.3");
	for (a = 0; a < nalgs; a++) {
		CHECK(enc_stream(key_a, &ad, pt, n, SMALL_CHUNK, algs[a], &ct) == ERR_OK);
		for (start = 0; start <= n; start += 13) {
			for (dist = 0; start + dist <= n; dist += 11) {
				struct aead_dec *d = NULL;
				struct src_mem m;
				struct src in, s;
				size_t have = 0, got = 0;

				src_mem_init(&in, &m, ct.p, ct.len);
				CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_OK);
				aead_dec_src(d, &s);
				CHECK(s.skip != NULL && s.size == (int64_t)n);
				CHECK(src_read_full(&s, buf, start) == ERR_OK);
				CHECK(memcmp(buf, pt, start) == 0);
				CHECK(s.skip(s.ctx, dist) == ERR_OK);
				for (;;) {
					CHECK(s.read(s.ctx, buf + have, sizeof buf - have, &got) == ERR_OK);
					if (got == 0)
						break;
					have += got;
				}
				CHECK(have == n - start - dist);
				CHECK(memcmp(buf, pt + start + dist, have) == 0);
				s.close(s.ctx);
			}
		}
		/* the last chunk is never skipped: a change there is found */
		for (dist = 0; dist <= n; dist += 29) {
			struct aead_dec *d = NULL;
			struct src_mem m;
			struct src in, s;
			enum err rc = ERR_OK;
			size_t got = 0;

			ct.p[ct.len - 1] ^= 1;
			src_mem_init(&in, &m, ct.p, ct.len);
			CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_OK);
			aead_dec_src(d, &s);
			rc = s.skip(s.ctx, dist);
			while (rc == ERR_OK) {
				rc = s.read(s.ctx, buf, sizeof buf, &got);
				if (rc == ERR_OK && got == 0)
					break;
			}
			CHECK(rc == ERR_AUTH);
			ct.p[ct.len - 1] ^= 1;
			s.close(s.ctx);
		}
		{
			struct aead_dec *d = NULL;
			struct src_mem m;
			struct src in, s;

			src_mem_init(&in, &m, ct.p, ct.len);
			CHECK(aead_dec_open(&d, key_a, ad.p, ad.len, &in) == ERR_OK);
			aead_dec_src(d, &s);
			CHECK(s.skip(s.ctx, n + 1) != ERR_OK);
			s.close(s.ctx);
		}
		wbuf_fini(&ct);
	}
	wbuf_fini(&ad);
	free(pt);
}

int main(void)
{
	if (crypto_init() != ERR_OK)
		return 1;
	if (!aead_gcm_hw())
		printf("# no AES instructions on this CPU: AES-256-GCM in software\n");
	algs[nalgs++] = AEAD_ALG_AES256GCM;
	algs[nalgs++] = AEAD_ALG_XCHACHA20POLY1305;
	if (secret_random(AEAD_KEY_LEN, &key_a) != ERR_OK || secret_random(AEAD_KEY_LEN, &key_b) != ERR_OK)
		return 1;
	RUN(round_trip_default_chunk_edges);
	RUN(round_trip_small_chunk_edges);
	RUN(round_trip_5mb);
	RUN(round_trip_max_chunk);
	RUN(every_bit_flip_fails);
	RUN(every_truncation_fails);
	RUN(extension_fails);
	RUN(chunk_swap_drop_duplicate_fail);
	RUN(wrong_identity_key_and_splice_fail);
	RUN(unclosed_encryptor_is_unreadable);
	RUN(errors_are_sticky);
	RUN(source_errors_pass_through);
	RUN(sink_errors_are_sticky);
	RUN(limits_and_bad_arguments);
	RUN(auto_prefers_aes_gcm);
	RUN(src_skip_positions);
	secret_free(key_b);
	secret_free(key_a);
	return TEST_DONE();
}
