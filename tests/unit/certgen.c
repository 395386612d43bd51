#include "certgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

enum certgen_kind {
	CERTGEN_CA,
	CERTGEN_LEAF,
	CERTGEN_NOBC,
};

#define LEAF_NOT_BEFORE (-3600L)
#define LEAF_NOT_AFTER  (30L * 86400L)

static char *bio_to_string(BIO *bio)
{
	char *data = NULL, *s;
	long len;

	len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data)
		return NULL;
	s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	return s;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	int ok;

	/* issuer == subject: the certificates are self-signed, and the
	 * subjectKeyIdentifier "hash" needs the public key already set. */
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok;

	/* Top bit set: always 8 bytes and never zero. */
	ok = bn && BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
	     BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_extensions(X509 *x, enum certgen_kind kind, const char *san_dns)
{
	char san[300];

	switch (kind) {
	case CERTGEN_CA:
		return add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
		       add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
		       add_ext(x, NID_subject_key_identifier, "hash") < 0 ? -1 : 0;
	case CERTGEN_LEAF:
		if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		    add_ext(x, NID_key_usage, "critical,digitalSignature") < 0)
			return -1;
		if (!san_dns)
			return 0;
		if ((size_t)snprintf(san, sizeof(san), "DNS:%s", san_dns) >= sizeof(san))
			return -1;
		return add_ext(x, NID_subject_alt_name, san);
	case CERTGEN_NOBC:
		return add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	return -1;
}

static char *cert_pem(enum certgen_kind kind, const char *cn, long not_before_s,
		      long not_after_s, const char *san_dns, char **ret_key)
{
	EVP_PKEY *key = NULL;
	X509_NAME *name;
	X509 *x = NULL;
	BIO *bio = NULL;
	char *pem = NULL;

	if (!cn)
		goto out;
	key = EVP_EC_gen("P-256");
	x = X509_new();
	if (!key || !x)
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) < 0 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), not_before_s) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), not_after_s) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key))
		goto out;
	if (add_extensions(x, kind, san_dns) < 0)
		goto out;
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, x))
		goto out;
	pem = bio_to_string(bio);
	if (pem && ret_key) {
		BIO *kb = BIO_new(BIO_s_mem());

		*ret_key = kb && PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL)
				   ? bio_to_string(kb)
				   : NULL;
		BIO_free(kb);
		if (!*ret_key) {
			free(pem);
			pem = NULL;
		}
	}
out:
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return pem;
}

char *certgen_ca_pem(const char *cn, long not_before_offset_s, long not_after_offset_s)
{
	return cert_pem(CERTGEN_CA, cn, not_before_offset_s, not_after_offset_s, NULL, NULL);
}

char *certgen_ca_key_pem(const char *cn, char **ret_key_pem)
{
	return cert_pem(CERTGEN_CA, cn, -60, 30L * 86400L, NULL, ret_key_pem);
}

char *certgen_leaf_pem(const char *cn, const char *san_dns)
{
	return cert_pem(CERTGEN_LEAF, cn, LEAF_NOT_BEFORE, LEAF_NOT_AFTER, san_dns, NULL);
}

char *certgen_nobc_pem(const char *cn)
{
	return cert_pem(CERTGEN_NOBC, cn, LEAF_NOT_BEFORE, LEAF_NOT_AFTER, NULL, NULL);
}

char *certgen_key_pem(void)
{
	EVP_PKEY *key;
	BIO *bio = NULL;
	char *pem = NULL;

	key = EVP_EC_gen("P-256");
	if (!key)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	pem = bio_to_string(bio);
out:
	BIO_free(bio);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return pem;
}

/* A CRL of issuer name, signed by key, revoking serials[0..n). */
static char *crl_make(const X509_NAME *name, EVP_PKEY *key, const long *serials, int n,
		      long next_update_offset_s, long this_update_offset_s)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = NULL;
	BIO *bio = NULL;
	char *pem = NULL;

	if (!key || !crl || !name || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, name))
		goto out;
	t = X509_gmtime_adj(NULL, this_update_offset_s);
	if (!t || !X509_CRL_set1_lastUpdate(crl, t))
		goto out;
	for (int i = 0; i < n; i++) {
		X509_REVOKED *rv = X509_REVOKED_new();
		ASN1_INTEGER *serial = ASN1_INTEGER_new();

		if (!rv || !serial || !ASN1_INTEGER_set(serial, serials[i]) ||
		    !X509_REVOKED_set_serialNumber(rv, serial) ||
		    !X509_REVOKED_set_revocationDate(rv, t) || !X509_CRL_add0_revoked(crl, rv)) {
			X509_REVOKED_free(rv);
			ASN1_INTEGER_free(serial);
			goto out;
		}
		ASN1_INTEGER_free(serial);
	}
	if (next_update_offset_s && (!X509_gmtime_adj(t, next_update_offset_s) ||
				     !X509_CRL_set1_nextUpdate(crl, t)))
		goto out;
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, key, EVP_sha256()))
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509_CRL(bio, crl))
		goto out;
	pem = bio_to_string(bio);
out:
	BIO_free(bio);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	ERR_clear_error();
	return pem;
}

char *certgen_crl_pem(const char *issuer_cn, int n_revoked, long next_update_offset_s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_NAME *name = X509_NAME_new();
	long serials[64];
	char *pem = NULL;

	if (!issuer_cn || n_revoked < 0 || n_revoked > 64 || !name ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)issuer_cn, -1, -1, 0))
		goto out;
	for (int i = 0; i < n_revoked; i++)
		serials[i] = 1000 + i;
	pem = crl_make(name, key, serials, n_revoked, next_update_offset_s, -60);
out:
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return pem;
}

char *certgen_crl_signed_pem(const char *ca_pem, const char *key_pem, const long *serials,
			     int n, long next_update_offset_s)
{
	BIO *cb = BIO_new_mem_buf(ca_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *ca = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	/* An expired CRL: thisUpdate before its nextUpdate. */
	long this_update = next_update_offset_s < 0 ? next_update_offset_s - 3600 : -60;
	char *pem = NULL;

	if (ca && key)
		pem = crl_make(X509_get_subject_name(ca), key, serials, n,
			       next_update_offset_s, this_update);
	X509_free(ca);
	EVP_PKEY_free(key);
	BIO_free(cb);
	BIO_free(kb);
	ERR_clear_error();
	return pem;
}
