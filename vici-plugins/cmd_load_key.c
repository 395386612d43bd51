/* load-key: a private key as data.  The frames holding it are wiped when
 * freed (builder and client both do). */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

static const char *const key_type_names[_VICI_KEY_TYPE_MAX] = {
	[VICI_KEY_ANY] = "any",
	[VICI_KEY_RSA] = "rsa",
	[VICI_KEY_ECDSA] = "ecdsa",
};

int vici_load_key_build(const void *data, size_t len, enum vici_key_type type,
			struct vici_builder **ret)
{
	struct vici_builder *b = NULL;
	const uint8_t *frame;
	size_t flen;
	int r;

	if (!data || len == 0 || !ret || (int)type < 0 || type >= _VICI_KEY_TYPE_MAX)
		return -EINVAL;
	r = vici_builder_new(VICI_CMD_REQUEST, "load-key", &b);
	if (r < 0)
		return r;
	vici_builder_kv_str(b, "type", key_type_names[type]);
	vici_builder_kv(b, "data", data, len);
	r = vici_builder_finish(b, &frame, &flen);
	if (r < 0) {
		vici_builder_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int vici_load_key(struct vici_client *c, const void *data, size_t len, enum vici_key_type type,
		  vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r;

	r = vici_load_key_build(data, len, type, &b);
	if (r < 0)
		return r;
	r = vici_cmd_call_done(c, b, done, userdata);
	vici_builder_free(b);
	return r;
}
