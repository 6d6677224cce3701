/* jbody.h: a request body that is one flat JSON object (the login, the
 * administration API), read the same hardened way everywhere: the nesting
 * is checked before Jansson (whose parser recurses) sees the bytes, and an
 * error never quotes the input. Pure: bytes in, an object or an error out.
 * Layer: core. */
#ifndef DICOMVAULT_JBODY_H
#define DICOMVAULT_JBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"

struct json_t;

/* The body as a JSON object: nested at most HTTP_JSON_MAX_DEPTH, no
 * duplicate member, no "\u0000" in a key, nothing after it, every member
 * named in allowed (a NULL-terminated list); the typed readers below then
 * refuse a member of another type (an object, an array). ERR_PARSE with the reason in detail (a member's name, or the
 * line and column of a syntax error; never input bytes); ERR_NOMEM. A
 * body refused for an unknown member has its strings wiped before they are
 * freed (it may hold a password). *out is set only on success and is the
 * caller's to json_decref. */
WUR enum err jbody_object(const uint8_t *p, size_t n, const char *const *allowed, struct json_t **out, char *detail,
                          size_t detaillen);

/* Member key of o as a string of min to max bytes without NUL: *s points
 * into o (valid until its decref), *len its length. An absent or null
 * member gives *s = NULL, *len = 0 and ERR_OK when optional. ERR_PARSE
 * otherwise, detail: "member \"KEY\": missing", "not a string" (null when
 * required, too), "empty or too long" or "holds a NUL". */
WUR enum err jbody_str(struct json_t *o, const char *key, size_t min, size_t max, bool optional, const char **s,
                       size_t *len, char *detail, size_t detaillen);

/* Member key of o as a boolean; absent or null: false. ERR_PARSE if it is
 * another type. */
WUR enum err jbody_bool(struct json_t *o, const char *key, bool *out, char *detail, size_t detaillen);

/* ERR_PARSE with detail "member \"KEY\": MSG", for a value of the right
 * type that its reader refuses. */
enum err jbody_member_why(char *detail, size_t detaillen, const char *key, const char *msg);

/* Wipes the bytes of string member key that Jansson holds (a password, a
 * code) before the object's decref. */
void jbody_wipe(struct json_t *o, const char *key);

#endif
