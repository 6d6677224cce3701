/* peers.c: the [peer "AE"] sections of dicomvault.conf (SPEC section 4):
 * AE title, certificate binding, address, collection and rights, checked
 * strictly (an unknown key or right is an error, not ignored: a typo in
 * an access rule must not widen or silently narrow it). Pure. Layer: proto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/ini.h"
#include "dicomvault/peers.h"

static const char *const right_names[] = { "echo", "store", "find", "move", "get" };
#define NRIGHTS (sizeof right_names / sizeof right_names[0])

const char *peers_right_name(unsigned right)
{
	size_t i;

	for (i = 0; i < NRIGHTS; i++)
		if (right == 1u << i)
			return right_names[i];
	return "?";
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

enum err peers_fingerprint_parse(const char *s, uint8_t out[32])
{
	uint8_t b[32];
	size_t i;

	if (s == NULL || strlen(s) != 95)
		return ERR_PARSE;
	for (i = 0; i < 32; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 31 && s[3 * i + 2] != ':'))
			return ERR_PARSE;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, b, 32);
	return ERR_OK;
}

void peers_fingerprint_format(const uint8_t fp[32], char out[96])
{
	static const char hx[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < 32; i++) {
		out[3 * i] = hx[fp[i] >> 4];
		out[3 * i + 1] = hx[fp[i] & 15];
		out[3 * i + 2] = i < 31 ? ':' : 0;
	}
}

enum err peers_rights_parse(const char *s, unsigned *out)
{
	unsigned r = 0;
	const char *p = s;

	if (s == NULL)
		return ERR_PARSE;
	while (*p != 0) {
		const char *b, *e;
		size_t n, i;
		while (*p == ' ' || *p == '\t')
			p++;
		b = p;
		while (*p != 0 && *p != ',')
			p++;
		e = p;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		n = (size_t)(e - b);
		for (i = 0; i < NRIGHTS; i++)
			if (strlen(right_names[i]) == n && memcmp(right_names[i], b, n) == 0)
				break;
		if (i == NRIGHTS)
			return ERR_PARSE;   /* unknown, or empty between commas */
		r |= 1u << i;
		if (*p == ',') {
			p++;
			if (*p == 0)
				return ERR_PARSE;   /* trailing comma */
		}
	}
	*out = r;
	return ERR_OK;
}

static bool collection_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > PEER_COLLECTION_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool host_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > PEER_HOST_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == ':' || c == '_'))
			return false;
	}
	return true;
}

const struct peer *peers_find(const struct peers *p, const char *ae)
{
	size_t i;

	if (p == NULL || ae == NULL)
		return NULL;
	for (i = 0; i < p->n; i++)
		if (strcmp(p->p[i].ae, ae) == 0)
			return &p->p[i];
	return NULL;
}

void peers_free(struct peers *p)
{
	if (p == NULL)
		return;
	free(p->p);
	free(p);
}

/* One entry of a [peer] section into pe; seen: keys met so far. */
static enum err peer_key(struct peer *pe, const struct ini_entry *e, unsigned *seen, char *why, size_t whylen)
{
	static const char *const keys[] = { "fingerprint", "ca", "host", "port", "collection", "rights", "require_user",
	                                    "tls" };
	size_t k;

	for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
		if (strcmp(e->key, keys[k]) == 0)
			break;
	if (k == sizeof keys / sizeof keys[0]) {
		snprintf(why, whylen, "line %u: [peer] has no key '%.40s' (fingerprint, ca, host, port, collection, rights, "
		         "require_user, tls)",
		         e->line, e->key);
		return ERR_PARSE;
	}
	if (*seen & (1u << k)) {
		snprintf(why, whylen, "line %u: %s given twice for one peer", e->line, keys[k]);
		return ERR_PARSE;
	}
	*seen |= 1u << k;
	switch (k) {
	case 0:
		if (peers_fingerprint_parse(e->value, pe->fp) != ERR_OK) {
			snprintf(why, whylen, "line %u: fingerprint: 32 hex pairs separated by colons (SHA-256)", e->line);
			return ERR_PARSE;
		}
		pe->has_fp = true;
		break;
	case 1:
		if (e->value[0] == 0 || strlen(e->value) > PEER_PATH_MAX) {
			snprintf(why, whylen, "line %u: ca: a file name of 1 to %u bytes", e->line, PEER_PATH_MAX);
			return ERR_PARSE;
		}
		snprintf(pe->ca, sizeof pe->ca, "%s", e->value);
		break;
	case 2:
		if (!host_ok(e->value)) {
			snprintf(why, whylen, "line %u: host: a name or address", e->line);
			return ERR_PARSE;
		}
		snprintf(pe->host, sizeof pe->host, "%s", e->value);
		break;
	case 3: {
		char *end = NULL;
		unsigned long n = strtoul(e->value, &end, 10);
		if (e->value[0] < '0' || e->value[0] > '9' || end == e->value || *end != 0 || n < 1 || n > 65535) {
			snprintf(why, whylen, "line %u: port: a number from 1 to 65535", e->line);
			return ERR_PARSE;
		}
		pe->port = (uint16_t)n;
		break;
	}
	case 4:
		if (!collection_ok(e->value)) {
			snprintf(why, whylen, "line %u: collection: 1 to %u of A-Z a-z 0-9 . _ -", e->line, PEER_COLLECTION_MAX);
			return ERR_PARSE;
		}
		snprintf(pe->collection, sizeof pe->collection, "%s", e->value);
		break;
	case 5:
		if (peers_rights_parse(e->value, &pe->rights) != ERR_OK) {
			snprintf(why, whylen, "line %u: rights: a list of echo, store, find, move, get", e->line);
			return ERR_PARSE;
		}
		break;
	case 7:
		if (strcmp(e->value, "yes") == 0) {
			pe->plain = false;
		} else if (strcmp(e->value, "no") == 0) {
			pe->plain = true;
		} else {
			snprintf(why, whylen, "line %u: tls: yes or no", e->line);
			return ERR_PARSE;
		}
		break;
	default:
		if (strcmp(e->value, "yes") == 0) {
			pe->require_user = true;
		} else if (strcmp(e->value, "no") == 0) {
			pe->require_user = false;
		} else {
			snprintf(why, whylen, "line %u: require_user: yes or no", e->line);
			return ERR_PARSE;
		}
		break;
	}
	return ERR_OK;
}

enum err peers_load(const struct ini *conf, struct peers **out, char *why, size_t whylen)
{
	struct peers *ps = NULL;
	size_t i, j, n = 0;
	enum err rc = ERR_INTERNAL;

	for (i = 0; conf != NULL && i < conf->nsections; i++)
		if (strcmp(conf->sections[i].section, "peer") == 0)
			n++;
	if (n > PEERS_MAX) {
		snprintf(why, whylen, "more than %u [peer] sections", PEERS_MAX);
		return ERR_LIMIT;
	}
	ps = calloc(1, sizeof *ps);
	if (ps == NULL || (n > 0 && (ps->p = calloc(n, sizeof *ps->p)) == NULL)) {
		snprintf(why, whylen, "out of memory");
		rc = ERR_NOMEM;
		goto out;
	}
	for (i = 0; conf != NULL && i < conf->nsections; i++) {
		const struct ini_entry *s = &conf->sections[i];
		struct peer *pe;
		unsigned seen = 0;
		if (strcmp(s->section, "peer") != 0)
			continue;
		rc = ERR_PARSE;
		if (s->sub == NULL || !pdu_ae_ok(s->sub)) {
			snprintf(why, whylen, "line %u: [peer \"AE\"]: an AE title of 1 to 16 characters, no backslash", s->line);
			goto out;
		}
		if (peers_find(ps, s->sub) != NULL) {
			snprintf(why, whylen, "line %u: peer %s defined twice", s->line, s->sub);
			goto out;
		}
		pe = &ps->p[ps->n++];
		snprintf(pe->ae, sizeof pe->ae, "%s", s->sub);
		snprintf(pe->collection, sizeof pe->collection, "default");
		pe->line = s->line;
		for (j = 0; j < conf->n; j++) {
			const struct ini_entry *e = &conf->e[j];
			if (strcmp(e->section, "peer") != 0 || e->sub == NULL || strcmp(e->sub, s->sub) != 0)
				continue;
			if (peer_key(pe, e, &seen, why, whylen) != ERR_OK)
				goto out;
		}
		if (pe->has_fp && pe->ca[0] != 0) {
			snprintf(why, whylen, "line %u: peer %s: give either fingerprint or ca (exactly one)", s->line, pe->ae);
			goto out;
		}
		if ((pe->has_fp || pe->ca[0] != 0) && pe->plain) {
			/* plain TCP identifies a peer by AE title (and host) only: a
			 * certificate binding would bind nothing there, and inbound
			 * it is refused (a half-working peer) */
			snprintf(why, whylen, "line %u: peer %s: tls = no goes without fingerprint and ca (plain TCP checks "
			         "no certificate)", s->line, pe->ae);
			goto out;
		}
		if (!pe->has_fp && pe->ca[0] == 0 && !pe->plain) {
			snprintf(why, whylen, "line %u: peer %s: give either fingerprint or ca (exactly one), or tls = no",
			         s->line, pe->ae);
			goto out;
		}
		if ((pe->host[0] != 0) != (pe->port != 0)) {
			snprintf(why, whylen, "line %u: peer %s: host and port go together", s->line, pe->ae);
			goto out;
		}
	}
	*out = ps;
	ps = NULL;
	rc = ERR_OK;
out:
	peers_free(ps);
	return rc;
}
