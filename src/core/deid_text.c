/* deid_text.c: cleaning free text for the C action of PS3.15 Table E.1-1
 * (Clean Descriptors, Clean Structured Content...). A heuristic, not
 * language processing: the identifying words of the data set itself (names,
 * IDs, accession number, addresses, institution...) and anything shaped like
 * a date or a long number are overwritten with 'X', keeping the length, the
 * VR and the rest of the text. See docs/internals/deid.md for its limits.
 * Layer: core. */
#include <stdlib.h>
#include <string.h>
#include "deid_int.h"

void deid_tokens_init(struct deid_tokens *t)
{
	memset(t, 0, sizeof *t);
}

void deid_tokens_fini(struct deid_tokens *t)
{
	if (t->buf != NULL) {
		mem_wipe(t->buf, t->cap);
		free(t->buf);
	}
	memset(t, 0, sizeof *t);
}

static bool is_sep(unsigned char c)
{
	return c == '^' || c == '=' || c == '\\' || c == ' ' || c == ',' || c == ';' || c == ':' ||
	       c == '/' || c == '(' || c == ')' || c == '"' || c == '\'' || c == '\t' || c == '\r' ||
	       c == '\n' || c == '.' || c == '-' || c == '_' || c == 0;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool have(const struct deid_tokens *t, const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		const char *x = t->buf + t->off[i];
		size_t j;
		if (strlen(x) != n)
			continue;
		for (j = 0; j < n && lower((unsigned char)x[j]) == lower((unsigned char)w[j]); j++)
			;
		if (j == n)
			return true;
	}
	return false;
}

static enum err add_word(struct deid_tokens *t, const char *w, size_t n)
{
	if (t->n >= DEID_MAX_TOKENS || have(t, w, n))
		return ERR_OK;   /* enough words: the first ones (patient) matter most */
	if (t->len + n + 1 > t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 1024;
		char *nb;
		while (ncap < t->len + n + 1)
			ncap *= 2;
		nb = malloc(ncap);
		if (nb == NULL)
			return ERR_NOMEM;
		if (t->len)
			memcpy(nb, t->buf, t->len);
		if (t->buf != NULL) {
			mem_wipe(t->buf, t->cap);
			free(t->buf);
		}
		t->buf = nb;
		t->cap = ncap;
	}
	t->off[t->n++] = t->len;
	memcpy(t->buf + t->len, w, n);
	t->buf[t->len + n] = 0;
	t->len += n + 1;
	return ERR_OK;
}

enum err deid_tokens_add(struct deid_tokens *t, const char *v, size_t n, size_t min)
{
	size_t i = 0, start;
	bool mb = false;   /* in a multi-byte segment (after ESC $ ...) */
	enum err rc;

	while (i < n) {
		unsigned char c = (unsigned char)v[i];
		if (c == 0x1B) {  /* ISO 2022 escape: ESC, intermediates 0x20-0x2F, a final byte */
			i++;
			mb = i < n && v[i] == '$';
			while (i < n && (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] <= 0x2F)
				i++;
			if (i < n)
				i++;
			continue;
		}
		if (!mb && (is_sep(c) || c < 0x20)) {
			i++;
			continue;
		}
		start = i;
		if (mb) {
			/* two-byte characters: the whole segment is one word */
			while (i < n && (unsigned char)v[i] != 0x1B && (unsigned char)v[i] >= 0x21)
				i++;
			if (i == start) {
				i++;
				continue;
			}
		} else {
			while (i < n && !is_sep((unsigned char)v[i]) && (unsigned char)v[i] >= 0x20)
				i++;
		}
		if (i - start >= min) {
			rc = add_word(t, v + start, i - start);
			if (rc != ERR_OK)
				return rc;
		}
	}
	return ERR_OK;
}

enum err deid_tokens_add_value(struct deid_tokens *t, const char *v, size_t n, size_t min)
{
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	while (n > 0 && v[0] == ' ') {
		v++;
		n--;
	}
	if (n < min || memchr(v, 0x1B, n) != NULL || memchr(v, '\\', n) != NULL || memchr(v, 0, n) != NULL)
		return ERR_OK;
	return add_word(t, v, n);
}

/* Marks the bytes of ISO 2022 escape sequences (ESC, intermediates, final
 * byte) with 1: they are word boundaries and never part of a match; and the
 * bytes of multi-byte segments (after ESC $ ...) with 2, where digits are
 * halves of characters, not numbers. */
static uint8_t *escape_mask(const uint8_t *v, size_t n)
{
	uint8_t *m;
	size_t i = 0;
	bool mb = false;

	if (memchr(v, 0x1B, n) == NULL)
		return NULL;
	m = calloc(n, 1);
	if (m == NULL)
		return NULL;
	while (i < n) {
		if (v[i] != 0x1B) {
			if (mb && v[i] >= 0x21 && v[i] <= 0x7E)
				m[i] = 2;
			i++;
			continue;
		}
		m[i++] = 1;
		mb = i < n && v[i] == '$';
		while (i < n && v[i] >= 0x20 && v[i] <= 0x2F)
			m[i++] = 1;
		if (i < n)
			m[i++] = 1;
	}
	return m;
}

/* A word boundary: not a letter or digit (bytes >= 0x80 count as letters),
 * or an escape sequence. */
static bool boundary(const uint8_t *v, const uint8_t *esc, size_t n, size_t at)
{
	unsigned char c;

	if (at >= n || (esc != NULL && esc[at] == 1))
		return true;
	c = v[at];
	return !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80);
}

static bool match_at(const uint8_t *v, const uint8_t *esc, size_t n, size_t at, const char *w, size_t wn)
{
	size_t j;

	if (wn > n - at)
		return false;
	for (j = 0; j < wn; j++)
		if ((esc != NULL && esc[at + j] == 1) || lower(v[at + j]) != lower((unsigned char)w[j]))
			return false;
	return (at == 0 || boundary(v, esc, n, at - 1)) && boundary(v, esc, n, at + wn);
}

bool deid_text_clean(const struct deid_tokens *t, uint8_t *v, size_t n)
{
	bool changed = false;
	uint8_t *esc = escape_mask(v, n);
	size_t i, k;

	for (k = 0; t != NULL && k < t->n; k++) {
		const char *w = t->buf + t->off[k];
		size_t wn = strlen(w);
		if (wn == 0)
			continue;
		for (i = 0; i + wn <= n; i++) {
			if (match_at(v, esc, n, i, w, wn)) {
				size_t j;
				/* letters and digits; punctuation stays, except in
				 * multi-byte segments where every byte is half a character */
				for (j = i; j < i + wn; j++)
					if (!boundary(v, NULL, n, j) || (esc != NULL && esc[j] == 2))
						v[j] = 'X';
				changed = true;
				i += wn - 1;
			}
		}
	}
	/* runs of digits and . / - holding six or more digits */
	i = 0;
	while (i < n) {
		size_t start = i, nd = 0;
		while (i < n && (esc == NULL || esc[i] == 0) &&
		       ((v[i] >= '0' && v[i] <= '9') || v[i] == '.' || v[i] == '/' || v[i] == '-')) {
			if (v[i] >= '0' && v[i] <= '9')
				nd++;
			i++;
		}
		if (nd >= 6) {
			for (k = start; k < i; k++)
				if (v[k] >= '0' && v[k] <= '9')
					v[k] = 'X';
			changed = true;
		}
		if (i == start)
			i++;
	}
	free(esc);
	return changed;
}
