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
 * wants a tunnel of ours.  The same when someone else deletes one of them
 * from the kernel (charon does not notice): ike_tunnel_sa_gone records it
 * and, unless charon replaced or closed the CHILD_SA within a grace,
 * ike_tunnel_gone_confirm says the tunnel is down. */
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

#define IKE_KERNEL_SPIS 8

struct ike_tunnel {
	struct mm_tunnel_info info;
	char ike_state[24];
	uint32_t ike_id;         /* charon's IKE_SA unique id; 0 when none */
	uint64_t last_initiate;  /* CLOCK_MONOTONIC usec of our last initiate on acquire */
	bool listed;             /* seen in the list-sas being collected */
	char local_host[64];     /* our end of the SAs, as charon reports it */
	bool load_pending;       /* its connection waits to be (re)loaded in charon */
	/* One of the tunnel's current SPIs the kernel no longer holds (0:
	 * none): the tunnel goes down when it is still current after a grace
	 * (ike_tunnel_gone_confirm), so a rekey or close charon reports late
	 * never takes it down. */
	uint32_t gone_spi;
	uint64_t gone_at;        /* CLOCK_MONOTONIC usec: the grace ends (ike.c) */
	/* The last SPIs of the partner's reqid seen in the kernel (new SA
	 * events, SA dumps): only an SA seen there can be missed from a dump. */
	uint32_t kernel_spis[IKE_KERNEL_SPIS];
	unsigned kernel_next;
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

/* The kernel was seen holding an SA of the partner's reqid. */
void ike_tunnel_kernel_saw(struct ike_tunnel *t, uint32_t spi);
/* Whether it was (among the last IKE_KERNEL_SPIS seen). */
bool ike_tunnel_kernel_had(const struct ike_tunnel *t, uint32_t spi);
/* The kernel no longer holds the SA spi of the partner's reqid (deleted,
 * hard expiry, missing from a dump): true when it is one of the current
 * SPIs of the up tunnel -- recorded, to be confirmed after a grace.  An
 * old SPI (rekeyed away), SPI 0 or a down tunnel: false, nothing changes. */
bool ike_tunnel_sa_gone(struct ike_tunnel *t, uint32_t spi);
/* The grace is over: the recorded SPI when it is still one of the current
 * SPIs of the up tunnel (the SA went behind charon's back: the tunnel is
 * down), else 0 (charon replaced or closed the CHILD_SA meanwhile).  The
 * record is cleared either way. */
uint32_t ike_tunnel_gone_confirm(struct ike_tunnel *t);

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
