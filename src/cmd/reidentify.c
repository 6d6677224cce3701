/* reidentify.c: `dicomvault reidentify --key KEY --reason TEXT IN OUT`:
 * restores the original values a de-identification put in escrow (PS3.15
 * E.1.2) with the escrow's private key. Re-identification discloses a
 * patient, so it is a command of its own, needs a stated reason and a vault
 * whose audit trail records who did it, when, why and to which study;
 * without an audit trail it refuses. Layer: cmd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/audit.h"
#include "dicomvault/deid.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/vault.h"

#define REASON_MIN 4u
#define REASON_MAX 200u

static const char reidentify_usage[] =
	"usage: dicomvault reidentify --key KEY.pem [--cert CERT.pem] --reason TEXT [--vault DIR] [--json] IN OUT\n"
	"Restore the original attribute values that 'dicomvault deid --escrow-cert' or an\n"
	"export kept, encrypted, in the file's Encrypted Attributes Sequence (PS3.15 E.1.2).\n"
	"  --key KEY.pem    the escrow private key (PEM, mode 0600)\n"
	"  --cert CERT.pem  its certificate (optional: picks the recipient)\n"
	"  --reason TEXT    why the patient is re-identified (4 to 200 characters; audited)\n"
	"  --vault DIR      the vault whose audit trail records it (default $DICOMVAULT_HOME,\n"
	"                   else ./vault); there must be one\n"
	"  --json           print the outcome as JSON\n"
	"Pixels masked for burned-in annotation stay masked. Exit status: 0 restored, 1 failed,\n"
	"2 usage error.\n";

static bool reason_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < REASON_MIN || n > REASON_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int cmd_reidentify(int argc, char **argv)
{
	const char *key = NULL, *cert = NULL, *reason = NULL, *vault_arg = NULL, *in = NULL, *out = NULL;
	char dir[VAULT_PATH_MAX], why[512] = "", study[65] = "", sop[65] = "", what[REASON_MAX + 64];
	struct dcm_read_opts ro;
	struct dcm_file *f = NULL;
	struct audit_rec rec;
	struct audit *au = NULL;
	struct src src;
	bool have_src = false;
	unsigned restored = 0;
	bool json = false;
	const char *pos[2] = { NULL, NULL };
	const struct args_opt opts[] = {
		{ "--key", .value = &key },
		{ "--cert", .value = &cert },
		{ "--reason", .value = &reason },
		{ "--vault", .value = &vault_arg },
		{ "--json", .flag = &json },
		{ NULL }
	};
	size_t npos = 0;
	int rcode = 1;
	enum err rc;

	rcode = cmd_args("reidentify", reidentify_usage, argc, argv, 1, opts, pos, 2, &npos);
	if (rcode != CMD_ARGS_GO)
		return rcode;
	rcode = 1;
	in = pos[0];
	out = pos[1];
	if (key == NULL || reason == NULL || in == NULL || out == NULL) {
		fputs("dicomvault reidentify: --key, --reason, IN and OUT are required\n", stderr);
		fputs(reidentify_usage, stderr);
		return EXIT_USAGE;
	}
	if (!reason_ok(reason)) {
		fprintf(stderr, "dicomvault reidentify: --reason: %u to %u printable characters\n", REASON_MIN, REASON_MAX);
		return EXIT_USAGE;
	}
	if (vault_resolve(vault_arg, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault reidentify: vault path too long: re-identification must be audited\n", stderr);
		return 1;
	}
	if (vault_present(dir, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault reidentify: %s (re-identification must be audited)\n", why);
		return 1;
	}
	/* a vault, not any folder with an audit/ in it: the record must land
	 * in the log its auditors verify */
	if (vault_check(dir, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault reidentify: %s: not a usable vault (%s): re-identification must be audited\n",
		        dir, why);
		return 1;
	}
	/* opened first: nothing is re-identified when its record cannot be
	 * written (a missing or emptied log: audit_open) */
	if (audit_open(dir, &au) != ERR_OK) {
		fprintf(stderr, "dicomvault reidentify: cannot open the audit log in %s: nothing re-identified\n", dir);
		return 1;
	}
	memset(&ro, 0, sizeof ro);
	ro.bulk_threshold = DCM_DEFAULT_BULK;
	f = cmd_read_file(in, &src, &ro);
	if (f == NULL) {
		audit_close(au);
		return 1;
	}
	have_src = true;
	rc = deid_reidentify(f, key, cert, &restored, why, sizeof why);
	if (rc == ERR_OK) {
		if (dcm_ds_get_cstr(&f->ds, 0x0020000D, study, sizeof study) != ERR_OK)
			study[0] = 0;
		if (dcm_ds_get_cstr(&f->ds, 0x00080018, sop, sizeof sop) != ERR_OK)
			sop[0] = 0;
		rc = cmd_write_dicom(f, out, true, why, sizeof why);
	}
	snprintf(what, sizeof what, "%s (%u attributes restored)", reason, restored);
	cmd_operator_rec(&rec, AUDIT_REIDENTIFY, rc == ERR_OK ? AUDIT_SUCCESS : AUDIT_FAILURE, rc == ERR_OK ? what : why);
	rec.objects.study_uid = study[0] ? study : NULL;
	rec.objects.sop_uid = sop[0] ? sop : NULL;
	/* no vault key here (the escrow's): the next signing writer's
	 * checkpoint covers the record */
	if (audit_append(au, &rec) != ERR_OK) {
		fprintf(stderr, "dicomvault reidentify: cannot write the audit record in %s: output removed\n", dir);
		if (rc == ERR_OK)
			unlink(out);
		goto out;
	}
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault reidentify: %s: %s\n", in, why[0] ? why : err_str(rc));
		goto out;
	}
	if (json) {
		printf("{\"restored\":%u,\"out\":", restored);
		cmd_json_str(out);
		printf(",\"study\":");
		cmd_json_str(study);
		printf(",\"sop_instance\":");
		cmd_json_str(sop);
		printf("}\n");
	} else {
		printf("reidentify: %u attribute%s restored into %s\n", restored, restored == 1 ? "" : "s", out);
	}
	rcode = 0;
out:
	audit_close(au);
	dcm_file_free(f);
	if (have_src)
		src_close(&src);
	return rcode;
}
