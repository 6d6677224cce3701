/* dimse_scu.c: the query/retrieve SCU of `dicomvault import --from AE`:
 * an association we request (dimse_srv_connect: DICOM-TLS with the
 * vault's certificate, or plain TCP for a `tls = no` peer), Study Root
 * C-FIND (STUDY, SERIES, IMAGE) and C-MOVE, one operation at a time. The
 * responses are read with dimse_assoc_wait (the idle timeout bounds each
 * wait); their identifiers are read by proto/qr.c (bare data sets in the
 * context's transfer syntax), never trusted further than their UIDs.
 * Layer: daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/clock.h"
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/dimse_scu.h"
#include "dicomvault/io.h"
#include "dicomvault/log.h"
#include "dicomvault/qr.h"
#include "dicomvault/wbuf.h"
#include "dimse_int.h"

#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"
#define PC_FIND 1
#define PC_MOVE 3
#define SCU_MAX_IDENTIFIER QR_MAX_IDENTIFIER

/* How often a wait for a response looks at the cancel flag. */
#define SCU_CANCEL_POLL_MS 100u
/* Pending responses that change nothing (a C-FIND's without an
 * identifier, a C-MOVE's with the same sub-operation counts) reset the
 * idle timeout, so a peer could hold the import for ever with them: after
 * [dicom] stall_timeout (dimse_srv_opts.stall_ms; an hour by default) of
 * such responses with no progress, or past this many pending responses to
 * one operation, the association is aborted. A keep-alive during a long
 * sub-operation (a recall from tape) is no fault until then. */
#define SCU_MAX_PENDING 10000000u

struct dimse_scu {
	struct dimse_assoc *a;
	uint16_t msg_id;
	bool find_ok, move_ok;
	bool find_explicit, move_explicit;
	const volatile sig_atomic_t *cancel;   /* nonzero: cancel what is under way */
};

const char *dimse_scu_status_str(uint16_t st)
{
	if (st == DIMSE_SUCCESS)
		return "Success";
	if (st == DIMSE_PENDING || st == DIMSE_PENDING_WARNING)
		return "Pending";
	if (st == DIMSE_CANCEL)
		return "Cancelled";
	if (st == DIMSE_WARNING_SUBOPS)
		return "Warning: sub-operations complete, one or more failures or warnings";
	if (st == DIMSE_REFUSED_OOR)
		return "Refused: out of resources";
	if (st == DIMSE_REFUSED_MATCHES)
		return "Refused: out of resources, unable to calculate the number of matches";
	if (st == DIMSE_REFUSED_SUBOPS)
		return "Refused: out of resources, unable to perform sub-operations";
	if (st == DIMSE_REFUSED_MOVE_DEST)
		return "Refused: Move Destination unknown";
	if (st == DIMSE_ERR_DATASET)
		return "Error: identifier does not match SOP class";
	if (st == DIMSE_SOP_NOT_SUPPORTED)
		return "Refused: SOP class not supported";
	if (st == DIMSE_NOT_AUTHORIZED)
		return "Refused: not authorized";
	if ((st & 0xF000) == 0xC000)
		return "Failed: unable to process";
	if ((st & 0xF000) == 0xB000)
		return "Warning";
	if ((st & 0xF000) == 0xA000)
		return "Refused or failed";
	return "Failed";
}

/* Peer text (an Error Comment) for a terminal or a log: printable ASCII
 * only, the rest as '?'. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7E)
			*s = '?';
}

/* ---- the association ---- */

static uint8_t accepted(const struct dimse_assoc *a, uint8_t id, bool *explicit_vr)
{
	const char *abs = NULL, *ts = NULL;

	if (!ul_context(&a->u, id, &abs, &ts))
		return 0;
	*explicit_vr = strcmp(ts, TS_IMPLICIT) != 0;
	return id;
}

enum err dimse_scu_open(struct dimse_srv *s, const struct peer *pe, struct dimse_scu **out, char *why, size_t whylen)
{
	struct pdu_assoc *rq = calloc(1, sizeof *rq);
	struct dimse_scu *c = calloc(1, sizeof *c);
	enum err rc;

	if (rq == NULL || c == NULL) {
		free(rq);
		free(c);
		return ERR_NOMEM;
	}
	pdu_assoc_init(rq, PDU_ASSOC_RQ);
	snprintf(rq->called, sizeof rq->called, "%s", pe->ae);
	snprintf(rq->calling, sizeof rq->calling, "%s", dimse_srv_ae(s));
	snprintf(rq->app_context, sizeof rq->app_context, PDU_APP_CONTEXT);
	snprintf(rq->impl_uid, sizeof rq->impl_uid, "%s", DCM_IMPL_CLASS_UID);
	snprintf(rq->impl_version, sizeof rq->impl_version, "%s", DCM_IMPL_VERSION);
	rc = pdu_assoc_add_pc(rq, PC_FIND, 0, DIMSE_FIND_STUDY_ROOT);
	if (rc == ERR_OK)
		rc = pdu_assoc_add_ts(rq, TS_EXPLICIT);
	if (rc == ERR_OK)
		rc = pdu_assoc_add_ts(rq, TS_IMPLICIT);
	if (rc == ERR_OK)
		rc = pdu_assoc_add_pc(rq, PC_MOVE, 0, DIMSE_MOVE_STUDY_ROOT);
	if (rc == ERR_OK)
		rc = pdu_assoc_add_ts(rq, TS_EXPLICIT);
	if (rc == ERR_OK)
		rc = pdu_assoc_add_ts(rq, TS_IMPLICIT);
	if (rc == ERR_OK)
		rc = dimse_srv_connect(s, pe, pe->plain, rq, &c->a, why, whylen);
	pdu_assoc_fini(rq);
	free(rq);
	if (rc != ERR_OK) {
		free(c);
		return rc;
	}
	c->find_ok = accepted(c->a, PC_FIND, &c->find_explicit) != 0;
	c->move_ok = accepted(c->a, PC_MOVE, &c->move_explicit) != 0;
	if (!c->find_ok && !c->move_ok) {
		snprintf(why, whylen, "%s accepted neither Study Root C-FIND nor C-MOVE", pe->ae);
		dimse_scu_close(c);
		return ERR_NOTFOUND;
	}
	c->msg_id = 1;
	*out = c;
	return ERR_OK;
}

void dimse_scu_close(struct dimse_scu *c)
{
	if (c == NULL)
		return;
	dimse_assoc_close(c->a);
	free(c);
}

bool dimse_scu_can_find(const struct dimse_scu *c)
{
	return c->find_ok;
}

bool dimse_scu_can_move(const struct dimse_scu *c)
{
	return c->move_ok;
}

/* ---- identifiers ---- */

/* ---- waiting for responses ---- */

struct wait {
	struct dimse_scu *c;
	uint16_t field;             /* the response awaited */
	uint16_t msg_id;            /* of the request */
	uint8_t pcid;               /* its presentation context */
	bool cancel_sent;           /* a C-CANCEL-RQ went out for it */
	bool have_cmd;              /* a response whose data set is being received */
	struct dimse_cmd cmd;
	struct wbuf id;
	bool done;                  /* the final response came */
	bool lost;                  /* the association ended or broke protocol */
	const char *lost_why;
	int64_t progress_ms;        /* when the operation last moved on (clock_mono_ms) */
	uint64_t pendings;
	/* C-FIND */
	const char *key_level;
	uint32_t key_tag;
	bool explicit_vr;
	enum err (*fn)(void *ctx, const char *uid);
	void *ctx;
	unsigned skipped;
	enum err fn_err;
	/* C-MOVE */
	void (*progress)(void *ctx, const struct dimse_scu_move *m);
	struct dimse_scu_move *m;
};

static void take_counts(struct wait *w, const struct dimse_cmd *c)
{
	if (w->m == NULL)
		return;
	if (c->has & DIMSE_F_REMAINING)
		w->m->remaining = c->remaining;
	if (c->has & DIMSE_F_COMPLETED)
		w->m->completed = c->completed;
	if (c->has & DIMSE_F_FAILED)
		w->m->failed = c->failed;
	if (c->has & DIMSE_F_WARNING)
		w->m->warning = c->warning;
}

/* A whole identifier of a pending C-FIND response: its unique key. */
static void find_match(struct wait *w)
{
	char uid[PDU_UID_MAX + 1];

	if (wbuf_err(&w->id) != ERR_OK || qr_ident_uid(w->id.p, w->id.len, w->explicit_vr, w->key_tag, uid) != ERR_OK)
		w->skipped++;
	else if (w->fn_err == ERR_OK)
		w->fn_err = w->fn(w->ctx, uid);
	wbuf_reset(&w->id);
}

/* Whether pending response c moves its operation on: a C-FIND's carries an
 * identifier (a match), a C-MOVE's changes the sub-operation counts. The
 * first pending C-MOVE response is progress (the move has begun); later
 * ones without any count are not: PS3.7 9.1.4.1 requires the counts in
 * them, and taking each as a sub-operation's let a source hold the import
 * for ever, [dicom] stall_timeout never running. */
static bool progressed(const struct wait *w, const struct dimse_cmd *c)
{
	const unsigned counts = DIMSE_F_REMAINING | DIMSE_F_COMPLETED | DIMSE_F_FAILED | DIMSE_F_WARNING;

	if (w->m == NULL)
		return dimse_has_data_set(c);
	if (w->m->pending == 0)
		return true;
	if (!(c->has & counts))
		return false;
	return ((c->has & DIMSE_F_REMAINING) && c->remaining != w->m->remaining) ||
	       ((c->has & DIMSE_F_COMPLETED) && c->completed != w->m->completed) ||
	       ((c->has & DIMSE_F_FAILED) && c->failed != w->m->failed) ||
	       ((c->has & DIMSE_F_WARNING) && c->warning != w->m->warning);
}

static void on_event(struct dimse_assoc *a, const struct ul_event *ev, void *ctx)
{
	struct wait *w = ctx;
	struct dimse_cmd c;

	switch (ev->kind) {
	case UL_EV_COMMAND:
		if (w->have_cmd || w->done || dimse_cmd_parse(ev->p, ev->n, &c) != ERR_OK || c.field != w->field ||
		    dimse_cmd_check(&c, NULL) != ERR_OK || c.msg_id_rsp != w->msg_id) {
			w->lost = true;
			w->lost_why = "an unexpected or malformed message";
			break;
		}
		if (c.status == DIMSE_PENDING || c.status == DIMSE_PENDING_WARNING) {
			unsigned stall = a->o->stall_ms ? a->o->stall_ms : DIMSE_STALL_MS_DEFAULT;
			bool moved = progressed(w, &c);
			if (moved)
				w->progress_ms = clock_mono_ms();
			if ((!moved && clock_mono_ms() - w->progress_ms > (int64_t)stall) ||
			    ++w->pendings > SCU_MAX_PENDING) {
				w->lost = true;
				w->lost_why = w->pendings > SCU_MAX_PENDING
				                  ? "more than 10000000 pending responses to one request"
				                  : "pending responses without progress for longer than [dicom] stall_timeout";
				break;
			}
		}
		take_counts(w, &c);
		if (c.status == DIMSE_PENDING || c.status == DIMSE_PENDING_WARNING) {
			if (w->m != NULL) {
				w->m->pending++;
				if (w->progress != NULL)
					w->progress(w->ctx, w->m);
			}
			if (dimse_has_data_set(&c)) {
				w->cmd = c;
				w->have_cmd = true;
			} else if (w->fn != NULL) {
				w->skipped++;   /* a pending C-FIND response without identifier */
			}
			return;
		}
		/* final: a data set (a Failed SOP Instance UID List, an
		 * identifier) may follow; it is read and dropped */
		w->cmd = c;
		if (dimse_has_data_set(&c))
			w->have_cmd = true;
		else
			w->done = true;
		return;
	case UL_EV_DATA:
		if (!w->have_cmd) {
			w->lost = true;
			w->lost_why = "a data set no response announced";
			break;
		}
		wbuf_put(&w->id, ev->p, ev->n);   /* over SCU_MAX_IDENTIFIER: sticky error, skipped */
		if (!ev->last)
			return;
		w->have_cmd = false;
		if (w->cmd.status == DIMSE_PENDING || w->cmd.status == DIMSE_PENDING_WARNING) {
			if (w->fn != NULL)
				find_match(w);
			wbuf_reset(&w->id);
			if (w->fn_err != ERR_OK) {
				w->lost = true;
				w->lost_why = "stopped by the caller";
				break;
			}
			return;
		}
		wbuf_reset(&w->id);
		w->done = true;
		return;
	case UL_EV_NONE:
		return;
	case UL_EV_ABORT:
		w->lost = true;
		w->lost_why = ev->provider && ev->why ? ev->why : "A-ABORT from the peer";
		return;
	case UL_EV_CLOSED:
		w->lost = true;
		w->lost_why = "the peer closed the connection";
		return;
	default:
		w->lost = true;
		w->lost_why = ev->kind == UL_EV_RELEASE_RQ ? "the peer released the association during an operation"
		                                           : "an unexpected message";
		break;
	}
	if (a->u.state != UL_STA13 && a->u.state != UL_STA1)
		ul_abort(&a->u);
}

/* The C-CANCEL-RQ of the operation w waits for (PS3.7 9.3.2.3 and
 * 9.3.4.3: the peer then ends it with a final response, status Cancel). */
static enum err send_cancel(struct dimse_scu *c, struct wait *w)
{
	struct dimse_cmd rq;
	enum err rc;

	dimse_cmd_rq(&rq, DIMSE_C_CANCEL_RQ, w->msg_id, NULL);
	rc = dimse_assoc_send_cmd(c->a, w->pcid, &rq);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(c->a);
	w->cancel_sent = true;
	return rc;
}

/* Gives up on the association: A-ABORT, ERR_IO (why says why). */
static enum err give_up(struct dimse_scu *c)
{
	ul_abort(&c->a->u);
	if (dimse_assoc_flush(c->a) != ERR_OK)
		log_debug("A-ABORT not sent to %s", c->a->addr);
	c->a->failed = true;
	return ERR_IO;
}

/* Reads responses until the final one. Waits in short steps so that a
 * cancel (c->cancel) is seen at once; the idle timeout counts from the
 * last thing the peer sent. After a C-CANCEL-RQ the final response is
 * awaited for ARTIM at most ([dicom] artim; pending responses meanwhile
 * do not extend it): a source that ignores the cancel held a stopped
 * import for ever. */
static enum err await(struct dimse_scu *c, struct wait *w, char *why, size_t whylen)
{
	unsigned idle = dimse_assoc_idle_ms(c->a), quiet = 0;
	unsigned artim = dimse_artim_ms(c->a->o);
	int64_t cancel_at = 0;

	while (!w->done && !w->lost) {
		enum err rc;
		if (c->cancel != NULL && *c->cancel && !w->cancel_sent) {
			cancel_at = clock_mono_ms();
			if (send_cancel(c, w) != ERR_OK) {
				w->lost = true;
				w->lost_why = "the C-CANCEL-RQ could not be sent";
				break;
			}
		}
		if (w->cancel_sent && clock_mono_ms() - cancel_at > (int64_t)artim) {
			snprintf(why, whylen, "%s sent no final response within %u s of the C-CANCEL-RQ (ARTIM); aborted",
			         c->a->peer->ae, artim / 1000u);
			return give_up(c);
		}
		rc = dimse_assoc_wait_ms(c->a, c->cancel != NULL ? SCU_CANCEL_POLL_MS : idle, on_event, w);
		if (rc == ERR_AGAIN) {
			quiet += c->cancel != NULL ? SCU_CANCEL_POLL_MS : idle;
			if (quiet < idle)
				continue;
			snprintf(why, whylen, "%s sent no response within the idle timeout", c->a->peer->ae);
			return give_up(c);
		}
		quiet = 0;
		if (rc != ERR_OK && !w->done)
			w->lost = true;
	}
	if (w->lost) {
		snprintf(why, whylen, "association with %s lost: %s", c->a->peer->ae,
		         w->lost_why ? w->lost_why : "connection closed");
		c->a->failed = true;
		return ERR_IO;
	}
	return ERR_OK;
}

void dimse_scu_set_cancel(struct dimse_scu *c, const volatile sig_atomic_t *flag)
{
	c->cancel = flag;
}

static enum err send_rq(struct dimse_scu *c, uint8_t pcid, uint16_t field, const char *sop_class, const char *dest,
                        const struct wbuf *id, struct wait *w)
{
	struct dimse_cmd rq;
	enum err rc;

	w->msg_id = c->msg_id;
	w->pcid = pcid;
	dimse_cmd_rq(&rq, field, c->msg_id++, sop_class);
	if (c->msg_id == 0)
		c->msg_id = 1;
	rq.data_set_type = DIMSE_HAS_DATA_SET;
	if (dest != NULL) {
		snprintf(rq.move_dest, sizeof rq.move_dest, "%s", dest);
		rq.has |= DIMSE_F_MOVE_DEST;
	}
	rc = dimse_assoc_send_cmd(c->a, pcid, &rq);
	if (rc == ERR_OK)
		rc = ul_send_data(&c->a->u, pcid, id->p, id->len, true);
	if (rc == ERR_OK)
		rc = dimse_assoc_flush(c->a);
	return rc;
}

enum err dimse_scu_find(struct dimse_scu *c, const char *level, const char *study, const char *series,
                        enum err (*fn)(void *ctx, const char *uid), void *ctx, unsigned *skipped,
                        uint16_t *status, char *comment, size_t clen, char *why, size_t whylen)
{
	struct wait w;
	struct wbuf id;
	bool ex = c->find_explicit;
	enum err rc;

	if (!c->find_ok) {
		snprintf(why, whylen, "%s did not accept Study Root C-FIND", c->a->peer->ae);
		return ERR_NOTFOUND;
	}
	memset(&w, 0, sizeof w);
	w.progress_ms = clock_mono_ms();
	wbuf_init(&id, SCU_MAX_IDENTIFIER);
	wbuf_init(&w.id, SCU_MAX_IDENTIFIER);
	w.key_tag = qr_level_key(level);
	rc = qr_ident_build(&id, ex, level, study, series, NULL);
	w.c = c;
	w.field = DIMSE_C_FIND_RSP;
	w.explicit_vr = ex;
	w.fn = fn;
	w.ctx = ctx;
	if (rc == ERR_OK)
		rc = send_rq(c, PC_FIND, DIMSE_C_FIND_RQ, DIMSE_FIND_STUDY_ROOT, NULL, &id, &w);
	if (rc != ERR_OK)
		snprintf(why, whylen, "cannot send the C-FIND-RQ to %s: %s", c->a->peer->ae, err_str(rc));
	if (rc == ERR_OK)
		rc = await(c, &w, why, whylen);
	if (rc == ERR_OK && w.fn_err != ERR_OK)
		rc = w.fn_err;
	if (rc == ERR_OK) {
		*status = w.cmd.status;
		snprintf(comment, clen, "%s", (w.cmd.has & DIMSE_F_ERROR_COMMENT) ? w.cmd.error_comment : "");
		printable(comment);
		*skipped = w.skipped;
	}
	wbuf_fini(&id);
	wbuf_fini(&w.id);
	return rc;
}

enum err dimse_scu_move(struct dimse_scu *c, const char *study, const char *dest_ae,
                        void (*progress)(void *ctx, const struct dimse_scu_move *m), void *ctx,
                        struct dimse_scu_move *res, char *why, size_t whylen)
{
	struct dimse_scu_move m;
	struct wait w;
	struct wbuf id;
	bool ex = c->move_explicit;
	enum err rc;

	if (!c->move_ok) {
		snprintf(why, whylen, "%s did not accept Study Root C-MOVE", c->a->peer->ae);
		return ERR_NOTFOUND;
	}
	memset(&m, 0, sizeof m);
	memset(&w, 0, sizeof w);
	w.progress_ms = clock_mono_ms();
	wbuf_init(&id, SCU_MAX_IDENTIFIER);
	wbuf_init(&w.id, SCU_MAX_IDENTIFIER);
	rc = qr_ident_build(&id, ex, "STUDY", study, NULL, NULL);
	w.c = c;
	w.field = DIMSE_C_MOVE_RSP;
	w.m = &m;
	w.progress = progress;
	w.ctx = ctx;
	if (rc == ERR_OK)
		rc = send_rq(c, PC_MOVE, DIMSE_C_MOVE_RQ, DIMSE_MOVE_STUDY_ROOT, dest_ae, &id, &w);
	if (rc != ERR_OK)
		snprintf(why, whylen, "cannot send the C-MOVE-RQ to %s: %s", c->a->peer->ae, err_str(rc));
	if (rc == ERR_OK)
		rc = await(c, &w, why, whylen);
	if (rc == ERR_OK) {
		m.status = w.cmd.status;
		snprintf(m.comment, sizeof m.comment, "%.64s", (w.cmd.has & DIMSE_F_ERROR_COMMENT) ? w.cmd.error_comment : "");
		printable(m.comment);
		m.cancelled = w.cancel_sent;
		*res = m;
	}
	wbuf_fini(&id);
	wbuf_fini(&w.id);
	return rc;
}
