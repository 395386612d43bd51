/* libFuzzer target: the snapshot reader (policy/snapshot.c), what
 * libmmtrust runs on the two files mmtrustd writes.
 *
 * Input:  byte 0      flags: bits 0-1 == 0 (a quarter of the runs): the
 *                     size and checksum of both parts are made right
 *                     before loading, so the structural checks behind
 *                     the checksum are reached; 1: the table's only;
 *                     2: the state's only; 3: as given
 *         bytes 1-4   the table part's length (little endian, clamped)
 *         bytes 5-8   the state part's length (clamped)
 *         then the table part, the state part, and the rest: queries.
 * Each part is copied into a buffer of its own exact size (8-aligned by
 * malloc; ASan sees any read past it).  When both load, every partner is
 * found by its domain and every range's edges are looked up, then each
 * 40-byte record of the rest is an inbound and an outbound question, and
 * its bytes a domain to find.
 *
 * Invariants: a refusal returns -EBADMSG / -EPROTO / -ESTALE with a
 * message; a loaded table's pointers lie inside the buffer; a lookup's
 * partner is an element of the partners array, and one of its ranges
 * holds the address, and an address inside a partner's range finds that
 * partner; a tunnel pointer is an element of the tunnel array and is the
 * tunnel of the answer's partner; a reason is one of docs/privacy.md's;
 * inbound keeps PAI only for an enabled partner with agreement, which is
 * seg, or whose tunnel is up, enforced, with dst in a cscf prefix of
 * src's family facing the partner's kind and the SPI (when given) the
 * tunnel's; outbound keeps only such a partner (tunnel up and out
 * enforced) or, in strip-if-privacy-id mode, without Privacy: id; -EAGAIN
 * exactly for the questions the snapshot does not answer, and for a
 * partner's message at a cscf prefix of the other kind (then the answer
 * says strip, dst-other-kind: the daemon answers and counts those). */
#include <errno.h>
#include <stdbool.h>

#include "policy/addr.h"
#include "policy/privacy.h"
#include "policy/snapshot.h"
#include "tests/fuzz/fuzz.h"

static const char *const reasons[] = {
	"unknown-source", "partner-disabled", "no-agreement", "seg-trusted",
	"unprotected",    "identity-mismatch", "dst-not-given", "dst-not-cscf",
	"spi-mismatch",   "not-enforced",      "protected",     "not-a-partner",
	"untrusted-no-privacy-requested", "dst-other-kind", "tunnel-address-missing",
};

static void check_reason(const char *r)
{
	FUZZ_ASSERT(r && *r, "empty reason");
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (r == reasons[i] || !strcmp(r, reasons[i]))
			return;
	FUZZ_ASSERT(0, "unknown reason %s", r);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void *part(const uint8_t *data, size_t len)
{
	void *p = malloc(len ? len : 1);

	if (!p)
		abort();
	memcpy(p, data, len);
	FUZZ_ASSERT((uintptr_t)p % 8 == 0, "malloc alignment");
	return p;
}

static void reseal(void *buf, size_t len, bool state)
{
	static const size_t tz[] = { offsetof(struct mm_snap_table_hdr, checksum) };
	static const size_t sz[] = {
		offsetof(struct mm_snap_state_hdr, checksum),
		offsetof(struct mm_snap_state_hdr, state),
		offsetof(struct mm_snap_state_hdr, heartbeat_ms),
	};

	if (state && len >= sizeof(struct mm_snap_state_hdr)) {
		struct mm_snap_state_hdr *h = buf;

		h->size = len;
		h->checksum = mm_snap_checksum(buf, len, sizeof(*h), sz, 3);
	} else if (!state && len >= sizeof(struct mm_snap_table_hdr)) {
		struct mm_snap_table_hdr *h = buf;

		h->size = len;
		h->checksum = mm_snap_checksum(buf, len, sizeof(*h), tz, 1);
	}
}

static bool in_buf(const void *p, size_t n, size_t rec, const void *buf, size_t len)
{
	const char *a = p, *b = buf;

	return n == 0 || (a >= b && (size_t)(a - b) <= len && n <= (len - (size_t)(a - b)) / rec);
}

static size_t partner_idx(const struct mm_snap_table *t, const struct mm_snap_partner *p)
{
	const char *a = (const char *)p, *b = (const char *)t->partners;

	FUZZ_ASSERT(a >= b && (size_t)(a - b) % sizeof(*p) == 0 &&
			    (size_t)(a - b) / sizeof(*p) < t->n_partners,
		    "partner pointer outside the partners array");
	return (size_t)(a - b) / sizeof(*p);
}

static void check_tunnel(const struct mm_snap_table *t, const struct mm_snap_state *s,
			 const struct mm_snap_partner *p, const struct mm_snap_tunnel *tu)
{
	const char *a = (const char *)tu, *b = (const char *)s->up;

	if (!tu)
		return;
	FUZZ_ASSERT(p, "a tunnel without a partner");
	FUZZ_ASSERT(a >= b && (size_t)(a - b) % sizeof(*tu) == 0 &&
			    (size_t)(a - b) / sizeof(*tu) < s->n_up,
		    "tunnel pointer outside the tunnel array");
	FUZZ_ASSERT(tu->partner == partner_idx(t, p), "the tunnel of another partner");
	FUZZ_ASSERT(memchr(tu->remote_id, 0, sizeof(tu->remote_id)), "remote_id unterminated");
}

/* The partner whose range holds a, by a scan of the ranges. */
static const struct mm_snap_partner *scan(const struct mm_snap_table *t,
					  const struct mm_addr *a)
{
	const struct mm_snap_partner *hit = NULL;

	for (size_t i = 0; i < t->n_partners; i++) {
		const struct mm_snap_partner *p = &t->partners[i];

		for (size_t k = 0; k < p->n_ranges; k++) {
			const struct mm_prefix *r = &t->ranges[p->range_first + k];

			if (r->addr.family == a->family && mm_prefix_contains(r, a)) {
				FUZZ_ASSERT(!hit || hit == p, "an address in two partners' ranges");
				hit = p;
			}
		}
	}
	return hit;
}

static const struct mm_snap_partner *lookup(const struct mm_snap_table *t,
					    const struct mm_addr *a)
{
	const struct mm_snap_partner *p = mm_snap_lookup(t, a);

	if (p)
		partner_idx(t, p);
	if (t->n_ranges <= 256)
		FUZZ_ASSERT(p == scan(t, a), "the index and the ranges disagree");
	return p;
}

/* dst in a cscf prefix of src's family that faces partner p's kind (the
 * in-policy's rule, written again here) */
static bool dst_in_cscf(const struct mm_snap_table *t, const struct mm_snap_partner *p,
			const struct mm_addr *src, const struct mm_addr *dst)
{
	for (size_t i = 0; dst && i < t->n_cscf; i++)
		if (t->cscf[i].addr.family == src->family && mm_prefix_contains(&t->cscf[i], dst) &&
		    (t->cscf_kinds[i] & (1u << p->kind)))
			return true;
	return false;
}

/* dst in a cscf prefix that does not face p's kind */
static bool dst_other_kind(const struct mm_snap_table *t, const struct mm_snap_partner *p,
			   const struct mm_addr *dst)
{
	for (size_t i = 0; dst && i < t->n_cscf; i++)
		if (mm_prefix_contains(&t->cscf[i], dst) && !(t->cscf_kinds[i] & (1u << p->kind)))
			return true;
	return false;
}

static void inbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		    const struct mm_addr *src, const struct mm_addr *dst, uint32_t spi)
{
	struct mm_snap_answer a;
	int r = mm_snap_inbound(t, s, src, dst, spi, &a);
	bool refused = (!dst && t->require_dst) || (dst && dst->family != src->family);

	if (!refused && r == -EAGAIN) {
		/* the other kind's address: the daemon answers (it counts) */
		FUZZ_ASSERT(a.partner && !strcmp(a.dec.reason, "dst-other-kind") &&
				    a.dec.pai == MM_PAI_STRIP && !a.dec.protected_ && !a.dec.trusted &&
				    dst_other_kind(t, a.partner, dst),
			    "inbound -EAGAIN without a refusal: %s", a.dec.reason);
		return;
	}
	FUZZ_ASSERT(r == (refused ? -EAGAIN : 0), "inbound returned %d", r);
	if (r)
		return;
	FUZZ_ASSERT(strcmp(a.dec.reason, "dst-other-kind"), "dst-other-kind answered in-process");
	FUZZ_ASSERT(!a.partner || !dst_other_kind(t, a.partner, dst),
		    "a partner's message at the other kind's address answered in-process");
	FUZZ_ASSERT(a.partner == lookup(t, src), "inbound: not the partner holding src");
	check_tunnel(t, s, a.partner, a.tunnel);
	FUZZ_ASSERT(a.tunnel == (a.partner ? mm_snap_tunnel_of(t, s, a.partner) : NULL),
		    "inbound: not the partner's tunnel");
	check_reason(a.dec.reason);
	FUZZ_ASSERT(a.dec.trusted == (a.dec.pai == MM_PAI_KEEP), "inbound: keep != trusted");
	if (a.dec.pai == MM_PAI_KEEP) {
		const struct mm_snap_partner *p = a.partner;

		FUZZ_ASSERT(p && p->enabled && p->agreement, "inbound keep: %s", a.dec.reason);
		if (p->path != MM_PATH_SEG)
			FUZZ_ASSERT(a.tunnel && a.tunnel->in_enforced && dst_in_cscf(t, p, src, dst) &&
					    (!spi || spi == a.tunnel->spi_in),
				    "inbound keep without protection");
	}
	if (a.dec.protected_)
		FUZZ_ASSERT(a.partner && a.partner->enabled && a.partner->path == MM_PATH_TUNNEL &&
				    a.tunnel && a.tunnel->in_enforced &&
				    dst_in_cscf(t, a.partner, src, dst) &&
				    (!spi || spi == a.tunnel->spi_in),
			    "inbound protected without protection");
}

static void outbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		     const char *domain, const struct mm_addr *hop, bool privacy_id)
{
	struct mm_snap_answer a;
	int r = mm_snap_outbound(t, s, domain, hop, privacy_id, &a);

	FUZZ_ASSERT(r == (!domain == !hop ? -EAGAIN : 0), "outbound returned %d", r);
	if (r)
		return;
	FUZZ_ASSERT(a.partner == (domain ? mm_snap_find(t, domain) : lookup(t, hop)),
		    "outbound: not the partner asked about");
	if (a.partner && domain)
		FUZZ_ASSERT(!strcmp(a.partner->domain, domain), "outbound: another domain");
	check_tunnel(t, s, a.partner, a.tunnel);
	check_reason(a.dec.reason);
	if (a.dec.trusted) {
		const struct mm_snap_partner *p = a.partner;

		FUZZ_ASSERT(a.dec.pai == MM_PAI_KEEP, "outbound: trusted but strip");
		FUZZ_ASSERT(p && p->enabled && p->agreement, "outbound trusted: %s", a.dec.reason);
		if (p->path != MM_PATH_SEG)
			FUZZ_ASSERT(a.tunnel && a.tunnel->out_enforced,
				    "outbound trusted without protection");
	} else if (a.dec.pai == MM_PAI_KEEP) {
		FUZZ_ASSERT(t->untrusted == MM_UNTRUSTED_STRIP_PRIVACY_ID && !privacy_id,
			    "outbound keep for an untrusted hop");
	}
}

/* One of the edges of range r of the table (first, last, one before,
 * one after), chosen by sel. */
static struct mm_addr edge(const struct mm_prefix *r, unsigned sel)
{
	struct mm_addr a = r->addr;
	int n = a.family == AF_INET ? 4 : 16;

	if (sel & 1)
		mm_prefix_last(r, &a);
	if (sel & 2) {
		int d = sel & 1 ? 1 : -1;

		for (int i = n - 1; i >= 0; i--) {
			a.bytes[i] = (uint8_t)(a.bytes[i] + d);
			if ((d > 0 && a.bytes[i]) || (d < 0 && a.bytes[i] != 0xff))
				break;
		}
	}
	return a;
}

static struct mm_addr addr_from(const uint8_t *b, bool v6)
{
	struct mm_addr a = { .family = v6 ? AF_INET6 : AF_INET };

	memcpy(a.bytes, b, v6 ? 16 : 4);
	return a;
}

static void run(const struct mm_snap_table *t, const struct mm_snap_state *s, const uint8_t *q,
		size_t n)
{
	/* Every partner by its domain, every tunnel, every range's edges. */
	for (size_t i = 0; i < t->n_partners; i++) {
		const struct mm_snap_partner *p = &t->partners[i];

		FUZZ_ASSERT(mm_snap_find(t, p->domain) == p, "a partner not found by its domain");
		check_tunnel(t, s, p, mm_snap_tunnel_of(t, s, p));
		outbound(t, s, p->domain, NULL, i & 1);
		for (size_t k = 0; k < p->n_ranges && k < 64; k++) {
			const struct mm_prefix *r = &t->ranges[p->range_first + k];

			for (unsigned e = 0; e < 4; e++) {
				struct mm_addr a = edge(r, e);
				const struct mm_snap_partner *got = lookup(t, &a);

				if (e < 2)
					FUZZ_ASSERT(got == p, "a range's edge not found under it");
				inbound(t, s, &a, e & 1 ? &a : NULL, 0);
			}
		}
	}
	for (size_t i = 0; i < s->n_up; i++)
		FUZZ_ASSERT(s->up[i].partner < t->n_partners, "a tunnel's partner out of range");

	/* The questions of the rest of the input. */
	for (; n >= 40; q += 40, n -= 40) {
		uint8_t f = q[0];
		bool v6 = f & 1;
		struct mm_addr src = addr_from(q + 1, v6), dst = addr_from(q + 17, v6 ^ !!(f & 2));
		uint32_t spi = le32(q + 33);
		char dom[300];

		if ((f & 4) && t->n_ranges)
			src = edge(&t->ranges[spi % t->n_ranges], f >> 6);
		if ((f & 8) && t->n_cscf)
			dst = edge(&t->cscf[le32(q + 36) % t->n_cscf], f >> 4);
		if ((f & 0x30) == 0x30) {
			const struct mm_snap_partner *p = lookup(t, &src);
			const struct mm_snap_tunnel *tu = p ? mm_snap_tunnel_of(t, s, p) : NULL;

			spi = tu ? tu->spi_in : 0;
		}
		inbound(t, s, &src, (f & 0x10) ? NULL : &dst, spi);
		outbound(t, s, NULL, &src, f & 0x20);
		outbound(t, s, NULL, NULL, false);
		memcpy(dom, q + 1, 39);
		dom[39] = '\0';
		outbound(t, s, dom, NULL, f & 0x40);
		outbound(t, s, dom, &src, f & 0x40);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_snap_table t;
	struct mm_snap_state s;
	struct mm_err err = { 0 };
	size_t tl, sl;
	uint8_t flags;
	void *tb, *sb;
	int r;

	if (size < 9)
		return 0;
	flags = data[0];
	tl = le32(data + 1);
	sl = le32(data + 5);
	data += 9;
	size -= 9;
	if (tl > size)
		tl = size;
	if (sl > size - tl)
		sl = size - tl;
	tb = part(data, tl);
	sb = part(data + tl, sl);
	if ((flags & 3) == 0 || (flags & 3) == 1)
		reseal(tb, tl, false);
	if ((flags & 3) == 0 || (flags & 3) == 2)
		reseal(sb, sl, true);

	r = mm_snap_table_load(tb, tl, &t, &err);
	if (r < 0) {
		FUZZ_ASSERT(r == -EBADMSG || r == -EPROTO, "table load returned %d", r);
		FUZZ_ASSERT(err.msg[0] && err.field[0], "a refusal without a message");
		goto out;
	}
	FUZZ_ASSERT(in_buf(t.partners, t.n_partners, sizeof(*t.partners), tb, tl) &&
			    in_buf(t.ranges, t.n_ranges, sizeof(*t.ranges), tb, tl) &&
			    in_buf(t.v4, t.n_v4, sizeof(*t.v4), tb, tl) &&
			    in_buf(t.v6, t.n_v6, sizeof(*t.v6), tb, tl) &&
			    in_buf(t.cscf, t.n_cscf, sizeof(*t.cscf), tb, tl),
		    "a section outside the table buffer");
	FUZZ_ASSERT(t.n_v4 + t.n_v6 == t.n_ranges, "index count");
	FUZZ_ASSERT(t.untrusted <= MM_UNTRUSTED_STRIP_PRIVACY_ID, "untrusted mode");
	for (size_t i = 0; i < t.n_partners; i++) {
		const struct mm_snap_partner *p = &t.partners[i];

		FUZZ_ASSERT(memchr(p->domain, 0, sizeof(p->domain)), "domain unterminated");
		FUZZ_ASSERT(p->range_first <= t.n_ranges &&
				    p->n_ranges <= t.n_ranges - p->range_first,
			    "a partner's ranges outside the list");
		FUZZ_ASSERT(p->kind < MM_KIND__MAX && p->path < MM_PATH__MAX && p->agreement <= 1 &&
				    p->enabled <= 1,
			    "a partner's flags");
	}
	memset(&err, 0, sizeof(err));
	r = mm_snap_state_load(sb, sl, &t, &s, &err);
	if (r < 0) {
		FUZZ_ASSERT(r == -EBADMSG || r == -EPROTO || r == -ESTALE,
			    "state load returned %d", r);
		FUZZ_ASSERT(err.msg[0] && err.field[0], "a refusal without a message");
		goto out;
	}
	FUZZ_ASSERT(in_buf(s.up, s.n_up, sizeof(*s.up), sb, sl), "tunnels outside the buffer");
	FUZZ_ASSERT(s.table_id == t.table_id, "a state of another table");
	for (size_t i = 0; i < s.n_up; i++)
		FUZZ_ASSERT(s.up[i].in_enforced <= 1 && s.up[i].out_enforced <= 1 &&
				    (!i || s.up[i - 1].partner < s.up[i].partner),
			    "a tunnel's flags or order");
	run(&t, &s, data + tl + sl, size - tl - sl);
out:
	free(tb);
	free(sb);
	return 0;
}
