/* The IKE side's SA table (daemon/ike_tunnels.c): rows follow the partner
 * table, and an SA mmtrustd refuses takes the tunnel it carried down at
 * once, with charon told to terminate and (where the partner still wants a
 * tunnel) to initiate again.  What it must never do: keep a tunnel "up"
 * whose SA was deleted, take a tunnel down for a stranger's SA or a
 * legitimate one, or ask for a tunnel the partner no longer wants.  An SA
 * deleted from the kernel behind charon's back (one of the tunnel's current
 * two, still current after the grace) takes the tunnel down; an old one
 * (rekeyed away) or one charon closed never does. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ike_tunnels.h"
#include "policy/partner.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/testmain.h"

#define SPI_IN 0xc1000001u
#define SPI_OUT 0xc2000002u
#define IKE_ID 7u

static struct mm_table *table;
static struct ike_tunnels ts;
static struct mm_addr tunnel[1];

static struct mm_addr A(const char *s)
{
	struct mm_addr a;

	ck_assert_int_eq(mm_addr_parse(s, &a, "test", NULL), 0);
	return a;
}

static struct mm_partner *mk(const char *domain, uint32_t reqid, const char *gw, bool enabled)
{
	struct mm_partner *p = mm_test_partner(domain, reqid, "", gw);

	p->enabled = enabled;
	return p;
}

static struct mm_table *build(bool b_enabled, uint32_t b_reqid)
{
	struct mm_partner *ps[] = {
		mk("b.example", b_reqid, "198.51.100.11", b_enabled),
		mk("a.example", 1000, "198.51.100.10", true),
	};
	struct mm_table *t = NULL;
	struct mm_err err;

	ck_assert_int_eq(mm_table_build(ps, 2, 1000, 1099, 1010, &t, &err), 0);
	for (size_t i = 0; i < 2; i++)
		mm_partner_unref(ps[i]);
	return t;
}

static void up(const char *domain)
{
	struct ike_tunnel *t = ike_tunnels_find(&ts, domain);

	ck_assert_ptr_nonnull(t);
	ck_assert(ike_tunnel_set_up(t, &(struct ike_child_up){ .spi_in = SPI_IN,
								.spi_out = SPI_OUT,
								.ike_id = IKE_ID,
								.remote_id = domain,
								.remote_host = "198.51.100.10",
								.ike_state = "ESTABLISHED" }));
}

static void setup(void)
{
	table = build(true, 1001);
	tunnel[0] = A("198.51.100.1");
	memset(&ts, 0, sizeof(ts));
	ck_assert_int_eq(ike_tunnels_sync(&ts, table), 0);
}

static void teardown(void)
{
	ike_tunnels_clear(&ts);
	mm_table_free(table);
}

/* The verdict on a kernel SA as the XFRM monitor reports it, then the plan. */
static void refuse(uint32_t reqid, const char *src, const char *dst, uint32_t spi,
		   struct mm_sa_judgement *j, struct ike_refusal *plan)
{
	struct mm_sa_facts f = { .reqid = reqid, .src = A(src), .dst = A(dst) };

	mm_sa_judge(table, tunnel, 1, &f, j);
	ike_refusal_plan(&ts, j, spi, plan);
}

START_TEST(test_rows_follow_the_table)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");
	struct mm_table *t2;

	ck_assert_uint_eq(ts.n, 2);
	ck_assert_str_eq(ts.t[0].info.domain, "a.example");
	ck_assert_str_eq(ts.t[1].info.domain, "b.example");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->info.reqid, 1000);
	ck_assert_ptr_null(ike_tunnels_find(&ts, "c.example"));
	ck_assert_ptr_null(ike_tunnels_find(&ts, NULL));
	up("a.example");
	up("b.example");

	/* b gets another reqid: what was known of it is not b's any more. */
	t2 = build(true, 1005);
	ck_assert_int_eq(ike_tunnels_sync(&ts, t2), 0);
	ck_assert(ike_tunnels_find(&ts, "a.example")->info.up);
	ck_assert(!ike_tunnels_find(&ts, "b.example")->info.up);
	ck_assert_uint_eq(ike_tunnels_find(&ts, "b.example")->info.reqid, 1005);
	mm_table_free(t2);
}
END_TEST

START_TEST(test_up_and_down_report_changes_only)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");
	struct ike_child_up same = { .spi_in = SPI_IN, .spi_out = SPI_OUT, .ike_id = IKE_ID };
	struct ike_child_up rekeyed = { .spi_in = SPI_IN + 1, .spi_out = SPI_OUT + 1, .ike_id = 8 };

	ck_assert(!ike_tunnel_set_down(a));  /* was not up: nothing to tell */
	up("a.example");
	ck_assert(!ike_tunnel_set_up(a, &same));
	ck_assert(ike_tunnel_set_up(a, &rekeyed));
	ck_assert_uint_eq(a->ike_id, 8);
	ck_assert(ike_tunnel_set_down(a));
	ck_assert(!a->info.up);
	ck_assert_uint_eq(a->info.spi_in, 0);
	ck_assert_uint_eq(a->info.spi_out, 0);
}
END_TEST

/* Defect 5: the partner's gateway moved the IKE_SA to another address;
 * charon moved the SAs, mmtrustd deletes them (wrong ends).  The tunnel
 * must be down at once, charon told to terminate the IKE_SA and asked for
 * the tunnel again. */
START_TEST(test_moved_sa_takes_the_tunnel_down)
{
	struct mm_sa_judgement j;
	struct ike_refusal plan;

	up("a.example");
	refuse(1000, "198.51.100.1", "198.51.100.99", SPI_OUT, &j, &plan);
	ck_assert_int_eq(j.verdict, MM_SA_WRONG_ENDS);
	ck_assert(plan.down);
	ck_assert_ptr_eq(plan.tunnel, ike_tunnels_find(&ts, "a.example"));
	ck_assert_uint_eq(plan.terminate_ike_id, IKE_ID);
	ck_assert(plan.initiate);
	/* The inbound SA (moved source) alike. */
	refuse(1000, "198.51.100.99", "198.51.100.1", SPI_IN, &j, &plan);
	ck_assert(plan.down);
}
END_TEST

/* A stranger's SA under the partner's reqid is deleted, but the partner's
 * own tunnel (other SPIs) stays up: nothing to terminate. */
START_TEST(test_strangers_sa_leaves_the_tunnel)
{
	struct mm_sa_judgement j;
	struct ike_refusal plan;

	up("a.example");
	refuse(1000, "198.51.100.99", "198.51.100.1", 0x00c0ffee, &j, &plan);
	ck_assert_int_eq(j.verdict, MM_SA_WRONG_ENDS);
	ck_assert(!plan.down);
	ck_assert_uint_eq(plan.terminate_ike_id, 0);
	ck_assert(!plan.initiate);
	/* SPI 0 is no SA's. */
	refuse(1000, "198.51.100.99", "198.51.100.1", 0, &j, &plan);
	ck_assert(!plan.down);
}
END_TEST

START_TEST(test_legit_sa_never_takes_it_down)
{
	struct mm_sa_judgement j;
	struct ike_refusal plan;

	up("a.example");
	refuse(1000, "198.51.100.10", "198.51.100.1", SPI_IN, &j, &plan);
	ck_assert_int_eq(j.verdict, MM_SA_LEGIT);
	ck_assert(!plan.down);
	ck_assert(!plan.initiate);
	/* Outside our range: not ours, whatever the SPI. */
	refuse(42, "198.51.100.99", "198.51.100.1", SPI_IN, &j, &plan);
	ck_assert_int_eq(j.verdict, MM_SA_FOREIGN);
	ck_assert(!plan.down);
}
END_TEST

START_TEST(test_down_tunnel_needs_nothing)
{
	struct mm_sa_judgement j;
	struct ike_refusal plan;

	refuse(1000, "198.51.100.1", "198.51.100.99", SPI_OUT, &j, &plan);
	ck_assert(!plan.down);
	ck_assert(!plan.initiate);
}
END_TEST

/* A disabled partner's SA: down and terminated, but not asked for again. */
START_TEST(test_no_tunnel_wanted_no_initiate)
{
	struct mm_table *t2 = build(false, 1001);
	struct mm_sa_judgement j;
	struct ike_refusal plan;
	struct mm_sa_facts f = { .reqid = 1001, .src = A("198.51.100.11"),
				 .dst = A("198.51.100.1") };

	up("b.example");
	mm_sa_judge(t2, tunnel, 1, &f, &j);
	ck_assert_int_eq(j.verdict, MM_SA_NO_TUNNEL);
	ike_refusal_plan(&ts, &j, SPI_IN, &plan);
	ck_assert(plan.down);
	ck_assert_uint_eq(plan.terminate_ike_id, IKE_ID);
	ck_assert(!plan.initiate);
	mm_table_free(t2);
}
END_TEST

/* Someone deletes one of the tunnel's current SAs from the kernel (ip
 * xfrm state delete/deleteall/flush): charon still counts the CHILD_SA
 * installed.  Once the grace is over and charon said nothing, the tunnel
 * is down. */
START_TEST(test_current_sa_gone_takes_it_down)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");

	up("a.example");
	ck_assert(ike_tunnel_sa_gone(a, SPI_OUT));
	ck_assert_uint_eq(a->gone_spi, SPI_OUT);
	/* charon re-lists the same CHILD_SA meanwhile: still the same SPIs. */
	ck_assert(!ike_tunnel_set_up(a, &(struct ike_child_up){ .spi_in = SPI_IN,
								 .spi_out = SPI_OUT,
								 .ike_id = IKE_ID }));
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), SPI_OUT);
	ck_assert_uint_eq(a->gone_spi, 0);
	/* Confirmed once: a second look finds nothing recorded. */
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), 0);
	/* The inbound SA alike. */
	ck_assert(ike_tunnel_sa_gone(a, SPI_IN));
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), SPI_IN);
}
END_TEST

/* An old SA (rekeyed away) deleted, whether its deletion comes after
 * charon's child-rekey or before it: the tunnel stays up. */
START_TEST(test_old_sa_gone_leaves_it)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");
	struct ike_child_up rekeyed = { .spi_in = SPI_IN + 1, .spi_out = SPI_OUT + 1,
					.ike_id = IKE_ID };

	up("a.example");
	/* The kernel event first, charon's child-rekey within the grace. */
	ck_assert(ike_tunnel_sa_gone(a, SPI_IN));
	ck_assert(ike_tunnel_set_up(a, &rekeyed));
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), 0);
	ck_assert(a->info.up);
	/* charon's child-rekey first: the old SPIs are no tunnel's. */
	ck_assert(!ike_tunnel_sa_gone(a, SPI_IN));
	ck_assert(!ike_tunnel_sa_gone(a, SPI_OUT));
	ck_assert_uint_eq(a->gone_spi, 0);
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), 0);
	ck_assert(a->info.up);
	ck_assert_uint_eq(a->info.spi_in, SPI_IN + 1);
	/* SPI 0 and a stranger's SPI: nothing. */
	ck_assert(!ike_tunnel_sa_gone(a, 0));
	ck_assert(!ike_tunnel_sa_gone(a, 0x00c0ffee));
}
END_TEST

/* A normal close: charon's child-updown (down) before or after the kernel
 * event.  Down once, by charon's word; nothing left to confirm. */
START_TEST(test_closed_sa_gone_needs_nothing)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");

	up("a.example");
	ck_assert(ike_tunnel_sa_gone(a, SPI_OUT));
	ck_assert(ike_tunnel_set_down(a));
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), 0);
	/* Down first: a deletion of its former SAs changes nothing. */
	ck_assert(!ike_tunnel_sa_gone(a, SPI_IN));
	ck_assert(!ike_tunnel_sa_gone(a, SPI_OUT));
	ck_assert_uint_eq(ike_tunnel_gone_confirm(a), 0);
	ck_assert(!a->info.up);
}
END_TEST

/* Absence from a dump counts only for SAs the kernel was seen holding
 * (a kernel without ESP never holds the SPIs charon reports). */
START_TEST(test_kernel_spis_seen)
{
	struct ike_tunnel *a = ike_tunnels_find(&ts, "a.example");

	ck_assert(!ike_tunnel_kernel_had(a, SPI_IN));
	ck_assert(!ike_tunnel_kernel_had(a, 0));
	ike_tunnel_kernel_saw(a, SPI_IN);
	ike_tunnel_kernel_saw(a, SPI_IN);  /* once is enough */
	ike_tunnel_kernel_saw(a, 0);       /* no SA's */
	ck_assert(ike_tunnel_kernel_had(a, SPI_IN));
	ck_assert(!ike_tunnel_kernel_had(a, SPI_OUT));
	ck_assert(!ike_tunnel_kernel_had(a, 0));
	/* The last IKE_KERNEL_SPIS are kept: the oldest goes first. */
	for (uint32_t i = 1; i < IKE_KERNEL_SPIS; i++)
		ike_tunnel_kernel_saw(a, 0xd0000000u + i);
	ck_assert(ike_tunnel_kernel_had(a, SPI_IN));
	ike_tunnel_kernel_saw(a, SPI_OUT);
	ck_assert(!ike_tunnel_kernel_had(a, SPI_IN));
	ck_assert(ike_tunnel_kernel_had(a, SPI_OUT));
	/* Other partners' rows know nothing of it. */
	ck_assert(!ike_tunnel_kernel_had(ike_tunnels_find(&ts, "b.example"), SPI_OUT));
}
END_TEST

static Suite *ike_tunnels_suite(void)
{
	Suite *s = suite_create("ike_tunnels");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rows_follow_the_table);
	tcase_add_test(tc, test_up_and_down_report_changes_only);
	tcase_add_test(tc, test_moved_sa_takes_the_tunnel_down);
	tcase_add_test(tc, test_strangers_sa_leaves_the_tunnel);
	tcase_add_test(tc, test_legit_sa_never_takes_it_down);
	tcase_add_test(tc, test_down_tunnel_needs_nothing);
	tcase_add_test(tc, test_no_tunnel_wanted_no_initiate);
	tcase_add_test(tc, test_current_sa_gone_takes_it_down);
	tcase_add_test(tc, test_old_sa_gone_leaves_it);
	tcase_add_test(tc, test_closed_sa_gone_needs_nothing);
	tcase_add_test(tc, test_kernel_spis_seen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(ike_tunnels_suite());
}
