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

/* Check that pem holds exactly one X.509 certificate that is a CA
 * (basicConstraints CA:TRUE) and is valid at `now` (not expired, not yet
 * valid is refused too).  Fills *ret on success; on failure returns
 * -EINVAL and names `field` in err with the reason (garbage PEM, not a CA,
 * expired on <date>, ...). */
int mm_ca_check(const char *pem, time_t now, struct mm_ca_info *ret, const char *field,
		struct mm_err *err);

#endif
