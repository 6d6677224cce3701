/* dimse.h: DIMSE command sets (PS3.7 section 9 and annex E): group 0000
 * elements in implicit VR little endian, parsed into a struct and built
 * with a correct CommandGroupLength, for C-ECHO, C-STORE, C-FIND, C-GET,
 * C-MOVE and C-CANCEL. Pure: bytes in, struct or error out. Limits:
 * DIMSE_* in base/limits.h. See docs/internals/dimse.md. Layer: proto. */
#ifndef DICOMVAULT_DIMSE_H
#define DICOMVAULT_DIMSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/pdu.h"
#include "dicomvault/wbuf.h"

/* CommandField values */
#define DIMSE_C_STORE_RQ   0x0001
#define DIMSE_C_STORE_RSP  0x8001
#define DIMSE_C_GET_RQ     0x0010
#define DIMSE_C_GET_RSP    0x8010
#define DIMSE_C_FIND_RQ    0x0020
#define DIMSE_C_FIND_RSP   0x8020
#define DIMSE_C_MOVE_RQ    0x0021
#define DIMSE_C_MOVE_RSP   0x8021
#define DIMSE_C_ECHO_RQ    0x0030
#define DIMSE_C_ECHO_RSP   0x8030
#define DIMSE_C_CANCEL_RQ  0x0FFF
#define DIMSE_RSP_BIT      0x8000   /* set in the CommandField of every response */

#define DIMSE_NO_DATA_SET  0x0101   /* CommandDataSetType: no data set follows */
#define DIMSE_HAS_DATA_SET 0x0000   /* what we write when one follows */

#define DIMSE_PRIORITY_MEDIUM 0x0000
#define DIMSE_PRIORITY_HIGH   0x0001
#define DIMSE_PRIORITY_LOW    0x0002

/* Status values used by the services (PS3.7 annex C, PS3.4). */
#define DIMSE_SUCCESS          0x0000
#define DIMSE_PENDING          0xFF00
#define DIMSE_PENDING_WARNING  0xFF01
#define DIMSE_CANCEL           0xFE00
#define DIMSE_WARNING_SUBOPS   0xB000
#define DIMSE_REFUSED_OOR      0xA700   /* out of resources */
#define DIMSE_REFUSED_MATCHES  0xA701   /* C-GET/C-MOVE: unable to calculate the number of matches */
#define DIMSE_REFUSED_SUBOPS   0xA702   /* C-GET/C-MOVE: unable to perform sub-operations */
#define DIMSE_REFUSED_MOVE_DEST 0xA801  /* move destination unknown */
#define DIMSE_ERR_DATASET      0xA900   /* data set does not match SOP class */
#define DIMSE_ERR_UNABLE       0xC000   /* cannot understand / unable to process */
#define DIMSE_SOP_NOT_SUPPORTED 0x0122  /* SOP class not supported */
#define DIMSE_NOT_AUTHORIZED   0x0124
#define DIMSE_DUPLICATE_INVOCATION 0x0210
#define DIMSE_UNRECOGNIZED_OP  0x0211
#define DIMSE_MISTYPED_ARG     0x0212

#define DIMSE_MAX_OFFENDING 16u   /* OffendingElement values kept */

/* Which elements were present (or are to be written). */
enum {
	DIMSE_F_SOP_CLASS = 1u << 0,       /* (0000,0002) AffectedSOPClassUID */
	DIMSE_F_REQ_SOP_CLASS = 1u << 1,   /* (0000,0003) RequestedSOPClassUID */
	DIMSE_F_FIELD = 1u << 2,           /* (0000,0100) CommandField */
	DIMSE_F_MSG_ID = 1u << 3,          /* (0000,0110) MessageID */
	DIMSE_F_MSG_ID_RSP = 1u << 4,      /* (0000,0120) MessageIDBeingRespondedTo */
	DIMSE_F_MOVE_DEST = 1u << 5,       /* (0000,0600) MoveDestination */
	DIMSE_F_PRIORITY = 1u << 6,        /* (0000,0700) Priority */
	DIMSE_F_DATA_SET_TYPE = 1u << 7,   /* (0000,0800) CommandDataSetType */
	DIMSE_F_STATUS = 1u << 8,          /* (0000,0900) Status */
	DIMSE_F_OFFENDING = 1u << 9,       /* (0000,0901) OffendingElement */
	DIMSE_F_ERROR_COMMENT = 1u << 10,  /* (0000,0902) ErrorComment */
	DIMSE_F_ERROR_ID = 1u << 11,       /* (0000,0903) ErrorID */
	DIMSE_F_SOP_INSTANCE = 1u << 12,   /* (0000,1000) AffectedSOPInstanceUID */
	DIMSE_F_REQ_SOP_INSTANCE = 1u << 13, /* (0000,1001) RequestedSOPInstanceUID */
	DIMSE_F_REMAINING = 1u << 14,      /* (0000,1020) NumberOfRemainingSuboperations */
	DIMSE_F_COMPLETED = 1u << 15,      /* (0000,1021) */
	DIMSE_F_FAILED = 1u << 16,         /* (0000,1022) */
	DIMSE_F_WARNING = 1u << 17,        /* (0000,1023) */
	DIMSE_F_MOVE_ORIG_AE = 1u << 18,   /* (0000,1030) MoveOriginatorApplicationEntityTitle */
	DIMSE_F_MOVE_ORIG_ID = 1u << 19    /* (0000,1031) MoveOriginatorMessageID */
};

struct dimse_cmd {
	uint32_t has;                         /* DIMSE_F_* */
	uint16_t field;
	uint16_t msg_id, msg_id_rsp;
	uint16_t priority;
	uint16_t data_set_type;
	uint16_t status;
	uint16_t error_id;
	uint16_t move_orig_id;
	uint16_t remaining, completed, failed, warning;
	char sop_class[PDU_UID_MAX + 1];
	char sop_instance[PDU_UID_MAX + 1];
	char req_sop_class[PDU_UID_MAX + 1];
	char req_sop_instance[PDU_UID_MAX + 1];
	char move_dest[PDU_AE_MAX + 1];
	char move_orig_ae[PDU_AE_MAX + 1];
	char error_comment[DIMSE_MAX_STRING + 1];
	unsigned noffending;
	uint32_t offending[DIMSE_MAX_OFFENDING];
	unsigned nunknown;                    /* other group 0000 elements, skipped */
};

/* Parses a command set. Strict: every element of group 0000, in
 * ascending order, no duplicate; (0000,0000) CommandGroupLength first and
 * equal to the bytes after it; CommandField present; each known element
 * has its VR's size and a valid value (UIDs, AE titles, no NUL in text);
 * unknown group 0000 elements (retired ones, N-service ones) are skipped
 * and counted. Lenient where peers differ: a UID padded with a NUL or a
 * space, or with a leading-zero component (vr_uid_ok, as the store takes
 * UIDs and DCMTK sends them; still 1 to 64 digits and dots, no empty
 * component); an empty value (an AE title or ErrorComment of spaces only too)
 * is taken as absent, so that dimse_cmd_check names a required one
 * missing. ERR_PARSE on anything else, ERR_LIMIT over DIMSE_MAX_COMMAND
 * or DIMSE_MAX_STRING. *c is set only on success. */
WUR enum err dimse_cmd_parse(const uint8_t *p, size_t n, struct dimse_cmd *c);
/* Checks that the elements PS3.7 requires for c->field are present and
 * consistent (e.g. a C-STORE-RQ has a data set, a C-ECHO-RQ none). *why
 * (may be NULL) names what is wrong. ERR_UNSUPPORTED for a command field
 * other than the C- services; ERR_PARSE otherwise. */
WUR enum err dimse_cmd_check(const struct dimse_cmd *c, const char **why);
/* Appends the command set: the elements flagged in c->has (CommandField
 * always), in tag order, CommandGroupLength first. ERR_PARSE for a value
 * that would not parse back (then nothing is appended). */
WUR enum err dimse_cmd_build(const struct dimse_cmd *c, struct wbuf *w);

/* Request and response skeletons, to be completed before building. */
void dimse_cmd_rq(struct dimse_cmd *c, uint16_t field, uint16_t msg_id, const char *sop_class);
/* A response to rq: field | 0x8000, MessageIDBeingRespondedTo, the
 * affected SOP class (and instance for C-STORE), no data set. */
void dimse_cmd_rsp(struct dimse_cmd *c, const struct dimse_cmd *rq, uint16_t status);
bool dimse_has_data_set(const struct dimse_cmd *c);
const char *dimse_field_name(uint16_t field);

#endif
