/* The IKE side's SA table: what mmtrustd knows of each partner's tunnel,
 * and what follows when an SA is refused.  Pure: no I/O, no logging; ike.c
 * feeds it charon's events and the XFRM monitor's refusals and carries out
 * what it answers (log, tell the daemon core, terminate, initiate).
 *
 * The one rule that keeps the answers honest: a tunnel is "up" only while
 * the SAs it names exist.  When mmtrustd deletes an SA (mm_sa_judge said so)
 * and it is one of the tunnel's two SAs, the tunnel is down at once, charon
 * is told to terminate the IKE_SA that holds them (it still thinks the
 * CHILD_SA installed), and asked to initiate again when the partner still
 * wants a tunnel of ours. */
#ifndef MMTRUSTD_IKE_TUNNELS_H
#define MMTRUSTD_IKE_TUNNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy/sa.h"
#include "policy/table.h"

/* A partner's tunnel as the SA table knows it.  `up` means an installed
 * CHILD_SA whose authenticated remote identity is the partner's domain,
 * whose reqid is the partner's and whose SAs are between the partner's
 * gateway and our tunnel address (anything else is refused on sight). */
struct mm_tunnel_info {
	char domain[MM_DOMAIN_MAX + 1];
	bool up;
	uint32_t reqid, spi_in, spi_out;
	char remote_id[256];
	char remote_host[64];
	time_t since;
};

struct ike_tunnel {
	struct mm_tunnel_info info;
	char ike_state[24];
	uint32_t ike_id;         /* charon's IKE_SA unique id; 0 when none */
	uint64_t last_initiate;  /* CLOCK_MONOTONIC usec of our last initiate on acquire */
	bool listed;             /* seen in the list-sas being collected */
	char local_host[64];     /* our end of the SAs, as charon reports it */
	bool load_pending;       /* its connection waits to be (re)loaded in charon */
};

/* One row per partner of the table, sorted by domain. */
struct ike_tunnels {
	struct ike_tunnel *t;
	size_t n;
};

/* Rebuild the rows from the partner table, keeping what is known of
 * partners that stay with the same reqid (load_pending too; a removed
 * partner's row goes with it).  -ENOMEM (rows unchanged). */
int ike_tunnels_sync(struct ike_tunnels *ts, const struct mm_table *tb);
void ike_tunnels_clear(struct ike_tunnels *ts);
/* Borrowed row, NULL when the partner has none (NULL domain: NULL). */
struct ike_tunnel *ike_tunnels_find(const struct ike_tunnels *ts, const char *domain);

/* What an installed CHILD_SA tells. */
struct ike_child_up {
	uint32_t spi_in, spi_out, ike_id;
	time_t since;
	const char *remote_id, *remote_host, *local_host, *ike_state;  /* NULL: "" */
};
/* Record the CHILD_SA.  True when the answers change: the tunnel was down
 * or carried other SPIs (tell subscribers "sa-up"). */
bool ike_tunnel_set_up(struct ike_tunnel *t, const struct ike_child_up *c);
/* Forget the SAs.  True when it was up (tell subscribers "sa-down"). */
bool ike_tunnel_set_down(struct ike_tunnel *t);

/* What to do after mmtrustd deleted (refused) one SA. */
struct ike_refusal {
	struct ike_tunnel *tunnel;  /* the partner's row; NULL when none */
	bool down;                  /* it carried the tunnel: the tunnel is down */
	uint32_t terminate_ike_id;  /* charon's IKE_SA to terminate; 0: none */
	bool initiate;              /* ask charon for the partner's tunnel again */
};
/* judgement: mm_sa_judge's verdict on the SA (must be one that deletes);
 * spi: the deleted SA's.  An SA that is not one of the tunnel's current two
 * (a stranger's under the partner's reqid) leaves the tunnel as it is. */
void ike_refusal_plan(const struct ike_tunnels *ts, const struct mm_sa_judgement *judgement,
		      uint32_t spi, struct ike_refusal *ret);

#endif
