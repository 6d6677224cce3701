/* init.c: `dicomvault init`, creating a vault (SPEC section 1 and 2).
 * Secrets come from files (--password-file, --passphrase-file), never
 * argv. Layer: cmd. */
#include <qrencode.h>
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
	"  --json               machine-readable output\n";

/* The otpauth URI as a QR code of half blocks, two modules a character. */
static void print_qr(const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int x, y, n;

	if (q == NULL)
		return;
	n = q->width;
	for (y = -2; y < n + 2; y += 2) {
		for (x = -2; x < n + 2; x++) {
			int top = y >= 0 && y < n && x >= 0 && x < n && (q->data[y * n + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < n && x >= 0 && x < n && (q->data[(y + 1) * n + x] & 1);
			/* dark modules are drawn as spaces on a light background */
			fputs(top ? (bot ? " " : "\xe2\x96\x84") : (bot ? "\xe2\x96\x80" : "\xe2\x96\x88"), stdout);
		}
		fputc('\n', stdout);
	}
	QRcode_free(q);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

int cmd_init(int argc, char **argv)
{
	struct vault_init_opts o;
	struct vault_created res;
	char dir[VAULT_PATH_MAX], why[512];
	const char *vault = NULL;
	bool json = false;
	int i;

	memset(&o, 0, sizeof o);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (strcmp(a, "--help") == 0) {
			fputs(init_usage, stdout);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		} else if (strcmp(a, "--vault") == 0) {
			dst = &vault;
		} else if (strcmp(a, "--admin") == 0) {
			dst = &o.admin;
		} else if (strcmp(a, "--password-file") == 0) {
			dst = &o.password_file;
		} else if (strcmp(a, "--passphrase-file") == 0) {
			dst = &o.passphrase_file;
		} else if (strcmp(a, "--tls-cert") == 0) {
			dst = &o.tls_cert;
		} else if (strcmp(a, "--tls-key") == 0) {
			dst = &o.tls_key;
		} else if (strcmp(a, "--password") == 0 || strcmp(a, "--passphrase") == 0) {
			fprintf(stderr, "dicomvault init: secrets are never taken from the command line; use %s-file\n", a);
			return EXIT_USAGE;
		}
		if (dst == NULL || i + 1 >= argc) {
			fprintf(stderr, "dicomvault init: %s '%s'\n%s", dst ? "missing value for" : "unknown option", a, init_usage);
			return EXIT_USAGE;
		}
		*dst = argv[++i];
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
		json_str(dir);
		printf(",\"admin\":");
		json_str(o.admin ? o.admin : "admin");
		if (res.password) {
			printf(",\"password\":");
			json_str(secret_cstr(res.password));
		}
		printf(",\"totp_secret\":");
		json_str(secret_cstr(res.totp_b32));
		printf(",\"otpauth_uri\":");
		json_str(secret_cstr(res.totp_uri));
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
			print_qr(secret_cstr(res.totp_uri));
		}
	}
	fflush(stdout);
	vault_created_fini(&res);
	return 0;
}
