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
	enum mm_pai pai;
	bool protected_;
	const char *reason;
};

static const struct in_row in_rows[] = {
	{ "unknown source", 0, false, false, false, false, MM_PAI_STRIP, false, "unknown-source" },
	{ "unknown source, SA facts ignored", 0, true, true, false, false, MM_PAI_STRIP, false,
	  "unknown-source" },
	{ "no agreement, no SA", 2, false, false, false, false, MM_PAI_STRIP, false, "no-agreement" },
	{ "no agreement over its SA", 2, true, true, false, false, MM_PAI_STRIP, true,
	  "no-agreement" },
	{ "agreement, no SA", 1, false, false, false, false, MM_PAI_STRIP, false, "unprotected" },
	{ "agreement, SA of another identity", 1, true, false, false, false, MM_PAI_STRIP, false,
	  "identity-mismatch" },
	{ "agreement over its SA", 1, true, true, false, false, MM_PAI_KEEP, true, "protected" },
	{ "agreement over its SA, SPI matches", 1, true, true, true, true, MM_PAI_KEEP, true,
	  "protected" },
	{ "agreement, SPI of another SA", 1, true, true, true, false, MM_PAI_STRIP, false,
	  "spi-mismatch" },
	{ "seg with agreement", 3, false, false, false, false, MM_PAI_KEEP, false, "seg-trusted" },
	{ "seg without agreement", 5, false, false, false, false, MM_PAI_STRIP, false,
	  "no-agreement" },
	{ "disabled partner", 4, true, true, false, false, MM_PAI_STRIP, false, "partner-disabled" },
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

START_TEST(test_inbound)
{
	const struct in_row *r = &in_rows[_i];
	struct mm_partner p = partner_of(r->partner);
	struct mm_inbound_facts f = {
		.partner = r->partner ? &p : NULL, .sa_up = r->sa_up, .sa_identity_ok = r->id_ok,
		.spi_given = r->spi_given, .spi_matches = r->spi_matches,
	};
	struct mm_decision d;

	mm_decide_inbound(&f, &d);
	ck_assert_msg(d.pai == r->pai, "%s: pai %s", r->what, mm_pai_name(d.pai));
	ck_assert_msg(d.protected_ == r->protected_, "%s: protected %d", r->what, d.protected_);
	ck_assert_msg(!strcmp(d.reason, r->reason), "%s: reason %s, want %s", r->what, d.reason,
		      r->reason);
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
};

static const struct out_row out_rows[] = {
	{ "not a partner", 0, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "not-a-partner" },
	{ "not a partner, RFC minimum, no Privacy: id", 0, false, false,
	  MM_UNTRUSTED_STRIP_PRIVACY_ID, MM_PAI_KEEP, false, "untrusted-no-privacy-requested" },
	{ "not a partner, RFC minimum, Privacy: id", 0, false, true, MM_UNTRUSTED_STRIP_PRIVACY_ID,
	  MM_PAI_STRIP, false, "not-a-partner" },
	{ "trusted over its SA", 1, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true,
	  "protected" },
	{ "trusted over its SA, Privacy: id (next hop honours it)", 1, true, true,
	  MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true, "protected" },
	{ "agreement, tunnel down", 1, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "unprotected" },
	{ "no agreement", 2, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "no-agreement" },
	{ "seg with agreement", 3, false, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_KEEP, true,
	  "seg-trusted" },
	{ "disabled", 4, true, false, MM_UNTRUSTED_STRIP_ALWAYS, MM_PAI_STRIP, false,
	  "partner-disabled" },
};

START_TEST(test_outbound)
{
	const struct out_row *r = &out_rows[_i];
	struct mm_partner p = partner_of(r->partner);
	struct mm_outbound_facts f = {
		.partner = r->partner ? &p : NULL, .sa_up = r->sa_up, .sa_identity_ok = r->sa_up,
		.privacy_id = r->privacy_id, .mode = r->mode,
	};
	struct mm_decision d;

	mm_decide_outbound(&f, &d);
	ck_assert_msg(d.pai == r->pai, "%s: pai %s", r->what, mm_pai_name(d.pai));
	ck_assert_msg(d.trusted == r->trusted, "%s: trusted %d", r->what, d.trusted);
	ck_assert_msg(!strcmp(d.reason, r->reason), "%s: reason %s, want %s", r->what, d.reason,
		      r->reason);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("privacy");
	TCase *tc = tcase_create("decisions");

	tcase_add_loop_test(tc, test_inbound, 0, sizeof(in_rows) / sizeof(in_rows[0]));
	tcase_add_loop_test(tc, test_outbound, 0, sizeof(out_rows) / sizeof(out_rows[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
