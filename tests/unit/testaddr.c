#include "tests/unit/testaddr.h"

#include <check.h>

struct mm_prefix mm_test_prefix(const char *s)
{
	struct mm_prefix p;

	ck_assert_msg(mm_prefix_parse(s, &p, "test", NULL) == 0, "bad prefix %s", s);
	return p;
}

struct mm_addr mm_test_addr(const char *s)
{
	struct mm_addr a;

	ck_assert_msg(mm_addr_parse(s, &a, "test", NULL) == 0, "bad address %s", s);
	return a;
}
