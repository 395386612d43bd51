/* The table and its store: reqid allocation (stable across restarts, never
 * reused while the partner exists, a clear error when the range is used
 * up), transactions that are all-or-nothing, the audit trail, the schema
 * version. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/store.h"
#include "policy/table.h"
#include "tests/unit/certgen.h"
#include "tests/unit/pgtest.h"
#include "tests/unit/testmain.h"

static char dir[] = "/tmp/mmtrust-test-store-XXXXXX";
static char path[300];
static char *ca;
static struct mm_store *store;
static struct mm_table *table;
static uint32_t rmin = 500, rmax = 504;
static const struct mm_actor actor = { .uid = 1234, .pid = 99, .user = "alice",
					.request = "partner.add" };

static struct mm_partner *make(const char *domain, int n)
{
	char r4[32], r6[48];
	struct mm_err err = { 0 };
	struct mm_partner *p;
	json_t *o;

	snprintf(r4, sizeof(r4), "10.%d.0.0/16", n);
	snprintf(r6, sizeof(r6), "2001:db8:%x::/48", n);
	o = json_pack("{s:s, s:s, s:b, s:[s,s], s:[s], s:s}", "domain", domain, "kind", "non-ims",
		      "agreement", 0, "ranges", r4, r6, "gateways", "203.0.113.9", "ca", ca);
	ck_assert_msg(mm_partner_from_json(o, time(NULL), &p, &err) == 0, "%s: %s", err.field,
		      err.msg);
	json_decref(o);
	return p;
}

static int run(enum mm_change_op op, const char *domain, int n, struct mm_err *err)
{
	struct mm_change c = { .op = op };
	struct mm_table *newt;
	int r;

	if (op != MM_CHANGE_ADD)
		c.before = mm_partner_ref(mm_table_find(table, domain));
	if (op != MM_CHANGE_DEL)
		c.after = make(domain, n);
	r = mm_table_apply(table, &c, 1, time(NULL), &newt, err);
	if (r == 0) {
		r = mm_store_commit(store, &c, 1, newt, &actor, err);
		if (r == 0) {
			mm_table_free(table);
			table = newt;
		} else {
			mm_table_free(newt);
		}
	}
	mm_partner_unref(c.before);
	mm_partner_unref(c.after);
	return r;
}

static void reopen(void)
{
	struct mm_err err = { 0 };

	mm_table_free(table);
	mm_store_close(store);
	ck_assert_int_eq(mm_store_open(path, &store, &err), 0);
	ck_assert_int_eq(mm_store_load(store, rmin, rmax, &table, &err), 0);
}

static void setup(void)
{
	struct mm_err err = { 0 };

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	ca = certgen_ca_pem("Store Test CA", -60, 86400);
	ck_assert_ptr_nonnull(ca);
	ck_assert_int_eq(mm_store_open(path, &store, &err), 0);
	ck_assert_int_eq(mm_store_load(store, rmin, rmax, &table, &err), 0);
}

/* The same tests on a PostgreSQL store: a fresh database of the private
 * cluster (pgtest.h); the password from libpq's PGPASSWORD. */
static void setup_pg(void)
{
	struct mm_err err = { 0 };

	pgtest_fresh_db("store", path, sizeof(path));
	setenv("PGPASSWORD", PGTEST_PASSWORD, 1);
	ca = certgen_ca_pem("Store Test CA", -60, 86400);
	ck_assert_ptr_nonnull(ca);
	ck_assert_msg(mm_store_open(path, &store, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(mm_store_backend(store), MM_STORE_POSTGRESQL);
	ck_assert_int_eq(mm_store_load(store, rmin, rmax, &table, &err), 0);
}

static void teardown_pg(void)
{
	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	free(ca);
}

static void teardown(void)
{
	char cmd[400];

	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	free(ca);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir, "/tmp/mmtrust-test-store-XXXXXX");
}

START_TEST(test_reqid_stable_across_restart)
{
	struct mm_err err = { 0 };

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "b.example", 2, &err), 0);
	ck_assert_uint_eq(mm_table_find(table, "a.example")->reqid, 500);
	ck_assert_uint_eq(mm_table_find(table, "b.example")->reqid, 501);
	ck_assert_str_eq(mm_table_find_reqid(table, 501)->domain, "b.example");
	ck_assert_str_eq(mm_table_find_reqid(table, 500)->domain, "a.example");
	ck_assert_ptr_null(mm_table_find_reqid(table, 502));
	ck_assert_ptr_null(mm_table_find_reqid(table, 0));
	reopen();
	ck_assert_str_eq(mm_table_find_reqid(table, 501)->domain, "b.example");
	ck_assert_uint_eq(table->n, 2);
	ck_assert_uint_eq(mm_table_find(table, "a.example")->reqid, 500);
	ck_assert_uint_eq(mm_table_find(table, "b.example")->reqid, 501);
	/* A change keeps the reqid. */
	ck_assert_int_eq(run(MM_CHANGE_SET, "a.example", 3, &err), 0);
	reopen();
	ck_assert_uint_eq(mm_table_find(table, "a.example")->reqid, 500);
	/* The cursor survives the restart: the next one is 502, not 500 again. */
	ck_assert_int_eq(run(MM_CHANGE_ADD, "c.example", 4, &err), 0);
	ck_assert_uint_eq(mm_table_find(table, "c.example")->reqid, 502);
}
END_TEST

START_TEST(test_reqid_no_reuse_and_exhaustion)
{
	struct mm_err err = { 0 };
	char name[32];

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "p%d.example", i);
		ck_assert_int_eq(run(MM_CHANGE_ADD, name, i + 1, &err), 0);
	}
	ck_assert_int_lt(run(MM_CHANGE_ADD, "p5.example", 9, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_EXHAUSTED);
	ck_assert_str_eq(err.field, "reqid");
	ck_assert_msg(strstr(err.msg, "500-504 is exhausted"), "%s", err.msg);
	/* Free 501: only that one can be handed out, and only because the
	 * range has gone round. */
	ck_assert_int_eq(run(MM_CHANGE_DEL, "p1.example", 0, &err), 0);
	reopen();
	ck_assert_int_eq(run(MM_CHANGE_ADD, "p5.example", 9, &err), 0);
	ck_assert_uint_eq(mm_table_find(table, "p5.example")->reqid, 501);
}
END_TEST

START_TEST(test_reqid_deleted_not_reused_early)
{
	struct mm_err err = { 0 };

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_DEL, "a.example", 0, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "b.example", 2, &err), 0);
	ck_assert_uint_eq(mm_table_find(table, "b.example")->reqid, 501);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_uint_eq(mm_table_find(table, "a.example")->reqid, 502);
}
END_TEST

START_TEST(test_transaction_all_or_nothing)
{
	struct mm_err err = { 0 };
	struct mm_change c[2] = { { .op = MM_CHANGE_ADD }, { .op = MM_CHANGE_SET } };
	char *before, *after;

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(mm_store_dump(store, &before), 0);
	/* The second write of the transaction fails in the store itself (a SET
	 * of a row that does not exist); the first must be rolled back. */
	c[0].after = make("new.example", 5);
	c[0].after->reqid = 503;
	c[1].before = make("ghost.example", 6);
	c[1].after = make("ghost.example", 6);
	c[1].after->reqid = 504;
	{
		struct mm_table next = { .reqid_next = 505, .version = table->version };

		ck_assert_int_lt(mm_store_commit(store, c, 2, &next, &actor, &err), 0);
	}
	ck_assert_msg(strstr(err.msg, "ghost.example"), "%s", err.msg);
	ck_assert_int_eq(mm_store_dump(store, &after), 0);
	ck_assert_str_eq(before, after);
	free(after);
	/* Nor did the audit trail record the refused request. */
	{
		json_t *entries;

		ck_assert_int_eq(mm_store_audit(store, NULL, 0, &entries, &err), 0);
		ck_assert_uint_eq(json_array_size(entries), 1);
		json_decref(entries);
	}
	reopen();
	ck_assert_int_eq(mm_store_dump(store, &after), 0);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	mm_partner_unref(c[0].after);
	mm_partner_unref(c[1].before);
	mm_partner_unref(c[1].after);
}
END_TEST

START_TEST(test_audit_trail)
{
	struct mm_err err = { 0 };
	json_t *entries, *e;

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_SET, "a.example", 2, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "b.example", 3, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_DEL, "b.example", 0, &err), 0);
	reopen();
	ck_assert_int_eq(mm_store_audit(store, NULL, 0, &entries, &err), 0);
	ck_assert_uint_eq(json_array_size(entries), 4);
	e = json_array_get(entries, 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "action")), "set");
	ck_assert_str_eq(json_string_value(json_object_get(e, "user")), "alice");
	ck_assert_int_eq(json_integer_value(json_object_get(e, "uid")), 1234);
	ck_assert_str_eq(json_string_value(json_array_get(
				 json_object_get(json_object_get(e, "before"), "ranges"), 0)),
			 "10.1.0.0/16");
	ck_assert_str_eq(json_string_value(json_array_get(
				 json_object_get(json_object_get(e, "after"), "ranges"), 0)),
			 "10.2.0.0/16");
	/* The PEM is not copied into the audit trail; its fingerprint is. */
	ck_assert_ptr_null(json_object_get(json_object_get(e, "after"), "ca"));
	ck_assert_ptr_nonnull(json_object_get(json_object_get(e, "after"), "ca_sha256"));
	e = json_array_get(entries, 3);
	ck_assert(json_is_null(json_object_get(e, "after")));
	json_decref(entries);
	ck_assert_int_eq(mm_store_audit(store, "a.example", 0, &entries, &err), 0);
	ck_assert_uint_eq(json_array_size(entries), 2);
	json_decref(entries);
	ck_assert_int_eq(mm_store_audit(store, NULL, 1, &entries, &err), 0);
	ck_assert_uint_eq(json_array_size(entries), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(entries, 0), "action")),
			 "del");
	json_decref(entries);
}
END_TEST

START_TEST(test_schema_version)
{
	struct mm_err err = { 0 };
	struct mm_store *s2;
	sqlite3 *db;

	ck_assert_int_eq(mm_store_schema_version(store), MM_STORE_SCHEMA_VERSION);
	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_lt(mm_store_open(path, &s2, &err), 0);
	ck_assert_msg(strstr(err.msg, "newer"), "%s", err.msg);
}
END_TEST

/* Schema version 1 as it shipped (policy/store.c migration 0), written
 * here independently of the code under test. */
static const char schema_v1[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE partners (domain TEXT PRIMARY KEY, reqid INTEGER NOT NULL UNIQUE,"
	"  kind TEXT NOT NULL, agreement INTEGER NOT NULL, esp TEXT NOT NULL,"
	"  path TEXT NOT NULL, enabled INTEGER NOT NULL, ranges TEXT NOT NULL,"
	"  gateways TEXT NOT NULL, ca_pem TEXT NOT NULL, ca_sha256 TEXT NOT NULL,"
	"  ca_subject TEXT NOT NULL, ca_not_before INTEGER NOT NULL,"
	"  ca_not_after INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);"
	"CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
	"  txn INTEGER NOT NULL, uid INTEGER NOT NULL, user TEXT NOT NULL, pid INTEGER NOT NULL,"
	"  request TEXT NOT NULL, action TEXT NOT NULL, domain TEXT NOT NULL, before TEXT,"
	"  after TEXT);"
	"CREATE INDEX audit_domain ON audit(domain, id);"
	"PRAGMA application_id = 1835889778;"
	"PRAGMA user_version = 1;";

/* Commit one partner change to the store (the table stays as it is). */
static void commit_set(struct mm_partner *before, struct mm_partner *after)
{
	struct mm_change c = { .op = MM_CHANGE_SET, .before = before, .after = after };
	struct mm_err err = { 0 };
	struct mm_table *newt;

	ck_assert_int_eq(mm_table_apply(table, &c, 1, time(NULL), &newt, &err), 0);
	ck_assert_int_eq(mm_store_commit(store, &c, 1, newt, &actor, &err), 0);
	mm_table_free(newt);
}

/* A store of schema 1 migrates to the current one on open and keeps its
 * partners: reqids, CA, times; the new fields take what a partner meant
 * before them (one CA, no CRLs, ifuri).  Then the new fields are stored. */
START_TEST(test_migration_from_v1)
{
	struct mm_partner *a = make("a.example", 1), *p, *n = NULL;
	struct mm_err err = { 0 };
	char *ca2 = certgen_ca_pem("Store Test CA 2", -60, 86400), *sql;
	sqlite3 *db;
	json_t *set;

	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	unlink(path);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
	sql = sqlite3_mprintf("INSERT INTO partners VALUES ('a.example', 503, 'non-ims', 0, "
			      "'encrypt', 'tunnel', 1, '[\"10.1.0.0/16\",\"2001:db8:1::/48\"]', "
			      "'[\"203.0.113.9\"]', %Q, %Q, %Q, %lld, %lld, 1700000000, 1700000001);"
			      "INSERT INTO meta VALUES ('reqid_next', '504');",
			      a->cas[0].pem, a->cas[0].info.sha256, a->cas[0].info.subject,
			      (long long)a->cas[0].info.not_before,
			      (long long)a->cas[0].info.not_after);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(db);

	ck_assert_msg(mm_store_open(path, &store, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(mm_store_schema_version(store), MM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(mm_store_load(store, rmin, rmax, &table, &err), 0);
	ck_assert_uint_eq(table->n, 1);
	p = mm_table_find(table, "a.example");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->reqid, 503);
	ck_assert_uint_eq(p->n_cas, 1);
	ck_assert_str_eq(p->cas[0].pem, a->cas[0].pem);
	ck_assert_str_eq(p->cas[0].info.sha256, a->cas[0].info.sha256);
	ck_assert_int_eq(p->cas[0].info.not_after, a->cas[0].info.not_after);
	ck_assert_uint_eq(p->n_crls, 0);
	ck_assert_int_eq(p->revocation, MM_REV_IFURI);
	ck_assert_int_eq(p->created, 1700000000);
	ck_assert(mm_partner_config_equal(p, a));
	ck_assert_uint_eq(table->reqid_next, 504);

	/* the new fields go into the migrated store and come back */
	set = json_pack("{s:[s,s], s:[s], s:s}", "ca", a->cas[0].pem, ca2, "crls", "/etc/x.crl",
			"revocation", "strict");
	ck_assert_int_eq(mm_partner_update(p, set, NULL, NULL, time(NULL), &n, &err), 0);
	commit_set(p, n);
	reopen();
	p = mm_table_find(table, "a.example");
	ck_assert(mm_partner_config_equal(p, n));
	ck_assert_uint_eq(p->n_cas, 2);
	ck_assert_str_eq(p->cas[1].info.sha256, n->cas[1].info.sha256);
	ck_assert_str_eq(p->cas[1].info.subject, "CN=Store Test CA 2");
	ck_assert_str_eq(p->crls[0], "/etc/x.crl");
	ck_assert_int_eq(p->revocation, MM_REV_STRICT);
	/* and back to one CA: the second columns are emptied */
	json_decref(set);
	set = json_pack("{s:s}", "ca", ca2);
	mm_partner_unref(n);
	ck_assert_int_eq(mm_partner_update(p, set, NULL, NULL, time(NULL), &n, &err), 0);
	commit_set(p, n);
	reopen();
	p = mm_table_find(table, "a.example");
	ck_assert_uint_eq(p->n_cas, 1);
	ck_assert_str_eq(p->cas[0].pem, ca2);
	json_decref(set);
	mm_partner_unref(n);
	mm_partner_unref(a);
	free(ca2);
}
END_TEST

START_TEST(test_wal_mode)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}
END_TEST


static void write_file(const char *file, const void *data, size_t len)
{
	FILE *f = fopen(file, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static char *read_file(const char *file, size_t *ret_len)
{
	FILE *f = fopen(file, "rb");
	char *buf = malloc(1 << 20);
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	*ret_len = n;
	return buf;
}

static void sql(const char *file, const char *statements)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(file, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, statements, NULL, NULL, NULL) == SQLITE_OK, "%s",
		      sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* What a store file may not be: each is refused with the path and the
 * reason, and the file is left exactly as it was. */
enum { NOT_EMPTY, NOT_GARBAGE, NOT_FOREIGN, NOT_BARE_SQLITE, NOT_CORRUPT, NOT_DIR, NOT__N };

START_TEST(test_refuses_what_is_not_a_store)
{
	static const char *const reason[NOT__N] = { "empty", "not an mmtrust store",
						    "not an mmtrust store", "not an mmtrust store",
						    "integrity check", "not a regular file" };
	char other[400], *before = NULL, *after;
	size_t n_before = 0, n_after;
	struct mm_err err = { 0 };
	struct mm_store *s2 = NULL;

	snprintf(other, sizeof(other), "%s/other.db", dir);
	switch (_i) {
	case NOT_EMPTY:
		write_file(other, "", 0);
		break;
	case NOT_GARBAGE:
		write_file(other, "this is not a database, just some text\n\x01\x02\xff", 42);
		break;
	case NOT_FOREIGN:
		sql(other, "CREATE TABLE t (x); INSERT INTO t VALUES (1); PRAGMA user_version = 3");
		break;
	case NOT_BARE_SQLITE:
		/* A database someone made with sqlite3(1): no tables, no version. */
		sql(other, "CREATE TABLE t (x); DROP TABLE t; VACUUM");
		break;
	case NOT_CORRUPT: {
		char *img;
		size_t len;

		for (int i = 0; i < 4; i++) {
			char d[40];
			struct mm_err e = { 0 };

			snprintf(d, sizeof(d), "p%d.example", i);
			ck_assert_int_eq(run(MM_CHANGE_ADD, d, i, &e), 0);
		}
		mm_table_free(table);
		table = NULL;
		mm_store_close(store);
		store = NULL;
		sql(path, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE");
		img = read_file(path, &len);
		ck_assert_uint_ge(len, 4 * 4096);
		/* The b-tree header of the third page. */
		memset(img + 2 * 4096, 0xa5, 16);
		write_file(other, img, len);
		free(img);
		break;
	}
	case NOT_DIR:
		ck_assert_int_eq(mkdir(other, 0700), 0);
		break;
	}
	if (_i != NOT_DIR)
		before = read_file(other, &n_before);
	ck_assert_int_lt(mm_store_open(other, &s2, &err), 0);
	ck_assert_ptr_null(s2);
	ck_assert_msg(strstr(err.msg, other), "no path in: %s", err.msg);
	ck_assert_msg(strstr(err.msg, reason[_i]), "case %d: no '%s' in: %s", _i, reason[_i],
		      err.msg);
	if (_i != NOT_DIR) {
		after = read_file(other, &n_after);
		ck_assert_uint_eq(n_after, n_before);
		ck_assert_msg(!memcmp(before, after, n_after), "case %d: the file was changed", _i);
		free(after);
	}
	free(before);
}
END_TEST

static int app_id(const char *file)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int v;

	ck_assert_int_eq(sqlite3_open(file, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A new store carries our application_id; a store written before the id
 * existed (our tables, a schema version) is still ours and gets it. */
START_TEST(test_application_id)
{
	struct mm_err err = { 0 };

	ck_assert_int_eq(run(MM_CHANGE_ADD, "kept.example", 1, &err), 0);
	ck_assert_int_eq(app_id(path), MM_STORE_APPLICATION_ID);
	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	sql(path, "PRAGMA application_id = 0");
	ck_assert_int_eq(app_id(path), 0);
	reopen();
	ck_assert_ptr_nonnull(mm_table_find(table, "kept.example"));
	ck_assert_int_eq(app_id(path), MM_STORE_APPLICATION_ID);
}
END_TEST


static void unref_all(struct mm_change *c, int n)
{
	for (int i = 0; i < n; i++)
		mm_partner_unref(c[i].after);
}

/* Reqid allocation against a reference: random held sets (adds and
 * deletes move the cursor around the range), then one change set adding
 * many partners at once.  Every reqid stays unique and in the range; the
 * change is refused as exhausted exactly when it asks for more than are
 * free. */
START_TEST(test_reqid_allocation_model)
{
	unsigned seed = 4242;

	for (int round = 0; round < 60; round++) {
		uint32_t lo = 1000, span = 5 + (uint32_t)(rand_r(&seed) % 100), hi = lo + span - 1;
		struct mm_table *t, *nt;
		struct mm_err err = { 0 };
		struct mm_change c[240];
		int next_id = 0, n_new, held;

		ck_assert_int_eq(mm_table_new(lo, hi, &t), 0);
		/* A held set: add some, delete some, one change at a time. */
		for (int step = 0; step < 60; step++) {
			struct mm_change one = { 0 };

			if (t->n && rand_r(&seed) % 3 == 0) {
				one.op = MM_CHANGE_DEL;
				one.before = mm_partner_ref(t->partners[rand_r(&seed) % t->n]);
			} else if (t->n < span) {
				char d[32];

				snprintf(d, sizeof(d), "h%d.example", next_id);
				one.op = MM_CHANGE_ADD;
				one.after = make(d, next_id++ % 250);
			} else {
				continue;
			}
			if (mm_table_apply(t, &one, 1, time(NULL), &nt, &err) == 0) {
				mm_table_free(t);
				t = nt;
			}
			mm_partner_unref(one.before);
			mm_partner_unref(one.after);
			if (next_id >= 100)
				break;
		}
		held = (int)t->n;
		n_new = 1 + (int)(rand_r(&seed) % (span + 3));
		if (n_new > 240 - next_id)
			n_new = 240 - next_id;
		for (int i = 0; i < n_new; i++) {
			char d[32];

			snprintf(d, sizeof(d), "new%d.example", i);
			c[i] = (struct mm_change){ .op = MM_CHANGE_ADD,
						   .after = make(d, (next_id + i) % 250) };
		}
		/* Ranges must not overlap: keep the held ones' numbers apart. */
		int r = mm_table_apply(t, c, (size_t)n_new, time(NULL), &nt, &err);

		if (r < 0 && err.code == MM_ERR_CONFLICT) {
			/* make() reused a range number: not what this test is about. */
			unref_all(c, n_new);
			mm_table_free(t);
			continue;
		}
		if ((uint32_t)(held + n_new) > span) {
			ck_assert_msg(r < 0 && err.code == MM_ERR_EXHAUSTED,
				      "round %d: %d held + %d new in %u: %s", round, held, n_new, span,
				      err.msg);
		} else {
			ck_assert_msg(r == 0, "round %d: %d held + %d new in %u refused: %s", round,
				      held, n_new, span, err.msg);
			for (size_t i = 0; i < nt->n; i++) {
				ck_assert_uint_ge(nt->by_reqid[i]->reqid, lo);
				ck_assert_uint_le(nt->by_reqid[i]->reqid, hi);
				if (i)
					ck_assert_msg(nt->by_reqid[i]->reqid !=
							      nt->by_reqid[i - 1]->reqid,
						      "round %d: reqid %u twice", round,
						      nt->by_reqid[i]->reqid);
			}
			mm_table_free(nt);
		}
		unref_all(c, n_new);
		mm_table_free(t);
	}
}
END_TEST

START_TEST(test_diff)
{
	struct mm_err err = { 0 };
	struct mm_partner *want[2];
	struct mm_change *c;
	size_t n;

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "b.example", 2, &err), 0);
	want[0] = make("a.example", 1);  /* unchanged */
	want[1] = make("c.example", 3);  /* new; b.example goes */
	ck_assert_int_eq(mm_table_diff(table, want, 2, &c, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(c[0].op, MM_CHANGE_ADD);
	ck_assert_str_eq(c[0].after->domain, "c.example");
	ck_assert_int_eq(c[1].op, MM_CHANGE_DEL);
	ck_assert_str_eq(c[1].before->domain, "b.example");
	mm_changes_free(c, n);
	mm_partner_unref(want[1]);
	want[1] = make("b.example", 2);
	ck_assert_int_eq(mm_table_diff(table, want, 2, &c, &n, &err), 0);
	ck_assert_uint_eq(n, 0);
	mm_changes_free(c, n);
	mm_partner_unref(want[0]);
	mm_partner_unref(want[1]);
}
END_TEST

/* A store of the previous schema (3) migrates to 4: its partners stay,
 * the table version becomes the last change's txn, old audit rows have no
 * host; the next commit is version 4 with this host in its audit row. */
START_TEST(test_migration_from_v3)
{
	struct mm_err err = { 0 };
	char *before, *after;
	json_t *audit;

	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "b.example", 2, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_SET, "a.example", 3, &err), 0);
	ck_assert_uint_eq(table->version, 3);
	ck_assert_int_eq(mm_store_dump(store, &before), 0);
	mm_table_free(table);
	table = NULL;
	mm_store_close(store);
	store = NULL;
	sql(path, "DROP INDEX events_host; ALTER TABLE events DROP COLUMN host;"
		  "ALTER TABLE audit DROP COLUMN host; DELETE FROM meta WHERE key = 'version';"
		  "PRAGMA user_version = 3");
	reopen();
	ck_assert_int_eq(mm_store_schema_version(store), 4);
	ck_assert_uint_eq(table->version, 3);
	ck_assert_uint_eq(table->n, 2);
	ck_assert_int_eq(mm_store_dump(store, &after), 0);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	ck_assert_int_eq(mm_store_audit(store, NULL, 0, &audit, &err), 0);
	ck_assert_uint_eq(json_array_size(audit), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(audit, 2), "host")), "");
	json_decref(audit);
	ck_assert_int_eq(run(MM_CHANGE_DEL, "b.example", 2, &err), 0);
	ck_assert_uint_eq(table->version, 4);
	ck_assert_int_eq(mm_store_audit(store, NULL, 1, &audit, &err), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(audit, 0), "txn")), 4);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(audit, 0), "host")),
			 mm_store_host(store));
	ck_assert_str_ne(mm_store_host(store), "");
	json_decref(audit);
}
END_TEST

/* A change prepared on an older table version than the store holds (a
 * change committed meanwhile): a conflict naming the partner, nothing
 * written -- rows, cursor, audit and version as they were. */
START_TEST(test_stale_version_conflict)
{
	struct mm_change c = { .op = MM_CHANGE_ADD };
	struct mm_table *stale, *newt;
	struct mm_err err = { 0 };
	char *before, *after;
	uint64_t v = 0;
	json_t *entries;

	ck_assert_int_eq(mm_store_load(store, rmin, rmax, &stale, &err), 0);
	ck_assert_int_eq(run(MM_CHANGE_ADD, "a.example", 1, &err), 0);
	ck_assert_uint_eq(table->version, 1);
	ck_assert_int_eq(mm_store_dump(store, &before), 0);
	c.after = make("b.example", 2);
	ck_assert_int_eq(mm_table_apply(stale, &c, 1, time(NULL), &newt, &err), 0);
	ck_assert_uint_eq(newt->version, 0);
	ck_assert_int_lt(mm_store_commit(store, &c, 1, newt, &actor, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_CONFLICT);
	ck_assert_msg(strstr(err.msg, "b.example") && strstr(err.msg, "changed on another host"),
		      "%s", err.msg);
	ck_assert_uint_eq(newt->version, 0);
	ck_assert_int_eq(mm_store_dump(store, &after), 0);
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(mm_store_audit(store, NULL, 0, &entries, &err), 0);
	ck_assert_uint_eq(json_array_size(entries), 1);
	json_decref(entries);
	ck_assert_int_eq(mm_store_version(store, &v, &err), 0);
	ck_assert_uint_eq(v, 1);
	free(before);
	free(after);
	mm_partner_unref(c.after);
	mm_table_free(newt);
	mm_table_free(stale);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* The allocation model commits hundreds of transactions (fsync):
	 * seconds of wall time on a busy machine, not a hang. */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reqid_stable_across_restart);
	tcase_add_test(tc, test_reqid_no_reuse_and_exhaustion);
	tcase_add_test(tc, test_reqid_deleted_not_reused_early);
	tcase_add_test(tc, test_transaction_all_or_nothing);
	tcase_add_test(tc, test_audit_trail);
	tcase_add_test(tc, test_schema_version);
	tcase_add_test(tc, test_wal_mode);
	tcase_add_test(tc, test_migration_from_v1);
	tcase_add_test(tc, test_migration_from_v3);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_reqid_allocation_model);
	tcase_add_loop_test(tc, test_refuses_what_is_not_a_store, 0, NOT__N);
	tcase_add_test(tc, test_application_id);
	tcase_add_test(tc, test_stale_version_conflict);
	suite_add_tcase(s, tc);
	/* What does not depend on SQLite, on PostgreSQL too. */
	tc = tcase_create("postgresql");
	tcase_add_unchecked_fixture(tc, pgtest_up, pgtest_down);
	tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reqid_stable_across_restart);
	tcase_add_test(tc, test_reqid_no_reuse_and_exhaustion);
	tcase_add_test(tc, test_reqid_deleted_not_reused_early);
	tcase_add_test(tc, test_transaction_all_or_nothing);
	tcase_add_test(tc, test_audit_trail);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_reqid_allocation_model);
	tcase_add_test(tc, test_stale_version_conflict);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
