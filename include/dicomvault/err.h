/* err.h: the one error enum of dicomvault, and its names. Layer: base. */
#ifndef DICOMVAULT_ERR_H
#define DICOMVAULT_ERR_H

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

#endif
