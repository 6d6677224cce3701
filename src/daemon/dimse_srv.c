/* dimse_srv.c: the DICOM listener of `dicomvault serve` (SPEC section 4):
 * DICOM-TLS (TLS 1.3 only, GnuTLS) with a client certificate required,
 * and an optional plain-TCP listener. One thread per association feeds
 * the bytes it reads to the upper layer state machine (proto/ul.c) and
 * sends what it produces; poll() with the ARTIM timeout before and after
 * the association, the idle timeout during it. The A-ASSOCIATE-RQ is
 * judged here: the calling AE title must be a [peer], the certificate the
 * TLS handshake showed must be the one bound to that peer (SHA-256
 * fingerprint, compared in constant time, or issued by its CA), and the
 * peer must have a right to one of the services proposed; a user identity
 * (type 2, an API token as passcode) makes the association act for that
 * vault user too (required by `require_user = yes`); anything else is an
 * A-ASSOCIATE-RJ and an audit record. At max_associations, with no
 * connection to evict, a few more are answered A-ASSOCIATE-RJ (transient,
 * local limit exceeded) and the rest closed. Layer: daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "dicomvault/clock.h"
#include "dicomvault/access.h"
#include "dicomvault/auth.h"
#include "dicomvault/http.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/jwt.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/token.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "dimse_int.h"

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define CA_MAX (1u << 20)
#define DEFAULT_IDLE_MS 300000u
#define DEFAULT_MAX_ASSOC 32u
#define RECV_BUF (64u * 1024)
#define EVICT_SLACK 16u           /* connections over the limit while evicted ones end */
#define REFUSED_LOG_MS 10000      /* refusals at capacity: one warning, one audit record this often */
#define REFUSE_SLACK 4u           /* connections over the limit answered A-ASSOCIATE-RJ at once */
#define REFUSE_MS 5000u           /* their TLS handshake, and their RQ, within this (or ARTIM if shorter) */

struct conn {
	struct dimse_srv *srv;
	int fd;
	bool plain;
	char addr[80];
	struct sockaddr_storage ss;   /* the peer's address */
	int64_t since_ms;             /* accepted (monotonic) */
	atomic_bool admitted;         /* its association was accepted (on_assoc_rq) */
	atomic_bool tls_done;         /* its TLS handshake is done (a certificate shown: evicted last) */
	bool evicted;
	bool refusing;                /* over the limit (REFUSE_SLACK): to be answered A-ASSOCIATE-RJ */
	struct conn *next;
};

struct dimse_srv {
	struct dimse_srv_opts o;
	char ae[PDU_AE_MAX + 1];
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	gnutls_x509_trust_list_t *ca;   /* per peer (NULL: fingerprint) */
	size_t nca;
	int lfd, pfd;                   /* listening sockets (-1: none) */
	uint16_t port, pport;
	int wake[2];                    /* stops the accept thread */
	pthread_t thr;
	bool thr_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn *conns;
	unsigned nconn;                 /* of conns, those not refusing */
	unsigned nrefusing;             /* of conns, those refusing */
	bool stopping;
	unsigned refused, evicted, rejected;   /* at capacity, since the last warning */
	int64_t refused_log_ms;
	unsigned rj_unaudited;          /* A-ASSOCIATE-RJ at capacity since the last audit record of one */
	int64_t rj_audit_ms;
	struct jwt_verifier *own_jwt;
};

/* ---- association helpers shared with the services ---- */

void dimse_assoc_actor(const struct dimse_assoc *a, struct audit_actor *act)
{
	memset(act, 0, sizeof *act);
	act->user = a->calling[0] ? a->calling : NULL;
	act->role = "dicom-peer";
	if (a->as_user) {
		/* the vault user acts, with the role and the session reference
		 * records of the same token over HTTPS give; the peer shows as
		 * the agent */
		act->user = a->user.user;
		act->role = a->user.role[0] ? a->user.role : act->role;
		act->session = a->session[0] ? a->session : NULL;
		act->user_agent = a->ua;
	} else if (a->claimed) {
		act->user_agent = a->ua;   /* the name the peer gave, beside the peer */
	}
	act->addr = a->addr;
	act->cert = a->fp[0] ? a->fp : NULL;
}

/* A record of the association's actor: appended whole (ticket NULL) or
 * started (audit_append_start). */
static enum err assoc_audit(const struct dimse_assoc *a, const char *action, enum audit_outcome out,
                            const char *reason, const struct audit_objects *obj, uint64_t *ticket)
{
	struct audit_rec r;
	enum err rc;

	if (ticket != NULL)
		*ticket = 0;
	if (a->o->audit == NULL)
		return ERR_OK;
	memset(&r, 0, sizeof r);
	r.action = action;
	r.outcome = out;
	r.reason = reason;
	dimse_assoc_actor(a, &r.actor);
	if (obj != NULL)
		r.objects = *obj;
	rc = ticket != NULL ? audit_append_start(a->o->audit, &r, ticket) : audit_append(a->o->audit, &r);
	if (rc != ERR_OK) {
		log_error("cannot write the audit record %s for %s", action, a->addr);
		return ERR_IO;
	}
	return ERR_OK;
}

enum err dimse_assoc_audit(const struct dimse_assoc *a, const char *action, enum audit_outcome out,
                           const char *reason, const struct audit_objects *obj)
{
	return assoc_audit(a, action, out, reason, obj, NULL);
}

enum err dimse_assoc_audit_start(const struct dimse_assoc *a, const char *action, enum audit_outcome out,
                                 const char *reason, const struct audit_objects *obj, uint64_t *ticket)
{
	return assoc_audit(a, action, out, reason, obj, ticket);
}

enum err dimse_user_load(struct dimse_assoc *a)
{
	free(a->grants);
	a->grants = NULL;
	a->ngrants = 0;
	if (!a->as_user)
		return ERR_OK;
	if (a->via_jwt) {
		/* a JWT cannot be revoked, but it expires, and the account is
		 * read again: disabled or expired since, the operation is refused */
		struct auth_session now_s;
		int64_t now = (int64_t)time(NULL);
		enum err rc;
		if (a->o->auth == NULL || now >= a->jwt_exp + JWT_SKEW_SECONDS)
			return ERR_AUTH;
		rc = auth_user_check(a->o->auth, a->user.user, now, a->jwt_exp, &now_s);
		if (rc != ERR_OK)
			return rc;
		if (now_s.user_id != a->user.user_id)
			return ERR_AUTH;
		return users_grants_now(a->o->vault, a->user.user_id, now, &a->grants, &a->ngrants);
	}
	/* the token again (kept by the UL in its copy of the RQ): a
	 * revocation or expiry during the association takes effect at once */
	{
		const struct secret *tok = a->u.rq != NULL ? a->u.rq->id_secondary : NULL;
		struct auth_session now_s;
		enum err rc;
		if (tok == NULL || a->o->auth == NULL)
			return ERR_AUTH;
		rc = auth_request_check(a->o->auth, (const char *)secret_view(tok), secret_len(tok), (int64_t)time(NULL),
		                        a->addr, NULL, &now_s);
		if (rc != ERR_OK)
			return rc;
		if (now_s.user_id != a->user.user_id)
			return ERR_AUTH;
	}
	return users_grants_now(a->o->vault, a->user.user_id, (int64_t)time(NULL), &a->grants, &a->ngrants);
}

bool dimse_user_may(const struct dimse_assoc *a, enum access_action act, const char *collection,
                    const char *study_uid, const uint8_t *patient)
{
	struct access_object o;

	if (!a->as_user)
		return true;
	if (!token_scope_allows(a->user.scope, act, collection))
		return false;
	o.collection = collection;
	o.study_uid = study_uid;
	o.patient = patient;
	return access_decide(a->grants, a->ngrants, act, &o, (int64_t)time(NULL), NULL) == ACCESS_YES;
}

static ssize_t conn_send(struct dimse_assoc *a, const void *p, size_t n)
{
	if (a->tls != NULL) {
		ssize_t k;
		do
			k = gnutls_record_send(a->tls, p, n);
		while (k == GNUTLS_E_INTERRUPTED);
		return k;
	}
	for (;;) {
		ssize_t k = send(a->fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		return k;
	}
}

enum err dimse_assoc_flush(struct dimse_assoc *a)
{
	while (a->u.tx.len > 0) {
		ssize_t k = conn_send(a, a->u.tx.p, a->u.tx.len);
		if (k <= 0) {
			a->failed = true;
			return ERR_IO;
		}
		ul_tx_consumed(&a->u, (size_t)k);
	}
	return ERR_OK;
}

enum err dimse_assoc_send_cmd(struct dimse_assoc *a, uint8_t pcid, const struct dimse_cmd *c)
{
	struct wbuf w;
	enum err rc;

	wbuf_init(&w, DIMSE_MAX_COMMAND);
	rc = dimse_cmd_build(c, &w);
	if (rc == ERR_OK)
		rc = ul_send_command(&a->u, pcid, w.p, w.len);
	wbuf_fini(&w);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(a);
	return rc;
}

static ssize_t conn_recv(struct dimse_assoc *a, void *p, size_t n);

/* TLS reads the socket through a read-ahead buffer of RB_CAP bytes: one
 * recv() brings several records (a C-STORE's P-DATA arrives in 16 KiB
 * records, which GnuTLS would otherwise read with two recv() each, and
 * the loop below would poll() before each). */
#define RB_CAP (256u * 1024)

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct dimse_assoc *a = ptr;
	size_t m;

	if (a->rb_off >= a->rb_n) {
		ssize_t k;
		if (a->rb == NULL && (a->rb = malloc(RB_CAP)) == NULL) {
			gnutls_transport_set_errno(a->tls, ENOMEM);
			return -1;
		}
		do
			k = recv(a->fd, a->rb, RB_CAP, 0);
		while (k < 0 && errno == EINTR);
		if (k <= 0) {
			if (k < 0)
				gnutls_transport_set_errno(a->tls, errno);
			return k;
		}
		a->rb_n = (size_t)k;
		a->rb_off = 0;
	}
	m = a->rb_n - a->rb_off < len ? a->rb_n - a->rb_off : len;
	memcpy(data, a->rb + a->rb_off, m);
	a->rb_off += m;
	return (ssize_t)m;
}

/* GnuTLS's wait (handshake and record timeouts): read-ahead bytes are
 * ready at once. */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	struct dimse_assoc *a = ptr;
	struct pollfd pf = { a->fd, POLLIN, 0 };
	int pr;

	if (a->rb_off < a->rb_n)
		return 1;
	do
		pr = poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	while (pr < 0 && errno == EINTR);
	return pr;
}

static void tls_transport(struct dimse_assoc *a)
{
	gnutls_transport_set_int(a->tls, a->fd);   /* the push side */
	gnutls_transport_set_pull_function(a->tls, tls_pull);
	gnutls_transport_set_pull_timeout_function(a->tls, tls_pull_timeout);
	gnutls_transport_set_ptr2(a->tls, a, (gnutls_transport_ptr_t)(intptr_t)a->fd);
}

/* Received bytes waiting in TLS or in the read-ahead: no poll() needed. */
static bool rx_buffered(struct dimse_assoc *a)
{
	return a->tls != NULL && (a->rb_off < a->rb_n || gnutls_record_check_pending(a->tls) > 0);
}


/* dimse_assoc_poll (wait_ms 0) and dimse_assoc_wait (the idle timeout). */
static enum err assoc_read(struct dimse_assoc *a, int wait_ms,
                           void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx)
{
	struct pollfd pf = { a->fd, POLLIN, 0 };
	struct ul_event ev;
	size_t used;
	ssize_t n;
	int pr;

	if (a->failed || (a->u.state != UL_STA6 && a->u.state != UL_STA8))
		return ERR_IO;
	/* first what was read with the request but not yet fed (a C-CANCEL
	 * sent right behind its C-FIND), then the socket, without waiting */
	if (a->rx_off >= a->rx_n) {
		if (!rx_buffered(a)) {
			do
				pr = poll(&pf, 1, wait_ms);
			while (pr < 0 && errno == EINTR);
			if (pr == 0)
				return wait_ms > 0 ? ERR_AGAIN : ERR_OK;
		}
		n = conn_recv(a, a->rx, RECV_BUF);
		if (n <= 0) {
			a->rx_n = a->rx_off = 0;
			ul_transport_closed(&a->u, &ev);
			fn(a, &ev, ctx);
			a->failed = true;
			return ERR_IO;
		}
		a->rx_n = (size_t)n;
		a->rx_off = 0;
	}
	for (;;) {
		enum err rc = ul_feed(&a->u, a->rx + a->rx_off, a->rx_n - a->rx_off, &used, &ev);
		a->rx_off += used;
		if (rc == ERR_AGAIN)
			break;
		if (rc != ERR_OK) {
			a->failed = true;
			break;
		}
		fn(a, &ev, ctx);
		if (a->failed || dimse_assoc_flush(a) != ERR_OK)
			break;
	}
	if (!a->failed && dimse_assoc_flush(a) != ERR_OK)
		return ERR_IO;
	return a->failed || (a->u.state != UL_STA6 && a->u.state != UL_STA8) ? ERR_IO : ERR_OK;
}

enum err dimse_assoc_poll(struct dimse_assoc *a,
                          void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx)
{
	return assoc_read(a, 0, fn, ctx);
}

unsigned dimse_assoc_idle_ms(const struct dimse_assoc *a)
{
	return a->o->idle_ms ? a->o->idle_ms : DEFAULT_IDLE_MS;
}

unsigned dimse_artim_ms(const struct dimse_srv_opts *o)
{
	return o->artim_ms ? o->artim_ms : UL_ARTIM_SECONDS * 1000u;
}

enum err dimse_assoc_wait(struct dimse_assoc *a,
                          void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx)
{
	return assoc_read(a, (int)dimse_assoc_idle_ms(a), fn, ctx);
}

enum err dimse_assoc_wait_ms(struct dimse_assoc *a, unsigned ms,
                             void (*fn)(struct dimse_assoc *a, const struct ul_event *ev, void *ctx), void *ctx)
{
	return assoc_read(a, ms > 0 && ms <= (unsigned)INT_MAX ? (int)ms : 1, fn, ctx);
}

/* ---- the A-ASSOCIATE-RQ ---- */

/* The IPv4 address of ss, also when it is IPv4-mapped IPv6; false if
 * it has none. */
static bool ipv4_of(const struct sockaddr_storage *ss, struct in_addr *out)
{
	if (ss->ss_family == AF_INET) {
		*out = ((const struct sockaddr_in *)ss)->sin_addr;
		return true;
	}
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr)) {
		memcpy(out, ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr + 12, 4);
		return true;
	}
	return false;
}

/* Whether the peer's address (ss, as accepted) is one of host's
 * (resolved now, so that a changed DNS entry is followed). */
static bool from_host(const struct sockaddr_storage *ss, const char *host)
{
	struct addrinfo hints, *res = NULL, *r;
	struct in_addr v4, h4;
	bool has4 = ipv4_of(ss, &v4), ok = false;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	for (r = res; r != NULL && !ok; r = r->ai_next) {
		const struct sockaddr_storage *rs = (const struct sockaddr_storage *)(const void *)r->ai_addr;
		if (has4 && ipv4_of(rs, &h4))
			ok = h4.s_addr == v4.s_addr;
		else if (!has4 && ss->ss_family == AF_INET6 && r->ai_family == AF_INET6)
			ok = memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr,
			            &((const struct sockaddr_in6 *)(const void *)r->ai_addr)->sin6_addr, 16) == 0;
	}
	freeaddrinfo(res);
	return ok;
}

/* name (from a certificate) is want, ignoring case and want's padding
 * spaces (an AE title's are not significant). */
static bool name_is(const char *name, const char *want)
{
	size_t nw;

	while (*want == ' ')
		want++;
	nw = strlen(want);
	while (nw > 0 && want[nw - 1] == ' ')
		nw--;
	return nw > 0 && strlen(name) == nw && strncasecmp(name, want, nw) == 0;
}

/* A CA-issued certificate names the peer it is taken for: a Common Name
 * or a DNS subject alternative name equal to the AE title; a server's
 * (a C-MOVE destination, an import source: by_host) may name the peer's
 * host instead, as server certificates do. Without this, every
 * certificate of a CA shared by several peers would pass as any of them;
 * a client's naming its host would pass as every peer of that host. */
static bool cert_names_peer(gnutls_x509_crt_t crt, const struct peer *pe, bool by_host)
{
	char buf[256];
	size_t len;
	unsigned i;
	int t;

	for (i = 0; i < 8; i++) {
		memset(buf, 0, sizeof buf);
		len = sizeof buf - 1;
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, i, 0, buf, &len) != 0)
			break;
		if (memchr(buf, 0, len) == NULL && (name_is(buf, pe->ae) || (by_host && pe->host[0] && name_is(buf, pe->host))))
			return true;
	}
	for (i = 0; i < 64; i++) {
		memset(buf, 0, sizeof buf);
		len = sizeof buf - 1;
		t = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, NULL);
		if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (t != GNUTLS_SAN_DNSNAME || memchr(buf, 0, len) != NULL)
			continue;
		if (name_is(buf, pe->ae) || (by_host && pe->host[0] && name_is(buf, pe->host)))
			return true;
	}
	return false;
}

/* The certificate the other side presented is the one bound to pe: by
 * fingerprint (and within its validity period), or issued by pe's CA for
 * the key purpose of its side (a TLS client when client, else a TLS
 * server: a C-MOVE destination) and naming pe (cert_names_peer). The
 * plain-TCP listener has no certificate: only a `tls = no` peer is taken
 * there (peers.c refuses one that also names a certificate), by its AE
 * title, from its host's addresses when it has a host; an AE title bound
 * to a certificate never is, or anyone who knows it would get its rights. */
static bool cert_ok(struct dimse_srv *s, struct dimse_assoc *a, const struct peer *pe, bool client,
                    const char **why)
{
	const gnutls_datum_t *chain;
	unsigned n = 0, status = 0, i;
	gnutls_x509_crt_t crt[8];
	size_t idx = (size_t)(pe - s->o.peers->p);
	bool ok = false;
	time_t now = time(NULL);

	if (a->tls == NULL) {
		if (!pe->plain)
			*why = "plain TCP refused: this AE title is bound to a certificate (DICOM-TLS only)";
		else if (pe->host[0] != 0 && !from_host(&a->peer_ss, pe->host))
			*why = "plain TCP refused: not from the peer's host";
		else
			return true;   /* AE title only (warned about at start) */
		return false;
	}
	chain = gnutls_certificate_get_peers(a->tls, &n);
	if (chain == NULL || n == 0) {
		*why = client ? "no client certificate" : "no server certificate";
		return false;
	}
	if (!pe->has_fp && pe->ca[0] == 0) {
		*why = "no certificate bound to this AE title (tls = no)";
		return false;
	}
	if (!pe->has_fp && (idx >= s->nca || s->ca[idx] == NULL)) {
		*why = "no CA loaded for this peer";
		return false;
	}
	if (n > 8)
		n = 8;
	*why = client ? "unreadable client certificate" : "unreadable server certificate";
	for (i = 0; i < n; i++) {
		if (gnutls_x509_crt_init(&crt[i]) != 0)
			break;
		if (gnutls_x509_crt_import(crt[i], &chain[i], GNUTLS_X509_FMT_DER) != 0) {
			gnutls_x509_crt_deinit(crt[i]);
			break;
		}
	}
	if (i == n && pe->has_fp) {
		uint8_t fp[32];
		size_t fl = sizeof fp;
		if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &chain[0], fp, &fl) != 0 || fl != 32) {
			*why = client ? "cannot hash the client certificate" : "cannot hash the server certificate";
		} else if (!ct_equal(fp, pe->fp, 32)) {
			*why = client ? "client certificate is not the one bound to this AE title"
			              : "server certificate is not the one bound to this AE title";
		} else if (gnutls_x509_crt_get_activation_time(crt[0]) > now ||
		           gnutls_x509_crt_get_expiration_time(crt[0]) < now) {
			*why = client ? "client certificate bound to this AE title is expired or not yet valid"
			              : "server certificate bound to this AE title is expired or not yet valid";
		} else {
			ok = true;
			*why = NULL;
		}
	} else if (i == n) {
		gnutls_typed_vdata_st purpose = { GNUTLS_DT_KEY_PURPOSE_OID,
		                                  (unsigned char *)(client ? GNUTLS_KP_TLS_WWW_CLIENT : GNUTLS_KP_TLS_WWW_SERVER),
		                                  0 };
		if (gnutls_x509_trust_list_verify_crt2(s->ca[idx], crt, n, &purpose, 1, 0, &status, NULL) != 0 ||
		    status != 0) {
			*why = client ? "client certificate not issued by the peer's CA for this use (or expired)"
			              : "server certificate not issued by the peer's CA for this use (or expired)";
		} else if (!cert_names_peer(crt[0], pe, !client)) {
			*why = client ? "client certificate issued by the peer's CA does not name its AE title"
			              : "server certificate issued by the peer's CA names neither its AE title nor its host";
		} else {
			ok = true;
			*why = NULL;
		}
	}
	while (i > 0)
		gnutls_x509_crt_deinit(crt[--i]);
	return ok;
}

static bool identity_refused(struct dimse_assoc *a, const struct peer *pe, const char *why)
{
	char reason[240];

	memset(&a->user, 0, sizeof a->user);
	a->session[0] = 0;
	snprintf(reason, sizeof reason, "%s (peer %s)", why, pe->ae);
	dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, reason, NULL);
	log_warn("association of %s from %s refused: %s", pe->ae, a->addr, why);
	return false;
}

/* A type 5 sub-item: a JWT of the configured issuer (jwt.h) whose "sub"
 * names an enabled vault account. Checked over DICOM-TLS only (the caller
 * refused plain TCP). The token's "exp" bounds the association's rights:
 * dimse_user_load refuses operations after it. */
static bool jwt_identity_ok(struct dimse_srv *s, struct dimse_assoc *a, const struct peer *pe)
{
	const struct pdu_assoc *rq = a->u.rq;
	struct jwt_claims c;
	char why[160], msg[200];
	int64_t now = (int64_t)time(NULL);
	enum err rc;

	if (s->o.jwt == NULL || s->o.auth == NULL || s->o.vault == NULL)
		return identity_refused(a, pe, "user identity: JWT not accepted here (no [auth] jwt_key)");
	if (rq->id_primary == NULL || (rq->id_secondary != NULL && secret_len(rq->id_secondary) != 0))
		return identity_refused(a, pe, "user identity: a JWT goes alone in the primary field");
	why[0] = 0;
	rc = jwt_verify(s->o.jwt, (const char *)secret_view(rq->id_primary), secret_len(rq->id_primary), now, &c, why,
	                sizeof why);
	if (rc != ERR_OK) {
		snprintf(msg, sizeof msg, "user identity: %s", why[0] ? why : "JWT refused");
		return identity_refused(a, pe, msg);
	}
	memset(&a->user, 0, sizeof a->user);
	rc = auth_user_check(s->o.auth, c.sub, now, c.exp, &a->user);
	if (rc != ERR_OK)
		return identity_refused(a, pe, rc == ERR_AUTH ? "user identity: the JWT's subject is no usable account"
		                                              : "user identity cannot be verified");
	a->as_user = true;
	a->via_jwt = true;
	a->jwt_exp = c.exp;
	audit_session_ref(secret_view(rq->id_primary), secret_len(rq->id_primary), a->session);
	snprintf(a->ua, sizeof a->ua, "AE %s", pe->ae);
	return true;
}

/* A type 1 identity (a user name alone) proves nothing: as PS3.15 B.4's
 * Basic User Identity profile asks, it is accepted and the name recorded
 * in the association's audit records, marked as not verified, while the
 * peer keeps acting with its own rights (a->claimed). Printable ASCII
 * only, the rest as '?'. */
static void identity_claimed(struct dimse_assoc *a, const struct peer *pe, const struct secret *name)
{
	const uint8_t *p = name ? secret_view(name) : NULL;
	size_t n = name ? secret_len(name) : 0, i, o;

	o = (size_t)snprintf(a->ua, sizeof a->ua, "AE %s, user ", pe->ae);
	for (i = 0; i < n && i < 64 && o + 1 < sizeof a->ua; i++)
		a->ua[o++] = p[i] >= 0x20 && p[i] < 0x7F ? (char)p[i] : '?';
	a->ua[o] = 0;
	snprintf(a->ua + o, sizeof a->ua - o, " (not verified)");
	a->claimed = true;
}

/* User Identity Negotiation: a type 2 sub-item (user name and passcode)
 * whose passcode is an API token of that user makes the association act
 * for the user (a->as_user); the token is checked as a bearer token is
 * (auth_request_check: expiry, revocation, the account; a refusal of a
 * known token is audited there). A type 1 sub-item is noted
 * (identity_claimed) unless the peer has require_user. Anything else
 * offered, or no verified user when the peer has require_user, is refused
 * (audited here). */
static bool identity_ok(struct dimse_srv *s, struct dimse_assoc *a, const struct peer *pe)
{
	const struct pdu_assoc *rq = a->u.rq;
	const char *why = NULL;
	enum err rc;

	if (!rq->has_identity) {
		if (!pe->require_user)
			return true;
		why = "no user identity, and the peer requires one";
	} else if (rq->id_type == PDU_UID_USERNAME) {
		if (!pe->require_user) {
			identity_claimed(a, pe, rq->id_primary);
			return true;
		}
		why = "user identity: a user name alone proves nothing, and the peer requires a user";
	} else if (!a->tls) {
		/* an API token must not cross the network in the clear: refused, so
		 * that a client that sends one learns to stop (and it is audited) */
		why = "user identity over plain TCP refused (the API token would travel unencrypted)";
	} else if (rq->id_type == PDU_UID_JWT) {
		return jwt_identity_ok(s, a, pe);
	} else if (rq->id_type != PDU_UID_USERNAME_PASS) {
		why = "user identity type not supported (user name and API token, or a JWT)";
	} else if (s->o.auth == NULL || s->o.vault == NULL) {
		why = "user identity cannot be verified here";
	} else if (rq->id_primary == NULL || rq->id_secondary == NULL ||
	           !token_is_api((const char *)secret_view(rq->id_secondary), secret_len(rq->id_secondary))) {
		why = "user identity: the passcode is not an API token";
	} else {
		memset(&a->user, 0, sizeof a->user);
		rc = auth_request_check(s->o.auth, (const char *)secret_view(rq->id_secondary),
		                        secret_len(rq->id_secondary), (int64_t)time(NULL), a->addr, NULL, &a->user);
		if (rc != ERR_OK || !a->user.api_token)
			why = rc == ERR_AUTH || rc == ERR_OK ? "user identity: API token refused" : "user identity cannot be verified";
		else if (strlen(a->user.user) != secret_len(rq->id_primary) ||
		         memcmp(a->user.user, secret_view(rq->id_primary), secret_len(rq->id_primary)) != 0)
			why = "user identity: the API token is not the named user's";
	}
	if (why != NULL)
		return identity_refused(a, pe, why);
	a->as_user = true;
	audit_session_ref(secret_view(rq->id_secondary), secret_len(rq->id_secondary), a->session);
	snprintf(a->ua, sizeof a->ua, "AE %s", pe->ae);
	return true;
}

/* " echo store ..." for PEER_RIGHT_* bits. */
static void rights_words(unsigned r, char *out, size_t cap)
{
	snprintf(out, cap, "%s%s%s%s%s", r & PEER_RIGHT_ECHO ? " echo" : "", r & PEER_RIGHT_STORE ? " store" : "",
	         r & PEER_RIGHT_FIND ? " find" : "", r & PEER_RIGHT_MOVE ? " move" : "",
	         r & PEER_RIGHT_GET ? " get" : "");
}

/* ---- at capacity ---- */

static unsigned max_assoc(const struct dimse_srv *s)
{
	return s->o.max_assoc ? s->o.max_assoc : DEFAULT_MAX_ASSOC;
}

/* One warning now and then (s->mu held) for the connections refused or
 * evicted at capacity: logged, not audited (an audit record is a sync:
 * whoever can open connections must not make us write at will). */
static void note_capacity(struct dimse_srv *s)
{
	int64_t now = clock_mono_ms();

	if (now - s->refused_log_ms < REFUSED_LOG_MS)
		return;
	log_warn("DICOM listener at its %u associations: %u connection%s without an association evicted, %u "
	         "answered A-ASSOCIATE-RJ, %u closed (all admitted)", max_assoc(s), s->evicted,
	         s->evicted == 1 ? "" : "s", s->rejected, s->refused);
	s->refused = s->evicted = s->rejected = 0;
	s->refused_log_ms = now;
}

/* A connection taken over the limit ended without an A-ASSOCIATE-RJ (its
 * TLS handshake failed, or no RQ came): counted in the warning, not
 * audited, as a connection closed at capacity is. */
static void capacity_closed(struct dimse_srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->refused++;
	note_capacity(s);
	pthread_mutex_unlock(&s->mu);
}

/* An A-ASSOCIATE-RJ sent at capacity: audited as the other refusals at
 * association time are, but once per REFUSED_LOG_MS at most, naming how
 * many went unaudited since (a peer retrying, or a flood, must not make
 * us write and sync at will); logged in the warning. */
static void capacity_rejected(struct dimse_srv *s, struct dimse_assoc *a, const char *why)
{
	int64_t now = clock_mono_ms();
	char reason[240];
	unsigned before = 0;
	bool audit;

	pthread_mutex_lock(&s->mu);
	s->rejected++;
	note_capacity(s);
	audit = s->rj_audit_ms == 0 || now - s->rj_audit_ms >= REFUSED_LOG_MS;
	if (audit) {
		before = s->rj_unaudited;
		s->rj_unaudited = 0;
		s->rj_audit_ms = now;
	} else {
		s->rj_unaudited++;
	}
	pthread_mutex_unlock(&s->mu);
	if (!audit)
		return;
	snprintf(reason, sizeof reason, "at capacity (max_associations %u): %s; %u more refused at capacity since the "
	         "last such record", max_assoc(s), why, before);
	dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, reason, NULL);
}

/* The A-ASSOCIATE-RQ of a connection taken over the limit: a known peer
 * with its certificate (cert_ok) is told to come back later, as PS3.8
 * 9.3.4 has it: rejected-transient, service provider (presentation),
 * local-limit-exceeded (DCMTK and others print it and retry); anyone else
 * gets the permanent refusal it would get below the limit, so that
 * whoever is no peer learns nothing of the load. Never accepted: the
 * user identity is not looked at. */
static enum err refuse_at_capacity(struct dimse_srv *s, struct dimse_assoc *a)
{
	const struct peer *pe;
	const char *why = NULL;

	snprintf(a->calling, sizeof a->calling, "%s", a->u.rq->calling);
	pe = peers_find(s->o.peers, a->calling);
	if (pe == NULL || !cert_ok(s, a, pe, true, &why)) {
		capacity_rejected(s, a, pe == NULL ? "unknown calling AE title" : why);
		return ul_reject(&a->u, PDU_RJ_PERMANENT, PDU_RJ_SRC_USER, PDU_RJ_CALLING_AE);
	}
	capacity_rejected(s, a, "A-ASSOCIATE-RJ, transient, local limit exceeded");
	return ul_reject(&a->u, PDU_RJ_TRANSIENT, PDU_RJ_SRC_PRESENTATION, PDU_RJ_LOCAL_LIMIT);
}

/* Answers the A-ASSOCIATE-RQ in a->u.rq: accept or reject, audited. */
static enum err on_assoc_rq(struct dimse_srv *s, struct dimse_assoc *a)
{
	const struct peer *pe;
	struct ul_policy pol;
	struct ul_syntax syn[DIMSE_SVC_MAX_SYN];
	struct pdu_assoc *trial = NULL;
	const char *why = NULL;
	char reason[200], has[40], wants[40];
	unsigned i, naccepted = 0, wanted = 0;
	enum err rc;

	snprintf(a->calling, sizeof a->calling, "%s", a->u.rq->calling);
	pe = peers_find(s->o.peers, a->calling);
	if (pe == NULL) {
		dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, "unknown calling AE title", NULL);
		log_warn("association from %s refused: calling AE title not configured", a->addr);
		return ul_reject(&a->u, 1, 1, 3);
	}
	if (!cert_ok(s, a, pe, true, &why)) {
		dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, why, NULL);
		log_warn("association of %s from %s refused: %s", pe->ae, a->addr, why);
		return ul_reject(&a->u, 1, 1, 3);
	}
	if (!identity_ok(s, a, pe))
		return ul_reject(&a->u, 1, 1, 1);
	dimse_svc_policy(pe, syn, &pol);
	/* a positive response carries nothing for a type 1 or 2 identity; for
	 * a JWT the standard expects a token of ours, which we do not issue:
	 * none */
	pol.identity_accepted = (a->as_user && !a->via_jwt) || a->claimed;
	trial = malloc(sizeof *trial);
	if (trial == NULL)
		return ERR_NOMEM;
	pdu_assoc_init(trial, PDU_ASSOC_AC);
	rc = ul_negotiate(a->u.rq, &pol, trial);
	for (i = 0; rc == ERR_OK && i < trial->npc; i++)
		if (trial->pc[i].result == 0)
			naccepted++;
	pdu_assoc_fini(trial);
	free(trial);
	if (rc != ERR_OK)
		return rc;
	/* the services proposed that the peer's rights do not allow */
	for (i = 0; i < a->u.rq->npc; i++) {
		unsigned r = dimse_svc_right_of(a->u.rq->pc[i].abstract);
		if ((r & pe->rights) == 0)   /* a storage SOP class: store (or get) */
			wanted |= r == (PEER_RIGHT_STORE | PEER_RIGHT_GET) ? PEER_RIGHT_STORE : r;
	}
	rights_words(pe->rights, has, sizeof has);
	if (naccepted == 0) {
		snprintf(reason, sizeof reason, "no right for any proposed service (rights of %s:%s)", pe->ae, has);
		dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, reason, NULL);
		log_warn("association of %s from %s refused: no right for any proposed service", pe->ae, a->addr);
		return ul_reject(&a->u, 1, 1, 1);
	}
	a->peer = pe;
	rc = ul_accept(&a->u, &pol);
	if (rc == ERR_OK && a->admitted != NULL)
		atomic_store(a->admitted, true);
	if (rc == ERR_OK) {
		snprintf(reason, sizeof reason, "%u of %u presentation contexts accepted%s", naccepted, a->u.rq->npc,
		         a->tls ? "" : " (plain TCP)");
		dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_SUCCESS, reason, NULL);
		log_info("association of %s from %s accepted%s%s", pe->ae, a->addr, a->as_user ? " for user " : "",
		         a->as_user ? a->user.user : "");
		if (wanted != 0) {
			/* accepted for what it may do; what it asked for beyond its
			 * rights is a refusal of its own, for an auditor to find */
			rights_words(wanted, wants, sizeof wants);
			snprintf(reason, sizeof reason, "presentation contexts refused for want of a right:%s (rights of %s:%s)",
			         wants, pe->ae, has);
			dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, reason, NULL);
			log_warn("association of %s from %s: services refused for want of a right:%s", pe->ae, a->addr, wants);
		}
	}
	return rc;
}

/* ---- one association ---- */

static void handle_event(struct dimse_srv *s, struct dimse_assoc *a, const struct ul_event *ev)
{
	enum err rc = ERR_OK;

	switch (ev->kind) {
	case UL_EV_ASSOC_RQ:
		rc = a->at_capacity ? refuse_at_capacity(s, a) : on_assoc_rq(s, a);
		break;
	case UL_EV_ASSOC_RJ:
		if (a->at_capacity) {
			capacity_rejected(s, a, "A-ASSOCIATE-RQ refused by the upper layer");
			break;
		}
		dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, "A-ASSOCIATE-RQ refused by the upper layer", NULL);
		log_warn("association from %s refused by the upper layer (reason %u)", a->addr, ev->rj.reason);
		break;
	case UL_EV_COMMAND:
		rc = dimse_svc_command(a, ev->pcid, ev->p, ev->n);
		break;
	case UL_EV_DATA:
		rc = dimse_svc_data(a, ev->pcid, ev->p, ev->n, ev->last);
		break;
	case UL_EV_RELEASE_RQ:
		dimse_svc_end(a);
		rc = ul_release_rp(&a->u);
		break;
	case UL_EV_ABORT:
		dimse_svc_end(a);
		log_info("association of %s from %s aborted%s%s", a->calling[0] ? a->calling : "?", a->addr,
		         ev->provider && ev->why ? ": " : "", ev->provider && ev->why ? ev->why : "");
		break;
	default:
		break;
	}
	if (rc != ERR_OK && !a->failed && a->u.state != UL_STA13 && a->u.state != UL_STA1) {
		log_warn("association of %s from %s: %s; aborting", a->calling, a->addr, err_str(rc));
		dimse_svc_end(a);
		ul_abort(&a->u);
	}
}

static ssize_t conn_recv(struct dimse_assoc *a, void *p, size_t n)
{
	if (a->tls != NULL) {
		unsigned idle_ms = a->o->idle_ms ? a->o->idle_ms : DEFAULT_IDLE_MS, tries = 0;
		ssize_t k;
		for (;;) {
			k = gnutls_record_recv(a->tls, p, n);
			if (k == GNUTLS_E_INTERRUPTED)
				continue;
			if (k == GNUTLS_E_AGAIN && tries++ < 16) {
				/* a TLS 1.3 post-handshake message (a session ticket
				 * from a server we connected to) was consumed, no data
				 * yet: wait for it */
				struct pollfd pf = { a->fd, POLLIN, 0 };
				if (rx_buffered(a) || poll(&pf, 1, (int)idle_ms) > 0)
					continue;
			}
			break;
		}
		return k < 0 ? -1 : k;
	}
	for (;;) {
		ssize_t k = recv(a->fd, p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		return k;
	}
}

static void run_assoc(struct dimse_srv *s, struct dimse_assoc *a)
{
	struct ul_config cfg = { s->ae, s->o.recv_max };
	struct ul_event ev;
	unsigned artim_seq = 0;
	int64_t artim_at = -1, idle_at;
	unsigned artim_ms = dimse_artim_ms(&s->o);
	unsigned idle_ms = s->o.idle_ms ? s->o.idle_ms : DEFAULT_IDLE_MS;

	if (a->at_capacity && artim_ms > REFUSE_MS)
		artim_ms = REFUSE_MS;   /* its RQ, then its close: a slot over the limit is held briefly */

	a->rx = malloc(RECV_BUF);
	a->rx_n = a->rx_off = 0;
	if (a->rx == NULL || ul_init_acceptor(&a->u, &cfg) != ERR_OK) {
		free(a->rx);
		a->rx = NULL;
		return;
	}
	idle_at = clock_mono_ms() + idle_ms;
	while (a->u.state != UL_STA1 && !a->failed) {
		struct pollfd pf = { a->fd, POLLIN, 0 };
		int64_t t = clock_mono_ms(), deadline;
		unsigned seq;
		ssize_t n;
		size_t used;
		int pr = 1;

		if (ul_artim(&a->u, &seq)) {
			if (artim_at < 0 || seq != artim_seq) {
				artim_seq = seq;
				artim_at = t + artim_ms;
			}
		} else {
			artim_at = -1;
		}
		deadline = artim_at >= 0 ? artim_at : idle_at;
		if (!rx_buffered(a)) {
			int wait = deadline > t ? (int)(deadline - t) : 0;
			pr = poll(&pf, 1, wait);
			if (pr < 0 && errno == EINTR)
				continue;
		}
		if (pr == 0) {
			if (artim_at >= 0) {
				if (a->u.state == UL_STA2 && a->at_capacity)
					capacity_closed(s);
				else if (a->u.state == UL_STA2)
					log_info("DICOM connection from %s%s: no A-ASSOCIATE-RQ within %u ms (ARTIM): closed",
					         a->addr, a->tls != NULL ? " (TLS handshake done)" : "", artim_ms);
				ul_artim_expired(&a->u, &ev);
				if (a->u.state != UL_STA1)
					break;
				continue;
			}
			log_warn("association of %s from %s idle for %u ms: aborting", a->calling, a->addr, idle_ms);
			dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_FAILURE, "idle timeout: aborted", NULL);
			dimse_svc_end(a);
			ul_abort(&a->u);
			if (dimse_assoc_flush(a) != ERR_OK)
				log_debug("abort not sent to %s", a->addr);
			break;
		}
		n = pr < 0 ? -1 : conn_recv(a, a->rx, RECV_BUF);
		if (n <= 0) {
			ul_transport_closed(&a->u, &ev);
			if (ev.kind == UL_EV_ABORT)
				handle_event(s, a, &ev);
			break;
		}
		a->rx_n = (size_t)n;
		a->rx_off = 0;
		/* a->rx may be refilled by dimse_assoc_poll() during an event */
		for (;;) {
			enum err rc = ul_feed(&a->u, a->rx + a->rx_off, a->rx_n - a->rx_off, &used, &ev);
			a->rx_off += used;
			if (rc == ERR_AGAIN)
				break;
			if (rc != ERR_OK) {
				log_warn("association from %s: upper layer error %s", a->addr, err_str(rc));
				a->failed = true;
				break;
			}
			handle_event(s, a, &ev);
			if (a->failed || dimse_assoc_flush(a) != ERR_OK)
				break;
		}
		/* the peer's silence counts from now: an operation that ran for
		 * longer (a C-GET of a large study, whose sub-operations' answers
		 * were read by dimse_assoc_wait) is not idle time */
		idle_at = clock_mono_ms() + idle_ms;
		if (!a->failed && dimse_assoc_flush(a) != ERR_OK)
			break;
		if (a->u.close)
			break;
	}
	dimse_svc_end(a);
	ul_fini(&a->u);
	free(a->rx);
	a->rx = NULL;
	free(a->grants);
	a->grants = NULL;
	a->ngrants = 0;
}

/* ---- associations we request (C-MOVE) ---- */

static int connect_to(const char *host, uint16_t port, unsigned ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	char ps[8];
	int fd = -1;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(ps, sizeof ps, "%u", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pf;
		int err = 0, pr;
		socklen_t el = sizeof err;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pf = (struct pollfd){ fd, POLLOUT, 0 };
			do
				pr = poll(&pf, 1, (int)ms);
			while (pr < 0 && errno == EINTR);
			if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
			close(fd);
			fd = -1;
		}
	}
	return fd;
}

struct out_wait {
	enum ul_ev_kind kind;   /* the last event that ends the wait */
	const char *why;        /* ABORT (provider): why */
	struct pdu_rj rj;       /* ASSOC_RJ: as received */
};

static void out_event(struct dimse_assoc *a, const struct ul_event *ev, void *ctx)
{
	struct out_wait *w = ctx;

	(void)a;
	if (ev->kind != UL_EV_NONE)
		w->kind = ev->kind;
	if (ev->kind == UL_EV_ABORT)
		w->why = ev->provider && ev->why ? ev->why : "A-ABORT from the peer";
	if (ev->kind == UL_EV_ASSOC_RJ)
		w->rj = ev->rj;
}

/* An A-ASSOCIATE-RJ in words (PS3.8 table 9-21). */
static void rj_str(const struct pdu_rj *rj, char *out, size_t cap)
{
	static const char *const user[] = { "", "no reason given", "application context name not supported",
	                                    "calling AE title not recognized", "", "", "", "called AE title not recognized" };
	static const char *const acse[] = { "", "no reason given", "protocol version not supported" };
	static const char *const pres[] = { "", "temporary congestion", "local limit exceeded" };
	const char *r = "";

	if (rj->source == 1 && rj->reason < 8)
		r = user[rj->reason];
	else if (rj->source == 2 && rj->reason < 3)
		r = acse[rj->reason];
	else if (rj->source == 3 && rj->reason < 3)
		r = pres[rj->reason];
	snprintf(out, cap, "A-ASSOCIATE-RJ, %s, %s%s%s", rj->result == 1 ? "permanent" : "transient",
	         rj->source == 1 ? "service user" : rj->source == 2 ? "service provider (ACSE)" : "service provider (presentation)",
	         r[0] ? ": " : "", r);
}

/* Reads and feeds until the state machine leaves Sta5 or Sta7 (or
 * ms pass): the A-ASSOCIATE-AC/RJ, the A-RELEASE-RP. */
static void out_read_until(struct dimse_assoc *a, enum ul_state while_in, unsigned ms, struct out_wait *w)
{
	int64_t end = clock_mono_ms() + ms;

	while (a->u.state == while_in && !a->failed) {
		struct pollfd pf = { a->fd, POLLIN, 0 };
		struct ul_event ev;
		int64_t t = clock_mono_ms();
		size_t used;
		ssize_t n;
		int pr = 1;
		if (t >= end)
			break;
		if (!rx_buffered(a)) {
			pr = poll(&pf, 1, (int)(end - t));
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				break;
		}
		n = conn_recv(a, a->rx, RECV_BUF);
		if (n <= 0) {
			ul_transport_closed(&a->u, &ev);
			out_event(a, &ev, w);
			break;
		}
		a->rx_n = (size_t)n;
		a->rx_off = 0;
		for (;;) {
			enum err rc = ul_feed(&a->u, a->rx + a->rx_off, a->rx_n - a->rx_off, &used, &ev);
			a->rx_off += used;
			if (rc == ERR_AGAIN)
				break;
			if (rc != ERR_OK) {
				a->failed = true;
				break;
			}
			out_event(a, &ev, w);
			if (dimse_assoc_flush(a) != ERR_OK)
				break;
		}
		if (!a->failed && dimse_assoc_flush(a) != ERR_OK)
			break;
	}
}

enum err dimse_assoc_connect(struct dimse_assoc *from, const struct peer *dest, const struct pdu_assoc *rq,
                             struct dimse_assoc **out, char *why, size_t whylen)
{
	return dimse_srv_connect(from->srv, dest, false, rq, out, why, whylen);
}

enum err dimse_srv_connect(struct dimse_srv *s, const struct peer *dest, bool plain, const struct pdu_assoc *rq,
                           struct dimse_assoc **out, char *why, size_t whylen)
{
	struct dimse_assoc *a = calloc(1, sizeof *a);
	struct ul_config cfg = { s->ae, s->o.recv_max };
	unsigned artim_ms = dimse_artim_ms(&s->o);
	unsigned idle_ms = s->o.idle_ms ? s->o.idle_ms : DEFAULT_IDLE_MS;
	struct timeval tv = { (time_t)(idle_ms / 1000), (suseconds_t)(idle_ms % 1000) * 1000 };
	struct out_wait w = { UL_EV_NONE, NULL, { 0, 0, 0 } };
	const char *cw = NULL;
	int one = 1, r;
	enum err rc = ERR_IO;

	if (a == NULL)
		return ERR_NOMEM;
	a->o = &s->o;
	a->srv = s;
	a->peer = dest;
	a->fd = -1;
	snprintf(a->calling, sizeof a->calling, "%s", dest->ae);
	snprintf(a->addr, sizeof a->addr, "%.60s:%u", dest->host, dest->port);
	a->rx = malloc(RECV_BUF);
	if (a->rx == NULL) {
		rc = ERR_NOMEM;
		goto fail;
	}
	a->fd = connect_to(dest->host, dest->port, artim_ms);
	if (a->fd < 0) {
		snprintf(why, whylen, "cannot connect to %s", a->addr);
		goto fail;
	}
	(void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	(void)setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (plain)
		goto associate;
	if (gnutls_init(&a->tls, GNUTLS_CLIENT) != 0) {
		a->tls = NULL;
		snprintf(why, whylen, "cannot start TLS");
		goto fail;
	}
	if (gnutls_priority_set(a->tls, s->prio) != 0 ||
	    gnutls_credentials_set(a->tls, GNUTLS_CRD_CERTIFICATE, s->cred) != 0) {
		snprintf(why, whylen, "cannot start TLS");
		goto fail;
	}
	tls_transport(a);
	gnutls_handshake_set_timeout(a->tls, artim_ms);
	do
		r = gnutls_handshake(a->tls);
	while (r < 0 && gnutls_error_is_fatal(r) == 0 && r != GNUTLS_E_AGAIN);
	if (r < 0) {
		snprintf(why, whylen, "TLS handshake with %s failed: %s", a->addr, gnutls_strerror(r));
		goto fail;
	}
	if (!cert_ok(s, a, dest, false, &cw)) {
		snprintf(why, whylen, "%s: %s", dest->ae, cw ? cw : "certificate refused");
		rc = ERR_DENIED;
		goto fail;
	}
associate:
	if (ul_init_requestor(&a->u, &cfg) != ERR_OK) {
		rc = ERR_NOMEM;
		goto fail;
	}
	a->u_init = true;
	rc = ul_request(&a->u, rq);
	if (rc == ERR_OK)
		rc = ul_connected(&a->u);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(a);
	if (rc != ERR_OK) {
		snprintf(why, whylen, "cannot send the A-ASSOCIATE-RQ to %s", a->addr);
		goto fail;
	}
	out_read_until(a, UL_STA5, artim_ms, &w);
	if (a->u.state != UL_STA6) {
		char rjs[160] = "A-ASSOCIATE-RJ";
		if (w.kind == UL_EV_ASSOC_RJ)
			rj_str(&w.rj, rjs, sizeof rjs);
		snprintf(why, whylen, "%s refused the association (%s)", dest->ae,
		         w.kind == UL_EV_ASSOC_RJ ? rjs : w.kind == UL_EV_ABORT ? w.why : "no answer");
		rc = ERR_DENIED;
		goto fail;
	}
	*out = a;
	return ERR_OK;
fail:
	dimse_assoc_close(a);
	return rc;
}

void dimse_assoc_close(struct dimse_assoc *a)
{
	if (a == NULL)
		return;
	if (a->u_init) {
		if (a->u.state == UL_STA6 && !a->failed && ul_release_rq(&a->u) == ERR_OK && dimse_assoc_flush(a) == ERR_OK) {
			struct out_wait w = { UL_EV_NONE, NULL, { 0, 0, 0 } };
			out_read_until(a, UL_STA7, dimse_artim_ms(a->o), &w);
		}
		ul_fini(&a->u);
	}
	if (a->tls != NULL) {
		gnutls_bye(a->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(a->tls);
	}
	if (a->fd >= 0)
		close(a->fd);
	free(a->rx);
	free(a->rb);
	free(a);
}

static bool handshake(struct dimse_srv *s, struct dimse_assoc *a, unsigned ms, const char **why)
{
	const gnutls_datum_t *chain;
	unsigned n = 0;
	int r;

	if (gnutls_init(&a->tls, GNUTLS_SERVER) != 0) {
		a->tls = NULL;
		*why = "cannot start TLS";
		return false;
	}
	if (gnutls_priority_set(a->tls, s->prio) != 0 ||
	    gnutls_credentials_set(a->tls, GNUTLS_CRD_CERTIFICATE, s->cred) != 0) {
		*why = "cannot start TLS";
		return false;
	}
	gnutls_certificate_server_set_request(a->tls, GNUTLS_CERT_REQUIRE);
	tls_transport(a);
	gnutls_handshake_set_timeout(a->tls, ms);
	do
		r = gnutls_handshake(a->tls);
	while (r < 0 && gnutls_error_is_fatal(r) == 0 && r != GNUTLS_E_AGAIN);
	if (r < 0) {
		*why = gnutls_strerror(r);
		return false;
	}
	chain = gnutls_certificate_get_peers(a->tls, &n);
	if (chain == NULL || n == 0) {
		*why = "no client certificate";
		return false;
	}
	{
		uint8_t fp[32];
		size_t fl = sizeof fp;
		if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &chain[0], fp, &fl) != 0 || fl != 32) {
			*why = "cannot hash the client certificate";
			return false;
		}
		peers_fingerprint_format(fp, a->fp);
	}
	return true;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct dimse_srv *s = c->srv;
	struct dimse_assoc *a = calloc(1, sizeof *a);
	struct conn **pp;

	if (a != NULL) {
		const char *why = NULL;
		unsigned ms = dimse_artim_ms(&s->o);
		a->o = &s->o;
		a->srv = s;
		a->fd = c->fd;
		a->admitted = &c->admitted;
		a->peer_ss = c->ss;
		a->at_capacity = c->refusing;
		snprintf(a->addr, sizeof a->addr, "%s", c->addr);
		if (c->refusing) {
			/* over the limit: a short while for the handshake and the RQ */
			struct timeval tv = { (time_t)(REFUSE_MS / 1000), 0 };
			ms = ms < REFUSE_MS ? ms : REFUSE_MS;
			(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
			(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		}
		if (c->plain || handshake(s, a, ms, &why)) {
			if (!c->plain)
				atomic_store(&c->tls_done, true);
			run_assoc(s, a);
		} else if (c->refusing) {
			capacity_closed(s);   /* not audited: nothing but a connection was shown */
		} else {
			char reason[200];
			bool evicted;
			pthread_mutex_lock(&s->mu);
			evicted = c->evicted;
			pthread_mutex_unlock(&s->mu);
			/* one shut down at capacity (evict_one) is logged there, not audited */
			if (!evicted) {
				snprintf(reason, sizeof reason, "TLS handshake failed: %s", why ? why : "?");
				dimse_assoc_audit(a, DIMSE_AUDIT_ASSOC, AUDIT_DENIED, reason, NULL);
				log_warn("DICOM-TLS connection from %s refused: %s", a->addr, why ? why : "?");
			}
		}
		if (a->tls != NULL) {
			gnutls_bye(a->tls, GNUTLS_SHUT_WR);
			gnutls_deinit(a->tls);
		}
		free(a->rb);
		free(a);
	}
	pthread_mutex_lock(&s->mu);
	for (pp = &s->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	close(c->fd);
	if (c->refusing)
		s->nrefusing--;
	else
		s->nconn--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(c);
	return NULL;
}

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		port = ntohs(in->sin_port);
		snprintf(out, cap, "%s:%u", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		port = ntohs(in6->sin6_port);
		snprintf(out, cap, "[%s]:%u", ip, port);
	} else {
		snprintf(out, cap, "?");
	}
}

/* The same host (the address without the port). */
static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
		              &((const struct sockaddr_in *)(const void *)b)->sin_addr, sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return true;
}

/* Connections without an accepted association (s->mu held) from c's host. */
static unsigned waiting_from(const struct dimse_srv *s, const struct conn *c)
{
	const struct conn *o;
	unsigned n = 0;

	for (o = s->conns; o != NULL; o = o->next)
		n += !o->evicted && !o->refusing && !atomic_load(&o->admitted) && same_host(&o->ss, &c->ss);
	return n;
}

/* At capacity (s->mu held): a connection without an accepted association
 * (a TLS handshake or an A-ASSOCIATE-RQ still to come) is shut down, so
 * that a new one can be taken: who opens connections and says nothing
 * (before any certificate is checked) cannot keep the peers out for the
 * ARTIM time; admitted associations are never evicted. The one chosen is
 * of the host holding the most such connections if it holds more than
 * half of them (a flood from one address churns its own, never a peer's
 * from elsewhere; a peer's few parallel associations are no flood), else
 * one whose TLS handshake is not done (a plain TCP flood does not undo a
 * handshake done), then the oldest (dimse_evict_choose). Its thread ends
 * it (and counts it out); meanwhile up to EVICT_SLACK more are taken.
 * false: none to evict. */
size_t dimse_evict_choose(const struct dimse_evict_cand *c, size_t n, unsigned flood_at)
{
	size_t i, best = 0;

	for (i = 1; i < n; i++) {
		const struct dimse_evict_cand *a = &c[i], *b = &c[best];
		unsigned fa = a->waiting_from_host > flood_at ? a->waiting_from_host : 0;
		unsigned fb = b->waiting_from_host > flood_at ? b->waiting_from_host : 0;
		if (fa != fb) {
			if (fa > fb)
				best = i;
		} else if (a->tls_done != b->tls_done) {
			if (!a->tls_done)
				best = i;
		} else if (a->since_ms < b->since_ms) {
			best = i;
		}
	}
	return best;
}

static bool evict_one(struct dimse_srv *s, unsigned max)
{
	struct dimse_evict_cand *cand;
	struct conn *c, **of, *old;
	size_t n = 0;

	if (s->nconn >= max + EVICT_SLACK)
		return false;
	cand = calloc(s->nconn + 1, sizeof *cand);
	of = calloc(s->nconn + 1, sizeof *of);
	for (c = s->conns; cand != NULL && of != NULL && c != NULL && n < s->nconn + 1; c = c->next) {
		if (c->evicted || c->refusing || atomic_load(&c->admitted))
			continue;
		cand[n].waiting_from_host = waiting_from(s, c);
		cand[n].tls_done = atomic_load(&c->tls_done);
		cand[n].since_ms = c->since_ms;
		of[n++] = c;
	}
	/* a host holding more than half the waiting connections is a flood
	 * (of the limit, a flood could never count as one while accepted
	 * associations held the other half) */
	old = n > 0 ? of[dimse_evict_choose(cand, n, (unsigned)(n / 2))] : NULL;
	free(cand);
	free(of);
	if (old == NULL)
		return false;
	(void)shutdown(old->fd, SHUT_RDWR);   /* its fd is closed by its own thread, under s->mu */
	old->evicted = true;
	s->evicted++;
	note_capacity(s);
	return true;
}

static void accept_one(struct dimse_srv *s, int lfd, bool plain)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	struct conn *c;
	pthread_attr_t at;
	pthread_t t;
	int one = 1, fd;
	unsigned max = max_assoc(s);
	unsigned idle_ms = s->o.idle_ms ? s->o.idle_ms : DEFAULT_IDLE_MS;
	struct timeval tv = { (time_t)(idle_ms / 1000), (suseconds_t)(idle_ms % 1000) * 1000 };

	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* every DICOM socket: no Nagle delay on small PDUs */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		log_warn("cannot set TCP_NODELAY");
	/* a peer that stops reading or sends half a TLS record: the blocking
	 * calls give up after the idle timeout */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->plain = plain;
	c->since_ms = clock_mono_ms();
	atomic_init(&c->admitted, false);
	atomic_init(&c->tls_done, false);
	c->ss = ss;
	addr_str(&ss, c->addr, sizeof c->addr);
	pthread_mutex_lock(&s->mu);
	if (!s->stopping && s->nconn >= max && !evict_one(s, max)) {
		/* none to evict: a few are told so (refuse_at_capacity), the
		 * rest closed */
		if (s->nrefusing >= REFUSE_SLACK) {
			s->refused++;
			note_capacity(s);
			pthread_mutex_unlock(&s->mu);
			close(fd);
			free(c);
			return;
		}
		c->refusing = true;
	}
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		close(fd);
		free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	if (c->refusing)
		s->nrefusing++;
	else
		s->nconn++;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_main, c) != 0) {
		s->conns = c->next;
		if (c->refusing)
			s->nrefusing--;
		else
			s->nconn--;
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&at);
	pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg)
{
	struct dimse_srv *s = arg;

	for (;;) {
		struct pollfd pf[3];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){ s->wake[0], POLLIN, 0 };
		pf[n++] = (struct pollfd){ s->lfd, POLLIN, 0 };
		if (s->pfd >= 0)
			pf[n++] = (struct pollfd){ s->pfd, POLLIN, 0 };
		if (poll(pf, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents)
			break;
		if (pf[1].revents & POLLIN)
			accept_one(s, s->lfd, false);
		if (n > 2 && (pf[2].revents & POLLIN))
			accept_one(s, s->pfd, true);
	}
	return NULL;
}

static enum err bind_listen(const char *spec, int *fdp, uint16_t *port, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	int fd, one = 1;
	enum err rc = http_listen_parse(spec, &ss, &sl);

	if (rc != ERR_OK) {
		snprintf(why, whylen, "bad DICOM listen address '%.100s' (HOST:PORT)", spec);
		return rc;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
		snprintf(why, whylen, "cannot listen on %.100s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ERR_IO;
	}
	sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                        : ((struct sockaddr_in *)&ss)->sin_port);
	*fdp = fd;
	return ERR_OK;
}

static enum err load_cas(struct dimse_srv *s, char *why, size_t whylen)
{
	const struct peers *ps = s->o.peers;
	size_t i;

	if (ps == NULL || ps->n == 0)
		return ERR_OK;
	s->ca = calloc(ps->n, sizeof *s->ca);
	if (s->ca == NULL)
		return ERR_NOMEM;
	s->nca = ps->n;
	for (i = 0; i < ps->n; i++) {
		const struct peer *pe = &ps->p[i];
		char path[VAULT_PATH_MAX + PEER_PATH_MAX + 2];
		uint8_t *pem = NULL;
		size_t len = 0;
		gnutls_datum_t d;
		int r;
		if (pe->has_fp || pe->ca[0] == 0)
			continue;   /* fingerprint, or tls = no without either: no CA */
		if (vault_path(s->o.vault, pe->ca, path, sizeof path) != 0 || file_read_all(path, CA_MAX, &pem, &len) != ERR_OK) {
			snprintf(why, whylen, "peer %s: cannot read the CA file %.200s", pe->ae, path);
			return ERR_IO;
		}
		d.data = pem;
		d.size = (unsigned)len;
		r = gnutls_x509_trust_list_init(&s->ca[i], 0);
		if (r == 0)
			r = gnutls_x509_trust_list_add_trust_mem(s->ca[i], &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
		free(pem);
		if (r <= 0) {
			snprintf(why, whylen, "peer %s: no CA certificate in %.200s", pe->ae, path);
			return ERR_PARSE;
		}
	}
	return ERR_OK;
}

enum err dimse_srv_start(const struct dimse_srv_opts *o, struct dimse_srv **out, char *why, size_t whylen)
{
	struct dimse_srv *s = calloc(1, sizeof *s);
	gnutls_datum_t cd, kd;
	enum err rc = ERR_INTERNAL;

	if (s == NULL)
		return ERR_NOMEM;
	s->o = *o;
	s->lfd = s->pfd = -1;
	s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (!pdu_ae_ok(o->ae)) {
		snprintf(why, whylen, "[dicom] ae_title: 1 to 16 characters, no backslash");
		rc = ERR_PARSE;
		goto out;
	}
	snprintf(s->ae, sizeof s->ae, "%s", o->ae);
	if (gnutls_certificate_allocate_credentials(&s->cred) != 0 ||
	    gnutls_priority_init(&s->prio, TLS_PRIORITIES, NULL) != 0) {
		snprintf(why, whylen, "cannot set up TLS");
		goto out;
	}
	cd.data = (unsigned char *)o->cert_pem;
	cd.size = (unsigned)o->cert_len;
	kd.data = (unsigned char *)secret_view(o->key_pem);
	kd.size = (unsigned)secret_len(o->key_pem);
	if (gnutls_certificate_set_x509_key_mem(s->cred, &cd, &kd, GNUTLS_X509_FMT_PEM) != 0) {
		snprintf(why, whylen, "cannot load the TLS certificate and key for DICOM-TLS");
		goto out;
	}
	rc = load_cas(s, why, whylen);
	if (rc != ERR_OK)
		goto out;
	if (o->listen == NULL && o->plain_listen == NULL) {
		snprintf(why, whylen, "no DICOM listen address");
		rc = ERR_PARSE;
		goto out;
	}
	if (o->listen != NULL) {
		rc = bind_listen(o->listen, &s->lfd, &s->port, why, whylen);
		if (rc != ERR_OK)
			goto out;
	}
	if (o->plain_listen != NULL) {
		rc = bind_listen(o->plain_listen, &s->pfd, &s->pport, why, whylen);
		if (rc != ERR_OK)
			goto out;
	}
	rc = ERR_IO;
	if (pipe2(s->wake, O_CLOEXEC) != 0 || pthread_create(&s->thr, NULL, accept_main, s) != 0) {
		snprintf(why, whylen, "cannot start the DICOM listener thread");
		goto out;
	}
	s->thr_started = true;
	*out = s;
	return ERR_OK;
out:
	dimse_srv_stop(s);
	return rc;
}

uint16_t dimse_srv_port(const struct dimse_srv *s)
{
	return s->port;
}

uint16_t dimse_srv_plain_port(const struct dimse_srv *s)
{
	return s->pport;
}

const char *dimse_srv_ae(const struct dimse_srv *s)
{
	return s->ae;
}

void dimse_srv_stop(struct dimse_srv *s)
{
	struct conn *c;
	size_t i;

	if (s == NULL)
		return;
	if (s->thr_started) {
		ssize_t k = write(s->wake[1], "x", 1);
		(void)k;
		pthread_join(s->thr, NULL);
	}
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	for (c = s->conns; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (s->nconn > 0 || s->nrefusing > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->pfd >= 0)
		close(s->pfd);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	for (i = 0; i < s->nca; i++)
		if (s->ca[i] != NULL)
			gnutls_x509_trust_list_deinit(s->ca[i], 1);
	free(s->ca);
	if (s->prio != NULL)
		gnutls_priority_deinit(s->prio);
	if (s->cred != NULL)
		gnutls_certificate_free_credentials(s->cred);
	jwt_verifier_free(s->own_jwt);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- from the configuration ---- */

bool dimse_srv_needed(const struct ini *conf)
{
	const char *plain = conf != NULL ? ini_get(conf, "dicom", NULL, "plain_listen") : NULL;
	size_t i;

	if (plain != NULL && plain[0] != 0)
		return true;
	for (i = 0; conf != NULL && i < conf->nsections; i++)
		if (strcmp(conf->sections[i].section, "peer") == 0)
			return true;
	return false;
}

/* [dicom] KEY as seconds (1..86400) into *ms; absent: *ms unchanged. */
static enum err conf_seconds(const struct ini *conf, const char *key, unsigned *ms, char *why, size_t whylen)
{
	const char *v = ini_get(conf, "dicom", NULL, key);
	char *end = NULL;
	unsigned long n;

	if (v == NULL)
		return ERR_OK;
	n = strtoul(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != 0 || n < 1 || n > 86400) {
		snprintf(why, whylen, "[dicom] %s: a number of seconds, 1 to 86400", key);
		return ERR_PARSE;
	}
	*ms = (unsigned)n * 1000u;
	return ERR_OK;
}

enum err dimse_srv_opts_conf(const struct ini *conf, struct dimse_srv_opts *o, char *why, size_t whylen)
{
	const char *mx;
	enum err rc;

	memset(o, 0, sizeof *o);
	o->listen = ini_get(conf, "dicom", NULL, "listen");
	if (o->listen == NULL || o->listen[0] == 0)
		o->listen = DIMSE_SRV_DEFAULT_LISTEN;
	o->ae = ini_get(conf, "dicom", NULL, "ae_title");
	if (o->ae == NULL || o->ae[0] == 0)
		o->ae = DIMSE_SRV_DEFAULT_AE;
	o->plain_listen = ini_get(conf, "dicom", NULL, "plain_listen");
	if (o->plain_listen != NULL && o->plain_listen[0] == 0)
		o->plain_listen = NULL;
	rc = conf_seconds(conf, "artim", &o->artim_ms, why, whylen);
	if (rc == ERR_OK)
		rc = conf_seconds(conf, "idle_timeout", &o->idle_ms, why, whylen);
	if (rc == ERR_OK)
		rc = conf_seconds(conf, "stall_timeout", &o->stall_ms, why, whylen);
	if (rc != ERR_OK)
		return rc;
	mx = ini_get(conf, "dicom", NULL, "max_associations");
	if (mx != NULL) {
		char *end = NULL;
		unsigned long n = strtoul(mx, &end, 10);
		if (mx[0] < '0' || mx[0] > '9' || *end != 0 || n < 1 || n > 1000)
			return err_why(why, whylen, ERR_PARSE, "[dicom] max_associations: 1 to 1000");
		o->max_assoc = (unsigned)n;
	}
	mx = ini_get(conf, "dicom", NULL, "max_pdu");
	if (mx != NULL) {
		uint64_t n = 0;
		if (!vr_uint_parse(mx, strlen(mx), UL_RECV_MAX_CAP, &n) || n < UL_PEER_MIN_MAX)
			return err_why(why, whylen, ERR_PARSE, "[dicom] max_pdu: %u to %u bytes", (unsigned)UL_PEER_MIN_MAX,
			               (unsigned)UL_RECV_MAX_CAP);
		o->recv_max = (uint32_t)n;
	}
	mx = ini_get(conf, "dicom", NULL, "max_find_matches");
	if (mx != NULL) {
		uint64_t n = 0;
		if (!vr_uint_parse(mx, strlen(mx), DIMSE_FIND_MATCHES_MAX, &n) || n < 1)
			return err_why(why, whylen, ERR_PARSE, "[dicom] max_find_matches: 1 to %u", DIMSE_FIND_MATCHES_MAX);
		o->max_find = (uint32_t)n;
	}
	return ERR_OK;
}

/* [auth] jwt_key, jwt_issuer, jwt_audience, jwt_max_lifetime: a verifier
 * of JWT user identities, or *out NULL when jwt_key is not set. */
static enum err jwt_load(struct vault *v, const char *ae, struct jwt_verifier **out, char *why, size_t whylen)
{
	const char *key = ini_get(v->conf, "auth", NULL, "jwt_key");
	const char *iss = ini_get(v->conf, "auth", NULL, "jwt_issuer");
	const char *aud = ini_get(v->conf, "auth", NULL, "jwt_audience");
	const char *life = ini_get(v->conf, "auth", NULL, "jwt_max_lifetime");
	char path[4096], w[200];
	long long ttl = 3600;
	uint8_t *pem = NULL;
	size_t len = 0;
	char *end = NULL;
	enum err rc;

	*out = NULL;
	if (key == NULL || key[0] == 0) {
		if ((iss != NULL && iss[0]) || (aud != NULL && aud[0]) || (life != NULL && life[0]))
			return err_why(why, whylen, ERR_PARSE, "[auth] jwt_issuer, jwt_audience or jwt_max_lifetime "
			               "without jwt_key");
		return ERR_OK;
	}
	if (iss == NULL || iss[0] == 0)
		return err_why(why, whylen, ERR_PARSE, "[auth] jwt_key needs jwt_issuer");
	if (life != NULL) {
		ttl = strtoll(life, &end, 10);
		if (life[0] < '0' || life[0] > '9' || *end != 0 || ttl < 1 || ttl > 86400)
			return err_why(why, whylen, ERR_PARSE, "[auth] jwt_max_lifetime: 1 to 86400 seconds");
	}
	if (vault_path(v, key, path, sizeof path) != 0)
		return err_why(why, whylen, ERR_PARSE, "[auth] jwt_key: path too long");
	if (file_read_all(path, 64 * 1024, &pem, &len) != ERR_OK)
		return err_why(why, whylen, ERR_IO, "[auth] jwt_key: cannot read %s", path);
	w[0] = 0;
	rc = jwt_verifier_new(pem, len, iss, aud != NULL && aud[0] ? aud : ae, (int64_t)ttl, out, w, sizeof w);
	free(pem);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "[auth] %s (%s)", w[0] ? w : "jwt_key refused", path);
	return ERR_OK;
}

enum err dimse_srv_start_conf(struct vault *v, const char *listen_override, const uint8_t *cert_pem,
                              size_t cert_len, const struct secret *key_pem, struct audit *au,
                              struct auth *auth, struct dimse_srv **out, char *desc, size_t desclen, char *why, size_t whylen)
{
	struct dimse_srv_opts o;
	struct jwt_verifier *jwt = NULL;
	struct dimse_srv *s = NULL;
	enum err rc;

	rc = dimse_srv_opts_conf(v->conf, &o, why, whylen);
	if (rc != ERR_OK)
		return rc;
	if (listen_override != NULL && listen_override[0] != 0)
		o.listen = listen_override;
	rc = jwt_load(v, o.ae, &jwt, why, whylen);
	if (rc != ERR_OK)
		return rc;
	o.cert_pem = cert_pem;
	o.cert_len = cert_len;
	o.key_pem = key_pem;
	o.peers = v->peers;
	o.colls = v->colls;
	o.vault = v;
	o.audit = au;
	o.auth = auth;
	o.jwt = jwt;
	rc = dimse_srv_start(&o, &s, why, whylen);
	if (rc != ERR_OK) {
		jwt_verifier_free(jwt);
		return rc;
	}
	s->own_jwt = jwt;
	if (o.plain_listen != NULL)
		log_warn("plain-TCP DICOM listener on %s (port %u): associations there are neither encrypted nor "
		         "authenticated by certificate, only by AE title (peers with tls = no, from their host)",
		         o.plain_listen, s->pport);
	snprintf(desc, desclen, "DICOM-TLS port %u AE %s, %zu peers%s", s->port, s->ae, v->peers->n,
	         o.plain_listen ? ", plain TCP too" : "");
	*out = s;
	return ERR_OK;
}
