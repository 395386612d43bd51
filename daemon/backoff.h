/* Bounds under attack, as pure state machines over the caller's clock
 * (microseconds, monotonic; nothing here reads a clock or does I/O):
 *
 * Repair back-off, one per partner.  Up to burst repairs within a window
 * run at once.  Drift seen again within that window, after the burst, is
 * a fight (the alarm): its repair waits until 1 s after the previous one,
 * and every further repair doubles the wait (1, 2, 4 ... s) up to max, so
 * a partner's policies are restored at the latest max after the previous
 * repair, never given up.  A fight ends when neither drift nor a repair
 * happened for a window and nothing waits for repair; the state returns to zero (a new
 * fight starts from 1 s again).
 *
 * Log rate limit, one per message kind: at most burst lines per interval;
 * the lines dropped are counted and reported once, when the interval has
 * ended (at the next line of the kind, or a flush).  The first line of an
 * interval is always shown, so an error that is the only one is never
 * suppressed. */
#ifndef MMTRUSTD_BACKOFF_H
#define MMTRUSTD_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define MM_USEC_PER_SEC 1000000ULL

struct mm_backoff_cfg {
	uint32_t burst;      /* repairs within a window before back-off; 0: never back off */
	uint64_t window;     /* us: the counting window, and the quiet time that ends a fight */
	uint64_t max;        /* us: the longest delay (>= 1 s) */
};

/* Defaults of [spd] repair_burst, repair_window, repair_backoff_max. */
#define MM_BACKOFF_BURST_DEFAULT 5
#define MM_BACKOFF_WINDOW_DEFAULT 10
#define MM_BACKOFF_MAX_DEFAULT 60

/* One partner's state; zero is "no drift seen". */
struct mm_backoff {
	uint64_t win_start;   /* first repair counted in the window */
	uint32_t in_window;   /* repairs counted since */
	uint64_t delay;       /* the delay the next repair waits, 0: none */
	uint64_t not_before;  /* the next repair may run from here */
	uint64_t last_drift;  /* drift last seen */
	uint64_t last_repair;
	uint64_t since;       /* the fight began, 0: no fight */
	uint32_t repairs;     /* repairs since the fight began (the burst included) */
};

enum mm_backoff_event {
	MM_BACKOFF_NONE,
	MM_BACKOFF_RAISED,   /* a fight began: raise the alarm */
	MM_BACKOFF_CLEARED,  /* the fight is over: clear it */
};

static inline bool mm_backoff_fighting(const struct mm_backoff *b)
{
	return b->since != 0;
}

/* Drift of the partner seen at now (call it before the repair).  RAISED
 * when the burst is used up within the window: the fight begins. */
enum mm_backoff_event mm_backoff_drift(struct mm_backoff *b, const struct mm_backoff_cfg *c,
				       uint64_t now);
/* True when a repair may run at now. */
bool mm_backoff_may_repair(const struct mm_backoff *b, uint64_t now);
/* A repair ran at now: counted; the delay for the next one follows. */
void mm_backoff_repaired(struct mm_backoff *b, const struct mm_backoff_cfg *c, uint64_t now);
/* Ask at now whether the fight is over (pending: a repair of the partner
 * still waits).  CLEARED once, then the state is zero. */
enum mm_backoff_event mm_backoff_settle(struct mm_backoff *b, const struct mm_backoff_cfg *c,
					uint64_t now, bool pending);
/* When settle can next say CLEARED (or the state can be forgotten): the
 * end of the quiet window (in a fight, after the last drift or repair). */
uint64_t mm_backoff_quiet_at(const struct mm_backoff *b, const struct mm_backoff_cfg *c);
/* True when the state holds nothing worth keeping at now (no fight, the
 * window is over): the caller may drop it. */
bool mm_backoff_idle(const struct mm_backoff *b, const struct mm_backoff_cfg *c, uint64_t now);

struct mm_ratelimit {
	uint64_t start;       /* the interval began, 0: no line yet */
	uint32_t shown;       /* lines shown in the interval */
	uint32_t suppressed;  /* lines dropped in it */
};

/* A line of the kind at now: true to show it, false to drop it (counted).
 * When a finished interval dropped lines, *ret_suppressed and *ret_span
 * (us) say how many over how long, to be reported before this line;
 * else *ret_suppressed is 0. */
bool mm_ratelimit_take(struct mm_ratelimit *rl, uint64_t now, uint64_t interval, uint32_t burst,
		       uint32_t *ret_suppressed, uint64_t *ret_span);
/* The dropped lines of an interval that has ended at now, to report; 0
 * when none (or the interval runs on). */
uint32_t mm_ratelimit_flush(struct mm_ratelimit *rl, uint64_t now, uint64_t interval,
			    uint64_t *ret_span);

#endif
