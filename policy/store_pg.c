/* The PostgreSQL backend of the store: one partner table shared by a
 * fleet of hosts, through libpq.
 *
 * The same tables and columns as the SQLite schema (policy/store.c), in
 * PostgreSQL's types, in the connected database's current schema.  Every
 * commit takes the table version's row FOR UPDATE (one writer at a time
 * across all hosts), writes only onto the version its change set was
 * computed from, bumps the version and announces it with NOTIFY
 * mmtrust_table '<version>'; every connection LISTENs for it.
 *
 * A lost connection is remembered (mm_store_pg_unreachable) and every call
 * is refused with the reason until mm_store_pg_reconnect succeeds: nothing
 * is queued.  Partner rows are written and read through the shared text
 * forms of store_int.h only. */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mm_store_pg {
	PGconn *conn;          /* NULL while unreachable */
	PGconn *pending;       /* a reconnect under way (mm_store_pg_reconnect_start) */
	int schema_seen;       /* the schema version last read, 0: none yet */
	char *uri;             /* as given: never holds a password (refused) */
	char *password;        /* opts->password, or NULL (libpq's env, passfile) */
	bool has_connect_timeout, has_keepalives, has_tcp_user_timeout;
	int schema_target;     /* MM_STORE_SCHEMA_VERSION but for tests */
	char host[256];
	char *unreachable;     /* why and since when; NULL when connected */
	uint64_t notified;     /* the highest version announced since the last poll */
};

/* Migration i takes the schema from version i to i+1, as store.c's do for
 * SQLite (the same tables and columns); never edit one that has shipped,
 * append a new one.  The schema version is meta's 'schema' row. */
static const char *const migrations[] = {
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE partners ("
	"  domain TEXT PRIMARY KEY,"
	"  reqid BIGINT NOT NULL UNIQUE,"
	"  kind TEXT NOT NULL,"
	"  agreement BIGINT NOT NULL,"
	"  esp TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  enabled BIGINT NOT NULL,"
	"  ranges TEXT NOT NULL,"
	"  gateways TEXT NOT NULL,"
	"  ca_pem TEXT NOT NULL,"
	"  ca_sha256 TEXT NOT NULL,"
	"  ca_subject TEXT NOT NULL,"
	"  ca_not_before BIGINT NOT NULL,"
	"  ca_not_after BIGINT NOT NULL,"
	"  created BIGINT NOT NULL,"
	"  updated BIGINT NOT NULL);"
	"CREATE TABLE audit ("
	"  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  time BIGINT NOT NULL,"
	"  txn BIGINT NOT NULL,"
	"  uid BIGINT NOT NULL,"
	"  \"user\" TEXT NOT NULL,"
	"  pid BIGINT NOT NULL,"
	"  request TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  domain TEXT NOT NULL,"
	"  before TEXT,"
	"  after TEXT);"
	"CREATE INDEX audit_domain ON audit(domain, id);",
	/* 2: the second CA of a rollover, CRL files, revocation mode. */
	"ALTER TABLE partners"
	"  ADD COLUMN ca2_pem TEXT NOT NULL DEFAULT '',"
	"  ADD COLUMN ca2_sha256 TEXT NOT NULL DEFAULT '',"
	"  ADD COLUMN ca2_subject TEXT NOT NULL DEFAULT '',"
	"  ADD COLUMN ca2_not_before BIGINT NOT NULL DEFAULT 0,"
	"  ADD COLUMN ca2_not_after BIGINT NOT NULL DEFAULT 0,"
	"  ADD COLUMN crls TEXT NOT NULL DEFAULT '[]',"
	"  ADD COLUMN revocation TEXT NOT NULL DEFAULT 'ifuri';",
	/* 3: the event history, the audit's time in milliseconds. */
	"ALTER TABLE audit ADD COLUMN time_ms BIGINT;"
	"CREATE TABLE events ("
	"  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  time BIGINT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  domain TEXT,"
	"  reqid BIGINT,"
	"  spi BIGINT,"
	"  suppressed BIGINT NOT NULL DEFAULT 0,"
	"  message TEXT NOT NULL);"
	"CREATE INDEX events_time ON events(time);"
	"CREATE INDEX events_domain ON events(domain, time);",
	/* 4: the table version and the acting host in audit and events. */
	"ALTER TABLE audit ADD COLUMN host TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE events ADD COLUMN host TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX events_host ON events(host, time);"
	"INSERT INTO meta (key, value) SELECT 'version', COALESCE(MAX(txn), 0)::text FROM audit "
	"  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == MM_STORE_SCHEMA_VERSION, "one migration per schema version");

/* Held (per transaction) by whoever reads or migrates the schema: hosts
 * opening a new database at once migrate it one after the other. */
#define MIGRATION_LOCK "1835889778"

#define AUDIT_COLUMNS \
	"id, time, txn, host, uid, \"user\", pid, request, action, domain, before, after"
#define N_AUDIT_COLUMNS 12

/* libpq's messages end in a newline and may span lines: one line. */
static char *one_line(const char *msg)
{
	char *t = strdup(msg && msg[0] ? msg : "unknown error");
	size_t n;

	if (!t)
		return NULL;
	for (char *c = t; *c; c++)
		if (*c == '\n' || *c == '\t' || *c == '\r')
			*c = ' ';
	n = strlen(t);
	while (n && t[n - 1] == ' ')
		t[--n] = '\0';
	/* collapse runs of spaces */
	for (char *r = t, *w = t; ; r++) {
		if (*r == ' ' && w > t && w[-1] == ' ')
			continue;
		*w++ = *r;
		if (!*r)
			break;
	}
	return t;
}

/* The highest version announced so far (notifications arrive with every
 * result, our own commits' included). */
static void drain(struct mm_store_pg *s)
{
	PGnotify *n;

	if (!s->conn)
		return;
	while ((n = PQnotifies(s->conn))) {
		uint64_t v = strtoull(n->extra ? n->extra : "0", NULL, 10);

		if (!strcmp(n->relname, "mmtrust_table") && v > s->notified)
			s->notified = v;
		PQfreemem(n);
	}
}

/* The connection is lost: drop it, remember why and since when. */
static void mark_unreachable(struct mm_store_pg *s, const char *why)
{
	char *line = one_line(why), when[32];
	time_t now = time(NULL);
	struct tm tm;

	if (s->conn) {
		drain(s);
		PQfinish(s->conn);
		s->conn = NULL;
	}
	if (s->unreachable) {  /* still the first loss: keep its time */
		free(line);
		return;
	}
	if (!gmtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(when, sizeof(when), "%lld", (long long)now);
	if (asprintf(&s->unreachable, "%s (since %s)", line ? line : "connection lost",
		     when) < 0)
		s->unreachable = NULL;
	if (!s->unreachable)
		s->unreachable = strdup("connection lost");
	free(line);
}

static int unreachable_err(struct mm_store_pg *s, bool write, struct mm_err *err)
{
	return mm_err_set(err, MM_ERR_INTERNAL, "store", "the shared store %s is unreachable: %s%s",
			  s->uri, s->unreachable ? s->unreachable : "not connected",
			  write ? ": nothing was changed" : "");
}

/* Whether a failed statement failed because the connection did. */
static bool conn_lost(struct mm_store_pg *s, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (!res || PQstatus(s->conn) == CONNECTION_BAD)
		return true;
	/* 08: connection exception; 57P01-57P03: the server shuts down. */
	return state && (!strncmp(state, "08", 2) || !strcmp(state, "57P01") ||
			 !strcmp(state, "57P02") || !strcmp(state, "57P03"));
}

struct run_opts {
	bool write;             /* a change: errors say nothing was changed */
	const char *partner;    /* a partner write: unique violations name it */
	const char *reqid;
};

/* Run sql (one statement when n > 0: text parameters v) and return its
 * result when its status is want; else NULL, err filled (the connection
 * marked lost when it was). */
static PGresult *run(struct mm_store_pg *s, const char *sql, int n, const char *const *v,
		     ExecStatusType want, const char *what, const struct run_opts *o,
		     struct mm_err *err)
{
	static const struct run_opts none = { 0 };
	PGresult *res;
	char *msg;

	if (!o)
		o = &none;
	if (!s->conn) {
		unreachable_err(s, o->write, err);
		return NULL;
	}
	res = n ? PQexecParams(s->conn, sql, n, NULL, v, NULL, NULL, 0) : PQexec(s->conn, sql);
	drain(s);
	if (res && PQresultStatus(res) == want)
		return res;
	if (conn_lost(s, res)) {
		mark_unreachable(s, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
		unreachable_err(s, o->write, err);
		PQclear(res);
		return NULL;
	}
	msg = one_line(PQresultErrorMessage(res));
	if (o->partner && !strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "23505")) {
		const char *c = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

		if (c && strstr(c, "reqid"))
			mm_err_set(err, MM_ERR_CONFLICT, "reqid",
				   "partner %s: reqid %s is held by another partner in the shared "
				   "store %s: nothing was changed",
				   o->partner, o->reqid ? o->reqid : "?", s->uri);
		else
			mm_err_set(err, MM_ERR_CONFLICT, "partner",
				   "partner %s exists already in the shared store %s: nothing was "
				   "changed", o->partner, s->uri);
	} else if (o->partner) {
		mm_err_set(err, MM_ERR_INTERNAL, "store", "partner %s: %s: %s%s", o->partner, what,
			   msg ? msg : "out of memory", o->write ? ": nothing was changed" : "");
	} else {
		mm_err_set(err, MM_ERR_INTERNAL, "store", "%s: %s%s", what,
			   msg ? msg : "out of memory", o->write ? ": nothing was changed" : "");
	}
	free(msg);
	PQclear(res);
	return NULL;
}

/* Run a statement whose result is of no interest; 0 or <0, err filled. */
static int cmd(struct mm_store_pg *s, const char *sql, const char *what, bool write,
	       struct mm_err *err)
{
	struct run_opts o = { .write = write };
	PGresult *res = run(s, sql, 0, NULL, PGRES_COMMAND_OK, what, &o, err);

	if (!res)
		return -EIO;
	PQclear(res);
	return 0;
}

/* End a transaction that failed (a lost connection has no transaction). */
static void rollback(struct mm_store_pg *s)
{
	if (s->conn) {
		PGresult *res = PQexec(s->conn, "ROLLBACK");

		drain(s);
		if (!res || PQstatus(s->conn) == CONNECTION_BAD)
			mark_unreachable(s, res ? PQresultErrorMessage(res)
						: PQerrorMessage(s->conn));
		PQclear(res);
	}
}

/* The server's notices (and the FATAL it sends every client when it shuts
 * down) would go to stderr as raw lines: what matters of them is in the
 * next call's error, which says the store is unreachable and why. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* s's connection parameters (keys, vals: NULL-terminated, room for 10). */
static void conn_params(const struct mm_store_pg *s, const char **keys, const char **vals)
{
	int k = 0;

	/* expand_dbname: the URI's parameters, then these over them (only
	 * those the URI does not set itself, the password aside).  A server
	 * that stops answering is found dead within about 5 s. */
	keys[k] = "dbname", vals[k++] = s->uri;
	if (s->password)
		keys[k] = "password", vals[k++] = s->password;
	if (!s->has_connect_timeout)
		keys[k] = "connect_timeout", vals[k++] = "5";
	if (!s->has_keepalives) {
		keys[k] = "keepalives", vals[k++] = "1";
		keys[k] = "keepalives_idle", vals[k++] = "5";
		keys[k] = "keepalives_interval", vals[k++] = "2";
		keys[k] = "keepalives_count", vals[k++] = "2";
	}
	if (!s->has_tcp_user_timeout)
		keys[k] = "tcp_user_timeout", vals[k++] = "5000";
	keys[k] = NULL, vals[k] = NULL;
}

/* A connection just made: its session settings and LISTEN.  NULL and *why
 * (caller frees) when they fail (c is finished then). */
static PGconn *session(PGconn *c, char **why)
{
	PGresult *res;

	PQsetNoticeProcessor(c, quiet_notice, NULL);
	/* A statement or lock that hangs (a server in trouble, a host
	 * holding the version row) fails instead of freezing the daemon. */
	res = PQexec(c, "SET statement_timeout = '10s'; SET lock_timeout = '10s';"
			"SET idle_in_transaction_session_timeout = '60s';"
			"SET application_name = 'mmtrustd'; LISTEN mmtrust_table");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		*why = one_line(PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	return c;
}

/* A new connection with s's parameters, its session settings and LISTEN
 * (blocking: at open); on failure NULL and *why (caller frees) says why. */
static PGconn *connect_pg(struct mm_store_pg *s, char **why)
{
	const char *keys[10], *vals[10];
	PGconn *c;

	*why = NULL;
	conn_params(s, keys, vals);
	c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		*why = strdup("out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		*why = one_line(PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return session(c, why);
}

/* The schema version inside the current transaction: 0 for a database
 * without our tables; -EPROTO (err filled) for one holding a table of
 * ours without our schema row. */
static int read_schema(struct mm_store_pg *s, struct mm_err *err)
{
	PGresult *res;
	int ours, v;

	res = run(s, "SELECT count(*) FILTER (WHERE tablename = 'meta'), count(*) FROM pg_tables "
		     "WHERE schemaname = current_schema() AND "
		     "tablename IN ('meta', 'partners', 'audit', 'events')",
		  0, NULL, PGRES_TUPLES_OK, "cannot read the schema", NULL, err);
	if (!res)
		return -EIO;
	v = atoi(PQgetvalue(res, 0, 0));
	ours = atoi(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (ours == 0)
		return 0;
	if (v) {
		res = run(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL,
			  PGRES_TUPLES_OK, "cannot read the schema version", NULL, err);
		if (!res)
			return -EIO;
		v = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
		PQclear(res);
		if (v > 0)
			return v;
	}
	mm_err_set(err, MM_ERR_INTERNAL, "store",
		   "%s is not an mmtrust store: it holds tables of the names mmtrust uses "
		   "(meta, partners, audit, events) but no mmtrust schema version; only a "
		   "database without them becomes a new store", s->uri);
	return -EPROTO;
}

/* Migrate the schema forward to s->schema_target, each step one
 * transaction under the migration lock (so that hosts opening the same
 * new database at once do it one after another).  No copy of the database
 * is taken before: operators keep one with pg_dump before upgrading. */
static int migrate(struct mm_store_pg *s, struct mm_err *err)
{
	for (;;) {
		char sql[160];
		int v, r;

		r = cmd(s, "BEGIN", "cannot begin the migration", false, err);
		if (r == 0) {
			PGresult *res = run(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", 0,
					    NULL, PGRES_TUPLES_OK, "cannot lock the schema", NULL,
					    err);
			r = res ? 0 : -EIO;
			PQclear(res);
		}
		if (r < 0) {
			rollback(s);
			return r;
		}
		v = read_schema(s, err);
		if (v < 0) {
			rollback(s);
			return v;
		}
		if (v > MM_STORE_SCHEMA_VERSION) {
			rollback(s);
			return mm_err_set(err, MM_ERR_INTERNAL, "store",
					  "%s: schema version %d is newer than this mmtrust "
					  "understands (%d)", s->uri, v, MM_STORE_SCHEMA_VERSION);
		}
		if (v >= s->schema_target)
			return cmd(s, "COMMIT", "cannot read the schema", false, err);
		snprintf(sql, sizeof(sql),
			 "INSERT INTO meta (key, value) VALUES ('schema', '%d') "
			 "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", v + 1);
		r = cmd(s, migrations[v], "migration", true, err);
		if (r == 0)
			r = cmd(s, sql, "migration", true, err);
		if (r == 0)
			r = cmd(s, "COMMIT", "migration", true, err);
		if (r < 0) {
			rollback(s);
			mm_err_prefix(err, "migration");
			return r;
		}
	}
}

void mm_store_pg_close(struct mm_store_pg *s)
{
	if (!s)
		return;
	if (s->conn)
		PQfinish(s->conn);
	if (s->pending)
		PQfinish(s->pending);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->uri);
	free(s->unreachable);
	free(s);
}

int mm_store_pg_open_at(const char *uri, const struct mm_store_opts *opts, int schema_version,
			struct mm_store_pg **ret, struct mm_err *err)
{
	PQconninfoOption *info;
	struct mm_store_pg *s;
	char *errmsg = NULL, *why;
	int r;

	if (schema_version < 1 || schema_version > MM_STORE_SCHEMA_VERSION)
		return mm_err_set(err, MM_ERR_INVALID, "schema", "no schema version %d",
				  schema_version);
	/* The URI's own rules (a password in it refused) are the store's,
	 * checked at config load too. */
	r = mm_store_check_spec(uri, err);
	if (r < 0)
		return r;
	info = PQconninfoParse(uri, &errmsg);
	if (!info) {
		PQfreemem(errmsg);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		PQconninfoFree(info);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	for (PQconninfoOption *o = info; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "connect_timeout"))
			s->has_connect_timeout = true;
		else if (!strncmp(o->keyword, "keepalives", 10))
			s->has_keepalives = true;
		else if (!strcmp(o->keyword, "tcp_user_timeout"))
			s->has_tcp_user_timeout = true;
	}
	PQconninfoFree(info);
	s->schema_target = schema_version;
	mm_store_set_host(s->host, sizeof(s->host), opts);
	s->uri = strdup(uri);
	if (opts && opts->password && !(s->password = strdup(opts->password))) {
		mm_store_pg_close(s);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	if (!s->uri) {
		mm_store_pg_close(s);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	s->conn = connect_pg(s, &why);
	if (!s->conn) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "cannot reach the shared store %s: %s",
			       s->uri, why ? why : "out of memory");
		free(why);
		mm_store_pg_close(s);
		return r;
	}
	r = migrate(s, err);
	if (r < 0) {
		mm_store_pg_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

int mm_store_pg_open(const char *uri, const struct mm_store_opts *opts, struct mm_store_pg **ret,
		     struct mm_err *err)
{
	return mm_store_pg_open_at(uri, opts, MM_STORE_SCHEMA_VERSION, ret, err);
}

const char *mm_store_pg_name(const struct mm_store_pg *s)
{
	return s->uri;
}

const char *mm_store_pg_host(const struct mm_store_pg *s)
{
	return s->host;
}

int mm_store_pg_schema_version(struct mm_store_pg *s)
{
	PGresult *res;
	int v;

	/* Away: the version it had (it only changes at an open's migration). */
	if (!s->conn)
		return s->schema_seen > 0 ? s->schema_seen : -EIO;
	res = run(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL, PGRES_TUPLES_OK,
		  "cannot read the schema version", NULL, NULL);
	if (!res)
		return s->schema_seen > 0 ? s->schema_seen : -EIO;
	v = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	if (v > 0)
		s->schema_seen = v;
	return v < 0 ? -EIO : v;
}

/* meta's row key (absent: *ret untouched, 0). */
static int meta_get(struct mm_store_pg *s, const char *key, bool for_update, uint64_t *ret,
		    const struct run_opts *o, struct mm_err *err)
{
	const char *v[1] = { key };
	PGresult *res = run(s, for_update ? "SELECT value FROM meta WHERE key = $1 FOR UPDATE"
					  : "SELECT value FROM meta WHERE key = $1",
			    1, v, PGRES_TUPLES_OK, "cannot read the store's meta data", o, err);

	if (!res)
		return -EIO;
	if (PQntuples(res) == 1)
		*ret = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int mm_store_pg_version(struct mm_store_pg *s, uint64_t *ret, struct mm_err *err)
{
	*ret = 0;
	return meta_get(s, "version", false, ret, NULL, err);
}

int mm_store_pg_audited(struct mm_store_pg *s, uint64_t from, uint64_t to, bool *ret,
			struct mm_err *err)
{
	char f[24], t[24];
	const char *v[2] = { f, t };
	PGresult *res;

	*ret = false;
	if (to <= from) {
		*ret = to == from;
		return 0;
	}
	snprintf(f, sizeof(f), "%" PRIu64, from);
	snprintf(t, sizeof(t), "%" PRIu64, to);
	res = run(s, "SELECT count(DISTINCT txn) FROM audit WHERE txn > $1::bigint AND "
		     "txn <= $2::bigint", 2, v, PGRES_TUPLES_OK, "cannot read the audit trail",
		  NULL, err);
	if (!res)
		return -EIO;
	*ret = PQntuples(res) == 1 && strtoull(PQgetvalue(res, 0, 0), NULL, 10) == to - from;
	PQclear(res);
	return 0;
}

int mm_store_pg_load(struct mm_store_pg *s, uint32_t reqid_min, uint32_t reqid_max,
		     struct mm_table **ret, struct mm_err *err)
{
	struct mm_partner **list = NULL;
	uint64_t version = 0, next = reqid_min;
	PGresult *res = NULL;
	size_t n = 0, rows;
	int r;

	/* One snapshot: the rows and the version agree. */
	r = cmd(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "cannot read partners",
		false, err);
	if (r < 0)
		return r;
	res = run(s, "SELECT " MM_STORE_PARTNER_COLUMNS " FROM partners ORDER BY domain COLLATE \"C\"",
		  0, NULL, PGRES_TUPLES_OK, "cannot read partners", NULL, err);
	if (!res) {
		r = -EIO;
		goto out;
	}
	rows = (size_t)PQntuples(res);
	list = calloc(rows ? rows : 1, sizeof(*list));
	if (!list) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		goto out;
	}
	for (; n < rows; n++) {
		const char *col[MM_STORE_N_PARTNER_COLUMNS];

		for (int i = 0; i < MM_STORE_N_PARTNER_COLUMNS; i++)
			col[i] = PQgetisnull(res, (int)n, i) ? NULL : PQgetvalue(res, (int)n, i);
		r = mm_store_row_to_partner(col, &list[n]);
		if (r < 0) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "partner row %s is corrupt: %s", col[0] ? col[0] : "",
				       strerror(-r));
			goto out;
		}
	}
	r = meta_get(s, "reqid_next", false, &next, NULL, err);
	if (r == 0)
		r = meta_get(s, "version", false, &version, NULL, err);
	if (r == 0)
		r = cmd(s, "COMMIT", "cannot read partners", false, err);
	if (r == 0)
		r = mm_table_build(list, n, reqid_min, reqid_max, (uint32_t)next, ret, err);
	if (r < 0)
		mm_err_prefix(err, "store");
	else
		(*ret)->version = version;
out:
	if (r < 0)
		rollback(s);
	PQclear(res);
	for (size_t i = 0; i < n; i++)
		mm_partner_unref(list[i]);
	free(list);
	return r;
}

static int write_partner(struct mm_store_pg *s, const struct mm_change *c, struct mm_err *err)
{
	static const char *const sql[MM_CHANGE__MAX] = {
		[MM_CHANGE_ADD] = "INSERT INTO partners (" MM_STORE_PARTNER_COLUMNS ") VALUES "
				  "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
				  "$15, $16, $17, $18, $19, $20, $21, $22, $23)",
		[MM_CHANGE_SET] = "UPDATE partners SET reqid = $2, kind = $3, agreement = $4, "
				  "esp = $5, path = $6, enabled = $7, ranges = $8, gateways = $9, "
				  "ca_pem = $10, ca_sha256 = $11, ca_subject = $12, "
				  "ca_not_before = $13, ca_not_after = $14, created = $15, "
				  "updated = $16, ca2_pem = $17, ca2_sha256 = $18, ca2_subject = $19, "
				  "ca2_not_before = $20, ca2_not_after = $21, crls = $22, "
				  "revocation = $23 WHERE domain = $1",
		[MM_CHANGE_DEL] = "DELETE FROM partners WHERE domain = $1",
	};
	const struct mm_partner *p = c->after ? c->after : c->before;
	struct mm_store_row row = { 0 };
	const char *domain[1] = { p->domain };
	struct run_opts o = { .write = true, .partner = p->domain };
	PGresult *res;
	int r = 0;

	if (c->op != MM_CHANGE_DEL) {
		if (mm_store_row_from_partner(p, &row) < 0)
			return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		o.reqid = row.col[1];
		res = run(s, sql[c->op], MM_STORE_N_PARTNER_COLUMNS, (const char *const *)row.col,
			  PGRES_COMMAND_OK, "cannot write partner", &o, err);
	} else {
		res = run(s, sql[c->op], 1, domain, PGRES_COMMAND_OK, "cannot write partner", &o,
			  err);
	}
	if (!res)
		r = -EIO;
	else if (strcmp(PQcmdTuples(res), "1") != 0)
		r = mm_err_set(err, MM_ERR_NOT_FOUND, "store",
			       "partner %s: expected to %s one row, changed %s", p->domain,
			       mm_change_op_name(c->op), PQcmdTuples(res));
	PQclear(res);
	mm_store_row_free(&row);
	return r;
}

static int write_audit(struct mm_store_pg *s, const struct mm_change *c, int64_t now_ms,
		       uint64_t txn, const struct mm_actor *actor, struct mm_err *err)
{
	const struct mm_partner *p = c->after ? c->after : c->before;
	char *before = mm_store_audit_text(c->before), *after = mm_store_audit_text(c->after);
	char t[24], tx[24], uid[24], pid[24], ms[24];
	const char *v[12];
	struct run_opts o = { .write = true };
	PGresult *res;
	int r = 0;

	if ((c->before && !before) || (c->after && !after)) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		goto out;
	}
	snprintf(t, sizeof(t), "%" PRId64, now_ms / 1000);
	snprintf(tx, sizeof(tx), "%" PRIu64, txn);
	snprintf(uid, sizeof(uid), "%lld", (long long)actor->uid);
	snprintf(pid, sizeof(pid), "%lld", (long long)actor->pid);
	snprintf(ms, sizeof(ms), "%" PRId64, now_ms);
	v[0] = t, v[1] = tx, v[2] = uid, v[3] = actor->user, v[4] = pid, v[5] = actor->request;
	v[6] = mm_change_op_name(c->op), v[7] = p->domain, v[8] = before, v[9] = after;
	v[10] = ms, v[11] = s->host;
	res = run(s, "INSERT INTO audit (time, txn, uid, \"user\", pid, request, action, domain, "
		     "before, after, time_ms, host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
		     "$10, $11, $12)",
		  12, v, PGRES_COMMAND_OK, "cannot write audit entry", &o, err);
	if (!res)
		r = -EIO;
	PQclear(res);
out:
	free(before);
	free(after);
	return r;
}

int mm_store_pg_commit(struct mm_store_pg *s, const struct mm_change *changes, size_t n,
		       struct mm_table *next, const struct mm_actor *actor, struct mm_err *err)
{
	struct run_opts o = { .write = true };
	char v_next[24], v_reqid[24];
	const char *v[2] = { v_reqid, v_next };
	uint64_t version = 0;
	struct timespec ts;
	PGresult *res;
	int64_t now;
	int r;

	if (!s->conn)
		return unreachable_err(s, true, err);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	r = cmd(s, "BEGIN", "cannot begin the change", true, err);
	if (r < 0)
		return r;
	/* The version row FOR UPDATE: one writer at a time across all the
	 * hosts; the others wait here and then see the new version. */
	res = run(s, "SELECT value FROM meta WHERE key = 'version' FOR UPDATE", 0, NULL,
		  PGRES_TUPLES_OK, "cannot read the table version", &o, err);
	if (!res) {
		r = -EIO;
	} else if (PQntuples(res) != 1) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store",
			       "the shared store %s has no table version: nothing was changed",
			       s->uri);
	} else {
		version = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	}
	PQclear(res);
	if (r == 0 && version != next->version)
		r = mm_store_conflict(changes, n, next->version, version, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = write_partner(s, &changes[i], err);
		if (r == 0)
			r = write_audit(s, &changes[i], now, version + 1, actor, err);
	}
	if (r == 0) {
		snprintf(v_reqid, sizeof(v_reqid), "%" PRIu32, next->reqid_next);
		snprintf(v_next, sizeof(v_next), "%" PRIu64, version + 1);
		res = run(s, "INSERT INTO meta (key, value) VALUES ('reqid_next', $1), "
			     "('version', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
			  2, v, PGRES_COMMAND_OK, "cannot write the table version", &o, err);
		r = res ? 0 : -EIO;
		PQclear(res);
	}
	if (r == 0) {
		res = run(s, "SELECT pg_notify('mmtrust_table', $1)", 1, (const char *const *)&v[1],
			  PGRES_TUPLES_OK, "cannot announce the change", &o, err);
		r = res ? 0 : -EIO;
		PQclear(res);
	}
	if (r == 0) {
		res = run(s, "COMMIT", 0, NULL, PGRES_COMMAND_OK, "cannot commit the change", &o,
			  err);
		if (!res && !s->conn) {
			/* Lost while the COMMIT was on its way: the server may
			 * have committed.  Say so rather than "nothing". */
			char why[256];

			snprintf(why, sizeof(why), "%s", s->unreachable ? s->unreachable : "");
			memset(err, 0, sizeof(*err));
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "the connection to the shared store %s broke during COMMIT "
				       "(%s): the change may or may not have been made; this host "
				       "reads the table again when the store is back, and "
				       "`mmtrustctl log --kind change` will show it if it was",
				       s->uri, why);
		} else if (!res)
			r = -EIO;
		else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "the shared store %s rolled the change back: nothing was "
				       "changed", s->uri);
		PQclear(res);
		if (r < 0)
			return r;
	}
	if (r < 0) {
		rollback(s);
		return r;
	}
	next->version = version + 1;
	return 0;
}

static json_t *audit_row_json(const PGresult *res, int row)
{
	const char *col[N_AUDIT_COLUMNS];

	for (int i = 0; i < N_AUDIT_COLUMNS; i++)
		col[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
	return mm_store_audit_json(col);
}

int mm_store_pg_audit(struct mm_store_pg *s, const char *domain, unsigned limit,
		      json_t **ret, struct mm_err *err)
{
	char lim[16];
	const char *v[2] = { domain, limit ? lim : NULL };
	json_t *arr;
	PGresult *res;

	snprintf(lim, sizeof(lim), "%u", limit);
	res = run(s, "SELECT * FROM (SELECT " AUDIT_COLUMNS " FROM audit "
		     "WHERE $1::text IS NULL OR domain = $1 ORDER BY id DESC LIMIT $2::bigint) a "
		     "ORDER BY id",
		  2, v, PGRES_TUPLES_OK, "cannot read the audit trail", NULL, err);
	if (!res)
		return -EIO;
	arr = json_array();
	if (!arr) {
		PQclear(res);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr, audit_row_json(res, i));
	PQclear(res);
	*ret = arr;
	return 0;
}

int mm_store_pg_changes(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret,
			struct mm_err *err)
{
	char lim[16], since[24], until[24];
	const char *v[4] = { f->domain, f->limit ? lim : NULL, since, until };
	json_t *arr;
	PGresult *res;

	if (!mm_store_filter_kind(f, "change")) {
		if (!(*ret = json_array()))
			return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		return 0;
	}
	snprintf(lim, sizeof(lim), "%u", f->limit);
	snprintf(since, sizeof(since), "%" PRId64, f->since_ms);
	snprintf(until, sizeof(until), "%" PRId64, f->until_ms);
	res = run(s, "SELECT * FROM (SELECT " AUDIT_COLUMNS ", COALESCE(time_ms, time * 1000) AS ms "
		     "FROM audit WHERE ($1::text IS NULL OR domain = $1) AND "
		     "COALESCE(time_ms, time * 1000) >= $3::bigint AND "
		     "COALESCE(time_ms, time * 1000) <= $4::bigint "
		     "ORDER BY id DESC LIMIT $2::bigint) a ORDER BY id",
		  4, v, PGRES_TUPLES_OK, "cannot read the audit trail", NULL, err);
	if (!res)
		return -EIO;
	arr = json_array();
	if (!arr) {
		PQclear(res);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *e = audit_row_json(res, i);

		json_object_set_new(e, "type", json_string("change"));
		json_object_set_new(e, "kind", json_string("change"));
		json_object_set_new(e, "time_ms",
				    json_integer(strtoll(PQgetvalue(res, i, N_AUDIT_COLUMNS), NULL,
							 10)));
		json_array_append_new(arr, e);
	}
	PQclear(res);
	*ret = arr;
	return 0;
}

int mm_store_pg_events_write(struct mm_store_pg *s, const struct mm_store_event *ev, size_t n,
			     uint32_t keep, struct mm_err *err)
{
	struct run_opts o = { .write = true };
	PGresult *res;
	int r;

	r = cmd(s, "BEGIN", "cannot write events", true, err);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < n; i++) {
		char t[24], reqid[16], spi[16], sup[16];
		const char *v[8] = {
			t, ev[i].kind, ev[i].domain && ev[i].domain[0] ? ev[i].domain : NULL,
			ev[i].reqid ? reqid : NULL, ev[i].spi ? spi : NULL, sup,
			ev[i].message ? ev[i].message : "", s->host,
		};

		snprintf(t, sizeof(t), "%" PRId64, ev[i].time_ms);
		snprintf(reqid, sizeof(reqid), "%" PRIu32, ev[i].reqid);
		snprintf(spi, sizeof(spi), "%" PRIu32, ev[i].spi);
		snprintf(sup, sizeof(sup), "%" PRIu32, ev[i].suppressed);
		res = run(s, "INSERT INTO events (time, kind, domain, reqid, spi, suppressed, "
			     "message, host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
			  8, v, PGRES_COMMAND_OK, "cannot write event", &o, err);
		r = res ? 0 : -EIO;
		PQclear(res);
	}
	if (r == 0) {
		/* Trim this host's history only: the table is the fleet's. */
		char k[16];
		const char *v[2] = { s->host, k };

		snprintf(k, sizeof(k), "%" PRIu32, keep ? keep : 1);
		res = run(s, "DELETE FROM events WHERE host = $1 AND id <= (SELECT id FROM events "
			     "WHERE host = $1 ORDER BY id DESC LIMIT 1 OFFSET $2::bigint)",
			  2, v, PGRES_COMMAND_OK, "cannot trim events", &o, err);
		r = res ? 0 : -EIO;
		PQclear(res);
	}
	if (r == 0)
		r = cmd(s, "COMMIT", "cannot write events", true, err);
	if (r < 0)
		rollback(s);
	return r;
}

int mm_store_pg_events(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret,
		       struct mm_err *err)
{
	const char *v[5 + 64];
	char sql[1400], lim[16], since[24], until[24];
	json_t *arr;
	PGresult *res;
	size_t n;

	if (f->n_kinds > 64)
		return mm_err_set(err, MM_ERR_INVALID, "kinds", "at most 64 kinds");
	snprintf(lim, sizeof(lim), "%u", f->limit);
	snprintf(since, sizeof(since), "%" PRId64, f->since_ms);
	snprintf(until, sizeof(until), "%" PRId64, f->until_ms);
	v[0] = f->domain, v[1] = f->limit ? lim : NULL, v[2] = since, v[3] = until, v[4] = s->host;
	n = (size_t)snprintf(sql, sizeof(sql),
			     "SELECT * FROM (SELECT id, time, kind, domain, reqid, spi, suppressed, "
			     "message FROM events WHERE host = $5 AND ($1::text IS NULL OR "
			     "domain = $1) AND time >= $3::bigint AND time <= $4::bigint");
	for (size_t i = 0; i < f->n_kinds; i++) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s$%zu",
				      i ? ", " : " AND kind IN (", i + 6);
		v[5 + i] = f->kinds[i];
	}
	snprintf(sql + n, sizeof(sql) - n, "%s ORDER BY id DESC LIMIT $2::bigint) e ORDER BY id",
		 f->n_kinds ? ")" : "");
	res = run(s, sql, 5 + (int)f->n_kinds, v, PGRES_TUPLES_OK, "cannot read the event history",
		  NULL, err);
	if (!res)
		return -EIO;
	arr = json_array();
	if (!arr) {
		PQclear(res);
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct mm_store_event e = {
			.time_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10),
			.kind = PQgetvalue(res, i, 2),
			.domain = PQgetvalue(res, i, 3),
			.reqid = (uint32_t)strtoull(PQgetvalue(res, i, 4), NULL, 10),
			.spi = (uint32_t)strtoull(PQgetvalue(res, i, 5), NULL, 10),
			.suppressed = (uint32_t)strtoull(PQgetvalue(res, i, 6), NULL, 10),
			.message = PQgetvalue(res, i, 7),
		};

		json_array_append_new(arr, mm_store_event_json(&e));
	}
	PQclear(res);
	*ret = arr;
	return 0;
}

int mm_store_pg_dump(struct mm_store_pg *s, char **ret)
{
	PGresult *res;
	uint64_t next = 0;
	char *buf = NULL;
	size_t len = 0;
	bool has_next;
	FILE *f;

	res = run(s, "SELECT " MM_STORE_PARTNER_COLUMNS " FROM partners ORDER BY domain COLLATE \"C\"",
		  0, NULL, PGRES_TUPLES_OK, "cannot read partners", NULL, NULL);
	if (!res)
		return -EIO;
	f = open_memstream(&buf, &len);
	if (!f) {
		PQclear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		for (int c = 0; c < PQnfields(res); c++)
			fprintf(f, "%s%s", c ? "|" : "", PQgetvalue(res, i, c));
		fputc('\n', f);
	}
	PQclear(res);
	{
		const char *v[1] = { "reqid_next" };

		res = run(s, "SELECT value FROM meta WHERE key = $1", 1, v, PGRES_TUPLES_OK,
			  "cannot read the reqid cursor", NULL, NULL);
	}
	has_next = res && PQntuples(res) == 1;
	if (has_next)
		next = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (has_next)
		fprintf(f, "reqid_next=%" PRIu32 "\n", (uint32_t)next);
	fclose(f);
	*ret = buf;
	return 0;
}

int mm_store_pg_fd(const struct mm_store_pg *s)
{
	return s->conn ? PQsocket(s->conn) : -1;
}

int mm_store_pg_poll(struct mm_store_pg *s, uint64_t *version)
{
	*version = 0;
	if (!s->conn)
		return -ENOTCONN;
	/* Read what is there; a server going away says why and then closes,
	 * and the close is only seen by reading again. */
	for (int i = 0; i < 8; i++) {
		struct pollfd p = { .fd = PQsocket(s->conn), .events = POLLIN };

		if (!PQconsumeInput(s->conn) || PQstatus(s->conn) == CONNECTION_BAD) {
			mark_unreachable(s, PQerrorMessage(s->conn));
			return -ENOTCONN;
		}
		if (p.fd < 0 || poll(&p, 1, 0) <= 0)
			break;
	}
	drain(s);
	*version = s->notified;
	s->notified = 0;
	return 0;
}

const char *mm_store_pg_unreachable(const struct mm_store_pg *s)
{
	return s->conn ? NULL : (s->unreachable ? s->unreachable : "not connected");
}

/* Where a pending connection waits: its socket and which way. */
static void pending_wait(const struct mm_store_pg *s, PostgresPollingStatusType st, int *fd,
			 int *events)
{
	*fd = PQsocket(s->pending);
	*events = st == PGRES_POLLING_WRITING ? POLLOUT : POLLIN;
}

static int pending_failed(struct mm_store_pg *s, const char *why, struct mm_err *err)
{
	char *line = one_line(why);
	int r = mm_err_set(err, MM_ERR_INTERNAL, "store", "cannot reach the shared store %s: %s",
			   s->uri, line ? line : "out of memory");

	if (s->conn)
		mark_unreachable(s, line);
	else if (s->unreachable && line) {
		/* still lost: the newest reason, the first loss's time */
		char *at = strstr(s->unreachable, " (since "), *u = NULL;

		if (at && asprintf(&u, "%s%s", line, at) >= 0) {
			free(s->unreachable);
			s->unreachable = u;
		}
	}
	free(line);
	if (s->pending)
		PQfinish(s->pending);
	s->pending = NULL;
	return r;
}

void mm_store_pg_reconnect_cancel(struct mm_store_pg *s, const char *why)
{
	if (s->pending)
		(void)pending_failed(s, why, NULL);
}

int mm_store_pg_reconnect_start(struct mm_store_pg *s, int *fd, int *events,
				struct mm_err *err)
{
	const char *keys[10], *vals[10];

	if (s->pending)
		PQfinish(s->pending);
	conn_params(s, keys, vals);
	s->pending = PQconnectStartParams(keys, vals, 1);
	if (!s->pending)
		return pending_failed(s, "out of memory", err);
	if (PQstatus(s->pending) == CONNECTION_BAD)
		return pending_failed(s, PQerrorMessage(s->pending), err);
	/* As libpq says: first wait as if PQconnectPoll had said WRITING. */
	pending_wait(s, PGRES_POLLING_WRITING, fd, events);
	return 0;
}

int mm_store_pg_reconnect_poll(struct mm_store_pg *s, int *fd, int *events,
			       struct mm_err *err)
{
	PostgresPollingStatusType st;
	char *why = NULL;
	PGconn *c;

	if (!s->pending)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "no reconnect under way");
	st = PQconnectPoll(s->pending);
	if (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
		pending_wait(s, st, fd, events);
		return 0;
	}
	if (st != PGRES_POLLING_OK)
		return pending_failed(s, PQerrorMessage(s->pending), err);
	c = s->pending;
	s->pending = NULL;
	/* Connected: the session settings are a round trip to a server that
	 * has just answered. */
	c = session(c, &why);
	if (!c) {
		int r = pending_failed(s, why ? why : "out of memory", err);

		free(why);
		return r;
	}
	if (s->conn)
		PQfinish(s->conn);
	s->conn = c;
	free(s->unreachable);
	s->unreachable = NULL;
	return 1;
}

int mm_store_pg_reconnect(struct mm_store_pg *s, struct mm_err *err)
{
	char *why = NULL;
	PGconn *c = connect_pg(s, &why);
	int r;

	if (!c) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "cannot reach the shared store %s: %s",
			       s->uri, why ? why : "out of memory");
		/* still lost: the reason is the newest, the time the first */
		if (s->conn)
			mark_unreachable(s, why);
		free(why);
		return r;
	}
	if (s->conn)
		PQfinish(s->conn);
	s->conn = c;
	free(s->unreachable);
	s->unreachable = NULL;
	return 0;
}
