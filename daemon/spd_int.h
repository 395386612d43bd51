/* Internals shared by the SPD engine's files (not for other parts):
 *   spd_mirror.c    the mirror: what the kernel holds of what we want,
 *                   indexed by selector and by partner (and the kernel's
 *                   policy index of each of ours)
 *   spd_classify.c  the one classify() of a kernel policy, used by the
 *                   dump and by the event path
 *   spd_apply.c     the apply queue: batched adds, updates and deletes
 *   spd.c           the top: sync, change set, repair, verify, status
 * The desired state is spd_desired.c (public, pure). */
#ifndef MM_SPD_INT_H
#define MM_SPD_INT_H

#include "spd.h"
#include "policy/grow.h"

#define NONE UINT32_MAX

/* What the kernel holds for one wanted policy.  A state, not flags: each
 * entry is in exactly one. */
enum ent_state {
	ENT_FREE,       /* slot unused */
	ENT_MISSING,    /* the kernel has no policy of ours with this identity */
	ENT_DIFFERS,    /* ours is there, with other content (template, priority) */
	ENT_INSYNC,     /* ours is there, exactly as wanted */
	ENT_COLLIDED,   /* a policy with our tag, not ours, holds the identity */
};

/* One wanted policy, kept small: the template lives in the partner record
 * and the priority follows from the prefixes. */
struct entry {
	struct mm_prefix src, dst;
	uint8_t dir;
	uint8_t state : 3;   /* enum ent_state */
	uint8_t prev : 3;    /* scratch for a full pass: the state before it */
	bool queued : 1;     /* in the repair queue */
	bool drift : 1;      /* changed by someone else since we last saw it right */
	bool mark : 1;       /* scratch for a change set: owner changed, unclaimed */
	uint16_t conflicts;  /* foreign policies on this selector */
	uint32_t partner;
	uint32_t next;       /* the partner's next entry, or the free list */
	uint32_t kindex;     /* the kernel's index of our policy, 0 unknown: read
				from a dump or an event, never guessed (see del) */
};

static inline bool ent_present(const struct entry *e)
{
	return e->state == ENT_DIFFERS || e->state == ENT_INSYNC;
}

struct prec {
	char *domain;        /* NULL: free slot */
	char *message;       /* why it cannot be programmed, NULL if it can */
	int error;
	uint32_t reqid;
	struct mm_addr tun, gw;
	uint32_t head;       /* first entry */
	uint32_t count;
	uint32_t next_free;
	uint32_t drift_n;    /* scratch: drifted policies found by a full pass */
	uint32_t drift_x;    /* scratch: one of them, for the note */
	uint32_t fight;      /* fights + 1 when the partner drifted lately, 0 none */
	bool active;
	bool drift;          /* scratch: collecting report.drifted */
};

/* A partner that drifted lately: its back-off and the other party's
 * evidence.  Linked from its prec by index (checked by domain: a sync
 * rebuilds the records, the fights stay). */
#define FIGHT_EVIDENCE_MAX 240
enum { EVID_NONE, EVID_DELETED, EVID_FULL, EVID_CHANGED, EVID_REPLACED };

struct fight {
	char *domain;
	struct mm_backoff bo;
	int64_t since_wall;
	uint8_t rank;        /* EVID_*: how telling the evidence is */
	bool pending;        /* scratch: a repair of it waits */
	char evidence[FIGHT_EVIDENCE_MAX];
};

/* A policy to delete, named by its kernel index when we know it, else by
 * its identity.
 *
 * Why by index: a delete by selector makes the kernel walk the policy's
 * whole inexact bin afterwards (see mm_xfrm_policy_encode_del), so a bulk
 * delete is quadratic (half of 40k policies: 8 s; 60k stale policies:
 * minutes in the kernel); by index it is O(1).
 *
 * Why that is safe: the kernel takes policy indexes from a per-namespace
 * counter that only moves forward (idx_generator += 8, skipping values in
 * use), so an index is not reused until about 2^29 more policies have been
 * created; a policy deleted and re-created by someone else comes back
 * under a new index.  We delete by an index only when we read it from the
 * kernel (a dump or a monitor event) for a policy we classified as ours,
 * and the index map follows the events: a policy that goes clears its
 * entry's index; an event that shows the index gone or held by a policy
 * that is not ours cancels a pending delete (index_event()); when events
 * were lost the indexes are not used until a full comparison has read
 * them again.  The kernel matches the index (which carries the direction),
 * type, mark and if_id, but not the selector (xfrm_policy_byid()), and our
 * own delete notifications are filtered out before we see them, so what a
 * delete removed cannot be checked afterwards: a by-index delete that
 * finds nothing (ENOENT, the policy went or was re-created meanwhile)
 * schedules a full comparison, which finds and deletes any survivor. */
enum { DEL_SEND, DEL_GONE, DEL_FOREIGN };

struct del {
	struct mm_xfrm_sel sel;
	uint8_t dir, type;
	uint8_t cancel;      /* DEL_SEND, or why it is not sent any more */
	bool has_mark;
	uint32_t mark, mark_mask, if_id;
	uint32_t index;      /* the kernel's index, 0: delete by identity */
	uint32_t reqid;
	uint32_t partner;    /* prec, NONE when it belongs to none */
};

/* A pending by-index delete, for looking it up by index during apply. */
struct pend {
	uint32_t index;
	uint32_t del;        /* into dels */
};

struct conflict {
	uint32_t entry;
	uint32_t index;      /* the foreign policy's kernel index */
	uint32_t priority;
	uint8_t dir;
};

/* A foreign policy that may shadow ours (spd_shadow_seen() says which):
 * the kernel takes the matching policy with the lowest priority value
 * whatever its selector's shape, so one that overlaps ours with a value <=
 * ours decides instead of ours for the traffic in the overlap. */
struct shadow {
	struct mm_prefix src, dst;  /* cleaned; ports and protocol ignored */
	uint32_t index;             /* the kernel's index: the key */
	uint32_t priority;
	uint8_t dir;
};

enum { OP_NEW, OP_UPD, OP_DEL };

struct op {
	uint32_t ref;        /* entry, or index into dels */
	uint8_t kind;
};

#define VEC(T) struct { T *v; size_t n, cap; }

struct mm_spd {
	struct mm_spd_config cfg;
	struct mm_spd_local *locals;
	struct mm_nl *nl;
	uint32_t portid;     /* nl's: events with it are our own */
	mm_spd_drain_fn drain;
	void *drain_ud;
	mm_spd_note_fn note;
	void *note_ud;

	struct entry *e;
	size_t n_e, cap_e;   /* slots, including free ones */
	uint32_t free_e;
	size_t live_e;
	uint32_t *eh;        /* open addressing: entry + 1, 0 empty */
	size_t eh_mask;

	struct prec *p;
	size_t n_p, cap_p;
	uint32_t free_p;
	uint32_t *ph;
	size_t ph_mask;
	size_t live_p;

	VEC(uint32_t) repair;
	VEC(struct del) stale;     /* ours, no partner: to delete */
	VEC(struct conflict) conf;
	VEC(struct shadow) shadow; /* foreign policies that may shadow ours */
	bool need_full;            /* a full comparison is due */
	VEC(struct fight) fights;  /* partners that drifted lately */
	struct mm_backoff_cfg backoff;
	uint64_t drift_repairs, fights_raised;

	/* One step at a time (a note or drain callback calling back in is
	 * refused). */
	enum { PH_IDLE, PH_STEP, PH_APPLY } phase;  /* PH_APPLY: requests in flight */

	VEC(struct op) ops;
	size_t op_base;            /* ops[op_base] is request 0 of the batch in flight */
	VEC(struct del) dels;
	VEC(struct pend) pend;     /* by-index dels sorted by index, built on demand */
	bool pend_built;
	bool index_lost;           /* events lost since the indexes were read */
	bool rebuilding;           /* index rebuilt, the kernel not read yet */
	struct mm_spd_report *rep;
	bool draining;             /* inside drain */
};

#define VEC_PUSH(vec, val) \
	(mm_grow((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) < 0 ? -ENOMEM : \
	 ((vec).v[(vec).n++] = (val), 0))

/* spd_mirror.c */
void spd_prefault(void *p, size_t len);
/* The old name of mm_grow(), still used by spd.c. */
static inline int spd_grow(void **v, size_t *cap, size_t need, size_t size)
{
	return mm_grow(v, cap, need, size);
}
int spd_index_reserve(struct mm_spd *spd, size_t entries, size_t partners);
uint32_t spd_entry_find(const struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
			const struct mm_prefix *dst);
uint32_t spd_entry_get(struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
		       const struct mm_prefix *dst, uint32_t partner, bool *ret_created);
void spd_entry_remove(struct mm_spd *spd, uint32_t x);
void spd_entry_move(struct mm_spd *spd, uint32_t x, uint32_t partner);
uint32_t spd_prec_find(const struct mm_spd *spd, const char *domain);
uint32_t spd_prec_get(struct mm_spd *spd, const char *domain, bool *ret_created);
void spd_prec_remove(struct mm_spd *spd, uint32_t x);
void spd_prec_fill(struct mm_spd *spd, uint32_t x, const struct mm_partner *p);
void spd_set_problem(struct mm_spd *spd, uint32_t x, int error, const char *message);
void spd_index_clear(struct mm_spd *spd);
void spd_entry_policy(const struct mm_spd *spd, uint32_t x, struct mm_xfrm_policy *p);

/* spd_classify.c */
enum mm_spd_class spd_classify(const struct mm_spd *spd, const struct mm_xfrm_policy *p,
			       uint32_t *ret_entry);
void spd_queue_repair(struct mm_spd *spd, uint32_t x, bool drift);
int spd_conflict_order(const void *x, const void *y);
int spd_shadow_seen(struct mm_spd *spd, const struct mm_xfrm_policy *p);
void spd_shadow_gone(struct mm_spd *spd, const struct mm_xfrm_policy *p);
bool spd_shadowed(const struct mm_spd *spd, uint32_t x);
struct scan {
	struct mm_spd *spd;
	struct conflict *old;  /* conflicts known before, sorted by (dir, index) */
	size_t n_old;
};
void spd_scan_reset(void *data);
int spd_scan_one(const struct mm_xfrm_policy *p, void *data);

/* spd_apply.c */
struct del spd_del_of(const struct mm_xfrm_policy *p, uint32_t partner);
struct del spd_del_of_entry(const struct mm_spd *spd, uint32_t x);
int spd_push_op(struct mm_spd *spd, uint8_t kind, uint32_t ref);
int spd_push_del(struct mm_spd *spd, const struct del *d);
int spd_apply(struct mm_spd *spd, struct mm_spd_report *rep);
int spd_queue_stale(struct mm_spd *spd);
void spd_index_event(struct mm_spd *spd, const struct mm_xfrm_policy *p, bool gone);
void spd_own_event(struct mm_spd *spd, const struct mm_xfrm_policy *p);

/* spd.c */
void spd_note(struct mm_spd *spd, enum mm_spd_note_kind kind, uint32_t partner,
	      const struct mm_xfrm_policy *pol, int error, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
void spd_drain(struct mm_spd *spd);
/* Drift of partner seen now (before its repair is queued): the back-off
 * counts it, the evidence (rank EVID_*) is kept when at least as telling
 * as what the fight has; may raise the fight (note FIGHT). */
void spd_drift_seen(struct mm_spd *spd, uint32_t partner, int rank, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Evidence only, for a partner that drifted lately (a foreign policy took
 * the place of one of its missing ones); no-op otherwise. */
void spd_drift_evidence(struct mm_spd *spd, uint32_t partner, int rank, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
