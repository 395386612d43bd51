#include "xfrm_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <stdlib.h>
#include <string.h>

struct attrs {
	const struct nlattr *tb[XFRMA_MAX + 1];
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	struct attrs *a = data;
	uint16_t type = mnl_attr_get_type(attr);
	size_t len = mnl_attr_get_payload_len(attr);
	size_t min = 0;

	if (mnl_attr_type_valid(attr, XFRMA_MAX) < 0)
		return MNL_CB_OK;  /* newer than our headers: not needed */
	switch (type) {
	case XFRMA_SA:
		min = sizeof(struct xfrm_usersa_info);
		break;
	case XFRMA_MARK:
		min = sizeof(struct xfrm_mark);
		break;
	case XFRMA_IF_ID:
		min = sizeof(uint32_t);
		break;
	default:
		break;
	}
	if (len < min)
		return MNL_CB_ERROR;
	a->tb[type] = attr;
	return MNL_CB_OK;
}

static bool family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

int mm_xfrm_sa_decode(const struct nlmsghdr *nlh, struct mm_xfrm_sa *ret, bool *ret_hard)
{
	struct xfrm_usersa_info info;
	struct mm_xfrm_sa sa = { 0 };
	struct attrs a = { { 0 } };
	bool hard = false;
	size_t hdrlen;
	int r;

	switch (nlh->nlmsg_type) {
	case XFRM_MSG_NEWSA:
	case XFRM_MSG_UPDSA:
		hdrlen = sizeof(struct xfrm_usersa_info);
		break;
	case XFRM_MSG_DELSA:
		hdrlen = sizeof(struct xfrm_usersa_id);
		break;
	case XFRM_MSG_EXPIRE:
		hdrlen = sizeof(struct xfrm_user_expire);
		break;
	default:
		return -EPROTO;
	}
	if (nlh->nlmsg_len < NLMSG_HDRLEN || mnl_nlmsg_get_payload_len(nlh) < hdrlen)
		return -EINVAL;
	if (mnl_attr_parse(nlh, hdrlen, attr_cb, &a) < 0)
		return -EINVAL;
	if (nlh->nlmsg_type == XFRM_MSG_DELSA) {
		if (!a.tb[XFRMA_SA])
			return -EINVAL;
		memcpy(&info, mnl_attr_get_payload(a.tb[XFRMA_SA]), sizeof(info));
	} else {
		/* struct xfrm_user_expire starts with the SA. */
		memcpy(&info, mnl_nlmsg_get_payload(nlh), sizeof(info));
		if (nlh->nlmsg_type == XFRM_MSG_EXPIRE) {
			struct xfrm_user_expire e;

			memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
			hard = e.hard;
		}
	}
	if (!family_ok(info.family))
		return -EINVAL;
	r = mm_xfrm_sel_get(&info.sel, &sa.sel);
	if (r < 0)
		return r;
	sa.family = (uint8_t)info.family;
	mm_xfrm_addr_get(info.family, &info.saddr, &sa.src);
	mm_xfrm_addr_get(info.family, &info.id.daddr, &sa.dst);
	sa.spi = ntohl(info.id.spi);
	sa.proto = info.id.proto;
	sa.mode = info.mode;
	sa.flags = info.flags;
	sa.reqid = info.reqid;
	sa.bytes = info.curlft.bytes;
	sa.packets = info.curlft.packets;
	sa.add_time = info.curlft.add_time;
	sa.use_time = info.curlft.use_time;
	if (a.tb[XFRMA_MARK]) {
		struct xfrm_mark m;

		memcpy(&m, mnl_attr_get_payload(a.tb[XFRMA_MARK]), sizeof(m));
		sa.has_mark = m.v || m.m;
		sa.mark = m.v;
		sa.mark_mask = m.m;
	}
	if (a.tb[XFRMA_IF_ID])
		sa.if_id = mnl_attr_get_u32(a.tb[XFRMA_IF_ID]);
	*ret = sa;
	if (ret_hard)
		*ret_hard = hard;
	return 0;
}

struct dump_ctx {
	mm_xfrm_sa_fn each;
	mm_nl_reset_fn reset;
	void *userdata;
	size_t bad;
};

static int dump_one(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *c = data;
	struct mm_xfrm_sa sa;

	if (mm_xfrm_sa_decode(nlh, &sa, NULL) < 0) {
		c->bad++;
		return 0;
	}
	return c->each(&sa, c->userdata);
}

static void dump_reset(void *data)
{
	struct dump_ctx *c = data;

	c->bad = 0;
	if (c->reset)
		c->reset(c->userdata);
}

int mm_xfrm_sa_dump(struct mm_nl *nl, mm_xfrm_sa_fn each, mm_nl_reset_fn reset, void *userdata,
		    size_t *ret_bad, struct mm_nl_result *ret)
{
	struct dump_ctx c = { .each = each, .reset = reset, .userdata = userdata };
	int r;

	/* No payload: the kernel reads a dump request's body as attributes
	 * (address filter, proto), so any fixed header would be noise. */
	r = mm_nl_dump(nl, XFRM_MSG_GETSA, NULL, 0, dump_one, dump_reset, &c, ret);
	if (r >= 0 && ret_bad)
		*ret_bad = c.bad;
	return r;
}

int mm_xfrm_sa_encode_del(void *buf, const struct mm_xfrm_sa *sa)
{
	struct xfrm_usersa_id id = { 0 };
	struct nlmsghdr *nlh;

	if (!family_ok(sa->family))
		return -EINVAL;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = XFRM_MSG_DELSA;
	mm_xfrm_addr_put(&sa->dst, &id.daddr);
	id.spi = htonl(sa->spi);
	id.family = sa->family;
	id.proto = sa->proto;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(id)), &id, sizeof(id));
	if (sa->has_mark) {
		struct xfrm_mark m = { .v = sa->mark, .m = sa->mark_mask };

		mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
	}
	/* For protocols without an SPI the kernel looks the SA up by
	 * addresses; the source does no harm for ESP. */
	{
		xfrm_address_t src;

		mm_xfrm_addr_put(&sa->src, &src);
		mnl_attr_put(nlh, XFRMA_SRCADDR, sizeof(src), &src);
	}
	return 0;
}

int mm_xfrm_sa_del(struct mm_nl *nl, const struct mm_xfrm_sa *sa, struct mm_nl_result *ret)
{
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	int r = mm_xfrm_sa_encode_del(buf, sa);

	if (r < 0)
		return r;
	return mm_nl_request(nl, buf, NULL, NULL, ret);
}

struct collect {
	mm_xfrm_sa_match_fn match;
	void *userdata;
	struct mm_xfrm_sa *v;
	size_t n, cap;
	int error;
	struct mm_nl_result first;
	size_t deleted;
};

static int collect_one(const struct mm_xfrm_sa *sa, void *data)
{
	struct collect *c = data;

	if (!c->match(sa, c->userdata))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct mm_xfrm_sa *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = *sa;
	return 0;
}

static void collect_reset(void *data)
{
	((struct collect *)data)->n = 0;
}

static int encode_del(void *buf, size_t i, void *data)
{
	return mm_xfrm_sa_encode_del(buf, &((struct collect *)data)->v[i]);
}

static void del_done(size_t i, const struct mm_nl_result *res, void *data)
{
	struct collect *c = data;

	(void)i;
	if (res->error == 0 || res->error == -ESRCH || res->error == -ENOENT) {
		c->deleted++;
		return;
	}
	if (!c->error) {
		c->error = res->error;
		c->first = *res;
	}
}

int mm_xfrm_sa_delete_if(struct mm_nl *nl, mm_xfrm_sa_match_fn match, void *userdata,
			 size_t *ret_deleted, struct mm_nl_result *ret)
{
	struct collect c = { .match = match, .userdata = userdata };
	int r;

	r = mm_xfrm_sa_dump(nl, collect_one, collect_reset, &c, NULL, ret);
	if (r < 0)
		goto out;
	r = mm_nl_batch(nl, c.n, encode_del, del_done, NULL, &c);
	if (r >= 0 && c.error)
		r = c.error;
	if (r < 0) {
		if (ret)
			*ret = c.error ? c.first : (struct mm_nl_result){ .error = r };
		goto out;
	}
	if (ret_deleted)
		*ret_deleted = c.deleted;
	if (ret)
		*ret = (struct mm_nl_result){ 0 };
out:
	free(c.v);
	return r < 0 ? r : 0;
}

static bool match_reqid(const struct mm_xfrm_sa *sa, void *data)
{
	return sa->reqid == *(const uint32_t *)data;
}

int mm_xfrm_sa_delete_reqid(struct mm_nl *nl, uint32_t reqid, size_t *ret_deleted,
			    struct mm_nl_result *ret)
{
	return mm_xfrm_sa_delete_if(nl, match_reqid, &reqid, ret_deleted, ret);
}
