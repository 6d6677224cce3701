/* kat_test.c: known-answer vectors for the crypto layer: RFC 6238 TOTP
 * (appendix B, SHA-1), RFC 4226 HOTP, RFC 4648 base32, RFC 5869 HKDF-SHA-256
 * case 1, RFC 4231 HMAC-SHA-256 case 2, SHA-256 (FIPS 180-2 appendix B, one
 * shot and in uneven pieces), AES-256-GCM (McGrew-Viega test
 * cases 13, 14, 16) and RFC 8032 Ed25519 test 1. Then golden objects of our
 * own formats (DVOB with both algorithms, DVWK, DVKP) made by an
 * independent Python implementation (python3-cryptography: AESGCM,
 * ChaCha20Poly1305 with a hand-written HChaCha20, HKDF, Argon2id), so that
 * the on-disk formats cannot change unnoticed. Layer: tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/wbuf.h"

/* ---- helpers ---- */

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = strlen(h) / 2, i;

	if (n > cap)
		abort();
	for (i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			abort();
		out[i] = (uint8_t)v;
	}
	return n;
}

static struct secret *sec_hex(const char *h)
{
	uint8_t b[256];
	size_t n = unhex(h, b, sizeof b);
	struct secret *s = NULL;

	if (secret_from_bytes(b, n, &s) != ERR_OK)
		abort();
	return s;
}

static struct secret *sec_str(const char *s)
{
	struct secret *x = NULL;

	if (secret_from_bytes(s, strlen(s), &x) != ERR_OK)
		abort();
	return x;
}

static int eq_hex(const uint8_t *p, size_t n, const char *h)
{
	uint8_t b[512];
	size_t m = unhex(h, b, sizeof b);

	return m == n && memcmp(p, b, n) == 0;
}

/* ---- TOTP / HOTP ---- */

TEST(totp_rfc6238_sha1)
{
	static const struct { uint64_t t; uint32_t c8, c6; } v[] = {
		{ 59, 94287082, 287082 },
		{ 1111111109, 7081804, 81804 },
		{ 1111111111, 14050471, 50471 },
		{ 1234567890, 89005924, 5924 },
		{ 2000000000, 69279037, 279037 },
		{ 20000000000ull, 65353130, 353130 },
	};
	struct secret *seed = sec_str("12345678901234567890");
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint32_t c = 0;
		uint64_t step = 0;
		char s[8];

		CHECK(totp_code(seed, v[i].t, 8, &c) == ERR_OK);
		CHECK_EQ_INT(c, v[i].c8);
		CHECK(totp_code(seed, v[i].t, 6, &c) == ERR_OK);
		CHECK_EQ_INT(c, v[i].c6);
		/* the typed form keeps its leading zeros */
		snprintf(s, sizeof s, "%06u", (unsigned)v[i].c6);
		CHECK(totp_verify(seed, v[i].t, s, 6, 0, &step) == ERR_OK);
		CHECK_EQ_INT(step, v[i].t / 30);
	}
	secret_free(seed);
}

TEST(hotp_rfc4226)
{
	static const uint32_t want[10] = { 755224, 287082, 359152, 969429, 338314,
	                                   254676, 287922, 162583, 399871, 520489 };
	struct secret *seed = sec_str("12345678901234567890");
	uint32_t c = 0;
	uint64_t i;

	for (i = 0; i < 10; i++) {
		CHECK(hotp_code(seed, i, 6, &c) == ERR_OK);
		CHECK_EQ_INT(c, want[i]);
	}
	CHECK(hotp_code(seed, 0, 5, &c) == ERR_INTERNAL);
	CHECK(hotp_code(seed, 0, 9, &c) == ERR_INTERNAL);
	secret_free(seed);
}

/* ---- base32 ---- */

TEST(base32_rfc4648)
{
	static const struct { const char *in, *pad, *nopad; } v[] = {
		{ "", "", "" },
		{ "f", "MY======", "MY" },
		{ "fo", "MZXQ====", "MZXQ" },
		{ "foo", "MZXW6===", "MZXW6" },
		{ "foob", "MZXW6YQ=", "MZXW6YQ" },
		{ "fooba", "MZXW6YTB", "MZXW6YTB" },
		{ "foobar", "MZXW6YTBOI======", "MZXW6YTBOI" },
	};
	char out[64];
	uint8_t bin[64];
	size_t i, n;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		size_t len = strlen(v[i].in);

		CHECK(b32_encode(v[i].in, len, true, out, sizeof out, &n) == ERR_OK);
		CHECK_EQ_STR(out, v[i].pad);
		CHECK_EQ_INT(n, strlen(v[i].pad));
		CHECK(b32_encode(v[i].in, len, false, out, sizeof out, &n) == ERR_OK);
		CHECK_EQ_STR(out, v[i].nopad);
		n = 99;
		CHECK(b32_decode(v[i].pad, strlen(v[i].pad), bin, sizeof bin, &n) == ERR_OK);
		CHECK(n == len && memcmp(bin, v[i].in, len) == 0);
		n = 99;
		CHECK(b32_decode(v[i].nopad, strlen(v[i].nopad), bin, sizeof bin, &n) == ERR_OK);
		CHECK(n == len && memcmp(bin, v[i].in, len) == 0);
	}
	/* lower case is accepted */
	CHECK(b32_decode("mzxw6ytboi", 10, bin, sizeof bin, &n) == ERR_OK);
	CHECK(n == 6 && memcmp(bin, "foobar", 6) == 0);
	/* RFC 6238 seed as authenticator apps see it */
	CHECK(b32_encode("12345678901234567890", 20, false, out, sizeof out, &n) == ERR_OK);
	CHECK_EQ_STR(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST(base32_rejects)
{
	static const char *bad[] = {
		"M",            /* impossible length (1 mod 8) */
		"MZX",          /* 3 mod 8 */
		"MZXW6Y",       /* 6 mod 8 */
		"MZ======",     /* non-zero trailing bits ("f" is MY) */
		"MY=====",      /* wrong padding count */
		"MY=======",    /* too much padding */
		"MZXQ==",       /* padding without a full block */
		"MZ1Q",         /* '1' is not in the alphabet */
		"MZ Q",
		"MY==MY==",     /* padding in the middle */
		"M=Y=====",
	};
	uint8_t bin[16];
	char out[8];
	size_t i, n = 77;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum err rc = b32_decode(bad[i], strlen(bad[i]), bin, sizeof bin, &n);
		if (rc != ERR_PARSE)
			fprintf(stderr, "  accepted or wrong error for \"%s\": %s\n", bad[i], err_str(rc));
		CHECK(rc == ERR_PARSE);
	}
	CHECK_EQ_INT(n, 77);  /* untouched on failure */
	/* output too small */
	CHECK(b32_decode("MZXW6YTBOI", 10, bin, 5, &n) == ERR_LIMIT);
	CHECK(b32_encode("foobar", 6, false, out, sizeof out, &n) == ERR_LIMIT);
}

/* ---- HKDF, HMAC ---- */

TEST(hkdf_rfc5869_case1)
{
	struct secret *ikm = sec_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	uint8_t salt[13], info[10], okm[42];

	unhex("000102030405060708090a0b0c", salt, sizeof salt);
	unhex("f0f1f2f3f4f5f6f7f8f9", info, sizeof info);
	CHECK(kdf_hkdf_sha256(ikm, salt, sizeof salt, info, sizeof info, okm, sizeof okm) == ERR_OK);
	CHECK(eq_hex(okm, sizeof okm, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db0"
	                              "2d56ecc4c5bf34007208d5b887185865"));
	/* a prefix of the output is the shorter output */
	CHECK(kdf_hkdf_sha256(ikm, salt, sizeof salt, info, sizeof info, okm, 10) == ERR_OK);
	CHECK(eq_hex(okm, 10, "3cb25f25faacd57a9043"));
	CHECK(kdf_hkdf_sha256(ikm, salt, sizeof salt, info, sizeof info, okm, 0) == ERR_LIMIT);
	secret_free(ikm);
}

TEST(hkdf_rfc5869_case3_no_salt)
{
	struct secret *ikm = sec_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	uint8_t okm[42];

	CHECK(kdf_hkdf_sha256(ikm, NULL, 0, NULL, 0, okm, sizeof okm) == ERR_OK);
	CHECK(eq_hex(okm, sizeof okm, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	                              "9d201395faa4b61a96c8"));
	secret_free(ikm);
}

TEST(hmac_sha256_rfc4231_case2)
{
	struct secret *k = sec_str("Jefe");
	const char *m = "what do ya want for nothing?";
	uint8_t mac[KDF_HMAC_SHA256_LEN];

	CHECK(kdf_hmac_sha256(k, m, strlen(m), mac) == ERR_OK);
	CHECK(eq_hex(mac, sizeof mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
	secret_free(k);
}

/* ---- SHA-256 (fixity values; hash.c) ---- */

static void sha_pieces(const uint8_t *p, size_t n, size_t step, uint8_t out[32])
{
	struct sha256 *h = NULL;
	size_t off = 0;

	CHECK(sha256_new(&h) == ERR_OK);
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		sha256_update(h, p + off, k);
		off += k;
	}
	sha256_final(h, out);
}

TEST(sha256_fips180_2)
{
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	const char *dm = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	uint8_t d[32], *mil = malloc(1000000);
	struct sha256 *h = NULL;

	sha256_once("abc", 3, d);
	CHECK(eq_hex(d, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	sha256_once("", 0, d);
	CHECK(eq_hex(d, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	sha256_once(m2, strlen(m2), d);
	CHECK(eq_hex(d, 32, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	CHECK(mil != NULL);
	memset(mil, 'a', 1000000);
	sha256_once(mil, 1000000, d);
	CHECK(eq_hex(d, 32, dm));
	sha_pieces(mil, 1000000, 65536, d);
	CHECK(eq_hex(d, 32, dm));
	sha_pieces(mil, 1000000, 61, d);   /* pieces not a multiple of the block */
	CHECK(eq_hex(d, 32, dm));
	CHECK(sha256_new(&h) == ERR_OK);   /* freed unfinished */
	sha256_update(h, "abc", 3);
	sha256_free(h);
	sha256_free(NULL);
	free(mil);
}

/* ---- AES-256-GCM (the primitive under our object format) ---- */

static void gcm_case(const char *k, const char *iv, const char *p, const char *a, const char *c, const char *t)
{
	uint8_t key[32], nonce[12], pt[64], ad[32], ct[80], out[64];
	size_t pl = unhex(p, pt, sizeof pt), al = unhex(a, ad, sizeof ad);
	unsigned long long cl = 0, ml = 0;

	gnutls_aead_cipher_hd_t h = NULL;
	gnutls_datum_t kd = { key, sizeof key };
	size_t gl = sizeof ct, gm = sizeof out;

	unhex(k, key, sizeof key);
	unhex(iv, nonce, sizeof nonce);
	/* GnuTLS: the code that seals and opens objects (aead.c), on every
	 * CPU (with or without AES instructions: aead_soft.sh runs this
	 * test with its software code) */
	CHECK(gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &kd) == 0);
	CHECK(gnutls_aead_cipher_encrypt(h, nonce, sizeof nonce, ad, al, 16, pt, pl, ct, &gl) == 0);
	CHECK(gl == pl + 16);
	CHECK(eq_hex(ct, pl, c));
	CHECK(eq_hex(ct + pl, 16, t));
	CHECK(gnutls_aead_cipher_decrypt(h, nonce, sizeof nonce, ad, al, 16, ct, gl, out, &gm) == 0);
	CHECK(gm == pl && memcmp(out, pt, pl) == 0);
	ct[0] ^= 1;
	gm = sizeof out;
	CHECK(gnutls_aead_cipher_decrypt(h, nonce, sizeof nonce, ad, al, 16, ct, gl, out, &gm) != 0);
	gnutls_aead_cipher_deinit(h);
	/* libsodium's (objects of earlier versions), where it has one */
	if (!crypto_aead_aes256gcm_is_available())
		return;
	CHECK(crypto_aead_aes256gcm_encrypt(ct, &cl, pt, pl, ad, al, NULL, nonce, key) == 0);
	CHECK(cl == pl + 16);
	CHECK(eq_hex(ct, pl, c));
	CHECK(eq_hex(ct + pl, 16, t));
	CHECK(crypto_aead_aes256gcm_decrypt(out, &ml, NULL, ct, cl, ad, al, nonce, key) == 0);
	CHECK(ml == pl && memcmp(out, pt, pl) == 0);
	ct[0] ^= 1;
	CHECK(crypto_aead_aes256gcm_decrypt(out, &ml, NULL, ct, cl, ad, al, nonce, key) != 0);
}

TEST(aes256gcm_mcgrew_viega)
{
	/* test case 13 */
	gcm_case("0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
	         "", "", "", "530f8afbc74536b9a963b4f1c4cb738b");
	/* test case 14 */
	gcm_case("0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
	         "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
	         "d0d1c8a799996bf0265b98b5d48ab919");
	/* test case 16 */
	gcm_case("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
	         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	         "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	         "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	         "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	         "76fc6ece0f4e1768cddf8853bb2d551b");
}

/* ---- Ed25519 ---- */

TEST(ed25519_rfc8032_test1)
{
	struct secret *seed = sec_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
	struct secret *sk = NULL;
	uint8_t pk[SIGN_PK_LEN], sig[SIGN_SIG_LEN];

	CHECK(sign_keypair_from_seed(seed, pk, &sk) == ERR_OK);
	CHECK(eq_hex(pk, sizeof pk, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
	CHECK(sign_detached(sk, "", 0, sig) == ERR_OK);
	CHECK(eq_hex(sig, sizeof sig, "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
	                              "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"));
	CHECK(sign_verify(pk, "", 0, sig) == ERR_OK);
	sig[63] ^= 0x10;
	CHECK(sign_verify(pk, "", 0, sig) == ERR_AUTH);
	secret_free(sk);
	secret_free(seed);
}

/* ---- golden objects of our formats (see the comment at the top) ---- */

static const char fox[] = "The quick brown fox jumps over the lazy dog";

/* data key 00..1f, salt 40..5f, chunk 16, AD = ("obj-1", "1.2.3.4") */
static const uint8_t dvob_gcm[135] =
	"\x44\x56\x4f\x42\x00\x01\x01\x00\x00\x00\x00\x10\x40\x41\x42\x43"
	"\x44\x45\x46\x47\x48\x49\x4a\x4b\x4c\x4d\x4e\x4f\x50\x51\x52\x53"
	"\x54\x55\x56\x57\x58\x59\x5a\x5b\x5c\x5d\x5e\x5f\xd4\x50\xb7\xf7"
	"\x8a\xfe\x02\xea\x3d\x52\xa4\xe1\x0f\xa9\x73\x80\xfd\x09\xec\xc3"
	"\x39\x40\xc7\x63\xc7\x36\xd3\x8a\xef\x1d\xee\x4a\xee\x32\x8f\x29"
	"\x8d\x00\x65\xd2\x21\x6c\x26\xaf\xbd\x54\xb2\xb0\xc6\xcd\x2c\x96"
	"\x98\x01\xbd\xc6\xf0\xdb\xf8\x69\xa7\xc8\xf9\x8d\x79\x54\xd1\x91"
	"\x78\xfe\xe8\xc2\x18\x01\x43\x95\x65\x9c\xb5\x2a\xe7\xa3\x30\x95"
	"\x88\xf3\xfc\xe6\xa3\x54\x4a";

static const uint8_t dvob_xchacha[135] =
	"\x44\x56\x4f\x42\x00\x01\x02\x00\x00\x00\x00\x10\x40\x41\x42\x43"
	"\x44\x45\x46\x47\x48\x49\x4a\x4b\x4c\x4d\x4e\x4f\x50\x51\x52\x53"
	"\x54\x55\x56\x57\x58\x59\x5a\x5b\x5c\x5d\x5e\x5f\xe2\xf5\x1b\x9a"
	"\x45\x9f\x14\x1a\xe6\x6c\x6e\x96\x78\xa7\xfe\x80\xe1\xf2\x0a\x59"
	"\x92\xd8\xff\xa7\x9d\x0d\x66\xb2\x24\xc2\x31\x21\x4b\xc8\x1d\xf1"
	"\xdc\xcc\x00\x81\xc1\x87\xa4\x4a\x04\xae\x06\xc3\x13\x40\x1c\x08"
	"\xdb\xd1\x22\x38\x88\x00\x69\x68\x31\xe8\xf1\x63\x09\x03\xa7\x6b"
	"\xb7\xae\x5e\xdb\x4f\xe0\xdc\x8f\xa1\xfa\x7b\xe3\x1a\xa4\xc3\xf0"
	"\xde\xdf\x88\xec\x51\x04\x02";

static void golden_ad(struct wbuf *w)
{
	wbuf_init(w, 1024);
	aead_ad_put(w, "obj-1", 5);
	aead_ad_put(w, "1.2.3.4", 7);
}

static void golden_open(const uint8_t *ct, size_t n)
{
	struct secret *k = sec_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	struct wbuf ad;
	uint8_t *pt = NULL;
	size_t len = 0;

	golden_ad(&ad);
	CHECK(wbuf_err(&ad) == ERR_OK);
	CHECK(aead_open(k, ad.p, ad.len, ct, n, &pt, &len) == ERR_OK);
	CHECK(len == sizeof fox - 1 && pt != NULL && memcmp(pt, fox, len) == 0);
	free(pt);
	wbuf_fini(&ad);
	secret_free(k);
}

TEST(golden_dvob_aes256gcm)
{
	/* opened on every CPU (with or without AES instructions) */
	golden_open(dvob_gcm, sizeof dvob_gcm);
}

TEST(golden_dvob_xchacha20poly1305)
{
	golden_open(dvob_xchacha, sizeof dvob_xchacha);
}

/* master key 80..9f, label "patient:42", data key 10..2f, nonce c0..d7 */
static const uint8_t dvwk[88] =
	"\x44\x56\x57\x4b\x01\x02\x00\x00\x1e\x3e\xd9\x87\xad\x60\xd1\xcb"
	"\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf"
	"\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xbf\xd9\x2f\xb8\x63\x08\xf4\x4b"
	"\xb8\x27\xe5\x4a\xfa\x4f\xba\xc7\x19\xec\x01\xa5\x66\xc6\x33\x06"
	"\x58\x47\x48\x09\x4a\xb2\x70\x43\xdb\xf8\x01\xc2\x03\x55\x35\x73"
	"\x7d\x7d\x5e\xc9\x1b\xe5\x1d\x78";

TEST(golden_keywrap)
{
	struct secret *mk = sec_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
	struct secret *dk = NULL;
	uint8_t id[MK_ID_LEN];

	CHECK(mk_id(mk, id) == ERR_OK);
	CHECK(memcmp(id, dvwk + 8, MK_ID_LEN) == 0);
	CHECK(keywrap_unwrap(mk, "patient:42", 10, dvwk, sizeof dvwk, &dk) == ERR_OK);
	CHECK(dk != NULL && secret_len(dk) == 32 &&
	      eq_hex(secret_view(dk), 32, "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"));
	secret_free(dk);
	secret_free(mk);
}

/* passphrase "correct horse battery staple", Argon2id t=1 m=8 KiB p=1, salt e0..ef */
static const uint8_t dvkp[44] =
	"\x44\x56\x4b\x50\x01\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"
	"\x00\x00\x20\x00\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb"
	"\xec\xed\xee\xef\x0d\xb6\xda\xbf\x07\x3c\x4f\x3a";

TEST(golden_passphrase_record)
{
	struct secret *pass = sec_str("correct horse battery staple");
	struct secret *bad = sec_str("correct horse battery stapler");
	struct secret *mk = NULL;

	CHECK(mk_pass_open(pass, dvkp, sizeof dvkp, &mk) == ERR_OK);
	CHECK(mk != NULL && eq_hex(secret_view(mk), 32,
	      "5b55b516e050b770b6c558bf9fffcef8861c26d3a2c9d8b0eef0fabbb646212d"));
	secret_free(mk);
	mk = NULL;
	CHECK(mk_pass_open(bad, dvkp, sizeof dvkp, &mk) == ERR_AUTH);
	CHECK(mk == NULL);
	secret_free(bad);
	secret_free(pass);
}

int main(void)
{
	if (crypto_init() != ERR_OK)
		return 1;
	RUN(totp_rfc6238_sha1);
	RUN(hotp_rfc4226);
	RUN(base32_rfc4648);
	RUN(base32_rejects);
	RUN(hkdf_rfc5869_case1);
	RUN(hkdf_rfc5869_case3_no_salt);
	RUN(hmac_sha256_rfc4231_case2);
	RUN(sha256_fips180_2);
	RUN(aes256gcm_mcgrew_viega);
	RUN(ed25519_rfc8032_test1);
	RUN(golden_dvob_aes256gcm);
	RUN(golden_dvob_xchacha20poly1305);
	RUN(golden_keywrap);
	RUN(golden_passphrase_record);
	return TEST_DONE();
}
