/* The snapshot format: build, check, answer.  snapshot.h says what the
 * files hold and why; docs/architecture.md why two files. */
#include "snapshot.h"
#include "jsonfmt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN8(x) (((x) + 7) & ~(uint64_t)7)

static const char table_magic[8] = { 'M', 'M', 'T', 'S', 'N', 'A', 'P', 'T' };
static const char state_magic[8] = { 'M', 'M', 'T', 'S', 'N', 'A', 'P', 'S' };

uint32_t mm_snap_layout(void)
{
	const size_t sizes[] = {
		sizeof(struct mm_snap_table_hdr), sizeof(struct mm_snap_partner),
		sizeof(struct mm_snap_v4),        sizeof(struct mm_snap_v6),
		sizeof(struct mm_snap_state_hdr), sizeof(struct mm_snap_tunnel),
		sizeof(struct mm_prefix),         offsetof(struct mm_prefix, len),
	};
	uint32_t h = 17;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		h = h * 1000003u + (uint32_t)sizes[i];
	return h;
}

static uint64_t mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

static uint64_t hash_bytes(uint64_t h, const unsigned char *p, size_t len)
{
	uint64_t w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = mix(h, w);
	}
	w = 0;
	memcpy(&w, p, len);
	return mix(h, w ^ ((uint64_t)len << 56));
}

uint64_t mm_snap_checksum(const void *buf, size_t len, size_t hdr_size, const size_t *zero,
			  size_t n_zero)
{
	unsigned char hdr[256];
	uint64_t h = 0x6d6d74727573746eull;

	if (hdr_size > sizeof(hdr) || hdr_size > len)
		return 0;
	memcpy(hdr, buf, hdr_size);
	for (size_t i = 0; i < n_zero; i++)
		memset(hdr + zero[i], 0, 8);
	h = hash_bytes(h, hdr, hdr_size);
	h = hash_bytes(h, (const unsigned char *)buf + hdr_size, len - hdr_size);
	return mix(h, len);
}

/* The live words of each header, zeroed for the checksum.  Each is 8
 * bytes wide there (state is followed by heartbeat_interval_ms, which the
 * daemon never changes, so state is zeroed together with it: the writer
 * does the same). */
static const size_t table_zero[] = { offsetof(struct mm_snap_table_hdr, checksum) };
static const size_t state_zero[] = {
	offsetof(struct mm_snap_state_hdr, checksum),
	offsetof(struct mm_snap_state_hdr, state),
	offsetof(struct mm_snap_state_hdr, heartbeat_ms),
};

/* ---- addresses as intervals ---- */

static uint32_t v4_of(const struct mm_addr *a)
{
	return (uint32_t)a->bytes[0] << 24 | (uint32_t)a->bytes[1] << 16 |
	       (uint32_t)a->bytes[2] << 8 | a->bytes[3];
}

static void v6_of(const struct mm_addr *a, uint64_t ret[2])
{
	ret[0] = ret[1] = 0;
	for (int i = 0; i < 8; i++) {
		ret[0] = ret[0] << 8 | a->bytes[i];
		ret[1] = ret[1] << 8 | a->bytes[8 + i];
	}
}

static uint64_t host_mask64(int bits)  /* bits: host bits in this word, 0..64 */
{
	return bits <= 0 ? 0 : bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

static void prefix_v4(const struct mm_prefix *p, uint32_t *lo, uint32_t *hi)
{
	uint32_t m = (uint32_t)host_mask64(32 - p->len);

	*lo = v4_of(&p->addr) & ~m;
	*hi = *lo | m;
}

static void prefix_v6(const struct mm_prefix *p, uint64_t lo[2], uint64_t hi[2])
{
	uint64_t m0 = host_mask64(64 - p->len), m1 = host_mask64(128 - p->len);

	v6_of(&p->addr, lo);
	lo[0] &= ~m0;
	lo[1] &= ~m1;
	hi[0] = lo[0] | m0;
	hi[1] = lo[1] | m1;
}

static int cmp128(const uint64_t a[2], const uint64_t b[2])
{
	if (a[0] != b[0])
		return a[0] < b[0] ? -1 : 1;
	return a[1] < b[1] ? -1 : a[1] > b[1];
}

static bool prefix_ok(const struct mm_prefix *p)
{
	if (p->addr.family == AF_INET) {
		uint32_t lo, hi;

		if (p->len > 32)
			return false;
		for (int i = 4; i < 16; i++)
			if (p->addr.bytes[i])
				return false;
		prefix_v4(p, &lo, &hi);
		return lo == v4_of(&p->addr);
	}
	if (p->addr.family == AF_INET6) {
		uint64_t lo[2], hi[2], a[2];

		if (p->len > 128)
			return false;
		prefix_v6(p, lo, hi);
		v6_of(&p->addr, a);
		return cmp128(lo, a) == 0;
	}
	return false;
}

/* ---- lookups ---- */

/* The 16 bits of k after its first `shift` bits (shift <= 112). */
static unsigned v6_bucket(const uint64_t k[2], unsigned shift)
{
	unsigned __int128 v = (unsigned __int128)k[0] << 64 | k[1];

	return (unsigned)(v << shift >> 112) & 0xffff;
}

const struct mm_snap_partner *mm_snap_lookup(const struct mm_snap_table *t,
					     const struct mm_addr *a)
{
	size_t lo = 0, hi;

	if (a->family == AF_INET) {
		uint32_t k = v4_of(a);

		/* the last interval starting at or before k: among those of k's
		 * /16 when indexed, else the one before them */
		hi = t->n_v4;
		if (t->v4_start) {
			lo = t->v4_start[k >> 16];
			hi = t->v4_start[(k >> 16) + 1];
			if (lo == hi || t->v4[lo].lo > k) {
				if (lo == 0 || t->v4[lo - 1].hi < k)
					return NULL;
				return &t->partners[t->v4[lo - 1].partner];
			}
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (t->v4[mid].lo <= k)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0 || t->v4[lo - 1].hi < k)
			return NULL;
		return &t->partners[t->v4[lo - 1].partner];
	}
	if (a->family == AF_INET6) {
		uint64_t k[2];

		v6_of(a, k);
		hi = t->n_v6;
		if (t->v6_start) {
			unsigned b;

			if (!t->n_v6 || cmp128(k, t->v6[0].lo) < 0 ||
			    cmp128(k, t->v6[t->n_v6 - 1].hi) > 0)
				return NULL;
			b = v6_bucket(k, t->v6_shift);
			lo = t->v6_start[b];
			hi = t->v6_start[b + 1];
			if (lo == hi || cmp128(t->v6[lo].lo, k) > 0) {
				if (lo == 0 || cmp128(t->v6[lo - 1].hi, k) < 0)
					return NULL;
				return &t->partners[t->v6[lo - 1].partner];
			}
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (cmp128(t->v6[mid].lo, k) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0 || cmp128(t->v6[lo - 1].hi, k) < 0)
			return NULL;
		return &t->partners[t->v6[lo - 1].partner];
	}
	return NULL;
}

const struct mm_snap_partner *mm_snap_find(const struct mm_snap_table *t, const char *domain)
{
	size_t lo = 0, hi = t->n_partners;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->partners[mid].domain, domain);

		if (!c)
			return &t->partners[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct mm_snap_tunnel *mm_snap_tunnel_of(const struct mm_snap_table *t,
					       const struct mm_snap_state *s,
					       const struct mm_snap_partner *p)
{
	uint32_t idx = (uint32_t)(p - t->partners);
	size_t lo = 0, hi = s->n_up;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->up[mid].partner == idx)
			return &s->up[mid];
		if (s->up[mid].partner < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- checking ---- */

/* Whether the index holds rg (a valid prefix) as one interval, exactly,
 * under partner p. */
static bool index_exact(const struct mm_snap_table *t, const struct mm_prefix *rg,
			const struct mm_snap_partner *p)
{
	if (mm_snap_lookup(t, &rg->addr) != p)
		return false;
	if (rg->addr.family == AF_INET) {
		uint32_t lo, hi;
		size_t a = 0, b = t->n_v4;

		prefix_v4(rg, &lo, &hi);
		while (a < b) {  /* the interval starting at lo */
			size_t mid = a + (b - a) / 2;

			if (t->v4[mid].lo < lo)
				a = mid + 1;
			else
				b = mid;
		}
		return a < t->n_v4 && t->v4[a].lo == lo && t->v4[a].hi == hi;
	} else {
		uint64_t lo[2], hi[2];
		size_t a = 0, b = t->n_v6;

		prefix_v6(rg, lo, hi);
		while (a < b) {
			size_t mid = a + (b - a) / 2;

			if (cmp128(t->v6[mid].lo, lo) < 0)
				a = mid + 1;
			else
				b = mid;
		}
		return a < t->n_v6 && cmp128(t->v6[a].lo, lo) == 0 &&
		       cmp128(t->v6[a].hi, hi) == 0;
	}
}

_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "cscf kinds are stored as uint32_t");

/* Each cscf prefix faces a known, non-empty set of kinds, and prefixes of
 * different sets never overlap (daemon/config.c refuses it: which peers
 * an address is for must not depend on which prefix is met first). */
static bool cscf_kinds_ok(const struct mm_cscf_set *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (!c->kinds[i] || (c->kinds[i] & ~MM_KINDS_ALL))
			return false;
		for (size_t k = 0; k < i; k++)
			if (c->kinds[k] != c->kinds[i] &&
			    mm_prefix_overlaps(&c->prefix[k], &c->prefix[i]))
				return false;
	}
	return true;
}

static int bad(struct mm_err *err, const char *field, const char *msg)
{
	return mm_err_set(err, MM_ERR_INVALID, field, "%s", msg) < 0 ? -EBADMSG : -EBADMSG;
}

/* A section of n records of size rec at off, inside [hdr, len). */
static bool section_ok(uint64_t off, uint64_t n, size_t rec, size_t hdr, size_t len)
{
	return off % 8 == 0 && off >= hdr && off <= len && n <= (len - off) / rec;
}

static int header_common(const void *buf, size_t len, const char magic[8], size_t hdr_size,
			 struct mm_err *err)
{
	/* Same leading fields in both headers. */
	const struct mm_snap_table_hdr *h = buf;

	if ((uintptr_t)buf % 8)
		return mm_err_set(err, MM_ERR_INVALID, "snapshot", "buffer not aligned"), -EINVAL;
	if (len < hdr_size || memcmp(h->magic, magic, 8))
		return bad(err, "magic", "not a snapshot file of this kind");
	if (h->byte_order != MM_SNAP_BYTE_ORDER || h->version != MM_SNAP_VERSION ||
	    h->hdr_size != hdr_size || h->layout != mm_snap_layout()) {
		mm_err_set(err, MM_ERR_INVALID, "version",
			   "written by another release or byte order (version %u)", h->version);
		return -EPROTO;
	}
	if (h->size != len)
		return bad(err, "size", "the file's size is not the size its header gives");
	return 0;
}

int mm_snap_table_load(const void *buf, size_t len, struct mm_snap_table *ret,
		       struct mm_err *err)
{
	const struct mm_snap_table_hdr *h = buf;
	const size_t hs = sizeof(*h);
	struct mm_snap_table t = { 0 };
	int r = header_common(buf, len, table_magic, hs, err);

	if (r < 0)
		return r;
	if (h->checksum != mm_snap_checksum(buf, len, hs, table_zero, 1))
		return bad(err, "checksum", "the table file's checksum does not match");
	if (h->untrusted > MM_UNTRUSTED_STRIP_PRIVACY_ID || h->require_dst > 1)
		return bad(err, "settings", "untrusted or require_dst out of range");
	if (!section_ok(h->off_partners, h->n_partners, sizeof(*t.partners), hs, len) ||
	    !section_ok(h->off_ranges, h->n_ranges, sizeof(*t.ranges), hs, len) ||
	    !section_ok(h->off_v4, h->n_v4, sizeof(*t.v4), hs, len) ||
	    !section_ok(h->off_v6, h->n_v6, sizeof(*t.v6), hs, len) ||
	    !section_ok(h->off_cscf, h->n_cscf, sizeof(*t.cscf), hs, len) ||
	    !section_ok(h->off_cscf_kinds, h->n_cscf, sizeof(*t.cscf_kinds), hs, len))
		return bad(err, "sections", "a section lies outside the file");
	if (h->n_cscf > MM_SNAP_CSCF_MAX)
		return bad(err, "cscf", "more cscf prefixes than mmtrustd ever writes");
	if ((uint64_t)h->n_v4 + h->n_v6 != h->n_ranges)
		return bad(err, "ranges", "the index does not hold every range once");
	t.h = h;
	t.partners = (const void *)((const char *)buf + h->off_partners);
	t.ranges = (const void *)((const char *)buf + h->off_ranges);
	t.v4 = (const void *)((const char *)buf + h->off_v4);
	t.v6 = (const void *)((const char *)buf + h->off_v6);
	t.cscf = (const void *)((const char *)buf + h->off_cscf);
	t.cscf_kinds = (const void *)((const char *)buf + h->off_cscf_kinds);
	t.n_partners = h->n_partners;
	t.n_ranges = h->n_ranges;
	t.n_v4 = h->n_v4;
	t.n_v6 = h->n_v6;
	t.n_cscf = h->n_cscf;
	t.cscf_set = (struct mm_cscf_set){ .prefix = t.cscf, .kinds = t.cscf_kinds, .n = t.n_cscf };
	t.table_id = h->table_id;
	t.untrusted = h->untrusted;
	t.require_dst = h->require_dst;

	for (size_t i = 0; i < t.n_ranges; i++)
		if (!prefix_ok(&t.ranges[i]))
			return bad(err, "ranges", "a range is not a valid prefix");
	for (size_t i = 0; i < t.n_cscf; i++)
		if (!prefix_ok(&t.cscf[i]))
			return bad(err, "cscf", "a cscf prefix is not a valid prefix");
	if (!cscf_kinds_ok(&t.cscf_set))
		return bad(err, "cscf", "a cscf prefix faces no known kind of peer, or overlaps "
			   "one facing other kinds");
	for (size_t i = 0; i < t.n_v4; i++) {
		const struct mm_snap_v4 *v = &t.v4[i];

		if (v->lo > v->hi || v->partner >= t.n_partners || (i && t.v4[i - 1].hi >= v->lo))
			return bad(err, "v4", "the IPv4 index is not sorted, disjoint and in range");
	}
	for (size_t i = 0; i < t.n_v6; i++) {
		const struct mm_snap_v6 *v = &t.v6[i];

		if (cmp128(v->lo, v->hi) > 0 || v->partner >= t.n_partners ||
		    (i && cmp128(t.v6[i - 1].hi, v->lo) >= 0))
			return bad(err, "v6", "the IPv6 index is not sorted, disjoint and in range");
	}
	for (size_t i = 0; i < t.n_partners; i++) {
		const struct mm_snap_partner *p = &t.partners[i];
		char canon[MM_DOMAIN_MAX + 1];

		if (!memchr(p->domain, 0, sizeof(p->domain)) ||
		    mm_domain_canon(p->domain, canon, "domain", NULL) < 0 ||
		    strcmp(canon, p->domain) || (i && strcmp(t.partners[i - 1].domain, p->domain) >= 0))
			return bad(err, "partners", "a domain is not canonical, or not in order");
		if (p->kind >= MM_KIND__MAX || p->path >= MM_PATH__MAX || p->agreement > 1 ||
		    p->enabled > 1 || (p->gateway_families & ~MM_FAMILIES) || p->reserved[0] ||
		    p->reserved[1] || p->reserved[2])
			return bad(err, "partners", "a partner's kind, path or flags are out of range");
		if (p->range_first > t.n_ranges || p->n_ranges > t.n_ranges - p->range_first)
			return bad(err, "partners", "a partner's ranges lie outside the range list");
		/* The index says of each of the partner's addresses that it is the
		 * partner's: every range is an interval of the index, exactly (same
		 * first and last address), under this partner.  A partner's ranges
		 * are in strictly increasing order, so no two of them are the same
		 * interval; with the counts equal (below) and the intervals
		 * disjoint, the index holds the ranges and nothing else.  (Finding
		 * only a range's first and last address let an index with a hole
		 * inside a range, or an extra interval, through.) */
		for (size_t k = 0; k < p->n_ranges; k++) {
			const struct mm_prefix *rg = &t.ranges[p->range_first + k];

			if (k && mm_prefix_cmp(rg - 1, rg) >= 0)
				return bad(err, "ranges", "a partner's ranges are not in order");
			if (!index_exact(&t, rg, p))
				return bad(err, "ranges", "the index does not agree with the ranges");
		}
	}
	{
		/* ... and no range is claimed by two partners: the claims add up. */
		uint64_t claimed = 0;

		for (size_t i = 0; i < t.n_partners; i++)
			claimed += t.partners[i].n_ranges;
		if (claimed != t.n_ranges)
			return bad(err, "ranges", "the partners' ranges do not add up to the index");
	}
	*ret = t;
	return 0;
}

int mm_snap_table_index(struct mm_snap_table *t)
{
	uint32_t *s = malloc((65536 + 1) * sizeof(*s)), *s6 = malloc((65536 + 1) * sizeof(*s6));
	unsigned shift = 0;
	size_t i = 0;

	if (!s || !s6) {
		free(s);
		free(s6);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < 65536; k++) {
		while (i < t->n_v4 && (t->v4[i].lo >> 16) < k)
			i++;
		s[k] = (uint32_t)i;
	}
	s[65536] = (uint32_t)t->n_v4;
	/* IPv6: the bits every address from the first interval's start to
	 * the last one's end shares, then the next 16. */
	if (t->n_v6) {
		unsigned __int128 a = (unsigned __int128)t->v6[0].lo[0] << 64 | t->v6[0].lo[1];
		unsigned __int128 b = (unsigned __int128)t->v6[t->n_v6 - 1].hi[0] << 64 |
				      t->v6[t->n_v6 - 1].hi[1];

		while (shift < 112 && !((a ^ b) >> (127 - shift) & 1))
			shift++;
	}
	i = 0;
	for (uint32_t k = 0; k < 65536; k++) {
		while (i < t->n_v6 && v6_bucket(t->v6[i].lo, shift) < k)
			i++;
		s6[k] = (uint32_t)i;
	}
	s6[65536] = (uint32_t)t->n_v6;
	t->v4_start = s;
	t->v6_start = s6;
	t->v6_shift = shift;
	return 0;
}

/* Only the known bits, and a family's only with KNOWN. */
static bool tunnel_addrs_ok(uint32_t bits)
{
	return !(bits & ~MM_TUNNEL_ADDRS_ALL) &&
	       (!(bits & MM_FAMILIES) || (bits & MM_TUNNEL_ADDRS_KNOWN));
}

int mm_snap_state_load(const void *buf, size_t len, const struct mm_snap_table *t,
		       struct mm_snap_state *ret, struct mm_err *err)
{
	const struct mm_snap_state_hdr *h = buf;
	const size_t hs = sizeof(*h);
	struct mm_snap_state s = { 0 };
	int r = header_common(buf, len, state_magic, hs, err);

	if (r < 0)
		return r;
	if (h->checksum != mm_snap_checksum(buf, len, hs, state_zero, 3))
		return bad(err, "checksum", "the state file's checksum does not match");
	if (h->table_id != t->table_id) {
		mm_err_set(err, MM_ERR_INVALID, "table_id", "the state goes with another table file");
		return -ESTALE;
	}
	if (!section_ok(h->off_up, h->n_up, sizeof(*s.up), hs, len))
		return bad(err, "sections", "the tunnel section lies outside the file");
	if (!tunnel_addrs_ok(h->tunnel_addrs) || h->reserved)
		return bad(err, "tunnel_addrs", "the tunnel address bits are malformed");
	s.h = h;
	s.up = (const void *)((const char *)buf + h->off_up);
	s.n_up = h->n_up;
	s.generation = h->generation;
	s.table_id = h->table_id;
	s.tunnel_addrs = h->tunnel_addrs;
	for (size_t i = 0; i < s.n_up; i++) {
		const struct mm_snap_tunnel *u = &s.up[i];

		if (u->partner >= t->n_partners || (i && s.up[i - 1].partner >= u->partner))
			return bad(err, "tunnels", "a tunnel's partner is out of range or out of order");
		if (u->in_enforced > 1 || u->out_enforced > 1 ||
		    !memchr(u->remote_id, 0, sizeof(u->remote_id)) ||
		    mm_plain_text(u->remote_id) != u->remote_id)
			return bad(err, "tunnels", "a tunnel's flags or identity are malformed");
	}
	*ret = s;
	return 0;
}

/* ---- building ---- */

static int cmp_v4(const void *a, const void *b)
{
	const struct mm_snap_v4 *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_v6(const void *a, const void *b)
{
	const struct mm_snap_v6 *x = a, *y = b;

	return cmp128(x->lo, y->lo);
}

static int cmp_prefix(const void *a, const void *b)
{
	return mm_prefix_cmp(a, b);
}

int mm_snap_table_build(const struct mm_table *tb, const struct mm_cscf_set *cscf_set,
			enum mm_untrusted_mode untrusted, bool require_dst, uint64_t table_id,
			void **ret, size_t *ret_len)
{
	const struct mm_prefix *cscf = cscf_set->prefix;
	size_t n_cscf = cscf_set->n;
	struct mm_snap_table_hdr h = { .version = MM_SNAP_VERSION };
	size_t n_ranges = 0, n_v4 = 0, n_v6 = 0, len;
	struct mm_snap_partner *pp;
	struct mm_prefix *rp;
	struct mm_snap_v4 *v4;
	struct mm_snap_v6 *v6;
	uint32_t *kinds;
	char *buf;

	if (n_cscf > MM_SNAP_CSCF_MAX || !cscf_kinds_ok(cscf_set))
		return -EINVAL;
	for (size_t i = 0; i < tb->n; i++) {
		const struct mm_partner *p = tb->partners[i];

		if (i && strcmp(tb->partners[i - 1]->domain, p->domain) >= 0)
			return -EINVAL;
		for (size_t k = 0; k < p->n_ranges; k++) {
			if (p->ranges[k].addr.family == AF_INET)
				n_v4++;
			else
				n_v6++;
		}
		n_ranges += p->n_ranges;
	}
	memcpy(h.magic, table_magic, 8);
	h.byte_order = MM_SNAP_BYTE_ORDER;
	h.hdr_size = sizeof(h);
	h.layout = mm_snap_layout();
	h.table_id = table_id;
	h.untrusted = untrusted;
	h.require_dst = require_dst;
	h.n_partners = tb->n;
	h.n_ranges = n_ranges;
	h.n_v4 = n_v4;
	h.n_v6 = n_v6;
	h.n_cscf = n_cscf;
	h.off_partners = ALIGN8(sizeof(h));
	h.off_ranges = ALIGN8(h.off_partners + tb->n * sizeof(*pp));
	h.off_v4 = ALIGN8(h.off_ranges + n_ranges * sizeof(*rp));
	h.off_v6 = ALIGN8(h.off_v4 + n_v4 * sizeof(*v4));
	h.off_cscf = ALIGN8(h.off_v6 + n_v6 * sizeof(*v6));
	h.off_cscf_kinds = ALIGN8(h.off_cscf + n_cscf * sizeof(struct mm_prefix));
	len = ALIGN8(h.off_cscf_kinds + n_cscf * sizeof(*kinds));
	h.size = len;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	pp = (void *)(buf + h.off_partners);
	rp = (void *)(buf + h.off_ranges);
	v4 = (void *)(buf + h.off_v4);
	v6 = (void *)(buf + h.off_v6);
	n_ranges = n_v4 = n_v6 = 0;
	for (size_t i = 0; i < tb->n; i++) {
		const struct mm_partner *p = tb->partners[i];

		snprintf(pp[i].domain, sizeof(pp[i].domain), "%s", p->domain);
		pp[i].reqid = p->reqid;
		pp[i].range_first = n_ranges;
		pp[i].n_ranges = p->n_ranges;
		pp[i].kind = p->kind;
		pp[i].agreement = p->agreement;
		pp[i].path = p->path;
		pp[i].enabled = p->enabled;
		pp[i].gateway_families = (uint8_t)mm_partner_gateway_families(p);
		for (size_t k = 0; k < p->n_ranges; k++) {
			const struct mm_prefix *rg = &p->ranges[k];

			rp[n_ranges] = (struct mm_prefix){ .addr = { .family = rg->addr.family },
							   .len = rg->len };
			memcpy(rp[n_ranges].addr.bytes, rg->addr.bytes,
			       rg->addr.family == AF_INET ? 4 : 16);
			n_ranges++;
			if (rg->addr.family == AF_INET) {
				prefix_v4(rg, &v4[n_v4].lo, &v4[n_v4].hi);
				v4[n_v4++].partner = i;
			} else {
				prefix_v6(rg, v6[n_v6].lo, v6[n_v6].hi);
				v6[n_v6++].partner = i;
			}
		}
	}
	/* Each partner's ranges in order (the loader requires it; the table
	 * keeps them so already, mm_partner's ranges_set). */
	for (size_t i = 0; i < tb->n; i++)
		qsort(rp + pp[i].range_first, pp[i].n_ranges, sizeof(*rp), cmp_prefix);
	qsort(v4, n_v4, sizeof(*v4), cmp_v4);
	qsort(v6, n_v6, sizeof(*v6), cmp_v6);
	for (size_t i = 1; i < n_v4; i++)
		if (v4[i - 1].hi >= v4[i].lo)
			goto overlap;
	for (size_t i = 1; i < n_v6; i++)
		if (cmp128(v6[i - 1].hi, v6[i].lo) >= 0)
			goto overlap;
	for (size_t i = 0; i < n_cscf; i++) {
		struct mm_prefix *c = (void *)(buf + h.off_cscf + i * sizeof(*c));

		*c = (struct mm_prefix){ .addr = { .family = cscf[i].addr.family },
					 .len = cscf[i].len };
		memcpy(c->addr.bytes, cscf[i].addr.bytes, cscf[i].addr.family == AF_INET ? 4 : 16);
	}
	kinds = (void *)(buf + h.off_cscf_kinds);
	for (size_t i = 0; i < n_cscf; i++)
		kinds[i] = cscf_set->kinds[i];
	memcpy(buf, &h, sizeof(h));
	h.checksum = mm_snap_checksum(buf, len, sizeof(h), table_zero, 1);
	memcpy(buf, &h, sizeof(h));
	*ret = buf;
	*ret_len = len;
	return 0;
overlap:
	free(buf);
	return -EINVAL;
}

static int cmp_tunnel(const void *a, const void *b)
{
	const struct mm_snap_tunnel *x = a, *y = b;

	return x->partner < y->partner ? -1 : x->partner > y->partner;
}

int mm_snap_state_build(const struct mm_snap_table *t, uint64_t generation, uint32_t pid,
			uint32_t heartbeat_interval_ms, uint64_t heartbeat_ms,
			const struct mm_snap_tunnel_in *up, size_t n_up, unsigned tunnel_addrs,
			void **ret, size_t *ret_len)
{
	struct mm_snap_state_hdr h = { .version = MM_SNAP_VERSION };
	struct mm_snap_tunnel *tp;
	size_t len, n = 0;
	char *buf;

	memcpy(h.magic, state_magic, 8);
	h.byte_order = MM_SNAP_BYTE_ORDER;
	h.hdr_size = sizeof(h);
	h.layout = mm_snap_layout();
	h.generation = generation;
	h.table_id = t->table_id;
	h.pid = pid;
	h.heartbeat_interval_ms = heartbeat_interval_ms;
	if (!tunnel_addrs_ok(tunnel_addrs))
		return -EINVAL;
	h.tunnel_addrs = tunnel_addrs;
	h.off_up = ALIGN8(sizeof(h));
	len = ALIGN8(h.off_up + n_up * sizeof(*tp));
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	tp = (void *)(buf + h.off_up);
	for (size_t i = 0; i < n_up; i++) {
		const struct mm_snap_partner *p = mm_snap_find(t, up[i].domain);

		if (!p)
			continue;
		tp[n] = (struct mm_snap_tunnel){
			.partner = (uint32_t)(p - t->partners),
			.reqid = up[i].reqid,
			.spi_in = up[i].spi_in,
			.spi_out = up[i].spi_out,
			.in_enforced = up[i].in_enforced,
			.out_enforced = up[i].out_enforced,
			.since = up[i].since,
		};
		snprintf(tp[n].remote_id, sizeof(tp[n].remote_id), "%s",
			 mm_plain_text(up[i].remote_id ? up[i].remote_id : ""));
		n++;
	}
	qsort(tp, n, sizeof(*tp), cmp_tunnel);
	for (size_t i = 1; i < n; i++)
		if (tp[i - 1].partner == tp[i].partner) {
			free(buf);
			return -EINVAL;
		}
	h.n_up = n;
	len = ALIGN8(h.off_up + n * sizeof(*tp));
	h.size = len;
	memcpy(buf, &h, sizeof(h));
	h.checksum = mm_snap_checksum(buf, len, sizeof(h), state_zero, 3);
	h.heartbeat_ms = heartbeat_ms;
	memcpy(buf, &h, sizeof(h));
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- answers ---- */

/* The partner record as the decision code reads it (policy/privacy.c):
 * its flags and its ranges, which point into the checked table. */
static void as_partner(const struct mm_snap_table *t, const struct mm_snap_partner *sp,
		       struct mm_partner *p)
{
	/* Only what the decision reads is set; nothing else of it is read. */
	p->refs = 0;
	p->kind = sp->kind;
	p->agreement = sp->agreement;
	p->ranges = (struct mm_prefix *)&t->ranges[sp->range_first];
	p->n_ranges = sp->n_ranges;
	p->gateways = NULL;
	p->n_gateways = 0;
	p->n_cas = 0;
	p->crls = NULL;
	p->n_crls = 0;
	p->path = sp->path;
	p->enabled = sp->enabled;
	p->reqid = sp->reqid;
	p->domain[0] = '\0';
}

/* Whether we hold a usable tunnel address for sp (policy/privacy.h). */
static enum mm_tunnel_addr tunnel_addr(const struct mm_snap_state *s,
				       const struct mm_snap_partner *sp)
{
	return sp ? mm_tunnel_addr_of(s->tunnel_addrs, sp->gateway_families)
		  : MM_TUNNEL_ADDR_UNKNOWN;
}

int mm_snap_inbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		    const struct mm_addr *src, const struct mm_addr *dst, uint32_t spi,
		    struct mm_snap_answer *ret)
{
	const struct mm_snap_partner *sp;
	const struct mm_snap_tunnel *tu = NULL;
	struct mm_inbound_facts f;
	struct mm_partner p;
	struct mm_sa_view sa;

	if ((!dst && t->require_dst) || (dst && dst->family != src->family))
		return -EAGAIN;
	sp = mm_snap_lookup(t, src);
	if (sp) {
		as_partner(t, sp, &p);
		tu = mm_snap_tunnel_of(t, s, sp);
		if (tu)
			sa = (struct mm_sa_view){ .spi_in = tu->spi_in,
						  .in_enforced = tu->in_enforced,
						  .out_enforced = tu->out_enforced };
	}
	mm_inbound_assemble(sp ? &p : NULL, tu ? &sa : NULL, &t->cscf_set, src, dst, spi,
			    tunnel_addr(s, sp), &f);
	mm_decide_inbound(&f, &ret->dec);
	ret->partner = sp;
	ret->tunnel = tu;
	/* mmtrustd counts these (status): the daemon answers them. */
	return strcmp(ret->dec.reason, MM_REASON_DST_OTHER_KIND) ? 0 : -EAGAIN;
}

int mm_snap_outbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		     const char *domain, const struct mm_addr *next_hop, bool privacy_id,
		     struct mm_snap_answer *ret)
{
	const struct mm_snap_partner *sp;
	const struct mm_snap_tunnel *tu = NULL;
	struct mm_outbound_facts f;
	struct mm_partner p;
	struct mm_sa_view sa;

	if (!domain == !next_hop)
		return -EAGAIN;
	sp = domain ? mm_snap_find(t, domain) : mm_snap_lookup(t, next_hop);
	if (sp) {
		as_partner(t, sp, &p);
		tu = mm_snap_tunnel_of(t, s, sp);
		if (tu)
			sa = (struct mm_sa_view){ .spi_in = tu->spi_in,
						  .in_enforced = tu->in_enforced,
						  .out_enforced = tu->out_enforced };
	}
	mm_outbound_assemble(sp ? &p : NULL, tu ? &sa : NULL, &t->cscf_set, next_hop,
			     privacy_id, t->untrusted, tunnel_addr(s, sp), &f);
	mm_decide_outbound(&f, &ret->dec);
	ret->partner = sp;
	ret->tunnel = tu;
	return 0;
}
