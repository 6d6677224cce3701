/* deid_keyed.c: the keyed, consistent replacements of de-identification:
 * UIDs, patient pseudonyms, per-patient date offsets, and date shifting.
 * Every value is HMAC-SHA-256 under the project key of a domain-separated
 * message, so the same input gives the same output under one key and
 * unrelated outputs under another. Layer: core. */
#include <stdlib.h>
#include <string.h>
#include "dicomvault/deid.h"

static const char HEX[] = "0123456789ABCDEF";

/* HMAC(key, label || 0 || m). */
static enum err keyed(const struct secret *key, const char *label, const void *m, size_t n,
                      uint8_t out[KDF_HMAC_SHA256_LEN])
{
	uint8_t stack[256];
	uint8_t *buf = stack;
	size_t ll = strlen(label), total;
	enum err rc;

	if (key == NULL || n > SIZE_MAX - ll - 1)
		return ERR_INTERNAL;
	total = ll + 1 + n;
	if (total > sizeof stack) {
		buf = malloc(total);
		if (buf == NULL)
			return ERR_NOMEM;
	}
	memcpy(buf, label, ll);
	buf[ll] = 0;
	if (n)
		memcpy(buf + ll + 1, m, n);
	rc = kdf_hmac_sha256(key, buf, total, out);
	mem_wipe(buf, total);
	if (buf != stack)
		free(buf);
	return rc;
}

static size_t trim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == 0))
		n--;
	return n;
}

enum err deid_uid_map(const struct secret *key, const char *uid, size_t len, char out[DEID_UID_MAX + 1])
{
	uint8_t h[KDF_HMAC_SHA256_LEN];
	char digits[48];
	size_t nd = 0, i;
	bool zero;
	enum err rc;

	len = trim(uid, len);
	rc = keyed(key, "dicomvault deid uid v1", uid, len, h);
	if (rc != ERR_OK)
		return rc;
	/* a version 8 (custom) UUID, RFC 9562, so that "2.25." is honest */
	h[6] = (uint8_t)((h[6] & 0x0F) | 0x80);
	h[8] = (uint8_t)((h[8] & 0x3F) | 0x80);
	/* decimal of the 128-bit big-endian integer h[0..15] */
	do {
		unsigned rem = 0;
		zero = true;
		for (i = 0; i < 16; i++) {
			unsigned cur = rem * 256u + h[i];
			h[i] = (uint8_t)(cur / 10u);
			rem = cur % 10u;
			if (h[i] != 0)
				zero = false;
		}
		digits[nd++] = (char)('0' + rem);
	} while (!zero && nd < sizeof digits);
	memcpy(out, "2.25.", 5);
	for (i = 0; i < nd; i++)
		out[5 + i] = digits[nd - 1 - i];
	out[5 + nd] = 0;
	mem_wipe(h, sizeof h);
	return ERR_OK;
}

static enum err pseudonym(const struct secret *key, const char *label, const char *prefix, size_t nhex,
                          const char *pkey, size_t len, char out[DEID_PSEUDONYM_MAX + 1])
{
	uint8_t h[KDF_HMAC_SHA256_LEN];
	size_t pl = strlen(prefix), i;
	enum err rc;

	if (pl + nhex > DEID_PSEUDONYM_MAX || nhex > 2 * sizeof h)
		return ERR_INTERNAL;
	rc = keyed(key, label, pkey, len, h);
	if (rc != ERR_OK)
		return rc;
	memcpy(out, prefix, pl);
	for (i = 0; i < nhex; i++)
		out[pl + i] = HEX[(h[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
	out[pl + nhex] = 0;
	mem_wipe(h, sizeof h);
	return ERR_OK;
}

enum err deid_pseudonym_id(const struct secret *key, const char *pkey, size_t len, char out[DEID_PSEUDONYM_MAX + 1])
{
	return pseudonym(key, "dicomvault deid patient id v1", "DV", 20, pkey, len, out);
}

enum err deid_pseudonym_name(const struct secret *key, const char *pkey, size_t len, char out[DEID_PSEUDONYM_MAX + 1])
{
	return pseudonym(key, "dicomvault deid patient name v1", "ANONYMOUS^", 12, pkey, len, out);
}

enum err deid_date_offset(const struct secret *key, const char *pkey, size_t len, int32_t *days)
{
	uint8_t h[KDF_HMAC_SHA256_LEN];
	uint32_t v;
	enum err rc;

	rc = keyed(key, "dicomvault deid date offset v1", pkey, len, h);
	if (rc != ERR_OK)
		return rc;
	v = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
	mem_wipe(h, sizeof h);
	*days = -(int32_t)(DEID_SHIFT_MIN_DAYS + v % (uint32_t)(DEID_SHIFT_MAX_DAYS - DEID_SHIFT_MIN_DAYS + 1));
	return ERR_OK;
}

static size_t put(char *out, size_t cap, size_t at, const char *s, size_t n)
{
	if (at >= cap)
		return at;
	if (n > cap - 1 - at)
		n = cap - 1 - at;
	memcpy(out + at, s, n);
	return at + n;
}

size_t deid_patient_key(const struct dcm_ds *ds, char *out, size_t cap)
{
	const char *id, *iss, *name, *bd, *st;
	size_t nid = 0, niss = 0, nname = 0, nbd = 0, nst = 0, at = 0;

	if (cap == 0)
		return 0;
	id = dcm_ds_str(ds, 0x00100020, &nid);
	iss = dcm_ds_str(ds, 0x00100021, &niss);
	name = dcm_ds_str(ds, 0x00100010, &nname);
	bd = dcm_ds_str(ds, 0x00100030, &nbd);
	st = dcm_ds_str(ds, 0x0020000D, &nst);
	if (id != NULL && nid > 0) {
		at = put(out, cap, at, "id:", 3);
		if (iss != NULL)
			at = put(out, cap, at, iss, niss);
		at = put(out, cap, at, "|", 1);
		at = put(out, cap, at, id, nid);
	} else if (name != NULL && nname > 0) {
		at = put(out, cap, at, "name:", 5);
		at = put(out, cap, at, name, nname);
		at = put(out, cap, at, "|", 1);
		if (bd != NULL)
			at = put(out, cap, at, bd, nbd);
	} else if (st != NULL && nst > 0) {
		at = put(out, cap, at, "study:", 6);
		at = put(out, cap, at, st, nst);
	} else {
		at = put(out, cap, at, "unknown:", 8);
	}
	out[at] = 0;
	return at;
}

/* ---- dates (proleptic Gregorian; H. Hinnant's days_from_civil) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, unsigned *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

static unsigned month_days(int64_t y, unsigned m)
{
	static const unsigned md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : md[m - 1];
}

enum err deid_shift_date(const char *v, size_t len, bool dt, int32_t days, char *out, size_t cap)
{
	char norm[16];
	const char *rest = "";
	size_t nrest = 0, prec, i;
	unsigned y, m = 7, d = 1;
	int64_t ny, z;
	unsigned nm, nd;

	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == 0))
		len--;
	while (len > 0 && v[0] == ' ') {
		v++;
		len--;
	}
	/* ACR-NEMA style YYYY.MM.DD (DA only) */
	if (!dt && len == 10 && v[4] == '.' && v[7] == '.') {
		memcpy(norm, v, 4);
		memcpy(norm + 4, v + 5, 2);
		memcpy(norm + 6, v + 8, 2);
		v = norm;
		len = 8;
	}
	if (dt) {
		/* the date part: leading digits up to 8 */
		for (prec = 0; prec < len && prec < 8 && v[prec] >= '0' && v[prec] <= '9'; prec++)
			;
		if (prec != 4 && prec != 6 && prec != 8)
			return ERR_PARSE;
		rest = v + prec;
		nrest = len - prec;
	} else {
		prec = len;
		if (prec != 8)
			return ERR_PARSE;
	}
	if (!digits(v, 4, &y))
		return ERR_PARSE;
	if (prec >= 6 && (!digits(v + 4, 2, &m) || m < 1 || m > 12))
		return ERR_PARSE;
	if (prec == 6)
		d = 15;
	if (prec == 8 && (!digits(v + 6, 2, &d) || d < 1 || d > month_days(y, m)))
		return ERR_PARSE;
	for (i = 0; i < nrest; i++)  /* the rest of a DT: digits . + - and space */
		if (!((rest[i] >= '0' && rest[i] <= '9') || rest[i] == '.' || rest[i] == '+' || rest[i] == '-'))
			return ERR_PARSE;
	z = days_from_civil((int64_t)y, m, d) + days;
	civil_from_days(z, &ny, &nm, &nd);
	if (ny < 1 || ny > 9999)
		return ERR_PARSE;
	if (cap < prec + nrest + 1)
		return ERR_LIMIT;
	{
		char full[9];
		unsigned yy = (unsigned)ny;
		full[0] = (char)('0' + yy / 1000);
		full[1] = (char)('0' + yy / 100 % 10);
		full[2] = (char)('0' + yy / 10 % 10);
		full[3] = (char)('0' + yy % 10);
		full[4] = (char)('0' + nm / 10);
		full[5] = (char)('0' + nm % 10);
		full[6] = (char)('0' + nd / 10);
		full[7] = (char)('0' + nd % 10);
		memcpy(out, full, prec);
	}
	memcpy(out + prec, rest, nrest);
	out[prec + nrest] = 0;
	return ERR_OK;
}
