/* The one SA verdict (policy/sa.c): every rule, and the property that an
 * SA outside our reqid range is never condemned, whatever it looks like. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/sa.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/testmain.h"

#define RMIN 1000u
#define RMAX 1099u

static struct mm_table *table;
static struct mm_addr tunnel[2];

static struct mm_addr A(const char *s)
{
	struct mm_addr a;

	ck_assert_int_eq(mm_addr_parse(s, &a, "test", NULL), 0);
	return a;
}

static struct mm_partner *mk(const char *domain, uint32_t reqid, const char *gw, bool enabled,
			     enum mm_path path)
{
	struct mm_partner *p = mm_test_partner(domain, reqid, "", gw);

	p->enabled = enabled;
	p->path = path;
	return p;
}

static void setup(void)
{
	struct mm_partner *ps[] = {
		mk("a.example", 1000, "198.51.100.10", true, MM_PATH_TUNNEL),
		mk("b.example", 1001, "2001:db8:b::1", true, MM_PATH_TUNNEL),
		mk("off.example", 1002, "198.51.100.20", false, MM_PATH_TUNNEL),
		mk("seg.example", 1003, "198.51.100.30", true, MM_PATH_SEG),
	};
	struct mm_err err;

	ck_assert_int_eq(mm_table_build(ps, 4, RMIN, RMAX, 1004, &table, &err), 0);
	for (size_t i = 0; i < 4; i++)
		mm_partner_unref(ps[i]);
	tunnel[0] = A("192.0.2.1");
	tunnel[1] = A("2001:db8:ff::1");
}

static void teardown(void)
{
	mm_table_free(table);
}

struct sa_row {
	const char *what;
	uint32_t reqid;
	const char *src, *dst;
	enum mm_sa_charon charon;
	enum mm_sa_verdict verdict;
	const char *partner;
};

static const struct sa_row sa_rows[] = {
	{ "inbound from the gateway", 1000, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_UNASKED,
	  MM_SA_LEGIT, "a.example" },
	{ "outbound to the gateway", 1000, "192.0.2.1", "198.51.100.10", MM_SA_CHARON_KNOWS,
	  MM_SA_LEGIT, "a.example" },
	{ "IPv6 gateway", 1001, "2001:db8:ff::1", "2001:db8:b::1", MM_SA_CHARON_KNOWS, MM_SA_LEGIT,
	  "b.example" },
	{ "moved away (MOBIKE)", 1000, "198.51.100.99", "192.0.2.1", MM_SA_CHARON_KNOWS,
	  MM_SA_WRONG_ENDS, "a.example" },
	{ "not to our tunnel address", 1000, "198.51.100.10", "192.0.2.77", MM_SA_CHARON_KNOWS,
	  MM_SA_WRONG_ENDS, "a.example" },
	{ "gateway to gateway", 1000, "198.51.100.10", "198.51.100.10", MM_SA_CHARON_UNASKED,
	  MM_SA_WRONG_ENDS, "a.example" },
	{ "another partner's gateway", 1000, "2001:db8:b::1", "2001:db8:ff::1",
	  MM_SA_CHARON_UNASKED, MM_SA_WRONG_ENDS, "a.example" },
	{ "charon forgot it", 1000, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_UNKNOWN,
	  MM_SA_CHARON_LOST, "a.example" },
	{ "reqid of nobody", 1050, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_KNOWS,
	  MM_SA_NO_PARTNER, NULL },
	{ "range edge, nobody", RMAX, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_KNOWS,
	  MM_SA_NO_PARTNER, NULL },
	{ "disabled partner", 1002, "198.51.100.20", "192.0.2.1", MM_SA_CHARON_KNOWS,
	  MM_SA_NO_TUNNEL, "off.example" },
	{ "SEG partner", 1003, "198.51.100.30", "192.0.2.1", MM_SA_CHARON_KNOWS, MM_SA_NO_TUNNEL,
	  "seg.example" },
	{ "below the range", RMIN - 1, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_UNKNOWN,
	  MM_SA_FOREIGN, NULL },
	{ "above the range", RMAX + 1, "1.2.3.4", "5.6.7.8", MM_SA_CHARON_UNKNOWN, MM_SA_FOREIGN,
	  NULL },
	{ "reqid 0", 0, "198.51.100.10", "192.0.2.1", MM_SA_CHARON_UNKNOWN, MM_SA_FOREIGN, NULL },
};

START_TEST(test_sa_rows)
{
	const struct sa_row *r = &sa_rows[_i];
	struct mm_sa_facts f = { .reqid = r->reqid, .src = A(r->src), .dst = A(r->dst),
				 .charon = r->charon };
	struct mm_sa_judgement j;

	mm_sa_judge(table, tunnel, 2, &f, &j);
	ck_assert_msg(j.verdict == r->verdict, "%s: %s, want %s", r->what,
		      mm_sa_verdict_name(j.verdict), mm_sa_verdict_name(r->verdict));
	if (r->partner)
		ck_assert_msg(j.partner && !strcmp(j.partner->domain, r->partner), "%s: partner",
			      r->what);
	else
		ck_assert_msg(!j.partner, "%s: no partner expected", r->what);
	ck_assert_int_eq(mm_sa_must_delete(j.verdict),
			 r->verdict != MM_SA_FOREIGN && r->verdict != MM_SA_LEGIT);
}
END_TEST

/* Random SAs: outside the range never condemned; inside, legit only when
 * all of: a tunnel partner has the reqid, the ends are its gateway and our
 * tunnel address, charon does not disown it. */
START_TEST(test_sa_random)
{
	const char *addrs[] = { "198.51.100.10", "192.0.2.1", "2001:db8:b::1", "2001:db8:ff::1",
				"198.51.100.20", "198.51.100.30", "203.0.113.5", "192.0.2.77" };
	unsigned seed = 20261201;

	for (int i = 0; i < 20000; i++) {
		struct mm_sa_facts f;
		struct mm_sa_judgement j;
		const struct mm_partner *p;
		bool legit = false;

		f.reqid = RMIN - 5 + (uint32_t)(rand_r(&seed) % (RMAX - RMIN + 11));
		f.src = A(addrs[rand_r(&seed) % 8]);
		f.dst = A(addrs[rand_r(&seed) % 8]);
		f.charon = (enum mm_sa_charon)(rand_r(&seed) % 3);
		mm_sa_judge(table, tunnel, 2, &f, &j);
		if (f.reqid < RMIN || f.reqid > RMAX) {
			ck_assert_int_eq(j.verdict, MM_SA_FOREIGN);
			continue;
		}
		ck_assert_int_ne(j.verdict, MM_SA_FOREIGN);
		p = mm_table_find_reqid(table, f.reqid);
		if (p && p->enabled && p->path == MM_PATH_TUNNEL && f.charon != MM_SA_CHARON_UNKNOWN) {
			bool src_gw = !mm_addr_cmp(&f.src, &p->gateways[0]);
			bool dst_gw = !mm_addr_cmp(&f.dst, &p->gateways[0]);
			bool src_us = !mm_addr_cmp(&f.src, &tunnel[0]) || !mm_addr_cmp(&f.src, &tunnel[1]);
			bool dst_us = !mm_addr_cmp(&f.dst, &tunnel[0]) || !mm_addr_cmp(&f.dst, &tunnel[1]);

			legit = (src_gw && dst_us) || (dst_gw && src_us);
		}
		ck_assert_msg((j.verdict == MM_SA_LEGIT) == legit, "reqid %u: %s", f.reqid,
			      mm_sa_verdict_name(j.verdict));
	}
}
END_TEST

struct child_row {
	const char *what, *conn, *remote_id;
	uint32_t reqid;
	enum mm_child_verdict verdict;
};

static const struct child_row child_rows[] = {
	{ "right", "a.example", "a.example", 1000, MM_CHILD_OK },
	{ "identity in another case", "a.example", "A.Example", 1000, MM_CHILD_OK },
	{ "another partner's identity", "a.example", "b.example", 1000, MM_CHILD_WRONG_IDENTITY },
	{ "a subdomain is not the partner", "a.example", "x.a.example", 1000,
	  MM_CHILD_WRONG_IDENTITY },
	{ "no identity", "a.example", NULL, 1000, MM_CHILD_WRONG_IDENTITY },
	{ "another partner's reqid", "a.example", "a.example", 1001, MM_CHILD_WRONG_REQID },
	{ "reqid outside the range", "a.example", "a.example", 5, MM_CHILD_WRONG_REQID },
	{ "stranger in our range", "other-conn", "a.example", 1000, MM_CHILD_NO_PARTNER },
	{ "stranger outside", "other-conn", "x.example", 7, MM_CHILD_NOT_OURS },
	{ "no connection name", NULL, "a.example", 1000, MM_CHILD_NO_PARTNER },
};

START_TEST(test_child_rows)
{
	const struct child_row *r = &child_rows[_i];
	struct mm_child_judgement j;

	mm_child_judge(table, r->conn, r->remote_id, r->reqid, &j);
	ck_assert_msg(j.verdict == r->verdict, "%s: %s, want %s", r->what,
		      mm_child_verdict_name(j.verdict), mm_child_verdict_name(r->verdict));
}
END_TEST

START_TEST(test_names)
{
	for (int v = 0; v < MM_SA__MAX; v++) {
		ck_assert_str_ne(mm_sa_verdict_name((enum mm_sa_verdict)v), "?");
		ck_assert_str_ne(mm_sa_verdict_reason((enum mm_sa_verdict)v), "?");
	}
	for (int v = 0; v < MM_CHILD__MAX; v++)
		ck_assert_str_ne(mm_child_verdict_name((enum mm_child_verdict)v), "?");
	ck_assert(!mm_sa_must_delete(MM_SA__MAX));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sa");
	TCase *tc = tcase_create("verdict");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_sa_rows, 0, sizeof(sa_rows) / sizeof(sa_rows[0]));
	tcase_add_test(tc, test_sa_random);
	tcase_add_loop_test(tc, test_child_rows, 0, sizeof(child_rows) / sizeof(child_rows[0]));
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
