/* http.c: the HTTPS listener (SPEC section 3). libmicrohttpd over GnuTLS
 * with TLS 1.3 only, a thread per connection; this file owns the request
 * life cycle: limits on the URL, the headers and the body (checked from
 * Content-Length before reading and while streaming), the session check
 * of every non-public route before its body is read, the response helpers
 * that add the security headers to every response, and the access log
 * (route names, never raw paths, tokens or bodies). Routes are in
 * http_routes.c. See docs/internals/http.md. Layer: daemon. */
#include <errno.h>
#include <jansson.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "dicomvault/clock.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/vault.h"
#include "http_int.h"

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define CERT_MAX (1u << 20)

/* ---- listen address ---- */

enum err http_listen_split(const char *s, char host[HTTP_HOST_MAX + 1], char port[6])
{
	const char *colon, *h = s;
	size_t hl, pl, i;

	host[0] = port[0] = 0;
	if (s == NULL)
		return ERR_PARSE;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return ERR_PARSE;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return ERR_PARSE;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL)
			return ERR_PARSE;   /* a bare IPv6 address needs brackets */
	}
	pl = strlen(colon + 1);
	if (hl == 0 || hl > HTTP_HOST_MAX || pl == 0 || pl > 5)
		return ERR_PARSE;
	for (i = 0; i < pl; i++)
		if (colon[1 + i] < '0' || colon[1 + i] > '9')
			return ERR_PARSE;
	if (strtoul(colon + 1, NULL, 10) > 65535)
		return ERR_PARSE;   /* (only digits follow, at most 5) */
	memcpy(host, h, hl);
	host[hl] = 0;
	memcpy(port, colon + 1, pl);
	port[pl] = 0;
	return ERR_OK;
}

enum err http_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[HTTP_HOST_MAX + 1], port[6];
	struct addrinfo hints, *res = NULL;

	if (http_listen_split(s, host, port) != ERR_OK)
		return ERR_PARSE;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
		return ERR_NOTFOUND;
	if (res->ai_addrlen > sizeof *ss) {
		freeaddrinfo(res);
		return ERR_INTERNAL;
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return ERR_OK;
}

/* ---- responses ---- */

struct wiped {
	size_t n;
	int slot;          /* its user's entry in send_users, or -1 */
	uint8_t data[];
};

/* Bytes of http_send bodies queued and not yet freed, every connection
 * together (HTTP_SEND_BUDGET), and per user (HTTP_SEND_USER_SHARE; an entry
 * is free when it holds nothing) */
static pthread_mutex_t send_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t send_inflight;
static struct {
	int64_t user;
	size_t held;
} send_users[HTTP_SEND_USERS];

/* The entry of user (held or free), or -1 when all are taken by others.
 * Called with send_mu held. */
static int send_slot(int64_t user)
{
	int i, free_slot = -1;

	for (i = 0; i < (int)HTTP_SEND_USERS; i++) {
		if (send_users[i].held > 0 && send_users[i].user == user)
			return i;
		if (send_users[i].held == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0)
		send_users[free_slot].user = user;
	return free_slot;
}

static void wiped_free(void *cls)
{
	struct wiped *w = cls;

	pthread_mutex_lock(&send_mu);
	send_inflight -= w->n;
	if (w->slot >= 0)
		send_users[w->slot].held -= w->n;
	pthread_mutex_unlock(&send_mu);
	mem_wipe(w->data, w->n);
	free(w);
}

static const char *const common_headers[] = {
	"Strict-Transport-Security", "max-age=63072000",
	"X-Content-Type-Options", "nosniff",
	"Referrer-Policy", "no-referrer",
	"X-Frame-Options", "DENY",
	"Cross-Origin-Opener-Policy", "same-origin",
	"Cross-Origin-Resource-Policy", "same-origin",
	"Cache-Control", "no-store",
	NULL,
};

#define CSP_PAGE "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define CSP_API  "default-src 'none'; frame-ancestors 'none'"

static bool watch_anon_over(struct http_server *s, struct MHD_Connection *c);
static void early_answered(void);

/* Adds the headers of every response, queues it and logs the answer. An
 * answer to an unauthenticated request on a connection past
 * HTTP_ANON_TIMEOUT says Connection: close (the watcher would close it). */
static enum MHD_Result send_resp(struct http_req *r, struct MHD_Response *resp, unsigned status, const char *ctype,
                                 unsigned flags, const char *const *extra)
{
	enum MHD_Result q;
	size_t i;
	bool ok = true, closing = false;

	for (i = 0; common_headers[i] != NULL; i += 2)
		ok = ok && MHD_add_response_header(resp, common_headers[i], common_headers[i + 1]) == MHD_YES;
	ok = ok && MHD_add_response_header(resp, "Content-Security-Policy",
	                                   (flags & HTTP_R_HTML) ? CSP_PAGE : CSP_API) == MHD_YES;
	if (ctype != NULL)
		ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES;
	for (i = 0; extra != NULL && extra[i] != NULL; i += 2) {
		ok = ok && MHD_add_response_header(resp, extra[i], extra[i + 1]) == MHD_YES;
		closing = closing || strcasecmp(extra[i], MHD_HTTP_HEADER_CONNECTION) == 0;
	}
	if (!closing && !r->authed && watch_anon_over(r->srv, r->c)) {
		ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
		log_info("closing a connection from %s used for %u s without an authenticated request", r->addr,
		         HTTP_ANON_TIMEOUT);
	}
	q = ok ? MHD_queue_response(r->c, status, resp) : MHD_NO;
	MHD_destroy_response(resp);
	r->answered = true;
	early_answered();
	log_info("%s %s %u %s", r->method_log, r->route ? r->route->name : "-", status, r->addr);
	return q;
}

enum MHD_Result http_send(struct http_req *r, unsigned status, const char *ctype, const void *body, size_t n,
                          unsigned flags, const char *const *extra)
{
	static const char *const retry[] = { "Retry-After", "5", NULL };
	struct MHD_Response *resp;
	struct wiped *w;
	size_t held, mine = 0;
	int slot = -1;
	bool refusable, over = false;

	/* reads only: an answer whose work is done (a STOW that stored, an
	 * administrative change) is never refused after the fact */
	refusable = n > HTTP_SEND_SMALL && r->method != NULL &&
	            (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0);
	pthread_mutex_lock(&send_mu);
	held = send_inflight;
	if (r->authed && n > 0)
		slot = send_slot(r->sess.user_id);
	if (slot >= 0)
		mine = send_users[slot].held;
	if (refusable)
		over = held + n > HTTP_SEND_BUDGET || (slot >= 0 && mine + n > HTTP_SEND_USER_SHARE);
	if (!over) {
		send_inflight += n;
		if (slot >= 0)
			send_users[slot].held += n;
	}
	pthread_mutex_unlock(&send_mu);
	if (over) {
		log_warn("%s %s: an answer of %zu bytes refused: %zu bytes of answers are waiting to be read, %zu of "
		         "them this user's (%s)", r->method_log, r->route ? r->route->name : "-", n, held, mine, r->addr);
		http_send_refused(r);
		return http_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                    held + n > HTTP_SEND_BUDGET
		                        ? "the server holds too many large answers not yet read; try again"
		                        : "too many of your large answers are not yet read; read them, then try again",
		                    retry);
	}
	w = malloc(sizeof *w + (n ? n : 1));
	if (w == NULL) {
		pthread_mutex_lock(&send_mu);
		send_inflight -= n;
		if (slot >= 0)
			send_users[slot].held -= n;
		pthread_mutex_unlock(&send_mu);
		return MHD_NO;
	}
	w->n = n;
	w->slot = slot;
	if (n > 0)
		memcpy(w->data, body, n);
	resp = MHD_create_response_from_buffer_with_free_callback_cls(n, w->data, wiped_free, w);
	if (resp == NULL) {
		wiped_free(w);
		return MHD_NO;
	}
	return send_resp(r, resp, status, ctype, flags, extra);
}

enum MHD_Result http_send_fd(struct http_req *r, unsigned status, const char *ctype, int fd, uint64_t size,
                             const char *const *extra)
{
	struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);

	if (resp == NULL) {
		close(fd);
		return MHD_NO;
	}
	return send_resp(r, resp, status, ctype, 0, extra);
}

/* ---- large bodies: TLS records gathered into large socket writes ----
 *
 * libmicrohttpd hands GnuTLS one 16 KiB TLS 1.3 record per send() and
 * waits in select() between them; each send() then costs a system call,
 * the TCP push path and, on loopback, a wake-up of the reader. For a large
 * body the session's transport writes are gathered here into buffers of
 * HTTP_PUSH_BUF bytes, each written with one send() by a sender thread of
 * the request's own while the connection's thread fills the other (so the
 * kernel's TCP work runs beside the encryption of the next records; one
 * buffer in flight, order kept); the socket is also corked so that TCP
 * sends full segments. What is gathered is handed over when a buffer is
 * full, and written out (waited for) when the producer of the body fails
 * (http_push_flush, before it ends the response) and when the request ends
 * (on_completed), after which the sender is joined and the session writes
 * straight through again. Only the connection's thread uses the session. */
struct http_push {
	gnutls_session_t tls;
	int fd;
	uint8_t *buf[2];            /* buf[cur] is being filled; the other may be the sender's */
	size_t len[2];
	int cur;
	/* the sender thread: writes buffer `pending` (-1: none) to the socket */
	pthread_t th;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending;
	bool stop;
	bool failed;                /* a write failed: the connection is lost */
	int err;                    /* its errno */
};

/* Writes n bytes, waiting (up to the connection timeout) while the socket
 * is full: libmicrohttpd's sockets are non-blocking. */
static int push_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			int k = poll(&pf, 1, (int)HTTP_CONN_TIMEOUT * 1000);
			if (k == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (k < 0 && errno != EINTR)
				return -1;
		} else {
			if (w == 0)
				errno = EPIPE;
			return -1;
		}
	}
	return 0;
}

static void *push_sender(void *arg)
{
	struct http_push *ph = arg;

	(void)pthread_setname_np(pthread_self(), "http-send");
	pthread_mutex_lock(&ph->mu);
	for (;;) {
		int k;
		while (ph->pending < 0 && !ph->stop)
			pthread_cond_wait(&ph->cv, &ph->mu);
		if (ph->pending < 0)
			break;
		k = ph->pending;
		pthread_mutex_unlock(&ph->mu);
		k = push_all(ph->fd, ph->buf[k], ph->len[k]) == 0 ? 0 : (errno ? errno : EPIPE);
		pthread_mutex_lock(&ph->mu);
		if (k != 0 && !ph->failed) {
			ph->failed = true;
			ph->err = k;
		}
		ph->pending = -1;
		pthread_cond_broadcast(&ph->cv);
	}
	pthread_mutex_unlock(&ph->mu);
	return NULL;
}

/* Hands the buffer being filled to the sender (after the one before it is
 * written) and starts filling the other; wait: also until it is written.
 * -1 (errno set) once a write failed. */
static int push_handoff(struct http_push *ph, bool wait)
{
	int rc;

	pthread_mutex_lock(&ph->mu);
	while (ph->pending >= 0 && !ph->failed)
		pthread_cond_wait(&ph->cv, &ph->mu);
	if (!ph->failed && ph->len[ph->cur] > 0) {
		ph->pending = ph->cur;
		ph->cur ^= 1;
		ph->len[ph->cur] = 0;
		pthread_cond_broadcast(&ph->cv);
		while (wait && ph->pending >= 0 && !ph->failed)
			pthread_cond_wait(&ph->cv, &ph->mu);
	}
	rc = ph->failed ? -1 : 0;
	if (rc != 0)
		errno = ph->err;
	pthread_mutex_unlock(&ph->mu);
	return rc;
}

static ssize_t push_gather(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct http_push *ph = p;
	size_t total = 0;
	int k;

	for (k = 0; k < iovcnt; k++) {
		const uint8_t *b = iov[k].iov_base;
		size_t n = iov[k].iov_len;
		if (ph->len[ph->cur] + n > HTTP_PUSH_BUF && push_handoff(ph, n > HTTP_PUSH_BUF) != 0)
			goto fail;
		if (n > HTTP_PUSH_BUF) {   /* not a TLS record: written here, in order */
			if (push_all(ph->fd, b, n) != 0)
				goto fail;
		} else {
			memcpy(ph->buf[ph->cur] + ph->len[ph->cur], b, n);
			ph->len[ph->cur] += n;
		}
		total += n;
	}
	return (ssize_t)total;
fail:
	gnutls_transport_set_errno(ph->tls, errno == EAGAIN || errno == 0 ? EPIPE : errno);
	return -1;
}

/* The session's writes once the body is done: straight to the socket. */
static ssize_t push_direct(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct msghdr m;

	memset(&m, 0, sizeof m);
	m.msg_iov = (struct iovec *)(uintptr_t)iov;
	m.msg_iovlen = (size_t)iovcnt;
	return sendmsg((int)(intptr_t)p, &m, MSG_NOSIGNAL);
}

/* Gathers the writes of r's TLS session and corks its socket (a large
 * body). Nothing is changed when either cannot be done. */
static void push_free(struct http_push *ph)
{
	int k;

	if (ph->running) {
		pthread_mutex_lock(&ph->mu);
		ph->stop = true;
		pthread_cond_broadcast(&ph->cv);
		pthread_mutex_unlock(&ph->mu);
		pthread_join(ph->th, NULL);
	}
	for (k = 0; k < 2; k++) {
		if (ph->buf[k] != NULL)
			mem_wipe(ph->buf[k], HTTP_PUSH_BUF);   /* TLS records only, but wiped as every body buffer */
		free(ph->buf[k]);
	}
	pthread_cond_destroy(&ph->cv);
	pthread_mutex_destroy(&ph->mu);
	free(ph);
}

/* Gathers the writes of r's TLS session, written by a thread of their own
 * (so that the kernel's TCP work runs beside the next records' encryption),
 * and corks its socket (a large body). Nothing is changed when any of it
 * cannot be done. */
static void push_begin(struct http_req *r)
{
	const union MHD_ConnectionInfo *fi = MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ti = MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	struct http_push *ph;
	pthread_attr_t at;
	int one = 1;

	if (r->push != NULL || fi == NULL || ti == NULL || ti->tls_session == NULL)
		return;
	ph = calloc(1, sizeof *ph);
	if (ph == NULL)
		return;
	pthread_mutex_init(&ph->mu, NULL);
	pthread_cond_init(&ph->cv, NULL);
	ph->tls = ti->tls_session;
	ph->fd = fi->connect_fd;
	ph->pending = -1;
	ph->buf[0] = malloc(HTTP_PUSH_BUF);
	ph->buf[1] = malloc(HTTP_PUSH_BUF);
	if (ph->buf[0] == NULL || ph->buf[1] == NULL || pthread_attr_init(&at) != 0) {
		push_free(ph);
		return;
	}
	ph->running = pthread_attr_setstacksize(&at, HTTP_SEND_STACK) == 0 &&
	              pthread_create(&ph->th, &at, push_sender, ph) == 0;
	pthread_attr_destroy(&at);
	if (!ph->running) {
		push_free(ph);
		return;
	}
	(void)setsockopt(ph->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
	gnutls_transport_set_ptr2(ph->tls, (gnutls_transport_ptr_t)(intptr_t)ph->fd, ph);
	gnutls_transport_set_vec_push_function(ph->tls, push_gather);
	r->push = ph;
}

void http_push_flush(struct http_req *r)
{
	if (r != NULL && r->push != NULL)
		(void)push_handoff(r->push, true);
}

/* Writes what is gathered, uncorks (pushing the last segment) and gives
 * the session back its direct writes. */
static void push_end(struct http_req *r)
{
	struct http_push *ph = r->push;
	int zero = 0;

	if (ph == NULL)
		return;
	(void)push_handoff(ph, true);
	(void)setsockopt(ph->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
	gnutls_transport_set_ptr2(ph->tls, (gnutls_transport_ptr_t)(intptr_t)ph->fd,
	                          (gnutls_transport_ptr_t)(intptr_t)ph->fd);
	gnutls_transport_set_vec_push_function(ph->tls, push_direct);
	push_free(ph);
	r->push = NULL;
}

static enum MHD_Result send_callback(struct http_req *r, unsigned status, const char *ctype, uint64_t size,
                                     MHD_ContentReaderCallback cb, void *cls, MHD_ContentReaderFreeCallback fr,
                                     bool gather)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(size, 64 * 1024, cb, cls, fr);

	if (resp == NULL) {
		fr(cls);
		return MHD_NO;
	}
	if (gather && size != MHD_SIZE_UNKNOWN && size >= HTTP_CORK_MIN)
		push_begin(r);
	return send_resp(r, resp, status, ctype, 0, NULL);
}

enum MHD_Result http_send_callback(struct http_req *r, unsigned status, const char *ctype, uint64_t size,
                                   MHD_ContentReaderCallback cb, void *cls, MHD_ContentReaderFreeCallback fr)
{
	return send_callback(r, status, ctype, size, cb, cls, fr, false);
}

enum MHD_Result http_send_callback_large(struct http_req *r, unsigned status, const char *ctype, uint64_t size,
                                         MHD_ContentReaderCallback cb, void *cls, MHD_ContentReaderFreeCallback fr)
{
	return send_callback(r, status, ctype, size, cb, cls, fr, true);
}

bool http_json_str(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = strlen(out);
	const unsigned char *p = (const unsigned char *)s;

#define PUT(ch) do { if (o + 1 >= cap) return false; out[o++] = (char)(ch); } while (0)
	PUT('"');
	for (; *p; p++) {
		if (*p == '"' || *p == '\\') {
			PUT('\\');
			PUT(*p);
		} else if (*p < 0x20) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[*p >> 4]);
			PUT(hex[*p & 15]);
		} else {
			PUT(*p);
		}
	}
	PUT('"');
#undef PUT
	out[o] = 0;
	return true;
}

/* The RFC 9457 body of a problem: its length, or 0 when it does not fit. */
static size_t problem_body(char *body, size_t cap, unsigned status, const char *detail)
{
	const char *title = MHD_get_reason_phrase_for(status);
	int n;

	n = snprintf(body, cap, "{\"type\":\"about:blank\",\"title\":");
	if (n < 0 || !http_json_str(body, cap, title && title[0] ? title : "Error"))
		return 0;
	n = (int)strlen(body);
	n += snprintf(body + n, cap - (size_t)n, ",\"status\":%u,\"detail\":", status);
	if ((size_t)n >= cap || !http_json_str(body, cap, detail))
		return 0;
	n = (int)strlen(body);
	if ((size_t)n + 2 > cap)
		return 0;
	body[n++] = '}';
	body[n] = 0;
	return (size_t)n;
}

enum MHD_Result http_problem(struct http_req *r, unsigned status, const char *detail, const char *const *extra)
{
	static const char *const www_auth[] = { "WWW-Authenticate", "Bearer realm=\"dicomvault\"", NULL };
	char body[1024];
	size_t n = problem_body(body, sizeof body, status, detail);

	if (n == 0)
		return MHD_NO;
	if (status == MHD_HTTP_UNAUTHORIZED && extra == NULL)
		extra = www_auth;
	return http_send(r, status, "application/problem+json", body, n, 0, extra);
}

/* ---- requests ---- */

static const char *method_name(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	size_t i;

	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "OTHER";
}

static bool method_allowed(const struct http_route *rt, const char *m)
{
	const char *p = rt->allow;
	size_t n = strlen(m);

	while (p != NULL && *p) {
		if (strncmp(p, m, n) == 0 && (p[n] == 0 || p[n] == ','))
			return true;
		p = strchr(p, ',');
		if (p != NULL)
			p += p[1] == ' ' ? 2 : 1;
	}
	return false;
}

static const struct http_route *route_find(const char *url)
{
	const struct http_route *rt;

	for (rt = http_routes; rt->path != NULL; rt++)
		if (rt->prefix ? strncmp(rt->path, url, strlen(rt->path)) == 0 : strcmp(rt->path, url) == 0)
			return rt;
	return rt;   /* the catch-all */
}

static void sa_str(const struct sockaddr *sa, char addr[INET6_ADDRSTRLEN])
{
	snprintf(addr, INET6_ADDRSTRLEN, "-");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, INET6_ADDRSTRLEN);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr, INET6_ADDRSTRLEN);
}

static void conn_addr(struct MHD_Connection *c, char addr[INET6_ADDRSTRLEN])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	sa_str(ci ? ci->client_addr : NULL, addr);
}

bool http_xff_last(const char *v, char out[INET6_ADDRSTRLEN])
{
	const char *s = strrchr(v, ',');
	char a[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t n;

	s = s != NULL ? s + 1 : v;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof a)
		return false;
	memcpy(a, s, n);
	a[n] = 0;
	if (inet_pton(AF_INET, a, bin) == 1)
		return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL;
	if (inet_pton(AF_INET6, a, bin) == 1)
		return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL;
	return false;
}

struct xff {
	const char *last;   /* the value of the last X-Forwarded-For field */
};

static enum MHD_Result xff_field(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct xff *x = ctx;

	(void)kind;
	if (key != NULL && value != NULL && strcasecmp(key, "X-Forwarded-For") == 0)
		x->last = value;
	return MHD_YES;
}

/* The client's address: the connection's, or, from a trusted proxy, the
 * one that proxy appended to X-Forwarded-For (its last field's last
 * address: whatever comes before it the client could have written). A
 * proxy's request without a valid one stays the proxy's. */
static void peer_addr(struct http_req *r)
{
	struct xff x = { NULL };
	char client[INET6_ADDRSTRLEN];
	size_t i;

	conn_addr(r->c, r->addr);
	for (i = 0; i < r->srv->nproxies && strcmp(r->addr, r->srv->proxies[i]) != 0; i++)
		;
	if (i == r->srv->nproxies)
		return;
	(void)MHD_get_connection_values(r->c, MHD_HEADER_KIND, xff_field, &x);
	if (x.last != NULL && http_xff_last(x.last, client))
		snprintf(r->addr, sizeof r->addr, "%s", client);
}

bool http_token_of(const char *authorization, const char *cookie, const char **tok, size_t *n)
{
	const char *h = authorization;
	size_t len;

	*tok = NULL;
	*n = 0;
	if (h != NULL) {
		if (strncasecmp(h, "Bearer ", 7) != 0)
			return false;
		h += 7;
		while (*h == ' ')
			h++;
		len = strlen(h);
		while (len > 0 && h[len - 1] == ' ')
			len--;
	} else {
		h = cookie;
		if (h == NULL)
			return false;
		len = strlen(h);
	}
	*tok = h;
	*n = len;
	return len > 0;
}

/* The token of the request (http_token_of). */
static bool req_token(struct http_req *r)
{
	const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = auth == NULL ? MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, COOKIE_NAME) : NULL;
	bool ok = http_token_of(auth, cookie, &r->token, &r->token_len);

	r->by_cookie = auth == NULL;
	return ok;
}

bool http_same_origin(const char *method, bool by_cookie, const char *origin, const char *site, const char *host)
{
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || !by_cookie)
		return true;
	if (origin != NULL)
		return host != NULL && strncmp(origin, "https://", 8) == 0 && strcmp(origin + 8, host) == 0;
	return site != NULL && strcmp(site, "same-origin") == 0;
}

static bool same_origin(struct http_req *r)
{
	return http_same_origin(r->method, r->by_cookie, MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Origin"),
	                        MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Sec-Fetch-Site"),
	                        MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST));
}

bool http_json_ctype(const char *ct)
{
	static const char want[] = "application/json";

	if (ct == NULL || strncasecmp(ct, want, sizeof want - 1) != 0)
		return false;
	ct += sizeof want - 1;
	return *ct == 0 || *ct == ';' || *ct == ' ';
}

/* A streaming route's body of n bytes (its Content-Length): at most
 * max_upload (else 413), and no more than the vault's file system has
 * free (else 507: refused before a byte is read, rather than failing part
 * way with the disk full). MHD_YES with *refused false: take it; else
 * the answer queued (or MHD_NO when it could not be). A chunked body has
 * no length: its parts are refused one by one when the disk fills. */
static enum MHD_Result upload_check(struct http_req *r, unsigned long long n, bool *refused)
{
	struct statvfs sv;
	char detail[160];

	*refused = true;
	if (n > r->srv->max_upload) {
		snprintf(detail, sizeof detail, "the request body (%llu bytes) is larger than this server takes (%llu MiB)",
		         n, (unsigned long long)(r->srv->max_upload >> 20));
		log_info("%s %s: refused: a body of %llu bytes (%s)", r->method_log, r->route->name, n, r->addr);
		return http_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, detail, NULL);
	}
	if (r->srv->vault != NULL && statvfs(r->srv->vault->dir, &sv) == 0 &&
	    n > (unsigned long long)sv.f_bavail * sv.f_frsize) {
		snprintf(detail, sizeof detail, "the request body (%llu bytes) is larger than the vault's free space", n);
		log_warn("%s %s: refused: a body of %llu bytes, %llu free (%s)", r->method_log, r->route->name, n,
		         (unsigned long long)sv.f_bavail * sv.f_frsize, r->addr);
		return http_problem(r, MHD_HTTP_INSUFFICIENT_STORAGE, detail, NULL);
	}
	*refused = false;
	return MHD_YES;
}

/* Adds the bytes of one query argument ("&key=value") to *ctx. */
static enum MHD_Result arg_bytes(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value)
{
	size_t *n = ctx;

	(void)kind;
	*n += 2 + (key ? strlen(key) : 0) + (value ? strlen(value) : 0);
	return MHD_YES;
}

static void watch_trust(struct http_server *s, struct MHD_Connection *c);

/* The header fields that may come once only (RFC 9112 3.2, 6.3):
 * libmicrohttpd reads the first of each, a proxy in front may read the
 * last, so two of them would let one frame a request the other does not
 * see (request smuggling). */
struct once_fields {
	unsigned host, length, coding;
	unsigned bad_name;   /* field names that are not an RFC 9110 token */
};

/* RFC 9110 5.1: a field name is a token (tchar: letters, digits and
 * !#$%&'*+-.^_`|~), so never holds whitespace. */
static bool field_name_ok(const char *k)
{
	if (k[0] == 0)
		return false;
	for (; *k != 0; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *k) != NULL))
			return false;
	return true;
}

/* Counts them (MHD_get_connection_values). */
static enum MHD_Result count_once(void *ctx, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct once_fields *n = ctx;

	(void)kind;
	(void)value;
	if (key == NULL)
		return MHD_YES;
	if (!field_name_ok(key))
		n->bad_name++;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		n->host++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		n->length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		n->coding++;
	return MHD_YES;
}

/* Everything decided from the request line and the headers, before any
 * body byte is read. MHD_YES without a response: wait for the body. */
static enum MHD_Result req_begin(struct http_req *r, const char *url, const char *version)
{
	static const char *const close_conn[] = { MHD_HTTP_HEADER_CONNECTION, "close", NULL };
	const char *cl, *te;
	int nheaders;
	struct once_fields once = { 0, 0, 0, 0 };
	size_t n = strlen(url);

	/* HTTP/1.0 and 1.1 only (libmicrohttpd takes any 1.x); one Host at
	 * most (RFC 9112 3.2: 400 for more) */
	if (version == NULL || (strcmp(version, MHD_HTTP_VERSION_1_1) != 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0))
		return http_problem(r, MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.1 or HTTP/1.0 only", close_conn);
	/* RFC 9112 3.2: a target without whitespace (a proxy in front may end
	 * it at the first space), and a Host in every HTTP/1.1 request;
	 * libmicrohttpd's own checks of both are off (MHD_OPTION_STRICT_FOR_CLIENT
	 * 0): it closed without an answer on a space and answered a missing
	 * Host with its status line and headers twice, then an HTML body */
	if (r->target_ws)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "whitespace in the request target", close_conn);
	(void)MHD_get_connection_values(r->c, MHD_HEADER_KIND, count_once, &once);
	/* RFC 9112 5.1: whitespace between a field name and its colon is a
	 * 400 (a proxy in front that trims it would read "Content-Length : N"
	 * as the body's length where this server, taking the name as it is,
	 * would read the body as the next request: smuggling) */
	if (once.bad_name > 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST,
		                    "a header field name that is not a token (whitespace before its colon?)", close_conn);
	if (once.host == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "an HTTP/1.1 request needs a Host header field", close_conn);
	if (once.host > 1)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "more than one Host header field", close_conn);
	if (once.length > 1 || once.coding > 1)
		return http_problem(r, MHD_HTTP_BAD_REQUEST,
		                    once.length > 1 ? "more than one Content-Length header field" :
		                                      "more than one Transfer-Encoding header field",
		                    close_conn);
	/* the body's framing (RFC 9112 6.1, 6.3): chunked or a Content-Length,
	 * never both (a proxy in front might frame it the other way: request
	 * smuggling; and the size checks below read Content-Length), nor a
	 * coding this server cannot read to its end; either way the connection
	 * closes, since where this request ends is not known */
	te = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (te != NULL) {
		if (strcasecmp(te, "chunked") != 0)
			return http_problem(r, MHD_HTTP_NOT_IMPLEMENTED,
			                    "Transfer-Encoding other than chunked is not supported", close_conn);
		if (MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH) != NULL)
			return http_problem(r, MHD_HTTP_BAD_REQUEST, "both Content-Length and Transfer-Encoding", close_conn);
	}
	/* the query counts too (its arguments decoded: at most what was sent) */
	if (n <= HTTP_MAX_URL)
		(void)MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, arg_bytes, &n);
	if (n > HTTP_MAX_URL)
		return http_problem(r, MHD_HTTP_URI_TOO_LONG, "the request path and query are too long", NULL);
	nheaders = MHD_get_connection_values(r->c, MHD_HEADER_KIND, NULL, NULL);
	if (nheaders < 0 || (unsigned)nheaders > HTTP_MAX_HEADERS)
		return http_problem(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields", NULL);
	if (!r->route->public) {
		if (!req_token(r) ||
		    auth_request_check(r->srv->auth, r->token, r->token_len, (int64_t)time(NULL), r->addr,
		                       MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT),
		                       &r->sess) != ERR_OK)
			return http_problem(r, MHD_HTTP_UNAUTHORIZED, "authentication required", NULL);
		if (!same_origin(r)) {
			char reason[96];
			log_info("%s %s: refused: cookie-authenticated request from another origin (%s)", r->method_log,
			         r->route->name, r->addr);
			/* every refusal is on the record (a forged cross-site request
			 * riding a user's cookie is an attack worth seeing) */
			snprintf(reason, sizeof reason, "%s %s: cross-origin request with the session cookie", r->method_log,
			         r->route->name);
			(void)dw_audit_obj(r, AUDIT_REQUEST_REFUSED, AUDIT_DENIED, reason, NULL, NULL, NULL, NULL);
			return http_problem(r, MHD_HTTP_FORBIDDEN, "cross-origin request refused", NULL);
		}
		r->authed = true;
		watch_trust(r->srv, r->c);
		if (http_load_grants(r) != ERR_OK)
			return http_problem(r, MHD_HTTP_UNAUTHORIZED, "authentication required", NULL);
		if (r->route->path == NULL)
			return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource", NULL);
	}
	if (!method_allowed(r->route, r->method)) {
		/* DICOMweb's route is a prefix: its resources differ (POST is
		 * STOW-RS's only) */
		const char *allow[] = { MHD_HTTP_HEADER_ALLOW,
			                    r->route->begin == dicomweb_begin ? dw_allow(r->url) : r->route->allow, NULL };
		return http_problem(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", allow);
	}
	cl = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL) {
		char *end = NULL;
		unsigned long long v;
		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl || *end != 0 || cl[0] == '-')
			return http_problem(r, MHD_HTTP_BAD_REQUEST, "bad Content-Length", NULL);
		if (v > HTTP_MAX_JSON_BODY && r->route->body == NULL)
			return http_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is too large", NULL);
		if (r->route->body != NULL) {
			bool refused;
			enum MHD_Result q = upload_check(r, v, &refused);
			if (refused)
				return q;
		}
	}
	if (r->route->json && !http_json_ctype(MHD_lookup_connection_value(r->c, MHD_HEADER_KIND,
	                                                              MHD_HTTP_HEADER_CONTENT_TYPE)))
		return http_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json", NULL);
	if (r->route->begin != NULL) {
		/* a GET is answered in the next call: libmicrohttpd closes the
		 * connection after a response queued while the request is still
		 * being received, which would cost a TLS handshake per request */
		if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
			r->defer_begin = true;
			return MHD_YES;
		}
		return r->route->begin(r);
	}
	return MHD_YES;
}

/* Takes the body in pieces; beyond the cap it is thrown away (a response
 * cannot be queued in the middle of a body with this libmicrohttpd) and
 * answered with 413 at its end, or the connection is closed once
 * HTTP_BODY_DISCARD_MAX more bytes came. */
static enum MHD_Result req_body(struct http_req *r, const char *p, size_t n)
{
	if (!r->too_large && n <= HTTP_MAX_JSON_BODY - r->len) {
		if (r->body == NULL) {
			r->body = malloc(HTTP_MAX_JSON_BODY);   /* once: no realloc leaves copies behind */
			if (r->body == NULL)
				return MHD_NO;
		}
		memcpy(r->body + r->len, p, n);
		r->len += n;
		return MHD_YES;
	}
	r->too_large = true;
	r->discarded += n;
	if (r->discarded > HTTP_BODY_DISCARD_MAX) {
		log_info("%s %s: body far too large, connection closed (%s)", r->method_log, r->route->name, r->addr);
		return MHD_NO;
	}
	return MHD_YES;
}

/* ---- slow heads ----
 *
 * libmicrohttpd's timeout is one of inactivity: a client that sends its
 * request head a byte every few seconds holds a connection (and its
 * thread) for ever, and HTTP_MAX_CONNECTIONS of them stop the server
 * (slowloris). So every connection also has a deadline for a whole
 * request head: HTTP_HEAD_TIMEOUT from its accept (TLS handshake
 * included), HTTP_CONN_TIMEOUT from the end of the request before (a
 * kept-alive connection), none while a request runs (its body and answer
 * stream at their own pace, under the inactivity timeout) except for a
 * body read whole before the route runs (login's JSON, at most
 * HTTP_MAX_JSON_BODY): that must arrive within HTTP_HEAD_TIMEOUT of its
 * head, since the login body is read before anyone is authenticated and
 * a byte every few seconds would hold the connection for ever. And until
 * a request on it is authenticated, a connection lives HTTP_ANON_TIMEOUT
 * at most (a request running then gets HTTP_HEAD_TIMEOUT more, and its
 * answer says Connection: close), in requests or between them: public
 * requests (the login page, /healthz, a 401) pipelined by the thousand
 * and read a few bytes at a time would otherwise keep it, each answer
 * ending in time for the next (found in session 25). A thread looks every half second and shuts down
 * the socket of a connection past a deadline: its own thread then sees the
 * connection end and closes it. */
struct conn_watch {
	struct conn_watch *next, *prev;
	int fd;
	bool in_request;            /* head received, request not yet ended */
	bool shut;
	bool trusted;               /* a request on it was authenticated */
	int64_t deadline_ms;        /* of the next head, when not in_request */
	int64_t anon_until_ms;      /* the end of its life while not trusted */
	char addr[INET6_ADDRSTRLEN];   /* the peer's (on_accept counts them) */
};

static struct conn_watch *watch_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* The connection's request runs at its own pace (in), or must be in
 * within secs: a buffered body after its head (HTTP_HEAD_TIMEOUT), the
 * next head after a request ended (HTTP_CONN_TIMEOUT). */
static void watch_request(struct http_server *s, struct MHD_Connection *c, bool in, unsigned secs)
{
	struct conn_watch *w = watch_of(c);

	if (w == NULL)
		return;
	pthread_mutex_lock(&s->watch_mu);
	w->in_request = in;
	if (!in)
		w->deadline_ms = clock_mono_ms() + (int64_t)secs * 1000;
	pthread_mutex_unlock(&s->watch_mu);
}

/* The connection has had no authenticated request and is past its
 * HTTP_ANON_TIMEOUT. */
static bool watch_anon_over(struct http_server *s, struct MHD_Connection *c)
{
	struct conn_watch *w = watch_of(c);
	bool over;

	if (w == NULL)
		return false;
	pthread_mutex_lock(&s->watch_mu);
	over = !w->trusted && clock_mono_ms() > w->anon_until_ms;
	pthread_mutex_unlock(&s->watch_mu);
	return over;
}

/* A request on the connection was authenticated: it may live on. */
static void watch_trust(struct http_server *s, struct MHD_Connection *c)
{
	struct conn_watch *w = watch_of(c);

	if (w == NULL)
		return;
	pthread_mutex_lock(&s->watch_mu);
	w->trusted = true;
	pthread_mutex_unlock(&s->watch_mu);
}

/* With trusted_proxies libmicrohttpd's limit of connections per address
 * is lifted (every client of a proxy comes from its address): this keeps
 * HTTP_MAX_PER_IP for every other address, counting its open connections
 * in the watch list (entered at NOTIFY_STARTED, which libmicrohttpd calls
 * in its listening thread, before the next accept). A direct client must
 * not take every connection and keep the proxy, so everyone behind it,
 * out. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct http_server *s = cls;
	char a[INET6_ADDRSTRLEN];
	struct conn_watch *w;
	unsigned n = 0, all = 0;
	size_t i;

	(void)len;
	if (s->nproxies == 0)
		return MHD_YES;
	sa_str(sa, a);
	for (i = 0; i < s->nproxies; i++)
		if (strcmp(a, s->proxies[i]) == 0)
			return MHD_YES;
	pthread_mutex_lock(&s->watch_mu);
	for (w = s->watch; w != NULL; w = w->next) {
		bool proxy = false;
		n += strcmp(w->addr, a) == 0;
		for (i = 0; i < s->nproxies && !proxy; i++)
			proxy = strcmp(w->addr, s->proxies[i]) == 0;
		all += !proxy;
	}
	pthread_mutex_unlock(&s->watch_mu);
	/* and all of them together leave HTTP_PROXY_RESERVE to the proxies
	 * (a host with a few addresses, or an IPv6 /64, has many) */
	return n < HTTP_MAX_PER_IP && all < HTTP_MAX_CONNECTIONS - HTTP_PROXY_RESERVE ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **sock_ctx, enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	struct conn_watch *w = *sock_ctx;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		w = calloc(1, sizeof *w);
		if (w == NULL || ci == NULL) {
			free(w);
			return;   /* not watched: the inactivity timeout still holds */
		}
		w->fd = ci->connect_fd;
		conn_addr(c, w->addr);
		w->deadline_ms = clock_mono_ms() + (int64_t)HTTP_HEAD_TIMEOUT * 1000;
		w->anon_until_ms = clock_mono_ms() + (int64_t)HTTP_ANON_TIMEOUT * 1000;
		pthread_mutex_lock(&s->watch_mu);
		w->next = s->watch;
		if (s->watch != NULL)
			s->watch->prev = w;
		s->watch = w;
		pthread_mutex_unlock(&s->watch_mu);
		*sock_ctx = w;
		return;
	}
	if (w == NULL)
		return;
	/* closed: unlinked under the lock, so the watcher never shuts down a
	 * descriptor that libmicrohttpd has closed (and that may be reused) */
	pthread_mutex_lock(&s->watch_mu);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		s->watch = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&s->watch_mu);
	free(w);
	*sock_ctx = NULL;
}

static void *watch_main(void *arg)
{
	struct http_server *s = arg;

	pthread_mutex_lock(&s->watch_mu);
	while (!s->watch_stop) {
		struct timespec ts;
		struct conn_watch *w;
		int64_t now = clock_mono_ms();
		unsigned late = 0, anon = 0;
		for (w = s->watch; w != NULL; w = w->next) {
			if (w->shut)
				continue;
			if (!w->in_request && now > w->deadline_ms)
				late++;
			else if (!w->trusted && now > w->anon_until_ms &&
			         (!w->in_request || now > w->anon_until_ms + (int64_t)HTTP_HEAD_TIMEOUT * 1000))
				anon++;   /* a request running then has HTTP_HEAD_TIMEOUT more to end */
			else
				continue;
			(void)shutdown(w->fd, SHUT_RDWR);
			w->shut = true;
		}
		if (late > 0)
			log_info("closed %u connection%s whose request head was not complete in time", late,
			         late == 1 ? "" : "s");
		if (anon > 0)
			log_info("closed %u connection%s used for %u s without an authenticated request", anon,
			         anon == 1 ? "" : "s", HTTP_ANON_TIMEOUT);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&s->watch_cv, &s->watch_mu, &ts);
	}
	pthread_mutex_unlock(&s->watch_mu);
	return NULL;
}

/* ---- libmicrohttpd's own refusals, answered as ours ----
 *
 * libmicrohttpd 0.9.75 refuses some requests itself while it parses the
 * head or a chunked body, before (or between) calls of ours: a
 * Content-Length that is not a number or beyond 64 bits, a header line
 * without a colon, a head beyond the connection's memory pool, a malformed
 * chunk. Its answers are HTML without our headers, and a refusal found
 * once the headers are in (the Content-Length ones) is written with its
 * status line and headers twice (its state after the refusal is
 * overwritten, so the reply is built again), which no option or callback
 * of 0.9.75 changes. Each refusal is logged first, through our logger, in
 * the connection's own thread (a thread per connection) and with the
 * status as an argument: there, the answer is ours instead, written on
 * the connection's TLS session with Connection: close, then the session
 * and the socket are shut for writing, so that libmicrohttpd's own answer
 * fails to go out and it closes the connection. Only from the request
 * line on (on_uri names the connection to its thread) and only while no
 * answer of ours is queued for the request (none is being sent): a
 * refusal of the request line itself keeps libmicrohttpd's answer. */
static _Thread_local struct {
	struct MHD_Connection *c;   /* this thread's request's, since its request line; NULL: none */
	bool answered;              /* an answer of ours is queued for it */
} early;

/* The refusal libmicrohttpd logs (transmit_error_response): the status,
 * then its HTML body. */
#define MHD_REFUSAL_FMT "Error processing request (HTTP response code is %u ('%s')). Closing connection."

static void early_begin(struct MHD_Connection *c)
{
	early.c = c;
	early.answered = false;
}

static void early_answered(void)
{
	early.answered = true;
}

/* What the refusal was about, told by its status and libmicrohttpd's
 * message (never quoted: it is HTML). */
static const char *early_detail(unsigned status, const char *msg)
{
	bool length = msg != NULL && strstr(msg, "Content-Length") != NULL;
	bool chunk = msg != NULL && strstr(msg, "chunk") != NULL;

	switch (status) {
	case MHD_HTTP_BAD_REQUEST:
		return length ? "bad Content-Length" : chunk ? "malformed chunked body" : "malformed request";
	case MHD_HTTP_CONTENT_TOO_LARGE:
		return length ? "the Content-Length is too large" : chunk ? "a chunk is too large" :
		                                                      "the request body is too large";
	case MHD_HTTP_URI_TOO_LONG:
	case MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
		return "the request head is too large";
	case MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED:
		return "HTTP/1.1 or HTTP/1.0 only";
	default:
		return "the request could not be processed";
	}
}

/* Writes n bytes on the session of a non-blocking socket, waiting up to
 * HTTP_HEAD_TIMEOUT while it is full. */
static bool early_write(gnutls_session_t tls, int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = gnutls_record_send(tls, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			if (poll(&pf, 1, (int)HTTP_HEAD_TIMEOUT * 1000) <= 0)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* Answers libmicrohttpd's refusal of c's request as ours (problem+json,
 * our headers, one header block), then shuts the connection for writing. */
static void early_answer(struct MHD_Connection *c, unsigned status, const char *msg)
{
	const union MHD_ConnectionInfo *ti = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const char *reason = MHD_get_reason_phrase_for(status);
	char body[512], head[1536], date[64], addr[INET6_ADDRSTRLEN];
	size_t n, h, i;
	struct tm tm;
	time_t now = time(NULL);
	bool sent;

	if (ti == NULL || ti->tls_session == NULL || fi == NULL || status < 400 || status > 599)
		return;
	n = problem_body(body, sizeof body, status, early_detail(status, msg));
	if (n == 0 || gmtime_r(&now, &tm) == NULL || strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		return;
	h = (size_t)snprintf(head, sizeof head, "HTTP/1.1 %u %s\r\nDate: %s\r\nConnection: close\r\n", status,
	                     reason && reason[0] ? reason : "Error", date);
	for (i = 0; common_headers[i] != NULL && h < sizeof head; i += 2)
		h += (size_t)snprintf(head + h, sizeof head - h, "%s: %s\r\n", common_headers[i], common_headers[i + 1]);
	if (h < sizeof head)
		h += (size_t)snprintf(head + h, sizeof head - h,
		                      "Content-Security-Policy: %s\r\nContent-Type: application/problem+json\r\n"
		                      "Content-Length: %zu\r\n\r\n", CSP_API, n);
	if (h + n >= sizeof head)
		return;   /* (cannot happen: the headers are ours, the body at most 512) */
	memcpy(head + h, body, n);
	sent = early_write(ti->tls_session, fi->connect_fd, head, h + n);
	/* nothing more goes out: libmicrohttpd's own answer fails, and it
	 * closes the connection */
	if (sent)
		(void)gnutls_bye(ti->tls_session, GNUTLS_SHUT_WR);
	(void)shutdown(fi->connect_fd, SHUT_WR);
	conn_addr(c, addr);
	log_info("- - %u %s (refused while parsing the request: %s)", status, addr, early_detail(status, msg));
}

/* What on_uri leaves in *con_cls for a request target holding whitespace
 * (its own address; NULL otherwise). */
static char target_ws;

/* The raw request target, before it is split and decoded (libmicrohttpd's
 * URI log callback): with MHD_OPTION_STRICT_FOR_CLIENT 0 it may hold a
 * space or a tab, which the decoded path cannot tell from %20 or %09. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls;
	early_begin(c);
	return uri != NULL && strpbrk(uri, " \t") != NULL ? &target_ws : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct http_req *r = *con_cls;
	size_t n;

	if (r == NULL || r == (void *)&target_ws) {
		bool ws = r != NULL;
		r = calloc(1, sizeof *r);
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		r->target_ws = ws;
		r->srv = cls;
		r->c = c;
		r->method = method;
		r->method_log = method_name(method);
		r->route = route_find(url);
		r->url = url;
		peer_addr(r);
		/* a streamed body (STOW) runs at its own pace; a buffered one
		 * must be in by the deadline */
		watch_request(r->srv, c, r->route == NULL || r->route->body != NULL || r->route->begin != NULL,
		              HTTP_HEAD_TIMEOUT);
		return req_begin(r, url, version);
	}
	n = *upload_size;
	*upload_size = 0;
	if (r->answered)
		return MHD_YES;
	if (r->defer_begin) {
		r->defer_begin = false;
		if (n > 0) {
			/* a body on a GET: dropped (as dicomweb_body does) */
			r->defer_begin = true;
			return MHD_YES;
		}
		return r->route->begin(r);
	}
	if (n > 0 && r->route->body != NULL)
		return r->route->body(r, (const uint8_t *)upload, n);
	if (n > 0)
		return req_body(r, upload, n);
	watch_request(r->srv, c, true, 0);   /* the body is in: the answer goes at its own pace */
	if (r->too_large)
		return http_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is too large", NULL);
	return r->route->fn(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct http_req *r = *con_cls;

	watch_request(cls, c, false, HTTP_CONN_TIMEOUT);
	early_begin(NULL);
	if (r == NULL || r == (void *)&target_ws) {
		*con_cls = NULL;
		return;
	}
	r->term = t;
	push_end(r);
	if (r->route != NULL && r->route->done != NULL)
		r->route->done(r);
	if (r->body != NULL) {
		mem_wipe(r->body, HTTP_MAX_JSON_BODY);
		free(r->body);
	}
	mem_wipe(&r->sess, sizeof r->sess);
	free(r->grants);
	free(r);
	*con_cls = NULL;
}

/* libmicrohttpd's own messages, with anything unprintable (they may quote
 * peer bytes) replaced. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	va_list aq;
	bool refusal = early.c != NULL && !early.answered &&
	               strncmp(fmt, MHD_REFUSAL_FMT, sizeof MHD_REFUSAL_FMT - 1) == 0;
	unsigned status = 0;
	const char *html = NULL;

	(void)cls;
	if (refusal) {
		/* the format is exactly the one above: its arguments are these */
		va_copy(aq, ap);
		status = va_arg(aq, unsigned);
		html = va_arg(aq, const char *);
		va_end(aq);
	}
	vsnprintf(msg, sizeof msg, fmt, ap);
	log_scrub_quoted(msg);   /* its messages quote request paths: a query may name a patient */
	log_warn("libmicrohttpd: %s", msg);
	if (refusal) {
		struct MHD_Connection *c = early.c;
		early_begin(NULL);   /* once */
		early_answer(c, status, html);
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

size_t http_unescape(char *s)
{
	size_t i = 0, o = 0;

	while (s[i]) {
		int hi, lo;
		if (s[i] == '%' && s[i + 1] && s[i + 2] && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0 &&
		    (hi | lo) != 0) {
			s[o++] = (char)(hi << 4 | lo);
			i += 3;
		} else {
			s[o++] = s[i++];
		}
	}
	s[o] = 0;
	return o;
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return http_unescape(s);
}

/* ---- Jansson frees wiped ---- */

/* Request bodies hold passwords and codes; Jansson copies strings. Its
 * frees wipe the block first (malloc_usable_size), so that freed heap
 * holds no copy. Blocks stay malloc blocks: a plain free() is still right. */
static void json_free_wiped(void *p)
{
	if (p != NULL) {
		mem_wipe(p, malloc_usable_size(p));
		free(p);
	}
}

static void json_alloc_once(void)
{
	json_set_alloc_funcs(malloc, json_free_wiped);
}

/* ---- the server ---- */

/* Each address of the list, as inet_ntop writes it, into out (up to
 * HTTP_PROXIES_MAX); false for a list that is not one. */
static bool proxies_parse(const char *s, char out[][INET6_ADDRSTRLEN], size_t *n)
{
	const char *p = s;

	*n = 0;
	while (*p != 0) {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		char a[INET6_ADDRSTRLEN + 8], one[INET6_ADDRSTRLEN];
		if (*n == HTTP_PROXIES_MAX || len >= sizeof a)
			return false;
		memcpy(a, p, len);
		a[len] = 0;
		if (strchr(a, ',') != NULL || !http_xff_last(a, one))
			return false;
		snprintf(out[(*n)++], INET6_ADDRSTRLEN, "%s", one);
		if (e == NULL)
			return true;
		p = e + 1;
	}
	return false;   /* empty, or an empty last address */
}

bool http_proxies_ok(const char *s)
{
	char tmp[HTTP_PROXIES_MAX][INET6_ADDRSTRLEN];
	size_t n;

	return proxies_parse(s, tmp, &n);
}

bool http_public_url_ok(const char *s)
{
	size_t n = strlen(s), i, k = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;

	if (k == 0 || n <= k || n > HTTP_PUBLIC_URL_MAX || s[k] == '/')
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '\'' || s[i] == '<' ||
		    s[i] == '>' || s[i] == '?' || s[i] == '#' || s[i] == '\\')
			return false;
	return true;
}

enum err http_server_start(const struct http_opts *o, struct http_server **out, char *why, size_t whylen)
{
	static pthread_once_t json_once = PTHREAD_ONCE_INIT;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct http_server *s;
	const union MHD_DaemonInfo *di;
	char host[INET6_ADDRSTRLEN], proxies[HTTP_PROXIES_MAX][INET6_ADDRSTRLEN] = { { 0 } };
	size_t nproxies = 0;
	bool wildcard = false;
	unsigned flags;
	uint16_t port;
	enum err rc;

	rc = http_listen_parse(o->listen, &ss, &sl);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot use the listen address '%s' (HOST:PORT or [IPV6]:PORT)",
		               o->listen ? o->listen : "");
	if (o->cert_len == 0 || o->cert_len > CERT_MAX || memchr(o->cert_pem, 0, o->cert_len) != NULL)
		return err_why(why, whylen, ERR_PARSE, "the TLS certificate is not PEM text");
	if (o->trusted_proxies != NULL && o->trusted_proxies[0] != 0 &&
	    !proxies_parse(o->trusted_proxies, proxies, &nproxies))
		return err_why(why, whylen, ERR_PARSE, "[http] trusted_proxies must be at most %u IP addresses separated "
		               "by commas", HTTP_PROXIES_MAX);
	pthread_once(&json_once, json_alloc_once);
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return ERR_NOMEM;
	pthread_mutex_init(&s->watch_mu, NULL);
	pthread_cond_init(&s->watch_cv, NULL);
	s->auth = o->auth;
	s->vault = o->vault;
	s->max_upload = o->max_upload ? o->max_upload : HTTP_MAX_UPLOAD;
	memcpy(s->proxies, proxies, sizeof proxies);
	s->nproxies = nproxies;
	s->ix_lock = o->ix_lock;
	s->audit = o->audit;
	if (o->vault != NULL)
		s->colls = o->vault->colls;
	rc = ERR_NOMEM;
	s->cert = malloc(o->cert_len + 1);
	if (s->cert == NULL)
		goto fail;
	memcpy(s->cert, o->cert_pem, o->cert_len);
	s->cert[o->cert_len] = 0;
	rc = secret_from_bytes(secret_view(o->key_pem), secret_len(o->key_pem), &s->key);
	if (rc != ERR_OK)
		goto fail;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
	} else {
		port = ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
	}
	/* the port only names it in messages: MHD_OPTION_SOCK_ADDR decides */
	s->d = MHD_start_daemon(flags, port, on_accept, s, on_request, s,
	                        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, (void *)s,
	                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                        MHD_OPTION_HTTPS_MEM_CERT, (const char *)s->cert,
	                        MHD_OPTION_HTTPS_MEM_KEY, secret_cstr(s->key),
	                        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_CONN_TIMEOUT,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_MAX_CONNECTIONS,
	                        /* behind a proxy every client is the proxy's address: the
	                         * limit per address is on_accept's, the proxies' none */
	                        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                        (unsigned int)(nproxies > 0 ? HTTP_MAX_CONNECTIONS : HTTP_MAX_PER_IP),
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
	                        MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_THREAD_STACK,
	                        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)64,
	                        /* 0: the Host and request-target checks are req_begin's, whose
	                         * answers are ours (problem+json, one header block) */
	                        MHD_OPTION_STRICT_FOR_CLIENT, (int)0,
	                        MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)NULL,
	                        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (int)1,
	                        MHD_OPTION_UNESCAPE_CALLBACK, unescape, (void *)NULL,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)s,
	                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)s,
	                        MHD_OPTION_END);
	if (s->d == NULL) {
		rc = err_why(why, whylen, ERR_IO,
		             "cannot listen on %s (address in use, no permission, or a bad certificate or key)", o->listen);
		goto fail;
	}
	if (pthread_create(&s->watcher, NULL, watch_main, s) != 0) {
		rc = err_why(why, whylen, ERR_NOMEM, "cannot start the request-head watcher");
		goto fail;
	}
	s->watching = true;
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di != NULL ? di->port : 0;
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr, host, sizeof host);
		snprintf(s->url, sizeof s->url, "https://[%s]:%u/", host, (unsigned)s->port);
		wildcard = IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)(void *)&ss)->sin6_addr);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&ss)->sin_addr, host, sizeof host);
		snprintf(s->url, sizeof s->url, "https://%s:%u/", host, (unsigned)s->port);
		wildcard = ((struct sockaddr_in *)(void *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	}
	/* the base of absolute URLs in answers: never a wildcard address */
	if (o->public_url != NULL && o->public_url[0])
		snprintf(s->base, sizeof s->base, "%s", o->public_url);
	else if (!wildcard)
		snprintf(s->base, sizeof s->base, "%s", s->url);
	else
		log_warn("listening on a wildcard address: the URLs in answers (RetrieveURL, BulkDataURI) are "
		         "path-absolute; set [http] public_url to the address clients reach");
	if (s->base[0] && s->base[strlen(s->base) - 1] == '/')
		s->base[strlen(s->base) - 1] = 0;
	*out = s;
	return ERR_OK;
fail:
	http_server_stop(s);
	return rc;
}

uint16_t http_server_port(const struct http_server *s)
{
	return s->port;
}

const char *http_server_url(const struct http_server *s)
{
	return s->url;
}

void http_server_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	if (s->watching) {
		pthread_mutex_lock(&s->watch_mu);
		s->watch_stop = true;
		pthread_cond_signal(&s->watch_cv);
		pthread_mutex_unlock(&s->watch_mu);
		pthread_join(s->watcher, NULL);
	}
	if (s->d != NULL)
		MHD_stop_daemon(s->d);   /* frees every conn_watch (on_connection) */
	pthread_mutex_destroy(&s->watch_mu);
	pthread_cond_destroy(&s->watch_cv);
	secret_free(s->key);
	free(s->cert);
	free(s);
}
