/* x509.h: TLS certificates for the vault's listeners, with GnuTLS (the one
 * TLS library of dicomvault). Layer: crypto. */
#ifndef DICOMVAULT_X509_H
#define DICOMVAULT_X509_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

/* A self-signed ECDSA P-256 server certificate for localhost and
 * 127.0.0.1, valid for days days; PEM certificate and PEM private key. */
WUR enum err x509_self_signed(unsigned days, struct wbuf *cert_pem, struct wbuf *key_pem);
/* SHA-256 fingerprint of a PEM certificate as "AA:BB:..." (95 chars + NUL). */
WUR enum err x509_fingerprint(const uint8_t *pem, size_t n, char out[96]);
/* A PEM certificate or key longer than this is refused. */
#define X509_PEM_MAX (1u << 20)
/* Whether a PEM certificate (the first of a chain) and PEM private key
 * can serve TLS: the key parses (PKCS#1, PKCS#8 or SEC1, unencrypted),
 * is the certificate's, gives 112 bits of security or more (RSA 2048,
 * ECDSA P-256, Ed25519; no DSA; no curve under 256 bits, which TLS 1.3
 * cannot sign with), and the certificate's signature is one
 * GnuTLS holds secure for certificates (no MD5 or SHA-1). ERR_PARSE or
 * ERR_DENIED with why saying which; *expires: the certificate's notAfter
 * ((time_t)-1 if unknown), for the caller to judge. */
WUR enum err x509_check_pair(const uint8_t *cert, size_t certlen, const uint8_t *key, size_t keylen,
                             time_t *expires, char *why, size_t whylen);

#endif
