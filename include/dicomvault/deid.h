/* deid.h: de-identification of DICOM data sets per PS3.15 Annex E, the
 * Basic Application Level Confidentiality Profile and its options, driven by
 * the generated Table E.1-1 (deid_table.h). Replacements are keyed by a
 * project key: the same input gives the same pseudonym, UID and date offset
 * under one key, unrelated ones under another. Decisions and the resolution
 * of composite action codes: docs/internals/deid.md. Layer: core. */
#ifndef DICOMVAULT_DEID_H
#define DICOMVAULT_DEID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/deid_table.h"
#include "dicomvault/err.h"

/* PS3.15 options (bits of deid_opts.options), one per column of E.1-1. */
#define DEID_RETAIN_SAFE_PRIVATE            (1u << DEID_OPT_RETAIN_SAFE_PRIVATE)
#define DEID_RETAIN_UIDS                    (1u << DEID_OPT_RETAIN_UIDS)
#define DEID_RETAIN_DEVICE_IDENTITY         (1u << DEID_OPT_RETAIN_DEVICE_IDENTITY)
#define DEID_RETAIN_INSTITUTION_IDENTITY    (1u << DEID_OPT_RETAIN_INSTITUTION_IDENTITY)
#define DEID_RETAIN_PATIENT_CHARACTERISTICS (1u << DEID_OPT_RETAIN_PATIENT_CHARACTERISTICS)
#define DEID_RETAIN_LONG_FULL_DATES         (1u << DEID_OPT_RETAIN_LONG_FULL_DATES)
#define DEID_RETAIN_LONG_MODIFIED_DATES     (1u << DEID_OPT_RETAIN_LONG_MODIFIED_DATES)
#define DEID_CLEAN_DESCRIPTORS              (1u << DEID_OPT_CLEAN_DESCRIPTORS)
#define DEID_CLEAN_STRUCTURED_CONTENT       (1u << DEID_OPT_CLEAN_STRUCTURED_CONTENT)
#define DEID_CLEAN_GRAPHICS                 (1u << DEID_OPT_CLEAN_GRAPHICS)
#define DEID_ALL_OPTIONS                    ((1u << DEID_NOPTS) - 1u)

/* Behaviours beyond the profile (bits of deid_opts.flags). */
#define DEID_F_PSEUDONYM_NAME  1u   /* Patient's Name: a keyed pseudonym (a Z dummy) instead of empty */
#define DEID_F_REFUSE_SUSPECT  2u   /* also refuse images without (0028,0301) whose modality or
                                       SOP class often carries burned-in text (US, SC, OT, XC, ES...) */

/* Limits of this module (kept here, next to their use). */
#define DEID_KEY_MIN          16u          /* bytes of a project key */
#define DEID_MAX_TOKENS       64u          /* identifying words collected for cleaning text */
#define DEID_MAX_CLEAN_TEXT   (1u << 20)   /* longer text values get a dummy instead of cleaning */
#define DEID_MATCH_MAX_VALUE  (64u * 1024)  /* longer Modality, Manufacturer, Model (unpadded): unreadable */
#define DEID_SHIFT_MIN_DAYS   365          /* date offsets lie in [-MAX, -MIN] days */
#define DEID_SHIFT_MAX_DAYS   3652
#define DEID_UID_MAX          64u
#define DEID_PSEUDONYM_MAX    32u

#define DEID_MASK_MAX_RULES   256u
#define DEID_MASK_MAX_RECTS   16u

/* Masking of burned-in annotation (deid_mask.c): a rule [deid "mask NAME"]
 * with modality (required), manufacturer and model (patterns with * and ?,
 * case-insensitive), rows and columns (exact; absent = any) and
 * rect = x,y,width,height[; x,y,width,height...] (pixels, 0,0 the top
 * left). */
struct deid_mask_rect {
	uint32_t x, y, w, h;
};

struct deid_mask_rule {
	char name[65];
	char modality[17];
	char manufacturer[65];
	char model[65];
	uint32_t rows, columns;
	struct deid_mask_rect rect[DEID_MASK_MAX_RECTS];
	unsigned nrect;
};

struct deid_masks {
	struct deid_mask_rule *r;
	size_t n;
};

struct ini;
struct cms_recipients;
/* The rules of every [deid "mask NAME"] section (none: an empty set).
 * ERR_PARSE / ERR_LIMIT with the line and the reason in why. */
WUR enum err deid_masks_load(const struct ini *ini, struct deid_masks **out, char *why, size_t whylen);
void deid_masks_free(struct deid_masks *m);
/* The first rule that fits f's Modality, Manufacturer, Manufacturer's Model
 * Name, Rows and Columns, in *out; NULL if none (or m NULL). The strings
 * are matched as UTF-8 (Specific Character Set applied), whatever their
 * size, each of their values. Errors: ERR_NOMEM. */
WUR enum err deid_masks_match(const struct deid_masks *m, const struct dcm_file *f,
                              const struct deid_mask_rule **out);
/* Fills the rule's rectangles of every frame with the image's darkest
 * value (MONOCHROME1: the largest; signed: the most negative; YBR: neutral
 * chroma), zeroes the bytes past the declared frames, and sets Burned In
 * Annotation to NO. Native pixel data only (8, 16 or 32 bits allocated, 1
 * or 3 samples, either planar configuration), and no Float or Double Float
 * Pixel Data beside or in place of it: ERR_DENIED with the reason
 * otherwise. */
WUR enum err deid_mask_pixels(struct dcm_file *f, const struct deid_mask_rule *r, char *why, size_t whylen);

struct deid_opts {
	unsigned options;                  /* DEID_RETAIN_... | DEID_CLEAN_... */
	unsigned flags;                    /* DEID_F_... */
	const struct secret *project_key;  /* borrowed; at least DEID_KEY_MIN bytes */
	const struct deid_masks *masks;    /* borrowed; NULL: no masking (flagged images are refused) */
	const struct cms_recipients *escrow;  /* borrowed; NULL: no re-identification escrow */
};

/* Counters, added to by deid_apply() (the caller zeroes them). */
struct deid_stats {
	uint64_t files;          /* data sets de-identified */
	uint64_t removed;        /* attributes removed (X), private ones included */
	uint64_t replaced;       /* values replaced: Z, D, U and C that changed something */
	uint64_t kept;           /* attributes listed in E.1-1 (or safe private) kept */
	uint64_t private_removed;
	uint64_t private_kept;   /* safe private attributes retained */
	uint64_t uids;           /* UID values replaced */
	uint64_t dates_shifted;  /* date values shifted (modified-dates option) */
	uint64_t cleaned;        /* text values cleaned (C) */
	uint64_t masked;         /* images whose burned-in annotation was masked */
	uint64_t escrowed;       /* original attribute values put in escrow */
	uint64_t suspect;        /* images passed without a burned-in annotation flag
	                            although their modality often has burned-in text */
};

/* De-identifies f in place: its data set (recursively, sequences included)
 * and its meta group (extra meta attributes are removed; the writer must
 * regenerate the meta, dcm_file_write() with keep_meta = false, so that
 * Media Storage SOP Instance UID follows the new SOP Instance UID). Adds
 * Patient Identity Removed, De-identification Method and its Code Sequence.
 *
 * ERR_DENIED: refused, with the reason in why (burned-in annotation
 * flagged, a DICOMDIR); f is unchanged. ERR_UNSUPPORTED: bad options (the
 * two longitudinal options together, no or short key), reason in why.
 * Other errors (ERR_NOMEM, ERR_LIMIT...) may leave f partly changed: the
 * caller must then discard it. why may be NULL. */
WUR enum err deid_apply(struct dcm_file *f, const struct deid_opts *o, struct deid_stats *st,
                        char *why, size_t whylen);

/* Re-identification (PS3.15 E.1.2): decrypts the first Encrypted
 * Attributes Sequence item that the private key (PEM file, mode 0600; its
 * certificate optional) opens, puts back every escrowed original value,
 * removes the attestation attributes the original did not have, and drops
 * that item. *restored counts the attributes put back. ERR_NOTFOUND:
 * nothing escrowed; ERR_AUTH: no item opens with this key; reason in why.
 * Any byte order: values in memory are little endian (the writer swaps). */
WUR enum err deid_reidentify(struct dcm_file *f, const char *key_path, const char *cert_path, unsigned *restored,
                             char *why, size_t whylen);

/* "basic[,option...]" (option names as in deid_option_name()) into option
 * bits. ERR_PARSE with the reason in why for an unknown name, a missing
 * "basic" or the two longitudinal options together. */
WUR enum err deid_parse_profile(const char *spec, unsigned *options, char *why, size_t whylen);
/* "retain-safe-private"... for an enum deid_opt_index; NULL out of range. */
const char *deid_option_name(unsigned idx);
/* PS3.16 CID 7050 code value and meaning of an option (idx DEID_NOPTS: the
 * Basic Profile itself, 113100). */
const char *deid_option_code(unsigned idx);
const char *deid_option_meaning(unsigned idx);

/* The E.1-1 row for a standard tag (exact, then repeating groups); NULL for
 * private tags and tags the table does not list. */
const struct deid_rule *deid_rule_lookup(uint32_t tag);
/* The action of a row under the options: an option's C wins over an
 * option's K, either over the basic action. Composite codes are returned as
 * they are (deid_apply resolves them by IOD, see deid.md). Under Retain
 * UIDs every U is K. */
enum deid_action deid_rule_action(const struct deid_rule *r, unsigned options);
/* "X", "Z/D"... */
const char *deid_action_str(enum deid_action a);
/* The Table E.3.10-1 row for a private element (gggg,xxee) under creator;
 * NULL if it is not a safe private attribute. */
const struct deid_safe_private *deid_safe_lookup(uint16_t group, uint8_t elem, const char *creator,
                                                 size_t creator_len);

/* ---- keyed replacements (deid_keyed.c); the same under one key ---- */

/* "2.25." and the decimal of a 128-bit keyed hash of the UID (trailing
 * padding ignored), shaped as a version 8 UUID: at most 44 characters. */
WUR enum err deid_uid_map(const struct secret *key, const char *uid, size_t len,
                          char out[DEID_UID_MAX + 1]);
/* A pseudonymous Patient ID: "DV" and 20 upper-case hex digits of a keyed
 * hash of the patient key (see deid_patient_key()). */
WUR enum err deid_pseudonym_id(const struct secret *key, const char *pkey, size_t len,
                               char out[DEID_PSEUDONYM_MAX + 1]);
/* A pseudonymous Patient's Name: "ANONYMOUS^" and 12 hex digits. */
WUR enum err deid_pseudonym_name(const struct secret *key, const char *pkey, size_t len,
                                 char out[DEID_PSEUDONYM_MAX + 1]);
/* The per-patient date offset, in [-DEID_SHIFT_MAX_DAYS, -DEID_SHIFT_MIN_DAYS]. */
WUR enum err deid_date_offset(const struct secret *key, const char *pkey, size_t len, int32_t *days);
/* The string that identifies the patient of a data set for the functions
 * above: Issuer of Patient ID and Patient ID; without a Patient ID the
 * Patient's Name and Birth Date; without those the Study Instance UID.
 * Writes at most cap-1 bytes and a NUL; returns the length. */
size_t deid_patient_key(const struct dcm_ds *ds, char *out, size_t cap);
/* Shifts a DA or DT value (one value, no backslash) by days; partial
 * dates (YYYY, YYYYMM) keep their precision; the time and offset of a DT
 * stay. ERR_PARSE if it is not a date. out gets a NUL-terminated value. */
WUR enum err deid_shift_date(const char *v, size_t len, bool dt, int32_t days, char *out, size_t cap);

#endif
