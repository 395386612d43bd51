/* Address and prefix parsing (policy/addr.h): every spelling of an address
 * means one address (IPv4-mapped IPv6 is IPv4), the prefix length is
 * strict, and the special-purpose blocks are named. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "policy/addr.h"
#include "tests/unit/testaddr.h"
#include "tests/unit/testmain.h"

/* want: canonical text, or NULL when refused with msg_part in the message. */
struct parse_case {
	const char *in;
	const char *want;
	const char *msg_part;
};

static const struct parse_case addrs[] = {
	{ "192.0.2.10", "192.0.2.10", NULL },
	{ "::ffff:192.0.2.10", "192.0.2.10", NULL },
	{ "::FFFF:c000:20a", "192.0.2.10", NULL },
	{ "0:0:0:0:0:ffff:192.0.2.10", "192.0.2.10", NULL },
	{ "::ffff:0.0.0.0", "0.0.0.0", NULL },
	/* Not mapped: IPv4-compatible, SIIT-translated, NAT64 stay IPv6. */
	{ "::192.0.2.10", "::192.0.2.10", NULL },
	{ "::ffff:0:c000:20a", "::ffff:0:c000:20a", NULL },
	{ "64:ff9b::192.0.2.10", "64:ff9b::c000:20a", NULL },
	{ "2001:DB8::1", "2001:db8::1", NULL },
	{ "", NULL, "empty" },
	{ "01.2.3.4", NULL, "not an IPv4 or IPv6 address" },
	{ "1.2.3", NULL, "not an IPv4 or IPv6 address" },
	{ " 192.0.2.1", NULL, "not an IPv4 or IPv6 address" },
	{ "192.0.2.1 ", NULL, "not an IPv4 or IPv6 address" },
	{ "fe80::1%eth0", NULL, "not an IPv4 or IPv6 address" },
	{ "192.0.2.1/32", NULL, "not an IPv4 or IPv6 address" },
	{ "::ffff:300.0.2.1", NULL, "not an IPv4 or IPv6 address" },
};

static const struct parse_case prefixes[] = {
	{ "192.0.2.0/24", "192.0.2.0/24", NULL },
	{ "::ffff:192.0.2.0/120", "192.0.2.0/24", NULL },
	{ "::ffff:192.0.2.10/128", "192.0.2.10/32", NULL },
	{ "::ffff:0:0/96", "0.0.0.0/0", NULL },
	{ "::ffff:c000:200/119", "192.0.2.0/23", NULL },
	/* A bare address is a host prefix. */
	{ "192.0.2.10", "192.0.2.10/32", NULL },
	{ "::ffff:192.0.2.10", "192.0.2.10/32", NULL },
	{ "2001:db8::1", "2001:db8::1/128", NULL },
	/* Around the mapped block: still IPv6 (refused as a partner range). */
	{ "::/64", "::/64", NULL },
	{ "::/95", "::/95", NULL },
	{ "0.0.0.0/0", "0.0.0.0/0", NULL },
	{ "::/0", "::/0", NULL },
	{ "10.0.0.0/8", "10.0.0.0/8", NULL },
	{ "192.0.2.0/024", NULL, "leading zero" },
	{ "0.0.0.0/00", NULL, "leading zero" },
	{ "2001:db8::/032", NULL, "leading zero" },
	{ "192.0.2.0/ 24", NULL, "length must be 0-32" },
	{ "192.0.2.0/+24", NULL, "length must be 0-32" },
	{ "192.0.2.0/-0", NULL, "length must be 0-32" },
	{ "192.0.2.0/", NULL, "length must be 0-32" },
	{ "192.0.2.0/24 ", NULL, "length must be 0-32" },
	{ "192.0.2.0/24/1", NULL, "length must be 0-32" },
	{ "192.0.2.0/0x18", NULL, "length must be 0-32" },
	{ "192.0.2.0/33", NULL, "length must be 0-32" },
	{ "192.0.2.0/4294967320", NULL, "length must be 0-32" },
	{ "2001:db8::/129", NULL, "length must be 0-128" },
	{ "::ffff:192.0.2.0/129", NULL, "length must be 0-128" },
	{ "::ffff:192.0.2.1/120", NULL, "host bits set (did you mean 192.0.2.0/24?)" },
	{ "::ffff:0:0/95", NULL, "host bits set" },
	{ "192.0.2.1/24", NULL, "host bits set (did you mean 192.0.2.0/24?)" },
	{ "ten/8", NULL, "'ten' is not an address" },
	{ "ten", NULL, "not a CIDR prefix (address/length)" },
	{ "", NULL, "empty" },
};

/* Parse c->in as an address or a prefix and check the outcome. */
static void check_parse(const struct parse_case *c, bool prefix)
{
	struct mm_err err = { 0 };
	struct mm_prefix p;
	struct mm_addr a;
	char buf[MM_ADDR_STRLEN];
	int r = prefix ? mm_prefix_parse(c->in, &p, "f", &err)
		       : mm_addr_parse(c->in, &a, "f", &err);

	if (c->want) {
		ck_assert_msg(r == 0, "'%s' refused: %s", c->in, err.msg);
		ck_assert_str_eq(prefix ? mm_prefix_str(&p, buf) : mm_addr_str(&a, buf), c->want);
		return;
	}
	ck_assert_msg(r == -EINVAL, "'%s' accepted", c->in);
	ck_assert_str_eq(err.field, "f");
	ck_assert_msg(strstr(err.msg, c->msg_part), "'%s': '%s' lacks '%s'", c->in, err.msg,
		      c->msg_part);
}

START_TEST(test_addr_parse)
{
	check_parse(&addrs[_i], false);
}
END_TEST

START_TEST(test_prefix_parse)
{
	check_parse(&prefixes[_i], true);
}
END_TEST

#define P mm_test_prefix
#define A mm_test_addr

/* The two spellings compare, overlap and contain alike. */
START_TEST(test_one_meaning)
{
	struct mm_addr v4 = A("192.0.2.10"), m = A("::ffff:192.0.2.10");
	struct mm_prefix p4 = P("192.0.2.0/24"), pm = P("::ffff:192.0.2.0/120");
	struct mm_prefix half = P("::ffff:192.0.2.128/121");

	ck_assert_int_eq(mm_addr_cmp(&v4, &m), 0);
	ck_assert_int_eq(memcmp(&v4, &m, sizeof(v4)), 0);
	ck_assert_int_eq(mm_prefix_cmp(&p4, &pm), 0);
	ck_assert(mm_prefix_contains(&pm, &v4));
	ck_assert(mm_prefix_contains(&p4, &m));
	ck_assert(mm_prefix_overlaps(&p4, &half));
	ck_assert(mm_prefix_overlaps(&half, &p4));
}
END_TEST

static const struct {
	const char *prefix;
	const char *name;  /* NULL: no special block */
} specials[] = {
	{ "192.0.2.0/24", NULL },
	{ "198.51.100.10", NULL },
	{ "2001:db8::/32", NULL },
	{ "2000::/3", NULL },
	{ "1.0.0.0/8", NULL },
	{ "223.255.255.0/24", NULL },
	{ "240.0.0.0/5", NULL },
	{ "::1:0:0/96", NULL },
	{ "0.0.0.0/8", "unspecified" },
	{ "0.0.0.0", "unspecified" },
	{ "0.255.255.255", "unspecified" },
	{ "0.0.0.0/1", "unspecified" },
	{ "::", "unspecified" },
	{ "127.0.0.1", "loopback" },
	{ "127.255.0.0/16", "loopback" },
	{ "64.0.0.0/2", "loopback" },
	{ "::1", "loopback" },
	{ "::ffff:127.0.0.1", "loopback" },
	{ "169.254.1.0/24", "link-local" },
	{ "128.0.0.0/1", "link-local" },
	{ "fe80::1", "link-local" },
	{ "febf:ffff::/32", "link-local" },
	{ "fe00::/7", "link-local" },
	{ "224.0.0.1", "multicast" },
	{ "239.255.255.255", "multicast" },
	{ "ff02::1", "multicast" },
	{ "255.255.255.255", "broadcast" },
	{ "255.255.255.254/31", "broadcast" },
	{ "::192.0.2.1", "IPv4-compatible" },
	{ "::/64", "IPv4-mapped" },
	{ "::/0", "IPv4-mapped" },
	{ "::ffff:0:0/95", NULL },  /* refused by the parser: host bits */
};

START_TEST(test_special)
{
	struct mm_prefix p, t;
	const struct mm_special *sp;

	if (mm_prefix_parse(specials[_i].prefix, &p, "t", NULL) < 0) {
		ck_assert_ptr_null(specials[_i].name);
		return;
	}
	sp = mm_prefix_special(&p);
	if (!specials[_i].name) {
		ck_assert_msg(sp == NULL, "%s: named %s", specials[_i].prefix, sp->name);
		return;
	}
	ck_assert_msg(sp != NULL, "%s: not special", specials[_i].prefix);
	ck_assert_str_eq(sp->name, specials[_i].name);
	ck_assert(sp->why && *sp->why);
	/* The text the messages show is the block (the mapped block's text
	 * parses, as every mapped prefix does, to IPv4). */
	ck_assert_int_eq(mm_prefix_parse(sp->text, &t, "t", NULL), 0);
	if (strcmp(sp->name, "IPv4-mapped") != 0)
		ck_assert_int_eq(mm_prefix_cmp(&t, &sp->prefix), 0);
	if (p.len == mm_addr_bits(p.addr.family))
		ck_assert_ptr_eq(mm_addr_special(&p.addr), sp);
}
END_TEST

/* An IPv6 value with a mapped address (made by hand, as the kernel may
 * report one) is an IPv6 value: equal to no IPv4 address, inside the
 * mapped block. */
START_TEST(test_kernel_mapped)
{
	struct mm_addr m6 = { .family = AF_INET6,
			      .bytes = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 10 } };
	struct mm_addr v4 = A("192.0.2.10");
	struct mm_prefix p4 = P("192.0.2.0/24");
	const struct mm_special *sp = mm_addr_special(&m6);

	ck_assert_int_ne(mm_addr_cmp(&m6, &v4), 0);
	ck_assert(!mm_prefix_contains(&p4, &m6));
	ck_assert_ptr_nonnull(sp);
	ck_assert_str_eq(sp->name, "IPv4-mapped");
}
END_TEST

/* mm_addr_str formats by itself (answers echo addresses all the time):
 * it must write exactly what inet_ntop writes, for every shape of zero
 * runs, IPv4-compatible and IPv4-mapped addresses included. */
START_TEST(test_str_is_inet_ntop)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char want[INET6_ADDRSTRLEN], buf[MM_ADDR_STRLEN];

	for (int n = 0; n < 300000; n++) {
		struct mm_addr a = { .family = n % 5 == 0 ? AF_INET : AF_INET6 };

		for (int i = 0; i < 16; i += 2) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* mostly zero groups, some small, some full */
			switch (x % 4) {
			case 0:
			case 1:
				break;
			case 2:
				a.bytes[i + 1] = (uint8_t)(x >> 8);
				break;
			default:
				a.bytes[i] = (uint8_t)(x >> 16), a.bytes[i + 1] = (uint8_t)(x >> 24);
			}
		}
		if (n % 7 == 0)  /* the IPv4-mapped and -compatible shapes */
			memset(a.bytes, 0, 10), a.bytes[10] = a.bytes[11] = n % 2 ? 0xff : 0;
		if (n % 11 == 0)
			a.bytes[10] = 0, a.bytes[11] = 0xff;
		if (a.family == AF_INET)
			memset(a.bytes + 4, 0, 12);
		ck_assert_ptr_nonnull(inet_ntop(a.family, a.bytes, want, sizeof(want)));
		ck_assert_str_eq(mm_addr_str(&a, buf), want);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_addr_parse, 0, sizeof(addrs) / sizeof(addrs[0]));
	tcase_add_loop_test(tc, test_prefix_parse, 0, sizeof(prefixes) / sizeof(prefixes[0]));
	tcase_add_test(tc, test_one_meaning);
	tcase_add_loop_test(tc, test_special, 0, sizeof(specials) / sizeof(specials[0]));
	tcase_add_test(tc, test_kernel_mapped);
	tcase_add_test(tc, test_str_is_inet_ntop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
