/* The SPD reconciler: makes the kernel's XFRM policies enforce the partner
 * table, and keeps them so.
 *
 * What is programmed.  For every enabled partner whose path is the tunnel
 * (MM_PATH_SEG partners get nothing from us), for every pair (local
 * prefix, partner range) of the same family:
 *   out  src local, dst range, tmpl ESP tunnel  our tunnel -> gateway
 *   in   src range, dst local, tmpl ESP tunnel  gateway -> our tunnel
 *   fwd  as in, when the local prefix is a network behind this host
 * with the partner's reqid, level required (the template is not optional),
 * action allow.  The template's endpoints are the partner's first gateway
 * (in the partner's order) of a family for which we have a tunnel address,
 * and our tunnel address of that family; the inner selector's family may
 * differ (XFRM allows IPv6 in IPv4 and the reverse).  A partner without
 * such a gateway gets no policies and an error in the computed result.
 *
 * Ownership: a policy is ours when all three hold
 *   - its selector's user field (ip -s xfrm policy shows it as "uid") is
 *     the tag (default MM_SPD_TAG_DEFAULT, 1835889778 = 0x6d6d7472, "mmtr"),
 *   - its priority is inside our band [prio_base, prio_base + 256],
 *   - it has templates and every template's reqid is in our reqid range.
 * Nothing that is not ours is ever modified or deleted, and nothing is
 * ever flushed.  A policy of someone else with the same direction and
 * selector as one of ours (user field aside) is a conflict: reported
 * (note, status), left alone; ours is installed beside it, since the
 * kernel tells the two apart by the user field.  A policy that carries
 * our tag but fails the band or reqid test occupies our policy's kernel
 * identity: reported, not overwritten, and ours stays missing.
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
 * Operators: ip(8) cannot name a policy with a non-zero user field by its
 * selector ("ip xfrm policy del src .. dst .. dir out" answers ENOENT);
 * use "ip xfrm policy del index N dir out" or "ip xfrm policy deleteall
 * src .. dst ..", which work, and which mmtrustd undoes as drift.
 *
 * Reconciling.  mm_spd_sync() computes the desired set from the table,
 * dumps the kernel, and changes only the difference: a restart with an
 * unchanged table sends no change request (only the dumps).  mm_spd_partner_changed()
 * applies one partner's change.  A removed or disabled partner loses its
 * policies and every SA carrying its reqid.  Events from the monitor
 * (mm_spd_process_events) mark our policies deleted or changed by someone
 * else as drift; mm_spd_repair() restores them and names the partners.
 * A lost event (ENOBUFS) or a flush schedules a full comparison, and
 * mm_spd_verify() runs one as a periodic safety net.
 *
 * Costs (kernel 6.18, 2 shared CPUs, bench/reconcile): a cold start of
 * 40k policies into a fresh namespace takes about 0.08-0.1 s, faster than
 * a minimal libmnl loader and within about 1.2-1.5x of a tuned one; a
 * full comparison of 100k policies with nothing to change 0.08 s.
 * Deletes go by the kernel's policy index whenever the reconciler read it
 * (from a dump or an event) for a policy it classified as ours, and by
 * selector otherwise.  By index a delete is O(1) in the kernel: a sync
 * that drops half of 40k policies takes about 0.06 s (ip -batch deleting
 * them by selector: 12 s).  By selector the kernel walks the policy's
 * inexact bin after each delete (see mm_xfrm_policy_encode_del), a few ms
 * per policy at 100k policies; that is left for our own policies added
 * since the last dump (an ack does not carry the new index), deleted a
 * partner at a time.  Why deleting by index is safe: see struct del in
 * spd.c.
 *
 * The caller owns the event loop: it polls mm_xfrm_monitor_fd() of the
 * monitor it gave us, calls mm_spd_process_events() when readable, and
 * calls mm_spd_repair() within MM_SPD_REPAIR_DELAY_MS when
 * mm_spd_repair_pending() says so.  Nothing here prints: problems reach the
 * caller through the note callback and the returned report.
 *
 * Errors: -errno; ret_ outputs set only on success; destructors accept
 * NULL.  Not thread-safe. */
#ifndef MM_SPD_H
#define MM_SPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netlink/nl.h"
#include "netlink/xfrm_monitor.h"
#include "netlink/xfrm_policy.h"
#include "policy/addr.h"
#include "policy/partner.h"

#define MM_SPD_TAG_DEFAULT 0x6d6d7472u   /* "mmtr": shown as uid 1835889778 */
#define MM_SPD_PRIO_BASE_DEFAULT 100000u
#define MM_SPD_PRIO_SPAN 257u            /* band: [base, base + 256] */
/* The same defaults as mmtrustd's configuration ([reqid] min, max). */
#define MM_SPD_REQID_MIN_DEFAULT 1000000u
#define MM_SPD_REQID_MAX_DEFAULT 1099999u
/* Drift must be repaired within a second; this leaves room to coalesce a
 * burst of events (a deleteall) into one repair. */
#define MM_SPD_REPAIR_DELAY_MS 100
#define MM_SPD_MSG_MAX 256

struct mm_spd_local {
	struct mm_prefix prefix;  /* a CSCF address (/32, /128) or network */
	bool forward;             /* a network behind this host: also dir fwd */
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
 * tunnel address, a tunnel address or local prefix of the wrong family. */
int mm_spd_config_check(const struct mm_spd_config *cfg, struct mm_err *err);

/* The priority of our policy with these selector prefixes. */
uint32_t mm_spd_priority(const struct mm_spd_config *cfg, const struct mm_prefix *src,
			 const struct mm_prefix *dst);
/* True when the policy is ours (tag, band, reqid range; see above). */
bool mm_spd_is_ours(const struct mm_spd_config *cfg, const struct mm_xfrm_policy *p);

/* ---- The desired state, computed without touching the kernel ---- */

struct mm_spd_want {
	uint8_t dir;                /* XFRM_POLICY_OUT, _IN, _FWD */
	struct mm_prefix src, dst;  /* the selector */
	struct mm_addr tsrc, tdst;  /* the template's tunnel endpoints */
	uint32_t reqid;
	uint32_t priority;
	size_t partner;             /* index into the partner array given */
};

/* A partner that cannot be programmed (no usable gateway, reqid outside
 * the range, no range sharing a family with a local prefix, a selector
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
};

/* Compute the desired policies of partners[0..n).  Partners that are
 * disabled or use the SEG path contribute nothing and are no problem.
 * Returns 0 with *ret set (free with mm_spd_desired_free), -EINVAL for a
 * bad configuration, -ENOMEM. */
int mm_spd_compute(const struct mm_spd_config *cfg, const struct mm_partner *const *partners,
		   size_t n, struct mm_spd_desired **ret);
void mm_spd_desired_free(struct mm_spd_desired *d);

/* The kernel policy a want stands for. */
void mm_spd_want_policy(const struct mm_spd_config *cfg, const struct mm_spd_want *w,
			struct mm_xfrm_policy *ret);

/* ---- The reconciler ---- */

enum mm_spd_note_kind {
	MM_SPD_NOTE_KERNEL_ERROR,   /* the kernel refused a request: error, message = extack */
	MM_SPD_NOTE_PARTNER_ERROR,  /* a partner cannot be programmed (see mm_spd_problem) */
	MM_SPD_NOTE_CONFLICT,       /* a foreign policy has the selector of one of ours */
	MM_SPD_NOTE_DRIFT,          /* one of ours was deleted or changed by someone else */
	MM_SPD_NOTE_STALE,          /* one of ours belongs to no partner: deleted */
	MM_SPD_NOTE_RESYNC,         /* events were lost or flushed: full comparison next */
	MM_SPD_NOTE__MAX
};

/* Borrowed for the duration of the callback.  Callbacks (notes, the event
 * hook) run in the middle of the reconciler's work: they must not call
 * back into it (such calls answer -EBUSY). */
struct mm_spd_note {
	enum mm_spd_note_kind kind;
	const char *domain;     /* the partner concerned, NULL when unknown */
	uint32_t reqid;         /* its reqid, 0 when unknown */
	const char *policy;     /* "out 10.0.0.0/24 -> 192.0.2.0/24", or NULL */
	int error;              /* -errno for KERNEL_ERROR / PARTNER_ERROR, else 0 */
	const char *message;    /* the kernel's extack or our explanation; never NULL */
};
typedef void (*mm_spd_note_fn)(const struct mm_spd_note *note, void *userdata);

const char *mm_spd_note_kind_name(enum mm_spd_note_kind kind);

/* What one reconciling step did. */
struct mm_spd_report {
	size_t added, updated, deleted;  /* requests that succeeded */
	size_t unchanged;                /* our policies already right */
	size_t failed;                   /* requests the kernel refused */
	size_t conflicts;                /* foreign policies on our selectors */
	size_t sa_deleted;
	char **drifted;                  /* domains repaired after drift, sorted, unique */
	size_t n_drifted;
};
/* Free what a report owns (the drifted list) and zero it; accepts NULL. */
void mm_spd_report_done(struct mm_spd_report *r);

struct mm_spd;

/* Create a reconciler.  nl is borrowed (the request socket) and must
 * outlive the reconciler; mon (may be NULL: no drift detection) likewise,
 * and from now on the reconciler reads it: events caused by our own
 * requests are dropped (mm_xfrm_monitor_ignore_portid), the others are
 * handled and then passed to the event hook.  note (may be NULL) receives
 * the problems.  The caller checks first whether it may program the
 * kernel at all (mm_nl_probe(): -EPERM without CAP_NET_ADMIN) and says so
 * once.  -EINVAL for a bad configuration, -ENOMEM. */
int mm_spd_new(const struct mm_spd_config *cfg, struct mm_nl *nl, struct mm_xfrm_monitor *mon,
	       mm_spd_note_fn note, void *userdata, struct mm_spd **ret);
void mm_spd_free(struct mm_spd *spd);

/* Other consumers of XFRM events (the SA -> partner map) get every event
 * the reconciler reads, after it handled it, because only one reader may
 * drain the socket.  The hook's return value is ignored. */
void mm_spd_set_event_hook(struct mm_spd *spd, mm_xfrm_event_fn hook, void *userdata);

/* Make the kernel match the whole table: compute, dump, diff, apply the
 * difference, delete our stale policies and the SAs of reqids in our range
 * that no partner with a tunnel of ours (enabled, path tunnel) uses.  Returns 0 (refusals of single requests are
 * counted in report.failed and noted) or -errno when the kernel could not be
 * read or the exchange failed (then a full comparison is scheduled). */
int mm_spd_sync(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		struct mm_spd_report *ret);

/* Apply one partner's change: old NULL = added, new NULL = removed, both =
 * changed (same domain).  Only that partner's policies are touched; when it
 * was removed or disabled, its policies and the SAs with its reqid are
 * deleted.  Errors as mm_spd_sync(); -EINVAL when old and new name
 * different domains. */
int mm_spd_partner_changed(struct mm_spd *spd, const struct mm_partner *old,
			   const struct mm_partner *new, struct mm_spd_report *ret);

/* Read and handle what the monitor has pending (call when its fd is
 * readable).  Returns the number of events handled; a lost-event overflow
 * is handled here (a full comparison is scheduled and noted), not returned. */
int mm_spd_process_events(struct mm_spd *spd);
/* Handle one event read elsewhere (tests, or a caller that reads itself). */
void mm_spd_handle_event(struct mm_spd *spd, const struct mm_xfrm_event *ev);
/* Tell the reconciler that events were lost (the caller read ENOBUFS). */
void mm_spd_events_lost(struct mm_spd *spd);

/* True when drift, stale policies or a pending full comparison wait for
 * mm_spd_repair(). */
bool mm_spd_repair_pending(const struct mm_spd *spd);
/* Restore what drifted, delete what became stale, or run the scheduled
 * full comparison.  report.drifted names the partners whose policies were
 * restored (log them).  Errors as mm_spd_sync(). */
int mm_spd_repair(struct mm_spd *spd, struct mm_spd_report *ret);
/* Full comparison with the kernel against the current desired state
 * (periodic safety net); drift found is reported like mm_spd_repair(). */
int mm_spd_verify(struct mm_spd *spd, struct mm_spd_report *ret);

struct mm_spd_status {
	uint32_t reqid;
	bool active;        /* enabled, tunnel path, programmable */
	size_t expected;    /* policies we want for it */
	size_t present;     /* of those, in the kernel (ours) */
	size_t in_sync;     /* of those, with exactly the wanted content */
	size_t missing;     /* expected - present */
	size_t conflicts;   /* foreign policies on its selectors */
	ssize_t sas;        /* SAs in the SAD with its reqid; -1: not counted */
	int error;          /* why it cannot be programmed, 0 if it can */
	char message[MM_SPD_MSG_MAX];
};
/* Status of one partner from the reconciler's view of the kernel (kept
 * current by events).  With count_sas, SAs are counted too: the SAD is
 * dumped once and counted for every partner at once, and the counts are
 * reused until an SA event arrives or a second has passed, so a status
 * loop over the whole table costs one dump.  -ENOENT for a domain the
 * reconciler does not know; a failed SAD dump is its -errno. */
int mm_spd_status(struct mm_spd *spd, const char *domain, bool count_sas,
		  struct mm_spd_status *ret);

/* Totals: policies wanted and present (for status pages and tests). */
void mm_spd_counts(const struct mm_spd *spd, size_t *ret_expected, size_t *ret_present,
		   size_t *ret_in_sync);
/* Bytes of heap held by the index (for the benchmark's memory report). */
size_t mm_spd_memory(const struct mm_spd *spd);

#endif
