/* ike-updown: an IKE_SA was established or deleted. */
#include <errno.h>
#include <stdlib.h>

#include "vici-plugins/vici_sa.h"

int vici_ike_updown_decode(const struct vici_msg *m, struct vici_ike_updown **ret)
{
	struct vici_ike_updown e = { 0 }, *p;
	int r;

	if (!ret)
		return -EINVAL;
	r = vici_sa_decode_updown(m, false, &e.up, &e.ike);
	if (r < 0)
		return r;
	p = malloc(sizeof(*p));
	if (!p) {
		vici_ike_sa_clear(&e.ike);
		return -ENOMEM;
	}
	*p = e;
	*ret = p;
	return 0;
}

void vici_ike_updown_free(struct vici_ike_updown *e)
{
	if (!e)
		return;
	vici_ike_sa_clear(&e->ike);
	free(e);
}
