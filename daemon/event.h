/* The daemon's event history: every event log_event() shows (log.h) is
 * kept in memory and written to the store's events table in one
 * transaction at most once a second (a timer of the event loop) and at
 * stop -- never while the event happens.  The table keeps the newest
 * [log] events_keep rows.  Events the rate limit drops are not written;
 * the summary that counts them is (its "suppressed" member).
 *
 * A read-only store cannot take them: they are kept in a bounded ring in
 * memory instead (EVENTS_RING_MAX, the oldest dropped), lost at stop, and
 * events_query() says so. */
#ifndef MMTRUSTD_EVENT_H
#define MMTRUSTD_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "policy/err.h"
#include "policy/store.h"

#define EVENTS_PENDING_MAX 10000  /* unwritten events held between writes */
#define EVENTS_RING_MAX 10000     /* events held when the store is read-only */

/* Start recording into store (borrowed; NULL: memory only). */
int events_start(sd_event *ev, struct mm_store *store, uint32_t keep);
/* Write what is pending to the current store, then use store from now on
 * (a reload; the old store may be closed after this). */
void events_set_store(struct mm_store *store, uint32_t keep);
/* Write what is pending now. */
void events_flush(void);
/* Write what is pending and stop recording. */
void events_stop(void);

/* The events f selects (oldest first, as mm_store_events' entries): the
 * store's and those not written yet.  *ret_memory is set when they come
 * from the in-memory ring (a read-only store); *ret_dropped counts events
 * dropped since start because memory was full. */
int events_query(const struct mm_store_filter *f, json_t **ret, bool *ret_memory,
		 uint64_t *ret_dropped, struct mm_err *err);

#endif
