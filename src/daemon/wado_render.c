/* wado_render.c: WADO-RS rendered and thumbnail resources (PS3.18
 * 10.4.1.1.3, 10.4.1.1.4, 8.3.5.1): GET .../rendered and .../thumbnail of
 * a study, a series, an instance or frames of an instance, as image/jpeg
 * (default) or image/png, chosen by the accept query parameter, else the
 * Accept header. Each frame is read from the stored object through
 * wado_inst_open (every chunk authenticated before use), one frame at a
 * time, rendered by dicom/render.c (window, viewport, quality) and
 * encoded; the answer is built in memory (one image at most
 * RENDER_MAX_OUTPUT, the whole answer RENDER_MAX_ANSWER, else 400) and
 * audited before it is sent; answers waiting to be read count against
 * HTTP_SEND_BUDGET, every connection together (http_send: 503 past it). An instance renders its first frame;
 * frames/{list} one image per frame; a study or series renders as
 * multipart/related, one part per image instance (first frames, at most
 * RENDER_MAX_PARTS); a thumbnail is one image: of a study or series, the
 * middle instance of its first series, fitted to RENDER_THUMB_SIZE
 * unless a viewport is given. At most RENDER_CONCURRENCY requests render
 * at once (memory: one frame and its images each); the others wait up to
 * RENDER_WAIT seconds, then 503. See docs/internals/dicomweb.md.
 * Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/accept.h"
#include "dicomvault/crypto.h"
#include "dicomvault/frame.h"
#include "dicomvault/log.h"
#include "dicomvault/multipart.h"
#include "dicomvault/render.h"
#include "dicomvault/turns.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "http_int.h"
#include "wado_int.h"

struct rparams {
	enum render_media media;
	bool has_window;
	struct render_window win;
	uint32_t vw, vh;          /* 0: no viewport */
	int quality;              /* 0: the default */
};

/* ---- turns: bounded memory whatever the number of connections ---- */

static struct turns turns = TURNS_INIT(RENDER_CONCURRENCY);

/* A turn to render (given back with turns_give(&turns)); false: the 503
 * (all turns taken for RENDER_WAIT seconds) or 500 was queued in *res. */
static bool turn_taken(struct http_req *r, enum MHD_Result *res)
{
	static const char *const extra[] = { MHD_HTTP_HEADER_RETRY_AFTER, "5", NULL };
	enum err rc = turns_take(&turns, RENDER_WAIT);

	if (rc == ERR_OK)
		return true;
	*res = rc == ERR_LIMIT ? http_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE,
	                                      "too many images being rendered: try again shortly", extra)
	                       : http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	return false;
}

/* ---- media type ---- */

struct mneg {
	bool found;
	enum render_media m;
	const char *h;           /* the ranges: a wildcard's choice must not be one refused with q=0 */
};

/* media, alone or as the type of multipart/related parts (mp), as the
 * range that chose it asked */
static bool media_taken(const struct mneg *ng, bool mp, const char *media)
{
	size_t n = strlen(ng->h);

	return mp ? accept_q_of(ng->h, n, "multipart/related", media, NULL) > 0
	          : accept_q_of(ng->h, n, media, NULL, NULL) > 0;
}

static bool pick_media(void *ctx, const struct accept_range *a)
{
	struct mneg *ng = ctx;
	const char *t = a->media;
	bool mp = false;

	if (a->q == 0)
		return false;
	if (strcmp(t, "multipart/related") == 0 || strcmp(t, "multipart/*") == 0) {
		t = a->type[0] ? a->type : "*/*";
		mp = true;
	}
	if (strcmp(t, "image/png") == 0) {
		ng->m = RENDER_PNG;
		ng->found = true;
	} else if (strcmp(t, "image/jpeg") == 0) {
		ng->m = RENDER_JPEG;
		ng->found = true;
	} else if (strcmp(t, "image/*") == 0 || strcmp(t, "*/*") == 0) {
		/* JPEG unless a more specific range refuses it */
		ng->found = true;
		if (media_taken(ng, mp, "image/jpeg"))
			ng->m = RENDER_JPEG;
		else if (media_taken(ng, mp, "image/png"))
			ng->m = RENDER_PNG;
		else
			ng->found = false;
	}
	return ng->found;
}

static const char *media_name(enum render_media m)
{
	return m == RENDER_PNG ? "image/png" : "image/jpeg";
}

/* The query parameters and the media type; false: the answer (400, 406)
 * was queued. A thumbnail takes viewport and accept only. */
static bool params_get(struct http_req *r, bool thumb, struct rparams *p, enum MHD_Result *res)
{
	char why[200] = "";
	const char *s;
	struct mneg ng;
	enum err rc;

	memset(p, 0, sizeof *p);
	s = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "viewport");
	if (s != NULL) {
		rc = render_viewport_parse(s, strlen(s), &p->vw, &p->vh, why, sizeof why);
		if (rc != ERR_OK) {
			*res = http_problem(r, MHD_HTTP_BAD_REQUEST, why, NULL);
			return false;
		}
	} else if (thumb) {
		p->vw = p->vh = RENDER_THUMB_SIZE;
	}
	if (!thumb) {
		s = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "window");
		if (s != NULL) {
			rc = render_window_parse(s, strlen(s), &p->win, why, sizeof why);
			if (rc != ERR_OK) {
				*res = http_problem(r, MHD_HTTP_BAD_REQUEST, why, NULL);
				return false;
			}
			p->has_window = true;
		}
		s = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "quality");
		if (s != NULL) {
			rc = render_quality_parse(s, strlen(s), &p->quality, why, sizeof why);
			if (rc != ERR_OK) {
				*res = http_problem(r, MHD_HTTP_BAD_REQUEST, why, NULL);
				return false;
			}
		}
	}
	memset(&ng, 0, sizeof ng);
	s = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "accept");
	ng.h = s != NULL ? s : wado_accept_header(r);
	(void)accept_each(ng.h, strlen(ng.h), pick_media, &ng);
	if (!ng.found) {
		*res = http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, "rendered resources are offered as image/jpeg or image/png",
		                    NULL);
		return false;
	}
	p->media = ng.m;
	return true;
}

/* ---- one image ---- */

/* An opened image, kept while the frames of one request are rendered. */
struct rsrc {
	bool open;
	size_t item;               /* in the list */
	struct wado_inst in;
	struct render_image im;    /* as the data set says (decoders change a copy) */
	struct dcm_frames fr;
};

static void rsrc_close(struct rsrc *s)
{
	if (s->open) {
		dcm_frames_fini(&s->fr);
		render_image_fini(&s->im);
		wado_inst_close(&s->in);
	}
	memset(s, 0, sizeof *s);
}

/* Opens instance i of l into s unless it is the one open. Returns 0, or
 * the HTTP status as render_one does. */
static unsigned rsrc_open(struct http_req *r, const struct wado_list *l, size_t i, struct rsrc *s, char *why,
                          size_t whylen, enum err *err)
{
	enum err rc;

	if (s->open && s->item == i)
		return 0;
	rsrc_close(s);
	rc = wado_inst_open(r->srv->vault, &l->it[i], DICOMWEB_BULK_THRESHOLD, &s->in, why, whylen);
	if (rc != ERR_OK) {
		*err = rc;
		return 500;
	}
	rc = render_image_init(s->in.f, &s->in.f->ds, &s->im, why, whylen);
	if (rc == ERR_OK) {
		rc = dcm_frames_init(s->in.f, &s->fr, why, whylen);
		if (rc != ERR_OK)
			render_image_fini(&s->im);
	}
	if (rc != ERR_OK) {
		wado_inst_close(&s->in);
		memset(s, 0, sizeof *s);
		*err = rc;
		/* ERR_PARSE: image attributes the renderer cannot use (a
		 * malformed lookup table...): not renderable, not a server fault */
		return rc == ERR_NOTFOUND || rc == ERR_UNSUPPORTED || rc == ERR_LIMIT || rc == ERR_PARSE ? 406 : 500;
	}
	s->open = true;
	s->item = i;
	return 0;
}

/* Frame `frame` (0-based) of instance i of l rendered and encoded into w
 * (the instance opened in s, or opened now). Returns the HTTP status:
 * 200; 404 (no such frame), 406 (not an image, or one the renderer does
 * not take), with why; 500 with *err set, for wado_fail_500. */
static unsigned render_one(struct http_req *r, const struct wado_list *l, size_t i, uint32_t frame,
                           const struct rparams *p, struct rsrc *s, struct wbuf *w, char *why, size_t whylen,
                           enum err *err)
{
	const char *ts = l->ts[l->it[i].ts];
	struct render_image im;
	struct render_out o;
	uint8_t *raw = NULL, *nat = NULL;
	const uint8_t *data;
	size_t natlen = 0;
	uint64_t size;
	unsigned st;
	enum err rc;

	st = rsrc_open(r, l, i, s, why, whylen, err);
	if (st != 0)
		return st;
	st = 500;
	im = s->im;   /* the palette tables stay s's */
	memset(&o, 0, sizeof o);
	if (frame >= s->fr.n) {
		rc = err_why(why, whylen, ERR_NOTFOUND, "frame %u does not exist: the instance has %u frame%s",
		             (unsigned)frame + 1, (unsigned)s->fr.n, s->fr.n == 1 ? "" : "s");
		st = 404;
		goto out;
	}
	if (s->fr.encapsulated && render_codec_of(ts) == RENDER_CODEC_NONE) {
		rc = err_why(why, whylen, ERR_UNSUPPORTED,
		             "frames of transfer syntax %s are not rendered (native ones are, and JPEG, RLE, "
		             "JPEG-LS, JPEG 2000 and HTJ2K)",
		             ts);
		st = 406;
		goto out;
	}
	size = dcm_frame_size(&s->fr, frame);
	if (size > RENDER_MAX_OUTPUT) {
		rc = err_why(why, whylen, ERR_LIMIT, "the frame is too large to render");
		st = 406;
		goto out;
	}
	raw = malloc(size ? (size_t)size : 1);
	if (raw == NULL) {
		rc = err_why(why, whylen, ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = dcm_frame_read(&s->fr, frame, 0, raw, (size_t)size);
	if (rc != ERR_OK) {
		if (rc == ERR_AUTH)
			snprintf(why, whylen, "the object of %s failed authentication (tampered or damaged)", l->it[i].sop);
		goto out;
	}
	data = raw;
	natlen = (size_t)size;
	if (s->fr.encapsulated) {
		rc = render_decode(render_codec_of(ts), &im, raw, (size_t)size, &nat, &natlen, why, whylen);
		/* a frame the decoder refuses (empty, garbage, a variant it does
		 * not take) is the object's fault, not the server's: as /frames
		 * asked for decompressed (first_decoded) */
		if (rc == ERR_UNSUPPORTED || rc == ERR_PARSE) {
			st = 406;
			goto out;
		}
		if (rc != ERR_OK)
			goto out;
		data = nat;
	}
	rc = render_frame(&im, data, natlen, p->has_window ? &p->win : NULL, &o, why, whylen);
	if (rc == ERR_OK && p->vw != 0) {
		rc = render_scale(&o, p->vw, p->vh);
		if (rc != ERR_OK)
			snprintf(why, whylen, "out of memory");
	}
	if (rc == ERR_OK)
		rc = render_encode(&o, p->media, p->quality, w, why, whylen);
	if (rc == ERR_OK)
		st = 200;
out:
	*err = rc;
	render_out_fini(&o);
	free(nat);
	free(raw);
	return st;
}

/* ---- the resources ---- */

struct job {
	size_t item;        /* in the list */
	uint32_t frame;     /* 0-based */
};

static enum MHD_Result refuse(struct http_req *r, const struct wado_who *who, const struct wado_list *l, size_t i,
                              unsigned st, enum err rc, const char *why)
{
	if (st == 500)
		return wado_fail_500(r, who, l, i, rc, why);
	return http_problem(r, st == 404 ? MHD_HTTP_NOT_FOUND : MHD_HTTP_NOT_ACCEPTABLE, why, NULL);
}

/* One image answer; opened: the instance if the caller opened it (closed
 * here either way), else NULL. declined: when not NULL, an image the
 * renderer does not take (406) sets it and queues nothing. */
static enum MHD_Result send_one(struct http_req *r, const struct wado_who *who, const struct wado_list *l,
                                const struct job *j, const struct rparams *p, struct rsrc *opened, bool *declined)
{
	const struct wado_item *it = &l->it[j->item];
	char why[320] = "";
	struct wbuf w;
	enum MHD_Result res;
	struct rsrc mine, *src = opened ? opened : &mine;
	enum err rc = ERR_INTERNAL;
	unsigned st;

	if (opened == NULL)
		memset(&mine, 0, sizeof mine);
	wbuf_init(&w, RENDER_MAX_OUTPUT);
	st = render_one(r, l, j->item, j->frame, p, src, &w, why, sizeof why, &rc);
	rsrc_close(src);
	if (st == 406 && declined != NULL) {
		wbuf_fini(&w);
		*declined = true;
		return MHD_YES;
	}
	if (st != 200) {
		wbuf_fini(&w);
		return refuse(r, who, l, j->item, st, rc, why);
	}
	if (wado_audit(who, AUDIT_SUCCESS, NULL, l->patient, l->study, l->series[it->series].uid, it->sop, 0) != ERR_OK) {
		wbuf_fini(&w);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	wado_note_sent(r, l->patient, l->study, l->series[it->series].uid, it->sop, 0);
	res = http_send(r, MHD_HTTP_OK, media_name(p->media), w.p, w.len, 0, NULL);
	wbuf_fini(&w);
	return res;
}

/* One part per job; jobs whose instance is not an image are left out when
 * skip_nonimage (a study or series). */
static enum MHD_Result send_multi(struct http_req *r, const struct wado_who *who, const struct wado_list *l,
                                  const struct job *jobs, size_t njobs, const struct rparams *p, const char *series,
                                  bool skip_nonimage)
{
	char boundary[MP_BOUNDARY_MAX + 1], ctype[MP_BOUNDARY_MAX + 96], why[320];
	struct wbuf body, img;
	struct rsrc src;
	enum MHD_Result res;
	uint8_t rnd[16];
	size_t k, parts = 0;
	enum err rc;

	if (rand_bytes(rnd, sizeof rnd) != ERR_OK)
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
	mp_boundary_make(rnd, boundary);
	memset(&src, 0, sizeof src);
	wbuf_init(&body, RENDER_MAX_ANSWER);
	wbuf_init(&img, RENDER_MAX_OUTPUT);
	for (k = 0; k < njobs; k++) {
		unsigned st;
		why[0] = 0;
		rc = ERR_INTERNAL;
		wbuf_reset(&img);
		st = render_one(r, l, jobs[k].item, jobs[k].frame, p, &src, &img, why, sizeof why, &rc);
		if (st == 406 && rc == ERR_NOTFOUND && skip_nonimage)
			continue;
		if (st != 200) {
			rsrc_close(&src);
			wbuf_fini(&img);
			wbuf_fini(&body);
			return refuse(r, who, l, jobs[k].item, st, rc, why);
		}
		mp_write_part_head(&body, boundary, media_name(p->media), parts == 0);
		wbuf_put(&body, img.p, img.len);
		parts++;
		if (wbuf_err(&body) != ERR_OK)
			break;   /* past RENDER_MAX_ANSWER: rendering the rest would be thrown away */
	}
	rsrc_close(&src);
	wbuf_fini(&img);
	if (parts == 0) {
		wbuf_fini(&body);
		return http_problem(r, MHD_HTTP_NOT_ACCEPTABLE, "no instance here is an image: nothing to render", NULL);
	}
	mp_write_close(&body, boundary);
	if (wbuf_err(&body) != ERR_OK) {
		/* past the cap: the request's size, not a server fault */
		bool nomem = wbuf_err(&body) == ERR_NOMEM;
		wbuf_fini(&body);
		return nomem ? http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL)
		             : http_problem(r, MHD_HTTP_BAD_REQUEST, "the rendered images are too large for one answer "
		                            "(at most 64 MiB): ask for fewer frames or instances", NULL);
	}
	if (wado_audit(who, AUDIT_SUCCESS, NULL, l->patient, l->study, series,
	               njobs == 1 || !skip_nonimage ? l->it[jobs[0].item].sop : NULL, skip_nonimage ? parts : 0) !=
	    ERR_OK) {
		wbuf_fini(&body);
		return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error (audit)", NULL);
	}
	wado_note_sent(r, l->patient, l->study, series, njobs == 1 || !skip_nonimage ? l->it[jobs[0].item].sop : NULL,
	               skip_nonimage ? parts : 0);
	snprintf(ctype, sizeof ctype, "multipart/related; type=\"%s\"; boundary=%s", media_name(p->media), boundary);
	res = http_send(r, MHD_HTTP_OK, ctype, body.p, body.len, 0, NULL);
	wbuf_fini(&body);
	return res;
}

enum MHD_Result wado_rendered(struct http_req *r, const char *study, const char *series, const char *sop,
                              const char *frames, size_t frameslen, bool thumbnail)
{
	struct rparams p;
	struct wado_list l;
	struct wado_who who;
	struct job one, *jobs = NULL;
	uint32_t *nums = NULL;
	size_t count = 0, k;
	enum MHD_Result res;
	enum err rc;

	if (!params_get(r, thumbnail, &p, &res))
		return res;
	if (frames != NULL) {
		rc = wado_frame_list_parse(frames, frameslen, &nums, &count);
		if (rc == ERR_NOMEM)
			return http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
		if (rc != ERR_OK)
			return http_problem(r, MHD_HTTP_BAD_REQUEST,
			                    rc == ERR_LIMIT ? "more frame numbers than the server takes in one request"
			                                    : "the frame list is not comma-separated frame numbers (1, 2, ...)",
			                    NULL);
	}
	wado_who_init(r, &who);
	rc = wado_list_make(r, study, series, sop, &l);
	if (rc != ERR_OK) {
		free(nums);
		return wado_list_error(r, rc, series, sop);
	}
	if (nums == NULL && sop == NULL && !thumbnail && l.n > RENDER_MAX_PARTS) {
		/* refused before waiting for a turn */
		char detail[200];
		snprintf(detail, sizeof detail,
		         "a rendered %s is offered up to %u instances; this one has %zu: ask for its series or instances",
		         series ? "series" : "study", RENDER_MAX_PARTS, l.n);
		wado_list_fini(&l);
		return http_problem(r, MHD_HTTP_BAD_REQUEST, detail, NULL);
	}
	memset(&one, 0, sizeof one);
	if (!turn_taken(r, &res)) {
		free(nums);
		wado_list_fini(&l);
		return res;
	}
	if (nums != NULL) {
		/* frames of one instance: one image each (a thumbnail: the first) */
		if (thumbnail || count == 1) {
			one.frame = nums[0] - 1;
			res = send_one(r, &who, &l, &one, &p, NULL, NULL);
		} else {
			jobs = calloc(count, sizeof *jobs);
			if (jobs == NULL) {
				res = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
			} else {
				for (k = 0; k < count; k++)
					jobs[k].frame = nums[k] - 1;
				res = send_multi(r, &who, &l, jobs, count, &p, l.series[0].uid, false);
			}
		}
	} else if (sop != NULL) {
		res = send_one(r, &who, &l, &one, &p, NULL, NULL);
	} else if (thumbnail) {
		/* the middle instance of the first series (the list is in
		 * series, instance number order) */
		size_t n1 = 0;
		while (n1 < l.n && l.it[n1].series == l.it[0].series)
			n1++;
		one.item = (n1 - 1) / 2;
		res = send_one(r, &who, &l, &one, &p, NULL, NULL);
	} else {
		jobs = calloc(l.n, sizeof *jobs);
		if (jobs == NULL) {
			res = http_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL);
		} else {
			for (k = 0; k < l.n; k++)
				jobs[k].item = k;
			res = send_multi(r, &who, &l, jobs, l.n, &p, series, true);
		}
	}
	turns_give(&turns);
	free(jobs);
	free(nums);
	wado_list_fini(&l);
	return res;
}

/* ---- WADO-URI ---- */

/* One of WADO-URI's rows and columns: 1..RENDER_MAX_VIEWPORT. */
static enum err uri_dim(const char *s, uint32_t *out, char *why, size_t whylen)
{
	uint64_t v;

	if (!vr_uint_parse(s, strlen(s), RENDER_MAX_VIEWPORT, &v) || v == 0)
		return err_why(why, whylen, ERR_PARSE, "rows and columns must be numbers of pixels, 1 to %u",
		               RENDER_MAX_VIEWPORT);
	*out = (uint32_t)v;
	return ERR_OK;
}

/* WADO-URI's rendering parameters (PS3.18 9.4.1): frameNumber (1-based),
 * rows and columns (the image fitted into them, never enlarged),
 * windowCenter with windowWidth, imageQuality. false: the 400 was queued. */
static bool uri_params(struct http_req *r, struct rparams *p, uint32_t *frame, enum MHD_Result *res)
{
	const char *fn = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "frameNumber");
	const char *rows = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "rows");
	const char *cols = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "columns");
	const char *wc = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "windowCenter");
	const char *ww = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "windowWidth");
	const char *q = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "imageQuality");
	char why[200] = "", buf[200];
	enum err rc = ERR_OK;

	memset(p, 0, sizeof *p);
	*frame = 0;
	if (fn != NULL) {
		uint64_t v = 0;
		if (vr_uint_parse(fn, strlen(fn), UINT32_MAX, &v) && v >= 1)
			*frame = (uint32_t)(v - 1);
		else
			rc = err_why(why, sizeof why, ERR_PARSE, "frameNumber must be one frame number (1, 2, ...)");
	}
	/* rows, columns: each alone bounds its side only */
	p->vw = p->vh = UINT32_MAX;
	if (rc == ERR_OK && cols != NULL)
		rc = uri_dim(cols, &p->vw, why, sizeof why);
	if (rc == ERR_OK && rows != NULL)
		rc = uri_dim(rows, &p->vh, why, sizeof why);
	if (rows == NULL && cols == NULL)
		p->vw = p->vh = 0;   /* no viewport */
	if (rc == ERR_OK && (wc != NULL) != (ww != NULL))
		rc = err_why(why, sizeof why, ERR_PARSE, "windowCenter and windowWidth go together");
	if (rc == ERR_OK && wc != NULL) {
		/* one number each: spliced into render_window_parse's "c,w", a
		 * comma would add a field (a VOI LUT function) */
		if (strlen(wc) > 64 || strlen(ww) > 64 || strchr(wc, ',') != NULL || strchr(ww, ',') != NULL)
			rc = err_why(why, sizeof why, ERR_PARSE, "windowCenter and windowWidth must be numbers");
		snprintf(buf, sizeof buf, "%s,%s", wc, ww);
		if (rc == ERR_OK)
			rc = render_window_parse(buf, strlen(buf), &p->win, why, sizeof why);
		p->has_window = rc == ERR_OK;
	}
	if (rc == ERR_OK && q != NULL)
		rc = render_quality_parse(q, strlen(q), &p->quality, why, sizeof why);
	if (rc != ERR_OK) {
		*res = http_problem(r, MHD_HTTP_BAD_REQUEST, why[0] ? why : "bad rendering parameters", NULL);
		return false;
	}
	return true;
}

enum MHD_Result wado_uri_image(struct http_req *r, const char *study, const char *series, const char *sop, int media,
                               bool *as_dicom)
{
	struct rparams p;
	struct wado_list l;
	struct wado_who who;
	struct job one;
	struct rsrc src;
	char why[320] = "";
	enum MHD_Result res;
	enum err rc = ERR_INTERNAL;
	unsigned st;
	bool looked = false, turn = false;

	*as_dicom = false;
	memset(&one, 0, sizeof one);
	if (!uri_params(r, &p, &one.frame, &res))
		return res;
	p.media = media == (int)RENDER_PNG ? RENDER_PNG : RENDER_JPEG;
	wado_who_init(r, &who);
	rc = wado_list_make(r, study, series, sop, &l);
	if (rc != ERR_OK)
		return wado_list_error(r, rc, series, sop);
	if (media < 0 && l.it[0].frames > 1) {
		/* multi-frame: the object, neither opened here nor waiting */
		wado_list_fini(&l);
		*as_dicom = true;
		return MHD_YES;
	}
	memset(&src, 0, sizeof src);
	rc = ERR_INTERNAL;
	st = 0;
	if (media < 0 && l.it[0].rows < 0) {
		/* no Rows in the index (not an image, or a row from before
		 * schema 2): looked at before a turn is taken, so that an SR or
		 * other non-image download never waits for the renders (the
		 * head's parse is bounded as a metadata request's is) */
		st = rsrc_open(r, &l, 0, &src, why, sizeof why, &rc);
		looked = true;
	}
	if (st == 0 && !(looked && src.fr.n != 1)) {
		if (!turn_taken(r, &res)) {
			rsrc_close(&src);
			wado_list_fini(&l);
			return res;
		}
		turn = true;
		st = rsrc_open(r, &l, 0, &src, why, sizeof why, &rc);   /* no-op if looked at */
	}
	if (media < 0 && (st == 406 || (st == 0 && src.fr.n != 1))) {
		rsrc_close(&src);   /* not a single-frame image we render: the caller sends the object */
		*as_dicom = true;
		res = MHD_YES;
	} else if (st != 0) {
		res = refuse(r, &who, &l, 0, st, rc, why);
	} else {
		/* no contentType: what cannot be rendered goes as the object */
		res = send_one(r, &who, &l, &one, &p, &src, media < 0 ? as_dicom : NULL);
	}
	if (turn)
		turns_give(&turns);
	wado_list_fini(&l);
	return res;
}
