/* The SPD engine's desired state (daemon/spd_desired.c): pure, no kernel,
 * no root.  Which policies a table asks for, with which template and
 * priority, what a partner that cannot be programmed gets (nothing, and a
 * problem), and that the owner of a selector never depends on the order
 * in which partners are looked at beyond the documented tie rule. */
#include <check.h>
#include <errno.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/spd_desired.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/spdconfig.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

#define RQ(n) (MM_SPD_REQID_MIN_DEFAULT + (n))

static struct mm_spd_local locals[2];
static struct mm_spd_config cfg;

static void setup(void)
{
	mm_test_spd_config(&cfg, locals);
}

#define TABLE(a) ((const struct mm_partner *const *)(a))

/* A want as text: "out 198.51.100.0/24 10.1.0.0/24 192.0.2.1>100.64.0.1 r1000001 p100207 D",
 * with D the owner's domain. */
static void want_str(const struct mm_spd_want *w, const struct mm_partner *const *ps, char *buf,
		     size_t len)
{
	char s[MM_ADDR_STRLEN], d[MM_ADDR_STRLEN], ts[MM_ADDR_STRLEN], td[MM_ADDR_STRLEN];

	snprintf(buf, len, "%s %s %s %s>%s r%u p%u %s", mm_xfrm_dir_name(w->dir),
		 mm_prefix_str(&w->src, s), mm_prefix_str(&w->dst, d), mm_addr_str(&w->tsrc, ts),
		 mm_addr_str(&w->tdst, td), w->reqid, w->priority, ps[w->partner]->domain);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The desired state of ps as sorted lines (free with free_lines). */
static size_t lines(const struct mm_partner *const *ps, size_t n, char ***ret)
{
	struct mm_spd_desired *d;
	char **v;

	ck_assert_int_eq(mm_spd_compute(&cfg, ps, n, &d), 0);
	v = calloc(d->n_want + 1, sizeof(*v));
	for (size_t i = 0; i < d->n_want; i++) {
		v[i] = malloc(512);
		want_str(&d->want[i], ps, v[i], 512);
	}
	qsort(v, d->n_want, sizeof(*v), cmp_str);
	*ret = v;
	n = d->n_want;
	mm_spd_desired_free(d);
	return n;
}

static void free_lines(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct mm_partner *three[5];

static void make_three(void)
{
	mm_test_three(MM_SPD_REQID_MIN_DEFAULT, three);
}

static void free_three(void)
{
	mm_test_partners_free(three, 5);
}

START_TEST(test_compute_three)
{
	struct mm_spd_desired *d;
	struct mm_xfrm_policy pol;
	char a[MM_ADDR_STRLEN];

	make_three();
	ck_assert_int_eq(mm_spd_compute(&cfg, TABLE(three), 5, &d), 0);
	/* alpha 2 ranges x 3, beta 1 x 3 + 1 x 2 (IPv6 local: no fwd),
	 * gamma 1 x 3; off and seg nothing, and no problem. */
	ck_assert_uint_eq(d->n_want, 14);
	ck_assert_uint_eq(d->n_problems, 0);
	for (size_t i = 1; i < d->n_want; i++) {
		const struct mm_spd_want *p = &d->want[i - 1], *q = &d->want[i];

		ck_assert_uint_le(p->dir, q->dir);
		ck_assert(p->dir != q->dir || p->src.addr.family <= q->src.addr.family);
	}
	ck_assert_uint_eq(d->want[0].dir, XFRM_POLICY_IN);
	mm_spd_want_policy(&cfg, &d->want[0], &pol);
	ck_assert_uint_eq(pol.sel.user, MM_SPD_TAG_DEFAULT);
	ck_assert_uint_eq(pol.n_tmpl, 1);
	ck_assert_uint_eq(pol.tmpl[0].proto, IPPROTO_ESP);
	ck_assert_uint_eq(pol.tmpl[0].mode, XFRM_MODE_TUNNEL);
	ck_assert(!pol.tmpl[0].optional);
	for (size_t i = 0; i < d->n_want; i++) {
		const struct mm_spd_want *w = &d->want[i];

		ck_assert(w->partner < 3);
		/* gamma's IPv4 range rides its IPv6 gateway; endpoints turn
		 * round with the direction. */
		if (w->partner == 2)
			ck_assert_str_eq(mm_addr_str(w->dir == XFRM_POLICY_OUT ? &w->tdst : &w->tsrc,
						     a), "2001:db8:ff03::3");
		/* beta's first gateway is IPv6: both inner families ride it. */
		if (w->partner == 1)
			ck_assert_str_eq(mm_addr_str(w->dir == XFRM_POLICY_OUT ? &w->tdst : &w->tsrc,
						     a), "2001:db8:ff02::2");
		ck_assert_uint_eq(w->priority, mm_spd_priority(&cfg, &w->src, &w->dst));
	}
	mm_spd_desired_free(d);
	free_three();
}
END_TEST

START_TEST(test_priority_order)
{
	struct mm_prefix h32, n24, n16;

	ck_assert_int_eq(mm_prefix_parse("198.51.100.10/32", &h32, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("10.0.0.0/24", &n24, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("10.0.0.0/16", &n16, "", NULL), 0);
	ck_assert_uint_lt(mm_spd_priority(&cfg, &h32, &n24), mm_spd_priority(&cfg, &h32, &n16));
	ck_assert_uint_eq(mm_spd_priority(&cfg, &h32, &n24), MM_SPD_PRIO_BASE_DEFAULT + 256 - 56);
}
END_TEST

START_TEST(test_problems)
{
	struct mm_partner *p[4];
	struct mm_spd_desired *d;

	memset(&cfg.tunnel6, 0, sizeof(cfg.tunnel6));
	p[0] = mm_test_partner("v6gw.example.net", RQ(1), "10.8.0.0/24", "2001:db8:ff08::8");
	p[1] = mm_test_partner("badreqid.example.net", 42, "10.9.0.0/24", "100.64.0.9");
	p[2] = mm_test_partner("nofamily.example.net", RQ(3), "2001:db8:9::/48", "100.64.0.10");
	p[3] = mm_test_partner("ok.example.net", RQ(4), "10.10.0.0/24", "2001:db8::a 100.64.0.10");
	locals[1].prefix.addr.family = AF_INET;  /* no IPv6 local now */
	ck_assert_int_eq(mm_prefix_parse("198.51.101.0/24", &locals[1].prefix, "", NULL), 0);
	ck_assert_int_eq(mm_spd_compute(&cfg, TABLE(p), 4, &d), 0);
	ck_assert_uint_eq(d->n_problems, 3);
	for (size_t i = 0; i < 3; i++) {
		const int want[3] = { -ENOENT, -ERANGE, -EINVAL };

		ck_assert_uint_eq(d->problems[i].partner, i);
		ck_assert_int_eq(d->problems[i].error, want[i]);
		ck_assert(d->problems[i].message[0]);
	}
	/* Only ok's: two locals x (out, in, fwd of the forwarded one). */
	ck_assert_uint_eq(d->n_want, 5);
	for (size_t i = 0; i < d->n_want; i++)
		ck_assert_uint_eq(d->want[i].partner, 3);
	mm_spd_desired_free(d);
	for (int i = 0; i < 4; i++)
		mm_partner_unref(p[i]);
}
END_TEST

START_TEST(test_template)
{
	struct mm_partner *p = mm_test_partner("t.example", RQ(1), "10.0.0.0/8", "2001:db8::1 100.64.0.1");
	struct mm_addr tun, gw;
	char a[MM_ADDR_STRLEN];

	ck_assert(mm_spd_template(&cfg, p, &tun, &gw));
	ck_assert_str_eq(mm_addr_str(&gw, a), "2001:db8::1");
	ck_assert_str_eq(mm_addr_str(&tun, a), "2001:db8:ffff::1");
	memset(&cfg.tunnel6, 0, sizeof(cfg.tunnel6));
	ck_assert(mm_spd_template(&cfg, p, &tun, &gw));
	ck_assert_str_eq(mm_addr_str(&gw, a), "100.64.0.1");
	ck_assert_str_eq(mm_addr_str(&tun, a), "192.0.2.1");
	p->n_gateways = 1;
	ck_assert(!mm_spd_template(&cfg, p, &tun, &gw));
	mm_partner_unref(p);
}
END_TEST

/* Two partners claiming one selector: the earlier one keeps it, the later
 * gets an -EEXIST problem naming the owner. */
START_TEST(test_one_owner)
{
	struct mm_partner *p[2] = {
		mm_test_partner("a.example", RQ(1), "10.1.0.0/24", "100.64.0.1"),
		mm_test_partner("b.example", RQ(2), "10.1.0.0/24 10.2.0.0/24", "100.64.0.2"),
	};
	struct mm_spd_desired *d;

	ck_assert_int_eq(mm_spd_compute(&cfg, TABLE(p), 2, &d), 0);
	ck_assert_uint_eq(d->n_want, 6);
	ck_assert_uint_ge(d->n_problems, 1);
	ck_assert_uint_eq(d->problems[0].partner, 1);
	ck_assert_int_eq(d->problems[0].error, -EEXIST);
	ck_assert(strstr(d->problems[0].message, "a.example"));
	for (size_t i = 0; i < d->n_want; i++) {
		char dst[MM_ADDR_STRLEN];

		mm_prefix_str(d->want[i].dir == XFRM_POLICY_OUT ? &d->want[i].dst : &d->want[i].src,
			      dst);
		ck_assert_uint_eq(d->want[i].partner, strcmp(dst, "10.1.0.0/24") == 0 ? 0 : 1);
	}
	mm_spd_desired_free(d);
	mm_partner_unref(p[0]);
	mm_partner_unref(p[1]);
}
END_TEST

/* Defect 2, the desired half: a change set's partners computed together.
 * Wherever ranges moved (without overlapping), the result is the same in
 * every order of the set, and each moved selector carries its new owner's
 * reqid and template. */
START_TEST(test_moved_ranges_any_order)
{
	struct mm_partner *p[3] = {
		/* alpha took beta's 10.2/24 and gamma's 10.3/24; gamma took
		 * alpha's 10.1/24 (a swap) and changed its gateway. */
		mm_test_partner("alpha.example", RQ(1), "10.2.0.0/24 10.3.0.0/24", "100.64.0.1"),
		mm_test_partner("beta.example", RQ(2), "10.4.0.0/24", "100.64.0.2"),
		mm_test_partner("gamma.example", RQ(3), "10.1.0.0/24", "2001:db8:ff03::3"),
	};
	const int perms[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
				  { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	char **ref = NULL;
	size_t n_ref = 0;

	for (int k = 0; k < 6; k++) {
		struct mm_partner *q[3] = { p[perms[k][0]], p[perms[k][1]], p[perms[k][2]] };
		char **v;
		size_t n = lines(TABLE(q), 3, &v);

		if (!ref) {
			ref = v;
			n_ref = n;
			continue;
		}
		ck_assert_uint_eq(n, n_ref);
		for (size_t i = 0; i < n; i++)
			ck_assert_str_eq(v[i], ref[i]);
		free_lines(v, n);
	}
	ck_assert_uint_eq(n_ref, 4 * 3);
	for (size_t i = 0; i < n_ref; i++) {
		if (strstr(ref[i], " 10.1.0.0/24 ") || strstr(ref[i], " 10.1.0.0/24>"))
			ck_assert_msg(strstr(ref[i], "gamma.example") &&
				      strstr(ref[i], "2001:db8:ff03::3"), "%s", ref[i]);
		if (strstr(ref[i], "10.2.0.0/24") || strstr(ref[i], "10.3.0.0/24"))
			ck_assert_msg(strstr(ref[i], "alpha.example") && strstr(ref[i], " r1000001 "),
				      "%s", ref[i]);
	}
	free_lines(ref, n_ref);
	for (int i = 0; i < 3; i++)
		mm_partner_unref(p[i]);
}
END_TEST

START_TEST(test_config_check)
{
	struct mm_spd_config c = cfg;
	struct mm_err err = { 0 };

	ck_assert_int_eq(mm_spd_config_check(&cfg, &err), 0);
	c.tag = 0;
	ck_assert_int_eq(mm_spd_config_check(&c, &err), -EINVAL);
	ck_assert_str_eq(err.field, "tag");
	c = cfg;
	c.reqid_min = c.reqid_max + 1;
	ck_assert_int_eq(mm_spd_config_check(&c, &err), -EINVAL);
	c = cfg;
	c.prio_base = UINT32_MAX - 10;
	ck_assert_int_eq(mm_spd_config_check(&c, &err), -EINVAL);
	c = cfg;
	memset(&c.tunnel4, 0, sizeof(c.tunnel4));
	memset(&c.tunnel6, 0, sizeof(c.tunnel6));
	ck_assert_int_eq(mm_spd_config_check(&c, &err), -EINVAL);
	c = cfg;
	c.tunnel4 = cfg.tunnel6;
	ck_assert_int_eq(mm_spd_config_check(&c, &err), -EINVAL);
	/* A bad configuration computes nothing. */
	{
		struct mm_spd_desired *d = NULL;

		c.tag = 0;
		ck_assert_int_eq(mm_spd_compute(&c, NULL, 0, &d), -EINVAL);
		ck_assert_ptr_null(d);
	}
}
END_TEST

/* The first level of protection: a partner's policies pair its ranges
 * with our CSCF prefixes of its kind (and the shared ones) only. */
START_TEST(test_kinds_split)
{
	struct mm_spd_local split[4] = {
		{ .prefix = mm_test_prefix("198.51.100.0/24"), .forward = true, .kinds = MM_KINDS_ALL },
		{ .prefix = mm_test_prefix("198.51.101.0/24"), .kinds = MM_KIND_BIT(MM_KIND_IMS) },
		{ .prefix = mm_test_prefix("198.51.102.0/24"), .kinds = MM_KIND_BIT(MM_KIND_NON_IMS) },
		{ .prefix = mm_test_prefix("2001:db8:1::/64"), .kinds = MM_KIND_BIT(MM_KIND_NON_IMS) },
	};
	struct mm_partner *p[3] = {
		mm_test_partner("ims.example", RQ(1), "10.1.0.0/24 2001:db8:a::/48", "100.64.0.1"),
		mm_test_partner("web.example", RQ(2), "10.2.0.0/24 2001:db8:b::/48", "100.64.0.2"),
		mm_test_partner("ims6.example", RQ(3), "2001:db8:c::/48", "100.64.0.3"),
	};
	struct mm_spd_desired *d;
	size_t per[3] = { 0 };

	p[1]->kind = MM_KIND_NON_IMS;
	cfg.locals = split;
	cfg.n_locals = 4;
	ck_assert_int_eq(mm_spd_compute(&cfg, TABLE(p), 3, &d), 0);
	for (size_t i = 0; i < d->n_want; i++) {
		const struct mm_spd_want *w = &d->want[i];
		const struct mm_prefix *local = w->dir == XFRM_POLICY_OUT ? &w->src : &w->dst;
		char a[MM_ADDR_STRLEN];

		mm_prefix_str(local, a);
		per[w->partner]++;
		if (w->partner == 0)  /* IMS: the shared and the IMS prefix, never another */
			ck_assert_msg(!strcmp(a, "198.51.100.0/24") || !strcmp(a, "198.51.101.0/24"),
				      "ims partner paired with %s", a);
		else
			ck_assert_msg(strcmp(a, "198.51.101.0/24") != 0, "non-IMS paired with %s", a);
	}
	/* ims: 10.1/24 x (shared: out, in, fwd; IMS: out, in); its IPv6
	 * range meets only a non-IMS prefix: nothing.  web: 10.2/24 x
	 * (shared 3, non-IMS 2) and 2001:db8:b::/48 x non-IMS 2. */
	ck_assert_uint_eq(per[0], 5);
	ck_assert_uint_eq(per[1], 7);
	ck_assert_uint_eq(per[2], 0);
	/* ims6: no range shares a family with a prefix facing IMS partners */
	ck_assert_uint_eq(d->n_problems, 1);
	ck_assert_uint_eq(d->problems[0].partner, 2);
	ck_assert_int_eq(d->problems[0].error, -EINVAL);
	ck_assert_msg(strstr(d->problems[0].message, "facing ims"), "%s", d->problems[0].message);
	mm_spd_desired_free(d);
	/* A local prefix facing no kind is a configuration error, not a
	 * prefix that silently pairs with nobody. */
	split[2].kinds = 0;
	ck_assert_int_eq(mm_spd_compute(&cfg, TABLE(p), 3, &d), -EINVAL);
	split[2].kinds = 1u << MM_KIND__MAX;
	ck_assert_int_eq(mm_spd_config_check(&cfg, NULL), -EINVAL);
	for (int i = 0; i < 3; i++)
		mm_partner_unref(p[i]);
}
END_TEST

/* ---- randomized, against a reference written from daemon/spd_desired.h ---- */

static uint64_t rs;

static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static struct mm_prefix rand_prefix(int family, unsigned min_len)
{
	struct mm_prefix p = { .addr = { .family = family } };
	unsigned bits = family == AF_INET ? 32 : 128;

	for (unsigned i = 0; i < bits / 8; i++)
		p.addr.bytes[i] = (uint8_t)rnd();
	/* a small space, so that prefixes nest and collide often */
	p.addr.bytes[0] = family == AF_INET ? 10 : 0x20;
	p.addr.bytes[1] = family == AF_INET ? (uint8_t)below(4) : 0x01;
	p.len = min_len + below(bits - min_len + 1);
	for (unsigned b = p.len; b < bits; b++)
		p.addr.bytes[b / 8] &= ~(0x80 >> (b % 8));
	return p;
}

static int rand_family(void)
{
	return below(2) ? AF_INET : AF_INET6;
}

START_TEST(test_kinds_random)
{
	const char *env = getenv("MM_SPD_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + 1;

	printf("test_kinds_random: seed %llu (MM_SPD_SEED reproduces)\n", (unsigned long long)seed);
	fflush(stdout);
	rs = seed | 1;
	for (int round = 0; round < 200; round++) {
		static const unsigned kinds_of[] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS),
						     MM_KIND_BIT(MM_KIND_NON_IMS) };
		struct mm_spd_local loc[6];
		struct mm_partner *p[8];
		size_t n_loc = 1 + below(6), n_p = 1 + below(8), n_ref = 0, n_got;
		char **got, **ref = calloc(8 * 16 * 6 * 3 + 1, sizeof(*ref));
		bool split = below(4) != 0;

		ck_assert_ptr_nonnull(ref);
		/* our prefixes: different kinds never overlap (config.c) */
		for (size_t i = 0; i < n_loc; i++) {
			bool clash;

			do {
				loc[i] = (struct mm_spd_local){
					.prefix = rand_prefix(rand_family(), 8),
					.forward = below(2),
					.kinds = split ? kinds_of[below(3)] : MM_KINDS_ALL,
				};
				clash = false;
				for (size_t k = 0; k < i; k++)
					clash |= loc[k].kinds != loc[i].kinds &&
						 mm_prefix_overlaps(&loc[k].prefix, &loc[i].prefix);
			} while (clash);
		}
		/* partners with disjoint ranges, one IPv4 gateway each */
		for (size_t i = 0; i < n_p; i++) {
			char dom[32], gw[32];

			snprintf(dom, sizeof(dom), "p%zu.example", i);
			snprintf(gw, sizeof(gw), "100.64.0.%zu", i + 1);
			p[i] = mm_test_partner(dom, RQ(i + 1), "", gw);
			p[i]->kind = below(MM_KIND__MAX);
			p[i]->path = below(6) ? MM_PATH_TUNNEL : MM_PATH_SEG;
			p[i]->enabled = below(8) != 0;
			for (size_t k = 1 + below(4); k; k--) {
				struct mm_prefix r = rand_prefix(rand_family(), 12);
				bool clash = false;

				for (size_t j = 0; j <= i; j++)
					for (size_t m = 0; m < p[j]->n_ranges; m++)
						clash |= mm_prefix_overlaps(&p[j]->ranges[m], &r);
				if (!clash)
					p[i]->ranges[p[i]->n_ranges++] = r;
			}
		}
		/* The reference: per tunnel partner, per range, per local prefix
		 * of the range's family whose kinds hold the partner's kind:
		 * out, in, and fwd when forwarded; the same selector once. */
		for (size_t i = 0; i < n_p; i++) {
			if (!p[i]->enabled || p[i]->path != MM_PATH_TUNNEL)
				continue;
			for (size_t r = 0; r < p[i]->n_ranges; r++)
				for (size_t l = 0; l < n_loc; l++) {
					const struct mm_prefix *lp = &loc[l].prefix, *rg = &p[i]->ranges[r];
					char a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN], line[512], gw[16];
					unsigned prio = MM_SPD_PRIO_BASE_DEFAULT + 256 - (lp->len + rg->len);
					static const char *const dirs[3] = { "out", "in", "fwd" };

					if (lp->addr.family != rg->addr.family ||
					    !(loc[l].kinds & (1u << p[i]->kind)))
						continue;
					mm_prefix_str(lp, a);
					mm_prefix_str(rg, b);
					snprintf(gw, sizeof(gw), "100.64.0.%zu", i + 1);
					for (int dir = 0; dir < (loc[l].forward ? 3 : 2); dir++) {
						bool dup = false;

						/* endpoints: ours 192.0.2.1 and its gateway,
						 * turned round with the direction */
						snprintf(line, sizeof(line), "%s %s %s %s>%s r%u p%u %s",
							 dirs[dir], dir ? b : a, dir ? a : b,
							 dir ? gw : "192.0.2.1", dir ? "192.0.2.1" : gw,
							 (unsigned)RQ(i + 1), prio, p[i]->domain);
						for (size_t k = 0; k < n_ref; k++)
							dup |= !strcmp(ref[k], line);
						if (!dup)
							ref[n_ref++] = strdup(line);
					}
				}
		}
		qsort(ref, n_ref, sizeof(*ref), cmp_str);
		cfg.locals = loc;
		cfg.n_locals = n_loc;
		n_got = lines(TABLE(p), n_p, &got);
		for (size_t i = 0; i < n_got || i < n_ref; i++)
			ck_assert_msg(i < n_got && i < n_ref && !strcmp(got[i], ref[i]),
				      "seed %llu round %d: line %zu: got %s, want %s",
				      (unsigned long long)seed, round, i, i < n_got ? got[i] : "-",
				      i < n_ref ? ref[i] : "-");
		free_lines(got, n_got);
		free_lines(ref, n_ref);
		for (size_t i = 0; i < n_p; i++)
			mm_partner_unref(p[i]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("spd_desired");
	TCase *tc = tcase_create("desired");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_compute_three);
	tcase_add_test(tc, test_priority_order);
	tcase_add_test(tc, test_problems);
	tcase_add_test(tc, test_template);
	tcase_add_test(tc, test_one_owner);
	tcase_add_test(tc, test_moved_ranges_any_order);
	tcase_add_test(tc, test_config_check);
	tcase_add_test(tc, test_kinds_split);
	tcase_add_test(tc, test_kinds_random);
	suite_add_tcase(s, tc);
	return mm_test_run(s);
}
