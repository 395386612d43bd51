/* The strongSwan side of mmtrustd: charon negotiates IKEv2 and installs
 * SAs under each partner's reqid; we load the connections, keep the SA
 * table from its events, and police it: a CHILD_SA whose authenticated
 * remote identity is not the partner's domain, or whose reqid is not the
 * partner's, is terminated and its SAs deleted.  Two VICI connections:
 * commands, and events (so a long list-sas never delays an event). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mmtrustd.h"
#include "policy/jsonfmt.h"
#include "vici-plugins/vici.h"

/* What we know of one partner's tunnel. */
struct tunnel {
	char domain[MM_DOMAIN_MAX + 1];
	uint32_t reqid;
	bool up;                 /* an installed CHILD_SA of ours */
	char ike_state[24];
	char remote_id[256];
	char remote_host[64];
	uint32_t ike_id;
	uint32_t spi_in, spi_out;
	time_t since;            /* when the current CHILD_SA came up */
	uint64_t last_initiate;  /* CLOCK_MONOTONIC usec of our last initiate on acquire */
};

struct mm_ike {
	struct mmtrustd *d;
	struct vici_client *cmd, *evt;
	char *cert, *key;        /* PEM data of ours */
	size_t cert_len, key_len;
	struct tunnel *t;        /* sorted by domain */
	size_t n_t, cap_t;
	unsigned loads_pending;
	bool loaded;             /* every connection loaded since the last connect */
	time_t listed_at;        /* when the last list-sas was sent */
};

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

/* ---- the SA table ---- */

static struct tunnel *tunnel_find(struct mm_ike *ike, const char *domain)
{
	size_t lo = 0, hi = ike->n_t;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ike->t[mid].domain, domain);

		if (!c)
			return &ike->t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int tunnel_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tunnel *)a)->domain, ((const struct tunnel *)b)->domain);
}

/* Rebuild the table's rows from the partner table, keeping what we know
 * of partners that stay. */
static int tunnels_sync(struct mm_ike *ike)
{
	const struct mm_table *tb = ike->d->table;
	struct tunnel *n = calloc(tb->n ? tb->n : 1, sizeof(*n));
	size_t k = 0;

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < tb->n; i++) {
		const struct mm_partner *p = tb->partners[i];
		struct tunnel *old = tunnel_find(ike, p->domain);

		if (old && old->reqid == p->reqid)
			n[k] = *old;
		else
			snprintf(n[k].domain, sizeof(n[k].domain), "%s", p->domain);
		n[k++].reqid = p->reqid;
	}
	qsort(n, k, sizeof(*n), tunnel_cmp);
	free(ike->t);
	ike->t = n;
	ike->n_t = k;
	ike->cap_t = tb->n;
	return 0;
}

static void tunnel_down(struct mmtrustd *d, struct tunnel *t, const char *why)
{
	if (t->up) {
		log_notice("tunnel down: partner %s (reqid %" PRIu32 "): %s", t->domain, t->reqid,
			   why);
		query_notify(d, "sa-down", t->domain, NULL);
	}
	t->up = false;
	t->spi_in = t->spi_out = 0;
	t->since = 0;
	query_publish(d);
}

/* ---- policing ---- */

static void on_terminated(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	if (error < 0)
		log_warn("terminate after identity mismatch: %s%s%s", strerror(-error),
			 errmsg ? ": " : "", errmsg ? errmsg : "");
}

struct spi_pair {
	uint32_t reqid, spi_in, spi_out;
};

static bool sa_matches_spis(const struct mm_xfrm_sa *sa, void *userdata)
{
	const struct spi_pair *p = userdata;

	return sa->reqid == p->reqid && (sa->spi == p->spi_in || sa->spi == p->spi_out);
}

/* A wrong identity condemns the whole IKE_SA; a right identity with a
 * wrong reqid only the CHILD_SA (the partner's own tunnel stays up). */
static void kill_child(struct mm_ike *ike, const struct vici_ike_sa *sa,
		       const struct vici_child_sa *child, bool whole_ike)
{
	struct vici_terminate_args args = {
		.ike_id = whole_ike ? sa->uniqueid : 0,
		.child_id = whole_ike ? 0 : child->uniqueid,
		.timeout_ms = -1,
	};
	struct spi_pair spis = { child->reqid, child->spi_in, child->spi_out };
	size_t deleted = 0;

	if (vici_terminate(ike->cmd, &args, on_terminated, ike) < 0)
		log_warn("cannot ask charon to terminate IKE_SA %" PRIu32, sa->uniqueid);
	if (ike->d->nl &&
	    mm_xfrm_sa_delete_if(ike->d->nl, sa_matches_spis, &spis, &deleted, NULL) == 0)
		log_notice("deleted %zu SAs of the refused CHILD_SA (spi 0x%08" PRIx32
			   "/0x%08" PRIx32 ")",
			   deleted, child->spi_in, child->spi_out);
}

/* A CHILD_SA is ours when its IKE config is a partner's; it is right when
 * the authenticated identity is that partner's domain and the reqid is the
 * partner's.  An SA in our reqid range under any other name is wrong too. */
static void child_check(struct mm_ike *ike, const struct vici_ike_sa *sa,
			const struct vici_child_sa *child, bool up)
{
	struct mmtrustd *d = ike->d;
	const struct mm_partner *p = mm_table_find(d->table, sa->name ? sa->name : "");
	bool in_range = child->reqid >= d->cfg.reqid_min && child->reqid <= d->cfg.reqid_max;
	struct tunnel *t;

	if (!p && !in_range)
		return;  /* another connection of this charon: not ours to judge */
	if (!p || !sa->remote_id || strcasecmp(sa->remote_id, p->domain) != 0 ||
	    child->reqid != p->reqid) {
		if (!up)
			return;
		log_err("identity mismatch: CHILD_SA %s of IKE_SA %s (remote id '%s', host %s) "
			"has reqid %" PRIu32 "; %s: terminated and its SAs deleted",
			child->name ? child->name : "?", sa->name ? sa->name : "?",
			sa->remote_id ? sa->remote_id : "", sa->remote_host ? sa->remote_host : "?",
			child->reqid,
			!p ? "no partner has this connection" :
			child->reqid != p->reqid ? "the partner's reqid differs" :
			"the partner's domain differs");
		kill_child(ike, sa, child,
			   !p || !sa->remote_id || strcasecmp(sa->remote_id, p->domain) != 0);
		return;
	}
	t = tunnel_find(ike, p->domain);
	if (!t)
		return;
	if (!up) {
		if (t->spi_in == child->spi_in || !t->spi_in)
			tunnel_down(d, t, "CHILD_SA closed");
		return;
	}
	if (!t->up || t->spi_in != child->spi_in)
		log_notice("tunnel up: partner %s (reqid %" PRIu32 "): remote %s id %s, "
			   "spi in 0x%08" PRIx32 " out 0x%08" PRIx32,
			   p->domain, p->reqid, sa->remote_host ? sa->remote_host : "?",
			   sa->remote_id, child->spi_in, child->spi_out);
	bool changed = !t->up || t->spi_in != child->spi_in;

	t->up = true;
	t->spi_in = child->spi_in;
	t->spi_out = child->spi_out;
	t->ike_id = sa->uniqueid;
	t->since = time(NULL) - (time_t)child->install_time;
	snprintf(t->ike_state, sizeof(t->ike_state), "%s", sa->state ? sa->state : "");
	snprintf(t->remote_id, sizeof(t->remote_id), "%s", sa->remote_id);
	snprintf(t->remote_host, sizeof(t->remote_host), "%s",
		 sa->remote_host ? sa->remote_host : "");
	if (changed) {
		struct mm_tunnel_info info = { .up = true, .spi_in = t->spi_in,
					       .spi_out = t->spi_out };

		query_notify(d, "sa-up", t->domain, &info);
	}
	query_publish(d);
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
	struct tunnel *t;

	(void)c;
	(void)event;
	if (error < 0 || vici_ike_updown_decode(msg, &e) < 0)
		return;
	t = e->ike.name ? tunnel_find(ike, e->ike.name) : NULL;
	if (t) {
		snprintf(t->ike_state, sizeof(t->ike_state), "%s",
			 e->up ? (e->ike.state ? e->ike.state : "ESTABLISHED") : "DESTROYING");
		if (!e->up)
			tunnel_down(ike->d, t, "IKE_SA closed");
		else
			t->ike_id = e->ike.uniqueid;
	}
	vici_ike_updown_free(e);
}

static void on_ike_rekey(struct vici_client *c, int error, const char *event,
			 const struct vici_msg *msg, void *userdata)
{
	struct mm_ike *ike = userdata;
	struct vici_ike_rekey *e;
	struct tunnel *t;

	(void)c;
	(void)event;
	if (error < 0 || vici_ike_rekey_decode(msg, &e) < 0)
		return;
	t = e->new_sa.name ? tunnel_find(ike, e->new_sa.name) : NULL;
	if (t)
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

/* SAs in our reqid range that charon does not know (a charon that died
 * left them in the kernel) are ours to clean up.  Only SAs older than the
 * listing are judged, so one charon installs while we list is never hit. */
struct orphan_ctx {
	struct mmtrustd *d;
	uint32_t *spis;
	size_t n;
	uint64_t listed_at;  /* wall-clock seconds, as the kernel's add_time */
};

static bool is_orphan(const struct mm_xfrm_sa *sa, void *userdata)
{
	const struct orphan_ctx *o = userdata;

	if (sa->reqid < o->d->cfg.reqid_min || sa->reqid > o->d->cfg.reqid_max)
		return false;
	if (!sa->add_time || sa->add_time + 2 > o->listed_at)
		return false;
	for (size_t i = 0; i < o->n; i++)
		if (o->spis[i] == sa->spi)
			return false;
	return true;
}

static void delete_orphans(struct mm_ike *ike, struct vici_ike_sa *const *sas, size_t n,
			   time_t listed_at)
{
	struct orphan_ctx o = { .d = ike->d, .listed_at = listed_at };
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
	if (mm_xfrm_sa_delete_if(ike->d->nl, is_orphan, &o, &deleted, NULL) == 0 && deleted)
		log_notice("charon: deleted %zu SAs in our reqid range that charon does not know "
			   "(left by a charon that went away)", deleted);
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
	for (size_t i = 0; i < ike->n_t; i++) {
		ike->t[i].up = false;
		ike->t[i].spi_in = ike->t[i].spi_out = 0;
		ike->t[i].ike_state[0] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		struct tunnel *t = sas[i]->name ? tunnel_find(ike, sas[i]->name) : NULL;

		if (t)
			snprintf(t->ike_state, sizeof(t->ike_state), "%s",
				 sas[i]->state ? sas[i]->state : "");
		for (size_t j = 0; j < sas[i]->n_children; j++)
			if (child_installed(&sas[i]->children[j]))
				child_check(ike, sas[i], &sas[i]->children[j], true);
	}
	for (size_t i = 0; i < ike->n_t; i++)
		up += ike->t[i].up;
	log_info("charon: SA table rebuilt from list-sas: %zu IKE_SAs, %zu partner tunnels up",
		 n, up);
	query_publish(ike->d);
	delete_orphans(ike, sas, n, ike->listed_at);
}

static void on_loaded(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct mm_ike *ike = userdata;

	(void)c;
	if (error < 0)
		log_err("charon refused a load: %s%s%s", strerror(-error), errmsg ? ": " : "",
			errmsg ? errmsg : "");
	if (ike->loads_pending && --ike->loads_pending == 0) {
		ike->loaded = true;
		list_sas(ike);
	}
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

static bool partner_has_tunnel(const struct mm_partner *p)
{
	return p->enabled && p->path == MM_PATH_TUNNEL;
}

static int load_partner(struct mm_ike *ike, const struct mm_partner *p)
{
	static const char *const esp_encrypt[] = { "aes128gcm16", NULL };
	static const char *const esp_integrity[] = { "null-sha256", NULL };
	struct mmtrustd *d = ike->d;
	char **local_addrs = NULL, **local_ts = NULL, **remote_addrs = NULL, **remote_ts = NULL;
	const char *cacerts[] = { p->ca_pem, NULL };
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
		.dpd_delay = d->cfg.ike_dpd_delay,
		.children = &child,
		.n_children = 1,
	};
	int r;

	r = strv_of(&local_addrs, d->cfg.n_tunnel, d->cfg.tunnel, false);
	if (r == 0)
		r = strv_of(&local_ts, d->cfg.n_cscf, d->cfg.cscf, true);
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
	if (r < 0)
		log_err("partner %s (reqid %" PRIu32 "): cannot load its connection: %s",
			p->domain, p->reqid, strerror(-r));
	vici_strv_free(local_addrs);
	vici_strv_free(local_ts);
	vici_strv_free(remote_addrs);
	vici_strv_free(remote_ts);
	return r;
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

		if (p && partner_has_tunnel(p))
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

static void load_all(struct mm_ike *ike)
{
	struct mmtrustd *d = ike->d;
	size_t n = 0;

	ike->loaded = false;
	ike->loads_pending = 1;  /* the key */
	if (vici_load_key(ike->cmd, ike->key, ike->key_len, VICI_KEY_ANY, on_loaded, ike) < 0) {
		log_err("charon: cannot queue our private key");
		ike->loads_pending = 0;
		return;
	}
	/* Our certificate goes into charon's store too (each connection also
	 * carries it), so `swanctl --list-certs` shows what we authenticate with. */
	if (vici_load_cert(ike->cmd, ike->cert, ike->cert_len, VICI_CERT_FLAG_NONE, on_loaded,
			   ike) == 0)
		ike->loads_pending++;
	vici_get_conns(ike->cmd, on_get_conns, ike);
	for (size_t i = 0; i < d->table->n; i++)
		if (partner_has_tunnel(d->table->partners[i]) &&
		    load_partner(ike, d->table->partners[i]) == 0)
			n++;
	log_notice("charon connected (%s): loading %zu partner connections",
		   d->cfg.ike_vici_socket, n);
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
	for (size_t i = 0; i < ike->n_t; i++) {
		ike->t[i].ike_state[0] = '\0';
		tunnel_down(ike->d, &ike->t[i], "charon went away");
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

int ike_start(struct mmtrustd *d)
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
	int r = -ENOMEM;

	if (!d->cfg.ike_enabled)
		return 0;
	ike = calloc(1, sizeof(*ike));
	if (!ike)
		return -ENOMEM;
	ike->d = d;
	ike->cert = read_pem(d->cfg.ike_certificate, &ike->cert_len);
	if (!ike->cert) {
		r = -errno;
		log_err("[ike] certificate %s: %s", d->cfg.ike_certificate, strerror(errno));
		goto fail;
	}
	ike->key = read_pem(d->cfg.ike_private_key, &ike->key_len);
	if (!ike->key) {
		r = -errno;
		log_err("[ike] private_key %s: %s", d->cfg.ike_private_key, strerror(errno));
		goto fail;
	}
	d->ike = ike;
	if (tunnels_sync(ike) < 0 ||
	    vici_client_new(d->ev, d->cfg.ike_vici_socket, &cmd_cbs, ike, &ike->cmd) < 0 ||
	    vici_client_new(d->ev, d->cfg.ike_vici_socket, &evt_cbs, ike, &ike->evt) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_CHILD_UPDOWN, on_child_updown, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_CHILD_REKEY, on_child_rekey, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_IKE_UPDOWN, on_ike_updown, NULL, ike) < 0 ||
	    vici_client_subscribe(ike->evt, VICI_EVT_IKE_REKEY, on_ike_rekey, NULL, ike) < 0 ||
	    vici_client_start(ike->cmd) < 0 || vici_client_start(ike->evt) < 0) {
		log_err("charon: cannot set up the VICI clients");
		r = -EIO;
		goto fail;
	}
	return 0;
fail:
	d->ike = NULL;
	vici_client_free(ike->cmd);
	vici_client_free(ike->evt);
	free(ike->cert);
	if (ike->key)
		explicit_bzero(ike->key, ike->key_len);
	free(ike->key);
	free(ike->t);
	free(ike);
	return r;
}

void ike_stop(struct mmtrustd *d)
{
	struct mm_ike *ike = d->ike;

	/* Connections stay loaded in charon: tunnels must survive our restart. */
	if (!ike)
		return;
	vici_client_free(ike->cmd);
	vici_client_free(ike->evt);
	free(ike->cert);
	explicit_bzero(ike->key, ike->key_len);
	free(ike->key);
	free(ike->t);
	free(ike);
	d->ike = NULL;
}

void ike_table_changed(struct mmtrustd *d, const struct mm_change *changes, size_t n)
{
	struct mm_ike *ike = d->ike;

	if (!ike)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after, *b = changes[i].before;
		struct tunnel *t = b ? tunnel_find(ike, b->domain) : NULL;

		if (t && (!a || !partner_has_tunnel(a)))
			tunnel_down(d, t, !a ? "partner removed" : !a->enabled ? "partner disabled"
										 : "partner moved to seg");
	}
	if (tunnels_sync(ike) < 0)
		log_err("charon: out of memory for the SA table");
	if (!vici_client_is_connected(ike->cmd))
		return;  /* everything is loaded on (re)connect */
	if (!changes) {
		load_all(ike);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after, *b = changes[i].before;

		if (a && partner_has_tunnel(a))
			load_partner(ike, a);  /* charon replaces a changed connection */
		else if (b && partner_has_tunnel(b))
			unload_partner(ike, b->domain);
	}
}

static void on_initiated(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	(void)c;
	(void)userdata;
	if (error < 0)
		log_info("charon: initiate on acquire: %s%s%s", strerror(-error), errmsg ? ": " : "",
			 errmsg ? errmsg : "");
}

/* Traffic hit one of our policies and found no SA: the tunnel is down and
 * charon gave up on it (start_action/close_action/dpd_action only cover the
 * cases charon sees).  Ask charon to bring it up, at most every 5 s. */
static void on_acquire(struct mmtrustd *d, const struct mm_xfrm_acquire *aq)
{
	struct vici_initiate_args args = { .timeout_ms = -1 };
	const struct mm_partner *p = mm_table_find_reqid(d->table, aq->reqid);
	struct tunnel *t;
	uint64_t now;

	if (!p || !partner_has_tunnel(p) || !d->ike || !vici_client_is_connected(d->ike->cmd))
		return;
	t = tunnel_find(d->ike, p->domain);
	sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
	if (!t || t->up || (t->last_initiate && now - t->last_initiate < 5000000))
		return;
	t->last_initiate = now;
	args.child = p->domain;
	args.ike = p->domain;
	log_notice("acquire: traffic for partner %s (reqid %" PRIu32 ") has no SA; initiating",
		   p->domain, p->reqid);
	vici_initiate(d->ike->cmd, &args, on_initiated, d->ike);
}

int ike_xfrm_event(const struct mm_xfrm_event *ev, void *userdata)
{
	struct mmtrustd *d = userdata;
	const struct mm_xfrm_sa *sa = &ev->sa;
	const struct mm_partner *p;
	bool ends_ok = false;
	char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];

	if (ev->type == MM_XFRM_EV_ACQUIRE) {
		on_acquire(d, &ev->acquire);
		return 0;
	}
	if (ev->type != MM_XFRM_EV_SA_NEW && ev->type != MM_XFRM_EV_SA_UPD)
		return 0;
	if (sa->reqid < d->cfg.reqid_min || sa->reqid > d->cfg.reqid_max)
		return 0;
	p = mm_table_find_reqid(d->table, sa->reqid);
	/* One end must be the partner's gateway, the other our tunnel address. */
	for (size_t i = 0; p && i < p->n_gateways; i++) {
		for (size_t j = 0; j < d->cfg.n_tunnel; j++) {
			if ((!mm_addr_cmp(&p->gateways[i], &sa->src) &&
			     !mm_addr_cmp(&d->cfg.tunnel[j], &sa->dst)) ||
			    (!mm_addr_cmp(&p->gateways[i], &sa->dst) &&
			     !mm_addr_cmp(&d->cfg.tunnel[j], &sa->src)))
				ends_ok = true;
		}
	}
	if (p && partner_has_tunnel(p) && ends_ok)
		return 0;
	log_err("identity mismatch: SA spi 0x%08" PRIx32 " %s -> %s carries reqid %" PRIu32
		" (%s%s); deleted",
		sa->spi, mm_addr_str(&sa->src, s), mm_addr_str(&sa->dst, t), sa->reqid,
		p ? "partner " : "no partner has it", p ? p->domain : "");
	if (d->nl)
		mm_xfrm_sa_del(d->nl, sa, NULL);
	return 0;
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
	if (!ike)
		return;
	json_array_foreach(partners, i, o) {
		struct tunnel *t = tunnel_find(ike, json_string_value(json_object_get(o, "domain")));

		if (!t)
			continue;
		json_object_set_new(
			o, "tunnel",
			json_pack("{s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:o}", "state",
				  t->up ? "up" : "down", "ike_state",
				  t->ike_state[0] ? json_string(t->ike_state) : json_null(),
				  "remote_id", t->up ? json_string(t->remote_id) : json_null(),
				  "remote_host", t->up ? json_string(t->remote_host) : json_null(),
				  "reqid", (json_int_t)t->reqid, "spi_in", mm_json_spi(t->spi_in),
				  "spi_out", mm_json_spi(t->spi_out), "since", mm_json_time(t->since)));
	}
}

int ike_tunnels_up(struct mmtrustd *d, struct mm_tunnel_info **ret, size_t *ret_n)
{
	struct mm_ike *ike = d->ike;
	struct mm_tunnel_info *v;
	size_t n = 0;

	for (size_t i = 0; ike && i < ike->n_t; i++)
		n += ike->t[i].up;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; ike && i < ike->n_t; i++) {
		const struct tunnel *t = &ike->t[i];

		if (!t->up)
			continue;
		v[n] = (struct mm_tunnel_info){
			.up = true, .reqid = t->reqid, .spi_in = t->spi_in, .spi_out = t->spi_out,
			.since = t->since,
		};
		snprintf(v[n].domain, sizeof(v[n].domain), "%s", t->domain);
		snprintf(v[n].remote_id, sizeof(v[n].remote_id), "%s", t->remote_id);
		snprintf(v[n].remote_host, sizeof(v[n].remote_host), "%s", t->remote_host);
		n++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}
