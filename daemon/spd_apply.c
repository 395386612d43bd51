/* The apply queue: adds, updates and deletes sent in acked batches
 * (mm_nl_batch), adds and updates before deletes, deletes by the kernel's
 * policy index where it is known (see struct del in spd_int.h), in slices
 * of bounded kernel time with the drain callback between them. */
#include "spd_int.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void del_policy(const struct del *d, struct mm_xfrm_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->sel = d->sel;
	p->dir = d->dir;
	p->type = d->type;
	p->index = d->index;
	p->has_mark = d->has_mark;
	p->mark = d->mark;
	p->mark_mask = d->mark_mask;
	p->if_id = d->if_id;
	if (d->reqid) {
		p->n_tmpl = 1;
		p->tmpl[0].reqid = d->reqid;
	}
}

struct del spd_del_of(const struct mm_xfrm_policy *p, uint32_t partner)
{
	return (struct del){
		.sel = p->sel, .dir = p->dir, .type = p->type, .has_mark = p->has_mark,
		.mark = p->mark, .mark_mask = p->mark_mask, .if_id = p->if_id,
		.index = mm_xfrm_policy_has_index(p) ? p->index : 0,
		.reqid = p->n_tmpl ? p->tmpl[0].reqid : 0, .partner = partner,
	};
}

struct del spd_del_of_entry(const struct mm_spd *spd, uint32_t x)
{
	const struct entry *e = &spd->e[x];

	return (struct del){
		.sel = { .family = e->src.addr.family, .src = e->src, .dst = e->dst,
			 .user = spd->cfg.tag },
		.dir = e->dir, .type = XFRM_POLICY_TYPE_MAIN, .index = e->kindex,
		.reqid = spd->p[e->partner].reqid, .partner = e->partner,
	};
}

static int pend_order(const void *x, const void *y)
{
	const struct pend *a = x, *b = y;

	return (a->index > b->index) - (a->index < b->index);
}

/* During apply: the pending deletes by index, sorted, built when the
 * first event arrives (most applies see none, and then pay nothing). */
static int pend_build(struct mm_spd *spd)
{
	spd->pend.n = 0;
	for (size_t i = 0; i < spd->dels.n; i++) {
		if (!spd->dels.v[i].index)
			continue;
		if (VEC_PUSH(spd->pend, ((struct pend){ spd->dels.v[i].index, (uint32_t)i })) < 0)
			return -ENOMEM;
	}
	if (spd->pend.n > 1)
		qsort(spd->pend.v, spd->pend.n, sizeof(*spd->pend.v), pend_order);
	spd->pend_built = true;
	return 0;
}

static size_t cancel_pending(struct mm_spd *spd, uint32_t index, uint8_t why)
{
	struct pend key = { .index = index };
	const struct pend *hit;
	size_t k, n = 0;

	if (!spd->pend_built && pend_build(spd) < 0) {
		/* Cannot tell which: use no index until the next dump. */
		spd->index_lost = true;
		spd->need_full = true;
		return 0;
	}
	if (!spd->pend.n)
		return 0;  /* no delete by index pending (and bsearch wants a base) */
	hit = bsearch(&key, spd->pend.v, spd->pend.n, sizeof(key), pend_order);
	if (!hit)
		return 0;
	k = (size_t)(hit - spd->pend.v);
	while (k > 0 && spd->pend.v[k - 1].index == index)
		k--;
	for (; k < spd->pend.n && spd->pend.v[k].index == index; k++) {
		struct del *d = &spd->dels.v[spd->pend.v[k].del];

		if (d->cancel == DEL_SEND) {
			d->cancel = why;
			n++;
		}
	}
	return n;
}

/* An event about the policy with this index.  A delete by that index that
 * we still hold (in the stale list, or pending in the apply under way)
 * must not go out when the index no longer names a policy of ours: gone
 * (nothing left to delete; should ours come back, its own event brings
 * it with its new index) or now held by a policy that is not ours. */
void spd_index_event(struct mm_spd *spd, const struct mm_xfrm_policy *p, bool gone)
{
	uint8_t why;
	size_t n = 0;

	if (!mm_xfrm_policy_has_index(p))
		return;
	if (gone)
		why = DEL_GONE;
	else if (!mm_spd_is_ours(&spd->cfg, p))
		why = DEL_FOREIGN;
	else
		return;
	for (size_t i = 0; i < spd->stale.n;) {
		if (spd->stale.v[i].index == p->index) {
			spd->stale.v[i] = spd->stale.v[--spd->stale.n];
			n++;
		} else {
			i++;
		}
	}
	if (spd->phase == PH_APPLY)
		n += cancel_pending(spd, p->index, why);
	/* The kernel does not hand out an index twice, short of 2^29 new
	 * policies; only a creator asking for that very index can do this. */
	if (n && why == DEL_FOREIGN)
		spd_note(spd, MM_SPD_NOTE_CONFLICT, NONE, p, 0,
			 "index %u, which named a stale policy of ours, now names a foreign policy "
			 "(priority %u, uid %u): not deleted", p->index, p->priority, p->sel.user);
}

static int op_encode(void *buf, size_t i, void *data)
{
	struct mm_spd *spd = data;
	const struct op *o = &spd->ops.v[spd->op_base + i];
	struct mm_xfrm_policy p;

	if (o->kind == OP_DEL) {
		const struct del *d = &spd->dels.v[o->ref];

		if (d->cancel != DEL_SEND)
			return -ECANCELED;
		del_policy(d, &p);
		if (!d->index) {
			spd->rep->by_selector++;
			return mm_xfrm_policy_encode_del(buf, &p);
		}
		/* Events were lost: the index may have changed hands.  The
		 * full comparison the loss scheduled reads it again; going by
		 * selector instead would be right too, but in bulk it is the
		 * quadratic path. */
		if (spd->index_lost)
			return -ESTALE;
		spd->rep->by_index++;
		return mm_xfrm_policy_encode_del_index(buf, &p);
	}
	spd_entry_policy(spd, o->ref, &p);
	return mm_xfrm_policy_encode_add(buf, &p, o->kind == OP_UPD);
}

static void op_done(size_t i, const struct mm_nl_result *res, void *data)
{
	struct mm_spd *spd = data;
	const struct op *o = &spd->ops.v[spd->op_base + i];
	struct mm_spd_report *rep = spd->rep;
	struct mm_xfrm_policy p;

	if (o->kind == OP_DEL) {
		const struct del *d = &spd->dels.v[o->ref];

		/* Not sent: gone meanwhile, or its index is not ours now
		 * (noted by index_event), or deferred (index_lost). */
		if (res->error == -ECANCELED && d->cancel != DEL_SEND) {
			if (d->cancel == DEL_GONE)
				rep->deleted++;
			return;
		}
		if (res->error == -ESTALE && d->index)
			return;
		/* Already gone is what we wanted.  By index, though, ENOENT
		 * may also mean that it was re-created under a new index:
		 * only a dump can tell. */
		if (res->error == 0 || res->error == -ENOENT) {
			if (res->error == -ENOENT && d->index)
				spd->need_full = true;
			rep->deleted++;
			return;
		}
		rep->failed++;
		del_policy(d, &p);
		spd_note(spd, MM_SPD_NOTE_KERNEL_ERROR, d->partner, &p, res->error,
			 "delete refused: %s%s%s", strerror(-res->error),
			 res->extack[0] ? ": " : "", res->extack);
		return;
	}
	if (res->error == 0) {
		struct entry *e = &spd->e[o->ref];

		e->state = ENT_INSYNC;
		/* A new policy's index is not in the ack: our own event
		 * brings it (spd_own_event), delivered by the next drain.  An
		 * update keeps the index of the policy it replaces. */
		if (o->kind == OP_NEW)
			e->kindex = 0;
		if (o->kind == OP_NEW)
			rep->added++;
		else
			rep->updated++;
		return;
	}
	rep->failed++;
	if (res->error == -EEXIST) {
		/* Someone created this identity between our dump and our
		 * request: look again with a full comparison. */
		spd->need_full = true;
	}
	spd_entry_policy(spd, o->ref, &p);
	spd_note(spd, MM_SPD_NOTE_KERNEL_ERROR, spd->e[o->ref].partner, &p, res->error,
		 "%s refused: %s%s%s", o->kind == OP_NEW ? "add" : "update", strerror(-res->error),
		 res->extack[0] ? ": " : "", res->extack);
}

/* Our own policy events: the monitor lets the new and updated ones
 * through because they are the only way to learn a new policy's index (an
 * ack does not carry it), so that deleting it later is O(1).  Only the
 * index is taken: the ack already said what the request did.  Events are
 * read in the order the kernel sent them, so a later delete or change by
 * someone else still comes after this and clears the index again. */
void spd_own_event(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	uint32_t x;
	enum mm_spd_class c = spd_classify(spd, p, &x);

	if ((c == MM_SPD_INSYNC || c == MM_SPD_DRIFTED) && ent_present(&spd->e[x]) &&
	    mm_xfrm_policy_has_index(p))
		spd->e[x].kindex = p->index;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The next batch's size: as many requests as fit in MM_SPD_SLICE_MS at
 * the cost per request just measured (a delete by selector can cost
 * milliseconds, one by index microseconds), growing at most twofold per
 * batch so that one cheap batch does not make a long one. */
static size_t next_size(size_t sent, uint64_t took_ns)
{
	uint64_t per = took_ns / (sent ? sent : 1) + 1;
	uint64_t fit = MM_SPD_SLICE_MS * 1000000ULL / per;
	size_t n = fit < 2 * sent ? (size_t)fit : 2 * sent;

	return n < 1 ? 1 : n > MM_NL_BATCH_MAX ? MM_NL_BATCH_MAX : n;
}

/* Send ops[0, n) in slices; between slices the drain callback delivers
 * what others changed meanwhile (the monitor cannot overflow; our own
 * deletes' echoes never reach it: the port id filter drops them in the
 * kernel) and lets the caller answer its read-only clients.  Returns 0 or
 * the exchange's -errno (then the requests not sent are reported to
 * op_done with it, as mm_nl_batch does within a batch). */
static int send_slices(struct mm_spd *spd)
{
	size_t n = spd->ops.n, size = MM_SPD_SLICE_FIRST;
	bool adds = false;
	int r = 0;

	for (size_t i = 0; i < n && !adds; i++)
		adds = spd->ops.v[i].kind != OP_DEL;

	for (spd->op_base = 0; spd->op_base < n;) {
		size_t k = n - spd->op_base < size ? n - spd->op_base : size;
		uint64_t t0 = now_ns();

		r = mm_nl_batch(spd->nl, k, op_encode, op_done, NULL, spd);
		spd->op_base += k;
		if (r < 0)
			break;
		r = 0;
		size = next_size(k, now_ns() - t0);
		/* After the last batch too when it added: the next step may
		 * delete what it added, by the indexes its events bring. */
		if (spd->op_base < n || adds)
			spd_drain(spd);
	}
	if (r < 0) {
		struct mm_nl_result res = { .error = r };
		size_t first = spd->op_base;

		spd->op_base = 0;
		for (size_t i = first; i < n; i++)
			op_done(i, &res, spd);
	}
	spd->op_base = 0;
	return r;
}

int spd_push_op(struct mm_spd *spd, uint8_t kind, uint32_t ref)
{
	return VEC_PUSH(spd->ops, ((struct op){ .ref = ref, .kind = kind }));
}

int spd_push_del(struct mm_spd *spd, const struct del *d)
{
	int r = VEC_PUSH(spd->dels, *d);

	if (r < 0)
		return r;
	return spd_push_op(spd, OP_DEL, (uint32_t)(spd->dels.n - 1));
}

/* Send spd->ops.  Adds and updates were queued before deletes, so a range
 * that changes shape is never uncovered in between. */
int spd_apply(struct mm_spd *spd, struct mm_spd_report *rep)
{
	bool by_index = false;
	int r;

	for (size_t i = 0; i < spd->dels.n && !by_index; i++)
		by_index = spd->dels.v[i].index != 0;
	spd->rep = rep;
	spd->phase = PH_APPLY;
	spd->pend_built = false;
	/* Deletes by index are about to go out: bring the index map up to
	 * date with what others changed since it was read. */
	if (by_index)
		spd_drain(spd);
	r = send_slices(spd);
	spd->phase = PH_STEP;
	spd->pend.n = 0;
	spd->rep = NULL;
	spd->ops.n = 0;
	spd->dels.n = 0;
	if (r < 0) {
		spd->need_full = true;
		return r;
	}
	return 0;
}

static int del_reqid_order(const void *x, const void *y)
{
	const struct del *a = x, *b = y;

	if (a->reqid != b->reqid)
		return a->reqid < b->reqid ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

/* Queue the deletion of our policies that no partner wants, with one note
 * per reqid (a table that lost many partners must not flood the log). */
int spd_queue_stale(struct mm_spd *spd)
{
	size_t first = 0;
	int r;

	if (spd->stale.n > 1) {
		size_t out = 1;

		qsort(spd->stale.v, spd->stale.n, sizeof(*spd->stale.v), del_reqid_order);
		/* Events can name one policy twice (new, then updated). */
		for (size_t i = 1; i < spd->stale.n; i++)
			if (!spd->stale.v[i].index || spd->stale.v[i].index != spd->stale.v[out - 1].index)
				spd->stale.v[out++] = spd->stale.v[i];
		spd->stale.n = out;
	}
	for (size_t i = 0; i < spd->stale.n; i++) {
		if (i + 1 == spd->stale.n || spd->stale.v[i + 1].reqid != spd->stale.v[i].reqid) {
			struct mm_xfrm_policy p;

			del_policy(&spd->stale.v[first], &p);
			spd_note(spd, MM_SPD_NOTE_STALE, NONE, &p, 0,
				 "%zu of our policies with reqid %u (this one among them) belong to no "
				 "partner: deleting", i + 1 - first, spd->stale.v[i].reqid);
			first = i + 1;
		}
		r = spd_push_del(spd, &spd->stale.v[i]);
		if (r < 0)
			return r;
	}
	spd->stale.n = 0;
	return 0;
}

