/* The PostgreSQL store against a real server: a private cluster made for
 * this test (tests/unit/pgcluster.sh: initdb into a temporary directory,
 * its Unix socket there, no TCP).  The same change sequence gives the same
 * dump as the SQLite store; a change prepared on an old table version is
 * refused as a conflict and writes nothing; of two hosts committing on
 * the same version exactly one wins; the schema migrates forward and a
 * newer one is refused; a password in the URI is refused; commits are
 * announced to the other connections; a lost server is reported (never
 * with the password) and a reconnect catches up.  Without the PostgreSQL
 * server installed every test fails. */
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/store.h"
#include "policy/store_int.h"
#include "policy/table.h"
#include "tests/unit/certgen.h"
#include "tests/unit/pgtest.h"
#include "tests/unit/testmain.h"

static char uri[512];
static char *ca;
static time_t NOW;  /* one clock for both backends in a test */
static uint32_t rmin = 500, rmax = 520;
static const struct mm_actor actor = { .uid = 1234, .pid = 99, .user = "alice",
				       .request = "partner.add" };

#define PORT PGTEST_PORT
#define PASSWORD PGTEST_PASSWORD
#define cdir pgtest_dir
#define cluster pgtest_cluster
#define cluster_up pgtest_up
#define cluster_down pgtest_down
#define admin pgtest_admin
#define admin_exec pgtest_exec
#define admin_value pgtest_value

static void setup(void)
{
	char pid[PATH_MAX + 40];

	(void)pid;
	pgtest_fresh_db("t", uri, sizeof(uri));
	unsetenv("PGPASSWORD");
	setenv("PGPASSFILE", "/nonexistent", 1);
	ca = certgen_ca_pem("Store PG Test CA", -60, 86400);
	NOW = time(NULL);
	ck_assert_ptr_nonnull(ca);
}

static void teardown(void)
{
	free(ca);
	ca = NULL;
}

static struct mm_store *open_as(const char *host)
{
	struct mm_store_opts opts = { .host_name = host, .password = PASSWORD };
	struct mm_err err = { 0 };
	struct mm_store *s = NULL;

	ck_assert_msg(mm_store_open_with(uri, &opts, &s, &err) == 0, "%s: %s", err.field,
		      err.msg);
	ck_assert_int_eq(mm_store_backend(s), MM_STORE_POSTGRESQL);
	return s;
}

static struct mm_table *load(struct mm_store *s)
{
	struct mm_err err = { 0 };
	struct mm_table *t = NULL;

	ck_assert_msg(mm_store_load(s, rmin, rmax, &t, &err) == 0, "%s", err.msg);
	return t;
}

static struct mm_partner *make(const char *domain, int n)
{
	char r4[32], r6[48];
	struct mm_err err = { 0 };
	struct mm_partner *p;
	json_t *o;

	snprintf(r4, sizeof(r4), "10.%d.0.0/16", n);
	snprintf(r6, sizeof(r6), "2001:db8:%x::/48", n);
	o = json_pack("{s:s, s:s, s:b, s:[s,s], s:[s], s:s}", "domain", domain, "kind", "non-ims",
		      "agreement", n % 2, "ranges", r4, r6, "gateways", "203.0.113.9", "ca", ca);
	ck_assert_msg(mm_partner_from_json(o, NOW, &p, &err) == 0, "%s: %s", err.field, err.msg);
	json_decref(o);
	return p;
}

/* Prepare one change on *table; commit it to s; on success *table is the
 * new one.  The change set, when ret_next, is handed back uncommitted. */
static int change(struct mm_store *s, struct mm_table **table, enum mm_change_op op,
		  const char *domain, int n, struct mm_err *err)
{
	struct mm_change c = { .op = op };
	struct mm_table *newt;
	int r;

	if (op != MM_CHANGE_ADD)
		c.before = mm_partner_ref(mm_table_find(*table, domain));
	if (op != MM_CHANGE_DEL)
		c.after = make(domain, n);
	r = mm_table_apply(*table, &c, 1, NOW + n, &newt, err);
	if (r == 0) {
		r = mm_store_commit(s, &c, 1, newt, &actor, err);
		if (r == 0) {
			mm_table_free(*table);
			*table = newt;
		} else {
			mm_table_free(newt);
		}
	}
	mm_partner_unref(c.before);
	mm_partner_unref(c.after);
	return r;
}

static void ok(int r, const struct mm_err *err)
{
	ck_assert_msg(r == 0, "%d %s: %s", r, err->field, err->msg);
}

static char *dump(struct mm_store *s)
{
	char *d = NULL;

	ck_assert_int_eq(mm_store_dump(s, &d), 0);
	ck_assert_ptr_nonnull(d);
	return d;
}

static size_t n_audit(struct mm_store *s)
{
	struct mm_err err = { 0 };
	json_t *a;
	size_t n;

	ck_assert_int_eq(mm_store_audit(s, NULL, 0, &a, &err), 0);
	n = json_array_size(a);
	json_decref(a);
	return n;
}

static uint64_t version(struct mm_store *s)
{
	struct mm_err err = { 0 };
	uint64_t v = 99999;

	ck_assert_msg(mm_store_version(s, &v, &err) == 0, "%s", err.msg);
	return v;
}

START_TEST(test_pg_new_store)
{
	struct mm_store *s = open_as("h1"), *s2;
	struct mm_table *t = load(s);
	char *v;

	ck_assert_int_eq(mm_store_schema_version(s), MM_STORE_SCHEMA_VERSION);
	ck_assert_str_eq(mm_store_name(s), uri);
	ck_assert_str_eq(mm_store_host(s), "h1");
	ck_assert_uint_eq(version(s), 0);
	ck_assert_uint_eq(t->n, 0);
	ck_assert_uint_eq(t->version, 0);
	ck_assert_int_ge(mm_store_fd(s), 0);
	ck_assert_ptr_null(mm_store_unreachable(s));
	v = admin_value("t", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND "
			     "tableowner = 'mmtrust' AND tablename IN "
			     "('meta', 'partners', 'audit', 'events')");
	ck_assert_str_eq(v, "4");
	free(v);
	v = admin_value("t", "SELECT value FROM meta WHERE key = 'schema'");
	ck_assert_str_eq(v, "4");
	free(v);
	/* Opened again: nothing to migrate. */
	s2 = open_as("h2");
	ck_assert_int_eq(mm_store_schema_version(s2), MM_STORE_SCHEMA_VERSION);
	mm_store_close(s2);
	mm_table_free(t);
	mm_store_close(s);
}
END_TEST

/* Audit entries without what differs by nature (id, time). */
static json_t *audit_core(struct mm_store *s)
{
	struct mm_err err = { 0 };
	json_t *a, *e;
	size_t i;

	ck_assert_int_eq(mm_store_audit(s, NULL, 0, &a, &err), 0);
	json_array_foreach(a, i, e) {
		json_object_del(e, "id");
		json_object_del(e, "time");
	}
	return a;
}

/* The same change sequence through both backends: the same rows, cursor,
 * versions, audit and events. */
START_TEST(test_pg_same_as_sqlite)
{
	static const struct {
		enum mm_change_op op;
		const char *domain;
		int n;
	} seq[] = {
		{ MM_CHANGE_ADD, "a.example", 1 }, { MM_CHANGE_ADD, "b.example", 2 },
		{ MM_CHANGE_SET, "a.example", 3 }, { MM_CHANGE_ADD, "c.example", 4 },
		{ MM_CHANGE_DEL, "b.example", 0 }, { MM_CHANGE_ADD, "b.example", 5 },
		{ MM_CHANGE_SET, "c.example", 6 }, { MM_CHANGE_ADD, "Z.example", 7 },
	};
	static const struct mm_store_event ev[] = {
		{ .time_ms = 1700000000123, .kind = "tunnel-up", .domain = "a.example",
		  .reqid = 500, .spi = 0xc0ffee, .message = "up" },
		{ .time_ms = 1700000001000, .kind = "drift", .message = "fixed", .suppressed = 3 },
		{ .time_ms = 1700000002000, .kind = "tunnel-down", .domain = "c.example",
		  .message = "down" },
	};
	const char *kinds[] = { "drift", "tunnel-down" };
	struct mm_store_opts opts = { .host_name = "h1" };
	struct mm_store_filter all = { .until_ms = INT64_MAX }, some = all;
	struct mm_store *pg = open_as("h1"), *sq = NULL;
	struct mm_table *tp = load(pg), *ts = NULL, *lp, *ls;
	struct mm_err err = { 0 };
	char path[PATH_MAX], *dp, *ds;
	json_t *ap, *as, *ep, *es;

	snprintf(path, sizeof(path), "%s/same.db", cdir);
	ok(mm_store_open_with(path, &opts, &sq, &err), &err);
	ts = load(sq);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		ok(change(pg, &tp, seq[i].op, seq[i].domain, seq[i].n, &err), &err);
		ok(change(sq, &ts, seq[i].op, seq[i].domain, seq[i].n, &err), &err);
		dp = dump(pg);
		ds = dump(sq);
		ck_assert_msg(!strcmp(dp, ds), "step %zu:\npg:\n%s\nsqlite:\n%s", i, dp, ds);
		ck_assert_msg(strcasestr(dp, seq[i].domain) || seq[i].op == MM_CHANGE_DEL, "%s", dp);
		free(dp);
		free(ds);
		ck_assert_uint_eq(tp->version, i + 1);
		ck_assert_uint_eq(ts->version, i + 1);
	}
	ck_assert_uint_eq(version(pg), version(sq));
	/* What was written is what is read back. */
	lp = load(pg);
	ls = load(sq);
	ck_assert_uint_eq(lp->n, 4);
	ck_assert_uint_eq(lp->n, ls->n);
	ck_assert_uint_eq(lp->version, tp->version);
	ck_assert_uint_eq(lp->reqid_next, ls->reqid_next);
	for (size_t i = 0; i < lp->n; i++) {
		ck_assert_str_eq(lp->partners[i]->domain, ls->partners[i]->domain);
		ck_assert_uint_eq(lp->partners[i]->reqid, ls->partners[i]->reqid);
		ck_assert(mm_partner_config_equal(lp->partners[i], tp->partners[i]));
		ck_assert(mm_partner_config_equal(lp->partners[i], ls->partners[i]));
	}
	mm_table_free(lp);
	mm_table_free(ls);
	ap = audit_core(pg);
	as = audit_core(sq);
	ck_assert_uint_eq(json_array_size(ap), sizeof(seq) / sizeof(seq[0]));
	ck_assert_msg(json_equal(ap, as), "audit differs");
	json_decref(ap);
	json_decref(as);
	/* The changes as log entries: the same but for the clock. */
	ck_assert_int_eq(mm_store_changes(pg, &all, &ap, &err), 0);
	ck_assert_int_eq(mm_store_changes(sq, &all, &as, &err), 0);
	ck_assert_uint_eq(json_array_size(ap), json_array_size(as));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ap, 0), "type")),
			 "change");
	json_decref(ap);
	json_decref(as);
	/* Events: the same entries, trimmed alike. */
	ok(mm_store_events_write(pg, ev, 3, 100, &err), &err);
	ok(mm_store_events_write(sq, ev, 3, 100, &err), &err);
	ok(mm_store_events(pg, &all, &ep, &err), &err);
	ok(mm_store_events(sq, &all, &es, &err), &err);
	ck_assert_uint_eq(json_array_size(ep), 3);
	ck_assert_msg(json_equal(ep, es), "events differ");
	json_decref(ep);
	json_decref(es);
	some.kinds = kinds;
	some.n_kinds = 2;
	some.limit = 1;
	ok(mm_store_events(pg, &some, &ep, &err), &err);
	ok(mm_store_events(sq, &some, &es, &err), &err);
	ck_assert_uint_eq(json_array_size(ep), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ep, 0), "kind")),
			 "tunnel-down");
	ck_assert_msg(json_equal(ep, es), "filtered events differ");
	json_decref(ep);
	json_decref(es);
	ok(mm_store_events_write(pg, ev, 1, 2, &err), &err);
	ok(mm_store_events_write(sq, ev, 1, 2, &err), &err);
	ok(mm_store_events(pg, &all, &ep, &err), &err);
	ok(mm_store_events(sq, &all, &es, &err), &err);
	ck_assert_uint_eq(json_array_size(ep), 2);
	ck_assert_msg(json_equal(ep, es), "trimmed events differ");
	json_decref(ep);
	json_decref(es);
	mm_table_free(tp);
	mm_table_free(ts);
	mm_store_close(pg);
	mm_store_close(sq);
}
END_TEST

/* Audit rows carry the acting host and the version their commit made;
 * events are each host's own. */
START_TEST(test_pg_audit_host_txn)
{
	struct mm_store *a = open_as("h1"), *b = open_as("h2");
	struct mm_table *ta = load(a), *tb;
	struct mm_store_event ev = { .time_ms = 1700000000000, .kind = "drift", .message = "x" };
	struct mm_store_filter all = { .until_ms = INT64_MAX };
	struct mm_err err = { 0 };
	json_t *au, *e, *ea, *eb;
	size_t i;

	ok(change(a, &ta, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	tb = load(b);
	ck_assert_uint_eq(tb->version, 1);
	ok(change(b, &tb, MM_CHANGE_SET, "a.example", 2, &err), &err);
	ok(change(b, &tb, MM_CHANGE_ADD, "b.example", 3, &err), &err);
	ck_assert_uint_eq(tb->version, 3);
	ck_assert_uint_eq(version(a), 3);
	ck_assert_int_eq(mm_store_audit(a, NULL, 0, &au, &err), 0);
	ck_assert_uint_eq(json_array_size(au), 3);
	json_array_foreach(au, i, e) {
		ck_assert_int_eq(json_integer_value(json_object_get(e, "txn")), (json_int_t)i + 1);
		ck_assert_str_eq(json_string_value(json_object_get(e, "host")), i ? "h2" : "h1");
		ck_assert_str_eq(json_string_value(json_object_get(e, "user")), "alice");
	}
	json_decref(au);
	ck_assert_int_eq(mm_store_audit(b, "a.example", 1, &au, &err), 0);
	ck_assert_uint_eq(json_array_size(au), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(au, 0), "action")), "set");
	json_decref(au);
	/* The event history is per host. */
	ok(mm_store_events_write(a, &ev, 1, 10, &err), &err);
	ev.message = "y";
	ok(mm_store_events_write(b, &ev, 1, 10, &err), &err);
	ok(mm_store_events_write(b, &ev, 1, 10, &err), &err);
	ok(mm_store_events(a, &all, &ea, &err), &err);
	ok(mm_store_events(b, &all, &eb, &err), &err);
	ck_assert_uint_eq(json_array_size(ea), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ea, 0), "message")), "x");
	ck_assert_uint_eq(json_array_size(eb), 2);
	json_decref(ea);
	json_decref(eb);
	/* b trims to 1: a's event stays. */
	ok(mm_store_events_write(b, &ev, 1, 1, &err), &err);
	ok(mm_store_events(a, &all, &ea, &err), &err);
	ok(mm_store_events(b, &all, &eb, &err), &err);
	ck_assert_uint_eq(json_array_size(ea), 1);
	ck_assert_uint_eq(json_array_size(eb), 1);
	json_decref(ea);
	json_decref(eb);
	mm_table_free(ta);
	mm_table_free(tb);
	mm_store_close(a);
	mm_store_close(b);
}
END_TEST

/* A change prepared on an older version than the store's: a conflict that
 * names the partner, nothing written. */
START_TEST(test_pg_stale_version_conflict)
{
	struct mm_store *s = open_as("h1");
	struct mm_table *t = load(s), *stale = load(s);
	struct mm_err err = { 0 };
	char *before, *after;

	ok(change(s, &t, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	ck_assert_uint_eq(stale->version, 0);
	before = dump(s);
	ck_assert_int_lt(change(s, &stale, MM_CHANGE_ADD, "b.example", 2, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_CONFLICT);
	ck_assert_msg(strstr(err.msg, "b.example") && strstr(err.msg, "changed on another host"),
		      "%s", err.msg);
	ck_assert_uint_eq(stale->version, 0);
	after = dump(s);
	ck_assert_str_eq(before, after);
	ck_assert_uint_eq(n_audit(s), 1);
	ck_assert_uint_eq(version(s), 1);
	free(before);
	free(after);
	mm_table_free(t);
	mm_table_free(stale);
	mm_store_close(s);
}
END_TEST

struct racer {
	struct mm_store *s;
	struct mm_change c;
	struct mm_table *next;
	pthread_barrier_t *go;
	struct mm_err err;
	int r;
};

static void *race(void *arg)
{
	struct racer *x = arg;

	pthread_barrier_wait(x->go);
	x->r = mm_store_commit(x->s, &x->c, 1, x->next, &actor, &x->err);
	return NULL;
}

/* Two hosts commit on the same version at the same moment: exactly one
 * wins, the other is told it conflicts; the store holds the winner's. */
START_TEST(test_pg_two_hosts_one_wins)
{
	struct mm_store *a = open_as("h1"), *b = open_as("h2");

	for (int round = 0; round < 8; round++) {
		struct mm_table *ta = load(a), *tb = load(b);
		struct racer x[2] = { { .s = a }, { .s = b } };
		pthread_barrier_t go;
		pthread_t th[2];
		char name[2][32], *d;
		int w;

		ck_assert_uint_eq(ta->version, (uint64_t)round);
		ck_assert_uint_eq(tb->version, (uint64_t)round);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++) {
			snprintf(name[i], sizeof(name[i]), "%c%d.example", 'a' + i, round);
			x[i].c.op = MM_CHANGE_ADD;
			x[i].c.after = make(name[i], round * 2 + i + 1);
			x[i].go = &go;
			ok(mm_table_apply(i ? tb : ta, &x[i].c, 1, NOW, &x[i].next, &x[i].err),
			   &x[i].err);
		}
		for (int i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL, race, &x[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		ck_assert_msg((x[0].r == 0) != (x[1].r == 0), "round %d: %d %d (%s | %s)", round,
			      x[0].r, x[1].r, x[0].err.msg, x[1].err.msg);
		w = x[0].r == 0 ? 0 : 1;
		ck_assert_int_eq(x[!w].err.code, MM_ERR_CONFLICT);
		ck_assert_msg(strstr(x[!w].err.msg, name[!w]), "%s", x[!w].err.msg);
		ck_assert_uint_eq(x[w].next->version, (uint64_t)round + 1);
		ck_assert_uint_eq(version(a), (uint64_t)round + 1);
		d = dump(b);
		ck_assert_msg(strstr(d, name[w]) && !strstr(d, name[!w]), "%s", d);
		free(d);
		{
			struct mm_err err = { 0 };
			json_t *au;

			ck_assert_int_eq(mm_store_audit(a, NULL, 1, &au, &err), 0);
			ck_assert_str_eq(json_string_value(json_object_get(json_array_get(au, 0),
									   "host")),
					 w ? "h2" : "h1");
			json_decref(au);
		}
		ck_assert_uint_eq(n_audit(a), (size_t)round + 1);
		for (int i = 0; i < 2; i++) {
			mm_partner_unref(x[i].c.after);
			mm_table_free(x[i].next);
		}
		mm_table_free(ta);
		mm_table_free(tb);
	}
	mm_store_close(a);
	mm_store_close(b);
}
END_TEST

/* The store itself refuses a second holder of a reqid or a domain (a
 * change set that bypassed the table's checks): a conflict naming the
 * partner, nothing written; a change of a row that is not there neither. */
START_TEST(test_pg_unique_reqid_and_domain)
{
	struct mm_store *s = open_as("h1");
	struct mm_table *t = load(s);
	struct mm_err err = { 0 };
	struct mm_change c[2] = { { .op = MM_CHANGE_ADD }, { .op = MM_CHANGE_SET } };
	struct mm_table next;
	char *before, *after;

	ok(change(s, &t, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	ck_assert_uint_eq(mm_table_find(t, "a.example")->reqid, 500);
	before = dump(s);
	next = (struct mm_table){ .reqid_next = 502, .version = t->version };
	c[0].after = make("x.example", 2);
	c[0].after->reqid = 500;
	ck_assert_int_lt(mm_store_commit(s, c, 1, &next, &actor, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_CONFLICT);
	ck_assert_str_eq(err.field, "reqid");
	ck_assert_msg(strstr(err.msg, "x.example") && strstr(err.msg, "500"), "%s", err.msg);
	mm_partner_unref(c[0].after);
	memset(&err, 0, sizeof(err));
	c[0].after = make("a.example", 3);
	c[0].after->reqid = 503;
	ck_assert_int_lt(mm_store_commit(s, c, 1, &next, &actor, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_CONFLICT);
	ck_assert_msg(strstr(err.msg, "a.example") && strstr(err.msg, "exists already"), "%s",
		      err.msg);
	mm_partner_unref(c[0].after);
	/* all or nothing: the first write of two is rolled back */
	memset(&err, 0, sizeof(err));
	c[0].after = make("new.example", 5);
	c[0].after->reqid = 503;
	c[1].before = make("ghost.example", 6);
	c[1].after = make("ghost.example", 6);
	c[1].after->reqid = 504;
	ck_assert_int_lt(mm_store_commit(s, c, 2, &next, &actor, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_NOT_FOUND);
	ck_assert_msg(strstr(err.msg, "ghost.example"), "%s", err.msg);
	ck_assert_uint_eq(next.version, t->version);
	after = dump(s);
	ck_assert_str_eq(before, after);
	ck_assert_uint_eq(n_audit(s), 1);
	ck_assert_uint_eq(version(s), 1);
	/* and the connection is fine afterwards */
	ok(change(s, &t, MM_CHANGE_ADD, "b.example", 7, &err), &err);
	ck_assert_uint_eq(version(s), 2);
	free(before);
	free(after);
	mm_partner_unref(c[0].after);
	mm_partner_unref(c[1].before);
	mm_partner_unref(c[1].after);
	mm_table_free(t);
	mm_store_close(s);
}
END_TEST

/* A database of a newer schema, or holding tables of our names that are
 * not ours, is refused and left as it was. */
START_TEST(test_pg_refuses_newer_and_foreign)
{
	struct mm_store_opts opts = { .host_name = "h1", .password = PASSWORD };
	struct mm_store *s = open_as("h1");
	struct mm_table *t = load(s);
	struct mm_err err = { 0 };
	char *v;

	ok(change(s, &t, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	mm_table_free(t);
	mm_store_close(s);
	admin_exec("t", "UPDATE meta SET value = '99' WHERE key = 'schema'");
	s = NULL;
	ck_assert_int_lt(mm_store_open_with(uri, &opts, &s, &err), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(err.code, MM_ERR_INTERNAL);
	ck_assert_msg(strstr(err.msg, "newer") && strstr(err.msg, "99"), "%s", err.msg);
	v = admin_value("t", "SELECT value FROM meta WHERE key = 'schema'");
	ck_assert_str_eq(v, "99");
	free(v);
	v = admin_value("t", "SELECT count(*) FROM partners");
	ck_assert_str_eq(v, "1");
	free(v);

	/* Someone else's partners table. */
	admin_exec("postgres", "DROP DATABASE t WITH (FORCE)");
	admin_exec("postgres", "CREATE DATABASE t OWNER mmtrust");
	admin_exec("t", "CREATE TABLE partners (x INT); INSERT INTO partners VALUES (7)");
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_store_open_with(uri, &opts, &s, &err), 0);
	ck_assert_msg(strstr(err.msg, "not an mmtrust store") && strstr(err.msg, uri), "%s",
		      err.msg);
	v = admin_value("t", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
	ck_assert_str_eq(v, "1");
	free(v);
	v = admin_value("t", "SELECT x FROM partners");
	ck_assert_str_eq(v, "7");
	free(v);
}
END_TEST

/* A store as schema 3 left it, with a partner and an audit entry,
 * migrates to the current schema on open and keeps them; the table
 * version starts from the audit's last transaction. */
START_TEST(test_pg_migration_from_3)
{
	struct mm_store_opts opts = { .host_name = "h0", .password = PASSWORD };
	struct mm_partner *a = make("a.example", 1);
	struct mm_store_pg *old = NULL;
	struct mm_store_row row;
	struct mm_err err = { 0 };
	struct mm_store *s;
	struct mm_table *t;
	PGconn *c;
	PGresult *res;
	json_t *au;
	char *v;

	ok(mm_store_pg_open_at(uri, &opts, 3, &old, &err), &err);
	ck_assert_int_eq(mm_store_pg_schema_version(old), 3);
	mm_store_pg_close(old);
	v = admin_value("t", "SELECT count(*) FROM information_schema.columns WHERE "
			     "table_name = 'audit' AND column_name = 'host'");
	ck_assert_str_eq(v, "0");
	free(v);
	a->reqid = 503;
	ck_assert_int_eq(mm_store_row_from_partner(a, &row), 0);
	c = admin("t");
	res = PQexecParams(c, "INSERT INTO partners (" MM_STORE_PARTNER_COLUMNS ") VALUES "
			      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
			      "$15, $16, $17, $18, $19, $20, $21, $22, $23)",
			   MM_STORE_N_PARTNER_COLUMNS, NULL, (const char *const *)row.col, NULL,
			   NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = PQexec(c, "INSERT INTO meta VALUES ('reqid_next', '504');"
			"INSERT INTO audit (time, txn, uid, \"user\", pid, request, action, domain, "
			"after, time_ms) VALUES (1700000000, 7, 0, 'root', 1, 'partner.add', 'add', "
			"'a.example', '{}', 1700000000000)");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
	mm_store_row_free(&row);

	s = open_as("h1");
	ck_assert_int_eq(mm_store_schema_version(s), MM_STORE_SCHEMA_VERSION);
	t = load(s);
	ck_assert_uint_eq(t->n, 1);
	ck_assert_uint_eq(mm_table_find(t, "a.example")->reqid, 503);
	ck_assert(mm_partner_config_equal(mm_table_find(t, "a.example"), a));
	ck_assert_uint_eq(t->reqid_next, 504);
	ck_assert_uint_eq(t->version, 7);
	ck_assert_int_eq(mm_store_audit(s, NULL, 0, &au, &err), 0);
	ck_assert_uint_eq(json_array_size(au), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(au, 0), "host")), "");
	json_decref(au);
	ok(change(s, &t, MM_CHANGE_SET, "a.example", 2, &err), &err);
	ck_assert_uint_eq(version(s), 8);
	mm_table_free(t);
	mm_store_close(s);
	mm_partner_unref(a);
}
END_TEST

/* A password in the URI is refused (it would be shown and logged); the
 * password comes from the options or libpq's environment, and no error
 * ever shows it. */
START_TEST(test_pg_password_not_in_uri)
{
	struct mm_store_opts opts = { .host_name = "h1", .password = "wrong-Pw-4711" };
	struct mm_store *s = NULL;
	struct mm_err err = { 0 };
	char bad[700];

	snprintf(bad, sizeof(bad), "postgresql://mmtrust:%s@/t?host=%s&port=%d", PASSWORD, cdir,
		 PORT);
	ck_assert_int_lt(mm_store_open_with(bad, NULL, &s, &err), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(err.code, MM_ERR_INVALID);
	ck_assert_str_eq(err.field, "daemon.store");
	ck_assert_msg(strstr(err.msg, "password") && !strstr(err.msg, PASSWORD), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	snprintf(bad, sizeof(bad), "%s&password=%s", uri, PASSWORD);
	ck_assert_int_lt(mm_store_open_with(bad, NULL, &s, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_INVALID);
	ck_assert_str_eq(err.field, "daemon.store");
	ck_assert_msg(!strstr(err.msg, PASSWORD), "%s", err.msg);
	/* A wrong password: cannot reach, and the password is not said. */
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_store_open_with(uri, &opts, &s, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_INTERNAL);
	ck_assert_str_eq(err.field, "store");
	ck_assert_msg(strstr(err.msg, "cannot reach the shared store") && strstr(err.msg, uri) &&
			      !strstr(err.msg, "wrong-Pw-4711"),
		      "%s", err.msg);
	/* None at all. */
	memset(&err, 0, sizeof(err));
	opts.password = NULL;
	ck_assert_int_lt(mm_store_open_with(uri, &opts, &s, &err), 0);
	ck_assert_str_eq(err.field, "store");
	/* libpq's own: PGPASSWORD. */
	setenv("PGPASSWORD", PASSWORD, 1);
	memset(&err, 0, sizeof(err));
	ok(mm_store_open_with(uri, &opts, &s, &err), &err);
	mm_store_close(s);
	unsetenv("PGPASSWORD");
}
END_TEST

/* Wait (at most 5 s) until s's socket has something, then poll it. */
static int wait_poll(struct mm_store *s, uint64_t *v)
{
	struct pollfd p = { .fd = mm_store_fd(s), .events = POLLIN };

	if (p.fd >= 0)
		poll(&p, 1, 5000);
	return mm_store_poll(s, v);
}

/* A commit through one connection is announced to the others. */
START_TEST(test_pg_notifications)
{
	struct mm_store *a = open_as("h1"), *b = open_as("h2");
	struct mm_table *ta = load(a);
	struct mm_err err = { 0 };
	uint64_t v = 1234;

	ck_assert_int_eq(mm_store_poll(b, &v), 0);
	ck_assert_uint_eq(v, 0);
	ok(change(a, &ta, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	ck_assert_int_eq(wait_poll(b, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(mm_store_poll(b, &v), 0);
	ck_assert_uint_eq(v, 0);
	/* Two commits; b queries in between (the notifications arrive with
	 * its result): the next poll still reports the highest. */
	ok(change(a, &ta, MM_CHANGE_ADD, "b.example", 2, &err), &err);
	ok(change(a, &ta, MM_CHANGE_ADD, "c.example", 3, &err), &err);
	usleep(300 * 1000);
	ck_assert_uint_eq(version(b), 3);
	ck_assert_int_eq(mm_store_poll(b, &v), 0);
	ck_assert_uint_eq(v, 3);
	mm_table_free(ta);
	mm_store_close(a);
	mm_store_close(b);
}
END_TEST

/* The server goes away: poll says so, every call is refused as
 * unreachable (nothing changed, no password shown); after the server is
 * back a reconnect catches up with what changed meanwhile. */
START_TEST(test_pg_unreachable_and_reconnect)
{
	struct mm_store_opts opts = { .host_name = "h1", .password = PASSWORD };
	struct mm_store *a = open_as("h1"), *b, *x = NULL;
	struct mm_table *ta = load(a), *tb;
	struct mm_err err = { 0 };
	const char *why;
	uint64_t v = 77;
	json_t *au;
	int r;

	ok(change(a, &ta, MM_CHANGE_ADD, "a.example", 1, &err), &err);
	ck_assert_int_eq(cluster("stop"), 0);
	/* the server's farewell, then the close: within 5 s */
	for (int i = 0; i < 50 && (r = wait_poll(a, &v)) == 0; i++) {
		ck_assert_uint_eq(v, 0);
		usleep(100 * 1000);
	}
	ck_assert_int_eq(r, -ENOTCONN);
	ck_assert_uint_eq(v, 0);
	why = mm_store_unreachable(a);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, "since") && !strstr(why, PASSWORD), "%s", why);
	ck_assert_int_eq(mm_store_fd(a), -1);
	ck_assert_int_eq(mm_store_poll(a, &v), -ENOTCONN);
	ck_assert_int_lt(change(a, &ta, MM_CHANGE_ADD, "b.example", 2, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_INTERNAL);
	ck_assert_str_eq(err.field, "store");
	ck_assert_msg(strstr(err.msg, "unreachable") && strstr(err.msg, "nothing was changed") &&
			      strstr(err.msg, uri) && !strstr(err.msg, PASSWORD),
		      "%s", err.msg);
	ck_assert_uint_eq(ta->version, 1);
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_store_audit(a, NULL, 0, &au, &err), 0);
	ck_assert_msg(strstr(err.msg, "unreachable"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_store_reconnect(a, &err), 0);
	ck_assert_msg(strstr(err.msg, "cannot reach") && !strstr(err.msg, PASSWORD), "%s",
		      err.msg);
	ck_assert_ptr_nonnull(mm_store_unreachable(a));
	/* Nor does a daemon start against it. */
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_store_open_with(uri, &opts, &x, &err), 0);
	ck_assert_int_eq(err.code, MM_ERR_INTERNAL);
	ck_assert_str_eq(err.field, "store");
	ck_assert_msg(strstr(err.msg, "cannot reach the shared store") && !strstr(err.msg, PASSWORD),
		      "%s", err.msg);

	ck_assert_int_eq(cluster("start"), 0);
	memset(&err, 0, sizeof(err));
	b = open_as("h2");
	tb = load(b);
	ok(change(b, &tb, MM_CHANGE_ADD, "c.example", 3, &err), &err);
	ok(mm_store_reconnect(a, &err), &err);
	ck_assert_ptr_null(mm_store_unreachable(a));
	ck_assert_int_ge(mm_store_fd(a), 0);
	ck_assert_uint_eq(version(a), 2);
	mm_table_free(ta);
	ta = load(a);
	ck_assert_uint_eq(ta->version, 2);
	ck_assert_ptr_nonnull(mm_table_find(ta, "a.example"));
	ck_assert_ptr_nonnull(mm_table_find(ta, "c.example"));
	ck_assert_ptr_null(mm_table_find(ta, "b.example"));
	/* listening again */
	ck_assert_int_eq(mm_store_poll(a, &v), 0);
	ok(change(b, &tb, MM_CHANGE_ADD, "d.example", 4, &err), &err);
	ck_assert_int_eq(wait_poll(a, &v), 0);
	ck_assert_uint_eq(v, 3);
	/* and writing again, on the version announced */
	mm_table_free(ta);
	ta = load(a);
	ck_assert_uint_eq(ta->version, 3);
	ok(change(a, &ta, MM_CHANGE_ADD, "b.example", 2, &err), &err);
	ck_assert_uint_eq(version(b), 4);
	mm_table_free(ta);
	mm_table_free(tb);
	mm_store_close(a);
	mm_store_close(b);
}
END_TEST

struct opener {
	pthread_barrier_t *go;
	char host[16];
	struct mm_store *s;
	struct mm_err err;
	int r;
};

static void *open_race(void *arg)
{
	struct opener *o = arg;
	struct mm_store_opts opts = { .host_name = o->host, .password = PASSWORD };

	pthread_barrier_wait(o->go);
	o->r = mm_store_open_with(uri, &opts, &o->s, &o->err);
	return NULL;
}

/* Hosts opening a new database at the same moment: every one opens it,
 * the schema is made once (the migration lock). */
START_TEST(test_pg_concurrent_first_open)
{
	struct opener o[4];
	pthread_barrier_t go;
	pthread_t th[4];
	char *v;

	pthread_barrier_init(&go, NULL, 4);
	for (int i = 0; i < 4; i++) {
		o[i] = (struct opener){ .go = &go };
		snprintf(o[i].host, sizeof(o[i].host), "h%d", i);
		ck_assert_int_eq(pthread_create(&th[i], NULL, open_race, &o[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < 4; i++) {
		ck_assert_msg(o[i].r == 0, "host %d: %s", i, o[i].err.msg);
		ck_assert_int_eq(mm_store_schema_version(o[i].s), MM_STORE_SCHEMA_VERSION);
		mm_store_close(o[i].s);
	}
	v = admin_value("t", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
	ck_assert_str_eq(v, "4");
	free(v);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store_pg");
	TCase *tc = tcase_create("store_pg");

	tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pg_new_store);
	tcase_add_test(tc, test_pg_concurrent_first_open);
	tcase_add_test(tc, test_pg_same_as_sqlite);
	tcase_add_test(tc, test_pg_audit_host_txn);
	tcase_add_test(tc, test_pg_stale_version_conflict);
	tcase_add_test(tc, test_pg_two_hosts_one_wins);
	tcase_add_test(tc, test_pg_unique_reqid_and_domain);
	tcase_add_test(tc, test_pg_refuses_newer_and_foreign);
	tcase_add_test(tc, test_pg_migration_from_3);
	tcase_add_test(tc, test_pg_password_not_in_uri);
	tcase_add_test(tc, test_pg_notifications);
	tcase_add_test(tc, test_pg_unreachable_and_reconnect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
