/* daemon/backoff.h: the repair back-off schedule of a drift fight and the
 * log rate limit, driven by a clock of the test's own. */
#include <check.h>
#include <stdint.h>

#include "daemon/backoff.h"
#include "tests/unit/testmain.h"

#define S MM_USEC_PER_SEC

static const struct mm_backoff_cfg cfg = { .burst = 5, .window = 10 * S, .max = 8 * S };

/* Drift at t, repaired as soon as the schedule lets it: returns when. */
static uint64_t drift_and_repair(struct mm_backoff *b, uint64_t t, int *ret_event)
{
	*ret_event = mm_backoff_drift(b, &cfg, t);
	if (!mm_backoff_may_repair(b, t))
		t = b->not_before;
	ck_assert(mm_backoff_may_repair(b, t));
	mm_backoff_repaired(b, &cfg, t);
	return t;
}

/* Up to the burst, every repair runs at once; the next drift within the
 * window raises the alarm once and waits 1 s, then 2, 4, 8, 8 (the max). */
START_TEST(test_schedule)
{
	struct mm_backoff b = { 0 };
	uint64_t t = 100 * S, done, prev;
	int ev, raised = 0;
	static const uint64_t want[] = { 1, 2, 4, 8, 8, 8 };

	for (int i = 0; i < 5; i++) {
		done = drift_and_repair(&b, t, &ev);
		ck_assert_uint_eq(done, t);  /* at once */
		ck_assert_int_eq(ev, MM_BACKOFF_NONE);
		t += S / 10;
	}
	ck_assert(!mm_backoff_fighting(&b));
	prev = t - S / 10;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		done = drift_and_repair(&b, prev + 1000, &ev);  /* drift 1 ms after a repair */
		raised += ev == MM_BACKOFF_RAISED;
		ck_assert_uint_eq(done - prev, want[i] * S);
		prev = done;
	}
	ck_assert_int_eq(raised, 1);
	ck_assert(mm_backoff_fighting(&b));
	ck_assert_uint_eq(b.repairs, 5 + 6);
	ck_assert_uint_eq(b.since, 100 * S + 4 * S / 10 + 1000);
}
END_TEST

/* Never given up: whatever the drift, a waiting repair may run at the
 * latest max after the previous one. */
START_TEST(test_never_beyond_max)
{
	struct mm_backoff b = { 0 };
	uint64_t t = S, done;
	int ev;

	for (int i = 0; i < 200; i++) {
		done = drift_and_repair(&b, t, &ev);
		ck_assert_uint_le(done - t, cfg.max);
		if (mm_backoff_fighting(&b))
			ck_assert_uint_le(b.not_before - done, cfg.max);
		t = done + 1;
	}
}
END_TEST

/* Repairs slower than the burst per window never fight. */
START_TEST(test_slow_drift_no_fight)
{
	struct mm_backoff b = { 0 };
	uint64_t t = S, done;
	int ev;

	for (int i = 0; i < 100; i++) {
		done = drift_and_repair(&b, t, &ev);
		ck_assert_int_eq(ev, MM_BACKOFF_NONE);
		ck_assert_uint_eq(done, t);
		t += 2 * S + 1;  /* 4.99 per window of 10 s */
	}
	ck_assert(!mm_backoff_fighting(&b));
}
END_TEST

/* burst 0: back-off off, everything at once. */
START_TEST(test_off)
{
	struct mm_backoff_cfg off = cfg;
	struct mm_backoff b = { 0 };

	off.burst = 0;
	for (uint64_t t = S; t < 2 * S; t += 1000) {
		ck_assert_int_eq(mm_backoff_drift(&b, &off, t), MM_BACKOFF_NONE);
		ck_assert(mm_backoff_may_repair(&b, t));
		mm_backoff_repaired(&b, &off, t);
	}
}
END_TEST

/* The fight ends only after a quiet window with nothing pending, once;
 * then a new fight starts from 1 s again. */
START_TEST(test_clears_after_quiet)
{
	struct mm_backoff b = { 0 };
	uint64_t t = S, last = 0, drift = 0;
	int ev;

	for (int i = 0; i < 12; i++) {
		drift = t;
		last = t = drift_and_repair(&b, t, &ev) + 1000;
	}
	ck_assert(mm_backoff_fighting(&b));
	ck_assert_uint_eq(b.delay, cfg.max);
	/* The quiet time counts from the later of the last drift and the
	 * last repair: while a repair waits, nothing of ours can drift. */
	ck_assert_uint_gt(last - 1000, drift);
	ck_assert_uint_eq(mm_backoff_quiet_at(&b, &cfg), last - 1000 + cfg.window);
	ck_assert_int_eq(mm_backoff_settle(&b, &cfg, drift + cfg.window, false), MM_BACKOFF_NONE);
	ck_assert_int_eq(mm_backoff_settle(&b, &cfg, last - 1000 + cfg.window - 1, false),
			 MM_BACKOFF_NONE);
	ck_assert_int_eq(mm_backoff_settle(&b, &cfg, last + cfg.window, true), MM_BACKOFF_NONE);
	ck_assert(!mm_backoff_idle(&b, &cfg, last + cfg.window));
	ck_assert_int_eq(mm_backoff_settle(&b, &cfg, last + cfg.window, false), MM_BACKOFF_CLEARED);
	ck_assert(!mm_backoff_fighting(&b));
	ck_assert_int_eq(mm_backoff_settle(&b, &cfg, last + 2 * cfg.window, false), MM_BACKOFF_NONE);
	ck_assert(mm_backoff_idle(&b, &cfg, last + cfg.window));
	/* A new fight: 5 at once, then 1 s. */
	t = last + 20 * S;
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(drift_and_repair(&b, t + i, &ev), t + i);
	ck_assert_uint_eq(drift_and_repair(&b, t + 5, &ev), t + 4 + S);
	ck_assert_int_eq(ev, MM_BACKOFF_RAISED);
}
END_TEST

/* A back-off longer than the window: the fight goes on through the wait
 * (the other party strikes again right after each repair). */
START_TEST(test_long_wait_not_quiet)
{
	struct mm_backoff_cfg c = { .burst = 2, .window = 3 * S, .max = 8 * S };
	struct mm_backoff b = { 0 };
	uint64_t t = S;
	int raised = 0;

	for (int i = 0; i < 20; i++) {
		raised += mm_backoff_drift(&b, &c, t) == MM_BACKOFF_RAISED;
		if (mm_backoff_fighting(&b))
			for (uint64_t q = t; q < b.not_before; q += S / 2)
				ck_assert_int_eq(mm_backoff_settle(&b, &c, q, true), MM_BACKOFF_NONE);
		if (!mm_backoff_may_repair(&b, t))
			t = b.not_before;
		mm_backoff_repaired(&b, &c, t);
		ck_assert_int_eq(mm_backoff_settle(&b, &c, t, false), MM_BACKOFF_NONE);
		t += 1000;  /* deleted again at once */
	}
	ck_assert_int_eq(raised, 1);
}
END_TEST

/* Drift within the burst then a pause longer than the window: the count
 * starts again, no fight. */
START_TEST(test_window_resets)
{
	struct mm_backoff b = { 0 };
	uint64_t t = S;
	int ev;

	for (int i = 0; i < 5; i++)
		drift_and_repair(&b, t + i, &ev);
	ck_assert(!mm_backoff_idle(&b, &cfg, t + cfg.window - 1));
	ck_assert(mm_backoff_idle(&b, &cfg, t + cfg.window));
	t += cfg.window;
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq(drift_and_repair(&b, t + i, &ev), t + i);
		ck_assert_int_eq(ev, MM_BACKOFF_NONE);
	}
}
END_TEST

/* ---- log rate limit ---- */

/* burst lines per interval; the rest counted and reported once when the
 * interval ended, before the next line. */
START_TEST(test_ratelimit)
{
	struct mm_ratelimit rl = { 0 };
	uint64_t span = 0, t = 5 * S;
	uint32_t sup;
	int shown = 0;

	for (int i = 0; i < 1000; i++) {
		shown += mm_ratelimit_take(&rl, t + (uint64_t)i * 1000, 10 * S, 5, &sup, &span);
		ck_assert_uint_eq(sup, 0);
	}
	ck_assert_int_eq(shown, 5);
	ck_assert_uint_eq(mm_ratelimit_flush(&rl, t + 10 * S - 1, 10 * S, &span), 0);
	ck_assert(mm_ratelimit_take(&rl, t + 12 * S, 10 * S, 5, &sup, &span));
	ck_assert_uint_eq(sup, 995);
	ck_assert_uint_eq(span, 12 * S);
	/* The new interval began with that line. */
	ck_assert(mm_ratelimit_take(&rl, t + 13 * S, 10 * S, 5, &sup, &span));
	ck_assert_uint_eq(sup, 0);
}
END_TEST

/* A flush after the interval reports the dropped lines once; nothing
 * dropped, nothing reported. */
START_TEST(test_ratelimit_flush)
{
	struct mm_ratelimit rl = { 0 };
	uint64_t span = 0;
	uint32_t sup;

	for (int i = 0; i < 7; i++)
		mm_ratelimit_take(&rl, S + (uint64_t)i, 10 * S, 5, &sup, &span);
	ck_assert_uint_eq(mm_ratelimit_flush(&rl, 11 * S, 10 * S, &span), 2);
	ck_assert_uint_eq(span, 10 * S);
	ck_assert_uint_eq(mm_ratelimit_flush(&rl, 30 * S, 10 * S, &span), 0);
	mm_ratelimit_take(&rl, 40 * S, 10 * S, 5, &sup, &span);
	ck_assert_uint_eq(mm_ratelimit_flush(&rl, 60 * S, 10 * S, &span), 0);
}
END_TEST

/* The only line of a kind is never dropped, even with burst 0. */
START_TEST(test_ratelimit_first_line)
{
	struct mm_ratelimit rl = { 0 };
	uint64_t span;
	uint32_t sup;

	ck_assert(mm_ratelimit_take(&rl, 0, 10 * S, 0, &sup, &span));
	ck_assert(!mm_ratelimit_take(&rl, 1, 10 * S, 0, &sup, &span));
	ck_assert(mm_ratelimit_take(&rl, 11 * S, 10 * S, 0, &sup, &span));
	ck_assert_uint_eq(sup, 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("backoff");

	tcase_add_test(tc, test_schedule);
	tcase_add_test(tc, test_never_beyond_max);
	tcase_add_test(tc, test_slow_drift_no_fight);
	tcase_add_test(tc, test_off);
	tcase_add_test(tc, test_clears_after_quiet);
	tcase_add_test(tc, test_window_resets);
	tcase_add_test(tc, test_long_wait_not_quiet);
	tcase_add_test(tc, test_ratelimit);
	tcase_add_test(tc, test_ratelimit_flush);
	tcase_add_test(tc, test_ratelimit_first_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
