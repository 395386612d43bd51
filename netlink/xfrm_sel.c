#include "xfrm_sel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static size_t addr_bytes(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

void mm_xfrm_addr_get(int family, const xfrm_address_t *x, struct mm_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = (uint8_t)family;
	memcpy(ret->bytes, x, addr_bytes(family));
}

void mm_xfrm_addr_put(const struct mm_addr *a, xfrm_address_t *ret)
{
	memset(ret, 0, sizeof(*ret));
	memcpy(ret, a->bytes, addr_bytes(a->family));
}

int mm_xfrm_sel_get(const struct xfrm_selector *k, struct mm_xfrm_sel *ret)
{
	struct mm_xfrm_sel s = { 0 };
	unsigned bits;

	if (k->family != AF_INET && k->family != AF_INET6 && k->family != AF_UNSPEC)
		return -EINVAL;
	bits = k->family == AF_UNSPEC ? 0 : mm_addr_bits(k->family);
	if (k->prefixlen_s > bits || k->prefixlen_d > bits)
		return -EINVAL;
	s.family = (uint8_t)k->family;
	mm_xfrm_addr_get(k->family, &k->saddr, &s.src.addr);
	mm_xfrm_addr_get(k->family, &k->daddr, &s.dst.addr);
	s.src.len = k->prefixlen_s;
	s.dst.len = k->prefixlen_d;
	s.proto = k->proto;
	s.sport = ntohs(k->sport);
	s.sport_mask = ntohs(k->sport_mask);
	s.dport = ntohs(k->dport);
	s.dport_mask = ntohs(k->dport_mask);
	s.ifindex = k->ifindex;
	s.user = k->user;
	*ret = s;
	return 0;
}

void mm_xfrm_sel_put(const struct mm_xfrm_sel *s, struct xfrm_selector *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = s->family;
	mm_xfrm_addr_put(&s->src.addr, &ret->saddr);
	mm_xfrm_addr_put(&s->dst.addr, &ret->daddr);
	ret->prefixlen_s = s->src.len;
	ret->prefixlen_d = s->dst.len;
	ret->proto = s->proto;
	ret->sport = htons(s->sport);
	ret->sport_mask = htons(s->sport_mask);
	ret->dport = htons(s->dport);
	ret->dport_mask = htons(s->dport_mask);
	ret->ifindex = s->ifindex;
	ret->user = s->user;
}

#define CMP(x, y) do { if ((x) != (y)) return (x) < (y) ? -1 : 1; } while (0)

int mm_xfrm_sel_cmp(const struct mm_xfrm_sel *a, const struct mm_xfrm_sel *b)
{
	size_t n = addr_bytes(a->family);
	int c;

	CMP(a->family, b->family);
	CMP(a->src.len, b->src.len);
	CMP(a->dst.len, b->dst.len);
	c = memcmp(a->src.addr.bytes, b->src.addr.bytes, n);
	if (c)
		return c;
	c = memcmp(a->dst.addr.bytes, b->dst.addr.bytes, n);
	if (c)
		return c;
	CMP(a->proto, b->proto);
	CMP(a->sport, b->sport);
	CMP(a->sport_mask, b->sport_mask);
	CMP(a->dport, b->dport);
	CMP(a->dport_mask, b->dport_mask);
	CMP(a->ifindex, b->ifindex);
	CMP(a->user, b->user);
	return 0;
}

const char *mm_xfrm_sel_str(const struct mm_xfrm_sel *s, char *buf, size_t len)
{
	char a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN];
	int n;

	if (s->family == AF_UNSPEC)
		n = snprintf(buf, len, "any -> any");
	else
		n = snprintf(buf, len, "%s -> %s", mm_prefix_str(&s->src, a),
			     mm_prefix_str(&s->dst, b));
	if (n < 0 || (size_t)n >= len)
		return buf;
	if (s->proto)
		n += snprintf(buf + n, len - n, " proto %u", s->proto);
	if (s->sport_mask && (size_t)n < len)
		n += snprintf(buf + n, len - n, " sport %u", s->sport);
	if (s->dport_mask && (size_t)n < len)
		n += snprintf(buf + n, len - n, " dport %u", s->dport);
	if (s->ifindex && (size_t)n < len)
		snprintf(buf + n, len - n, " ifindex %d", s->ifindex);
	return buf;
}
