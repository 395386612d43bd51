/* mmtrustctl: the CSCF's questions over the query socket (docs/protocol.md).
 * Requests carry the user's text as given (addresses, SPIs): the daemon
 * parses and judges them.  --json prints the daemon's answer as it came. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/ctl.h"
#include "client/mmtrust.h"

#define QUERY OPT(O_HELP) | OPT(O_JSON) | OPT(O_QUERY_SOCKET)

static void print_pai(const json_t *r)
{
	printf(" -> %s P-Asserted-Identity (%s)\n", jstr(r, "pai"), jstr(r, "reason"));
}

/* "SUBJECT: partner P (kind, agreement yes, path[, disabled])", or false
 * when no partner (the whole line printed then). */
static bool print_partner(const char *subject, const json_t *r)
{
	if (!json_is_string(json_object_get(r, "partner"))) {
		printf("%s: no partner", subject);
		print_pai(r);
		return false;
	}
	printf("%s: partner %s (%s, agreement %s, %s%s)", subject, jstr(r, "partner"),
	       jstr(r, "kind"), jyesno(r, "agreement"), jstr(r, "path"),
	       json_is_false(json_object_get(r, "enabled")) ? ", disabled" : "");
	return true;
}

static void print_inbound(const json_t *r)
{
	const json_t *sa = json_object_get(r, "sa");
	char subject[128];

	snprintf(subject, sizeof(subject), "%s%s%s", jstr(r, "src"),
		 json_is_string(json_object_get(r, "dst")) ? " to " : "",
		 json_is_string(json_object_get(r, "dst")) ? jstr(r, "dst") : "");
	if (!print_partner(subject, r))
		return;
	printf(", protected %s", jyesno(r, "protected"));
	if (json_is_object(sa))
		printf(", SA spi in %s out %s id %s from %s since %s", jstr(sa, "spi_in"),
		       jstr(sa, "spi_out"), jstr(sa, "remote_id"), jstr(sa, "remote_host"),
		       jstr(sa, "established"));
	print_pai(r);
}

static void print_outbound(const json_t *r)
{
	if (!print_partner(json_object_get(r, "dst") ? jstr(r, "dst") : jstr(r, "domain"), r))
		return;
	printf(", tunnel %s, trusted %s", jstr(r, "tunnel"), jyesno(r, "trusted"));
	print_pai(r);
}

static void print_spi(const json_t *r)
{
	if (!json_is_string(json_object_get(r, "partner")))
		printf("%s: no partner's SA\n", jstr(r, "spi"));
	else
		printf("%s: %s SA of partner %s (reqid %" JSON_INTEGER_FORMAT ", remote id %s)\n",
		       jstr(r, "spi"), jstr(r, "direction"), jstr(r, "partner"), jint(r, "reqid"),
		       jstr(r, "remote_id"));
}

static int cmd_inbound(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_query_show(ctl, ctl_pack(a, "{s:s, s:s, s:s*, s:s*}", "op", "inbound", "src", a->pos[0],
				 "spi", ctl_arg(a, O_SPI), "dst", ctl_arg(a, O_DST_IN)),
		   print_inbound);
}

static int cmd_outbound(struct ctl *ctl, const struct ctl_args *a)
{
	const char *dst = ctl_arg(a, O_DST_OUT);

	if (!dst == !a->n_pos)
		return ctl_usage(a, "give either a DOMAIN or --dst ADDRESS");
	return ctl_query_show(ctl, ctl_pack(a, "{s:s, s:s*, s:s*, s:o*}", "op", "outbound", "domain",
				 a->n_pos ? a->pos[0] : NULL, "dst", dst, "privacy",
				 ctl_flag(a, O_PRIVACY_ID) ? json_pack("[s]", "id") : NULL),
		   print_outbound);
}

static int cmd_spi(struct ctl *ctl, const struct ctl_args *a)
{
	return ctl_query_show(ctl, ctl_pack(a, "{s:s, s:s}", "op", "spi", "spi", a->pos[0]), print_spi);
}

static void print_event(const struct ctl *ctl, const struct mmtrust_event *e)
{
	char in[16], out[16];
	json_t *o;

	snprintf(in, sizeof(in), "0x%08x", e->spi_in);
	snprintf(out, sizeof(out), "0x%08x", e->spi_out);
	if (!ctl->json) {
		printf("%s %s", e->event, e->partner);
		if (e->spi_in || e->spi_out)
			printf(" spi in %s out %s", in, out);
		putchar('\n');
	} else if ((o = json_pack("{s:s, s:s}", "event", e->event, "partner", e->partner))) {
		if (e->spi_in || e->spi_out) {
			json_object_set_new(o, "spi_in", json_string(in));
			json_object_set_new(o, "spi_out", json_string(out));
		}
		ctl_print_json(o, 0);  /* one line per event */
		json_decref(o);
	}
	fflush(stdout);
}

static int cmd_watch(struct ctl *ctl, const struct ctl_args *a)
{
	struct mmtrust_event e;
	struct mmtrust *m = NULL;
	json_t *live;
	int r, rc = EXIT_UNREACHABLE;

	(void)a;
	r = mmtrust_connect(ctl->query_socket, 10000, &m);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: cannot reach mmtrustd at %s: %s\n", ctl->query_socket,
			strerror(-r));
		goto out;
	}
	r = mmtrust_subscribe(m);
	if (r == 0) {
		/* Say when the stream is live, so a script can wait for it. */
		live = json_pack("{s:b}", "subscribed", 1);
		if (ctl->json)
			ctl_print_json(live, 0);
		else
			printf("subscribed\n");
		json_decref(live);
		fflush(stdout);
	}
	while (r == 0 && (r = mmtrust_next_event(m, -1, &e)) == 0)
		print_event(ctl, &e);
	if (r == -EPROTO) {
		fprintf(stderr, "mmtrustctl: refused: %s\n", mmtrust_last_error(m));
		rc = EXIT_REFUSED;
	} else {
		fprintf(stderr, "mmtrustctl: watch ended: %s\n",
			r == -ECONNRESET ? "the daemon closed the stream" : strerror(-r));
	}
out:
	mmtrust_close(m);
	return rc;
}

const struct command query_commands[] = {
	{ "query", "inbound", "ADDRESS [--spi SPI] [--dst ADDRESS]",
	  "a message came from ADDRESS: which partner, protected, keep or strip PAI",
	  "Ask what a CSCF asks for every message it receives: a SIP message came from\n"
	  "ADDRESS (over the SA with SPI, to our local address --dst): which partner's\n"
	  "range holds ADDRESS, is the message protected by that partner's\n"
	  "authenticated SA, keep or strip P-Asserted-Identity, and why.  The decision\n"
	  "table is in docs/privacy.md.  Without --dst the answer is never\n"
	  "'protected' (reason dst-not-given), and a daemon with [query] require_dst\n"
	  "refuses the question (exit 1).  Exit status 0 whatever the answer (keep or\n"
	  "strip).\n",
	  QUERY | OPT(O_SPI) | OPT(O_DST_IN), 1, 1, cmd_inbound },
	{ "query", "outbound", "DOMAIN | --dst ADDRESS [--privacy-id]",
	  "may PAI go to this next hop",
	  "Ask what a CSCF asks before forwarding: may P-Asserted-Identity go to this\n"
	  "next hop (by its DOMAIN, or by its address with --dst).  Exit status 0\n"
	  "whatever the answer.\n",
	  QUERY | OPT(O_DST_OUT) | OPT(O_PRIVACY_ID), 0, 1, cmd_outbound },
	{ "query", "spi", "SPI", "which partner's SA has this SPI",
	  "Which partner's current SA has this SPI (as the daemon reads SPIs,\n"
	  "docs/protocol.md; passed on as given), and in which direction.\n",
	  QUERY, 1, 1, cmd_spi },
	{ "query", "watch", "", "print the change events a CSCF subscribes to",
	  "Subscribe and print SA and partner change events, one line each, until\n"
	  "interrupted or the daemon ends the stream (exit 3).  The first line,\n"
	  "\"subscribed\" ({\"subscribed\": true} with --json), says the stream is live.\n",
	  QUERY, 0, 0, cmd_watch },
	{ 0 },
};
