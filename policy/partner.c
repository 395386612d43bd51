#include "partner.h"
#include "jsonfmt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The names of kinds, ESP modes and paths, and domain names' rules:
 * names.c (libmmtrust reads them without the rest of this file). */
#define PARSE_AS_INT(fn, type, parse)              \
	static int fn(const char *s, int *ret)      \
	{                                           \
		type v;                             \
		int r = parse(s, &v);               \
		if (r == 0)                         \
			*ret = v;                   \
		return r;                           \
	}
PARSE_AS_INT(kind_index, enum mm_kind, mm_kind_parse)
PARSE_AS_INT(esp_index, enum mm_esp, mm_esp_parse)
PARSE_AS_INT(path_index, enum mm_path, mm_path_parse)
PARSE_AS_INT(revocation_index, enum mm_revocation, mm_revocation_parse)

struct mm_partner *mm_partner_new(void)
{
	struct mm_partner *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	p->kind = MM_KIND__MAX;  /* must be given */
	p->esp = MM_ESP_ENCRYPT;
	p->path = MM_PATH_TUNNEL;
	p->enabled = true;
	p->revocation = MM_REV_IFURI;
	return p;
}

/* Atomic: the query thread may drop the last reference of a table (and
 * so of its partners) while the main thread builds the next one. */
struct mm_partner *mm_partner_ref(struct mm_partner *p)
{
	if (p)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

static void cas_clear(struct mm_partner *p)
{
	for (size_t i = 0; i < p->n_cas; i++)
		free(p->cas[i].pem);
	p->n_cas = 0;
}

static void crls_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void partner_free(struct mm_partner *p)
{
	free(p->ranges);
	free(p->gateways);
	cas_clear(p);
	crls_free(p->crls, p->n_crls);
	free(p);
}

void mm_partner_unref(struct mm_partner *p)
{
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		partner_free(p);
}

struct mm_partner *mm_partner_dup(const struct mm_partner *p)
{
	struct mm_partner *d = malloc(sizeof(*d));

	if (!d)
		return NULL;
	*d = *p;
	d->refs = 1;
	d->ranges = malloc(sizeof(*d->ranges) * (p->n_ranges ? p->n_ranges : 1));
	d->gateways = malloc(sizeof(*d->gateways) * (p->n_gateways ? p->n_gateways : 1));
	d->n_cas = 0;
	d->crls = NULL;
	d->n_crls = 0;
	if (!d->ranges || !d->gateways) {
		partner_free(d);
		return NULL;
	}
	for (size_t i = 0; i < p->n_cas; i++) {
		d->cas[i].pem = strdup(p->cas[i].pem);
		if (!d->cas[i].pem) {
			partner_free(d);
			return NULL;
		}
		d->n_cas++;
	}
	if (p->n_crls) {
		d->crls = calloc(p->n_crls, sizeof(*d->crls));
		if (!d->crls) {
			partner_free(d);
			return NULL;
		}
		for (size_t i = 0; i < p->n_crls; i++) {
			d->crls[i] = strdup(p->crls[i]);
			d->n_crls++;
			if (!d->crls[i]) {
				partner_free(d);
				return NULL;
			}
		}
	}
	memcpy(d->ranges, p->ranges, sizeof(*d->ranges) * p->n_ranges);
	memcpy(d->gateways, p->gateways, sizeof(*d->gateways) * p->n_gateways);
	return d;
}

static int prefix_qsort_cmp(const void *a, const void *b)
{
	return mm_prefix_cmp(a, b);
}

/* What a partner's range may not be, alone (docs/admin-protocol.md):
 * all addresses of a family (every CSCF packet would need this one
 * partner's ESP), or anything overlapping a special-purpose block. */
static int range_check(const struct mm_partner *p, const struct mm_prefix *r,
		       const char *field, struct mm_err *err)
{
	const struct mm_special *sp = mm_prefix_special(r);
	char a[MM_ADDR_STRLEN];

	if (r->len == 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "%s of partner %s covers every %s address: all our traffic "
				  "would then need this one partner's ESP", mm_prefix_str(r, a),
				  p->domain, r->addr.family == AF_INET ? "IPv4" : "IPv6");
	if (sp)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "%s of partner %s overlaps the %s block %s: %s",
				  mm_prefix_str(r, a), p->domain, sp->name, sp->text, sp->why);
	return 0;
}

/* What a partner's gateway may not be, alone.  It may lie inside the
 * partner's own ranges (a host that is its own IKE endpoint). */
static int gateway_check(const struct mm_partner *p, const struct mm_addr *g,
			 const char *field, struct mm_err *err)
{
	const struct mm_special *sp = mm_addr_special(g);
	char a[MM_ADDR_STRLEN];

	if (sp)
		return mm_err_set(err, MM_ERR_INVALID, field, "%s of partner %s is %s (%s): %s",
				  mm_addr_str(g, a), p->domain, sp->name, sp->text, sp->why);
	return 0;
}

int mm_partner_check_addresses(const struct mm_partner *p, struct mm_err *err)
{
	char field[32];
	int r = 0;

	for (size_t i = 0; r == 0 && i < p->n_ranges; i++) {
		snprintf(field, sizeof(field), "ranges[%zu]", i);
		r = range_check(p, &p->ranges[i], field, err);
	}
	for (size_t i = 0; r == 0 && i < p->n_gateways; i++) {
		snprintf(field, sizeof(field), "gateways[%zu]", i);
		r = gateway_check(p, &p->gateways[i], field, err);
	}
	return r;
}

/* Ranges are kept sorted so that equality, export and diff are stable; two
 * ranges of the same partner that overlap are refused like any overlap. */
static int ranges_set(struct mm_partner *p, const json_t *arr, struct mm_err *err)
{
	struct mm_prefix *r;
	char field[32], a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN];
	size_t i, n;

	if (!json_is_array(arr))
		return mm_err_set(err, MM_ERR_INVALID, "ranges",
				  "must be a list of CIDR prefixes");
	n = json_array_size(arr);
	if (n == 0)
		return mm_err_set(err, MM_ERR_INVALID, "ranges", "at least one range is required");
	r = calloc(n, sizeof(*r));
	if (!r)
		return mm_err_set(err, MM_ERR_INTERNAL, "ranges", "out of memory");
	for (i = 0; i < n; i++) {
		const json_t *v = json_array_get(arr, i);
		int ret;

		snprintf(field, sizeof(field), "ranges[%zu]", i);
		if (!json_is_string(v)) {
			free(r);
			return mm_err_set(err, MM_ERR_INVALID, field, "must be a string");
		}
		ret = mm_prefix_parse(json_string_value(v), &r[i], field, err);
		if (ret == 0)
			ret = range_check(p, &r[i], field, err);
		if (ret < 0) {
			free(r);
			return ret;
		}
	}
	qsort(r, n, sizeof(*r), prefix_qsort_cmp);
	for (i = 1; i < n; i++) {
		if (mm_prefix_overlaps(&r[i - 1], &r[i])) {
			int ret = mm_err_set(err, MM_ERR_CONFLICT, "ranges",
					     "%s and %s overlap (listed twice or nested)",
					     mm_prefix_str(&r[i - 1], a), mm_prefix_str(&r[i], b));
			free(r);
			return ret;
		}
	}
	free(p->ranges);
	p->ranges = r;
	p->n_ranges = n;
	return 0;
}

static int gateways_set(struct mm_partner *p, const json_t *arr, struct mm_err *err)
{
	struct mm_addr *g;
	char field[32], a[MM_ADDR_STRLEN];
	size_t i, j, n;

	if (!json_is_array(arr))
		return mm_err_set(err, MM_ERR_INVALID, "gateways",
				  "must be a list of IP addresses");
	n = json_array_size(arr);
	if (n == 0)
		return mm_err_set(err, MM_ERR_INVALID, "gateways",
				  "at least one gateway address is required");
	g = calloc(n, sizeof(*g));
	if (!g)
		return mm_err_set(err, MM_ERR_INTERNAL, "gateways", "out of memory");
	for (i = 0; i < n; i++) {
		const json_t *v = json_array_get(arr, i);
		int ret;

		snprintf(field, sizeof(field), "gateways[%zu]", i);
		if (!json_is_string(v)) {
			free(g);
			return mm_err_set(err, MM_ERR_INVALID, field, "must be a string");
		}
		ret = mm_addr_parse(json_string_value(v), &g[i], field, err);
		if (ret == 0)
			ret = gateway_check(p, &g[i], field, err);
		if (ret < 0) {
			free(g);
			return ret;
		}
		for (j = 0; j < i; j++) {
			if (mm_addr_cmp(&g[j], &g[i]) == 0) {
				ret = mm_err_set(err, MM_ERR_INVALID, field, "%s is listed twice",
						 mm_addr_str(&g[i], a));
				free(g);
				return ret;
			}
		}
	}
	free(p->gateways);
	p->gateways = g;
	p->n_gateways = n;
	return 0;
}

/* ca: one PEM string (the usual case, and the only form before CA
 * rollovers existed) or a list of one or two. */
static int ca_set(struct mm_partner *p, const json_t *v, time_t now, struct mm_err *err)
{
	struct mm_partner_ca cas[MM_PARTNER_CA_MAX] = { 0 };
	const json_t *items[MM_PARTNER_CA_MAX];
	size_t n = 0;
	char field[16];
	int r = 0;

	if (json_is_string(v)) {
		items[n++] = v;
	} else if (json_is_array(v)) {
		if (json_array_size(v) == 0 || json_array_size(v) > MM_PARTNER_CA_MAX)
			return mm_err_set(err, MM_ERR_INVALID, "ca",
					  "lists %zu CAs; give one, or two during a CA rollover "
					  "(the old and the new)",
					  json_array_size(v));
		for (; n < json_array_size(v); n++)
			items[n] = json_array_get(v, n);
	} else {
		return mm_err_set(err, MM_ERR_INVALID, "ca",
				  "must be the PEM text of the CA certificate, or a list of two "
				  "during a CA rollover");
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (json_is_array(v))
			snprintf(field, sizeof(field), "ca[%zu]", i);
		else
			snprintf(field, sizeof(field), "ca");
		if (!json_is_string(items[i])) {
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "must be the PEM text of a CA certificate");
			break;
		}
		r = mm_ca_check(json_string_value(items[i]), now, &cas[i].info, field, err);
		if (r == 0 && i > 0 && strcmp(cas[0].info.sha256, cas[i].info.sha256) == 0)
			r = mm_err_set(err, MM_ERR_INVALID, field,
				       "is the same certificate as ca[0] (%s)", cas[i].info.sha256);
		if (r == 0) {
			cas[i].pem = strdup(json_string_value(items[i]));
			if (!cas[i].pem)
				r = mm_err_set(err, MM_ERR_INTERNAL, field, "out of memory");
		}
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(cas[i].pem);
		return r;
	}
	cas_clear(p);
	memcpy(p->cas, cas, sizeof(cas));
	p->n_cas = n;
	return 0;
}

/* A CRL path is handed to the daemon (root) to read on every change: only
 * absolute, plain paths, so that what is shown is what is read. */
static int crl_path_check(const char *s, const char *field, struct mm_err *err)
{
	size_t len = strlen(s);

	if (len == 0)
		return mm_err_set(err, MM_ERR_INVALID, field, "is empty");
	if (s[0] != '/')
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is a relative path; give the CRL file's absolute path "
				  "(mmtrustd reads it, from its own working directory)", s);
	if (len > MM_CRL_PATH_MAX)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "is %zu characters long; at most %d are allowed", len,
				  MM_CRL_PATH_MAX);
	if (s[len - 1] == '/')
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' ends with '/': it must name a file", s);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return mm_err_set(err, MM_ERR_INVALID, field,
					  "contains a control character");
	if (strstr(s, "/../") || strstr(s, "/./") || strstr(s, "//") ||
	    (len >= 3 && strcmp(s + len - 3, "/..") == 0) ||
	    (len >= 2 && strcmp(s + len - 2, "/.") == 0))
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' has '.', '..' or empty components; give the plain path", s);
	return 0;
}

int mm_partner_crls_set(struct mm_partner *p, const json_t *arr, struct mm_err *err)
{
	char field[32], **v = NULL;
	size_t i, n;
	int r = 0;

	if (!json_is_array(arr))
		return mm_err_set(err, MM_ERR_INVALID, "crls",
				  "must be a list of CRL file paths (absolute)");
	n = json_array_size(arr);
	if (n > MM_PARTNER_CRL_MAX)
		return mm_err_set(err, MM_ERR_INVALID, "crls",
				  "lists %zu files; at most %d are allowed", n, MM_PARTNER_CRL_MAX);
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v)
			return mm_err_set(err, MM_ERR_INTERNAL, "crls", "out of memory");
	}
	for (i = 0; r == 0 && i < n; i++) {
		const json_t *s = json_array_get(arr, i);

		snprintf(field, sizeof(field), "crls[%zu]", i);
		if (!json_is_string(s)) {
			r = mm_err_set(err, MM_ERR_INVALID, field, "must be a string (a file path)");
			break;
		}
		r = crl_path_check(json_string_value(s), field, err);
		for (size_t j = 0; r == 0 && j < i; j++)
			if (strcmp(v[j], json_string_value(s)) == 0)
				r = mm_err_set(err, MM_ERR_INVALID, field, "%s is listed twice",
					       v[j]);
		if (r == 0 && !(v[i] = strdup(json_string_value(s))))
			r = mm_err_set(err, MM_ERR_INTERNAL, field, "out of memory");
	}
	if (r < 0) {
		crls_free(v, n);
		return r;
	}
	crls_free(p->crls, p->n_crls);
	p->crls = v;
	p->n_crls = n;
	return 0;
}

json_t *mm_partner_crls_json(const struct mm_partner *p)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < p->n_crls; i++)
		if (json_array_append_new(a, json_string(p->crls[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static int bool_set(bool *dst, const json_t *v, const char *field, struct mm_err *err)
{
	if (!json_is_boolean(v))
		return mm_err_set(err, MM_ERR_INVALID, field, "must be true or false");
	*dst = json_is_true(v);
	return 0;
}

static int enum_set(int *dst, const json_t *v, int (*index)(const char *, int *),
		    const char *field, const char *choices, struct mm_err *err)
{
	if (json_is_string(v) && index(json_string_value(v), dst) == 0)
		return 0;
	return mm_err_set(err, MM_ERR_INVALID, field, "must be one of: %s%s%s%s",
			  choices, json_is_string(v) ? " (got '" : "",
			  json_is_string(v) ? json_string_value(v) : "",
			  json_is_string(v) ? "')" : "");
}

/* Members only the daemon produces; tolerated on input so exported JSON
 * can be fed back. */
static const char *const readonly_members[] = {
	"reqid", "ca_sha256", "ca_subject", "ca_not_before", "ca_not_after", "cas",
	"created", "updated", NULL,
};

static bool is_readonly(const char *key)
{
	for (size_t i = 0; readonly_members[i]; i++)
		if (strcmp(key, readonly_members[i]) == 0)
			return true;
	return false;
}

/* Set one user-settable member.  Returns 1 when key is not a settable
 * member, 0 on success, negative on a refused value. */
static int member_set(struct mm_partner *p, const char *key, const json_t *v, time_t now,
		      struct mm_err *err)
{
	int e = 0, r;

	if (strcmp(key, "kind") == 0) {
		r = enum_set(&e, v, kind_index, "kind", "ims, non-ims", err);
		if (r == 0)
			p->kind = e;
		return r;
	}
	if (strcmp(key, "esp") == 0) {
		r = enum_set(&e, v, esp_index, "esp", "encrypt, integrity-only", err);
		if (r == 0)
			p->esp = e;
		return r;
	}
	if (strcmp(key, "path") == 0) {
		r = enum_set(&e, v, path_index, "path", "tunnel, seg", err);
		if (r == 0)
			p->path = e;
		return r;
	}
	if (strcmp(key, "agreement") == 0)
		return bool_set(&p->agreement, v, "agreement", err);
	if (strcmp(key, "enabled") == 0)
		return bool_set(&p->enabled, v, "enabled", err);
	if (strcmp(key, "ranges") == 0)
		return ranges_set(p, v, err);
	if (strcmp(key, "gateways") == 0)
		return gateways_set(p, v, err);
	if (strcmp(key, "ca") == 0)
		return ca_set(p, v, now, err);
	if (strcmp(key, "crls") == 0)
		return mm_partner_crls_set(p, v, err);
	if (strcmp(key, "revocation") == 0) {
		r = enum_set(&e, v, revocation_index, "revocation", "strict, ifuri, relaxed", err);
		if (r == 0)
			p->revocation = e;
		return r;
	}
	return 1;
}

int mm_partner_from_json(const json_t *obj, time_t now, struct mm_partner **ret,
			 struct mm_err *err)
{
	static const char *const required[] = {
		"domain", "kind", "agreement", "ranges", "gateways", "ca", NULL,
	};
	struct mm_partner *p;
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return mm_err_set(err, MM_ERR_INVALID, "", "a partner must be a JSON object");
	for (size_t i = 0; required[i]; i++)
		if (!json_object_get(obj, required[i]))
			return mm_err_set(err, MM_ERR_INVALID, required[i], "is required");
	v = json_object_get(obj, "domain");
	p = mm_partner_new();
	if (!p)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	if (!json_is_string(v)) {
		r = mm_err_set(err, MM_ERR_INVALID, "domain", "must be a string");
		goto fail;
	}
	r = mm_domain_canon(json_string_value(v), p->domain, "domain", err);
	if (r < 0)
		goto fail;
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "domain") == 0 || is_readonly(key))
			continue;
		r = member_set(p, key, v, now, err);
		if (r < 0)
			goto fail;
		if (r > 0) {
			r = mm_err_set(err, MM_ERR_INVALID, key,
				       "unknown field (known: domain, kind, agreement, ranges, "
				       "gateways, ca, esp, path, enabled, crls, revocation)");
			goto fail;
		}
	}
	/* NDS/IP security gateways join IMS networks only (TS 33.210); an
	 * internet SIP provider is never inside the operator's Za/Zb domain. */
	if (p->path == MM_PATH_SEG && p->kind != MM_KIND_IMS) {
		r = mm_err_set(err, MM_ERR_INVALID, "path",
			       "'seg' (reached through the operator's security gateway) applies "
			       "only to partners of kind ims");
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	mm_partner_unref(p);
	return r;
}

/* The canonical text of a range or gateway, so that list edits match
 * whatever the spelling; text that does not parse is kept for
 * mm_partner_from_json to refuse with its index. */
static json_t *canon_item(const char *key, const json_t *v)
{
	char buf[MM_ADDR_STRLEN];
	struct mm_prefix pfx;
	struct mm_addr a;
	const char *s = json_string_value(v);

	if (strcmp(key, "ranges") == 0 && mm_prefix_parse(s, &pfx, key, NULL) == 0)
		return json_string(mm_prefix_str(&pfx, buf));
	if (strcmp(key, "gateways") == 0 && mm_addr_parse(s, &a, key, NULL) == 0)
		return json_string(mm_addr_str(&a, buf));
	return json_string(s);
}

/* Merge the string list `arr` into/out of the list member `key` of cur
 * (whose items are canonical: mm_partner_to_json). */
static int list_edit(json_t *cur, const char *key, const json_t *arr, bool add,
		     struct mm_err *err)
{
	json_t *list = json_object_get(cur, key), *v;
	size_t i;

	if (!json_is_array(arr))
		return mm_err_set(err, MM_ERR_INVALID, key, "must be a list");
	json_array_foreach(arr, i, v) {
		size_t j;
		json_t *w, *c;
		bool found = false;

		if (!json_is_string(v))
			return mm_err_set(err, MM_ERR_INVALID, key, "must be a list of strings");
		c = canon_item(key, v);
		if (!c)
			return mm_err_set(err, MM_ERR_INTERNAL, key, "out of memory");
		json_array_foreach(list, j, w) {
			if (json_equal(c, w)) {
				found = true;
				if (!add)
					json_array_remove(list, j);
				break;
			}
		}
		if (add && !found)
			json_array_append(list, c);
		json_decref(c);
		if (!add && !found)
			return mm_err_set(err, MM_ERR_NOT_FOUND, key,
					  "%s is not in the partner's %s", json_string_value(v),
					  key);
	}
	return 0;
}

int mm_partner_update(const struct mm_partner *p, const json_t *set, const json_t *add,
		      const json_t *remove, time_t now, struct mm_partner **ret,
		      struct mm_err *err)
{
	json_t *cur = mm_partner_to_json(p, MM_JSON_CONFIG), *v;
	struct mm_partner *n = NULL;
	const char *key;
	int r = 0;

	if (!cur)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	if (set && !json_is_object(set)) {
		r = mm_err_set(err, MM_ERR_INVALID, "set", "must be an object");
		goto out;
	}
	json_object_foreach((json_t *)set, key, v) {
		if (strcmp(key, "domain") == 0) {
			char d[MM_DOMAIN_MAX + 1];

			if (!json_is_string(v) ||
			    mm_domain_canon(json_string_value(v), d, "domain", NULL) < 0 ||
			    strcmp(d, p->domain) != 0) {
				r = mm_err_set(err, MM_ERR_INVALID, "domain",
					       "a partner's domain cannot be changed: "
					       "delete it and add the new one");
				goto out;
			}
			continue;
		}
		json_object_set(cur, key, v);
	}
	for (int pass = 0; pass < 2; pass++) {
		const json_t *edits = pass == 0 ? add : remove;

		if (!edits)
			continue;
		if (!json_is_object(edits)) {
			r = mm_err_set(err, MM_ERR_INVALID, pass ? "remove" : "add",
				       "must be an object");
			goto out;
		}
		json_object_foreach((json_t *)edits, key, v) {
			if (strcmp(key, "ranges") && strcmp(key, "gateways") &&
			    strcmp(key, "crls")) {
				r = mm_err_set(err, MM_ERR_INVALID, key,
					       "only ranges, gateways and crls can be added or "
					       "removed");
				goto out;
			}
			r = list_edit(cur, key, v, pass == 0, err);
			if (r < 0)
				goto out;
		}
	}
	r = mm_partner_from_json(cur, now, &n, err);
	if (r < 0)
		goto out;
	n->reqid = p->reqid;
	n->created = p->created;
	n->updated = p->updated;
	*ret = n;
out:
	json_decref(cur);
	return r;
}

static json_t *str_array(size_t n, const void *items, bool prefixes)
{
	json_t *a = json_array();
	char buf[MM_ADDR_STRLEN];

	for (size_t i = 0; a && i < n; i++) {
		const char *s = prefixes ? mm_prefix_str((const struct mm_prefix *)items + i, buf)
					 : mm_addr_str((const struct mm_addr *)items + i, buf);
		if (json_array_append_new(a, json_string(s)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* One CA: its PEM string, as before rollovers; two: the list. */
static json_t *ca_json(const struct mm_partner *p)
{
	json_t *a;

	if (p->n_cas <= 1)
		return json_string(p->n_cas ? p->cas[0].pem : "");
	a = json_array();
	for (size_t i = 0; a && i < p->n_cas; i++)
		if (json_array_append_new(a, json_string(p->cas[i].pem)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *cas_details_json(const struct mm_partner *p)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < p->n_cas; i++)
		if (json_array_append_new(
			    a, json_pack("{s:s, s:s, s:o, s:o}", "sha256", p->cas[i].info.sha256,
					 "subject", p->cas[i].info.subject, "not_before",
					 mm_json_time(p->cas[i].info.not_before), "not_after",
					 mm_json_time(p->cas[i].info.not_after))) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

json_t *mm_partner_to_json(const struct mm_partner *p, int flags)
{
	static const struct mm_ca_info none;
	const struct mm_ca_info *ca0 = p->n_cas ? &p->cas[0].info : &none;
	json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:o, s:s, s:s, s:b, s:o, s:o, s:s}",
			      "domain", p->domain,
			      "kind", mm_kind_name(p->kind),
			      "agreement", p->agreement,
			      "ranges", str_array(p->n_ranges, p->ranges, true),
			      "gateways", str_array(p->n_gateways, p->gateways, false),
			      "esp", mm_esp_name(p->esp),
			      "path", mm_path_name(p->path),
			      "enabled", p->enabled,
			      "ca", ca_json(p),
			      "crls", mm_partner_crls_json(p),
			      "revocation", mm_revocation_name(p->revocation));

	if (!o || flags == MM_JSON_CONFIG)
		return o;
	if (json_object_set_new(o, "reqid", json_integer(p->reqid)) < 0 ||
	    json_object_set_new(o, "ca_sha256", json_string(ca0->sha256)) < 0 ||
	    json_object_set_new(o, "ca_subject", json_string(ca0->subject)) < 0 ||
	    json_object_set_new(o, "ca_not_after", mm_json_time(ca0->not_after)) < 0 ||
	    json_object_set_new(o, "cas", cas_details_json(p)) < 0 ||
	    json_object_set_new(o, "created", mm_json_time(p->created)) < 0 ||
	    json_object_set_new(o, "updated", mm_json_time(p->updated)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

bool mm_partner_config_equal(const struct mm_partner *a, const struct mm_partner *b)
{
	if (strcmp(a->domain, b->domain) || a->kind != b->kind ||
	    a->agreement != b->agreement || a->esp != b->esp || a->path != b->path ||
	    a->enabled != b->enabled || a->n_ranges != b->n_ranges ||
	    a->n_gateways != b->n_gateways || a->revocation != b->revocation ||
	    a->n_cas != b->n_cas || a->n_crls != b->n_crls)
		return false;
	for (size_t i = 0; i < a->n_ranges; i++)
		if (mm_prefix_cmp(&a->ranges[i], &b->ranges[i]))
			return false;
	for (size_t i = 0; i < a->n_gateways; i++)
		if (mm_addr_cmp(&a->gateways[i], &b->gateways[i]))
			return false;
	for (size_t i = 0; i < a->n_cas; i++)
		if (strcmp(a->cas[i].pem, b->cas[i].pem))
			return false;
	for (size_t i = 0; i < a->n_crls; i++)
		if (strcmp(a->crls[i], b->crls[i]))
			return false;
	return true;
}

bool mm_partner_has_tunnel(const struct mm_partner *p)
{
	return p && p->enabled && p->path == MM_PATH_TUNNEL;
}
