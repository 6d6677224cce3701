/* qr.h: the identifiers of the Query/Retrieve SCU of `dicomvault import
 * --from AE` (PS3.4 C.4.1, Study Root): build a C-FIND or C-MOVE
 * identifier; read the unique key of a level out of a C-FIND response's
 * identifier (bytes from the peer). Pure: bytes in, bytes or a UID out.
 * Layer: proto. */
#ifndef DICOMVAULT_QR_H
#define DICOMVAULT_QR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

#define QR_MAX_IDENTIFIER (64u * 1024)   /* a response identifier larger than this is refused */

/* The unique key of a level ("STUDY": StudyInstanceUID, "SERIES":
 * SeriesInstanceUID, "IMAGE": SOPInstanceUID); 0 for anything else. */
uint32_t qr_level_key(const char *level);

/* Appends a bare data set in little endian, explicit or implicit VR:
 * (0008,0018) SOPInstanceUID at IMAGE level, (0008,0052)
 * QueryRetrieveLevel, (0020,000D) StudyInstanceUID, (0020,000E)
 * SeriesInstanceUID at SERIES and IMAGE levels; each UID the value given
 * or empty (universal matching) when NULL. ERR_PARSE: an unknown level or
 * a UID that is not one (vr_uid_ok: a leading-zero component passes). */
WUR enum err qr_ident_build(struct wbuf *w, bool explicit_vr, const char *level, const char *study,
                            const char *series, const char *sop);

/* The value of tag (a UI element) in the identifier p (a bare data set
 * in little endian, explicit or implicit VR), trailing NUL and spaces
 * dropped, into out. ERR_LIMIT: over QR_MAX_IDENTIFIER; ERR_PARSE: not a
 * readable data set, or the value is not a UID (vr_uid_ok, as the store
 * checks them: a legacy leading-zero component passes); ERR_NOTFOUND: no
 * such element, or it is empty. */
WUR enum err qr_ident_uid(const uint8_t *p, size_t n, bool explicit_vr, uint32_t tag, char out[65]);

#endif
