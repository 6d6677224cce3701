/* keys_test.c: secrets, key and passphrase files (mode checks), key wrap
 * round trips and tampering, the master key file, the passphrase mode,
 * Argon2id password hashes, TOTP skew and replay window, seeds and otpauth
 * URIs, Ed25519 round trips. Layer: tests. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/wbuf.h"

static char dir[64];

/* Cheap Argon2id cost for tests that are not about the cost. */
static const struct pwhash_limits cheap = { 1, 8192 };

static struct secret *sec_str(const char *s)
{
	struct secret *x = NULL;

	if (secret_from_bytes(s, strlen(s), &x) != ERR_OK)
		abort();
	return x;
}

static void path_of(char *p, size_t cap, const char *name)
{
	snprintf(p, cap, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n) || fchmod(fd, mode) != 0)
		abort();
	close(fd);
}

/* ---- secrets ---- */

TEST(secret_basics)
{
	struct secret *s = NULL;
	uint8_t a[32], b[32];

	CHECK(secret_new(5, &s) == ERR_OK);
	CHECK_EQ_INT(secret_len(s), 5);
	CHECK(memcmp(secret_view(s), "\0\0\0\0\0", 6) == 0);   /* zeroed, NUL after */
	memcpy(secret_mut(s), "abcde", 5);
	secret_seal(s);
	CHECK_EQ_STR(secret_cstr(s), "abcde");
	secret_free(s);
	secret_free(NULL);
	CHECK(secret_random(32, &s) == ERR_OK);
	CHECK_EQ_INT(secret_len(s), 32);
	secret_free(s);
	CHECK(rand_bytes(a, sizeof a) == ERR_OK);
	memcpy(b, a, sizeof b);
	CHECK(ct_equal(a, b, sizeof a));
	b[31] ^= 1;
	CHECK(!ct_equal(a, b, sizeof a));
	CHECK(ct_equal(a, b, 0));
	mem_wipe(a, sizeof a);
	memset(b, 0, sizeof b);
	CHECK(memcmp(a, b, sizeof a) == 0);
	mem_wipe(NULL, 10);
}

TEST(sealed_secret_is_read_only)
{
	struct secret *s = sec_str("key");
	pid_t pid;
	int st = 0;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		((volatile uint8_t *)secret_view(s))[0] = 'K';   /* must fault */
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
	CHECK_EQ_STR(secret_cstr(s), "key");
	secret_free(s);
}

TEST(secret_file_modes)
{
	char p[128];
	struct secret *s = NULL;
	static const mode_t refused[] = { 0644, 0640, 0604, 0660, 0606, 0601, 0610, 0700 | 0070, 0777 };
	size_t i;

	path_of(p, sizeof p, "pass");
	write_file(p, "hunter2\n", 8, 0644);
	CHECK(secret_read_file(p, 64, 0, &s) == ERR_DENIED);
	CHECK(s == NULL);
	for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		CHECK(chmod(p, refused[i]) == 0);
		CHECK(secret_read_file(p, 64, 0, &s) == ERR_DENIED);
	}
	CHECK(chmod(p, 0600) == 0);
	CHECK(secret_read_file(p, 64, 0, &s) == ERR_OK);
	CHECK(s != NULL && secret_len(s) == 8 && memcmp(secret_view(s), "hunter2\n", 8) == 0);
	secret_free(s);
	s = NULL;
	CHECK(chmod(p, 0400) == 0);
	CHECK(secret_read_file(p, 64, SECRET_TRIM_NEWLINE, &s) == ERR_OK);
	CHECK(s != NULL && secret_len(s) == 7);
	CHECK_EQ_STR(secret_cstr(s), "hunter2");
	secret_free(s);
	s = NULL;
	write_file(p, "pw\r\n", 4, 0600);
	CHECK(secret_read_file(p, 64, SECRET_TRIM_NEWLINE, &s) == ERR_OK);
	CHECK(s != NULL && secret_len(s) == 2);
	secret_free(s);
	s = NULL;
	/* limits */
	write_file(p, "0123456789", 10, 0600);
	CHECK(secret_read_file(p, 10, 0, &s) == ERR_OK);
	secret_free(s);
	s = NULL;
	CHECK(secret_read_file(p, 9, 0, &s) == ERR_LIMIT);
	CHECK(secret_read_file(p, CRYPTO_SECRET_FILE_MAX + 1, 0, &s) == ERR_LIMIT);
	write_file(p, "\n", 1, 0600);
	CHECK(secret_read_file(p, 64, SECRET_TRIM_NEWLINE, &s) == ERR_PARSE);
	write_file(p, "", 0, 0600);
	CHECK(secret_read_file(p, 64, 0, &s) == ERR_PARSE);
	path_of(p, sizeof p, "missing");
	CHECK(secret_read_file(p, 64, 0, &s) == ERR_NOTFOUND);
	CHECK(secret_read_file(dir, 64, 0, &s) == ERR_IO);   /* a directory */
	CHECK(s == NULL);
}

TEST(secret_from_pipe)
{
	struct secret *s = NULL;
	int fds[2];

	CHECK(pipe(fds) == 0);
	CHECK(write(fds[1], "from stdin\n", 11) == 11);
	close(fds[1]);
	CHECK(secret_from_fd(fds[0], 64, SECRET_TRIM_NEWLINE, &s) == ERR_OK);
	CHECK(s != NULL);
	if (s != NULL)
		CHECK_EQ_STR(secret_cstr(s), "from stdin");
	close(fds[0]);
	secret_free(s);
}

/* ---- key wrap ---- */

TEST(keywrap_round_trip_and_tamper)
{
	struct secret *mk = NULL, *mk2 = NULL, *dk = NULL, *back = NULL;
	struct wbuf w, w2;
	const char *label = "patient:7f3c";
	size_t i, bit;

	CHECK(mk_generate(&mk) == ERR_OK);
	CHECK(mk_generate(&mk2) == ERR_OK);
	CHECK(secret_random(AEAD_KEY_LEN, &dk) == ERR_OK);
	wbuf_init(&w, 4096);
	wbuf_init(&w2, 4096);
	CHECK(keywrap_wrap(mk, label, strlen(label), dk, &w) == ERR_OK);
	CHECK_EQ_INT(w.len, KEYWRAP_OVERHEAD + AEAD_KEY_LEN);
	CHECK(keywrap_wrap(mk, label, strlen(label), dk, &w2) == ERR_OK);
	CHECK(w.len == w2.len && memcmp(w.p, w2.p, w.len) != 0);   /* random nonce */
	CHECK(keywrap_unwrap(mk, label, strlen(label), w.p, w.len, &back) == ERR_OK);
	CHECK(back != NULL && secret_len(back) == AEAD_KEY_LEN &&
	      memcmp(secret_view(back), secret_view(dk), AEAD_KEY_LEN) == 0);
	secret_free(back);
	back = NULL;
	/* wrong master key, wrong label */
	CHECK(keywrap_unwrap(mk2, label, strlen(label), w.p, w.len, &back) == ERR_AUTH);
	CHECK(keywrap_unwrap(mk, "patient:7f3d", 12, w.p, w.len, &back) == ERR_AUTH);
	CHECK(keywrap_unwrap(mk, NULL, 0, w.p, w.len, &back) == ERR_AUTH);
	/* every bit flip */
	for (bit = 0; bit < w.len * 8; bit++) {
		enum err rc;

		w.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = keywrap_unwrap(mk, label, strlen(label), w.p, w.len, &back);
		if (bit / 8 < 8)
			CHECK(rc == ERR_PARSE);   /* magic, version, algorithm, reserved */
		else
			CHECK(rc == ERR_AUTH);
		w.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* every truncation and an extension */
	for (i = 0; i < w.len; i++)
		CHECK(keywrap_unwrap(mk, label, strlen(label), w.p, i, &back) != ERR_OK);
	wbuf_putc(&w, 0);
	CHECK(keywrap_unwrap(mk, label, strlen(label), w.p, w.len, &back) != ERR_OK);
	CHECK(back == NULL);
	/* sizes */
	secret_free(dk);
	dk = NULL;
	CHECK(secret_random(CRYPTO_WRAP_MAX_KEY + 1, &dk) == ERR_OK);
	CHECK(keywrap_wrap(mk, label, strlen(label), dk, &w2) == ERR_LIMIT);
	secret_free(dk);
	dk = NULL;
	CHECK(secret_random(20, &dk) == ERR_OK);   /* a TOTP seed */
	wbuf_reset(&w2);
	CHECK(keywrap_wrap(mk, "totp:alice", 10, dk, &w2) == ERR_OK);
	CHECK(keywrap_unwrap(mk, "totp:alice", 10, w2.p, w2.len, &back) == ERR_OK);
	CHECK(back != NULL && secret_len(back) == 20 && memcmp(secret_view(back), secret_view(dk), 20) == 0);
	secret_free(back);
	wbuf_fini(&w2);
	wbuf_fini(&w);
	secret_free(dk);
	secret_free(mk2);
	secret_free(mk);
}

TEST(master_key_file)
{
	char p[128];
	struct secret *mk = NULL, *back = NULL;
	uint8_t enc[MK_FILE_LEN];
	struct stat st;

	path_of(p, sizeof p, "master.key");
	unlink(p);
	CHECK(mk_generate(&mk) == ERR_OK);
	CHECK(mk_file_write(p, mk) == ERR_OK);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == MK_FILE_LEN);
	CHECK(mk_file_write(p, mk) == ERR_DENIED);   /* never overwrites */
	CHECK(mk_file_read(p, &back) == ERR_OK);
	CHECK(back != NULL && secret_len(back) == MK_LEN && memcmp(secret_view(back), secret_view(mk), MK_LEN) == 0);
	secret_free(back);
	back = NULL;
	CHECK(chmod(p, 0644) == 0);
	CHECK(mk_file_read(p, &back) == ERR_DENIED);
	CHECK(chmod(p, 0640) == 0);
	CHECK(mk_file_read(p, &back) == ERR_DENIED);
	CHECK(back == NULL);
	/* encoding */
	CHECK(mk_file_encode(mk, enc) == ERR_OK);
	CHECK(memcmp(enc, "DVMK\x01\0\0\0", 8) == 0);
	CHECK(mk_file_decode(enc, sizeof enc - 1, &back) == ERR_PARSE);
	enc[0] = 'X';
	CHECK(mk_file_decode(enc, sizeof enc, &back) == ERR_PARSE);
	enc[0] = 'D';
	enc[4] = 2;
	CHECK(mk_file_decode(enc, sizeof enc, &back) == ERR_UNSUPPORTED);
	enc[4] = 1;
	enc[6] = 1;
	CHECK(mk_file_decode(enc, sizeof enc, &back) == ERR_PARSE);
	CHECK(back == NULL);
	/* a umask does not matter, a symlink is not followed for writing */
	unlink(p);
	{
		char q[128];
		mode_t old = umask(0);

		CHECK(mk_file_write(p, mk) == ERR_OK);
		CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
		umask(old);
		path_of(q, sizeof q, "link.key");
		unlink(q);
		CHECK(symlink(p, q) == 0);
		CHECK(mk_file_write(q, mk) != ERR_OK);
		unlink(q);
	}
	unlink(p);
	secret_free(mk);
}

TEST(passphrase_mode)
{
	struct secret *pass = sec_str("a long passphrase, not in argv");
	struct secret *wrong = sec_str("a long passphrase, not in argV");
	struct secret *mk = NULL, *mk2 = NULL;
	uint8_t rec[MK_PASS_REC_LEN], rec2[MK_PASS_REC_LEN], x[MK_PASS_REC_LEN];
	struct pwhash_limits weak = { 0, 0 };
	size_t i, bit;

	CHECK(mk_pass_create(pass, &cheap, rec, &mk) == ERR_OK);
	CHECK(memcmp(rec, "DVKP\x01\x02\0\0", 8) == 0);
	CHECK(mk_pass_open(pass, rec, sizeof rec, &mk2) == ERR_OK);
	CHECK(mk != NULL && mk2 != NULL && memcmp(secret_view(mk), secret_view(mk2), MK_LEN) == 0);
	secret_free(mk2);
	mk2 = NULL;
	CHECK(mk_pass_open(wrong, rec, sizeof rec, &mk2) == ERR_AUTH);
	CHECK(mk2 == NULL);
	/* same passphrase, new salt: another key */
	CHECK(mk_pass_create(pass, &cheap, rec2, &mk2) == ERR_OK);
	CHECK(memcmp(secret_view(mk), secret_view(mk2), MK_LEN) != 0);
	secret_free(mk2);
	mk2 = NULL;
	/* any change to the record fails (never a different key) */
	for (bit = 0; bit < sizeof rec * 8; bit++) {
		enum err rc;

		memcpy(x, rec, sizeof x);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		/* do not let a flip ask for gigabytes and minutes */
		if (bit / 8 >= 8 && bit / 8 < 20)
			continue;
		rc = mk_pass_open(pass, x, sizeof x, &mk2);
		CHECK(rc != ERR_OK);
		CHECK(mk2 == NULL);
	}
	/* the cost fields: refused beyond the limits, other values give ERR_AUTH */
	memcpy(x, rec, sizeof x);
	x[11] = 2;   /* t = 2 */
	CHECK(mk_pass_open(pass, x, sizeof x, &mk2) == ERR_AUTH);
	x[11] = 0;   /* t = 0 */
	CHECK(mk_pass_open(pass, x, sizeof x, &mk2) == ERR_LIMIT);
	memcpy(x, rec, sizeof x);
	x[12] = 0xff;   /* memory far beyond CRYPTO_PWHASH_MAX_MEM */
	CHECK(mk_pass_open(pass, x, sizeof x, &mk2) == ERR_LIMIT);
	/* the low bits of the memory cost: Argon2id counts whole KiB, so
	 * these would give the same key from a changed record */
	for (bit = 0; bit < 10; bit++) {
		memcpy(x, rec, sizeof x);
		x[19 - bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK(mk_pass_open(pass, x, sizeof x, &mk2) == ERR_LIMIT);
		CHECK(mk2 == NULL);
	}
	for (i = 0; i < sizeof rec; i++)
		CHECK(mk_pass_open(pass, rec, i, &mk2) == ERR_PARSE);
	/* out-of-range costs are refused when creating too */
	weak.opslimit = 1;
	weak.memlimit = 1024;
	CHECK(mk_pass_create(pass, &weak, rec2, &mk2) == ERR_LIMIT);
	CHECK(mk2 == NULL);
	weak.memlimit = 8192 + 1;   /* not whole KiB */
	CHECK(mk_pass_create(pass, &weak, rec2, &mk2) == ERR_LIMIT);
	CHECK(mk2 == NULL);
	secret_free(mk);
	secret_free(wrong);
	secret_free(pass);
}

TEST(passphrase_mode_default_is_moderate)
{
	struct secret *pass = sec_str("moderate");
	struct secret *mk = NULL, *mk2 = NULL;
	uint8_t rec[MK_PASS_REC_LEN];

	CHECK(mk_pass_create(pass, NULL, rec, &mk) == ERR_OK);
	/* t = 3, m = 256 MiB (crypto_pwhash_argon2id_*_MODERATE) */
	CHECK(memcmp(rec + 8, "\0\0\0\x03", 4) == 0);
	CHECK(memcmp(rec + 12, "\0\0\0\0\x10\0\0\0", 8) == 0);
	CHECK(mk_pass_open(pass, rec, sizeof rec, &mk2) == ERR_OK);
	CHECK(mk != NULL && mk2 != NULL && memcmp(secret_view(mk), secret_view(mk2), MK_LEN) == 0);
	secret_free(mk2);
	secret_free(mk);
	secret_free(pass);
}

/* ---- password hashes ---- */

TEST(pwhash_good_and_bad)
{
	struct secret *pw = sec_str("correct horse");
	struct secret *bad = sec_str("correct horsf");
	struct secret *empty = sec_str("");
	char h[PWHASH_STR_MAX], h2[PWHASH_STR_MAX], cheap_h[PWHASH_STR_MAX];
	bool needs = true;

	CHECK(pwhash_str(pw, NULL, h) == ERR_OK);
	CHECK(strncmp(h, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0);   /* INTERACTIVE */
	CHECK(pwhash_verify(h, pw) == ERR_OK);
	CHECK(pwhash_verify(h, bad) == ERR_AUTH);
	CHECK(pwhash_verify(h, empty) == ERR_AUTH);
	CHECK(pwhash_str(pw, NULL, h2) == ERR_OK);
	CHECK(strcmp(h, h2) != 0);   /* salted */
	CHECK(pwhash_needs_rehash(h, NULL, &needs) == ERR_OK);
	CHECK(!needs);
	CHECK(pwhash_str(pw, &cheap, cheap_h) == ERR_OK);
	CHECK(pwhash_verify(cheap_h, pw) == ERR_OK);
	CHECK(pwhash_needs_rehash(cheap_h, NULL, &needs) == ERR_OK);
	CHECK(needs);
	CHECK(pwhash_needs_rehash(cheap_h, &cheap, &needs) == ERR_OK);
	CHECK(!needs);
	/* tampered and malformed hashes */
	h[strlen(h) - 2] = h[strlen(h) - 2] == 'A' ? 'B' : 'A';
	CHECK(pwhash_verify(h, pw) == ERR_AUTH);
	CHECK(pwhash_verify("", pw) == ERR_PARSE);
	CHECK(pwhash_verify("$2y$10$abcdefghijklmnopqrstuv", pw) == ERR_PARSE);
	CHECK(pwhash_verify("$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", pw) == ERR_PARSE);
	CHECK(pwhash_verify("$argon2id$garbage", pw) == ERR_AUTH);
	CHECK(pwhash_needs_rehash("$argon2id$garbage", NULL, &needs) == ERR_PARSE);
	{
		char longer[PWHASH_STR_MAX + 10];
		memset(longer, 'a', sizeof longer - 1);
		longer[sizeof longer - 1] = 0;
		memcpy(longer, "$argon2id$", 10);
		CHECK(pwhash_verify(longer, pw) == ERR_PARSE);
	}
	CHECK(pwhash_verify_dummy(pw) == ERR_AUTH);
	secret_free(empty);
	secret_free(bad);
	secret_free(pw);
}

TEST(pwhash_limits)
{
	char big[CRYPTO_PASSWORD_MAX + 2];
	char h[PWHASH_STR_MAX];
	struct secret *pw;
	struct pwhash_limits bad = { 1, 100 };

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	pw = sec_str(big);
	CHECK(pwhash_str(pw, &cheap, h) == ERR_LIMIT);
	secret_free(pw);
	big[CRYPTO_PASSWORD_MAX] = 0;
	pw = sec_str(big);
	CHECK(pwhash_str(pw, &cheap, h) == ERR_OK);
	CHECK(pwhash_verify(h, pw) == ERR_OK);
	CHECK(pwhash_str(pw, &bad, h) == ERR_LIMIT);
	secret_free(pw);
}

/* ---- TOTP ---- */

static void code_at(const struct secret *seed, uint64_t t, char s[8])
{
	uint32_t c = 0;

	if (totp_code(seed, t, 6, &c) != ERR_OK)
		abort();
	snprintf(s, 8, "%06u", (unsigned)c);
}

TEST(totp_skew_window)
{
	struct secret *seed = sec_str("12345678901234567890");
	const uint64_t now = 1700000015;   /* step 56666667, 15 s into it */
	const uint64_t s = now / 30;
	uint64_t step = 0;
	char c[8];
	int d;

	for (d = -3; d <= 3; d++) {
		enum err rc;

		code_at(seed, (uint64_t)((int64_t)now + 30 * d), c);
		step = 0;
		rc = totp_verify(seed, now, c, 6, 0, &step);
		if (d >= -1 && d <= 1) {
			CHECK(rc == ERR_OK);
			CHECK_EQ_INT(step, (int64_t)s + d);
		} else {
			CHECK(rc == ERR_AUTH);
			CHECK_EQ_INT(step, 0);
		}
	}
	/* the edges of the window in seconds */
	code_at(seed, s * 30 - 30, c);              /* first second of step s-1 */
	CHECK(totp_verify(seed, s * 30 + 29, c, 6, 0, &step) == ERR_OK);   /* last second of s */
	CHECK(totp_verify(seed, s * 30 + 30, c, 6, 0, &step) == ERR_AUTH); /* s+1: two steps away */
	/* near time 0 */
	code_at(seed, 0, c);
	CHECK(totp_verify(seed, 0, c, 6, 0, &step) == ERR_OK);
	CHECK_EQ_INT(step, 0);
	secret_free(seed);
}

TEST(totp_replay_refused)
{
	struct secret *seed = NULL;
	const uint64_t now = 1700000000;
	uint64_t step = 0, last;
	char c[8], prev[8];

	CHECK(totp_seed_new(&seed) == ERR_OK);
	CHECK_EQ_INT(secret_len(seed), TOTP_SEED_LEN);
	code_at(seed, now, c);
	CHECK(totp_verify(seed, now, c, 6, 0, &step) == ERR_OK);
	last = step;
	/* the same code again, even a bit later, is a replay */
	CHECK(totp_verify(seed, now, c, 6, last + 1, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, now + 25, c, 6, last + 1, &step) == ERR_AUTH);
	/* and so is an older code still inside the window */
	code_at(seed, now - 30, prev);
	if (strcmp(prev, c) != 0)
		CHECK(totp_verify(seed, now, prev, 6, last + 1, &step) == ERR_AUTH);
	/* the next step's code is fine */
	code_at(seed, now + 30, c);
	CHECK(totp_verify(seed, now + 30, c, 6, last + 1, &step) == ERR_OK);
	CHECK_EQ_INT(step, last + 1);
	secret_free(seed);
}

TEST(totp_bad_input)
{
	struct secret *seed = sec_str("12345678901234567890");
	uint64_t step = 0;

	/* 287082 is the code at t = 59 */
	CHECK(totp_verify(seed, 59, "287082", 6, 0, &step) == ERR_OK);
	CHECK(totp_verify(seed, 59, "287082", 5, 0, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, 59, "2870820", 7, 0, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, 59, "28708a", 6, 0, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, 59, "28 082", 6, 0, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, 59, "", 0, 0, &step) == ERR_AUTH);
	CHECK(totp_verify(seed, 59, "287083", 6, 0, &step) == ERR_AUTH);
	secret_free(seed);
}

TEST(totp_seed_and_uri)
{
	struct secret *seed = sec_str("12345678901234567890");
	struct secret *parsed = NULL, *uri = NULL;

	CHECK(totp_seed_parse("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 32, &parsed) == ERR_OK);
	CHECK(parsed != NULL && secret_len(parsed) == 20 && memcmp(secret_view(parsed), "12345678901234567890", 20) == 0);
	secret_free(parsed);
	parsed = NULL;
	CHECK(totp_seed_parse("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", 32, &parsed) == ERR_OK);
	secret_free(parsed);
	parsed = NULL;
	CHECK(totp_seed_parse("GEZDGNBVGY3TQOJQ", 16, &parsed) == ERR_PARSE);   /* 80 bits: too short */
	CHECK(totp_seed_parse("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", 32, &parsed) == ERR_PARSE);
	CHECK(parsed == NULL);

	CHECK(totp_uri("dicomvault", "alice@example.org", seed, &uri) == ERR_OK);
	CHECK(uri != NULL);
	if (uri != NULL)
		CHECK_EQ_STR(secret_cstr(uri), "otpauth://totp/dicomvault:alice%40example.org"
		             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=dicomvault"
		             "&algorithm=SHA1&digits=6&period=30");
	secret_free(uri);
	uri = NULL;
	CHECK(totp_uri("St. Mary's PACS", "Dr. Müller: a/b", seed, &uri) == ERR_OK);
	if (uri != NULL)
		CHECK_EQ_STR(secret_cstr(uri), "otpauth://totp/St.%20Mary%27s%20PACS:Dr.%20M%C3%BCller%3A%20a%2Fb"
		             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=St.%20Mary%27s%20PACS"
		             "&algorithm=SHA1&digits=6&period=30");
	secret_free(uri);
	uri = NULL;
	CHECK(totp_uri("", "alice", seed, &uri) == ERR_PARSE);
	CHECK(totp_uri("dv", "", seed, &uri) == ERR_PARSE);
	{
		char big[CRYPTO_TOTP_LABEL_MAX + 2];
		memset(big, 'a', sizeof big - 1);
		big[sizeof big - 1] = 0;
		CHECK(totp_uri("dv", big, seed, &uri) == ERR_LIMIT);
		big[CRYPTO_TOTP_LABEL_MAX] = 0;
		CHECK(totp_uri(big, big, seed, &uri) == ERR_OK);
		secret_free(uri);
		uri = NULL;
		memset(big, 0xff, sizeof big - 1);   /* worst case: every byte escaped */
		big[CRYPTO_TOTP_LABEL_MAX] = 0;
		CHECK(totp_uri(big, big, seed, &uri) == ERR_OK);
		CHECK(uri != NULL && secret_len(uri) > 6 * CRYPTO_TOTP_LABEL_MAX);
		secret_free(uri);
		uri = NULL;
	}
	secret_free(seed);
}

/* ---- Ed25519 ---- */

TEST(sign_round_trip)
{
	struct secret *sk = NULL, *sk2 = NULL;
	uint8_t pk[SIGN_PK_LEN], pk2[SIGN_PK_LEN], sig[SIGN_SIG_LEN];
	const char *cp = "checkpoint 1024 sha256:0123abcd";
	size_t n = strlen(cp), bit;

	CHECK(sign_keypair(pk, &sk) == ERR_OK);
	CHECK(sign_keypair(pk2, &sk2) == ERR_OK);
	CHECK(sk != NULL && secret_len(sk) == SIGN_SK_LEN);
	CHECK(sign_detached(sk, cp, n, sig) == ERR_OK);
	CHECK(sign_verify(pk, cp, n, sig) == ERR_OK);
	CHECK(sign_verify(pk2, cp, n, sig) == ERR_AUTH);
	CHECK(sign_verify(pk, cp, n - 1, sig) == ERR_AUTH);
	for (bit = 0; bit < sizeof sig * 8; bit++) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK(sign_verify(pk, cp, n, sig) == ERR_AUTH);
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	CHECK(sign_detached(sk2, cp, n, sig) == ERR_OK);
	CHECK(sign_verify(pk2, cp, n, sig) == ERR_OK);
	secret_free(sk2);
	secret_free(sk);
}

int main(void)
{
	int rc;

	if (crypto_init() != ERR_OK)
		return 1;
	snprintf(dir, sizeof dir, "/tmp/dv_crypto_test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	log_set_level(LOG_ERROR);
	RUN(secret_basics);
	RUN(sealed_secret_is_read_only);
	RUN(secret_file_modes);
	RUN(secret_from_pipe);
	RUN(keywrap_round_trip_and_tamper);
	RUN(master_key_file);
	RUN(passphrase_mode);
	RUN(passphrase_mode_default_is_moderate);
	RUN(pwhash_good_and_bad);
	RUN(pwhash_limits);
	RUN(totp_skew_window);
	RUN(totp_replay_refused);
	RUN(totp_bad_input);
	RUN(totp_seed_and_uri);
	RUN(sign_round_trip);
	rc = TEST_DONE();
	{
		char p[128];
		path_of(p, sizeof p, "pass");
		unlink(p);
	}
	rmdir(dir);
	return rc;
}
