/* unload-conn: remove a connection by name (its SAs are closed by charon
 * according to start_action). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

int vici_unload_conn_build(const char *name, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	const uint8_t *frame;
	size_t len;
	int r;

	if (!name || !name[0] || !ret)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "unload-conn", &b);
	if (r < 0)
		return r;
	vici_builder_kv_str(b, "name", name);
	r = vici_builder_finish(b, &frame, &len);
	if (r < 0) {
		vici_builder_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int vici_unload_conn(struct vici_client *c, const char *name, vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r;

	r = vici_unload_conn_build(name, &b);
	if (r < 0)
		return r;
	r = vici_cmd_call_done(c, b, done, userdata);
	vici_builder_free(b);
	return r;
}
