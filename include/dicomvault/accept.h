/* accept.h: an HTTP Accept header (RFC 9110 12.5.1) as DICOMweb reads it
 * (PS3.18 8.7): media ranges with the "type", "transfer-syntax" and "q"
 * parameters (others are ignored). Pure: bytes in, ranges out. See
 * docs/internals/dicomweb.md. Layer: proto. */
#ifndef DICOMVAULT_ACCEPT_H
#define DICOMVAULT_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"

#define ACCEPT_TS_MAX 64u   /* a transfer syntax UID */
#define ACCEPT_Q_LEVELS 8u  /* distinct q values put in order */
/* Ranges read of one header: the rest are ignored (a client names a
 * handful; 6000 copies of "* / *" made negotiation, which looks up the q
 * of each candidate against every range, cost seconds of CPU) */
#define ACCEPT_MAX_RANGES 64u

struct accept_range {
	char media[MP_MEDIA_MAX + 1];   /* type/subtype, lower-cased */
	char type[MP_MEDIA_MAX + 1];    /* the "type" parameter, lower-cased; "" when absent */
	char ts[ACCEPT_TS_MAX + 1];     /* "transfer-syntax" as given; "" when absent; "?" when too long */
	unsigned q;                     /* the qvalue in thousandths (1000 when absent; 0: not acceptable) */
};

/* One media range, n bytes at s: "type/subtype *(OWS ; OWS name=value)"
 * with a value a token or a quoted string (backslash escapes). ERR_PARSE
 * when malformed (a q that is not an RFC 9110 qvalue included) or over a
 * size. */
WUR enum err accept_range_parse(const char *s, size_t n, struct accept_range *out);

/* Calls fn on each well-formed media range of the header h (n bytes;
 * ranges are separated by commas outside quoted strings) until fn returns
 * true, and returns whether one did: the ranges of the highest q first,
 * those of equal q in the order given (RFC 9110 12.4.2, 12.5.1; beyond
 * ACCEPT_Q_LEVELS distinct values the lowest are taken together, in the
 * order given, last). A malformed range is skipped; ranges past the
 * ACCEPT_MAX_RANGES-th are ignored, here and in accept_q_of. An empty or blank
 * header is one range "* / *" (without the spaces). */
bool accept_each(const char *h, size_t n, bool (*fn)(void *ctx, const struct accept_range *a), void *ctx);

/* The q (thousandths) the header h (n bytes) gives one representation:
 * media (type/subtype, lower case) with the "type" parameter type and
 * the transfer syntax ts (each NULL when it has none). That of the most
 * specific range that matches it (RFC 9110 12.5.1: type/subtype over
 * type/ *, over * / *; a range naming type (exactly, over a "x/ *" type)
 * or transfer-syntax over one that does not, "*" naming nothing; the
 * highest q among equals); 0 when
 * none matches, so that "X;q=0, * / *" refuses X. An empty or blank header
 * gives 1000. */
unsigned accept_q_of(const char *h, size_t n, const char *media, const char *type, const char *ts);

#endif
