/* cms.h: CMS EnvelopedData (RFC 5652) for the re-identification escrow of
 * PS3.15 E.1.2 (Encrypted Attributes Sequence): content encrypted with
 * AES-256-CBC under a random key transported to each recipient certificate
 * (RSA key transport or EC key agreement), as `openssl cms -encrypt` and
 * DICOM toolkits make it. Built on OpenSSL's libcrypto, used for this and
 * nothing else. Layer: crypto. */
#ifndef DICOMVAULT_CMS_H
#define DICOMVAULT_CMS_H

#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/wbuf.h"

#define CMS_MAX_RECIPIENTS 16u
#define CMS_MAX_PEM        (256u * 1024)

struct cms_recipients;

/* The certificates of a PEM file (1 to CMS_MAX_RECIPIENTS). ERR_PARSE /
 * ERR_NOTFOUND / ERR_LIMIT with the reason in why. */
WUR enum err cms_recipients_load(const char *pem_path, struct cms_recipients **out, char *why, size_t whylen);
void cms_recipients_free(struct cms_recipients *r);

/* DER ContentInfo of an EnvelopedData holding p, appended to out. */
WUR enum err cms_envelope(const struct cms_recipients *r, const uint8_t *p, size_t n, struct wbuf *out);

/* Decrypts a DER EnvelopedData with the private key in key_path (PEM, mode
 * 0600, read as a secret and wiped) and, if given, its certificate (to pick
 * the recipient; without it every recipient is tried). The content is
 * appended to out. ERR_AUTH when the key is not a recipient or the data
 * was changed; ERR_PARSE for a malformed structure; reason in why. */
WUR enum err cms_open(const char *key_path, const char *cert_path, const uint8_t *der, size_t n, struct wbuf *out,
                      char *why, size_t whylen);

#endif
