/* The host side's rules (daemon/host_plan.c): pure, no kernel.  When an
 * address counts as ours, which CSCF address a partner's route takes
 * (facing its kind, of the range's family, the lowest), when a range gets
 * no route and why, and -- seeded, against the rules restated here -- that
 * every tunnel range gets exactly one route or one reason. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/host_plan.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

#define A mm_test_addr
#define P mm_test_prefix

static struct host_addr HA(const char *a, const char *ifname, bool up, bool carrier)
{
	struct host_addr h = { .addr = A(a), .link_up = up, .carrier = carrier };

	snprintf(h.ifname, sizeof(h.ifname), "%s", ifname);
	return h;
}

START_TEST(addr_states)
{
	struct host_addr v[4] = {
		HA("192.0.2.1", "eth0", false, false),
		HA("192.0.2.1", "eth1", true, false),
		HA("2001:db8::1", "eth0", true, true),
		HA("2001:db8::2", "eth0", true, true),
	};
	const char *ifn;

	v[2].tentative = true;
	v[3].dadfailed = true;
	ck_assert_int_eq(host_addr_state(v, 4, &(struct mm_addr){ 0 }, NULL), HOST_ABSENT);
	/* The best of two: no carrier on eth1 beats link down on eth0. */
	ck_assert_int_eq(host_addr_state(v, 4, &v[0].addr, &ifn), HOST_NO_CARRIER);
	ck_assert_str_eq(ifn, "eth1");
	ck_assert_int_eq(host_addr_state(v, 1, &v[0].addr, &ifn), HOST_LINK_DOWN);
	ck_assert_int_eq(host_addr_state(v, 4, &v[2].addr, NULL), HOST_TENTATIVE);
	ck_assert_int_eq(host_addr_state(v, 4, &v[3].addr, NULL), HOST_DADFAILED);
	v[1].carrier = true;
	ck_assert_int_eq(host_addr_state(v, 4, &v[0].addr, &ifn), HOST_PRESENT);
	ck_assert_str_eq(ifn, "eth1");
	{
		struct mm_addr other = A("192.0.2.2");

		ck_assert_int_eq(host_addr_state(v, 4, &other, &ifn), HOST_ABSENT);
		ck_assert_str_eq(ifn, "");
	}
	for (int s = 0; s < HOST_STATE__MAX; s++)
		ck_assert_str_ne(host_state_name(s), "?");
}
END_TEST

/* CSCF prefixes: shared v6, IMS 10.0.1/24, non-IMS 10.0.2/24. */
static const unsigned KALL = MM_KINDS_ALL, KIMS = MM_KIND_BIT(MM_KIND_IMS),
		      KNON = MM_KIND_BIT(MM_KIND_NON_IMS);

static void cscf_prefixes(struct mm_prefix pfx[3], unsigned kinds[3])
{
	pfx[0] = P("2001:db8:10::/64");
	pfx[1] = P("10.0.1.0/24");
	pfx[2] = P("10.0.2.0/24");
	kinds[0] = KALL;
	kinds[1] = KIMS;
	kinds[2] = KNON;
}

START_TEST(cscf_find)
{
	struct mm_prefix pfx[3];
	unsigned kinds[3];
	struct host_addr v[6] = {
		HA("10.0.2.9", "c0", true, true),  HA("10.0.1.7", "c0", true, true),
		HA("10.0.1.5", "c0", true, true),  HA("10.0.1.5", "c1", true, true),
		HA("10.0.3.1", "c0", true, true),  HA("2001:db8:10::5", "c0", false, true),
	};
	struct host_cscf *c;
	size_t n;
	char s[MM_ADDR_STRLEN];

	cscf_prefixes(pfx, kinds);
	ck_assert_int_eq(host_cscf_find(v, 6, pfx, kinds, 3, &c, &n), 0);
	/* Sorted, the duplicate once, outside any prefix and link down: not. */
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(mm_addr_str(&c[0].addr, s), "10.0.1.5");
	ck_assert_uint_eq(c[0].kinds, KIMS);
	ck_assert_uint_eq(c[0].prefix, 1);
	ck_assert_str_eq(mm_addr_str(&c[1].addr, s), "10.0.1.7");
	ck_assert_str_eq(mm_addr_str(&c[2].addr, s), "10.0.2.9");
	ck_assert_uint_eq(c[2].kinds, KNON);
	free(c);
}
END_TEST

struct nh_table {
	const char *gw, *via;  /* via NULL: on the link; gw NULL: end */
	int oif;
};
static const struct nh_table nhs[] = {
	{ "198.51.100.10", NULL, 3 },
	{ "203.0.113.7", "198.51.100.254", 3 },
	{ "2001:db8:ff::7", "fe80::1", 4 },
	{ NULL, NULL, 0 },
};
static unsigned nexthop_calls;

static void fake_nexthop(void *userdata, const struct mm_addr *gw, struct host_nexthop *ret)
{
	(void)userdata;
	nexthop_calls++;
	*ret = (struct host_nexthop){ 0 };
	for (const struct nh_table *t = nhs; t->gw; t++) {
		struct mm_addr a = A(t->gw);

		if (mm_addr_cmp(&a, gw))
			continue;
		ret->ok = true;
		ret->oif = t->oif;
		if (t->via)
			ret->via = A(t->via);
	}
}

static void route_str(const struct host_route *r, char *buf, size_t len)
{
	char d[MM_ADDR_STRLEN], s[MM_ADDR_STRLEN], v[MM_ADDR_STRLEN];

	snprintf(buf, len, "%s src %s%s%s dev %d %s", mm_prefix_str(&r->dst, d),
		 mm_addr_str(&r->src, s), r->via.family ? " via " : "",
		 r->via.family ? mm_addr_str(&r->via, v) : "", r->oif, r->domain);
}

START_TEST(plan_kinds_and_reasons)
{
	struct mm_prefix pfx[3];
	unsigned kinds[3];
	struct host_addr v[3] = { HA("10.0.1.5", "c0", true, true), HA("10.0.2.5", "c0", true, true),
				  HA("2001:db8:10::5", "c0", true, true) };
	struct host_cscf *c;
	size_t n;
	struct mm_partner *ps[5];
	struct host_plan plan = { 0 };
	char buf[256];

	ps[0] = mm_test_partner("a.example", 1, "192.0.2.0/24 2001:db8:a::/48", "198.51.100.10");
	ps[1] = mm_test_partner("b.example", 2, "100.64.1.0/24", "203.0.113.7");
	ps[1]->kind = MM_KIND_NON_IMS;
	ps[2] = mm_test_partner("c.example", 3, "100.64.2.0/24", "192.0.2.200");  /* unreachable */
	ps[3] = mm_test_partner("d.example", 4, "100.64.3.0/24", "198.51.100.10");
	ps[3]->enabled = false;
	ps[4] = mm_test_partner("e.example", 5, "2001:db8:e::/48 100.64.5.0/24",
				"2001:db8:ff::7 198.51.100.10");
	cscf_prefixes(pfx, kinds);
	ck_assert_int_eq(host_cscf_find(v, 3, pfx, kinds, 3, &c, &n), 0);
	ck_assert_int_eq(host_plan_routes((const struct mm_partner *const *)ps, 5, c, n,
					  fake_nexthop, NULL, &plan),
			 0);
	ck_assert_uint_eq(plan.n, 5);
	route_str(&plan.routes[0], buf, sizeof(buf));
	ck_assert_str_eq(buf, "100.64.1.0/24 src 10.0.2.5 via 198.51.100.254 dev 3 b.example");
	route_str(&plan.routes[1], buf, sizeof(buf));
	ck_assert_str_eq(buf, "100.64.5.0/24 src 10.0.1.5 dev 3 e.example");
	route_str(&plan.routes[2], buf, sizeof(buf));
	ck_assert_str_eq(buf, "192.0.2.0/24 src 10.0.1.5 dev 3 a.example");
	/* An IPv6 range behind an IPv4 gateway: the device only. */
	route_str(&plan.routes[3], buf, sizeof(buf));
	ck_assert_str_eq(buf, "2001:db8:a::/48 src 2001:db8:10::5 dev 3 a.example");
	/* The gateway of the range's family is the one followed. */
	route_str(&plan.routes[4], buf, sizeof(buf));
	ck_assert_str_eq(buf, "2001:db8:e::/48 src 2001:db8:10::5 via fe80::1 dev 4 e.example");
	ck_assert_uint_eq(plan.n_skips, 1);
	ck_assert_str_eq(plan.skips[0].domain, "c.example");
	ck_assert_ptr_nonnull(strstr(plan.skips[0].reason, "no route to the partner's gateway"));
	ck_assert_ptr_nonnull(host_plan_find(&plan, &ps[0]->ranges[0]));
	ck_assert_ptr_null(host_plan_find(&plan, &ps[3]->ranges[0]));
	free(c);

	/* The non-IMS address gone: B's range gets a reason, not the IMS
	 * address. */
	ck_assert_int_eq(host_cscf_find((struct host_addr[]){ HA("10.0.1.5", "c0", true, true) }, 1,
					pfx, kinds, 3, &c, &n),
			 0);
	ck_assert_int_eq(host_plan_routes((const struct mm_partner *const *)ps, 2, c, n,
					  fake_nexthop, NULL, &plan),
			 0);
	ck_assert_uint_eq(plan.n, 1);
	ck_assert_uint_eq(plan.n_skips, 2);
	for (size_t i = 0; i < plan.n_skips; i++)
		ck_assert_ptr_nonnull(strstr(plan.skips[i].reason, "no CSCF address"));
	free(c);
	host_plan_clear(&plan);
	mm_test_partners_free(ps, 5);
}
END_TEST

START_TEST(route_equal)
{
	struct host_route a = { .dst = P("192.0.2.0/24"), .src = A("10.0.1.5"), .oif = 3 }, b = a;

	ck_assert(host_route_equal(&a, &b));
	b.oif = 4;
	ck_assert(!host_route_equal(&a, &b));
	b = a;
	b.via = A("198.51.100.1");
	ck_assert(!host_route_equal(&a, &b));
	b = a;
	b.src = A("10.0.1.6");
	ck_assert(!host_route_equal(&a, &b));
	b = a;
	b.dst.len = 25;
	ck_assert(!host_route_equal(&a, &b));
}
END_TEST

/* Seeded: random partners (kind, family of ranges, enabled) and random
 * CSCF addresses; the plan against the rules restated plainly. */
START_TEST(plan_random)
{
	unsigned seed = (unsigned)_i * 7919u + 17u;
	struct mm_prefix pfx[3];
	unsigned kinds[3];

	cscf_prefixes(pfx, kinds);
	srand(seed);
	for (int round = 0; round < 50; round++) {
		struct host_addr v[8];
		size_t nv = 0, n, np = 1 + (size_t)rand() % 12;
		struct mm_partner *ps[12];
		struct host_cscf *c;
		struct host_plan plan = { 0 };
		size_t want_total = 0;
		char d[32], r[96];

		for (int i = 0; i < 8; i++) {
			static const char *const pool[8] = { "10.0.1.5", "10.0.1.9", "10.0.2.5",
							     "10.0.2.3", "2001:db8:10::5",
							     "2001:db8:10::3", "10.0.9.1", "2001:db8:99::1" };

			if (rand() % 2)
				v[nv++] = HA(pool[i], "c0", true, rand() % 5 != 0);
		}
		for (size_t i = 0; i < np; i++) {
			snprintf(d, sizeof(d), "p%zu.example", i);
			snprintf(r, sizeof(r), "%s%s", rand() % 3 ? "100.64.0.0/24 " : "",
				 rand() % 3 ? "2001:db8:a::/48" : "");
			if (!r[0])
				snprintf(r, sizeof(r), "100.64.0.0/24");
			ps[i] = mm_test_partner(d, (uint32_t)i + 1, r,
						rand() % 4 ? "198.51.100.10" : "192.0.2.200");
			ps[i]->kind = rand() % 2 ? MM_KIND_IMS : MM_KIND_NON_IMS;
			ps[i]->enabled = rand() % 6 != 0;
			if (ps[i]->enabled)
				want_total += ps[i]->n_ranges;
		}
		ck_assert_int_eq(host_cscf_find(v, nv, pfx, kinds, 3, &c, &n), 0);
		ck_assert_int_eq(host_plan_routes((const struct mm_partner *const *)ps, np, c, n,
						  fake_nexthop, NULL, &plan),
				 0);
		ck_assert_uint_eq(plan.n + plan.n_skips, want_total);
		for (size_t i = 0; i < plan.n; i++) {
			const struct host_route *rt = &plan.routes[i];
			const struct mm_partner *p = NULL;
			const struct mm_addr *lowest = NULL;

			for (size_t k = 0; k < np; k++)
				if (!strcmp(ps[k]->domain, rt->domain))
					p = ps[k];
			ck_assert_ptr_nonnull(p);
			ck_assert(p->enabled);
			/* src: the lowest usable host address inside a prefix
			 * facing p's kind, of the range's family. */
			for (size_t k = 0; k < nv; k++) {
				bool in = false;

				for (int j = 0; j < 3; j++)
					in |= mm_prefix_contains(&pfx[j], &v[k].addr) &&
					      mm_kinds_has(kinds[j], p->kind);
				if (in && host_usable(&v[k]) &&
				    v[k].addr.family == rt->dst.addr.family &&
				    (!lowest || mm_addr_cmp(&v[k].addr, lowest) < 0))
					lowest = &v[k].addr;
			}
			ck_assert_ptr_nonnull(lowest);
			ck_assert_int_eq(mm_addr_cmp(lowest, &rt->src), 0);
			ck_assert_int_eq(rt->oif, 3);
			if (i)
				ck_assert_int_lt(mm_prefix_cmp(&plan.routes[i - 1].dst, &rt->dst), 1);
		}
		for (size_t i = 0; i < plan.n_skips; i++)
			ck_assert_ptr_nonnull(plan.skips[i].reason);
		free(c);
		host_plan_clear(&plan);
		mm_test_partners_free(ps, np);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("host_plan");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, addr_states);
	tcase_add_test(tc, cscf_find);
	tcase_add_test(tc, plan_kinds_and_reasons);
	tcase_add_test(tc, route_equal);
	tcase_add_loop_test(tc, plan_random, 0, 20);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
