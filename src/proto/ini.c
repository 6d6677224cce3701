/* ini.c: parser for dicomvault.conf. Each line is checked against the
 * limits before it is copied; names are restricted to [a-z0-9_.-]; control
 * characters and NUL are refused; a key given twice in one section or a
 * section header given twice is an error, never a silent override.
 * Layer: proto. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"

static enum err fail(struct ini_error *err, unsigned line, const char *fmt, ...) PRINTF_LIKE(3, 4);

static enum err fail(struct ini_error *err, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->line = line;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return ERR_PARSE;
}

static bool is_space(uint8_t c) { return c == ' ' || c == '\t'; }

static bool name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '.';
}

static char *dup_lower(struct arena *a, const uint8_t *p, size_t n)
{
	char *s = arena_alloc(a, n + 1);
	size_t i;

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		s[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
	s[n] = 0;
	return s;
}

/* A double-quoted string starting at p[0] == '"'; *used = bytes consumed. */
static enum err quoted(struct arena *a, const uint8_t *p, size_t n, char **out, size_t *used)
{
	char *s = arena_alloc(a, n);
	size_t i = 1, k = 0;

	if (s == NULL)
		return ERR_NOMEM;
	while (i < n && p[i] != '"') {
		if (p[i] == '\\') {
			if (i + 1 >= n || (p[i + 1] != '"' && p[i + 1] != '\\'))
				return ERR_PARSE;
			i++;
		}
		s[k++] = (char)p[i++];
	}
	if (i >= n)
		return ERR_PARSE;
	s[k] = 0;
	*out = s;
	*used = i + 1;
	return ERR_OK;
}

static bool same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static enum err grow(struct ini *ini, struct ini_entry **arr, size_t n, size_t *cap)
{
	struct ini_entry *ne;
	size_t ncap;

	if (n < *cap)
		return ERR_OK;
	ncap = *cap ? *cap * 2 : 32;
	ne = arena_alloc(&ini->arena, ncap * sizeof *ne);
	if (ne == NULL)
		return ERR_NOMEM;
	if (n)
		memcpy(ne, *arr, n * sizeof *ne);
	*arr = ne;
	*cap = ncap;
	return ERR_OK;
}

enum err ini_parse(const uint8_t *text, size_t len, struct ini **out, struct ini_error *err)
{
	struct ini *ini = NULL;
	const char *section = NULL, *sub = NULL;
	size_t pos = 0, cap = 0, scap = 0, i;
	unsigned line = 0;
	enum err rc = ERR_INTERNAL;

	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (len > INI_MAX_INPUT)
		return fail(err, 0, "configuration larger than %u bytes", INI_MAX_INPUT);
	ini = calloc(1, sizeof *ini);
	if (ini == NULL)
		return ERR_NOMEM;
	arena_init(&ini->arena, (size_t)INI_MAX_INPUT * 8);
	if (len >= 3 && text[0] == 0xEF && text[1] == 0xBB && text[2] == 0xBF)
		pos = 3;  /* UTF-8 byte order mark */
	while (pos < len) {
		const uint8_t *p = text + pos;
		size_t n = 0, k;

		line++;
		while (pos + n < len && text[pos + n] != '\n')
			n++;
		pos += n + (pos + n < len);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > INI_MAX_LINE) {
			rc = fail(err, line, "line longer than %u bytes", INI_MAX_LINE);
			goto out;
		}
		for (k = 0; k < n; k++)
			if ((p[k] < 0x20 && p[k] != '\t') || p[k] == 0x7f) {
				rc = fail(err, line, "control character (0x%02X) in line", p[k]);
				goto out;
			}
		while (n > 0 && is_space(p[0])) {
			p++;
			n--;
		}
		while (n > 0 && is_space(p[n - 1]))
			n--;
		if (n == 0 || p[0] == '#' || p[0] == ';')
			continue;
		if (p[0] == '[') {
			size_t a = 1, b;
			char *sname, *sb = NULL;
			if (p[n - 1] != ']') {
				rc = fail(err, line, "section header without ']'");
				goto out;
			}
			n--;  /* drop ']' */
			while (a < n && is_space(p[a]))
				a++;
			b = a;
			while (b < n && name_char(p[b]))
				b++;
			if (b == a || b - a > INI_MAX_NAME) {
				rc = fail(err, line, "bad section name");
				goto out;
			}
			sname = dup_lower(&ini->arena, p + a, b - a);
			if (sname == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
			while (b < n && is_space(p[b]))
				b++;
			if (b < n) {
				size_t used = 0;
				if (p[b] != '"') {
					rc = fail(err, line, "section name must be followed by a quoted name or ']'");
					goto out;
				}
				rc = quoted(&ini->arena, p + b, n - b, &sb, &used);
				if (rc != ERR_OK) {
					if (rc == ERR_PARSE)
						fail(err, line, "bad quoted name in section header");
					goto out;
				}
				b += used;
				while (b < n && is_space(p[b]))
					b++;
				if (b != n || sb[0] == 0) {
					rc = fail(err, line, sb[0] == 0 ? "empty quoted name" : "text after the quoted name");
					goto out;
				}
			}
			for (i = 0; i < ini->nsections; i++)
				if (same(ini->sections[i].section, sname) && same(ini->sections[i].sub, sb)) {
					rc = fail(err, line, "section [%s%s%s%s] given twice (first at line %u)", sname,
					          sb ? " \"" : "", sb ? sb : "", sb ? "\"" : "", ini->sections[i].line);
					goto out;
				}
			rc = grow(ini, &ini->sections, ini->nsections, &scap);
			if (rc != ERR_OK)
				goto out;
			memset(&ini->sections[ini->nsections], 0, sizeof ini->sections[0]);
			ini->sections[ini->nsections].section = sname;
			ini->sections[ini->nsections].sub = sb;
			ini->sections[ini->nsections].line = line;
			ini->nsections++;
			section = sname;
			sub = sb;
			continue;
		}
		/* key = value */
		{
			size_t a = 0, b;
			char *key, *val;
			struct ini_entry *e;
			while (a < n && name_char(p[a]))
				a++;
			if (a == 0 || a > INI_MAX_NAME) {
				rc = fail(err, line, "expected 'key = value' or a [section]");
				goto out;
			}
			b = a;
			while (b < n && is_space(p[b]))
				b++;
			if (b >= n || p[b] != '=') {
				rc = fail(err, line, "expected '=' after the key");
				goto out;
			}
			if (section == NULL) {
				rc = fail(err, line, "key outside any [section]");
				goto out;
			}
			key = dup_lower(&ini->arena, p, a);
			b++;
			while (b < n && is_space(p[b]))
				b++;
			if (key == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
			if (b < n && p[b] == '"') {
				size_t used = 0;
				rc = quoted(&ini->arena, p + b, n - b, &val, &used);
				if (rc != ERR_OK) {
					if (rc == ERR_PARSE)
						fail(err, line, "bad quoted value");
					goto out;
				}
				if (b + used != n) {
					rc = fail(err, line, "text after the quoted value");
					goto out;
				}
			} else {
				val = arena_alloc(&ini->arena, n - b + 1);
				if (val == NULL) {
					rc = ERR_NOMEM;
					goto out;
				}
				memcpy(val, p + b, n - b);
				val[n - b] = 0;
			}
			for (i = 0; i < ini->n; i++)
				if (same(ini->e[i].section, section) && same(ini->e[i].sub, sub) && strcmp(ini->e[i].key, key) == 0) {
					rc = fail(err, line, "key '%s' given twice in its section (first at line %u)", key, ini->e[i].line);
					goto out;
				}
			if (ini->n >= INI_MAX_ENTRIES) {
				rc = fail(err, line, "more than %u settings", INI_MAX_ENTRIES);
				goto out;
			}
			rc = grow(ini, &ini->e, ini->n, &cap);
			if (rc != ERR_OK)
				goto out;
			e = &ini->e[ini->n++];
			e->section = section;
			e->sub = sub;
			e->key = key;
			e->value = val;
			e->line = line;
		}
	}
	*out = ini;
	ini = NULL;
	rc = ERR_OK;
out:
	if (ini != NULL) {
		arena_fini(&ini->arena);
		free(ini);
	}
	return rc;
}

void ini_free(struct ini *ini)
{
	if (ini == NULL)
		return;
	arena_fini(&ini->arena);
	free(ini);
}

const struct ini_entry *ini_entry(const struct ini *ini, const char *section, const char *sub, const char *key)
{
	size_t i;

	for (i = 0; i < ini->n; i++)
		if (strcmp(ini->e[i].section, section) == 0 && same(ini->e[i].sub, sub) && strcmp(ini->e[i].key, key) == 0)
			return &ini->e[i];
	return NULL;
}

const char *ini_get(const struct ini *ini, const char *section, const char *sub, const char *key)
{
	const struct ini_entry *e = ini_entry(ini, section, sub, key);

	return e != NULL ? e->value : NULL;
}

unsigned ini_line(const struct ini *ini, const char *section, const char *sub, const char *key)
{
	const struct ini_entry *e = ini_entry(ini, section, sub, key);

	return e != NULL ? e->line : 0;
}
