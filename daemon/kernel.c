/* The kernel side of mmtrustd: the SPD reconciler (spd.c) driven from the
 * event loop.  Start-up reads the kernel before writing it; table changes
 * are applied per partner; monitor events mark drift, repaired after a
 * short coalescing delay; a periodic full comparison is the safety net. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mmtrustd.h"

static void on_note(const struct mm_spd_note *n, void *userdata)
{
	static const int prio[MM_SPD_NOTE__MAX] = {
		[MM_SPD_NOTE_KERNEL_ERROR] = LOG_ERR,
		[MM_SPD_NOTE_PARTNER_ERROR] = LOG_ERR,
		[MM_SPD_NOTE_CONFLICT] = LOG_WARNING,
		[MM_SPD_NOTE_DRIFT] = LOG_WARNING,
		[MM_SPD_NOTE_STALE] = LOG_NOTICE,
		[MM_SPD_NOTE_RESYNC] = LOG_WARNING,
	};

	(void)userdata;
	log_msg(n->kind < MM_SPD_NOTE__MAX ? prio[n->kind] : LOG_WARNING,
		"spd %s: partner %s (reqid %" PRIu32 ")%s%s: %s", mm_spd_note_kind_name(n->kind),
		n->domain ? n->domain : "-", n->reqid, n->policy ? ": " : "",
		n->policy ? n->policy : "", n->message);
}

static void log_report(const char *what, const struct mm_spd_report *r)
{
	for (size_t i = 0; i < r->n_drifted; i++)
		log_warn("drift: policies of partner %s were changed outside mmtrust; restored",
			 r->drifted[i]);
	if (r->added || r->updated || r->deleted || r->failed || r->sa_deleted)
		log_notice("spd %s: %zu added, %zu updated, %zu deleted, %zu unchanged, "
			   "%zu refused, %zu conflicts, %zu SAs deleted",
			   what, r->added, r->updated, r->deleted, r->unchanged, r->failed,
			   r->conflicts, r->sa_deleted);
	else
		log_debug("spd %s: %zu unchanged", what, r->unchanged);
}

static int on_repair(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;
	struct mm_spd_report rep = { 0 };
	int r;

	(void)s;
	(void)usec;
	r = mm_spd_repair(d->spd, &rep);
	if (r < 0)
		log_err("spd repair: %s; a full comparison follows", strerror(-r));
	log_report("repair", &rep);
	mm_spd_report_done(&rep);
	if (mm_spd_repair_pending(d->spd))
		sd_event_source_set_enabled(d->repair_timer, SD_EVENT_ONESHOT);
	return 0;
}

static void arm_repair(struct mmtrustd *d)
{
	uint64_t now;
	int enabled = SD_EVENT_OFF;

	if (!mm_spd_repair_pending(d->spd))
		return;
	sd_event_source_get_enabled(d->repair_timer, &enabled);
	if (enabled != SD_EVENT_OFF)
		return;  /* already armed: coalesce */
	sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
	sd_event_source_set_time(d->repair_timer, now + MM_SPD_REPAIR_DELAY_MS * 1000ULL);
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_ONESHOT);
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mmtrustd *d = userdata;
	int r;

	(void)s;
	(void)fd;
	(void)revents;
	r = mm_spd_process_events(d->spd);
	if (r < 0)
		log_err("xfrm monitor: %s", strerror(-r));
	arm_repair(d);
	return 0;
}

static int on_verify(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;
	struct mm_spd_report rep = { 0 };
	int r;

	r = mm_spd_verify(d->spd, &rep);
	if (r < 0)
		log_err("spd periodic check: %s", strerror(-r));
	log_report("periodic check", &rep);
	mm_spd_report_done(&rep);
	arm_repair(d);
	sd_event_source_set_time(s, usec + d->cfg.spd_verify_interval * 1000000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

static void spd_config_from(struct mmtrustd *d)
{
	struct mm_spd_config *c = &d->spd_cfg;

	mm_spd_config_init(c);
	for (size_t i = 0; i < d->cfg.n_cscf; i++)
		d->spd_locals[i] = (struct mm_spd_local){ .prefix = d->cfg.cscf[i],
							  .forward = d->cfg.forward };
	c->locals = d->spd_locals;
	c->n_locals = d->cfg.n_cscf;
	for (size_t i = 0; i < d->cfg.n_tunnel; i++) {
		if (d->cfg.tunnel[i].family == AF_INET)
			c->tunnel4 = d->cfg.tunnel[i];
		else
			c->tunnel6 = d->cfg.tunnel[i];
	}
	c->prio_base = d->cfg.spd_prio_base;
	c->tag = d->cfg.spd_tag;
	c->reqid_min = d->cfg.reqid_min;
	c->reqid_max = d->cfg.reqid_max;
}

static void kernel_off(struct mmtrustd *d, const char *what, const char *detail)
{
	snprintf(d->kernel_error, sizeof(d->kernel_error), "%.120s%s%.500s", what, detail ? ": " : "",
		 detail ? detail : "");
	log_err("kernel policies are NOT programmed: %s", d->kernel_error);
}

int kernel_start(struct mmtrustd *d)
{
	struct mm_err err = { 0 };
	int r;

	d->kernel_error[0] = '\0';
	if (!d->cfg.spd_enabled) {
		snprintf(d->kernel_error, sizeof(d->kernel_error), "disabled in the configuration");
		log_notice("kernel policies are not programmed ([spd] enabled = no)");
		return 0;
	}
	spd_config_from(d);
	if (mm_spd_config_check(&d->spd_cfg, &err) < 0) {
		kernel_off(d, "configuration", err.msg);
		return 0;
	}
	r = mm_nl_open(&d->nl);
	if (r < 0) {
		kernel_off(d, "no XFRM netlink", strerror(-r));
		return 0;
	}
	r = mm_nl_probe(d->nl);
	if (r == -EPERM) {
		/* Said once, here: every later request would fail the same way. */
		kernel_off(d, "mmtrustd lacks CAP_NET_ADMIN in this network namespace "
			      "(run it as root or grant the capability)", NULL);
		goto fail;
	}
	if (r < 0) {
		kernel_off(d, "XFRM probe failed", strerror(-r));
		goto fail;
	}
	r = mm_xfrm_monitor_open(&d->mon);
	if (r < 0) {
		kernel_off(d, "XFRM monitor", strerror(-r));
		goto fail;
	}
	r = mm_spd_new(&d->spd_cfg, d->nl, d->mon, on_note, d, &d->spd);
	if (r < 0) {
		kernel_off(d, "reconciler", strerror(-r));
		goto fail;
	}
	/* SA events reach the IKE side too (addresses checked per partner). */
	mm_spd_set_event_hook(d->spd, ike_xfrm_event, d);
	if (sd_event_add_io(d->ev, &d->mon_src, mm_xfrm_monitor_fd(d->mon), EPOLLIN, on_monitor,
			    d) < 0 ||
	    sd_event_add_time(d->ev, &d->repair_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
			      on_repair, d) < 0) {
		kernel_off(d, "event loop: cannot watch the monitor", NULL);
		goto fail;
	}
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_OFF);
	if (d->cfg.spd_verify_interval) {
		uint64_t now;

		sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
		if (sd_event_add_time(d->ev, &d->verify_timer, CLOCK_MONOTONIC,
				      now + d->cfg.spd_verify_interval * 1000000ULL, 100000,
				      on_verify, d) < 0) {
			kernel_off(d, "event loop: cannot arm the periodic check", NULL);
			goto fail;
		}
	}
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
	mm_nl_free(d->nl);
	d->nl = NULL;
}

void kernel_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n)
{
	struct mm_spd_report rep = { 0 };
	int r;

	if (!d->spd)
		return;
	if (!changes) {
		r = mm_spd_sync(d->spd, (const struct mm_partner *const *)d->table->partners,
				d->table->n, &rep);
		if (r < 0)
			log_err("spd sync: %s; retried by the next check", strerror(-r));
		log_report("sync", &rep);
		mm_spd_report_done(&rep);
		arm_repair(d);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *p = changes[i].after ? changes[i].after : changes[i].before;
		char what[MM_DOMAIN_MAX + 16];

		r = mm_spd_partner_changed(d->spd, changes[i].before, changes[i].after, &rep);
		if (r < 0)
			log_err("spd: partner %s (reqid %u): %s; a full comparison follows",
				p->domain, p->reqid, strerror(-r));
		snprintf(what, sizeof(what), "%s", p->domain);
		log_report(what, &rep);
		mm_spd_report_done(&rep);
	}
	arm_repair(d);
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

json_t *kernel_status(struct mmtrustd *d, const char *domain)
{
	json_t *list = json_array(), *o;
	size_t expected = 0, present = 0, in_sync = 0;

	for (size_t i = 0; i < d->table->n; i++) {
		const struct mm_partner *p = d->table->partners[i];
		struct mm_spd_status st = { .sas = -1 };

		if (domain && strcmp(domain, p->domain))
			continue;
		if (d->spd && mm_spd_status(d->spd, p->domain, true, &st) < 0)
			st.sas = -1;
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
			json_object_set_new(o, "sas", st.sas >= 0 ? json_integer(st.sas) : json_null());
			if (st.error)
				json_object_set_new(o, "error", json_string(st.message));
		}
		json_array_append_new(list, o);
	}
	if (d->spd)
		mm_spd_counts(d->spd, &expected, &present, &in_sync);
	return json_pack("{s:{s:b, s:s?, s:I, s:I, s:I, s:I, s:I}, s:o}", "kernel", "programmed",
			 d->spd != NULL, "error", d->kernel_error[0] ? d->kernel_error : NULL,
			 "expected", (json_int_t)expected, "present", (json_int_t)present, "in_sync",
			 (json_int_t)in_sync, "priority_base", (json_int_t)d->cfg.spd_prio_base, "tag",
			 (json_int_t)d->cfg.spd_tag, "partners", list);
}

/* ---- audit: the kernel's view, annotated ---- */

struct audit_ctx {
	struct mmtrustd *d;
	json_t *policies, *sas;
};

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

static bool reqid_in_range(struct mmtrustd *d, uint32_t reqid)
{
	return reqid >= d->cfg.reqid_min && reqid <= d->cfg.reqid_max;
}

static void audit_reset(void *userdata)
{
	struct audit_ctx *a = userdata;

	json_array_clear(a->policies);
	json_array_clear(a->sas);
}

static int audit_policy(const struct mm_xfrm_policy *p, void *userdata)
{
	struct audit_ctx *a = userdata;
	struct mmtrustd *d = a->d;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];
	const struct mm_partner *partner = NULL;
	bool ours = mm_spd_is_ours(&d->spd_cfg, p), marked = false;
	json_t *tmpls = json_array(), *o;
	const char *note = NULL;

	for (uint8_t i = 0; i < p->n_tmpl; i++) {
		const struct mm_xfrm_tmpl *tp = &p->tmpl[i];

		if (reqid_in_range(d, tp->reqid)) {
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
	if (ours && !partner)
		note = "ours, but no partner has this reqid (stale)";
	else if (ours && (!partner->enabled || partner->path == MM_PATH_SEG))
		note = "ours, but the partner gets no policies (disabled or seg)";
	else if (!ours && marked)
		note = "in mmtrust's reqid range, band or tag, but not installed by mmtrust";
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o, s:s, s:o}", "dir",
		      mm_xfrm_dir_name(p->dir), "src", mm_prefix_str(&p->sel.src, s), "dst",
		      mm_prefix_str(&p->sel.dst, t), "uid", (json_int_t)p->sel.user, "priority",
		      (json_int_t)p->priority, "index", (json_int_t)p->index, "action",
		      p->action == XFRM_POLICY_ALLOW ? "allow" : "block", "tmpl", tmpls, "owner",
		      ours ? "mmtrust" : "other", "partner",
		      partner ? json_string(partner->domain) : json_null());
	if (note)
		json_object_set_new(o, "note", json_string(note));
	json_array_append_new(a->policies, o);
	return 0;
}

static int audit_sa(const struct mm_xfrm_sa *sa, void *userdata)
{
	struct audit_ctx *a = userdata;
	struct mmtrustd *d = a->d;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN], spi[16];
	const struct mm_partner *p = reqid_in_range(d, sa->reqid)
					     ? mm_table_find_reqid(d->table, sa->reqid) : NULL;
	const char *note = NULL;
	json_t *o;

	snprintf(spi, sizeof(spi), "0x%08" PRIx32, sa->spi);
	if (reqid_in_range(d, sa->reqid) && !p)
		note = "in mmtrust's reqid range, but no partner has this reqid";
	else if (p) {
		bool gw = false;

		for (size_t i = 0; i < p->n_gateways; i++)
			if (!mm_addr_cmp(&p->gateways[i], &sa->src) ||
			    !mm_addr_cmp(&p->gateways[i], &sa->dst))
				gw = true;
		if (!gw)
			note = "carries the partner's reqid, but neither end is its gateway";
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:o}", "src",
		      mm_addr_str(&sa->src, s), "dst", mm_addr_str(&sa->dst, t), "proto",
		      proto_name(sa->proto), "spi", spi, "reqid", (json_int_t)sa->reqid, "mode",
		      mode_name(sa->mode), "bytes", (json_int_t)sa->bytes, "packets",
		      (json_int_t)sa->packets, "partner",
		      p ? json_string(p->domain) : json_null());
	if (note)
		json_object_set_new(o, "note", json_string(note));
	json_array_append_new(a->sas, o);
	return 0;
}

json_t *kernel_audit(struct mmtrustd *d)
{
	struct audit_ctx a = { .d = d, .policies = json_array(), .sas = json_array() };
	struct mm_nl_result res = { 0 };
	int r;

	if (!d->nl) {
		json_decref(a.policies);
		json_decref(a.sas);
		return mm_jsonl_error("unavailable", NULL, "the kernel is not reachable: %s",
				      d->kernel_error);
	}
	r = mm_xfrm_policy_dump(d->nl, audit_policy, audit_reset, &a, NULL, &res);
	if (r == 0)
		r = mm_xfrm_sa_dump(d->nl, audit_sa, audit_reset, &a, NULL, &res);
	if (r < 0) {
		json_decref(a.policies);
		json_decref(a.sas);
		return mm_jsonl_error("internal", NULL, "cannot read the kernel's XFRM state: %s%s%s",
				      strerror(-r), res.extack[0] ? ": " : "", res.extack);
	}
	return mm_jsonl_ok(json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "policies", a.policies,
				     "sas", a.sas, "ownership", "tag", (json_int_t)d->cfg.spd_tag,
				     "priority_base", (json_int_t)d->cfg.spd_prio_base,
				     "reqid_min", (json_int_t)d->cfg.reqid_min, "reqid_max",
				     (json_int_t)d->cfg.reqid_max));
}
