/* ul_peer.c: a minimal DICOM peer on loopback built on the pure protocol
 * layer (proto/ul.c, proto/dimse.c), so that DCMTK's tools can be the
 * oracle for it (tests/integration/dimse_dcmtk.sh). Not the server: no
 * TLS, no vault, one association at a time, blocking sockets.
 *   ul_peer scp PORT N OUTDIR   accepts N associations as DICOMVAULT:
 *                               C-ECHO answered, C-STORE data sets written
 *                               to OUTDIR/N.raw (as received), success
 *   ul_peer scu PORT AE         associates with AE on 127.0.0.1:PORT,
 *                               sends a C-ECHO-RQ, releases
 * Prints one line per event. Layer: tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dimse.h"
#include "dicomvault/ul.h"

static const char *const ts_pref[] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", NULL };
static const struct ul_syntax syns[] = { { "1.2.840.10008.1.1", ts_pref, false } };

static bool storage(void *ctx, const char *abstract)
{
	(void)ctx;
	return strncmp(abstract, "1.2.840.10008.5.1.4.1.1.", 24) == 0;
}

static int flush_tx(int fd, struct ul *u)
{
	while (u->tx.len > 0) {
		ssize_t k = write(fd, u->tx.p, u->tx.len);
		if (k <= 0)
			return -1;
		ul_tx_consumed(u, (size_t)k);
	}
	return 0;
}

static int send_cmd(struct ul *u, uint8_t pcid, const struct dimse_cmd *c)
{
	struct wbuf w;
	int rc;

	wbuf_init(&w, DIMSE_MAX_COMMAND);
	rc = dimse_cmd_build(c, &w) == ERR_OK && ul_send_command(u, pcid, w.p, w.len) == ERR_OK ? 0 : -1;
	wbuf_fini(&w);
	return rc;
}

/* Runs one association on fd until the machine is back in Sta1. */
static int run(int fd, struct ul *u, const char *outdir, unsigned *nstored, bool scu)
{
	uint8_t buf[65536];
	struct ul_event ev;
	struct ul_policy pol = { syns, 1, storage, NULL, ts_pref, false, false, NULL, 0 };
	struct dimse_cmd cmd, pending;
	FILE *out = NULL;
	uint8_t pend_pcid = 0;
	bool have_pending = false;
	int ok = -1;

	if (flush_tx(fd, u) != 0)
		return -1;
	while (u->state != UL_STA1) {
		ssize_t n = read(fd, buf, sizeof buf);
		size_t off = 0, used;
		enum err rc;
		if (n <= 0) {
			ul_transport_closed(u, &ev);
			printf("transport closed in %s\n", ev.kind == UL_EV_ABORT ? "association" : "Sta13/Sta2");
			break;
		}
		for (;;) {
			rc = ul_feed(u, buf + off, (size_t)n - off, &used, &ev);
			off += used;
			if (rc == ERR_AGAIN)
				break;
			if (rc != ERR_OK) {
				printf("local error %s\n", err_str(rc));
				goto out;
			}
			switch (ev.kind) {
			case UL_EV_ASSOC_RQ:
				printf("assoc rq calling=%s called=%s contexts=%u\n", u->rq->calling, u->rq->called, u->rq->npc);
				if (ul_accept(u, &pol) != ERR_OK)
					goto out;
				break;
			case UL_EV_ASSOC_AC:
				printf("assoc ac\n");
				dimse_cmd_rq(&cmd, DIMSE_C_ECHO_RQ, 1, "1.2.840.10008.1.1");
				if (send_cmd(u, 1, &cmd) != 0)
					goto out;
				break;
			case UL_EV_ASSOC_RJ:
				printf("assoc rj %u %u %u\n", ev.rj.result, ev.rj.source, ev.rj.reason);
				break;
			case UL_EV_COMMAND:
				if (dimse_cmd_parse(ev.p, ev.n, &cmd) != ERR_OK || dimse_cmd_check(&cmd, NULL) != ERR_OK) {
					printf("bad command\n");
					ul_abort(u);
					break;
				}
				printf("command %s\n", dimse_field_name(cmd.field));
				if (cmd.field == DIMSE_C_ECHO_RSP && scu) {
					printf("echo status %04x\n", cmd.status);
					ok = cmd.status == 0 ? 0 : -1;
					if (ul_release_rq(u) != ERR_OK)
						goto out;
				} else if (cmd.field == DIMSE_C_ECHO_RQ) {
					dimse_cmd_rsp(&pending, &cmd, DIMSE_SUCCESS);
					if (send_cmd(u, ev.pcid, &pending) != 0)
						goto out;
				} else if (cmd.field == DIMSE_C_STORE_RQ) {
					char path[4096];
					snprintf(path, sizeof path, "%s/%u.raw", outdir, (*nstored)++);
					out = fopen(path, "wb");
					if (out == NULL)
						goto out;
					dimse_cmd_rsp(&pending, &cmd, DIMSE_SUCCESS);
					pend_pcid = ev.pcid;
					have_pending = true;
					printf("store %s\n", cmd.sop_instance);
				}
				break;
			case UL_EV_DATA:
				if (out == NULL || fwrite(ev.p, 1, ev.n, out) != ev.n)
					goto out;
				if (ev.last) {
					fclose(out);
					out = NULL;
					if (have_pending && send_cmd(u, pend_pcid, &pending) != 0)
						goto out;
					have_pending = false;
				}
				break;
			case UL_EV_RELEASE_RQ:
				printf("release rq\n");
				if (ul_release_rp(u) != ERR_OK)
					goto out;
				if (!scu)
					ok = 0;
				break;
			case UL_EV_RELEASE_RP:
				printf("release rp\n");
				break;
			case UL_EV_ABORT:
				printf("abort provider=%d source=%u reason=%u%s%s\n", ev.provider, ev.abort.source, ev.abort.reason,
				       ev.why ? " " : "", ev.why ? ev.why : "");
				break;
			case UL_EV_CLOSED:
			case UL_EV_NONE:
				break;
			}
		}
		if (flush_tx(fd, u) != 0)
			break;
		if (u->close)
			break;
	}
out:
	if (out != NULL)
		fclose(out);
	(void)flush_tx(fd, u);
	fflush(stdout);
	return ok;
}

static int scp(int port, unsigned n, const char *outdir)
{
	struct sockaddr_in sa;
	struct ul_config cfg = { "DICOMVAULT", 16384 };
	unsigned i, stored = 0;
	int ls, one = 1, bad = 0;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4) != 0) {
		perror("ul_peer: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (i = 0; i < n; i++) {
		struct ul u;
		struct timeval tv = { 20, 0 };
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			return 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (ul_init_acceptor(&u, &cfg) != ERR_OK)
			return 1;
		if (run(fd, &u, outdir, &stored, false) != 0)
			bad++;
		printf("association %u done\n", i);
		fflush(stdout);
		ul_fini(&u);
		close(fd);
	}
	close(ls);
	return bad ? 1 : 0;
}

static int scu(int port, const char *ae)
{
	struct sockaddr_in sa;
	struct ul_config cfg = { "ULPEER", 0 };
	struct pdu_assoc *rq = malloc(sizeof *rq);
	struct ul u;
	unsigned dummy = 0;
	int fd, rc;

	if (rq == NULL || ul_init_requestor(&u, &cfg) != ERR_OK)
		return 1;
	pdu_assoc_init(rq, PDU_ASSOC_RQ);
	snprintf(rq->called, sizeof rq->called, "%s", ae);
	snprintf(rq->calling, sizeof rq->calling, "ULPEER");
	snprintf(rq->app_context, sizeof rq->app_context, PDU_APP_CONTEXT);
	if (pdu_assoc_add_pc(rq, 1, 0, "1.2.840.10008.1.1") != ERR_OK ||
	    pdu_assoc_add_ts(rq, "1.2.840.10008.1.2") != ERR_OK || ul_request(&u, rq) != ERR_OK)
		return 1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("ul_peer: connect");
		return 1;
	}
	if (ul_connected(&u) != ERR_OK)
		return 1;
	rc = run(fd, &u, ".", &dummy, true);
	close(fd);
	ul_fini(&u);
	pdu_assoc_fini(rq);
	free(rq);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (crypto_init() != ERR_OK)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "scp") == 0)
		return scp((int)strtol(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10), argv[4]);
	if (argc == 4 && strcmp(argv[1], "scu") == 0)
		return scu((int)strtol(argv[2], NULL, 10), argv[3]);
	fprintf(stderr, "usage: ul_peer scp PORT N OUTDIR | scu PORT AE\n");
	return 2;
}
