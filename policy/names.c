/* The names of a partner's enumerations and the rules of domain names
 * (partner.h), apart from the rest of partner.c so that libmmtrust's
 * snapshot reader uses exactly these without the CA and JSON code. */
#include "partner.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[MM_KIND__MAX] = {
	[MM_KIND_IMS] = "ims",
	[MM_KIND_NON_IMS] = "non-ims",
};
static const char *const esp_names[MM_ESP__MAX] = {
	[MM_ESP_ENCRYPT] = "encrypt",
	[MM_ESP_INTEGRITY_ONLY] = "integrity-only",
};
static const char *const path_names[MM_PATH__MAX] = {
	[MM_PATH_TUNNEL] = "tunnel",
	[MM_PATH_SEG] = "seg",
};

static const char *const revocation_names[MM_REV__MAX] = {
	[MM_REV_IFURI] = "ifuri",
	[MM_REV_STRICT] = "strict",
	[MM_REV_RELAXED] = "relaxed",
};

static int name_lookup(const char *const *names, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -EINVAL;
}

const char *mm_kind_name(enum mm_kind k) { return k < MM_KIND__MAX ? kind_names[k] : "?"; }

const char *mm_kinds_setting(unsigned kinds)
{
	switch (kinds & MM_KINDS_ALL) {
	case MM_KIND_BIT(MM_KIND_IMS): return "cscf_ims";
	case MM_KIND_BIT(MM_KIND_NON_IMS): return "cscf_non_ims";
	default: return "cscf";
	}
}
const char *mm_esp_name(enum mm_esp e) { return e < MM_ESP__MAX ? esp_names[e] : "?"; }
const char *mm_path_name(enum mm_path p) { return p < MM_PATH__MAX ? path_names[p] : "?"; }
const char *mm_revocation_name(enum mm_revocation r)
{
	return r < MM_REV__MAX ? revocation_names[r] : "?";
}

#define DEFINE_PARSE(fn, type, names, max)           \
	int fn(const char *s, type *ret)              \
	{                                             \
		int i = name_lookup(names, max, s);   \
		if (i < 0)                            \
			return i;                     \
		*ret = i;                             \
		return 0;                             \
	}
DEFINE_PARSE(mm_kind_parse, enum mm_kind, kind_names, MM_KIND__MAX)
DEFINE_PARSE(mm_esp_parse, enum mm_esp, esp_names, MM_ESP__MAX)
DEFINE_PARSE(mm_path_parse, enum mm_path, path_names, MM_PATH__MAX)
DEFINE_PARSE(mm_revocation_parse, enum mm_revocation, revocation_names, MM_REV__MAX)

int mm_domain_canon(const char *in, char out[MM_DOMAIN_MAX + 1], const char *field,
		    struct mm_err *err)
{
	char buf[MM_DOMAIN_MAX + 1];
	size_t len, label = 0, labels = 1, i;
	bool digits_only = true;

	if (!in || !*in)
		return mm_err_set(err, MM_ERR_INVALID, field, "domain is empty");
	len = strlen(in);
	if (len > 1 && in[len - 1] == '.')
		len--;  /* absolute form: "example.net." names "example.net" */
	if (len > MM_DOMAIN_MAX)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "domain is %zu characters long; at most %d are allowed",
				  len, MM_DOMAIN_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = in[i];

		if (c == '.') {
			if (label == 0)
				return mm_err_set(err, MM_ERR_INVALID, field,
						  "'%s' has an empty label", in);
			if (buf[i - 1] == '-')
				return mm_err_set(err, MM_ERR_INVALID, field,
						  "'%s': a label must not end with '-'", in);
			label = 0;
			labels++;
			digits_only = true;
			buf[i] = '.';
			continue;
		}
		if (!isascii(c) || !(isalnum(c) || c == '-'))
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s' contains '%c': only letters, digits, '-' and '.' are allowed",
					  in, isprint(c) ? c : '?');
		if (c == '-' && label == 0)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s': a label must not start with '-'", in);
		if (++label > 63)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "'%s' has a label longer than 63 characters", in);
		if (!isdigit(c))
			digits_only = false;
		buf[i] = tolower(c);
	}
	if (label == 0)
		return mm_err_set(err, MM_ERR_INVALID, field, "'%s' has an empty label", in);
	if (buf[len - 1] == '-')
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s': a label must not end with '-'", in);
	if (labels < 2)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not fully qualified (at least two labels)", in);
	if (digits_only)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s': the top-level label must not be all digits", in);
	buf[len] = '\0';
	memcpy(out, buf, len + 1);
	return 0;
}

