/* reader.c: streaming DICOM data set tokenizer (PS3.5 section 7). Emits one
 * event per element, item and delimiter; values stay pending until the
 * caller reads or skips them, so bulk data never has to be held. Every
 * length is checked against its enclosing item, sequence and the source
 * before anything is read or allocated. Layer: dicom. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

enum fr_kind { FR_SEQ, FR_ITEM, FR_FRAGS };

struct dcm_frame {
	uint8_t kind;
	bool undef;
	bool explicit_vr;
	bool big;
	uint32_t tag;          /* the sequence's tag */
	uint64_t off;          /* where it started */
	uint64_t end;          /* defined length: end offset */
};

#define STACK_MAX (2 * DCM_MAX_DEPTH + 2)
#define MIN_READ 4096u

static enum err fail(struct dcm_reader *r, enum err rc, uint64_t off, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static enum err fail(struct dcm_reader *r, enum err rc, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	if (r->ei != NULL) {
		r->ei->offset = off;
		r->ei->inflated = r->inflated;
		va_start(ap, fmt);
		vsnprintf(r->ei->msg, sizeof r->ei->msg, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static enum err warn(struct dcm_reader *r, uint64_t off, const char *fmt, ...) PRINTF_LIKE(3, 4);

static enum err warn(struct dcm_reader *r, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	struct dcm_errinfo *dst = &r->warn;

	if (r->strict)
		dst = r->ei;
	if (r->nwarn++ == 0 || r->strict) {
		if (dst != NULL) {
			dst->offset = off;
			dst->inflated = r->inflated;
			va_start(ap, fmt);
			vsnprintf(dst->msg, sizeof dst->msg, fmt, ap);
			va_end(ap);
		}
	}
	return r->strict ? ERR_PARSE : ERR_OK;
}

enum err dcm_reader_init(struct dcm_reader *r, struct src *src, uint64_t base,
                         bool explicit_vr, bool big_endian, struct dcm_errinfo *ei)
{
	memset(r, 0, sizeof *r);
	r->src = src;
	r->cap = DCM_READ_CHUNK;
	r->buf = malloc(r->cap);
	r->stack = malloc(STACK_MAX * sizeof *r->stack);
	if (r->buf == NULL || r->stack == NULL) {
		free(r->buf);
		free(r->stack);
		r->buf = NULL;
		r->stack = NULL;
		return ERR_NOMEM;
	}
	r->pos = base;
	r->readahead = MIN_READ;
	r->explicit_vr = explicit_vr;
	r->big_endian = big_endian;
	r->limit = UINT64_MAX;
	r->ei = ei;
	return ERR_OK;
}

void dcm_reader_fini(struct dcm_reader *r)
{
	free(r->buf);
	free(r->stack);
	r->buf = NULL;
	r->stack = NULL;
}

static size_t avail(const struct dcm_reader *r) { return r->end - r->start; }

/* Make at least n (<= cap) bytes available unless the data ends first. */
static enum err fill(struct dcm_reader *r, size_t n)
{
	if (avail(r) >= n || r->eof)
		return ERR_OK;
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, avail(r));
		r->end -= r->start;
		r->start = 0;
	}
	while (r->end < n && !r->eof) {
		size_t want = r->cap - r->end, got = 0;
		size_t need = n - r->end;
		enum err rc;

		if (want > r->readahead && want > need)
			want = need > r->readahead ? need : r->readahead;
		rc = r->src->read(r->src->ctx, r->buf + r->end, want, &got);
		if (rc != ERR_OK)
			return fail(r, rc, r->pos + r->end - r->start,
			            rc == ERR_PARSE ? "the deflated data set is truncated or corrupt" :
			            rc == ERR_LIMIT ? "the inflated data set exceeds the size limit" : "read error");
		if (got == 0)
			r->eof = true;
		r->end += got;
		if (r->readahead < r->cap)
			r->readahead *= 2;
	}
	return ERR_OK;
}

enum err dcm_reader_peek(struct dcm_reader *r, size_t n, const uint8_t **p)
{
	enum err rc;

	if (n > 16)
		return ERR_INTERNAL;
	rc = fill(r, n);
	if (rc != ERR_OK)
		return rc;
	if (avail(r) < n)
		return ERR_PARSE;
	*p = r->buf + r->start;
	return ERR_OK;
}

static void consume(struct dcm_reader *r, size_t n)
{
	r->start += n;
	r->pos += n;
}

enum err dcm_reader_value(struct dcm_reader *r, void *buf, size_t n)
{
	uint8_t *out = buf;
	size_t take;
	enum err rc;

	if (n > r->val_left)
		return ERR_INTERNAL;
	take = avail(r) < n ? avail(r) : n;
	memcpy(out, r->buf + r->start, take);
	consume(r, take);
	r->val_left -= take;
	out += take;
	n -= take;
	if (n == 0)
		return ERR_OK;
	if (n < r->cap / 2) {
		rc = fill(r, n);
		if (rc != ERR_OK)
			return rc;
		if (avail(r) < n)
			return fail(r, ERR_PARSE, r->pos + avail(r), "data ends inside a value (%zu bytes missing)", n - avail(r));
		memcpy(out, r->buf + r->start, n);
		consume(r, n);
		r->val_left -= n;
		return ERR_OK;
	}
	/* large: straight from the source, bypassing the buffer (it is empty) */
	while (n > 0) {
		size_t got = 0;
		rc = r->src->read(r->src->ctx, out, n, &got);
		if (rc != ERR_OK)
			return fail(r, rc, r->pos,
			            rc == ERR_PARSE ? "the deflated data set is truncated or corrupt" :
			            rc == ERR_LIMIT ? "the inflated data set exceeds the size limit" : "read error");
		if (got == 0) {
			r->eof = true;
			return fail(r, ERR_PARSE, r->pos, "data ends inside a value (%zu bytes missing)", n);
		}
		out += got;
		n -= got;
		r->pos += got;
		r->val_left -= got;
	}
	return ERR_OK;
}

enum err dcm_reader_skip_value(struct dcm_reader *r)
{
	uint64_t n = r->val_left;
	size_t take = avail(r) < n ? avail(r) : (size_t)n;
	enum err rc;

	consume(r, take);
	n -= take;
	r->val_left = n;
	if (n == 0)
		return ERR_OK;
	if (r->src->skip != NULL && r->src->size >= 0 && !r->eof) {
		/* buffer is empty: r->pos is the source's position */
		if ((uint64_t)r->src->size < r->pos || (uint64_t)r->src->size - r->pos < n)
			return fail(r, ERR_PARSE, r->pos, "data ends inside a value (%llu bytes missing)",
			            (unsigned long long)(n - ((uint64_t)r->src->size - r->pos)));
		rc = r->src->skip(r->src->ctx, n);
		if (rc != ERR_OK)
			return fail(r, rc, r->pos, "seek error");
		r->pos += n;
		r->val_left = 0;
		return ERR_OK;
	}
	while (n > 0) {
		size_t chunk = n > r->cap ? r->cap : (size_t)n;
		r->start = r->end = 0;
		rc = fill(r, chunk);
		if (rc != ERR_OK)
			return rc;
		if (avail(r) == 0)
			return fail(r, ERR_PARSE, r->pos, "data ends inside a value (%llu bytes missing)", (unsigned long long)n);
		take = avail(r) < n ? avail(r) : (size_t)n;
		consume(r, take);
		n -= take;
		r->val_left = n;
	}
	return ERR_OK;
}

static struct dcm_frame *top(struct dcm_reader *r) { return r->depth ? &r->stack[r->depth - 1] : NULL; }

static bool cur_explicit(struct dcm_reader *r)
{
	struct dcm_frame *f = top(r);
	return f ? f->explicit_vr : r->explicit_vr;
}

static bool cur_big(struct dcm_reader *r)
{
	struct dcm_frame *f = top(r);
	return f ? f->big : r->big_endian;
}

/* End offset of the innermost defined-length container (or the limit). */
static uint64_t cur_end(struct dcm_reader *r)
{
	unsigned i;

	for (i = r->depth; i > 0; i--)
		if (!r->stack[i - 1].undef)
			return r->stack[i - 1].end;
	if (r->src->size >= 0 && (uint64_t)r->src->size < r->limit && !r->inflated)
		return (uint64_t)r->src->size;
	return r->limit;
}

static unsigned seq_depth(struct dcm_reader *r)
{
	unsigned i, n = 0;

	for (i = 0; i < r->depth; i++)
		if (r->stack[i].kind != FR_ITEM)
			n++;
	return n;
}

static enum err push(struct dcm_reader *r, uint8_t kind, bool undef, uint64_t end, uint32_t tag,
                     uint64_t off, bool explicit_vr, bool big)
{
	struct dcm_frame *f;

	if (kind != FR_ITEM && seq_depth(r) >= DCM_MAX_DEPTH)
		return fail(r, ERR_LIMIT, off, "sequences nested deeper than %u", DCM_MAX_DEPTH);
	if (r->depth >= STACK_MAX)
		return fail(r, ERR_LIMIT, off, "nesting too deep");
	f = &r->stack[r->depth++];
	f->kind = kind;
	f->undef = undef;
	f->end = end;
	f->tag = tag;
	f->off = off;
	f->explicit_vr = explicit_vr;
	f->big = big;
	return ERR_OK;
}

static void ev_set(struct dcm_reader *r, struct dcm_ev *ev, enum dcm_ev_kind k, uint32_t tag,
                   uint16_t vr, uint32_t len, uint64_t off)
{
	memset(ev, 0, sizeof *ev);
	ev->kind = k;
	ev->tag = tag;
	ev->vr = vr;
	ev->len = len;
	ev->off = off;
	ev->val_off = r->pos;
	ev->depth = seq_depth(r);
	ev->big = cur_big(r);
}

static uint32_t get_tag(const uint8_t *b, bool big)
{
	if (big)
		return ((uint32_t)load_u16be(b) << 16) | load_u16be(b + 2);
	return ((uint32_t)load_u16le(b) << 16) | load_u16le(b + 2);
}

static uint32_t get32(const uint8_t *b, bool big) { return big ? load_u32be(b) : load_u32le(b); }
static uint16_t get16(const uint8_t *b, bool big) { return big ? load_u16be(b) : load_u16le(b); }

/* Check a value of len bytes starting at the current position fits. */
static enum err check_fits(struct dcm_reader *r, uint32_t tag, uint64_t len, uint64_t off)
{
	uint64_t end = cur_end(r);

	if (end < r->pos || end - r->pos < len) {
		unsigned i;
		for (i = r->depth; i > 0; i--)
			if (!r->stack[i - 1].undef)
				break;
		if (i > 0)
			return fail(r, ERR_PARSE, off,
			            "(%04X,%04X): length %llu runs past the end of its enclosing %s at offset %llu",
			            TAG_GROUP(tag), TAG_ELEM(tag), (unsigned long long)len,
			            r->stack[i - 1].kind == FR_ITEM ? "item" : "sequence",
			            (unsigned long long)end);
		return fail(r, ERR_PARSE, off, "(%04X,%04X): length %llu runs past the end of the data (%llu bytes left)",
		            TAG_GROUP(tag), TAG_ELEM(tag), (unsigned long long)len,
		            (unsigned long long)(end > r->pos ? end - r->pos : 0));
	}
	return ERR_OK;
}

/* An 8-byte item or delimiter header must fit in the innermost
 * defined-length container. */
static enum err check_hdr(struct dcm_reader *r, uint32_t tag, uint64_t off)
{
	uint64_t end = cur_end(r);

	if (end < r->pos || end - r->pos < 8)
		return fail(r, ERR_PARSE, off, "(%04X,%04X) crosses the end of its enclosing container at offset %llu",
		            TAG_GROUP(tag), TAG_ELEM(tag), (unsigned long long)end);
	return ERR_OK;
}

static enum err count_elem(struct dcm_reader *r, uint64_t off)
{
	if (++r->nelems > DCM_MAX_ELEMENTS)
		return fail(r, ERR_LIMIT, off, "more than %u elements", DCM_MAX_ELEMENTS);
	return ERR_OK;
}

/* Inside a sequence or encapsulated pixel data: an item or the end. */
static enum err next_in_seq(struct dcm_reader *r, struct dcm_frame *f, struct dcm_ev *ev)
{
	uint64_t off = r->pos;
	uint32_t tag, len;
	bool big = f->big;
	enum err rc;

	rc = fill(r, 8);
	if (rc != ERR_OK)
		return rc;
	if (avail(r) < 8)
		return fail(r, ERR_PARSE, off, "data ends inside sequence (%04X,%04X) that began at offset %llu",
		            TAG_GROUP(f->tag), TAG_ELEM(f->tag), (unsigned long long)f->off);
	tag = get_tag(r->buf + r->start, big);
	len = get32(r->buf + r->start + 4, big);
	rc = check_hdr(r, tag, off);
	if (rc != ERR_OK)
		return rc;
	if (tag == TAG_SEQ_DELIM) {
		if (!f->undef)
			return fail(r, ERR_PARSE, off, "sequence delimiter in a sequence of defined length");
		if (len != 0) {
			rc = warn(r, off, "sequence delimiter with non-zero length %u", len);
			if (rc != ERR_OK)
				return rc;
		}
		consume(r, 8);
		r->depth--;
		ev_set(r, ev, f->kind == FR_FRAGS ? DCM_EV_FRAGS_END : DCM_EV_SEQ_END, f->tag, VR_NONE, 0, off);
		return ERR_OK;
	}
	if (tag != TAG_ITEM)
		return fail(r, ERR_PARSE, off, "expected an item in sequence (%04X,%04X), found tag (%04X,%04X)",
		            TAG_GROUP(f->tag), TAG_ELEM(f->tag), TAG_GROUP(tag), TAG_ELEM(tag));
	rc = count_elem(r, off);
	if (rc != ERR_OK)
		return rc;
	consume(r, 8);
	if (f->kind == FR_FRAGS) {
		if (len == DCM_UNDEF)
			return fail(r, ERR_PARSE, off, "pixel data fragment with undefined length");
		rc = check_fits(r, tag, len, off);
		if (rc != ERR_OK)
			return rc;
		ev_set(r, ev, DCM_EV_FRAG, f->tag, VR_OB, len, off);
		r->val_left = len;
		return ERR_OK;
	}
	if (len != DCM_UNDEF) {
		rc = check_fits(r, tag, len, off);
		if (rc != ERR_OK)
			return rc;
		if (len & 1) {
			rc = warn(r, off, "item of odd length %u", len);
			if (rc != ERR_OK)
				return rc;
		}
	}
	rc = push(r, FR_ITEM, len == DCM_UNDEF, r->pos + (len == DCM_UNDEF ? 0 : len), f->tag, off,
	          f->explicit_vr, f->big);
	if (rc != ERR_OK)
		return rc;
	ev_set(r, ev, DCM_EV_ITEM_BEGIN, f->tag, VR_NONE, len, off);
	ev->undef_len = len == DCM_UNDEF;
	return ERR_OK;
}

static bool vr_letters(const uint8_t *b)
{
	return b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z';
}

/* Does the pending value start with an implicit VR LE item tag? */
static bool un_items_next(struct dcm_reader *r)
{
	if (fill(r, 4) != ERR_OK || avail(r) < 4)
		return false;
	return load_u32le(r->buf + r->start) == 0xE000FFFEu;
}

enum err dcm_reader_next(struct dcm_reader *r, struct dcm_ev *ev)
{
	struct dcm_frame *f;
	uint64_t off;
	uint32_t tag, len;
	uint16_t vr;
	bool explicit_vr, big, implicit_vr_used = false;
	size_t hdr;
	const uint8_t *b;
	enum err rc;

	if (r->val_left > 0) {
		rc = dcm_reader_skip_value(r);
		if (rc != ERR_OK)
			return rc;
	}
	f = top(r);
	/* a defined-length container that is complete ends here */
	if (f != NULL && !f->undef && r->pos >= f->end) {
		if (r->pos > f->end)
			return fail(r, ERR_INTERNAL, r->pos, "read past the end of a container");
		r->depth--;
		ev_set(r, ev, f->kind == FR_ITEM ? DCM_EV_ITEM_END : f->kind == FR_FRAGS ? DCM_EV_FRAGS_END : DCM_EV_SEQ_END,
		       f->tag, VR_NONE, 0, r->pos);
		return ERR_OK;
	}
	if (f != NULL && f->kind != FR_ITEM)
		return next_in_seq(r, f, ev);

	off = r->pos;
	explicit_vr = cur_explicit(r);
	big = cur_big(r);
	if (f == NULL && r->pos >= r->limit) {
		ev_set(r, ev, DCM_EV_EOF, 0, VR_NONE, 0, off);
		return ERR_OK;
	}
	if (f == NULL && avail(r) == 0 && !r->inflated && r->src->size >= 0 && r->pos >= (uint64_t)r->src->size) {
		/* at the known end: no read() just to learn it */
		ev_set(r, ev, DCM_EV_EOF, 0, VR_NONE, 0, off);
		return ERR_OK;
	}
	rc = fill(r, 12);
	if (rc != ERR_OK)
		return rc;
	if (avail(r) == 0 && f == NULL) {
		ev_set(r, ev, DCM_EV_EOF, 0, VR_NONE, 0, off);
		return ERR_OK;
	}
	if (avail(r) < 8) {
		if (f != NULL)
			return fail(r, ERR_PARSE, off, "data ends inside an item of sequence (%04X,%04X) that began at offset %llu",
			            TAG_GROUP(f->tag), TAG_ELEM(f->tag), (unsigned long long)f->off);
		return fail(r, ERR_PARSE, off, "data ends inside an element header (%zu bytes left)", avail(r));
	}
	b = r->buf + r->start;
	tag = get_tag(b, big);
	if (f == NULL && r->stop_tag != 0 && tag >= r->stop_tag) {
		ev_set(r, ev, DCM_EV_EOF, 0, VR_NONE, 0, off);
		return ERR_OK;
	}
	if (TAG_GROUP(tag) == 0xFFFE) {
		len = get32(b + 4, big);
		if (tag == TAG_ITEM_DELIM && f != NULL && f->undef) {
			rc = check_hdr(r, tag, off);
			if (rc != ERR_OK)
				return rc;
			if (len != 0) {
				rc = warn(r, off, "item delimiter with non-zero length %u", len);
				if (rc != ERR_OK)
					return rc;
			}
			consume(r, 8);
			r->depth--;
			ev_set(r, ev, DCM_EV_ITEM_END, f->tag, VR_NONE, 0, off);
			return ERR_OK;
		}
		return fail(r, ERR_PARSE, off, "unexpected (%04X,%04X) %s", TAG_GROUP(tag), TAG_ELEM(tag),
		            tag == TAG_ITEM ? "item outside a sequence" :
		            tag == TAG_ITEM_DELIM ? "item delimiter outside an item of undefined length" :
		            tag == TAG_SEQ_DELIM ? "sequence delimiter outside a sequence" : "delimiter tag");
	}
	if (explicit_vr) {
		if (!vr_letters(b + 4))
			return fail(r, ERR_PARSE, off, "(%04X,%04X): invalid VR bytes %02X %02X", TAG_GROUP(tag),
			            TAG_ELEM(tag), b[4], b[5]);
		vr = VR_CODE(b[4], b[5]);
		if (!vr_is_known(vr))
			return fail(r, ERR_PARSE, off, "(%04X,%04X): unknown VR '%c%c'", TAG_GROUP(tag), TAG_ELEM(tag),
			            b[4], b[5]);
		if (vr_has_long_length(vr)) {
			if (avail(r) < 12)
				return fail(r, ERR_PARSE, off, "data ends inside an element header (%zu bytes left)", avail(r));
			len = get32(b + 8, big);
			hdr = 12;
		} else {
			len = get16(b + 6, big);
			hdr = 8;
		}
	} else {
		len = get32(b + 4, big);
		vr = dict_implicit_vr(tag);
		hdr = 8;
		implicit_vr_used = true;
	}
	rc = count_elem(r, off);
	if (rc != ERR_OK)
		return rc;
	consume(r, hdr);

	if (len == DCM_UNDEF) {
		bool item_next = false;
		if (!explicit_vr && vr != VR_SQ && vr != VR_UN && vr != VR_OB && vr != VR_OW) {
			/* implicit VR: an item tag next means a sequence whatever the
			 * dictionary says (a sequence on a non-SQ or private tag) */
			rc = fill(r, 4);
			if (rc != ERR_OK)
				return rc;
			item_next = avail(r) >= 4 && (get_tag(r->buf + r->start, big) == TAG_ITEM ||
			                              get_tag(r->buf + r->start, big) == TAG_SEQ_DELIM) &&
			            !(tag == TAG_PIXEL_DATA);
		}
		if (vr == VR_SQ || (!explicit_vr && vr == VR_UN) || item_next) {
			rc = push(r, FR_SEQ, true, 0, tag, off, explicit_vr, big);
			if (rc != ERR_OK)
				return rc;
			ev_set(r, ev, DCM_EV_SEQ_BEGIN, tag, VR_SQ, DCM_UNDEF, off);
			ev->vr_implicit = implicit_vr_used;
			ev->undef_len = true;
			ev->depth--;
			return ERR_OK;
		}
		if (vr == VR_UN) {
			/* CP-246: a UN of undefined length is an implicit VR LE sequence */
			rc = push(r, FR_SEQ, true, 0, tag, off, false, false);
			if (rc != ERR_OK)
				return rc;
			ev_set(r, ev, DCM_EV_SEQ_BEGIN, tag, VR_UN, DCM_UNDEF, off);
			ev->undef_len = true;
			ev->un_seq = true;
			ev->depth--;
			return ERR_OK;
		}
		if (vr == VR_OB || vr == VR_OW || (!explicit_vr && tag == TAG_PIXEL_DATA)) {
			rc = push(r, FR_FRAGS, true, 0, tag, off, explicit_vr, big);
			if (rc != ERR_OK)
				return rc;
			ev_set(r, ev, DCM_EV_FRAGS_BEGIN, tag, explicit_vr ? vr : VR_OB, DCM_UNDEF, off);
			ev->vr_implicit = implicit_vr_used;
			ev->undef_len = true;
			ev->depth--;
			return ERR_OK;
		}
		{
			char vb[3];
			return fail(r, ERR_PARSE, off, "(%04X,%04X): undefined length on VR %s, allowed only on SQ, UN and OB/OW pixel data",
			            TAG_GROUP(tag), TAG_ELEM(tag), vr_name(vr, vb));
		}
	}
	rc = check_fits(r, tag, len, off);
	if (rc != ERR_OK)
		return rc;
	if ((len & 1) && !(vr == VR_SQ && explicit_vr)) {
		rc = warn(r, off, "(%04X,%04X): odd value length %u", TAG_GROUP(tag), TAG_ELEM(tag), len);
		if (rc != ERR_OK)
			return rc;
	}
	if (vr == VR_UN && explicit_vr && dict_implicit_vr(tag) == VR_SQ && len > 0 && un_items_next(r)) {
		/* a sequence sent as UN (defined length): implicit VR LE inside */
		rc = push(r, FR_SEQ, false, r->pos + len, tag, off, false, false);
		if (rc != ERR_OK)
			return rc;
		ev_set(r, ev, DCM_EV_SEQ_BEGIN, tag, VR_UN, len, off);
		ev->un_seq = true;
		ev->depth--;
		return ERR_OK;
	}
	if (vr == VR_SQ) {
		rc = push(r, FR_SEQ, false, r->pos + len, tag, off, explicit_vr, big);
		if (rc != ERR_OK)
			return rc;
		ev_set(r, ev, DCM_EV_SEQ_BEGIN, tag, VR_SQ, len, off);
		ev->vr_implicit = implicit_vr_used;
		ev->depth--;
		return ERR_OK;
	}
	ev_set(r, ev, DCM_EV_ELEM, tag, vr, len, off);
	ev->vr_implicit = implicit_vr_used;
	r->val_left = len;
	return ERR_OK;
}
