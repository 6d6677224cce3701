/* dimse_srv.h: the DICOM network listener of `dicomvault serve` (SPEC
 * section 4, issue 5): DICOM-TLS (PS3.15 Annex B, TLS 1.3 only) with a
 * client certificate required, checked against the [peer "AE"] that the
 * A-ASSOCIATE-RQ names (fingerprint or CA); optionally a plain-TCP
 * listener (warned about at start). One thread per association, ARTIM and
 * idle timeouts, TCP_NODELAY on every socket; the upper layer is
 * proto/ul.c, the services are daemon/dimse_svc.c. See
 * docs/internals/dimse.md. Layer: daemon. */
#ifndef DICOMVAULT_DIMSE_SRV_H
#define DICOMVAULT_DIMSE_SRV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"

struct audit;
struct auth;
struct vault;
struct peers;
struct access_collections;
struct jwt_verifier;

#define DIMSE_SRV_DEFAULT_LISTEN "127.0.0.1:2762"
#define DIMSE_SRV_DEFAULT_AE     "DICOMVAULT"

struct dimse_srv_opts {
	const char *listen;               /* DICOM-TLS HOST:PORT; NULL: none (plain_listen only) */
	const char *plain_listen;         /* plain TCP HOST:PORT, or NULL: none */
	const char *ae;                   /* our AE title */
	const uint8_t *cert_pem;          /* server certificate chain, PEM (copied) */
	size_t cert_len;
	const struct secret *key_pem;     /* its private key (copied) */
	const struct peers *peers;        /* borrowed; must outlive the server */
	const struct access_collections *colls;  /* borrowed; may be NULL */
	struct vault *vault;              /* borrowed (ix_lock set) */
	struct audit *audit;              /* borrowed */
	struct auth *auth;                /* borrowed: checks the API token of a user identity; NULL: none accepted */
	const struct jwt_verifier *jwt;   /* borrowed: checks a JWT user identity; NULL: JWTs refused */
	unsigned artim_ms;                /* 0: UL_ARTIM_SECONDS */
	unsigned idle_ms;                 /* an established association silent this long is aborted; 0: 300 s */
	unsigned max_assoc;               /* at once; 0: 32 */
	uint32_t recv_max;                /* maximum PDU length we advertise; 0: UL_RECV_MAX_DEFAULT */
	uint32_t max_find;                /* matches one C-FIND answers; 0: DIMSE_FIND_MATCHES_DEFAULT */
	unsigned stall_ms;                /* an operation we asked for that only gets pending responses
	                                   * without progress this long is aborted; 0: DIMSE_STALL_MS_DEFAULT */
	/* After each C-STORE (answered or not): its SOP Instance UID (as the
	 * command said), the status sent (0000H: stored, existed: identical
	 * bytes were there already) and the error comment; called on the
	 * association's thread before the C-STORE-RSP is sent. NULL: none. */
	void (*on_store)(void *ctx, const char *sop_uid, uint16_t status, bool existed, const char *comment);
	void *on_store_ctx;
	/* Before a C-STORE is stored (with on_store_ctx): false refuses it
	 * with 0124H, "Not asked for" (import: only what the C-MOVE under way
	 * asked for). NULL: every store the peer's rights allow. */
	bool (*store_wanted)(void *ctx, const char *study_uid, const char *sop_uid);
	/* C-STOREs go to whichever collection the [collection] rules choose
	 * (import --from); false: only the peer's own, or one a calling_ae
	 * rule routes it to (serve) */
	bool any_collection;
};

struct dimse_srv;

struct ini;
/* *o from dicomvault.conf's [dicom]: listen (else DIMSE_SRV_DEFAULT_LISTEN),
 * plain_listen, ae_title (else DIMSE_SRV_DEFAULT_AE), artim and
 * idle_timeout (seconds, 1..86400), max_associations (1..1000), max_pdu
 * (UL_PEER_MIN_MAX..UL_RECV_MAX_CAP); every other field zeroed. A bad
 * value: ERR_PARSE, why names the key and its range. */
WUR enum err dimse_srv_opts_conf(const struct ini *conf, struct dimse_srv_opts *o, char *why, size_t whylen);
/* Reads the peers' CA files (relative to the vault), binds and starts
 * accepting in a thread of its own. On failure why says what went wrong. */
WUR enum err dimse_srv_start(const struct dimse_srv_opts *o, struct dimse_srv **out, char *why, size_t whylen);
/* The bound TLS port (the real one when 0 was asked for); the plain one. */
uint16_t dimse_srv_port(const struct dimse_srv *s);
uint16_t dimse_srv_plain_port(const struct dimse_srv *s);
/* Our AE title. */
const char *dimse_srv_ae(const struct dimse_srv *s);
/* Stops accepting, aborts every association (their sockets are shut
 * down), waits for their threads and frees; takes NULL. */
void dimse_srv_stop(struct dimse_srv *s);

#endif

/* ---- as `dicomvault serve` starts it ---- */

/* Whether the configuration needs the DICOM listener: a [peer] section or
 * a [dicom] plain_listen. `serve` always starts it (SPEC section 2: on
 * [dicom] listen, 127.0.0.1:2762 by default); when it cannot, that is
 * fatal if the listener is needed (or --dicom names it), else a warning
 * (no association could be accepted without a peer; `dicomvault init`
 * writes the default listen into every vault, so that alone says
 * nothing). */
struct ini;
bool dimse_srv_needed(const struct ini *conf);

/* A connection without an accepted association, as the listener weighs
 * it when it must evict one at capacity. */
struct dimse_evict_cand {
	unsigned waiting_from_host;   /* such connections from its host, itself included */
	bool tls_done;                /* its TLS handshake is done */
	int64_t since_ms;             /* accepted (monotonic) */
};
/* The one to evict among n (n > 0): of the host holding the most such
 * connections when that is more than flood_at (a flood from one address
 * churns its own; a peer's few parallel associations, or several peers
 * behind one address, are not a flood), else, and among a flood's, one
 * whose handshake is not done, then the oldest. */
size_t dimse_evict_choose(const struct dimse_evict_cand *c, size_t n, unsigned flood_at);

/* Reads [dicom] (listen = HOST:PORT, default 127.0.0.1:2762, overridden by
 * listen_override; ae_title, default DICOMVAULT; plain_listen = HOST:PORT,
 * a plain-TCP listener, warned about; artim and idle_timeout in seconds;
 * max_associations) and starts the server with the vault's peers and
 * collections (v->peers, v->colls: v must outlive the server) and its TLS
 * certificate and key. Prints nothing; *desc gets a line for
 * the operator ("DICOM-TLS 127.0.0.1:2762 AE DICOMVAULT, N peers"). auth
 * (borrowed) checks the API tokens of User Identity Negotiation. With
 * [auth] jwt_key = FILE (a PEM public key or certificate, relative to the
 * vault), jwt_issuer = ISS, jwt_audience (default: the AE title) and
 * jwt_max_lifetime (seconds, default 3600), JSON Web Tokens of that
 * issuer are accepted as user identities too (jwt.h). */
WUR enum err dimse_srv_start_conf(struct vault *v, const char *listen_override, const uint8_t *cert_pem,
                                  size_t cert_len, const struct secret *key_pem, struct audit *au,
                                  struct auth *auth, struct dimse_srv **out, char *desc, size_t desclen, char *why, size_t whylen);
