/* init.c: `dicomvault init`, creating a vault (SPEC section 1 and 2).
 * Secrets come from files (--password-file, --passphrase-file), never
 * argv. Layer: cmd. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "dicomvault/vault.h"

static const char init_usage[] =
	"usage: dicomvault init [--vault DIR] [--admin NAME] [--password-file F]\n"
	"                       [--passphrase-file F] [--tls-cert F --tls-key F] [--json]\n"
	"Create a vault: a new master key (or one derived from the passphrase in F),\n"
	"a self-signed TLS certificate for localhost (or the given one), an audit\n"
	"signing key and the first administrator with a TOTP secret.\n"
	"  --vault DIR          the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --admin NAME         the first administrator (default admin)\n"
	"  --password-file F    the administrator's password (mode 0600); default: generated and shown once\n"
	"  --passphrase-file F  derive the master key from this passphrase (Argon2id) instead of a key file\n"
	"  --tls-cert F         the HTTPS and DICOM-TLS certificate (PEM; a chain: the server's first)\n"
	"  --tls-key F          its private key (PEM, unencrypted, mode 0600): RSA of 2048 bits or more,\n"
	"                       or ECDSA P-256 or stronger\n"
	"  --json               machine-readable output\n";

int cmd_init(int argc, char **argv)
{
	struct vault_init_opts o;
	struct vault_created res;
	char dir[VAULT_PATH_MAX], why[512];
	const char *vault = NULL;
	bool json = false;
	const struct args_opt opts[] = {
		{ "--json", .flag = &json },
		{ "--vault", .value = &vault },
		{ "--admin", .value = &o.admin },
		{ "--password-file", .value = &o.password_file },
		{ "--passphrase-file", .value = &o.passphrase_file },
		{ "--tls-cert", .value = &o.tls_cert },
		{ "--tls-key", .value = &o.tls_key },
		{ "--password", .refused = "--password-file" },
		{ "--passphrase", .refused = "--passphrase-file" },
		{ NULL }
	};
	size_t npos = 0;
	int rc;

	cmd_no_sigpipe();
	memset(&o, 0, sizeof o);
	rc = cmd_args("init", init_usage, argc, argv, 1, opts, NULL, 0, &npos);
	if (rc != CMD_ARGS_GO)
		return rc;
	if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
		/* (vault_init refuses it too, as a failure: here it is the
		 * command line's mistake, exit 2) */
		fprintf(stderr, "dicomvault init: %s given without %s: they go together\n",
		        o.tls_cert ? "--tls-cert" : "--tls-key", o.tls_cert ? "--tls-key" : "--tls-cert");
		return EXIT_USAGE;
	}
	if (vault_resolve(vault, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault init: vault path too long\n", stderr);
		return EXIT_USAGE;
	}
	o.dir = dir;
	if (vault_init(&o, &res, why, sizeof why) != ERR_OK) {
		fprintf(stderr, "dicomvault init: %s\n", why);
		return 1;
	}
	if (json) {
		printf("{\"vault\":");
		cmd_json_str(dir);
		printf(",\"admin\":");
		cmd_json_str(o.admin ? o.admin : "admin");
		if (res.password) {
			printf(",\"password\":");
			cmd_json_str(secret_cstr(res.password));
		}
		printf(",\"totp_secret\":");
		cmd_json_str(secret_cstr(res.totp_b32));
		printf(",\"otpauth_uri\":");
		cmd_json_str(secret_cstr(res.totp_uri));
		printf(",\"tls_fingerprint\":\"%s\"}\n", res.fingerprint);
	} else {
		printf("Created vault %s\n\n", dir);
		printf("Administrator:   %s\n", o.admin ? o.admin : "admin");
		if (res.password)
			printf("Password:        %s   (shown once: store it now)\n", secret_cstr(res.password));
		printf("TOTP secret:     %s\n", secret_cstr(res.totp_b32));
		printf("otpauth URI:     %s\n", secret_cstr(res.totp_uri));
		printf("A code for now:  oathtool --totp -b %s\n", secret_cstr(res.totp_b32));
		printf("TLS certificate: SHA-256 %s\n", res.fingerprint);
		if (isatty(STDOUT_FILENO)) {
			printf("\nScan with an authenticator app:\n");
			cmd_print_qr(secret_cstr(res.totp_uri));
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* the administrator's TOTP secret (and password) are shown once:
		 * a vault nobody can log in to is removed, not left behind */
		vault_created_fini(&res);
		vault_remove_new(dir);
		fprintf(stderr, "dicomvault init: cannot write output (the administrator's secrets would be lost): the new "
		        "vault in %s was removed\n", dir);
		return 1;
	}
	vault_created_fini(&res);
	return 0;
}
