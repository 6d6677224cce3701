/* deid_int.h: what the files of the de-identification engine share (not a
 * public interface). Layer: core. */
#ifndef DICOMVAULT_DEID_INT_H
#define DICOMVAULT_DEID_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/deid.h"
#include "dicomvault/wbuf.h"

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

/* The value of string attribute tag of f's data set as UTF-8 in out
 * (emptied first), its Specific Character Set applied (bytes invalid in it
 * become U+FFFD), read whatever its size (a value padded past the bulk
 * threshold is read from the file) and trimmed of its padding; an absent
 * attribute leaves out empty. *unreadable: the value could not be read (a
 * sequence in its place, the file failing, or longer than
 * DEID_MATCH_MAX_VALUE once unpadded). Errors: ERR_NOMEM, out's. */
WUR enum err deid_str_utf8(const struct dcm_file *f, uint32_t tag, struct wbuf *out, bool *unreadable);
/* The next backslash-separated value of w from *pos (0 at first), trimmed
 * of spaces and NULs, in (v, vn); false after the last. An empty w is one
 * empty value. */
bool deid_str_next(const struct wbuf *w, size_t *pos, const char **v, size_t *vn);

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
