/* Unit tests for policy/snapshot.c: the snapshot format's builder, its
 * checker (mm_snap_table_load / mm_snap_state_load) and its answers.
 *
 *   - A seeded random model: random tables (hundreds of partners, disjoint
 *     IPv4 and IPv6 ranges) through mm_table_build, mm_snap_table_build and
 *     the loader; random up tunnels; random cscf prefixes and settings.
 *     mm_snap_lookup is compared with the daemon's LPM (mm_table_lookup),
 *     mm_snap_find with mm_table_find, and mm_snap_inbound/outbound with a
 *     reference written here from docs/privacy.md (it calls no mm_snap_*
 *     and no policy/privacy.c function).  The seed is printed; set
 *     MM_SNAPSHOT_SEED to replay it.
 *   - Corruption: every single-bit flip of a small table and state file,
 *     every truncation and extension, wrong magic/version/byte order/
 *     layout, a state for another table.
 *   - Files with a correct checksum but a bad structure, one defect each:
 *     the loader must refuse every one. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/addr.h"
#include "policy/partner.h"
#include "policy/privacy.h"
#include "policy/snapshot.h"
#include "policy/table.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

static uint64_t seed;
static uint64_t rng_state;

static uint64_t rnd(void)  /* splitmix64: the same sequence on any libc */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- aligned copies ---- */

/* A copy of len bytes in an 8-aligned buffer (plus room for extension). */
static const struct mm_cscf_set no_cscf = { 0 };

static void *copy8(const void *buf, size_t len, size_t extra)
{
	void *p = NULL;

	ck_assert_int_eq(posix_memalign(&p, 8, len + extra + 8), 0);
	memset(p, 0, len + extra + 8);
	memcpy(p, buf, len);
	return p;
}

static const size_t tz[] = { offsetof(struct mm_snap_table_hdr, checksum) };
static const size_t sz[] = {
	offsetof(struct mm_snap_state_hdr, checksum),
	offsetof(struct mm_snap_state_hdr, state),
	offsetof(struct mm_snap_state_hdr, heartbeat_ms),
};

static void reseal_table(void *buf, size_t len)
{
	struct mm_snap_table_hdr *h = buf;

	h->checksum = mm_snap_checksum(buf, len, sizeof(*h), tz, 1);
}

static void reseal_state(void *buf, size_t len)
{
	struct mm_snap_state_hdr *h = buf;

	h->checksum = mm_snap_checksum(buf, len, sizeof(*h), sz, 3);
}

/* ---- the random model ---- */

struct model_range {
	struct mm_prefix p;
	size_t partner;
};

struct model_tunnel {
	bool up;
	uint32_t spi_in, spi_out;
	bool in_enforced, out_enforced;
};

struct model {
	struct mm_partner **partners;  /* sorted by domain, as the table */
	size_t n;
	struct model_range *ranges;
	size_t n_ranges;
	struct model_tunnel *tun;      /* by partner index */
	struct mm_prefix cscf[4];
	unsigned cscf_kinds[4];        /* the peers each faces */
	size_t n_cscf;
	enum mm_untrusted_mode untrusted;
	bool require_dst;
	unsigned tunnel_addrs;         /* the state's MM_TUNNEL_ADDRS_ bits */
	struct mm_table *tb;
};

static struct mm_addr random_addr_in(const struct mm_prefix *p);

static struct mm_prefix random_prefix(int family)
{
	struct mm_prefix p = { .addr = { .family = family } };
	unsigned bits = family == AF_INET ? 32 : 128;

	for (;;) {
		for (unsigned i = 0; i < bits / 8; i++)
			p.addr.bytes[i] = (uint8_t)rnd();
		if (family == AF_INET6)
			p.addr.bytes[0] = 0x20 | (p.addr.bytes[0] & 0x1f);  /* 2000::/3 */
		/* lengths from wide to host routes; most of them long */
		p.len = family == AF_INET ? 8 + below(25) : 16 + below(113);
		if (below(4) == 0)
			p.len = bits;
		for (unsigned b = p.len; b < bits; b++)
			p.addr.bytes[b / 8] &= ~(0x80 >> (b % 8));
		if (!mm_prefix_special(&p))
			return p;
	}
}

static int cmp_partner(const void *a, const void *b)
{
	const struct mm_partner *const *x = a, *const *y = b;

	return strcmp((*x)->domain, (*y)->domain);
}

static int cmp_prefix(const void *a, const void *b)
{
	return mm_prefix_cmp(a, b);
}

static bool overlaps_any(const struct model *m, const struct mm_prefix *p)
{
	for (size_t i = 0; i < m->n_ranges; i++)
		if (mm_prefix_overlaps(&m->ranges[i].p, p))
			return true;
	return false;
}

static void model_new(struct model *m, size_t n)
{
	struct mm_err err = { 0 };
	int r;

	memset(m, 0, sizeof(*m));
	m->partners = calloc(n, sizeof(*m->partners));
	m->ranges = calloc(n * 4 + 2, sizeof(*m->ranges));
	m->tun = calloc(n, sizeof(*m->tun));
	ck_assert(m->partners && m->ranges && m->tun);
	/* Where the gateways are, kept out of every partner's ranges (the
	 * table refuses a gateway inside a partner's range). */
	m->ranges[m->n_ranges++] = (struct model_range){ mm_test_prefix("198.51.100.0/24"), 0 };
	m->ranges[m->n_ranges++] = (struct model_range){ mm_test_prefix("2001:db8:ff::/48"), 0 };
	for (size_t i = 0; i < n; i++) {
		struct mm_partner *p = mm_partner_new();
		size_t k = 1 + below(4);

		ck_assert_ptr_nonnull(p);
		snprintf(p->domain, sizeof(p->domain), "p%zu-%x.example%u.net", i,
			 (unsigned)below(0x10000), (unsigned)below(10));
		p->kind = below(MM_KIND__MAX);
		p->agreement = below(3) != 0;
		p->path = below(4) == 0 ? MM_PATH_SEG : MM_PATH_TUNNEL;
		p->enabled = below(6) != 0;
		p->reqid = 1000 + i;
		p->ranges = calloc(k, sizeof(*p->ranges));
		ck_assert_ptr_nonnull(p->ranges);
		for (size_t j = 0; j < k; j++) {
			struct mm_prefix pr;

			do
				pr = random_prefix(below(2) ? AF_INET : AF_INET6);
			while (overlaps_any(m, &pr));
			p->ranges[p->n_ranges++] = pr;
			m->ranges[m->n_ranges++] = (struct model_range){ pr, 0 };
		}
		qsort(p->ranges, p->n_ranges, sizeof(*p->ranges), cmp_prefix);
		/* 0 to 3 gateways of either family */
		p->gateways = calloc(3, sizeof(*p->gateways));
		ck_assert_ptr_nonnull(p->gateways);
		for (size_t g = below(4); g > 0; g--)
			ck_assert_int_eq(mm_addr_parse(below(2) ? "198.51.100.7" : "2001:db8:ff::7",
						       &p->gateways[p->n_gateways++], "gw", NULL),
					 0);
		m->partners[m->n++] = p;
	}
	r = mm_table_build(m->partners, m->n, 1000, 1000 + n + 10, 1000 + n, &m->tb, &err);
	ck_assert_msg(r == 0, "mm_table_build: %s: %s", err.field, err.msg);
	/* The model's own order and index (independent of the table's). */
	qsort(m->partners, m->n, sizeof(*m->partners), cmp_partner);
	m->n_ranges = 0;
	for (size_t i = 0; i < m->n; i++)
		for (size_t k = 0; k < m->partners[i]->n_ranges; k++)
			m->ranges[m->n_ranges++] =
				(struct model_range){ m->partners[i]->ranges[k], i };
	for (size_t i = 0; i < m->n; i++)
		if (below(5) < 2)
			m->tun[i] = (struct model_tunnel){
				.up = true,
				.spi_in = 0x100 + (uint32_t)below(0xfffffe00u),
				.spi_out = 0x100 + (uint32_t)below(0xfffffe00u),
				.in_enforced = below(4) != 0,
				.out_enforced = below(4) != 0,
			};
	/* Our prefixes: shared by both kinds in some rounds, split in others;
	 * prefixes of different kinds never overlap (the configuration's
	 * rule), of one kind they may. */
	m->n_cscf = below(4);
	bool split = below(3) != 0;

	for (size_t i = 0; i < m->n_cscf; i++) {
		static const unsigned kinds[] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS),
						  MM_KIND_BIT(MM_KIND_NON_IMS) };
		bool clash;

		do {
			m->cscf[i] = random_prefix(below(2) ? AF_INET : AF_INET6);
			m->cscf_kinds[i] = split ? kinds[below(3)] : MM_KINDS_ALL;
			if (i && below(4) == 0)  /* inside an earlier one */
				m->cscf[i] = (struct mm_prefix){ .addr = random_addr_in(&m->cscf[0]),
								 .len = mm_addr_bits(m->cscf[0].addr.family) };
			clash = false;
			for (size_t k = 0; k < i; k++)
				clash |= m->cscf_kinds[k] != m->cscf_kinds[i] &&
					 mm_prefix_overlaps(&m->cscf[k], &m->cscf[i]);
		} while (clash);
	}
	m->untrusted = below(2) ? MM_UNTRUSTED_STRIP_PRIVACY_ID : MM_UNTRUSTED_STRIP_ALWAYS;
	m->require_dst = below(3) == 0;
	/* not known (an old daemon's view, no host watcher), or known with
	 * any of the families */
	m->tunnel_addrs = below(4) == 0 ? 0 : MM_TUNNEL_ADDRS_KNOWN | (unsigned)below(4);
}

/* Whether the model holds a usable tunnel address for partner p: known,
 * and one of p's gateways is of a family with one. */
static bool model_addr_missing(const struct model *m, const struct mm_partner *p)
{
	if (!(m->tunnel_addrs & MM_TUNNEL_ADDRS_KNOWN))
		return false;
	for (size_t g = 0; g < p->n_gateways; g++)
		if (m->tunnel_addrs & (p->gateways[g].family == AF_INET ? 1u : 2u))
			return false;
	return true;
}

static void model_free(struct model *m)
{
	mm_table_free(m->tb);
	for (size_t i = 0; i < m->n; i++)
		mm_partner_unref(m->partners[i]);
	free(m->partners);
	free(m->ranges);
	free(m->tun);
}

/* The model's partner holding a: a linear scan. */
static ssize_t model_lookup(const struct model *m, const struct mm_addr *a)
{
	for (size_t i = 0; i < m->n_ranges; i++)
		if (m->ranges[i].p.addr.family == a->family &&
		    mm_prefix_contains(&m->ranges[i].p, a))
			return (ssize_t)m->ranges[i].partner;
	return -1;
}

static ssize_t model_find(const struct model *m, const char *domain)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->partners[i]->domain, domain))
			return (ssize_t)i;
	return -1;
}

struct ref {
	int r;             /* 0 or -EAGAIN */
	ssize_t partner;   /* -1: none */
	bool keep, protected_, trusted;
	const char *reason;
};

/* docs/privacy.md, "Inbound", row by row. */
static struct ref ref_inbound(const struct model *m, const struct mm_addr *src,
			      const struct mm_addr *dst, uint32_t spi)
{
	struct ref f = { .partner = model_lookup(m, src) };
	const struct mm_partner *p;
	const struct model_tunnel *t;
	bool in_cscf = false, other_kind = false, over_sa;

	if ((!dst && m->require_dst) || (dst && dst->family != src->family))
		return (struct ref){ .r = -EAGAIN };
	if (f.partner < 0) {
		f.reason = "unknown-source";
		return f;
	}
	p = m->partners[f.partner];
	t = &m->tun[f.partner];
	/* dst in a prefix facing the partner's kind, or in one facing the
	 * other kind only */
	for (size_t i = 0; dst && i < m->n_cscf; i++) {
		if (!mm_prefix_contains(&m->cscf[i], dst))
			continue;
		if (m->cscf_kinds[i] & (1u << p->kind))
			in_cscf |= m->cscf[i].addr.family == src->family;
		else
			other_kind = true;
	}
	if (other_kind && !in_cscf) {
		/* whoever the partner: strip; the daemon answers (and counts) */
		f.reason = "dst-other-kind";
		f.r = -EAGAIN;
		return f;
	}
	over_sa = p->path == MM_PATH_TUNNEL && t->up && in_cscf &&
		  (spi == 0 || spi == t->spi_in) && t->in_enforced;
	if (!p->enabled) {
		f.reason = "partner-disabled";
	} else if (!p->agreement) {
		f.reason = "no-agreement";
		f.protected_ = over_sa;
	} else if (p->path == MM_PATH_SEG) {
		f.reason = "seg-trusted";
		f.keep = f.trusted = true;
	} else if (!t->up) {
		f.reason = model_addr_missing(m, p) ? "tunnel-address-missing" : "unprotected";
	} else if (!dst) {
		f.reason = "dst-not-given";
	} else if (!in_cscf) {
		f.reason = "dst-not-cscf";
	} else if (spi && spi != t->spi_in) {
		f.reason = "spi-mismatch";
	} else if (!t->in_enforced) {
		f.reason = "not-enforced";
	} else {
		f.reason = "protected";
		f.keep = f.trusted = f.protected_ = true;
	}
	return f;
}

/* docs/privacy.md, "Outbound", and the untrusted mode of [query]. */
static struct ref ref_outbound(const struct model *m, const char *domain,
			       const struct mm_addr *hop, bool privacy_id)
{
	struct ref f = { 0 };
	const struct mm_partner *p;
	const struct model_tunnel *t;

	if (!domain == !hop)
		return (struct ref){ .r = -EAGAIN };
	f.partner = domain ? model_find(m, domain) : model_lookup(m, hop);
	if (f.partner < 0) {
		f.reason = "not-a-partner";
	} else {
		p = m->partners[f.partner];
		t = &m->tun[f.partner];
		/* The out policies cover the next hop when a cscf prefix of its
		 * family exists; a partner named by domain, when every range has
		 * one (and it has a range). */
		bool cover = true;

		for (size_t k = 0; k < (hop ? 1 : p->n_ranges); k++) {
			int fam = hop ? hop->family : p->ranges[k].addr.family;
			bool have = false;

			for (size_t i = 0; i < m->n_cscf; i++)
				have |= m->cscf[i].addr.family == fam &&
					(m->cscf_kinds[i] & (1u << p->kind));
			cover &= have;
		}
		if (!hop && !p->n_ranges)
			cover = false;
		f.protected_ = p->enabled && p->path == MM_PATH_TUNNEL && t->up;
		if (!p->enabled)
			f.reason = "partner-disabled";
		else if (!p->agreement)
			f.reason = "no-agreement";
		else if (p->path == MM_PATH_SEG)
			f.reason = "seg-trusted", f.trusted = true;
		else if (!t->up)
			f.reason = model_addr_missing(m, p) ? "tunnel-address-missing"
							    : "unprotected";
		else if (!(t->out_enforced && cover))
			f.reason = "not-enforced";
		else
			f.reason = "protected", f.trusted = true;
	}
	f.keep = f.trusted;
	if (!f.trusted && m->untrusted == MM_UNTRUSTED_STRIP_PRIVACY_ID && !privacy_id) {
		f.keep = true;
		f.reason = "untrusted-no-privacy-requested";
	}
	return f;
}

/* a + d (d = +1 / -1) in its family, wrapping. */
static struct mm_addr addr_step(struct mm_addr a, int d)
{
	int n = a.family == AF_INET ? 4 : 16;

	for (int i = n - 1; i >= 0; i--) {
		a.bytes[i] = (uint8_t)(a.bytes[i] + d);
		if ((d > 0 && a.bytes[i] != 0) || (d < 0 && a.bytes[i] != 0xff))
			break;
	}
	return a;
}

static struct mm_addr random_addr_in(const struct mm_prefix *p)
{
	struct mm_addr a = p->addr;
	unsigned bits = mm_addr_bits(p->addr.family);

	for (unsigned b = p->len; b < bits; b++)
		if (rnd() & 1)
			a.bytes[b / 8] |= 0x80 >> (b % 8);
	return a;
}

/* An address near the edge of something the answers depend on. */
static struct mm_addr pick_addr(const struct model *m)
{
	struct mm_addr a;
	const struct mm_prefix *p;

	switch (below(8)) {
	case 0: {  /* anywhere */
		a = (struct mm_addr){ .family = below(2) ? AF_INET : AF_INET6 };
		for (int i = 0; i < (a.family == AF_INET ? 4 : 16); i++)
			a.bytes[i] = (uint8_t)rnd();
		return a;
	}
	case 1:
		if (m->n_cscf)
			return random_addr_in(&m->cscf[below(m->n_cscf)]);
		/* fall through */
	default:
		p = &m->ranges[below(m->n_ranges)].p;
		break;
	}
	switch (below(5)) {
	case 0:
		return p->addr;
	case 1:
		mm_prefix_last(p, &a);
		return a;
	case 2:
		return addr_step(p->addr, -1);
	case 3:
		mm_prefix_last(p, &a);
		return addr_step(a, +1);
	default:
		return random_addr_in(p);
	}
}

static void check_dec(const char *what, const struct mm_addr *a, const struct ref *want,
		      const struct mm_snap_answer *got, const struct mm_snap_table *t)
{
	char buf[MM_ADDR_STRLEN];

	ck_assert_msg((want->partner < 0 && !got->partner) ||
			      (want->partner >= 0 && got->partner == &t->partners[want->partner]),
		      "%s %s: partner %zd", what, a ? mm_addr_str(a, buf) : "-", want->partner);
	ck_assert_msg(got->dec.reason && !strcmp(got->dec.reason, want->reason),
		      "%s %s: reason %s, want %s", what, a ? mm_addr_str(a, buf) : "-",
		      got->dec.reason ? got->dec.reason : "(null)", want->reason);
	ck_assert_msg((got->dec.pai == MM_PAI_KEEP) == want->keep, "%s: pai", what);
	ck_assert_msg(got->dec.protected_ == want->protected_, "%s %s (%s): protected %d", what,
		      a ? mm_addr_str(a, buf) : "-", want->reason, got->dec.protected_);
	ck_assert_msg(got->dec.trusted == want->trusted, "%s: trusted", what);
}

static void model_round(size_t n_partners, size_t n_queries)
{
	struct model m;
	struct mm_snap_tunnel_in *in;
	struct mm_snap_table t;
	struct mm_snap_state s;
	struct mm_err err = { 0 };
	void *tf, *sf, *ta, *sa;
	size_t tl, sl, n_in = 0;
	uint64_t id = rnd(), gen = rnd();
	int r;

	model_new(&m, n_partners);
	r = mm_snap_table_build(m.tb,
				&(struct mm_cscf_set){ .prefix = m.cscf, .kinds = m.cscf_kinds,
						       .n = m.n_cscf },
				m.untrusted, m.require_dst, id, &tf, &tl);
	ck_assert_int_eq(r, 0);
	ta = copy8(tf, tl, 0);
	r = mm_snap_table_load(ta, tl, &t, &err);
	ck_assert_msg(r == 0, "table load: %s: %s", err.field, err.msg);
	ck_assert_uint_eq(t.n_partners, m.n);
	ck_assert_uint_eq(t.n_ranges, m.n_ranges);
	ck_assert_uint_eq(t.n_cscf, m.n_cscf);
	for (size_t i = 0; i < m.n_cscf; i++) {  /* the kinds round-trip */
		ck_assert_int_eq(mm_prefix_cmp(&t.cscf[i], &m.cscf[i]), 0);
		ck_assert_uint_eq(t.cscf_kinds[i], m.cscf_kinds[i]);
	}
	ck_assert_uint_eq(t.table_id, id);
	ck_assert_int_eq(t.untrusted, m.untrusted);
	ck_assert_int_eq(t.require_dst, m.require_dst);

	/* The tunnels, in a shuffled order, plus one for a domain the table
	 * does not hold (left out). */
	in = calloc(m.n + 1, sizeof(*in));
	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < m.n; i++)
		if (m.tun[i].up)
			in[n_in++] = (struct mm_snap_tunnel_in){
				.domain = m.partners[i]->domain,
				.reqid = m.partners[i]->reqid,
				.spi_in = m.tun[i].spi_in,
				.spi_out = m.tun[i].spi_out,
				.in_enforced = m.tun[i].in_enforced,
				.out_enforced = m.tun[i].out_enforced,
				.since = 1700000000 + (int64_t)i,
				.remote_id = m.partners[i]->domain,
			};
	in[n_in++] = (struct mm_snap_tunnel_in){ .domain = "not-there.example.org",
						 .spi_in = 0x1234, .remote_id = "x" };
	for (size_t i = n_in; i > 1; i--) {
		size_t j = below(i);
		struct mm_snap_tunnel_in x = in[i - 1];

		in[i - 1] = in[j];
		in[j] = x;
	}
	r = mm_snap_state_build(&t, gen, 4242, 1000, 123456, in, n_in, m.tunnel_addrs, &sf, &sl);
	ck_assert_int_eq(r, 0);
	sa = copy8(sf, sl, 0);
	r = mm_snap_state_load(sa, sl, &t, &s, &err);
	ck_assert_msg(r == 0, "state load: %s: %s", err.field, err.msg);
	ck_assert_uint_eq(s.n_up, n_in - 1);
	ck_assert_uint_eq(s.generation, gen);
	ck_assert_uint_eq(s.table_id, id);
	ck_assert_uint_eq(s.h->heartbeat_ms, 123456);
	ck_assert_uint_eq(s.h->state, MM_SNAP_CURRENT);
	ck_assert_uint_eq(s.tunnel_addrs, m.tunnel_addrs);  /* the bits round-trip */

	/* Every partner: find, the tunnel it has. */
	for (size_t i = 0; i < m.n; i++) {
		const struct mm_partner *p = m.partners[i];
		const struct mm_snap_partner *sp = mm_snap_find(&t, p->domain);
		const struct mm_snap_tunnel *tu;

		ck_assert_ptr_eq(sp, &t.partners[i]);
		ck_assert_ptr_eq(mm_table_find(m.tb, p->domain), p);
		ck_assert_str_eq(sp->domain, p->domain);
		ck_assert_uint_eq(sp->reqid, p->reqid);
		ck_assert_uint_eq(sp->kind, p->kind);
		ck_assert_uint_eq(sp->agreement, p->agreement);
		ck_assert_uint_eq(sp->path, p->path);
		ck_assert_uint_eq(sp->enabled, p->enabled);
		ck_assert_uint_eq(sp->n_ranges, p->n_ranges);
		for (size_t g = 0; g < p->n_gateways; g++)
			ck_assert(sp->gateway_families &
				  (p->gateways[g].family == AF_INET ? MM_FAMILY_V4 : MM_FAMILY_V6));
		ck_assert(!p->n_gateways == !sp->gateway_families);
		ck_assert(!(sp->gateway_families & ~MM_FAMILIES));
		tu = mm_snap_tunnel_of(&t, &s, sp);
		ck_assert_int_eq(tu != NULL, m.tun[i].up);
		if (tu) {
			ck_assert_uint_eq(tu->partner, i);
			ck_assert_uint_eq(tu->spi_in, m.tun[i].spi_in);
			ck_assert_uint_eq(tu->spi_out, m.tun[i].spi_out);
			ck_assert_uint_eq(tu->in_enforced, m.tun[i].in_enforced);
			ck_assert_uint_eq(tu->out_enforced, m.tun[i].out_enforced);
			ck_assert_str_eq(tu->remote_id, p->domain);
		}
	}
	/* Domains not held, next to ones held. */
	for (size_t i = 0; i < 50; i++) {
		char d[300];
		const char *base = m.partners[below(m.n)]->domain;

		snprintf(d, sizeof(d), below(2) ? "a%s" : "%s.x", base);
		ck_assert_ptr_eq(mm_snap_find(&t, d), NULL);
		ck_assert_ptr_eq(mm_table_find(m.tb, d), NULL);
	}

	for (size_t q = 0; q < n_queries; q++) {
		struct mm_addr a = pick_addr(&m), d, *dst = &d;
		const struct mm_snap_partner *sp = mm_snap_lookup(&t, &a);
		const struct mm_partner *tp = mm_table_lookup(m.tb, &a, NULL);
		ssize_t mi = model_lookup(&m, &a);
		struct mm_snap_answer ans;
		struct ref want;
		uint32_t spi;
		char buf[MM_ADDR_STRLEN];

		ck_assert_msg((!sp && !tp) || (sp && tp && !strcmp(sp->domain, tp->domain)),
			      "lookup %s: snapshot %s, table %s", mm_addr_str(&a, buf),
			      sp ? sp->domain : "-", tp ? tp->domain : "-");
		ck_assert_msg((mi < 0 && !sp) || (mi >= 0 && sp == &t.partners[mi]),
			      "lookup %s vs the model", mm_addr_str(&a, buf));

		/* inbound */
		switch (below(6)) {
		case 0:
			dst = NULL;
			break;
		case 1:  /* the other family: refused */
			d = pick_addr(&m);
			break;
		default:
			d = m.n_cscf && below(3) ? random_addr_in(&m.cscf[below(m.n_cscf)])
						 : pick_addr(&m);
			if (d.family != a.family && below(4))
				dst = NULL;
			break;
		}
		spi = below(3) == 0 ? 0 : mi >= 0 && m.tun[mi].up && below(2) ? m.tun[mi].spi_in
									 : (uint32_t)rnd();
		want = ref_inbound(&m, &a, dst, spi);
		memset(&ans, 0xa5, sizeof(ans));
		r = mm_snap_inbound(&t, &s, &a, dst, spi, &ans);
		ck_assert_int_eq(r, want.r);
		if (!r || (want.reason && !strcmp(want.reason, "dst-other-kind"))) {
			check_dec("inbound", &a, &want, &ans, &t);
			ck_assert_int_eq(ans.tunnel != NULL, mi >= 0 && m.tun[mi].up);
			if (ans.tunnel)
				ck_assert_uint_eq(ans.tunnel->partner, mi);
		}

		/* outbound, by address and by domain */
		bool priv = below(2);

		want = ref_outbound(&m, NULL, &a, priv);
		r = mm_snap_outbound(&t, &s, NULL, &a, priv, &ans);
		ck_assert_int_eq(r, 0);
		check_dec("outbound", &a, &want, &ans, &t);
		if (mi >= 0) {
			const char *dom = m.partners[mi]->domain;

			want = ref_outbound(&m, dom, NULL, priv);
			r = mm_snap_outbound(&t, &s, dom, NULL, priv, &ans);
			ck_assert_int_eq(r, 0);
			check_dec("outbound by domain", NULL, &want, &ans, &t);
			ck_assert_int_eq(mm_snap_outbound(&t, &s, dom, &a, priv, &ans), -EAGAIN);
		}
	}
	ck_assert_int_eq(mm_snap_outbound(&t, &s, NULL, NULL, false, &(struct mm_snap_answer){ 0 }),
			 -EAGAIN);
	ck_assert_int_eq(mm_snap_outbound(&t, &s, "unknown.example.org", NULL, true,
					  &(struct mm_snap_answer){ 0 }),
			 0);
	free(in);
	free(tf);
	free(sf);
	free(ta);
	free(sa);
	model_free(&m);
}

START_TEST(test_random_model)
{
	for (int round = 0; round < 12; round++)
		model_round(round == 0 ? 3 : 100 + below(400), 4000);
}
END_TEST

START_TEST(test_build_refuses)
{
	/* Two partners whose ranges overlap: no table holds them, but the
	 * builder must not trust that; the same for duplicate tunnels. */
	struct mm_partner *p[2] = { mm_test_partner("a.example.net", 1, "10.1.0.0/16", ""),
				    mm_test_partner("b.example.net", 2, "10.1.2.0/24", "") };
	struct mm_table tb = { .partners = p, .n = 2 };
	struct mm_snap_table t;
	struct mm_err err = { 0 };
	struct mm_snap_tunnel_in up[2] = { { .domain = "a.example.net", .remote_id = "a" },
					   { .domain = "a.example.net", .remote_id = "a" } };
	void *buf, *al;
	size_t len;

	ck_assert_int_eq(mm_snap_table_build(&tb, &no_cscf, 0, false, 1, &buf, &len), -EINVAL);
	tb.n = 1;
	ck_assert_int_eq(mm_snap_table_build(&tb, &no_cscf, 0, false, 1, &buf, &len), 0);
	al = copy8(buf, len, 0);
	free(buf);
	ck_assert_int_eq(mm_snap_table_load(al, len, &t, &err), 0);
	buf = NULL;
	ck_assert_int_eq(mm_snap_state_build(&t, 1, 1, 1, 1, up, 2, 0, &buf, &len), -EINVAL);
	ck_assert_ptr_null(buf);
	free(al);
	mm_test_partners_free(p, 2);
}
END_TEST

/* ---- a small table and state to break ---- */

struct small {
	struct mm_partner *p[3];
	struct mm_table *tb;
	void *tf, *sf;   /* 8-aligned, as built */
	size_t tl, sl;
	struct mm_snap_table t;
};

static void small_new(struct small *x, uint64_t id)
{
	struct mm_prefix cscf[2] = { mm_test_prefix("10.9.0.0/24"),
				     mm_test_prefix("2a00:9::/64") };
	unsigned kinds[2] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS) };
	struct mm_snap_tunnel_in up[2] = {
		{ .domain = "a.example.net", .reqid = 1, .spi_in = 0xc1, .spi_out = 0xc2,
		  .in_enforced = true, .out_enforced = true, .remote_id = "a.example.net" },
		{ .domain = "c.example.net", .reqid = 3, .spi_in = 0xc3, .spi_out = 0xc4,
		  .in_enforced = true, .remote_id = "c.example.net" },
	};
	struct mm_err err = { 0 };

	x->p[0] = mm_test_partner("a.example.net", 1, "10.1.0.0/16 10.2.0.0/24 2a00:1::/32", "");
	x->p[1] = mm_test_partner("b.example.net", 2, "10.3.0.0/16 2a00:2::/48", "");
	x->p[2] = mm_test_partner("c.example.net", 3, "10.4.0.0/24", "");
	x->p[0]->agreement = x->p[2]->agreement = true;
	ck_assert_int_eq(mm_table_build(x->p, 3, 1, 100, 4, &x->tb, &err), 0);
	ck_assert_int_eq(mm_snap_table_build(x->tb,
					     &(struct mm_cscf_set){ .prefix = cscf, .kinds = kinds,
								    .n = 2 },
					     0, false, id, &x->tf, &x->tl),
			 0);
	ck_assert_int_eq((uintptr_t)x->tf % 8, 0);
	ck_assert_int_eq(mm_snap_table_load(x->tf, x->tl, &x->t, &err), 0);
	ck_assert_uint_eq(x->t.n_v4, 4);
	ck_assert_uint_eq(x->t.n_v6, 2);
	ck_assert_int_eq(mm_snap_state_build(&x->t, 7, 99, 500, 1000, up, 2,
					     MM_TUNNEL_ADDRS_KNOWN | MM_FAMILY_V4, &x->sf, &x->sl), 0);
	ck_assert_int_eq((uintptr_t)x->sf % 8, 0);
}

static void small_free(struct small *x)
{
	free(x->tf);
	free(x->sf);
	mm_table_free(x->tb);
	mm_test_partners_free(x->p, 3);
}

static int load_t(const void *buf, size_t len)
{
	struct mm_snap_table t;
	struct mm_err err = { 0 };
	int r = mm_snap_table_load(buf, len, &t, &err);

	if (r < 0)
		ck_assert_msg(err.msg[0] != '\0', "a refusal says why");
	return r;
}

static int load_s(const void *buf, size_t len, const struct mm_snap_table *t)
{
	struct mm_snap_state s;
	struct mm_err err = { 0 };
	int r = mm_snap_state_load(buf, len, t, &s, &err);

	if (r < 0)
		ck_assert_msg(err.msg[0] != '\0', "a refusal says why");
	return r;
}

START_TEST(test_bit_flips)
{
	struct small x;
	const size_t st = offsetof(struct mm_snap_state_hdr, state);
	const size_t hb = offsetof(struct mm_snap_state_hdr, heartbeat_ms);

	small_new(&x, 0x1111);
	ck_assert_int_eq(load_s(x.sf, x.sl, &x.t), 0);
	for (size_t i = 0; i < x.tl; i++)
		for (int b = 0; b < 8; b++) {
			unsigned char *c = copy8(x.tf, x.tl, 0);

			c[i] ^= 1u << b;
			ck_assert_msg(load_t(c, x.tl) < 0, "table: flip of bit %d at %zu loads", b,
				      i);
			free(c);
		}
	for (size_t i = 0; i < x.sl; i++)
		for (int b = 0; b < 8; b++) {
			unsigned char *c = copy8(x.sf, x.sl, 0);
			int r;

			c[i] ^= 1u << b;
			r = load_s(c, x.sl, &x.t);
			if ((i >= st && i < st + 8) || (i >= hb && i < hb + 8))
				/* the live words: outside the checksum */
				ck_assert_msg(r == 0 || r == -EBADMSG,
					      "state: live word flip at %zu: %d", i, r);
			else
				ck_assert_msg(r < 0, "state: flip of bit %d at %zu loads", b, i);
			free(c);
		}
	small_free(&x);
}
END_TEST

START_TEST(test_truncate_extend)
{
	struct small x;

	small_new(&x, 0x2222);
	for (size_t n = 0; n < x.tl; n++)
		ck_assert_msg(load_t(x.tf, n) < 0, "table cut to %zu loads", n);
	for (size_t n = 0; n < x.sl; n++)
		ck_assert_msg(load_s(x.sf, n, &x.t) < 0, "state cut to %zu loads", n);
	for (size_t e = 1; e <= 64; e++) {
		unsigned char *c = copy8(x.tf, x.tl, e);

		ck_assert_msg(load_t(c, x.tl + e) == -EBADMSG, "table + %zu loads", e);
		free(c);
		c = copy8(x.sf, x.sl, e);
		ck_assert_msg(load_s(c, x.sl + e, &x.t) == -EBADMSG, "state + %zu loads", e);
		free(c);
	}
	/* Extended and size and checksum made to agree: the sections are
	 * still right, so it loads (the check is on the structure). */
	{
		unsigned char *c = copy8(x.tf, x.tl, 8);
		struct mm_snap_table_hdr *h = (void *)c;

		h->size += 8;
		reseal_table(c, x.tl + 8);
		ck_assert_int_eq(load_t(c, x.tl + 8), 0);
		free(c);
	}
	small_free(&x);
}
END_TEST

START_TEST(test_header_errors)
{
	struct small x;
	struct mm_snap_table t2;
	struct mm_err err = { 0 };
	void *tf2, *sf2, *a;
	size_t tl2, sl2;

	small_new(&x, 0x3333);
	for (int which = 0; which < 2; which++) {
		void *src = which ? x.sf : x.tf;
		size_t len = which ? x.sl : x.tl;
		struct mm_snap_table_hdr *h;  /* same leading fields in both */
		int r;

#define TRY(want, mutate)                                                            \
	do {                                                                         \
		h = copy8(src, len, 0);                                              \
		mutate;                                                              \
		r = which ? load_s(h, len, &x.t) : load_t(h, len);                   \
		ck_assert_msg(r == (want), "%s %s: %d", which ? "state" : "table",   \
			      #mutate, r);                                           \
		free(h);                                                             \
	} while (0)
		TRY(-EBADMSG, h->magic[0] = 'X');
		TRY(-EBADMSG, h->magic[7] = which ? 'T' : 'S');  /* the other kind */
		TRY(-EPROTO, h->version = MM_SNAP_VERSION + 1);
		TRY(-EPROTO, h->version = 0);
		TRY(-EPROTO, h->byte_order = __builtin_bswap32(MM_SNAP_BYTE_ORDER));
		TRY(-EPROTO, h->layout ^= 1);
		TRY(-EPROTO, h->hdr_size += 8);
		TRY(-EBADMSG, h->size -= 8);
		TRY(-EBADMSG, h->checksum ^= 1ull << 40);
#undef TRY
	}
	/* A table file of the format before the cscf kinds (version 1),
	 * sealed right: refused, so no reader answers without the kinds. */
	{
		struct mm_snap_table_hdr *h = copy8(x.tf, x.tl, 0);
		struct mm_snap_table t1;

		ck_assert_int_eq(MM_SNAP_VERSION, 3);
		h->version = 1;
		reseal_table(h, x.tl);
		ck_assert_int_eq(mm_snap_table_load(h, x.tl, &t1, &err), -EPROTO);
		ck_assert_str_eq(err.field, "version");
		free(h);
	}
	/* Files of the format before the tunnel addresses (version 2),
	 * sealed right: refused, so no reader answers "unprotected" where
	 * the daemon names the missing address. */
	{
		struct mm_snap_table_hdr *h = copy8(x.tf, x.tl, 0);
		struct mm_snap_state_hdr *s = copy8(x.sf, x.sl, 0);
		struct mm_snap_table t1;
		struct mm_snap_state s1;

		h->version = 2;
		reseal_table(h, x.tl);
		ck_assert_int_eq(mm_snap_table_load(h, x.tl, &t1, &err), -EPROTO);
		ck_assert_str_eq(err.field, "version");
		s->version = 2;
		reseal_state(s, x.sl);
		ck_assert_int_eq(mm_snap_state_load(s, x.sl, &x.t, &s1, &err), -EPROTO);
		ck_assert_str_eq(err.field, "version");
		free(h);
		free(s);
	}
	/* A table file passed as a state file and the other way round. */
	ck_assert_int_eq(load_s(x.tf, x.tl, &x.t), -EBADMSG);
	ck_assert_int_eq(load_t(x.sf, x.sl), -EBADMSG);

	/* A state for another table: -ESTALE, whatever else it says. */
	ck_assert_int_eq(mm_snap_table_build(x.tb, &no_cscf, 0, false, 0x3334, &tf2, &tl2), 0);
	a = copy8(tf2, tl2, 0);
	ck_assert_int_eq(mm_snap_table_load(a, tl2, &t2, &err), 0);
	ck_assert_int_eq(mm_snap_state_build(&t2, 1, 1, 1, 1, NULL, 0, 0, &sf2, &sl2), 0);
	ck_assert_int_eq(load_s(sf2, sl2, &t2), 0);
	ck_assert_int_eq(load_s(sf2, sl2, &x.t), -ESTALE);
	ck_assert_int_eq(load_s(x.sf, x.sl, &t2), -ESTALE);
	free(tf2);
	free(sf2);
	free(a);
	small_free(&x);
}
END_TEST

START_TEST(test_unaligned)
{
	struct small x;
	unsigned char *c;

	small_new(&x, 0x4444);
	for (int off = 1; off < 8; off++) {
		c = malloc(x.tl + 16);
		ck_assert_ptr_nonnull(c);
		unsigned char *u = c + (8 - (uintptr_t)c % 8) % 8 + off;

		memcpy(u, x.tf, x.tl);
		ck_assert_int_lt(load_t(u, x.tl), 0);
		free(c);
		c = malloc(x.sl + 16);
		ck_assert_ptr_nonnull(c);
		u = c + (8 - (uintptr_t)c % 8) % 8 + off;
		memcpy(u, x.sf, x.sl);
		ck_assert_int_lt(load_s(u, x.sl, &x.t), 0);
		free(c);
	}
	small_free(&x);
}
END_TEST

/* ---- structure, with the checksum made right ---- */

struct tview {
	unsigned char *b;
	struct mm_snap_table_hdr *h;
	struct mm_snap_partner *p;
	struct mm_prefix *r, *c;
	uint32_t *k;                  /* the cscf prefixes' kinds */
	struct mm_snap_v4 *v4;
	struct mm_snap_v6 *v6;
};

static struct tview tv(const struct small *x)
{
	struct tview v = { .b = copy8(x->tf, x->tl, 0) };

	v.h = (void *)v.b;
	v.p = (void *)(v.b + v.h->off_partners);
	v.r = (void *)(v.b + v.h->off_ranges);
	v.c = (void *)(v.b + v.h->off_cscf);
	v.k = (void *)(v.b + v.h->off_cscf_kinds);
	v.v4 = (void *)(v.b + v.h->off_v4);
	v.v6 = (void *)(v.b + v.h->off_v6);
	return v;
}

START_TEST(test_table_structure)
{
	struct small x;
	struct tview v;
	int r;

	small_new(&x, 0x5555);
	/* The layout the cases below rely on (ranges in partner order, each
	 * partner's in order; the index sorted). */
	v = tv(&x);
	ck_assert_str_eq(v.p[0].domain, "a.example.net");
	ck_assert_uint_eq(v.p[0].n_ranges, 3);
	ck_assert_uint_eq(v.p[1].range_first, 3);
	ck_assert_uint_eq(v.p[2].range_first, 5);
	ck_assert_int_eq(v.r[0].len, 16);
	ck_assert_int_eq(v.r[2].addr.family, AF_INET6);
	ck_assert_uint_eq(v.v4[0].partner, 0);
	ck_assert_uint_eq(v.v4[1].partner, 0);
	ck_assert_uint_eq(v.v4[2].partner, 1);
	free(v.b);

#define BAD(mutate)                                                                   \
	do {                                                                          \
		v = tv(&x);                                                           \
		mutate;                                                               \
		reseal_table(v.b, x.tl);                                              \
		r = load_t(v.b, x.tl);                                                \
		ck_assert_msg(r == -EBADMSG, "accepted (%d): %s", r, #mutate);        \
		free(v.b);                                                            \
	} while (0)
	/* the control: resealing alone changes nothing */
	v = tv(&x);
	reseal_table(v.b, x.tl);
	ck_assert_int_eq(load_t(v.b, x.tl), 0);
	free(v.b);

	/* settings */
	BAD(v.h->untrusted = 2);
	BAD(v.h->require_dst = 2);
	/* the index: order, overlap, empty intervals, partner index */
	BAD(struct mm_snap_v4 t = v.v4[0]; v.v4[0] = v.v4[1]; v.v4[1] = t);
	BAD(v.v4[0].hi = v.v4[1].lo);
	BAD(v.v4[1].lo = v.v4[0].hi);
	BAD(v.v4[3].lo = v.v4[3].hi + 1);
	BAD(v.v4[0].partner = 3);
	BAD(v.v4[0].partner = UINT32_MAX);
	BAD(v.v4[0].partner = 1);
	BAD(struct mm_snap_v6 t = v.v6[0]; v.v6[0] = v.v6[1]; v.v6[1] = t);
	BAD(v.v6[0].hi[0] = v.v6[1].lo[0]; v.v6[0].hi[1] = v.v6[1].lo[1]);
	BAD(v.v6[1].lo[1] = 1);   /* starts inside its range: disagrees */
	BAD(v.v6[1].hi[0] = 0);   /* hi < lo */
	BAD(v.v6[1].partner = 7);
	/* an interval wider or narrower than its range (the index claims an
	 * address the ranges do not, or leaves one out) */
	BAD(v.v4[0].hi += 0x100);
	BAD(v.v4[0].hi -= 1);
	BAD(v.v4[0].lo += 1);
	BAD(v.r[0].len = 17);
	BAD(v.r[3].len = 17);
	BAD(v.r[2].len = 33);
	/* a range claimed twice (by one partner, or by two) */
	BAD(v.r[1] = v.r[0]);
	BAD(v.p[1].range_first = 0; v.p[1].n_ranges = 2);
	BAD(v.p[2].range_first = 4);
	/* the gateway families: only IPv4 and IPv6 */
	BAD(v.p[0].gateway_families = 4);
	BAD(v.p[1].gateway_families = 0x80);
	BAD(v.p[1].reserved[0] = 1);
	BAD(v.p[2].reserved[2] = 1);
	/* claims that do not add up */
	BAD(v.p[2].n_ranges = 0);
	BAD(v.p[2].range_first = 0; v.p[2].n_ranges = 0);
	/* the partner's ranges outside the list, and counts that wrap */
	BAD(v.p[2].range_first = 6);
	BAD(v.p[2].range_first = 7);
	BAD(v.p[2].n_ranges = 2);
	BAD(v.p[2].range_first = 1; v.p[2].n_ranges = UINT32_MAX);
	BAD(v.p[2].range_first = UINT32_MAX; v.p[2].n_ranges = 1);
	BAD(v.p[2].range_first = UINT32_MAX; v.p[2].n_ranges = 2);
	/* ranges listed out of order */
	BAD(struct mm_prefix t = v.r[0]; v.r[0] = v.r[1]; v.r[1] = t);
	/* bad prefixes: host bits, length, family, bytes past the family */
	BAD(v.r[0].addr.bytes[3] = 1);
	BAD(v.r[2].addr.bytes[15] = 1);
	BAD(v.r[0].len = 33);
	BAD(v.r[2].len = 129);
	BAD(v.r[0].addr.family = 0);
	BAD(v.r[0].addr.family = AF_UNIX);
	BAD(v.r[0].addr.bytes[4] = 1);
	BAD(v.c[0].addr.bytes[3] = 1);
	BAD(v.c[0].len = 33);
	BAD(v.c[1].len = 200);
	BAD(v.c[1].addr.family = 0);
	BAD(v.c[0].addr.bytes[15] = 1);
	/* flags */
	BAD(v.p[0].kind = MM_KIND__MAX);
	BAD(v.p[0].path = MM_PATH__MAX);
	BAD(v.p[0].agreement = 2);
	BAD(v.p[1].enabled = 2);
	BAD(v.p[1].enabled = 0xff);
	/* domains: not canonical, out of order, duplicated, no NUL, empty */
	BAD(v.p[0].domain[0] = 'A');
	BAD(strcpy(v.p[0].domain, "a.example.net."));
	BAD(strcpy(v.p[0].domain, "example"));
	BAD(strcpy(v.p[0].domain, ""));
	BAD(strcpy(v.p[0].domain, "a..example.net"));
	BAD(strcpy(v.p[0].domain, "a.example.net\n"));
	BAD(strcpy(v.p[0].domain, "z.example.net"));
	BAD(strcpy(v.p[1].domain, "a.example.net"));
	BAD(strcpy(v.p[2].domain, "b.example.net"));
	BAD(memset(v.p[1].domain, 'b', sizeof(v.p[1].domain)));
	BAD(memset(v.p[2].domain, 'c', sizeof(v.p[2].domain)));
	/* sections: outside the file, misaligned, in the header, counts
	 * that overflow, the index not holding every range */
	BAD(v.h->off_partners = x.tl + 8);
	BAD(v.h->off_partners = x.tl);
	BAD(v.h->off_partners += 4);
	BAD(v.h->off_partners = 0);
	BAD(v.h->off_partners = 8);
	BAD(v.h->off_ranges = UINT64_MAX - 7);
	BAD(v.h->off_v4 = x.tl - 8);
	BAD(v.h->off_v6 += 8 * 1024);
	BAD(v.h->off_cscf = x.tl);
	BAD(v.h->off_cscf += 1);
	BAD(v.h->n_partners = UINT32_MAX);
	BAD(v.h->n_partners = 4);
	BAD(v.h->n_partners = 2);  /* a range's partner out of range */
	BAD(v.h->n_ranges = UINT32_MAX);
	BAD(v.h->n_v4 = UINT32_MAX);
	BAD(v.h->n_v4 = UINT32_MAX; v.h->n_ranges = UINT32_MAX);
	BAD(v.h->n_v4 = 0xffffffff; v.h->n_v6 = 7; v.h->n_ranges = 6);
	BAD(v.h->n_v4 = 3);
	BAD(v.h->n_v4 = 3; v.h->n_ranges = 5);
	BAD(v.h->n_v6 = 1; v.h->n_ranges = 5);
	BAD(v.h->n_cscf = UINT32_MAX);
	BAD(v.h->n_cscf = 100);
	BAD(v.h->n_cscf = MM_SNAP_CSCF_MAX + 1);
	/* the kinds each cscf prefix faces: none, unknown, prefixes of
	 * different kinds overlapping, the section outside the file */
	BAD(v.k[0] = 0);
	BAD(v.k[1] = 1u << MM_KIND__MAX);
	BAD(v.k[1] = ~0u);
	BAD(v.c[1] = v.c[0]);
	BAD(v.c[1] = v.c[0]; v.c[1].len = 28; v.c[1].addr.bytes[3] = 0x10);
	BAD(v.h->off_cscf_kinds = x.tl);
	BAD(v.h->off_cscf_kinds += 4);
	BAD(v.h->off_cscf_kinds = 0);
#undef BAD
	small_free(&x);
}
END_TEST

struct sview {
	unsigned char *b;
	struct mm_snap_state_hdr *h;
	struct mm_snap_tunnel *u;
};

static struct sview sv(const struct small *x)
{
	struct sview v = { .b = copy8(x->sf, x->sl, 0) };

	v.h = (void *)v.b;
	v.u = (void *)(v.b + v.h->off_up);
	return v;
}

START_TEST(test_state_structure)
{
	struct small x;
	struct sview v;
	int r;

	small_new(&x, 0x6666);
	v = sv(&x);
	ck_assert_uint_eq(v.h->n_up, 2);
	ck_assert_uint_eq(v.u[0].partner, 0);
	ck_assert_uint_eq(v.u[1].partner, 2);
	reseal_state(v.b, x.sl);
	ck_assert_int_eq(load_s(v.b, x.sl, &x.t), 0);
	/* the live words are not part of the checksum */
	v.h->state = MM_SNAP_SUPERSEDED;
	v.h->heartbeat_ms = 77;
	ck_assert_int_eq(load_s(v.b, x.sl, &x.t), 0);
	free(v.b);

#define BAD(mutate)                                                                   \
	do {                                                                          \
		v = sv(&x);                                                           \
		mutate;                                                               \
		reseal_state(v.b, x.sl);                                              \
		r = load_s(v.b, x.sl, &x.t);                                          \
		ck_assert_msg(r == -EBADMSG, "accepted (%d): %s", r, #mutate);        \
		free(v.b);                                                            \
	} while (0)
	BAD(struct mm_snap_tunnel t = v.u[0]; v.u[0] = v.u[1]; v.u[1] = t);
	BAD(v.u[1].partner = 0);
	BAD(v.u[0].partner = 2);
	BAD(v.u[1].partner = 3);
	BAD(v.u[1].partner = UINT32_MAX);
	BAD(v.u[0].in_enforced = 2);
	BAD(v.u[1].out_enforced = 0x80);
	BAD(v.u[0].remote_id[0] = 1);
	BAD(v.u[0].remote_id[3] = '"');
	BAD(v.u[0].remote_id[3] = '\\');
	BAD(v.u[0].remote_id[3] = (char)0xc3);
	BAD(v.u[0].remote_id[3] = '\n');
	BAD(memset(v.u[1].remote_id, 'x', sizeof(v.u[1].remote_id)));
	BAD(v.h->off_up = x.sl + 8);
	BAD(v.h->off_up = x.sl);
	BAD(v.h->off_up += 4);
	BAD(v.h->off_up = 0);
	BAD(v.h->off_up = UINT64_MAX - 7);
	BAD(v.h->n_up = 3);
	BAD(v.h->n_up = UINT32_MAX);
	/* the tunnel address bits: only known ones, a family only when known */
	BAD(v.h->tunnel_addrs = MM_TUNNEL_ADDRS_ALL + 1);
	BAD(v.h->tunnel_addrs = 1u << 31);
	BAD(v.h->tunnel_addrs = MM_FAMILY_V4);
	BAD(v.h->tunnel_addrs = MM_FAMILIES);
	BAD(v.h->reserved = 1);
#undef BAD
	/* every valid value loads, as written */
	for (unsigned bits = 0; bits <= MM_TUNNEL_ADDRS_ALL; bits++) {
		struct mm_snap_state s;
		struct mm_err err = { 0 };

		v = sv(&x);
		v.h->tunnel_addrs = bits;
		reseal_state(v.b, x.sl);
		r = mm_snap_state_load(v.b, x.sl, &x.t, &s, &err);
		if (bits == 0 || (bits & MM_TUNNEL_ADDRS_KNOWN)) {
			ck_assert_int_eq(r, 0);
			ck_assert_uint_eq(s.tunnel_addrs, bits);
		} else {
			ck_assert_int_eq(r, -EBADMSG);
		}
		free(v.b);
	}
	/* and the builder writes no other */
	{
		void *buf;
		size_t len;

		ck_assert_int_eq(mm_snap_state_build(&x.t, 1, 1, 1, 1, NULL, 0, MM_FAMILY_V6, &buf,
						     &len),
				 -EINVAL);
		ck_assert_int_eq(mm_snap_state_build(&x.t, 1, 1, 1, 1, NULL, 0, 8, &buf, &len),
				 -EINVAL);
	}
	small_free(&x);
}
END_TEST

/* Hand cases the random model makes rare: a state with no tunnel, an
 * empty table, answers whose inputs are refused. */
START_TEST(test_empty)
{
	struct mm_table *tb = NULL;
	struct mm_err err = { 0 };
	struct mm_snap_table t;
	struct mm_snap_state s;
	struct mm_snap_answer ans;
	struct mm_addr a = mm_test_addr("10.1.2.3"), b = mm_test_addr("2a00::1");
	void *tf, *sf, *ta, *sa;
	size_t tl, sl;

	ck_assert_int_eq(mm_table_build(NULL, 0, 1, 10, 1, &tb, &err), 0);
	ck_assert_int_eq(mm_snap_table_build(tb, &no_cscf, 0, true, 9, &tf, &tl), 0);
	ta = copy8(tf, tl, 0);
	ck_assert_int_eq(mm_snap_table_load(ta, tl, &t, &err), 0);
	ck_assert_int_eq(mm_snap_state_build(&t, 1, 1, 1, 1, NULL, 0, 0, &sf, &sl), 0);
	sa = copy8(sf, sl, 0);
	ck_assert_int_eq(mm_snap_state_load(sa, sl, &t, &s, &err), 0);
	ck_assert_ptr_null(mm_snap_lookup(&t, &a));
	ck_assert_ptr_null(mm_snap_find(&t, "a.example.net"));
	ck_assert_int_eq(mm_snap_inbound(&t, &s, &a, NULL, 0, &ans), -EAGAIN);  /* require_dst */
	ck_assert_int_eq(mm_snap_inbound(&t, &s, &a, &b, 0, &ans), -EAGAIN);    /* families */
	ck_assert_int_eq(mm_snap_inbound(&t, &s, &a, &a, 0, &ans), 0);
	ck_assert_str_eq(ans.dec.reason, "unknown-source");
	ck_assert_int_eq(ans.dec.pai, MM_PAI_STRIP);
	free(tf);
	free(sf);
	free(ta);
	free(sa);
	mm_table_free(tb);
}
END_TEST

/* The first level of protection through the snapshot: our CSCF
 * addresses split by kind.  A partner's message at the other kind's
 * address strips with dst-other-kind (the answer is there, but the
 * library must ask the daemon, which counts it: -EAGAIN); at a shared or
 * its own kind's address the answers are as before; outbound, a next hop
 * covered only by the other kind's prefixes is not covered. */
START_TEST(test_kinds)
{
	struct mm_partner *p[3] = {
		mm_test_partner("ims.example.net", 1, "10.1.0.0/16 2a00:1::/32", ""),
		mm_test_partner("seg.example.net", 2, "10.3.0.0/16", ""),
		mm_test_partner("web.example.net", 3, "10.2.0.0/16 2a00:2::/32", ""),
	};
	struct mm_prefix cscf[4] = { mm_test_prefix("10.9.0.0/24"), mm_test_prefix("10.9.1.0/24"),
				     mm_test_prefix("10.9.2.0/24"), mm_test_prefix("2a00:9::/64") };
	unsigned kinds[4] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS), MM_KIND_BIT(MM_KIND_NON_IMS),
			      MM_KIND_BIT(MM_KIND_NON_IMS) };
	struct mm_snap_tunnel_in up[2] = {
		{ .domain = "ims.example.net", .reqid = 1, .spi_in = 0xc1, .spi_out = 0xc2,
		  .in_enforced = true, .out_enforced = true, .remote_id = "ims.example.net" },
		{ .domain = "web.example.net", .reqid = 3, .spi_in = 0xc3, .spi_out = 0xc4,
		  .in_enforced = true, .out_enforced = true, .remote_id = "web.example.net" },
	};
	static const struct {
		const char *src, *dst;
		uint32_t spi;
		int r;
		const char *reason;
		bool keep, protected_;
	} in[] = {
		/* the must-nevers: SA up, enforced, agreement, right SPI */
		{ "10.1.0.5", "10.9.2.5", 0xc1, -EAGAIN, "dst-other-kind", false, false },
		{ "10.1.0.5", "10.9.2.5", 0, -EAGAIN, "dst-other-kind", false, false },
		{ "10.2.0.5", "10.9.1.5", 0xc3, -EAGAIN, "dst-other-kind", false, false },
		{ "10.3.0.5", "10.9.1.5", 0, -EAGAIN, "dst-other-kind", false, false },
		/* own kind's and shared addresses: as before */
		{ "10.1.0.5", "10.9.1.5", 0xc1, 0, "protected", true, true },
		{ "10.1.0.5", "10.9.0.5", 0xc1, 0, "protected", true, true },
		{ "10.2.0.5", "10.9.2.5", 0, 0, "protected", true, true },
		{ "10.2.0.5", "10.9.0.9", 0xc3, 0, "protected", true, true },
		{ "10.3.0.5", "10.9.2.5", 0, 0, "seg-trusted", true, false },
		{ "10.3.0.5", "10.9.0.5", 0, 0, "seg-trusted", true, false },
		{ "10.3.0.5", "10.8.0.1", 0, 0, "seg-trusted", true, false },
		{ "10.1.0.5", "10.8.0.1", 0xc1, 0, "dst-not-cscf", false, false },
		/* IPv6: our only IPv6 prefix faces non-IMS peers */
		{ "2a00:1::5", "2a00:9::1", 0xc1, -EAGAIN, "dst-other-kind", false, false },
		{ "2a00:2::5", "2a00:9::1", 0xc3, 0, "protected", true, true },
		/* not a partner: no kind to compare */
		{ "10.7.0.1", "10.9.1.5", 0, 0, "unknown-source", false, false },
	};
	static const struct {
		const char *domain, *hop;
		const char *reason;
	} out[] = {
		{ NULL, "10.1.0.5", "protected" },
		{ NULL, "2a00:1::5", "not-enforced" },       /* only non-IMS IPv6 prefixes */
		{ "ims.example.net", NULL, "not-enforced" }, /* its IPv6 range is not covered */
		{ NULL, "2a00:2::5", "protected" },
		{ "web.example.net", NULL, "protected" },
	};
	struct mm_table *tb = NULL;
	struct mm_err err = { 0 };
	struct mm_snap_table t;
	struct mm_snap_state s;
	void *tf, *sf, *ta, *sa;
	size_t tl, sl;

	p[0]->agreement = p[1]->agreement = p[2]->agreement = true;
	p[1]->path = MM_PATH_SEG;
	p[1]->kind = p[2]->kind = MM_KIND_NON_IMS;
	ck_assert_int_eq(mm_table_build(p, 3, 1, 100, 4, &tb, &err), 0);
	ck_assert_int_eq(mm_snap_table_build(tb,
					     &(struct mm_cscf_set){ .prefix = cscf, .kinds = kinds,
								    .n = 4 },
					     0, false, 5, &tf, &tl),
			 0);
	ta = copy8(tf, tl, 0);
	ck_assert_int_eq(mm_snap_table_load(ta, tl, &t, &err), 0);
	ck_assert_int_eq(mm_snap_state_build(&t, 1, 1, 1, 1, up, 2, 0, &sf, &sl), 0);
	sa = copy8(sf, sl, 0);
	ck_assert_int_eq(mm_snap_state_load(sa, sl, &t, &s, &err), 0);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct mm_addr a = mm_test_addr(in[i].src), d = mm_test_addr(in[i].dst);
		struct mm_snap_answer ans;

		ck_assert_int_eq(mm_snap_inbound(&t, &s, &a, &d, in[i].spi, &ans), in[i].r);
		ck_assert_msg(!strcmp(ans.dec.reason, in[i].reason), "%s -> %s: %s, want %s",
			      in[i].src, in[i].dst, ans.dec.reason, in[i].reason);
		ck_assert_int_eq(ans.dec.pai == MM_PAI_KEEP, in[i].keep);
		ck_assert_int_eq(ans.dec.protected_, in[i].protected_);
		ck_assert_int_eq(ans.dec.trusted, in[i].keep);
	}
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		struct mm_addr a = out[i].hop ? mm_test_addr(out[i].hop) : (struct mm_addr){ 0 };
		struct mm_snap_answer ans;

		ck_assert_int_eq(mm_snap_outbound(&t, &s, out[i].domain, out[i].hop ? &a : NULL,
						  true, &ans), 0);
		ck_assert_msg(!strcmp(ans.dec.reason, out[i].reason), "outbound %s: %s, want %s",
			      out[i].hop ? out[i].hop : out[i].domain, ans.dec.reason,
			      out[i].reason);
		ck_assert_int_eq(ans.dec.pai == MM_PAI_KEEP, !strcmp(out[i].reason, "protected"));
	}
	free(tf);
	free(sf);
	free(ta);
	free(sa);
	mm_table_free(tb);
	mm_test_partners_free(p, 3);
}
END_TEST

static Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("format");
	TCase *rc = tcase_create("random");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_build_refuses);
	tcase_add_test(tc, test_bit_flips);
	tcase_add_test(tc, test_truncate_extend);
	tcase_add_test(tc, test_header_errors);
	tcase_add_test(tc, test_unaligned);
	tcase_add_test(tc, test_table_structure);
	tcase_add_test(tc, test_state_structure);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_kinds);
	suite_add_tcase(s, tc);
	tcase_set_timeout(rc, 300);
	tcase_add_test(rc, test_random_model);
	suite_add_tcase(s, rc);
	return s;
}

int main(void)
{
	const char *env = getenv("MM_SNAPSHOT_SEED");

	seed = env && *env ? strtoull(env, NULL, 0)
			   : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
	rng_state = seed;
	printf("test_snapshot: seed %" PRIu64 " (MM_SNAPSHOT_SEED=%" PRIu64 " reproduces)\n",
	       seed, seed);
	fflush(stdout);
	return mm_test_run(snapshot_suite());
}
