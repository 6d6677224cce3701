/* render_ljpeg.c: the JPEG processes libjpeg-turbo 2.1 does not decode,
 * written here from ISO 10918-1 (ITU-T T.81): lossless (process 14, SOF3:
 * JPEG Lossless .57 and its selection value 1 .70, PS3.5 A.4.1), samples
 * of 2 to 16 bits, every predictor, point transform, restart intervals,
 * one to four components in one or several scans; and the extended
 * sequential DCT of 12-bit samples (process 4, SOF1, Huffman: JPEG
 * Extended .51), one component. Both share the marker segments, the
 * Huffman tables and the bit reader. Every length is checked against
 * what remains; the frame must be the image the data set describes
 * before anything is allocated, so work and memory are bounded by the
 * image's size; scan data that ends before its samples do is an error,
 * never zeros. Pure. Layer: dicom. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"
#include "dicomvault/render.h"
#include "render_int.h"

#define JX_COMPS 4
#define JX_PI 3.14159265358979323846

struct jx_huff {
	bool ok;
	uint8_t look_len[256];   /* codes of up to 8 bits, by the next 8 bits: length (0: a longer code) */
	uint8_t look_val[256];
	int32_t maxcode[17];     /* the largest code of each length, -1: none */
	int32_t mincode[17];
	int32_t valptr[17];      /* index in val of the code mincode[l] */
	uint8_t val[256];
};

struct jx_comp {
	uint8_t id, h, v, tq;
	uint8_t pt;              /* lossless: its scan's point transform */
	uint16_t *plane;         /* lossless: cols x rows; DCT: whole blocks (set: its scan began; a scan that
	                            fails fails the frame, so after walk(), set means decoded) */
	size_t pw, ph;           /* the plane's width and height */
};

struct jx {
	const uint8_t *p;
	size_t n;
	bool lossless;
	unsigned prec, nf;
	uint32_t x, y;
	struct jx_comp c[JX_COMPS];
	struct jx_huff dc[4], ac[4];
	uint16_t q[4][64];
	bool q_ok[4];
	unsigned ri;             /* restart interval, MCUs (0: none) */
	double cosk[8][8];       /* C(u) cos((2x + 1) u pi / 16) / 2 */
	char *why;
	size_t whylen;
};

/* Scan data: bits from the top of acc, cnt of them; pad of those (the
 * lowest) are zeros given past the end of the data, which no decode may
 * consume. */
struct jx_bits {
	const uint8_t *p;
	size_t n, pos;
	uint64_t acc;
	unsigned cnt, pad;
	bool stop;               /* a marker (at pos) or the end reached */
};

/* The natural (row-major) index of the k-th coefficient in zigzag order. */
static const uint8_t zigzag[64] = {
	0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
	41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
	30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

static void bits_init(struct jx_bits *b, const uint8_t *p, size_t n, size_t pos)
{
	memset(b, 0, sizeof *b);
	b->p = p;
	b->n = n;
	b->pos = pos;
}

/* Fills acc to more than 56 bits: a stuffed 0xFF 0x00 is one 0xFF; a
 * marker (0xFF then anything else) or the end stops the data, zeros after. */
static void bits_fill(struct jx_bits *b)
{
	while (b->cnt <= 56) {
		uint8_t c = 0;
		if (!b->stop && b->pos < b->n) {
			c = b->p[b->pos];
			if (c != 0xFF)
				b->pos++;
			else if (b->n - b->pos >= 2 && b->p[b->pos + 1] == 0x00)
				b->pos += 2;
			else
				b->stop = true;
		} else {
			b->stop = true;
		}
		if (b->stop) {
			c = 0;
			b->pad += 8;
		}
		b->acc |= (uint64_t)c << (56 - b->cnt);
		b->cnt += 8;
	}
}

/* True when the bits taken so far were all data. */
static bool bits_sound(const struct jx_bits *b)
{
	return b->cnt >= b->pad;
}

/* k (1..16) bits. */
static uint32_t bits_get(struct jx_bits *b, unsigned k)
{
	uint32_t v;

	if (b->cnt < k)
		bits_fill(b);
	v = (uint32_t)(b->acc >> (64 - k));
	b->acc <<= k;
	b->cnt -= k;
	return v;
}

/* The value of a Huffman code of h, -1 when the bits are no code. */
static int huff_decode(struct jx_bits *b, const struct jx_huff *h)
{
	unsigned l, look;

	if (b->cnt < 16)
		bits_fill(b);
	look = (unsigned)(b->acc >> 56);
	l = h->look_len[look];
	if (l != 0) {
		b->acc <<= l;
		b->cnt -= l;
		return h->look_val[look];
	}
	for (l = 9; l <= 16; l++) {
		int32_t code = (int32_t)(b->acc >> (64 - l));
		if (h->maxcode[l] >= 0 && code <= h->maxcode[l] && code >= h->mincode[l]) {
			b->acc <<= l;
			b->cnt -= l;
			return h->val[h->valptr[l] + code - h->mincode[l]];
		}
	}
	return -1;
}

/* s additional bits (F.2.2.1 EXTEND): the difference of category s. */
static int32_t bits_extend(struct jx_bits *b, unsigned s)
{
	int32_t v = (int32_t)bits_get(b, s);

	if (v < (int32_t)1 << (s - 1))
		v -= ((int32_t)1 << s) - 1;
	return v;
}

static enum err fail(struct jx *j, enum err rc, const char *what)
{
	return err_why(j->why, j->whylen, rc, "the JPEG frame %s", what);
}

/* ---- marker segments ---- */

/* DHT (B.2.4.2): one or more tables; the codes generated as C.2 says and
 * refused when a length's codes overflow it. */
static enum err read_dht(struct jx *j, struct rd *r)
{
	while (rd_remaining(r) > 0) {
		uint8_t tcth, counts[17] = { 0 };
		struct jx_huff *h;
		unsigned l, total = 0, k = 0, i;
		int32_t code = 0;
		if (rd_get_u8(r, &tcth) != ERR_OK || (tcth >> 4) > 1 || (tcth & 15) > 3)
			return fail(j, ERR_PARSE, "has a Huffman table of an unknown class or number");
		h = (tcth >> 4) == 0 ? &j->dc[tcth & 15] : &j->ac[tcth & 15];
		for (l = 1; l <= 16; l++) {
			if (rd_get_u8(r, &counts[l]) != ERR_OK)
				return fail(j, ERR_PARSE, "has a cut Huffman table");
			total += counts[l];
		}
		if (total > 256 || rd_get_bytes(r, h->val, total) != ERR_OK)
			return fail(j, ERR_PARSE, "has a Huffman table longer than its segment");
		memset(h->look_len, 0, sizeof h->look_len);
		for (l = 1; l <= 16; l++) {
			h->maxcode[l] = -1;
			h->mincode[l] = code;
			h->valptr[l] = (int32_t)k;
			for (i = 0; i < counts[l]; i++, k++, code++) {
				if (code >= (int32_t)1 << l)
					return fail(j, ERR_PARSE, "has a Huffman table whose codes do not fit their lengths");
				h->maxcode[l] = code;
				if (l <= 8) {
					unsigned lo = (unsigned)code << (8 - l), hi = lo + (1u << (8 - l)), m;
					for (m = lo; m < hi; m++) {
						h->look_len[m] = (uint8_t)l;
						h->look_val[m] = h->val[k];
					}
				}
			}
			code <<= 1;
		}
		h->ok = total > 0;
	}
	return ERR_OK;
}

/* DQT (B.2.4.1): 8- or 16-bit entries in zigzag order, kept in natural order. */
static enum err read_dqt(struct jx *j, struct rd *r)
{
	while (rd_remaining(r) > 0) {
		uint8_t pqtq, b8;
		uint16_t b16;
		unsigned k, t;
		if (rd_get_u8(r, &pqtq) != ERR_OK || (pqtq >> 4) > 1 || (pqtq & 15) > 3)
			return fail(j, ERR_PARSE, "has a quantisation table of an unknown precision or number");
		t = pqtq & 15;
		for (k = 0; k < 64; k++) {
			if ((pqtq >> 4) == 0 ? rd_get_u8(r, &b8) != ERR_OK : rd_get_u16be(r, &b16) != ERR_OK)
				return fail(j, ERR_PARSE, "has a cut quantisation table");
			j->q[t][zigzag[k]] = (pqtq >> 4) == 0 ? b8 : b16;
		}
		j->q_ok[t] = true;
	}
	return ERR_OK;
}

/* SOF (B.2.2), checked against the image the data set describes. */
static enum err read_sof(struct jx *j, struct rd *r, const struct render_image *im)
{
	uint8_t p, nf;
	uint16_t y, x;
	unsigned i, k;

	if (j->nf != 0)
		return fail(j, ERR_PARSE, "has two frame headers");
	if (rd_get_u8(r, &p) != ERR_OK || rd_get_u16be(r, &y) != ERR_OK || rd_get_u16be(r, &x) != ERR_OK ||
	    rd_get_u8(r, &nf) != ERR_OK || rd_remaining(r) != 3u * nf)
		return fail(j, ERR_PARSE, "has a frame header of the wrong length");
	if (y == 0)
		return fail(j, ERR_UNSUPPORTED, "gives its height in a DNL marker, which is not decoded");
	if (x != im->cols || y != im->rows)
		return err_why(j->why, j->whylen, ERR_PARSE, "the JPEG frame is %ux%u, the data set says %ux%u",
		               (unsigned)x, (unsigned)y, (unsigned)im->cols, (unsigned)im->rows);
	if (nf == 0 || nf > JX_COMPS || nf != im->spp)
		return err_why(j->why, j->whylen, ERR_PARSE, "the JPEG frame has %u components, the data set says %u",
		               (unsigned)nf, (unsigned)im->spp);
	if (j->lossless ? (p < 2 || p > 16) : (p != 8 && p != 12))
		return err_why(j->why, j->whylen, ERR_PARSE, "the JPEG frame has %u-bit samples", (unsigned)p);
	if (p > im->bits_alloc)
		return err_why(j->why, j->whylen, ERR_PARSE, "the JPEG frame has %u-bit samples, Bits Allocated is %u",
		               (unsigned)p, im->bits_alloc);
	for (i = 0; i < nf; i++) {
		uint8_t hv;
		if (rd_get_u8(r, &j->c[i].id) != ERR_OK || rd_get_u8(r, &hv) != ERR_OK || rd_get_u8(r, &j->c[i].tq) != ERR_OK)
			return fail(j, ERR_PARSE, "has a cut frame header");
		j->c[i].h = hv >> 4;
		j->c[i].v = hv & 15;
		if (j->c[i].h < 1 || j->c[i].h > 4 || j->c[i].v < 1 || j->c[i].v > 4 || j->c[i].tq > 3)
			return fail(j, ERR_PARSE, "has a component with sampling factors or a table outside 1..4");
		for (k = 0; k < i; k++)
			if (j->c[k].id == j->c[i].id)
				return fail(j, ERR_PARSE, "has two components of one identifier");
		/* one component is one data unit whatever its factors (A.2.2) */
		if (nf > 1 && (j->c[i].h != 1 || j->c[i].v != 1))
			return fail(j, ERR_UNSUPPORTED, "has subsampled components, which are not decoded");
	}
	if (!j->lossless && nf != 1)
		return fail(j, ERR_UNSUPPORTED, "is a colour DCT image of extended precision, which is not decoded");
	j->prec = p;
	j->nf = nf;
	j->x = x;
	j->y = y;
	return ERR_OK;
}

/* ---- scans ---- */

/* Between restart intervals: the rest of the interval's bits are dropped
 * and the next marker must be RSTn. */
static enum err restart(struct jx *j, struct jx_bits *b)
{
	size_t i = b->pos;

	if (!bits_sound(b))
		return fail(j, ERR_PARSE, "has a restart interval whose data ends early");
	if (!b->stop)   /* bytes left in the interval: skipped to its marker */
		while (i < b->n && !(b->p[i] == 0xFF && b->n - i >= 2 && b->p[i + 1] != 0x00))
			i++;
	while (b->n - i >= 2 && b->p[i] == 0xFF && b->p[i + 1] == 0xFF)
		i++;
	if (b->n - i < 2 || b->p[i] != 0xFF || b->p[i + 1] < 0xD0 || b->p[i + 1] > 0xD7)
		return fail(j, ERR_PARSE, "has no restart marker where its interval ends");
	bits_init(b, b->p, b->n, i + 2);
	return ERR_OK;
}

/* A lossless scan (H.1.2, H.2): differences coded by the DC tables,
 * predictions from the reconstructed neighbours, modulo 2^16. */
static enum err scan_lossless(struct jx *j, struct jx_bits *b, struct jx_comp **sc, const struct jx_huff **tab,
                              unsigned ns, unsigned sv, unsigned pt)
{
	uint32_t x, y, mcus = 0;
	int32_t dflt = (int32_t)1 << (j->prec - pt - 1);
	unsigned i;

	if (j->ri != 0 && j->ri % j->x != 0)
		return fail(j, ERR_UNSUPPORTED, "has restart intervals that are not whole rows, which are not decoded");
	for (y = 0; y < j->y; y++) {
		bool first = y == 0;
		if (j->ri != 0 && y > 0 && mcus % j->ri == 0) {
			enum err rc = restart(j, b);
			if (rc != ERR_OK)
				return rc;
			first = true;
		}
		for (x = 0; x < j->x; x++, mcus++) {
			for (i = 0; i < ns; i++) {
				uint16_t *row = sc[i]->plane + (size_t)y * j->x;
				const uint16_t *up = y > 0 ? row - j->x : row;   /* the row above */
				int s = huff_decode(b, tab[i]);
				int32_t diff, pred;
				if (s < 0 || s > 16)
					return fail(j, ERR_PARSE, "has a lossless difference with no valid code");
				diff = s == 0 ? 0 : s == 16 ? 32768 : bits_extend(b, (unsigned)s);
				if (first) {
					pred = x == 0 ? dflt : row[x - 1];
				} else if (x == 0) {
					pred = up[0];
				} else {
					int32_t ra = row[x - 1], rb = up[x], rc = up[x - 1], d;
					switch (sv) {
					case 1: pred = ra; break;
					case 2: pred = rb; break;
					case 3: pred = rc; break;
					case 4: pred = ra + rb - rc; break;
					case 5: d = rb - rc; pred = ra + (d >= 0 ? d >> 1 : -((1 - d) >> 1)); break;
					case 6: d = ra - rc; pred = rb + (d >= 0 ? d >> 1 : -((1 - d) >> 1)); break;
					default: pred = (ra + rb) >> 1; break;
					}
				}
				row[x] = (uint16_t)(uint32_t)(pred + diff);
			}
		}
		if (!bits_sound(b))
			return fail(j, ERR_PARSE, "has scan data that ends before its last row");
	}
	return ERR_OK;
}

/* The 8x8 inverse DCT (A.3.3) of the dequantised coefficients f, level
 * shifted and clamped to the precision, into the plane at block (bx, by). */
static void idct_put(const struct jx *j, struct jx_comp *c, const double *f, size_t bx, size_t by)
{
	double t[8][8];
	int32_t top = ((int32_t)1 << j->prec) - 1, shift = (int32_t)1 << (j->prec - 1);
	unsigned u, v, x, y;

	for (v = 0; v < 8; v++)
		for (x = 0; x < 8; x++) {
			double s = 0;
			for (u = 0; u < 8; u++)
				s += f[v * 8 + u] * j->cosk[u][x];
			t[v][x] = s;
		}
	for (y = 0; y < 8; y++)
		for (x = 0; x < 8; x++) {
			double s = 0;
			long o;
			for (v = 0; v < 8; v++)
				s += t[v][x] * j->cosk[v][y];
			o = lround(s) + shift;
			c->plane[(by * 8 + y) * c->pw + bx * 8 + x] = (uint16_t)(o < 0 ? 0 : o > top ? top : o);
		}
}

/* The 12-bit (or 8-bit) DCT scan of the one component (F.2.2): a DC
 * difference and run-length coded AC coefficients per block,
 * dequantised and transformed. */
static enum err scan_dct(struct jx *j, struct jx_bits *b, struct jx_comp *c, const struct jx_huff *dc,
                         const struct jx_huff *ac)
{
	size_t bw = c->pw / 8, bh = c->ph / 8, bx, by, mcus = 0;
	const uint16_t *q = j->q[c->tq];
	int32_t pred = 0;
	double f[64];

	for (by = 0; by < bh; by++) {
		for (bx = 0; bx < bw; bx++, mcus++) {
			unsigned k;
			int s;
			if (j->ri != 0 && mcus > 0 && mcus % j->ri == 0) {
				enum err rc = restart(j, b);
				if (rc != ERR_OK)
					return rc;
				pred = 0;
			}
			memset(f, 0, sizeof f);
			s = huff_decode(b, dc);
			if (s < 0 || s > 15)
				return fail(j, ERR_PARSE, "has a DC difference with no valid code");
			if (s > 0)
				pred += bits_extend(b, (unsigned)s);
			if (pred < -32768 || pred > 32767)
				return fail(j, ERR_PARSE, "has a DC coefficient out of range");
			f[0] = (double)pred * q[0];
			for (k = 1; k < 64;) {
				int rs = huff_decode(b, ac);
				unsigned r, sz;
				if (rs < 0)
					return fail(j, ERR_PARSE, "has an AC coefficient with no valid code");
				r = (unsigned)rs >> 4;
				sz = (unsigned)rs & 15;
				if (sz == 0) {
					if (r != 15)
						break;   /* EOB */
					k += 16;     /* ZRL */
					continue;
				}
				k += r;
				if (k > 63)
					return fail(j, ERR_PARSE, "has a block of more than 64 coefficients");
				f[zigzag[k]] = (double)bits_extend(b, sz) * q[zigzag[k]];
				k++;
			}
			idct_put(j, c, f, bx, by);
		}
		if (!bits_sound(b))
			return fail(j, ERR_PARSE, "has scan data that ends before its last block");
	}
	return ERR_OK;
}

/* The offset of the next marker from i on (its first 0xFF), n when none. */
static size_t next_marker(const uint8_t *p, size_t n, size_t i)
{
	while (i < n && !(p[i] == 0xFF && n - i >= 2 && p[i + 1] != 0x00 && p[i + 1] != 0xFF))
		i++;
	return i;
}

/* SOS (B.2.3) and the scan data after it: *pos is where the data starts,
 * then where the marker after it is. */
static enum err read_sos(struct jx *j, struct rd *seg, size_t *pos)
{
	struct jx_comp *sc[JX_COMPS];
	const struct jx_huff *dct[JX_COMPS], *act[JX_COMPS];
	struct jx_bits b;
	uint8_t ns, ss, se, ahal;
	unsigned i, k;
	enum err rc;

	if (j->nf == 0)
		return fail(j, ERR_PARSE, "has a scan before its frame header");
	if (rd_get_u8(seg, &ns) != ERR_OK || ns < 1 || ns > j->nf || rd_remaining(seg) != 2u * ns + 3)
		return fail(j, ERR_PARSE, "has a scan header of the wrong length or number of components");
	for (i = 0; i < ns; i++) {
		uint8_t cs, tdta;
		if (rd_get_u8(seg, &cs) != ERR_OK || rd_get_u8(seg, &tdta) != ERR_OK)
			return fail(j, ERR_PARSE, "has a cut scan header");
		for (k = 0; k < j->nf && j->c[k].id != cs; k++)
			;
		if (k == j->nf)
			return fail(j, ERR_PARSE, "has a scan of a component it does not have");
		if (j->c[k].plane != NULL)
			return fail(j, ERR_PARSE, "decodes a component twice");
		if ((tdta >> 4) > 3 || (tdta & 15) > 3 || !j->dc[tdta >> 4].ok || (!j->lossless && !j->ac[tdta & 15].ok))
			return fail(j, ERR_PARSE, "has a scan whose Huffman table is not defined");
		if (!j->lossless && !j->q_ok[j->c[k].tq])
			return fail(j, ERR_PARSE, "has a scan whose quantisation table is not defined");
		sc[i] = &j->c[k];
		dct[i] = &j->dc[tdta >> 4];
		act[i] = &j->ac[tdta & 15];
		sc[i]->pw = j->lossless ? j->x : (j->x + 7u) / 8 * 8;
		sc[i]->ph = j->lossless ? j->y : (j->y + 7u) / 8 * 8;
		sc[i]->plane = calloc(sc[i]->pw * sc[i]->ph, sizeof *sc[i]->plane);
		if (sc[i]->plane == NULL)
			return err_why(j->why, j->whylen, ERR_NOMEM, "out of memory");
	}
	if (rd_get_u8(seg, &ss) != ERR_OK || rd_get_u8(seg, &se) != ERR_OK || rd_get_u8(seg, &ahal) != ERR_OK)
		return fail(j, ERR_PARSE, "has a cut scan header");
	bits_init(&b, j->p, j->n, *pos);
	if (j->lossless) {
		if (ss == 0)
			return fail(j, ERR_UNSUPPORTED, "is a hierarchical lossless image, which is not decoded");
		if (ss > 7 || (ahal >> 4) != 0 || (ahal & 15) >= j->prec)
			return fail(j, ERR_PARSE, "has a lossless scan with a predictor or point transform out of range");
		for (i = 0; i < ns; i++)
			sc[i]->pt = ahal & 15;
		rc = scan_lossless(j, &b, sc, dct, ns, ss, ahal & 15u);
	} else {
		/* a sequential frame's scan is every coefficient whatever Ss, Se,
		 * Ah and Al say (libjpeg warns and decodes; pydicom's
		 * JPEG-lossy.dcm has Se 0) */
		(void)se;
		rc = scan_dct(j, &b, sc[0], dct[0], act[0]);
	}
	if (rc != ERR_OK)
		return rc;
	if (!bits_sound(&b))
		return fail(j, ERR_PARSE, "has scan data that ends early");
	*pos = b.stop ? b.pos : next_marker(j->p, j->n, b.pos);
	return ERR_OK;
}

/* The next marker at r (fill bytes skipped) in *m, and for a marker
 * segment its contents in *seg (empty for SOI, EOI, RSTn and TEM).
 * ERR_PARSE, *what saying why: no marker there, or a segment longer than
 * the frame. */
static enum err marker_next(struct rd *r, uint8_t *m, struct rd *seg, const char **what)
{
	uint8_t a;
	uint16_t len;

	rd_init(seg, NULL, 0);
	*what = "has bytes where a marker should be";
	if (rd_get_u8(r, &a) != ERR_OK || a != 0xFF)
		return ERR_PARSE;
	*what = "ends inside a marker";
	do {
		if (rd_get_u8(r, m) != ERR_OK)
			return ERR_PARSE;
	} while (*m == 0xFF);
	if (*m == 0x00 || *m == 0x01 || (*m >= 0xD0 && *m <= 0xD9))
		return ERR_OK;
	*what = "has a marker segment longer than the frame";
	if (rd_get_u16be(r, &len) != ERR_OK || len < 2 || rd_child(r, len - 2u, seg) != ERR_OK)
		return ERR_PARSE;
	return ERR_OK;
}

/* The marker segments and scans of the frame, to EOI or its end. */
static enum err walk(struct jx *j, const struct render_image *im)
{
	struct rd r, seg;
	uint8_t a, m;
	unsigned i;
	enum err rc = ERR_OK;

	rd_init(&r, j->p, j->n);
	if (rd_get_u8(&r, &a) != ERR_OK || rd_get_u8(&r, &m) != ERR_OK || a != 0xFF || m != 0xD8)
		return fail(j, ERR_PARSE, "does not start with a start-of-image marker");
	while (rc == ERR_OK && rd_remaining(&r) >= 2) {
		const char *what = "";
		size_t pos;
		uint16_t len;
		if (marker_next(&r, &m, &seg, &what) != ERR_OK)
			return fail(j, ERR_PARSE, what);
		if (m == 0xD9)
			break;   /* EOI */
		if (m == 0x01 || (m >= 0xD0 && m <= 0xD7))
			continue;   /* TEM, and RSTn after a scan's last interval (libjpeg skips them too) */
		if (m == 0x00 || m == 0xD8)
			return fail(j, ERR_PARSE, "has a marker out of place");
		switch (m) {
		case 0xC0: case 0xC1: case 0xC3:
			if ((m == 0xC3) != j->lossless)
				return fail(j, ERR_PARSE, j->lossless ? "is not lossless, as its transfer syntax says"
				                                      : "is lossless, not what its transfer syntax says");
			rc = read_sof(j, &seg, im);
			break;
		case 0xC4:
			rc = read_dht(j, &seg);
			break;
		case 0xDB:
			rc = read_dqt(j, &seg);
			break;
		case 0xDD:
			if (rd_remaining(&seg) != 2)
				return fail(j, ERR_PARSE, "has a restart interval segment of the wrong length");
			rc = rd_get_u16be(&seg, &len);
			j->ri = len;
			break;
		case 0xDA:
			pos = r.pos;
			rc = read_sos(j, &seg, &pos);
			if (rc == ERR_OK)
				r.pos = pos;
			break;
		case 0xC2: case 0xC5: case 0xC6: case 0xC7: case 0xC9: case 0xCA: case 0xCB: case 0xCC:
		case 0xCD: case 0xCE: case 0xCF: case 0xDC: case 0xDE: case 0xDF:
			return err_why(j->why, j->whylen, ERR_UNSUPPORTED,
			               "the JPEG frame uses a process (marker 0xFF%02X) that is not decoded", (unsigned)m);
		default:
			break;   /* APPn, COM and the like */
		}
	}
	if (rc != ERR_OK)
		return rc;
	if (j->nf == 0)
		return fail(j, ERR_PARSE, "has no frame header");
	for (i = 0; i < j->nf; i++)
		if (j->c[i].plane == NULL)
			return fail(j, ERR_PARSE, "ends before every component is decoded");
	return ERR_OK;
}

/* The decoded planes as native samples, interleaved: bit patterns of
 * Bits Stored bits, or when the frame codes more bits than that, the
 * words as they were coded (dcmdjpeg does the same). */
static enum err put_samples(struct jx *j, struct render_image *im, uint8_t *buf)
{
	size_t bps = im->bits_alloc / 8, step = j->nf * bps;
	uint32_t xx, yy;
	unsigned c;

	for (yy = 0; yy < j->y; yy++)
		for (c = 0; c < j->nf; c++) {
			const uint16_t *row = j->c[c].plane + (size_t)yy * j->c[c].pw;
			uint8_t *p = buf + ((size_t)yy * j->x * j->nf + c) * bps;
			unsigned pt = j->c[c].pt;
			for (xx = 0; xx < j->x; xx++, p += step) {
				uint32_t v = (uint32_t)row[xx] << pt;   /* the point transform (DCT: 0) */
				if ((v >> j->prec) != 0)   /* a DCT sample is clamped to the precision already */
					return err_why(j->why, j->whylen, ERR_PARSE,
					               "a lossless JPEG sample (%u) does not fit %u bits", (unsigned)v, j->prec);
				if (j->prec <= im->bits_stored) {
					if (!render_sample_put(im, v, true, false, p))
						return fail(j, ERR_INTERNAL, "has a sample that does not fit Bits Stored");
				} else {   /* the whole allocated word was coded: kept as it was */
					render_sample_store(im, v, p);
				}
			}
		}
	return ERR_OK;
}

enum err render_ljpeg_decode(struct render_image *im, bool lossless, const uint8_t *src, size_t n, uint8_t **out,
                             size_t *outlen, char *why, size_t whylen)
{
	struct render_image dec = *im;
	struct jx *j;
	size_t total = 0;
	uint8_t *buf = NULL;
	bool lossy = !lossless;
	unsigned c, u, x;
	enum err rc = ERR_INTERNAL;

	rc = render_dec_check(im, "JPEG", n, 4, &total, why, whylen);
	if (rc != ERR_OK)
		return rc;
	if (im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT)
		return err_why(why, whylen, ERR_PARSE, "a JPEG frame cannot be a JPEG 2000 colour transform");
	j = calloc(1, sizeof *j);
	if (j == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	j->p = src;
	j->n = n;
	j->lossless = lossless;
	j->why = why;
	j->whylen = whylen;
	for (u = 0; u < 8; u++)
		for (x = 0; x < 8; x++)
			j->cosk[u][x] = (u == 0 ? sqrt(0.5) : 1.0) * cos((2.0 * x + 1.0) * u * JX_PI / 16.0) / 2.0;
	rc = walk(j, im);
	if (rc != ERR_OK)
		goto out;
	buf = malloc(total);
	if (buf == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = put_samples(j, im, buf);
	if (rc != ERR_OK)
		goto out;
	for (c = 0; c < j->nf; c++)
		if (lossless && j->c[c].pt != 0)
			lossy = true;   /* a point transform drops bits */
	if (dec.photo == RENDER_YBR_FULL_422)
		dec.photo = RENDER_YBR_FULL;   /* its components are full size (subsampled ones are refused) */
	render_dec_done(im, &dec, lossy ? "ISO_10918_1" : NULL, buf, total, out, outlen);
	buf = NULL;
	rc = ERR_OK;
out:
	for (c = 0; c < JX_COMPS; c++)
		free(j->c[c].plane);
	free(j);
	free(buf);
	return rc;
}

int render_jpeg_precision(const uint8_t *p, size_t n)
{
	struct rd r, seg;
	const char *what;
	uint8_t a, m, prec;

	rd_init(&r, p, n);
	if (rd_get_u8(&r, &a) != ERR_OK || rd_get_u8(&r, &m) != ERR_OK || a != 0xFF || m != 0xD8)
		return 0;
	while (marker_next(&r, &m, &seg, &what) == ERR_OK) {
		if (m == 0xD9 || m == 0xDA || m == 0x00 || (m >= 0xD0 && m <= 0xD8))
			return 0;   /* no frame header before the image's data */
		if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
			return rd_get_u8(&seg, &prec) == ERR_OK ? prec : 0;
	}
	return 0;
}
