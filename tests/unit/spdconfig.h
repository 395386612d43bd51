/* The SPD engine's test configuration (unit and netns tiers): locals
 * 198.51.100.0/24 (forwarded) and 2001:db8:1::/64, both facing every kind, tunnel addresses
 * 192.0.2.1 and 2001:db8:ffff::1, the default band, tag and reqid range.
 * Inline: only the tests that link the SPD engine include it. */
#ifndef MM_TEST_SPDCONFIG_H
#define MM_TEST_SPDCONFIG_H

#include <check.h>
#include <string.h>

#include "daemon/spd_desired.h"

static inline void mm_test_spd_config(struct mm_spd_config *cfg, struct mm_spd_local locals[2])
{
	memset(locals, 0, 2 * sizeof(*locals));
	ck_assert_int_eq(mm_prefix_parse("198.51.100.0/24", &locals[0].prefix, "", NULL), 0);
	locals[0].forward = true;
	locals[0].kinds = locals[1].kinds = MM_KINDS_ALL;  /* [local] cscf */
	ck_assert_int_eq(mm_prefix_parse("2001:db8:1::/64", &locals[1].prefix, "", NULL), 0);
	mm_spd_config_init(cfg);
	cfg->locals = locals;
	cfg->n_locals = 2;
	ck_assert_int_eq(mm_addr_parse("192.0.2.1", &cfg->tunnel4, "", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("2001:db8:ffff::1", &cfg->tunnel6, "", NULL), 0);
}

#endif
