/* policy/grow.h: the one array-growth rule, at its edges. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy/grow.h"
#include "tests/unit/testmain.h"

START_TEST(test_no_op_when_room)
{
	size_t cap = 0;
	int *v = NULL, *before;

	ck_assert_int_eq(mm_grow((void **)&v, &cap, 3, sizeof(*v)), 0);
	before = v;
	ck_assert_uint_eq(cap, MM_GROW_FIRST);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, 0, sizeof(*v)), 0);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, MM_GROW_FIRST, sizeof(*v)), 0);
	ck_assert_ptr_eq(v, before);
	ck_assert_uint_eq(cap, MM_GROW_FIRST);
	free(v);
}
END_TEST

/* Appends keep the contents and double the capacity: 100000 appends,
 * a handful of reallocations. */
START_TEST(test_geometric)
{
	size_t cap = 0, grows = 0, last = 0;
	uint32_t *v = NULL;

	for (uint32_t i = 0; i < 100000; i++) {
		ck_assert_int_eq(mm_grow((void **)&v, &cap, (size_t)i + 1, sizeof(*v)), 0);
		ck_assert_uint_ge(cap, (size_t)i + 1);
		if (cap != last) {
			ck_assert(last == 0 || cap == 2 * last);
			grows++;
			last = cap;
		}
		v[i] = i * 7;
	}
	ck_assert_uint_le(grows, 14);
	for (uint32_t i = 0; i < 100000; i++)
		ck_assert_uint_eq(v[i], i * 7);
	free(v);
}
END_TEST

/* A reservation larger than the doubled capacity gets exactly what it asks. */
START_TEST(test_reserve_exact)
{
	size_t cap = 0;
	char *v = NULL;

	ck_assert_int_eq(mm_grow((void **)&v, &cap, 1000, 1), 0);
	ck_assert_uint_eq(cap, 1000);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, 1001, 1), 0);
	ck_assert_uint_eq(cap, 2000);
	free(v);
}
END_TEST

/* need * elem_size does not fit: refused, nothing changed (a wrapped size
 * would allocate a few bytes and report success). */
START_TEST(test_size_overflow)
{
	size_t cap = 0;
	uint64_t *v = NULL;

	ck_assert_int_eq(mm_grow((void **)&v, &cap, SIZE_MAX / 8 + 1, 8), -ENOMEM);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(cap, 0);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, SIZE_MAX, 2), -ENOMEM);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, 4, 8), 0);
	ck_assert_int_eq(mm_grow((void **)&v, &cap, SIZE_MAX / 3, 16), -ENOMEM);
	/* fits in size_t, but no object may be that large */
	ck_assert_int_eq(mm_grow((void **)&v, &cap, PTRDIFF_MAX / 4 + 1, 4), -ENOMEM);
	ck_assert_uint_eq(cap, MM_GROW_FIRST);
	free(v);
}
END_TEST

/* Doubling a capacity past half of SIZE_MAX must not wrap to 0 (the
 * array is never touched: the size is refused before any allocation). */
START_TEST(test_doubling_overflow)
{
	size_t cap = SIZE_MAX / 2 + 1;
	void *v = NULL;

	ck_assert_int_eq(mm_grow(&v, &cap, cap + 1, 1), -ENOMEM);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(cap, SIZE_MAX / 2 + 1);
	cap = SIZE_MAX / 4;
	ck_assert_int_eq(mm_grow(&v, &cap, cap + 1, 4), -ENOMEM);
	ck_assert_uint_eq(cap, SIZE_MAX / 4);
}
END_TEST

START_TEST(test_bound)
{
	size_t cap = 0;
	char *v = NULL;

	ck_assert_int_eq(mm_grow_max((void **)&v, &cap, 1, 1, 5), 0);
	ck_assert_uint_eq(cap, 5);
	ck_assert_int_eq(mm_grow_max((void **)&v, &cap, 6, 1, 5), -E2BIG);
	ck_assert_uint_eq(cap, 5);
	ck_assert_int_eq(mm_grow_max((void **)&v, &cap, 6, 1, 7), 0);
	ck_assert_uint_eq(cap, 7);  /* doubling stops at the bound */
	free(v);
}
END_TEST

START_TEST(test_zero_size)
{
	size_t cap = 0;
	void *v = NULL;

	ck_assert_int_eq(mm_grow(&v, &cap, 1, 0), -EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(cap, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("grow");
	TCase *tc = tcase_create("grow");

	tcase_add_test(tc, test_no_op_when_room);
	tcase_add_test(tc, test_geometric);
	tcase_add_test(tc, test_reserve_exact);
	tcase_add_test(tc, test_size_overflow);
	tcase_add_test(tc, test_doubling_overflow);
	tcase_add_test(tc, test_bound);
	tcase_add_test(tc, test_zero_size);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
