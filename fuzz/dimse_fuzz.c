/* dimse_fuzz.c: libFuzzer target for the DIMSE command set parser. The
 * input is one command set. When it parses, the required-element check
 * runs, and the command is built again: the build must succeed (unless
 * ErrorComment is longer than LO's 64 characters, which we read but do
 * not write), parse back, and give the same elements and values; a
 * second build must be byte-identical to the first. The target abort()s
 * on an inconsistency. Layer: fuzz. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dimse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct dimse_cmd *a, const struct dimse_cmd *b)
{
	return a->has == b->has && a->field == b->field && a->msg_id == b->msg_id && a->msg_id_rsp == b->msg_id_rsp &&
	       a->priority == b->priority && a->data_set_type == b->data_set_type && a->status == b->status &&
	       a->error_id == b->error_id && a->move_orig_id == b->move_orig_id && a->remaining == b->remaining &&
	       a->completed == b->completed && a->failed == b->failed && a->warning == b->warning &&
	       strcmp(a->sop_class, b->sop_class) == 0 && strcmp(a->sop_instance, b->sop_instance) == 0 &&
	       strcmp(a->req_sop_class, b->req_sop_class) == 0 &&
	       strcmp(a->req_sop_instance, b->req_sop_instance) == 0 && strcmp(a->move_dest, b->move_dest) == 0 &&
	       strcmp(a->move_orig_ae, b->move_orig_ae) == 0 && strcmp(a->error_comment, b->error_comment) == 0 &&
	       a->noffending == b->noffending &&
	       memcmp(a->offending, b->offending, sizeof a->offending[0] * a->noffending) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dimse_cmd c, d;
	struct wbuf w, w2;
	const char *why = NULL;
	enum err rc;

	rc = dimse_cmd_parse(data, size, &c);
	if (rc != ERR_OK) {
		if (rc != ERR_PARSE && rc != ERR_LIMIT)
			abort();
		return 0;
	}
	rc = dimse_cmd_check(&c, &why);
	if (rc != ERR_OK && (why == NULL || (rc != ERR_PARSE && rc != ERR_UNSUPPORTED)))
		abort();
	wbuf_init(&w, 1 << 20);
	wbuf_init(&w2, 1 << 20);
	rc = dimse_cmd_build(&c, &w);
	if (rc != ERR_OK) {
		if (strlen(c.error_comment) <= 64)
			abort();
		goto out;
	}
	if (w.len > size + 64 * 8)
		abort();   /* only padding may be added */
	if (dimse_cmd_parse(w.p, w.len, &d) != ERR_OK)
		abort();
	if (d.nunknown != 0 || !same(&c, &d))
		abort();
	if (dimse_cmd_build(&d, &w2) != ERR_OK || w2.len != w.len || memcmp(w.p, w2.p, w.len) != 0)
		abort();
out:
	wbuf_fini(&w);
	wbuf_fini(&w2);
	return 0;
}
