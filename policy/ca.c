#include "ca.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A CA certificate is a few kilobytes; the cap bounds what a wrong file
 * pasted into the field can cost, and keeps the length within an int for
 * BIO_new_mem_buf(). */
#define CA_PEM_MAX (1024 * 1024)

/* What one VICI value carries (load-cert's data): a larger CRL cannot be
 * handed to charon, which fetches such CRLs from the certificates' URIs. */
#define CRL_MAX 65535

#define SHA256_LEN 32
_Static_assert(sizeof(((struct mm_ca_info *)0)->sha256) >= 3 * SHA256_LEN,
	       "sha256 buffer too small for 32 colon-separated hex bytes");

static bool is_cert_label(const char *name)
{
	return strcmp(name, PEM_STRING_X509) == 0 || strcmp(name, PEM_STRING_X509_OLD) == 0;
}

/* The label comes from the input and ends up on an operator's terminal. */
static void label_copy(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < size; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}

/* Control characters other than line ends and tabs appear in no text
 * file but in every DER encoding (its tags and lengths). */
static bool binary_byte(unsigned char ch)
{
	return (ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') || ch == 0x7f;
}

static bool blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The value must be the block and nothing else: text around it would be
 * stored, exported and handed to charon as if it were part of the
 * certificate.  Blank lines and indentation around the block are fine.
 * Called once the walk found exactly one block, so the first non-blank
 * byte starts its BEGIN line and the first END line after it is the one
 * OpenSSL read. */
static int check_nothing_around(const char *pem, size_t len, const char *field,
				struct mm_err *err)
{
	const char *begin = pem, *end = pem + len, *p;

	while (begin < end && blank(*begin))
		begin++;
	if ((size_t)(end - begin) < 11 || memcmp(begin, "-----BEGIN ", 11) != 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "has text before the '-----BEGIN CERTIFICATE-----' line; give only the PEM block (`openssl x509 -in FILE` prints it)");
	p = memmem(begin, (size_t)(end - begin), "\n-----END ", 10);
	p = p ? memchr(p + 1, '\n', (size_t)(end - p - 1)) : NULL;
	for (p = p ? p : end; p < end && blank(*p); p++)
		;
	if (p < end)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "has text after the '-----END CERTIFICATE-----' line; give only the PEM block (`openssl x509 -in FILE` prints it)");
	return 0;
}

/* Walk every PEM block rather than calling PEM_read_bio_X509(): that one
 * silently skips blocks of other types, so a private key pasted next to
 * the certificate, or a second certificate, would go unnoticed. */
static int pem_read_one_cert(const char *pem, size_t len, X509 **ret_x509, const char *field,
			     struct mm_err *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	long der_len = 0;
	X509 *x = NULL;
	BIO *bio;
	int ncert = 0, r = 0;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		r = mm_err_set(err, MM_ERR_INTERNAL, field, "out of memory reading the certificate");
		goto out;
	}
	for (;;) {
		char *name = NULL, *header = NULL, label[48];
		unsigned char *data = NULL;
		long data_len = 0;
		unsigned long e;

		/* PEM_FLAG_SECURE: the buffers (and the copies PEM_read_bio_ex
		 * makes) are wiped when freed, which matters if this block
		 * turns out to be a private key. */
		if (!PEM_read_bio_ex(bio, &name, &header, &data, &data_len,
				     PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE)) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
				break;  /* no further BEGIN line: end of input */
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "not a PEM certificate: a PEM block is malformed (bad base64 or missing END line)");
			goto out;
		}
		if (!is_cert_label(name)) {
			if (strstr(name, "PRIVATE KEY")) {
				r = mm_err_set(err, MM_ERR_INVALID, field,
					       "holds a private key, not a certificate; give only the CA certificate and keep the key secret");
			} else {
				label_copy(label, sizeof(label), name);
				r = mm_err_set(err, MM_ERR_INVALID, field,
					       "holds a PEM '%s' block, not a certificate", label);
			}
		} else if (header && *header) {
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "the CERTIFICATE block has PEM headers (such as Proc-Type); a certificate has none");
		} else if (++ncert == 1) {
			der = data;
			der_len = data_len;
			data = NULL;
		}
		OPENSSL_secure_free(name);
		OPENSSL_secure_free(header);
		OPENSSL_secure_clear_free(data, data_len > 0 ? (size_t)data_len : 0);
		if (r < 0)
			goto out;
	}
	if (ncert == 0) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "not a PEM certificate: no '-----BEGIN CERTIFICATE-----' block found");
		goto out;
	}
	if (ncert > 1) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "holds %d certificates; expected exactly one, the CA that issues the partner's certificates (no bundles)",
			       ncert);
		goto out;
	}

	p = der;
	x = d2i_X509(NULL, &p, der_len);
	/* Trailing bytes after the DER mean the block is not what it claims. */
	if (!x || p != der + der_len) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "not a PEM certificate: the CERTIFICATE block is not a valid X.509 certificate");
		goto out;
	}
	*ret_x509 = x;
	x = NULL;
out:
	X509_free(x);
	OPENSSL_secure_clear_free(der, der_len > 0 ? (size_t)der_len : 0);
	BIO_free(bio);
	return r;
}

/* Decide on basicConstraints itself: X509_check_ca() alone also accepts
 * certificates without it (v1 self-signed roots, or a keyUsage with
 * keyCertSign), which the contract does not. */
static int check_is_ca(X509 *x, const char *field, struct mm_err *err)
{
	BASIC_CONSTRAINTS *bc;
	uint32_t flags;
	int crit = 0, r = 0;

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	if (!bc) {
		if (crit == -1)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "not a CA certificate: it has no basicConstraints extension");
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "not a CA certificate: its basicConstraints extension is malformed or repeated");
	}
	if (!bc->ca) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "not a CA certificate: basicConstraints says CA:FALSE");
		goto out;
	}
	/* OpenSSL's own verdict adds the keyUsage rule and flags extensions it
	 * could not parse; a chain built on this CA would fail on either. */
	if (X509_check_ca(x) != 1) {
		flags = X509_get_extension_flags(x);
		if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "not a CA certificate: its keyUsage does not allow keyCertSign");
		else
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "not a CA certificate: OpenSSL finds its extensions invalid");
	}
out:
	BASIC_CONSTRAINTS_free(bc);
	return r;
}

static int asn1_time_get(const ASN1_TIME *t, int64_t *ret_secs, struct tm *ret_tm)
{
	struct tm tm = { 0 };
	time_t secs;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	secs = timegm(&tm);
	if (secs == (time_t)-1)
		return -ERANGE;
	*ret_secs = secs;
	*ret_tm = tm;
	return 0;
}

static void tm_format(const struct tm *tm, char *buf, size_t size)
{
	if (strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", tm) == 0)
		snprintf(buf, size, "(unprintable date)");
}

static int hex_colon(const unsigned char *md, unsigned int n, char *buf, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned int i;

	if (n != SHA256_LEN || size < 3 * n)
		return -EIO;
	for (i = 0; i < n; i++) {
		buf[3 * i] = hex[md[i] >> 4];
		buf[3 * i + 1] = hex[md[i] & 0xf];
		buf[3 * i + 2] = i + 1 < n ? ':' : '\0';
	}
	return 0;
}

static int fingerprint_sha256(X509 *x, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!X509_digest(x, EVP_sha256(), md, &n))
		return -EIO;
	return hex_colon(md, n, buf, size);
}

/* Value of the "\HH" escape at s[i], or -1; s is not NUL-terminated. */
static int rfc2253_hex_escape(const char *s, size_t i, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *hi, *lo;

	if (i + 2 >= len || s[i] != '\\' || !s[i + 1] || !s[i + 2])
		return -1;
	hi = strchr(hex, toupper((unsigned char)s[i + 1]));
	lo = strchr(hex, toupper((unsigned char)s[i + 2]));
	if (!hi || !lo)
		return -1;
	return (int)((hi - hex) << 4 | (lo - hex));
}

/* Length of the RFC 2253 unit at s[i]: a character, "\," or "\C3", and
 * a UTF-8 lead byte escape together with its continuation escapes. */
static size_t rfc2253_unit(const char *s, size_t i, size_t len)
{
	int v = rfc2253_hex_escape(s, i, len);
	size_t n = 3;

	if (v < 0)
		return s[i] == '\\' && i + 1 < len ? 2 : 1;
	if (v < 0xc0)
		return n;
	for (; (v = rfc2253_hex_escape(s, i + n, len)) >= 0x80 && v < 0xc0; n += 3)
		;
	return n;
}

/* Cut only between whole units, so the result never ends in half an escape
 * or half a UTF-8 character, and mark the cut with "...". */
static void subject_copy(char *dst, size_t size, const char *src, size_t len)
{
	size_t i = 0, step;

	if (len < size) {
		memcpy(dst, src, len);
		dst[len] = '\0';
		return;
	}
	for (; i < len; i += step) {
		step = rfc2253_unit(src, i, len);
		if (i + step > size - sizeof("..."))
			break;
	}
	memcpy(dst, src, i);
	memcpy(dst + i, "...", sizeof("..."));
}

static int name_rfc2253(const X509_NAME *name, char *buf, size_t size)
{
	BIO *bio;
	char *data = NULL;
	long len;
	int r = 0;

	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return -ENOMEM;
	/* XN_FLAG_RFC2253 escapes control and non-ASCII bytes (\C3\A9), so the
	 * text is printable ASCII whatever the certificate holds. */
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		r = -EIO;
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len < 0 || (len > 0 && !data)) {
		r = -EIO;
		goto out;
	}
	subject_copy(buf, size, data ? data : "", (size_t)len);
out:
	BIO_free(bio);
	return r;
}

static int subject_rfc2253(X509 *x, char *buf, size_t size)
{
	return name_rfc2253(X509_get_subject_name(x), buf, size);
}

int mm_ca_check(const char *pem, time_t now, struct mm_ca_info *ret, const char *field,
		struct mm_err *err)
{
	struct mm_ca_info info = { 0 };
	struct tm nb_tm, na_tm;
	char date[64];
	X509 *x = NULL;
	size_t len;
	int r;

	/* Start from an empty queue so the PEM reasons read back are ours. */
	ERR_clear_error();

	len = pem ? strnlen(pem, CA_PEM_MAX + 1) : 0;
	if (len == 0) {
		r = mm_err_set(err, MM_ERR_INVALID, field, "not a PEM certificate: the value is empty");
		goto out;
	}
	if (len > CA_PEM_MAX) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "is larger than %d bytes; a CA certificate is a few kilobytes",
			       CA_PEM_MAX);
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if (binary_byte((unsigned char)pem[i])) {
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "is binary data, not PEM text (a DER certificate? `openssl x509 -inform DER -in FILE` prints its PEM; mmtrustctl converts DER files itself)");
			goto out;
		}
	}
	r = pem_read_one_cert(pem, len, &x, field, err);
	if (r < 0)
		goto out;
	r = check_nothing_around(pem, len, field, err);
	if (r < 0)
		goto out;
	r = check_is_ca(x, field, err);
	if (r < 0)
		goto out;

	if (asn1_time_get(X509_get0_notBefore(x), &info.not_before, &nb_tm) < 0 ||
	    asn1_time_get(X509_get0_notAfter(x), &info.not_after, &na_tm) < 0) {
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "the certificate's validity dates are malformed");
		goto out;
	}
	if ((int64_t)now < info.not_before) {
		tm_format(&nb_tm, date, sizeof(date));
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "the certificate is not yet valid: it is valid from %s", date);
		goto out;
	}
	/* notAfter is the last valid second (RFC 5280), hence '>'. */
	if ((int64_t)now > info.not_after) {
		tm_format(&na_tm, date, sizeof(date));
		r = mm_err_set(err, MM_ERR_INVALID, field, "the certificate expired on %s", date);
		goto out;
	}

	if (fingerprint_sha256(x, info.sha256, sizeof(info.sha256)) < 0 ||
	    subject_rfc2253(x, info.subject, sizeof(info.subject)) < 0) {
		r = mm_err_set(err, MM_ERR_INTERNAL, field,
			       "OpenSSL failed to fingerprint or print the certificate");
		goto out;
	}
	if (ret)
		*ret = info;
	r = 0;
out:
	X509_free(x);
	/* Leave nothing behind for the next OpenSSL user in this thread. */
	ERR_clear_error();
	return r;
}

/* A CRL file: PEM (one "X509 CRL" block) or DER (one CertificateList).
 * *ret the CRL, which the caller frees; -EINVAL naming field. */
static int crl_parse(const void *data, size_t len, X509_CRL **ret, const char *field,
		     struct mm_err *err)
{
	static const char begin[] = "-----BEGIN X509 CRL-----";
	const unsigned char *der = data;
	const char *second;
	X509_CRL *crl = NULL;

	if (!data || len == 0)
		return mm_err_set(err, MM_ERR_INVALID, field, "the CRL file is empty");
	if (len > CRL_MAX)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "the CRL file is %zu bytes, larger than %d bytes: charon takes "
				  "no more over VICI (convert it to DER, or let charon fetch it "
				  "from the certificates' CRL URI)", len, CRL_MAX);
	if (len > 10 && (second = memmem(data, len, begin, sizeof(begin) - 1))) {
		BIO *bio;

		/* charon gets the whole file: what is checked must be all of it. */
		second += sizeof(begin) - 1;
		if (memmem(second, len - (size_t)(second - (const char *)data), begin,
			   sizeof(begin) - 1))
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "the file holds two or more CRLs: one CRL per file");
		bio = BIO_new_mem_buf(data, (int)len);
		crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	} else {
		crl = d2i_X509_CRL(NULL, &der, (long)len);
		if (crl && der != (const unsigned char *)data + len) {
			X509_CRL_free(crl);
			crl = NULL;
		}
	}
	ERR_clear_error();
	if (!crl)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "is not a CRL (neither a PEM 'X509 CRL' block nor one DER "
				  "CertificateList)");
	*ret = crl;
	return 0;
}

int mm_crl_check(const void *data, size_t len, struct mm_crl_info *ret, const char *field,
		 struct mm_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct mm_crl_info info = { 0 };
	STACK_OF(X509_REVOKED) *revoked;
	X509_CRL *crl = NULL;
	struct tm tm;
	int r;

	r = crl_parse(data, len, &crl, field, err);
	if (r < 0)
		return r;
	if (asn1_time_get(X509_CRL_get0_lastUpdate(crl), &info.this_update, &tm) < 0) {
		r = mm_err_set(err, MM_ERR_INVALID, field, "the CRL's thisUpdate does not parse");
		goto out;
	}
	if (X509_CRL_get0_nextUpdate(crl) &&
	    asn1_time_get(X509_CRL_get0_nextUpdate(crl), &info.next_update, &tm) < 0) {
		r = mm_err_set(err, MM_ERR_INVALID, field, "the CRL's nextUpdate does not parse");
		goto out;
	}
	if (name_rfc2253(X509_CRL_get_issuer(crl), info.issuer, sizeof(info.issuer)) < 0 ||
	    !EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) ||
	    hex_colon(md, n, info.sha256, sizeof(info.sha256)) < 0) {
		r = mm_err_set(err, MM_ERR_INTERNAL, field, "cannot read the CRL's issuer or digest");
		goto out;
	}
	revoked = X509_CRL_get_REVOKED(crl);
	info.n_revoked = revoked ? sk_X509_REVOKED_num(revoked) : 0;
	*ret = info;
out:
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int mm_crl_current(const struct mm_crl_info *info, time_t now, const char *field,
		   struct mm_err *err)
{
	time_t t = (time_t)info->next_update;
	struct tm tm;
	char date[64];

	if (!info->next_update || (int64_t)now <= info->next_update)
		return 0;
	if (gmtime_r(&t, &tm))
		tm_format(&tm, date, sizeof(date));
	else
		snprintf(date, sizeof(date), "%" PRId64, info->next_update);
	return mm_err_set(err, MM_ERR_INVALID, field,
			  "the CRL's nextUpdate %s is in the past: under strict every certificate "
			  "of the partner would be refused, under ifuri revocations since then "
			  "are missed", date);
}

int mm_crl_issued_by(const void *data, size_t len, const char *const *ca_pems, size_t n_cas,
		     const char *field, struct mm_err *err)
{
	char issuer[256], subject[256], names[600] = "";
	const char *mismatch = NULL;
	X509_CRL *crl = NULL;
	int r;

	r = crl_parse(data, len, &crl, field, err);
	if (r < 0)
		return r;
	if (name_rfc2253(X509_CRL_get_issuer(crl), issuer, sizeof(issuer)) < 0) {
		r = mm_err_set(err, MM_ERR_INTERNAL, field, "cannot read the CRL's issuer");
		goto out;
	}
	r = -EINVAL;
	for (size_t i = 0; i < n_cas && r < 0; i++) {
		BIO *bio = BIO_new_mem_buf(ca_pems[i], -1);
		X509 *ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		EVP_PKEY *key = ca ? X509_get0_pubkey(ca) : NULL;

		BIO_free(bio);
		if (ca && name_rfc2253(X509_get_subject_name(ca), subject, sizeof(subject)) == 0) {
			size_t l = strlen(names);

			snprintf(names + l, sizeof(names) - l, "%s%s", l ? "; " : "", subject);
			if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0) {
				if (key && X509_CRL_verify(crl, key) == 1)
					r = 0;
				else if (!mismatch)
					mismatch = ca_pems[i];
			}
		}
		X509_free(ca);
	}
	if (r < 0 && mismatch)
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "the CRL's signature does not verify with CA %s (the issuer's name, "
			       "another key): not the partner's CA's CRL", issuer);
	else if (r < 0)
		r = mm_err_set(err, MM_ERR_INVALID, field,
			       "the CRL is issued by %s, not by the partner's CA(s) %s", issuer,
			       names[0] ? names : "(none readable)");
out:
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

/* Whether `now` revokes a serial `old` did not.  The issuer is the same
 * (one CRL per file, checked against the partner's CA), so serials alone
 * say it; another issuer makes every entry new. */
int mm_crl_revokes_more(const void *old, size_t old_len, const void *now, size_t now_len)
{
	STACK_OF(X509_REVOKED) *revoked;
	X509_CRL *a = NULL, *b = NULL;
	struct mm_err err = { 0 };
	int r;

	if (crl_parse(old, old_len, &a, "", &err) < 0 || crl_parse(now, now_len, &b, "", &err) < 0) {
		r = -EINVAL;
		goto out;
	}
	revoked = X509_CRL_get_REVOKED(b);
	r = 0;
	for (int i = 0; revoked && i < sk_X509_REVOKED_num(revoked) && !r; i++) {
		X509_REVOKED *rv = sk_X509_REVOKED_value(revoked, i), *found = NULL;

		r = X509_NAME_cmp(X509_CRL_get_issuer(a), X509_CRL_get_issuer(b)) != 0 ||
		    X509_CRL_get0_by_serial(a, &found,
					    (ASN1_INTEGER *)X509_REVOKED_get0_serialNumber(rv)) != 1;
	}
out:
	X509_CRL_free(a);
	X509_CRL_free(b);
	ERR_clear_error();
	return r;
}
