/* transcode.c: a data set written in Explicit or Implicit VR Little
 * Endian (transcode.h): encapsulated pixel data decompressed with the
 * renderer's decoders, native pixel data re-encoded. The data set is
 * copied without its Pixel Data (values loaded, so the copy is written by
 * dcm_ds_write), the attributes of decoded pixels set on the copy, then
 * the Pixel Data element is written by hand: its header, then each frame
 * as it is decoded, or the stored value in chunks (byte-swapped from big
 * endian); for a native data set, the elements after it last.
 * Layer: dicom. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/frame.h"
#include "dicomvault/render.h"
#include "dicomvault/transcode.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

#define TAG_PIXEL_DATA   0x7FE00010u
#define TAG_PIXEL_GROUP  0x7FE00000u
#define TAG_SAMPLES      0x00280002u
#define TAG_PHOTOMETRIC  0x00280004u
#define TAG_PLANAR       0x00280006u
#define TAG_BITS_ALLOC   0x00280100u
#define TAG_BITS_STORED  0x00280101u
#define TAG_HIGH_BIT     0x00280102u
#define TAG_LOSSY        0x00282110u
#define TAG_LOSSY_METHOD 0x00282114u
#define TAG_LOSSY_RATIO  0x00282112u
#define LOSSY_VALUES_MAX 1024   /* bytes of the methods or ratios a data set may have (64 of 16 bytes) */
#define TAG_PADDING      0xFFFCFFFCu   /* Data Set Trailing Padding */
#define MAX_NATIVE       0xFFFFFFFEu   /* a defined length, even */
#define NATIVE_CHUNK     (1u << 20)    /* native pixel data read and sent this much at a time */
#define DECOMPRESS_MAX_HEAD (64u << 20)  /* the data set without its pixels, values loaded */

bool dcm_decompress_takes(const char *ts_uid)
{
	return render_codec_of(ts_uid) != RENDER_CODEC_NONE;
}

bool dcm_transcode_takes(const char *ts_uid)
{
	const struct dcm_ts *t = ts_uid != NULL ? dict_ts(ts_uid, strlen(ts_uid)) : NULL;

	return dcm_decompress_takes(ts_uid) || (t != NULL && !t->encapsulated);
}

struct decoder {
	const struct dcm_frames *fr;
	const struct render_image *im;
	enum render_codec codec;
	uint8_t *raw;                  /* the compressed frame */
	size_t rawcap;
};

/* RLE's planes (one after the other) interleaved in place: n pixels of
 * 3 samples of b bytes. */
static enum err interleave(uint8_t *p, size_t n, size_t b)
{
	uint8_t *t = malloc(n * 3 * b);
	size_t i, c, k;

	if (t == NULL)
		return ERR_NOMEM;
	for (c = 0; c < 3; c++) {   /* plane by plane: sequential reads, no call per sample */
		const uint8_t *src = p + c * n * b;
		for (i = 0; i < n; i++)
			for (k = 0; k < b; k++)
				t[(i * 3 + c) * b + k] = src[i * b + k];
	}
	memcpy(p, t, n * 3 * b);
	free(t);
	return ERR_OK;
}

/* Frame i decoded into *out (malloc'd, *outlen bytes); *dec describes it.
 * RLE colour comes out as the data set's Planar Configuration says, the
 * others' interleaved. */
static enum err decode(struct decoder *d, uint32_t i, struct render_image *dec, uint8_t **out, size_t *outlen,
                       char *why, size_t whylen)
{
	uint64_t size = dcm_frame_size(d->fr, i);
	enum err rc;

	if (size == 0 || size > RENDER_MAX_OUTPUT)
		return err_why(why, whylen, ERR_PARSE, "frame %u has %llu compressed bytes", (unsigned)i + 1,
		               (unsigned long long)size);
	if (size > d->rawcap) {
		uint8_t *p = realloc(d->raw, (size_t)size);
		if (p == NULL)
			return err_why(why, whylen, ERR_NOMEM, "out of memory");
		d->raw = p;
		d->rawcap = (size_t)size;
	}
	rc = dcm_frame_read(d->fr, i, 0, d->raw, (size_t)size);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "frame %u cannot be read", (unsigned)i + 1);
	*dec = *d->im;   /* the decoder updates the scalars only */
	rc = render_decode(d->codec, dec, d->raw, (size_t)size, out, outlen, why, whylen);
	if (rc != ERR_OK || d->codec != RENDER_CODEC_RLE)
		return rc;
	dec->planar = d->im->planar;   /* the data set's Planar Configuration: the planes RLE gives interleaved for 0 */
	if (dec->spp == 3 && dec->planar == 0) {
		rc = interleave(*out, (size_t)dec->rows * dec->cols, dec->bits_alloc / 8);
		if (rc != ERR_OK) {
			free(*out);
			*out = NULL;
			return err_why(why, whylen, rc, "out of memory");
		}
	}
	return rc;
}

enum err dcm_frame_decompress(const struct dcm_frames *fr, const struct render_image *im, const char *ts_uid,
                              uint32_t i, uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	struct decoder d;
	struct render_image dec;
	enum err rc;

	if (!dcm_decompress_takes(ts_uid) || !fr->encapsulated || i >= fr->n)
		return err_why(why, whylen, ERR_UNSUPPORTED, "not a frame decompressed here");
	memset(&d, 0, sizeof d);
	d.fr = fr;
	d.im = im;
	d.codec = render_codec_of(ts_uid);
	rc = decode(&d, i, &dec, out, outlen, why, whylen);
	free(d.raw);
	return rc;
}

static enum err set_us(struct dcm_ds *ds, uint32_t tag, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v & 0xFF), (uint8_t)(v >> 8) };

	return dcm_ds_set(ds, tag, VR_US, b, 2);
}

/* Whether element e of a top-level data set goes into the copy: group
 * lengths never (they would be wrong). Decompressed (dec set): what comes
 * before group 7FE0 (the rest of it, the Extended Offset Table, belongs to
 * encapsulated pixels; what follows Pixel Data no longer holds). Native:
 * what comes before Pixel Data (head) or after it but padding (tail). */
static bool copied(const struct dcm_elem *e, const struct render_image *dec, bool tail)
{
	if ((e->tag & 0xFFFFu) == 0)
		return false;
	if (dec != NULL)
		return e->tag < TAG_PIXEL_GROUP;
	return tail ? e->tag > TAG_PIXEL_DATA && e->tag != TAG_PADDING : e->tag < TAG_PIXEL_DATA;
}

/* The number of values of a string attribute of ds in *n (0: absent or
 * empty), its value in old (cap bytes); ERR_PARSE when longer (not
 * ERR_LIMIT: that says the head is over its budget). */
static enum err str_values(const struct dcm_ds *ds, uint32_t tag, char *old, size_t cap, unsigned *n)
{
	const char *p;

	old[0] = 0;
	*n = 0;
	if (dcm_ds_find(ds, tag) != NULL && dcm_ds_get_cstr(ds, tag, old, cap) != ERR_OK)
		return ERR_PARSE;
	if (old[0] == 0)
		return ERR_OK;
	for (*n = 1, p = old; (p = strchr(p, '\\')) != NULL; p++)
		(*n)++;
	return ERR_OK;
}

/* method added to the values of Lossy Image Compression Method unless
 * it is one of them already; and then ratio (native bytes for each
 * compressed one; 0: unknown) to those of Lossy Image Compression Ratio,
 * whose values go with the methods' in order (PS3.3 C.7.6.1.1.5), when
 * the two had as many values (a data set where they disagree keeps its
 * ratios). */
static enum err lossy_method_add(struct dcm_ds *ds, const char *method, double ratio)
{
	char old[LOSSY_VALUES_MAX], val[LOSSY_VALUES_MAX + 32], rold[LOSSY_VALUES_MAX], r[32];
	size_t n = strlen(method), k = 0;
	unsigned nm, nr;
	const char *p;
	enum err rc = str_values(ds, TAG_LOSSY_METHOD, old, sizeof old, &nm);

	if (rc != ERR_OK)
		return rc;   /* never values dropped */

	for (p = old; nm > 0; p += k + 1) {   /* the values, trailing spaces trimmed */
		const char *bs = strchr(p, '\\');
		size_t t;
		k = bs != NULL ? (size_t)(bs - p) : strlen(p);
		for (t = k; t > 0 && p[t - 1] == ' '; t--)
			;
		if (t == n && memcmp(p, method, n) == 0)
			return ERR_OK;
		if (bs == NULL)
			break;
	}
	if (nm == 0)
		rc = dcm_ds_set_str(ds, TAG_LOSSY_METHOD, VR_CS, method);
	else if ((size_t)snprintf(val, sizeof val, "%s\\%s", old, method) >= sizeof val)
		return ERR_LIMIT;
	else
		rc = dcm_ds_set_str(ds, TAG_LOSSY_METHOD, VR_CS, val);
	if (rc != ERR_OK || ratio <= 0 || str_values(ds, TAG_LOSSY_RATIO, rold, sizeof rold, &nr) != ERR_OK || nr != nm)
		return rc;
	(void)snprintf(r, sizeof r, "%.2f", ratio);   /* a DS of at most 16 characters: ratio < 2^32 */
	if (nm == 0)
		return dcm_ds_set_str(ds, TAG_LOSSY_RATIO, VR_DS, r);
	if ((size_t)snprintf(val, sizeof val, "%s\\%s", rold, r) >= sizeof val)
		return ERR_LIMIT;
	return dcm_ds_set_str(ds, TAG_LOSSY_RATIO, VR_DS, val);
}

/* The attributes of decoded pixels (dec; photo: the data set's
 * photometric interpretation) set on a copy: a colour image decoded to RGB
 * says so; a frame that was compressed lossily sets Lossy Image
 * Compression and adds its method, and its ratio (lossy_method_add; a
 * lossless one keeps what the data set says). */
static enum err decoded_attrs(struct dcm_ds *ds, const struct render_image *dec, enum render_photo photo, double ratio)
{
	enum err rc = set_us(ds, TAG_BITS_ALLOC, dec->bits_alloc);

	/* what the decoder took for granted when absent (1 sample, grey)
	 * written out: the pixels are described whole */
	if (rc == ERR_OK)
		rc = set_us(ds, TAG_SAMPLES, dec->spp);
	if (rc == ERR_OK && dcm_ds_find(ds, TAG_PHOTOMETRIC) == NULL && dec->photo == RENDER_MONO2)
		rc = dcm_ds_set_str(ds, TAG_PHOTOMETRIC, VR_CS, "MONOCHROME2");

	if (rc == ERR_OK)
		rc = set_us(ds, TAG_BITS_STORED, dec->bits_stored);
	if (rc == ERR_OK)
		rc = set_us(ds, TAG_HIGH_BIT, dec->high_bit);
	if (rc == ERR_OK && dec->spp > 1)
		rc = set_us(ds, TAG_PLANAR, dec->planar);
	if (rc == ERR_OK && dec->photo != photo && dec->photo == RENDER_RGB)
		rc = dcm_ds_set_str(ds, TAG_PHOTOMETRIC, VR_CS, "RGB");
	else if (rc == ERR_OK && dec->photo != photo && dec->photo == RENDER_YBR_FULL)
		rc = dcm_ds_set_str(ds, TAG_PHOTOMETRIC, VR_CS, "YBR_FULL");
	else if (rc == ERR_OK && dec->photo != photo)
		rc = ERR_INTERNAL;   /* the decoders make nothing else */
	if (rc == ERR_OK && dec->lossy != NULL)
		rc = dcm_ds_set_str(ds, TAG_LOSSY, VR_CS, "01");
	if (rc == ERR_OK && dec->lossy != NULL)
		rc = lossy_method_add(ds, dec->lossy, ratio);
	return rc;
}

/* The part of the data set of f that `copied` takes, values loaded (at
 * most *budget bytes of them: ERR_LIMIT), and, decompressed, the
 * attributes of the decoded pixels set. */
static enum err head_copy(const struct dcm_file *f, const struct render_image *dec, enum render_photo photo,
                          double ratio, bool tail, uint64_t *budget, struct dcm_file **out)
{
	struct dcm_file *c = NULL;
	uint32_t i;
	enum err rc = dcm_file_new(&c);

	/* the copy's values are loaded (little endian); it keeps the source's
	 * transfer syntax so that the writer knows the VR encoding changes
	 * and drops group lengths at every depth */
	if (rc == ERR_OK)
		c->ts = f->ts;
	for (i = 0; rc == ERR_OK && i < f->ds.n; i++)
		if (copied(&f->ds.e[i], dec, tail))
			rc = dcm_ds_copy_elem_native(&c->ds, f, &f->ds.e[i], budget);
	if (rc == ERR_OK && dec != NULL)
		rc = decoded_attrs(&c->ds, dec, photo, ratio);
	if (rc != ERR_OK) {
		dcm_file_free(c);
		return rc;
	}
	*out = c;
	return ERR_OK;
}

/* The Pixel Data element's header for len bytes of value (OB, else OW). */
static enum err pixel_header(struct sink *k, bool explicit_vr, bool ob, uint32_t len)
{
	uint8_t h[12] = { 0xE0, 0x7F, 0x10, 0x00 };
	size_t n = 8;

	if (explicit_vr) {
		h[4] = 'O';
		h[5] = ob ? 'B' : 'W';
		h[6] = h[7] = 0;
		n = 12;
	}
	h[n - 4] = (uint8_t)(len & 0xFF);
	h[n - 3] = (uint8_t)(len >> 8);
	h[n - 2] = (uint8_t)(len >> 16);
	h[n - 1] = (uint8_t)(len >> 24);
	return k->write(k->ctx, h, n);
}

struct dcm_transcode {
	struct dcm_file *f;
	const struct dcm_ts *to;
	bool part10;                   /* preamble and File Meta Information first */
	bool native;                   /* re-encoded, not decompressed */
	uint32_t step;                 /* of next: 0 head; decompressed: 1..n frames, n + 1 padding;
	                                  native: 1 pixel data chunks, 2 tail; then the end */
	struct wbuf out;               /* the head */
	/* decompressed */
	struct dcm_frames fr;
	struct render_image im, dec;   /* as stored; frame 1 decoded */
	struct decoder d;
	bool fr_ok, im_ok;
	uint8_t *frame;                /* frame 1, decoded, until written; native: the chunk */
	size_t framelen;
	uint64_t total;
	double ratio;                  /* total / the frames' compressed bytes */
	/* native */
	const struct dcm_elem *px;     /* Pixel Data, or NULL */
	uint32_t pos;                  /* of px's value sent */
	struct wbuf tail;              /* the elements after Pixel Data */
};

void dcm_transcode_free(struct dcm_transcode *z)
{
	if (z == NULL)
		return;
	wbuf_fini(&z->out);
	wbuf_fini(&z->tail);
	free(z->frame);
	free(z->d.raw);
	if (z->fr_ok)
		dcm_frames_fini(&z->fr);
	if (z->im_ok)
		render_image_fini(&z->im);
	free(z);
}

/* The copy `copied` takes (tail or head) written to w in z->to, after a
 * preamble and File Meta Information for a Part 10 head. */
static enum err part_write(struct dcm_transcode *z, bool tail, uint64_t *budget, struct wbuf *w)
{
	struct dcm_file *c = NULL;
	struct sink k;
	enum err rc = head_copy(z->f, z->native ? NULL : &z->dec, z->im.photo, z->ratio, tail, budget, &c);

	sink_wbuf(&k, w);
	if (rc == ERR_OK && z->part10 && !tail) {
		struct dcm_write_opts wo;
		memset(&wo, 0, sizeof wo);
		wo.ts = z->to;
		rc = dcm_file_write(c, &wo, &k);
	} else if (rc == ERR_OK) {
		rc = dcm_ds_write(c, &c->ds, z->to->explicit_vr, false, &k);
	}
	dcm_file_free(c);
	return rc;
}

/* The head: the data set up to its Pixel Data (after a preamble and File
 * Meta Information for part10), then the Pixel Data element's own
 * header; native, the tail too. */
static enum err head_write(struct dcm_transcode *z, char *why, size_t whylen)
{
	struct sink k;
	uint64_t budget = DECOMPRESS_MAX_HEAD;
	enum err rc = part_write(z, false, &budget, &z->out);

	sink_wbuf(&k, &z->out);
	if (rc == ERR_OK && !z->native)
		rc = pixel_header(&k, z->to->explicit_vr, z->dec.bits_alloc <= 8,
		                  (uint32_t)(z->total + (z->total & 1)));
	else if (rc == ERR_OK && z->px != NULL)
		rc = pixel_header(&k, z->to->explicit_vr, z->px->vr == VR_OB, z->px->len);
	if (rc == ERR_OK && z->native)
		rc = part_write(z, true, &budget, &z->tail);
	if (rc == ERR_OK)
		rc = wbuf_err(&z->out);
	if (rc == ERR_OK)
		rc = wbuf_err(&z->tail);
	if (rc == ERR_LIMIT)
		return err_why(why, whylen, rc, "the data set's values besides its pixels exceed %u MiB",
		               DECOMPRESS_MAX_HEAD >> 20);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "the data set cannot be written");
	return ERR_OK;
}

/* Decompression's begin: frame 1 decoded, the total length known. */
static enum err decompress_begin(struct dcm_transcode *z, char *why, size_t whylen)
{
	struct dcm_file *f = z->f;
	enum err rc = render_image_init(f, &f->ds, &z->im, why, whylen);

	z->im_ok = rc == ERR_OK;
	if (rc == ERR_OK) {
		rc = dcm_frames_init(f, &z->fr, why, whylen);
		z->fr_ok = rc == ERR_OK;
	}
	if (rc == ERR_OK && !z->fr.encapsulated)
		rc = err_why(why, whylen, ERR_UNSUPPORTED, "the pixel data is not encapsulated");
	if (rc == ERR_NOTFOUND)
		rc = ERR_UNSUPPORTED;   /* not an image */
	if (rc == ERR_OK) {
		z->d.fr = &z->fr;
		z->d.im = &z->im;
		z->d.codec = render_codec_of(f->ts->uid);
		/* frame 1 decoded now: a precision or layout the decoder does
		 * not take, or a frame that does not decode, is known before
		 * anything is written */
		rc = decode(&z->d, 0, &z->dec, &z->frame, &z->framelen, why, whylen);
	}
	if (rc == ERR_OK) {
		z->total = (uint64_t)z->framelen * z->fr.n;
		if (z->framelen == 0 || z->total + (z->total & 1) > MAX_NATIVE)
			rc = err_why(why, whylen, ERR_LIMIT, "%u frames of %zu bytes do not fit one Pixel Data element",
			             (unsigned)z->fr.n, z->framelen);
	}
	if (rc == ERR_OK) {
		uint64_t packed = 0;
		uint32_t i;
		for (i = 0; i < z->fr.n; i++)
			packed += dcm_frame_size(&z->fr, i);
		z->ratio = packed > 0 ? (double)z->total / (double)packed : 0;
	}
	return rc;
}

/* Re-encoding's begin: the Pixel Data element found and checked. */
static enum err native_begin(struct dcm_transcode *z, char *why, size_t whylen)
{
	const struct dcm_file *f = z->f;
	const struct dcm_elem *px = dcm_ds_find(&f->ds, TAG_PIXEL_DATA);
	char vr[3];

	if (px == NULL)
		return ERR_OK;
	if (px->seq != NULL || (px->flags & DCM_EF_ENCAPS) || (px->vr != VR_OB && px->vr != VR_OW) || (px->len & 1))
		return err_why(why, whylen, ERR_UNSUPPORTED, "its Pixel Data (%s, %u bytes) is not a native value",
		               vr_name(px->vr, vr), (unsigned)px->len);
	if ((px->flags & DCM_EF_BULK) && (!f->bulk_ok || f->src == NULL || f->src->read_at == NULL))
		return err_why(why, whylen, ERR_UNSUPPORTED, "its Pixel Data cannot be read again");
	z->px = px;
	return ERR_OK;
}

enum err dcm_transcode_begin(struct dcm_file *f, const struct dcm_ts *to, bool part10, struct dcm_transcode **out,
                             char *why, size_t whylen)
{
	struct dcm_transcode *z;
	enum err rc;

	*out = NULL;
	if (to == NULL || to->big_endian || to->deflated || to->encapsulated)
		return err_why(why, whylen, ERR_UNSUPPORTED, "transcoding writes Explicit or Implicit VR Little Endian only");
	if (f->ts == NULL || !dcm_transcode_takes(f->ts->uid))
		return err_why(why, whylen, ERR_UNSUPPORTED, "the transfer syntax %s is not transcoded here", f->ts_uid);
	z = calloc(1, sizeof *z);
	if (z == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	z->f = f;
	z->to = to;
	z->part10 = part10;
	z->native = !f->ts->encapsulated;
	wbuf_init(&z->out, DECOMPRESS_MAX_HEAD);
	wbuf_init(&z->tail, DECOMPRESS_MAX_HEAD);
	rc = z->native ? native_begin(z, why, whylen) : decompress_begin(z, why, whylen);
	/* the head written now too: whatever can fail but a later frame
	 * (or a later read of native pixels) fails here, before the caller
	 * has sent anything */
	if (rc == ERR_OK)
		rc = head_write(z, why, whylen);
	if (rc != ERR_OK) {
		dcm_transcode_free(z);
		return rc;
	}
	*out = z;
	return ERR_OK;
}

/* The next chunk of native pixel data, little endian. */
static enum err native_chunk(struct dcm_transcode *z, const uint8_t **p, size_t *n, char *why, size_t whylen)
{
	uint32_t len = z->px->len - z->pos > NATIVE_CHUNK ? NATIVE_CHUNK : z->px->len - z->pos;
	enum err rc;

	if (z->frame == NULL) {
		z->frame = malloc(NATIVE_CHUNK);
		if (z->frame == NULL)
			return err_why(why, whylen, ERR_NOMEM, "out of memory");
	}
	rc = dcm_elem_read_at(z->f, z->px, z->pos, z->frame, len);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "the pixel data cannot be read at byte %u", (unsigned)z->pos);
	*p = z->frame;
	*n = len;
	z->pos += len;
	return ERR_OK;
}

enum err dcm_transcode_next(struct dcm_transcode *z, const uint8_t **p, size_t *n, char *why, size_t whylen)
{
	enum err rc;

	*p = NULL;
	*n = 0;
	if (z->step == 0) {
		z->step = 1;   /* the head, written by begin */
		*p = z->out.p;
		*n = z->out.len;
		return ERR_OK;
	}
	if (z->native) {
		if (z->step == 1 && z->px != NULL && z->pos < z->px->len)
			return native_chunk(z, p, n, why, whylen);
		if (z->step == 1) {
			z->step = 2;
			*p = z->tail.p;
			*n = z->tail.len;
			if (*n > 0)
				return ERR_OK;
		}
		z->step = 3;
		return ERR_OK;   /* n 0: the end */
	}
	if (z->step <= z->fr.n) {
		if (z->step > 1) {
			struct render_image dec;
			size_t len = 0;
			free(z->frame);
			z->frame = NULL;
			rc = decode(&z->d, z->step - 1, &dec, &z->frame, &len, why, whylen);
			if (rc == ERR_OK && len != z->framelen)
				rc = err_why(why, whylen, ERR_PARSE, "frame %u decodes to %zu bytes, frame 1 to %zu",
				             (unsigned)z->step, len, z->framelen);
			/* the head, written, says what frame 1 was */
			if (rc == ERR_OK && (dec.lossy != NULL) != (z->dec.lossy != NULL))
				rc = err_why(why, whylen, ERR_PARSE, "frame %u was compressed %s, frame 1 %s", (unsigned)z->step,
				             dec.lossy != NULL ? "lossily" : "losslessly",
				             z->dec.lossy != NULL ? "lossily" : "losslessly");
			if (rc == ERR_OK && dec.photo != z->dec.photo)
				rc = err_why(why, whylen, ERR_PARSE, "frame %u decodes to other colours than frame 1",
				             (unsigned)z->step);
			if (rc != ERR_OK)
				return rc;
		}
		z->step++;
		*p = z->frame;
		*n = z->framelen;
		return ERR_OK;
	}
	if (z->step == z->fr.n + 1) {
		z->step++;
		if (z->total & 1) {
			*p = (const uint8_t *)"";
			*n = 1;
		}
	}
	return ERR_OK;   /* n 0: the end */
}

enum err dcm_transcode_write(struct dcm_transcode *z, struct sink *k, char *why, size_t whylen)
{
	const uint8_t *p;
	size_t n;
	enum err rc;

	do {
		rc = dcm_transcode_next(z, &p, &n, why, whylen);
		if (rc == ERR_OK && n > 0)
			rc = k->write(k->ctx, p, n);
	} while (rc == ERR_OK && n > 0);
	return rc;
}
