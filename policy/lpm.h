/* Longest-prefix-match index from address to value, IPv4 and IPv6.
 *
 * The index is immutable: built once from a set of prefixes, then only read,
 * so a reader never sees a half-updated index and the daemon can swap a new
 * one in after every table change ("parse into a new structure, swap").
 * Prefixes may nest (the longest match wins); the partner table itself never
 * holds overlapping ranges, but the index does not rely on that. */
#ifndef MM_LPM_H
#define MM_LPM_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct mm_lpm;

struct mm_lpm_entry {
	struct mm_prefix prefix;
	void *value;  /* borrowed; returned by lookups, never dereferenced */
};

/* Build an index over n entries (copied; the array may be freed after).
 * The same prefix twice is -EEXIST; a malformed prefix -EINVAL; -ENOMEM.
 * On success *ret is set and the caller frees it with mm_lpm_free(). */
int mm_lpm_new(const struct mm_lpm_entry *entries, size_t n, struct mm_lpm **ret);
void mm_lpm_free(struct mm_lpm *lpm);

/* The value of the longest prefix containing addr, or NULL when none does.
 * When ret_prefix is not NULL and a prefix matched, it is set to a pointer
 * into the index (valid until mm_lpm_free). */
void *mm_lpm_lookup(const struct mm_lpm *lpm, const struct mm_addr *addr,
		    const struct mm_prefix **ret_prefix);
/* IPv4 fast path: addr in host byte order. */
void *mm_lpm_lookup4(const struct mm_lpm *lpm, uint32_t addr);

/* Number of prefixes indexed. */
size_t mm_lpm_count(const struct mm_lpm *lpm);
/* Bytes of memory held by the index (for benchmarks and status). */
size_t mm_lpm_memory(const struct mm_lpm *lpm);

#endif
