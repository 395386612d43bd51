/* The host around the tunnels (host.c, the one file that uses libnl-3):
 * mmtrustd watches the host's links, addresses, routes and rules through a
 * libnl cache manager on NETLINK_ROUTE, read in the event loop.
 *
 *   - [local] tunnel addresses and the CSCF addresses (the host's
 *     addresses inside the [local] cscf* prefixes) are checked at start and
 *     on every change (host_plan.h says when one is usable); each
 *     transition is logged and `status` shows them ("host").  When a
 *     tunnel address becomes usable or stops being usable, the IKE side is
 *     told (ike_local_changed): tunnels whose local end left the host are
 *     down at once, and those that may come up are initiated.
 *   - [local] routes = yes: a route per range of every tunnel partner in
 *     table route_table, tagged route_protocol (host_plan.h says which), and
 *     one rule per family (priority route_rule_priority, lookup route_table,
 *     the same protocol) -- reconciled after every change of the host or
 *     the table: only the difference is written, and only entries of our
 *     table with our protocol are ever changed or deleted.  A foreign route
 *     in our table for a range we want is a conflict: reported, left alone.
 *     routes = no: our tagged routes and rules are removed.
 *
 * Whatever cannot be written is in the status and logged once per change;
 * the daemon runs on. */
#ifndef MMTRUSTD_HOST_H
#define MMTRUSTD_HOST_H

#include <jansson.h>
#include <stdbool.h>

#include "policy/partner.h"

struct mmtrustd;
struct host;

/* Open the cache manager, read links, addresses, routes and rules, check
 * the addresses and reconcile the routes; the manager's socket is read in
 * d's loop.  -errno (logged) when NETLINK_ROUTE cannot be read. */
int host_start(struct mmtrustd *d);
void host_stop(struct mmtrustd *d);
/* The table or the configuration changed (apply, reload): check the
 * addresses against [local] again and reconcile the routes. */
void host_changed(struct mmtrustd *d);
/* Add "host" to a status answer. */
void host_status(struct mmtrustd *d, json_t *status);
/* Whether addr (text, as charon reports a local host) is a usable address
 * of this host now.  True when the host side does not run (nothing is
 * known; mmtrustd does not start without it). */
bool host_local_usable(struct mmtrustd *d, const char *addr);
/* Whether a tunnel to p may be initiated now: a [local] tunnel address of
 * the family of one of p's gateways is usable (any usable address of that
 * family when [local] tunnel is empty). */
bool host_may_initiate(struct mmtrustd *d, const struct mm_partner *p);
/* The families with such an address now, as the answers take them:
 * MM_TUNNEL_ADDRS_KNOWN | MM_FAMILY_ bits (policy/privacy.h); 0 when the
 * host side does not run.  A change of it publishes a new view. */
unsigned host_tunnel_addrs(struct mmtrustd *d);

#endif
