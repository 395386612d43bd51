/* The one way every unit test runs its suite. */
#ifndef MM_TESTMAIN_H
#define MM_TESTMAIN_H

#include <check.h>

/* Run the suite (forking per test unless CK_FORK=no); EXIT_SUCCESS when
 * every test passed, else EXIT_FAILURE. */
int mm_test_run(Suite *s);

#endif
