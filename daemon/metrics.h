/* Prometheus metrics (docs/metrics.md): the text the admin op `metrics`
 * answers and the optional [metrics] listen HTTP endpoint serves.
 *
 * The values are read where status reads them (kernel_status, ike_status,
 * query_status), so a fact has one owner; what status does not keep is
 * counted here, fed by small hooks: CHILD_SA rekeys (ike.c), drift repairs
 * and the reconcile's duration (kernel.c), store commits (admin.c) and the
 * final counters of SAs that went away (the XFRM monitor's SA deletions).
 * All of it runs in the daemon's one thread. */
#ifndef MMTRUSTD_METRICS_H
#define MMTRUSTD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "netlink/xfrm_monitor.h"
#include "policy/addr.h"

struct mmtrustd;

/* The exposition text (Prometheus text format 0.0.4), malloc'd; NULL on
 * ENOMEM. */
char *metrics_text(struct mmtrustd *d);

/* Hooks: a CHILD_SA of the partner was rekeyed (charon's child-rekey); the
 * partner's policies were repaired after drift; a reconcile step (step:
 * "sync", "change", "repair", "verify") took usec; the store committed a
 * change set in usec. */
void metrics_rekey(const char *domain);
void metrics_drift_repaired(const char *domain);
void metrics_reconcile(const char *step, uint64_t usec);
void metrics_store_commit(uint64_t usec);
/* An event of the XFRM monitor: an SA of a partner that is deleted (or
 * expires hard) adds its final byte and packet counts to the partner's
 * totals. */
void metrics_xfrm_event(struct mmtrustd *d, const struct mm_xfrm_event *ev);
/* CLOCK_MONOTONIC in usec, for the hooks' durations. */
uint64_t metrics_now_usec(void);

/* The [metrics] listen endpoint.  Never fatal: when the socket cannot be
 * made (the port taken, the address family forbidden) that is logged once,
 * naming the address and why, and tried again every
 * MM_METRICS_RETRY_USEC (logged again only when the reason changes or it
 * succeeds); status says it (metrics_status).  0, or -errno when not even
 * the retry timer can be made. */
#define MM_METRICS_RETRY_USEC 10000000
int metrics_start(struct mmtrustd *d);
void metrics_stop(struct mmtrustd *d);
/* Add "metrics": {"listen", "listening", "problem"?} to a status answer
 * (listen "" when off). */
void metrics_status(struct mmtrustd *d, json_t *status);

/* ---- the HTTP side (metrics_http.c) ---- */

#define MM_HTTP_HEAD_MAX 8192       /* request head limit (bytes) */
#define MM_HTTP_TIMEOUT_USEC 5000000 /* a connection's whole life */
#define MM_HTTP_HEAD_TIMEOUT_USEC 1000000 /* ... and to send its request head */
#define MM_HTTP_MAX_CONN 16
#define MM_HTTP_ACCEPT_PAUSE_USEC 1000000 /* the listener rests after EMFILE */

/* Parse a request head received so far (buf[0..len), len <= MM_HTTP_HEAD_MAX).
 * Pure.  0: incomplete, read more (only while len < MM_HTTP_HEAD_MAX);
 * else the status to answer: 200 (GET /metrics, any query string), 404
 * (another path), 405 (another method), 400 (malformed), 431 (the head
 * does not end within MM_HTTP_HEAD_MAX), 505 (not HTTP/1.0 or 1.1). */
int mm_http_parse(const char *buf, size_t len);

struct mm_http;
/* render returns the body, malloc'd (NULL: 500). */
typedef char *(*mm_http_render_fn)(void *userdata);
/* Listen on addr:port (non-blocking, in ev); -errno. */
int mm_http_new(sd_event *ev, const struct mm_addr *addr, uint16_t port,
		mm_http_render_fn render, void *userdata, struct mm_http **ret);
void mm_http_free(struct mm_http *h);

#endif
