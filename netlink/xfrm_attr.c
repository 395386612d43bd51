#include "xfrm_attr.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <string.h>
#include <sys/socket.h>

/* Smallest payload per attribute type; 0: not checked. */
static const size_t attr_min[XFRMA_MAX + 1] = {
	[XFRMA_POLICY] = sizeof(struct xfrm_userpolicy_info),
	[XFRMA_SA] = sizeof(struct xfrm_usersa_info),
	[XFRMA_MARK] = sizeof(struct xfrm_mark),
	[XFRMA_POLICY_TYPE] = sizeof(struct xfrm_userpolicy_type),
	[XFRMA_IF_ID] = sizeof(uint32_t),
	[XFRMA_SRCADDR] = sizeof(xfrm_address_t),
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	struct mm_xfrm_attrs *a = data;
	uint16_t type = mnl_attr_get_type(attr);
	size_t len = mnl_attr_get_payload_len(attr);

	if (mnl_attr_type_valid(attr, XFRMA_MAX) < 0)
		return MNL_CB_OK;  /* newer than our headers: not needed */
	if (type == XFRMA_TMPL && len % sizeof(struct xfrm_user_tmpl))
		return MNL_CB_ERROR;
	if (len < attr_min[type])
		return MNL_CB_ERROR;
	a->tb[type] = attr;
	return MNL_CB_OK;
}

int mm_xfrm_attrs_parse(const struct nlmsghdr *nlh, size_t hdrlen, struct mm_xfrm_attrs *a)
{
	memset(a, 0, sizeof(*a));
	/* Also for messages that did not come through mnl_nlmsg_ok(): a
	 * length below the header would underflow the payload length. */
	if (nlh->nlmsg_len < NLMSG_HDRLEN || mnl_nlmsg_get_payload_len(nlh) < hdrlen)
		return -EINVAL;
	if (mnl_attr_parse(nlh, hdrlen, attr_cb, a) < 0)
		return -EINVAL;
	return 0;
}

int mm_xfrm_obj_parse(const struct nlmsghdr *nlh, const struct mm_xfrm_obj_msgs *o,
		      void *ret_info, struct mm_xfrm_attrs *a)
{
	uint16_t type = nlh->nlmsg_type;
	size_t hdrlen;
	int r;

	if (type == o->new_type || type == o->upd_type)
		hdrlen = o->info_len;
	else if (type == o->del_type)
		hdrlen = o->id_len;
	else if (type == o->expire_type)
		hdrlen = o->expire_len;
	else
		return -EPROTO;
	r = mm_xfrm_attrs_parse(nlh, hdrlen, a);
	if (r < 0)
		return r;
	if (type == o->del_type) {
		/* The header only says how the object was named. */
		if (!a->tb[o->del_attr])
			return -EINVAL;
		memcpy(ret_info, mnl_attr_get_payload(a->tb[o->del_attr]), o->info_len);
	} else {
		/* The expire structs start with the info, so one copy serves. */
		memcpy(ret_info, mnl_nlmsg_get_payload(nlh), o->info_len);
	}
	return 0;
}

void mm_xfrm_attrs_get_mark(const struct mm_xfrm_attrs *a, bool *ret_has_mark,
			    uint32_t *ret_mark, uint32_t *ret_mask, uint32_t *ret_if_id)
{
	if (a->tb[XFRMA_MARK]) {
		struct xfrm_mark m;

		memcpy(&m, mnl_attr_get_payload(a->tb[XFRMA_MARK]), sizeof(m));
		*ret_has_mark = m.v || m.m;
		*ret_mark = m.v;
		*ret_mask = m.m;
	}
	if (a->tb[XFRMA_IF_ID])
		*ret_if_id = mnl_attr_get_u32(a->tb[XFRMA_IF_ID]);
}

void mm_xfrm_put_mark(struct nlmsghdr *nlh, bool has_mark, uint32_t mark, uint32_t mask)
{
	struct xfrm_mark m = { .v = mark, .m = mask };

	if (has_mark)
		mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
}

bool mm_xfrm_family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

static void dump_reset(void *data)
{
	struct mm_xfrm_dump *d = data;

	d->bad = 0;
	if (d->reset)
		d->reset(d->userdata);
}

int mm_xfrm_dump(struct mm_nl *nl, uint16_t type, mm_nl_msg_fn one, struct mm_xfrm_dump *d,
		 size_t *ret_bad, struct mm_nl_result *ret)
{
	int r;

	/* No payload: the kernel reads a dump request's body as attributes
	 * (SAs: address filter, proto) or starts a policy dump before it
	 * looks at it; a zeroed body would only earn a "bytes leftover"
	 * warning in the kernel log. */
	r = mm_nl_dump(nl, type, NULL, 0, one, dump_reset, d, ret);
	if (r >= 0 && ret_bad)
		*ret_bad = d->bad;
	return r;
}
