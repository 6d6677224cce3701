/* user.c: `dicomvault user add|list|disable|enable|unlock|grant|revoke|
 * grants`: accounts and grants from the command line (SPEC 2 and 5,
 * docs/ACCESS.md), through core/users.c, every change audited with the
 * local operator as the actor. Secrets come from files, never argv.
 * Layer: cmd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/limits.h"
#include "dicomvault/store.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"

static const char user_usage[] =
	"usage: dicomvault user add NAME --role ROLE [--collection C | --scope S] [--expires T]\n"
	"                           [--password-file F] [--json]\n"
	"       dicomvault user list [--json]\n"
	"       dicomvault user disable|enable|unlock NAME [--json]\n"
	"       dicomvault user grant NAME --role ROLE (--collection C | --study UID [--priors]\n"
	"                           | --patient ID [--issuer I] | --all) [--from T] [--expires T]\n"
	"                           [--purpose TEXT] [--json]\n"
	"       dicomvault user revoke GRANT_ID [--json]\n"
	"       dicomvault user grants [NAME] [--revoked] [--json]\n"
	"Every form also takes --vault DIR and --passphrase-file F.\n"
	"Roles: admin, radiologist, physician, technologist, researcher, auditor (docs/ACCESS.md).\n"
	"add: a new account with an Argon2id password (from --password-file, mode 0600, else\n"
	"     generated and shown once) and a TOTP secret shown once, with a grant of ROLE on\n"
	"     collection C (default: the collection \"default\"; an auditor's: * (the whole vault),\n"
	"     the only scope that lets it read the audit trail); --expires ends the account.\n"
	"grant: ROLE on a collection, one study (--priors: and the patient's other studies),\n"
	"     one patient (by Patient ID and issuer) or everything, from --from until --expires.\n"
	"T: 2026-12-31, 2026-12-31T17:00Z (ISO 8601, UTC unless an offset is given),\n"
	"   @UNIXSECONDS, or +N with s, m, h or d from now.\n"
	"Exit status: 0 done, 1 refused or failed, 2 usage error.\n";

struct user_args {
	const char *sub, *name, *vault, *pass, *role, *collection, *scope, *expires, *from, *password_file, *study,
	           *patient, *issuer, *purpose;
	bool json, priors, all, revoked;
};

static int usage(const char *msg, const char *arg)
{
	fprintf(stderr, "dicomvault user: %s%s%s%s\n", msg, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
	fputs(user_usage, stderr);
	return EXIT_USAGE;
}

/* CMD_ARGS_GO, or the exit status. */
static int parse(int argc, char **argv, struct user_args *a)
{
	const struct args_opt opts[] = {
		{ "--json", .flag = &a->json },
		{ "--priors", .flag = &a->priors },
		{ "--all", .flag = &a->all },
		{ "--revoked", .flag = &a->revoked },
		{ "--vault", .value = &a->vault },
		{ "--passphrase-file", .value = &a->pass },
		{ "--role", .value = &a->role },
		{ "--collection", .value = &a->collection },
		{ "--scope", .value = &a->scope },
		{ "--expires", .value = &a->expires },
		{ "--from", .value = &a->from },
		{ "--password-file", .value = &a->password_file },
		{ "--study", .value = &a->study },
		{ "--patient", .value = &a->patient },
		{ "--issuer", .value = &a->issuer },
		{ "--purpose", .value = &a->purpose },
		{ "--password", .refused = "--password-file" },
		{ "--passphrase", .refused = "--passphrase-file" },
		{ NULL }
	};
	const char *pos[2] = { NULL, NULL };
	size_t npos = 0;
	int rc;

	memset(a, 0, sizeof *a);
	rc = cmd_args("user", user_usage, argc, argv, 1, opts, pos, 2, &npos);
	if (rc != CMD_ARGS_GO)
		return rc;
	if (npos == 0)
		return usage("which subcommand?", NULL);
	a->sub = pos[0];
	a->name = pos[1];
	return CMD_ARGS_GO;
}

static void iso(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(out, 32, "-");
	else
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --role, for SUB (add or grant) that needs NAME and a role: a usage
 * error naming a role we do not know, so that a misspelt one is not taken
 * for a missing one. */
static int role_arg(const struct user_args *a, enum access_role *r)
{
	char msg[64];

	if (a->name == NULL || a->role == NULL) {
		snprintf(msg, sizeof msg, "%s needs NAME and --role ROLE", a->sub);
		return usage(msg, NULL);
	}
	if (!access_role_parse(a->role, strlen(a->role), r))
		return usage("unknown --role", a->role);
	return 0;
}

/* The form of a scope made from OPT's value (--collection C, --study UID):
 * one no grant can have is a usage error, as export's --study is; whether
 * the collection exists is asked after. */
static int scope_arg(const char *opt, const char *scope)
{
	struct access_grant g;
	char why[160], msg[200];

	memset(&g, 0, sizeof g);
	if (access_scope_parse(scope, &g, why, sizeof why) == ERR_OK)
		return 0;
	snprintf(msg, sizeof msg, "%s: %s", opt, why);
	return usage(msg, NULL);
}

static int time_arg(const char *opt, const char *s, int64_t *out)
{
	if (s == NULL) {
		*out = 0;
		return 0;
	}
	if (users_parse_time(s, (int64_t)time(NULL), out) != ERR_OK)
		return usage("not a time (2026-12-31, 2026-12-31T17:00Z, @SECONDS or +N[smhd]):", opt);
	return 0;
}

/* A new grant that does not give the role's vault-wide actions (an admin
 * on a collection: manage-users and read-audit need scope *): said on
 * stderr with the command that gives them, since the account looks right
 * and is refused with 403 (an auditor on a collection could read nothing). */
static void warn_lacks(const char *name, enum access_role role, const char *scope)
{
	unsigned lacks = users_scope_lacks(role, scope), act;
	bool first = true;

	if (lacks == 0)
		return;
	fprintf(stderr, "dicomvault user: warning: %s's grant is on %s, which does not give it ", name, scope);
	for (act = 0; act < ACCESS_ACT__N; act++)
		if (lacks & (1u << act)) {
			fprintf(stderr, "%s%s", first ? "" : " or ", access_action_name((enum access_action)act));
			first = false;
		}
	fprintf(stderr, ": only a grant of scope * (the whole vault) does (docs/ACCESS.md); to give it: "
	        "dicomvault user grant %s --role %s --all%s\n", name, access_role_name(role),
	        strcmp(users_default_scope(role), "*") != 0 ? " (which gives the role's other actions on every "
	                                                       "collection's studies too)" : "");
}

static int run_add(struct vault *v, const struct user_args *a, const struct users_actor *by)
{
	struct secret *pw = NULL, *pw_out = NULL, *b32 = NULL, *uri = NULL;
	char why[512] = "", scope[ACCESS_NAME_MAX + 16];
	const char *granted;
	enum access_role role;
	int64_t expires = 0;
	int rc = 1;

	if (role_arg(a, &role) != 0)
		return EXIT_USAGE;
	if (a->collection != NULL && a->scope != NULL)
		return usage("--collection or --scope, not both", NULL);
	if (time_arg("--expires", a->expires, &expires) != 0)
		return EXIT_USAGE;
	if (a->collection != NULL) {
		snprintf(scope, sizeof scope, "collection:%s", a->collection);
		if (scope_arg("--collection", scope) != 0)
			return EXIT_USAGE;
	} else if (a->scope != NULL && scope_arg("--scope", a->scope) != 0) {
		return EXIT_USAGE;
	}
	if (a->password_file != NULL) {
		if (secret_read_file(a->password_file, CRYPTO_PASSWORD_MAX, SECRET_TRIM_NEWLINE, &pw) != ERR_OK) {
			fprintf(stderr, "dicomvault user: cannot use password file %s (mode 0600, the password in it)\n",
			        a->password_file);
			return 1;
		}
		if (secret_len(pw) < VAULT_MIN_PASSWORD) {
			fprintf(stderr, "dicomvault user: a password has at least %u characters\n", VAULT_MIN_PASSWORD);
			secret_free(pw);
			return 1;
		}
	}
	/* without --collection or --scope: the role's default (an auditor's is *) */
	granted = a->collection ? scope : a->scope ? a->scope : users_default_scope(role);
	if (users_add(v, by, a->name, role, granted, expires, pw, pw ? NULL : &pw_out, &b32, &uri, why,
	              sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault user: add %s: %s\n", a->name, why);
		goto out;
	}
	if (a->json) {
		printf("{\"user\":");
		cmd_json_str(a->name);
		printf(",\"role\":\"%s\"", access_role_name(role));
		if (pw_out != NULL) {
			printf(",\"password\":");
			cmd_json_str(secret_cstr(pw_out));
		}
		printf(",\"totp_secret\":");
		cmd_json_str(secret_cstr(b32));
		printf(",\"otpauth_uri\":");
		cmd_json_str(secret_cstr(uri));
		printf("}\n");
	} else {
		printf("User:            %s (%s)\n", a->name, access_role_name(role));
		if (pw_out != NULL)
			printf("Password:        %s   (shown once: give it to the user)\n", secret_cstr(pw_out));
		printf("TOTP secret:     %s\n", secret_cstr(b32));
		printf("otpauth URI:     %s\n", secret_cstr(uri));
		if (isatty(STDOUT_FILENO)) {
			printf("\nScan with an authenticator app:\n");
			cmd_print_qr(secret_cstr(uri));
		}
	}
	rc = 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* the secrets shown once are lost: nobody can use the account */
		enum err d = users_set_disabled(v, by, a->name, true, why, sizeof why);
		fprintf(stderr, "dicomvault user: add %s: cannot write output (its TOTP secret and password are lost): %s\n",
		        a->name, d == ERR_OK ? "the account is disabled; add the user again under another name"
		                             : "and it could not be disabled: disable it with 'dicomvault user disable'");
		rc = 1;
	}
	if (rc == 0)
		warn_lacks(a->name, role, granted);   /* after the account's secrets, on stderr */
out:
	secret_free(pw);
	secret_free(pw_out);
	secret_free(b32);
	secret_free(uri);
	return rc;
}

struct lister {
	bool json, first;
	int64_t now;
};

static enum err print_user(void *ctx, const struct idx_user *u)
{
	struct lister *l = ctx;
	char exp[32];
	const char *state = users_state(u, l->now);

	iso(u->expires, exp);
	if (l->json) {
		printf("%s{\"user\":", l->first ? "" : ",");
		cmd_json_str(u->name);
		printf(",\"role\":\"%s\",\"state\":\"%s\",\"expires\":\"%s\"}", u->role, state, exp);
	} else {
		printf("%-24s %-13s %-9s expires %s\n", u->name, u->role, state, exp);
	}
	l->first = false;
	return ERR_OK;
}

static enum err print_grant(void *ctx, const struct idx_grant *g)
{
	struct lister *l = ctx;
	char nb[32], exp[32], rev[32];
	const char *state = g->revoked ? "revoked" : (g->expires && g->expires <= l->now) ? "expired"
	                    : (g->not_before && g->not_before > l->now) ? "pending" : "active";

	iso(g->not_before, nb);
	iso(g->expires, exp);
	iso(g->revoked, rev);
	if (l->json) {
		printf("%s{\"id\":%lld,\"user\":", l->first ? "" : ",", (long long)g->id);
		cmd_json_str(g->user_name);
		printf(",\"role\":\"%s\",\"scope\":", g->role);
		cmd_json_str(g->scope);
		printf(",\"with_priors\":%s,\"from\":\"%s\",\"expires\":\"%s\",\"state\":\"%s\",\"break_glass\":%s,"
		       "\"created_by\":", g->with_priors ? "true" : "false", nb, exp, state, g->break_glass ? "true" : "false");
		cmd_json_str(g->created_by);
		printf(",\"purpose\":");
		cmd_json_str(g->purpose);
		printf("}");
	} else {
		printf("%-6lld %-20s %-13s %-40s %-8s from %s until %s%s%s\n", (long long)g->id, g->user_name, g->role,
		       g->scope, state, nb, exp, g->with_priors ? " +priors" : "", g->break_glass ? " BREAK-GLASS" : "");
	}
	l->first = false;
	return ERR_OK;
}

static int run_list(struct vault *v, const struct user_args *a, bool grants)
{
	struct lister l = { a->json, true, (int64_t)time(NULL) };
	int64_t uid = 0;
	enum err rc;

	if (grants && a->name != NULL) {
		struct idx_user u;
		if (v->ix->ops->user_get(v->ix, a->name, &u) != ERR_OK) {
			fprintf(stderr, "dicomvault user: no user %s\n", a->name);
			return 1;
		}
		uid = u.id;
	}
	if (a->json)
		putchar('[');
	rc = grants ? v->ix->ops->grant_list(v->ix, uid, a->revoked, print_grant, &l)
	            : v->ix->ops->user_list(v->ix, print_user, &l);
	if (a->json)
		puts("]");
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault user: cannot list: %s\n", err_str(rc));
		return 1;
	}
	return 0;
}

static int run_grant(struct vault *v, const struct user_args *a, const struct users_actor *by)
{
	struct users_grant_req g;
	char scope[ACCESS_NAME_MAX + 80], why[512] = "";
	int nscope = (a->collection != NULL) + (a->study != NULL) + (a->patient != NULL) + a->all;
	int64_t id = 0;

	memset(&g, 0, sizeof g);
	if (role_arg(a, &g.role) != 0)
		return EXIT_USAGE;
	if (nscope != 1)
		return usage("grant needs one of --collection, --study, --patient, --all", NULL);
	if (a->priors && a->study == NULL)
		return usage("--priors goes with --study", NULL);
	if (a->issuer != NULL && a->patient == NULL)
		return usage("--issuer goes with --patient", NULL);
	if (time_arg("--from", a->from, &g.not_before) != 0 || time_arg("--expires", a->expires, &g.expires) != 0)
		return EXIT_USAGE;
	if (a->collection != NULL) {
		snprintf(scope, sizeof scope, "collection:%s", a->collection);
	} else if (a->study != NULL) {
		snprintf(scope, sizeof scope, "study:%s", a->study);
	} else if (a->patient != NULL) {
		uint8_t h[32];
		unsigned i;
		if (store_patient_key(v, a->patient, a->issuer, h) != ERR_OK)
			return usage("--patient: an empty Patient ID", NULL);
		memcpy(scope, "patient:", 8);
		for (i = 0; i < 32; i++)
			snprintf(scope + 8 + 2 * i, 3, "%02x", h[i]);
	} else {
		snprintf(scope, sizeof scope, "*");
	}
	if ((a->collection != NULL || a->study != NULL) &&
	    scope_arg(a->collection != NULL ? "--collection" : "--study", scope) != 0)
		return EXIT_USAGE;
	g.user = a->name;
	g.scope = scope;
	g.with_priors = a->priors;
	g.purpose = a->purpose;
	if (users_grant(v, by, &g, &id, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault user: grant: %s\n", why);
		return 1;
	}
	if (a->json)
		printf("{\"id\":%lld}\n", (long long)id);
	else
		printf("grant %lld: %s as %s on %s\n", (long long)id, a->name, a->role,
		       a->patient ? "one patient" : scope);
	return 0;
}

/* revoke GRANT_ID; with --json {"id":N,"state":"revoked"}, as `user
 * grants --json` would show it. */
static int run_revoke(struct vault *v, const struct user_args *a, const struct users_actor *by)
{
	char *end = NULL, why[512] = "";
	long long id = 0;

	/* digits only: strtoll alone takes " 12", "+12" and "-0" */
	if (a->name != NULL && a->name[0] >= '1' && a->name[0] <= '9' && strlen(a->name) <= 18) {
		errno = 0;
		id = strtoll(a->name, &end, 10);
		if (errno != 0 || *end != 0)
			id = 0;
	}
	if (id <= 0)
		return usage("revoke needs a GRANT_ID (see 'user grants')", NULL);
	if (users_revoke(v, by, id, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault user: revoke: %s\n", why);
		return 1;
	}
	if (a->json)
		printf("{\"id\":%lld,\"state\":\"revoked\"}\n", id);
	else
		printf("grant %lld revoked\n", id);
	return 0;
}

/* disable|enable|unlock NAME; with --json {"user":NAME,"state":STATE}, the
 * account's state as `user list --json` shows it, read back after the
 * change (enabling an expired or locked account does not make it active,
 * and a script should not have to guess). */
static int run_change(struct vault *v, const struct user_args *a, const struct users_actor *by)
{
	struct idx_user u;
	char why[512] = "";
	bool unlock = strcmp(a->sub, "unlock") == 0, disable = strcmp(a->sub, "disable") == 0;
	enum err rc;

	if (a->name == NULL)
		return usage("which user?", NULL);
	rc = unlock ? users_unlock(v, by, a->name, why, sizeof why)
	            : users_set_disabled(v, by, a->name, disable, why, sizeof why);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault user: %s %s: %s\n", a->sub, a->name, why);
		return 1;
	}
	if (!a->json) {
		printf("%s: %s\n", a->name, unlock ? "unlocked" : disable ? "disabled" : "enabled");
		return 0;
	}
	rc = v->ix->ops->user_get(v->ix, a->name, &u);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault user: %s %s: done, but cannot read the account back: %s\n", a->sub, a->name,
		        err_str(rc));
		return 1;
	}
	printf("{\"user\":");
	cmd_json_str(u.name);
	printf(",\"state\":\"%s\"}\n", users_state(&u, (int64_t)time(NULL)));
	return 0;
}

int cmd_user(int argc, char **argv)
{
	struct user_args a;
	struct vault_open_opts vo;
	struct vault *v = NULL;
	struct users_actor by;
	char dir[VAULT_PATH_MAX], why[512] = "";
	int r;

	cmd_no_sigpipe();
	r = parse(argc, argv, &a);
	if (r != CMD_ARGS_GO)
		return r;
	if (strcmp(a.sub, "add") != 0 && strcmp(a.sub, "list") != 0 && strcmp(a.sub, "disable") != 0 &&
	    strcmp(a.sub, "enable") != 0 && strcmp(a.sub, "unlock") != 0 && strcmp(a.sub, "grant") != 0 &&
	    strcmp(a.sub, "revoke") != 0 && strcmp(a.sub, "grants") != 0)
		return usage("unknown subcommand", a.sub);
	if (strcmp(a.sub, "list") == 0 && a.name != NULL)
		return usage("unexpected argument", a.name);
	if (vault_resolve(a.vault, dir, sizeof dir) != ERR_OK)
		return usage("vault path too long", NULL);
	if (cmd_vault_present("user", dir) != 0)
		return 1;
	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = a.pass;
	if (vault_open(dir, &vo, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault user: %s: %s\n", dir, why);
		return 1;
	}
	memset(&by, 0, sizeof by);
	by.user = cmd_operator();
	by.role = "operator";
	by.addr = "local";
	r = 1;
	if (strcmp(a.sub, "add") == 0) {
		r = run_add(v, &a, &by);
	} else if (strcmp(a.sub, "list") == 0 || strcmp(a.sub, "grants") == 0) {
		r = run_list(v, &a, a.sub[0] == 'g');
	} else if (strcmp(a.sub, "grant") == 0) {
		r = run_grant(v, &a, &by);
	} else if (strcmp(a.sub, "revoke") == 0) {
		r = run_revoke(v, &a, &by);
	} else {
		r = run_change(v, &a, &by);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (r == 0)
			fprintf(stderr, "dicomvault user: %s: cannot write output\n", a.sub);
		r = 1;
	}
	vault_close(v);
	return r;
}
