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

void mm_test_three(uint32_t reqid_base, struct mm_partner *ret[5])
{
	ret[0] = mm_test_partner("alpha.example.net", reqid_base + 1, "10.1.0.0/24 10.1.1.0/25",
				 "100.64.0.1");
	ret[1] = mm_test_partner("beta.example.org", reqid_base + 2,
				 "10.2.0.0/16 2001:db8:20::/48", "2001:db8:ff02::2 100.64.0.2");
	ret[2] = mm_test_partner("gamma.example.com", reqid_base + 3, "10.3.3.0/24",
				 "2001:db8:ff03::3");
	ret[3] = mm_test_partner("off.example.net", reqid_base + 4, "10.4.0.0/24", "100.64.0.4");
	ret[3]->enabled = false;
	ret[4] = mm_test_partner("seg.example.net", reqid_base + 5, "10.5.0.0/24", "100.64.0.5");
	ret[4]->path = MM_PATH_SEG;
}

void mm_test_partners_free(struct mm_partner **t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		mm_partner_unref(t[i]);
		t[i] = NULL;
	}
}
