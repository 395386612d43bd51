/* The kernel side of mmtrustd, inside the event loop.  It owns the XFRM
 * request socket and the one XFRM monitor: every event read is delivered
 * to the SPD engine (spd.h, when it runs) and to the IKE side
 * (ike_xfrm_event), also when [spd] enabled = no, so IKE policing does not
 * depend on the SPD side.  Start-up reads the kernel before writing it; a
 * table change set is applied to the SPD as one step; monitor events mark
 * drift, repaired after a short coalescing delay (a partner in a drift
 * fight on its back-off schedule, spd.h); a periodic full comparison is
 * the safety net.  What an outsider can provoke is logged under a rate
 * limit per kind (log.h); the fight alarms never are.  After each table change and periodic
 * check the SAs are swept by the one verdict (sad.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mmtrustd.h"
#include "policy/sa.h"
#include "sad.h"

static void on_note(const struct mm_spd_note *n, void *userdata)
{
	static const struct {
		int prio;
		int kind;  /* log_kind, -1: never suppressed (the alarms) */
	} how[MM_SPD_NOTE__MAX] = {
		[MM_SPD_NOTE_KERNEL_ERROR] = { LOG_ERR, LOG_KIND_KERNEL_ERROR },
		[MM_SPD_NOTE_PARTNER_ERROR] = { LOG_ERR, LOG_KIND_PARTNER_ERROR },
		[MM_SPD_NOTE_CONFLICT] = { LOG_WARNING, LOG_KIND_CONFLICT },
		[MM_SPD_NOTE_DRIFT] = { LOG_WARNING, LOG_KIND_DRIFT },
		[MM_SPD_NOTE_STALE] = { LOG_NOTICE, LOG_KIND_STALE },
		[MM_SPD_NOTE_RESYNC] = { LOG_WARNING, LOG_KIND_RESYNC },
		[MM_SPD_NOTE_FIGHT] = { LOG_WARNING, -1 },
		[MM_SPD_NOTE_FIGHT_OVER] = { LOG_NOTICE, -1 },
	};
	const char *dom = n->domain ? n->domain : "-";

	(void)userdata;
	if (n->kind == MM_SPD_NOTE_FIGHT || n->kind == MM_SPD_NOTE_FIGHT_OVER) {
		log_msg(how[n->kind].prio, "drift fight%s: partner %s (reqid %" PRIu32 "): %s",
			n->kind == MM_SPD_NOTE_FIGHT ? "" : " over", dom, n->reqid, n->message);
		return;
	}
	/* A conflict is an event (the history); the other notes are lines. */
	log_event_limited(n->kind < MM_SPD_NOTE__MAX ? (enum log_kind)how[n->kind].kind
						     : LOG_KIND_KERNEL_ERROR,
			  n->kind == MM_SPD_NOTE_CONFLICT ? MM_EVENT_CONFLICT : MM_EVENT__MAX,
			  n->kind < MM_SPD_NOTE__MAX ? how[n->kind].prio : LOG_WARNING,
			  &(struct mm_event_ctx){ n->domain, n->reqid, 0 },
			  "spd %s: partner %s (reqid %" PRIu32 ")%s%s: %s",
			  mm_spd_note_kind_name(n->kind), dom, n->reqid, n->policy ? ": " : "",
			  n->policy ? n->policy : "", n->message);
}

/* What a step did.  Repairs and periodic checks are what an outsider can
 * provoke at will: rate-limited; table changes are an operator's. */
static void log_report(const char *what, const struct mm_spd_report *r, bool provoked)
{
	for (size_t i = 0; i < r->n_drifted; i++) {
		log_event_limited(LOG_KIND_DRIFT, MM_EVENT_DRIFT_REPAIR, LOG_WARNING,
				  &(struct mm_event_ctx){ .partner = r->drifted[i] },
				  "drift: policies of partner %s were changed outside mmtrust; "
				  "restored", r->drifted[i]);
		metrics_drift_repaired(r->drifted[i]);
	}
	if (!r->added && !r->updated && !r->deleted && !r->failed)
		log_debug("spd %s: %zu unchanged", what, r->unchanged);
	else if (provoked)
		log_limited(LOG_KIND_REPAIR, LOG_NOTICE,
			    "spd %s: %zu added, %zu updated, %zu deleted (%zu by index, %zu by "
			    "selector), %zu unchanged, %zu refused, %zu conflicts",
			    what, r->added, r->updated, r->deleted, r->by_index, r->by_selector,
			    r->unchanged, r->failed, r->conflicts);
	else
		log_notice("spd %s: %zu added, %zu updated, %zu deleted (%zu by index, %zu by "
			   "selector), %zu unchanged, %zu refused, %zu conflicts",
			   what, r->added, r->updated, r->deleted, r->by_index, r->by_selector,
			   r->unchanged, r->failed, r->conflicts);
}

/* Run the repair when the engine says: drift after a short coalescing
 * delay, a fighting partner's at its back-off time, a fight's quiet end.
 * An earlier time wins over one armed before. */
static void arm_repair(struct mmtrustd *d)
{
	uint64_t now, at, armed;
	int enabled = SD_EVENT_OFF;

	if (!d->spd || (at = mm_spd_repair_at(d->spd)) == UINT64_MAX)
		return;
	sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
	if (at < now + MM_SPD_REPAIR_DELAY_MS * 1000ULL)
		at = now + MM_SPD_REPAIR_DELAY_MS * 1000ULL;
	sd_event_source_get_enabled(d->repair_timer, &enabled);
	if (enabled != SD_EVENT_OFF && sd_event_source_get_time(d->repair_timer, &armed) >= 0 &&
	    armed <= at)
		return;  /* already armed, as soon: coalesce */
	sd_event_source_set_time(d->repair_timer, at);
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_ONESHOT);
}

static int on_repair(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;
	struct mm_spd_report rep = { 0 };
	uint64_t t0 = metrics_now_usec();
	int r;

	(void)s;
	(void)usec;
	r = mm_spd_repair(d->spd, &rep);
	metrics_reconcile("repair", metrics_now_usec() - t0);
	if (r < 0)
		log_limited(LOG_KIND_KERNEL_ERROR, LOG_ERR, "spd repair: %s; a full comparison follows",
			    strerror(-r));
	log_report("repair", &rep, true);
	mm_spd_report_done(&rep);
	log_limit_flush();
	mmtrustd_view_changed(d);  /* repaired: the partners enforced again */
	arm_repair(d);
	return 0;
}

static int deliver(const struct mm_xfrm_event *ev, void *userdata)
{
	struct mmtrustd *d = userdata;

	if (d->spd) {
		mm_spd_handle_event(d->spd, ev);
		/* One of ours deleted, a squatter, a foreign policy that may
		 * shadow ours (any policy event), a flush: which partners the
		 * kernel enforces may have changed; the view follows at once,
		 * before the repair (coalesced, SA events do not count). */
		if (ev->type <= MM_XFRM_EV_POLICY_FLUSH && ev->portid != mm_nl_portid(d->nl))
			mmtrustd_view_changed(d);
	}
	(void)ike_xfrm_event(ev, d);
	metrics_xfrm_event(d, ev);
	return 0;
}

/* Read what the monitor has pending and hand it to every consumer.  Also
 * the SPD engine's drain callback.  Not re-entered: the monitor's buffers
 * are in use while it delivers. */
static int kernel_drain(void *userdata)
{
	struct mmtrustd *d = userdata;
	int r;

	if (!d->mon || d->mon_reading)
		return 0;
	d->mon_reading = true;
	r = mm_xfrm_monitor_read(d->mon, deliver, d);
	if (r == -ENOBUFS) {
		/* The engine re-reads the SPD; the IKE side reads the SAD for
		 * its tunnels' SAs (a deletion may be among the lost). */
		if (d->spd) {
			mm_spd_events_lost(d->spd);
			mmtrustd_view_changed(d);
		}
		ike_kernel_sas_check(d);
		r = mm_xfrm_monitor_read(d->mon, deliver, d);
		if (r == -ENOBUFS)
			r = 0;
	}
	d->mon_reading = false;
	return r;
}

/* The SPD engine's drain callback, also called between its slices of
 * kernel work (spd.h MM_SPD_SLICE_MS), while the loop does not iterate:
 * the monitor's events first, then the view they changed (a policy of ours
 * deleted by someone else reads "not enforced" now, not after the step),
 * then the admin clients' read-only requests (jsonl.h
 * mm_jsonl_server_poll; writes wait, in order). */
static int kernel_pause(void *userdata)
{
	struct mmtrustd *d = userdata;
	int r = kernel_drain(d);

	if (mm_spd_view_ready(d->spd))
		mmtrustd_view_flush(d);
	(void)mm_jsonl_server_poll(d->admin);
	return r;
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mmtrustd *d = userdata;
	int r;

	(void)s;
	(void)fd;
	(void)revents;
	r = kernel_drain(d);
	if (r < 0)
		log_err("xfrm monitor: %s", strerror(-r));
	arm_repair(d);
	return 0;
}

static void log_sa_deleted(const struct mm_xfrm_sa *sa, const struct mm_sa_judgement *j,
			   void *userdata)
{
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];

	log_event_limited(LOG_KIND_SA_DELETED, MM_EVENT_SA_DELETED, LOG_NOTICE,
			  &(struct mm_event_ctx){ j->partner ? j->partner->domain : NULL, sa->reqid,
						  sa->spi },
			  "SA spi 0x%08" PRIx32 " %s -> %s reqid %" PRIu32 "%s%s: %s; deleted",
			  sa->spi, mm_addr_str(&sa->src, s), mm_addr_str(&sa->dst, t), sa->reqid,
			  j->partner ? " partner " : "", j->partner ? j->partner->domain : "",
			  mm_sa_verdict_reason(j->verdict));
	ike_sa_deleted(userdata, j, sa->spi);  /* the tunnel and charon follow */
}

static void sad_view(struct mmtrustd *d, struct mm_sad_view *v)
{
	*v = (struct mm_sad_view){ .table = d->table, .tunnel = d->cfg.tunnel,
				   .n_tunnel = d->cfg.n_tunnel };
}

/* Delete the SAs the verdict says must go (removed or disabled partners,
 * reqids no partner uses, wrong ends). */
static void sweep_sas(struct mmtrustd *d, const char *what)
{
	struct mm_nl_result res = { 0 };
	struct mm_sad_view v;
	size_t n = 0;
	int r;

	if (!d->nl)
		return;
	sad_view(d, &v);
	r = mm_sad_sweep(d->nl, &v, log_sa_deleted, d, &n, &res);
	if (r < 0)
		log_err("SA sweep after %s: %s%s%s", what, strerror(-r), res.extack[0] ? ": " : "",
			res.extack);
	else if (n)
		log_notice("SA sweep after %s: %zu SAs deleted", what, n);
}

static int on_verify(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;
	struct mm_spd_report rep = { 0 };
	int r;

	if (d->spd) {
		uint64_t t0 = metrics_now_usec();

		r = mm_spd_verify(d->spd, (const struct mm_partner *const *)d->table->partners,
				  d->table->n, &rep);
		metrics_reconcile("verify", metrics_now_usec() - t0);
		if (r < 0)
			log_limited(LOG_KIND_KERNEL_ERROR, LOG_ERR, "spd periodic check: %s",
				    strerror(-r));
		log_report("periodic check", &rep, true);
		mm_spd_report_done(&rep);
		arm_repair(d);
		mmtrustd_view_changed(d);
	}
	sweep_sas(d, "the periodic check");
	ike_kernel_sas_check(d);
	log_limit_flush();
	sd_event_source_set_time(s, usec + d->cfg.spd_verify_interval * 1000000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

void kernel_spd_config(const struct mm_config *cfg, struct mm_spd_config *c,
		       struct mm_spd_local *locals)
{
	mm_spd_config_init(c);
	for (size_t i = 0; i < cfg->n_cscf; i++)
		locals[i] = (struct mm_spd_local){ .prefix = cfg->cscf[i], .forward = cfg->forward,
						   .kinds = cfg->cscf_kinds[i] };
	c->locals = locals;
	c->n_locals = cfg->n_cscf;
	for (size_t i = 0; i < cfg->n_tunnel; i++) {
		if (cfg->tunnel[i].family == AF_INET)
			c->tunnel4 = cfg->tunnel[i];
		else
			c->tunnel6 = cfg->tunnel[i];
	}
	c->prio_base = cfg->spd_prio_base;
	c->tag = cfg->spd_tag;
	c->reqid_min = cfg->reqid_min;
	c->reqid_max = cfg->reqid_max;
}

static void kernel_off(struct mmtrustd *d, const char *what, const char *detail)
{
	snprintf(d->kernel_error, sizeof(d->kernel_error), "%.120s%s%.500s", what, detail ? ": " : "",
		 detail ? detail : "");
	log_err("kernel policies are NOT programmed: %s", d->kernel_error);
}

/* The kernel cannot be reached or used: with the SPD side on, nothing is
 * programmed (said once, here: every later request would fail the same
 * way); with it off, only SA checks and events are lost. */
static void kernel_unreachable(struct mmtrustd *d, const char *what, const char *detail)
{
	if (d->cfg.spd_enabled)
		kernel_off(d, what, detail);
	else
		log_warn("XFRM is not used, so SAs are not checked: %s%s%s", what,
			 detail ? ": " : "", detail ? detail : "");
}

/* [spd] repair_*: the drift fight back-off (also on reload). */
static void backoff_from(struct mmtrustd *d)
{
	mm_spd_set_backoff(d->spd, &(struct mm_backoff_cfg){
		.burst = d->cfg.spd_repair_burst,
		.window = d->cfg.spd_repair_window * MM_USEC_PER_SEC,
		.max = d->cfg.spd_repair_backoff_max * MM_USEC_PER_SEC });
}

/* The SPD engine, when the configuration asks for it. */
static void spd_start(struct mmtrustd *d)
{
	int r;

	if (!d->cfg.spd_enabled) {
		log_notice("kernel policies are not programmed ([spd] enabled = no)");
		return;
	}
	r = mm_spd_new(&d->spd_cfg, d->nl, kernel_pause, d, on_note, d, &d->spd);
	if (r < 0) {
		kernel_off(d, "reconciler", strerror(-r));
		return;
	}
	if (sd_event_add_time(d->ev, &d->repair_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
			      on_repair, d) < 0) {
		kernel_off(d, "event loop: cannot arm the repair timer", NULL);
		mm_spd_free(d->spd);
		d->spd = NULL;
		return;
	}
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_OFF);
	backoff_from(d);
}

int kernel_start(struct mmtrustd *d)
{
	struct mm_err err = { 0 };
	int r;

	d->kernel_error[0] = '\0';
	if (!d->cfg.spd_enabled)
		snprintf(d->kernel_error, sizeof(d->kernel_error), "disabled in the configuration");
	kernel_spd_config(&d->cfg, &d->spd_cfg, d->spd_locals);
	/* Without a usable [local] (no tunnel address) neither policies nor
	 * SA verdicts mean anything: every SA would be judged wrong-ends. */
	if (mm_spd_config_check(&d->spd_cfg, &err) < 0) {
		kernel_unreachable(d, "configuration", err.msg);
		return 0;
	}
	r = mm_nl_open(&d->nl);
	if (r < 0) {
		kernel_unreachable(d, "no XFRM netlink", strerror(-r));
		return 0;
	}
	r = mm_nl_probe(d->nl);
	if (r == -EPERM) {
		kernel_unreachable(d, "mmtrustd lacks CAP_NET_ADMIN in this network namespace "
				      "(run it as root or grant the capability)", NULL);
		goto fail;
	}
	if (r < 0) {
		kernel_unreachable(d, "XFRM probe failed", strerror(-r));
		goto fail;
	}
	r = mm_xfrm_monitor_open(&d->mon);
	if (r < 0) {
		kernel_unreachable(d, "XFRM monitor", strerror(-r));
		goto fail;
	}
	/* Our own requests' echoes are no news to any consumer: dropped in
	 * the kernel, so a bulk load cannot overflow the monitor. */
	mm_xfrm_monitor_ignore_portid(d->mon, mm_nl_portid(d->nl));
	if (sd_event_add_io(d->ev, &d->mon_src, mm_xfrm_monitor_fd(d->mon), EPOLLIN, on_monitor,
			    d) < 0) {
		kernel_unreachable(d, "event loop: cannot watch the monitor", NULL);
		goto fail;
	}
	if (d->cfg.spd_verify_interval) {
		uint64_t now;

		sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
		if (sd_event_add_time(d->ev, &d->verify_timer, CLOCK_MONOTONIC,
				      now + d->cfg.spd_verify_interval * 1000000ULL, 100000,
				      on_verify, d) < 0) {
			kernel_unreachable(d, "event loop: cannot arm the periodic check", NULL);
			goto fail;
		}
	}
	spd_start(d);
	return 0;
fail:
	kernel_stop(d);
	return 0;
}

void kernel_stop(struct mmtrustd *d)
{
	/* Policies stay in the kernel on purpose: a restart must not open a
	 * window in which partner traffic flows without ESP. */
	d->mon_src = sd_event_source_disable_unref(d->mon_src);
	d->repair_timer = sd_event_source_disable_unref(d->repair_timer);
	d->verify_timer = sd_event_source_disable_unref(d->verify_timer);
	mm_spd_free(d->spd);
	d->spd = NULL;
	mm_xfrm_monitor_free(d->mon);
	d->mon = NULL;
	d->mon_reading = false;
	mm_nl_free(d->nl);
	d->nl = NULL;
}

void kernel_enforced(struct mmtrustd *d, const char *domain, bool *ret_in, bool *ret_out)
{
	mm_spd_enforced(d->spd, domain, ret_in, ret_out);
}

void kernel_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n)
{
	struct mm_spd_report rep = { 0 };
	char what[64];
	uint64_t t0 = metrics_now_usec();
	int r;

	if (d->spd && !changes) {
		backoff_from(d);  /* the settings may have been reloaded */
		r = mm_spd_sync(d->spd, (const struct mm_partner *const *)d->table->partners,
				d->table->n, &rep);
		metrics_reconcile("sync", metrics_now_usec() - t0);
		if (r < 0)
			log_err("spd sync: %s; retried by the next check", strerror(-r));
		log_report("sync", &rep, false);
	} else if (d->spd) {
		/* The whole change set in one step: a range that moves between
		 * partners is one update, whatever the order of the changes. */
		r = mm_spd_change(d->spd, changes, n, &rep);
		metrics_reconcile("change", metrics_now_usec() - t0);
		snprintf(what, sizeof(what), "change of %zu partner(s)", n);
		if (r < 0)
			log_err("spd %s: %s; a full comparison follows", what, strerror(-r));
		log_report(what, &rep, false);
	}
	mm_spd_report_done(&rep);
	arm_repair(d);
	sweep_sas(d, changes ? "a table change" : "loading the table");
}

static const char *status_state(const struct mm_partner *p, const struct mm_spd_status *st)
{
	if (!p->enabled)
		return "disabled";
	if (p->path == MM_PATH_SEG)
		return "seg";
	if (st->error)
		return "error";
	if (st->conflicts)
		return "conflict";
	if (st->in_sync < st->expected)
		return "missing";
	return "in-sync";
}

/* The alarms: one per drift fight going on (spd.h). */
static json_t *status_fights(struct mmtrustd *d, const char *domain)
{
	json_t *list = json_array();
	struct mm_spd_fight f;
	char since[32];
	struct tm tm;

	for (size_t i = 0; d->spd && mm_spd_fight_get(d->spd, i, &f) == 0; i++) {
		time_t t = (time_t)f.since;

		if (domain && strcmp(domain, f.domain))
			continue;
		gmtime_r(&t, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I, s:s}", "partner",
						      f.domain, "since", since, "repairs",
						      (json_int_t)f.repairs, "backoff_s",
						      (json_int_t)f.backoff_s, "evidence", f.evidence));
	}
	return list;
}

static json_t *status_counters(struct mmtrustd *d)
{
	struct mm_spd_counters c = { 0 };

	if (d->spd)
		mm_spd_get_counters(d->spd, &c);
	return json_pack("{s:I, s:I, s:I, s:I}", "drift_repairs", (json_int_t)c.drift_repairs,
			 "fights_raised", (json_int_t)c.fights_raised, "fights_active",
			 (json_int_t)c.fights_active, "log_suppressed",
			 (json_int_t)log_suppressed_total());
}

json_t *kernel_status(struct mmtrustd *d, const char *domain)
{
	json_t *list = json_array(), *o;
	size_t expected = 0, present = 0, in_sync = 0, *sas = NULL;
	struct mm_sad_view v;

	/* One SAD dump counts the legitimate SAs of every partner. */
	sad_view(d, &v);
	if (d->nl && (sas = calloc(d->table->n ? d->table->n : 1, sizeof(*sas))) &&
	    mm_sad_count(d->nl, &v, sas, NULL) < 0) {
		free(sas);
		sas = NULL;
	}
	for (size_t i = 0; i < d->table->n; i++) {
		const struct mm_partner *p = d->table->partners[i];
		struct mm_spd_status st = { 0 };

		if (domain && strcmp(domain, p->domain))
			continue;
		if (d->spd)
			(void)mm_spd_status(d->spd, p->domain, &st);
		o = json_pack("{s:s, s:I, s:b, s:s, s:s}", "domain", p->domain, "reqid",
			      (json_int_t)p->reqid, "enabled", p->enabled, "path",
			      mm_path_name(p->path), "state",
			      d->spd ? status_state(p, &st) : "unknown");
		if (d->spd) {
			json_object_set_new(o, "policies",
					    json_pack("{s:I, s:I, s:I, s:I, s:I}", "expected",
						      (json_int_t)st.expected, "present",
						      (json_int_t)st.present, "in_sync",
						      (json_int_t)st.in_sync, "missing",
						      (json_int_t)st.missing, "foreign_conflicts",
						      (json_int_t)st.conflicts));
			if (st.error)
				json_object_set_new(o, "error", json_string(st.message));
		}
		json_object_set_new(o, "sas", sas ? json_integer((json_int_t)sas[i]) : json_null());
		json_array_append_new(list, o);
	}
	free(sas);
	if (d->spd)
		mm_spd_counts(d->spd, &expected, &present, &in_sync);
	return json_pack("{s:{s:b, s:s?, s:I, s:I, s:I, s:I, s:I, s:o}, s:o, s:o}", "kernel",
			 "programmed", d->spd != NULL, "error",
			 d->kernel_error[0] ? d->kernel_error : NULL, "expected",
			 (json_int_t)expected, "present", (json_int_t)present, "in_sync",
			 (json_int_t)in_sync, "priority_base", (json_int_t)d->cfg.spd_prio_base, "tag",
			 (json_int_t)d->cfg.spd_tag, "counters", status_counters(d), "fights",
			 status_fights(d, domain), "partners", list);
}

/* ---- audit: the kernel's view, annotated ---- */

/* One list per dump: a dump that restarts (mm_nl_dump calls its reset)
 * clears its own list and nothing else. */
struct audit_list {
	struct mmtrustd *d;
	json_t *items;
};

static void audit_list_reset(void *userdata)
{
	json_array_clear(((struct audit_list *)userdata)->items);
}

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_ESP ? "esp" : proto == IPPROTO_AH ? "ah" :
	       proto == IPPROTO_COMP ? "comp" : "?";
}

static const char *mode_name(uint8_t mode)
{
	static const char *const names[] = { "transport", "tunnel", "ro", "in_trigger", "beet" };

	return mode < sizeof(names) / sizeof(names[0]) ? names[mode] : "?";
}

/* What the one classification says, for an operator. */
static const char *const class_notes[MM_SPD_CLASS__MAX] = {
	[MM_SPD_CONFLICT] = "not mmtrust's, on the selector of one of mmtrust's policies: "
			    "left alone",
	[MM_SPD_COLLISION] = "carries mmtrust's tag outside its band or reqid range: holds the "
			     "place of one of mmtrust's policies",
	[MM_SPD_STALE] = "mmtrust's, but no partner wants it (stale): deleted by the next repair",
	[MM_SPD_DRIFTED] = "mmtrust's, but not what the partner needs: restored by the next repair",
};

static int audit_policy(const struct mm_xfrm_policy *p, void *userdata)
{
	struct audit_list *a = userdata;
	struct mmtrustd *d = a->d;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];
	const struct mm_partner *partner = NULL;
	enum mm_spd_class c = mm_spd_classify(&d->spd_cfg, d->spd, p);
	bool ours = mm_spd_class_ours(c), marked = false;
	json_t *tmpls = json_array(), *o;
	const char *note = NULL;

	for (uint8_t i = 0; i < p->n_tmpl; i++) {
		const struct mm_xfrm_tmpl *tp = &p->tmpl[i];

		if (mm_reqid_ours(d->table, tp->reqid)) {
			marked = true;
			if (!partner)
				partner = mm_table_find_reqid(d->table, tp->reqid);
		}
		json_array_append_new(tmpls, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "src",
						       mm_addr_str(&tp->src, s), "dst",
						       mm_addr_str(&tp->dst, t), "proto",
						       proto_name(tp->proto), "reqid",
						       (json_int_t)tp->reqid, "mode",
						       mode_name(tp->mode), "level",
						       tp->optional ? "use" : "required"));
	}
	if (p->sel.user == d->cfg.spd_tag ||
	    (p->priority >= d->cfg.spd_prio_base &&
	     p->priority - d->cfg.spd_prio_base < MM_SPD_PRIO_SPAN))
		marked = true;
	if (class_notes[c])
		note = class_notes[c];
	else if (ours && !partner)
		note = "ours, but no partner has this reqid (stale)";
	else if (ours && !mm_partner_has_tunnel(partner))
		note = "ours, but the partner gets no policies (disabled or seg)";
	else if (!ours && marked)
		note = "in mmtrust's reqid range, band or tag, but not installed by mmtrust";
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o, s:s, s:s, s:o}", "dir",
		      mm_xfrm_dir_name(p->dir), "src", mm_prefix_str(&p->sel.src, s), "dst",
		      mm_prefix_str(&p->sel.dst, t), "uid", (json_int_t)p->sel.user, "priority",
		      (json_int_t)p->priority, "index", (json_int_t)p->index, "action",
		      p->action == XFRM_POLICY_ALLOW ? "allow" : "block", "tmpl", tmpls, "owner",
		      ours ? "mmtrust" : "other", "class", mm_spd_class_name(c), "partner",
		      partner ? json_string(partner->domain) : json_null());
	if (note)
		json_object_set_new(o, "note", json_string(note));
	json_array_append_new(a->items, o);
	return 0;
}

static int audit_sa(const struct mm_xfrm_sa *sa, void *userdata)
{
	struct audit_list *a = userdata;
	struct mmtrustd *d = a->d;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN], spi[16];
	struct mm_sad_view v;
	struct mm_sa_judgement j;
	const struct mm_partner *p;
	json_t *o;

	/* The verdict the SA sweep deletes by, and its words. */
	sad_view(d, &v);
	mm_sad_judge(&v, sa, &j);
	p = j.partner;
	snprintf(spi, sizeof(spi), "0x%08" PRIx32, sa->spi);
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:o}", "src",
		      mm_addr_str(&sa->src, s), "dst", mm_addr_str(&sa->dst, t), "proto",
		      proto_name(sa->proto), "spi", spi, "reqid", (json_int_t)sa->reqid, "mode",
		      mode_name(sa->mode), "bytes", (json_int_t)sa->bytes, "packets",
		      (json_int_t)sa->packets, "verdict", mm_sa_verdict_name(j.verdict), "partner",
		      p ? json_string(p->domain) : json_null());
	if (j.verdict != MM_SA_LEGIT && j.verdict != MM_SA_FOREIGN)
		json_object_set_new(o, "note", json_string(mm_sa_verdict_reason(j.verdict)));
	json_array_append_new(a->items, o);
	return 0;
}

json_t *kernel_audit(struct mmtrustd *d)
{
	struct audit_list pol = { d, json_array() }, sas = { d, json_array() };
	struct mm_nl_result res = { 0 };
	int r;

	if (!d->nl) {
		json_decref(pol.items);
		json_decref(sas.items);
		return mm_jsonl_error("unavailable", NULL, "the kernel is not reachable: %s",
				      d->kernel_error);
	}
	r = mm_xfrm_policy_dump(d->nl, audit_policy, audit_list_reset, &pol, NULL, &res);
	if (r == 0)
		r = mm_xfrm_sa_dump(d->nl, audit_sa, audit_list_reset, &sas, NULL, &res);
	if (r < 0) {
		json_decref(pol.items);
		json_decref(sas.items);
		return mm_jsonl_error("internal", NULL, "cannot read the kernel's XFRM state: %s%s%s",
				      strerror(-r), res.extack[0] ? ": " : "", res.extack);
	}
	return mm_jsonl_ok(json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "policies", pol.items,
				     "sas", sas.items, "ownership", "tag", (json_int_t)d->cfg.spd_tag,
				     "priority_base", (json_int_t)d->cfg.spd_prio_base,
				     "reqid_min", (json_int_t)d->cfg.reqid_min, "reqid_max",
				     (json_int_t)d->cfg.reqid_max));
}
