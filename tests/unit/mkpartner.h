/* A partner built by hand for tests (unit and netns tiers). */
#ifndef MM_TEST_MKPARTNER_H
#define MM_TEST_MKPARTNER_H

#include <stdint.h>

#include "policy/partner.h"

/* Enabled, path tunnel, kind ims; ranges and gateways are space-separated
 * lists (may be empty).  Aborts the test on a parse failure.  Free with
 * mm_partner_unref. */
struct mm_partner *mm_test_partner(const char *domain, uint32_t reqid, const char *ranges,
				   const char *gateways);

#endif
