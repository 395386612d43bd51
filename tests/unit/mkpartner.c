#include "tests/unit/mkpartner.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mm_partner *mm_test_partner(const char *domain, uint32_t reqid, const char *ranges,
				   const char *gateways)
{
	struct mm_partner *p = mm_partner_new();
	char buf[512], *tok, *save;

	ck_assert_ptr_nonnull(p);
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	p->kind = MM_KIND_IMS;
	p->enabled = true;
	p->path = MM_PATH_TUNNEL;
	p->reqid = reqid;
	p->ranges = calloc(16, sizeof(*p->ranges));
	p->gateways = calloc(16, sizeof(*p->gateways));
	ck_assert(p->ranges && p->gateways);
	snprintf(buf, sizeof(buf), "%s", ranges);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		ck_assert_uint_lt(p->n_ranges, 16);
		ck_assert_int_eq(mm_prefix_parse(tok, &p->ranges[p->n_ranges++], "range", NULL), 0);
	}
	snprintf(buf, sizeof(buf), "%s", gateways);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		ck_assert_uint_lt(p->n_gateways, 16);
		ck_assert_int_eq(mm_addr_parse(tok, &p->gateways[p->n_gateways++], "gateway", NULL),
				 0);
	}
	return p;
}
