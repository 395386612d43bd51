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
	if (!data || len == 0 || !ret || (int)type < 0 || type >= _VICI_KEY_TYPE_MAX)
		return -EINVAL;
	return vici_cmd_load_build("load-key", key_type_names[type], NULL, data, len, ret);
}

int vici_load_key(struct vici_client *c, const void *data, size_t len, enum vici_key_type type,
		  vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_load_key_build(data, len, type, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
