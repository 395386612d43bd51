/* mmtrust.h as a CSCF's C code includes it: compiled with -std=c99 -Wall
 * -Wextra -pedantic -Werror by tests/client/test_package.sh. */
#include <mmtrust.h>

int header_c_answer_is_keep(const struct mmtrust_answer *a);
int header_c_answer_is_keep(const struct mmtrust_answer *a)
{
	return a->pai == MMTRUST_PAI_KEEP && a->source[0] != '\0';
}
