/* mmtrustd: the mmtrust daemon.  One sd-event loop; signals are handled
 * inside it (SIGHUP reloads, SIGTERM/SIGINT stop). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "expiry.h"
#include "event.h"
#include "fleet.h"
#include "instance.h"
#include "policy/sa.h"
#include "mmtrustd.h"

static const char usage[] =
	"Usage: mmtrustd [OPTIONS]\n"
	"\n"
	"The mmtrust daemon: keeps the service partner table of the Mm interface,\n"
	"answers mmtrustctl on the admin socket, and makes the kernel's XFRM SPD\n"
	"enforce it: per enabled tunnel partner, ESP tunnel policies in, out (and fwd)\n"
	"between our CSCF prefixes and the partner's ranges, under the partner's\n"
	"reqid, tagged as mmtrust's (selector uid, priority band).  Policies of\n"
	"other programs are never touched; drift is repaired within a second.\n"
	"With [ike] enabled it loads one connection per tunnel partner into\n"
	"strongSwan's charon over VICI (certificates whose identity must be the\n"
	"partner's domain, SAs under the partner's reqid) and tracks the SAs; on\n"
	"the query socket it tells CSCFs which partner a message came from,\n"
	"whether it arrived over that partner's authenticated SA, and whether to\n"
	"keep or strip P-Asserted-Identity (docs/protocol.md, docs/privacy.md).\n"
	"The configuration file is described in examples/mmtrustd.conf.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE    configuration file (default " MM_CONFIG_DEFAULT_PATH
	"; when the\n"
	"                       default is missing, built-in defaults are used)\n"
	"  -f, --foreground     stay in the foreground and log to stderr (for tests\n"
	"                       and systemd Type=notify; without it mmtrustd detaches\n"
	"                       and logs to syslog)\n"
	"  -t, --check-config   read the configuration and the store, print a summary,\n"
	"                       and exit (0 = valid)\n"
	"  -v, --verbose        log debug messages too\n"
	"      --allow-shrink   start even if the table would delete more than\n"
	"                       [spd] shrink_limit percent of the kernel policies\n"
	"                       mmtrustd holds (the shrink guard; without it such\n"
	"                       a start is refused and the kernel left as it is)\n"
	"  -V, --version        print the version and exit\n"
	"  -h, --help           this text\n"
	"\n"
	"Signals: SIGHUP re-reads the configuration file and the store (as\n"
	"`mmtrustctl reload`, which also says whether it worked); SIGTERM and\n"
	"SIGINT stop cleanly.  Readiness is reported with sd_notify(READY=1).\n"
	"\n"
	"Exit status: 0 clean stop, 1 configuration or store error, 2 usage error.\n";

int mmtrustd_load_table(const struct mm_config *cfg, struct mm_store *store,
			struct mm_table **ret, struct mm_err *err)
{
	struct mm_table *table = NULL;
	int r = mm_store_load(store, cfg->reqid_min, cfg->reqid_max, &table, err);

	if (r == 0) {
		/* [local] against the stored table: a start, reload or
		 * table-sync that would let a partner claim our own addresses
		 * is refused. */
		struct mm_site site = { cfg->cscf, cfg->n_cscf, cfg->tunnel, cfg->n_tunnel,
					cfg->cscf_kinds };

		r = mm_table_set_site(table, &site, err);
		if (r < 0)
			mm_table_free(table);
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < table->n; i++) {
		const struct mm_partner *p = table->partners[i];

		if (!mm_reqid_ours(table, p->reqid))
			log_warn("partner %s keeps reqid %u, outside the configured range %u-%u",
				 p->domain, p->reqid, cfg->reqid_min, cfg->reqid_max);
		for (size_t k = 0; k < p->n_cas; k++)
			if (p->cas[k].info.not_after < time(NULL))
				log_warn("partner %s: its CA certificate (%s) has expired",
					 p->domain, p->cas[k].info.sha256);
	}
	*ret = table;
	return 0;
}

/* The password of a PostgreSQL store, from [daemon] store_password_file:
 * its first line.  Caller wipes and frees. */
static int read_password(const struct mm_config *cfg, char **ret, struct mm_err *err)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	*ret = NULL;
	if (!cfg->store_password_file[0])
		return 0;
	f = fopen(cfg->store_password_file, "re");
	if (!f)
		return mm_err_set(err, MM_ERR_INVALID, "daemon.store_password_file",
				  "cannot read %s: %s", cfg->store_password_file, strerror(errno));
	{
		struct stat sb;

		if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & S_IROTH))
			log_warn("%s, the store's password, is readable by every user: "
				 "chmod o-r it (0640 root:mmtrust)", cfg->store_password_file);
	}
	n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		return mm_err_set(err, MM_ERR_INVALID, "daemon.store_password_file",
				  "%s is empty: its first line is the password",
				  cfg->store_password_file);
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	*ret = line;
	return 0;
}

static int load_state(struct mmtrustd *d, struct mm_config *cfg, struct mm_store **ret_store,
		      struct mm_table **ret_table, struct mm_err *err)
{
	struct mm_store *store = NULL;
	struct mm_table *table = NULL;
	bool shared = mm_store_spec_is_postgresql(cfg->store);
	char *password = NULL;
	int r;

	/* One mmtrustd per store: a reload that names another store claims
	 * it before reading it.  A shared store is shared by design; two
	 * daemons on one host still meet at the sockets and the namespace. */
	if (d->inst && !shared) {
		r = instance_claim_store(d->inst, cfg->store, err);
		if (r < 0)
			return r;
	}
	if (!shared) {
		r = instance_mkdir_parent(cfg->store, 0750);
		if (r < 0)
			return mm_err_set(err, MM_ERR_INTERNAL, "store",
					  "cannot create the directory of %s: %s", cfg->store,
					  strerror(-r));
	}
	r = read_password(cfg, &password, err);
	if (r < 0)
		return r;
	r = mm_store_open_with(cfg->store,
			       &(struct mm_store_opts){ .host_name = cfg->host_name,
							 .password = password },
			       &store, err);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (r < 0)
		return r;
	r = mmtrustd_load_table(cfg, store, &table, err);
	if (r < 0) {
		mm_store_close(store);
		return r;
	}
	*ret_table = table;
	(void)d;
	if (mm_store_readonly(store))
		log_warn("store %s is read-only, so every change will be refused until it is "
			 "writable and mmtrustd is reloaded; the table it holds is served and "
			 "enforced: %s", cfg->store, mm_store_readonly(store));
	*ret_store = store;
	return 0;
}

/* Subscribers hear when the kernel starts or stops enforcing the
 * in-policies of a partner whose tunnel stays up (a tunnel coming up or
 * going has its own sa-up / sa-down): a CSCF that cached "protected"
 * must drop it.  Both lists sorted by domain. */
static void notify_enforcement(struct mmtrustd *d, const struct mm_tunnel_info *up,
			       const bool *enforced, size_t n)
{
	size_t i = 0, j = 0;

	while (i < d->pub_n && j < n) {
		int c = strcmp(d->pub_up[i].domain, up[j].domain);

		if (c == 0 && d->pub_enforced[i] != enforced[j])
			query_notify(d->query, enforced[j] ? "enforced" : "not-enforced",
				     up[j].domain, NULL);
		i += c <= 0;
		j += c >= 0;
	}
}

static bool withdrawn(const struct mmtrustd *d, const char *domain)
{
	const struct mm_change *c = d->withdrawn;

	for (size_t i = 0; i < d->n_withdrawn; i++) {
		const struct mm_partner *p = c[i].after ? c[i].after : c[i].before;

		if (strcmp(p->domain, domain) == 0)
			return true;
	}
	return d->withdraw_all;
}

/* The view, also as the snapshot files: a view that cannot be written
 * leaves the old one superseded (the library asks the socket), said once
 * when it starts and once when it ends. */
static void publish_snapshot(struct mmtrustd *d, const struct query_view_input *in)
{
	int r = snapw_publish(d->snap, in);

	if (r < 0 && d->snap_error != r)
		log_err("snapshot: cannot write a new one (%s); libmmtrust asks the query socket "
			"until one is written", strerror(-r));
	else if (r == 0 && d->snap_error)
		log_notice("snapshot: written again; libmmtrust answers in-process");
	d->snap_error = r;
}

/* The view the query side answers from, built from the parts' facts:
 * the query side is handed it and never reaches back. */
static int publish_view(struct mmtrustd *d)
{
	struct query_view_input in = {
		.table = d->table,
		.cscf = mm_config_cscf(&d->cfg),
		.untrusted = d->cfg.query_untrusted,
		.require_dst = d->cfg.query_require_dst,
		.tunnel_addrs = host_tunnel_addrs(d),
	};
	struct mm_tunnel_info *up = NULL;
	bool *enforced = NULL, *out_enforced = NULL;
	size_t n = 0;
	int r;

	if (!d->query)
		return 0;
	/* In-process answers stop before the socket's change: they never
	 * answer from a view older than the socket's. */
	snapw_supersede(d->snap);
	r = ike_tunnels_up(d, &up, &n);
	if (r == 0 && (!(enforced = calloc(n ? n : 1, sizeof(*enforced))) ||
		       !(out_enforced = calloc(n ? n : 1, sizeof(*out_enforced)))))
		r = -ENOMEM;
	if (r == 0) {
		/* Only partners whose tunnel is up can be protected, so only
		 * theirs are asked: a publish costs their policies, never a
		 * status of the whole table. */
		for (size_t i = 0; i < n; i++) {
			if (withdrawn(d, up[i].domain))
				continue;
			kernel_enforced(d, up[i].domain, &enforced[i], &out_enforced[i]);
		}
		in.up = up;
		in.n_up = n;
		in.enforced = enforced;
		in.out_enforced = out_enforced;
		r = query_publish(d->query, &in);
		if (r < 0)
			snapw_supersede(d->snap);
		else
			publish_snapshot(d, &in);
	}
	free(out_enforced);
	if (r < 0) {
		log_err("query: cannot publish a new view (%s); answers stay on the old one",
			strerror(-r));
		free(up);
		free(enforced);
	} else {
		notify_enforcement(d, up, enforced, n);
		free(d->pub_up);
		free(d->pub_enforced);
		d->pub_up = up;
		d->pub_enforced = enforced;
		d->pub_n = n;
	}
	return r;
}

static int on_publish(sd_event_source *s, void *userdata)
{
	(void)s;
	(void)publish_view(userdata);
	return 0;
}

void mmtrustd_view_flush(struct mmtrustd *d)
{
	int enabled = SD_EVENT_OFF;

	if (!d->publish_src || sd_event_source_get_enabled(d->publish_src, &enabled) < 0 ||
	    enabled == SD_EVENT_OFF)
		return;
	sd_event_source_set_enabled(d->publish_src, SD_EVENT_OFF);
	(void)publish_view(d);
	/* The loop does not iterate during a long step: the heartbeat is
	 * kept here too, or readers would call a busy daemon dead. */
	snapw_heartbeat(d->snap);
}

static int on_heartbeat(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mmtrustd *d = userdata;

	snapw_heartbeat(d->snap);
	sd_event_source_set_time(s, usec + MM_SNAP_HEARTBEAT_MS * 1000ull);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* Swap in newt and carry it into charon and the kernel: the change set
 * (changes NULL: the whole table), with the partners in withdraw (all
 * with withdraw_all) published as not enforced while the step runs. */
static void table_swap(struct mmtrustd *d, struct mm_table *newt, const struct mm_change *changes,
		       size_t n, const struct mm_change *withdraw, size_t n_withdraw,
		       bool withdraw_all)
{
	mm_table_free(d->table);
	d->table = newt;
	/* The kernel step deletes policies before a coalesced view would
	 * follow: the partners it touches leave the answers first, at once,
	 * and come back with the view after it. */
	d->withdrawn = withdraw;
	d->n_withdrawn = n_withdraw;
	d->withdraw_all = withdraw_all;
	(void)publish_view(d);
	/* charon gets the new connections first: a tunnel whose SAs the
	 * kernel step condemns (a moved gateway) is initiated again on them. */
	ike_table_changed(d, changes, n);
	kernel_table_changed(d, changes, n);
	host_changed(d);
	d->withdrawn = NULL;
	d->n_withdrawn = 0;
	d->withdraw_all = false;
	mmtrustd_view_changed(d);
	for (size_t i = 0; i < n; i++) {
		static const char *const names[MM_CHANGE__MAX] = {
			[MM_CHANGE_ADD] = "partner-added",
			[MM_CHANGE_SET] = "partner-changed",
			[MM_CHANGE_DEL] = "partner-removed",
		};
		const struct mm_partner *p = changes[i].after ? changes[i].after : changes[i].before;

		query_notify(d->query, names[changes[i].op], p->domain, NULL);
	}
	if (!changes)
		query_notify(d->query, "table-reloaded", "*", NULL);
	expiry_check(d);
}

void mmtrustd_table_changed(struct mmtrustd *d, struct mm_table *newt,
			    const struct mm_change *changes, size_t n)
{
	table_swap(d, newt, changes, n, changes, n, !changes);
}

static int table_delta(const struct mm_table *a, const struct mm_table *b,
		       struct mm_change **ret, size_t *ret_n);

int mmtrustd_table_sync(struct mmtrustd *d, struct mm_table *newt, struct mm_change **ret,
			size_t *ret_n)
{
	int r = table_delta(d->table, newt, ret, ret_n);

	if (r < 0) {
		mm_table_free(newt);
		return r;
	}
	table_swap(d, newt, *ret, *ret_n, *ret, *ret_n, false);
	return 0;
}

/* The partners that differ between two tables (both sorted by domain):
 * added, removed, or changed in configuration or reqid.  Only their
 * policies can go during a whole-table step with unchanged kernel
 * settings; the rest keep answering as they did. */
static int table_delta(const struct mm_table *a, const struct mm_table *b,
		       struct mm_change **ret, size_t *ret_n)
{
	struct mm_change *c = calloc(a->n + b->n + 1, sizeof(*c));
	size_t i = 0, j = 0, n = 0;

	if (!c)
		return -ENOMEM;
	while (i < a->n || j < b->n) {
		struct mm_partner *pa = i < a->n ? a->partners[i] : NULL;
		struct mm_partner *pb = j < b->n ? b->partners[j] : NULL;
		int k = !pa ? 1 : !pb ? -1 : strcmp(pa->domain, pb->domain);

		i += k <= 0;
		j += k >= 0;
		if (k == 0 && pa->reqid == pb->reqid && mm_partner_config_equal(pa, pb))
			continue;
		c[n].op = k < 0 ? MM_CHANGE_DEL : k > 0 ? MM_CHANGE_ADD : MM_CHANGE_SET;
		c[n].before = k <= 0 ? mm_partner_ref(pa) : NULL;
		c[n].after = k >= 0 ? mm_partner_ref(pb) : NULL;
		n++;
	}
	*ret = c;
	*ret_n = n;
	return 0;
}

/* The IKE side reports tunnel changes here; the query side gets them as
 * events and a new view (the IKE side knows nothing of it). */
static void on_tunnel_changed(void *userdata, const struct mm_tunnel_info *t, const char *event)
{
	struct mmtrustd *d = userdata;

	/* The snapshot is superseded before anyone hears of the change. */
	mmtrustd_view_changed(d);
	query_notify(d->query, event, t->domain, t);
}

static const struct ike_ops ike_ops = { .tunnel_changed = on_tunnel_changed };

/* Stop the IKE side; its tunnels leave the view, and subscribers hear
 * "sa-down" for each one that was up (charon's SAs may live on, but
 * nothing vouches for them any more). */
static void stop_ike(struct mmtrustd *d)
{
	struct mm_tunnel_info *up = NULL;
	size_t n = 0;

	if (ike_tunnels_up(d, &up, &n) < 0)
		log_err("reload: out of memory; subscribers miss the sa-down events of the "
			"stopped IKE side");
	ike_stop(d);
	mmtrustd_view_changed(d);
	for (size_t i = 0; i < n; i++) {
		up[i].up = false;
		query_notify(d->query, "sa-down", up[i].domain, &up[i]);
	}
	free(up);
	mmtrustd_view_changed(d);
}

static bool ike_settings_differ(const struct mm_config *a, const struct mm_config *b)
{
	return a->ike_enabled != b->ike_enabled || a->ike_dpd_delay != b->ike_dpd_delay ||
	       strcmp(a->ike_vici_socket, b->ike_vici_socket) ||
	       strcmp(a->ike_certificate, b->ike_certificate) ||
	       strcmp(a->ike_private_key, b->ike_private_key) ||
	       strcmp(a->ike_local_id, b->ike_local_id);
}

/* The settings the kernel side was started with. */
static bool spd_settings_differ(const struct mm_config *a, const struct mm_config *b)
{
	return a->spd_enabled != b->spd_enabled || a->spd_prio_base != b->spd_prio_base ||
	       a->spd_tag != b->spd_tag || a->reqid_min != b->reqid_min ||
	       a->reqid_max != b->reqid_max || a->forward != b->forward ||
	       a->n_cscf != b->n_cscf || a->n_tunnel != b->n_tunnel ||
	       memcmp(a->cscf, b->cscf, sizeof(a->cscf[0]) * a->n_cscf) ||
	       memcmp(a->cscf_kinds, b->cscf_kinds, sizeof(a->cscf_kinds[0]) * a->n_cscf) ||
	       memcmp(a->tunnel, b->tunnel, sizeof(a->tunnel[0]) * a->n_tunnel);
}

/* --check-config: which peers each CSCF prefix faces, as read. */
static void print_cscf(const struct mm_config *cfg)
{
	char pfx[MM_ADDR_STRLEN];

	for (size_t i = 0; i < cfg->n_cscf; i++)
		printf("%s %s\n", mm_kinds_setting(cfg->cscf_kinds[i]),
		       mm_prefix_str(&cfg->cscf[i], pfx));
}

static int read_config(const char *path, bool explicit_path, struct mm_config *cfg,
		       struct mm_err *err)
{
	if (!explicit_path && access(path, F_OK) < 0) {
		mm_config_defaults(cfg);
		return 0;
	}
	return mm_config_load(path, cfg, err);
}

static int open_admin(struct mmtrustd *d)
{
	static const struct mm_jsonl_limits lim = {
		/* Admins are trusted and an apply of a large table is large. */
		.max_line = 256u << 20,
		.max_out = 512u << 20,
		.max_clients = 64,
	};
	mode_t mode = d->cfg.admin_gid == (gid_t)-1 ? 0600 : 0660;
	int r = instance_mkdir_parent(d->cfg.admin_socket, 0755);

	if (r < 0)
		return r;
	r = mm_jsonl_server_new(d->ev, d->cfg.admin_socket, mode, d->cfg.admin_gid, &lim,
				admin_handle, admin_authorize, d, &d->admin);
	if (r == 0)
		mm_jsonl_server_set_readonly(d->admin, admin_readonly);
	return r;
}

int mmtrustd_reload(struct mmtrustd *d, bool allow_shrink, struct mm_err *err)
{
	struct mm_config cfg;
	struct mm_store *store = NULL;
	struct mm_table *table = NULL;
	bool spd_changed, ike_changed;
	int r;

	sd_notify(0, "RELOADING=1");
	r = read_config(d->config_path[0] ? d->config_path : MM_CONFIG_DEFAULT_PATH,
			d->config_path[0], &cfg, err);
	if (r == 0)
		r = load_state(d, &cfg, &store, &table, err);
	if (r == 0 && !allow_shrink)
		r = shrink_check(d, &cfg, table, "confirm with `mmtrustctl reload --allow-shrink` "
				 "(or raise [spd] shrink_limit)", err);
	if (r < 0) {
		log_err("reload refused, still running on the previous configuration and table: "
			"%s: %s", err->field, err->msg);
		mm_table_free(table);
		mm_store_close(store);
		goto out;
	}
	if (strcmp(cfg.admin_socket, d->cfg.admin_socket) || cfg.admin_gid != d->cfg.admin_gid)
		log_warn("reload: admin socket settings change only at restart");
	if (strcmp(cfg.query_socket, d->cfg.query_socket) || cfg.query_gid != d->cfg.query_gid ||
	    cfg.query_max_clients != d->cfg.query_max_clients)
		log_warn("reload: query socket path, group and max_clients change only at restart");
	{
		char was[108], now[108];

		mm_config_snapshot_path(&d->cfg, was);
		mm_config_snapshot_path(&cfg, now);
		if (strcmp(was, now))
			log_warn("reload: query_snapshot changes only at restart (still %s)",
				 was[0] ? was : "none");
		cfg.query_snapshot_set = d->cfg.query_snapshot_set;
		snprintf(cfg.query_snapshot, sizeof(cfg.query_snapshot), "%s", d->cfg.query_snapshot);
	}
	if (strcmp(cfg.metrics_listen, d->cfg.metrics_listen)) {
		log_warn("reload: [metrics] listen changes only at restart (still %s)",
			 d->cfg.metrics_listen[0] ? d->cfg.metrics_listen : "off");
		snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "%s", d->cfg.metrics_listen);
		cfg.metrics_addr = d->cfg.metrics_addr;
		cfg.metrics_port = d->cfg.metrics_port;
	}
	if (strcmp(cfg.store, d->cfg.store))
		log_notice("reload: store is now %s", cfg.store);
	events_set_store(store, cfg.log_events_keep);
	fleet_stop(d);
	mm_store_close(d->store);
	d->store = store;
	snprintf(cfg.admin_socket, sizeof(cfg.admin_socket), "%s", d->cfg.admin_socket);
	cfg.admin_gid = d->cfg.admin_gid;
	/* What changed is read before the new settings replace the old ones. */
	spd_changed = spd_settings_differ(&cfg, &d->cfg);
	ike_changed = ike_settings_differ(&cfg, &d->cfg);
	if (spd_changed) {
		log_notice("reload: kernel policy settings changed; restarting the SPD engine");
		kernel_stop(d);
	}
	if (ike_changed) {
		log_notice("reload: [ike] settings changed; restarting the IKE side");
		stop_ike(d);
	}
	d->cfg = cfg;
	if (spd_changed)
		kernel_start(d);
	/* The IKE side restarts with the files read anew; else certificates
	 * renewed in place under the same paths are reread here. */
	if (ike_changed)
		ike_start(d, &ike_ops, d);
	else
		ike_reload_credentials(d);
	/* Every connection (with our certificate) and the key are loaded again
	 * with the whole table.  While the kernel step runs, only partners
	 * that changed are withdrawn from the answers -- all of them when the
	 * kernel settings changed (every policy is rewritten) or the
	 * difference cannot be computed: a reload of the same table must not
	 * make every CSCF strip for a moment. */
	{
		struct mm_change *delta = NULL;
		size_t n_delta = 0;
		bool all = spd_changed || table_delta(d->table, table, &delta, &n_delta) < 0;

		table_swap(d, table, NULL, 0, delta, n_delta, all);
		mm_changes_free(delta, n_delta);
	}
	(void)fleet_start(d);
	log_event(MM_EVENT_RELOAD, LOG_NOTICE, NULL, "reloaded: %zu partners%s", d->table->n,
		  allow_shrink ? " (shrink guard waived)" : "");
out:
	sd_notify(0, "READY=1");
	return r;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct mm_err err = { 0 };

	(void)s;
	(void)si;
	(void)mmtrustd_reload(userdata, false, &err);
	return 0;
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return chdir("/") < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "allow-shrink", no_argument, NULL, 'S' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mmtrustd d = { 0 };
	struct mm_err err = { 0 };
	bool foreground = false, check = false, allow_shrink = false;
	int verbose = 0, c, r, rc = 1;
	sigset_t mask;

	/* Before anything else: a SIGHUP or SIGTERM that arrives while the
	 * store loads (seconds with a large table) waits for the event loop
	 * instead of killing the daemon with the default action. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "c:ftvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			snprintf(d.config_path, sizeof(d.config_path), "%s", optarg);
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			check = true;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'S':
			allow_shrink = true;
			break;
		case 'V':
			printf("mmtrustd %s\n", MMTRUST_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mmtrustd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	log_open(foreground || check, verbose);
	if (read_config(d.config_path[0] ? d.config_path : MM_CONFIG_DEFAULT_PATH,
			d.config_path[0], &d.cfg, &err) < 0) {
		log_err("%s%s%s", err.field, err.field[0] ? ": " : "", err.msg);
		goto out;
	}
	if (check && !mm_store_spec_is_postgresql(d.cfg.store) && access(d.cfg.store, F_OK) < 0) {
		printf("configuration %s: ok\nstore %s: does not exist yet (created at start)\n"
		       "reqid range %u-%u\n",
		       d.config_path[0] ? d.config_path : "(built-in defaults)", d.cfg.store,
		       d.cfg.reqid_min, d.cfg.reqid_max);
		print_cscf(&d.cfg);
		rc = 0;
		goto out;
	}
	/* One instance: claimed before the store is read or the kernel
	 * touched (--check-config only reads, and claims nothing). */
	if (!check && instance_claim(d.cfg.store, d.cfg.admin_socket, d.cfg.query_socket,
				     d.cfg.spd_tag, &d.inst, &err) < 0) {
		log_err("refusing to start: %s%s%s", err.field, err.field[0] ? ": " : "", err.msg);
		goto out;
	}
	if (!check) {
		char snap_path[108];

		mm_config_snapshot_path(&d.cfg, snap_path);
		if (instance_claim_snapshot(d.inst, snap_path, &err) < 0) {
			log_err("refusing to start: %s%s%s", err.field, err.field[0] ? ": " : "",
				err.msg);
			goto out;
		}
	}
	if (instance_warning(d.inst))
		log_warn("%s", instance_warning(d.inst));
	if (load_state(&d, &d.cfg, &d.store, &d.table, &err) < 0) {
		log_err("%s%s%s", err.field, err.field[0] ? ": " : "", err.msg);
		goto out;
	}
	if (check) {
		printf("configuration %s: ok\nstore %s: schema %d, %zu partners%s%s\n"
		       "reqid range %u-%u\n",
		       d.config_path[0] ? d.config_path : "(built-in defaults)", d.cfg.store,
		       mm_store_schema_version(d.store), d.table->n,
		       mm_store_readonly(d.store) ? ", READ-ONLY (served, every change refused): " : "",
		       mm_store_readonly(d.store) ? mm_store_readonly(d.store) : "", d.cfg.reqid_min,
		       d.cfg.reqid_max);
		print_cscf(&d.cfg);
		rc = 0;
		goto out;
	}
	if (!foreground && daemonize() < 0) {
		log_err("cannot detach: %s", strerror(errno));
		goto out;
	}
	instance_note_pid(d.inst);
	r = sd_event_default(&d.ev);
	if (r < 0 ||
	    (r = sd_event_add_signal(d.ev, NULL, SIGTERM, NULL, NULL)) < 0 ||
	    (r = sd_event_add_signal(d.ev, NULL, SIGINT, NULL, NULL)) < 0 ||
	    (r = sd_event_add_signal(d.ev, NULL, SIGHUP, on_reload, &d)) < 0) {
		log_err("event loop: %s", strerror(-r));
		goto out;
	}
	r = events_start(d.ev, d.store, d.cfg.log_events_keep);
	if (r < 0) {
		log_err("event history: %s", strerror(-r));
		goto out;
	}
	/* Read the kernel, then write only the difference -- unless the
	 * table would take away most of what is enforced now (an emptied or
	 * wrong store): then the kernel is left as it is. */
	kernel_start(&d);
	if (!allow_shrink &&
	    shrink_check(&d, &d.cfg, d.table, "start mmtrustd once with --allow-shrink (or raise "
			 "[spd] shrink_limit)", &err) < 0) {
		log_err("refusing to start, the kernel's policies are left as they are: %s: %s",
			err.field, err.msg);
		goto out;
	}
	kernel_table_changed(&d, NULL, 0);
	/* The host's addresses are known before charon is: nothing is
	 * initiated on an address this host does not hold. */
	if (host_start(&d) < 0)
		goto out;
	ike_start(&d, &ike_ops, &d);
	(void)expiry_start(&d);
	r = instance_mkdir_parent(d.cfg.query_socket, 0755);
	if (r == 0)
		r = query_start(&d.cfg, &d.query);
	if (r == 0) {
		char snap_path[108];

		mm_config_snapshot_path(&d.cfg, snap_path);
		r = snapw_new(snap_path, d.cfg.query_gid, &d.snap);
		if (r == 0 && d.snap)
			r = sd_event_add_time_relative(d.ev, &d.heartbeat_src, CLOCK_MONOTONIC,
						       MM_SNAP_HEARTBEAT_MS * 1000ull, 10000,
						       on_heartbeat, &d);
		if (r == 0 && !d.snap && d.cfg.query_socket[0] && !d.cfg.query_snapshot_set)
			log_warn("no snapshot: the query socket's path leaves no room for one "
				 "(set [daemon] query_snapshot); libmmtrust asks the socket");
	}
	if (r == 0)
		r = sd_event_add_defer(d.ev, &d.publish_src, on_publish, &d);
	if (r == 0) {
		sd_event_source_set_enabled(d.publish_src, SD_EVENT_OFF);
		r = publish_view(&d);  /* a view before the first client */
	}
	if (r < 0) {
		log_err("query socket %s: %s", d.cfg.query_socket, strerror(-r));
		goto out;
	}
	r = open_admin(&d);
	if (r < 0) {
		log_err("admin socket %s: %s", d.cfg.admin_socket, strerror(-r));
		goto out;
	}
	d.started = time(NULL);
	(void)metrics_start(&d);  /* not fatal: logged, retried, in status */
	r = fleet_start(&d);
	if (r < 0) {
		log_err("store: cannot watch the shared store: %s", strerror(-r));
		goto out;
	}
	log_event(MM_EVENT_START, LOG_NOTICE, NULL,
		  "mmtrustd %s ready: %zu partners, store %s, admin socket %s, query socket %s, "
		  "kernel %s",
		  MMTRUST_VERSION, d.table->n, d.cfg.store, d.cfg.admin_socket, d.cfg.query_socket,
		  d.spd ? "policies programmed" : "NOT programmed");
	sd_notify(0, "READY=1");
	r = sd_event_loop(d.ev);
	sd_notify(0, "STOPPING=1");
	if (r < 0) {
		log_err("event loop failed: %s", strerror(-r));
		goto out;
	}
	log_event(MM_EVENT_STOP, LOG_NOTICE, NULL, "stopped");
	rc = 0;
out:
	fleet_stop(&d);
	metrics_stop(&d);
	mm_jsonl_server_free(d.admin);
	d.publish_src = sd_event_source_disable_unref(d.publish_src);
	d.heartbeat_src = sd_event_source_disable_unref(d.heartbeat_src);
	snapw_free(d.snap);
	d.snap = NULL;
	query_stop(d.query);
	d.query = NULL;
	free(d.pub_up);
	free(d.pub_enforced);
	expiry_stop(&d);
	ike_stop(&d);
	host_stop(&d);
	kernel_stop(&d);
	mm_table_free(d.table);
	events_stop();
	mm_store_close(d.store);
	sd_event_unref(d.ev);
	instance_release(d.inst);
	return rc;
}
