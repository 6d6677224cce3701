/* args_test.c: the command line's option reader (args_parse): both value
 * forms, flags, lists, "--", "-", help, and every refusal: unknown
 * options (named without their value), refused secrets, missing, empty
 * and repeated values, a value for a flag, too many arguments.
 * Layer: tests. */
#include <stdbool.h>
#include "test.h"
#include "dicomvault/args.h"

struct got {
	bool json, quiet;
	const char *vault, *out;
	const char *study_v[4];
	struct args_list study;
	const char *pos[2];
	size_t npos;
	char why[ARGS_WHY_MAX];
};

static enum args_status run(struct got *g, int argc, char **argv)
{
	const struct args_opt opts[] = {
		{ "--json", .flag = &g->json },
		{ "--quiet", .flag = &g->quiet },
		{ "--vault", .value = &g->vault },
		{ "--out", .value = &g->out },
		{ "--study", .list = &g->study },
		{ "--password", .refused = "--password-file" },
		{ NULL }
	};

	memset(g, 0, sizeof *g);
	g->study.v = g->study_v;
	g->study.cap = 4;
	return args_parse(argc, argv, 1, opts, g->pos, 2, &g->npos, g->why, sizeof g->why);
}

#define ARGV(...) char *argv[] = { "cmd", __VA_ARGS__ }; int argc = (int)(sizeof argv / sizeof argv[0])

TEST(good)
{
	struct got g;
	{
		ARGV("--vault", "/v", "--json", "in.dcm", "--out=/o", "--study", "1.2", "--study=1.3", "out.dcm");
		CHECK(run(&g, argc, argv) == ARGS_OK);
		CHECK_EQ_STR(g.vault, "/v");
		CHECK_EQ_STR(g.out, "/o");
		CHECK(g.json && !g.quiet);
		CHECK_EQ_INT(g.study.n, 2);
		CHECK_EQ_STR(g.study_v[0], "1.2");
		CHECK_EQ_STR(g.study_v[1], "1.3");
		CHECK_EQ_INT(g.npos, 2);
		CHECK_EQ_STR(g.pos[0], "in.dcm");
		CHECK_EQ_STR(g.pos[1], "out.dcm");
	}
	{
		/* "-" is an argument; after "--" everything is; a value may begin with "-" or hold "=" */
		ARGV("-", "--vault", "-v=x", "--", "--json");
		CHECK(run(&g, argc, argv) == ARGS_OK);
		CHECK_EQ_STR(g.vault, "-v=x");
		CHECK(!g.json);
		CHECK_EQ_INT(g.npos, 2);
		CHECK_EQ_STR(g.pos[0], "-");
		CHECK_EQ_STR(g.pos[1], "--json");
	}
	{
		ARGV("--out=a=b");
		CHECK(run(&g, argc, argv) == ARGS_OK);
		CHECK_EQ_STR(g.out, "a=b");
		CHECK_EQ_INT(g.npos, 0);
	}
	{
		char *none[] = { "cmd" };
		CHECK(run(&g, 1, none) == ARGS_OK && g.npos == 0 && g.vault == NULL && g.why[0] == 0);
	}
}

TEST(help)
{
	struct got g;
	{
		ARGV("--vault", "v", "-h");
		CHECK(run(&g, argc, argv) == ARGS_HELP);
	}
	{
		ARGV("--help", "--bogus");
		CHECK(run(&g, argc, argv) == ARGS_HELP);
	}
	{
		/* a value, or an argument after "--", is not a request for help */
		ARGV("--out", "--help", "--", "-h");
		CHECK(run(&g, argc, argv) == ARGS_OK);
		CHECK_EQ_STR(g.out, "--help");
		CHECK_EQ_STR(g.pos[0], "-h");
	}
}

static bool refused(int argc, char **argv, const char *want, const char *never)
{
	struct got g;
	enum args_status st = run(&g, argc, argv);

	if (st != ARGS_BAD || strstr(g.why, want) == NULL || (never != NULL && strstr(g.why, never) != NULL)) {
		fprintf(stderr, "  status %d, why \"%s\" (want \"%s\")\n", (int)st, g.why, want);
		return false;
	}
	return true;
}
#define REFUSED(want, never, ...) do { ARGV(__VA_ARGS__); CHECK(refused(argc, argv, want, never)); } while (0)

TEST(refusals)
{
	REFUSED("unknown option '--bogus'", NULL, "--bogus");
	REFUSED("unknown option '-x'", NULL, "-x", "a");
	/* the value of an unknown option is not repeated */
	REFUSED("unknown option '--tocken'", "s3cr3t-value", "--tocken=s3cr3t-value");
	REFUSED("secrets are never taken from the command line: use --password-file", "hunter22", "--password",
	        "hunter22");
	REFUSED("use --password-file", "hunter22", "--password=hunter22");
	REFUSED("missing value for '--vault'", NULL, "in", "--vault");
	REFUSED("empty value for '--vault'", NULL, "--vault=");
	REFUSED("empty value for '--out'", NULL, "--out", "");
	REFUSED("'--vault' given twice", NULL, "--vault", "a", "--vault=b");
	REFUSED("'--json' takes no value", NULL, "--json=yes");
	REFUSED("'--study' given too often", NULL, "--study=1", "--study=2", "--study=3", "--study=4", "--study=5");
	REFUSED("unexpected argument 'c'", NULL, "a", "b", "c");
	/* a long argument is cut in the reason */
	REFUSED("unknown option '--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	        "--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	/* an option name matches whole, not by prefix */
	REFUSED("unknown option '--vaul'", NULL, "--vaul", "x");
	REFUSED("unknown option '--jsonx'", NULL, "--jsonx");
}

int main(void)
{
	RUN(good);
	RUN(help);
	RUN(refusals);
	return TEST_DONE();
}
