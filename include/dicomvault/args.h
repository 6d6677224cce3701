/* args.h: the command line's options, read the same way by every
 * subcommand (docs/internals/cli.md): "--name VALUE" or "--name=VALUE", flags,
 * repeatable options, "-h"/"--help", "--" before arguments that begin
 * with "-", and options for secrets refused (secrets come from files or
 * stdin, never argv). Pure: argv in, values or a reason out; nothing is
 * printed (fuzz/args_fuzz.c). Layer: base. */
#ifndef DICOMVAULT_ARGS_H
#define DICOMVAULT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include "dicomvault/err.h"

/* The values of a repeatable option; v has room for cap (argc is enough). */
struct args_list {
	const char **v;
	size_t n, cap;
};

/* One option; exactly one of flag, value, list and refused is set, and
 * says what it is:
 *  flag     --json: *flag = true
 *  value    --vault DIR: *value = DIR (NULL before; at most once)
 *  list     --study UID, repeatable: appended to *list
 *  refused  --password: refused; names the option to use instead
 *           ("--password-file"). */
struct args_opt {
	const char *name;      /* "--vault"; NULL ends a table */
	bool *flag;
	const char **value;
	struct args_list *list;
	const char *refused;
};

enum args_status { ARGS_OK, ARGS_HELP, ARGS_BAD };

#define ARGS_WHY_MAX 160u

/* Reads argv[first..argc-1] against opts. Values are pointers into argv
 * (after the '=' of "--name=VALUE"); they must not be empty. Arguments
 * that are not options go to pos (at most cap; "-" is one), in order;
 * *npos gets their number. ARGS_HELP: "-h" or "--help" as an option
 * (not a value, not after "--"), unless a mistake comes before it.
 * ARGS_BAD: why says what is wrong (an unknown option is named up to its
 * '=', never with its value). Outputs may be partly set on ARGS_BAD. */
WUR enum args_status args_parse(int argc, char *const *argv, int first, const struct args_opt *opts, const char **pos,
                            size_t cap, size_t *npos, char *why, size_t whylen);

#endif
