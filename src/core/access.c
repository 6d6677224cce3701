/* access.c: the access policy of docs/ACCESS.md: names of roles and
 * actions, grant scopes, the decision for one action on one object, and
 * the collection rules of dicomvault.conf. Pure (the caller brings the
 * grants and the time). Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/access.h"
#include "dicomvault/charset.h"
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/ini.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

static const char *const role_names[ACCESS_ROLE__N] = {
	"admin", "radiologist", "physician", "technologist", "researcher", "auditor",
};

static const char *const action_names[ACCESS_ACT__N] = {
	"store", "query", "retrieve", "retrieve-original", "export", "share", "delete", "manage-users", "read-audit",
	"break-glass",
};

const char *access_role_name(enum access_role r)
{
	return (unsigned)r < ACCESS_ROLE__N ? role_names[r] : "?";
}

const char *access_action_name(enum access_action a)
{
	return (unsigned)a < ACCESS_ACT__N ? action_names[a] : "?";
}

static bool name_is(const char *s, size_t n, const char *name)
{
	return n == strlen(name) && memcmp(s, name, n) == 0;
}

bool access_role_parse(const char *s, size_t n, enum access_role *out)
{
	unsigned i;

	for (i = 0; s != NULL && i < ACCESS_ROLE__N; i++)
		if (name_is(s, n, role_names[i])) {
			*out = (enum access_role)i;
			return true;
		}
	return false;
}

bool access_action_parse(const char *s, size_t n, enum access_action *out)
{
	unsigned i;

	for (i = 0; s != NULL && i < ACCESS_ACT__N; i++)
		if (name_is(s, n, action_names[i])) {
			*out = (enum access_action)i;
			return true;
		}
	return false;
}

static bool name_chars_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > ACCESS_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum err access_scope_parse(const char *s, struct access_grant *g, char *why, size_t whylen)
{
	size_t n;
	unsigned i;

	if (s == NULL)
		return err_why(why, whylen, ERR_PARSE, "no scope");
	n = strlen(s);
	g->target[0] = 0;
	memset(g->patient, 0, sizeof g->patient);
	if (strcmp(s, "*") == 0) {
		g->scope = ACCESS_SCOPE_ALL;
		return ERR_OK;
	}
	if (strncmp(s, "collection:", 11) == 0) {
		if (!name_chars_ok(s + 11, n - 11))
			return err_why(why, whylen, ERR_PARSE, "a collection name is 1 to %u of A-Z a-z 0-9 . _ -",
			               ACCESS_NAME_MAX);
		g->scope = ACCESS_SCOPE_COLLECTION;
		memcpy(g->target, s + 11, n - 11 + 1);
		return ERR_OK;
	}
	if (strncmp(s, "study:", 6) == 0) {
		if (!vr_uid_ok(s + 6, n - 6))
			return err_why(why, whylen, ERR_PARSE, "a study is a UID: 1 to 64 digits and dots");
		g->scope = ACCESS_SCOPE_STUDY;
		memcpy(g->target, s + 6, n - 6 + 1);
		return ERR_OK;
	}
	if (strncmp(s, "patient:", 8) == 0) {
		if (n != 8 + 64)
			return err_why(why, whylen, ERR_PARSE, "a patient scope is \"patient:\" and 64 hex digits");
		for (i = 0; i < 32; i++) {
			int hi = hexval(s[8 + 2 * i]), lo = hexval(s[9 + 2 * i]);
			if (hi < 0 || lo < 0)
				return err_why(why, whylen, ERR_PARSE, "a patient scope is \"patient:\" and 64 hex digits");
			g->patient[i] = (uint8_t)(hi << 4 | lo);
		}
		g->scope = ACCESS_SCOPE_PATIENT;
		return ERR_OK;
	}
	return err_why(why, whylen, ERR_PARSE, "a scope is *, collection:NAME, study:UID or patient:HEX");
}

void access_scope_format(const struct access_grant *g, char *out, size_t cap)
{
	static const char hexd[] = "0123456789abcdef";
	char hex[65];
	unsigned i;

	switch (g->scope) {
	case ACCESS_SCOPE_ALL:
		snprintf(out, cap, "*");
		break;
	case ACCESS_SCOPE_COLLECTION:
		snprintf(out, cap, "collection:%s", g->target);
		break;
	case ACCESS_SCOPE_STUDY:
		snprintf(out, cap, "study:%s", g->target);
		break;
	default:
		for (i = 0; i < 32; i++) {
			hex[2 * i] = hexd[g->patient[i] >> 4];
			hex[2 * i + 1] = hexd[g->patient[i] & 15];
		}
		hex[64] = 0;
		snprintf(out, cap, "patient:%s", hex);
		break;
	}
}

static bool in_force(const struct access_grant *g, int64_t now)
{
	return (g->not_before == 0 || g->not_before <= now) && (g->expires == 0 || now < g->expires);
}

static bool object_given(const struct access_object *o)
{
	return o != NULL && (o->collection != NULL || o->study_uid != NULL || o->patient != NULL);
}

bool access_grant_covers(const struct access_grant *g, const struct access_object *o, int64_t now)
{
	if (!in_force(g, now))
		return false;
	if (!object_given(o))
		return true;   /* not about one object: any grant in force */
	switch (g->scope) {
	case ACCESS_SCOPE_ALL:
		return true;
	case ACCESS_SCOPE_COLLECTION:
		return o->collection != NULL && strcmp(o->collection, g->target) == 0;
	case ACCESS_SCOPE_STUDY:
		if (o->study_uid != NULL && strcmp(o->study_uid, g->target) == 0)
			return true;
		return g->with_priors && o->patient != NULL && memcmp(o->patient, g->patient, 32) == 0;
	case ACCESS_SCOPE_PATIENT:
		return o->patient != NULL && memcmp(o->patient, g->patient, 32) == 0;
	}
	return false;
}

int access_decide(const struct access_grant *g, size_t n, enum access_action a, const struct access_object *o,
                  int64_t now, const struct access_grant **by)
{
	int best = ACCESS_NO;
	size_t i;

	if (by != NULL)
		*by = NULL;
	if ((unsigned)a >= ACCESS_ACT__N)
		return ACCESS_NO;
	for (i = 0; i < n && best != ACCESS_YES; i++) {
		int v;
		if ((unsigned)g[i].role >= ACCESS_ROLE__N)
			continue;
		v = access_matrix[g[i].role][a];
		if (v == ACCESS_NO || (v == ACCESS_DEID && best == ACCESS_DEID))
			continue;
		if (!access_grant_covers(&g[i], o, now))
			continue;
		/* the users, the grants and the audit trail are the whole
		 * vault's: a grant on part of it does not reach them (an admin
		 * of one collection would otherwise grant itself "*") */
		if (access_action_vault_wide(a) && g[i].scope != ACCESS_SCOPE_ALL)
			continue;
		best = v;
		if (by != NULL)
			*by = &g[i];
	}
	return best;
}

bool access_action_vault_wide(enum access_action a)
{
	return a == ACCESS_ACT_MANAGE_USERS || a == ACCESS_ACT_READ_AUDIT;
}

bool access_role_allows(const struct access_grant *g, size_t n, enum access_action a, int64_t now)
{
	size_t i;

	if ((unsigned)a >= ACCESS_ACT__N)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned)g[i].role < ACCESS_ROLE__N && access_matrix[g[i].role][a] != ACCESS_NO &&
		    access_grant_covers(&g[i], NULL, now))
			return true;
	return false;
}

/* ---- collections ---- */

struct coll_rule {
	char name[ACCESS_NAME_MAX + 1];
	uint32_t tag;              /* match: the attribute; 0: none */
	uint16_t vr;               /* its VR (a string VR) */
	char pattern[ACCESS_NAME_MAX * 2 + 1];
	char ae[17];               /* calling_ae; "" none */
};

struct access_collections {
	struct coll_rule *r;
	size_t n;
};

void access_collections_free(struct access_collections *c)
{
	if (c == NULL)
		return;
	free(c->r);
	free(c);
}

enum err access_collections_load(const struct ini *conf, struct access_collections **out, char *why, size_t whylen)
{
	struct access_collections *c;
	size_t i, j, n = 0;
	enum err rc = ERR_PARSE;

	*out = NULL;
	for (i = 0; conf != NULL && i < conf->nsections; i++)
		if (strcmp(conf->sections[i].section, "collection") == 0)
			n++;
	if (n > ACCESS_MAX_COLLECTIONS)
		return err_why(why, whylen, ERR_LIMIT, "more than %u collections", ACCESS_MAX_COLLECTIONS);
	c = calloc(1, sizeof *c);
	if (c == NULL || (n > 0 && (c->r = calloc(n, sizeof *c->r)) == NULL)) {
		access_collections_free(c);
		return ERR_NOMEM;
	}
	for (i = 0; conf != NULL && i < conf->nsections; i++) {
		const struct ini_entry *s = &conf->sections[i];
		struct coll_rule *r;
		if (strcmp(s->section, "collection") != 0)
			continue;
		if (s->sub == NULL || !name_chars_ok(s->sub, strlen(s->sub)) || strcmp(s->sub, "default") == 0) {
			(void)err_why(why, whylen, ERR_PARSE, "line %u: [collection \"NAME\"]: NAME is 1 to %u of A-Z a-z "
			              "0-9 . _ - and not \"default\"", s->line, ACCESS_NAME_MAX);
			goto out;
		}
		for (j = 0; j < c->n; j++)
			if (strcmp(c->r[j].name, s->sub) == 0)
				break;
		if (j < c->n)
			continue;   /* a section given twice: its keys were read with the first */
		r = &c->r[c->n++];
		snprintf(r->name, sizeof r->name, "%s", s->sub);
		for (j = 0; j < conf->n; j++) {
			const struct ini_entry *e = &conf->e[j];
			if (strcmp(e->section, "collection") != 0 || e->sub == NULL || strcmp(e->sub, s->sub) != 0)
				continue;
			if (strcmp(e->key, "match") == 0) {
				const char *eq = strchr(e->value, '=');
				const struct dict_entry *d;
				if (eq == NULL || eq == e->value || strlen(eq + 1) >= sizeof r->pattern) {
					(void)err_why(why, whylen, ERR_PARSE, "line %u: match = Keyword=value (value at most %zu "
					              "characters)", e->line, sizeof r->pattern - 1);
					goto out;
				}
				d = dict_lookup_keyword(e->value, (size_t)(eq - e->value));
				if (d == NULL) {
					(void)err_why(why, whylen, ERR_PARSE, "line %u: match: '%.*s' is not a DICOM keyword", e->line,
					              (int)(eq - e->value), e->value);
					goto out;
				}
				if (!vr_is_string(d->vr)) {
					/* a number or bytes: the rule would never match */
					char vb[3];
					(void)err_why(why, whylen, ERR_PARSE, "line %u: match: %s is not a text attribute (its VR is "
					              "%s): only text attributes can be matched", e->line, d->keyword,
					              vr_name(d->vr, vb));
					goto out;
				}
				r->tag = d->tag;
				r->vr = d->vr;
				snprintf(r->pattern, sizeof r->pattern, "%s", eq + 1);
			} else if (strcmp(e->key, "calling_ae") == 0) {
				size_t l = strlen(e->value);
				if (l == 0 || l > 16) {
					(void)err_why(why, whylen, ERR_PARSE, "line %u: calling_ae is 1 to 16 characters", e->line);
					goto out;
				}
				memcpy(r->ae, e->value, l + 1);
			} else {
				(void)err_why(why, whylen, ERR_PARSE, "line %u: unknown key '%s' in [collection \"%s\"] (match, "
				              "calling_ae)", e->line, e->key, s->sub);
				goto out;
			}
		}
	}
	*out = c;
	c = NULL;
	rc = ERR_OK;
out:
	access_collections_free(c);
	return rc;
}

bool access_collection_known(const struct access_collections *c, const char *name)
{
	size_t i;

	if (name == NULL)
		return false;
	if (strcmp(name, "default") == 0)
		return true;
	for (i = 0; c != NULL && i < c->n; i++)
		if (strcmp(c->r[i].name, name) == 0)
			return true;
	return false;
}

/* * and ? over (v, n), exact otherwise (DICOM values are case-sensitive). */
static bool glob(const char *p, const char *v, size_t n)
{
	const char *star = NULL;
	size_t i = 0, vs = 0;

	while (i < n) {
		if (*p == '*') {
			star = p++;
			vs = i;
		} else if (*p != 0 && (*p == '?' || *p == v[i])) {
			p++;
			i++;
		} else if (star != NULL) {
			p = star + 1;
			i = ++vs;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == 0;
}

static bool ae_eq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	while (na > 0 && a[na - 1] == ' ')
		na--;
	while (nb > 0 && b[nb - 1] == ' ')
		nb--;
	return na == nb && memcmp(a, b, na) == 0;
}

/* The rule's attribute in ds matches its pattern: the value trimmed of
 * padding, in UTF-8 as the configuration is written (decoded from the
 * data set's Specific Character Set: a name sent in Latin-1 matches as
 * one sent in UTF-8 does); a value that does not decode is matched as
 * sent. */
static bool rule_matches(const struct coll_rule *r, const struct dcm_ds *ds)
{
	struct dcm_charset cs;
	struct wbuf w;
	size_t n = 0, i;
	const char *v = ds != NULL ? dcm_ds_str(ds, r->tag, &n) : NULL;
	bool ok;

	if (v == NULL)
		return false;
	/* ASCII stays as it is; ISO 2022 sets (JIS) switch by ESC in 7 bits */
	for (i = 0; i < n && (uint8_t)v[i] < 0x80 && v[i] != 0x1b; i++)
		;
	wbuf_init(&w, 4 * n + 16);
	if (i < n && vr_uses_charset(r->vr)) {
		dcm_ds_charset(ds, &cs);
		if (charset_to_utf8(&cs, r->vr == VR_PN, (const uint8_t *)v, n, &w) == ERR_OK && wbuf_err(&w) == ERR_OK) {
			v = (const char *)w.p;
			n = w.len;
		}
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	while (n > 0 && v[0] == ' ') {
		v++;
		n--;
	}
	ok = glob(r->pattern, v, n);
	if (w.p)
		mem_wipe(w.p, w.len);
	wbuf_fini(&w);
	return ok;
}

const char *access_collection_for(const struct access_collections *c, const struct dcm_ds *ds, const char *calling_ae,
                                  const char *target)
{
	size_t i;

	for (i = 0; c != NULL && i < c->n; i++) {
		const struct coll_rule *r = &c->r[i];
		bool ok = r->tag != 0 || r->ae[0] != 0;
		if (ok && r->tag != 0)
			ok = rule_matches(r, ds);
		if (ok && r->ae[0] != 0)
			ok = calling_ae != NULL && ae_eq(r->ae, calling_ae);
		if (ok)
			return r->name;
	}
	if (target != NULL && access_collection_known(c, target))
		return target;
	return "default";
}

bool access_collection_routes_ae(const struct access_collections *c, const char *name, const char *calling_ae)
{
	size_t i;

	for (i = 0; c != NULL && calling_ae != NULL && i < c->n; i++)
		if (c->r[i].ae[0] != 0 && strcmp(c->r[i].name, name) == 0 && ae_eq(c->r[i].ae, calling_ae))
			return true;
	return false;
}
