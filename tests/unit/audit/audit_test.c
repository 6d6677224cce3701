/* audit_test.c: the audit trail: concurrent appends (threads and
 * processes), escaping of hostile strings, reopening, tamper detection by
 * audit_verify, signed checkpoints, and an independent Python verifier
 * following docs/internals/audit.md. Layer: tests. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/audit.h"
#include "dicomvault/vault.h"

static char base[256];
static int seqno;

/* This binary's fsync (it takes the place of libc's for the library code
 * linked in): fails with EIO while fail_fsync is set, as a disk whose
 * write-back failed would; else the system call. */
static atomic_bool fail_fsync;

int fsync(int fd)
{
	if (atomic_load(&fail_fsync)) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

static void rm_rf(const char *p)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "  cleanup failed\n");
}

/* A fresh log path under base. */
static void new_log(char *path, size_t cap)
{
	snprintf(path, cap, "%s/log%d.jsonl", base, ++seqno);
}

/* A new log opened (NULL, checked, on failure); its path in path. */
static struct audit *open_new(char *path, size_t cap)
{
	struct audit *a = NULL;

	new_log(path, cap);
	CHECK(audit_create_path(path, &a) == ERR_OK);
	return a;
}

static struct audit_rec rec(const char *action, const char *user)
{
	struct audit_rec r;

	memset(&r, 0, sizeof r);
	r.action = action;
	r.outcome = AUDIT_SUCCESS;
	r.actor.user = user;
	r.actor.role = "clinician";
	r.actor.addr = "192.0.2.7:51324";
	r.objects.study_uid = "1.2.840.113619.2.55.3.1";
	return r;
}

/* n records into a new log at path. */
static enum err make_log(const char *path, int n)
{
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_STORE, "alice");
	enum err rc;
	int i;

	rc = audit_open_path(path, &a);
	if (rc == ERR_NOTFOUND)   /* a new log */
		rc = audit_create_path(path, &a);
	for (i = 0; rc == ERR_OK && i < n; i++) {
		r.objects.counted = true;
		r.objects.instances = (uint64_t)i;
		rc = audit_append(a, &r);
	}
	audit_close(a);
	return rc;
}

/* ---- the log as lines, to tamper with ---- */

#define MAXL 64

struct lines {
	char *l[MAXL];
	size_t n;
};

static void lines_read(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;

	ls->n = 0;
	if (f == NULL)
		return;
	while (ls->n < MAXL && (got = getline(&line, &cap, f)) > 0)
		ls->l[ls->n++] = strdup(line);
	free(line);
	fclose(f);
}

static void lines_write(const char *path, const struct lines *ls)
{
	FILE *f = fopen(path, "w");
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < ls->n; i++)
		fputs(ls->l[i], f);
	fclose(f);
}

static void lines_free(struct lines *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

static void lines_delete(struct lines *ls, size_t i)
{
	free(ls->l[i]);
	memmove(&ls->l[i], &ls->l[i + 1], (ls->n - i - 1) * sizeof ls->l[0]);
	ls->n--;
}

static void hexs(char *out, const uint8_t *p, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* A well-formed line: canonical bytes, then ,"hash":"H"}\n. */
static char *seal(const char *canon)
{
	uint8_t h[32];
	char hex[65], *out;
	size_t n = strlen(canon);

	sha256_once(canon, n, h);
	hexs(hex, h, 32);
	out = malloc(n + 80);
	snprintf(out, n + 80, "%s,\"hash\":\"%s\"}\n", canon, hex);
	return out;
}

/* The hash field of a line (64 hex digits). */
static void line_hash(const char *line, char out[65])
{
	size_t n = strlen(line);
	memcpy(out, line + n - 1 - 2 - 64, 64);
	out[64] = 0;
}

/* What a forger without the signing key can do: rewrite every line's
 * seq (if renumber), prev and hash so that the chain is consistent. */
static void rehash(struct lines *ls, bool renumber)
{
	char prev[65], canon[70000];
	size_t i;

	memset(prev, '0', 64);
	prev[64] = 0;
	for (i = 0; i < ls->n; i++) {
		char *line = ls->l[i], *p = strstr(line, ",\"prev\":\""), *rest;
		size_t n = strlen(line), canon_end = n - 76;
		unsigned long long seq = strtoull(line + 13, NULL, 10);
		if (p == NULL)
			continue;
		rest = p + 9 + 64 + 1;
		snprintf(canon, sizeof canon, "{\"v\":1,\"seq\":%llu,\"prev\":\"%s\"%.*s", renumber ? (unsigned long long)i + 1 : seq,
		         prev, (int)(canon_end - (size_t)(rest - line)), rest);
		free(ls->l[i]);
		ls->l[i] = seal(canon);
		line_hash(ls->l[i], prev);
	}
}

static struct audit_verify_result verify_path(const char *path)
{
	struct audit_verify_result r;

	memset(&r, 0, sizeof r);
	if (audit_verify(path, &r) != ERR_OK)
		r.fault = (enum audit_fault)99;
	if (r.fault != AUDIT_OK)
		fprintf(stderr, "  (verify: line %llu seq %llu %s: %s)\n", (unsigned long long)r.bad_line,
		        (unsigned long long)r.bad_seq, audit_fault_str(r.fault), r.detail);
	return r;
}

/* ---- tests ---- */

struct thr {
	struct audit *a;
	int id;
	int fails;
};

static void *thr_main(void *p)
{
	struct thr *t = p;
	char user[16];
	int i;

	snprintf(user, sizeof user, "thread%d", t->id);
	for (i = 0; i < 50; i++) {
		struct audit_rec r = rec(AUDIT_QUERY, user);
		if (audit_append(t->a, &r) != ERR_OK)
			t->fails++;
	}
	return NULL;
}

static int count_in(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int c = 0;

	if (f == NULL)
		return -1;
	while (getline(&line, &cap, f) > 0)
		if (strstr(line, needle) != NULL)
			c++;
	free(line);
	fclose(f);
	return c;
}

TEST(threads_append_concurrently)
{
	char path[300];
	struct audit *a = NULL;
	struct thr t[4];
	pthread_t th[4];
	struct audit_verify_result r;
	struct stat st;
	int i;

	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	for (i = 0; i < 4; i++) {
		t[i].a = a;
		t[i].id = i;
		t[i].fails = 0;
		CHECK(pthread_create(&th[i], NULL, thr_main, &t[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(t[i].fails, 0);
	}
	audit_close(a);
	r = verify_path(path);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 200);
	CHECK_EQ_INT(r.last_seq, 200);
	CHECK(count_in(path, "\"user\":\"thread0\"") == 50 && count_in(path, "\"user\":\"thread3\"") == 50);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
}

/* Lazy reads: a read record is in the file as soon as audit_append
 * returns (a reader sees it), the chain stays whole across lazy and strict
 * records and several threads, the syncer stops cleanly, bad intervals are
 * refused. */
static void *lazy_thr(void *p)
{
	struct audit *a = p;
	struct audit_rec r = rec(AUDIT_QUERY, "lazy");
	int i;

	for (i = 0; i < 50; i++)
		if (audit_append(a, &r) != ERR_OK)
			return (void *)1;
	return NULL;
}

TEST(lazy_reads)
{
	char path[300];
	struct audit *a = NULL;
	struct audit_rec q = rec(AUDIT_QUERY, "bob"), st = rec(AUDIT_STORE, "bob");
	struct audit_verify_result v;
	pthread_t t[3];
	void *ret;
	int i;

	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(audit_lazy_reads(a, 0) == ERR_PARSE);
	CHECK(audit_lazy_reads(a, AUDIT_LAZY_MAX_MS + 1) == ERR_PARSE);
	CHECK(audit_lazy_reads(a, 20) == ERR_OK);
	CHECK(audit_lazy_reads(a, 30) == ERR_OK);   /* again: a new interval, one thread */
	CHECK(audit_append(a, &q) == ERR_OK);
	CHECK_EQ_INT(count_in(path, "\"query\""), 1);   /* written before audit_append returned */
	CHECK(audit_append(a, &st) == ERR_OK);
	for (i = 0; i < 3; i++)
		CHECK(pthread_create(&t[i], NULL, lazy_thr, a) == 0);
	for (i = 0; i < 3; i++) {
		CHECK(pthread_join(t[i], &ret) == 0);
		CHECK(ret == NULL);
	}
	usleep(100 * 1000);   /* the syncer runs meanwhile */
	CHECK(audit_append(a, &q) == ERR_OK);
	audit_close(a);
	CHECK_EQ_INT(count_in(path, "\"query\""), 152);
	v = verify_path(path);
	CHECK_EQ_INT(v.fault, AUDIT_OK);
	CHECK_EQ_INT(v.records, 153);
}

/* audit_append in two halves: the record is in the chain when
 * audit_append_start returns (its fsync started on the syncer), waited for
 * by audit_wait; from several threads mixed with whole appends and lazy
 * reads the chain stays whole; a bad action is refused with no ticket; a
 * lazy read record has ticket 0. */
static void *halves_thr(void *p)
{
	struct audit *a = p;
	struct audit_rec st = rec(AUDIT_STORE, "halves"), q = rec(AUDIT_QUERY, "halves");
	uint64_t t1 = 0, t2 = 0;
	int i;

	for (i = 0; i < 40; i++) {
		if (audit_append_start(a, &st, &t1) != ERR_OK || t1 == 0)
			return (void *)1;
		if (audit_append(a, &q) != ERR_OK)
			return (void *)2;
		if (audit_append_start(a, &st, &t2) != ERR_OK || t2 <= t1)
			return (void *)3;
		if (audit_wait(a, t2) != ERR_OK || audit_wait(a, t1) != ERR_OK)
			return (void *)4;
	}
	return NULL;
}

TEST(append_in_two_halves)
{
	char path[300];
	struct audit *a = NULL;
	struct audit_rec st = rec(AUDIT_STORE, "bob"), q = rec(AUDIT_QUERY, "bob"), bad = rec("Bad Action", "bob");
	struct audit_verify_result v;
	uint64_t t = 99;
	pthread_t th[3];
	void *ret;
	int i;

	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(audit_append_start(a, &st, &t) == ERR_OK);
	CHECK(t > 0);
	CHECK_EQ_INT(count_in(path, "\"store\""), 1);   /* in the file before the wait */
	CHECK(audit_wait(a, t) == ERR_OK);
	CHECK(audit_wait(a, t) == ERR_OK);             /* again: already durable */
	CHECK(audit_append_start(a, &bad, &t) == ERR_PARSE);
	CHECK(t == 0);
	CHECK(audit_wait(a, 0) == ERR_OK);
	CHECK(audit_lazy_reads(a, 20) == ERR_OK);      /* the syncer already runs */
	CHECK(audit_append_start(a, &q, &t) == ERR_OK);
	CHECK(t == 0);                                 /* a lazy read: nothing to wait for */
	for (i = 0; i < 3; i++)
		CHECK(pthread_create(&th[i], NULL, halves_thr, a) == 0);
	for (i = 0; i < 3; i++) {
		CHECK(pthread_join(th[i], &ret) == 0);
		CHECK(ret == NULL);
	}
	CHECK(audit_append_start(a, &st, &t) == ERR_OK);   /* closed without a wait */
	audit_close(a);
	CHECK_EQ_INT(count_in(path, "\"user\":\"halves\""), 3 * 40 * 3);
	v = verify_path(path);
	CHECK_EQ_INT(v.fault, AUDIT_OK);
	CHECK_EQ_INT(v.records, 2 + 3 * 40 * 3 + 1);
}

TEST(processes_append_concurrently)
{
	char path[300];
	struct audit *a = NULL;
	struct audit_verify_result r;
	int i, status = -1;
	pid_t pid;

	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct audit *b = NULL;
		int bad = audit_open_path(path, &b) != ERR_OK;
		for (i = 0; !bad && i < 50; i++) {
			struct audit_rec rc = rec(AUDIT_RETRIEVE, "child");
			bad = audit_append(b, &rc) != ERR_OK;
		}
		audit_close(b);
		_exit(bad);
	}
	for (i = 0; i < 50; i++) {
		struct audit_rec rc = rec(AUDIT_RETRIEVE, "parent");
		CHECK(audit_append(a, &rc) == ERR_OK);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the handle follows what the other process appended */
	{
		struct audit_rec rc = rec(AUDIT_LOGOUT, "parent");
		CHECK(audit_append(a, &rc) == ERR_OK);
	}
	audit_close(a);
	r = verify_path(path);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 101);
	CHECK_EQ_INT(count_in(path, "\"user\":\"child\""), 50);
}

/* The decoded value of actor.NAME in the first record of path. */
static char *actor_field(const char *path, const char *name, size_t *linelen)
{
	struct lines ls;
	json_error_t je;
	json_t *o, *v;
	char *out = NULL;

	lines_read(path, &ls);
	if (ls.n == 0)
		return NULL;
	*linelen = strlen(ls.l[0]);
	o = json_loads(ls.l[0], 0, &je);
	v = json_object_get(json_object_get(o, "actor"), name);
	if (v == NULL)
		v = json_object_get(o, name);
	if (json_is_string(v))
		out = strdup(json_string_value(v));
	json_decref(o);
	lines_free(&ls);
	return out;
}

TEST(hostile_strings_escaped_and_capped)
{
	char path[300], *big, *s;
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_LOGIN_FAILURE, "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi");
	struct audit_verify_result vr;
	size_t len = 0;
	struct lines ls;

	big = malloc(1 << 20);
	memset(big, 'A', (1 << 20) - 1);
	big[(1 << 20) - 1] = 0;
	r.outcome = AUDIT_DENIED;
	r.reason = "bad password for \"x\"";
	r.actor.user_agent = big;
	/* invalid UTF-8: stray continuation, overlong '/', a surrogate, a
	 * truncated sequence, then valid 2-, 3- and 4-byte characters */
	r.actor.role = "\x80x\xc0\xafy\xed\xa0\x80z\xe2\x82 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	r.actor.cert = "\",\"hash\":\"0000";
	a = open_new(path, sizeof path);
	if (a == NULL) {
		free(big);
		return;
	}
	CHECK(audit_append(a, &r) == ERR_OK);
	audit_close(a);
	vr = verify_path(path);
	CHECK_EQ_INT(vr.fault, AUDIT_OK);
	CHECK_EQ_INT(vr.records, 1);
	s = actor_field(path, "user", &len);
	CHECK_EQ_STR(s, "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi");
	free(s);
	s = actor_field(path, "role", &len);
	CHECK_EQ_STR(s, "\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd "
	                "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	free(s);
	s = actor_field(path, "ua", &len);
	CHECK(s != NULL && strlen(s) == AUDIT_FIELD_MAX + 3 && strcmp(s + AUDIT_FIELD_MAX, "\xe2\x80\xa6") == 0);
	free(s);
	s = actor_field(path, "cert", &len);
	CHECK_EQ_STR(s, "\",\"hash\":\"0000");
	free(s);
	s = actor_field(path, "reason", &len);
	CHECK_EQ_STR(s, "bad password for \"x\"");
	free(s);
	CHECK(len < 2048);
	lines_read(path, &ls);
	CHECK(ls.n == 1 && strstr(ls.l[0], "\\u0001") != NULL && strstr(ls.l[0], "\\u007f") != NULL &&
	      strstr(ls.l[0], "\"outcome\":\"denied\"") != NULL && strchr(ls.l[0], '\n') == ls.l[0] + len - 1);
	lines_free(&ls);
	free(big);
}

TEST(fields_and_time)
{
	char path[300], sref[AUDIT_SESSION_REF_LEN], sref2[AUDIT_SESSION_REF_LEN];
	uint8_t pat[32];
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_EXPORT, "bob");
	struct lines ls;
	size_t i;

	for (i = 0; i < 32; i++)
		pat[i] = (uint8_t)(0xa0 + i);
	audit_session_ref("secret-token-value", 18, sref);
	audit_session_ref("secret-token-value", 18, sref2);
	CHECK(strlen(sref) == 16 && strcmp(sref, sref2) == 0 && strstr(sref, "secret") == NULL);
	r.time_ms = 1714566896789LL;
	r.actor.session = sref;
	r.objects.patient = pat;
	r.objects.series_uid = "1.2.3.4";
	r.objects.sop_uid = "1.2.3.4.5";
	r.objects.counted = true;
	r.objects.studies = 1;
	r.objects.instances = 42;
	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(audit_append(a, &r) == ERR_OK);
	r.action = "Login";
	CHECK(audit_append(a, &r) == ERR_PARSE);
	r.action = "";
	CHECK(audit_append(a, &r) == ERR_PARSE);
	r.action = "a b";
	CHECK(audit_append(a, &r) == ERR_PARSE);
	r.action = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";   /* 33 */
	CHECK(audit_append(a, &r) == ERR_PARSE);
	r.action = "export";
	r.outcome = (enum audit_outcome)7;
	CHECK(audit_append(a, &r) == ERR_PARSE);
	audit_close(a);
	lines_read(path, &ls);
	CHECK_EQ_INT(ls.n, 1);
	if (ls.n == 1) {
		const char *want = "{\"v\":1,\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		                   "\"time\":\"2024-05-01T12:34:56.789Z\",\"type\":\"event\",\"action\":\"export\","
		                   "\"outcome\":\"success\",\"actor\":{\"user\":\"bob\",\"role\":\"clinician\",\"session\":\"";
		CHECK(strncmp(ls.l[0], want, strlen(want)) == 0);
		CHECK(strstr(ls.l[0], "\"patient\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\"") != NULL);
		CHECK(strstr(ls.l[0], "\"counts\":{\"patients\":0,\"studies\":1,\"series\":0,\"instances\":42}") != NULL);
		CHECK(strstr(ls.l[0], "\"session\":\"") != NULL && strstr(ls.l[0], "token") == NULL);
	}
	lines_free(&ls);
}

/* An answer over many patients names them all, AUDIT_PATIENTS_PER_RECORD
 * a record, each record of the run a verifiable link of the chain. */
TEST(patient_list_over_several_records)
{
	enum { N = 2 * AUDIT_PATIENTS_PER_RECORD + 3 };
	char path[300], hex[65];
	static uint8_t keys[N * 32];
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_QUERY, "carol");
	struct audit_verify_opts o;
	struct audit_verify_result vr;
	struct lines ls;
	size_t i, j, named = 0;

	for (i = 0; i < sizeof keys; i++)
		keys[i] = (uint8_t)(i * 7 + i / 32);
	r.reason = "qido-rs studies";
	r.objects.patient_list = keys;
	r.objects.npatient_list = N;
	r.objects.counted = true;
	r.objects.studies = N;
	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(audit_append(a, &r) == ERR_OK);
	r.objects.npatient_list = 2;   /* a short list: one record */
	CHECK(audit_append(a, &r) == ERR_OK);
	audit_close(a);
	memset(&o, 0, sizeof o);
	CHECK(audit_verify_ex(path, &o, &vr) == ERR_OK);
	CHECK_EQ_INT(vr.fault, AUDIT_OK);
	CHECK_EQ_INT(vr.records, 4);
	lines_read(path, &ls);
	CHECK_EQ_INT(ls.n, 4);
	for (i = 0; i < N; i++) {
		for (j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", keys[i * 32 + j]);
		for (j = 0; j < ls.n && j < 3; j++)
			if (strstr(ls.l[j], hex) != NULL)
				break;
		named += j < 3;
	}
	CHECK_EQ_INT(named, N);
	if (ls.n == 4) {
		CHECK(strstr(ls.l[0], "\"counts\":{") != NULL && strstr(ls.l[0], "\"reason\":\"qido-rs studies\"") != NULL);
		CHECK(strstr(ls.l[1], "\"counts\":{") == NULL && strstr(ls.l[1], "\"action\":\"query\"") != NULL);
		CHECK(strstr(ls.l[1], "\"user\":\"carol\"") != NULL);
		CHECK(strstr(ls.l[1], "(continued: patients 257-512 of 515)") != NULL);
		CHECK(strstr(ls.l[2], "(continued: patients 513-515 of 515)") != NULL);
		CHECK(strstr(ls.l[3], "continued") == NULL && strstr(ls.l[3], "\"patients\":[\"") != NULL);
	}
	lines_free(&ls);
}

TEST(reopen_continues_the_chain)
{
	char path[300];
	struct audit_verify_result r;

	new_log(path, sizeof path);
	CHECK(make_log(path, 3) == ERR_OK);
	CHECK(make_log(path, 2) == ERR_OK);
	CHECK(make_log(path, 0) == ERR_OK);
	r = verify_path(path);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 5);
	CHECK_EQ_INT(r.last_seq, 5);
}

/* audit_last_event: the newest intact record of the action within the
 * bound, whose line is whole (serve's config-change). */
TEST(last_event_found_in_the_tail)
{
	char path[300], reason[300] = "";
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_CONFIG_CHANGE, "root");
	struct lines ls;
	size_t size;
	bool found = true;
	FILE *f;

	new_log(path, sizeof path);
	CHECK(make_log(path, 2) == ERR_OK);
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, 1u << 20, reason, sizeof reason, &found) == ERR_OK);
	CHECK(!found);
	CHECK(audit_open_path(path, &a) == ERR_OK);
	r.reason = "first";
	CHECK(audit_append(a, &r) == ERR_OK);
	r.reason = "second \"action\":\"store\"";
	CHECK(audit_append(a, &r) == ERR_OK);
	audit_close(a);
	CHECK(make_log(path, 3) == ERR_OK);
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, 1u << 20, reason, sizeof reason, &found) == ERR_OK);
	CHECK(found);
	CHECK_EQ_STR(reason, "second \"action\":\"store\"");
	/* a reason that spells another action is not that action's record */
	CHECK(audit_last_event(path, AUDIT_STORE, 1u << 20, reason, sizeof reason, &found) == ERR_OK);
	CHECK(found);
	CHECK_EQ_STR(reason, "");
	/* the newest one edited: its hash fails, the one before counts */
	lines_read(path, &ls);
	*strstr(ls.l[ls.n - 4], "second") = 'S';
	lines_write(path, &ls);
	lines_free(&ls);
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, 1u << 20, reason, sizeof reason, &found) == ERR_OK);
	CHECK(found);
	CHECK_EQ_STR(reason, "first");
	/* a bound that leaves it out (the three store records after fit) */
	f = fopen(path, "r");
	CHECK(f != NULL && fseek(f, 0, SEEK_END) == 0);
	size = f != NULL ? (size_t)ftell(f) : 0;
	if (f != NULL)
		fclose(f);
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, size / 3, reason, sizeof reason, &found) == ERR_OK);
	CHECK(!found);
	/* a last line without newline (a record being written) is not read */
	f = fopen(path, "a");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("{\"v\":1,\"seq\":99,\"action\":\"config-change\"", f);
		fclose(f);
	}
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, 1u << 20, reason, sizeof reason, &found) == ERR_OK);
	CHECK(found);
	CHECK_EQ_STR(reason, "first");
	new_log(path, sizeof path);
	CHECK(audit_last_event(path, AUDIT_CONFIG_CHANGE, 1u << 20, reason, sizeof reason, &found) == ERR_NOTFOUND);
	CHECK(audit_last_event(path, "Not An Action", 1u << 20, reason, sizeof reason, &found) == ERR_PARSE);
}

/* A 10-record log, changed by f, then verified. */
static struct audit_verify_result tampered(void (*f)(struct lines *ls))
{
	char path[300];
	struct lines ls;

	new_log(path, sizeof path);
	if (make_log(path, 10) != ERR_OK)
		fprintf(stderr, "  make_log failed\n");
	lines_read(path, &ls);
	f(&ls);
	lines_write(path, &ls);
	lines_free(&ls);
	return verify_path(path);
}

static void t_byte(struct lines *ls) { *strstr(ls->l[6], "alice") = 'm'; }
static void t_delete(struct lines *ls) { lines_delete(ls, 4); }
static void t_delete_first(struct lines *ls) { lines_delete(ls, 0); }
static void t_swap(struct lines *ls)
{
	char *t = ls->l[3];
	ls->l[3] = ls->l[4];
	ls->l[4] = t;
}
static void t_duplicate(struct lines *ls)
{
	memmove(&ls->l[4], &ls->l[3], (ls->n - 3) * sizeof ls->l[0]);
	ls->l[3] = strdup(ls->l[4]);
	ls->n++;
}
static void t_cut_last(struct lines *ls) { ls->l[9][40] = 0; }
static void t_cut_middle(struct lines *ls) { memcpy(ls->l[5] + 100, "\n", 2); }
static void t_garbage(struct lines *ls)
{
	free(ls->l[2]);
	ls->l[2] = strdup("this is not a record\n");
}
static void t_crlf(struct lines *ls)
{
	size_t n = strlen(ls->l[1]);
	char *p = malloc(n + 2);
	memcpy(p, ls->l[1], n - 1);
	memcpy(p + n - 1, "\r\n", 3);
	free(ls->l[1]);
	ls->l[1] = p;
}
static void t_forged_append(struct lines *ls)
{
	char canon[400];
	snprintf(canon, sizeof canon, "{\"v\":1,\"seq\":11,\"prev\":\"%064d\",\"time\":\"2024-05-01T12:34:56.789Z\","
	         "\"type\":\"event\",\"action\":\"login\",\"outcome\":\"success\",\"actor\":{},\"objects\":{}", 0);
	ls->l[ls->n++] = seal(canon);
}
static void t_forged_not_json(struct lines *ls)
{
	char canon[400], prev[65];
	line_hash(ls->l[9], prev);
	snprintf(canon, sizeof canon, "{\"v\":1,\"seq\":11,\"prev\":\"%s\",\"time\":\"2024-05-01T12:34:56.789Z\","
	         "\"type\":\"event\",\"action\":\"login\",\"outcome\":\"success\",\"actor\":{},\"objects\":{", prev);
	ls->l[ls->n++] = seal(canon);
}
static void t_long_line(struct lines *ls)
{
	char *p = malloc(100002);
	memset(p, 'x', 100000);
	memcpy(p + 100000, "\n", 2);
	free(ls->l[3]);
	ls->l[3] = p;
}
static void t_long_last(struct lines *ls)
{
	char *p = malloc(200001);
	memset(p, 'x', 200000);
	p[200000] = 0;
	ls->l[ls->n++] = p;
}

#define EXPECT(r, f, line, seq, good) do { \
	CHECK_EQ_INT((r).fault, (f)); \
	CHECK_EQ_INT((r).bad_line, (line)); \
	CHECK_EQ_INT((r).bad_seq, (seq)); \
	CHECK_EQ_INT((r).records, (good)); \
} while (0)

TEST(verify_detects_tampering)
{
	struct audit_verify_result r;

	r = tampered(t_byte);
	EXPECT(r, AUDIT_BAD_HASH, 7, 7, 6);
	r = tampered(t_delete);
	EXPECT(r, AUDIT_SEQ_GAP, 5, 6, 4);
	CHECK_EQ_INT(r.expected_seq, 5);
	r = tampered(t_delete_first);
	EXPECT(r, AUDIT_SEQ_GAP, 1, 2, 0);
	r = tampered(t_swap);
	EXPECT(r, AUDIT_SEQ_GAP, 4, 5, 3);
	r = tampered(t_duplicate);
	EXPECT(r, AUDIT_SEQ_ORDER, 5, 4, 4);
	r = tampered(t_cut_last);
	EXPECT(r, AUDIT_TRUNCATED, 10, 10, 9);
	r = tampered(t_cut_middle);
	EXPECT(r, AUDIT_UNPARSABLE, 6, 6, 5);
	r = tampered(t_garbage);
	EXPECT(r, AUDIT_UNPARSABLE, 3, 0, 2);
	r = tampered(t_crlf);
	EXPECT(r, AUDIT_UNPARSABLE, 2, 2, 1);
	r = tampered(t_forged_append);
	EXPECT(r, AUDIT_BROKEN_LINK, 10, 10, 9);   /* 10 or 11: the first that may be bad */
	r = tampered(t_forged_not_json);
	EXPECT(r, AUDIT_UNPARSABLE, 11, 11, 10);
	r = tampered(t_long_line);
	EXPECT(r, AUDIT_LINE_TOO_LONG, 4, 0, 3);
	r = tampered(t_long_last);
	EXPECT(r, AUDIT_LINE_TOO_LONG, 11, 0, 10);
}

/* Renumbers a line and fixes its own hash, keeping its prev. */
static void renumber(struct lines *ls, size_t i, unsigned long long seq)
{
	char canon[70000];
	char *line = ls->l[i], *p = strstr(line, ",\"prev\":\"");
	size_t n = strlen(line);

	snprintf(canon, sizeof canon, "{\"v\":1,\"seq\":%llu%.*s", seq, (int)(n - 76 - (size_t)(p - line)), p);
	free(ls->l[i]);
	ls->l[i] = seal(canon);
}

/* Records 4 and 5 swapped, renumbered, each with a valid hash: only the
 * links show it. */
static void t_renumbered_swap(struct lines *ls)
{
	t_swap(ls);
	renumber(ls, 3, 4);
	renumber(ls, 4, 5);
}

/* Record 4's actor changed and its own hash recomputed (no secret needed):
 * the link after it breaks, and record 4 must not be called intact. */
static void t_one_rehashed(struct lines *ls)
{
	*strstr(ls->l[3], "alice") = 'm';
	renumber(ls, 3, 4);
}

static void t_full_rewrite(struct lines *ls)
{
	*strstr(ls->l[2], "alice") = 'm';
	rehash(ls, true);
}

TEST(verify_link_and_rewrite)
{
	struct audit_verify_result r;

	r = tampered(t_renumbered_swap);
	EXPECT(r, AUDIT_BROKEN_LINK, 3, 3, 2);   /* 3 or 4 */
	r = tampered(t_one_rehashed);
	EXPECT(r, AUDIT_BROKEN_LINK, 4, 4, 3);   /* 4 (or 5), never "1-4 intact" */
	CHECK_EQ_INT(r.last_seq, 3);
	/* a forger who rewrites the whole chain is not caught by the chain
	 * alone: that is what signed checkpoints are for */
	r = tampered(t_full_rewrite);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
}

TEST(empty_missing_and_damaged_logs)
{
	char path[300];
	struct audit_verify_result r;
	struct audit *a = NULL;
	struct lines ls;
	int fd;

	new_log(path, sizeof path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	close(fd);
	r = verify_path(path);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 0);
	CHECK_EQ_STR(r.head, "0000000000000000000000000000000000000000000000000000000000000000");
	/* a writer never starts a new chain in an emptied or deleted log (a
	 * vault's begins with its init's record: the loss would verify) */
	CHECK(audit_open_path(path, &a) == ERR_DENIED && a == NULL);
	CHECK(count_in(path, "\"seq\"") == 0);
	CHECK(audit_create_path(path, &a) == ERR_DENIED && a == NULL);   /* create: only a new file */
	new_log(path, sizeof path);
	CHECK(audit_verify(path, &r) == ERR_NOTFOUND);
	CHECK(audit_open_path(path, &a) == ERR_NOTFOUND && a == NULL);
	CHECK(access(path, F_OK) != 0);
	/* a truncated last line that is not the start of the next record:
	 * appending would hide it, so open refuses (torn_record_recovered:
	 * the other kind) */
	CHECK(make_log(path, 3) == ERR_OK);
	lines_read(path, &ls);
	CHECK(truncate(path, (off_t)(strlen(ls.l[0]) + strlen(ls.l[1]) + 200)) == 0);
	lines_free(&ls);
	{
		FILE *fp = fopen(path, "r+");
		CHECK(fp != NULL && fseek(fp, -150, SEEK_END) == 0 && fputc('X', fp) != EOF);
		if (fp != NULL)
			fclose(fp);
	}
	CHECK(audit_open_path(path, &a) == ERR_PARSE && a == NULL);
	/* a last record with a bad hash */
	new_log(path, sizeof path);
	CHECK(make_log(path, 3) == ERR_OK);
	lines_read(path, &ls);
	*strstr(ls.l[2], "alice") = 'A';
	lines_write(path, &ls);
	lines_free(&ls);
	CHECK(audit_open_path(path, &a) == ERR_PARSE && a == NULL);
	/* a loose mode */
	new_log(path, sizeof path);
	CHECK(make_log(path, 1) == ERR_OK);
	CHECK(chmod(path, 0644) == 0);
	CHECK(audit_open_path(path, &a) == ERR_DENIED && a == NULL);
	/* no audit directory */
	CHECK(audit_open("/nonexistent-dv-vault", &a) == ERR_NOTFOUND && a == NULL);
}

/* A writer killed inside its write() leaves the beginning of the next
 * record without a newline (its append never returned): open cuts it off,
 * says so in an audit-recovery record, and the chain verifies. */
TEST(torn_record_recovered)
{
	char path[300];
	struct audit_verify_result vr;
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_LOGIN, "bob");
	struct lines ls;
	size_t keep, full;
	int fd;

	new_log(path, sizeof path);
	CHECK(make_log(path, 4) == ERR_OK);
	lines_read(path, &ls);
	full = strlen(ls.l[0]) + strlen(ls.l[1]) + strlen(ls.l[2]) + strlen(ls.l[3]);
	keep = full - strlen(ls.l[3]);
	lines_free(&ls);
	/* cut record 4 at several points: 1 byte, inside the head, after it */
	CHECK(truncate(path, (off_t)(keep + 1)) == 0);
	CHECK(audit_open_path(path, &a) == ERR_OK && a != NULL);
	if (a != NULL) {
		CHECK(audit_append(a, &r) == ERR_OK);
		audit_close(a);
		a = NULL;
	}
	CHECK(audit_verify(path, &vr) == ERR_OK);
	CHECK_EQ_INT(vr.fault, AUDIT_OK);
	CHECK_EQ_INT(vr.records, 5);   /* 3, the recovery record, bob */
	lines_read(path, &ls);
	CHECK(ls.n == 5 && strstr(ls.l[3], "\"seq\":4,") && strstr(ls.l[3], "\"action\":\"audit-recovery\"") &&
	      strstr(ls.l[3], "removed 1 bytes"));
	/* the same found by another handle's append (not at open): the first
	 * 120 bytes of record 6 as a dying writer would leave them */
	{
		char torn[200], *last = strstr(ls.l[4], "\"hash\":\"");
		int tn;
		CHECK(last != NULL);
		last = last ? last + 8 : ls.l[4];
		tn = snprintf(torn, sizeof torn, "{\"v\":1,\"seq\":6,\"prev\":\"%.64s\",\"time\":\"2026-01-01T00:00:00.000Z\","
		              "\"type\":\"event\"", last);
		lines_free(&ls);
		CHECK(audit_open_path(path, &a) == ERR_OK);
		fd = open(path, O_WRONLY | O_APPEND);
		CHECK(fd >= 0 && tn > 0 && write(fd, torn, 120) == 120);
		if (fd >= 0)
			close(fd);
	}
	if (a != NULL) {
		CHECK(audit_append(a, &r) == ERR_OK);   /* this handle saw 5 records: it finds the tear */
		audit_close(a);
		a = NULL;
	}
	CHECK(audit_verify(path, &vr) == ERR_OK);
	CHECK_EQ_INT(vr.fault, AUDIT_OK);
	CHECK_EQ_INT(vr.records, 7);
	lines_read(path, &ls);
	CHECK(ls.n == 7 && strstr(ls.l[5], "audit-recovery") && strstr(ls.l[5], "removed 120 bytes"));
	lines_free(&ls);
	/* garbage without a newline is not a torn record: refused */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "{\"v\":1,\"seq\":99", 15) == 15);
	if (fd >= 0)
		close(fd);
	CHECK(audit_open_path(path, &a) == ERR_PARSE && a == NULL);
}

TEST(truncation_while_open_is_refused)
{
	char path[300];
	struct audit *a = NULL;
	struct audit_rec r = rec(AUDIT_LOGIN, "eve");

	new_log(path, sizeof path);
	CHECK(make_log(path, 4) == ERR_OK);
	CHECK(audit_open_path(path, &a) == ERR_OK);
	if (a == NULL)
		return;
	CHECK(truncate(path, 0) == 0);
	CHECK(audit_append(a, &r) == ERR_DENIED);
	CHECK(audit_append(a, &r) == ERR_DENIED);
	audit_close(a);
}

/* The signed anchor beside the log shows what the log alone cannot: that
 * its end was cut off back to a checkpoint. */
TEST(anchor_shows_a_cut_end)
{
	char path[300], anchor[320], saved[4096];
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct audit_verify_opts o;
	struct audit_verify_result r;
	struct lines ls;
	FILE *f;
	size_t n = 0;
	int i;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	snprintf(anchor, sizeof anchor, "%s.anchor", path);
	audit_set_signer(a, sk, pk, 4);
	for (i = 0; i < 10; i++) {
		struct audit_rec rr = rec(AUDIT_EXPORT, "mallory");
		CHECK(audit_append(a, &rr) == ERR_OK);
	}
	audit_close(a);   /* checkpoints at seq 5, 10 and 13: the anchor names 13 */
	memset(&o, 0, sizeof o);
	o.pk = pk;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	f = fopen(anchor, "r");
	CHECK(f != NULL);
	if (f != NULL) {
		n = fread(saved, 1, sizeof saved - 1, f);
		fclose(f);
	}
	saved[n] = 0;
	CHECK(strstr(saved, "\"seq\":13,") != NULL);
	/* cut back to the checkpoint at seq 10: a chain that verifies alone */
	lines_read(path, &ls);
	CHECK_EQ_INT(ls.n, 13);
	ls.n = 10;
	lines_write(path, &ls);
	ls.n = 13;
	lines_free(&ls);
	CHECK(audit_verify(path, &r) == ERR_OK && r.fault == AUDIT_OK);
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_ANCHOR);
	CHECK_EQ_INT(r.records, 10);
	CHECK_EQ_INT(r.bad_line, 11);
	CHECK_EQ_INT(r.expected_seq, 11);
	CHECK(strstr(r.detail, "seq 13") != NULL);
	/* and no writer appends to it */
	a = NULL;
	CHECK(audit_open_path(path, &a) == ERR_PARSE);
	audit_close(a);
	/* the anchor removed too: the checkpoints say it was kept */
	CHECK(unlink(anchor) == 0);
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_ANCHOR);
	CHECK(strstr(r.detail, "missing") != NULL);
	/* a forged anchor (no key): its signature */
	f = fopen(anchor, "w");
	if (f != NULL) {
		char *sig = strstr(saved, "\"sig\":\"");
		if (sig != NULL)
			sig[8] = sig[8] == '0' ? '1' : '0';
		fputs(saved, f);
		fclose(f);
	}
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_ANCHOR);
	CHECK(strstr(r.detail, "not signed") != NULL);
	/* an anchor that is not one */
	f = fopen(anchor, "w");
	if (f != NULL) {
		fputs("{\"v\":1,\"seq\":\"13\"}\n", f);
		fclose(f);
	}
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_ANCHOR);
	/* without a key, nothing is said of the anchor */
	CHECK(audit_verify(path, &r) == ERR_OK && r.fault == AUDIT_OK);
	secret_free(sk);
}

TEST(signed_checkpoints)
{
	char path[300], path2[320];
	uint8_t pk[SIGN_PK_LEN], pk2[SIGN_PK_LEN];
	struct secret *sk = NULL, *sk2 = NULL;
	struct audit *a = NULL;
	struct audit_verify_opts o;
	struct audit_verify_result r;
	struct lines ls;
	int i;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	CHECK(sign_keypair(pk2, &sk2) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	audit_set_signer(a, sk, pk, 4);
	for (i = 0; i < 10; i++) {
		struct audit_rec rr = rec(AUDIT_VIEW, "carol");
		CHECK(audit_append(a, &rr) == ERR_OK);
	}
	audit_close(a);   /* writes a closing checkpoint */
	memset(&o, 0, sizeof o);
	o.pk = pk;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.checkpoints, 3);   /* after 4 and 8 records, and on close */
	CHECK_EQ_INT(r.records, 13);
	CHECK_EQ_INT(r.last_checkpoint_seq, 13);
	CHECK(r.signatures_checked);
	/* another vault's key */
	o.pk = pk2;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_BAD_SIGNATURE);
	CHECK_EQ_INT(r.bad_seq, 5);
	/* a forger rewrites the chain from record 3 on: the chain holds, the
	 * checkpoint signature does not */
	snprintf(path2, sizeof path2, "%s.forged", path);
	lines_read(path, &ls);
	*strstr(ls.l[2], "carol") = 'm';
	rehash(&ls, false);
	lines_write(path2, &ls);
	lines_free(&ls);
	CHECK(audit_verify(path2, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	o.pk = pk;
	CHECK(audit_verify_ex(path2, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_BAD_SIGNATURE);
	CHECK_EQ_INT(r.bad_seq, 5);
	CHECK_EQ_INT(r.bad_line, 5);
	/* a reopened signer continues; an explicit checkpoint */
	CHECK(audit_open_path(path, &a) == ERR_OK);
	if (a != NULL) {
		struct audit_rec rr = rec(AUDIT_LOGOUT, "carol");
		audit_set_signer(a, sk, pk, 0);
		CHECK(audit_append(a, &rr) == ERR_OK);
		CHECK(audit_checkpoint(a) == ERR_OK);
		audit_close(a);   /* the last record is a checkpoint: nothing more */
	}
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 15);
	CHECK_EQ_INT(r.checkpoints, 4);
	/* a forger without the key drops the checkpoints and rebuilds the
	 * chain: intact as a chain, but with the key nothing signs it */
	lines_read(path, &ls);
	for (i = 0; i < (int)ls.n; i++)
		if (strstr(ls.l[i], "\"type\":\"checkpoint\"") != NULL) {
			free(ls.l[i]);
			memmove(&ls.l[i], &ls.l[i + 1], (ls.n - (size_t)i - 1) * sizeof ls.l[0]);
			ls.n--;
			i--;
		}
	rehash(&ls, true);
	lines_write(path2, &ls);
	lines_free(&ls);
	CHECK(audit_verify(path2, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 11);
	CHECK(audit_verify_ex(path2, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_UNSIGNED);
	CHECK_EQ_INT(r.bad_line, 1);
	CHECK_EQ_INT(r.bad_seq, 1);
	CHECK_EQ_INT(r.records, 0);
	secret_free(sk);
	secret_free(sk2);
}

/* n view records by user. */
static void views(struct audit *a, const char *user, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct audit_rec rr = rec(AUDIT_VIEW, user);
		CHECK(audit_append(a, &rr) == ERR_OK);
	}
}

/* Verification of path under the key pk. */
static struct audit_verify_result verify_key(const char *path, const uint8_t pk[SIGN_PK_LEN])
{
	struct audit_verify_opts o;
	struct audit_verify_result r;

	memset(&o, 0, sizeof o);
	o.pk = pk;
	memset(&r, 0, sizeof r);
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	return r;
}

/* A signing writer that opens a log ending in records no checkpoint
 * covers (a writer died, or had no key) signs them with its first record,
 * so that tails do not add up across crashes. */
TEST(unsigned_tail_signed_at_first_append)
{
	char path[300];
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct audit_verify_result r;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	views(a, "erin", 5);
	audit_close(a);   /* no signer: 5 unsigned records */
	CHECK(audit_open_path(path, &a) == ERR_OK);
	if (a == NULL)
		return;
	audit_set_signer(a, sk, pk, 0);
	views(a, "erin", 1);
	r = verify_key(path, pk);   /* before the close */
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 7);
	CHECK_EQ_INT(r.last_checkpoint_seq, 7);
	views(a, "erin", 1);   /* then the interval as usual */
	r = verify_key(path, pk);
	CHECK_EQ_INT(r.records, 8);
	CHECK_EQ_INT(r.last_checkpoint_seq, 7);
	audit_close(a);
	secret_free(sk);
}

/* With a key, at most AUDIT_UNSIGNED_MAX records may follow the last
 * checkpoint (a writer signs every AUDIT_CHECKPOINT_EVERY and at close). */
TEST(unsigned_tail_limit)
{
	char path[300];
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct audit_verify_result r;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	audit_set_signer(a, sk, pk, 1);
	views(a, "dave", 1);   /* and a checkpoint (every 1) */
	audit_close(a);
	CHECK(audit_open_path(path, &a) == ERR_OK);   /* no signer: a tail */
	if (a == NULL)
		return;
	views(a, "dave", AUDIT_UNSIGNED_MAX);
	r = verify_key(path, pk);
	CHECK_EQ_INT(r.fault, AUDIT_OK);   /* at the limit */
	views(a, "dave", 1);
	audit_close(a);
	r = verify_key(path, pk);
	CHECK_EQ_INT(r.fault, AUDIT_UNSIGNED);
	CHECK_EQ_INT(r.bad_seq, 3);
	CHECK_EQ_INT(r.bad_line, 3);
	CHECK_EQ_INT(r.records, 2);
	CHECK_EQ_INT(r.last_seq, 2);   /* what is intact: up to the checkpoint */
	CHECK(audit_verify(path, &r) == ERR_OK);   /* without a key: a chain only */
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	secret_free(sk);
}

/* Writers without the key (reidentify; the recovery of a torn record; the
 * command line's reading of the trail, audit-read) add records no
 * checkpoint can cover: they do not count toward the limit. */
TEST(keyless_records_not_counted)
{
	char path[300];
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct audit_verify_result r;
	unsigned i;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	audit_set_signer(a, sk, pk, 0);
	views(a, "fay", 1);
	audit_close(a);   /* signed */
	CHECK(audit_open_path(path, &a) == ERR_OK);
	for (i = 0; a != NULL && i < 2 * (AUDIT_UNSIGNED_MAX + 1); i++) {
		struct audit_rec rr = rec(i < AUDIT_UNSIGNED_MAX + 1 ? AUDIT_REIDENTIFY : AUDIT_READ_TRAIL, "fay");
		CHECK(audit_append(a, &rr) == ERR_OK);
	}
	audit_close(a);
	r = verify_key(path, pk);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 2 + 2 * (AUDIT_UNSIGNED_MAX + 1));
	secret_free(sk);
}

static int count_cb(void *ctx, const char *line, size_t n)
{
	int *c = ctx;
	(*c)++;
	return (n > 0 && line[n - 1] == '\n') ? 0 : 1;
}

TEST(verify_callback_sees_each_record)
{
	char path[300];
	struct audit_verify_opts o;
	struct audit_verify_result r;
	int c = 0;

	new_log(path, sizeof path);
	CHECK(make_log(path, 7) == ERR_OK);
	memset(&o, 0, sizeof o);
	o.on_record = count_cb;
	o.ctx = &c;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(c, 7);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	/* record 4 edited, its own hash redone: it is never handed on (an
	 * export stops before it), nor anything after it */
	{
		struct lines ls;
		lines_read(path, &ls);
		t_one_rehashed(&ls);
		lines_write(path, &ls);
		lines_free(&ls);
	}
	c = 0;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_BROKEN_LINK);
	CHECK_EQ_INT(r.bad_seq, 4);
	CHECK_EQ_INT(c, 3);
	/* a byte changed in record 6 (its hash not redone): 1-5 are handed on */
	new_log(path, sizeof path);
	CHECK(make_log(path, 7) == ERR_OK);
	{
		struct lines ls;
		lines_read(path, &ls);
		*strstr(ls.l[5], "alice") = 'm';
		lines_write(path, &ls);
		lines_free(&ls);
	}
	c = 0;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_BAD_HASH);
	CHECK_EQ_INT(c, 5);
}

/* A log rewritten where its anchor points: the callback (audit export,
 * report) is handed the records before it only; reanchor then anchors it
 * at its last checkpoint; a copy with a torn last record and an anchor
 * ahead of it: the cut is recorded, by the open that refuses it and by
 * reanchor. */
TEST(anchor_faults_and_reanchor)
{
	char path[300], *whole = NULL;
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct audit_verify_opts o;
	struct audit_verify_result r;
	struct lines ls, before;
	uint64_t old = 0;
	FILE *f;
	int i, c = 0;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	a = open_new(path, sizeof path);
	if (a == NULL || sk == NULL)
		return;
	audit_set_signer(a, sk, pk, 4);
	for (i = 0; i < 10; i++) {
		/* a vault's log, as reanchor takes only those: its init first */
		struct audit_rec rr = rec(i == 0 ? AUDIT_VAULT_INIT : AUDIT_EXPORT, "mallory");
		CHECK(audit_append(a, &rr) == ERR_OK);
	}
	audit_close(a);   /* checkpoints at 5, 10, 13: the anchor names 13 */
	/* the last checkpoint replaced by an event, the chain redone */
	lines_read(path, &ls);
	CHECK_EQ_INT(ls.n, 13);
	if (ls.n != 13) {
		lines_free(&ls);
		return;
	}
	free(ls.l[12]);
	ls.l[12] = strdup(ls.l[11]);
	rehash(&ls, true);
	lines_write(path, &ls);
	lines_free(&ls);
	memset(&o, 0, sizeof o);
	o.pk = pk;
	o.on_record = count_cb;
	o.ctx = &c;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK);
	CHECK_EQ_INT(r.fault, AUDIT_ANCHOR);
	CHECK_EQ_INT(r.bad_line, 13);
	CHECK_EQ_INT(r.records, 12);
	CHECK_EQ_INT(c, 12);   /* the rewritten record never handed on */
	/* reanchor: intact but for the anchor, anchored at seq 10 */
	CHECK(audit_reanchor(path, sk, pk, &old, &r) == ERR_OK);
	CHECK_EQ_INT(old, 13);
	CHECK_EQ_INT(r.last_checkpoint_seq, 10);
	o.on_record = NULL;
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK && r.fault == AUDIT_OK);
	/* a copy taken while a writer wrote: the log caught the start of a
	 * record, the anchor the checkpoint after it */
	lines_read(path, &before);
	CHECK(audit_open_path(path, &a) == ERR_OK);
	if (a != NULL) {
		struct audit_rec rr = rec(AUDIT_LOGIN, "mallory");
		audit_set_signer(a, sk, pk, 0);
		CHECK(audit_append(a, &rr) == ERR_OK);
		audit_close(a);
	}
	lines_read(path, &ls);
	CHECK_EQ_INT(ls.n, before.n + 2);
	if (ls.n == before.n + 2)
		whole = strdup(ls.l[before.n]);
	lines_free(&ls);
	lines_write(path, &before);
	f = fopen(path, "a");
	if (f != NULL && whole != NULL) {
		fwrite(whole, 1, 40, f);   /* no newline: torn */
		fclose(f);
	}
	a = NULL;
	{
		struct stat st0, st1;
		CHECK(stat(path, &st0) == 0);
		CHECK(audit_open_path(path, &a) == ERR_PARSE);   /* shorter than its anchor */
		audit_close(a);
		CHECK(stat(path, &st1) == 0);
		CHECK_EQ_INT(st1.st_size, st0.st_size);   /* left as it is, torn bytes and all */
	}
	CHECK(audit_reanchor(path, sk, pk, &old, &r) == ERR_OK);
	lines_read(path, &ls);   /* reanchor cut the torn bytes, and said so */
	CHECK(ls.n > 0 && strstr(ls.l[ls.n - 1], "\"action\":\"audit-recovery\"") != NULL);
	lines_free(&ls);
	CHECK(audit_verify_ex(path, &o, &r) == ERR_OK && r.fault == AUDIT_OK);
	lines_free(&before);
	free(whole);
	secret_free(sk);
}

/* Record 991 edited, its own hash redone, while an export reads the log
 * (after its first pass): it is never handed on, and the export fails. */
static char tamper_path[300];
static int tamper_cb(void *ctx, const char *line, size_t n)
{
	int *c = ctx;

	(void)line;
	(void)n;
	if ((*c)++ == 0) {
		/* line 991, past what the pass has read yet (its first 64 KiB), in place */
		FILE *f = fopen(tamper_path, "r+");
		char buf[2048], *sealed, *a;
		long off = 0;
		int i;
		for (i = 0; f != NULL && i < 990 && fgets(buf, sizeof buf, f) != NULL; i++)
			off = ftell(f);
		if (f == NULL || fgets(buf, sizeof buf, f) == NULL || (a = strstr(buf, "alice")) == NULL) {
			if (f != NULL)
				fclose(f);
			return 1;
		}
		*a = 'm';
		buf[strlen(buf) - 76] = 0;   /* the canonical bytes: its hash suffix and newline off */
		sealed = seal(buf);
		if (fseek(f, off, SEEK_SET) == 0)
			fputs(sealed, f);
		free(sealed);
		fclose(f);
	}
	return 0;
}

TEST(log_changed_between_the_passes)
{
	struct audit_verify_opts o;
	struct audit_verify_result r;
	int c = 0;

	new_log(tamper_path, sizeof tamper_path);
	CHECK(make_log(tamper_path, 1000) == ERR_OK);   /* more than the 64 KiB a read takes */
	memset(&o, 0, sizeof o);
	o.on_record = tamper_cb;
	o.ctx = &c;
	CHECK_EQ_INT(audit_verify_ex(tamper_path, &o, &r), ERR_IO);
	CHECK_EQ_INT(c, 990);   /* 1-990; 991 held, then its successor's link broke */
}

/* The verifier of docs/internals/audit.md, in Python, on a log with
 * hostile strings and signed checkpoints written by the C code. */
static const char pyverify[] =
	"import hashlib, json, sys\n"
	"def verify(path, pk=None):\n"
	"    prev, seq = '0' * 64, 0\n"
	"    for no, raw in enumerate(open(path, 'rb'), 1):\n"
	"        assert raw.endswith(b'\\n'), (no, 'truncated')\n"
	"        line = raw[:-1]\n"
	"        canon, tail = line[:-75], line[-75:]\n"
	"        assert tail.startswith(b',\"hash\":\"') and tail.endswith(b'\"}'), (no, 'format')\n"
	"        h = hashlib.sha256(canon).hexdigest()\n"
	"        assert tail[9:73].decode() == h, (no, 'bad hash')\n"
	"        rec = json.loads(line)\n"
	"        assert rec['v'] == 1 and rec['hash'] == h\n"
	"        assert rec['seq'] == seq + 1, (no, 'seq')\n"
	"        assert rec['prev'] == prev, (no, 'link')\n"
	"        if rec['type'] == 'checkpoint' and pk:\n"
	"            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey\n"
	"            assert rec['key'] == pk\n"
	"            msg = 'dicomvault-audit-checkpoint:1:%d:%s:%s' % (rec['seq'], rec['prev'], rec['time'])\n"
	"            Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk)).verify(bytes.fromhex(rec['sig']), msg.encode())\n"
	"        prev, seq = h, rec['seq']\n"
	"    return seq\n"
	"n = verify(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)\n"
	"print(n)\n";

TEST(python_verifier_agrees)
{
	char path[300], script[300], cmd[1200], pkhex[65];
	uint8_t pk[SIGN_PK_LEN];
	struct secret *sk = NULL;
	struct audit *a = NULL;
	struct lines ls;
	FILE *f;
	int i;

	snprintf(script, sizeof script, "%s/verify.py", base);
	f = fopen(script, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs(pyverify, f);
	fclose(f);
	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	hexs(pkhex, pk, 32);
	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	audit_set_signer(a, sk, pk, 3);
	for (i = 0; i < 8; i++) {
		struct audit_rec r = rec(AUDIT_LOGIN_FAILURE, "\"quoted\\\" \n \xff\xfe user \xe2\x82\xac");
		r.actor.user_agent = "Mozilla/5.0 \x01\x02\x1b[31m \xc0\x80";
		r.reason = i % 2 ? "bad TOTP" : NULL;
		CHECK(audit_append(a, &r) == ERR_OK);
	}
	audit_close(a);
	/* hashlib and json only */
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s >/dev/null", script, path);
	CHECK(system(cmd) == 0);
	/* with the signatures, when python3-cryptography is there */
	if (system("/usr/bin/python3 -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null") == 0) {
		snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s >/dev/null", script, path, pkhex);
		CHECK(system(cmd) == 0);
	}
	/* and it rejects what the C verifier rejects */
	lines_read(path, &ls);
	CHECK(ls.n > 4);
	if (ls.n > 4) {
		*strstr(ls.l[4], "Mozilla") = 'm';
		lines_write(path, &ls);
	}
	lines_free(&ls);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s >/dev/null 2>&1", script, path);
	CHECK(system(cmd) != 0);
	secret_free(sk);
}

TEST(vault_init_is_audited)
{
	struct vault_init_opts o;
	struct vault_created res;
	char dir[300], path[400], path2[300], why[256];
	struct audit_verify_result r;
	struct stat st;

	snprintf(dir, sizeof dir, "%s/vault", base);
	memset(&o, 0, sizeof o);
	o.dir = dir;
	CHECK(vault_init(&o, &res, why, sizeof why) == ERR_OK);
	vault_created_fini(&res);
	snprintf(path, sizeof path, "%s/" AUDIT_LOG_PATH, dir);
	new_log(path2, sizeof path2);
	r = verify_path(path);
	CHECK_EQ_INT(r.fault, AUDIT_OK);
	CHECK_EQ_INT(r.records, 2);        /* and its checkpoint: init signs */
	CHECK_EQ_INT(r.checkpoints, 1);
	CHECK_EQ_INT(count_in(path, "\"action\":\"vault-init\""), 1);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	{
		/* a vault's log verifies as one (vault_log): it begins with init */
		struct audit_verify_opts vo;
		memset(&vo, 0, sizeof vo);
		vo.vault_log = true;
		CHECK(audit_verify_ex(path, &vo, &r) == ERR_OK);
		CHECK_EQ_INT(r.fault, AUDIT_OK);
		/* a log begun by anything else does not */
		CHECK(make_log(path2, 2) == ERR_OK);
		CHECK(audit_verify_ex(path2, &vo, &r) == ERR_OK);
		CHECK_EQ_INT(r.fault, AUDIT_NO_INIT);
		CHECK_EQ_INT(r.bad_seq, 1);
		CHECK_EQ_INT(r.bad_line, 1);
		CHECK(strstr(r.detail, "does not begin with the record of the vault's init") != NULL);
		vo.vault_log = false;
		CHECK(audit_verify_ex(path2, &vo, &r) == ERR_OK);
		CHECK_EQ_INT(r.fault, AUDIT_OK);
	}
	/* init creates the log: a second init in the same place is refused */
	CHECK(vault_init(&o, &res, why, sizeof why) != ERR_OK);
	snprintf(path, sizeof path, "%s/audit", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
}

static long long file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* An fsync that failed once (here the syncer's or the waiter's) fails
 * every wait for a record it did not cover, also after fsync works again:
 * Linux reports a lost write-back once, so a later success proves
 * nothing about those bytes. Records made durable before stay so. And no
 * record is appended after it (since session 25: a record chained to one
 * whose bytes may be lost would follow a hole after a power loss), which
 * audit_broken tells before anyone tries. */
TEST(fsync_failure_is_kept)
{
	char path[300];
	struct audit *a = NULL;
	struct audit_rec st = rec(AUDIT_STORE, "bob");
	uint64_t t0 = 0, t1 = 0, t2 = 0;
	long long size_before;

	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(audit_append_start(a, &st, &t0) == ERR_OK);
	CHECK(audit_wait(a, t0) == ERR_OK);
	atomic_store(&fail_fsync, true);
	CHECK(audit_append_start(a, &st, &t1) == ERR_OK);
	CHECK(audit_wait(a, t1) == ERR_IO);
	atomic_store(&fail_fsync, false);
	CHECK(audit_wait(a, t1) == ERR_IO);   /* not durable because a later fsync worked */
	CHECK(audit_broken(a));
	size_before = file_size(path);
	CHECK(audit_append_start(a, &st, &t2) == ERR_IO);
	CHECK(audit_append(a, &st) == ERR_IO);
	CHECK(file_size(path) == size_before);   /* nothing appended after it */
	CHECK(audit_wait(a, t0) == ERR_OK);   /* covered before the failure */
	audit_close(a);
	/* the synchronous path's own fsync failing does the same */
	a = open_new(path, sizeof path);
	if (a == NULL)
		return;
	CHECK(!audit_broken(a));
	atomic_store(&fail_fsync, true);
	CHECK(audit_append(a, &st) == ERR_IO);
	atomic_store(&fail_fsync, false);
	CHECK(audit_broken(a));
	CHECK(audit_append(a, &st) == ERR_IO);
	CHECK(audit_append_start(a, &st, &t2) == ERR_IO);
	audit_close(a);
}

int main(void)
{
	snprintf(base, sizeof base, "/tmp/dv_audit_test.%d", (int)getpid());
	rm_rf(base);
	mkdir(base, 0700);
	RUN(threads_append_concurrently);
	RUN(lazy_reads);
	RUN(append_in_two_halves);
	RUN(fsync_failure_is_kept);
	RUN(processes_append_concurrently);
	RUN(hostile_strings_escaped_and_capped);
	RUN(fields_and_time);
	RUN(patient_list_over_several_records);
	RUN(reopen_continues_the_chain);
	RUN(last_event_found_in_the_tail);
	RUN(verify_detects_tampering);
	RUN(verify_link_and_rewrite);
	RUN(empty_missing_and_damaged_logs);
	RUN(truncation_while_open_is_refused);
	RUN(torn_record_recovered);
	RUN(signed_checkpoints);
	RUN(anchor_shows_a_cut_end);
	RUN(unsigned_tail_limit);
	RUN(unsigned_tail_signed_at_first_append);
	RUN(keyless_records_not_counted);
	RUN(verify_callback_sees_each_record);
	RUN(anchor_faults_and_reanchor);
	RUN(log_changed_between_the_passes);
	RUN(python_verifier_agrees);
	RUN(vault_init_is_audited);
	rm_rf(base);
	return TEST_DONE();
}
