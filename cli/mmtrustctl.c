/* mmtrustctl: provision and inspect mmtrustd's partner table.
 * Everything goes through the admin socket; this program validates only
 * what it must to build a request (the daemon is the one judge). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/tablefile.h"
#include "client/mmtrust.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char *socket_path = MMTRUST_ADMIN_SOCKET;
static const char *query_socket_path = MMTRUST_QUERY_SOCKET;
static bool opt_json;

static const char main_usage[] =
	"Usage: mmtrustctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	"\n"
	"Provision and inspect the mmtrust service partner table: the trusted SIP\n"
	"peering partners of the Mm interface, their address ranges, IKE gateways,\n"
	"CA and ESP settings.  Every change goes through mmtrustd's admin socket,\n"
	"is validated there, applied in one transaction and written to the audit\n"
	"trail with your user name.\n"
	"\n"
	"Commands:\n"
	"  partner add DOMAIN ...   add a partner\n"
	"  partner set DOMAIN ...   change a partner\n"
	"  partner del DOMAIN       delete a partner\n"
	"  partner show DOMAIN      show one partner\n"
	"  partner list             list all partners\n"
	"  apply FILE               make the table equal to FILE (YAML)\n"
	"  export [-o FILE]         write the table as a YAML file for apply\n"
	"  lookup ADDRESS           which partner an address belongs to\n"
	"  log [--domain D] [-n N]  the audit trail\n"
	"  status [DOMAIN]          per partner: kernel policies expected vs present\n"
	"  audit                    the kernel's XFRM policies and SAs, annotated with\n"
	"                           the partner each belongs to\n"
	"  query inbound ADDRESS    ask as a CSCF: which partner, protected, keep/strip PAI\n"
	"  query outbound DOMAIN    ask as a CSCF: may PAI go to this next hop\n"
	"  query spi SPI            which partner's SA has this SPI\n"
	"  query watch              print the change events a CSCF subscribes to\n"
	"\n"
	"Options (before or after the command):\n"
	"  -s, --socket PATH   admin socket (default " MMTRUST_ADMIN_SOCKET ",\n"
	"                      or $MMTRUST_ADMIN_SOCKET)\n"
	"  -j, --json          machine-readable output (read commands and changes)\n"
	"  --query-socket PATH the CSCF query socket for 'query' (default\n"
	"                      " MMTRUST_QUERY_SOCKET ", or $MMTRUST_QUERY_SOCKET)\n"
	"  -h, --help          help; 'mmtrustctl COMMAND --help' for a command\n"
	"  -V, --version       print the version\n"
	"\n"
	"Exit status: 0 ok, 1 refused by the daemon (bad input, conflict, not found),\n"
	"2 usage error, 3 daemon unreachable.\n";

static const char partner_field_help[] =
	"Partner fields:\n"
	"  --kind ims|non-ims          IMS network or not (level 1: tells IMS traffic\n"
	"                              from non-IMS traffic)\n"
	"  --agreement yes|no          a service agreement exists: only then is the\n"
	"                              partner trusted for P-Asserted-Identity\n"
	"  --range CIDR                partner SIP entity prefix, IPv4 or IPv6, host\n"
	"                              bits zero; repeat for several\n"
	"  --gateway ADDRESS           partner IKE/tunnel endpoint; repeat for several\n"
	"  --ca FILE                   PEM file of the CA that must sign the partner's\n"
	"                              certificate (must be a CA and not expired)\n"
	"  --esp encrypt|integrity-only\n"
	"                              ESP with AES-GCM-128 (default) or null encryption\n"
	"                              with HMAC-SHA-256\n"
	"  --path tunnel|seg           an IPsec tunnel mmtrust manages (default), or an\n"
	"                              IMS partner behind the operator's security\n"
	"                              gateway (NDS/IP): no tunnel of ours\n"
	"  --enable, --disable         enabled partners get policies and tunnels\n"
	"  --dry-run                   validate and show the change, apply nothing\n";

static const char add_usage[] =
	"Usage: mmtrustctl partner add DOMAIN --kind K --agreement yes|no --range CIDR...\n"
	"                              --gateway ADDR... --ca FILE [OPTIONS]\n"
	"\n"
	"Add a partner.  DOMAIN is its SIP domain, a fully qualified name; it is\n"
	"stored in lower case without a trailing dot.  The daemon allocates the\n"
	"partner's reqid from its reserved range; it never changes while the\n"
	"partner exists.  No range may overlap another partner's.\n"
	"\n";

static const char set_usage[] =
	"Usage: mmtrustctl partner set DOMAIN [OPTIONS]\n"
	"\n"
	"Change a partner: only the fields given change.  --range and --gateway\n"
	"replace the whole list; to edit a list use:\n"
	"  --add-range CIDR, --del-range CIDR, --add-gateway ADDR, --del-gateway ADDR\n"
	"The domain and the reqid cannot change.\n"
	"\n";

static const char del_usage[] =
	"Usage: mmtrustctl partner del DOMAIN [--dry-run]\n"
	"\n"
	"Delete a partner: its policies and tunnels go with it.  Its reqid is not\n"
	"handed to another partner until the whole reserved range has gone round.\n";

static const char show_usage[] =
	"Usage: mmtrustctl partner show DOMAIN [--json]\n"
	"\n"
	"Show one partner: every field, its reqid, and its CA's subject,\n"
	"SHA-256 fingerprint and expiry.\n";

static const char list_usage[] =
	"Usage: mmtrustctl partner list [--json]\n"
	"\n"
	"List all partners, one line each, sorted by domain.  REQID is the value\n"
	"`ip xfrm policy` and `ip xfrm state` show for the partner's entries.\n";

static const char apply_usage[] =
	"Usage: mmtrustctl apply FILE [--dry-run] [--json]\n"
	"\n"
	"Make the partner table equal to FILE ('-' for standard input): partners\n"
	"in FILE but not in the table are added, those that differ are changed,\n"
	"those not in FILE are DELETED.  The difference is shown and applied in\n"
	"one transaction: if any partner is refused, nothing changes.  Applying\n"
	"the output of 'export' changes nothing.  The format is described in\n"
	"docs/admin-protocol.md; examples/partners.yaml is an example.\n"
	"\n"
	"  --dry-run   show the difference, apply nothing\n";

static const char export_usage[] =
	"Usage: mmtrustctl export [-o FILE]\n"
	"\n"
	"Write the whole partner table as a YAML file in the format 'apply' reads\n"
	"(to standard output, or to FILE).\n";

static const char lookup_usage[] =
	"Usage: mmtrustctl lookup ADDRESS [--json]\n"
	"\n"
	"Which partner's range holds ADDRESS (longest prefix match over all\n"
	"ranges), with its reqid, kind and agreement.  Exit status 0 whether or\n"
	"not a partner matched; --json gives \"partner\": null for none.\n";

static const char log_usage[] =
	"Usage: mmtrustctl log [--domain DOMAIN] [-n N] [--json]\n"
	"\n"
	"The audit trail, oldest first: when, who (local user and pid from the\n"
	"admin socket's peer credentials), which request, and what changed.\n"
	"  --domain DOMAIN   only entries of this partner\n"
	"  -n, --limit N     only the last N entries\n";

static const char status_usage[] =
	"Usage: mmtrustctl status [DOMAIN] [--json]\n"
	"\n"
	"Per partner, what mmtrustd wants in the kernel's SPD against what the\n"
	"kernel has (kept current from XFRM events):\n"
	"  STATE      in-sync, missing (policies absent or different: mmtrustd\n"
	"             repairs drift within a second), conflict (a policy of another\n"
	"             program has one of our selectors; reported, never overwritten),\n"
	"             error (the partner cannot be programmed, e.g. no gateway of\n"
	"             our tunnel address's family), disabled, seg (no tunnel of ours)\n"
	"  POLICIES   in sync / expected\n"
	"  SAS        SAs in the kernel's SAD with the partner's reqid\n";

static const char audit_usage[] =
	"Usage: mmtrustctl audit [--json]\n"
	"\n"
	"Every XFRM policy and SA in mmtrustd's network namespace, in the order\n"
	"and terms of `ip xfrm policy` / `ip xfrm state`, each annotated with\n"
	"the partner it belongs to (by reqid and mmtrust's selector tag), and\n"
	"flagged when it sits in mmtrust's reqid range, priority band or tag but\n"
	"the partner table does not explain it.  Entries of other programs are\n"
	"listed as \"other\".\n";

static const char query_usage[] =
	"Usage: mmtrustctl query inbound ADDRESS [--spi SPI] [--json]\n"
	"       mmtrustctl query outbound DOMAIN [--privacy-id] [--json]\n"
	"       mmtrustctl query outbound --dst ADDRESS [--privacy-id] [--json]\n"
	"       mmtrustctl query spi SPI [--json]\n"
	"       mmtrustctl query watch [--json]\n"
	"\n"
	"Ask mmtrustd what a CSCF asks it, over the query socket (with libmmtrust):\n"
	"  inbound    a SIP message came from ADDRESS (over the SA with SPI): which\n"
	"             partner, is it protected by that partner's authenticated SA,\n"
	"             keep or strip P-Asserted-Identity, and why\n"
	"  outbound   may P-Asserted-Identity be forwarded to this next hop; with\n"
	"             --privacy-id the message carries \"Privacy: id\"\n"
	"  spi        which partner's current SA has this SPI (hex)\n"
	"  watch      subscribe and print SA and partner change events until\n"
	"             interrupted\n"
	"The decision table is in docs/privacy.md.  Exit status 0 whatever the\n"
	"answer (keep or strip), 1 when the daemon refused the question.\n";

/* ---- talking to the daemon ---- */

/* Send req (stolen) and return the answer's "result" (new ref) or print
 * the error; *ret_exit is the exit code to use on failure. */
static json_t *call(json_t *req, int *ret_exit)
{
	struct mmtrust *m = NULL;
	char *text = json_dumps(req, JSON_COMPACT), *answer = NULL;
	json_t *a = NULL, *result = NULL;
	json_error_t jerr;
	int r;

	json_decref(req);
	if (!text) {
		fprintf(stderr, "mmtrustctl: out of memory\n");
		*ret_exit = EXIT_REFUSED;
		return NULL;
	}
	r = mmtrust_connect(socket_path, 120000, &m);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: cannot reach mmtrustd at %s: %s%s\n", socket_path,
			strerror(-r),
			r == -EACCES ? " (the admin socket is for root and the admin group)" : "");
		*ret_exit = EXIT_UNREACHABLE;
		goto out;
	}
	r = mmtrust_call(m, text, strlen(text), 0, &answer);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: no answer from mmtrustd at %s: %s\n", socket_path,
			r == -ECONNRESET ? "connection closed (not allowed, or the daemon stopped)"
					 : strerror(-r));
		*ret_exit = EXIT_UNREACHABLE;
		goto out;
	}
	a = json_loads(answer, 0, &jerr);
	if (!a) {
		fprintf(stderr, "mmtrustctl: unreadable answer from mmtrustd: %s\n", jerr.text);
		*ret_exit = EXIT_UNREACHABLE;
		goto out;
	}
	if (!json_is_true(json_object_get(a, "ok"))) {
		json_t *e = json_object_get(a, "error");
		const char *field = json_string_value(json_object_get(e, "field"));

		if (opt_json) {
			json_dumpf(a, stdout, JSON_INDENT(2));
			putchar('\n');
		}
		fprintf(stderr, "mmtrustctl: refused (%s): %s%s%s\n",
			json_string_value(json_object_get(e, "code")), field ? field : "",
			field ? ": " : "", json_string_value(json_object_get(e, "message")));
		*ret_exit = EXIT_REFUSED;
		goto out;
	}
	result = json_object_get(a, "result");
	result = result ? json_incref(result) : json_object();
out:
	json_decref(a);
	free(answer);
	free(text);
	mmtrust_close(m);
	return result;
}

static void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
}

static int usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mmtrustctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n%s", usage);
	return EXIT_USAGE;
}

static char *read_file(const char *path, char *errbuf, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *data = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 4096) {
			char *d = realloc(data, cap = cap ? cap * 2 : 8192);

			if (!d) {
				free(data);
				fclose(f);
				snprintf(errbuf, errlen, "out of memory");
				return NULL;
			}
			data = d;
		}
		n = fread(data + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0 && len < (4u << 20));
	fclose(f);
	data[len] = '\0';
	return data;
}

/* ---- human output ---- */

static const char *yesno(const json_t *v)
{
	return json_is_true(v) ? "yes" : "no";
}

static void join_list(const json_t *arr, char *buf, size_t size)
{
	size_t i, off = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		int n = snprintf(buf + off, size - off, "%s%s", i ? "," : "", json_string_value(v));

		if (n < 0 || (size_t)n >= size - off)
			break;
		off += n;
	}
}

static void print_partner_long(const json_t *p)
{
	char ranges[4096], gws[1024];

	join_list(json_object_get(p, "ranges"), ranges, sizeof(ranges));
	join_list(json_object_get(p, "gateways"), gws, sizeof(gws));
	printf("domain:     %s\n", json_string_value(json_object_get(p, "domain")));
	printf("reqid:      %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(p, "reqid")));
	printf("kind:       %s\n", json_string_value(json_object_get(p, "kind")));
	printf("agreement:  %s\n", yesno(json_object_get(p, "agreement")));
	printf("enabled:    %s\n", yesno(json_object_get(p, "enabled")));
	printf("path:       %s\n", json_string_value(json_object_get(p, "path")));
	printf("esp:        %s\n", json_string_value(json_object_get(p, "esp")));
	printf("ranges:     %s\n", ranges);
	printf("gateways:   %s\n", gws);
	printf("ca subject: %s\n", json_string_value(json_object_get(p, "ca_subject")));
	printf("ca sha256:  %s\n", json_string_value(json_object_get(p, "ca_sha256")));
	printf("ca expires: %s\n", json_string_value(json_object_get(p, "ca_not_after")));
	printf("created:    %s\n", json_string_value(json_object_get(p, "created")));
	printf("updated:    %s\n", json_string_value(json_object_get(p, "updated")));
}

static void print_partner_table(const json_t *list)
{
	size_t i;
	json_t *p;

	printf("%-32s %8s %-8s %-9s %-7s %-6s %-14s %s\n", "DOMAIN", "REQID", "KIND",
	       "AGREEMENT", "ENABLED", "PATH", "ESP", "RANGES / GATEWAYS");
	json_array_foreach(list, i, p) {
		char ranges[4096], gws[1024];

		join_list(json_object_get(p, "ranges"), ranges, sizeof(ranges));
		join_list(json_object_get(p, "gateways"), gws, sizeof(gws));
		printf("%-32s %8" JSON_INTEGER_FORMAT " %-8s %-9s %-7s %-6s %-14s %s via %s\n",
		       json_string_value(json_object_get(p, "domain")),
		       json_integer_value(json_object_get(p, "reqid")),
		       json_string_value(json_object_get(p, "kind")),
		       yesno(json_object_get(p, "agreement")), yesno(json_object_get(p, "enabled")),
		       json_string_value(json_object_get(p, "path")),
		       json_string_value(json_object_get(p, "esp")), ranges, gws);
	}
	if (json_array_size(list) == 0)
		printf("(no partners)\n");
}

static void print_value(const json_t *v)
{
	char buf[4096];

	if (json_is_array(v)) {
		join_list(v, buf, sizeof(buf));
		printf("%s", buf);
	} else if (json_is_boolean(v)) {
		printf("%s", yesno(v));
	} else if (json_is_string(v)) {
		printf("%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	}
}

static void print_changes(const json_t *result)
{
	const json_t *changes = json_object_get(result, "changes");
	bool applied = json_is_true(json_object_get(result, "applied"));
	size_t i;
	json_t *c;

	json_array_foreach(changes, i, c) {
		const char *action = json_string_value(json_object_get(c, "action"));
		const char *domain = json_string_value(json_object_get(c, "domain"));
		const json_t *after = json_object_get(c, "after");
		const json_t *before = json_object_get(c, "before");

		if (strcmp(action, "add") == 0) {
			char ranges[4096];

			join_list(json_object_get(after, "ranges"), ranges, sizeof(ranges));
			printf("+ %s: add (%s, agreement %s, ranges %s)", domain,
			       json_string_value(json_object_get(after, "kind")),
			       yesno(json_object_get(after, "agreement")), ranges);
			if (applied)
				printf(", reqid %" JSON_INTEGER_FORMAT,
				       json_integer_value(json_object_get(after, "reqid")));
			putchar('\n');
		} else if (strcmp(action, "del") == 0) {
			printf("- %s: delete (reqid %" JSON_INTEGER_FORMAT ")\n", domain,
			       json_integer_value(json_object_get(before, "reqid")));
		} else {
			size_t j;
			json_t *f;

			printf("~ %s: change\n", domain);
			json_array_foreach(json_object_get(c, "fields"), j, f) {
				const char *key = json_string_value(f);

				/* The CA is shown by its fingerprint. */
				if (strcmp(key, "ca") == 0)
					key = "ca_sha256";
				printf("    %s: ", key);
				print_value(json_object_get(before, key));
				printf(" -> ");
				print_value(json_object_get(after, key));
				putchar('\n');
			}
		}
	}
	if (json_array_size(changes) == 0)
		printf("no changes\n");
	else if (applied)
		printf("applied %zu change%s\n", json_array_size(changes),
		       json_array_size(changes) == 1 ? "" : "s");
	else
		printf("dry run: %zu change%s, nothing applied\n", json_array_size(changes),
		       json_array_size(changes) == 1 ? "" : "s");
}

static int finish(json_t *result, void (*human)(const json_t *))
{
	if (!result)
		return -1;
	if (opt_json)
		print_json(result);
	else
		human(result);
	json_decref(result);
	return EXIT_OK;
}

/* ---- commands ---- */

enum {
	OPT_KIND = 256, OPT_AGREEMENT, OPT_RANGE, OPT_GATEWAY, OPT_CA, OPT_ESP, OPT_PATH,
	OPT_ENABLE, OPT_DISABLE, OPT_DRY_RUN, OPT_ADD_RANGE, OPT_DEL_RANGE, OPT_ADD_GATEWAY,
	OPT_DEL_GATEWAY, OPT_DOMAIN, OPT_SPI, OPT_DST, OPT_PRIVACY_ID, OPT_QUERY_SOCKET,
};

static const struct option partner_opts[] = {
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "agreement", required_argument, NULL, OPT_AGREEMENT },
	{ "range", required_argument, NULL, OPT_RANGE },
	{ "gateway", required_argument, NULL, OPT_GATEWAY },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "esp", required_argument, NULL, OPT_ESP },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "enable", no_argument, NULL, OPT_ENABLE },
	{ "disable", no_argument, NULL, OPT_DISABLE },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "add-range", required_argument, NULL, OPT_ADD_RANGE },
	{ "del-range", required_argument, NULL, OPT_DEL_RANGE },
	{ "add-gateway", required_argument, NULL, OPT_ADD_GATEWAY },
	{ "del-gateway", required_argument, NULL, OPT_DEL_GATEWAY },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "spi", required_argument, NULL, OPT_SPI },
	{ "dst", required_argument, NULL, OPT_DST },
	{ "privacy-id", no_argument, NULL, OPT_PRIVACY_ID },
	{ "query-socket", required_argument, NULL, OPT_QUERY_SOCKET },
	{ "limit", required_argument, NULL, 'n' },
	{ "output", required_argument, NULL, 'o' },
	{ "json", no_argument, NULL, 'j' },
	{ "socket", required_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static void list_push(json_t *obj, const char *key, const char *value)
{
	json_t *a = json_object_get(obj, key);

	if (!a) {
		a = json_array();
		json_object_set_new(obj, key, a);
	}
	json_array_append_new(a, json_string(value));
}

struct args {
	const char *usage;
	json_t *set, *add, *remove;
	bool dry_run, help;
	const char *domain_filter, *output, *dst;
	long limit;
	uint32_t spi;
	bool privacy_id;
	char **pos;
	int n_pos;
};

/* Parse the options every command shares; field options only where
 * allow_fields (add/set) and list edits only where allow_edit (set). */
static int parse_args(int argc, char **argv, struct args *a, bool allow_fields,
		      bool allow_edit)
{
	char errbuf[512];
	int c;

	a->set = json_object();
	a->add = json_object();
	a->remove = json_object();
	a->limit = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "n:o:js:h", partner_opts, NULL)) != -1) {
		bool field = c >= OPT_KIND && c <= OPT_DEL_GATEWAY && c != OPT_DRY_RUN;
		bool edit = c >= OPT_ADD_RANGE && c <= OPT_DEL_GATEWAY;

		if ((field && !allow_fields) || (edit && !allow_edit))
			return usage_error(a->usage, "option '%s' does not apply here",
					   argv[optind - 1]);
		switch (c) {
		case OPT_KIND:
			json_object_set_new(a->set, "kind", json_string(optarg));
			break;
		case OPT_ESP:
			json_object_set_new(a->set, "esp", json_string(optarg));
			break;
		case OPT_PATH:
			json_object_set_new(a->set, "path", json_string(optarg));
			break;
		case OPT_AGREEMENT:
			if (!strcmp(optarg, "yes") || !strcmp(optarg, "true"))
				json_object_set_new(a->set, "agreement", json_true());
			else if (!strcmp(optarg, "no") || !strcmp(optarg, "false"))
				json_object_set_new(a->set, "agreement", json_false());
			else
				return usage_error(a->usage, "--agreement: '%s' is not yes or no",
						   optarg);
			break;
		case OPT_ENABLE:
		case OPT_DISABLE:
			json_object_set_new(a->set, "enabled", json_boolean(c == OPT_ENABLE));
			break;
		case OPT_RANGE:
			list_push(a->set, "ranges", optarg);
			break;
		case OPT_GATEWAY:
			list_push(a->set, "gateways", optarg);
			break;
		case OPT_ADD_RANGE:
			list_push(a->add, "ranges", optarg);
			break;
		case OPT_DEL_RANGE:
			list_push(a->remove, "ranges", optarg);
			break;
		case OPT_ADD_GATEWAY:
			list_push(a->add, "gateways", optarg);
			break;
		case OPT_DEL_GATEWAY:
			list_push(a->remove, "gateways", optarg);
			break;
		case OPT_CA: {
			char *pem = read_file(optarg, errbuf, sizeof(errbuf));

			if (!pem)
				return usage_error(a->usage, "--ca: %s", errbuf);
			json_object_set_new(a->set, "ca", json_string(pem));
			free(pem);
			break;
		}
		case OPT_DRY_RUN:
			a->dry_run = true;
			break;
		case OPT_DOMAIN:
			a->domain_filter = optarg;
			break;
		case OPT_SPI: {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 16);

			if (!*optarg || *end || v == 0 || v > UINT32_MAX)
				return usage_error(a->usage, "--spi: '%s' is not a hex SPI", optarg);
			a->spi = v;
			break;
		}
		case OPT_DST:
			a->dst = optarg;
			break;
		case OPT_PRIVACY_ID:
			a->privacy_id = true;
			break;
		case OPT_QUERY_SOCKET:
			query_socket_path = optarg;
			break;
		case 'n': {
			char *end;

			a->limit = strtol(optarg, &end, 10);
			if (!*optarg || *end || a->limit < 0)
				return usage_error(a->usage, "--limit: '%s' is not a count", optarg);
			break;
		}
		case 'o':
			a->output = optarg;
			break;
		case 'j':
			opt_json = true;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'h':
			a->help = true;
			break;
		default:
			return usage_error(a->usage, "unknown or incomplete option '%s'",
					   argv[optind - 1]);
		}
	}
	a->pos = argv + optind;
	a->n_pos = argc - optind;
	return EXIT_OK;
}

static void args_free(struct args *a)
{
	json_decref(a->set);
	json_decref(a->add);
	json_decref(a->remove);
}

static json_t *request(const char *op)
{
	return json_pack("{s:s}", "op", op);
}

static int need_pos(struct args *a, int n, const char *what)
{
	if (a->n_pos < n)
		return usage_error(a->usage, "missing %s", what);
	if (a->n_pos > n)
		return usage_error(a->usage, "unexpected argument '%s'", a->pos[n]);
	return EXIT_OK;
}

static int cmd_partner_add(struct args *a, int *rc)
{
	json_t *req, *result;

	if ((*rc = need_pos(a, 1, "DOMAIN")) != EXIT_OK)
		return 0;
	json_object_set_new(a->set, "domain", json_string(a->pos[0]));
	req = request("partner.add");
	json_object_set(req, "partner", a->set);
	json_object_set_new(req, "dry_run", json_boolean(a->dry_run));
	result = call(req, rc);
	return finish(result, print_changes);
}

static int cmd_partner_set(struct args *a, int *rc)
{
	json_t *req;

	if ((*rc = need_pos(a, 1, "DOMAIN")) != EXIT_OK)
		return 0;
	if (!json_object_size(a->set) && !json_object_size(a->add) && !json_object_size(a->remove)) {
		*rc = usage_error(a->usage, "nothing to change%s", "");
		return 0;
	}
	req = json_pack("{s:s, s:s, s:O, s:O, s:O, s:b}", "op", "partner.set", "domain",
			a->pos[0], "set", a->set, "add", a->add, "remove", a->remove, "dry_run",
			a->dry_run);
	return finish(call(req, rc), print_changes);
}

static int cmd_partner_del(struct args *a, int *rc)
{
	if ((*rc = need_pos(a, 1, "DOMAIN")) != EXIT_OK)
		return 0;
	return finish(call(json_pack("{s:s, s:s, s:b}", "op", "partner.del", "domain", a->pos[0],
				     "dry_run", a->dry_run), rc),
		      print_changes);
}

static int cmd_partner_show(struct args *a, int *rc)
{
	if ((*rc = need_pos(a, 1, "DOMAIN")) != EXIT_OK)
		return 0;
	return finish(call(json_pack("{s:s, s:s}", "op", "partner.show", "domain", a->pos[0]), rc),
		      print_partner_long);
}

static void print_list(const json_t *result)
{
	print_partner_table(json_object_get(result, "partners"));
}

static int cmd_partner_list(struct args *a, int *rc)
{
	if ((*rc = need_pos(a, 0, "")) != EXIT_OK)
		return 0;
	return finish(call(request("partner.list"), rc), print_list);
}

static int cmd_apply(struct args *a, int *rc)
{
	char errbuf[1024];
	json_t *partners, *req;
	int r;

	if ((*rc = need_pos(a, 1, "FILE")) != EXIT_OK)
		return 0;
	r = tablefile_read(a->pos[0], &partners, errbuf, sizeof(errbuf));
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: %s\n", errbuf);
		*rc = EXIT_REFUSED;
		return 0;
	}
	req = json_pack("{s:s, s:o, s:b}", "op", "apply", "partners", partners, "dry_run",
			a->dry_run);
	return finish(call(req, rc), print_changes);
}

static int cmd_export(struct args *a, int *rc)
{
	char errbuf[512];
	json_t *result;
	FILE *out = stdout;
	int r;

	if ((*rc = need_pos(a, 0, "")) != EXIT_OK)
		return 0;
	result = call(json_pack("{s:s, s:b}", "op", "partner.list", "config", 1), rc);
	if (!result)
		return 0;
	if (a->output && !(out = fopen(a->output, "we"))) {
		fprintf(stderr, "mmtrustctl: %s: %s\n", a->output, strerror(errno));
		json_decref(result);
		*rc = EXIT_REFUSED;
		return 0;
	}
	r = tablefile_write(out, json_object_get(result, "partners"), errbuf, sizeof(errbuf));
	if (r == 0 && fflush(out) != 0)
		r = -errno;
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	json_decref(result);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: export: %s\n", errbuf[0] ? errbuf : strerror(-r));
		*rc = EXIT_REFUSED;
	}
	return 0;
}

static void print_lookup(const json_t *r)
{
	const json_t *p = json_object_get(r, "partner");

	if (json_is_null(p)) {
		printf("%s: no partner\n", json_string_value(json_object_get(r, "address")));
		return;
	}
	printf("%s: %s (range %s, reqid %" JSON_INTEGER_FORMAT ", %s, agreement %s, path %s%s)\n",
	       json_string_value(json_object_get(r, "address")), json_string_value(p),
	       json_string_value(json_object_get(r, "range")),
	       json_integer_value(json_object_get(r, "reqid")),
	       json_string_value(json_object_get(r, "kind")),
	       yesno(json_object_get(r, "agreement")),
	       json_string_value(json_object_get(r, "path")),
	       json_is_true(json_object_get(r, "enabled")) ? "" : ", disabled");
}

static int cmd_lookup(struct args *a, int *rc)
{
	if ((*rc = need_pos(a, 1, "ADDRESS")) != EXIT_OK)
		return 0;
	return finish(call(json_pack("{s:s, s:s}", "op", "lookup", "address", a->pos[0]), rc),
		      print_lookup);
}

static void print_log(const json_t *result)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(result, "entries"), i, e) {
		const char *action = json_string_value(json_object_get(e, "action"));
		const json_t *before = json_object_get(e, "before");
		const json_t *after = json_object_get(e, "after");

		printf("%s  #%-5" JSON_INTEGER_FORMAT " %-10s uid %-6" JSON_INTEGER_FORMAT
		       " %-12s %-4s %s",
		       json_string_value(json_object_get(e, "time")),
		       json_integer_value(json_object_get(e, "txn")),
		       json_string_value(json_object_get(e, "user")),
		       json_integer_value(json_object_get(e, "uid")),
		       json_string_value(json_object_get(e, "request")), action,
		       json_string_value(json_object_get(e, "domain")));
		if (strcmp(action, "set") == 0) {
			const char *key;
			json_t *v;
			bool first = true;

			json_object_foreach((json_t *)after, key, v) {
				if (json_equal(v, json_object_get(before, key)))
					continue;
				printf("%s%s: ", first ? "  " : "; ", key);
				print_value(json_object_get(before, key));
				printf(" -> ");
				print_value(v);
				first = false;
			}
		}
		putchar('\n');
	}
	if (json_array_size(json_object_get(result, "entries")) == 0)
		printf("(audit trail is empty)\n");
}

static int cmd_log(struct args *a, int *rc)
{
	json_t *req;

	if ((*rc = need_pos(a, 0, "")) != EXIT_OK)
		return 0;
	req = json_pack("{s:s, s:I}", "op", "log", "limit", (json_int_t)a->limit);
	if (a->domain_filter)
		json_object_set_new(req, "domain", json_string(a->domain_filter));
	return finish(call(req, rc), print_log);
}

static void print_status(const json_t *r)
{
	const json_t *k = json_object_get(r, "kernel");
	size_t i;
	json_t *p;

	if (json_is_true(json_object_get(k, "programmed")))
		printf("kernel: policies programmed: %" JSON_INTEGER_FORMAT " expected, %"
		       JSON_INTEGER_FORMAT " present, %" JSON_INTEGER_FORMAT " in sync "
		       "(band %" JSON_INTEGER_FORMAT "+0..256, tag uid %" JSON_INTEGER_FORMAT ")\n",
		       json_integer_value(json_object_get(k, "expected")),
		       json_integer_value(json_object_get(k, "present")),
		       json_integer_value(json_object_get(k, "in_sync")),
		       json_integer_value(json_object_get(k, "priority_base")),
		       json_integer_value(json_object_get(k, "tag")));
	else
		printf("kernel: policies NOT programmed: %s\n",
		       json_string_value(json_object_get(k, "error")));
	if (json_is_true(json_object_get(json_object_get(r, "ike"), "enabled")))
		printf("charon: %s (%s)\n",
		       json_is_true(json_object_get(json_object_get(r, "ike"), "connected"))
			       ? "connected" : "NOT connected",
		       json_string_value(json_object_get(json_object_get(r, "ike"), "socket")));
	printf("%-32s %8s %-9s %9s %7s %9s %4s  %s\n", "DOMAIN", "REQID", "STATE", "POLICIES",
	       "MISSING", "CONFLICTS", "SAS", "TUNNEL");
	json_array_foreach(json_object_get(r, "partners"), i, p) {
		const json_t *pol = json_object_get(p, "policies"), *sas = json_object_get(p, "sas");
		char pols[32] = "-", sa[16] = "-";

		if (pol)
			snprintf(pols, sizeof(pols), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
				 json_integer_value(json_object_get(pol, "in_sync")),
				 json_integer_value(json_object_get(pol, "expected")));
		if (json_is_integer(sas))
			snprintf(sa, sizeof(sa), "%" JSON_INTEGER_FORMAT, json_integer_value(sas));
		const json_t *tun = json_object_get(p, "tunnel");
		char tunnel[512] = "-";

		if (tun && json_is_string(json_object_get(tun, "remote_id")))
			snprintf(tunnel, sizeof(tunnel), "%s %s@%s spi %s/%s since %s",
				 json_string_value(json_object_get(tun, "state")),
				 json_string_value(json_object_get(tun, "remote_id")),
				 json_string_value(json_object_get(tun, "remote_host")),
				 json_string_value(json_object_get(tun, "spi_in")),
				 json_string_value(json_object_get(tun, "spi_out")),
				 json_string_value(json_object_get(tun, "since")));
		else if (tun)
			snprintf(tunnel, sizeof(tunnel), "%s%s%s",
				 json_string_value(json_object_get(tun, "state")),
				 json_is_string(json_object_get(tun, "ike_state")) ? ", IKE " : "",
				 json_is_string(json_object_get(tun, "ike_state"))
					 ? json_string_value(json_object_get(tun, "ike_state")) : "");
		printf("%-32s %8" JSON_INTEGER_FORMAT " %-9s %9s %7" JSON_INTEGER_FORMAT
		       " %9" JSON_INTEGER_FORMAT " %4s  %s%s%s\n",
		       json_string_value(json_object_get(p, "domain")),
		       json_integer_value(json_object_get(p, "reqid")),
		       json_string_value(json_object_get(p, "state")), pols,
		       json_integer_value(json_object_get(pol, "missing")),
		       json_integer_value(json_object_get(pol, "foreign_conflicts")), sa, tunnel,
		       json_object_get(p, "error") ? "  " : "",
		       json_object_get(p, "error") ? json_string_value(json_object_get(p, "error")) : "");
	}
}

static int cmd_status(struct args *a, int *rc)
{
	json_t *req = request("status");

	if (a->n_pos > 1) {
		*rc = usage_error(a->usage, "unexpected argument '%s'", a->pos[1]);
		json_decref(req);
		return 0;
	}
	if (a->n_pos == 1)
		json_object_set_new(req, "domain", json_string(a->pos[0]));
	return finish(call(req, rc), print_status);
}

static void print_owner(const json_t *e)
{
	const json_t *partner = json_object_get(e, "partner");
	const char *owner = json_string_value(json_object_get(e, "owner"));

	printf("\t# %s%s%s", owner ? owner : (json_is_string(partner) ? "mmtrust" : "other"),
	       json_is_string(partner) ? ": partner " : "",
	       json_is_string(partner) ? json_string_value(partner) : "");
	if (json_object_get(e, "note"))
		printf(" -- %s", json_string_value(json_object_get(e, "note")));
	putchar('\n');
}

static void print_audit(const json_t *r)
{
	size_t i, j;
	json_t *e, *t;

	printf("# policies (ip -s xfrm policy)\n");
	json_array_foreach(json_object_get(r, "policies"), i, e) {
		printf("src %s dst %s uid %" JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(e, "src")),
		       json_string_value(json_object_get(e, "dst")),
		       json_integer_value(json_object_get(e, "uid")));
		printf("\tdir %s action %s priority %" JSON_INTEGER_FORMAT " index %"
		       JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(e, "dir")),
		       json_string_value(json_object_get(e, "action")),
		       json_integer_value(json_object_get(e, "priority")),
		       json_integer_value(json_object_get(e, "index")));
		json_array_foreach(json_object_get(e, "tmpl"), j, t)
			printf("\ttmpl src %s dst %s proto %s reqid %" JSON_INTEGER_FORMAT
			       " mode %s level %s\n",
			       json_string_value(json_object_get(t, "src")),
			       json_string_value(json_object_get(t, "dst")),
			       json_string_value(json_object_get(t, "proto")),
			       json_integer_value(json_object_get(t, "reqid")),
			       json_string_value(json_object_get(t, "mode")),
			       json_string_value(json_object_get(t, "level")));
		print_owner(e);
	}
	printf("# states (ip -s xfrm state)\n");
	json_array_foreach(json_object_get(r, "sas"), i, e) {
		printf("src %s dst %s\n\tproto %s spi %s reqid %" JSON_INTEGER_FORMAT
		       " mode %s\n\t%" JSON_INTEGER_FORMAT "(bytes), %" JSON_INTEGER_FORMAT
		       "(packets)\n",
		       json_string_value(json_object_get(e, "src")),
		       json_string_value(json_object_get(e, "dst")),
		       json_string_value(json_object_get(e, "proto")),
		       json_string_value(json_object_get(e, "spi")),
		       json_integer_value(json_object_get(e, "reqid")),
		       json_string_value(json_object_get(e, "mode")),
		       json_integer_value(json_object_get(e, "bytes")),
		       json_integer_value(json_object_get(e, "packets")));
		print_owner(e);
	}
}

static int cmd_audit(struct args *a, int *rc)
{
	if ((*rc = need_pos(a, 0, "")) != EXIT_OK)
		return 0;
	return finish(call(request("audit"), rc), print_audit);
}

static int query_connect(struct mmtrust **ret, int *rc)
{
	int r = mmtrust_connect(query_socket_path, 10000, ret);

	if (r < 0) {
		fprintf(stderr, "mmtrustctl: cannot reach mmtrustd's query socket %s: %s\n",
			query_socket_path, strerror(-r));
		*rc = EXIT_UNREACHABLE;
	}
	return r;
}

static int query_failed(struct mmtrust *m, int r, int *rc)
{
	if (r == -EPROTO) {
		fprintf(stderr, "mmtrustctl: refused: %s\n", mmtrust_last_error(m));
		*rc = EXIT_REFUSED;
	} else {
		fprintf(stderr, "mmtrustctl: query failed: %s\n", strerror(-r));
		*rc = EXIT_UNREACHABLE;
	}
	return 0;
}

static void print_answer(const char *what, const char *subject, const struct mmtrust_answer *a)
{
	if (opt_json) {
		json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:b, s:b, s:s?, s:s}", "question", what,
				      "subject", subject, "partner", a->partner[0] ? a->partner : NULL,
				      "kind", a->kind[0] ? a->kind : NULL, "agreement", a->agreement,
				      strcmp(what, "outbound") ? "protected" : "trusted",
				      strcmp(what, "outbound") ? a->protected_ : a->trusted, "path",
				      a->path[0] ? a->path : NULL, "reason", a->reason);

		json_object_set_new(o, "pai", json_string(a->pai == MMTRUST_PAI_KEEP ? "keep"
									  : "strip"));
		if (a->spi_in || a->spi_out) {
			char b[16];

			snprintf(b, sizeof(b), "0x%08x", a->spi_in);
			json_object_set_new(o, "spi_in", json_string(b));
			snprintf(b, sizeof(b), "0x%08x", a->spi_out);
			json_object_set_new(o, "spi_out", json_string(b));
			json_object_set_new(o, "remote_id", json_string(a->remote_id));
		}
		print_json(o);
		json_decref(o);
		return;
	}
	if (!a->partner[0]) {
		printf("%s: no partner -> %s P-Asserted-Identity (%s)\n", subject,
		       a->pai == MMTRUST_PAI_KEEP ? "keep" : "strip", a->reason);
		return;
	}
	printf("%s: partner %s (%s, agreement %s, %s)", subject, a->partner, a->kind,
	       a->agreement ? "yes" : "no", a->path);
	if (!strcmp(what, "inbound"))
		printf(", protected %s", a->protected_ ? "yes" : "no");
	else
		printf(", tunnel %s, trusted %s", a->tunnel, a->trusted ? "yes" : "no");
	if (a->spi_in)
		printf(", SA spi in 0x%08x out 0x%08x id %s", a->spi_in, a->spi_out, a->remote_id);
	printf(" -> %s P-Asserted-Identity (%s)\n", a->pai == MMTRUST_PAI_KEEP ? "keep" : "strip",
	       a->reason);
}

static int cmd_query(struct args *a, int *rc)
{
	struct mmtrust_answer ans;
	struct mmtrust *m = NULL;
	const char *what = a->n_pos ? a->pos[0] : "";
	int r;

	if (!strcmp(what, "inbound") || !strcmp(what, "spi")) {
		if ((*rc = need_pos(a, 2, !strcmp(what, "spi") ? "SPI" : "ADDRESS")) != EXIT_OK)
			return 0;
	} else if (!strcmp(what, "outbound")) {
		if (a->dst ? a->n_pos != 1 : a->n_pos != 2) {
			*rc = usage_error(a->usage, "outbound needs a DOMAIN or --dst ADDRESS%s", "");
			return 0;
		}
	} else if (!strcmp(what, "watch")) {
		if ((*rc = need_pos(a, 1, "")) != EXIT_OK)
			return 0;
	} else {
		*rc = usage_error(a->usage, "query needs inbound, outbound, spi or watch%s", "");
		return 0;
	}
	if (query_connect(&m, rc) < 0)
		return 0;
	if (!strcmp(what, "inbound")) {
		r = mmtrust_inbound(m, a->pos[1], a->dst, a->spi, &ans);
	} else if (!strcmp(what, "outbound")) {
		r = mmtrust_outbound(m, a->dst ? NULL : a->pos[1], a->dst, a->privacy_id, &ans);
	} else if (!strcmp(what, "spi")) {
		char *end;
		unsigned long long v = strtoull(a->pos[1], &end, 16);

		if (!*a->pos[1] || *end || v > UINT32_MAX) {
			mmtrust_close(m);
			*rc = usage_error(a->usage, "'%s' is not a hex SPI", a->pos[1]);
			return 0;
		}
		r = mmtrust_spi(m, v, &ans);
		if (r == 0) {
			if (opt_json || !ans.partner[0])
				printf(opt_json ? "{\"spi\": \"0x%08llx\", \"partner\": %s%s%s}\n"
						: "0x%08llx: %s%s%s\n",
				       v, ans.partner[0] && opt_json ? "\"" : "",
				       ans.partner[0] ? ans.partner : (opt_json ? "null" : "no partner's SA"),
				       ans.partner[0] && opt_json ? "\"" : "");
			else
				printf("0x%08llx: %s SA of partner %s (reqid %u, remote id %s)\n", v,
				       ans.direction, ans.partner, ans.reqid, ans.remote_id);
		}
		if (r < 0)
			query_failed(m, r, rc);
		mmtrust_close(m);
		return 0;
	} else {
		struct mmtrust_event e;

		r = mmtrust_subscribe(m);
		if (r == 0) {
			/* Say when the stream is live, so a script can wait for it. */
			printf(opt_json ? "{\"subscribed\": true}\n" : "subscribed\n");
			fflush(stdout);
		}
		while (r == 0 && (r = mmtrust_next_event(m, -1, &e)) == 0) {
			if (opt_json)
				printf("{\"event\": \"%s\", \"partner\": \"%s\"}\n", e.event, e.partner);
			else
				printf("%s %s\n", e.event, e.partner);
			fflush(stdout);
		}
		query_failed(m, r, rc);
		mmtrust_close(m);
		return 0;
	}
	if (r < 0) {
		query_failed(m, r, rc);
	} else {
		print_answer(what, a->dst ? a->dst : a->pos[1], &ans);
	}
	mmtrust_close(m);
	return 0;
}

static const struct command {
	const char *group, *name;
	int (*fn)(struct args *a, int *rc);
	const char *usage;
	bool fields, edit;
} commands[] = {
	{ "partner", "add", cmd_partner_add, add_usage, true, false },
	{ "partner", "set", cmd_partner_set, set_usage, true, true },
	{ "partner", "del", cmd_partner_del, del_usage, false, false },
	{ "partner", "show", cmd_partner_show, show_usage, false, false },
	{ "partner", "list", cmd_partner_list, list_usage, false, false },
	{ NULL, "apply", cmd_apply, apply_usage, false, false },
	{ NULL, "export", cmd_export, export_usage, false, false },
	{ NULL, "lookup", cmd_lookup, lookup_usage, false, false },
	{ NULL, "log", cmd_log, log_usage, false, false },
	{ NULL, "status", cmd_status, status_usage, false, false },
	{ NULL, "audit", cmd_audit, audit_usage, false, false },
	{ NULL, "query", cmd_query, query_usage, false, false },
};

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct args a = { 0 };
	int i = 1, rc = EXIT_OK;

	if (getenv("MMTRUST_ADMIN_SOCKET"))
		socket_path = getenv("MMTRUST_ADMIN_SOCKET");
	if (getenv("MMTRUST_QUERY_SOCKET"))
		query_socket_path = getenv("MMTRUST_QUERY_SOCKET");
	/* Global options before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(main_usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("mmtrustctl 0.1.0\n");
			return EXIT_OK;
		} else if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			opt_json = true;
		} else if ((!strcmp(argv[i], "-s") || !strcmp(argv[i], "--socket")) && i + 1 < argc) {
			socket_path = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			socket_path = argv[i] + 9;
		} else if (!strcmp(argv[i], "--query-socket") && i + 1 < argc) {
			query_socket_path = argv[++i];
		} else {
			fprintf(stderr, "mmtrustctl: unknown option '%s'\n\n%s", argv[i], main_usage);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fputs(main_usage, stderr);
		return EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		const struct command *c = &commands[k];

		if (c->group ? (!strcmp(argv[i], c->group) && i + 1 < argc &&
				!strcmp(argv[i + 1], c->name))
			     : !strcmp(argv[i], c->name)) {
			cmd = c;
			break;
		}
	}
	if (!cmd) {
		if (!strcmp(argv[i], "partner")) {
			if (i + 1 < argc && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h"))) {
				fputs(main_usage, stdout);
				return EXIT_OK;
			}
			fprintf(stderr, "mmtrustctl: partner needs add, set, del, show or list\n\n%s",
				main_usage);
		} else {
			fprintf(stderr, "mmtrustctl: unknown command '%s'\n\n%s", argv[i], main_usage);
		}
		return EXIT_USAGE;
	}
	i += cmd->group ? 1 : 0;
	a.usage = cmd->usage;
	rc = parse_args(argc - i, argv + i, &a, cmd->fields, cmd->edit);
	if (rc == EXIT_OK && a.help) {
		fputs(cmd->usage, stdout);
		if (cmd->fields)
			fputs(partner_field_help, stdout);
	} else if (rc == EXIT_OK && cmd->fn(&a, &rc) < 0 && rc == EXIT_OK) {
		rc = EXIT_REFUSED;
	}
	args_free(&a);
	return rc;
}
