/* aead_ra_test.c: random access into a DVOB object (aead_dec_read_at and
 * the read_at of aead_dec_src). Layer: tests. */
#include <stdlib.h>
#include "test.h"
#include "dicomvault/crypto.h"

#define PT_LEN (200000u)

static uint8_t *pt;
static struct wbuf ct;
static struct secret *key;
static const char ad[] = "object-1";

static enum err seal_all(uint32_t chunk)
{
	struct aead_opts o = { .chunk = chunk, .alg = AEAD_ALG_AUTO };
	struct aead_enc *e = NULL;
	struct sink k;
	enum err rc;

	wbuf_reset(&ct);
	sink_wbuf(&k, &ct);
	rc = aead_enc_open_opts(&e, key, ad, sizeof ad - 1, &k, &o);
	if (rc == ERR_OK)
		rc = aead_enc_write(e, pt, PT_LEN);
	if (rc == ERR_OK)
		rc = aead_enc_close(e);
	aead_enc_free(e);
	return rc;
}

static enum err open_src(const uint8_t *c, size_t n, struct src *mem, struct src_mem *m, struct src *s)
{
	struct aead_dec *d = NULL;
	enum err rc;

	src_mem_init(mem, m, c, n);
	rc = aead_dec_open(&d, key, ad, sizeof ad - 1, mem);
	if (rc == ERR_OK)
		aead_dec_src(d, s);
	return rc;
}

TEST(random_reads_match)
{
	struct src mem, s;
	struct src_mem m;
	uint8_t buf[70000];
	unsigned i;

	CHECK(seal_all(4096) == ERR_OK);
	CHECK(open_src(ct.p, ct.len, &mem, &m, &s) == ERR_OK);
	CHECK(s.read_at != NULL);
	CHECK_EQ_INT(s.size, PT_LEN);
	srand(7);
	for (i = 0; i < 300; i++) {
		size_t n = (size_t)rand() % sizeof buf;
		size_t off = (size_t)rand() % (PT_LEN - n + 1);
		CHECK(s.read_at(s.ctx, off, buf, n) == ERR_OK);
		CHECK(memcmp(buf, pt + off, n) == 0);
	}
	/* the last bytes, the first, past the end */
	CHECK(s.read_at(s.ctx, PT_LEN - 1, buf, 1) == ERR_OK && buf[0] == pt[PT_LEN - 1]);
	CHECK(s.read_at(s.ctx, 0, buf, 1) == ERR_OK && buf[0] == pt[0]);
	CHECK(s.read_at(s.ctx, PT_LEN, buf, 1) == ERR_PARSE);
	/* sequential reads are not disturbed by random ones */
	{
		size_t got = 0, total = 0;
		while (total < PT_LEN) {
			CHECK(s.read(s.ctx, buf, 5000, &got) == ERR_OK);
			if (got == 0)
				break;
			CHECK(memcmp(buf, pt + total, got) == 0);
			total += got;
			CHECK(s.read_at(s.ctx, (total * 7) % PT_LEN, buf + 6000, 10) == ERR_OK);
		}
		CHECK_EQ_INT(total, PT_LEN);
	}
	src_close(&s);
}

TEST(tampered_chunk_refused)
{
	struct src mem, s;
	struct src_mem m;
	uint8_t *c, buf[64];
	size_t stride = 4096 + 16;

	CHECK(seal_all(4096) == ERR_OK);
	c = malloc(ct.len);
	if (c == NULL)
		return;
	memcpy(c, ct.p, ct.len);
	c[44 + 2 * stride + 100] ^= 1;   /* inside chunk 2 */
	CHECK(open_src(c, ct.len, &mem, &m, &s) == ERR_OK);
	CHECK(s.read_at(s.ctx, 10, buf, 10) == ERR_OK);                 /* chunk 0 fine */
	CHECK(s.read_at(s.ctx, 2 * 4096 + 5, buf, 10) == ERR_AUTH);     /* chunk 2 refused */
	CHECK(s.read_at(s.ctx, 4096 + 4090, buf, 20) == ERR_AUTH);      /* spans 1 and 2 */
	src_close(&s);
	/* cut at a chunk boundary: no size fits, so no random access */
	CHECK(open_src(ct.p, 44 + 10 * stride, &mem, &m, &s) == ERR_OK);
	CHECK(s.read_at == NULL && s.size < 0);
	src_close(&s);
	/* cut so that a forged empty last chunk follows chunk 9: refused */
	CHECK(open_src(ct.p, 44 + 10 * stride + 16, &mem, &m, &s) == ERR_OK);
	CHECK(s.read_at != NULL);
	if (s.read_at != NULL) {
		CHECK(s.read_at(s.ctx, 9 * 4096, buf, 10) == ERR_OK);        /* chunk 9 is genuine */
		CHECK(s.read_at(s.ctx, 10 * 4096 - 5, buf, 5) == ERR_OK);
		CHECK_EQ_INT(s.size, 10 * 4096);
	}
	src_close(&s);
	/* a genuine stream's size cannot be shortened without detection:
	 * the sequential reader sees the forged end */
	{
		size_t got = 0, total = 0;
		enum err rc = ERR_OK;
		CHECK(open_src(ct.p, 44 + 10 * stride + 16, &mem, &m, &s) == ERR_OK);
		while (rc == ERR_OK) {
			rc = s.read(s.ctx, buf, sizeof buf, &got);
			if (rc != ERR_OK || got == 0)
				break;
			total += got;
		}
		CHECK(rc == ERR_AUTH);
		src_close(&s);
	}
	free(c);
}

int main(void)
{
	size_t i;

	pt = malloc(PT_LEN);
	if (pt == NULL || secret_random(32, &key) != ERR_OK)
		return 1;
	for (i = 0; i < PT_LEN; i++)
		pt[i] = (uint8_t)(i * 31 + (i >> 8));
	wbuf_init(&ct, 1 << 24);
	RUN(random_reads_match);
	RUN(tampered_chunk_refused);
	wbuf_fini(&ct);
	secret_free(key);
	free(pt);
	return TEST_DONE();
}
