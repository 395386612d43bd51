#include "site.h"
#include "privacy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mm_site *mm_site_dup(const struct mm_site *s)
{
	size_t nl = sizeof(*s->locals) * s->n_locals, nt = sizeof(*s->tunnel) * s->n_tunnel;
	size_t nk = s->local_kinds ? sizeof(*s->local_kinds) * s->n_locals : 0;
	struct mm_site *d = malloc(sizeof(*d) + nl + nt + nk);
	struct mm_prefix *locals;
	struct mm_addr *tunnel;
	unsigned *kinds;

	if (!d)
		return NULL;
	/* The kinds first: right after the struct they are aligned; the
	 * address structs are bytes (alignment 1) and may follow anywhere. */
	kinds = (unsigned *)(d + 1);
	locals = (struct mm_prefix *)((char *)kinds + nk);
	tunnel = (struct mm_addr *)((char *)locals + nl);
	if (nl)
		memcpy(locals, s->locals, nl);
	if (nt)
		memcpy(tunnel, s->tunnel, nt);
	if (nk)
		memcpy(kinds, s->local_kinds, nk);
	*d = (struct mm_site){ .locals = locals, .n_locals = s->n_locals, .tunnel = tunnel,
			       .n_tunnel = s->n_tunnel, .local_kinds = nk ? kinds : NULL };
	return d;
}

#define OURS "an address is ours or a partner's, never both"

static int range_check(const struct mm_site *s, const struct mm_partner *p, size_t i,
		       struct mm_err *err)
{
	const struct mm_prefix *r = &p->ranges[i];
	char field[32], a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN];

	snprintf(field, sizeof(field), "ranges[%zu]", i);
	for (size_t j = 0; j < s->n_locals; j++)
		if (mm_prefix_overlaps(r, &s->locals[j]))
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s overlaps our own [local] cscf prefix "
					  "%s: " OURS " (our CSCFs' own traffic would need this "
					  "partner's ESP)", mm_prefix_str(r, a), p->domain,
					  mm_prefix_str(&s->locals[j], b));
	for (size_t j = 0; j < s->n_tunnel; j++)
		if (mm_prefix_contains(r, &s->tunnel[j]))
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s holds our tunnel address %s ([local] "
					  "tunnel): " OURS, mm_prefix_str(r, a), p->domain,
					  mm_addr_str(&s->tunnel[j], b));
	return 0;
}

static int gateway_check(const struct mm_site *s, const struct mm_partner *p, size_t i,
			 struct mm_err *err)
{
	const struct mm_addr *g = &p->gateways[i];
	char field[32], a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN];

	snprintf(field, sizeof(field), "gateways[%zu]", i);
	for (size_t j = 0; j < s->n_tunnel; j++)
		if (mm_addr_cmp(g, &s->tunnel[j]) == 0)
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s is our own tunnel address ([local] "
					  "tunnel): the tunnel would end at ourselves",
					  mm_addr_str(g, a), p->domain);
	for (size_t j = 0; j < s->n_locals; j++)
		if (mm_prefix_contains(&s->locals[j], g))
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s is inside our own [local] cscf prefix "
					  "%s: " OURS, mm_addr_str(g, a), p->domain,
					  mm_prefix_str(&s->locals[j], b));
	return 0;
}

/* The kinds: a tunnel partner needs a cscf prefix facing it. */
static int kind_check(const struct mm_site *s, const struct mm_partner *p, struct mm_err *err)
{
	if (!s->n_locals || !mm_partner_has_tunnel(p))
		return 0;
	for (size_t j = 0; j < s->n_locals; j++)
		if (!s->local_kinds || mm_cscf_faces(s->local_kinds[j], p))
			return 0;
	return mm_err_set(err, MM_ERR_INVALID, "kind",
			  "partner %s is a%s %s partner with a tunnel, but no [local] cscf "
			  "prefix faces %s partners (only %s): its policies would protect "
			  "nothing and its tunnel would carry nothing of our CSCFs; add a "
			  "[local] cscf or %s prefix, or make the partner path seg or disabled",
			  p->domain, p->kind == MM_KIND_IMS ? "n" : "", mm_kind_name(p->kind),
			  mm_kind_name(p->kind), mm_kinds_setting(s->local_kinds[0]),
			  mm_kinds_setting(MM_KIND_BIT(p->kind)));
}

int mm_site_check_partner(const struct mm_site *s, const struct mm_partner *p,
			  struct mm_err *err)
{
	int r = kind_check(s, p, err);

	for (size_t i = 0; r == 0 && i < p->n_ranges; i++)
		r = range_check(s, p, i, err);
	for (size_t i = 0; r == 0 && i < p->n_gateways; i++)
		r = gateway_check(s, p, i, err);
	return r;
}
