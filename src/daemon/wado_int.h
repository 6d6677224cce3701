/* wado_int.h: what the WADO files share (wado.c: routes, study, series and
 * instance retrieval, WADO-URI; wado_meta.c: metadata, bulk data, frames,
 * the instance reader; wado_render.c: rendered and thumbnail). Not a
 * public header. Layer: daemon. */
#ifndef DICOMVAULT_WADO_INT_H
#define DICOMVAULT_WADO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/accept.h"
#include "dicomvault/audit.h"
#include "dicomvault/dataset.h"
#include "dicomvault/index.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "http_int.h"

#define WADO_UID_MAX 64u

struct retrieval;

/* What a WADO-RS path asks for (wado_route_of, pure: fuzz/http_fuzz.c). */
enum wado_kind {
	WADO_K_NONE = 0,    /* not a retrieval path: 404 */
	WADO_K_BAD_UID,     /* a UID not 1 to 64 digits and dots: 400 */
	WADO_K_DICOM,       /* the study, series or instance */
	WADO_K_METADATA,
	WADO_K_FRAMES,      /* arg: the frame list */
	WADO_K_BULK,        /* arg: the bulk data path */
	WADO_K_RENDERED,    /* arg: the frame list of .../frames/{list}/rendered, else "" */
	WADO_K_THUMBNAIL,   /* the same */
	WADO_K_OTHER,       /* UIDs, then nothing we offer: 404 after the access check */
};
struct wado_route {
	enum wado_kind k;
	size_t nuid;                          /* study, series, instance: 1 to 3 (0: NONE, BAD_UID) */
	char uid[3][WADO_UID_MAX + 1];        /* checked (vr_uid_ok), "" past nuid */
	size_t n;                             /* the path's segments */
	const char *arg;                      /* into the path's segments, or "" */
	size_t arglen;
};
/* The segments after /dicom-web/ (dw_split), at least 2, the first
 * "studies" (dw_route_of said DW_ROUTE_WADO). */
void wado_route_of(const char *const seg[], const size_t len[], size_t n, struct wado_route *rt);

/* The actor of a request, copied so that a response callback (which may
 * outlive nothing of the request but its own state) can audit a failure
 * in the middle of a stream. */
struct wado_who {
	struct audit *audit;
	char user[65];
	char role[17];
	char session[AUDIT_SESSION_REF_LEN];
	char addr[64];
	char ua[AUDIT_FIELD_MAX + 1];
};

void wado_who_init(struct http_req *r, struct wado_who *w);
/* After a wado_audit success record of a buffered answer, in the request's
 * thread: what it said, for a failure record if the answer is then refused
 * (http_send_refused). */
void wado_note_sent(struct http_req *r, const uint8_t *patient, const char *study, const char *series,
                    const char *sop, uint64_t n);
/* One retrieve record (n > 0: the number of instances, as counts). */
enum err wado_audit(const struct wado_who *w, enum audit_outcome oc, const char *reason, const uint8_t *patient,
                    const char *study, const char *series, const char *sop, uint64_t n);
/* A retrieve that failed with why: its failure record (audit_reason_of),
 * and when a stored object failed its check (ERR_AUTH) an
 * integrity-failure record after it. */
enum err wado_audit_fail(const struct wado_who *w, enum err why, const uint8_t *patient, const char *study,
                         const char *series, const char *sop);

/* The instances a request names, in series number, instance number order
 * (absent numbers last, then by UID). */
struct wado_series {
	char uid[WADO_UID_MAX + 1];
	int64_t id, number;
};

/* Explicit VR Little Endian: native frames, and what is decompressed into */
#define NATIVE_TS "1.2.840.10008.1.2.1"

struct wado_item {
	char sop[WADO_UID_MAX + 1];
	uint32_t series;    /* index into series[] */
	uint32_t ts;        /* index into ts[] */
	int64_t number;
	uint64_t size;
	/* from the index: NumberOfFrames and Rows, -1 if absent (or a row
	 * from before schema 2) */
	int64_t frames, rows;
};

struct wado_list {
	char study[WADO_UID_MAX + 1];
	uint8_t patient[IDX_HMAC_LEN];
	struct wado_series *series;
	size_t nseries;
	struct wado_item *it;
	size_t n, cap;
	char ts[DICOMWEB_MAX_TS][WADO_UID_MAX + 1];
	size_t nts;
	enum err err;       /* of the index walk */
};

/* Fills l (ix_lock taken here, only around the index) with the instances
 * of study, of its series (series != NULL) or the one instance (sop !=
 * NULL, series too). ERR_NOTFOUND: no such study, series or instance, or
 * one that is not in the path's study / series. */
WUR enum err wado_list_make(struct http_req *r, const char *study, const char *series, const char *sop,
                            struct wado_list *l);
void wado_list_fini(struct wado_list *l);

/* A de-identified view of stored study/series/instance (wado_deid.c):
 * multipart/related application/dicom, or DICOM JSON metadata (meta). */
enum MHD_Result wado_deid(struct http_req *r, const char *study, const char *series, const char *sop, bool meta);

/* Calls fn on each media range of the Accept header (one "* / *" range
 * when there is none) until fn returns true; false if none did.
 * Malformed ranges are skipped. */
bool wado_accept_any(struct http_req *r, bool (*fn)(void *ctx, const struct accept_range *a), void *ctx);
/* The Accept header ("" when there is none). */
const char *wado_accept_header(struct http_req *r);
/* accept_q_of() of the Accept header: the q it gives media with the type
 * parameter type and transfer syntax ts (NULL: none); 0 is refused. */
unsigned wado_accept_q(struct http_req *r, const char *media, const char *type, const char *ts);
/* The DICOM JSON media type to answer with: application/dicom+json, or
 * application/json when the Accept header prefers it (a higher q); NULL
 * when it takes neither (406). */
const char *wado_json_media(struct http_req *r);

/* One stored instance (wado_meta.c), parsed with the values longer than
 * bulk left in the (encrypted) source: random access to the plaintext,
 * each chunk a read touches authenticated before use. ERR_AUTH: the
 * object failed authentication (tampered or damaged); why says so. */
struct wado_inst {
	struct retrieval *rt;
	struct src src;
	struct dcm_file *f;
};

WUR enum err wado_inst_open(struct vault *v, const struct wado_item *it, uint32_t bulk, struct wado_inst *in,
                            char *why, size_t whylen);
void wado_inst_close(struct wado_inst *in);
/* A failure before the answer (instance i of l): logged, audited, 500. */
enum MHD_Result wado_fail_500(struct http_req *r, const struct wado_who *who, const struct wado_list *l, size_t i,
                              enum err rc, const char *why);
/* The answer to a failed wado_list_make: 404 or 500. */
enum MHD_Result wado_list_error(struct http_req *r, enum err rc, const char *series, const char *sop);

/* "1,3,5": 1-based frame numbers, at most DICOMWEB_MAX_FRAMES, in a
 * new array the caller frees. ERR_PARSE, ERR_LIMIT, ERR_NOMEM. */
WUR enum err wado_frame_list_parse(const char *s, size_t n, uint32_t **out, size_t *count);

/* A bulk data path of a BulkDataURI, "GGGGEEEE(.ITEM.GGGGEEEE)*" (hex
 * tags, 0-based item numbers): the element it names in f, or NULL; *in:
 * the data set holding it; *eff_vr: its VR as served; *pixel: it is
 * encapsulated Pixel Data (of the file or of an item). Pure. */
const struct dcm_elem *wado_bulk_path_find(const struct dcm_file *f, const char *s, size_t n, bool *pixel,
                                           uint16_t *eff_vr, const struct dcm_ds **in);

/* wado_render.c: GET .../rendered and .../thumbnail (thumbnail) of a
 * study, series (NULL for a study), instance (sop) or frames of an
 * instance (frames: the frame list of the path, else NULL). */
enum MHD_Result wado_rendered(struct http_req *r, const char *study, const char *series, const char *sop,
                              const char *frames, size_t frameslen, bool thumbnail);

/* wado_render.c: WADO-URI as an image (PS3.18 9.4): the object rendered
 * as media (enum render_media), or, with media -1 (no contentType), as
 * image/jpeg when it is a single-frame image, else nothing is queued and
 * *as_dicom is set (the caller sends it as application/dicom). Takes
 * frameNumber, rows, columns, windowCenter, windowWidth, imageQuality. */
enum MHD_Result wado_uri_image(struct http_req *r, const char *study, const char *series, const char *sop, int media,
                               bool *as_dicom);

/* wado_meta.c: GET .../metadata (study, series, instance), .../bulkdata/
 * {path} and .../frames/{list} of an instance. uid: study, series, sop
 * (series, sop may be NULL for the study or series metadata). */
enum MHD_Result wado_metadata(struct http_req *r, const char *study, const char *series, const char *sop);
enum MHD_Result wado_bulkdata(struct http_req *r, const char *study, const char *series, const char *sop,
                              const char *path, size_t pathlen);
enum MHD_Result wado_frames(struct http_req *r, const char *study, const char *series, const char *sop,
                            const char *list, size_t listlen);

#endif
