/* http_int.h: what the files of the HTTPS listener share: the server, one
 * request's state, the routes and the response helpers. Not a public
 * header. Layer: daemon. */
#ifndef DICOMVAULT_HTTP_INT_H
#define DICOMVAULT_HTTP_INT_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/auth.h"
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/http.h"
#include "dicomvault/limits.h"

/* The session cookie. __Host-: only this host, over HTTPS, for Path=/, can
 * set it (a sibling subdomain cannot plant one). */
#define COOKIE_NAME "__Host-dv_session"

struct audit;
struct vault;

/* The last address of an X-Forwarded-For field value (spaces around it
 * allowed), as inet_ntop writes it; false when it is not an IPv4 or IPv6
 * address. */
bool http_xff_last(const char *v, char out[INET6_ADDRSTRLEN]);

struct http_server {
	struct MHD_Daemon *d;
	struct auth *auth;
	struct vault *vault;        /* DICOMweb: NULL when not served */
	pthread_mutex_t *ix_lock;   /* held around every use of vault->ix */
	struct audit *audit;
	const struct access_collections *colls;   /* [collection] rules of the vault (NULL: none) */
	uint64_t max_upload;        /* bytes of a streaming route's body (http_opts) */
	char proxies[HTTP_PROXIES_MAX][INET6_ADDRSTRLEN];   /* trusted_proxies, as inet_ntop writes them */
	size_t nproxies;
	/* the request-head deadline (http.c, "slow heads"): every open
	 * connection, and a thread that closes those whose head is late */
	pthread_mutex_t watch_mu;
	pthread_cond_t watch_cv;
	struct conn_watch *watch;
	pthread_t watcher;
	bool watching, watch_stop;
	char *cert;                 /* PEM, NUL-terminated */
	struct secret *key;         /* PEM, kept until the daemon stops */
	uint16_t port;
	char url[INET6_ADDRSTRLEN + 24];
	char base[HTTP_PUBLIC_URL_MAX + 1];   /* of absolute URLs in answers, no final '/' ("": path-absolute) */
};

struct http_req;
struct http_push;

/* A path and what it takes. Public routes need no session. */
struct http_route {
	const char *path;           /* exact (or a prefix); NULL: every other path */
	const char *name;           /* for the access log (never the raw path) */
	const char *allow;          /* the Allow header: methods served */
	bool public;
	bool json;                  /* takes a JSON body (Content-Type checked) */
	enum MHD_Result (*fn)(struct http_req *r);   /* at the end of the body */
	/* Streaming routes (DICOMweb): path is a prefix; no body cap; begin
	 * runs after the session and method checks (MHD_YES without a
	 * response: read the body), body takes each piece (MHD_NO closes the
	 * connection), done frees r->ctx when the request ends. */
	bool prefix;
	enum MHD_Result (*begin)(struct http_req *r);
	enum MHD_Result (*body)(struct http_req *r, const uint8_t *p, size_t n);
	void (*done)(struct http_req *r);
};

/* One request, from its headers to its completion. */
struct http_req {
	struct http_server *srv;
	struct MHD_Connection *c;
	const struct http_route *route;
	const char *method;         /* MHD's, valid for the request */
	const char *method_log;     /* a known method name or "OTHER" */
	const char *url;            /* the decoded path (MHD's, valid for the request) */
	void *ctx;                  /* a streaming route's state */
	char addr[INET6_ADDRSTRLEN];
	/* the body, up to HTTP_MAX_JSON_BODY; wiped when the request ends */
	uint8_t *body;
	size_t len;
	size_t discarded;           /* bytes beyond the cap, thrown away */
	bool too_large;
	bool answered;
	bool target_ws;             /* whitespace inside the request target (on_uri) */
	enum MHD_RequestTerminationCode term; /* how libmicrohttpd ended it: set before the route's done */
	bool defer_begin;           /* a streaming route's GET: begin at the end of the (empty) body */
	struct http_push *push;     /* a large body's gathered TLS writes (http.c), until the request ends */
	/* the session (routes that are not public) */
	bool authed;
	struct auth_session sess;
	const char *token;          /* as received (MHD's memory), for logout */
	bool by_cookie;             /* the token came in the session cookie */
	size_t token_len;
	/* the user's grants in force, read from the index for this request
	 * (nothing cached across requests: a revoked grant stops at once) */
	struct access_grant *grants;
	size_t ngrants;
	/* the last success record of a read this request wrote (dicomweb.c):
	 * if its answer is then refused (http_send: 503), a failure record of
	 * the same objects follows it (http_send_refused) */
	struct {
		const char *action;      /* NULL: none */
		bool has_patient, counted;
		uint8_t patient[32];
		char study[65], series[65], sop[65];
		uint64_t patients, studies, series_n, instances;
	} read_rec;
};

/* Authorisation (http_access.c, docs/ACCESS.md). The decision for the
 * request's user on action over object o (NULL: not about one object):
 * ACCESS_YES, ACCESS_DEID or ACCESS_NO, narrowed by an API token's scope.
 * The covers variant says whether any grant in force covers o at all (a
 * refusal is then 403, else 404). */
int http_access(struct http_req *r, enum access_action a, const struct access_object *o);
bool http_covers(struct http_req *r, enum access_action a, const struct access_object *o);
/* A refusal: 403 when a grant covers the object but does not allow the
 * action (or allows only de-identified data), else 404 so that the object's
 * existence is not revealed; audited as a failure of the action. */
enum MHD_Result http_refuse(struct http_req *r, enum access_action a, const struct access_object *o,
                            const char *audit_action, const char *study, const char *series, const char *sop);
/* Loads r->grants (after the session check); ERR_AUTH if the account is
 * disabled or expired. */
WUR enum err http_load_grants(struct http_req *r);

/* Response flags. */
#define HTTP_R_HTML   1u        /* a page: its Content-Security-Policy */

/* Queues a response with the security headers of every response; body is
 * copied, and the copy is wiped when libmicrohttpd frees it (a body may
 * hold a token). extra: header name/value pairs, NULL-terminated (or
 * NULL). */
enum MHD_Result http_send(struct http_req *r, unsigned status, const char *ctype, const void *body, size_t n,
                          unsigned flags, const char *const *extra);
/* The same with the body read from fd (size bytes from its offset 0);
 * fd is closed in every case. */
enum MHD_Result http_send_fd(struct http_req *r, unsigned status, const char *ctype, int fd, uint64_t size,
                             const char *const *extra);
/* An RFC 9457 problem (application/problem+json), type about:blank. */
enum MHD_Result http_problem(struct http_req *r, unsigned status, const char *detail, const char *const *extra);
/* A body produced by cb as libmicrohttpd pulls it (size known); fr frees
 * cls when the response is done, also when it was never sent. */
enum MHD_Result http_send_callback(struct http_req *r, unsigned status, const char *ctype, uint64_t size,
                                   MHD_ContentReaderCallback cb, void *cls, MHD_ContentReaderFreeCallback fr);
/* The same for a large body of known size (from HTTP_CORK_MIN bytes): the
 * TLS records are gathered into HTTP_PUSH_BUF-byte socket writes and the
 * socket is corked until the request ends. cb must call http_push_flush
 * before it ends the response with an error, so that the bytes before the
 * failure still reach the client. */
enum MHD_Result http_send_callback_large(struct http_req *r, unsigned status, const char *ctype, uint64_t size,
                                         MHD_ContentReaderCallback cb, void *cls, MHD_ContentReaderFreeCallback fr);
void http_push_flush(struct http_req *r);
/* Appends s as a JSON string (quoted, escaped) to the NUL-terminated
 * buffer out of capacity cap; false if it does not fit. */
bool http_json_str(char *out, size_t cap, const char *s);

/* The routes (http_routes.c) and the static pages (http_static.c). */
extern const struct http_route http_routes[];
enum MHD_Result http_page_login(struct http_req *r);
enum MHD_Result http_page_login_js(struct http_req *r);
enum MHD_Result http_page_login_css(struct http_req *r);
/* Break-glass and administration (http_admin.c). */
enum MHD_Result http_break_glass(struct http_req *r);
enum MHD_Result http_users(struct http_req *r);
enum MHD_Result http_grants(struct http_req *r);
enum MHD_Result http_audit(struct http_req *r);
/* DICOMweb (dicomweb.c): STOW-RS, WADO-RS instance, WADO-URI. */
enum MHD_Result dicomweb_begin(struct http_req *r);
enum MHD_Result dicomweb_body(struct http_req *r, const uint8_t *p, size_t n);
enum MHD_Result dicomweb_end(struct http_req *r);
void dicomweb_done(struct http_req *r);
/* Shared by the DICOMweb files (UIDs: vr_uid_ok): a path segment equals
 * a literal; the server's base URL without its final '/'; one audit
 * record about an object (patient: its key hash or NULL). */
bool dw_seg_is(const char *s, size_t n, const char *lit);

/* ---- pure helpers of the request's first steps (fuzz/http_fuzz.c) ---- */

/* The segments of a DICOMweb path after "/dicom-web/" (dicomweb.c): at
 * most DW_MAX_SEGS (limits.h); *too_many when there are more. An empty
 * path has none; "a//b" has an empty one. */
size_t dw_split(const char *p, const char *seg[DW_MAX_SEGS], size_t len[DW_MAX_SEGS], bool *too_many);
/* Which service a path's segments (at least one) and method name. */
enum dw_route {
	DW_ROUTE_NONE = 0,   /* 404 */
	DW_ROUTE_METHOD,     /* 405: only GET and HEAD here */
	DW_ROUTE_STOW,       /* POST /studies[/{study}] */
	DW_ROUTE_QIDO,       /* GET /studies, /series, /instances and below a study or series */
	DW_ROUTE_WADO,       /* GET /studies/{study}... anything else (wado_route_of) */
};
enum dw_route dw_route_of(const char *const seg[], const size_t len[], size_t n, bool post);
/* The methods a DICOMweb path takes, for an Allow header: POST only on
 * the STOW-RS resources (/studies, /studies/{uid}). */
const char *dw_allow(const char *url);

/* The request's token: "Authorization: Bearer T" (T without the spaces
 * around it), else the __Host-dv_session cookie. An Authorization header of
 * another scheme is no token, and the cookie is not consulted then (pass
 * cookie NULL when there is an Authorization header). *tok points into
 * the header or cookie; true when there is a non-empty one. */
bool http_token_of(const char *authorization, const char *cookie, const char **tok, size_t *n);
/* CSRF: a request that changes state and is authenticated by the session
 * cookie must come from our own pages: Origin, when the browser sends it,
 * is https://HOST of this request; or Sec-Fetch-Site says same-origin.
 * (The cookie is also SameSite=Strict; this is the second lock.) */
bool http_same_origin(const char *method, bool by_cookie, const char *origin, const char *site, const char *host);
/* Content-Type application/json (any case), alone or with parameters. */
bool http_json_ctype(const char *ct);
/* Percent-decoding of the path and arguments, in place, that leaves "%00"
 * as it is, so that a path never holds a NUL that would end it early.
 * Returns the new length. */
size_t http_unescape(char *s);
const char *dw_base_url(struct http_req *r, size_t *n);
/* After a read's answer was refused (http_send: 503): a failure record of
 * the objects of the request's last success record, if it wrote one. */
void http_send_refused(struct http_req *r);
/* Keeps what rec (a success record of a read, just written) said, for
 * http_send_refused; dw_audit_rec and dw_audit_obj call it themselves. */
void dw_note_read(struct http_req *r, const struct audit_rec *rec);
enum err dw_audit_obj(struct http_req *r, const char *action, enum audit_outcome oc, const char *reason,
                      const uint8_t *patient, const char *study, const char *series, const char *sop);
/* One audit record with the request's actor filled in. */
enum err dw_audit_rec(struct http_req *r, struct audit_rec *rec);
/* The request's actor (SPEC section 8: user, role, session, address, user
 * agent); a->session points into ref, which must outlive a. */
void dw_audit_actor(struct http_req *r, struct audit_actor *a, char ref[AUDIT_SESSION_REF_LEN]);
/* WADO (wado.c): GET /dicom-web/studies/{study}[...] (n path segments
 * after /dicom-web/, at least 2; wado_route_of tells what) and WADO-URI
 * (/wado). */
enum MHD_Result wado_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n);
enum MHD_Result dicomweb_wado_uri(struct http_req *r);
/* QIDO-RS (qido.c): GET /dicom-web/{studies,series,instances} and the
 * study's and series' sub-resources (n segments). */
enum MHD_Result qido_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n);

#endif
