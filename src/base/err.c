/* err.c: names for enum err. Layer: base. */
#include <stdarg.h>
#include <stdio.h>
#include "dicomvault/err.h"

const char *err_str(enum err e)
{
	switch (e) {
	case ERR_OK: return "ok";
	case ERR_AGAIN: return "need more input";
	case ERR_NOMEM: return "out of memory";
	case ERR_PARSE: return "malformed input";
	case ERR_LIMIT: return "limit exceeded";
	case ERR_IO: return "i/o error";
	case ERR_AUTH: return "authentication failed";
	case ERR_DENIED: return "access denied";
	case ERR_NOTFOUND: return "not found";
	case ERR_INTERNAL: return "internal error";
	case ERR_UNSUPPORTED: return "unsupported";
	}
	return "unknown error";
}

enum err err_why(char *why, size_t cap, enum err rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && cap > 0) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return rc;
}
