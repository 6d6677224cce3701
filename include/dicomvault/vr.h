/* vr.h: DICOM value representations (PS3.5 6.2) and their encoding rules.
 * A VR is its two ASCII letters packed big-endian into 16 bits, so an
 * explicit-VR header's two bytes map straight onto it. Layer: dicom. */
#ifndef DICOMVAULT_VR_H
#define DICOMVAULT_VR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VR_CODE(a, b) ((uint16_t)(((unsigned)(a) << 8) | (unsigned)(b)))

enum vr {
	VR_NONE = 0,  /* items and delimiters; unknown */
	VR_AE = VR_CODE('A', 'E'), VR_AS = VR_CODE('A', 'S'), VR_AT = VR_CODE('A', 'T'),
	VR_CS = VR_CODE('C', 'S'), VR_DA = VR_CODE('D', 'A'), VR_DS = VR_CODE('D', 'S'),
	VR_DT = VR_CODE('D', 'T'), VR_FD = VR_CODE('F', 'D'), VR_FL = VR_CODE('F', 'L'),
	VR_IS = VR_CODE('I', 'S'), VR_LO = VR_CODE('L', 'O'), VR_LT = VR_CODE('L', 'T'),
	VR_OB = VR_CODE('O', 'B'), VR_OD = VR_CODE('O', 'D'), VR_OF = VR_CODE('O', 'F'),
	VR_OL = VR_CODE('O', 'L'), VR_OV = VR_CODE('O', 'V'), VR_OW = VR_CODE('O', 'W'),
	VR_PN = VR_CODE('P', 'N'), VR_SH = VR_CODE('S', 'H'), VR_SL = VR_CODE('S', 'L'),
	VR_SQ = VR_CODE('S', 'Q'), VR_SS = VR_CODE('S', 'S'), VR_ST = VR_CODE('S', 'T'),
	VR_SV = VR_CODE('S', 'V'), VR_TM = VR_CODE('T', 'M'), VR_UC = VR_CODE('U', 'C'),
	VR_UI = VR_CODE('U', 'I'), VR_UL = VR_CODE('U', 'L'), VR_UN = VR_CODE('U', 'N'),
	VR_UR = VR_CODE('U', 'R'), VR_US = VR_CODE('U', 'S'), VR_UT = VR_CODE('U', 'T'),
	VR_UV = VR_CODE('U', 'V')
};

/* Dictionary VRs that depend on context (PS3.6 "US or SS" etc.). */
enum vr_amb {
	VR_AMB_NONE = 0,
	VR_AMB_US_SS,     /* US or SS: by Pixel Representation */
	VR_AMB_OB_OW,     /* OB or OW: by transfer syntax / bits allocated */
	VR_AMB_US_SS_OW,  /* US or SS or OW */
	VR_AMB_US_OW      /* US or OW */
};

/* True for the 34 VRs of PS3.5 (2026). */
bool vr_is_known(uint16_t vr);
/* Explicit VR encoding uses 2 reserved bytes + 32-bit length. */
bool vr_has_long_length(uint16_t vr);
/* Character string VRs (padded with space, UI with NUL). */
bool vr_is_string(uint16_t vr);
/* Text VRs to which Specific Character Set applies. */
bool vr_uses_charset(uint16_t vr);
/* String VRs whose value is never split on backslash. */
bool vr_is_single_text(uint16_t vr);
/* The syntax of an IS value (integer: [+-]digits) or of a DS value
 * ([+-]digits[.digits][e[+-]digits], or [+-].digits[e...]), n bytes at s
 * without padding. */
bool vr_decimal_ok(const char *s, size_t n, bool integer);
/* An unsigned decimal of n bytes at s: digits only (no sign, no spaces:
 * callers trim IS padding), at most max. */
bool vr_uint_parse(const char *s, size_t n, uint64_t max, uint64_t *out);
/* A UID (PS3.5 9.1) of n bytes at s without padding: 1 to 64 characters,
 * components of digits separated by single dots, none empty (so never
 * ".", ".." or a path segment of anything else). Looser than PS3.5 on
 * one point: a component with a leading zero, found in the wild, passes;
 * it can be stored and asked for. */
bool vr_uid_ok(const char *s, size_t n);
/* Size of one binary number for byte swapping (0 = no swapping). */
unsigned vr_swap_size(uint16_t vr);
/* Binary "other" VRs and UN, whose values may be bulk data. */
bool vr_is_bulk(uint16_t vr);
/* Padding byte for odd-length values. */
uint8_t vr_pad(uint16_t vr);
/* Fixed length of one value, 0 for variable. */
unsigned vr_fixed_size(uint16_t vr);
/* Maximum length of one value in bytes (PS3.5 Table 6.2-1), 0 = unlimited. */
unsigned vr_max_len(uint16_t vr);
/* "AE"... into buf[3]. */
const char *vr_name(uint16_t vr, char buf[3]);
/* Parse two letters; VR_NONE if unknown. */
uint16_t vr_from_str(const char *s);

#endif
