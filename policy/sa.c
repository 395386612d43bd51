#include <string.h>
#include <strings.h>

#include "sa.h"

bool mm_reqid_ours(const struct mm_table *t, uint32_t reqid)
{
	return t && reqid >= t->reqid_min && reqid <= t->reqid_max;
}

static bool ends_ok(const struct mm_partner *p, const struct mm_addr *tunnel, size_t n_tunnel,
		    const struct mm_sa_facts *sa)
{
	for (size_t i = 0; i < p->n_gateways; i++)
		for (size_t j = 0; j < n_tunnel; j++) {
			const struct mm_addr *g = &p->gateways[i], *u = &tunnel[j];

			if ((!mm_addr_cmp(g, &sa->src) && !mm_addr_cmp(u, &sa->dst)) ||
			    (!mm_addr_cmp(g, &sa->dst) && !mm_addr_cmp(u, &sa->src)))
				return true;
		}
	return false;
}

void mm_sa_judge(const struct mm_table *t, const struct mm_addr *tunnel, size_t n_tunnel,
		 const struct mm_sa_facts *sa, struct mm_sa_judgement *ret)
{
	struct mm_sa_judgement j = { .verdict = MM_SA_FOREIGN };

	if (!mm_reqid_ours(t, sa->reqid))
		goto out;
	j.partner = mm_table_find_reqid(t, sa->reqid);
	if (!j.partner)
		j.verdict = MM_SA_NO_PARTNER;
	else if (!mm_partner_has_tunnel(j.partner))
		j.verdict = MM_SA_NO_TUNNEL;
	else if (!ends_ok(j.partner, tunnel, n_tunnel, sa))
		j.verdict = MM_SA_WRONG_ENDS;
	else if (sa->charon == MM_SA_CHARON_UNKNOWN)
		j.verdict = MM_SA_CHARON_LOST;
	else
		j.verdict = MM_SA_LEGIT;
out:
	*ret = j;
}

static const struct {
	const char *name, *reason;
} sa_verdicts[MM_SA__MAX] = {
	[MM_SA_FOREIGN] = { "foreign", "reqid outside mmtrust's range: not mmtrust's" },
	[MM_SA_LEGIT] = { "legit", "the partner's, between its gateway and our tunnel address" },
	[MM_SA_NO_PARTNER] = { "no-partner", "in mmtrust's reqid range, but no partner has this reqid" },
	[MM_SA_NO_TUNNEL] = { "no-tunnel",
			      "the partner has no tunnel of ours (disabled or on the SEG path)" },
	[MM_SA_WRONG_ENDS] = { "wrong-ends",
			       "carries the partner's reqid, but is not between one of its gateways "
			       "and our tunnel address" },
	[MM_SA_CHARON_LOST] = { "charon-lost",
				"charon does not know it (left by a charon that went away)" },
};

const char *mm_sa_verdict_name(enum mm_sa_verdict v)
{
	return (unsigned)v < MM_SA__MAX ? sa_verdicts[v].name : "?";
}

const char *mm_sa_verdict_reason(enum mm_sa_verdict v)
{
	return (unsigned)v < MM_SA__MAX ? sa_verdicts[v].reason : "?";
}

void mm_child_judge(const struct mm_table *t, const char *conn, const char *remote_id,
		    uint32_t reqid, struct mm_child_judgement *ret)
{
	struct mm_child_judgement j = { .verdict = MM_CHILD_OK };

	j.partner = t && conn ? mm_table_find(t, conn) : NULL;
	if (!j.partner)
		j.verdict = mm_reqid_ours(t, reqid) ? MM_CHILD_NO_PARTNER : MM_CHILD_NOT_OURS;
	else if (!remote_id || strcasecmp(remote_id, j.partner->domain) != 0)
		j.verdict = MM_CHILD_WRONG_IDENTITY;
	else if (reqid != j.partner->reqid)
		j.verdict = MM_CHILD_WRONG_REQID;
	*ret = j;
}

static const struct {
	const char *name, *reason;
} child_verdicts[MM_CHILD__MAX] = {
	[MM_CHILD_NOT_OURS] = { "not-ours", "another connection of charon's" },
	[MM_CHILD_OK] = { "ok", "the partner's identity and reqid" },
	[MM_CHILD_NO_PARTNER] = { "no-partner", "no partner has this connection" },
	[MM_CHILD_WRONG_IDENTITY] = { "wrong-identity", "the partner's domain differs" },
	[MM_CHILD_WRONG_REQID] = { "wrong-reqid", "the partner's reqid differs" },
};

const char *mm_child_verdict_name(enum mm_child_verdict v)
{
	return (unsigned)v < MM_CHILD__MAX ? child_verdicts[v].name : "?";
}

const char *mm_child_verdict_reason(enum mm_child_verdict v)
{
	return (unsigned)v < MM_CHILD__MAX ? child_verdicts[v].reason : "?";
}
