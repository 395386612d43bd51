/* RFC 3325 privacy decisions: keep or strip P-Asserted-Identity.
 *
 * Pure functions of facts the daemon already holds (the partner, whether
 * an authenticated SA of that partner is up, where the message arrived).
 * docs/privacy.md has the table these implement; tests/unit/test_privacy.c
 * checks every row. */
#ifndef MM_PRIVACY_H
#define MM_PRIVACY_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "partner.h"

enum mm_pai { MM_PAI_STRIP, MM_PAI_KEEP };

/* How an untrusted next hop is treated: ALWAYS strips PAI (what IMS
 * networks do, the default); PRIVACY_ID strips it only when the message
 * asks for privacy with "Privacy: id" (the RFC 3325 minimum). */
enum mm_untrusted_mode { MM_UNTRUSTED_STRIP_ALWAYS, MM_UNTRUSTED_STRIP_PRIVACY_ID };

/* Our CSCF prefixes ([local] cscf, cscf_ims, cscf_non_ims), each with
 * the kinds of peer it faces (MM_KIND_BIT()s; the configuration keeps
 * prefixes of different sets from overlapping).  Borrowed. */
struct mm_cscf_set {
	const struct mm_prefix *prefix;
	const unsigned *kinds;    /* kinds[i]: the peers prefix[i] faces */
	size_t n;
};

/* The seed's first level of protection (IMS traffic told apart from
 * non-IMS traffic), decided here and nowhere else: whether our CSCF
 * prefix facing `kinds` serves partner p.  A partner's policies
 * (daemon/spd_desired.c), its charon connection's local traffic
 * selectors (daemon/ike.c) and the answers' dst cover (below) ask this. */
bool mm_cscf_faces(unsigned kinds, const struct mm_partner *p);
/* The prefixes of s that face p, in s's order, copied to ret (room for
 * s->n entries); returns how many. */
size_t mm_cscf_facing(const struct mm_cscf_set *s, const struct mm_partner *p,
		      struct mm_prefix *ret);

/* Where an inbound message arrived, measured against the in-policy of a
 * tunnel partner (daemon/spd.h "What is programmed": src in a partner
 * range, dst in one of our [local] cscf prefixes of the same family that
 * faces the partner's kind).  The kernel drops a partner's cleartext only
 * towards those prefixes, so only a message that arrived there can have
 * come over the partner's SA.  The zero value is "not given": facts
 * nobody filled in never protect. */
enum mm_dst_cover {
	MM_DST_NOT_GIVEN = 0,  /* the CSCF did not say */
	MM_DST_IN_CSCF,        /* the (src, dst) pair is one the in-policy covers */
	MM_DST_OUTSIDE_CSCF,   /* any other local address: cleartext is delivered there */
	/* dst is in one of our CSCF prefixes, one that faces the other
	 * kind of peer only (an IMS partner at the non-IMS address, or the
	 * reverse): strip, whoever the partner is (docs/privacy.md). */
	MM_DST_OTHER_KIND,
};

/* The rule above for partner p (NULL: no partner, kinds not asked): dst
 * (NULL: not given) inside one of local's prefixes whose family is src's
 * and that faces p; else inside a prefix that does not face p; else
 * outside.  The same pairing as the SPD's. */
enum mm_dst_cover mm_dst_cover(const struct mm_cscf_set *local, const struct mm_partner *p,
			       const struct mm_addr *src, const struct mm_addr *dst);
/* Whether we program out policies for where the message goes: our out
 * policies pair a cscf prefix facing the partner's kind with a partner
 * range of the same family, so a next hop (dst given) is covered only
 * when such a prefix of its family exists, and a next hop named by domain
 * only when every range of the partner has one (else part of the partner
 * gets no out policy at all and a message to it leaves in clear text).
 * Prefixes of the other kind cover nothing. */
bool mm_out_cover(const struct mm_cscf_set *local, const struct mm_partner *p,
		  const struct mm_addr *dst);

/* Our [local] tunnel addresses as a view knows them (daemon/host.c):
 * MM_TUNNEL_ADDRS_KNOWN when the host is watched, with a family's bit
 * when a [local] tunnel address of that family (any address of it when
 * [local] tunnel is empty) is present and usable on this host.  0: not
 * known, and the answers are what they are without the fact. */
#define MM_FAMILY_V4 (1u << 0)
#define MM_FAMILY_V6 (1u << 1)
#define MM_FAMILIES (MM_FAMILY_V4 | MM_FAMILY_V6)
#define MM_TUNNEL_ADDRS_KNOWN (1u << 2)
#define MM_TUNNEL_ADDRS_ALL (MM_TUNNEL_ADDRS_KNOWN | MM_FAMILIES)
/* The MM_FAMILY_ bit of family (AF_INET, AF_INET6; 0 for any other). */
unsigned mm_family_bit(int family);
/* The families of p's gateways (MM_FAMILY_ bits). */
unsigned mm_partner_gateway_families(const struct mm_partner *p);

/* Whether we hold a usable tunnel address for a partner.  The zero value
 * is "not known": it changes no answer.  MISSING never protects either:
 * it only names why a tunnel partner without an SA is stripped. */
enum mm_tunnel_addr {
	MM_TUNNEL_ADDR_UNKNOWN = 0,
	MM_TUNNEL_ADDR_USABLE,   /* one of its gateways' families has one */
	MM_TUNNEL_ADDR_MISSING,  /* none of them has */
};
/* From a view's MM_TUNNEL_ADDRS_ bits and the partner's gateway families. */
enum mm_tunnel_addr mm_tunnel_addr_of(unsigned tunnel_addrs, unsigned gateway_families);

/* The reason of a tunnel partner's strip when it has no SA up and we hold
 * no usable tunnel address of its gateways' families. */
#define MM_REASON_TUNNEL_ADDRESS_MISSING "tunnel-address-missing"

struct mm_inbound_facts {
	const struct mm_partner *partner;  /* NULL: the source is in no partner's range */
	bool sa_up;          /* an installed CHILD_SA under the partner's reqid ... */
	bool sa_identity_ok; /* ... whose authenticated remote id is the partner's domain */
	bool spi_given;      /* the CSCF named the SPI the message came on */
	bool spi_matches;    /* that SPI is the partner's SA's inbound SPI */
	enum mm_dst_cover dst;
	/* The kernel drops the partner's cleartext: every in and fwd policy
	 * we want for it is in the kernel, ours, exactly as wanted, and no
	 * other policy sits on its selectors (the daemon core asks the SPD
	 * engine).  False whenever the SPD is off, not reachable, cannot
	 * program the partner, or one of those policies is missing or drifted;
	 * the zero value, so facts nobody filled in never protect. */
	bool enforced;
	enum mm_tunnel_addr tunnel_addr;
};

struct mm_outbound_facts {
	const struct mm_partner *partner;  /* NULL: not a partner */
	bool sa_up;
	bool sa_identity_ok;
	bool privacy_id;     /* the message carries Privacy: id */
	enum mm_untrusted_mode mode;
	/* The kernel sends our CSCFs' messages to the partner's ranges only
	 * through its SA: every out policy we want for it is in the kernel,
	 * ours, exactly as wanted.  Else a message we forward may leave in
	 * clear text, and a trusted tunnel partner's PAI with it.  Not asked
	 * for seg partners (the security gateway protects them); the zero
	 * value, so facts nobody filled in never keep a tunnel partner's PAI. */
	bool enforced;
	enum mm_tunnel_addr tunnel_addr;
};

struct mm_decision {
	enum mm_pai pai;
	bool protected_;     /* inbound: over an authenticated SA of the partner, i.e. the
			      * SA is up and the message is one the in-policy forces
			      * through it (dst in cscf, the SPI, when given, the SA's)
			      * and the kernel enforces that in-policy right now */
	bool trusted;        /* the peer is inside our trust domain */
	const char *reason;  /* static string, see docs/privacy.md */
};

/* The reason of MM_DST_OTHER_KIND's strip (the daemon counts these). */
#define MM_REASON_DST_OTHER_KIND "dst-other-kind"

/* What a view (the daemon's query thread, libmmtrust's snapshot) knows
 * of a partner's tunnel while it is up: the SA's inbound SPI and whether
 * the kernel enforces the partner's in and out policies right now. */
struct mm_sa_view {
	uint32_t spi_in;
	bool in_enforced;
	bool out_enforced;
};

/* The one way facts are assembled from a view, whoever holds it: the
 * partner holding src (NULL: none), its tunnel (NULL: none up), src, dst
 * (NULL: not given) against the cscf prefixes, spi (0: not given), and
 * ta, mm_tunnel_addr_of() the view's tunnel addresses and the partner's
 * gateway families.  Both answer paths call these, so they cannot
 * disagree on a fact. */
void mm_inbound_assemble(const struct mm_partner *p, const struct mm_sa_view *sa,
			 const struct mm_cscf_set *cscf, const struct mm_addr *src,
			 const struct mm_addr *dst, uint32_t spi, enum mm_tunnel_addr ta,
			 struct mm_inbound_facts *ret);
/* next_hop: the address asked about (NULL: the partner was named by
 * domain). */
void mm_outbound_assemble(const struct mm_partner *p, const struct mm_sa_view *sa,
			  const struct mm_cscf_set *cscf, const struct mm_addr *next_hop,
			  bool privacy_id, enum mm_untrusted_mode mode, enum mm_tunnel_addr ta,
			  struct mm_outbound_facts *ret);

void mm_decide_inbound(const struct mm_inbound_facts *f, struct mm_decision *ret);
void mm_decide_outbound(const struct mm_outbound_facts *f, struct mm_decision *ret);
const char *mm_pai_name(enum mm_pai pai);

#endif
