/* The strongSwan side of mmtrustd: charon negotiates IKEv2 and installs
 * SAs under each partner's reqid; we load the connections, keep the SA
 * table (ike_tunnels.h) from its events, and police it with the one verdict
 * of policy/sa.h: a CHILD_SA whose authenticated remote identity is not the
 * partner's domain, whose reqid is not the partner's, or whose SAs are not
 * between the partner's gateway and our tunnel address is terminated and
 * its SAs deleted; so is every kernel SA in our reqid range the verdict
 * condemns (XFRM monitor, sweep after list-sas).  A refused SA that carried
 * a tunnel takes it down at once and charon is told; so does one of a
 * tunnel's current SAs deleted from the kernel behind charon's back.  Two
 * VICI connections: commands, and events (so a long list-sas never delays
 * an event). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crl.h"
#include "log.h"
#include "mmtrustd.h"
#include "policy/jsonfmt.h"
#include "vici-plugins/vici.h"

struct mm_ike {
	struct mmtrustd *d;
	struct ike_ops ops;
	void *ops_userdata;
	struct vici_client *cmd, *evt;
	char *cert, *key;        /* PEM data of ours */
	size_t cert_len, key_len;
	struct ike_tunnels tunnels;
	/* Loads are paced: the rows marked load_pending (n_to_load of them)
	 * wait, at most IKE_LOAD_WINDOW commands are in charon's queue
	 * (loads_pending), and each completion sends the next.  The VICI
	 * client's queue is bounded (VICI_CLIENT_QUEUE_MAX): queueing every
	 * load at once would drop the partners past it. */
	unsigned loads_pending;
	size_t n_to_load;
	size_t load_cursor;      /* the row to look at next for a pending load */
	bool list_due;           /* loads were sent: list-sas when they are done */
	sd_event_source *retry;  /* queueing failed: try the pending loads again */
	bool loaded;             /* every connection loaded since the last connect */
	time_t listed_at;        /* when the last list-sas was sent */
	/* The partners' CRL files (crl.h), polled every IKE_CRL_POLL_USEC;
	 * crl_ops: CRL loads and re-authentications in flight (freed with
	 * the clients, which drop their callbacks). */
	struct crl_set crls;
	sd_event_source *crl_timer;
	struct crl_op *crl_ops;
	/* SAs gone from the kernel behind charon's back (ike_tunnel_sa_gone):
	 * the timer confirms the recorded SPIs after IKE_GONE_GRACE_USEC and,
	 * when sa_dump_due, first reads the SAD to find what a flush or lost
	 * events took without naming it. */
	sd_event_source *gone_timer;
	bool sa_dump_due;
};

#define IKE_CRL_POLL_USEC (1000 * 1000ull)

/* How long a kernel SA deletion waits for charon's own word (child-rekey,
 * child-updown) before it counts as done behind charon's back: charon
 * reports a rekey before it deletes the old SAs, and a close around the
 * time it deletes them. */
#define IKE_GONE_GRACE_USEC (500 * 1000ull)

/* Load commands outstanding at once: far below VICI_CLIENT_QUEUE_MAX, so
 * initiates and terminates always find room, and enough to keep charon busy. */
#define IKE_LOAD_WINDOW 192u
#define IKE_LOAD_RETRY_USEC (250 * 1000ull)

static bool send_load(struct mm_ike *ike, struct ike_tunnel *t);

static char *read_pem(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || len > 65535 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc(len + 1);
	if (buf && fread(buf, 1, len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
		errno = EIO;
	}
	fclose(f);
	if (buf) {
		buf[len] = '\0';
		*ret_len = len;
	}
	return buf;
}

static void free_key(char *key, size_t len)
{
	if (key)
		explicit_bzero(key, len);
	free(key);
}

/* Our certificate and key as the configuration names them; both or
 * neither (nothing changes on failure, which is logged). */
static int read_credentials(const struct mm_config *cfg, char **ret_cert, size_t *ret_cert_len,
			    char **ret_key, size_t *ret_key_len)
{
	size_t cert_len = 0, key_len = 0;
	char *cert = read_pem(cfg->ike_certificate, &cert_len), *key = NULL;
	int r = 0;

	if (!cert) {
		r = -errno;
		log_err("[ike] certificate %s: %s", cfg->ike_certificate, strerror(errno));
		goto out;
	}
	key = read_pem(cfg->ike_private_key, &key_len);
	if (!key) {
		r = -errno;
		log_err("[ike] private_key %s: %s", cfg->ike_private_key, strerror(errno));
		free(cert);
		goto out;
	}
	*ret_cert = cert;
	*ret_cert_len = cert_len;
	*ret_key = key;
	*ret_key_len = key_len;
out:
	return r;
}

/* ---- the SA table ---- */

static void tell(struct mm_ike *ike, const struct ike_tunnel *t, const char *event)
{
	if (ike->ops.tunnel_changed)
		ike->ops.tunnel_changed(ike->ops_userdata, &t->info, event);
}

static void tunnel_down(struct mm_ike *ike, struct ike_tunnel *t, const char *why)
{
	if (!ike_tunnel_set_down(t))
		return;
	log_event(MM_EVENT_TUNNEL_DOWN, LOG_NOTICE,
		  &(struct mm_event_ctx){ t->info.domain, t->info.reqid, 0 },
		  "tunnel down: partner %s (reqid %" PRIu32 "): %s", t->info.domain, t->info.reqid,
		  why);
	tell(ike, t, "sa-down");
}

/* ---- policing ---- */

static void on_terminated(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	if (error < 0)
		log_warn("charon: terminate of a refused SA: %s%s%s", strerror(-error),
			 errmsg ? ": " : "", errmsg ? errmsg : "");
}

static void on_initiated(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	if (error < 0)
		log_info("charon: initiate: %s%s%s", strerror(-error), errmsg ? ": " : "",
			 errmsg ? errmsg : "");
}

/* Ask charon for the partner's tunnel, at most every 5 s per partner: a
 * peer refused on every attempt must not make a loop of it (traffic brings
 * later attempts, see on_acquire). */
static bool initiate(struct mm_ike *ike, struct ike_tunnel *t)
{
	struct vici_initiate_args args = { .child = t->info.domain, .ike = t->info.domain,
					   .timeout_ms = -1 };
	uint64_t now;

	sd_event_now(ike->d->ev, CLOCK_MONOTONIC, &now);
	if (t->last_initiate && now - t->last_initiate < 5000000)
		return false;
	/* Not while our tunnel address is elsewhere (the other host of the
	 * pair holds it): ike_local_changed initiates when it is back. */
	if (!host_may_initiate(ike->d, mm_table_find(ike->d->table, t->info.domain)))
		return false;
	t->last_initiate = now;
	/* A connection still waiting to be loaded goes first (past the
	 * window): charon must initiate the partner as it is now. */
	if (t->load_pending)
		send_load(ike, t);
	if (vici_initiate(ike->cmd, &args, on_initiated, ike) < 0)
		log_warn("partner %s: cannot ask charon to initiate", t->info.domain);
	return true;
}

/* charon forgets the IKE_SA at once: its peer may not be where charon
 * thinks it is, and a DELETE retransmitted for minutes would keep the
 * CHILD_SA "installed" in charon's eyes all that time. */
static void terminate_ike(struct mm_ike *ike, uint32_t ike_id)
{
	struct vici_terminate_args args = { .ike_id = ike_id, .force = true, .timeout_ms = -1 };

	if (ike_id && vici_terminate(ike->cmd, &args, on_terminated, ike) < 0)
		log_warn("cannot ask charon to terminate IKE_SA %" PRIu32, ike_id);
}

/* mmtrustd deleted (or is deleting) an SA: if it carried the partner's
 * tunnel, the answers, charon and the tunnel follow at once. */
static void sa_refused(struct mm_ike *ike, const struct mm_sa_judgement *j, uint32_t spi)
{
	struct ike_refusal plan;
	const char *next = "";

	if (!ike)
		return;
	ike_refusal_plan(&ike->tunnels, j, spi, &plan);
	if (!plan.down)
		return;
	tunnel_down(ike, plan.tunnel, mm_sa_verdict_reason(j->verdict));
	if (!vici_client_is_connected(ike->cmd))
		return;  /* everything is re-read on reconnect */
	terminate_ike(ike, plan.terminate_ike_id);
	if (plan.initiate)
		next = initiate(ike, plan.tunnel) ? "; initiating again" : "; initiated < 5 s ago";
	log_notice("partner %s (reqid %" PRIu32 "): charon told to terminate IKE_SA %" PRIu32
		   "%s",
		   plan.tunnel->info.domain, plan.tunnel->info.reqid, plan.terminate_ike_id, next);
}

/* ---- SAs gone behind charon's back ---- */

/* The row of the partner holding reqid, NULL when none. */
static struct ike_tunnel *tunnel_of_reqid(struct mm_ike *ike, uint32_t reqid)
{
	const struct mm_partner *p = mm_table_find_reqid(ike->d->table, reqid);
	struct ike_tunnel *t = p ? ike_tunnels_find(&ike->tunnels, p->domain) : NULL;

	return t && t->info.reqid == reqid ? t : NULL;
}

/* Confirm (or read the SAD) in `usec` from now; an earlier time armed
 * before stays. */
static void arm_gone(struct mm_ike *ike, uint64_t usec)
{
	uint64_t now, at, armed;
	int enabled = SD_EVENT_OFF;

	if (!ike->gone_timer)
		return;
	sd_event_now(ike->d->ev, CLOCK_MONOTONIC, &now);
	at = now + usec;
	sd_event_source_get_enabled(ike->gone_timer, &enabled);
	if (enabled != SD_EVENT_OFF && sd_event_source_get_time(ike->gone_timer, &armed) >= 0 &&
	    armed <= at)
		return;
	sd_event_source_set_time(ike->gone_timer, at);
	sd_event_source_set_enabled(ike->gone_timer, SD_EVENT_ONESHOT);
}

/* The kernel no longer holds SA spi of the row's reqid. */
static void sa_gone(struct mm_ike *ike, struct ike_tunnel *t, uint32_t spi, const char *how)
{
	uint64_t now;

	if (!t || !ike_tunnel_sa_gone(t, spi))
		return;
	sd_event_now(ike->d->ev, CLOCK_MONOTONIC, &now);
	t->gone_at = now + IKE_GONE_GRACE_USEC;
	/* Debug: charon deletes the old outbound SA of every rekey it starts
	 * just before it reports the new CHILD_SA. */
	log_debug("partner %s (reqid %" PRIu32 "): SA 0x%08" PRIx32 " of its tunnel %s; "
		  "down unless charon replaces or closes the CHILD_SA within %llu ms",
		  t->info.domain, t->info.reqid, spi, how, IKE_GONE_GRACE_USEC / 1000);
	arm_gone(ike, IKE_GONE_GRACE_USEC);
}

/* charon still counts the CHILD_SA installed; the kernel dropped its SAs
 * and with them the partner's traffic (the policies require ESP).  The
 * tunnel is down at once; charon forgets the IKE_SA and negotiates anew. */
static void gone_confirmed(struct mm_ike *ike, struct ike_tunnel *t, uint32_t spi)
{
	const struct mm_partner *p = mm_table_find(ike->d->table, t->info.domain);
	uint32_t ike_id = t->ike_id;
	const char *next = "";
	char why[96];

	snprintf(why, sizeof(why), "its SA 0x%08" PRIx32 " was deleted from the kernel behind charon",
		 spi);
	tunnel_down(ike, t, why);
	if (!vici_client_is_connected(ike->cmd))
		return;  /* everything is re-read on reconnect */
	terminate_ike(ike, ike_id);
	if (p && p->reqid == t->info.reqid && mm_partner_has_tunnel(p)) {
		t->last_initiate = 0;  /* a new reason: the 5 s pacing does not hold */
		next = initiate(ike, t) ? "; initiating again" : "; not initiating here";
	}
	log_notice("partner %s (reqid %" PRIu32 "): charon told to terminate IKE_SA %" PRIu32 "%s",
		   t->info.domain, t->info.reqid, ike_id, next);
}

/* One SAD dump: which current SPIs of up tunnels are there.  present[i]
 * bit 0: row i's spi_in, bit 1: its spi_out. */
struct gone_dump {
	struct mm_ike *ike;
	uint8_t *present;
};

static void gone_dump_reset(void *userdata)
{
	struct gone_dump *g = userdata;

	memset(g->present, 0, g->ike->tunnels.n);
}

static int gone_dump_one(const struct mm_xfrm_sa *sa, void *userdata)
{
	struct gone_dump *g = userdata;
	struct ike_tunnel *t;

	if (!mm_reqid_ours(g->ike->d->table, sa->reqid) || !sa->spi ||
	    !(t = tunnel_of_reqid(g->ike, sa->reqid)) || !t->info.up)
		return 0;
	if (sa->spi == t->info.spi_in)
		g->present[t - g->ike->tunnels.t] |= 1;
	else if (sa->spi == t->info.spi_out)
		g->present[t - g->ike->tunnels.t] |= 2;
	else
		return 0;
	ike_tunnel_kernel_saw(t, sa->spi);
	return 0;
}

/* An SA of an up tunnel that the kernel was seen holding and a fresh dump
 * lacks is gone, as if its deletion had been reported.  One never seen
 * there (charon has not installed it yet, or a kernel without ESP) is not
 * judged by its absence. */
static void gone_dump(struct mm_ike *ike)
{
	struct gone_dump g = { .ike = ike };
	struct mm_nl_result res = { 0 };
	int r;

	if (!ike->d->nl || !ike->tunnels.n)
		return;
	g.present = calloc(ike->tunnels.n, 1);
	if (!g.present)
		return;
	r = mm_xfrm_sa_dump(ike->d->nl, gone_dump_one, gone_dump_reset, &g, NULL, &res);
	if (r < 0) {
		log_warn("charon's SAs: cannot read the kernel's SAs: %s", strerror(-r));
		free(g.present);
		return;
	}
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		struct ike_tunnel *t = &ike->tunnels.t[i];
		uint32_t spi[2] = { t->info.spi_in, t->info.spi_out };

		for (size_t k = 0; t->info.up && k < 2; k++)
			if (!(g.present[i] & (1u << k)) && ike_tunnel_kernel_had(t, spi[k]))
				sa_gone(ike, t, spi[k], "is missing from the kernel's SAs");
	}
	free(g.present);
}

/* Each recorded SPI gets its whole grace; the timer follows the earliest. */
static int on_gone_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mm_ike *ike = userdata;
	uint64_t next = UINT64_MAX, now;

	(void)s;
	(void)usec;
	sd_event_now(ike->d->ev, CLOCK_MONOTONIC, &now);
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		struct ike_tunnel *t = &ike->tunnels.t[i];
		uint32_t spi;

		if (!t->gone_spi)
			continue;
		if (t->gone_at > now) {
			next = t->gone_at < next ? t->gone_at : next;
			continue;
		}
		spi = ike_tunnel_gone_confirm(t);
		if (spi)
			gone_confirmed(ike, t, spi);
	}
	if (next != UINT64_MAX)
		arm_gone(ike, next - now);
	if (ike->sa_dump_due) {
		ike->sa_dump_due = false;
		gone_dump(ike);
	}
	return 0;
}

void ike_kernel_sas_check(struct mmtrustd *d)
{
	if (!d->ike)
		return;
	d->ike->sa_dump_due = true;
	arm_gone(d->ike, 0);
}

struct spi_pair {
	uint32_t reqid, spi_in, spi_out;
};

static bool sa_matches_spis(const struct mm_xfrm_sa *sa, void *userdata)
{
	const struct spi_pair *p = userdata;

	return sa->reqid == p->reqid && (sa->spi == p->spi_in || sa->spi == p->spi_out);
}

/* whole_ike: the IKE_SA is condemned (wrong identity, wrong addresses);
 * else only the CHILD_SA (the partner's own tunnel stays up). */
static void kill_child(struct mm_ike *ike, const struct vici_ike_sa *sa,
		       const struct vici_child_sa *child, bool whole_ike)
{
	struct vici_terminate_args args = {
		.child_id = child->uniqueid,
		.timeout_ms = -1,
	};
	struct spi_pair spis = { child->reqid, child->spi_in, child->spi_out };
	size_t deleted = 0;

	if (whole_ike)
		terminate_ike(ike, sa->uniqueid);
	else if (vici_terminate(ike->cmd, &args, on_terminated, ike) < 0)
		log_warn("cannot ask charon to terminate CHILD_SA %" PRIu32, child->uniqueid);
	if (ike->d->nl &&
	    mm_xfrm_sa_delete_if(ike->d->nl, sa_matches_spis, &spis, &deleted, NULL) == 0)
		log_notice("deleted %zu SAs of the refused CHILD_SA (spi 0x%08" PRIx32
			   "/0x%08" PRIx32 ")",
			   deleted, child->spi_in, child->spi_out);
}

/* The verdict of policy/sa.h on a CHILD_SA charon reports installed, as the
 * kernel will have it: the IKE_SA's addresses are the SAs' ends. */
static void judge_child_sas(struct mmtrustd *d, const struct vici_ike_sa *sa,
			    const struct vici_child_sa *child, struct mm_sa_judgement *ret)
{
	struct mm_sa_facts f = { .reqid = child->reqid, .charon = MM_SA_CHARON_KNOWS };

	/* A missing or unreadable host leaves the address zero: wrong ends. */
	if (sa->remote_host)
		mm_addr_parse(sa->remote_host, &f.src, "remote-host", NULL);
	if (sa->local_host)
		mm_addr_parse(sa->local_host, &f.dst, "local-host", NULL);
	mm_sa_judge(d->table, d->cfg.tunnel, d->cfg.n_tunnel, &f, ret);
}

/* A CHILD_SA charon reports: judged on the IKE level (connection, identity,
 * reqid) and on the SA level (the partner still wants a tunnel, the SAs are
 * between its gateway and our tunnel address). */
static void child_check(struct mm_ike *ike, const struct vici_ike_sa *sa,
			const struct vici_child_sa *child, bool up)
{
	struct mmtrustd *d = ike->d;
	struct mm_child_judgement cj;
	struct mm_sa_judgement sj;
	struct ike_tunnel *t;
	bool was_up;

	mm_child_judge(d->table, sa->name, sa->remote_id, child->reqid, &cj);
	if (cj.verdict == MM_CHILD_NOT_OURS)
		return;  /* another connection of this charon: not ours to judge */
	if (cj.verdict != MM_CHILD_OK) {
		if (!up)
			return;
		log_event(MM_EVENT_IDENTITY_REFUSED, LOG_ERR,
			  &(struct mm_event_ctx){ cj.partner ? cj.partner->domain : sa->name,
						  child->reqid, child->spi_in },
			  "identity mismatch: CHILD_SA %s of IKE_SA %s (remote id '%s', host %s) "
			  "has reqid %" PRIu32 "; %s (%s): terminated and its SAs deleted",
			child->name ? child->name : "?", sa->name ? sa->name : "?",
			sa->remote_id ? sa->remote_id : "", sa->remote_host ? sa->remote_host : "?",
			child->reqid, mm_child_verdict_reason(cj.verdict),
			mm_child_verdict_name(cj.verdict));
		kill_child(ike, sa, child, cj.verdict != MM_CHILD_WRONG_REQID);
		return;
	}
	t = ike_tunnels_find(&ike->tunnels, cj.partner->domain);
	if (!t)
		return;
	if (!up) {
		if (t->info.spi_in == child->spi_in || !t->info.spi_in)
			tunnel_down(ike, t, "CHILD_SA closed");
		return;
	}
	judge_child_sas(d, sa, child, &sj);
	if (mm_sa_must_delete(sj.verdict)) {
		log_event(MM_EVENT_SA_DELETED, LOG_ERR,
			  &(struct mm_event_ctx){ cj.partner->domain, child->reqid, child->spi_in },
			  "refused CHILD_SA %s of partner %s (reqid %" PRIu32 ", %s -> %s, spi in "
			  "0x%08" PRIx32 " out 0x%08" PRIx32 "): %s (%s); terminated and its SAs deleted",
			child->name ? child->name : "?", cj.partner->domain, child->reqid,
			sa->remote_host ? sa->remote_host : "?", sa->local_host ? sa->local_host : "?",
			child->spi_in, child->spi_out, mm_sa_verdict_reason(sj.verdict),
			mm_sa_verdict_name(sj.verdict));
		kill_child(ike, sa, child, true);
		if (t->info.up && t->ike_id != sa->uniqueid)
			return;  /* the partner's tunnel lives in another IKE_SA */
		tunnel_down(ike, t, mm_sa_verdict_reason(sj.verdict));
		if (mm_partner_has_tunnel(cj.partner) && initiate(ike, t))
			log_notice("partner %s (reqid %" PRIu32 "): initiating again",
				   cj.partner->domain, cj.partner->reqid);
		return;
	}
	t->listed = true;
	/* SAs on an address this host no longer holds protect nothing here. */
	if (!host_local_usable(d, sa->local_host)) {
		tunnel_down(ike, t, "our end of its SAs is not a usable address of this host");
		return;
	}
	was_up = t->info.up;
	if (ike_tunnel_set_up(t, &(struct ike_child_up){
					 .spi_in = child->spi_in,
					 .spi_out = child->spi_out,
					 .ike_id = sa->uniqueid,
					 .since = time(NULL) - (time_t)child->install_time,
					 .remote_id = sa->remote_id,
					 .remote_host = sa->remote_host,
					 .local_host = sa->local_host,
					 .ike_state = sa->state,
				 })) {
		/* Up already, with other SPIs: a rekey (or a new CHILD_SA).
		 * The one place that says so: the event and the metric. */
		if (was_up)
			metrics_rekey(cj.partner->domain);
		log_event(was_up ? MM_EVENT_REKEY : MM_EVENT_TUNNEL_UP, LOG_NOTICE,
			  &(struct mm_event_ctx){ cj.partner->domain, cj.partner->reqid,
						  child->spi_in },
			  "tunnel up: partner %s (reqid %" PRIu32 "):%s remote %s id %s, "
			  "spi in 0x%08" PRIx32 " out 0x%08" PRIx32,
			  cj.partner->domain, cj.partner->reqid, was_up ? " rekeyed," : "",
			  sa->remote_host ? sa->remote_host : "?", sa->remote_id, child->spi_in,
			  child->spi_out);
		tell(ike, t, "sa-up");
	}
}

static bool child_installed(const struct vici_child_sa *c)
{
	return c->state && strcmp(c->state, "INSTALLED") == 0;
}

/* ---- events ---- */

static void on_child_updown(struct vici_client *c, int error, const char *event,
			    const struct vici_msg *msg, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct vici_child_updown *e;

	(void)c;
	(void)event;
	if (error < 0 || vici_child_updown_decode(msg, &e) < 0)
		return;
	for (size_t i = 0; i < e->ike.n_children; i++)
		child_check(ike, &e->ike, &e->ike.children[i], e->up);
	vici_child_updown_free(e);
}

static void on_child_rekey(struct vici_client *c, int error, const char *event,
			   const struct vici_msg *msg, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct vici_child_rekey *e;

	(void)c;
	(void)event;
	if (error < 0 || vici_child_rekey_decode(msg, &e) < 0)
		return;
	child_check(ike, &e->ike, &e->new_sa, true);
	vici_child_rekey_free(e);
}

static void on_ike_updown(struct vici_client *c, int error, const char *event,
			  const struct vici_msg *msg, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct vici_ike_updown *e;
	struct ike_tunnel *t;

	(void)c;
	(void)event;
	if (error < 0 || vici_ike_updown_decode(msg, &e) < 0)
		return;
	t = ike_tunnels_find(&ike->tunnels, e->ike.name);
	/* Another IKE_SA of the partner's (a duplicate, the one a refused
	 * tunnel left) going away does not take the tunnel with it. */
	if (t && (e->up || !t->info.up || t->ike_id == e->ike.uniqueid)) {
		snprintf(t->ike_state, sizeof(t->ike_state), "%s",
			 e->up ? (e->ike.state ? e->ike.state : "ESTABLISHED") : "DESTROYING");
		if (!e->up)
			tunnel_down(ike, t, "IKE_SA closed");
		else if (!t->info.up)
			t->ike_id = e->ike.uniqueid;
	}
	vici_ike_updown_free(e);
}

static void on_ike_rekey(struct vici_client *c, int error, const char *event,
			 const struct vici_msg *msg, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct vici_ike_rekey *e;
	struct ike_tunnel *t;

	(void)c;
	(void)event;
	if (error < 0 || vici_ike_rekey_decode(msg, &e) < 0)
		return;
	t = ike_tunnels_find(&ike->tunnels, e->new_sa.name);
	if (t && (!t->info.up || t->ike_id == e->old_sa.uniqueid))
		t->ike_id = e->new_sa.uniqueid;
	vici_ike_rekey_free(e);
}

/* ---- loading ---- */

static void on_list_sas(struct vici_client *c, int error, struct vici_ike_sa *const *sas,
			size_t n, void *userdata);

static void list_sas(struct mm_ike *ike)
{
	ike->listed_at = time(NULL);
	vici_list_sas(ike->cmd, NULL, on_list_sas, ike);
}

/* The kernel's SAs in our reqid range judged with what charon listed
 * (policy/sa.h): an SA charon does not know (a charon that died left it),
 * of a partner without a tunnel, or between other addresses is deleted.
 * Only SAs older than the listing are judged, so one charon installs while
 * we list is never hit. */
struct sweep_ctx {
	struct mm_ike *ike;
	uint32_t *spis;
	size_t n;
	uint64_t listed_at;  /* wall-clock seconds, as the kernel's add_time */
};

static bool sweep_match(const struct mm_xfrm_sa *sa, void *userdata)
{
	const struct sweep_ctx *o = userdata;
	const struct mmtrustd *d = o->ike->d;
	struct mm_sa_facts f = { .reqid = sa->reqid, .src = sa->src, .dst = sa->dst,
				 .charon = MM_SA_CHARON_UNKNOWN };
	struct mm_sa_judgement j;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];

	if (!mm_reqid_ours(d->table, sa->reqid) || !sa->add_time || sa->add_time + 2 > o->listed_at)
		return false;
	for (size_t i = 0; i < o->n; i++)
		if (o->spis[i] == sa->spi)
			f.charon = MM_SA_CHARON_KNOWS;
	mm_sa_judge(d->table, d->cfg.tunnel, d->cfg.n_tunnel, &f, &j);
	if (!mm_sa_must_delete(j.verdict))
		return false;
	log_notice("charon sweep: deleting SA spi 0x%08" PRIx32 " %s -> %s reqid %" PRIu32
		   ": %s (%s)",
		   sa->spi, mm_addr_str(&sa->src, s), mm_addr_str(&sa->dst, t), sa->reqid,
		   mm_sa_verdict_reason(j.verdict), mm_sa_verdict_name(j.verdict));
	sa_refused(o->ike, &j, sa->spi);
	return true;
}

static void sweep(struct mm_ike *ike, struct vici_ike_sa *const *sas, size_t n, time_t listed_at)
{
	struct sweep_ctx o = { .ike = ike, .listed_at = listed_at };
	size_t cap = 0, deleted = 0;

	if (!ike->d->nl)
		return;
	for (size_t i = 0; i < n; i++)
		cap += 2 * sas[i]->n_children;
	o.spis = calloc(cap + 1, sizeof(*o.spis));
	if (!o.spis)
		return;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < sas[i]->n_children; j++) {
			o.spis[o.n++] = sas[i]->children[j].spi_in;
			o.spis[o.n++] = sas[i]->children[j].spi_out;
		}
	if (mm_xfrm_sa_delete_if(ike->d->nl, sweep_match, &o, &deleted, NULL) == 0 && deleted)
		log_notice("charon sweep: deleted %zu SAs in our reqid range", deleted);
	free(o.spis);
}

static void on_list_sas(struct vici_client *c, int error, struct vici_ike_sa *const *sas,
			size_t n, void *userdata)
{
	struct mm_ike *ike = userdata;
	size_t up = 0;

	(void)c;
	if (error < 0) {
		log_warn("charon: list-sas failed: %s", strerror(-error));
		return;
	}
	/* The table is rebuilt from charon's view: what it does not list is down. */
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		ike->tunnels.t[i].listed = false;
		ike->tunnels.t[i].ike_state[0] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		struct ike_tunnel *t = ike_tunnels_find(&ike->tunnels, sas[i]->name);

		if (t)
			snprintf(t->ike_state, sizeof(t->ike_state), "%s",
				 sas[i]->state ? sas[i]->state : "");
		for (size_t j = 0; j < sas[i]->n_children; j++)
			if (child_installed(&sas[i]->children[j]))
				child_check(ike, sas[i], &sas[i]->children[j], true);
	}
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		if (!ike->tunnels.t[i].listed)
			tunnel_down(ike, &ike->tunnels.t[i], "charon does not list it");
		up += ike->tunnels.t[i].info.up;
	}
	log_info("charon: SA table rebuilt from list-sas: %zu IKE_SAs, %zu partner tunnels up",
		 n, up);
	sweep(ike, sas, n, ike->listed_at);
}

static void pump_loads(struct mm_ike *ike);

static void on_loaded(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct mm_ike *ike = userdata;

	(void)c;
	/* A load lost with the connection is sent again on the next connect
	 * (load_all); one charon refused is not retried. */
	if (error < 0 && vici_client_is_connected(ike->cmd))
		log_err("charon refused a load: %s%s%s", strerror(-error), errmsg ? ": " : "",
			errmsg ? errmsg : "");
	if (ike->loads_pending)
		ike->loads_pending--;
	pump_loads(ike);
}

static int strv_of(char ***ret, size_t n, const void *items, bool prefixes)
{
	char **v = calloc(n + 1, sizeof(*v));
	char buf[MM_ADDR_STRLEN];

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(prefixes ? mm_prefix_str((const struct mm_prefix *)items + i, buf)
				       : mm_addr_str((const struct mm_addr *)items + i, buf));
		if (!v[i]) {
			vici_strv_free(v);
			return -ENOMEM;
		}
	}
	*ret = v;
	return 0;
}

static int load_partner(struct mm_ike *ike, const struct mm_partner *p)
{
	static const char *const esp_encrypt[] = { "aes128gcm16", NULL };
	static const char *const esp_integrity[] = { "null-sha256", NULL };
	struct mmtrustd *d = ike->d;
	char **local_addrs = NULL, **local_ts = NULL, **remote_addrs = NULL, **remote_ts = NULL;
	const struct mm_cscf_set cscf = mm_config_cscf(&d->cfg);
	struct mm_prefix facing[MM_CONFIG_MAX_LOCAL];  /* our cscf prefixes of its kind */
	const char *cacerts[MM_PARTNER_CA_MAX + 1] = { NULL };
	struct vici_child_conf child = {
		.name = p->domain,
		.esp_proposals = p->esp == MM_ESP_INTEGRITY_ONLY ? esp_integrity : esp_encrypt,
		.reqid = p->reqid,
	};
	struct vici_conn_conf conn = {
		.name = p->domain,
		.local_id = d->cfg.ike_local_id[0] ? d->cfg.ike_local_id : NULL,
		.local_cert = ike->cert,
		.local_cert_len = ike->cert_len,
		.remote_id = p->domain,
		.remote_cacerts = cacerts,
		.remote_revocation = mm_revocation_name(p->revocation),
		.dpd_delay = d->cfg.ike_dpd_delay,
		.children = &child,
		.n_children = 1,
	};
	int r;

	for (size_t i = 0; i < p->n_cas; i++)
		cacerts[i] = p->cas[i].pem;
	r = strv_of(&local_addrs, d->cfg.n_tunnel, d->cfg.tunnel, false);
	if (r == 0)
		r = strv_of(&local_ts, mm_cscf_facing(&cscf, p, facing), facing, true);
	if (r == 0)
		r = strv_of(&remote_addrs, p->n_gateways, p->gateways, false);
	if (r == 0)
		r = strv_of(&remote_ts, p->n_ranges, p->ranges, true);
	if (r == 0) {
		conn.local_addrs = (const char *const *)(d->cfg.n_tunnel ? local_addrs : NULL);
		conn.remote_addrs = (const char *const *)remote_addrs;
		child.local_ts = (const char *const *)local_ts;
		child.remote_ts = (const char *const *)remote_ts;
		r = vici_load_conn(ike->cmd, &conn, on_loaded, ike);
		if (r == 0)
			ike->loads_pending++;
	}
	/* A full queue or no connection: the load stays pending (pump_loads). */
	if (r < 0 && r != -ENOBUFS && r != -ENOTCONN)
		log_err("partner %s (reqid %" PRIu32 "): cannot load its connection: %s",
			p->domain, p->reqid, strerror(-r));
	vici_strv_free(local_addrs);
	vici_strv_free(local_ts);
	vici_strv_free(remote_addrs);
	vici_strv_free(remote_ts);
	return r;
}

static void mark_load(struct mm_ike *ike, struct ike_tunnel *t, bool pending)
{
	if (!t || t->load_pending == pending)
		return;
	t->load_pending = pending;
	if (pending)
		ike->n_to_load++;
	else
		ike->n_to_load--;
}

/* The rows were rebuilt (ike_tunnels_sync): count what still waits. */
static void count_loads(struct mm_ike *ike)
{
	ike->n_to_load = 0;
	for (size_t i = 0; i < ike->tunnels.n; i++)
		ike->n_to_load += ike->tunnels.t[i].load_pending;
}

/* Send the row's partner's connection as the table has it now.  False when
 * it could not be queued (it stays pending). */
static bool send_load(struct mm_ike *ike, struct ike_tunnel *t)
{
	const struct mm_partner *p = mm_table_find(ike->d->table, t->info.domain);
	int r;

	mark_load(ike, t, false);
	if (!p || p->reqid != t->info.reqid || !mm_partner_has_tunnel(p))
		return true;  /* nothing of it to load any more */
	r = load_partner(ike, p);
	if (r == -ENOBUFS || r == -ENOTCONN) {
		mark_load(ike, t, true);
		return false;
	}
	ike->list_due = true;
	return true;
}

static int on_load_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mm_ike *ike = userdata;

	(void)usec;
	ike->retry = sd_event_source_unref(s);
	pump_loads(ike);
	return 0;
}

static struct ike_tunnel *next_to_load(struct mm_ike *ike)
{
	for (size_t k = 0; ike->n_to_load && k < ike->tunnels.n; k++) {
		size_t i = (ike->load_cursor + k) % ike->tunnels.n;

		if (ike->tunnels.t[i].load_pending) {
			ike->load_cursor = i + 1;
			return &ike->tunnels.t[i];
		}
	}
	return NULL;
}

/* Fill the window from the pending rows; when nothing is pending or in
 * flight any more, charon's SAs are read once for the whole batch. */
static void pump_loads(struct mm_ike *ike)
{
	struct ike_tunnel *t;
	uint64_t now;

	if (!vici_client_is_connected(ike->cmd))
		return;  /* load_all sends everything on the next connect */
	while (ike->loads_pending < IKE_LOAD_WINDOW && (t = next_to_load(ike)))
		if (!send_load(ike, t)) {
			/* Completions pump again; with none in flight a timer does. */
			if (!ike->loads_pending && !ike->retry &&
			    sd_event_now(ike->d->ev, CLOCK_MONOTONIC, &now) >= 0 &&
			    sd_event_add_time(ike->d->ev, &ike->retry, CLOCK_MONOTONIC,
					      now + IKE_LOAD_RETRY_USEC, 0, on_load_retry, ike) >= 0)
				log_warn("charon: the command queue is full; %zu partner connections "
					 "wait to be loaded",
					 ike->n_to_load);
			break;
		}
	if (!ike->loads_pending && !ike->n_to_load && ike->list_due) {
		ike->list_due = false;
		ike->loaded = true;
		list_sas(ike);
	}
}

static void on_unloaded(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	/* Unloading what charon does not have is fine (stale cleanup). */
	if (error < 0 && error != -EREMOTEIO)
		log_warn("charon: unload-conn: %s%s%s", strerror(-error), errmsg ? ": " : "",
			 errmsg ? errmsg : "");
}

static void unload_partner(struct mm_ike *ike, const char *domain)
{
	struct vici_terminate_args args = { .ike = domain, .timeout_ms = -1 };

	if (!vici_client_is_connected(ike->cmd))
		return;
	vici_unload_conn(ike->cmd, domain, on_unloaded, ike);
	/* unload-conn undoes start_action=start; terminate as well in case the
	 * SA was initiated by the peer. */
	vici_terminate(ike->cmd, &args, on_unloaded, ike);
}

/* Connections that charon still holds under the name of a partner we once
 * had (the audit trail knows it) but no longer want: left over from a
 * deletion while charon or we were down. */
static void on_get_conns(struct vici_client *c, int error, char *const *conns, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct mmtrustd *d = ike->d;

	(void)c;
	if (error < 0)
		return;
	for (size_t i = 0; conns[i]; i++) {
		const struct mm_partner *p = mm_table_find(d->table, conns[i]);
		json_t *entries = NULL;

		if (p && mm_partner_has_tunnel(p))
			continue;
		if (!p && (mm_store_audit(d->store, conns[i], 1, &entries, NULL) < 0 ||
			   json_array_size(entries) == 0)) {
			json_decref(entries);
			continue;  /* never ours */
		}
		json_decref(entries);
		log_notice("charon: unloading stale connection %s", conns[i]);
		unload_partner(ike, conns[i]);
	}
}

/* ---- CRLs ---- */

/* An IKE_SA that authenticated before a CRL load: re-authenticated when
 * the load brings new content. */
struct crl_sa {
	char domain[MM_DOMAIN_MAX + 1];
	uint32_t ike_id;
};

/* A CRL load (with the flush-certs behind it) or a re-authentication in
 * flight.  A load's op is freed by the flush's completion, which comes
 * after the load's (replies come in order); by the load's when no flush
 * was queued. */
struct crl_op {
	struct crl_op *next;
	struct mm_ike *ike;
	char *path;                      /* a load: the file */
	char sha256[96];                 /* a load: the content sent */
	struct crl_sa *sas;              /* a load: the IKE_SAs up when it was sent */
	size_t n_sas;
	bool flush_queued, reauth_due;
	struct crl_sa sa;                /* a re-authentication */
};

static struct crl_op *crl_op_new(struct mm_ike *ike, const char *path)
{
	struct crl_op *op = calloc(1, sizeof(*op));

	if (!op || (path && !(op->path = strdup(path)))) {
		free(op);
		return NULL;
	}
	op->ike = ike;
	op->next = ike->crl_ops;
	ike->crl_ops = op;
	return op;
}

static void crl_op_free(struct crl_op *op)
{
	struct crl_op **pp;

	for (pp = &op->ike->crl_ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	free(op->path);
	free(op->sas);
	free(op);
}

static void on_reauthed(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct crl_op *op = userdata;
	struct mm_ike *ike = op->ike;
	struct ike_tunnel *t;

	(void)c;
	if (error < 0 && vici_client_is_connected(ike->cmd)) {
		/* The CRL must be applied either way: a fresh IKE_SA is
		 * authenticated with it. */
		log_warn("partner %s: charon refused to re-authenticate IKE_SA %" PRIu32 " (%s%s%s); "
			 "terminating it and initiating a new one instead",
			 op->sa.domain, op->sa.ike_id, strerror(-error), errmsg ? ": " : "",
			 errmsg ? errmsg : "");
		terminate_ike(ike, op->sa.ike_id);
		t = ike_tunnels_find(&ike->tunnels, op->sa.domain);
		if (t) {
			t->last_initiate = 0;
			initiate(ike, t);
		}
	}
	crl_op_free(op);
}

/* The IKE_SAs up now of the partners that list path. */
static int crl_sas_up(struct mm_ike *ike, const char *path, struct crl_sa **ret, size_t *ret_n)
{
	const struct mm_table *tb = ike->d->table;
	struct crl_sa *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < tb->n; i++) {
		const struct mm_partner *p = tb->partners[i];
		const struct ike_tunnel *t;
		bool lists = false;

		for (size_t k = 0; k < p->n_crls && !lists; k++)
			lists = strcmp(p->crls[k], path) == 0;
		t = lists ? ike_tunnels_find(&ike->tunnels, p->domain) : NULL;
		if (!t || !t->info.up || !t->ike_id)
			continue;
		if (!v && !(v = calloc(tb->n, sizeof(*v))))
			return -ENOMEM;
		snprintf(v[n].domain, sizeof(v[n].domain), "%s", p->domain);
		v[n++].ike_id = t->ike_id;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* charon checks revocation only when an IKE_SA authenticates: the IKE_SAs
 * that authenticated before the new CRL authenticate again, now (those
 * that came up since were checked against it). */
static void reauth_sas(struct mm_ike *ike, const char *path, const struct crl_sa *sas, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct ike_tunnel *t = ike_tunnels_find(&ike->tunnels, sas[i].domain);
		struct crl_op *op;

		if (!t || !t->info.up || t->ike_id != sas[i].ike_id)
			continue;  /* gone or replaced since */
		op = crl_op_new(ike, NULL);
		if (!op) {
			log_err("partner %s: out of memory for the re-authentication", sas[i].domain);
			continue;
		}
		op->sa = sas[i];
		if (vici_rekey(ike->cmd, &(struct vici_rekey_args){ .ike_id = sas[i].ike_id,
								    .reauth = true },
			       on_reauthed, op) < 0) {
			log_err("partner %s: cannot queue the re-authentication of IKE_SA %" PRIu32,
				sas[i].domain, sas[i].ike_id);
			crl_op_free(op);
			continue;
		}
		log_notice("partner %s: CRL %s changed; re-authenticating IKE_SA %" PRIu32
			   " (revocation is checked when an IKE_SA authenticates)",
			   sas[i].domain, path, sas[i].ike_id);
	}
}

/* charon caches every CRL it verified and, checking revocation, takes the
 * first valid one it finds: a newer CRL is used only once the cache has
 * been emptied.  The flush is queued right behind the load, so the
 * connections and re-authentications queued after it see the new CRL. */
static void on_crls_flushed(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct crl_op *op = userdata;
	struct mm_ike *ike = op->ike;

	(void)c;
	if (error < 0 && vici_client_is_connected(ike->cmd))
		log_warn("charon: flush-certs X509_CRL after CRL %s: %s%s%s; a CRL it cached "
			 "before may still be used", op->path, strerror(-error),
			 errmsg ? ": " : "", errmsg ? errmsg : "");
	if (op->reauth_due && vici_client_is_connected(ike->cmd))
		reauth_sas(ike, op->path, op->sas, op->n_sas);
	crl_op_free(op);
}

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void on_crl_loaded(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct crl_op *op = userdata;
	struct mm_ike *ike = op->ike;
	struct crl_file *f = crl_set_find(&ike->crls, op->path);
	char why[256];

	(void)c;
	if (error < 0) {
		snprintf(why, sizeof(why), "charon refused it: %s",
			 errmsg ? errmsg : strerror(-error));
		/* Once per distinct refusal; the poll tries again, backing off. */
		if (vici_client_is_connected(ike->cmd) && (!f || strcmp(f->charon_error, why) != 0))
			log_err("charon refused CRL %s: %s%s%s; trying again, backing off to "
				"once a minute", op->path, strerror(-error), errmsg ? ": " : "",
				errmsg ? errmsg : "");
		if (f) {
			snprintf(f->charon_error, sizeof(f->charon_error), "%s", why);
			f->retry_s = f->retry_s ? (f->retry_s * 2 > 60 ? 60 : f->retry_s * 2) : 1;
			f->retry_at = mono_s() + f->retry_s;
			f->changed = true;
			f->newly_revoked |= op->reauth_due;
		}
		op->reauth_due = false;
	} else if (f) {
		bool news = strcmp(f->charon_sha256, op->sha256) != 0 || f->charon_error[0];

		snprintf(f->charon_sha256, sizeof(f->charon_sha256), "%s", op->sha256);
		f->charon_error[0] = '\0';
		f->retry_s = 0;
		f->retry_at = 0;
		f->loaded_at = time(NULL);
		if (news)
			log_event(op->reauth_due ? MM_EVENT_REVOKED : MM_EVENT_CRL_LOADED, LOG_NOTICE,
				  NULL, "CRL %s loaded into charon: issuer %s, %ld revoked, sha256 %s%s",
				  op->path, f->info.issuer, f->info.n_revoked, op->sha256,
				  op->reauth_due ? "; it revokes a serial anew" : "");
	}
	if (op->flush_queued)
		return;  /* on_crls_flushed goes on */
	if (op->reauth_due)
		reauth_sas(ike, op->path, op->sas, op->n_sas);
	crl_op_free(op);
}

static void send_crl(struct mm_ike *ike, struct crl_file *f)
{
	struct crl_op *op;

	/* Content no listing partner's CA issued never reaches charon. */
	if (!f->have_info || f->ca_error[0] || !vici_client_is_connected(ike->cmd))
		return;  /* load_all sends it on the next connect */
	f->changed = false;
	op = crl_op_new(ike, f->path);
	if (!op || crl_sas_up(ike, f->path, &op->sas, &op->n_sas) < 0) {
		log_err("CRL %s: out of memory", f->path);
		if (op)
			crl_op_free(op);
		f->changed = true;
		return;
	}
	snprintf(op->sha256, sizeof(op->sha256), "%s", f->info.sha256);
	op->reauth_due = f->newly_revoked;
	if (vici_load_crl(ike->cmd, f->data, f->len, on_crl_loaded, op) < 0) {
		log_err("CRL %s: cannot queue its load into charon", f->path);
		f->changed = true;  /* the next poll tries again */
		crl_op_free(op);
		return;
	}
	f->newly_revoked = false;
	if (vici_flush_certs(ike->cmd, "X509_CRL", on_crls_flushed, op) == 0)
		op->flush_queued = true;
	else
		log_warn("CRL %s: cannot queue flush-certs; a CRL charon cached before may still "
			 "be used", f->path);
}

static const char *crl_time(int64_t t, char *buf, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!t || !gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "none");
	return buf;
}

/* Whether some partner that lists f may use its content (issued by one
 * of its CAs); f->ca_error says why not, logged once when it changes. */
static void crl_judge(struct mm_ike *ike, struct crl_file *f)
{
	const struct mm_table *tb = ike->d->table;
	char why[sizeof(f->ca_error)] = "";
	bool listed = false, ok = false;

	for (size_t i = 0; f->have_info && tb && i < tb->n && !ok; i++) {
		const struct mm_partner *p = tb->partners[i];
		struct mm_err err = { 0 };

		for (size_t k = 0; k < p->n_crls && !ok; k++) {
			if (strcmp(p->crls[k], f->path) != 0)
				continue;
			listed = true;
			if (crl_verify_for(f->data, f->len, p, "", &err) == 0)
				ok = true;
			else if (!why[0])
				snprintf(why, sizeof(why), "partner %s: %.300s", p->domain, err.msg);
		}
	}
	if (ok || !listed)
		why[0] = '\0';
	if (strcmp(why, f->ca_error) == 0)
		return;
	if (why[0])
		log_err("CRL %s is not given to charon: %s%s", f->path, why,
			f->charon_sha256[0] ? "; charon keeps the one it has" : "");
	else if (f->ca_error[0])
		log_notice("CRL %s: issued by a listing partner's CA now", f->path);
	snprintf(f->ca_error, sizeof(f->ca_error), "%s", why);
}

/* Sync the files with the table, re-stat them (re-read all with force),
 * judge them against the partners' CAs (new content, or a new table), log
 * what changed and hand new content to charon. */
static void crls_refresh(struct mm_ike *ike, bool force, bool table_changed)
{
	time_t now = time(NULL), mono = mono_s();
	char a[32], b[32];

	if (crl_set_sync(&ike->crls, ike->d->table) < 0) {
		log_err("CRLs: out of memory; the files are not watched");
		return;
	}
	for (size_t i = 0; i < ike->crls.n; i++) {
		struct crl_file *f = &ike->crls.f[i];
		bool polled = crl_file_poll(f, force), fresh = polled && f->changed;

		if (polled || table_changed || f->state == CRL_UNREAD)
			crl_judge(ike, f);
		if (crl_file_age(f, now) && f->state == CRL_STALE)
			log_err("CRL %s is stale: its nextUpdate %s has passed; under strict every "
				"certificate of the partners that list it is refused, under ifuri "
				"revocations since then are missed (the CRL fetch is behind?)",
				f->path, crl_time(f->info.next_update, b, sizeof(b)));
		if (!polled)
			goto send;
		if (f->state == CRL_MISSING)
			log_err("CRL %s is missing (%s): the partners that list it are not checked "
				"against it%s",
				f->path, f->error, f->charon_sha256[0] ? " beyond what charon has" : "");
		else if (f->state == CRL_BAD)
			log_err("CRL %s cannot be used: %s%s", f->path, f->error,
				f->have_info ? "; charon keeps the one read before" : "");
		else if (fresh)
			log_notice("CRL %s read: issuer %s, thisUpdate %s, nextUpdate %s, %ld revoked",
				   f->path, f->info.issuer, crl_time(f->info.this_update, a, sizeof(a)),
				   crl_time(f->info.next_update, b, sizeof(b)), f->info.n_revoked);
		else if (!force)
			log_notice("CRL %s is readable again, its content unchanged", f->path);
send:
		/* New content at once; after charon refused one, backing off. */
		if (f->changed && (fresh || mono >= f->retry_at))
			send_crl(ike, f);
	}
}

static int on_crl_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mm_ike *ike = userdata;

	crls_refresh(ike, false, false);
	sd_event_source_set_time(s, usec + IKE_CRL_POLL_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

/* On every connect and on a reload: every tunnel partner's connection waits
 * to be loaded again (a restarted charon has forgotten them all). */
static void load_all(struct mm_ike *ike)
{
	struct mmtrustd *d = ike->d;
	size_t n = 0;

	ike->loaded = false;
	if (vici_load_key(ike->cmd, ike->key, ike->key_len, VICI_KEY_ANY, on_loaded, ike) < 0) {
		log_err("charon: cannot queue our private key");
		return;
	}
	ike->loads_pending++;
	ike->list_due = true;
	/* Our certificate goes into charon's store too (each connection also
	 * carries it), so `swanctl --list-certs` shows what we authenticate with. */
	if (vici_load_cert(ike->cmd, ike->cert, ike->cert_len, VICI_CERT_FLAG_NONE, on_loaded,
			   ike) == 0)
		ike->loads_pending++;
	/* The CRLs before the connections: a peer authenticating on a new
	 * connection is checked against them.  charon forgets them when it
	 * restarts; loading the same one again changes nothing. */
	for (size_t i = 0; i < ike->crls.n; i++)
		send_crl(ike, &ike->crls.f[i]);
	vici_get_conns(ike->cmd, on_get_conns, ike);
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		const struct mm_partner *p = mm_table_find(d->table, ike->tunnels.t[i].info.domain);

		mark_load(ike, &ike->tunnels.t[i], p && mm_partner_has_tunnel(p));
		n += ike->tunnels.t[i].load_pending;
	}
	log_notice("charon connected (%s): loading %zu partner connections, at most %u at a time",
		   d->cfg.ike_vici_socket, n, IKE_LOAD_WINDOW);
	pump_loads(ike);
}

static void on_cmd_connected(struct vici_client *c, void *userdata)
{
	(void)c;
	load_all(userdata);
}

static void on_disconnected(struct vici_client *c, int error, void *userdata)
{
	struct mm_ike *ike = userdata;

	if (c != ike->cmd)
		return;
	log_warn("charon disconnected (%s): %s; reconnecting", ike->d->cfg.ike_vici_socket,
		 strerror(-error));
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		ike->tunnels.t[i].ike_state[0] = '\0';
		tunnel_down(ike, &ike->tunnels.t[i], "charon went away");
	}
}

static void on_evt_connected(struct vici_client *c, void *userdata)
{
	struct mm_ike *ike = userdata;

	(void)c;
	/* Events missed while the event connection was down: re-read. */
	if (ike->loaded && vici_client_is_connected(ike->cmd))
		list_sas(ike);
}

static void ike_free_crls(struct mm_ike *ike)
{
	ike->crl_timer = sd_event_source_disable_unref(ike->crl_timer);
	while (ike->crl_ops)
		crl_op_free(ike->crl_ops);
	crl_set_clear(&ike->crls);
}

int ike_start(struct mmtrustd *d, const struct ike_ops *ops, void *userdata)
{
	static const struct vici_client_callbacks cmd_cbs = {
		.connected = on_cmd_connected,
		.disconnected = on_disconnected,
	};
	static const struct vici_client_callbacks evt_cbs = {
		.connected = on_evt_connected,
		.disconnected = on_disconnected,
	};
	struct mm_ike *ike;
	int r;

	if (!d->cfg.ike_enabled)
		return 0;
	ike = calloc(1, sizeof(*ike));
	if (!ike)
		return -ENOMEM;
	ike->d = d;
	if (ops)
		ike->ops = *ops;
	ike->ops_userdata = userdata;
	r = read_credentials(&d->cfg, &ike->cert, &ike->cert_len, &ike->key, &ike->key_len);
	if (r < 0)
		goto fail;
	d->ike = ike;
	crls_refresh(ike, true, true);
	/* From here on a file a partner lists newly re-authenticates its up
	 * tunnels when it revokes anything; those read at start do not. */
	ike->crls.started = true;
	if (ike_tunnels_sync(&ike->tunnels, d->table) < 0 ||
	    vici_client_new(d->ev, d->cfg.ike_vici_socket, &cmd_cbs, ike, &ike->cmd) < 0 ||
	    vici_client_new(d->ev, d->cfg.ike_vici_socket, &evt_cbs, ike, &ike->evt) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_CHILD_UPDOWN, on_child_updown, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_CHILD_REKEY, on_child_rekey, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_IKE_UPDOWN, on_ike_updown, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_IKE_REKEY, on_ike_rekey, NULL, ike) < 0 ||
	    vici_client_start(ike->cmd) < 0 || vici_client_start(ike->evt) < 0 ||
	    sd_event_add_time_relative(d->ev, &ike->crl_timer, CLOCK_MONOTONIC, IKE_CRL_POLL_USEC,
				       0, on_crl_timer, ike) < 0 ||
	    sd_event_add_time(d->ev, &ike->gone_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
			      on_gone_timer, ike) < 0) {
		log_err("charon: cannot set up the VICI clients");
		r = -EIO;
		goto fail;
	}
	return 0;
fail:
	d->ike = NULL;
	sd_event_source_disable_unref(ike->gone_timer);
	ike_free_crls(ike);
	vici_client_free(ike->cmd);
	vici_client_free(ike->evt);
	free(ike->cert);
	free_key(ike->key, ike->key_len);
	ike_tunnels_clear(&ike->tunnels);
	free(ike);
	return r;
}

void ike_stop(struct mmtrustd *d)
{
	struct mm_ike *ike = d->ike;

	/* Connections stay loaded in charon: tunnels must survive our restart. */
	if (!ike)
		return;
	sd_event_source_unref(ike->retry);
	sd_event_source_disable_unref(ike->gone_timer);
	vici_client_free(ike->cmd);
	vici_client_free(ike->evt);
	ike_free_crls(ike);
	free(ike->cert);
	free_key(ike->key, ike->key_len);
	ike_tunnels_clear(&ike->tunnels);
	free(ike);
	d->ike = NULL;
}

int ike_reload_credentials(struct mmtrustd *d)
{
	struct mm_ike *ike = d->ike;
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	int r;

	if (!ike)
		return 0;
	r = read_credentials(&d->cfg, &cert, &cert_len, &key, &key_len);
	if (r < 0) {
		log_err("reload: keeping the certificate and key read before");
		return r;
	}
	if (cert_len == ike->cert_len && key_len == ike->key_len &&
	    !memcmp(cert, ike->cert, cert_len) && !memcmp(key, ike->key, key_len)) {
		free(cert);
		free_key(key, key_len);
		return 0;
	}
	free(ike->cert);
	free_key(ike->key, ike->key_len);
	ike->cert = cert;
	ike->cert_len = cert_len;
	ike->key = key;
	ike->key_len = key_len;
	log_notice("reload: [ike] certificate or private key changed on disk (%s, %s)",
		   d->cfg.ike_certificate, d->cfg.ike_private_key);
	return 1;
}

/* The table or [local] changed under tunnels that are up (a gateway moved,
 * our tunnel address changed on reload): their SAs are judged by the new
 * ones at once, as the kernel's sweep judges them, and refused alike --
 * after the connections were loaded anew, so charon initiates on them. */
static void rejudge_tunnels(struct mm_ike *ike)
{
	const struct mmtrustd *d = ike->d;

	for (size_t i = 0; i < ike->tunnels.n; i++) {
		struct ike_tunnel *t = &ike->tunnels.t[i];
		struct mm_sa_facts f = { .reqid = t->info.reqid, .charon = MM_SA_CHARON_KNOWS };
		struct mm_sa_judgement j;

		if (!t->info.up)
			continue;
		/* An unreadable host leaves the address zero: wrong ends. */
		mm_addr_parse(t->info.remote_host, &f.src, "remote-host", NULL);
		mm_addr_parse(t->local_host, &f.dst, "local-host", NULL);
		mm_sa_judge(d->table, d->cfg.tunnel, d->cfg.n_tunnel, &f, &j);
		if (!mm_sa_must_delete(j.verdict))
			continue;
		log_err("partner %s: its tunnel's SAs (%s -> %s, spi in 0x%08" PRIx32 ") are refused "
			"after the change: %s (%s)",
			t->info.domain, t->info.remote_host, t->local_host, t->info.spi_in,
			mm_sa_verdict_reason(j.verdict), mm_sa_verdict_name(j.verdict));
		sa_refused(ike, &j, t->info.spi_in);
	}
}

void ike_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n)
{
	struct mm_ike *ike = d->ike;

	if (!ike)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after, *b = changes[i].before;
		struct ike_tunnel *t = b ? ike_tunnels_find(&ike->tunnels, b->domain) : NULL;

		if (t && (!a || !mm_partner_has_tunnel(a)))
			tunnel_down(ike, t, !a ? "partner removed" : !a->enabled ? "partner disabled"
										 : "partner moved to seg");
	}
	if (!changes) {
		/* A whole new table (reload): a partner whose reqid changed or who
		 * went away leaves its row, and with it its tunnel. */
		for (size_t i = 0; i < ike->tunnels.n; i++) {
			struct ike_tunnel *t = &ike->tunnels.t[i];
			const struct mm_partner *p = mm_table_find(d->table, t->info.domain);

			if (!p || p->reqid != t->info.reqid || !mm_partner_has_tunnel(p))
				tunnel_down(ike, t, "gone from the reloaded table");
		}
	}
	if (ike_tunnels_sync(&ike->tunnels, d->table) < 0)
		log_err("charon: out of memory for the SA table");
	count_loads(ike);
	/* A reload (SIGHUP) reads every CRL file again; a change set picks up
	 * the files partners list newly. */
	crls_refresh(ike, !changes, true);
	if (!changes && ike->crls.n)
		log_notice("reload: %zu CRL files read again; charon gets each again", ike->crls.n);
	/* Unconnected: everything is loaded on (re)connect. */
	if (vici_client_is_connected(ike->cmd) && !changes)
		load_all(ike);
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after, *b = changes[i].before;

		/* charon replaces a changed connection: the latest one is sent. */
		if (a && mm_partner_has_tunnel(a)) {
			mark_load(ike, ike_tunnels_find(&ike->tunnels, a->domain), true);
		} else if (b && mm_partner_has_tunnel(b)) {
			mark_load(ike, ike_tunnels_find(&ike->tunnels, b->domain), false);
			unload_partner(ike, b->domain);
		}
	}
	pump_loads(ike);
	rejudge_tunnels(ike);
}

void ike_local_changed(struct mmtrustd *d)
{
	struct mm_ike *ike = d->ike;
	size_t initiated = 0;

	if (!ike)
		return;
	for (size_t i = 0; i < ike->tunnels.n; i++) {
		struct ike_tunnel *t = &ike->tunnels.t[i];
		const struct mm_partner *p;

		if (t->info.up) {
			if (host_local_usable(d, t->local_host))
				continue;
			tunnel_down(ike, t, "our tunnel address left this host");
			if (vici_client_is_connected(ike->cmd))
				terminate_ike(ike, t->ike_id);
			continue;
		}
		p = mm_table_find(d->table, t->info.domain);
		if (!p || !mm_partner_has_tunnel(p) || !vici_client_is_connected(ike->cmd))
			continue;
		/* A new reason to try: the 5 s pacing of acquires does not hold. */
		t->last_initiate = 0;
		initiated += initiate(ike, t);
	}
	if (initiated)
		log_notice("our tunnel address is usable: initiating the tunnels of %zu partners",
			   initiated);
}

/* Traffic hit one of our policies and found no SA: the tunnel is down and
 * charon gave up on it (start_action/close_action/dpd_action only cover the
 * cases charon sees).  Ask charon to bring it up, at most every 5 s. */
static void on_acquire(struct mmtrustd *d, const struct mm_xfrm_acquire *aq)
{
	const struct mm_partner *p = mm_table_find_reqid(d->table, aq->reqid);
	struct ike_tunnel *t;

	if (!p || !mm_partner_has_tunnel(p) || !d->ike || !vici_client_is_connected(d->ike->cmd))
		return;
	t = ike_tunnels_find(&d->ike->tunnels, p->domain);
	if (!t || t->info.up)
		return;
	if (initiate(d->ike, t))
		log_notice("acquire: traffic for partner %s (reqid %" PRIu32 ") has no SA; "
			   "initiating",
			   p->domain, p->reqid);
}

int ike_xfrm_event(const struct mm_xfrm_event *ev, void *userdata)
{
	struct mmtrustd *d = userdata;
	const struct mm_xfrm_sa *sa = &ev->sa;
	struct mm_sa_facts f = { .reqid = sa->reqid, .src = sa->src, .dst = sa->dst };
	struct mm_sa_judgement j;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];

	if (ev->type == MM_XFRM_EV_ACQUIRE) {
		on_acquire(d, &ev->acquire);
		return 0;
	}
	/* Someone else's deletion (ours are not echoed): charon may not know. */
	if (ev->type == MM_XFRM_EV_SA_FLUSH && (!ev->flush_proto || ev->flush_proto == IPPROTO_ESP))
		ike_kernel_sas_check(d);  /* which SAs went is not said: read them */
	if (d->ike &&
	    (ev->type == MM_XFRM_EV_SA_DEL || (ev->type == MM_XFRM_EV_SA_EXPIRE && ev->hard)) &&
	    mm_reqid_ours(d->table, sa->reqid))
		sa_gone(d->ike, tunnel_of_reqid(d->ike, sa->reqid), sa->spi,
			ev->type == MM_XFRM_EV_SA_DEL ? "was deleted from the kernel"
						      : "expired in the kernel");
	if (ev->type != MM_XFRM_EV_SA_NEW && ev->type != MM_XFRM_EV_SA_UPD)
		return 0;
	mm_sa_judge(d->table, d->cfg.tunnel, d->cfg.n_tunnel, &f, &j);
	if (!mm_sa_must_delete(j.verdict)) {
		struct ike_tunnel *row = d->ike && j.partner ? tunnel_of_reqid(d->ike, sa->reqid)
							     : NULL;

		if (row)
			ike_tunnel_kernel_saw(row, sa->spi);
		return 0;
	}
	log_err("refused SA: spi 0x%08" PRIx32 " %s -> %s carries reqid %" PRIu32
		" (%s%s): %s (%s); deleted",
		sa->spi, mm_addr_str(&sa->src, s), mm_addr_str(&sa->dst, t), sa->reqid,
		j.partner ? "partner " : "no partner has it", j.partner ? j.partner->domain : "",
		mm_sa_verdict_reason(j.verdict), mm_sa_verdict_name(j.verdict));
	if (d->nl)
		mm_xfrm_sa_del(d->nl, sa, NULL);
	sa_refused(d->ike, &j, sa->spi);
	return 0;
}

void ike_sa_deleted(struct mmtrustd *d, const struct mm_sa_judgement *j, uint32_t spi)
{
	sa_refused(d->ike, j, spi);
}

/* The partner's revocation mode and each of its CRL files as read and
 * loaded. */
static json_t *revocation_status(struct mm_ike *ike, const struct mm_partner *p)
{
	json_t *crls = json_array();

	for (size_t i = 0; crls && i < p->n_crls; i++)
		json_array_append_new(crls, crl_file_json(crl_set_find(&ike->crls, p->crls[i]),
							  p->crls[i], p));
	return json_pack("{s:s, s:o*, s:s}", "mode", mm_revocation_name(p->revocation), "crls",
			 crls, "enforced_by", "charon");
}

void ike_status(struct mmtrustd *d, json_t *status)
{
	struct mm_ike *ike = d->ike;
	json_t *partners = json_object_get(status, "partners"), *o;
	size_t i;

	json_object_set_new(status, "ike",
			    json_pack("{s:b, s:b, s:s, s:I}", "enabled", ike != NULL, "connected",
				      ike && vici_client_is_connected(ike->cmd), "socket",
				      d->cfg.ike_vici_socket, "connects",
				      (json_int_t)(ike ? vici_client_connect_count(ike->cmd) : 0)));
	if (!ike) {
		/* Stored, not used: say so rather than show nothing. */
		json_array_foreach(partners, i, o) {
			const struct mm_partner *p = mm_table_find(
				d->table, json_string_value(json_object_get(o, "domain")));

			if (p)
				json_object_set_new(
					o, "revocation",
					json_pack("{s:s, s:o, s:n, s:s}", "mode",
						  mm_revocation_name(p->revocation), "crls",
						  mm_partner_crls_json(p), "enforced_by", "why",
						  "[ike] enabled = no: no IKE, CRLs and the "
						  "revocation mode are stored but not used"));
		}
		return;
	}
	json_array_foreach(partners, i, o) {
		const struct ike_tunnel *t = ike_tunnels_find(
			&ike->tunnels, json_string_value(json_object_get(o, "domain")));

		const struct mm_partner *p = mm_table_find(
			d->table, json_string_value(json_object_get(o, "domain")));

		if (p)
			json_object_set_new(o, "revocation", revocation_status(ike, p));
		if (!t)
			continue;
		json_object_set_new(
			o, "tunnel",
			json_pack("{s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:o}", "state",
				  t->info.up ? "up" : "down", "ike_state",
				  t->ike_state[0] ? json_string(t->ike_state) : json_null(),
				  "remote_id", t->info.up ? json_string(t->info.remote_id) : json_null(),
				  "remote_host",
				  t->info.up ? json_string(t->info.remote_host) : json_null(), "reqid",
				  (json_int_t)t->info.reqid, "spi_in", mm_json_spi(t->info.spi_in),
				  "spi_out", mm_json_spi(t->info.spi_out), "since",
				  mm_json_time(t->info.since)));
	}
}

int ike_tunnels_up(struct mmtrustd *d, struct mm_tunnel_info **ret, size_t *ret_n)
{
	struct mm_ike *ike = d->ike;
	struct mm_tunnel_info *v;
	size_t n = 0;

	for (size_t i = 0; ike && i < ike->tunnels.n; i++)
		n += ike->tunnels.t[i].info.up;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; ike && i < ike->tunnels.n; i++)
		if (ike->tunnels.t[i].info.up)
			v[n++] = ike->tunnels.t[i].info;
	*ret = v;
	*ret_n = n;
	return 0;
}

const struct crl_file *ike_crl_file(struct mmtrustd *d, const char *path)
{
	return d->ike ? crl_set_find(&d->ike->crls, path) : NULL;
}

const char *ike_certificate_pem(struct mmtrustd *d, size_t *ret_len)
{
	if (!d->ike || !d->ike->cert)
		return NULL;
	*ret_len = d->ike->cert_len;
	return d->ike->cert;
}
