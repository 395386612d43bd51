/* child-updown: a CHILD_SA was installed or deleted.  Carries reqid, SPIs,
 * remote-id and remote-host: what the daemon's SPI -> partner map needs. */
#include <errno.h>
#include <stdlib.h>

#include "vici-plugins/vici_sa.h"

int vici_child_updown_decode(const struct vici_msg *m, struct vici_child_updown **ret)
{
	const struct vici_node *up = vici_node_child(vici_msg_root(m), "up");
	const struct vici_node *sec = vici_sa_event_section(m);
	struct vici_child_updown *e;
	int r;

	if (!ret)
		return -EINVAL;
	if (!sec)
		return -EBADMSG;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* charon sends "up = yes" on up and leaves the key out on down. */
	if (up && vici_node_bool(up, &e->up) < 0) {
		free(e);
		return -EBADMSG;
	}
	r = vici_sa_decode_ike(sec, true, &e->ike);
	if (r < 0) {
		free(e);
		return r;
	}
	*ret = e;
	return 0;
}

void vici_child_updown_free(struct vici_child_updown *e)
{
	if (!e)
		return;
	vici_ike_sa_clear(&e->ike);
	free(e);
}
