/* audit_fuzz.c: libFuzzer target for the readers of the audit log, the
 * file a tamperer edits: `audit verify` (each line's hash suffix and hash,
 * its JSON fields, the chain's seq and prev links, the checkpoints'
 * signatures under the key of the vault the seeds come from) and the tail
 * reader of audit_open (the last record is checked before the chain is
 * continued; a torn last line is cut off when it is the start of the next
 * record). The input is the log file, written to /dev/shm (else $TMPDIR),
 * opened, given one record, closed and verified again. abort()s when
 *   - a log of records that no checkpoint covers (unsigned) is not named
 *     from the first of them, or is not intact as a chain;
 *   - verify's counts disagree with the file: intact with another number
 *     of records than of lines, or a fault on another line than the one
 *     after the intact records;
 *   - a log whose last line is its first damaged one (a bad hash, not a
 *     record, too long) is opened for appending: its damage would be
 *     buried under new records;
 *   - a log that verifies intact, or intact but for a torn last record,
 *     is refused, or does not verify intact after the append with one
 *     record more (two when a torn record was cut: the recovery record);
 *   - an append to a damaged log moves its first damage (verify then
 *     reports another number of intact records, or another fault).
 * After a line "#anchor" the rest of the input is the anchor file beside
 * the log (audit.log.anchor: a signed checkpoint seq and hash, read by
 * verify and by audit_open); its faults (cut, unreadable, not signed) are
 * named after the intact records, or at line 0 for the anchor itself, and
 * an append moves none of them.
 * Layer: fuzz. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dicomvault/audit.h"
#include "dicomvault/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ANCHOR_MARK "#anchor\n"

/* keys/audit.pub of the vault that wrote fuzz/corpus/audit/ */
static const char seed_pk_hex[] = "dc0e852d3b4b76a3bdc0852411830f0a161179a24d7208048369ec0a56ad1312";

static uint8_t seed_pk[SIGN_PK_LEN];
static char path[256], apath[280];

static void setup(void)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	size_t i;

	if (path[0] != 0)
		return;
	for (i = 0; i < SIGN_PK_LEN; i++) {
		unsigned v;
		if (sscanf(seed_pk_hex + 2 * i, "%2x", &v) != 1)
			abort();
		seed_pk[i] = (uint8_t)v;
	}
	snprintf(path, sizeof path, "%s/dv-audit-fuzz-%ld.log", dir != NULL ? dir : "/tmp", (long)getpid());
	snprintf(apath, sizeof apath, "%s.anchor", path);
	log_set_level(LOG_ERROR);
}

static void verify(struct audit_verify_result *r)
{
	struct audit_verify_opts o;

	memset(&o, 0, sizeof o);
	o.pk = seed_pk;
	if (audit_verify_ex(path, &o, r) != ERR_OK)
		abort();   /* the file is there and readable: only faults, no errors */
	if (r->fault == AUDIT_UNSIGNED) {
		/* every checkpoint verified, the chain whole, but records no
		 * checkpoint covers: named from the first of them; the rest of
		 * the properties are the chain's (verified again without a key) */
		if (r->bad_line != r->records + 1 || r->bad_seq != r->expected_seq || r->bad_seq != r->records + 1 ||
		    (r->checkpoints > 0 && r->records != r->last_checkpoint_seq))
			abort();
		o.pk = NULL;
		if (audit_verify_ex(path, &o, r) != ERR_OK || r->fault != AUDIT_OK)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_verify_result pre, post;
	struct audit_rec rec;
	struct audit *a = NULL;
	size_t lines = 0, i;
	bool ends_nl = size == 0 || data[size - 1] == '\n', appended, local;
	enum err rc;
	int fd;

	setup();
	(void)unlink(apath);
	for (i = 0; i + sizeof ANCHOR_MARK - 1 <= size; i++) {
		if (memcmp(data + i, ANCHOR_MARK, sizeof ANCHOR_MARK - 1) == 0 && (i == 0 || data[i - 1] == '\n')) {
			const uint8_t *an = data + i + sizeof ANCHOR_MARK - 1;
			size_t alen = size - i - (sizeof ANCHOR_MARK - 1);
			fd = open(apath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0 || (alen > 0 && write(fd, an, alen) != (ssize_t)alen) || close(fd) != 0)
				abort();
			size = i;
			ends_nl = size == 0 || data[size - 1] == '\n';
			break;
		}
	}
	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
		abort();

	verify(&pre);
	if (pre.fault == AUDIT_OK && (!ends_nl || pre.records != lines || pre.bad_line != 0))
		abort();
	/* the anchor itself (line 0) or the line after the intact records */
	if (pre.fault != AUDIT_OK && !(pre.fault == AUDIT_ANCHOR && pre.bad_line == 0) &&
	    (pre.bad_line != pre.records + 1 || pre.bad_line > lines + 1))
		abort();

	rc = audit_open_path(path, &a);
	local = pre.fault == AUDIT_BAD_HASH || pre.fault == AUDIT_UNPARSABLE || pre.fault == AUDIT_LINE_TOO_LONG;
	if (rc == ERR_OK && ends_nl && local && pre.bad_line == lines)
		abort();   /* a damaged last record continued */
	if (rc != ERR_OK) {
		if (pre.fault == AUDIT_OK && pre.records > 0)
			abort();   /* an intact log refused (an empty one is: no chain starts in it) */
		(void)unlink(path);
		(void)unlink(apath);
		return 0;
	}
	memset(&rec, 0, sizeof rec);
	rec.action = "fuzz-append";
	rec.outcome = AUDIT_SUCCESS;
	rec.actor.user = "fuzz";
	rec.actor.addr = "local";
	appended = audit_append(a, &rec) == ERR_OK;
	audit_close(a);
	if (!appended)
		abort();   /* /dev/shm: nothing to fail on */

	verify(&post);
	if (pre.fault == AUDIT_OK) {
		if (post.fault != AUDIT_OK || post.records != pre.records + 1 || post.last_seq != pre.last_seq + 1)
			abort();
	} else if (pre.fault == AUDIT_TRUNCATED && pre.records == lines) {
		/* intact but for the last line, which open cut as torn */
		if (post.fault != AUDIT_OK || post.records != pre.records + 2)
			abort();
	} else if (pre.fault == AUDIT_ANCHOR && pre.bad_line == 0) {
		/* the anchor itself is bad: the log beside it grew by the record */
		if (post.fault != AUDIT_ANCHOR || post.bad_line != 0 || post.records != pre.records + 1)
			abort();
	} else if (post.fault != pre.fault || post.records != pre.records || post.bad_line != pre.bad_line) {
		abort();
	}
	(void)unlink(path);
	(void)unlink(apath);
	return 0;
}
