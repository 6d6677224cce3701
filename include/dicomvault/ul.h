/* ul.h: the DICOM upper layer state machine (PS3.8 section 9.2, states
 * Sta1-Sta13, events Evt1-Evt19, actions AE/DT/AR/AA) for both the
 * association acceptor and requestor, as a pure machine: bytes received
 * and local primitives go in; bytes to send (u->tx), indications
 * (struct ul_event), "close the transport" and "ARTIM running" come out.
 * No sockets, no clock: the caller owns both. Also: presentation context
 * negotiation from an acceptor policy, reassembly of P-DATA into whole
 * command sets (capped) and data set fragments (streamed, never held),
 * and fragmentation of outgoing messages to the peer's maximum PDU
 * length. See docs/internals/dimse.md. Layer: proto. */
#ifndef DICOMVAULT_UL_H
#define DICOMVAULT_UL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"
#include "dicomvault/limits.h"
#include "dicomvault/pdu.h"
#include "dicomvault/wbuf.h"

enum ul_state {
	UL_STA1 = 1,  /* idle */
	UL_STA2,      /* transport open, awaiting A-ASSOCIATE-RQ */
	UL_STA3,      /* awaiting local A-ASSOCIATE response */
	UL_STA4,      /* awaiting transport connection (requestor) */
	UL_STA5,      /* awaiting A-ASSOCIATE-AC or -RJ */
	UL_STA6,      /* association established */
	UL_STA7,      /* awaiting A-RELEASE-RP */
	UL_STA8,      /* awaiting local A-RELEASE response */
	UL_STA9,      /* release collision, requestor: awaiting local response */
	UL_STA10,     /* release collision, acceptor: awaiting A-RELEASE-RP */
	UL_STA11,     /* release collision, requestor: awaiting A-RELEASE-RP */
	UL_STA12,     /* release collision, acceptor: awaiting local response */
	UL_STA13      /* awaiting transport close */
};

enum ul_ev_kind {
	UL_EV_NONE = 0,
	UL_EV_ASSOC_RQ,    /* acceptor (Sta3): u->rq holds the request; answer ul_accept() or ul_reject() */
	UL_EV_ASSOC_AC,    /* requestor (Sta6): u->ac holds the answer */
	UL_EV_ASSOC_RJ,    /* requestor: rejected (rj), transport closed; acceptor (provider):
	                    * the RQ was refused by the provider (rj sent, Sta13) */
	UL_EV_COMMAND,     /* a whole command set on context pcid (p, n) */
	UL_EV_DATA,        /* a data set fragment on pcid (p, n; last) */
	UL_EV_RELEASE_RQ,  /* the peer asks to release: answer ul_release_rp(), except in
	                    * Sta10 (collision, acceptor): there only after UL_EV_RELEASE_RP */
	UL_EV_RELEASE_RP,  /* our release is confirmed; in Sta12 (collision) answer ul_release_rp() */
	UL_EV_ABORT,       /* A-ABORT from the peer, or A-P-ABORT (provider): association over */
	UL_EV_CLOSED       /* the machine is back in Sta1 with nothing else to say */
};

struct ul_event {
	enum ul_ev_kind kind;
	uint8_t pcid;
	const uint8_t *p;          /* borrowed: valid until the next call on the machine */
	size_t n;
	bool last;
	bool provider;             /* ABORT: A-P-ABORT (by the provider, us) */
	bool collision;            /* RELEASE_RQ/RP: during a release collision */
	struct pdu_rj rj;          /* ASSOC_RJ */
	struct pdu_abort abort;    /* ABORT: source and reason (as received or sent) */
	const char *why;           /* ABORT (provider): a static sentence for the log */
};

/* Acceptor policy: which abstract syntaxes, with which transfer syntaxes
 * (in our order of preference: the first one proposed wins). */
struct ul_syntax {
	const char *abstract;
	const char *const *ts;     /* NULL-terminated */
	bool requestor_scp;        /* the requestor may take the SCP role (C-GET storage) */
};

struct ul_policy {
	const struct ul_syntax *syn;
	size_t nsyn;
	/* Abstract syntaxes not in syn: accepted with default_ts when this
	 * says yes (e.g. every storage SOP class); may be NULL. */
	bool (*accept_abstract)(void *ctx, const char *abstract);
	void *ctx;
	const char *const *default_ts;       /* NULL-terminated */
	bool default_requestor_scp;
	/* User identity: answer a request for a positive response (the
	 * caller has verified the identity before accepting). */
	bool identity_accepted;
	const uint8_t *identity_response;    /* server response (JWT, ticket...); may be NULL */
	size_t identity_response_len;
};

struct ul_config {
	const char *ae;            /* our AE title; the called AE title must match (acceptor) */
	uint32_t recv_max;         /* maximum PDU length we advertise; 0: UL_RECV_MAX_DEFAULT */
};

struct ul {
	enum ul_state state;
	bool requestor;
	char ae[PDU_AE_MAX + 1];
	uint32_t recv_max;
	size_t frag_max;           /* bytes of one PDV fragment we send */
	struct pdu_framer fr;
	struct wbuf tx;            /* to send: drain with ul_tx_consumed() */
	struct wbuf rq_pdu;        /* requestor: the A-ASSOCIATE-RQ, sent once connected */
	bool close;                /* close the transport (after sending tx) */
	bool artim;                /* ARTIM should be running */
	unsigned artim_seq;        /* bumped at every (re)start */
	bool aa7_sent;
	struct pdu_assoc *rq, *ac; /* heap: the negotiation */
	/* receiving P-DATA */
	bool in_pdata;
	struct pdu_pdv_iter it;
	struct wbuf cmd;           /* command set being assembled */
	bool cmd_open;
	uint8_t cmd_pcid;
	uint8_t data_pcid;         /* context a data set may follow on (0: none) */
	bool data_open;
	/* sending data sets */
	uint8_t *stage;
	size_t stage_len;
	uint8_t stage_pcid;
	bool stage_open;
};

/* An acceptor whose transport connection has just been accepted (Evt5:
 * AE-5, Sta2, ARTIM started). ERR_NOMEM, ERR_PARSE (bad AE title). */
WUR enum err ul_init_acceptor(struct ul *u, const struct ul_config *cfg);
/* A requestor (Sta1); then ul_request(). */
WUR enum err ul_init_requestor(struct ul *u, const struct ul_config *cfg);
void ul_fini(struct ul *u);

/* Bytes received. Consumes up to n bytes until there is one event:
 * ERR_OK with *ev (and *used consumed; the caller calls again, with the
 * rest, also when nothing is left: one PDU may hold several PDVs);
 * ERR_AGAIN: all n consumed, nothing to report. Malformed or unexpected
 * input is not an error here: it is answered as PS3.8 says (A-ABORT, or
 * ignored in Sta13) and reported as an event. Errors: ERR_NOMEM,
 * ERR_LIMIT (tx not drained), ERR_INTERNAL: close the transport without
 * sending what tx holds (it may end in a partial PDU). After each call: send tx,
 * then close the transport if u->close; (re)start or stop ARTIM as
 * ul_artim() says. */
WUR enum err ul_feed(struct ul *u, const uint8_t *data, size_t n, size_t *used, struct ul_event *ev);
/* Evt17: the transport was closed by the peer (or failed). */
void ul_transport_closed(struct ul *u, struct ul_event *ev);
/* Evt18: the ARTIM timer expired. */
void ul_artim_expired(struct ul *u, struct ul_event *ev);
/* Whether ARTIM should run; *seq changes when it was (re)started. */
bool ul_artim(const struct ul *u, unsigned *seq);

/* ---- acceptor primitives (Sta3) ---- */
/* Negotiates u->rq with pol into u->ac and sends it (AE-7, Sta6). */
WUR enum err ul_accept(struct ul *u, const struct ul_policy *pol);
/* AE-8: sends the A-ASSOCIATE-RJ, Sta13, ARTIM started. */
WUR enum err ul_reject(struct ul *u, uint8_t result, uint8_t source, uint8_t reason);
/* The negotiation alone: the A-ASSOCIATE-AC for rq under pol (ac must
 * be pdu_assoc_init'ed; our AE, maximum length and implementation
 * identity are set by the caller or ul_accept). */
WUR enum err ul_negotiate(const struct pdu_assoc *rq, const struct ul_policy *pol, struct pdu_assoc *ac);

/* ---- requestor primitives ---- */
/* Evt1 (Sta1): AE-1, Sta4; the caller connects, then ul_connected().
 * rq is copied, except its identity secrets, which are used at once; its
 * Maximum Length is ours (ul_config's recv_max), whatever rq says. */
WUR enum err ul_request(struct ul *u, const struct pdu_assoc *rq);
/* Evt2 (Sta4): AE-2, the A-ASSOCIATE-RQ is sent, Sta5. */
WUR enum err ul_connected(struct ul *u);

/* ---- both ---- */
/* P-DATA (Sta6, Sta8): a whole command set, fragmented. ERR_DENIED:
 * pcid is not an accepted context; ERR_INTERNAL: wrong state or a data
 * set still open. */
WUR enum err ul_send_command(struct ul *u, uint8_t pcid, const uint8_t *p, size_t n);
/* P-DATA: the next n bytes of a data set (any size); last ends it. Sent
 * in fragments of the peer's maximum length (held back until full). */
WUR enum err ul_send_data(struct ul *u, uint8_t pcid, const uint8_t *p, size_t n, bool last);
/* Evt11 (Sta6): AR-1, Sta7. */
WUR enum err ul_release_rq(struct ul *u);
/* Evt14 (Sta8, Sta12: AR-4; Sta9: AR-9). */
WUR enum err ul_release_rp(struct ul *u);
/* Evt15: A-ABORT (service user), Sta13 (or Sta1 from Sta2/Sta4). */
void ul_abort(struct ul *u);

/* The accepted context pcid (NULL if none): its abstract syntax and
 * transfer syntax. */
bool ul_context(const struct ul *u, uint8_t pcid, const char **abstract, const char **ts);

/* Output bytes: tx.p, tx.len; the caller says how many it sent. */
void ul_tx_consumed(struct ul *u, size_t n);
const char *ul_state_name(enum ul_state s);

#endif
