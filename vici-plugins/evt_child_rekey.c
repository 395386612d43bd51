/* child-rekey: a CHILD_SA was replaced; the new SPIs must be mapped to the
 * partner before the old ones expire. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici_sa.h"

/* The inner "old"/"new" sections carry a "name" key; if one does not, it
 * is still the CHILD_SA named by the enclosing section, not "old". */
static int decode_side(const struct vici_node *child, const char *side, struct vici_child_sa *ret)
{
	const struct vici_node *sec = vici_node_child(child, side);
	int r;

	if (!sec || vici_node_type(sec) != VICI_NODE_SECTION)
		return -EBADMSG;
	r = vici_sa_decode_child(sec, ret);
	if (r < 0)
		return r;
	if (!vici_node_child(sec, "name")) {
		char *name = strdup(vici_node_name(child));

		if (!name) {
			vici_child_sa_clear(ret);
			return -ENOMEM;
		}
		free(ret->name);
		ret->name = name;
	}
	return 0;
}

int vici_child_rekey_decode(const struct vici_msg *m, struct vici_child_rekey **ret)
{
	const struct vici_node *sec = vici_sa_event_section(m);
	const struct vici_node *children, *child;
	struct vici_child_rekey *e;
	int r;

	if (!ret)
		return -EINVAL;
	if (!sec)
		return -EBADMSG;
	children = vici_node_child(sec, "child-sas");
	child = vici_node_first(children);
	/* Exactly one rekeyed CHILD_SA per event. */
	if (vici_node_type(children) != VICI_NODE_SECTION || !child || vici_node_next(child) ||
	    vici_node_type(child) != VICI_NODE_SECTION)
		return -EBADMSG;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = vici_sa_decode_ike(sec, false, &e->ike);
	if (r >= 0)
		r = decode_side(child, "old", &e->old_sa);
	if (r >= 0)
		r = decode_side(child, "new", &e->new_sa);
	if (r < 0) {
		vici_child_rekey_free(e);
		return r;
	}
	*ret = e;
	return 0;
}

void vici_child_rekey_free(struct vici_child_rekey *e)
{
	if (!e)
		return;
	vici_ike_sa_clear(&e->ike);
	vici_child_sa_clear(&e->old_sa);
	vici_child_sa_clear(&e->new_sa);
	free(e);
}
