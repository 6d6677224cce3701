/* args.c: the command line's options (args.h). One loop for every
 * subcommand, so that each accepts the same forms and refuses the same
 * mistakes with the same words. Pure. Layer: base. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/args.h"

/* Shows at most 64 bytes of an argument in a reason. */
#define SHOW 64

/* "BEFORE'ARG'AFTER", the argument cut to SHOW bytes. */
static enum args_status bad(char *why, size_t n, const char *before, const char *a, size_t len, const char *after)
{
	if (why != NULL && n > 0)
		snprintf(why, n, "%s'%.*s'%s", before, len > SHOW ? SHOW : (int)len, a, after);
	return ARGS_BAD;
}

static const struct args_opt *find(const struct args_opt *opts, const char *a, size_t len)
{
	for (; opts->name != NULL; opts++)
		if (strlen(opts->name) == len && memcmp(opts->name, a, len) == 0)
			return opts;
	return NULL;
}

enum args_status args_parse(int argc, char *const *argv, int first, const struct args_opt *opts, const char **pos,
                            size_t cap, size_t *npos, char *why, size_t whylen)
{
	const struct args_opt *o;
	const char *a, *eq, *val;
	bool only_pos = false;
	size_t len;
	int i;

	*npos = 0;
	if (why != NULL && whylen > 0)
		why[0] = 0;
	for (i = first; i < argc; i++) {
		a = argv[i];
		if (only_pos || a[0] != '-' || a[1] == 0) {
			if (*npos >= cap)
				return bad(why, whylen, "unexpected argument ", a, strlen(a), "");
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return ARGS_HELP;
		if (strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		eq = strchr(a, '=');
		len = eq != NULL ? (size_t)(eq - a) : strlen(a);
		o = find(opts, a, len);
		if (o == NULL)
			return bad(why, whylen, "unknown option ", a, len, "");
		if ((o->refused != NULL) + (o->flag != NULL) + (o->value != NULL) + (o->list != NULL) != 1)
			abort();   /* a table entry must say what it is exactly once: a bug */
		if (o->refused != NULL) {
			if (why != NULL && whylen > 0)
				snprintf(why, whylen, "secrets are never taken from the command line: use %s", o->refused);
			return ARGS_BAD;
		}
		if (o->flag != NULL) {
			if (eq != NULL)
				return bad(why, whylen, "", a, len, " takes no value");
			*o->flag = true;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return bad(why, whylen, "missing value for ", a, len, "");
		if (val[0] == 0)
			return bad(why, whylen, "empty value for ", a, len, "");
		if (o->value != NULL) {
			if (*o->value != NULL)
				return bad(why, whylen, "", a, len, " given twice");
			*o->value = val;
		} else {
			if (o->list->n >= o->list->cap)
				return bad(why, whylen, "", a, len, " given too often");
			o->list->v[o->list->n++] = val;
		}
	}
	return ARGS_OK;
}
