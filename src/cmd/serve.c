/* serve.c: `dicomvault serve`, the server (SPEC sections 2 and 3). Secrets
 * come from files (--passphrase-file) or stdin, never argv. Layer: cmd. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "dicomvault/http.h"
#include "dicomvault/serve.h"
#include "dicomvault/vault.h"

static const char serve_usage[] =
	"usage: dicomvault serve [--vault DIR] [--http HOST:PORT] [--dicom HOST:PORT] [--passphrase-file F] [--json]\n"
	"Run the server: HTTPS (TLS 1.3 only) for the API, DICOMweb and the web viewer,\nDICOM-TLS for the DIMSE services,\n"
	"until SIGINT or SIGTERM.\n"
	"  --vault DIR          the vault directory (default $DICOMVAULT_HOME, else ./vault)\n"
	"  --http HOST:PORT     where to listen (default [http] listen of dicomvault.conf,\n"
	"                       else 127.0.0.1:8443; [IPV6]:PORT for IPv6; port 0: any)\n"
	"  --dicom HOST:PORT    DICOM-TLS listener (default [dicom] listen, else\n"
	"                       127.0.0.1:2762), always started; without a [peer]\n"
	"                       section and without --dicom, an address it cannot\n"
	"                       listen on is a warning, not an error\n"
	"  --passphrase-file F  the master key passphrase (mode 0600), for a passphrase\n"
	"                       vault; default: read from stdin\n"
	"  --json               once listening, print {\"https\": URL, \"dicom_port\": PORT,\n"
	"                       \"vault\": DIR} as one line instead of the text lines\n";

/* OPT's listen address has the form HOST:PORT or [IPV6]:PORT, else a usage
 * error (SPEC 2: exit 2) before the vault is opened; a HOST that does not
 * resolve or an address in use is found when serve listens (exit 1). */
static bool listen_arg(const char *opt, const char *s)
{
	char host[HTTP_HOST_MAX + 1], port[6];

	if (s == NULL || http_listen_split(s, host, port) == ERR_OK)
		return true;
	fprintf(stderr, "dicomvault serve: %s: not HOST:PORT or [IPV6]:PORT (PORT 0 to 65535): '%.300s'\n", opt, s);
	return false;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o;
	char dir[VAULT_PATH_MAX];
	const char *vault = NULL;
	const struct args_opt opts[] = {
		{ "--vault", .value = &vault },
		{ "--http", .value = &o.listen },
		{ "--dicom", .value = &o.dicom_listen },
		{ "--passphrase-file", .value = &o.passphrase_file },
		{ "--json", .flag = &o.json },
		{ "--passphrase", .refused = "--passphrase-file" },
		{ NULL }
	};
	size_t npos = 0;
	int rc;

	memset(&o, 0, sizeof o);
	rc = cmd_args("serve", serve_usage, argc, argv, 1, opts, NULL, 0, &npos);
	if (rc != CMD_ARGS_GO)
		return rc;
	if (!listen_arg("--http", o.listen) || !listen_arg("--dicom", o.dicom_listen))
		return EXIT_USAGE;
	if (vault_resolve(vault, dir, sizeof dir) != ERR_OK) {
		fputs("dicomvault serve: vault path too long\n", stderr);
		return EXIT_USAGE;
	}
	o.vault_dir = dir;
	o.operator_name = cmd_operator();
	return serve_run(&o);
}
