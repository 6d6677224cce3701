/* qido_fuzz.c: libFuzzer target for the QIDO-RS query parameters
 * (proto/qido.c) and the matching engine's identifier parser
 * (core/query.c, qry_new), both pure. The input's first byte picks the
 * level; the rest is a query string, split on '&' and '=' and
 * percent-decoded as the HTTP layer does. Checked, abort() otherwise:
 *  - a refused query has an expected error code and a reason;
 *  - an accepted identifier is accepted or refused by qry_new with an
 *    expected code and a reason, at every level;
 *  - the wildcard matcher agrees with itself: a pattern matches the value
 *    it was made of, and "*" matches everything; so does the person-name
 *    matcher, and its fold never lengthens a name and is idempotent.
 * Also linked with replay_main.c to replay the corpus in `make check`.
 * Layer: tests (fuzz). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/qido.h"
#include "dicomvault/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
	fprintf(stderr, "qido_fuzz: %s\n", what);
	abort();
}

static int hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX and '+' in place; returns the new length. */
static size_t decode(char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hex((uint8_t)s[i + 1]) >= 0 && hex((uint8_t)s[i + 2]) >= 0) {
			s[o++] = (char)(hex((uint8_t)s[i + 1]) * 16 + hex((uint8_t)s[i + 2]));
			i += 2;
		} else {
			s[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	return o;
}

static void check_why(enum err rc, const char *why)
{
	if (rc != ERR_PARSE && rc != ERR_LIMIT)
		die("unexpected error code");
	if (memchr(why, 0, 256) == NULL || why[0] == 0)
		die("refused without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qido_arg args[QIDO_MAX_ARGS + 1];
	struct qido_params p;
	char *buf, why[256];
	size_t n = 0, i, start;
	unsigned level;
	enum err rc;

	if (size < 1 || size > 64 * 1024)
		return 0;
	level = data[0] & 3;
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	for (start = 0; start < size - 1 && n <= QIDO_MAX_ARGS;) {
		size_t end = start, eq;
		while (end < size - 1 && buf[end] != '&')
			end++;
		for (eq = start; eq < end && buf[eq] != '='; eq++)
			;
		args[n].key = buf + start;
		args[n].klen = decode(buf + start, eq - start);
		if (eq < end) {
			args[n].val = buf + eq + 1;
			args[n].vlen = decode(buf + eq + 1, end - eq - 1);
		} else {
			args[n].val = NULL;
			args[n].vlen = 0;
		}
		n++;
		start = end + 1;
	}
	rc = qido_parse(args, n, &p, why, sizeof why);
	if (rc != ERR_OK) {
		check_why(rc, why);
		if (p.id != NULL)
			die("refused but left an identifier");
	} else {
		struct qry_opts o;
		struct qry *q = NULL;
		memset(&o, 0, sizeof o);
		o.level = (enum qry_level)level;
		o.include = p.include;
		o.n_include = p.n_include;
		o.include_all = p.include_all;
		o.limit = p.limit;
		o.offset = p.offset;
		o.omit_unkept = true;   /* as qido.c asks */
		rc = qry_new(&o, &p.id->ds, &q, why, sizeof why);
		if (rc != ERR_OK)
			check_why(rc, why);
		else {
			const uint32_t *t;
			size_t no, j, k;
			if (qry_ignored(q, &t) > QRY_MAX_KEYS)
				die("too many ignored keys");
			no = qry_omitted(q, &t);
			if (no > QRY_MAX_KEYS + QRY_MAX_INCLUDE)
				die("too many omitted keys");
			for (j = 0; j < no; j++) {
				if (t[j] == 0x00081190)
					die("the RetrieveURL (the caller's to add) was omitted");
				for (k = 0; k < j; k++)
					if (t[k] == t[j])
						die("a key omitted twice");
			}
		}
		qry_free(q);
		qido_params_fini(&p);
	}
	/* the wildcard matcher on the raw input */
	for (i = 0; i + 1 < size && i < 512; i++)
		if (data[i + 1] == '*' || data[i + 1] == '?')
			break;
	if (!qry_wild_match((const char *)data + 1, i, (const char *)data + 1, i, false) ||
	    !qry_wild_match((const char *)data + 1, i, (const char *)data + 1, i, true))
		die("a literal pattern does not match itself");
	if (!qry_wild_match("*", 1, (const char *)data, size, false))
		die("* does not match everything");
	/* person names: a name matches itself (exact and as a pattern without
	 * wildcards), folding never lengthens and is idempotent */
	if (i > 0 && (!qry_pn_match((const char *)data + 1, i, false, (const char *)data + 1, i) ||
	              !qry_pn_match((const char *)data + 1, i, true, (const char *)data + 1, i)))
		die("a person name does not match itself");
	{
		char f1[512], f2[512];
		size_t n1 = qry_pn_fold((const char *)data + 1, i, f1), n2;
		if (n1 > i)
			die("folding made a name longer");
		n2 = qry_pn_fold(f1, n1, f2);
		if (n2 != n1 || memcmp(f1, f2, n1) != 0)
			die("folding is not idempotent");
	}
	free(buf);
	return 0;
}
