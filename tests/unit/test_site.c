/* The host's own addresses against the partner table (policy/site.h,
 * mm_table_set_site) and the table's cross-partner gateway rule: every
 * refusal names the field, the partner and the reason, and leaves the
 * table as it was; a site attached once follows every later change. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/site.h"
#include "policy/table.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

static struct mm_prefix locals[2];
static struct mm_addr tunnel[2];
static const struct mm_site site = { locals, 2, tunnel, 2, NULL };

/* A partner with the space-separated ranges and gateways (no CA: the
 * table does not look at it). */
static struct mm_partner *mk(const char *domain, const char *ranges, const char *gateways)
{
	struct mm_partner *p = mm_partner_new();
	char buf[256], *save = NULL, *tok;

	ck_assert_ptr_nonnull(p);
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	p->kind = MM_KIND_IMS;
	p->ranges = calloc(8, sizeof(*p->ranges));
	p->gateways = calloc(8, sizeof(*p->gateways));
	snprintf(buf, sizeof(buf), "%s", ranges);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		p->ranges[p->n_ranges++] = mm_test_prefix(tok);
	snprintf(buf, sizeof(buf), "%s", gateways);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		p->gateways[p->n_gateways++] = mm_test_addr(tok);
	return p;
}

/* A table of partners a.example and b.example, built as from the store. */
static struct mm_table *stored(struct mm_partner *a, struct mm_partner *b)
{
	struct mm_partner *list[] = { a, b };
	struct mm_table *t = NULL;
	struct mm_err err = { 0 };

	a->reqid = 1000;
	b->reqid = 1001;
	ck_assert_msg(mm_table_build(list, 2, 1000, 1999, 1002, &t, &err) == 0, "%s: %s",
		      err.field, err.msg);
	mm_partner_unref(a);
	mm_partner_unref(b);
	return t;
}

static void setup(void)
{
	locals[0] = mm_test_prefix("10.10.0.0/24");
	locals[1] = mm_test_prefix("2001:db8:10::/64");
	tunnel[0] = mm_test_addr("198.51.100.1");
	tunnel[1] = mm_test_addr("2001:db8:ff::1");
}

static void expect_err(int r, const struct mm_err *err, enum mm_err_code code,
		       const char *field, const char *msg_part, const char *what)
{
	ck_assert_msg(r < 0, "%s: accepted", what);
	ck_assert_msg(err->code == code, "%s: code %s (%s: %s)", what,
		      mm_err_code_name(err->code), err->field, err->msg);
	ck_assert_msg(strcmp(err->field, field) == 0, "%s: field '%s', want '%s' (%s)", what,
		      err->field, field, err->msg);
	ck_assert_msg(strstr(err->msg, msg_part), "%s: '%s' lacks '%s'", what, err->msg,
		      msg_part);
}

/* Partner b.example as given, against our addresses: refused at start
 * (set_site on the stored table) and as a change (apply on a table that
 * carries the site), naming field and reason each time. */
static const struct {
	const char *what, *ranges, *gateways, *field, *msg_part;
} bad[] = {
	{ "range equal to a cscf prefix", "198.18.0.0/24 10.10.0.0/24", "198.51.100.20",
	  "ranges[1]", "10.10.0.0/24 of partner b.example overlaps our own [local] cscf prefix "
	  "10.10.0.0/24" },
	{ "range inside a cscf prefix", "10.10.0.128/25", "198.51.100.20", "ranges[0]",
	  "overlaps our own [local] cscf prefix 10.10.0.0/24" },
	{ "range around a cscf prefix", "10.0.0.0/8", "198.51.100.20", "ranges[0]",
	  "10.0.0.0/8 of partner b.example overlaps our own [local] cscf prefix 10.10.0.0/24" },
	{ "v6 range around a cscf prefix", "2001:db8::/32", "198.51.100.20", "ranges[0]",
	  "[local] cscf prefix 2001:db8:10::/64" },
	{ "mapped range inside a cscf prefix", "::ffff:10.10.0.0/120", "198.51.100.20",
	  "ranges[0]", "10.10.0.0/24 of partner b.example overlaps our own [local] cscf" },
	{ "range holding the tunnel address", "198.51.100.0/30", "198.51.100.20", "ranges[0]",
	  "198.51.100.0/30 of partner b.example holds our tunnel address 198.51.100.1" },
	{ "host range of the tunnel address", "198.51.100.1", "198.51.100.20", "ranges[0]",
	  "holds our tunnel address 198.51.100.1" },
	{ "v6 range holding the tunnel address", "2001:db8:ff::/48", "198.51.100.20", "ranges[0]",
	  "holds our tunnel address 2001:db8:ff::1" },
	{ "gateway is the tunnel address", "198.18.0.0/24", "198.51.100.20 198.51.100.1",
	  "gateways[1]", "198.51.100.1 of partner b.example is our own tunnel address" },
	{ "gateway is the v6 tunnel address", "198.18.0.0/24", "2001:db8:ff::1", "gateways[0]",
	  "is our own tunnel address" },
	{ "gateway is the tunnel address, mapped", "198.18.0.0/24", "::ffff:198.51.100.1",
	  "gateways[0]", "is our own tunnel address" },
	{ "gateway inside a cscf prefix", "198.18.0.0/24", "10.10.0.9", "gateways[0]",
	  "10.10.0.9 of partner b.example is inside our own [local] cscf prefix 10.10.0.0/24" },
};

START_TEST(test_site_at_start)
{
	struct mm_table *t = stored(mk("a.example", "192.0.2.0/24", "198.51.100.10"),
				    mk("b.example", bad[_i].ranges, bad[_i].gateways));
	struct mm_err err = { 0 };

	expect_err(mm_table_set_site(t, &site, &err), &err, MM_ERR_CONFLICT, bad[_i].field,
		   bad[_i].msg_part, bad[_i].what);
	ck_assert_ptr_null(t->site);
	mm_table_free(t);
}
END_TEST

START_TEST(test_site_at_change)
{
	struct mm_table *t = stored(mk("a.example", "192.0.2.0/24", "198.51.100.10"),
				    mk("b.example", "198.18.0.0/24", "198.51.100.20"));
	struct mm_change add = { .op = MM_CHANGE_ADD,
				 .after = mk("c.example", bad[_i].ranges, bad[_i].gateways) };
	struct mm_change set = { .op = MM_CHANGE_SET, .before = mm_table_find(t, "b.example"),
				 .after = mk("b.example", bad[_i].ranges, bad[_i].gateways) };
	struct mm_table *newt = NULL;
	struct mm_err err = { 0 };

	/* Without a site the table has no opinion on our addresses. */
	ck_assert_int_eq(mm_table_apply(t, &set, 1, 0, &newt, &err), 0);
	mm_table_free(newt);
	newt = NULL;
	ck_assert_int_eq(mm_table_set_site(t, &site, &err), 0);
	ck_assert_ptr_nonnull(t->site);
	expect_err(mm_table_apply(t, &set, 1, 0, &newt, &err), &err, MM_ERR_CONFLICT,
		   bad[_i].field, bad[_i].msg_part, bad[_i].what);
	ck_assert_ptr_null(newt);
	/* The same partner under another name: the message names it. */
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_table_apply(t, &add, 1, 0, &newt, &err), 0);
	ck_assert_msg(strstr(err.msg, "of partner c.example"), "%s", err.msg);
	ck_assert_ptr_null(newt);
	ck_assert_uint_eq(t->n, 2);
	mm_partner_unref(add.after);
	mm_partner_unref(set.after);
	mm_table_free(t);
}
END_TEST

/* The site follows every derived table; deletes are never refused. */
START_TEST(test_site_inherited)
{
	struct mm_table *t = stored(mk("a.example", "192.0.2.0/24", "198.51.100.10"),
				    mk("b.example", "198.18.0.0/24", "198.51.100.20"));
	struct mm_change ok = { .op = MM_CHANGE_ADD,
				.after = mk("c.example", "203.0.113.0/24", "203.0.113.1") };
	struct mm_change del = { .op = MM_CHANGE_DEL };
	struct mm_change bad_c = { .op = MM_CHANGE_ADD,
				   .after = mk("d.example", "10.10.0.0/16", "198.51.100.40") };
	struct mm_table *t2 = NULL, *t3 = NULL, *t4 = NULL;
	struct mm_err err = { 0 };

	ck_assert_int_eq(mm_table_set_site(t, &site, &err), 0);
	ck_assert_int_eq(mm_table_apply(t, &ok, 1, 0, &t2, &err), 0);
	ck_assert_ptr_nonnull(t2->site);
	ck_assert_ptr_ne(t2->site, t->site);
	ck_assert_uint_eq(t2->site->n_locals, 2);
	ck_assert_uint_eq(t2->site->n_tunnel, 2);
	del.before = mm_partner_ref(mm_table_find(t2, "a.example"));
	ck_assert_int_eq(mm_table_apply(t2, &del, 1, 0, &t3, &err), 0);
	mm_table_free(t);
	mm_table_free(t2);  /* t3 keeps its own copy */
	ck_assert_int_lt(mm_table_apply(t3, &bad_c, 1, 0, &t4, &err), 0);
	ck_assert_str_eq(err.field, "ranges[0]");
	ck_assert_ptr_null(t4);
	mm_partner_unref(ok.after);
	mm_partner_unref(del.before);
	mm_partner_unref(bad_c.after);
	mm_table_free(t3);
}
END_TEST

/* A reload with other [local] settings is checked against the stored
 * table as a whole, and refusing it leaves the table without a site. */
START_TEST(test_site_replaced)
{
	struct mm_table *t = stored(mk("a.example", "192.0.2.0/24", "198.51.100.10"),
				    mk("b.example", "198.18.0.0/24", "198.51.100.20"));
	struct mm_prefix other = mm_test_prefix("198.18.0.0/25");
	struct mm_site moved = { &other, 1, tunnel, 2, NULL };
	struct mm_err err = { 0 };

	ck_assert_int_eq(mm_table_set_site(t, &site, &err), 0);
	expect_err(mm_table_set_site(t, &moved, &err), &err, MM_ERR_CONFLICT, "ranges[0]",
		   "198.18.0.0/24 of partner b.example overlaps our own [local] cscf prefix "
		   "198.18.0.0/25", "reload");
	ck_assert_uint_eq(t->site->n_locals, 2);  /* the old site stays */
	mm_table_free(t);
}
END_TEST

/* A gateway inside another partner's range, from either side. */
START_TEST(test_gateway_in_other_range)
{
	struct mm_table *t = stored(mk("a.example", "192.0.2.0/24", "198.51.100.10"),
				    mk("b.example", "198.18.0.0/24", "198.51.100.20"));
	struct mm_change grow = { .op = MM_CHANGE_SET, .before = mm_table_find(t, "b.example"),
				  .after = mk("b.example", "198.18.0.0/24 198.51.100.8/29",
					      "198.51.100.20") };
	struct mm_change move = { .op = MM_CHANGE_SET, .before = mm_table_find(t, "a.example"),
				  .after = mk("a.example", "192.0.2.0/24", "198.18.0.77") };
	struct mm_change own = { .op = MM_CHANGE_SET, .before = mm_table_find(t, "a.example"),
				 .after = mk("a.example", "192.0.2.0/24", "192.0.2.1") };
	struct mm_partner *x = mk("a.example", "192.0.2.0/24", "198.18.0.1");
	struct mm_partner *y = mk("b.example", "198.18.0.0/24", "198.51.100.20");
	struct mm_partner *list[] = { x, y };
	struct mm_table *newt = NULL;
	struct mm_err err = { 0 };

	expect_err(mm_table_apply(t, &grow, 1, 0, &newt, &err), &err, MM_ERR_CONFLICT,
		   "ranges[1]", "198.51.100.8/29 of partner b.example holds the gateway "
		   "198.51.100.10 of partner a.example", "range swallows a gateway");
	memset(&err, 0, sizeof(err));
	expect_err(mm_table_apply(t, &move, 1, 0, &newt, &err), &err, MM_ERR_CONFLICT,
		   "gateways[0]", "198.18.0.77 of partner a.example is inside 198.18.0.0/24 of "
		   "partner b.example", "gateway moved into another range");
	ck_assert_ptr_null(newt);
	/* Its own range is allowed: a host that is its own IKE endpoint. */
	ck_assert_int_eq(mm_table_apply(t, &own, 1, 0, &newt, &err), 0);
	mm_table_free(newt);
	/* The store's table obeys the same rule. */
	memset(&err, 0, sizeof(err));
	x->reqid = 1000;
	y->reqid = 1001;
	newt = NULL;
	expect_err(mm_table_build(list, 2, 1000, 1999, 1002, &newt, &err), &err, MM_ERR_CONFLICT,
		   "gateways[0]", "198.18.0.1 of partner a.example is inside 198.18.0.0/24",
		   "stored");
	ck_assert_ptr_null(newt);
	mm_partner_unref(grow.after);
	mm_partner_unref(move.after);
	mm_partner_unref(own.after);
	mm_partner_unref(x);
	mm_partner_unref(y);
	mm_table_free(t);
}
END_TEST

/* Partners that did not come through mm_partner_from_json (the store)
 * obey the same rules about one address alone. */
START_TEST(test_stored_nonsense)
{
	static const struct {
		const char *ranges, *gateways, *field, *msg_part;
	} cases[] = {
		{ "0.0.0.0/0", "198.51.100.20", "ranges[0]", "covers every IPv4 address" },
		{ "198.18.0.0/24 ::/64", "198.51.100.20", "ranges[1]", "IPv4-mapped" },
		{ "198.18.0.0/24", "198.51.100.20 0.0.0.0", "gateways[1]",
		  "0.0.0.0 of partner b.example is unspecified" },
		{ "198.18.0.0/24", "ff02::1", "gateways[0]", "is multicast" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mm_partner *b = mk("b.example", cases[i].ranges, cases[i].gateways);
		struct mm_partner *list[] = { b };
		struct mm_table *t = NULL;
		struct mm_err err = { 0 };

		b->reqid = 1000;
		expect_err(mm_table_build(list, 1, 1000, 1999, 1001, &t, &err), &err,
			   MM_ERR_INVALID, cases[i].field, cases[i].msg_part, cases[i].ranges);
		ck_assert_ptr_null(t);
		mm_partner_unref(b);
	}
}
END_TEST

START_TEST(test_site_dup)
{
	struct mm_site empty = { 0 };
	struct mm_site *d = mm_site_dup(&site), *e = mm_site_dup(&empty);

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_ne(d->locals, locals);
	ck_assert_int_eq(memcmp(d->locals, locals, sizeof(locals)), 0);
	ck_assert_int_eq(memcmp(d->tunnel, tunnel, sizeof(tunnel)), 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->n_locals + e->n_tunnel, 0);
	free(d);
	free(e);
}
END_TEST

/* The kinds: a tunnel partner needs a cscf prefix that faces its kind;
 * a seg or disabled partner, a shared prefix, or no kinds at all do not
 * refuse.  The dup carries the kinds along. */
START_TEST(test_site_kinds)
{
	const unsigned ims_only[2] = { MM_KIND_BIT(MM_KIND_IMS), MM_KIND_BIT(MM_KIND_IMS) };
	const unsigned non_ims_v6[2] = { MM_KIND_BIT(MM_KIND_IMS), MM_KIND_BIT(MM_KIND_NON_IMS) };
	const unsigned shared[2] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS) };
	struct mm_site s = { locals, 2, tunnel, 2, ims_only };
	struct mm_partner *p = mk("non-ims.example", "192.0.2.0/24", "203.0.113.1");
	struct mm_err err = { 0 };
	struct mm_site *d;

	p->kind = MM_KIND_NON_IMS;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), -EINVAL);
	ck_assert_str_eq(err.field, "kind");
	ck_assert_ptr_nonnull(strstr(err.msg, "non-ims.example"));
	ck_assert_ptr_nonnull(strstr(err.msg, "cscf_non_ims"));
	/* a prefix of any family facing it is enough (family pairing is the
	 * SPD's: a range without a prefix of its family gets no policy) */
	s.local_kinds = non_ims_v6;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	s.local_kinds = shared;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	s.local_kinds = NULL;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	s.local_kinds = ims_only;
	p->path = MM_PATH_SEG;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	p->path = MM_PATH_TUNNEL;
	p->enabled = false;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	p->enabled = true;
	p->kind = MM_KIND_IMS;
	ck_assert_int_eq(mm_site_check_partner(&s, p, &err), 0);
	p->kind = MM_KIND_NON_IMS;
	d = mm_site_dup(&s);
	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(d->local_kinds);
	ck_assert_ptr_ne(d->local_kinds, ims_only);
	ck_assert_uint_eq(d->local_kinds[0], ims_only[0]);
	ck_assert_uint_eq(d->local_kinds[1], ims_only[1]);
	ck_assert_int_eq(mm_site_check_partner(d, p, &err), -EINVAL);
	free(d);
	mm_partner_unref(p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("site");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_site_at_start, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_loop_test(tc, test_site_at_change, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_site_inherited);
	tcase_add_test(tc, test_site_replaced);
	tcase_add_test(tc, test_gateway_in_other_range);
	tcase_add_test(tc, test_stored_nonsense);
	tcase_add_test(tc, test_site_dup);
	tcase_add_test(tc, test_site_kinds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
