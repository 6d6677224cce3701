/* keys_fuzz.c: libFuzzer target for the readers of a vault's key files
 * (crypto/keywrap.c), which anyone with write access to keys/ can edit:
 * the master key file (mk_file_decode: keys/master.key), a wrapped key
 * (keywrap_unwrap: keys/index.key, keys/audit.key, a patient's data key
 * in the index) and the passphrase record (mk_pass_open: keys/master.pass,
 * run only when its Argon2id cost is at most PASS_MEM_MAX bytes and
 * PASS_OPS_MAX passes, so that a run stays fast; the reader's own limits
 * are unit-tested). Input: byte 0 picks the reader (mod 7), the rest is
 *   0: a master key file;
 *   1: a wrapped key, under a fixed master key and label;
 *   2: bytes XORed onto a real wrapped key (a longer input appends);
 *   3: a passphrase record, opened with a fixed passphrase;
 *   4: bytes XORed onto a real passphrase record (likewise);
 *   5, 6: a real wrapped key, or passphrase record, cut to as many bytes
 *      as the next input byte says (modulo its length).
 * abort()s when
 *   - a master key file is accepted that does not encode back to itself
 *     (40 bytes: "DVMK", version 1, three zero bytes, the key);
 *   - a wrapped key or passphrase record changed in any byte, or cut, or
 *     extended, is still accepted; or an unchanged one is refused;
 *   - any reader accepts with no key, or refuses with an error that is
 *     not about its input (ERR_INTERNAL, ERR_NOMEM).
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/wbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASS_MEM_MAX (1u << 20)
#define PASS_OPS_MAX 2u

static const char label[] = "index.key";
static struct secret *mk, *pass;
static struct wbuf wrapped;
static uint8_t rec[MK_PASS_REC_LEN];

static void setup(void)
{
	static const uint8_t mk_bytes[MK_LEN] = "dicomvault keys_fuzz master key";
	struct pwhash_limits lim = { 1, 8192 };
	struct secret *key = NULL, *k2 = NULL;

	if (mk != NULL)
		return;
	wbuf_init(&wrapped, 4096);
	if (crypto_init() != ERR_OK || secret_from_bytes(mk_bytes, sizeof mk_bytes, &mk) != ERR_OK ||
	    secret_from_bytes("passphrase", 10, &pass) != ERR_OK || secret_random(32, &key) != ERR_OK ||
	    keywrap_wrap(mk, label, strlen(label), key, &wrapped) != ERR_OK || wbuf_err(&wrapped) != ERR_OK ||
	    mk_pass_create(pass, &lim, rec, &k2) != ERR_OK)
		abort();
	secret_free(key);
	secret_free(k2);
}

static void outcome(enum err rc, const struct secret *out, bool must_fail, bool must_pass)
{
	if (rc == ERR_INTERNAL || rc == ERR_NOMEM || (rc == ERR_OK && out == NULL) || (rc == ERR_OK && must_fail) ||
	    (rc != ERR_OK && must_pass))
		abort();
}

/* An input XORed onto base (longer: the rest appended); whether it is base. */
static uint8_t *xored(const uint8_t *base, size_t bn, const uint8_t *p, size_t n, size_t *outn, bool *same)
{
	size_t len = n > bn ? n : bn, i;
	uint8_t *b = malloc(len + 1);

	if (b == NULL)
		abort();
	memcpy(b, base, bn);
	*same = n <= bn;
	for (i = 0; i < n; i++) {
		b[i] = i < bn ? (uint8_t)(b[i] ^ p[i]) : p[i];
		*same = *same && p[i] == 0;
	}
	*outn = len;
	return b;
}

/* The record's Argon2id cost, read as mk_pass_open reads it: cheap enough? */
static bool pass_cheap(const uint8_t *p, size_t n)
{
	uint64_t ops, mem = 0;
	size_t i;

	if (n != MK_PASS_REC_LEN)
		return true;   /* refused before any hashing */
	ops = (uint64_t)p[8] << 24 | (uint64_t)p[9] << 16 | (uint64_t)p[10] << 8 | p[11];
	for (i = 12; i < 20; i++)
		mem = mem << 8 | p[i];
	return ops <= PASS_OPS_MAX && mem <= PASS_MEM_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secret *out = NULL;
	uint8_t back[MK_FILE_LEN], *b = NULL;
	size_t n = 0;
	bool same = false;
	enum err rc;

	if (size < 1)
		return 0;
	setup();
	switch (data[0] % 7) {
	case 0:
		rc = mk_file_decode(data + 1, size - 1, &out);
		outcome(rc, out, false, false);
		if (rc == ERR_OK && (size - 1 != MK_FILE_LEN || mk_file_encode(out, back) != ERR_OK ||
		                     memcmp(back, data + 1, MK_FILE_LEN) != 0))
			abort();
		break;
	case 1:
		rc = keywrap_unwrap(mk, label, strlen(label), data + 1, size - 1, &out);
		outcome(rc, out, false, false);
		break;
	case 2:
		b = xored(wrapped.p, wrapped.len, data + 1, size - 1, &n, &same);
		rc = keywrap_unwrap(mk, label, strlen(label), b, n, &out);
		outcome(rc, out, !same, same);
		break;
	case 3:
		if (!pass_cheap(data + 1, size - 1))
			return 0;
		rc = mk_pass_open(pass, data + 1, size - 1, &out);
		outcome(rc, out, false, false);
		break;
	case 4:
		b = xored(rec, sizeof rec, data + 1, size - 1, &n, &same);
		if (!pass_cheap(b, n))
			break;
		rc = mk_pass_open(pass, b, n, &out);
		outcome(rc, out, !same, same);
		break;
	case 5:
		n = size > 1 ? data[1] % wrapped.len : 0;
		rc = keywrap_unwrap(mk, label, strlen(label), wrapped.p, n, &out);
		outcome(rc, out, true, false);
		break;
	default:
		n = size > 1 ? data[1] % sizeof rec : 0;
		rc = mk_pass_open(pass, rec, n, &out);
		outcome(rc, out, true, false);
		break;
	}
	secret_free(out);
	free(b);
	return 0;
}
