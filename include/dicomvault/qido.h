/* qido.h: QIDO-RS query parameters (PS3.18 8.3.4) into a C-FIND-style
 * identifier for the matching engine (query.h). Pure: (key, value) pairs as
 * the HTTP layer decoded them in, an identifier data set out; fuzzed by
 * fuzz/qido_fuzz.c. Layer: proto.
 *
 * Parameters:
 *  - {attribute}={value}: attribute is a keyword (PatientName) or a tag
 *    (00100010), or Sequence.Attribute (one level, e.g.
 *    RequestAttributesSequence.RequestedProcedureID); an empty value makes a
 *    return key; UID values may be separated by commas or backslashes; US,
 *    UL, SS, SL values are decimal; each attribute at most once;
 *  - includefield={attribute}[,...] or includefield=all, repeatable;
 *  - limit, offset: decimal, 0..QIDO_MAX_NUMBER;
 *  - fuzzymatching, emptyvaluematching, multiplevaluematching=true|false
 *    (any case; true is recorded, the caller ignores it and warns); charset
 *    is accepted and ignored (answers are UTF-8);
 *  - an empty key (as in "?&limit=1") is skipped;
 *  - a UID attribute given again adds to its list;
 *  - any other name that is not attribute-shaped (an attribute ID starts
 *    with an upper-case letter or a digit), such as a viewer's "_=..."
 *    cache buster, is a parameter this server does not support: ignored
 *    (PS3.18 8.3.4), its position recorded for the caller's Warning.
 * Anything else (an unknown keyword, a malformed tag, a private tag, a
 * number that is not one, a control character, a value longer than
 * QRY_MAX_VALUE_LEN) is an error whose reason names the parameter only by
 * its position and never echoes a value. */
#ifndef DICOMVAULT_QIDO_H
#define DICOMVAULT_QIDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/err.h"
#include "dicomvault/limits.h"

struct qido_arg {
	const char *key;
	size_t klen;
	const char *val;   /* NULL: no '=' (an empty value) */
	size_t vlen;
};

struct qido_params {
	struct dcm_file *id;                 /* the identifier (Specific Character Set ISO_IR 192) */
	uint32_t include[QRY_MAX_INCLUDE];   /* includefield attributes */
	size_t n_include;
	bool include_all;
	bool has_limit, has_offset;          /* each may be given once */
	int64_t limit, offset;
	bool fuzzy;                          /* fuzzymatching=true was asked for */
	bool empty_value;                    /* emptyvaluematching=true */
	bool multiple_value;                 /* multiplevaluematching=true */
	size_t ignored[QIDO_MAX_IGNORED];    /* positions of unsupported parameters (the first ones) */
	size_t n_ignored;                    /* how many there were in all */
};

/* ERR_PARSE or ERR_LIMIT with a reason on bad input; p is then empty. */
WUR enum err qido_parse(const struct qido_arg *args, size_t n, struct qido_params *p, char *why, size_t whylen);
void qido_params_fini(struct qido_params *p);

/* An attribute by keyword or 8 hex digits (tag); 0 if neither. */
uint32_t qido_attr(const char *s, size_t n);

#endif
