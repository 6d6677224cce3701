/* index_sqlite_test.c: the SQLite metadata index. Layer: tests. */
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/index.h"

static char path[256];

static struct index_store *open_index(bool fresh)
{
	struct index_store *s = NULL;
	char p2[300];

	snprintf(path, sizeof path, "/tmp/dv_index_test.%d.db", (int)getpid());
	if (fresh) {
		unlink(path);
		snprintf(p2, sizeof p2, "%s-wal", path);
		unlink(p2);
		snprintf(p2, sizeof p2, "%s-shm", path);
		unlink(p2);
	}
	if (index_sqlite_open(path, &s) != ERR_OK)
		return NULL;
	return s;
}

/* The integer the first row of sql gives, or -1. */
static int int_of(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void hmac_of(uint8_t h[IDX_HMAC_LEN], uint8_t v)
{
	memset(h, v, IDX_HMAC_LEN);
}

/* One patient, one study with one series and n instances. */
static enum err add_study(struct index_store *s, uint8_t patient, const char *study_uid, const char *date,
                          const char *modality, int n, int64_t *study_id)
{
	struct idx_patient p;
	struct idx_study st;
	struct idx_series se;
	struct idx_instance in;
	enum err rc;
	int i;

	memset(&p, 0, sizeof p);
	hmac_of(p.key_hmac, patient);
	rc = s->ops->patient_get(s, p.key_hmac, &p);
	if (rc == ERR_NOTFOUND) {
		hmac_of(p.name_hmac, (uint8_t)(patient + 100));
		/* the name's groups: the same hash and one of its own (two groups) */
		hmac_of(p.pn_hmac[0], (uint8_t)(patient + 100));
		hmac_of(p.pn_hmac[1], (uint8_t)(patient + 200));
		p.n_pn = 2;
		p.pn_any = patient == 9;   /* a name too long to hash: a candidate for every name */
		p.wrapped_key.p = (const uint8_t *)"wrapped";
		p.wrapped_key.n = 7;
		p.enc.p = (const uint8_t *)"sealed";
		p.enc.n = 6;
		rc = s->ops->patient_put(s, &p);
	}
	if (rc != ERR_OK)
		return rc;
	memset(&st, 0, sizeof st);
	st.patient_id = p.id;
	snprintf(st.uid, sizeof st.uid, "%s", study_uid);
	snprintf(st.collection, sizeof st.collection, "default");
	snprintf(st.date, sizeof st.date, "%s", date);
	snprintf(st.modalities, sizeof st.modalities, "%s", modality);
	st.enc.p = (const uint8_t *)"s";
	st.enc.n = 1;
	rc = s->ops->study_put(s, &st);
	if (rc != ERR_OK)
		return rc;
	*study_id = st.id;
	memset(&se, 0, sizeof se);
	se.study_id = st.id;
	snprintf(se.uid, sizeof se.uid, "%s.1", study_uid);
	snprintf(se.modality, sizeof se.modality, "%s", modality);
	se.number = 1;
	se.enc.p = (const uint8_t *)"";
	rc = s->ops->series_put(s, &se);
	for (i = 0; rc == ERR_OK && i < n; i++) {
		memset(&in, 0, sizeof in);
		in.series_id = se.id;
		snprintf(in.uid, sizeof in.uid, "%s.1.%d", study_uid, i + 1);
		snprintf(in.sop_class, sizeof in.sop_class, "1.2.840.10008.5.1.4.1.1.2");
		snprintf(in.ts_uid, sizeof in.ts_uid, "1.2.840.10008.1.2.1");
		snprintf(in.object_key, sizeof in.object_key, "%016x%016x", (unsigned)patient, (unsigned)(i + 1) ^ (unsigned)st.id << 8);
		in.number = n - i;
		in.size = 1000u + (uint64_t)i;
		memset(in.sha256, i, 32);
		in.created = 1700000000;
		rc = s->ops->instance_put(s, &in);
	}
	return rc;
}

static enum err count_row(void *ctx, const struct idx_study *st)
{
	int *n = ctx;
	(void)st;
	(*n)++;
	return ERR_OK;
}

static int query_count(struct index_store *s, const struct idx_study_query *q)
{
	int n = 0;
	if (s->ops->study_query(s, q, count_row, &n) != ERR_OK)
		return -1;
	return n;
}

TEST(store_and_get)
{
	struct index_store *s = open_index(true);
	struct idx_study st;
	struct idx_instance in;
	struct idx_patient p;
	uint8_t h[IDX_HMAC_LEN];
	int64_t sid = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(add_study(s, 1, "1.2.3", "20240101", "CT", 3, &sid) == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	CHECK(s->ops->study_get(s, "1.2.3", &st) == ERR_OK);
	CHECK_EQ_INT(st.n_series, 1);
	CHECK_EQ_INT(st.n_instances, 3);
	CHECK_EQ_STR(st.date, "20240101");
	CHECK(st.enc.n == 1 && st.enc.p[0] == 's');
	CHECK(s->ops->instance_get(s, "1.2.3.1.2", &in) == ERR_OK);
	CHECK_EQ_INT(in.size, 1001);
	CHECK(in.sha256[0] == 1 && in.sha256[31] == 1);
	CHECK_EQ_STR(in.ts_uid, "1.2.840.10008.1.2.1");
	hmac_of(h, 1);
	CHECK(s->ops->patient_get(s, h, &p) == ERR_OK);
	CHECK(p.wrapped_key.n == 7 && memcmp(p.wrapped_key.p, "wrapped", 7) == 0);
	CHECK(p.enc.n == 6 && memcmp(p.enc.p, "sealed", 6) == 0);
	CHECK(s->ops->instance_get(s, "9.9.9", &in) == ERR_NOTFOUND);
	hmac_of(h, 77);
	CHECK(s->ops->patient_get(s, h, &p) == ERR_NOTFOUND);
	s->ops->close(s);
}

TEST(duplicates_refused)
{
	struct index_store *s = open_index(true);
	struct idx_instance in;
	struct idx_study st;
	int64_t sid = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(add_study(s, 1, "1.2.3", "20240101", "CT", 1, &sid) == ERR_OK);
	CHECK(s->ops->instance_get(s, "1.2.3.1.1", &in) == ERR_OK);
	in.id = 0;
	CHECK(s->ops->instance_put(s, &in) == ERR_DENIED);
	/* the same study UID under another patient */
	CHECK(add_study(s, 2, "1.2.3", "20240101", "CT", 0, &sid) == ERR_DENIED);
	CHECK(s->ops->study_get(s, "1.2.3", &st) == ERR_OK);
	CHECK_EQ_INT(st.n_instances, 1);
	s->ops->close(s);
}

/* instance_by_key and instance_remove (crash recovery of an instance
 * whose object did not become durable): the counts follow, the series and
 * study go with their last instance, nothing else is touched. */
TEST(instance_remove)
{
	struct index_store *s = open_index(true);
	struct idx_instance in, in2;
	struct idx_study st;
	struct idx_series se;
	int64_t sid = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(add_study(s, 1, "7.7.7", "20240101", "CT", 2, &sid) == ERR_OK);
	CHECK(add_study(s, 1, "8.8.8", "20240102", "CT", 1, &sid) == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	CHECK(s->ops->instance_get(s, "7.7.7.1.1", &in) == ERR_OK);
	CHECK(s->ops->instance_by_key(s, in.object_key, &in2) == ERR_OK);
	CHECK_EQ_STR(in2.uid, "7.7.7.1.1");
	CHECK(s->ops->instance_by_key(s, "00000000000000000000000000000000", &in2) == ERR_NOTFOUND);
	/* one of two: the series and study stay, one instance fewer */
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(s->ops->instance_remove(s, "7.7.7.1.1") == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	CHECK(s->ops->instance_get(s, "7.7.7.1.1", &in2) == ERR_NOTFOUND);
	CHECK(s->ops->instance_by_key(s, in.object_key, &in2) == ERR_NOTFOUND);
	CHECK(s->ops->instance_get(s, "7.7.7.1.2", &in2) == ERR_OK);
	CHECK(s->ops->study_get(s, "7.7.7", &st) == ERR_OK);
	CHECK_EQ_INT(st.n_series, 1);
	CHECK_EQ_INT(st.n_instances, 1);
	CHECK(s->ops->series_get(s, "7.7.7.1", &se) == ERR_OK);
	CHECK_EQ_INT(se.n_instances, 1);
	/* the last one: its series and study go too */
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(s->ops->instance_remove(s, "7.7.7.1.2") == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	CHECK(s->ops->series_get(s, "7.7.7.1", &se) == ERR_NOTFOUND);
	CHECK(s->ops->study_get(s, "7.7.7", &st) == ERR_NOTFOUND);
	/* the other study untouched; an unknown instance is ERR_NOTFOUND */
	CHECK(s->ops->study_get(s, "8.8.8", &st) == ERR_OK);
	CHECK_EQ_INT(st.n_instances, 1);
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(s->ops->instance_remove(s, "9.9.9") == ERR_NOTFOUND);
	s->ops->rollback(s);
	s->ops->close(s);
}

TEST(rollback_discards)
{
	struct index_store *s = open_index(true);
	struct idx_study st;
	int64_t sid = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(add_study(s, 1, "5.5.5", "20240101", "MR", 2, &sid) == ERR_OK);
	s->ops->rollback(s);
	CHECK(s->ops->study_get(s, "5.5.5", &st) == ERR_NOTFOUND);
	s->ops->close(s);
}

TEST(queries)
{
	struct index_store *s = open_index(true);
	struct idx_study_query q;
	uint8_t h[IDX_HMAC_LEN];
	int64_t sid = 0;
	int i;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	for (i = 0; i < 20; i++) {
		char uid[32], date[16];
		snprintf(uid, sizeof uid, "1.2.%d", i);
		snprintf(date, sizeof date, "2024%02d01", 1 + i % 12);
		CHECK(add_study(s, (uint8_t)(i % 4), uid, date, i % 2 ? "CT" : "MR\\SR", 1, &sid) == ERR_OK);
	}
	CHECK(add_study(s, 9, "1.2.nodate", "", "CT", 1, &sid) == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	memset(&q, 0, sizeof q);
	CHECK_EQ_INT(query_count(s, &q), 21);
	q.date_from = "20240301";
	q.date_to = "20240531";
	CHECK_EQ_INT(query_count(s, &q), 6);   /* months 3..5: i = 2,3,4,14,15,16; the undated study never matches */
	memset(&q, 0, sizeof q);
	q.modality = "SR";
	CHECK_EQ_INT(query_count(s, &q), 10);
	q.modality = "S";    /* no partial match */
	CHECK_EQ_INT(query_count(s, &q), 0);
	memset(&q, 0, sizeof q);
	hmac_of(h, 1);
	q.patient_key_hmac = h;
	CHECK_EQ_INT(query_count(s, &q), 5);
	memset(&q, 0, sizeof q);
	hmac_of(h, 102);   /* patient 2's name hash, and patient 9 (the undated study) */
	q.patient_name_hmac = h;
	CHECK_EQ_INT(query_count(s, &q), 6);
	hmac_of(h, 203);   /* patient 3's other group */
	CHECK_EQ_INT(query_count(s, &q), 6);
	hmac_of(h, 250);   /* nobody's: patient 9 only */
	CHECK_EQ_INT(query_count(s, &q), 1);
	memset(&q, 0, sizeof q);
	q.limit = 7;
	CHECK_EQ_INT(query_count(s, &q), 7);
	q.offset = 18;
	CHECK_EQ_INT(query_count(s, &q), 3);
	q.limit = 0;
	CHECK_EQ_INT(query_count(s, &q), 3);
	memset(&q, 0, sizeof q);
	q.uid = "1.2.7' OR '1'='1";
	CHECK_EQ_INT(query_count(s, &q), 0);
	q.uid = "1.2.7";
	CHECK_EQ_INT(query_count(s, &q), 1);
	q.collection = "other";
	CHECK_EQ_INT(query_count(s, &q), 0);
	s->ops->close(s);
}

static enum err count_series(void *ctx, const struct idx_series *se)
{
	int *n = ctx;
	(void)se;
	(*n)++;
	return ERR_OK;
}

static enum err check_order(void *ctx, const struct idx_instance *in)
{
	int64_t *last = ctx;
	if (in->number < *last)
		return ERR_INTERNAL;
	*last = in->number;
	return ERR_OK;
}

/* An index of schema 2 (no name hashes, an index on patients.name_hmac)
 * opened by this version: its patients become candidates for every name
 * query, the new ones are found by their hashes only, the unused index is
 * dropped (schema 5), its sessions get a column for their audit
 * reference (schema 6, "" for those opened before); an index of schema 3
 * loses its hashes. */
/* An index of a later schema (a newer release's) is refused, and left as
 * it was. */
TEST(later_schema_refused)
{
	struct index_store *s = open_index(true);
	sqlite3 *db = NULL;
	int n = -1;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	s->ops->close(s);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "UPDATE meta SET v = '7' WHERE k = 'schema'", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	s = open_index(false);
	CHECK(s == NULL);
	if (s != NULL)
		s->ops->close(s);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	n = int_of(db, "SELECT v FROM meta WHERE k = 'schema'");
	sqlite3_close(db);
	CHECK_EQ_INT(n, 7);
}

TEST(schema_2_to_6)
{
	struct index_store *s = open_index(true);
	struct idx_study_query q;
	uint8_t h[IDX_HMAC_LEN];
	sqlite3 *db = NULL;
	int64_t sid = 0;
	int n = -1;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(add_study(s, 1, "1.3.1", "20240101", "CT", 1, &sid) == ERR_OK);
	CHECK(add_study(s, 2, "1.3.2", "20240101", "CT", 1, &sid) == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	s->ops->close(s);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
	                   "DROP TABLE patient_names; UPDATE meta SET v = '2' WHERE k = 'schema';"
	                   "CREATE INDEX patients_name ON patients(name_hmac);"
	                   "ALTER TABLE sessions DROP COLUMN ref",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	s = open_index(false);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->begin(s) == ERR_OK);
	CHECK(add_study(s, 3, "1.3.3", "20240101", "CT", 1, &sid) == ERR_OK);
	CHECK(s->ops->commit(s) == ERR_OK);
	memset(&q, 0, sizeof q);
	hmac_of(h, 103);   /* patient 3's name */
	q.patient_name_hmac = h;
	CHECK_EQ_INT(query_count(s, &q), 3);   /* 1 and 2 from before, 3 by its hash */
	hmac_of(h, 104);
	CHECK_EQ_INT(query_count(s, &q), 2);
	s->ops->close(s);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	n = int_of(db, "SELECT v FROM meta WHERE k = 'schema'");
	CHECK_EQ_INT(n, 6);
	n = -1;
	n = int_of(db, "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'ref'");
	CHECK_EQ_INT(n, 1);
	n = -1;
	n = int_of(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'patients_name'");
	sqlite3_close(db);
	CHECK_EQ_INT(n, 0);
	/* schema 3's hashes (ASCII case only) are dropped by the step to 4 */
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "UPDATE meta SET v = '3' WHERE k = 'schema'", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	s = open_index(false);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	hmac_of(h, 104);
	CHECK_EQ_INT(query_count(s, &q), 3);   /* every patient a candidate again */
	s->ops->close(s);
}

TEST(persistence_and_lists)
{
	struct index_store *s = open_index(true);
	struct idx_study st;
	struct idx_series se;
	int64_t sid = 0, last = -1;
	int n = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(add_study(s, 3, "7.7.7", "20200202", "US", 5, &sid) == ERR_OK);
	s->ops->close(s);
	s = open_index(false);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(s->ops->study_get(s, "7.7.7", &st) == ERR_OK);
	CHECK(s->ops->series_list(s, st.id, count_series, &n) == ERR_OK);
	CHECK_EQ_INT(n, 1);
	CHECK(s->ops->series_get(s, "7.7.7.1", &se) == ERR_OK);
	CHECK_EQ_INT(se.n_instances, 5);
	CHECK(s->ops->instance_list(s, se.id, check_order, &last) == ERR_OK);
	CHECK_EQ_INT(last, 5);
	s->ops->close(s);
	unlink(path);
}

TEST(users)
{
	struct index_store *s = open_index(true);
	struct idx_user u, g;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	memset(&u, 0, sizeof u);
	snprintf(u.name, sizeof u.name, "admin");
	snprintf(u.role, sizeof u.role, "admin");
	snprintf(u.pwhash, sizeof u.pwhash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
	u.totp_wrapped.p = (const uint8_t *)"seed";
	u.totp_wrapped.n = 4;
	u.created = 1700000000;
	CHECK(s->ops->user_put(s, &u) == ERR_OK);
	CHECK(u.id > 0);
	CHECK(s->ops->user_put(s, &u) == ERR_DENIED);
	CHECK(s->ops->user_get(s, "admin", &g) == ERR_OK);
	CHECK_EQ_STR(g.role, "admin");
	CHECK(g.totp_wrapped.n == 4 && memcmp(g.totp_wrapped.p, "seed", 4) == 0);
	g.failures = 3;
	g.locked_until = 1700000900;
	g.totp_last_step = 56666666;
	CHECK(s->ops->user_update(s, &g) == ERR_OK);
	CHECK(s->ops->user_get(s, "admin", &u) == ERR_OK);
	CHECK_EQ_INT(u.failures, 3);
	CHECK_EQ_INT(u.locked_until, 1700000900);
	CHECK_EQ_INT(u.totp_last_step, 56666666);
	CHECK(s->ops->user_get(s, "Admin", &u) == ERR_NOTFOUND);
	CHECK(s->ops->user_get(s, "admin' --", &u) == ERR_NOTFOUND);
	s->ops->close(s);
}

int main(void)
{
	RUN(users);
	RUN(store_and_get);
	RUN(duplicates_refused);
	RUN(rollback_discards);
	RUN(instance_remove);
	RUN(queries);
	RUN(schema_2_to_6);
	RUN(later_schema_refused);
	RUN(persistence_and_lists);
	return TEST_DONE();
}
