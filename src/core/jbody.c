/* jbody.c: a request body that is one flat JSON object (jbody.h). A
 * pre-pass rejects deep nesting before Jansson (whose parser recurses)
 * sees the bytes; Jansson then rejects duplicate members, "\u0000" in keys
 * and trailing data. Details never quote the input (Jansson's messages
 * do, so only its line and column are used). Pure. Layer: core. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/jbody.h"
#include "dicomvault/limits.h"

/* Nesting depth of a JSON text, outside strings; beyond max: false. */
static bool depth_ok(const uint8_t *p, size_t n, unsigned max)
{
	unsigned depth = 0;
	bool in_str = false, esc = false;
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return false;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

static enum err why(char *detail, size_t n, const char *msg)
{
	if (detail != NULL && n > 0)
		snprintf(detail, n, "%s", msg);
	return ERR_PARSE;
}

static bool allowed_key(const char *key, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(key, *allowed) == 0)
			return true;
	return false;
}

enum err jbody_member_why(char *detail, size_t n, const char *key, const char *msg)
{
	if (detail != NULL && n > 0)
		snprintf(detail, n, "member \"%s\": %s", key, msg);
	return ERR_PARSE;
}

/* "unexpected member: only a, b and c are allowed" (cut to fit). */
static void allowed_list(char *detail, size_t n, const char *const *allowed)
{
	size_t len = (size_t)snprintf(detail, n, "unexpected member: only ");
	size_t i;

	for (i = 0; allowed[i] != NULL && len < n; i++)
		len += (size_t)snprintf(detail + len, n - len, "%s%s", i == 0 ? "" : allowed[i + 1] ? ", " : " and ",
		                        allowed[i]);
	if (len < n)
		snprintf(detail + len, n - len, " %s allowed", i == 1 ? "is" : "are");
}

enum err jbody_object(const uint8_t *p, size_t n, const char *const *allowed, json_t **out, char *detail,
                      size_t detaillen)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;

	if (p == NULL || n == 0)
		return why(detail, detaillen, "a JSON body is required");
	if (!depth_ok(p, n, HTTP_JSON_MAX_DEPTH))
		return why(detail, detaillen, "the JSON body is nested too deeply");
	root = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return ERR_NOMEM;
		/* jerr.text may quote the input: only the position is told */
		if (detail != NULL && detaillen > 0)
			snprintf(detail, detaillen, "malformed JSON at line %d, column %d", jerr.line, jerr.column);
		return ERR_PARSE;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return why(detail, detaillen, "the body must be a JSON object");
	}
	json_object_foreach(root, key, v) {
		if (!allowed_key(key, allowed)) {
			/* the input's name is not told; the allowed ones are */
			if (detail != NULL && detaillen > 0)
				allowed_list(detail, detaillen, allowed);
			/* the body may hold a password: its strings are wiped
			 * before they are freed, as the caller would on any
			 * other refusal */
			json_object_foreach(root, key, v)
				jbody_wipe(root, key);
			json_decref(root);
			return ERR_PARSE;
		}
	}
	*out = root;
	return ERR_OK;
}

enum err jbody_str(json_t *o, const char *key, size_t min, size_t max, bool optional, const char **s, size_t *len,
                   char *detail, size_t detaillen)
{
	json_t *v = json_object_get(o, key);
	const char *p;
	size_t l;

	if (v == NULL && !optional)
		return jbody_member_why(detail, detaillen, key, "missing");
	if (v == NULL || (json_is_null(v) && optional)) {
		*s = NULL;
		*len = 0;
		return ERR_OK;
	}
	if (!json_is_string(v))
		return jbody_member_why(detail, detaillen, key, "not a string");
	p = json_string_value(v);
	l = json_string_length(v);
	if (l < min || l > max)
		return jbody_member_why(detail, detaillen, key, "empty or too long");
	if (strlen(p) != l)
		return jbody_member_why(detail, detaillen, key, "holds a NUL");
	*s = p;
	*len = l;
	return ERR_OK;
}

enum err jbody_bool(json_t *o, const char *key, bool *out, char *detail, size_t detaillen)
{
	json_t *v = json_object_get(o, key);

	if (v != NULL && !json_is_null(v) && !json_is_boolean(v))
		return jbody_member_why(detail, detaillen, key, "not a boolean");
	*out = v != NULL && json_is_true(v);
	return ERR_OK;
}

void jbody_wipe(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (v != NULL && json_is_string(v))
		mem_wipe((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}
