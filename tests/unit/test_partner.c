/* The partner model's validation: a table of bad inputs, each refused with
 * a message naming the field, and the table and store unchanged after each.
 * Every case runs the same path the daemon takes: JSON -> partner ->
 * mm_table_apply -> mm_store_commit. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/partner.h"
#include "policy/store.h"
#include "policy/table.h"
#include "tests/unit/certgen.h"
#include "tests/unit/testmain.h"

static char dir[] = "/tmp/mmtrust-test-partner-XXXXXX";
static char *ca_ok, *ca_leaf, *ca_expired, *ca_nobc;
static struct mm_store *store;
static struct mm_table *table;
static const struct mm_actor actor = { .uid = 0, .pid = 1, .user = "test", .request = "test" };

static json_t *base_partner(const char *domain, const char *range4, const char *range6)
{
	return json_pack("{s:s, s:s, s:b, s:[s,s], s:[s], s:s}", "domain", domain, "kind", "ims",
			 "agreement", 1, "ranges", range4, range6, "gateways", "198.51.100.1",
			 "ca", ca_ok);
}

/* Provision one partner the way the daemon does; returns 0 or -errno. */
static int provision(const json_t *obj, struct mm_err *err)
{
	struct mm_change c = { .op = MM_CHANGE_ADD };
	struct mm_table *newt;
	int r;

	r = mm_partner_from_json(obj, time(NULL), &c.after, err);
	if (r < 0)
		return r;
	r = mm_table_apply(table, &c, 1, time(NULL), &newt, err);
	if (r == 0) {
		r = mm_store_commit(store, &c, 1, newt, &actor, err);
		if (r == 0) {
			mm_table_free(table);
			table = newt;
		} else {
			mm_table_free(newt);
		}
	}
	mm_partner_unref(c.after);
	return r;
}

static void setup(void)
{
	char path[256];
	struct mm_err err = { 0 };
	json_t *a;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	ca_ok = certgen_ca_pem("Partner CA", -3600, 86400 * 30);
	ca_leaf = certgen_leaf_pem("leaf", "a.example");
	ca_expired = certgen_ca_pem("Old CA", -86400 * 60, -86400);
	ca_nobc = certgen_nobc_pem("No BC");
	ck_assert(ca_ok && ca_leaf && ca_expired && ca_nobc);
	ck_assert_int_eq(mm_store_open(path, &store, &err), 0);
	ck_assert_int_eq(mm_store_load(store, 1000, 1999, &table, &err), 0);
	a = base_partner("a.example", "192.0.2.0/24", "2001:db8:a::/48");
	ck_assert_int_eq(provision(a, &err), 0);
	json_decref(a);
}

static void teardown(void)
{
	char cmd[300];

	mm_table_free(table);
	mm_store_close(store);
	free(ca_ok);
	free(ca_leaf);
	free(ca_expired);
	free(ca_nobc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir, "/tmp/mmtrust-test-partner-XXXXXX");
}

struct bad_case {
	const char *what;
	const char *key;        /* member to replace (NULL: merge the json object) */
	const char *json;       /* the new value, as JSON text; NULL deletes key */
	const char *field;      /* expected err.field */
	const char *msg_part;   /* expected in err.msg */
	enum mm_err_code code;
};

static const char long_label[] =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";  /* 64 */

static const struct bad_case bad[] = {
	{ "empty label", "domain", "\"b..example\"", "domain", "empty label", MM_ERR_INVALID },
	{ "leading hyphen", "domain", "\"-b.example\"", "domain", "start with '-'", MM_ERR_INVALID },
	{ "trailing hyphen", "domain", "\"b-.example\"", "domain", "end with '-'", MM_ERR_INVALID },
	{ "underscore", "domain", "\"b_c.example\"", "domain", "contains '_'", MM_ERR_INVALID },
	{ "single label", "domain", "\"localhost\"", "domain", "fully qualified", MM_ERR_INVALID },
	{ "numeric tld", "domain", "\"b.123\"", "domain", "all digits", MM_ERR_INVALID },
	{ "two trailing dots", "domain", "\"b.example..\"", "domain", "empty label", MM_ERR_INVALID },
	{ "space", "domain", "\"b example.net\"", "domain", "contains ' '", MM_ERR_INVALID },
	{ "domain not a string", "domain", "42", "domain", "must be a string", MM_ERR_INVALID },
	{ "duplicate domain", "domain", "\"a.example\"", "domain", "already exists", MM_ERR_CONFLICT },
	{ "duplicate domain, other case", "domain", "\"A.EXAMPLE.\"", "domain", "already exists",
	  MM_ERR_CONFLICT },
	{ "prefix length", "ranges", "[\"198.18.0.0/33\"]", "ranges[0]", "length must be 0-32",
	  MM_ERR_INVALID },
	{ "v6 prefix length", "ranges", "[\"2001:db8:b::/129\"]", "ranges[0]",
	  "length must be 0-128", MM_ERR_INVALID },
	{ "bad address in cidr", "ranges", "[\"198.18.0.300/24\"]", "ranges[0]",
	  "not an address", MM_ERR_INVALID },
	{ "garbage cidr", "ranges", "[\"198.18.0.0/24\", \"ten/8\"]", "ranges[1]",
	  "not an address", MM_ERR_INVALID },
	{ "host bits v4", "ranges", "[\"198.18.0.1/24\"]", "ranges[0]", "host bits set",
	  MM_ERR_INVALID },
	{ "host bits v6", "ranges", "[\"2001:db8:b::1/64\"]", "ranges[0]", "host bits set",
	  MM_ERR_INVALID },
	{ "ranges not a list", "ranges", "\"198.18.0.0/24\"", "ranges", "must be a list",
	  MM_ERR_INVALID },
	{ "no ranges", "ranges", "[]", "ranges", "at least one", MM_ERR_INVALID },
	{ "overlap other partner v4", "ranges", "[\"192.0.2.128/25\"]", "ranges[0]",
	  "192.0.2.128/25 of partner b.example overlaps 192.0.2.0/24 of partner a.example",
	  MM_ERR_CONFLICT },
	{ "overlap other partner v4, wider", "ranges", "[\"192.0.0.0/16\"]", "ranges[0]",
	  "192.0.0.0/16 of partner b.example overlaps 192.0.2.0/24 of partner a.example",
	  MM_ERR_CONFLICT },
	{ "same range as other partner", "ranges", "[\"192.0.2.0/24\"]", "ranges[0]",
	  "of partner a.example", MM_ERR_CONFLICT },
	{ "overlap other partner v6", "ranges", "[\"2001:db8:a:1::/64\"]", "ranges[0]",
	  "2001:db8:a:1::/64 of partner b.example overlaps 2001:db8:a::/48 of partner a.example",
	  MM_ERR_CONFLICT },
	{ "overlap same partner v4", "ranges", "[\"10.0.0.0/8\", \"10.1.0.0/16\"]", "ranges",
	  "10.0.0.0/8 and 10.1.0.0/16 overlap", MM_ERR_CONFLICT },
	{ "overlap same partner v6", "ranges", "[\"2001:db8:c::/48\", \"2001:db8:c::/48\"]",
	  "ranges", "overlap", MM_ERR_CONFLICT },
	/* Addresses (docs/admin-protocol.md): one meaning per spelling... */
	{ "mapped range overlapping another partner's", "ranges", "[\"::ffff:192.0.2.0/120\"]",
	  "ranges[0]", "192.0.2.0/24 of partner b.example overlaps 192.0.2.0/24 of partner a.example",
	  MM_ERR_CONFLICT },
	{ "mapped host inside another partner's range", "ranges", "[\"::ffff:192.0.2.9\"]",
	  "ranges[0]", "192.0.2.9/32 of partner b.example overlaps 192.0.2.0/24", MM_ERR_CONFLICT },
	{ "length with a leading zero", "ranges", "[\"198.18.0.0/024\"]", "ranges[0]",
	  "leading zero", MM_ERR_INVALID },
	/* ... and no range or gateway that is no peer's */
	{ "range 0.0.0.0/0", "ranges", "[\"0.0.0.0/0\"]", "ranges[0]",
	  "0.0.0.0/0 of partner b.example covers every IPv4 address", MM_ERR_INVALID },
	{ "range ::/0", "ranges", "[\"2001:db8:b::/48\", \"::/0\"]", "ranges[1]",
	  "::/0 of partner b.example covers every IPv6 address", MM_ERR_INVALID },
	{ "range ::ffff:0:0/96 (all of IPv4)", "ranges", "[\"::ffff:0:0/96\"]", "ranges[0]",
	  "0.0.0.0/0 of partner b.example covers every IPv4 address", MM_ERR_INVALID },
	{ "range around the mapped block", "ranges", "[\"::/64\"]", "ranges[0]",
	  "::/64 of partner b.example overlaps the IPv4-mapped block ::ffff:0:0/96",
	  MM_ERR_INVALID },
	{ "range ::/8 holds the mapped block", "ranges", "[\"::/8\"]", "ranges[0]", "IPv4-mapped",
	  MM_ERR_INVALID },
	{ "range 0.0.0.0/8", "ranges", "[\"0.0.0.0/8\"]", "ranges[0]", "the unspecified block",
	  MM_ERR_INVALID },
	{ "range :: alone", "ranges", "[\"::/128\"]", "ranges[0]", "the unspecified block ::/128",
	  MM_ERR_INVALID },
	{ "range loopback", "ranges", "[\"127.0.0.0/8\"]", "ranges[0]", "the loopback block",
	  MM_ERR_INVALID },
	{ "range inside loopback", "ranges", "[\"127.1.0.0/16\"]", "ranges[0]",
	  "the loopback block 127.0.0.0/8", MM_ERR_INVALID },
	{ "range ::1", "ranges", "[\"::1\"]", "ranges[0]", "the loopback block ::1/128",
	  MM_ERR_INVALID },
	{ "range around loopback", "ranges", "[\"64.0.0.0/2\"]", "ranges[0]", "loopback",
	  MM_ERR_INVALID },
	{ "range link-local v4", "ranges", "[\"169.254.0.0/16\"]", "ranges[0]", "link-local",
	  MM_ERR_INVALID },
	{ "range link-local v6", "ranges", "[\"fe80::/64\"]", "ranges[0]",
	  "the link-local block fe80::/10", MM_ERR_INVALID },
	{ "range multicast v4", "ranges", "[\"239.1.0.0/16\"]", "ranges[0]",
	  "the multicast block 224.0.0.0/4", MM_ERR_INVALID },
	{ "range multicast v6", "ranges", "[\"ff02::/16\"]", "ranges[0]",
	  "the multicast block ff00::/8", MM_ERR_INVALID },
	{ "range broadcast", "ranges", "[\"255.255.255.255\"]", "ranges[0]", "broadcast",
	  MM_ERR_INVALID },
	{ "range around broadcast", "ranges", "[\"255.255.255.0/24\"]", "ranges[0]", "broadcast",
	  MM_ERR_INVALID },
	{ "gateway 0.0.0.0", "gateways", "[\"0.0.0.0\"]", "gateways[0]",
	  "0.0.0.0 of partner b.example is unspecified", MM_ERR_INVALID },
	{ "gateway ::", "gateways", "[\"::\"]", "gateways[0]", ":: of partner b.example is unspecified",
	  MM_ERR_INVALID },
	{ "gateway multicast v4", "gateways", "[\"198.51.100.1\", \"224.0.0.1\"]", "gateways[1]",
	  "is multicast", MM_ERR_INVALID },
	{ "gateway multicast v6", "gateways", "[\"ff02::1\"]", "gateways[0]", "is multicast",
	  MM_ERR_INVALID },
	{ "gateway broadcast", "gateways", "[\"255.255.255.255\"]", "gateways[0]", "is broadcast",
	  MM_ERR_INVALID },
	{ "gateway loopback v4", "gateways", "[\"127.0.0.1\"]", "gateways[0]", "is loopback",
	  MM_ERR_INVALID },
	{ "gateway loopback v6", "gateways", "[\"::1\"]", "gateways[0]", "is loopback",
	  MM_ERR_INVALID },
	{ "gateway loopback, mapped", "gateways", "[\"::ffff:127.0.0.1\"]", "gateways[0]",
	  "127.0.0.1 of partner b.example is loopback", MM_ERR_INVALID },
	{ "gateway link-local v4", "gateways", "[\"169.254.10.1\"]", "gateways[0]",
	  "is link-local", MM_ERR_INVALID },
	{ "gateway link-local v6", "gateways", "[\"fe80::1\"]", "gateways[0]", "is link-local",
	  MM_ERR_INVALID },
	{ "gateway IPv4-compatible", "gateways", "[\"::198.51.100.1\"]", "gateways[0]",
	  "is IPv4-compatible", MM_ERR_INVALID },
	{ "gateway in another partner's range", "gateways", "[\"192.0.2.1\"]", "gateways[0]",
	  "192.0.2.1 of partner b.example is inside 192.0.2.0/24 of partner a.example",
	  MM_ERR_CONFLICT },
	{ "gateway in another partner's range, mapped", "gateways", "[\"::ffff:192.0.2.1\"]",
	  "gateways[0]", "is inside 192.0.2.0/24 of partner a.example", MM_ERR_CONFLICT },
	{ "range holding another partner's gateway", "ranges", "[\"198.51.100.0/24\"]",
	  "ranges[0]", "198.51.100.0/24 of partner b.example holds the gateway 198.51.100.1 of "
	  "partner a.example", MM_ERR_CONFLICT },
	{ "mapped gateway listed twice", "gateways", "[\"198.51.100.1\", \"::ffff:198.51.100.1\"]",
	  "gateways[1]", "listed twice", MM_ERR_INVALID },
	{ "gateway not an address", "gateways", "[\"gw.b.example\"]", "gateways[0]",
	  "not an IPv4 or IPv6 address", MM_ERR_INVALID },
	{ "gateway cidr", "gateways", "[\"198.51.100.0/24\"]", "gateways[0]",
	  "not an IPv4 or IPv6 address", MM_ERR_INVALID },
	{ "no gateway", "gateways", "[]", "gateways", "at least one", MM_ERR_INVALID },
	{ "gateway twice", "gateways", "[\"198.51.100.1\", \"198.51.100.1\"]", "gateways[1]",
	  "listed twice", MM_ERR_INVALID },
	{ "ca garbage", "ca", "\"hello\"", "ca", "", MM_ERR_INVALID },
	{ "ca not a string", "ca", "7", "ca", "PEM", MM_ERR_INVALID },
	{ "unknown kind", "kind", "\"pstn\"", "kind", "one of: ims, non-ims", MM_ERR_INVALID },
	{ "kind missing", "kind", NULL, "kind", "is required", MM_ERR_INVALID },
	{ "agreement missing", "agreement", NULL, "agreement", "is required", MM_ERR_INVALID },
	{ "agreement a string", "agreement", "\"yes\"", "agreement", "true or false",
	  MM_ERR_INVALID },
	{ "unknown esp", "esp", "\"aes-cbc\"", "esp", "encrypt, integrity-only", MM_ERR_INVALID },
	{ "unknown path", "path", "\"vpn\"", "path", "tunnel, seg", MM_ERR_INVALID },
	{ "seg for a non-ims partner", NULL, "{\"kind\": \"non-ims\", \"path\": \"seg\"}", "path",
	  "only to partners of kind ims", MM_ERR_INVALID },
	{ "enabled not bool", "enabled", "1", "enabled", "true or false", MM_ERR_INVALID },
	{ "unknown field", "colour", "\"blue\"", "colour", "unknown field", MM_ERR_INVALID },
	/* Revocation and rollover (docs/admin-protocol.md). */
	{ "crl relative", "crls", "[\"/etc/a.crl\", \"b.crl\"]", "crls[1]", "relative path",
	  MM_ERR_INVALID },
	{ "crl dot relative", "crls", "[\"./b.crl\"]", "crls[0]", "relative path",
	  MM_ERR_INVALID },
	{ "crl with ..", "crls", "[\"/etc/../b.crl\"]", "crls[0]", "'..'", MM_ERR_INVALID },
	{ "crl with //", "crls", "[\"/etc//b.crl\"]", "crls[0]", "empty components",
	  MM_ERR_INVALID },
	{ "crl a directory", "crls", "[\"/etc/crl/\"]", "crls[0]", "must name a file",
	  MM_ERR_INVALID },
	{ "crl empty", "crls", "[\"\"]", "crls[0]", "is empty", MM_ERR_INVALID },
	{ "crl control char", "crls", "[\"/etc/a\\nb.crl\"]", "crls[0]", "control character",
	  MM_ERR_INVALID },
	{ "crl twice", "crls", "[\"/etc/a.crl\", \"/etc/a.crl\"]", "crls[1]", "listed twice",
	  MM_ERR_INVALID },
	{ "crl not a string", "crls", "[7]", "crls[0]", "must be a string", MM_ERR_INVALID },
	{ "crls not a list", "crls", "\"/etc/a.crl\"", "crls", "must be a list", MM_ERR_INVALID },
	{ "unknown revocation", "revocation", "\"never\"", "revocation",
	  "one of: strict, ifuri, relaxed (got 'never')", MM_ERR_INVALID },
	{ "revocation not a string", "revocation", "true", "revocation", "strict, ifuri",
	  MM_ERR_INVALID },
	{ "ca empty list", "ca", "[]", "ca", "lists 0 CAs", MM_ERR_INVALID },
	{ "ca list item not a string", "ca", "[7]", "ca[0]", "PEM", MM_ERR_INVALID },
	{ "ca list item garbage", "ca", "[\"hello\"]", "ca[0]", "", MM_ERR_INVALID },
	{ "ca an object", "ca", "{}", "ca", "PEM", MM_ERR_INVALID },
};

static void check_refused(json_t *obj, const char *field, const char *msg_part,
			  enum mm_err_code code, const char *what)
{
	struct mm_err err = { 0 };
	struct mm_table *before_table = table;
	char *before = NULL, *after = NULL;
	size_t n_before = table->n;
	int r;

	ck_assert_int_eq(mm_store_dump(store, &before), 0);
	r = provision(obj, &err);
	ck_assert_msg(r < 0, "%s: accepted", what);
	ck_assert_msg(err.code == code, "%s: code %s, want %s (%s: %s)", what,
		      mm_err_code_name(err.code), mm_err_code_name(code), err.field, err.msg);
	ck_assert_msg(strcmp(err.field, field) == 0, "%s: field '%s', want '%s' (%s)", what,
		      err.field, field, err.msg);
	ck_assert_msg(strstr(err.msg, msg_part), "%s: message '%s' lacks '%s'", what, err.msg,
		      msg_part);
	ck_assert_int_eq(mm_store_dump(store, &after), 0);
	ck_assert_msg(strcmp(before, after) == 0, "%s: store changed", what);
	ck_assert_ptr_eq(table, before_table);
	ck_assert_uint_eq(table->n, n_before);
	free(before);
	free(after);
}

START_TEST(test_bad_inputs)
{
	const struct bad_case *c = &bad[_i];
	json_t *obj = base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48");

	if (c->json) {
		json_error_t jerr;
		json_t *v = json_loads(c->json, JSON_DECODE_ANY, &jerr);

		ck_assert_msg(v != NULL, "case JSON: %s", jerr.text);
		if (c->key)
			json_object_set_new(obj, c->key, v);
		else {
			json_object_update(obj, v);  /* several members at once */
			json_decref(v);
		}
	} else {
		json_object_del(obj, c->key);
	}
	check_refused(obj, c->field, c->msg_part, c->code, c->what);
	json_decref(obj);
}
END_TEST

START_TEST(test_bad_domains_long)
{
	char name[400];
	json_t *obj = base_partner("x", "198.18.0.0/24", "2001:db8:b::/48");

	snprintf(name, sizeof(name), "%s.example", long_label);
	json_object_set_new(obj, "domain", json_string(name));
	check_refused(obj, "domain", "longer than 63", MM_ERR_INVALID, "label of 64");
	/* 254 characters: four labels of 63 plus dots is 255; trim to 254. */
	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.62s", long_label, long_label, long_label,
		 long_label);
	ck_assert_uint_eq(strlen(name), 254);
	json_object_set_new(obj, "domain", json_string(name));
	check_refused(obj, "domain", "at most 253", MM_ERR_INVALID, "254 characters");
	json_decref(obj);
}
END_TEST

START_TEST(test_bad_ca)
{
	const struct {
		const char *what;
		const char *pem;
		const char *msg_part;
	} cases[] = {
		{ "leaf certificate", ca_leaf, "not a CA" },
		{ "expired CA", ca_expired, "expired" },
		{ "no basicConstraints", ca_nobc, "basicConstraints" },
		{ "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "" },
		{ "empty", "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *obj = base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48");

		json_object_set_new(obj, "ca", json_string(cases[i].pem));
		check_refused(obj, "ca", cases[i].msg_part, MM_ERR_INVALID, cases[i].what);
		json_decref(obj);
	}
}
END_TEST

START_TEST(test_canonical_domain)
{
	struct mm_err err = { 0 };
	json_t *obj = base_partner("Sip.B.Example.", "198.18.0.0/24", "2001:db8:b::/48");

	ck_assert_int_eq(provision(obj, &err), 0);
	ck_assert_ptr_nonnull(mm_table_find(table, "sip.b.example"));
	ck_assert_ptr_null(mm_table_find(table, "Sip.B.Example."));
	json_decref(obj);
	/* The same domain in another spelling is a duplicate. */
	obj = base_partner("SIP.B.EXAMPLE", "198.19.0.0/24", "2001:db8:d::/48");
	check_refused(obj, "domain", "already exists", MM_ERR_CONFLICT, "other spelling");
	json_decref(obj);
}
END_TEST

START_TEST(test_defaults_and_roundtrip)
{
	struct mm_err err = { 0 };
	struct mm_partner *p, *q;
	json_t *obj = base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48"), *out;

	ck_assert_int_eq(mm_partner_from_json(obj, time(NULL), &p, &err), 0);
	ck_assert_int_eq(p->esp, MM_ESP_ENCRYPT);
	ck_assert_int_eq(p->path, MM_PATH_TUNNEL);
	ck_assert(p->enabled);
	out = mm_partner_to_json(p, MM_JSON_FULL);
	/* The full form (with reqid, fingerprint) is accepted back. */
	ck_assert_int_eq(mm_partner_from_json(out, time(NULL), &q, &err), 0);
	ck_assert(mm_partner_config_equal(p, q));
	ck_assert_str_eq(json_string_value(json_object_get(out, "ca_sha256")), p->cas[0].info.sha256);
	ck_assert_uint_eq(p->n_cas, 1);
	json_decref(out);
	json_decref(obj);
	mm_partner_unref(p);
	mm_partner_unref(q);
}
END_TEST

START_TEST(test_update)
{
	struct mm_err err = { 0 };
	struct mm_partner *a = mm_table_find(table, "a.example"), *n = NULL;
	json_t *set = json_pack("{s:b, s:s}", "agreement", 0, "esp", "integrity-only");
	json_t *add = json_pack("{s:[s]}", "ranges", "203.0.113.0/24");
	json_t *rm = json_pack("{s:[s]}", "ranges", "2001:db8:a::/48");
	json_t *rename = json_pack("{s:s}", "domain", "other.example");
	json_t *rm_missing = json_pack("{s:[s]}", "gateways", "198.51.100.99");

	ck_assert_int_eq(mm_partner_update(a, set, add, rm, time(NULL), &n, &err), 0);
	ck_assert(!n->agreement);
	ck_assert_int_eq(n->esp, MM_ESP_INTEGRITY_ONLY);
	ck_assert_uint_eq(n->n_ranges, 2);
	ck_assert_uint_eq(n->reqid, a->reqid);
	mm_partner_unref(n);
	ck_assert_int_lt(mm_partner_update(a, rename, NULL, NULL, time(NULL), &n, &err), 0);
	ck_assert_str_eq(err.field, "domain");
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_partner_update(a, NULL, NULL, rm_missing, time(NULL), &n, &err), 0);
	ck_assert_str_eq(err.field, "gateways");
	json_decref(set);
	json_decref(add);
	json_decref(rm);
	json_decref(rename);
	json_decref(rm_missing);
}
END_TEST

/* The spellings that are accepted mean what their canonical form means. */
START_TEST(test_address_spellings)
{
	struct mm_err err = { 0 };
	struct mm_partner *b, *n = NULL;
	json_t *obj = base_partner("b.example", "::ffff:198.18.0.0/120", "2001:db8:b::/48");
	json_t *rm = json_pack("{s:[s], s:[s]}", "ranges", "::ffff:198.18.0.0/120", "gateways",
			       "::ffff:198.51.100.1");
	json_t *add = json_pack("{s:[s,s], s:[s]}", "ranges", "198.19.0.7", "2001:db8:b::/48",
				"gateways", "198.19.0.7");
	char buf[MM_ADDR_STRLEN];

	/* The gateway inside the partner's own range: a host that is its own
	 * IKE endpoint. */
	json_array_append_new(json_object_get(obj, "gateways"), json_string("::ffff:198.18.0.1"));
	ck_assert_int_eq(provision(obj, &err), 0);
	b = mm_table_find(table, "b.example");
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(mm_prefix_str(&b->ranges[0], buf), "198.18.0.0/24");
	ck_assert_str_eq(mm_addr_str(&b->gateways[1], buf), "198.18.0.1");
	ck_assert_ptr_eq(mm_table_lookup(table, &b->gateways[1], NULL), b);
	/* Adding what is there in another spelling changes nothing; a bare
	 * address is a host range. */
	ck_assert_int_eq(mm_partner_update(b, NULL, add, rm, time(NULL), &n, &err), 0);
	ck_assert_uint_eq(n->n_ranges, 2);
	ck_assert_str_eq(mm_prefix_str(&n->ranges[0], buf), "198.19.0.7/32");
	ck_assert_str_eq(mm_prefix_str(&n->ranges[1], buf), "2001:db8:b::/48");
	ck_assert_uint_eq(n->n_gateways, 2);
	ck_assert_str_eq(mm_addr_str(&n->gateways[0], buf), "198.18.0.1");
	ck_assert_str_eq(mm_addr_str(&n->gateways[1], buf), "198.19.0.7");
	mm_partner_unref(n);
	json_decref(obj);
	json_decref(rm);
	json_decref(add);
}
END_TEST

static json_t *with_cas(json_t *obj, char *const *pems, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(pems[i]));
	json_object_set_new(obj, "ca", a);
	return obj;
}

/* A CA rollover: two CAs are taken, in order, exported as a list and read
 * back equal; the same CA twice and a third are refused; one CA still
 * exports as the plain string an older export holds. */
START_TEST(test_two_cas)
{
	char *cas[3] = { ca_ok, certgen_ca_pem("New Partner CA", -60, 86400 * 60),
			 certgen_ca_pem("Third CA", -60, 86400) };
	struct mm_err err = { 0 };
	struct mm_partner *p, *q;
	json_t *obj, *out;

	ck_assert(cas[1] && cas[2]);
	obj = with_cas(base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48"), cas, 2);
	ck_assert_msg(provision(obj, &err) == 0, "%s: %s", err.field, err.msg);
	p = mm_table_find(table, "b.example");
	ck_assert_uint_eq(p->n_cas, 2);
	ck_assert_str_eq(p->cas[0].pem, cas[0]);
	ck_assert_str_eq(p->cas[1].pem, cas[1]);
	ck_assert_str_ne(p->cas[0].info.sha256, p->cas[1].info.sha256);
	out = mm_partner_to_json(p, MM_JSON_CONFIG);
	ck_assert(json_is_array(json_object_get(out, "ca")));
	ck_assert_uint_eq(json_array_size(json_object_get(out, "ca")), 2);
	ck_assert_int_eq(mm_partner_from_json(out, time(NULL), &q, &err), 0);
	ck_assert(mm_partner_config_equal(p, q));
	mm_partner_unref(q);
	json_decref(out);
	out = mm_partner_to_json(p, MM_JSON_FULL);
	ck_assert_uint_eq(json_array_size(json_object_get(out, "cas")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
				 json_object_get(out, "cas"), 1), "sha256")),
			 p->cas[1].info.sha256);
	/* the full form goes back in too */
	ck_assert_int_eq(mm_partner_from_json(out, time(NULL), &q, &err), 0);
	ck_assert(mm_partner_config_equal(p, q));
	mm_partner_unref(q);
	json_decref(out);
	json_decref(obj);

	/* The order is part of the config: swapped CAs are a change. */
	obj = with_cas(base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48"),
		       (char *[]){ cas[1], cas[0] }, 2);
	ck_assert_int_eq(mm_partner_from_json(obj, time(NULL), &q, &err), 0);
	ck_assert(!mm_partner_config_equal(p, q));
	mm_partner_unref(q);
	json_decref(obj);

	obj = with_cas(base_partner("c.example", "198.19.0.0/24", "2001:db8:c::/48"), cas, 3);
	check_refused(obj, "ca", "lists 3 CAs", MM_ERR_INVALID, "three CAs");
	json_decref(obj);
	obj = with_cas(base_partner("c.example", "198.19.0.0/24", "2001:db8:c::/48"),
		       (char *[]){ cas[1], cas[1] }, 2);
	check_refused(obj, "ca[1]", "same certificate as ca[0]", MM_ERR_INVALID, "same CA twice");
	json_decref(obj);
	obj = with_cas(base_partner("c.example", "198.19.0.0/24", "2001:db8:c::/48"),
		       (char *[]){ cas[1], ca_expired }, 2);
	check_refused(obj, "ca[1]", "expired", MM_ERR_INVALID, "second CA expired");
	json_decref(obj);
	obj = with_cas(base_partner("c.example", "198.19.0.0/24", "2001:db8:c::/48"),
		       (char *[]){ ca_leaf, cas[1] }, 2);
	check_refused(obj, "ca[0]", "not a CA", MM_ERR_INVALID, "first CA a leaf");
	json_decref(obj);

	/* One CA in a list is one CA, exported as the plain string. */
	obj = with_cas(base_partner("c.example", "198.19.0.0/24", "2001:db8:c::/48"), cas, 1);
	ck_assert_int_eq(mm_partner_from_json(obj, time(NULL), &q, &err), 0);
	ck_assert_uint_eq(q->n_cas, 1);
	out = mm_partner_to_json(q, MM_JSON_CONFIG);
	ck_assert_str_eq(json_string_value(json_object_get(out, "ca")), cas[0]);
	mm_partner_unref(q);
	json_decref(out);
	json_decref(obj);
	free(cas[1]);
	free(cas[2]);
}
END_TEST

/* crls and revocation: defaults, the round trip, list edits, and what is
 * equal. */
START_TEST(test_crls_and_revocation)
{
	struct mm_err err = { 0 };
	struct mm_partner *p, *q, *n = NULL;
	json_t *obj = base_partner("b.example", "198.18.0.0/24", "2001:db8:b::/48"), *out;
	json_t *add = json_pack("{s:[s]}", "crls", "/var/lib/crl/c.crl");
	json_t *rm = json_pack("{s:[s]}", "crls", "/var/lib/crl/a.crl");
	json_t *set = json_pack("{s:s}", "revocation", "relaxed");

	ck_assert_int_eq(mm_partner_from_json(obj, time(NULL), &p, &err), 0);
	ck_assert_int_eq(p->revocation, MM_REV_IFURI);
	ck_assert_uint_eq(p->n_crls, 0);
	out = mm_partner_to_json(p, MM_JSON_CONFIG);
	ck_assert_str_eq(json_string_value(json_object_get(out, "revocation")), "ifuri");
	ck_assert_uint_eq(json_array_size(json_object_get(out, "crls")), 0);
	json_decref(out);
	mm_partner_unref(p);

	json_object_set_new(obj, "crls", json_pack("[s,s]", "/var/lib/crl/a.crl", "/etc/b.crl"));
	json_object_set_new(obj, "revocation", json_string("strict"));
	ck_assert_int_eq(mm_partner_from_json(obj, time(NULL), &p, &err), 0);
	ck_assert_int_eq(p->revocation, MM_REV_STRICT);
	ck_assert_uint_eq(p->n_crls, 2);
	ck_assert_str_eq(p->crls[1], "/etc/b.crl");  /* in the order given */
	out = mm_partner_to_json(p, MM_JSON_FULL);
	ck_assert_int_eq(mm_partner_from_json(out, time(NULL), &q, &err), 0);
	ck_assert(mm_partner_config_equal(p, q));
	mm_partner_unref(q);
	json_decref(out);

	ck_assert_int_eq(mm_partner_update(p, set, add, rm, time(NULL), &n, &err), 0);
	ck_assert_int_eq(n->revocation, MM_REV_RELAXED);
	ck_assert_uint_eq(n->n_crls, 2);
	ck_assert_str_eq(n->crls[0], "/etc/b.crl");
	ck_assert_str_eq(n->crls[1], "/var/lib/crl/c.crl");
	ck_assert(!mm_partner_config_equal(p, n));
	q = mm_partner_dup(n);
	ck_assert(mm_partner_config_equal(q, n));
	ck_assert_ptr_ne(q->crls, n->crls);
	mm_partner_unref(q);
	mm_partner_unref(n);
	/* removing what is not there names the list */
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_partner_update(p, NULL, NULL, add, time(NULL), &n, &err), 0);
	ck_assert_str_eq(err.field, "crls");
	/* a relative path through set is refused like on add */
	json_object_set_new(set, "crls", json_pack("[s]", "c.crl"));
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(mm_partner_update(p, set, NULL, NULL, time(NULL), &n, &err), 0);
	ck_assert_str_eq(err.field, "crls[0]");
	mm_partner_unref(p);
	json_decref(obj);
	json_decref(add);
	json_decref(rm);
	json_decref(set);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("partner");
	TCase *tc = tcase_create("validation");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_bad_inputs, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_bad_domains_long);
	tcase_add_test(tc, test_bad_ca);
	tcase_add_test(tc, test_canonical_domain);
	tcase_add_test(tc, test_defaults_and_roundtrip);
	tcase_add_test(tc, test_update);
	tcase_add_test(tc, test_address_spellings);
	tcase_add_test(tc, test_two_cas);
	tcase_add_test(tc, test_crls_and_revocation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(suite());
}
