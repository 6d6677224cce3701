/* dimse_int.h: what the DICOM listener (dimse_srv.c) and the services
 * (dimse_svc.c) share: one association's state. Layer: daemon. */
#ifndef DICOMVAULT_DIMSE_INT_H
#define DICOMVAULT_DIMSE_INT_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/audit.h"
#include "dicomvault/dimse.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/peers.h"
#include "dicomvault/ul.h"

#define DIMSE_AUDIT_ASSOC "dicom-association"
#define DIMSE_AUDIT_ECHO  "dicom-echo"

struct dimse_store;   /* dimse_svc.c: a C-STORE being received */
struct dimse_find;    /* dimse_svc.c: a C-FIND identifier being received */

struct dimse_assoc {
	const struct dimse_srv_opts *o;
	struct ul u;
	int fd;
	gnutls_session_t tls;          /* NULL: plain TCP */
	const struct peer *peer;       /* set once the association is accepted */
	char calling[PDU_AE_MAX + 1];
	char addr[80];                 /* "IP:PORT" */
	char fp[96];                   /* client certificate SHA-256, "" for plain TCP */
	bool failed;                   /* a local error: close */
	uint8_t *rx;                   /* bytes read, rx_off of rx_n fed to the UL so far */
	size_t rx_n, rx_off;
	/* the command whose data set is being received */
	bool in_data;
	uint8_t data_pcid;
	struct dimse_cmd rq;
	struct dimse_store *st;
	struct dimse_find *fq;
};

/* The actor of audit records about this association. */
void dimse_assoc_actor(const struct dimse_assoc *a, struct audit_actor *act);
/* Appends a record (action, outcome, reason; objects may be NULL);
 * ERR_IO (logged) when it could not be written. */
enum err dimse_assoc_audit(const struct dimse_assoc *a, const char *action, enum audit_outcome out, const char *reason,
                       const struct audit_objects *obj);
/* Builds and queues a command set and sends what u.tx holds. */
WUR enum err dimse_assoc_send_cmd(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c);
/* Sends what u.tx holds. */
WUR enum err dimse_assoc_flush(struct dimse_assoc *a);
/* Between the responses of a long operation (C-FIND): reads what the peer
 * has sent, without waiting, and hands each upper layer event to fn (a
 * C-CANCEL-RQ, or whatever else came). ERR_OK: the association goes on;
 * ERR_IO: it is over (closed, aborted, or a local error): stop. */
WUR enum err dimse_assoc_poll(struct dimse_assoc *a,
                              void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx);

/* ---- services (dimse_svc.c) ---- */
/* The acceptor policy for a peer: only the services its rights allow. */
void dimse_svc_policy(const struct peer *pe, struct ul_policy *pol);
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

#endif
