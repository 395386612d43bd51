/* terminate: close a CHILD_SA or IKE_SA, by config name or by id. */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_terminate_build(const struct vici_terminate_args *args, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r, selectors;

	if (!args || !ret || args->timeout_ms < -1)
		return -EINVAL;
	selectors = (args->child != NULL) + (args->ike != NULL) + (args->child_id != 0) +
		    (args->ike_id != 0);
	/* charon would combine several selectors in ways that are easy to
	 * get wrong; one is all mmtrust needs. */
	if (selectors != 1 || (args->child && !args->child[0]) || (args->ike && !args->ike[0]))
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "terminate", &b);
	if (r < 0)
		return r;
	if (args->child)
		vici_builder_kv_str(b, "child", args->child);
	if (args->ike)
		vici_builder_kv_str(b, "ike", args->ike);
	if (args->child_id)
		vici_builder_kv_fmt(b, "child-id", "%u", args->child_id);
	if (args->ike_id)
		vici_builder_kv_fmt(b, "ike-id", "%u", args->ike_id);
	if (args->force)
		vici_builder_kv_str(b, "force", "yes");
	vici_builder_kv_fmt(b, "timeout", "%d", args->timeout_ms);
	return vici_cmd_finish(b, ret);
}

int vici_terminate(struct vici_client *c, const struct vici_terminate_args *args,
		   vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_terminate_build(args, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
