/* mmtrustctl: the commands that read the daemon's state: lookup, log,
 * status, audit. */
#include <stdio.h>
#include <string.h>

#include "cli/ctl.h"

#define ADMIN OPT(O_HELP) | OPT(O_JSON) | OPT(O_SOCKET)

static void print_lookup(const json_t *r)
{
	if (!json_is_string(json_object_get(r, "partner"))) {
		printf("%s: no partner\n", jstr(r, "address"));
		return;
	}
	printf("%s: %s (range %s, reqid %" JSON_INTEGER_FORMAT ", %s, agreement %s, path %s%s)\n",
	       jstr(r, "address"), jstr(r, "partner"), jstr(r, "range"), jint(r, "reqid"),
	       jstr(r, "kind"), jyesno(r, "agreement"), jstr(r, "path"),
	       json_is_true(json_object_get(r, "enabled")) ? "" : ", disabled");
}

static void print_log(const json_t *result)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(result, "entries"), i, e) {
		const json_t *before = json_object_get(e, "before");
		const json_t *after = json_object_get(e, "after");
		const char *key;
		bool first = true;
		json_t *v;

		printf("%s  #%-5" JSON_INTEGER_FORMAT " %-10s uid %-6" JSON_INTEGER_FORMAT
		       " %-12s %-4s %s",
		       jstr(e, "time"), jint(e, "txn"), jstr(e, "user"), jint(e, "uid"),
		       jstr(e, "request"), jstr(e, "action"), jstr(e, "domain"));
		if (!strcmp(jstr(e, "action"), "set")) {
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

static void print_tunnel(const json_t *tun)
{
	const json_t *ike = json_object_get(tun, "ike_state");

	if (!tun)
		printf("-");
	else if (json_is_string(json_object_get(tun, "remote_id")))
		printf("%s %s@%s spi %s/%s since %s", jstr(tun, "state"), jstr(tun, "remote_id"),
		       jstr(tun, "remote_host"), jstr(tun, "spi_in"), jstr(tun, "spi_out"),
		       jstr(tun, "since"));
	else
		printf("%s%s%s", jstr(tun, "state"), json_is_string(ike) ? ", IKE " : "",
		       json_is_string(ike) ? json_string_value(ike) : "");
}

static void print_status(const json_t *r)
{
	const json_t *k = json_object_get(r, "kernel"), *ike = json_object_get(r, "ike");
	const json_t *store = json_object_get(r, "store");
	size_t i;
	json_t *p;

	if (json_is_false(json_object_get(store, "writable")))
		printf("store: %s is READ-ONLY, every change is refused: %s\n", jstr(store, "path"),
		       jstr(store, "problem"));

	{
		const json_t *sn = json_object_get(r, "snapshot");

		if (json_is_object(sn))
			printf("snapshot: %s, generation %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
			       " partners, %" JSON_INTEGER_FORMAT " tunnels up%s\n", jstr(sn, "path"),
			       jint(sn, "generation"), jint(sn, "partners"), jint(sn, "tunnels_up"),
			       json_is_true(json_object_get(sn, "current")) ? ""
			       : " (NOT current: libmmtrust asks the query socket)");
		else if (json_is_null(sn))
			printf("snapshot: none (every libmmtrust answer is a round trip)\n");
	}
	if (json_is_true(json_object_get(k, "programmed")))
		printf("kernel: policies programmed: %" JSON_INTEGER_FORMAT " expected, %"
		       JSON_INTEGER_FORMAT " present, %" JSON_INTEGER_FORMAT " in sync "
		       "(band %" JSON_INTEGER_FORMAT "+0..256, tag uid %" JSON_INTEGER_FORMAT ")\n",
		       jint(k, "expected"), jint(k, "present"), jint(k, "in_sync"),
		       jint(k, "priority_base"), jint(k, "tag"));
	else
		printf("kernel: policies NOT programmed: %s\n", jstr(k, "error"));
	{
		const json_t *c = json_object_get(k, "counters");

		if (jint(c, "drift_repairs") || jint(c, "log_suppressed"))
			printf("drift: %" JSON_INTEGER_FORMAT " repairs, %" JSON_INTEGER_FORMAT
			       " fights (%" JSON_INTEGER_FORMAT " going on), %" JSON_INTEGER_FORMAT
			       " log lines suppressed\n",
			       jint(c, "drift_repairs"), jint(c, "fights_raised"),
			       jint(c, "fights_active"), jint(c, "log_suppressed"));
	}
	json_array_foreach(json_object_get(r, "fights"), i, p)
		printf("ALARM drift fight: partner %s since %s, %" JSON_INTEGER_FORMAT " repairs, "
		       "next repair waits %" JSON_INTEGER_FORMAT " s; evidence: %s\n",
		       jstr(p, "partner"), jstr(p, "since"), jint(p, "repairs"),
		       jint(p, "backoff_s"), jstr(p, "evidence"));
	if (json_is_true(json_object_get(ike, "enabled")))
		printf("charon: %s (%s)\n",
		       json_is_true(json_object_get(ike, "connected")) ? "connected" : "NOT connected",
		       jstr(ike, "socket"));
	printf("%-32s %8s %-9s %9s %7s %9s %4s  %s\n", "DOMAIN", "REQID", "STATE", "POLICIES",
	       "MISSING", "CONFLICTS", "SAS", "TUNNEL");
	json_array_foreach(json_object_get(r, "partners"), i, p) {
		const json_t *pol = json_object_get(p, "policies"), *sas = json_object_get(p, "sas");
		char pols[48] = "-", sa[24] = "-";

		if (pol)
			snprintf(pols, sizeof(pols), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
				 jint(pol, "in_sync"), jint(pol, "expected"));
		if (json_is_integer(sas))
			snprintf(sa, sizeof(sa), "%" JSON_INTEGER_FORMAT, json_integer_value(sas));
		printf("%-32s %8" JSON_INTEGER_FORMAT " %-9s %9s %7" JSON_INTEGER_FORMAT
		       " %9" JSON_INTEGER_FORMAT " %4s  ",
		       jstr(p, "domain"), jint(p, "reqid"), jstr(p, "state"), pols,
		       jint(pol, "missing"), jint(pol, "foreign_conflicts"), sa);
		print_tunnel(json_object_get(p, "tunnel"));
		if (json_object_get(p, "error"))
			printf("  %s", jstr(p, "error"));
		putchar('\n');
	}
	/* A CRL that is not in charon as it is on disk turns revocation
	 * checks off or stale: said under the table, one line each. */
	json_array_foreach(json_object_get(r, "partners"), i, p) {
		const json_t *rev = json_object_get(p, "revocation"), *crl;
		size_t j;

		/* Nothing enforces revocation (no IKE): say so once. */
		if (json_is_string(json_object_get(rev, "why"))) {
			if (json_array_size(json_object_get(rev, "crls")))
				printf("CRL problem: partner %s: %zu CRL files not used: %s\n",
				       jstr(p, "domain"), json_array_size(json_object_get(rev, "crls")),
				       jstr(rev, "why"));
			continue;
		}
		json_array_foreach(json_object_get(rev, "crls"), j, crl) {
			const json_t *err = json_object_get(crl, "error");

			if (!strcmp(jstr(crl, "state"), "ok") &&
			    json_is_true(json_object_get(crl, "loaded")) && !json_is_string(err))
				continue;
			printf("CRL problem: partner %s: %s: %s%s%s\n", jstr(p, "domain"),
			       jstr(crl, "path"), jstr(crl, "state"),
			       json_is_string(err) ? ", " : "",
			       json_is_string(err) ? json_string_value(err) : "");
		}
	}
}

static void print_owner(const json_t *e)
{
	const json_t *partner = json_object_get(e, "partner");
	const char *owner = json_string_value(json_object_get(e, "owner"));

	printf("\t# %s%s%s", owner ? owner : (json_is_string(partner) ? "mmtrust" : "other"),
	       json_is_string(partner) ? ": partner " : "",
	       json_is_string(partner) ? json_string_value(partner) : "");
	if (json_object_get(e, "note"))
		printf(" -- %s", jstr(e, "note"));
	putchar('\n');
}

static void print_audit(const json_t *r)
{
	size_t i, j;
	json_t *e, *t;

	printf("# policies (ip -s xfrm policy)\n");
	json_array_foreach(json_object_get(r, "policies"), i, e) {
		printf("src %s dst %s uid %" JSON_INTEGER_FORMAT "\n", jstr(e, "src"), jstr(e, "dst"),
		       jint(e, "uid"));
		printf("\tdir %s action %s priority %" JSON_INTEGER_FORMAT " index %"
		       JSON_INTEGER_FORMAT "\n",
		       jstr(e, "dir"), jstr(e, "action"), jint(e, "priority"), jint(e, "index"));
		json_array_foreach(json_object_get(e, "tmpl"), j, t)
			printf("\ttmpl src %s dst %s proto %s reqid %" JSON_INTEGER_FORMAT
			       " mode %s level %s\n",
			       jstr(t, "src"), jstr(t, "dst"), jstr(t, "proto"), jint(t, "reqid"),
			       jstr(t, "mode"), jstr(t, "level"));
		print_owner(e);
	}
	printf("# states (ip -s xfrm state)\n");
	json_array_foreach(json_object_get(r, "sas"), i, e) {
		printf("src %s dst %s\n\tproto %s spi %s reqid %" JSON_INTEGER_FORMAT
		       " mode %s\n\t%" JSON_INTEGER_FORMAT "(bytes), %" JSON_INTEGER_FORMAT
		       "(packets)\n",
		       jstr(e, "src"), jstr(e, "dst"), jstr(e, "proto"), jstr(e, "spi"),
		       jint(e, "reqid"), jstr(e, "mode"), jint(e, "bytes"), jint(e, "packets"));
		print_owner(e);
	}
}

static int cmd_lookup(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s, s:s}", "op", "lookup", "address", a->pos[0]),
		    print_lookup);
}

static int cmd_log(struct ctl *ctl, const struct ctl_args *a)
{
	const char *limit = ctl_arg(a, O_LIMIT), *domain = ctl_arg(a, O_DOMAIN);
	long long n = 0;
	char *end;

	if (limit) {
		n = strtoll(limit, &end, 10);
		if (!*limit || *end || n < 0)
			return ctl_usage(a, "--limit: '%s' is not a count", limit);
	}
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s, s:I, s:s*}", "op", "log", "limit", (json_int_t)n,
				  "domain", domain),
		    print_log);
}

static int cmd_status(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s, s:s*}", "op", "status", "domain",
				  a->n_pos ? a->pos[0] : NULL),
		    print_status);
}

static void print_reload(const json_t *r)
{
	printf("reloaded: %" JSON_INTEGER_FORMAT " partners from %s\n", jint(r, "partners"),
	       jstr(r, "store"));
}

static int cmd_reload(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s, s:b}", "op", "reload", "allow_shrink",
					    ctl_flag(a, O_ALLOW_SHRINK)),
			      print_reload);
}

/* The exposition text verbatim (it ends with a newline). */
static void print_metrics(const json_t *r)
{
	const char *text = json_string_value(json_object_get(r, "text"));

	if (text)
		fputs(text, stdout);
}

static int cmd_metrics(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s}", "op", "metrics"), print_metrics);
}

static int cmd_audit(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_admin_show(ctl, ctl_pack(a, "{s:s}", "op", "audit"), print_audit);
}

const struct command inspect_commands[] = {
	{ NULL, "lookup", "ADDRESS", "which partner an address belongs to",
	  "Which partner's range holds ADDRESS (longest prefix match over all ranges),\n"
	  "with its reqid, kind and agreement.  Exit status 0 whether or not a partner\n"
	  "matched; --json gives \"partner\": null for none.\n",
	  ADMIN, 1, 1, cmd_lookup },
	{ NULL, "log", "[--domain DOMAIN] [-n N]", "the audit trail",
	  "The audit trail, oldest first: when, who (local user and pid from the admin\n"
	  "socket's peer credentials), which request, and what changed.\n",
	  ADMIN | OPT(O_DOMAIN) | OPT(O_LIMIT), 0, 0, cmd_log },
	{ NULL, "status", "[DOMAIN]", "per partner: kernel policies expected vs present",
	  "Per partner, what mmtrustd wants in the kernel's SPD against what the kernel\n"
	  "has (kept current from XFRM events):\n"
	  "  STATE      in-sync, missing (policies absent or different: mmtrustd\n"
	  "             repairs drift within a second), conflict (a policy of another\n"
	  "             program has one of our selectors; reported, never overwritten),\n"
	  "             error (the partner cannot be programmed, e.g. no gateway of\n"
	  "             our tunnel address's family), disabled, seg (no tunnel of ours)\n"
	  "  POLICIES   in sync / expected\n"
	  "  SAS        SAs in the kernel's SAD with the partner's reqid\n"
	  "  TUNNEL     the partner's CHILD_SA as charon reports it\n",
	  ADMIN, 0, 1, cmd_status },
	{ NULL, "metrics", "", "the daemon's metrics in the Prometheus text format",
	  "The metrics mmtrustd exposes (docs/metrics.md), in the Prometheus text\n"
	  "exposition format 0.0.4, printed as they come: per partner its tunnel, SAs,\n"
	  "bytes, packets and errors of its SAs, rekeys, kernel policies and drift\n"
	  "repairs; the query answers by direction, pai and reason; the daemon's own.\n"
	  "The same text is served over HTTP when [metrics] listen is set.\n",
	  ADMIN, 0, 0, cmd_metrics },
	{ NULL, "audit", "", "the kernel's XFRM policies and SAs, annotated with their partner",
	  "Every XFRM policy and SA in mmtrustd's network namespace, in the order and\n"
	  "terms of `ip xfrm policy` / `ip xfrm state`, each annotated with the partner\n"
	  "it belongs to (by reqid and mmtrust's selector tag), and flagged when it\n"
	  "sits in mmtrust's reqid range, priority band or tag but the partner table\n"
	  "does not explain it.  Entries of other programs are listed as \"other\".\n",
	  ADMIN, 0, 0, cmd_audit },
	{ NULL, "reload", "[--allow-shrink]", "re-read the configuration file and the store",
	  "What SIGHUP does, with an answer: mmtrustd reads its configuration file and\n"
	  "its store again and carries them into the kernel and charon.  A refused\n"
	  "reload (a bad file, a store that is not one, a partner that claims our own\n"
	  "addresses) changes nothing: the daemon keeps running on what it had, and\n"
	  "the reason is printed (exit 1).\n"
	  "\n"
	  "The shrink guard: a reload whose table would delete more than [spd]\n"
	  "shrink_limit percent (default 50) of the kernel policies mmtrustd holds\n"
	  "is refused, naming how many and whose; --allow-shrink confirms it.\n",
	  ADMIN | OPT(O_ALLOW_SHRINK), 0, 0, cmd_reload },
	{ 0 },
};
