/* Addresses and CIDR prefixes, IPv4 and IPv6, in network byte order.
 *
 * Every address and prefix that comes from outside (admin requests, CSCF
 * queries, the configuration, the store) goes through mm_addr_parse or
 * mm_prefix_parse, so that an address has one meaning whatever its
 * spelling (docs/admin-protocol.md, "Addresses"):
 * - IPv4-mapped IPv6 (::ffff:a.b.c.d, how a dual-stack socket reports an
 *   IPv4 sender) is the IPv4 address: family AF_INET.  A prefix inside
 *   ::ffff:0:0/96 (length >= 96) is the IPv4 prefix of length - 96.  So a
 *   parsed value never holds a mapped address, and mm_addr_cmp, overlaps
 *   and lookups need no second spelling.
 * - Addresses the kernel reports (netlink) are kept as the kernel has
 *   them: an XFRM object of family AF_INET6 is an IPv6 object even with a
 *   mapped address, and matches no IPv4 packet.
 * - Parsers are strict: a prefix's host bits must be zero ("10.0.0.1/24" is
 *   refused, not masked) because a silently widened or narrowed partner
 *   range is exactly the kind of mistake an operator must see; the length
 *   is decimal digits without a leading zero ("/024" is refused). */
#ifndef MM_ADDR_H
#define MM_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

/* Large enough for any address or prefix in text form, with the NUL. */
#define MM_ADDR_STRLEN 52

struct mm_addr {
	uint8_t family;     /* AF_INET or AF_INET6 */
	uint8_t bytes[16];  /* IPv4 uses the first 4 bytes */
};

struct mm_prefix {
	struct mm_addr addr;  /* network address, host bits zero */
	uint8_t len;          /* 0..32 or 0..128 */
};

static inline unsigned mm_addr_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* Parse a literal address (inet_pton forms; IPv4-mapped becomes IPv4).
 * Returns 0, or -EINVAL (filling err for field). */
int mm_addr_parse(const char *s, struct mm_addr *ret, const char *field,
		  struct mm_err *err);
/* Parse "addr/len"; a bare address means a host prefix (/32, /128).  A
 * prefix inside ::ffff:0:0/96 becomes IPv4; one that strictly contains it
 * (e.g. ::/64) stays IPv6: mm_prefix_special() names it. */
int mm_prefix_parse(const char *s, struct mm_prefix *ret, const char *field,
		    struct mm_err *err);

/* A special-purpose block (RFC 6890) that holds no peer's address. */
struct mm_special {
	struct mm_prefix prefix;
	const char *text;  /* the block as RFCs write it ("::ffff:0:0/96") */
	const char *name;  /* adjective: "loopback", "multicast", ... */
	const char *why;   /* why no partner address is in it */
};
/* The first special-purpose block p overlaps (inside, equal or around),
 * or NULL.  The IPv4-mapped block is listed first, then unspecified,
 * loopback, IPv4-compatible, link-local, multicast and broadcast. */
const struct mm_special *mm_prefix_special(const struct mm_prefix *p);
/* mm_prefix_special of the host prefix (/32, /128) of a. */
const struct mm_special *mm_addr_special(const struct mm_addr *a);

/* Canonical text (inet_ntop form; prefixes always carry "/len"). */
const char *mm_addr_str(const struct mm_addr *a, char buf[MM_ADDR_STRLEN]);
const char *mm_prefix_str(const struct mm_prefix *p, char buf[MM_ADDR_STRLEN]);

int mm_addr_cmp(const struct mm_addr *a, const struct mm_addr *b);
int mm_prefix_cmp(const struct mm_prefix *a, const struct mm_prefix *b);
/* True when the two prefixes share at least one address. */
bool mm_prefix_overlaps(const struct mm_prefix *a, const struct mm_prefix *b);
bool mm_prefix_contains(const struct mm_prefix *p, const struct mm_addr *a);
/* The last address of the prefix (all host bits set). */
void mm_prefix_last(const struct mm_prefix *p, struct mm_addr *ret);

#endif
