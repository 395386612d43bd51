#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ike_tunnels.h"
#include "policy/partner.h"

struct ike_tunnel *ike_tunnels_find(const struct ike_tunnels *ts, const char *domain)
{
	size_t lo = 0, hi = ts->n;

	while (domain && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ts->t[mid].info.domain, domain);

		if (!c)
			return &ts->t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int ike_tunnels_sync(struct ike_tunnels *ts, const struct mm_table *tb)
{
	struct ike_tunnel *n = calloc(tb->n ? tb->n : 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	/* The table's partners are sorted by domain: so are the rows. */
	for (size_t i = 0; i < tb->n; i++) {
		const struct mm_partner *p = tb->partners[i];
		const struct ike_tunnel *old = ike_tunnels_find(ts, p->domain);

		if (old && old->info.reqid == p->reqid)
			n[i] = *old;
		else
			snprintf(n[i].info.domain, sizeof(n[i].info.domain), "%s", p->domain);
		n[i].info.reqid = p->reqid;
	}
	free(ts->t);
	ts->t = n;
	ts->n = tb->n;
	return 0;
}

void ike_tunnels_clear(struct ike_tunnels *ts)
{
	if (!ts)
		return;
	free(ts->t);
	ts->t = NULL;
	ts->n = 0;
}

bool ike_tunnel_set_up(struct ike_tunnel *t, const struct ike_child_up *c)
{
	bool changed = !t->info.up || t->info.spi_in != c->spi_in || t->info.spi_out != c->spi_out;

	t->info.up = true;
	t->info.spi_in = c->spi_in;
	t->info.spi_out = c->spi_out;
	t->info.since = c->since;
	t->ike_id = c->ike_id;
	snprintf(t->ike_state, sizeof(t->ike_state), "%s", c->ike_state ? c->ike_state : "");
	snprintf(t->info.remote_id, sizeof(t->info.remote_id), "%s",
		 c->remote_id ? c->remote_id : "");
	snprintf(t->info.remote_host, sizeof(t->info.remote_host), "%s",
		 c->remote_host ? c->remote_host : "");
	snprintf(t->local_host, sizeof(t->local_host), "%s", c->local_host ? c->local_host : "");
	return changed;
}

bool ike_tunnel_set_down(struct ike_tunnel *t)
{
	bool was = t->info.up;

	t->info.up = false;
	t->info.spi_in = t->info.spi_out = 0;
	t->info.since = 0;
	return was;
}

void ike_tunnel_kernel_saw(struct ike_tunnel *t, uint32_t spi)
{
	if (!spi || ike_tunnel_kernel_had(t, spi))
		return;
	t->kernel_spis[t->kernel_next % IKE_KERNEL_SPIS] = spi;
	t->kernel_next = (t->kernel_next + 1) % IKE_KERNEL_SPIS;
}

bool ike_tunnel_kernel_had(const struct ike_tunnel *t, uint32_t spi)
{
	for (size_t i = 0; spi && i < IKE_KERNEL_SPIS; i++)
		if (t->kernel_spis[i] == spi)
			return true;
	return false;
}

static bool spi_current(const struct ike_tunnel *t, uint32_t spi)
{
	return t->info.up && spi && (spi == t->info.spi_in || spi == t->info.spi_out);
}

bool ike_tunnel_sa_gone(struct ike_tunnel *t, uint32_t spi)
{
	if (!spi_current(t, spi))
		return false;
	t->gone_spi = spi;
	return true;
}

uint32_t ike_tunnel_gone_confirm(struct ike_tunnel *t)
{
	uint32_t spi = t->gone_spi;

	t->gone_spi = 0;
	return spi_current(t, spi) ? spi : 0;
}

void ike_refusal_plan(const struct ike_tunnels *ts, const struct mm_sa_judgement *judgement,
		      uint32_t spi, struct ike_refusal *ret)
{
	struct ike_refusal r = { 0 };
	struct ike_tunnel *t = judgement->partner ? ike_tunnels_find(ts, judgement->partner->domain)
						  : NULL;

	if (t && t->info.reqid != judgement->partner->reqid)
		t = NULL;  /* a row of the partner's former self */
	r.tunnel = t;
	if (t && mm_sa_must_delete(judgement->verdict) && t->info.up && spi &&
	    (spi == t->info.spi_in || spi == t->info.spi_out)) {
		r.down = true;
		r.terminate_ike_id = t->ike_id;
		r.initiate = mm_partner_has_tunnel(judgement->partner);
	}
	*ret = r;
}
