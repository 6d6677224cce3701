/* keywrap.c: wrapping data keys under the master key (XChaCha20-Poly1305,
 * random 192-bit nonce, AD = blob header || key label), the master key file
 * ("DVMK") and the passphrase mode (master key = Argon2id(passphrase, salt),
 * parameters in a "DVKP" record). Layouts: docs/internals/crypto.md.
 * Layer: crypto. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "dicomvault/crypto.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/rd.h"

#define WRAP_MAGIC "DVWK"
#define WRAP_VERSION 1u
#define WRAP_ALG_XCHACHA20POLY1305 2u
#define WRAP_NONCE_LEN 24u
#define WRAP_HDR_LEN (4u + 1u + 1u + 2u + MK_ID_LEN + WRAP_NONCE_LEN)
#define WRAP_TAG_LEN 16u
#define KEK_INFO "dicomvault keywrap v1"
#define KEK_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define ID_MSG "dicomvault master key id v1"

#define MK_MAGIC "DVMK"
#define MK_VERSION 1u

#define PASS_MAGIC "DVKP"
#define PASS_VERSION 1u
#define PASS_SALT_LEN 16u

_Static_assert(WRAP_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce");
_Static_assert(WRAP_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag");
_Static_assert(KEYWRAP_OVERHEAD == WRAP_HDR_LEN + WRAP_TAG_LEN, "wrap layout");
_Static_assert(MK_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "master key size");
_Static_assert(PASS_SALT_LEN == crypto_pwhash_argon2id_SALTBYTES, "Argon2id salt");
_Static_assert(MK_PASS_REC_LEN == 4 + 1 + 1 + 2 + 4 + 8 + PASS_SALT_LEN + MK_ID_LEN, "record layout");
_Static_assert(MK_FILE_LEN == 4 + 4 + MK_LEN, "key file layout");
_Static_assert(crypto_pwhash_argon2id_ALG_ARGON2ID13 < 256, "alg byte");

enum err mk_id(const struct secret *mk, uint8_t id[MK_ID_LEN])
{
	uint8_t mac[KDF_HMAC_SHA256_LEN];
	enum err rc;

	rc = kdf_hmac_sha256(mk, ID_MSG, sizeof ID_MSG - 1, mac);
	if (rc == ERR_OK)
		memcpy(id, mac, MK_ID_LEN);
	mem_wipe(mac, sizeof mac);
	return rc;
}

/* The key-encryption key: HKDF(master key, no salt, KEK_INFO), into the
 * caller's buffer (on its stack: used for one wrap or unwrap, then wiped
 * with mem_wipe; a guarded allocation would cost ~5 system calls each). */
static enum err kek_derive(const struct secret *mk, uint8_t kek[KEK_LEN])
{
	if (secret_len(mk) != MK_LEN)
		return ERR_INTERNAL;
	return kdf_hkdf_sha256(mk, NULL, 0, KEK_INFO, sizeof KEK_INFO - 1, kek, KEK_LEN);
}

/* Blob header || label. */
static enum err wrap_ad(const uint8_t *hdr, const void *label, size_t labellen, uint8_t **ad, size_t *adlen)
{
	uint8_t *p;

	if (labellen > CRYPTO_WRAP_MAX_LABEL)
		return ERR_LIMIT;
	p = malloc(WRAP_HDR_LEN + labellen);
	if (p == NULL)
		return ERR_NOMEM;
	memcpy(p, hdr, WRAP_HDR_LEN);
	if (labellen > 0)
		memcpy(p + WRAP_HDR_LEN, label, labellen);
	*ad = p;
	*adlen = WRAP_HDR_LEN + labellen;
	return ERR_OK;
}

enum err keywrap_wrap(const struct secret *mk, const void *label, size_t labellen,
                      const struct secret *key, struct wbuf *out)
{
	uint8_t blob[KEYWRAP_OVERHEAD + CRYPTO_WRAP_MAX_KEY];
	uint8_t kek[KEK_LEN];
	uint8_t *ad = NULL;
	size_t adlen = 0, n = secret_len(key);
	enum err rc;

	rc = ERR_LIMIT;
	if (n == 0 || n > CRYPTO_WRAP_MAX_KEY)
		goto out;
	rc = kek_derive(mk, kek);
	if (rc != ERR_OK)
		goto out;
	memcpy(blob, WRAP_MAGIC, 4);
	blob[4] = WRAP_VERSION;
	blob[5] = WRAP_ALG_XCHACHA20POLY1305;
	blob[6] = blob[7] = 0;
	rc = mk_id(mk, blob + 8);
	if (rc != ERR_OK)
		goto out;
	randombytes_buf(blob + 8 + MK_ID_LEN, WRAP_NONCE_LEN);
	rc = wrap_ad(blob, label, labellen, &ad, &adlen);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_INTERNAL;
	if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(blob + WRAP_HDR_LEN, blob + WRAP_HDR_LEN + n,
	        NULL, secret_view(key), n, ad, adlen, NULL, blob + 8 + MK_ID_LEN, kek) != 0)
		goto out;
	wbuf_put(out, blob, KEYWRAP_OVERHEAD + n);
	rc = wbuf_err(out);
out:
	mem_wipe(blob, sizeof blob);
	free(ad);
	mem_wipe(kek, sizeof kek);
	return rc;
}

enum err keywrap_unwrap(const struct secret *mk, const void *label, size_t labellen,
                        const void *blob, size_t n, struct secret **key)
{
	const uint8_t *b = blob;
	uint8_t id[MK_ID_LEN];
	struct secret *k = NULL;
	uint8_t kek[KEK_LEN];
	uint8_t *ad = NULL;
	size_t adlen = 0, klen;
	enum err rc;

	rc = ERR_PARSE;
	if (n <= KEYWRAP_OVERHEAD || n - KEYWRAP_OVERHEAD > CRYPTO_WRAP_MAX_KEY)
		goto out;
	klen = n - KEYWRAP_OVERHEAD;
	if (memcmp(b, WRAP_MAGIC, 4) != 0 || b[4] != WRAP_VERSION || b[5] != WRAP_ALG_XCHACHA20POLY1305 ||
	    b[6] != 0 || b[7] != 0)
		goto out;
	rc = mk_id(mk, id);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_AUTH;   /* wrapped under another master key */
	if (!ct_equal(id, b + 8, MK_ID_LEN))
		goto out;
	rc = kek_derive(mk, kek);
	if (rc != ERR_OK)
		goto out;
	rc = wrap_ad(b, label, labellen, &ad, &adlen);
	if (rc != ERR_OK)
		goto out;
	rc = secret_new(klen, &k);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_AUTH;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(secret_mut(k), NULL, b + WRAP_HDR_LEN, klen,
	        b + WRAP_HDR_LEN + klen, ad, adlen, b + 8 + MK_ID_LEN, kek) != 0)
		goto out;
	secret_seal(k);
	*key = k;
	k = NULL;
	rc = ERR_OK;
out:
	free(ad);
	secret_free(k);
	mem_wipe(kek, sizeof kek);
	return rc;
}

/* ---- master key file ---- */

enum err mk_generate(struct secret **mk)
{
	return secret_random(MK_LEN, mk);
}

enum err mk_file_encode(const struct secret *mk, uint8_t out[MK_FILE_LEN])
{
	if (secret_len(mk) != MK_LEN)
		return ERR_INTERNAL;
	memcpy(out, MK_MAGIC, 4);
	out[4] = MK_VERSION;
	out[5] = out[6] = out[7] = 0;
	memcpy(out + 8, secret_view(mk), MK_LEN);
	return ERR_OK;
}

enum err mk_file_decode(const void *p, size_t n, struct secret **mk)
{
	const uint8_t *b = p;

	if (n != MK_FILE_LEN || memcmp(b, MK_MAGIC, 4) != 0)
		return ERR_PARSE;
	if (b[4] != MK_VERSION)
		return ERR_UNSUPPORTED;
	if (b[5] != 0 || b[6] != 0 || b[7] != 0)
		return ERR_PARSE;
	return secret_from_bytes(b + 8, MK_LEN, mk);
}

static enum err write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ERR_IO;
		p += r;
		n -= (size_t)r;
	}
	return ERR_OK;
}

/* fsync of the directory holding path, so that the new name survives. */
static enum err sync_dir(const char *path)
{
	char dir[4096];
	int fd;
	enum err rc = ERR_OK;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return ERR_LIMIT;
	path_parent(dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ERR_IO;
	if (fsync(fd) != 0)
		rc = ERR_IO;
	close(fd);
	return rc;
}

enum err mk_file_write(const char *path, const struct secret *mk)
{
	uint8_t buf[MK_FILE_LEN];
	int fd = -1;
	bool created = false;
	enum err rc;

	rc = mk_file_encode(mk, buf);
	if (rc != ERR_OK)
		goto out;
	do {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int e = errno;

		rc = e == EEXIST ? ERR_DENIED : ERR_IO;
		log_error("cannot create master key file %s: %s", path,
		          e == EEXIST ? "it exists, and is never overwritten" : strerror(e));
		goto out;
	}
	created = true;
	rc = ERR_IO;
	if (fchmod(fd, 0600) != 0)   /* whatever the umask did */
		goto out;
	rc = write_all(fd, buf, sizeof buf);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_IO;
	if (fsync(fd) != 0)
		goto out;
	rc = ERR_IO;
	if (close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	rc = sync_dir(path);
out:
	if (fd >= 0)
		close(fd);
	if (rc != ERR_OK && created)
		unlink(path);
	mem_wipe(buf, sizeof buf);
	return rc;
}

enum err mk_file_read(const char *path, struct secret **mk)
{
	struct secret *raw = NULL;
	enum err rc;

	rc = secret_read_file(path, MK_FILE_LEN, 0, &raw);
	if (rc != ERR_OK)
		goto out;
	rc = mk_file_decode(secret_view(raw), secret_len(raw), mk);
	if (rc != ERR_OK)
		log_error("%s is not a dicomvault master key file: %s", path, err_str(rc));
out:
	secret_free(raw);
	return rc;
}

/* ---- passphrase mode ---- */

static void put_u64be(uint8_t *b, uint64_t v)
{
	unsigned i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static enum err limits_check(uint64_t ops, uint64_t mem)
{
	if (ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || ops > CRYPTO_PWHASH_MAX_OPS)
		return ERR_LIMIT;
	if (mem < crypto_pwhash_argon2id_MEMLIMIT_MIN || mem > CRYPTO_PWHASH_MAX_MEM)
		return ERR_LIMIT;
	/* Argon2id counts whole KiB: another byte count would name the same
	 * cost, so that a changed record could still open (keys_fuzz) */
	if (mem % 1024 != 0)
		return ERR_LIMIT;
	return ERR_OK;
}

static enum err pass_derive(const struct secret *pass, const uint8_t salt[PASS_SALT_LEN],
                            uint64_t ops, size_t mem, struct secret **mk)
{
	struct secret *k = NULL;
	enum err rc;

	rc = ERR_LIMIT;
	if (secret_len(pass) > CRYPTO_PASSWORD_MAX)
		goto out;
	rc = secret_new(MK_LEN, &k);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_NOMEM;   /* crypto_pwhash fails only when it cannot allocate */
	if (crypto_pwhash(secret_mut(k), MK_LEN, secret_cstr(pass), secret_len(pass), salt,
	                  ops, mem, crypto_pwhash_argon2id_ALG_ARGON2ID13) != 0)
		goto out;
	secret_seal(k);
	*mk = k;
	k = NULL;
	rc = ERR_OK;
out:
	secret_free(k);
	return rc;
}

enum err mk_pass_create(const struct secret *pass, const struct pwhash_limits *lim,
                        uint8_t rec[MK_PASS_REC_LEN], struct secret **mk)
{
	uint8_t r[MK_PASS_REC_LEN];
	struct secret *k = NULL;
	uint64_t ops = crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
	size_t mem = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	if (lim != NULL && lim->opslimit != 0) {
		ops = lim->opslimit;
		mem = lim->memlimit;
	}
	rc = limits_check(ops, mem);
	if (rc != ERR_OK)
		goto out;
	memcpy(r, PASS_MAGIC, 4);
	r[4] = PASS_VERSION;
	r[5] = crypto_pwhash_argon2id_ALG_ARGON2ID13;
	r[6] = r[7] = 0;
	store_u32be(r + 8, (uint32_t)ops);
	put_u64be(r + 12, (uint64_t)mem);
	randombytes_buf(r + 20, PASS_SALT_LEN);
	rc = pass_derive(pass, r + 20, ops, mem, &k);
	if (rc != ERR_OK)
		goto out;
	rc = mk_id(k, r + 20 + PASS_SALT_LEN);
	if (rc != ERR_OK)
		goto out;
	memcpy(rec, r, sizeof r);
	*mk = k;
	k = NULL;
out:
	secret_free(k);
	return rc;
}

enum err mk_pass_open(const struct secret *pass, const void *rec, size_t n, struct secret **mk)
{
	struct secret *k = NULL;
	uint8_t id[MK_ID_LEN];
	struct rd r;
	uint8_t ver, alg;
	uint16_t zero;
	uint32_t ops, mhi, mlo;
	uint64_t mem;
	const uint8_t *magic, *salt, *want;
	enum err rc;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	rc = ERR_PARSE;
	if (n != MK_PASS_REC_LEN)
		goto out;
	rd_init(&r, rec, n);
	if (rd_view(&r, 4, &magic) != ERR_OK || rd_get_u8(&r, &ver) != ERR_OK || rd_get_u8(&r, &alg) != ERR_OK ||
	    rd_get_u16be(&r, &zero) != ERR_OK || rd_get_u32be(&r, &ops) != ERR_OK ||
	    rd_get_u32be(&r, &mhi) != ERR_OK || rd_get_u32be(&r, &mlo) != ERR_OK ||
	    rd_view(&r, PASS_SALT_LEN, &salt) != ERR_OK || rd_view(&r, MK_ID_LEN, &want) != ERR_OK ||
	    rd_remaining(&r) != 0)
		goto out;
	if (memcmp(magic, PASS_MAGIC, 4) != 0 || zero != 0)
		goto out;
	rc = ERR_UNSUPPORTED;
	if (ver != PASS_VERSION || alg != crypto_pwhash_argon2id_ALG_ARGON2ID13)
		goto out;
	mem = (uint64_t)mhi << 32 | mlo;
	rc = limits_check(ops, mem);
	if (rc != ERR_OK)
		goto out;
	rc = pass_derive(pass, salt, ops, (size_t)mem, &k);
	if (rc != ERR_OK)
		goto out;
	rc = mk_id(k, id);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_AUTH;
	if (!ct_equal(id, want, MK_ID_LEN))
		goto out;
	*mk = k;
	k = NULL;
	rc = ERR_OK;
out:
	secret_free(k);
	return rc;
}
