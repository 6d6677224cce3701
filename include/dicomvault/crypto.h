/* crypto.h: the crypto layer of dicomvault. Guarded secrets, constant-time
 * compare, chunked streaming AEAD for objects at rest, key wrap and the
 * master key file, HKDF and HMAC-SHA-256, Argon2id password hashes, TOTP
 * with base32 and otpauth URIs, Ed25519 signatures. Built on libsodium,
 * and on GnuTLS for HMAC-SHA1, SHA-256 fixity and the AES-256-GCM of
 * object chunks. Formats: docs/internals/crypto.md.
 *
 * Every fallible function returns enum err, is warn-unused-result and sets
 * its outputs only on success. Every entry point calls crypto_init() itself.
 * Layer: crypto. */
#ifndef DICOMVAULT_CRYPTO_H
#define DICOMVAULT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/io.h"

/* ---- init, secrets, memory (secret.c) ---- */

/* Initialises libsodium once (pthread_once); idempotent and thread-safe. */
WUR enum err crypto_init(void);

/* Key material, passwords, TOTP seeds, tokens. The bytes live in
 * sodium_malloc memory: guard pages, canary, mlock, excluded from core
 * dumps, wiped on free. A NUL byte always follows the len bytes. */
struct secret;

/* A zero-filled writable secret of len bytes. */
WUR enum err secret_new(size_t len, struct secret **out);
/* len random bytes, sealed. */
WUR enum err secret_random(size_t len, struct secret **out);
/* A sealed copy of n bytes (the caller wipes its own copy). */
WUR enum err secret_from_bytes(const void *p, size_t n, struct secret **out);
/* Wipes and frees; takes NULL. */
void secret_free(struct secret *s);
size_t secret_len(const struct secret *s);
const uint8_t *secret_view(const struct secret *s);
/* Writable bytes; only before secret_seal(). */
uint8_t *secret_mut(struct secret *s);
/* Makes the bytes read-only (a stray write faults). */
void secret_seal(struct secret *s);
/* The bytes as a C string (a NUL follows them; they may contain NUL). */
const char *secret_cstr(const struct secret *s);

#define SECRET_TRIM_NEWLINE 1u   /* drop one trailing "\n" or "\r\n" */

/* Reads a key or passphrase (non-empty, at most max bytes, max at most
 * CRYPTO_SECRET_FILE_MAX) from fd until end of file. If fd is a regular
 * file it must not be accessible by group or other (mode & 077) and must be
 * owned by us or root, else ERR_DENIED; the reason is logged. More than
 * max bytes: ERR_LIMIT; empty: ERR_PARSE. */
WUR enum err secret_from_fd(int fd, size_t max, unsigned flags, struct secret **out);
WUR enum err secret_read_file(const char *path, size_t max, unsigned flags, struct secret **out);

/* Constant-time equality of n bytes (sodium_memcmp). */
WUR bool ct_equal(const void *a, const void *b, size_t n);
/* Wipes memory the compiler may not elide (sodium_memzero). Takes NULL. */
void mem_wipe(void *p, size_t n);
/* n bytes from the system CSPRNG. */
WUR enum err rand_bytes(void *p, size_t n);

/* ---- key derivation and keyed hashes (kdf.c) ---- */

#define KDF_HMAC_SHA256_LEN 32u

/* HKDF-SHA-256 (RFC 5869), extract then expand; outlen <= 255 * 32.
 * out should be guarded memory (secret_mut) when it is a key. */
WUR enum err kdf_hkdf_sha256(const struct secret *ikm, const void *salt, size_t saltlen,
                             const void *info, size_t infolen, void *out, size_t outlen);
/* HMAC-SHA-256(key, m): keyed hashes for index matching. */
WUR enum err kdf_hmac_sha256(const struct secret *key, const void *m, size_t n,
                             uint8_t out[KDF_HMAC_SHA256_LEN]);

/* ---- chunked streaming AEAD for objects at rest (aead.c) ---- */

enum aead_alg {
	AEAD_ALG_AUTO = 0,              /* AES-256-GCM (XChaCha20-Poly1305: opened, sealed only when asked) */
	AEAD_ALG_AES256GCM = 1,
	AEAD_ALG_XCHACHA20POLY1305 = 2
};

#define AEAD_HEADER_LEN 44u   /* "DVOB" u16 version, u8 alg, u8 flags, u32 chunk, salt[32] */
#define AEAD_TAG_LEN    16u
#define AEAD_KEY_LEN    32u   /* data keys */

/* Whether this CPU runs AES-256-GCM in hardware (AES-NI and PCLMUL, or
 * the ARMv8 AES and PMULL instructions): constant-time and fast; without,
 * software tables. */
bool aead_gcm_hw(void);

struct aead_opts {
	uint32_t chunk;          /* plaintext bytes per chunk; 0: CRYPTO_AEAD_CHUNK_DEFAULT */
	enum aead_alg alg;
};

struct aead_enc;
struct aead_dec;

/* Ciphertext size of a plaintext of ptlen bytes (chunk 0: default). */
WUR enum err aead_ct_size(uint64_t ptlen, uint32_t chunk, uint64_t *ctlen);

/* Encrypting sink. data_key is the 32-byte patient data key; ad is the
 * object's identity (see aead_ad_put()), copied, at most CRYPTO_AEAD_AD_MAX
 * bytes. The header goes to out at once. out is borrowed. */
WUR enum err aead_enc_open(struct aead_enc **e, const struct secret *data_key,
                           const void *ad, size_t adlen, struct sink *out);
WUR enum err aead_enc_open_opts(struct aead_enc **e, const struct secret *data_key,
                                const void *ad, size_t adlen, struct sink *out,
                                const struct aead_opts *o);
WUR enum err aead_enc_write(struct aead_enc *e, const void *p, size_t n);
/* A struct sink that writes plaintext into e (e stays the owner). */
void aead_enc_sink(struct aead_enc *e, struct sink *k);
/* Emits the last chunk. Without it the object is unreadable (truncated). */
WUR enum err aead_enc_close(struct aead_enc *e);
/* Wipes and frees; takes NULL. */
void aead_enc_free(struct aead_enc *e);

/* Decrypting source over a ciphertext source in (borrowed; it must outlive
 * d), positioned at the start of the object. Reads and checks the header
 * at once. Tampering, truncation,
 * extension, a wrong key or a wrong ad give ERR_AUTH; an algorithm this
 * CPU lacks gives ERR_UNSUPPORTED; errors of in are passed on. */
WUR enum err aead_dec_open(struct aead_dec **d, const struct secret *data_key,
                           const void *ad, size_t adlen, struct src *in);
/* Plaintext of verified chunks only; *got = 0 only after the last chunk
 * verified and the ciphertext ended. Errors are sticky. With want at
 * least the chunk size, a whole chunk is opened straight in buf (no copy)
 * and one chunk is returned; if its tag fails, those bytes of buf are
 * wiped (zeros) before ERR_AUTH is returned. */
WUR enum err aead_dec_read(struct aead_dec *d, void *buf, size_t want, size_t *got);
/* Random access: n plaintext bytes at off, each chunk they touch verified
 * first (one chunk cached). Needs in->read_at and a known size; a chunk
 * that fails gives ERR_AUTH. Independent of aead_dec_read's position.
 * Truncation at a chunk boundary is seen only when the (forged) last chunk
 * is read: read the object through once sequentially to prove it whole. */
WUR enum err aead_dec_read_at(struct aead_dec *d, uint64_t off, void *buf, size_t n);
/* A struct src view of d: sequential, plus read_at when in has it and a
 * size, plus skip when in has skip and a size: skip passes over whole
 * chunks without decrypting (nor verifying) them; never the last chunk,
 * and nothing of a skipped chunk is released. size is the plaintext size
 * implied by in's size, or -1. Its close() frees d. */
void aead_dec_src(struct aead_dec *d, struct src *s);
void aead_dec_free(struct aead_dec *d);

/* One-shot forms for small buffers. *out is malloc'd (caller frees). */
WUR enum err aead_seal(const struct secret *data_key, const void *ad, size_t adlen,
                       const void *pt, size_t n, const struct aead_opts *o,
                       uint8_t **out, size_t *outlen);
WUR enum err aead_open(const struct secret *data_key, const void *ad, size_t adlen,
                       const void *ct, size_t n, uint8_t **out, size_t *outlen);

/* Appends one field of an object identity to w as u32be length || bytes,
 * so that ("ab","c") and ("a","bc") differ. */
void aead_ad_put(struct wbuf *w, const void *p, size_t n);

/* ---- key wrap, master key file, passphrase mode (keywrap.c) ---- */

#define KEYWRAP_OVERHEAD  56u   /* "DVWK" u8 ver, u8 alg, u16 0, id[8], nonce[24] | ct | tag[16] */
#define MK_LEN            32u
#define MK_ID_LEN         8u
#define MK_FILE_LEN       40u   /* "DVMK" u8 version, u8[3] 0, key[32] */
#define MK_PASS_REC_LEN   44u   /* "DVKP" u8 ver, u8 alg, u16 0, u32 ops, u64 mem, salt[16], id[8] */

/* Wraps key (1..CRYPTO_WRAP_MAX_KEY bytes) under the master key with
 * XChaCha20-Poly1305, a random nonce and AD = blob header || label (the
 * key's id). Appends KEYWRAP_OVERHEAD + key length bytes to out. */
WUR enum err keywrap_wrap(const struct secret *mk, const void *label, size_t labellen,
                          const struct secret *key, struct wbuf *out);
/* ERR_AUTH: wrong master key, label or a changed blob. */
WUR enum err keywrap_unwrap(const struct secret *mk, const void *label, size_t labellen,
                            const void *blob, size_t n, struct secret **key);
/* A public 8-byte id of a master key (HMAC-derived), to tell keys apart. */
WUR enum err mk_id(const struct secret *mk, uint8_t id[MK_ID_LEN]);

/* A new random master key. */
WUR enum err mk_generate(struct secret **mk);
WUR enum err mk_file_encode(const struct secret *mk, uint8_t out[MK_FILE_LEN]);
WUR enum err mk_file_decode(const void *p, size_t n, struct secret **mk);
/* Creates path (must not exist) with mode 0600, writes, fsyncs. */
WUR enum err mk_file_write(const char *path, const struct secret *mk);
/* Reads path (secret_read_file rules: 0600-like modes only). */
WUR enum err mk_file_read(const char *path, struct secret **mk);

/* Argon2id cost; opslimit 0 means the default of the use. */
struct pwhash_limits {
	uint64_t opslimit;
	size_t memlimit;   /* bytes */
};

/* Passphrase mode: master key = Argon2id(passphrase, random salt),
 * MODERATE limits unless lim says otherwise. rec (to store next to the
 * wrapped keys) holds the parameters, the salt and the key's id. */
WUR enum err mk_pass_create(const struct secret *pass, const struct pwhash_limits *lim,
                            uint8_t rec[MK_PASS_REC_LEN], struct secret **mk);
/* ERR_AUTH: wrong passphrase; ERR_PARSE/ERR_LIMIT: bad record. */
WUR enum err mk_pass_open(const struct secret *pass, const void *rec, size_t n, struct secret **mk);

/* ---- password hashes (pwhash.c) ---- */

#define PWHASH_STR_MAX 128u   /* crypto_pwhash_STRBYTES, NUL included */

/* Argon2id encoded hash ("$argon2id$v=19$m=...") with INTERACTIVE limits
 * unless lim says otherwise. Passwords up to CRYPTO_PASSWORD_MAX bytes. */
WUR enum err pwhash_str(const struct secret *pw, const struct pwhash_limits *lim,
                        char out[PWHASH_STR_MAX]);
/* ERR_OK on a match, ERR_AUTH otherwise, ERR_PARSE on a bad hash string. */
WUR enum err pwhash_verify(const char *hash, const struct secret *pw);
/* Spends the time of a verification (for unknown users); always ERR_AUTH. */
WUR enum err pwhash_verify_dummy(const struct secret *pw);
/* *needs = true when hash was made with other limits than lim (NULL: the
 * defaults); rehash after the next successful login. */
WUR enum err pwhash_needs_rehash(const char *hash, const struct pwhash_limits *lim, bool *needs);

/* ---- TOTP, RFC 6238 with HMAC-SHA1 (totp.c) ---- */

#define TOTP_STEP       30u
#define TOTP_DIGITS     6u
#define TOTP_SEED_LEN   20u   /* 160 bits, RFC 4226 section 4 */
#define TOTP_SKEW       1u    /* steps accepted either side */

/* HOTP (RFC 4226) of a counter, digits 6..8. */
WUR enum err hotp_code(const struct secret *seed, uint64_t counter, unsigned digits, uint32_t *code);
/* TOTP at unix time t: HOTP of t / 30. */
WUR enum err totp_code(const struct secret *seed, uint64_t t, unsigned digits, uint32_t *code);
/* Checks a 6-digit code typed by the user against steps now/30 - 1 ..
 * now/30 + 1, never below min_step (pass the last accepted step + 1 to
 * refuse replays, 0 for none). *step is the matched step (the latest if
 * several match). ERR_AUTH otherwise. */
WUR enum err totp_verify(const struct secret *seed, uint64_t now, const char *code, size_t len,
                         uint64_t min_step, uint64_t *step);
/* A new random seed of TOTP_SEED_LEN bytes. */
WUR enum err totp_seed_new(struct secret **seed);
/* A seed from its base32 text. */
WUR enum err totp_seed_parse(const char *b32, size_t len, struct secret **seed);
/* otpauth://totp/ISSUER:NAME?secret=B32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 * with the label and issuer percent-encoded and the secret unpadded. The
 * URI holds the seed, so it is returned as a secret (secret_cstr()). */
WUR enum err totp_uri(const char *issuer, const char *account, const struct secret *seed,
                      struct secret **uri);

/* Base32 (RFC 4648 section 6). Encode writes a NUL-terminated string
 * (cap includes the NUL), padded with '=' if pad. Decode accepts upper or
 * lower case, with or without correct padding, and rejects other
 * characters, impossible lengths and non-zero trailing bits. */
WUR enum err b32_encode(const void *p, size_t n, bool pad, char *out, size_t cap, size_t *outlen);
WUR enum err b32_decode(const char *s, size_t len, void *out, size_t cap, size_t *outlen);

/* ---- SHA-256 fixity (hash.c) ---- */

struct sha256;
WUR enum err sha256_new(struct sha256 **h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
void sha256_final(struct sha256 *h, uint8_t out[32]);   /* frees h */
void sha256_free(struct sha256 *h);                       /* takes NULL */
void sha256_once(const void *p, size_t n, uint8_t out[32]);

/* ---- Ed25519 signatures of audit checkpoints (sign.c) ---- */

#define SIGN_PK_LEN   32u
#define SIGN_SEED_LEN 32u
#define SIGN_SK_LEN   64u   /* libsodium form: seed || public key */
#define SIGN_SIG_LEN  64u

WUR enum err sign_keypair(uint8_t pk[SIGN_PK_LEN], struct secret **sk);
/* The key pair of a 32-byte seed (the form kept in key files). */
WUR enum err sign_keypair_from_seed(const struct secret *seed, uint8_t pk[SIGN_PK_LEN], struct secret **sk);
WUR enum err sign_detached(const struct secret *sk, const void *m, size_t n, uint8_t sig[SIGN_SIG_LEN]);
/* ERR_OK if sig is pk's signature of m, else ERR_AUTH. */
WUR enum err sign_verify(const uint8_t pk[SIGN_PK_LEN], const void *m, size_t n,
                         const uint8_t sig[SIGN_SIG_LEN]);

#endif
