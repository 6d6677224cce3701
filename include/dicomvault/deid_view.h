/* deid_view.h: the vault's de-identification setup, shared by `export
 * --deidentify` and the server's de-identified views (researchers, SPEC 5):
 * the project key (HKDF of the master key with the project's name, so one
 * project always gives the same pseudonyms, UIDs and date offsets), the
 * profile, the masking rules and the escrow certificates of
 * dicomvault.conf ([deid] project, profile, escrow_cert; [deid "mask
 * NAME"]). Layer: core. */
#ifndef DICOMVAULT_DEID_VIEW_H
#define DICOMVAULT_DEID_VIEW_H

#include "dicomvault/deid.h"
#include "dicomvault/err.h"

#define DEID_PROJECT_MAX 64u

struct vault;
struct deid_view;

/* project NULL: [deid] project, else "default"; profile NULL: [deid]
 * profile, else "basic". ERR_PARSE (a bad profile, masks or escrow
 * certificate, a project name over DEID_PROJECT_MAX) with the reason. */
WUR enum err deid_view_open(const struct vault *v, const char *project, const char *profile, struct deid_view **out,
                            char *why, size_t whylen);
void deid_view_free(struct deid_view *dv);
/* The options to give deid_apply (valid while dv and its vault live: the
 * masks are the vault's, v->masks). */
const struct deid_opts *deid_view_opts(const struct deid_view *dv);
/* The pseudonymous UID that deid_apply gives uid under this view. */
WUR enum err deid_view_uid(const struct deid_view *dv, const char *uid, char out[DEID_UID_MAX + 1]);

#endif
