/* vici_sa: decoding of charon's IKE_SA and CHILD_SA sections, shared by
 * list-sas and the SA events.  Internal to vici-plugins/: the daemon uses the
 * per-command and per-event functions of vici.h. */
#ifndef MM_VICI_SA_H
#define MM_VICI_SA_H

#include "vici-plugins/vici.h"

/* Fills *ret (zeroed first) from an IKE_SA section named after the config;
 * with_children: also decode its "child-sas" section.  On failure *ret is
 * left cleared (nothing to free).  -EBADMSG, -ENOMEM. */
int vici_sa_decode_ike(const struct vici_node *sec, bool with_children, struct vici_ike_sa *ret);
/* A CHILD_SA section: its "name" key, else the section name, names it. */
int vici_sa_decode_child(const struct vici_node *sec, struct vici_child_sa *ret);

/* Frees what the struct owns and zeroes it. */
void vici_ike_sa_clear(struct vici_ike_sa *sa);
void vici_child_sa_clear(struct vici_child_sa *sa);

/* The one section at the root of an SA event (named after the IKE config);
 * NULL if there is none or more than one. */
const struct vici_node *vici_sa_event_section(const struct vici_msg *m);

/* The body of child-updown and ike-updown: the "up" flag and the event's
 * IKE_SA (with_children: and its CHILD_SAs).  Outputs set only on success;
 * -EBADMSG, -ENOMEM. */
int vici_sa_decode_updown(const struct vici_msg *m, bool with_children, bool *ret_up,
			  struct vici_ike_sa *ret_ike);

#endif
