/* XFRM addresses and selectors, shared by policies, states and events.
 *
 * The kernel's xfrm_address_t carries no family and its selector mixes
 * byte orders; these helpers convert to and from the project's own
 * struct mm_addr / mm_prefix (network byte order, family inside) so that
 * nothing above netlink/ sees a kernel structure. */
#ifndef MM_XFRM_SEL_H
#define MM_XFRM_SEL_H

#include <linux/xfrm.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/addr.h"

/* Room for mm_xfrm_sel_str(), with the NUL. */
#define MM_XFRM_SEL_STRLEN 160

/* A traffic selector.  family is AF_INET, AF_INET6 or AF_UNSPEC (0: the
 * kernel's "any family", then both prefixes are empty). */
struct mm_xfrm_sel {
	uint8_t family;
	struct mm_prefix src, dst;  /* host bits kept as the kernel holds them */
	uint8_t proto;              /* 0: any */
	uint16_t sport, sport_mask; /* host byte order */
	uint16_t dport, dport_mask;
	int32_t ifindex;
	uint32_t user;              /* free for the owner: mmtrust's tag */
};

void mm_xfrm_addr_get(int family, const xfrm_address_t *x, struct mm_addr *ret);
void mm_xfrm_addr_put(const struct mm_addr *a, xfrm_address_t *ret);

/* Kernel selector -> ours.  -EINVAL for a family other than 0/4/6 or a
 * prefix length beyond the family's width. */
int mm_xfrm_sel_get(const struct xfrm_selector *k, struct mm_xfrm_sel *ret);
void mm_xfrm_sel_put(const struct mm_xfrm_sel *s, struct xfrm_selector *ret);

/* Field by field, as the kernel compares selectors (user included). */
int mm_xfrm_sel_cmp(const struct mm_xfrm_sel *a, const struct mm_xfrm_sel *b);

/* "10.0.0.0/24 -> 192.0.2.0/24" plus " proto 17 sport 5060 ..." when set. */
const char *mm_xfrm_sel_str(const struct mm_xfrm_sel *s, char *buf, size_t len);

#endif
