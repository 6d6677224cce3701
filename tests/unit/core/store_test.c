/* store_test.c: ingest and retrieval through the vault: encryption at rest,
 * byte-identical retrieval, duplicates, tampering, no PHI on disk.
 * Layer: tests. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/blob.h"
#include "dicomvault/index.h"
#include "dicomvault/store.h"
#include "dicomvault/vault.h"

#define PYD "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

static char base[256], dir[512];
static struct vault *v;

static void rm_rf(const char *p)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "  cleanup failed\n");
}

static enum err store_file(const char *path, struct store_result *res, char *why, size_t cap)
{
	struct src s;
	enum err rc = src_file_open(&s, path);
	if (rc != ERR_OK)
		return rc;
	rc = store_instance(v, &s, "default", res, why, cap);
	src_close(&s);
	return rc;
}

static enum err store_mem(const uint8_t *p, size_t n, struct store_result *res, char *why, size_t cap)
{
	struct src s;
	struct src_mem m;
	src_mem_init(&s, &m, p, n);
	return store_instance(v, &s, "default", res, why, cap);
}

static bool same_as_file(const char *path, const uint8_t *p, size_t n)
{
	uint8_t *b = NULL;
	size_t bn = 0;
	bool same;
	if (file_read_all(path, 64 << 20, &b, &bn) != ERR_OK)
		return false;
	same = bn == n && memcmp(b, p, n) == 0;
	free(b);
	return same;
}

TEST(store_and_retrieve_identical)
{
	static const char *files[] = { "CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "rtplan.dcm" };
	struct store_result res;
	char why[256], path[512];
	size_t i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct wbuf w;
		struct sink k;
		snprintf(path, sizeof path, PYD "%s", files[i]);
		if (access(path, R_OK) != 0)
			continue;
		CHECK(store_file(path, &res, why, sizeof why) == ERR_OK);
		CHECK(!res.existed);
		wbuf_init(&w, 64 << 20);
		sink_wbuf(&k, &w);
		CHECK(retrieve_instance(v, res.sop_uid, &k, why, sizeof why) == ERR_OK);
		CHECK(same_as_file(path, w.p, w.len));
		wbuf_fini(&w);
	}
}

TEST(duplicates)
{
	struct store_result res;
	char why[256];
	uint8_t *b = NULL;
	size_t n = 0;

	CHECK(store_file(PYD "CT_small.dcm", &res, why, sizeof why) == ERR_OK);
	CHECK(res.existed);
	CHECK(file_read_all(PYD "CT_small.dcm", 1 << 20, &b, &n) == ERR_OK);
	if (b == NULL)
		return;
	/* the same data set under another header (preamble and file meta
	 * say who wrote the file, not what the image is): already stored,
	 * and the stored copy stays as it was */
	b[5] ^= 0x5a;
	CHECK(store_mem(b, n, &res, why, sizeof why) == ERR_OK);
	CHECK(res.existed);
	{
		struct wbuf w;
		struct sink k;
		wbuf_init(&w, 64 << 20);
		sink_wbuf(&k, &w);
		CHECK(retrieve_instance(v, res.sop_uid, &k, why, sizeof why) == ERR_OK);
		CHECK(same_as_file(PYD "CT_small.dcm", w.p, w.len));
		wbuf_fini(&w);
	}
	b[5] ^= 0x5a;
	b[n - 1] ^= 0xff;   /* a pixel changed, same SOP Instance UID */
	CHECK(store_mem(b, n, &res, why, sizeof why) == ERR_DENIED);
	CHECK(strstr(why, "different content") != NULL);
	b[5] ^= 0x5a;       /* and another header too */
	CHECK(store_mem(b, n, &res, why, sizeof why) == ERR_DENIED);
	free(b);
}

TEST(refusals)
{
	struct store_result res;
	char why[256];
	static const uint8_t junk[] = "this is not DICOM at all, just text that goes on for a while....";

	CHECK(store_mem(junk, sizeof junk, &res, why, sizeof why) != ERR_OK);
	CHECK(why[0] != 0);
	CHECK(store_file(PYD "no_meta.dcm", &res, why, sizeof why) != ERR_OK);
	CHECK(retrieve_instance(v, "1.2.3.4.5.6", NULL, why, sizeof why) == ERR_NOTFOUND);
}

/* Every file of the vault, read whole, must not contain needle. */
static int grep_dir(const char *d, const char *needle)
{
	DIR *dd = opendir(d);
	struct dirent *e;
	int found = 0;

	if (dd == NULL)
		return 0;
	while ((e = readdir(dd)) != NULL) {
		char p[1024];
		struct stat st;
		if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
			continue;
		snprintf(p, sizeof p, "%s/%s", d, e->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found += grep_dir(p, needle);
		} else if (S_ISREG(st.st_mode)) {
			uint8_t *b = NULL;
			size_t n = 0;
			if (file_read_all(p, 256 << 20, &b, &n) == ERR_OK) {
				if (memmem(b, n, needle, strlen(needle)) != NULL) {
					fprintf(stderr, "  \"%s\" found in %s\n", needle, p);
					found++;
				}
				free(b);
			}
		}
	}
	closedir(dd);
	return found;
}

TEST(no_phi_on_disk)
{
	/* CT_small's patient: name, ID, other ID, institution-free identifiers */
	CHECK_EQ_INT(grep_dir(dir, "CompressedSamples"), 0);
	CHECK_EQ_INT(grep_dir(dir, "1CT1"), 0);
	CHECK_EQ_INT(grep_dir(dir, "ABCD1234"), 0);
	/* the UIDs are in the clear (they are not identifying on their own) */
	CHECK(grep_dir(dir, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322") > 0);
}

static enum err first_key(void *ctx, const char *key)
{
	snprintf(ctx, 65, "%s", key);
	return ERR_INTERNAL;   /* stop after one */
}

TEST(tampered_object_fails)
{
	struct index_store *ix = v->ix;
	struct idx_instance inst;
	char path[800], why[256];
	struct wbuf w;
	struct sink k;
	uint8_t b;
	int fd;
	char key[65] = "";

	(void)first_key;
	CHECK(ix->ops->instance_get(ix, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", &inst) == ERR_OK);
	snprintf(key, sizeof key, "%s", inst.object_key);
	snprintf(path, sizeof path, "%s/objects/%.2s/%.2s/%s", dir, key, key + 2, key);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pread(fd, &b, 1, 5000) == 1);
	b ^= 0x01;
	CHECK(pwrite(fd, &b, 1, 5000) == 1);
	wbuf_init(&w, 64 << 20);
	sink_wbuf(&k, &w);
	CHECK(retrieve_instance(v, inst.uid, &k, why, sizeof why) == ERR_AUTH);
	CHECK(strstr(why, "authentication") != NULL);
	CHECK(w.len < 5000);   /* nothing past the damaged chunk was released */
	wbuf_fini(&w);
	b ^= 0x01;
	CHECK(pwrite(fd, &b, 1, 5000) == 1);
	close(fd);
	wbuf_init(&w, 64 << 20);
	sink_wbuf(&k, &w);
	CHECK(retrieve_instance(v, inst.uid, &k, why, sizeof why) == ERR_OK);
	wbuf_fini(&w);
}

/* Concurrent stores (group commit: their index rows share transactions):
 * 8 threads store 8 distinct instances (CT_small with another last digit
 * of its SOP Instance UID), 2 more the same one at the same time; all
 * succeed, the duplicate once as "already stored" or both as new never,
 * and every instance retrieves identical. */
#define NCONC 10
struct conc {
	uint8_t *b;
	size_t n;
	enum err rc;
	struct store_result res;
	char why[256];
};

static void *conc_main(void *arg)
{
	struct conc *c = arg;
	c->rc = store_mem(c->b, c->n, &c->res, c->why, sizeof c->why);
	return NULL;
}

TEST(concurrent_stores)
{
	static const char uid[] = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct conc c[NCONC];
	pthread_t th[NCONC];
	uint8_t *orig = NULL;
	size_t n = 0, i, k, existed = 0;

	if (file_read_all(PYD "CT_small.dcm", 1 << 20, &orig, &n) != ERR_OK) {
		CHECK(false);
		return;
	}
	v->ix_lock = &mu;   /* as the server shares its index between threads */
	for (i = 0; i < NCONC; i++) {
		c[i].b = malloc(n);
		c[i].n = n;
		if (c[i].b == NULL)
			return;
		memcpy(c[i].b, orig, n);
		/* every copy of the UID (meta and data set) ends in another
		 * digit than the stored CT_small's 2; the last two threads both
		 * send the one ending in 9 */
		for (k = 0; k + sizeof uid - 1 <= n; k++)
			if (memcmp(c[i].b + k, uid, sizeof uid - 1) == 0)
				c[i].b[k + sizeof uid - 2] = (uint8_t)"013456789"[i < 8 ? i : 8];
	}
	for (i = 0; i < NCONC; i++)
		CHECK(pthread_create(&th[i], NULL, conc_main, &c[i]) == 0);
	for (i = 0; i < NCONC; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NCONC; i++) {
		struct wbuf w;
		struct sink sk;
		char why[256];
		CHECK(c[i].rc == ERR_OK);
		if (c[i].rc != ERR_OK)
			fprintf(stderr, "  store %u: %s\n", (unsigned)i, c[i].why);
		existed += c[i].res.existed;
		wbuf_init(&w, 4 << 20);
		sink_wbuf(&sk, &w);
		CHECK(retrieve_instance(v, c[i].res.sop_uid, &sk, why, sizeof why) == ERR_OK);
		CHECK(w.len == n && memcmp(w.p, c[i].b, n) == 0);
		wbuf_fini(&w);
	}
	CHECK(existed == 1);
	CHECK(strcmp(c[8].res.sop_uid, c[9].res.sop_uid) == 0);
	v->ix_lock = NULL;
	for (i = 0; i < NCONC; i++)
		free(c[i].b);
	free(orig);
}

int main(void)
{
	struct vault_init_opts o;
	struct vault_created res;
	char why[256];
	int rc;

	if (access(PYD "CT_small.dcm", R_OK) != 0) {
		printf("ok - store_test skipped: pydicom test files missing\n");
		return 0;
	}
	snprintf(base, sizeof base, "/tmp/dv_store_test.%d", (int)getpid());
	rm_rf(base);
	mkdir(base, 0700);
	snprintf(dir, sizeof dir, "%s/v", base);
	memset(&o, 0, sizeof o);
	o.dir = dir;
	if (vault_init(&o, &res, why, sizeof why) != ERR_OK || vault_open(dir, NULL, &v, why, sizeof why) != ERR_OK) {
		printf("not ok - vault setup: %s\n", why);
		return 1;
	}
	vault_created_fini(&res);
	RUN(store_and_retrieve_identical);
	RUN(duplicates);
	RUN(refusals);
	RUN(concurrent_stores);
	RUN(no_phi_on_disk);
	RUN(tampered_object_fails);
	vault_close(v);
	rm_rf(base);
	rc = TEST_DONE();
	return rc;
}
