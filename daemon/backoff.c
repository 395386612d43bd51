/* Repair back-off and log rate limit: see backoff.h. */
#include "backoff.h"

#define FIRST_DELAY MM_USEC_PER_SEC

static uint64_t first_delay(const struct mm_backoff_cfg *c)
{
	return c->max < FIRST_DELAY ? c->max : FIRST_DELAY;
}

enum mm_backoff_event mm_backoff_drift(struct mm_backoff *b, const struct mm_backoff_cfg *c,
				       uint64_t now)
{
	b->last_drift = now;
	if (mm_backoff_fighting(b) || !c->burst || b->in_window < c->burst ||
	    now - b->win_start >= c->window)
		return MM_BACKOFF_NONE;
	/* The burst is used up within the window: this repair waits. */
	b->since = now ? now : 1;  /* 0 is "no fight" */
	b->repairs = b->in_window;
	b->delay = first_delay(c);
	b->not_before = b->last_repair + b->delay;
	return MM_BACKOFF_RAISED;
}

bool mm_backoff_may_repair(const struct mm_backoff *b, uint64_t now)
{
	return !mm_backoff_fighting(b) || now >= b->not_before;
}

void mm_backoff_repaired(struct mm_backoff *b, const struct mm_backoff_cfg *c, uint64_t now)
{
	b->last_repair = now;
	if (!c->burst)
		return;
	if (mm_backoff_fighting(b)) {
		b->repairs++;
		b->delay = b->delay * 2 > c->max ? c->max : b->delay * 2;
		b->not_before = now + b->delay;
		return;
	}
	if (!b->in_window || now - b->win_start >= c->window) {
		b->win_start = now;
		b->in_window = 0;
	}
	b->in_window++;
}

uint64_t mm_backoff_quiet_at(const struct mm_backoff *b, const struct mm_backoff_cfg *c)
{
	/* In a fight, quiet is counted from the last repair too: while the
	 * repair waits, the other party has nothing of ours to change. */
	if (mm_backoff_fighting(b))
		return (b->last_drift > b->last_repair ? b->last_drift : b->last_repair) + c->window;
	return b->win_start + c->window;
}

enum mm_backoff_event mm_backoff_settle(struct mm_backoff *b, const struct mm_backoff_cfg *c,
					uint64_t now, bool pending)
{
	if (!mm_backoff_fighting(b) || pending || now < mm_backoff_quiet_at(b, c))
		return MM_BACKOFF_NONE;
	*b = (struct mm_backoff){ 0 };
	return MM_BACKOFF_CLEARED;
}

bool mm_backoff_idle(const struct mm_backoff *b, const struct mm_backoff_cfg *c, uint64_t now)
{
	return !mm_backoff_fighting(b) && (!b->in_window || now >= mm_backoff_quiet_at(b, c));
}

/* ---- log rate limit ---- */

uint32_t mm_ratelimit_flush(struct mm_ratelimit *rl, uint64_t now, uint64_t interval,
			    uint64_t *ret_span)
{
	uint32_t n = rl->suppressed;

	if (!rl->start || now - rl->start < interval)
		return 0;
	*ret_span = now - rl->start;
	*rl = (struct mm_ratelimit){ 0 };
	return n;
}

bool mm_ratelimit_take(struct mm_ratelimit *rl, uint64_t now, uint64_t interval, uint32_t burst,
		       uint32_t *ret_suppressed, uint64_t *ret_span)
{
	*ret_suppressed = mm_ratelimit_flush(rl, now, interval, ret_span);
	if (!rl->start)
		rl->start = now ? now : 1;  /* 0 means "no interval" */
	if (rl->shown < burst || rl->shown == 0) {
		rl->shown++;
		return true;
	}
	rl->suppressed++;
	return false;
}
