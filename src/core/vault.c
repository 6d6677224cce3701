/* vault.c: creating and checking a vault directory: keys/ (0700) holding the
 * master key (file or passphrase record), the wrapped index and audit keys
 * and the TLS key; the configuration; the index with the first admin.
 * Every file is created exclusively (never overwriting), 0600 unless public,
 * and fsync'd with its directory. Layer: core. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dicomvault/access.h"
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/blob.h"
#include "dicomvault/deid.h"
#include "dicomvault/deid_view.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/peers.h"
#include "dicomvault/users.h"
#include "dicomvault/vault.h"
#include "dicomvault/x509.h"

enum err vault_resolve(const char *arg, char *out, size_t cap)
{
	const char *d = arg;

	if (d == NULL || d[0] == 0)
		d = getenv("DICOMVAULT_HOME");
	if (d == NULL || d[0] == 0)
		d = "./vault";
	if (strlen(d) >= cap || strlen(d) >= VAULT_PATH_MAX)
		return ERR_LIMIT;
	snprintf(out, cap, "%s", d);
	return ERR_OK;
}

static enum err path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= cap) ? ERR_LIMIT : ERR_OK;
}

static enum err fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum err rc = ERR_OK;

	if (fd < 0)
		return ERR_IO;
	if (fsync(fd) != 0)
		rc = ERR_IO;
	close(fd);
	return rc;
}

/* Creates dir/name exclusively with the given mode and contents. */
static enum err write_new(const char *dir, const char *name, const void *p, size_t n, mode_t mode)
{
	char path[VAULT_PATH_MAX + 64];
	const uint8_t *b = p;
	enum err rc;
	int fd;

	rc = path_join(path, sizeof path, dir, name);
	if (rc != ERR_OK)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return ERR_IO;
	if (fchmod(fd, mode) != 0)
		rc = ERR_IO;
	while (rc == ERR_OK && n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = ERR_IO;
			break;
		}
		b += w;
		n -= (size_t)w;
	}
	if (rc == ERR_OK && fsync(fd) != 0)
		rc = ERR_IO;
	close(fd);
	if (rc == ERR_OK)
		rc = fsync_path(dir);
	return rc;
}

/* [storage] master_key as init writes it: a key file, or a passphrase
 * record (load_master takes the file when it is there) */
#define MASTER_KEY_FILE "file:keys/master.key"
#define MASTER_KEY_PASS "passphrase:keys/master.pass"

static const char default_conf[] =
	"# dicomvault.conf: written by `dicomvault init`. See SPEC.md section 1.\n"
	"\n"
	"[http]\n"
	"listen = 127.0.0.1:8443\n"
	"cert = keys/tls.crt\n"
	"key = keys/tls.key\n"
	"\n"
	"[dicom]\n"
	"listen = 127.0.0.1:2762\n"
	"ae_title = DICOMVAULT\n"
	"\n"
	"[storage]\n"
	"objects = objects\n"
	"master_key = %s\n"
	"\n"
	"[index]\n"
	"backend = sqlite\n"
	"path = index.db\n"
	"\n"
	"[audit]\n"
	"path = audit\n"
	"\n"
	"[auth]\n"
	"idle_timeout = 900\n"
	"session_lifetime = 43200\n"
	"lockout_failures = 5\n"
	"lockout_window = 900\n"
	"\n"
	"[deid]\n";

static void remove_tree(const char *dir)
{
	static const char *const files[] = {
		"keys/master.key", "keys/master.pass", "keys/index.key", "keys/audit.key", "keys/audit.pub",
		"keys/tls.key", "keys/tls.crt", "index.db", "index.db-wal", "index.db-shm", "dicomvault.conf",
		"audit/audit.log", "audit/audit.log.anchor", "audit/audit.log.anchor.tmp",
	};
	static const char *const dirs[] = { "keys", "objects", "audit" };
	char p[VAULT_PATH_MAX + 64];
	size_t i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++)
		if (path_join(p, sizeof p, dir, files[i]) == ERR_OK)
			unlink(p);
	for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (path_join(p, sizeof p, dir, dirs[i]) == ERR_OK)
			rmdir(p);
	rmdir(dir);
}

enum err vault_audit_open(struct vault *v, struct audit **out)
{
	enum err rc = audit_open(v->dir, out);

	if (rc == ERR_OK && v->audit_sk != NULL)
		audit_set_signer(*out, v->audit_sk, v->audit_pk, 0);
	return rc;
}

void vault_remove_new(const char *dir)
{
	remove_tree(dir);
}

static const char *pass_weakness(const uint8_t *p, size_t n);

/* Why reading path failed with rc, for a message that names the file: the
 * OS's reason (looked for again: the readers keep only an enum err), or
 * for a key file (secret) the mode or owner secret_read_file refuses. */
static const char *read_why(const char *path, enum err rc, bool secret, size_t max, char *buf, size_t cap)
{
	struct stat st;

	if (stat(path, &st) != 0 || access(path, R_OK) != 0)
		snprintf(buf, cap, "%s", strerror(errno));
	else if (S_ISDIR(st.st_mode))
		snprintf(buf, cap, "a folder");
	else if (secret && (st.st_mode & 077))
		snprintf(buf, cap, "mode %04o lets group or other read it (chmod 600 it)", (unsigned)(st.st_mode & 07777));
	else if (secret && st.st_uid != geteuid() && st.st_uid != 0)
		snprintf(buf, cap, "owned by uid %lu, neither us nor root", (unsigned long)st.st_uid);
	else if (rc == ERR_LIMIT)
		snprintf(buf, cap, "larger than %zu bytes", max);
	else if (rc == ERR_PARSE && st.st_size == 0)
		snprintf(buf, cap, "empty");
	else
		snprintf(buf, cap, "%s", err_str(rc));
	return buf;
}

/* Reads the admin password, the passphrase and the TLS material before
 * anything is created, so a bad input leaves no half-made vault. */
static enum err gather(const struct vault_init_opts *o, struct vault_created *res, struct secret **pw,
                       struct secret **pass, struct wbuf *cert, struct wbuf *key, char *why, size_t whylen)
{
	struct secret *tk = NULL;
	const char *weak;
	enum err rc;

	if (o->password_file != NULL) {
		rc = secret_read_file(o->password_file, CRYPTO_PASSWORD_MAX, SECRET_TRIM_NEWLINE, pw);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "cannot use password file %s (it must be mode 0600 and hold the password)",
			               o->password_file);
		if (secret_len(*pw) < VAULT_MIN_PASSWORD)
			return err_why(why, whylen, ERR_DENIED, "the admin password must have at least %u characters",
			               VAULT_MIN_PASSWORD);
	} else {
		rc = users_gen_password(pw);
		if (rc == ERR_OK)
			rc = secret_from_bytes(secret_view(*pw), secret_len(*pw), &res->password);
		if (rc != ERR_OK)
			return rc;
	}
	if (o->passphrase_file != NULL) {
		rc = secret_read_file(o->passphrase_file, CRYPTO_PASSWORD_MAX, SECRET_TRIM_NEWLINE, pass);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "cannot use passphrase file %s (mode 0600)", o->passphrase_file);
		weak = pass_weakness(secret_view(*pass), secret_len(*pass));
		if (weak != NULL)
			return err_why(why, whylen, ERR_DENIED, "the passphrase is too weak to guard the master key: %s",
			               weak);
	}
	if (o->tls_cert != NULL) {
		uint8_t *b = NULL;
		size_t bl = 0;
		char reason[200];
		rc = file_read_all(o->tls_cert, 1 << 20, &b, &bl);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "cannot read the TLS certificate %s: %s", o->tls_cert,
			               read_why(o->tls_cert, rc, false, 1 << 20, reason, sizeof reason));
		wbuf_put(cert, b, bl);
		free(b);
		rc = secret_read_file(o->tls_key, CRYPTO_SECRET_FILE_MAX, 0, &tk);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "cannot read the TLS key %s: %s", o->tls_key,
			               read_why(o->tls_key, rc, true, CRYPTO_SECRET_FILE_MAX, reason, sizeof reason));
		wbuf_put(key, secret_view(tk), secret_len(tk));
		secret_free(tk);
		if (wbuf_err(key) != ERR_OK || wbuf_err(cert) != ERR_OK)
			return ERR_NOMEM;
		{
			/* refused here rather than by every later serve */
			char d[200] = "";
			time_t exp = 0;
			rc = x509_check_pair(cert->p, cert->len, key->p, key->len, &exp, d, sizeof d);
			if (rc == ERR_OK && exp != (time_t)-1 && exp <= time(NULL))
				rc = err_why(d, sizeof d, ERR_DENIED, "the TLS certificate has expired");
			if (rc != ERR_OK)
				return err_why(why, whylen, rc, "%s and %s: %s", o->tls_cert, o->tls_key, d);
		}
	} else {
		rc = x509_self_signed(825, cert, key);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "cannot create a TLS certificate");
	}
	rc = x509_fingerprint(cert->p, cert->len, res->fingerprint);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "the TLS certificate is not a PEM X.509 certificate");
	return ERR_OK;
}

/* The directory: new, or an existing empty one made private. */
static enum err make_dirs(const char *dir, char *keys, size_t keyscap, bool *created, char *why, size_t whylen)
{
	char p[VAULT_PATH_MAX + 64];
	struct stat st;
	enum err rc;
	int i;

	if (mkdir(dir, 0700) == 0) {
		*created = true;
	} else if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = path_join(p, sizeof p, dir, "dicomvault.conf");
		if (rc != ERR_OK || access(p, F_OK) == 0) {
			/* a vault's log begins with its init's record: without
			 * one, an init was cut short (or the log lost) */
			if (rc == ERR_OK && path_join(p, sizeof p, dir, AUDIT_LOG_PATH) == ERR_OK &&
			    (stat(p, &st) != 0 || st.st_size == 0))
				return err_why(why, whylen, ERR_DENIED,
				               "%s already holds a vault, but its audit log has no record: an init that did "
				               "not finish (or a log lost); if you made it and stored nothing in it, remove "
				               "it and run init again",
				               dir);
			return err_why(why, whylen, ERR_DENIED, "%s already holds a vault", dir);
		}
		rc = path_join(p, sizeof p, dir, "keys");
		if (rc != ERR_OK || access(p, F_OK) == 0)
			return err_why(why, whylen, ERR_DENIED, "%s already has a keys directory", dir);
		if (chmod(dir, 0700) != 0)
			return err_why(why, whylen, ERR_IO, "cannot restrict %s to its owner: %s", dir, strerror(errno));
		*created = true;
	} else {
		return err_why(why, whylen, ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	}
	rc = path_join(keys, keyscap, dir, "keys");
	if (rc != ERR_OK)
		return rc;
	if (mkdir(keys, 0700) != 0)
		return err_why(why, whylen, ERR_IO, "cannot create %s: %s", keys, strerror(errno));
	for (i = 0; i < 2; i++) {
		rc = path_join(p, sizeof p, dir, i ? "audit" : "objects");
		if (rc != ERR_OK || mkdir(p, 0700) != 0)
			return err_why(why, whylen, ERR_IO, "cannot create %s", p);
	}
	return fsync_path(dir);
}

/* Master key, wrapped index and audit keys, TLS key and certificate. */
static enum err make_keys(const char *keys, const struct secret *pass, const struct wbuf *cert,
                          const struct wbuf *key, struct secret **mk, struct secret **sk, uint8_t pk[SIGN_PK_LEN])
{
	char p[VAULT_PATH_MAX + 64], pkhex[2 * SIGN_PK_LEN + 2];
	struct secret *k = NULL;
	struct wbuf w;
	size_t i;
	enum err rc;

	if (pass != NULL) {
		uint8_t rec[MK_PASS_REC_LEN];
		rc = mk_pass_create(pass, NULL, rec, mk);
		if (rc == ERR_OK)
			rc = write_new(keys, "master.pass", rec, sizeof rec, 0600);
	} else {
		rc = mk_generate(mk);
		if (rc == ERR_OK)
			rc = path_join(p, sizeof p, keys, "master.key");
		if (rc == ERR_OK)
			rc = mk_file_write(p, *mk);
	}
	if (rc != ERR_OK)
		return rc;
	wbuf_init(&w, 4096);
	rc = secret_random(32, &k);
	if (rc == ERR_OK)
		rc = keywrap_wrap(*mk, "index.key", 9, k, &w);
	if (rc == ERR_OK)
		rc = write_new(keys, "index.key", w.p, w.len, 0600);
	secret_free(k);
	k = NULL;
	wbuf_reset(&w);
	if (rc == ERR_OK)
		rc = secret_random(SIGN_SEED_LEN, &k);
	if (rc == ERR_OK)
		rc = keywrap_wrap(*mk, "audit.key", 9, k, &w);
	if (rc == ERR_OK)
		rc = write_new(keys, "audit.key", w.p, w.len, 0600);
	if (rc == ERR_OK)
		rc = sign_keypair_from_seed(k, pk, sk);
	secret_free(k);
	wbuf_fini(&w);
	if (rc == ERR_OK) {
		for (i = 0; i < SIGN_PK_LEN; i++)
			snprintf(pkhex + 2 * i, 3, "%02x", pk[i]);
		pkhex[2 * SIGN_PK_LEN] = '\n';
		pkhex[2 * SIGN_PK_LEN + 1] = 0;
		rc = write_new(keys, "audit.pub", pkhex, strlen(pkhex), 0644);
	}
	if (rc == ERR_OK)
		rc = write_new(keys, "tls.key", key->p, key->len, 0600);
	if (rc == ERR_OK)
		rc = write_new(keys, "tls.crt", cert->p, cert->len, 0644);
	return rc;
}

/* The index and its first administrator, with a TOTP seed. */
/* The index with its first user, an admin with a grant on everything
 * (which can be revoked later: an administrator need not see patients). */
static enum err make_admin(const char *dir, const char *admin, const struct secret *mk, const struct secret *pw,
                           struct vault_created *res)
{
	char p[VAULT_PATH_MAX + 64];
	struct index_store *ix = NULL;
	struct idx_user u;
	struct idx_grant g;
	enum err rc;

	rc = path_join(p, sizeof p, dir, "index.db");
	if (rc == ERR_OK)
		rc = index_sqlite_open(p, &ix);
	if (rc != ERR_OK)
		return rc;
	rc = users_create(ix, mk, admin, ACCESS_ROLE_ADMIN, pw, 0, NULL, &res->totp_b32, &res->totp_uri);
	if (rc == ERR_OK)
		rc = ix->ops->user_get(ix, admin, &u);
	if (rc == ERR_OK) {
		memset(&g, 0, sizeof g);
		g.user_id = u.id;
		snprintf(g.role, sizeof g.role, "admin");
		snprintf(g.scope, sizeof g.scope, "*");
		snprintf(g.purpose, sizeof g.purpose, "first administrator (init)");
		snprintf(g.created_by, sizeof g.created_by, "init");
		g.created = (int64_t)time(NULL);
		rc = ix->ops->grant_put(ix, &g);
	}
	ix->ops->close(ix);
	return rc;
}

/* The only writer that creates the log: its first record is the init's,
 * signed at once (a vault's log is never without a checkpoint, and one
 * that does not begin so was replaced: audit verify). */
static enum err first_record(const char *dir, const struct secret *ask, const uint8_t apk[SIGN_PK_LEN],
                             const char *admin)
{
	struct audit *a = NULL;
	enum err rc;

	rc = audit_create(dir, &a);
	if (rc != ERR_OK)
		return rc;
	audit_set_signer(a, ask, apk, 0);
	rc = audit_append(a, &(struct audit_rec){ .action = AUDIT_VAULT_INIT,
	                                          .actor = { .user = admin, .role = "admin", .addr = "local" } });
	if (rc == ERR_OK)
		rc = audit_checkpoint(a);
	audit_close(a);
	return rc;
}

enum err vault_init(const struct vault_init_opts *o, struct vault_created *res, char *why, size_t whylen)
{
	const char *dir = o->dir, *admin = o->admin ? o->admin : "admin";
	char keys[VAULT_PATH_MAX + 16], conf[2048];
	struct secret *mk = NULL, *pass = NULL, *pw = NULL, *ask = NULL;
	uint8_t apk[SIGN_PK_LEN];
	struct wbuf cert, key;
	bool created = false;
	size_t n;
	enum err rc = ERR_INTERNAL;

	memset(res, 0, sizeof *res);
	if (why != NULL && whylen > 0)
		why[0] = 0;
	wbuf_init(&cert, 1 << 20);
	wbuf_init(&key, 1 << 20);
	if (!users_name_ok(admin)) {
		rc = err_why(why, whylen, ERR_PARSE, "the admin name must be 1-64 of [A-Za-z0-9._@-]");
		goto out;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		rc = err_why(why, whylen, ERR_PARSE, "--tls-cert and --tls-key go together");
		goto out;
	}
	rc = crypto_init();
	if (rc == ERR_OK)
		rc = gather(o, res, &pw, &pass, &cert, &key, why, whylen);
	if (rc == ERR_OK)
		rc = make_dirs(dir, keys, sizeof keys, &created, why, whylen);
	if (rc != ERR_OK)
		goto out;
	rc = make_keys(keys, pass, &cert, &key, &mk, &ask, apk);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot write the vault's keys in %s", keys);
		goto out;
	}
	n = (size_t)snprintf(conf, sizeof conf, default_conf,
	                     pass ? MASTER_KEY_PASS : MASTER_KEY_FILE);
	rc = write_new(dir, "dicomvault.conf", conf, n, 0600);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot write %s/dicomvault.conf", dir);
		goto out;
	}
	rc = make_admin(dir, admin, mk, pw, res);
	if (rc != ERR_OK)
		err_why(why, whylen, rc, "cannot create the index and its admin user");
	if (rc == ERR_OK && (rc = first_record(dir, ask, apk, admin)) != ERR_OK)
		err_why(why, whylen, rc, "cannot write the first audit record in %s/audit", dir);
out:
	if (rc != ERR_OK) {
		if (created)
			remove_tree(dir);
		vault_created_fini(res);
		if (why != NULL && whylen > 0 && why[0] == 0)
			err_why(why, whylen, rc, "%s", err_str(rc));
	}
	secret_free(mk);
	secret_free(pass);
	secret_free(pw);
	secret_free(ask);
	if (key.p)
		mem_wipe(key.p, key.cap);
	wbuf_fini(&key);
	wbuf_fini(&cert);
	return rc;
}

void vault_created_fini(struct vault_created *res)
{
	secret_free(res->password);
	secret_free(res->totp_uri);
	secret_free(res->totp_b32);
	res->password = res->totp_uri = res->totp_b32 = NULL;
}

/* The file's mode must not grant more than max; owner must be us. */
static enum err check_mode(const char *dir, const char *name, mode_t max, bool need, char *why, size_t whylen)
{
	char p[VAULT_PATH_MAX + 64];
	struct stat st;

	if (path_join(p, sizeof p, dir, name) != ERR_OK)
		return ERR_LIMIT;
	if (lstat(p, &st) != 0) {
		if (!need && errno == ENOENT)
			return ERR_OK;
		return err_why(why, whylen, ERR_NOTFOUND, "%s is missing", p);
	}
	if (S_ISLNK(st.st_mode))
		return err_why(why, whylen, ERR_DENIED, "%s is a symbolic link", p);
	if ((st.st_mode & 07777 & ~max) != 0)
		return err_why(why, whylen, ERR_DENIED, "%s has mode %04o; it must not allow more than %04o", p,
		               (unsigned)(st.st_mode & 07777), (unsigned)max);
	if (st.st_uid != geteuid())
		return err_why(why, whylen, ERR_DENIED, "%s is not owned by the user running dicomvault", p);
	return ERR_OK;
}

/* A 256-bit key drawn at random has about 30 distinct byte values of 32;
 * fewer than 18 happens by chance with a probability of about 10^-13, 32
 * printable ASCII bytes (a typed word, hex digits) of about 10^-14, and a
 * constant step between bytes (a counting sequence) of 256^-31: such a key
 * was made by hand, not drawn (a constant, a repeated word or pattern,
 * text): weak. Only the verdict leaves this function. */
/* The shape of secret bytes p (n of them), and nothing of them: how many
 * distinct values, whether all are printable ASCII, whether consecutive
 * ones differ by one constant step. */
static void secret_shape(const uint8_t *p, size_t n, size_t *distinct, bool *text, bool *step)
{
	uint8_t seen[256] = { 0 };
	size_t i;

	*distinct = 0;
	*text = *step = true;
	for (i = 0; i < n; i++) {
		*distinct += seen[p[i]] == 0;
		seen[p[i]] = 1;
		*text = *text && p[i] >= 0x20 && p[i] < 0x7f;
		*step = *step && (i < 2 || (uint8_t)(p[i] - p[i - 1]) == (uint8_t)(p[1] - p[0]));
	}
	mem_wipe(seen, sizeof seen);
}

static bool mk_looks_random(const uint8_t *k)
{
	size_t distinct;
	bool text, step;

	secret_shape(k, MK_LEN, &distinct, &text, &step);
	return distinct >= 18 && !text && !step;
}

/* Why the passphrase p (n bytes) is too weak to guard the master key, or
 * NULL: shorter than VAULT_MIN_PASSWORD, fewer than 4 different characters
 * ("aaaaaaaaaaaa", "abababab..."), one word repeated ("hello123hello123")
 * or a run with a constant step ("abcdefghijklm", "0123456789ab"): the
 * degenerate ones only, which a drawn passphrase (random digits
 * included: 20 of them often have fewer than 8 different) practically
 * never is. The derivation (Argon2id) slows a guesser down; it does not
 * stop one that tries these first. */
static const char *pass_weakness(const uint8_t *p, size_t n)
{
	size_t i, period, distinct;
	bool text, step;
	const char *why = NULL;

	secret_shape(p, n, &distinct, &text, &step);
	if (n < VAULT_MIN_PASSWORD)
		return "it is shorter than " VAULT_MIN_PASSWORD_TEXT " characters";
	if (distinct < 4)
		why = "it has fewer than 4 different characters";
	else if (step)
		why = "it is a run of consecutive characters";
	for (period = 1; why == NULL && period <= n / 2; period++) {
		for (i = period; i < n && p[i] == p[i - period]; i++)
			;
		if (i == n)
			why = "it is one word repeated";
	}
	return why;
}

enum err vault_present(const char *dir, char *why, size_t whylen)
{
	const char *what = "";
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return ERR_OK;
		what = " (not a directory)";
	} else if (errno != ENOENT && errno != ENOTDIR) {
		return err_why(why, whylen, ERR_DENIED, "cannot reach %s: %s", dir, strerror(errno));
	}
	return err_why(why, whylen, ERR_NOTFOUND, "no vault at %s%s: give --vault DIR or set DICOMVAULT_HOME", dir,
	               what);
}

enum err vault_check(const char *dir, char *why, size_t whylen)
{
	static const struct {
		const char *name;
		mode_t max;
		bool need;
	} files[] = {
		{ ".", 0700, true },           { "keys", 0700, true },          { "dicomvault.conf", 0600, true },
		{ "keys/master.key", 0600, false }, { "keys/master.pass", 0600, false }, { "keys/index.key", 0600, true },
		{ "keys/audit.key", 0600, true },   { "keys/tls.key", 0600, true },      { "index.db", 0600, true },
	};
	char p[VAULT_PATH_MAX + 64];
	bool has_key, has_pass;
	size_t i;
	enum err rc;

	/* checking "." of a directory that is not there said "DIR/. is
	 * missing", which did not tell a new user what to do */
	rc = vault_present(dir, why, whylen);
	for (i = 0; rc == ERR_OK && i < sizeof files / sizeof files[0]; i++)
		rc = check_mode(dir, files[i].name, files[i].max, files[i].need, why, whylen);
	if (rc != ERR_OK)
		return rc;
	has_key = path_join(p, sizeof p, dir, "keys/master.key") == ERR_OK && access(p, F_OK) == 0;
	has_pass = path_join(p, sizeof p, dir, "keys/master.pass") == ERR_OK && access(p, F_OK) == 0;
	if (has_key == has_pass)
		return err_why(why, whylen, ERR_DENIED, "%s/keys must hold exactly one of master.key and master.pass", dir);
	if (has_key) {
		struct secret *mk = NULL;
		static const uint8_t zero[MK_LEN];
		if (path_join(p, sizeof p, dir, "keys/master.key") != ERR_OK)
			return ERR_LIMIT;
		rc = mk_file_read(p, &mk);
		if (rc != ERR_OK)
			return err_why(why, whylen, rc, "%s is not a valid master key file", p);
		if (ct_equal(secret_view(mk), zero, MK_LEN))
			rc = err_why(why, whylen, ERR_DENIED, "%s holds an all-zero (default) key", p);
		else if (!mk_looks_random(secret_view(mk)))
			rc = err_why(why, whylen, ERR_DENIED, "%s holds a weak key (not drawn at random: too few distinct bytes, text or a sequence)", p);
		secret_free(mk);
	}
	return rc;
}

/* Unwraps keys/name (a DVWK blob) under the master key. */
static enum err load_wrapped(const char *dir, const char *name, const struct secret *mk, struct secret **out)
{
	char p[VAULT_PATH_MAX + 64];
	uint8_t *b = NULL;
	size_t n = 0;
	enum err rc;

	rc = path_join(p, sizeof p, dir, name);
	if (rc == ERR_OK)
		rc = file_read_all(p, 4096, &b, &n);
	if (rc == ERR_OK) {
		const char *label = strrchr(name, '/');
		label = label ? label + 1 : name;
		rc = keywrap_unwrap(mk, label, strlen(label), b, n, out);
	}
	free(b);
	return rc;
}

/* The keys of the sections without a name that this version reads; the
 * sections [peer "AE"], [collection "NAME"] and [deid "mask ..."] are
 * checked by their own loaders (conf_named_load). */
static const struct {
	const char *section;
	const char *keys[12];
} conf_keys[] = {
	{ "http", { "listen", "cert", "key", "max_upload_mb", "public_url", "trusted_proxies" } },
	{ "dicom", { "listen", "ae_title", "plain_listen", "max_associations", "max_pdu", "artim", "idle_timeout",
	              "max_find_matches", "stall_timeout" } },
	{ "storage", { "objects", "master_key" } },
	{ "index", { "backend", "path" } },
	{ "audit", { "path", "read_sync_ms" } },
	{ "auth", { "idle_timeout", "session_lifetime", "lockout_failures", "lockout_window", "break_glass_minutes",
	            "jwt_key", "jwt_issuer", "jwt_audience", "jwt_max_lifetime" } },
	{ "deid", { "profile", "project", "escrow_cert" } },
};

/* Keys written by init whose only value this version can honour (the
 * layout is fixed; other backends and places come later): another value
 * would be silently ignored, so it is refused. */
static const struct {
	const char *section, *key, *value, *what;
} conf_fixed[] = {
	{ "storage", "objects", "objects", "objects in the vault directory" },
	{ "index", "backend", "sqlite", "SQLite" },
	{ "index", "path", "index.db", "index.db in the vault directory" },
	{ "audit", "path", "audit", "audit in the vault directory" },
};

/* The named sections, read as serve reads them ([peer "AE"] by
 * peers_load, [collection "NAME"] by access_collections_load, [deid "mask
 * NAME"] by deid_masks_load; none reads a file or needs a key), so that
 * every command that opens the vault refuses the mistakes serve refuses
 * (user, token and import ran on with them, and a mask was read only when
 * a researcher's request needed it). keep: the vault that keeps what was
 * read (vault_open), else it is freed. */
static enum err conf_named_load(const struct ini *conf, struct vault *keep, char *why, size_t whylen)
{
	struct peers *ps = NULL;
	struct access_collections *cs = NULL;
	struct deid_masks *ms = NULL;
	char d[256] = "";
	enum err rc;

	rc = peers_load(conf, &ps, d, sizeof d);
	if (rc == ERR_OK)
		rc = access_collections_load(conf, &cs, d, sizeof d);
	if (rc == ERR_OK)
		rc = deid_masks_load(conf, &ms, d, sizeof d);
	if (rc == ERR_OK && keep != NULL) {
		keep->peers = ps;
		keep->colls = cs;
		keep->masks = ms;
		return ERR_OK;
	}
	peers_free(ps);
	access_collections_free(cs);
	deid_masks_free(ms);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "dicomvault.conf %s", d[0] ? d : err_str(rc));
	return ERR_OK;
}

/* Values read later than the vault's opening, checked now as their
 * readers will read them: [auth] (by serve's auth; break_glass_minutes was
 * read per break-glass, a bad value silently the default) and [deid]
 * profile and project (read per researcher request: a typo made each one
 * fail). */
static enum err conf_values_check(const struct ini *conf, struct auth_conf *ac, char *why, size_t whylen)
{
	const char *profile = ini_get(conf, "deid", NULL, "profile"), *project = ini_get(conf, "deid", NULL, "project");
	unsigned options;
	char d[256] = "";
	enum err rc;

	rc = auth_conf_load(conf, ac, d, sizeof d);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "dicomvault.conf %s", d);
	if (profile != NULL && profile[0] != 0 && deid_parse_profile(profile, &options, d, sizeof d) != ERR_OK)
		return err_why(why, whylen, ERR_PARSE, "dicomvault.conf line %u: [deid] profile: %s",
		               ini_line(conf, "deid", NULL, "profile"), d);
	if (project != NULL && strlen(project) > DEID_PROJECT_MAX)
		return err_why(why, whylen, ERR_PARSE, "dicomvault.conf line %u: [deid] project: a project name is at most "
		               "%u characters", ini_line(conf, "deid", NULL, "project"), DEID_PROJECT_MAX);
	return ERR_OK;
}

/* vault_conf_check; keep (vault_open's vault): what it reads is kept
 * there, else freed. */
static enum err conf_check(const char *dir, const struct ini *conf, struct vault *keep, char *why, size_t whylen)
{
	struct auth_conf ac;
	static const char *const named[] = { "peer", "collection", "deid" };
	size_t i, k, j;
	enum err rc;

	for (i = 0; i < conf->nsections; i++) {
		const struct ini_entry *s = &conf->sections[i];
		bool ok = false;
		if (s->sub != NULL) {
			/* [deid "mask NAME"] is the only named [deid] */
			for (k = 0; k < sizeof named / sizeof named[0]; k++)
				ok = ok || (strcmp(s->section, named[k]) == 0 &&
				            (strcmp(s->section, "deid") != 0 || strncmp(s->sub, "mask ", 5) == 0));
		} else {
			for (k = 0; k < sizeof conf_keys / sizeof conf_keys[0]; k++)
				ok = ok || strcmp(s->section, conf_keys[k].section) == 0;
		}
		if (!ok)
			return err_why(why, whylen, ERR_PARSE,
			               "dicomvault.conf line %u: unknown section [%.40s%s%.60s%s] (sections: http, dicom, "
			               "storage, index, audit, auth, deid, peer \"AE\", collection \"NAME\")",
			               s->line, s->section, s->sub ? " \"" : "", s->sub ? s->sub : "", s->sub ? "\"" : "");
	}
	for (i = 0; i < conf->n; i++) {
		const struct ini_entry *e = &conf->e[i];
		bool ok = false;
		if (e->sub != NULL)
			continue;
		for (k = 0; k < sizeof conf_keys / sizeof conf_keys[0]; k++) {
			if (strcmp(e->section, conf_keys[k].section) != 0)
				continue;
			for (j = 0; j < sizeof conf_keys[k].keys / sizeof conf_keys[k].keys[0] && conf_keys[k].keys[j]; j++)
				ok = ok || strcmp(e->key, conf_keys[k].keys[j]) == 0;
		}
		if (!ok)
			return err_why(why, whylen, ERR_PARSE, "dicomvault.conf line %u: [%s] has no key '%.40s'", e->line,
			               e->section, e->key);
		for (k = 0; k < sizeof conf_fixed / sizeof conf_fixed[0]; k++)
			if (strcmp(e->section, conf_fixed[k].section) == 0 && strcmp(e->key, conf_fixed[k].key) == 0 &&
			    strcmp(e->value, conf_fixed[k].value) != 0)
				return err_why(why, whylen, ERR_PARSE,
				               "dicomvault.conf line %u: [%s] %s = %.60s: this version keeps %s only (%s = %s)",
				               e->line, e->section, e->key, e->value, conf_fixed[k].what, e->key,
				               conf_fixed[k].value);
		if (strcmp(e->section, "storage") == 0 && strcmp(e->key, "master_key") == 0) {
			char p[VAULT_PATH_MAX + 64];
			const char *want;
			if (path_join(p, sizeof p, dir, "keys/master.key") != ERR_OK)
				return ERR_LIMIT;
			want = access(p, F_OK) == 0 ? MASTER_KEY_FILE : MASTER_KEY_PASS;
			if (strcmp(e->value, want) != 0)
				return err_why(why, whylen, ERR_PARSE,
				               "dicomvault.conf line %u: [storage] master_key = %.60s does not describe this "
				               "vault's master key (%s)",
				               e->line, e->value, want);
		}
	}
	rc = conf_named_load(conf, keep, why, whylen);
	return rc != ERR_OK ? rc : conf_values_check(conf, keep != NULL ? &keep->auth : &ac, why, whylen);
}

enum err vault_conf_check(const char *dir, const struct ini *conf, char *why, size_t whylen)
{
	return conf_check(dir, conf, NULL, why, whylen);
}

static enum err load_master(const char *dir, const struct vault_open_opts *o, struct secret **mk, char *why,
                            size_t whylen)
{
	char p[VAULT_PATH_MAX + 64];
	struct secret *pass = NULL;
	const char *weak;
	uint8_t *rec = NULL;
	size_t n = 0;
	enum err rc;

	rc = path_join(p, sizeof p, dir, "keys/master.key");
	if (rc != ERR_OK)
		return rc;
	if (access(p, F_OK) == 0) {
		rc = mk_file_read(p, mk);
		return rc == ERR_OK ? rc : err_why(why, whylen, rc, "cannot read the master key %s", p);
	}
	rc = path_join(p, sizeof p, dir, "keys/master.pass");
	if (rc == ERR_OK)
		rc = file_read_all(p, 4096, &rec, &n);
	if (rc != ERR_OK)
		return err_why(why, whylen, rc, "cannot read %s", p);
	if (o != NULL && o->passphrase_file != NULL)
		rc = secret_read_file(o->passphrase_file, CRYPTO_PASSWORD_MAX, SECRET_TRIM_NEWLINE, &pass);
	else
		rc = secret_from_fd(STDIN_FILENO, CRYPTO_PASSWORD_MAX, SECRET_TRIM_NEWLINE, &pass);
	if (rc == ERR_OK && (weak = pass_weakness(secret_view(pass), secret_len(pass))) != NULL) {
		/* a vault made before init refused such a passphrase: its data can
		 * still be read and exported, but not served */
		if (o != NULL && o->refuse_weak)
			rc = err_why(why, whylen, ERR_DENIED, "the passphrase is too weak to guard the master key (%s): "
			             "not served; export the data into a vault with a strong one", weak);
		else
			log_warn("the passphrase is too weak to guard the master key (%s); serve refuses it", weak);
	}
	if (rc == ERR_OK) {
		rc = mk_pass_open(pass, rec, n, mk);
		if (rc == ERR_AUTH)
			err_why(why, whylen, rc, "wrong passphrase for the master key");
		else if (rc != ERR_OK)
			err_why(why, whylen, rc, "cannot derive the master key from the passphrase");
	} else if (why != NULL && (whylen == 0 || why[0] == 0)) {
		err_why(why, whylen, rc, "cannot read the passphrase");
	}
	secret_free(pass);
	free(rec);
	return rc;
}

enum err vault_open(const char *dir, const struct vault_open_opts *o, struct vault **out, char *why, size_t whylen)
{
	struct vault *v;
	char p[VAULT_PATH_MAX + 64];
	struct secret *seed = NULL, *sk = NULL;
	struct ini_error ie;
	uint8_t *text = NULL;
	size_t n = 0;
	enum err rc;

	if (why != NULL && whylen > 0)
		why[0] = 0;
	if (strlen(dir) >= VAULT_PATH_MAX)
		return err_why(why, whylen, ERR_LIMIT, "vault path too long");
	if (o == NULL || !o->no_check) {
		rc = vault_check(dir, why, whylen);
		if (rc != ERR_OK)
			return rc;
	}
	rc = crypto_init();
	if (rc != ERR_OK)
		return rc;
	v = calloc(1, sizeof *v);
	if (v == NULL)
		return ERR_NOMEM;
	snprintf(v->dir, sizeof v->dir, "%s", dir);
	rc = path_join(p, sizeof p, dir, "dicomvault.conf");
	if (rc == ERR_OK)
		rc = file_read_all(p, INI_MAX_INPUT, &text, &n);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot read %s", p);
		goto out;
	}
	rc = ini_parse(text, n, &v->conf, &ie);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "%s line %u: %s", p, ie.line, ie.msg);
		goto out;
	}
	rc = conf_check(dir, v->conf, v, why, whylen);
	if (rc != ERR_OK)
		goto out;
	rc = load_master(dir, o, &v->mk, why, whylen);
	if (rc != ERR_OK)
		goto out;
	rc = load_wrapped(dir, "keys/index.key", v->mk, &v->index_key);
	if (rc == ERR_OK)
		rc = load_wrapped(dir, "keys/audit.key", v->mk, &seed);
	if (rc == ERR_OK)
		rc = sign_keypair_from_seed(seed, v->audit_pk, &v->audit_sk);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot unwrap the vault's keys (wrong master key or damaged key files)");
		goto out;
	}
	rc = path_join(p, sizeof p, dir, "index.db");
	if (rc == ERR_OK)
		rc = index_sqlite_open(p, &v->ix);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot open the index %s", p);
		goto out;
	}
	rc = path_join(p, sizeof p, dir, "objects");
	if (rc == ERR_OK)
		rc = blob_fs_open(p, &v->blobs);
	if (rc != ERR_OK) {
		err_why(why, whylen, rc, "cannot open the object store %s", p);
		goto out;
	}
	{
		unsigned removed = 0;
		rc = vault_recover(v, &removed);
		if (rc != ERR_OK) {
			err_why(why, whylen, rc, "cannot recover the object store %s after a crash", p);
			goto out;
		}
	}
	v->conf_text = text;   /* kept: serve records its hash */
	v->conf_len = n;
	text = NULL;
	*out = v;
	v = NULL;
	rc = ERR_OK;
out:
	free(text);
	secret_free(seed);
	secret_free(sk);
	vault_close(v);
	return rc;
}

void vault_close(struct vault *v)
{
	if (v != NULL)
		users_forget(v);
	if (v == NULL)
		return;
	if (v->ix != NULL)
		v->ix->ops->close(v->ix);
	if (v->blobs != NULL)
		v->blobs->ops->close(v->blobs);
	peers_free(v->peers);
	access_collections_free(v->colls);
	deid_masks_free(v->masks);
	ini_free(v->conf);
	free(v->conf_text);
	secret_free(v->mk);
	secret_free(v->index_key);
	secret_free(v->audit_sk);
	free(v);
}

int vault_path(const struct vault *v, const char *p, char *out, size_t cap)
{
	int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", v->dir, p);

	return n > 0 && (size_t)n < cap ? 0 : -1;
}

int vault_conf_path(const struct vault *v, const char *section, const char *key, const char *def, char *out,
                    size_t cap)
{
	const char *p = ini_get(v->conf, section, NULL, key);

	return vault_path(v, p == NULL || p[0] == 0 ? def : p, out, cap);
}
