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
 * through log_msg and are never suppressed.
 *
 * Events (enum mm_event: a tunnel up or down, a drift repair, ...) are
 * log lines with a kind and a context: log_event() / log_event_limited().
 * Under systemd (stderr is the journal stream: $JOURNAL_STREAM names the
 * device and inode of fd 2) every line goes to the journal with
 * sd_journal_send: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=mmtrustd and, for
 * an event, MESSAGE_ID (fixed per kind), MMTRUST_EVENT=<kind>, PARTNER,
 * REQID and SPI where given.  As plain text the context is appended to the
 * line: "... event=<kind> partner=<domain> reqid=<n> spi=0x<8 hex>".  Each
 * event shown also goes to the event sink (the daemon's event history,
 * event.h); one suppressed by the limit is only counted, and the summary
 * line is recorded with that count.  Never key material. */
#ifndef MMTRUSTD_LOG_H
#define MMTRUSTD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
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

/* The kinds of events (docs/operations.md, "Events and the journal").
 * MM_EVENT_CHANGE (a provisioning change) goes to the journal only: the store's audit trail records it. */
enum mm_event {
	MM_EVENT_START,
	MM_EVENT_STOP,
	MM_EVENT_RELOAD,
	MM_EVENT_CHANGE,
	MM_EVENT_TUNNEL_UP,
	MM_EVENT_TUNNEL_DOWN,
	MM_EVENT_REKEY,
	MM_EVENT_IDENTITY_REFUSED,
	MM_EVENT_DRIFT_REPAIR,
	MM_EVENT_CONFLICT,
	MM_EVENT_SA_DELETED,
	MM_EVENT_CRL_LOADED,
	MM_EVENT_REVOKED,
	MM_EVENT_ADDRESS_LOST,
	MM_EVENT_ADDRESS_BACK,
	MM_EVENT_STORE_LOST,   /* the shared store (PostgreSQL) became unreachable */
	MM_EVENT_STORE_BACK,   /* ... and is reachable again */
	MM_EVENT_TABLE_SYNC,   /* a table version committed elsewhere was taken */
	MM_EVENT__MAX
};

/* What an event is about; every member optional (NULL / 0: not given). */
struct mm_event_ctx {
	const char *partner;  /* the partner's domain */
	uint32_t reqid;
	uint32_t spi;
};

/* "tunnel-up", ...; NULL for a value out of range. */
const char *mm_event_name(enum mm_event ev);
/* The kind's journal MESSAGE_ID: 32 lower-case hex digits. */
const char *mm_event_message_id(enum mm_event ev);
/* The kind named s: 0, or -EINVAL. */
int mm_event_parse(const char *s, enum mm_event *ret);

/* The journal fields of one line (ev < 0: not an event), built into f
 * (no allocation): the iovecs for sd_journal_sendv point into f. */
#define LOG_JOURNAL_MESSAGE_MAX 2048
struct log_journal_fields {
	struct iovec iov[8];
	size_t n;
	char message[sizeof("MESSAGE=") + LOG_JOURNAL_MESSAGE_MAX];
	char priority[sizeof("PRIORITY=") + 4];
	char message_id[sizeof("MESSAGE_ID=") + 32];
	char event[sizeof("MMTRUST_EVENT=") + 32];
	char partner[sizeof("PARTNER=") + 256];
	char reqid[sizeof("REQID=") + 12];
	char spi[sizeof("SPI=0x") + 8];
};
void log_journal_fields(struct log_journal_fields *f, int prio, int ev,
			const struct mm_event_ctx *ctx, const char *msg);
/* The plain-text context appended to an event's line into buf
 * (" event=tunnel-up partner=... reqid=... spi=0x..."). */
void log_event_suffix(char *buf, size_t size, enum mm_event ev, const struct mm_event_ctx *ctx);

/* Where shown events go (event.c); suppressed is the number of similar
 * events the rate limit dropped that this one (a summary) stands for. */
typedef void (*log_event_sink_fn)(void *userdata, enum mm_event ev, int prio,
				  const struct mm_event_ctx *ctx, const char *msg,
				  uint32_t suppressed);
void log_set_event_sink(log_event_sink_fn fn, void *userdata);

void log_open(int to_stderr, int verbose);
/* Whether lines go to the journal (decided by log_open). */
bool log_to_journal(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_msg under the kind's rate limit (see above). */
void log_limited(enum log_kind kind, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* An event (ctx may be NULL); log_event_limited under a log kind's limit. */
void log_event(enum mm_event ev, int prio, const struct mm_event_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_event_limited(enum log_kind kind, enum mm_event ev, int prio,
		       const struct mm_event_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
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
