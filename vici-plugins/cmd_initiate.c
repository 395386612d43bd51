/* initiate: bring a CHILD_SA up now (e.g. on an XFRM acquire, since with
 * policies = no charon has no trap policy to do it). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_initiate_build(const struct vici_initiate_args *args, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!args || !args->child || !args->child[0] || !ret || args->timeout_ms < -1)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "initiate", &b);
	if (r < 0)
		return r;
	vici_builder_kv_str(b, "child", args->child);
	if (args->ike)
		vici_builder_kv_str(b, "ike", args->ike);
	vici_builder_kv_fmt(b, "timeout", "%d", args->timeout_ms);
	/* No control-log streaming: the daemon logs outcomes, not charon's
	 * chatter, and would have to register for it. */
	return vici_cmd_finish(b, ret);
}

int vici_initiate(struct vici_client *c, const struct vici_initiate_args *args, vici_done_fn done,
		  void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_initiate_build(args, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
