/* ossl_int.h: what the OpenSSL users of crypto/ (cms.c, jwt.c) share.
 * Layer: crypto. */
#ifndef DICOMVAULT_OSSL_INT_H
#define DICOMVAULT_OSSL_INT_H

#include <stddef.h>
#include "dicomvault/err.h"

/* why = "WHAT: <OpenSSL's last error>" (or WHAT alone), rc the code;
 * OpenSSL's error queue is cleared. */
void ossl_reason(char *why, size_t whylen, enum err rc, const char *what);

#endif
