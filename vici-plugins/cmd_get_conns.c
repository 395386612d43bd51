/* get-conns: the names of connections loaded over VICI, so that after a
 * restart mmtrustd can unload the ones its partner table no longer has. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici_cmd.h"

struct get_conns_ctx {
	vici_get_conns_fn done;
	void *userdata;
};

int vici_get_conns_build(struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!ret)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "get-conns", &b);
	if (r < 0)
		return r;
	return vici_cmd_finish(b, ret);
}

int vici_get_conns_decode(const struct vici_msg *reply, char ***ret)
{
	const struct vici_node *list = vici_node_child(vici_msg_root(reply), "conns");
	const struct vici_node *it;
	size_t n = 0, i = 0;
	char **v;

	if (!ret)
		return -EINVAL;
	if (!list || vici_node_type(list) != VICI_NODE_LIST)
		return -EBADMSG;
	for (it = vici_node_first(list); it; it = vici_node_next(it))
		n++;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (it = vici_node_first(list); it; it = vici_node_next(it), i++) {
		const char *s = vici_node_str(it);

		if (!s || !s[0]) {
			vici_strv_free(v);
			return -EBADMSG;
		}
		v[i] = strdup(s);
		if (!v[i]) {
			vici_strv_free(v);
			return -ENOMEM;
		}
	}
	*ret = v;
	return 0;
}

static void on_reply(struct vici_client *c, int error, const struct vici_msg *reply, void *userdata)
{
	struct get_conns_ctx *ctx = userdata;
	char **conns = NULL;

	if (error == 0)
		error = vici_get_conns_decode(reply, &conns);
	if (ctx->done)
		ctx->done(c, error, error < 0 ? NULL : conns, ctx->userdata);
	vici_strv_free(conns);
}

int vici_get_conns(struct vici_client *c, vici_get_conns_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	struct get_conns_ctx *ctx;
	int r;

	r = vici_get_conns_build(&b);
	if (r < 0)
		return r;
	ctx = malloc(sizeof(*ctx));
	if (!ctx) {
		vici_builder_free(b);
		return -ENOMEM;
	}
	ctx->done = done;
	ctx->userdata = userdata;
	r = vici_client_call_full(c, b, NULL, NULL, on_reply, ctx, free);
	if (r < 0)
		free(ctx);
	vici_builder_free(b);
	return r;
}
