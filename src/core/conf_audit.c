/* conf_audit.c: serve's config-change record (SPEC section 8). A new
 * [peer] with every right or a weakened lockout takes effect at serve's
 * next start; the trail must show it. The log itself holds the hash of
 * the file last recorded (the newest config-change record): it is chained
 * and signed, where a state file beside it could be put back silently.
 * A copy of that file, checked against the hash, only says which settings
 * changed. Layer: core. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/audit.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/vault.h"
#include "store_int.h"

#define REASON_PRE "dicomvault.conf sha256 "
#define MORE_ROOM  24u   /* " and N more" */

/* The hash a config-change reason begins with (our writer's), into out;
 * false if it does not. */
static bool reason_hash(const char *r, char out[AUDIT_HASH_HEX])
{
	size_t k = sizeof REASON_PRE - 1, i;

	if (strncmp(r, REASON_PRE, k) != 0)
		return false;
	for (i = 0; i < 64; i++)
		if (!((r[k + i] >= '0' && r[k + i] <= '9') || (r[k + i] >= 'a' && r[k + i] <= 'f')))
			return false;
	memcpy(out, r + k, 64);
	out[64] = 0;
	return true;
}

/* The summary of changes, cut at whole items: those that do not fit are
 * counted. */
struct changes {
	char *p;
	size_t cap, len;
	unsigned items, more;
};

static void change_add(struct changes *c, const char *sign, const char *sec, const char *sub, const char *key)
{
	char item[AUDIT_FIELD_MAX];
	int n = snprintf(item, sizeof item, "%s%s[%s%s%s%s]%s%s", c->items + c->more ? ", " : "", sign, sec,
	                 sub ? " \"" : "", sub ? sub : "", sub ? "\"" : "", key ? " " : "", key ? key : "");

	if (n > 0 && (size_t)n < sizeof item && c->more == 0 && c->len + (size_t)n + MORE_ROOM < c->cap) {
		memcpy(c->p + c->len, item, (size_t)n + 1);
		c->len += (size_t)n;
		c->items++;
	} else {
		c->more++;
	}
}

static bool same_sub(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Whether ini has the section [sec "sub"]. */
static bool has_section(const struct ini *ini, const char *sec, const char *sub)
{
	size_t i;

	for (i = 0; i < ini->nsections; i++)
		if (strcmp(ini->sections[i].section, sec) == 0 && same_sub(ini->sections[i].sub, sub))
			return true;
	return false;
}

/* Sections of a that b has not: sign "+" (a the new file) or "-". The
 * parser refuses a section or a key given twice: each is named once. */
static void sections_only_in(const struct ini *a, const struct ini *b, const char *sign, struct changes *c)
{
	size_t i;

	for (i = 0; i < a->nsections; i++) {
		const struct ini_entry *s = &a->sections[i];
		if (!has_section(b, s->section, s->sub))
			change_add(c, sign, s->section, s->sub, NULL);
	}
}

/* Keys of a's sections that b has too, whose value b lacks (sign, as
 * above) or, with changed, holds another value. */
static void keys_of(const struct ini *a, const struct ini *b, const char *sign, bool changed, struct changes *c)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		const struct ini_entry *e = &a->e[i];
		const char *bv;
		if (!has_section(b, e->section, e->sub))
			continue;
		bv = ini_get(b, e->section, e->sub, e->key);
		if (bv == NULL)
			change_add(c, sign, e->section, e->sub, e->key);
		else if (changed && strcmp(bv, e->value) != 0)
			change_add(c, "", e->section, e->sub, e->key);
	}
}

/* What changed from the copy of the file last recorded (its hash: old)
 * to v's, named in c; or why that is not known. */
static void summarise(const struct vault *v, const char *old, struct changes *c)
{
	char p[VAULT_PATH_MAX + 64], hex[AUDIT_HASH_HEX];
	uint8_t h[32], *text = NULL;
	struct ini *prev = NULL;
	struct ini_error ie;
	size_t n = 0;

	if (vault_path(v, VAULT_CONF_AUDITED, p, sizeof p) != 0 || file_read_all(p, INI_MAX_INPUT, &text, &n) != ERR_OK) {
		snprintf(c->p, c->cap, "settings not known (no copy of the earlier file)");
		return;
	}
	sha256_once(text, n, h);
	store_hex(h, 32, hex);
	if (strcmp(hex, old) != 0 || ini_parse(text, n, &prev, &ie) != ERR_OK) {
		snprintf(c->p, c->cap, "settings not known (the copy of the earlier file is not it)");
		free(text);
		return;
	}
	/* keys of the sections both have first: short, and a weakened
	 * setting hides there rather than in a new section */
	keys_of(v->conf, prev, "+", true, c);
	keys_of(prev, v->conf, "-", false, c);
	sections_only_in(v->conf, prev, "+", c);
	sections_only_in(prev, v->conf, "-", c);
	if (c->items + c->more == 0)
		snprintf(c->p, c->cap, "no setting changed (comments or layout)");
	else if (c->more > 0)
		snprintf(c->p + c->len, c->cap - c->len, " and %u more", c->more);
	ini_free(prev);
	free(text);
}

/* Replaces the copy of the file last recorded with v's (a temporary
 * file, fsync, rename). A failure is only logged: the next change is then
 * recorded without its settings. */
static void copy_write(const struct vault *v)
{
	char p[VAULT_PATH_MAX + 64], tmp[VAULT_PATH_MAX + 80];
	const uint8_t *b = v->conf_text;
	size_t left = v->conf_len;
	bool ok;
	int fd;

	if (vault_path(v, VAULT_CONF_AUDITED, p, sizeof p) != 0)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	ok = fd >= 0 && fchmod(fd, 0600) == 0;
	while (ok && left > 0) {
		ssize_t w = write(fd, b, left);
		if (w < 0 && errno == EINTR)
			continue;
		ok = w > 0;
		if (ok) {
			b += w;
			left -= (size_t)w;
		}
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, p) != 0) {
		log_warn("cannot write %s: %s (the next configuration change is recorded without its settings)", p,
		         strerror(errno));
		(void)unlink(tmp);
	}
}

/* Whether the copy is already the file v runs with. */
static bool copy_current(const struct vault *v, const uint8_t h[32])
{
	char p[VAULT_PATH_MAX + 64];
	uint8_t *text = NULL, got[32];
	size_t n = 0;

	if (vault_path(v, VAULT_CONF_AUDITED, p, sizeof p) != 0 || file_read_all(p, INI_MAX_INPUT, &text, &n) != ERR_OK)
		return false;
	sha256_once(text, n, got);
	free(text);
	return memcmp(got, h, 32) == 0;
}

enum err vault_conf_audit(struct vault *v, struct audit *au, const struct audit_actor *by)
{
	char log[VAULT_PATH_MAX + 64], last[AUDIT_FIELD_MAX + 8] = "", old[AUDIT_HASH_HEX], now[AUDIT_HASH_HEX];
	char reason[AUDIT_FIELD_MAX + 1];
	uint8_t h[32];
	bool found = false, known;
	struct changes c;
	int n;
	enum err rc;

	sha256_once(v->conf_text, v->conf_len, h);
	store_hex(h, 32, now);
	if (vault_path(v, AUDIT_LOG_PATH, log, sizeof log) != 0)
		return ERR_LIMIT;
	rc = audit_last_event(log, AUDIT_CONFIG_CHANGE, VAULT_CONF_SCAN_MAX, last, sizeof last, &found);
	if (rc != ERR_OK)
		return rc;
	known = found && reason_hash(last, old);
	if (known && strcmp(old, now) == 0) {
		/* recorded; the copy may be behind (a crash after the record) */
		if (!copy_current(v, h))
			copy_write(v);
		return ERR_OK;
	}
	n = snprintf(reason, sizeof reason, REASON_PRE "%s%s%s%s", now, known ? ", was " : ", none recorded before",
	             known ? old : "", known ? ": " : "");
	if (n < 0 || (size_t)n >= sizeof reason)
		return ERR_INTERNAL;
	if (known) {
		memset(&c, 0, sizeof c);
		c.p = reason + n;
		c.cap = sizeof reason - (size_t)n;
		summarise(v, old, &c);
	}
	rc = audit_append(au, &(struct audit_rec){ .action = AUDIT_CONFIG_CHANGE, .reason = reason, .actor = *by });
	if (rc != ERR_OK)
		return rc;
	log_info("configuration recorded: %s", reason);
	copy_write(v);
	return ERR_OK;
}
