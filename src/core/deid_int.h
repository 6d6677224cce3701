/* deid_int.h: what the files of the de-identification engine share (not a
 * public interface). Layer: core. */
#ifndef DICOMVAULT_DEID_INT_H
#define DICOMVAULT_DEID_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/deid.h"

/* Families of IODs whose module tables we know enough of to resolve the
 * composite action codes (deid_iod.c). */
enum deid_family {
	DEID_FAM_OTHER = 0,   /* no pixel data, SOP class not recognised */
	DEID_FAM_IMAGE,       /* single-frame style image IODs (General Image module) */
	DEID_FAM_ENHANCED,    /* multi-frame functional group IODs (Enhanced *, SEG...) */
	DEID_FAM_SR,          /* structured reports and key object selection */
	DEID_FAM_PR,          /* presentation states */
	DEID_FAM_RT,          /* radiotherapy objects */
	DEID_FAM_WAVEFORM,    /* waveforms (ECG...) */
	DEID_FAM_DOC,         /* encapsulated documents */
	DEID_FAM_N
};

/* The escrow (deid_escrow.c): the data set but its pixel data and overlays,
 * encoded before de-identification; then, afterwards, the attributes that
 * changed, with their original values, enveloped to the recipients in a new
 * Encrypted Attributes Sequence item (*escrowed counts them). */
struct cms_recipients;
WUR enum err deid_escrow_snapshot(const struct dcm_file *f, struct wbuf *out);
WUR enum err deid_escrow_attach(struct dcm_file *f, const uint8_t *snap, size_t snaplen,
                                const struct cms_recipients *to, uint64_t *escrowed, char *why, size_t whylen);

enum deid_family deid_family_of(const struct dcm_ds *ds);
const char *deid_family_name(enum deid_family fam);
/* X, Z, D or U for a composite code (DEID_ZD...) of tag, at the top level
 * of an IOD of family fam or nested in a sequence item. Other actions are
 * returned unchanged. */
enum deid_action deid_resolve(enum deid_action a, uint32_t tag, enum deid_family fam, bool nested);

/* Identifying words of a data set, collected before it is changed, that
 * cleaning (C) removes from text (deid_text.c). */
struct deid_tokens {
	char *buf;               /* all words, NUL-separated (owned) */
	size_t len, cap;
	size_t off[DEID_MAX_TOKENS];
	size_t n;
};

void deid_tokens_init(struct deid_tokens *t);
void deid_tokens_fini(struct deid_tokens *t);
/* Adds the words of a value (split on ^ = \ spaces and punctuation, ISO
 * 2022 escape sequences skipped), each at least min bytes long. */
WUR enum err deid_tokens_add(struct deid_tokens *t, const char *v, size_t n, size_t min);
/* Adds a whole value (an identifier with its punctuation), trimmed, if it is
 * at least min bytes long and holds no escape sequence. */
WUR enum err deid_tokens_add_value(struct deid_tokens *t, const char *v, size_t n, size_t min);
/* Cleans text in place: every whole-word occurrence (ASCII case-insensitive)
 * of a token, and every run of digits and date punctuation holding six or
 * more digits (dates, phone numbers, identifiers), becomes 'X's of the same
 * length. Returns true if anything changed. */
bool deid_text_clean(const struct deid_tokens *t, uint8_t *v, size_t n);

#endif
