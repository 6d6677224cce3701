/* audit.c: `dicomvault audit verify` (check the hash chain and the signed
 * checkpoints of DIR/audit/audit.log, naming the first bad record) and
 * `dicomvault audit export --format json` (the verified records as JSON
 * lines on stdout). No master key is needed: only the log and
 * keys/audit.pub are read, and export and report append the record of
 * their reading (audit-read) to the log. Layer: cmd. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include <jansson.h>
#include <time.h>
#include "dicomvault/audit.h"
#include "dicomvault/query.h"
#include "dicomvault/store.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"

static const char audit_usage[] =
	"usage: dicomvault audit verify [--vault DIR] [--key FILE] [--json]\n"
	"       dicomvault audit export [--vault DIR] [--key FILE] [--format json] [--json]\n"
	"Check or export the audit trail (DIR/audit/audit.log).\n"
	"  verify         check the hash chain and the signed checkpoints; name the\n"
	"                 first bad record; exit 0 if intact, 1 otherwise\n"
	"  export         write the records as JSON lines to stdout, verifying each\n"
	"                 one first; stops with exit 1 at the first bad record\n"
	"                 (export and report are recorded first, as audit-read: when\n"
	"                 the log cannot take the record, nothing is read)\n"
	"  --vault DIR    the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --key FILE     the audit public key (64 hex digits); default DIR/keys/audit.pub\n"
	"                 (keep a copy off the machine and pass it here)\n"
	"  --format json  export format (json lines; the only one for now; --json: the same)\n"
	"       dicomvault audit report [--break-glass] [--user NAME] [--patient ID [--issuer I]]\n"
	"                               [--action A] [--from T] [--to T] [--json] [--vault DIR]\n"
	"  report         the verified records that match every filter given, oldest first:\n"
	"                 --break-glass emergency accesses; --user what a user did; --patient\n"
	"                 who touched a patient's data (accounting of disclosures: needs the\n"
	"                 vault's keys, --passphrase-file F for a passphrase vault); T as for\n"
	"                 'dicomvault user' (2026-12-31, @SECONDS, +N[smhd])\n"
	"       dicomvault audit reanchor [--passphrase-file F] [--vault DIR]\n"
	"  reanchor       after restoring a vault copied while it ran (its audit/audit.log.anchor\n"
	"                 copied after a checkpoint its log's copy missed, so that verify says\n"
	"                 records were cut and nothing is recorded): verifies the log with the\n"
	"                 vault's keys, anchors it anew at its last checkpoint, and records that\n"
	"                 it did (audit-reanchor, naming the seqs). Only for a copy known whole.\n"
	"  --json         machine-readable verify result\n";

struct audit_args {
	const char *sub;
	const char *vault;
	const char *key;
	const char *format;
	bool json;
	/* report filters */
	bool break_glass;
	const char *user, *patient, *issuer, *action, *from, *to, *pass;
};

#define N_OPTS 16

static void add(struct args_opt *t, size_t *k, struct args_opt o)
{
	cmd_opts_add(t, N_OPTS, k, o);
}

/* CMD_ARGS_GO, or the exit status after printing why (or the usage). */
static int parse_args(int argc, char **argv, struct audit_args *a)
{
	struct args_opt opts[N_OPTS];
	char name[32];
	bool rep, exp, re;
	size_t k = 0, npos = 0;
	int rc;

	memset(a, 0, sizeof *a);
	a->sub = argc >= 2 ? argv[1] : "";
	rep = strcmp(a->sub, "report") == 0;
	exp = strcmp(a->sub, "export") == 0;
	re = strcmp(a->sub, "reanchor") == 0;
	if (strcmp(a->sub, "verify") != 0 && !exp && !rep && !re) {
		if (cmd_wants_help(argc, argv, 1)) {
			fputs(audit_usage, stdout);
			return 0;
		}
		if (argc < 2)
			return cmd_usage_err("audit", audit_usage, "missing subcommand");
		return cmd_usage_err("audit", audit_usage, "unknown subcommand '%s'", a->sub);
	}
	add(opts, &k, (struct args_opt){ "--vault", .value = &a->vault });
	add(opts, &k, (struct args_opt){ "--key", .value = &a->key });
	add(opts, &k, (struct args_opt){ "--json", .flag = &a->json });   /* export: JSON lines either way */
	if (exp)
		add(opts, &k, (struct args_opt){ "--format", .value = &a->format });
	if (rep || re) {
		add(opts, &k, (struct args_opt){ "--passphrase-file", .value = &a->pass });
		add(opts, &k, (struct args_opt){ "--passphrase", .refused = "--passphrase-file" });
	}
	if (rep) {
		add(opts, &k, (struct args_opt){ "--break-glass", .flag = &a->break_glass });
		add(opts, &k, (struct args_opt){ "--user", .value = &a->user });
		add(opts, &k, (struct args_opt){ "--patient", .value = &a->patient });
		add(opts, &k, (struct args_opt){ "--issuer", .value = &a->issuer });
		add(opts, &k, (struct args_opt){ "--action", .value = &a->action });
		add(opts, &k, (struct args_opt){ "--from", .value = &a->from });
		add(opts, &k, (struct args_opt){ "--to", .value = &a->to });
	}
	snprintf(name, sizeof name, "audit %s", rep ? "report" : exp ? "export" : re ? "reanchor" : "verify");
	rc = cmd_args(name, audit_usage, argc, argv, 2, opts, NULL, 0, &npos);
	if (rc != CMD_ARGS_GO)
		return rc;
	if (a->format != NULL && strcmp(a->format, "json") != 0) {
		fprintf(stderr, "dicomvault audit export: unsupported format '%s' (only json for now)\n", a->format);
		return EXIT_USAGE;
	}
	return CMD_ARGS_GO;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* The vault's log path and its public key; 0, or 1 after saying why. */
static int locate(const struct audit_args *a, char *dir, size_t dircap, char *log, size_t logcap,
                  uint8_t pk[SIGN_PK_LEN])
{
	char keypath[VAULT_PATH_MAX + 64];
	const char *kp = a->key;
	enum err rc;
	int n;

	if (vault_resolve(a->vault, dir, dircap) != ERR_OK) {
		fputs("dicomvault audit: vault path too long\n", stderr);
		return 1;
	}
	if (cmd_vault_present("audit", dir) != 0)
		return 1;
	n = snprintf(log, logcap, "%s/" AUDIT_LOG_PATH, dir);
	if (n < 0 || (size_t)n >= logcap)
		return 1;
	if (kp == NULL) {
		n = snprintf(keypath, sizeof keypath, "%s/keys/audit.pub", dir);
		if (n < 0 || (size_t)n >= sizeof keypath)
			return 1;
		kp = keypath;
	}
	rc = audit_pubkey_read(kp, pk);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault audit: %s: cannot read the audit public key (%s)\n", kp,
		        rc == ERR_PARSE ? "not 64 hex digits" : err_str(rc));
		return 1;
	}
	return 0;
}

/* 0, or 1 after naming the log and the reason. */
static int run_verify(const char *log, const struct audit_verify_opts *o, struct audit_verify_result *r)
{
	enum err rc = audit_verify_ex(log, o, r);

	if (rc == ERR_NOTFOUND) {
		fprintf(stderr, "dicomvault audit: %s: no audit log (a vault always has one: was it deleted?)\n", log);
		return 1;
	}
	if (rc == ERR_IO && ferror(stdout)) {
		fputs("dicomvault audit: cannot write output\n", stderr);
		return 1;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault audit: %s: cannot read the log: %s\n", log,
		        rc == ERR_IO && errno ? strerror(errno) : err_str(rc));
		return 1;
	}
	return 0;
}

static void print_text(const char *log, const uint8_t pk[SIGN_PK_LEN], const struct audit_verify_result *r)
{
	char key[2 * SIGN_PK_LEN + 1];
	size_t i;

	for (i = 0; i < SIGN_PK_LEN; i++)
		snprintf(key + 2 * i, 3, "%02x", pk[i]);
	if (r->fault != AUDIT_OK) {
		if (r->bad_line > 0)
			printf("%s: BROKEN at line %llu", log, (unsigned long long)r->bad_line);
		else
			printf("%s: BROKEN", log);   /* the anchor beside it, not a line */
		if (r->bad_seq)
			printf(" (seq %llu)", (unsigned long long)r->bad_seq);
		printf(": %s: %s\n", audit_fault_str(r->fault), r->detail);
		if (r->records == 1)
			printf("  the record before it (seq 1) is intact\n");
		else if (r->records)
			printf("  the %llu records before it (seq 1-%llu) are intact\n", (unsigned long long)r->records,
			       (unsigned long long)r->last_seq);
		else
			printf("  no intact record before it\n");
		if (r->fault == AUDIT_ANCHOR)
			printf("  (a vault restored from a copy taken while it ran, the copy known whole: "
			       "dicomvault audit reanchor)\n");
		return;
	}
	if (r->records == 0)
		printf("%s: intact, empty (0 records)\n", log);
	else if (r->records == 1)
		printf("%s: intact, 1 record (seq 1), head %s\n", log, r->head);
	else
		printf("%s: intact, %llu records (seq 1-%llu), head %s\n", log, (unsigned long long)r->records,
		       (unsigned long long)r->last_seq, r->head);
	if (r->checkpoints)
		printf("checkpoints: %llu signed by audit key %s, the last at seq %llu; %llu record(s) after it not yet signed\n",
		       (unsigned long long)r->checkpoints, key, (unsigned long long)r->last_checkpoint_seq,
		       (unsigned long long)(r->last_seq - r->last_checkpoint_seq));
	else
		printf("checkpoints: none (without a signed checkpoint the chain does not prove that the log was not rewritten)\n");
}

static void print_json(const char *log, const uint8_t pk[SIGN_PK_LEN], const struct audit_verify_result *r)
{
	size_t i;

	printf("{\"log\":");
	json_str(stdout, log);
	printf(",\"intact\":%s,\"records\":%llu,\"last_seq\":%llu,\"head\":\"%s\",\"checkpoints\":%llu,"
	       "\"last_checkpoint_seq\":%llu,\"signatures_checked\":%s,\"key\":\"",
	       r->fault == AUDIT_OK ? "true" : "false", (unsigned long long)r->records, (unsigned long long)r->last_seq,
	       r->head, (unsigned long long)r->checkpoints, (unsigned long long)r->last_checkpoint_seq,
	       r->signatures_checked ? "true" : "false");
	for (i = 0; i < SIGN_PK_LEN; i++)
		printf("%02x", pk[i]);
	putchar('"');
	if (r->fault != AUDIT_OK) {
		printf(",\"fault\":\"%s\",\"line\":%llu,\"seq\":%llu,\"expected_seq\":%llu,\"detail\":",
		       audit_fault_str(r->fault), (unsigned long long)r->bad_line, (unsigned long long)r->bad_seq,
		       (unsigned long long)r->expected_seq);
		json_str(stdout, r->detail);
	}
	printf("}\n");
}

/* ---- report ---- */

struct report {
	const struct audit_args *a;
	char patients[QRY_PATIENT_KEYS_MAX][65];   /* hex: any of them; none: every record */
	size_t npatients;
	int64_t from, to;         /* unix seconds; 0: open */
	uint64_t shown;
};

static const char *sget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* s for a terminal: a record's text fields hold what users and peers
 * wrote (a grant's purpose, a break-glass reason, a user agent), escaped
 * in the log but decoded here; a control character (C0, DEL, or C1 in
 * UTF-8, which terminals may obey) is written as '?'. */
static const char *text_clean(const char *s, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "-");
	size_t n = 0;

	for (; *p && n + 1 < outlen; p++) {
		bool c1 = p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;
		out[n++] = c1 || *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
		p += c1;
	}
	out[n] = 0;
	return out;
}

static int report_line(void *ctx, const char *line, size_t n)
{
	struct report *rp = ctx;
	const struct audit_args *a = rp->a;
	json_t *o = json_loadb(line, n, 0, NULL), *actor, *objs;
	const char *action, *time_s, *user, *study, *reason, *outcome;
	char cu[AUDIT_FIELD_MAX + 8], cs[AUDIT_FIELD_MAX + 8], cr[AUDIT_FIELD_MAX + 8];
	int64_t t;
	bool keep = true;

	if (o == NULL)
		return 0;
	actor = json_object_get(o, "actor");
	objs = json_object_get(o, "objects");
	action = sget(o, "action");
	time_s = sget(o, "time");
	outcome = sget(o, "outcome");
	reason = sget(o, "reason");
	user = actor ? sget(actor, "user") : NULL;
	study = objs ? sget(objs, "study") : NULL;
	t = users_parse_stamp(time_s);
	if (action == NULL || strcmp(action, "checkpoint") == 0)
		keep = false;
	/* by action only: a reason may now hold a user's text (a purpose) */
	if (keep && a->break_glass && strcmp(action, "break-glass") != 0)
		keep = false;
	if (keep && a->action != NULL && strcmp(action, a->action) != 0)
		keep = false;
	if (keep && a->user != NULL && (user == NULL || strcmp(user, a->user) != 0))
		keep = false;
	if (keep && rp->npatients > 0)
		keep = objs != NULL && audit_names_patient(objs, rp->patients, rp->npatients);
	if (keep && ((rp->from && t < rp->from) || (rp->to && t >= rp->to)))
		keep = false;
	if (keep) {
		if (a->json) {
			if (fwrite(line, 1, n, stdout) != n) {
				json_decref(o);
				return -1;
			}
		} else {
			printf("%-24s %-18s %-20s %-8s %-40s %s\n", time_s ? time_s : "-", action,
			       text_clean(user, cu, sizeof cu), outcome ? outcome : "-", text_clean(study, cs, sizeof cs),
			       reason ? text_clean(reason, cr, sizeof cr) : "");
		}
		rp->shown++;
	}
	json_decref(o);
	return 0;
}

/* The vault opened with its keys (--passphrase-file for a passphrase
 * vault), or NULL after saying why. */
static struct vault *open_keys(const struct audit_args *a, const char *dir, const char *sub)
{
	struct vault_open_opts vo;
	struct vault *v = NULL;
	char why[256];

	memset(&vo, 0, sizeof vo);
	vo.passphrase_file = a->pass;
	if (vault_open(dir, &vo, &v, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault audit %s: %s: %s\n", sub, dir, why);
		return NULL;
	}
	return v;
}

/* The keyed hashes of --patient (under --issuer, else under any issuer
 * the index knows for that ID: qry_patient_keys), with the vault's keys;
 * *vp: the vault, open (its record of the report is signed), or NULL. */
static int report_patient(const struct audit_args *a, const char *dir, struct report *rp, struct vault **vp)
{
	struct vault *v = open_keys(a, dir, "report");
	enum err rc;

	if (v == NULL)
		return 1;
	rc = qry_patient_keys(v, a->patient, a->issuer, rp->patients, QRY_PATIENT_KEYS_MAX, &rp->npatients);
	if (rc == ERR_OK)
		*vp = v;
	else
		vault_close(v);
	if (rc == ERR_PARSE) {
		fputs("dicomvault audit report: --patient: an empty Patient ID\n", stderr);
		return EXIT_USAGE;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault audit report: --patient: %s\n",
		        rc == ERR_LIMIT ? "too many patients with this ID: give --issuer" : err_str(rc));
		return 1;
	}
	return 0;
}

/* ---- the record of a reading ---- */

/* "audit trail: report (user=U, action=A, patient, ...)": the filters,
 * the Patient ID and issuer named but never written (the record's
 * objects hold the patients' keys). */
static void read_reason(const struct audit_args *a, char *out, size_t cap)
{
	const char *f[7];
	size_t n = 0, i, k;
	char user[80], action[48];

	if (strcmp(a->sub, "export") == 0) {
		snprintf(out, cap, "audit trail: export");
		return;
	}
	if (a->break_glass)
		f[n++] = "break-glass";
	if (a->user != NULL) {
		snprintf(user, sizeof user, "user=%s", a->user);
		f[n++] = user;
	}
	if (a->action != NULL) {
		snprintf(action, sizeof action, "action=%s", a->action);
		f[n++] = action;
	}
	if (a->patient != NULL)
		f[n++] = "patient";
	if (a->issuer != NULL)
		f[n++] = "issuer";
	if (a->from != NULL)
		f[n++] = "from";
	if (a->to != NULL)
		f[n++] = "to";
	k = (size_t)snprintf(out, cap, "audit trail: report%s", n ? " (" : "");
	for (i = 0; i < n && k < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? ", " : "", f[i]);
	if (n && k < cap)
		snprintf(out + k, cap - k, ")");
}

/* Reading the trail is an event of its own (ATNA's Audit Log Used, SPEC
 * section 8: every view): recorded before the first line goes out, by
 * the operator, naming the patients searched by their keys. Signed when
 * the vault is open with its keys (report --patient); otherwise, as
 * reidentify's, left for the next signing writer (verify does not count
 * it against the unsigned tail: a reader holds no master key). 0, or 1
 * after saying why nothing is read: a reading that cannot be recorded
 * does not happen. */
static int record_read(const struct audit_args *a, const char *dir, struct vault *v, const struct report *rp)
{
	uint8_t keys[QRY_PATIENT_KEYS_MAX][32];
	struct audit_rec rec;
	struct audit *au = NULL;
	char reason[200];
	size_t i, nk = 0;
	enum err rc;

	for (i = 0; rp != NULL && i < rp->npatients; i++)
		if (qry_patient_key_bin(rp->patients[i], keys[nk]))
			nk++;
	read_reason(a, reason, sizeof reason);
	cmd_operator_rec(&rec, AUDIT_READ_TRAIL, AUDIT_SUCCESS, reason);
	rec.objects.patient_list = nk ? &keys[0][0] : NULL;
	rec.objects.npatient_list = nk;
	rc = v != NULL ? vault_audit_open(v, &au) : audit_open(dir, &au);
	if (rc == ERR_OK)
		rc = audit_append(au, &rec);
	audit_close(au);
	if (rc == ERR_OK)
		return 0;
	fprintf(stderr, "dicomvault audit %s: %s/" AUDIT_LOG_PATH ": cannot record this reading of the trail (%s): "
	        "nothing %s ('dicomvault audit verify' checks the log)\n", a->sub, dir, err_str(rc),
	        strcmp(a->sub, "export") == 0 ? "exported" : "reported");
	return 1;
}

static int export_line(void *ctx, const char *line, size_t n)
{
	(void)ctx;
	return fwrite(line, 1, n, stdout) == n ? 0 : -1;
}

/* 0, or 1 after saying that stdout could not take the output (a full
 * disk, a closed pipe): a report or a verdict nobody received is no
 * success. */
static int output_ok(const char *sub)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "dicomvault audit %s: cannot write output: %s\n", sub, strerror(errno));
	return 1;
}

/* audit reanchor: the log verified with the vault's keys, anchored anew,
 * and the move recorded (by the writer the vault's keys sign with). */
static int reanchor(const struct audit_args *a, const char *dir, const char *log)
{
	struct audit_verify_result r;
	struct audit_rec rec;
	struct audit *au = NULL;
	struct vault *v = open_keys(a, dir, "reanchor");
	uint64_t old = 0;
	char reason[160];
	enum err rc;

	if (v == NULL)
		return 1;
	rc = audit_reanchor(log, v->audit_sk, v->audit_pk, &old, &r);
	if (rc == ERR_PARSE) {
		fprintf(stderr, "dicomvault audit reanchor: %s: the log is not intact (line %llu, seq %llu: %s: %s): "
		        "not anchored\n", log, (unsigned long long)r.bad_line, (unsigned long long)r.bad_seq,
		        audit_fault_str(r.fault), r.fault != AUDIT_OK ? r.detail : "no signed checkpoint");
		vault_close(v);
		return 1;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault audit reanchor: %s: cannot write the anchor: %s\n", log, err_str(rc));
		vault_close(v);
		return 1;
	}
	if (old > 0)
		snprintf(reason, sizeof reason, "the audit anchor moved from seq %llu to seq %llu, the log's last "
		         "checkpoint (a vault restored from a copy?)", (unsigned long long)old,
		         (unsigned long long)r.last_checkpoint_seq);
	else
		snprintf(reason, sizeof reason, "the audit anchor, missing or unreadable, made anew at seq %llu, the log's "
		         "last checkpoint", (unsigned long long)r.last_checkpoint_seq);
	/* who moved it, as every command's record names its operator: the
	 * move tells verify to accept the log's end */
	cmd_operator_rec(&rec, AUDIT_REANCHOR, AUDIT_SUCCESS, reason);
	rc = vault_audit_open(v, &au);
	if (rc == ERR_OK)
		rc = audit_append(au, &rec);
	audit_close(au);   /* its closing checkpoint moves the anchor past the record */
	vault_close(v);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault audit reanchor: %s: anchored at seq %llu, but the record of it could not be "
		        "written: %s\n", log, (unsigned long long)r.last_checkpoint_seq, err_str(rc));
		return 1;
	}
	printf("%s: anchored at seq %llu (it named seq %llu); recorded\n", log,
	       (unsigned long long)r.last_checkpoint_seq, (unsigned long long)old);
	return output_ok("reanchor");
}

int cmd_audit(int argc, char **argv)
{
	char dir[VAULT_PATH_MAX], log[VAULT_PATH_MAX + 64];
	uint8_t pk[SIGN_PK_LEN];
	struct audit_verify_opts o;
	struct audit_verify_result r;
	struct audit_args a;
	struct vault *v = NULL;
	int rc;

	rc = parse_args(argc, argv, &a);
	if (rc != CMD_ARGS_GO)
		return rc;
	rc = locate(&a, dir, sizeof dir, log, sizeof log, pk);
	if (rc != 0)
		return rc;
	if (strcmp(a.sub, "reanchor") == 0)
		return reanchor(&a, dir, log);
	memset(&o, 0, sizeof o);
	o.pk = pk;
	o.vault_log = true;
	if (strcmp(a.sub, "export") == 0)
		o.on_record = export_line;
	if (strcmp(a.sub, "report") == 0) {
		struct report rp;
		memset(&rp, 0, sizeof rp);
		rp.a = &a;
		if ((a.from != NULL && users_parse_time(a.from, (int64_t)time(NULL), &rp.from) != ERR_OK) ||
		    (a.to != NULL && users_parse_time(a.to, (int64_t)time(NULL), &rp.to) != ERR_OK)) {
			fputs("dicomvault audit report: --from/--to: 2026-12-31, 2026-12-31T17:00Z, @SECONDS or +N[smhd]\n",
			      stderr);
			return EXIT_USAGE;
		}
		if (a.issuer != NULL && a.patient == NULL) {
			fputs("dicomvault audit report: --issuer goes with --patient\n", stderr);
			return EXIT_USAGE;
		}
		if (a.patient != NULL && (rc = report_patient(&a, dir, &rp, &v)) != 0)
			return rc;
		rc = record_read(&a, dir, v, &rp);
		vault_close(v);
		if (rc != 0)
			return rc;
		o.on_record = report_line;
		o.ctx = &rp;
		if (!a.json)
			printf("%-24s %-18s %-20s %-8s %-40s %s\n", "time", "action", "user", "outcome", "study", "reason");
		rc = run_verify(log, &o, &r);
		if (rc != 0)
			return rc;
		fflush(stdout);
		if (r.fault != AUDIT_OK) {
			fprintf(stderr, "dicomvault audit report: %s: the trail is damaged at line %llu (seq %llu): %s: the "
			        "report stops there\n", log, (unsigned long long)r.bad_line, (unsigned long long)r.bad_seq,
			        r.detail);
			return 1;
		}
		if (!a.json)
			printf("%llu record%s\n", (unsigned long long)rp.shown, rp.shown == 1 ? "" : "s");
		return output_ok("report");
	}
	if (strcmp(a.sub, "export") == 0 && (rc = record_read(&a, dir, NULL, NULL)) != 0)
		return rc;
	rc = run_verify(log, &o, &r);
	if (rc != 0)
		return rc;
	if (strcmp(a.sub, "export") == 0) {
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "dicomvault audit export: cannot write output: %s\n", strerror(errno));
			return 1;
		}
		if (r.fault != AUDIT_OK) {
			fprintf(stderr, "dicomvault audit export: %s: stopped at line %llu (seq %llu): %s: %s\n", log,
			        (unsigned long long)r.bad_line, (unsigned long long)r.bad_seq, audit_fault_str(r.fault),
			        r.detail);
			return 1;
		}
		return 0;
	}
	if (a.json)
		print_json(log, pk, &r);
	else
		print_text(log, pk, &r);
	if (output_ok("verify") != 0)
		return 1;
	return r.fault == AUDIT_OK ? 0 : 1;
}
