/* Addresses and prefixes from text in unit tests: a text that does not
 * parse fails the running test. */
#ifndef MM_TESTADDR_H
#define MM_TESTADDR_H

#include "policy/addr.h"

struct mm_prefix mm_test_prefix(const char *s);
struct mm_addr mm_test_addr(const char *s);

#endif
