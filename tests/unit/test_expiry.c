/* daemon/expiry.h: the one rule of what ends "soon" (in the window), the
 * days left, and when a line is logged.  Boundaries: exactly N days left
 * is inside, a second more is not; already ended is always inside; an
 * unknown end never is; a window of 0 turns every warning off, the ended
 * too; a CRL is judged by half its own validity when that is shorter than
 * the window.  What must never happen: a line repeated for an item that
 * stays in the window, or none for one that enters it or ends. */
#include <check.h>
#include <stdint.h>

#include "daemon/expiry.h"
#include "tests/unit/testmain.h"

#define D MM_EXPIRY_DAY
#define NOW INT64_C(1800000000)

START_TEST(test_days_left)
{
	ck_assert_int_eq(mm_expiry_days_left(NOW + 10 * D, NOW), 10);
	ck_assert_int_eq(mm_expiry_days_left(NOW + 10 * D - 1, NOW), 9);
	ck_assert_int_eq(mm_expiry_days_left(NOW + 10 * D + 1, NOW), 10);
	ck_assert_int_eq(mm_expiry_days_left(NOW + 1, NOW), 0);
	ck_assert_int_eq(mm_expiry_days_left(NOW, NOW), 0);
	/* Ended: negative from the first second on, so < 0 means expired. */
	ck_assert_int_eq(mm_expiry_days_left(NOW - 1, NOW), -1);
	ck_assert_int_eq(mm_expiry_days_left(NOW - D, NOW), -1);
	ck_assert_int_eq(mm_expiry_days_left(NOW - D - 1, NOW), -2);
	ck_assert_int_eq(mm_expiry_days_left(NOW - 400 * D, NOW), -400);
}
END_TEST

START_TEST(test_window_boundaries)
{
	/* Exactly 30 days left with a 30-day window: inside. */
	ck_assert(mm_expiry_in_window(NOW + 30 * D, NOW, 30, 0));
	ck_assert(!mm_expiry_in_window(NOW + 30 * D + 1, NOW, 30, 0));
	ck_assert(mm_expiry_in_window(NOW + 30 * D - 1, NOW, 30, 0));
	ck_assert(mm_expiry_in_window(NOW + 10 * D, NOW, 30, 0));
	/* The same 10 days with a 5-day window: not yet. */
	ck_assert(!mm_expiry_in_window(NOW + 10 * D, NOW, 5, 0));
	ck_assert(mm_expiry_in_window(NOW + 5 * D, NOW, 5, 0));
	/* Ending now, and already ended (a second, years): always inside. */
	ck_assert(mm_expiry_in_window(NOW, NOW, 1, 0));
	ck_assert(mm_expiry_in_window(NOW - 1, NOW, 1, 0));
	ck_assert(mm_expiry_in_window(NOW - 3650 * D, NOW, 30, 0));
	/* The largest window. */
	ck_assert(mm_expiry_in_window(NOW + 3650 * D, NOW, MM_EXPIRY_WINDOW_MAX, 0));
	ck_assert(!mm_expiry_in_window(NOW + 3651 * D, NOW, MM_EXPIRY_WINDOW_MAX, 0));
}
END_TEST

START_TEST(test_window_off_and_unknown)
{
	/* Window 0: no warnings at all, not even for what has ended. */
	ck_assert(!mm_expiry_in_window(NOW + D, NOW, 0, 0));
	ck_assert(!mm_expiry_in_window(NOW, NOW, 0, 0));
	ck_assert(!mm_expiry_in_window(NOW - 100 * D, NOW, 0, 0));
	/* An unknown end (0: a CRL without nextUpdate) is never a warning. */
	ck_assert(!mm_expiry_in_window(0, NOW, 30, 0));
	ck_assert(!mm_expiry_in_window(0, NOW, MM_EXPIRY_WINDOW_MAX, 7 * D));
}
END_TEST

/* A CRL valid 7 days, window 30: a fresh one (7 days left) is fine; it
 * becomes a warning once half its validity is gone without a re-issue. */
START_TEST(test_crl_period)
{
	int64_t period = 7 * D;

	ck_assert(!mm_expiry_in_window(NOW + 7 * D, NOW, 30, period));
	ck_assert(!mm_expiry_in_window(NOW + 7 * D / 2 + 1, NOW, 30, period));
	ck_assert(mm_expiry_in_window(NOW + 7 * D / 2, NOW, 30, period));
	ck_assert(mm_expiry_in_window(NOW - 1, NOW, 30, period));
	/* A window shorter than half the validity rules. */
	ck_assert(!mm_expiry_in_window(NOW + 2 * D, NOW, 1, period));
	ck_assert(mm_expiry_in_window(NOW + D, NOW, 1, period));
	/* A 90-day CRL with a 30-day window: the window (half is 45). */
	ck_assert(!mm_expiry_in_window(NOW + 31 * D, NOW, 30, 90 * D));
	ck_assert(mm_expiry_in_window(NOW + 30 * D, NOW, 30, 90 * D));
	/* A nonsense period (nextUpdate before thisUpdate): the window. */
	ck_assert(mm_expiry_in_window(NOW + 30 * D, NOW, 30, -5));
	/* Window 0 stays off for CRLs too. */
	ck_assert(!mm_expiry_in_window(NOW - 1, NOW, 0, period));
}
END_TEST

static struct mm_expiry_item item(int64_t not_after, uint32_t window)
{
	return (struct mm_expiry_item){
		.what = MM_EXPIRY_PARTNER_CA,
		.partner = "a.example",
		.name = "CN=a",
		.not_after = not_after,
		.days_left = mm_expiry_days_left(not_after, NOW),
		.in_window = mm_expiry_in_window(not_after, NOW, window, 0),
	};
}

START_TEST(test_transition)
{
	struct mm_expiry_item in = item(NOW + 10 * D, 30), out = item(NOW + 10 * D, 5);
	struct mm_expiry_item ended = item(NOW - 1, 30);

	/* Entering (or found inside at start): one line. */
	ck_assert_int_eq(mm_expiry_transition(false, 0, false, &in), MM_EXPIRY_LOG_ENTERED);
	/* Still inside, same end: nothing, however often it is checked. */
	ck_assert_int_eq(mm_expiry_transition(true, in.not_after, false, &in), MM_EXPIRY_LOG_NONE);
	/* Outside the window: nothing, logged or not. */
	ck_assert_int_eq(mm_expiry_transition(false, 0, false, &out), MM_EXPIRY_LOG_NONE);
	ck_assert_int_eq(mm_expiry_transition(true, out.not_after, false, &out), MM_EXPIRY_LOG_NONE);
	/* Found already ended at start: one line (entered). */
	ck_assert_int_eq(mm_expiry_transition(false, 0, false, &ended), MM_EXPIRY_LOG_ENTERED);
	/* Said while inside, then its end passes: one more line, then none. */
	ended.not_after = in.not_after;
	ended.days_left = -1;
	ck_assert_int_eq(mm_expiry_transition(true, in.not_after, false, &ended),
			 MM_EXPIRY_LOG_EXPIRED);
	ck_assert_int_eq(mm_expiry_transition(true, in.not_after, true, &ended), MM_EXPIRY_LOG_NONE);
	/* A new end still inside the window (a CRL re-issued close to its
	 * end, a CA replaced by one that also ends soon): said again. */
	ck_assert_int_eq(mm_expiry_transition(true, in.not_after - D, false, &in),
			 MM_EXPIRY_LOG_ENTERED);
	/* Window 0: an ended item is not in the window, nothing is said. */
	ended = item(NOW - D, 0);
	ck_assert_int_eq(mm_expiry_transition(false, 0, false, &ended), MM_EXPIRY_LOG_NONE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("expiry");
	TCase *tc = tcase_create("expiry");

	tcase_add_test(tc, test_days_left);
	tcase_add_test(tc, test_window_boundaries);
	tcase_add_test(tc, test_window_off_and_unknown);
	tcase_add_test(tc, test_crl_period);
	tcase_add_test(tc, test_transition);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
