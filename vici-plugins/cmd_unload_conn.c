/* unload-conn: remove a connection by name (its SAs are closed by charon
 * according to start_action). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_unload_conn_build(const char *name, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!name || !name[0] || !ret)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "unload-conn", &b);
	if (r < 0)
		return r;
	vici_builder_kv_str(b, "name", name);
	return vici_cmd_finish(b, ret);
}

int vici_unload_conn(struct vici_client *c, const char *name, vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_unload_conn_build(name, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
