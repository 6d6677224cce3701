/* dimse_scu.h: the query/retrieve SCU of `dicomvault import --from AE`
 * (SPEC sections 2 and 4, issue 5): one association we request to a
 * [peer] (DICOM-TLS with the vault's certificate, or plain TCP when the
 * peer says `tls = no`), proposing Study Root C-FIND and C-MOVE; C-FIND
 * at the STUDY, SERIES and IMAGE levels, C-MOVE of a study to a Move
 * Destination (our own AE title: the C-STORE sub-operations arrive on the
 * listener that dimse_srv_start started). Layer: daemon. */
#ifndef DICOMVAULT_DIMSE_SCU_H
#define DICOMVAULT_DIMSE_SCU_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "dicomvault/err.h"

struct dimse_srv;
struct peer;
struct dimse_scu;

/* Connects to pe (its host and port; plain TCP when pe->plain), calling
 * AE the listener's, and waits for the A-ASSOCIATE-AC. ERR_DENIED: the
 * peer refused (why names the peer and the reason: the A-ASSOCIATE-RJ's
 * source and reason, a certificate that is not the bound one...);
 * ERR_IO: no connection; ERR_NOTFOUND: neither C-FIND nor C-MOVE of the
 * Study Root model was accepted. */
WUR enum err dimse_scu_open(struct dimse_srv *s, const struct peer *pe, struct dimse_scu **out, char *why,
                            size_t whylen);
/* Releases and frees; takes NULL. */
void dimse_scu_close(struct dimse_scu *c);
/* Whether the peer accepted the Study Root C-FIND / C-MOVE context. */
bool dimse_scu_can_find(const struct dimse_scu *c);
bool dimse_scu_can_move(const struct dimse_scu *c);

/* Watches *flag (set by a signal handler, say) while waiting for
 * responses: once it is nonzero, the C-FIND or C-MOVE under way is
 * cancelled with a C-CANCEL-RQ and its final response (status Cancel,
 * FE00H, from a peer that honours it) is waited for as usual. NULL: not
 * watched. */
void dimse_scu_set_cancel(struct dimse_scu *c, const volatile sig_atomic_t *flag);

/* A Study Root C-FIND at level ("STUDY", "SERIES" or "IMAGE") with the
 * unique keys of the levels above (study for SERIES and IMAGE, series
 * for IMAGE) and the level's own unique key empty; fn gets the unique
 * key of each match (StudyInstanceUID, SeriesInstanceUID or
 * SOPInstanceUID; a match without a valid one is skipped and counted in
 * *skipped). An error of fn stops reading (the association is aborted).
 * *status: the final status (0000H success; else the failure, and
 * comment its Error Comment). ERR_IO: the association was lost or no
 * response came within the idle timeout (why). */
WUR enum err dimse_scu_find(struct dimse_scu *c, const char *level, const char *study, const char *series,
                            enum err (*fn)(void *ctx, const char *uid), void *ctx, unsigned *skipped,
                            uint16_t *status, char *comment, size_t clen, char *why, size_t whylen);

struct dimse_scu_move {
	uint16_t status;                 /* final */
	unsigned remaining, completed, failed, warning;   /* of the last response that had them */
	unsigned pending;                /* pending responses consumed */
	char comment[80];                /* Error Comment of the final response, "" if none */
	bool cancelled;                  /* a C-CANCEL-RQ was sent for it */
};

/* A Study Root C-MOVE of one study to dest_ae. progress (may be NULL)
 * after each pending response. ERR_IO: the association was lost or went
 * silent (why); otherwise res->status says how it ended. */
WUR enum err dimse_scu_move(struct dimse_scu *c, const char *study, const char *dest_ae,
                            void (*progress)(void *ctx, const struct dimse_scu_move *m), void *ctx,
                            struct dimse_scu_move *res, char *why, size_t whylen);

/* A C-FIND/C-MOVE status in words ("Refused: Move Destination unknown"). */
const char *dimse_scu_status_str(uint16_t status);

#endif
