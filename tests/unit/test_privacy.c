/* The RFC 3325 decision table of docs/privacy.md, row by row. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/privacy.h"
#include "tests/unit/testmain.h"

static struct mm_partner mk(enum mm_kind kind, bool agreement, enum mm_path path, bool enabled)
{
	struct mm_partner p = { .kind = kind, .agreement = agreement, .path = path,
				.enabled = enabled };

	strcpy(p.domain, "p.example");
	return p;
}

struct in_row {
	const char *what;
	int partner;            /* 0 none, 1 tunnel+agreement, 2 tunnel no agreement, 3 seg+agreement,
				 * 4 disabled, 5 seg no agreement */
	bool sa_up, id_ok, spi_given, spi_matches;
	enum mm_dst_cover dst;
	enum mm_pai pai;
	bool protected_;
	const char *reason;
};

#define IN MM_DST_IN_CSCF
#define NO MM_DST_NOT_GIVEN
#define OUT MM_DST_OUTSIDE_CSCF
#define OTHER MM_DST_OTHER_KIND
#define KEEP MM_PAI_KEEP
#define STRIP MM_PAI_STRIP

/* Every row of docs/privacy.md's inbound table, each with dst in cscf,
 * not given and outside cscf.  Only a tunnel partner's SA, a dst our
 * in-policy covers and (when named) the SA's SPI make `protected`. */
static const struct in_row in_rows[] = {
	/* The first level of protection, the must-nevers: a partner's
	 * message at our address for the other kind of peer strips, with a
	 * reason of its own, whatever its SA, SPI, agreement or path. */
	{ "other kind's address, agreement over its SA, SPI matches", 1, true, true, true, true,
	  OTHER, STRIP, false, "dst-other-kind" },
	{ "other kind's address, agreement over its SA", 1, true, true, false, false, OTHER,
	  STRIP, false, "dst-other-kind" },
	{ "other kind's address, agreement, no SA", 1, false, false, false, false, OTHER, STRIP,
	  false, "dst-other-kind" },
	{ "other kind's address, no agreement over its SA", 2, true, true, true, true, OTHER,
	  STRIP, false, "dst-other-kind" },
	{ "other kind's address, seg with agreement", 3, false, false, false, false, OTHER, STRIP,
	  false, "dst-other-kind" },
	{ "other kind's address, seg without agreement", 5, false, false, false, false, OTHER,
	  STRIP, false, "dst-other-kind" },
	{ "other kind's address, disabled partner", 4, true, true, false, false, OTHER, STRIP,
	  false, "dst-other-kind" },
	{ "other kind's address, unknown source", 0, false, false, false, false, OTHER, STRIP,
	  false, "unknown-source" },

	{ "unknown source", 0, false, false, false, false, IN, STRIP, false, "unknown-source" },
	{ "unknown source, no dst", 0, false, false, false, false, NO, STRIP, false, "unknown-source" },
	{ "unknown source, dst outside", 0, false, false, false, false, OUT, STRIP, false,
	  "unknown-source" },
	{ "unknown source, SA facts ignored", 0, true, true, false, false, IN, STRIP, false,
	  "unknown-source" },

	{ "disabled partner", 4, true, true, false, false, IN, STRIP, false, "partner-disabled" },
	{ "disabled partner, no dst", 4, true, true, false, false, NO, STRIP, false,
	  "partner-disabled" },
	{ "disabled partner, dst outside", 4, true, true, false, false, OUT, STRIP, false,
	  "partner-disabled" },

	{ "no agreement, no SA", 2, false, false, false, false, IN, STRIP, false, "no-agreement" },
	{ "no agreement over its SA", 2, true, true, false, false, IN, STRIP, true, "no-agreement" },
	{ "no agreement over its SA, no dst", 2, true, true, false, false, NO, STRIP, false,
	  "no-agreement" },
	{ "no agreement over its SA, dst outside", 2, true, true, false, false, OUT, STRIP, false,
	  "no-agreement" },
	{ "no agreement over its SA, SPI of another SA", 2, true, true, true, false, IN, STRIP,
	  false, "no-agreement" },

	{ "seg with agreement", 3, false, false, false, false, IN, KEEP, false, "seg-trusted" },
	{ "seg with agreement, no dst", 3, false, false, false, false, NO, KEEP, false,
	  "seg-trusted" },
	{ "seg with agreement, dst outside", 3, false, false, false, false, OUT, KEEP, false,
	  "seg-trusted" },
	{ "seg with agreement, SA facts (not ours to have)", 3, true, true, true, true, IN, KEEP,
	  false, "seg-trusted" },
	{ "seg without agreement", 5, false, false, false, false, IN, STRIP, false, "no-agreement" },
	{ "seg without agreement, no dst", 5, false, false, false, false, NO, STRIP, false,
	  "no-agreement" },

	{ "agreement, no SA", 1, false, false, false, false, IN, STRIP, false, "unprotected" },
	{ "agreement, no SA, no dst", 1, false, false, false, false, NO, STRIP, false,
	  "unprotected" },
	{ "agreement, no SA, dst outside", 1, false, false, false, false, OUT, STRIP, false,
	  "unprotected" },
	{ "agreement, SA of another identity", 1, true, false, false, false, IN, STRIP, false,
	  "identity-mismatch" },
	{ "agreement, SA of another identity, no dst", 1, true, false, false, false, NO, STRIP,
	  false, "identity-mismatch" },
	{ "agreement over its SA", 1, true, true, false, false, IN, KEEP, true, "protected" },
	{ "agreement over its SA, SPI matches", 1, true, true, true, true, IN, KEEP, true,
	  "protected" },
	{ "agreement over its SA, no dst", 1, true, true, false, false, NO, STRIP, false,
	  "dst-not-given" },
	{ "agreement over its SA, SPI matches, no dst", 1, true, true, true, true, NO, STRIP, false,
	  "dst-not-given" },
	{ "agreement over its SA, dst outside cscf", 1, true, true, false, false, OUT, STRIP, false,
	  "dst-not-cscf" },
	{ "agreement over its SA, SPI matches, dst outside cscf", 1, true, true, true, true, OUT,
	  STRIP, false, "dst-not-cscf" },
	{ "agreement, SPI of another SA", 1, true, true, true, false, IN, STRIP, false,
	  "spi-mismatch" },
	{ "agreement, SPI of another SA, no dst", 1, true, true, true, false, NO, STRIP, false,
	  "dst-not-given" },
};

/* The kernel does not drop the partner's cleartext (SPD off, the partner
 * not programmable, an in-policy missing or drifted): never protected,
 * whatever else holds.  The rows above all have the kernel enforcing. */
static const struct in_row unenforced_rows[] = {
	{ "other kind's address, agreement over its SA, not enforced", 1, true, true, true, true,
	  OTHER, STRIP, false, "dst-other-kind" },
	{ "other kind's address, seg with agreement, not enforced", 3, false, false, false, false,
	  OTHER, STRIP, false, "dst-other-kind" },
	{ "agreement over its SA, not enforced", 1, true, true, false, false, IN, STRIP, false,
	  "not-enforced" },
	{ "agreement over its SA, SPI matches, not enforced", 1, true, true, true, true, IN, STRIP,
	  false, "not-enforced" },
	{ "no agreement over its SA, not enforced", 2, true, true, false, false, IN, STRIP, false,
	  "no-agreement" },
	{ "agreement over its SA, no dst, not enforced", 1, true, true, false, false, NO, STRIP,
	  false, "dst-not-given" },
	{ "agreement, no SA, not enforced", 1, false, false, false, false, IN, STRIP, false,
	  "unprotected" },
	{ "seg with agreement, not enforced (no policies of ours)", 3, false, false, false, false,
	  IN, KEEP, false, "seg-trusted" },
	{ "disabled partner, not enforced", 4, true, true, false, false, IN, STRIP, false,
	  "partner-disabled" },
};

static struct mm_partner partner_of(int which)
{
	switch (which) {
	case 1: return mk(MM_KIND_IMS, true, MM_PATH_TUNNEL, true);
	case 2: return mk(MM_KIND_NON_IMS, false, MM_PATH_TUNNEL, true);
	case 3: return mk(MM_KIND_IMS, true, MM_PATH_SEG, true);
	case 4: return mk(MM_KIND_IMS, true, MM_PATH_TUNNEL, false);
	default: return mk(MM_KIND_IMS, false, MM_PATH_SEG, true);
	}
}

static void check_inbound(const struct in_row *r, bool enforced)
{
	struct mm_partner p = partner_of(r->partner);
	struct mm_inbound_facts f = {
		.partner = r->partner ? &p : NULL, .sa_up = r->sa_up, .sa_identity_ok = r->id_ok,
		.spi_given = r->spi_given, .spi_matches = r->spi_matches, .dst = r->dst,
		.enforced = enforced,
	};
	struct mm_decision d;

	mm_decide_inbound(&f, &d);
	ck_assert_msg(d.pai == r->pai, "%s: pai %s", r->what, mm_pai_name(d.pai));
	ck_assert_msg(d.protected_ == r->protected_, "%s: protected %d", r->what, d.protected_);
	ck_assert_msg(!strcmp(d.reason, r->reason), "%s: reason %s, want %s", r->what, d.reason,
		      r->reason);
}

START_TEST(test_inbound)
{
	check_inbound(&in_rows[_i], true);
}
END_TEST

START_TEST(test_inbound_unenforced)
{
	check_inbound(&unenforced_rows[_i], false);
}
END_TEST

struct out_row {
	const char *what;
	int partner;
	bool sa_up, privacy_id;
	enum mm_untrusted_mode mode;
	enum mm_pai pai;
	bool trusted;
	const char *reason;
	bool unenforced;     /* our out policies are not all in the kernel */
};

static const struct out_row out_rows[] = {
	{ "not a partner", 0, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "not-a-partner", false },
	{ "not a partner, RFC minimum, no Privacy: id", 0, false, false,
	  MM_UNTRUSTED_STRIP_PRIVACY_ID, MM_PAI_KEEP, false, "untrusted-no-privacy-requested", false },
	{ "not a partner, RFC minimum, Privacy: id", 0, false, true, MM_UNTRUSTED_STRIP_PRIVACY_ID,
	  MM_PAI_STRIP, false, "not-a-partner", false },
	{ "trusted over its SA", 1, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true,
	  "protected", false },
	{ "trusted over its SA, Privacy: id (next hop honours it)", 1, true, true,
	  MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true, "protected", false },
	{ "agreement, tunnel down", 1, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "unprotected", false },
	{ "no agreement", 2, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "no-agreement", false },
	{ "seg with agreement", 3, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true,
	  "seg-trusted", false },
	{ "disabled", 4, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "partner-disabled", false },
	/* Our out policies not (all) in the kernel: a forwarded message may
	 * leave in clear text, so a tunnel partner's trust does not hold. */
	{ "trusted over its SA, out policies missing", 1, true, false, MM_UNTRUSTED_STRIP_ALWAYS,
	  MM_PAI_STRIP, false, "not-enforced", true },
	{ "out policies missing, Privacy: id", 1, true, true, MM_UNTRUSTED_STRIP_ALWAYS,
	  MM_PAI_STRIP, false, "not-enforced", true },
	{ "out policies missing, RFC minimum, no Privacy: id", 1, true, false,
	  MM_UNTRUSTED_STRIP_PRIVACY_ID, MM_PAI_KEEP, false, "untrusted-no-privacy-requested",
	  true },
	{ "seg with agreement: our out policies do not matter", 3, false, false,
	  MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true, "seg-trusted", true },
	{ "no agreement, out policies missing", 2, true, false, MM_UNTRUSTED_STRIP_ALWAYS,
	  MM_PAI_STRIP, false, "no-agreement", true },
};

static const unsigned all_kinds[4] = { MM_KINDS_ALL, MM_KINDS_ALL, MM_KINDS_ALL, MM_KINDS_ALL };

static struct mm_cscf_set set_of(const struct mm_prefix *p, const unsigned *kinds, size_t n)
{
	return (struct mm_cscf_set){ .prefix = p, .kinds = kinds, .n = n };
}

/* Out policies pair cscf prefixes and partner ranges of one family. */
START_TEST(test_out_cover)
{
	struct mm_prefix v4only[1], both[2], ranges[2];
	struct mm_partner p = partner_of(1);
	struct mm_addr a4, a6;
	const struct mm_cscf_set v4set = set_of(v4only, all_kinds, 1),
				 bothset = set_of(both, all_kinds, 2), none = set_of(NULL, NULL, 0);
	static const unsigned non_ims_v6[2] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_NON_IMS) };
	static const unsigned ims_only[2] = { MM_KIND_BIT(MM_KIND_IMS), MM_KIND_BIT(MM_KIND_IMS) };
	const struct mm_cscf_set split = set_of(both, non_ims_v6, 2), ims = set_of(both, ims_only, 2);

	ck_assert_int_eq(mm_prefix_parse("10.0.0.0/24", &v4only[0], "t", NULL), 0);
	both[0] = v4only[0];
	ck_assert_int_eq(mm_prefix_parse("2001:db8:10::/64", &both[1], "t", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("192.0.2.0/24", &ranges[0], "t", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("2001:db8:a::/48", &ranges[1], "t", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.10", &a4, "t", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("2001:db8:a::1", &a6, "t", NULL), 0);
	p.ranges = ranges;
	p.n_ranges = 2;
	ck_assert(mm_out_cover(&v4set, &p, &a4));
	ck_assert(!mm_out_cover(&v4set, &p, &a6));
	ck_assert(!mm_out_cover(&v4set, &p, NULL));
	ck_assert(mm_out_cover(&bothset, &p, NULL));
	ck_assert(mm_out_cover(&bothset, &p, &a6));
	ck_assert(!mm_out_cover(&none, &p, &a4));
	/* Prefixes of the other kind cover nothing: p is IMS, our only IPv6
	 * prefix faces non-IMS peers. */
	ck_assert(mm_out_cover(&split, &p, &a4));
	ck_assert(!mm_out_cover(&split, &p, &a6));
	ck_assert(!mm_out_cover(&split, &p, NULL));
	ck_assert(mm_out_cover(&ims, &p, NULL));
	p.kind = MM_KIND_NON_IMS;
	ck_assert(mm_out_cover(&split, &p, &a6));
	ck_assert(mm_out_cover(&split, &p, NULL));
	ck_assert(!mm_out_cover(&ims, &p, &a4));
	ck_assert(!mm_out_cover(&ims, &p, &a6));
	ck_assert(!mm_out_cover(&ims, &p, NULL));
	p.kind = MM_KIND_IMS;
	p.n_ranges = 1;
	ck_assert(mm_out_cover(&v4set, &p, NULL));
	p.n_ranges = 0;
	ck_assert(!mm_out_cover(&bothset, &p, NULL));
}
END_TEST

START_TEST(test_outbound)
{
	const struct out_row *r = &out_rows[_i];
	struct mm_partner p = partner_of(r->partner);
	struct mm_outbound_facts f = {
		.partner = r->partner ? &p : NULL, .sa_up = r->sa_up, .sa_identity_ok = r->sa_up,
		.privacy_id = r->privacy_id, .mode = r->mode, .enforced = !r->unenforced,
	};
	struct mm_decision d;

	mm_decide_outbound(&f, &d);
	ck_assert_msg(d.pai == r->pai, "%s: pai %s", r->what, mm_pai_name(d.pai));
	ck_assert_msg(d.trusted == r->trusted, "%s: trusted %d", r->what, d.trusted);
	ck_assert_msg(!strcmp(d.reason, r->reason), "%s: reason %s, want %s", r->what, d.reason,
		      r->reason);
}
END_TEST

/* The in-policy's dst rule: a local prefix of src's family holds dst. */
static const struct {
	const char *src, *dst;  /* dst NULL: not given */
	enum mm_dst_cover want;
} cover_rows[] = {
	{ "192.0.2.10", NULL, MM_DST_NOT_GIVEN },
	{ "192.0.2.10", "10.0.0.5", MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.0.0", MM_DST_IN_CSCF },        /* the prefix's edges */
	{ "192.0.2.10", "10.0.0.255", MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.1.0", MM_DST_OUTSIDE_CSCF },
	{ "192.0.2.10", "9.255.255.255", MM_DST_OUTSIDE_CSCF },
	/* our tunnel address, a management address: cleartext is delivered */
	{ "192.0.2.10", "198.51.100.1", MM_DST_OUTSIDE_CSCF },
	{ "2001:db8:a::1", "2001:db8:10::5", MM_DST_IN_CSCF },
	{ "2001:db8:a::1", "2001:db8:11::5", MM_DST_OUTSIDE_CSCF },
	/* The SPD pairs a local prefix only with partner ranges of its
	 * family: an IPv6 dst for an IPv4 src is in no in-policy, nor the
	 * reverse. */
	{ "192.0.2.10", "2001:db8:10::5", MM_DST_OUTSIDE_CSCF },
	{ "2001:db8:a::1", "10.0.0.5", MM_DST_OUTSIDE_CSCF },
};

START_TEST(test_dst_cover)
{
	struct mm_prefix local[2];
	struct mm_addr src, dst;
	struct mm_partner ims = partner_of(1), non_ims = partner_of(2);
	const struct mm_cscf_set set = set_of(local, all_kinds, 2), none = set_of(NULL, NULL, 0);

	ck_assert_int_eq(mm_prefix_parse("10.0.0.0/24", &local[0], "cscf", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("2001:db8:10::/64", &local[1], "cscf", NULL), 0);
	ck_assert_int_eq(mm_addr_parse(cover_rows[_i].src, &src, "src", NULL), 0);
	ck_assert(!cover_rows[_i].dst || mm_addr_parse(cover_rows[_i].dst, &dst, "dst", NULL) == 0);
	/* [local] cscf faces every kind: the same for either partner, or none */
	ck_assert_msg(mm_dst_cover(&set, &ims, &src, cover_rows[_i].dst ? &dst : NULL) ==
			      cover_rows[_i].want,
		      "%s -> %s", cover_rows[_i].src, cover_rows[_i].dst);
	ck_assert(mm_dst_cover(&set, &non_ims, &src, cover_rows[_i].dst ? &dst : NULL) ==
		  cover_rows[_i].want);
	ck_assert(mm_dst_cover(&set, NULL, &src, cover_rows[_i].dst ? &dst : NULL) ==
		  cover_rows[_i].want);
	/* without local prefixes nothing is covered */
	if (cover_rows[_i].dst)
		ck_assert_int_eq(mm_dst_cover(&none, &ims, &src, &dst), MM_DST_OUTSIDE_CSCF);
}
END_TEST

/* Split prefixes: 10.0.0.0/24 shared, 10.0.1.0/24 IMS-facing,
 * 10.0.2.0/24 non-IMS-facing, 2001:db8:10::/64 IMS-facing. */
static const struct {
	const char *src, *dst;
	enum mm_kind kind;
	enum mm_dst_cover want;
} kind_rows[] = {
	{ "192.0.2.10", "10.0.0.5", MM_KIND_IMS, MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.0.5", MM_KIND_NON_IMS, MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.1.5", MM_KIND_IMS, MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.1.5", MM_KIND_NON_IMS, MM_DST_OTHER_KIND },
	{ "192.0.2.10", "10.0.1.0", MM_KIND_NON_IMS, MM_DST_OTHER_KIND },
	{ "192.0.2.10", "10.0.1.255", MM_KIND_NON_IMS, MM_DST_OTHER_KIND },
	{ "192.0.2.10", "10.0.2.5", MM_KIND_IMS, MM_DST_OTHER_KIND },
	{ "192.0.2.10", "10.0.2.5", MM_KIND_NON_IMS, MM_DST_IN_CSCF },
	{ "192.0.2.10", "10.0.3.0", MM_KIND_IMS, MM_DST_OUTSIDE_CSCF },
	{ "192.0.2.10", "10.0.3.0", MM_KIND_NON_IMS, MM_DST_OUTSIDE_CSCF },
	{ "2001:db8:a::1", "2001:db8:10::5", MM_KIND_IMS, MM_DST_IN_CSCF },
	{ "2001:db8:a::1", "2001:db8:10::5", MM_KIND_NON_IMS, MM_DST_OTHER_KIND },
	/* of another family than src: outside the in-policy, but still the
	 * other kind's address */
	{ "192.0.2.10", "2001:db8:10::5", MM_KIND_IMS, MM_DST_OUTSIDE_CSCF },
	{ "192.0.2.10", "2001:db8:10::5", MM_KIND_NON_IMS, MM_DST_OTHER_KIND },
};

START_TEST(test_dst_cover_kinds)
{
	static const unsigned kinds[4] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS),
					   MM_KIND_BIT(MM_KIND_NON_IMS), MM_KIND_BIT(MM_KIND_IMS) };
	static const char *const text[4] = { "10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24",
					     "2001:db8:10::/64" };
	struct mm_prefix local[4];
	struct mm_cscf_set set = set_of(local, kinds, 4);
	struct mm_partner p = partner_of(1);
	struct mm_addr src, dst;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(mm_prefix_parse(text[i], &local[i], "cscf", NULL), 0);
	p.kind = kind_rows[_i].kind;
	ck_assert_int_eq(mm_addr_parse(kind_rows[_i].src, &src, "src", NULL), 0);
	ck_assert_int_eq(mm_addr_parse(kind_rows[_i].dst, &dst, "dst", NULL), 0);
	ck_assert_msg(mm_dst_cover(&set, &p, &src, &dst) == kind_rows[_i].want, "%s %s -> %s: %d",
		      mm_kind_name(p.kind), kind_rows[_i].src, kind_rows[_i].dst,
		      mm_dst_cover(&set, &p, &src, &dst));
	/* the order of the prefixes does not matter */
	for (int i = 0; i < 2; i++) {
		struct mm_prefix x = local[i];
		unsigned k[4];

		memcpy(k, kinds, sizeof(k));
		local[i] = local[3 - i];
		local[3 - i] = x;
		k[i] = kinds[3 - i];
		k[3 - i] = kinds[i];
		set.kinds = k;
		ck_assert(mm_dst_cover(&set, &p, &src, &dst) == kind_rows[_i].want);
		local[3 - i] = local[i];
		local[i] = x;
		set.kinds = kinds;
	}
}
END_TEST

/* The facts as both answer paths assemble them: the other kind's
 * address strips even with the SA up, enforced, the SPI the SA's and an
 * agreement; the own kind's and a shared address protect. */
START_TEST(test_assemble_kinds)
{
	static const unsigned kinds[3] = { MM_KINDS_ALL, MM_KIND_BIT(MM_KIND_IMS),
					   MM_KIND_BIT(MM_KIND_NON_IMS) };
	struct mm_prefix local[3];
	const struct mm_cscf_set set = set_of(local, kinds, 3);
	const struct mm_sa_view sa = { .spi_in = 0x1234, .in_enforced = true, .out_enforced = true };
	struct mm_partner p = partner_of(1);
	struct mm_inbound_facts f;
	struct mm_decision d;
	struct mm_addr src, shared, own, other;
	struct mm_prefix out_facing[3];

	ck_assert_int_eq(mm_prefix_parse("10.0.0.0/24", &local[0], "cscf", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("10.0.1.0/24", &local[1], "cscf", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("10.0.2.0/24", &local[2], "cscf", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.10", &src, "src", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("10.0.0.7", &shared, "dst", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("10.0.1.7", &own, "dst", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("10.0.2.7", &other, "dst", NULL), 0);
	for (int k = 0; k < MM_KIND__MAX; k++) {
		p.kind = k;
		if (k == MM_KIND_NON_IMS) {
			struct mm_addr x = own;

			own = other;
			other = x;
		}
		mm_inbound_assemble(&p, &sa, &set, &src, &other, 0x1234, MM_TUNNEL_ADDR_UNKNOWN, &f);
		mm_decide_inbound(&f, &d);
		ck_assert_str_eq(d.reason, "dst-other-kind");
		ck_assert(d.pai == MM_PAI_STRIP && !d.protected_ && !d.trusted);
		mm_inbound_assemble(&p, &sa, &set, &src, &own, 0x1234, MM_TUNNEL_ADDR_UNKNOWN, &f);
		mm_decide_inbound(&f, &d);
		ck_assert_str_eq(d.reason, "protected");
		ck_assert(d.pai == MM_PAI_KEEP && d.protected_);
		mm_inbound_assemble(&p, &sa, &set, &src, &shared, 0, MM_TUNNEL_ADDR_UNKNOWN, &f);
		mm_decide_inbound(&f, &d);
		ck_assert_str_eq(d.reason, "protected");
		/* the one rule, as the SPD and charon's local_ts see it */
		ck_assert_uint_eq(mm_cscf_facing(&set, &p, out_facing), 2);
		ck_assert_int_eq(mm_prefix_cmp(&out_facing[0], &local[0]), 0);
		ck_assert_int_eq(mm_prefix_cmp(&out_facing[1], &local[k == MM_KIND_IMS ? 1 : 2]), 0);
		ck_assert(mm_cscf_faces(MM_KINDS_ALL, &p));
		ck_assert(mm_cscf_faces(MM_KIND_BIT(k), &p));
		ck_assert(!mm_cscf_faces(MM_KIND_BIT(!k), &p));
		ck_assert(!mm_cscf_faces(0, &p));
	}
	/* a seg partner with an agreement (trusted by connectivity) too */
	p = partner_of(3);  /* IMS: the loop left own 10.0.2.7, other 10.0.1.7 */
	ck_assert_int_eq(p.kind, MM_KIND_IMS);
	mm_inbound_assemble(&p, NULL, &set, &src, &own, 0, MM_TUNNEL_ADDR_MISSING, &f);
	mm_decide_inbound(&f, &d);
	ck_assert_str_eq(d.reason, "dst-other-kind");
	ck_assert(d.pai == MM_PAI_STRIP && !d.trusted);
	mm_inbound_assemble(&p, NULL, &set, &src, &other, 0, MM_TUNNEL_ADDR_MISSING, &f);
	mm_decide_inbound(&f, &d);
	ck_assert_str_eq(d.reason, "seg-trusted");
}
END_TEST

/* A facts struct nobody filled in beyond the SA never says protected. */
START_TEST(test_zero_dst_never_protects)
{
	struct mm_partner p = partner_of(1);
	struct mm_inbound_facts f = { .partner = &p, .sa_up = true, .sa_identity_ok = true };
	struct mm_decision d;

	mm_decide_inbound(&f, &d);
	ck_assert(!d.protected_);
	ck_assert_int_eq(d.pai, MM_PAI_STRIP);
}
END_TEST

/* Our tunnel address: with it missing, a tunnel partner without an SA is
 * stripped naming it; every other row of both tables is as before, and
 * an address fact that is not known (0) or usable changes nothing. */
static const char *with_addr(const char *reason, enum mm_tunnel_addr ta)
{
	return ta == MM_TUNNEL_ADDR_MISSING && !strcmp(reason, "unprotected")
		       ? MM_REASON_TUNNEL_ADDRESS_MISSING
		       : reason;
}

START_TEST(test_tunnel_addr_rows)
{
	static const enum mm_tunnel_addr tas[] = { MM_TUNNEL_ADDR_UNKNOWN, MM_TUNNEL_ADDR_USABLE,
						   MM_TUNNEL_ADDR_MISSING };
	size_t changed = 0;

	for (size_t t = 0; t < 3; t++) {
		const size_t n_in = sizeof(in_rows) / sizeof(in_rows[0]),
			     n_unenf = sizeof(unenforced_rows) / sizeof(unenforced_rows[0]);

		for (size_t i = 0; i < n_in + n_unenf; i++) {
			bool enf = i < n_in;  /* then the rows with the kernel not enforcing */
			const struct in_row *r = enf ? &in_rows[i] : &unenforced_rows[i - n_in];
			struct mm_partner p = partner_of(r->partner);
			struct mm_inbound_facts f = {
				.partner = r->partner ? &p : NULL, .sa_up = r->sa_up,
				.sa_identity_ok = r->id_ok, .spi_given = r->spi_given,
				.spi_matches = r->spi_matches, .dst = r->dst, .enforced = enf,
				.tunnel_addr = tas[t],
			};
			struct mm_decision d;
			const char *want = with_addr(r->reason, tas[t]);

			mm_decide_inbound(&f, &d);
			ck_assert_msg(d.pai == r->pai && d.protected_ == r->protected_ &&
					      !strcmp(d.reason, want),
				      "%s, address %d: %s %d %s, want %s", r->what, (int)tas[t],
				      mm_pai_name(d.pai), d.protected_, d.reason, want);
			/* only a tunnel partner without its SA changes */
			if (strcmp(want, r->reason)) {
				ck_assert(r->partner && !r->sa_up && p.path == MM_PATH_TUNNEL);
				ck_assert(!d.protected_ && !d.trusted && d.pai == MM_PAI_STRIP);
				changed++;
			}
		}
		for (size_t i = 0; i < sizeof(out_rows) / sizeof(out_rows[0]); i++) {
			const struct out_row *r = &out_rows[i];
			struct mm_partner p = partner_of(r->partner);
			struct mm_outbound_facts f = {
				.partner = r->partner ? &p : NULL, .sa_up = r->sa_up,
				.sa_identity_ok = r->sa_up, .privacy_id = r->privacy_id,
				.mode = r->mode, .enforced = !r->unenforced, .tunnel_addr = tas[t],
			};
			struct mm_decision d;
			const char *want = with_addr(r->reason, tas[t]);

			mm_decide_outbound(&f, &d);
			ck_assert_msg(d.pai == r->pai && d.trusted == r->trusted &&
					      !strcmp(d.reason, want),
				      "%s, address %d: %s %d %s, want %s", r->what, (int)tas[t],
				      mm_pai_name(d.pai), d.trusted, d.reason, want);
			if (strcmp(want, r->reason)) {
				ck_assert(!d.trusted && d.pai == MM_PAI_STRIP);
				changed++;
			}
		}
	}
	/* the rows that name it: agreement and no SA, in and out */
	ck_assert_uint_ge(changed, 5);
}
END_TEST

/* The address fact never protects: an SA up with the address missing
 * (ike.c takes the tunnel down when it leaves, so it cannot last) is
 * answered as with the address; the RFC-minimum mode still keeps an
 * untrusted PAI without Privacy: id. */
START_TEST(test_tunnel_addr_sa_up)
{
	struct mm_partner p = partner_of(1);
	struct mm_inbound_facts in = { .partner = &p, .sa_up = true, .sa_identity_ok = true,
				       .dst = MM_DST_IN_CSCF, .enforced = true,
				       .tunnel_addr = MM_TUNNEL_ADDR_MISSING };
	struct mm_outbound_facts out = { .partner = &p, .sa_up = true, .sa_identity_ok = true,
					 .enforced = true, .tunnel_addr = MM_TUNNEL_ADDR_MISSING };
	struct mm_decision d;

	mm_decide_inbound(&in, &d);
	ck_assert_str_eq(d.reason, "protected");
	ck_assert(d.protected_ && d.pai == MM_PAI_KEEP);
	mm_decide_outbound(&out, &d);
	ck_assert_str_eq(d.reason, "protected");
	ck_assert(d.trusted);
	out.sa_up = out.sa_identity_ok = out.enforced = false;
	out.mode = MM_UNTRUSTED_STRIP_PRIVACY_ID;
	mm_decide_outbound(&out, &d);
	ck_assert_str_eq(d.reason, "untrusted-no-privacy-requested");
	ck_assert(!d.trusted && d.pai == MM_PAI_KEEP);
	out.privacy_id = true;
	mm_decide_outbound(&out, &d);
	ck_assert_str_eq(d.reason, MM_REASON_TUNNEL_ADDRESS_MISSING);
	ck_assert(d.pai == MM_PAI_STRIP);
}
END_TEST

/* The fact from a view's bits and the partner's gateway families,
 * against a reference; and what the assembly carries. */
START_TEST(test_tunnel_addr_of)
{
	struct mm_partner p = partner_of(1);
	struct mm_addr gw[2];
	struct mm_inbound_facts f;
	struct mm_outbound_facts o;

	for (unsigned bits = 0; bits <= MM_TUNNEL_ADDRS_ALL; bits++)
		for (unsigned fam = 0; fam <= MM_FAMILIES; fam++) {
			enum mm_tunnel_addr want =
				!(bits & MM_TUNNEL_ADDRS_KNOWN) ? MM_TUNNEL_ADDR_UNKNOWN
				: ((bits & MM_FAMILY_V4) && (fam & MM_FAMILY_V4)) ||
						((bits & MM_FAMILY_V6) && (fam & MM_FAMILY_V6))
					? MM_TUNNEL_ADDR_USABLE
					: MM_TUNNEL_ADDR_MISSING;

			ck_assert_int_eq(mm_tunnel_addr_of(bits, fam), want);
		}
	ck_assert_int_eq(MM_TUNNEL_ADDR_UNKNOWN, 0);
	ck_assert_int_eq(mm_addr_parse("198.51.100.1", &gw[0], "gw", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("2001:db8:1::1", &gw[1], "gw", NULL), 0);
	p.gateways = gw;
	p.n_gateways = 0;
	ck_assert_uint_eq(mm_partner_gateway_families(&p), 0);
	p.n_gateways = 1;
	ck_assert_uint_eq(mm_partner_gateway_families(&p), MM_FAMILY_V4);
	p.n_gateways = 2;
	ck_assert_uint_eq(mm_partner_gateway_families(&p), MM_FAMILIES);
	p.gateways = gw + 1;
	p.n_gateways = 1;
	ck_assert_uint_eq(mm_partner_gateway_families(&p), MM_FAMILY_V6);
	ck_assert_uint_eq(mm_family_bit(0), 0);
	mm_inbound_assemble(&p, NULL, &(struct mm_cscf_set){ 0 }, &gw[1], NULL, 0,
			    MM_TUNNEL_ADDR_MISSING, &f);
	ck_assert_int_eq(f.tunnel_addr, MM_TUNNEL_ADDR_MISSING);
	mm_outbound_assemble(&p, NULL, &(struct mm_cscf_set){ 0 }, NULL, false,
			     MM_UNTRUSTED_STRIP_ALWAYS, MM_TUNNEL_ADDR_USABLE, &o);
	ck_assert_int_eq(o.tunnel_addr, MM_TUNNEL_ADDR_USABLE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("privacy");
	TCase *tc = tcase_create("decisions");

	tcase_add_loop_test(tc, test_inbound, 0, sizeof(in_rows) / sizeof(in_rows[0]));
	tcase_add_loop_test(tc, test_inbound_unenforced, 0,
			    sizeof(unenforced_rows) / sizeof(unenforced_rows[0]));
	tcase_add_test(tc, test_out_cover);
	tcase_add_loop_test(tc, test_outbound, 0, sizeof(out_rows) / sizeof(out_rows[0]));
	tcase_add_loop_test(tc, test_dst_cover, 0, sizeof(cover_rows) / sizeof(cover_rows[0]));
	tcase_add_test(tc, test_zero_dst_never_protects);
	tcase_add_loop_test(tc, test_dst_cover_kinds, 0, sizeof(kind_rows) / sizeof(kind_rows[0]));
	tcase_add_test(tc, test_assemble_kinds);
	tcase_add_test(tc, test_tunnel_addr_rows);
	tcase_add_test(tc, test_tunnel_addr_sa_up);
	tcase_add_test(tc, test_tunnel_addr_of);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
