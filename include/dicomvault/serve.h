/* serve.h: `dicomvault serve`, the server process (SPEC sections 3 and 5):
 * opens the vault, starts the HTTPS listener and runs until SIGINT or
 * SIGTERM. Layer: daemon. */
#ifndef DICOMVAULT_SERVE_H
#define DICOMVAULT_SERVE_H

#include <stdbool.h>

struct serve_opts {
	const char *vault_dir;        /* the vault (resolved by the caller) */
	const char *listen;           /* --http HOST:PORT; NULL: [http] listen, else 127.0.0.1:8443 */
	const char *passphrase_file;  /* for a passphrase vault; NULL: read stdin */
	const char *dicom_listen;     /* --dicom HOST:PORT (DICOM-TLS); NULL: [dicom] listen if
	                               * configured, else 127.0.0.1:2762 */
	bool json;                    /* --json: the listeners as one JSON line */
	const char *operator_name;    /* who runs it (the config-change record's user), or NULL */
};

/* Runs the server. Prints "dicomvault: serving https://HOST:PORT/" on
 * stdout once it listens (with json: one line {"https": URL, "dicom_port":
 * PORT or null, "vault": DIR}); returns 0 after a clean stop on SIGINT or
 * SIGTERM, 1 when it cannot start (the reason is on stderr). */
int serve_run(const struct serve_opts *o);

#endif
