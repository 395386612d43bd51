/* flush-certs: empty charon's certificate cache (cached CRLs). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_flush_certs_build(const char *type, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!ret || (type && !type[0]))
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "flush-certs", &b);
	if (r < 0)
		return r;
	if (type)
		vici_builder_kv_str(b, "type", type);
	return vici_cmd_finish(b, ret);
}

int vici_flush_certs(struct vici_client *c, const char *type, vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_flush_certs_build(type, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
