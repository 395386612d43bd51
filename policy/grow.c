#include "grow.h"

#include <errno.h>
#include <stdlib.h>

int mm_grow_max(void **v, size_t *cap, size_t need, size_t elem_size, size_t max)
{
	size_t ncap;
	void *n;

	if (need <= *cap)
		return 0;
	if (elem_size == 0)
		return -EINVAL;
	if (need > max)
		return -E2BIG;
	ncap = *cap > max / 2 ? max : *cap * 2;
	if (ncap < MM_GROW_FIRST)
		ncap = MM_GROW_FIRST < max ? MM_GROW_FIRST : max;
	if (ncap < need)
		ncap = need;
	/* No object may exceed PTRDIFF_MAX bytes (pointer differences in
	 * it would overflow); doubling may cross that where need alone fits. */
	if (ncap > PTRDIFF_MAX / elem_size)
		ncap = PTRDIFF_MAX / elem_size;
	if (ncap < need)
		return -ENOMEM;
	n = realloc(*v, ncap * elem_size);
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = ncap;
	return 0;
}
