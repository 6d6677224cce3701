/* ini.h: the INI dialect of dicomvault.conf (SPEC section 1): sections
 * `[name]` and `[name "sub"]`, `key = value` lines, `#` or `;` comment lines.
 * No comment after a value: ` ; note` is part of it, as values may hold
 * one (a mask's `rect = 0,0,9,9 ; 20,0,9,9`, a match on `Ward #2`), and
 * cutting there would change what an existing file means.
 * Pure: text in, entries or an error with its line out. Layer: proto. */
#ifndef DICOMVAULT_INI_H
#define DICOMVAULT_INI_H

#include <stddef.h>
#include <stdint.h>
#include "dicomvault/arena.h"
#include "dicomvault/err.h"

struct ini_entry {
	const char *section;   /* lower case */
	const char *sub;       /* the quoted subsection, or NULL */
	const char *key;       /* lower case */
	const char *value;     /* trimmed; quotes and escapes resolved */
	unsigned line;
};

struct ini {
	struct ini_entry *e;
	size_t n;
	/* every section header seen, in order (a section may have no keys) */
	struct ini_entry *sections;  /* key and value are NULL */
	size_t nsections;
	struct arena arena;
};

struct ini_error {
	unsigned line;
	char msg[160];
};

WUR enum err ini_parse(const uint8_t *text, size_t len, struct ini **out, struct ini_error *err);
void ini_free(struct ini *ini);
/* The value of key in [section] or [section "sub"] (sub NULL: no sub). */
const char *ini_get(const struct ini *ini, const char *section, const char *sub, const char *key);
/* The same entry itself (NULL: none), and its line (0: none), for a
 * refusal that names it. */
const struct ini_entry *ini_entry(const struct ini *ini, const char *section, const char *sub, const char *key);
unsigned ini_line(const struct ini *ini, const char *section, const char *sub, const char *key);

#endif
