/* http.h: the HTTPS listener of `dicomvault serve` (SPEC section 3): one
 * TLS 1.3-only socket (libmicrohttpd over GnuTLS, a thread per
 * connection) serving the login flow, /healthz and the login page; every
 * other path needs a session. Request limits are in base/limits.h
 * (HTTP_*). See docs/internals/http.md. Layer: daemon. */
#ifndef DICOMVAULT_HTTP_H
#define DICOMVAULT_HTTP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"
#include "dicomvault/limits.h"

struct audit;
struct auth;
struct vault;

/* "HOST:PORT" or "[IPV6]:PORT" (PORT 0..65535; 0: any free port) to a
 * socket address. HOST may be a name (the first address it resolves to). */
WUR enum err http_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Its first step, pure (fuzz/http_fuzz.c): HOST (without the brackets,
 * 1 to HTTP_HOST_MAX bytes; no ':' unless it was bracketed) and PORT (1 to
 * 5 digits, at most 65535). ERR_PARSE otherwise, host and port "". */
WUR enum err http_listen_split(const char *s, char host[HTTP_HOST_MAX + 1], char port[6]);

struct http_opts {
	const char *listen;               /* HOST:PORT */
	const uint8_t *cert_pem;          /* certificate chain, PEM (copied) */
	size_t cert_len;
	const struct secret *key_pem;     /* private key, PEM (copied) */
	struct auth *auth;                /* borrowed; must outlive the server */
	/* DICOMweb (NULL vault: not served). Borrowed; ix_lock serialises
	 * every use of vault->ix with the login service. */
	struct vault *vault;
	pthread_mutex_t *ix_lock;
	struct audit *audit;
	/* the largest request body a streaming route (STOW-RS) takes, in
	 * bytes, by its Content-Length (413 beyond); 0: HTTP_MAX_UPLOAD */
	uint64_t max_upload;
	/* the URL clients reach the server at ([http] public_url: behind a
	 * proxy, or bound to a wildcard address), the base of every absolute
	 * URL in answers (RetrieveURL, BulkDataURI); NULL: the bound address's,
	 * or path-absolute URLs when that is a wildcard (0.0.0.0, ::), which
	 * no client can reach. Checked by http_public_url_ok. */
	const char *public_url;
	/* [http] trusted_proxies: the addresses of reverse proxies in front
	 * (comma-separated, at most HTTP_PROXIES_MAX; http_proxies_ok). A
	 * request from one of them is the client's named last in its
	 * X-Forwarded-For (the address the proxy appended): what the audit
	 * records and the lockout counts, which would otherwise count every
	 * client as the proxy. NULL: none; X-Forwarded-For is then ignored. */
	const char *trusted_proxies;
};

#define HTTP_PROXIES_MAX 8u
/* Whether s is a list of at most HTTP_PROXIES_MAX IPv4 or IPv6 addresses
 * separated by commas (spaces around them allowed). */
bool http_proxies_ok(const char *s);

/* An http:// or https:// URL of at most HTTP_PUBLIC_URL_MAX bytes with a
 * host, and a path prefix at most: no query, fragment, space, quote or
 * control character. */
#define HTTP_PUBLIC_URL_MAX 256u
bool http_public_url_ok(const char *s);

struct http_server;

/* Binds, loads the certificate and key and starts serving in threads of
 * its own. On failure why says what went wrong. */
WUR enum err http_server_start(const struct http_opts *o, struct http_server **out, char *why, size_t whylen);
/* The bound port (the real one when 0 was asked for). */
uint16_t http_server_port(const struct http_server *s);
/* "https://HOST:PORT/" of the bound address. */
const char *http_server_url(const struct http_server *s);
/* Closes the socket and every connection, waits for their threads and
 * frees; takes NULL. */
void http_server_stop(struct http_server *s);

#endif
