#include "spd_desired.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/grow.h"
#include "policy/privacy.h"

/* ---- configuration ---- */

void mm_spd_config_init(struct mm_spd_config *cfg)
{
	*cfg = (struct mm_spd_config){
		.prio_base = MM_SPD_PRIO_BASE_DEFAULT,
		.tag = MM_SPD_TAG_DEFAULT,
		.reqid_min = MM_SPD_REQID_MIN_DEFAULT,
		.reqid_max = MM_SPD_REQID_MAX_DEFAULT,
	};
}

int mm_spd_config_check(const struct mm_spd_config *cfg, struct mm_err *err)
{
	if (cfg->tag == 0)
		return mm_err_set(err, MM_ERR_INVALID, "tag",
				  "the selector tag must not be 0, which every other tool uses");
	if (cfg->reqid_min == 0 || cfg->reqid_min > cfg->reqid_max)
		return mm_err_set(err, MM_ERR_INVALID, "reqid",
				  "the reqid range %u-%u is empty or includes 0",
				  cfg->reqid_min, cfg->reqid_max);
	if (cfg->prio_base > UINT32_MAX - MM_SPD_PRIO_SPAN)
		return mm_err_set(err, MM_ERR_INVALID, "priority",
				  "the priority band starting at %u wraps around", cfg->prio_base);
	if (cfg->tunnel4.family && cfg->tunnel4.family != AF_INET)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel4",
				  "the IPv4 tunnel address is not an IPv4 address");
	if (cfg->tunnel6.family && cfg->tunnel6.family != AF_INET6)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel6",
				  "the IPv6 tunnel address is not an IPv6 address");
	if (!cfg->tunnel4.family && !cfg->tunnel6.family)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel",
				  "no tunnel address is configured");
	if (cfg->n_locals && !cfg->locals)
		return mm_err_set(err, MM_ERR_INVALID, "local", "local prefixes missing");
	for (size_t i = 0; i < cfg->n_locals; i++) {
		const struct mm_prefix *p = &cfg->locals[i].prefix;

		if ((p->addr.family != AF_INET && p->addr.family != AF_INET6) ||
		    p->len > mm_addr_bits(p->addr.family))
			return mm_err_set(err, MM_ERR_INVALID, "local",
					  "local prefix %zu is not an IPv4 or IPv6 prefix", i);
		/* A prefix facing no kind (or kinds we do not know) would
		 * quietly pair with nobody, or with partners nobody meant. */
		if (!cfg->locals[i].kinds || (cfg->locals[i].kinds & ~MM_KINDS_ALL))
			return mm_err_set(err, MM_ERR_INVALID, "local",
					  "local prefix %zu faces no known kind of partner", i);
	}
	return 0;
}

uint32_t mm_spd_priority(const struct mm_spd_config *cfg, const struct mm_prefix *src,
			 const struct mm_prefix *dst)
{
	return cfg->prio_base + (MM_SPD_PRIO_SPAN - 1) - (uint32_t)(src->len + dst->len);
}

/* ---- the desired state ---- */

static const struct mm_addr *tunnel_of(const struct mm_spd_config *cfg, int family)
{
	const struct mm_addr *a = family == AF_INET ? &cfg->tunnel4 : &cfg->tunnel6;

	return a->family ? a : NULL;
}

/* The partner's first gateway for which we have a tunnel address. */
static const struct mm_addr *pick_gateway(const struct mm_spd_config *cfg,
					  const struct mm_partner *p)
{
	for (size_t i = 0; i < p->n_gateways; i++)
		if (tunnel_of(cfg, p->gateways[i].family))
			return &p->gateways[i];
	return NULL;
}

bool mm_spd_template(const struct mm_spd_config *cfg, const struct mm_partner *p,
		     struct mm_addr *ret_tun, struct mm_addr *ret_gw)
{
	const struct mm_addr *gw = pick_gateway(cfg, p);

	if (!gw)
		return false;
	*ret_gw = mm_spd_clean_addr(gw);
	*ret_tun = mm_spd_clean_addr(tunnel_of(cfg, gw->family));
	return true;
}

/* Copies with the bytes past the family's width zeroed, so that prefixes
 * can be compared and hashed as plain memory. */
struct mm_addr mm_spd_clean_addr(const struct mm_addr *a)
{
	struct mm_addr c = { .family = a->family };

	memcpy(c.bytes, a->bytes, a->family == AF_INET ? 4 : 16);
	return c;
}

struct mm_prefix mm_spd_clean_prefix(const struct mm_prefix *p)
{
	return (struct mm_prefix){ .addr = mm_spd_clean_addr(&p->addr), .len = p->len };
}

static int prefix_order(const struct mm_prefix *a, const struct mm_prefix *b)
{
	int c = memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr.bytes));

	if (c)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

static int want_cmp(const void *x, const void *y)
{
	const struct mm_spd_want *a = x, *b = y;
	int c;

	if (a->dir != b->dir)
		return a->dir < b->dir ? -1 : 1;
	if (a->src.addr.family != b->src.addr.family)
		return a->src.addr.family < b->src.addr.family ? -1 : 1;
	c = prefix_order(&a->src, &b->src);
	if (c)
		return c;
	c = prefix_order(&a->dst, &b->dst);
	if (c)
		return c;
	/* Ties between partners: the earlier partner keeps the selector. */
	return (a->partner > b->partner) - (a->partner < b->partner);
}

static int add_problem(struct mm_spd_desired *d, size_t partner, int error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int add_problem(struct mm_spd_desired *d, size_t partner, int error, const char *fmt, ...)
{
	struct mm_spd_problem *pr;
	va_list ap;

	if (mm_grow((void **)&d->problems, &d->cap_problems, d->n_problems + 1, sizeof(*pr)) < 0)
		return -ENOMEM;
	pr = &d->problems[d->n_problems++];
	pr->partner = partner;
	pr->error = error;
	va_start(ap, fmt);
	vsnprintf(pr->message, sizeof(pr->message), fmt, ap);
	va_end(ap);
	return 0;
}

static int add_want(struct mm_spd_desired *d, const struct mm_spd_want *w)
{
	if (mm_grow((void **)&d->want, &d->cap_want, d->n_want + 1, sizeof(*w)) < 0)
		return -ENOMEM;
	d->want[d->n_want++] = *w;
	return 0;
}

int mm_spd_partner_wants(const struct mm_spd_config *cfg, const struct mm_partner *p,
			 size_t index, struct mm_spd_desired *d)
{
	const struct mm_addr *gw, *tun;
	size_t before = d->n_want;
	int r;

	if (p->reqid < cfg->reqid_min || p->reqid > cfg->reqid_max)
		return add_problem(d, index, -ERANGE,
				   "reqid %u is outside the reserved range %u-%u", p->reqid,
				   cfg->reqid_min, cfg->reqid_max);
	gw = pick_gateway(cfg, p);
	if (!gw)
		return add_problem(d, index, -ENOENT,
				   "no gateway of a family we have a tunnel address for "
				   "(IPv4 tunnel: %s, IPv6 tunnel: %s)",
				   cfg->tunnel4.family ? "yes" : "none",
				   cfg->tunnel6.family ? "yes" : "none");
	tun = tunnel_of(cfg, gw->family);
	for (size_t l = 0; l < cfg->n_locals; l++) {
		const struct mm_spd_local *loc = &cfg->locals[l];

		/* The first level of protection: a partner's policies use our
		 * CSCF prefixes of its kind only. */
		if (!mm_cscf_faces(loc->kinds, p))
			continue;
		for (size_t i = 0; i < p->n_ranges; i++) {
			struct mm_spd_want w = {
				.tsrc = mm_spd_clean_addr(tun), .tdst = mm_spd_clean_addr(gw),
				.reqid = p->reqid, .partner = index,
			};
			struct mm_prefix local = mm_spd_clean_prefix(&loc->prefix);
			struct mm_prefix range = mm_spd_clean_prefix(&p->ranges[i]);

			if (local.addr.family != range.addr.family)
				continue;
			w.dir = XFRM_POLICY_OUT;
			w.src = local;
			w.dst = range;
			w.priority = mm_spd_priority(cfg, &w.src, &w.dst);
			if ((r = add_want(d, &w)) < 0)
				return r;
			/* in and fwd: the partner's traffic coming to us; the
			 * template's endpoints turn round with it. */
			w.dir = XFRM_POLICY_IN;
			w.src = range;
			w.dst = local;
			w.tsrc = mm_spd_clean_addr(gw);
			w.tdst = mm_spd_clean_addr(tun);
			if ((r = add_want(d, &w)) < 0)
				return r;
			if (loc->forward) {
				w.dir = XFRM_POLICY_FWD;
				if ((r = add_want(d, &w)) < 0)
					return r;
			}
		}
	}
	if (d->n_want == before)
		return add_problem(d, index, -EINVAL,
				   "none of its %zu range(s) shares a family with a local prefix "
				   "facing %s partners", p->n_ranges, mm_kind_name(p->kind));
	return 0;
}

static bool same_selector(const struct mm_spd_want *a, const struct mm_spd_want *b)
{
	return a->dir == b->dir && memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

int mm_spd_compute(const struct mm_spd_config *cfg, const struct mm_partner *const *partners,
		   size_t n, struct mm_spd_desired **ret)
{
	struct mm_spd_desired *d;
	size_t out = 0;
	int r;

	r = mm_spd_config_check(cfg, NULL);
	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!partners[i] || !mm_partner_has_tunnel(partners[i]))
			continue;
		r = mm_spd_partner_wants(cfg, partners[i], i, d);
		if (r < 0)
			goto fail;
	}
	if (d->n_want)
		qsort(d->want, d->n_want, sizeof(*d->want), want_cmp);
	/* Unique selectors: the same local prefix twice is harmless; the same
	 * selector for two partners is a table error the kernel could not
	 * express (one policy, one reqid), so the later partner loses it. */
	for (size_t i = 0; i < d->n_want; i++) {
		const struct mm_spd_want *w = &d->want[i];

		if (out && same_selector(&d->want[out - 1], w)) {
			const struct mm_spd_want *kept = &d->want[out - 1];
			char s1[MM_ADDR_STRLEN], s2[MM_ADDR_STRLEN];

			if (kept->partner != w->partner) {
				r = add_problem(d, w->partner, -EEXIST,
						"selector %s %s -> %s is already %s's: left out",
						mm_xfrm_dir_name(w->dir), mm_prefix_str(&w->src, s1),
						mm_prefix_str(&w->dst, s2),
						partners[kept->partner]->domain);
				if (r < 0)
					goto fail;
			}
			continue;
		}
		d->want[out++] = *w;
	}
	d->n_want = out;
	*ret = d;
	return 0;
fail:
	mm_spd_desired_free(d);
	return r;
}

void mm_spd_desired_free(struct mm_spd_desired *d)
{
	if (!d)
		return;
	free(d->want);
	free(d->problems);
	free(d);
}

void mm_spd_fill_policy(const struct mm_spd_config *cfg, uint8_t dir, const struct mm_prefix *src,
			const struct mm_prefix *dst, const struct mm_addr *tsrc,
			const struct mm_addr *tdst, uint32_t reqid, struct mm_xfrm_policy *p)
{
	struct mm_xfrm_tmpl *t = &p->tmpl[0];

	memset(p, 0, sizeof(*p));
	p->sel.family = src->addr.family;
	p->sel.src = *src;
	p->sel.dst = *dst;
	p->sel.user = cfg->tag;
	p->dir = dir;
	p->type = XFRM_POLICY_TYPE_MAIN;
	p->action = XFRM_POLICY_ALLOW;
	p->share = XFRM_SHARE_ANY;
	p->priority = mm_spd_priority(cfg, src, dst);
	p->n_tmpl = 1;
	t->family = tsrc->family;
	t->src = *tsrc;
	t->dst = *tdst;
	t->proto = IPPROTO_ESP;
	t->mode = XFRM_MODE_TUNNEL;
	t->reqid = reqid;
	t->optional = false;  /* level required */
	/* Any algorithm: charon negotiates them, the policy only demands ESP. */
	t->aalgos = t->ealgos = t->calgos = UINT32_MAX;
}

void mm_spd_want_policy(const struct mm_spd_config *cfg, const struct mm_spd_want *w,
			struct mm_xfrm_policy *ret)
{
	mm_spd_fill_policy(cfg, w->dir, &w->src, &w->dst, &w->tsrc, &w->tdst, w->reqid, ret);
}
