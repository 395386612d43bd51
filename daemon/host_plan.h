/* What the host side wants, from what the host holds: pure (no I/O, no
 * logging), so that the rules are unit-tested and host.c only reads the
 * kernel and carries the answers out.
 *
 *   - Whether one of our addresses is usable: on an interface that is up
 *     and has carrier, and (IPv6) neither tentative nor failed DAD.
 *   - The CSCF addresses: the host's usable addresses inside the [local]
 *     cscf* prefixes, each with the kinds of peers its prefix faces.
 *   - The routes ([local] routes = yes): one per range of every tunnel
 *     partner, src our CSCF address of the range's family facing the
 *     partner's kind (the lowest, so the choice is stable), through the
 *     next hop the host uses for the partner's gateway (of the range's
 *     family when it has one).  A range without such an address or next
 *     hop gets no route and a reason. */
#ifndef MMTRUSTD_HOST_PLAN_H
#define MMTRUSTD_HOST_PLAN_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/addr.h"
#include "policy/partner.h"

/* One address of the host, as the kernel lists it. */
struct host_addr {
	struct mm_addr addr;
	char ifname[IF_NAMESIZE];
	bool link_up;     /* IFF_UP */
	bool carrier;     /* IFF_RUNNING */
	bool tentative;   /* IFA_F_TENTATIVE (IPv6 DAD still running) */
	bool dadfailed;   /* IFA_F_DADFAILED */
};

/* The state of one of our addresses; HOST_PRESENT is the only usable one,
 * the others are in order of preference (the best one found is reported). */
enum host_state {
	HOST_PRESENT,
	HOST_TENTATIVE,
	HOST_NO_CARRIER,
	HOST_LINK_DOWN,
	HOST_DADFAILED,
	HOST_ABSENT,
	HOST_STATE__MAX
};
/* "present", "tentative", ...; and the sentence a status or log gives. */
const char *host_state_name(enum host_state s);
const char *host_state_reason(enum host_state s);

/* The best state of a among the host's n addresses v; *ret_ifname (may be
 * NULL) borrows the interface of the best one ("" when absent). */
enum host_state host_addr_state(const struct host_addr *v, size_t n, const struct mm_addr *a,
				const char **ret_ifname);
static inline bool host_usable(const struct host_addr *h)
{
	return h->link_up && h->carrier && !h->tentative && !h->dadfailed;
}

/* A usable address of the host inside a CSCF prefix. */
struct host_cscf {
	struct mm_addr addr;
	unsigned kinds;    /* MM_KIND_BIT()s of its prefix */
	size_t prefix;     /* index into the cscf prefixes */
};
/* The usable addresses of v inside the n_cscf prefixes (kinds[i] for
 * prefix i), sorted by address, into a new array (*ret_n may be 0; free
 * *ret).  -ENOMEM. */
int host_cscf_find(const struct host_addr *v, size_t n, const struct mm_prefix *cscf,
		   const unsigned *kinds, size_t n_cscf, struct host_cscf **ret, size_t *ret_n);

/* How the host reaches a gateway: ok false when it does not. */
struct host_nexthop {
	bool ok;
	struct mm_addr via;  /* family 0: the gateway is on the link */
	int oif;             /* ifindex */
};
typedef void (*host_nexthop_fn)(void *userdata, const struct mm_addr *gw, struct host_nexthop *ret);

struct host_route {
	struct mm_prefix dst;
	struct mm_addr src;
	struct mm_addr via;  /* family 0: none (on the link, or the gateway is of the other family) */
	int oif;
	const char *domain;  /* borrowed from the table */
};
struct host_skip {
	struct mm_prefix dst;
	const char *domain;  /* borrowed from the table */
	const char *reason;  /* static text */
};
struct host_plan {
	struct host_route *routes;  /* sorted by dst (mm_prefix_cmp) */
	size_t n;
	struct host_skip *skips;    /* in table order */
	size_t n_skips;
};

/* The routes the partners ps (a table's, sorted by domain) want, given
 * the CSCF addresses (host_cscf_find) and nexthop() (called for each range
 * that has a CSCF address, with the gateway its route follows).  On
 * success *ret is replaced (host_plan_clear it); -ENOMEM leaves it. */
int host_plan_routes(const struct mm_partner *const *ps, size_t n_ps, const struct host_cscf *c,
		     size_t n_c,
		     host_nexthop_fn nexthop, void *userdata, struct host_plan *ret);
void host_plan_clear(struct host_plan *p);
/* The plan's route for dst, NULL when none. */
const struct host_route *host_plan_find(const struct host_plan *p, const struct mm_prefix *dst);
/* Whether two routes install the same thing (dst, src, via, oif). */
bool host_route_equal(const struct host_route *a, const struct host_route *b);

#endif
