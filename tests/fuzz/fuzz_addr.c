/* libFuzzer target for the validators of outside text: addresses and CIDR
 * prefixes (policy/addr.c), domain names (mm_domain_canon, policy/
 * partner.c), SPIs (policy/spi.c) and the enum names of a partner.
 *
 * Input: two strings separated by a NUL byte; every validator runs on the
 * first, the pairwise relations (overlap, order) on both.  Invariants:
 *   - a refusal fills the error with the field and a message;
 *   - what is accepted formats to canonical text that parses back to the
 *     same value and formats the same again; IPv4 text is already
 *     canonical (the query socket echoes it as given); no parsed value
 *     holds an IPv4-mapped address; a prefix has no host bits and
 *     contains its first and last address; an address is also a host
 *     prefix;
 *   - a canonical domain is lower case, without a trailing dot, at most
 *     253 characters, and canonicalises to itself; case does not matter;
 *   - an SPI is never 0, and its string form and its JSON forms agree;
 *   - overlap is symmetric, order antisymmetric, containment implies
 *     overlap. */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>

#include "fuzz.h"
#include "policy/addr.h"
#include "policy/partner.h"
#include "policy/spi.h"

static const uint8_t mapped_head[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void refused(int r, const struct mm_err *e, const char *field)
{
	FUZZ_ASSERT(r < 0, "r=%d", r);
	FUZZ_ASSERT(e->code != MM_ERR_NONE && strcmp(e->field, field) == 0 && e->msg[0],
		    "code %d field '%s' msg '%s'", e->code, e->field, e->msg);
}

static void check_family(const struct mm_addr *a)
{
	FUZZ_ASSERT(a->family == AF_INET || a->family == AF_INET6, "family %d", a->family);
	FUZZ_ASSERT(a->family == AF_INET || memcmp(a->bytes, mapped_head, 12) != 0,
		    "a mapped address survived parsing");
	if (a->family == AF_INET)
		for (int i = 4; i < 16; i++)
			FUZZ_ASSERT(a->bytes[i] == 0, "IPv4 address with bytes past 4");
}

static bool addr(const char *s, struct mm_addr *ret)
{
	struct mm_err e = { 0 };
	struct mm_addr a, b;
	char t1[MM_ADDR_STRLEN], t2[MM_ADDR_STRLEN];
	int r = mm_addr_parse(s, &a, "f", &e);

	if (r < 0) {
		refused(r, &e, "f");
		return false;
	}
	FUZZ_ASSERT(r == 0, "r=%d", r);
	check_family(&a);
	mm_addr_str(&a, t1);
	FUZZ_ASSERT(mm_addr_parse(t1, &b, "f", NULL) == 0, "'%s' does not parse back", t1);
	FUZZ_ASSERT(mm_addr_cmp(&a, &b) == 0, "'%s' -> '%s' is another address", s, t1);
	FUZZ_ASSERT(!strcmp(mm_addr_str(&b, t2), t1), "'%s' then '%s'", t1, t2);
	if (a.family == AF_INET && !strchr(s, ':'))
		FUZZ_ASSERT(!strcmp(s, t1), "IPv4 '%s' is not canonical: '%s'", s, t1);
	*ret = a;
	return true;
}

static bool prefix(const char *s, struct mm_prefix *ret)
{
	struct mm_err e = { 0 };
	struct mm_prefix p, q;
	struct mm_addr last;
	char t1[MM_ADDR_STRLEN], t2[MM_ADDR_STRLEN];
	int r = mm_prefix_parse(s, &p, "f", &e);

	if (r < 0) {
		refused(r, &e, "f");
		return false;
	}
	FUZZ_ASSERT(r == 0, "r=%d", r);
	FUZZ_ASSERT(p.addr.family == AF_INET || p.addr.family == AF_INET6, "family");
	FUZZ_ASSERT(p.len <= mm_addr_bits(p.addr.family), "len %u", p.len);
	FUZZ_ASSERT(p.addr.family == AF_INET || p.len < 96 ||
		    memcmp(p.addr.bytes, mapped_head, 12) != 0, "a mapped prefix survived");
	for (unsigned bit = p.len; bit < mm_addr_bits(p.addr.family); bit++)
		FUZZ_ASSERT(!(p.addr.bytes[bit / 8] & (0x80 >> (bit % 8))), "host bit %u set", bit);
	mm_prefix_str(&p, t1);
	FUZZ_ASSERT(mm_prefix_parse(t1, &q, "f", NULL) == 0, "'%s' does not parse back", t1);
	FUZZ_ASSERT(mm_prefix_cmp(&p, &q) == 0, "'%s' -> '%s' is another prefix", s, t1);
	FUZZ_ASSERT(!strcmp(mm_prefix_str(&q, t2), t1), "'%s' then '%s'", t1, t2);
	mm_prefix_last(&p, &last);
	FUZZ_ASSERT(mm_prefix_contains(&p, &p.addr) && mm_prefix_contains(&p, &last),
		    "'%s' misses its own ends", t1);
	FUZZ_ASSERT(mm_prefix_overlaps(&p, &p), "'%s' does not overlap itself", t1);
	(void)mm_prefix_special(&p);
	*ret = p;
	return true;
}

static void domain(const char *s)
{
	char out[MM_DOMAIN_MAX + 1], again[MM_DOMAIN_MAX + 1], *upper;
	struct mm_err e = { 0 };
	int r = mm_domain_canon(s, out, "d", &e);

	upper = strdup(s);
	for (char *c = upper; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	if (r < 0) {
		refused(r, &e, "d");
		FUZZ_ASSERT(mm_domain_canon(upper, again, "d", NULL) < 0, "'%s' only in upper case",
			    s);
		free(upper);
		return;
	}
	FUZZ_ASSERT(r == 0, "r=%d", r);
	FUZZ_ASSERT(strlen(out) <= MM_DOMAIN_MAX && strlen(out) <= strlen(s), "'%s'", out);
	FUZZ_ASSERT(out[0] && out[strlen(out) - 1] != '.', "'%s'", out);
	for (const char *c = out; *c; c++)
		FUZZ_ASSERT(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-' ||
			    *c == '.', "'%s' has '%c'", out, *c);
	FUZZ_ASSERT(mm_domain_canon(out, again, "d", NULL) == 0 && !strcmp(out, again),
		    "'%s' is not a fixed point", out);
	FUZZ_ASSERT(mm_domain_canon(upper, again, "d", NULL) == 0 && !strcmp(out, again),
		    "'%s' and '%s' differ", s, upper);
	free(upper);
}

static void spi(const char *s, const uint8_t *data, size_t size)
{
	struct mm_err e = { 0 };
	char t[MM_SPI_STRLEN];
	uint32_t v, w;
	json_int_t x = 0;
	json_t *j = json_string(s);
	int r = mm_spi_parse(s, &v, "spi", &e);

	if (r < 0) {
		refused(r, &e, "spi");
	} else {
		FUZZ_ASSERT(r == 0 && v != 0, "r=%d v=%u", r, v);
		mm_spi_str(v, t);
		FUZZ_ASSERT(strlen(t) == 10 && mm_spi_parse(t, &w, "spi", NULL) == 0 && w == v,
			    "'%s' -> '%s'", s, t);
	}
	/* The JSON string form is the string form (a valid UTF-8 input only). */
	if (j) {
		FUZZ_ASSERT((mm_spi_from_json(j, &w, "spi", NULL) == 0) == (r == 0) &&
			    (r < 0 || w == v), "json '%s'", s);
		json_decref(j);
	}
	memcpy(&x, data, size < sizeof(x) ? size : sizeof(x));
	j = json_integer(x);
	r = mm_spi_from_json(j, &w, "spi", NULL);
	FUZZ_ASSERT((r == 0) == (x >= 1 && x <= (json_int_t)UINT32_MAX) && (r < 0 || w == x),
		    "integer %lld", (long long)x);
	json_decref(j);
}

static void names(const char *s)
{
	enum mm_kind k;
	enum mm_esp es;
	enum mm_path p;

	if (mm_kind_parse(s, &k) == 0)
		FUZZ_ASSERT(k < MM_KIND__MAX && !strcmp(mm_kind_name(k), s), "kind '%s'", s);
	if (mm_esp_parse(s, &es) == 0)
		FUZZ_ASSERT(es < MM_ESP__MAX && !strcmp(mm_esp_name(es), s), "esp '%s'", s);
	if (mm_path_parse(s, &p) == 0)
		FUZZ_ASSERT(p < MM_PATH__MAX && !strcmp(mm_path_name(p), s), "path '%s'", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size, 1024), *t;
	size_t n = strlen(s);
	struct mm_addr a, ta;
	struct mm_prefix p, q;
	bool have_p, have_q;

	t = fuzz_str(data + (n < size ? n + 1 : n), n < size ? size - n - 1 : 0, 1024);
	if (addr(s, &a)) {
		FUZZ_ASSERT(prefix(s, &p), "address '%s' is no host prefix", s);
		FUZZ_ASSERT(p.len == mm_addr_bits(a.family) && mm_addr_cmp(&p.addr, &a) == 0,
			    "address '%s' and its host prefix differ", s);
		(void)mm_addr_special(&a);
	}
	have_p = prefix(s, &p);
	have_q = prefix(t, &q);
	if (have_p && have_q) {
		struct mm_addr last;

		FUZZ_ASSERT(mm_prefix_overlaps(&p, &q) == mm_prefix_overlaps(&q, &p), "overlap");
		FUZZ_ASSERT((mm_prefix_cmp(&p, &q) > 0) == (mm_prefix_cmp(&q, &p) < 0), "order");
		mm_prefix_last(&q, &last);
		if (mm_prefix_contains(&p, &q.addr) && mm_prefix_contains(&p, &last))
			FUZZ_ASSERT(mm_prefix_overlaps(&p, &q), "contains but no overlap");
	}
	if (addr(t, &ta) && have_p)
		FUZZ_ASSERT(!mm_prefix_contains(&p, &ta) || mm_prefix_overlaps(&p, &(struct mm_prefix){
				    .addr = ta, .len = (uint8_t)mm_addr_bits(ta.family) }),
			    "contains an address but not its host prefix");
	domain(s);
	spi(s, data, size);
	names(s);
	free(s);
	free(t);
	return 0;
}
