/* XFRM policies (SPD entries): encode, decode, dump.
 *
 * struct mm_xfrm_policy is a plain value: every field copied out of the
 * netlink message, no pointer into a receive buffer, so it outlives the
 * recv that produced it.
 *
 * Identity: the kernel tells policies apart by (type, dir, the whole
 * selector including its user field, mark, if_id, security context).
 * Priority, action and templates are content: UPDPOLICY replaces the
 * content of the policy with the same identity and keeps its index;
 * NEWPOLICY refuses with -EEXIST when that identity exists.
 *
 * Index: the kernel numbers every policy; the low three bits are its
 * direction (xfrm_policy_id2dir()).  Indexes come from a per-namespace
 * counter that only moves forward (idx_generator += 8, skipping values in
 * use), so an index is not handed out again until about 2^29 more policies
 * have been created.  The one exception: NEWPOLICY with a non-zero index
 * takes that index if it is free (its low bits must be the direction).
 * An update (UPDPOLICY of an existing identity) keeps the index. */
#ifndef MM_XFRM_POLICY_H
#define MM_XFRM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "nl.h"
#include "xfrm_sel.h"

/* Templates kept per policy (the kernel allows XFRM_MAX_DEPTH = 6; more
 * than this is decoded as -E2BIG, which only a foreign policy can hit). */
#define MM_XFRM_TMPL_MAX 4
#define MM_XFRM_POLICY_STRLEN (MM_XFRM_SEL_STRLEN + 48)

/* One SA template: what an SA must look like to satisfy the policy. */
struct mm_xfrm_tmpl {
	uint8_t family;        /* of src/dst: the outer (tunnel) family */
	struct mm_addr src;    /* tunnel endpoints (tunnel mode) */
	struct mm_addr dst;
	uint32_t spi;          /* host byte order; 0: any */
	uint8_t proto;         /* IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP */
	uint8_t mode;          /* XFRM_MODE_TUNNEL, ... */
	uint8_t share;
	bool optional;         /* false: "level required" */
	uint32_t reqid;
	uint32_t aalgos, ealgos, calgos;
};

struct mm_xfrm_policy {
	struct mm_xfrm_sel sel;
	uint8_t dir;           /* XFRM_POLICY_IN, _OUT, _FWD */
	uint8_t type;          /* XFRM_POLICY_TYPE_MAIN (0) or _SUB */
	uint8_t action;        /* XFRM_POLICY_ALLOW, _BLOCK */
	uint8_t flags;
	uint8_t share;
	uint32_t priority;     /* lower wins */
	uint32_t index;        /* kernel-assigned; 0 in requests: let it choose */
	uint64_t add_time;     /* from the current lifetime (decode only) */
	uint64_t use_time;
	bool has_mark;
	uint32_t mark, mark_mask;
	uint32_t if_id;
	bool has_sec_ctx;      /* a security context is set (not decoded) */
	uint8_t n_tmpl;
	struct mm_xfrm_tmpl tmpl[MM_XFRM_TMPL_MAX];
};

/* Encoders for mm_nl_batch()/mm_nl_request(): write one request into buf
 * (MM_NL_MSG_MAX bytes).  Return 0 or -EINVAL (malformed policy). */
/* NEWPOLICY (create, -EEXIST when the identity exists) or, with update,
 * UPDPOLICY (create or replace the identity's content). */
int mm_xfrm_policy_encode_add(void *buf, const struct mm_xfrm_policy *p, bool update);
/* DELPOLICY by identity (dir, type, selector, mark, if_id); p->index is
 * ignored.  -EOPNOTSUPP for a policy with a security context (its text is
 * not kept, so it cannot be named).
 * Cost: for a policy the kernel keeps in its inexact bins (any prefix
 * shorter than the hash thresholds, /32 and /128 by default), a delete by
 * selector walks the whole bin afterwards (xfrm_policy_inexact_prune_bin),
 * so it is O(policies in the bin): about 8 ms at 50k policies here, and
 * deleting half of 40k policies one by one took 8 s. */
int mm_xfrm_policy_encode_del(void *buf, const struct mm_xfrm_policy *p);
/* True when p->index can name p in a delete by index: non-zero and
 * carrying p->dir in its low bits (otherwise the kernel answers ENOENT). */
bool mm_xfrm_policy_has_index(const struct mm_xfrm_policy *p);
/* DELPOLICY by index: O(1) in the kernel, no bin walk (10k deletes in
 * 0.07 s where deletes by selector took seconds).  The kernel
 * (xfrm_policy_byid()) matches the index, the direction (in the index),
 * the type, the mark (value and mask, exactly) and if_id, all taken from p;
 * it does NOT compare the selector or the security context.  The selector
 * is filled in all the same, so the request reads right in a trace, but it
 * guards nothing: the caller must know that p->index still names the
 * policy it means (see the index rules above).  -EINVAL unless
 * mm_xfrm_policy_has_index(p); -EOPNOTSUPP as mm_xfrm_policy_encode_del(). */
int mm_xfrm_policy_encode_del_index(void *buf, const struct mm_xfrm_policy *p);
/* GETPOLICY by identity. */
int mm_xfrm_policy_encode_get(void *buf, const struct mm_xfrm_policy *p);

/* Decode XFRM_MSG_NEWPOLICY / UPDPOLICY (dump or event), DELPOLICY (event:
 * the policy travels in XFRMA_POLICY) and POLEXPIRE.  Unknown attributes
 * are skipped; malformed ones are -EINVAL; -EPROTO for another type. */
int mm_xfrm_policy_decode(const struct nlmsghdr *nlh, struct mm_xfrm_policy *ret);

/* Dump every policy of the namespace.  each() gets a decoded copy and
 * returns 0 or -errno to stop; reset() (may be NULL) is called before a
 * restarted dump (NLM_F_DUMP_INTR).  Messages that fail to decode are
 * skipped and counted in *ret_bad (may be NULL).  Errors as mm_nl_dump(). */
typedef int (*mm_xfrm_policy_fn)(const struct mm_xfrm_policy *p, void *userdata);
int mm_xfrm_policy_dump(struct mm_nl *nl, mm_xfrm_policy_fn each, mm_nl_reset_fn reset,
			void *userdata, size_t *ret_bad, struct mm_nl_result *ret);

/* Single requests, for tools and tests; ret (may be NULL) gets the extack. */
int mm_xfrm_policy_add(struct mm_nl *nl, const struct mm_xfrm_policy *p, bool update,
		       struct mm_nl_result *ret);
int mm_xfrm_policy_del(struct mm_nl *nl, const struct mm_xfrm_policy *p,
		       struct mm_nl_result *ret);
int mm_xfrm_policy_del_index(struct mm_nl *nl, const struct mm_xfrm_policy *p,
			     struct mm_nl_result *ret);
/* Fetch the policy with p's identity into *ret_policy (-ENOENT if none). */
int mm_xfrm_policy_get(struct mm_nl *nl, const struct mm_xfrm_policy *p,
		       struct mm_xfrm_policy *ret_policy, struct mm_nl_result *ret);

/* Same kernel identity (see above; a security context is compared only
 * as present/absent, since its text is not decoded). */
bool mm_xfrm_policy_same_id(const struct mm_xfrm_policy *a, const struct mm_xfrm_policy *b);
/* Same content too: priority, action, flags, share, templates.  Index and
 * lifetimes are the kernel's bookkeeping and are ignored. */
bool mm_xfrm_policy_equal(const struct mm_xfrm_policy *a, const struct mm_xfrm_policy *b);

const char *mm_xfrm_dir_name(uint8_t dir);  /* "in", "out", "fwd", "?" */
/* "out 10.0.0.0/24 -> 192.0.2.0/24", for messages. */
const char *mm_xfrm_policy_str(const struct mm_xfrm_policy *p, char *buf, size_t len);

#endif
