/* xfrm_attr: plumbing shared by the XFRM object files (policies, states,
 * events).  Internal to netlink/: nothing above this folder includes it.
 *
 * Attribute sizes are validated by type, as libmnl's examples do, so that
 * the decoders read payloads blindly; types newer than our headers are
 * skipped.  Payloads are only 4-byte aligned: copy them out with memcpy. */
#ifndef MM_XFRM_ATTR_H
#define MM_XFRM_ATTR_H

#include <linux/xfrm.h>
#include <stdbool.h>
#include <stdint.h>

#include "nl.h"

struct mm_xfrm_attrs {
	const struct nlattr *tb[XFRMA_MAX + 1];  /* pointers into the message */
};

/* Zero *a and fill it from the attributes after a fixed header of hdrlen
 * bytes.  -EINVAL when the message is shorter than that header or an
 * attribute is malformed. */
int mm_xfrm_attrs_parse(const struct nlmsghdr *nlh, size_t hdrlen, struct mm_xfrm_attrs *a);

/* How the messages about one kind of object (policy, SA) are laid out:
 * NEW and UPD start with the object's info struct, EXPIRE with a struct
 * that itself starts with it, DEL with the object's id only (the deleted
 * object in full travels in the attribute del_attr). */
struct mm_xfrm_obj_msgs {
	uint16_t new_type, upd_type, del_type, expire_type;
	size_t info_len, id_len, expire_len;  /* the fixed headers */
	uint16_t del_attr;
};
/* Parse a NEW/UPD/DEL/EXPIRE message of object o: its attributes into *a
 * and its info struct (o->info_len bytes) into ret_info.  -EPROTO for
 * another message type; otherwise as mm_xfrm_attrs_parse(), or -EINVAL for
 * a DEL without del_attr. */
int mm_xfrm_obj_parse(const struct nlmsghdr *nlh, const struct mm_xfrm_obj_msgs *o,
		      void *ret_info, struct mm_xfrm_attrs *a);

/* Mark and if_id, as policies and states both carry them.  An absent
 * attribute leaves its outputs untouched.  The kernel reports a mark
 * attribute when either half is set; an all-zero one means "no mark". */
void mm_xfrm_attrs_get_mark(const struct mm_xfrm_attrs *a, bool *ret_has_mark,
			    uint32_t *ret_mark, uint32_t *ret_mask, uint32_t *ret_if_id);
void mm_xfrm_put_mark(struct nlmsghdr *nlh, bool has_mark, uint32_t mark, uint32_t mask);

/* AF_INET or AF_INET6: the families an SA, a template or a policy may have. */
bool mm_xfrm_family_ok(int family);

/* The bookkeeping of a dump of decoded objects.  An object file embeds it
 * first in its own context, next to its typed callback; its message
 * callback counts a message that fails to decode in bad and skips it. */
struct mm_xfrm_dump {
	mm_nl_reset_fn reset;  /* the caller's, may be NULL */
	void *userdata;        /* the caller's */
	size_t bad;
};
/* Dump with a request of the given type and no payload, one() getting d;
 * a restarted dump zeroes d->bad and calls d->reset.  *ret_bad (may be
 * NULL) gets d->bad on success.  Errors as mm_nl_dump(). */
int mm_xfrm_dump(struct mm_nl *nl, uint16_t type, mm_nl_msg_fn one, struct mm_xfrm_dump *d,
		 size_t *ret_bad, struct mm_nl_result *ret);

#endif
