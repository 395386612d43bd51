/* list-sas: the IKE_SAs and CHILD_SAs charon has now, streamed as list-sa
 * events.  mmtrustd rebuilds its SPI -> partner map from it after a
 * (re)connect, since events missed while disconnected are gone. */
#include <errno.h>
#include <stdlib.h>

#include "policy/grow.h"
#include "vici-plugins/vici_cmd.h"
#include "vici-plugins/vici_sa.h"

struct list_ctx {
	vici_list_sas_fn done;
	void *userdata;
	struct vici_ike_sa **sas;
	size_t n, cap;
	int error; /* first event that failed */
};

int vici_list_sa_decode(const struct vici_msg *m, struct vici_ike_sa **ret)
{
	const struct vici_node *sec = vici_sa_event_section(m);
	struct vici_ike_sa *sa;
	int r;

	if (!ret)
		return -EINVAL;
	if (!sec)
		return -EBADMSG;
	sa = calloc(1, sizeof(*sa));
	if (!sa)
		return -ENOMEM;
	r = vici_sa_decode_ike(sec, true, sa);
	if (r < 0) {
		free(sa);
		return r;
	}
	*ret = sa;
	return 0;
}

int vici_list_sas_build(const char *ike_filter, struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	int r;

	if (!ret || (ike_filter && !ike_filter[0]))
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "list-sas", &b);
	if (r < 0)
		return r;
	/* No "noblock": it would skip IKE_SAs that are busy right now, and
	 * a map rebuilt from a partial list would forget live SAs. */
	if (ike_filter)
		vici_builder_kv_str(b, "ike", ike_filter);
	return vici_cmd_finish(b, ret);
}

static void on_event(struct vici_client *c, int error, const char *event,
		     const struct vici_msg *msg, void *userdata)
{
	struct list_ctx *ctx = userdata;
	struct vici_ike_sa *sa = NULL;
	int r;

	(void)c;
	(void)event;
	if (ctx->error)
		return;
	if (error < 0) {
		ctx->error = error;
		return;
	}
	if (ctx->n >= VICI_LIST_SAS_MAX) {
		ctx->error = -E2BIG;
		return;
	}
	if (mm_grow((void **)&ctx->sas, &ctx->cap, ctx->n + 1, sizeof(*ctx->sas)) < 0) {
		ctx->error = -ENOMEM;
		return;
	}
	r = vici_list_sa_decode(msg, &sa);
	if (r < 0) {
		ctx->error = r;
		return;
	}
	ctx->sas[ctx->n++] = sa;
}

static void on_reply(struct vici_client *c, int error, const struct vici_msg *reply, void *userdata)
{
	struct list_ctx *ctx = userdata;

	(void)reply;
	if (error == 0)
		error = ctx->error;
	if (ctx->done)
		ctx->done(c, error, error < 0 ? NULL : ctx->sas, error < 0 ? 0 : ctx->n,
			  ctx->userdata);
}

static void ctx_free(void *userdata)
{
	struct list_ctx *ctx = userdata;

	vici_ike_sa_array_free(ctx->sas, ctx->n);
	free(ctx);
}

int vici_list_sas(struct vici_client *c, const char *ike_filter, vici_list_sas_fn done,
		  void *userdata)
{
	struct vici_builder *b = NULL;
	struct list_ctx *ctx;
	int r;

	r = vici_list_sas_build(ike_filter, &b);
	if (r < 0)
		return r;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		vici_builder_free(b);
		return -ENOMEM;
	}
	ctx->done = done;
	ctx->userdata = userdata;
	r = vici_client_call_full(c, b, VICI_EVT_LIST_SA, on_event, on_reply, ctx, ctx_free);
	if (r < 0)
		ctx_free(ctx);
	vici_builder_free(b);
	return r;
}
