/* token.c: `dicomvault token create|list|revoke` (SPEC section 2): API
 * tokens for service accounts and scripts. The token is printed once on
 * stdout and never stored, logged or put in anyone's argv; creation,
 * revocation and their refusals are audited. Layer: cmd. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cmd.h"
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/token.h"
#include "dicomvault/vault.h"

#define DEFAULT_SCOPE "store,query,retrieve"

static const char token_usage[] =
	"usage: dicomvault token create --user NAME [--ttl SECONDS] [--scope SCOPE] [--vault DIR]\n"
	"                               [--passphrase-file F] [--json]\n"
	"       dicomvault token list [--vault DIR] [--passphrase-file F] [--json]\n"
	"       dicomvault token revoke ID [--vault DIR] [--passphrase-file F] [--json]\n"
	"API tokens: bearer tokens (Authorization: Bearer TOKEN) for service accounts\n"
	"and scripts. A token acts as its user, with the user's role.\n"
	"  create             a new token, printed once on stdout (only a keyed hash is kept)\n"
	"  list               every token: id, user, state, created, expires, last used, scope\n"
	"                     (never the token itself)\n"
	"  revoke ID          end token ID at once\n"
	"  --user NAME        the account the token acts as (it must exist and be enabled)\n"
	"  --ttl SECONDS      lifetime, 1 to 31622400 (366 days); default 2592000 (30 days)\n"
	"  --scope SCOPE      comma list of store, query, retrieve, and optionally one\n"
	"                     collection=NAME; default " DEFAULT_SCOPE "\n"
	"  --vault DIR        the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --passphrase-file F  the master key passphrase, for a passphrase vault (else stdin)\n"
	"  --json             machine-readable output\n";

struct token_args {
	const char *sub;
	const char *vault;
	const char *passphrase_file;
	const char *user;
	const char *ttl;
	const char *scope;
	const char *id;
	bool json;
};

static int usage_err(const char *sub, const char *fmt, ...) PRINTF_LIKE(2, 3);

static int usage_err(const char *sub, const char *fmt, ...)
{
	char name[32];
	va_list ap;
	int rc;

	snprintf(name, sizeof name, "token%s%s", sub ? " " : "", sub ? sub : "");
	va_start(ap, fmt);
	rc = cmd_usage_verr(name, token_usage, fmt, ap);
	va_end(ap);
	return rc;
}

/* CMD_ARGS_GO, or the exit status. */
static int parse_args(int argc, char **argv, struct token_args *a)
{
	enum { N_OPTS = 8 };
	struct args_opt opts[N_OPTS];
	char name[32];
	bool create, revoke;
	size_t k = 0, npos = 0;
	int rc;

	memset(a, 0, sizeof *a);
	a->sub = argc >= 2 ? argv[1] : "";
	create = strcmp(a->sub, "create") == 0;
	revoke = strcmp(a->sub, "revoke") == 0;
	if (!create && !revoke && strcmp(a->sub, "list") != 0) {
		if (cmd_wants_help(argc, argv, 1)) {
			fputs(token_usage, stdout);
			return 0;
		}
		return argc < 2 ? usage_err(NULL, "%s", "missing subcommand")
		                : usage_err(NULL, "unknown subcommand '%s'", a->sub);
	}
	cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--json", .flag = &a->json });
	cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--vault", .value = &a->vault });
	cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--passphrase-file", .value = &a->passphrase_file });
	cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--passphrase", .refused = "--passphrase-file" });
	if (create) {
		cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--user", .value = &a->user });
		cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--ttl", .value = &a->ttl });
		cmd_opts_add(opts, N_OPTS, &k, (struct args_opt){ "--scope", .value = &a->scope });
	}
	snprintf(name, sizeof name, "token %s", a->sub);
	rc = cmd_args(name, token_usage, argc, argv, 2, opts, &a->id, revoke ? 1 : 0, &npos);
	if (rc != CMD_ARGS_GO)
		return rc;
	if (create && a->user == NULL)
		return usage_err(a->sub, "%s", "--user NAME is required");
	if (revoke && a->id == NULL)
		return usage_err(a->sub, "%s", "the token ID is required");
	return CMD_ARGS_GO;
}

/* A decimal integer of digits only (no sign, no space) in [min, max]. */
static bool int_arg(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end = NULL;
	long long v;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != 0 || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void iso_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%s", "-");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* One audit record of the CLI (actor: the local operator) in the vault's
 * log, opened before anything changed. 0, or 1 after saying that it could
 * not be written. */
static int audit_cli(const struct vault *v, struct audit *au, const char *action, enum audit_outcome oc,
                     const char *reason, const char *session)
{
	struct audit_rec r;
	enum err rc;

	cmd_operator_rec(&r, action, oc, reason);
	r.actor.session = session;
	rc = audit_append(au, &r);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault token: %s/" AUDIT_LOG_PATH ": cannot write the audit record: %s\n", v->dir,
		        err_str(rc));
		return 1;
	}
	return 0;
}

static void print_row(const struct idx_token *t, int64_t now, bool json, bool first)
{
	char created[32], expires[32], used[32], revoked[32];

	iso_time(t->created, created);
	iso_time(t->expires, expires);
	iso_time(t->last_used, used);
	iso_time(t->revoked, revoked);
	if (!json) {
		printf("%-6lld %-20s %-8s %-21s %-21s %-21s %s\n", (long long)t->id, t->user_name, token_state(t, now),
		       created, expires, used, t->scope);
		return;
	}
	printf("%s{\"id\":%lld,\"user\":", first ? "" : ",", (long long)t->id);
	json_str(t->user_name);
	printf(",\"state\":\"%s\",\"created\":\"%s\",\"expires\":\"%s\",\"last_used\":", token_state(t, now), created,
	       expires);
	if (t->last_used)
		printf("\"%s\"", used);
	else
		printf("null");
	printf(",\"revoked\":");
	if (t->revoked)
		printf("\"%s\"", revoked);
	else
		printf("null");
	printf(",\"scope\":");
	json_str(t->scope);
	putchar('}');
}

struct list_ctx {
	int64_t now;
	bool json;
	size_t n;
};

static enum err list_one(void *ctx, const struct idx_token *t)
{
	struct list_ctx *c = ctx;

	print_row(t, c->now, c->json, c->n == 0);
	c->n++;
	return ferror(stdout) ? ERR_IO : ERR_OK;
}

static int run_list(struct vault *v, const struct token_args *a)
{
	struct list_ctx c = { .now = (int64_t)time(NULL), .json = a->json, .n = 0 };
	enum err rc;

	if (a->json)
		putchar('[');
	else
		printf("%-6s %-20s %-8s %-21s %-21s %-21s %s\n", "ID", "USER", "STATE", "CREATED", "EXPIRES", "LAST USED",
		       "SCOPE");
	rc = v->ix->ops->token_list(v->ix, list_one, &c);
	if (a->json)
		printf("]\n");
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fputs("dicomvault token list: cannot write output\n", stderr);
		return 1;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault token list: cannot read the index: %s\n", err_str(rc));
		return 1;
	}
	return 0;
}

/* Revokes token t that must not stay usable (its creation could not be
 * recorded, or it could not be shown), and says so in the log if it can. */
static void take_back(struct vault *v, struct audit *au, struct idx_token *t, int64_t now, const char *why)
{
	char reason[AUDIT_FIELD_MAX];
	long long id = (long long)t->id;
	enum err e = token_revoke(v->ix, t->id, now, t);

	if (e != ERR_OK) {
		fprintf(stderr, "dicomvault token create: cannot revoke token %lld: %s\n", id, err_str(e));
		return;
	}
	snprintf(reason, sizeof reason, "token %lld of user %s: %s", id, t->user_name, why);
	(void)audit_cli(v, au, AUDIT_TOKEN_REVOKE, AUDIT_SUCCESS, reason, NULL);
}

static int run_create(struct vault *v, struct audit *au, const struct token_args *a, int64_t ttl, const char *scope,
                      const char *collection)
{
	char reason[2 * AUDIT_FIELD_MAX], ref[AUDIT_SESSION_REF_LEN], expires[32], created[32];
	struct secret *key = NULL, *tok = NULL;
	struct idx_token t;
	int64_t now = (int64_t)time(NULL);
	int ret = 1;
	enum err rc;

	if (collection != NULL && !access_collection_known(v->colls, collection)) {
		fprintf(stderr, "dicomvault token create: no collection '%s' in %s/dicomvault.conf\n", collection, v->dir);
		snprintf(reason, sizeof reason, "for user %s: unknown collection %s", a->user, collection);
		(void)audit_cli(v, au, AUDIT_TOKEN_CREATE, AUDIT_FAILURE, reason, NULL);
		return 1;
	}
	rc = token_key_new(v->index_key, &key);
	if (rc == ERR_OK)
		rc = token_create(v->ix, key, a->user, ttl, scope, now, &tok, &t);
	if (rc == ERR_NOTFOUND || rc == ERR_DENIED) {
		fprintf(stderr, "dicomvault token create: user '%s' %s\n", a->user,
		        rc == ERR_NOTFOUND ? "does not exist" : "is disabled or expired");
		snprintf(reason, sizeof reason, "for user %s: %s", a->user,
		         rc == ERR_NOTFOUND ? "no such user" : "user disabled or expired");
		(void)audit_cli(v, au, AUDIT_TOKEN_CREATE, rc == ERR_NOTFOUND ? AUDIT_FAILURE : AUDIT_DENIED, reason,
		                NULL);
		goto out;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault token create: %s\n", err_str(rc));
		goto out;
	}
	/* on the record before it is shown; if it cannot be, it is revoked */
	iso_time(t.expires, expires);
	iso_time(t.created, created);
	snprintf(reason, sizeof reason, "token %lld for user %s, scope %s, expires %s", (long long)t.id, t.user_name,
	         t.scope, expires);
	audit_session_ref(secret_cstr(tok), TOKEN_LEN, ref);
	if (audit_cli(v, au, AUDIT_TOKEN_CREATE, AUDIT_SUCCESS, reason, ref) != 0) {
		take_back(v, au, &t, now, "revoked at once, its creation could not be recorded");
		goto out;
	}
	if (a->json) {
		printf("{\"id\":%lld,\"token\":\"%s\",\"user\":", (long long)t.id, secret_cstr(tok));
		json_str(t.user_name);
		printf(",\"created\":\"%s\",\"expires\":\"%s\",\"expires_in\":%lld,\"scope\":", created, expires,
		       (long long)ttl);
		json_str(t.scope);
		printf("}\n");
	} else {
		printf("Token %lld for %s (scope %s), expires %s:\n\n%s\n\n", (long long)t.id, t.user_name, t.scope,
		       expires, secret_cstr(tok));
		printf("Shown once: store it now. Send it as \"Authorization: Bearer TOKEN\";\n"
		       "end it with 'dicomvault token revoke %lld'.\n", (long long)t.id);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fputs("dicomvault token create: cannot write output: the token is revoked\n", stderr);
		take_back(v, au, &t, now, "revoked at once, it could not be shown (output failed)");
		goto out;
	}
	ret = 0;
out:
	secret_free(tok);
	secret_free(key);
	return ret;
}

static int run_revoke(struct vault *v, struct audit *au, const struct token_args *a, int64_t id)
{
	char reason[AUDIT_FIELD_MAX], when[32];
	struct idx_token t;
	int64_t now = (int64_t)time(NULL);
	enum err rc;

	memset(&t, 0, sizeof t);
	rc = token_revoke(v->ix, id, now, &t);
	if (rc == ERR_NOTFOUND || rc == ERR_DENIED) {
		fprintf(stderr, "dicomvault token revoke: token %lld %s\n", (long long)id,
		        rc == ERR_NOTFOUND ? "does not exist" : "is already revoked");
		snprintf(reason, sizeof reason, "token %lld: %s", (long long)id,
		         rc == ERR_NOTFOUND ? "no such token" : "already revoked");
		(void)audit_cli(v, au, AUDIT_TOKEN_REVOKE, AUDIT_FAILURE, reason, NULL);
		return 1;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault token revoke: %s\n", err_str(rc));
		return 1;
	}
	snprintf(reason, sizeof reason, "token %lld of user %s", (long long)id, t.user_name);
	if (audit_cli(v, au, AUDIT_TOKEN_REVOKE, AUDIT_SUCCESS, reason, NULL) != 0)
		return 1;   /* revoked all the same */
	iso_time(t.revoked, when);
	if (a->json) {
		printf("{\"id\":%lld,\"user\":", (long long)id);
		json_str(t.user_name);
		printf(",\"revoked\":\"%s\"}\n", when);
	} else {
		printf("Token %lld of %s revoked at %s\n", (long long)id, t.user_name, when);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_token(int argc, char **argv)
{
	char dir[VAULT_PATH_MAX], why[512], scope[IDX_SCOPE_MAX + 1];
	const char *collection = NULL;
	struct vault_open_opts vo;
	struct token_args a;
	struct vault *v = NULL;
	struct audit *au = NULL;
	int64_t ttl = TOKEN_TTL_DEFAULT, id = 0;
	int rc;

	cmd_no_sigpipe();
	rc = parse_args(argc, argv, &a);
	if (rc != CMD_ARGS_GO)
		return rc;
	if (a.ttl != NULL && !int_arg(a.ttl, 1, TOKEN_TTL_MAX, &ttl))
		return usage_err(a.sub, "--ttl '%s': a number of seconds from 1 to 31622400 (366 days)", a.ttl);
	if (strcmp(a.sub, "create") == 0 &&
	    token_scope_parse(a.scope ? a.scope : DEFAULT_SCOPE, scope, sizeof scope, &collection, why, sizeof why) !=
	        ERR_OK)
		return usage_err(a.sub, "--scope: %s", why);
	if (a.id != NULL && !int_arg(a.id, 1, INT64_MAX, &id))
		return usage_err(a.sub, "'%s' is not a token ID (see dicomvault token list)", a.id);
	if (vault_resolve(a.vault, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault token: vault path too long\n", stderr);
		return EXIT_USAGE;
	}
	if (cmd_vault_present("token", dir) != 0)
		return 1;
	/* this process holds the master key */
	if (proc_harden() != ERR_OK) {
		fputs("dicomvault token: cannot disable core dumps\n", stderr);
		return 1;
	}
	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = a.passphrase_file;
	if (vault_open(dir, &vo, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault token: %s: %s\n", dir, why);
		return 1;
	}
	if (strcmp(a.sub, "list") == 0) {
		rc = run_list(v, &a);
	} else if (vault_audit_open(v, &au) != ERR_OK) {
		/* nothing changes that cannot be recorded */
		fprintf(stderr, "dicomvault token %s: cannot open the audit log in %s: nothing was changed\n", a.sub, dir);
		rc = 1;
	} else {
		rc = a.sub[0] == 'c' ? run_create(v, au, &a, ttl, scope, collection) : run_revoke(v, au, &a, id);
		audit_close(au);
	}
	vault_close(v);
	return rc;
}
