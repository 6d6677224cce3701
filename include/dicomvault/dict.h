/* dict.h: the DICOM data dictionary (PS3.6), the safe private attributes
 * (PS3.15 E.3.10), transfer syntaxes and well-known UIDs, all generated at
 * build time from ../shared/standard. Layer: dicom. */
#ifndef DICOMVAULT_DICT_H
#define DICOMVAULT_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/vr.h"

struct dict_entry {
	uint32_t tag;       /* with masked digits zero */
	uint32_t mask;      /* 0xFFFFFFFF for exact tags */
	uint16_t vr;        /* first VR given; VR_NONE for items */
	uint8_t amb;        /* enum vr_amb */
	uint8_t retired;
	const char *keyword;
	const char *name;
	const char *vm;
};

struct dict_private {
	uint16_t group;
	uint8_t elem;       /* low byte of the element within its block */
	const char *creator;
	uint16_t vr;
	const char *vm;
	const char *meaning;
};

struct dcm_ts {
	const char *uid;
	const char *name;
	const char *keyword;
	bool explicit_vr;
	bool big_endian;
	bool deflated;
	bool encapsulated;
	bool retired;
};

struct uid_entry {
	const char *uid;
	const char *name;
	const char *keyword;
	const char *type;
};

#define TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))
#define TAG_GROUP(t) ((uint16_t)((t) >> 16))
#define TAG_ELEM(t) ((uint16_t)((t) & 0xFFFF))
#define TAG_IS_PRIVATE(t) ((TAG_GROUP(t) & 1) != 0)
/* (gggg,0010-00FF) in an odd group reserves a private block. */
#define TAG_IS_PRIVATE_CREATOR(t) (TAG_IS_PRIVATE(t) && TAG_ELEM(t) >= 0x10 && TAG_ELEM(t) <= 0xFF)

#define TAG_ITEM          0xFFFEE000u
#define TAG_ITEM_DELIM    0xFFFEE00Du
#define TAG_SEQ_DELIM     0xFFFEE0DDu
#define TAG_PIXEL_DATA    0x7FE00010u
#define TAG_FLOAT_PIXEL   0x7FE00008u
#define TAG_DFLOAT_PIXEL  0x7FE00009u
#define TAG_SPECIFIC_CHARSET 0x00080005u
#define TAG_TS_UID        0x00020010u
#define TAG_PIXEL_REPR    0x00280103u
#define TAG_BITS_ALLOC    0x00280100u

/* Standard attribute by tag, including repeating groups; NULL if unknown. */
const struct dict_entry *dict_lookup(uint32_t tag);
/* By keyword (exact, case-sensitive). */
const struct dict_entry *dict_lookup_keyword(const char *kw, size_t len);
/* Private attribute by its creator and tag (gggg,xxee); NULL if unknown. */
const struct dict_private *dict_lookup_private(uint32_t tag, const char *creator, size_t creator_len);
/* Transfer syntax by UID (trailing NUL/space padding ignored). */
const struct dcm_ts *dict_ts(const char *uid, size_t len);
/* Name of a well-known UID; NULL if unknown. */
const struct uid_entry *dict_uid(const char *uid, size_t len);

/* VR to use for an element read without an explicit VR. */
uint16_t dict_implicit_vr(uint32_t tag);

extern const struct dcm_ts *const DCM_TS_IMPLICIT_LE;
extern const struct dcm_ts *const DCM_TS_EXPLICIT_LE;
extern const struct dcm_ts *const DCM_TS_EXPLICIT_BE;
extern const struct dcm_ts *const DCM_TS_DEFLATED_LE;

/* Generated tables. */
extern const struct dict_entry dict_exact[];
extern const size_t dict_exact_n;
extern const struct dict_entry dict_masked[];
extern const size_t dict_masked_n;
extern const struct dict_private dict_private_tab[];
extern const size_t dict_private_n;
extern const struct dcm_ts dict_ts_tab[];
extern const size_t dict_ts_n;
extern const struct uid_entry dict_uid_tab[];
extern const size_t dict_uid_n;

#endif
