/* dimse_test.c: DIMSE command sets: golden C-ECHO-RQ bytes written from
 * PS3.7 annex E, round trips of every C- command, truncation at every
 * offset, group length, order, duplicates, other groups, padding, the
 * required-element checks. Layer: tests. */
#include "test.h"
#include "dicomvault/dimse.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/rd.h"

struct bb {
	uint8_t b[4096];
	size_t n;
};

static void b_elem(struct bb *b, uint16_t el, const void *v, size_t n)
{
	store_u16le(b->b + b->n, 0);
	store_u16le(b->b + b->n + 2, el);
	store_u32le(b->b + b->n + 4, (uint32_t)n);
	memcpy(b->b + b->n + 8, v, n);
	b->n += 8 + n;
}

static void b_us(struct bb *b, uint16_t el, uint16_t v)
{
	uint8_t u[2];
	store_u16le(u, v);
	b_elem(b, el, u, 2);
}

/* Group length first, patched at the end. */
static void b_start(struct bb *b)
{
	uint8_t z[4] = { 0 };
	b->n = 0;
	b_elem(b, 0x0000, z, 4);
}

static void b_end(struct bb *b)
{
	store_u32le(b->b + 8, (uint32_t)(b->n - 12));
}

static void golden_echo(struct bb *b)
{
	b_start(b);
	b_elem(b, 0x0002, "1.2.840.10008.1.1\0", 18);
	b_us(b, 0x0100, 0x0030);
	b_us(b, 0x0110, 1);
	b_us(b, 0x0800, 0x0101);
	b_end(b);
}

TEST(echo_golden)
{
	struct bb b;
	struct dimse_cmd c, d;
	struct wbuf w;

	golden_echo(&b);
	CHECK_EQ_INT(b.n, 68);
	CHECK_EQ_INT(load_u32le(b.b + 8), 56);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
	CHECK_EQ_INT(c.field, DIMSE_C_ECHO_RQ);
	CHECK_EQ_INT(c.msg_id, 1);
	CHECK_EQ_STR(c.sop_class, "1.2.840.10008.1.1");
	CHECK(!dimse_has_data_set(&c));
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_OK);
	dimse_cmd_rq(&d, DIMSE_C_ECHO_RQ, 1, "1.2.840.10008.1.1");
	wbuf_init(&w, 1 << 16);
	CHECK_EQ_INT(dimse_cmd_build(&d, &w), ERR_OK);
	CHECK(w.len == b.n && memcmp(w.p, b.b, b.n) == 0);
	wbuf_fini(&w);
}

TEST(truncated_every_offset)
{
	struct bb b;
	struct dimse_cmd c;
	size_t i;

	golden_echo(&b);
	for (i = 0; i < b.n; i++)
		CHECK_EQ_INT(dimse_cmd_parse(b.b, i, &c), ERR_PARSE);
}

static void round_trip(const struct dimse_cmd *c)
{
	struct wbuf w;
	struct dimse_cmd d;

	wbuf_init(&w, 1 << 16);
	CHECK_EQ_INT(dimse_cmd_build(c, &w), ERR_OK);
	CHECK_EQ_INT(load_u32le(w.p + 8), w.len - 12);
	CHECK_EQ_INT(w.len % 2, 0);
	CHECK_EQ_INT(dimse_cmd_parse(w.p, w.len, &d), ERR_OK);
	CHECK_EQ_INT(d.has, c->has | DIMSE_F_FIELD);
	CHECK_EQ_INT(d.field, c->field);
	CHECK_EQ_INT(d.msg_id, c->msg_id);
	CHECK_EQ_INT(d.msg_id_rsp, c->msg_id_rsp);
	CHECK_EQ_INT(d.status, c->status);
	CHECK_EQ_INT(d.remaining, c->remaining);
	CHECK_EQ_INT(d.completed, c->completed);
	CHECK_EQ_INT(d.failed, c->failed);
	CHECK_EQ_INT(d.warning, c->warning);
	CHECK_EQ_INT(d.move_orig_id, c->move_orig_id);
	CHECK_EQ_STR(d.sop_class, c->sop_class);
	CHECK_EQ_STR(d.sop_instance, c->sop_instance);
	CHECK_EQ_STR(d.move_dest, c->move_dest);
	CHECK_EQ_STR(d.move_orig_ae, c->move_orig_ae);
	CHECK_EQ_STR(d.error_comment, c->error_comment);
	CHECK_EQ_INT(d.noffending, c->noffending);
	CHECK_EQ_INT(dimse_cmd_check(&d, NULL), ERR_OK);
	wbuf_fini(&w);
}

TEST(round_trips)
{
	struct dimse_cmd rq, rsp;
	static const uint16_t fields[] = { DIMSE_C_ECHO_RQ, DIMSE_C_STORE_RQ, DIMSE_C_FIND_RQ, DIMSE_C_GET_RQ,
	                                   DIMSE_C_MOVE_RQ };
	size_t i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		dimse_cmd_rq(&rq, fields[i], (uint16_t)(100 + i), "1.2.840.10008.5.1.4.1.2.2.1");
		if (fields[i] == DIMSE_C_STORE_RQ) {
			snprintf(rq.sop_instance, sizeof rq.sop_instance, "1.2.3.4.5.6.7");   /* odd: NUL padded */
			rq.has |= DIMSE_F_SOP_INSTANCE;
			rq.move_orig_id = 7;
			snprintf(rq.move_orig_ae, sizeof rq.move_orig_ae, "MOVER");
			rq.has |= DIMSE_F_MOVE_ORIG_AE | DIMSE_F_MOVE_ORIG_ID;
		}
		if (fields[i] == DIMSE_C_MOVE_RQ) {
			snprintf(rq.move_dest, sizeof rq.move_dest, "DEST");
			rq.has |= DIMSE_F_MOVE_DEST;
		}
		round_trip(&rq);
		dimse_cmd_rsp(&rsp, &rq, fields[i] == DIMSE_C_ECHO_RQ ? DIMSE_SUCCESS : DIMSE_PENDING);
		CHECK_EQ_INT(rsp.field, fields[i] | 0x8000);
		CHECK_EQ_INT(rsp.msg_id_rsp, 100 + i);
		if (fields[i] == DIMSE_C_GET_RQ || fields[i] == DIMSE_C_MOVE_RQ) {
			rsp.remaining = 3;
			rsp.completed = 2;
			rsp.failed = 1;
			rsp.warning = 0;
			rsp.has |= DIMSE_F_REMAINING | DIMSE_F_COMPLETED | DIMSE_F_FAILED | DIMSE_F_WARNING;
		}
		if (fields[i] == DIMSE_C_STORE_RQ) {
			CHECK_EQ_STR(rsp.sop_instance, "1.2.3.4.5.6.7");
			rsp.status = DIMSE_ERR_DATASET;
			snprintf(rsp.error_comment, sizeof rsp.error_comment, "bad data set");   /* even */
			rsp.offending[0] = 0x00100010;
			rsp.offending[1] = 0x7FE00010;
			rsp.noffending = 2;
			rsp.has |= DIMSE_F_ERROR_COMMENT | DIMSE_F_OFFENDING;
		}
		round_trip(&rsp);
	}
	dimse_cmd_rq(&rq, DIMSE_C_CANCEL_RQ, 42, NULL);
	CHECK_EQ_INT(rq.msg_id_rsp, 42);
	round_trip(&rq);
}

TEST(strict_structure)
{
	struct bb b;
	struct dimse_cmd c;

	/* no group length: tolerated (as DCMTK does), the same command */
	{
		struct dimse_cmd d;
		golden_echo(&b);
		CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &d), ERR_OK);
		CHECK_EQ_INT(dimse_cmd_parse(b.b + 12, b.n - 12, &c), ERR_OK);
		CHECK(c.field == d.field && c.msg_id == d.msg_id && strcmp(c.sop_class, d.sop_class) == 0 &&
		      c.data_set_type == d.data_set_type);
	}
	/* group length one too many, one too few */
	golden_echo(&b);
	store_u32le(b.b + 8, 57);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	store_u32le(b.b + 8, 55);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* duplicate element */
	golden_echo(&b);
	b.n -= 10;
	b_us(&b, 0x0110, 2);
	b_us(&b, 0x0800, 0x0101);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* out of order */
	b_start(&b);
	b_us(&b, 0x0110, 1);
	b_us(&b, 0x0100, 0x0030);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* an element of another group */
	golden_echo(&b);
	store_u16le(b.b + b.n, 0x0008);
	store_u16le(b.b + b.n + 2, 0x0016);
	store_u32le(b.b + b.n + 4, 0);
	b.n += 8;
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* no CommandField */
	b_start(&b);
	b_us(&b, 0x0110, 1);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* a US of 4 bytes, an undefined length */
	b_start(&b);
	b_elem(&b, 0x0100, "\x30\0\0\0", 4);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	b_start(&b);
	b_us(&b, 0x0100, 0x0030);
	b_elem(&b, 0x0110, "", 0);
	store_u32le(b.b + b.n - 4, 0xFFFFFFFFu);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* bad UID, bad AE */
	b_start(&b);
	b_elem(&b, 0x0002, "1.2.x.4\0", 8);
	b_us(&b, 0x0100, 0x0030);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	b_start(&b);
	b_us(&b, 0x0100, 0x0021);
	b_elem(&b, 0x0600, "BAD\\AE ", 8);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	b_start(&b);
	b_us(&b, 0x0100, 0x0021);
	b_elem(&b, 0x0600, "SEVENTEEN_CHARS_X", 17);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_PARSE);
	/* too long */
	CHECK_EQ_INT(dimse_cmd_parse(b.b, DIMSE_MAX_COMMAND + 1, &c), ERR_LIMIT);
}

TEST(lenient_where_documented)
{
	struct bb b;
	struct dimse_cmd c;

	/* unknown and retired group 0000 elements are skipped; AE padding
	 * trimmed; ErrorComment trailing spaces dropped */
	b_start(&b);
	b_elem(&b, 0x0001, "\0\0\0\0", 4);       /* retired Length to End */
	b_us(&b, 0x0100, 0x8021);
	b_us(&b, 0x0120, 9);
	b_elem(&b, 0x0600, " DEST ", 6);
	b_us(&b, 0x0800, 0x0101);
	b_us(&b, 0x0900, 0xA801);
	b_elem(&b, 0x0902, "unknown AE  ", 12);
	b_elem(&b, 0x4000, "xx", 2);             /* retired */
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
	CHECK_EQ_INT(c.nunknown, 2);
	CHECK_EQ_STR(c.move_dest, "DEST");
	CHECK_EQ_STR(c.error_comment, "unknown AE");
	CHECK_EQ_INT(c.status, 0xA801);
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_OK);

	/* a UID padded with a space; an empty Move Originator AE (as some
	 * SCUs send in a C-STORE-RQ that is not a sub-operation) is absent */
	b_start(&b);
	b_elem(&b, 0x0002, "1.2.840.10008.1.1 ", 18);
	b_us(&b, 0x0100, 0x0030);
	b_us(&b, 0x0110, 7);
	b_us(&b, 0x0800, 0x0101);
	b_elem(&b, 0x1030, "", 0);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
	CHECK_EQ_STR(c.sop_class, "1.2.840.10008.1.1");
	CHECK(!(c.has & DIMSE_F_MOVE_ORIG_AE));
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_OK);

	/* an empty required value parses as absent, and the check names it:
	 * an empty Priority; a Move Destination of spaces only */
	{
		const char *why = NULL;
		b_start(&b);
		b_elem(&b, 0x0002, "1.2.840.10008.5.1.4.1.2.2.2", 28);
		b_us(&b, 0x0100, 0x0021);
		b_us(&b, 0x0110, 8);
		b_elem(&b, 0x0600, "                ", 16);
		b_elem(&b, 0x0700, "", 0);
		b_us(&b, 0x0800, 0x0000);
		b_end(&b);
		CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
		CHECK(!(c.has & (DIMSE_F_MOVE_DEST | DIMSE_F_PRIORITY)));
		CHECK_EQ_INT(dimse_cmd_check(&c, &why), ERR_PARSE);
		CHECK(why != NULL);
	}
	/* an ErrorComment of spaces only is empty, so absent: written back
	 * it would be a zero-length element, read as absent (fuzz found it) */
	b_start(&b);
	b_us(&b, 0x0100, 0x8021);
	b_us(&b, 0x0120, 9);
	b_us(&b, 0x0800, 0x0101);
	b_us(&b, 0x0900, 0xA801);
	b_elem(&b, 0x0902, "        ", 8);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
	CHECK(!(c.has & DIMSE_F_ERROR_COMMENT));
	/* an empty UID is absent too */
	b_start(&b);
	b_elem(&b, 0x0002, "", 0);
	b_us(&b, 0x0100, 0x0030);
	b_end(&b);
	CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
	CHECK(!(c.has & DIMSE_F_SOP_CLASS));
	/* a legacy SOP Instance UID with a leading-zero component (DCMTK
	 * sends it; the store takes it): parsed, and built back the same */
	{
		struct wbuf w;
		struct dimse_cmd back;
		b_start(&b);
		b_elem(&b, 0x0002, "1.2.840.10008.5.1.4.1.1.7\0", 26);
		b_us(&b, 0x0100, 0x0001);
		b_us(&b, 0x0110, 3);
		b_us(&b, 0x0700, 0);
		b_us(&b, 0x0800, 0x0000);
		b_elem(&b, 0x1000, "1.2.3.777.05.12\0", 16);
		b_end(&b);
		CHECK_EQ_INT(dimse_cmd_parse(b.b, b.n, &c), ERR_OK);
		CHECK_EQ_STR(c.sop_instance, "1.2.3.777.05.12");
		CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_OK);
		wbuf_init(&w, 1 << 16);
		CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_OK);
		CHECK_EQ_INT(dimse_cmd_parse(w.p, w.len, &back), ERR_OK);
		CHECK_EQ_STR(back.sop_instance, "1.2.3.777.05.12");
		wbuf_fini(&w);
	}
}

TEST(required_elements)
{
	struct dimse_cmd c;
	const char *why = NULL;

	dimse_cmd_rq(&c, DIMSE_C_STORE_RQ, 1, "1.2.840.10008.5.1.4.1.1.2");
	CHECK_EQ_INT(dimse_cmd_check(&c, &why), ERR_PARSE);   /* no instance UID */
	CHECK(why != NULL);
	snprintf(c.sop_instance, sizeof c.sop_instance, "1.2.3");
	c.has |= DIMSE_F_SOP_INSTANCE;
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_OK);
	c.data_set_type = DIMSE_NO_DATA_SET;
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_PARSE);   /* a store without data */
	dimse_cmd_rq(&c, DIMSE_C_ECHO_RQ, 1, "1.2.840.10008.1.1");
	c.data_set_type = 0x0102;
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_PARSE);   /* an echo with data */
	dimse_cmd_rq(&c, DIMSE_C_MOVE_RQ, 1, "1.2.840.10008.5.1.4.1.2.2.2");
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_PARSE);   /* no destination */
	dimse_cmd_rq(&c, DIMSE_C_FIND_RQ, 1, "1.2.840.10008.5.1.4.1.2.2.1");
	c.priority = 3;
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_PARSE);
	dimse_cmd_rq(&c, 0x0100, 1, "1.2.3");                   /* N-EVENT-REPORT-RQ */
	CHECK_EQ_INT(dimse_cmd_check(&c, NULL), ERR_UNSUPPORTED);
}

TEST(build_refuses_bad_values)
{
	struct dimse_cmd c;
	struct wbuf w;

	wbuf_init(&w, 1 << 16);
	dimse_cmd_rq(&c, DIMSE_C_ECHO_RQ, 1, "1.2.840.10008.1.1");
	snprintf(c.sop_class, sizeof c.sop_class, "1..2");
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);
	dimse_cmd_rq(&c, DIMSE_C_MOVE_RQ, 1, "1.2.3");
	snprintf(c.move_dest, sizeof c.move_dest, " LEADING");
	c.has |= DIMSE_F_MOVE_DEST;
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);
	/* lenient on leading zeros only: still digits and dots, no empty
	 * component, not over 64 */
	dimse_cmd_rq(&c, DIMSE_C_STORE_RQ, 1, "1.2.3");
	c.has |= DIMSE_F_SOP_INSTANCE;
	snprintf(c.sop_instance, sizeof c.sop_instance, "1.2.3a");
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);
	snprintf(c.sop_instance, sizeof c.sop_instance, "1.2.3.");
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);
	memset(c.sop_instance, '1', sizeof c.sop_instance);   /* 65, unterminated */
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);
	dimse_cmd_rq(&c, DIMSE_C_ECHO_RQ, 1, "1.2.3");
	memset(c.error_comment, 'x', 65);
	c.has |= DIMSE_F_ERROR_COMMENT;
	CHECK_EQ_INT(dimse_cmd_build(&c, &w), ERR_PARSE);   /* LO is 64 at most */
	CHECK_EQ_INT(w.len, 0);
	wbuf_fini(&w);
}

/* At capacity the listener evicts from the host holding the most
 * connections without an association: a flood from one address churns its
 * own, never the peer connecting from elsewhere (it evicted the oldest,
 * whoever's, so that a plain TCP flood locked the peers out). */
TEST(evict_choice)
{
	/* a flood's two from one host (5 waiting there, over the 4 of half
	 * a limit of 8), the peer's older one */
	struct dimse_evict_cand c[3] = { { 5, false, 200 }, { 1, false, 100 }, { 5, false, 300 } };

	CHECK_EQ_INT(dimse_evict_choose(c, 3, 4), 0);   /* the flood's oldest, not the older peer */
	/* a peer's two parallel associations (2 waiting: no flood) beside
	 * silent connections of one each from other hosts: the oldest goes,
	 * not the peer's for holding more */
	c[0] = (struct dimse_evict_cand){ 2, false, 300 };
	c[1] = (struct dimse_evict_cand){ 1, false, 100 };
	c[2] = (struct dimse_evict_cand){ 2, false, 310 };
	CHECK_EQ_INT(dimse_evict_choose(c, 3, 4), 1);
	/* four waiting (the rest of the limit held by accepted associations):
	 * three of one host, over half of them (2), the peer's the oldest */
	{
		struct dimse_evict_cand w[4] = { { 1, false, 50 }, { 3, false, 200 }, { 3, false, 210 }, { 3, false, 220 } };
		CHECK_EQ_INT(dimse_evict_choose(w, 4, 4 / 2), 1);
	}
	/* one host each: a handshake done is evicted last, then the oldest */
	c[0] = (struct dimse_evict_cand){ 1, true, 100 };
	c[1] = (struct dimse_evict_cand){ 1, false, 300 };
	c[2] = (struct dimse_evict_cand){ 1, false, 200 };
	CHECK_EQ_INT(dimse_evict_choose(c, 3, 4), 2);
	c[1].tls_done = c[2].tls_done = true;
	CHECK_EQ_INT(dimse_evict_choose(c, 3, 4), 0);
	CHECK_EQ_INT(dimse_evict_choose(c, 1, 4), 0);
}

int main(void)
{
	RUN(echo_golden);
	RUN(truncated_every_offset);
	RUN(round_trips);
	RUN(strict_structure);
	RUN(lenient_where_documented);
	RUN(required_elements);
	RUN(build_refuses_bad_values);
	RUN(evict_choice);
	return TEST_DONE();
}
