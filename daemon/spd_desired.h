/* The SPD engine's desired state: which policies the partner table asks
 * for.  Pure: a function of the partners and the configuration, no kernel,
 * no I/O; unit-tested without root (tests/unit/test_spd_desired.c).
 *
 * What is programmed.  For every partner with a tunnel of ours
 * (mm_partner_has_tunnel: enabled, path tunnel; MM_PATH_SEG partners get
 * nothing from us), for every pair (local prefix, partner range) of the
 * same family where the local prefix faces the partner's kind
 * (mm_cscf_faces, policy/privacy.h: [local] cscf faces every kind,
 * cscf_ims IMS partners only, cscf_non_ims non-IMS partners only):
 *   out  src local, dst range, tmpl ESP tunnel  our tunnel -> gateway
 *   in   src range, dst local, tmpl ESP tunnel  gateway -> our tunnel
 *   fwd  as in, when the local prefix is a network behind this host
 * with the partner's reqid, level required (the template is not optional),
 * action allow.  The template's endpoints are the partner's first gateway
 * (in the partner's order) of a family for which we have a tunnel address,
 * and our tunnel address of that family; the inner selector's family may
 * differ (XFRM allows IPv6 in IPv4 and the reverse).  A partner without
 * such a gateway gets no policies and a problem in the computed result.
 *
 * Priority inside the band: prio_base + 256 - (src_len + dst_len), so a
 * more specific selector always gets a smaller number, i.e. wins (the
 * kernel prefers lower priority values).  IPv4 policies use
 * [base + 192, base + 256], IPv6 [base, base + 256].  The default base,
 * MM_SPD_PRIO_BASE_DEFAULT (100000), puts our policies ahead of the
 * priorities strongSwan computes for policies it installs itself (several
 * hundred thousand) and behind the small numbers operators hand-set for
 * bypass rules.
 *
 * One selector, one owner: when two partners ask for the same (dir, src,
 * dst), the one earlier in the array given keeps it and the other gets an
 * -EEXIST problem.  The engine computes the desired state of a whole change
 * set at once with these functions, so the owner of a selector never
 * depends on the order in which partners are looked at. */
#ifndef MM_SPD_DESIRED_H
#define MM_SPD_DESIRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netlink/xfrm_policy.h"
#include "policy/addr.h"
#include "policy/err.h"
#include "policy/partner.h"

#define MM_SPD_TAG_DEFAULT 0x6d6d7472u   /* "mmtr": shown as uid 1835889778 */
#define MM_SPD_PRIO_BASE_DEFAULT 100000u
#define MM_SPD_PRIO_SPAN 257u            /* band: [base, base + 256] */
/* The same defaults as mmtrustd's configuration ([reqid] min, max). */
#define MM_SPD_REQID_MIN_DEFAULT 1000000u
#define MM_SPD_REQID_MAX_DEFAULT 1099999u
#define MM_SPD_MSG_MAX 256

struct mm_spd_local {
	struct mm_prefix prefix;  /* a CSCF address (/32, /128) or network */
	bool forward;             /* a network behind this host: also dir fwd */
	unsigned kinds;           /* MM_KIND_BIT()s: the partners it faces (never 0) */
};

struct mm_spd_config {
	const struct mm_spd_local *locals;  /* copied by mm_spd_new() */
	size_t n_locals;
	struct mm_addr tunnel4;   /* our IPv4 tunnel address; family 0: none */
	struct mm_addr tunnel6;   /* our IPv6 tunnel address; family 0: none */
	uint32_t prio_base;       /* band [prio_base, prio_base + 256] */
	uint32_t tag;             /* selector user field; never 0 */
	uint32_t reqid_min;       /* the reserved reqid range, inclusive */
	uint32_t reqid_max;
};

/* Defaults: no locals, no tunnel addresses, the default band, tag and
 * reqid range. */
void mm_spd_config_init(struct mm_spd_config *cfg);
/* -EINVAL with a reason in err (may be NULL) when the configuration is
 * unusable: tag 0, empty or inverted reqid range, a band that wraps, no
 * tunnel address, a tunnel address or local prefix of the wrong family,
 * a local prefix facing no kind of partner. */
int mm_spd_config_check(const struct mm_spd_config *cfg, struct mm_err *err);

/* The priority of our policy with these selector prefixes. */
uint32_t mm_spd_priority(const struct mm_spd_config *cfg, const struct mm_prefix *src,
			 const struct mm_prefix *dst);

/* The partner's template endpoints (our tunnel address, its gateway), as
 * described above; false when it has no usable gateway. */
bool mm_spd_template(const struct mm_spd_config *cfg, const struct mm_partner *p,
		     struct mm_addr *ret_tun, struct mm_addr *ret_gw);
/* Copies with the bytes past the family's width zeroed, so that addresses
 * and prefixes compare and hash as plain memory. */
struct mm_addr mm_spd_clean_addr(const struct mm_addr *a);
struct mm_prefix mm_spd_clean_prefix(const struct mm_prefix *p);

struct mm_spd_want {
	uint8_t dir;                /* XFRM_POLICY_OUT, _IN, _FWD */
	struct mm_prefix src, dst;  /* the selector */
	struct mm_addr tsrc, tdst;  /* the template's tunnel endpoints */
	uint32_t reqid;
	uint32_t priority;
	size_t partner;             /* index into the partner array given */
};

/* A partner that cannot be programmed (no usable gateway, reqid outside
 * the range, no range sharing a family with a local prefix facing its
 * kind, a selector
 * another partner already has).  Its policies are left out. */
struct mm_spd_problem {
	size_t partner;
	int error;                  /* -EINVAL, -ERANGE, -EEXIST, -ENOENT */
	char message[MM_SPD_MSG_MAX];
};

struct mm_spd_desired {
	struct mm_spd_want *want;   /* sorted by (dir, family, src, dst); unique */
	size_t n_want;
	struct mm_spd_problem *problems;
	size_t n_problems;
	size_t cap_want, cap_problems;  /* allocated */
};

/* Compute the desired policies of partners[0..n) (NULL entries are
 * skipped).  Partners that are disabled or use the SEG path contribute
 * nothing and are no problem.  Returns 0 with *ret set (free with
 * mm_spd_desired_free), -EINVAL for a bad configuration, -ENOMEM. */
int mm_spd_compute(const struct mm_spd_config *cfg, const struct mm_partner *const *partners,
		   size_t n, struct mm_spd_desired **ret);
void mm_spd_desired_free(struct mm_spd_desired *d);  /* accepts NULL */

/* Append one active partner's policies to d, unsorted and not checked
 * against other partners' (the engine's cold start builds its index this
 * way without the whole vector); index is stored in each want.  Problems
 * are appended too.  -ENOMEM. */
int mm_spd_partner_wants(const struct mm_spd_config *cfg, const struct mm_partner *p,
			 size_t index, struct mm_spd_desired *d);

/* The kernel policy for a selector and template; mm_spd_want_policy for
 * a want. */
void mm_spd_fill_policy(const struct mm_spd_config *cfg, uint8_t dir, const struct mm_prefix *src,
			const struct mm_prefix *dst, const struct mm_addr *tsrc,
			const struct mm_addr *tdst, uint32_t reqid, struct mm_xfrm_policy *ret);
void mm_spd_want_policy(const struct mm_spd_config *cfg, const struct mm_spd_want *w,
			struct mm_xfrm_policy *ret);

#endif
