/* dimse_int.h: what the DICOM listener (dimse_srv.c) and the services
 * (dimse_svc.c) share: one association's state. Layer: daemon. */
#ifndef DICOMVAULT_DIMSE_INT_H
#define DICOMVAULT_DIMSE_INT_H

#include <stdatomic.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/dimse.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/peers.h"
#include "dicomvault/ul.h"

#define DIMSE_AUDIT_ASSOC "dicom-association"
#define DIMSE_AUDIT_ECHO  "dicom-echo"

struct dcm_file;
struct dimse_store;   /* dimse_svc.c: a C-STORE being received */

/* dimse_find.c: the identifier of a C-FIND or C-GET being received */
struct dimse_find {
	struct wbuf id;            /* the identifier as received */
	bool too_big;
};

struct dimse_assoc {
	const struct dimse_srv_opts *o;
	struct dimse_srv *srv;
	bool u_init;                   /* u was initialised (dimse_assoc_close) */
	struct ul u;
	int fd;
	gnutls_session_t tls;          /* NULL: plain TCP */
	const struct peer *peer;       /* set once the association is accepted */
	atomic_bool *admitted;         /* the listener's flag for this connection, set then too (or NULL) */
	char calling[PDU_AE_MAX + 1];
	char addr[80];                 /* "IP:PORT" */
	struct sockaddr_storage peer_ss;  /* the peer's address (accepted connections) */
	char fp[96];                   /* client certificate SHA-256, "" for plain TCP */
	bool failed;                   /* a local error: close */
	bool at_capacity;              /* taken over the limit: its RQ is answered A-ASSOCIATE-RJ
	                                * (transient, local limit exceeded), never accepted */
	uint8_t *rx;                   /* bytes read, rx_off of rx_n fed to the UL so far */
	size_t rx_n, rx_off;
	/* TLS: the socket read ahead (dimse_srv.c, tls_pull), rb_off of rb_n
	 * handed to GnuTLS so far */
	uint8_t *rb;
	size_t rb_n, rb_off;
	/* the command whose data set is being received */
	bool in_data;
	uint8_t data_pcid;
	struct dimse_cmd rq;
	struct dimse_store *st;
	struct dimse_find *fq;
	uint16_t next_msg_id;          /* of the requests we send (C-GET sub-operations) */
	/* User Identity Negotiation (PS3.7 D.3.3.7): the vault user this
	 * association acts for, from an API token checked at the RQ */
	bool as_user;
	bool via_jwt;                  /* the identity was a JWT (else an API token) */
	int64_t jwt_exp;               /* its "exp": checked again at each operation */
	struct auth_session user;
	char session[AUDIT_SESSION_REF_LEN];   /* audit_session_ref of the API token or JWT, as HTTPS
	                                        * records name a token's session */
	char ua[128];                  /* "AE CALLING": the peer in the audit records of the user; or
	                                * the user name a type 1 identity claims (not verified) */
	bool claimed;                  /* a type 1 identity, noted in ua: the peer still acts */
	struct access_grant *grants;   /* the user's grants, read by dimse_user_load at each operation */
	size_t ngrants;
};

/* The actor of audit records about this association. */
void dimse_assoc_actor(const struct dimse_assoc *a, struct audit_actor *act);
/* Appends a record (action, outcome, reason; objects may be NULL);
 * ERR_IO (logged) when it could not be written. */
enum err dimse_assoc_audit(const struct dimse_assoc *a, const char *action, enum audit_outcome out, const char *reason,
                       const struct audit_objects *obj);
/* The same in two halves: written, its fsync started; *ticket for
 * audit_wait (0: nothing to wait for, as without an audit log). */
enum err dimse_assoc_audit_start(const struct dimse_assoc *a, const char *action, enum audit_outcome out,
                                 const char *reason, const struct audit_objects *obj, uint64_t *ticket);
/* With a user: checks the API token again (revoked or expired since the
 * association began: ERR_AUTH) and reads the user's grants in force now
 * (a->grants), for the operation that begins. ERR_AUTH: the token or the
 * account is no longer valid; another error: they cannot be read.
 * Without a user: ERR_OK. */
WUR enum err dimse_user_load(struct dimse_assoc *a);
/* Whether the association may do act on an object (fields may be NULL):
 * always without a user; with one, when the token's scope allows it and
 * the grants loaded decide ACCESS_YES (de-identified access is not offered
 * over DIMSE). Pure: no lock taken (callable from a query callback). */
bool dimse_user_may(const struct dimse_assoc *a, enum access_action act, const char *collection,
                    const char *study_uid, const uint8_t *patient);
/* Builds and queues a command set and sends what u.tx holds. ERR_PARSE:
 * c cannot be built (dimse_cmd_build), nothing was queued or sent. */
WUR enum err dimse_assoc_send_cmd(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c);
/* Sends what u.tx holds. */
WUR enum err dimse_assoc_flush(struct dimse_assoc *a);
/* Between the responses of a long operation (C-FIND): reads what the peer
 * has sent, without waiting, and hands each upper layer event to fn (a
 * C-CANCEL-RQ, or whatever else came). ERR_OK: the association goes on;
 * ERR_IO: it is over (closed, aborted, or a local error): stop. */
WUR enum err dimse_assoc_poll(struct dimse_assoc *a,
                              void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx);

/* The same, waiting up to the idle timeout for something to read. ERR_OK:
 * what came was handed to fn (perhaps no whole event yet); ERR_AGAIN:
 * nothing came in time; ERR_IO: the association is over. */
WUR enum err dimse_assoc_wait(struct dimse_assoc *a,
                              void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx);
/* The same, waiting up to ms (an SCU that also watches for a cancel), and
 * the idle timeout that applies to a (milliseconds). */
WUR enum err dimse_assoc_wait_ms(struct dimse_assoc *a, unsigned ms,
                                 void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx);
unsigned dimse_assoc_idle_ms(const struct dimse_assoc *a);
/* The ARTIM timeout of o ([dicom] artim, else UL_ARTIM_SECONDS), in
 * milliseconds: awaiting an RQ, an AC, a release, a close, a handshake. */
unsigned dimse_artim_ms(const struct dimse_srv_opts *o);

/* A DICOM-TLS association we request (C-MOVE sub-operations): connects
 * to dest's host and port (ARTIM as the connect and handshake timeout),
 * presents the server's TLS certificate, checks dest's certificate as an
 * incoming one is checked (fingerprint or CA), sends rq and waits for the
 * A-ASSOCIATE-AC. ERR_DENIED: rejected; ERR_IO: no connection; why says
 * more. */
WUR enum err dimse_assoc_connect(struct dimse_assoc *from, const struct peer *dest, const struct pdu_assoc *rq,
                                 struct dimse_assoc **out, char *why, size_t whylen);
/* The same from a listener (`dicomvault import`), over plain TCP when
 * plain (the peer's `tls = no`; no certificate then). */
WUR enum err dimse_srv_connect(struct dimse_srv *s, const struct peer *dest, bool plain, const struct pdu_assoc *rq,
                               struct dimse_assoc **out, char *why, size_t whylen);
/* Releases (waiting up to ARTIM for the A-RELEASE-RP) and frees; takes NULL. */
void dimse_assoc_close(struct dimse_assoc *a);

/* ---- services (dimse_svc.c) ---- */
#define DIMSE_SVC_MAX_SYN 7
/* The acceptor policy for a peer: only the services its rights allow
 * (syn: room for the table pol points to, which must outlive its use). */
void dimse_svc_policy(const struct peer *pe, struct ul_syntax syn[DIMSE_SVC_MAX_SYN], struct ul_policy *pol);
/* The rights (PEER_RIGHT_*) of which any one lets a peer use the
 * abstract syntax (a storage SOP class: store or get); 0 for one we do
 * not offer to anyone. */
unsigned dimse_svc_right_of(const char *abstract);
/* Whether uid is a storage SOP class of sop_classes.tsv. */
bool dimse_svc_is_storage(const char *uid);
/* A whole command set on pcid. ERR_OK: handled (answered, or a data set
 * is awaited); an error: abort the association. */
WUR enum err dimse_svc_command(struct dimse_assoc *a, uint8_t pcid, const uint8_t *p, size_t n);
/* A data set fragment. */
WUR enum err dimse_svc_data(struct dimse_assoc *a, uint8_t pcid, const uint8_t *p, size_t n, bool last);
/* The association ended: drops any unfinished operation. */
void dimse_svc_end(struct dimse_assoc *a);

/* ---- C-FIND (dimse_find.c) ---- */
#define DIMSE_FIND_PATIENT_ROOT "1.2.840.10008.5.1.4.1.2.1.1"
#define DIMSE_FIND_STUDY_ROOT   "1.2.840.10008.5.1.4.1.2.2.1"
/* Whether sop_class is one of the two query models above. */
bool dimse_find_model(const char *sop_class);
/* A C-FIND-RQ: collects its identifier (a->fq). */
WUR enum err dimse_find_begin(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c);
void dimse_find_chunk(struct dimse_assoc *a, const uint8_t *p, size_t n);
/* The identifier is whole: runs the query, answers (pending responses,
 * then the final one), audits, frees a->fq. An error: abort. */
WUR enum err dimse_find_run(struct dimse_assoc *a, uint8_t pcid);
void dimse_find_free(struct dimse_assoc *a);
/* The identifier collected in fq, in transfer syntax ts, parsed into *out
 * (the caller frees it); false when ts is unknown or it cannot be parsed. */
bool dimse_find_parse(const struct dimse_find *fq, const char *ts, struct dcm_file **out);

/* ---- C-GET (dimse_get.c) ---- */
#define DIMSE_GET_PATIENT_ROOT "1.2.840.10008.5.1.4.1.2.1.3"
#define DIMSE_GET_STUDY_ROOT   "1.2.840.10008.5.1.4.1.2.2.3"
#define DIMSE_MOVE_PATIENT_ROOT "1.2.840.10008.5.1.4.1.2.1.2"
#define DIMSE_MOVE_STUDY_ROOT   "1.2.840.10008.5.1.4.1.2.2.2"
bool dimse_get_model(const char *sop_class);
/* The File Meta Information of a stored object, as a sub-operation sends
 * it (pure: fuzz/meta_fuzz.c): the first n bytes of the object hold its
 * preamble, "DICM", the group length as the first element and the meta
 * elements (explicit VR little endian, group 0002 only); ts its Transfer
 * Syntax UID (padding trimmed, a valid UID: vr_uid_ok), *off where the
 * data set begins. ERR_AGAIN: not enough bytes yet, *need of them;
 * ERR_PARSE: not such a meta; ERR_LIMIT: longer than DIMSE_MAX_META. */
WUR enum err dimse_meta_scan(const uint8_t *p, size_t n, size_t *need, size_t *off, char ts[PDU_UID_MAX + 1]);
bool dimse_move_model(const char *sop_class);
/* The identifier of a C-GET-RQ or C-MOVE-RQ (collected by
 * dimse_find_begin/chunk) is whole: resolves it, sends the C-STORE
 * sub-operations (C-GET: on this association; C-MOVE: on one we request
 * to the Move Destination), answers (pending responses, then the final
 * one), audits, frees a->fq. An error: abort. */
WUR enum err dimse_get_run(struct dimse_assoc *a, uint8_t pcid);

#endif
