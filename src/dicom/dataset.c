/* dataset.c: builds the data set tree from the streaming reader, reads Part
 * 10 files (preamble, meta group, transfer syntax, deflate), and edits data
 * sets. Layer: dicom. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "dicomvault/charset.h"
#include "dicomvault/dataset.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

/* ---- sources layered on the caller's ---- */

/* Bytes already read from offset 0, then the rest of the underlying source;
 * offsets are those of the underlying source. */
struct prefix_src {
	const uint8_t *p;
	size_t n, pos;
	struct src *next;
};

static enum err prefix_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct prefix_src *s = ctx;

	if (s->pos < s->n) {
		size_t k = s->n - s->pos;
		if (k > want)
			k = want;
		memcpy(buf, s->p + s->pos, k);
		s->pos += k;
		*got = k;
		return ERR_OK;
	}
	return s->next->read(s->next->ctx, buf, want, got);
}

static enum err prefix_read_at(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct prefix_src *s = ctx;
	return s->next->read_at(s->next->ctx, off, buf, n);
}

static enum err prefix_skip(void *ctx, uint64_t n)
{
	struct prefix_src *s = ctx;
	size_t k = s->n - s->pos;

	if (k > n)
		k = (size_t)n;
	s->pos += k;
	n -= k;
	if (n == 0)
		return ERR_OK;
	return s->next->skip(s->next->ctx, n);
}

static void prefix_init(struct src *out, struct prefix_src *ps, const uint8_t *p, size_t n, struct src *next)
{
	ps->p = p;
	ps->n = n;
	ps->pos = 0;
	ps->next = next;
	out->read = prefix_read;
	out->read_at = next->read_at ? prefix_read_at : NULL;
	out->skip = next->skip ? prefix_skip : NULL;
	out->close = NULL;
	out->size = next->size;
	out->ctx = ps;
}

/* Raw inflate (RFC 1951) of whatever the inner source yields. */
struct inflate_src {
	z_stream z;
	struct src *in;
	uint8_t ibuf[16384];
	uint64_t total;
	bool done;
};

static enum err inflate_read(void *ctx, void *buf, size_t want, size_t *got)
{
	struct inflate_src *s = ctx;

	*got = 0;
	if (s->done || want == 0)
		return ERR_OK;
	if (want > (1u << 30))
		want = 1u << 30;
	s->z.next_out = buf;
	s->z.avail_out = (uInt)want;
	while (s->z.avail_out == want) {
		int zr;
		if (s->z.avail_in == 0) {
			size_t n = 0;
			enum err rc = s->in->read(s->in->ctx, s->ibuf, sizeof s->ibuf, &n);
			if (rc != ERR_OK)
				return rc;
			if (n == 0)
				return ERR_PARSE;  /* ends before the deflate stream does */
			s->z.next_in = s->ibuf;
			s->z.avail_in = (uInt)n;
		}
		zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			s->done = true;
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return ERR_PARSE;
	}
	*got = want - s->z.avail_out;
	s->total += *got;
	if (s->total > DCM_MAX_INFLATED)
		return ERR_LIMIT;
	return ERR_OK;
}

/* ---- the tree ---- */

static void *ds_alloc(struct dcm_file *f, size_t n) { return arena_alloc(&f->arena, n); }

static enum err ds_grow(struct dcm_ds *ds)
{
	uint32_t ncap = ds->cap ? ds->cap * 2 : 16;
	struct dcm_elem *ne;

	if (ds->cap >= DCM_MAX_ELEMENTS)
		return ERR_LIMIT;
	ne = ds_alloc(ds->file, (size_t)ncap * sizeof *ne);
	if (ne == NULL)
		return ERR_NOMEM;
	if (ds->n)
		memcpy(ne, ds->e, (size_t)ds->n * sizeof *ne);
	ds->e = ne;
	ds->cap = ncap;
	return ERR_OK;
}

/* Append at the end (as read). */
static enum err ds_append(struct dcm_ds *ds, uint32_t tag, struct dcm_elem **out)
{
	struct dcm_elem *e;
	enum err rc;

	if (ds->n == ds->cap) {
		rc = ds_grow(ds);
		if (rc != ERR_OK)
			return rc;
	}
	if (ds->n > 0 && ds->e[ds->n - 1].tag >= tag)
		ds->unsorted = true;
	e = &ds->e[ds->n++];
	memset(e, 0, sizeof *e);
	e->tag = tag;
	*out = e;
	return ERR_OK;
}

static enum err seq_new(struct dcm_file *f, struct dcm_seq **out)
{
	struct dcm_seq *s = arena_zalloc(&f->arena, sizeof *s);

	if (s == NULL)
		return ERR_NOMEM;
	*out = s;
	return ERR_OK;
}

static enum err seq_add_item(struct dcm_file *f, struct dcm_ds *parent, struct dcm_seq *s, struct dcm_ds **out)
{
	struct dcm_ds *item;

	if (s->n == s->cap) {
		uint32_t ncap = s->cap ? s->cap * 2 : 4;
		struct dcm_ds **ni;
		if (s->cap >= DCM_MAX_ITEMS)
			return ERR_LIMIT;
		ni = ds_alloc(f, (size_t)ncap * sizeof *ni);
		if (ni == NULL)
			return ERR_NOMEM;
		if (s->n)
			memcpy(ni, s->items, (size_t)s->n * sizeof *ni);
		s->items = ni;
		s->cap = ncap;
	}
	item = arena_zalloc(&f->arena, sizeof *item);
	if (item == NULL)
		return ERR_NOMEM;
	item->file = f;
	item->parent = parent;
	s->items[s->n++] = item;
	*out = item;
	return ERR_OK;
}

static enum err seq_add_frag(struct dcm_file *f, struct dcm_seq *s, struct dcm_frag **out)
{
	if (s->nfrags == s->capfrags) {
		uint32_t ncap = s->capfrags ? s->capfrags * 2 : 8;
		struct dcm_frag *nf;
		if (s->capfrags >= DCM_MAX_FRAGMENTS)
			return ERR_LIMIT;
		nf = ds_alloc(f, (size_t)ncap * sizeof *nf);
		if (nf == NULL)
			return ERR_NOMEM;
		if (s->nfrags)
			memcpy(nf, s->frags, (size_t)s->nfrags * sizeof *nf);
		s->frags = nf;
		s->capfrags = ncap;
	}
	*out = &s->frags[s->nfrags++];
	memset(*out, 0, sizeof **out);
	return ERR_OK;
}

unsigned dcm_swap_size(const struct dcm_file *f, uint32_t tag, uint16_t vr)
{
	uint16_t bits = 0;

	/* native OW pixel data of 32 or 64 bits is swapped by pixel, as
	 * pydicom and DCMTK read it */
	if (tag == TAG_PIXEL_DATA && vr == VR_OW && dcm_ds_get_u16(&f->ds, TAG_BITS_ALLOC, &bits) == ERR_OK &&
	    (bits == 32 || bits == 64))
		return bits / 8;
	return vr_swap_size(vr);
}

void dcm_swap_bytes(uint8_t *v, size_t len, unsigned size)
{
	size_t i;

	if (size < 2)
		return;
	for (i = 0; i + size <= len; i += size) {
		unsigned a = 0, b = size - 1;
		while (a < b) {
			uint8_t t = v[i + a];
			v[i + a] = v[i + b];
			v[i + b] = t;
			a++;
			b--;
		}
	}
}

static enum err set_error(struct dcm_errinfo *ei, enum err rc, uint64_t off, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static enum err set_error(struct dcm_errinfo *ei, enum err rc, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	if (ei != NULL) {
		ei->offset = off;
		ei->inflated = false;
		va_start(ap, fmt);
		vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Load a pending value into the arena, or leave it in the source. */
static enum err take_value(struct dcm_reader *r, struct dcm_file *f, const struct dcm_read_opts *o,
                           uint32_t tag, uint16_t vr, uint32_t len, uint64_t val_off, uint8_t **val,
                           uint16_t *flags, uint64_t *bulk_off, bool big)
{
	uint8_t *v;
	enum err rc;

	*val = NULL;
	if (len == 0)
		return ERR_OK;
	if (o->bulk_threshold && len > o->bulk_threshold && f->bulk_ok && (vr_is_bulk(vr) || vr == VR_NONE)) {
		*flags |= DCM_EF_BULK;
		*bulk_off = val_off;
		return dcm_reader_skip_value(r);
	}
	if (len > DCM_MAX_VALUE_INMEM)
		return set_error(r->ei, ERR_LIMIT, val_off, "value of %u bytes is larger than the in-memory limit", len);
	v = ds_alloc(f, len);
	if (v == NULL)
		return set_error(r->ei, ERR_NOMEM, val_off, "out of memory for a value of %u bytes", len);
	rc = dcm_reader_value(r, v, len);
	if (rc != ERR_OK)
		return rc;
	if (big)
		dcm_swap_bytes(v, len, dcm_swap_size(f, tag, vr));
	*val = v;
	return ERR_OK;
}

struct bframe {
	struct dcm_ds *ds;     /* current data set */
	struct dcm_elem *sq;   /* the sequence or pixel data element being filled */
};

static uint16_t fix_vr(struct dcm_file *f, uint32_t tag, uint16_t vr)
{
	const struct dict_entry *d;
	uint16_t v = 0;

	if (vr != VR_US && vr != VR_OW)
		return vr;
	d = dict_lookup(tag);
	if (d == NULL)
		return vr;
	if (d->amb == VR_AMB_US_SS) {
		if (dcm_ds_get_u16(&f->ds, TAG_PIXEL_REPR, &v) == ERR_OK && v == 1)
			return VR_SS;
		return VR_US;
	}
	/* Pixel Data and other "OB or OW" stay OW: PS3.5 A.1 */
	return vr;
}

/* For a data set read out of tag order: a stable sorted index, so lookups
 * stay logarithmic (a hostile file of 10^5 unsorted elements must not make
 * every lookup linear). */
static int order_cmp(const void *a, const void *b, void *ctx)
{
	const struct dcm_ds *ds = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	uint32_t tx = ds->e[x].tag, ty = ds->e[y].tag;

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return x < y ? -1 : x > y;
}

static void make_order(struct dcm_file *f, struct dcm_ds *ds)
{
	uint32_t i, *ord;

	if (!ds->unsorted || ds->n < 16)
		return;
	ord = arena_alloc(&f->arena, (size_t)ds->n * sizeof *ord);
	if (ord == NULL)
		return;   /* linear search still works */
	for (i = 0; i < ds->n; i++)
		ord[i] = i;
	qsort_r(ord, ds->n, sizeof *ord, order_cmp, ds);
	ds->order = ord;
}

static enum err build(struct dcm_reader *r, struct dcm_file *f, struct dcm_ds *root,
                      const struct dcm_read_opts *o, bool meta_only)
{
	struct bframe stack[2 * DCM_MAX_DEPTH + 4];
	unsigned sp = 0;
	struct dcm_ds *cur = root;
	struct dcm_elem *e;
	struct dcm_ev ev;
	enum err rc;

	for (;;) {
		if (meta_only && sp == 0) {
			const uint8_t *p;
			if (dcm_reader_peek(r, 2, &p) != ERR_OK || load_u16le(p) != 0x0002)
				return ERR_OK;
		}
		rc = dcm_reader_next(r, &ev);
		if (rc != ERR_OK)
			return rc;
		switch (ev.kind) {
		case DCM_EV_EOF:
			make_order(f, root);
			return ERR_OK;
		case DCM_EV_ELEM:
			rc = ds_append(cur, ev.tag, &e);
			if (rc != ERR_OK)
				return set_error(r->ei, rc, ev.off, "too many elements");
			e->vr = ev.vr_implicit ? fix_vr(f, ev.tag, ev.vr) : ev.vr;
			if (ev.vr_implicit)
				e->flags |= DCM_EF_VRFIX;
			e->len = ev.len;
			e->off = ev.off;
			rc = take_value(r, f, o, ev.tag, e->vr, ev.len, ev.val_off, &e->val, &e->flags, &e->bulk_off, ev.big);
			if (rc != ERR_OK)
				return rc;
			break;
		case DCM_EV_SEQ_BEGIN:
		case DCM_EV_FRAGS_BEGIN:
			rc = ds_append(cur, ev.tag, &e);
			if (rc != ERR_OK)
				return set_error(r->ei, rc, ev.off, "too many elements");
			e->vr = ev.vr;
			e->len = ev.len;
			e->off = ev.off;
			if (ev.undef_len)
				e->flags |= DCM_EF_UNDEF;
			if (ev.un_seq)
				e->flags |= DCM_EF_UNSEQ;
			if (ev.vr_implicit)
				e->flags |= DCM_EF_VRFIX;
			if (ev.kind == DCM_EV_FRAGS_BEGIN)
				e->flags |= DCM_EF_ENCAPS;
			rc = seq_new(f, &e->seq);
			if (rc != ERR_OK)
				return rc;
			if (sp >= sizeof stack / sizeof stack[0])
				return set_error(r->ei, ERR_LIMIT, ev.off, "nesting too deep");
			stack[sp].ds = cur;
			stack[sp].sq = e;
			sp++;
			break;
		case DCM_EV_ITEM_BEGIN: {
			struct dcm_ds *item;
			if (sp == 0)
				return ERR_INTERNAL;
			rc = seq_add_item(f, cur, stack[sp - 1].sq->seq, &item);
			if (rc != ERR_OK)
				return set_error(r->ei, rc, ev.off, "too many items");
			if (ev.undef_len)
				item->flags |= DCM_EF_UNDEF;
			if (sp >= sizeof stack / sizeof stack[0])
				return set_error(r->ei, ERR_LIMIT, ev.off, "nesting too deep");
			stack[sp].ds = cur;
			stack[sp].sq = NULL;
			sp++;
			cur = item;
			break;
		}
		case DCM_EV_ITEM_END:
		case DCM_EV_SEQ_END:
		case DCM_EV_FRAGS_END:
			if (sp == 0)
				return ERR_INTERNAL;
			if (ev.kind == DCM_EV_ITEM_END)
				make_order(f, cur);
			sp--;
			cur = stack[sp].ds;
			break;
		case DCM_EV_FRAG: {
			struct dcm_frag *fr;
			if (sp == 0 || stack[sp - 1].sq == NULL)
				return ERR_INTERNAL;
			rc = seq_add_frag(f, stack[sp - 1].sq->seq, &fr);
			if (rc != ERR_OK)
				return set_error(r->ei, rc, ev.off, "too many fragments");
			fr->len = ev.len;
			rc = take_value(r, f, o, ev.tag, VR_OB, ev.len, ev.val_off, &fr->val, &fr->flags, &fr->bulk_off, false);
			if (rc != ERR_OK)
				return rc;
			break;
		}
		}
	}
}

static enum err file_alloc(struct dcm_file **out)
{
	struct dcm_file *f = calloc(1, sizeof *f);

	if (f == NULL)
		return ERR_NOMEM;
	arena_init(&f->arena, 0);
	f->meta.file = f;
	f->ds.file = f;
	*out = f;
	return ERR_OK;
}

enum err dcm_file_new(struct dcm_file **out)
{
	enum err rc = file_alloc(out);

	if (rc == ERR_OK)
		(*out)->ts = DCM_TS_EXPLICIT_LE;
	return rc;
}

void dcm_file_free(struct dcm_file *f)
{
	if (f == NULL)
		return;
	arena_fini(&f->arena);
	free(f);
}

static bool known_vr_bytes(const uint8_t *b)
{
	return b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z' && vr_is_known(VR_CODE(b[0], b[1]));
}

/* A data set whose VR encoding (at its first element) disagrees with its
 * transfer syntax, deflated or not (a big endian one is always explicit):
 * an error when strict, else read as it is, with a warning, and
 * f->vr_mismatch set (the store refuses to keep it under its label). */
static enum err vr_detect(struct dcm_reader *r, const struct dcm_read_opts *o, struct dcm_file *f, bool big,
                          bool *explicit_vr, struct dcm_errinfo *ei)
{
	const uint8_t *p;
	bool looks_explicit;

	if (dcm_reader_peek(r, 8, &p) != ERR_OK)
		return ERR_OK;
	looks_explicit = known_vr_bytes(p + 4);
	if (looks_explicit == *explicit_vr || (big && !looks_explicit))
		return ERR_OK;
	if (o->strict)
		return set_error(ei, ERR_PARSE, r->pos, "data set is %s VR although the transfer syntax says %s",
		                 looks_explicit ? "explicit" : "implicit", *explicit_vr ? "explicit" : "implicit");
	if (r->nwarn++ == 0) {
		r->warn.offset = r->pos;
		snprintf(r->warn.msg, sizeof r->warn.msg, "data set is %s VR although the transfer syntax says %s",
		         looks_explicit ? "explicit" : "implicit", *explicit_vr ? "explicit" : "implicit");
	}
	*explicit_vr = looks_explicit;
	f->vr_mismatch = true;
	return ERR_OK;
}

/* Guess the encoding of a bare data set from its first element. */
static void guess_encoding(const uint8_t *b, size_t n, bool *explicit_vr, bool *big)
{
	uint16_t gle, gbe;

	*explicit_vr = true;
	*big = false;
	if (n < 8)
		return;
	gle = load_u16le(b);
	gbe = load_u16be(b);
	*big = gle > 0x00FF && gbe <= 0x00FF;
	*explicit_vr = known_vr_bytes(b + 4);
}

static void copy_warnings(struct dcm_file *f, const struct dcm_reader *r)
{
	if (r->nwarn && f->nwarn == 0)
		f->warn = r->warn;
	f->nwarn += r->nwarn;
}

enum err dcm_file_read(struct src *src, const struct dcm_read_opts *o, struct dcm_file **out,
                       struct dcm_errinfo *ei)
{
	struct dcm_read_opts dflt = { 0 };
	struct dcm_file *f = NULL;
	struct dcm_reader r, r2;
	struct prefix_src ps, ps2;
	struct src pre, pre2, isrc;
	struct inflate_src *inf = NULL;
	uint8_t head[132];
	size_t got = 0;
	bool explicit_vr = true, big = false, have_r2 = false, have_r = false;
	const uint8_t *p;
	enum err rc;

	if (o == NULL)
		o = &dflt;
	if (ei != NULL)
		memset(ei, 0, sizeof *ei);
	rc = file_alloc(&f);
	if (rc != ERR_OK)
		return rc;
	f->src = src;
	f->bulk_ok = src->read_at != NULL;

	/* preamble and magic */
	while (got < sizeof head && !o->no_meta) {
		size_t n = 0;
		rc = src->read(src->ctx, head + got, sizeof head - got, &n);
		if (rc != ERR_OK) {
			set_error(ei, rc, got, "read error");
			goto out;
		}
		if (n == 0)
			break;
		got += n;
	}
	if (got == sizeof head && memcmp(head + 128, "DICM", 4) == 0) {
		memcpy(f->preamble, head, 128);
		f->has_preamble = true;
		prefix_init(&pre, &ps, head, 0, src);
		rc = dcm_reader_init(&r, &pre, 132, true, false, ei);
	} else {
		prefix_init(&pre, &ps, head, got, src);
		rc = dcm_reader_init(&r, &pre, 0, true, false, ei);
	}
	if (rc != ERR_OK)
		goto out;
	have_r = true;
	r.strict = o->strict;

	/* meta information group, explicit VR little endian */
	rc = dcm_reader_peek(&r, 8, &p);
	if (rc != ERR_OK) {
		rc = set_error(ei, ERR_PARSE, r.pos, got == 0 ? "empty file" : "too short to be DICOM (%llu bytes)",
		               (unsigned long long)(r.pos + (got > r.pos ? got - r.pos : 0)));
		goto out;
	}
	if (!o->no_meta && load_u16le(p) == 0x0002) {
		r.limit = UINT64_MAX;
		r.explicit_vr = known_vr_bytes(p + 4);
		/* the meta group ends where its group length says, if it has one */
		if (load_u16le(p + 2) == 0 && p[4] == 'U' && p[5] == 'L' && load_u16le(p + 6) == 4 &&
		    dcm_reader_peek(&r, 12, &p) == ERR_OK)
			r.limit = r.pos + 12 + load_u32le(p + 8);
		rc = build(&r, f, &f->meta, &dflt, true);
		r.limit = UINT64_MAX;
		if (rc != ERR_OK)
			goto out;
		if (r.pos > DCM_MAX_META_LEN) {
			rc = set_error(ei, ERR_LIMIT, r.pos, "file meta information longer than %u bytes", DCM_MAX_META_LEN);
			goto out;
		}
		f->has_meta = true;
		{
			size_t len = 0;
			const char *uid = dcm_ds_str(&f->meta, TAG_TS_UID, &len);
			if (uid == NULL) {
				/* guess from the data set's first element, as DCMTK and pydicom do */
				if (o->strict) {
					rc = set_error(ei, ERR_PARSE, r.pos, "file meta information has no Transfer Syntax UID (0002,0010)");
					goto out;
				}
				if (r.nwarn++ == 0) {
					r.warn.offset = r.pos;
					snprintf(r.warn.msg, sizeof r.warn.msg, "file meta information has no Transfer Syntax UID (0002,0010): guessed from the data");
				}
				if (dcm_reader_peek(&r, 8, &p) != ERR_OK) {
					rc = set_error(ei, ERR_PARSE, r.pos, "file meta information has no Transfer Syntax UID (0002,0010)");
					goto out;
				}
				guess_encoding(p, 8, &explicit_vr, &big);
				f->ts = explicit_vr ? (big ? DCM_TS_EXPLICIT_BE : DCM_TS_EXPLICIT_LE) : DCM_TS_IMPLICIT_LE;
				len = strlen(f->ts->uid);
				uid = f->ts->uid;
			}
			if (len > 64) {
				rc = set_error(ei, ERR_PARSE, r.pos, "Transfer Syntax UID longer than 64 characters");
				goto out;
			}
			memcpy(f->ts_uid, uid, len);
			f->ts_uid[len] = 0;
			f->ts = dict_ts(uid, len);
			if (f->ts != NULL && f->ts->encapsulated == false && f->ts->explicit_vr == false &&
			    strcmp(f->ts->uid, DCM_TS_IMPLICIT_LE->uid) != 0)
				f->ts = DCM_TS_IMPLICIT_LE;
			if (f->ts == NULL) {
				if (o->strict) {
					rc = set_error(ei, ERR_UNSUPPORTED, r.pos, "unknown transfer syntax %s", f->ts_uid);
					goto out;
				}
				if (r.nwarn++ == 0) {
					r.warn.offset = r.pos;
					snprintf(r.warn.msg, sizeof r.warn.msg, "unknown transfer syntax %s: read as explicit VR little endian", f->ts_uid);
				}
				f->ts = DCM_TS_EXPLICIT_LE;
			}
		}
	} else if (o->ts != NULL) {
		f->ts = o->ts;
	} else {
		guess_encoding(p, 8, &explicit_vr, &big);
		f->ts = explicit_vr ? (big ? DCM_TS_EXPLICIT_BE : DCM_TS_EXPLICIT_LE) : DCM_TS_IMPLICIT_LE;
	}
	f->ds_off = r.pos;
	explicit_vr = f->ts->explicit_vr;
	big = f->ts->big_endian;

	if (f->ts->deflated) {
		/* the rest of the reader's buffer, then the source, inflated */
		inf = calloc(1, sizeof *inf);
		if (inf == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
		if (inflateInit2(&inf->z, -MAX_WBITS) != Z_OK) {
			free(inf);
			inf = NULL;
			rc = ERR_NOMEM;
			goto out;
		}
		prefix_init(&pre2, &ps2, r.buf + r.start, r.end - r.start, &pre);
		pre2.read_at = NULL;
		inf->in = &pre2;
		isrc.read = inflate_read;
		isrc.read_at = NULL;
		isrc.skip = NULL;
		isrc.close = NULL;
		isrc.size = -1;
		isrc.ctx = inf;
		f->bulk_ok = false;
		rc = dcm_reader_init(&r2, &isrc, 0, true, false, ei);
		if (rc != ERR_OK)
			goto out;
		have_r2 = true;
		r2.inflated = true;
		r2.strict = o->strict;
		r2.stop_tag = o->stop_tag;
		rc = vr_detect(&r2, o, f, false, &explicit_vr, ei);
		if (rc != ERR_OK)
			goto out;
		r2.explicit_vr = explicit_vr;
		r2.big_endian = false;
		rc = build(&r2, f, &f->ds, o, false);
		copy_warnings(f, &r2);
		if (rc != ERR_OK)
			goto out;
	} else {
		rc = vr_detect(&r, o, f, big, &explicit_vr, ei);
		if (rc != ERR_OK)
			goto out;
		r.explicit_vr = explicit_vr;
		r.big_endian = big;
		r.stop_tag = o->stop_tag;
		rc = build(&r, f, &f->ds, o, false);
		if (rc != ERR_OK)
			goto out;
	}
	f->nelems = r.nelems + (have_r2 ? r2.nelems : 0);
	rc = ERR_OK;
out:
	if (have_r) {
		copy_warnings(f, &r);
		dcm_reader_fini(&r);
	}
	if (have_r2)
		dcm_reader_fini(&r2);
	if (inf != NULL) {
		inflateEnd(&inf->z);
		free(inf);
	}
	if (rc != ERR_OK) {
		if (ei != NULL && ei->msg[0] == 0)
			set_error(ei, rc, 0, "%s", err_str(rc));
		dcm_file_free(f);
		return rc;
	}
	*out = f;
	return ERR_OK;
}

/* ---- access ---- */

bool dcm_ds_has_group(const struct dcm_ds *ds, uint16_t g)
{
	uint32_t i;

	for (i = 0; i < ds->n; i++)
		if (ds->e[i].tag >> 16 == g)
			return true;
	return false;
}

struct dcm_elem *dcm_ds_find(const struct dcm_ds *ds, uint32_t tag)
{
	uint32_t lo = 0, hi = ds->n, i;

	if (ds->unsorted && ds->order != NULL) {
		/* first match in tag order, as the linear search finds */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (ds->e[ds->order[mid]].tag < tag)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < ds->n && ds->e[ds->order[lo]].tag == tag)
			return &ds->e[ds->order[lo]];
		return NULL;
	}
	if (ds->unsorted) {
		for (i = 0; i < ds->n; i++)
			if (ds->e[i].tag == tag)
				return &ds->e[i];
		return NULL;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (ds->e[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ds->n && ds->e[lo].tag == tag)
		return &ds->e[lo];
	return NULL;
}

const char *dcm_ds_str(const struct dcm_ds *ds, uint32_t tag, size_t *len)
{
	const struct dcm_elem *e = dcm_ds_find(ds, tag);
	size_t n;

	if (e == NULL || (e->flags & (DCM_EF_BULK | DCM_EF_ENCAPS)) || e->seq != NULL)
		return NULL;
	n = e->len;
	if (e->val == NULL)
		n = 0;
	while (n > 0 && (e->val[n - 1] == ' ' || e->val[n - 1] == 0))
		n--;
	*len = n;
	return e->val ? (const char *)e->val : "";
}

enum err dcm_ds_get_cstr(const struct dcm_ds *ds, uint32_t tag, char *buf, size_t cap)
{
	size_t n = 0;
	const char *s = dcm_ds_str(ds, tag, &n);

	if (s == NULL)
		return ERR_NOTFOUND;
	if (cap == 0 || n >= cap || memchr(s, 0, n) != NULL)
		return ERR_LIMIT;
	memcpy(buf, s, n);
	buf[n] = 0;
	return ERR_OK;
}

enum err dcm_ds_get_u16(const struct dcm_ds *ds, uint32_t tag, uint16_t *v)
{
	const struct dcm_elem *e = dcm_ds_find(ds, tag);

	if (e == NULL || e->val == NULL || e->len < 2 || (e->vr != VR_US && e->vr != VR_SS))
		return ERR_NOTFOUND;
	*v = load_u16le(e->val);
	return ERR_OK;
}

/* Insertion point keeping ascending order (data sets we build are sorted). */
static enum err ds_insert(struct dcm_ds *ds, uint32_t tag, struct dcm_elem **out)
{
	uint32_t i;
	enum err rc;

	if (ds->n == ds->cap) {
		rc = ds_grow(ds);
		if (rc != ERR_OK)
			return rc;
	}
	i = ds->n;
	if (!ds->unsorted)
		while (i > 0 && ds->e[i - 1].tag > tag)
			i--;
	ds->order = NULL;
	memmove(&ds->e[i + 1], &ds->e[i], (size_t)(ds->n - i) * sizeof *ds->e);
	ds->n++;
	memset(&ds->e[i], 0, sizeof ds->e[i]);
	ds->e[i].tag = tag;
	*out = &ds->e[i];
	return ERR_OK;
}

enum err dcm_elem_set(struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr, const void *val, size_t len)
{
	size_t plen = len + (len & 1);
	uint8_t *v = NULL;

	if (len > DCM_MAX_VALUE_INMEM)
		return ERR_LIMIT;
	if (plen) {
		v = arena_alloc(&ds->file->arena, plen);
		if (v == NULL)
			return ERR_NOMEM;
		memcpy(v, val, len);
		if (plen != len)
			v[len] = vr_pad(vr);
	}
	e->vr = vr;
	e->len = (uint32_t)plen;
	e->val = v;
	e->flags = 0;
	e->bulk_off = 0;
	e->seq = NULL;
	return ERR_OK;
}

enum err dcm_ds_set(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const void *val, size_t len)
{
	struct dcm_elem *e = dcm_ds_find(ds, tag);
	bool fresh = e == NULL;
	enum err rc;

	if (fresh) {
		rc = ds_insert(ds, tag, &e);
		if (rc != ERR_OK)
			return rc;
	}
	e->off = 0;
	rc = dcm_elem_set(ds, e, vr, val, len);
	if (rc != ERR_OK && fresh)
		dcm_ds_remove(ds, tag);   /* no half-made element left behind */
	return rc;
}

enum err dcm_ds_set_str(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *s)
{
	return dcm_ds_set(ds, tag, vr, s, strlen(s));
}

enum err dcm_ds_set_seq(struct dcm_ds *ds, uint32_t tag, struct dcm_elem **out)
{
	struct dcm_elem *e = dcm_ds_find(ds, tag);
	enum err rc;

	if (e == NULL) {
		rc = ds_insert(ds, tag, &e);
		if (rc != ERR_OK)
			return rc;
	}
	memset(e, 0, sizeof *e);
	e->tag = tag;
	e->vr = VR_SQ;
	e->len = DCM_UNDEF;
	e->flags = DCM_EF_UNDEF;
	rc = seq_new(ds->file, &e->seq);
	if (rc != ERR_OK)
		return rc;
	*out = e;
	return ERR_OK;
}

enum err dcm_seq_add_item(struct dcm_ds *ds, struct dcm_elem *sq, struct dcm_ds **out)
{
	enum err rc;

	if (sq->seq == NULL)
		return ERR_INTERNAL;
	rc = seq_add_item(ds->file, ds, sq->seq, out);
	if (rc == ERR_OK)
		(*out)->flags |= DCM_EF_UNDEF;
	return rc;
}

/* dcm_ds_copy_elem and dcm_ds_copy_elem_native: encapsulated elements are
 * refused, or (budget not NULL) left out while the values loaded are
 * counted against *budget. */
static enum err copy_elem(struct dcm_ds *ds, const struct dcm_file *sf, const struct dcm_elem *e, unsigned depth,
                          uint64_t *budget)
{
	const uint8_t *val = NULL;
	bool owned = false;
	uint32_t i, j;
	enum err rc;

	if (depth > DCM_MAX_DEPTH)
		return ERR_LIMIT;
	if (e->flags & DCM_EF_ENCAPS)
		return budget != NULL ? ERR_OK : ERR_UNSUPPORTED;
	if (e->seq != NULL) {
		struct dcm_elem *sq;
		rc = dcm_ds_set_seq(ds, e->tag, &sq);
		for (i = 0; rc == ERR_OK && i < e->seq->n; i++) {
			const struct dcm_ds *from = e->seq->items[i];
			struct dcm_ds *item;
			rc = dcm_seq_add_item(ds, sq, &item);
			for (j = 0; rc == ERR_OK && j < from->n; j++)
				rc = copy_elem(item, sf, &from->e[j], depth + 1, budget);
		}
		return rc;
	}
	if (budget != NULL) {
		if (e->len > *budget)
			return ERR_LIMIT;
		*budget -= e->len;
	}
	if (e->len > 0) {
		rc = dcm_elem_value(sf, e, &val, &owned);
		if (rc != ERR_OK)
			return rc;
	}
	rc = dcm_ds_set(ds, e->tag, e->vr, val, e->len);
	if (owned)
		free((void *)val);
	return rc;
}

enum err dcm_ds_copy_elem(struct dcm_ds *ds, const struct dcm_file *sf, const struct dcm_elem *e, unsigned depth)
{
	return copy_elem(ds, sf, e, depth, NULL);
}

enum err dcm_ds_copy_elem_native(struct dcm_ds *ds, const struct dcm_file *sf, const struct dcm_elem *e,
                                 uint64_t *budget)
{
	return copy_elem(ds, sf, e, 0, budget);
}

enum err dcm_elem_add_frag(struct dcm_ds *ds, struct dcm_elem *e, const void *val, size_t len)
{
	struct dcm_frag *fr;
	enum err rc;

	if (len > DCM_MAX_VALUE_INMEM)
		return ERR_LIMIT;
	if (e->seq == NULL) {
		rc = seq_new(ds->file, &e->seq);
		if (rc != ERR_OK)
			return rc;
		e->flags |= DCM_EF_ENCAPS | DCM_EF_UNDEF;
		e->len = DCM_UNDEF;
	}
	rc = seq_add_frag(ds->file, e->seq, &fr);
	if (rc != ERR_OK)
		return rc;
	fr->len = (uint32_t)(len + (len & 1));
	if (fr->len) {
		fr->val = arena_alloc(&ds->file->arena, fr->len);
		if (fr->val == NULL)
			return ERR_NOMEM;
		memcpy(fr->val, val, len);
		if (len & 1)
			fr->val[len] = 0;
	}
	return ERR_OK;
}

void dcm_ds_remove(struct dcm_ds *ds, uint32_t tag)
{
	struct dcm_elem *e = dcm_ds_find(ds, tag);
	size_t i;

	if (e == NULL)
		return;
	i = (size_t)(e - ds->e);
	memmove(&ds->e[i], &ds->e[i + 1], (ds->n - i - 1) * sizeof *ds->e);
	ds->n--;
	ds->order = NULL;
}

enum err dcm_elem_value(const struct dcm_file *f, const struct dcm_elem *e, const uint8_t **val, bool *owned)
{
	uint8_t *v;
	enum err rc;

	*owned = false;
	if (!(e->flags & DCM_EF_BULK)) {
		*val = e->val;
		return ERR_OK;
	}
	if (!f->bulk_ok || f->src == NULL || f->src->read_at == NULL)
		return ERR_UNSUPPORTED;
	if (e->len > DCM_MAX_VALUE_INMEM)
		return ERR_LIMIT;
	v = malloc(e->len ? e->len : 1);
	if (v == NULL)
		return ERR_NOMEM;
	rc = f->src->read_at(f->src->ctx, e->bulk_off, v, e->len);
	if (rc != ERR_OK) {
		free(v);
		return rc;
	}
	if (f->ts != NULL && f->ts->big_endian)
		dcm_swap_bytes(v, e->len, dcm_swap_size(f, e->tag, e->vr));
	*val = v;
	*owned = true;
	return ERR_OK;
}

enum err dcm_bulk_copy(const struct dcm_file *f, uint64_t off, uint32_t len, const uint8_t *val, struct sink *k)
{
	uint8_t *buf;
	enum err rc = ERR_OK;

	if (val != NULL || len == 0)
		return sink_write(k, val, len);
	if (!f->bulk_ok || f->src == NULL || f->src->read_at == NULL)
		return ERR_UNSUPPORTED;
	if (src_file_fd(f->src) >= 0 && sink_fd_of(k) >= 0)   /* file to file: in the kernel */
		return fd_copy_range(src_file_fd(f->src), off, len, sink_fd_of(k));
	buf = malloc(DCM_READ_CHUNK);
	if (buf == NULL)
		return ERR_NOMEM;
	while (len > 0) {
		uint32_t n = len > DCM_READ_CHUNK ? DCM_READ_CHUNK : len;
		rc = f->src->read_at(f->src->ctx, off, buf, n);
		if (rc != ERR_OK)
			break;
		rc = sink_write(k, buf, n);
		if (rc != ERR_OK)
			break;
		off += n;
		len -= n;
	}
	free(buf);
	return rc;
}

/* Bytes that can be shown as a value of string VR vr. */
static bool un_text_ok(uint16_t vr, const uint8_t *v, uint32_t len)
{
	uint32_t i, n = len;

	if (v == NULL)
		return true;
	while (n > 0 && (v[n - 1] == 0 || v[n - 1] == ' '))
		n--;
	for (i = 0; i < n; i++) {
		uint8_t c = v[i];
		if (vr == VR_DS || vr == VR_IS) {
			if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E' ||
			      c == ' ' || c == '\\'))
				return false;
		} else if (c < 0x20 && c != 0x1b && c != '\r' && c != '\n' && c != '\f' && c != '\t') {
			return false;
		} else if (c == 0x7f) {
			return false;
		}
	}
	return true;
}

uint16_t dcm_elem_effective_vr(const struct dcm_ds *ds, const struct dcm_elem *e)
{
	uint16_t vr;

	if (e->vr != VR_UN || e->seq != NULL || (e->flags & DCM_EF_BULK))
		return e->vr;
	vr = dict_implicit_vr(e->tag);
	if (vr == VR_UN || vr == VR_SQ)
		return VR_UN;
	if (vr == VR_US || vr == VR_OW) {
		/* resolve "US or SS" / "OB or OW" as for implicit VR */
		const struct dict_entry *d = dict_lookup(e->tag);
		uint16_t v = 0;
		if (d != NULL && d->amb == VR_AMB_US_SS) {
			const struct dcm_ds *root = ds;
			while (root->parent != NULL)
				root = root->parent;
			if (dcm_ds_get_u16(root, TAG_PIXEL_REPR, &v) == ERR_OK && v == 1)
				return VR_SS;
		}
	}
	if (vr_fixed_size(vr) && e->len % vr_fixed_size(vr) != 0)
		return VR_UN;
	if (vr_is_string(vr) && !un_text_ok(vr, e->val, e->len))
		return VR_UN;   /* binary bytes: showing them as text would lose them */
	if (!vr_has_long_length(vr) && e->len > 0xFFFF)
		return VR_UN;
	return vr;
}

void dcm_ds_charset(const struct dcm_ds *ds, struct dcm_charset *cs)
{
	for (; ds != NULL; ds = ds->parent) {
		const struct dcm_elem *e = dcm_ds_find(ds, TAG_SPECIFIC_CHARSET);
		if (e != NULL) {
			if (e->val && charset_parse(e->val, e->len, cs) == ERR_OK)
				return;
			break;
		}
	}
	memset(cs, 0, sizeof *cs);
}
