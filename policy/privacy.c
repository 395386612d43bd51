#include "privacy.h"

#include <sys/socket.h>

const char *mm_pai_name(enum mm_pai pai)
{
	return pai == MM_PAI_KEEP ? "keep" : "strip";
}

/* Shared by both directions: is this partner inside our trust domain right
 * now, and why (not).  Sets protected_ and trusted, returns the reason. */
static const char *trust(const struct mm_partner *p, bool sa_up, bool identity_ok,
			 enum mm_tunnel_addr ta, struct mm_decision *d)
{
	d->protected_ = false;
	d->trusted = false;
	if (!p->enabled)
		return "partner-disabled";
	if (p->path == MM_PATH_TUNNEL)
		d->protected_ = sa_up && identity_ok;
	if (!p->agreement)
		return "no-agreement";
	if (p->path == MM_PATH_SEG) {
		/* Reached through the operator's security gateway (NDS/IP):
		 * connectivity already equals trust, as in Rel-5. */
		d->trusted = true;
		return "seg-trusted";
	}
	/* No SA, and none can come up while no tunnel address of the
	 * partner's gateways' families is on this host: say so. */
	if (!sa_up)
		return ta == MM_TUNNEL_ADDR_MISSING ? MM_REASON_TUNNEL_ADDRESS_MISSING
						    : "unprotected";
	if (!identity_ok)
		return "identity-mismatch";
	d->trusted = true;
	return "protected";
}

unsigned mm_family_bit(int family)
{
	return family == AF_INET ? MM_FAMILY_V4 : family == AF_INET6 ? MM_FAMILY_V6 : 0;
}

unsigned mm_partner_gateway_families(const struct mm_partner *p)
{
	unsigned f = 0;

	for (size_t i = 0; i < p->n_gateways; i++)
		f |= mm_family_bit(p->gateways[i].family);
	return f;
}

enum mm_tunnel_addr mm_tunnel_addr_of(unsigned tunnel_addrs, unsigned gateway_families)
{
	if (!(tunnel_addrs & MM_TUNNEL_ADDRS_KNOWN))
		return MM_TUNNEL_ADDR_UNKNOWN;
	return tunnel_addrs & gateway_families & MM_FAMILIES ? MM_TUNNEL_ADDR_USABLE
							     : MM_TUNNEL_ADDR_MISSING;
}

bool mm_cscf_faces(unsigned kinds, const struct mm_partner *p)
{
	return p->kind < MM_KIND__MAX && mm_kinds_has(kinds, p->kind);
}

size_t mm_cscf_facing(const struct mm_cscf_set *s, const struct mm_partner *p,
		      struct mm_prefix *ret)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		if (mm_cscf_faces(s->kinds[i], p))
			ret[n++] = s->prefix[i];
	return n;
}

enum mm_dst_cover mm_dst_cover(const struct mm_cscf_set *local, const struct mm_partner *p,
			       const struct mm_addr *src, const struct mm_addr *dst)
{
	bool other_kind = false;

	if (!dst)
		return MM_DST_NOT_GIVEN;
	for (size_t i = 0; i < local->n; i++) {
		if (!mm_prefix_contains(&local->prefix[i], dst))
			continue;
		if (p && !mm_cscf_faces(local->kinds[i], p))
			other_kind = true;
		else if (local->prefix[i].addr.family == src->family)
			return MM_DST_IN_CSCF;
	}
	return other_kind ? MM_DST_OTHER_KIND : MM_DST_OUTSIDE_CSCF;
}

static bool family_covered(const struct mm_cscf_set *local, const struct mm_partner *p,
			   int family)
{
	for (size_t i = 0; i < local->n; i++)
		if (local->prefix[i].addr.family == family && mm_cscf_faces(local->kinds[i], p))
			return true;
	return false;
}

bool mm_out_cover(const struct mm_cscf_set *local, const struct mm_partner *p,
		  const struct mm_addr *dst)
{
	if (dst)
		return family_covered(local, p, dst->family);
	for (size_t i = 0; i < p->n_ranges; i++)
		if (!family_covered(local, p, p->ranges[i].addr.family))
			return false;
	return p->n_ranges > 0;
}

/* Why a message from a tunnel partner whose SA is up may still not have
 * come over it (NULL: it did).  seg partners never get here: the
 * operator's security gateway, not our in-policy, protects them. */
static const char *not_over_sa(const struct mm_inbound_facts *f)
{
	if (f->dst == MM_DST_NOT_GIVEN)
		return "dst-not-given";
	if (f->dst != MM_DST_IN_CSCF)
		return "dst-not-cscf";
	/* A named SPI that is not the partner's SA: the message did not come
	 * over the SA we vouch for, whatever the source address says. */
	if (f->spi_given && !f->spi_matches)
		return "spi-mismatch";
	/* Our in-policies are not (all) in the kernel: it delivers the
	 * partner's cleartext, so an up SA proves nothing about this message. */
	if (!f->enforced)
		return "not-enforced";
	return NULL;
}

void mm_inbound_assemble(const struct mm_partner *p, const struct mm_sa_view *sa,
			 const struct mm_cscf_set *cscf, const struct mm_addr *src,
			 const struct mm_addr *dst, uint32_t spi, enum mm_tunnel_addr ta,
			 struct mm_inbound_facts *ret)
{
	struct mm_inbound_facts f = { .partner = p, .spi_given = spi != 0, .tunnel_addr = ta };

	if (p && sa) {
		f.sa_up = true;
		/* Only an SA whose authenticated identity is the partner's is
		 * ever listed as its tunnel (ike.c checks it when it comes up). */
		f.sa_identity_ok = true;
		f.spi_matches = spi == sa->spi_in;
		f.enforced = sa->in_enforced;
	}
	f.dst = mm_dst_cover(cscf, p, src, dst);
	*ret = f;
}

void mm_outbound_assemble(const struct mm_partner *p, const struct mm_sa_view *sa,
			  const struct mm_cscf_set *cscf, const struct mm_addr *next_hop,
			  bool privacy_id, enum mm_untrusted_mode mode, enum mm_tunnel_addr ta,
			  struct mm_outbound_facts *ret)
{
	struct mm_outbound_facts f = { .partner = p, .privacy_id = privacy_id, .mode = mode,
				       .tunnel_addr = ta };

	if (p && sa) {
		f.sa_up = f.sa_identity_ok = true;
		f.enforced = sa->out_enforced && mm_out_cover(cscf, p, next_hop);
	}
	*ret = f;
}

void mm_decide_inbound(const struct mm_inbound_facts *f, struct mm_decision *ret)
{
	struct mm_decision d = { .pai = MM_PAI_STRIP };
	const char *why_not;

	if (!f->partner) {
		d.reason = "unknown-source";
		*ret = d;
		return;
	}
	/* The first level of protection: our address for the other kind of
	 * peer is no place for this partner's messages, whatever its path,
	 * agreement or tunnel (and its policies never cover that address). */
	if (f->dst == MM_DST_OTHER_KIND) {
		d.reason = MM_REASON_DST_OTHER_KIND;
		*ret = d;
		return;
	}
	d.reason = trust(f->partner, f->sa_up, f->sa_identity_ok, f->tunnel_addr, &d);
	if (d.protected_ && (why_not = not_over_sa(f))) {
		d.protected_ = false;
		if (d.trusted) {
			d.trusted = false;
			d.reason = why_not;
		}
	}
	d.pai = d.trusted ? MM_PAI_KEEP : MM_PAI_STRIP;
	*ret = d;
}

void mm_decide_outbound(const struct mm_outbound_facts *f, struct mm_decision *ret)
{
	struct mm_decision d = { .pai = MM_PAI_STRIP };

	d.reason = f->partner ? trust(f->partner, f->sa_up, f->sa_identity_ok, f->tunnel_addr, &d)
			      : "not-a-partner";
	if (d.trusted && f->partner->path == MM_PATH_TUNNEL && !f->enforced) {
		/* Our out policies are not (all) in the kernel: the message
		 * may leave in clear text, PAI with it. */
		d.trusted = false;
		d.reason = "not-enforced";
	}
	if (d.trusted) {
		/* Inside the trust domain: the next hop honours Privacy: id itself. */
		d.pai = MM_PAI_KEEP;
	} else if (f->mode == MM_UNTRUSTED_STRIP_PRIVACY_ID && !f->privacy_id) {
		d.pai = MM_PAI_KEEP;
		d.reason = "untrusted-no-privacy-requested";
	}
	*ret = d;
}
