/* pdu_test.c: the upper layer PDU framer and codec: golden bytes written
 * from the layouts of PS3.8 9.3 and PS3.7 D.3.3, round trips, truncation
 * at every offset, wrong lengths, limits, AE titles, UIDs, user identity,
 * P-DATA-TF PDVs. Layer: tests. */
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/pdu.h"
#include "dicomvault/rd.h"

/* A little byte writer for hand-made PDUs (independent of pdu.c). */
struct bb {
	uint8_t b[8192];
	size_t n;
};

static void b_u8(struct bb *b, unsigned v) { b->b[b->n++] = (uint8_t)v; }
static void b_u16(struct bb *b, unsigned v) { b_u8(b, v >> 8); b_u8(b, v & 0xff); }
static void b_u32(struct bb *b, uint32_t v) { b_u16(b, v >> 16); b_u16(b, v & 0xffff); }
static void b_str(struct bb *b, const char *s) { while (*s) b_u8(b, (uint8_t)*s++); }
static void b_pad(struct bb *b, const char *s, size_t n)
{
	size_t l = strlen(s), i;
	for (i = 0; i < n; i++)
		b_u8(b, i < l ? (uint8_t)s[i] : ' ');
}
static void b_item(struct bb *b, unsigned type, const char *s)
{
	b_u8(b, type);
	b_u8(b, 0);
	b_u16(b, (unsigned)strlen(s));
	b_str(b, s);
}

/* The A-ASSOCIATE-RQ of PS3.8 table 9-11 with one presentation context
 * (Verification, implicit VR LE) and user information (max length 16384,
 * implementation class UID 1.2.3.4, version TEST01). */
static void golden_rq(struct bb *b)
{
	unsigned i;

	b->n = 0;
	b_u8(b, 0x01); b_u8(b, 0); b_u32(b, 176);
	b_u16(b, 1); b_u16(b, 0);
	b_pad(b, "DICOMVAULT", 16);
	b_pad(b, "ECHOSCU", 16);
	for (i = 0; i < 32; i++)
		b_u8(b, 0);
	b_item(b, 0x10, "1.2.840.10008.3.1.1.1");
	b_u8(b, 0x20); b_u8(b, 0); b_u16(b, 46);
	b_u8(b, 1); b_u8(b, 0); b_u8(b, 0); b_u8(b, 0);
	b_item(b, 0x30, "1.2.840.10008.1.1");
	b_item(b, 0x40, "1.2.840.10008.1.2");
	b_u8(b, 0x50); b_u8(b, 0); b_u16(b, 29);
	b_u8(b, 0x51); b_u8(b, 0); b_u16(b, 4); b_u32(b, 16384);
	b_item(b, 0x52, "1.2.3.4");
	b_item(b, 0x55, "TEST01");
}

static void fill_rq(struct pdu_assoc *a)
{
	pdu_assoc_init(a, PDU_ASSOC_RQ);
	snprintf(a->called, sizeof a->called, "DICOMVAULT");
	snprintf(a->calling, sizeof a->calling, "ECHOSCU");
	snprintf(a->app_context, sizeof a->app_context, PDU_APP_CONTEXT);
	if (pdu_assoc_add_pc(a, 1, 0, "1.2.840.10008.1.1") != ERR_OK ||
	    pdu_assoc_add_ts(a, "1.2.840.10008.1.2") != ERR_OK)
		abort();
	a->max_len = 16384;
	a->has_max_len = true;
	snprintf(a->impl_uid, sizeof a->impl_uid, "1.2.3.4");
	snprintf(a->impl_version, sizeof a->impl_version, "TEST01");
}

static enum err parse_whole(const uint8_t *p, size_t n, struct pdu_assoc *a, uint8_t *reason)
{
	return pdu_assoc_parse(p[0], p + 6, n - 6, a, reason);
}

TEST(rq_golden_parse)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);

	golden_rq(&b);
	CHECK_EQ_INT(b.n, 182);
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_OK);
	CHECK_EQ_STR(a->called, "DICOMVAULT");
	CHECK_EQ_STR(a->calling, "ECHOSCU");
	CHECK_EQ_STR(a->app_context, PDU_APP_CONTEXT);
	CHECK_EQ_INT(a->npc, 1);
	CHECK_EQ_INT(a->pc[0].id, 1);
	CHECK_EQ_STR(a->pc[0].abstract, "1.2.840.10008.1.1");
	CHECK_EQ_INT(a->pc[0].nts, 1);
	CHECK_EQ_STR(a->ts[a->pc[0].ts_first], "1.2.840.10008.1.2");
	CHECK_EQ_INT(a->max_len, 16384);
	CHECK_EQ_STR(a->impl_uid, "1.2.3.4");
	CHECK_EQ_STR(a->impl_version, "TEST01");
	CHECK(!a->has_identity);
	pdu_assoc_fini(a);
	free(a);
}

TEST(rq_golden_build)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);
	struct wbuf w;

	golden_rq(&b);
	fill_rq(a);
	wbuf_init(&w, 1 << 20);
	CHECK_EQ_INT(pdu_assoc_build(a, &w), ERR_OK);
	CHECK_EQ_INT(w.len, b.n);
	CHECK(w.len == b.n && memcmp(w.p, b.b, b.n) == 0);
	wbuf_fini(&w);
	pdu_assoc_fini(a);
	free(a);
}

/* Every prefix of the body is malformed (never a crash), and every
 * prefix of the PDU is "again" for the framer. */
TEST(rq_truncated_every_offset)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);
	size_t i, used;

	golden_rq(&b);
	for (i = 0; i < b.n - 6; i++)
		CHECK_EQ_INT(pdu_assoc_parse(PDU_ASSOC_RQ, b.b + 6, i, a, NULL), ERR_PARSE);
	for (i = 0; i < b.n; i++) {
		struct pdu_framer f;
		struct pdu_view v;
		pdu_framer_init(&f, PDU_MAX_PREASSOC);
		CHECK_EQ_INT(pdu_framer_feed(&f, b.b, i, &used, &v), ERR_AGAIN);
		CHECK_EQ_INT(used, i);
		CHECK_EQ_INT(pdu_framer_feed(&f, b.b + i, b.n - i, &used, &v), ERR_OK);
		CHECK_EQ_INT(used, b.n - i);
		CHECK_EQ_INT(v.type, PDU_ASSOC_RQ);
		CHECK_EQ_INT(v.len, 176);
		pdu_framer_fini(&f);
	}
	free(a);
}

/* Changes the 16-bit length at off by delta and expects ERR_PARSE. */
static void bad_len(size_t off, int delta)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);
	uint16_t l;

	golden_rq(&b);
	l = load_u16be(b.b + off);
	store_u16be(b.b + off, (uint16_t)(l + delta));
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	free(a);
}

TEST(rq_wrong_lengths)
{
	/* offsets in golden_rq: app context item at 74, pc item at 99,
	 * abstract sub-item at 107, TS at 128, user info at 149, max len at 153 */
	bad_len(76, 1);     /* app context longer than what follows it */
	bad_len(76, -1);    /* shorter: the UID is cut, the rest is garbage */
	bad_len(101, 1);    /* presentation context past its parent */
	bad_len(109, 30);   /* abstract syntax past the presentation context */
	bad_len(130, -17);  /* empty transfer syntax */
	bad_len(151, 2);    /* user information past the PDU */
	bad_len(155, 1);    /* maximum length sub-item of 5 bytes */
}

TEST(rq_zero_length_mandatory)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);
	unsigned i;

	/* empty application context */
	b.n = 0;
	b_u8(&b, 1); b_u8(&b, 0); b_u32(&b, 68 + 4 + 4 + 12 + 4);
	b_u16(&b, 1); b_u16(&b, 0); b_pad(&b, "A", 16); b_pad(&b, "B", 16);
	for (i = 0; i < 32; i++)
		b_u8(&b, 0);
	b_item(&b, 0x10, "");
	b_u8(&b, 0x20); b_u8(&b, 0); b_u16(&b, 8); b_u8(&b, 1); b_u8(&b, 0); b_u8(&b, 0); b_u8(&b, 0);
	b_item(&b, 0x30, "");   /* and an empty abstract syntax, no TS */
	b_item(&b, 0x50, "");
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	/* no presentation context at all */
	b.n = 0;
	b_u8(&b, 1); b_u8(&b, 0); b_u32(&b, 68 + 25 + 4);
	b_u16(&b, 1); b_u16(&b, 0); b_pad(&b, "A", 16); b_pad(&b, "B", 16);
	for (i = 0; i < 32; i++)
		b_u8(&b, 0);
	b_item(&b, 0x10, PDU_APP_CONTEXT);
	b_item(&b, 0x50, "");
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	free(a);
}

TEST(ae_titles)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);

	golden_rq(&b);
	memcpy(b.b + 10, "   LEAD  SPACE  ", 16);
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_OK);
	CHECK_EQ_STR(a->called, "LEAD  SPACE");
	memcpy(b.b + 10, "                ", 16);   /* all spaces */
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	memcpy(b.b + 10, "BACK\\SLASH      ", 16);
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	memcpy(b.b + 10, "NUL\0            ", 16);
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_PARSE);
	memcpy(b.b + 10, "SIXTEEN_CHARS_AE", 16);
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, NULL), ERR_OK);
	CHECK_EQ_STR(a->called, "SIXTEEN_CHARS_AE");
	CHECK(pdu_ae_ok("DICOMVAULT"));
	CHECK(!pdu_ae_ok(""));
	CHECK(!pdu_ae_ok(" X"));
	CHECK(!pdu_ae_ok("SEVENTEEN_CHARS_A"));
	free(a);
}

TEST(uids)
{
	CHECK(pdu_uid_ok("1.2.840.10008.1.2", 17));
	CHECK(pdu_uid_ok("0", 1));
	CHECK(pdu_uid_ok("2.25.0.1", 8));
	CHECK(!pdu_uid_ok("", 0));
	CHECK(!pdu_uid_ok("1..2", 4));
	CHECK(!pdu_uid_ok("1.2.", 4));
	CHECK(!pdu_uid_ok(".1", 2));
	CHECK(!pdu_uid_ok("1.02", 4));
	CHECK(!pdu_uid_ok("1.2a", 4));
	CHECK(!pdu_uid_ok("1.2345678901234567890123456789012345678901234567890123456789012345", 66));
}

TEST(framer_limit_before_allocation)
{
	struct pdu_framer f;
	struct pdu_view v;
	uint8_t h[6] = { 0x04, 0 };
	size_t used;

	store_u32be(h + 2, PDU_MAX_PREASSOC + 1);   /* one byte over */

	pdu_framer_init(&f, PDU_MAX_PREASSOC);
	used = 99;
	CHECK_EQ_INT(pdu_framer_feed(&f, h, 6, &used, &v), ERR_LIMIT);
	CHECK_EQ_INT(used, 6);   /* set on errors too (found by pdu_fuzz) */
	CHECK(f.buf == NULL && f.cap == 0);
	CHECK_EQ_INT(pdu_framer_feed(&f, h, 6, &used, &v), ERR_LIMIT);   /* sticky */
	pdu_framer_fini(&f);
	h[0] = 0x08;   /* unknown type */
	h[4] = 0;
	pdu_framer_init(&f, PDU_MAX_PREASSOC);
	used = 99;
	CHECK_EQ_INT(pdu_framer_feed(&f, h, 6, &used, &v), ERR_PARSE);
	CHECK_EQ_INT(used, 6);
	pdu_framer_fini(&f);
	h[0] = 0x04;   /* exactly the limit is fine */
	store_u32be(h + 2, PDU_MAX_PREASSOC);
	pdu_framer_init(&f, PDU_MAX_PREASSOC);
	CHECK_EQ_INT(pdu_framer_feed(&f, h, 6, &used, &v), ERR_AGAIN);
	pdu_framer_fini(&f);
}

TEST(framer_byte_by_byte)
{
	uint8_t s[] = { 0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0,      /* A-RELEASE-RQ */
	                0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1,      /* A-ABORT */
	                0x04, 0, 0, 0, 0, 0 };                /* empty P-DATA-TF */
	struct pdu_framer f;
	struct pdu_view v;
	uint8_t types[4];
	size_t i, used, nt = 0;

	pdu_framer_init(&f, 100);
	for (i = 0; i < sizeof s; i++) {
		enum err rc = pdu_framer_feed(&f, s + i, 1, &used, &v);
		CHECK_EQ_INT(used, 1);
		if (rc == ERR_OK && nt < 4)
			types[nt++] = v.type;
		else
			CHECK_EQ_INT(rc, ERR_AGAIN);
	}
	CHECK_EQ_INT(nt, 3);
	CHECK(types[0] == PDU_RELEASE_RQ && types[1] == PDU_ABORT && types[2] == PDU_DATA_TF);
	CHECK_EQ_INT(v.len, 0);
	pdu_framer_fini(&f);
}

TEST(user_info_unknown_and_extended)
{
	struct bb b;
	struct pdu_assoc *a = malloc(sizeof *a);
	uint8_t reason = 0;
	size_t ui;

	golden_rq(&b);
	/* append to user information: unknown 0x5F, role selection, async,
	 * extended negotiation, common extended negotiation (and two role
	 * items that are dropped) */
	ui = 149;
	b_u8(&b, 0x5F); b_u8(&b, 0); b_u16(&b, 3); b_u8(&b, 1); b_u8(&b, 2); b_u8(&b, 3);
	b_u8(&b, 0x54); b_u8(&b, 0); b_u16(&b, 2 + 27 + 2); b_u16(&b, 27);
	b_str(&b, "1.2.840.10008.5.1.4.1.1.2.1"); b_u8(&b, 0); b_u8(&b, 1);
	/* the same SOP class again (DCMTK: one item per context with a role):
	 * dropped, the first kept; one whose SOP class is not a UID: dropped */
	b_u8(&b, 0x54); b_u8(&b, 0); b_u16(&b, 2 + 27 + 2); b_u16(&b, 27);
	b_str(&b, "1.2.840.10008.5.1.4.1.1.2.1"); b_u8(&b, 1); b_u8(&b, 0);
	b_u8(&b, 0x54); b_u8(&b, 0); b_u16(&b, 2 + 6 + 2); b_u16(&b, 6);
	b_str(&b, "1.02.3"); b_u8(&b, 1); b_u8(&b, 1);
	b_u8(&b, 0x53); b_u8(&b, 0); b_u16(&b, 4); b_u16(&b, 5); b_u16(&b, 0);
	b_u8(&b, 0x56); b_u8(&b, 0); b_u16(&b, 2 + 5 + 3); b_u16(&b, 5); b_str(&b, "1.2.3"); b_u8(&b, 1); b_u8(&b, 0); b_u8(&b, 1);
	b_u8(&b, 0x57); b_u8(&b, 0); b_u16(&b, 2 + 5 + 2 + 3 + 2); b_u16(&b, 5); b_str(&b, "1.2.3");
	b_u16(&b, 3); b_str(&b, "1.2"); b_u16(&b, 0);
	store_u16be(b.b + ui + 2, (uint16_t)(b.n - ui - 4));
	store_u32be(b.b + 2, (uint32_t)(b.n - 6));
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, &reason), ERR_OK);
	CHECK_EQ_INT(a->nunknown, 1);
	CHECK_EQ_INT(a->nroles, 1);
	CHECK_EQ_STR(a->role[0].uid, "1.2.840.10008.5.1.4.1.1.2.1");
	CHECK(a->role[0].scu == 0 && a->role[0].scp == 1);
	CHECK(a->has_async && a->async_invoked == 5 && a->async_performed == 0);
	CHECK_EQ_INT(a->next_neg, 2);
	pdu_assoc_fini(a);
	/* an unknown item at the top level is refused: unrecognized parameter */
	golden_rq(&b);
	b_item(&b, 0x60, "x");
	store_u32be(b.b + 2, (uint32_t)(b.n - 6));
	CHECK_EQ_INT(parse_whole(b.b, b.n, a, &reason), ERR_PARSE);
	CHECK_EQ_INT(reason, PDU_ABORT_UNREC_PARAM);
	free(a);
}

static enum err with_identity(uint8_t type, const char *p1, const char *p2, struct pdu_assoc *a)
{
	struct bb b;

	golden_rq(&b);
	b_u8(&b, 0x58); b_u8(&b, 0); b_u16(&b, (unsigned)(2 + 2 + strlen(p1) + 2 + strlen(p2)));
	b_u8(&b, type); b_u8(&b, 1);
	b_u16(&b, (unsigned)strlen(p1)); b_str(&b, p1);
	b_u16(&b, (unsigned)strlen(p2)); b_str(&b, p2);
	store_u16be(b.b + 151, (uint16_t)(b.n - 153));
	store_u32be(b.b + 2, (uint32_t)(b.n - 6));
	return parse_whole(b.b, b.n, a, NULL);
}

TEST(user_identity)
{
	struct pdu_assoc *a = malloc(sizeof *a), *c = malloc(sizeof *c);
	struct wbuf w;
	uint8_t reason;

	CHECK_EQ_INT(with_identity(PDU_UID_USERNAME_PASS, "alice", "s3cret", a), ERR_OK);
	CHECK(a->has_identity && a->id_type == 2 && a->id_response_requested);
	CHECK(a->id_primary && secret_len(a->id_primary) == 5 && memcmp(secret_view(a->id_primary), "alice", 5) == 0);
	CHECK(a->id_secondary && secret_len(a->id_secondary) == 6);
	/* round trip */
	wbuf_init(&w, 1 << 20);
	CHECK_EQ_INT(pdu_assoc_build(a, &w), ERR_OK);
	CHECK_EQ_INT(parse_whole(w.p, w.len, c, NULL), ERR_OK);
	CHECK(c->id_secondary && memcmp(secret_view(c->id_secondary), "s3cret", 6) == 0);
	pdu_assoc_fini(a);
	pdu_assoc_fini(c);
	wbuf_fini(&w);
	CHECK_EQ_INT(with_identity(PDU_UID_JWT, "eyJhbGciOi.eyJzdWIi.sig", "", a), ERR_OK);
	CHECK(a->id_type == PDU_UID_JWT && a->id_secondary == NULL);
	pdu_assoc_fini(a);
	CHECK_EQ_INT(with_identity(PDU_UID_USERNAME, "bob", "pw", a), ERR_PARSE);   /* passcode on type 1 */
	/* an empty passcode on type 2 (DCMTK's -epw) is well-formed: refused by the service, not aborted */
	CHECK_EQ_INT(with_identity(PDU_UID_USERNAME_PASS, "bob", "", a), ERR_OK);
	CHECK(a->has_identity && a->id_type == PDU_UID_USERNAME_PASS && a->id_secondary == NULL);
	pdu_assoc_fini(a);
	CHECK_EQ_INT(with_identity(PDU_UID_USERNAME, "", "", a), ERR_PARSE);          /* empty primary */
	CHECK_EQ_INT(with_identity(6, "bob", "", a), ERR_PARSE);                     /* unknown type */
	/* an identity response in an RQ is unexpected */
	{
		struct bb b;
		golden_rq(&b);
		b_u8(&b, 0x59); b_u8(&b, 0); b_u16(&b, 2); b_u16(&b, 0);
		store_u16be(b.b + 151, (uint16_t)(b.n - 153));
		store_u32be(b.b + 2, (uint32_t)(b.n - 6));
		CHECK_EQ_INT(parse_whole(b.b, b.n, a, &reason), ERR_PARSE);
		CHECK_EQ_INT(reason, PDU_ABORT_UNEXP_PARAM);
	}
	free(a);
	free(c);
}

TEST(ac_round_trip_and_rejected_context)
{
	struct pdu_assoc *a = malloc(sizeof *a), *c = malloc(sizeof *c);
	struct wbuf w;
	struct bb b;
	unsigned i;

	pdu_assoc_init(a, PDU_ASSOC_AC);
	snprintf(a->called, sizeof a->called, "DICOMVAULT");
	snprintf(a->calling, sizeof a->calling, "ECHOSCU");
	snprintf(a->app_context, sizeof a->app_context, PDU_APP_CONTEXT);
	CHECK_EQ_INT(pdu_assoc_add_pc(a, 1, PDU_PC_ACCEPT, NULL), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_add_ts(a, "1.2.840.10008.1.2.1"), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_add_pc(a, 3, PDU_PC_ABSTRACT_REJECT, NULL), ERR_OK);
	a->has_max_len = true;
	a->max_len = 65536;
	a->has_id_response = true;
	wbuf_init(&w, 1 << 20);
	CHECK_EQ_INT(pdu_assoc_build(a, &w), ERR_OK);
	CHECK_EQ_INT(parse_whole(w.p, w.len, c, NULL), ERR_OK);
	CHECK_EQ_INT(c->npc, 2);
	CHECK(c->pc[0].result == 0 && c->pc[0].nts == 1 && strcmp(c->ts[c->pc[0].ts_first], "1.2.840.10008.1.2.1") == 0);
	CHECK(c->pc[1].result == PDU_PC_ABSTRACT_REJECT && c->pc[1].nts == 0);
	CHECK(c->has_id_response && c->id_response == NULL);
	pdu_assoc_fini(c);
	wbuf_fini(&w);
	pdu_assoc_fini(a);
	/* a rejected context whose transfer syntax sub-item is empty (seen
	 * in the wild) parses; an accepted one does not */
	b.n = 0;
	b_u8(&b, 2); b_u8(&b, 0); b_u32(&b, 68 + 25 + 12 + 12);
	b_u16(&b, 1); b_u16(&b, 0); b_pad(&b, "A", 16); b_pad(&b, "B", 16);
	for (i = 0; i < 32; i++)
		b_u8(&b, 0);
	b_item(&b, 0x10, PDU_APP_CONTEXT);
	b_u8(&b, 0x21); b_u8(&b, 0); b_u16(&b, 8); b_u8(&b, 1); b_u8(&b, 0); b_u8(&b, 3); b_u8(&b, 0);
	b_item(&b, 0x40, "");
	b_u8(&b, 0x50); b_u8(&b, 0); b_u16(&b, 8);
	b_u8(&b, 0x51); b_u8(&b, 0); b_u16(&b, 4); b_u32(&b, 0);
	CHECK_EQ_INT(parse_whole(b.b, b.n, c, NULL), ERR_OK);
	pdu_assoc_fini(c);
	b.b[6 + 68 + 25 + 6] = 0;   /* result: acceptance */
	CHECK_EQ_INT(parse_whole(b.b, b.n, c, NULL), ERR_PARSE);
	free(a);
	free(c);
}

TEST(counts_capped)
{
	struct pdu_assoc *a = malloc(sizeof *a), *c = malloc(sizeof *c);
	struct wbuf w;
	unsigned i;
	uint8_t reason;

	fill_rq(a);
	for (i = 1; i < PDU_MAX_PCTX; i++) {
		CHECK_EQ_INT(pdu_assoc_add_pc(a, (uint8_t)(2 * i + 1), 0, "1.2.840.10008.1.1"), ERR_OK);
		CHECK_EQ_INT(pdu_assoc_add_ts(a, "1.2.840.10008.1.2"), ERR_OK);
	}
	CHECK_EQ_INT(pdu_assoc_add_pc(a, 1, 0, "1.2"), ERR_LIMIT);
	wbuf_init(&w, 1 << 20);
	CHECK_EQ_INT(pdu_assoc_build(a, &w), ERR_OK);
	CHECK_EQ_INT(parse_whole(w.p, w.len, c, NULL), ERR_OK);
	CHECK_EQ_INT(c->npc, PDU_MAX_PCTX);
	pdu_assoc_fini(c);
	/* too many transfer syntaxes in one context */
	fill_rq(a);
	for (i = 1; i < PDU_MAX_TS_PER_PCTX; i++)
		CHECK_EQ_INT(pdu_assoc_add_ts(a, "1.2.840.10008.1.2.1"), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_add_ts(a, "1.2.840.10008.1.2.1"), ERR_LIMIT);
	/* a duplicate context id is invalid */
	fill_rq(a);
	CHECK_EQ_INT(pdu_assoc_add_pc(a, 1, 0, "1.2.840.10008.1.1"), ERR_OK);
	CHECK_EQ_INT(pdu_assoc_add_ts(a, "1.2.840.10008.1.2"), ERR_OK);
	wbuf_reset(&w);
	CHECK_EQ_INT(pdu_assoc_build(a, &w), ERR_PARSE);
	/* an even context id */
	fill_rq(a);
	CHECK_EQ_INT(pdu_assoc_add_pc(a, 2, 0, "1.2.840.10008.1.1"), ERR_PARSE);
	{
		struct bb b;
		golden_rq(&b);
		b.b[6 + 68 + 25 + 4] = 2;
		CHECK_EQ_INT(parse_whole(b.b, b.n, c, &reason), ERR_PARSE);
		CHECK_EQ_INT(reason, PDU_ABORT_INVALID_PARAM);
	}
	wbuf_fini(&w);
	pdu_assoc_fini(a);
	free(a);
	free(c);
}

TEST(short_pdus)
{
	struct wbuf w;
	struct pdu_rj rj = { 1, 1, 7 }, rj2;
	struct pdu_abort ab;
	const uint8_t rj_g[] = { 3, 0, 0, 0, 0, 4, 0, 1, 1, 7 };
	const uint8_t ab_g[] = { 7, 0, 0, 0, 0, 4, 0, 0, 2, 6 };
	const uint8_t rl_g[] = { 5, 0, 0, 0, 0, 4, 0, 0, 0, 0 };

	wbuf_init(&w, 1024);
	pdu_rj_build(&rj, &w);
	CHECK(w.len == 10 && memcmp(w.p, rj_g, 10) == 0);
	CHECK_EQ_INT(pdu_rj_parse(w.p + 6, 4, &rj2), ERR_OK);
	CHECK(rj2.result == 1 && rj2.source == 1 && rj2.reason == 7);
	CHECK_EQ_INT(pdu_rj_parse(w.p + 6, 3, &rj2), ERR_PARSE);
	CHECK_EQ_INT(pdu_rj_parse((const uint8_t *)"\0\3\1\1", 4, &rj2), ERR_PARSE);   /* result 3 */
	wbuf_reset(&w);
	pdu_abort_build(2, 6, &w);
	CHECK(w.len == 10 && memcmp(w.p, ab_g, 10) == 0);
	CHECK_EQ_INT(pdu_abort_parse(w.p + 6, 4, &ab), ERR_OK);
	CHECK(ab.source == 2 && ab.reason == 6);
	CHECK_EQ_INT(pdu_abort_parse((const uint8_t *)"\x55\x55\0\x09", 4, &ab), ERR_OK);   /* reserved bytes not tested */
	CHECK(ab.source == 0 && ab.reason == 0);
	CHECK_EQ_INT(pdu_abort_parse((const uint8_t *)"\0\0\3\0", 4, &ab), ERR_PARSE);
	wbuf_reset(&w);
	pdu_release_build(PDU_RELEASE_RQ, &w);
	CHECK(w.len == 10 && memcmp(w.p, rl_g, 10) == 0);
	CHECK_EQ_INT(pdu_release_parse(w.p + 6, 4), ERR_OK);
	CHECK_EQ_INT(pdu_release_parse(w.p + 6, 5), ERR_PARSE);
	wbuf_fini(&w);
}

TEST(pdvs)
{
	struct bb b;
	struct pdu_pdv_iter it;
	struct pdu_pdv d;
	struct wbuf w;
	size_t i;

	/* two PDVs in one P-DATA-TF: a last command fragment and a data
	 * fragment; reserved bits of the control header are not tested */
	b.n = 0;
	b_u32(&b, 2 + 3); b_u8(&b, 1); b_u8(&b, 0x03); b_str(&b, "abc");
	b_u32(&b, 2 + 0); b_u8(&b, 1); b_u8(&b, 0xF0);
	pdu_pdv_iter_init(&it, b.b, b.n);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_OK);
	CHECK(d.pcid == 1 && d.mch == 3 && d.n == 3 && memcmp(d.p, "abc", 3) == 0);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_OK);
	CHECK(d.mch == 0 && d.n == 0);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_NOTFOUND);
	/* every truncation: ERR_PARSE at some point, never past the end */
	for (i = 0; i < b.n; i++) {
		enum err rc;
		pdu_pdv_iter_init(&it, b.b, i);
		while ((rc = pdu_pdv_next(&it, &d)) == ERR_OK)
			CHECK(d.p + d.n <= b.b + i);
		CHECK(i == 9 ? rc == ERR_NOTFOUND : rc == ERR_PARSE);
	}
	/* item length 1, even context id, empty PDU */
	b.n = 0; b_u32(&b, 1); b_u8(&b, 1);
	pdu_pdv_iter_init(&it, b.b, b.n);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_PARSE);
	b.n = 0; b_u32(&b, 2); b_u8(&b, 2); b_u8(&b, 0);
	pdu_pdv_iter_init(&it, b.b, b.n);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_PARSE);
	pdu_pdv_iter_init(&it, b.b, 0);
	CHECK_EQ_INT(pdu_pdv_next(&it, &d), ERR_PARSE);
	/* the builder */
	wbuf_init(&w, 1024);
	pdu_pdata_build(5, 2, (const uint8_t *)"xy", 2, &w);
	{
		const uint8_t g[] = { 4, 0, 0, 0, 0, 8, 0, 0, 0, 4, 5, 2, 'x', 'y' };
		CHECK(w.len == sizeof g && memcmp(w.p, g, sizeof g) == 0);
	}
	wbuf_fini(&w);
}

int main(void)
{
	if (crypto_init() != ERR_OK)
		return 1;
	RUN(rq_golden_parse);
	RUN(rq_golden_build);
	RUN(rq_truncated_every_offset);
	RUN(rq_wrong_lengths);
	RUN(rq_zero_length_mandatory);
	RUN(ae_titles);
	RUN(uids);
	RUN(framer_limit_before_allocation);
	RUN(framer_byte_by_byte);
	RUN(user_info_unknown_and_extended);
	RUN(user_identity);
	RUN(ac_round_trip_and_rejected_context);
	RUN(counts_capped);
	RUN(short_pdus);
	RUN(pdvs);
	return TEST_DONE();
}
