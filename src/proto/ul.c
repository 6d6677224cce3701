/* ul.c: the DICOM upper layer state machine (PS3.8 9.2, table 9-10) for
 * acceptor and requestor, presentation context negotiation, P-DATA
 * reassembly (command sets whole, data sets streamed) and fragmentation.
 * Pure: no sockets, no clock; the caller sends u->tx, closes when
 * u->close, and runs ARTIM as ul_artim() says. Layer: proto. */
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/ul.h"

const char *ul_state_name(enum ul_state s)
{
	static const char *const names[] = { "Sta1", "Sta2", "Sta3", "Sta4", "Sta5", "Sta6", "Sta7",
	                                     "Sta8", "Sta9", "Sta10", "Sta11", "Sta12", "Sta13" };
	return s >= UL_STA1 && s <= UL_STA13 ? names[s - 1] : "Sta?";
}

static enum err init_common(struct ul *u, const struct ul_config *cfg, bool requestor)
{
	uint32_t m = cfg->recv_max ? cfg->recv_max : UL_RECV_MAX_DEFAULT;

	memset(u, 0, sizeof *u);
	if (cfg->ae == NULL || !pdu_ae_ok(cfg->ae))
		return ERR_PARSE;
	if (m < UL_PEER_MIN_MAX)
		m = UL_PEER_MIN_MAX;
	if (m > UL_RECV_MAX_CAP)
		m = UL_RECV_MAX_CAP;
	memcpy(u->ae, cfg->ae, strlen(cfg->ae) + 1);
	u->recv_max = m;
	u->requestor = requestor;
	u->state = UL_STA1;
	pdu_framer_init(&u->fr, PDU_MAX_PREASSOC);
	wbuf_init(&u->tx, UL_TX_MAX);
	wbuf_init(&u->rq_pdu, PDU_MAX_PREASSOC + PDU_HEADER_LEN);
	wbuf_init(&u->cmd, DIMSE_MAX_COMMAND);
	u->rq = malloc(sizeof *u->rq);
	u->ac = malloc(sizeof *u->ac);
	if (u->rq == NULL || u->ac == NULL) {
		ul_fini(u);
		return ERR_NOMEM;
	}
	pdu_assoc_init(u->rq, PDU_ASSOC_RQ);
	pdu_assoc_init(u->ac, PDU_ASSOC_AC);
	return ERR_OK;
}

static void artim_start(struct ul *u)
{
	u->artim = true;
	u->artim_seq++;
}

static void artim_stop(struct ul *u)
{
	u->artim = false;
}

bool ul_artim(const struct ul *u, unsigned *seq)
{
	if (seq != NULL)
		*seq = u->artim_seq;
	return u->artim;
}

enum err ul_init_acceptor(struct ul *u, const struct ul_config *cfg)
{
	enum err rc = init_common(u, cfg, false);

	if (rc != ERR_OK)
		return rc;
	/* Evt5, AE-5: the connection is open, ARTIM runs until the RQ */
	u->state = UL_STA2;
	artim_start(u);
	return ERR_OK;
}

enum err ul_init_requestor(struct ul *u, const struct ul_config *cfg)
{
	return init_common(u, cfg, true);
}

void ul_fini(struct ul *u)
{
	pdu_framer_fini(&u->fr);
	wbuf_fini(&u->tx);
	wbuf_fini(&u->rq_pdu);
	wbuf_fini(&u->cmd);
	if (u->rq != NULL)
		pdu_assoc_fini(u->rq);
	if (u->ac != NULL)
		pdu_assoc_fini(u->ac);
	free(u->rq);
	free(u->ac);
	free(u->stage);
	memset(u, 0, sizeof *u);
}

void ul_tx_consumed(struct ul *u, size_t n)
{
	if (n >= u->tx.len) {
		u->tx.len = 0;
		return;
	}
	memmove(u->tx.p, u->tx.p + n, u->tx.len - n);
	u->tx.len -= n;
}

/* ---- actions ---- */

static void ev_clear(struct ul_event *ev, enum ul_ev_kind kind)
{
	memset(ev, 0, sizeof *ev);
	ev->kind = kind;
}

/* Back to Sta1 with the transport closed. */
static void to_idle(struct ul *u)
{
	artim_stop(u);
	u->close = true;
	u->state = UL_STA1;
}

/* AA-1: A-ABORT (service-user source), ARTIM, Sta13. */
static void aa1(struct ul *u)
{
	pdu_abort_build(PDU_ABORT_SRC_USER, PDU_ABORT_NOT_SPECIFIED, &u->tx);
	artim_start(u);
	u->state = UL_STA13;
}

/* AA-8: A-ABORT (service-provider source), A-P-ABORT indication, ARTIM,
 * Sta13. */
static void aa8(struct ul *u, uint8_t reason, const char *why, struct ul_event *ev)
{
	pdu_abort_build(PDU_ABORT_SRC_PROVIDER, reason, &u->tx);
	artim_start(u);
	u->state = UL_STA13;
	ev_clear(ev, UL_EV_ABORT);
	ev->provider = true;
	ev->abort.source = PDU_ABORT_SRC_PROVIDER;
	ev->abort.reason = reason;
	ev->why = why;
}

/* Evt19 (an unrecognized or invalid PDU) in the current state. Returns
 * true when an event is reported. */
static bool invalid_pdu(struct ul *u, uint8_t reason, const char *why, struct ul_event *ev)
{
	switch (u->state) {
	case UL_STA2:
		aa1(u);
		ev_clear(ev, UL_EV_ABORT);
		ev->provider = true;
		ev->why = why;
		return true;
	case UL_STA13:   /* AA-7, sent once */
		if (!u->aa7_sent)
			pdu_abort_build(PDU_ABORT_SRC_PROVIDER, reason, &u->tx);
		u->aa7_sent = true;
		return false;
	case UL_STA1:
	case UL_STA4:
		return false;
	default:
		aa8(u, reason, why, ev);
		return true;
	}
}

/* A valid PDU that the state does not expect: AA-1 in Sta2, AA-6
 * (ignore) in Sta13, AA-8 elsewhere. */
static bool unexpected_pdu(struct ul *u, struct ul_event *ev)
{
	if (u->state == UL_STA13)
		return false;
	return invalid_pdu(u, PDU_ABORT_UNEXPECTED, "unexpected PDU", ev);
}

static void set_frag_max(struct ul *u, const struct pdu_assoc *peer)
{
	uint32_t m = !peer->has_max_len ? UL_PEER_DEFAULT_MAX : peer->max_len;

	if (m == 0 || m > UL_SEND_MAX_CAP)
		m = UL_SEND_MAX_CAP;
	u->frag_max = (m - 6) & ~(size_t)1;   /* PDV item header: 4 + 2 */
}

static const struct pdu_pctx *pc_find(const struct pdu_assoc *a, uint8_t id)
{
	unsigned i;

	for (i = 0; i < a->npc; i++)
		if (a->pc[i].id == id)
			return &a->pc[i];
	return NULL;
}

bool ul_context(const struct ul *u, uint8_t pcid, const char **abstract, const char **ts)
{
	const struct pdu_pctx *a, *r;

	if (u->state < UL_STA6 || u->state > UL_STA12)
		return false;
	a = pc_find(u->ac, pcid);
	r = pc_find(u->rq, pcid);
	if (a == NULL || r == NULL || a->result != PDU_PC_ACCEPT || a->nts != 1)
		return false;
	if (abstract != NULL)
		*abstract = r->abstract;
	if (ts != NULL)
		*ts = u->ac->ts[a->ts_first];
	return true;
}

/* AE-6: an A-ASSOCIATE-RQ in Sta2. */
static enum err on_assoc_rq(struct ul *u, const struct pdu_view *v, struct ul_event *ev)
{
	uint8_t reason = PDU_ABORT_INVALID_PARAM;
	struct pdu_rj rj = { PDU_RJ_PERMANENT, 0, 0 };
	enum err rc;

	rc = pdu_assoc_parse(PDU_ASSOC_RQ, v->body, v->len, u->rq, &reason);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc == ERR_PARSE) {
		invalid_pdu(u, reason, "malformed A-ASSOCIATE-RQ", ev);
		return ERR_OK;
	}
	artim_stop(u);
	if (rc != ERR_OK) {   /* well formed but over a count or size cap */
		rj.source = PDU_RJ_SRC_PRESENTATION;
		rj.reason = PDU_RJ_LOCAL_LIMIT;
	} else if (!(u->rq->version & 1)) {
		rj.source = PDU_RJ_SRC_ACSE;
		rj.reason = PDU_RJ_PROTOCOL_VERSION;
	} else if (strcmp(u->rq->app_context, PDU_APP_CONTEXT) != 0) {
		rj.source = PDU_RJ_SRC_USER;
		rj.reason = PDU_RJ_APP_CONTEXT;
	} else if (strcmp(u->rq->called, u->ae) != 0) {
		rj.source = PDU_RJ_SRC_USER;
		rj.reason = PDU_RJ_CALLED_AE;
	} else if (u->rq->has_max_len && u->rq->max_len != 0 && u->rq->max_len < UL_PEER_MIN_MAX) {
		rj.source = PDU_RJ_SRC_PRESENTATION;
		rj.reason = PDU_RJ_LOCAL_LIMIT;
	}
	if (rj.source != 0) {   /* not acceptable to the provider: RJ, ARTIM, Sta13 */
		pdu_rj_build(&rj, &u->tx);
		artim_start(u);
		u->state = UL_STA13;
		ev_clear(ev, UL_EV_ASSOC_RJ);
		ev->provider = true;
		ev->rj = rj;
		ev->why = rj.reason == PDU_RJ_CALLED_AE ? "called AE title not recognized"
		          : rj.reason == PDU_RJ_APP_CONTEXT && rj.source == PDU_RJ_SRC_USER
		              ? "application context not supported"
		              : rj.reason == PDU_RJ_LOCAL_LIMIT && rj.source == PDU_RJ_SRC_PRESENTATION
		                  ? "A-ASSOCIATE-RQ over a local limit"
		                  : "association rejected by the provider";
		return ERR_OK;
	}
	u->state = UL_STA3;
	ev_clear(ev, UL_EV_ASSOC_RQ);
	return ERR_OK;
}

/* AE-3: an A-ASSOCIATE-AC in Sta5; checked against what we proposed. */
static enum err on_assoc_ac(struct ul *u, const struct pdu_view *v, struct ul_event *ev)
{
	uint8_t reason = PDU_ABORT_INVALID_PARAM;
	unsigned i, k;
	enum err rc;

	rc = pdu_assoc_parse(PDU_ASSOC_AC, v->body, v->len, u->ac, &reason);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc == ERR_OK && strcmp(u->ac->app_context, PDU_APP_CONTEXT) != 0)
		rc = ERR_PARSE;
	if (rc == ERR_OK && u->ac->has_max_len && u->ac->max_len != 0 && u->ac->max_len < UL_PEER_MIN_MAX)
		rc = ERR_PARSE;
	for (i = 0; rc == ERR_OK && i < u->ac->npc; i++) {
		const struct pdu_pctx *a = &u->ac->pc[i], *r = pc_find(u->rq, a->id);
		bool found = false;
		if (r == NULL) {
			rc = ERR_PARSE;
			break;
		}
		if (a->result != PDU_PC_ACCEPT)
			continue;
		for (k = 0; k < r->nts; k++)
			found = found || strcmp(u->rq->ts[r->ts_first + k], u->ac->ts[a->ts_first]) == 0;
		if (!found)
			rc = ERR_PARSE;
	}
	if (rc != ERR_OK) {
		pdu_assoc_fini(u->ac);
		invalid_pdu(u, reason, "malformed or inconsistent A-ASSOCIATE-AC", ev);
		return ERR_OK;
	}
	set_frag_max(u, u->ac);
	pdu_framer_set_max(&u->fr, u->recv_max);
	u->state = UL_STA6;
	ev_clear(ev, UL_EV_ASSOC_AC);
	return ERR_OK;
}

/* One PDV of the current P-DATA-TF (DT-2, AR-6). Returns true with an
 * event, false to go on with the next PDV. */
static bool on_pdv(struct ul *u, const struct pdu_pdv *d, struct ul_event *ev)
{
	bool last = (d->mch & PDU_PDV_LAST) != 0;

	if (!ul_context(u, d->pcid, NULL, NULL))
		return invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "PDV on a context that is not accepted", ev);
	if (d->mch & PDU_PDV_COMMAND) {
		if (u->data_open || (u->cmd_open && d->pcid != u->cmd_pcid))
			return invalid_pdu(u, PDU_ABORT_UNEXP_PARAM, "command fragment out of sequence", ev);
		if (!u->cmd_open) {
			wbuf_reset(&u->cmd);
			u->cmd_open = true;
			u->cmd_pcid = d->pcid;
			u->data_pcid = 0;
		}
		wbuf_put(&u->cmd, d->p, d->n);
		if (wbuf_err(&u->cmd) != ERR_OK)
			return invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "command set over the limit", ev);
		if (!last)
			return false;
		u->cmd_open = false;
		u->data_pcid = d->pcid;
		ev_clear(ev, UL_EV_COMMAND);
		ev->pcid = d->pcid;
		ev->p = u->cmd.len ? u->cmd.p : (const uint8_t *)"";
		ev->n = u->cmd.len;
		return true;
	}
	if (u->cmd_open || d->pcid != u->data_pcid)
		return invalid_pdu(u, PDU_ABORT_UNEXP_PARAM, "data fragment without its command", ev);
	u->data_open = !last;
	if (last)
		u->data_pcid = 0;
	if (d->n == 0 && !last)
		return false;
	ev_clear(ev, UL_EV_DATA);
	ev->pcid = d->pcid;
	ev->p = d->p;
	ev->n = d->n;
	ev->last = last;
	return true;
}

/* Next PDV of the P-DATA-TF being read. */
static bool pdata_step(struct ul *u, struct ul_event *ev)
{
	struct pdu_pdv d;
	enum err rc;

	while (u->in_pdata) {
		rc = pdu_pdv_next(&u->it, &d);
		if (rc == ERR_NOTFOUND) {
			u->in_pdata = false;
			return false;
		}
		if (rc != ERR_OK) {
			u->in_pdata = false;
			return invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "malformed P-DATA-TF", ev);
		}
		if (on_pdv(u, &d, ev)) {
			if (ev->kind == UL_EV_ABORT)
				u->in_pdata = false;
			return true;
		}
		if (u->state == UL_STA13 || u->state == UL_STA1)
			u->in_pdata = false;
	}
	return false;
}

/* One whole PDU, dispatched by table 9-10. Returns ERR_OK with ev set
 * (kind NONE: nothing to report) or a local error. */
static enum err on_pdu(struct ul *u, const struct pdu_view *v, struct ul_event *ev)
{
	struct pdu_rj rj;
	struct pdu_abort ab;
	enum ul_state s = u->state;

	ev_clear(ev, UL_EV_NONE);
	switch (v->type) {
	case PDU_ASSOC_RQ:   /* Evt6 */
		if (s == UL_STA2)
			return on_assoc_rq(u, v, ev);
		if (s == UL_STA13) {
			(void)invalid_pdu(u, PDU_ABORT_UNEXPECTED, "A-ASSOCIATE-RQ in Sta13", ev);   /* AA-7 */
			return ERR_OK;
		}
		(void)unexpected_pdu(u, ev);
		return ERR_OK;
	case PDU_ASSOC_AC:   /* Evt3 */
		if (s == UL_STA5)
			return on_assoc_ac(u, v, ev);
		(void)unexpected_pdu(u, ev);
		return ERR_OK;
	case PDU_ASSOC_RJ:   /* Evt4 */
		if (s != UL_STA5) {
			(void)unexpected_pdu(u, ev);
			return ERR_OK;
		}
		if (pdu_rj_parse(v->body, v->len, &rj) != ERR_OK) {
			(void)invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "malformed A-ASSOCIATE-RJ", ev);
			return ERR_OK;
		}
		to_idle(u);   /* AE-4 */
		ev_clear(ev, UL_EV_ASSOC_RJ);
		ev->rj = rj;
		return ERR_OK;
	case PDU_DATA_TF:    /* Evt10 */
		if (s != UL_STA6 && s != UL_STA7) {
			(void)unexpected_pdu(u, ev);
			return ERR_OK;
		}
		pdu_pdv_iter_init(&u->it, v->body, v->len);   /* DT-2, AR-6 */
		u->in_pdata = true;
		(void)pdata_step(u, ev);
		return ERR_OK;
	case PDU_RELEASE_RQ: /* Evt12 */
		if ((s == UL_STA6 || s == UL_STA7) && pdu_release_parse(v->body, v->len) != ERR_OK) {
			(void)invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "malformed A-RELEASE-RQ", ev);
			return ERR_OK;
		}
		if (s == UL_STA6) {          /* AR-2 */
			u->state = UL_STA8;
			ev_clear(ev, UL_EV_RELEASE_RQ);
		} else if (s == UL_STA7) {   /* AR-8: collision */
			u->state = u->requestor ? UL_STA9 : UL_STA10;
			ev_clear(ev, UL_EV_RELEASE_RQ);
			ev->collision = true;
		} else {
			(void)unexpected_pdu(u, ev);
		}
		return ERR_OK;
	case PDU_RELEASE_RP: /* Evt13 */
		if ((s == UL_STA7 || s == UL_STA10 || s == UL_STA11) && pdu_release_parse(v->body, v->len) != ERR_OK) {
			(void)invalid_pdu(u, PDU_ABORT_INVALID_PARAM, "malformed A-RELEASE-RP", ev);
			return ERR_OK;
		}
		if (s == UL_STA7 || s == UL_STA11) {   /* AR-3 */
			to_idle(u);
			ev_clear(ev, UL_EV_RELEASE_RP);
			ev->collision = s == UL_STA11;
		} else if (s == UL_STA10) {            /* AR-10 */
			u->state = UL_STA12;
			ev_clear(ev, UL_EV_RELEASE_RP);
			ev->collision = true;
		} else {
			(void)unexpected_pdu(u, ev);
		}
		return ERR_OK;
	case PDU_ABORT:      /* Evt16 */
		if (s == UL_STA2 || s == UL_STA13) {   /* AA-2 */
			to_idle(u);
			ev_clear(ev, UL_EV_CLOSED);
			return ERR_OK;
		}
		if (pdu_abort_parse(v->body, v->len, &ab) != ERR_OK) {
			ab.source = PDU_ABORT_SRC_USER;   /* a malformed abort still aborts */
			ab.reason = 0;
		}
		to_idle(u);   /* AA-3 */
		ev_clear(ev, UL_EV_ABORT);
		ev->abort = ab;
		return ERR_OK;
	default:
		(void)invalid_pdu(u, PDU_ABORT_UNRECOGNIZED, "unrecognized PDU", ev);
		return ERR_OK;
	}
}

enum err ul_feed(struct ul *u, const uint8_t *data, size_t n, size_t *used, struct ul_event *ev)
{
	size_t off = 0, k;
	struct pdu_view v;
	enum err rc;

	ev_clear(ev, UL_EV_NONE);
	*used = 0;
	if (u->in_pdata && pdata_step(u, ev))
		return wbuf_err(&u->tx) != ERR_OK ? wbuf_err(&u->tx) : ERR_OK;
	while (off < n) {
		if (u->state == UL_STA1 || u->state == UL_STA4 || u->fr.err != ERR_OK) {
			off = n;   /* no association, or a stream we can no longer frame: dropped */
			break;
		}
		rc = pdu_framer_feed(&u->fr, data + off, n - off, &k, &v);
		off += k;
		if (rc == ERR_AGAIN)
			break;
		if (rc == ERR_NOMEM) {
			*used = off;
			return rc;
		}
		if (rc != ERR_OK) {
			off = n;
			if (invalid_pdu(u, rc == ERR_LIMIT ? PDU_ABORT_INVALID_PARAM : PDU_ABORT_UNRECOGNIZED,
			                rc == ERR_LIMIT ? "PDU longer than the maximum length" : "unrecognized PDU type",
			                ev))
				break;
			continue;
		}
		rc = on_pdu(u, &v, ev);
		if (rc != ERR_OK) {
			*used = off;
			return rc;
		}
		if (ev->kind != UL_EV_NONE)
			break;
	}
	*used = off;
	if (wbuf_err(&u->tx) != ERR_OK)
		return wbuf_err(&u->tx);
	return ev->kind != UL_EV_NONE ? ERR_OK : ERR_AGAIN;
}

void ul_transport_closed(struct ul *u, struct ul_event *ev)
{
	enum ul_state s = u->state;

	ev_clear(ev, UL_EV_CLOSED);
	u->in_pdata = false;
	if (s >= UL_STA3 && s <= UL_STA12) {   /* AA-4: A-P-ABORT */
		ev_clear(ev, UL_EV_ABORT);
		ev->provider = true;
		ev->abort.source = PDU_ABORT_SRC_PROVIDER;
		ev->why = "transport closed";
	}
	artim_stop(u);   /* AA-5, AR-5 */
	u->state = UL_STA1;
}

void ul_artim_expired(struct ul *u, struct ul_event *ev)
{
	ev_clear(ev, UL_EV_NONE);
	if (u->state == UL_STA2 || u->state == UL_STA13) {   /* AA-2 */
		to_idle(u);
		ev_clear(ev, UL_EV_CLOSED);
	}
}

/* ---- negotiation (acceptor) ---- */

static const struct ul_syntax *syn_find(const struct ul_policy *pol, const char *abstract)
{
	size_t i;

	for (i = 0; i < pol->nsyn; i++)
		if (strcmp(pol->syn[i].abstract, abstract) == 0)
			return &pol->syn[i];
	return NULL;
}

enum err ul_negotiate(const struct pdu_assoc *rq, const struct ul_policy *pol, struct pdu_assoc *ac)
{
	unsigned i, k, j;
	enum err rc;

	memcpy(ac->called, rq->called, sizeof ac->called);
	memcpy(ac->calling, rq->calling, sizeof ac->calling);
	memcpy(ac->app_context, PDU_APP_CONTEXT, sizeof PDU_APP_CONTEXT);
	for (i = 0; i < rq->npc; i++) {
		const struct pdu_pctx *pc = &rq->pc[i];
		const struct ul_syntax *sy = syn_find(pol, pc->abstract);
		const char *const *ts = sy ? sy->ts : NULL;
		const char *pick = NULL;
		if (sy == NULL && pol->accept_abstract != NULL && pol->accept_abstract(pol->ctx, pc->abstract))
			ts = pol->default_ts;
		for (k = 0; ts != NULL && ts[k] != NULL && pick == NULL; k++)
			for (j = 0; j < pc->nts && pick == NULL; j++)
				if (strcmp(ts[k], rq->ts[pc->ts_first + j]) == 0)
					pick = ts[k];
		rc = pdu_assoc_add_pc(ac, pc->id, ts == NULL ? PDU_PC_ABSTRACT_REJECT
		                                  : pick == NULL ? PDU_PC_TS_REJECT : PDU_PC_ACCEPT, NULL);
		if (rc == ERR_OK && pick != NULL)
			rc = pdu_assoc_add_ts(ac, pick);
		if (rc != ERR_OK)
			return rc;
	}
	/* role selection: answered for the abstract syntaxes accepted */
	for (i = 0; i < rq->nroles; i++) {
		const struct pdu_role *ro = &rq->role[i];
		const struct ul_syntax *sy = syn_find(pol, ro->uid);
		bool accepted = false, scp_ok = sy ? sy->requestor_scp : pol->default_requestor_scp;
		for (k = 0; k < rq->npc && !accepted; k++)
			accepted = strcmp(rq->pc[k].abstract, ro->uid) == 0 && ac->pc[k].result == PDU_PC_ACCEPT;
		if (!accepted)
			continue;
		if (ac->nroles >= PDU_MAX_ROLES)
			return ERR_LIMIT;
		ac->role[ac->nroles] = *ro;
		ac->role[ac->nroles].scu = ro->scu;
		ac->role[ac->nroles].scp = ro->scp && scp_ok ? 1 : 0;
		ac->nroles++;
	}
	if (rq->has_async) {   /* we perform one operation at a time */
		ac->has_async = true;
		ac->async_invoked = 1;
		ac->async_performed = 1;
	}
	if (rq->has_identity && rq->id_response_requested && pol->identity_accepted) {
		ac->has_id_response = true;
		if (pol->identity_response_len > PDU_MAX_IDENTITY_RESP)
			return ERR_LIMIT;
		if (pol->identity_response_len > 0) {
			rc = secret_from_bytes(pol->identity_response, pol->identity_response_len, &ac->id_response);
			if (rc != ERR_OK)
				return rc;
		}
	}
	return ERR_OK;
}

static void set_identity(struct ul *u, struct pdu_assoc *a)
{
	a->max_len = u->recv_max;
	a->has_max_len = true;
	memcpy(a->impl_uid, DCM_IMPL_CLASS_UID, sizeof DCM_IMPL_CLASS_UID);
	memcpy(a->impl_version, DCM_IMPL_VERSION, sizeof DCM_IMPL_VERSION);
}

enum err ul_accept(struct ul *u, const struct ul_policy *pol)
{
	enum err rc;

	if (u->state != UL_STA3)
		return ERR_INTERNAL;
	pdu_assoc_fini(u->ac);
	rc = ul_negotiate(u->rq, pol, u->ac);
	if (rc != ERR_OK) {
		pdu_assoc_fini(u->ac);
		return rc;
	}
	set_identity(u, u->ac);
	rc = pdu_assoc_build(u->ac, &u->tx);   /* AE-7 */
	if (rc != ERR_OK)
		return rc;
	set_frag_max(u, u->rq);
	pdu_framer_set_max(&u->fr, u->recv_max);
	u->state = UL_STA6;
	return ERR_OK;
}

enum err ul_reject(struct ul *u, uint8_t result, uint8_t source, uint8_t reason)
{
	struct pdu_rj rj = { result, source, reason };

	if (u->state != UL_STA3)
		return ERR_INTERNAL;
	if (result < PDU_RJ_PERMANENT || result > PDU_RJ_TRANSIENT || source < PDU_RJ_SRC_USER ||
	    source > PDU_RJ_SRC_PRESENTATION)
		return ERR_PARSE;
	pdu_rj_build(&rj, &u->tx);   /* AE-8 */
	artim_start(u);
	u->state = UL_STA13;
	return wbuf_err(&u->tx);
}

/* ---- requestor ---- */

enum err ul_request(struct ul *u, const struct pdu_assoc *rq)
{
	struct pdu_assoc *t;
	enum err rc;

	if (u->state != UL_STA1 || !u->requestor || rq->type != PDU_ASSOC_RQ)
		return ERR_INTERNAL;
	/* the RQ is built now (its secrets are not kept) and sent at AE-2,
	 * with the maximum length this side enforces (a shallow copy: the
	 * caller's rq is left as it is) */
	t = malloc(sizeof *t);
	if (t == NULL)
		return ERR_NOMEM;
	*t = *rq;
	t->max_len = u->recv_max;
	t->has_max_len = true;
	wbuf_reset(&u->rq_pdu);
	rc = pdu_assoc_build(t, &u->rq_pdu);
	free(t);
	if (rc != ERR_OK)
		return rc;
	pdu_assoc_fini(u->rq);
	*u->rq = *rq;
	u->rq->max_len = u->recv_max;
	u->rq->has_max_len = true;
	u->rq->id_primary = u->rq->id_secondary = u->rq->id_response = NULL;
	u->state = UL_STA4;   /* AE-1: the caller connects */
	return ERR_OK;
}

enum err ul_connected(struct ul *u)
{
	if (u->state != UL_STA4)
		return ERR_INTERNAL;
	wbuf_put(&u->tx, u->rq_pdu.p, u->rq_pdu.len);   /* AE-2 */
	wbuf_fini(&u->rq_pdu);
	u->state = UL_STA5;
	return wbuf_err(&u->tx);
}

/* ---- sending ---- */

static bool can_send(const struct ul *u)
{
	return u->state == UL_STA6 || u->state == UL_STA8;   /* DT-1, AR-7 */
}

enum err ul_send_command(struct ul *u, uint8_t pcid, const uint8_t *p, size_t n)
{
	size_t off = 0, k;

	if (!can_send(u) || u->stage_open || n == 0)
		return ERR_INTERNAL;
	if (!ul_context(u, pcid, NULL, NULL))
		return ERR_DENIED;
	while (off < n) {
		k = n - off < u->frag_max ? n - off : u->frag_max;
		pdu_pdata_build(pcid, (uint8_t)(PDU_PDV_COMMAND | (off + k == n ? PDU_PDV_LAST : 0)), p + off, k, &u->tx);
		off += k;
	}
	return wbuf_err(&u->tx);
}

enum err ul_send_data(struct ul *u, uint8_t pcid, const uint8_t *p, size_t n, bool last)
{
	size_t k;

	if (!can_send(u) || (u->stage_open && pcid != u->stage_pcid))
		return ERR_INTERNAL;
	if (!ul_context(u, pcid, NULL, NULL))
		return ERR_DENIED;
	if (u->stage == NULL) {
		u->stage = malloc(u->frag_max);
		if (u->stage == NULL)
			return ERR_NOMEM;
	}
	if (!u->stage_open) {
		u->stage_open = true;
		u->stage_pcid = pcid;
		u->stage_len = 0;
	}
	while (n > 0) {
		if (u->stage_len == u->frag_max) {   /* full, and more follows: not the last */
			pdu_pdata_build(pcid, 0, u->stage, u->stage_len, &u->tx);
			u->stage_len = 0;
		}
		k = n < u->frag_max - u->stage_len ? n : u->frag_max - u->stage_len;
		memcpy(u->stage + u->stage_len, p, k);
		u->stage_len += k;
		p += k;
		n -= k;
	}
	if (last) {
		pdu_pdata_build(pcid, PDU_PDV_LAST, u->stage, u->stage_len, &u->tx);
		u->stage_len = 0;
		u->stage_open = false;
	}
	return wbuf_err(&u->tx);
}

enum err ul_release_rq(struct ul *u)
{
	if (u->state != UL_STA6 || u->stage_open)
		return ERR_INTERNAL;
	pdu_release_build(PDU_RELEASE_RQ, &u->tx);   /* AR-1 */
	u->state = UL_STA7;
	return wbuf_err(&u->tx);
}

enum err ul_release_rp(struct ul *u)
{
	switch (u->state) {
	case UL_STA8:
	case UL_STA12:   /* AR-4 */
		pdu_release_build(PDU_RELEASE_RP, &u->tx);
		artim_start(u);
		u->state = UL_STA13;
		break;
	case UL_STA9:    /* AR-9 */
		pdu_release_build(PDU_RELEASE_RP, &u->tx);
		u->state = UL_STA11;
		break;
	default:
		return ERR_INTERNAL;
	}
	return wbuf_err(&u->tx);
}

void ul_abort(struct ul *u)
{
	u->in_pdata = false;
	switch (u->state) {
	case UL_STA2:
	case UL_STA4:    /* AA-2 */
		to_idle(u);
		break;
	case UL_STA1:
	case UL_STA13:
		break;
	default:         /* AA-1 */
		aa1(u);
		break;
	}
}
