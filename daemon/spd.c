#include "spd.h"

#include <errno.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "netlink/xfrm_state.h"

#define NONE UINT32_MAX

/* ---- configuration ---- */

void mm_spd_config_init(struct mm_spd_config *cfg)
{
	*cfg = (struct mm_spd_config){
		.prio_base = MM_SPD_PRIO_BASE_DEFAULT,
		.tag = MM_SPD_TAG_DEFAULT,
		.reqid_min = MM_SPD_REQID_MIN_DEFAULT,
		.reqid_max = MM_SPD_REQID_MAX_DEFAULT,
	};
}

int mm_spd_config_check(const struct mm_spd_config *cfg, struct mm_err *err)
{
	if (cfg->tag == 0)
		return mm_err_set(err, MM_ERR_INVALID, "tag",
				  "the selector tag must not be 0, which every other tool uses");
	if (cfg->reqid_min == 0 || cfg->reqid_min > cfg->reqid_max)
		return mm_err_set(err, MM_ERR_INVALID, "reqid",
				  "the reqid range %u-%u is empty or includes 0",
				  cfg->reqid_min, cfg->reqid_max);
	if (cfg->prio_base > UINT32_MAX - MM_SPD_PRIO_SPAN)
		return mm_err_set(err, MM_ERR_INVALID, "priority",
				  "the priority band starting at %u wraps around", cfg->prio_base);
	if (cfg->tunnel4.family && cfg->tunnel4.family != AF_INET)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel4",
				  "the IPv4 tunnel address is not an IPv4 address");
	if (cfg->tunnel6.family && cfg->tunnel6.family != AF_INET6)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel6",
				  "the IPv6 tunnel address is not an IPv6 address");
	if (!cfg->tunnel4.family && !cfg->tunnel6.family)
		return mm_err_set(err, MM_ERR_INVALID, "tunnel",
				  "no tunnel address is configured");
	if (cfg->n_locals && !cfg->locals)
		return mm_err_set(err, MM_ERR_INVALID, "local", "local prefixes missing");
	for (size_t i = 0; i < cfg->n_locals; i++) {
		const struct mm_prefix *p = &cfg->locals[i].prefix;

		if ((p->addr.family != AF_INET && p->addr.family != AF_INET6) ||
		    p->len > mm_addr_bits(p->addr.family))
			return mm_err_set(err, MM_ERR_INVALID, "local",
					  "local prefix %zu is not an IPv4 or IPv6 prefix", i);
	}
	return 0;
}

uint32_t mm_spd_priority(const struct mm_spd_config *cfg, const struct mm_prefix *src,
			 const struct mm_prefix *dst)
{
	return cfg->prio_base + (MM_SPD_PRIO_SPAN - 1) - (uint32_t)(src->len + dst->len);
}

bool mm_spd_is_ours(const struct mm_spd_config *cfg, const struct mm_xfrm_policy *p)
{
	if (p->sel.user != cfg->tag)
		return false;
	if (p->priority < cfg->prio_base || p->priority - cfg->prio_base >= MM_SPD_PRIO_SPAN)
		return false;
	if (p->n_tmpl == 0)
		return false;
	for (unsigned i = 0; i < p->n_tmpl; i++)
		if (p->tmpl[i].reqid < cfg->reqid_min || p->tmpl[i].reqid > cfg->reqid_max)
			return false;
	return true;
}

/* ---- the desired state ---- */

static bool active_partner(const struct mm_partner *p)
{
	return p->enabled && p->path != MM_PATH_SEG;
}

static const struct mm_addr *tunnel_of(const struct mm_spd_config *cfg, int family)
{
	const struct mm_addr *a = family == AF_INET ? &cfg->tunnel4 : &cfg->tunnel6;

	return a->family ? a : NULL;
}

/* The partner's first gateway for which we have a tunnel address. */
static const struct mm_addr *pick_gateway(const struct mm_spd_config *cfg,
					  const struct mm_partner *p)
{
	for (size_t i = 0; i < p->n_gateways; i++)
		if (tunnel_of(cfg, p->gateways[i].family))
			return &p->gateways[i];
	return NULL;
}

/* Copies with the bytes past the family's width zeroed, so that prefixes
 * can be compared and hashed as plain memory. */
static struct mm_addr clean_addr(const struct mm_addr *a)
{
	struct mm_addr c = { .family = a->family };

	memcpy(c.bytes, a->bytes, a->family == AF_INET ? 4 : 16);
	return c;
}

static struct mm_prefix clean_prefix(const struct mm_prefix *p)
{
	return (struct mm_prefix){ .addr = clean_addr(&p->addr), .len = p->len };
}

static int prefix_order(const struct mm_prefix *a, const struct mm_prefix *b)
{
	int c = memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr.bytes));

	if (c)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

static int want_cmp(const void *x, const void *y)
{
	const struct mm_spd_want *a = x, *b = y;
	int c;

	if (a->dir != b->dir)
		return a->dir < b->dir ? -1 : 1;
	if (a->src.addr.family != b->src.addr.family)
		return a->src.addr.family < b->src.addr.family ? -1 : 1;
	c = prefix_order(&a->src, &b->src);
	if (c)
		return c;
	c = prefix_order(&a->dst, &b->dst);
	if (c)
		return c;
	/* Ties between partners: the earlier partner keeps the selector. */
	return (a->partner > b->partner) - (a->partner < b->partner);
}

struct builder {
	struct mm_spd_desired *d;
	size_t cap_want, cap_prob;
};

static int add_problem(struct builder *b, size_t partner, int error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int add_problem(struct builder *b, size_t partner, int error, const char *fmt, ...)
{
	struct mm_spd_problem *pr;
	va_list ap;

	if (b->d->n_problems == b->cap_prob) {
		size_t cap = b->cap_prob ? b->cap_prob * 2 : 8;
		void *v = realloc(b->d->problems, cap * sizeof(*pr));

		if (!v)
			return -ENOMEM;
		b->d->problems = v;
		b->cap_prob = cap;
	}
	pr = &b->d->problems[b->d->n_problems++];
	pr->partner = partner;
	pr->error = error;
	va_start(ap, fmt);
	vsnprintf(pr->message, sizeof(pr->message), fmt, ap);
	va_end(ap);
	return 0;
}

static int add_want(struct builder *b, const struct mm_spd_want *w)
{
	if (b->d->n_want == b->cap_want) {
		size_t cap = b->cap_want ? b->cap_want * 2 : 64;
		void *v = realloc(b->d->want, cap * sizeof(*w));

		if (!v)
			return -ENOMEM;
		b->d->want = v;
		b->cap_want = cap;
	}
	b->d->want[b->d->n_want++] = *w;
	return 0;
}

static int partner_wants(const struct mm_spd_config *cfg, const struct mm_partner *p,
			 size_t index, struct builder *b)
{
	const struct mm_addr *gw, *tun;
	size_t before = b->d->n_want;
	int r;

	if (p->reqid < cfg->reqid_min || p->reqid > cfg->reqid_max)
		return add_problem(b, index, -ERANGE,
				   "reqid %u is outside the reserved range %u-%u", p->reqid,
				   cfg->reqid_min, cfg->reqid_max);
	gw = pick_gateway(cfg, p);
	if (!gw)
		return add_problem(b, index, -ENOENT,
				   "no gateway of a family we have a tunnel address for "
				   "(IPv4 tunnel: %s, IPv6 tunnel: %s)",
				   cfg->tunnel4.family ? "yes" : "none",
				   cfg->tunnel6.family ? "yes" : "none");
	tun = tunnel_of(cfg, gw->family);
	for (size_t l = 0; l < cfg->n_locals; l++) {
		const struct mm_spd_local *loc = &cfg->locals[l];

		for (size_t i = 0; i < p->n_ranges; i++) {
			struct mm_spd_want w = {
				.tsrc = clean_addr(tun), .tdst = clean_addr(gw),
				.reqid = p->reqid, .partner = index,
			};
			struct mm_prefix local = clean_prefix(&loc->prefix);
			struct mm_prefix range = clean_prefix(&p->ranges[i]);

			if (local.addr.family != range.addr.family)
				continue;
			w.dir = XFRM_POLICY_OUT;
			w.src = local;
			w.dst = range;
			w.priority = mm_spd_priority(cfg, &w.src, &w.dst);
			if ((r = add_want(b, &w)) < 0)
				return r;
			/* in and fwd: the partner's traffic coming to us; the
			 * template's endpoints turn round with it. */
			w.dir = XFRM_POLICY_IN;
			w.src = range;
			w.dst = local;
			w.tsrc = clean_addr(gw);
			w.tdst = clean_addr(tun);
			if ((r = add_want(b, &w)) < 0)
				return r;
			if (loc->forward) {
				w.dir = XFRM_POLICY_FWD;
				if ((r = add_want(b, &w)) < 0)
					return r;
			}
		}
	}
	if (b->d->n_want == before)
		return add_problem(b, index, -EINVAL,
				   "none of its %zu range(s) shares a family with a local prefix",
				   p->n_ranges);
	return 0;
}

static bool same_selector(const struct mm_spd_want *a, const struct mm_spd_want *b)
{
	return a->dir == b->dir && memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

int mm_spd_compute(const struct mm_spd_config *cfg, const struct mm_partner *const *partners,
		   size_t n, struct mm_spd_desired **ret)
{
	struct builder b = { 0 };
	size_t out = 0;
	int r;

	r = mm_spd_config_check(cfg, NULL);
	if (r < 0)
		return r;
	b.d = calloc(1, sizeof(*b.d));
	if (!b.d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!partners[i] || !active_partner(partners[i]))
			continue;
		r = partner_wants(cfg, partners[i], i, &b);
		if (r < 0)
			goto fail;
	}
	if (b.d->n_want)
		qsort(b.d->want, b.d->n_want, sizeof(*b.d->want), want_cmp);
	/* Unique selectors: the same local prefix twice is harmless; the same
	 * selector for two partners is a table error the kernel could not
	 * express (one policy, one reqid), so the later partner loses it. */
	for (size_t i = 0; i < b.d->n_want; i++) {
		const struct mm_spd_want *w = &b.d->want[i];

		if (out && same_selector(&b.d->want[out - 1], w)) {
			const struct mm_spd_want *kept = &b.d->want[out - 1];
			char s[MM_ADDR_STRLEN], d[MM_ADDR_STRLEN];

			if (kept->partner != w->partner) {
				r = add_problem(&b, w->partner, -EEXIST,
						"selector %s %s -> %s is already %s's: left out",
						mm_xfrm_dir_name(w->dir), mm_prefix_str(&w->src, s),
						mm_prefix_str(&w->dst, d),
						partners[kept->partner]->domain);
				if (r < 0)
					goto fail;
			}
			continue;
		}
		b.d->want[out++] = *w;
	}
	b.d->n_want = out;
	*ret = b.d;
	return 0;
fail:
	mm_spd_desired_free(b.d);
	return r;
}

void mm_spd_desired_free(struct mm_spd_desired *d)
{
	if (!d)
		return;
	free(d->want);
	free(d->problems);
	free(d);
}

static void fill_policy(const struct mm_spd_config *cfg, uint8_t dir, const struct mm_prefix *src,
			const struct mm_prefix *dst, const struct mm_addr *tsrc,
			const struct mm_addr *tdst, uint32_t reqid, struct mm_xfrm_policy *p)
{
	struct mm_xfrm_tmpl *t = &p->tmpl[0];

	memset(p, 0, sizeof(*p));
	p->sel.family = src->addr.family;
	p->sel.src = *src;
	p->sel.dst = *dst;
	p->sel.user = cfg->tag;
	p->dir = dir;
	p->type = XFRM_POLICY_TYPE_MAIN;
	p->action = XFRM_POLICY_ALLOW;
	p->share = XFRM_SHARE_ANY;
	p->priority = mm_spd_priority(cfg, src, dst);
	p->n_tmpl = 1;
	t->family = tsrc->family;
	t->src = *tsrc;
	t->dst = *tdst;
	t->proto = IPPROTO_ESP;
	t->mode = XFRM_MODE_TUNNEL;
	t->reqid = reqid;
	t->optional = false;  /* level required */
	/* Any algorithm: charon negotiates them, the policy only demands ESP. */
	t->aalgos = t->ealgos = t->calgos = UINT32_MAX;
}

void mm_spd_want_policy(const struct mm_spd_config *cfg, const struct mm_spd_want *w,
			struct mm_xfrm_policy *ret)
{
	fill_policy(cfg, w->dir, &w->src, &w->dst, &w->tsrc, &w->tdst, w->reqid, ret);
}

/* ---- the reconciler's index ---- */

enum {
	ST_USED = 0x01,
	ST_PRESENT = 0x02,   /* the kernel has our policy with this identity */
	ST_INSYNC = 0x04,    /* ... with exactly the wanted content */
	ST_COLLIDE = 0x08,   /* a policy with our tag, not ours, holds the identity */
	ST_QUEUED = 0x10,    /* in the repair queue */
	ST_DRIFT = 0x20,     /* changed by someone else since we last saw it right */
	ST_MARK = 0x40,      /* scratch for partner_changed */
	ST_WASOK = 0x80,     /* scratch for a full pass: right before it */
	ST_WASCOLLIDE = 0x100, /* scratch for a full pass: noted before it */
};

/* One wanted policy, kept small: the template lives in the partner record
 * and the priority follows from the prefixes. */
struct entry {
	struct mm_prefix src, dst;
	uint8_t dir;
	uint16_t st;
	uint16_t conflicts;  /* foreign policies on this selector */
	uint32_t partner;
	uint32_t next;       /* the partner's next entry, or the free list */
	uint32_t kindex;     /* the kernel's index of our policy, 0 unknown: read
				from a dump or an event, never guessed (see del) */
};

struct prec {
	char *domain;        /* NULL: free slot */
	char *message;       /* why it cannot be programmed, NULL if it can */
	int error;
	uint32_t reqid;
	struct mm_addr tun, gw;
	uint32_t head;       /* first entry */
	uint32_t count;
	uint32_t next_free;
	int32_t sas;         /* SAs with its reqid, as of the last count */
	uint32_t drift_n;    /* scratch: drifted policies found by a full pass */
	uint32_t drift_x;    /* scratch: one of them, for the note */
	bool active;
	bool drift;          /* scratch: collecting report.drifted */
};

/* A policy to delete, named by its kernel index when we know it, else by
 * its identity.
 *
 * Why by index: a delete by selector makes the kernel walk the policy's
 * whole inexact bin afterwards (see mm_xfrm_policy_encode_del), so a bulk
 * delete is quadratic (half of 40k policies: 8 s; 60k stale policies:
 * minutes in the kernel); by index it is O(1).
 *
 * Why that is safe: the kernel takes policy indexes from a per-namespace
 * counter that only moves forward (idx_generator += 8, skipping values in
 * use), so an index is not reused until about 2^29 more policies have been
 * created; a policy deleted and re-created by someone else comes back
 * under a new index.  We delete by an index only when we read it from the
 * kernel (a dump or a monitor event) for a policy we classified as ours,
 * and the index map follows the events: a policy that goes clears its
 * entry's index; an event that shows the index gone or held by a policy
 * that is not ours cancels a pending delete (index_event()); when events
 * were lost the indexes are not used until a full comparison has read
 * them again.  The kernel matches the index (which carries the direction),
 * type, mark and if_id, but not the selector (xfrm_policy_byid()), and our
 * own delete notifications are filtered out before we see them, so what a
 * delete removed cannot be checked afterwards: a by-index delete that
 * finds nothing (ENOENT, the policy went or was re-created meanwhile)
 * schedules a full comparison, which finds and deletes any survivor. */
enum { DEL_SEND, DEL_GONE, DEL_FOREIGN };

struct del {
	struct mm_xfrm_sel sel;
	uint8_t dir, type;
	uint8_t cancel;      /* DEL_SEND, or why it is not sent any more */
	bool has_mark;
	uint32_t mark, mark_mask, if_id;
	uint32_t index;      /* the kernel's index, 0: delete by identity */
	uint32_t reqid;
	uint32_t partner;    /* prec, NONE when it belongs to none */
};

/* A pending by-index delete, for looking it up by index during apply. */
struct pend {
	uint32_t index;
	uint32_t del;        /* into dels */
};

struct conflict {
	uint32_t entry;
	uint32_t index;      /* the foreign policy's kernel index */
	uint32_t priority;
	uint8_t dir;
};

enum { OP_NEW, OP_UPD, OP_DEL };

struct op {
	uint32_t ref;        /* entry, or index into dels */
	uint8_t kind;
};

#define VEC(T) struct { T *v; size_t n, cap; }

struct mm_spd {
	struct mm_spd_config cfg;
	struct mm_spd_local *locals;
	struct mm_nl *nl;
	struct mm_xfrm_monitor *mon;
	mm_spd_note_fn note;
	void *note_ud;
	mm_xfrm_event_fn hook;
	void *hook_ud;

	struct entry *e;
	size_t n_e, cap_e;   /* slots, including free ones */
	uint32_t free_e;
	size_t live_e;
	uint32_t *eh;        /* open addressing: entry + 1, 0 empty */
	size_t eh_mask;

	struct prec *p;
	size_t n_p, cap_p;
	uint32_t free_p;
	uint32_t *ph;
	size_t ph_mask;
	size_t live_p;

	VEC(uint32_t) repair;
	VEC(struct del) stale;     /* ours, no partner: to delete */
	VEC(struct conflict) conf;
	bool need_full;
	bool sas_valid;            /* prec.sas counts are current */
	struct timespec sas_time;  /* when they were counted */

	/* One apply at a time. */
	VEC(struct op) ops;
	VEC(struct del) dels;
	VEC(struct pend) pend;     /* by-index dels sorted by index, built on demand */
	bool pend_built;
	bool applying;
	bool index_lost;           /* events lost since the indexes were read */
	struct mm_spd_report *rep;
	bool busy;
	bool reading;   /* inside mm_spd_process_events() */
};

/* Fault in a large fresh allocation with one call instead of one page
 * fault per page: on a cold start the index is written once, end to end,
 * and in a VM each fault is an exit.  Best effort (Linux >= 5.14). */
static void prefault(void *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (len < (64u << 10) || end <= a)
		return;
	/* Huge pages where the range allows: fewer faults, fewer TLB misses. */
	(void)madvise((void *)a, end - a, MADV_HUGEPAGE);
	(void)madvise((void *)a, end - a, MADV_POPULATE_WRITE);
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t cap2;
	void *n;

	if (need <= *cap)
		return 0;
	cap2 = *cap ? *cap : 16;
	while (cap2 < need)
		cap2 *= 2;
	n = realloc(*v, cap2 * size);
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = cap2;
	return 0;
}

#define VEC_PUSH(vec, val) \
	(grow((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) < 0 ? -ENOMEM : \
	 ((vec).v[(vec).n++] = (val), 0))

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

static uint32_t entry_find(const struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
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
	prefault(tab, ncap * sizeof(*tab));
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
static uint32_t entry_get(struct mm_spd *spd, uint8_t dir, const struct mm_prefix *src,
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
		if (grow((void **)&spd->e, &spd->cap_e, spd->n_e + 1, sizeof(*spd->e)) < 0)
			return NONE;
		x = (uint32_t)spd->n_e++;
	}
	spd->e[x] = (struct entry){ .src = *src, .dst = *dst, .dir = dir, .st = ST_USED,
				    .partner = partner, .next = pr->head };
	pr->head = x;
	pr->count++;
	spd->live_e++;
	spd->eh[i] = x + 1;
	*ret_created = true;
	return x;
}

/* Unlink from the index and the partner's list; the slot is reused. */
static void entry_remove(struct mm_spd *spd, uint32_t x)
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
	e->st = 0;
	e->next = spd->free_e;
	spd->free_e = x;
	spd->live_e--;
}

static uint64_t str_hash(const char *s)
{
	return mix(fnv(0xcbf29ce484222325ULL, s, strlen(s)));
}

static size_t prec_home(const struct mm_spd *spd, uint32_t x)
{
	return str_hash(spd->p[x].domain);
}

static uint32_t prec_find(const struct mm_spd *spd, const char *domain)
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
static uint32_t prec_get(struct mm_spd *spd, const char *domain, bool *ret_created)
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
		if (grow((void **)&spd->p, &spd->cap_p, spd->n_p + 1, sizeof(*spd->p)) < 0) {
			free(d);
			return NONE;
		}
		x = (uint32_t)spd->n_p++;
	}
	spd->p[x] = (struct prec){ .domain = d, .head = NONE, .next_free = NONE };
	spd->ph[i] = x + 1;
	spd->live_p++;
	spd->sas_valid = false;  /* its SAs were never counted */
	*ret_created = true;
	return x;
}

/* Only for a partner without entries. */
static void prec_remove(struct mm_spd *spd, uint32_t x)
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

static void index_clear(struct mm_spd *spd)
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
	spd->sas_valid = false;
}

/* ---- notes ---- */

static const char *const note_names[MM_SPD_NOTE__MAX] = {
	[MM_SPD_NOTE_KERNEL_ERROR] = "kernel-error",
	[MM_SPD_NOTE_PARTNER_ERROR] = "partner-error",
	[MM_SPD_NOTE_CONFLICT] = "conflict",
	[MM_SPD_NOTE_DRIFT] = "drift",
	[MM_SPD_NOTE_STALE] = "stale",
	[MM_SPD_NOTE_RESYNC] = "resync",
};

const char *mm_spd_note_kind_name(enum mm_spd_note_kind kind)
{
	return kind < MM_SPD_NOTE__MAX ? note_names[kind] : "?";
}

static void note(struct mm_spd *spd, enum mm_spd_note_kind kind, uint32_t partner,
		 const struct mm_xfrm_policy *pol, int error, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void note(struct mm_spd *spd, enum mm_spd_note_kind kind, uint32_t partner,
		 const struct mm_xfrm_policy *pol, int error, const char *fmt, ...)
{
	char msg[MM_SPD_MSG_MAX], ps[MM_XFRM_POLICY_STRLEN];
	struct mm_spd_note n = { .kind = kind, .error = error, .message = msg };
	va_list ap;

	if (!spd->note)
		return;
	if (partner != NONE) {
		n.domain = spd->p[partner].domain;
		n.reqid = spd->p[partner].reqid;
	}
	if (pol) {
		n.policy = mm_xfrm_policy_str(pol, ps, sizeof(ps));
		if (!n.reqid && pol->n_tmpl)
			n.reqid = pol->tmpl[0].reqid;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	spd->note(&n, spd->note_ud);
}

/* ---- policies of entries ---- */

static void entry_policy(const struct mm_spd *spd, uint32_t x, struct mm_xfrm_policy *p)
{
	const struct entry *e = &spd->e[x];
	const struct prec *pr = &spd->p[e->partner];

	if (e->dir == XFRM_POLICY_OUT)
		fill_policy(&spd->cfg, e->dir, &e->src, &e->dst, &pr->tun, &pr->gw, pr->reqid, p);
	else
		fill_policy(&spd->cfg, e->dir, &e->src, &e->dst, &pr->gw, &pr->tun, pr->reqid, p);
}

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

static struct del del_of(const struct mm_xfrm_policy *p, uint32_t partner)
{
	return (struct del){
		.sel = p->sel, .dir = p->dir, .type = p->type, .has_mark = p->has_mark,
		.mark = p->mark, .mark_mask = p->mark_mask, .if_id = p->if_id,
		.index = mm_xfrm_policy_has_index(p) ? p->index : 0,
		.reqid = p->n_tmpl ? p->tmpl[0].reqid : 0, .partner = partner,
	};
}

static struct del del_of_entry(const struct mm_spd *spd, uint32_t x)
{
	const struct entry *e = &spd->e[x];

	return (struct del){
		.sel = { .family = e->src.addr.family, .src = e->src, .dst = e->dst,
			 .user = spd->cfg.tag },
		.dir = e->dir, .type = XFRM_POLICY_TYPE_MAIN, .index = e->kindex,
		.reqid = spd->p[e->partner].reqid, .partner = e->partner,
	};
}

static uint32_t usable_index(const struct mm_xfrm_policy *p)
{
	return mm_xfrm_policy_has_index(p) ? p->index : 0;
}

/* A selector of the shape we install: addresses only. */
static bool plain_selector(const struct mm_xfrm_sel *s)
{
	return (s->family == AF_INET || s->family == AF_INET6) && !s->proto && !s->sport &&
	       !s->sport_mask && !s->dport && !s->dport_mask && !s->ifindex;
}

/* The entry whose kernel identity this policy has, if any. */
static uint32_t entry_of_identity(const struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	if (p->sel.user != spd->cfg.tag || !plain_selector(&p->sel) || p->type != XFRM_POLICY_TYPE_MAIN ||
	    p->has_mark || p->if_id || p->has_sec_ctx)
		return NONE;
	return entry_find(spd, p->dir, &p->sel.src, &p->sel.dst);
}

/* The entry with this policy's direction and selector, user field aside. */
static uint32_t entry_of_selector(const struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	if (!plain_selector(&p->sel))
		return NONE;
	return entry_find(spd, p->dir, &p->sel.src, &p->sel.dst);
}

static void queue_repair(struct mm_spd *spd, uint32_t x, bool drift)
{
	struct entry *e = &spd->e[x];

	if (drift)
		e->st |= ST_DRIFT;
	if (e->st & ST_QUEUED)
		return;
	if (VEC_PUSH(spd->repair, x) < 0) {
		/* Cannot remember it: the full comparison will find it. */
		spd->need_full = true;
		return;
	}
	e->st |= ST_QUEUED;
}

static struct conflict *conflict_find(struct mm_spd *spd, uint8_t dir, uint32_t index)
{
	for (size_t i = 0; i < spd->conf.n; i++)
		if (spd->conf.v[i].dir == dir && spd->conf.v[i].index == index)
			return &spd->conf.v[i];
	return NULL;
}

static void conflict_note(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p)
{
	struct mm_xfrm_policy ours;

	entry_policy(spd, x, &ours);
	note(spd, MM_SPD_NOTE_CONFLICT, spd->e[x].partner, &ours, 0,
	     "a foreign policy (index %u, priority %u, uid %u) has the same selector; "
	     "left untouched, %s", p->index, p->priority, p->sel.user,
	     p->priority <= ours.priority ? "and it takes precedence over ours"
					  : "ours takes precedence");
}

static void collide_note(struct mm_spd *spd, uint32_t x, const struct mm_xfrm_policy *p)
{
	struct mm_xfrm_policy ours;

	entry_policy(spd, x, &ours);
	note(spd, MM_SPD_NOTE_CONFLICT, spd->e[x].partner, &ours, 0,
	     "a policy with our tag but outside our priority band or reqid range "
	     "(index %u, priority %u) holds this selector; not overwritten, ours is missing",
	     p->index, p->priority);
}

/* ---- events ---- */

static void policy_seen(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	uint32_t x = entry_of_identity(spd, p);

	if (x != NONE) {
		struct entry *e = &spd->e[x];
		struct mm_xfrm_policy want;

		if (!mm_spd_is_ours(&spd->cfg, p)) {
			if (!(e->st & ST_COLLIDE))
				collide_note(spd, x, p);
			e->st = (uint16_t)((e->st | ST_COLLIDE) & ~(ST_PRESENT | ST_INSYNC));
			e->kindex = 0;
			return;
		}
		entry_policy(spd, x, &want);
		e->st = (uint16_t)((e->st | ST_PRESENT) & ~ST_COLLIDE);
		e->kindex = usable_index(p);
		if (mm_xfrm_policy_equal(p, &want)) {
			e->st |= ST_INSYNC;
			return;
		}
		e->st &= (uint16_t)~ST_INSYNC;
		note(spd, MM_SPD_NOTE_DRIFT, e->partner, &want, 0,
		     "changed by someone else (index %u, priority %u): will be restored",
		     p->index, p->priority);
		queue_repair(spd, x, true);
		return;
	}
	if (mm_spd_is_ours(&spd->cfg, p)) {
		/* Ours by its marks but wanted by no partner. */
		if (VEC_PUSH(spd->stale, del_of(p, NONE)) < 0)
			spd->need_full = true;
		return;
	}
	x = entry_of_selector(spd, p);
	if (x != NONE && !conflict_find(spd, p->dir, p->index)) {
		struct conflict c = { .entry = x, .index = p->index, .priority = p->priority,
				      .dir = p->dir };

		if (VEC_PUSH(spd->conf, c) == 0)
			spd->e[x].conflicts++;
		conflict_note(spd, x, p);
	}
}

static void policy_gone(struct mm_spd *spd, const struct mm_xfrm_policy *p)
{
	uint32_t x = entry_of_identity(spd, p);
	struct conflict *c;

	if (x != NONE) {
		struct entry *e = &spd->e[x];

		if (e->st & ST_COLLIDE) {
			if (!mm_spd_is_ours(&spd->cfg, p)) {
				/* The squatter left: ours can go in now. */
				e->st &= (uint16_t)~ST_COLLIDE;
				queue_repair(spd, x, false);
			}
			return;
		}
		if (e->st & ST_PRESENT) {
			struct mm_xfrm_policy want;

			e->st &= (uint16_t)~(ST_PRESENT | ST_INSYNC);
			e->kindex = 0;
			entry_policy(spd, x, &want);
			note(spd, MM_SPD_NOTE_DRIFT, e->partner, &want, 0,
			     "deleted by someone else (index %u): will be restored", p->index);
			queue_repair(spd, x, true);
		}
		return;
	}
	c = conflict_find(spd, p->dir, p->index);
	if (c) {
		if (spd->e[c->entry].conflicts)
			spd->e[c->entry].conflicts--;
		*c = spd->conf.v[--spd->conf.n];
	}
}

void mm_spd_events_lost(struct mm_spd *spd)
{
	if (!spd->need_full)
		note(spd, MM_SPD_NOTE_RESYNC, NONE, NULL, -ENOBUFS,
		     "XFRM events were lost (receive buffer overflow): comparing with the kernel");
	spd->need_full = true;
	/* Any index we hold may have changed hands unseen. */
	spd->index_lost = true;
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
static void index_event(struct mm_spd *spd, const struct mm_xfrm_policy *p, bool gone)
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
	if (spd->applying)
		n += cancel_pending(spd, p->index, why);
	/* The kernel does not hand out an index twice, short of 2^29 new
	 * policies; only a creator asking for that very index can do this. */
	if (n && why == DEL_FOREIGN)
		note(spd, MM_SPD_NOTE_CONFLICT, NONE, p, 0,
		     "index %u, which named a stale policy of ours, now names a foreign policy "
		     "(priority %u, uid %u): not deleted", p->index, p->priority, p->sel.user);
}

void mm_spd_handle_event(struct mm_spd *spd, const struct mm_xfrm_event *ev)
{
	switch (ev->type) {
	case MM_XFRM_EV_POLICY_NEW:
	case MM_XFRM_EV_POLICY_UPD:
		index_event(spd, &ev->policy, false);
		policy_seen(spd, &ev->policy);
		break;
	case MM_XFRM_EV_POLICY_DEL:
		index_event(spd, &ev->policy, true);
		policy_gone(spd, &ev->policy);
		break;
	case MM_XFRM_EV_POLICY_EXPIRE:
		if (ev->hard) {
			index_event(spd, &ev->policy, true);
			policy_gone(spd, &ev->policy);
		}
		break;
	case MM_XFRM_EV_POLICY_FLUSH:
		if (!spd->need_full)
			note(spd, MM_SPD_NOTE_RESYNC, NONE, NULL, 0,
			     "the SPD was flushed by someone else: comparing with the kernel");
		spd->need_full = true;
		break;
	case MM_XFRM_EV_SA_NEW:
	case MM_XFRM_EV_SA_DEL:
	case MM_XFRM_EV_SA_EXPIRE:
	case MM_XFRM_EV_SA_FLUSH:
		/* SAs are charon's; we only count them, on demand. */
		spd->sas_valid = false;
		break;
	default:
		break;
	}
}

static int on_event(const struct mm_xfrm_event *ev, void *data)
{
	struct mm_spd *spd = data;

	mm_spd_handle_event(spd, ev);
	if (spd->hook)
		(void)spd->hook(ev, spd->hook_ud);
	return 0;
}

int mm_spd_process_events(struct mm_spd *spd)
{
	int r;

	if (!spd->mon)
		return 0;
	/* The monitor's buffers are in use while it delivers. */
	if (spd->reading)
		return -EBUSY;
	spd->reading = true;
	r = mm_xfrm_monitor_read(spd->mon, on_event, spd);
	if (r == -ENOBUFS) {
		mm_spd_events_lost(spd);
		r = mm_xfrm_monitor_read(spd->mon, on_event, spd);
		if (r == -ENOBUFS)
			r = 0;
	}
	spd->reading = false;
	return r;
}

/* ---- applying ---- */

static void report_reset(struct mm_spd_report *r)
{
	*r = (struct mm_spd_report){ 0 };
}

void mm_spd_report_done(struct mm_spd_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_drifted; i++)
		free(r->drifted[i]);
	free(r->drifted);
	report_reset(r);
}

static int op_encode(void *buf, size_t i, void *data)
{
	struct mm_spd *spd = data;
	const struct op *o = &spd->ops.v[i];
	struct mm_xfrm_policy p;

	if (o->kind == OP_DEL) {
		const struct del *d = &spd->dels.v[o->ref];

		if (d->cancel != DEL_SEND)
			return -ECANCELED;
		del_policy(d, &p);
		if (!d->index)
			return mm_xfrm_policy_encode_del(buf, &p);
		/* Events were lost: the index may have changed hands.  The
		 * full comparison the loss scheduled reads it again; going by
		 * selector instead would be right too, but in bulk it is the
		 * quadratic path. */
		if (spd->index_lost)
			return -ESTALE;
		return mm_xfrm_policy_encode_del_index(buf, &p);
	}
	entry_policy(spd, o->ref, &p);
	return mm_xfrm_policy_encode_add(buf, &p, o->kind == OP_UPD);
}

static void op_done(size_t i, const struct mm_nl_result *res, void *data)
{
	struct mm_spd *spd = data;
	const struct op *o = &spd->ops.v[i];
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
		note(spd, MM_SPD_NOTE_KERNEL_ERROR, d->partner, &p, res->error,
		     "delete refused: %s%s%s", strerror(-res->error),
		     res->extack[0] ? ": " : "", res->extack);
		return;
	}
	if (res->error == 0) {
		struct entry *e = &spd->e[o->ref];

		e->st |= ST_PRESENT | ST_INSYNC;
		/* A new policy's index is not in the ack, and our own events
		 * are filtered: unknown until the next dump.  An update keeps
		 * the index of the policy it replaces. */
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
	entry_policy(spd, o->ref, &p);
	note(spd, MM_SPD_NOTE_KERNEL_ERROR, spd->e[o->ref].partner, &p, res->error,
	     "%s refused: %s%s%s", o->kind == OP_NEW ? "add" : "update", strerror(-res->error),
	     res->extack[0] ? ": " : "", res->extack);
}

static void op_pause(void *data)
{
	/* Between sends: handle what others changed meanwhile, so the
	 * monitor cannot overflow (our own echoes never reach it: the port
	 * id filter drops them in the kernel). */
	(void)mm_spd_process_events(data);
}

static int push_op(struct mm_spd *spd, uint8_t kind, uint32_t ref)
{
	return VEC_PUSH(spd->ops, ((struct op){ .ref = ref, .kind = kind }));
}

static int push_del(struct mm_spd *spd, const struct del *d)
{
	int r = VEC_PUSH(spd->dels, *d);

	if (r < 0)
		return r;
	return push_op(spd, OP_DEL, (uint32_t)(spd->dels.n - 1));
}

/* Send spd->ops.  Adds and updates were queued before deletes, so a range
 * that changes shape is never uncovered in between. */
static int apply(struct mm_spd *spd, struct mm_spd_report *rep)
{
	bool by_index = false;
	int r;

	for (size_t i = 0; i < spd->dels.n && !by_index; i++)
		by_index = spd->dels.v[i].index != 0;
	spd->rep = rep;
	spd->applying = true;
	spd->pend_built = false;
	/* Deletes by index are about to go out: bring the index map up to
	 * date with what others changed since it was read. */
	if (by_index && spd->mon)
		(void)mm_spd_process_events(spd);
	r = mm_nl_batch(spd->nl, spd->ops.n, op_encode, op_done, spd->mon ? op_pause : NULL, spd);
	spd->applying = false;
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

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Name the partners whose drifted policies are right again. */
static int collect_drift(struct mm_spd *spd, struct mm_spd_report *rep)
{
	size_t n = 0, k = 0;

	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (!(e->st & ST_USED) || !(e->st & ST_DRIFT))
			continue;
		if ((e->st & (ST_PRESENT | ST_INSYNC)) != (ST_PRESENT | ST_INSYNC))
			continue;  /* not restored (yet): stays flagged */
		e->st &= (uint16_t)~ST_DRIFT;
		if (!spd->p[e->partner].drift) {
			spd->p[e->partner].drift = true;
			n++;
		}
	}
	if (!n)
		return 0;
	rep->drifted = calloc(n, sizeof(*rep->drifted));
	if (!rep->drifted)
		return -ENOMEM;
	for (size_t i = 0; i < spd->n_p; i++) {
		if (!spd->p[i].domain || !spd->p[i].drift)
			continue;
		spd->p[i].drift = false;
		rep->drifted[k] = strdup(spd->p[i].domain);
		if (!rep->drifted[k])
			return -ENOMEM;
		rep->n_drifted = ++k;
	}
	qsort(rep->drifted, rep->n_drifted, sizeof(char *), cmp_str);
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
static int queue_stale(struct mm_spd *spd)
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
			note(spd, MM_SPD_NOTE_STALE, NONE, &p, 0,
			     "%zu of our policies with reqid %u (this one among them) belong to no "
			     "partner: deleting", i + 1 - first, spd->stale.v[i].reqid);
			first = i + 1;
		}
		r = push_del(spd, &spd->stale.v[i]);
		if (r < 0)
			return r;
	}
	spd->stale.n = 0;
	return 0;
}

/* ---- comparing with the kernel ---- */

struct scan {
	struct mm_spd *spd;
	struct conflict *old;  /* conflicts known before, sorted by (dir, index) */
	size_t n_old;
};

static int conflict_order(const void *x, const void *y)
{
	const struct conflict *a = x, *b = y;

	if (a->dir != b->dir)
		return a->dir < b->dir ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

static void scan_reset(void *data)
{
	struct mm_spd *spd = ((struct scan *)data)->spd;

	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		e->st &= (uint16_t)~(ST_PRESENT | ST_INSYNC | ST_COLLIDE);
		e->conflicts = 0;
		e->kindex = 0;
	}
	spd->conf.n = 0;
	spd->stale.n = 0;
}

static int scan_one(const struct mm_xfrm_policy *p, void *data)
{
	struct scan *sc = data;
	struct mm_spd *spd = sc->spd;
	uint32_t x = entry_of_identity(spd, p);

	if (x != NONE) {
		struct entry *e = &spd->e[x];
		struct mm_xfrm_policy want;

		if (!mm_spd_is_ours(&spd->cfg, p)) {
			if (!(e->st & ST_WASCOLLIDE))
				collide_note(spd, x, p);
			e->st |= ST_COLLIDE;
			return 0;
		}
		entry_policy(spd, x, &want);
		e->st |= ST_PRESENT;
		e->kindex = usable_index(p);
		if (mm_xfrm_policy_equal(p, &want))
			e->st |= ST_INSYNC;
		return 0;
	}
	if (mm_spd_is_ours(&spd->cfg, p))
		return VEC_PUSH(spd->stale, del_of(p, NONE));
	x = entry_of_selector(spd, p);
	if (x != NONE) {
		struct conflict c = { .entry = x, .index = p->index, .priority = p->priority,
				      .dir = p->dir };

		if (VEC_PUSH(spd->conf, c) < 0)
			return -ENOMEM;
		spd->e[x].conflicts++;
		if (!sc->old || !bsearch(&c, sc->old, sc->n_old, sizeof(c), conflict_order))
			conflict_note(spd, x, p);
	}
	return 0;
}

struct live_reqids {
	uint32_t *v;
	size_t n;
	const struct mm_spd_config *cfg;
};

static int u32_order(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return (a > b) - (a < b);
}

static bool sa_orphan(const struct mm_xfrm_sa *sa, void *data)
{
	const struct live_reqids *l = data;

	if (sa->reqid < l->cfg->reqid_min || sa->reqid > l->cfg->reqid_max)
		return false;  /* not in our range: not ours */
	return !l->v || !bsearch(&sa->reqid, l->v, l->n, sizeof(uint32_t), u32_order);
}

/* Delete SAs whose reqid is in our range but belongs to no active partner:
 * what is left of partners removed while we were not looking. */
static int delete_orphan_sas(struct mm_spd *spd, struct mm_spd_report *rep)
{
	struct live_reqids l = { .cfg = &spd->cfg };
	struct mm_nl_result res;
	size_t deleted = 0;
	int r;

	l.v = malloc((spd->live_p ? spd->live_p : 1) * sizeof(uint32_t));
	if (!l.v)
		return -ENOMEM;
	for (size_t i = 0; i < spd->n_p; i++)
		if (spd->p[i].domain && spd->p[i].active)
			l.v[l.n++] = spd->p[i].reqid;
	qsort(l.v, l.n, sizeof(uint32_t), u32_order);
	r = mm_xfrm_sa_delete_if(spd->nl, sa_orphan, &l, &deleted, &res);
	free(l.v);
	if (r < 0) {
		note(spd, MM_SPD_NOTE_KERNEL_ERROR, NONE, NULL, r,
		     "deleting SAs of removed partners failed: %s%s%s", strerror(-r),
		     res.extack[0] ? ": " : "", res.extack);
		return r;
	}
	rep->sa_deleted += deleted;
	if (deleted)
		spd->sas_valid = false;
	return 0;
}

static void count_conflicts(const struct mm_spd *spd, struct mm_spd_report *rep)
{
	rep->conflicts = spd->conf.n;
	for (size_t x = 0; x < spd->n_e; x++)
		if (spd->e[x].st & ST_COLLIDE)
			rep->conflicts++;
}

/* Dump the SPD, compare it with the index, change only the difference.
 * With drift, policies that were right before and are not now are drift. */
static int full_pass(struct mm_spd *spd, bool drift, struct mm_spd_report *rep)
{
	struct scan sc = { .spd = spd };
	struct mm_nl_result res;
	int r;

	/* Events that predate the dump: handle them (they may be drift worth
	 * a note); the dump then decides the state. */
	(void)mm_spd_process_events(spd);
	spd->need_full = false;
	spd->index_lost = false;  /* the dump reads every index again */
	if (spd->conf.n) {
		sc.old = malloc(spd->conf.n * sizeof(*sc.old));
		if (!sc.old)
			return -ENOMEM;
		memcpy(sc.old, spd->conf.v, spd->conf.n * sizeof(*sc.old));
		sc.n_old = spd->conf.n;
		qsort(sc.old, sc.n_old, sizeof(*sc.old), conflict_order);
	}
	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];
		uint16_t ok = (e->st & (ST_PRESENT | ST_INSYNC)) == (ST_PRESENT | ST_INSYNC) ?
			      ST_WASOK : 0;

		e->st = (uint16_t)((e->st & ~(ST_WASOK | ST_WASCOLLIDE | ST_QUEUED)) | ok |
				   (e->st & ST_COLLIDE ? ST_WASCOLLIDE : 0));
	}
	spd->repair.n = 0;  /* the comparison covers every queued repair */
	scan_reset(&sc);
	r = mm_xfrm_policy_dump(spd->nl, scan_one, scan_reset, &sc, NULL, &res);
	free(sc.old);
	if (r < 0) {
		spd->need_full = true;
		note(spd, MM_SPD_NOTE_KERNEL_ERROR, NONE, NULL, r,
		     "reading the SPD failed: %s%s%s", strerror(-r), res.extack[0] ? ": " : "",
		     res.extack);
		return r;
	}
	spd->ops.n = spd->dels.n = 0;
	/* At most one op per entry and per stale policy: reserve once. */
	if (grow((void **)&spd->ops.v, &spd->ops.cap, spd->live_e + spd->stale.n,
		 sizeof(*spd->ops.v)) < 0)
		return -ENOMEM;
	prefault(spd->ops.v, spd->ops.cap * sizeof(*spd->ops.v));
	for (size_t x = 0; x < spd->n_e; x++) {
		struct entry *e = &spd->e[x];

		if (!(e->st & ST_USED) || (e->st & ST_COLLIDE))
			continue;
		if (drift && (e->st & ST_WASOK) && !(e->st & ST_INSYNC)) {
			struct prec *pr = &spd->p[e->partner];

			/* Counted, and noted once per partner below: a flush
			 * must not turn into one note per policy. */
			if (!pr->drift_n++)
				pr->drift_x = (uint32_t)x;
			e->st |= ST_DRIFT;
		}
		if (!(e->st & ST_PRESENT))
			r = push_op(spd, OP_NEW, (uint32_t)x);
		else if (!(e->st & ST_INSYNC))
			r = push_op(spd, OP_UPD, (uint32_t)x);
		else
			rep->unchanged++;
		if (r < 0)
			return r;
	}
	for (size_t i = 0; drift && i < spd->n_p; i++) {
		struct prec *pr = &spd->p[i];
		struct mm_xfrm_policy want;

		if (!pr->domain || !pr->drift_n)
			continue;
		entry_policy(spd, pr->drift_x, &want);
		note(spd, MM_SPD_NOTE_DRIFT, (uint32_t)i, &want, 0,
		     "%u of its policies (this one among them) were deleted or changed outside "
		     "mmtrustd: restoring", pr->drift_n);
		pr->drift_n = 0;
	}
	r = queue_stale(spd);
	if (r < 0)
		return r;
	r = apply(spd, rep);
	if (r < 0)
		return r;
	r = delete_orphan_sas(spd, rep);
	if (r < 0)
		return r;
	count_conflicts(spd, rep);
	return drift ? collect_drift(spd, rep) : 0;
}

static int run(struct mm_spd *spd, int (*step)(struct mm_spd *, struct mm_spd_report *, void *),
	       void *arg, struct mm_spd_report *ret)
{
	struct mm_spd_report rep;
	int r;

	if (spd->busy)
		return -EBUSY;
	spd->busy = true;
	report_reset(&rep);
	r = step(spd, &rep, arg);
	spd->busy = false;
	if (r < 0) {
		mm_spd_report_done(&rep);
		return r;
	}
	if (ret)
		*ret = rep;
	else
		mm_spd_report_done(&rep);
	return 0;
}

/* ---- whole table ---- */

struct sync_arg {
	const struct mm_partner *const *partners;
	size_t n;
};

static void set_problem(struct mm_spd *spd, uint32_t x, int error, const char *message)
{
	struct prec *pr = &spd->p[x];

	free(pr->message);
	pr->message = message ? strdup(message) : NULL;
	pr->error = error;
}

/* The partner record's template follows from the partner exactly as in
 * mm_spd_compute(), so entries need not carry it. */
static void prec_fill(struct mm_spd *spd, uint32_t x, const struct mm_partner *p)
{
	struct prec *pr = &spd->p[x];
	const struct mm_addr *gw = pick_gateway(&spd->cfg, p);

	pr->reqid = p->reqid;
	pr->active = active_partner(p);
	pr->gw = gw ? clean_addr(gw) : (struct mm_addr){ 0 };
	pr->tun = gw ? clean_addr(tunnel_of(&spd->cfg, gw->family)) : (struct mm_addr){ 0 };
	set_problem(spd, x, 0, NULL);
}

/* Upper bound of the policies a partner can want (for reserving memory). */
static size_t partner_max_wants(const struct mm_spd_config *cfg, const struct mm_partner *p)
{
	size_t n = 0;

	for (size_t l = 0; l < cfg->n_locals; l++)
		for (size_t i = 0; i < p->n_ranges; i++)
			if (cfg->locals[l].prefix.addr.family == p->ranges[i].addr.family)
				n += cfg->locals[l].forward ? 3 : 2;
	return n;
}

/* The same result as mm_spd_compute(), built straight into the index one
 * partner at a time: the whole desired vector would double the peak
 * memory of a large table for nothing. */
static int sync_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	const struct sync_arg *a = data;
	struct mm_spd_desired scratch = { 0 };
	struct builder b = { .d = &scratch };
	size_t total = 0;
	int r = -ENOMEM;

	for (size_t i = 0; i < a->n; i++)
		if (a->partners[i] && active_partner(a->partners[i]))
			total += partner_max_wants(&spd->cfg, a->partners[i]);
	/* A new table: rebuild the index from scratch.  What the kernel
	 * holds is read again by the full pass, so nothing is lost. */
	index_clear(spd);
	if (grow((void **)&spd->e, &spd->cap_e, total, sizeof(*spd->e)) < 0 ||
	    eh_reserve(spd, total) < 0 || ph_reserve(spd, a->n) < 0 ||
	    grow((void **)&spd->p, &spd->cap_p, a->n, sizeof(*spd->p)) < 0)
		goto out;
	prefault(spd->e, total * sizeof(*spd->e));
	prefault(spd->p, a->n * sizeof(*spd->p));
	for (size_t i = 0; i < a->n; i++) {
		const struct mm_partner *p = a->partners[i];
		bool created;
		uint32_t x;

		if (!p)
			continue;
		x = prec_get(spd, p->domain, &created);
		if (x == NONE)
			goto out;
		if (!created) {
			note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, -EEXIST,
			     "the table names this domain twice: the second entry is ignored");
			continue;
		}
		prec_fill(spd, x, p);
		if (!active_partner(p))
			continue;
		scratch.n_want = scratch.n_problems = 0;
		r = partner_wants(&spd->cfg, p, i, &b);
		if (r < 0)
			goto out;
		r = -ENOMEM;
		for (size_t k = 0; k < scratch.n_problems; k++) {
			set_problem(spd, x, scratch.problems[k].error, scratch.problems[k].message);
			note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, scratch.problems[k].error, "%s",
			     scratch.problems[k].message);
		}
		for (size_t k = 0; k < scratch.n_want; k++) {
			const struct mm_spd_want *w = &scratch.want[k];
			uint32_t y = entry_get(spd, w->dir, &w->src, &w->dst, x, &created);

			if (y == NONE)
				goto out;
			if (!created && spd->e[y].partner != x) {
				char msg[MM_SPD_MSG_MAX], s1[MM_ADDR_STRLEN], s2[MM_ADDR_STRLEN];

				/* As in mm_spd_compute(): the earlier partner
				 * keeps the selector. */
				snprintf(msg, sizeof(msg), "selector %s %s -> %s is already %s's: left out",
					 mm_xfrm_dir_name(w->dir), mm_prefix_str(&w->src, s1),
					 mm_prefix_str(&w->dst, s2), spd->p[spd->e[y].partner].domain);
				set_problem(spd, x, -EEXIST, msg);
				note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, -EEXIST, "%s", msg);
			}
		}
	}
	free(scratch.want);
	free(scratch.problems);
	scratch.want = NULL;
	scratch.problems = NULL;
	r = full_pass(spd, false, rep);
out:
	free(scratch.want);
	free(scratch.problems);
	return r;
}

int mm_spd_sync(struct mm_spd *spd, const struct mm_partner *const *partners, size_t n,
		struct mm_spd_report *ret)
{
	struct sync_arg a = { partners, n };

	return run(spd, sync_step, &a, ret);
}

/* ---- one partner ---- */

struct change_arg {
	const struct mm_partner *old, *new;
};

static bool reqid_in_use(const struct mm_spd *spd, uint32_t reqid, uint32_t except)
{
	for (size_t i = 0; i < spd->n_p; i++)
		if (i != except && spd->p[i].domain && spd->p[i].active && spd->p[i].reqid == reqid)
			return true;
	return false;
}

static int change_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	const struct change_arg *a = data;
	/* mm_spd_partner_changed() checked that one of the two is given. */
	const struct mm_partner *named = a->new ? a->new : a->old;
	const char *domain = named->domain;
	struct mm_spd_desired *d = NULL;
	uint32_t x = prec_find(spd, domain), old_reqid = 0;
	struct mm_addr old_tun = { 0 }, old_gw = { 0 };
	bool was_active = false, changed_tmpl;
	int r = 0;

	if (x != NONE) {
		old_reqid = spd->p[x].reqid;
		old_tun = spd->p[x].tun;
		old_gw = spd->p[x].gw;
		was_active = spd->p[x].active;
	} else if (a->old) {
		old_reqid = a->old->reqid;
		was_active = active_partner(a->old);
	}
	if (a->new) {
		r = mm_spd_compute(&spd->cfg, &a->new, 1, &d);
		if (r < 0)
			return r;
		bool created;

		if (x == NONE && (x = prec_get(spd, domain, &created)) == NONE) {
			r = -ENOMEM;
			goto out;
		}
		prec_fill(spd, x, a->new);
		for (size_t i = 0; i < d->n_problems; i++) {
			set_problem(spd, x, d->problems[i].error, d->problems[i].message);
			note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, NULL, d->problems[i].error, "%s",
			     d->problems[i].message);
		}
	}
	if (!a->new && x != NONE)
		spd->p[x].active = false;  /* removed: wants nothing */
	spd->ops.n = spd->dels.n = 0;
	if (x != NONE) {
		struct prec *pr = &spd->p[x];

		changed_tmpl = pr->reqid != old_reqid || mm_addr_cmp(&pr->tun, &old_tun) ||
			       mm_addr_cmp(&pr->gw, &old_gw);
		for (uint32_t e = pr->head; e != NONE; e = spd->e[e].next)
			spd->e[e].st |= ST_MARK;
		for (size_t i = 0; d && i < d->n_want; i++) {
			const struct mm_spd_want *w = &d->want[i];
			bool created;
			uint32_t y = entry_get(spd, w->dir, &w->src, &w->dst, x, &created);

			if (y == NONE) {
				r = -ENOMEM;
				goto out;
			}
			if (created) {
				r = push_op(spd, OP_NEW, y);
			} else if (spd->e[y].partner != x) {
				struct mm_xfrm_policy p;

				mm_spd_want_policy(&spd->cfg, w, &p);
				note(spd, MM_SPD_NOTE_PARTNER_ERROR, x, &p, -EEXIST,
				     "this selector is already %s's: left out",
				     spd->p[spd->e[y].partner].domain);
				continue;
			} else {
				struct entry *e = &spd->e[y];

				e->st &= (uint16_t)~ST_MARK;
				if (e->st & ST_COLLIDE)
					continue;
				if (!(e->st & ST_PRESENT))
					r = push_op(spd, OP_NEW, y);
				else if (changed_tmpl || !(e->st & ST_INSYNC))
					r = push_op(spd, OP_UPD, y);
				else
					rep->unchanged++;
			}
			if (r < 0)
				goto out;
		}
		/* What the partner no longer wants goes, after the adds. */
		for (uint32_t e = pr->head, next; e != NONE; e = next) {
			next = spd->e[e].next;
			if (!(spd->e[e].st & ST_MARK))
				continue;
			if (spd->e[e].st & (ST_PRESENT | ST_COLLIDE)) {
				struct del dl = del_of_entry(spd, e);

				/* Under the old template's reqid if it changed. */
				dl.reqid = old_reqid;
				if (!(spd->e[e].st & ST_COLLIDE) && (r = push_del(spd, &dl)) < 0)
					goto out;
			}
			entry_remove(spd, e);
		}
	}
	r = apply(spd, rep);
	if (r < 0)
		goto out;
	/* Removed, disabled, moved to the SEG path, or given another reqid:
	 * the SAs charon holds under the old reqid protect nothing of ours. */
	if (was_active && old_reqid >= spd->cfg.reqid_min && old_reqid <= spd->cfg.reqid_max &&
	    (x == NONE || !spd->p[x].active || spd->p[x].reqid != old_reqid) &&
	    !reqid_in_use(spd, old_reqid, x)) {
		struct mm_nl_result res;
		size_t n = 0;

		r = mm_xfrm_sa_delete_reqid(spd->nl, old_reqid, &n, &res);
		if (r < 0) {
			note(spd, MM_SPD_NOTE_KERNEL_ERROR, x, NULL, r,
			     "deleting the SAs of reqid %u failed: %s%s%s", old_reqid, strerror(-r),
			     res.extack[0] ? ": " : "", res.extack);
			goto out;
		}
		rep->sa_deleted += n;
		if (n)
			spd->sas_valid = false;
	}
	if (!a->new && x != NONE && spd->p[x].count == 0)
		prec_remove(spd, x);
	count_conflicts(spd, rep);
out:
	mm_spd_desired_free(d);
	return r;
}

int mm_spd_partner_changed(struct mm_spd *spd, const struct mm_partner *old,
			   const struct mm_partner *new, struct mm_spd_report *ret)
{
	struct change_arg a = { old, new };

	if (!old && !new)
		return -EINVAL;
	if (old && new && strcmp(old->domain, new->domain) != 0)
		return -EINVAL;
	return run(spd, change_step, &a, ret);
}

/* ---- drift ---- */

bool mm_spd_repair_pending(const struct mm_spd *spd)
{
	return spd->need_full || spd->repair.n > 0 || spd->stale.n > 0;
}

static int repair_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	int r = 0;

	(void)data;
	if (spd->need_full)
		return full_pass(spd, true, rep);
	spd->ops.n = spd->dels.n = 0;
	for (size_t i = 0; i < spd->repair.n; i++) {
		uint32_t x = spd->repair.v[i];
		struct entry *e = &spd->e[x];

		if (!(e->st & ST_QUEUED))
			continue;
		e->st &= (uint16_t)~ST_QUEUED;
		if (!(e->st & ST_USED) || (e->st & ST_COLLIDE))
			continue;
		if (!(e->st & ST_PRESENT))
			r = push_op(spd, OP_NEW, x);
		else if (!(e->st & ST_INSYNC))
			r = push_op(spd, OP_UPD, x);
		if (r < 0)
			return r;
	}
	spd->repair.n = 0;
	if ((r = queue_stale(spd)) < 0)
		return r;
	r = apply(spd, rep);
	if (r < 0)
		return r;
	count_conflicts(spd, rep);
	return collect_drift(spd, rep);
}

int mm_spd_repair(struct mm_spd *spd, struct mm_spd_report *ret)
{
	return run(spd, repair_step, NULL, ret);
}

static int verify_step(struct mm_spd *spd, struct mm_spd_report *rep, void *data)
{
	(void)data;
	return full_pass(spd, true, rep);
}

int mm_spd_verify(struct mm_spd *spd, struct mm_spd_report *ret)
{
	return run(spd, verify_step, NULL, ret);
}

/* ---- status ---- */

struct reqid_prec {
	uint32_t reqid;
	uint32_t prec;
};

struct sa_count {
	struct mm_spd *spd;
	struct reqid_prec *map;  /* sorted by reqid */
	size_t n;
};

static int reqid_order(const void *x, const void *y)
{
	const struct reqid_prec *a = x, *b = y;

	return (a->reqid > b->reqid) - (a->reqid < b->reqid);
}

static int count_sa(const struct mm_xfrm_sa *sa, void *data)
{
	struct sa_count *c = data;
	struct reqid_prec key = { .reqid = sa->reqid }, *hit;

	hit = bsearch(&key, c->map, c->n, sizeof(key), reqid_order);
	if (hit)
		c->spd->p[hit->prec].sas++;
	return 0;
}

static void count_reset(void *data)
{
	struct sa_count *c = data;

	for (size_t i = 0; i < c->spd->n_p; i++)
		c->spd->p[i].sas = 0;
}

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* One SAD dump counts the SAs of every partner. */
static int count_all_sas(struct mm_spd *spd)
{
	struct sa_count c = { .spd = spd };
	int r;

	if (spd->sas_valid && since(&spd->sas_time) < 1.0)
		return 0;
	c.map = malloc((spd->n_p ? spd->n_p : 1) * sizeof(*c.map));
	if (!c.map)
		return -ENOMEM;
	for (size_t i = 0; i < spd->n_p; i++)
		if (spd->p[i].domain && spd->p[i].reqid)
			c.map[c.n++] = (struct reqid_prec){ spd->p[i].reqid, (uint32_t)i };
	qsort(c.map, c.n, sizeof(*c.map), reqid_order);
	count_reset(&c);
	/* Counted from now on: an SA event during the dump invalidates. */
	spd->sas_valid = true;
	clock_gettime(CLOCK_MONOTONIC, &spd->sas_time);
	r = mm_xfrm_sa_dump(spd->nl, count_sa, count_reset, &c, NULL, NULL);
	free(c.map);
	if (r < 0)
		spd->sas_valid = false;
	return r;
}

int mm_spd_status(struct mm_spd *spd, const char *domain, bool count_sas,
		  struct mm_spd_status *ret)
{
	uint32_t x = prec_find(spd, domain);
	struct mm_spd_status st = { .sas = -1 };
	const struct prec *pr;

	if (x == NONE)
		return -ENOENT;
	pr = &spd->p[x];
	st.reqid = pr->reqid;
	st.active = pr->active && !pr->error;
	st.error = pr->error;
	if (pr->message)
		snprintf(st.message, sizeof(st.message), "%s", pr->message);
	else if (!pr->active)
		snprintf(st.message, sizeof(st.message), "disabled or on the SEG path: no policies");
	for (uint32_t e = pr->head; e != NONE; e = spd->e[e].next) {
		const struct entry *en = &spd->e[e];

		st.expected++;
		if (en->st & ST_PRESENT)
			st.present++;
		if ((en->st & (ST_PRESENT | ST_INSYNC)) == (ST_PRESENT | ST_INSYNC))
			st.in_sync++;
		st.conflicts += en->conflicts + (en->st & ST_COLLIDE ? 1 : 0);
	}
	st.missing = st.expected - st.present;
	if (count_sas) {
		int r = count_all_sas(spd);

		if (r < 0)
			return r;
		st.sas = spd->p[x].sas;
	}
	*ret = st;
	return 0;
}

void mm_spd_counts(const struct mm_spd *spd, size_t *ret_expected, size_t *ret_present,
		   size_t *ret_in_sync)
{
	size_t present = 0, in_sync = 0;

	for (size_t x = 0; x < spd->n_e; x++) {
		uint16_t st = spd->e[x].st;

		if (!(st & ST_USED))
			continue;
		if (st & ST_PRESENT)
			present++;
		if ((st & (ST_PRESENT | ST_INSYNC)) == (ST_PRESENT | ST_INSYNC))
			in_sync++;
	}
	if (ret_expected)
		*ret_expected = spd->live_e;
	if (ret_present)
		*ret_present = present;
	if (ret_in_sync)
		*ret_in_sync = in_sync;
}

size_t mm_spd_memory(const struct mm_spd *spd)
{
	size_t m = sizeof(*spd);

	m += spd->cap_e * sizeof(*spd->e);
	m += spd->eh ? (spd->eh_mask + 1) * sizeof(*spd->eh) : 0;
	m += spd->cap_p * sizeof(*spd->p);
	m += spd->ph ? (spd->ph_mask + 1) * sizeof(*spd->ph) : 0;
	for (size_t i = 0; i < spd->n_p; i++)
		if (spd->p[i].domain)
			m += strlen(spd->p[i].domain) + 1;
	m += spd->repair.cap * sizeof(*spd->repair.v) + spd->stale.cap * sizeof(*spd->stale.v);
	m += spd->conf.cap * sizeof(*spd->conf.v) + spd->ops.cap * sizeof(*spd->ops.v);
	m += spd->dels.cap * sizeof(*spd->dels.v) + spd->pend.cap * sizeof(*spd->pend.v);
	return m;
}

/* ---- life cycle ---- */

int mm_spd_new(const struct mm_spd_config *cfg, struct mm_nl *nl, struct mm_xfrm_monitor *mon,
	       mm_spd_note_fn note_fn, void *userdata, struct mm_spd **ret)
{
	struct mm_spd *spd;
	int r;

	if (!nl)
		return -EINVAL;
	r = mm_spd_config_check(cfg, NULL);
	if (r < 0)
		return r;
	spd = calloc(1, sizeof(*spd));
	if (!spd)
		return -ENOMEM;
	spd->cfg = *cfg;
	if (cfg->n_locals) {
		spd->locals = malloc(cfg->n_locals * sizeof(*spd->locals));
		if (!spd->locals) {
			free(spd);
			return -ENOMEM;
		}
		for (size_t i = 0; i < cfg->n_locals; i++) {
			spd->locals[i] = cfg->locals[i];
			spd->locals[i].prefix = clean_prefix(&cfg->locals[i].prefix);
		}
	}
	spd->cfg.locals = spd->locals;
	spd->cfg.tunnel4 = clean_addr(&cfg->tunnel4);
	spd->cfg.tunnel6 = clean_addr(&cfg->tunnel6);
	spd->nl = nl;
	spd->mon = mon;
	spd->note = note_fn;
	spd->note_ud = userdata;
	spd->free_e = spd->free_p = NONE;
	if (mon)
		mm_xfrm_monitor_ignore_portid(mon, mm_nl_portid(nl));
	*ret = spd;
	return 0;
}

void mm_spd_free(struct mm_spd *spd)
{
	if (!spd)
		return;
	if (spd->mon)
		mm_xfrm_monitor_ignore_portid(spd->mon, 0);
	index_clear(spd);
	free(spd->repair.v);
	free(spd->stale.v);
	free(spd->conf.v);
	free(spd->ops.v);
	free(spd->dels.v);
	free(spd->pend.v);
	free(spd->locals);
	free(spd);
}

void mm_spd_set_event_hook(struct mm_spd *spd, mm_xfrm_event_fn hook, void *userdata)
{
	spd->hook = hook;
	spd->hook_ud = userdata;
}
