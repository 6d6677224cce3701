/* pdu.c: DICOM upper layer PDUs (PS3.8 9.3, PS3.7 D.3.3): the framer that
 * cuts a byte stream into PDUs (length checked against the limit from the
 * 6-byte header, before the body is buffered), parsers that read every
 * item through a child struct rd of exactly the item's length, and
 * builders into a struct wbuf. Layer: proto. */
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/pdu.h"
#include "dicomvault/rd.h"

/* ---- helpers ---- */

bool pdu_uid_ok(const char *s, size_t n)
{
	size_t i, comp = 0;

	if (n == 0 || n > PDU_UID_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (comp == 0)
				return false;
			comp = 0;
		} else if (c >= '0' && c <= '9') {
			if (comp == 1 && s[i - 1] == '0')
				return false;   /* leading zero */
			comp++;
		} else {
			return false;
		}
	}
	return comp > 0;
}

static bool ae_char_ok(uint8_t c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

bool pdu_ae_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > PDU_AE_MAX || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (i = 0; i < n; i++)
		if (!ae_char_ok((uint8_t)s[i]))
			return false;
	return true;
}

const char *pdu_type_name(uint8_t type)
{
	switch (type) {
	case PDU_ASSOC_RQ: return "A-ASSOCIATE-RQ";
	case PDU_ASSOC_AC: return "A-ASSOCIATE-AC";
	case PDU_ASSOC_RJ: return "A-ASSOCIATE-RJ";
	case PDU_DATA_TF: return "P-DATA-TF";
	case PDU_RELEASE_RQ: return "A-RELEASE-RQ";
	case PDU_RELEASE_RP: return "A-RELEASE-RP";
	case PDU_ABORT: return "A-ABORT";
	default: return "unknown PDU";
	}
}

/* A 16-byte AE title field: leading and trailing spaces are not
 * significant (PS3.8 9.3.2); all spaces, a control character, a
 * backslash or a NUL are invalid. */
static enum err ae_parse(const uint8_t *f, char out[PDU_AE_MAX + 1])
{
	size_t b = 0, e = PDU_AE_MAX, i;

	while (b < e && f[b] == ' ')
		b++;
	while (e > b && f[e - 1] == ' ')
		e--;
	if (b == e)
		return ERR_PARSE;
	for (i = b; i < e; i++)
		if (!ae_char_ok(f[i]))
			return ERR_PARSE;
	memcpy(out, f + b, e - b);
	out[e - b] = 0;
	return ERR_OK;
}

/* A UID item value. One trailing NUL or space (padding implementations
 * add to an odd length) is dropped. */
static enum err uid_parse(struct rd *r, size_t n, char out[PDU_UID_MAX + 1])
{
	const uint8_t *p;

	if (rd_view(r, n, &p) != ERR_OK)
		return ERR_PARSE;
	if (n > 0 && (p[n - 1] == 0 || p[n - 1] == ' '))
		n--;
	if (!pdu_uid_ok((const char *)p, n))
		return ERR_PARSE;
	memcpy(out, p, n);
	out[n] = 0;
	return ERR_OK;
}

/* The same where one bad value should not cost the whole association (an
 * abstract or transfer syntax, a role item's SOP class: DCMTK answers
 * such a context "not supported" rather than abort): ERR_PARSE only when
 * the item is cut short; a value that is not a UID (a leading zero, too
 * long) gives *ok false and "" in out. */
static enum err uid_parse_lenient(struct rd *r, size_t n, char out[PDU_UID_MAX + 1], bool *ok)
{
	struct rd v;

	if (rd_child(r, n, &v) != ERR_OK)
		return ERR_PARSE;
	*ok = uid_parse(&v, n, out) == ERR_OK;
	if (!*ok)
		out[0] = 0;
	return ERR_OK;
}

/* ---- framer ---- */

void pdu_framer_init(struct pdu_framer *f, uint32_t max)
{
	memset(f, 0, sizeof *f);
	f->max = max;
	f->err = ERR_OK;
}

void pdu_framer_fini(struct pdu_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof *f);
}

void pdu_framer_set_max(struct pdu_framer *f, uint32_t max)
{
	f->max = max;
}

bool pdu_framer_partial(const struct pdu_framer *f)
{
	return !f->ready && f->hlen > 0;
}

enum err pdu_framer_feed(struct pdu_framer *f, const uint8_t *data, size_t n, size_t *used,
                         struct pdu_view *out)
{
	size_t off = 0, take;

	*used = 0;
	if (f->err != ERR_OK)
		return f->err;
	if (f->ready) {   /* the PDU handed out last time is dropped */
		f->ready = false;
		f->hlen = 0;
		f->len = 0;
		f->need = 0;
	}
	while (f->hlen < PDU_HEADER_LEN) {
		if (off == n) {
			*used = off;
			return ERR_AGAIN;
		}
		f->hdr[f->hlen++] = data[off++];
		if (f->hlen == PDU_HEADER_LEN) {
			uint32_t len = load_u32be(f->hdr + 2);
			*used = off;
			if (f->hdr[0] < PDU_ASSOC_RQ || f->hdr[0] > PDU_ABORT)
				return f->err = ERR_PARSE;
			if (len > f->max)
				return f->err = ERR_LIMIT;
			f->need = len;
			if (len > f->cap) {
				uint8_t *nb = realloc(f->buf, len);
				if (nb == NULL)
					return f->err = ERR_NOMEM;
				f->buf = nb;
				f->cap = len;
			}
		}
	}
	take = n - off < f->need - f->len ? n - off : f->need - f->len;
	if (take) {
		memcpy(f->buf + f->len, data + off, take);
		f->len += take;
		off += take;
	}
	*used = off;
	if (f->len < f->need)
		return ERR_AGAIN;
	f->ready = true;
	out->type = f->hdr[0];
	out->body = f->len ? f->buf : (const uint8_t *)"";
	out->len = f->len;
	return ERR_OK;
}

/* ---- A-ASSOCIATE-RQ/AC ---- */

void pdu_assoc_init(struct pdu_assoc *a, uint8_t type)
{
	memset(a, 0, sizeof *a);
	a->type = type;
	a->version = 1;
}

void pdu_assoc_fini(struct pdu_assoc *a)
{
	uint8_t type = a->type;

	secret_free(a->id_primary);
	secret_free(a->id_secondary);
	secret_free(a->id_response);
	pdu_assoc_init(a, type);
}

enum err pdu_assoc_add_pc(struct pdu_assoc *a, uint8_t id, uint8_t result, const char *abstract)
{
	struct pdu_pctx *pc;

	if (a->npc >= PDU_MAX_PCTX)
		return ERR_LIMIT;
	if ((id & 1) == 0 || (abstract != NULL && !pdu_uid_ok(abstract, strlen(abstract))))
		return ERR_PARSE;
	pc = &a->pc[a->npc++];
	memset(pc, 0, sizeof *pc);
	pc->id = id;
	pc->result = result;
	if (abstract != NULL)
		memcpy(pc->abstract, abstract, strlen(abstract) + 1);
	pc->ts_first = (uint16_t)a->nts;
	return ERR_OK;
}

enum err pdu_assoc_add_ts(struct pdu_assoc *a, const char *ts)
{
	struct pdu_pctx *pc;

	if (a->npc == 0)
		return ERR_INTERNAL;
	pc = &a->pc[a->npc - 1];
	if (a->nts >= PDU_MAX_TS_TOTAL || pc->nts >= PDU_MAX_TS_PER_PCTX)
		return ERR_LIMIT;
	if (!pdu_uid_ok(ts, strlen(ts)))
		return ERR_PARSE;
	memcpy(a->ts[a->nts++], ts, strlen(ts) + 1);
	pc->nts++;
	return ERR_OK;
}

/* Reads an item header (type, reserved, 16-bit length) and gives a child
 * reader of exactly that length. */
static enum err item_next(struct rd *r, uint8_t *type, struct rd *child)
{
	uint8_t t, res;
	uint16_t len;

	if (rd_get_u8(r, &t) != ERR_OK || rd_get_u8(r, &res) != ERR_OK || rd_get_u16be(r, &len) != ERR_OK ||
	    rd_child(r, len, child) != ERR_OK)
		return ERR_PARSE;
	(void)res;   /* reserved: not tested */
	*type = t;
	return ERR_OK;
}

static enum err pc_rq_parse(struct rd *r, struct pdu_assoc *a)
{
	uint8_t id, t;
	struct rd c;
	struct pdu_pctx *pc;
	unsigned i;
	bool have_as = false, have_ts = false;
	char spare[PDU_UID_MAX + 1];

	if (rd_get_u8(r, &id) != ERR_OK || rd_skip(r, 3) != ERR_OK)
		return ERR_PARSE;
	if ((id & 1) == 0)
		return ERR_PARSE;
	for (i = 0; i < a->npc; i++)
		if (a->pc[i].id == id)
			return ERR_PARSE;   /* duplicate context id */
	if (a->npc >= PDU_MAX_PCTX)
		return ERR_LIMIT;
	pc = &a->pc[a->npc];
	memset(pc, 0, sizeof *pc);
	pc->id = id;
	pc->ts_first = (uint16_t)a->nts;
	while (rd_remaining(r) > 0) {
		if (item_next(r, &t, &c) != ERR_OK)
			return ERR_PARSE;
		if (t == 0x30) {
			/* not a UID: the context is answered "abstract syntax not
			 * supported" (its abstract stays ""), the others served */
			bool ok;
			if (have_as || uid_parse_lenient(&c, rd_remaining(&c), pc->abstract, &ok) != ERR_OK)
				return ERR_PARSE;
			have_as = true;
		} else if (t == 0x40) {
			/* beyond the caps, or not a UID, a transfer syntax is left
			 * out: the context is answered from those kept (a context
			 * left with none: "transfer syntaxes not supported"), as
			 * DCMTK accepts such requests where a refusal would lose
			 * the whole association */
			bool keep = a->nts < PDU_MAX_TS_TOTAL && pc->nts < PDU_MAX_TS_PER_PCTX, ok;
			if (uid_parse_lenient(&c, rd_remaining(&c), keep ? a->ts[a->nts] : spare, &ok) != ERR_OK)
				return ERR_PARSE;
			have_ts = true;
			if (keep && ok) {
				a->nts++;
				pc->nts++;
			}
		} else {
			return ERR_PARSE;
		}
	}
	if (!have_as || !have_ts)
		return ERR_PARSE;
	a->npc++;
	return ERR_OK;
}

static enum err pc_ac_parse(struct rd *r, struct pdu_assoc *a)
{
	uint8_t id, res, result, t;
	struct rd c;
	struct pdu_pctx *pc;
	unsigned i, nsub = 0;

	if (rd_get_u8(r, &id) != ERR_OK || rd_get_u8(r, &res) != ERR_OK || rd_get_u8(r, &result) != ERR_OK ||
	    rd_get_u8(r, &res) != ERR_OK)
		return ERR_PARSE;
	if ((id & 1) == 0 || result > PDU_PC_TS_REJECT)
		return ERR_PARSE;
	for (i = 0; i < a->npc; i++)
		if (a->pc[i].id == id)
			return ERR_PARSE;
	if (a->npc >= PDU_MAX_PCTX)
		return ERR_LIMIT;
	pc = &a->pc[a->npc];
	memset(pc, 0, sizeof *pc);
	pc->id = id;
	pc->result = result;
	pc->ts_first = (uint16_t)a->nts;
	while (rd_remaining(r) > 0) {
		if (item_next(r, &t, &c) != ERR_OK || t != 0x40 || nsub++ > 0)
			return ERR_PARSE;
		if (result != PDU_PC_ACCEPT)
			continue;   /* "not tested" when not accepted (may be empty) */
		if (a->nts >= PDU_MAX_TS_TOTAL)
			return ERR_LIMIT;
		if (uid_parse(&c, rd_remaining(&c), a->ts[a->nts]) != ERR_OK)
			return ERR_PARSE;
		a->nts++;
		pc->nts = 1;
	}
	if (result == PDU_PC_ACCEPT && pc->nts != 1)
		return ERR_PARSE;
	a->npc++;
	return ERR_OK;
}

/* A 16-bit length and that many bytes. */
static enum err get_lv16(struct rd *r, const uint8_t **p, size_t *n)
{
	uint16_t l;

	if (rd_get_u16be(r, &l) != ERR_OK || rd_view(r, l, p) != ERR_OK)
		return ERR_PARSE;
	*n = l;
	return ERR_OK;
}

static enum err role_parse(struct rd *r, struct pdu_assoc *a)
{
	uint16_t ul;
	struct rd u;
	struct pdu_role *ro;
	uint8_t scu, scp;
	unsigned i;

	bool ok;

	if (a->nroles >= PDU_MAX_ROLES)
		return ERR_LIMIT;
	ro = &a->role[a->nroles];
	if (rd_get_u16be(r, &ul) != ERR_OK || rd_child(r, ul, &u) != ERR_OK ||
	    uid_parse_lenient(&u, ul, ro->uid, &ok) != ERR_OK || rd_get_u8(r, &scu) != ERR_OK ||
	    rd_get_u8(r, &scp) != ERR_OK || rd_remaining(r) != 0 || scu > 1 || scp > 1)
		return ERR_PARSE;
	if (!ok)
		return ERR_OK;   /* a SOP class that is not a UID: no context of ours has it */
	/* one per SOP class is what PS3.7 D.3.3.4 describes, but DCMTK
	 * writes one per presentation context that has a role (a SOP class
	 * proposed twice: two equal items): the first is kept, the others
	 * dropped, and one is answered */
	for (i = 0; i < a->nroles; i++)
		if (strcmp(a->role[i].uid, ro->uid) == 0)
			return ERR_OK;
	ro->scu = scu;
	ro->scp = scp;
	a->nroles++;
	return ERR_OK;
}

static enum err identity_rq_parse(struct rd *r, struct pdu_assoc *a)
{
	uint8_t type, resp;
	const uint8_t *p1, *p2;
	size_t n1, n2;
	enum err rc;

	if (rd_get_u8(r, &type) != ERR_OK || rd_get_u8(r, &resp) != ERR_OK || get_lv16(r, &p1, &n1) != ERR_OK ||
	    get_lv16(r, &p2, &n2) != ERR_OK || rd_remaining(r) != 0)
		return ERR_PARSE;
	if (type < PDU_UID_USERNAME || type > PDU_UID_JWT || resp > 1 || n1 == 0)
		return ERR_PARSE;
	if (type != PDU_UID_USERNAME_PASS && n2 > 0)   /* an empty passcode is well-formed, and refused later */
		return ERR_PARSE;
	if (n1 > PDU_MAX_IDENTITY || n2 > CRYPTO_PASSWORD_MAX)
		return ERR_LIMIT;
	a->has_identity = true;
	a->id_type = type;
	a->id_response_requested = resp == 1;
	rc = secret_from_bytes(p1, n1, &a->id_primary);
	if (rc == ERR_OK && n2 > 0)
		rc = secret_from_bytes(p2, n2, &a->id_secondary);
	return rc;
}

static enum err identity_ac_parse(struct rd *r, struct pdu_assoc *a)
{
	const uint8_t *p;
	size_t n;

	if (get_lv16(r, &p, &n) != ERR_OK || rd_remaining(r) != 0)
		return ERR_PARSE;
	if (n > PDU_MAX_IDENTITY_RESP)
		return ERR_LIMIT;
	a->has_id_response = true;
	return n > 0 ? secret_from_bytes(p, n, &a->id_response) : ERR_OK;
}

static enum err user_info_parse(struct rd *r, struct pdu_assoc *a, uint8_t *reason)
{
	uint8_t t;
	struct rd c;
	enum err rc;
	uint32_t v;
	uint16_t n16;
	const uint8_t *p;
	size_t n;

	while (rd_remaining(r) > 0) {
		if (item_next(r, &t, &c) != ERR_OK)
			return ERR_PARSE;
		switch (t) {
		case 0x51:   /* maximum length */
			if (a->has_max_len || rd_get_u32be(&c, &v) != ERR_OK || rd_remaining(&c) != 0)
				return ERR_PARSE;
			a->has_max_len = true;
			a->max_len = v;
			break;
		case 0x52:   /* implementation class UID */
			if (a->impl_uid[0] || uid_parse(&c, rd_remaining(&c), a->impl_uid) != ERR_OK)
				return ERR_PARSE;
			break;
		case 0x53:   /* asynchronous operations window */
			if (a->has_async || rd_get_u16be(&c, &a->async_invoked) != ERR_OK ||
			    rd_get_u16be(&c, &a->async_performed) != ERR_OK || rd_remaining(&c) != 0)
				return ERR_PARSE;
			a->has_async = true;
			break;
		case 0x54:   /* SCP/SCU role selection */
			rc = role_parse(&c, a);
			if (rc != ERR_OK)
				return rc;
			break;
		case 0x55: { /* implementation version name: 1..16 characters */
			size_t i;
			n = rd_remaining(&c);
			if (a->impl_version[0] || n == 0 || n > PDU_VERSION_MAX || rd_view(&c, n, &p) != ERR_OK)
				return ERR_PARSE;
			for (i = 0; i < n; i++)
				if (!ae_char_ok(p[i]))
					return ERR_PARSE;
			while (n > 0 && p[n - 1] == ' ')
				n--;
			if (n == 0)
				return ERR_PARSE;
			memcpy(a->impl_version, p, n);
			a->impl_version[n] = 0;
			break;
		}
		case 0x56:   /* SOP class extended negotiation: checked, ignored */
			if (get_lv16(&c, &p, &n) != ERR_OK || !pdu_uid_ok((const char *)p, n))
				return ERR_PARSE;
			a->next_neg++;
			break;
		case 0x57:   /* SOP class common extended negotiation: checked, ignored */
			if (get_lv16(&c, &p, &n) != ERR_OK || !pdu_uid_ok((const char *)p, n) ||
			    get_lv16(&c, &p, &n) != ERR_OK || rd_get_u16be(&c, &n16) != ERR_OK ||
			    rd_remaining(&c) != n16)
				return ERR_PARSE;
			a->next_neg++;
			break;
		case 0x58:   /* user identity (RQ) */
			if (a->type != PDU_ASSOC_RQ || a->has_identity) {
				*reason = PDU_ABORT_UNEXP_PARAM;
				return ERR_PARSE;
			}
			rc = identity_rq_parse(&c, a);
			if (rc != ERR_OK)
				return rc;
			break;
		case 0x59:   /* user identity (AC) */
			if (a->type != PDU_ASSOC_AC || a->has_id_response) {
				*reason = PDU_ABORT_UNEXP_PARAM;
				return ERR_PARSE;
			}
			rc = identity_ac_parse(&c, a);
			if (rc != ERR_OK)
				return rc;
			break;
		default:     /* unknown sub-items are skipped (PS3.7 D.3.3) */
			a->nunknown++;
			break;
		}
	}
	return ERR_OK;
}

enum err pdu_assoc_parse(uint8_t type, const uint8_t *body, size_t len, struct pdu_assoc *a, uint8_t *reason)
{
	struct rd r, c;
	uint8_t t, why = PDU_ABORT_INVALID_PARAM;
	const uint8_t *f;
	bool have_ctx = false, have_ui = false;
	enum err rc = ERR_PARSE;

	pdu_assoc_init(a, type);
	if (type != PDU_ASSOC_RQ && type != PDU_ASSOC_AC) {
		rc = ERR_INTERNAL;
		goto out;
	}
	rd_init(&r, body, len);
	if (rd_get_u16be(&r, &a->version) != ERR_OK || rd_skip(&r, 2) != ERR_OK)
		goto out;
	if (rd_view(&r, PDU_AE_MAX, &f) != ERR_OK)
		goto out;
	if (ae_parse(f, a->called) != ERR_OK && type == PDU_ASSOC_RQ)
		goto out;   /* in an AC these are reserved: not tested */
	if (rd_view(&r, PDU_AE_MAX, &f) != ERR_OK)
		goto out;
	if (ae_parse(f, a->calling) != ERR_OK && type == PDU_ASSOC_RQ)
		goto out;
	if (rd_skip(&r, 32) != ERR_OK)
		goto out;
	while (rd_remaining(&r) > 0) {
		rc = ERR_PARSE;
		if (item_next(&r, &t, &c) != ERR_OK)
			goto out;
		if (t == 0x10) {
			if (have_ctx || uid_parse(&c, rd_remaining(&c), a->app_context) != ERR_OK)
				goto out;
			have_ctx = true;
			rc = ERR_OK;
		} else if (t == 0x20 && type == PDU_ASSOC_RQ) {
			rc = pc_rq_parse(&c, a);
		} else if (t == 0x21 && type == PDU_ASSOC_AC) {
			rc = pc_ac_parse(&c, a);
		} else if (t == 0x50 && !have_ui) {
			have_ui = true;
			rc = user_info_parse(&c, a, &why);
		} else {
			why = t == 0x10 || t == 0x20 || t == 0x21 || t == 0x50 ? PDU_ABORT_UNEXP_PARAM
			                                                         : PDU_ABORT_UNREC_PARAM;
		}
		if (rc != ERR_OK)
			goto out;
	}
	rc = ERR_PARSE;
	if (!have_ctx || !have_ui || a->npc == 0)
		goto out;
	rc = ERR_OK;
out:
	if (rc != ERR_OK) {
		pdu_assoc_fini(a);
		if (reason != NULL)
			*reason = why;
	}
	return rc;
}

/* Writes a 16-bit big-endian value at off (an item length known
 * afterwards). */
static void patch_u16be(struct wbuf *w, size_t off, size_t v)
{
	if (wbuf_err(w) != ERR_OK)
		return;
	if (v > 0xffff || off > w->len || w->len - off < 2) {
		w->err = ERR_LIMIT;
		return;
	}
	store_u16be(w->p + off, (uint16_t)v);
}

static void patch_u32be(struct wbuf *w, size_t off, size_t v)
{
	if (wbuf_err(w) != ERR_OK)
		return;
	if (v > 0xffffffffu || off > w->len || w->len - off < 4) {
		w->err = ERR_LIMIT;
		return;
	}
	store_u32be(w->p + off, (uint32_t)v);
}

/* Opens an item: type, reserved, length to patch; returns where the
 * length is. */
static size_t item_open(struct wbuf *w, uint8_t type)
{
	size_t at;

	wbuf_putc(w, (char)type);
	wbuf_putc(w, 0);
	at = w->len;
	wbuf_put_u16be(w, 0);
	return at;
}

static void item_close(struct wbuf *w, size_t at)
{
	patch_u16be(w, at, w->len - at - 2);
}

static void item_str(struct wbuf *w, uint8_t type, const char *s)
{
	size_t at = item_open(w, type);
	wbuf_puts(w, s);
	item_close(w, at);
}

static void ae_put(struct wbuf *w, const char *ae)
{
	size_t n = strlen(ae);
	wbuf_put(w, ae, n);
	while (n++ < PDU_AE_MAX)
		wbuf_putc(w, ' ');
}

static bool secret_fits(const struct secret *s, size_t max)
{
	return s == NULL || secret_len(s) <= max;
}

enum err pdu_assoc_build(const struct pdu_assoc *a, struct wbuf *w)
{
	size_t start = w->len, at, ui, k;
	unsigned i, j;
	bool rq = a->type == PDU_ASSOC_RQ;

	if (a->type != PDU_ASSOC_RQ && a->type != PDU_ASSOC_AC)
		return ERR_INTERNAL;
	if (!pdu_ae_ok(a->called) || !pdu_ae_ok(a->calling) ||
	    !pdu_uid_ok(a->app_context, strlen(a->app_context)) || a->npc == 0 || a->npc > PDU_MAX_PCTX ||
	    (a->impl_uid[0] && !pdu_uid_ok(a->impl_uid, strlen(a->impl_uid))) ||
	    strlen(a->impl_version) > PDU_VERSION_MAX || a->nroles > PDU_MAX_ROLES || a->nts > PDU_MAX_TS_TOTAL)
		return ERR_PARSE;
	for (i = 0; i < a->npc; i++) {
		const struct pdu_pctx *pc = &a->pc[i];
		if ((pc->id & 1) == 0 || (size_t)pc->ts_first + pc->nts > a->nts)
			return ERR_PARSE;
		if (rq ? (pc->nts == 0 || !pdu_uid_ok(pc->abstract, strlen(pc->abstract)))
		       : (pc->nts > 1 || pc->result > PDU_PC_TS_REJECT || (pc->result == PDU_PC_ACCEPT && pc->nts != 1)))
			return ERR_PARSE;
		for (j = 0; j < i; j++)
			if (a->pc[j].id == pc->id)
				return ERR_PARSE;
	}
	if (rq ? (a->has_identity && (a->id_type < PDU_UID_USERNAME || a->id_type > PDU_UID_JWT ||
	                              a->id_primary == NULL || !secret_fits(a->id_primary, PDU_MAX_IDENTITY) ||
	                              (a->id_type == PDU_UID_USERNAME_PASS) != (a->id_secondary != NULL) ||
	                              !secret_fits(a->id_secondary, CRYPTO_PASSWORD_MAX)))
	       : !secret_fits(a->id_response, PDU_MAX_IDENTITY_RESP))
		return ERR_PARSE;
	wbuf_putc(w, (char)a->type);
	wbuf_putc(w, 0);
	wbuf_put_u32be(w, 0);
	wbuf_put_u16be(w, a->version);
	wbuf_put_u16be(w, 0);
	ae_put(w, a->called);
	ae_put(w, a->calling);
	for (k = 0; k < 32; k++)
		wbuf_putc(w, 0);
	item_str(w, 0x10, a->app_context);
	for (i = 0; i < a->npc; i++) {
		const struct pdu_pctx *pc = &a->pc[i];
		at = item_open(w, rq ? 0x20 : 0x21);
		wbuf_putc(w, (char)pc->id);
		wbuf_putc(w, 0);
		wbuf_putc(w, rq ? 0 : (char)pc->result);
		wbuf_putc(w, 0);
		if (rq)
			item_str(w, 0x30, pc->abstract);
		for (j = 0; j < pc->nts; j++)
			item_str(w, 0x40, a->ts[pc->ts_first + j]);
		if (!rq && pc->nts == 0)   /* a rejected context still carries a valid sub-item */
			item_str(w, 0x40, "1.2.840.10008.1.2");
		item_close(w, at);
	}
	ui = item_open(w, 0x50);
	at = item_open(w, 0x51);
	wbuf_put_u32be(w, a->max_len);
	item_close(w, at);
	if (a->impl_uid[0])
		item_str(w, 0x52, a->impl_uid);
	if (a->has_async) {
		at = item_open(w, 0x53);
		wbuf_put_u16be(w, a->async_invoked);
		wbuf_put_u16be(w, a->async_performed);
		item_close(w, at);
	}
	for (i = 0; i < a->nroles; i++) {
		size_t ul = strlen(a->role[i].uid);
		if (!pdu_uid_ok(a->role[i].uid, ul) || a->role[i].scu > 1 || a->role[i].scp > 1)
			return ERR_PARSE;
		at = item_open(w, 0x54);
		wbuf_put_u16be(w, (uint16_t)ul);
		wbuf_puts(w, a->role[i].uid);
		wbuf_putc(w, (char)a->role[i].scu);
		wbuf_putc(w, (char)a->role[i].scp);
		item_close(w, at);
	}
	if (a->impl_version[0])
		item_str(w, 0x55, a->impl_version);
	if (rq && a->has_identity) {
		at = item_open(w, 0x58);
		wbuf_putc(w, (char)a->id_type);
		wbuf_putc(w, a->id_response_requested ? 1 : 0);
		wbuf_put_u16be(w, (uint16_t)secret_len(a->id_primary));
		wbuf_put(w, secret_view(a->id_primary), secret_len(a->id_primary));
		k = a->id_secondary ? secret_len(a->id_secondary) : 0;
		wbuf_put_u16be(w, (uint16_t)k);
		if (k)
			wbuf_put(w, secret_view(a->id_secondary), k);
		item_close(w, at);
	}
	if (!rq && a->has_id_response) {
		k = a->id_response ? secret_len(a->id_response) : 0;
		at = item_open(w, 0x59);
		wbuf_put_u16be(w, (uint16_t)k);
		if (k)
			wbuf_put(w, secret_view(a->id_response), k);
		item_close(w, at);
	}
	item_close(w, ui);
	if (wbuf_err(w) == ERR_OK && w->len - start - PDU_HEADER_LEN > PDU_MAX_PREASSOC)
		w->err = ERR_LIMIT;   /* would not be accepted by our own framer */
	patch_u32be(w, start + 2, w->len - start - PDU_HEADER_LEN);
	return wbuf_err(w);
}

/* ---- short PDUs ---- */

enum err pdu_rj_parse(const uint8_t *body, size_t len, struct pdu_rj *out)
{
	struct pdu_rj rj;

	if (len != 4)
		return ERR_PARSE;
	rj.result = body[1];
	rj.source = body[2];
	rj.reason = body[3];
	if (rj.result < PDU_RJ_PERMANENT || rj.result > PDU_RJ_TRANSIENT || rj.source < PDU_RJ_SRC_USER ||
	    rj.source > PDU_RJ_SRC_PRESENTATION)
		return ERR_PARSE;
	*out = rj;
	return ERR_OK;
}

enum err pdu_abort_parse(const uint8_t *body, size_t len, struct pdu_abort *out)
{
	struct pdu_abort ab;

	if (len != 4)
		return ERR_PARSE;
	ab.source = body[2];
	ab.reason = body[3];
	if (ab.source > PDU_ABORT_SRC_PROVIDER)
		return ERR_PARSE;
	if (ab.source != PDU_ABORT_SRC_PROVIDER)
		ab.reason = 0;   /* not significant (PS3.8 table 9-26) */
	*out = ab;
	return ERR_OK;
}

enum err pdu_release_parse(const uint8_t *body, size_t len)
{
	(void)body;
	return len == 4 ? ERR_OK : ERR_PARSE;
}

static void short_pdu(struct wbuf *w, uint8_t type, uint8_t b1, uint8_t b2, uint8_t b3)
{
	uint8_t p[10] = { type, 0, 0, 0, 0, 4, 0, b1, b2, b3 };
	wbuf_put(w, p, sizeof p);
}

void pdu_rj_build(const struct pdu_rj *rj, struct wbuf *w)
{
	short_pdu(w, PDU_ASSOC_RJ, rj->result, rj->source, rj->reason);
}

void pdu_abort_build(uint8_t source, uint8_t reason, struct wbuf *w)
{
	short_pdu(w, PDU_ABORT, 0, source, reason);
}

void pdu_release_build(uint8_t type, struct wbuf *w)
{
	short_pdu(w, type, 0, 0, 0);
}

/* ---- P-DATA-TF ---- */

void pdu_pdv_iter_init(struct pdu_pdv_iter *it, const uint8_t *body, size_t len)
{
	it->r.p = body;
	it->r.len = len;
	it->r.pos = 0;
	it->count = 0;
}

enum err pdu_pdv_next(struct pdu_pdv_iter *it, struct pdu_pdv *out)
{
	struct rd r;
	uint32_t l;
	uint8_t pcid, mch;
	const uint8_t *p;

	rd_init(&r, it->r.p, it->r.len);
	r.pos = it->r.pos;
	if (rd_remaining(&r) == 0)
		return it->count ? ERR_NOTFOUND : ERR_PARSE;
	if (rd_get_u32be(&r, &l) != ERR_OK || l < 2 || rd_get_u8(&r, &pcid) != ERR_OK || rd_get_u8(&r, &mch) != ERR_OK || rd_view(&r, l - 2, &p) != ERR_OK)
		return ERR_PARSE;
	if ((pcid & 1) == 0)
		return ERR_PARSE;
	out->pcid = pcid;
	out->mch = mch & (PDU_PDV_COMMAND | PDU_PDV_LAST);   /* bits 2-7 reserved: not tested */
	out->p = p;
	out->n = l - 2;
	it->r.pos = r.pos;
	it->count++;
	return ERR_OK;
}

void pdu_pdata_build(uint8_t pcid, uint8_t mch, const uint8_t *p, size_t n, struct wbuf *w)
{
	if (n > 0xffffffffu - 6) {
		w->err = ERR_LIMIT;
		return;
	}
	wbuf_putc(w, PDU_DATA_TF);
	wbuf_putc(w, 0);
	wbuf_put_u32be(w, (uint32_t)(n + 6));
	wbuf_put_u32be(w, (uint32_t)(n + 2));
	wbuf_putc(w, (char)pcid);
	wbuf_putc(w, (char)mch);
	wbuf_put(w, p, n);
}
