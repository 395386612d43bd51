/* The partner's CA certificate, checked with OpenSSL at provisioning time. */
#ifndef MM_CA_H
#define MM_CA_H

#include <stdint.h>
#include <time.h>

#include "err.h"

struct mm_ca_info {
	char sha256[96];     /* "AB:CD:..." 32 bytes, colon separated, upper case */
	char subject[256];   /* RFC 2253 one-line subject */
	int64_t not_before;  /* unix seconds */
	int64_t not_after;
};

/* The one judge of a partner's `ca` value (the admin protocol's member,
 * the table file's ca:, mmtrustctl's --ca after it read the file).
 *
 * pem must be the PEM text of exactly one X.509 certificate: one
 * "-----BEGIN CERTIFICATE-----" block without PEM headers, with nothing
 * but blanks (space, tab, CR, LF) before or after it.  Refused, each with
 * its reason: empty; over 1 MiB; binary data (control characters other
 * than tab, CR, LF: a DER file sent as text); no CERTIFICATE block; a
 * malformed block; text before or after the block; a private key or any
 * other block beside it; two or more certificates (no bundles); DER inside
 * the block that is not one X.509 certificate.  DER is not accepted here:
 * turning a DER file into this text is the job of whoever reads the file
 * (mmtrustctl does, cli/tablefile.h).
 *
 * The certificate must be a CA (basicConstraints CA:TRUE; a keyUsage
 * without keyCertSign is refused) and valid at `now` (not expired, not yet
 * valid is refused too).  Fills *ret on success; on failure returns
 * -EINVAL and names `field` in err with the reason. */
int mm_ca_check(const char *pem, time_t now, struct mm_ca_info *ret, const char *field,
		struct mm_err *err);

/* A CRL as mmtrustd read it from a partner's file. */
struct mm_crl_info {
	char sha256[96];      /* of the file's bytes, as sha256 above */
	char issuer[256];     /* RFC 2253 */
	int64_t this_update;  /* unix seconds */
	int64_t next_update;  /* 0: the CRL has none */
	long n_revoked;
};

/* data: a CRL file's content, PEM (exactly one "X509 CRL" block) or DER
 * (exactly one CertificateList).  Parses only: mm_crl_issued_by checks who
 * signed it.  -EINVAL naming field with the reason (empty, over 65535
 * bytes, two or more CRLs, not a CRL). */
int mm_crl_check(const void *data, size_t len, struct mm_crl_info *ret, const char *field,
		 struct mm_err *err);

/* The one judge of whether a partner may list a CRL: issued by one of its
 * CAs (ca_pems[0..n_cas), each one PEM certificate): the CRL's issuer name
 * equals the CA's subject and its signature verifies with that CA's key.
 * Provisioning (daemon/crl.c crl_check_changes) and the poll both call it.
 * -EINVAL naming field: "issued by <issuer>, not by the partner's CA(s)
 * ..." or "signature does not verify with CA ...". */
int mm_crl_issued_by(const void *data, size_t len, const char *const *ca_pems, size_t n_cas,
		     const char *field, struct mm_err *err);

/* 0 when the CRL has no nextUpdate or it is not before now; -EINVAL naming
 * field ("nextUpdate ... is in the past ...") otherwise. */
int mm_crl_current(const struct mm_crl_info *info, time_t now, const char *field,
		   struct mm_err *err);

/* 1 when the CRL `now` revokes a serial that `old` does not (or names
 * another issuer and revokes anything), 0 when not, -EINVAL when either is
 * not one CRL.  Decides whether up tunnels must re-authenticate: a CRL
 * re-issued with the same entries must not drop them. */
int mm_crl_revokes_more(const void *old, size_t old_len, const void *now, size_t now_len);

#endif
