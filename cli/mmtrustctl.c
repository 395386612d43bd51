/* mmtrustctl: provision and inspect mmtrustd's partner table.
 *
 * A command table in the manner of wireguard-tools' wg: each command has
 * its own option set, parsed by getopt_long from the table below, and its
 * help is generated from the same table, so help and parser cannot
 * disagree.  Everything goes through the daemon's sockets; the daemon is
 * the one judge of every value (this program reads files and builds
 * requests). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "client/mmtrust.h"

struct opt_desc {
	const char *name;
	char short_name;     /* 0: none */
	const char *arg;     /* NULL: a flag */
	bool repeat;         /* may be given more than once, all values kept */
	const char *help;
};

static const struct opt_desc opt_descs[O__MAX] = {
	[O_HELP] = { "help", 'h', NULL, false, "this help" },
	[O_JSON] = { "json", 'j', NULL, false,
		     "the daemon's answer as JSON (one object; refusals too, on stdout, "
		     "with the message on stderr)" },
	[O_SOCKET] = { "socket", 's', "PATH", false,
		       "the admin socket (default " MMTRUST_ADMIN_SOCKET ", or $MMTRUST_ADMIN_SOCKET)" },
	[O_QUERY_SOCKET] = { "query-socket", 0, "PATH", false,
			     "the CSCF query socket (default " MMTRUST_QUERY_SOCKET
			     ", or $MMTRUST_QUERY_SOCKET)" },
	[O_KIND] = { "kind", 0, "ims|non-ims", false,
		     "IMS network or not (level 1: tells IMS traffic from non-IMS traffic)" },
	[O_AGREEMENT] = { "agreement", 0, "yes|no", false,
			  "a service agreement exists: only then is the partner trusted for "
			  "P-Asserted-Identity (also true|false)" },
	[O_RANGE] = { "range", 0, "CIDR", true,
		      "a prefix of the partner's SIP entities, IPv4 or IPv6, host bits zero; "
		      "repeat for several (set: replaces the whole list)" },
	[O_GATEWAY] = { "gateway", 0, "ADDRESS", true,
			"a partner IKE/tunnel endpoint; repeat for several (set: replaces the "
			"whole list)" },
	[O_CA] = { "ca", 0, "FILE", true,
		   "the CA certificate that must sign the partner's certificate: a file with "
		   "one PEM block and nothing else but blank lines, or one DER certificate "
		   "(sent as PEM); the daemon checks it is a CA and valid now.  Give it twice "
		   "during a CA rollover (old and new CA: either may sign); set: replaces the "
		   "CAs" },
	[O_ESP] = { "esp", 0, "encrypt|integrity-only", false,
		    "ESP with AES-GCM-128 (default) or null encryption with HMAC-SHA-256" },
	[O_PATH] = { "path", 0, "tunnel|seg", false,
		     "an IPsec tunnel mmtrust manages (default), or an IMS partner behind the "
		     "operator's security gateway (NDS/IP): no tunnel of ours" },
	[O_ENABLE] = { "enable", 0, NULL, false, "give the partner policies and tunnels (default)" },
	[O_DISABLE] = { "disable", 0, NULL, false,
			"keep the partner and its reqid, but no policies and no tunnel" },
	[O_ADD_RANGE] = { "add-range", 0, "CIDR", true, "add a range to the list" },
	[O_DEL_RANGE] = { "del-range", 0, "CIDR", true, "remove a range from the list" },
	[O_ADD_GATEWAY] = { "add-gateway", 0, "ADDRESS", true, "add a gateway to the list" },
	[O_DEL_GATEWAY] = { "del-gateway", 0, "ADDRESS", true, "remove a gateway from the list" },
	[O_DRY_RUN] = { "dry-run", 0, NULL, false, "validate and show the change, apply nothing" },
	[O_OUTPUT] = { "output", 'o', "FILE", false, "write to FILE instead of standard output" },
	[O_DOMAIN] = { "domain", 0, "DOMAIN", false, "only the entries of this partner" },
	[O_LIMIT] = { "limit", 'n', "N", false, "only the last N entries" },
	[O_SPI] = { "spi", 0, "SPI", false,
		    "the SPI of the SA the message arrived on, as the daemon reads it "
		    "(docs/protocol.md); passed on as given" },
	[O_DST_IN] = { "dst", 0, "ADDRESS", false,
		       "the local address the message arrived on (Kamailio's $Ri): 'protected' "
		       "holds only for a (source, destination) pair our policies cover" },
	[O_DST_OUT] = { "dst", 0, "ADDRESS", false, "ask by the next hop's address instead of a DOMAIN" },
	[O_PRIVACY_ID] = { "privacy-id", 0, NULL, false, "the message carries \"Privacy: id\"" },
	[O_CRL] = { "crl", 0, "FILE", true,
		    "a CRL file (PEM or DER, at most 65535 bytes) charon checks the partner's "
		    "certificates against, by absolute path: mmtrustd reads it now (it must "
		    "exist and be a CRL), loads it into charon and again whenever it changes; "
		    "repeat for several (set: replaces the whole list)" },
	[O_ADD_CRL] = { "add-crl", 0, "FILE", true, "add a CRL file to the list" },
	[O_DEL_CRL] = { "del-crl", 0, "FILE", true, "remove a CRL file from the list" },
	[O_REVOCATION] = { "revocation", 0, "strict|ifuri|relaxed", false,
			   "when a certificate whose revocation status is unknown is refused: "
			   "strict: always; ifuri (default): when it names a CRL or OCSP URI "
			   "that gave no answer; relaxed: never (only a known revocation "
			   "refuses)" },
	[O_CHECK] = { "check", 0, NULL, false,
		      "judge the status as a health check: a summary line, one line per "
		      "problem, and an exit status that says the worst found (0 OK, 4 "
		      "WARNING, 5 TUNNEL DOWN, 6 POLICIES NOT IN SYNC)" },
	[O_NAGIOS] = { "nagios", 0, NULL, false,
		       "as --check, in the Nagios plugin convention: exit 0 OK, 1 WARNING, "
		       "2 CRITICAL, 3 UNKNOWN, and performance data after '|'" },
	[O_SINCE] = { "since", 0, "TIME", false,
		      "only entries at or after TIME: ISO 8601 in UTC (2026-12-01T10:00:00Z, "
		      "2026-12-01) or relative to now (-30m, -2h, -7d; s m h d)" },
	[O_UNTIL] = { "until", 0, "TIME", false,
		      "only entries at or before TIME (as --since); a date runs to the end of "
		      "that day, a minute to the end of that minute" },
	[O_EVENT_KIND] = { "kind", 0, "KIND", true,
			   "only entries of this kind: change (a provisioning change) or an "
			   "event kind (tunnel-up, tunnel-down, rekey, identity-refused, "
			   "drift-repair, conflict, sa-deleted, crl-loaded, revoked, "
			   "address-lost, address-back, start, stop, reload); repeat for several" },
	[O_ALLOW_SHRINK] = { "allow-shrink", 0, NULL, false,
			     "go ahead even if this deletes more than [spd] shrink_limit percent "
			     "of the kernel policies mmtrustd holds (the shrink guard)" },
};

static const char exit_status_help[] =
	"Exit status: 0 ok, 1 refused (by the daemon, or a file mmtrustctl could not\n"
	"read or convert), 2 usage error, 3 daemon unreachable.\n";

static const struct {
	const char *name, *summary;
} groups[] = {
	{ "partner", "add, change, delete and show partners" },
	{ "query", "ask what a CSCF asks, over the query socket" },
};

static const struct command *const command_lists[] = {
	partner_commands, inspect_commands, query_commands,
};

#define for_each_command(c)                                                              \
	for (size_t _l = 0; _l < sizeof(command_lists) / sizeof(command_lists[0]); _l++) \
		for (const struct command *c = command_lists[_l]; c->name; c++)

const char *ctl_opt_name(enum opt_id id)
{
	static char names[O__MAX][24];

	snprintf(names[id], sizeof(names[id]), "--%s", opt_descs[id].name);
	return names[id];
}

const char *ctl_arg(const struct ctl_args *a, enum opt_id id)
{
	for (size_t i = 0; i < a->n_opts; i++)
		if (a->opts[i].id == id)
			return a->opts[i].value;
	return NULL;
}

bool ctl_flag(const struct ctl_args *a, enum opt_id id)
{
	for (size_t i = 0; i < a->n_opts; i++)
		if (a->opts[i].id == id)
			return true;
	return false;
}

static void command_name(const struct command *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s", c->group ? c->group : "", c->group ? " " : "", c->name);
}

int ctl_usage(const struct ctl_args *a, const char *fmt, ...)
{
	char name[64];
	va_list ap;

	command_name(a->cmd, name, sizeof(name));
	fprintf(stderr, "mmtrustctl %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: mmtrustctl %s %s\n'mmtrustctl %s --help' describes the options.\n",
		name, a->cmd->synopsis, name);
	return EXIT_USAGE;
}

int ctl_arg_bool(const struct ctl_args *a, enum opt_id id, bool *ret)
{
	const char *v = ctl_arg(a, id);

	if (!strcmp(v, "yes") || !strcmp(v, "true"))
		*ret = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false"))
		*ret = false;
	else
		return ctl_usage(a, "%s: '%s' is not yes or no", ctl_opt_name(id), v);
	return EXIT_OK;
}

json_t *ctl_pack(const struct ctl_args *a, const char *fmt, ...)
{
	json_error_t jerr;
	json_t *j;
	va_list ap;

	va_start(ap, fmt);
	j = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (!j)
		ctl_usage(a, "cannot build the request: %s", jerr.text);
	return j;
}

/* ---- help ---- */

/* Text wrapped at 79 columns, every line indented by indent; the first
 * line continues at column col. */
static void print_wrapped(FILE *f, const char *text, int indent, int col)
{
	const char *p = text;

	while (*p) {
		size_t word = strcspn(p, " ");

		if (col > indent && col + 1 + (int)word > 79) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)word, p);
		col += (int)word;
		p += word;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static void print_options(FILE *f, const char *title, uint64_t mask)
{
	fprintf(f, "%s (--opt VALUE or --opt=VALUE):\n", title);
	for (int id = 0; id < O__MAX; id++) {
		const struct opt_desc *d = &opt_descs[id];
		char head[64];
		int n;

		if (!(mask & OPT(id)))
			continue;
		n = snprintf(head, sizeof(head), "  %c%c%s--%s%s%s%s", d->short_name ? '-' : ' ',
			     d->short_name ? d->short_name : ' ', d->short_name ? ", " : "  ", d->name,
			     d->arg ? " " : "", d->arg ? d->arg : "", d->repeat ? "..." : "");
		fputs(head, f);
		if (n >= 30) {
			fprintf(f, "\n%30s", "");
			n = 30;
		}
		fprintf(f, "%*s", 30 - n, "");
		print_wrapped(f, d->help, 30, 30);
	}
}

static void command_help(FILE *f, const struct command *c)
{
	char name[64];

	command_name(c, name, sizeof(name));
	fprintf(f, "Usage: mmtrustctl %s %s\n\n%s\n", name, c->synopsis, c->description);
	print_options(f, "Options", c->opts);
	fprintf(f, "\n%s", exit_status_help);
}

static const char *group_summary(const char *name)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strcmp(groups[i].name, name))
			return groups[i].summary;
	return NULL;
}

static void main_help(FILE *f, const char *group)
{
	fprintf(f, "Usage: mmtrustctl [OPTIONS] %s%s [ARGS] [COMMAND OPTIONS]\n\n",
		group ? group : "COMMAND", group ? " SUBCOMMAND" : "");
	if (group)
		fprintf(f, "%s: %s.\n\n", group, group_summary(group));
	else
		fputs("Provision and inspect the mmtrust service partner table: the trusted SIP\n"
		      "peering partners of the Mm interface, their address ranges, IKE gateways,\n"
		      "CA and ESP settings.  Every change goes through mmtrustd's admin socket, is\n"
		      "validated there, applied in one transaction and written to the audit\n"
		      "trail with your user name.\n\n",
		      f);
	fputs("Commands:\n", f);
	for_each_command(c) {
		char name[64];

		if (group && (!c->group || strcmp(c->group, group)))
			continue;
		command_name(c, name, sizeof(name));
		fprintf(f, "  %-18s", name);
		print_wrapped(f, c->summary, 20, 20);
	}
	fprintf(f, "\n'mmtrustctl %s%s --help' describes a command and its options.\n\n",
		group ? group : "COMMAND", group ? " SUBCOMMAND" : "");
	if (!group) {
		print_options(f, "Options before the command (a command takes those that apply to it after it too)",
			      OPT(O_SOCKET) | OPT(O_QUERY_SOCKET) | OPT(O_JSON) | OPT(O_HELP));
		fputs("  -V, --version               print the version\n\n"
		      "The partner fields, the admin protocol and the table file (its format and\n"
		      "its size limit) are described in docs/admin-protocol.md.\n\n",
		      f);
	}
	fputs(exit_status_help, f);
}

/* ---- parsing ---- */

/* Apply an option that sets a global setting; the rest are the command's. */
static void apply_global(struct ctl *ctl, enum opt_id id, const char *value)
{
	if (id == O_JSON)
		ctl->json = true;
	else if (id == O_SOCKET)
		ctl->admin_socket = value;
	else if (id == O_QUERY_SOCKET)
		ctl->query_socket = value;
}

/* getopt_long's tables for the options in mask, after prefix in shorts:
 * long options carry their opt_id + 256, short ones their letter.
 * Returns the number of long options. */
static size_t build_getopt(uint64_t mask, const char *prefix, struct option *longs, char *shorts)
{
	size_t nl = 0, ns = strlen(prefix);

	memcpy(shorts, prefix, ns);
	for (int id = 0; id < O__MAX; id++) {
		const struct opt_desc *d = &opt_descs[id];

		if (!(mask & OPT(id)))
			continue;
		longs[nl++] = (struct option){ d->name, d->arg ? required_argument : no_argument,
					       NULL, 256 + id };
		if (d->short_name) {
			shorts[ns++] = d->short_name;
			if (d->arg)
				shorts[ns++] = ':';
		}
	}
	longs[nl] = (struct option){ 0 };
	shorts[ns] = '\0';
	return nl;
}

static int short_to_id(uint64_t mask, int ch)
{
	for (int id = 0; id < O__MAX; id++)
		if ((mask & OPT(id)) && opt_descs[id].short_name == ch)
			return id;
	return -1;
}

/* What getopt_long could not take (ch '?' or ':'), as a message naming
 * the option as typed: "--spi" of "--spi=1". */
static void bad_option(char *const *argv, int ch, char *buf, size_t size)
{
	const char *arg = argv[optind - 1];
	char name[40];

	if (optopt > 0 && optopt < 256)
		snprintf(name, sizeof(name), "-%c", optopt);
	else if (optopt >= 256)
		snprintf(name, sizeof(name), "--%s", opt_descs[optopt - 256].name);
	else
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
	/* glibc: optopt is the option's val when a known option lacks or
	 * wrongly has a value, 0 for an unknown (or ambiguous) long option */
	snprintf(buf, size, ch == ':' ? "option '%s' needs a value"
			    : optopt >= 256 ? "option '%s' takes no value"
			    : "unknown option '%s'", name);
}

/* Parse argv (argv[0] the command's name) against the command's options.
 * Options and positional arguments may mix; "--" ends the options. */
static int parse_command(struct ctl *ctl, const struct command *c, int argc, char **argv,
			 struct ctl_args *a, bool *ret_help)
{
	struct option longs[O__MAX + 1];
	char shorts[2 * O__MAX + 3], first_error[160] = "";
	struct ctl_optval *vals = calloc((size_t)argc + 1, sizeof(*vals));
	size_t n = 0;
	int ch, rc = EXIT_OK;

	a->cmd = c;
	if (!vals) {
		fprintf(stderr, "mmtrustctl: out of memory\n");
		return EXIT_REFUSED;
	}
	/* ':' reports a missing value apart; no '+': getopt permutes, so
	 * options may follow the arguments */
	build_getopt(c->opts, ":", longs, shorts);
	optind = 0;  /* glibc: start afresh on a new vector */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		int id = ch >= 256 ? ch - 256 : short_to_id(c->opts, ch);

		if (ch == '?' || ch == ':') {
			if (!first_error[0])
				bad_option(argv, ch, first_error, sizeof(first_error));
			continue;
		}
		if (id == O_HELP) {
			*ret_help = true;
			continue;
		}
		if (!opt_descs[id].repeat && !first_error[0]) {
			for (size_t i = 0; i < n; i++)
				if (vals[i].id == (enum opt_id)id)
					snprintf(first_error, sizeof(first_error),
						 "option '--%s' given twice", opt_descs[id].name);
		}
		vals[n++] = (struct ctl_optval){ id, opt_descs[id].arg ? optarg : NULL };
		apply_global(ctl, id, optarg);
	}
	a->opts = vals;
	a->n_opts = n;
	a->pos = argv + optind;
	a->n_pos = argc - optind;
	if (*ret_help)
		return EXIT_OK;
	if (first_error[0])
		rc = ctl_usage(a, "%s", first_error);
	else if (a->n_pos < c->min_pos)
		rc = ctl_usage(a, "missing argument");
	else if (a->n_pos > c->max_pos)
		rc = ctl_usage(a, "unexpected argument '%s'", a->pos[c->max_pos]);
	else if (ctl->json && !(c->opts & OPT(O_JSON)))
		rc = ctl_usage(a, "--json does not apply here");
	return rc;
}

static const struct command *find_command(const char *group, const char *name)
{
	for_each_command(c)
		if (group ? c->group && !strcmp(c->group, group) && !strcmp(c->name, name)
			  : !c->group && !strcmp(c->name, name))
			return c;
	return NULL;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int main(int argc, char **argv)
{
	static const uint64_t global_opts =
		OPT(O_SOCKET) | OPT(O_QUERY_SOCKET) | OPT(O_JSON) | OPT(O_HELP);
	struct option longs[O__MAX + 2];
	char shorts[2 * O__MAX + 4], bad[160];
	size_t nl;
	struct ctl ctl = {
		.admin_socket = getenv("MMTRUST_ADMIN_SOCKET") ?: MMTRUST_ADMIN_SOCKET,
		.query_socket = getenv("MMTRUST_QUERY_SOCKET") ?: MMTRUST_QUERY_SOCKET,
	};
	struct ctl_args a = { 0 };
	const struct command *c;
	const char *group = NULL;
	bool help = false;
	int ch, i, rc;

	/* Options before the command: stop at the first word ('+'). */
	nl = build_getopt(global_opts, "+:V", longs, shorts);
	longs[nl] = (struct option){ "version", no_argument, NULL, 'V' };
	longs[nl + 1] = (struct option){ 0 };
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		int id = ch >= 256 ? ch - 256 : short_to_id(global_opts, ch);

		if (ch == 'V') {
			printf("mmtrustctl 0.1.0\n");
			return EXIT_OK;
		}
		if (ch == '?' || ch == ':') {
			bad_option(argv, ch, bad, sizeof(bad));
			fprintf(stderr, "mmtrustctl: %s\n'mmtrustctl --help' lists the commands and options.\n",
				bad);
			return EXIT_USAGE;
		}
		if (id == O_HELP) {
			main_help(stdout, NULL);
			return EXIT_OK;
		}
		apply_global(&ctl, id, optarg);
	}
	i = optind;
	if (i >= argc) {
		main_help(stderr, NULL);
		return EXIT_USAGE;
	}
	if (group_summary(argv[i])) {
		group = argv[i++];
		if (i >= argc || is_help(argv[i])) {
			main_help(i >= argc ? stderr : stdout, group);
			return i >= argc ? EXIT_USAGE : EXIT_OK;
		}
	}
	c = find_command(group, argv[i]);
	if (!c) {
		fprintf(stderr, "mmtrustctl: unknown command '%s%s%s'\n'mmtrustctl %s%s--help' lists the commands.\n",
			group ? group : "", group ? " " : "", argv[i], group ? group : "",
			group ? " " : "");
		return EXIT_USAGE;
	}
	rc = parse_command(&ctl, c, argc - i, argv + i, &a, &help);
	if (rc == EXIT_USAGE && !help && ctl_flag(&a, O_NAGIOS)) {
		printf("mmtrust UNKNOWN: usage error (exit 2): see standard error\n");
		rc = 3;  /* the Nagios convention's UNKNOWN */
	}
	if (help) {
		command_help(stdout, c);
		rc = EXIT_OK;
	} else if (rc == EXIT_OK) {
		rc = c->run(&ctl, &a);
	}
	free((void *)a.opts);
	return rc;
}
