/* mm_ca_check(): the partner CA certificate, against certificates made by
 * certgen and the `openssl` command as the reference for the fingerprint. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certgen.h"
#include "policy/ca.h"
#include "tests/unit/testmain.h"

#define FIELD "partners.acme.ca"
#define DAY 86400L

/* Refused with -EINVAL, naming FIELD, with `reason` in the message, *ret
 * untouched and no OpenSSL error left in the queue. */
#define assert_refused(pem, now, reason) assert_refused_at(__LINE__, pem, now, reason)

static void assert_refused_at(int line, const char *pem, time_t now, const char *reason)
{
	struct mm_err err = { 0 };
	struct mm_ca_info info, sentinel;
	int r;

	memset(&sentinel, 0xa5, sizeof(sentinel));
	info = sentinel;
	r = mm_ca_check(pem, now, &info, FIELD, &err);
	ck_assert_msg(r == -EINVAL, "line %d: returned %d, msg '%s'", line, r, err.msg);
	ck_assert_msg(err.code == MM_ERR_INVALID, "line %d: code %d", line, err.code);
	ck_assert_msg(strcmp(err.field, FIELD) == 0, "line %d: field '%s'", line, err.field);
	ck_assert_msg(strstr(err.msg, reason), "line %d: msg '%s' does not say '%s'", line,
		      err.msg, reason);
	ck_assert_msg(memcmp(&info, &sentinel, sizeof(info)) == 0, "line %d: ret written", line);
	ck_assert_msg(ERR_peek_error() == 0, "line %d: OpenSSL error queue not empty", line);
}

static void check_ok(const char *pem, time_t now, struct mm_ca_info *info)
{
	struct mm_err err = { 0 };
	int r;

	r = mm_ca_check(pem, now, info, FIELD, &err);
	ck_assert_msg(r == 0, "refused: %s: %s", err.field, err.msg);
	ck_assert_int_eq(err.code, MM_ERR_NONE);
	ck_assert_uint_eq(ERR_peek_error(), 0);
}

static void fmt_utc(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
	ck_assert_uint_ne(strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm), 0);
}

/* The reference: what `openssl x509 -noout -fingerprint -sha256` prints
 * after the '=' ("sha256 Fingerprint=AB:CD:..."). */
static void openssl_cli_fingerprint(const char *pem, char *buf, size_t size)
{
	char path[] = "/tmp/test_ca.XXXXXX", cmd[256], line[256], *eq;
	size_t len = strlen(pem);
	FILE *p;
	int fd;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, pem, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "openssl x509 -noout -fingerprint -sha256 -in %s", path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
	ck_assert_int_eq(pclose(p), 0);
	unlink(path);
	line[strcspn(line, "\r\n")] = '\0';
	eq = strchr(line, '=');
	ck_assert_ptr_nonnull(eq);
	snprintf(buf, size, "%s", eq + 1);
}

/* Replace the first `from` in s with `to`; caller frees. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *out;

	ck_assert_ptr_nonnull(at);
	out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
	ck_assert_ptr_nonnull(out);
	sprintf(out, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	return out;
}

static char *concat(const char *a, const char *b)
{
	char *out = malloc(strlen(a) + strlen(b) + 1);

	ck_assert_ptr_nonnull(out);
	strcpy(out, a);
	strcat(out, b);
	return out;
}

START_TEST(test_valid_ca)
{
	struct mm_ca_info info;
	char cli[128];
	time_t t0, t1;
	char *pem;

	t0 = time(NULL);
	pem = certgen_ca_pem("mmtrust test CA", -60, 30 * DAY);
	t1 = time(NULL);
	ck_assert_ptr_nonnull(pem);

	check_ok(pem, time(NULL), &info);
	openssl_cli_fingerprint(pem, cli, sizeof(cli));
	ck_assert_str_eq(info.sha256, cli);
	ck_assert_uint_eq(strlen(info.sha256), 95);
	ck_assert_str_eq(info.subject, "CN=mmtrust test CA");
	ck_assert_int_ge(info.not_before, t0 - 60);
	ck_assert_int_le(info.not_before, t1 - 60);
	ck_assert_int_ge(info.not_after, t0 + 30 * DAY);
	ck_assert_int_le(info.not_after, t1 + 30 * DAY);

	/* err and ret are optional */
	ck_assert_int_eq(mm_ca_check(pem, time(NULL), NULL, FIELD, NULL), 0);
	free(pem);
}
END_TEST

START_TEST(test_blanks_around_block)
{
	struct mm_ca_info info;
	char *pem, *padded, *crlf;

	pem = certgen_ca_pem("blank CA", -60, DAY);
	ck_assert_ptr_nonnull(pem);
	padded = concat("\n  \t\r\n", pem);
	free(pem);
	pem = concat(padded, "\n\n  \r\n");
	check_ok(pem, time(NULL), &info);
	ck_assert_str_eq(info.subject, "CN=blank CA");
	/* a file written on Windows */
	crlf = replace(pem, "-----\n", "-----\r\n");
	check_ok(crlf, time(NULL), &info);
	free(crlf);
	free(padded);
	free(pem);
}
END_TEST

/* Whatever surrounds the block would be stored, exported and sent to
 * charon with it: refused, before and after alike. */
START_TEST(test_text_around_block_refused)
{
	char *pem = certgen_ca_pem("text CA", -60, DAY), *with_text;

	ck_assert_ptr_nonnull(pem);
	/* what `openssl x509 -subject -issuer` prints before the block */
	with_text = concat("subject=CN = text CA\nissuer=CN = text CA\n", pem);
	assert_refused(with_text, time(NULL), "text before the '-----BEGIN CERTIFICATE-----' line");
	free(with_text);
	with_text = concat(pem, "this line was pasted too\n");
	assert_refused(with_text, time(NULL), "text after the '-----END CERTIFICATE-----' line");
	free(with_text);
	with_text = concat(pem, "\n\n   x");
	assert_refused(with_text, time(NULL), "text after");
	free(with_text);
	/* on the END line itself */
	with_text = replace(pem, "-----END CERTIFICATE-----", "-----END CERTIFICATE----- x");
	assert_refused(with_text, time(NULL), "not a PEM certificate");
	free(with_text);
	free(pem);
}
END_TEST

START_TEST(test_pem_headers_refused)
{
	char *pem = certgen_ca_pem("header CA", -60, DAY), *with_header;

	ck_assert_ptr_nonnull(pem);
	with_header = replace(pem, "-----BEGIN CERTIFICATE-----\n",
			      "-----BEGIN CERTIFICATE-----\nComment: hello\n\n");
	assert_refused(with_header, time(NULL), "PEM headers");
	free(with_header);
	free(pem);
}
END_TEST

/* The certificate's DER bytes (NUL-terminated for the call; DER holds
 * control bytes long before any NUL, so the prefix is already binary). */
static unsigned char *der_of(const char *pem, int *ret_len)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	unsigned char *der, *p;
	int n;

	ck_assert_ptr_nonnull(x);
	n = i2d_X509(x, NULL);
	ck_assert_int_gt(n, 0);
	der = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(der);
	p = der;
	ck_assert_int_eq(i2d_X509(x, &p), n);
	X509_free(x);
	BIO_free(bio);
	*ret_len = n;
	return der;
}

START_TEST(test_binary_refused)
{
	char *pem = certgen_ca_pem("DER CA", -60, DAY), *garbage;
	unsigned char *der;
	int n;

	ck_assert_ptr_nonnull(pem);
	der = der_of(pem, &n);
	assert_refused((const char *)der, time(NULL), "is binary data, not PEM text");
	assert_refused((const char *)der, time(NULL), "DER");
	assert_refused("\x01\x02\x03\xff\xfe garbage", time(NULL), "is binary data");
	/* a control byte inside an otherwise good block */
	garbage = replace(pem, "-----\n", "-----\n\x1b");
	assert_refused(garbage, time(NULL), "is binary data");
	free(garbage);
	free(der);
	free(pem);
}
END_TEST

START_TEST(test_subject_escaped)
{
	struct mm_ca_info info;
	char *pem = certgen_ca_pem("Acme, Inc.+R&D", -60, DAY);

	ck_assert_ptr_nonnull(pem);
	check_ok(pem, time(NULL), &info);
	ck_assert_str_eq(info.subject, "CN=Acme\\, Inc.\\+R&D");
	free(pem);
}
END_TEST

START_TEST(test_subject_truncated)
{
	struct mm_ca_info info;
	char cn[64 * 2 + 1] = "";
	size_t len, body;
	char *pem;

	/* 64 x U+00E9 prints as 64 x "\C3\A9": 387 bytes, more than fits. */
	for (int i = 0; i < 64; i++)
		strcat(cn, "\xc3\xa9");
	pem = certgen_ca_pem(cn, -60, DAY);
	ck_assert_ptr_nonnull(pem);
	check_ok(pem, time(NULL), &info);
	len = strlen(info.subject);
	ck_assert_uint_lt(len, sizeof(info.subject));
	ck_assert_uint_gt(len, sizeof(info.subject) - 10);
	ck_assert_str_eq(info.subject + len - 3, "...");
	ck_assert_int_eq(strncmp(info.subject, "CN=\\C3\\A9", 9), 0);
	/* cut between escapes, never inside one */
	body = len - strlen("CN=") - strlen("...");
	ck_assert_uint_eq(body % strlen("\\C3\\A9"), 0);
	free(pem);
}
END_TEST

START_TEST(test_validity_bounds)
{
	struct mm_ca_info info;
	char date[64], want[96];
	char *pem;

	pem = certgen_ca_pem("bounds CA", -60, 3600);
	ck_assert_ptr_nonnull(pem);
	check_ok(pem, time(NULL), &info);

	/* both ends are inclusive */
	check_ok(pem, (time_t)info.not_before, &info);
	check_ok(pem, (time_t)info.not_after, &info);

	fmt_utc(info.not_after, date, sizeof(date));
	snprintf(want, sizeof(want), "expired on %s", date);
	assert_refused(pem, (time_t)info.not_after + 1, want);

	fmt_utc(info.not_before, date, sizeof(date));
	assert_refused(pem, (time_t)info.not_before - 1, "not yet valid");
	assert_refused(pem, (time_t)info.not_before - 1, date);
	free(pem);
}
END_TEST

START_TEST(test_expired)
{
	char *pem = certgen_ca_pem("old CA", -2 * DAY, -DAY);

	ck_assert_ptr_nonnull(pem);
	assert_refused(pem, time(NULL), "expired on ");
	assert_refused(pem, time(NULL), " UTC");
	free(pem);
}
END_TEST

START_TEST(test_not_yet_valid)
{
	char *pem = certgen_ca_pem("future CA", DAY, 2 * DAY);

	ck_assert_ptr_nonnull(pem);
	assert_refused(pem, time(NULL), "not yet valid");
	free(pem);
}
END_TEST

START_TEST(test_leaf_refused)
{
	char *pem = certgen_leaf_pem("vpn.acme.example", "vpn.acme.example");

	ck_assert_ptr_nonnull(pem);
	assert_refused(pem, time(NULL), "not a CA");
	assert_refused(pem, time(NULL), "CA:FALSE");
	free(pem);
}
END_TEST

START_TEST(test_no_basic_constraints_refused)
{
	char *pem = certgen_nobc_pem("no bc");
	BIO *bio;
	X509 *x;

	ck_assert_ptr_nonnull(pem);
	/* OpenSSL alone would take it for a CA: keyUsage keyCertSign, no bc */
	bio = BIO_new_mem_buf(pem, -1);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_check_ca(x), 4);
	X509_free(x);
	BIO_free(bio);

	assert_refused(pem, time(NULL), "not a CA");
	assert_refused(pem, time(NULL), "no basicConstraints");
	free(pem);
}
END_TEST

START_TEST(test_not_pem_refused)
{
	assert_refused("", time(NULL), "not a PEM certificate");
	assert_refused(NULL, time(NULL), "not a PEM certificate");
	assert_refused("hello, I am not a certificate\n", time(NULL), "not a PEM certificate");
	assert_refused("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
		       time(NULL), "not a PEM certificate");
	assert_refused("-----BEGIN CERTIFICATE-----\nMIIB\n", time(NULL),
		       "not a PEM certificate");
	assert_refused(" \n\t\r\n", time(NULL), "no '-----BEGIN CERTIFICATE-----' block found");
	/* err is optional on refusal too */
	ck_assert_int_eq(mm_ca_check("garbage", time(NULL), NULL, FIELD, NULL), -EINVAL);
}
END_TEST

START_TEST(test_private_key_refused)
{
	char *key = certgen_key_pem(), *ca = certgen_ca_pem("CA", -60, DAY);
	char *key_ca, *ca_key;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(ca);
	ck_assert_ptr_nonnull(strstr(key, "-----BEGIN PRIVATE KEY-----"));
	assert_refused(key, time(NULL), "private key");

	/* PEM_read_bio_X509() would skip the key and accept these */
	key_ca = concat(key, ca);
	ca_key = concat(ca, key);
	assert_refused(key_ca, time(NULL), "private key");
	assert_refused(ca_key, time(NULL), "private key");
	free(key_ca);
	free(ca_key);
	free(ca);
	free(key);
}
END_TEST

START_TEST(test_other_pem_refused)
{
	char *key = certgen_key_pem(), *pub, *mislabelled;

	ck_assert_ptr_nonnull(key);
	mislabelled = replace(key, "BEGIN PRIVATE KEY", "BEGIN PUBLIC KEY");
	pub = replace(mislabelled, "END PRIVATE KEY", "END PUBLIC KEY");
	free(mislabelled);
	assert_refused(pub, time(NULL), "'PUBLIC KEY' block, not a certificate");

	/* valid PEM, labelled CERTIFICATE, but the DER is a key */
	free(pub);
	pub = replace(key, "BEGIN PRIVATE KEY", "BEGIN CERTIFICATE");
	mislabelled = replace(pub, "END PRIVATE KEY", "END CERTIFICATE");
	assert_refused(mislabelled, time(NULL), "not a valid X.509 certificate");
	free(mislabelled);
	free(pub);
	free(key);
}
END_TEST

START_TEST(test_two_certs_refused)
{
	char *a = certgen_ca_pem("A", -60, DAY), *b = certgen_ca_pem("B", -60, DAY);
	char *ab, *aab;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ab = concat(a, b);
	aab = concat(a, ab);
	assert_refused(ab, time(NULL), "holds 2 certificates");
	assert_refused(aab, time(NULL), "holds 3 certificates");
	free(aab);
	free(ab);
	free(b);
	free(a);
}
END_TEST

START_TEST(test_error_queue_cleared)
{
	char *pem = certgen_ca_pem("queue CA", -60, DAY);
	struct mm_ca_info info;

	ck_assert_ptr_nonnull(pem);
	/* a stale error from elsewhere must not change the verdict */
	ERR_raise(ERR_LIB_PEM, PEM_R_BAD_BASE64_DECODE);
	check_ok(pem, time(NULL), &info);
	free(pem);
}
END_TEST

/* mm_crl_check: PEM and DER of the same CRL read alike (issuer, times,
 * entries, the file's digest against `openssl dgst` style of our own);
 * what is not a CRL is refused. */
START_TEST(test_crl)
{
	char *pem = certgen_crl_pem("Partner CA", 3, DAY), *cert = certgen_ca_pem("CA", -60, DAY);
	struct mm_crl_info a, b;
	struct mm_err err = { 0 };
	unsigned char *der = NULL;
	X509_CRL *crl;
	BIO *bio;
	int n;
	char *big;

	ck_assert(pem && cert);
	ck_assert_int_eq(mm_crl_check(pem, strlen(pem), &a, "crls[0]", &err), 0);
	ck_assert_str_eq(a.issuer, "CN=Partner CA");
	ck_assert_int_eq(a.n_revoked, 3);
	ck_assert(a.this_update <= time(NULL) && a.this_update > time(NULL) - 600);
	ck_assert(a.next_update > time(NULL) + DAY - 600 && a.next_update <= time(NULL) + DAY);
	ck_assert_uint_eq(strlen(a.sha256), 95);
	bio = BIO_new_mem_buf(pem, -1);
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ck_assert_ptr_nonnull(crl);
	n = i2d_X509_CRL(crl, &der);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(mm_crl_check(der, (size_t)n, &b, "crls[0]", &err), 0);
	ck_assert_str_eq(b.issuer, a.issuer);
	ck_assert_int_eq(b.this_update, a.this_update);
	ck_assert_int_eq(b.next_update, a.next_update);
	ck_assert_int_eq(b.n_revoked, 3);
	ck_assert_str_ne(b.sha256, a.sha256);  /* of the bytes, and they differ */
	/* DER with a byte too many is not one CertificateList */
	big = calloc(1, (size_t)n + 1);
	memcpy(big, der, (size_t)n);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_check(big, (size_t)n + 1, &b, "crls[0]", &err), -EINVAL);
	free(big);
	ck_assert_str_eq(err.field, "crls[0]");
	ck_assert_msg(strstr(err.msg, "is not a CRL"), "%s", err.msg);
	/* a certificate is not a CRL */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_check(cert, strlen(cert), &b, "crls[1]", &err), -EINVAL);
	ck_assert_str_eq(err.field, "crls[1]");
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_check("", 0, &b, "crls[0]", &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "empty"), "%s", err.msg);
	/* over what VICI carries */
	big = malloc(70000);
	memset(big, '\n', 70000);
	memcpy(big + 69000, pem, strlen(pem) < 1000 ? strlen(pem) : 999);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_check(big, 70000, &b, "crls[0]", &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "65535"), "%s", err.msg);
	ck_assert_int_eq(ERR_peek_error(), 0);
	free(big);
	X509_CRL_free(crl);
	OPENSSL_free(der);
	free(pem);
	free(cert);
}
END_TEST

/* mm_crl_check: a PEM file with two CRLs is refused (charon would get both
 * while only the first was checked). */
START_TEST(test_crl_two_blocks_refused)
{
	char *a = certgen_crl_pem("Partner CA", 1, DAY), *b = certgen_crl_pem("Partner CA", 2, DAY);
	struct mm_crl_info info;
	struct mm_err err = { 0 };
	char both[8192];

	ck_assert(a && b);
	snprintf(both, sizeof(both), "%s%s", a, b);
	ck_assert_int_eq(mm_crl_check(both, strlen(both), &info, "crls[2]", &err), -EINVAL);
	ck_assert_str_eq(err.field, "crls[2]");
	ck_assert_msg(strstr(err.msg, "one CRL per file"), "%s", err.msg);
	ck_assert_int_eq(ERR_peek_error(), 0);
	free(a);
	free(b);
}
END_TEST

/* mm_crl_issued_by: the issuer name must be a CA's subject and the
 * signature must verify with that CA's key; either CA of a rollover does. */
START_TEST(test_crl_issued_by)
{
	char *ka = NULL, *kb = NULL, *kc = NULL;
	char *ca = certgen_ca_key_pem("Partner CA", &ka), *cb = certgen_ca_key_pem("New CA", &kb);
	/* same name as ca, another key: an impostor */
	char *cc = certgen_ca_key_pem("Partner CA", &kc);
	long serials[] = { 7, 9 };
	char *crl_a = certgen_crl_signed_pem(ca, ka, serials, 2, DAY);
	char *crl_b = certgen_crl_signed_pem(cb, kb, serials, 2, DAY);
	char *crl_c = certgen_crl_signed_pem(cc, kc, serials, 2, DAY);
	char *other = certgen_crl_pem("Unrelated CA", 1, DAY);
	const char *one[] = { ca }, *two[] = { ca, cb };
	struct mm_err err = { 0 };

	ck_assert(ca && cb && cc && crl_a && crl_b && crl_c && other);
	ck_assert_int_eq(mm_crl_issued_by(crl_a, strlen(crl_a), one, 1, "crls[0]", &err), 0);
	ck_assert_int_eq(mm_crl_issued_by(crl_a, strlen(crl_a), two, 2, "crls[0]", &err), 0);
	ck_assert_int_eq(mm_crl_issued_by(crl_b, strlen(crl_b), two, 2, "crls[0]", &err), 0);
	/* never: a CRL of another issuer */
	ck_assert_int_eq(mm_crl_issued_by(other, strlen(other), two, 2, "crls[1]", &err), -EINVAL);
	ck_assert_str_eq(err.field, "crls[1]");
	ck_assert_msg(strstr(err.msg, "issued by CN=Unrelated CA, not by the partner's CA"),
		      "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "CN=Partner CA") && strstr(err.msg, "CN=New CA"), "%s",
		      err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_issued_by(crl_b, strlen(crl_b), one, 1, "crls[0]", &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "issued by CN=New CA"), "%s", err.msg);
	/* never: the right name with another key */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(mm_crl_issued_by(crl_c, strlen(crl_c), one, 1, "crls[0]", &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "signature does not verify with CA CN=Partner CA"), "%s",
		      err.msg);
	ck_assert_int_eq(ERR_peek_error(), 0);
	free(ca), free(cb), free(cc), free(ka), free(kb), free(kc);
	free(crl_a), free(crl_b), free(crl_c), free(other);
}
END_TEST

/* mm_crl_current: a CRL whose nextUpdate passed is refused; none or in
 * the future is fine. */
START_TEST(test_crl_current)
{
	struct mm_crl_info info = { .this_update = 1000, .next_update = 2000 };
	struct mm_err err = { 0 };

	ck_assert_int_eq(mm_crl_current(&info, 1999, "crls[0]", &err), 0);
	ck_assert_int_eq(mm_crl_current(&info, 2000, "crls[0]", &err), 0);
	ck_assert_int_eq(mm_crl_current(&info, 2001, "crls[3]", &err), -EINVAL);
	ck_assert_str_eq(err.field, "crls[3]");
	ck_assert_msg(strstr(err.msg, "nextUpdate 1970-01-01 00:33:20 UTC is in the past"), "%s",
		      err.msg);
	info.next_update = 0;
	ck_assert_int_eq(mm_crl_current(&info, 1 << 30, "crls[0]", &err), 0);
}
END_TEST

/* mm_crl_revokes_more: only a serial the old CRL lacked counts; a re-signed
 * CRL with the same list (the hourly re-issue) does not. */
START_TEST(test_crl_revokes_more)
{
	char *k = NULL, *ca = certgen_ca_key_pem("Partner CA", &k);
	long s1[] = { 5, 6 }, s2[] = { 6, 5 }, s3[] = { 5, 6, 8 }, s4[] = { 5 };
	char *a = certgen_crl_signed_pem(ca, k, s1, 2, DAY);
	char *same = certgen_crl_signed_pem(ca, k, s2, 2, 2 * DAY);
	char *more = certgen_crl_signed_pem(ca, k, s3, 3, DAY);
	char *fewer = certgen_crl_signed_pem(ca, k, s4, 1, DAY);
	char *empty = certgen_crl_signed_pem(ca, k, NULL, 0, DAY);

	ck_assert(a && same && more && fewer && empty);
	ck_assert_str_ne(a, same);
	ck_assert_int_eq(mm_crl_revokes_more(a, strlen(a), same, strlen(same)), 0);
	ck_assert_int_eq(mm_crl_revokes_more(a, strlen(a), more, strlen(more)), 1);
	ck_assert_int_eq(mm_crl_revokes_more(a, strlen(a), fewer, strlen(fewer)), 0);
	ck_assert_int_eq(mm_crl_revokes_more(fewer, strlen(fewer), a, strlen(a)), 1);
	ck_assert_int_eq(mm_crl_revokes_more(empty, strlen(empty), fewer, strlen(fewer)), 1);
	ck_assert_int_eq(mm_crl_revokes_more(a, strlen(a), empty, strlen(empty)), 0);
	ck_assert_int_lt(mm_crl_revokes_more("junk", 4, a, strlen(a)), 0);
	ck_assert_int_eq(ERR_peek_error(), 0);
	free(ca), free(k), free(a), free(same), free(more), free(fewer), free(empty);
}
END_TEST

static Suite *ca_suite(void)
{
	Suite *s = suite_create("ca");
	TCase *tc = tcase_create("check");

	/* EC key generation under valgrind is slow */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_valid_ca);
	tcase_add_test(tc, test_blanks_around_block);
	tcase_add_test(tc, test_text_around_block_refused);
	tcase_add_test(tc, test_pem_headers_refused);
	tcase_add_test(tc, test_binary_refused);
	tcase_add_test(tc, test_subject_escaped);
	tcase_add_test(tc, test_subject_truncated);
	tcase_add_test(tc, test_validity_bounds);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_not_yet_valid);
	tcase_add_test(tc, test_leaf_refused);
	tcase_add_test(tc, test_no_basic_constraints_refused);
	tcase_add_test(tc, test_not_pem_refused);
	tcase_add_test(tc, test_private_key_refused);
	tcase_add_test(tc, test_other_pem_refused);
	tcase_add_test(tc, test_two_certs_refused);
	tcase_add_test(tc, test_error_queue_cleared);
	tcase_add_test(tc, test_crl);
	tcase_add_test(tc, test_crl_two_blocks_refused);
	tcase_add_test(tc, test_crl_issued_by);
	tcase_add_test(tc, test_crl_current);
	tcase_add_test(tc, test_crl_revokes_more);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(ca_suite());
}
