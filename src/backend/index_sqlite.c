/* index_sqlite.c: the metadata index in SQLite (WAL, synchronous=FULL so a
 * committed transaction survives power loss). Every value is bound as a
 * parameter; SQL text is fixed or assembled only from fixed fragments.
 * Layer: backend. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dicomvault/index.h"
#include "dicomvault/log.h"
#include "dicomvault/wbuf.h"

#define SCRATCH_MAX (64u << 20)
#define LEVEL_CACHE 16u   /* prepared level-query statements kept */

/* An instance row's columns, in read_instance's order (schema 2 adds the
 * image attributes). */
#define INST_COLS "id, series_id, uid, sop_class, ts_uid, number, object_key, size, sha256, created," \
	" img_rows, img_columns, bits_allocated, frames"

enum stmt_id {
	S_PAT_GET, S_PAT_BY_ID, S_PAT_INS,
	S_STUDY_GET, S_STUDY_INS, S_STUDY_UPD,
	S_SERIES_GET, S_SERIES_INS, S_SERIES_UPD,
	S_INST_GET, S_INST_INS, S_SERIES_COUNT, S_STUDY_COUNT, S_STUDY_NSERIES,
	S_SERIES_LIST, S_INST_LIST,
	S_USER_INS, S_USER_GET, S_USER_UPD, S_USER_DEL, S_SERIES_BY_ID, S_STUDY_BY_ID,
	S_SESS_INS, S_SESS_GET, S_SESS_TOUCH, S_SESS_DEL, S_SESS_DEL_USER, S_SESS_ENDED, S_SESS_DEL_ID,
	S_PN_INS,
	S_PN_ADD,
	S__COUNT
};

/* a session's columns and its user's name and role (read_session) */
#define SESS_COLS "s.id, s.user_id, s.token_hash, s.created, s.last_seen, s.expires, s.address, s.ref, u.name, u.role" \
                  " FROM sessions s JOIN users u ON u.id = s.user_id"

static const char *const stmt_sql[S__COUNT] = {
	[S_PAT_GET] = "SELECT id, key_hmac, name_hmac, wrapped_key, enc FROM patients WHERE key_hmac = ?1",
	[S_PAT_BY_ID] = "SELECT id, key_hmac, name_hmac, wrapped_key, enc FROM patients WHERE id = ?1",
	[S_PAT_INS] = "INSERT INTO patients (key_hmac, name_hmac, wrapped_key, enc, id_hmac) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_STUDY_GET] = "SELECT id, patient_id, uid, collection, date, time, modalities, accession_hmac, enc,"
	                " n_series, n_instances FROM studies WHERE uid = ?1",
	[S_STUDY_INS] = "INSERT INTO studies (patient_id, uid, collection, date, time, modalities, accession_hmac, enc)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_STUDY_UPD] = "UPDATE studies SET date = ?2, time = ?3, modalities = ?4, accession_hmac = ?5, enc = ?6"
	                " WHERE id = ?1",
	[S_SERIES_GET] = "SELECT id, study_id, uid, modality, number, enc, n_instances FROM series WHERE uid = ?1",
	[S_SERIES_INS] = "INSERT INTO series (study_id, uid, modality, number, enc) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_SERIES_UPD] = "UPDATE series SET modality = ?2, number = ?3, enc = ?4 WHERE id = ?1",
	[S_INST_GET] = "SELECT " INST_COLS " FROM instances WHERE uid = ?1",
	[S_INST_INS] = "INSERT INTO instances (series_id, uid, sop_class, ts_uid, number, object_key, size, sha256, created,"
	               " img_rows, img_columns, bits_allocated, frames)"
	               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[S_SERIES_COUNT] = "UPDATE series SET n_instances = n_instances + 1 WHERE id = ?1",
	[S_STUDY_COUNT] = "UPDATE studies SET n_instances = n_instances + 1 WHERE id = (SELECT study_id FROM series WHERE id = ?1)",
	[S_STUDY_NSERIES] = "UPDATE studies SET n_series = n_series + 1 WHERE id = ?1",
	[S_SERIES_LIST] = "SELECT id, study_id, uid, modality, number, enc, n_instances FROM series WHERE study_id = ?1"
	                  " ORDER BY number, uid",
	[S_INST_LIST] = "SELECT " INST_COLS " FROM instances WHERE series_id = ?1 ORDER BY number, uid",
	[S_SERIES_BY_ID] = "SELECT id, study_id, uid, modality, number, enc, n_instances FROM series WHERE id = ?1",
	[S_STUDY_BY_ID] = "SELECT id, patient_id, uid, collection, date, time, modalities, accession_hmac, enc,"
	                  " n_series, n_instances FROM studies WHERE id = ?1",
	[S_USER_INS] = "INSERT INTO users (name, role, pwhash, totp_wrapped, totp_last_step, failures, locked_until,"
	               " disabled, expires, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[S_USER_GET] = "SELECT id, name, role, pwhash, totp_wrapped, totp_last_step, failures, locked_until, disabled,"
	               " expires, created FROM users WHERE name = ?1",
	[S_USER_UPD] = "UPDATE users SET role = ?2, pwhash = ?3, totp_wrapped = ?4, totp_last_step = ?5, failures = ?6,"
	               " locked_until = ?7, disabled = ?8, expires = ?9 WHERE id = ?1",
	[S_USER_DEL] = "DELETE FROM users WHERE id = ?1",
	[S_SESS_INS] = "INSERT INTO sessions (user_id, token_hash, created, last_seen, expires, address, ref)"
	               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_SESS_GET] = "SELECT " SESS_COLS " WHERE s.token_hash = ?1",
	[S_SESS_TOUCH] = "UPDATE sessions SET last_seen = ?2 WHERE id = ?1",
	[S_SESS_DEL] = "DELETE FROM sessions WHERE token_hash = ?1",
	[S_SESS_DEL_USER] = "DELETE FROM sessions WHERE user_id = ?1",
	[S_SESS_ENDED] = "SELECT " SESS_COLS " WHERE s.expires <= ?1 OR s.last_seen <= ?2 ORDER BY s.id LIMIT ?3",
	[S_SESS_DEL_ID] = "DELETE FROM sessions WHERE id = ?1",
	[S_PN_INS] = "INSERT INTO patient_names (patient_id, hmac) VALUES (?1, ?2)",
	[S_PN_ADD] = "INSERT INTO patient_names (patient_id, hmac) SELECT ?1, ?2 WHERE NOT EXISTS"
	             " (SELECT 1 FROM patient_names WHERE patient_id = ?1 AND hmac = ?2)",
};

/* A patient whose name has a group of this hash, or whose name has no
 * usable hashes (x'': rows from before schema 4, names store.c could not
 * hash whole). */
#define PN_MATCH(col) " AND " col " IN (SELECT patient_id FROM patient_names WHERE hmac IN (?%d, x''))"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS patients ("
	" id INTEGER PRIMARY KEY, key_hmac BLOB NOT NULL UNIQUE, name_hmac BLOB NOT NULL,"
	" wrapped_key BLOB NOT NULL, enc BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS studies ("
	" id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id),"
	" uid TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, date TEXT NOT NULL, time TEXT NOT NULL,"
	" modalities TEXT NOT NULL, accession_hmac BLOB, enc BLOB NOT NULL,"
	" n_series INTEGER NOT NULL DEFAULT 0, n_instances INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS studies_date ON studies(date, time);"
	"CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);"
	"CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession_hmac);"
	"CREATE TABLE IF NOT EXISTS series ("
	" id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),"
	" uid TEXT NOT NULL UNIQUE, modality TEXT NOT NULL, number INTEGER NOT NULL, enc BLOB NOT NULL,"
	" n_instances INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS series_study ON series(study_id);"
	"CREATE TABLE IF NOT EXISTS instances ("
	" id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL REFERENCES series(id),"
	" uid TEXT NOT NULL UNIQUE, sop_class TEXT NOT NULL, ts_uid TEXT NOT NULL, number INTEGER NOT NULL,"
	" object_key TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, sha256 BLOB NOT NULL, created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS instances_series ON instances(series_id);"
	"CREATE TABLE IF NOT EXISTS users ("
	" id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, pwhash TEXT NOT NULL,"
	" totp_wrapped BLOB NOT NULL, totp_last_step INTEGER NOT NULL, failures INTEGER NOT NULL,"
	" locked_until INTEGER NOT NULL, disabled INTEGER NOT NULL, expires INTEGER NOT NULL, created INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', '1');"
	"CREATE TABLE IF NOT EXISTS sessions ("
	" id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), token_hash BLOB NOT NULL UNIQUE,"
	" created INTEGER NOT NULL, last_seen INTEGER NOT NULL, expires INTEGER NOT NULL, address TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);";

/* API tokens (core/token.c) and object store recovery (core/recover.c):
 * statements and table of their own. */
enum tok_stmt_id {
	T_INS, T_GET, T_BY_ID, T_LIST, T_TOUCH, T_REVOKE, T_OBJ_USED,
	T_INST_BY_KEY, T_INST_DEL, T_SERIES_UNCOUNT, T_STUDY_UNCOUNT, T_SERIES_DEL_EMPTY, T_STUDY_UNSERIES,
	T_STUDY_DEL_EMPTY,
	T__COUNT
};

#define TOK_COLS "t.id, t.user_id, t.token_hash, t.created, t.expires, t.last_used, t.revoked, t.scope, u.name" \
	" FROM api_tokens t JOIN users u ON u.id = t.user_id"

static const char *const tok_sql[T__COUNT] = {
	[T_INS] = "INSERT INTO api_tokens (user_id, token_hash, created, expires, last_used, revoked, scope)"
	          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[T_GET] = "SELECT " TOK_COLS " WHERE t.token_hash = ?1",
	[T_BY_ID] = "SELECT " TOK_COLS " WHERE t.id = ?1",
	[T_LIST] = "SELECT " TOK_COLS " ORDER BY t.id",
	[T_TOUCH] = "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1",
	[T_REVOKE] = "UPDATE api_tokens SET revoked = ?2 WHERE id = ?1 AND revoked = 0",
	[T_OBJ_USED] = "SELECT 1 FROM instances WHERE object_key = ?1",
	[T_INST_BY_KEY] = "SELECT " INST_COLS " FROM instances WHERE object_key = ?1",
	[T_INST_DEL] = "DELETE FROM instances WHERE id = ?1",
	[T_SERIES_UNCOUNT] = "UPDATE series SET n_instances = n_instances - 1 WHERE id = ?1",
	[T_STUDY_UNCOUNT] = "UPDATE studies SET n_instances = n_instances - 1"
	                    " WHERE id = (SELECT study_id FROM series WHERE id = ?1)",
	[T_SERIES_DEL_EMPTY] = "DELETE FROM series WHERE id = ?1 AND n_instances <= 0"
	                       " AND NOT EXISTS (SELECT 1 FROM instances WHERE series_id = ?1)",
	[T_STUDY_UNSERIES] = "UPDATE studies SET n_series = n_series - 1 WHERE id = ?1",
	[T_STUDY_DEL_EMPTY] = "DELETE FROM studies WHERE id = ?1 AND n_series <= 0"
	                      " AND NOT EXISTS (SELECT 1 FROM series WHERE study_id = ?1)",
};

static const char tok_schema[] =
	"CREATE TABLE IF NOT EXISTS api_tokens ("
	" id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), token_hash BLOB NOT NULL UNIQUE,"
	" created INTEGER NOT NULL, expires INTEGER NOT NULL, last_used INTEGER NOT NULL DEFAULT 0,"
	" revoked INTEGER NOT NULL DEFAULT 0, scope TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens(user_id);";

/* Users by id and in a list, and grants (core/users.c): statements and
 * table of their own. */
enum grant_stmt_id {
	G_USER_BY_ID, G_USER_LIST, G_INS, G_BY_ID, G_LIST_USER, G_LIST_USER_ALL, G_LIST, G_LIST_ALL, G_REVOKE,
	G_PSEUDO_PUT, G_PSEUDO_GET, G_GEN_GET, G_GEN_BUMP,
	G__COUNT
};

#define USER_COLS "id, name, role, pwhash, totp_last_step, failures, locked_until, disabled, expires, created"
#define GRANT_COLS "g.id, g.user_id, g.role, g.scope, g.patient, g.with_priors, g.not_before, g.expires, g.purpose," \
	" g.break_glass, g.created, g.created_by, g.revoked, u.name FROM grants g JOIN users u ON u.id = g.user_id"

static const char *const grant_sql[G__COUNT] = {
	[G_USER_BY_ID] = "SELECT " USER_COLS " FROM users WHERE id = ?1",
	[G_USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY name",
	[G_INS] = "INSERT INTO grants (user_id, role, scope, patient, with_priors, not_before, expires, purpose,"
	          " break_glass, created, created_by, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)",
	[G_BY_ID] = "SELECT " GRANT_COLS " WHERE g.id = ?1",
	[G_LIST_USER] = "SELECT " GRANT_COLS " WHERE g.user_id = ?1 AND g.revoked = 0 ORDER BY g.id",
	[G_LIST_USER_ALL] = "SELECT " GRANT_COLS " WHERE g.user_id = ?1 ORDER BY g.id",
	[G_LIST] = "SELECT " GRANT_COLS " WHERE g.revoked = 0 ORDER BY g.id",
	[G_LIST_ALL] = "SELECT " GRANT_COLS " ORDER BY g.id",
	[G_REVOKE] = "UPDATE grants SET revoked = ?2 WHERE id = ?1 AND revoked = 0",
	[G_PSEUDO_PUT] = "INSERT OR IGNORE INTO pseudo_uids (pseudo, real) VALUES (?1, ?2)",
	[G_PSEUDO_GET] = "SELECT real FROM pseudo_uids WHERE pseudo = ?1",
	[G_GEN_GET] = "SELECT CAST(v AS INTEGER) FROM meta WHERE k = 'grants_gen'",
	[G_GEN_BUMP] = "UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'grants_gen'",
};

static const char grant_schema[] =
	"CREATE TABLE IF NOT EXISTS grants ("
	" id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), role TEXT NOT NULL,"
	" scope TEXT NOT NULL, patient BLOB, with_priors INTEGER NOT NULL DEFAULT 0,"
	" not_before INTEGER NOT NULL DEFAULT 0, expires INTEGER NOT NULL DEFAULT 0, purpose TEXT NOT NULL DEFAULT '',"
	" break_glass INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, created_by TEXT NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS grants_user ON grants(user_id, revoked);"
	"CREATE TABLE IF NOT EXISTS pseudo_uids (pseudo TEXT PRIMARY KEY, real TEXT NOT NULL) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta (k, v) VALUES ('grants_gen', '0');";

struct sq_store {
	struct index_store base;
	sqlite3 *db;
	sqlite3_stmt *st[S__COUNT];
	sqlite3_stmt *tok[T__COUNT];   /* API token statements */
	sqlite3_stmt *gr[G__COUNT];    /* user list and grant statements */
	struct wbuf scratch[2];
	bool in_tx;
	sqlite3_stmt *lq[LEVEL_CACHE];   /* level queries, by SQL text */
	unsigned lq_next;
};

static enum err db_err(struct sq_store *s, int rc, const char *what)
{
	if (rc == SQLITE_CONSTRAINT)
		return ERR_DENIED;
	if (rc == SQLITE_NOMEM)
		return ERR_NOMEM;
	log_error("index %s: %s", what, sqlite3_errmsg(s->db));
	return ERR_IO;
}

static sqlite3_stmt *stmt(struct sq_store *s, enum stmt_id id)
{
	sqlite3_reset(s->st[id]);
	sqlite3_clear_bindings(s->st[id]);
	return s->st[id];
}

/* Copies a column blob into scratch buffer k (valid until the next call). */
static enum err col_blob(struct sq_store *s, sqlite3_stmt *q, int col, unsigned k, struct idx_blob *out)
{
	const void *p = sqlite3_column_blob(q, col);
	int n = sqlite3_column_bytes(q, col);

	wbuf_reset(&s->scratch[k]);
	if (n > 0)
		wbuf_put(&s->scratch[k], p, (size_t)n);
	if (wbuf_err(&s->scratch[k]) != ERR_OK)
		return wbuf_err(&s->scratch[k]);
	out->p = n > 0 ? s->scratch[k].p : (const uint8_t *)"";
	out->n = (size_t)n;
	return ERR_OK;
}

static void col_text(sqlite3_stmt *q, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(q, col);
	int n = sqlite3_column_bytes(q, col);

	if (t == NULL || n < 0 || (size_t)n >= cap)
		n = 0;
	if (n > 0)
		memcpy(out, t, (size_t)n);
	out[n] = 0;
}

static void col_hmac(sqlite3_stmt *q, int col, uint8_t out[IDX_HMAC_LEN], bool *present)
{
	const void *p = sqlite3_column_blob(q, col);
	int n = sqlite3_column_bytes(q, col);

	if (p != NULL && n == IDX_HMAC_LEN) {
		memcpy(out, p, IDX_HMAC_LEN);
		if (present)
			*present = true;
	} else {
		memset(out, 0, IDX_HMAC_LEN);
		if (present)
			*present = false;
	}
}

static enum err sq_begin(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_err(s, rc, "begin");
	s->in_tx = true;
	return ERR_OK;
}

static enum err sq_commit(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		enum err e = db_err(s, rc, "commit");
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->in_tx = false;
		return e;
	}
	s->in_tx = false;
	return ERR_OK;
}

static void sq_rollback(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;

	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = false;
}

static enum err sq_savepoint(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;
	int rc = sqlite3_exec(s->db, "SAVEPOINT one", NULL, NULL, NULL);

	return rc == SQLITE_OK ? ERR_OK : db_err(s, rc, "savepoint");
}

static enum err sq_release(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;
	int rc = sqlite3_exec(s->db, "RELEASE one", NULL, NULL, NULL);

	return rc == SQLITE_OK ? ERR_OK : db_err(s, rc, "release");
}

static void sq_rollback_to(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;

	sqlite3_exec(s->db, "ROLLBACK TO one; RELEASE one", NULL, NULL, NULL);
}

static enum err read_patient(struct sq_store *s, sqlite3_stmt *q, struct idx_patient *out)
{
	enum err rc;

	out->id = sqlite3_column_int64(q, 0);
	col_hmac(q, 1, out->key_hmac, NULL);
	col_hmac(q, 2, out->name_hmac, NULL);
	rc = col_blob(s, q, 3, 0, &out->wrapped_key);
	if (rc == ERR_OK)
		rc = col_blob(s, q, 4, 1, &out->enc);
	return rc;
}

static enum err step_one(struct sq_store *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);

	if (rc == SQLITE_ROW)
		return ERR_OK;
	if (rc == SQLITE_DONE)
		return ERR_NOTFOUND;
	return db_err(s, rc, what);
}

static enum err sq_patient_get(struct index_store *bs, const uint8_t key_hmac[IDX_HMAC_LEN], struct idx_patient *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_PAT_GET);
	enum err rc;

	sqlite3_bind_blob(q, 1, key_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	rc = step_one(s, q, "patient_get");
	if (rc == ERR_OK)
		rc = read_patient(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_patient_by_id(struct index_store *bs, int64_t id, struct idx_patient *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_PAT_BY_ID);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = step_one(s, q, "patient_by_id");
	if (rc == ERR_OK)
		rc = read_patient(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err exec_done(struct sq_store *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return db_err(s, rc, what);
	return ERR_OK;
}

/* The name's group hashes of p (or the empty hash, pn_any) for patient
 * p->id, by statement id (S_PN_INS, or S_PN_ADD: those it has not got). */
static enum err pn_insert(struct sq_store *s, const struct idx_patient *p, enum stmt_id id)
{
	sqlite3_stmt *q;
	unsigned i;
	enum err rc = ERR_OK;

	for (i = 0; rc == ERR_OK && i < p->n_pn + p->pn_any && i < 4; i++) {
		q = stmt(s, id);
		sqlite3_bind_int64(q, 1, p->id);
		sqlite3_bind_blob(q, 2, i < p->n_pn ? p->pn_hmac[i] : (const uint8_t *)"", i < p->n_pn ? IDX_HMAC_LEN : 0,
		                  SQLITE_STATIC);
		rc = exec_done(s, q, "patient names");
	}
	return rc;
}

static enum err sq_patient_put(struct index_store *bs, struct idx_patient *p)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_PAT_INS);
	enum err rc;

	sqlite3_bind_blob(q, 1, p->key_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(q, 2, p->name_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(q, 3, p->wrapped_key.p, (int)p->wrapped_key.n, SQLITE_STATIC);
	sqlite3_bind_blob(q, 4, p->enc.p, (int)p->enc.n, SQLITE_STATIC);
	/* no Patient ID: an empty hash (NULL is a row from before schema 2) */
	sqlite3_bind_blob(q, 5, p->id_hmac, p->has_id ? IDX_HMAC_LEN : 0, SQLITE_STATIC);
	rc = exec_done(s, q, "patient_put");
	if (rc != ERR_OK)
		return rc;
	p->id = sqlite3_last_insert_rowid(s->db);
	return pn_insert(s, p, S_PN_INS);
}

static enum err sq_patient_names_add(struct index_store *bs, const struct idx_patient *p)
{
	return pn_insert((struct sq_store *)bs, p, S_PN_ADD);
}

static enum err read_study(struct sq_store *s, sqlite3_stmt *q, struct idx_study *out)
{
	out->id = sqlite3_column_int64(q, 0);
	out->patient_id = sqlite3_column_int64(q, 1);
	col_text(q, 2, out->uid, sizeof out->uid);
	col_text(q, 3, out->collection, sizeof out->collection);
	col_text(q, 4, out->date, sizeof out->date);
	col_text(q, 5, out->time, sizeof out->time);
	col_text(q, 6, out->modalities, sizeof out->modalities);
	col_hmac(q, 7, out->accession_hmac, &out->has_accession);
	out->n_series = sqlite3_column_int64(q, 9);
	out->n_instances = sqlite3_column_int64(q, 10);
	return col_blob(s, q, 8, 0, &out->enc);
}

static enum err sq_study_get(struct index_store *bs, const char *uid, struct idx_study *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_STUDY_GET);
	enum err rc;

	sqlite3_bind_text(q, 1, uid, -1, SQLITE_STATIC);
	rc = step_one(s, q, "study_get");
	if (rc == ERR_OK)
		rc = read_study(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static void bind_hmac(sqlite3_stmt *q, int i, const uint8_t *h, bool present)
{
	if (present)
		sqlite3_bind_blob(q, i, h, IDX_HMAC_LEN, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

static enum err sq_study_put(struct index_store *bs, struct idx_study *st)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct idx_study cur;
	sqlite3_stmt *q;
	enum err rc;

	rc = sq_study_get(bs, st->uid, &cur);
	if (rc == ERR_OK) {
		if (cur.patient_id != st->patient_id)
			return ERR_DENIED;
		q = stmt(s, S_STUDY_UPD);
		sqlite3_bind_int64(q, 1, cur.id);
		sqlite3_bind_text(q, 2, st->date, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, st->time, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, st->modalities, -1, SQLITE_STATIC);
		bind_hmac(q, 5, st->accession_hmac, st->has_accession);
		sqlite3_bind_blob(q, 6, st->enc.p, (int)st->enc.n, SQLITE_STATIC);
		rc = exec_done(s, q, "study_update");
		if (rc == ERR_OK)
			st->id = cur.id;
		return rc;
	}
	if (rc != ERR_NOTFOUND)
		return rc;
	q = stmt(s, S_STUDY_INS);
	sqlite3_bind_int64(q, 1, st->patient_id);
	sqlite3_bind_text(q, 2, st->uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, st->collection, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, st->date, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, st->time, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, st->modalities, -1, SQLITE_STATIC);
	bind_hmac(q, 7, st->accession_hmac, st->has_accession);
	sqlite3_bind_blob(q, 8, st->enc.p, (int)st->enc.n, SQLITE_STATIC);
	rc = exec_done(s, q, "study_insert");
	if (rc == ERR_OK)
		st->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static enum err read_series(struct sq_store *s, sqlite3_stmt *q, struct idx_series *out)
{
	out->id = sqlite3_column_int64(q, 0);
	out->study_id = sqlite3_column_int64(q, 1);
	col_text(q, 2, out->uid, sizeof out->uid);
	col_text(q, 3, out->modality, sizeof out->modality);
	out->number = sqlite3_column_int64(q, 4);
	out->n_instances = sqlite3_column_int64(q, 6);
	return col_blob(s, q, 5, 1, &out->enc);
}

static enum err sq_series_get(struct index_store *bs, const char *uid, struct idx_series *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SERIES_GET);
	enum err rc;

	sqlite3_bind_text(q, 1, uid, -1, SQLITE_STATIC);
	rc = step_one(s, q, "series_get");
	if (rc == ERR_OK)
		rc = read_series(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_series_by_id(struct index_store *bs, int64_t id, struct idx_series *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SERIES_BY_ID);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = step_one(s, q, "series_by_id");
	if (rc == ERR_OK)
		rc = read_series(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_study_by_id(struct index_store *bs, int64_t id, struct idx_study *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_STUDY_BY_ID);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = step_one(s, q, "study_by_id");
	if (rc == ERR_OK)
		rc = read_study(s, q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_series_put(struct index_store *bs, struct idx_series *se)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct idx_series cur;
	sqlite3_stmt *q;
	enum err rc;

	rc = sq_series_get(bs, se->uid, &cur);
	if (rc == ERR_OK) {
		if (cur.study_id != se->study_id)
			return ERR_DENIED;
		q = stmt(s, S_SERIES_UPD);
		sqlite3_bind_int64(q, 1, cur.id);
		sqlite3_bind_text(q, 2, se->modality, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, se->number);
		sqlite3_bind_blob(q, 4, se->enc.p, (int)se->enc.n, SQLITE_STATIC);
		rc = exec_done(s, q, "series_update");
		if (rc == ERR_OK)
			se->id = cur.id;
		return rc;
	}
	if (rc != ERR_NOTFOUND)
		return rc;
	q = stmt(s, S_SERIES_INS);
	sqlite3_bind_int64(q, 1, se->study_id);
	sqlite3_bind_text(q, 2, se->uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, se->modality, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, se->number);
	sqlite3_bind_blob(q, 5, se->enc.p, (int)se->enc.n, SQLITE_STATIC);
	rc = exec_done(s, q, "series_insert");
	if (rc != ERR_OK)
		return rc;
	se->id = sqlite3_last_insert_rowid(s->db);
	q = stmt(s, S_STUDY_NSERIES);
	sqlite3_bind_int64(q, 1, se->study_id);
	return exec_done(s, q, "study_count_series");
}

static void read_instance(sqlite3_stmt *q, struct idx_instance *out)
{
	const void *h;

	out->id = sqlite3_column_int64(q, 0);
	out->series_id = sqlite3_column_int64(q, 1);
	col_text(q, 2, out->uid, sizeof out->uid);
	col_text(q, 3, out->sop_class, sizeof out->sop_class);
	col_text(q, 4, out->ts_uid, sizeof out->ts_uid);
	out->number = sqlite3_column_int64(q, 5);
	col_text(q, 6, out->object_key, sizeof out->object_key);
	out->size = (uint64_t)sqlite3_column_int64(q, 7);
	h = sqlite3_column_blob(q, 8);
	if (h != NULL && sqlite3_column_bytes(q, 8) == 32)
		memcpy(out->sha256, h, 32);
	else
		memset(out->sha256, 0, 32);
	out->created = sqlite3_column_int64(q, 9);
	out->rows = sqlite3_column_int64(q, 10);
	out->columns = sqlite3_column_int64(q, 11);
	out->bits_allocated = sqlite3_column_int64(q, 12);
	out->frames = sqlite3_column_int64(q, 13);
}

/* The one instance the statement q finds with the text parameter v. */
static enum err instance_one(struct sq_store *s, sqlite3_stmt *q, const char *v, const char *what,
                             struct idx_instance *out)
{
	enum err rc;

	sqlite3_bind_text(q, 1, v, -1, SQLITE_STATIC);
	rc = step_one(s, q, what);
	if (rc == ERR_OK)
		read_instance(q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_instance_get(struct index_store *bs, const char *uid, struct idx_instance *out)
{
	struct sq_store *s = (struct sq_store *)bs;

	return instance_one(s, stmt(s, S_INST_GET), uid, "instance_get", out);
}

static enum err sq_instance_put(struct index_store *bs, struct idx_instance *in)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_INST_INS);
	enum err rc;

	sqlite3_bind_int64(q, 1, in->series_id);
	sqlite3_bind_text(q, 2, in->uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, in->sop_class, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, in->ts_uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, in->number);
	sqlite3_bind_text(q, 6, in->object_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)in->size);
	sqlite3_bind_blob(q, 8, in->sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(q, 9, in->created);
	sqlite3_bind_int64(q, 10, in->rows);
	sqlite3_bind_int64(q, 11, in->columns);
	sqlite3_bind_int64(q, 12, in->bits_allocated);
	sqlite3_bind_int64(q, 13, in->frames);
	rc = exec_done(s, q, "instance_put");
	if (rc != ERR_OK)
		return rc;
	in->id = sqlite3_last_insert_rowid(s->db);
	q = stmt(s, S_SERIES_COUNT);
	sqlite3_bind_int64(q, 1, in->series_id);
	rc = exec_done(s, q, "series_count");
	if (rc != ERR_OK)
		return rc;
	q = stmt(s, S_STUDY_COUNT);
	sqlite3_bind_int64(q, 1, in->series_id);
	return exec_done(s, q, "study_count");
}

static enum err sq_study_query(struct index_store *bs, const struct idx_study_query *qy,
                               enum err (*fn)(void *ctx, const struct idx_study *st), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct wbuf sql;
	sqlite3_stmt *q = NULL;
	struct idx_study row;
	int n = 0, rc;
	enum err e = ERR_OK;

	wbuf_init(&sql, 4096);
	wbuf_puts(&sql, "SELECT s.id, s.patient_id, s.uid, s.collection, s.date, s.time, s.modalities,"
	                " s.accession_hmac, s.enc, s.n_series, s.n_instances FROM studies s");
	wbuf_puts(&sql, " WHERE 1");
	/* fixed fragments, numbered parameters bound below in the same order */
	if (qy->uid)
		wbuf_printf(&sql, " AND s.uid = ?%d", ++n);
	if (qy->collection)
		wbuf_printf(&sql, " AND s.collection = ?%d", ++n);
	if (qy->date_from)
		wbuf_printf(&sql, " AND s.date >= ?%d AND s.date <> ''", ++n);
	if (qy->date_to)
		wbuf_printf(&sql, " AND s.date <= ?%d AND s.date <> ''", ++n);
	if (qy->modality)
		wbuf_printf(&sql, " AND instr('\\' || s.modalities || '\\', '\\' || ?%d || '\\') > 0", ++n);
	if (qy->patient_key_hmac)
		wbuf_printf(&sql, " AND s.patient_id = (SELECT id FROM patients WHERE key_hmac = ?%d)", ++n);
	if (qy->patient_name_hmac)
		wbuf_printf(&sql, PN_MATCH("s.patient_id"), ++n);
	if (qy->accession_hmac)
		wbuf_printf(&sql, " AND s.accession_hmac = ?%d", ++n);
	wbuf_puts(&sql, " ORDER BY s.date, s.time, s.id");
	if (qy->limit > 0)
		wbuf_printf(&sql, " LIMIT %lld", (long long)qy->limit);
	else if (qy->offset > 0)
		wbuf_puts(&sql, " LIMIT -1");
	if (qy->offset > 0)
		wbuf_printf(&sql, " OFFSET %lld", (long long)qy->offset);
	if (wbuf_err(&sql) != ERR_OK) {
		e = wbuf_err(&sql);
		goto out;
	}
	rc = sqlite3_prepare_v2(s->db, wbuf_cstr(&sql), -1, &q, NULL);
	if (rc != SQLITE_OK) {
		e = db_err(s, rc, "study_query");
		goto out;
	}
	n = 0;
	if (qy->uid)
		sqlite3_bind_text(q, ++n, qy->uid, -1, SQLITE_STATIC);
	if (qy->collection)
		sqlite3_bind_text(q, ++n, qy->collection, -1, SQLITE_STATIC);
	if (qy->date_from)
		sqlite3_bind_text(q, ++n, qy->date_from, -1, SQLITE_STATIC);
	if (qy->date_to)
		sqlite3_bind_text(q, ++n, qy->date_to, -1, SQLITE_STATIC);
	if (qy->modality)
		sqlite3_bind_text(q, ++n, qy->modality, -1, SQLITE_STATIC);
	if (qy->patient_key_hmac)
		sqlite3_bind_blob(q, ++n, qy->patient_key_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	if (qy->patient_name_hmac)
		sqlite3_bind_blob(q, ++n, qy->patient_name_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	if (qy->accession_hmac)
		sqlite3_bind_blob(q, ++n, qy->accession_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		e = read_study(s, q, &row);
		if (e == ERR_OK)
			e = fn(ctx, &row);
		if (e != ERR_OK)
			goto out;
	}
	if (rc != SQLITE_DONE)
		e = db_err(s, rc, "study_query");
out:
	sqlite3_finalize(q);
	wbuf_fini(&sql);
	return e;
}

static enum err sq_series_list(struct index_store *bs, int64_t study_id,
                               enum err (*fn)(void *ctx, const struct idx_series *se), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SERIES_LIST);
	struct idx_series row;
	enum err e = ERR_OK;
	int rc;

	sqlite3_bind_int64(q, 1, study_id);
	while (e == ERR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		e = read_series(s, q, &row);
		if (e == ERR_OK)
			e = fn(ctx, &row);
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_err(s, rc, "series_list");
	sqlite3_reset(q);
	return e;
}

static enum err sq_instance_list(struct index_store *bs, int64_t series_id,
                                 enum err (*fn)(void *ctx, const struct idx_instance *in), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_INST_LIST);
	struct idx_instance row;
	enum err e = ERR_OK;
	int rc;

	sqlite3_bind_int64(q, 1, series_id);
	while (e == ERR_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		read_instance(q, &row);
		e = fn(ctx, &row);
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_err(s, rc, "instance_list");
	sqlite3_reset(q);
	return e;
}

static void bind_user(sqlite3_stmt *q, int first, const struct idx_user *u)
{
	sqlite3_bind_text(q, first, u->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, first + 1, u->pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, first + 2, u->totp_wrapped.p ? u->totp_wrapped.p : (const uint8_t *)"",
	                  (int)u->totp_wrapped.n, SQLITE_STATIC);
	sqlite3_bind_int64(q, first + 3, u->totp_last_step);
	sqlite3_bind_int64(q, first + 4, u->failures);
	sqlite3_bind_int64(q, first + 5, u->locked_until);
	sqlite3_bind_int(q, first + 6, u->disabled ? 1 : 0);
	sqlite3_bind_int64(q, first + 7, u->expires);
}

static enum err sq_user_put(struct index_store *bs, struct idx_user *u)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_USER_INS);
	enum err rc;

	sqlite3_bind_text(q, 1, u->name, -1, SQLITE_STATIC);
	bind_user(q, 2, u);
	sqlite3_bind_int64(q, 10, u->created);
	rc = exec_done(s, q, "user_put");
	if (rc == ERR_OK)
		u->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static enum err sq_user_get(struct index_store *bs, const char *name, struct idx_user *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_USER_GET);
	enum err rc;

	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	rc = step_one(s, q, "user_get");
	if (rc == ERR_OK) {
		out->id = sqlite3_column_int64(q, 0);
		col_text(q, 1, out->name, sizeof out->name);
		col_text(q, 2, out->role, sizeof out->role);
		col_text(q, 3, out->pwhash, sizeof out->pwhash);
		out->totp_last_step = sqlite3_column_int64(q, 5);
		out->failures = sqlite3_column_int64(q, 6);
		out->locked_until = sqlite3_column_int64(q, 7);
		out->disabled = sqlite3_column_int(q, 8) != 0;
		out->expires = sqlite3_column_int64(q, 9);
		out->created = sqlite3_column_int64(q, 10);
		rc = col_blob(s, q, 4, 0, &out->totp_wrapped);
	}
	sqlite3_reset(q);
	return rc;
}

static enum err sq_user_update(struct index_store *bs, const struct idx_user *u)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_USER_UPD);
	enum err rc;

	sqlite3_bind_int64(q, 1, u->id);
	bind_user(q, 2, u);
	rc = exec_done(s, q, "user_update");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = ERR_NOTFOUND;
	return rc;
}

static enum err sq_user_delete(struct index_store *bs, int64_t id)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_USER_DEL);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = exec_done(s, q, "user_delete");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = ERR_NOTFOUND;
	return rc;
}

static enum err sq_session_put(struct index_store *bs, struct idx_session *se)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_INS);
	enum err rc;

	sqlite3_bind_int64(q, 1, se->user_id);
	sqlite3_bind_blob(q, 2, se->token_hash, IDX_HMAC_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, se->created);
	sqlite3_bind_int64(q, 4, se->last_seen);
	sqlite3_bind_int64(q, 5, se->expires);
	sqlite3_bind_text(q, 6, se->address, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, se->ref, -1, SQLITE_STATIC);
	rc = exec_done(s, q, "session_put");
	if (rc == ERR_OK)
		se->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

/* A row of SESS_COLS. */
static void read_session(sqlite3_stmt *q, struct idx_session *se)
{
	memset(se, 0, sizeof *se);
	se->id = sqlite3_column_int64(q, 0);
	se->user_id = sqlite3_column_int64(q, 1);
	col_hmac(q, 2, se->token_hash, NULL);
	se->created = sqlite3_column_int64(q, 3);
	se->last_seen = sqlite3_column_int64(q, 4);
	se->expires = sqlite3_column_int64(q, 5);
	col_text(q, 6, se->address, sizeof se->address);
	col_text(q, 7, se->ref, sizeof se->ref);
	col_text(q, 8, se->user_name, sizeof se->user_name);
	col_text(q, 9, se->user_role, sizeof se->user_role);
}

static enum err sq_session_get(struct index_store *bs, const uint8_t hash[IDX_HMAC_LEN], struct idx_session *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_GET);
	enum err rc;

	sqlite3_bind_blob(q, 1, hash, IDX_HMAC_LEN, SQLITE_STATIC);
	rc = step_one(s, q, "session_get");
	if (rc == ERR_OK)
		read_session(q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_session_touch(struct index_store *bs, int64_t id, int64_t last_seen)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_TOUCH);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, last_seen);
	rc = exec_done(s, q, "session_touch");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = ERR_NOTFOUND;
	return rc;
}

static enum err sq_session_delete(struct index_store *bs, const uint8_t hash[IDX_HMAC_LEN])
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_DEL);
	enum err rc;

	sqlite3_bind_blob(q, 1, hash, IDX_HMAC_LEN, SQLITE_STATIC);
	rc = exec_done(s, q, "session_delete");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = ERR_NOTFOUND;
	return rc;
}

static enum err sq_session_delete_user(struct index_store *bs, int64_t user_id)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_DEL_USER);

	sqlite3_bind_int64(q, 1, user_id);
	return exec_done(s, q, "session_delete_user");
}

/* The rows are read first, then deleted by id: the caller records each
 * one's end (its user, role and reference), which a plain DELETE lost. */
static enum err sq_session_purge(struct index_store *bs, int64_t now, int64_t idle_before, struct idx_session *out,
                                 size_t max, size_t *n)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = stmt(s, S_SESS_ENDED);
	size_t i, got = 0;
	enum err rc = ERR_OK;
	int r = SQLITE_DONE;

	*n = 0;
	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_int64(q, 2, idle_before);
	sqlite3_bind_int64(q, 3, (int64_t)max);
	while (got < max && (r = sqlite3_step(q)) == SQLITE_ROW)
		read_session(q, &out[got++]);
	if (got < max && r != SQLITE_DONE)
		rc = db_err(s, r, "session_purge");
	sqlite3_reset(q);
	for (i = 0; rc == ERR_OK && i < got; i++) {
		q = stmt(s, S_SESS_DEL_ID);
		sqlite3_bind_int64(q, 1, out[i].id);
		rc = exec_done(s, q, "session_purge");
	}
	if (rc == ERR_OK)
		*n = got;
	return rc;
}

/* ---- API tokens ---- */

static sqlite3_stmt *tstmt(struct sq_store *s, enum tok_stmt_id id)
{
	sqlite3_reset(s->tok[id]);
	sqlite3_clear_bindings(s->tok[id]);
	return s->tok[id];
}

static void read_token(sqlite3_stmt *q, struct idx_token *out)
{
	memset(out, 0, sizeof *out);
	out->id = sqlite3_column_int64(q, 0);
	out->user_id = sqlite3_column_int64(q, 1);
	col_hmac(q, 2, out->token_hash, NULL);
	out->created = sqlite3_column_int64(q, 3);
	out->expires = sqlite3_column_int64(q, 4);
	out->last_used = sqlite3_column_int64(q, 5);
	out->revoked = sqlite3_column_int64(q, 6);
	col_text(q, 7, out->scope, sizeof out->scope);
	col_text(q, 8, out->user_name, sizeof out->user_name);
}

static enum err sq_token_put(struct index_store *bs, struct idx_token *t)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_INS);
	enum err rc;

	sqlite3_bind_int64(q, 1, t->user_id);
	sqlite3_bind_blob(q, 2, t->token_hash, IDX_HMAC_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, t->created);
	sqlite3_bind_int64(q, 4, t->expires);
	sqlite3_bind_int64(q, 5, t->last_used);
	sqlite3_bind_int64(q, 6, t->revoked);
	sqlite3_bind_text(q, 7, t->scope, -1, SQLITE_STATIC);
	rc = exec_done(s, q, "token_put");
	if (rc == ERR_OK)
		t->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static enum err token_one(struct sq_store *s, sqlite3_stmt *q, const char *what, struct idx_token *out)
{
	enum err rc = step_one(s, q, what);

	if (rc == ERR_OK)
		read_token(q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_token_get(struct index_store *bs, const uint8_t hash[IDX_HMAC_LEN], struct idx_token *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_GET);

	sqlite3_bind_blob(q, 1, hash, IDX_HMAC_LEN, SQLITE_STATIC);
	return token_one(s, q, "token_get", out);
}

static enum err sq_token_by_id(struct index_store *bs, int64_t id, struct idx_token *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_BY_ID);

	sqlite3_bind_int64(q, 1, id);
	return token_one(s, q, "token_by_id", out);
}

static enum err sq_token_list(struct index_store *bs, enum err (*fn)(void *ctx, const struct idx_token *t), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_LIST);
	struct idx_token t;
	enum err rc = ERR_OK;
	int r;

	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		read_token(q, &t);
		rc = fn(ctx, &t);
		if (rc != ERR_OK)
			break;
	}
	if (rc == ERR_OK && r != SQLITE_DONE)
		rc = db_err(s, r, "token_list");
	sqlite3_reset(q);
	return rc;
}

static enum err sq_token_touch(struct index_store *bs, int64_t id, int64_t last_used)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_TOUCH);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, last_used);
	rc = exec_done(s, q, "token_touch");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = ERR_NOTFOUND;
	return rc;
}

static enum err sq_token_revoke(struct index_store *bs, int64_t id, int64_t when)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct idx_token t;
	sqlite3_stmt *q = tstmt(s, T_REVOKE);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, when);
	rc = exec_done(s, q, "token_revoke");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = sq_token_by_id(bs, id, &t) == ERR_OK ? ERR_DENIED : ERR_NOTFOUND;
	return rc;
}

static enum err sq_object_key_used(struct index_store *bs, const char *key, bool *used)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = tstmt(s, T_OBJ_USED);
	enum err rc;

	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	rc = step_one(s, q, "object_key_used");
	sqlite3_reset(q);
	if (rc == ERR_OK || rc == ERR_NOTFOUND) {
		*used = rc == ERR_OK;
		rc = ERR_OK;
	}
	return rc;
}

static enum err sq_instance_by_key(struct index_store *bs, const char *key, struct idx_instance *out)
{
	struct sq_store *s = (struct sq_store *)bs;

	return instance_one(s, tstmt(s, T_INST_BY_KEY), key, "instance_by_key", out);
}

/* id's statement of tok_sql, run with one integer parameter. */
static enum err tok_exec_id(struct sq_store *s, enum tok_stmt_id id, int64_t v, const char *what)
{
	sqlite3_stmt *q = tstmt(s, id);

	sqlite3_bind_int64(q, 1, v);
	return exec_done(s, q, what);
}

static enum err sq_instance_remove(struct index_store *bs, const char *uid)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct idx_instance in;
	struct idx_series se;
	enum err rc;

	rc = sq_instance_get(bs, uid, &in);
	if (rc == ERR_OK)
		rc = sq_series_by_id(bs, in.series_id, &se);
	if (rc == ERR_OK)
		rc = tok_exec_id(s, T_INST_DEL, in.id, "instance_remove");
	if (rc == ERR_OK)
		rc = tok_exec_id(s, T_SERIES_UNCOUNT, in.series_id, "instance_remove series");
	if (rc == ERR_OK)
		rc = tok_exec_id(s, T_STUDY_UNCOUNT, in.series_id, "instance_remove study");
	/* its series and study go with their last instance */
	if (rc == ERR_OK && se.n_instances <= 1) {
		rc = tok_exec_id(s, T_SERIES_DEL_EMPTY, se.id, "instance_remove empty series");
		if (rc == ERR_OK && sqlite3_changes(s->db) > 0) {
			rc = tok_exec_id(s, T_STUDY_UNSERIES, se.study_id, "instance_remove study series");
			if (rc == ERR_OK)
				rc = tok_exec_id(s, T_STUDY_DEL_EMPTY, se.study_id, "instance_remove empty study");
		}
	}
	return rc;
}

/* ---- level queries (core/query.c) ---- */

/* " AND col IN (?a, ?b...)" for a list; numbers the parameters from *n. */
static void sql_in(struct wbuf *sql, const char *col, const struct idx_list *l, int *n)
{
	size_t i;

	if (l->n == 0)
		return;
	wbuf_printf(sql, " AND %s IN (", col);
	for (i = 0; i < l->n; i++)
		wbuf_printf(sql, "%s?%d", i ? ", " : "", ++*n);
	wbuf_puts(sql, ")");
}

static void bind_list(sqlite3_stmt *q, const struct idx_list *l, int *n)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		sqlite3_bind_text(q, ++*n, l->v[i], -1, SQLITE_STATIC);
}

/* Points a blob at a column's bytes (valid until the next step). */
static void col_view(sqlite3_stmt *q, int col, struct idx_blob *out)
{
	const void *p = sqlite3_column_blob(q, col);
	int n = sqlite3_column_bytes(q, col);

	out->p = p != NULL && n > 0 ? p : (const uint8_t *)"";
	out->n = n > 0 ? (size_t)n : 0;
}

/* The SQL of a level query: fixed fragments only; every value is a
 * numbered parameter bound by level_bind in the same order. */
static void level_sql(struct wbuf *sql, const struct idx_query *qy)
{
	static const char *const idcol[] = { "p.id", "s.id", "se.id", "i.id" };
	int n = 0;
	size_t i;

	wbuf_puts(sql, "SELECT p.id, p.key_hmac, p.name_hmac, p.wrapped_key, p.enc");
	if (qy->level == IDX_PATIENT)
		wbuf_puts(sql, ", (SELECT count(*) FROM studies x WHERE x.patient_id = p.id),"
		               " (SELECT total(n_series) FROM studies x WHERE x.patient_id = p.id),"
		               " (SELECT total(n_instances) FROM studies x WHERE x.patient_id = p.id)");
	else
		wbuf_puts(sql, ", s.id, s.uid, s.collection, s.date, s.time, s.modalities, s.accession_hmac, s.enc,"
		               " s.n_series, s.n_instances");
	if (qy->level >= IDX_SERIES)
		wbuf_puts(sql, ", se.id, se.uid, se.modality, se.number, se.enc, se.n_instances");
	if (qy->level == IDX_INSTANCE)
		wbuf_puts(sql, ", i.id, i.uid, i.sop_class, i.ts_uid, i.number, i.img_rows, i.img_columns,"
		               " i.bits_allocated, i.frames");
	switch (qy->level) {
	case IDX_PATIENT:
		wbuf_puts(sql, " FROM patients p");
		break;
	case IDX_STUDY:
		wbuf_puts(sql, " FROM studies s JOIN patients p ON p.id = s.patient_id");
		break;
	case IDX_SERIES:
		wbuf_puts(sql, " FROM series se JOIN studies s ON s.id = se.study_id JOIN patients p ON p.id = s.patient_id");
		break;
	case IDX_INSTANCE:
		wbuf_puts(sql, " FROM instances i JOIN series se ON se.id = i.series_id JOIN studies s ON s.id = se.study_id"
		               " JOIN patients p ON p.id = s.patient_id");
		break;
	}
	wbuf_printf(sql, " WHERE %s > ?%d", idcol[qy->level], ++n);
	if (qy->patient_id_hmac)
		wbuf_printf(sql, " AND (p.id_hmac = ?%d OR p.id_hmac IS NULL)", ++n);
	if (qy->patient_name_hmac)
		wbuf_printf(sql, PN_MATCH("p.id"), ++n);
	if (qy->level >= IDX_STUDY) {
		sql_in(sql, "s.uid", &qy->study_uids, &n);
		if (qy->collection)
			wbuf_printf(sql, " AND s.collection = ?%d", ++n);
		if (qy->date_from)
			wbuf_printf(sql, " AND s.date >= ?%d AND s.date <> ''", ++n);
		if (qy->date_to)
			wbuf_printf(sql, " AND s.date <= ?%d AND s.date <> ''", ++n);
		if (qy->accession_hmac)
			wbuf_printf(sql, " AND s.accession_hmac = ?%d", ++n);
		if (qy->study_modalities.n) {
			wbuf_puts(sql, " AND (0");
			for (i = 0; i < qy->study_modalities.n; i++)
				wbuf_printf(sql, " OR instr('\\' || s.modalities || '\\', '\\' || ?%d || '\\') > 0", ++n);
			wbuf_puts(sql, ")");
		}
	}
	if (qy->level >= IDX_SERIES) {
		sql_in(sql, "se.uid", &qy->series_uids, &n);
		sql_in(sql, "se.modality", &qy->modalities, &n);
	}
	if (qy->level == IDX_INSTANCE) {
		sql_in(sql, "i.uid", &qy->sop_uids, &n);
		sql_in(sql, "i.sop_class", &qy->sop_classes, &n);
	}
	wbuf_printf(sql, " ORDER BY %s LIMIT ?%d", idcol[qy->level], ++n);
}

static void level_bind(sqlite3_stmt *q, const struct idx_query *qy)
{
	int n = 0;

	sqlite3_bind_int64(q, ++n, qy->after);
	if (qy->patient_id_hmac)
		sqlite3_bind_blob(q, ++n, qy->patient_id_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	if (qy->patient_name_hmac)
		sqlite3_bind_blob(q, ++n, qy->patient_name_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
	if (qy->level >= IDX_STUDY) {
		bind_list(q, &qy->study_uids, &n);
		if (qy->collection)
			sqlite3_bind_text(q, ++n, qy->collection, -1, SQLITE_STATIC);
		if (qy->date_from)
			sqlite3_bind_text(q, ++n, qy->date_from, -1, SQLITE_STATIC);
		if (qy->date_to)
			sqlite3_bind_text(q, ++n, qy->date_to, -1, SQLITE_STATIC);
		if (qy->accession_hmac)
			sqlite3_bind_blob(q, ++n, qy->accession_hmac, IDX_HMAC_LEN, SQLITE_STATIC);
		bind_list(q, &qy->study_modalities, &n);
	}
	if (qy->level >= IDX_SERIES) {
		bind_list(q, &qy->series_uids, &n);
		bind_list(q, &qy->modalities, &n);
	}
	if (qy->level == IDX_INSTANCE) {
		bind_list(q, &qy->sop_uids, &n);
		bind_list(q, &qy->sop_classes, &n);
	}
	sqlite3_bind_int64(q, ++n, qy->max_rows);
}

static void level_row(sqlite3_stmt *q, const struct idx_query *qy, struct idx_qrow *r)
{
	int c = 5;

	memset(r, 0, sizeof *r);
	r->pat.id = sqlite3_column_int64(q, 0);
	col_hmac(q, 1, r->pat.key_hmac, NULL);
	col_hmac(q, 2, r->pat.name_hmac, NULL);
	col_view(q, 3, &r->pat.wrapped_key);
	col_view(q, 4, &r->pat.enc);
	if (qy->level == IDX_PATIENT) {
		r->n_studies = sqlite3_column_int64(q, c++);
		r->n_series = sqlite3_column_int64(q, c++);
		r->n_instances = sqlite3_column_int64(q, c++);
		return;
	}
	r->st.patient_id = r->pat.id;
	r->st.id = sqlite3_column_int64(q, c++);
	col_text(q, c++, r->st.uid, sizeof r->st.uid);
	col_text(q, c++, r->st.collection, sizeof r->st.collection);
	col_text(q, c++, r->st.date, sizeof r->st.date);
	col_text(q, c++, r->st.time, sizeof r->st.time);
	col_text(q, c++, r->st.modalities, sizeof r->st.modalities);
	col_hmac(q, c++, r->st.accession_hmac, &r->st.has_accession);
	col_view(q, c++, &r->st.enc);
	r->st.n_series = sqlite3_column_int64(q, c++);
	r->st.n_instances = sqlite3_column_int64(q, c++);
	if (qy->level < IDX_SERIES)
		return;
	r->se.study_id = r->st.id;
	r->se.id = sqlite3_column_int64(q, c++);
	col_text(q, c++, r->se.uid, sizeof r->se.uid);
	col_text(q, c++, r->se.modality, sizeof r->se.modality);
	r->se.number = sqlite3_column_int64(q, c++);
	col_view(q, c++, &r->se.enc);
	r->se.n_instances = sqlite3_column_int64(q, c++);
	if (qy->level < IDX_INSTANCE)
		return;
	r->in.series_id = r->se.id;
	r->in.id = sqlite3_column_int64(q, c++);
	col_text(q, c++, r->in.uid, sizeof r->in.uid);
	col_text(q, c++, r->in.sop_class, sizeof r->in.sop_class);
	col_text(q, c++, r->in.ts_uid, sizeof r->in.ts_uid);
	r->in.number = sqlite3_column_int64(q, c++);
	r->in.rows = sqlite3_column_int64(q, c++);
	r->in.columns = sqlite3_column_int64(q, c++);
	r->in.bits_allocated = sqlite3_column_int64(q, c++);
	r->in.frames = sqlite3_column_int64(q, c++);
}

/* Prepared statements of level queries, by shape, reused (a query's
 * shape is which filters it has and the length of each list). */
static sqlite3_stmt *level_stmt(struct sq_store *s, const char *sql)
{
	size_t i, free_slot = LEVEL_CACHE;
	sqlite3_stmt *q = NULL;

	for (i = 0; i < LEVEL_CACHE; i++) {
		if (s->lq[i] == NULL) {
			if (free_slot == LEVEL_CACHE)
				free_slot = i;
			continue;
		}
		if (strcmp(sqlite3_sql(s->lq[i]), sql) == 0) {
			sqlite3_reset(s->lq[i]);
			sqlite3_clear_bindings(s->lq[i]);
			return s->lq[i];
		}
	}
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK) {
		log_error("index level_query: %s", sqlite3_errmsg(s->db));
		return NULL;
	}
	if (free_slot == LEVEL_CACHE) {   /* full: replace one in turn */
		free_slot = s->lq_next++ % LEVEL_CACHE;
		sqlite3_finalize(s->lq[free_slot]);
	}
	s->lq[free_slot] = q;
	return q;
}

static enum err sq_level_query(struct index_store *bs, const struct idx_query *qy,
                               enum err (*fn)(void *ctx, const struct idx_qrow *row), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct wbuf sql;
	sqlite3_stmt *q;
	struct idx_qrow row;
	enum err e = ERR_OK;
	int rc;

	if (qy->level > IDX_INSTANCE || qy->max_rows <= 0)
		return ERR_INTERNAL;
	wbuf_init(&sql, 64 * 1024);
	level_sql(&sql, qy);
	if (wbuf_err(&sql) != ERR_OK) {
		e = wbuf_err(&sql);
		goto out;
	}
	q = level_stmt(s, wbuf_cstr(&sql));
	if (q == NULL) {
		e = ERR_IO;
		goto out;
	}
	level_bind(q, qy);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		level_row(q, qy, &row);
		e = fn(ctx, &row);
		if (e != ERR_OK)
			break;
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_err(s, rc, "level_query");
	sqlite3_reset(q);
out:
	wbuf_fini(&sql);
	return e;
}

/* Schema 1 -> 2: the hash of the Patient ID alone (NULL for rows stored
 * before: found by decrypting), image attributes of instances. 2 -> 3: the
 * hashes of each component group of the patient's name (patient_names;
 * the patients stored before get the empty hash, which every name query
 * takes as a candidate, found by decrypting). 3 -> 4: the name hashes
 * are of the folded groups (no case, no accents: qry_pn_fold); those of
 * schema 3 (ASCII case only) become the empty hash too. In one
 * transaction; a concurrent opener sees the new version and does nothing. */
/* Whether table has a column of that name. */
static bool has_column(sqlite3 *db, const char *table, const char *col)
{
	sqlite3_stmt *q = NULL;
	bool found = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &q, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, col, -1, SQLITE_STATIC);
	found = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_finalize(q);
	return found;
}

/* The schema this release writes: an index of a later one (a newer
 * release's) is refused, not used with columns and rows this one does
 * not know (and kept at that number, so that the newer release would not
 * know this one wrote it). */
#define INDEX_SCHEMA 6

static int migrate(sqlite3 *db)
{
	sqlite3_stmt *q = NULL;
	int rc, ver = 0;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'schema'", -1, &q, NULL);
	if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		ver = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (rc == SQLITE_OK && ver > INDEX_SCHEMA) {
		log_error("the index is of schema %d, newer than this release's %d: a newer release of dicomvault made it; "
		          "use that one (a release does not read a later one's index)", ver, INDEX_SCHEMA);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return SQLITE_ERROR;
	}
	if (rc == SQLITE_OK && ver < 2)
		rc = sqlite3_exec(db,
		                  "ALTER TABLE patients ADD COLUMN id_hmac BLOB;"
		                  "ALTER TABLE instances ADD COLUMN img_rows INTEGER NOT NULL DEFAULT -1;"
		                  "ALTER TABLE instances ADD COLUMN img_columns INTEGER NOT NULL DEFAULT -1;"
		                  "ALTER TABLE instances ADD COLUMN bits_allocated INTEGER NOT NULL DEFAULT -1;"
		                  "ALTER TABLE instances ADD COLUMN frames INTEGER NOT NULL DEFAULT -1;"
		                  "CREATE INDEX IF NOT EXISTS patients_id ON patients(id_hmac);"
		                  "CREATE INDEX IF NOT EXISTS series_modality ON series(modality);"
		                  "UPDATE meta SET v = '2' WHERE k = 'schema';",
		                  NULL, NULL, NULL);
	if (rc == SQLITE_OK && ver < 3)
		rc = sqlite3_exec(db,
		                  "CREATE TABLE IF NOT EXISTS patient_names ("
		                  " patient_id INTEGER NOT NULL REFERENCES patients(id), hmac BLOB NOT NULL);"
		                  "CREATE INDEX IF NOT EXISTS patient_names_hmac ON patient_names(hmac, patient_id);"
		                  "INSERT INTO patient_names (patient_id, hmac) SELECT id, x'' FROM patients;"
		                  "UPDATE meta SET v = '3' WHERE k = 'schema';",
		                  NULL, NULL, NULL);
	if (rc == SQLITE_OK && ver == 3)
		rc = sqlite3_exec(db,
		                  "DELETE FROM patient_names;"
		                  "INSERT INTO patient_names (patient_id, hmac) SELECT id, x'' FROM patients;",
		                  NULL, NULL, NULL);
	if (rc == SQLITE_OK && ver < 4)
		rc = sqlite3_exec(db, "UPDATE meta SET v = '4' WHERE k = 'schema';", NULL, NULL, NULL);
	/* 5: name queries go through patient_names since 3; the index on
	 * patients.name_hmac was only ever written */
	if (rc == SQLITE_OK && ver < 5)
		rc = sqlite3_exec(db, "DROP INDEX IF EXISTS patients_name; UPDATE meta SET v = '5' WHERE k = 'schema';",
		                  NULL, NULL, NULL);
	/* 6: a session keeps its audit reference, so that its end is recorded
	 * under it when it is purged without its token; those opened before
	 * have none (their records leave the session out) */
	if (rc == SQLITE_OK && ver < 6 && !has_column(db, "sessions", "ref"))
		rc = sqlite3_exec(db, "ALTER TABLE sessions ADD COLUMN ref TEXT NOT NULL DEFAULT '';", NULL, NULL, NULL);
	if (rc == SQLITE_OK && ver < INDEX_SCHEMA)
		rc = sqlite3_exec(db, "UPDATE meta SET v = '6' WHERE k = 'schema';", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_error("index migration: %s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* ---- users by id, user list, grants ---- */

static sqlite3_stmt *gstmt(struct sq_store *s, enum grant_stmt_id id)
{
	sqlite3_reset(s->gr[id]);
	sqlite3_clear_bindings(s->gr[id]);
	return s->gr[id];
}

static void read_user_cols(sqlite3_stmt *q, struct idx_user *out)
{
	memset(out, 0, sizeof *out);
	out->id = sqlite3_column_int64(q, 0);
	col_text(q, 1, out->name, sizeof out->name);
	col_text(q, 2, out->role, sizeof out->role);
	col_text(q, 3, out->pwhash, sizeof out->pwhash);
	out->totp_last_step = sqlite3_column_int64(q, 4);
	out->failures = sqlite3_column_int64(q, 5);
	out->locked_until = sqlite3_column_int64(q, 6);
	out->disabled = sqlite3_column_int(q, 7) != 0;
	out->expires = sqlite3_column_int64(q, 8);
	out->created = sqlite3_column_int64(q, 9);
	out->totp_wrapped.p = (const uint8_t *)"";
	out->totp_wrapped.n = 0;
}

static enum err sq_user_by_id(struct index_store *bs, int64_t id, struct idx_user *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_USER_BY_ID);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = step_one(s, q, "user_by_id");
	if (rc == ERR_OK)
		read_user_cols(q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_user_list(struct index_store *bs, enum err (*fn)(void *ctx, const struct idx_user *u), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_USER_LIST);
	struct idx_user u;
	enum err rc = ERR_OK;
	int r;

	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		read_user_cols(q, &u);
		rc = fn(ctx, &u);
		if (rc != ERR_OK)
			break;
	}
	if (rc == ERR_OK && r != SQLITE_DONE)
		rc = db_err(s, r, "user_list");
	sqlite3_reset(q);
	return rc;
}

static void read_grant(sqlite3_stmt *q, struct idx_grant *out)
{
	memset(out, 0, sizeof *out);
	out->id = sqlite3_column_int64(q, 0);
	out->user_id = sqlite3_column_int64(q, 1);
	col_text(q, 2, out->role, sizeof out->role);
	col_text(q, 3, out->scope, sizeof out->scope);
	col_hmac(q, 4, out->patient, NULL);
	out->with_priors = sqlite3_column_int(q, 5) != 0;
	out->not_before = sqlite3_column_int64(q, 6);
	out->expires = sqlite3_column_int64(q, 7);
	col_text(q, 8, out->purpose, sizeof out->purpose);
	out->break_glass = sqlite3_column_int(q, 9) != 0;
	out->created = sqlite3_column_int64(q, 10);
	col_text(q, 11, out->created_by, sizeof out->created_by);
	out->revoked = sqlite3_column_int64(q, 12);
	col_text(q, 13, out->user_name, sizeof out->user_name);
}

static enum err sq_grant_put(struct index_store *bs, struct idx_grant *g)
{
	static const uint8_t zero[IDX_HMAC_LEN];
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_INS);
	enum err rc;

	sqlite3_bind_int64(q, 1, g->user_id);
	sqlite3_bind_text(q, 2, g->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, g->scope, -1, SQLITE_STATIC);
	if (memcmp(g->patient, zero, IDX_HMAC_LEN) != 0)
		sqlite3_bind_blob(q, 4, g->patient, IDX_HMAC_LEN, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 4);
	sqlite3_bind_int(q, 5, g->with_priors ? 1 : 0);
	sqlite3_bind_int64(q, 6, g->not_before);
	sqlite3_bind_int64(q, 7, g->expires);
	sqlite3_bind_text(q, 8, g->purpose, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 9, g->break_glass ? 1 : 0);
	sqlite3_bind_int64(q, 10, g->created);
	sqlite3_bind_text(q, 11, g->created_by, -1, SQLITE_STATIC);
	rc = exec_done(s, q, "grant_put");
	if (rc == ERR_OK)
		g->id = sqlite3_last_insert_rowid(s->db);
	if (rc == ERR_OK)
		rc = exec_done(s, gstmt(s, G_GEN_BUMP), "grant_put");
	return rc;
}

static enum err sq_grant_by_id(struct index_store *bs, int64_t id, struct idx_grant *out)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_BY_ID);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	rc = step_one(s, q, "grant_by_id");
	if (rc == ERR_OK)
		read_grant(q, out);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_grant_list(struct index_store *bs, int64_t user_id, bool with_revoked,
                              enum err (*fn)(void *ctx, const struct idx_grant *g), void *ctx)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q;
	struct idx_grant g;
	enum err rc = ERR_OK;
	int r;

	if (user_id != 0) {
		q = gstmt(s, with_revoked ? G_LIST_USER_ALL : G_LIST_USER);
		sqlite3_bind_int64(q, 1, user_id);
	} else {
		q = gstmt(s, with_revoked ? G_LIST_ALL : G_LIST);
	}
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		read_grant(q, &g);
		rc = fn(ctx, &g);
		if (rc != ERR_OK)
			break;
	}
	if (rc == ERR_OK && r != SQLITE_DONE)
		rc = db_err(s, r, "grant_list");
	sqlite3_reset(q);
	return rc;
}

static enum err sq_grant_revoke(struct index_store *bs, int64_t id, int64_t when)
{
	struct sq_store *s = (struct sq_store *)bs;
	struct idx_grant g;
	sqlite3_stmt *q = gstmt(s, G_REVOKE);
	enum err rc;

	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, when);
	rc = exec_done(s, q, "grant_revoke");
	if (rc == ERR_OK && sqlite3_changes(s->db) != 1)
		rc = sq_grant_by_id(bs, id, &g) == ERR_OK ? ERR_DENIED : ERR_NOTFOUND;
	else if (rc == ERR_OK)
		rc = exec_done(s, gstmt(s, G_GEN_BUMP), "grant_revoke");
	return rc;
}

static enum err sq_pseudo_put(struct index_store *bs, const char *pseudo, const char *real)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_PSEUDO_PUT);

	sqlite3_bind_text(q, 1, pseudo, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, real, -1, SQLITE_STATIC);
	return exec_done(s, q, "pseudo_put");
}

static enum err sq_pseudo_get(struct index_store *bs, const char *pseudo, char real[IDX_UID_MAX + 1])
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_PSEUDO_GET);
	enum err rc;

	sqlite3_bind_text(q, 1, pseudo, -1, SQLITE_STATIC);
	rc = step_one(s, q, "pseudo_get");
	if (rc == ERR_OK)
		col_text(q, 0, real, IDX_UID_MAX + 1);
	sqlite3_reset(q);
	return rc;
}

static enum err sq_grants_generation(struct index_store *bs, int64_t *gen)
{
	struct sq_store *s = (struct sq_store *)bs;
	sqlite3_stmt *q = gstmt(s, G_GEN_GET);
	enum err rc = step_one(s, q, "grants_generation");

	if (rc == ERR_OK)
		*gen = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc;
}

static void sq_close(struct index_store *bs)
{
	struct sq_store *s = (struct sq_store *)bs;
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < S__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	for (i = 0; i < T__COUNT; i++)
		sqlite3_finalize(s->tok[i]);
	for (i = 0; i < G__COUNT; i++)
		sqlite3_finalize(s->gr[i]);
	for (i = 0; i < (int)LEVEL_CACHE; i++)
		sqlite3_finalize(s->lq[i]);
	sqlite3_close(s->db);
	wbuf_fini(&s->scratch[0]);
	wbuf_fini(&s->scratch[1]);
	free(s);
}

static const struct index_ops sq_ops = {
	.name = "sqlite",
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.savepoint = sq_savepoint,
	.release = sq_release,
	.rollback_to = sq_rollback_to,
	.patient_get = sq_patient_get,
	.patient_by_id = sq_patient_by_id,
	.patient_put = sq_patient_put,
	.patient_names_add = sq_patient_names_add,
	.study_put = sq_study_put,
	.series_put = sq_series_put,
	.instance_put = sq_instance_put,
	.instance_get = sq_instance_get,
	.study_get = sq_study_get,
	.series_get = sq_series_get,
	.series_by_id = sq_series_by_id,
	.study_by_id = sq_study_by_id,
	.study_query = sq_study_query,
	.series_list = sq_series_list,
	.instance_list = sq_instance_list,
	.user_put = sq_user_put,
	.user_get = sq_user_get,
	.user_update = sq_user_update,
	.user_delete = sq_user_delete,
	.close = sq_close,
	.session_put = sq_session_put,
	.session_get = sq_session_get,
	.session_touch = sq_session_touch,
	.session_delete = sq_session_delete,
	.session_delete_user = sq_session_delete_user,
	.session_purge = sq_session_purge,
	.token_put = sq_token_put,
	.token_get = sq_token_get,
	.token_by_id = sq_token_by_id,
	.token_list = sq_token_list,
	.token_touch = sq_token_touch,
	.token_revoke = sq_token_revoke,
	.object_key_used = sq_object_key_used,
	.instance_by_key = sq_instance_by_key,
	.instance_remove = sq_instance_remove,
	.level_query = sq_level_query,
	.user_by_id = sq_user_by_id,
	.user_list = sq_user_list,
	.grant_put = sq_grant_put,
	.grant_by_id = sq_grant_by_id,
	.grant_list = sq_grant_list,
	.grant_revoke = sq_grant_revoke,
	.pseudo_put = sq_pseudo_put,
	.pseudo_get = sq_pseudo_get,
	.grants_generation = sq_grants_generation,
};

enum err index_sqlite_open(const char *path, struct index_store **out)
{
	struct sq_store *s;
	int fd, rc, i;
	enum err e = ERR_IO;

	/* create the file 0600 ourselves: sqlite would honour the umask */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ERR_IO;
	close(fd);
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return ERR_NOMEM;
	s->base.ops = &sq_ops;
	wbuf_init(&s->scratch[0], SCRATCH_MAX);
	wbuf_init(&s->scratch[1], SCRATCH_MAX);
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(s->db, 5000);
	rc = sqlite3_exec(s->db,
	                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
	                  " PRAGMA secure_delete=ON; PRAGMA trusted_schema=OFF;",
	                  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, tok_schema, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, grant_schema, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = migrate(s->db);
	if (rc != SQLITE_OK) {
		log_error("index open: %s", sqlite3_errmsg(s->db));
		goto out;
	}
	for (i = 0; i < S__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
		if (rc != SQLITE_OK) {
			log_error("index prepare %d: %s", i, sqlite3_errmsg(s->db));
			e = ERR_INTERNAL;
			goto out;
		}
	}
	for (i = 0; i < T__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, tok_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->tok[i], NULL);
		if (rc != SQLITE_OK) {
			log_error("index prepare token %d: %s", i, sqlite3_errmsg(s->db));
			e = ERR_INTERNAL;
			goto out;
		}
	}
	for (i = 0; i < G__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, grant_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->gr[i], NULL);
		if (rc != SQLITE_OK) {
			log_error("index prepare grant %d: %s", i, sqlite3_errmsg(s->db));
			e = ERR_INTERNAL;
			goto out;
		}
	}
	*out = &s->base;
	return ERR_OK;
out:
	sq_close(&s->base);
	return e;
}
