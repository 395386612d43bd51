/* The host's own addresses, which no partner may claim: mmtrustd's
 * [local] settings (our CSCF prefixes and our tunnel endpoints).
 *
 * The rules that need them (docs/admin-protocol.md, "Addresses") are
 * decided here for one partner; the table (mm_table_set_site) applies them
 * to every partner when the settings are attached (daemon start, reload)
 * and to every changed partner of every later change. */
#ifndef MM_SITE_H
#define MM_SITE_H

#include <stddef.h>

#include "addr.h"
#include "err.h"
#include "partner.h"

struct mm_site {
	const struct mm_prefix *locals;  /* [local] cscf, cscf_ims, cscf_non_ims */
	size_t n_locals;
	const struct mm_addr *tunnel;    /* [local] tunnel */
	size_t n_tunnel;
	/* kinds[i]: the peers locals[i] faces (MM_KIND_BIT()s); NULL: every
	 * prefix faces every kind. */
	const unsigned *local_kinds;
};

/* A copy of s in one allocation (the arrays follow the struct), freed with
 * free().  NULL on ENOMEM. */
struct mm_site *mm_site_dup(const struct mm_site *s);

/* Refuse p when it gets a tunnel (mm_partner_has_tunnel) and there are
 * cscf prefixes but none faces its kind: its policies would pair its
 * ranges with nothing and its charon connection would offer no local
 * traffic selector.  -EINVAL with err naming "kind".
 * Refuse p when one of its ranges overlaps (equals, is inside or holds) a
 * local prefix or holds a tunnel address, or one of its gateways is a
 * tunnel address or inside a local prefix.  -EEXIST (MM_ERR_CONFLICT) with
 * err naming ranges[i]/gateways[i], the partner and the [local] setting. */
int mm_site_check_partner(const struct mm_site *s, const struct mm_partner *p,
			  struct mm_err *err);

#endif
