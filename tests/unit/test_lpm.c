/* Unit tests for policy/lpm: hand cases for the edges, then randomized
 * comparison against a linear scan (the obviously right answer).
 *
 * The random tests use their own PRNG so a seed reproduces on any libc;
 * set MM_LPM_SEED to replay a failure. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/addr.h"
#include "policy/lpm.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

#define V(n) ((void *)(uintptr_t)(n))

static uint64_t seed = 20240601;

#define P mm_test_prefix
#define A mm_test_addr

static struct mm_lpm *build(const struct mm_lpm_entry *e, size_t n)
{
	struct mm_lpm *lpm = NULL;
	int r = mm_lpm_new(e, n, &lpm);

	ck_assert_int_eq(r, 0);
	ck_assert_ptr_nonnull(lpm);
	ck_assert_uint_eq(mm_lpm_count(lpm), n);
	return lpm;
}

/* Look s up and check both the value and the prefix handed back. */
static void expect(const struct mm_lpm *lpm, const char *s, void *want,
		   const char *want_prefix)
{
	struct mm_addr a = A(s);
	const struct mm_prefix *p = NULL;
	void *got = mm_lpm_lookup(lpm, &a, &p);
	char buf[MM_ADDR_STRLEN];

	ck_assert_msg(got == want, "%s: got %p, want %p", s, got, want);
	if (!want_prefix) {
		ck_assert_msg(p == NULL, "%s: prefix set without a match", s);
		return;
	}
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(mm_prefix_str(p, buf), want_prefix);
	if (a.family == AF_INET) {
		uint32_t h = (uint32_t)a.bytes[0] << 24 | a.bytes[1] << 16 |
			     a.bytes[2] << 8 | a.bytes[3];

		ck_assert_ptr_eq(mm_lpm_lookup4(lpm, h), want);
	}
}

START_TEST(test_empty)
{
	struct mm_lpm *lpm = build(NULL, 0);
	struct mm_addr a = A("10.0.0.1");

	ck_assert_ptr_null(mm_lpm_lookup(lpm, &a, NULL));
	ck_assert_ptr_null(mm_lpm_lookup4(lpm, 0));
	ck_assert_ptr_null(mm_lpm_lookup4(lpm, UINT32_MAX));
	expect(lpm, "::", NULL, NULL);
	expect(lpm, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL, NULL);
	ck_assert_uint_gt(mm_lpm_memory(lpm), 0);
	mm_lpm_free(lpm);
	mm_lpm_free(NULL);
}
END_TEST

START_TEST(test_nesting)
{
	/* Deliberately not in sorted order. */
	struct mm_lpm_entry e[] = {
		{ P("10.1.2.3/32"), V(4) },
		{ P("10.0.0.0/8"), V(1) },
		{ P("10.1.2.0/24"), V(3) },
		{ P("10.1.0.0/16"), V(2) },
	};
	struct mm_lpm *lpm = build(e, 4);

	expect(lpm, "9.255.255.255", NULL, NULL);
	expect(lpm, "10.0.0.0", V(1), "10.0.0.0/8");
	expect(lpm, "10.1.0.0", V(2), "10.1.0.0/16");
	expect(lpm, "10.1.1.255", V(2), "10.1.0.0/16");
	expect(lpm, "10.1.2.0", V(3), "10.1.2.0/24");
	expect(lpm, "10.1.2.2", V(3), "10.1.2.0/24");
	expect(lpm, "10.1.2.3", V(4), "10.1.2.3/32");
	expect(lpm, "10.1.2.4", V(3), "10.1.2.0/24");
	expect(lpm, "10.1.2.255", V(3), "10.1.2.0/24");
	expect(lpm, "10.1.3.0", V(2), "10.1.0.0/16");
	expect(lpm, "10.1.255.255", V(2), "10.1.0.0/16");
	expect(lpm, "10.2.0.0", V(1), "10.0.0.0/8");
	expect(lpm, "10.255.255.255", V(1), "10.0.0.0/8");
	expect(lpm, "11.0.0.0", NULL, NULL);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_nesting_same_end)
{
	/* Parent and children ending on the same address, and children
	 * starting on the parent's first address. */
	struct mm_lpm_entry e[] = {
		{ P("192.168.0.0/16"), V(1) },
		{ P("192.168.255.0/24"), V(2) },
		{ P("192.168.255.255/32"), V(3) },
		{ P("192.168.0.0/24"), V(4) },
		{ P("192.168.0.0/32"), V(5) },
	};
	struct mm_lpm *lpm = build(e, 5);

	expect(lpm, "192.167.255.255", NULL, NULL);
	expect(lpm, "192.168.0.0", V(5), "192.168.0.0/32");
	expect(lpm, "192.168.0.1", V(4), "192.168.0.0/24");
	expect(lpm, "192.168.0.255", V(4), "192.168.0.0/24");
	expect(lpm, "192.168.1.0", V(1), "192.168.0.0/16");
	expect(lpm, "192.168.254.255", V(1), "192.168.0.0/16");
	expect(lpm, "192.168.255.0", V(2), "192.168.255.0/24");
	expect(lpm, "192.168.255.254", V(2), "192.168.255.0/24");
	expect(lpm, "192.168.255.255", V(3), "192.168.255.255/32");
	expect(lpm, "192.169.0.0", NULL, NULL);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_default_route)
{
	struct mm_lpm_entry e[] = {
		{ P("0.0.0.0/0"), V(1) },
		{ P("192.168.0.0/16"), V(2) },
		{ P("::/0"), V(3) },
		{ P("2001:db8::/32"), V(4) },
	};
	struct mm_lpm *lpm = build(e, 4);

	expect(lpm, "0.0.0.0", V(1), "0.0.0.0/0");
	expect(lpm, "192.167.255.255", V(1), "0.0.0.0/0");
	expect(lpm, "192.168.0.0", V(2), "192.168.0.0/16");
	expect(lpm, "192.168.255.255", V(2), "192.168.0.0/16");
	expect(lpm, "192.169.0.0", V(1), "0.0.0.0/0");
	expect(lpm, "255.255.255.255", V(1), "0.0.0.0/0");
	expect(lpm, "::", V(3), "::/0");
	expect(lpm, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", V(3), "::/0");
	expect(lpm, "2001:db8::", V(4), "2001:db8::/32");
	expect(lpm, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", V(4), "2001:db8::/32");
	expect(lpm, "2001:db9::", V(3), "::/0");
	expect(lpm, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", V(3), "::/0");
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_only_default)
{
	struct mm_lpm_entry e4[] = { { P("0.0.0.0/0"), V(1) } };
	struct mm_lpm_entry e6[] = { { P("::/0"), V(2) } };
	struct mm_lpm *lpm = build(e4, 1);

	expect(lpm, "0.0.0.0", V(1), "0.0.0.0/0");
	expect(lpm, "255.255.255.255", V(1), "0.0.0.0/0");
	expect(lpm, "::", NULL, NULL);
	mm_lpm_free(lpm);

	lpm = build(e6, 1);
	expect(lpm, "0.0.0.0", NULL, NULL);
	expect(lpm, "::", V(2), "::/0");
	expect(lpm, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", V(2), "::/0");
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_host_prefixes)
{
	/* Host prefixes at both ends of each space: the sweep must neither
	 * overflow past the last address nor leave an empty interval. */
	struct mm_lpm_entry e[] = {
		{ P("0.0.0.0/32"), V(1) },
		{ P("255.255.255.255/32"), V(2) },
		{ P("::/128"), V(3) },
		{ P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), V(4) },
		{ P("10.0.0.1/32"), V(5) },
		{ P("2001:db8::1/128"), V(6) },
	};
	struct mm_lpm *lpm = build(e, 6);

	expect(lpm, "0.0.0.0", V(1), "0.0.0.0/32");
	expect(lpm, "0.0.0.1", NULL, NULL);
	expect(lpm, "10.0.0.0", NULL, NULL);
	expect(lpm, "10.0.0.1", V(5), "10.0.0.1/32");
	expect(lpm, "10.0.0.2", NULL, NULL);
	expect(lpm, "255.255.255.254", NULL, NULL);
	expect(lpm, "255.255.255.255", V(2), "255.255.255.255/32");
	expect(lpm, "::", V(3), "::/128");
	expect(lpm, "::1", NULL, NULL);
	expect(lpm, "2001:db8::", NULL, NULL);
	expect(lpm, "2001:db8::1", V(6), "2001:db8::1/128");
	expect(lpm, "2001:db8::2", NULL, NULL);
	expect(lpm, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", NULL, NULL);
	expect(lpm, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", V(4),
	       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_single_host)
{
	/* One host prefix: the window is a single address. */
	struct mm_lpm_entry e[] = { { P("2001:db8::7/128"), V(1) } };
	struct mm_lpm *lpm = build(e, 1);

	expect(lpm, "2001:db8::6", NULL, NULL);
	expect(lpm, "2001:db8::7", V(1), "2001:db8::7/128");
	expect(lpm, "2001:db8::8", NULL, NULL);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_adjacent)
{
	struct mm_lpm_entry e[] = {
		{ P("10.0.0.0/25"), V(1) },
		{ P("10.0.0.128/25"), V(2) },
		{ P("10.0.1.0/24"), V(3) },
		{ P("2001:db8::/33"), V(4) },
		{ P("2001:db8:8000::/33"), V(5) },
	};
	struct mm_lpm *lpm = build(e, 5);

	expect(lpm, "9.255.255.255", NULL, NULL);
	expect(lpm, "10.0.0.0", V(1), "10.0.0.0/25");
	expect(lpm, "10.0.0.127", V(1), "10.0.0.0/25");
	expect(lpm, "10.0.0.128", V(2), "10.0.0.128/25");
	expect(lpm, "10.0.0.255", V(2), "10.0.0.128/25");
	expect(lpm, "10.0.1.0", V(3), "10.0.1.0/24");
	expect(lpm, "10.0.1.255", V(3), "10.0.1.0/24");
	expect(lpm, "10.0.2.0", NULL, NULL);
	expect(lpm, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL, NULL);
	expect(lpm, "2001:db8::", V(4), "2001:db8::/33");
	expect(lpm, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", V(4), "2001:db8::/33");
	expect(lpm, "2001:db8:8000::", V(5), "2001:db8:8000::/33");
	expect(lpm, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", V(5), "2001:db8:8000::/33");
	expect(lpm, "2001:db9::", NULL, NULL);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_families_apart)
{
	/* Same leading bytes in both families must never cross over. */
	struct mm_lpm_entry e[] = {
		{ P("10.0.0.0/8"), V(1) },
		{ P("a00::/8"), V(2) },
		{ P("::/96"), V(3) },
	};
	struct mm_lpm *lpm = build(e, 3);
	struct mm_addr bad = A("10.0.0.1");
	/* An IPv6 object with a mapped address, as the kernel may report
	 * one: the index keeps it apart from IPv4 (the parser never makes
	 * one, see the next line). */
	struct mm_addr mapped6 = { .family = AF_INET6,
				   .bytes = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 } };

	expect(lpm, "10.0.0.1", V(1), "10.0.0.0/8");
	expect(lpm, "a00::1", V(2), "a00::/8");
	expect(lpm, "::a00:1", V(3), "::/96");
	expect(lpm, "::ffff:10.0.0.1", V(1), "10.0.0.0/8");
	ck_assert_ptr_null(mm_lpm_lookup(lpm, &mapped6, NULL));
	expect(lpm, "11.0.0.0", NULL, NULL);
	expect(lpm, "0.0.0.0", NULL, NULL);
	bad.family = AF_UNIX;
	ck_assert_ptr_null(mm_lpm_lookup(lpm, &bad, NULL));
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_v4_unused_bytes)
{
	/* An IPv4 prefix uses only bytes[0..3]; junk after them is neither a
	 * different prefix nor handed back. */
	struct mm_lpm_entry e[] = { { P("10.0.0.0/8"), V(1) }, { P("10.0.0.0/8"), V(2) } };
	struct mm_lpm *lpm = NULL;
	struct mm_addr a = A("10.1.1.1");
	const struct mm_prefix *p = NULL;
	struct mm_prefix want = P("10.0.0.0/8");

	e[1].prefix.addr.bytes[7] = 0x55;
	ck_assert_int_eq(mm_lpm_new(e, 2, &lpm), -EEXIST);
	ck_assert_ptr_null(lpm);

	e[0].prefix.addr.bytes[15] = 0xaa;
	lpm = build(e, 1);
	a.bytes[9] = 0x77;
	ck_assert_ptr_eq(mm_lpm_lookup(lpm, &a, &p), V(1));
	ck_assert_int_eq(memcmp(p, &want, sizeof(want)), 0);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_eexist)
{
	struct mm_lpm_entry e[] = {
		{ P("10.0.0.0/8"), V(1) },
		{ P("10.0.0.0/16"), V(2) },
		{ P("10.0.0.0/8"), V(3) },
	};
	struct mm_lpm_entry e6[] = {
		{ P("2001:db8::/32"), V(1) },
		{ P("2001:db8::1/128"), V(2) },
		{ P("2001:db8::/32"), V(1) },
	};
	struct mm_lpm *sentinel = (struct mm_lpm *)&e, *lpm = sentinel;

	ck_assert_int_eq(mm_lpm_new(e, 3, &lpm), -EEXIST);
	ck_assert_ptr_eq(lpm, sentinel);
	ck_assert_int_eq(mm_lpm_new(e6, 3, &lpm), -EEXIST);
	ck_assert_ptr_eq(lpm, sentinel);
	/* Same address, different length: fine. */
	ck_assert_int_eq(mm_lpm_new(e, 2, &lpm), 0);
	mm_lpm_free(lpm);
}
END_TEST

START_TEST(test_einval)
{
	struct mm_lpm *sentinel = (struct mm_lpm *)&seed, *lpm = sentinel;
	struct mm_lpm_entry ok = { P("10.0.0.0/8"), V(1) };
	struct mm_lpm_entry bad[8];
	size_t nbad = 0;

	/* Host bits set, IPv4 and IPv6, including the very last bit and /0. */
	bad[nbad] = ok, bad[nbad].prefix.addr.bytes[3] = 1, nbad++;
	bad[nbad] = (struct mm_lpm_entry){ P("2001:db8::/127"), V(1) };
	bad[nbad].prefix.addr.bytes[15] = 1, nbad++;
	bad[nbad] = (struct mm_lpm_entry){ P("0.0.0.0/0"), V(1) };
	bad[nbad].prefix.addr.bytes[0] = 0x80, nbad++;
	bad[nbad] = (struct mm_lpm_entry){ P("::/0"), V(1) };
	bad[nbad].prefix.addr.bytes[15] = 1, nbad++;
	/* Lengths past the family's width. */
	bad[nbad] = ok, bad[nbad].prefix.len = 33, nbad++;
	bad[nbad] = (struct mm_lpm_entry){ P("::/128"), V(1) };
	bad[nbad].prefix.len = 129, nbad++;
	/* No family, or a foreign one. */
	bad[nbad] = ok, bad[nbad].prefix.addr.family = 0, nbad++;
	bad[nbad] = ok, bad[nbad].prefix.addr.family = AF_UNIX, nbad++;

	for (size_t i = 0; i < nbad; i++) {
		struct mm_lpm_entry e[3] = { ok, bad[i], { P("::/0"), V(2) } };

		ck_assert_msg(mm_lpm_new(e, 3, &lpm) == -EINVAL, "case %zu", i);
		ck_assert_ptr_eq(lpm, sentinel);
	}
	ck_assert_int_eq(mm_lpm_new(NULL, 1, &lpm), -EINVAL);
	ck_assert_ptr_eq(lpm, sentinel);
	ck_assert_int_eq(mm_lpm_new(&ok, 1, NULL), -EINVAL);
}
END_TEST

START_TEST(test_copied)
{
	/* The index owns a copy: the caller's array may change or go. */
	struct mm_lpm_entry *e = calloc(2, sizeof(*e));
	struct mm_lpm *lpm;

	ck_assert_ptr_nonnull(e);
	e[0] = (struct mm_lpm_entry){ P("172.16.0.0/12"), V(1) };
	e[1] = (struct mm_lpm_entry){ P("fc00::/7"), V(2) };
	lpm = build(e, 2);
	memset(e, 0xff, 2 * sizeof(*e));
	free(e);
	expect(lpm, "172.31.255.255", V(1), "172.16.0.0/12");
	expect(lpm, "fdff::1", V(2), "fc00::/7");
	expect(lpm, "fe00::", NULL, NULL);
	mm_lpm_free(lpm);
}
END_TEST

/* --- randomized comparison against a linear scan --- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: tiny, and identical everywhere. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rng_below(unsigned n)
{
	return (unsigned)(rng() % n);
}

static void mask_host(struct mm_prefix *p)
{
	unsigned bits = mm_addr_bits(p->addr.family);

	for (unsigned b = p->len; b < bits; b++)
		p->addr.bytes[b / 8] &= ~(0x80 >> (b % 8));
	memset(p->addr.bytes + bits / 8, 0, 16 - bits / 8);
}

static void random_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rng();
}

/* Random address, often inside one of the prefixes so most lookups hit
 * something and the deeper nesting levels get exercised. */
static struct mm_addr random_addr(const struct mm_lpm_entry *e, size_t n, int family)
{
	struct mm_addr a = { .family = (uint8_t)family };

	random_bytes(a.bytes, mm_addr_bits(family) / 8);
	if (n > 0 && rng_below(4) != 0) {
		const struct mm_prefix *p = &e[rng_below((unsigned)n)].prefix;

		if (p->addr.family == family) {
			for (unsigned b = 0; b < p->len; b++) {
				uint8_t bit = 0x80 >> (b % 8);

				a.bytes[b / 8] = (a.bytes[b / 8] & ~bit) |
						 (p->addr.bytes[b / 8] & bit);
			}
		}
	}
	return a;
}

/* Random prefix: half of them are carved out of an existing prefix so
 * that nesting is common; lengths favour the ends (0, host) a little. */
static struct mm_prefix random_prefix(const struct mm_lpm_entry *e, size_t n)
{
	int family = rng_below(2) ? AF_INET : AF_INET6;
	unsigned bits = mm_addr_bits(family);
	struct mm_prefix p = { 0 };
	unsigned k = rng_below(100);

	if (n > 0 && rng_below(2)) {
		const struct mm_prefix *parent = &e[rng_below((unsigned)n)].prefix;

		family = parent->addr.family;
		bits = mm_addr_bits(family);
		p.addr = random_addr(e, 0, family);
		for (unsigned b = 0; b < parent->len; b++) {
			uint8_t bit = 0x80 >> (b % 8);

			p.addr.bytes[b / 8] = (p.addr.bytes[b / 8] & ~bit) |
					      (parent->addr.bytes[b / 8] & bit);
		}
		p.len = (uint8_t)(parent->len + rng_below(bits - parent->len + 1));
	} else {
		p.addr.family = (uint8_t)family;
		random_bytes(p.addr.bytes, bits / 8);
		if (k < 2)
			p.len = 0;
		else if (k < 10)
			p.len = (uint8_t)bits;
		else
			p.len = (uint8_t)rng_below(bits + 1);
	}
	p.addr.family = (uint8_t)family;
	mask_host(&p);
	return p;
}

static const struct mm_lpm_entry *reference(const struct mm_lpm_entry *e, size_t n,
					    const struct mm_addr *a)
{
	const struct mm_lpm_entry *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (mm_prefix_contains(&e[i].prefix, a) &&
		    (!best || e[i].prefix.len > best->prefix.len))
			best = &e[i];
	return best;
}

/* a + delta (delta = +1 or -1); false when it would wrap. */
static bool addr_step(struct mm_addr *a, int delta)
{
	int nbytes = (int)mm_addr_bits(a->family) / 8;

	for (int i = nbytes - 1; i >= 0; i--) {
		if (delta > 0 ? a->bytes[i] != 0xff : a->bytes[i] != 0x00) {
			a->bytes[i] = (uint8_t)(a->bytes[i] + delta);
			for (int j = i + 1; j < nbytes; j++)
				a->bytes[j] = delta > 0 ? 0x00 : 0xff;
			return true;
		}
	}
	return false;
}

static void check_one(const struct mm_lpm *lpm, const struct mm_lpm_entry *e,
		      size_t n, const struct mm_addr *a)
{
	const struct mm_lpm_entry *want = reference(e, n, a);
	const struct mm_prefix *p = NULL;
	void *got = mm_lpm_lookup(lpm, a, &p);
	char abuf[MM_ADDR_STRLEN], pbuf[MM_ADDR_STRLEN];

	ck_assert_msg(got == (want ? want->value : NULL),
		      "seed %" PRIu64 ": %s: got %p, want %p (%s)", seed,
		      mm_addr_str(a, abuf), got, want ? want->value : NULL,
		      want ? mm_prefix_str(&want->prefix, pbuf) : "none");
	if (want)
		ck_assert_msg(p && mm_prefix_cmp(p, &want->prefix) == 0,
			      "seed %" PRIu64 ": %s: wrong prefix handed back", seed,
			      mm_addr_str(a, abuf));
	if (a->family == AF_INET) {
		uint32_t h = (uint32_t)a->bytes[0] << 24 | a->bytes[1] << 16 |
			     a->bytes[2] << 8 | a->bytes[3];

		ck_assert_ptr_eq(mm_lpm_lookup4(lpm, h), got);
	}
}

static void random_round(size_t target, size_t nrandom)
{
	struct mm_lpm_entry *e = calloc(target ? target : 1, sizeof(*e));
	struct mm_lpm *lpm = NULL, *dup = NULL;
	size_t n = 0;

	ck_assert_ptr_nonnull(e);
	while (n < target) {
		struct mm_prefix p = random_prefix(e, n);
		bool seen = false;

		for (size_t i = 0; i < n && !seen; i++)
			seen = mm_prefix_cmp(&e[i].prefix, &p) == 0;
		if (seen)
			continue;
		e[n].prefix = p;
		e[n].value = V(n + 1);
		n++;
	}
	lpm = build(e, n);

	for (size_t i = 0; i < n; i++) {
		struct mm_addr first = e[i].prefix.addr, last, x;

		mm_prefix_last(&e[i].prefix, &last);
		check_one(lpm, e, n, &first);
		check_one(lpm, e, n, &last);
		x = first;
		if (addr_step(&x, -1))
			check_one(lpm, e, n, &x);
		x = last;
		if (addr_step(&x, +1))
			check_one(lpm, e, n, &x);
	}
	for (size_t i = 0; i < nrandom; i++) {
		struct mm_addr a = random_addr(e, n, rng_below(2) ? AF_INET : AF_INET6);

		check_one(lpm, e, n, &a);
	}
	mm_lpm_free(lpm);

	/* Any one prefix repeated anywhere is refused. */
	if (n > 0) {
		struct mm_lpm_entry *e2 = realloc(e, (n + 1) * sizeof(*e));

		ck_assert_ptr_nonnull(e2);
		e = e2;
		e[n] = e[rng_below((unsigned)n)];
		e[n].value = V(0);
		ck_assert_int_eq(mm_lpm_new(e, n + 1, &dup), -EEXIST);
		ck_assert_ptr_null(dup);
	}
	free(e);
}

START_TEST(test_random_small)
{
	rng_state = seed;
	/* Many tiny tables: the edge cases (one prefix, one family only, a
	 * lone /0) come up far more often than in big ones. */
	for (unsigned round = 0; round < 2000; round++)
		random_round(rng_below(8), 50);
}
END_TEST

START_TEST(test_random_large)
{
	rng_state = seed ^ 0x5eed;
	random_round(3000, 20000);
	random_round(500, 20000);
}
END_TEST

static Suite *lpm_suite(void)
{
	Suite *s = suite_create("lpm");
	TCase *tc = tcase_create("hand");
	TCase *rnd = tcase_create("random");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_nesting);
	tcase_add_test(tc, test_nesting_same_end);
	tcase_add_test(tc, test_default_route);
	tcase_add_test(tc, test_only_default);
	tcase_add_test(tc, test_host_prefixes);
	tcase_add_test(tc, test_single_host);
	tcase_add_test(tc, test_adjacent);
	tcase_add_test(tc, test_families_apart);
	tcase_add_test(tc, test_v4_unused_bytes);
	tcase_add_test(tc, test_eexist);
	tcase_add_test(tc, test_einval);
	tcase_add_test(tc, test_copied);
	suite_add_tcase(s, tc);

	/* A linear reference is slow on purpose; give it room under
	 * valgrind (CK_TIMEOUT_MULTIPLIER scales further). */
	tcase_set_timeout(rnd, 120);
	tcase_add_test(rnd, test_random_small);
	tcase_add_test(rnd, test_random_large);
	suite_add_tcase(s, rnd);
	return s;
}

int main(void)
{
	const char *env = getenv("MM_LPM_SEED");

	if (env && *env)
		seed = strtoull(env, NULL, 0);
	printf("test_lpm: seed %" PRIu64 " (MM_LPM_SEED=%" PRIu64 " reproduces)\n",
	       seed, seed);
	fflush(stdout);
	return mm_test_run(lpm_suite());
}
