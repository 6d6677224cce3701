/* writer.c: encodes data sets and Part 10 files (PS3.10 section 7): the
 * meta group, then the data set in its own transfer syntax or another native
 * one. Sequence and item lengths are kept defined or undefined as read, so
 * an unchanged explicit VR little endian file is written back byte for
 * byte. Layer: dicom. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "dicomvault/dataset.h"
#include "dicomvault/frame.h"
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"

#define OUTBUF (64u * 1024)

struct enc {
	bool explicit_vr;
	bool big;
	bool drop_gl;   /* drop group lengths (they would be wrong) */
	bool ds_top;    /* top level of a Part 10 data set: no group 0002 */
};

struct out {
	struct sink *k;
	const struct dcm_file *f;
	uint8_t *buf;
	size_t n;
	enum err err;
};

static void flush(struct out *o)
{
	if (o->err == ERR_OK && o->n > 0)
		o->err = sink_write(o->k, o->buf, o->n);
	o->n = 0;
}

static void put(struct out *o, const void *p, size_t n)
{
	if (o->err != ERR_OK)
		return;
	if (n > OUTBUF - o->n) {
		flush(o);
		if (n >= OUTBUF) {
			if (o->err == ERR_OK)
				o->err = sink_write(o->k, p, n);
			return;
		}
	}
	memcpy(o->buf + o->n, p, n);
	o->n += n;
}

static void put16(struct out *o, uint16_t v, bool big)
{
	uint8_t b[2];

	if (big)
		store_u16be(b, v);
	else
		store_u16le(b, v);
	put(o, b, 2);
}

static void put32(struct out *o, uint32_t v, bool big)
{
	uint8_t b[4];

	if (big)
		store_u32be(b, v);
	else
		store_u32le(b, v);
	put(o, b, 4);
}

static void put_tag(struct out *o, uint32_t tag, bool big)
{
	put16(o, TAG_GROUP(tag), big);
	put16(o, TAG_ELEM(tag), big);
}

static bool skip_elem(const struct dcm_elem *e, const struct enc *c)
{
	if (c->ds_top && TAG_GROUP(e->tag) == 0x0002)
		return true;   /* after the meta group a reader would take it for meta */
	return c->drop_gl && TAG_ELEM(e->tag) == 0 && TAG_GROUP(e->tag) != 0x0002;
}

/* The VR to write: explicit short-length VRs cannot carry > 64 KiB. */
static uint16_t out_vr(const struct dcm_elem *e)
{
	if (e->vr == VR_NONE || !vr_is_known(e->vr))
		return VR_UN;
	if (!vr_has_long_length(e->vr) && e->seq == NULL && e->len > 0xFFFF)
		return VR_UN;
	return e->vr;
}

static uint64_t ds_size(const struct dcm_ds *ds, const struct enc *c);

/* In implicit VR a reader knows a sequence by its dictionary VR; one on a tag
 * the dictionary does not call SQ is written with undefined length, whose
 * first item tag shows what it is. */
static bool seq_needs_undef(const struct dcm_elem *e, const struct enc *c)
{
	uint16_t dv;

	if (c->explicit_vr || (e->flags & DCM_EF_ENCAPS) || e->seq == NULL)
		return false;
	dv = dict_implicit_vr(e->tag);
	return dv != VR_SQ;
}

static uint64_t hdr_size(const struct dcm_elem *e, const struct enc *c)
{
	if (!c->explicit_vr)
		return 8;
	return vr_has_long_length(out_vr(e)) ? 12 : 8;
}

static uint64_t item_size(const struct dcm_ds *item, const struct enc *c)
{
	return 8 + ds_size(item, c) + ((item->flags & DCM_EF_UNDEF) ? 8 : 0);
}

static uint64_t value_size(const struct dcm_elem *e, const struct enc *c)
{
	uint64_t n = 0;
	uint32_t i;

	if (e->flags & DCM_EF_ENCAPS) {
		for (i = 0; i < e->seq->nfrags; i++)
			n += 8 + (uint64_t)e->seq->frags[i].len;
		return n + 8;
	}
	if (e->seq != NULL) {
		struct enc inner = *c;
		inner.ds_top = false;
		if (e->flags & DCM_EF_UNSEQ) {
			inner.explicit_vr = false;
			inner.big = false;
		}
		for (i = 0; i < e->seq->n; i++)
			n += item_size(e->seq->items[i], &inner);
		return n + (((e->flags & DCM_EF_UNDEF) || seq_needs_undef(e, c)) ? 8 : 0);
	}
	return e->len;
}

static uint64_t ds_size(const struct dcm_ds *ds, const struct enc *c)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < ds->n; i++)
		if (!skip_elem(&ds->e[i], c))
			n += hdr_size(&ds->e[i], c) + value_size(&ds->e[i], c);
	return n;
}

static void put_value(struct out *o, const struct dcm_elem *e, const struct enc *c)
{
	uint8_t tmp[4096];
	/* in-memory values are little endian; bulk values are as in the source */
	bool src_big = (e->flags & DCM_EF_BULK) && o->f->ts != NULL && o->f->ts->big_endian;
	unsigned sw = c->big != src_big ? dcm_swap_size(o->f, e->tag, e->vr) : 0;

	if (e->len == 0)
		return;
	if (sw < 2) {
		if (e->flags & DCM_EF_BULK) {
			flush(o);
			if (o->err == ERR_OK)
				o->err = dcm_bulk_copy(o->f, e->bulk_off, e->len, NULL, o->k);
		} else {
			put(o, e->val, e->len);
		}
		return;
	}
	/* one of source and output is big endian: swap each number. A bulk
	 * value is read a piece at a time, little endian (dcm_elem_read_at
	 * swaps a big endian source), and swapped again for big endian
	 * output, never held whole in memory. */
	if (e->flags & DCM_EF_BULK) {
		uint32_t pos = 0;
		size_t piece = sizeof tmp - sizeof tmp % 8;   /* whole numbers of any size */
		while (o->err == ERR_OK && pos < e->len) {
			size_t n = e->len - pos < piece ? e->len - pos : piece;
			o->err = dcm_elem_read_at(o->f, e, pos, tmp, n);
			if (o->err != ERR_OK)
				break;
			if (c->big)
				dcm_swap_bytes(tmp, n, sw);
			put(o, tmp, n);
			pos += (uint32_t)n;
		}
		return;
	}
	{
		uint32_t i = 0;
		while (i < e->len) {
			size_t n = e->len - i > sizeof tmp ? sizeof tmp : e->len - i;
			size_t j, b;
			n -= n % sw;
			if (n == 0) {
				put(o, e->val + i, e->len - i);
				break;
			}
			for (j = 0; j < n; j += sw)
				for (b = 0; b < sw; b++)
					tmp[j + b] = e->val[i + j + sw - 1 - b];
			put(o, tmp, n);
			i += (uint32_t)n;
		}
	}
}

static void put_ds(struct out *o, const struct dcm_ds *ds, const struct enc *c);

/* Whether implicit VR, where a reader takes the VR from the dictionary,
 * carries e so that it reads back as it is. */
static bool implicit_ok(const struct dcm_elem *e)
{
	uint16_t d = dict_implicit_vr(e->tag);

	if (e->flags & DCM_EF_ENCAPS)
		return e->tag == TAG_PIXEL_DATA || d == VR_OB || d == VR_OW;
	if (e->seq != NULL)
		return e->tag != TAG_PIXEL_DATA && d != VR_OB && d != VR_OW;
	return d != VR_SQ || e->len == 0;
}

static void put_elem(struct out *o, const struct dcm_elem *e, const struct enc *c)
{
	uint16_t vr = out_vr(e);
	uint64_t vlen = value_size(e, c);
	uint32_t len;
	uint32_t i;

	if (!c->explicit_vr && !implicit_ok(e)) {
		o->err = ERR_UNSUPPORTED;
		return;
	}
	if (e->seq != NULL && ((e->flags & DCM_EF_UNDEF) || seq_needs_undef(e, c)))
		len = DCM_UNDEF;
	else if (vlen >= DCM_UNDEF) {
		o->err = ERR_LIMIT;
		return;
	} else {
		len = (uint32_t)vlen;
	}
	put_tag(o, e->tag, c->big);
	if (c->explicit_vr) {
		uint8_t v[2] = { (uint8_t)(vr >> 8), (uint8_t)vr };
		put(o, v, 2);
		if (vr_has_long_length(vr)) {
			put16(o, 0, c->big);
			put32(o, len, c->big);
		} else {
			put16(o, (uint16_t)len, c->big);
		}
	} else {
		put32(o, len, c->big);
	}
	if (e->flags & DCM_EF_ENCAPS) {
		for (i = 0; i < e->seq->nfrags; i++) {
			const struct dcm_frag *fr = &e->seq->frags[i];
			put_tag(o, TAG_ITEM, c->big);
			put32(o, fr->len, c->big);
			if (fr->flags & DCM_EF_BULK) {
				flush(o);
				if (o->err == ERR_OK)
					o->err = dcm_bulk_copy(o->f, fr->bulk_off, fr->len, NULL, o->k);
			} else if (fr->len) {
				put(o, fr->val, fr->len);
			}
		}
		put_tag(o, TAG_SEQ_DELIM, c->big);
		put32(o, 0, c->big);
		return;
	}
	if (e->seq != NULL) {
		struct enc inner = *c;
		inner.ds_top = false;
		if (e->flags & DCM_EF_UNSEQ) {
			inner.explicit_vr = false;
			inner.big = false;
		}
		for (i = 0; i < e->seq->n; i++) {
			const struct dcm_ds *item = e->seq->items[i];
			uint64_t isz = ds_size(item, &inner);
			put_tag(o, TAG_ITEM, inner.big);
			if (item->flags & DCM_EF_UNDEF) {
				put32(o, DCM_UNDEF, inner.big);
			} else if (isz >= DCM_UNDEF) {
				o->err = ERR_LIMIT;
				return;
			} else {
				put32(o, (uint32_t)isz, inner.big);
			}
			put_ds(o, item, &inner);
			if (item->flags & DCM_EF_UNDEF) {
				put_tag(o, TAG_ITEM_DELIM, inner.big);
				put32(o, 0, inner.big);
			}
		}
		if ((e->flags & DCM_EF_UNDEF) || seq_needs_undef(e, c)) {
			/* a UN sequence's delimiter belongs to its implicit LE value */
			put_tag(o, TAG_SEQ_DELIM, inner.big);
			put32(o, 0, inner.big);
		}
		return;
	}
	put_value(o, e, c);
}

static void put_ds(struct out *o, const struct dcm_ds *ds, const struct enc *c)
{
	uint32_t i;

	for (i = 0; i < ds->n && o->err == ERR_OK; i++)
		if (!skip_elem(&ds->e[i], c))
			put_elem(o, &ds->e[i], c);
}

static enum err out_init(struct out *o, const struct dcm_file *f, struct sink *k)
{
	o->k = k;
	o->f = f;
	o->n = 0;
	o->err = ERR_OK;
	o->buf = malloc(OUTBUF);
	return o->buf ? ERR_OK : ERR_NOMEM;
}

enum err dcm_ds_write(const struct dcm_file *f, const struct dcm_ds *ds, bool explicit_vr, bool big_endian,
                      struct sink *k)
{
	struct enc c = { explicit_vr, big_endian, false, false };
	struct out o;
	enum err rc;

	rc = out_init(&o, f, k);
	if (rc != ERR_OK)
		return rc;
	if (f->ts != NULL)
		c.drop_gl = f->ts->explicit_vr != explicit_vr;
	put_ds(&o, ds, &c);
	flush(&o);
	free(o.buf);
	return o.err;
}

/* Deflating sink (raw deflate) in front of another. */
struct deflate_sink {
	z_stream z;
	struct sink *next;
	uint8_t obuf[16384];
};

static enum err deflate_push(struct deflate_sink *d, int flush_mode)
{
	int zr;

	do {
		d->z.next_out = d->obuf;
		d->z.avail_out = sizeof d->obuf;
		zr = deflate(&d->z, flush_mode);
		if (zr == Z_STREAM_ERROR)
			return ERR_INTERNAL;
		if (sizeof d->obuf - d->z.avail_out > 0) {
			enum err rc = sink_write(d->next, d->obuf, sizeof d->obuf - d->z.avail_out);
			if (rc != ERR_OK)
				return rc;
		}
	} while (d->z.avail_out == 0 || (flush_mode == Z_FINISH && zr != Z_STREAM_END));
	return ERR_OK;
}

static enum err deflate_write(void *ctx, const void *p, size_t n)
{
	struct deflate_sink *d = ctx;

	while (n > 0) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		enum err rc;
		d->z.next_in = (Bytef *)(uintptr_t)p;
		d->z.avail_in = chunk;
		rc = deflate_push(d, Z_NO_FLUSH);
		if (rc != ERR_OK)
			return rc;
		p = (const uint8_t *)p + chunk;
		n -= chunk;
	}
	return ERR_OK;
}

/* Builds the meta group for f written with transfer syntax ts. */
static enum err make_meta(struct dcm_file *f, const struct dcm_ts *ts, struct dcm_ds *meta)
{
	static const uint8_t version[2] = { 0x00, 0x01 };
	const char *s;
	size_t n = 0;
	uint32_t i;
	enum err rc;

	memset(meta, 0, sizeof *meta);
	meta->file = f;
	/* keep what the old meta carried beyond the elements we own */
	for (i = 0; i < f->meta.n; i++) {
		const struct dcm_elem *e = &f->meta.e[i];
		switch (e->tag) {
		case 0x00020000: case 0x00020001: case 0x00020002: case 0x00020003:
		case 0x00020010: case 0x00020012: case 0x00020013:
			continue;
		default:
			if (e->seq != NULL || (e->flags & DCM_EF_BULK))
				continue;
			rc = dcm_ds_set(meta, e->tag, e->vr, e->val, e->len);
			if (rc != ERR_OK)
				return rc;
		}
	}
	rc = dcm_ds_set(meta, 0x00020001, VR_OB, version, 2);
	if (rc != ERR_OK)
		return rc;
	s = dcm_ds_str(&f->ds, 0x00080016, &n);
	if (s == NULL)
		s = dcm_ds_str(&f->meta, 0x00020002, &n);
	if (s != NULL) {
		rc = dcm_ds_set(meta, 0x00020002, VR_UI, s, n);
		if (rc != ERR_OK)
			return rc;
	}
	s = dcm_ds_str(&f->ds, 0x00080018, &n);
	if (s == NULL)
		s = dcm_ds_str(&f->meta, 0x00020003, &n);
	if (s != NULL) {
		rc = dcm_ds_set(meta, 0x00020003, VR_UI, s, n);
		if (rc != ERR_OK)
			return rc;
	}
	rc = dcm_ds_set_str(meta, 0x00020010, VR_UI, ts->uid);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(meta, 0x00020012, VR_UI, DCM_IMPL_CLASS_UID);
	if (rc == ERR_OK)
		rc = dcm_ds_set_str(meta, 0x00020013, VR_SH, DCM_IMPL_VERSION);
	return rc;
}

enum err dcm_file_write(struct dcm_file *f, const struct dcm_write_opts *wo, struct sink *k)
{
	static const struct dcm_write_opts dflt = { 0 };
	const struct dcm_ts *ts;
	struct dcm_ds meta;
	struct enc mc = { true, false, false, false };
	struct enc dc;
	struct out o;
	struct deflate_sink *d = NULL;
	struct sink dk;
	enum err rc;

	if (wo == NULL)
		wo = &dflt;
	ts = wo->ts ? wo->ts : f->ts;
	if (ts == NULL)
		ts = DCM_TS_EXPLICIT_LE;
	if (f->ts != NULL && f->ts->encapsulated != ts->encapsulated && dcm_ds_find(&f->ds, TAG_PIXEL_DATA) != NULL)
		return ERR_UNSUPPORTED;  /* no transcoding of pixel data */
	rc = out_init(&o, f, k);
	if (rc != ERR_OK)
		return rc;
	if (!wo->no_preamble) {
		static const uint8_t zero[128];
		put(&o, f->has_preamble && wo->keep_meta ? f->preamble : zero, 128);
		put(&o, "DICM", 4);
		if (wo->keep_meta && f->has_meta && (wo->ts == NULL || wo->ts == f->ts)) {
			put_ds(&o, &f->meta, &mc);
		} else {
			uint64_t glen;
			rc = make_meta(f, ts, &meta);
			if (rc != ERR_OK)
				goto out;
			glen = ds_size(&meta, &mc);
			put_tag(&o, 0x00020000, false);
			put(&o, "UL", 2);
			put16(&o, 4, false);
			put32(&o, (uint32_t)glen, false);
			put_ds(&o, &meta, &mc);
		}
	}
	dc.explicit_vr = ts->explicit_vr;
	dc.big = ts->big_endian;
	dc.drop_gl = f->ts != NULL && f->ts->explicit_vr != ts->explicit_vr;
	dc.ds_top = !wo->no_preamble;
	if (ts->deflated) {
		flush(&o);
		d = calloc(1, sizeof *d);
		if (d == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
		if (deflateInit2(&d->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			free(d);
			d = NULL;
			rc = ERR_NOMEM;
			goto out;
		}
		d->next = k;
		dk.write = deflate_write;
		dk.ctx = d;
		o.k = &dk;
		put_ds(&o, &f->ds, &dc);
		flush(&o);
		if (o.err == ERR_OK)
			o.err = deflate_push(d, Z_FINISH);
	} else {
		put_ds(&o, &f->ds, &dc);
		flush(&o);
	}
	rc = o.err;
out:
	if (d != NULL) {
		deflateEnd(&d->z);
		free(d);
	}
	free(o.buf);
	return rc;
}
