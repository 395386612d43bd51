/* mmtrustctl: the commands that read the daemon's state: lookup, log,
 * status, audit. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ctl.h"
#include "client/mmtrust.h"

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

/* One change: who (user, uid, pid, request) and what (the fields set
 * changed, before -> after). */
static void print_change(const json_t *e)
{
	const json_t *before = json_object_get(e, "before");
	const json_t *after = json_object_get(e, "after");
	const char *key;
	bool first = true;
	json_t *v;

	printf("%s  %s  change  %s by %s (uid %" JSON_INTEGER_FORMAT ", pid %" JSON_INTEGER_FORMAT
	       ", %s, #%" JSON_INTEGER_FORMAT ")",
	       jstr(e, "time"), jstr(e, "domain"), jstr(e, "action"), jstr(e, "user"),
	       jint(e, "uid"), jint(e, "pid"), jstr(e, "request"), jint(e, "txn"));
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

static void print_log(const json_t *result)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(result, "entries"), i, e) {
		if (!strcmp(jstr(e, "type"), "change")) {
			print_change(e);
			continue;
		}
		printf("%s  %s  %s  %s", jstr(e, "time"), jstr(e, "domain"), jstr(e, "kind"),
		       jstr(e, "message"));
		if (jint(e, "suppressed"))
			printf(" (%" JSON_INTEGER_FORMAT " similar events not recorded)",
			       jint(e, "suppressed"));
		putchar('\n');
	}
	if (json_array_size(json_object_get(result, "entries")) == 0)
		printf("(no entries)\n");
	if (json_is_string(json_object_get(result, "note")))
		printf("note: %s\n", jstr(result, "note"));
	if (jint(result, "events_dropped"))
		printf("note: %" JSON_INTEGER_FORMAT " events were dropped (memory full)\n",
		       jint(result, "events_dropped"));
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
	if (!strcmp(jstr(store, "backend"), "postgresql")) {
		printf("store: shared (PostgreSQL) %s as host %s, table version %" JSON_INTEGER_FORMAT
		       ", %s\n", jstr(store, "name"), jstr(store, "host"), jint(store, "version"),
		       json_is_false(json_object_get(store, "connected"))
		       ? "UNREACHABLE, every change is refused" : "connected");
		if (json_is_false(json_object_get(store, "connected")))
			printf("store: unreachable: %s\n", jstr(store, "error"));
		else if (json_is_integer(json_object_get(store, "refused_version")))
			printf("store: version %" JSON_INTEGER_FORMAT " NOT TAKEN here: %s\n",
			       jint(store, "refused_version"), jstr(store, "error"));
	}

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

/* TIME of --since/--until as milliseconds since the epoch: ISO 8601 in
 * UTC (DATE, DATETHH:MM[:SS[.mmm]][Z]) or relative to now (-N with s, m,
 * h or d).  -1 when it is neither.  *span: how much time the spelling
 * names (a day for a DATE, a minute for HH:MM, ...; 1 ms when relative),
 * so that --until 2026-12-01 takes in the whole of that day. */
static int64_t parse_time(const char *s, int64_t now_ms, int64_t *span)
{
	struct tm tm = { 0 };
	const char *end;
	long long n;
	int ms = 0;
	char *e;

	*span = 1;
	if (s[0] == '-') {
		static const struct { char unit; int64_t ms; } units[] = {
			{ 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 },
		};

		if (s[1] < '0' || s[1] > '9')
			return -1;
		errno = 0;
		n = strtoll(s + 1, &e, 10);
		if (errno || e[0] == '\0' || e[1] != '\0' || n > 100LL * 365 * 86400)
			return -1;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (units[i].unit == e[0])
				return now_ms - n * units[i].ms < 0 ? 0 : now_ms - n * units[i].ms;
		return -1;
	}
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || s[0] < '0' || s[0] > '9')
		return -1;
	*span = 86400000;
	if (*end == 'T') {
		const char *t = strptime(end + 1, "%H:%M", &tm);

		if (!t)
			return -1;
		end = t;
		*span = 60000;
		if (*end == ':') {
			if (end[1] < '0' || end[1] > '9' || end[2] < '0' || end[2] > '9' ||
			    end[1] > '6')
				return -1;
			tm.tm_sec = (end[1] - '0') * 10 + (end[2] - '0');
			end += 3;
			*span = 1000;
			if (*end == '.') {
				int digits = 0;

				*span = 1;
				for (end++; *end >= '0' && *end <= '9'; end++, digits++)
					if (digits < 3)
						ms = ms * 10 + (*end - '0');
				if (!digits)
					return -1;
				for (; digits < 3; digits++)
					ms *= 10;
			}
		}
		if (*end == 'Z')
			end++;
	}
	if (*end || tm.tm_sec > 60)
		return -1;
	{
		struct tm norm = tm;
		time_t t = timegm(&norm);

		/* strptime takes 2026-02-31; timegm carries it on to March. */
		if (t == (time_t)-1 || norm.tm_mday != tm.tm_mday || norm.tm_mon != tm.tm_mon)
			return -1;
		return (int64_t)t * 1000 + ms;
	}
}

static int cmd_log(struct ctl *ctl, const struct ctl_args *a)
{
	const char *limit = ctl_arg(a, O_LIMIT), *domain = ctl_arg(a, O_DOMAIN);
	const char *times[2] = { ctl_arg(a, O_SINCE), ctl_arg(a, O_UNTIL) };
	static const enum opt_id time_opts[2] = { O_SINCE, O_UNTIL };
	int64_t bound[2] = { -1, -1 }, now, span;
	struct timespec ts;
	json_t *kinds, *req;
	long long n = 0;
	char *end;

	if (limit) {
		n = strtoll(limit, &end, 10);
		if (!*limit || *end || n < 0)
			return ctl_usage(a, "--limit: '%s' is not a count", limit);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (int i = 0; i < 2; i++)
		if (times[i]) {
			if ((bound[i] = parse_time(times[i], now, &span)) < 0)
				return ctl_usage(a, "%s: '%s' is not a time: ISO 8601 in UTC "
					     "(2026-12-01T10:00:00Z, 2026-12-01) or relative (-30m, "
					     "-2h, -7d)", ctl_opt_name(time_opts[i]), times[i]);
			if (i == 1)  /* --until: to the end of what it names */
				bound[1] += span - 1;
		}
	kinds = json_array();
	for (size_t i = 0; kinds && i < a->n_opts; i++)
		if (a->opts[i].id == O_EVENT_KIND)
			json_array_append_new(kinds, json_string(a->opts[i].value));
	req = ctl_pack(a, "{s:s, s:I, s:s*}", "op", "log", "limit", (json_int_t)n, "domain",
		       domain);
	if (req && bound[0] >= 0)
		json_object_set_new(req, "since", json_integer(bound[0]));
	if (req && bound[1] >= 0)
		json_object_set_new(req, "until", json_integer(bound[1]));
	if (req && json_array_size(kinds))
		json_object_set(req, "kinds", kinds);
	json_decref(kinds);
	return ctl_admin_show(ctl, req, print_log);
}

/* ---- status --check: the status judged (docs/health.md) ---- */

/* The exit statuses of --check beyond ctl.h's; the worst one found wins. */
enum {
	CHECK_WARNING = 4,      /* enforced and up, but something needs a look */
	CHECK_TUNNEL_DOWN = 5,  /* an enabled tunnel partner's tunnel is not up */
	CHECK_NOT_IN_SYNC = 6,  /* an enabled tunnel partner's policies are not in force */
};

struct check {
	json_t *problems;       /* [{code, partner, what, why}] */
	int code;
	size_t partners, tunnels_up, in_sync, warnings;
	const char *domain;     /* DOMAIN given, or NULL */
};

static void problem(struct check *c, int code, const char *partner, const char *what,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void problem(struct check *c, int code, const char *partner, const char *what,
		    const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	json_array_append_new(c->problems, json_pack("{s:i, s:s?, s:s, s:s}", "code", code,
						     "partner", partner, "what", what, "why", why));
	if (code > c->code)
		c->code = code;
	c->warnings += code == CHECK_WARNING;
}

static bool is_true(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* One enabled tunnel partner: its policies (when the kernel is programmed)
 * and its tunnel (when charon can have one). */
static void check_partner(struct check *c, const json_t *p, bool programmed, bool ike_usable)
{
	const char *dom = jstr(p, "domain"), *state = jstr(p, "state");
	const json_t *pol = json_object_get(p, "policies"), *tun = json_object_get(p, "tunnel");

	c->partners++;
	if (programmed) {
		json_int_t exp = jint(pol, "expected"), ok = jint(pol, "in_sync");

		if (json_is_string(json_object_get(p, "error")))
			problem(c, CHECK_NOT_IN_SYNC, dom, "policies", "%s: %s", state,
				jstr(p, "error"));
		else if (strcmp(state, "in-sync") || !pol || ok < exp)
			problem(c, CHECK_NOT_IN_SYNC, dom, "policies",
				"%s: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
				" policies in sync, %" JSON_INTEGER_FORMAT " missing, %"
				JSON_INTEGER_FORMAT " foreign policies on our selectors", state, ok, exp,
				jint(pol, "missing"), jint(pol, "foreign_conflicts"));
		else
			c->in_sync++;
	}
	if (!ike_usable)
		return;
	if (!strcmp(jstr(tun, "state"), "up"))
		c->tunnels_up++;
	else if (json_is_string(json_object_get(tun, "ike_state")))
		problem(c, CHECK_TUNNEL_DOWN, dom, "tunnel", "down (IKE_SA %s)",
			jstr(tun, "ike_state"));
	else
		problem(c, CHECK_TUNNEL_DOWN, dom, "tunnel", "down");
}

/* A CRL of a judged partner that is not in charon as it is on disk. */
static void check_crls(struct check *c, const json_t *p)
{
	const json_t *rev = json_object_get(p, "revocation"), *crl;
	size_t i;

	/* Not used at all ([ike] off): the tunnel's own problem says so. */
	if (json_is_string(json_object_get(rev, "why")))
		return;
	json_array_foreach(json_object_get(rev, "crls"), i, crl) {
		const json_t *err = json_object_get(crl, "error");

		if (!strcmp(jstr(crl, "state"), "ok") && is_true(crl, "loaded") &&
		    !json_is_string(err))
			continue;
		problem(c, CHECK_WARNING, jstr(p, "domain"), "crl", "%s: %s%s%s%s", jstr(crl, "path"),
			jstr(crl, "state"), is_true(crl, "loaded") ? "" : ", not loaded into charon",
			json_is_string(err) ? ": " : "", json_is_string(err) ? json_string_value(err) : "");
	}
}

static void check_expiry(struct check *c, const json_t *status)
{
	const json_t *it;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(status, "expiry"), "warnings"), i, it) {
		const char *what = jstr(it, "what");
		json_int_t days = jint(it, "days_left");
		char when[64];

		if (days < 0)
			snprintf(when, sizeof(when), "EXPIRED %s", jstr(it, "not_after"));
		else
			snprintf(when, sizeof(when), "ends %s (%" JSON_INTEGER_FORMAT " days left)",
				 jstr(it, "not_after"), days);
		if (!strcmp(what, "partner-ca"))
			problem(c, CHECK_WARNING, jstr(it, "partner"), what, "CA %s %s",
				jstr(it, "subject"), when);
		else if (!strcmp(what, "partner-crl") && days < 0)
			problem(c, CHECK_WARNING, jstr(it, "partner"), what,
				"CRL %s: its nextUpdate %s has passed (stale)", jstr(it, "file"),
				jstr(it, "not_after"));
		else if (!strcmp(what, "partner-crl"))
			problem(c, CHECK_WARNING, jstr(it, "partner"), what,
				"CRL %s: its nextUpdate %s is %" JSON_INTEGER_FORMAT " days away: a "
				"re-issued CRL is overdue", jstr(it, "file"), jstr(it, "not_after"), days);
		else
			problem(c, CHECK_WARNING, NULL, what, "our certificate %s (%s) %s",
				jstr(it, "file"), jstr(it, "subject"), when);
	}
}

/* The host, the store, the snapshot, drift fights. */
static void check_daemon(struct check *c, const json_t *status)
{
	const json_t *host = json_object_get(status, "host"), *store = json_object_get(status, "store");
	const json_t *snap = json_object_get(status, "snapshot"), *o;
	size_t i;

	json_array_foreach(json_object_get(status, "fights"), i, o)
		problem(c, CHECK_WARNING, jstr(o, "partner"), "fight",
			"drift fight since %s: %" JSON_INTEGER_FORMAT " repairs, next waits %"
			JSON_INTEGER_FORMAT " s; evidence: %s", jstr(o, "since"), jint(o, "repairs"),
			jint(o, "backoff_s"), jstr(o, "evidence"));
	json_array_foreach(json_object_get(host, "tunnel"), i, o)
		if (!is_true(o, "present"))
			problem(c, CHECK_WARNING, NULL, "tunnel-address", "%s: %s", jstr(o, "address"),
				jstr(o, "reason"));
	json_array_foreach(json_object_get(host, "cscf"), i, o)
		if (!is_true(o, "present"))
			problem(c, CHECK_WARNING, NULL, "cscf-address", "%s (%s): %s", jstr(o, "prefix"),
				jstr(o, "setting"), jstr(o, "reason"));
	json_array_foreach(json_object_get(json_object_get(host, "routes"), "conflicts"), i, o)
		if (!c->domain || !strcmp(c->domain, jstr(o, "partner")))
			problem(c, CHECK_WARNING, jstr(o, "partner"), "route",
				"%s: a foreign route (protocol %" JSON_INTEGER_FORMAT ") holds it in "
				"our table", jstr(o, "range"), jint(o, "protocol"));
	if (json_is_false(json_object_get(store, "writable")))
		problem(c, CHECK_WARNING, NULL, "store", "%s is read-only, every change is refused: %s",
			jstr(store, "path"), jstr(store, "problem"));
	/* A fleet's store away: the table is enforced, changes are refused. */
	if (json_is_false(json_object_get(store, "connected")))
		problem(c, CHECK_WARNING, NULL, "store",
			"the shared store %s is unreachable: %s; table version %"
			JSON_INTEGER_FORMAT " stays enforced, every change is refused",
			jstr(store, "name"), jstr(store, "error"), jint(store, "version"));
	else if (json_is_integer(json_object_get(store, "refused_version")))
		problem(c, CHECK_WARNING, NULL, "store",
			"table version %" JSON_INTEGER_FORMAT " of the shared store is not taken "
			"here (%s); version %" JSON_INTEGER_FORMAT " stays enforced",
			jint(store, "refused_version"), jstr(store, "error"), jint(store, "version"));
	o = json_object_get(status, "metrics");
	if (json_is_object(o) && *jstr(o, "listen") && !is_true(o, "listening"))
		problem(c, CHECK_WARNING, NULL, "metrics", "[metrics] listen %s: not listening: %s",
			jstr(o, "listen"), jstr(o, "problem"));
	if (json_is_object(snap) && !is_true(snap, "current"))
		problem(c, CHECK_WARNING, NULL, "snapshot",
			"%s is not current: libmmtrust asks the query socket", jstr(snap, "path"));
}

static void check_judge(struct check *c, const json_t *status)
{
	const json_t *k = json_object_get(status, "kernel"), *ike = json_object_get(status, "ike");
	bool programmed = is_true(k, "programmed");
	bool ike_on = is_true(ike, "enabled"), ike_usable = ike_on && is_true(ike, "connected");
	const json_t *p;
	size_t i, tunnel_partners = 0;

	json_array_foreach(json_object_get(status, "partners"), i, p)
		tunnel_partners += is_true(p, "enabled") && !strcmp(jstr(p, "path"), "tunnel");
	/* Nothing can be enforced or up for any of them: said once, not per
	 * partner. */
	if (tunnel_partners && !programmed)
		problem(c, CHECK_NOT_IN_SYNC, NULL, "kernel",
			"policies NOT programmed (%s): %zu enabled tunnel partners not enforced",
			jstr(k, "error"), tunnel_partners);
	if (tunnel_partners && !ike_on)
		problem(c, CHECK_TUNNEL_DOWN, NULL, "ike",
			"[ike] enabled = no: no tunnel can be up (%zu enabled tunnel partners)",
			tunnel_partners);
	else if (tunnel_partners && !ike_usable)
		problem(c, CHECK_TUNNEL_DOWN, NULL, "ike",
			"charon is not connected (%s): %zu tunnels down", jstr(ike, "socket"),
			tunnel_partners);
	json_array_foreach(json_object_get(status, "partners"), i, p) {
		if (!is_true(p, "enabled") || strcmp(jstr(p, "path"), "tunnel")) {
			/* Asked about by name: a partner watched on its own that
			 * is disabled or moved to seg has lost its enforcement. */
			if (c->domain)
				problem(c, CHECK_WARNING, jstr(p, "domain"), "partner", "%s",
					!is_true(p, "enabled")
						? "disabled: no policies and no tunnel"
						: "path seg: no policies and no tunnel of ours");
			continue;
		}
		check_partner(c, p, programmed, ike_usable);
		check_crls(c, p);
	}
	/* An empty table enforces nothing (a wrong or emptied store). */
	if (!c->domain && !json_array_size(json_object_get(status, "partners")))
		problem(c, CHECK_WARNING, NULL, "table", "the partner table is empty: nothing is "
			"enforced");
	check_expiry(c, status);
	check_daemon(c, status);
}

static const char *check_state(int code)
{
	switch (code) {
	case EXIT_OK: return "OK";
	case CHECK_WARNING: return "WARNING";
	case CHECK_TUNNEL_DOWN: return "TUNNEL DOWN";
	case CHECK_NOT_IN_SYNC: return "POLICIES NOT IN SYNC";
	default: return "UNKNOWN";
	}
}

/* Nagios plugin exit statuses: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3. */
static int nagios_code(int code)
{
	return code == EXIT_OK ? 0 : code == CHECK_WARNING ? 1
	       : code == CHECK_TUNNEL_DOWN || code == CHECK_NOT_IN_SYNC ? 2 : 3;
}

static void check_summary(const struct check *c, char *buf, size_t size)
{
	const char *word = c->code == EXIT_OK ? "OK" : c->code == CHECK_WARNING ? "WARNING"
			   : "CRITICAL";
	size_t down = c->partners - c->tunnels_up, out = c->partners - c->in_sync;
	int n;

	n = snprintf(buf, size, "mmtrust %s: ", word);
	if (c->code >= CHECK_TUNNEL_DOWN)
		n += snprintf(buf + n, size - n, "%s: ", check_state(c->code));
	if (c->domain)
		n += snprintf(buf + n, size - n, "partner %s: ", c->domain);
	if (!c->partners)
		n += snprintf(buf + n, size - n, c->domain ? "not an enabled tunnel partner"
							   : "no enabled tunnel partner");
	else if (c->domain && !out && !down)
		n += snprintf(buf + n, size - n, "policies in sync, tunnel up");
	else if (out || down)
		n += snprintf(buf + n, size - n, "%zu of %zu enabled tunnel partners not in sync, "
			      "%zu tunnels down", out, c->partners, down);
	else
		n += snprintf(buf + n, size - n, "%zu enabled tunnel partner%s in sync and up",
			      c->partners, c->partners == 1 ? "" : "s");
	if (c->warnings)
		snprintf(buf + n, size - n, "; %zu warning%s", c->warnings,
			 c->warnings == 1 ? "" : "s");
}

/* The status, asked quietly: a refusal or an unreachable daemon becomes
 * the check's own answer, with why. */
static int check_call(const struct ctl *ctl, json_t *req, json_t **ret, char *why, size_t size)
{
	char *text = json_dumps(req, JSON_COMPACT), *answer = NULL;
	struct mmtrust *m = NULL;
	json_t *a = NULL, *e;
	int r, rc = EXIT_UNREACHABLE;

	json_decref(req);
	if (!text) {
		snprintf(why, size, "out of memory");
		return EXIT_REFUSED;
	}
	r = mmtrust_connect(ctl->admin_socket, 30000, &m);
	if (r < 0) {
		snprintf(why, size, "cannot reach mmtrustd at %s: %s", ctl->admin_socket,
			 strerror(-r));
		goto out;
	}
	r = mmtrust_call(m, text, strlen(text), 0, &answer);
	if (r < 0) {
		snprintf(why, size, "no answer from mmtrustd at %s: %s", ctl->admin_socket,
			 strerror(-r));
		goto out;
	}
	a = json_loads(answer, 0, NULL);
	if (!json_is_object(a)) {
		snprintf(why, size, "unreadable answer from mmtrustd");
		goto out;
	}
	if (!is_true(a, "ok")) {
		e = json_object_get(a, "error");
		snprintf(why, size, "refused (%s): %s%s%s", jstr(e, "code"),
			 json_is_string(json_object_get(e, "field")) ? jstr(e, "field") : "",
			 json_is_string(json_object_get(e, "field")) ? ": " : "", jstr(e, "message"));
		rc = EXIT_REFUSED;
		goto out;
	}
	*ret = json_incref(json_object_get(a, "result"));
	rc = *ret ? EXIT_OK : EXIT_UNREACHABLE;
	if (!*ret)
		snprintf(why, size, "an answer without a result");
out:
	json_decref(a);
	free(answer);
	free(text);
	mmtrust_close(m);
	return rc;
}

static int cmd_check(struct ctl *ctl, const struct ctl_args *a)
{
	bool nagios = ctl_flag(a, O_NAGIOS);
	struct check c = { .problems = json_array(), .domain = a->n_pos ? a->pos[0] : NULL };
	json_t *req, *status = NULL, *p;
	char why[1200], summary[1300];
	size_t i;
	int rc;

	if (nagios && ctl->json) {
		json_decref(c.problems);
		printf("mmtrust UNKNOWN: usage error (exit 2): see standard error\n");
		ctl_usage(a, "--nagios and --json exclude each other");
		return 3;
	}
	req = ctl_pack(a, "{s:s, s:s*}", "op", "status", "domain", c.domain);
	rc = req ? check_call(ctl, req, &status, why, sizeof(why)) : EXIT_USAGE;
	if (rc == EXIT_USAGE)
		snprintf(why, sizeof(why), "usage error: see standard error");
	if (rc != EXIT_OK) {
		problem(&c, rc, NULL, "daemon", "%s", why);
		snprintf(summary, sizeof(summary), "mmtrust UNKNOWN: %s", why);
		c.code = rc;
	} else {
		check_judge(&c, status);
		check_summary(&c, summary, sizeof(summary));
		json_decref(status);
	}
	if (ctl->json) {
		json_t *o = json_pack("{s:s, s:i, s:s, s:O, s:I, s:I, s:I, s:I}", "state",
				      check_state(c.code), "code", c.code, "summary", summary,
				      "problems", c.problems, "partners", (json_int_t)c.partners,
				      "tunnels_up", (json_int_t)c.tunnels_up, "policies_in_sync",
				      (json_int_t)c.in_sync, "warnings", (json_int_t)c.warnings);

		ctl_print_json(o, JSON_INDENT(2));
		json_decref(o);
	} else {
		printf("%s", summary);
		if (nagios && rc == EXIT_OK)
			printf(" | partners=%zu tunnels_up=%zu policies_in_sync=%zu warnings=%zu",
			       c.partners, c.tunnels_up, c.in_sync, c.warnings);
		putchar('\n');
		if (rc != EXIT_OK)
			fprintf(stderr, "mmtrustctl: %s\n", why);
		else
			json_array_foreach(c.problems, i, p)
				printf("%-8s %s %s: %s\n",
				       jint(p, "code") == CHECK_WARNING ? "WARNING" : "CRITICAL",
				       json_is_string(json_object_get(p, "partner")) ? jstr(p, "partner")
										 : "-",
				       jstr(p, "what"), jstr(p, "why"));
	}
	json_decref(c.problems);
	return nagios ? nagios_code(c.code) : c.code;
}

static int cmd_status(struct ctl *ctl, const struct ctl_args *a)
{
	if (ctl_flag(a, O_CHECK) || ctl_flag(a, O_NAGIOS))
		return cmd_check(ctl, a);
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
	{ NULL, "log", "[--domain DOMAIN] [--since TIME] [--until TIME] [-n N] [--kind KIND]...",
	  "provisioning changes and daemon events, in time order",
	  "Provisioning changes (the audit trail: when, who -- local user, uid and pid\n"
	  "from the admin socket's peer credentials --, which request, what changed)\n"
	  "merged with the daemon's events (tunnel up and down, rekeys, refused\n"
	  "identities, drift repairs, conflicts, SAs deleted, CRLs, our addresses lost\n"
	  "and back, start, stop, reload), oldest first.  One line per entry: time,\n"
	  "partner (- for none), kind, then who and what for a change, the message for\n"
	  "an event.  Events are kept in the store's history ([log] events_keep rows);\n"
	  "with a read-only store only those since the daemon started, in memory.\n",
	  ADMIN | OPT(O_DOMAIN) | OPT(O_LIMIT) | OPT(O_SINCE) | OPT(O_UNTIL) | OPT(O_EVENT_KIND),
	  0, 0, cmd_log },
	{ NULL, "status", "[--check [--nagios]] [DOMAIN]",
	  "per partner: kernel policies expected vs present; --check: a health check",
	  "Per partner, what mmtrustd wants in the kernel's SPD against what the kernel\n"
	  "has (kept current from XFRM events):\n"
	  "  STATE      in-sync, missing (policies absent or different: mmtrustd\n"
	  "             repairs drift within a second), conflict (a policy of another\n"
	  "             program has one of our selectors; reported, never overwritten),\n"
	  "             error (the partner cannot be programmed, e.g. no gateway of\n"
	  "             our tunnel address's family), disabled, seg (no tunnel of ours)\n"
	  "  POLICIES   in sync / expected\n"
	  "  SAS        SAs in the kernel's SAD with the partner's reqid\n"
	  "  TUNNEL     the partner's CHILD_SA as charon reports it\n"
	  "\n"
	  "The status also lists what ends within [daemon] expiry_warning_days (\"expiry\"\n"
	  "in --json): partner CAs, CRL nextUpdates, our [ike] certificate.\n"
	  "\n"
	  "--check judges the status as a health check (docs/health.md): one summary line\n"
	  "(\"mmtrust OK: ...\", \"mmtrust WARNING: ...\", \"mmtrust CRITICAL: ...\"), then one\n"
	  "line per problem: severity, partner (- for the whole daemon), what, why.  With\n"
	  "DOMAIN only that partner is judged, with what bears on every partner (kernel,\n"
	  "charon, our certificate and addresses, store, snapshot).  With --json:\n"
	  "{\"state\", \"code\", \"summary\", \"problems\": [{\"code\", \"partner\", \"what\",\n"
	  "\"why\"}], \"partners\", \"tunnels_up\", \"policies_in_sync\", \"warnings\"}.\n"
	  "An enabled tunnel partner is one that is enabled with path tunnel.  Exit status\n"
	  "of --check (the worst found wins: 6 > 5 > 4):\n"
	  "  0  OK: every enabled tunnel partner's policies in sync and its tunnel up,\n"
	  "     nothing below\n"
	  "  1  the daemon refused the request (DOMAIN not in the table)\n"
	  "  2  usage error\n"
	  "  3  the daemon is unreachable\n"
	  "  4  WARNING: enforced and up, but something expires within the window or has\n"
	  "     expired, a CRL is not ok or not loaded, a CSCF or tunnel address is\n"
	  "     missing, a foreign route holds a partner's range, the store is read-only,\n"
	  "     the snapshot is not current, the metrics endpoint is not listening, or\n"
	  "     a drift fight is going on; the table is empty; the DOMAIN asked about\n"
	  "     is disabled or has path seg\n"
	  "  5  TUNNEL DOWN: policies in sync, but an enabled tunnel partner's tunnel is\n"
	  "     not up (also: [ike] enabled = no, or charon not connected)\n"
	  "  6  POLICIES NOT IN SYNC: an enabled tunnel partner's kernel policies are\n"
	  "     missing, conflicting or in error, or the kernel's policies are not\n"
	  "     programmed (also: [spd] enabled = no)\n"
	  "--nagios (implies --check) follows the Nagios plugin convention: exit 0 for\n"
	  "0, 1 (WARNING) for 4, 2 (CRITICAL) for 5 and 6, 3 (UNKNOWN) for 1, 2 and 3;\n"
	  "the summary line ends in performance data:\n"
	  "  | partners=N tunnels_up=N policies_in_sync=N warnings=N\n"
	  "(partners: the enabled tunnel partners judged).\n",
	  ADMIN | OPT(O_CHECK) | OPT(O_NAGIOS), 0, 1, cmd_status },
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
