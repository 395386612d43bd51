/* Whose SA is this, and may it stay in the kernel?
 *
 * One verdict for every path that deletes, counts, audits or answers about
 * SAs: the SPD engine's sweep of reqids no partner uses, the IKE side's
 * checks of SAs charon installs (identity, reqid, endpoints) and of SAs
 * charon no longer knows, the XFRM monitor's endpoint check, status counts
 * and `mmtrustctl audit`.  Pure functions of the partner table and our
 * tunnel addresses; no I/O.
 *
 * The rules:
 *   - an SA whose reqid is outside the table's reserved range is not ours
 *     (MM_SA_FOREIGN) and is never touched, whatever its addresses;
 *   - an SA in our range is legitimate only when a partner has that reqid,
 *     the partner has a tunnel of ours (enabled, path tunnel), one end is
 *     one of the partner's gateways and the other one of our tunnel
 *     addresses, and charon (when it was asked) knows the SA;
 *   - every other SA in our range is deleted, with the verdict as reason.
 * A CHILD_SA charon reports is judged on the IKE level as well
 * (mm_child_judge): its connection must be a partner's, its authenticated
 * remote identity that partner's domain and its reqid that partner's. */
#ifndef MM_SA_H
#define MM_SA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "table.h"

enum mm_sa_verdict {
	MM_SA_FOREIGN,       /* reqid outside our range: not ours */
	MM_SA_LEGIT,         /* the partner's, gateway <-> our tunnel address */
	MM_SA_NO_PARTNER,    /* our range, but no partner has this reqid */
	MM_SA_NO_TUNNEL,     /* the partner has no tunnel of ours (disabled or SEG) */
	MM_SA_WRONG_ENDS,    /* not between a gateway of the partner and our tunnel */
	MM_SA_CHARON_LOST,   /* charon does not know it (left by a charon that died) */
	MM_SA__MAX
};

/* What charon said about an SA when it was last asked. */
enum mm_sa_charon { MM_SA_CHARON_UNASKED, MM_SA_CHARON_KNOWS, MM_SA_CHARON_UNKNOWN };

struct mm_sa_facts {
	uint32_t reqid;
	struct mm_addr src, dst;      /* the SA's outer addresses */
	enum mm_sa_charon charon;
};

struct mm_sa_judgement {
	enum mm_sa_verdict verdict;
	const struct mm_partner *partner;  /* borrowed from the table; NULL when none */
};

/* True when the reqid is in the table's reserved range. */
bool mm_reqid_ours(const struct mm_table *t, uint32_t reqid);

/* Judge one SA.  tunnel[0..n_tunnel) are our tunnel addresses. */
void mm_sa_judge(const struct mm_table *t, const struct mm_addr *tunnel, size_t n_tunnel,
		 const struct mm_sa_facts *sa, struct mm_sa_judgement *ret);

/* True for the verdicts whose SA must be deleted (ours and not legitimate). */
static inline bool mm_sa_must_delete(enum mm_sa_verdict v)
{
	return v != MM_SA_FOREIGN && v != MM_SA_LEGIT && v < MM_SA__MAX;
}

/* "foreign", "legit", "no-partner", "no-tunnel", "wrong-ends", "charon-lost". */
const char *mm_sa_verdict_name(enum mm_sa_verdict v);
/* A sentence for logs and audit notes ("no partner has this reqid"). */
const char *mm_sa_verdict_reason(enum mm_sa_verdict v);

enum mm_child_verdict {
	MM_CHILD_NOT_OURS,       /* another connection of charon's, outside our range */
	MM_CHILD_OK,             /* the partner's identity and reqid */
	MM_CHILD_NO_PARTNER,     /* no partner has this connection: kill the IKE_SA */
	MM_CHILD_WRONG_IDENTITY, /* remote id is not the partner's domain: kill the IKE_SA */
	MM_CHILD_WRONG_REQID,    /* right identity, wrong reqid: kill only the CHILD_SA */
	MM_CHILD__MAX
};

struct mm_child_judgement {
	enum mm_child_verdict verdict;
	const struct mm_partner *partner;  /* the connection's partner; NULL when none */
};

/* Judge a CHILD_SA charon reports: conn is the IKE_SA's connection name
 * (our connections are named after the partner's domain), remote_id the
 * authenticated remote identity (NULL when none), reqid the CHILD_SA's. */
void mm_child_judge(const struct mm_table *t, const char *conn, const char *remote_id,
		    uint32_t reqid, struct mm_child_judgement *ret);
const char *mm_child_verdict_name(enum mm_child_verdict v);
const char *mm_child_verdict_reason(enum mm_child_verdict v);

#endif
