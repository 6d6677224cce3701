/* audit.c: the audit trail. Records are JSON lines in DIR/audit/audit.log,
 * chained by SHA-256 (seq, prev, hash), appended with one write() under a
 * mutex (threads) and flock (processes), then fsync'd before audit_append
 * returns, outside the locks, one fsync for all the threads whose records
 * were written before it began (group commit); optional Ed25519
 * checkpoints; a streaming verifier with bounded memory. The format is
 * documented in docs/internals/audit.md. Layer: core. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dicomvault/audit.h"
#include "dicomvault/io.h"
#include "dicomvault/charset.h"
#include "dicomvault/log.h"
#include "dicomvault/wbuf.h"

#define HASH_SUFFIX     ",\"hash\":\""
#define HASH_SUFFIX_LEN 9u
/* `,"hash":"` 64 hex `"}`: the bytes after the canonical part of a line */
#define TAIL_LEN        (HASH_SUFFIX_LEN + 64u + 2u)
#define CHECKPOINT_CTX  "dicomvault-audit-checkpoint:1:"
#define ANCHOR_CTX      "dicomvault-audit-anchor:1:"
#define ANCHOR_SUFFIX   ".anchor"   /* the anchor's file: the log's path and this */
#define ANCHOR_MAX      512u        /* bytes of an anchor file */
#define TIME_LEN        24u   /* 2024-05-01T12:34:56.789Z */
#define AUDIT_TIME_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */
#define TIME_BUF        96u   /* room for any int fields, as the compiler sees it */

/* The longest field is 6 bytes of escape per input byte plus an ellipsis
 * and quotes; 12 fields and the fixed parts must fit in one line. */
_Static_assert(12u * (6u * AUDIT_FIELD_MAX + 32u) + 1024u < AUDIT_LINE_MAX, "an audit record must fit in a line");

struct audit {
	pthread_mutex_t mu;
	int fd;
	/* group commit of records that must be durable before their caller
	 * goes on: bytes appended through this handle (under mu) and how many
	 * of them an fsync has covered (under sync_mu, taken before mu, never
	 * inside it): one fsync for every record written before it began */
	pthread_mutex_t sync_mu;
	uint64_t appended, durable;
	/* an fsync failed (under sync_mu): Linux reports a write-back error
	 * once, so a later fsync's success does not make the bytes it missed
	 * durable; every wait for a record not yet covered fails from then on */
	bool sync_failed;
	/* the same, under mu: set by write_line's own fsync failing too, so
	 * that no record is appended after one whose bytes may be lost (its
	 * successors would chain to a hole after a power loss) */
	bool io_failed;
	char path[4096];
	/* the chain as last seen (valid when known_size equals the file size) */
	off_t known_size;
	bool synced;
	uint64_t seq;             /* of the last record (0: empty log) */
	uint8_t head[32];         /* its hash (zeros: empty log) */
	bool last_is_checkpoint;
	/* checkpoints */
	const struct secret *sk;
	uint8_t pk[SIGN_PK_LEN];
	unsigned every;
	uint64_t last_cp_seq;
	bool cp_soon;             /* opened on records no checkpoint covers: one after the first append */
	/* bytes of a torn last record removed (read_tail), to be recorded */
	uint64_t torn_bytes;
	bool anchor_guard;        /* while opening: a torn record is cut only if the log is not short of its anchor */
	/* the syncer thread (under mu): it fsyncs what was appended when
	 * kicked (audit_append_start: the caller works meanwhile) and, with
	 * lazy reads on (audit_lazy_reads), every sync_ms: read records are
	 * written at once and made durable by it, or by the next record
	 * fsynced at once (an fsync covers everything before it) */
	bool syncer_on, lazy_reads, stop, kicked;
	unsigned sync_ms;
	pthread_t syncer;
	pthread_cond_t cv;
};

/* The anchor beside a log (write_anchor). */
struct anchor {
	uint64_t seq;
	uint8_t hash[32];
	uint8_t sig[SIGN_SIG_LEN];
};

/* What a reader learns from one line. */
struct line_info {
	uint64_t seq;
	uint8_t prev[32];
	uint8_t hash[32];
	bool checkpoint;
	bool keyless;             /* an action writers without the key append (reidentify, torn-record recovery,
	                             the command line's reading of the trail) */
	bool init;                /* the vault's init (vault-init) */
	bool anchored;            /* a checkpoint whose writer kept the anchor beside the log */
	uint8_t key[SIGN_PK_LEN];
	uint8_t sig[SIGN_SIG_LEN];
	char time[40];
};

/* ---- small helpers ---- */

static void hex_put(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int hex_val(char c, bool upper_ok)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (upper_ok && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2n hex digits (lower case unless upper_ok) into n bytes. */
static bool hex_get(const char *s, size_t len, uint8_t *out, size_t n, bool upper_ok)
{
	size_t i;

	if (len != 2 * n)
		return false;
	for (i = 0; i < n; i++) {
		int hi = hex_val(s[2 * i], upper_ok), lo = hex_val(s[2 * i + 1], upper_ok);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool audit_action_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == 0)
		return false;
	for (i = 0; s[i]; i++)
		if (i >= AUDIT_ACTION_MAX || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static const char *outcome_str(enum audit_outcome o)
{
	switch (o) {
	case AUDIT_SUCCESS: return "success";
	case AUDIT_FAILURE: return "failure";
	case AUDIT_DENIED: return "denied";
	}
	return NULL;
}

const char *audit_fault_str(enum audit_fault f)
{
	switch (f) {
	case AUDIT_OK: return "ok";
	case AUDIT_BAD_HASH: return "bad-hash";
	case AUDIT_BROKEN_LINK: return "broken-link";
	case AUDIT_SEQ_GAP: return "sequence-gap";
	case AUDIT_SEQ_ORDER: return "sequence-order";
	case AUDIT_UNPARSABLE: return "unparsable";
	case AUDIT_TRUNCATED: return "truncated";
	case AUDIT_LINE_TOO_LONG: return "line-too-long";
	case AUDIT_BAD_SIGNATURE: return "bad-signature";
	case AUDIT_UNSIGNED: return "unsigned";
	case AUDIT_NO_INIT: return "no-init";
	case AUDIT_ANCHOR: return "anchor";
	}
	return "unknown";
}

void audit_session_ref(const void *token, size_t n, char out[AUDIT_SESSION_REF_LEN])
{
	static const char ctx[] = "dicomvault-session:";
	struct sha256 *h = NULL;
	uint8_t d[32];

	if (sha256_new(&h) != ERR_OK) {
		/* crypto_init failed: no hash, no reference */
		out[0] = 0;
		return;
	}
	sha256_update(h, ctx, sizeof ctx - 1);
	sha256_update(h, token, n);
	sha256_final(h, d);
	hex_put(out, d, 8);
	mem_wipe(d, sizeof d);
}

/* ---- writing a record ---- */

/* s as a JSON string: quotes, backslashes and control characters escaped,
 * invalid UTF-8 replaced by U+FFFD, at most AUDIT_FIELD_MAX bytes of s kept
 * (cut at a character boundary, then U+2026 "..." marks the cut). */
static void put_str(struct wbuf *w, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t used = 0;

	wbuf_putc(w, '"');
	while (*s) {
		size_t n = charset_utf8_seq_len(s, strnlen((const char *)s, 4));
		unsigned char c = *s;
		if (used + (n ? n : 1) > AUDIT_FIELD_MAX) {
			wbuf_put(w, "\xe2\x80\xa6", 3);
			break;
		}
		if (n == 0) {
			wbuf_put(w, "\xef\xbf\xbd", 3);
			n = 1;
		} else if (c == '"' || c == '\\') {
			wbuf_putc(w, '\\');
			wbuf_putc(w, (char)c);
		} else if (c == '\n') {
			wbuf_put(w, "\\n", 2);
		} else if (c == '\r') {
			wbuf_put(w, "\\r", 2);
		} else if (c == '\t') {
			wbuf_put(w, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			wbuf_printf(w, "\\u%04x", (unsigned)c);
		} else {
			wbuf_put(w, s, n);
		}
		s += n;
		used += n;
	}
	wbuf_putc(w, '"');
}

/* ,"name":"value" when value is non-empty; *first drops the comma. */
static void put_field(struct wbuf *w, bool *first, const char *name, const char *value)
{
	if (value == NULL || value[0] == 0)
		return;
	wbuf_printf(w, "%s\"%s\":", *first ? "" : ",", name);
	*first = false;
	put_str(w, value);
}

static void now_ms(int64_t *ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	*ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ISO 8601 UTC with milliseconds: 2024-05-01T12:34:56.789Z. */
static void fmt_time(int64_t ms, char out[TIME_BUF])
{
	time_t secs;
	struct tm tm;

	if (ms <= 0 || ms > AUDIT_TIME_MAX_MS)
		now_ms(&ms);
	secs = (time_t)(ms / 1000);
	if (gmtime_r(&secs, &tm) == NULL)
		memset(&tm, 0, sizeof tm);
	snprintf(out, TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* The common head: {"v":1,"seq":S,"prev":"P","time":"T","type":"TYPE" */
static void put_head(struct wbuf *w, const struct audit *a, const char *time, const char *type)
{
	char prev[AUDIT_HASH_HEX];

	hex_put(prev, a->head, 32);
	wbuf_printf(w, "{\"v\":1,\"seq\":%llu,\"prev\":\"%s\",\"time\":\"%s\",\"type\":\"%s\"",
	            (unsigned long long)(a->seq + 1), prev, time, type);
}

/* The records r takes: one, and one more for every AUDIT_PATIENTS_PER_RECORD
 * keys of its patient list past the first. */
static size_t parts_of(const struct audit_rec *r)
{
	size_t n = r->objects.npatient_list;

	return n > AUDIT_PATIENTS_PER_RECORD ? (n + AUDIT_PATIENTS_PER_RECORD - 1) / AUDIT_PATIENTS_PER_RECORD : 1;
}

/* Record `part` of r (parts_of): the first whole, the others its action,
 * outcome, reason and actor with the next keys of its patient list. */
static enum err build_event(const struct audit *a, const struct audit_rec *r, size_t part, struct wbuf *w)
{
	const struct audit_actor *ac = &r->actor;
	const struct audit_objects *ob = &r->objects;
	char time[TIME_BUF], phex[AUDIT_HASH_HEX], reason[AUDIT_FIELD_MAX + 80];
	size_t from = part * AUDIT_PATIENTS_PER_RECORD, to = ob->npatient_list, i;
	bool first;

	if (to - from > AUDIT_PATIENTS_PER_RECORD)
		to = from + AUDIT_PATIENTS_PER_RECORD;
	fmt_time(r->time_ms, time);
	put_head(w, a, time, "event");
	wbuf_printf(w, ",\"action\":\"%s\",\"outcome\":\"%s\"", r->action, outcome_str(r->outcome));
	first = false;
	if (part > 0) {
		/* the original reason cut so that the note always fits */
		snprintf(reason, sizeof reason, "%.*s (continued: patients %zu-%zu of %zu)", (int)AUDIT_FIELD_MAX - 64,
		         r->reason ? r->reason : "", from + 1, to, ob->npatient_list);
		put_field(w, &first, "reason", reason);
	} else {
		put_field(w, &first, "reason", r->reason);
	}
	wbuf_puts(w, ",\"actor\":{");
	first = true;
	put_field(w, &first, "user", ac->user);
	put_field(w, &first, "role", ac->role);
	put_field(w, &first, "session", ac->session);
	put_field(w, &first, "addr", ac->addr);
	put_field(w, &first, "cert", ac->cert);
	put_field(w, &first, "ua", ac->user_agent);
	wbuf_puts(w, "},\"objects\":{");
	first = true;
	if (ob->patient != NULL) {
		hex_put(phex, ob->patient, 32);
		put_field(w, &first, "patient", phex);
	}
	if (ob->patient_list != NULL && from < to) {
		wbuf_printf(w, "%s\"patients\":[", first ? "" : ",");
		for (i = from; i < to; i++) {
			hex_put(phex, ob->patient_list + i * 32, 32);
			wbuf_printf(w, "%s\"%s\"", i > from ? "," : "", phex);
		}
		wbuf_putc(w, ']');
		first = false;
	}
	if (part > 0) {
		wbuf_putc(w, '}');
		return wbuf_err(w);
	}
	put_field(w, &first, "study", ob->study_uid);
	put_field(w, &first, "series", ob->series_uid);
	put_field(w, &first, "sop", ob->sop_uid);
	put_field(w, &first, "object", ob->object);
	if (ob->counted)
		wbuf_printf(w, "%s\"counts\":{\"patients\":%llu,\"studies\":%llu,\"series\":%llu,\"instances\":%llu}",
		            first ? "" : ",", (unsigned long long)ob->patients, (unsigned long long)ob->studies,
		            (unsigned long long)ob->series, (unsigned long long)ob->instances);
	wbuf_putc(w, '}');
	return wbuf_err(w);
}

/* The message a checkpoint signs. */
static void checkpoint_msg(struct wbuf *w, uint64_t seq, const uint8_t prev[32], const char *time)
{
	char hex[AUDIT_HASH_HEX];

	hex_put(hex, prev, 32);
	wbuf_printf(w, CHECKPOINT_CTX "%llu:%s:%s", (unsigned long long)seq, hex, time);
}

static enum err build_checkpoint(const struct audit *a, struct wbuf *w)
{
	char time[TIME_BUF], key[2 * SIGN_PK_LEN + 1], sighex[2 * SIGN_SIG_LEN + 1];
	uint8_t sig[SIGN_SIG_LEN];
	struct wbuf m;
	enum err rc;

	fmt_time(0, time);
	wbuf_init(&m, 512);
	checkpoint_msg(&m, a->seq + 1, a->head, time);
	rc = wbuf_err(&m);
	if (rc == ERR_OK)
		rc = sign_detached(a->sk, m.p, m.len, sig);
	wbuf_fini(&m);
	if (rc != ERR_OK)
		return rc;
	hex_put(key, a->pk, SIGN_PK_LEN);
	hex_put(sighex, sig, SIGN_SIG_LEN);
	put_head(w, a, time, "checkpoint");
	wbuf_printf(w, ",\"key\":\"%s\",\"sig\":\"%s\",\"anchored\":true", key, sighex);
	return wbuf_err(w);
}

/* Appends ,"hash":"H"}\n to the canonical bytes in w; H into hash. */
static enum err seal_line(struct wbuf *w, uint8_t hash[32])
{
	char hex[AUDIT_HASH_HEX];

	if (wbuf_err(w) != ERR_OK)
		return wbuf_err(w);
	sha256_once(w->p, w->len, hash);
	hex_put(hex, hash, 32);
	wbuf_puts(w, HASH_SUFFIX);
	wbuf_puts(w, hex);
	wbuf_puts(w, "\"}\n");
	return wbuf_err(w);
}

/* ---- reading a record ---- */

/* The seq a damaged line seems to have, for messages (0: none). */
static uint64_t peek_seq(const char *p, size_t n)
{
	static const char pre[] = "{\"v\":1,\"seq\":";
	uint64_t v = 0;
	size_t i, k = sizeof pre - 1;

	if (n < k || memcmp(p, pre, k) != 0)
		return 0;
	for (i = k; i < n && i < k + 19 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	return v;
}

static enum audit_fault bad(char *why, size_t whylen, enum audit_fault f, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return f;
}

bool audit_names_patient(json_t *objects, const char (*keys)[65], size_t n)
{
	json_t *list = json_object_get(objects, "patients"), *v;
	const char *one = json_string_value(json_object_get(objects, "patient"));
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (one != NULL && strcmp(one, keys[i]) == 0)
			return true;
		json_array_foreach(list, j, v) {
			const char *s = json_string_value(v);
			if (s != NULL && strcmp(s, keys[i]) == 0)
				return true;
		}
	}
	return false;
}

/* A string member of o of exactly len bytes if len != 0. */
static const char *get_str(json_t *o, const char *name, size_t len)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_string(v) || (len != 0 && json_string_length(v) != len))
		return NULL;
	return json_string_value(v);
}

/* The structure of a line whose hash already matched. */
static enum audit_fault line_fields(json_t *o, struct line_info *li, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, "v"), *seq = json_object_get(o, "seq");
	const char *prev = get_str(o, "prev", 64), *type = get_str(o, "type", 0), *time = get_str(o, "time", 0);

	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return bad(why, whylen, AUDIT_UNPARSABLE, "not a version 1 audit record");
	if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		return bad(why, whylen, AUDIT_UNPARSABLE, "no valid \"seq\"");
	li->seq = (uint64_t)json_integer_value(seq);
	if (prev == NULL || !hex_get(prev, 64, li->prev, 32, false))
		return bad(why, whylen, AUDIT_UNPARSABLE, "no valid \"prev\"");
	if (time == NULL || json_string_length(json_object_get(o, "time")) != TIME_LEN)
		return bad(why, whylen, AUDIT_UNPARSABLE, "no valid \"time\"");
	snprintf(li->time, sizeof li->time, "%s", time);
	if (type != NULL && strcmp(type, "event") == 0) {
		const char *action = get_str(o, "action", 0), *outcome = get_str(o, "outcome", 0);
		li->checkpoint = false;
		if (action == NULL || !audit_action_ok(action))
			return bad(why, whylen, AUDIT_UNPARSABLE, "no valid \"action\"");
		li->keyless = strcmp(action, AUDIT_REIDENTIFY) == 0 || strcmp(action, AUDIT_RECOVERY) == 0 ||
		              strcmp(action, AUDIT_READ_TRAIL) == 0;
		li->init = strcmp(action, AUDIT_VAULT_INIT) == 0;
		if (outcome == NULL ||
		    (strcmp(outcome, "success") != 0 && strcmp(outcome, "failure") != 0 && strcmp(outcome, "denied") != 0))
			return bad(why, whylen, AUDIT_UNPARSABLE, "no valid \"outcome\"");
		if (!json_is_object(json_object_get(o, "actor")) || !json_is_object(json_object_get(o, "objects")))
			return bad(why, whylen, AUDIT_UNPARSABLE, "no \"actor\" or \"objects\"");
	} else if (type != NULL && strcmp(type, "checkpoint") == 0) {
		const char *key = get_str(o, "key", 2 * SIGN_PK_LEN), *sig = get_str(o, "sig", 2 * SIGN_SIG_LEN);
		li->checkpoint = true;
		li->anchored = json_is_true(json_object_get(o, "anchored"));
		if (key == NULL || sig == NULL || !hex_get(key, 2 * SIGN_PK_LEN, li->key, SIGN_PK_LEN, false) ||
		    !hex_get(sig, 2 * SIGN_SIG_LEN, li->sig, SIGN_SIG_LEN, false))
			return bad(why, whylen, AUDIT_UNPARSABLE, "a checkpoint without a valid \"key\" and \"sig\"");
	} else {
		return bad(why, whylen, AUDIT_UNPARSABLE, "unknown record \"type\"");
	}
	return AUDIT_OK;
}

/* Checks one line (n bytes, newline excluded): the hash suffix, the hash,
 * then the JSON structure. */
static enum audit_fault line_check(const char *p, size_t n, struct line_info *li, char *why, size_t whylen)
{
	uint8_t got[32];
	json_error_t je;
	json_t *o;
	enum audit_fault f;

	memset(li, 0, sizeof *li);
	if (n > AUDIT_LINE_MAX)
		return bad(why, whylen, AUDIT_LINE_TOO_LONG, "line longer than the limit");
	if (n < TAIL_LEN + 2 || memcmp(p + n - TAIL_LEN, HASH_SUFFIX, HASH_SUFFIX_LEN) != 0 ||
	    !hex_get(p + n - TAIL_LEN + HASH_SUFFIX_LEN, 64, li->hash, 32, false) || p[n - 2] != '"' ||
	    p[n - 1] != '}' || p[0] != '{')
		return bad(why, whylen, AUDIT_UNPARSABLE, "not an audit record (no ,\"hash\":\"...\"} at the end)");
	sha256_once(p, n - TAIL_LEN, got);
	if (!ct_equal(got, li->hash, 32))
		return bad(why, whylen, AUDIT_BAD_HASH, "the record's bytes do not match its hash (it was modified)");
	o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		snprintf(why, whylen, "not valid JSON (column %d)", je.column);
		return AUDIT_UNPARSABLE;
	}
	f = json_is_object(o) ? line_fields(o, li, why, whylen)
	                      : bad(why, whylen, AUDIT_UNPARSABLE, "not a JSON object");
	json_decref(o);
	return f;
}

/* ---- the log file ---- */

static enum err lock_file(int fd, int op)
{
	while (flock(fd, op) != 0)
		if (errno != EINTR)
			return ERR_IO;
	return ERR_OK;
}

static enum err read_tail(struct audit *a, off_t size);

/* The last line of the file (at file offset off, n bytes, no newline) is
 * torn: the process died inside the one write() of a record, so that
 * append never returned and nobody was told the record exists. That is
 * only believed when the bytes are the beginning of the next record of
 * the chain ("{"v":1,"seq":N+1,"prev":"<hash of record N>"...); anything
 * else is damage and is refused. The torn bytes are cut off (the caller
 * then records that in the chain: see note_torn). Called with the file
 * locked: a writer holds the lock for its whole write, so a partial line
 * seen under the lock is not being written. */
static enum err shorter_than_anchor(const struct audit *a);

static enum err cut_torn(struct audit *a, off_t off, const char *p, size_t n)
{
	char head[160], prev[AUDIT_HASH_HEX];
	size_t hn;
	int w;
	enum err rc;

	if (off == 0) {
		a->seq = 0;
		memset(a->head, 0, sizeof a->head);
		a->last_is_checkpoint = false;
		rc = ERR_OK;
	} else {
		rc = read_tail(a, off);
	}
	if (rc != ERR_OK)
		return rc;
	hex_put(prev, a->head, 32);
	w = snprintf(head, sizeof head, "{\"v\":1,\"seq\":%llu,\"prev\":\"%s\"", (unsigned long long)(a->seq + 1), prev);
	if (w < 0 || (size_t)w >= sizeof head)
		return ERR_INTERNAL;
	hn = (size_t)w;
	if (n == 0 || memcmp(p, head, n < hn ? n : hn) != 0) {
		log_error("%s: the last line is truncated (no newline) and is not the start of the next record; run "
		          "`dicomvault audit verify`", a->path);
		return ERR_PARSE;
	}
	/* a log that open then refuses (cut below its anchor) is left as it
	 * is: nothing is changed in it but by `audit reanchor` */
	if (a->anchor_guard && shorter_than_anchor(a) != ERR_OK)
		return ERR_PARSE;
	if (ftruncate(a->fd, off) != 0 || fsync(a->fd) != 0) {
		log_error("%s: cannot remove a torn last record: %s", a->path, strerror(errno));
		return ERR_IO;
	}
	log_warn("%s: removed a torn last record (%zu bytes, seq %llu): a writer died inside its write", a->path, n,
	         (unsigned long long)(a->seq + 1));
	a->torn_bytes += n;
	return ERR_OK;
}

/* Reads the last record of the file (size bytes) into the chain state. */
static enum err read_tail(struct audit *a, off_t size)
{
	size_t want = (size_t)size < AUDIT_LINE_MAX + 2 ? (size_t)size : AUDIT_LINE_MAX + 2, got = 0, start;
	struct line_info li;
	char why[192];
	char *buf;
	enum err rc = ERR_PARSE;

	buf = malloc(want ? want : 1);
	if (buf == NULL)
		return ERR_NOMEM;
	while (got < want) {
		ssize_t r = pread(a->fd, buf + got, want - got, size - (off_t)(want - got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = ERR_IO;
			goto out;
		}
		got += (size_t)r;
	}
	if (buf[want - 1] != '\n') {
		for (start = want; start > 0 && buf[start - 1] != '\n'; start--)
			;
		if (start == 0 && want < (size_t)size) {
			log_error("%s: the last line is truncated (no newline) and longer than %u bytes", a->path,
			          AUDIT_LINE_MAX);
			goto out;
		}
		rc = cut_torn(a, size - (off_t)(want - start), buf + start, want - start);
		goto out;
	}
	for (start = want - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && want < (size_t)size) {
		log_error("%s: the last line is longer than %u bytes", a->path, AUDIT_LINE_MAX);
		goto out;
	}
	if (line_check(buf + start, want - 1 - start, &li, why, sizeof why) != AUDIT_OK) {
		log_error("%s: the last record is damaged (%s); run `dicomvault audit verify`", a->path, why);
		goto out;
	}
	a->seq = li.seq;
	memcpy(a->head, li.hash, 32);
	a->last_is_checkpoint = li.checkpoint;
	if (li.checkpoint)
		a->last_cp_seq = li.seq;
	rc = ERR_OK;
out:
	free(buf);
	return rc;
}

/* Brings the chain state up to date with the file (another process may
 * have appended). Called with the file locked. */
static enum err sync_tail(struct audit *a)
{
	struct stat st;
	enum err rc;

	if (fstat(a->fd, &st) != 0)
		return ERR_IO;
	if (a->synced && st.st_size == a->known_size)
		return ERR_OK;
	if (a->synced && st.st_size < a->known_size) {
		/* only truncation makes an append-only file shrink */
		log_error("%s: the audit log shrank from %lld to %lld bytes: it was truncated; refusing to continue the chain",
		          a->path, (long long)a->known_size, (long long)st.st_size);
		return ERR_DENIED;
	}
	if (st.st_size == 0) {
		a->seq = 0;
		memset(a->head, 0, sizeof a->head);
		a->last_is_checkpoint = false;
		rc = ERR_OK;
	} else {
		rc = read_tail(a, st.st_size);
		if (rc == ERR_OK && a->torn_bytes > 0 && fstat(a->fd, &st) != 0)
			rc = ERR_IO;   /* a torn record was cut off: the size changed */
	}
	if (rc != ERR_OK)
		return rc;
	if (!a->synced && !a->last_is_checkpoint) {
		/* an unsigned tail (a writer that died, or one without the
		 * key): signed with the first record appended here, so that
		 * tails do not add up across crashes (AUDIT_UNSIGNED_MAX) */
		a->last_cp_seq = a->seq;
		a->cp_soon = a->seq > 0;
	}
	a->known_size = st.st_size;
	a->synced = true;
	return ERR_OK;
}

/* One write() of the whole line, then fsync (unless lazy: durable_upto
 * does it, or the syncer thread). A short write is undone so that the log
 * never holds half a record. */
static enum err write_line(struct audit *a, const struct wbuf *w, const uint8_t hash[32], bool checkpoint, bool lazy)
{
	ssize_t n;

	if (a->io_failed) {
		log_error("%s: an fsync of the log failed before: no record is appended until it is opened again", a->path);
		return ERR_IO;
	}
	do
		n = write(a->fd, w->p, w->len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)w->len) {
		log_error("%s: cannot append an audit record: %s", a->path, n < 0 ? strerror(errno) : "short write");
		if (n > 0 && ftruncate(a->fd, a->known_size) != 0)
			log_error("%s: cannot remove a partial record: %s", a->path, strerror(errno));
		a->synced = false;
		return ERR_IO;
	}
	if (!lazy && fsync(a->fd) != 0) {
		log_error("%s: fsync of an audit record failed: %s", a->path, strerror(errno));
		a->synced = false;
		a->io_failed = true;
		return ERR_IO;
	}
	a->seq++;
	a->appended += w->len;
	memcpy(a->head, hash, 32);
	a->known_size += (off_t)w->len;
	a->last_is_checkpoint = checkpoint;
	if (checkpoint) {
		a->last_cp_seq = a->seq;
		a->cp_soon = false;
	}
	return ERR_OK;
}

static enum err fsync_parent(const char *path);

/* The message an anchor signs: the seq and hash of a checkpoint. */
static void anchor_msg(struct wbuf *w, uint64_t seq, const uint8_t hash[32])
{
	char hex[AUDIT_HASH_HEX];

	hex_put(hex, hash, 32);
	wbuf_printf(w, ANCHOR_CTX "%llu:%s", (unsigned long long)seq, hex);
}

/* The anchor: the last checkpoint's seq and hash, signed, in a file beside
 * the log (its path and ANCHOR_SUFFIX), replaced whole (a temporary file,
 * fsync, rename, the folder's fsync). The log alone cannot show that its
 * end was cut off back to a checkpoint; the anchor, which only a holder of
 * the signing key can write, does (audit_verify_ex). Written once the
 * checkpoint is durable, so it never names a record a crash could take. A
 * failure is logged: the log itself is whole. */
static enum err write_anchor_at(const char *log, const struct secret *sk, uint64_t seq, const uint8_t hash[32]);

static void write_anchor(const struct audit *a, const uint8_t hash[32])
{
	(void)write_anchor_at(a->path, a->sk, a->seq, hash);
}

/* The anchor of the log at log: checkpoint seq with hash, signed with sk. */
static enum err write_anchor_at(const char *log, const struct secret *sk, uint64_t seq, const uint8_t hash[32])
{
	char path[4096 + 16], tmp[4096 + 24], hex[AUDIT_HASH_HEX], sighex[2 * SIGN_SIG_LEN + 1];
	uint8_t sig[SIGN_SIG_LEN];
	struct wbuf m;
	ssize_t n = -1;
	int fd, len;
	char line[ANCHOR_MAX];
	enum err rc;

	if (snprintf(path, sizeof path, "%s" ANCHOR_SUFFIX, log) >= (int)sizeof path)
		return ERR_LIMIT;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	wbuf_init(&m, 256);
	anchor_msg(&m, seq, hash);
	rc = wbuf_err(&m);
	if (rc == ERR_OK)
		rc = sign_detached(sk, m.p, m.len, sig);
	wbuf_fini(&m);
	if (rc != ERR_OK) {
		log_warn("%s: cannot sign the audit anchor", path);
		return rc;
	}
	hex_put(hex, hash, 32);
	hex_put(sighex, sig, SIGN_SIG_LEN);
	len = snprintf(line, sizeof line, "{\"v\":1,\"seq\":%llu,\"hash\":\"%s\",\"sig\":\"%s\"}\n",
	               (unsigned long long)seq, hex, sighex);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		do
			n = write(fd, line, (size_t)len);
		while (n < 0 && errno == EINTR);
		if (n != len || fsync(fd) != 0)
			n = -1;
		close(fd);
	}
	if (fd < 0 || n < 0 || rename(tmp, path) != 0 || fsync_parent(path) != ERR_OK) {
		log_warn("%s: cannot write the audit anchor: %s", path, strerror(errno));
		(void)unlink(tmp);
		return ERR_IO;
	}
	return ERR_OK;
}

/* Called with the mutex held and the file locked and synced. */
static enum err append_checkpoint(struct audit *a)
{
	uint8_t hash[32];
	struct wbuf w;
	enum err rc;

	wbuf_init(&w, AUDIT_LINE_MAX + 1);
	rc = build_checkpoint(a, &w);
	if (rc == ERR_OK)
		rc = seal_line(&w, hash);
	if (rc == ERR_OK)
		rc = write_line(a, &w, hash, true, false);
	wbuf_fini(&w);
	if (rc == ERR_OK)
		write_anchor(a, hash);   /* under the file's lock: anchors go in checkpoint order */
	return rc;
}

/* After a torn record was cut off (cut_torn), says so in the chain: an
 * audit-recovery record. Called with the mutex held and the file locked
 * and synced. */
static enum err note_torn(struct audit *a)
{
	char reason[160];
	struct audit_rec r;
	uint8_t hash[32];
	struct wbuf w;
	enum err rc;

	if (a->torn_bytes == 0)
		return ERR_OK;
	snprintf(reason, sizeof reason,
	         "removed %llu bytes of a torn last record (its writer died inside the write; the append never returned)",
	         (unsigned long long)a->torn_bytes);
	memset(&r, 0, sizeof r);
	r.action = AUDIT_RECOVERY;
	r.outcome = AUDIT_FAILURE;
	r.reason = reason;
	r.actor.addr = "local";
	wbuf_init(&w, AUDIT_LINE_MAX + 1);
	rc = build_event(a, &r, 0, &w);
	if (rc == ERR_OK)
		rc = seal_line(&w, hash);
	if (rc == ERR_OK)
		rc = write_line(a, &w, hash, false, false);
	wbuf_fini(&w);
	if (rc == ERR_OK)
		a->torn_bytes = 0;
	return rc;
}

/* Records of reads (a query, a retrieval, a view): lazy when enabled. */
static bool is_read_action(const char *action)
{
	return strcmp(action, AUDIT_QUERY) == 0 || strcmp(action, AUDIT_RETRIEVE) == 0 || strcmp(action, AUDIT_VIEW) == 0;
}

/* Returns once every byte appended through a, up to upto, is durable:
 * whoever finds it not yet so fsyncs for all the records written so far
 * (the others waiting on sync_mu, the syncer among them, then find theirs
 * covered). After a failed fsync (whoever ran it, the syncer too) no
 * record not covered before it is ever reported durable. */
static enum err durable_upto(struct audit *a, uint64_t upto)
{
	enum err rc = ERR_OK;
	uint64_t target;

	pthread_mutex_lock(&a->sync_mu);
	if (a->durable < upto && !a->sync_failed) {
		pthread_mutex_lock(&a->mu);
		a->sync_failed = a->io_failed;
		pthread_mutex_unlock(&a->mu);
	}
	if (a->durable < upto && a->sync_failed) {
		rc = ERR_IO;
	} else if (a->durable < upto) {
		pthread_mutex_lock(&a->mu);
		target = a->appended;
		pthread_mutex_unlock(&a->mu);
		if (fsync(a->fd) == 0) {
			a->durable = target;
		} else {
			log_error("%s: fsync of an audit record failed: %s", a->path, strerror(errno));
			a->sync_failed = true;
			pthread_mutex_lock(&a->mu);
			a->io_failed = true;
			pthread_mutex_unlock(&a->mu);
			rc = ERR_IO;
		}
	}
	pthread_mutex_unlock(&a->sync_mu);
	return rc;
}

bool audit_broken(struct audit *a)
{
	bool broken;

	if (a == NULL)
		return false;
	pthread_mutex_lock(&a->mu);
	broken = a->io_failed;
	pthread_mutex_unlock(&a->mu);
	return broken;
}

/* Waits (mu held) for a kick, the stop, or with lazy reads sync_ms; then
 * makes everything appended so far durable, without mu (appends go on). */
static void *syncer_main(void *arg)
{
	struct audit *a = arg;
	uint64_t target;

	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		if (!a->kicked && a->lazy_reads) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(a->sync_ms % 1000) * 1000000L;
			ts.tv_sec += a->sync_ms / 1000 + ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			(void)pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		} else if (!a->kicked) {
			pthread_cond_wait(&a->cv, &a->mu);
		}
		a->kicked = false;
		target = a->appended;
		pthread_mutex_unlock(&a->mu);
		(void)durable_upto(a, target);   /* a failure is logged, and the waiters get it */
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* Starts the syncer thread unless it runs. Called with mu held. */
static enum err syncer_start(struct audit *a)
{
	if (a->syncer_on)
		return ERR_OK;
	a->stop = false;
	a->kicked = false;
	if (pthread_cond_init(&a->cv, NULL) != 0)
		return ERR_NOMEM;
	if (pthread_create(&a->syncer, NULL, syncer_main, a) != 0) {
		pthread_cond_destroy(&a->cv);
		return ERR_NOMEM;
	}
	a->syncer_on = true;
	return ERR_OK;
}

enum err audit_lazy_reads(struct audit *a, unsigned ms)
{
	enum err rc;

	if (ms == 0 || ms > AUDIT_LAZY_MAX_MS)
		return ERR_PARSE;
	pthread_mutex_lock(&a->mu);
	rc = syncer_start(a);
	if (rc == ERR_OK) {
		a->sync_ms = ms;
		a->lazy_reads = true;
		pthread_cond_signal(&a->cv);   /* its wait takes the new period */
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* Writes r in the chain (not yet durable). *upto: the bytes to be durable
 * before r is (0 for a lazy read record). kick: the syncer starts its
 * fsync at once. */
static enum err append(struct audit *a, const struct audit_rec *r, bool kick, uint64_t *upto)
{
	uint8_t hash[32];
	struct wbuf w;
	size_t part;
	bool lazy = false;
	enum err rc = ERR_INTERNAL;

	*upto = 0;
	if (!audit_action_ok(r->action) || outcome_str(r->outcome) == NULL) {
		log_error("refusing an audit record with a bad action or outcome");
		return ERR_PARSE;
	}
	wbuf_init(&w, AUDIT_LINE_MAX + 1);
	pthread_mutex_lock(&a->mu);
	rc = lock_file(a->fd, LOCK_EX);
	if (rc != ERR_OK)
		goto unlock;
	rc = sync_tail(a);
	if (rc == ERR_OK)
		rc = note_torn(a);
	lazy = a->lazy_reads && is_read_action(r->action);
	for (part = 0; rc == ERR_OK && part < parts_of(r); part++) {
		wbuf_reset(&w);
		rc = build_event(a, r, part, &w);
		if (rc == ERR_OK)
			rc = seal_line(&w, hash);
		/* written here, made durable outside the locks (group commit) */
		if (rc == ERR_OK)
			rc = write_line(a, &w, hash, false, true);
	}
	if (rc == ERR_OK && !lazy)
		*upto = a->appended;
	if (rc == ERR_OK && a->sk != NULL && (a->cp_soon || a->seq - a->last_cp_seq >= a->every) &&
	    append_checkpoint(a) != ERR_OK)
		log_warn("%s: cannot write a checkpoint; will try again", a->path);
	if (lock_file(a->fd, LOCK_UN) != ERR_OK)
		log_warn("%s: cannot unlock", a->path);
	if (rc == ERR_OK && kick && *upto > 0 && syncer_start(a) == ERR_OK) {
		a->kicked = true;
		pthread_cond_signal(&a->cv);
	}
unlock:
	pthread_mutex_unlock(&a->mu);
	wbuf_fini(&w);
	return rc;
}

enum err audit_append(struct audit *a, const struct audit_rec *r)
{
	uint64_t upto = 0;
	enum err rc = append(a, r, false, &upto);

	return rc == ERR_OK && upto > 0 ? durable_upto(a, upto) : rc;
}

enum err audit_append_start(struct audit *a, const struct audit_rec *r, uint64_t *ticket)
{
	return append(a, r, true, ticket);
}

enum err audit_wait(struct audit *a, uint64_t ticket)
{
	return ticket > 0 ? durable_upto(a, ticket) : ERR_OK;
}

enum err audit_checkpoint(struct audit *a)
{
	enum err rc;

	if (a->sk == NULL)
		return ERR_INTERNAL;
	pthread_mutex_lock(&a->mu);
	rc = lock_file(a->fd, LOCK_EX);
	if (rc == ERR_OK) {
		rc = sync_tail(a);
		if (rc == ERR_OK)
			rc = append_checkpoint(a);
		if (lock_file(a->fd, LOCK_UN) != ERR_OK)
			log_warn("%s: cannot unlock", a->path);
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void audit_set_signer(struct audit *a, const struct secret *sk, const uint8_t pk[SIGN_PK_LEN], unsigned every)
{
	pthread_mutex_lock(&a->mu);
	a->sk = sk;
	memcpy(a->pk, pk, SIGN_PK_LEN);
	a->every = every ? every : AUDIT_CHECKPOINT_EVERY;
	pthread_mutex_unlock(&a->mu);
}

static enum err fsync_parent(const char *path)
{
	char dir[4096];
	enum err rc = ERR_OK;
	int fd;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return ERR_LIMIT;
	path_parent(dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ERR_IO;
	if (fsync(fd) != 0)
		rc = ERR_IO;
	close(fd);
	return rc;
}

/* create: a new log (the vault's init), refused if the file exists;
 * otherwise an existing one, with at least one record: a vault's log
 * begins with the record of its init, so a missing or empty one was
 * deleted or emptied, and a writer that started a new chain in its place
 * would make the loss look like an intact log. */
static enum err anchor_read(const char *path, struct anchor *an);

/* A log cut off below its anchor's checkpoint is not appended to: the
 * records after the cut would hide it (ERR_PARSE; `audit verify` says
 * more). The anchor's signature is left to verify. */
static enum err shorter_than_anchor(const struct audit *a)
{
	struct anchor an;

	if (anchor_read(a->path, &an) != ERR_OK || an.seq <= a->seq)
		return ERR_OK;
	log_error("%s: the audit log ends at seq %llu, but its anchor shows that seq %llu was written (was its end cut "
	          "off?); nothing is recorded in it, run `dicomvault audit verify` (a vault restored from a copy taken "
	          "while it ran: `dicomvault audit reanchor`)", a->path, (unsigned long long)a->seq,
	          (unsigned long long)an.seq);
	return ERR_PARSE;
}

static enum err open_log_ex(const char *path, bool create, bool ignore_anchor, struct audit **out);

static enum err open_log(const char *path, bool create, struct audit **out)
{
	return open_log_ex(path, create, false, out);
}

/* ignore_anchor: a log shorter than its anchor is opened all the same
 * (audit_reanchor, which then verifies it) */
static enum err open_log_ex(const char *path, bool create, bool ignore_anchor, struct audit **out)
{
	struct audit *a = NULL;
	struct stat st;
	enum err rc = ERR_INTERNAL;

	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	if (strlen(path) >= sizeof a->path)
		return ERR_LIMIT;
	a = calloc(1, sizeof *a);
	if (a == NULL)
		return ERR_NOMEM;
	a->fd = -1;
	snprintf(a->path, sizeof a->path, "%s", path);
	if (pthread_mutex_init(&a->mu, NULL) != 0) {
		free(a);
		return ERR_NOMEM;
	}
	if (pthread_mutex_init(&a->sync_mu, NULL) != 0) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		return ERR_NOMEM;
	}
	a->fd = open(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
	if (a->fd < 0) {
		rc = errno == ENOENT ? ERR_NOTFOUND : errno == ELOOP || errno == EEXIST ? ERR_DENIED : ERR_IO;
		if (errno == ENOENT)
			log_error("%s: no audit log: a vault always has one (was it deleted, or did its init not finish?); "
			          "nothing is recorded in a new one, run `dicomvault audit verify`", path);
		else
			log_error("%s: cannot %s the audit log: %s", path, create ? "create" : "open", strerror(errno));
		goto out;
	}
	if (create && (fchmod(a->fd, 0600) != 0 || fsync_parent(path) != ERR_OK)) {
		rc = ERR_IO;
		goto out;
	}
	if (fstat(a->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = ERR_IO;
		goto out;
	}
	if ((st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		log_error("%s: the audit log must be a file of ours with mode 0600 (it has %04o)", path,
		          (unsigned)(st.st_mode & 07777));
		rc = ERR_DENIED;
		goto out;
	}
	rc = lock_file(a->fd, LOCK_EX);
	if (rc == ERR_OK) {
		a->anchor_guard = !create && !ignore_anchor;
		rc = sync_tail(a);
		a->anchor_guard = false;
		if (rc == ERR_OK && !create && !ignore_anchor)
			rc = shorter_than_anchor(a);
		if (rc == ERR_OK && !create && a->seq == 0) {
			log_error("%s: the audit log is empty, but a vault's begins with the record of its init (was it "
			          "emptied, or did its init not finish?); nothing is recorded in it, run `dicomvault audit "
			          "verify`", path);
			rc = ERR_DENIED;
		}
		if (rc == ERR_OK)
			rc = note_torn(a);
		if (lock_file(a->fd, LOCK_UN) != ERR_OK)
			log_warn("%s: cannot unlock", path);
	}
	if (rc != ERR_OK)
		goto out;
	*out = a;
	a = NULL;
out:
	if (a != NULL) {
		if (a->fd >= 0)
			close(a->fd);
		pthread_mutex_destroy(&a->mu);
		pthread_mutex_destroy(&a->sync_mu);
		free(a);
	}
	return rc;
}

enum err audit_open_path(const char *path, struct audit **out)
{
	return open_log(path, false, out);
}

enum err audit_create_path(const char *path, struct audit **out)
{
	return open_log(path, true, out);
}

static enum err vault_log(const char *vault_dir, bool create, struct audit **out)
{
	char path[4096];
	int n = snprintf(path, sizeof path, "%s/" AUDIT_LOG_PATH, vault_dir);

	if (n < 0 || (size_t)n >= sizeof path)
		return ERR_LIMIT;
	return open_log(path, create, out);
}

enum err audit_open(const char *vault_dir, struct audit **out)
{
	return vault_log(vault_dir, false, out);
}

enum err audit_create(const char *vault_dir, struct audit **out)
{
	return vault_log(vault_dir, true, out);
}

void audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->syncer_on) {
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->syncer, NULL);
		pthread_cond_destroy(&a->cv);
		a->syncer_on = false;
	}
	if (a->sk != NULL) {
		pthread_mutex_lock(&a->mu);
		if (lock_file(a->fd, LOCK_EX) == ERR_OK) {
			if (sync_tail(a) == ERR_OK && a->seq > 0 && !a->last_is_checkpoint && append_checkpoint(a) != ERR_OK)
				log_warn("%s: cannot write the closing checkpoint", a->path);
			if (lock_file(a->fd, LOCK_UN) != ERR_OK)
				log_warn("%s: cannot unlock", a->path);
		}
		pthread_mutex_unlock(&a->mu);
	}
	(void)durable_upto(a, a->appended);   /* lazy records left: logs a failure */
	close(a->fd);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->sync_mu);
	free(a);
}

/* ---- verification ---- */

/* Reads the anchor of the log at path: ERR_NOTFOUND without one, ERR_PARSE
 * if it is not one (its signature is not checked here). */
static enum err anchor_read(const char *path, struct anchor *an)
{
	char file[4096 + 16], buf[ANCHOR_MAX];
	json_t *o, *seq;
	const char *hash, *sig;
	ssize_t n;
	int fd;
	enum err rc = ERR_PARSE;

	memset(an, 0, sizeof *an);
	if (snprintf(file, sizeof file, "%s" ANCHOR_SUFFIX, path) >= (int)sizeof file)
		return ERR_LIMIT;
	fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_PARSE;   /* a link in its place is no anchor */
	do
		n = read(fd, buf, sizeof buf);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0 || (size_t)n == sizeof buf)
		return ERR_PARSE;
	o = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL)
		return ERR_PARSE;
	seq = json_object_get(o, "seq");
	hash = get_str(o, "hash", 64);
	sig = get_str(o, "sig", 2 * SIGN_SIG_LEN);
	if (json_is_object(o) && json_integer_value(json_object_get(o, "v")) == 1 && json_is_integer(seq) &&
	    json_integer_value(seq) >= 1 && hash != NULL && hex_get(hash, 64, an->hash, 32, false) && sig != NULL &&
	    hex_get(sig, 2 * SIGN_SIG_LEN, an->sig, SIGN_SIG_LEN, false)) {
		an->seq = (uint64_t)json_integer_value(seq);
		rc = ERR_OK;
	}
	json_decref(o);
	return rc;
}

struct verifier {
	const struct audit_verify_opts *o;
	struct audit_verify_result *res;
	uint8_t head[32];
	uint8_t before_head[32];   /* the hash before head's record */
	bool head_signed;          /* head's record is a checkpoint whose signature verified */
	bool blame_before;         /* a broken link: the record before may be the changed one */
	uint8_t cp_head[32];       /* hash of the last checkpoint */
	uint64_t uncovered;        /* records after it that a key-holding writer appended */
	/* the anchor (a key given): read, its signature good, its record met */
	enum err anchor_rc;
	bool anchor_signed, anchor_met, anchor_differs, saw_anchored;
	uint8_t anchor_before[32];  /* the hash before the anchor's seq */
	struct anchor an;
};

static enum audit_fault check_signature(const struct verifier *vf, const struct line_info *li, char *why,
                                        size_t whylen)
{
	struct wbuf m;
	enum audit_fault f = AUDIT_OK;

	if (!ct_equal(li->key, vf->o->pk, SIGN_PK_LEN))
		return bad(why, whylen, AUDIT_BAD_SIGNATURE, "the checkpoint names another signing key than the vault's");
	wbuf_init(&m, 512);
	checkpoint_msg(&m, li->seq, li->prev, li->time);
	if (wbuf_err(&m) != ERR_OK || sign_verify(vf->o->pk, m.p, m.len, li->sig) != ERR_OK)
		f = bad(why, whylen, AUDIT_BAD_SIGNATURE, "the checkpoint's signature does not verify");
	wbuf_fini(&m);
	return f;
}

/* One line of the log; a fault is recorded in vf->res. */
static enum audit_fault verify_line(struct verifier *vf, const char *p, size_t n, char *why, size_t whylen)
{
	struct audit_verify_result *res = vf->res;
	uint64_t want = res->last_seq + 1;
	struct line_info li;
	enum audit_fault f;

	f = line_check(p, n, &li, why, whylen);
	if (f != AUDIT_OK) {
		res->bad_seq = peek_seq(p, n);
		return f;
	}
	res->bad_seq = li.seq;
	if (li.seq > want) {
		snprintf(why, whylen, "seq %llu where %llu was expected: records are missing or out of order",
		         (unsigned long long)li.seq, (unsigned long long)want);
		return AUDIT_SEQ_GAP;
	}
	if (li.seq < want) {
		snprintf(why, whylen, "seq %llu after seq %llu: records are reordered or duplicated",
		         (unsigned long long)li.seq, (unsigned long long)res->last_seq);
		return AUDIT_SEQ_ORDER;
	}
	if (!ct_equal(li.prev, vf->head, 32)) {
		/* the record before verified only against its own hash, which
		 * anyone can recompute: a changed record with its hash redone
		 * breaks the link after it, so it may be the first bad one,
		 * unless a verified signature vouches for it */
		if (want == 1 || vf->head_signed)
			return bad(why, whylen, AUDIT_BROKEN_LINK,
			           "\"prev\" is not the hash of the record before (a record was replaced or inserted)");
		vf->blame_before = true;
		snprintf(why, whylen,
		         "seq %llu and seq %llu do not link: seq %llu was changed (its hash recomputed), or seq %llu was "
		         "changed or inserted",
		         (unsigned long long)(want - 1), (unsigned long long)li.seq, (unsigned long long)(want - 1),
		         (unsigned long long)li.seq);
		return AUDIT_BROKEN_LINK;
	}
	if (li.seq == 1 && vf->o->vault_log && !li.init)
		return bad(why, whylen, AUDIT_NO_INIT,
		           "the log does not begin with the record of the vault's init: it was replaced by a new one");
	if (li.checkpoint && vf->o->pk != NULL) {
		f = check_signature(vf, &li, why, whylen);
		if (f != AUDIT_OK)
			return f;
	}
	if (vf->anchor_signed && li.seq == vf->an.seq) {
		/* said at the end, if nothing else is wrong (anchor_end) */
		vf->anchor_met = true;
		vf->anchor_differs = !li.checkpoint || !ct_equal(li.hash, vf->an.hash, 32);
		memcpy(vf->anchor_before, vf->head, 32);
	}
	vf->saw_anchored |= li.checkpoint && li.anchored && vf->o->pk != NULL;
	res->records++;
	res->last_seq = li.seq;
	memcpy(vf->before_head, vf->head, 32);
	memcpy(vf->head, li.hash, 32);
	vf->head_signed = li.checkpoint && vf->o->pk != NULL;
	if (li.checkpoint) {
		res->checkpoints++;
		res->last_checkpoint_seq = li.seq;
		memcpy(vf->cp_head, li.hash, 32);
		vf->uncovered = 0;
	} else if (!li.keyless) {
		vf->uncovered++;
	}
	return AUDIT_OK;
}

/* Reads the anchor of the log at path and checks its signature. */
static void anchor_check(struct verifier *vf, const char *path)
{
	struct wbuf m;

	vf->anchor_rc = anchor_read(path, &vf->an);
	if (vf->anchor_rc != ERR_OK)
		return;
	wbuf_init(&m, 256);
	anchor_msg(&m, vf->an.seq, vf->an.hash);
	vf->anchor_signed = wbuf_err(&m) == ERR_OK && sign_verify(vf->o->pk, m.p, m.len, vf->an.sig) == ERR_OK;
	wbuf_fini(&m);
}

/* After an intact log (a key given): whether it disagrees with its anchor,
 * the fault in res if so. */
static bool anchor_end(const struct verifier *vf, struct audit_verify_result *res)
{
	if (vf->o->no_anchor)
		return false;
	if (vf->anchor_rc == ERR_NOTFOUND && vf->saw_anchored) {
		snprintf(res->detail, sizeof res->detail, "the anchor beside the log is missing, though its checkpoints "
		         "say it was kept (removed, with the log cut short?)");
	} else if (vf->anchor_rc != ERR_OK && vf->anchor_rc != ERR_NOTFOUND) {
		snprintf(res->detail, sizeof res->detail, "the anchor beside the log cannot be read (damaged or replaced)");
	} else if (vf->anchor_rc == ERR_OK && !vf->anchor_signed) {
		snprintf(res->detail, sizeof res->detail, "the anchor beside the log is not signed by the audit key");
	} else if (vf->anchor_rc == ERR_OK && vf->anchor_differs) {
		snprintf(res->detail, sizeof res->detail, "seq %llu is not the checkpoint that the signed anchor names: "
		         "the log was rewritten from there", (unsigned long long)vf->an.seq);
	} else if (vf->anchor_rc == ERR_OK && !vf->anchor_met) {
		snprintf(res->detail, sizeof res->detail, "the log ends at seq %llu, but its signed anchor shows that "
		         "seq %llu was written: records were cut from its end", (unsigned long long)res->last_seq,
		         (unsigned long long)vf->an.seq);
	} else {
		return false;
	}
	res->fault = AUDIT_ANCHOR;
	return true;
}

/* What a second pass hands on: the first max records, the last of which
 * must have the hash head (the pass before found them so). */
struct emit {
	uint64_t max;
	uint8_t head[32];
	char *held;               /* a record handed on once the next one links to it */
	size_t nheld;
	bool done;                /* the max-th record was reached, as it was */
};

/* One pass over the log; with em, o->on_record is handed em->max records,
 * each only once the next links to it (the last once it is the record
 * the first pass ended on): a record changed since is never handed on. */
static enum err verify_pass(const char *path, const struct audit_verify_opts *o, struct audit_verify_result *out,
                            struct emit *em)
{
	static const struct audit_verify_opts none;
	const size_t cap = AUDIT_LINE_MAX + 1;   /* a line and its newline */
	struct audit_verify_result res;
	struct verifier vf;
	size_t start = 0, end = 0;
	uint64_t line = 0;
	bool eof = false;
	char *buf = NULL;
	int fd;
	enum err rc = ERR_INTERNAL;

	if (o == NULL)
		o = &none;
	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	memset(&res, 0, sizeof res);
	memset(&vf, 0, sizeof vf);
	vf.o = o;
	vf.res = &res;
	res.signatures_checked = o->pk != NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	if (o->pk != NULL && !o->no_anchor)
		anchor_check(&vf, path);
	else
		vf.anchor_rc = ERR_NOTFOUND;
	buf = malloc(cap);
	if (buf == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (;;) {
		char *nl = memchr(buf + start, '\n', end - start);
		if (nl == NULL) {
			ssize_t r;
			if (eof) {
				if (end > start) {
					line++;
					res.bad_seq = peek_seq(buf + start, end - start);
					res.fault = bad(res.detail, sizeof res.detail, AUDIT_TRUNCATED,
					                "the last line has no newline: the log was cut short");
				}
				break;
			}
			if (start > 0) {
				memmove(buf, buf + start, end - start);
				end -= start;
				start = 0;
			}
			if (end == cap) {
				line++;
				res.bad_seq = peek_seq(buf, end);
				snprintf(res.detail, sizeof res.detail, "line longer than %u bytes", AUDIT_LINE_MAX);
				res.fault = AUDIT_LINE_TOO_LONG;
				break;
			}
			r = read(fd, buf + end, cap - end);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = ERR_IO;
				goto out;
			}
			if (r == 0)
				eof = true;
			end += (size_t)r;
			continue;
		}
		line++;
		res.fault = verify_line(&vf, buf + start, (size_t)(nl - (buf + start)), res.detail, sizeof res.detail);
		if (res.fault != AUDIT_OK)
			break;
		if (em != NULL) {
			size_t n = (size_t)(nl - (buf + start)) + 1;
			if (em->nheld > 0 && o->on_record(o->ctx, em->held, em->nheld) != 0) {
				rc = ERR_IO;
				goto out;
			}
			em->nheld = 0;
			if (line == em->max) {
				em->done = ct_equal(vf.head, em->head, 32);
				if (em->done && o->on_record(o->ctx, buf + start, n) != 0) {
					rc = ERR_IO;
					goto out;
				}
				rc = ERR_OK;
				goto out;   /* the rest is the first pass's to say */
			}
			memcpy(em->held, buf + start, n);
			em->nheld = n;
		}
		start = (size_t)(nl - buf) + 1;
	}
	if (res.fault == AUDIT_OK && o->pk != NULL && (res.checkpoints == 0 || vf.uncovered > AUDIT_UNSIGNED_MAX)) {
		/* named from the first record no checkpoint covers */
		if (res.last_seq == 0)
			snprintf(res.detail, sizeof res.detail,
			         "the log is empty, but a vault's begins with the signed record of its init (emptied?)");
		else if (res.checkpoints == 0)
			snprintf(res.detail, sizeof res.detail,
			         "no signed checkpoint covers any of the %llu records (checkpoints removed?)",
			         (unsigned long long)res.last_seq);
		else
			snprintf(res.detail, sizeof res.detail,
			         "%llu records after the last checkpoint (seq %llu): more than writers leave unsigned (%u; "
			         "checkpoints removed?)",
			         (unsigned long long)(res.last_seq - res.last_checkpoint_seq),
			         (unsigned long long)res.last_checkpoint_seq, AUDIT_UNSIGNED_MAX);
		res.fault = AUDIT_UNSIGNED;
		/* in an intact chain, line n holds seq n */
		res.bad_line = res.last_checkpoint_seq + 1;
		res.bad_seq = res.expected_seq = res.last_checkpoint_seq + 1;
		/* intact: up to the last checkpoint */
		res.records = res.last_checkpoint_seq;
		res.last_seq = res.last_checkpoint_seq;
		memcpy(vf.head, vf.cp_head, 32);
	} else if (res.fault == AUDIT_OK && o->pk != NULL && anchor_end(&vf, &res)) {
		if (vf.anchor_differs) {
			/* in an intact chain, line n holds seq n */
			res.bad_line = res.bad_seq = res.expected_seq = vf.an.seq;
			res.records = res.last_seq = vf.an.seq - 1;
			memcpy(vf.head, vf.anchor_before, 32);
		} else {
			/* named from the first record missing (0: the anchor itself is bad) */
			res.bad_line = vf.anchor_rc == ERR_OK && vf.anchor_signed ? line + 1 : 0;
			res.bad_seq = 0;
			res.expected_seq = res.last_seq + 1;
		}
	} else if (res.fault != AUDIT_OK && vf.blame_before) {
		/* the first record that may be bad is the one before the link
		 * (in an intact chain so far, line n - 1 holds seq n - 1) */
		res.bad_line = line - 1;
		res.bad_seq = res.expected_seq = res.last_seq;
		res.records--;
		res.last_seq--;
		memcpy(vf.head, vf.before_head, 32);
	} else if (res.fault != AUDIT_OK) {
		res.bad_line = line;
		res.expected_seq = res.last_seq + 1;
	} else {
		res.bad_seq = 0;
		res.detail[0] = 0;
	}
	hex_put(res.head, vf.head, 32);
	if (res.checkpoints > 0)
		hex_put(res.last_checkpoint_hash, vf.cp_head, 32);
	*out = res;
	rc = ERR_OK;
out:
	free(buf);
	close(fd);
	return rc;
}

enum err audit_verify_ex(const char *path, const struct audit_verify_opts *o, struct audit_verify_result *out)
{
	struct audit_verify_opts first;
	struct audit_verify_result again;
	struct emit em;
	enum err rc;

	if (o == NULL || o->on_record == NULL)
		return verify_pass(path, o, out, NULL);
	/* what is intact is known only at the end (a record edited with its
	 * hash redone shows by the link after it; the anchor and the unsigned
	 * tail are checked last): a first pass finds it, the second hands on
	 * those records only, each verified again as it is read and handed on
	 * once the next links to it, the last once its hash is the one the
	 * first pass ended on; a log changed in between ends in ERR_IO */
	first = *o;
	first.on_record = NULL;
	rc = verify_pass(path, &first, out, NULL);
	if (rc != ERR_OK || out->records == 0)
		return rc;
	memset(&em, 0, sizeof em);
	em.max = out->records;
	if (!hex_get(out->head, 64, em.head, 32, false))
		return ERR_INTERNAL;
	em.held = malloc(AUDIT_LINE_MAX + 1);
	if (em.held == NULL)
		return ERR_NOMEM;
	rc = verify_pass(path, o, &again, &em);
	free(em.held);
	if (rc == ERR_OK && !em.done) {
		log_error("%s: the audit log changed while it was read: stopped before the records that changed", path);
		rc = ERR_IO;
	}
	return rc;
}

enum err audit_reanchor(const char *path, const struct secret *sk, const uint8_t pk[SIGN_PK_LEN], uint64_t *old_seq,
                        struct audit_verify_result *res)
{
	struct audit_verify_opts o;
	struct anchor an;
	uint8_t hash[32];
	enum err rc;

	int fd;

	struct audit *a = NULL;

	memset(res, 0, sizeof *res);
	*old_seq = anchor_read(path, &an) == ERR_OK ? an.seq : 0;
	/* opened as writers open it, the anchor aside: a torn last record (a
	 * copy taken in the middle of a write) is cut off and recorded */
	rc = open_log_ex(path, false, true, &a);
	audit_close(a);   /* no signer: no checkpoint of its own */
	memset(&o, 0, sizeof o);
	o.pk = pk;
	o.vault_log = true;
	o.no_anchor = true;
	if (rc != ERR_OK) {
		/* refused (damaged, empty): the verification says why */
		if (audit_verify_ex(path, &o, res) == ERR_OK && (res->fault != AUDIT_OK || res->checkpoints == 0))
			return ERR_PARSE;
		return rc;
	}
	/* under the log's lock, as writers move the anchor */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	rc = lock_file(fd, LOCK_EX);
	if (rc == ERR_OK)
		rc = audit_verify_ex(path, &o, res);
	if (rc == ERR_OK && (res->fault != AUDIT_OK || res->checkpoints == 0 ||
	                     !hex_get(res->last_checkpoint_hash, 64, hash, 32, false)))
		rc = ERR_PARSE;
	if (rc == ERR_OK)
		rc = write_anchor_at(path, sk, res->last_checkpoint_seq, hash);
	close(fd);   /* releases the lock */
	return rc;
}

enum err audit_verify(const char *path, struct audit_verify_result *out)
{
	return audit_verify_ex(path, NULL, out);
}

/* Reads the last want bytes of fd (size bytes) into a new buffer. */
static enum err read_end(int fd, off_t size, size_t want, char **out)
{
	char *buf = malloc(want + 1);
	size_t got = 0;

	if (buf == NULL)
		return ERR_NOMEM;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, size - (off_t)(want - got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return ERR_IO;
		}
		got += (size_t)r;
	}
	*out = buf;
	return ERR_OK;
}

/* Whether the line (n bytes) is an intact event of action; then its
 * reason ("" if none) into reason. The pattern found first is a cheap
 * filter: inside a JSON string a quote is escaped, so "action":"X" is
 * only ever the member itself. */
static bool event_of(const char *p, size_t n, const char *pat, size_t plen, const char *action, char *reason,
                     size_t cap)
{
	struct line_info li;
	char why[192];
	json_t *o;
	bool ok;

	if (memmem(p, n, pat, plen) == NULL || line_check(p, n, &li, why, sizeof why) != AUDIT_OK || li.checkpoint)
		return false;
	o = json_loadb(p, n, 0, NULL);
	ok = o != NULL && get_str(o, "action", 0) != NULL && strcmp(get_str(o, "action", 0), action) == 0;
	if (ok) {
		const char *r = get_str(o, "reason", 0);
		snprintf(reason, cap, "%s", r != NULL ? r : "");
	}
	json_decref(o);
	return ok;
}

enum err audit_last_event(const char *path, const char *action, size_t max, char *reason, size_t cap, bool *found)
{
	char pat[AUDIT_ACTION_MAX + 16], *buf = NULL;
	struct stat st;
	size_t want, end, start;
	int fd, plen;
	enum err rc;

	*found = false;
	if (!audit_action_ok(action))
		return ERR_PARSE;
	plen = snprintf(pat, sizeof pat, "\"action\":\"%s\"", action);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return ERR_IO;
	}
	want = (uint64_t)st.st_size < max ? (size_t)st.st_size : max;
	rc = read_end(fd, st.st_size, want, &buf);
	close(fd);
	if (rc != ERR_OK)
		return rc;
	/* newest first; a last line without newline is being written (or
	 * torn) and the first one may be cut by the bound: neither is read */
	for (end = want; end > 0 && buf[end - 1] != '\n'; end--)
		;
	while (end > 0 && !*found) {
		for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
			;
		if (start == 0 && want < (size_t)st.st_size)
			break;
		*found = event_of(buf + start, end - 1 - start, pat, (size_t)plen, action, reason, cap);
		end = start;
	}
	free(buf);
	return ERR_OK;
}

enum err audit_pubkey_read(const char *path, uint8_t pk[SIGN_PK_LEN])
{
	uint8_t key[SIGN_PK_LEN];
	uint8_t *b = NULL;
	size_t n = 0;
	enum err rc;

	rc = file_read_all(path, 256, &b, &n);
	if (rc != ERR_OK)
		return rc;
	if (n > 0 && b[n - 1] == '\n')
		n--;
	rc = hex_get((const char *)b, n, key, SIGN_PK_LEN, true) ? ERR_OK : ERR_PARSE;
	if (rc == ERR_OK)
		memcpy(pk, key, SIGN_PK_LEN);
	free(b);
	return rc;
}
