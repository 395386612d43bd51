/* XFRM states (SAs, the SAD): decode, dump, delete.
 *
 * mmtrustd never creates SAs: charon does, under the reqid of the partner's
 * policies.  The daemon only reads them (status: is a partner's tunnel up?)
 * and deletes those of a partner that was removed or disabled.
 *
 * An SA is named by (destination, SPI, protocol, family, mark); deletes
 * use that, as the kernel requires.  struct mm_xfrm_sa is a plain value
 * copied out of the message; keys and algorithms are never decoded. */
#ifndef MM_XFRM_STATE_H
#define MM_XFRM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "nl.h"
#include "xfrm_sel.h"

struct mm_xfrm_sa {
	uint8_t family;          /* of src/dst: the outer family */
	struct mm_addr src, dst; /* outer addresses (tunnel endpoints) */
	uint32_t spi;            /* host byte order */
	uint8_t proto;           /* IPPROTO_ESP, ... */
	uint8_t mode;            /* XFRM_MODE_TUNNEL, ... */
	uint8_t flags;
	uint32_t reqid;
	struct mm_xfrm_sel sel;  /* inner traffic selector (often "any") */
	uint64_t bytes, packets; /* current lifetime */
	uint64_t add_time, use_time;
	uint32_t replay_window, replay, integrity_failed;  /* struct xfrm_stats */
	bool has_mark;
	uint32_t mark, mark_mask;
	uint32_t if_id;
};

/* Decode XFRM_MSG_NEWSA / UPDSA (dump or event), DELSA (event: the SA in
 * XFRMA_SA) and EXPIRE (the SA, plus *ret_hard when not NULL).  Unknown
 * attributes are skipped; -EINVAL malformed; -EPROTO another type. */
int mm_xfrm_sa_decode(const struct nlmsghdr *nlh, struct mm_xfrm_sa *ret, bool *ret_hard);

/* Dump the SAD.  Callback and errors as mm_xfrm_policy_dump(). */
typedef int (*mm_xfrm_sa_fn)(const struct mm_xfrm_sa *sa, void *userdata);
int mm_xfrm_sa_dump(struct mm_nl *nl, mm_xfrm_sa_fn each, mm_nl_reset_fn reset, void *userdata,
		    size_t *ret_bad, struct mm_nl_result *ret);

/* DELSA of the SA named by sa's dst, spi, proto, family (and mark). */
int mm_xfrm_sa_encode_del(void *buf, const struct mm_xfrm_sa *sa);
int mm_xfrm_sa_del(struct mm_nl *nl, const struct mm_xfrm_sa *sa, struct mm_nl_result *ret);

/* Delete every SA for which match(sa) is true (dump, then batched deletes).
 * An SA that vanished meanwhile (-ESRCH/-ENOENT: expired, or its owner
 * deleted it) counts as deleted.  *ret_deleted (may be NULL) gets the count;
 * returns 0, or the first failure's -errno with its extack in ret. */
typedef bool (*mm_xfrm_sa_match_fn)(const struct mm_xfrm_sa *sa, void *userdata);
int mm_xfrm_sa_delete_if(struct mm_nl *nl, mm_xfrm_sa_match_fn match, void *userdata,
			 size_t *ret_deleted, struct mm_nl_result *ret);
/* The same for all SAs carrying one reqid. */
int mm_xfrm_sa_delete_reqid(struct mm_nl *nl, uint32_t reqid, size_t *ret_deleted,
			    struct mm_nl_result *ret);

#endif
