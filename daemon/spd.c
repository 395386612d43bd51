/* The SPD engine's top: sync, change set, repair, verify and status,
 * over the mirror (spd_mirror.c), the one classify (spd_classify.c) and
 * the apply queue (spd_apply.c).  See spd.h for the contracts. */
#include "spd_int.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- notes ---- */

static const char *const note_names[MM_SPD_NOTE__MAX] = {
	[MM_SPD_NOTE_KERNEL_ERROR] = "kernel-error",
	[MM_SPD_NOTE_PARTNER_ERROR] = "partner-error",
	[MM_SPD_NOTE_CONFLICT] = "conflict",
	[MM_SPD_NOTE_DRIFT] = "drift",
	[MM_SPD_NOTE_STALE] = "stale",
	[MM_SPD_NOTE_RESYNC] = "resync",
	[MM_SPD_NOTE_FIGHT] = "fight",
	[MM_SPD_NOTE_FIGHT_OVER] = "fight-over",
};

const char *mm_spd_note_kind_name(enum mm_spd_note_kind kind)
{
	return kind < MM_SPD_NOTE__MAX ? note_names[kind] : "?";
}

/* ---- fights (spd.h, "Drift fights") ---- */

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MM_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* The partner's fight record, or NULL. */
static struct fight *fight_find(const struct mm_spd *spd, uint32_t partner)
{
	const struct prec *pr = &spd->p[partner];
	struct fight *f;

	if (!pr->fight || pr->fight > spd->fights.n)
		return NULL;
	f = &spd->fights.v[pr->fight - 1];
	return strcmp(f->domain, pr->domain) == 0 ? f : NULL;
}

static bool fight_on(const struct mm_spd *spd, uint32_t partner)
{
	const struct fight *f = fight_find(spd, partner);

	return f && mm_backoff_fighting(&f->bo);
}

/* The partner's fight record, made when missing (NULL: no memory, the
 * partner is then repaired without back-off). */
static struct fight *fight_get(struct mm_spd *spd, uint32_t partner)
{
	struct fight *f = fight_find(spd, partner);
	struct fight n = { 0 };

	if (f || !spd->backoff.burst)
		return f;
	n.domain = strdup(spd->p[partner].domain);
	if (!n.domain)
		return NULL;
	if (VEC_PUSH(spd->fights, n) < 0) {
		free(n.domain);
		return NULL;
	}
	spd->p[partner].fight = (uint32_t)spd->fights.n;
	return &spd->fights.v[spd->fights.n - 1];
}

static void fight_drop(struct mm_spd *spd, size_t i)
{
	uint32_t x;

	free(spd->fights.v[i].domain);
	spd->fights.v[i] = spd->fights.v[--spd->fights.n];
	if (i < spd->fights.n && (x = spd_prec_find(spd, spd->fights.v[i].domain)) != NONE)
		spd->p[x].fight = (uint32_t)i + 1;
}

/* After a sync rebuilt the records: link them to their fights again; the
 * fights of partners gone end quietly. */
static void fights_relink(struct mm_spd *spd)
{
	for (size_t i = 0; i < spd->fights.n;) {
		uint32_t x = spd_prec_find(spd, spd->fights.v[i].domain);

		if (x == NONE) {
			fight_drop(spd, i);
			continue;
		}
		spd->p[x].fight = (uint32_t)++i;
	}
}

static void evidence_set(struct fight *f, int rank, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void evidence_set(struct fight *f, int rank, const char *fmt, va_list ap)
{
	if (rank < f->rank && mm_backoff_fighting(&f->bo))
		return;  /* keep the more telling one of this fight */
	f->rank = (uint8_t)rank;
	vsnprintf(f->evidence, sizeof(f->evidence), fmt, ap);
}

void spd_drift_evidence(struct mm_spd *spd, uint32_t partner, int rank, const char *fmt, ...)
{
	struct fight *f = fight_find(spd, partner);
	va_list ap;

	if (!f)
		return;
	va_start(ap, fmt);
	evidence_set(f, rank, fmt, ap);
	va_end(ap);
}

void spd_drift_seen(struct mm_spd *spd, uint32_t partner, int rank, const char *fmt, ...)
{
	struct fight *f = fight_get(spd, partner);
	va_list ap;

	if (!f)
		return;
	va_start(ap, fmt);
	evidence_set(f, rank, fmt, ap);
	va_end(ap);
	if (mm_backoff_drift(&f->bo, &spd->backoff, mono_now()) != MM_BACKOFF_RAISED)
		return;
	f->since_wall = (int64_t)time(NULL);
	spd->fights_raised++;
	spd_note(spd, MM_SPD_NOTE_FIGHT, partner, NULL, 0,
		 "%u repairs within %llu s: someone keeps changing its policies; its repairs "
		 "now back off (1 s, doubling, at most %llu s); evidence: %s",
		 f->bo.repairs, (unsigned long long)(spd->backoff.window / MM_USEC_PER_SEC),
		 (unsigned long long)(spd->backoff.max / MM_USEC_PER_SEC), f->evidence);
}

/* True when the partner's repair must wait at now. */
static bool held(const struct mm_spd *spd, uint32_t partner, uint64_t now)
{
	const struct fight *f = fight_find(spd, partner);

	return f && !mm_backoff_may_repair(&f->bo, now);
}

/* Partners repaired after drift: counted against their back-off. */
static void fights_repaired(struct mm_spd *spd, uint32_t partner, uint64_t now)
{
	struct fight *f = fight_get(spd, partner);

	spd->drift_repairs++;
	if (f)
		mm_backoff_repaired(&f->bo, &spd->backoff, now);
}

/* End the fights that have been quiet, forget the idle records. */
static void fights_settle(struct mm_spd *spd, uint64_t now)
{
	for (size_t i = 0; i < spd->fights.n; i++)
		spd->fights.v[i].pending = false;
	for (size_t i = 0; i < spd->repair.n; i++) {
		struct fight *f = fight_find(spd, spd->e[spd->repair.v[i]].partner);

		if (f)
			f->pending = true;
	}
	for (size_t i = 0; i < spd->fights.n;) {
		struct fight *f = &spd->fights.v[i];
		struct mm_backoff was = f->bo;
		uint32_t x = spd_prec_find(spd, f->domain);

		if (mm_backoff_settle(&f->bo, &spd->backoff, now, f->pending) == MM_BACKOFF_CLEARED)
			spd_note(spd, MM_SPD_NOTE_FIGHT_OVER, x, NULL, 0,
				 "over after %llu s and %u repairs (the last wait %llu s); no drift "
				 "for %llu s; last evidence: %s",
				 (unsigned long long)((now - was.since) / MM_USEC_PER_SEC), was.repairs,
				 (unsigned long long)(was.delay / MM_USEC_PER_SEC),
				 (unsigned long long)(spd->backoff.window / MM_USEC_PER_SEC),
				 f->evidence);
		if (!f->pending && mm_backoff_idle(&f->bo, &spd->backoff, now)) {
			fight_drop(spd, i);
			continue;
		}
		i++;
	}
}

void mm_spd_set_backoff(struct mm_spd *spd, const struct mm_backoff_cfg *cfg)
{
	spd->backoff = *cfg;
}

uint64_t mm_spd_repair_at(const struct mm_spd *spd)
{
	uint64_t now = mono_now(), at = UINT64_MAX;

	if (spd->need_full || spd->stale.n)
		return 0;
	for (size_t i = 0; i < spd->repair.n && at; i++) {
		uint32_t p = spd->e[spd->repair.v[i]].partner;
		const struct fight *f = fight_find(spd, p);

		if (!held(spd, p, now))
			at = 0;
		else if (f->bo.not_before < at)
			at = f->bo.not_before;
	}
	for (size_t i = 0; i < spd->fights.n; i++) {
		uint64_t q = mm_backoff_quiet_at(&spd->fights.v[i].bo, &spd->backoff);

		if (q < at)
			at = q;
	}
	return at;
}

int mm_spd_fight_get(const struct mm_spd *spd, size_t i, struct mm_spd_fight *ret)
{
	for (size_t k = 0; k < spd->fights.n; k++) {
		const struct fight *f = &spd->fights.v[k];

		if (!mm_backoff_fighting(&f->bo) || i--)
			continue;
		*ret = (struct mm_spd_fight){ .domain = f->domain, .since = f->since_wall,
					      .repairs = f->bo.repairs,
					      .backoff_s = (uint32_t)(f->bo.delay / MM_USEC_PER_SEC),
					      .evidence = f->evidence };
		return 0;
	}
	return -ENOENT;
}

void mm_spd_get_counters(const struct mm_spd *spd, struct mm_spd_counters *ret)
{
	struct mm_spd_counters c = { .drift_repairs = spd->drift_repairs,
				     .fights_raised = spd->fights_raised };

	for (size_t k = 0; k < spd->fights.n; k++)
		c.fights_active += mm_backoff_fighting(&spd->fights.v[k].bo);
	*ret = c;
}

void spd_note(struct mm_spd *spd, enum mm_spd_note_kind kind, uint32_t partner,
		 const struct mm_xfrm_policy *pol, int error, const char *fmt, ...)
{
	char msg[MM_SPD_MSG_MAX], ps[MM_XFRM_POLICY_STRLEN];
	struct mm_spd_note n = { .kind = kind, .error = error, .message = msg };
	va_list ap;

	if (!spd->note)
		return;
	/* A partner in a fight: its alarm says it, not a note per event. */
	if (kind == MM_SPD_NOTE_DRIFT && partner != NONE && fight_on(spd, partner))
		return;
	if (partner != NONE) {
		n.domain = spd->p[partner].domain;
		n.reqid = spd->p[partner].reqid;
	}
	if (pol) {
		n.policy = mm_xfrm_policy_str(pol, ps, sizeof(ps));
		if (!n.reqid && pol->n_tmpl)
			n.reqid = pol->tmpl[0].reqid;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	spd->note(&n, spd->note_ud);
}

static void report_reset(struct mm_spd_report *r)
{
	*r = (struct mm_spd_report){ 0 };
}

void mm_spd_report_done(struct mm_spd_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_drifted; i++)
		free(r->drifted[i]);
	free(r->drifted);
	report_reset(r);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Name the partners whose drifted policies are right again. */
static int collect_drift(struct mm_spd *spd, struct mm_spd_report *rep)
{
	uint64_t now = mono_now();
	size_t n = 0, k = 0;

	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (e->state == ENT_FREE || !e->drift)
			continue;
		if (e->state != ENT_INSYNC)
			continue;  /* not restored (yet): stays flagged */
		e->drift = false;
		if (!spd->p[e->partner].drift) {
			spd->p[e->partner].drift = true;
			n++;
		}
	}
	if (!n)
		return 0;
	rep->drifted = calloc(n, sizeof(*rep->drifted));
	if (!rep->drifted)
		return -ENOMEM;
	for (size_t i = 0; i < spd->n_p; i++) {
		if (!spd->p[i].domain || !spd->p[i].drift)
			continue;
		spd->p[i].drift = false;
		fights_repaired(spd, (uint32_t)i, now);
		rep->drifted[k] = strdup(spd->p[i].domain);
		if (!rep->drifted[k])
			return -ENOMEM;
		rep->n_drifted = ++k;
	}
	qsort(rep->drifted, rep->n_drifted, sizeof(char *), cmp_str);
	return 0;
}

static void count_conflicts(const struct mm_spd *spd, struct mm_spd_report *rep)
{
	rep->conflicts = spd->conf.n;
	for (size_t x = 0; x < spd->n_e; x++)
		if (spd->e[x].state == ENT_COLLIDED)
			rep->conflicts++;
}

/* Queue what entry x needs by its state: missing, an add; different (or
 * force: its owner or template changed), an update; else nothing. */
static int queue_entry(struct mm_spd *spd, uint32_t x, bool force, struct mm_spd_report *rep)
{
	switch (spd->e[x].state) {
	case ENT_MISSING:
		return spd_push_op(spd, OP_NEW, x);
	case ENT_DIFFERS:
		return spd_push_op(spd, OP_UPD, x);
	case ENT_INSYNC:
		if (force)
			return spd_push_op(spd, OP_UPD, x);
		rep->unchanged++;
		return 0;
	default:
		return 0;  /* free, or held by a squatter */
	}
}

/* Dump the SPD, compare it with the index, change only the difference.
 * With drift, policies that were right before and are not now are drift. */
static int full_pass(struct mm_spd *spd, bool drift, struct mm_spd_report *rep)
{
	uint64_t now = mono_now();
	struct scan sc = { .spd = spd };
	struct mm_nl_result res;
	int r;

	/* Events that predate the dump: handle them (they may be drift worth
	 * a spd_note); the dump then decides the state. */
	spd_drain(spd);
	spd->need_full = false;
	spd->index_lost = false;  /* the dump reads every index again */
	if (spd->conf.n) {
		sc.old = malloc(spd->conf.n * sizeof(*sc.old));
		if (!sc.old)
			return -ENOMEM;
		memcpy(sc.old, spd->conf.v, spd->conf.n * sizeof(*sc.old));
		sc.n_old = spd->conf.n;
		qsort(sc.old, sc.n_old, sizeof(*sc.old), spd_conflict_order);
	}
	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		e->prev = e->state;
		e->queued = false;
	}
	spd->repair.n = 0;  /* the comparison covers every queued repair */
	spd_scan_reset(&sc);
	r = mm_xfrm_policy_dump(spd->nl, spd_scan_one, spd_scan_reset, &sc, NULL, &res);
	spd->rebuilding = false;  /* read (or need_full says it is not) */
	free(sc.old);
	if (r < 0) {
		spd->need_full = true;
		spd_note(spd, MM_SPD_NOTE_KERNEL_ERROR, NONE, NULL, r,
			 "reading the SPD failed: %s%s%s", strerror(-r), res.extack[0] ? ": " : "",
			 res.extack);
		return r;
	}
	spd->ops.n = spd->dels.n = 0;
	/* At most one op per entry and per stale policy: reserve once. */
	if (spd_grow((void **)&spd->ops.v, &spd->ops.cap, spd->live_e + spd->stale.n,
		 sizeof(*spd->ops.v)) < 0)
		return -ENOMEM;
	spd_prefault(spd->ops.v, spd->ops.cap * sizeof(*spd->ops.v));
	for (size_t x = 0; drift && x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (e->state == ENT_FREE || e->state == ENT_COLLIDED)
			continue;
		if (e->prev == ENT_INSYNC && e->state != ENT_INSYNC) {
			struct prec *pr = &spd->p[e->partner];

			/* Counted, and noted once per partner below: a flush
			 * must not turn into one note per policy. */
			if (!pr->drift_n++)
				pr->drift_x = (uint32_t)x;
			e->drift = true;
		}
	}
	for (size_t i = 0; drift && i < spd->n_p; i++) {
		struct prec *pr = &spd->p[i];
		struct mm_xfrm_policy want;
		char ps[MM_XFRM_POLICY_STRLEN];

		if (!pr->domain || !pr->drift_n)
			continue;
		spd_entry_policy(spd, pr->drift_x, &want);
		spd_drift_seen(spd, (uint32_t)i, EVID_FULL,
			       "%u of its policies (%s among them) missing or changed at a full "
			       "comparison", pr->drift_n, mm_xfrm_policy_str(&want, ps, sizeof(ps)));
		spd_note(spd, MM_SPD_NOTE_DRIFT, (uint32_t)i, &want, 0,
			 "%u of its policies (this one among them) were deleted or changed outside "
			 "mmtrustd: restoring", pr->drift_n);
		pr->drift_n = 0;
	}
	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (e->state == ENT_FREE || e->state == ENT_COLLIDED)
			continue;
		/* A fighting partner's repair waits for its time (not a
		 * sync's: a new table is programmed at once). */
		if (drift && e->state != ENT_INSYNC && held(spd, e->partner, now)) {
			spd_queue_repair(spd, (uint32_t)x, false);
			continue;
		}
		r = queue_entry(spd, (uint32_t)x, false, rep);
		if (r < 0)
			return r;
	}
	r = spd_queue_stale(spd);
	if (r < 0)
		return r;
	r = spd_apply(spd, rep);
	if (r < 0)
		return r;
	count_conflicts(spd, rep);
	return drift ? collect_drift(spd, rep) : 0;
}

static int run(struct mm_spd *spd, int (*step)(struct mm_spd *, struct mm_spd_report *, void *),
	       void *arg, struct mm_spd_report *ret)
{
	struct mm_spd_report rep;
	int r;

	if (spd->phase != PH_IDLE)
		return -EBUSY;
	spd->phase = PH_STEP;
	report_reset(&rep);
	r = step(spd, &rep, arg);
	spd->phase = PH_IDLE;
	if (r < 0) {
		mm_spd_report_done(&rep);
		return r;
	}
	if (ret)
		*ret = rep;
	else
		mm_spd_report_done(&rep);
	return 0;
}

/* ---- whole table ---- */

struct sync_arg {
	const struct mm_partner *const *partners;
	size_t n;
};

/* Partner x wants a selector that partner owner has: left out. */
static void selector_taken(struct mm_spd *spd, uint32_t x, const struct mm_spd_want *w,
			   uint32_t owner)
{
	char msg[MM_SPD_MSG_MAX], s1[MM_ADDR_STRLEN], s2[MM_ADDR_STRLEN];

	snprintf(msg, sizeof(msg), "selector %s %s -> %s is already %s's: left out",
		 mm_xfrm_dir_name(w->dir), mm_prefix_str(&w->src, s1), mm_prefix_str(&w->dst, s2),
		 spd->p[owner].domain);
	spd_set_problem(spd, x, -EEXIST, msg);
	spd_note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, -EEXIST, "%s", msg);
}

/* Problems the desired state found for partner x. */
static void take_problems(struct mm_spd *spd, uint32_t x, const struct mm_spd_desired *d,
			  size_t index)
{
	for (size_t k = 0; k < d->n_problems; k++) {
		if (d->problems[k].partner != index)
			continue;
		spd_set_problem(spd, x, d->problems[k].error, d->problems[k].message);
		spd_note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, d->problems[k].error, "%s",
			 d->problems[k].message);
	}
}

/* Upper bound of the policies a partner can want (for reserving memory). */
static size_t partner_max_wants(const struct mm_spd_config *cfg, const struct mm_partner *p)
{
	size_t n = 0;

	for (size_t l = 0; l < cfg->n_locals; l++)
		for (size_t i = 0; i < p->n_ranges; i++)
			if (cfg->locals[l].prefix.addr.family == p->ranges[i].addr.family)
				n += cfg->locals[l].forward ? 3 : 2;
	return n;
}

/* The same result as mm_spd_compute(), built straight into the index one
 * partner at a time: the whole desired vector would double the peak
 * memory of a large table for nothing. */
static int sync_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	const struct sync_arg *a = data;
	struct mm_spd_desired scratch = { 0 };
	size_t total = 0;
	int r = -ENOMEM;

	for (size_t i = 0; i < a->n; i++)
		if (a->partners[i] && mm_partner_has_tunnel(a->partners[i]))
			total += partner_max_wants(&spd->cfg, a->partners[i]);
	/* A new table: rebuild the index from scratch.  What the kernel
	 * holds is read again by the full pass, so nothing is lost; until
	 * then the entries know nothing and no view may be built on them. */
	spd->rebuilding = true;
	spd_index_clear(spd);
	if (spd_index_reserve(spd, total, a->n) < 0)
		goto out;
	for (size_t i = 0; i < a->n; i++) {
		const struct mm_partner *p = a->partners[i];
		bool created;
		uint32_t x;

		if (!p)
			continue;
		x = spd_prec_get(spd, p->domain, &created);
		if (x == NONE)
			goto out;
		if (!created) {
			spd_note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, -EEXIST,
				 "the table names this domain twice: the second entry is ignored");
			continue;
		}
		spd_prec_fill(spd, x, p);
		if (!mm_partner_has_tunnel(p))
			continue;
		scratch.n_want = scratch.n_problems = 0;
		r = mm_spd_partner_wants(&spd->cfg, p, i, &scratch);
		if (r < 0)
			goto out;
		r = -ENOMEM;
		take_problems(spd, x, &scratch, i);
		for (size_t k = 0; k < scratch.n_want; k++) {
			const struct mm_spd_want *w = &scratch.want[k];
			uint32_t y = spd_entry_get(spd, w->dir, &w->src, &w->dst, x, &created);

			if (y == NONE)
				goto out;
			/* As in mm_spd_compute(): the earlier partner keeps it. */
			if (!created && spd->e[y].partner != x)
				selector_taken(spd, x, w, spd->e[y].partner);
		}
	}
	free(scratch.want);
	free(scratch.problems);
	scratch.want = NULL;
	scratch.problems = NULL;
	fights_relink(spd);
	r = full_pass(spd, false, rep);
out:
	/* Failed before the kernel was read: the index knows nothing, and
	 * only a full comparison may say anything is enforced again. */
	if (r < 0 && spd->rebuilding) {
		spd->rebuilding = false;
		spd->need_full = true;
	}
	free(scratch.want);
	free(scratch.problems);
	return r;
}

int mm_spd_sync(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		struct mm_spd_report *ret)
{
	struct sync_arg a = { partners, n };

	return run(spd, sync_step, &a, ret);
}

/* ---- change sets ---- */

struct change_arg {
	const struct mm_change *c;
	size_t n;
};

/* One changed partner while its change set is applied. */
struct changed {
	uint32_t x;          /* its record, NONE for an unknown partner removed */
	uint32_t old_reqid;  /* the reqid its policies had */
	bool retemplate;     /* reqid or template endpoints changed */
};

static const char *change_domain(const struct mm_change *c)
{
	return c->after ? c->after->domain : c->before ? c->before->domain : NULL;
}

/* Records of the changed partners: their entries marked (owner changed,
 * not claimed yet), their template and problems from the new partner. */
static int change_records(struct mm_spd *spd, const struct change_arg *a,
			  const struct mm_spd_desired *d, struct changed *ch)
{
	for (size_t i = 0; i < a->n; i++) {
		uint32_t x = spd_prec_find(spd, change_domain(&a->c[i]));

		ch[i] = (struct changed){ .x = x };
		if (x == NONE)
			continue;
		ch[i].old_reqid = spd->p[x].reqid;
		for (uint32_t e = spd->p[x].head; e != NONE; e = spd->e[e].next)
			spd->e[e].mark = true;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct mm_partner *p = a->c[i].after;
		struct prec old;
		bool created;

		if (!p) {
			if (ch[i].x != NONE)
				spd->p[ch[i].x].active = false;  /* removed: wants nothing */
			continue;
		}
		if (ch[i].x == NONE && (ch[i].x = spd_prec_get(spd, p->domain, &created)) == NONE)
			return -ENOMEM;
		old = spd->p[ch[i].x];
		spd_prec_fill(spd, ch[i].x, p);
		ch[i].retemplate = old.reqid != p->reqid || mm_addr_cmp(&old.tun, &spd->p[ch[i].x].tun) ||
				   mm_addr_cmp(&old.gw, &spd->p[ch[i].x].gw);
		take_problems(spd, ch[i].x, d, i);
	}
	return 0;
}

/* The desired state of every changed partner, computed together, against
 * the mirror, selector by selector.  A selector held by a changed partner
 * and wanted by another changed partner changes owner in place: an update
 * to the new reqid and template, never a delete (the old owner's change)
 * and an add (the new owner's) whose order decides the outcome.  A
 * selector an unchanged partner holds stays its (the table's overlap check
 * keeps this from happening). */
static int change_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	const struct change_arg *a = data;
	const struct mm_partner **after = calloc(a->n ? a->n : 1, sizeof(*after));
	struct changed *ch = calloc(a->n ? a->n : 1, sizeof(*ch));
	struct mm_spd_desired *d = NULL;
	int r = -ENOMEM;

	if (!after || !ch)
		goto out;
	for (size_t i = 0; i < a->n; i++)
		after[i] = a->c[i].after;
	r = mm_spd_compute(&spd->cfg, after, a->n, &d);
	if (r < 0)
		goto out;
	r = change_records(spd, a, d, ch);
	if (r < 0)
		goto out;
	spd->ops.n = spd->dels.n = 0;
	for (size_t k = 0; k < d->n_want; k++) {
		const struct mm_spd_want *w = &d->want[k];
		const struct changed *c = &ch[w->partner];
		uint32_t y = spd_entry_find(spd, w->dir, &w->src, &w->dst);
		bool created, moved = false;

		if (y == NONE) {
			y = spd_entry_get(spd, w->dir, &w->src, &w->dst, c->x, &created);
			r = y == NONE ? -ENOMEM : spd_push_op(spd, OP_NEW, y);
			if (r < 0)
				goto out;
			continue;
		}
		if (spd->e[y].partner != c->x) {
			if (!spd->e[y].mark) {
				selector_taken(spd, c->x, w, spd->e[y].partner);
				continue;
			}
			spd_entry_move(spd, y, c->x);
			moved = true;
		}
		spd->e[y].mark = false;
		r = queue_entry(spd, y, moved || c->retemplate, rep);
		if (r < 0)
			goto out;
	}
	/* What no changed partner wants any more goes, after the adds. */
	for (size_t i = 0; i < a->n; i++) {
		uint32_t x = ch[i].x;

		if (x == NONE)
			continue;
		for (uint32_t e = spd->p[x].head, next; e != NONE; e = next) {
			next = spd->e[e].next;
			if (!spd->e[e].mark)
				continue;
			if (ent_present(&spd->e[e])) {
				struct del dl = spd_del_of_entry(spd, e);

				dl.reqid = ch[i].old_reqid;
				if ((r = spd_push_del(spd, &dl)) < 0)
					goto out;
			}
			spd_entry_remove(spd, e);
		}
	}
	r = spd_apply(spd, rep);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < a->n; i++)
		if (!a->c[i].after && ch[i].x != NONE && spd->p[ch[i].x].domain &&
		    spd->p[ch[i].x].count == 0)
			spd_prec_remove(spd, ch[i].x);
	count_conflicts(spd, rep);
out:
	/* On failure marks may be left: a full comparison follows anyway. */
	if (r < 0)
		spd->need_full = true;
	mm_spd_desired_free(d);
	free(after);
	free(ch);
	return r;
}

int mm_spd_change(struct mm_spd *spd, const struct mm_change *changes, size_t n,
		  struct mm_spd_report *ret)
{
	struct change_arg a = { changes, n };

	for (size_t i = 0; i < n; i++) {
		const struct mm_change *c = &changes[i];

		if (!change_domain(c))
			return -EINVAL;
		if (c->before && c->after && strcmp(c->before->domain, c->after->domain) != 0)
			return -EINVAL;
	}
	return run(spd, change_step, &a, ret);
}

/* ---- drift ---- */

bool mm_spd_repair_pending(const struct mm_spd *spd)
{
	return spd->need_full || spd->repair.n > 0 || spd->stale.n > 0;
}

static int repair_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	int r = 0;

	uint64_t now = mono_now();
	size_t keep = 0;

	(void)data;
	if (spd->need_full) {
		r = full_pass(spd, true, rep);
		goto out;
	}
	spd->ops.n = spd->dels.n = 0;
	for (size_t i = 0; i < spd->repair.n; i++) {
		uint32_t x = spd->repair.v[i];
		struct entry *e = &spd->e[x];

		if (!e->queued)
			continue;
		if ((e->state == ENT_MISSING || e->state == ENT_DIFFERS) &&
		    held(spd, e->partner, now)) {
			spd->repair.v[keep++] = x;  /* its time comes (mm_spd_repair_at) */
			continue;
		}
		e->queued = false;
		if (e->state != ENT_MISSING && e->state != ENT_DIFFERS)
			continue;
		r = queue_entry(spd, x, false, rep);
		if (r < 0)
			return r;
	}
	spd->repair.n = keep;
	if ((r = spd_queue_stale(spd)) < 0)
		return r;
	r = spd_apply(spd, rep);
	if (r < 0)
		return r;
	count_conflicts(spd, rep);
	r = collect_drift(spd, rep);
out:
	if (r >= 0)
		fights_settle(spd, mono_now());
	return r;
}

int mm_spd_repair(struct mm_spd *spd, struct mm_spd_report *ret)
{
	return run(spd, repair_step, NULL, ret);
}

/* Does the mirror want exactly what the table wants: the same selectors,
 * each with the owner and template computed afresh?  1 yes, 0 no. */
static int mirror_agrees(const struct mm_spd *spd, const struct sync_arg *a)
{
	struct mm_spd_desired *d = NULL;
	int r = mm_spd_compute(&spd->cfg, a->partners, a->n, &d);

	if (r < 0)
		return r;
	r = d->n_want == spd->live_e;
	for (size_t k = 0; r && k < d->n_want; k++) {
		const struct mm_spd_want *w = &d->want[k];
		uint32_t x = spd_entry_find(spd, w->dir, &w->src, &w->dst);
		const struct prec *pr = x != NONE ? &spd->p[spd->e[x].partner] : NULL;
		bool out = w->dir == XFRM_POLICY_OUT;

		r = pr && strcmp(pr->domain, a->partners[w->partner]->domain) == 0 &&
		    pr->reqid == w->reqid && !mm_addr_cmp(&pr->tun, out ? &w->tsrc : &w->tdst) &&
		    !mm_addr_cmp(&pr->gw, out ? &w->tdst : &w->tsrc);
	}
	mm_spd_desired_free(d);
	return r;
}

static int verify_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	const struct sync_arg *a = data;
	int r;

	if (a->partners) {
		r = mirror_agrees(spd, a);
		if (r < 0)
			return r;
		if (r == 0) {
			spd_note(spd, MM_SPD_NOTE_RESYNC, NONE, NULL, 0,
				 "the engine's view of what is wanted disagreed with the table: "
				 "rebuilt from the table");
			return sync_step(spd, rep, data);
		}
	}
	return full_pass(spd, true, rep);
}

int mm_spd_verify(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		  struct mm_spd_report *ret)
{
	struct sync_arg a = { partners, n };

	return run(spd, verify_step, &a, ret);
}

/* ---- status ---- */

int mm_spd_status(const struct mm_spd *spd, const char *domain, struct mm_spd_status *ret)
{
	uint32_t x = spd_prec_find(spd, domain);
	struct mm_spd_status st = { 0 };
	const struct prec *pr;

	if (x == NONE)
		return -ENOENT;
	pr = &spd->p[x];
	st.reqid = pr->reqid;
	st.active = pr->active && !pr->error;
	st.error = pr->error;
	if (pr->message)
		snprintf(st.message, sizeof(st.message), "%s", pr->message);
	else if (!pr->active)
		snprintf(st.message, sizeof(st.message), "disabled or on the SEG path: no policies");
	for (uint32_t e = pr->head; e != NONE; e = spd->e[e].next) {
		const struct entry *en = &spd->e[e];

		st.expected++;
		st.present += ent_present(en);
		st.in_sync += en->state == ENT_INSYNC;
		st.conflicts += en->conflicts + (en->state == ENT_COLLIDED);
	}
	st.missing = st.expected - st.present;
	*ret = st;
	return 0;
}

bool mm_spd_view_ready(const struct mm_spd *spd)
{
	return !spd || !spd->rebuilding;
}

void mm_spd_enforced(const struct mm_spd *spd, const char *domain, bool *ret_in, bool *ret_out)
{
	uint32_t x = spd ? spd_prec_find(spd, domain) : NONE;
	size_t n[2] = { 0, 0 };      /* [0] in and fwd, [1] out */
	bool ok[2] = { false, false };

	/* Events lost, a flush, a failed exchange: the mirror may be wrong
	 * until the full comparison, and "enforced" is never a guess. */
	if (x != NONE && !spd->need_full && spd->p[x].active && !spd->p[x].error) {
		ok[0] = ok[1] = true;
		for (uint32_t e = spd->p[x].head; e != NONE; e = spd->e[e].next) {
			const struct entry *en = &spd->e[e];
			int o = en->dir == XFRM_POLICY_OUT;

			n[o]++;
			if (ok[o])
				ok[o] = en->state == ENT_INSYNC && !en->conflicts &&
					!spd_shadowed(spd, e);
		}
	}
	*ret_in = ok[0] && n[0] > 0;
	*ret_out = ok[1] && n[1] > 0;
}

bool mm_spd_inbound_enforced(const struct mm_spd *spd, const char *domain)
{
	bool in, out;

	mm_spd_enforced(spd, domain, &in, &out);
	return in;
}

bool mm_spd_outbound_enforced(const struct mm_spd *spd, const char *domain)
{
	bool in, out;

	mm_spd_enforced(spd, domain, &in, &out);
	return out;
}

void mm_spd_counts(const struct mm_spd *spd, size_t *ret_expected, size_t *ret_present,
		   size_t *ret_in_sync)
{
	size_t present = 0, in_sync = 0;

	for (size_t x = 0; x < spd->n_e; x++) {
		present += ent_present(&spd->e[x]);
		in_sync += spd->e[x].state == ENT_INSYNC;
	}
	if (ret_expected)
		*ret_expected = spd->live_e;
	if (ret_present)
		*ret_present = present;
	if (ret_in_sync)
		*ret_in_sync = in_sync;
}

size_t mm_spd_memory(const struct mm_spd *spd)
{
	size_t m = sizeof(*spd);

	m += spd->cap_e * sizeof(*spd->e);
	m += spd->eh ? (spd->eh_mask + 1) * sizeof(*spd->eh) : 0;
	m += spd->cap_p * sizeof(*spd->p);
	m += spd->ph ? (spd->ph_mask + 1) * sizeof(*spd->ph) : 0;
	for (size_t i = 0; i < spd->n_p; i++)
		if (spd->p[i].domain)
			m += strlen(spd->p[i].domain) + 1;
	m += spd->repair.cap * sizeof(*spd->repair.v) + spd->stale.cap * sizeof(*spd->stale.v);
	m += spd->conf.cap * sizeof(*spd->conf.v) + spd->ops.cap * sizeof(*spd->ops.v);
	m += spd->shadow.cap * sizeof(*spd->shadow.v);
	m += spd->dels.cap * sizeof(*spd->dels.v) + spd->pend.cap * sizeof(*spd->pend.v);
	return m;
}

/* ---- events and life cycle ---- */

/* Ask the reader for pending events; they come back through
 * mm_spd_handle_event.  Not re-entered: the reader's buffers are in use. */
void spd_drain(struct mm_spd *spd)
{
	if (!spd->drain || spd->draining)
		return;
	spd->draining = true;
	(void)spd->drain(spd->drain_ud);
	spd->draining = false;
}

static int handle_one(const struct mm_xfrm_event *ev, void *userdata)
{
	mm_spd_handle_event(userdata, ev);
	return 0;
}

int mm_spd_read_monitor(struct mm_spd *spd, struct mm_xfrm_monitor *mon)
{
	int r = mm_xfrm_monitor_read(mon, handle_one, spd);

	if (r == -ENOBUFS) {
		mm_spd_events_lost(spd);
		r = mm_xfrm_monitor_read(mon, handle_one, spd);
	}
	return r == -ENOBUFS ? 0 : r;
}

int mm_spd_new(const struct mm_spd_config *cfg, struct mm_nl *nl, mm_spd_drain_fn drain,
	       void *drain_ud, mm_spd_note_fn note_fn, void *userdata, struct mm_spd **ret)
{
	struct mm_spd *spd;
	int r;

	if (!nl)
		return -EINVAL;
	r = mm_spd_config_check(cfg, NULL);
	if (r < 0)
		return r;
	spd = calloc(1, sizeof(*spd));
	if (!spd)
		return -ENOMEM;
	spd->cfg = *cfg;
	if (cfg->n_locals) {
		spd->locals = malloc(cfg->n_locals * sizeof(*spd->locals));
		if (!spd->locals) {
			free(spd);
			return -ENOMEM;
		}
		for (size_t i = 0; i < cfg->n_locals; i++) {
			spd->locals[i] = cfg->locals[i];
			spd->locals[i].prefix = mm_spd_clean_prefix(&cfg->locals[i].prefix);
		}
	}
	spd->cfg.locals = spd->locals;
	spd->cfg.tunnel4 = mm_spd_clean_addr(&cfg->tunnel4);
	spd->cfg.tunnel6 = mm_spd_clean_addr(&cfg->tunnel6);
	spd->nl = nl;
	spd->portid = mm_nl_portid(nl);
	spd->drain = drain;
	spd->drain_ud = drain_ud;
	spd->note = note_fn;
	spd->note_ud = userdata;
	spd->free_e = spd->free_p = NONE;
	*ret = spd;
	return 0;
}

void mm_spd_free(struct mm_spd *spd)
{
	if (!spd)
		return;
	spd_index_clear(spd);
	free(spd->repair.v);
	free(spd->stale.v);
	free(spd->conf.v);
	free(spd->shadow.v);
	free(spd->ops.v);
	free(spd->dels.v);
	free(spd->pend.v);
	for (size_t i = 0; i < spd->fights.n; i++)
		free(spd->fights.v[i].domain);
	free(spd->fights.v);
	free(spd->locals);
	free(spd);
}
