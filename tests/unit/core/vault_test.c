/* vault_test.c: creating, checking and opening vaults. Layer: tests. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/crypto.h"
#include "dicomvault/index.h"
#include "dicomvault/vault.h"

static char base[256];

static void rm_rf(const char *p)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "  cleanup failed\n");
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			fprintf(stderr, "  write failed\n");
		fchmod(fd, mode);
		close(fd);
	}
}

static enum err make_vault(const char *name, const char *passfile, char *dir, size_t cap)
{
	struct vault_init_opts o;
	struct vault_created res;
	char why[256];
	enum err rc;

	snprintf(dir, cap, "%s/%s", base, name);
	memset(&o, 0, sizeof o);
	o.dir = dir;
	o.passphrase_file = passfile;
	rc = vault_init(&o, &res, why, sizeof why);
	if (rc != ERR_OK)
		fprintf(stderr, "  init: %s\n", why);
	else
		vault_created_fini(&res);
	return rc;
}

TEST(open_key_file_vault)
{
	char dir[512], why[256];
	struct vault *v = NULL;
	struct idx_user u;

	CHECK(make_vault("a", NULL, dir, sizeof dir) == ERR_OK);
	CHECK(vault_check(dir, why, sizeof why) == ERR_OK);
	CHECK(vault_open(dir, NULL, &v, why, sizeof why) == ERR_OK);
	if (v == NULL) {
		fprintf(stderr, "  %s\n", why);
		return;
	}
	CHECK(v->mk != NULL && v->index_key != NULL && v->audit_sk != NULL);
	CHECK(v->ix->ops->user_get(v->ix, "admin", &u) == ERR_OK);
	CHECK_EQ_STR(u.role, "admin");
	vault_close(v);
}

TEST(check_refuses_loose_permissions)
{
	char dir[512], p[600], why[256];
	struct vault *v = NULL;

	CHECK(make_vault("b", NULL, dir, sizeof dir) == ERR_OK);
	snprintf(p, sizeof p, "%s/keys/master.key", dir);
	chmod(p, 0644);
	CHECK(vault_check(dir, why, sizeof why) == ERR_DENIED);
	CHECK(strstr(why, "master.key") != NULL && strstr(why, "0644") != NULL);
	CHECK(vault_open(dir, NULL, &v, why, sizeof why) == ERR_DENIED && v == NULL);
	chmod(p, 0600);
	chmod(dir, 0755);
	CHECK(vault_check(dir, why, sizeof why) == ERR_DENIED);
	chmod(dir, 0700);
	snprintf(p, sizeof p, "%s/keys", dir);
	chmod(p, 0750);
	CHECK(vault_check(dir, why, sizeof why) == ERR_DENIED);
	chmod(p, 0700);
	CHECK(vault_check(dir, why, sizeof why) == ERR_OK);
}

/* No directory where the vault should be: the words every command says,
 * naming it and how to give another (checking "DIR/." said "DIR/. is
 * missing"); a file there is not taken for one. */
TEST(check_names_a_missing_vault)
{
	char dir[512], why[256], want[600];
	struct vault *v = NULL;
	FILE *f;

	snprintf(dir, sizeof dir, "%s/none", base);
	snprintf(want, sizeof want, "no vault at %s: give --vault DIR or set DICOMVAULT_HOME", dir);
	CHECK(vault_present(dir, why, sizeof why) == ERR_NOTFOUND);
	CHECK_EQ_STR(why, want);
	CHECK(vault_check(dir, why, sizeof why) == ERR_NOTFOUND);
	CHECK_EQ_STR(why, want);
	CHECK(vault_open(dir, NULL, &v, why, sizeof why) == ERR_NOTFOUND && v == NULL);
	CHECK_EQ_STR(why, want);
	snprintf(dir, sizeof dir, "%s/none/deeper", base);
	CHECK(vault_present(dir, why, sizeof why) == ERR_NOTFOUND && strstr(why, "no vault at ") == why);
	snprintf(dir, sizeof dir, "%s/file", base);
	f = fopen(dir, "w");
	CHECK(f != NULL);
	if (f != NULL)
		fclose(f);
	CHECK(vault_check(dir, why, sizeof why) == ERR_NOTFOUND && strstr(why, "(not a directory)") != NULL);
	CHECK(make_vault("p", NULL, dir, sizeof dir) == ERR_OK);
	CHECK(vault_present(dir, why, sizeof why) == ERR_OK);
}

/* Writes the 32-byte master key k into dir's keys/master.key (the DVMK
 * file as init writes it) and returns vault_check's verdict. */
static enum err check_with_key(const char *dir, const uint8_t k[32], char *why, size_t whylen)
{
	char p[600];
	uint8_t file[40] = { 'D', 'V', 'M', 'K', 1 };
	int fd;

	memcpy(file + 8, k, 32);
	snprintf(p, sizeof p, "%s/keys/master.key", dir);
	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, file, sizeof file) == (ssize_t)sizeof file);
		close(fd);
	}
	return vault_check(dir, why, whylen);
}

TEST(check_refuses_zero_key_and_missing_files)
{
	char dir[512], p[600], why[256];
	static const uint8_t zero_key[32];

	CHECK(make_vault("c", NULL, dir, sizeof dir) == ERR_OK);
	CHECK(check_with_key(dir, zero_key, why, sizeof why) == ERR_DENIED);
	CHECK(strstr(why, "all-zero") != NULL);
	snprintf(p, sizeof p, "%s/keys/master.key", dir);
	unlink(p);
	CHECK(vault_check(dir, why, sizeof why) == ERR_DENIED);   /* no master key at all */
	snprintf(p, sizeof p, "%s/index.db", dir);
	unlink(p);
	CHECK(vault_check(dir, why, sizeof why) == ERR_NOTFOUND);
}

/* Hand-made keys are refused as weak: a repeated word (4 distinct bytes),
 * 32 printable characters ("0123456789abcdef" twice: 16 distinct), a
 * counting sequence (32 distinct), a sequence stepping by 7, 17 distinct
 * bytes; drawn ones pass, and so does a key of 18 distinct bytes that is
 * none of these. */
TEST(check_refuses_weak_key)
{
	char dir[512], why[256];
	uint8_t key[32];
	unsigned i, n;

	CHECK(make_vault("w", NULL, dir, sizeof dir) == ERR_OK);
	for (n = 0; n < 5; n++) {
		for (i = 0; i < 32; i++)
			key[i] = n == 0 ? (uint8_t)"word"[i % 4]
			       : n == 1 ? (uint8_t)"0123456789abcdef"[i % 16]
			       : n == 2 ? (uint8_t)i
			       : n == 3 ? (uint8_t)(i * 7 + 1)
			                : (uint8_t)(0x80 + (i * 5) % 17);
		CHECK(check_with_key(dir, key, why, sizeof why) == ERR_DENIED);
		CHECK(strstr(why, "weak key") != NULL);
	}
	for (n = 0; n < 20; n++) {
		CHECK(rand_bytes(key, sizeof key) == ERR_OK);
		CHECK(check_with_key(dir, key, why, sizeof why) == ERR_OK);
	}
	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + (i * 5) % 18);
	CHECK(check_with_key(dir, key, why, sizeof why) == ERR_OK);
}

/* init refuses a passphrase too weak to guard the master key, and creates
 * nothing: too short, fewer than 4 different characters, one word
 * repeated, a run of consecutive characters; drawn digits pass. */
TEST(init_refuses_weak_passphrase)
{
	static const char *const weak[] = {
		"short pass\n", "aaaaaaaaaaaaaaaa\n", "abababababababab\n", "hello1234hello1234hello1234\n",
		"abcdefghijklmnop\n", "0123456789:;<=>?\n",
	};
	char pf[600], dir[512];
	struct stat st;
	unsigned i;

	snprintf(pf, sizeof pf, "%s/weakpass", base);
	for (i = 0; i < sizeof weak / sizeof weak[0]; i++) {
		write_file(pf, weak[i], 0600);
		CHECK(make_vault("weakpp", pf, dir, sizeof dir) == ERR_DENIED);
		CHECK(stat(dir, &st) != 0);
	}
	write_file(pf, "hello1234 hello1234!\n", 0600);   /* a word twice, but not only that */
	CHECK(make_vault("okpp", pf, dir, sizeof dir) == ERR_OK);
	/* drawn digits: 7 different of 10, not degenerate */
	write_file(pf, "91125160991627507292\n", 0600);
	CHECK(make_vault("okdigits", pf, dir, sizeof dir) == ERR_OK);
}

TEST(tampered_wrapped_key)
{
	char dir[512], p[600], why[256];
	struct vault *v = NULL;
	uint8_t b;
	int fd;

	CHECK(make_vault("d", NULL, dir, sizeof dir) == ERR_OK);
	snprintf(p, sizeof p, "%s/keys/index.key", dir);
	fd = open(p, O_RDWR);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pread(fd, &b, 1, 60) == 1);
	b ^= 1;
	CHECK(pwrite(fd, &b, 1, 60) == 1);
	close(fd);
	CHECK(vault_open(dir, NULL, &v, why, sizeof why) == ERR_AUTH);
	CHECK(v == NULL && strstr(why, "unwrap") != NULL);
}

TEST(passphrase_vault)
{
	char dir[512], pf[600], bad[600], why[256];
	struct vault_open_opts o = { 0 };
	struct vault *v = NULL;

	snprintf(pf, sizeof pf, "%s/pass", base);
	write_file(pf, "a long enough passphrase\n", 0600);
	CHECK(make_vault("e", pf, dir, sizeof dir) == ERR_OK);
	o.passphrase_file = pf;
	CHECK(vault_open(dir, &o, &v, why, sizeof why) == ERR_OK);
	vault_close(v);
	v = NULL;
	snprintf(bad, sizeof bad, "%s/bad", base);
	write_file(bad, "another passphrase here\n", 0600);
	o.passphrase_file = bad;
	CHECK(vault_open(dir, &o, &v, why, sizeof why) == ERR_AUTH);
	CHECK(v == NULL && strstr(why, "wrong passphrase") != NULL);
	/* a weak passphrase (a vault made before init refused them): serve
	 * (refuse_weak) refuses it before it derives anything, the others
	 * only warn (here: and find it wrong) */
	write_file(bad, "aaaaaaaaaaaaaaaaaaaa\n", 0600);
	CHECK(vault_open(dir, &o, &v, why, sizeof why) == ERR_AUTH);
	o.refuse_weak = true;
	CHECK(vault_open(dir, &o, &v, why, sizeof why) == ERR_DENIED);
	CHECK(v == NULL && strstr(why, "too weak") != NULL && strstr(why, "aaaa") == NULL);
	o.passphrase_file = pf;
	CHECK(vault_open(dir, &o, &v, why, sizeof why) == ERR_OK);
	vault_close(v);
}

TEST(bad_config_named)
{
	char dir[512], p[600], why[256];
	struct vault *v = NULL;

	CHECK(make_vault("f", NULL, dir, sizeof dir) == ERR_OK);
	snprintf(p, sizeof p, "%s/dicomvault.conf", dir);
	write_file(p, "[http]\nlisten = 1\nlisten = 2\n", 0600);
	CHECK(vault_open(dir, NULL, &v, why, sizeof why) == ERR_PARSE);
	CHECK(strstr(why, "line 3") != NULL);
}

int main(void)
{
	snprintf(base, sizeof base, "/tmp/dv_vault_test.%d", (int)getpid());
	rm_rf(base);
	mkdir(base, 0700);
	RUN(open_key_file_vault);
	RUN(check_refuses_loose_permissions);
	RUN(check_names_a_missing_vault);
	RUN(check_refuses_zero_key_and_missing_files);
	RUN(check_refuses_weak_key);
	RUN(init_refuses_weak_passphrase);
	RUN(tampered_wrapped_key);
	RUN(passphrase_vault);
	RUN(bad_config_named);
	rm_rf(base);
	return TEST_DONE();
}
