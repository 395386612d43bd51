/* mmtrustd's state, shared by its parts (one event loop, one thread). */
#ifndef MMTRUSTD_H
#define MMTRUSTD_H

#include <systemd/sd-event.h>

#include "config.h"
#include "host.h"
#include "ike_tunnels.h"
#include "jsonl.h"
#include "metrics.h"
#include "netlink/nl.h"
#include "netlink/xfrm_monitor.h"
#include "query.h"
#include "snapshot.h"
#include "spd.h"
#include "version.h"
#include "policy/store.h"
#include "policy/table.h"

struct mmtrustd {
	sd_event *ev;
	struct mm_config cfg;
	char config_path[4096];    /* "" when running on built-in defaults */
	struct instance *inst;     /* our claim on store, sockets, namespace */
	struct mm_store *store;
	struct mm_table *table;    /* the live table; replaced, never edited */
	struct mm_jsonl_server *admin;
	time_t started;

	/* The kernel side (kernel.c).  nl and mon are open whenever XFRM is
	 * reachable, also with the SPD side off: the monitor's events go to
	 * the SPD engine and to the IKE side.  spd is NULL when the SPD is
	 * not programmed; kernel_error then says why. */
	struct mm_spd_config spd_cfg;
	struct mm_spd_local spd_locals[MM_CONFIG_MAX_LOCAL];
	struct mm_nl *nl;
	struct mm_xfrm_monitor *mon;
	struct mm_spd *spd;
	sd_event_source *mon_src, *repair_timer, *verify_timer;
	bool mon_reading;          /* inside the monitor's read (not re-entered) */
	char kernel_error[640];

	/* The strongSwan side (ike.c); NULL clients when [ike] is off. */
	struct mm_ike *ike;

	/* The host's links, addresses, routes and rules (host.h). */
	struct host *host;

	/* The CSCF query socket (query.c), NULL when none; the core builds
	 * its views (a deferred source coalesces them, one per loop
	 * iteration). */
	struct mm_query *query;
	sd_event_source *publish_src;
	/* Each view also goes to the snapshot files (snapshot.h), NULL when
	 * none; the heartbeat timer keeps them fresh. */
	struct snapw *snap;
	sd_event_source *heartbeat_src;
	int snap_error;       /* the last snapshot write's -errno, 0: fine */
	/* The last view's tunnels and their enforcement (sorted by domain),
	 * to tell subscribers when a partner's enforcement changes. */
	struct mm_tunnel_info *pub_up;
	bool *pub_enforced;
	size_t pub_n;
	/* While a change set is carried into the kernel and charon, the
	 * partners it touches are withdrawn: published as not enforced (both
	 * directions), since their policies may be gone before the step ends.
	 * withdraw_all: a whole new table (reload), every partner. */
	const struct mm_change *withdrawn;
	size_t n_withdrawn;
	bool withdraw_all;

	/* What ends soon and what of it was logged (expiry.h). */
	struct expiry *expiry;

	/* The shared store's connection and table-syncs (fleet.h). */
	struct fleet *fleet;
};

/* kernel.c: XFRM inside the loop -- the SPD engine, the SA sweep by the
 * one verdict (sad.h), the monitor read once for every consumer. */
int kernel_start(struct mmtrustd *d);
/* The SPD engine's settings from a configuration; locals holds
 * MM_CONFIG_MAX_LOCAL entries and must outlive c. */
void kernel_spd_config(const struct mm_config *cfg, struct mm_spd_config *c,
		       struct mm_spd_local *locals);
void kernel_stop(struct mmtrustd *d);
/* Bring the kernel in line with a table change set, applied as one step
 * (changes NULL: the whole table, after start-up or reload); then delete
 * the SAs the verdict condemns. */
void kernel_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n);
/* Whether the kernel enforces the partner's policies now (spd.h
 * mm_spd_enforced): ret_in, it drops the partner's cleartext towards our
 * CSCFs; ret_out, it sends what our CSCFs address to the partner only
 * through its SA.  Both false whenever the SPD engine does not run.
 * Cheap: one walk of the partner's own policies. */
void kernel_enforced(struct mmtrustd *d, const char *domain, bool *ret_in, bool *ret_out);
/* Admin answers: per-partner status, and the kernel's XFRM state annotated
 * with the partner each entry belongs to. */
json_t *kernel_status(struct mmtrustd *d, const char *domain);
json_t *kernel_audit(struct mmtrustd *d);

/* ike.c: charon over VICI.  One connection per enabled tunnel partner,
 * named after its domain; the SA table (ike_tunnels.h) from charon's
 * events, every CHILD_SA and every SA in our reqid range judged by
 * policy/sa.h.  Whenever an SA is refused and it carried a partner's
 * tunnel, the tunnel is down at once (tunnel_changed), charon is told to
 * terminate its IKE_SA and, when the partner still wants a tunnel, to
 * initiate again. */
struct mm_ike;
/* How the IKE side reports to the daemon core (it calls nothing else of
 * the core's): a partner's tunnel came up or got new SAs (event "sa-up"),
 * or went down ("sa-down").  t is borrowed for the call. */
struct ike_ops {
	void (*tunnel_changed)(void *userdata, const struct mm_tunnel_info *t, const char *event);
};
/* 0 when [ike] is off or the clients are set up (charon is connected in the
 * loop, retried for ever); -errno when our certificate or key cannot be
 * read (logged) or the clients cannot be made. */
int ike_start(struct mmtrustd *d, const struct ike_ops *ops, void *userdata);
void ike_stop(struct mmtrustd *d);
/* Reread our certificate and key (renewed in place under the same paths):
 * 1 when they changed, 0 when not, -errno when they cannot be read (the
 * ones read before stay; logged).  The next whole-table change
 * (ike_table_changed with changes NULL, as on every reload) loads them and
 * every connection into charon. */
int ike_reload_credentials(struct mmtrustd *d);
void ike_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n);
/* An SA event from the XFRM monitor (the daemon core delivers them whether
 * the SPD side runs or not; userdata is the struct mmtrustd). */
int ike_xfrm_event(const struct mm_xfrm_event *ev, void *userdata);
/* The kernel side deleted an SA the verdict condemns (the SA sweep): the
 * same refusal as an XFRM event's -- if it carried a tunnel, the tunnel is
 * down at once and charon terminates (and initiates again). */
void ike_sa_deleted(struct mmtrustd *d, const struct mm_sa_judgement *j, uint32_t spi);
/* The kernel's SAs may have gone without an event naming them (events
 * lost, the periodic check): a tunnel whose current SAs the kernel was
 * seen holding and no longer holds goes down, as on a deletion event. */
void ike_kernel_sas_check(struct mmtrustd *d);
/* host.c says a [local] tunnel address became usable or stopped being
 * usable (host.h): tunnels whose local end is no longer usable on this
 * host are down at once and charon forgets their IKE_SAs; the partners
 * whose tunnel may come up now are initiated at once. */
void ike_local_changed(struct mmtrustd *d);
/* Add "ike" and each partner's "tunnel" to a status answer. */
void ike_status(struct mmtrustd *d, json_t *status);
/* A copy of the tunnels that are up, sorted by domain (*ret_n may be 0;
 * free *ret).  -ENOMEM. */
int ike_tunnels_up(struct mmtrustd *d, struct mm_tunnel_info **ret, size_t *ret_n);
/* For expiry.h, borrowed until the next change: the CRL file as the IKE
 * side read it (NULL when [ike] is off or no partner lists path), and our
 * certificate's PEM as read at start or reload (NULL when [ike] is off). */
struct crl_file;
const struct crl_file *ike_crl_file(struct mmtrustd *d, const char *path);
const char *ike_certificate_pem(struct mmtrustd *d, size_t *ret_len);

/* query.h: the CSCF query socket; it is handed views, it reads nothing
 * here.  The core publishes a new view (table, tunnels that are up, which
 * of their partners the kernel enforces, settings) after anything in it
 * changed: a table change, a tunnel change, a reload, and whatever the
 * kernel side reports through mmtrustd_view_changed. */
/* Something a view holds may have changed: a new view is published once,
 * at the end of this loop iteration (publish_src, mmtrustd.c). */
static inline void mmtrustd_view_changed(struct mmtrustd *d)
{
	/* In-process answers stop at once; they resume from the new view. */
	snapw_supersede(d->snap);
	if (d->publish_src)
		sd_event_source_set_enabled(d->publish_src, SD_EVENT_ONESHOT);
}

/* shrink.c: the shrink guard.  0 when a whole-table step to table t under
 * cfg deletes at most cfg's [spd] shrink_limit share of the policies
 * mmtrustd holds in the kernel (read now); else -EEXIST, err saying how
 * many, whose, and then `confirm` (how to go ahead anyway). */
int shrink_check(struct mmtrustd *d, const struct mm_config *cfg, const struct mm_table *t,
		 const char *confirm, struct mm_err *err);

/* Read the configuration file and the store again and carry them into
 * the kernel and charon (SIGHUP, `mmtrustctl reload`).  Refused (-errno,
 * err says why; the daemon keeps running on what it had) for a bad file
 * or store, or when the shrink guard objects and allow_shrink is false. */
int mmtrustd_reload(struct mmtrustd *d, bool allow_shrink, struct mm_err *err);

/* Publish now if a view is due (mmtrustd_view_changed): for the kernel
 * step's slices, during which the loop does not iterate (kernel.c). */
void mmtrustd_view_flush(struct mmtrustd *d);

/* The admin socket's request handler and access check (admin.c), and
 * which requests may be answered during a long step (jsonl.h
 * mm_jsonl_server_poll): those that change nothing and cost little. */
json_t *admin_handle(void *userdata, struct mm_jsonl_client *client,
		     const struct mm_jsonl_peer *peer, const json_t *req);
bool admin_readonly(void *userdata, const json_t *req);
int admin_authorize(void *userdata, const struct mm_jsonl_peer *peer);

/* Swap in a new table after the store committed it (mmtrustd.c): a view
 * with the change set's partners withdrawn is published at once, then
 * charon (ike_table_changed) and the kernel (kernel_table_changed) follow,
 * then a normal view (coalesced). */
void mmtrustd_table_changed(struct mmtrustd *d, struct mm_table *newt,
			    const struct mm_change *changes, size_t n);

/* Load the table from store for cfg and check it against cfg's [local]
 * addresses (start, reload, table-sync). */
int mmtrustd_load_table(const struct mm_config *cfg, struct mm_store *store,
			struct mm_table **ret, struct mm_err *err);
/* Take newt (a table version committed elsewhere; always consumed): the
 * partners that differ (*ret, the caller frees with mm_changes_free) are
 * withdrawn from the answers and carried into charon and the kernel, as
 * for a change made here. */
int mmtrustd_table_sync(struct mmtrustd *d, struct mm_table *newt, struct mm_change **ret,
			size_t *ret_n);

#endif
