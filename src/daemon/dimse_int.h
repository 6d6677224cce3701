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
	/* the command whose data set is being received */
	bool in_data;
	uint8_t data_pcid;
	struct dimse_cmd rq;
	struct dimse_store *st;
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

#endif
