/* dump.c: a dcmdump-like text listing of a data set. Text values are
 * converted to UTF-8 by their Specific Character Set; control characters are
 * escaped so a hostile file cannot drive the terminal. Layer: dicom. */
#include <stdio.h>
#include <string.h>
#include "dicomvault/charset.h"
#include "dicomvault/dataset.h"
#include "dicomvault/rd.h"

#define DUMP_MAX_SHOWN 64   /* value characters shown before "..." */
#define DUMP_MAX_NUMS  16   /* numbers shown */

static void put_escaped(struct wbuf *w, const uint8_t *p, size_t n)
{
	size_t i = 0, run;

	while (i < n) {
		for (run = i; run < n && p[run] >= 0x20 && p[run] != 0x7f; run++)
			;
		wbuf_put(w, p + i, run - i);
		i = run;
		if (i < n) {
			wbuf_printf(w, "\\x%02X", p[i]);
			i++;
		}
	}
}

/* Plain ASCII needs no conversion unless G0 is not ASCII (ISO_IR 13). */
static bool ascii_passthrough(const struct dcm_charset *cs, const uint8_t *p, size_t n)
{
	size_t i;

	if (cs->n > 0 && cs->terms[0] == CS_IR13)
		return false;
	for (i = 0; i < n; i++)
		if (p[i] >= 0x80 || p[i] == 0x1b)
			return false;
	return true;
}

static void dump_text(struct wbuf *w, const struct dcm_charset *cs, const struct dcm_elem *e, bool full)
{
	struct wbuf t;
	size_t n = e->len;
	const uint8_t *p = e->val;

	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == 0))
		n--;
	wbuf_putc(w, '[');
	wbuf_init(&t, (size_t)n * 4 + 16);
	if (vr_uses_charset(e->vr) && !ascii_passthrough(cs, p, n) &&
	    charset_to_utf8(cs, e->vr == VR_PN, p, n, &t) == ERR_OK && wbuf_err(&t) == ERR_OK) {
		p = t.p;
		n = t.len;
	}
	if (!full && n > DUMP_MAX_SHOWN) {
		put_escaped(w, p, DUMP_MAX_SHOWN);
		wbuf_puts(w, "...");
	} else {
		put_escaped(w, p, n);
	}
	wbuf_fini(&t);
	wbuf_putc(w, ']');
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex4(struct wbuf *w, uint16_t v)
{
	char b[4] = { hexdig[v >> 12], hexdig[(v >> 8) & 15], hexdig[(v >> 4) & 15], hexdig[v & 15] };
	wbuf_put(w, b, 4);
}

static void put_uint(struct wbuf *w, unsigned long long v)
{
	char b[24];
	size_t i = sizeof b;

	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	wbuf_put(w, b + i, sizeof b - i);
}

static void dump_numbers(struct wbuf *w, const struct dcm_elem *e)
{
	unsigned sz = vr_fixed_size(e->vr), i, count;

	if (e->vr == VR_OW)
		sz = 2;
	else if (e->vr == VR_OF || e->vr == VR_OL)
		sz = 4;
	else if (e->vr == VR_OD || e->vr == VR_OV)
		sz = 8;
	if (sz == 0 || e->val == NULL)
		return;
	count = e->len / sz;
	for (i = 0; i < count && i < DUMP_MAX_NUMS; i++) {
		const uint8_t *b = e->val + (size_t)i * sz;
		if (i)
			wbuf_putc(w, '\\');
		switch (e->vr) {
		case VR_US: put_uint(w, load_u16le(b)); break;
		case VR_SS: wbuf_printf(w, "%d", (int16_t)load_u16le(b)); break;
		case VR_UL: put_uint(w, load_u32le(b)); break;
		case VR_SL: wbuf_printf(w, "%d", (int32_t)load_u32le(b)); break;
		case VR_UV: wbuf_printf(w, "%llu", (unsigned long long)load_u64le(b)); break;
		case VR_SV: wbuf_printf(w, "%lld", (long long)load_u64le(b)); break;
		case VR_AT: wbuf_printf(w, "(%04x,%04x)", load_u16le(b), load_u16le(b + 2)); break;
		case VR_FL: case VR_OF: {
			float f;
			uint32_t u = load_u32le(b);
			memcpy(&f, &u, 4);
			wbuf_printf(w, "%g", (double)f);
			break;
		}
		case VR_FD: case VR_OD: {
			double d;
			uint64_t u = load_u64le(b);
			memcpy(&d, &u, 8);
			wbuf_printf(w, "%g", d);
			break;
		}
		case VR_OW: wbuf_printf(w, "%04x", load_u16le(b)); break;
		case VR_OL: wbuf_printf(w, "%08x", load_u32le(b)); break;
		case VR_OV: wbuf_printf(w, "%016llx", (unsigned long long)load_u64le(b)); break;
		default: break;
		}
	}
	if (count > DUMP_MAX_NUMS)
		wbuf_puts(w, "...");
}

static void dump_bytes(struct wbuf *w, const uint8_t *p, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len && i < DUMP_MAX_NUMS; i++)
		wbuf_printf(w, i ? "\\%02x" : "%02x", p[i]);
	if (len > DUMP_MAX_NUMS)
		wbuf_puts(w, "...");
}

static void indent(struct wbuf *w, unsigned depth)
{
	unsigned i;

	for (i = 0; i < depth; i++)
		wbuf_puts(w, "  ");
}

/* Pads the line to a column and adds "# len, vm Name". */
static void tail(struct wbuf *w, size_t line_start, uint32_t len, const char *vm, const char *name, bool undef)
{
	static const char spaces[] = "                                                    ";
	size_t col = w->len - line_start;

	if (col < sizeof spaces - 1)
		wbuf_put(w, spaces, sizeof spaces - 1 - col);
	if (undef) {
		wbuf_puts(w, " # u/l, ");
	} else {
		wbuf_puts(w, len < 10 ? " #   " : len < 100 ? " #  " : " # ");
		put_uint(w, len);
		wbuf_puts(w, ", ");
	}
	wbuf_puts(w, vm);
	wbuf_putc(w, ' ');
	wbuf_puts(w, name);
	wbuf_putc(w, '\n');
}

static const char *keyword_of(const struct dcm_ds *ds, uint32_t tag, char *buf, size_t cap)
{
	const struct dict_entry *d;

	if (TAG_IS_PRIVATE(tag)) {
		if (TAG_IS_PRIVATE_CREATOR(tag))
			return "PrivateCreator";
		if (TAG_ELEM(tag) >= 0x1000) {
			uint32_t ctag = TAG(TAG_GROUP(tag), TAG_ELEM(tag) >> 8);
			size_t n = 0;
			const char *c = dcm_ds_str(ds, ctag, &n);
			const struct dict_private *p = c ? dict_lookup_private(tag, c, n) : NULL;
			if (p != NULL) {
				snprintf(buf, cap, "%s", p->meaning);
				return buf;
			}
		}
		return "Unknown Tag & Data";
	}
	d = dict_lookup(tag);
	if (d == NULL)
		return "Unknown Tag & Data";
	return d->keyword[0] ? d->keyword : "Unknown";
}

static unsigned value_count(const struct dcm_elem *e)
{
	unsigned sz = vr_fixed_size(e->vr), n = 1;
	uint32_t i;

	if (e->len == 0)
		return 0;
	if (sz)
		return e->len / sz;
	if (vr_is_string(e->vr) && !vr_is_single_text(e->vr) && e->val)
		for (i = 0; i < e->len; i++)
			if (e->val[i] == '\\')
				n++;
	return n;
}

static void dump_ds(const struct dcm_file *f, const struct dcm_ds *ds, struct wbuf *w, unsigned depth);

static void dump_elem(const struct dcm_file *f, const struct dcm_ds *ds, const struct dcm_charset *cs,
                      const struct dcm_elem *e, struct wbuf *w, unsigned depth)
{
	char vb[3], kb[128], vm[16];
	const char *kw = keyword_of(ds, e->tag, kb, sizeof kb);
	struct dcm_elem eff = *e;
	size_t start;
	uint32_t i;

	eff.vr = dcm_elem_effective_vr(ds, e);
	e = &eff;

	indent(w, depth);
	start = w->len;
	wbuf_putc(w, '(');
	put_hex4(w, TAG_GROUP(e->tag));
	wbuf_putc(w, ',');
	put_hex4(w, TAG_ELEM(e->tag));
	wbuf_putc(w, ')');
	wbuf_putc(w, ' ');
	wbuf_puts(w, vr_name(e->vr, vb));
	wbuf_putc(w, ' ');
	if (e->flags & DCM_EF_ENCAPS) {
		wbuf_printf(w, "(PixelSequence #=%u)", e->seq->nfrags);
		tail(w, start, e->len, "1", kw, true);
		for (i = 0; i < e->seq->nfrags; i++) {
			const struct dcm_frag *fr = &e->seq->frags[i];
			indent(w, depth + 1);
			start = w->len;
			wbuf_puts(w, "(fffe,e000) pi ");
			if (fr->flags & DCM_EF_BULK)
				wbuf_printf(w, "(not loaded: %u bytes at offset %llu)", fr->len, (unsigned long long)fr->bulk_off);
			else
				dump_bytes(w, fr->val, fr->len);
			tail(w, start, fr->len, "1", "Item", false);
		}
		indent(w, depth);
		start = w->len;
		wbuf_puts(w, "(fffe,e0dd) na (SequenceDelimitationItem)");
		tail(w, start, 0, "0", "SequenceDelimitationItem", false);
		return;
	}
	if (e->seq != NULL) {
		wbuf_printf(w, "(Sequence with %s length #=%u)", (e->flags & DCM_EF_UNDEF) ? "undefined" : "explicit",
		            e->seq->n);
		tail(w, start, e->len, "1", kw, (e->flags & DCM_EF_UNDEF) != 0);
		for (i = 0; i < e->seq->n; i++) {
			const struct dcm_ds *item = e->seq->items[i];
			bool undef = (item->flags & DCM_EF_UNDEF) != 0;
			indent(w, depth + 1);
			start = w->len;
			wbuf_printf(w, "(fffe,e000) na (Item with %s length #=%u)", undef ? "undefined" : "explicit", item->n);
			tail(w, start, 0, "1", "Item", undef);
			dump_ds(f, item, w, depth + 2);
			indent(w, depth + 1);
			start = w->len;
			wbuf_puts(w, "(fffe,e00d) na (ItemDelimitationItem)");
			tail(w, start, 0, "0", "ItemDelimitationItem", false);
		}
		indent(w, depth);
		start = w->len;
		wbuf_puts(w, "(fffe,e0dd) na (SequenceDelimitationItem)");
		tail(w, start, 0, "0", "SequenceDelimitationItem", false);
		return;
	}
	if (e->flags & DCM_EF_BULK) {
		wbuf_printf(w, "(not loaded: %u bytes at offset %llu)", e->len, (unsigned long long)e->bulk_off);
	} else if (e->len == 0) {
		wbuf_puts(w, "(no value available)");
	} else if (vr_is_string(e->vr)) {
		dump_text(w, cs, e, false);
	} else if (e->vr == VR_OB || e->vr == VR_UN) {
		dump_bytes(w, e->val, e->len);
	} else {
		dump_numbers(w, e);
	}
	{
		unsigned c = value_count(e);
		size_t k = sizeof vm - 1;
		vm[k] = 0;
		do {
			vm[--k] = (char)('0' + c % 10);
			c /= 10;
		} while (c && k > 0);
		memmove(vm, vm + k, sizeof vm - k);
	}
	tail(w, start, e->len, vm, kw, false);
}

static void dump_ds(const struct dcm_file *f, const struct dcm_ds *ds, struct wbuf *w, unsigned depth)
{
	uint32_t i;

	struct dcm_charset cs;

	dcm_ds_charset(ds, &cs);
	for (i = 0; i < ds->n && wbuf_err(w) == ERR_OK; i++)
		dump_elem(f, ds, &cs, &ds->e[i], w, depth);
}

enum err dcm_dump(const struct dcm_file *f, struct wbuf *w)
{
	if (f->has_meta) {
		wbuf_puts(w, "\n# Dicom-File-Format\n\n# Dicom-Meta-Information-Header\n# Used TransferSyntax: Little Endian Explicit\n");
		dump_ds(f, &f->meta, w, 0);
		wbuf_puts(w, "\n# Dicom-Data-Set\n");
	} else {
		wbuf_puts(w, "\n# Dicom-Data-Set\n");
	}
	wbuf_printf(w, "# Used TransferSyntax: %s\n", f->ts ? f->ts->name : "unknown");
	dump_ds(f, &f->ds, w, 0);
	return wbuf_err(w);
}
