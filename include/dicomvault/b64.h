/* b64.h: the value of one base64 digit (RFC 4648): the standard alphabet
 * (section 4, "+/") or the URL-safe one (section 5, "-_"), for the
 * decoders of DICOM JSON InlineBinary and of JSON Web Tokens. Layer: base. */
#ifndef DICOMVAULT_B64_H
#define DICOMVAULT_B64_H

#include <stdbool.h>

/* 0..63, or -1 when c is not a digit of that alphabet ('=' included). */
static inline int b64_digit(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

#endif
