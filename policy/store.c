#include "store.h"
#include "store_int.h"
#include "grow.h"
#include "jsonfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MM_STR_(x) #x
#define MM_STR(x) MM_STR_(x)

struct mm_store {
	struct mm_store_pg *pg;  /* a PostgreSQL store: everything is its */
	sqlite3 *db;
	char *path;
	char *readonly;  /* why the store cannot be written; NULL when it can */
	char host[256];  /* the acting host in audit and event rows */
};

/* Migration i takes the schema from version i to i+1; never edit one that
 * has shipped, append a new one. */
static const char *const migrations[] = {
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE partners ("
	"  domain TEXT PRIMARY KEY,"
	"  reqid INTEGER NOT NULL UNIQUE,"
	"  kind TEXT NOT NULL,"
	"  agreement INTEGER NOT NULL,"
	"  esp TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  enabled INTEGER NOT NULL,"
	"  ranges TEXT NOT NULL,"      /* JSON array of CIDR strings */
	"  gateways TEXT NOT NULL,"    /* JSON array of addresses */
	"  ca_pem TEXT NOT NULL,"
	"  ca_sha256 TEXT NOT NULL,"
	"  ca_subject TEXT NOT NULL,"
	"  ca_not_before INTEGER NOT NULL,"
	"  ca_not_after INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  txn INTEGER NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  request TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  domain TEXT NOT NULL,"
	"  before TEXT,"
	"  after TEXT);"
	"CREATE INDEX audit_domain ON audit(domain, id);",
	/* 2: the second CA of a rollover (ca2_*; '' when there is one CA),
	 * the partner's CRL files and its revocation mode.  The defaults are
	 * what a partner meant before: one CA, no CRL files, ifuri. */
	"ALTER TABLE partners ADD COLUMN ca2_pem TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE partners ADD COLUMN ca2_sha256 TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE partners ADD COLUMN ca2_subject TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE partners ADD COLUMN ca2_not_before INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE partners ADD COLUMN ca2_not_after INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE partners ADD COLUMN crls TEXT NOT NULL DEFAULT '[]';"
	"ALTER TABLE partners ADD COLUMN revocation TEXT NOT NULL DEFAULT 'ifuri';",
	/* 3: the event history (the daemon's tunnel, drift, CRL, ...
	 * events; time in milliseconds), and the audit's time in
	 * milliseconds too (NULL in rows written before: time * 1000), so
	 * that changes and events merge in the order they happened. */
	"ALTER TABLE audit ADD COLUMN time_ms INTEGER;"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  domain TEXT,"
	"  reqid INTEGER,"
	"  spi INTEGER,"
	"  suppressed INTEGER NOT NULL DEFAULT 0,"
	"  message TEXT NOT NULL);"
	"CREATE INDEX events_time ON events(time);"
	"CREATE INDEX events_domain ON events(domain, time);",
	/* 4: the table version (bumped by every commit: the audit's txn of
	 * the last change), and the acting host in the audit and the events
	 * ('' in rows written before), for stores a fleet shares. */
	"ALTER TABLE audit ADD COLUMN host TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE events ADD COLUMN host TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX events_host ON events(host, time);"
	"INSERT OR REPLACE INTO meta (key, value) VALUES ('version', "
	"  (SELECT CAST(COALESCE(MAX(txn), 0) AS TEXT) FROM audit));",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == MM_STORE_SCHEMA_VERSION, "one migration per schema version");

static int meta_version(struct mm_store *s, uint64_t *ret, struct mm_err *err);

static int db_fail(struct mm_store *s, struct mm_err *err, const char *what)
{
	return mm_err_set(err, MM_ERR_INTERNAL, "store", "%s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(struct mm_store *s, const char *sql, struct mm_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int r = mm_err_set(err, MM_ERR_INTERNAL, "store", "%s", msg ? msg : "sqlite error");

		sqlite3_free(msg);
		return r;
	}
	return 0;
}

int mm_store_schema_version(struct mm_store *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (s->pg)
		return mm_store_pg_schema_version(s->pg);
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v < 0 ? -EIO : v;
}

/* Before a store of an older schema is migrated, a copy of it as it is
 * goes beside it, PATH.schemaN.bak (SQLite's online backup, written to a
 * temporary name and renamed): the way back to the older mmtrust, which
 * refuses the newer schema.  No copy, no migration. */
static int backup_before_migration(struct mm_store *s, int v, struct mm_err *err)
{
	char dst[4096], tmp[4200];
	sqlite3 *out = NULL;
	sqlite3_backup *b;
	int rc;

	if ((size_t)snprintf(dst, sizeof(dst), "%s.schema%d.bak", s->path, v) >= sizeof(dst))
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "the store's path is too long");
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	unlink(tmp);
	rc = sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		b = sqlite3_backup_init(out, "main", s->db, "main");
		if (b) {
			rc = sqlite3_backup_step(b, -1);
			rc = sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK
											 : SQLITE_ERROR;
		} else {
			rc = SQLITE_ERROR;
		}
	}
	if (rc == SQLITE_OK && sqlite3_exec(out, "PRAGMA journal_mode = DELETE", NULL, NULL,
					    NULL) != SQLITE_OK)
		rc = SQLITE_ERROR;
	if (rc != SQLITE_OK) {
		rc = mm_err_set(err, MM_ERR_INTERNAL, "store",
				"refusing to migrate %s from schema %d to %d without a copy of it "
				"as it is: cannot write %s: %s",
				s->path, v, MM_STORE_SCHEMA_VERSION, dst,
				out ? sqlite3_errmsg(out) : "out of memory");
		sqlite3_close(out);
		unlink(tmp);
		return rc;
	}
	sqlite3_close(out);
	if (rename(tmp, dst) < 0) {
		rc = mm_err_set(err, MM_ERR_INTERNAL, "store",
				"refusing to migrate %s from schema %d to %d without a copy of it "
				"as it is: cannot rename %s to %s: %s",
				s->path, v, MM_STORE_SCHEMA_VERSION, tmp, dst, strerror(errno));
		unlink(tmp);
		return rc;
	}
	return 0;
}

static int migrate(struct mm_store *s, struct mm_err *err)
{
	int v = mm_store_schema_version(s), r;
	char sql[64];

	if (v < 0)
		return db_fail(s, err, "cannot read the schema version");
	if (v > MM_STORE_SCHEMA_VERSION)
		return mm_err_set(err, MM_ERR_INTERNAL, "store",
				  "schema version %d is newer than this mmtrust understands (%d)",
				  v, MM_STORE_SCHEMA_VERSION);
	/* v 0: a new store, nothing to keep. */
	if (v > 0 && v < MM_STORE_SCHEMA_VERSION && (r = backup_before_migration(s, v, err)) < 0)
		return r;
	for (; v < MM_STORE_SCHEMA_VERSION; v++) {
		r = exec(s, "BEGIN IMMEDIATE", err);
		if (r < 0)
			return r;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		r = exec(s, migrations[v], err);
		if (r == 0)
			r = exec(s, sql, err);
		if (r == 0)
			r = exec(s, "COMMIT", err);
		if (r < 0) {
			exec(s, "ROLLBACK", NULL);
			mm_err_prefix(err, "migration");
			return r;
		}
	}
	return 0;
}

static int pragma_int(struct mm_store *s, const char *sql, int *ret)
{
	sqlite3_stmt *st;
	int r = -EIO;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*ret = sqlite3_column_int(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/* An existing file is our store only when SQLite can read it, its pages
 * pass quick_check, and it says it is ours: our application_id, or (a
 * store written before the id) a schema version with our three tables.
 * Anything else -- an empty file, another program's database, garbage --
 * is refused: taking it for a new, empty store would make the daemon
 * delete every policy it programmed. */
static int check_existing(struct mm_store *s, const char *path, struct mm_err *err)
{
	sqlite3_stmt *st;
	int app = 0, version = 0, tables = 0;
	const char *qc = NULL;
	int r;

	if (pragma_int(s, "PRAGMA application_id", &app) < 0 ||
	    pragma_int(s, "PRAGMA user_version", &version) < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, "store",
				  "%s is not an mmtrust store: %s", path, sqlite3_errmsg(s->db));
	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "%s: cannot check it: %s", path,
				  sqlite3_errmsg(s->db));
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		qc = (const char *)sqlite3_column_text(st, 0);
	if (r != SQLITE_ROW || !qc || strcmp(qc, "ok") != 0) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store",
			       "%s fails SQLite's integrity check (%s); restore it from a "
			       "backup or from `mmtrustctl export`",
			       path, qc ? qc : sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	if (app == (int)MM_STORE_APPLICATION_ID)
		return 0;
	if (app == 0 && version >= 1 &&
	    pragma_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
			  "name IN ('meta', 'partners', 'audit')", &tables) == 0 && tables == 3)
		return 0;
	return mm_err_set(err, MM_ERR_INTERNAL, "store",
			  "%s is not an mmtrust store (application_id %d, schema version %d); "
			  "only a missing file becomes a new store", path, app, version);
}

/* Why the store cannot be written, or NULL.  SQLite opens a file it may
 * not write (permissions, chattr +i, a read-only mount) read-only without
 * a word; a store that can be read but not written must still be served
 * (the kernel keeps being enforced) and said to be read-only. */
static int probe_writable(struct mm_store *s)
{
	char dir[4096];
	int n;

	snprintf(dir, sizeof(dir), "%s", s->path);
	if (access(s->path, W_OK) < 0)
		n = asprintf(&s->readonly, "%s cannot be written: %s", s->path, strerror(errno));
	else if (access(dirname(dir), W_OK) < 0)  /* WAL and lock files go beside it */
		n = asprintf(&s->readonly, "its directory %s cannot be written: %s", dir,
			     strerror(errno));
	else if (sqlite3_db_readonly(s->db, "main") == 1)
		n = asprintf(&s->readonly, "SQLite opened %s read-only", s->path);
	else if (sqlite3_exec(s->db, "BEGIN IMMEDIATE; ROLLBACK;", NULL, NULL, NULL) != SQLITE_OK)
		n = asprintf(&s->readonly, "a write transaction on %s fails: %s", s->path,
			     sqlite3_errmsg(s->db));
	else
		return 0;
	if (n < 0) {
		s->readonly = NULL;
		return -ENOMEM;
	}
	return 0;
}

const char *mm_store_readonly(const struct mm_store *s)
{
	return s ? s->readonly : NULL;
}

enum mm_store_backend mm_store_backend(const struct mm_store *s)
{
	return s->pg ? MM_STORE_POSTGRESQL : MM_STORE_SQLITE;
}

const char *mm_store_name(const struct mm_store *s)
{
	return s->pg ? mm_store_pg_name(s->pg) : s->path;
}

const char *mm_store_host(const struct mm_store *s)
{
	return s->pg ? mm_store_pg_host(s->pg) : s->host;
}

int mm_store_fd(const struct mm_store *s)
{
	return s->pg ? mm_store_pg_fd(s->pg) : -1;
}

int mm_store_poll(struct mm_store *s, uint64_t *version)
{
	*version = 0;
	return s->pg ? mm_store_pg_poll(s->pg, version) : 0;
}

const char *mm_store_unreachable(const struct mm_store *s)
{
	return s->pg ? mm_store_pg_unreachable(s->pg) : NULL;
}

int mm_store_reconnect(struct mm_store *s, struct mm_err *err)
{
	return s->pg ? mm_store_pg_reconnect(s->pg, err) : 0;
}

int mm_store_reconnect_start(struct mm_store *s, int *fd, int *events, struct mm_err *err)
{
	if (!s->pg)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "a SQLite store has no connection");
	return mm_store_pg_reconnect_start(s->pg, fd, events, err);
}

void mm_store_reconnect_cancel(struct mm_store *s, const char *why)
{
	if (s->pg)
		mm_store_pg_reconnect_cancel(s->pg, why);
}

int mm_store_reconnect_poll(struct mm_store *s, int *fd, int *events, struct mm_err *err)
{
	if (!s->pg)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "a SQLite store has no connection");
	return mm_store_pg_reconnect_poll(s->pg, fd, events, err);
}

/* Open (again) s->path; immutable: as a URI with immutable=1. */
static int open_db(struct mm_store *s, int flags, bool immutable, struct mm_err *err)
{
	char *uri = NULL;
	int r = 0;

	sqlite3_close(s->db);
	s->db = NULL;
	if (immutable) {
		size_t n = 0;

		/* Percent-encode what a URI path may not hold verbatim. */
		uri = malloc(strlen(s->path) * 3 + sizeof("file:?immutable=1"));
		if (!uri)
			return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		n = (size_t)sprintf(uri, "file:");
		for (const char *c = s->path; *c; c++)
			n += (size_t)(strchr("%?#", *c) ? sprintf(uri + n, "%%%02X", (unsigned char)*c)
						       : sprintf(uri + n, "%c", *c));
		strcpy(uri + n, "?immutable=1");
	}
	if (sqlite3_open_v2(uri ? uri : s->path, &s->db, flags, NULL) != SQLITE_OK)
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "cannot open %s: %s", s->path,
			       s->db ? sqlite3_errmsg(s->db) : "out of memory");
	else
		sqlite3_busy_timeout(s->db, 5000);
	free(uri);
	return r;
}

/* Whether a WAL file with content lies beside the store. */
static bool wal_pending(const char *path)
{
	char wal[4096];
	struct stat sb;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	return stat(wal, &sb) == 0 && sb.st_size > 0;
}

bool mm_store_spec_is_postgresql(const char *spec)
{
	return !strncmp(spec, "postgresql://", 13) || !strncmp(spec, "postgres://", 11);
}

int mm_store_check_spec(const char *spec, struct mm_err *err)
{
	PQconninfoOption *opts;
	char *msg = NULL;
	int r = 0;

	if (!spec[0])
		return mm_err_set(err, MM_ERR_INVALID, "daemon.store", "is empty: give a path or a "
				  "postgresql:// URI");
	if (!mm_store_spec_is_postgresql(spec))
		return 0;
	opts = PQconninfoParse(spec, &msg);
	if (!opts) {
		/* libpq's message may quote the URI: it holds no secret we
		 * accept, but a refused one might; say only that it is bad. */
		r = mm_err_set(err, MM_ERR_INVALID, "daemon.store",
			       "is not a PostgreSQL URI libpq can read (postgresql://[user@]host"
			       "[:port]/database[?param=value&...])");
		PQfreemem(msg);
		return r;
	}
	/* password, and sslpassword (the client key's): any secret. */
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strstr(o->keyword, "password") && o->val && o->val[0])
			r = mm_err_set(err, MM_ERR_INVALID, "daemon.store",
				       "holds a password, which would be shown in status and logs; "
				       "put it in [daemon] store_password_file (or PGPASSWORD, "
				       "~/.pgpass) and remove it from the URI");
	PQconninfoFree(opts);
	return r;
}

/* The acting host: opts' name, else the kernel's host name. */
void mm_store_set_host(char *host, size_t size, const struct mm_store_opts *opts)
{
	if (opts && opts->host_name && opts->host_name[0])
		snprintf(host, size, "%s", opts->host_name);
	else if (gethostname(host, size) < 0)
		snprintf(host, size, "localhost");
	host[size - 1] = '\0';
}

int mm_store_open(const char *path, struct mm_store **ret, struct mm_err *err)
{
	return mm_store_open_with(path, NULL, ret, err);
}

int mm_store_open_with(const char *path, const struct mm_store_opts *opts,
		       struct mm_store **ret, struct mm_err *err)
{
	struct mm_store *s;
	struct stat sb;
	bool exists;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	if (mm_store_spec_is_postgresql(path)) {
		r = mm_store_pg_open(path, opts, &s->pg, err);
		if (r < 0) {
			free(s);
			return r;
		}
		*ret = s;
		return 0;
	}
	mm_store_set_host(s->host, sizeof(s->host), opts);
	exists = stat(path, &sb) == 0;
	if (!exists && errno != ENOENT) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "cannot read %s: %s", path,
			       strerror(errno));
		goto fail;
	}
	if (exists && !S_ISREG(sb.st_mode)) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "%s is not a regular file", path);
		goto fail;
	}
	if (exists && sb.st_size == 0) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store",
			       "%s exists but is empty (0 bytes), so it is not an mmtrust store; "
			       "only a missing file becomes a new store (remove it to start "
			       "with an empty table)", path);
		goto fail;
	}
	if (!(s->path = strdup(path))) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		goto fail;
	}
	r = open_db(s, SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE), false, err);
	if (r == 0 && exists) {
		struct mm_err first = { 0 };

		r = check_existing(s, path, &first);
		/* A WAL store on a read-only mount, closed cleanly (no -shm
		 * left): SQLite cannot open it for reading as it is.  With no
		 * WAL content waiting, the file alone is the whole store and
		 * is read as immutable (nobody can change it). */
		if (r < 0 && sqlite3_errcode(s->db) == SQLITE_CANTOPEN && !wal_pending(path)) {
			r = open_db(s, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, true, err);
			if (r == 0)
				r = check_existing(s, path, err);
		} else if (r < 0 && sqlite3_errcode(s->db) == SQLITE_CANTOPEN) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "cannot open %s: SQLite cannot use its write-ahead log (%s-wal "
				       "holds changes not yet in the file) without writing beside it; "
				       "make its directory writable once", path, path);
		} else if (r < 0) {
			*err = first;
		}
		if (r == 0 && (r = probe_writable(s)) < 0)
			mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	}
	if (r < 0)
		goto fail;
	if (s->readonly) {
		/* Served as it is: nothing may be written, not even the
		 * settings below (a WAL store stays in WAL mode). */
		int v = mm_store_schema_version(s);

		if (v != MM_STORE_SCHEMA_VERSION) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "%s has schema version %d and needs migrating to %d, but %s",
				       path, v, MM_STORE_SCHEMA_VERSION, s->readonly);
			goto fail;
		}
		*ret = s;
		return 0;
	}
	r = exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		    "PRAGMA foreign_keys = ON;", err);
	if (r < 0)
		goto fail;
	r = migrate(s, err);
	if (r == 0)
		r = exec(s, "PRAGMA application_id = " MM_STR(MM_STORE_APPLICATION_ID), err);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	mm_store_close(s);
	return r;
}

void mm_store_close(struct mm_store *s)
{
	if (!s)
		return;
	mm_store_pg_close(s->pg);
	sqlite3_close(s->db);
	free(s->path);
	free(s->readonly);
	free(s);
}

static int meta_get_u32(struct mm_store *s, const char *key, uint32_t *ret)
{
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*ret = strtoul((const char *)sqlite3_column_text(st, 0), NULL, 10);
	else
		r = -ENOENT;
	sqlite3_finalize(st);
	return r;
}

static int list_parse(const char *text, bool prefixes, void **ret, size_t *ret_n)
{
	json_t *a = json_loads(text, 0, NULL), *v;
	size_t i, n;
	void *items;

	if (!json_is_array(a)) {
		json_decref(a);
		return -EINVAL;
	}
	n = json_array_size(a);
	items = calloc(n ? n : 1, prefixes ? sizeof(struct mm_prefix) : sizeof(struct mm_addr));
	if (!items) {
		json_decref(a);
		return -ENOMEM;
	}
	json_array_foreach(a, i, v) {
		int r = prefixes ? mm_prefix_parse(json_string_value(v),
						   (struct mm_prefix *)items + i, "", NULL)
				 : mm_addr_parse(json_string_value(v),
						 (struct mm_addr *)items + i, "", NULL);
		if (r < 0) {
			free(items);
			json_decref(a);
			return r;
		}
	}
	json_decref(a);
	*ret = items;
	*ret_n = n;
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

static int crls_parse(struct mm_partner *p, const char *text)
{
	json_t *a = json_loads(text, 0, NULL);
	int r = mm_partner_crls_set(p, a, NULL);

	json_decref(a);
	return r < 0 ? -EINVAL : 0;
}

static const char *col_of(const char *const *col, int i)
{
	return col[i] ? col[i] : "";
}

int mm_store_row_to_partner(const char *const *col, struct mm_partner **ret)
{
	struct mm_partner *p = mm_partner_new();
	void *items;
	int r = -EINVAL;

	if (!p)
		return -ENOMEM;
	snprintf(p->domain, sizeof(p->domain), "%s", col_of(col, 0));
	p->reqid = strtoul(col_of(col, 1), NULL, 10);
	if (mm_kind_parse(col_of(col, 2), &p->kind) < 0 ||
	    mm_esp_parse(col_of(col, 4), &p->esp) < 0 ||
	    mm_path_parse(col_of(col, 5), &p->path) < 0)
		goto fail;
	p->agreement = atoi(col_of(col, 3));
	p->enabled = atoi(col_of(col, 6));
	r = list_parse(col_of(col, 7), true, &items, &p->n_ranges);
	if (r < 0)
		goto fail;
	p->ranges = items;
	r = list_parse(col_of(col, 8), false, &items, &p->n_gateways);
	if (r < 0)
		goto fail;
	p->gateways = items;
	/* Columns 9-13: the first CA; 16-20: the second, '' when none. */
	for (int c = 9; c <= 16; c += 7) {
		struct mm_partner_ca *ca = &p->cas[p->n_cas];

		if (c == 16 && !col_of(col, c)[0])
			break;
		ca->pem = strdup(col_of(col, c));
		if (!ca->pem) {
			r = -ENOMEM;
			goto fail;
		}
		p->n_cas++;
		snprintf(ca->info.sha256, sizeof(ca->info.sha256), "%s", col_of(col, c + 1));
		snprintf(ca->info.subject, sizeof(ca->info.subject), "%s", col_of(col, c + 2));
		ca->info.not_before = strtoll(col_of(col, c + 3), NULL, 10);
		ca->info.not_after = strtoll(col_of(col, c + 4), NULL, 10);
	}
	p->created = strtoll(col_of(col, 14), NULL, 10);
	p->updated = strtoll(col_of(col, 15), NULL, 10);
	r = crls_parse(p, col_of(col, 21));
	if (r < 0)
		goto fail;
	r = -EINVAL;
	if (mm_revocation_parse(col_of(col, 22), &p->revocation) < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	mm_partner_unref(p);
	return r;
}

/* A statement's row of MM_STORE_PARTNER_COLUMNS as a partner. */
static int row_to_partner(sqlite3_stmt *st, struct mm_partner **ret)
{
	const char *col[MM_STORE_N_PARTNER_COLUMNS];

	for (int i = 0; i < MM_STORE_N_PARTNER_COLUMNS; i++)
		col[i] = (const char *)sqlite3_column_text(st, i);
	return mm_store_row_to_partner(col, ret);
}

#define PARTNER_COLUMNS MM_STORE_PARTNER_COLUMNS

int mm_store_load(struct mm_store *s, uint32_t reqid_min, uint32_t reqid_max,
		  struct mm_table **ret, struct mm_err *err)
{
	struct mm_partner **list = NULL;
	size_t n = 0, cap = 0;
	uint32_t next = reqid_min;
	sqlite3_stmt *st;
	uint64_t version = 0;
	int r = 0, rc;

	if (s->pg)
		return mm_store_pg_load(s->pg, reqid_min, reqid_max, ret, err);
	if (sqlite3_prepare_v2(s->db, "SELECT " PARTNER_COLUMNS " FROM partners ORDER BY domain",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "cannot read partners");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (mm_grow((void **)&list, &cap, n + 1, sizeof(*list)) < 0) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
			goto out;
		}
		r = row_to_partner(st, &list[n]);
		if (r < 0) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store",
				       "partner row %s is corrupt: %s", col_text(st, 0),
				       strerror(-r));
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(s, err, "cannot read partners");
		goto out;
	}
	meta_get_u32(s, "reqid_next", &next);
	r = meta_version(s, &version, err);
	if (r == 0)
		r = mm_table_build(list, n, reqid_min, reqid_max, next, ret, err);
	if (r < 0)
		mm_err_prefix(err, "store");
	else
		(*ret)->version = version;
out:
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++)
		mm_partner_unref(list[i]);
	free(list);
	return r;
}

static char *json_text(const json_t *j)
{
	return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static char *list_text(const struct mm_partner *p, bool prefixes)
{
	json_t *o = mm_partner_to_json(p, MM_JSON_CONFIG);
	char *t = o ? json_text(json_object_get(o, prefixes ? "ranges" : "gateways")) : NULL;

	json_decref(o);
	return t;
}

static char *crls_text(const struct mm_partner *p)
{
	json_t *a = mm_partner_crls_json(p);
	char *t = json_text(a);

	json_decref(a);
	return t;
}

void mm_store_row_free(struct mm_store_row *row)
{
	for (int i = 0; i < MM_STORE_N_PARTNER_COLUMNS; i++) {
		free(row->col[i]);
		row->col[i] = NULL;
	}
}

int mm_store_row_from_partner(const struct mm_partner *p, struct mm_store_row *row)
{
	static const struct mm_partner_ca none = { .pem = NULL };
	char **c = row->col;
	int k = 0;

	memset(row, 0, sizeof(*row));
	k += asprintf(&c[0], "%s", p->domain) < 0;
	k += asprintf(&c[1], "%" PRIu32, p->reqid) < 0;
	k += asprintf(&c[2], "%s", mm_kind_name(p->kind)) < 0;
	k += asprintf(&c[3], "%d", (int)p->agreement) < 0;
	k += asprintf(&c[4], "%s", mm_esp_name(p->esp)) < 0;
	k += asprintf(&c[5], "%s", mm_path_name(p->path)) < 0;
	k += asprintf(&c[6], "%d", (int)p->enabled) < 0;
	for (int i = 0, col = 9; i < MM_PARTNER_CA_MAX; i++, col = 16) {
		const struct mm_partner_ca *ca = (size_t)i < p->n_cas ? &p->cas[i] : &none;

		k += asprintf(&c[col], "%s", ca->pem ? ca->pem : "") < 0;
		k += asprintf(&c[col + 1], "%s", ca->info.sha256) < 0;
		k += asprintf(&c[col + 2], "%s", ca->info.subject) < 0;
		k += asprintf(&c[col + 3], "%" PRId64, (int64_t)ca->info.not_before) < 0;
		k += asprintf(&c[col + 4], "%" PRId64, (int64_t)ca->info.not_after) < 0;
	}
	k += asprintf(&c[14], "%" PRId64, (int64_t)p->created) < 0;
	k += asprintf(&c[15], "%" PRId64, (int64_t)p->updated) < 0;
	k += asprintf(&c[22], "%s", mm_revocation_name(p->revocation)) < 0;
	/* asprintf leaves its pointer undefined on failure. */
	if (k) {
		memset(row, 0, sizeof(*row));
		return -ENOMEM;
	}
	c[7] = list_text(p, true);
	c[8] = list_text(p, false);
	c[21] = crls_text(p);
	if (!c[7] || !c[8] || !c[21]) {
		mm_store_row_free(row);
		return -ENOMEM;
	}
	return 0;
}

char *mm_store_audit_text(const struct mm_partner *p)
{
	json_t *o;
	char *t;

	if (!p)
		return NULL;
	o = mm_partner_to_json(p, MM_JSON_FULL);
	if (!o)
		return NULL;
	json_object_del(o, "ca");
	json_object_del(o, "created");
	json_object_del(o, "updated");
	t = json_text(o);
	json_decref(o);
	return t;
}

int mm_store_conflict(const struct mm_change *changes, size_t n, uint64_t from, uint64_t now,
		      struct mm_err *err)
{
	char names[300] = "";
	size_t len = 0;

	for (size_t i = 0; i < n && i < 3; i++) {
		const struct mm_partner *p = changes[i].after ? changes[i].after : changes[i].before;

		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
					i ? ", " : "", p->domain);
		if (len >= sizeof(names))
			break;
	}
	if (n > 3)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), " and %zu more",
			 n - 3);
	return mm_err_set(err, MM_ERR_CONFLICT, "partner",
			  "partner %s: the partner table was changed on another host (it is at "
			  "version %" PRIu64 ", this change was prepared on version %" PRIu64
			  "): nothing was changed; look at the table again and retry",
			  names, now, from);
}

static int write_partner(struct mm_store *s, const struct mm_change *c, struct mm_err *err)
{
	static const char *const sql[MM_CHANGE__MAX] = {
		[MM_CHANGE_ADD] = "INSERT INTO partners (" PARTNER_COLUMNS ") VALUES "
				  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
				  "?17, ?18, ?19, ?20, ?21, ?22, ?23)",
		[MM_CHANGE_SET] = "UPDATE partners SET reqid = ?2, kind = ?3, agreement = ?4, "
				  "esp = ?5, path = ?6, enabled = ?7, ranges = ?8, gateways = ?9, "
				  "ca_pem = ?10, ca_sha256 = ?11, ca_subject = ?12, "
				  "ca_not_before = ?13, ca_not_after = ?14, created = ?15, "
				  "updated = ?16, ca2_pem = ?17, ca2_sha256 = ?18, ca2_subject = ?19, "
				  "ca2_not_before = ?20, ca2_not_after = ?21, crls = ?22, "
				  "revocation = ?23 WHERE domain = ?1",
		[MM_CHANGE_DEL] = "DELETE FROM partners WHERE domain = ?1",
	};
	/* Columns SQLite stores as integers: bound as such. */
	static const bool integer[MM_STORE_N_PARTNER_COLUMNS] = {
		[1] = true, [3] = true, [6] = true, [12] = true, [13] = true, [14] = true,
		[15] = true, [19] = true, [20] = true,
	};
	const struct mm_partner *p = c->after ? c->after : c->before;
	struct mm_store_row row = { 0 };
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(s->db, sql[c->op], -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "cannot prepare partner write");
	sqlite3_bind_text(st, 1, p->domain, -1, SQLITE_STATIC);
	if (c->op != MM_CHANGE_DEL) {
		if (mm_store_row_from_partner(p, &row) < 0) {
			r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
			goto out;
		}
		for (int i = 1; i < MM_STORE_N_PARTNER_COLUMNS; i++)
			if (integer[i])
				sqlite3_bind_int64(st, i + 1, strtoll(row.col[i], NULL, 10));
			else
				sqlite3_bind_text(st, i + 1, row.col[i], -1, SQLITE_STATIC);
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = db_fail(s, err, "cannot write partner");
		mm_err_prefix(err, p->domain);
		goto out;
	}
	if (sqlite3_changes(s->db) != 1)
		r = mm_err_set(err, MM_ERR_NOT_FOUND, "store",
			       "partner %s: expected to %s one row, changed %d", p->domain,
			       mm_change_op_name(c->op), sqlite3_changes(s->db));
out:
	sqlite3_finalize(st);
	mm_store_row_free(&row);
	return r;
}

static int write_audit(struct mm_store *s, const struct mm_change *c, int64_t now_ms,
		       int64_t txn, const struct mm_actor *actor, struct mm_err *err)
{
	const struct mm_partner *p = c->after ? c->after : c->before;
	char *before = mm_store_audit_text(c->before), *after = mm_store_audit_text(c->after);
	sqlite3_stmt *st = NULL;
	int r = 0;

	if ((c->before && !before) || (c->after && !after)) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
		goto out;
	}
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO audit (time, txn, uid, user, pid, request, action, "
			       "domain, before, after, time_ms, host) VALUES (?, ?, ?, ?, ?, ?, ?, "
			       "?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		r = db_fail(s, err, "cannot prepare audit write");
		goto out;
	}
	sqlite3_bind_int64(st, 1, now_ms / 1000);
	sqlite3_bind_int64(st, 2, txn);
	sqlite3_bind_int64(st, 3, actor->uid);
	sqlite3_bind_text(st, 4, actor->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, actor->pid);
	sqlite3_bind_text(st, 6, actor->request, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, mm_change_op_name(c->op), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, p->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, before, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, now_ms);
	sqlite3_bind_text(st, 12, s->host, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_fail(s, err, "cannot write audit entry");
out:
	sqlite3_finalize(st);
	free(before);
	free(after);
	return r;
}

static int meta_version(struct mm_store *s, uint64_t *ret, struct mm_err *err)
{
	sqlite3_stmt *st;
	int r = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'version'", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(s, err, "cannot read the table version");
	*ret = 0;  /* a new store's first version */
	if (sqlite3_step(st) == SQLITE_ROW)
		*ret = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 10);
	else if (sqlite3_errcode(s->db) != SQLITE_DONE)
		r = db_fail(s, err, "cannot read the table version");
	sqlite3_finalize(st);
	return r;
}

int mm_store_version(struct mm_store *s, uint64_t *ret, struct mm_err *err)
{
	if (s->pg)
		return mm_store_pg_version(s->pg, ret, err);
	return meta_version(s, ret, err);
}

int mm_store_audited(struct mm_store *s, uint64_t from, uint64_t to, bool *ret,
		     struct mm_err *err)
{
	sqlite3_stmt *st;
	int r = 0;

	*ret = false;
	if (s->pg)
		return mm_store_pg_audited(s->pg, from, to, ret, err);
	if (to <= from) {
		*ret = to == from;
		return 0;
	}
	if (sqlite3_prepare_v2(s->db, "SELECT count(DISTINCT txn) FROM audit WHERE txn > ? AND "
			       "txn <= ?", -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "cannot read the audit trail");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
	if (sqlite3_step(st) == SQLITE_ROW)
		*ret = (uint64_t)sqlite3_column_int64(st, 0) == to - from;
	else
		r = db_fail(s, err, "cannot read the audit trail");
	sqlite3_finalize(st);
	return r;
}

int mm_store_commit(struct mm_store *s, const struct mm_change *changes, size_t n,
		    struct mm_table *next, const struct mm_actor *actor, struct mm_err *err)
{
	uint64_t version = 0;
	int64_t now;
	struct timespec ts;
	char sql[128];
	int r;

	if (s->pg)
		return mm_store_pg_commit(s->pg, changes, n, next, actor, err);
	if (s->readonly)
		return mm_err_set(err, MM_ERR_INTERNAL, "store",
				  "the store is read-only (%s): nothing was changed; make it "
				  "writable, then reload mmtrustd (SIGHUP)", s->readonly);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	r = exec(s, "BEGIN IMMEDIATE", err);
	if (r < 0)
		return r;
	r = meta_version(s, &version, err);
	if (r == 0 && version != next->version)
		r = mm_store_conflict(changes, n, next->version, version, err);
	/* The new version is the audit's transaction number: it groups the
	 * audit rows of one request. */
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = write_partner(s, &changes[i], err);
		if (r == 0)
			r = write_audit(s, &changes[i], now, (int64_t)version + 1, actor, err);
	}
	if (r == 0) {
		snprintf(sql, sizeof(sql),
			 "INSERT OR REPLACE INTO meta (key, value) VALUES ('reqid_next', '%" PRIu32
			 "'), ('version', '%" PRIu64 "')",
			 next->reqid_next, version + 1);
		r = exec(s, sql, err);
	}
	if (r == 0)
		r = exec(s, "COMMIT", err);
	if (r < 0) {
		exec(s, "ROLLBACK", NULL);
		/* Made read-only since the open (chattr, remount): say so
		 * from now on, as at open. */
		if (probe_writable(s) < 0)
			s->readonly = NULL;
		return r;
	}
	next->version = version + 1;
	return 0;
}

json_t *mm_store_audit_json(const char *const *col)
{
	json_t *before = col[10] ? json_loads(col[10], 0, NULL) : json_null();
	json_t *after = col[11] ? json_loads(col[11], 0, NULL) : json_null();

	return json_pack("{s:I, s:o, s:I, s:s, s:I, s:s, s:I, s:s, s:s, s:s, s:o, s:o}", "id",
			 (json_int_t)strtoll(col_of(col, 0), NULL, 10), "time",
			 mm_json_time(strtoll(col_of(col, 1), NULL, 10)), "txn",
			 (json_int_t)strtoll(col_of(col, 2), NULL, 10), "host", col_of(col, 3),
			 "uid", (json_int_t)strtoll(col_of(col, 4), NULL, 10), "user",
			 col_of(col, 5), "pid", (json_int_t)strtoll(col_of(col, 6), NULL, 10),
			 "request", col_of(col, 7), "action", col_of(col, 8), "domain",
			 col_of(col, 9), "before", before ? before : json_string(col[10]), "after",
			 after ? after : json_string(col[11]));
}

#define AUDIT_COLUMNS "id, time, txn, host, uid, user, pid, request, action, domain, before, after"
#define N_AUDIT_COLUMNS 12

static json_t *audit_row_json(sqlite3_stmt *st)
{
	const char *col[N_AUDIT_COLUMNS];

	for (int i = 0; i < N_AUDIT_COLUMNS; i++)
		col[i] = (const char *)sqlite3_column_text(st, i);
	return mm_store_audit_json(col);
}

int mm_store_audit(struct mm_store *s, const char *domain, unsigned limit, json_t **ret,
		   struct mm_err *err)
{
	json_t *arr;
	sqlite3_stmt *st;
	int rc;

	if (s->pg)
		return mm_store_pg_audit(s->pg, domain, limit, ret, err);
	arr = json_array();
	if (!arr)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	if (sqlite3_prepare_v2(s->db,
			       "SELECT * FROM (SELECT " AUDIT_COLUMNS " FROM audit "
			       "WHERE ?1 IS NULL OR domain = ?1 ORDER BY id DESC LIMIT ?2) "
			       "ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the audit trail");
	}
	if (domain)
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(arr, audit_row_json(st));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the audit trail");
	}
	*ret = arr;
	return 0;
}

bool mm_store_filter_kind(const struct mm_store_filter *f, const char *kind)
{
	if (!f->n_kinds)
		return true;
	for (size_t i = 0; i < f->n_kinds; i++)
		if (!strcmp(f->kinds[i], kind))
			return true;
	return false;
}

int mm_store_changes(struct mm_store *s, const struct mm_store_filter *f, json_t **ret,
		     struct mm_err *err)
{
	json_t *arr;
	sqlite3_stmt *st;
	int rc;

	if (s->pg)
		return mm_store_pg_changes(s->pg, f, ret, err);
	arr = json_array();
	if (!arr)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	if (!mm_store_filter_kind(f, "change")) {
		*ret = arr;
		return 0;
	}
	if (sqlite3_prepare_v2(s->db,
			       "SELECT * FROM (SELECT " AUDIT_COLUMNS ", "
			       "COALESCE(time_ms, time * 1000) AS ms "
			       "FROM audit WHERE (?1 IS NULL OR domain = ?1) AND ms >= ?3 AND "
			       "ms <= ?4 ORDER BY id DESC LIMIT ?2) ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the audit trail");
	}
	if (f->domain)
		sqlite3_bind_text(st, 1, f->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, f->limit ? (int64_t)f->limit : -1);
	sqlite3_bind_int64(st, 3, f->since_ms);
	sqlite3_bind_int64(st, 4, f->until_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = audit_row_json(st);

		json_object_set_new(e, "type", json_string("change"));
		json_object_set_new(e, "kind", json_string("change"));
		json_object_set_new(e, "time_ms", json_integer(sqlite3_column_int64(st, N_AUDIT_COLUMNS)));
		json_array_append_new(arr, e);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the audit trail");
	}
	*ret = arr;
	return 0;
}

int mm_store_events_write(struct mm_store *s, const struct mm_store_event *ev, size_t n,
			  uint32_t keep, struct mm_err *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (s->pg)
		return mm_store_pg_events_write(s->pg, ev, n, keep, err);
	if (s->readonly)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "the store is read-only (%s)",
				  s->readonly);
	r = exec(s, "BEGIN IMMEDIATE", err);
	if (r < 0)
		return r;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO events (time, kind, domain, reqid, spi, suppressed, "
			       "message, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		r = db_fail(s, err, "cannot prepare event write");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_int64(st, 1, ev[i].time_ms);
		sqlite3_bind_text(st, 2, ev[i].kind, -1, SQLITE_STATIC);
		if (ev[i].domain && ev[i].domain[0])
			sqlite3_bind_text(st, 3, ev[i].domain, -1, SQLITE_STATIC);
		if (ev[i].reqid)
			sqlite3_bind_int64(st, 4, ev[i].reqid);
		if (ev[i].spi)
			sqlite3_bind_int64(st, 5, ev[i].spi);
		sqlite3_bind_int64(st, 6, ev[i].suppressed);
		sqlite3_bind_text(st, 7, ev[i].message ? ev[i].message : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, s->host, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = db_fail(s, err, "cannot write event");
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Trim: the ids grow with time, so the oldest are the lowest. */
	if (sqlite3_prepare_v2(s->db,
			       "DELETE FROM events WHERE id <= (SELECT id FROM events "
			       "ORDER BY id DESC LIMIT 1 OFFSET ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		r = db_fail(s, err, "cannot prepare event trim");
		goto out;
	}
	sqlite3_bind_int64(st, 1, keep ? keep : 1);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_fail(s, err, "cannot trim events");
out:
	sqlite3_finalize(st);
	if (r == 0)
		r = exec(s, "COMMIT", err);
	if (r < 0) {
		exec(s, "ROLLBACK", NULL);
		if (probe_writable(s) < 0)
			s->readonly = NULL;
	}
	return r;
}

json_t *mm_store_event_json(const struct mm_store_event *ev)
{
	char when[40], spi[16];
	time_t t = (time_t)(ev->time_ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(when, 24, "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(when, sizeof(when), "?");
	else
		snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03dZ",
			 (int)(ev->time_ms % 1000));
	snprintf(spi, sizeof(spi), "0x%08" PRIx32, ev->spi);
	return json_pack("{s:s, s:s, s:I, s:s, s:s?, s:o, s:s?, s:I, s:s}", "type", "event",
			 "time", when, "time_ms", (json_int_t)ev->time_ms, "kind", ev->kind,
			 "domain", ev->domain && ev->domain[0] ? ev->domain : NULL, "reqid",
			 ev->reqid ? json_integer(ev->reqid) : json_null(), "spi",
			 ev->spi ? spi : NULL, "suppressed", (json_int_t)ev->suppressed,
			 "message", ev->message ? ev->message : "");
}

int mm_store_events(struct mm_store *s, const struct mm_store_filter *f, json_t **ret,
		    struct mm_err *err)
{
	char sql[1024];
	json_t *arr;
	sqlite3_stmt *st;
	size_t n = 0;
	int rc;

	if (s->pg)
		return mm_store_pg_events(s->pg, f, ret, err);
	arr = json_array();
	if (!arr)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "out of memory");
	if (f->n_kinds > 64) {
		json_decref(arr);
		return mm_err_set(err, MM_ERR_INVALID, "kinds", "at most 64 kinds");
	}
	n = (size_t)snprintf(sql, sizeof(sql),
			     "SELECT * FROM (SELECT id, time, kind, domain, reqid, spi, suppressed, "
			     "message FROM events WHERE (?1 IS NULL OR domain = ?1) AND time >= ?3 "
			     "AND time <= ?4");
	for (size_t i = 0; i < f->n_kinds; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s?%zu", i ? ", " : " AND kind IN (",
				      i + 5);
	snprintf(sql + n, sizeof(sql) - n, "%s ORDER BY id DESC LIMIT ?2) ORDER BY id",
		 f->n_kinds ? ")" : "");
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the event history");
	}
	if (f->domain)
		sqlite3_bind_text(st, 1, f->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, f->limit ? (int64_t)f->limit : -1);
	sqlite3_bind_int64(st, 3, f->since_ms);
	sqlite3_bind_int64(st, 4, f->until_ms);
	for (size_t i = 0; i < f->n_kinds; i++)
		sqlite3_bind_text(st, (int)i + 5, f->kinds[i], -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mm_store_event ev = {
			.time_ms = sqlite3_column_int64(st, 1),
			.kind = col_text(st, 2),
			.domain = col_text(st, 3),
			.reqid = (uint32_t)sqlite3_column_int64(st, 4),
			.spi = (uint32_t)sqlite3_column_int64(st, 5),
			.suppressed = (uint32_t)sqlite3_column_int64(st, 6),
			.message = col_text(st, 7),
		};

		json_array_append_new(arr, mm_store_event_json(&ev));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s, err, "cannot read the event history");
	}
	*ret = arr;
	return 0;
}

int mm_store_dump(struct mm_store *s, char **ret)
{
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int cols;

	if (s->pg)
		return mm_store_pg_dump(s->pg, ret);
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT " PARTNER_COLUMNS " FROM partners ORDER BY domain", -1,
			       &st, NULL) != SQLITE_OK) {
		fclose(f);
		free(buf);
		return -EIO;
	}
	cols = sqlite3_column_count(st);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < cols; i++)
			fprintf(f, "%s%s", i ? "|" : "", col_text(st, i));
		fputc('\n', f);
	}
	sqlite3_finalize(st);
	{
		uint32_t next = 0;

		if (meta_get_u32(s, "reqid_next", &next) == 0)
			fprintf(f, "reqid_next=%" PRIu32 "\n", next);
	}
	fclose(f);
	*ret = buf;
	return 0;
}
