#include "sad.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mm_sad_judge(const struct mm_sad_view *v, const struct mm_xfrm_sa *sa,
		  struct mm_sa_judgement *ret)
{
	struct mm_sa_facts f = { .reqid = sa->reqid, .src = sa->src, .dst = sa->dst,
				 .charon = MM_SA_CHARON_UNASKED };

	mm_sa_judge(v->table, v->tunnel, v->n_tunnel, &f, ret);
}

struct sweep {
	const struct mm_sad_view *v;
	mm_sad_delete_fn on_delete;
	void *userdata;
};

static bool must_delete(const struct mm_xfrm_sa *sa, void *data)
{
	const struct sweep *w = data;
	struct mm_sa_judgement j;

	mm_sad_judge(w->v, sa, &j);
	if (!mm_sa_must_delete(j.verdict))
		return false;
	if (w->on_delete)
		w->on_delete(sa, &j, w->userdata);
	return true;
}

int mm_sad_sweep(struct mm_nl *nl, const struct mm_sad_view *v, mm_sad_delete_fn on_delete,
		 void *userdata, size_t *ret_deleted, struct mm_nl_result *res)
{
	struct sweep w = { v, on_delete, userdata };

	return mm_xfrm_sa_delete_if(nl, must_delete, &w, ret_deleted, res);
}

struct counting {
	const struct mm_sad_view *v;
	size_t *counts;
};

static int partner_order(const void *key, const void *elem)
{
	return strcmp(((const struct mm_partner *)key)->domain,
		      (*(struct mm_partner *const *)elem)->domain);
}

static int count_one(const struct mm_xfrm_sa *sa, void *data)
{
	struct counting *c = data;
	struct mm_sa_judgement j;
	struct mm_partner *const *hit;

	mm_sad_judge(c->v, sa, &j);
	if (j.verdict != MM_SA_LEGIT)
		return 0;
	/* The table's partners are sorted by domain. */
	hit = bsearch(j.partner, c->v->table->partners, c->v->table->n,
		      sizeof(*c->v->table->partners), partner_order);
	if (hit)
		c->counts[hit - c->v->table->partners]++;
	return 0;
}

static void count_reset(void *data)
{
	struct counting *c = data;

	memset(c->counts, 0, c->v->table->n * sizeof(*c->counts));
}

int mm_sad_count(struct mm_nl *nl, const struct mm_sad_view *v, size_t *counts,
		 struct mm_nl_result *res)
{
	struct counting c = { v, counts };

	count_reset(&c);
	return mm_xfrm_sa_dump(nl, count_one, count_reset, &c, NULL, res);
}
