/* kernel_audit (daemon/kernel.c) over a scripted kernel: the XFRM dumps
 * are replaced at link time (-Wl,--wrap), so a dump that restarts can be
 * played exactly, without root.
 *
 * Defect 8 (second half): when the SA dump restarted, its reset wiped the
 * policies the policy dump had collected.  And the audit's SA notes must be
 * the one verdict's (policy/sa.h), so audit never disagrees with what the
 * daemon deletes. */
#include <errno.h>
#include <check.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/mmtrustd.h"
#include "policy/sa.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/testmain.h"

/* ---- the scripted kernel ---- */

static struct mm_xfrm_policy pols[4];
static size_t n_pols;
static struct mm_xfrm_sa sas[4];
static size_t n_sas;
static bool restart_pol, restart_sa;  /* replay the dump once after a reset */

int __wrap_mm_xfrm_policy_dump(struct mm_nl *nl, mm_xfrm_policy_fn each, mm_nl_reset_fn reset,
			       void *userdata, size_t *ret_bad, struct mm_nl_result *ret);
int __wrap_mm_xfrm_sa_dump(struct mm_nl *nl, mm_xfrm_sa_fn each, mm_nl_reset_fn reset,
			   void *userdata, size_t *ret_bad, struct mm_nl_result *ret);

int __wrap_mm_xfrm_policy_dump(struct mm_nl *nl, mm_xfrm_policy_fn each, mm_nl_reset_fn reset,
			       void *userdata, size_t *ret_bad, struct mm_nl_result *ret)
{
	(void)nl;
	(void)ret_bad;
	for (int pass = 0; pass < (restart_pol ? 2 : 1); pass++) {
		/* As mm_nl_dump does: a restart resets, then reads it all again. */
		if (pass)
			reset(userdata);
		for (size_t i = 0; i < n_pols; i++)
			ck_assert_int_eq(each(&pols[i], userdata), 0);
	}
	if (ret)
		*ret = (struct mm_nl_result){ 0 };
	return 0;
}

int __wrap_mm_xfrm_sa_dump(struct mm_nl *nl, mm_xfrm_sa_fn each, mm_nl_reset_fn reset,
			   void *userdata, size_t *ret_bad, struct mm_nl_result *ret)
{
	(void)nl;
	(void)ret_bad;
	for (int pass = 0; pass < (restart_sa ? 2 : 1); pass++) {
		if (pass)
			reset(userdata);
		for (size_t i = 0; i < n_sas; i++)
			ck_assert_int_eq(each(&sas[i], userdata), 0);
	}
	if (ret)
		*ret = (struct mm_nl_result){ 0 };
	return 0;
}

/* ---- a daemon with a table, no kernel ---- */

/* mmtrustd.c is not linked (it has main); admin.c refers to these. */
void mmtrustd_table_changed(struct mmtrustd *dm, struct mm_table *newt,
			    const struct mm_change *changes, size_t n)
{
	(void)dm;
	(void)newt;
	(void)changes;
	(void)n;
}

int mmtrustd_reload(struct mmtrustd *dm, bool allow_shrink, struct mm_err *err)
{
	(void)dm;
	(void)allow_shrink;
	return mm_err_set(err, MM_ERR_INTERNAL, "", "not in this test");
}

/* fleet.c's (a shared store; none here). */
int mmtrustd_load_table(const struct mm_config *cfg, struct mm_store *store,
			struct mm_table **ret, struct mm_err *err)
{
	(void)cfg;
	(void)store;
	(void)ret;
	return mm_err_set(err, MM_ERR_INTERNAL, "", "not in this test");
}

int mmtrustd_table_sync(struct mmtrustd *dm, struct mm_table *newt, struct mm_change **ret,
			size_t *ret_n)
{
	(void)dm;
	(void)ret;
	(void)ret_n;
	mm_table_free(newt);
	return -EOPNOTSUPP;
}

/* kernel.c publishes between the SPD engine's slices; no view here. */
void mmtrustd_view_flush(struct mmtrustd *dm)
{
	(void)dm;
}

static struct mmtrustd d;

static struct mm_addr A(const char *s)
{
	struct mm_addr a;

	ck_assert_int_eq(mm_addr_parse(s, &a, "test", NULL), 0);
	return a;
}

static struct mm_prefix P(const char *s)
{
	struct mm_prefix p;

	ck_assert_int_eq(mm_prefix_parse(s, &p, "test", NULL), 0);
	return p;
}

static struct mm_partner *mk(const char *domain, uint32_t reqid, const char *gw, bool enabled)
{
	struct mm_partner *p = mm_test_partner(domain, reqid, "", gw);

	p->enabled = enabled;
	return p;
}

static void setup(void)
{
	struct mm_partner *ps[] = {
		mk("a.example", 2000, "198.51.100.10", true),
		mk("off.example", 2001, "198.51.100.20", false),
	};
	struct mm_err err;

	memset(&d, 0, sizeof(d));
	mm_config_defaults(&d.cfg);
	d.cfg.reqid_min = 2000;
	d.cfg.reqid_max = 2999;
	d.cfg.tunnel[0] = A("192.0.2.1");
	d.cfg.n_tunnel = 1;
	ck_assert_int_eq(mm_table_build(ps, 2, 2000, 2999, 2002, &d.table, &err), 0);
	mm_partner_unref(ps[0]);
	mm_partner_unref(ps[1]);
	mm_spd_config_init(&d.spd_cfg);
	d.spd_cfg.reqid_min = 2000;
	d.spd_cfg.reqid_max = 2999;
	d.spd_cfg.prio_base = d.cfg.spd_prio_base;
	d.spd_cfg.tag = d.cfg.spd_tag;
	d.nl = (struct mm_nl *)&d;  /* never used: the dumps are scripted */

	/* Ours (tag, band, reqid) and someone else's. */
	memset(pols, 0, sizeof(pols));
	for (int i = 0; i < 2; i++) {
		struct mm_xfrm_policy *p = &pols[i];

		p->sel.family = AF_INET;
		p->sel.src = P("10.10.0.0/24");
		p->sel.dst = P(i ? "100.64.0.0/10" : "203.0.113.0/24");
		p->sel.user = i ? 0 : d.cfg.spd_tag;
		p->dir = XFRM_POLICY_OUT;
		p->priority = i ? 10 : d.cfg.spd_prio_base + 200;
		p->index = 8 * (i + 1) + 1;
		p->n_tmpl = 1;
		p->tmpl[0].family = AF_INET;
		p->tmpl[0].src = A("192.0.2.1");
		p->tmpl[0].dst = A("198.51.100.10");
		p->tmpl[0].proto = IPPROTO_ESP;
		p->tmpl[0].mode = XFRM_MODE_TUNNEL;
		p->tmpl[0].reqid = i ? 7 : 2000;
	}
	n_pols = 2;
	/* a.example's SA from a stranger, and one of the disabled partner. */
	memset(sas, 0, sizeof(sas));
	sas[0] = (struct mm_xfrm_sa){ .family = AF_INET, .src = A("198.51.100.99"),
				      .dst = A("192.0.2.1"), .spi = 0x1001, .proto = IPPROTO_ESP,
				      .reqid = 2000, .mode = XFRM_MODE_TUNNEL };
	sas[1] = (struct mm_xfrm_sa){ .family = AF_INET, .src = A("198.51.100.20"),
				      .dst = A("192.0.2.1"), .spi = 0x1002, .proto = IPPROTO_ESP,
				      .reqid = 2001, .mode = XFRM_MODE_TUNNEL };
	n_sas = 2;
	restart_pol = restart_sa = false;
}

static void teardown(void)
{
	mm_table_free(d.table);
	d.table = NULL;
}

static json_t *audit(void)
{
	json_t *r = kernel_audit(&d), *res;

	ck_assert_ptr_nonnull(r);
	ck_assert_msg(json_is_true(json_object_get(r, "ok")), "audit failed: %s",
		      json_dumps(r, JSON_COMPACT));
	res = json_object_get(r, "result");
	json_incref(res);
	json_decref(r);
	return res;
}

START_TEST(test_sa_dump_restart_keeps_policies)
{
	json_t *a;

	restart_sa = true;
	a = audit();
	ck_assert_uint_eq(json_array_size(json_object_get(a, "policies")), 2);
	ck_assert_uint_eq(json_array_size(json_object_get(a, "sas")), 2);
	json_decref(a);
}
END_TEST

START_TEST(test_policy_dump_restart_no_duplicates)
{
	json_t *a;

	restart_pol = true;
	a = audit();
	ck_assert_uint_eq(json_array_size(json_object_get(a, "policies")), 2);
	ck_assert_uint_eq(json_array_size(json_object_get(a, "sas")), 2);
	json_decref(a);
}
END_TEST

/* The notes on SAs are the verdict's reasons: what the daemon deletes is
 * what audit calls wrong, in the same words. */
START_TEST(test_sa_notes_are_the_verdict)
{
	json_t *a = audit(), *list = json_object_get(a, "sas");
	const enum mm_sa_verdict want[2] = { MM_SA_WRONG_ENDS, MM_SA_NO_TUNNEL };

	for (size_t i = 0; i < 2; i++) {
		json_t *sa = json_array_get(list, i);
		const char *note = json_string_value(json_object_get(sa, "note"));

		ck_assert_msg(note, "SA %zu has no note", i);
		ck_assert_str_eq(note, mm_sa_verdict_reason(want[i]));
	}
	json_decref(a);
}
END_TEST

START_TEST(test_policy_owner)
{
	json_t *a = audit(), *list = json_object_get(a, "policies");

	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "owner")),
			 "mmtrust");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "owner")),
			 "other");
	json_decref(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kernel_audit");
	TCase *tc = tcase_create("audit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sa_dump_restart_keeps_policies);
	tcase_add_test(tc, test_policy_dump_restart_no_duplicates);
	tcase_add_test(tc, test_sa_notes_are_the_verdict);
	tcase_add_test(tc, test_policy_owner);
	suite_add_tcase(s, tc);
	return mm_test_run(s);
}
