/* The shrink guard: a whole-table step (start, reload, apply) that would
 * take away more than [spd] shrink_limit percent of the policies mmtrustd
 * holds in the kernel is refused until confirmed.  Taken away: the
 * policies of a reqid (a partner) the new table gives no policy at all --
 * a partner gone or disabled.  Policies replaced by others of the same
 * partner (a new [local] cscf, a changed range) are not lost enforcement.
 * What the kernel holds is read (a dump), not remembered: at start nothing
 * else knows it, and the count must be the one the step would act on. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmtrustd.h"
#include "spd_desired.h"

#define SHRINK_EXAMPLES 4

struct scan {
	const struct mm_spd_config *cfg;
	uint32_t *keep;  /* reqids the new table has policies for, sorted */
	size_t n_keep;
	size_t held, gone;
	uint32_t reqid[SHRINK_EXAMPLES];  /* reqids of policies that would go */
	size_t n_reqid;
	bool more;                        /* ... and others */
};

static int reqid_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return (a > b) - (a < b);
}

static void scan_reset(void *userdata)
{
	struct scan *sc = userdata;

	sc->held = sc->gone = sc->n_reqid = 0;
	sc->more = false;
}

static int scan_one(const struct mm_xfrm_policy *p, void *userdata)
{
	struct scan *sc = userdata;
	uint32_t reqid;
	size_t i;

	if (!mm_spd_is_ours(sc->cfg, p))
		return 0;
	sc->held++;
	reqid = p->tmpl[0].reqid;  /* ours: at least one template */
	if (bsearch(&reqid, sc->keep, sc->n_keep, sizeof(reqid), reqid_cmp))
		return 0;
	sc->gone++;
	for (i = 0; i < sc->n_reqid && sc->reqid[i] != reqid; i++)
		;
	if (i < sc->n_reqid)
		return 0;
	if (sc->n_reqid < SHRINK_EXAMPLES)
		sc->reqid[sc->n_reqid++] = reqid;
	else
		sc->more = true;
	return 0;
}

int shrink_check(struct mmtrustd *d, const struct mm_config *cfg, const struct mm_table *t,
		 const char *confirm, struct mm_err *err)
{
	struct mm_spd_local locals[MM_CONFIG_MAX_LOCAL];
	struct mm_spd_config sc_cfg;
	struct mm_spd_desired *want = NULL;
	struct mm_nl_result res = { 0 };
	struct scan sc = { 0 };
	char ex[SHRINK_EXAMPLES * 12 + 8] = "";
	size_t len = 0;
	int r;

	/* Nothing programmed, nothing to lose: the SPD side off, or the
	 * kernel unreachable (then no step deletes anything either). */
	if (!cfg->spd_enabled || cfg->spd_shrink_limit >= 100 || !d->nl)
		return 0;
	kernel_spd_config(cfg, &sc_cfg, locals);
	r = mm_spd_compute(&sc_cfg, (const struct mm_partner *const *)t->partners, t->n, &want);
	if (r == -EINVAL)
		return 0;  /* no usable [local]: the engine will not run */
	if (r < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, "spd", "shrink guard: %s", strerror(-r));
	sc.cfg = &sc_cfg;
	sc.keep = malloc((want->n_want ? want->n_want : 1) * sizeof(*sc.keep));
	if (!sc.keep) {
		mm_spd_desired_free(want);
		return mm_err_set(err, MM_ERR_INTERNAL, "spd", "shrink guard: out of memory");
	}
	for (size_t i = 0; i < want->n_want; i++)
		sc.keep[i] = want->want[i].reqid;
	sc.n_keep = want->n_want;
	mm_spd_desired_free(want);
	qsort(sc.keep, sc.n_keep, sizeof(*sc.keep), reqid_cmp);
	r = mm_xfrm_policy_dump(d->nl, scan_one, scan_reset, &sc, NULL, &res);
	free(sc.keep);
	if (r < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, "spd",
				  "shrink guard: cannot read the kernel's policies: %s%s%s",
				  strerror(-r), res.extack[0] ? ": " : "", res.extack);
	if (sc.held == 0 || sc.gone * 100 <= sc.held * cfg->spd_shrink_limit)
		return 0;
	for (size_t i = 0; i < sc.n_reqid; i++)
		len += (size_t)snprintf(ex + len, sizeof(ex) - len, "%s%" PRIu32, i ? ", " : "",
					sc.reqid[i]);
	return mm_err_set(err, MM_ERR_CONFLICT, "spd.shrink_limit",
			  "this would delete %zu of the %zu kernel policies mmtrustd holds "
			  "(%zu%%, more than the %" PRIu32 "%% allowed): every policy of reqid %s%s, "
			  "for which the new table (%zu partners) has no enabled tunnel partner; "
			  "if that is intended, %s",
			  sc.gone, sc.held, sc.gone * 100 / sc.held, cfg->spd_shrink_limit, ex,
			  sc.more ? " and others" : "", t->n, confirm);
}
