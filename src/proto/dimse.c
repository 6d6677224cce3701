/* dimse.c: DIMSE command sets (PS3.7 9.3, annex E): implicit VR little
 * endian group 0000 parsed through struct rd into struct dimse_cmd, and
 * built back with its CommandGroupLength. Layer: proto. */
#include <string.h>
#include "dicomvault/dimse.h"
#include "dicomvault/rd.h"
#include "dicomvault/vr.h"

enum vkind { V_UL, V_US, V_UI, V_AE, V_LO, V_AT };

struct elem_def {
	uint16_t el;
	enum vkind kind;
	uint32_t flag;
};

/* The elements we read, in tag order. */
static const struct elem_def defs[] = {
	{ 0x0002, V_UI, DIMSE_F_SOP_CLASS },
	{ 0x0003, V_UI, DIMSE_F_REQ_SOP_CLASS },
	{ 0x0100, V_US, DIMSE_F_FIELD },
	{ 0x0110, V_US, DIMSE_F_MSG_ID },
	{ 0x0120, V_US, DIMSE_F_MSG_ID_RSP },
	{ 0x0600, V_AE, DIMSE_F_MOVE_DEST },
	{ 0x0700, V_US, DIMSE_F_PRIORITY },
	{ 0x0800, V_US, DIMSE_F_DATA_SET_TYPE },
	{ 0x0900, V_US, DIMSE_F_STATUS },
	{ 0x0901, V_AT, DIMSE_F_OFFENDING },
	{ 0x0902, V_LO, DIMSE_F_ERROR_COMMENT },
	{ 0x0903, V_US, DIMSE_F_ERROR_ID },
	{ 0x1000, V_UI, DIMSE_F_SOP_INSTANCE },
	{ 0x1001, V_UI, DIMSE_F_REQ_SOP_INSTANCE },
	{ 0x1020, V_US, DIMSE_F_REMAINING },
	{ 0x1021, V_US, DIMSE_F_COMPLETED },
	{ 0x1022, V_US, DIMSE_F_FAILED },
	{ 0x1023, V_US, DIMSE_F_WARNING },
	{ 0x1030, V_AE, DIMSE_F_MOVE_ORIG_AE },
	{ 0x1031, V_US, DIMSE_F_MOVE_ORIG_ID },
};

static const struct elem_def *def_find(uint16_t el)
{
	size_t i;

	for (i = 0; i < sizeof defs / sizeof defs[0]; i++)
		if (defs[i].el == el)
			return &defs[i];
	return NULL;
}

static uint16_t *us_slot(struct dimse_cmd *c, uint32_t flag)
{
	switch (flag) {
	case DIMSE_F_FIELD: return &c->field;
	case DIMSE_F_MSG_ID: return &c->msg_id;
	case DIMSE_F_MSG_ID_RSP: return &c->msg_id_rsp;
	case DIMSE_F_PRIORITY: return &c->priority;
	case DIMSE_F_DATA_SET_TYPE: return &c->data_set_type;
	case DIMSE_F_STATUS: return &c->status;
	case DIMSE_F_ERROR_ID: return &c->error_id;
	case DIMSE_F_REMAINING: return &c->remaining;
	case DIMSE_F_COMPLETED: return &c->completed;
	case DIMSE_F_FAILED: return &c->failed;
	case DIMSE_F_WARNING: return &c->warning;
	case DIMSE_F_MOVE_ORIG_ID: return &c->move_orig_id;
	default: return NULL;
	}
}

static char *str_slot(struct dimse_cmd *c, uint32_t flag, size_t *cap)
{
	switch (flag) {
	case DIMSE_F_SOP_CLASS: *cap = sizeof c->sop_class; return c->sop_class;
	case DIMSE_F_REQ_SOP_CLASS: *cap = sizeof c->req_sop_class; return c->req_sop_class;
	case DIMSE_F_SOP_INSTANCE: *cap = sizeof c->sop_instance; return c->sop_instance;
	case DIMSE_F_REQ_SOP_INSTANCE: *cap = sizeof c->req_sop_instance; return c->req_sop_instance;
	case DIMSE_F_MOVE_DEST: *cap = sizeof c->move_dest; return c->move_dest;
	case DIMSE_F_MOVE_ORIG_AE: *cap = sizeof c->move_orig_ae; return c->move_orig_ae;
	case DIMSE_F_ERROR_COMMENT: *cap = sizeof c->error_comment; return c->error_comment;
	default: *cap = 0; return NULL;
	}
}

static enum err value_parse(struct dimse_cmd *c, const struct elem_def *d, const uint8_t *v, size_t n)
{
	size_t cap, b = 0, i;
	char *s;

	switch (d->kind) {
	case V_US:
		if (n != 2)
			return ERR_PARSE;
		*us_slot(c, d->flag) = load_u16le(v);
		return ERR_OK;
	case V_AT:
		if (n % 4 != 0 || n == 0)
			return ERR_PARSE;
		for (i = 0; i < n / 4 && i < DIMSE_MAX_OFFENDING; i++)
			c->offending[i] = ((uint32_t)load_u16le(v + 4 * i) << 16) | load_u16le(v + 4 * i + 2);
		c->noffending = (unsigned)i;
		return ERR_OK;
	case V_UI:
		if (n > 0 && (v[n - 1] == 0 || v[n - 1] == ' '))
			n--;   /* padding to even length: NUL, or a space as some write */
		if (n == 0)
			return ERR_NOTFOUND;
		/* a UID as the store takes it (vr_uid_ok), not as strictly as an
		 * association's (pdu_uid_ok): a legacy leading-zero component
		 * (PS3.5 9.1 forbids it; DCMTK takes it) was an A-ABORT */
		if (!vr_uid_ok((const char *)v, n))
			return ERR_PARSE;
		break;
	case V_AE:
		while (b < n && v[b] == ' ')
			b++;
		while (n > b && v[n - 1] == ' ')
			n--;
		if (n - b == 0)
			return ERR_NOTFOUND;
		if (n - b > PDU_AE_MAX)
			return ERR_PARSE;
		for (i = b; i < n; i++)
			if (v[i] < 0x20 || v[i] >= 0x7f || v[i] == '\\')
				return ERR_PARSE;
		break;
	case V_LO:
		while (n > 0 && v[n - 1] == ' ')
			n--;
		if (n == 0)
			return ERR_NOTFOUND;   /* spaces only: empty, as if absent */
		if (n > DIMSE_MAX_STRING)
			return ERR_LIMIT;
		for (i = 0; i < n; i++)
			if (v[i] == 0)
				return ERR_PARSE;
		break;
	default:
		return ERR_INTERNAL;
	}
	s = str_slot(c, d->flag, &cap);
	if (s == NULL || n - b >= cap)
		return ERR_INTERNAL;
	memcpy(s, v + b, n - b);
	s[n - b] = 0;
	return ERR_OK;
}

enum err dimse_cmd_parse(const uint8_t *p, size_t n, struct dimse_cmd *out)
{
	struct dimse_cmd c;
	struct rd r;
	uint16_t g, el, last = 0;
	uint32_t len, glen;
	const uint8_t *v;
	const struct elem_def *d;
	enum err rc;

	if (n > DIMSE_MAX_COMMAND)
		return ERR_LIMIT;
	memset(&c, 0, sizeof c);
	rd_init(&r, p, n);
	/* (0000,0000) UL CommandGroupLength, first: when present it must be
	 * right; some implementations leave it out, which DCMTK tolerates */
	if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0) {
		if (rd_get_u16le(&r, &g) != ERR_OK || rd_get_u16le(&r, &el) != ERR_OK ||
		    rd_get_u32le(&r, &len) != ERR_OK || len != 4 || rd_get_u32le(&r, &glen) != ERR_OK ||
		    glen != rd_remaining(&r))
			return ERR_PARSE;
	}
	while (rd_remaining(&r) > 0) {
		if (rd_get_u16le(&r, &g) != ERR_OK || rd_get_u16le(&r, &el) != ERR_OK ||
		    rd_get_u32le(&r, &len) != ERR_OK || rd_view(&r, len, &v) != ERR_OK)
			return ERR_PARSE;   /* also an undefined length: past the end */
		if (g != 0 || el <= last)
			return ERR_PARSE;   /* another group, out of order or duplicate */
		last = el;
		d = def_find(el);
		if (d == NULL) {
			c.nunknown++;
			continue;
		}
		/* an empty value (or an AE of spaces only) is as if absent: a
		 * required one is then named missing by dimse_cmd_check */
		rc = len == 0 ? ERR_NOTFOUND : value_parse(&c, d, v, len);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc != ERR_OK)
			return rc;
		c.has |= d->flag;
	}
	if (!(c.has & DIMSE_F_FIELD))
		return ERR_PARSE;
	*out = c;
	return ERR_OK;
}

bool dimse_has_data_set(const struct dimse_cmd *c)
{
	return (c->has & DIMSE_F_DATA_SET_TYPE) && c->data_set_type != DIMSE_NO_DATA_SET;
}

const char *dimse_field_name(uint16_t field)
{
	switch (field) {
	case DIMSE_C_STORE_RQ: return "C-STORE-RQ";
	case DIMSE_C_STORE_RSP: return "C-STORE-RSP";
	case DIMSE_C_GET_RQ: return "C-GET-RQ";
	case DIMSE_C_GET_RSP: return "C-GET-RSP";
	case DIMSE_C_FIND_RQ: return "C-FIND-RQ";
	case DIMSE_C_FIND_RSP: return "C-FIND-RSP";
	case DIMSE_C_MOVE_RQ: return "C-MOVE-RQ";
	case DIMSE_C_MOVE_RSP: return "C-MOVE-RSP";
	case DIMSE_C_ECHO_RQ: return "C-ECHO-RQ";
	case DIMSE_C_ECHO_RSP: return "C-ECHO-RSP";
	case DIMSE_C_CANCEL_RQ: return "C-CANCEL-RQ";
	default: return "unknown command";
	}
}

static enum err need(const struct dimse_cmd *c, uint32_t flags, const char *what, const char **why)
{
	if ((c->has & flags) == flags)
		return ERR_OK;
	if (why != NULL)
		*why = what;
	return ERR_PARSE;
}

enum err dimse_cmd_check(const struct dimse_cmd *c, const char **why)
{
	const uint32_t base = DIMSE_F_FIELD | DIMSE_F_DATA_SET_TYPE;
	const uint32_t rq = base | DIMSE_F_SOP_CLASS | DIMSE_F_MSG_ID;
	const uint32_t rsp = base | DIMSE_F_MSG_ID_RSP | DIMSE_F_STATUS;
	bool data = dimse_has_data_set(c);
	enum err rc;

	switch (c->field) {
	case DIMSE_C_ECHO_RQ:
		rc = need(c, rq, "C-ECHO-RQ lacks a required element", why);
		break;
	case DIMSE_C_STORE_RQ:
		rc = need(c, rq | DIMSE_F_PRIORITY | DIMSE_F_SOP_INSTANCE, "C-STORE-RQ lacks a required element", why);
		break;
	case DIMSE_C_FIND_RQ:
	case DIMSE_C_GET_RQ:
		rc = need(c, rq | DIMSE_F_PRIORITY, "query/retrieve request lacks a required element", why);
		break;
	case DIMSE_C_MOVE_RQ:
		rc = need(c, rq | DIMSE_F_PRIORITY | DIMSE_F_MOVE_DEST, "C-MOVE-RQ lacks a required element", why);
		break;
	case DIMSE_C_CANCEL_RQ:
		rc = need(c, base | DIMSE_F_MSG_ID_RSP, "C-CANCEL-RQ lacks MessageIDBeingRespondedTo", why);
		break;
	case DIMSE_C_ECHO_RSP:
	case DIMSE_C_STORE_RSP:
	case DIMSE_C_FIND_RSP:
	case DIMSE_C_GET_RSP:
	case DIMSE_C_MOVE_RSP:
		rc = need(c, rsp, "response lacks a required element", why);
		break;
	default:
		if (why != NULL)
			*why = "not a C- service command";
		return ERR_UNSUPPORTED;
	}
	if (rc != ERR_OK)
		return rc;
	switch (c->field) {
	case DIMSE_C_ECHO_RQ:
	case DIMSE_C_CANCEL_RQ:
	case DIMSE_C_ECHO_RSP:
	case DIMSE_C_STORE_RSP:
		if (data) {
			if (why != NULL)
				*why = "a data set where none is allowed";
			return ERR_PARSE;
		}
		break;
	case DIMSE_C_STORE_RQ:
	case DIMSE_C_FIND_RQ:
	case DIMSE_C_GET_RQ:
	case DIMSE_C_MOVE_RQ:
		if (!data) {
			if (why != NULL)
				*why = "no data set where one is required";
			return ERR_PARSE;
		}
		break;
	default:
		break;   /* C-FIND/GET/MOVE-RSP: with or without (identifier, failed list) */
	}
	if ((c->has & DIMSE_F_PRIORITY) && c->priority > DIMSE_PRIORITY_LOW) {
		if (why != NULL)
			*why = "bad Priority";
		return ERR_PARSE;
	}
	return ERR_OK;
}

/* One element: tag, length, value, padded to even length. */
static void put_elem(struct wbuf *w, uint16_t el, const void *v, size_t n, char pad)
{
	size_t padded = n + (n & 1);

	wbuf_put_u16le(w, 0);
	wbuf_put_u16le(w, el);
	wbuf_put_u32le(w, (uint32_t)padded);
	wbuf_put(w, v, n);
	if (n & 1)
		wbuf_putc(w, pad);
}

enum err dimse_cmd_build(const struct dimse_cmd *c0, struct wbuf *w)
{
	struct dimse_cmd c = *c0;
	size_t start = w->len, i, cap;
	uint8_t b[4 * DIMSE_MAX_OFFENDING];
	char *s;

	c.has |= DIMSE_F_FIELD;
	/* check the strings before writing anything */
	for (i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		const struct elem_def *d = &defs[i];
		size_t n;
		if (!(c.has & d->flag) || (s = str_slot(&c, d->flag, &cap)) == NULL)
			continue;
		n = strnlen(s, cap);
		if (n == cap || (d->kind == V_LO && n > 64) || (d->kind == V_UI && !vr_uid_ok(s, n)) || (d->kind == V_AE && !pdu_ae_ok(s)))
			return ERR_PARSE;
	}
	if ((c.has & DIMSE_F_OFFENDING) && (c.noffending == 0 || c.noffending > DIMSE_MAX_OFFENDING))
		return ERR_PARSE;
	wbuf_put_u16le(w, 0);
	wbuf_put_u16le(w, 0);
	wbuf_put_u32le(w, 4);
	wbuf_put_u32le(w, 0);   /* patched below */
	for (i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		const struct elem_def *d = &defs[i];
		if (!(c.has & d->flag))
			continue;
		switch (d->kind) {
		case V_US: {
			uint8_t u[2];
			store_u16le(u, *us_slot(&c, d->flag));
			put_elem(w, d->el, u, 2, 0);
			break;
		}
		case V_AT: {
			unsigned k;
			for (k = 0; k < c.noffending; k++) {
				store_u16le(b + 4 * k, (uint16_t)(c.offending[k] >> 16));
				store_u16le(b + 4 * k + 2, (uint16_t)c.offending[k]);
			}
			put_elem(w, d->el, b, 4 * (size_t)c.noffending, 0);
			break;
		}
		default:
			s = str_slot(&c, d->flag, &cap);
			put_elem(w, d->el, s, strlen(s), d->kind == V_UI ? 0 : ' ');
			break;
		}
	}
	if (wbuf_err(w) == ERR_OK && w->len - start > DIMSE_MAX_COMMAND)
		w->err = ERR_LIMIT;
	if (wbuf_err(w) == ERR_OK)
		wbuf_patch_u32le(w, start + 8, (uint32_t)(w->len - start - 12));
	return wbuf_err(w);
}

void dimse_cmd_rq(struct dimse_cmd *c, uint16_t field, uint16_t msg_id, const char *sop_class)
{
	memset(c, 0, sizeof *c);
	c->field = field;
	c->has = DIMSE_F_FIELD | DIMSE_F_DATA_SET_TYPE;
	c->data_set_type = DIMSE_NO_DATA_SET;
	if (field != DIMSE_C_CANCEL_RQ) {
		c->msg_id = msg_id;
		c->has |= DIMSE_F_MSG_ID;
	} else {
		c->msg_id_rsp = msg_id;
		c->has |= DIMSE_F_MSG_ID_RSP;
	}
	if (sop_class != NULL && strlen(sop_class) <= PDU_UID_MAX) {
		memcpy(c->sop_class, sop_class, strlen(sop_class) + 1);
		c->has |= DIMSE_F_SOP_CLASS;
	}
	if (field == DIMSE_C_STORE_RQ || field == DIMSE_C_FIND_RQ || field == DIMSE_C_GET_RQ ||
	    field == DIMSE_C_MOVE_RQ) {
		c->priority = DIMSE_PRIORITY_MEDIUM;
		c->data_set_type = DIMSE_HAS_DATA_SET;
		c->has |= DIMSE_F_PRIORITY;
	}
}

void dimse_cmd_rsp(struct dimse_cmd *c, const struct dimse_cmd *rq, uint16_t status)
{
	memset(c, 0, sizeof *c);
	c->field = (uint16_t)(rq->field | DIMSE_RSP_BIT);
	c->msg_id_rsp = rq->msg_id;
	c->status = status;
	c->data_set_type = DIMSE_NO_DATA_SET;
	c->has = DIMSE_F_FIELD | DIMSE_F_MSG_ID_RSP | DIMSE_F_STATUS | DIMSE_F_DATA_SET_TYPE;
	if (rq->has & DIMSE_F_SOP_CLASS) {
		memcpy(c->sop_class, rq->sop_class, sizeof c->sop_class);
		c->has |= DIMSE_F_SOP_CLASS;
	}
	if (rq->field == DIMSE_C_STORE_RQ && (rq->has & DIMSE_F_SOP_INSTANCE)) {
		memcpy(c->sop_instance, rq->sop_instance, sizeof c->sop_instance);
		c->has |= DIMSE_F_SOP_INSTANCE;
	}
}
