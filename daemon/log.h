/* mmtrustd's log: stderr with a timestamp in the foreground, syslog
 * (the journal under systemd) otherwise.  Log where the decision is taken,
 * with context (partner, reqid, SPI); lower layers return errors.
 *
 * Messages that an outsider can provoke at will (drift, conflicts, SAs
 * deleted, kernel refusals) go through log_limited(): at most
 * LOG_LIMIT_BURST lines of one kind per LOG_LIMIT_INTERVAL seconds (the
 * first line of an interval always shows), and when lines were dropped one
 * summary "<kind>: ... (suppressed N similar messages in the last S s)".
 * Alarms (a drift fight raised or cleared) and errors that happen once go
 * through log_msg and are never suppressed. */
#ifndef MMTRUSTD_LOG_H
#define MMTRUSTD_LOG_H

#include <stdint.h>
#include <syslog.h>

#define LOG_LIMIT_BURST 5
#define LOG_LIMIT_INTERVAL 10  /* seconds */

enum log_kind {
	LOG_KIND_DRIFT,         /* one of our policies changed by someone else */
	LOG_KIND_REPAIR,        /* what a repair or a periodic check did */
	LOG_KIND_CONFLICT,      /* a foreign policy on one of our selectors */
	LOG_KIND_STALE,         /* ours, wanted by no partner */
	LOG_KIND_RESYNC,        /* events lost or flushed */
	LOG_KIND_KERNEL_ERROR,  /* the kernel refused a request */
	LOG_KIND_PARTNER_ERROR, /* a partner cannot be programmed */
	LOG_KIND_SA_DELETED,    /* an SA the verdict condemns */
	LOG_KIND__MAX
};

void log_open(int to_stderr, int verbose);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_msg under the kind's rate limit (see above). */
void log_limited(enum log_kind kind, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Write the summaries of intervals that have ended (call now and then:
 * a storm that stops leaves its count behind otherwise). */
void log_limit_flush(void);
/* Lines dropped by the limit since start (a status counter). */
uint64_t log_suppressed_total(void);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
