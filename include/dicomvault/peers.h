/* peers.h: the DICOM peers of dicomvault.conf (SPEC section 4): one
 * `[peer "AE"]` section per remote application entity, binding its AE
 * title to a client certificate (`fingerprint = AA:BB:...`, the SHA-256
 * of the certificate as `openssl x509 -fingerprint -sha256` prints it, or
 * `ca = FILE`, a CA that must have issued it), where it listens (`host`,
 * `port`: needed only as a C-MOVE destination), the collection it stores
 * into (`collection`, default "default") and what it may do (`rights =
 * echo, store, find, move, get`, any subset; none when absent) and
 * whether an association must name a vault user (`require_user = yes`:
 * User Identity Negotiation with an API token; default no) and whether
 * it speaks DICOM-TLS (`tls = no`: plain TCP, for old archives: the
 * associations `dicomvault import` requests to it, and the only peers the
 * plain-TCP listener takes, from the addresses of `host` when given; then
 * fingerprint and ca are optional, and a peer with neither is never
 * accepted on the DICOM-TLS listener).
 * Pure: a
 * parsed configuration in, a table or an error with its line out; the
 * daemon reads the CA files. Layer: proto. */
#ifndef DICOMVAULT_PEERS_H
#define DICOMVAULT_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/pdu.h"

#define PEER_RIGHT_ECHO  (1u << 0)
#define PEER_RIGHT_STORE (1u << 1)
#define PEER_RIGHT_FIND  (1u << 2)
#define PEER_RIGHT_MOVE  (1u << 3)
#define PEER_RIGHT_GET   (1u << 4)

#define PEERS_MAX          1000u    /* [peer] sections */
#define PEER_HOST_MAX      255u
#define PEER_PATH_MAX      1024u    /* ca = FILE, as written */
#define PEER_COLLECTION_MAX 64u

struct peer {
	char ae[PDU_AE_MAX + 1];
	bool has_fp;                      /* fingerprint given (else ca) */
	uint8_t fp[32];
	char ca[PEER_PATH_MAX + 1];       /* "" when fingerprint is given */
	char host[PEER_HOST_MAX + 1];     /* "" when not given */
	uint16_t port;                    /* 0 when not given */
	char collection[PEER_COLLECTION_MAX + 1];
	unsigned rights;                  /* PEER_RIGHT_* */
	bool require_user;                /* require_user = yes: a user identity is required */
	bool plain;                       /* tls = no: import talks to it over plain TCP */
	unsigned line;                    /* of the section header */
};

struct peers {
	struct peer *p;
	size_t n;
};

struct ini;

/* Every [peer "AE"] section of conf. Refused (ERR_PARSE, the line and the
 * reason in why): an invalid or repeated AE title, an unknown key, both or
 * neither of fingerprint and ca, a malformed fingerprint, host without
 * port or the reverse, a port outside 1..65535, a bad collection name, an
 * unknown right. More than PEERS_MAX sections: ERR_LIMIT. */
WUR enum err peers_load(const struct ini *conf, struct peers **out, char *why, size_t whylen);
void peers_free(struct peers *p);
/* The peer of an AE title (exact, as the A-ASSOCIATE-RQ carries it once
 * trimmed); NULL if none. */
const struct peer *peers_find(const struct peers *p, const char *ae);
/* "AA:BB:..." (32 hex pairs, either case, colons required) to bytes. */
WUR enum err peers_fingerprint_parse(const char *s, uint8_t out[32]);
/* Bytes to "AA:BB:..." (95 characters and a NUL). */
void peers_fingerprint_format(const uint8_t fp[32], char out[96]);
/* "echo, store" to PEER_RIGHT_* bits; ERR_PARSE for an unknown name. */
WUR enum err peers_rights_parse(const char *s, unsigned *out);
/* The name of one right ("echo"...). */
const char *peers_right_name(unsigned right);

#endif
