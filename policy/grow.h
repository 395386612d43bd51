/* Growing an array (or a byte buffer) in place, in one place.
 *
 * *v points to *cap elements of elem_size bytes (NULL and 0 at first).
 * mm_grow_max() makes room for at least `need` elements:
 *   - need <= *cap: nothing happens;
 *   - otherwise the capacity becomes the largest of need, twice *cap and
 *     MM_GROW_FIRST (geometric: n appends cost O(n) copying), but never
 *     more than `max` elements; the contents are kept (realloc).
 * Neither need * elem_size nor the doubling may wrap: a byte size over
 * PTRDIFF_MAX (the largest object C allows) is refused before any
 * allocation, never rounded down to a small buffer.
 * Returns 0; -E2BIG if need > max; -ENOMEM if the allocation fails or
 * need elements exceed PTRDIFF_MAX bytes; -EINVAL if elem_size is 0.  On error
 * *v and *cap are unchanged (the caller still owns and frees *v).
 *
 * Not for buffers that may hold key material: realloc does not wipe the
 * block it leaves (vici_msg.c's builder copies and wipes by hand). */
#ifndef MM_GROW_H
#define MM_GROW_H

#include <stddef.h>
#include <stdint.h>

#define MM_GROW_FIRST 16

int mm_grow_max(void **v, size_t *cap, size_t need, size_t elem_size, size_t max);

/* mm_grow_max() without a bound of its own. */
static inline int mm_grow(void **v, size_t *cap, size_t need, size_t elem_size)
{
	return mm_grow_max(v, cap, need, elem_size, SIZE_MAX);
}

#endif
