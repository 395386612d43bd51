#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static const uint8_t mapped_head[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_mapped(const struct mm_addr *a)
{
	return a->family == AF_INET6 && memcmp(a->bytes, mapped_head, sizeof(mapped_head)) == 0;
}

/* ::ffff:a.b.c.d -> a.b.c.d: one meaning per address (addr.h). */
static void unmap(struct mm_addr *a)
{
	struct mm_addr v4 = { .family = AF_INET };

	memcpy(v4.bytes, a->bytes + 12, 4);
	*a = v4;
}

/* The address as written (a mapped one still IPv6). */
static int addr_pton(const char *s, struct mm_addr *ret)
{
	struct mm_addr a = { 0 };

	/* IPv6 text has a ':', IPv4 text never: one inet_pton, not two. */
	if (!strchr(s, ':') && inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (strchr(s, ':') && inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	else
		return -EINVAL;
	*ret = a;
	return 0;
}

int mm_addr_parse(const char *s, struct mm_addr *ret, const char *field,
		  struct mm_err *err)
{
	struct mm_addr a;

	if (!s || !*s)
		return mm_err_set(err, MM_ERR_INVALID, field, "empty address");
	if (addr_pton(s, &a) < 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not an IPv4 or IPv6 address", s);
	if (is_mapped(&a))
		unmap(&a);
	*ret = a;
	return 0;
}

/* The prefix length: decimal digits, no sign, space or leading zero. */
static int parse_len(const char *s, unsigned max, unsigned *ret)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 4; i++)
		v = v * 10 + (s[i] - '0');
	if (i == 0 || s[i] || v > max)
		return -EINVAL;
	if (s[0] == '0' && i > 1)
		return -ERANGE;
	*ret = v;
	return 0;
}

int mm_prefix_parse(const char *s, struct mm_prefix *ret, const char *field,
		    struct mm_err *err)
{
	char buf[MM_ADDR_STRLEN + 8];
	struct mm_prefix p = { 0 };
	const char *slash;
	unsigned len, max;
	size_t alen;
	int r;

	if (!s || !*s)
		return mm_err_set(err, MM_ERR_INVALID, field, "empty prefix");
	if (strlen(s) >= sizeof(buf))
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%.60s...' is too long for a CIDR prefix", s);
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	/* Mapping is undone once the length is known: it is checked against
	 * the family as written (::ffff:0:0/120 is an IPv6 prefix). */
	if (addr_pton(buf, &p.addr) < 0) {
		if (!slash)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s' is not a CIDR prefix (address/length)", s);
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a CIDR prefix: '%s' is not an address", s, buf);
	}
	max = mm_addr_bits(p.addr.family);
	len = max;
	r = slash ? parse_len(slash + 1, max, &len) : 0;
	if (r == -ERANGE)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a CIDR prefix: the length has a leading zero", s);
	if (r < 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a CIDR prefix: length must be 0-%u", s, max);
	p.len = len;
	if (is_mapped(&p.addr) && p.len >= 96) {
		unmap(&p.addr);
		p.len -= 96;
	}
	for (unsigned bit = p.len; bit < mm_addr_bits(p.addr.family); bit++) {
		if (p.addr.bytes[bit / 8] & (0x80 >> (bit % 8))) {
			struct mm_prefix net = p;
			char nbuf[MM_ADDR_STRLEN];

			for (unsigned b = p.len; b < mm_addr_bits(p.addr.family); b++)
				net.addr.bytes[b / 8] &= ~(0x80 >> (b % 8));
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s' has host bits set (did you mean %s?)", s,
					  mm_prefix_str(&net, nbuf));
		}
	}
	*ret = p;
	return 0;
}

/* Decimal 0..255 at p; the end. */
static char *put_octet(char *p, unsigned v)
{
	if (v >= 100)
		*p++ = '0' + v / 100;
	if (v >= 10)
		*p++ = '0' + v / 10 % 10;
	*p++ = '0' + v % 10;
	return p;
}

static char *put_v4(char *p, const uint8_t *b)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_octet(p, b[i]);
	}
	return p;
}

/* The text inet_ntop(3) writes, without its cost (it formats with
 * sprintf; answers echo addresses all the time): RFC 5952 -- lower-case
 * hex without leading zeros, the longest run of two or more zero groups
 * (the first of equal ones) as "::" -- and, as glibc does, the dotted
 * quad for the last 32 bits when the first 96 are zero (IPv4-compatible)
 * or are ::ffff (IPv4-mapped).  tests/unit/test_addr.c holds it to
 * inet_ntop for random addresses. */
static void ntop6(const uint8_t *b, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned w[8];
	int best = -1, best_len = 0, cur = -1, cur_len = 0;
	char *p = out;

	for (int i = 0; i < 8; i++)
		w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	for (int i = 0; i < 8; i++) {
		if (w[i] == 0) {
			if (cur < 0)
				cur = i, cur_len = 0;
			if (++cur_len > best_len)
				best = cur, best_len = cur_len;
		} else {
			cur = -1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i)
			*p++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
			p = put_v4(p, b + 12);
			break;
		}
		for (int s = 12, started = 0; s >= 0; s -= 4) {
			unsigned d = (w[i] >> s) & 0xf;

			if (d || started || s == 0) {
				*p++ = hex[d];
				started = 1;
			}
		}
	}
	if (best >= 0 && best + best_len == 8)
		*p++ = ':';
	*p = '\0';
}

const char *mm_addr_str(const struct mm_addr *a, char buf[MM_ADDR_STRLEN])
{
	if (a->family == AF_INET)
		*put_v4(buf, a->bytes) = '\0';
	else if (a->family == AF_INET6)
		ntop6(a->bytes, buf);
	else
		snprintf(buf, MM_ADDR_STRLEN, "?");
	return buf;
}

const char *mm_prefix_str(const struct mm_prefix *p, char buf[MM_ADDR_STRLEN])
{
	char a[MM_ADDR_STRLEN];

	snprintf(buf, MM_ADDR_STRLEN, "%s/%u", mm_addr_str(&p->addr, a), p->len);
	return buf;
}

int mm_addr_cmp(const struct mm_addr *a, const struct mm_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->bytes, b->bytes, addr_len(a->family));
}

int mm_prefix_cmp(const struct mm_prefix *a, const struct mm_prefix *b)
{
	int c = mm_addr_cmp(&a->addr, &b->addr);

	if (c)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

void mm_prefix_last(const struct mm_prefix *p, struct mm_addr *ret)
{
	*ret = p->addr;
	for (unsigned b = p->len; b < mm_addr_bits(p->addr.family); b++)
		ret->bytes[b / 8] |= 0x80 >> (b % 8);
}

bool mm_prefix_contains(const struct mm_prefix *p, const struct mm_addr *a)
{
	unsigned full = p->len / 8, rest = p->len % 8;

	if (p->addr.family != a->family)
		return false;
	if (memcmp(p->addr.bytes, a->bytes, full))
		return false;
	if (!rest)
		return true;
	return ((p->addr.bytes[full] ^ a->bytes[full]) & (0xff00 >> rest)) == 0;
}

bool mm_prefix_overlaps(const struct mm_prefix *a, const struct mm_prefix *b)
{
	if (a->addr.family != b->addr.family)
		return false;
	/* Two prefixes overlap iff the shorter one contains the other's network. */
	return a->len <= b->len ? mm_prefix_contains(a, &b->addr)
				: mm_prefix_contains(b, &a->addr);
}

#define V4(l, ...) { .addr = { .family = AF_INET, .bytes = { __VA_ARGS__ } }, .len = (l) }
#define V6(l, ...) { .addr = { .family = AF_INET6, .bytes = { __VA_ARGS__ } }, .len = (l) }
#define LINK_LOCAL "link-local addresses are not routed beyond one link"
#define LOOPBACK "loopback traffic never leaves a host"
#define MULTICAST "a multicast group is not a peer: no SA or SIP dialog has it"

/* Mapped first: for ::/64 that is the reason that matters (addr.h). */
static const struct mm_special specials[] = {
	{ V6(96, [10] = 0xff, [11] = 0xff), "::ffff:0:0/96", "IPv4-mapped",
	  "IPv4 addresses are written in IPv4 form (::ffff:a.b.c.d means a.b.c.d), so an "
	  "IPv6 range around this block would claim every IPv4 sender a second time" },
	{ V4(8, 0), "0.0.0.0/8", "unspecified",
	  "0.0.0.0/8 means 'this host' (RFC 1122) and is never a peer's address" },
	{ V6(128, 0), "::/128", "unspecified", ":: is no host's address" },
	{ V4(8, 127), "127.0.0.0/8", "loopback", LOOPBACK },
	{ V6(128, [15] = 1), "::1/128", "loopback", LOOPBACK },
	{ V6(96, 0), "::/96", "IPv4-compatible",
	  "IPv4-compatible IPv6 addresses (::a.b.c.d) are deprecated (RFC 4291)" },
	{ V4(16, 169, 254), "169.254.0.0/16", "link-local", LINK_LOCAL },
	{ V6(10, 0xfe, 0x80), "fe80::/10", "link-local", LINK_LOCAL },
	{ V4(4, 224), "224.0.0.0/4", "multicast", MULTICAST },
	{ V6(8, 0xff), "ff00::/8", "multicast", MULTICAST },
	{ V4(32, 255, 255, 255, 255), "255.255.255.255/32", "broadcast",
	  "the limited broadcast address is not a peer" },
};

const struct mm_special *mm_prefix_special(const struct mm_prefix *p)
{
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
		if (mm_prefix_overlaps(p, &specials[i].prefix))
			return &specials[i];
	return NULL;
}

const struct mm_special *mm_addr_special(const struct mm_addr *a)
{
	struct mm_prefix host = { .addr = *a, .len = mm_addr_bits(a->family) };

	return mm_prefix_special(&host);
}
