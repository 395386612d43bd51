/* The service partner: one trusted peer domain on the Mm interface.
 *
 * A partner is immutable once it is in a table (struct mm_table): a change
 * builds a new partner and a new table, which are swapped in only after the
 * store has committed.  Tables share partners through a reference count. */
#ifndef MM_PARTNER_H
#define MM_PARTNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "ca.h"
#include "err.h"

#define MM_DOMAIN_MAX 253

enum mm_kind { MM_KIND_IMS, MM_KIND_NON_IMS, MM_KIND__MAX };
/* A set of kinds (our CSCF addresses face one kind of peer or both). */
#define MM_KIND_BIT(k) (1u << (k))
#define MM_KINDS_ALL ((1u << MM_KIND__MAX) - 1)
static inline bool mm_kinds_has(unsigned kinds, enum mm_kind k)
{
	return kinds & MM_KIND_BIT(k);
}
/* The [local] key that gives a set: "cscf", "cscf_ims", "cscf_non_ims". */
const char *mm_kinds_setting(unsigned kinds);
enum mm_esp { MM_ESP_ENCRYPT, MM_ESP_INTEGRITY_ONLY, MM_ESP__MAX };
enum mm_path { MM_PATH_TUNNEL, MM_PATH_SEG, MM_PATH__MAX };
/* charon's remote `revocation` setting for the partner's connection:
 * strict: a certificate whose revocation status is not known (no CRL, no
 * OCSP answer) is refused; ifuri: refused only when the certificate names a
 * CRL/OCSP URI and no answer came; relaxed: refused only when known revoked. */
enum mm_revocation { MM_REV_IFURI, MM_REV_STRICT, MM_REV_RELAXED, MM_REV__MAX };

/* A CA rollover: the partner's peers may present certificates of the old CA
 * or of the new one; either may sign (charon's remote.cacerts). */
#define MM_PARTNER_CA_MAX 2
/* CRL files per partner: a sanity bound, far above any real need. */
#define MM_PARTNER_CRL_MAX 16
#define MM_CRL_PATH_MAX 1024

/* One of the partner's CAs: its PEM and what mm_ca_check derived from it. */
struct mm_partner_ca {
	char *pem;
	struct mm_ca_info info;
};

struct mm_partner {
	unsigned refs;
	char domain[MM_DOMAIN_MAX + 1];  /* canonical: lowercase, no trailing dot */
	enum mm_kind kind;
	bool agreement;                  /* service agreement: PAI trusted */
	struct mm_prefix *ranges;        /* sorted, non-overlapping */
	size_t n_ranges;
	struct mm_addr *gateways;        /* in the order given */
	size_t n_gateways;
	/* The partner's CAs, the one owner of them: cas[0] always, cas[1]
	 * during a CA rollover.  Distinct certificates. */
	struct mm_partner_ca cas[MM_PARTNER_CA_MAX];
	size_t n_cas;
	char **crls;                     /* absolute paths of CRL files, as given */
	size_t n_crls;
	enum mm_revocation revocation;
	enum mm_esp esp;
	enum mm_path path;
	bool enabled;
	uint32_t reqid;                  /* 0 until the table allocates one */
	int64_t created;                 /* unix seconds, set by the table */
	int64_t updated;
};

const char *mm_kind_name(enum mm_kind k);
const char *mm_esp_name(enum mm_esp e);
const char *mm_path_name(enum mm_path p);
const char *mm_revocation_name(enum mm_revocation r);
int mm_kind_parse(const char *s, enum mm_kind *ret);
int mm_esp_parse(const char *s, enum mm_esp *ret);
int mm_path_parse(const char *s, enum mm_path *ret);
int mm_revocation_parse(const char *s, enum mm_revocation *ret);

/* Validate and canonicalise a domain name into out (MM_DOMAIN_MAX+1 bytes).
 * Rules (docs/architecture.md): RFC 1035 labels of letters, digits and
 * hyphens, 1-63 characters, no leading or trailing hyphen, at least two
 * labels, at most 253 characters, the last label not all digits.  Upper
 * case is folded to lower case and one trailing dot (absolute form) is
 * dropped, since DNS names are case-insensitive and both spellings name the
 * same domain; everything else is refused. */
int mm_domain_canon(const char *in, char out[MM_DOMAIN_MAX + 1], const char *field,
		    struct mm_err *err);

/* The rules each range and gateway obeys alone (docs/admin-protocol.md,
 * "Addresses"): no range of length 0, none overlapping a special-purpose
 * block (mm_prefix_special: IPv4-mapped, unspecified, loopback,
 * link-local, multicast, ...), no gateway inside one.  mm_partner_from_json
 * applies them to every member it parses; this is for partners built
 * otherwise (the store).  -EINVAL with err naming ranges[i]/gateways[i] and
 * the partner. */
int mm_partner_check_addresses(const struct mm_partner *p, struct mm_err *err);

/* Allocate an empty partner with defaults (esp encrypt, path tunnel,
 * enabled, kind unset -> must be given).  NULL on ENOMEM. */
struct mm_partner *mm_partner_new(void);
struct mm_partner *mm_partner_ref(struct mm_partner *p);
void mm_partner_unref(struct mm_partner *p);  /* accepts NULL */
/* Deep copy with refs = 1 (reqid and times kept). */
struct mm_partner *mm_partner_dup(const struct mm_partner *p);

/* Build a partner from its JSON form (docs/admin-protocol.md):
 *   domain, kind, agreement, ranges[], gateways[], ca, esp, path, enabled,
 *   crls[], revocation.
 * ca is one PEM string or a list of one or two distinct PEM strings (a CA
 * rollover); each is judged by mm_ca_check, a third is refused.  crls are
 * absolute paths (syntax only: policy/ reads no files; the daemon checks
 * the files).
 * Required: domain, kind, agreement, ranges, gateways, ca.  Unknown members
 * are refused (a misspelt field must not be silently ignored).  Read-only
 * members produced by mm_partner_to_json (reqid, ca_sha256, ...) are
 * accepted and ignored so that exported data can be applied again.
 * now: the time the CA's validity is checked against. */
int mm_partner_from_json(const json_t *obj, time_t now, struct mm_partner **ret,
			 struct mm_err *err);

/* Apply a partial update: members of `set` replace fields wholesale;
 * `add`/`remove` hold "ranges"/"gateways"/"crls" arrays to add or remove.  The
 * domain cannot change.  Returns a new partner (refs 1) in *ret. */
int mm_partner_update(const struct mm_partner *p, const json_t *set, const json_t *add,
		      const json_t *remove, time_t now, struct mm_partner **ret,
		      struct mm_err *err);

enum {
	MM_JSON_FULL = 0,      /* everything, including reqid and CA details */
	MM_JSON_CONFIG = 1,    /* only what a user writes: apply/export form */
};
/* The JSON form.  NULL on ENOMEM. */
json_t *mm_partner_to_json(const struct mm_partner *p, int flags);

/* True when the partner gets a tunnel of ours: enabled and on the tunnel
 * path (SEG partners are protected by a security gateway, not by us).  The
 * one test for policies, charon connections and SAs alike. */
bool mm_partner_has_tunnel(const struct mm_partner *p);

/* The partner's CRL paths as a JSON list of strings.  NULL on ENOMEM. */
json_t *mm_partner_crls_json(const struct mm_partner *p);
/* Set the partner's CRLs from a JSON list of absolute paths (the store's
 * column, the JSON member): -EINVAL naming crls[i] and the reason. */
int mm_partner_crls_set(struct mm_partner *p, const json_t *arr, struct mm_err *err);

/* True when the user-settable fields (MM_JSON_CONFIG form) are equal. */
bool mm_partner_config_equal(const struct mm_partner *a, const struct mm_partner *b);

#endif
