/* certgen: X.509 test certificates made in memory with OpenSSL.
 *
 * Every function returns a malloc'd, NUL-terminated PEM string that the
 * caller frees with free(), or NULL on failure (the OpenSSL error queue is
 * cleared either way).  Each call makes a fresh EC P-256 key, so two calls
 * never return the same certificate; the key is discarded after signing.
 *
 * Certificates are X.509 v3, self-signed with ECDSA-SHA256, with a random
 * positive 64-bit serial and subject = issuer = "CN=<cn>".  cn is UTF-8 of
 * at most 64 characters (the X.520 bound OpenSSL enforces). */
#ifndef MM_TEST_CERTGEN_H
#define MM_TEST_CERTGEN_H

/* A CA: basicConstraints critical CA:TRUE, keyUsage critical
 * keyCertSign,cRLSign, subjectKeyIdentifier.  Valid from now+not_before_s
 * to now+not_after_s (seconds; negative offsets lie in the past, so
 * (-172800, -86400) is expired and (86400, 172800) is not yet valid). */
char *certgen_ca_pem(const char *cn, long not_before_offset_s, long not_after_offset_s);

/* An end-entity certificate: basicConstraints critical CA:FALSE, keyUsage
 * critical digitalSignature, and subjectAltName DNS:<san_dns> unless
 * san_dns is NULL (one name only).  Valid from one hour ago for 30 days. */
char *certgen_leaf_pem(const char *cn, const char *san_dns);

/* A certificate with no basicConstraints at all but keyUsage critical
 * keyCertSign,cRLSign: OpenSSL's X509_check_ca() calls it a CA (returns 4),
 * so it catches code that relies on that alone.  Valid like the leaf. */
char *certgen_nobc_pem(const char *cn);

/* A bare EC P-256 private key, "-----BEGIN PRIVATE KEY-----" (PKCS#8,
 * unencrypted): input that is PEM but not a certificate. */
char *certgen_key_pem(void);

/* A CRL (v2) of issuer "CN=<issuer_cn>", signed by a fresh key (its
 * signature matches no CA: only charon checks it), thisUpdate a minute ago,
 * nextUpdate now+next_update_offset_s (none when 0), with n_revoked
 * entries (serials 1000, 1001, ...).  "-----BEGIN X509 CRL-----". */
char *certgen_crl_pem(const char *issuer_cn, int n_revoked, long next_update_offset_s);

/* A CA like certgen_ca_pem (valid from a minute ago for 30 days) whose
 * private key (PKCS#8 PEM) goes to *ret_key_pem, which the caller frees. */
char *certgen_ca_key_pem(const char *cn, char **ret_key_pem);

/* A CRL issued and signed by the CA (its subject, its key) revoking
 * serials[0..n), thisUpdate a minute ago (an hour before nextUpdate when
 * that is in the past), nextUpdate now+next_update_offset_s (none when 0). */
char *certgen_crl_signed_pem(const char *ca_pem, const char *key_pem, const long *serials,
			     int n, long next_update_offset_s);

#endif
