/* child-updown: a CHILD_SA was installed or deleted.  Carries reqid, SPIs,
 * remote-id and remote-host: what the daemon's SPI -> partner map needs. */
#include <errno.h>
#include <stdlib.h>

#include "vici-plugins/vici_sa.h"

int vici_child_updown_decode(const struct vici_msg *m, struct vici_child_updown **ret)
{
	struct vici_child_updown e = { 0 }, *p;
	int r;

	if (!ret)
		return -EINVAL;
	r = vici_sa_decode_updown(m, true, &e.up, &e.ike);
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

void vici_child_updown_free(struct vici_child_updown *e)
{
	if (!e)
		return;
	vici_ike_sa_clear(&e->ike);
	free(e);
}
