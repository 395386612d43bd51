/* A partner built by hand for tests (unit and netns tiers). */
#ifndef MM_TEST_MKPARTNER_H
#define MM_TEST_MKPARTNER_H

#include <stddef.h>
#include <stdint.h>

#include "policy/partner.h"

/* Enabled, path tunnel, kind ims; ranges and gateways are space-separated
 * lists (may be empty).  Aborts the test on a parse failure.  Free with
 * mm_partner_unref. */
struct mm_partner *mm_test_partner(const char *domain, uint32_t reqid, const char *ranges,
				   const char *gateways);

/* The "three" table of the SPD tests: IPv4 with two ranges; mixed ranges
 * with an IPv6 gateway listed first; IPv4 ranges reached through an
 * IPv6-only gateway; plus a disabled partner and one on the SEG path,
 * which must get nothing.  Reqids reqid_base + 1 .. + 5. */
void mm_test_three(uint32_t reqid_base, struct mm_partner *ret[5]);
/* Unref t[0..n) and set them to NULL. */
void mm_test_partners_free(struct mm_partner **t, size_t n);

#endif
