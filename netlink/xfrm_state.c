#include "xfrm_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <stdlib.h>
#include <string.h>

#include "xfrm_attr.h"
#include "policy/grow.h"

static const struct mm_xfrm_obj_msgs sa_msgs = {
	.new_type = XFRM_MSG_NEWSA,
	.upd_type = XFRM_MSG_UPDSA,
	.del_type = XFRM_MSG_DELSA,
	.expire_type = XFRM_MSG_EXPIRE,
	.info_len = sizeof(struct xfrm_usersa_info),
	.id_len = sizeof(struct xfrm_usersa_id),
	.expire_len = sizeof(struct xfrm_user_expire),
	.del_attr = XFRMA_SA,
};

int mm_xfrm_sa_decode(const struct nlmsghdr *nlh, struct mm_xfrm_sa *ret, bool *ret_hard)
{
	struct xfrm_usersa_info info;
	struct mm_xfrm_sa sa = { 0 };
	struct mm_xfrm_attrs a;
	bool hard = false;
	int r;

	r = mm_xfrm_obj_parse(nlh, &sa_msgs, &info, &a);
	if (r < 0)
		return r;
	if (nlh->nlmsg_type == XFRM_MSG_EXPIRE) {
		struct xfrm_user_expire e;

		memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
		hard = e.hard;
	}
	if (!mm_xfrm_family_ok(info.family))
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
	sa.replay_window = info.stats.replay_window;
	sa.replay = info.stats.replay;
	sa.integrity_failed = info.stats.integrity_failed;
	mm_xfrm_attrs_get_mark(&a, &sa.has_mark, &sa.mark, &sa.mark_mask, &sa.if_id);
	*ret = sa;
	if (ret_hard)
		*ret_hard = hard;
	return 0;
}

struct dump_ctx {
	struct mm_xfrm_dump base;  /* first: it is the dump's userdata */
	mm_xfrm_sa_fn each;
};

static int dump_one(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *c = data;
	struct mm_xfrm_sa sa;

	if (mm_xfrm_sa_decode(nlh, &sa, NULL) < 0) {
		c->base.bad++;
		return 0;
	}
	return c->each(&sa, c->base.userdata);
}

int mm_xfrm_sa_dump(struct mm_nl *nl, mm_xfrm_sa_fn each, mm_nl_reset_fn reset, void *userdata,
		    size_t *ret_bad, struct mm_nl_result *ret)
{
	struct dump_ctx c = { .base = { .reset = reset, .userdata = userdata }, .each = each };

	return mm_xfrm_dump(nl, XFRM_MSG_GETSA, dump_one, &c.base, ret_bad, ret);
}

int mm_xfrm_sa_encode_del(void *buf, const struct mm_xfrm_sa *sa)
{
	struct xfrm_usersa_id id = { 0 };
	struct nlmsghdr *nlh;

	if (!mm_xfrm_family_ok(sa->family))
		return -EINVAL;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = XFRM_MSG_DELSA;
	mm_xfrm_addr_put(&sa->dst, &id.daddr);
	id.spi = htonl(sa->spi);
	id.family = sa->family;
	id.proto = sa->proto;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(id)), &id, sizeof(id));
	mm_xfrm_put_mark(nlh, sa->has_mark, sa->mark, sa->mark_mask);
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
	if (mm_grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v)) < 0)
		return -ENOMEM;
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
