/* The host around the tunnels, with libnl-3 (host.h): a cache manager on
 * links, addresses, routes and rules; the rules of what is wanted are in
 * host_plan.c.  libnl-3 stays in this file; XFRM keeps libmnl (netlink/). */
#include <errno.h>
#include <inttypes.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include "host.h"
#include "host_plan.h"
#include "policy/privacy.h"
#include "log.h"
#include "mmtrustd.h"

/* The socket of the cache manager gets bursts (a whole table of routes
 * at start): room for them, so that events are rarely lost (and when they
 * are, every cache is read again). */
#define HOST_RCVBUF (8u << 20)

struct host {
	struct mmtrustd *d;
	struct nl_sock *sk_mngr, *sk_req;
	struct nl_cache_mngr *mngr;
	struct nl_cache *links, *addrs, *routes, *rules;
	sd_event_source *io, *defer;
	/* The kernel sends no RTM_DELROUTE for the IPv4 routes it flushes when
	 * a link goes down or an address goes: after a link or address event
	 * the routes (and rules) are read again before they are compared. */
	bool reread;
	/* What the last check saw, for [local] as it was then: a transition
	 * is logged once, and only a tunnel address whose usability flips (or
	 * a new one) moves the tunnels. */
	bool checked;
	struct mm_addr tunnel_addr[2];
	struct mm_prefix cscf_seen[MM_CONFIG_MAX_LOCAL];
	unsigned cscf_kinds_seen[MM_CONFIG_MAX_LOCAL];
	enum host_state tunnel[2];
	char tunnel_if[2][IF_NAMESIZE];
	/* host_tunnel_addrs() when the view was last told: the answers name a
	 * missing tunnel address, so a flip publishes a new view. */
	unsigned tunnel_addrs;
	size_t cscf_n[MM_CONFIG_MAX_LOCAL];  /* usable addresses inside each prefix */
	struct host_cscf *cscf;
	size_t n_cscf;
	/* Routes: the last plan and what reconciling it found. */
	struct host_plan plan;
	size_t installed, n_conflicts, n_skips_logged, n_conflicts_logged;
	json_t *conflicts;            /* [{range, partner, protocol}] */
	int rule_err[2];              /* per family (0: IPv4, 1: IPv6): 0 or an NLE_ code */
	bool rule_ok[2];
	uint64_t added, replaced, deleted, resyncs;
	uint32_t table, protocol;     /* what the last reconcile managed */
	char last_error[256];
};

/* ---- conversions ---- */

static bool addr_from_nl(struct nl_addr *a, struct mm_addr *ret)
{
	int fam = a ? nl_addr_get_family(a) : 0;
	unsigned len = a ? nl_addr_get_len(a) : 0;

	*ret = (struct mm_addr){ 0 };
	if (!a || (fam != AF_INET && fam != AF_INET6) || len != (fam == AF_INET ? 4u : 16u))
		return false;
	ret->family = (uint8_t)fam;
	memcpy(ret->bytes, nl_addr_get_binary_addr(a), len);
	return true;
}

static struct nl_addr *addr_to_nl(const struct mm_addr *a, unsigned prefixlen)
{
	struct nl_addr *n = nl_addr_build(a->family, a->bytes, a->family == AF_INET ? 4 : 16);

	if (n)
		nl_addr_set_prefixlen(n, (int)prefixlen);
	return n;
}

/* ---- the addresses ---- */

struct collect {
	struct host *h;
	struct host_addr *v;
	size_t n, cap;
};

static void collect_addr(struct nl_object *o, void *arg)
{
	struct collect *c = arg;
	struct rtnl_addr *a = (struct rtnl_addr *)o;
	struct rtnl_link *l;
	struct host_addr *e;
	unsigned flags;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct host_addr *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return;
		c->v = v;
		c->cap = cap;
	}
	e = &c->v[c->n];
	*e = (struct host_addr){ 0 };
	if (!addr_from_nl(rtnl_addr_get_local(a), &e->addr))
		return;
	flags = rtnl_addr_get_flags(a);
	e->tentative = flags & IFA_F_TENTATIVE;
	e->dadfailed = flags & IFA_F_DADFAILED;
	l = rtnl_link_get(c->h->links, rtnl_addr_get_ifindex(a));
	if (l) {
		unsigned lf = rtnl_link_get_flags(l);

		e->link_up = lf & IFF_UP;
		e->carrier = lf & IFF_RUNNING;
		snprintf(e->ifname, sizeof(e->ifname), "%s", rtnl_link_get_name(l));
		rtnl_link_put(l);
	}
	c->n++;
}

/* The host's addresses now, from the cache (*ret NULL on ENOMEM). */
static size_t host_addrs(struct host *h, struct host_addr **ret)
{
	struct collect c = { .h = h };

	nl_cache_foreach(h->addrs, collect_addr, &c);
	*ret = c.v;
	return c.n;
}

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

/* The families with a usable tunnel address among the host's n
 * addresses v: a [local] tunnel address of the family present, or, when
 * [local] tunnel is empty, any usable address of it. */
static unsigned tunnel_families(const struct mm_config *cfg, const struct host_addr *v, size_t n)
{
	unsigned f = 0;

	for (size_t i = 0; i < cfg->n_tunnel; i++)
		if (host_addr_state(v, n, &cfg->tunnel[i], NULL) == HOST_PRESENT)
			f |= mm_family_bit(cfg->tunnel[i].family);
	for (size_t i = 0; !cfg->n_tunnel && i < n; i++)
		if (host_usable(&v[i]))
			f |= mm_family_bit(v[i].addr.family);
	return f;
}

/* Check [local] tunnel and the CSCF prefixes; log each transition.  True
 * when a tunnel address became usable or stopped being usable. */
static bool check_addresses(struct host *h, const struct host_addr *v, size_t n)
{
	const struct mm_config *cfg = &h->d->cfg;
	struct host_cscf *cscf = NULL;
	size_t n_cscf = 0, per[MM_CONFIG_MAX_LOCAL] = { 0 };
	bool tunnel_moved = false;
	char s[MM_ADDR_STRLEN];

	for (size_t i = 0; i < cfg->n_tunnel; i++) {
		const char *ifname;
		enum host_state st = host_addr_state(v, n, &cfg->tunnel[i], &ifname);
		bool known = h->checked && !mm_addr_cmp(&h->tunnel_addr[i], &cfg->tunnel[i]);

		if (known && st == h->tunnel[i] && !strcmp(ifname, h->tunnel_if[i]))
			continue;
		if (!known || (st == HOST_PRESENT) != (h->tunnel[i] == HOST_PRESENT))
			tunnel_moved = true;
		h->tunnel_addr[i] = cfg->tunnel[i];
		/* Present at the first look is no event: back after lost is. */
		if (st == HOST_PRESENT)
			log_event(known ? MM_EVENT_ADDRESS_BACK : MM_EVENT__MAX, LOG_NOTICE, NULL,
				  "host: tunnel address %s is present on %s",
				  mm_addr_str(&cfg->tunnel[i], s), ifname);
		else
			log_event(MM_EVENT_ADDRESS_LOST, LOG_WARNING, NULL,
				  "host: tunnel address %s is missing: %s%s%s; no tunnel of this "
				  "family is up or initiated on this host",
				  mm_addr_str(&cfg->tunnel[i], s), host_state_reason(st),
				  ifname[0] ? " on " : "", ifname);
		h->tunnel[i] = st;
		snprintf(h->tunnel_if[i], sizeof(h->tunnel_if[i]), "%s", ifname);
	}
	if (host_cscf_find(v, n, cfg->cscf, cfg->cscf_kinds, cfg->n_cscf, &cscf, &n_cscf) == 0) {
		for (size_t i = 0; i < n_cscf; i++)
			per[cscf[i].prefix]++;
		for (size_t i = 0; i < cfg->n_cscf; i++) {
			bool known = h->checked && !mm_prefix_cmp(&h->cscf_seen[i], &cfg->cscf[i]) &&
				     h->cscf_kinds_seen[i] == cfg->cscf_kinds[i];

			h->cscf_seen[i] = cfg->cscf[i];
			h->cscf_kinds_seen[i] = cfg->cscf_kinds[i];
			if (known && !per[i] == !h->cscf_n[i])
				continue;
			if (per[i])
				log_event(known ? MM_EVENT_ADDRESS_BACK : MM_EVENT__MAX, LOG_NOTICE,
					  NULL, "host: CSCF prefix %s (%s) has an address of this host",
					  mm_prefix_str(&cfg->cscf[i], s),
					  mm_kinds_setting(cfg->cscf_kinds[i]));
			else
				log_event(MM_EVENT_ADDRESS_LOST, LOG_WARNING, NULL,
					  "host: CSCF prefix %s (%s) has no usable address of this "
					  "host (none, or on a link that is down)",
					  mm_prefix_str(&cfg->cscf[i], s),
					  mm_kinds_setting(cfg->cscf_kinds[i]));
		}
		memcpy(h->cscf_n, per, sizeof(per));
		free(h->cscf);
		h->cscf = cscf;
		h->n_cscf = n_cscf;
	}
	h->checked = true;
	return tunnel_moved;
}

/* ---- the routes ---- */

static void lookup_nexthop(void *userdata, const struct mm_addr *gw, struct host_nexthop *ret)
{
	struct host *h = userdata;
	struct nl_addr *dst = addr_to_nl(gw, gw->family == AF_INET ? 32 : 128);
	struct rtnl_route *r = NULL;
	struct rtnl_nexthop *nh;

	*ret = (struct host_nexthop){ 0 };
	if (!dst)
		return;
	if (rtnl_route_lookup(h->sk_req, dst, &r) == 0 && r &&
	    rtnl_route_get_type(r) == RTN_UNICAST && rtnl_route_get_nnexthops(r) >= 1 &&
	    (nh = rtnl_route_nexthop_n(r, 0)) && rtnl_route_nh_get_ifindex(nh) > 0) {
		ret->ok = true;
		ret->oif = rtnl_route_nh_get_ifindex(nh);
		addr_from_nl(rtnl_route_nh_get_gateway(nh), &ret->via);
	}
	if (r)
		rtnl_route_put(r);
	nl_addr_put(dst);
}

/* A route of the kernel as a plan's route; false when it is not one we
 * could have made (several next hops, no destination). */
static bool route_from_nl(struct rtnl_route *r, struct host_route *ret)
{
	struct nl_addr *dst = rtnl_route_get_dst(r);
	struct rtnl_nexthop *nh;

	*ret = (struct host_route){ 0 };
	if (!addr_from_nl(dst, &ret->dst.addr))
		return false;
	ret->dst.len = (uint8_t)nl_addr_get_prefixlen(dst);
	addr_from_nl(rtnl_route_get_pref_src(r), &ret->src);
	if (rtnl_route_get_nnexthops(r) != 1 || !(nh = rtnl_route_nexthop_n(r, 0)))
		return false;
	ret->oif = rtnl_route_nh_get_ifindex(nh);
	addr_from_nl(rtnl_route_nh_get_gateway(nh), &ret->via);
	return true;
}

static struct rtnl_route *route_to_nl(const struct host *h, const struct host_route *hr)
{
	const struct mm_config *cfg = &h->d->cfg;
	struct rtnl_route *r = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct nl_addr *dst = addr_to_nl(&hr->dst.addr, hr->dst.len);
	struct nl_addr *src = addr_to_nl(&hr->src, hr->src.family == AF_INET ? 32 : 128);
	struct nl_addr *via = hr->via.family ? addr_to_nl(&hr->via, hr->via.family == AF_INET ? 32 : 128)
					     : NULL;

	if (!r || !nh || !dst || !src || (hr->via.family && !via)) {
		rtnl_route_put(r);
		rtnl_route_nh_free(nh);
		r = NULL;
		goto out;
	}
	rtnl_route_set_family(r, hr->dst.addr.family);
	rtnl_route_set_table(r, cfg->route_table);
	rtnl_route_set_protocol(r, (uint8_t)cfg->route_protocol);
	rtnl_route_set_type(r, RTN_UNICAST);
	rtnl_route_set_dst(r, dst);
	rtnl_route_set_pref_src(r, src);
	rtnl_route_nh_set_ifindex(nh, hr->oif);
	if (via)
		rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_add_nexthop(r, nh);
out:
	nl_addr_put(dst);
	nl_addr_put(src);
	nl_addr_put(via);
	return r;
}

struct scan {
	struct host *h;
	const struct host_plan *plan;
	uint8_t *mark;                  /* per planned route: MARK_* */
	struct nl_object **del;         /* ours, unwanted (referenced) */
	size_t n_del, cap_del;
	json_t *conflicts;
};
enum { MARK_NONE, MARK_KEEP, MARK_REPLACE, MARK_CONFLICT = 4 };

static void scan_route(struct nl_object *o, void *arg)
{
	struct scan *sc = arg;
	const struct mm_config *cfg = &sc->h->d->cfg;
	struct rtnl_route *r = (struct rtnl_route *)o;
	struct host_route hr;
	const struct host_route *want;
	bool ours, parsed;
	int fam = rtnl_route_get_family(r);

	if (rtnl_route_get_table(r) != cfg->route_table || (fam != AF_INET && fam != AF_INET6))
		return;
	ours = rtnl_route_get_protocol(r) == cfg->route_protocol;
	parsed = route_from_nl(r, &hr);
	want = parsed ? host_plan_find(sc->plan, &hr.dst) : NULL;
	if (!ours) {
		char s[MM_ADDR_STRLEN];

		if (!want)
			return;
		sc->mark[want - sc->plan->routes] |= MARK_CONFLICT;
		json_array_append_new(sc->conflicts,
				      json_pack("{s:s, s:s, s:i}", "range", mm_prefix_str(&hr.dst, s),
						"partner", want->domain, "protocol",
						(int)rtnl_route_get_protocol(r)));
		return;
	}
	/* Ours for a range we want: kept, or replaced in place (NLM_F_REPLACE). */
	if (want && (sc->mark[want - sc->plan->routes] & 3) == MARK_NONE) {
		sc->mark[want - sc->plan->routes] |=
			host_route_equal(&hr, want) ? MARK_KEEP : MARK_REPLACE;
		return;
	}
	/* Unwanted, or a second one of ours for a range: deleted. */
	if (sc->n_del == sc->cap_del) {
		size_t cap = sc->cap_del ? 2 * sc->cap_del : 32;
		struct nl_object **v = realloc(sc->del, cap * sizeof(*v));

		if (!v)
			return;
		sc->del = v;
		sc->cap_del = cap;
	}
	nl_object_get(o);
	sc->del[sc->n_del++] = o;
}

static void set_error(struct host *h, const char *what, int nlerr)
{
	snprintf(h->last_error, sizeof(h->last_error), "%s: %s", what, nl_geterror(nlerr));
	log_limited(LOG_KIND_KERNEL_ERROR, LOG_ERR, "host: %s", h->last_error);
}

struct rule_scan {
	struct host *h;
	bool found[2];
	struct nl_object *del[16];
	size_t n_del;
};

static void scan_rule(struct nl_object *o, void *arg)
{
	struct rule_scan *rs = arg;
	const struct mm_config *cfg = &rs->h->d->cfg;
	struct rtnl_rule *r = (struct rtnl_rule *)o;
	int fam = rtnl_rule_get_family(r);
	uint8_t proto = 0;
	bool ours;

	if ((fam != AF_INET && fam != AF_INET6) || rtnl_rule_get_table(r) != cfg->route_table)
		return;
	ours = rtnl_rule_get_protocol(r, &proto) == 0 && proto == cfg->route_protocol;
	if (cfg->routes && rtnl_rule_get_prio(r) == cfg->route_rule_priority &&
	    rtnl_rule_get_action(r) == FR_ACT_TO_TBL && !rtnl_rule_get_src(r) &&
	    !rtnl_rule_get_dst(r) && !rtnl_rule_get_mark(r) && !rtnl_rule_get_iif(r)) {
		rs->found[fam == AF_INET6] = true;
		return;
	}
	/* Ours but not the one wanted (another priority, routes = no). */
	if (ours && rs->n_del < sizeof(rs->del) / sizeof(rs->del[0])) {
		nl_object_get(o);
		rs->del[rs->n_del++] = o;
	}
}

static void reconcile_rules(struct host *h)
{
	const struct mm_config *cfg = &h->d->cfg;
	struct rule_scan rs = { .h = h };
	int r;

	nl_cache_foreach(h->rules, scan_rule, &rs);
	for (size_t i = 0; i < rs.n_del; i++) {
		r = rtnl_rule_delete(h->sk_req, (struct rtnl_rule *)rs.del[i], 0);
		if (r < 0 && r != -NLE_OBJ_NOTFOUND)
			set_error(h, "deleting our rule", r);
		else
			log_notice("host: deleted our rule (priority %" PRIu32 ", table %" PRIu32 ")",
				   rtnl_rule_get_prio((struct rtnl_rule *)rs.del[i]), cfg->route_table);
		nl_object_put(rs.del[i]);
	}
	for (int f = 0; f < 2; f++) {
		struct rtnl_rule *rule;

		h->rule_ok[f] = rs.found[f];
		if (!cfg->routes || rs.found[f]) {
			h->rule_err[f] = 0;
			continue;
		}
		rule = rtnl_rule_alloc();
		if (!rule)
			continue;
		rtnl_rule_set_family(rule, f ? AF_INET6 : AF_INET);
		rtnl_rule_set_prio(rule, cfg->route_rule_priority);
		rtnl_rule_set_table(rule, cfg->route_table);
		rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
		rtnl_rule_set_protocol(rule, (uint8_t)cfg->route_protocol);
		r = rtnl_rule_add(h->sk_req, rule, NLM_F_CREATE | NLM_F_EXCL);
		rtnl_rule_put(rule);
		if (r < 0 && r != h->rule_err[f])
			log_err("host: cannot add the %s rule (priority %" PRIu32 ", lookup %" PRIu32
				"): %s",
				family_name(f ? AF_INET6 : AF_INET), cfg->route_rule_priority,
				cfg->route_table, nl_geterror(r));
		else if (r == 0)
			log_notice("host: added the %s rule (priority %" PRIu32 ", lookup %" PRIu32 ")",
				   family_name(f ? AF_INET6 : AF_INET), cfg->route_rule_priority,
				   cfg->route_table);
		h->rule_err[f] = r < 0 ? r : 0;
		h->rule_ok[f] = r == 0;
	}
}

static void log_route(const char *what, const struct host_route *hr, int err)
{
	char d[MM_ADDR_STRLEN], s[MM_ADDR_STRLEN], v[MM_ADDR_STRLEN];

	log_limited(err ? LOG_KIND_KERNEL_ERROR : LOG_KIND_DRIFT, err ? LOG_ERR : LOG_INFO,
		    "host: %s route %s src %s%s%s dev %d (partner %s)%s%s", what,
		    mm_prefix_str(&hr->dst, d), mm_addr_str(&hr->src, s), hr->via.family ? " via " : "",
		    hr->via.family ? mm_addr_str(&hr->via, v) : "", hr->oif,
		    hr->domain ? hr->domain : "-", err ? ": " : "", err ? nl_geterror(err) : "");
}

static void reconcile_routes(struct host *h)
{
	struct mmtrustd *d = h->d;
	struct host_plan plan = { 0 };
	struct scan sc = { .h = h, .plan = &plan };
	size_t installed = 0;
	int r;

	if (d->cfg.routes &&
	    host_plan_routes((const struct mm_partner *const *)d->table->partners, d->table->n,
			     h->cscf, h->n_cscf, lookup_nexthop, h, &plan) < 0) {
		log_err("host: out of memory planning the routes; they stay as they are");
		return;
	}
	sc.mark = calloc(plan.n ? plan.n : 1, 1);
	sc.conflicts = json_array();
	if (!sc.mark || !sc.conflicts) {
		log_err("host: out of memory reconciling the routes; they stay as they are");
		goto out;
	}
	nl_cache_foreach(h->routes, scan_route, &sc);
	for (size_t i = 0; i < sc.n_del; i++) {
		struct host_route hr;

		route_from_nl((struct rtnl_route *)sc.del[i], &hr);
		r = rtnl_route_delete(h->sk_req, (struct rtnl_route *)sc.del[i], 0);
		if (r < 0 && r != -NLE_OBJ_NOTFOUND)
			set_error(h, "deleting our route", r);
		else
			h->deleted++;
		log_route("deleted", &hr, r == -NLE_OBJ_NOTFOUND ? 0 : r);
	}
	for (size_t i = 0; i < plan.n; i++) {
		struct rtnl_route *nr;

		if (sc.mark[i] & MARK_CONFLICT)
			continue;  /* a foreign route holds the range: left alone */
		if (sc.mark[i] == MARK_KEEP) {
			installed++;
			continue;
		}
		nr = route_to_nl(h, &plan.routes[i]);
		if (!nr) {
			log_err("host: out of memory building a route");
			continue;
		}
		r = rtnl_route_add(h->sk_req, nr,
				   NLM_F_CREATE |
					   (sc.mark[i] == MARK_REPLACE ? NLM_F_REPLACE : NLM_F_EXCL));
		rtnl_route_put(nr);
		log_route(sc.mark[i] == MARK_REPLACE ? "replaced" : "added", &plan.routes[i], r);
		if (r < 0) {
			set_error(h, "adding a route", r);
			continue;
		}
		installed++;
		if (sc.mark[i] == MARK_REPLACE)
			h->replaced++;
		else
			h->added++;
	}
	if (plan.n_skips != h->n_skips_logged) {
		char s[MM_ADDR_STRLEN];

		if (plan.n_skips)
			log_warn("host: %zu partner ranges get no route (first: %s of %s: %s)",
				 plan.n_skips, mm_prefix_str(&plan.skips[0].dst, s),
				 plan.skips[0].domain, plan.skips[0].reason);
		else
			log_notice("host: every partner range has its route");
		h->n_skips_logged = plan.n_skips;
	}
	if (json_array_size(sc.conflicts) != h->n_conflicts_logged) {
		if (json_array_size(sc.conflicts))
			log_warn("host: %zu ranges are held by foreign routes in table %" PRIu32
				 " (left alone; see status)",
				 json_array_size(sc.conflicts), d->cfg.route_table);
		h->n_conflicts_logged = json_array_size(sc.conflicts);
	}
	json_decref(h->conflicts);
	h->conflicts = sc.conflicts;
	sc.conflicts = NULL;
	h->installed = installed;
	h->table = d->cfg.route_table;
	h->protocol = d->cfg.route_protocol;
	host_plan_clear(&h->plan);
	h->plan = plan;
	plan = (struct host_plan){ 0 };
	reconcile_rules(h);
out:
	for (size_t i = 0; i < sc.n_del; i++)
		nl_object_put(sc.del[i]);
	free(sc.del);
	free(sc.mark);
	json_decref(sc.conflicts);
	host_plan_clear(&plan);
}

/* route_table or route_protocol changed on reload: what was ours under the
 * old ones (routes and rules of that table with that protocol) goes. */
struct purge {
	uint32_t table, protocol;
	struct nl_object *del[4096];
	size_t n;
};

static void purge_route(struct nl_object *o, void *arg)
{
	struct purge *pg = arg;
	struct rtnl_route *r = (struct rtnl_route *)o;

	if (rtnl_route_get_table(r) == pg->table && rtnl_route_get_protocol(r) == pg->protocol &&
	    pg->n < sizeof(pg->del) / sizeof(pg->del[0])) {
		nl_object_get(o);
		pg->del[pg->n++] = o;
	}
}

static void purge_rule(struct nl_object *o, void *arg)
{
	struct purge *pg = arg;
	struct rtnl_rule *r = (struct rtnl_rule *)o;
	uint8_t proto = 0;

	if (rtnl_rule_get_table(r) == pg->table && rtnl_rule_get_protocol(r, &proto) == 0 &&
	    proto == pg->protocol && pg->n < sizeof(pg->del) / sizeof(pg->del[0])) {
		nl_object_get(o);
		pg->del[pg->n++] = o;
	}
}

static void purge_old(struct host *h, uint32_t table, uint32_t protocol)
{
	struct purge *pg = calloc(1, sizeof(*pg));
	size_t routes;

	if (!pg)
		return;
	pg->table = table;
	pg->protocol = protocol;
	nl_cache_foreach(h->routes, purge_route, pg);
	routes = pg->n;
	nl_cache_foreach(h->rules, purge_rule, pg);
	for (size_t i = 0; i < pg->n; i++) {
		int r = i < routes ? rtnl_route_delete(h->sk_req, (struct rtnl_route *)pg->del[i], 0)
				   : rtnl_rule_delete(h->sk_req, (struct rtnl_rule *)pg->del[i], 0);

		if (r < 0 && r != -NLE_OBJ_NOTFOUND)
			set_error(h, "deleting what was ours under the old table or protocol", r);
		nl_object_put(pg->del[i]);
	}
	log_notice("host: route table or protocol changed: deleted %zu routes and %zu rules of "
		   "table %" PRIu32 " protocol %" PRIu32,
		   routes, pg->n - routes, table, protocol);
	free(pg);
}

/* ---- the loop ---- */

static void check(struct host *h)
{
	struct host_addr *v = NULL;
	size_t n = host_addrs(h, &v);
	bool moved = check_addresses(h, v, n);
	unsigned tunnel_addrs = MM_TUNNEL_ADDRS_KNOWN | tunnel_families(&h->d->cfg, v, n);

	free(v);
	/* The tunnels first: the answers must not wait for the routes. */
	if (moved)
		ike_local_changed(h->d);
	/* The answers say when a family's tunnel address is missing. */
	if (tunnel_addrs != h->tunnel_addrs) {
		h->tunnel_addrs = tunnel_addrs;
		mmtrustd_view_changed(h->d);
	}
	if (h->reread) {
		int r = nl_cache_refill(h->sk_req, h->routes);

		if (r >= 0)
			r = nl_cache_refill(h->sk_req, h->rules);
		if (r < 0)
			set_error(h, "reading the routes again", r);
		h->reread = false;
	}
	reconcile_routes(h);
}

static int on_defer(sd_event_source *s, void *userdata)
{
	(void)s;
	check(userdata);
	return 0;
}

static void on_change(struct nl_cache *c, struct nl_object *o, int action, void *arg)
{
	struct host *h = arg;

	(void)o;
	(void)action;
	if (c == h->links || c == h->addrs)
		h->reread = true;
	sd_event_source_set_enabled(h->defer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct host *h = userdata;
	int r;

	(void)s;
	(void)fd;
	(void)revents;
	r = nl_cache_mngr_data_ready(h->mngr);
	if (r < 0) {
		/* Events were lost (ENOBUFS): read everything again. */
		struct nl_cache *all[] = { h->links, h->addrs, h->routes, h->rules };

		h->resyncs++;
		log_limited(LOG_KIND_RESYNC, LOG_WARNING,
			    "host: route events lost (%s); reading links, addresses, routes and "
			    "rules again",
			    nl_geterror(r));
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			nl_cache_refill(h->sk_req, all[i]);
		sd_event_source_set_enabled(h->defer, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void host_free(struct host *h)
{
	if (!h)
		return;
	sd_event_source_disable_unref(h->io);
	sd_event_source_disable_unref(h->defer);
	nl_cache_mngr_free(h->mngr);  /* frees its caches */
	nl_socket_free(h->sk_mngr);
	nl_socket_free(h->sk_req);
	host_plan_clear(&h->plan);
	json_decref(h->conflicts);
	free(h->cscf);
	free(h);
}

int host_start(struct mmtrustd *d)
{
	static const char *const names[] = { "route/link", "route/addr", "route/route",
					     "route/rule" };
	struct host *h = calloc(1, sizeof(*h));
	struct nl_cache **caches[4];
	const char *what = "out of memory";
	int r = -ENOMEM;

	if (!h)
		goto fail;
	h->d = d;
	caches[0] = &h->links;
	caches[1] = &h->addrs;
	caches[2] = &h->routes;
	caches[3] = &h->rules;
	h->sk_mngr = nl_socket_alloc();
	h->sk_req = nl_socket_alloc();
	if (!h->sk_mngr || !h->sk_req)
		goto fail;
	what = "NETLINK_ROUTE";
	if ((r = nl_connect(h->sk_req, NETLINK_ROUTE)) < 0 ||
	    (r = nl_cache_mngr_alloc(h->sk_mngr, NETLINK_ROUTE, NL_AUTO_PROVIDE, &h->mngr)) < 0)
		goto nlfail;
	nl_socket_set_buffer_size(h->sk_mngr, HOST_RCVBUF, 0);
	for (size_t i = 0; i < 4; i++) {
		what = names[i];
		if ((r = nl_cache_mngr_add(h->mngr, names[i], on_change, h, caches[i])) < 0)
			goto nlfail;
	}
	r = sd_event_add_io(d->ev, &h->io, nl_cache_mngr_get_fd(h->mngr), EPOLLIN, on_io, h);
	if (r == 0)
		r = sd_event_add_defer(d->ev, &h->defer, on_defer, h);
	if (r < 0) {
		what = "event loop";
		goto fail;
	}
	sd_event_source_set_enabled(h->defer, SD_EVENT_OFF);
	d->host = h;
	check(h);
	return 0;
nlfail:
	log_err("host: cannot watch the host's %s: %s", what, nl_geterror(r));
	host_free(h);
	return -EIO;
fail:
	log_err("host: cannot start (%s): %s", what, strerror(-r));
	host_free(h);
	return r;
}

void host_stop(struct mmtrustd *d)
{
	host_free(d->host);
	d->host = NULL;
}

void host_changed(struct mmtrustd *d)
{
	struct host *h = d->host;

	if (!h)
		return;
	/* [local] may name other addresses now: those are reported anew
	 * (check_addresses compares them with the ones seen before). */
	if (h->table && (h->table != d->cfg.route_table || h->protocol != d->cfg.route_protocol))
		purge_old(h, h->table, h->protocol);
	check(h);
}

bool host_local_usable(struct mmtrustd *d, const char *addr)
{
	struct host_addr *v = NULL;
	struct mm_addr a;
	size_t n;
	bool ok;

	if (!d->host)
		return true;
	if (!addr || mm_addr_parse(addr, &a, "local-host", NULL) < 0)
		return false;
	n = host_addrs(d->host, &v);
	ok = host_addr_state(v, n, &a, NULL) == HOST_PRESENT;
	free(v);
	return ok;
}

unsigned host_tunnel_addrs(struct mmtrustd *d)
{
	struct host_addr *v = NULL;
	size_t n;
	unsigned f;

	if (!d->host)
		return 0;
	n = host_addrs(d->host, &v);
	f = tunnel_families(&d->cfg, v, n);
	free(v);
	return MM_TUNNEL_ADDRS_KNOWN | f;
}

bool host_may_initiate(struct mmtrustd *d, const struct mm_partner *p)
{
	if (!d->host || !p)
		return true;
	/* The answers' rule (tunnel-address-missing), the one rule. */
	return mm_tunnel_addr_of(host_tunnel_addrs(d), mm_partner_gateway_families(p)) ==
	       MM_TUNNEL_ADDR_USABLE;
}

void host_status(struct mmtrustd *d, json_t *status)
{
	const struct mm_config *cfg = &d->cfg;
	struct host *h = d->host;
	json_t *o, *tun, *cscf, *routes, *skips;
	char s[MM_ADDR_STRLEN];

	if (!h) {
		json_object_set_new(status, "host", json_pack("{s:b}", "watched", false));
		return;
	}
	tun = json_array();
	for (size_t i = 0; i < cfg->n_tunnel; i++) {
		o = json_pack("{s:s, s:b, s:s}", "address", mm_addr_str(&cfg->tunnel[i], s), "present",
			      h->tunnel[i] == HOST_PRESENT, "state", host_state_name(h->tunnel[i]));
		if (h->tunnel_if[i][0])
			json_object_set_new(o, "interface", json_string(h->tunnel_if[i]));
		if (h->tunnel[i] != HOST_PRESENT)
			json_object_set_new(o, "reason", json_string(host_state_reason(h->tunnel[i])));
		json_array_append_new(tun, o);
	}
	cscf = json_array();
	for (size_t i = 0; i < cfg->n_cscf; i++) {
		json_t *addrs = json_array();

		for (size_t k = 0; k < h->n_cscf; k++)
			if (h->cscf[k].prefix == i)
				json_array_append_new(addrs, json_string(mm_addr_str(&h->cscf[k].addr, s)));
		o = json_pack("{s:s, s:s, s:b, s:o}", "prefix", mm_prefix_str(&cfg->cscf[i], s),
			      "setting", mm_kinds_setting(cfg->cscf_kinds[i]), "present",
			      h->cscf_n[i] > 0, "addresses", addrs);
		if (!h->cscf_n[i])
			json_object_set_new(o, "reason",
					    json_string("no usable address of this host inside it"));
		json_array_append_new(cscf, o);
	}
	skips = json_array();
	for (size_t i = 0; i < h->plan.n_skips && i < 100; i++)
		json_array_append_new(skips, json_pack("{s:s, s:s, s:s}", "range",
						       mm_prefix_str(&h->plan.skips[i].dst, s),
						       "partner", h->plan.skips[i].domain, "reason",
						       h->plan.skips[i].reason));
	routes = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:I}",
			   "enabled", cfg->routes, "table", (json_int_t)cfg->route_table,
			   "protocol", (json_int_t)cfg->route_protocol, "rule_priority",
			   (json_int_t)cfg->route_rule_priority, "wanted", (json_int_t)h->plan.n,
			   "installed", (json_int_t)h->installed, "skipped",
			   (json_int_t)h->plan.n_skips, "conflicts",
			   h->conflicts ? json_incref(h->conflicts) : json_array(), "skips", skips, "added",
			   (json_int_t)h->added, "replaced", (json_int_t)h->replaced, "deleted",
			   (json_int_t)h->deleted, "resyncs", (json_int_t)h->resyncs);
	if (cfg->routes)
		json_object_set_new(routes, "rule",
				    json_pack("{s:s, s:s}", "ipv4",
					      h->rule_ok[0] ? "present" : nl_geterror(h->rule_err[0]),
					      "ipv6",
					      h->rule_ok[1] ? "present" : nl_geterror(h->rule_err[1])));
	if (h->last_error[0])
		json_object_set_new(routes, "last_error", json_string(h->last_error));
	json_object_set_new(status, "host",
			    json_pack("{s:b, s:o, s:o, s:o}", "watched", true, "tunnel", tun, "cscf",
				      cscf, "routes", routes));
}
