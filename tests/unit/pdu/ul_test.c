/* ul_test.c: the upper layer state machine (PS3.8 9.2) driven through
 * its flows: associate, accept, data, release; rejection (called AE,
 * application context, protocol version); A-ABORT on an unexpected PDU
 * in each state; ARTIM; a PDU over the negotiated length; a requestor
 * talking to an acceptor (negotiation, role selection, user identity,
 * fragmentation to a small maximum length, a streamed data set, release
 * collision). Layer: tests. */
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/rd.h"
#include "dicomvault/ul.h"

#define VERIFICATION "1.2.840.10008.1.1"
#define CT_STORAGE   "1.2.840.10008.5.1.4.1.1.2"
#define MR_STORAGE   "1.2.840.10008.5.1.4.1.1.4"
#define IMPLICIT_LE  "1.2.840.10008.1.2"
#define EXPLICIT_LE  "1.2.840.10008.1.2.1"
#define JPEG_BASE    "1.2.840.10008.1.2.4.50"

static const char *const ts_pref[] = { EXPLICIT_LE, IMPLICIT_LE, NULL };
static const char *const ts_echo[] = { IMPLICIT_LE, NULL };
static const struct ul_syntax syns[] = {
	{ VERIFICATION, ts_echo, false },
	{ CT_STORAGE, ts_pref, true },
};

static bool storage_only_mr(void *ctx, const char *abstract)
{
	(void)ctx;
	return strcmp(abstract, MR_STORAGE) == 0;
}

static const struct ul_policy policy = { syns, 2, storage_only_mr, NULL, ts_pref, false, true, NULL, 0 };

static struct pdu_assoc *make_rq(const char *called, uint32_t max_len)
{
	struct pdu_assoc *a = malloc(sizeof *a);

	pdu_assoc_init(a, PDU_ASSOC_RQ);
	snprintf(a->called, sizeof a->called, "%s", called);
	snprintf(a->calling, sizeof a->calling, "STORESCU");
	snprintf(a->app_context, sizeof a->app_context, PDU_APP_CONTEXT);
	if (pdu_assoc_add_pc(a, 1, 0, VERIFICATION) != ERR_OK || pdu_assoc_add_ts(a, IMPLICIT_LE) != ERR_OK ||
	    pdu_assoc_add_pc(a, 3, 0, CT_STORAGE) != ERR_OK || pdu_assoc_add_ts(a, JPEG_BASE) != ERR_OK ||
	    pdu_assoc_add_ts(a, IMPLICIT_LE) != ERR_OK || pdu_assoc_add_ts(a, EXPLICIT_LE) != ERR_OK ||
	    pdu_assoc_add_pc(a, 5, 0, "1.2.3.4.5") != ERR_OK || pdu_assoc_add_ts(a, IMPLICIT_LE) != ERR_OK ||
	    pdu_assoc_add_pc(a, 7, 0, MR_STORAGE) != ERR_OK || pdu_assoc_add_ts(a, JPEG_BASE) != ERR_OK ||
	    pdu_assoc_add_pc(a, 9, 0, MR_STORAGE) != ERR_OK || pdu_assoc_add_ts(a, IMPLICIT_LE) != ERR_OK)
		abort();
	a->has_max_len = true;
	a->max_len = max_len;
	snprintf(a->impl_uid, sizeof a->impl_uid, "1.2.3");
	snprintf(a->role[0].uid, sizeof a->role[0].uid, CT_STORAGE);
	a->role[0].scu = 1;
	a->role[0].scp = 1;
	snprintf(a->role[1].uid, sizeof a->role[1].uid, MR_STORAGE);
	a->role[1].scu = 1;
	a->role[1].scp = 1;
	a->nroles = 2;
	a->has_async = true;
	a->async_invoked = 4;
	a->async_performed = 4;
	return a;
}

static void free_assoc(struct pdu_assoc *a)
{
	pdu_assoc_fini(a);
	free(a);
}

static void pdu_bytes(struct pdu_assoc *a, struct wbuf *w)
{
	wbuf_init(w, 1 << 20);
	if (pdu_assoc_build(a, w) != ERR_OK)
		abort();
}

/* Feeds all of p to u, records the events (kinds) and stops at the
 * first event unless all is set. */
struct evlog {
	enum ul_ev_kind k[64];
	struct ul_event last;
	unsigned n;
	struct wbuf data;     /* DATA fragments concatenated */
	struct wbuf cmd;      /* last command set */
	unsigned nfrag;
};

static void feed_all(struct ul *u, const uint8_t *p, size_t n, struct evlog *lg)
{
	size_t used;
	struct ul_event ev;
	enum err rc;

	for (;;) {
		rc = ul_feed(u, p, n, &used, &ev);
		p += used;
		n -= used;
		if (rc == ERR_AGAIN)
			break;
		if (rc != ERR_OK) {
			fprintf(stderr, "  ul_feed: %s\n", err_str(rc));
			t_failed_now = 1;
			break;
		}
		if (lg->n < 64)
			lg->k[lg->n++] = ev.kind;
		lg->last = ev;
		if (ev.kind == UL_EV_DATA) {
			wbuf_put(&lg->data, ev.p, ev.n);
			lg->nfrag++;
		}
		if (ev.kind == UL_EV_COMMAND) {
			wbuf_reset(&lg->cmd);
			wbuf_put(&lg->cmd, ev.p, ev.n);
		}
	}
	CHECK_EQ_INT(n, 0);
}

static void log_init(struct evlog *lg)
{
	memset(lg, 0, sizeof *lg);
	wbuf_init(&lg->data, 64u << 20);
	wbuf_init(&lg->cmd, 1 << 20);
}

static void log_fini(struct evlog *lg)
{
	wbuf_fini(&lg->data);
	wbuf_fini(&lg->cmd);
}

static const struct ul_config acfg = { "DICOMVAULT", 16384 };
static const struct ul_config rcfg = { "STORESCU", 0 };

/* An acceptor that has received the standard RQ (Sta3). */
static void acceptor_sta3(struct ul *u, uint32_t peer_max)
{
	struct pdu_assoc *rq = make_rq("DICOMVAULT", peer_max);
	struct wbuf w;
	struct evlog lg;

	CHECK_EQ_INT(ul_init_acceptor(u, &acfg), ERR_OK);
	CHECK_EQ_INT(u->state, UL_STA2);
	CHECK(ul_artim(u, NULL));
	pdu_bytes(rq, &w);
	log_init(&lg);
	feed_all(u, w.p, w.len, &lg);
	CHECK_EQ_INT(lg.n, 1);
	CHECK_EQ_INT(lg.k[0], UL_EV_ASSOC_RQ);
	CHECK_EQ_INT(u->state, UL_STA3);
	CHECK(!ul_artim(u, NULL));
	log_fini(&lg);
	wbuf_fini(&w);
	free_assoc(rq);
}

static void acceptor_sta6(struct ul *u, uint32_t peer_max)
{
	acceptor_sta3(u, peer_max);
	CHECK_EQ_INT(ul_accept(u, &policy), ERR_OK);
	CHECK_EQ_INT(u->state, UL_STA6);
	ul_tx_consumed(u, u->tx.len);
}

/* The PDU type of the only PDU in tx. */
static int tx_type(struct ul *u)
{
	return u->tx.len >= 6 ? u->tx.p[0] : -1;
}

TEST(accept_negotiation)
{
	struct ul u;
	struct pdu_assoc *ac = malloc(sizeof *ac);

	acceptor_sta3(&u, 0);
	CHECK_EQ_STR(u.rq->calling, "STORESCU");
	CHECK_EQ_INT(ul_accept(&u, &policy), ERR_OK);
	CHECK_EQ_INT(u.state, UL_STA6);
	CHECK_EQ_INT(tx_type(&u), PDU_ASSOC_AC);
	CHECK_EQ_INT(pdu_assoc_parse(PDU_ASSOC_AC, u.tx.p + 6, u.tx.len - 6, ac, NULL), ERR_OK);
	CHECK_EQ_INT(ac->npc, 5);
	/* Verification: implicit LE */
	CHECK(ac->pc[0].id == 1 && ac->pc[0].result == PDU_PC_ACCEPT);
	CHECK_EQ_STR(ac->ts[ac->pc[0].ts_first], IMPLICIT_LE);
	/* CT: our preference (explicit LE) over the proposer's order */
	CHECK(ac->pc[1].id == 3 && ac->pc[1].result == PDU_PC_ACCEPT);
	CHECK_EQ_STR(ac->ts[ac->pc[1].ts_first], EXPLICIT_LE);
	/* unknown abstract syntax */
	CHECK(ac->pc[2].id == 5 && ac->pc[2].result == PDU_PC_ABSTRACT_REJECT);
	/* MR through the callback: JPEG only is refused, implicit accepted */
	CHECK(ac->pc[3].id == 7 && ac->pc[3].result == PDU_PC_TS_REJECT);
	CHECK(ac->pc[4].id == 9 && ac->pc[4].result == PDU_PC_ACCEPT);
	/* roles: CT allows the requestor to be SCP, MR (default) does not */
	CHECK_EQ_INT(ac->nroles, 2);
	CHECK(strcmp(ac->role[0].uid, CT_STORAGE) == 0 && ac->role[0].scu == 1 && ac->role[0].scp == 1);
	CHECK(strcmp(ac->role[1].uid, MR_STORAGE) == 0 && ac->role[1].scu == 1 && ac->role[1].scp == 0);
	CHECK(ac->has_async && ac->async_invoked == 1 && ac->async_performed == 1);
	CHECK_EQ_INT(ac->max_len, 16384);
	CHECK_EQ_STR(ac->impl_uid, "2.25.101431291716583383212813563382328598260");
	CHECK_EQ_STR(ac->impl_version, "DICOMVAULT_010");
	CHECK(!ac->has_id_response);
	{
		const char *as, *ts;
		CHECK(ul_context(&u, 3, &as, &ts));
		CHECK_EQ_STR(as, CT_STORAGE);
		CHECK_EQ_STR(ts, EXPLICIT_LE);
		CHECK(!ul_context(&u, 5, NULL, NULL));
		CHECK(!ul_context(&u, 11, NULL, NULL));
	}
	/* the peer said 0 (unlimited): we send at most UL_SEND_MAX_CAP */
	CHECK_EQ_INT(u.frag_max, UL_SEND_MAX_CAP - 6);
	pdu_assoc_fini(ac);
	free(ac);
	ul_fini(&u);
}

TEST(data_and_release)
{
	struct ul u;
	struct evlog lg;
	struct wbuf w;
	struct ul_event ev;
	uint8_t big[3000];
	size_t i;

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	acceptor_sta6(&u, 0);
	wbuf_init(&w, 1 << 20);
	/* a command set in two fragments, then a data set in three PDVs of
	 * which two share one PDU */
	pdu_pdata_build(3, PDU_PDV_COMMAND, (const uint8_t *)"COMM", 4, &w);
	pdu_pdata_build(3, PDU_PDV_COMMAND | PDU_PDV_LAST, (const uint8_t *)"AND", 3, &w);
	pdu_pdata_build(3, 0, big, 1000, &w);
	{   /* one P-DATA-TF with two PDVs */
		size_t at = w.len;
		wbuf_putc(&w, 4); wbuf_putc(&w, 0); wbuf_put_u32be(&w, 0);
		wbuf_put_u32be(&w, 1002); wbuf_putc(&w, 3); wbuf_putc(&w, 0); wbuf_put(&w, big + 1000, 1000);
		wbuf_put_u32be(&w, 1002); wbuf_putc(&w, 3); wbuf_putc(&w, 2); wbuf_put(&w, big + 2000, 1000);
		store_u32be(w.p + at + 2, (uint32_t)(w.len - at - 6));
	}
	pdu_release_build(PDU_RELEASE_RQ, &w);
	log_init(&lg);
	/* byte by byte: the same events */
	for (i = 0; i < w.len; i++)
		feed_all(&u, w.p + i, 1, &lg);
	CHECK_EQ_INT(lg.n, 5);
	CHECK(lg.k[0] == UL_EV_COMMAND && lg.k[1] == UL_EV_DATA && lg.k[2] == UL_EV_DATA && lg.k[3] == UL_EV_DATA &&
	      lg.k[4] == UL_EV_RELEASE_RQ);
	CHECK(lg.cmd.len == 7 && memcmp(lg.cmd.p, "COMMAND", 7) == 0);
	CHECK(lg.data.len == 3000 && memcmp(lg.data.p, big, 3000) == 0);
	CHECK_EQ_INT(u.state, UL_STA8);
	CHECK_EQ_INT(ul_release_rp(&u), ERR_OK);
	CHECK_EQ_INT(tx_type(&u), PDU_RELEASE_RP);
	CHECK_EQ_INT(u.state, UL_STA13);
	CHECK(ul_artim(&u, NULL));
	ul_transport_closed(&u, &ev);   /* AR-5 */
	CHECK_EQ_INT(ev.kind, UL_EV_CLOSED);
	CHECK_EQ_INT(u.state, UL_STA1);
	CHECK(!ul_artim(&u, NULL));
	log_fini(&lg);
	wbuf_fini(&w);
	ul_fini(&u);
}

static void expect_rj(const char *called, uint16_t version, const char *ctx, uint8_t source, uint8_t reason)
{
	struct ul u;
	struct pdu_assoc *rq = make_rq(called, 0);
	struct wbuf w;
	struct evlog lg;
	struct pdu_rj rj;
	struct ul_event ev;

	rq->version = version;
	snprintf(rq->app_context, sizeof rq->app_context, "%s", ctx);
	pdu_bytes(rq, &w);
	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	log_init(&lg);
	feed_all(&u, w.p, w.len, &lg);
	CHECK_EQ_INT(lg.n, 1);
	CHECK_EQ_INT(lg.k[0], UL_EV_ASSOC_RJ);
	CHECK(lg.last.provider);
	CHECK_EQ_INT(u.state, UL_STA13);
	CHECK(ul_artim(&u, NULL));
	CHECK_EQ_INT(tx_type(&u), PDU_ASSOC_RJ);
	CHECK_EQ_INT(pdu_rj_parse(u.tx.p + 6, u.tx.len - 6, &rj), ERR_OK);
	CHECK(rj.result == PDU_RJ_PERMANENT && rj.source == source && rj.reason == reason);
	ul_artim_expired(&u, &ev);   /* the peer never closes: AA-2 */
	CHECK_EQ_INT(ev.kind, UL_EV_CLOSED);
	CHECK(u.close && u.state == UL_STA1);
	log_fini(&lg);
	wbuf_fini(&w);
	free_assoc(rq);
	ul_fini(&u);
}

TEST(reject_by_provider)
{
	expect_rj("OTHER", 1, PDU_APP_CONTEXT, PDU_RJ_SRC_USER, PDU_RJ_CALLED_AE);
	expect_rj("DICOMVAULT", 1, "1.2.3.4", PDU_RJ_SRC_USER, PDU_RJ_APP_CONTEXT);
	expect_rj("DICOMVAULT", 2, PDU_APP_CONTEXT, PDU_RJ_SRC_ACSE, PDU_RJ_PROTOCOL_VERSION);
}

/* 128 contexts of nts transfer syntaxes each, written by hand (our
 * builder stops at the caps). */
static void big_rq(unsigned nts, struct wbuf *w)
{
	unsigned i, k;
	size_t pc;

	wbuf_init(w, 1 << 20);
	wbuf_putc(w, 1); wbuf_putc(w, 0); wbuf_put_u32be(w, 0);
	wbuf_put_u16be(w, 1); wbuf_put_u16be(w, 0);
	wbuf_puts(w, "DICOMVAULT      STORESCU        ");
	for (i = 0; i < 32; i++)
		wbuf_putc(w, 0);
	wbuf_putc(w, 0x10); wbuf_putc(w, 0); wbuf_put_u16be(w, 21); wbuf_puts(w, PDU_APP_CONTEXT);
	for (i = 0; i < 128; i++) {
		wbuf_putc(w, 0x20); wbuf_putc(w, 0);
		pc = w->len;
		wbuf_put_u16be(w, 0);
		wbuf_putc(w, (char)(2 * i + 1)); wbuf_putc(w, 0); wbuf_putc(w, 0); wbuf_putc(w, 0);
		wbuf_putc(w, 0x30); wbuf_putc(w, 0); wbuf_put_u16be(w, 25); wbuf_puts(w, "1.2.840.10008.5.1.4.1.1.2");
		for (k = 0; k < nts; k++) {
			char ts[32];
			int n = k == 0 ? snprintf(ts, sizeof ts, "%s", EXPLICIT_LE)
			               : snprintf(ts, sizeof ts, "1.2.840.10008.1.2.4.%u", 50 + k);
			wbuf_putc(w, 0x40); wbuf_putc(w, 0); wbuf_put_u16be(w, (uint16_t)n); wbuf_puts(w, ts);
		}
		store_u16be(w->p + pc, (uint16_t)(w->len - pc - 2));
	}
	wbuf_putc(w, 0x50); wbuf_putc(w, 0); wbuf_put_u16be(w, 8);
	wbuf_putc(w, 0x51); wbuf_putc(w, 0); wbuf_put_u16be(w, 4); wbuf_put_u32be(w, 16384);
	store_u32be(w->p + 2, (uint32_t)(w->len - 6));
}

/* An A-ASSOCIATE-RQ of 128 contexts of nts transfer syntaxes each, fed
 * to a new acceptor: its events in lg. */
static void feed_big(struct ul *u, unsigned nts, struct evlog *lg)
{
	struct wbuf w;

	big_rq(nts, &w);
	CHECK_EQ_INT(ul_init_acceptor(u, &acfg), ERR_OK);
	log_init(lg);
	feed_all(u, w.p, w.len, lg);
	wbuf_fini(&w);
}

TEST(rq_over_caps_kept_in_part)
{
	struct ul u;
	struct evlog lg;
	struct pdu_assoc ac;
	unsigned i;

	/* 128 x 16 = PDU_MAX_TS_TOTAL: all indicated to the user */
	feed_big(&u, 16, &lg);
	CHECK(lg.n == 1 && lg.k[0] == UL_EV_ASSOC_RQ && u.rq->nts == PDU_MAX_TS_TOTAL && u.rq->npc == 128);
	log_fini(&lg);
	ul_fini(&u);
	/* 128 x 24 (an 84 KB request, DCMTK's -ppc 128 -pts 24): indicated,
	 * not refused; the syntaxes beyond the cap are left out, so the
	 * contexts past it are answered "transfer syntaxes not supported" */
	feed_big(&u, 24, &lg);
	CHECK(lg.n == 1 && lg.k[0] == UL_EV_ASSOC_RQ && u.state == UL_STA3);
	CHECK(u.rq->npc == 128 && u.rq->nts == PDU_MAX_TS_TOTAL);
	CHECK(u.rq->pc[0].nts == 24 && u.rq->pc[PDU_MAX_TS_TOTAL / 24].nts == PDU_MAX_TS_TOTAL % 24);
	CHECK(u.rq->pc[127].nts == 0);
	pdu_assoc_init(&ac, PDU_ASSOC_AC);
	CHECK_EQ_INT(ul_negotiate(u.rq, &policy, &ac), ERR_OK);
	CHECK_EQ_INT(ac.npc, 128);
	for (i = 0; i < 128; i++)
		CHECK_EQ_INT(ac.pc[i].result, i <= PDU_MAX_TS_TOTAL / 24 ? PDU_PC_ACCEPT : PDU_PC_TS_REJECT);
	pdu_assoc_fini(&ac);
	log_fini(&lg);
	ul_fini(&u);
}

TEST(reject_by_user)
{
	struct ul u;
	struct pdu_rj rj;

	acceptor_sta3(&u, 0);
	CHECK_EQ_INT(ul_reject(&u, PDU_RJ_PERMANENT, PDU_RJ_SRC_USER, PDU_RJ_CALLING_AE), ERR_OK);
	CHECK_EQ_INT(u.state, UL_STA13);
	CHECK_EQ_INT(pdu_rj_parse(u.tx.p + 6, u.tx.len - 6, &rj), ERR_OK);
	CHECK_EQ_INT(rj.reason, PDU_RJ_CALLING_AE);
	CHECK_EQ_INT(ul_accept(&u, &policy), ERR_INTERNAL);   /* not in Sta13 */
	ul_fini(&u);
}

/* A PDU that the state does not expect: A-ABORT (provider, unexpected
 * PDU; service user in Sta2) and Sta13, except in Sta13 (ignored). */
static void expect_abort(struct ul *u, const uint8_t *pdu, size_t n, uint8_t source, uint8_t reason)
{
	struct evlog lg;
	struct pdu_abort ab;

	ul_tx_consumed(u, u->tx.len);
	log_init(&lg);
	feed_all(u, pdu, n, &lg);
	CHECK_EQ_INT(lg.n, 1);
	CHECK_EQ_INT(lg.k[0], UL_EV_ABORT);
	CHECK(lg.last.provider);
	CHECK_EQ_INT(u->state, UL_STA13);
	CHECK(ul_artim(u, NULL));
	CHECK_EQ_INT(tx_type(u), PDU_ABORT);
	CHECK_EQ_INT(pdu_abort_parse(u->tx.p + 6, u->tx.len - 6, &ab), ERR_OK);
	CHECK_EQ_INT(ab.source, source);
	CHECK_EQ_INT(ab.reason, reason);
	log_fini(&lg);
}

TEST(abort_on_unexpected_pdu_each_state)
{
	static const uint8_t rel_rp[] = { 6, 0, 0, 0, 0, 4, 0, 0, 0, 0 };
	static const uint8_t rel_rq[] = { 5, 0, 0, 0, 0, 4, 0, 0, 0, 0 };
	static const uint8_t rj[] = { 3, 0, 0, 0, 0, 4, 0, 1, 1, 1 };
	static const uint8_t pdata[] = { 4, 0, 0, 0, 0, 7, 0, 0, 0, 3, 1, 3, 'x' };
	static const uint8_t bogus[] = { 9, 0, 0, 0, 0, 0 };
	struct ul u;
	struct evlog lg;
	struct ul_event ev;

	/* Sta2: AA-1 (service-user source) */
	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	expect_abort(&u, rel_rp, sizeof rel_rp, PDU_ABORT_SRC_USER, 0);
	ul_fini(&u);
	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	expect_abort(&u, pdata, sizeof pdata, PDU_ABORT_SRC_USER, 0);
	ul_fini(&u);
	/* Sta3: AA-8 */
	acceptor_sta3(&u, 0);
	expect_abort(&u, rel_rq, sizeof rel_rq, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNEXPECTED);
	ul_fini(&u);
	/* Sta6 */
	acceptor_sta6(&u, 0);
	expect_abort(&u, rj, sizeof rj, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNEXPECTED);
	/* Sta13 ignores what follows (AA-6), an A-ABORT closes (AA-2) */
	ul_tx_consumed(&u, u.tx.len);
	log_init(&lg);
	feed_all(&u, pdata, sizeof pdata, &lg);
	feed_all(&u, rel_rq, sizeof rel_rq, &lg);
	CHECK_EQ_INT(lg.n, 0);
	CHECK_EQ_INT(u.tx.len, 0);
	{   /* an A-ASSOCIATE-RQ in Sta13: one A-ABORT (AA-7), however many come */
		struct pdu_assoc *rq = make_rq("DICOMVAULT", 0);
		struct wbuf w;
		pdu_bytes(rq, &w);
		feed_all(&u, w.p, w.len, &lg);
		feed_all(&u, w.p, w.len, &lg);
		CHECK_EQ_INT(lg.n, 0);
		CHECK(u.tx.len == 10 && u.tx.p[0] == PDU_ABORT && u.state == UL_STA13);
		ul_tx_consumed(&u, u.tx.len);
		wbuf_fini(&w);
		free_assoc(rq);
	}
	feed_all(&u, (const uint8_t *)"\7\0\0\0\0\4\0\0\0\0", 10, &lg);
	CHECK_EQ_INT(lg.n, 1);
	CHECK_EQ_INT(lg.k[0], UL_EV_CLOSED);
	CHECK(u.close && u.state == UL_STA1);
	log_fini(&lg);
	ul_fini(&u);
	/* Sta6: an unknown PDU type: unrecognized PDU */
	acceptor_sta6(&u, 0);
	expect_abort(&u, bogus, sizeof bogus, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNRECOGNIZED);
	ul_fini(&u);
	/* Sta7 (we asked to release): an A-ASSOCIATE-RJ */
	acceptor_sta6(&u, 0);
	CHECK_EQ_INT(ul_release_rq(&u), ERR_OK);
	CHECK_EQ_INT(u.state, UL_STA7);
	expect_abort(&u, rj, sizeof rj, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNEXPECTED);
	ul_fini(&u);
	/* Sta8 (the peer asked to release): P-DATA from the peer */
	acceptor_sta6(&u, 0);
	log_init(&lg);
	feed_all(&u, rel_rq, sizeof rel_rq, &lg);
	CHECK_EQ_INT(u.state, UL_STA8);
	expect_abort(&u, pdata, sizeof pdata, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNEXPECTED);
	log_fini(&lg);
	ul_fini(&u);
	/* Sta6: a data fragment with no command before it, and a PDV on a
	 * context that was not accepted */
	acceptor_sta6(&u, 0);
	{
		static const uint8_t data_only[] = { 4, 0, 0, 0, 0, 7, 0, 0, 0, 3, 1, 2, 'x' };
		expect_abort(&u, data_only, sizeof data_only, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_UNEXP_PARAM);
	}
	ul_fini(&u);
	acceptor_sta6(&u, 0);
	{
		static const uint8_t on5[] = { 4, 0, 0, 0, 0, 7, 0, 0, 0, 3, 5, 3, 'x' };
		expect_abort(&u, on5, sizeof on5, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_INVALID_PARAM);
	}
	ul_fini(&u);
	/* the peer aborts in Sta6: AA-3 */
	acceptor_sta6(&u, 0);
	log_init(&lg);
	feed_all(&u, (const uint8_t *)"\7\0\0\0\0\4\0\0\2\1", 10, &lg);
	CHECK_EQ_INT(lg.k[0], UL_EV_ABORT);
	CHECK(!lg.last.provider && lg.last.abort.source == 2 && lg.last.abort.reason == 1);
	CHECK(u.close && u.state == UL_STA1);
	log_fini(&lg);
	ul_fini(&u);
	/* the transport drops in Sta6: AA-4, A-P-ABORT */
	acceptor_sta6(&u, 0);
	ul_transport_closed(&u, &ev);
	CHECK(ev.kind == UL_EV_ABORT && ev.provider && u.state == UL_STA1);
	ul_fini(&u);
}

TEST(artim_in_sta2)
{
	struct ul u;
	struct ul_event ev;
	struct evlog lg;
	unsigned s1, s2;

	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	CHECK(ul_artim(&u, &s1));
	log_init(&lg);
	feed_all(&u, (const uint8_t *)"\1\0\0\0", 4, &lg);   /* a stalled RQ */
	CHECK_EQ_INT(lg.n, 0);
	CHECK(ul_artim(&u, &s2) && s1 == s2);
	ul_artim_expired(&u, &ev);
	CHECK_EQ_INT(ev.kind, UL_EV_CLOSED);
	CHECK(u.close && u.state == UL_STA1 && u.tx.len == 0);
	/* input after that is dropped */
	feed_all(&u, (const uint8_t *)"\0\xb0", 2, &lg);
	CHECK_EQ_INT(lg.n, 0);
	log_fini(&lg);
	ul_fini(&u);
	/* ARTIM in Sta6 means nothing */
	acceptor_sta6(&u, 0);
	ul_artim_expired(&u, &ev);
	CHECK(ev.kind == UL_EV_NONE && u.state == UL_STA6);
	ul_fini(&u);
}

TEST(pdu_over_negotiated_length)
{
	struct ul u;
	uint8_t hdr[6] = { 4, 0, 0, 0, 0x40, 0x01 };   /* 16385 > 16384 */

	acceptor_sta6(&u, 0);
	expect_abort(&u, hdr, sizeof hdr, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_INVALID_PARAM);
	CHECK(u.fr.cap < 16384);   /* nothing was allocated for it */
	ul_fini(&u);
	/* before the association: an RQ over PDU_MAX_PREASSOC */
	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	hdr[0] = 1;
	store_u32be(hdr + 2, PDU_MAX_PREASSOC + 1);
	expect_abort(&u, hdr, sizeof hdr, PDU_ABORT_SRC_USER, 0);
	ul_fini(&u);
}

/* Moves what a sent to b, and records b's events. */
static void pump(struct ul *a, struct ul *b, struct evlog *lg)
{
	struct wbuf copy;

	wbuf_init(&copy, 64u << 20);
	wbuf_put(&copy, a->tx.p, a->tx.len);
	ul_tx_consumed(a, a->tx.len);
	feed_all(b, copy.p, copy.len, lg);
	wbuf_fini(&copy);
}

/* A requestor and an acceptor with a small maximum length each way: the
 * requestor advertises rq's (ul_request takes it from its ul_config). */
static void pair(struct ul *r, struct ul *a, struct pdu_assoc *rq)
{
	struct ul_config rc = { "STORESCU", rq->has_max_len ? rq->max_len : 0 };
	struct evlog la, lr;

	CHECK_EQ_INT(ul_init_requestor(r, &rc), ERR_OK);
	CHECK_EQ_INT(ul_init_acceptor(a, &acfg), ERR_OK);
	CHECK_EQ_INT(ul_request(r, rq), ERR_OK);
	CHECK_EQ_INT(r->state, UL_STA4);
	CHECK_EQ_INT(r->tx.len, 0);
	CHECK_EQ_INT(ul_connected(r), ERR_OK);
	CHECK_EQ_INT(r->state, UL_STA5);
	log_init(&la);
	log_init(&lr);
	pump(r, a, &la);
	CHECK(la.n == 1 && la.k[0] == UL_EV_ASSOC_RQ);
	CHECK_EQ_INT(ul_accept(a, &policy), ERR_OK);
	pump(a, r, &lr);
	CHECK(lr.n == 1 && lr.k[0] == UL_EV_ASSOC_AC);
	CHECK_EQ_INT(r->state, UL_STA6);
	log_fini(&la);
	log_fini(&lr);
}

TEST(requestor_acceptor_fragmentation)
{
	struct ul r, a;
	struct pdu_assoc *rq = make_rq("DICOMVAULT", 512);
	struct evlog la, lr;
	static uint8_t big[100000];
	uint8_t cmd[1200];
	size_t i, off;

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	memset(cmd, 'c', sizeof cmd);
	pair(&r, &a, rq);
	CHECK_EQ_INT(a.frag_max, 506);      /* to the requestor: 512 - 6 */
	CHECK_EQ_INT(r.frag_max, 16378);    /* to the acceptor: 16384 - 6 */
	/* a command set over several PDUs, then a data set given in odd
	 * pieces: PDUs never exceed the peer's maximum */
	CHECK_EQ_INT(ul_send_command(&a, 3, cmd, sizeof cmd), ERR_OK);
	for (off = 0; off < sizeof big; off += 7777) {
		size_t k = sizeof big - off < 7777 ? sizeof big - off : 7777;
		CHECK_EQ_INT(ul_send_data(&a, 3, big + off, k, off + k == sizeof big), ERR_OK);
	}
	for (off = 0; off < a.tx.len;) {
		uint32_t l = load_u32be(a.tx.p + off + 2);
		CHECK(l <= 512);
		off += 6 + l;
	}
	CHECK_EQ_INT(ul_send_data(&a, 5, big, 1, true), ERR_DENIED);
	log_init(&lr);
	pump(&a, &r, &lr);
	CHECK_EQ_INT(lr.k[0], UL_EV_COMMAND);
	CHECK(lr.cmd.len == sizeof cmd && memcmp(lr.cmd.p, cmd, sizeof cmd) == 0);
	CHECK(lr.data.len == sizeof big && memcmp(lr.data.p, big, sizeof big) == 0);
	CHECK_EQ_INT(lr.nfrag, (sizeof big + 505) / 506);
	CHECK(lr.last.kind == UL_EV_DATA && lr.last.last);
	/* release collision: both ask at once */
	CHECK_EQ_INT(ul_release_rq(&r), ERR_OK);
	CHECK_EQ_INT(ul_release_rq(&a), ERR_OK);
	log_init(&la);
	pump(&r, &a, &la);     /* acceptor in Sta7 gets RQ: AR-8, Sta10 */
	CHECK(la.n == 1 && la.k[0] == UL_EV_RELEASE_RQ && la.last.collision);
	CHECK_EQ_INT(a.state, UL_STA10);
	pump(&a, &r, &lr);     /* requestor in Sta7 gets RQ: Sta9 */
	CHECK(lr.last.kind == UL_EV_RELEASE_RQ && lr.last.collision);
	CHECK_EQ_INT(r.state, UL_STA9);
	CHECK_EQ_INT(ul_release_rp(&r), ERR_OK);   /* AR-9, Sta11 */
	CHECK_EQ_INT(r.state, UL_STA11);
	pump(&r, &a, &la);     /* acceptor Sta10 gets RP: AR-10, Sta12 */
	CHECK(la.last.kind == UL_EV_RELEASE_RP);
	CHECK_EQ_INT(a.state, UL_STA12);
	CHECK_EQ_INT(ul_release_rp(&a), ERR_OK);   /* AR-4, Sta13 */
	CHECK_EQ_INT(a.state, UL_STA13);
	pump(&a, &r, &lr);     /* requestor Sta11 gets RP: AR-3, closes */
	CHECK(lr.last.kind == UL_EV_RELEASE_RP);
	CHECK(r.state == UL_STA1 && r.close);
	log_fini(&la);
	log_fini(&lr);
	free_assoc(rq);
	ul_fini(&r);
	ul_fini(&a);
}

/* The A-ASSOCIATE-RQ advertises the maximum length the requestor
 * enforces (its ul_config), not what the caller's rq says: otherwise a
 * peer sending PDUs within the advertised length would be aborted. */
TEST(requestor_advertises_what_it_enforces)
{
	static const struct ul_config small = { "STORESCU", 4096 };
	struct pdu_assoc *rq = make_rq("DICOMVAULT", 65536);
	struct ul r, a;
	struct evlog la;

	CHECK_EQ_INT(ul_init_requestor(&r, &small), ERR_OK);
	CHECK_EQ_INT(ul_init_acceptor(&a, &acfg), ERR_OK);
	CHECK_EQ_INT(ul_request(&r, rq), ERR_OK);
	CHECK_EQ_INT(rq->max_len, 65536);   /* the caller's rq is left as it is */
	CHECK_EQ_INT(ul_connected(&r), ERR_OK);
	log_init(&la);
	pump(&r, &a, &la);
	CHECK(la.n == 1 && la.k[0] == UL_EV_ASSOC_RQ);
	CHECK_EQ_INT(ul_accept(&a, &policy), ERR_OK);
	CHECK_EQ_INT(a.frag_max, 4096 - 6);
	log_fini(&la);
	free_assoc(rq);
	ul_fini(&r);
	ul_fini(&a);
}

TEST(requestor_normal_release_and_rj)
{
	struct ul r, a;
	struct pdu_assoc *rq = make_rq("DICOMVAULT", 0);
	struct evlog la, lr;

	pair(&r, &a, rq);
	CHECK(ul_context(&r, 3, NULL, NULL));
	CHECK(!ul_context(&r, 7, NULL, NULL));
	CHECK_EQ_INT(ul_send_command(&r, 1, (const uint8_t *)"ECHO", 4), ERR_OK);
	log_init(&la);
	log_init(&lr);
	pump(&r, &a, &la);
	CHECK(la.n == 1 && la.k[0] == UL_EV_COMMAND && la.last.pcid == 1);
	CHECK_EQ_INT(ul_release_rq(&r), ERR_OK);
	pump(&r, &a, &la);
	CHECK_EQ_INT(la.last.kind, UL_EV_RELEASE_RQ);
	CHECK_EQ_INT(ul_release_rp(&a), ERR_OK);
	pump(&a, &r, &lr);
	CHECK_EQ_INT(lr.last.kind, UL_EV_RELEASE_RP);
	CHECK(r.state == UL_STA1 && r.close);
	ul_fini(&r);
	ul_fini(&a);
	/* rejected */
	CHECK_EQ_INT(ul_init_requestor(&r, &rcfg), ERR_OK);
	CHECK_EQ_INT(ul_init_acceptor(&a, &acfg), ERR_OK);
	CHECK_EQ_INT(ul_request(&r, rq), ERR_OK);
	CHECK_EQ_INT(ul_connected(&r), ERR_OK);
	pump(&r, &a, &la);
	CHECK_EQ_INT(ul_reject(&a, PDU_RJ_TRANSIENT, PDU_RJ_SRC_PRESENTATION, PDU_RJ_CONGESTION), ERR_OK);
	pump(&a, &r, &lr);
	CHECK_EQ_INT(lr.last.kind, UL_EV_ASSOC_RJ);
	CHECK(lr.last.rj.result == 2 && lr.last.rj.source == 3 && lr.last.rj.reason == 1);
	CHECK(r.state == UL_STA1 && r.close);
	log_fini(&la);
	log_fini(&lr);
	free_assoc(rq);
	ul_fini(&r);
	ul_fini(&a);
}

TEST(requestor_checks_ac)
{
	struct ul r;
	struct pdu_assoc *rq = make_rq("DICOMVAULT", 0), *ac = malloc(sizeof *ac);
	struct wbuf w;
	struct evlog lg;

	/* an AC that accepts a transfer syntax we did not propose */
	pdu_assoc_init(ac, PDU_ASSOC_AC);
	snprintf(ac->called, sizeof ac->called, "DICOMVAULT");
	snprintf(ac->calling, sizeof ac->calling, "STORESCU");
	snprintf(ac->app_context, sizeof ac->app_context, PDU_APP_CONTEXT);
	CHECK_EQ_INT(pdu_assoc_add_pc(ac, 1, PDU_PC_ACCEPT, NULL), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_add_ts(ac, EXPLICIT_LE), ERR_OK);
	pdu_bytes(ac, &w);
	CHECK_EQ_INT(ul_init_requestor(&r, &rcfg), ERR_OK);
	CHECK_EQ_INT(ul_request(&r, rq), ERR_OK);
	CHECK_EQ_INT(ul_connected(&r), ERR_OK);
	ul_tx_consumed(&r, r.tx.len);
	expect_abort(&r, w.p, w.len, PDU_ABORT_SRC_PROVIDER, PDU_ABORT_INVALID_PARAM);
	(void)lg;
	wbuf_fini(&w);
	free_assoc(ac);
	free_assoc(rq);
	ul_fini(&r);
}

TEST(user_identity_response)
{
	struct ul u;
	struct pdu_assoc *rq = make_rq("DICOMVAULT", 0), *ac = malloc(sizeof *ac);
	struct ul_policy pol = policy;
	struct wbuf w;
	struct evlog lg;

	rq->has_identity = true;
	rq->id_type = PDU_UID_USERNAME_PASS;
	rq->id_response_requested = true;
	CHECK_EQ_INT(secret_from_bytes("alice", 5, &rq->id_primary), ERR_OK);
	CHECK_EQ_INT(secret_from_bytes("pw", 2, &rq->id_secondary), ERR_OK);
	pdu_bytes(rq, &w);
	CHECK_EQ_INT(ul_init_acceptor(&u, &acfg), ERR_OK);
	log_init(&lg);
	feed_all(&u, w.p, w.len, &lg);
	CHECK(u.state == UL_STA3 && u.rq->has_identity && u.rq->id_type == 2);
	CHECK(secret_len(u.rq->id_primary) == 5 && memcmp(secret_view(u.rq->id_primary), "alice", 5) == 0);
	pol.identity_accepted = true;
	CHECK_EQ_INT(ul_accept(&u, &pol), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_parse(PDU_ASSOC_AC, u.tx.p + 6, u.tx.len - 6, ac, NULL), ERR_OK);
	CHECK(ac->has_id_response && ac->id_response == NULL);
	pdu_assoc_fini(ac);
	log_fini(&lg);
	wbuf_fini(&w);
	free_assoc(rq);
	free(ac);
	ul_fini(&u);
}

int main(void)
{
	if (crypto_init() != ERR_OK)
		return 1;
	RUN(accept_negotiation);
	RUN(data_and_release);
	RUN(reject_by_provider);
	RUN(rq_over_caps_kept_in_part);
	RUN(reject_by_user);
	RUN(abort_on_unexpected_pdu_each_state);
	RUN(artim_in_sta2);
	RUN(pdu_over_negotiated_length);
	RUN(requestor_acceptor_fragmentation);
	RUN(requestor_advertises_what_it_enforces);
	RUN(requestor_normal_release_and_rj);
	RUN(requestor_checks_ac);
	RUN(user_identity_response);
	return TEST_DONE();
}
