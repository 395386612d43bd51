/* The SPD engine: makes the kernel's XFRM policies enforce the partner
 * table, and keeps them so.  What is wanted is spd_desired.h (pure); this
 * is the part that reads and writes the kernel.
 *
 * Ownership: a policy is ours when all three hold
 *   - its selector's user field (ip -s xfrm policy shows it as "uid") is
 *     the tag (default MM_SPD_TAG_DEFAULT, 1835889778 = 0x6d6d7472, "mmtr"),
 *   - its priority is inside our band [prio_base, prio_base + 256],
 *   - it has templates and every template's reqid is in our reqid range.
 * Nothing that is not ours is ever modified or deleted, and nothing is
 * ever flushed.  Every policy the engine reads, from a dump or from an
 * event, is put in one class by one function (mm_spd_classify): ours and
 * right, ours and drifted, ours and stale (no partner wants it), a
 * conflict (someone else's policy with the direction and selector of one
 * of ours, user field aside: reported, left alone, ours installed beside
 * it since the kernel tells them apart by the user field), a collision (a
 * policy with our tag that fails the band or reqid test and so occupies
 * our policy's kernel identity: reported, not overwritten, ours stays
 * missing), or foreign.
 *
 * Operators: ip(8) cannot name a policy with a non-zero user field by its
 * selector ("ip xfrm policy del src .. dst .. dir out" answers ENOENT);
 * use "ip xfrm policy del index N dir out" or "ip xfrm policy deleteall
 * src .. dst ..", which work, and which mmtrustd undoes as drift.
 *
 * Reconciling.  mm_spd_sync() computes the desired set from the table,
 * dumps the kernel, and changes only the difference: a restart with an
 * unchanged table sends no change request (only the dumps).
 * mm_spd_change() applies a whole change set as one step: the desired
 * policies of all changed partners are computed together and compared
 * with the mirror selector by selector, so a selector that changes owner
 * (a range moved or swapped between partners in one apply) is updated in
 * place to the new owner's reqid and template -- never deleted after an
 * add, whatever the order of the changes.  Events (mm_spd_handle_event)
 * mark our policies deleted or changed by someone else as drift;
 * mm_spd_repair() restores them and names the partners.  A lost event
 * (ENOBUFS) or a flush schedules a full comparison, and mm_spd_verify()
 * runs one as a periodic safety net.  SAs are not the engine's business:
 * daemon/sad.h deletes and counts them by policy/sa.h's verdict.
 *
 * Costs (kernel 6.18, 2 shared CPUs, bench/reconcile): a cold start of
 * 40k policies into a fresh namespace takes about 0.08-0.1 s, faster than
 * a minimal libmnl loader and within about 1.2-1.5x of a tuned one; a
 * full comparison of 100k policies with nothing to change 0.08 s; the
 * periodic verify of 40k, the desired state recomputed from the table
 * first, 0.05-0.1 s (netns test_ten_thousand).
 * Deletes go by the kernel's policy index whenever the engine read it
 * (from a dump or an event) for a policy it classified as ours, and by
 * selector otherwise.  By index a delete is O(1) in the kernel: a sync
 * that drops half of 40k policies takes about 0.06 s (ip -batch deleting
 * them by selector: 12 s).  By selector the kernel walks the policy's
 * inexact bin after each delete (see mm_xfrm_policy_encode_del), 1-5 ms
 * per policy at 60-100k policies.  An ack does not carry a new policy's
 * index: the engine learns it from its own add's event (the monitor lets
 * our own new and updated policies through, see
 * mm_xfrm_monitor_ignore_portid), so every path (start-up dump, change
 * set, repair, reload) deletes a policy it knows by index; only after lost
 * events, until the full comparison, may a delete go by selector
 * (report.by_selector counts them).  Why deleting by index is safe: see
 * struct del in spd_int.h.
 *
 * Events.  The engine does not read the XFRM monitor: the daemon core
 * does (one reader, several consumers) and hands each event to
 * mm_spd_handle_event().  The engine asks for pending events through the
 * drain callback before it relies on its kernel indexes and between
 * batches of requests (so the monitor cannot overflow during a bulk
 * load).  Of the events caused by the engine's own request socket only
 * the index of a new or updated policy of ours is taken.
 * The caller calls mm_spd_repair() at the time mm_spd_repair_at() names
 * (at least MM_SPD_REPAIR_DELAY_MS after the events, to coalesce them);
 * a partner in a drift fight waits longer (see "Drift fights" below).
 * Nothing here prints: problems reach
 * the caller through the note callback and the returned report.
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
#include "backoff.h"
#include "policy/table.h"
#include "spd_desired.h"

/* Kernel work per batch of requests: the batch size adapts (1 to
 * MM_NL_BATCH_MAX requests, from the measured cost per request; the first
 * batch of a step has MM_SPD_SLICE_FIRST) so that one batch takes about
 * this long, and the drain callback runs between batches.  So during any
 * step the caller gets control back at least every MM_SPD_SLICE_MS plus
 * one request's time (a delete by selector: up to a few ms at 100k
 * policies), except inside a dump (one dump of 100k policies: about 0.1 s). */
#define MM_SPD_SLICE_MS 20
#define MM_SPD_SLICE_FIRST 16

/* Drift must be repaired within a second; this leaves room to coalesce a
 * burst of events (a deleteall) into one repair. */
#define MM_SPD_REPAIR_DELAY_MS 100

/* True when the policy is ours (tag, band, reqid range; see above). */
bool mm_spd_is_ours(const struct mm_spd_config *cfg, const struct mm_xfrm_policy *p);

enum mm_spd_class {
	MM_SPD_FOREIGN,     /* not ours, on no selector of ours */
	MM_SPD_CONFLICT,    /* not ours, on the selector of one of ours (user field aside) */
	MM_SPD_COLLISION,   /* our tag, not ours, holds the kernel identity of one of ours */
	MM_SPD_STALE,       /* ours, wanted by no partner */
	MM_SPD_INSYNC,      /* ours, wanted, exactly as wanted */
	MM_SPD_DRIFTED,     /* ours, wanted, with other content */
	MM_SPD_OURS,        /* ours; whether wanted is unknown (no engine running) */
	MM_SPD_CLASS__MAX
};
struct mm_spd;
/* The one classification of a kernel policy (dump, events, audit).  spd
 * may be NULL (the engine does not run): then only ours/foreign by cfg. */
enum mm_spd_class mm_spd_classify(const struct mm_spd_config *cfg, const struct mm_spd *spd,
				  const struct mm_xfrm_policy *p);
/* "foreign", "conflict", "collision", "stale", "in-sync", "drifted", "ours". */
const char *mm_spd_class_name(enum mm_spd_class c);
/* The classes whose policies are ours. */
static inline bool mm_spd_class_ours(enum mm_spd_class c)
{
	return c == MM_SPD_STALE || c == MM_SPD_INSYNC || c == MM_SPD_DRIFTED || c == MM_SPD_OURS;
}

enum mm_spd_note_kind {
	MM_SPD_NOTE_KERNEL_ERROR,   /* the kernel refused a request: error, message = extack */
	MM_SPD_NOTE_PARTNER_ERROR,  /* a partner cannot be programmed (see mm_spd_problem) */
	MM_SPD_NOTE_CONFLICT,       /* a foreign policy has the selector of one of ours */
	MM_SPD_NOTE_DRIFT,          /* one of ours was deleted or changed by someone else */
	MM_SPD_NOTE_STALE,          /* one of ours belongs to no partner: deleted */
	MM_SPD_NOTE_RESYNC,         /* events were lost or flushed: full comparison next */
	MM_SPD_NOTE_FIGHT,          /* a drift fight began: the partner's repairs back off */
	MM_SPD_NOTE_FIGHT_OVER,     /* the fight is over (counts in the message) */
	MM_SPD_NOTE__MAX
};

/* Borrowed for the duration of the callback.  Callbacks (notes, drain)
 * run in the middle of the engine's work: they must not call back into it
 * other than mm_spd_handle_event / mm_spd_events_lost from drain (other
 * calls answer -EBUSY) and the read-only calls (mm_spd_status,
 * mm_spd_enforced and its two wrappers, mm_spd_classify, mm_spd_counts):
 * these answer from the mirror, which is consistent at every drain point
 * (a request sent counts once its ack is read; policies whose deletion is
 * queued have left the mirror already, a partner's policies being added
 * count as missing until their ack).  drain is where the caller serves
 * others during a long step (the slices above). */
struct mm_spd_note {
	enum mm_spd_note_kind kind;
	const char *domain;     /* the partner concerned, NULL when unknown */
	uint32_t reqid;         /* its reqid, 0 when unknown */
	const char *policy;     /* "out 10.0.0.0/24 -> 192.0.2.0/24", or NULL */
	int error;              /* -errno for KERNEL_ERROR / PARTNER_ERROR, else 0 */
	const char *message;    /* the kernel's extack or our explanation; never NULL */
};
typedef void (*mm_spd_note_fn)(const struct mm_spd_note *note, void *userdata);
/* Deliver the monitor's pending events (mm_spd_handle_event, and to any
 * other consumer); on ENOBUFS call mm_spd_events_lost.  Return ignored. */
typedef int (*mm_spd_drain_fn)(void *userdata);

const char *mm_spd_note_kind_name(enum mm_spd_note_kind kind);

/* What one reconciling step did. */
struct mm_spd_report {
	size_t added, updated, deleted;  /* requests that succeeded */
	size_t by_index, by_selector;    /* deletes sent by kernel index, by selector
					    (index unknown: the slow path) */
	size_t unchanged;                /* our policies already right */
	size_t failed;                   /* requests the kernel refused */
	size_t conflicts;                /* foreign policies on our selectors */
	char **drifted;                  /* domains repaired after drift, sorted, unique */
	size_t n_drifted;
};
/* Free what a report owns (the drifted list) and zero it; accepts NULL. */
void mm_spd_report_done(struct mm_spd_report *r);

/* Create an engine.  nl is borrowed (the request socket) and must outlive
 * it.  drain (may be NULL: no drift detection) delivers the monitor's
 * events, see above; the caller should also make the monitor drop the
 * events of nl's port id in the kernel (mm_xfrm_monitor_ignore_portid), so
 * that a bulk load does not flood it with its own echoes.  note (may be
 * NULL) receives the problems.  The caller checks first whether it may
 * program the kernel at all (mm_nl_probe(): -EPERM without CAP_NET_ADMIN)
 * and says so once.  -EINVAL for a bad configuration, -ENOMEM. */
int mm_spd_new(const struct mm_spd_config *cfg, struct mm_nl *nl, mm_spd_drain_fn drain,
	       void *drain_ud, mm_spd_note_fn note, void *userdata, struct mm_spd **ret);
void mm_spd_free(struct mm_spd *spd);

/* Make the kernel match the whole table: compute, dump, diff, apply the
 * difference, delete our stale policies.  Returns 0 (refusals of single
 * requests are counted in report.failed and noted) or -errno when the
 * kernel could not be read or the exchange failed (then a full comparison
 * is scheduled). */
int mm_spd_sync(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		struct mm_spd_report *ret);

/* Apply a change set (mm_table_apply's: before NULL = added, after NULL =
 * removed, both = changed, same domain) as one step, see above.  Only the
 * changed partners' policies are touched; a removed or disabled partner's
 * go, after the adds and updates.  Errors as mm_spd_sync(); -EINVAL when
 * a change names no partner or two different domains. */
int mm_spd_change(struct mm_spd *spd, const struct mm_change *changes, size_t n,
		  struct mm_spd_report *ret);

/* Handle one event from the monitor (policy events; SA and acquire events
 * are ignored here). */
void mm_spd_handle_event(struct mm_spd *spd, const struct mm_xfrm_event *ev);
/* Tell the engine that events were lost (the reader saw ENOBUFS). */
void mm_spd_events_lost(struct mm_spd *spd);
/* A reader for callers whose only consumer of events is the engine
 * (tests, benchmarks): mon's pending events to mm_spd_handle_event, a lost
 * event to mm_spd_events_lost.  Returns the events read or -errno. */
int mm_spd_read_monitor(struct mm_spd *spd, struct mm_xfrm_monitor *mon);

/* True when drift, stale policies or a pending full comparison wait for
 * mm_spd_repair() (also drift held back by a fight, see below). */
bool mm_spd_repair_pending(const struct mm_spd *spd);

/* Drift fights (backoff.h).  Each repair of a partner's drift is counted
 * against the partner; beyond cfg's burst within its window the next
 * drift begins a fight: the note FIGHT (once), and the partner's repairs
 * wait 1, 2, 4 ... s up to cfg.max after the previous one (a full
 * comparison holds them back the same way; a table sync does not).
 * Other partners are repaired at once.  The fight ends after a quiet
 * window with nothing pending: the note FIGHT_OVER (once).  While a
 * partner fights, its per-event DRIFT notes are not sent (the alarm says
 * it).  The engine keeps, per partner that drifted lately, the evidence:
 * a short description of the most telling event the other party caused
 * ("replaced by a policy with priority P, reqid R, uid U (not ours)" over
 * "changed" over "deleted").  Default: burst 0, no back-off. */
void mm_spd_set_backoff(struct mm_spd *spd, const struct mm_backoff_cfg *cfg);
/* When mm_spd_repair() should next run, CLOCK_MONOTONIC us: 0 as soon as
 * possible, a held repair's time, a fight's quiet end; UINT64_MAX never. */
uint64_t mm_spd_repair_at(const struct mm_spd *spd);

struct mm_spd_fight {
	const char *domain;     /* borrowed until the next engine call */
	int64_t since;          /* wall clock (time_t) the fight began */
	uint32_t repairs;       /* repairs since (the burst included) */
	uint32_t backoff_s;     /* the wait before the next repair */
	const char *evidence;   /* what the other party did, never NULL */
};
/* The i-th fight going on (0..): 0, or -ENOENT past the last. */
int mm_spd_fight_get(const struct mm_spd *spd, size_t i, struct mm_spd_fight *ret);

struct mm_spd_counters {
	uint64_t drift_repairs;  /* partner repairs after drift (each partner, each time) */
	uint64_t fights_raised;  /* fights begun since start */
	uint64_t fights_active;
};
void mm_spd_get_counters(const struct mm_spd *spd, struct mm_spd_counters *ret);
/* Restore what drifted, delete what became stale, or run the scheduled
 * full comparison.  report.drifted names the partners whose policies were
 * restored (log them).  Errors as mm_spd_sync(). */
int mm_spd_repair(struct mm_spd *spd, struct mm_spd_report *ret);
/* Full comparison with the kernel (the periodic safety net); drift found
 * is reported like mm_spd_repair().  partners[0..n) is the current table:
 * the desired state is computed from it afresh, and when the engine's own
 * view disagrees (which the change-set construction should make
 * impossible) that is noted (RESYNC) and the view rebuilt from the table
 * first, so a check never confirms a wrong desired state.  partners NULL:
 * compare with the engine's view only. */
int mm_spd_verify(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		  struct mm_spd_report *ret);

struct mm_spd_status {
	uint32_t reqid;
	bool active;        /* enabled, tunnel path, programmable */
	size_t expected;    /* policies we want for it */
	size_t present;     /* of those, in the kernel (ours) */
	size_t in_sync;     /* of those, with exactly the wanted content */
	size_t missing;     /* expected - present */
	size_t conflicts;   /* foreign policies on its selectors */
	int error;          /* why it cannot be programmed, 0 if it can */
	char message[MM_SPD_MSG_MAX];
};
/* Status of one partner from the engine's mirror of the kernel (kept
 * current by events).  -ENOENT for a domain the engine does not know. */
int mm_spd_status(const struct mm_spd *spd, const char *domain, struct mm_spd_status *ret);

/* True when the kernel drops the partner's cleartext towards our CSCFs:
 * the partner is programmable (active, no problem), it has at least one
 * wanted in policy, and every wanted in and fwd policy is ours and in
 * sync in the mirror, with no foreign policy on its selector (which might
 * take precedence) and none shadowing it: a foreign allow policy whose
 * selector overlaps it (narrower, wider, port-specific) with a priority
 * value <= its own (spd_classify.c, "shadows", says which count) -- read
 * from the mirror, kept current by events, so a
 * policy deleted by someone else reads false at once, before the repair.
 * out policies do not matter: they protect what we send, not what we
 * accept.  False for a domain the engine does not know, and for every
 * partner while a full comparison is due (events lost, a flush, a failed
 * exchange: the mirror may be wrong until then).  Cost: the
 * partner's policies (about ranges x cscf prefixes x 2), no status of the
 * whole table. */
/* Both directions in one walk of the partner's policies (the publish
 * path asks for both). */
void mm_spd_enforced(const struct mm_spd *spd, const char *domain, bool *ret_in, bool *ret_out);
/* False while a whole-table sync has rebuilt the engine's index and not
 * yet read the kernel (the drain callback runs then too): the entries
 * know nothing, and a view built on them would call every partner not
 * enforced.  The caller keeps the view it has until then. */
bool mm_spd_view_ready(const struct mm_spd *spd);
bool mm_spd_inbound_enforced(const struct mm_spd *spd, const char *domain);
/* The same for the partner's out policies: the kernel sends what our CSCF
 * prefixes address to the partner's ranges through its SA only (else in
 * clear text). */
bool mm_spd_outbound_enforced(const struct mm_spd *spd, const char *domain);

/* Totals: policies wanted and present (for status pages and tests). */
void mm_spd_counts(const struct mm_spd *spd, size_t *ret_expected, size_t *ret_present,
		   size_t *ret_in_sync);
/* Bytes of heap held by the index (for the benchmark's memory report). */
size_t mm_spd_memory(const struct mm_spd *spd);

#endif
