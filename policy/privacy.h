/* RFC 3325 privacy decisions: keep or strip P-Asserted-Identity.
 *
 * Pure functions of facts the daemon already holds (the partner, whether
 * an authenticated SA of that partner is up).  docs/privacy.md has the
 * table these implement; tests/unit/test_privacy.c checks every row. */
#ifndef MM_PRIVACY_H
#define MM_PRIVACY_H

#include <stdbool.h>
#include <stdint.h>

#include "partner.h"

enum mm_pai { MM_PAI_STRIP, MM_PAI_KEEP };

/* How an untrusted next hop is treated: ALWAYS strips PAI (what IMS
 * networks do, the default); PRIVACY_ID strips it only when the message
 * asks for privacy with "Privacy: id" (the RFC 3325 minimum). */
enum mm_untrusted_mode { MM_UNTRUSTED_STRIP_ALWAYS, MM_UNTRUSTED_STRIP_PRIVACY_ID };

struct mm_inbound_facts {
	const struct mm_partner *partner;  /* NULL: the source is in no partner's range */
	bool sa_up;          /* an installed CHILD_SA under the partner's reqid ... */
	bool sa_identity_ok; /* ... whose authenticated remote id is the partner's domain */
	bool spi_given;      /* the CSCF named the SPI the message came on */
	bool spi_matches;    /* that SPI is the partner's SA's inbound SPI */
};

struct mm_outbound_facts {
	const struct mm_partner *partner;  /* NULL: not a partner */
	bool sa_up;
	bool sa_identity_ok;
	bool privacy_id;     /* the message carries Privacy: id */
	enum mm_untrusted_mode mode;
};

struct mm_decision {
	enum mm_pai pai;
	bool protected_;     /* over an authenticated SA of the partner */
	bool trusted;        /* the peer is inside our trust domain */
	const char *reason;  /* static string, see docs/privacy.md */
};

void mm_decide_inbound(const struct mm_inbound_facts *f, struct mm_decision *ret);
void mm_decide_outbound(const struct mm_outbound_facts *f, struct mm_decision *ret);
const char *mm_pai_name(enum mm_pai pai);

#endif
