/* load-cert: an X.509 certificate (ours, or a CA) as data. */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

static const char *const cert_flag_names[_VICI_CERT_FLAG_MAX] = {
	[VICI_CERT_FLAG_NONE] = "NONE",
	[VICI_CERT_FLAG_CA] = "CA",
};

int vici_load_cert_build(const void *data, size_t len, enum vici_cert_flag flag,
			 struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	const uint8_t *frame;
	size_t flen;
	int r;

	if (!data || len == 0 || !ret || (int)flag < 0 || flag >= _VICI_CERT_FLAG_MAX)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "load-cert", &b);
	if (r < 0)
		return r;
	vici_builder_kv_str(b, "type", "X509");
	vici_builder_kv_str(b, "flag", cert_flag_names[flag]);
	vici_builder_kv(b, "data", data, len);
	r = vici_builder_finish(b, &frame, &flen);
	if (r < 0) {
		vici_builder_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int vici_load_cert(struct vici_client *c, const void *data, size_t len, enum vici_cert_flag flag,
		   vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r;

	r = vici_load_cert_build(data, len, flag, &b);
	if (r < 0)
		return r;
	r = vici_cmd_call_done(c, b, done, userdata);
	vici_builder_free(b);
	return r;
}
