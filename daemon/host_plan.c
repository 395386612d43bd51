/* The host side's rules, pure (host_plan.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host_plan.h"

static const struct {
	const char *name, *reason;
} states[HOST_STATE__MAX] = {
	[HOST_PRESENT] = { "present", "on an interface that is up" },
	[HOST_TENTATIVE] = { "tentative", "tentative: duplicate address detection still runs" },
	[HOST_NO_CARRIER] = { "no-carrier", "its interface has no carrier" },
	[HOST_LINK_DOWN] = { "link-down", "its interface is down" },
	[HOST_DADFAILED] = { "dadfailed", "duplicate address detection failed" },
	[HOST_ABSENT] = { "absent", "not an address of this host" },
};

const char *host_state_name(enum host_state s)
{
	return s < HOST_STATE__MAX ? states[s].name : "?";
}

const char *host_state_reason(enum host_state s)
{
	return s < HOST_STATE__MAX ? states[s].reason : "?";
}

static enum host_state state_of(const struct host_addr *h)
{
	if (h->dadfailed)
		return HOST_DADFAILED;
	if (!h->link_up)
		return HOST_LINK_DOWN;
	if (!h->carrier)
		return HOST_NO_CARRIER;
	return h->tentative ? HOST_TENTATIVE : HOST_PRESENT;
}

enum host_state host_addr_state(const struct host_addr *v, size_t n, const struct mm_addr *a,
				const char **ret_ifname)
{
	enum host_state best = HOST_ABSENT;
	const char *ifname = "";

	for (size_t i = 0; i < n; i++) {
		enum host_state s;

		if (mm_addr_cmp(&v[i].addr, a))
			continue;
		s = state_of(&v[i]);
		if (s < best) {
			best = s;
			ifname = v[i].ifname;
		}
	}
	if (ret_ifname)
		*ret_ifname = ifname;
	return best;
}

static int cscf_cmp(const void *a, const void *b)
{
	return mm_addr_cmp(&((const struct host_cscf *)a)->addr,
			   &((const struct host_cscf *)b)->addr);
}

int host_cscf_find(const struct host_addr *v, size_t n, const struct mm_prefix *cscf,
		   const unsigned *kinds, size_t n_cscf, struct host_cscf **ret, size_t *ret_n)
{
	struct host_cscf *c = calloc(n ? n : 1, sizeof(*c));
	size_t k = 0;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!host_usable(&v[i]))
			continue;
		/* The prefixes do not overlap (config.c): one at most. */
		for (size_t j = 0; j < n_cscf; j++) {
			if (!mm_prefix_contains(&cscf[j], &v[i].addr))
				continue;
			c[k++] = (struct host_cscf){ .addr = v[i].addr, .kinds = kinds[j], .prefix = j };
			break;
		}
	}
	qsort(c, k, sizeof(*c), cscf_cmp);
	/* The same address on two interfaces counts once. */
	if (k > 1) {
		size_t w = 1;

		for (size_t i = 1; i < k; i++)
			if (mm_addr_cmp(&c[i].addr, &c[w - 1].addr))
				c[w++] = c[i];
		k = w;
	}
	*ret = c;
	*ret_n = k;
	return 0;
}

static int route_cmp(const void *a, const void *b)
{
	return mm_prefix_cmp(&((const struct host_route *)a)->dst,
			     &((const struct host_route *)b)->dst);
}

/* The gateway whose next hop a range's route takes: the first of the
 * range's family, else the first. */
static const struct mm_addr *gateway_for(const struct mm_partner *p, int family)
{
	for (size_t i = 0; i < p->n_gateways; i++)
		if (p->gateways[i].family == family)
			return &p->gateways[i];
	return p->n_gateways ? &p->gateways[0] : NULL;
}

int host_plan_routes(const struct mm_partner *const *ps, size_t n_ps, const struct host_cscf *c,
		     size_t n_c, host_nexthop_fn nexthop, void *userdata, struct host_plan *ret)
{
	struct host_plan p = { 0 };
	size_t max = 0;

	for (size_t i = 0; i < n_ps; i++)
		if (mm_partner_has_tunnel(ps[i]))
			max += ps[i]->n_ranges;
	p.routes = calloc(max ? max : 1, sizeof(*p.routes));
	p.skips = calloc(max ? max : 1, sizeof(*p.skips));
	if (!p.routes || !p.skips) {
		host_plan_clear(&p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_ps; i++) {
		const struct mm_partner *pa = ps[i];

		if (!mm_partner_has_tunnel(pa))
			continue;
		for (size_t r = 0; r < pa->n_ranges; r++) {
			const struct mm_prefix *dst = &pa->ranges[r];
			const struct mm_addr *src = NULL, *gw = gateway_for(pa, dst->addr.family);
			struct host_nexthop nh = { 0 };
			const char *why = NULL;

			for (size_t k = 0; k < n_c && !src; k++)
				if (c[k].addr.family == dst->addr.family &&
				    mm_kinds_has(c[k].kinds, pa->kind))
					src = &c[k].addr;
			if (!src)
				why = "no CSCF address of this family facing the partner's kind "
				      "on this host";
			else if (!gw)
				why = "the partner has no gateway";
			else {
				nexthop(userdata, gw, &nh);
				if (!nh.ok)
					why = "this host has no route to the partner's gateway";
			}
			if (why) {
				p.skips[p.n_skips++] = (struct host_skip){ .dst = *dst,
									   .domain = pa->domain,
									   .reason = why };
				continue;
			}
			p.routes[p.n] = (struct host_route){ .dst = *dst, .src = *src,
							     .oif = nh.oif, .domain = pa->domain };
			/* A next hop of the other family cannot be a route's
			 * gateway: the route names the device only (the packet is
			 * encapsulated before it needs one). */
			if (nh.via.family == dst->addr.family)
				p.routes[p.n].via = nh.via;
			p.n++;
		}
	}
	qsort(p.routes, p.n, sizeof(*p.routes), route_cmp);
	host_plan_clear(ret);
	*ret = p;
	return 0;
}

void host_plan_clear(struct host_plan *p)
{
	free(p->routes);
	free(p->skips);
	*p = (struct host_plan){ 0 };
}

const struct host_route *host_plan_find(const struct host_plan *p, const struct mm_prefix *dst)
{
	struct host_route key = { .dst = *dst };

	return p->n ? bsearch(&key, p->routes, p->n, sizeof(key), route_cmp) : NULL;
}

bool host_route_equal(const struct host_route *a, const struct host_route *b)
{
	return !mm_prefix_cmp(&a->dst, &b->dst) && !mm_addr_cmp(&a->src, &b->src) &&
	       a->via.family == b->via.family &&
	       (!a->via.family || !mm_addr_cmp(&a->via, &b->via)) && a->oif == b->oif;
}
