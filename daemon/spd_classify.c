/* The one classification of a kernel policy, and what the engine does with
 * each class when it reads one: from a dump (spd_scan_one) or from an
 * event (mm_spd_handle_event).  Both paths call spd_classify(), so a
 * policy is never "ours" on one path and "foreign" on the other. */
#include "spd_int.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

bool mm_spd_is_ours(const struct mm_spd_config *cfg, const struct mm_xfrm_policy *p)
{
	if (p->sel.user != cfg->tag)
		return false;
	if (p->priority < cfg->prio_base || p->priority - cfg->prio_base >= MM_SPD_PRIO_SPAN)
		return false;
	if (p->n_tmpl == 0)
		return false;
	for (unsigned i = 0; i < p->n_tmpl; i++)
		if (p->tmpl[i].reqid < cfg->reqid_min || p->tmpl[i].reqid > cfg->reqid_max)
			return false;
	return true;
}

static uint32_t usable_index(const struct mm_xfrm_policy *p)
{
	return mm_xfrm_policy_has_index(p) ? p->index : 0;
}

/* A selector of the shape we install: addresses only. */
static bool plain_selector(const struct mm_xfrm_sel *s)
{
	return (s->family == AF_INET || s->family == AF_INET6) && !s->proto && !s->sport &&
	       !s->sport_mask && !s->dport && !s->dport_mask && !s->ifindex;
}

/* The entry whose kernel identity this policy has, if any. */
static uint32_t entry_of_identity(const struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	if (p->sel.user != spd->cfg.tag || !plain_selector(&p->sel) ||
	    p->type != XFRM_POLICY_TYPE_MAIN || p->has_mark || p->if_id || p->has_sec_ctx)
		return NONE;
	return spd_entry_find(spd, p->dir, &p->sel.src, &p->sel.dst);
}

/* The entry with this policy's direction and selector, user field aside. */
static uint32_t entry_of_selector(const struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	if (!plain_selector(&p->sel))
		return NONE;
	return spd_entry_find(spd, p->dir, &p->sel.src, &p->sel.dst);
}

enum mm_spd_class spd_classify(const struct mm_spd *spd, const struct mm_xfrm_policy *p,
			       uint32_t *ret_entry)
{
	uint32_t x = entry_of_identity(spd, p);
	struct mm_xfrm_policy want;

	*ret_entry = x;
	if (x != NONE) {
		if (!mm_spd_is_ours(&spd->cfg, p))
			return MM_SPD_COLLISION;
		spd_entry_policy(spd, x, &want);
		return mm_xfrm_policy_equal(p, &want) ? MM_SPD_INSYNC : MM_SPD_DRIFTED;
	}
	if (mm_spd_is_ours(&spd->cfg, p))
		return MM_SPD_STALE;
	*ret_entry = entry_of_selector(spd, p);
	return *ret_entry != NONE ? MM_SPD_CONFLICT : MM_SPD_FOREIGN;
}

enum mm_spd_class mm_spd_classify(const struct mm_spd_config *cfg, const struct mm_spd *spd,
				  const struct mm_xfrm_policy *p)
{
	uint32_t x;

	if (spd)
		return spd_classify(spd, p, &x);
	return mm_spd_is_ours(cfg, p) ? MM_SPD_OURS : MM_SPD_FOREIGN;
}

static const char *const class_names[MM_SPD_CLASS__MAX] = {
	[MM_SPD_FOREIGN] = "foreign", [MM_SPD_CONFLICT] = "conflict",
	[MM_SPD_COLLISION] = "collision", [MM_SPD_STALE] = "stale",
	[MM_SPD_INSYNC] = "in-sync", [MM_SPD_DRIFTED] = "drifted", [MM_SPD_OURS] = "ours",
};

const char *mm_spd_class_name(enum mm_spd_class c)
{
	return (unsigned)c < MM_SPD_CLASS__MAX ? class_names[c] : "?";
}

void spd_queue_repair(struct mm_spd *spd, uint32_t x, bool drift)
{
	struct entry *e = &spd->e[x];

	if (drift)
		e->drift = true;
	if (e->queued)
		return;
	if (VEC_PUSH(spd->repair, x) < 0) {
		/* Cannot remember it: the full comparison will find it. */
		spd->need_full = true;
		return;
	}
	e->queued = true;
}

static struct conflict *conflict_find(struct mm_spd *spd, uint8_t dir, uint32_t index)
{
	for (size_t i = 0; i < spd->conf.n; i++)
		if (spd->conf.v[i].dir == dir && spd->conf.v[i].index == index)
			return &spd->conf.v[i];
	return NULL;
}

static void conflict_note(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p)
{
	struct mm_xfrm_policy ours;

	spd_entry_policy(spd, x, &ours);
	spd_note(spd, MM_SPD_NOTE_CONFLICT, spd->e[x].partner, &ours, 0,
		 "a foreign policy (index %u, priority %u, uid %u) has the same selector; "
		 "left untouched, %s", p->index, p->priority, p->sel.user,
		 p->priority <= ours.priority ? "and it takes precedence over ours"
					      : "ours takes precedence");
}

static void collide_note(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p)
{
	struct mm_xfrm_policy ours;

	spd_entry_policy(spd, x, &ours);
	spd_note(spd, MM_SPD_NOTE_CONFLICT, spd->e[x].partner, &ours, 0,
		 "a policy with our tag but outside our priority band or reqid range "
		 "(index %u, priority %u) holds this selector; not overwritten, ours is missing",
		 p->index, p->priority);
}

static int add_conflict(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p)
{
	struct conflict c = { .entry = x, .index = p->index, .priority = p->priority,
			      .dir = p->dir };

	if (VEC_PUSH(spd->conf, c) < 0)
		return -ENOMEM;
	spd->e[x].conflicts++;
	return 0;
}

/* ---- shadows ----
 *
 * A foreign policy shadows one of ours when the kernel could pick it
 * instead of ours for traffic ours covers: same direction, both selector
 * prefixes overlapping (narrower, wider or partly; ports and protocol only
 * narrow it, so they are ignored) and a priority value <= ours.  Kept
 * here: every policy that is not ours (another tag or uid, outside our band
 * or reqid range), dir in, fwd or out, action allow (a block lets nothing
 * through in clear), with a priority value <= the highest of our band
 * (nothing worse can ever beat one of ours).  Counted whatever its type,
 * mark or security context, since the traffic may carry a matching mark or
 * label (fail closed); not with an if_id, since the kernel compares if_id
 * exactly and ours, with none, only decide traffic that carries none.
 * Conflicts (foreign policies on exactly our selector) are counted on the
 * entry as before, whatever their priority. */

static bool shadow_kind(const struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	return (p->dir == XFRM_POLICY_IN || p->dir == XFRM_POLICY_FWD ||
		p->dir == XFRM_POLICY_OUT) &&
	       (p->sel.family == AF_INET || p->sel.family == AF_INET6) &&
	       p->action == XFRM_POLICY_ALLOW && !p->if_id &&
	       p->priority <= spd->cfg.prio_base + (MM_SPD_PRIO_SPAN - 1) &&
	       !mm_spd_is_ours(&spd->cfg, p);
}

static struct shadow *shadow_find(struct mm_spd *spd, uint8_t dir, uint32_t index)
{
	for (size_t i = 0; i < spd->shadow.n; i++)
		if (spd->shadow.v[i].dir == dir && spd->shadow.v[i].index == index)
			return &spd->shadow.v[i];
	return NULL;
}

/* A policy added or changed (event or dump): keep, update or drop it.
 * -ENOMEM when it cannot be kept (the caller fails closed). */
int spd_shadow_seen(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	struct shadow *s = shadow_find(spd, p->dir, p->index);
	struct shadow n;

	if (!shadow_kind(spd, p)) {
		if (s)
			*s = spd->shadow.v[--spd->shadow.n];
		return 0;
	}
	n = (struct shadow){ .src = mm_spd_clean_prefix(&p->sel.src),
			     .dst = mm_spd_clean_prefix(&p->sel.dst), .index = p->index,
			     .priority = p->priority, .dir = p->dir };
	if (s) {
		*s = n;
		return 0;
	}
	return VEC_PUSH(spd->shadow, n);
}

void spd_shadow_gone(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	struct shadow *s = shadow_find(spd, p->dir, p->index);

	if (s)
		*s = spd->shadow.v[--spd->shadow.n];
}

/* True when a kept foreign policy shadows entry x (see above). */
bool spd_shadowed(const struct mm_spd *spd, uint32_t x)
{
	const struct entry *e = &spd->e[x];
	uint32_t prio = spd->shadow.n ? mm_spd_priority(&spd->cfg, &e->src, &e->dst) : 0;

	for (size_t i = 0; i < spd->shadow.n; i++) {
		const struct shadow *s = &spd->shadow.v[i];

		if (s->dir == e->dir && s->priority <= prio &&
		    mm_prefix_overlaps(&s->src, &e->src) && mm_prefix_overlaps(&s->dst, &e->dst))
			return true;
	}
	return false;
}

/* ---- the event path ---- */

/* The reqid of a policy's first template, 0 without one (evidence). */
static uint32_t first_reqid(const struct mm_xfrm_policy *p)
{
	return p->n_tmpl ? p->tmpl[0].reqid : 0;
}

/* A policy not ours took the place of entry x while it is missing. */
static void replaced_evidence(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p,
			      const char *why)
{
	char ps[MM_XFRM_POLICY_STRLEN];
	struct mm_xfrm_policy want;

	if (spd->e[x].state == ENT_INSYNC)
		return;  /* ours stands beside it */
	spd_entry_policy(spd, x, &want);
	spd_drift_evidence(spd, spd->e[x].partner, EVID_REPLACED,
			   "%s deleted and replaced by a policy with priority %u, reqid %u, uid %u "
			   "(%s)", mm_xfrm_policy_str(&want, ps, sizeof(ps)), p->priority,
			   first_reqid(p), p->sel.user, why);
}

static void policy_seen(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	char ps[MM_XFRM_POLICY_STRLEN];
	uint32_t x;
	enum mm_spd_class c = spd_classify(spd, p, &x);
	struct entry *e = x != NONE ? &spd->e[x] : NULL;
	struct mm_xfrm_policy want;

	/* Not kept: enforced() could miss a shadow until a full comparison. */
	if (spd_shadow_seen(spd, p) < 0)
		spd->need_full = true;
	switch (c) {
	case MM_SPD_COLLISION:
		replaced_evidence(spd, x, p, "our tag outside our band or reqid range: not ours");
		if (e->state != ENT_COLLIDED)
			collide_note(spd, x, p);
		e->state = ENT_COLLIDED;
		e->kindex = 0;
		break;
	case MM_SPD_INSYNC:
		e->state = ENT_INSYNC;
		e->kindex = usable_index(p);
		break;
	case MM_SPD_DRIFTED:
		e->state = ENT_DIFFERS;
		e->kindex = usable_index(p);
		spd_entry_policy(spd, x, &want);
		spd_drift_seen(spd, e->partner, EVID_CHANGED,
			       "%s changed: now priority %u, reqid %u, uid %u (our marks, not our "
			       "content)", mm_xfrm_policy_str(&want, ps, sizeof(ps)), p->priority,
			       first_reqid(p), p->sel.user);
		spd_note(spd, MM_SPD_NOTE_DRIFT, e->partner, &want, 0,
			 "changed by someone else (index %u, priority %u): will be restored",
			 p->index, p->priority);
		spd_queue_repair(spd, x, true);
		break;
	case MM_SPD_STALE:
		/* Ours by its marks but wanted by no partner. */
		if (VEC_PUSH(spd->stale, spd_del_of(p, NONE)) < 0)
			spd->need_full = true;
		break;
	case MM_SPD_CONFLICT:
		replaced_evidence(spd, x, p, "not ours");
		if (!conflict_find(spd, p->dir, p->index) && add_conflict(spd, x, p) == 0)
			conflict_note(spd, x, p);
		break;
	default:
		break;
	}
}

static void policy_gone(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	char ps[MM_XFRM_POLICY_STRLEN];
	uint32_t x;
	enum mm_spd_class c = spd_classify(spd, p, &x);
	struct entry *e = x != NONE ? &spd->e[x] : NULL;
	struct mm_xfrm_policy want;
	struct conflict *cf;

	spd_shadow_gone(spd, p);
	switch (c) {
	case MM_SPD_COLLISION:
		if (e->state == ENT_COLLIDED) {
			/* The squatter left: ours can go in now. */
			e->state = ENT_MISSING;
			spd_queue_repair(spd, x, false);
		}
		break;
	case MM_SPD_INSYNC:
	case MM_SPD_DRIFTED:
		if (ent_present(e)) {
			e->state = ENT_MISSING;
			e->kindex = 0;
			spd_entry_policy(spd, x, &want);
			spd_drift_seen(spd, e->partner, EVID_DELETED, "%s deleted (index %u)",
				       mm_xfrm_policy_str(&want, ps, sizeof(ps)), p->index);
			spd_note(spd, MM_SPD_NOTE_DRIFT, e->partner, &want, 0,
				 "deleted by someone else (index %u): will be restored", p->index);
			spd_queue_repair(spd, x, true);
		}
		break;
	case MM_SPD_CONFLICT:
	case MM_SPD_FOREIGN:
		cf = conflict_find(spd, p->dir, p->index);
		if (cf) {
			if (spd->e[cf->entry].conflicts)
				spd->e[cf->entry].conflicts--;
			*cf = spd->conf.v[--spd->conf.n];
		}
		break;
	default:
		break;
	}
}

void mm_spd_events_lost(struct mm_spd *spd)
{
	if (!spd->need_full)
		spd_note(spd, MM_SPD_NOTE_RESYNC, NONE, NULL, -ENOBUFS,
			 "XFRM events were lost (receive buffer overflow): comparing with the kernel");
	spd->need_full = true;
	/* Any index we hold may have changed hands unseen. */
	spd->index_lost = true;
}

void mm_spd_handle_event(struct mm_spd *spd, const struct mm_xfrm_event *ev)
{
	/* Our own requests: we know what they did, all but a new policy's
	 * index (the socket filter drops the rest before they get here). */
	if (ev->portid && ev->portid == spd->portid) {
		if (ev->type == MM_XFRM_EV_POLICY_NEW || ev->type == MM_XFRM_EV_POLICY_UPD)
			spd_own_event(spd, &ev->policy);
		return;
	}
	switch (ev->type) {
	case MM_XFRM_EV_POLICY_NEW:
	case MM_XFRM_EV_POLICY_UPD:
		spd_index_event(spd, &ev->policy, false);
		policy_seen(spd, &ev->policy);
		break;
	case MM_XFRM_EV_POLICY_DEL:
		spd_index_event(spd, &ev->policy, true);
		policy_gone(spd, &ev->policy);
		break;
	case MM_XFRM_EV_POLICY_EXPIRE:
		if (ev->hard) {
			spd_index_event(spd, &ev->policy, true);
			policy_gone(spd, &ev->policy);
		}
		break;
	case MM_XFRM_EV_POLICY_FLUSH:
		if (!spd->need_full)
			spd_note(spd, MM_SPD_NOTE_RESYNC, NONE, NULL, 0,
				 "the SPD was flushed by someone else: comparing with the kernel");
		spd->need_full = true;
		spd->shadow.n = 0;  /* the comparison reads them again */
		break;
	default:
		break;  /* SAs and acquires are the core's and the IKE side's */
	}
}

/* ---- the dump path ---- */

int spd_conflict_order(const void *x, const void *y)
{
	const struct conflict *a = x, *b = y;

	if (a->dir != b->dir)
		return a->dir < b->dir ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

void spd_scan_reset(void *data)
{
	struct mm_spd *spd = ((struct scan *)data)->spd;

	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (e->state != ENT_FREE)
			e->state = ENT_MISSING;
		e->conflicts = 0;
		e->kindex = 0;
	}
	spd->conf.n = 0;
	spd->stale.n = 0;
	spd->shadow.n = 0;
}

int spd_scan_one(const struct mm_xfrm_policy *p, void *data)
{
	struct scan *sc = data;
	struct mm_spd *spd = sc->spd;
	uint32_t x;
	enum mm_spd_class c = spd_classify(spd, p, &x);
	struct entry *e = x != NONE ? &spd->e[x] : NULL;
	struct conflict key = { .index = p->index, .dir = p->dir };

	if (spd_shadow_seen(spd, p) < 0)
		return -ENOMEM;
	switch (c) {
	case MM_SPD_COLLISION:
		if (e->prev != ENT_COLLIDED)
			collide_note(spd, x, p);
		e->state = ENT_COLLIDED;
		return 0;
	case MM_SPD_INSYNC:
	case MM_SPD_DRIFTED:
		e->state = c == MM_SPD_INSYNC ? ENT_INSYNC : ENT_DIFFERS;
		e->kindex = usable_index(p);
		return 0;
	case MM_SPD_STALE:
		return VEC_PUSH(spd->stale, spd_del_of(p, NONE));
	case MM_SPD_CONFLICT:
		if (add_conflict(spd, x, p) < 0)
			return -ENOMEM;
		if (!sc->old || !bsearch(&key, sc->old, sc->n_old, sizeof(key), spd_conflict_order))
			conflict_note(spd, x, p);
		return 0;
	default:
		return 0;
	}
}
