/* Unit tests for the partner table file codec (cli/tablefile.c). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "cli/tablefile.h"
#include "tests/unit/testmain.h"

#define HEADER "# mmtrust partner table, exported by mmtrustctl\n"

static const char PEM_A[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBszCCAVmgAwIBAgIUQk9HVVNDRVJUSUZJQ0FURUZPUlRFU1QwCgYIKoZIzj0E\n"
	"AwIwIjEgMB4GA1UEAwwXaW1zLnBhcnRuZXItYS5leGFtcGxlIENBMB4XDTI0MDEw\n"
	"-----END CERTIFICATE-----\n";
static const char PEM_B[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBtDCCAVqgAwIBAgIUU0lQUFJPVklERVJCQ0FGT1JURVNUSU5HMAoGCCqGSM49\n"
	"-----END CERTIFICATE-----\n";

/* A scratch directory per test case, made and removed in the parent so it
 * goes away even when a forked test fails. */
static char tmpdir[64];
static int top_fd = -1;   /* the directory the tests started in */

static void tmpdir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tablefile.XXXXXX");
	if (!mkdtemp(tmpdir))
		ck_abort_msg("mkdtemp: %s", strerror(errno));
	top_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void tmpdir_teardown(void)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (top_fd >= 0)
		close(top_fd);
}

static void put_file(const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Write partners to a string; NULL-terminated, caller frees. */
static char *write_str(const json_t *partners, int *ret_rc, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert(f);
	*ret_rc = tablefile_write(f, partners, err, errlen);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

static char *write_ok(const json_t *partners)
{
	char err[512] = "";
	int rc;
	char *s = write_str(partners, &rc, err, sizeof(err));

	ck_assert_msg(rc == 0, "tablefile_write: %d %s", rc, err);
	return s;
}

static json_t *parse_ok(const char *text, const char *base_dir)
{
	char err[512] = "";
	json_t *j = NULL;
	int rc = tablefile_parse(text, strlen(text), "t.yaml", base_dir, &j, err, sizeof(err));

	ck_assert_msg(rc == 0, "tablefile_parse: %d %s\n--- input:\n%s", rc, err, text);
	ck_assert(json_is_array(j));
	return j;
}

static void assert_json_eq(const json_t *got, const json_t *want)
{
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);

		ck_abort_msg("JSON differs\n--- got:\n%s\n--- want:\n%s", g, w);
	}
}

/* Write, parse back, compare. */
static void assert_round_trip(const json_t *partners)
{
	char *text = write_ok(partners);
	json_t *back = parse_ok(text, NULL);

	if (!json_equal(back, partners)) {
		char *w = json_dumps(partners, JSON_INDENT(1) | JSON_SORT_KEYS);
		char *g = json_dumps(back, JSON_INDENT(1) | JSON_SORT_KEYS);

		ck_abort_msg("round trip differs\n--- file:\n%s--- in:\n%s\n--- out:\n%s", text, w, g);
	}
	json_decref(back);
	free(text);
}

static json_t *partner_a(void)
{
	return json_pack("{s:s, s:s, s:b, s:[s,s], s:[s,s], s:s, s:s, s:b, s:s}",
			 "domain", "ims.partner-a.example", "kind", "ims", "agreement", 1,
			 "ranges", "192.0.2.0/24", "2001:db8:a::/48",
			 "gateways", "198.51.100.10", "2001:db8:a::10",
			 "esp", "encrypt", "path", "tunnel", "enabled", 1, "ca", PEM_A);
}

static json_t *partner_b(void)
{
	return json_pack("{s:s, s:s, s:b, s:[s], s:[s,s], s:s, s:s, s:b, s:s}",
			 "domain", "sip.provider-b.example", "kind", "non-ims", "agreement", 0,
			 "ranges", "203.0.113.0/24",
			 "gateways", "203.0.113.5", "2001:db8:b::5",
			 "esp", "integrity-only", "path", "seg", "enabled", 0, "ca", PEM_B);
}

START_TEST(round_trip)
{
	json_t *in = json_pack("[o,o]", partner_a(), partner_b());
	json_t *full = json_deep_copy(in);
	char *text;

	/* members of a full daemon listing are left out of the file */
	json_object_set_new(json_array_get(full, 0), "reqid", json_integer(17));
	json_object_set_new(json_array_get(full, 1), "ca_sha256", json_string("ab12"));
	text = write_ok(full);
	ck_assert_msg(strncmp(text, HEADER "partners:\n", strlen(HEADER "partners:\n")) == 0,
		      "%s", text);
	ck_assert_ptr_null(strstr(text, "reqid"));
	ck_assert_ptr_null(strstr(text, "ca_sha256"));
	ck_assert_ptr_nonnull(strstr(text, "- \"2001:db8:a::/48\"\n"));
	ck_assert_ptr_nonnull(strstr(text, "- 192.0.2.0/24\n"));
	ck_assert_ptr_nonnull(strstr(text, "agreement: true\n"));
	ck_assert_ptr_nonnull(strstr(text, "enabled: false\n"));
	ck_assert_ptr_nonnull(strstr(text, "ca: |\n    -----BEGIN CERTIFICATE-----\n"));
	ck_assert_msg(strstr(text, "domain: ims.partner-a.example\n  kind: ims\n  agreement: true\n"
			     "  ranges:\n") != NULL, "key order:\n%s", text);
	free(text);

	assert_round_trip(in);
	json_decref(full);
	json_decref(in);
}
END_TEST

/* Strings that would not survive as plain scalars or as literal blocks. */
START_TEST(round_trip_odd_strings)
{
	static const char *const cas[] = {
		"no trailing newline", "keep\n\n\n", "  leading blanks\nx\n", "\n",
		"crlf\r\nline\r\n", "trailing blank \nx\n", "tab\there\n", "x\n  more\n",
		"# not a comment\n---\n...\n", "\xc3\xbcmlaut\n", "nel\xc2\x85x\n", "",
	};
	json_t *all = json_array();

	for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		char domain[32];
		json_t *one;

		snprintf(domain, sizeof(domain), "d%02zu.example", i);
		one = json_pack("[{s:s, s:s}]", "domain", domain, "ca", cas[i]);
		/* alone, so that every block is once the last thing in the file */
		assert_round_trip(one);
		json_array_append(all, json_array_get(one, 0));
		json_decref(one);
	}
	assert_round_trip(all);
	json_decref(all);

	all = json_pack("[{s:s, s:s, s:s, s:s, s:[], s:[s,s,s,s,s,s,s,s,s,s,s,s,s]}]",
			"domain", "yes", "kind", "null", "esp", "1.5", "path", "a b: c # d",
			"ranges", "gateways", "::1", "fe80::1%eth0", "0x1f", "2001-12-14", "'q'",
			"-dash", "[x]", "{y}", "\xc3\xbc", "~", "", "on", "1e5");
	assert_round_trip(all);
	json_decref(all);
}
END_TEST

START_TEST(parse_handwritten)
{
	static const char text[] =
		"# mmtrust partner table (comments allowed)\n"
		"partners:   # the only key\n"
		"  # an IMS partner\n"
		"  - domain: ims.partner-a.example\n"
		"    kind: ims\n"
		"    agreement: yes\n"
		"    ranges: [192.0.2.0/24, \"2001:db8:a::/48\"]   # a flow list\n"
		"    gateways: [ 198.51.100.10, '2001:db8:a::10' ]\n"
		"    esp: encrypt\n"
		"    path: tunnel\n"
		"    enabled: On\n"
		"    ca: |\n"
		"      -----BEGIN CERTIFICATE-----\n"
		"      MIIB\n"
		"      -----END CERTIFICATE-----\n"
		"\n"
		"  - {domain: sip.provider-b.example, kind: non-ims, agreement: NO,\n"
		"     ranges: [203.0.113.0/24], gateways: [2001:db8:b::5],\n"
		"     esp: integrity-only, path: seg, enabled: off, ca: \"PEM\"}\n"
		"  - \"domain\": c.example\n"
		"    agreement: !!bool \"false\"\n"
		"    enabled: TRUE\n"
		"    kind: !!str ims\n"
		"    ranges:\n"
		"      # comment inside a list\n"
		"      - 198.51.100.0/25\n"
		"    gateways: []\n";
	json_t *want = json_pack(
		"[{s:s, s:s, s:b, s:[s,s], s:[s,s], s:s, s:s, s:b, s:s},"
		" {s:s, s:s, s:b, s:[s], s:[s], s:s, s:s, s:b, s:s},"
		" {s:s, s:b, s:b, s:s, s:[s], s:[]}]",
		"domain", "ims.partner-a.example", "kind", "ims", "agreement", 1,
		"ranges", "192.0.2.0/24", "2001:db8:a::/48",
		"gateways", "198.51.100.10", "2001:db8:a::10",
		"esp", "encrypt", "path", "tunnel", "enabled", 1,
		"ca", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"domain", "sip.provider-b.example", "kind", "non-ims", "agreement", 0,
		"ranges", "203.0.113.0/24", "gateways", "2001:db8:b::5",
		"esp", "integrity-only", "path", "seg", "enabled", 0, "ca", "PEM",
		"domain", "c.example", "agreement", 0, "enabled", 1, "kind", "ims",
		"ranges", "198.51.100.0/25", "gateways");
	json_t *got = parse_ok(text, NULL);

	assert_json_eq(got, want);
	json_decref(got);
	json_decref(want);
}
END_TEST

START_TEST(empty_table)
{
	json_t *empty = json_array();
	json_t *got;
	char *text;

	got = parse_ok("partners: []\n", NULL);
	ck_assert_uint_eq(json_array_size(got), 0);
	json_decref(got);
	got = parse_ok("# nothing yet\npartners: [ ]  # none\n", NULL);
	ck_assert_uint_eq(json_array_size(got), 0);
	json_decref(got);

	text = write_ok(empty);
	ck_assert_str_eq(text, HEADER "partners: []\n");
	free(text);
	assert_round_trip(empty);
	json_decref(empty);
}
END_TEST

struct err_case {
	const char *text;
	int rc;
	const char *want;   /* a substring of the message */
};

static const struct err_case err_cases[] = {
	{ "partners:\n  - domain: a.example\n    agreement: \"true\"\n", -EINVAL,
	  "t.yaml:3:16: partners[0].agreement: expected true or false, found a quoted string" },
	{ "partners:\n  - domain: a.example\n    agreement: maybe\n", -EINVAL,
	  "t.yaml:3:16: partners[0].agreement: expected true or false, found \"maybe\"" },
	{ "partners:\n  - domain: a.example\n  - domain: b.example\n    enabled: 1\n", -EINVAL,
	  "t.yaml:4:14: partners[1].enabled: expected true or false, found \"1\"" },
	{ "partners:\n  - enabled: [true]\n", -EINVAL,
	  "t.yaml:2:14: partners[0].enabled: expected true or false, found a list" },
	{ "partners:\n  - ranges: 192.0.2.0/24\n", -EINVAL,
	  "t.yaml:2:13: partners[0].ranges: must be a list" },
	{ "partners:\n  - domain: a.example\n    gateways: 198.51.100.1\n", -EINVAL,
	  "t.yaml:3:15: partners[0].gateways: must be a list" },
	{ "partners:\n  - ranges:\n", -EINVAL,
	  "t.yaml:2:12: partners[0].ranges: must be a list (write [] for an empty one)" },
	{ "partners:\n  - gateways:\n      - 198.51.100.1\n      - [198.51.100.2]\n", -EINVAL,
	  "t.yaml:4:9: partners[0].gateways[1]: expected a string, found a list" },
	{ "partners:\n  - ranges: [~]\n", -EINVAL,
	  "t.yaml:2:14: partners[0].ranges[0]: expected a string, found an empty value" },
	{ "partners:\n  - domain: [a.example]\n", -EINVAL,
	  "t.yaml:2:13: partners[0].domain: expected a string, found a list" },
	{ "partners:\n  - domain:\n    kind: ims\n", -EINVAL,
	  "t.yaml:2:12: partners[0].domain: expected a string, found an empty value" },
	{ "partners:\n  - domain: \"a\\0b\"\n", -EINVAL,
	  "t.yaml:2:13: partners[0].domain: contains a NUL character" },
	{ "partners:\n  - domain: !!int 5\n", -EINVAL,
	  "t.yaml:2:13: partners[0].domain: unsupported tag tag:yaml.org,2002:int" },
	{ "partners:\n  - domain: a.example\n  - domain: b.example\n    colour: blue\n", -EINVAL,
	  "t.yaml:4:5: partners[1].colour: unknown key (expected domain, kind, agreement, "
	  "ranges, gateways, esp, path, enabled, crls, revocation, ca or ca_file)" },
	{ "partners:\n  - crls: /etc/a.crl\n", -EINVAL,
	  "t.yaml:2:11: partners[0].crls: must be a list" },
	{ "partners:\n  - revocation: [strict]\n", -EINVAL,
	  "t.yaml:2:17: partners[0].revocation: expected a string, found a list" },
	{ "partners:\n  - ca: [PEM, [x]]\n", -EINVAL,
	  "t.yaml:2:15: partners[0].ca[1]: expected a string, found a list" },
	{ "partners:\n  - ca: {a: b}\n", -EINVAL,
	  "t.yaml:2:9: partners[0].ca: expected a string, found a mapping" },
	{ "partners:\n  - ? [a]\n    : b\n", -EINVAL,
	  "t.yaml:2:7: partners[0]: keys must be strings, found a list" },
	{ "partners:\n  - kind: ims\n    domain: a.example\n    kind: non-ims\n", -EINVAL,
	  "t.yaml:4:5: partners[0].kind: duplicate key (first at line 2)" },
	{ "partners: []\npartners: []\n", -EINVAL,
	  "t.yaml:2:1: partners: duplicate key (first at line 1)" },
	{ "partners:\n  - ca: PEM\n    ca_file: x.pem\n", -EINVAL,
	  "t.yaml:3:5: partners[0].ca_file: ca and ca_file are mutually exclusive (ca at line 2)" },
	{ "partners:\n  - ca_file: /dev/null\n    ca: PEM\n", -EINVAL,
	  "t.yaml:3:5: partners[0].ca: ca and ca_file are mutually exclusive (ca_file at line 2)" },
	{ "partners:\n  - &p {domain: a.example}\n", -EINVAL,
	  "t.yaml:2:5: partners[0]: anchors (&name) are not supported" },
	{ "partners:\n  - domain: a.example\n    ranges: *r\n", -EINVAL,
	  "t.yaml:3:13: partners[0].ranges: aliases (*name) are not supported" },
	{ "- partners\n", -EINVAL,
	  "t.yaml:1:1: expected a mapping with the key partners, found a list" },
	{ "partner: []\n", -EINVAL,
	  "t.yaml:1:1: unknown key \"partner\" (a table file has the single key partners)" },
	{ "{}\n", -EINVAL, "t.yaml:1:1: missing key partners" },
	{ "partners: ims.partner-a.example\n", -EINVAL,
	  "t.yaml:1:11: partners: must be a list, found a scalar" },
	{ "partners:\n", -EINVAL,
	  "t.yaml:1:10: partners: must be a list (an empty table is written partners: [])" },
	{ "partners:\n  - a.example\n", -EINVAL,
	  "t.yaml:2:5: partners[0]: expected a mapping, found a scalar" },
	{ "", -EINVAL, "t.yaml:1:1: empty file: expected a mapping with the key partners" },
	{ "# only a comment\n", -EINVAL, "t.yaml:2:1: empty file" },
	{ "partners: []\n---\npartners: []\n", -EINVAL,
	  "t.yaml:2:1: more than one YAML document" },
	{ "partners:\n  - domain: a.example\n   kind: ims\n", -EINVAL,
	  "t.yaml:3:4: syntax error: " },
	{ "partners:\n  - ranges: [::1]\n", -EINVAL,
	  "t.yaml:2:14: syntax error: did not find expected node content" },
	{ "partners:\n  - domain: \xff\n", -EINVAL,
	  "t.yaml:2:13: invalid leading UTF-8 octet" },
	{ "partners:\n  - domain: a.example\n    ca_file: /nonexistent.d/ca.pem\n", -ENOENT,
	  "t.yaml:3:14: partners[0].ca_file: /nonexistent.d/ca.pem: No such file or directory" },
};

START_TEST(parse_errors)
{
	const struct err_case *e = &err_cases[_i];
	json_t *sentinel = json_null(), *got = sentinel;
	char err[512] = "";
	int rc;

	rc = tablefile_parse(e->text, strlen(e->text), "t.yaml", "/nonexistent.d", &got, err,
			     sizeof(err));
	ck_assert_msg(rc == e->rc, "case %d: rc %d, want %d (%s)", _i, rc, e->rc, err);
	ck_assert_msg(got == sentinel, "case %d: ret_partners set on failure", _i);
	ck_assert_msg(strstr(err, e->want) != NULL, "case %d:\n got: %s\nwant: %s", _i, err,
		      e->want);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(parse_error_small_buffer)
{
	static const char text[] = "partners: 1\n";
	json_t *got = NULL;
	char err[8];

	ck_assert_int_eq(tablefile_parse(text, strlen(text), "t.yaml", NULL, &got, err,
					 sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "t.yaml:");
	ck_assert_int_eq(tablefile_parse(text, strlen(text), "t.yaml", NULL, &got, NULL, 0),
			 -EINVAL);
	ck_assert_ptr_null(got);
}
END_TEST

START_TEST(ca_file)
{
	char path[256], dir[256], err[512] = "";
	json_t *got = NULL;
	int rc;

	ck_assert_int_eq(mkdir(strcat(strcpy(dir, tmpdir), "/etc"), 0700), 0);
	put_file("etc/ca-partner-a.pem", PEM_A, strlen(PEM_A));
	put_file("ca-abs.pem", PEM_B, strlen(PEM_B));
	snprintf(path, sizeof(path),
		 "partners:\n"
		 "  - domain: a.example\n    ca_file: ca-partner-a.pem\n"
		 "  - domain: b.example\n    ca_file: %s/ca-abs.pem\n", tmpdir);
	put_file("etc/partners.yaml", path, strlen(path));

	/* relative to the YAML file's directory, not the current one */
	snprintf(path, sizeof(path), "%s/etc/partners.yaml", tmpdir);
	rc = tablefile_read(path, &got, err, sizeof(err));
	ck_assert_msg(rc == 0, "%d %s", rc, err);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "ca")), PEM_A);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 1), "ca")), PEM_B);
	ck_assert_ptr_null(json_object_get(json_array_get(got, 0), "ca_file"));
	json_decref(got);

	/* tablefile_parse: base_dir given directly */
	got = parse_ok("partners:\n  - ca_file: etc/ca-partner-a.pem\n", tmpdir);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "ca")), PEM_A);
	json_decref(got);

	/* relative to the current directory without base_dir */
	ck_assert_int_eq(chdir(dir), 0);
	got = parse_ok("partners:\n  - ca_file: ca-partner-a.pem\n", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "ca")), PEM_A);
	json_decref(got);
	got = NULL;
	rc = tablefile_read("partners.yaml", &got, err, sizeof(err));
	ck_assert_msg(rc == 0, "%d %s", rc, err);
	json_decref(got);
	ck_assert_int_eq(fchdir(top_fd), 0);
}
END_TEST

/* crls, revocation and the two CAs of a rollover: parsed as given,
 * written back (the CAs as literal blocks in a list), and left out of the
 * file when they are the defaults, so older exports stay as they were. */
START_TEST(revocation_fields)
{
	static const char text[] =
		"partners:\n"
		"  - domain: a.example\n"
		"    crls: [/var/lib/crl/a.crl, \"/etc/b c.crl\"]\n"
		"    revocation: strict\n"
		"    ca:\n"
		"      - |\n"
		"        -----BEGIN CERTIFICATE-----\n"
		"        OLD\n"
		"        -----END CERTIFICATE-----\n"
		"      - NEW\n";
	json_t *want = json_pack("[{s:s, s:[s,s], s:s, s:[s,s]}]", "domain", "a.example", "crls",
				 "/var/lib/crl/a.crl", "/etc/b c.crl", "revocation", "strict",
				 "ca", "-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n",
				 "NEW");
	json_t *got = parse_ok(text, NULL), *dflt;
	char *out;

	assert_json_eq(got, want);
	assert_round_trip(want);
	json_array_append_new(want, partner_b());
	json_object_set_new(json_array_get(want, 1), "ca", json_pack("[s,s]", PEM_A, PEM_B));
	assert_round_trip(want);
	out = write_ok(want);
	ck_assert_msg(strstr(out, "  ca:\n  - |\n    -----BEGIN CERTIFICATE-----\n"), "%s", out);
	free(out);

	/* The defaults are not written. */
	dflt = json_pack("[o]", partner_a());
	json_object_set_new(json_array_get(dflt, 0), "crls", json_array());
	json_object_set_new(json_array_get(dflt, 0), "revocation", json_string("ifuri"));
	out = write_ok(dflt);
	ck_assert_ptr_null(strstr(out, "crls"));
	ck_assert_ptr_null(strstr(out, "revocation"));
	free(out);
	json_object_set_new(json_array_get(dflt, 0), "revocation", json_string("relaxed"));
	out = write_ok(dflt);
	ck_assert_ptr_nonnull(strstr(out, "revocation: relaxed\n"));
	free(out);
	json_decref(dflt);
	json_decref(got);
	json_decref(want);
}
END_TEST

/* ca_file: a list of two files reads both, in order. */
START_TEST(ca_file_list)
{
	char text[512];
	json_t *got, *ca;

	put_file("old.pem", PEM_A, strlen(PEM_A));
	put_file("new.pem", PEM_B, strlen(PEM_B));
	snprintf(text, sizeof(text), "partners:\n  - ca_file: [old.pem, %s/new.pem]\n", tmpdir);
	got = parse_ok(text, tmpdir);
	ca = json_object_get(json_array_get(got, 0), "ca");
	ck_assert(json_is_array(ca));
	ck_assert_uint_eq(json_array_size(ca), 2);
	ck_assert_str_eq(json_string_value(json_array_get(ca, 0)), PEM_A);
	ck_assert_str_eq(json_string_value(json_array_get(ca, 1)), PEM_B);
	json_decref(got);
}
END_TEST

START_TEST(ca_file_errors)
{
	static const char der[] = { 0x30, (char)0x82, 0x01, 0x00, 0x02 };
	char text[128], err[512] = "";
	json_t *got = NULL;
	int fd, rc;

	put_file("ca.der", der, sizeof(der));
	snprintf(text, sizeof(text), "partners:\n  - ca_file: ca.der\n");
	rc = tablefile_parse(text, strlen(text), "t.yaml", tmpdir, &got, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err, "t.yaml:2:14: partners[0].ca_file: ") &&
		      strstr(err, "/ca.der: binary data that is not one DER-encoded certificate"),
		      "%s", err);

	put_file("big.pem", "", 0);
	snprintf(text, sizeof(text), "%s/big.pem", tmpdir);
	fd = open(text, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, TABLEFILE_CA_MAX + 1), 0);
	close(fd);
	snprintf(text, sizeof(text), "partners:\n  - ca_file: big.pem\n");
	rc = tablefile_parse(text, strlen(text), "t.yaml", tmpdir, &got, err, sizeof(err));
	ck_assert_int_eq(rc, -EFBIG);
	ck_assert_msg(strstr(err, "t.yaml:2:14: partners[0].ca_file: ") &&
		      strstr(err, "larger than 1048576 bytes"), "%s", err);

	rc = tablefile_parse(text, strlen(text), "t.yaml", "/", &got, err, sizeof(err));
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_msg(strstr(err, "t.yaml:2:14: partners[0].ca_file: //big.pem: "), "%s", err);
	ck_assert_ptr_null(got);
}
END_TEST

START_TEST(read_errors_and_stdin)
{
	char path[256], err[512] = "";
	json_t *got = NULL;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	rc = tablefile_read(path, &got, err, sizeof(err));
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && strstr(err, ": No such file"),
		      "%s", err);

	put_file("bad.yaml", "partners:\n  - agreement: maybe\n", strlen("partners:\n  - agreement: maybe\n"));
	snprintf(path, sizeof(path), "%s/bad.yaml", tmpdir);
	rc = tablefile_read(path, &got, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	snprintf(path, sizeof(path), "%s/bad.yaml:2:16: partners[0].agreement: ", tmpdir);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);

	/* "-" reads standard input, relative ca_file against the current dir */
	put_file("ca.pem", PEM_A, strlen(PEM_A));
	put_file("in.yaml", "partners:\n  - ca_file: ca.pem\n", strlen("partners:\n  - ca_file: ca.pem\n"));
	ck_assert_int_eq(chdir(tmpdir), 0);
	fd = open("in.yaml", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	rc = tablefile_read("-", &got, err, sizeof(err));
	ck_assert_msg(rc == 0, "%d %s", rc, err);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(got, 0), "ca")), PEM_A);
	json_decref(got);
	ck_assert_int_eq(fchdir(top_fd), 0);
}
END_TEST

START_TEST(write_deterministic)
{
	json_t *ab = json_pack("[o,o]", partner_a(), partner_b());
	json_t *ba = json_pack("[o,o]", partner_b(), partner_a());
	json_t *shuffled = json_array(), *p = partner_a(), *q = json_object();
	char *t1, *t2, *t3, *t4;

	/* the same members, inserted in reverse order, plus a listing-only one */
	json_object_set_new(q, "reqid", json_integer(3));
	for (const char *const *m = (const char *const[]){ "ca", "enabled", "path", "esp",
		"gateways", "ranges", "agreement", "kind", "domain", NULL }; *m; m++)
		json_object_set(q, *m, json_object_get(p, *m));
	json_array_append_new(shuffled, partner_b());
	json_array_append_new(shuffled, q);
	json_decref(p);

	t1 = write_ok(ab);
	t2 = write_ok(ab);
	t3 = write_ok(ba);
	t4 = write_ok(shuffled);
	ck_assert_str_eq(t1, t2);
	ck_assert_str_eq(t1, t3);
	ck_assert_str_eq(t1, t4);
	ck_assert_ptr_nonnull(strstr(t1, "ims.partner-a.example"));
	ck_assert(strstr(t1, "ims.partner-a.example") < strstr(t1, "sip.provider-b.example"));

	/* the round trip of unsorted input holds partner by partner */
	p = parse_ok(t3, NULL);
	assert_json_eq(p, ab);
	json_decref(p);
	free(t1), free(t2), free(t3), free(t4);
	json_decref(ab), json_decref(ba), json_decref(shuffled);
}
END_TEST

START_TEST(write_errors)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
		{ "{}", "partners: expected an array" },
		{ "[1]", "partners[0]: expected an object" },
		{ "[{\"domain\": \"a.example\"}, {\"kind\": \"ims\"}]",
		  "partners[1].domain: expected a string" },
		{ "[{\"domain\": \"a.example\", \"agreement\": \"yes\"}]",
		  "partners[0].agreement: expected true or false" },
		{ "[{\"domain\": \"a.example\", \"ranges\": \"192.0.2.0/24\"}]",
		  "partners[0].ranges: expected an array" },
		{ "[{\"domain\": \"a.example\", \"ranges\": [\"192.0.2.0/24\", 5]}]",
		  "partners[0].ranges[1]: expected a string" },
		{ "[{\"domain\": \"b.example\"}, {\"domain\": \"a.example\", \"ca\": true}]",
		  "partners[1].ca: expected a string" },
		{ "[{\"domain\": \"a.example\", \"ca\": \"x\\u0000y\"}]",
		  "partners[0].ca: contains a NUL character" },
		{ "[{\"domain\": \"a.example\"}, {\"domain\": \"b.example\"}, {\"domain\": \"a.example\"}]",
		  "partners[2].domain: duplicate a.example (also partners[0])" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *in = json_loads(cases[i].json, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
		char err[256] = "", *text;
		int rc;

		ck_assert_msg(in, "case %zu: bad JSON", i);
		text = write_str(in, &rc, err, sizeof(err));
		ck_assert_msg(rc == -EINVAL, "case %zu: rc %d", i, rc);
		ck_assert_msg(strcmp(err, cases[i].want) == 0, "case %zu:\n got: %s\nwant: %s", i,
			      err, cases[i].want);
		ck_assert_msg(text[0] == '\0', "case %zu: wrote %s", i, text);
		free(text);
		json_decref(in);
	}
}
END_TEST

/* examples/partners.yaml parses (with stand-ins for the CA files the demo
 * generates) and survives export. */
START_TEST(example_file)
{
	FILE *f = fopen("examples/partners.yaml", "r");
	char text[8192], err[512] = "";
	json_t *got = NULL;
	size_t n;
	int rc;

	ck_assert_msg(f, "examples/partners.yaml: %s (run from the top directory)",
		      strerror(errno));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	put_file("ca-partner-a.pem", PEM_A, strlen(PEM_A));
	put_file("ca-provider-b.pem", PEM_B, strlen(PEM_B));
	put_file("ca-partner-c.pem", PEM_A, strlen(PEM_A));

	rc = tablefile_parse(text, n, "examples/partners.yaml", tmpdir, &got, err, sizeof(err));
	ck_assert_msg(rc == 0, "%d %s", rc, err);
	ck_assert_uint_eq(json_array_size(got), 3);
	{
		/* In domain order, as export writes it: A, C (seg), B. */
		const json_t *a = json_array_get(got, 0), *b = json_array_get(got, 2);

		ck_assert_str_eq(json_string_value(json_object_get(a, "kind")), "ims");
		ck_assert(json_is_true(json_object_get(a, "agreement")));
		ck_assert_str_eq(json_string_value(json_object_get(a, "path")), "tunnel");
		ck_assert_str_eq(json_string_value(json_object_get(a, "ca")), PEM_A);
		ck_assert_str_eq(json_string_value(json_object_get(b, "kind")), "non-ims");
		ck_assert(json_is_false(json_object_get(b, "agreement")));
		ck_assert_str_eq(json_string_value(json_object_get(b, "esp")), "integrity-only");
		ck_assert_str_eq(json_string_value(json_object_get(b, "ca")), PEM_B);
	}
	assert_round_trip(got);
	json_decref(got);
}
END_TEST

/* The table file limit: TABLEFILE_MAX bytes are read, one more is refused
 * before anything is parsed, with a message that gives the limit. */
START_TEST(table_size_limit)
{
	char path[256], err[512] = "";
	json_t *got = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, TABLEFILE_MAX), 0);
	close(fd);
	/* read in full: refused by the parser for its content, not its size */
	ck_assert_int_eq(tablefile_read(path, &got, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(strstr(err, "limit"));

	fd = open(path, O_WRONLY);
	ck_assert_int_eq(ftruncate(fd, TABLEFILE_MAX + 1), 0);
	close(fd);
	ck_assert_int_eq(tablefile_read(path, &got, err, sizeof(err)), -EFBIG);
	ck_assert_msg(strstr(err, "/big.yaml: larger than 16777216 bytes, the table file limit"),
		      "%s", err);
	ck_assert_ptr_null(got);
}
END_TEST

/* tablefile_ca_read(): the file's value for "ca", or the file refused. */
static int ca_read(const char *name, const void *data, size_t len, json_t **ret, char *err,
		   size_t errlen)
{
	put_file(name, data, len);
	return tablefile_ca_read(name, tmpdir, ret, err, errlen);
}

/* What OpenSSL writes for these bytes as a CERTIFICATE block. */
static char *openssl_pem(const unsigned char *der, size_t len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert_ptr_nonnull(bio);
	ck_assert_int_gt(PEM_write_bio(bio, "CERTIFICATE", "", der, (long)len), 0);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	BIO_free(bio);
	return out;
}

/* A DER file becomes the PEM OpenSSL would write, at and around the line
 * breaks (48 bytes a line) and the length forms (short, 0x81, 0x82); the
 * framing must span the file. */
START_TEST(ca_read_der)
{
	static const size_t bodies[] = { 0, 1, 2, 3, 44, 45, 46, 47, 94, 95, 96, 97,
					 125, 126, 127, 128, 129, 253, 254, 255, 256, 257, 559 };
	unsigned char der[600];
	char err[512], *want;
	json_t *v;

	for (size_t k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
		size_t body = bodies[k], hdr = body < 0x80 ? 2 : body < 0x100 ? 3 : 4;

		memset(der, 0, sizeof(der));
		der[0] = 0x30;
		if (hdr == 2) {
			der[1] = (unsigned char)body;
		} else if (hdr == 3) {
			der[1] = 0x81;
			der[2] = (unsigned char)body;
		} else {
			der[1] = 0x82;
			der[2] = (unsigned char)(body >> 8);
			der[3] = (unsigned char)body;
		}
		for (size_t i = 0; i < body; i++)
			der[hdr + i] = (unsigned char)(i * 37 + body);
		if (body)
			der[hdr] = 0xff;  /* never UTF-8: the cut files below are binary */
		v = NULL;
		ck_assert_int_eq(ca_read("c.der", der, hdr + body, &v, err, sizeof(err)), 1);
		want = openssl_pem(der, hdr + body);
		ck_assert_str_eq(json_string_value(v), want);
		free(want);
		json_decref(v);

		/* one byte more or less than the framing says: binary, refused */
		if (body > 1) {
			v = NULL;
			ck_assert_int_eq(ca_read("c.der", der, hdr + body - 1, &v, err, sizeof(err)),
					 -EINVAL);
			ck_assert_int_eq(ca_read("c.der", der, hdr + body + 1, &v, err, sizeof(err)),
					 -EINVAL);
			ck_assert_ptr_null(v);
		}
	}
}
END_TEST

/* Text is sent as it is, every byte: judging it is the daemon's job. */
START_TEST(ca_read_text)
{
	static const char junk[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\nand more\n";
	static const char nul[] = "-----BEGIN CERTIFICATE-----\n\0\n";
	static const char latin1[] = "caf\xe9\n";
	char err[512] = "";
	json_t *v = NULL;

	ck_assert_int_eq(ca_read("t.pem", junk, strlen(junk), &v, err, sizeof(err)), 0);
	ck_assert_str_eq(json_string_value(v), junk);
	json_decref(v);
	v = NULL;
	ck_assert_int_eq(ca_read("e.pem", "", 0, &v, err, sizeof(err)), 0);
	ck_assert_str_eq(json_string_value(v), "");
	json_decref(v);

	v = NULL;
	ck_assert_int_eq(ca_read("n.pem", nul, sizeof(nul) - 1, &v, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/n.pem: binary data that is not one DER-encoded certificate"),
		      "%s", err);
	ck_assert_int_eq(ca_read("l.pem", latin1, strlen(latin1), &v, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(tablefile_ca_read("/nonexistent.d/x.pem", tmpdir, &v, err, sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "/nonexistent.d/x.pem: No such file or directory");
	ck_assert_ptr_null(v);
}
END_TEST

static Suite *tablefile_suite(void)
{
	Suite *s = suite_create("tablefile");
	TCase *tc = tcase_create("codec");
	TCase *tf = tcase_create("files");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, round_trip_odd_strings);
	tcase_add_test(tc, parse_handwritten);
	tcase_add_test(tc, empty_table);
	tcase_add_loop_test(tc, parse_errors, 0, (int)(sizeof(err_cases) / sizeof(err_cases[0])));
	tcase_add_test(tc, parse_error_small_buffer);
	tcase_add_test(tc, write_deterministic);
	tcase_add_test(tc, write_errors);
	tcase_add_test(tc, revocation_fields);
	suite_add_tcase(s, tc);

	/* unchecked: runs in the parent, once per test case */
	tcase_add_unchecked_fixture(tf, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(tf, ca_file);
	tcase_add_test(tf, ca_file_errors);
	tcase_add_test(tf, ca_file_list);
	tcase_add_test(tf, ca_read_der);
	tcase_add_test(tf, table_size_limit);
	tcase_add_test(tf, ca_read_text);
	tcase_add_test(tf, read_errors_and_stdin);
	tcase_add_test(tf, example_file);
	suite_add_tcase(s, tf);
	return s;
}

int main(void)
{
	return mm_test_run(tablefile_suite());
}
