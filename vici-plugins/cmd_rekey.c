/* rekey: re-authenticate (or rekey) an IKE_SA, by config name or by id. */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_rekey_build(const struct vici_rekey_args *args, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!args || !ret || (args->ike != NULL) + (args->ike_id != 0) != 1 ||
	    (args->ike && !args->ike[0]))
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "rekey", &b);
	if (r < 0)
		return r;
	if (args->ike)
		vici_builder_kv_str(b, "ike", args->ike);
	else
		vici_builder_kv_fmt(b, "ike-id", "%u", args->ike_id);
	if (args->reauth)
		vici_builder_kv_str(b, "reauth", "yes");
	return vici_cmd_finish(b, ret);
}

int vici_rekey(struct vici_client *c, const struct vici_rekey_args *args, vici_done_fn done,
	       void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_rekey_build(args, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
