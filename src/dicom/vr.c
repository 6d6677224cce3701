/* vr.c: value representation properties (PS3.5 Table 6.2-1). Layer: dicom. */
#include "dicomvault/vr.h"

bool vr_is_known(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_AS: case VR_AT: case VR_CS: case VR_DA: case VR_DS:
	case VR_DT: case VR_FD: case VR_FL: case VR_IS: case VR_LO: case VR_LT:
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW:
	case VR_PN: case VR_SH: case VR_SL: case VR_SQ: case VR_SS: case VR_ST:
	case VR_SV: case VR_TM: case VR_UC: case VR_UI: case VR_UL: case VR_UN:
	case VR_UR: case VR_US: case VR_UT: case VR_UV:
		return true;
	default:
		return false;
	}
}

bool vr_has_long_length(uint16_t vr)
{
	switch (vr) {
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW:
	case VR_SQ: case VR_SV: case VR_UC: case VR_UN: case VR_UR: case VR_UT:
	case VR_UV:
		return true;
	default:
		return false;
	}
}

bool vr_is_string(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_AS: case VR_CS: case VR_DA: case VR_DS: case VR_DT:
	case VR_IS: case VR_LO: case VR_LT: case VR_PN: case VR_SH: case VR_ST:
	case VR_TM: case VR_UC: case VR_UI: case VR_UR: case VR_UT:
		return true;
	default:
		return false;
	}
}

bool vr_uses_charset(uint16_t vr)
{
	switch (vr) {
	case VR_SH: case VR_LO: case VR_ST: case VR_LT: case VR_UC: case VR_UT:
	case VR_PN:
		return true;
	default:
		return false;
	}
}

bool vr_is_single_text(uint16_t vr)
{
	return vr == VR_LT || vr == VR_ST || vr == VR_UT || vr == VR_UR;
}

unsigned vr_swap_size(uint16_t vr)
{
	switch (vr) {
	case VR_US: case VR_SS: case VR_OW: case VR_AT:
		return 2;
	case VR_UL: case VR_SL: case VR_FL: case VR_OF: case VR_OL:
		return 4;
	case VR_FD: case VR_OD: case VR_SV: case VR_UV: case VR_OV:
		return 8;
	default:
		return 0;
	}
}

bool vr_is_bulk(uint16_t vr)
{
	switch (vr) {
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW:
	case VR_UN:
		return true;
	default:
		return false;
	}
}

uint8_t vr_pad(uint16_t vr)
{
	if (vr == VR_UI || !vr_is_string(vr))
		return 0;
	return ' ';
}

unsigned vr_fixed_size(uint16_t vr)
{
	switch (vr) {
	case VR_US: case VR_SS: return 2;
	case VR_UL: case VR_SL: case VR_FL: case VR_AT: return 4;
	case VR_FD: case VR_SV: case VR_UV: return 8;
	default: return 0;
	}
}

unsigned vr_max_len(uint16_t vr)
{
	switch (vr) {
	case VR_AE: return 16;
	case VR_AS: return 4;
	case VR_CS: return 16;
	case VR_DA: return 8;
	case VR_DS: return 16;
	case VR_DT: return 26;
	case VR_IS: return 12;
	case VR_LO: return 64;
	case VR_LT: return 10240;
	case VR_PN: return 64 * 3 + 2;
	case VR_SH: return 16;
	case VR_ST: return 1024;
	case VR_TM: return 14;
	case VR_UI: return 64;
	default: return 0;
	}
}

const char *vr_name(uint16_t vr, char buf[3])
{
	uint8_t a = (uint8_t)(vr >> 8), b = (uint8_t)vr;

	if (vr == VR_NONE) {
		buf[0] = buf[1] = '-';
	} else {
		buf[0] = (a >= 0x20 && a < 0x7f) ? (char)a : '?';
		buf[1] = (b >= 0x20 && b < 0x7f) ? (char)b : '?';
	}
	buf[2] = 0;
	return buf;
}

uint16_t vr_from_str(const char *s)
{
	uint16_t v;

	if (s[0] == 0 || s[1] == 0 || s[2] != 0)
		return VR_NONE;
	v = VR_CODE((uint8_t)s[0], (uint8_t)s[1]);
	return vr_is_known(v) ? v : VR_NONE;
}

/* Skips the digits at *i (of n): how many there were. */
static size_t skip_digits(const char *s, size_t n, size_t *i)
{
	size_t from = *i;

	while (*i < n && s[*i] >= '0' && s[*i] <= '9')
		(*i)++;
	return *i - from;
}

/* Skips a '+' or '-' at *i, if there is one. */
static void skip_sign(const char *s, size_t n, size_t *i)
{
	if (*i < n && (s[*i] == '+' || s[*i] == '-'))
		(*i)++;
}

bool vr_decimal_ok(const char *s, size_t n, bool is)
{
	size_t i = 0, digits;

	skip_sign(s, n, &i);
	digits = skip_digits(s, n, &i);
	if (is)
		return digits > 0 && i == n;
	if (i < n && s[i] == '.') {
		i++;
		digits += skip_digits(s, n, &i);
	}
	if (digits == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		skip_sign(s, n, &i);
		if (skip_digits(s, n, &i) == 0)
			return false;
	}
	return i == n;
}

bool vr_uid_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return false;
		} else if (s[i] < '0' || s[i] > '9') {
			return false;
		}
	}
	return true;
}

bool vr_uint_parse(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (s[i] < '0' || s[i] > '9' || d > max || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}
