/* render_j2k.c: JPEG 2000 frames (PS3.5 A.4.4, 8.2.4; HTJ2K A.4.11)
 * decoded with OpenJPEG from memory, through a stream of our own
 * callbacks over the frame's bytes. Before OpenJPEG sees anything, the
 * codestream's SIZ marker is read here and checked against the data set
 * (size, components, precision, tiles): OpenJPEG allocates for what the
 * header declares, so a header that lies is refused before it can ask for
 * memory. Its message callbacks are quiet: an error's text becomes the
 * reason. Pure. Layer: dicom. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>
#include "dicomvault/limits.h"
#include "dicomvault/rd.h"
#include "dicomvault/render.h"
#include "render_int.h"

#define J2K_SOC 0xFF4Fu
#define J2K_SIZ 0xFF51u
#define J2K_READ_CHUNK (64u << 10)   /* OpenJPEG's stream buffer */

/* ---- the codestream's header, checked ---- */

/* The codestream of a JPEG 2000 frame: the frame itself, or the content
 * of the first contiguous codestream box ('jp2c') of a JP2 file. */
static enum err codestream(const uint8_t *src, size_t n, struct rd *cs, char *why, size_t whylen)
{
	static const uint8_t jp2_sig[12] = { 0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A };
	struct rd r;

	rd_init(&r, src, n);
	if (n >= 2 && src[0] == 0xFF && src[1] == 0x4F) {
		*cs = r;
		return ERR_OK;
	}
	if (n < sizeof jp2_sig || memcmp(src, jp2_sig, sizeof jp2_sig) != 0)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame is neither a codestream nor a JP2 file");
	while (rd_remaining(&r) > 0) {
		uint32_t len, type, hi, lo;
		size_t body;
		if (rd_get_u32be(&r, &len) != ERR_OK || rd_get_u32be(&r, &type) != ERR_OK)
			break;
		if (len == 1) {   /* a 64-bit length follows */
			if (rd_get_u32be(&r, &hi) != ERR_OK || rd_get_u32be(&r, &lo) != ERR_OK || hi != 0 || lo < 16)
				break;
			body = lo - 16;
		} else if (len == 0) {   /* to the end */
			body = rd_remaining(&r);
		} else if (len >= 8) {
			body = len - 8;
		} else {
			break;
		}
		if (type == 0x6A703263u)   /* 'jp2c' */
			return rd_child(&r, body, cs) == ERR_OK ? ERR_OK
			                                        : err_why(why, whylen, ERR_PARSE, "the JP2 codestream box is cut short");
		if (rd_skip(&r, body) != ERR_OK)
			break;
	}
	return err_why(why, whylen, ERR_PARSE, "the JP2 file has no codestream box");
}

/* The number of tiles along one axis: ceil((size - tile_origin) / tile). */
static uint64_t tiles_along(uint32_t size, uint32_t torigin, uint32_t tile)
{
	return ((uint64_t)size - torigin + tile - 1) / tile;
}

/* The SIZ marker segment (ISO 15444-1 A.5.1), which must follow SOC,
 * against im. *sgnd: whether the codestream's samples are signed;
 * *prec: their largest precision. */
static enum err siz_check(struct rd cs, const struct render_image *im, bool *sgnd, unsigned *prec,
                          uint64_t *ntiles, char *why, size_t whylen)
{
	uint16_t soc, siz, lsiz, rsiz, csiz;
	uint32_t x1, y1, x0, y0, xt, yt, xt0, yt0;
	uint64_t tiles;
	unsigned c;

	if (rd_get_u16be(&cs, &soc) != ERR_OK || soc != J2K_SOC || rd_get_u16be(&cs, &siz) != ERR_OK ||
	    siz != J2K_SIZ || rd_get_u16be(&cs, &lsiz) != ERR_OK || rd_get_u16be(&cs, &rsiz) != ERR_OK ||
	    rd_get_u32be(&cs, &x1) != ERR_OK || rd_get_u32be(&cs, &y1) != ERR_OK || rd_get_u32be(&cs, &x0) != ERR_OK ||
	    rd_get_u32be(&cs, &y0) != ERR_OK || rd_get_u32be(&cs, &xt) != ERR_OK || rd_get_u32be(&cs, &yt) != ERR_OK ||
	    rd_get_u32be(&cs, &xt0) != ERR_OK || rd_get_u32be(&cs, &yt0) != ERR_OK || rd_get_u16be(&cs, &csiz) != ERR_OK)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 codestream does not start with SOC and SIZ");
	(void)rsiz;   /* capabilities: HTJ2K's are decoded too */
	if (lsiz != 38u + 3u * csiz)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 SIZ marker's length does not fit its components");
	if (x0 >= x1 || y0 >= y1 || x1 - x0 != im->cols || y1 - y0 != im->rows)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame is %llux%llu, the data set says %ux%u",
		               x0 < x1 ? (unsigned long long)(x1 - x0) : 0ULL, y0 < y1 ? (unsigned long long)(y1 - y0) : 0ULL,
		               (unsigned)im->cols, (unsigned)im->rows);
	if (csiz != im->spp)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame has %u components, the data set says %u",
		               (unsigned)csiz, (unsigned)im->spp);
	if (xt == 0 || yt == 0 || xt0 > x0 || yt0 > y0 || (uint64_t)xt0 + xt <= x0 || (uint64_t)yt0 + yt <= y0)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 tiles do not cover the image");
	tiles = tiles_along(x1, xt0, xt) * tiles_along(y1, yt0, yt);
	*ntiles = tiles;
	if (tiles > RENDER_J2K_MAX_TILES)
		return err_why(why, whylen, ERR_LIMIT, "the JPEG 2000 frame has %llu tiles, more than the %u decoded",
		               (unsigned long long)tiles, RENDER_J2K_MAX_TILES);
	*prec = 0;
	for (c = 0; c < csiz; c++) {
		uint8_t ssiz, dx, dy;
		unsigned p;
		if (rd_get_u8(&cs, &ssiz) != ERR_OK || rd_get_u8(&cs, &dx) != ERR_OK || rd_get_u8(&cs, &dy) != ERR_OK)
			return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 SIZ marker is cut short");
		p = (ssiz & 0x7Fu) + 1;
		if (dx != 1 || dy != 1)
			return err_why(why, whylen, ERR_UNSUPPORTED, "JPEG 2000 component %u is subsampled (%ux%u)", c + 1,
			               (unsigned)dx, (unsigned)dy);
		if (p > im->bits_alloc || p > 31)
			return err_why(why, whylen, ERR_PARSE,
			               "JPEG 2000 component %u has %u-bit samples, more than Bits Allocated %u", c + 1, p,
			               im->bits_alloc);
		if (c > 0 && ((ssiz & 0x80) != 0) != *sgnd)
			return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 components differ in sign");
		*sgnd = (ssiz & 0x80) != 0;
		if (p > *prec)
			*prec = p;
	}
	return ERR_OK;
}

#define J2K_SOT 0xFF90u
#define J2K_SOD 0xFF93u
#define J2K_EOC 0xFFD9u
#define J2K_COD 0xFF52u
#define J2K_COC 0xFF53u

/* The tile-parts (ISO 15444-1 A.4.2), walked by their Psot lengths after
 * the main header: every tile of the grid must be there with all its
 * tile-parts (OpenJPEG, even strict, decodes a codestream with tiles left
 * out as a success, those tiles blank), and no tile-part header may change
 * the coding style (COD, COC: the wavelet, hence lossy or not, and the
 * colour transform are read from the main header). */
static enum err tiles_check(struct rd cs, uint64_t ntiles, char *why, size_t whylen)
{
	uint16_t seen[RENDER_J2K_MAX_TILES], total[RENDER_J2K_MAX_TILES];
	uint16_t m, len, isot;
	uint32_t psot;
	uint8_t tp, tn;
	uint64_t t;

	if (ntiles == 0 || ntiles > RENDER_J2K_MAX_TILES)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame has %llu tiles", (unsigned long long)ntiles);
	memset(seen, 0, sizeof seen);
	memset(total, 0, sizeof total);
	if (rd_skip(&cs, 2) != ERR_OK)   /* SOC */
		goto cut;
	for (;;) {   /* the main header's marker segments, to the first SOT */
		if (rd_get_u16be(&cs, &m) != ERR_OK)
			goto cut;
		if (m == J2K_SOT)
			break;
		if (m < 0xFF30 || rd_get_u16be(&cs, &len) != ERR_OK || len < 2 || rd_skip(&cs, len - 2u) != ERR_OK)
			goto cut;
	}
	for (;;) {   /* at a tile-part, just after its SOT */
		size_t start = cs.pos - 2, end;
		if (rd_get_u16be(&cs, &len) != ERR_OK || len != 10 || rd_get_u16be(&cs, &isot) != ERR_OK ||
		    rd_get_u32be(&cs, &psot) != ERR_OK || rd_get_u8(&cs, &tp) != ERR_OK || rd_get_u8(&cs, &tn) != ERR_OK)
			goto cut;
		if (isot >= ntiles)
			return err_why(why, whylen, ERR_PARSE, "a JPEG 2000 tile-part names tile %u of %llu", isot,
			               (unsigned long long)ntiles);
		if (seen[isot] == UINT16_MAX)
			goto cut;
		seen[isot]++;
		if (tn != 0)
			total[isot] = tn;
		/* its header, to SOD */
		for (;;) {
			if (rd_get_u16be(&cs, &m) != ERR_OK)
				goto cut;
			if (m == J2K_SOD)
				break;
			if (m == J2K_COD || m == J2K_COC)
				return err_why(why, whylen, ERR_UNSUPPORTED,
				               "a JPEG 2000 tile-part changes the coding style (not decoded)");
			if (m < 0xFF30 || rd_get_u16be(&cs, &len) != ERR_OK || len < 2 || rd_skip(&cs, len - 2u) != ERR_OK)
				goto cut;
		}
		if (psot == 0)   /* the last tile-part: to the EOC */
			end = cs.len >= 2 ? cs.len - 2 : cs.len;
		else if (psot < 14 || psot > cs.len - start)
			goto cut;
		else
			end = start + psot;
		cs.pos = end;
		if (rd_get_u16be(&cs, &m) != ERR_OK)
			goto cut;
		if (m == J2K_EOC)
			break;
		if (m != J2K_SOT || psot == 0)
			goto cut;
	}
	/* fewer tile-parts than TNsot announces: some left out (more: an
	 * encoder that counts wrong, which OpenJPEG takes too) */
	for (t = 0; t < ntiles; t++)
		if (seen[t] == 0 || seen[t] < total[t])
			return err_why(why, whylen, ERR_PARSE, "JPEG 2000 tile %llu has %u of its %u tile-parts",
			               (unsigned long long)t, seen[t], total[t] ? total[t] : 1u);
	return ERR_OK;
cut:
	return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 tile-parts do not follow one another to the end");
}

/* ---- OpenJPEG over memory ---- */

struct j2k {
	struct rd cs;          /* the codestream; pos: what OpenJPEG has read */
	char msg[160];         /* OpenJPEG's first error */
	opj_stream_t *stream;
	opj_codec_t *codec;
	opj_image_t *img;
	opj_codestream_info_v2_t *info;
};

static OPJ_SIZE_T j2k_read(void *buf, OPJ_SIZE_T n, void *user)
{
	struct j2k *j = user;
	size_t left = rd_remaining(&j->cs);

	if (left == 0)
		return (OPJ_SIZE_T)-1;   /* the end */
	if (n > left)
		n = left;
	if (rd_get_bytes(&j->cs, buf, n) != ERR_OK)
		return (OPJ_SIZE_T)-1;
	return n;
}

static OPJ_OFF_T j2k_skip(OPJ_OFF_T n, void *user)
{
	struct j2k *j = user;
	size_t left = rd_remaining(&j->cs);

	if (n < 0)
		return -1;
	if ((uint64_t)n > left)
		n = (OPJ_OFF_T)left;
	j->cs.pos += (size_t)n;
	return n;
}

static OPJ_BOOL j2k_seek(OPJ_OFF_T to, void *user)
{
	struct j2k *j = user;

	if (to < 0 || (uint64_t)to > j->cs.len)
		return OPJ_FALSE;
	j->cs.pos = (size_t)to;
	return OPJ_TRUE;
}

static void j2k_error(const char *msg, void *user)
{
	struct j2k *j = user;
	size_t k;

	if (j->msg[0] != 0 || msg == NULL)
		return;
	snprintf(j->msg, sizeof j->msg, "%s", msg);
	for (k = 0; j->msg[k] != 0; k++)   /* one line of printable text */
		if (j->msg[k] < 0x20 || j->msg[k] > 0x7E)
			j->msg[k] = j->msg[k] == '\n' && j->msg[k + 1] == 0 ? 0 : ' ';
}

static void j2k_quiet(const char *msg, void *user)
{
	(void)msg;
	(void)user;
}

static void j2k_fini(struct j2k *j)
{
	if (j->info != NULL)
		opj_destroy_cstr_info(&j->info);
	if (j->img != NULL)
		opj_image_destroy(j->img);
	if (j->codec != NULL)
		opj_destroy_codec(j->codec);
	if (j->stream != NULL)
		opj_stream_destroy(j->stream);
}

static const char *j2k_msg(const struct j2k *j)
{
	return j->msg[0] ? j->msg : "no reason given";
}

/* The codestream decoded into j->img (every component of the image's
 * full size, with data) and its header's coding style into j->info. */
static enum err j2k_run(struct j2k *j, const struct render_image *im, char *why, size_t whylen)
{
	opj_dparameters_t par;
	unsigned c;

	j->stream = opj_stream_create(J2K_READ_CHUNK, OPJ_TRUE);
	j->codec = opj_create_decompress(OPJ_CODEC_J2K);
	if (j->stream == NULL || j->codec == NULL)
		return err_why(why, whylen, ERR_NOMEM, "out of memory");
	opj_stream_set_user_data(j->stream, j, NULL);
	opj_stream_set_user_data_length(j->stream, j->cs.len);
	opj_stream_set_read_function(j->stream, j2k_read);
	opj_stream_set_skip_function(j->stream, j2k_skip);
	opj_stream_set_seek_function(j->stream, j2k_seek);
	(void)opj_set_info_handler(j->codec, j2k_quiet, j);
	(void)opj_set_warning_handler(j->codec, j2k_quiet, j);
	(void)opj_set_error_handler(j->codec, j2k_error, j);
	opj_set_default_decoder_parameters(&par);
	if (!opj_setup_decoder(j->codec, &par) || !opj_codec_set_threads(j->codec, 0) ||
	    !opj_decoder_set_strict_mode(j->codec, OPJ_TRUE))
		return err_why(why, whylen, ERR_INTERNAL, "OpenJPEG refuses its set-up: %s", j2k_msg(j));
	if (!opj_read_header(j->stream, j->codec, &j->img) || j->img == NULL)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 header does not decode: %s", j2k_msg(j));
	j->info = opj_get_cstr_info(j->codec);
	if (j->info == NULL || j->info->m_default_tile_info.tccp_info == NULL)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 header has no coding style");
	if (!opj_decode(j->codec, j->stream, j->img) || !opj_end_decompress(j->codec, j->stream))
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame does not decode: %s", j2k_msg(j));
	/* what OpenJPEG made of it, against the header checked before */
	if (j->img->numcomps != im->spp || j->info->nbcomps != im->spp)
		return err_why(why, whylen, ERR_PARSE, "the JPEG 2000 frame decodes to %u components", j->img->numcomps);
	for (c = 0; c < im->spp; c++) {
		const opj_image_comp_t *k = &j->img->comps[c];
		if (k->data == NULL || k->w != im->cols || k->h != im->rows || k->factor != 0 || k->prec > im->bits_alloc)
			return err_why(why, whylen, ERR_PARSE, "JPEG 2000 component %u decodes to another size", c + 1);
	}
	return ERR_OK;
}

/* The photometric interpretation of the decoded pixels: OpenJPEG undoes
 * the codestream's multiple component transform (mct), so YBR_ICT and
 * YBR_RCT become RGB. */
static enum err j2k_photo(struct render_image *im, bool mct, char *why, size_t whylen)
{
	if (im->spp != 3) {
		if (mct)
			return err_why(why, whylen, ERR_PARSE, "a JPEG 2000 colour transform of %u components", im->spp);
		return ERR_OK;
	}
	if (im->photo == RENDER_YBR_FULL_422)
		return err_why(why, whylen, ERR_UNSUPPORTED, "YBR_FULL_422 JPEG 2000 frames are not decoded");
	if (mct && (im->photo == RENDER_YBR_ICT || im->photo == RENDER_YBR_RCT))
		im->photo = RENDER_RGB;
	else if (!mct && im->photo == RENDER_YBR_ICT)
		im->photo = RENDER_YBR_FULL;   /* ICT's equations are YBR_FULL's */
	else if (!mct && im->photo == RENDER_YBR_RCT)
		return err_why(why, whylen, ERR_PARSE, "YBR_RCT, but the JPEG 2000 frame has no colour transform");
	/* RGB with a colour transform (a common mislabelling of YBR_RCT or
	 * YBR_ICT) decodes to RGB all the same; YBR_FULL stays itself */
	return ERR_OK;
}

enum err render_j2k_decode(struct render_image *im, bool lossy, const uint8_t *src, size_t n, uint8_t **out,
                           size_t *outlen, char *why, size_t whylen)
{
	struct j2k j;
	struct render_image dec = *im;
	uint8_t *buf = NULL;
	size_t np = (size_t)im->rows * im->cols, bps = im->bits_alloc / 8, total = 0, i;
	unsigned c, prec = 0;
	uint64_t ntiles = 0;
	bool sgnd = false, mct;
	enum err rc = ERR_INTERNAL;

	memset(&j, 0, sizeof j);
	rc = render_dec_check(im, "JPEG 2000", n, 2, &total, why, whylen);
	if (rc != ERR_OK)
		return rc;
	rc = codestream(src, n, &j.cs, why, whylen);
	if (rc == ERR_OK)
		rc = siz_check(j.cs, im, &sgnd, &prec, &ntiles, why, whylen);
	if (rc == ERR_OK)
		rc = tiles_check(j.cs, ntiles, why, whylen);
	if (rc == ERR_OK)
		rc = j2k_run(&j, im, why, whylen);
	if (rc != ERR_OK)
		goto out;
	mct = j.info->m_default_tile_info.mct != 0;
	for (c = 0; c < im->spp; c++)   /* the 9-7 irreversible wavelet: lossy */
		lossy |= j.info->m_default_tile_info.tccp_info[c].qmfbid == 0;
	rc = j2k_photo(&dec, mct, why, whylen);
	if (rc != ERR_OK)
		goto out;
	buf = malloc(total);
	if (buf == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (c = 0; c < im->spp; c++) {
		const OPJ_INT32 *d = j.img->comps[c].data;
		bool pattern = !j.img->comps[c].sgnd;
		for (i = 0; i < np; i++)
			if (!render_sample_put(im, d[i], pattern, lossy, buf + (i * im->spp + c) * bps)) {
				rc = err_why(why, whylen, ERR_PARSE,
				             "a JPEG 2000 sample (%ld) does not fit Bits Stored %u and Pixel Representation %u",
				             (long)d[i], im->bits_stored, (unsigned)im->is_signed);
				goto out;
			}
	}
	render_dec_done(im, &dec, lossy ? "ISO_15444_1" : NULL, buf, total, out, outlen);
	buf = NULL;
	rc = ERR_OK;
out:
	free(buf);
	j2k_fini(&j);
	return rc;
}
