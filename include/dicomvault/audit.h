/* audit.h: the audit trail (SPEC section 8). One JSON line per
 * security-relevant event in DIR/audit/audit.log, appended durably (one
 * write(), then fsync) and chained by SHA-256: each record carries its
 * sequence number, the hash of the previous record and its own hash, so
 * that an edit, a deletion or a reordering is detected by audit_verify().
 * Optional Ed25519-signed checkpoint records bind the chain to the vault's
 * audit key. Format: docs/internals/audit.md. Layer: core.
 *
 * Auditing can fail (disk full, I/O error). audit_append() then returns an
 * error and the caller decides, but a security event must never be lost
 * silently: an operation whose audit record cannot be written fails (or,
 * for a failed login, is refused), and the failure is logged. */
#ifndef DICOMVAULT_AUDIT_H
#define DICOMVAULT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/crypto.h"
#include "dicomvault/err.h"

/* Limits of the audit trail (base/limits.h style). */
#define AUDIT_FIELD_MAX   256u           /* bytes kept of one text field; longer values are cut */
#define AUDIT_LINE_MAX    (64u * 1024)   /* longest line (record) a reader accepts, newline excluded */
#define AUDIT_PATIENTS_PER_RECORD 256u   /* keys of objects.patient_list in one record */
#define AUDIT_ACTION_MAX  32u            /* an action is 1..32 of [a-z0-9-] */
#define AUDIT_CHECKPOINT_EVERY 1000u     /* default records between signed checkpoints */

#define AUDIT_LOG_PATH    "audit/audit.log"   /* relative to the vault directory */
#define AUDIT_HASH_HEX    65u                 /* 64 hex digits and a NUL */
#define AUDIT_SESSION_REF_LEN 17u             /* 16 hex digits and a NUL */

/* An action name: 1..AUDIT_ACTION_MAX of [a-z0-9-]. */
bool audit_action_ok(const char *s);

/* Actions (free-form [a-z0-9-], these are the ones in use). */
#define AUDIT_LOGIN             "login"
#define AUDIT_LOGIN_FAILURE     "login-failure"
#define AUDIT_LOCKOUT           "lockout"
#define AUDIT_LOGOUT            "logout"
#define AUDIT_STORE             "store"
#define AUDIT_QUERY             "query"
#define AUDIT_RETRIEVE          "retrieve"
#define AUDIT_VIEW              "view"
#define AUDIT_EXPORT            "export"
#define AUDIT_SHARE             "share"
#define AUDIT_GRANT             "grant"
#define AUDIT_USER_CHANGE       "user-change"
#define AUDIT_KEY_OPERATION     "key-operation"
#define AUDIT_CONFIG_CHANGE     "config-change"
#define AUDIT_BREAK_GLASS       "break-glass"
#define AUDIT_INTEGRITY_FAILURE "integrity-failure"  /* a stored object failed a tag or fixity check on read */
#define AUDIT_VAULT_INIT        "vault-init"
#define AUDIT_ERASE             "erase"
#define AUDIT_REIDENTIFY        "re-identify"
#define AUDIT_RECOVERY          "audit-recovery"  /* a torn last record cut off after a crash */
#define AUDIT_REANCHOR          "audit-reanchor"  /* the anchor moved to the log's last checkpoint (audit reanchor) */
#define AUDIT_TOKEN_CREATE      "token-create"
#define AUDIT_TOKEN_REVOKE      "token-revoke"
#define AUDIT_TOKEN_REFUSED     "token-refused"   /* a known API token refused (revoked, expired, user disabled) */
#define AUDIT_REQUEST_REFUSED   "request-refused" /* a valid session's request refused before its route (cross-origin) */
#define AUDIT_READ_TRAIL        "audit-read"      /* the audit trail read (GET /api/audit, audit report|export):
                                                     ATNA's Audit Log Used; the command line's are unsigned */
/* The reason of an integrity-failure record, also in the messages of the
 * reads it stopped. */
#define AUDIT_REASON_INTEGRITY "integrity check failed"

/* The reason of a read's failure record for rc: a stored object that
 * failed its authentication (ERR_AUTH) is AUDIT_REASON_INTEGRITY. */
static inline const char *audit_reason_of(enum err rc)
{
	return rc == ERR_AUTH ? AUDIT_REASON_INTEGRITY : err_str(rc);
}

enum audit_outcome {
	AUDIT_SUCCESS = 0,
	AUDIT_FAILURE,      /* the operation failed (error, bad credentials...) */
	AUDIT_DENIED        /* refused by policy (authorisation, lockout) */
};

/* Who acted. Every field may be NULL or empty (then it is left out). The
 * strings are escaped and cut to AUDIT_FIELD_MAX bytes: they may hold
 * attacker-controlled bytes (user agent, user name as typed). */
struct audit_actor {
	const char *user;
	const char *role;
	const char *session;     /* audit_session_ref() of the session, never the token */
	const char *addr;        /* peer address, e.g. "192.0.2.7:51324", or "local" */
	const char *cert;        /* client certificate SHA-256 fingerprint */
	const char *user_agent;
};

/* What was touched. The patient appears only as the index's keyed hash
 * (HMAC-SHA-256 under the index key, as store.c computes it): its type
 * makes it impossible to log a name or an ID in the clear. */
struct audit_objects {
	const uint8_t *patient;  /* 32 bytes, or NULL */
	/* the patients of an answer over several (a query, a retrieve):
	 * npatient_list keys of 32 bytes, written as "patients"; a list longer
	 * than AUDIT_PATIENTS_PER_RECORD goes on in records of the same action
	 * and actor (reason "... (continued: patients I-J of N)") */
	const uint8_t *patient_list;
	size_t npatient_list;
	const char *study_uid;
	const char *series_uid;
	const char *sop_uid;
	const char *object;      /* the stored object's key (a store), or NULL */
	bool counted;            /* write the counts below */
	uint64_t patients, studies, series, instances;
};

struct audit_rec {
	int64_t time_ms;         /* Unix time in ms (UTC); 0: now */
	const char *action;      /* required, 1..AUDIT_ACTION_MAX of [a-z0-9-] */
	enum audit_outcome outcome;
	const char *reason;      /* short reason, optional */
	struct audit_actor actor;
	struct audit_objects objects;
};

struct audit;

/* Opens vault_dir/audit/audit.log for appending. It must exist and hold a
 * record (a vault's log begins with its init's): a missing one is
 * ERR_NOTFOUND and an empty one ERR_DENIED, so that a deleted or emptied
 * log is never replaced by a new chain that would verify. The
 * last record is read and checked so that the chain continues; a log whose
 * last line is damaged (bad hash, truncated) is refused with ERR_PARSE
 * (run `dicomvault audit verify`): appending would hide the damage. One
 * exception: a last line without newline that is the beginning of the next
 * record of the chain is a record whose writer died inside its write()
 * (its append never returned): it is cut off and an audit-recovery record
 * says so (here or at the next append of any process). */
WUR enum err audit_open(const char *vault_dir, struct audit **out);
/* The same for a log file given by path (tests, tools). */
WUR enum err audit_open_path(const char *path, struct audit **out);
/* Creates the log (mode 0600; ERR_DENIED if the file exists) and opens it
 * as audit_open does: only a vault's init, which then appends its record. */
WUR enum err audit_create(const char *vault_dir, struct audit **out);
WUR enum err audit_create_path(const char *path, struct audit **out);

/* Signed checkpoints: after every `every` records (0: AUDIT_CHECKPOINT_EVERY),
 * and on audit_checkpoint() and audit_close(), a "checkpoint" record signed
 * with sk (the vault's audit_sk, Ed25519, borrowed: it must outlive a). */
void audit_set_signer(struct audit *a, const struct secret *sk, const uint8_t pk[SIGN_PK_LEN], unsigned every);

/* Appends one record and returns once it is durable (written with one
 * write() and fsync'd). Thread-safe (a mutex), and safe between processes
 * (flock: the chain continues from whatever another process appended).
 * ERR_PARSE: a bad action; ERR_IO: the record is not in the log. */
WUR enum err audit_append(struct audit *a, const struct audit_rec *r);
/* audit_append in two halves, for a caller with other work to do while
 * its record becomes durable: audit_append_start writes r into the chain
 * and has the syncer thread (started on first use) begin its fsync at
 * once; audit_wait(ticket) returns once it is durable (fsyncing itself if
 * the syncer has not yet). A ticket of 0 (a lazy read record, or a caller
 * without a log: a may then be NULL) waits for nothing. ERR_IO from
 * either: the record may not be durable. */
WUR enum err audit_append_start(struct audit *a, const struct audit_rec *r, uint64_t *ticket);
WUR enum err audit_wait(struct audit *a, uint64_t ticket);
/* An fsync of the log failed: no record is appended or reported durable
 * through a from then on (audit_append and audit_wait fail), so nothing
 * that needs one can succeed until the log is opened again. */
bool audit_broken(struct audit *a);
/* Appends a signed checkpoint now (needs a signer; ERR_INTERNAL without). */
WUR enum err audit_checkpoint(struct audit *a);
/* Writes a last checkpoint if a signer is set and records follow the last
 * one, then closes. Takes NULL. */
void audit_close(struct audit *a);

/* Lazy durability for records of reads (query, retrieve, view): they are
 * written (so they survive the process) before audit_append returns, and
 * fsynced by a background thread within ms milliseconds, or earlier by any
 * other record, which is always fsynced before audit_append returns (an
 * fsync covers every byte before it). A power loss can thus lose at most
 * the last ms of read records; never a record of a change. Off by default;
 * ms in 1..AUDIT_LAZY_MAX_MS. */
#define AUDIT_LAZY_MAX_MS 1000u
#define AUDIT_READ_SYNC_MS_DEFAULT 50   /* serve's default ([audit] read_sync_ms) */
WUR enum err audit_lazy_reads(struct audit *a, unsigned ms);


/* A short, non-reversible reference to a session for the actor.session
 * field: the first 8 bytes of SHA-256("dicomvault-session:" || token) in
 * hex. The token itself never reaches the log. */
void audit_session_ref(const void *token, size_t n, char out[AUDIT_SESSION_REF_LEN]);

/* ---- verification ---- */

enum audit_fault {
	AUDIT_OK = 0,
	AUDIT_BAD_HASH,       /* the record's bytes do not give its hash (edited) */
	AUDIT_BROKEN_LINK,    /* prev is not the hash of the record before (inserted or replaced) */
	AUDIT_SEQ_GAP,        /* seq jumps forward (records deleted) */
	AUDIT_SEQ_ORDER,      /* seq repeats or goes back (reordered or duplicated) */
	AUDIT_UNPARSABLE,     /* not a well-formed record */
	AUDIT_TRUNCATED,      /* the last line has no newline (cut short) */
	AUDIT_LINE_TOO_LONG,  /* a line longer than AUDIT_LINE_MAX */
	AUDIT_BAD_SIGNATURE,  /* a checkpoint whose signature or key does not verify */
	AUDIT_UNSIGNED,       /* (a key given) records no checkpoint covers, more than writers leave */
	AUDIT_NO_INIT,        /* (vault_log) the first record is not the vault's init: a replaced log */
	AUDIT_ANCHOR          /* (a key given) the log disagrees with its signed anchor: cut short or rewritten */
};

/* With a key, verification fails (AUDIT_UNSIGNED) on a log without any
 * checkpoint, empty or not (init signs the first record: the log was
 * emptied, or its checkpoints removed), or with more records after its
 * last checkpoint than any writer
 * leaves (each signs every AUDIT_CHECKPOINT_EVERY records and at close;
 * one that died leaves its interval for the next): this many. */
#define AUDIT_UNSIGNED_MAX (2u * AUDIT_CHECKPOINT_EVERY)

/* A short code ("bad-hash", "broken-link", ...). */
const char *audit_fault_str(enum audit_fault f);

struct json_t;
/* A parsed record's "objects" names one of the n patient keys (64 hex
 * digits each): as its "patient", or in its "patients" list (an answer
 * over several). An accounting of disclosures by patient keeps those. */
bool audit_names_patient(struct json_t *objects, const char (*keys)[65], size_t n);

struct audit_verify_result {
	enum audit_fault fault;       /* AUDIT_OK: the whole log is intact */
	uint64_t records;             /* intact records before the first bad one (all when OK) */
	uint64_t last_seq;            /* seq of the last intact record (0: none) */
	char head[AUDIT_HASH_HEX];    /* hash of the last intact record (64 zeros: none) */
	uint64_t checkpoints;         /* checkpoint records among the intact ones */
	uint64_t last_checkpoint_seq; /* 0: none */
	char last_checkpoint_hash[AUDIT_HASH_HEX];   /* its hash ("" : none) */
	bool signatures_checked;      /* a key was given: every checkpoint's signature verified */
	/* the first bad record, when fault != AUDIT_OK */
	uint64_t bad_line;            /* 1-based line number */
	uint64_t bad_seq;             /* its seq as written (0: unreadable) */
	uint64_t expected_seq;        /* the seq it should have had */
	char detail[192];             /* a sentence saying why */
};

struct audit_verify_opts {
	const uint8_t *pk;            /* audit public key: check checkpoint signatures; NULL: don't */
	/* Called with each intact record (the line, newline included), in order;
	 * a non-zero return stops verification with ERR_IO. */
	int (*on_record)(void *ctx, const char *line, size_t n);
	void *ctx;
	/* a vault's log: seq 1 must be the record of its init (vault-init);
	 * a log begun by anything else is a replacement (AUDIT_NO_INIT) */
	bool vault_log;
	bool no_anchor;               /* the anchor beside the log is not read (audit_reanchor) */
};

/* Reads the log at path line by line (bounded memory) and checks the chain.
 * Returns ERR_OK when the log could be read to its end or to its first bad
 * record (out->fault says which), ERR_NOTFOUND when there is no file,
 * ERR_IO when it cannot be read. An empty file is a valid log of 0 records. */
WUR enum err audit_verify(const char *path, struct audit_verify_result *out);
WUR enum err audit_verify_ex(const char *path, const struct audit_verify_opts *o, struct audit_verify_result *out);

/* For a log whose anchor names a checkpoint it does not hold although
 * nothing was cut from it: a vault restored from a copy taken while it ran
 * (the anchor copied after a checkpoint the log's copy missed). Verifies
 * the log at path with pk, its anchor aside, and if it is intact anchors it
 * anew at its last checkpoint, signed with sk. *old_seq: the seq the
 * anchor named (0: none or unreadable); *res: the verification.
 * ERR_PARSE: the log itself is not intact (nothing written). */
WUR enum err audit_reanchor(const char *path, const struct secret *sk, const uint8_t pk[SIGN_PK_LEN],
                            uint64_t *old_seq, struct audit_verify_result *res);

/* The reason of the newest event record of action among the last max
 * bytes of the log at path (a line cut by that bound is not read), for a
 * writer that continues from what it recorded last (serve's
 * config-change). Only a line whose hash matches its bytes counts: this
 * checks neither the chain nor signatures (that is audit verify's job).
 * *found false: none there (reason untouched). ERR_NOTFOUND: no file. */
WUR enum err audit_last_event(const char *path, const char *action, size_t max, char *reason, size_t cap,
                              bool *found);

/* Reads a public key file (64 hex digits, an optional newline) such as
 * DIR/keys/audit.pub. */
WUR enum err audit_pubkey_read(const char *path, uint8_t pk[SIGN_PK_LEN]);

#endif
