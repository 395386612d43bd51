/* ike-rekey: an IKE_SA was replaced (its CHILD_SAs move to the new one). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici_sa.h"

/* decode_ike() names the SA after its section, here "old"/"new"; the
 * config name is the enclosing section's. */
static int decode_side(const struct vici_node *ike, const char *side, struct vici_ike_sa *ret)
{
	const struct vici_node *sec = vici_node_child(ike, side);
	char *name;
	int r;

	if (!sec || vici_node_type(sec) != VICI_NODE_SECTION)
		return -EBADMSG;
	r = vici_sa_decode_ike(sec, false, ret);
	if (r < 0)
		return r;
	name = strdup(vici_node_name(ike));
	if (!name) {
		vici_ike_sa_clear(ret);
		return -ENOMEM;
	}
	free(ret->name);
	ret->name = name;
	return 0;
}

int vici_ike_rekey_decode(const struct vici_msg *m, struct vici_ike_rekey **ret)
{
	const struct vici_node *sec = vici_sa_event_section(m);
	struct vici_ike_rekey *e;
	int r;

	if (!ret)
		return -EINVAL;
	if (!sec)
		return -EBADMSG;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = decode_side(sec, "old", &e->old_sa);
	if (r >= 0)
		r = decode_side(sec, "new", &e->new_sa);
	if (r < 0) {
		vici_ike_rekey_free(e);
		return r;
	}
	*ret = e;
	return 0;
}

void vici_ike_rekey_free(struct vici_ike_rekey *e)
{
	if (!e)
		return;
	vici_ike_sa_clear(&e->old_sa);
	vici_ike_sa_clear(&e->new_sa);
	free(e);
}
