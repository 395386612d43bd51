/* What ends soon: each partner's CA certificates, the nextUpdate of each
 * CRL file a partner lists, and our own [ike] certificate, judged against
 * [daemon] expiry_warning_days (docs/health.md).
 *
 * Only what is in use is judged: the CAs and CRLs of partners that have a
 * tunnel (enabled, path tunnel), and the CRLs and our certificate only
 * while the IKE side runs (they are charon's; with [ike] enabled = no
 * nothing uses them).  The CRL data and our certificate are the IKE side's
 * own copies (ike_crl_file, ike_certificate_pem): what charon was given,
 * not what lies on disk meanwhile.
 *
 * An item that enters the window is logged once, a warning naming it, its
 * end and the days left; once more when it passes its end; nothing while it
 * stays.  An item that leaves the window (renewed, removed) is forgotten,
 * so entering it again is logged again.  A reload keeps what was logged.
 * The check runs at start, after every table change and reload, hourly
 * (a timer), and whenever the list is asked for (status, expiry_each). */
#ifndef MMTRUSTD_EXPIRY_H
#define MMTRUSTD_EXPIRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MM_EXPIRY_DAY 86400
/* [daemon] expiry_warning_days: its default and its largest value. */
#define MM_EXPIRY_WINDOW_DEFAULT 30
#define MM_EXPIRY_WINDOW_MAX 3650
/* The timer's period: an item is logged at most this late. */
#define MM_EXPIRY_CHECK_USEC (3600 * 1000000ull)

struct mmtrustd;

enum mm_expiry_what {
	MM_EXPIRY_PARTNER_CA,   /* "partner-ca": one of a partner's CAs, notAfter */
	MM_EXPIRY_PARTNER_CRL,  /* "partner-crl": a CRL file a partner lists, nextUpdate */
	MM_EXPIRY_CERTIFICATE,  /* "certificate": our [ike] certificate, notAfter */
	MM_EXPIRY__MAX
};

/* One thing that ends, borrowed for the call it is handed to. */
struct mm_expiry_item {
	enum mm_expiry_what what;
	const char *partner;     /* the partner's domain; NULL for our certificate */
	const char *name;        /* partner-ca: the CA's subject; else the file's path */
	const char *subject;     /* the certificate's subject (CA, ours); NULL for a CRL */
	const char *sha256;      /* partner-ca: the CA's fingerprint (a rollover's two
				  * CAs may share a subject); NULL otherwise */
	int64_t not_after;       /* unix seconds: notAfter, or the CRL's nextUpdate */
	int64_t days_left;       /* mm_expiry_days_left; < 0: already ended */
	bool in_window;          /* mm_expiry_in_window: a warning */
};

/* "partner-ca", "partner-crl", "certificate". */
const char *mm_expiry_what_name(enum mm_expiry_what w);

/* Whole days from now to not_after, rounded down: 0 in the last day,
 * negative once not_after has passed (-1 in the first day after it). */
static inline int64_t mm_expiry_days_left(int64_t not_after, int64_t now)
{
	int64_t s = not_after - now;

	return s >= 0 ? s / MM_EXPIRY_DAY : -((-s + MM_EXPIRY_DAY - 1) / MM_EXPIRY_DAY);
}

/* The one rule: whether an item ending at not_after is a warning at now.
 *   - window_days 0: expiry warnings are off, nothing is (not even the
 *     expired);
 *   - not_after 0 (unknown, or a CRL without nextUpdate): never;
 *   - else when at most window_days * 86400 seconds are left (exactly N
 *     days left is inside), and always once it has ended.
 * period (seconds, 0: none) is a CRL's own validity, nextUpdate minus
 * thisUpdate: a CRL is re-issued well before its nextUpdate, so a fresh
 * one always has less than its validity left; it is a warning only when
 * less than half its validity is left (the re-issue is overdue), or less
 * than the window when that is shorter. */
static inline bool mm_expiry_in_window(int64_t not_after, int64_t now, uint32_t window_days,
				       int64_t period)
{
	int64_t window = (int64_t)window_days * MM_EXPIRY_DAY;

	if (window_days == 0 || not_after == 0)
		return false;
	if (period > 0 && period / 2 < window)
		window = period / 2;
	return not_after - now <= window;
}

/* What to log for an item at a check, given what was logged for it before
 * (logged: a line was written and the item stayed in the window since;
 * then logged_not_after and logged_expired as they were then). */
enum mm_expiry_log {
	MM_EXPIRY_LOG_NONE,     /* nothing new: not in the window, or said already */
	MM_EXPIRY_LOG_ENTERED,  /* entered the window (also: found so at start) */
	MM_EXPIRY_LOG_EXPIRED,  /* said before, and has ended since */
};

static inline enum mm_expiry_log mm_expiry_transition(bool logged, int64_t logged_not_after,
						      bool logged_expired,
						      const struct mm_expiry_item *it)
{
	if (!it->in_window)
		return MM_EXPIRY_LOG_NONE;
	/* A new end (a CRL re-issued, still close) is news of its own. */
	if (!logged || logged_not_after != it->not_after)
		return MM_EXPIRY_LOG_ENTERED;
	if (!logged_expired && it->days_left < 0)
		return MM_EXPIRY_LOG_EXPIRED;
	return MM_EXPIRY_LOG_NONE;
}

/* Check once now (logging what entered the window) and arm the hourly
 * timer.  0, or -errno when the timer cannot be made (logged; the check
 * still runs at every change and status). */
int expiry_start(struct mmtrustd *d);
void expiry_stop(struct mmtrustd *d);
/* Check again now: after a table change or reload (table, settings or our
 * certificate may be new). */
void expiry_check(struct mmtrustd *d);
/* Every item in use (in the window or not), checked now: partner CAs and
 * CRLs in table order, then our certificate.  For the metrics. */
void expiry_each(struct mmtrustd *d, void (*fn)(void *arg, const struct mm_expiry_item *it),
		 void *arg);
/* Add "expiry": {"window_days", "warnings": [...]} to a status answer:
 * the items in the window; with domain, only that partner's and our
 * certificate. */
void expiry_status(struct mmtrustd *d, const char *domain, json_t *status);

#endif
