/* err.h: the one error enum of dicomvault, and its names. Layer: base. */
#ifndef DICOMVAULT_ERR_H
#define DICOMVAULT_ERR_H

#include <stddef.h>

enum err {
	ERR_OK = 0,
	ERR_AGAIN,      /* need more input; call again */
	ERR_NOMEM,      /* allocation failed */
	ERR_PARSE,      /* malformed input */
	ERR_LIMIT,      /* input exceeds a configured limit */
	ERR_IO,         /* read/write failure */
	ERR_AUTH,       /* authentication failed */
	ERR_DENIED,     /* authorisation refused */
	ERR_NOTFOUND,   /* no such object */
	ERR_INTERNAL,   /* broken invariant or unexpected state */
	ERR_UNSUPPORTED /* valid input we do not handle */
};

#define WUR __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

const char *err_str(enum err e);

/* Formats the reason for a failure into why (cap bytes, may be NULL) and
 * returns rc, so that a failure is one statement: return err_why(...). */
enum err err_why(char *why, size_t cap, enum err rc, const char *fmt, ...) PRINTF_LIKE(4, 5);

#endif
