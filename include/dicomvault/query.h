/* query.h: the matching engine of QIDO-RS and C-FIND (PS3.4 C.2.2.2,
 * PS3.18 10.6). A query is a level and an identifier data set (as C-FIND
 * carries it): each element with a value is a match key, each empty one a
 * return key. The index narrows the candidates on what it keeps in the clear
 * or as keyed hashes; every key is then checked on the candidate's
 * decrypted record, so the index filter only ever saves work.
 * Design and matching rules: docs/internals/qido.md. Layer: core.
 *
 * Matching (values in UTF-8 once the identifier's Specific Character Set is
 * applied; records are converted to UTF-8 too):
 *  - single value: exact, case-sensitive; PN is compared ignoring ASCII
 *    case (as the index's name hash is); IS numerically;
 *  - wildcards * and ? for AE CS LO LT PN SH ST UC UR UT (? is one
 *    character, UTF-8 aware); "*" alone, or an empty value, is universal;
 *  - ranges for DA, TM, DT: "a-b", "-b", "a-"; a partial time or date-time
 *    covers its whole precision ("10" is 10:00:00 to 10:59:59.999999);
 *    DT offsets are ignored;
 *  - several values (backslash; the HTTP layer also turns commas of UIDs
 *    into backslashes): any of them matches (UID list matching, C.2.2.2.8);
 *  - a multi-valued record attribute matches if any of its values does;
 *  - sequence: an identifier sequence with one item of keys matches if one
 *    item of the record's sequence matches all of them;
 *  - an attribute the vault does not keep at the query's levels is not
 *    matched (ignored, listed by qry_ignored) but may be asked for. */
#ifndef DICOMVAULT_QUERY_H
#define DICOMVAULT_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/dataset.h"
#include "dicomvault/err.h"
#include "dicomvault/index.h"

struct idx_blob;

enum qry_level { QRY_PATIENT = 0, QRY_STUDY, QRY_SERIES, QRY_INSTANCE };

#define QRY_LEVEL_BIT(l) (1u << (l))

struct qry_opts {
	enum qry_level level;
	/* Levels (QRY_LEVEL_BIT) whose required return keys (PS3.18 Tables
	 * 10.6.3-3 to -5) every result carries; 0: the query's level. */
	unsigned ret_levels;
	bool include_all;              /* every attribute kept, patient to the query's level */
	const uint32_t *include;       /* more return keys (copied) */
	size_t n_include;
	int64_t limit;                 /* results at most; 0: no limit */
	int64_t offset;                /* matches skipped first */
	const char *collection;        /* only this collection; NULL: all (copied) */
	/* Return keys (identifier or include) that the vault does not keep at
	 * the query's level: false, returned empty (C-FIND, PS3.4 C.2.2.1.2);
	 * true, left out and listed by qry_omitted (QIDO-RS: an empty value
	 * would read as "the object has none"). */
	bool omit_unkept;
	/* A sequence key whose item names attributes answers with only the
	 * items that match its item keys, each with only the attributes named
	 * (C-FIND, PS3.4 C.2.2.2.6); false: the stored sequence whole (QIDO-RS,
	 * whose Sequence.Attribute keys and includefield name the sequence). */
	bool seq_items_asked;
	/* Access (docs/ACCESS.md): rows this returns false for are left out
	 * before they are decrypted, matched or counted (so limit and offset
	 * count only what the caller may see). collection and study_uid are
	 * NULL at the patient level. NULL: everything. */
	bool (*allow)(void *ctx, const char *collection, const char *study_uid, const uint8_t patient[32]);
	void *allow_ctx;
	/* At the patient level: the counts of what the caller may see of a
	 * patient that allow() just let through (studies, series, instances),
	 * matched and returned instead of the index's counts over every
	 * collection. Called with allow_ctx; false: the index's. NULL: none. */
	bool (*patient_counts)(void *ctx, const uint8_t patient[32], int64_t n[3]);
	/* At the patient level: a study of the patient that the caller may
	 * see (allow() just let the patient through), whose own copy of the
	 * patient attributes answers and is matched (*uid and *enc, its sealed
	 * set, valid until the next call); false or NULL: the patient row's,
	 * which the patient's first instance wrote, whatever its collection. */
	bool (*patient_study)(void *ctx, const uint8_t patient[32], const char **uid, const struct idx_blob **enc);
};

struct qry;

/* Builds a query from an identifier (not kept). Bad match values (a
 * malformed date or range, a wildcard where the VR has none, a UID that is
 * not digits and dots, too many keys or values): ERR_PARSE or ERR_LIMIT
 * with a reason that names the attribute by tag, never its value. */
WUR enum err qry_new(const struct qry_opts *o, const struct dcm_ds *id, struct qry **out, char *why, size_t whylen);
void qry_free(struct qry *q);

/* Tags of match keys that are not matched (see above). */
size_t qry_ignored(const struct qry *q, const uint32_t **tags);
/* With omit_unkept: the return keys left out, each once. */
size_t qry_omitted(const struct qry *q, const uint32_t **tags);

/* One result. f->ds holds the return keys (Specific Character Set ISO_IR
 * 192); the callback may add to it (e.g. a RetrieveURL). */
struct qry_hit {
	struct dcm_file *f;
	const char *study_uid, *series_uid, *sop_uid;  /* "" above the level */
	const uint8_t *patient;                        /* the patient's keyed hash (32 bytes) */
};

struct qry_stats {
	uint64_t candidates;   /* rows the index gave */
	uint64_t matches;      /* results handed to the callback */
	uint64_t skipped;      /* candidates whose record could not be decrypted (logged) */
	bool truncated;        /* more results matched past the limit */
	bool one_patient;      /* all results are of one patient: patient below */
	uint8_t patient[32];
	/* likewise all of one study, one series, one instance (a retrieve's
	 * record names them as WADO-RS's do); never above the query's level,
	 * where the UIDs are "" */
	bool one_study, one_series, one_sop;
	char study[IDX_UID_MAX + 1], series[IDX_UID_MAX + 1], sop[IDX_UID_MAX + 1];
	/* every patient of the results, once each, in order of first result:
	 * npatients keys of 32 bytes (an audit record's accounting of
	 * disclosures names them all); qry_stats_fini frees them */
	uint8_t *patients;
	size_t npatients;
	uint32_t *pslots_;     /* open addressing over patients (index + 1; 0: free) */
	size_t npslots_;
};

/* Frees what qry_run left in st (the patients); st may be zeroed or filled. */
void qry_stats_fini(struct qry_stats *st);

struct vault;

/* Runs the query: results in index order (by level row id, i.e. ingest
 * order), after offset, at most limit. st is overwritten (zeroed first:
 * qry_stats_fini it after each run). The index is used under
 * v->ix_lock in short batches; decryption happens outside it. fn's error
 * stops the run and is returned. */
WUR enum err qry_run(struct vault *v, const struct qry *q, enum err (*fn)(void *ctx, struct qry_hit *h), void *ctx,
                     struct qry_stats *st);

/* The keyed hashes (store_patient_key) under which records name the
 * patient with Patient ID id (an audit report by patient): with an
 * issuer, that patient's; without, the ID's with no issuer and those of
 * every patient of the index with this ID, whatever its Issuer of Patient
 * ID (an ID with * or ? is taken literally), as the records write them
 * (64 lower-case hex digits). At most max in out; *n set.
 * ERR_PARSE: an empty ID; ERR_LIMIT: more than max (QRY_PATIENT_KEYS_MAX
 * for a report). */
#define QRY_PATIENT_KEYS_MAX 64
WUR enum err qry_patient_keys(struct vault *v, const char *id, const char *issuer, char (*out)[65], size_t max,
                              size_t *n);
/* The 32 bytes of one of qry_patient_keys' keys (64 lower-case hex
 * digits and a NUL); false for anything else. */
bool qry_patient_key_bin(const char hex[65], uint8_t out[32]);

/* ---- the matching rules, for tests and C-FIND ---- */

/* Whether a record (a data set holding the attributes of the query's
 * level and those above it, each in its own Specific Character Set) has
 * every match key of q: what qry_run asks of each candidate's decrypted
 * record. Pure. */
bool qry_match(const struct qry *q, const struct dcm_ds *rec);

/* Wildcard match of pattern p (with * and ?) against s; fold: ASCII case
 * is ignored. */
bool qry_wild_match(const char *p, size_t pn, const char *s, size_t n, bool fold);
/* A DA, TM or DT value as a fixed-width comparable string (DA 8, TM 13
 * "HHMMSS.FFFFFF", DT 21 "YYYYMMDDHHMMSS.FFFFFF"), its missing precision
 * filled as the lowest (upper false) or highest (upper true) instant;
 * false if the value is not valid for the VR. */
bool qry_norm_datetime(uint16_t vr, const char *s, size_t n, bool upper, char out[24]);

/* A PN value's component groups (alphabetic, ideographic, phonetic; PS3.5
 * 6.2), each without its trailing spaces and trailing empty components:
 * PS3.5 lets those delimiters be left out, so "Doe^John^^=" and "Doe^John"
 * are one name. A third '=' and what follows stay in the phonetic group.
 * grouped: the value has a '=' at all. */
struct qry_pn {
	const char *g[3];
	size_t n[3];
	bool grouped;
};
void qry_pn_split(const char *s, size_t n, struct qry_pn *out);
/* s (UTF-8) without case or accents, into out (never longer than n):
 * ASCII letters upper-cased; Latin letters with diacritics as their ASCII
 * base letter (Müller -> MULLER, Łódź -> LODZ); Greek and Cyrillic ones as
 * their upper-case base letter (scripts/gen_pn_fold.py). Anything else,
 * invalid UTF-8 too, is copied as it is. */
size_t qry_pn_fold(const char *s, size_t n, char *out);
/* PN matching (UTF-8, folded by qry_pn_fold) of a key, exact or with
 * wildcards, against a value: a key of one group (no '=') matches any of
 * the value's groups, so that a name asked in one script finds it in
 * whichever group holds that script; a key of several groups matches
 * group by group, its empty groups matching anything. */
bool qry_pn_match(const char *key, size_t kn, bool wild, const char *s, size_t n);

#endif
