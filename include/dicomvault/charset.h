/* charset.h: DICOM Specific Character Set (0008,0005) to UTF-8, per PS3.5
 * section 6.1 and Annex H/I/J/K. Pure: bytes in, UTF-8 out. Layer: dicom. */
#ifndef DICOMVAULT_CHARSET_H
#define DICOMVAULT_CHARSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"

enum charset_id {
	CS_DEFAULT = 0,   /* ISO_IR 6 / ISO 2022 IR 6 / empty: ASCII */
	CS_IR100, CS_IR101, CS_IR109, CS_IR110, CS_IR144, CS_IR127, CS_IR126,
	CS_IR138, CS_IR148, CS_IR166, CS_IR13, CS_IR192 /* UTF-8 */,
	CS_GB18030, CS_GBK,
	CS_IR87, CS_IR159, CS_IR149, CS_IR58,
	CS__COUNT
};

struct dcm_charset {
	uint8_t n;                          /* number of terms; 0 = default */
	bool iso2022;                       /* code extensions in use */
	uint8_t terms[CHARSET_MAX_TERMS];   /* enum charset_id, in value order */
};

/* Parse the raw value of (0008,0005) (backslash-separated defined terms,
 * padded with spaces). An empty or absent value gives the default
 * repertoire. Unknown terms: ERR_UNSUPPORTED (cs is left unchanged). */
WUR enum err charset_parse(const uint8_t *val, size_t len, struct dcm_charset *cs);

/* Decode one text value (all its backslash-separated values together, as
 * stored) to UTF-8, appending to out. is_pn: the value is a Person Name, so
 * '^' and '=' also reset ISO 2022 code extensions. Bytes invalid in the
 * character set: ERR_PARSE (nothing appended). */
WUR enum err charset_to_utf8(const struct dcm_charset *cs, bool is_pn,
                             const uint8_t *in, size_t n, struct wbuf *out);

/* The same, but a value invalid in its character set is not refused: its
 * bytes are taken as UTF-8, each byte that does not begin a valid
 * sequence replaced by U+FFFD (ASCII is kept; so is UTF-8 text mislabelled
 * as another set, as some modalities write it). For a stored value that
 * is shown (and matched as shown: QIDO and C-FIND records); never for an
 * identifier's key. Errors of out (ERR_LIMIT, ERR_NOMEM) are returned. */
WUR enum err charset_to_utf8_lossy(const struct dcm_charset *cs, bool is_pn,
                                   const uint8_t *in, size_t n, struct wbuf *out);

/* The length (1 to 4) of the strict UTF-8 sequence at p (no overlong
 * forms, surrogates or values above U+10FFFF), within n bytes; 0 when
 * there is none. */
size_t charset_utf8_seq_len(const uint8_t *p, size_t n);
/* Appends p to out, each byte that does not begin a valid UTF-8 sequence
 * replaced by U+FFFD. */
void charset_utf8_sanitize(const uint8_t *p, size_t n, struct wbuf *out);

/* Encode UTF-8 into the charset (for JSON to dataset). A character the
 * charset cannot represent: ERR_UNSUPPORTED. */
WUR enum err charset_from_utf8(const struct dcm_charset *cs, bool is_pn,
                               const uint8_t *in, size_t n, struct wbuf *out);

/* The defined term for an id, e.g. "ISO_IR 100" or "ISO 2022 IR 87". */
const char *charset_term(enum charset_id id, bool iso2022);

#endif
