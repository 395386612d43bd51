#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <systemd/sd-journal.h>

#include "backoff.h"

static int log_stderr = 1;
static int log_verbose;
static bool log_journal;

static struct mm_ratelimit limits[LOG_KIND__MAX];
static uint64_t suppressed_total;
/* Per log kind: events the limit dropped since its last summary, and the
 * kind of the last one (the summary is recorded as such an event). */
static uint32_t ev_suppressed[LOG_KIND__MAX];
static enum mm_event ev_last[LOG_KIND__MAX];

static log_event_sink_fn event_sink;
static void *event_sink_data;

static const char *const kind_names[LOG_KIND__MAX] = {
	[LOG_KIND_DRIFT] = "drift", [LOG_KIND_REPAIR] = "spd repair",
	[LOG_KIND_CONFLICT] = "spd conflict", [LOG_KIND_STALE] = "spd stale",
	[LOG_KIND_RESYNC] = "spd resync", [LOG_KIND_KERNEL_ERROR] = "spd kernel-error",
	[LOG_KIND_PARTNER_ERROR] = "spd partner-error", [LOG_KIND_SA_DELETED] = "SA deleted",
};

/* The MESSAGE_IDs are fixed for ever: journalctl MESSAGE_ID=... filters
 * and catalogs rely on them (docs/operations.md, "Events and the journal",
 * lists them). */
static const struct {
	const char *name, *id;
} events[MM_EVENT__MAX] = {
	[MM_EVENT_START] = { "start", "75718863e7b84a858a0f50a85d472105" },
	[MM_EVENT_STOP] = { "stop", "e9b311c4561740278a1dd96df8da90c6" },
	[MM_EVENT_RELOAD] = { "reload", "59d698b2f611422b9c1365771139794b" },
	[MM_EVENT_CHANGE] = { "change", "71b9f9f9fd4d42ec9c6a7196297ba1d0" },
	[MM_EVENT_TUNNEL_UP] = { "tunnel-up", "e1527e340dfb435481fc7387b6a120d1" },
	[MM_EVENT_TUNNEL_DOWN] = { "tunnel-down", "f4240ed3246e43feaac9d8c363eeaa91" },
	[MM_EVENT_REKEY] = { "rekey", "1f61cdac59424b108b959f81147c2a63" },
	[MM_EVENT_IDENTITY_REFUSED] = { "identity-refused", "a0e0d11a316640afac7d0399b2f61827" },
	[MM_EVENT_DRIFT_REPAIR] = { "drift-repair", "562286cb41b54498a489f66a1191beb3" },
	[MM_EVENT_CONFLICT] = { "conflict", "7db91fdc5f31423da194cd4af43a4026" },
	[MM_EVENT_SA_DELETED] = { "sa-deleted", "215dd91cffd84d8e8965e0a65eaec534" },
	[MM_EVENT_CRL_LOADED] = { "crl-loaded", "c46ce91f4ef84cbbbb629402e4c69e37" },
	[MM_EVENT_REVOKED] = { "revoked", "1ed5445d90a74be3bb0c91d273b44e69" },
	[MM_EVENT_ADDRESS_LOST] = { "address-lost", "037af10592ed40509747e96793b88c16" },
	[MM_EVENT_ADDRESS_BACK] = { "address-back", "a5006b071fe44b878106a34bfb17de01" },
	[MM_EVENT_STORE_LOST] = { "store-lost", "5af39142f20d474a8a49726628a05ab8" },
	[MM_EVENT_STORE_BACK] = { "store-back", "7eb4acdf88454dd8bb82b9a79293e0cc" },
	[MM_EVENT_TABLE_SYNC] = { "table-sync", "de46ecf01fec48db9ffaf32c51c47ee6" },
};

const char *mm_event_name(enum mm_event ev)
{
	return (unsigned)ev < MM_EVENT__MAX ? events[ev].name : NULL;
}

const char *mm_event_message_id(enum mm_event ev)
{
	return (unsigned)ev < MM_EVENT__MAX ? events[ev].id : NULL;
}

int mm_event_parse(const char *s, enum mm_event *ret)
{
	for (int i = 0; s && i < MM_EVENT__MAX; i++)
		if (!strcmp(s, events[i].name)) {
			*ret = i;
			return 0;
		}
	return -EINVAL;
}

void log_set_event_sink(log_event_sink_fn fn, void *userdata)
{
	event_sink = fn;
	event_sink_data = userdata;
}

/* systemd's documented test: stderr is the journal stream when
 * $JOURNAL_STREAM ("DEV:INO") names fd 2's device and inode. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	int n = 0;

	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != '\0')
		return false;
	if (fstat(2, &sb) < 0)
		return false;
	return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

void log_open(int to_stderr, int verbose)
{
	log_stderr = to_stderr;
	log_verbose = verbose;
	log_journal = stderr_is_journal();
	if (!to_stderr && !log_journal)
		openlog("mmtrustd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

bool log_to_journal(void)
{
	return log_journal;
}

static void add_field(struct log_journal_fields *f, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_field(struct log_journal_fields *f, char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	f->iov[f->n].iov_base = buf;
	f->iov[f->n].iov_len = (size_t)n < size ? (size_t)n : size - 1;
	f->n++;
}

void log_journal_fields(struct log_journal_fields *f, int prio, int ev,
			const struct mm_event_ctx *ctx, const char *msg)
{
	f->n = 0;
	add_field(f, f->message, sizeof(f->message), "MESSAGE=%s", msg);
	add_field(f, f->priority, sizeof(f->priority), "PRIORITY=%d", prio & 7);
	if (ev >= 0 && ev < MM_EVENT__MAX) {
		add_field(f, f->message_id, sizeof(f->message_id), "MESSAGE_ID=%s", events[ev].id);
		add_field(f, f->event, sizeof(f->event), "MMTRUST_EVENT=%s", events[ev].name);
	}
	if (ctx && ctx->partner && ctx->partner[0])
		add_field(f, f->partner, sizeof(f->partner), "PARTNER=%s", ctx->partner);
	if (ctx && ctx->reqid)
		add_field(f, f->reqid, sizeof(f->reqid), "REQID=%" PRIu32, ctx->reqid);
	if (ctx && ctx->spi)
		add_field(f, f->spi, sizeof(f->spi), "SPI=0x%08" PRIx32, ctx->spi);
}

void log_event_suffix(char *buf, size_t size, enum mm_event ev, const struct mm_event_ctx *ctx)
{
	int n = snprintf(buf, size, " event=%s", mm_event_name(ev) ? mm_event_name(ev) : "?");

	if (ctx && ctx->partner && ctx->partner[0] && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, " partner=%s", ctx->partner);
	if (ctx && ctx->reqid && n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - n, " reqid=%" PRIu32, ctx->reqid);
	if (ctx && ctx->spi && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - n, " spi=0x%08" PRIx32, ctx->spi);
}

/* One line: to the journal with its fields, to stderr with a timestamp,
 * or to syslog. */
static void emit(int prio, int ev, const struct mm_event_ctx *ctx, const char *msg)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};
	char suffix[400] = "";

	if (log_journal) {
		struct log_journal_fields f;

		log_journal_fields(&f, prio, ev, ctx, msg);
		/* SYSLOG_IDENTIFIER: the journal takes it from the stream
		 * otherwise, which a direct send does not have. */
		f.iov[f.n].iov_base = (char *)"SYSLOG_IDENTIFIER=mmtrustd";
		f.iov[f.n].iov_len = strlen("SYSLOG_IDENTIFIER=mmtrustd");
		f.n++;
		if (sd_journal_sendv(f.iov, (int)f.n) >= 0)
			return;
		/* The journal refused: the stream (stderr) still reaches it. */
	}
	if (ev >= 0)
		log_event_suffix(suffix, sizeof(suffix), ev, ctx);
	if (log_stderr || log_journal) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ mmtrustd %s: %s%s\n", when, ts.tv_nsec / 1000000,
			names[prio & 7], msg, suffix);
	} else {
		syslog(prio, "%s%s", msg, suffix);
	}
}

static void log_va(int prio, int ev, const struct mm_event_ctx *ctx, uint32_t suppressed,
		   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void log_va(int prio, int ev, const struct mm_event_ctx *ctx, uint32_t suppressed,
		   const char *fmt, va_list ap)
{
	char msg[LOG_JOURNAL_MESSAGE_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (prio != LOG_DEBUG || log_verbose)
		emit(prio, ev, ctx, msg);
	if (ev >= 0 && ev != MM_EVENT_CHANGE && event_sink)
		event_sink(event_sink_data, ev, prio, ctx, msg, suppressed);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	if (prio == LOG_DEBUG && !log_verbose)
		return;
	va_start(ap, fmt);
	log_va(prio, -1, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_event(enum mm_event ev, int prio, const struct mm_event_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(prio, (unsigned)ev < MM_EVENT__MAX ? (int)ev : -1, ctx, 0, fmt, ap);
	va_end(ap);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MM_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void summary_printf(int prio, int ev, uint32_t suppressed, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void summary_printf(int prio, int ev, uint32_t suppressed, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(prio, ev, NULL, suppressed, fmt, ap);
	va_end(ap);
}

/* The summary of an interval: an event (with the count of those dropped)
 * when events were among the lines dropped. */
static void summary(enum log_kind kind, uint32_t n, uint64_t span)
{
	uint32_t evs = ev_suppressed[kind];

	if (!n)
		return;
	ev_suppressed[kind] = 0;
	summary_printf(LOG_NOTICE, evs ? (int)ev_last[kind] : -1, evs,
			       "%s: ... (suppressed %u similar messages in the last %llu s)",
			       kind_names[kind], n,
			       (unsigned long long)((span + MM_USEC_PER_SEC / 2) / MM_USEC_PER_SEC));
}

static bool limit_take(enum log_kind kind, int ev)
{
	uint64_t span = 0;
	uint32_t n;
	bool show;

	show = mm_ratelimit_take(&limits[kind], now_us(), LOG_LIMIT_INTERVAL * MM_USEC_PER_SEC,
				 LOG_LIMIT_BURST, &n, &span);
	summary(kind, n, span);
	if (!show) {
		suppressed_total++;
		if (ev >= 0) {
			ev_suppressed[kind]++;
			ev_last[kind] = ev;
		}
	}
	return show;
}

void log_limited(enum log_kind kind, int prio, const char *fmt, ...)
{
	va_list ap;

	if ((unsigned)kind >= LOG_KIND__MAX)
		kind = LOG_KIND_KERNEL_ERROR;
	if (prio == LOG_DEBUG && !log_verbose)
		return;  /* not shown anyway: not counted against the kind */
	if (!limit_take(kind, -1))
		return;
	va_start(ap, fmt);
	log_va(prio, -1, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_event_limited(enum log_kind kind, enum mm_event ev, int prio,
		       const struct mm_event_ctx *ctx, const char *fmt, ...)
{
	int e = (unsigned)ev < MM_EVENT__MAX ? (int)ev : -1;
	va_list ap;

	if ((unsigned)kind >= LOG_KIND__MAX)
		kind = LOG_KIND_KERNEL_ERROR;
	if (!limit_take(kind, e))
		return;
	va_start(ap, fmt);
	log_va(prio, e, ctx, 0, fmt, ap);
	va_end(ap);
}

void log_limit_flush(void)
{
	uint64_t now = now_us(), span = 0;

	for (int k = 0; k < LOG_KIND__MAX; k++) {
		uint32_t n = mm_ratelimit_flush(&limits[k], now, LOG_LIMIT_INTERVAL * MM_USEC_PER_SEC,
						&span);

		summary(k, n, span);
	}
}

uint64_t log_suppressed_total(void)
{
	return suppressed_total;
}
