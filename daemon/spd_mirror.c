/* The mirror: the policies we want, each with what the kernel holds for
 * it (enum ent_state) and its kernel index, found by selector (open
 * addressing) and by partner (a list per partner record). */
#include "spd_int.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Fault in a large fresh allocation with one call instead of one page
 * fault per page: on a cold start the index is written once, end to end,
 * and in a VM each fault is an exit.  Best effort (Linux >= 5.14). */
void spd_prefault(void *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (len < (64u << 10) || end <= a)
		return;
	/* Huge pages where the range allows: fewer faults, fewer TLB misses. */
	(void)madvise((void *)a, end - a, MADV_HUGEPAGE);
	(void)madvise((void *)a, end - a, MADV_POPULATE_WRITE);
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *c = data;

	for (size_t i = 0; i < len; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t word(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

/* A word at a time, not a byte: a cold start hashes every policy. */
static uint64_t sel_hash(uint8_t dir, const struct mm_prefix *src, const struct mm_prefix *dst)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t h = (uint64_t)dir << 40 | (uint64_t)src->addr.family << 32 |
		     (uint64_t)dst->addr.family << 16 | (uint64_t)src->len << 8 | dst->len;

	h = (h ^ word(src->addr.bytes)) * k;
	h = (h ^ (h >> 29) ^ word(src->addr.bytes + 8)) * k;
	h = (h ^ (h >> 29) ^ word(dst->addr.bytes)) * k;
	h = (h ^ (h >> 29) ^ word(dst->addr.bytes + 8)) * k;
	return mix(h);
}

static bool entry_is(const struct entry *e, uint8_t dir, const struct mm_prefix *src,
		     const struct mm_prefix *dst)
{
	return e->dir == dir && memcmp(&e->src, src, sizeof(*src)) == 0 &&
	       memcmp(&e->dst, dst, sizeof(*dst)) == 0;
}

uint32_t spd_entry_find(const struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
			   const struct mm_prefix *dst)
{
	size_t i;

	if (!spd->eh)
		return NONE;
	i = sel_hash(dir, src, dst) & spd->eh_mask;
	for (; spd->eh[i]; i = (i + 1) & spd->eh_mask) {
		uint32_t x = spd->eh[i] - 1;

		if (entry_is(&spd->e[x], dir, src, dst))
			return x;
	}
	return NONE;
}

static size_t entry_home(const struct mm_spd *spd, uint32_t x);
static size_t prec_home(const struct mm_spd *spd, uint32_t x);

/* Grow an open-addressing table of (slot + 1) values to hold `live` at a
 * load factor of at most 1/2 (keeps linear probing short), rehashing with
 * home().  Serves both indexes: entries by selector, partners by domain. */
static int hash_reserve(struct mm_spd *spd, uint32_t **tabp, size_t *maskp, size_t live,
			size_t (*home)(const struct mm_spd *, uint32_t))
{
	size_t cap = *tabp ? *maskp + 1 : 0, ncap = 64;
	uint32_t *tab;

	if (live * 2 <= cap)
		return 0;
	while (ncap < live * 2)
		ncap *= 2;
	tab = calloc(ncap, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	spd_prefault(tab, ncap * sizeof(*tab));
	for (size_t i = 0; i < cap; i++) {
		size_t j;

		if (!(*tabp)[i])
			continue;
		j = home(spd, (*tabp)[i] - 1) & (ncap - 1);
		while (tab[j])
			j = (j + 1) & (ncap - 1);
		tab[j] = (*tabp)[i];
	}
	free(*tabp);
	*tabp = tab;
	*maskp = ncap - 1;
	return 0;
}

static int eh_reserve(struct mm_spd *spd, size_t live)
{
	return hash_reserve(spd, &spd->eh, &spd->eh_mask, live, entry_home);
}

/* Backward-shift deletion: no tombstones, so lookups stay short after
 * many partner changes. */
static void hash_remove(uint32_t *tab, size_t mask, size_t i,
			size_t (*home)(const struct mm_spd *, uint32_t), const struct mm_spd *spd)
{
	size_t j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (!tab[j])
			break;
		k = home(spd, tab[j] - 1) & mask;
		/* Move tab[j] into the hole unless its home lies cyclically
		 * in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			tab[i] = tab[j];
			i = j;
		}
	}
	tab[i] = 0;
}

static size_t entry_home(const struct mm_spd *spd, uint32_t x)
{
	const struct entry *e = &spd->e[x];

	return sel_hash(e->dir, &e->src, &e->dst);
}

static void entry_unindex(struct mm_spd *spd, uint32_t x)
{
	const struct entry *e = &spd->e[x];
	size_t i = sel_hash(e->dir, &e->src, &e->dst) & spd->eh_mask;

	while (spd->eh[i] && spd->eh[i] != x + 1)
		i = (i + 1) & spd->eh_mask;
	if (spd->eh[i])
		hash_remove(spd->eh, spd->eh_mask, i, entry_home, spd);
}

/* The entry with this selector, or a new one for partner: one probe
 * sequence for both, since a cold start does this for every policy.
 * *ret_created says which; NONE on ENOMEM. */
uint32_t spd_entry_get(struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
			  const struct mm_prefix *dst, uint32_t partner, bool *ret_created)
{
	struct prec *pr = &spd->p[partner];
	uint32_t x;
	size_t i;

	*ret_created = false;
	if (eh_reserve(spd, spd->live_e + 1) < 0)
		return NONE;
	for (i = sel_hash(dir, src, dst) & spd->eh_mask; spd->eh[i]; i = (i + 1) & spd->eh_mask)
		if (entry_is(&spd->e[spd->eh[i] - 1], dir, src, dst))
			return spd->eh[i] - 1;
	if (spd->free_e != NONE) {
		x = spd->free_e;
		spd->free_e = spd->e[x].next;
	} else {
		if (mm_grow((void **)&spd->e, &spd->cap_e, spd->n_e + 1, sizeof(*spd->e)) < 0)
			return NONE;
		x = (uint32_t)spd->n_e++;
	}
	spd->e[x] = (struct entry){ .src = *src, .dst = *dst, .dir = dir, .state = ENT_MISSING,
				    .partner = partner, .next = pr->head };
	pr->head = x;
	pr->count++;
	spd->live_e++;
	spd->eh[i] = x + 1;
	*ret_created = true;
	return x;
}

/* Unlink from the index and the partner's list; the slot is reused. */
void spd_entry_remove(struct mm_spd *spd, uint32_t x)
{
	struct entry *e = &spd->e[x];
	struct prec *pr = &spd->p[e->partner];
	uint32_t *link = &pr->head;

	entry_unindex(spd, x);
	/* Conflict records name entries by slot, which is about to be reused. */
	for (size_t i = 0; e->conflicts && i < spd->conf.n;) {
		if (spd->conf.v[i].entry == x) {
			spd->conf.v[i] = spd->conf.v[--spd->conf.n];
			e->conflicts--;
		} else {
			i++;
		}
	}
	while (*link != NONE && *link != x)
		link = &spd->e[*link].next;
	if (*link == x)
		*link = e->next;
	pr->count--;
	e->state = ENT_FREE;
	e->next = spd->free_e;
	spd->free_e = x;
	spd->live_e--;
}

/* Give an entry to another partner (a selector that changes owner in a
 * change set): the kernel's policy stays, only its template changes. */
void spd_entry_move(struct mm_spd *spd, uint32_t x, uint32_t partner)
{
	struct entry *e = &spd->e[x];
	uint32_t *link = &spd->p[e->partner].head;

	while (*link != NONE && *link != x)
		link = &spd->e[*link].next;
	if (*link == x)
		*link = e->next;
	spd->p[e->partner].count--;
	e->partner = partner;
	e->next = spd->p[partner].head;
	spd->p[partner].head = x;
	spd->p[partner].count++;
}

static uint64_t str_hash(const char *s)
{
	return mix(fnv(0xcbf29ce484222325ULL, s, strlen(s)));
}

static size_t prec_home(const struct mm_spd *spd, uint32_t x)
{
	return str_hash(spd->p[x].domain);
}

uint32_t spd_prec_find(const struct mm_spd *spd, const char *domain)
{
	size_t i;

	if (!spd->ph)
		return NONE;
	for (i = str_hash(domain) & spd->ph_mask; spd->ph[i]; i = (i + 1) & spd->ph_mask)
		if (strcmp(spd->p[spd->ph[i] - 1].domain, domain) == 0)
			return spd->ph[i] - 1;
	return NONE;
}

static int ph_reserve(struct mm_spd *spd, size_t live)
{
	return hash_reserve(spd, &spd->ph, &spd->ph_mask, live, prec_home);
}

/* The partner record for domain, or a new one (*ret_created): one hash
 * and one probe sequence for both.  NONE on ENOMEM. */
uint32_t spd_prec_get(struct mm_spd *spd, const char *domain, bool *ret_created)
{
	uint32_t x;
	size_t i;
	char *d;

	*ret_created = false;
	if (ph_reserve(spd, spd->live_p + 1) < 0)
		return NONE;
	for (i = str_hash(domain) & spd->ph_mask; spd->ph[i]; i = (i + 1) & spd->ph_mask)
		if (strcmp(spd->p[spd->ph[i] - 1].domain, domain) == 0)
			return spd->ph[i] - 1;
	d = strdup(domain);
	if (!d)
		return NONE;
	if (spd->free_p != NONE) {
		x = spd->free_p;
		spd->free_p = spd->p[x].next_free;
	} else {
		if (mm_grow((void **)&spd->p, &spd->cap_p, spd->n_p + 1, sizeof(*spd->p)) < 0) {
			free(d);
			return NONE;
		}
		x = (uint32_t)spd->n_p++;
	}
	spd->p[x] = (struct prec){ .domain = d, .head = NONE, .next_free = NONE };
	spd->ph[i] = x + 1;
	spd->live_p++;
	*ret_created = true;
	return x;
}

/* Only for a partner without entries. */
void spd_prec_remove(struct mm_spd *spd, uint32_t x)
{
	struct prec *pr = &spd->p[x];
	size_t i = str_hash(pr->domain) & spd->ph_mask;

	while (spd->ph[i] && spd->ph[i] != x + 1)
		i = (i + 1) & spd->ph_mask;
	if (spd->ph[i])
		hash_remove(spd->ph, spd->ph_mask, i, prec_home, spd);
	free(pr->domain);
	free(pr->message);
	*pr = (struct prec){ .head = NONE, .next_free = spd->free_p };
	spd->free_p = x;
	spd->live_p--;
}

/* Room for this many entries and partners (a cold start reserves once). */
int spd_index_reserve(struct mm_spd *spd, size_t entries, size_t partners)
{
	if (mm_grow((void **)&spd->e, &spd->cap_e, entries, sizeof(*spd->e)) < 0 ||
	    eh_reserve(spd, entries) < 0 || ph_reserve(spd, partners) < 0 ||
	    mm_grow((void **)&spd->p, &spd->cap_p, partners, sizeof(*spd->p)) < 0)
		return -ENOMEM;
	spd_prefault(spd->e, entries * sizeof(*spd->e));
	spd_prefault(spd->p, partners * sizeof(*spd->p));
	return 0;
}

void spd_index_clear(struct mm_spd *spd)
{
	for (size_t i = 0; i < spd->n_p; i++) {
		free(spd->p[i].domain);
		free(spd->p[i].message);
	}
	free(spd->e);
	free(spd->eh);
	free(spd->p);
	free(spd->ph);
	spd->e = NULL;
	spd->eh = NULL;
	spd->p = NULL;
	spd->ph = NULL;
	spd->n_e = spd->cap_e = spd->live_e = 0;
	spd->n_p = spd->cap_p = spd->live_p = 0;
	spd->eh_mask = spd->ph_mask = 0;
	spd->free_e = spd->free_p = NONE;
	spd->repair.n = spd->stale.n = spd->conf.n = 0;
}


/* ---- policies of entries ---- */

void spd_entry_policy(const struct mm_spd *spd, uint32_t x, struct mm_xfrm_policy *p)
{
	const struct entry *e = &spd->e[x];
	const struct prec *pr = &spd->p[e->partner];

	if (e->dir == XFRM_POLICY_OUT)
		mm_spd_fill_policy(&spd->cfg, e->dir, &e->src, &e->dst, &pr->tun, &pr->gw, pr->reqid, p);
	else
		mm_spd_fill_policy(&spd->cfg, e->dir, &e->src, &e->dst, &pr->gw, &pr->tun, pr->reqid, p);
}

void spd_set_problem(struct mm_spd *spd, uint32_t x, int error, const char *message)
{
	struct prec *pr = &spd->p[x];

	free(pr->message);
	pr->message = message ? strdup(message) : NULL;
	pr->error = error;
}

/* The partner record's template follows from the partner exactly as in
 * mm_spd_compute(), so entries need not carry it. */
void spd_prec_fill(struct mm_spd *spd, uint32_t x, const struct mm_partner *p)
{
	struct prec *pr = &spd->p[x];
	bool has = mm_spd_template(&spd->cfg, p, &pr->tun, &pr->gw);

	pr->reqid = p->reqid;
	pr->active = mm_partner_has_tunnel(p);
	if (!has)
		pr->tun = pr->gw = (struct mm_addr){ 0 };
	spd_set_problem(spd, x, 0, NULL);
}

