#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "backoff.h"

static int log_stderr = 1;
static int log_verbose;

static struct mm_ratelimit limits[LOG_KIND__MAX];
static uint64_t suppressed_total;

static const char *const kind_names[LOG_KIND__MAX] = {
	[LOG_KIND_DRIFT] = "drift", [LOG_KIND_REPAIR] = "spd repair",
	[LOG_KIND_CONFLICT] = "spd conflict", [LOG_KIND_STALE] = "spd stale",
	[LOG_KIND_RESYNC] = "spd resync", [LOG_KIND_KERNEL_ERROR] = "spd kernel-error",
	[LOG_KIND_PARTNER_ERROR] = "spd partner-error", [LOG_KIND_SA_DELETED] = "SA deleted",
};

void log_open(int to_stderr, int verbose)
{
	log_stderr = to_stderr;
	log_verbose = verbose;
	if (!to_stderr)
		openlog("mmtrustd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void log_va(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_va(int prio, const char *fmt, va_list ap)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};

	if (prio == LOG_DEBUG && !log_verbose)
		return;
	if (log_stderr) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ mmtrustd %s: ", when, ts.tv_nsec / 1000000,
			names[prio & 7]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(prio, fmt, ap);
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(prio, fmt, ap);
	va_end(ap);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MM_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void summary(enum log_kind kind, uint32_t n, uint64_t span)
{
	if (n)
		log_msg(LOG_NOTICE, "%s: ... (suppressed %u similar messages in the last %llu s)",
			kind_names[kind], n,
			(unsigned long long)((span + MM_USEC_PER_SEC / 2) / MM_USEC_PER_SEC));
}

void log_limited(enum log_kind kind, int prio, const char *fmt, ...)
{
	uint64_t span = 0;
	uint32_t n;
	va_list ap;
	bool show;

	if ((unsigned)kind >= LOG_KIND__MAX)
		kind = LOG_KIND_KERNEL_ERROR;
	if (prio == LOG_DEBUG && !log_verbose)
		return;  /* not shown anyway: not counted against the kind */
	show = mm_ratelimit_take(&limits[kind], now_us(), LOG_LIMIT_INTERVAL * MM_USEC_PER_SEC,
				 LOG_LIMIT_BURST, &n, &span);
	summary(kind, n, span);
	if (!show) {
		suppressed_total++;
		return;
	}
	va_start(ap, fmt);
	log_va(prio, fmt, ap);
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
