/* vault.h: a vault on disk (SPEC section 1): its directory, key hierarchy,
 * configuration and first administrator. Layer: core. */
#ifndef DICOMVAULT_VAULT_H
#define DICOMVAULT_VAULT_H

#include <pthread.h>
#include <stddef.h>
#include "dicomvault/auth.h"
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"

#define VAULT_PATH_MAX 3072u
#define VAULT_MIN_PASSWORD 12u
#define VAULT_MIN_PASSWORD_TEXT "12"

/* --vault DIR, else $DICOMVAULT_HOME, else ./vault. */
WUR enum err vault_resolve(const char *arg, char *out, size_t cap);

struct vault_init_opts {
	const char *dir;
	const char *admin;            /* default "admin" */
	const char *password_file;    /* NULL: generate one */
	const char *passphrase_file;  /* NULL: a random master key file */
	const char *tls_cert, *tls_key;  /* NULL: self-signed */
};

struct vault_created {
	struct secret *password;      /* generated admin password, or NULL */
	struct secret *totp_uri;      /* otpauth:// URI (holds the seed) */
	struct secret *totp_b32;      /* the TOTP seed, base32 */
	char fingerprint[96];         /* the TLS certificate's SHA-256 */
};

/* Creates the vault; on failure removes what it created and says why. */
WUR enum err vault_init(const struct vault_init_opts *o, struct vault_created *res, char *why, size_t whylen);
/* Removes what vault_init made in dir (a vault just created, nothing
 * stored: init when its secrets could not be shown). Only the files init
 * writes are unlinked, and folders only when that leaves them empty. */
void vault_remove_new(const char *dir);
void vault_created_fini(struct vault_created *res);

struct ini;
struct index_store;
struct blob_store;
struct peers;
struct access_collections;
struct deid_masks;

/* An open vault: its configuration, keys and stores. */
struct vault {
	char dir[VAULT_PATH_MAX];
	struct ini *conf;
	/* the bytes of dicomvault.conf conf was parsed from (serve records
	 * their SHA-256: vault_conf_audit) */
	uint8_t *conf_text;
	size_t conf_len;
	/* The named sections and [auth] of conf, read once by vault_open
	 * (vault_conf_check): every command and listener uses these. */
	struct peers *peers;
	struct access_collections *colls;
	struct deid_masks *masks;
	struct auth_conf auth;
	struct secret *mk;            /* master key */
	struct secret *index_key;     /* keyed hashes of identifying attributes */
	struct secret *audit_sk;      /* Ed25519 signing key of audit checkpoints */
	uint8_t audit_pk[32];
	struct index_store *ix;
	struct blob_store *blobs;
	/* Set by a multi-threaded caller (serve): store_instance and
	 * retrieve_open take it around their index work only. NULL: none. */
	pthread_mutex_t *ix_lock;
};

struct vault_open_opts {
	const char *passphrase_file;  /* for a passphrase vault; NULL: read stdin */
	bool no_check;                /* skip vault_check (tests only) */
	bool refuse_weak;             /* a weak passphrase is refused (serve), not only warned of */
};

/* Checks, reads the configuration, loads the key hierarchy and opens the
 * index and object store. */
WUR enum err vault_open(const char *dir, const struct vault_open_opts *o, struct vault **out, char *why,
                        size_t whylen);
void vault_close(struct vault *v);

/* The vault's audit log (audit_open: it must exist and hold a record),
 * signing with the vault's audit key: what every writer holding the vault
 * opens, before it changes anything. */
struct audit;
WUR enum err vault_audit_open(struct vault *v, struct audit **out);

/* serve's record of the configuration it runs with (SPEC section 8: a
 * configuration change is audited). When the SHA-256 of conf_text is not
 * the one named by the log's newest config-change record among its last
 * VAULT_CONF_SCAN_MAX bytes (or there is none there: the first start, or
 * one after that many bytes of records), appends a config-change record
 * as by: "dicomvault.conf sha256 NEW, was OLD: CHANGES" (or ", none
 * recorded before"), where CHANGES names the sections and keys added (+),
 * removed (-) or changed, never their values, as far as AUDIT_FIELD_MAX
 * allows. They come from a copy of the file last recorded,
 * VAULT_CONF_AUDITED (mode 0600), written after each record and used only
 * if its SHA-256 is OLD: the log, not the copy, decides whether the file
 * changed. ERR_IO: the record could not be written (serve then stops). */
#define VAULT_CONF_SCAN_MAX (8u << 20)
#define VAULT_CONF_AUDITED "audit/dicomvault.conf.audited"
struct audit_actor;
WUR enum err vault_conf_audit(struct vault *v, struct audit *au, const struct audit_actor *by);

/* Crash recovery of the object store (core/recover.c), run by vault_open:
 * removes temporary files of unfinished writes and objects written but
 * never indexed, when no other process has the vault's object store open.
 * *removed: how many files went. */
WUR enum err vault_recover(struct vault *v, unsigned *removed);

/* A path of the configuration, p: itself when absolute, else relative to
 * the vault's folder. 0, or -1 when it does not fit in cap. */
int vault_path(const struct vault *v, const char *p, char *out, size_t cap);
/* The same for the value of [section] key, or def when it is not set. */
int vault_conf_path(const struct vault *v, const char *section, const char *key, const char *def, char *out,
                    size_t cap);

/* dicomvault.conf against what this version reads (vault_open runs it):
 * an unknown section, a key no code reads (a misspelt `idle_timeot` would
 * otherwise leave the default in force unnoticed), or a value of a fixed
 * setting other than the one honoured is ERR_PARSE with the line named;
 * so is a mistake in a [peer], [collection] or [deid "mask"] section, as
 * peers_load, access_collections_load and deid_masks_load find it.
 * dir: the vault's (its keys/ says which master_key is right). */
WUR enum err vault_conf_check(const char *dir, const struct ini *conf, char *why, size_t whylen);

/* Whether dir is there, as a directory: ERR_NOTFOUND with "no vault at
 * DIR: give --vault DIR or set DICOMVAULT_HOME" when it is not (the words
 * every command says when nothing is where it looks: ./vault, by default,
 * from wherever it was typed), ERR_DENIED when it cannot be reached. */
WUR enum err vault_present(const char *dir, char *why, size_t whylen);

/* Checks an existing vault's layout and permissions (serve refuses to start
 * on a vault that fails this); vault_present first. */
WUR enum err vault_check(const char *dir, char *why, size_t whylen);

#endif
