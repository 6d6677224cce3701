/* wado_meta.c: the WADO-RS resources that parse a stored object rather
 * than send it whole (PS3.18 10.4): metadata (application/dicom+json, one
 * object per instance, binary values over DICOMWEB_BULK_THRESHOLD as
 * BulkDataURIs), bulk data (the value at a BulkDataURI) and frames. The
 * object is read through retrieve_src: random access to the plaintext,
 * every chunk a read touches authenticated before use, bulk values left in
 * the (encrypted) source and read piece by piece as they are sent, so
 * memory stays bounded whatever the object's size. A read that fails
 * authentication in the middle of an answer cuts it short and is audited.
 * See docs/internals/dicomweb.md. Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/frame.h"
#include "dicomvault/json.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/render.h"
#include "dicomvault/store.h"
#include "dicomvault/transcode.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "http_int.h"
#include "wado_int.h"


/* ---- one stored instance, parsed with its bulk values left in the source ---- */

void wado_inst_close(struct wado_inst *in)
{
	dcm_file_free(in->f);
	retrieve_close(in->rt);
	memset(in, 0, sizeof *in);
}

enum err wado_inst_open(struct vault *v, const struct wado_item *it, uint32_t bulk, struct wado_inst *in, char *why,
                        size_t whylen)
{
	enum err rc;

	memset(in, 0, sizeof *in);
	rc = retrieve_open(v, it->sop, &in->rt, why, whylen);   /* ix_lock for its look-up only */
	if (rc == ERR_OK && retrieve_size(in->rt) != it->size)
		rc = ERR_AUTH;
	if (rc == ERR_OK)
		rc = retrieve_parse(in->rt, bulk, &in->src, &in->f, why, whylen);
	if (rc == ERR_AUTH)
		snprintf(why, whylen, "the object of %s failed authentication (tampered or damaged)", it->sop);
	if (rc != ERR_OK)
		wado_inst_close(in);
	return rc;
}

enum MHD_Result wado_fail_500(struct http_req *r, const struct wado_who *who, const struct wado_list *l, size_t i,
                              enum err rc, const char *why)
{
	const struct wado_item *it = &l->it[i];

	log_error("retrieve %s by %s: %s", it->sop, who->user, why[0] ? why : err_str(rc));
	(void)wado_audit_fail(who, rc, l->patient, l->study, l->series[it->series].uid, it->sop);
	return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
	                    rc == ERR_AUTH ? "the stored object failed its integrity check" : "internal error", NULL);
}

enum MHD_Result wado_list_error(struct http_req *r, enum err rc, const char *series, const char *sop)
{
	if (rc == ERR_NOTFOUND)
		return http_problem(r, MHD_HTTP_NOT_FOUND,
		                    sop ? "no such instance" : series ? "no such series" : "no such study", NULL);
	log_error("retrieve by %s: index: %s", r->sess.user, err_str(rc));
	return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
	                    rc == ERR_LIMIT ? "too many instances in one answer" : "internal error", NULL);
}

/* ---- metadata ---- */

/* The JSON writer gives bulk_uri the tags of an element's path but not the
 * item numbers, so the BulkDataURIs are found beforehand by walking the
 * data set in the writer's order with the writer's rule (an encapsulated
 * value, or a non-empty binary-VR value over the threshold; group lengths
 * left out); each call of bulk_uri takes the next one and checks its tag
 * and depth. */
struct bulkref {
	uint32_t tag;
	unsigned depth;
	size_t off;            /* of its path text in paths */
};

struct bulkwalk {
	struct bulkref *refs;
	size_t n, cap, next;
	struct wbuf paths;     /* NUL-terminated path texts */
	const char *prefix;    /* ".../instances/{sop}/bulkdata/" */
	enum err err;
};

static void walk_add(struct bulkwalk *b, uint32_t tag, unsigned depth, const char *path)
{
	if (b->err != ERR_OK)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bulkref *p = realloc(b->refs, cap * sizeof *p);
		if (p == NULL) {
			b->err = ERR_NOMEM;
			return;
		}
		b->refs = p;
		b->cap = cap;
	}
	b->refs[b->n].tag = tag;
	b->refs[b->n].depth = depth;
	b->refs[b->n].off = b->paths.len;
	b->n++;
	wbuf_put(&b->paths, path, strlen(path) + 1);
}

static void walk_ds(struct bulkwalk *b, const struct dcm_ds *ds, const char *prefix, unsigned depth)
{
	char p[DICOMWEB_BULK_PATH_MAX];
	uint32_t i, k;

	if (depth > DCM_MAX_DEPTH + 1) {
		b->err = ERR_LIMIT;
		return;
	}
	for (i = 0; i < ds->n && b->err == ERR_OK; i++) {
		const struct dcm_elem *e = &ds->e[i];
		if (TAG_ELEM(e->tag) == 0)
			continue;
		if (snprintf(p, sizeof p, "%s%s%08X", prefix, prefix[0] ? "." : "", (unsigned)e->tag) >= (int)sizeof p) {
			b->err = ERR_LIMIT;
			return;
		}
		if (e->flags & DCM_EF_ENCAPS) {
			uint64_t total = 8;
			for (k = 0; k < e->seq->nfrags; k++)
				total += 8 + (uint64_t)e->seq->frags[k].len;
			if ((total > UINT32_MAX ? UINT32_MAX : total) > DICOMWEB_BULK_THRESHOLD)
				walk_add(b, e->tag, depth + 1, p);
		} else if (e->seq != NULL) {
			for (k = 0; k < e->seq->n && b->err == ERR_OK; k++) {
				char q[DICOMWEB_BULK_PATH_MAX];
				if (snprintf(q, sizeof q, "%s.%u", p, (unsigned)k) >= (int)sizeof q) {
					b->err = ERR_LIMIT;
					return;
				}
				walk_ds(b, e->seq->items[k], q, depth + 1);
			}
		} else if (e->len > DICOMWEB_BULK_THRESHOLD && vr_is_bulk(dcm_elem_effective_vr(ds, e))) {
			walk_add(b, e->tag, depth + 1, p);
		}
	}
}

static enum err bulk_uri(void *ctx, const uint32_t *path, unsigned depth, struct wbuf *uri)
{
	struct bulkwalk *b = ctx;
	const struct bulkref *ref;

	if (b->next >= b->n)
		return ERR_INTERNAL;
	ref = &b->refs[b->next++];
	if (depth == 0 || ref->depth != depth || ref->tag != path[depth - 1])
		return ERR_INTERNAL;   /* the writer's order is not ours: refuse rather than point elsewhere */
	wbuf_puts(uri, b->prefix);
	wbuf_puts(uri, (const char *)b->paths.p + ref->off);
	return ERR_OK;
}

struct mstream {
	struct vault *v;
	struct wado_list l;
	struct wado_who who;
	char base[sizeof ((struct http_server *)0)->base + 8];
	size_t i;                /* next instance to render */
	struct wbuf out;
	size_t opos;
	bool failed;
	const char *media;       /* application/dicom+json or application/json */
};

/* Appends instance i's JSON object (with the array's punctuation). */
static enum err render(struct mstream *ms, size_t i, char *why, size_t whylen)
{
	const struct wado_item *it = &ms->l.it[i];
	struct bulkwalk b;
	struct dcm_json_opts o;
	struct wado_inst in;
	struct sink k;
	char prefix[sizeof ms->base + 4 * WADO_UID_MAX + 96];
	enum err rc;

	rc = wado_inst_open(ms->v, it, DICOMWEB_BULK_THRESHOLD, &in, why, whylen);
	if (rc != ERR_OK)
		return rc;
	snprintf(prefix, sizeof prefix, "%s/dicom-web/studies/%s/series/%s/instances/%s/bulkdata/", ms->base,
	         ms->l.study, ms->l.series[it->series].uid, it->sop);
	memset(&b, 0, sizeof b);
	wbuf_init(&b.paths, DICOMWEB_JSON_MAX);
	b.prefix = prefix;
	walk_ds(&b, &in.f->ds, "", 0);
	rc = b.err != ERR_OK ? b.err : wbuf_err(&b.paths);
	memset(&o, 0, sizeof o);
	o.bulk_threshold = DICOMWEB_BULK_THRESHOLD;
	o.bulk_uri = bulk_uri;
	o.ctx = &b;
	wbuf_putc(&ms->out, i == 0 ? '[' : ',');
	sink_wbuf(&k, &ms->out);
	if (rc == ERR_OK)
		rc = dcm_json_write(in.f, &in.f->ds, &o, &k);
	if (rc == ERR_OK && b.next != b.n)
		rc = ERR_INTERNAL;
	if (rc == ERR_OK && i + 1 == ms->l.n)
		wbuf_putc(&ms->out, ']');
	if (rc == ERR_OK)
		rc = wbuf_err(&ms->out);
	if (rc != ERR_OK && why[0] == 0)
		snprintf(why, whylen, "metadata of %s: %s", it->sop, err_str(rc));
	free(b.refs);
	wbuf_fini(&b.paths);
	wado_inst_close(&in);
	return rc;
}

static ssize_t mstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct mstream *ms = cls;

	(void)pos;
	if (ms->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	while (ms->opos == ms->out.len) {
		char why[256] = "";
		enum err rc;
		if (ms->i == ms->l.n)
			return MHD_CONTENT_READER_END_OF_STREAM;
		wbuf_reset(&ms->out);
		ms->opos = 0;
		rc = render(ms, ms->i, why, sizeof why);
		if (rc != ERR_OK) {
			const struct wado_item *it = &ms->l.it[ms->i];
			log_error("metadata of %s by %s: %s: response aborted", it->sop, ms->who.user, why);
			(void)wado_audit_fail(&ms->who, rc, ms->l.patient, ms->l.study, ms->l.series[it->series].uid,
			                      it->sop);
			ms->failed = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		ms->i++;
	}
	if (max > ms->out.len - ms->opos)
		max = ms->out.len - ms->opos;
	memcpy(buf, ms->out.p + ms->opos, max);
	ms->opos += max;
	return (ssize_t)max;
}

static void mstream_free(void *cls)
{
	struct mstream *ms = cls;

	wado_list_fini(&ms->l);
	wbuf_fini(&ms->out);
	free(ms);
}

enum MHD_Result wado_metadata(struct http_req *r, const char *study, const char *series, const char *sop)
{
	struct mstream *ms;
	char why[256] = "";
	size_t n;
	const char *u;
	enum err rc;

	ms = calloc(1, sizeof *ms);
	if (ms == NULL)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
	ms->v = r->srv->vault;
	wbuf_init(&ms->out, DICOMWEB_JSON_MAX);
	wado_who_init(r, &ms->who);
	u = dw_base_url(r, &n);
	snprintf(ms->base, sizeof ms->base, "%.*s", (int)n, u);
	rc = wado_list_make(r, study, series, sop, &ms->l);
	if (rc != ERR_OK) {
		mstream_free(ms);
		return wado_list_error(r, rc, series, sop);
	}
	ms->media = wado_json_media(r);
	if (ms->media == NULL) {
		mstream_free(ms);
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "only application/dicom+json (or application/json) is offered", NULL);
	}
	if (wado_audit(&ms->who, AUDIT_SUCCESS, NULL, ms->l.patient, study, series, sop, sop ? 0 : ms->l.n) != ERR_OK) {
		mstream_free(ms);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	/* the first object now: a failure there is a 500, not a cut answer */
	rc = render(ms, 0, why, sizeof why);
	if (rc != ERR_OK) {
		enum MHD_Result res = wado_fail_500(r, &ms->who, &ms->l, 0, rc, why);
		mstream_free(ms);
		return res;
	}
	ms->i = 1;
	return http_send_callback(r, MHD_HTTP_OK, ms->media, MHD_SIZE_UNKNOWN, mstream_read, ms,
	                          mstream_free);
}

/* ---- frames and bulk data ---- */

/* PS3.18 Table 8.7.3-5: the media type of a compressed transfer syntax's
 * frames. Video transfer syntaxes are not listed: their frames are not
 * offered. */
static const struct {
	const char *ts, *media;
} ts_media[] = {
	{ "1.2.840.10008.1.2.4.50", "image/jpeg" },  { "1.2.840.10008.1.2.4.51", "image/jpeg" },
	{ "1.2.840.10008.1.2.4.57", "image/jpeg" },  { "1.2.840.10008.1.2.4.70", "image/jpeg" },
	{ "1.2.840.10008.1.2.4.80", "image/jls" },   { "1.2.840.10008.1.2.4.81", "image/jls" },
	{ "1.2.840.10008.1.2.4.90", "image/jp2" },   { "1.2.840.10008.1.2.4.91", "image/jp2" },
	{ "1.2.840.10008.1.2.4.92", "image/jpx" },   { "1.2.840.10008.1.2.4.93", "image/jpx" },
	{ "1.2.840.10008.1.2.4.201", "image/jphc" }, { "1.2.840.10008.1.2.4.202", "image/jphc" },
	{ "1.2.840.10008.1.2.4.203", "image/jphc" }, { "1.2.840.10008.1.2.5", "image/dicom-rle" },
	{ "1.2.840.10008.1.2.1.98", "application/octet-stream" },
};

static const char *media_of(const char *ts)
{
	size_t i;

	for (i = 0; i < sizeof ts_media / sizeof ts_media[0]; i++)
		if (strcmp(ts_media[i].ts, ts) == 0)
			return ts_media[i].media;
	return NULL;
}

/* What the frames (or a bulk value) are sent as: the part Content-Type. */
struct fneg {
	bool encapsulated;
	bool can_decompress;     /* encapsulated frames the decoders give as the data set describes them */
	bool decompress;         /* chosen: uncompressed frames */
	const char *ts;          /* the stored transfer syntax */
	const char *media;       /* encapsulated: its media type */
	struct http_req *r;      /* whose Accept header refuses (q=0) what a wildcard would choose */
	char part[200];          /* chosen part Content-Type */
};

/* Whether the Accept header takes parts of type with transfer syntax ts
 * (the type as the range a named it, when it named one): a choice made
 * through a wildcard is not one a more specific range refuses with q=0. */
static bool taken(const struct fneg *ng, const struct accept_range *a, const char *type, const char *ts)
{
	if (a->type[0] && strcmp(a->type, "*/*") != 0)
		type = a->type;
	return wado_accept_q(ng->r, "multipart/related", type, ts) > 0;
}

/* A range's type parameter that names media: itself, or a wildcard of
 * its top-level type ("image/" then "*": PS3.18 8.7.3.5 shows one as the
 * type of a multipart/related range). */
static bool type_covers(const char *type, const char *media)
{
	size_t n = strlen(type);

	if (strcmp(type, media) == 0)
		return true;
	return n > 2 && strcmp(type + n - 2, "/*") == 0 && strncmp(type, media, n - 1) == 0;
}

static bool accept_frames(void *ctx, const struct accept_range *a)
{
	struct fneg *ng = ctx;
	bool any_type;

	if (a->q == 0)
		return false;
	if (strcmp(a->media, "*/*") != 0 && strcmp(a->media, "multipart/*") != 0 &&
	    strcmp(a->media, "multipart/related") != 0)
		return false;
	any_type = a->type[0] == 0 || strcmp(a->type, "*/*") == 0;
	if (!ng->encapsulated) {
		if (!any_type && strcmp(a->type, "application/octet-stream") != 0)
			return false;
		if (a->ts[0] && strcmp(a->ts, "*") != 0 && strcmp(a->ts, NATIVE_TS) != 0)
			return false;
		snprintf(ng->part, sizeof ng->part, "application/octet-stream; transfer-syntax=%s", NATIVE_TS);
		return taken(ng, a, "application/octet-stream", NATIVE_TS);
	}
	/* uncompressed frames asked for (octet-stream without transfer-syntax
	 * is explicit VR little endian, PS3.18 8.7.3.5.2; or that syntax
	 * named): decompressed, when the decoders take them */
	if (ng->can_decompress && (any_type || strcmp(a->type, "application/octet-stream") == 0) &&
	    (strcmp(a->ts, NATIVE_TS) == 0 || (a->ts[0] == 0 && !any_type)) &&
	    taken(ng, a, "application/octet-stream", NATIVE_TS)) {
		ng->decompress = true;
		snprintf(ng->part, sizeof ng->part, "application/octet-stream; transfer-syntax=%s", NATIVE_TS);
		return true;
	}
	if (a->ts[0] && strcmp(a->ts, "*") != 0 && strcmp(a->ts, ng->ts) != 0)
		return false;
	if ((any_type || type_covers(a->type, ng->media) ||
	     (strcmp(ng->media, "image/dicom-rle") == 0 && strcmp(a->type, "image/x-dicom-rle") == 0)) &&
	    taken(ng, a, ng->media, ng->ts)) {
		snprintf(ng->part, sizeof ng->part, "%s; transfer-syntax=%s", ng->media, ng->ts);
		return true;
	}
	/* compressed frames labelled as octet-stream when the client takes
	 * any transfer syntax (or names the stored one): what viewers ask */
	if (strcmp(a->type, "application/octet-stream") == 0 && a->ts[0] && taken(ng, a, NULL, ng->ts)) {
		snprintf(ng->part, sizeof ng->part, "application/octet-stream; transfer-syntax=%s", ng->ts);
		return true;
	}
	return false;
}

enum bkind { B_FRAMES, B_VALUE };

/* Parts streamed from the parsed object: frames (a list, or all of them)
 * or one value. */
struct bstream {
	struct wado_inst in;
	struct wado_list l;
	struct wado_who who;
	enum bkind kind;
	struct dcm_frames fr;
	const struct dcm_elem *e;
	uint32_t *list;          /* 0-based frame indexes; NULL: all frames */
	/* frames sent decompressed: the image, each frame's decoded size,
	 * the frame decoded for the current part */
	bool decompress;
	bool im_ok;
	struct render_image im;
	size_t declen;
	uint8_t *dec;
	size_t dec_j;            /* the part whose frame dec holds (SIZE_MAX: none) */
	size_t nparts;
	size_t j;                /* current part */
	bool in_body;
	uint64_t pos;            /* in the current part's body */
	char boundary[MP_BOUNDARY_MAX + 1];
	char part[200];
	struct wbuf piece;
	size_t ppos;
	bool tail, failed;
};

static uint64_t part_size(const struct bstream *bs, size_t j)
{
	if (bs->kind == B_VALUE)
		return bs->e->len;
	if (bs->decompress)
		return bs->declen;
	return dcm_frame_size(&bs->fr, bs->list ? bs->list[j] : (uint32_t)j);
}

/* Part j's frame decompressed into bs->dec. */
static enum err decode_part(struct bstream *bs, size_t j, char *why, size_t whylen)
{
	size_t len = 0;
	enum err rc;

	free(bs->dec);
	bs->dec = NULL;
	bs->dec_j = SIZE_MAX;
	rc = dcm_frame_decompress(&bs->fr, &bs->im, bs->l.ts[bs->l.it[0].ts], bs->list ? bs->list[j] : (uint32_t)j,
	                          &bs->dec, &len, why, whylen);
	if (rc == ERR_OK && len != bs->declen) {
		rc = err_why(why, whylen, ERR_PARSE, "a frame decodes to %zu bytes, not %zu", len, bs->declen);
		free(bs->dec);
		bs->dec = NULL;
	}
	if (rc == ERR_OK)
		bs->dec_j = j;
	return rc;
}

/* n bytes of the current part's decompressed frame from bs->pos (the
 * frame decoded at its first byte, unless it was before the answer). */
static enum err decoded_read(struct bstream *bs, char *buf, size_t n)
{
	char why[256] = "";
	enum err rc;

	if (bs->dec_j != bs->j) {
		rc = decode_part(bs, bs->j, why, sizeof why);
		if (rc != ERR_OK) {
			log_error("frames of %s by %s: %s", bs->l.it[0].sop, bs->who.user, why);
			return rc == ERR_AUTH ? rc : ERR_PARSE;
		}
	}
	memcpy(buf, bs->dec + bs->pos, n);
	return ERR_OK;
}

/* The first part's frame decompressed before the answer begins: a frame
 * the decoders do not take (or a damaged one) is a 406 naming why, not a
 * cut answer. False: the answer is queued. */
static bool first_decoded(struct http_req *r, struct bstream *bs, enum MHD_Result *res)
{
	char why[200] = "", detail[300];
	enum err rc;

	if (!bs->decompress || bs->nparts == 0)
		return true;
	rc = decode_part(bs, 0, why, sizeof why);
	if (rc == ERR_OK)
		return true;
	if (rc == ERR_AUTH || rc == ERR_NOMEM || rc == ERR_IO) {
		*res = wado_fail_500(r, &bs->who, &bs->l, 0, rc, why);
		return false;
	}
	snprintf(detail, sizeof detail, "the frame cannot be decompressed (%s): ask for its stored transfer syntax %s",
	         why, bs->l.ts[bs->l.it[0].ts]);
	*res = http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, detail, NULL);
	return false;
}

static ssize_t bstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct bstream *bs = cls;
	enum err rc;

	(void)pos;
	if (bs->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	for (;;) {
		if (bs->ppos < bs->piece.len) {
			size_t n = bs->piece.len - bs->ppos;
			if (n > max)
				n = max;
			memcpy(buf, bs->piece.p + bs->ppos, n);
			bs->ppos += n;
			return (ssize_t)n;
		}
		if (bs->tail)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (bs->in_body) {
			uint64_t left = part_size(bs, bs->j) - bs->pos;
			size_t n = left < max ? (size_t)left : max;
			if (n > 0) {
				if (bs->decompress)
					rc = decoded_read(bs, buf, n);
				else if (bs->kind == B_VALUE)
					rc = dcm_elem_read_at(bs->in.f, bs->e, bs->pos, buf, n);
				else
					rc = dcm_frame_read(&bs->fr, bs->list ? bs->list[bs->j] : (uint32_t)bs->j, bs->pos, buf,
					                    n);
				if (rc != ERR_OK) {
					const struct wado_item *it = &bs->l.it[0];
					log_error("retrieve %s by %s: %s: response aborted", it->sop, bs->who.user,
					          audit_reason_of(rc));
					(void)wado_audit_fail(&bs->who, rc, bs->l.patient, bs->l.study,
					                      bs->l.series[it->series].uid, it->sop);
					bs->failed = true;
					return MHD_CONTENT_READER_END_WITH_ERROR;
				}
				bs->pos += n;
				return (ssize_t)n;
			}
			bs->in_body = false;
			bs->j++;
		}
		wbuf_reset(&bs->piece);
		bs->ppos = 0;
		if (bs->j == bs->nparts) {
			mp_write_close(&bs->piece, bs->boundary);
			bs->tail = true;
		} else {
			mp_write_part_head(&bs->piece, bs->boundary, bs->part, bs->j == 0);
			bs->in_body = true;
			bs->pos = 0;
		}
		if (wbuf_err(&bs->piece) != ERR_OK) {
			bs->failed = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

static void bstream_free(void *cls)
{
	struct bstream *bs = cls;

	dcm_frames_fini(&bs->fr);
	if (bs->im_ok)
		render_image_fini(&bs->im);
	free(bs->dec);
	wado_inst_close(&bs->in);
	wado_list_fini(&bs->l);
	wbuf_fini(&bs->piece);
	free(bs->list);
	free(bs);
}

/* Sends bs (list, opened instance, kind and part type set). */
static enum MHD_Result bstream_send(struct http_req *r, struct bstream *bs)
{
	char ctype[sizeof bs->part + MP_BOUNDARY_MAX + 64], type[sizeof bs->part];
	struct wbuf w;
	uint64_t total = 0;
	uint8_t rnd[16];
	const char *semi;
	size_t j;
	enum err rc;

	if (rand_bytes(rnd, sizeof rnd) != ERR_OK) {
		bstream_free(bs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	mp_boundary_make(rnd, bs->boundary);
	wbuf_init(&w, 4096);
	for (j = 0; j < bs->nparts; j++) {
		wbuf_reset(&w);
		mp_write_part_head(&w, bs->boundary, bs->part, j == 0);
		total += w.len + part_size(bs, j);
	}
	wbuf_reset(&w);
	mp_write_close(&w, bs->boundary);
	total += w.len;
	rc = wbuf_err(&w);
	wbuf_fini(&w);
	if (rc != ERR_OK) {
		bstream_free(bs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	}
	/* the multipart type parameter: the parts' media type alone */
	semi = strchr(bs->part, ';');
	snprintf(type, sizeof type, "%.*s", semi ? (int)(semi - bs->part) : (int)strlen(bs->part), bs->part);
	snprintf(ctype, sizeof ctype, "multipart/related; type=\"%s\"; boundary=%s", type, bs->boundary);
	if (wado_audit(&bs->who, AUDIT_SUCCESS, NULL, bs->l.patient, bs->l.study, bs->l.series[0].uid,
	               bs->l.it[0].sop, 0) != ERR_OK) {
		bstream_free(bs);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	return http_send_callback(r, MHD_HTTP_OK, ctype, total, bstream_read, bs, bstream_free);
}

/* A new bstream for one instance, opened and parsed (bulk values left in
 * the source). On failure the answer is queued and NULL returned. */
static struct bstream *bstream_open(struct http_req *r, const char *study, const char *series, const char *sop,
                                    enum MHD_Result *res)
{
	struct bstream *bs = calloc(1, sizeof *bs);
	char why[256] = "";
	enum err rc;

	if (bs == NULL) {
		*res = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
		return NULL;
	}
	wbuf_init(&bs->piece, 4096);
	bs->dec_j = SIZE_MAX;
	wado_who_init(r, &bs->who);
	rc = wado_list_make(r, study, series, sop, &bs->l);
	if (rc != ERR_OK) {
		*res = wado_list_error(r, rc, series, sop);
		bstream_free(bs);
		return NULL;
	}
	/* small fragments too stay in the source: a file of many small frames
	 * is not loaded */
	rc = wado_inst_open(r->srv->vault, &bs->l.it[0], DICOMWEB_BULK_THRESHOLD, &bs->in, why, sizeof why);
	if (rc != ERR_OK) {
		*res = wado_fail_500(r, &bs->who, &bs->l, 0, rc, why);
		bstream_free(bs);
		return NULL;
	}
	return bs;
}

/* Whether the frames of bs (its image's, in transfer syntax ts) can be
 * sent decompressed as the data set describes them: RLE; JPEG Baseline
 * (and 8-bit JPEG Extended) of one component or RGB (not YBR: the
 * decoder gives RGB, and the metadata would say otherwise); JPEG 2000,
 * JPEG-LS, JPEG Lossless and 12-bit JPEG Extended whose samples are
 * interleaved (or one) and right-aligned (High Bit is Bits Stored - 1), in
 * a colour space that stays (not YBR_ICT or YBR_RCT, which decode to RGB,
 * nor YBR_FULL_422 for the JPEG ones, whose decoder gives YBR_FULL);
 * a decoded frame of at most DICOMWEB_MAX_DECODED_FRAME bytes. Sets bs->im
 * and bs->declen. */
static bool decompressible(struct bstream *bs, const char *ts)
{
	char why[200];
	enum render_codec c = render_codec_of(ts);
	uint64_t n;

	if (c == RENDER_CODEC_NONE || render_image_init(bs->in.f, &bs->in.f->ds, &bs->im, why, sizeof why) != ERR_OK)
		return false;
	bs->im_ok = true;
	if (c == RENDER_CODEC_JPEG || (c == RENDER_CODEC_JPEG_EXT && bs->im.bits_alloc == 8)) {
		/* JPEG decodes to 8-bit samples, interleaved: only when the
		 * metadata says so too */
		if ((bs->im.spp != 1 && bs->im.photo != RENDER_RGB) || bs->im.bits_alloc != 8 ||
		    (bs->im.spp == 3 && bs->im.planar != 0))
			return false;
		n = (uint64_t)bs->im.rows * bs->im.cols * bs->im.spp;   /* 8-bit */
	} else {
		if (c != RENDER_CODEC_RLE &&
		    ((bs->im.spp == 3 && bs->im.planar != 0) || bs->im.photo == RENDER_YBR_ICT ||
		     bs->im.photo == RENDER_YBR_RCT || bs->im.high_bit + 1 != bs->im.bits_stored ||
		     ((c == RENDER_CODEC_JPEG_EXT || c == RENDER_CODEC_JPEG_LL) && bs->im.photo == RENDER_YBR_FULL_422)))
			return false;
		n = render_frame_bytes(&bs->im);
	}
	if (n == 0 || n > DICOMWEB_MAX_DECODED_FRAME)
		return false;
	bs->declen = (size_t)n;
	return true;
}

/* Locates the frames and negotiates their media type; on failure the
 * answer is queued and false returned. */
static bool frames_prepare(struct http_req *r, struct bstream *bs, const struct dcm_ds *ds, enum MHD_Result *res)
{
	struct fneg ng;
	bool accepted;
	char why[256] = "";
	enum err rc;

	bs->kind = B_FRAMES;
	rc = dcm_frames_init_in(bs->in.f, ds, &bs->fr, why, sizeof why);
	if (rc == ERR_AUTH) {
		*res = wado_fail_500(r, &bs->who, &bs->l, 0, rc, why);
		return false;
	}
	if (rc == ERR_NOTFOUND) {
		*res = http_problem(r, MHD_HTTP_NOT_FOUND, "the instance has no pixel data", NULL);
		return false;
	}
	if (rc != ERR_OK) {
		/* ERR_PARSE: the stored attributes do not describe its pixel
		 * data (Number of Frames "1A", frames longer than Pixel Data);
		 * ERR_UNSUPPORTED: fragments that nothing splits into its frames
		 * (no offset table, no end-of-image markers): the instance's
		 * fault, not the server's, so no frame is found; the instance
		 * itself is still retrievable as it was stored */
		char detail[400];
		bool ours = rc != ERR_PARSE && rc != ERR_UNSUPPORTED;
		log_msg(ours ? LOG_ERROR : LOG_WARN, __func__, "frames of %s by %s: %s", bs->l.it[0].sop, r->sess.user,
		        why);
		snprintf(detail, sizeof detail, "the frames of this instance cannot be located: %s%s", why,
		         ours ? "" : "; retrieve the instance instead");
		*res = http_problem(r, ours ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_NOT_FOUND, detail, NULL);
		return false;
	}
	memset(&ng, 0, sizeof ng);
	ng.r = r;
	ng.encapsulated = bs->fr.encapsulated;
	ng.ts = bs->l.ts[bs->l.it[0].ts];
	ng.media = media_of(ng.ts);
	/* the image is looked at (render_image_init) only if a range asks
	 * for uncompressed frames: viewers asking for the stored ones (every
	 * frame request of a study) pay nothing; if it cannot be given so,
	 * the ranges are read again without that choice */
	ng.can_decompress = ng.encapsulated && ds == &bs->in.f->ds && dcm_decompress_takes(ng.ts);
	if (ng.encapsulated && ng.media == NULL) {
		*res = http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
		                    "the frames of this transfer syntax (video or unknown) are not offered: retrieve the "
		                    "instance",
		                    NULL);
		return false;
	}
	accepted = wado_accept_any(r, accept_frames, &ng);
	if (accepted && ng.decompress && !decompressible(bs, ng.ts)) {
		ng.can_decompress = false;
		ng.decompress = false;
		accepted = wado_accept_any(r, accept_frames, &ng);
	}
	if (!accepted) {
		char detail[200];
		snprintf(detail, sizeof detail, "these frames are offered as multipart/related; type=\"%s\"",
		         ng.encapsulated ? ng.media : "application/octet-stream");
		*res = http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, detail, NULL);
		return false;
	}
	snprintf(bs->part, sizeof bs->part, "%s", ng.part);
	bs->decompress = ng.decompress;
	return true;
}

enum err wado_frame_list_parse(const char *s, size_t n, uint32_t **out, size_t *count)
{
	uint32_t *v;
	size_t i = 0, k = 0;

	if (n == 0)
		return ERR_PARSE;
	v = calloc(DICOMWEB_MAX_FRAMES, sizeof *v);
	if (v == NULL)
		return ERR_NOMEM;
	while (i < n) {
		uint64_t x = 0;
		size_t d = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			x = x * 10 + (uint64_t)(s[i] - '0');
			if (x > UINT32_MAX) {
				free(v);
				return ERR_PARSE;
			}
			i++;
			d++;
		}
		if (d == 0 || x == 0 || (i < n && (s[i] != ',' || i + 1 == n))) {
			free(v);
			return ERR_PARSE;
		}
		if (k == DICOMWEB_MAX_FRAMES) {
			free(v);
			return ERR_LIMIT;
		}
		v[k++] = (uint32_t)x;
		i++;   /* the comma */
	}
	*out = v;
	*count = k;
	return ERR_OK;
}

enum MHD_Result wado_frames(struct http_req *r, const char *study, const char *series, const char *sop,
                            const char *list, size_t listlen)
{
	struct bstream *bs;
	enum MHD_Result res = MHD_NO;
	uint32_t *nums = NULL;
	size_t count = 0, j;
	enum err rc;

	rc = wado_frame_list_parse(list, listlen, &nums, &count);
	if (rc == ERR_LIMIT)
		return http_problem(r, MHD_HTTP_BAD_REQUEST, "more frame numbers than the server takes in one request",
		                    NULL);
	if (rc != ERR_OK)
		return http_problem(r, rc == ERR_NOMEM ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_BAD_REQUEST,
		                    rc == ERR_NOMEM ? "out of memory"
		                                    : "the frame list is not comma-separated frame numbers (1, 2, ...)",
		                    NULL);
	bs = bstream_open(r, study, series, sop, &res);
	if (bs == NULL) {
		free(nums);
		return res;
	}
	bs->list = nums;
	bs->nparts = count;
	if (!frames_prepare(r, bs, &bs->in.f->ds, &res)) {
		bstream_free(bs);
		return res;
	}
	for (j = 0; j < count; j++) {
		if (nums[j] > bs->fr.n) {
			char detail[128];
			snprintf(detail, sizeof detail, "frame %u does not exist: the instance has %u frame%s",
			         (unsigned)nums[j], (unsigned)bs->fr.n, bs->fr.n == 1 ? "" : "s");
			bstream_free(bs);
			return http_problem(r, MHD_HTTP_NOT_FOUND, detail, NULL);
		}
		nums[j]--;   /* 0-based from here on */
	}
	if (!first_decoded(r, bs, &res)) {
		bstream_free(bs);
		return res;
	}
	return bstream_send(r, bs);
}

const struct dcm_elem *wado_bulk_path_find(const struct dcm_file *f, const char *s, size_t n, bool *pixel,
                                           uint16_t *eff_vr, const struct dcm_ds **in)
{
	const struct dcm_ds *ds = &f->ds;
	const struct dcm_elem *e = NULL;
	size_t i = 0;
	unsigned depth = 0;

	*pixel = false;
	for (;;) {
		uint32_t tag = 0;
		size_t d;
		uint64_t item = 0;
		for (d = 0; d < 8; d++, i++) {
			char c = i < n ? s[i] : 0;
			int x = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (x < 0)
				return NULL;
			tag = (tag << 4) | (uint32_t)x;
		}
		e = dcm_ds_find(ds, tag);
		if (e == NULL || ++depth > DCM_MAX_DEPTH + 1)
			return NULL;
		if (i == n) {
			*pixel = tag == TAG_PIXEL_DATA && (e->flags & DCM_EF_ENCAPS);
			*eff_vr = dcm_elem_effective_vr(ds, e);
			*in = ds;
			return e;
		}
		if (s[i++] != '.' || e->seq == NULL || (e->flags & DCM_EF_ENCAPS))
			return NULL;
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9' && d < 8; d++, i++)
			item = item * 10 + (uint64_t)(s[i] - '0');
		if (d == 0 || i == n || s[i++] != '.' || item >= e->seq->n)
			return NULL;
		ds = e->seq->items[item];
	}
}

enum MHD_Result wado_bulkdata(struct http_req *r, const char *study, const char *series, const char *sop,
                              const char *path, size_t pathlen)
{
	struct bstream *bs;
	enum MHD_Result res = MHD_NO;
	const struct dcm_elem *e;
	const struct dcm_ds *in = NULL;
	uint16_t eff_vr = 0;
	bool pixel = false;

	if (pathlen == 0 || pathlen >= DICOMWEB_BULK_PATH_MAX)
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such bulk data", NULL);
	bs = bstream_open(r, study, series, sop, &res);
	if (bs == NULL)
		return res;
	e = wado_bulk_path_find(bs->in.f, path, pathlen, &pixel, &eff_vr, &in);
	if (e != NULL && pixel) {
		/* encapsulated Pixel Data (of the image or an icon): its frames,
		 * one part each */
		if (!frames_prepare(r, bs, in, &res)) {
			bstream_free(bs);
			return res;
		}
		bs->nparts = bs->fr.n;
		if (!first_decoded(r, bs, &res)) {
			bstream_free(bs);
			return res;
		}
		return bstream_send(r, bs);
	}
	if (e == NULL || e->seq != NULL || (e->flags & DCM_EF_ENCAPS) || e->len == 0 ||
	    !(vr_is_bulk(e->vr) || vr_is_bulk(eff_vr))) {
		bstream_free(bs);
		return http_problem(r, MHD_HTTP_NOT_FOUND, "no such bulk data", NULL);
	}
	{
		struct fneg ng;
		memset(&ng, 0, sizeof ng);
		ng.r = r;
		if (!wado_accept_any(r, accept_frames, &ng)) {
			bstream_free(bs);
			return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE,
			                    "bulk data is offered as multipart/related; type=\"application/octet-stream\"",
			                    NULL);
		}
		snprintf(bs->part, sizeof bs->part, "%s", ng.part);
	}
	bs->kind = B_VALUE;
	bs->e = e;
	bs->nparts = 1;
	return bstream_send(r, bs);
}
