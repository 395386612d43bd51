/* The CSCF query socket (query.c), served by a thread of its own from a
 * published view, so that no query waits for the main loop's admin,
 * store, netlink or VICI work.  It is given what it answers from; it
 * reads nothing of the daemon's other parts (the daemon core, mmtrustd.c,
 * builds each view). */
#ifndef MM_QUERY_H
#define MM_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "ike_tunnels.h"
#include "policy/table.h"

struct mm_query;

/* What one view holds; everything borrowed for the call. */
struct query_view_input {
	struct mm_table *table;              /* a reference is taken */
	const struct mm_tunnel_info *up;     /* the tunnels that are up, sorted by domain */
	size_t n_up;
	/* enforced[i]: the kernel enforces up[i]'s partner's in-policies
	 * (policy/privacy.h mm_inbound_facts.enforced); n_up entries */
	const bool *enforced;
	/* out_enforced[i]: the same for its out policies
	 * (mm_outbound_facts.enforced); n_up entries */
	const bool *out_enforced;
	struct mm_cscf_set cscf;             /* [local] cscf*: the in-policy's dst side */
	int untrusted;                       /* enum mm_untrusted_mode */
	bool require_dst;                    /* inbound must name dst */
	/* Our [local] tunnel addresses: MM_TUNNEL_ADDRS_ bits
	 * (policy/privacy.h; host_tunnel_addrs), 0: not known */
	unsigned tunnel_addrs;
};

/* Open the socket of cfg (query_socket "" : none, *ret NULL, 0) and start
 * its thread.  No answer but "not ready" until the first query_publish.
 * -errno. */
int query_start(const struct mm_config *cfg, struct mm_query **ret);
/* Stop the thread, close the socket, free; accepts NULL. */
void query_stop(struct mm_query *q);
/* Replace the view the answers come from (main thread).  -ENOMEM: the
 * answers stay on the previous view.  Accepts q NULL (0). */
int query_publish(struct mm_query *q, const struct query_view_input *in);
/* Add the query side's counts to an admin status (main thread):
 * answers.dst_other_kind {total, untracked} and, in each entry of
 * status.partners (by its "domain"), dst_other_kind: the inbound
 * messages answered "dst-other-kind" since start.  Accepts q NULL. */
void query_status(struct mm_query *q, json_t *status);
/* Tell subscribers (main thread): event is "sa-up", "sa-down",
 * "partner-added", ...; t (may be NULL) adds the SPIs when it is up.
 * Accepts q NULL. */
void query_notify(struct mm_query *q, const char *event, const char *domain,
		  const struct mm_tunnel_info *t);

#endif
