/* The partner table: an immutable snapshot of all partners plus the
 * address index over their ranges.
 *
 * Changes never edit a table in place.  mm_table_apply() builds a new table
 * from an old one and a change set, validating the whole result (overlaps
 * across partners, duplicate domains, reqid allocation); the caller commits
 * the change set to the store and only then swaps the new table in.  A
 * refused change therefore leaves both the store and the live table exactly
 * as they were.  Tables share partners by reference count.
 *
 * Every table holds these (docs/admin-protocol.md, "Addresses"): each
 * address belongs to at most one partner (no two ranges overlap); no
 * partner's gateway lies inside another partner's range; and, once the
 * host's own addresses are attached (mm_table_set_site), no partner claims
 * one of them.  The rules about one address alone are the partner's
 * (mm_partner_check_addresses). */
#ifndef MM_TABLE_H
#define MM_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "lpm.h"
#include "partner.h"
#include "site.h"

struct mm_table {
	unsigned refs;                 /* atomic; mm_table_free drops one */
	struct mm_partner **partners;  /* sorted by domain; each holds one ref */
	struct mm_partner **by_reqid;  /* the same partners sorted by reqid (borrowed) */
	size_t n;
	struct mm_lpm *lpm;            /* range -> partner */
	uint32_t reqid_min, reqid_max; /* reserved range, inclusive */
	uint32_t reqid_next;           /* where the next allocation starts */
	/* The store's table version this table is (mm_store_load,
	 * mm_store_commit), or derives from (mm_table_apply copies old's):
	 * every commit bumps it, on every host sharing the store. */
	uint64_t version;
	struct mm_site *site;          /* owned copy, or NULL: mm_table_set_site */
};

enum mm_change_op { MM_CHANGE_ADD, MM_CHANGE_SET, MM_CHANGE_DEL, MM_CHANGE__MAX };

/* One partner's change.  `before` is NULL for ADD, `after` NULL for DEL;
 * both are references owned by the change (mm_changes_free drops them). */
struct mm_change {
	enum mm_change_op op;
	struct mm_partner *before;
	struct mm_partner *after;
};

const char *mm_change_op_name(enum mm_change_op op);
void mm_changes_free(struct mm_change *changes, size_t n);  /* accepts NULL */

/* An empty table for the reqid range [min, max]; -EINVAL if min > max or
 * min == 0 (reqid 0 means "any" to the kernel). */
int mm_table_new(uint32_t reqid_min, uint32_t reqid_max, struct mm_table **ret);
/* Tables are shared read-only between threads (the query socket's) by
 * reference: mm_table_ref takes one, mm_table_free drops one and frees the
 * table with the last.  Both accept NULL and are thread-safe. */
struct mm_table *mm_table_ref(struct mm_table *t);
void mm_table_free(struct mm_table *t);

/* Borrowed pointers, valid while the table lives. */
struct mm_partner *mm_table_find(const struct mm_table *t, const char *domain);
struct mm_partner *mm_table_lookup(const struct mm_table *t, const struct mm_addr *a,
				   const struct mm_prefix **ret_prefix);
struct mm_partner *mm_table_find_reqid(const struct mm_table *t, uint32_t reqid);

/* Check every partner of t against the host's addresses s and keep a copy
 * of s in t, so that every table derived from t by mm_table_apply is
 * checked against it too.  For a table nobody shares yet (fresh from
 * mm_table_build, i.e. the store, at start or reload).  On refusal
 * (MM_ERR_CONFLICT, mm_site_check_partner) t is unchanged. */
int mm_table_set_site(struct mm_table *t, const struct mm_site *s, struct mm_err *err);

/* Build the table that results from applying changes to old.  ADD entries
 * get a reqid (and created/updated = now); SET entries keep theirs (updated
 * = now).  The `after` partners of the change set are updated in place
 * (reqid, times) before they are shared with the new table.  Refusals:
 * MM_ERR_CONFLICT for an ADD of an existing domain, overlapping ranges
 * (the message names both partners and both ranges), a gateway inside
 * another partner's range (either side may be the change), a changed
 * partner that claims one of old's site addresses; MM_ERR_NOT_FOUND for
 * SET/DEL of an unknown domain, MM_ERR_EXHAUSTED when the reqid range has
 * no free value.  On success *ret is a new table the caller frees. */
int mm_table_apply(const struct mm_table *old, struct mm_change *changes, size_t n,
		   time_t now, struct mm_table **ret, struct mm_err *err);

/* A table from partners that already carry reqids (loading the store).
 * Takes a reference to each.  Same validation as mm_table_apply, plus each
 * partner's own address rules (mm_partner_check_addresses), since these
 * partners did not come through mm_partner_from_json.  No site. */
int mm_table_build(struct mm_partner **partners, size_t n, uint32_t reqid_min,
		   uint32_t reqid_max, uint32_t reqid_next, struct mm_table **ret,
		   struct mm_err *err);

/* The change set that turns `cur` into the table described by `want`
 * (partners without reqids, e.g. parsed from an apply file): ADD for new
 * domains, SET where the configuration differs, DEL for domains not in
 * want.  Partners in want are referenced, not copied.  *ret_n may be 0. */
int mm_table_diff(const struct mm_table *cur, struct mm_partner **want, size_t n_want,
		  struct mm_change **ret, size_t *ret_n, struct mm_err *err);

#endif
