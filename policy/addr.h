/* Addresses and CIDR prefixes, IPv4 and IPv6, in network byte order.
 *
 * Parsers are strict: a prefix's host bits must be zero ("10.0.0.1/24" is
 * refused, not masked) because a silently widened or narrowed partner range
 * is exactly the kind of mistake an operator must see. */
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

/* Parse a literal address.  Returns 0, or -EINVAL (filling err for field). */
int mm_addr_parse(const char *s, struct mm_addr *ret, const char *field,
		  struct mm_err *err);
/* Parse "addr/len"; a bare address means a host prefix (/32, /128). */
int mm_prefix_parse(const char *s, struct mm_prefix *ret, const char *field,
		    struct mm_err *err);

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
