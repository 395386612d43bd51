/* Longest-prefix match by disjoint intervals.
 *
 * Per family, the (possibly nested) prefixes are flattened once into a sorted
 * array of disjoint elementary intervals covering the whole address space,
 * each labelled with its longest covering prefix (or none).  A lookup is then
 * "find the last interval start <= addr", which needs no per-prefix-length
 * work at all.
 *
 * To keep that search to one or two cache lines, a direct table indexed by
 * the top bits of the address (after the bits every prefix shares, the
 * "window") gives the narrow range of intervals the address can fall in. */
#include "lpm.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* Nesting strictly lengthens prefixes, so at most 129 are open at once. */
#define MAX_DEPTH 129

#define LABEL_NONE UINT32_MAX
/* 2^16 slots (256 KiB) already leaves ~3 intervals per slot at 100k random
 * prefixes; more buys little and costs cache. */
#define TABLE_BITS_MAX 16

/* One family's index.  start[] holds interval starts in ascending order
 * (start[0] == 0); label[i] is the index into lpm->value/prefix of the longest
 * prefix covering interval i, or LABEL_NONE. */
struct lpm_fam {
	uint32_t nint;
	uint32_t *label;
	uint32_t *start4;  /* IPv4, host order */
	u128 *start6;      /* IPv6 */
	/* Window: every interval start except 0 lies in [wbase, wlast + 1]. */
	u128 wbase, wlast;
	unsigned tshift;   /* slot = (addr - wbase) >> tshift */
	uint32_t *tab;     /* 2^tbits + 1 entries, NULL when nint == 1 */
	size_t tab_len;
};

/* Labels index value[] and prefix[], sorted by family, address, length;
 * both live in one block so the build can borrow it as sort scratch. */
struct mm_lpm {
	size_t n;
	void **value;
	struct mm_prefix *prefix;
	struct lpm_fam v4, v6;
};

/* A prefix as a sort key: the network address as two host-order halves
 * (IPv4 in lo), then the length.  Kept small because it is what the
 * radix sort moves around. */
struct lpm_key {
	uint64_t hi, lo;
	uint32_t src;  /* index into the caller's array */
	uint8_t len;
};

static u128 bytes_to_u128(const uint8_t *b, unsigned nbytes)
{
	u128 v = 0;

	for (unsigned i = 0; i < nbytes; i++)
		v = (v << 8) | b[i];
	return v;
}

static u128 fam_max(unsigned bits)
{
	return bits == 128 ? ~(u128)0 : ((u128)1 << bits) - 1;
}

/* Shift that tolerates counts >= 128 (the window of a /0 index). */
static u128 shr128(u128 v, unsigned s)
{
	return s >= 128 ? 0 : v >> s;
}

static u128 key_first(const struct lpm_key *k)
{
	return (u128)k->hi << 64 | k->lo;
}

static bool key_eq(const struct lpm_key *a, const struct lpm_key *b)
{
	return a->hi == b->hi && a->lo == b->lo && a->len == b->len;
}

static int key_from_prefix(const struct mm_prefix *p, uint32_t src,
			   struct lpm_key *ret)
{
	unsigned bits;
	u128 first;

	if (p->addr.family != AF_INET && p->addr.family != AF_INET6)
		return -EINVAL;
	bits = mm_addr_bits(p->addr.family);
	if (p->len > bits)
		return -EINVAL;
	first = bytes_to_u128(p->addr.bytes, bits / 8);
	if (first & shr128(fam_max(bits), p->len))
		return -EINVAL;
	*ret = (struct lpm_key){
		.hi = (uint64_t)(first >> 64),
		.lo = (uint64_t)first,
		.src = src,
		.len = p->len,
	};
	return 0;
}

/* Digit d of the key (address, len) read as one big-endian number: digit 0
 * is the length, so equal addresses order shorter (containing) prefixes
 * first, as the sweep needs. */
static unsigned key_digit(const struct lpm_key *k, unsigned d)
{
	if (d == 0)
		return k->len;
	if (d <= 8)
		return (unsigned)(k->lo >> (8 * (d - 1))) & 0xff;
	return (unsigned)(k->hi >> (8 * (d - 9))) & 0xff;
}

/* LSD radix sort of a[0..n) by (address, len), using tmp[0..n).  qsort
 * through a comparison callback took most of a 100k-prefix build; this is
 * a few linear passes, and byte positions where every key has the same
 * digit (the top 12 of an IPv4 key, often the low half of IPv6) are
 * skipped. ndigits: 5 for IPv4, 17 for IPv6. */
static void radix_sort(struct lpm_key *a, struct lpm_key *tmp, uint32_t n,
		       unsigned ndigits)
{
	uint32_t count[17][256];
	struct lpm_key *src = a, *dst = tmp;

	if (n < 2)
		return;
	memset(count, 0, sizeof(count));
	for (uint32_t i = 0; i < n; i++)
		for (unsigned d = 0; d < ndigits; d++)
			count[d][key_digit(&a[i], d)]++;
	for (unsigned d = 0; d < ndigits; d++) {
		uint32_t sum = 0;

		if (count[d][key_digit(&a[0], d)] == n)
			continue;
		for (unsigned v = 0; v < 256; v++) {
			uint32_t c = count[d][v];

			count[d][v] = sum;
			sum += c;
		}
		for (uint32_t i = 0; i < n; i++)
			dst[count[d][key_digit(&src[i], d)]++] = src[i];
		src = dst;
		dst = src == a ? tmp : a;
	}
	if (src != a)
		memcpy(a, src, (size_t)n * sizeof(*a));
}

/* Output of the sweep: starts (uint32 for IPv4, u128 for IPv6) and labels
 * of the intervals, sized for the 2n + 1 worst case. */
struct sweep_out {
	uint32_t *start4;
	u128 *start6;
	uint32_t *label;
	uint32_t n;
};

static u128 out_start(const struct sweep_out *o, uint32_t i)
{
	return o->start4 ? o->start4[i] : o->start6[i];
}

static void sweep_emit(struct sweep_out *o, u128 start, uint32_t label)
{
	/* Nested prefixes can end together; never leave two neighbours with
	 * the same label, the search would only get longer. */
	if (o->n > 0 && o->label[o->n - 1] == label)
		return;
	if (o->start4)
		o->start4[o->n] = (uint32_t)start;
	else
		o->start6[o->n] = start;
	o->label[o->n] = label;
	o->n++;
}

struct sweep_open {
	u128 last;
	uint32_t label;
};

/* Flatten keys[0..n) (one family, sorted, no duplicates; labels are
 * label_base + their positions) into disjoint intervals; stack holds
 * MAX_DEPTH.  Intervals are emitted lazily: an interval [pos, ...] is
 * written only when its right end is known, so a child starting where its
 * parent starts leaves no empty interval behind.  At most 2n + 1 intervals
 * result. */
static void sweep(const struct lpm_key *keys, uint32_t n, uint32_t label_base,
		  unsigned bits, struct sweep_open *stack, struct sweep_out *o)
{
	u128 pos = 0, max = fam_max(bits);
	bool pos_done = false;  /* pos ran past max (a prefix ended at max) */
	uint32_t depth = 0;

	for (uint32_t i = 0; i < n; i++) {
		u128 first = key_first(&keys[i]);

		while (depth > 0 && stack[depth - 1].last < first) {
			const struct sweep_open *top = &stack[depth - 1];

			if (pos <= top->last) {
				sweep_emit(o, pos, top->label);
				pos = top->last + 1;  /* < first <= max */
			}
			depth--;
		}
		if (pos < first) {
			sweep_emit(o, pos, depth ? stack[depth - 1].label : LABEL_NONE);
			pos = first;
		}
		stack[depth++] = (struct sweep_open){
			.last = first | shr128(max, keys[i].len),
			.label = label_base + i,
		};
	}
	while (depth > 0) {
		const struct sweep_open *top = &stack[depth - 1];

		if (!pos_done && pos <= top->last) {
			sweep_emit(o, pos, top->label);
			if (top->last == max)
				pos_done = true;
			else
				pos = top->last + 1;
		}
		depth--;
	}
	if (!pos_done)
		sweep_emit(o, pos, LABEL_NONE);
}

static unsigned ceil_log2(uint64_t v)
{
	unsigned r = 0;

	while (r < 63 && ((uint64_t)1 << r) < v)
		r++;
	return r;
}

static unsigned common_prefix_len(u128 a, u128 b, unsigned bits)
{
	unsigned c = 0;

	while (c < bits && !(((a ^ b) >> (bits - 1 - c)) & 1))
		c++;
	return c;
}

/* Build the slot table over the window of this family's prefixes.
 * keys/n: this family's sorted keys; o: the swept intervals. */
static int build_table(struct lpm_fam *f, const struct lpm_key *keys,
		       uint32_t n, unsigned bits, const struct sweep_out *o)
{
	u128 lo = 0, hi = 0, max = fam_max(bits);
	bool any = false;
	unsigned c, tbits;
	uint32_t j = 0;
	size_t slots;

	f->wbase = 0;
	f->wlast = max;
	f->tab = NULL;
	f->tab_len = 0;
	if (o->n <= 1)
		return 0;
	/* The window is the smallest aligned block holding every non-/0
	 * prefix: below it only interval 0 can start, above it only the
	 * last interval.  Real tables (all of 2001:db8::/32, all of 10/8)
	 * then spend all table bits where the prefixes are. */
	for (uint32_t i = 0; i < n; i++) {
		u128 first = key_first(&keys[i]), last;

		if (keys[i].len == 0)
			continue;
		last = first | shr128(max, keys[i].len);
		if (!any || first < lo)
			lo = first;
		if (!any || last > hi)
			hi = last;
		any = true;
	}
	c = common_prefix_len(lo, hi, bits);
	f->wbase = lo & ~shr128(max, c);
	f->wlast = f->wbase | shr128(max, c);

	tbits = ceil_log2(o->n);
	if (tbits > TABLE_BITS_MAX)
		tbits = TABLE_BITS_MAX;
	if (tbits > bits - c)
		tbits = bits - c;
	f->tshift = bits - c - tbits;
	slots = (size_t)1 << tbits;
	f->tab = malloc((slots + 1) * sizeof(*f->tab));
	if (!f->tab)
		return -ENOMEM;
	f->tab_len = slots + 1;
	/* tab[s] is the interval holding slot s's first address, so slot s
	 * searches [tab[s], tab[s + 1]]; the sentinel holds wlast.  Slots and
	 * intervals both ascend, so one merge walk fills it. */
	for (size_t s = 0; s <= slots; s++) {
		u128 a = s < slots ? f->wbase + ((u128)s << f->tshift) : f->wlast;

		while (j + 1 < o->n && out_start(o, j + 1) <= a)
			j++;
		f->tab[s] = j;
	}
	return 0;
}

static int build_family(struct lpm_fam *f, const struct lpm_key *keys,
			uint32_t n, uint32_t label_base, unsigned bits)
{
	size_t cap = (size_t)2 * n + 1;
	struct sweep_open stack[MAX_DEPTH];
	struct sweep_out o = { 0 };
	int r = -ENOMEM;

	if (bits == 32)
		o.start4 = malloc(cap * sizeof(*o.start4));
	else
		o.start6 = malloc(cap * sizeof(*o.start6));
	o.label = malloc(cap * sizeof(*o.label));
	if ((!o.start4 && !o.start6) || !o.label)
		goto out;
	sweep(keys, n, label_base, bits, stack, &o);

	r = build_table(f, keys, n, bits, &o);
	if (r < 0)
		goto out;
	/* Give back the unused part of the worst-case arrays; a failed
	 * shrink leaves the larger block, which is still correct. */
	f->nint = o.n;
	f->label = realloc(o.label, (size_t)o.n * sizeof(*o.label));
	if (!f->label)
		f->label = o.label;
	o.label = NULL;
	if (o.start4) {
		f->start4 = realloc(o.start4, (size_t)o.n * sizeof(*o.start4));
		if (!f->start4)
			f->start4 = o.start4;
		o.start4 = NULL;
	} else {
		f->start6 = realloc(o.start6, (size_t)o.n * sizeof(*o.start6));
		if (!f->start6)
			f->start6 = o.start6;
		o.start6 = NULL;
	}
	r = 0;
out:
	free(o.start4);
	free(o.start6);
	free(o.label);
	return r;
}

static void fam_free(struct lpm_fam *f)
{
	free(f->label);
	free(f->start4);
	free(f->start6);
	free(f->tab);
}

void mm_lpm_free(struct mm_lpm *lpm)
{
	if (!lpm)
		return;
	fam_free(&lpm->v4);
	fam_free(&lpm->v6);
	free(lpm->value);
	free(lpm);
}

int mm_lpm_new(const struct mm_lpm_entry *entries, size_t n, struct mm_lpm **ret)
{
	struct lpm_key *keys = NULL;
	struct mm_lpm *lpm = NULL;
	uint32_t n4 = 0, n6 = 0;
	size_t block;
	int r;

	if (!ret || (n > 0 && !entries))
		return -EINVAL;
	/* Labels are uint32 with one value reserved for "none"; the second
	 * bound keeps the array sizes below from overflowing a 32-bit size_t. */
	if (n >= LABEL_NONE || n > SIZE_MAX / 64)
		return -ENOMEM;

	r = -ENOMEM;
	lpm = calloc(1, sizeof(*lpm));
	if (!lpm)
		goto out;
	keys = malloc((n ? n : 1) * sizeof(*keys));
	/* value[] + prefix[] is at least as large as the keys, and it is
	 * only filled after sorting: the sort borrows it as scratch rather
	 * than faulting in another array (most of a build's time on a cold
	 * heap is page faults). */
	block = (n ? n : 1) * (sizeof(*lpm->value) + sizeof(*lpm->prefix));
	_Static_assert(sizeof(void *) + sizeof(struct mm_prefix) >= sizeof(struct lpm_key),
		       "sort scratch must fit in value[] + prefix[]");
	lpm->value = malloc(block);
	if (!keys || !lpm->value)
		goto out;
	lpm->prefix = (struct mm_prefix *)(lpm->value + (n ? n : 1));
	lpm->n = n;

	/* IPv4 keys fill the array from the front, IPv6 from the back. */
	for (size_t i = 0; i < n; i++) {
		const struct mm_prefix *p = &entries[i].prefix;
		struct lpm_key *k = &keys[p->addr.family == AF_INET ? n4 : n - 1 - n6];

		r = key_from_prefix(p, (uint32_t)i, k);
		if (r < 0)
			goto out;
		if (p->addr.family == AF_INET)
			n4++;
		else
			n6++;
	}
	radix_sort(keys, (struct lpm_key *)lpm->value, n4, 5);
	radix_sort(keys + n4, (struct lpm_key *)lpm->value, n6, 17);

	for (size_t i = 0; i < n; i++) {
		const struct mm_lpm_entry *src = &entries[keys[i].src];
		struct mm_prefix *dst = &lpm->prefix[i];

		if (i > 0 && i != n4 && key_eq(&keys[i - 1], &keys[i])) {
			r = -EEXIST;
			goto out;
		}
		lpm->value[i] = src->value;
		/* Copy canonically: the bytes an IPv4 address does not use are
		 * zeroed, so the prefixes we hand back compare as expected. */
		memset(dst, 0, sizeof(*dst));
		dst->addr.family = src->prefix.addr.family;
		dst->len = src->prefix.len;
		memcpy(dst->addr.bytes, src->prefix.addr.bytes,
		       mm_addr_bits(src->prefix.addr.family) / 8);
	}

	r = build_family(&lpm->v4, keys, n4, 0, 32);
	if (r < 0)
		goto out;
	r = build_family(&lpm->v6, keys + n4, n6, n4, 128);
	if (r < 0)
		goto out;

	*ret = lpm;
	lpm = NULL;
	r = 0;
out:
	free(keys);
	mm_lpm_free(lpm);
	return r;
}

static uint32_t lookup4_label(const struct lpm_fam *f, uint32_t addr)
{
	uint32_t lo, hi, slot;

	if (!f->tab || addr < (uint32_t)f->wbase)
		return f->label[0];
	if (addr > (uint32_t)f->wlast)
		return f->label[f->nint - 1];
	slot = (uint32_t)(((uint64_t)addr - (uint32_t)f->wbase) >> f->tshift);
	lo = f->tab[slot];
	hi = f->tab[slot + 1];
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (f->start4[mid] <= addr)
			lo = mid;
		else
			hi = mid - 1;
	}
	return f->label[lo];
}

static uint32_t lookup6_label(const struct lpm_fam *f, u128 addr)
{
	uint32_t lo, hi;
	size_t slot;

	if (!f->tab || addr < f->wbase)
		return f->label[0];
	if (addr > f->wlast)
		return f->label[f->nint - 1];
	slot = (size_t)shr128(addr - f->wbase, f->tshift);
	lo = f->tab[slot];
	hi = f->tab[slot + 1];
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (f->start6[mid] <= addr)
			lo = mid;
		else
			hi = mid - 1;
	}
	return f->label[lo];
}

void *mm_lpm_lookup4(const struct mm_lpm *lpm, uint32_t addr)
{
	uint32_t l = lookup4_label(&lpm->v4, addr);

	return l == LABEL_NONE ? NULL : lpm->value[l];
}

void *mm_lpm_lookup(const struct mm_lpm *lpm, const struct mm_addr *addr,
		    const struct mm_prefix **ret_prefix)
{
	uint32_t l, a4;
	uint64_t hi, lo;

	if (addr->family == AF_INET) {
		memcpy(&a4, addr->bytes, sizeof(a4));
		l = lookup4_label(&lpm->v4, be32toh(a4));
	} else if (addr->family == AF_INET6) {
		memcpy(&hi, addr->bytes, sizeof(hi));
		memcpy(&lo, addr->bytes + 8, sizeof(lo));
		l = lookup6_label(&lpm->v6, (u128)be64toh(hi) << 64 | be64toh(lo));
	} else {
		return NULL;
	}
	if (l == LABEL_NONE)
		return NULL;
	if (ret_prefix)
		*ret_prefix = &lpm->prefix[l];
	return lpm->value[l];
}

size_t mm_lpm_count(const struct mm_lpm *lpm)
{
	return lpm->n;
}

static size_t fam_memory(const struct lpm_fam *f)
{
	size_t m = (size_t)f->nint * sizeof(*f->label) +
		   f->tab_len * sizeof(*f->tab);

	if (f->start4)
		m += (size_t)f->nint * sizeof(*f->start4);
	if (f->start6)
		m += (size_t)f->nint * sizeof(*f->start6);
	return m;
}

size_t mm_lpm_memory(const struct mm_lpm *lpm)
{
	return sizeof(*lpm) +
	       lpm->n * (sizeof(*lpm->value) + sizeof(*lpm->prefix)) +
	       fam_memory(&lpm->v4) + fam_memory(&lpm->v6);
}
