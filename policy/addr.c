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

int mm_addr_parse(const char *s, struct mm_addr *ret, const char *field,
		  struct mm_err *err)
{
	struct mm_addr a = { 0 };

	if (!s || !*s)
		return mm_err_set(err, MM_ERR_INVALID, field, "empty address");
	if (inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	else
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not an IPv4 or IPv6 address", s);
	*ret = a;
	return 0;
}

int mm_prefix_parse(const char *s, struct mm_prefix *ret, const char *field,
		    struct mm_err *err)
{
	char buf[MM_ADDR_STRLEN + 8];
	struct mm_prefix p = { 0 };
	const char *slash;
	unsigned long len;
	char *end;
	int r;

	if (!s || !*s)
		return mm_err_set(err, MM_ERR_INVALID, field, "empty prefix");
	if (strlen(s) >= sizeof(buf))
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%.60s...' is too long for a CIDR prefix", s);
	slash = strchr(s, '/');
	if (!slash) {
		r = mm_addr_parse(s, &p.addr, field, NULL);
		if (r < 0)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s' is not a CIDR prefix (address/length)", s);
		p.len = mm_addr_bits(p.addr.family);
		*ret = p;
		return 0;
	}
	memcpy(buf, s, slash - s);
	buf[slash - s] = '\0';
	if (mm_addr_parse(buf, &p.addr, field, NULL) < 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a CIDR prefix: '%s' is not an address", s, buf);
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (!slash[1] || *end || errno || slash[1] == '-' || slash[1] == '+' ||
	    len > mm_addr_bits(p.addr.family))
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a CIDR prefix: length must be 0-%u", s,
				  mm_addr_bits(p.addr.family));
	p.len = len;
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

const char *mm_addr_str(const struct mm_addr *a, char buf[MM_ADDR_STRLEN])
{
	if (!inet_ntop(a->family, a->bytes, buf, MM_ADDR_STRLEN))
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
