/* args_fuzz.c: libFuzzer target for the command line's option reader
 * (args_parse, base/args.c), which every subcommand uses. The first byte
 * sets how many arguments and list values fit (mod 4); the rest, split at
 * NUL, is argv. The target abort()s when
 *  - the status is not ARGS_OK, ARGS_HELP or ARGS_BAD;
 *  - ARGS_HELP without "-h" or "--help" among the arguments;
 *  - a refusal's reason is empty or not of our forms, an unknown option is
 *    named with its "=value", or a refused secret option's reason is not
 *    the fixed one (it must never repeat the secret);
 *  - an accepted command line gives a value that is empty or not a piece
 *    of argv (the whole argument, or what follows "--name="), a flag that
 *    is not in argv, more arguments or list values than room;
 *  - written back as "--name VALUE ... -- ARG..." and read again, it does
 *    not give the same values, flags, list and arguments.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/args.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct res {
	bool json, quiet;
	const char *vault, *out;
	const char *lv[4];
	struct args_list list;
	const char *pos[4];
	size_t npos;
	char why[ARGS_WHY_MAX];
	enum args_status st;
};

static const char *const SECRET_WHY = "secrets are never taken from the command line: use --password-file";

static void run(struct res *r, int argc, char **argv, size_t cap)
{
	const struct args_opt opts[] = {
		{ "--json", .flag = &r->json },
		{ "--quiet", .flag = &r->quiet },
		{ "--vault", .value = &r->vault },
		{ "--out", .value = &r->out },
		{ "--study", .list = &r->list },
		{ "--password", .refused = "--password-file" },
		{ NULL }
	};

	memset(r, 0, sizeof *r);
	r->list.v = r->lv;
	r->list.cap = cap;
	r->st = args_parse(argc, argv, 1, opts, r->pos, cap, &r->npos, r->why, sizeof r->why);
}

/* v is argv[j] whole, or what follows "NAME=" in it, for some j. */
static bool from_argv(const char *v, const char *name, int argc, char **argv)
{
	size_t n = strlen(name);
	int j;

	for (j = 1; j < argc; j++)
		if (v == argv[j] || (strncmp(argv[j], name, n) == 0 && argv[j][n] == '=' && v == argv[j] + n + 1))
			return true;
	return false;
}

static bool has(int argc, char **argv, const char *s)
{
	int j;

	for (j = 1; j < argc; j++)
		if (strcmp(argv[j], s) == 0)
			return true;
	return false;
}

static void check_bad(const struct res *r)
{
	static const char *const forms[] = { "unexpected argument '", "missing value for '", "empty value for '",
		                             "'", NULL };
	const char *end;
	size_t i;

	if (r->why[0] == 0)
		abort();
	if (strncmp(r->why, "secrets", 7) == 0) {
		if (strcmp(r->why, SECRET_WHY) != 0)
			abort();
		return;
	}
	if (strncmp(r->why, "unknown option '", 16) == 0) {
		end = strrchr(r->why, '\'');
		if (end == r->why + 15 || memchr(r->why + 16, '=', (size_t)(end - r->why - 16)) != NULL)
			abort();
		return;
	}
	for (i = 0; forms[i] != NULL; i++)
		if (strncmp(r->why, forms[i], strlen(forms[i])) == 0)
			return;
	abort();
}

static void check_ok(const struct res *r, int argc, char **argv, size_t cap)
{
	size_t i, k = 0;
	int j;

	if (r->npos > cap || r->list.n > cap)
		abort();
	if ((r->json && !has(argc, argv, "--json")) || (r->quiet && !has(argc, argv, "--quiet")))
		abort();
	if ((r->vault != NULL && (r->vault[0] == 0 || !from_argv(r->vault, "--vault", argc, argv))) ||
	    (r->out != NULL && (r->out[0] == 0 || !from_argv(r->out, "--out", argc, argv))))
		abort();
	for (i = 0; i < r->list.n; i++)
		if (r->lv[i][0] == 0 || !from_argv(r->lv[i], "--study", argc, argv))
			abort();
	/* the arguments are argv elements, in order */
	for (j = 1; j < argc && k < r->npos; j++)
		if (r->pos[k] == argv[j])
			k++;
	if (k != r->npos)
		abort();
}

/* Written back in the canonical form and read again: the same. */
static void round_trip(const struct res *r, size_t cap)
{
	char *av[2 * 4 + 8 + 4 + 2];
	struct res again;
	int n = 0;
	size_t i;

	av[n++] = "cmd";
	if (r->json)
		av[n++] = "--json";
	if (r->quiet)
		av[n++] = "--quiet";
	if (r->vault) {
		av[n++] = "--vault";
		av[n++] = (char *)(uintptr_t)r->vault;
	}
	if (r->out) {
		av[n++] = "--out";
		av[n++] = (char *)(uintptr_t)r->out;
	}
	for (i = 0; i < r->list.n; i++) {
		av[n++] = "--study";
		av[n++] = (char *)(uintptr_t)r->lv[i];
	}
	av[n++] = "--";
	for (i = 0; i < r->npos; i++)
		av[n++] = (char *)(uintptr_t)r->pos[i];
	run(&again, n, av, cap);
	if (again.st != ARGS_OK || again.json != r->json || again.quiet != r->quiet ||
	    (again.vault == NULL) != (r->vault == NULL) || (r->vault && strcmp(again.vault, r->vault) != 0) ||
	    (again.out == NULL) != (r->out == NULL) || (r->out && strcmp(again.out, r->out) != 0) ||
	    again.list.n != r->list.n || again.npos != r->npos)
		abort();
	for (i = 0; i < r->list.n; i++)
		if (strcmp(again.lv[i], r->lv[i]) != 0)
			abort();
	for (i = 0; i < r->npos; i++)
		if (strcmp(again.pos[i], r->pos[i]) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *argv[MAX_ARGS + 1];
	size_t cap, i, start = 0;
	struct res r;
	int argc = 1;

	if (size == 0)
		return 0;
	cap = data[0] % 4 + 1;
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = 0;
	argv[0] = "cmd";
	for (i = 0; i < size && argc < MAX_ARGS; i++)
		if (buf[i] == 0) {
			argv[argc++] = buf + start;
			start = i + 1;
			if (start >= size)
				break;
		}
	run(&r, argc, argv, cap);
	switch (r.st) {
	case ARGS_HELP:
		if (!has(argc, argv, "-h") && !has(argc, argv, "--help"))
			abort();
		break;
	case ARGS_BAD:
		check_bad(&r);
		break;
	case ARGS_OK:
		check_ok(&r, argc, argv, cap);
		round_trip(&r, cap);
		break;
	default:
		abort();
	}
	free(buf);
	return 0;
}
