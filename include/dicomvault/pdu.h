/* pdu.h: DICOM upper layer PDUs (PS3.8 section 9.3, PS3.7 annex D.3.3):
 * an incremental framer that cuts a byte stream into whole PDUs with a
 * length limit checked before anything is buffered, and a parser and a
 * builder for each of the seven PDU types. Pure: bytes in, structs or
 * errors out; PDUs are built into a struct wbuf. Limits: PDU_* in
 * base/limits.h. See docs/internals/dimse.md. Layer: proto. */
#ifndef DICOMVAULT_PDU_H
#define DICOMVAULT_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/wbuf.h"

struct secret;

enum pdu_type {
	PDU_ASSOC_RQ = 0x01,
	PDU_ASSOC_AC = 0x02,
	PDU_ASSOC_RJ = 0x03,
	PDU_DATA_TF = 0x04,
	PDU_RELEASE_RQ = 0x05,
	PDU_RELEASE_RP = 0x06,
	PDU_ABORT = 0x07
};

#define PDU_HEADER_LEN     6u
#define PDU_AE_MAX         16u
#define PDU_UID_MAX        64u
#define PDU_VERSION_MAX    16u
#define PDU_APP_CONTEXT    "1.2.840.10008.3.1.1.1"

/* A-ABORT source (PS3.8 table 9-26) and reasons (source 2 only). */
#define PDU_ABORT_SRC_USER      0
#define PDU_ABORT_SRC_PROVIDER  2
#define PDU_ABORT_NOT_SPECIFIED 0
#define PDU_ABORT_UNRECOGNIZED  1   /* unrecognized PDU */
#define PDU_ABORT_UNEXPECTED    2   /* unexpected PDU */
#define PDU_ABORT_UNREC_PARAM   4   /* unrecognized PDU parameter */
#define PDU_ABORT_UNEXP_PARAM   5   /* unexpected PDU parameter */
#define PDU_ABORT_INVALID_PARAM 6   /* invalid PDU parameter value */

/* A-ASSOCIATE-RJ result, source and reason (PS3.8 table 9-21). */
#define PDU_RJ_PERMANENT        1
#define PDU_RJ_TRANSIENT        2
#define PDU_RJ_SRC_USER         1   /* reasons: 1 no reason, 2 application context, 3 calling AE, 7 called AE */
#define PDU_RJ_SRC_ACSE         2   /* reasons: 1 no reason, 2 protocol version */
#define PDU_RJ_SRC_PRESENTATION 3   /* reasons: 1 temporary congestion, 2 local limit exceeded */
#define PDU_RJ_NO_REASON        1
#define PDU_RJ_APP_CONTEXT      2
#define PDU_RJ_CALLING_AE       3
#define PDU_RJ_CALLED_AE        7
#define PDU_RJ_PROTOCOL_VERSION 2
#define PDU_RJ_CONGESTION       1
#define PDU_RJ_LOCAL_LIMIT      2

/* Presentation context result (A-ASSOCIATE-AC, PS3.8 table 9-18). */
#define PDU_PC_ACCEPT           0
#define PDU_PC_USER_REJECT      1
#define PDU_PC_NO_REASON        2
#define PDU_PC_ABSTRACT_REJECT  3   /* abstract syntax not supported */
#define PDU_PC_TS_REJECT        4   /* transfer syntaxes not supported */

/* User identity types (PS3.7 D.3.3.7.1). */
#define PDU_UID_USERNAME        1
#define PDU_UID_USERNAME_PASS   2
#define PDU_UID_KERBEROS        3
#define PDU_UID_SAML            4
#define PDU_UID_JWT             5

/* ---- framer ---- */

/* One whole PDU; body is borrowed from the framer and valid until the
 * next pdu_framer_feed(). */
struct pdu_view {
	uint8_t type;
	const uint8_t *body;   /* after the 6-byte header */
	size_t len;
};

struct pdu_framer {
	uint8_t hdr[PDU_HEADER_LEN];
	size_t hlen;           /* header bytes held */
	uint8_t *buf;          /* body bytes */
	size_t cap, len, need; /* need: body length of the PDU being read */
	uint32_t max;          /* largest body accepted */
	bool ready;            /* a whole PDU was handed out: dropped at the next feed */
	enum err err;          /* sticky */
};

/* max: the largest PDU body (length field) accepted. */
void pdu_framer_init(struct pdu_framer *f, uint32_t max);
void pdu_framer_fini(struct pdu_framer *f);
/* Changes the limit for the PDUs that follow (e.g. after acceptance). */
void pdu_framer_set_max(struct pdu_framer *f, uint32_t max);
/* Consumes bytes of data (n of them) until one PDU is whole: ERR_OK with
 * *out set, *used the bytes consumed (call again with the rest);
 * ERR_AGAIN: all n consumed, no whole PDU yet. Errors are sticky:
 * ERR_PARSE an unknown PDU type (PS3.8: unrecognized PDU), ERR_LIMIT a
 * length field over the limit (seen in the header, before any body
 * byte is buffered), ERR_NOMEM; *used is always set (on an error: the
 * bytes up to the end of the offending header). */
WUR enum err pdu_framer_feed(struct pdu_framer *f, const uint8_t *data, size_t n, size_t *used,
                             struct pdu_view *out);
/* True when bytes of an unfinished PDU are held. */
bool pdu_framer_partial(const struct pdu_framer *f);

/* ---- A-ASSOCIATE-RQ/AC ---- */

struct pdu_pctx {
	uint8_t id;                          /* odd, 1..255 */
	uint8_t result;                      /* AC: PDU_PC_* */
	char abstract[PDU_UID_MAX + 1];      /* RQ: the abstract syntax */
	uint16_t ts_first, nts;              /* into pdu_assoc.ts; AC: 0 or 1 */
};

struct pdu_role {
	char uid[PDU_UID_MAX + 1];           /* SOP class */
	uint8_t scu, scp;                    /* 0 or 1 */
};

/* An A-ASSOCIATE-RQ or -AC (the same fields; what only one has is
 * marked). Large (tens of KiB): keep it on the heap. Secrets (identity
 * fields) are freed by pdu_assoc_fini(). */
struct pdu_assoc {
	uint8_t type;                        /* PDU_ASSOC_RQ or PDU_ASSOC_AC */
	uint16_t version;                    /* protocol version bits (bit 0: version 1) */
	char called[PDU_AE_MAX + 1];         /* spaces trimmed; AC: echoed, not tested */
	char calling[PDU_AE_MAX + 1];
	char app_context[PDU_UID_MAX + 1];
	unsigned npc;
	struct pdu_pctx pc[PDU_MAX_PCTX];
	unsigned nts;
	char ts[PDU_MAX_TS_TOTAL][PDU_UID_MAX + 1];
	/* user information */
	uint32_t max_len;                    /* 0: unlimited (or absent) */
	bool has_max_len;
	char impl_uid[PDU_UID_MAX + 1];
	char impl_version[PDU_VERSION_MAX + 1];   /* "" when absent */
	bool has_async;
	uint16_t async_invoked, async_performed;
	unsigned nroles;
	struct pdu_role role[PDU_MAX_ROLES];
	unsigned next_neg;                   /* extended negotiation sub-items seen (ignored) */
	unsigned nunknown;                   /* unknown user information sub-items skipped */
	/* user identity: RQ */
	bool has_identity;
	uint8_t id_type;                     /* PDU_UID_* */
	bool id_response_requested;
	struct secret *id_primary;           /* user name or token (NULL when empty) */
	struct secret *id_secondary;         /* passcode (type 2 only) */
	/* user identity: AC */
	bool has_id_response;
	struct secret *id_response;          /* server response (NULL when empty) */
};

void pdu_assoc_init(struct pdu_assoc *a, uint8_t type);
void pdu_assoc_fini(struct pdu_assoc *a);   /* frees and wipes the secrets; a is reset */

/* Parses an A-ASSOCIATE-RQ or -AC body (type from the framer). Every item
 * must fit its parent exactly; lengths, counts, AE titles, UIDs and
 * values are checked (see docs/internals/dimse.md for what is tolerated).
 * On failure *a is reset (pdu_assoc_fini) and *reason is the A-ABORT
 * reason to send (PDU_ABORT_*; NULL: not wanted). ERR_PARSE: malformed;
 * ERR_LIMIT: over a PDU_* count or size; ERR_NOMEM. */
WUR enum err pdu_assoc_parse(uint8_t type, const uint8_t *body, size_t len, struct pdu_assoc *a,
                             uint8_t *reason);
/* Appends the PDU (header included). ERR_PARSE: a field that would not
 * parse back (empty or over-long AE title, bad UID, even context id,
 * ...). The wbuf's sticky error is returned too. */
WUR enum err pdu_assoc_build(const struct pdu_assoc *a, struct wbuf *w);
/* Adds a transfer syntax to context pc (the last one added), for
 * building; ERR_LIMIT past the caps, ERR_PARSE for an invalid UID. */
WUR enum err pdu_assoc_add_pc(struct pdu_assoc *a, uint8_t id, uint8_t result, const char *abstract);
WUR enum err pdu_assoc_add_ts(struct pdu_assoc *a, const char *ts);

/* ---- the short PDUs ---- */

struct pdu_rj {
	uint8_t result, source, reason;
};
struct pdu_abort {
	uint8_t source, reason;
};

WUR enum err pdu_rj_parse(const uint8_t *body, size_t len, struct pdu_rj *out);
WUR enum err pdu_abort_parse(const uint8_t *body, size_t len, struct pdu_abort *out);
/* A-RELEASE-RQ/RP: 4 reserved bytes. */
WUR enum err pdu_release_parse(const uint8_t *body, size_t len);
void pdu_rj_build(const struct pdu_rj *rj, struct wbuf *w);
void pdu_abort_build(uint8_t source, uint8_t reason, struct wbuf *w);
void pdu_release_build(uint8_t type, struct wbuf *w);   /* PDU_RELEASE_RQ or _RP */

/* ---- P-DATA-TF ---- */

#define PDU_PDV_COMMAND 0x01   /* message control header bit 0 */
#define PDU_PDV_LAST    0x02   /* bit 1 */

struct pdu_pdv {
	uint8_t pcid;
	uint8_t mch;               /* message control header */
	const uint8_t *p;          /* fragment, borrowed */
	size_t n;
};

/* Iterates the PDVs of a P-DATA-TF body: pdu_pdv_next() returns ERR_OK
 * with the next PDV, ERR_NOTFOUND at the end (having seen at least one),
 * ERR_PARSE for a malformed item (length under 2 or past the PDU, an
 * even context id, reserved bits of the control header set, no PDV). */
struct pdu_pdv_iter {
	struct {
		const uint8_t *p;
		size_t len, pos;
	} r;
	unsigned count;
};
void pdu_pdv_iter_init(struct pdu_pdv_iter *it, const uint8_t *body, size_t len);
WUR enum err pdu_pdv_next(struct pdu_pdv_iter *it, struct pdu_pdv *out);
/* Appends a P-DATA-TF PDU holding one PDV. */
void pdu_pdata_build(uint8_t pcid, uint8_t mch, const uint8_t *p, size_t n, struct wbuf *w);

/* ---- helpers ---- */

/* A UID: 1..64 characters, digits and dots, no empty component, no
 * leading zero in a component of more than one digit. */
bool pdu_uid_ok(const char *s, size_t n);
/* An AE title as a C string (what the builder accepts): 1..16 characters
 * of the default repertoire, no backslash or control character, not all
 * spaces, no leading or trailing space. */
bool pdu_ae_ok(const char *s);
const char *pdu_type_name(uint8_t type);

#endif
