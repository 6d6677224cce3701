/* deid_table.h: PS3.15 Annex E as data. Table E.1-1 (the Application Level
 * Confidentiality Profile attributes, with the Basic Profile action and the
 * action of every option) and Table E.3.10-1 (safe private attributes),
 * generated at build time by tools/gen_deid.awk from ../shared/standard into
 * build/gen/deid_table.c. Never typed by hand. Layer: core. */
#ifndef DICOMVAULT_DEID_TABLE_H
#define DICOMVAULT_DEID_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* Action codes of PS3.15 Table E.1-1a. */
enum deid_action {
	DEID_NONE = 0,   /* option column empty: the option does not change the action */
	DEID_X,          /* remove */
	DEID_Z,          /* zero length (or a dummy) */
	DEID_D,          /* non-zero-length dummy */
	DEID_K,          /* keep (sequences: keep and clean the contents) */
	DEID_C,          /* clean */
	DEID_U,          /* consistent replacement UID */
	DEID_ZD,         /* Z/D */
	DEID_XZ,         /* X/Z */
	DEID_XD,         /* X/D */
	DEID_XZD,        /* X/Z/D */
	DEID_XZU,        /* X/Z/U* */
	DEID_NACTIONS
};

/* The option columns of Table E.1-1, in table order. The option bit masks
 * of deid.h are 1u << these. */
enum deid_opt_index {
	DEID_OPT_RETAIN_SAFE_PRIVATE = 0,
	DEID_OPT_RETAIN_UIDS,
	DEID_OPT_RETAIN_DEVICE_IDENTITY,
	DEID_OPT_RETAIN_INSTITUTION_IDENTITY,
	DEID_OPT_RETAIN_PATIENT_CHARACTERISTICS,
	DEID_OPT_RETAIN_LONG_FULL_DATES,
	DEID_OPT_RETAIN_LONG_MODIFIED_DATES,
	DEID_OPT_CLEAN_DESCRIPTORS,
	DEID_OPT_CLEAN_STRUCTURED_CONTENT,
	DEID_OPT_CLEAN_GRAPHICS,
	DEID_NOPTS
};

enum deid_rule_kind {
	DEID_RULE_EXACT = 0,    /* one tag */
	DEID_RULE_MASKED,       /* a repeating group: (tag & mask) == tag */
	DEID_RULE_PRIVATE       /* "(gggg,eeee) where gggg is odd" */
};

struct deid_rule {
	uint32_t tag;           /* masked digits zero */
	uint32_t mask;          /* 0xFFFFFFFF for exact tags */
	uint8_t kind;           /* enum deid_rule_kind */
	uint8_t basic;          /* enum deid_action of the Basic Profile */
	uint8_t opt[DEID_NOPTS];/* enum deid_action per option; DEID_NONE: no change */
	uint8_t retired;        /* "Retd." */
	uint8_t in_std_iod;     /* "In Std. Comp. IOD" */
	const char *keyword;    /* "" for the private and curve rows */
	const char *name;       /* as published in E.1-1 */
};

/* One row of Table E.3.10-1: (group, xx<elem>) under a private creator. */
struct deid_safe_private {
	uint16_t group;
	uint8_t elem;           /* low byte of the element within its block */
	const char *creator;    /* exact value of the Private Creator element */
	uint16_t vr;            /* 0 when the table gives none; OB for "OW/OB" */
};

/* deid_rules[0, deid_rules_exact_n) are exact tags in ascending order, then
 * deid_rules_masked_n masked rows, then the private-attributes row. */
extern const struct deid_rule deid_rules[];
extern const size_t deid_rules_n;
extern const size_t deid_rules_exact_n;
extern const size_t deid_rules_masked_n;
/* Sorted by group, then element byte. */
extern const struct deid_safe_private deid_safe_private[];
extern const size_t deid_safe_private_n;

#endif
