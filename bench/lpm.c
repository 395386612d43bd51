/* Benchmark of policy/lpm against a linear scan over the same prefixes.
 *
 * 100k random IPv4 prefixes (lengths 8..32, weighted like a routing table:
 * mostly /24, some /16../23 and /25../32, very few /8../15 so that part of
 * the space stays uncovered) and 100k random IPv6 prefixes inside 2000::/3
 * (lengths 16..64 weighted to /32../48, plus some /128).  Nesting is allowed
 * and occurs (a /16 and the /24s inside it); the number of nested prefixes
 * is printed.  Queries: half are random addresses inside a random prefix (a
 * hit), half random addresses no prefix covers (drawn from the whole IPv4
 * space, or from 2000::/3 so IPv6 misses take the full lookup path too,
 * rejected while the index matches); the measured hit rate is printed.
 *
 * Build time is given for the first build in the process (cold heap: on a
 * VM it is mostly page faults) and as the median of a few rebuilds (what a
 * daemon rebuilding on every table change sees).
 *
 * The linear scan is a tight loop over net/mask arrays (fairer than calling
 * mm_prefix_contains), timed on a few thousand lookups and reported as a
 * per-lookup rate; its answers on those lookups must agree with the index,
 * else the benchmark exits 1. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/addr.h"
#include "policy/lpm.h"

#define NPREFIX 100000
#define NLOOKUP4 10000000  /* mm_lpm_lookup4, distinct addresses */
#define NRING 1000000      /* mm_lpm_lookup: 1M addresses, cycled */
#define NROUNDS 10
#define NSCAN 2000         /* linear-scan lookups (and agreement sample) */
#define TARGET_MLPS 4.0
#define SEED UINT64_C(0x6c706d2d62656e63)

typedef unsigned __int128 u128;

static uint64_t rng_state = SEED;
static volatile uintptr_t sink;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static u128 addr_u128(const struct mm_addr *a)
{
	unsigned nbytes = mm_addr_bits(a->family) / 8;
	u128 v = 0;

	for (unsigned i = 0; i < nbytes; i++)
		v = (v << 8) | a->bytes[i];
	return v;
}

static void u128_addr(u128 v, int family, struct mm_addr *ret)
{
	unsigned nbytes = mm_addr_bits(family) / 8;

	memset(ret, 0, sizeof(*ret));
	ret->family = (uint8_t)family;
	for (unsigned i = nbytes; i-- > 0; v >>= 8)
		ret->bytes[i] = (uint8_t)v;
}

static u128 host_mask(unsigned len, unsigned bits)
{
	u128 all = bits == 128 ? ~(u128)0 : ((u128)1 << bits) - 1;

	return len >= 128 ? 0 : all >> len;
}

static unsigned len4(void)
{
	unsigned k = (unsigned)(rng() % 1000);

	if (k < 550)
		return 24;
	if (k < 850)
		return 16 + (unsigned)(rng() % 8);   /* 16..23 */
	if (k < 995)
		return 25 + (unsigned)(rng() % 8);   /* 25..32 */
	return 8 + (unsigned)(rng() % 8);            /* 8..15 */
}

static unsigned len6(void)
{
	unsigned k = (unsigned)(rng() % 100);

	if (k < 70)
		return 32 + (unsigned)(rng() % 17);  /* 32..48 */
	if (k < 90)
		return 49 + (unsigned)(rng() % 16);  /* 49..64 */
	if (k < 95)
		return 128;
	return 16 + (unsigned)(rng() % 16);          /* 16..31 */
}

static struct mm_prefix random_prefix(int family)
{
	unsigned bits = mm_addr_bits(family);
	unsigned len = family == AF_INET ? len4() : len6();
	u128 v = ((u128)rng() << 64) | rng();
	struct mm_prefix p;

	if (family == AF_INET6)  /* global unicast, 2000::/3 */
		v = (v >> 3) | ((u128)1 << 125);
	v &= host_mask(0, bits) & ~host_mask(len, bits);
	u128_addr(v, family, &p.addr);
	p.len = (uint8_t)len;
	return p;
}

static int prefix_qcmp(const void *a, const void *b)
{
	return mm_prefix_cmp(&((const struct mm_lpm_entry *)a)->prefix,
			     &((const struct mm_lpm_entry *)b)->prefix);
}

/* n distinct random prefixes of one family (the index refuses duplicates),
 * values 1..n; returned sorted, which is also what the nesting count needs. */
static struct mm_lpm_entry *make_prefixes(int family, size_t n)
{
	struct mm_lpm_entry *e = calloc(n, sizeof(*e));
	size_t have = 0;

	if (!e)
		return NULL;
	while (have < n) {
		size_t w = 0;

		for (size_t i = have; i < n; i++)
			e[i].prefix = random_prefix(family);
		qsort(e, n, sizeof(*e), prefix_qcmp);
		for (size_t i = 0; i < n; i++)
			if (w == 0 || mm_prefix_cmp(&e[w - 1].prefix, &e[i].prefix) != 0)
				e[w++] = e[i];
		have = w;
	}
	for (size_t i = 0; i < n; i++)
		e[i].value = (void *)(uintptr_t)(i + 1);
	return e;
}

/* Prefixes inside another one (e sorted by address, then length). */
static size_t count_nested(const struct mm_lpm_entry *e, size_t n)
{
	u128 *stack = malloc(n * sizeof(*stack));
	size_t depth = 0, nested = 0;

	if (!stack)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned bits = mm_addr_bits(e[i].prefix.addr.family);
		u128 first = addr_u128(&e[i].prefix.addr);

		while (depth > 0 && stack[depth - 1] < first)
			depth--;
		if (depth > 0)
			nested++;
		stack[depth++] = first | host_mask(e[i].prefix.len, bits);
	}
	free(stack);
	return nested;
}

/* Half inside a random prefix, half uncovered (see the top). */
static u128 random_query(const struct mm_lpm *lpm, const struct mm_lpm_entry *e,
			 size_t n, int family)
{
	unsigned bits = mm_addr_bits(family);
	u128 v = (((u128)rng() << 64) | rng()) & host_mask(0, bits);

	if (rng() & 1) {
		const struct mm_prefix *p = &e[rng() % n].prefix;
		u128 hm = host_mask(p->len, bits);

		return addr_u128(&p->addr) | (v & hm);
	}
	for (int tries = 0; tries < 64; tries++) {
		struct mm_addr a;

		v = (((u128)rng() << 64) | rng()) & host_mask(0, bits);
		if (family == AF_INET6)
			v = (v >> 3) | ((u128)1 << 125);
		u128_addr(v, family, &a);
		if (!mm_lpm_lookup(lpm, &a, NULL))
			break;
	}
	return v;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct scan {
	size_t n;
	unsigned bits;
	u128 *net, *mask;
	uint32_t *net4, *mask4;
	uint8_t *len;
	void **val;
};

static int scan_init(struct scan *s, const struct mm_lpm_entry *e, size_t n)
{
	s->n = n;
	s->bits = mm_addr_bits(e[0].prefix.addr.family);
	s->net = malloc(n * sizeof(*s->net));
	s->mask = malloc(n * sizeof(*s->mask));
	s->net4 = malloc(n * sizeof(*s->net4));
	s->mask4 = malloc(n * sizeof(*s->mask4));
	s->len = malloc(n);
	s->val = malloc(n * sizeof(*s->val));
	if (!s->net || !s->mask || !s->net4 || !s->mask4 || !s->len || !s->val)
		return -1;
	for (size_t i = 0; i < n; i++) {
		s->net[i] = addr_u128(&e[i].prefix.addr);
		s->mask[i] = host_mask(0, s->bits) & ~host_mask(e[i].prefix.len, s->bits);
		s->net4[i] = (uint32_t)s->net[i];
		s->mask4[i] = (uint32_t)s->mask[i];
		s->len[i] = e[i].prefix.len;
		s->val[i] = e[i].value;
	}
	return 0;
}

static void scan_free(struct scan *s)
{
	free(s->net);
	free(s->mask);
	free(s->net4);
	free(s->mask4);
	free(s->len);
	free(s->val);
}

static void *scan_lookup(const struct scan *s, u128 a)
{
	void *best = NULL;
	int best_len = -1;

	if (s->bits == 32) {
		uint32_t a4 = (uint32_t)a;

		for (size_t i = 0; i < s->n; i++)
			if ((a4 & s->mask4[i]) == s->net4[i] && s->len[i] > best_len) {
				best_len = s->len[i];
				best = s->val[i];
			}
		return best;
	}
	for (size_t i = 0; i < s->n; i++)
		if ((a & s->mask[i]) == s->net[i] && s->len[i] > best_len) {
			best_len = s->len[i];
			best = s->val[i];
		}
	return best;
}

/* One family's run; returns index lookups/s (millions), or -1 on
 * disagreement or failure. */
static double bench_family(int family)
{
	const char *name = family == AF_INET ? "v4" : "v6";
	struct mm_lpm_entry *e = NULL;
	struct mm_addr *ring = NULL;
	uint32_t *q4 = NULL;
	struct mm_lpm *lpm = NULL;
	struct scan s = { 0 };
	double t, build_ms, rebuild_ms[5], mlps = 0, mlps_gen, scan_mlps, result = -1;
	size_t hits = 0, bad = 0, nested;
	int r;

	e = make_prefixes(family, NPREFIX);
	if (!e)
		goto out;
	nested = count_nested(e, NPREFIX);
	/* Build from a shuffled copy: a sorted input would flatter qsort. */
	for (size_t i = NPREFIX - 1; i > 0; i--) {
		size_t j = rng() % (i + 1);
		struct mm_lpm_entry tmp = e[i];

		e[i] = e[j];
		e[j] = tmp;
	}
	t = now();
	r = mm_lpm_new(e, NPREFIX, &lpm);
	build_ms = (now() - t) * 1e3;
	if (r < 0) {
		fprintf(stderr, "lpm %s: mm_lpm_new: %s\n", name, strerror(-r));
		goto out;
	}
	for (int k = 0; k < 5; k++) {
		struct mm_lpm *again = NULL;

		t = now();
		r = mm_lpm_new(e, NPREFIX, &again);
		rebuild_ms[k] = (now() - t) * 1e3;
		mm_lpm_free(again);
		if (r < 0)
			goto out;
	}
	qsort(rebuild_ms, 5, sizeof(rebuild_ms[0]), dbl_cmp);

	ring = malloc(NRING * sizeof(*ring));
	if (!ring)
		goto out;
	for (size_t i = 0; i < NRING; i++)
		u128_addr(random_query(lpm, e, NPREFIX, family), family, &ring[i]);

	if (family == AF_INET) {
		uintptr_t acc = 0;

		q4 = malloc(NLOOKUP4 * sizeof(*q4));
		if (!q4)
			goto out;
		for (size_t i = 0; i < NLOOKUP4; i++)
			q4[i] = (uint32_t)random_query(lpm, e, NPREFIX, family);
		t = now();
		for (size_t i = 0; i < NLOOKUP4; i++) {
			void *v = mm_lpm_lookup4(lpm, q4[i]);

			acc += (uintptr_t)v;
			hits += v != NULL;
		}
		mlps = NLOOKUP4 / (now() - t) / 1e6;
		sink = acc;
	}
	{
		uintptr_t acc = 0;
		size_t ghits = 0;

		t = now();
		for (int round = 0; round < NROUNDS; round++)
			for (size_t i = 0; i < NRING; i++) {
				void *v = mm_lpm_lookup(lpm, &ring[i], NULL);

				acc += (uintptr_t)v;
				ghits += v != NULL;
			}
		mlps_gen = (double)NRING * NROUNDS / (now() - t) / 1e6;
		sink = acc;
		if (family != AF_INET) {
			mlps = mlps_gen;
			hits = ghits / NROUNDS;
		}
	}

	if (scan_init(&s, e, NPREFIX) < 0)
		goto out;
	{
		void **ans = malloc(NSCAN * sizeof(*ans));

		if (!ans)
			goto out;
		t = now();
		for (size_t i = 0; i < NSCAN; i++)
			ans[i] = scan_lookup(&s, addr_u128(&ring[i]));
		scan_mlps = NSCAN / (now() - t) / 1e6;
		for (size_t i = 0; i < NSCAN; i++)
			if (mm_lpm_lookup(lpm, &ring[i], NULL) != ans[i]) {
				char buf[MM_ADDR_STRLEN];

				if (bad++ < 5)
					fprintf(stderr, "lpm %s: %s: index and scan disagree\n",
						name, mm_addr_str(&ring[i], buf));
			}
		free(ans);
	}

	printf("lpm %s: %d prefixes, build %.1f ms, %.1f M lookups/s, "
	       "linear scan %.4f M lookups/s, ratio %.0fx, memory %.1f MB\n",
	       name, NPREFIX, build_ms, mlps, scan_mlps, mlps / scan_mlps,
	       (double)mm_lpm_memory(lpm) / 1e6);
	printf("    build: first %.1f ms (cold heap), rebuild median %.1f ms; "
	       "%zu prefixes nested in another; hit rate %.0f%%\n",
	       build_ms, rebuild_ms[2], nested,
	       100.0 * (double)hits / (family == AF_INET ? NLOOKUP4 : NRING));
	printf("    lookups: %s; mm_lpm_lookup %.1f M/s (1M addresses x %d); "
	       "scan timed on %d lookups (per-lookup rate), agreement %zu/%d\n",
	       family == AF_INET ? "mm_lpm_lookup4 on 10M distinct addresses"
				 : "mm_lpm_lookup",
	       mlps_gen, NROUNDS, NSCAN, (size_t)NSCAN - bad, NSCAN);
	if (bad == 0)
		result = mlps;
out:
	scan_free(&s);
	mm_lpm_free(lpm);
	free(q4);
	free(ring);
	free(e);
	return result;
}

int main(void)
{
	double v4, v6;

	printf("lpm bench: seed 0x%" PRIx64 ", nesting allowed\n", SEED);
	fflush(stdout);
	v4 = bench_family(AF_INET);
	v6 = bench_family(AF_INET6);
	if (v4 < 0 || v6 < 0) {
		fprintf(stderr, "lpm bench: FAILED (disagreement or error)\n");
		return 1;
	}
	printf("target: >= %.0f M lookups/s at 100k prefixes: %s\n", TARGET_MLPS,
	       v4 >= TARGET_MLPS ? "PASS" : "FAIL");
	return 0;
}
