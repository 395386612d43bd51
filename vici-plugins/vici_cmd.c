/* Completion of { success, errmsg } commands, shared by the cmd_*.c files. */
#include <errno.h>
#include <stdlib.h>

#include "vici-plugins/vici_cmd.h"

struct done_ctx {
	vici_done_fn done;
	void *userdata;
};

static void on_reply(struct vici_client *c, int error, const struct vici_msg *reply, void *userdata)
{
	struct done_ctx *ctx = userdata;
	const char *errmsg = NULL;

	if (error == 0) {
		error = vici_msg_check_success(reply);
		if (error == -EREMOTEIO)
			errmsg = vici_msg_errmsg(reply);
	}
	if (ctx->done)
		ctx->done(c, error, errmsg, ctx->userdata);
}

int vici_cmd_call_done(struct vici_client *c, struct vici_builder *b, vici_done_fn done,
		       void *userdata)
{
	struct done_ctx *ctx;
	int r;

	ctx = malloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->done = done;
	ctx->userdata = userdata;
	r = vici_client_call_full(c, b, NULL, NULL, on_reply, ctx, free);
	if (r < 0)
		free(ctx);
	return r;
}

int vici_cmd_send_done(struct vici_client *c, struct vici_builder *b, vici_done_fn done,
		       void *userdata)
{
	int r = vici_cmd_call_done(c, b, done, userdata);

	vici_builder_free(b);
	return r;
}

int vici_cmd_finish(struct vici_builder *b, struct vici_builder **ret)
{
	const uint8_t *frame;
	size_t len;
	int r = vici_builder_finish(b, &frame, &len);

	if (r < 0) {
		vici_builder_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int vici_cmd_load_build(const char *cmd, const char *type, const char *flag, const void *data,
			size_t len, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r = vici_builder_new(VICI_CMD_REQUEST, cmd, &b);

	if (r < 0)
		return r;
	vici_builder_kv_str(b, "type", type);
	if (flag)
		vici_builder_kv_str(b, "flag", flag);
	vici_builder_kv(b, "data", data, len);
	return vici_cmd_finish(b, ret);
}
