/* The embedded store: SQLite in WAL mode holding the partner table, the
 * reqid allocation cursor, the audit trail and the event history.
 *
 * Every change set is one transaction (BEGIN IMMEDIATE ... COMMIT): the
 * partner rows, one audit row per changed partner and the reqid cursor are
 * written together or not at all.  The schema carries a version
 * (PRAGMA user_version) and is migrated forward on open; a store written by
 * a newer mmtrust is refused rather than guessed at. */
#ifndef MM_STORE_H
#define MM_STORE_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "table.h"

#define MM_STORE_SCHEMA_VERSION 3
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

/* Load the whole table.  CA validity is not re-checked here: a CA that
 * expired after provisioning must not stop the daemon from starting (it is
 * reported by status instead). */
int mm_store_load(struct mm_store *s, uint32_t reqid_min, uint32_t reqid_max,
		  struct mm_table **ret, struct mm_err *err);

/* Write a change set (already validated by mm_table_apply, so `after`
 * partners carry their reqids) and the new reqid cursor in one
 * transaction, with one audit row per change.  Any failure rolls back. */
int mm_store_commit(struct mm_store *s, const struct mm_change *changes, size_t n,
		    uint32_t reqid_next, const struct mm_actor *actor, struct mm_err *err);

/* The audit trail, oldest first: the last `limit` entries (0 = all),
 * optionally only those of one domain.  *ret is a JSON array of
 * {id, time, txn, uid, user, pid, request, action, domain, before, after}. */
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

/* Append n events in one transaction, then delete the oldest beyond keep
 * rows.  Refused (nothing written) when the store is read-only. */
int mm_store_events_write(struct mm_store *s, const struct mm_store_event *ev, size_t n,
			  uint32_t keep, struct mm_err *err);
/* The event history, oldest first, as JSON log entries:
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
