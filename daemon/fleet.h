/* A fleet: the partner table shared on PostgreSQL by several hosts.
 *
 * Every commit (on any host) bumps the store's table version and notifies
 * (LISTEN/NOTIFY); this host then loads the table and carries the
 * partners that differ into its own kernel and charon (a table-sync).  A
 * lost connection changes nothing here: the table this host has stays
 * enforced and answered, changes are refused (never queued), and the
 * store is tried again with a capped back-off (0.5 s doubling to 10 s);
 * once back, the versions are compared and the table caught up.  Reconnects
 * never block the loop (libpq's non-blocking connect, a 5 s deadline).  A
 * table version this host cannot take (a partner claiming one of its own
 * addresses, a reqid outside its range, a version lower than ours, or
 * versions without audit rows that the shrink guard refuses) is refused,
 * logged and shown in status; the previous table stays enforced.
 *
 * For a SQLite store (one host) everything here is a no-op. */
#ifndef MMTRUSTD_FLEET_H
#define MMTRUSTD_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy/err.h"

struct mmtrustd;

int fleet_start(struct mmtrustd *d);
void fleet_stop(struct mmtrustd *d);
/* The store was replaced (a reload): watch the new one. */
void fleet_store_changed(struct mmtrustd *d);

/* Before a change is prepared: the store must be reachable and this
 * host's table the store's current one (caught up here if not).  0, or
 * <0 with err saying why the change is refused. */
int fleet_sync(struct mmtrustd *d, struct mm_err *err);
/* A commit failed: if the store went away, say so and start reconnecting;
 * if it was a conflict, catch up so that a retry sees the new table. */
void fleet_commit_failed(struct mmtrustd *d, const struct mm_err *err);

/* status's "store" object's fleet members (added to o). */
void fleet_status(struct mmtrustd *d, json_t *o);
/* For metrics and --check. */
struct fleet_stats {
	bool shared;        /* a PostgreSQL store */
	bool connected;
	uint64_t version;   /* the table version this host enforces */
	uint64_t reconnects, catchups;
	int64_t since;      /* unreachable since (time_t), 0 when connected */
	char error[512];    /* why unreachable, or why a version was not taken */
	uint64_t refused_version;  /* a newer version not taken (0: none) */
};
void fleet_stats(struct mmtrustd *d, struct fleet_stats *st);

#endif
