/* mmtrustctl: the commands that change or show the partner table:
 * partner add/set/del/show/list, apply, export. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/ctl.h"
#include "cli/tablefile.h"

#define ADMIN OPT(O_HELP) | OPT(O_JSON) | OPT(O_SOCKET)
#define FIELDS                                                                             \
	OPT(O_KIND) | OPT(O_AGREEMENT) | OPT(O_RANGE) | OPT(O_GATEWAY) | OPT(O_CA) | OPT(O_ESP) | \
		OPT(O_PATH) | OPT(O_ENABLE) | OPT(O_DISABLE) | OPT(O_DRY_RUN) | OPT(O_CRL) |      \
		OPT(O_REVOCATION)
#define EDITS                                                                          \
	OPT(O_ADD_RANGE) | OPT(O_DEL_RANGE) | OPT(O_ADD_GATEWAY) | OPT(O_DEL_GATEWAY) |   \
		OPT(O_ADD_CRL) | OPT(O_DEL_CRL)

/* ---- human output ---- */

static void print_partner_long(const json_t *p)
{
	size_t i;
	json_t *ca;

	printf("domain:     %s\n", jstr(p, "domain"));
	printf("reqid:      %" JSON_INTEGER_FORMAT "\n", jint(p, "reqid"));
	printf("kind:       %s\n", jstr(p, "kind"));
	printf("agreement:  %s\n", jyesno(p, "agreement"));
	printf("enabled:    %s\n", jyesno(p, "enabled"));
	printf("path:       %s\n", jstr(p, "path"));
	printf("esp:        %s\n", jstr(p, "esp"));
	printf("ranges:     ");
	print_list(json_object_get(p, "ranges"));
	printf("\ngateways:   ");
	print_list(json_object_get(p, "gateways"));
	putchar('\n');
	json_array_foreach(json_object_get(p, "cas"), i, ca) {
		printf("ca subject: %s\n", jstr(ca, "subject"));
		printf("ca sha256:  %s\n", jstr(ca, "sha256"));
		printf("ca expires: %s\n", jstr(ca, "not_after"));
	}
	printf("revocation: %s\n", jstr(p, "revocation"));
	printf("crls:       ");
	print_list(json_object_get(p, "crls"));
	putchar('\n');
	printf("created:    %s\n", jstr(p, "created"));
	printf("updated:    %s\n", jstr(p, "updated"));
}

static void print_list_result(const json_t *result)
{
	const json_t *list = json_object_get(result, "partners");
	size_t i;
	json_t *p;

	printf("%-32s %8s %-8s %-9s %-7s %-6s %-14s %s\n", "DOMAIN", "REQID", "KIND",
	       "AGREEMENT", "ENABLED", "PATH", "ESP", "RANGES / GATEWAYS");
	json_array_foreach(list, i, p) {
		printf("%-32s %8" JSON_INTEGER_FORMAT " %-8s %-9s %-7s %-6s %-14s ", jstr(p, "domain"),
		       jint(p, "reqid"), jstr(p, "kind"), jyesno(p, "agreement"),
		       jyesno(p, "enabled"), jstr(p, "path"), jstr(p, "esp"));
		print_list(json_object_get(p, "ranges"));
		printf(" via ");
		print_list(json_object_get(p, "gateways"));
		putchar('\n');
	}
	if (json_array_size(list) == 0)
		printf("(no partners)\n");
}

/* "AB:..., CD:..." of the partner's CAs (one, or two in a rollover). */
static void print_ca_fingerprints(const json_t *p)
{
	size_t i;
	json_t *ca;

	json_array_foreach(json_object_get(p, "cas"), i, ca)
		printf("%s%s", i ? ", " : "", jstr(ca, "sha256"));
}

static void print_changes(const json_t *result)
{
	const json_t *changes = json_object_get(result, "changes");
	bool applied = json_is_true(json_object_get(result, "applied"));
	size_t i, n = json_array_size(changes);
	json_t *c;

	json_array_foreach(changes, i, c) {
		const char *action = jstr(c, "action"), *domain = jstr(c, "domain");
		const json_t *after = json_object_get(c, "after");
		const json_t *before = json_object_get(c, "before");
		size_t j;
		json_t *f;

		if (!strcmp(action, "add")) {
			printf("+ %s: add (%s, agreement %s, ranges ", domain, jstr(after, "kind"),
			       jyesno(after, "agreement"));
			print_list(json_object_get(after, "ranges"));
			putchar(')');
			if (applied)
				printf(", reqid %" JSON_INTEGER_FORMAT, jint(after, "reqid"));
			putchar('\n');
			continue;
		}
		if (!strcmp(action, "del")) {
			printf("- %s: delete (reqid %" JSON_INTEGER_FORMAT ")\n", domain,
			       jint(before, "reqid"));
			continue;
		}
		printf("~ %s: change\n", domain);
		json_array_foreach(json_object_get(c, "fields"), j, f) {
			const char *key = json_string_value(f);

			/* The CAs are shown by their fingerprints. */
			if (key && !strcmp(key, "ca")) {
				printf("    ca sha256: ");
				print_ca_fingerprints(before);
				printf(" -> ");
				print_ca_fingerprints(after);
				putchar('\n');
				continue;
			}
			printf("    %s: ", key ? key : "?");
			print_value(json_object_get(before, key));
			printf(" -> ");
			print_value(json_object_get(after, key));
			putchar('\n');
		}
	}
	if (n == 0)
		printf("no changes\n");
	else
		printf(applied ? "applied %zu change%s\n" : "dry run: %zu change%s, nothing applied\n",
		       n, n == 1 ? "" : "s");
}

/* ---- the partner's fields from the options ---- */

enum how { H_STRING, H_BOOL, H_LIST, H_CA, H_TRUE, H_FALSE };
enum where { W_SET, W_ADD, W_REMOVE };

static const struct {
	enum opt_id id;
	const char *member;
	enum how how;
	enum where where;
} field_opts[] = {
	{ O_KIND, "kind", H_STRING, W_SET },
	{ O_AGREEMENT, "agreement", H_BOOL, W_SET },
	{ O_RANGE, "ranges", H_LIST, W_SET },
	{ O_GATEWAY, "gateways", H_LIST, W_SET },
	{ O_CA, "ca", H_CA, W_SET },
	{ O_ESP, "esp", H_STRING, W_SET },
	{ O_PATH, "path", H_STRING, W_SET },
	{ O_ENABLE, "enabled", H_TRUE, W_SET },
	{ O_DISABLE, "enabled", H_FALSE, W_SET },
	{ O_ADD_RANGE, "ranges", H_LIST, W_ADD },
	{ O_DEL_RANGE, "ranges", H_LIST, W_REMOVE },
	{ O_ADD_GATEWAY, "gateways", H_LIST, W_ADD },
	{ O_DEL_GATEWAY, "gateways", H_LIST, W_REMOVE },
	{ O_CRL, "crls", H_LIST, W_SET },
	{ O_ADD_CRL, "crls", H_LIST, W_ADD },
	{ O_DEL_CRL, "crls", H_LIST, W_REMOVE },
	{ O_REVOCATION, "revocation", H_STRING, W_SET },
};

/* The --ca file as the "ca" value: tablefile_ca_read is the one reader of
 * CA files (the table file's ca_file: too). */
static int ca_value(const char *path, json_t **ret)
{
	char msg[512];
	int r = tablefile_ca_read(path, NULL, ret, msg, sizeof(msg));

	if (r < 0) {
		fprintf(stderr, "mmtrustctl: refused: partner.ca: --ca %s\n", msg);
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}

/* One option's value into obj[member]; every value given arrives or the
 * command fails (a string that is not UTF-8 is a usage error). */
static int put_field(const struct ctl_args *a, const struct ctl_optval *o, size_t k,
		     json_t *obj)
{
	const char *member = field_opts[k].member;
	json_t *v = NULL, *list;
	bool b;
	int rc = EXIT_OK;

	switch (field_opts[k].how) {
	case H_STRING:
	case H_LIST:
		v = json_string(o->value);
		break;
	case H_BOOL:
		rc = ctl_arg_bool(a, o->id, &b);
		v = json_boolean(b);
		break;
	case H_CA:
		rc = ca_value(o->value, &v);
		/* A second --ca: the two CAs of a rollover, as a list. */
		if (rc == EXIT_OK && (list = json_object_get(obj, member)) != NULL) {
			if (json_is_string(list)) {
				json_t *arr = json_pack("[O]", list);

				if (!arr || json_object_set_new(obj, member, arr) < 0) {
					json_decref(v);
					return EXIT_REFUSED;
				}
				list = arr;
			}
			return json_array_append_new(list, v) < 0 ? EXIT_REFUSED : EXIT_OK;
		}
		break;
	case H_TRUE:
	case H_FALSE:
		if (json_object_get(obj, member))
			return ctl_usage(a, "--enable and --disable exclude each other");
		v = json_boolean(field_opts[k].how == H_TRUE);
		break;
	}
	if (rc != EXIT_OK)
		return rc;
	if (!v)
		return ctl_usage(a, "%s: '%s' is not UTF-8 text", ctl_opt_name(o->id), o->value);
	if (field_opts[k].how != H_LIST)
		return json_object_set_new(obj, member, v) < 0 ? EXIT_REFUSED : EXIT_OK;
	list = json_object_get(obj, member);
	if (!list && json_object_set_new(obj, member, list = json_array()) < 0) {
		json_decref(v);
		return EXIT_REFUSED;
	}
	return json_array_append_new(list, v) < 0 ? EXIT_REFUSED : EXIT_OK;
}

/* The field options of a into set/add/remove, in the order given. */
static int build_fields(const struct ctl_args *a, json_t *target[3])
{
	int rc = EXIT_OK;

	for (size_t i = 0; i < a->n_opts && rc == EXIT_OK; i++)
		for (size_t k = 0; k < sizeof(field_opts) / sizeof(field_opts[0]); k++)
			if (field_opts[k].id == a->opts[i].id)
				rc = put_field(a, &a->opts[i], k, target[field_opts[k].where]);
	return rc;
}

/* ---- commands ---- */

static int changes(struct ctl *ctl, json_t *req)
{
	return ctl_admin_show(ctl, req, print_changes);
}

static int cmd_partner_add(struct ctl *ctl, const struct ctl_args *a)
{
	json_t *t[3] = { ctl_pack(a, "{s:s}", "domain", a->pos[0]), NULL, NULL };
	int rc = t[W_SET] ? build_fields(a, t) : EXIT_USAGE;

	if (rc == EXIT_OK)
		rc = changes(ctl, ctl_pack(a, "{s:s, s:O, s:b}", "op", "partner.add", "partner",
					   t[W_SET], "dry_run", ctl_flag(a, O_DRY_RUN)));
	json_decref(t[W_SET]);
	return rc;
}

static int cmd_partner_set(struct ctl *ctl, const struct ctl_args *a)
{
	json_t *t[3] = { json_object(), json_object(), json_object() };
	int rc = build_fields(a, t);

	if (rc == EXIT_OK && !json_object_size(t[W_SET]) && !json_object_size(t[W_ADD]) &&
	    !json_object_size(t[W_REMOVE]))
		rc = ctl_usage(a, "nothing to change");
	if (rc == EXIT_OK)
		rc = changes(ctl, ctl_pack(a, "{s:s, s:s, s:O, s:O, s:O, s:b}", "op", "partner.set",
					   "domain", a->pos[0], "set", t[W_SET], "add", t[W_ADD],
					   "remove", t[W_REMOVE], "dry_run",
					   ctl_flag(a, O_DRY_RUN)));
	for (int i = 0; i < 3; i++)
		json_decref(t[i]);
	return rc;
}

static int cmd_partner_del(struct ctl *ctl, const struct ctl_args *a)
{
	return changes(ctl, ctl_pack(a, "{s:s, s:s, s:b}", "op", "partner.del", "domain",
				     a->pos[0], "dry_run", ctl_flag(a, O_DRY_RUN)));
}

static int cmd_partner_show(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s, s:s}", "op", "partner.show", "domain", a->pos[0]),
		    print_partner_long);
}

static int cmd_partner_list(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s}", "op", "partner.list"), print_list_result);
}

static int cmd_apply(struct ctl *ctl, const struct ctl_args *a)
{
	char errbuf[1024];
	json_t *partners;
	int r;

	r = tablefile_read(a->pos[0], &partners, errbuf, sizeof(errbuf));
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: %s\n", errbuf);
		return EXIT_REFUSED;
	}
	return changes(ctl, ctl_pack(a, "{s:s, s:o, s:b, s:b}", "op", "apply", "partners", partners,
				     "dry_run", ctl_flag(a, O_DRY_RUN), "allow_shrink",
				     ctl_flag(a, O_ALLOW_SHRINK)));
}

static int cmd_export(struct ctl *ctl, const struct ctl_args *a)
{
	const char *path = ctl_arg(a, O_OUTPUT);
	char errbuf[512] = "";
	json_t *result;
	FILE *out = stdout;
	int r, rc;

	rc = ctl_admin(ctl, ctl_pack(a, "{s:s, s:b}", "op", "partner.list", "config", 1), &result);
	if (rc != EXIT_OK)
		return rc;
	if (path && !(out = fopen(path, "we"))) {
		fprintf(stderr, "mmtrustctl: %s: %s\n", path, strerror(errno));
		json_decref(result);
		return EXIT_REFUSED;
	}
	r = tablefile_write(out, json_object_get(result, "partners"), errbuf, sizeof(errbuf));
	if (r == 0 && fflush(out) != 0)
		r = -errno;
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	json_decref(result);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: export: %s\n", errbuf[0] ? errbuf : strerror(-r));
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}

const struct command partner_commands[] = {
	{ "partner", "add",
	  "DOMAIN --kind K --agreement yes|no --range CIDR... --gateway ADDRESS... --ca FILE [OPTIONS]",
	  "add a partner",
	  "Add a partner.  DOMAIN is its SIP domain, a fully qualified name; it is stored\n"
	  "in lower case without a trailing dot.  The daemon allocates the partner's\n"
	  "reqid from its reserved range; it never changes while the partner exists.\n"
	  "No range may overlap another partner's.  Every value is checked by the\n"
	  "daemon, which names the field and the reason when it refuses one; nothing\n"
	  "changes then.\n"
	  "\n"
	  "--ca FILE is read as bytes (at most 1 MiB): a text file is sent as it is and\n"
	  "must be one PEM certificate block with nothing but blank lines around it;\n"
	  "a DER certificate (one ASN.1 SEQUENCE spanning the file) is converted to\n"
	  "PEM, as `openssl x509 -inform DER` would; other binary data is refused\n"
	  "(exit 1, naming partner.ca).  One certificate per file, not a bundle: the\n"
	  "CA that issues the partner's certificates.  During a CA rollover give --ca\n"
	  "twice, the old CA and the new one: charon accepts a peer certificate issued\n"
	  "by either, so the partner can re-issue its gateways' certificates one by\n"
	  "one; a third is refused.  Drop the old CA with 'partner set --ca NEW' once\n"
	  "every gateway has a new certificate.\n"
	  "\n"
	  "Revocation: --crl FILE (repeatable) names a CRL file by its absolute path.\n"
	  "mmtrustd reads it at once and refuses a path that does not exist or is not a\n"
	  "CRL (PEM or DER, at most 65535 bytes, a VICI value's limit); it loads it into\n"
	  "charon, reads it again on SIGHUP and within a second of a change on disk,\n"
	  "and when new content arrives re-authenticates the partner's tunnel, so that a\n"
	  "revoked certificate loses its tunnel.  A file that later goes missing is\n"
	  "reported in 'mmtrustctl status' and the log.  --revocation strict|ifuri|relaxed\n"
	  "(default ifuri) is charon's rule for a certificate whose status is unknown:\n"
	  "strict refuses it, ifuri refuses it when it names a CRL/OCSP URI that gave\n"
	  "no answer, relaxed accepts it.  CRL and OCSP URIs in certificates are\n"
	  "fetched by charon itself (Debian: libstrongswan-extra-plugins, the curl\n"
	  "plugin).\n",
	  ADMIN | FIELDS, 1, 1, cmd_partner_add },
	{ "partner", "set", "DOMAIN [OPTIONS]", "change a partner",
	  "Change a partner: only the fields given change.  --range, --gateway and\n"
	  "--crl replace the whole list; --add-range, --del-range, --add-gateway,\n"
	  "--del-gateway, --add-crl and --del-crl edit it.  --ca (once, or twice for a\n"
	  "CA rollover) replaces the partner's CAs.  The domain and the reqid cannot\n"
	  "change.  --ca, --crl and --revocation work as 'partner add --help'\n"
	  "describes.\n",
	  ADMIN | FIELDS | EDITS, 1, 1, cmd_partner_set },
	{ "partner", "del", "DOMAIN [--dry-run]", "delete a partner",
	  "Delete a partner: its policies and tunnels go with it.  Its reqid is not\n"
	  "handed to another partner until the whole reserved range has gone round.\n",
	  ADMIN | OPT(O_DRY_RUN), 1, 1, cmd_partner_del },
	{ "partner", "show", "DOMAIN", "show one partner",
	  "Show one partner: every field, its reqid, and each CA's subject, SHA-256\n"
	  "fingerprint and expiry, its revocation mode and CRL files ('mmtrustctl\n"
	  "status' shows whether each CRL was read and loaded).\n",
	  ADMIN, 1, 1, cmd_partner_show },
	{ "partner", "list", "", "list all partners",
	  "List all partners, one line each, sorted by domain.  REQID is the value\n"
	  "`ip xfrm policy` and `ip xfrm state` show for the partner's entries.\n",
	  ADMIN, 0, 0, cmd_partner_list },
	{ NULL, "apply", "FILE [--dry-run] [--allow-shrink]", "make the table equal to FILE (YAML)",
	  "Make the partner table equal to FILE ('-' for standard input): partners in\n"
	  "FILE but not in the table are added, those that differ are changed, those\n"
	  "not in FILE are DELETED.  The difference is shown and applied in one\n"
	  "transaction: if any partner is refused, nothing changes.  Applying the\n"
	  "output of 'export' changes nothing.\n"
	  "\n"
	  "The format is described in docs/admin-protocol.md; examples/partners.yaml\n"
	  "is an example.  FILE may be at most 16 MiB (16777216 bytes); a larger file\n"
	  "is refused before anything is sent (exit 1), and the table is unchanged.\n"
	  "ca_file: PATH keeps certificates out of the file; each is read like\n"
	  "'partner add --ca' (at most 1 MiB, PEM or DER).  ca and ca_file take a\n"
	  "list of two during a CA rollover.  crls: [PATH, ...] and revocation: MODE\n"
	  "as 'partner add --help' describes; export leaves them out when they are\n"
	  "the defaults (no CRLs, ifuri).\n"
	  "\n"
	  "The shrink guard: an apply that removes or changes partners so that more\n"
	  "than [spd] shrink_limit percent (default 50) of the kernel policies\n"
	  "mmtrustd holds would be deleted is refused (exit 1, naming\n"
	  "spd.shrink_limit, how many and whose) -- a truncated or wrong FILE must not\n"
	  "wipe enforcement.  --allow-shrink confirms it.  --dry-run answers as the\n"
	  "apply would, guard included.\n",
	  ADMIN | OPT(O_DRY_RUN) | OPT(O_ALLOW_SHRINK), 1, 1, cmd_apply },
	{ NULL, "export", "[-o FILE]", "write the table as a YAML file for apply",
	  "Write the whole partner table as a YAML file in the format 'apply' reads,\n"
	  "with each CA inline, sorted by domain.\n",
	  OPT(O_HELP) | OPT(O_SOCKET) | OPT(O_OUTPUT), 0, 0, cmd_export },
	{ 0 },
};
