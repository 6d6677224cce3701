/* x509.h: TLS certificates for the vault's listeners, with GnuTLS (the one
 * TLS library of dicomvault). Layer: crypto. */
#ifndef DICOMVAULT_X509_H
#define DICOMVAULT_X509_H

#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

/* A self-signed ECDSA P-256 server certificate for localhost and
 * 127.0.0.1, valid for days days; PEM certificate and PEM private key. */
WUR enum err x509_self_signed(unsigned days, struct wbuf *cert_pem, struct wbuf *key_pem);
/* SHA-256 fingerprint of a PEM certificate as "AA:BB:..." (95 chars + NUL). */
WUR enum err x509_fingerprint(const uint8_t *pem, size_t n, char out[96]);

#endif
