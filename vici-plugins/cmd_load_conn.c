/* load-conn: one IKE connection with its CHILD_SAs, as mmtrust configures
 * them (see struct vici_conn_conf in vici.h for what is fixed and why). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

static bool strv_empty(const char *const *v)
{
	return !v || !v[0];
}

/* A list only when the caller gave one: an absent key keeps charon's
 * default, an empty list would mean "none". */
static void opt_list(struct vici_builder *b, const char *name, const char *const *v)
{
	if (v)
		vici_builder_list_strv(b, name, v);
}

static int check_conf(const struct vici_conn_conf *conf)
{
	if (!conf || !conf->name || !conf->name[0] || strv_empty(conf->remote_addrs) ||
	    !conf->remote_id || !conf->remote_id[0] || !conf->children || conf->n_children == 0)
		return -EINVAL;
	if (conf->local_cert && conf->local_cert_len == 0)
		return -EINVAL;
	for (size_t i = 0; i < conf->n_children; i++) {
		const struct vici_child_conf *ch = &conf->children[i];

		if (!ch->name || !ch->name[0] || ch->reqid == 0)
			return -EINVAL;
	}
	return 0;
}

static void add_child(struct vici_builder *b, const struct vici_child_conf *ch)
{
	vici_builder_section_start(b, ch->name);
	opt_list(b, "local_ts", ch->local_ts);
	opt_list(b, "remote_ts", ch->remote_ts);
	opt_list(b, "esp_proposals", ch->esp_proposals);
	vici_builder_kv_str(b, "mode", "tunnel");
	/* mmtrustd owns every policy; charon installs SAs only. */
	vici_builder_kv_str(b, "policies", "no");
	vici_builder_kv_fmt(b, "reqid", "%u", ch->reqid);
	/* Without trap policies the tunnel must be kept up actively. */
	vici_builder_kv_str(b, "start_action", "start");
	vici_builder_kv_str(b, "close_action", "start");
	vici_builder_kv_str(b, "dpd_action", "restart");
	vici_builder_section_end(b);
}

int vici_load_conn_build(const struct vici_conn_conf *conf, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!ret)
		return -EINVAL;
	r = check_conf(conf);
	if (r < 0)
		return r;
	r = vici_builder_new(VICI_CMD_REQUEST, "load-conn", &b);
	if (r < 0)
		return r;

	/* Adders record the first error in the builder; finish reports it. */
	vici_builder_section_start(b, conf->name);
	vici_builder_kv_str(b, "version", "2");
	opt_list(b, "local_addrs", conf->local_addrs);
	vici_builder_list_strv(b, "remote_addrs", conf->remote_addrs);
	if (conf->local_port)
		vici_builder_kv_fmt(b, "local_port", "%u", conf->local_port);
	if (conf->remote_port)
		vici_builder_kv_fmt(b, "remote_port", "%u", conf->remote_port);
	opt_list(b, "proposals", conf->proposals);
	if (conf->dpd_delay)
		vici_builder_kv_fmt(b, "dpd_delay", "%us", conf->dpd_delay);
	/* A partner's gateways are fixed addresses (remote_addrs), and an SA of
	 * the partner's reqid between any other addresses is deleted on sight.
	 * MOBIKE would let the peer move the IKE_SA and its CHILD_SAs to an
	 * address of its choice: charon would follow, the SAs be refused, and
	 * the tunnel be lost until the next rekey.  Without MOBIKE a peer that
	 * changes address must come back to its gateway address or
	 * re-establish from one. */
	vici_builder_kv_str(b, "mobike", "no");

	vici_builder_section_start(b, "local");
	vici_builder_kv_str(b, "auth", "pubkey");
	if (conf->local_id)
		vici_builder_kv_str(b, "id", conf->local_id);
	if (conf->local_cert) {
		vici_builder_list_start(b, "certs");
		vici_builder_list_item(b, conf->local_cert, conf->local_cert_len);
		vici_builder_list_end(b);
	}
	vici_builder_section_end(b);

	vici_builder_section_start(b, "remote");
	vici_builder_kv_str(b, "auth", "pubkey");
	/* charon then requires this identity in the peer certificate's
	 * subject or subjectAltName. */
	vici_builder_kv_str(b, "id", conf->remote_id);
	opt_list(b, "cacerts", conf->remote_cacerts);
	if (conf->remote_revocation)
		vici_builder_kv_str(b, "revocation", conf->remote_revocation);
	vici_builder_section_end(b);

	vici_builder_section_start(b, "children");
	for (size_t i = 0; i < conf->n_children; i++)
		add_child(b, &conf->children[i]);
	vici_builder_section_end(b);

	vici_builder_section_end(b);

	return vici_cmd_finish(b, ret);
}

int vici_load_conn(struct vici_client *c, const struct vici_conn_conf *conf, vici_done_fn done,
		   void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_load_conn_build(conf, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
