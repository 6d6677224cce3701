/* http_get.c: a minimal HTTP/1.1 GET client in C for the retrieval
 * benchmark (bench/server_bench.py), so that the client cannot be what
 * limits a server sending over 1 GB/s. One kept-alive connection, plain TCP
 * or TLS 1.3 (GnuTLS, as the product; the server's certificate verified
 * against CAFILE for 127.0.0.1), TCP_NODELAY; bodies (Content-Length,
 * chunked or close-delimited) are read into one reused buffer and counted.
 *
 *   http_get [-r REPS] [--tls CAFILE] [-H 'Name: value']... HOST PORT PATH...
 *   (a PATH of "-" reads the paths, one a line, from standard input)
 *
 * Every repetition GETs every PATH in order on the same connection (it
 * reconnects if the server closes it). Prints one line:
 *   http_get status=200 reqs=N bytes=B best_s=S mb_per_s=M cpu_s=C
 * where bytes are the body bytes of one repetition, status the first
 * non-200 status seen (else 200), MB = 10^6 bytes, cpu_s the client's CPU
 * time over all repetitions. Exit status 1 on any I/O error. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ (1u << 20)

struct conn {
	const char *host, *port, *cafile;
	int fd;
	gnutls_session_t s;
	gnutls_certificate_credentials_t cred;
	char *buf;
	size_t pos, len;   /* unconsumed bytes: buf[pos, len) */
	int closed;
};

static double now(int which)
{
	struct timespec ts;

	clock_gettime(which, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *m, const char *d)
{
	fprintf(stderr, "http_get: %s%s%s\n", m, d ? ": " : "", d ? d : "");
	exit(1);
}

static void conn_open(struct conn *c)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int one = 1, r;

	if (getaddrinfo(c->host, c->port, &hints, &ai) != 0)
		die("cannot resolve", c->host);
	c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0)
		die("cannot connect", strerror(errno));
	freeaddrinfo(ai);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->pos = c->len = 0;
	c->closed = 0;
	if (c->cafile == NULL)
		return;
	if (gnutls_init(&c->s, GNUTLS_CLIENT) < 0 ||
	    gnutls_priority_set_direct(c->s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL) < 0 ||
	    gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0)
		die("gnutls set-up failed", NULL);
	gnutls_session_set_verify_cert(c->s, c->host, 0);
	gnutls_transport_set_int(c->s, c->fd);
	do {
		r = gnutls_handshake(c->s);
	} while (r < 0 && gnutls_error_is_fatal(r) == 0);
	if (r < 0)
		die("TLS handshake failed", gnutls_strerror(r));
}

static void conn_close(struct conn *c)
{
	if (c->cafile != NULL && c->s != NULL) {
		gnutls_deinit(c->s);
		c->s = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static ssize_t c_recv(struct conn *c, void *p, size_t n)
{
	ssize_t r;

	if (c->cafile == NULL) {
		do {
			r = recv(c->fd, p, n, 0);
		} while (r < 0 && errno == EINTR);
		return r;
	}
	do {
		r = gnutls_record_recv(c->s, p, n);
	} while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	return r;
}

static void c_send(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = c->cafile ? gnutls_record_send(c->s, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || (r < 0 && errno == EINTR && !c->cafile))
			continue;
		if (r <= 0)
			die("send failed", NULL);
		p += r;
		n -= (size_t)r;
	}
}

/* more bytes into buf (compacting first); 0 at end of stream */
static size_t fill(struct conn *c)
{
	ssize_t r;

	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->len == BUFSZ)
		die("line too long", NULL);
	r = c_recv(c, c->buf + c->len, BUFSZ - c->len);
	if (r < 0)
		die("receive failed", c->cafile ? gnutls_strerror((int)r) : strerror(errno));
	c->len += (size_t)r;
	if (r == 0)
		c->closed = 1;
	return (size_t)r;
}

/* one CRLF-terminated line (NUL-terminated in place), or NULL at EOF */
static char *line(struct conn *c)
{
	for (;;) {
		char *s = c->buf + c->pos, *e = memchr(s, '\n', c->len - c->pos);
		if (e != NULL) {
			*e = 0;
			if (e > s && e[-1] == '\r')
				e[-1] = 0;
			c->pos = (size_t)(e + 1 - c->buf);
			return s;
		}
		if (fill(c) == 0)
			return NULL;
	}
}

/* skips n body bytes: from the buffer, then straight from the stream */
static void skip(struct conn *c, unsigned long long n)
{
	while (n > 0) {
		size_t have = c->len - c->pos;
		if (have == 0) {
			c->pos = c->len = 0;
			ssize_t r = c_recv(c, c->buf, n < BUFSZ ? (size_t)n : BUFSZ);
			if (r <= 0)
				die("body truncated", NULL);
			c->len = (size_t)r;
			have = c->len;
		}
		if (have > n)
			have = (size_t)n;
		c->pos += have;
		n -= have;
	}
}

static unsigned long long get(struct conn *c, const char *path, const char *hdrs, int *status)
{
	char req[16384], *l;
	unsigned long long clen = 0, total = 0;
	int n, chunked = 0, has_len = 0, close_after = 0;

	if (c->fd < 0 || c->closed) {
		conn_close(c);
		conn_open(c);
	}
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n", path, c->host, c->port, hdrs);
	if (n < 0 || (size_t)n >= sizeof req)
		die("request too long", path);
	c_send(c, req, (size_t)n);
	l = line(c);
	if (l == NULL || strncmp(l, "HTTP/1.", 7) != 0)
		die("no status line", path);
	*status = atoi(l + 9);
	if (l[7] == '0')
		close_after = 1;
	while ((l = line(c)) != NULL && *l) {
		if (strncasecmp(l, "content-length:", 15) == 0) {
			clen = strtoull(l + 15, NULL, 10);
			has_len = 1;
		} else if (strncasecmp(l, "transfer-encoding:", 18) == 0 && strstr(l, "chunked") != NULL) {
			chunked = 1;
		} else if (strncasecmp(l, "connection:", 11) == 0 && strstr(l, "close") != NULL) {
			close_after = 1;
		}
	}
	if (l == NULL)
		die("headers truncated", path);
	if (chunked) {
		for (;;) {
			unsigned long long sz;
			if ((l = line(c)) == NULL)
				die("chunk size missing", path);
			sz = strtoull(l, NULL, 16);
			if (sz == 0) {
				while ((l = line(c)) != NULL && *l)
					;
				break;
			}
			skip(c, sz + 2);
			total += sz;
		}
	} else if (has_len) {
		skip(c, clen);
		total = clen;
	} else {
		total = c->len - c->pos;
		c->pos = c->len;
		while (fill(c) > 0) {
			total += c->len - c->pos;
			c->pos = c->len;
		}
		close_after = 1;
	}
	if (close_after) {
		conn_close(c);
		c->closed = 1;
	}
	return total;
}

int main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	char hdrs[8192] = "", **paths = NULL;
	size_t hl = 0, np = 0, cap = 0;
	int reps = 1, i, status = 200;
	double best = 1e30, c0;
	unsigned long long bytes = 0;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != 0; i++) {
		if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
			c.cafile = argv[++i];
		} else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
			int n = snprintf(hdrs + hl, sizeof hdrs - hl, "%s\r\n", argv[++i]);
			if (n < 0 || (size_t)n >= sizeof hdrs - hl)
				die("headers too long", NULL);
			hl += (size_t)n;
		} else {
			die("usage: http_get [-r REPS] [--tls CAFILE] [-H 'Name: value']... HOST PORT PATH...", NULL);
		}
	}
	if (argc - i < 3)
		die("usage: http_get [-r REPS] [--tls CAFILE] [-H 'Name: value']... HOST PORT PATH...", NULL);
	c.host = argv[i++];
	c.port = argv[i++];
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			char ln[4096];
			while (fgets(ln, sizeof ln, stdin) != NULL) {
				ln[strcspn(ln, "\r\n")] = 0;
				if (!*ln)
					continue;
				if (np == cap && (paths = realloc(paths, (cap = cap ? 2 * cap : 512) * sizeof *paths)) == NULL)
					die("out of memory", NULL);
				paths[np++] = strdup(ln);
			}
		} else {
			if (np == cap && (paths = realloc(paths, (cap = cap ? 2 * cap : 512) * sizeof *paths)) == NULL)
				die("out of memory", NULL);
			paths[np++] = argv[i];
		}
	}
	if ((c.buf = malloc(BUFSZ)) == NULL)
		die("out of memory", NULL);
	if (c.cafile != NULL) {
		if (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&c.cred) < 0 ||
		    gnutls_certificate_set_x509_trust_file(c.cred, c.cafile, GNUTLS_X509_FMT_PEM) <= 0)
			die("cannot load the CA file", c.cafile);
	}
	conn_open(&c);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (int r = 0; r < reps; r++) {
		double t0 = now(CLOCK_MONOTONIC), t;
		unsigned long long b = 0;
		for (size_t k = 0; k < np; k++) {
			int st;
			b += get(&c, paths[k], hdrs, &st);
			if (st != 200 && status == 200)
				status = st;
		}
		t = now(CLOCK_MONOTONIC) - t0;
		if (t < best)
			best = t;
		bytes = b;
	}
	printf("http_get status=%d reqs=%zu bytes=%llu best_s=%.6f mb_per_s=%.1f cpu_s=%.3f\n", status, np, bytes, best,
	       (double)bytes / best / 1e6, now(CLOCK_PROCESS_CPUTIME_ID) - c0);
	conn_close(&c);
	return 0;
}
