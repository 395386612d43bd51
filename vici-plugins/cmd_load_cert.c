/* load-cert: an X.509 certificate (ours, or a CA) or a CRL as data. */
#include <errno.h>

#include "vici-plugins/vici_cmd.h"

static const char *const cert_flag_names[_VICI_CERT_FLAG_MAX] = {
	[VICI_CERT_FLAG_NONE] = "NONE",
	[VICI_CERT_FLAG_CA] = "CA",
};

int vici_load_cert_build(const void *data, size_t len, enum vici_cert_flag flag,
			 struct vici_builder **ret)
{
	if (!data || len == 0 || !ret || (int)flag < 0 || flag >= _VICI_CERT_FLAG_MAX)
		return -EINVAL;
	return vici_cmd_load_build("load-cert", "X509", cert_flag_names[flag], data, len, ret);
}

/* charon's type name (certificate_type_names); swanctl sends the same. */
int vici_load_crl_build(const void *data, size_t len, struct vici_builder **ret)
{
	if (!data || len == 0 || len > VICI_CRL_MAX || !ret)
		return -EINVAL;
	return vici_cmd_load_build("load-cert", "X509_CRL", NULL, data, len, ret);
}

int vici_load_crl(struct vici_client *c, const void *data, size_t len, vici_done_fn done,
		  void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_load_crl_build(data, len, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}

int vici_load_cert(struct vici_client *c, const void *data, size_t len, enum vici_cert_flag flag,
		   vici_done_fn done, void *userdata)
{
	struct vici_builder *b = NULL;
	int r = vici_load_cert_build(data, len, flag, &b);

	if (r < 0)
		return r;
	return vici_cmd_send_done(c, b, done, userdata);
}
