/* The store: the partner table, the reqid allocation cursor, the table
 * version, the audit trail and the event history.  Two backends behind
 * this one interface: SQLite in WAL mode (a file, the default) and
 * PostgreSQL (a postgresql:// URI: one table shared by a fleet of hosts).
 *
 * Every change set is one transaction: the partner rows, one audit row per
 * changed partner, the reqid cursor and the table version are written
 * together or not at all, and only onto the table version the change set
 * was computed from (else MM_ERR_CONFLICT, nothing written).  The schema
 * carries a version and is migrated forward on open; a store written by a
 * newer mmtrust is refused rather than guessed at. */
#ifndef MM_STORE_H
#define MM_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "table.h"

#define MM_STORE_SCHEMA_VERSION 4
/* PRAGMA application_id of an mmtrust store ("mmtr"; `file(1)` and
 * `sqlite3 STORE 'PRAGMA application_id'` show it). */
#define MM_STORE_APPLICATION_ID 1835889778

struct mm_store;

/* Who asked for a change (from SO_PEERCRED on the admin socket). */
struct mm_actor {
	uid_t uid;
	pid_t pid;
	char user[64];     /* login name, or the uid in decimal */
	char request[32];  /* the admin operation: "partner.add", "apply", ... */
};

enum mm_store_backend { MM_STORE_SQLITE, MM_STORE_POSTGRESQL };

/* Whether spec names a PostgreSQL store (postgresql:// or postgres://);
 * anything else is a SQLite file's path. */
bool mm_store_spec_is_postgresql(const char *spec);
/* Whether spec may name a store: a path, or a PostgreSQL URI libpq can
 * parse that holds no password (it would be shown in status and logs;
 * the password comes from a file or libpq's environment).  MM_ERR_INVALID
 * saying why. */
int mm_store_check_spec(const char *spec, struct mm_err *err);

struct mm_store_opts {
	const char *host_name;  /* the acting host in audit and event rows; NULL: gethostname */
	const char *password;   /* PostgreSQL: NULL leaves it to libpq (PGPASSWORD, .pgpass) */
};

/* Open the store spec names (a path or a postgresql:// URI), migrating it
 * forward as needed; opts may be NULL. */
int mm_store_open_with(const char *spec, const struct mm_store_opts *opts,
		       struct mm_store **ret, struct mm_err *err);

/* Open the store at path, migrating it forward as needed.  Only a missing
 * file becomes a new, empty store; an existing file that is empty, is not
 * an mmtrust store (application_id, schema) or fails PRAGMA quick_check is
 * refused with the path and the reason, and left untouched.  -errno with
 * err filled. */
int mm_store_open(const char *path, struct mm_store **ret, struct mm_err *err);
void mm_store_close(struct mm_store *s);  /* accepts NULL */

/* NULL when the store can be written; else why not (a read-only file or
 * mount, an immutable file, a directory where the WAL cannot be created, a
 * write transaction that fails), decided at open.  Such a store is opened
 * and loaded all the same -- the table it holds is served and enforced --
 * and every mm_store_commit() is refused with this reason.  A store that
 * is read-only and needs a schema migration is refused at open. */
const char *mm_store_readonly(const struct mm_store *s);
int mm_store_schema_version(struct mm_store *s);

enum mm_store_backend mm_store_backend(const struct mm_store *s);
/* The store as it may be shown and logged: the path, or the URI (which
 * never holds a password: mmtrustd refuses one there). */
const char *mm_store_name(const struct mm_store *s);
/* The acting host written into audit and event rows. */
const char *mm_store_host(const struct mm_store *s);

/* The table version in the store now (bumped by every commit). */
int mm_store_version(struct mm_store *s, uint64_t *ret, struct mm_err *err);
/* Whether every version in (from, to] was committed by mmtrust: each has
 * its audit rows (a version bumped by hand, or rows edited with it, has
 * none).  A table-sync over such versions was guarded where it was made. */
int mm_store_audited(struct mm_store *s, uint64_t from, uint64_t to, bool *ret,
		     struct mm_err *err);

/* A shared store's connection (PostgreSQL; for SQLite: -1, 0, NULL, 0).
 * mm_store_fd: the socket to watch for readability, -1 when not
 * connected.  mm_store_poll: reads what arrived; *version is set to the
 * highest table version announced by a notification since the last call,
 * 0 when none; -ENOTCONN (the connection is lost) otherwise <0.
 * mm_store_unreachable: NULL when connected, else why not (the server's
 * or libpq's words; never a password).  mm_store_reconnect: connect and
 * listen again. */
int mm_store_fd(const struct mm_store *s);
int mm_store_poll(struct mm_store *s, uint64_t *version);
const char *mm_store_unreachable(const struct mm_store *s);
int mm_store_reconnect(struct mm_store *s, struct mm_err *err);
/* The same without blocking, for an event loop: start, then wait for fd
 * to be ready for events (POLLIN or POLLOUT) and poll, until poll returns
 * 1 (connected and listening) or <0 (failed; err and mm_store_unreachable
 * say why).  0: wait again (fd may have changed).  SQLite: start fails. */
int mm_store_reconnect_start(struct mm_store *s, int *fd, int *events, struct mm_err *err);
int mm_store_reconnect_poll(struct mm_store *s, int *fd, int *events, struct mm_err *err);
/* Give up the reconnect under way (its deadline passed), saying why. */
void mm_store_reconnect_cancel(struct mm_store *s, const char *why);

/* Load the whole table, with its version.  CA validity is not re-checked here: a CA that
 * expired after provisioning must not stop the daemon from starting (it is
 * reported by status instead). */
int mm_store_load(struct mm_store *s, uint32_t reqid_min, uint32_t reqid_max,
		  struct mm_table **ret, struct mm_err *err);

/* Write a change set (already validated by mm_table_apply into next, so
 * `after` partners carry their reqids) and next's reqid cursor in one
 * transaction, with one audit row per change, the audit's txn being the
 * new table version.  Only onto next->version, the version the change set
 * was computed from: when the store holds another (a change committed by
 * another host meanwhile), MM_ERR_CONFLICT naming the partners and nothing
 * written.  On success next->version is the new version.  Any failure
 * rolls back. */
int mm_store_commit(struct mm_store *s, const struct mm_change *changes, size_t n,
		    struct mm_table *next, const struct mm_actor *actor, struct mm_err *err);

/* The audit trail, oldest first: the last `limit` entries (0 = all),
 * optionally only those of one domain.  *ret is a JSON array of
 * {id, time, txn, host, uid, user, pid, request, action, domain, before,
 * after}. */
int mm_store_audit(struct mm_store *s, const char *domain, unsigned limit, json_t **ret,
		   struct mm_err *err);

/* What mm_store_changes / mm_store_events select: entries of one domain
 * (NULL: all), time in [since_ms, until_ms] (milliseconds since the
 * epoch), of the kinds listed (n_kinds 0: all; the audit trail's entries
 * are of kind "change"), the last `limit` of them (0: all). */
struct mm_store_filter {
	const char *domain;
	int64_t since_ms, until_ms;
	const char *const *kinds;
	size_t n_kinds;
	unsigned limit;
};

/* The audit trail as log entries, oldest first: mm_store_audit's members
 * and "type": "change", "time_ms". */
int mm_store_changes(struct mm_store *s, const struct mm_store_filter *f, json_t **ret,
		     struct mm_err *err);

/* One row of the event history. */
struct mm_store_event {
	int64_t time_ms;
	const char *kind;     /* "tunnel-up", ... */
	const char *domain;   /* NULL or "" when none */
	uint32_t reqid, spi;  /* 0 when none */
	uint32_t suppressed;  /* similar events this one stands for */
	const char *message;
};

/* Append n events (this host's) in one transaction, then delete the oldest beyond keep
 * rows.  Refused (nothing written) when the store is read-only. */
int mm_store_events_write(struct mm_store *s, const struct mm_store_event *ev, size_t n,
			  uint32_t keep, struct mm_err *err);
/* This host's event history, oldest first, as JSON log entries:
 * {type: "event", time, time_ms, kind, domain, reqid, spi, suppressed,
 * message} (domain, reqid, spi null when none). */
int mm_store_events(struct mm_store *s, const struct mm_store_filter *f, json_t **ret,
		    struct mm_err *err);
/* One event as such an entry (also for events not written yet). */
json_t *mm_store_event_json(const struct mm_store_event *ev);

/* For tests: a canonical text dump of every partner row and the cursor;
 * equal dumps mean equal tables.  Caller frees. */
int mm_store_dump(struct mm_store *s, char **ret);

#endif
