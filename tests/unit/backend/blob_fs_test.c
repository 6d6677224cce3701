/* blob_fs_test.c: the local-directory object store. Layer: tests. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "fs_count.h"
#include "dicomvault/blob.h"

static char dir[256];

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "  cleanup failed\n");
}

static struct blob_store *open_store(void)
{
	struct blob_store *s = NULL;
	snprintf(dir, sizeof dir, "/tmp/dv_blob_test.%d", (int)getpid());
	rm_rf(dir);
	if (blob_fs_open(dir, &s) != ERR_OK)
		return NULL;
	return s;
}

static enum err put(struct blob_store *s, const char *key, const void *p, size_t n)
{
	struct blob_writer *w = NULL;
	enum err rc = s->ops->put_begin(s, key, &w);
	if (rc != ERR_OK)
		return rc;
	rc = s->ops->put_write(w, p, n);
	if (rc != ERR_OK) {
		s->ops->put_abort(w);
		return rc;
	}
	return s->ops->put_commit(w);
}

static const char *path_of(const char *rel)
{
	static char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	return p;
}

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.'))
			n++;
	closedir(d);
	return n;
}

TEST(keys)
{
	CHECK(blob_key_valid("0123456789abcdef"));
	CHECK(blob_key_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	CHECK(!blob_key_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"));
	CHECK(!blob_key_valid("0123456789abcde"));
	CHECK(!blob_key_valid("0123456789ABCDEF"));
	CHECK(!blob_key_valid("../../etc/passwd00"));
	CHECK(!blob_key_valid("0123456789abcdef/"));
	CHECK(!blob_key_valid(""));
	CHECK(!blob_key_valid(NULL));
}

static enum err collect(void *ctx, const char *key)
{
	int *n = ctx;
	(*n)++;
	return strlen(key) == 32 ? ERR_OK : ERR_INTERNAL;
}

TEST(put_get_delete)
{
	struct blob_store *s = open_store();
	const char *key = "00112233445566778899aabbccddeeff";
	uint8_t buf[64];
	struct src src;
	struct stat st;
	char path[512];
	int n = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(put(s, key, "ciphertext", 10) == ERR_OK);
	CHECK(s->ops->get(s, key, &src) == ERR_OK);
	CHECK(src.size == 10);
	CHECK(src_read_full(&src, buf, 10) == ERR_OK && memcmp(buf, "ciphertext", 10) == 0);
	src_close(&src);
	snprintf(path, sizeof path, "%s/00/11/%s", dir, key);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);
	/* no temporary file left behind */
	snprintf(path, sizeof path, "%s/00/11", dir);
	CHECK_EQ_INT(count_entries(path), 1);
	/* immutable */
	CHECK(put(s, key, "other", 5) == ERR_DENIED);
	CHECK(s->ops->get(s, key, &src) == ERR_OK);
	CHECK(src_read_full(&src, buf, 10) == ERR_OK && memcmp(buf, "ciphertext", 10) == 0);
	src_close(&src);
	CHECK(put(s, "00112233445566778899aabbccddee00", "b", 1) == ERR_OK);
	CHECK(s->ops->list(s, collect, &n) == ERR_OK);
	CHECK_EQ_INT(n, 2);
	CHECK(s->ops->del(s, key) == ERR_OK);
	CHECK(s->ops->del(s, key) == ERR_NOTFOUND);
	CHECK(s->ops->get(s, key, &src) == ERR_NOTFOUND);
	CHECK(s->ops->get(s, "../../x0123456789abcdef", &src) == ERR_PARSE);
	s->ops->close(s);
	rm_rf(dir);
}

TEST(abort_leaves_nothing)
{
	struct blob_store *s = open_store();
	struct blob_writer *w = NULL;
	struct src src;
	char path[512];
	const char *key = "aaaabbbbccccddddeeeeffff00001111";

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->put_begin(s, key, &w) == ERR_OK);
	CHECK(s->ops->put_write(w, "partial", 7) == ERR_OK);
	s->ops->put_abort(w);
	CHECK(s->ops->get(s, key, &src) == ERR_NOTFOUND);
	snprintf(path, sizeof path, "%s/aa/aa", dir);
	CHECK_EQ_INT(count_entries(path), 0);
	snprintf(path, sizeof path, "%s/.pending", dir);
	CHECK_EQ_INT(count_entries(path), 0);
	s->ops->put_abort(NULL);
	s->ops->close(s);
	rm_rf(dir);
}

/* A put whose name was linked during the writes (once the .pending fsync
 * was done), then aborted: neither name is left. */
TEST(abort_after_early_link)
{
	struct blob_store *s = open_store();
	struct blob_writer *w = NULL;
	struct src src;
	char path[512];
	const char *key = "abcdabcdabcdabcdabcdabcdabcdabcd";
	int i;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	snprintf(path, sizeof path, "%s/ab/cd/%s", dir, key);
	CHECK(s->ops->put_begin(s, key, &w) == ERR_OK);
	for (i = 0; i < 2000 && access(path, F_OK) != 0; i++) {
		CHECK(s->ops->put_write(w, "x", 1) == ERR_OK);
		usleep(1000);
	}
	CHECK(access(path, F_OK) == 0);   /* linked before commit */
	s->ops->put_abort(w);
	CHECK(access(path, F_OK) != 0);
	CHECK(s->ops->get(s, key, &src) == ERR_NOTFOUND);
	snprintf(path, sizeof path, "%s/.pending", dir);
	CHECK_EQ_INT(count_entries(path), 0);
	/* the same once linked, then committed: complete */
	CHECK(s->ops->put_begin(s, key, &w) == ERR_OK);
	snprintf(path, sizeof path, "%s/ab/cd/%s", dir, key);
	for (i = 0; i < 2000 && access(path, F_OK) != 0; i++) {
		CHECK(s->ops->put_write(w, "y", 1) == ERR_OK);
		usleep(1000);
	}
	CHECK(s->ops->put_write(w, "end", 3) == ERR_OK);
	CHECK(s->ops->put_commit(w) == ERR_OK);
	CHECK(s->ops->get(s, key, &src) == ERR_OK);
	{
		uint8_t buf[4] = { 0 };
		CHECK(src.size == i + 3);   /* i times "y", then "end" */
		CHECK(src.read_at != NULL && src.read_at(src.ctx, (uint64_t)i, buf, 3) == ERR_OK && memcmp(buf, "end", 3) == 0);
		src_close(&src);
	}
	s->ops->close(s);
	rm_rf(dir);
}

TEST(sink_and_large)
{
	struct blob_store *s = open_store();
	struct blob_writer *w = NULL;
	struct blob_sink_ctx c;
	struct sink k;
	struct src src;
	size_t n = 3u << 20, i;
	uint8_t *big = malloc(n), *back = malloc(n);
	const char *key = "1234123412341234";

	CHECK(s != NULL && big != NULL && back != NULL);
	if (s == NULL || big == NULL || back == NULL)
		goto out;
	for (i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 9));
	CHECK(s->ops->put_begin(s, key, &w) == ERR_OK);
	blob_sink(&k, &c, s, w);
	for (i = 0; i < n; i += 65536)
		CHECK(sink_write(&k, big + i, n - i < 65536 ? n - i : 65536) == ERR_OK);
	CHECK(s->ops->put_commit(w) == ERR_OK);
	CHECK(s->ops->get(s, key, &src) == ERR_OK);
	CHECK(src_read_full(&src, back, n) == ERR_OK && memcmp(big, back, n) == 0);
	src_close(&src);
out:
	free(big);
	free(back);
	if (s)
		s->ops->close(s);
	rm_rf(dir);
}

/* keep() of a recovery: only 1111... is "indexed"; ctx (if not NULL) a
 * string that collects "KEY:written " for each key asked about. */
static enum err say_no(void *ctx, const char *key, bool written, bool *yes)
{
	if (ctx != NULL) {
		char *seen = ctx;
		size_t n = strlen(seen);
		snprintf(seen + n, 1024 - n, "%s:%d ", key, written);
	}
	*yes = strcmp(key, "1111111111111111") == 0;
	return ERR_OK;
}

static bool exists(const char *rel)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	return access(p, F_OK) == 0;
}

/* The fan-out directories: all 256 DIR/xx when the store is first opened
 * (remade if DIR/ff is missing; a lost DIR/xx remade when needed), a
 * DIR/xx/yy when first needed; objects sharing one, in a fresh handle over
 * the same directory (bitmap empty, directories there) and after a
 * directory was made by another handle, all land in place. */
TEST(fanout_directories)
{
	struct blob_store *s = open_store(), *t = NULL;
	char rel[16];
	unsigned i, missing = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(exists("00") && exists("ff"));
	CHECK(!exists("ab/cd"));
	/* DIR/ab lost (as if a crash cut top_dirs short): made again when needed */
	CHECK(rmdir((snprintf(rel, sizeof rel, "%s", "ab"), path_of(rel))) == 0);
	CHECK(put(s, "abcd000000000001", "a", 1) == ERR_OK);
	for (i = 0; i < 256; i++) {
		snprintf(rel, sizeof rel, "%02x", i);
		missing += !exists(rel);
	}
	CHECK_EQ_INT((int)missing, 0);
	CHECK(exists("ab/cd/abcd000000000001"));
	CHECK(!exists("ab/ce"));
	CHECK(put(s, "abcd000000000002", "b", 1) == ERR_OK);
	CHECK(put(s, "abce000000000001", "c", 1) == ERR_OK);
	CHECK(exists("ab/ce/abce000000000001"));
	CHECK(blob_fs_open(dir, &t) == ERR_OK);
	if (t != NULL) {
		CHECK(put(t, "abcd000000000003", "d", 1) == ERR_OK);   /* made by s */
		CHECK(put(t, "ffff000000000001", "e", 1) == ERR_OK);
		CHECK(put(s, "ffff000000000002", "f", 1) == ERR_OK);   /* made by t */
		CHECK(put(s, "abcd000000000003", "g", 1) == ERR_DENIED);
		t->ops->close(t);
	}
	CHECK_EQ_INT(count_entries(dir), 256 + 3);   /* + .tmp, .pending, .lock */
	s->ops->close(s);
	rm_rf(dir);
}

/* Crash recovery: an object committed but never settled (the process died
 * before the index referenced it) and a temporary file of an unfinished
 * write are removed; a committed object the index references stays; a
 * settled object is never looked at; nothing happens while another open
 * store (another process) holds the lock. */
TEST(recover_after_crash)
{
	struct blob_store *s = open_store(), *other = NULL;
	struct blob_writer *w = NULL;
	unsigned removed = 99;
	char p[600];

	if (s == NULL) {
		CHECK(false);
		return;
	}
	CHECK(put(s, "1111111111111111", "kept", 4) == ERR_OK);      /* pending, indexed */
	CHECK(put(s, "2222222222222222", "orphan", 6) == ERR_OK);    /* pending, not indexed */
	CHECK(put(s, "3333333333333333", "settled", 7) == ERR_OK);
	s->ops->settle(s, "3333333333333333");
	CHECK(exists(".pending/1111111111111111") && exists(".pending/2222222222222222"));
	CHECK(!exists(".pending/3333333333333333"));
	CHECK(s->ops->put_begin(s, "4444444444444444", &w) == ERR_OK);   /* in flight */
	CHECK(s->ops->put_write(w, "x", 1) == ERR_OK);
	/* written in its pending entry, not yet under its key */
	CHECK(exists(".pending/4444444444444444") && !exists("44/44/4444444444444444"));
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)), 3);
	/* a temporary file as older versions left them, and a spare file of
	 * a process that died (removed, not counted) */
	{
		FILE *f = fopen((snprintf(p, sizeof p, "%s/.tmp/6666666666666666.0011223344556677", dir), p), "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
		f = fopen((snprintf(p, sizeof p, "%s/.tmp/spare.0011223344556677", dir), p), "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
	}
	/* another store open (as another process would): no recovery */
	CHECK(blob_fs_open(dir, &other) == ERR_OK);
	CHECK(other != NULL && other->ops->recover(other, say_no, NULL, &removed) == ERR_OK);
	CHECK_EQ_INT(removed, 0);
	CHECK(exists("22/22/2222222222222222"));
	if (other != NULL)
		other->ops->close(other);
	/* the crash: the writer never finishes, the store is reopened */
	s->ops->close(s);
	s = NULL;
	CHECK(blob_fs_open(dir, &s) == ERR_OK);
	if (s == NULL)
		return;
	{
		/* a spare made ahead and never used: an empty pending entry */
		FILE *f = fopen((snprintf(p, sizeof p, "%s/.pending/7777777777777777", dir), p), "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
		/* a finished put whose data the crash lost but not its name
		 * (put_finish waits for it): empty too, and written */
		f = fopen((snprintf(p, sizeof p, "%s/.pending/8888888888888888", dir), p), "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
		CHECK(mkdir(path_of("88/88"), 0700) == 0);
		CHECK(link(p, path_of("88/88/8888888888888888")) == 0);
	}
	{
		char seen[1024] = "";
		CHECK(s->ops->recover(s, say_no, seen, &removed) == ERR_OK);
		/* keep() learns which entries hold bytes */
		CHECK(strstr(seen, "1111111111111111:1 ") != NULL && strstr(seen, "2222222222222222:1 ") != NULL);
		CHECK(strstr(seen, "4444444444444444:1 ") != NULL && strstr(seen, "7777777777777777:0 ") != NULL);
		CHECK(strstr(seen, "8888888888888888:1 ") != NULL);
	}
	/* the orphan, the write cut short, the named one, the old temporary
	 * file; not the spare */
	CHECK_EQ_INT(removed, 4);
	CHECK(!exists("22/22/2222222222222222") && !exists("88/88/8888888888888888"));
	CHECK(exists("11/11/1111111111111111") && exists("33/33/3333333333333333"));
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.tmp", dir), p)), 0);
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)), 0);
	/* a second recovery finds nothing; the store still works */
	CHECK(s->ops->recover(s, say_no, NULL, &removed) == ERR_OK);
	CHECK_EQ_INT(removed, 0);
	CHECK(put(s, "5555555555555555", "new", 3) == ERR_OK);
	CHECK(s->ops->del(s, "5555555555555555") == ERR_OK);
	CHECK(!exists(".pending/5555555555555555"));
	s->ops->put_abort(w);   /* (the writer's memory; its file is already gone) */
	s->ops->close(s);
	rm_rf(dir);
}

/* Entries of DIR/.pending holding data (empty ones are spares). */
static int count_pending_written(void)
{
	char p[600];

	snprintf(p, sizeof p, "%s/.pending", dir);
	return t_count_written(p);
}

/* new_key: 32 hex digits, the fan-out prefix kept for a run of keys
 * (one DIR/ab/cd made for many objects), the rest never repeated. */
TEST(new_keys)
{
	struct blob_store *s = open_store();
	char k[300][BLOB_KEY_NEW + 1], pre[300][5], p[600];
	unsigned i, j, nprefix = 0, most = 0, c;

	if (s == NULL) {
		CHECK(false);
		return;
	}
	for (i = 0; i < 300; i++) {
		CHECK(s->ops->new_key(s, k[i]) == ERR_OK);
		CHECK(strlen(k[i]) == BLOB_KEY_NEW && blob_key_valid(k[i]));
		for (j = 0; j < nprefix && memcmp(pre[j], k[i], 4) != 0; j++)
			;
		if (j == nprefix)
			snprintf(pre[nprefix++], 5, "%.4s", k[i]);
	}
	for (j = 0; j < nprefix; j++) {
		for (i = 0, c = 0; i < 300; i++)
			c += memcmp(pre[j], k[i], 4) == 0;
		most = c > most ? c : most;
	}
	CHECK(most >= 240);          /* 256 keys share their directory */
	CHECK(nprefix >= 2 && nprefix <= 3);
	for (i = 0; i < 300; i++)
		for (j = i + 1; j < 300; j++)
			CHECK(strcmp(k[i] + 4, k[j] + 4) != 0);
	for (i = 0; i < 300; i += 37)
		CHECK(put(s, k[i], "x", 1) == ERR_OK);
	CHECK_EQ_INT(count_pending_written(), 9);   /* not settled */
	s->ops->close(s);
	/* the spares (empty pending entries made ahead) gone at close */
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)), 9);
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.tmp", dir), p)), 0);
	rm_rf(dir);
}

/* Spares: after the first new_key the store makes empty pending entries
 * ahead (their fsync done before new_key gives their keys); a put under
 * such a key is linked under its name at put_begin, before any byte, and
 * an abort then removes both names; recovery removes spares left by a
 * process that died without counting them. */
TEST(spares)
{
	struct blob_store *s = open_store();
	struct blob_writer *w = NULL;
	struct src src;
	char k[BLOB_KEY_NEW + 1], p[600], fin[600];
	unsigned removed = 99;
	int i;
	bool linked = false;

	if (s == NULL) {
		CHECK(false);
		return;
	}
	/* the first keys come before any spare is ready: tried until one is */
	for (i = 0; i < 200 && !linked; i++) {
		CHECK(s->ops->new_key(s, k) == ERR_OK);
		CHECK(s->ops->put_begin(s, k, &w) == ERR_OK);
		snprintf(fin, sizeof fin, "%s/%.2s/%.2s/%s", dir, k, k + 2, k);
		linked = access(fin, F_OK) == 0;
		if (!linked) {
			s->ops->put_abort(w);
			usleep(10000);
		}
	}
	CHECK(linked);
	if (!linked) {
		s->ops->close(s);
		rm_rf(dir);
		return;
	}
	/* the object's file is its (durable) pending entry */
	snprintf(p, sizeof p, "%s/.pending/%s", dir, k);
	CHECK(access(p, F_OK) == 0);
	CHECK(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)) >= 2);   /* more spares */
	CHECK_EQ_INT(count_pending_written(), 0);
	CHECK(s->ops->put_write(w, "abc", 3) == ERR_OK);
	s->ops->put_abort(w);
	CHECK(access(fin, F_OK) != 0);
	CHECK(s->ops->get(s, k, &src) == ERR_NOTFOUND);
	/* one committed: complete under its key, pending until settled */
	CHECK(s->ops->new_key(s, k) == ERR_OK);
	CHECK(put(s, k, "object", 6) == ERR_OK);
	CHECK(s->ops->get(s, k, &src) == ERR_OK);
	if (src.size == 6) {
		uint8_t b[6];
		CHECK(src.read_at(src.ctx, 0, b, 6) == ERR_OK && memcmp(b, "object", 6) == 0);
	} else {
		CHECK(false);
	}
	src_close(&src);
	CHECK_EQ_INT(count_pending_written(), 1);
	s->ops->settle(s, k);
	CHECK_EQ_INT(count_pending_written(), 0);
	/* a key given and never put: its spare stays until close */
	CHECK(s->ops->new_key(s, k) == ERR_OK);
	s->ops->close(s);
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)), 0);
	/* spares of a process that died: removed, not counted */
	for (i = 0; i < 3; i++) {
		FILE *f = fopen((snprintf(p, sizeof p, "%s/.pending/%032x", dir, 0xabc + i), p), "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
	}
	CHECK(blob_fs_open(dir, &s) == ERR_OK);
	CHECK(s->ops->recover(s, say_no, NULL, &removed) == ERR_OK);
	CHECK_EQ_INT(removed, 0);
	CHECK_EQ_INT(count_entries((snprintf(p, sizeof p, "%s/.pending", dir), p)), 0);
	s->ops->close(s);
	rm_rf(dir);
}

int main(void)
{
	RUN(keys);
	RUN(put_get_delete);
	RUN(abort_leaves_nothing);
	RUN(abort_after_early_link);
	RUN(sink_and_large);
	RUN(recover_after_crash);
	RUN(fanout_directories);
	RUN(new_keys);
	RUN(spares);
	return TEST_DONE();
}
