/* The SAs: mmtrustd's kernel-side actions on the SAD, each decided by the
 * one verdict of policy/sa.h (mm_sa_judge).  charon installs SAs under the
 * partners' reqids; mmtrustd deletes an SA iff mm_sa_must_delete(verdict)
 * -- what no partner with a tunnel of ours may have (removed or disabled
 * partners, reqids no partner uses, SAs between the wrong ends) -- and
 * counts the legitimate ones per partner for status.  SAs outside our
 * reqid range are never touched.
 *
 * Independent of the SPD engine: the daemon core runs the sweep after
 * every table change and periodic check whenever the kernel is reachable,
 * also with [spd] enabled = no.  Errors: -errno, with the kernel's extack
 * in *res (may be NULL). */
#ifndef MM_SAD_H
#define MM_SAD_H

#include <stddef.h>

#include "netlink/nl.h"
#include "netlink/xfrm_state.h"
#include "policy/sa.h"

/* Our tunnel addresses, as mm_sa_judge wants them. */
struct mm_sad_view {
	const struct mm_table *table;
	const struct mm_addr *tunnel;
	size_t n_tunnel;
};

/* The verdict on one kernel SA (charon not asked). */
void mm_sad_judge(const struct mm_sad_view *v, const struct mm_xfrm_sa *sa,
		  struct mm_sa_judgement *ret);

/* Called for each SA about to be deleted, with its verdict (to log it). */
typedef void (*mm_sad_delete_fn)(const struct mm_xfrm_sa *sa, const struct mm_sa_judgement *j,
				 void *userdata);

/* Delete every SA whose verdict says it must go; each is first shown to
 * on_delete (may be NULL); *ret_deleted (may be NULL) gets the count. */
int mm_sad_sweep(struct mm_nl *nl, const struct mm_sad_view *v, mm_sad_delete_fn on_delete,
		 void *userdata, size_t *ret_deleted, struct mm_nl_result *res);

/* Count the legitimate SAs of every partner: counts[i] for
 * v->table->partners[i] (counts has v->table->n elements). */
int mm_sad_count(struct mm_nl *nl, const struct mm_sad_view *v, size_t *counts,
		 struct mm_nl_result *res);

#endif
