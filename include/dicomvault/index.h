/* index.h: the metadata index seen by core/ only through struct index_ops
 * (STYLE section 1). Identifying attributes never reach the index in the
 * clear: core passes them sealed (enc, an AEAD blob) and as keyed hashes
 * (HMAC-SHA-256 under the index key) for exact matching. What is stored in
 * the clear is what queries need to range over and is not identifying on its
 * own: UIDs, dates, modality, numbers, SOP class, sizes, checksums.
 * Layer: backend. */
#ifndef DICOMVAULT_INDEX_H
#define DICOMVAULT_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/err.h"

#define IDX_UID_MAX 64
/* ModalitiesInStudy as kept: room for every modality code of the
 * standard at once (each at most 16 characters); a study that somehow
 * has more distinct values keeps the first and says so in the log. */
#define IDX_MODALITIES_MAX 1024
#define IDX_HMAC_LEN 32

struct idx_blob {
	const uint8_t *p;
	size_t n;
};

struct idx_patient {
	int64_t id;
	uint8_t key_hmac[IDX_HMAC_LEN];   /* HMAC(PatientID, IssuerOfPatientID) */
	uint8_t name_hmac[IDX_HMAC_LEN];  /* HMAC(PatientName upper-cased as stored): store.c checks with it that an
	                                   * instance names the same patient at its head and its end; queries
	                                   * use pn_hmac */
	uint8_t id_hmac[IDX_HMAC_LEN];    /* HMAC(PatientID) alone, for matching by ID */
	bool has_id;                      /* false: no Patient ID (stored as an empty hash) */
	/* patient_put only: the keyed hashes of the name's component groups
	 * (store_pn_keyed), n_pn of them; pn_any: the name could not be hashed,
	 * the patient is a candidate for every name (as rows from before
	 * schema 3 are) */
	uint8_t pn_hmac[3][IDX_HMAC_LEN];
	unsigned n_pn;
	bool pn_any;
	struct idx_blob wrapped_key;      /* the patient's data key, wrapped */
	struct idx_blob enc;              /* sealed identifying attributes */
};

struct idx_study {
	int64_t id;
	int64_t patient_id;
	char uid[IDX_UID_MAX + 1];
	char collection[IDX_UID_MAX + 1];
	char date[9];                     /* YYYYMMDD or "" */
	char time[17];                    /* HHMMSS.FFFFFF or "" */
	char modalities[IDX_MODALITIES_MAX + 1]; /* backslash-separated, as in ModalitiesInStudy */
	uint8_t accession_hmac[IDX_HMAC_LEN];
	bool has_accession;
	struct idx_blob enc;              /* sealed: accession, description, referring physician, study ID */
	int64_t n_series, n_instances;
};

struct idx_series {
	int64_t id;
	int64_t study_id;
	char uid[IDX_UID_MAX + 1];
	char modality[17];
	int64_t number;                   /* SeriesNumber, -1 if absent */
	struct idx_blob enc;              /* sealed: description, body part... */
	int64_t n_instances;
};

struct idx_instance {
	int64_t id;
	int64_t series_id;
	char uid[IDX_UID_MAX + 1];
	char sop_class[IDX_UID_MAX + 1];
	char ts_uid[IDX_UID_MAX + 1];
	int64_t number;                   /* InstanceNumber, -1 if absent */
	char object_key[65];              /* blob store key */
	uint64_t size;                    /* plaintext bytes */
	uint8_t sha256[32];               /* fixity of the plaintext */
	int64_t created;                  /* unix seconds */
	/* image attributes for QIDO-RS (schema 2); -1 if absent */
	int64_t rows, columns, bits_allocated, frames;
};

/* Study query: every set field must match; strings are exact (the caller
 * does wildcard matching on decrypted candidates). */
struct idx_study_query {
	const char *uid;
	const char *collection;
	const char *date_from, *date_to;  /* inclusive YYYYMMDD; NULL = open */
	const char *modality;             /* one modality contained in the study */
	const uint8_t *patient_key_hmac;
	const uint8_t *patient_name_hmac; /* one of the name's groups (idx_patient.pn_hmac) */
	const uint8_t *accession_hmac;
	int64_t limit, offset;            /* limit 0 = no limit */
};

/* Level query (core/query.c): the rows of one level, each with its parent
 * rows, filtered on what the index holds in the clear or as keyed hashes.
 * The filter is a superset: the caller checks every match key again on the
 * decrypted record. Lists match any of their values; NULL/0 = no filter. */
enum idx_level { IDX_PATIENT = 0, IDX_STUDY, IDX_SERIES, IDX_INSTANCE };

struct idx_list {
	const char *const *v;
	size_t n;
};

struct idx_query {
	enum idx_level level;
	struct idx_list study_uids, series_uids, sop_uids, sop_classes;
	struct idx_list study_modalities;   /* one of them in ModalitiesInStudy */
	struct idx_list modalities;         /* the series' Modality */
	const char *date_from, *date_to;    /* StudyDate, inclusive YYYYMMDD; NULL = open */
	const char *collection;
	const uint8_t *patient_id_hmac;     /* rows stored before schema 2 (no such hash) are candidates too */
	const uint8_t *patient_name_hmac;   /* one of the name's groups; rows from before schema 3 are candidates too */
	const uint8_t *accession_hmac;
	int64_t after;                      /* only rows whose id (at the level) is greater, in id order */
	int64_t max_rows;                   /* > 0 */
};

/* One row: the entity and its parents, down to the level. Blobs point into
 * the index's memory, valid only during the callback (which must not use
 * the index). */
struct idx_qrow {
	struct idx_patient pat;
	struct idx_study st;
	struct idx_series se;
	struct idx_instance in;
	int64_t n_studies, n_series, n_instances;  /* patient level: the patient's counts */
};

struct idx_user {
	int64_t id;
	char name[65];
	char role[17];
	char pwhash[128];                 /* Argon2id encoded */
	struct idx_blob totp_wrapped;     /* TOTP seed wrapped by the master key */
	int64_t totp_last_step;           /* last accepted step (replay guard) */
	int64_t failures;                 /* recent failed logins */
	int64_t locked_until;             /* unix seconds, 0 = not locked */
	bool disabled;
	int64_t expires;                  /* unix seconds, 0 = never */
	int64_t created;
};

/* A login session (core/auth.c). The token itself is never stored: only
 * its HMAC-SHA-256 under a key derived from the index key. */
struct idx_session {
	int64_t id;
	int64_t user_id;
	uint8_t token_hash[IDX_HMAC_LEN];
	int64_t created;                  /* unix seconds */
	int64_t last_seen;                /* unix seconds, for the idle timeout */
	int64_t expires;                  /* unix seconds, absolute end */
	char address[64];                 /* client address at login */
	char ref[17];                     /* audit_session_ref() of its token ("": opened before schema 6) */
	char user_name[65];               /* set by session_get and session_purge (the user's name) */
	char user_role[17];               /* set by session_get and session_purge (the user's role) */
};

/* An API token (core/token.c): a bearer token for a service account or
 * script. As for sessions only its HMAC-SHA-256 is stored (under its own
 * key derived from the index key). No idle timeout: a hard expiry. */
#define IDX_SCOPE_MAX 128
struct idx_token {
	int64_t id;
	int64_t user_id;
	uint8_t token_hash[IDX_HMAC_LEN];
	int64_t created;                  /* unix seconds */
	int64_t expires;                  /* unix seconds, hard end */
	int64_t last_used;                /* unix seconds, 0 = never */
	int64_t revoked;                  /* unix seconds, 0 = not revoked */
	char scope[IDX_SCOPE_MAX + 1];    /* canonical scope string (token_scope_parse) */
	char user_name[65];               /* set by token_get/token_by_id/token_list */
};

/* A grant of access (core/users.c, docs/ACCESS.md): the role a user has
 * over a scope, for a time. Never deleted: revoking sets revoked. */
#define IDX_GRANT_SCOPE_MAX 80u
#define IDX_PURPOSE_MAX 200u
struct idx_grant {
	int64_t id;
	int64_t user_id;
	char role[17];
	char scope[IDX_GRANT_SCOPE_MAX + 1];   /* "*", "collection:NAME", "study:UID", "patient:HEX" */
	uint8_t patient[IDX_HMAC_LEN];         /* a study grant's patient (with_priors), else zeros */
	bool with_priors;
	int64_t not_before;                    /* unix seconds; 0: open */
	int64_t expires;                       /* unix seconds; 0: never */
	char purpose[IDX_PURPOSE_MAX + 1];
	bool break_glass;
	int64_t created;
	char created_by[65];
	int64_t revoked;                       /* unix seconds; 0: in force */
	char user_name[65];                    /* set when read */
};

struct index_store;

struct index_ops {
	const char *name;
	enum err (*begin)(struct index_store *s);     /* write transaction */
	enum err (*commit)(struct index_store *s);
	void (*rollback)(struct index_store *s);
	/* Inside a transaction: a savepoint; release keeps what was done since,
	 * rollback_to undoes it (and releases the savepoint). One level. */
	enum err (*savepoint)(struct index_store *s);
	enum err (*release)(struct index_store *s);
	void (*rollback_to)(struct index_store *s);
	/* Patients by key hash; ERR_NOTFOUND if absent. Blobs in *out stay
	 * valid until the next call on s. */
	enum err (*patient_get)(struct index_store *s, const uint8_t key_hmac[IDX_HMAC_LEN], struct idx_patient *out);
	enum err (*patient_by_id)(struct index_store *s, int64_t id, struct idx_patient *out);
	enum err (*patient_put)(struct index_store *s, struct idx_patient *p);   /* sets p->id */
	/* The name hashes of p (pn_hmac, n_pn, pn_any) that patient p->id has
	 * not got yet: a later study's name is found by an exact name too. */
	enum err (*patient_names_add)(struct index_store *s, const struct idx_patient *p);
	/* Studies and series: insert, or update the stored row for the UID
	 * (counts are maintained by instance_put). Sets ->id. A study UID
	 * already bound to another patient is ERR_DENIED. */
	enum err (*study_put)(struct index_store *s, struct idx_study *st);
	enum err (*series_put)(struct index_store *s, struct idx_series *se);
	/* A new instance; the same SOP Instance UID again is ERR_DENIED
	 * (the caller compares checksums and decides). */
	enum err (*instance_put)(struct index_store *s, struct idx_instance *in);
	enum err (*instance_get)(struct index_store *s, const char *uid, struct idx_instance *out);
	enum err (*study_get)(struct index_store *s, const char *uid, struct idx_study *out);
	enum err (*series_get)(struct index_store *s, const char *uid, struct idx_series *out);
	enum err (*series_by_id)(struct index_store *s, int64_t id, struct idx_series *out);
	enum err (*study_by_id)(struct index_store *s, int64_t id, struct idx_study *out);
	/* Rows in study date order; fn's error stops the walk and is returned. */
	enum err (*study_query)(struct index_store *s, const struct idx_study_query *q,
	                        enum err (*fn)(void *ctx, const struct idx_study *st), void *ctx);
	enum err (*series_list)(struct index_store *s, int64_t study_id,
	                        enum err (*fn)(void *ctx, const struct idx_series *se), void *ctx);
	enum err (*instance_list)(struct index_store *s, int64_t series_id,
	                          enum err (*fn)(void *ctx, const struct idx_instance *in), void *ctx);
	/* Users: a new name (ERR_DENIED if taken); by name (ERR_NOTFOUND);
	 * update of the mutable fields (password, TOTP, counters, flags);
	 * delete of one nothing refers to yet (the undo of a user_put whose
	 * audit record could not be written; a user with grants, sessions or
	 * tokens is kept: the foreign keys refuse). */
	enum err (*user_put)(struct index_store *s, struct idx_user *u);
	enum err (*user_get)(struct index_store *s, const char *name, struct idx_user *out);
	enum err (*user_update)(struct index_store *s, const struct idx_user *u);
	enum err (*user_delete)(struct index_store *s, int64_t id);
	void (*close)(struct index_store *s);
	/* Sessions: a new one (sets se->id); by token hash (ERR_NOTFOUND),
	 * with the user's name; a new last_seen; delete by token hash
	 * (ERR_NOTFOUND if none) or all of a user's; purge up to max of those
	 * whose expires <= now or last_seen <= idle_before, oldest first,
	 * each copied to out (with its user's name and role) and *n set to
	 * their count. */
	enum err (*session_put)(struct index_store *s, struct idx_session *se);
	enum err (*session_get)(struct index_store *s, const uint8_t hash[IDX_HMAC_LEN], struct idx_session *out);
	enum err (*session_touch)(struct index_store *s, int64_t id, int64_t last_seen);
	enum err (*session_delete)(struct index_store *s, const uint8_t hash[IDX_HMAC_LEN]);
	enum err (*session_delete_user)(struct index_store *s, int64_t user_id);
	enum err (*session_purge)(struct index_store *s, int64_t now, int64_t idle_before, struct idx_session *out,
	                          size_t max, size_t *n);
	/* API tokens: a new one (sets t->id; ERR_DENIED if the hash exists);
	 * by token hash or by id (ERR_NOTFOUND), with the user's name; all
	 * in id order (fn's error stops the walk and is returned); a new
	 * last_used; revoke (sets revoked = when if it was 0; ERR_NOTFOUND if
	 * there is no such token, ERR_DENIED if it was already revoked). */
	enum err (*token_put)(struct index_store *s, struct idx_token *t);
	enum err (*token_get)(struct index_store *s, const uint8_t hash[IDX_HMAC_LEN], struct idx_token *out);
	enum err (*token_by_id)(struct index_store *s, int64_t id, struct idx_token *out);
	enum err (*token_list)(struct index_store *s, enum err (*fn)(void *ctx, const struct idx_token *t), void *ctx);
	enum err (*token_touch)(struct index_store *s, int64_t id, int64_t last_used);
	enum err (*token_revoke)(struct index_store *s, int64_t id, int64_t when);
	/* Whether an instance row references this blob store key (crash
	 * recovery of the object store, core/recover.c). */
	enum err (*object_key_used)(struct index_store *s, const char *key, bool *used);
	/* The instance whose object has this key (ERR_NOTFOUND: none). */
	enum err (*instance_by_key)(struct index_store *s, const char *key, struct idx_instance *out);
	/* Removes an instance row, in the open transaction, and its series
	 * and study when it was their last (crash recovery: an instance
	 * indexed whose object did not become durable). */
	enum err (*instance_remove)(struct index_store *s, const char *uid);
	/* Level query (see struct idx_query): rows in id order; fn's error
	 * stops the walk and is returned. */
	enum err (*level_query)(struct index_store *s, const struct idx_query *q,
	                        enum err (*fn)(void *ctx, const struct idx_qrow *row), void *ctx);
	/* Users by id (ERR_NOTFOUND) and all of them in name order (the
	 * wrapped TOTP seed is not read: totp_wrapped is empty). */
	enum err (*user_by_id)(struct index_store *s, int64_t id, struct idx_user *out);
	enum err (*user_list)(struct index_store *s, enum err (*fn)(void *ctx, const struct idx_user *u), void *ctx);
	/* Grants: a new one (sets g->id); by id (ERR_NOTFOUND); of one user
	 * (user_id 0: every user's), in id order, revoked ones only if asked;
	 * revoke (sets revoked = when if it was 0; ERR_NOTFOUND if no such
	 * grant, ERR_DENIED if already revoked). */
	enum err (*grant_put)(struct index_store *s, struct idx_grant *g);
	enum err (*grant_by_id)(struct index_store *s, int64_t id, struct idx_grant *out);
	enum err (*grant_list)(struct index_store *s, int64_t user_id, bool with_revoked,
	                       enum err (*fn)(void *ctx, const struct idx_grant *g), void *ctx);
	enum err (*grant_revoke)(struct index_store *s, int64_t id, int64_t when);
	/* Pseudonymous UIDs handed out by de-identified views, mapped back to
	 * the stored ones: put (an existing pseudo is kept), get (ERR_NOTFOUND). */
	enum err (*pseudo_put)(struct index_store *s, const char *pseudo, const char *real);
	enum err (*pseudo_get)(struct index_store *s, const char *pseudo, char real[IDX_UID_MAX + 1]);
	/* A counter that every grant_put and grant_revoke increments (in
	 * whichever process): equal values mean the grants did not change. */
	enum err (*grants_generation)(struct index_store *s, int64_t *gen);
};

struct index_store {
	const struct index_ops *ops;
};

/* SQLite in WAL mode at path (created 0600 if missing). */
WUR enum err index_sqlite_open(const char *path, struct index_store **out);

#endif
