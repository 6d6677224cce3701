/* totp.c: one-time passwords. HOTP (RFC 4226) and TOTP (RFC 6238) with
 * HMAC-SHA1 (from GnuTLS: libsodium has no SHA-1), 30 s steps, 6 digits,
 * one step of skew; base32 (RFC 4648) seeds and otpauth:// enrolment URIs.
 * Layer: crypto. */
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"

#define SHA1_LEN 20u
#define SEED_MIN 16u    /* 128 bits, RFC 4226 R6 */
#define SEED_MAX 64u

static const char b32_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

enum err hotp_code(const struct secret *seed, uint64_t counter, unsigned digits, uint32_t *code)
{
	static const uint32_t mod[] = { 1000000u, 10000000u, 100000000u };
	uint8_t msg[8], mac[SHA1_LEN];
	uint32_t bin;
	unsigned i, off;
	enum err rc;

	rc = ERR_INTERNAL;
	if (digits < 6 || digits > 8 || secret_len(seed) == 0)
		goto out;
	for (i = 0; i < 8; i++)
		msg[i] = (uint8_t)(counter >> (56 - 8 * i));
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA1, secret_view(seed), secret_len(seed), msg, sizeof msg, mac) < 0)
		goto out;
	/* Dynamic truncation (RFC 4226 section 5.3). */
	off = mac[SHA1_LEN - 1] & 0x0f;
	bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
	      (uint32_t)mac[off + 2] << 8 | mac[off + 3];
	*code = bin % mod[digits - 6];
	rc = ERR_OK;
out:
	mem_wipe(mac, sizeof mac);
	mem_wipe(&bin, sizeof bin);
	return rc;
}

enum err totp_code(const struct secret *seed, uint64_t t, unsigned digits, uint32_t *code)
{
	return hotp_code(seed, t / TOTP_STEP, digits, code);
}

/* The TOTP_DIGITS decimal digits of code, zero-padded. */
static void code_str(uint32_t code, char s[TOTP_DIGITS])
{
	unsigned i;

	for (i = TOTP_DIGITS; i > 0; i--) {
		s[i - 1] = (char)('0' + code % 10);
		code /= 10;
	}
}

enum err totp_verify(const struct secret *seed, uint64_t now, const char *code, size_t len,
                     uint64_t min_step, uint64_t *step)
{
	char want[TOTP_DIGITS], have[TOTP_DIGITS];
	uint64_t s = now / TOTP_STEP, found = 0;
	uint32_t c = 0;
	bool ok = false, bad = false;
	unsigned i;
	enum err rc;

	rc = ERR_AUTH;
	if (len != TOTP_DIGITS)
		goto out;
	for (i = 0; i < TOTP_DIGITS; i++) {
		bad |= code[i] < '0' || code[i] > '9';
		have[i] = code[i];
	}
	if (bad)
		goto out;
	/* Every candidate is computed and compared: no early exit. */
	for (i = 0; i <= 2 * TOTP_SKEW; i++) {
		uint64_t cand;
		bool eq;

		if (s + i < TOTP_SKEW)
			continue;   /* before step 0 */
		cand = s + i - TOTP_SKEW;
		rc = hotp_code(seed, cand, TOTP_DIGITS, &c);
		if (rc != ERR_OK)
			goto out;
		code_str(c, want);
		eq = ct_equal(want, have, TOTP_DIGITS);
		if (eq && cand >= min_step) {
			ok = true;
			found = cand;   /* the latest match wins */
		}
	}
	rc = ERR_AUTH;
	if (!ok)
		goto out;
	*step = found;
	rc = ERR_OK;
out:
	mem_wipe(want, sizeof want);
	mem_wipe(have, sizeof have);
	mem_wipe(&c, sizeof c);
	return rc;
}

enum err totp_seed_new(struct secret **seed)
{
	return secret_random(TOTP_SEED_LEN, seed);
}

/* ---- base32 ---- */

enum err b32_encode(const void *p, size_t n, bool pad, char *out, size_t cap, size_t *outlen)
{
	const uint8_t *b = p;
	size_t len, i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (n > (SIZE_MAX - 8) / 8)
		return ERR_LIMIT;
	len = pad ? (n + 4) / 5 * 8 : (n * 8 + 4) / 5;
	if (cap < len + 1)
		return ERR_LIMIT;
	for (i = 0; i < n; i++) {
		acc = (acc << 8 | b[i]) & 0xfff;   /* at most 4 + 8 bits pending */
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_alpha[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = b32_alpha[(acc << (5 - bits)) & 31];
	while (o < len)
		out[o++] = '=';
	out[o] = 0;
	*outlen = o;
	acc = 0;
	mem_wipe(&acc, sizeof acc);
	return ERR_OK;
}

static int b32_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

enum err b32_decode(const char *s, size_t len, void *out, size_t cap, size_t *outlen)
{
	/* '=' padding after len mod 8 data characters; -1: impossible. */
	static const int pads[8] = { 0, -1, 6, -1, 4, 3, -1, 1 };
	uint8_t *o = out;
	size_t ulen = len, n, i, k = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	enum err rc = ERR_PARSE;

	while (ulen > 0 && s[ulen - 1] == '=')
		ulen--;
	if (pads[ulen % 8] < 0)
		goto out;
	if (ulen != len && (len % 8 != 0 || len - ulen != (size_t)pads[ulen % 8]))
		goto out;
	/* First pass: characters and trailing bits; nothing written. */
	for (i = 0; i < ulen; i++) {
		int v = b32_val(s[i]);

		if (v < 0)
			goto out;
		acc = (acc << 5 | (uint32_t)v) & 0xfff;
		bits += 5;
		if (bits >= 8)
			bits -= 8;
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		goto out;   /* non-canonical: unused bits must be zero */
	n = ulen * 5 / 8;
	rc = ERR_LIMIT;
	if (n > cap)
		goto out;
	acc = 0;
	bits = 0;
	for (i = 0; i < ulen; i++) {
		acc = (acc << 5 | (uint32_t)b32_val(s[i])) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			o[k++] = (uint8_t)(acc >> bits);
		}
	}
	*outlen = k;
	rc = ERR_OK;
out:
	mem_wipe(&acc, sizeof acc);
	return rc;
}

enum err totp_seed_parse(const char *b32, size_t len, struct secret **seed)
{
	struct secret *tmp = NULL;
	size_t n = 0;
	enum err rc;

	rc = ERR_LIMIT;
	if (len > (SEED_MAX * 8 + 4) / 5 + 6)
		goto out;
	rc = secret_new(SEED_MAX, &tmp);
	if (rc != ERR_OK)
		goto out;
	rc = b32_decode(b32, len, secret_mut(tmp), SEED_MAX, &n);
	if (rc != ERR_OK)
		goto out;
	rc = ERR_PARSE;
	if (n < SEED_MIN)
		goto out;
	rc = secret_from_bytes(secret_view(tmp), n, seed);
out:
	secret_free(tmp);
	return rc;
}

/* ---- otpauth URI ---- */

/* Percent-encodes all but the RFC 3986 unreserved characters. */
static size_t pct(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			o[k++] = (char)c;
		} else {
			o[k++] = '%';
			o[k++] = hex[c >> 4];
			o[k++] = hex[c & 15];
		}
	}
	return k;
}

static size_t put(char *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(o, s, n);
	return n;
}

enum err totp_uri(const char *issuer, const char *account, const struct secret *seed, struct secret **uri)
{
	static const char params[] = "&algorithm=SHA1&digits=6&period=30";
	struct secret *tmp = NULL;
	size_t ilen, alen, blen = 0, cap, k = 0;
	char *o;
	enum err rc;

	_Static_assert(TOTP_DIGITS == 6 && TOTP_STEP == 30, "params string");
	ilen = strnlen(issuer, CRYPTO_TOTP_LABEL_MAX + 1);
	alen = strnlen(account, CRYPTO_TOTP_LABEL_MAX + 1);
	rc = ERR_LIMIT;
	if (ilen > CRYPTO_TOTP_LABEL_MAX || alen > CRYPTO_TOTP_LABEL_MAX || secret_len(seed) > SEED_MAX)
		goto out;
	rc = ERR_PARSE;
	if (ilen == 0 || alen == 0 || secret_len(seed) == 0)
		goto out;
	cap = sizeof "otpauth://totp/" + 3 * ilen + 1 + 3 * alen + sizeof "?secret=" +
	      (SEED_MAX * 8 + 4) / 5 + sizeof "&issuer=" + 3 * ilen + sizeof params;
	rc = secret_new(cap, &tmp);
	if (rc != ERR_OK)
		goto out;
	o = (char *)secret_mut(tmp);
	k += put(o + k, "otpauth://totp/");
	k += pct(o + k, issuer, ilen);
	o[k++] = ':';
	k += pct(o + k, account, alen);
	k += put(o + k, "?secret=");
	rc = b32_encode(secret_view(seed), secret_len(seed), false, o + k, cap - k, &blen);
	if (rc != ERR_OK)
		goto out;
	k += blen;
	k += put(o + k, "&issuer=");
	k += pct(o + k, issuer, ilen);
	k += put(o + k, params);
	rc = ERR_INTERNAL;
	if (k >= cap)
		goto out;
	rc = secret_from_bytes(o, k, uri);
out:
	secret_free(tmp);
	return rc;
}
