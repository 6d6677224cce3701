/* pdu_fuzz.c: libFuzzer target for the DICOM upper layer: the PDU framer,
 * the parser of every PDU type, and the state machine as acceptor and as
 * requestor. The input is a byte stream from the peer:
 *  1. framed whole and in chunks of sizes drawn from a generator seeded by
 *     the input; both must give the same PDUs (types and lengths);
 *  2. each PDU goes through its parser; an A-ASSOCIATE-RQ or -AC that
 *     parses is built again, must build (an AC with invalid reserved AE
 *     fields aside), parse back, and agree on contexts, transfer
 *     syntaxes, roles and the maximum length;
 *  3. an acceptor (policy: Verification, CT and MR storage) is fed the
 *     stream in chunks: it accepts what the provider lets through
 *     (or rejects it when the input's first byte is odd), answers
 *     releases, checks that every data fragment follows a command on the
 *     same context and that each command set is within its cap;
 *  4. a requestor that sent a fixed A-ASSOCIATE-RQ is fed the stream as
 *     the acceptor's answer, once as is and once asking to release as
 *     soon as it is accepted (the acceptor, too, asks to release after
 *     its first answer in half of the chunked runs), so that release
 *     collisions are reached.
 * Whatever either machine sends must frame and parse again.
 * The target abort()s on an inconsistency; the sanitizers catch the rest.
 * Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dimse.h"
#include "dicomvault/pdu.h"
#include "dicomvault/ul.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPDU 256

struct frames {
	uint8_t type[MAXPDU];
	size_t len[MAXPDU];
	unsigned n;
	enum err end;
};

static uint32_t next_chunk(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % 61;
}

static void frame(const uint8_t *d, size_t n, uint32_t seed, struct frames *fr, bool parse);

static void check_assoc(uint8_t type, const uint8_t *body, size_t len)
{
	struct pdu_assoc *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	struct wbuf w;
	uint8_t reason = 0xff;
	enum err rc;
	unsigned i;

	if (a == NULL || b == NULL)
		abort();
	rc = pdu_assoc_parse(type, body, len, a, &reason);
	if (rc != ERR_OK) {
		if (rc != ERR_PARSE && rc != ERR_LIMIT && rc != ERR_NOMEM)
			abort();
		if (reason == 0xff || a->npc != 0 || a->id_primary != NULL)
			abort();
		free(a);
		free(b);
		return;
	}
	wbuf_init(&w, 1 << 20);
	rc = pdu_assoc_build(a, &w);
	if (rc != ERR_OK) {
		/* an AC's AE fields are reserved (not tested), so may not build;
		 * rejected contexts gain a transfer syntax and may overflow; an
		 * RQ context whose abstract syntax was not a UID (kept as "",
		 * answered "not supported") or whose transfer syntaxes all were
		 * not (none kept) is parsed, but is no request to build */
		bool unbuildable = false;
		for (i = 0; i < a->npc; i++)
			unbuildable = unbuildable || a->pc[i].abstract[0] == 0 || a->pc[i].nts == 0;
		if (type == PDU_ASSOC_RQ && rc != ERR_LIMIT && !unbuildable)
			abort();
		goto out;
	}
	if (pdu_assoc_parse(type, w.p + 6, w.len - 6, b, NULL) != ERR_OK)
		abort();
	if (a->npc != b->npc || a->nts != b->nts || a->nroles != b->nroles || a->max_len != b->max_len ||
	    strcmp(a->called, b->called) != 0 || strcmp(a->impl_uid, b->impl_uid) != 0 ||
	    a->has_identity != b->has_identity)
		abort();
	for (i = 0; i < a->npc; i++)
		if (a->pc[i].id != b->pc[i].id || a->pc[i].nts != b->pc[i].nts || a->pc[i].result != b->pc[i].result)
			abort();
	for (i = 0; i < a->nts; i++)
		if (strcmp(a->ts[i], b->ts[i]) != 0)
			abort();
	pdu_assoc_fini(b);
out:
	wbuf_fini(&w);
	pdu_assoc_fini(a);
	free(a);
	free(b);
}

static void check_pdu(const struct pdu_view *v)
{
	struct pdu_rj rj;
	struct pdu_abort ab;
	struct pdu_pdv_iter it;
	struct pdu_pdv d;
	enum err rc;

	switch (v->type) {
	case PDU_ASSOC_RQ:
	case PDU_ASSOC_AC:
		check_assoc(v->type, v->body, v->len);
		break;
	case PDU_ASSOC_RJ:
		if (pdu_rj_parse(v->body, v->len, &rj) == ERR_OK && (rj.result < 1 || rj.result > 2))
			abort();
		break;
	case PDU_ABORT:
		if (pdu_abort_parse(v->body, v->len, &ab) == ERR_OK && ab.source > 2)
			abort();
		break;
	case PDU_RELEASE_RQ:
	case PDU_RELEASE_RP:
		if ((pdu_release_parse(v->body, v->len) == ERR_OK) != (v->len == 4))
			abort();
		break;
	case PDU_DATA_TF:
		pdu_pdv_iter_init(&it, v->body, v->len);
		while ((rc = pdu_pdv_next(&it, &d)) == ERR_OK)
			if (d.p < v->body || d.p + d.n > v->body + v->len)
				abort();
		if (rc != ERR_NOTFOUND && rc != ERR_PARSE)
			abort();
		break;
	default:
		abort();   /* the framer lets only known types through */
	}
}

static void frame(const uint8_t *d, size_t n, uint32_t seed, struct frames *fr, bool parse)
{
	struct pdu_framer f;
	struct pdu_view v;
	size_t off = 0, used;
	enum err rc = ERR_AGAIN;

	memset(fr, 0, sizeof *fr);
	pdu_framer_init(&f, 1u << 17);
	while (off < n) {
		size_t c = seed ? next_chunk(&seed) : n - off;
		if (c > n - off)
			c = n - off;
		rc = pdu_framer_feed(&f, d + off, c, &used, &v);
		if (used > c)
			abort();
		off += used;
		if (rc == ERR_OK) {
			if (v.len > f.max)
				abort();
			if (fr->n < MAXPDU) {
				fr->type[fr->n] = v.type;
				fr->len[fr->n] = v.len;
			}
			fr->n++;
			if (parse)
				check_pdu(&v);
			continue;
		}
		if (rc != ERR_AGAIN)
			break;
		if (used != c)
			abort();
	}
	fr->end = rc == ERR_OK ? ERR_AGAIN : rc;
	pdu_framer_fini(&f);
}

/* ---- the state machine ---- */

static const char *const ts_pref[] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", NULL };
static const struct ul_syntax syns[] = {
	{ "1.2.840.10008.1.1", ts_pref, false },
	{ "1.2.840.10008.5.1.4.1.1.2", ts_pref, true },
};

static bool any_storage(void *ctx, const char *abstract)
{
	(void)ctx;
	return strncmp(abstract, "1.2.840.10008.5.1.4.1.1.", 24) == 0;
}

/* What the machine sends must frame and parse: drained after each step. */
static void check_tx(struct ul *u)
{
	struct pdu_framer f;
	struct pdu_view v;
	size_t off = 0, used;
	enum err rc;

	pdu_framer_init(&f, UL_SEND_MAX_CAP);
	while (off < u->tx.len) {
		rc = pdu_framer_feed(&f, u->tx.p + off, u->tx.len - off, &used, &v);
		off += used;
		if (rc != ERR_OK)
			abort();   /* a PDU cut short, or a bad header */
		switch (v.type) {
		case PDU_ASSOC_AC:
		case PDU_ASSOC_RQ: {
			struct pdu_assoc *a = malloc(sizeof *a);
			if (a == NULL || pdu_assoc_parse(v.type, v.body, v.len, a, NULL) != ERR_OK)
				abort();
			pdu_assoc_fini(a);
			free(a);
			break;
		}
		case PDU_ASSOC_RJ: {
			struct pdu_rj rj;
			if (pdu_rj_parse(v.body, v.len, &rj) != ERR_OK)
				abort();
			break;
		}
		case PDU_ABORT: {
			struct pdu_abort ab;
			if (pdu_abort_parse(v.body, v.len, &ab) != ERR_OK)
				abort();
			break;
		}
		case PDU_RELEASE_RQ:
		case PDU_RELEASE_RP:
			if (pdu_release_parse(v.body, v.len) != ERR_OK)
				abort();
			break;
		case PDU_DATA_TF: {
			struct pdu_pdv_iter it;
			struct pdu_pdv d;
			pdu_pdv_iter_init(&it, v.body, v.len);
			while ((rc = pdu_pdv_next(&it, &d)) == ERR_OK)
				if (!ul_context(u, d.pcid, NULL, NULL) || d.n > u->frag_max)
					abort();
			if (rc != ERR_NOTFOUND || v.len > u->frag_max + 6)
				abort();
			break;
		}
		default:
			abort();
		}
	}
	pdu_framer_fini(&f);
	ul_tx_consumed(u, u->tx.len);
}

/* Answers a command as a service would: a response, and for C-FIND a
 * pending response with an identifier sent in three pieces. */
static void answer(struct ul *u, uint8_t pcid, const uint8_t *p, size_t n)
{
	static uint8_t ident[3000];
	struct dimse_cmd cmd, rsp;
	struct wbuf w;
	enum err rc = ERR_OK;

	if (dimse_cmd_parse(p, n, &cmd) != ERR_OK)
		return;
	if (!(cmd.has & DIMSE_F_FIELD))
		abort();
	if (cmd.field & 0x8000 || dimse_cmd_check(&cmd, NULL) != ERR_OK)
		return;
	wbuf_init(&w, DIMSE_MAX_COMMAND);
	dimse_cmd_rsp(&rsp, &cmd, cmd.field == DIMSE_C_FIND_RQ ? DIMSE_PENDING : DIMSE_SUCCESS);
	if (cmd.field == DIMSE_C_FIND_RQ)
		rsp.data_set_type = DIMSE_HAS_DATA_SET;
	if (dimse_cmd_build(&rsp, &w) != ERR_OK)
		abort();
	rc = ul_send_command(u, pcid, w.p, w.len);
	if (rc == ERR_OK && cmd.field == DIMSE_C_FIND_RQ) {
		rc = ul_send_data(u, pcid, ident, 1000, false);
		if (rc == ERR_OK)
			rc = ul_send_data(u, pcid, ident + 1000, 1999, false);
		if (rc == ERR_OK)
			rc = ul_send_data(u, pcid, ident + 2999, 1, true);
	}
	/* a command answered in Sta6 or Sta8, on an accepted context */
	if (rc != ERR_OK && (u->state == UL_STA6 || u->state == UL_STA8))
		abort();
	wbuf_fini(&w);
}

static void drive(struct ul *u, const uint8_t *d, size_t n, uint32_t seed, bool reject, bool release)
{
	struct ul_policy pol = { syns, 2, any_storage, NULL, ts_pref, false, true, NULL, 0 };
	struct ul_event ev;
	size_t off = 0, used, c = 0;
	unsigned guard = 0;
	uint8_t data_pcid = 0;
	enum err rc;

	while (off < n) {
		c = seed ? next_chunk(&seed) : n - off;
		if (c > n - off)
			c = n - off;
		for (;;) {
			rc = ul_feed(u, d + off, c, &used, &ev);
			if (used > c)
				abort();
			off += used;
			c -= used;
			if (rc == ERR_AGAIN) {
				if (c != 0 || u->in_pdata)
					abort();
				break;
			}
			if (rc != ERR_OK)
				goto out;   /* local trouble (tx full): the caller would close */
			if (++guard > 1000000)
				abort();
			switch (ev.kind) {
			case UL_EV_ASSOC_RQ:
				if (u->state != UL_STA3)
					abort();
				if (reject)
					rc = ul_reject(u, PDU_RJ_PERMANENT, PDU_RJ_SRC_USER, PDU_RJ_CALLING_AE);
				else
					rc = ul_accept(u, &pol);
				if (rc != ERR_OK && rc != ERR_LIMIT && rc != ERR_NOMEM)
					abort();
				if (rc != ERR_OK)
					ul_abort(u);
				break;
			case UL_EV_COMMAND:
				if (ev.n > DIMSE_MAX_COMMAND || !ul_context(u, ev.pcid, NULL, NULL))
					abort();
				data_pcid = ev.pcid;
				answer(u, ev.pcid, ev.p, ev.n);
				if (release && u->state == UL_STA6 && ul_release_rq(u) != ERR_OK)
					abort();
				break;
			case UL_EV_DATA:
				if (ev.pcid != data_pcid || (ev.n == 0 && !ev.last))
					abort();
				if (ev.last)
					data_pcid = 0;
				break;
			case UL_EV_RELEASE_RQ:
				/* Sta10 (collision, acceptor): answered after the RP */
				if (u->state == UL_STA10) {
					if (ul_release_rp(u) != ERR_INTERNAL)
						abort();
				} else if (ul_release_rp(u) != ERR_OK) {
					abort();
				}
				break;
			case UL_EV_RELEASE_RP:
				if (u->state == UL_STA12 && ul_release_rp(u) != ERR_OK)
					abort();
				break;
			case UL_EV_ASSOC_AC:
				if (u->state != UL_STA6)
					abort();
				if (release && ul_release_rq(u) != ERR_OK)
					abort();
				break;
			case UL_EV_ABORT:
			case UL_EV_CLOSED:
			case UL_EV_ASSOC_RJ:
				break;
			default:
				abort();
			}
			check_tx(u);
		}
	}
out:
	if (wbuf_err(&u->tx) == ERR_OK)
		check_tx(u);
	if (u->state < UL_STA1 || u->state > UL_STA13)
		abort();
	ul_transport_closed(u, &ev);
	if (u->state != UL_STA1)
		abort();
}

static void acceptor(const uint8_t *d, size_t n, uint32_t seed)
{
	struct ul_config cfg = { "DICOMVAULT", 16384 };
	struct ul u;

	if (ul_init_acceptor(&u, &cfg) != ERR_OK)
		abort();
	drive(&u, d, n, seed, seed != 0 && (seed >> 8) % 8 == 0, seed != 0 && (seed >> 4) % 2 == 0);
	ul_fini(&u);
}

static void requestor(const uint8_t *d, size_t n, uint32_t seed, bool release)
{
	struct ul_config cfg = { "FUZZSCU", 4096 };
	struct pdu_assoc *rq = malloc(sizeof *rq);
	struct ul u;

	if (rq == NULL || ul_init_requestor(&u, &cfg) != ERR_OK)
		abort();
	pdu_assoc_init(rq, PDU_ASSOC_RQ);
	memcpy(rq->called, "DICOMVAULT", 11);
	memcpy(rq->calling, "FUZZSCU", 8);
	memcpy(rq->app_context, PDU_APP_CONTEXT, sizeof PDU_APP_CONTEXT);
	if (pdu_assoc_add_pc(rq, 1, 0, "1.2.840.10008.1.1") != ERR_OK ||
	    pdu_assoc_add_ts(rq, "1.2.840.10008.1.2") != ERR_OK ||
	    pdu_assoc_add_pc(rq, 3, 0, "1.2.840.10008.5.1.4.1.1.2") != ERR_OK ||
	    pdu_assoc_add_ts(rq, "1.2.840.10008.1.2.1") != ERR_OK || ul_request(&u, rq) != ERR_OK ||
	    ul_connected(&u) != ERR_OK)
		abort();
	ul_tx_consumed(&u, u.tx.len);
	drive(&u, d, n, seed, false, release);
	ul_fini(&u);
	pdu_assoc_fini(rq);
	free(rq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frames a, b;
	uint32_t seed = 1;
	size_t i;

	if (crypto_init() != ERR_OK)
		abort();
	for (i = 0; i < size; i++)
		seed = seed * 31u + data[i];
	seed |= 1;
	frame(data, size, 0, &a, true);
	frame(data, size, seed, &b, false);
	if (a.n != b.n || a.end != b.end)
		abort();
	for (i = 0; i < a.n && i < MAXPDU; i++)
		if (a.type[i] != b.type[i] || a.len[i] != b.len[i])
			abort();
	acceptor(data, size, 0);
	acceptor(data, size, seed);
	requestor(data, size, seed, false);
	requestor(data, size, 0, true);
	return 0;
}
