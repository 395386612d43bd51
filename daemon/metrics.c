/* Prometheus metrics: the exposition text (docs/metrics.md). */
#include "metrics.h"
#include "fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expiry.h"
#include "log.h"
#include "mmtrustd.h"
#include "sad.h"

/* The SA counters a partner's SAs carry (struct xfrm_stats and the current
 * lifetime), summed over its SAs. */
enum sa_value {
	SV_IN_BYTES, SV_IN_PACKETS, SV_OUT_BYTES, SV_OUT_PACKETS,
	SV_REPLAY_WINDOW, SV_REPLAY, SV_INTEGRITY_FAILED,
	SV__MAX
};

/* What is counted here of a partner, kept across table changes by domain
 * (a counter never restarts while the daemon runs). */
struct acc {
	char domain[MM_DOMAIN_MAX + 1];
	uint64_t rekeys, drift_repairs;
	uint64_t gone[SV__MAX];   /* final counts of its SAs that went away */
	uint64_t shown[SV__MAX];  /* the last values exposed: never less again */
};

static const double commit_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					 0.1, 0.25, 0.5, 1, 2.5, 5 };
#define N_BUCKETS (sizeof(commit_buckets) / sizeof(commit_buckets[0]))

static const char *const steps[] = { "sync", "change", "repair", "verify" };
#define N_STEPS (sizeof(steps) / sizeof(steps[0]))

static struct {
	struct acc *acc;
	size_t n, cap;
	uint64_t commits, commit_sum_usec, commit_last_usec;
	uint64_t commit_bucket[N_BUCKETS];
	uint64_t reconciles[N_STEPS], reconcile_last_usec[N_STEPS];
} M;

uint64_t metrics_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* The partner's record, made when missing; NULL on ENOMEM. */
static struct acc *acc_get(const char *domain)
{
	struct acc *a;

	if (!domain)
		return NULL;
	for (size_t i = 0; i < M.n; i++)
		if (!strcmp(M.acc[i].domain, domain))
			return &M.acc[i];
	if (M.n == M.cap) {
		size_t cap = M.cap ? M.cap * 2 : 16;

		a = realloc(M.acc, cap * sizeof(*a));
		if (!a)
			return NULL;
		M.acc = a;
		M.cap = cap;
	}
	a = &M.acc[M.n++];
	memset(a, 0, sizeof(*a));
	snprintf(a->domain, sizeof(a->domain), "%s", domain);
	return a;
}

void metrics_rekey(const char *domain)
{
	struct acc *a = acc_get(domain);

	if (a)
		a->rekeys++;
}

void metrics_drift_repaired(const char *domain)
{
	struct acc *a = acc_get(domain);

	if (a)
		a->drift_repairs++;
}

void metrics_reconcile(const char *step, uint64_t usec)
{
	for (size_t i = 0; i < N_STEPS; i++)
		if (!strcmp(step, steps[i])) {
			M.reconciles[i]++;
			M.reconcile_last_usec[i] = usec;
		}
}

void metrics_store_commit(uint64_t usec)
{
	M.commits++;
	M.commit_sum_usec += usec;
	M.commit_last_usec = usec;
	for (size_t i = 0; i < N_BUCKETS; i++)
		if ((double)usec / 1e6 <= commit_buckets[i])
			M.commit_bucket[i]++;
}

/* Our tunnel address is the SA's destination: an inbound SA. */
static bool inbound(const struct mmtrustd *d, const struct mm_xfrm_sa *sa)
{
	for (size_t i = 0; i < d->cfg.n_tunnel; i++)
		if (mm_addr_cmp(&d->cfg.tunnel[i], &sa->dst) == 0)
			return true;
	return false;
}

static void sa_values(const struct mmtrustd *d, const struct mm_xfrm_sa *sa, uint64_t v[SV__MAX])
{
	bool in = inbound(d, sa);

	v[in ? SV_IN_BYTES : SV_OUT_BYTES] += sa->bytes;
	v[in ? SV_IN_PACKETS : SV_OUT_PACKETS] += sa->packets;
	v[SV_REPLAY_WINDOW] += sa->replay_window;
	v[SV_REPLAY] += sa->replay;
	v[SV_INTEGRITY_FAILED] += sa->integrity_failed;
}

static const struct mm_partner *legit_partner(struct mmtrustd *d, const struct mm_xfrm_sa *sa)
{
	struct mm_sad_view v = { .table = d->table, .tunnel = d->cfg.tunnel,
				 .n_tunnel = d->cfg.n_tunnel };
	struct mm_sa_judgement j;

	mm_sad_judge(&v, sa, &j);
	return j.verdict == MM_SA_LEGIT ? j.partner : NULL;
}

void metrics_xfrm_event(struct mmtrustd *d, const struct mm_xfrm_event *ev)
{
	const struct mm_partner *p;
	struct acc *a;

	/* A deleted SA, or one the kernel deleted at its hard expiry: the
	 * message carries its last counters. */
	if (ev->type != MM_XFRM_EV_SA_DEL && !(ev->type == MM_XFRM_EV_SA_EXPIRE && ev->hard))
		return;
	p = legit_partner(d, &ev->sa);
	if (p && (a = acc_get(p->domain)))
		sa_values(d, &ev->sa, a->gone);
}

/* ---- the text ---- */

struct row {
	const char *domain;   /* borrowed from the status JSON */
	const char *state;    /* status's "state" (borrowed): in-sync, missing, ... */
	json_int_t reqid;
	bool enabled, tunnel_path, has_sas, has_policies, up;
	json_int_t sas, expected, present, in_sync, missing, conflicts;
	struct acc *acc;
	uint64_t cur[SV__MAX];
};

struct dump_ctx {
	struct mmtrustd *d;
	struct row *rows;
	size_t n;
};

static int dump_one(const struct mm_xfrm_sa *sa, void *userdata)
{
	struct dump_ctx *c = userdata;
	const struct mm_partner *p = legit_partner(c->d, sa);

	for (size_t i = 0; p && i < c->n; i++)
		if (!strcmp(c->rows[i].domain, p->domain)) {
			sa_values(c->d, sa, c->rows[i].cur);
			break;
		}
	return 0;
}

static void dump_reset(void *userdata)
{
	struct dump_ctx *c = userdata;

	for (size_t i = 0; i < c->n; i++)
		memset(c->rows[i].cur, 0, sizeof(c->rows[i].cur));
}

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void partner_sample(FILE *f, const char *name, const struct row *r, const char *extra,
			   const char *extra_value, uint64_t v)
{
	fprintf(f, "%s{partner=\"", name);
	label(f, r->domain);
	if (extra) {
		fprintf(f, "\",%s=\"", extra);
		label(f, extra_value);
	}
	fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

static json_int_t int_member(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void rows_from_status(json_t *st, struct row *rows, size_t *ret_n)
{
	json_t *partners = json_object_get(st, "partners"), *o;
	size_t i, n = 0;

	json_array_foreach(partners, i, o) {
		struct row *r = &rows[n];
		json_t *pol = json_object_get(o, "policies"), *sas = json_object_get(o, "sas");
		json_t *tun = json_object_get(o, "tunnel");
		const char *path = json_string_value(json_object_get(o, "path"));

		memset(r, 0, sizeof(*r));
		r->domain = json_string_value(json_object_get(o, "domain"));
		if (!r->domain)
			continue;
		r->state = json_string_value(json_object_get(o, "state")) ?: "unknown";
		r->reqid = int_member(o, "reqid");
		r->enabled = json_is_true(json_object_get(o, "enabled"));
		r->tunnel_path = path && !strcmp(path, "tunnel");
		r->has_sas = json_is_integer(sas);
		r->sas = json_integer_value(sas);
		r->has_policies = json_is_object(pol);
		r->expected = int_member(pol, "expected");
		r->present = int_member(pol, "present");
		r->in_sync = int_member(pol, "in_sync");
		r->missing = int_member(pol, "missing");
		r->conflicts = int_member(pol, "foreign_conflicts");
		/* The tunnel is up as status says it (ike_status). */
		r->up = tun && !strcmp(json_string_value(json_object_get(tun, "state")) ?: "", "up");
		n++;
	}
	/* Made first, then borrowed: making one may move the others. */
	for (i = 0; i < n; i++)
		(void)acc_get(rows[i].domain);
	for (i = 0; i < n; i++)
		rows[i].acc = acc_get(rows[i].domain);
	*ret_n = n;
}

static const struct {
	enum sa_value v;
	const char *name, *label, *value;
} sa_series[] = {
	{ SV_IN_BYTES, "mmtrust_partner_sa_bytes_total", "direction", "in" },
	{ SV_OUT_BYTES, "mmtrust_partner_sa_bytes_total", "direction", "out" },
	{ SV_IN_PACKETS, "mmtrust_partner_sa_packets_total", "direction", "in" },
	{ SV_OUT_PACKETS, "mmtrust_partner_sa_packets_total", "direction", "out" },
	{ SV_REPLAY_WINDOW, "mmtrust_partner_sa_errors_total", "error", "replay_window" },
	{ SV_REPLAY, "mmtrust_partner_sa_errors_total", "error", "replay" },
	{ SV_INTEGRITY_FAILED, "mmtrust_partner_sa_errors_total", "error", "integrity_failed" },
};

static void write_partners(FILE *f, struct row *rows, size_t n, bool programmed)
{
	const char *last = NULL;

	family(f, "mmtrust_partner_info", "gauge",
	       "A partner of the table (1), with its reqid, path and whether it is enabled.");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "mmtrust_partner_info{partner=\"");
		label(f, rows[i].domain);
		fprintf(f, "\",reqid=\"%lld\",path=\"%s\",enabled=\"%s\"} 1\n",
			(long long)rows[i].reqid, rows[i].tunnel_path ? "tunnel" : "seg",
			rows[i].enabled ? "true" : "false");
	}
	/* Every state status knows, the partner's own 1, the others 0; a
	 * state not listed here (status's is the one owner) still shows. */
	family(f, "mmtrust_partner_state", "gauge",
	       "1 for the partner's state as status says it (in-sync, missing, conflict, "
	       "error, disabled, seg; unknown while the kernel is not programmed), else 0.");
	for (size_t i = 0; i < n; i++) {
		static const char *const states[] = { "in-sync", "missing", "conflict", "error",
						      "disabled", "seg", "unknown" };
		bool known = false;

		for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
			bool is = !strcmp(rows[i].state, states[k]);

			known |= is;
			partner_sample(f, "mmtrust_partner_state", &rows[i], "state", states[k],
				       is);
		}
		if (!known)
			partner_sample(f, "mmtrust_partner_state", &rows[i], "state",
				       rows[i].state, 1);
	}
	family(f, "mmtrust_partner_tunnel_up", "gauge",
	       "1 while the enabled tunnel partner's CHILD_SA is up (as status says), else 0.");
	for (size_t i = 0; i < n; i++)
		if (rows[i].tunnel_path && rows[i].enabled)
			partner_sample(f, "mmtrust_partner_tunnel_up", &rows[i], NULL, NULL,
				       rows[i].up);
	family(f, "mmtrust_partner_sas", "gauge",
	       "The partner's legitimate SAs in the kernel now.");
	for (size_t i = 0; i < n; i++)
		if (rows[i].has_sas)
			partner_sample(f, "mmtrust_partner_sas", &rows[i], NULL, NULL,
				       (uint64_t)rows[i].sas);
	if (programmed) {
		static const struct {
			const char *name, *help;
			size_t off;
		} pol[] = {
			{ "mmtrust_partner_policies_expected",
			  "Kernel policies the partner should have.", offsetof(struct row, expected) },
			{ "mmtrust_partner_policies_present",
			  "The partner's policies of ours in the kernel.",
			  offsetof(struct row, present) },
			{ "mmtrust_partner_policies_in_sync",
			  "The partner's policies in the kernel exactly as wanted.",
			  offsetof(struct row, in_sync) },
			{ "mmtrust_partner_policies_missing",
			  "The partner's policies missing from the kernel.",
			  offsetof(struct row, missing) },
			{ "mmtrust_partner_policies_foreign_conflicts",
			  "Foreign kernel policies on the partner's selectors now.",
			  offsetof(struct row, conflicts) },
		};

		for (size_t k = 0; k < sizeof(pol) / sizeof(pol[0]); k++) {
			family(f, pol[k].name, "gauge", pol[k].help);
			for (size_t i = 0; i < n; i++)
				if (rows[i].has_policies)
					partner_sample(f, pol[k].name, &rows[i], NULL, NULL,
						       (uint64_t)*(json_int_t *)((char *)&rows[i] +
										 pol[k].off));
		}
	}
	for (size_t k = 0; k < sizeof(sa_series) / sizeof(sa_series[0]); k++) {
		if (!last || strcmp(last, sa_series[k].name)) {
			last = sa_series[k].name;
			family(f, last, "counter",
			       !strcmp(last, "mmtrust_partner_sa_bytes_total") ?
				       "Bytes through the partner's SAs (current and gone), by direction." :
			       !strcmp(last, "mmtrust_partner_sa_packets_total") ?
				       "Packets through the partner's SAs (current and gone), by direction." :
				       "Errors the kernel counted on the partner's SAs (struct xfrm_stats).");
		}
		for (size_t i = 0; i < n; i++) {
			struct acc *a = rows[i].acc;
			enum sa_value v = sa_series[k].v;
			uint64_t val = rows[i].cur[v];

			if (a) {
				val += a->gone[v];
				if (val < a->shown[v])
					val = a->shown[v];  /* an SA gone, its deletion not read yet */
				a->shown[v] = val;
			}
			partner_sample(f, sa_series[k].name, &rows[i], sa_series[k].label,
				       sa_series[k].value, val);
		}
	}
	family(f, "mmtrust_partner_rekeys_total", "counter",
	       "CHILD_SA rekeys charon reported for the partner.");
	for (size_t i = 0; i < n; i++)
		partner_sample(f, "mmtrust_partner_rekeys_total", &rows[i], NULL, NULL,
			       rows[i].acc ? rows[i].acc->rekeys : 0);
	family(f, "mmtrust_partner_drift_repairs_total", "counter",
	       "Repairs of the partner's kernel policies after someone else changed them.");
	for (size_t i = 0; i < n; i++)
		partner_sample(f, "mmtrust_partner_drift_repairs_total", &rows[i], NULL, NULL,
			       rows[i].acc ? rows[i].acc->drift_repairs : 0);
}

static void write_answers(FILE *f, json_t *st)
{
	json_t *list = json_object_get(json_object_get(st, "answers"), "decisions"), *o;
	size_t i;

	family(f, "mmtrust_query_answers_total", "counter",
	       "Decisions the query socket answered, by direction, pai and reason.");
	json_array_foreach(list, i, o) {
		fprintf(f, "mmtrust_query_answers_total{direction=\"");
		label(f, json_string_value(json_object_get(o, "direction")) ?: "");
		fprintf(f, "\",pai=\"");
		label(f, json_string_value(json_object_get(o, "pai")) ?: "");
		fprintf(f, "\",reason=\"");
		label(f, json_string_value(json_object_get(o, "reason")) ?: "");
		fprintf(f, "\"} %lld\n", (long long)int_member(o, "count"));
	}
}

static void write_daemon(FILE *f, struct mmtrustd *d, json_t *st)
{
	json_t *kernel = json_object_get(st, "kernel");

	family(f, "mmtrust_build_info", "gauge", "The running mmtrustd's version (1).");
	fprintf(f, "mmtrust_build_info{version=\"");
	label(f, MMTRUST_VERSION);
	fprintf(f, "\"} 1\n");
	family(f, "mmtrust_start_time_seconds", "gauge",
	       "When mmtrustd started, seconds since the Unix epoch.");
	fprintf(f, "mmtrust_start_time_seconds %lld\n", (long long)d->started);
	family(f, "mmtrust_partners", "gauge", "Partners in the table.");
	fprintf(f, "mmtrust_partners %zu\n", d->table ? d->table->n : 0);
	family(f, "mmtrust_kernel_programmed", "gauge",
	       "1 when mmtrustd programs the kernel's policies, else 0.");
	fprintf(f, "mmtrust_kernel_programmed %d\n",
		json_is_true(json_object_get(kernel, "programmed")));
	family(f, "mmtrust_ike_connected", "gauge", "1 while the VICI link to charon is up.");
	fprintf(f, "mmtrust_ike_connected %d\n",
		json_is_true(json_object_get(json_object_get(st, "ike"), "connected")));
	family(f, "mmtrust_store_writable", "gauge", "1 when the store accepts changes.");
	/* What status says under store.writable. */
	fprintf(f, "mmtrust_store_writable %d\n", d->store && !mm_store_readonly(d->store));
	{
		struct fleet_stats fs;

		fleet_stats(d, &fs);
		family(f, "mmtrust_store_shared", "gauge",
		       "1 when the partner table is a fleet's, on PostgreSQL.");
		fprintf(f, "mmtrust_store_shared %d\n", fs.shared);
		family(f, "mmtrust_store_connected", "gauge",
		       "1 while the store is reachable (always 1 for SQLite).");
		fprintf(f, "mmtrust_store_connected %d\n", fs.connected);
		family(f, "mmtrust_store_table_version", "gauge",
		       "The table version this host enforces (the same on every host of a "
		       "fleet once in step).");
		fprintf(f, "mmtrust_store_table_version %llu\n", (unsigned long long)fs.version);
		family(f, "mmtrust_store_reconnects_total", "counter",
		       "Times the shared store was reached again after it was lost.");
		fprintf(f, "mmtrust_store_reconnects_total %llu\n",
			(unsigned long long)fs.reconnects);
		family(f, "mmtrust_store_table_syncs_total", "counter",
		       "Table versions committed on other hosts and taken here.");
		fprintf(f, "mmtrust_store_table_syncs_total %llu\n",
			(unsigned long long)fs.catchups);
		family(f, "mmtrust_store_version_refused", "gauge",
		       "1 while a newer table version of the shared store is not taken here.");
		fprintf(f, "mmtrust_store_version_refused %d\n", fs.refused_version != 0);
	}
	family(f, "mmtrust_reconcile_last_duration_seconds", "gauge",
	       "How long the last kernel reconcile step of each kind took.");
	for (size_t i = 0; i < N_STEPS; i++)
		if (M.reconciles[i])
			fprintf(f, "mmtrust_reconcile_last_duration_seconds{step=\"%s\"} %.6f\n",
				steps[i], (double)M.reconcile_last_usec[i] / 1e6);
	family(f, "mmtrust_reconciles_total", "counter",
	       "Kernel reconcile steps run, by kind.");
	for (size_t i = 0; i < N_STEPS; i++)
		fprintf(f, "mmtrust_reconciles_total{step=\"%s\"} %llu\n", steps[i],
			(unsigned long long)M.reconciles[i]);
	family(f, "mmtrust_store_commit_last_duration_seconds", "gauge",
	       "How long the last store commit took.");
	fprintf(f, "mmtrust_store_commit_last_duration_seconds %.6f\n",
		(double)M.commit_last_usec / 1e6);
	family(f, "mmtrust_store_commit_duration_seconds", "histogram",
	       "How long store commits (provisioning changes) take.");
	for (size_t i = 0; i < N_BUCKETS; i++)
		fprintf(f, "mmtrust_store_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
			commit_buckets[i], (unsigned long long)M.commit_bucket[i]);
	fprintf(f, "mmtrust_store_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		(unsigned long long)M.commits);
	fprintf(f, "mmtrust_store_commit_duration_seconds_sum %.6f\n",
		(double)M.commit_sum_usec / 1e6);
	fprintf(f, "mmtrust_store_commit_duration_seconds_count %llu\n",
		(unsigned long long)M.commits);
}

/* What ends (daemon/expiry.c owns the list and the rule): its end, and
 * whether the daemon counts it as a warning now. */
struct expiry_ctx {
	FILE *f;
	bool warning;  /* which family this pass writes */
	unsigned n_warn;
};

static void expiry_sample(void *arg, const struct mm_expiry_item *it)
{
	struct expiry_ctx *c = arg;

	fprintf(c->f, "%s{what=\"%s\",partner=\"",
		c->warning ? "mmtrust_expiry_warning" : "mmtrust_expiry_timestamp_seconds",
		mm_expiry_what_name(it->what));
	label(c->f, it->partner ? it->partner : "");
	fputs("\",name=\"", c->f);
	label(c->f, it->name ? it->name : "");
	/* A rollover's two CAs may share a subject: the fingerprint tells them
	 * apart. */
	fputs("\",sha256=\"", c->f);
	label(c->f, it->sha256 ? it->sha256 : "");
	if (c->warning)
		fprintf(c->f, "\"} %d\n", it->in_window ? 1 : 0);
	else
		fprintf(c->f, "\"} %lld\n", (long long)it->not_after);
	c->n_warn += it->in_window;
}

static void write_expiry(FILE *f, struct mmtrustd *d)
{
	struct expiry_ctx c = { f, false, 0 };

	family(f, "mmtrust_expiry_timestamp_seconds", "gauge",
	       "When a partner CA (notAfter), a partner CRL (nextUpdate) or our [ike] "
	       "certificate (notAfter) ends, unix seconds.");
	expiry_each(d, expiry_sample, &c);
	family(f, "mmtrust_expiry_warning", "gauge",
	       "1 when the item is a warning by [daemon] expiry_warning_days (docs/health.md).");
	c.warning = true;
	c.n_warn = 0;
	expiry_each(d, expiry_sample, &c);
	family(f, "mmtrust_expiry_warnings", "gauge", "Items that are warnings now.");
	fprintf(f, "mmtrust_expiry_warnings %u\n", c.n_warn);
}

char *metrics_text(struct mmtrustd *d)
{
	json_t *st = kernel_status(d, NULL);
	struct row *rows = NULL;
	size_t n = 0, size = 0;
	char *text = NULL;
	FILE *f;

	if (!st)
		return NULL;
	ike_status(d, st);
	query_status(d->query, st);
	rows = calloc(json_array_size(json_object_get(st, "partners")) + 1, sizeof(*rows));
	f = open_memstream(&text, &size);
	if (!rows || !f) {
		if (f)
			fclose(f);
		free(text);
		free(rows);
		json_decref(st);
		return NULL;
	}
	rows_from_status(st, rows, &n);
	if (d->nl) {
		struct dump_ctx c = { d, rows, n };

		if (mm_xfrm_sa_dump(d->nl, dump_one, dump_reset, &c, NULL, NULL) < 0)
			dump_reset(&c);  /* the last values shown stand */
	}
	write_daemon(f, d, st);
	write_partners(f, rows, n, json_is_true(json_object_get(json_object_get(st, "kernel"),
								 "programmed")));
	write_answers(f, st);
	write_expiry(f, d);
	free(rows);
	json_decref(st);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the endpoint ---- */

static struct mm_http *http;
static sd_event_source *retry_src;
static int listen_err;          /* -errno of the last try; 0: listening or off */
static char listen_problem[256];

static char *render(void *userdata)
{
	return metrics_text(userdata);
}

/* Try to listen once: 0, or -errno with listen_problem set. */
static int try_listen(struct mmtrustd *d)
{
	int r = mm_http_new(d->ev, &d->cfg.metrics_addr, d->cfg.metrics_port, render, d, &http);

	if (r < 0) {
		http = NULL;
		snprintf(listen_problem, sizeof(listen_problem), "%s%s", strerror(-r),
			 r == -EAFNOSUPPORT || r == -EPERM || r == -EACCES ?
				 " (does the unit's RestrictAddressFamilies allow AF_INET and "
				 "AF_INET6? docs/metrics.md)" : "");
	} else {
		listen_problem[0] = '\0';
	}
	return r;
}

static void log_listening(struct mmtrustd *d)
{
	char buf[MM_ADDR_STRLEN];

	log_notice("metrics on http://%s%s%s:%u/metrics",
		   d->cfg.metrics_addr.family == AF_INET6 ? "[" : "",
		   mm_addr_str(&d->cfg.metrics_addr, buf),
		   d->cfg.metrics_addr.family == AF_INET6 ? "]" : "", d->cfg.metrics_port);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;
	int r;

	(void)usec;
	r = try_listen(d);
	if (r == 0) {
		listen_err = 0;
		log_listening(d);
		retry_src = sd_event_source_disable_unref(retry_src);
		return 0;
	}
	if (r != listen_err)
		log_err("[metrics] listen %s: %s; tried again every %llu s", d->cfg.metrics_listen,
			listen_problem, (unsigned long long)(MM_METRICS_RETRY_USEC / 1000000));
	listen_err = r;
	(void)sd_event_source_set_time_relative(s, MM_METRICS_RETRY_USEC);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

int metrics_start(struct mmtrustd *d)
{
	int r;

	if (!d->cfg.metrics_port)
		return 0;
	r = try_listen(d);
	if (r == 0) {
		log_listening(d);
		return 0;
	}
	/* Not fatal: the daemon's work does not depend on its metrics. */
	listen_err = r;
	log_err("[metrics] listen %s: %s; tried again every %llu s", d->cfg.metrics_listen,
		listen_problem, (unsigned long long)(MM_METRICS_RETRY_USEC / 1000000));
	r = sd_event_add_time_relative(d->ev, &retry_src, CLOCK_MONOTONIC, MM_METRICS_RETRY_USEC,
				       0, on_retry, d);
	if (r < 0) {
		retry_src = NULL;
		log_err("[metrics] listen %s: no retry timer: %s", d->cfg.metrics_listen,
			strerror(-r));
		return r;
	}
	return 0;
}

void metrics_status(struct mmtrustd *d, json_t *status)
{
	const bool on = d->cfg.metrics_port != 0;

	json_object_set_new(status, "metrics",
			    json_pack("{s:s, s:b, s:s*}", "listen", on ? d->cfg.metrics_listen : "",
				      "listening", on && http != NULL, "problem",
				      on && !http && listen_problem[0] ? listen_problem : NULL));
}

void metrics_stop(struct mmtrustd *d)
{
	(void)d;
	retry_src = sd_event_source_disable_unref(retry_src);
	listen_err = 0;
	listen_problem[0] = '\0';
	mm_http_free(http);
	http = NULL;
	free(M.acc);
	memset(&M, 0, sizeof(M));
}
