#include "table.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const change_names[MM_CHANGE__MAX] = {
	[MM_CHANGE_ADD] = "add",
	[MM_CHANGE_SET] = "set",
	[MM_CHANGE_DEL] = "del",
};

const char *mm_change_op_name(enum mm_change_op op)
{
	return op < MM_CHANGE__MAX ? change_names[op] : "?";
}

void mm_changes_free(struct mm_change *changes, size_t n)
{
	for (size_t i = 0; changes && i < n; i++) {
		mm_partner_unref(changes[i].before);
		mm_partner_unref(changes[i].after);
	}
	free(changes);
}

int mm_table_new(uint32_t reqid_min, uint32_t reqid_max, struct mm_table **ret)
{
	struct mm_table *t;
	int r;

	if (reqid_min == 0 || reqid_min > reqid_max)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->refs = 1;
	t->reqid_min = reqid_min;
	t->reqid_max = reqid_max;
	t->reqid_next = reqid_min;
	r = mm_lpm_new(NULL, 0, &t->lpm);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

struct mm_table *mm_table_ref(struct mm_table *t)
{
	if (t)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void mm_table_free(struct mm_table *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < t->n; i++)
		mm_partner_unref(t->partners[i]);
	free(t->partners);
	free(t->by_reqid);
	mm_lpm_free(t->lpm);
	free(t->site);
	free(t);
}

static int find_index(const struct mm_table *t, const char *domain, size_t *ret_pos)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->partners[mid]->domain, domain);

		if (c == 0) {
			*ret_pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_pos = lo;
	return 0;
}

struct mm_partner *mm_table_find(const struct mm_table *t, const char *domain)
{
	size_t pos;

	return find_index(t, domain, &pos) ? t->partners[pos] : NULL;
}

struct mm_partner *mm_table_lookup(const struct mm_table *t, const struct mm_addr *a,
				   const struct mm_prefix **ret_prefix)
{
	return mm_lpm_lookup(t->lpm, a, ret_prefix);
}

struct mm_partner *mm_table_find_reqid(const struct mm_table *t, uint32_t reqid)
{
	size_t lo = 0, hi = t->n;

	while (reqid && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t v = t->by_reqid[mid]->reqid;

		if (v == reqid)
			return t->by_reqid[mid];
		if (v < reqid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int partner_domain_cmp(const void *a, const void *b)
{
	const struct mm_partner *const *pa = a, *const *pb = b;

	return strcmp((*pa)->domain, (*pb)->domain);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct mm_lpm_entry *ea = a, *eb = b;

	return mm_prefix_cmp(&ea->prefix, &eb->prefix);
}

static bool is_changed(const struct mm_partner *p, const struct mm_change *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].after == p)
			return true;
	return false;
}

static size_t range_index(const struct mm_partner *p, const struct mm_prefix *r)
{
	for (size_t i = 0; i < p->n_ranges; i++)
		if (mm_prefix_cmp(&p->ranges[i], r) == 0)
			return i;
	return 0;
}

/* Every address belongs to at most one partner: sort all ranges and sweep,
 * remembering the range reaching furthest so far.  The refusal is worded
 * from the side of a partner being changed, when one is involved. */
static int check_overlaps(struct mm_lpm_entry *e, size_t n, const struct mm_change *c,
			  size_t n_c, struct mm_err *err)
{
	size_t reach = 0;
	struct mm_addr reach_end, last;

	qsort(e, n, sizeof(*e), entry_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && e[i].prefix.addr.family == e[reach].prefix.addr.family &&
		    mm_addr_cmp(&e[i].prefix.addr, &reach_end) <= 0) {
			const struct mm_lpm_entry *mine = &e[i], *other = &e[reach];
			const struct mm_partner *pm, *po;
			char sm[MM_ADDR_STRLEN], so[MM_ADDR_STRLEN], field[32];

			if (is_changed(other->value, c, n_c) && !is_changed(mine->value, c, n_c)) {
				mine = &e[reach];
				other = &e[i];
			}
			pm = mine->value;
			po = other->value;
			snprintf(field, sizeof(field), "ranges[%zu]", range_index(pm, &mine->prefix));
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s overlaps %s of partner %s: an address "
					  "belongs to at most one partner",
					  mm_prefix_str(&mine->prefix, sm), pm->domain,
					  mm_prefix_str(&other->prefix, so), po->domain);
		}
		mm_prefix_last(&e[i].prefix, &last);
		if (i == 0 || e[i].prefix.addr.family != e[reach].prefix.addr.family ||
		    mm_addr_cmp(&last, &reach_end) > 0) {
			reach = i;
			reach_end = last;
		}
	}
	return 0;
}

/* Index the ranges of the table's partners (after overlap validation). */
static int table_index(struct mm_table *t, const struct mm_change *c, size_t n_c,
		       struct mm_err *err)
{
	struct mm_lpm_entry *e;
	size_t n = 0, k = 0;
	int r;

	for (size_t i = 0; i < t->n; i++)
		n += t->partners[i]->n_ranges;
	e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = 0; j < t->partners[i]->n_ranges; j++) {
			e[k].prefix = t->partners[i]->ranges[j];
			e[k++].value = t->partners[i];
		}
	r = check_overlaps(e, n, c, n_c, err);
	if (r == 0) {
		r = mm_lpm_new(e, n, &t->lpm);
		if (r < 0)
			r = mm_err_set(err, MM_ERR_INTERNAL, "ranges",
				       "cannot build the address index: %s", strerror(-r));
	}
	free(e);
	return r;
}

/* A gateway is its partner's tunnel endpoint: inside another partner's
 * range, traffic to it would need that partner's ESP and messages from it
 * would be that partner's.  Worded from the side of a partner being
 * changed, like an overlap. */
static int check_gateways(const struct mm_table *t, const struct mm_change *c, size_t n_c,
			  struct mm_err *err)
{
	static const char why[] = "a partner's gateway is never another partner's address";
	char sg[MM_ADDR_STRLEN], sr[MM_ADDR_STRLEN], field[32];

	for (size_t i = 0; i < t->n; i++) {
		const struct mm_partner *p = t->partners[i];

		for (size_t j = 0; j < p->n_gateways; j++) {
			const struct mm_prefix *r;
			const struct mm_partner *o = mm_lpm_lookup(t->lpm, &p->gateways[j], &r);

			if (!o || o == p)
				continue;
			mm_addr_str(&p->gateways[j], sg);
			mm_prefix_str(r, sr);
			if (is_changed(o, c, n_c) && !is_changed(p, c, n_c)) {
				snprintf(field, sizeof(field), "ranges[%zu]", range_index(o, r));
				return mm_err_set(err, MM_ERR_CONFLICT, field,
						  "%s of partner %s holds the gateway %s of "
						  "partner %s: %s", sr, o->domain, sg, p->domain,
						  why);
			}
			snprintf(field, sizeof(field), "gateways[%zu]", j);
			return mm_err_set(err, MM_ERR_CONFLICT, field,
					  "%s of partner %s is inside %s of partner %s: %s", sg,
					  p->domain, sr, o->domain, why);
		}
	}
	return 0;
}

static int partner_reqid_cmp(const void *a, const void *b)
{
	uint32_t x = (*(struct mm_partner *const *)a)->reqid;
	uint32_t y = (*(struct mm_partner *const *)b)->reqid;

	return (x > y) - (x < y);
}

/* Is reqid held by one of by_reqid[lo, hi) (sorted by reqid)? */
static bool reqid_used(const struct mm_table *t, size_t lo, size_t hi, uint32_t reqid)
{

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t v = t->by_reqid[mid]->reqid;

		if (v == reqid)
			return true;
		if (v < reqid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Give every partner without a reqid the next free value of the range,
 * starting at reqid_next and wrapping once, so that a freed reqid is reused
 * only after the whole range has gone round (SAs under an old reqid may
 * still be draining in the kernel).  Leaves t->by_reqid sorted by reqid:
 * the same array serves allocation and mm_table_find_reqid(). */
static int allocate_reqids(struct mm_table *t, struct mm_err *err)
{
	uint32_t next = t->reqid_next;
	uint64_t span = (uint64_t)t->reqid_max - t->reqid_min + 1, tried = 0;
	size_t first = 0, n_new = 0;

	t->by_reqid = malloc(sizeof(*t->by_reqid) * (t->n ? t->n : 1));
	if (!t->by_reqid)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	memcpy(t->by_reqid, t->partners, sizeof(*t->by_reqid) * t->n);
	qsort(t->by_reqid, t->n, sizeof(*t->by_reqid), partner_reqid_cmp);
	/* Partners still without a reqid (0) sort first; the rest are held. */
	while (first < t->n && t->by_reqid[first]->reqid == 0)
		first++;
	for (size_t i = first + 1; i < t->n; i++)
		if (t->by_reqid[i]->reqid == t->by_reqid[i - 1]->reqid)
			return mm_err_set(err, MM_ERR_INTERNAL, "reqid",
					  "reqid %u is held by two partners", t->by_reqid[i]->reqid);
	if (next < t->reqid_min || next > t->reqid_max)
		next = t->reqid_min;
	/* Allocate in domain order (t->partners), as the held set is searched. */
	for (size_t i = 0; i < t->n && n_new < first; i++) {
		struct mm_partner *p = t->partners[i];

		if (p->reqid)
			continue;
		/* Only the held partners are searched: the ones before `first`
		 * get their reqids in this loop, which unsorts that part. */
		while (tried < span && reqid_used(t, first, t->n, next)) {
			next = next == t->reqid_max ? t->reqid_min : next + 1;
			tried++;
		}
		if (tried >= span)
			return mm_err_set(err, MM_ERR_EXHAUSTED, "reqid",
					  "the reserved reqid range %u-%u is exhausted (%" PRIu64
					  " values, all held by partners): widen [reqid] in the "
					  "daemon's configuration",
					  t->reqid_min, t->reqid_max, span);
		p->reqid = next;
		n_new++;
		next = next == t->reqid_max ? t->reqid_min : next + 1;
		tried++;
	}
	t->reqid_next = next;
	if (n_new)
		qsort(t->by_reqid, t->n, sizeof(*t->by_reqid), partner_reqid_cmp);
	return 0;
}

static int table_build(struct mm_partner **partners, size_t n, uint32_t reqid_min,
		       uint32_t reqid_max, uint32_t reqid_next, const struct mm_change *c,
		       size_t n_c, struct mm_table **ret, struct mm_err *err)
{
	struct mm_table *t;
	int r;

	if (reqid_min == 0 || reqid_min > reqid_max)
		return mm_err_set(err, MM_ERR_INVALID, "reqid",
				  "reqid range %u-%u is empty or starts at 0", reqid_min,
				  reqid_max);
	t = calloc(1, sizeof(*t));
	if (!t)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	t->refs = 1;
	t->reqid_min = reqid_min;
	t->reqid_max = reqid_max;
	t->reqid_next = reqid_next;
	t->partners = malloc(sizeof(*t->partners) * (n ? n : 1));
	if (!t->partners) {
		free(t);
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		t->partners[t->n++] = mm_partner_ref(partners[i]);
	qsort(t->partners, t->n, sizeof(*t->partners), partner_domain_cmp);
	for (size_t i = 1; i < t->n; i++) {
		if (strcmp(t->partners[i]->domain, t->partners[i - 1]->domain) == 0) {
			r = mm_err_set(err, MM_ERR_CONFLICT, "domain",
				       "partner %s is listed twice", t->partners[i]->domain);
			goto fail;
		}
	}
	r = allocate_reqids(t, err);
	if (r < 0)
		goto fail;
	r = table_index(t, c, n_c, err);
	if (r == 0)
		r = check_gateways(t, c, n_c, err);
	if (r < 0)
		goto fail;
	*ret = t;
	return 0;
fail:
	mm_table_free(t);
	return r;
}

int mm_table_build(struct mm_partner **partners, size_t n, uint32_t reqid_min,
		   uint32_t reqid_max, uint32_t reqid_next, struct mm_table **ret,
		   struct mm_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = mm_partner_check_addresses(partners[i], err);

		if (r < 0)
			return r;
	}
	return table_build(partners, n, reqid_min, reqid_max, reqid_next, NULL, 0, ret, err);
}

int mm_table_set_site(struct mm_table *t, const struct mm_site *s, struct mm_err *err)
{
	struct mm_site *copy;

	for (size_t i = 0; i < t->n; i++) {
		int r = mm_site_check_partner(s, t->partners[i], err);

		if (r < 0)
			return r;
	}
	copy = mm_site_dup(s);
	if (!copy)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	free(t->site);
	t->site = copy;
	return 0;
}

/* The partners a change brings in, against the site old was checked
 * against (the others passed when they came in); the new table keeps it. */
static int apply_site(const struct mm_table *old, const struct mm_change *c, size_t n,
		      struct mm_table *t, struct mm_err *err)
{
	for (size_t i = 0; old->site && i < n; i++) {
		int r = c[i].after ? mm_site_check_partner(old->site, c[i].after, err) : 0;

		if (r < 0)
			return r;
	}
	if (old->site && !(t->site = mm_site_dup(old->site)))
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	return 0;
}

int mm_table_apply(const struct mm_table *old, struct mm_change *changes, size_t n,
		   time_t now, struct mm_table **ret, struct mm_err *err)
{
	struct mm_partner **list;
	struct mm_table *t = NULL;
	size_t cap = old->n + n + 1, k = 0;
	bool *gone;
	int r;

	list = calloc(cap, sizeof(*list));
	gone = calloc(old->n + 1, sizeof(*gone));
	if (!list || !gone) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct mm_change *c = &changes[i];
		const char *domain = c->after ? c->after->domain : c->before->domain;
		size_t pos;
		bool found = find_index(old, domain, &pos);

		if (c->op == MM_CHANGE_ADD && found) {
			r = mm_err_set(err, MM_ERR_CONFLICT, "domain",
				       "partner %s already exists (reqid %u): use 'partner set' "
				       "to change it", domain, old->partners[pos]->reqid);
			goto out;
		}
		if (c->op != MM_CHANGE_ADD && !found) {
			r = mm_err_set(err, MM_ERR_NOT_FOUND, "domain",
				       "no partner %s in the table", domain);
			goto out;
		}
		if (c->op != MM_CHANGE_ADD) {
			if (gone[pos]) {
				r = mm_err_set(err, MM_ERR_CONFLICT, "domain",
					       "partner %s is changed twice in one request", domain);
				goto out;
			}
			gone[pos] = true;
		}
		if (c->op == MM_CHANGE_ADD) {
			c->after->reqid = 0;
			c->after->created = c->after->updated = now;
		} else if (c->op == MM_CHANGE_SET) {
			c->after->reqid = old->partners[pos]->reqid;
			c->after->created = old->partners[pos]->created;
			c->after->updated = now;
		}
		if (c->after)
			list[k++] = c->after;
	}
	for (size_t i = 0; i < old->n; i++)
		if (!gone[i])
			list[k++] = old->partners[i];
	r = table_build(list, k, old->reqid_min, old->reqid_max, old->reqid_next, changes, n,
			&t, err);
	if (r == 0)
		r = apply_site(old, changes, n, t, err);
	if (r == 0) {
		t->version = old->version;
		*ret = t;
	}
	else
		mm_table_free(t);
out:
	free(list);
	free(gone);
	return r;
}

int mm_table_diff(const struct mm_table *cur, struct mm_partner **want, size_t n_want,
		  struct mm_change **ret, size_t *ret_n, struct mm_err *err)
{
	struct mm_change *c;
	bool *kept;
	size_t k = 0;
	int r = 0;

	c = calloc(n_want + cur->n + 1, sizeof(*c));
	kept = calloc(cur->n + 1, sizeof(*kept));
	if (!c || !kept) {
		r = mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_want; i++) {
		size_t pos;

		for (size_t j = 0; j < i; j++) {
			if (strcmp(want[j]->domain, want[i]->domain) == 0) {
				r = mm_err_set(err, MM_ERR_CONFLICT, "domain",
					       "partner %s is listed twice", want[i]->domain);
				goto fail;
			}
		}
		if (!find_index(cur, want[i]->domain, &pos)) {
			c[k].op = MM_CHANGE_ADD;
			c[k++].after = mm_partner_ref(want[i]);
			continue;
		}
		kept[pos] = true;
		if (mm_partner_config_equal(cur->partners[pos], want[i]))
			continue;
		c[k].op = MM_CHANGE_SET;
		c[k].before = mm_partner_ref(cur->partners[pos]);
		c[k++].after = mm_partner_ref(want[i]);
	}
	for (size_t i = 0; i < cur->n; i++) {
		if (kept[i])
			continue;
		c[k].op = MM_CHANGE_DEL;
		c[k++].before = mm_partner_ref(cur->partners[i]);
	}
	free(kept);
	*ret = c;
	*ret_n = k;
	return 0;
fail:
	mm_changes_free(c, k);
	free(kept);
	return r;
}
