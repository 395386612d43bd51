#include "xfrm_policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <stdio.h>
#include <string.h>

#include "xfrm_attr.h"

static int check(const struct mm_xfrm_policy *p)
{
	if (!mm_xfrm_family_ok(p->sel.family) || p->dir > XFRM_POLICY_FWD)
		return -EINVAL;
	if (p->sel.src.len > mm_addr_bits(p->sel.family) ||
	    p->sel.dst.len > mm_addr_bits(p->sel.family))
		return -EINVAL;
	if (p->n_tmpl > MM_XFRM_TMPL_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < p->n_tmpl; i++)
		if (p->tmpl[i].family && !mm_xfrm_family_ok(p->tmpl[i].family))
			return -EINVAL;
	return 0;
}

/* Attributes that belong to the identity, shared by NEW/UPD/DEL/GET. */
static void put_id_attrs(struct nlmsghdr *nlh, const struct mm_xfrm_policy *p)
{
	if (p->type != XFRM_POLICY_TYPE_MAIN) {
		struct xfrm_userpolicy_type t = { .type = p->type };

		mnl_attr_put(nlh, XFRMA_POLICY_TYPE, sizeof(t), &t);
	}
	mm_xfrm_put_mark(nlh, p->has_mark, p->mark, p->mark_mask);
	if (p->if_id)
		mnl_attr_put_u32(nlh, XFRMA_IF_ID, p->if_id);
}

int mm_xfrm_policy_encode_add(void *buf, const struct mm_xfrm_policy *p, bool update)
{
	struct xfrm_user_tmpl ut[MM_XFRM_TMPL_MAX];
	struct xfrm_userpolicy_info info = { 0 };
	struct nlmsghdr *nlh;
	int r = check(p);

	if (r < 0)
		return r;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY;
	nlh->nlmsg_flags = update ? NLM_F_CREATE | NLM_F_REPLACE : NLM_F_CREATE | NLM_F_EXCL;
	mm_xfrm_sel_put(&p->sel, &info.sel);
	/* No byte or packet limits, no expiry: what ip(8) sends by default,
	 * so policies look the same whoever installed them. */
	info.lft.soft_byte_limit = XFRM_INF;
	info.lft.hard_byte_limit = XFRM_INF;
	info.lft.soft_packet_limit = XFRM_INF;
	info.lft.hard_packet_limit = XFRM_INF;
	info.priority = p->priority;
	info.index = p->index;
	info.dir = p->dir;
	info.action = p->action;
	info.flags = p->flags;
	info.share = p->share;
	/* Copied, not written in place: in a batch a message is only 4-byte
	 * aligned and this header holds 64-bit fields. */
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(info)), &info, sizeof(info));
	if (p->n_tmpl) {
		memset(ut, 0, sizeof(ut));
		for (unsigned i = 0; i < p->n_tmpl; i++) {
			const struct mm_xfrm_tmpl *t = &p->tmpl[i];

			mm_xfrm_addr_put(&t->dst, &ut[i].id.daddr);
			ut[i].id.spi = htonl(t->spi);
			ut[i].id.proto = t->proto;
			ut[i].family = t->family;
			mm_xfrm_addr_put(&t->src, &ut[i].saddr);
			ut[i].reqid = t->reqid;
			ut[i].mode = t->mode;
			ut[i].share = t->share;
			ut[i].optional = t->optional;
			ut[i].aalgos = t->aalgos;
			ut[i].ealgos = t->ealgos;
			ut[i].calgos = t->calgos;
		}
		mnl_attr_put(nlh, XFRMA_TMPL, sizeof(ut[0]) * p->n_tmpl, ut);
	}
	put_id_attrs(nlh, p);
	return 0;
}

static int encode_id(void *buf, const struct mm_xfrm_policy *p, uint16_t type, uint32_t index)
{
	struct xfrm_userpolicy_id id = { 0 };
	struct nlmsghdr *nlh;

	if (!mm_xfrm_family_ok(p->sel.family) || p->dir > XFRM_POLICY_FWD)
		return -EINVAL;
	/* The context is part of the identity and we do not keep its text:
	 * such a policy cannot be named, so it is not ours to touch. */
	if (p->has_sec_ctx)
		return -EOPNOTSUPP;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	mm_xfrm_sel_put(&p->sel, &id.sel);
	id.index = index;
	id.dir = p->dir;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(id)), &id, sizeof(id));
	put_id_attrs(nlh, p);
	return 0;
}

int mm_xfrm_policy_encode_del(void *buf, const struct mm_xfrm_policy *p)
{
	return encode_id(buf, p, XFRM_MSG_DELPOLICY, 0);
}

bool mm_xfrm_policy_has_index(const struct mm_xfrm_policy *p)
{
	/* The kernel's xfrm_policy_id2dir(): index & 7. */
	return p->index != 0 && (p->index & 7) == p->dir;
}

int mm_xfrm_policy_encode_del_index(void *buf, const struct mm_xfrm_policy *p)
{
	if (!mm_xfrm_policy_has_index(p))
		return -EINVAL;
	/* Type, mark and if_id go out as attributes, as for a delete by
	 * selector: xfrm_policy_byid() compares them, which at least keeps
	 * the request off policies of another type, mark or interface. */
	return encode_id(buf, p, XFRM_MSG_DELPOLICY, p->index);
}

int mm_xfrm_policy_encode_get(void *buf, const struct mm_xfrm_policy *p)
{
	return encode_id(buf, p, XFRM_MSG_GETPOLICY, 0);
}

static int get_tmpls(const struct nlattr *attr, struct mm_xfrm_policy *p)
{
	struct xfrm_user_tmpl ut;
	size_t n;

	if (!attr)
		return 0;
	n = mnl_attr_get_payload_len(attr) / sizeof(ut);
	if (n > MM_XFRM_TMPL_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		struct mm_xfrm_tmpl *t = &p->tmpl[i];

		/* memcpy: attribute payloads are only 4-byte aligned. */
		memcpy(&ut, (const char *)mnl_attr_get_payload(attr) + i * sizeof(ut), sizeof(ut));
		if (ut.family && !mm_xfrm_family_ok(ut.family))
			return -EINVAL;
		t->family = (uint8_t)ut.family;
		mm_xfrm_addr_get(ut.family, &ut.saddr, &t->src);
		mm_xfrm_addr_get(ut.family, &ut.id.daddr, &t->dst);
		t->spi = ntohl(ut.id.spi);
		t->proto = ut.id.proto;
		t->mode = ut.mode;
		t->share = ut.share;
		t->optional = ut.optional;
		t->reqid = ut.reqid;
		t->aalgos = ut.aalgos;
		t->ealgos = ut.ealgos;
		t->calgos = ut.calgos;
	}
	p->n_tmpl = (uint8_t)n;
	return 0;
}

static int get_info(const struct xfrm_userpolicy_info *info, struct mm_xfrm_policy *p)
{
	int r = mm_xfrm_sel_get(&info->sel, &p->sel);

	if (r < 0)
		return r;
	p->dir = info->dir;
	p->action = info->action;
	p->flags = info->flags;
	p->share = info->share;
	p->priority = info->priority;
	p->index = info->index;
	p->add_time = info->curlft.add_time;
	p->use_time = info->curlft.use_time;
	return 0;
}

static const struct mm_xfrm_obj_msgs policy_msgs = {
	.new_type = XFRM_MSG_NEWPOLICY,
	.upd_type = XFRM_MSG_UPDPOLICY,
	.del_type = XFRM_MSG_DELPOLICY,
	.expire_type = XFRM_MSG_POLEXPIRE,
	.info_len = sizeof(struct xfrm_userpolicy_info),
	.id_len = sizeof(struct xfrm_userpolicy_id),
	.expire_len = sizeof(struct xfrm_user_polexpire),
	.del_attr = XFRMA_POLICY,
};

int mm_xfrm_policy_decode(const struct nlmsghdr *nlh, struct mm_xfrm_policy *ret)
{
	struct xfrm_userpolicy_info info;
	struct mm_xfrm_policy p = { 0 };
	struct mm_xfrm_attrs a;
	int r;

	r = mm_xfrm_obj_parse(nlh, &policy_msgs, &info, &a);
	if (r < 0)
		return r;
	r = get_info(&info, &p);
	if (r < 0)
		return r;
	r = get_tmpls(a.tb[XFRMA_TMPL], &p);
	if (r < 0)
		return r;
	if (a.tb[XFRMA_POLICY_TYPE]) {
		struct xfrm_userpolicy_type t;

		memcpy(&t, mnl_attr_get_payload(a.tb[XFRMA_POLICY_TYPE]), sizeof(t));
		p.type = t.type;
	}
	mm_xfrm_attrs_get_mark(&a, &p.has_mark, &p.mark, &p.mark_mask, &p.if_id);
	p.has_sec_ctx = a.tb[XFRMA_SEC_CTX] != NULL;
	*ret = p;
	return 0;
}

struct dump_ctx {
	struct mm_xfrm_dump base;  /* first: it is the dump's userdata */
	mm_xfrm_policy_fn each;
};

static int dump_one(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *c = data;
	struct mm_xfrm_policy p;

	if (mm_xfrm_policy_decode(nlh, &p) < 0) {
		c->base.bad++;
		return 0;
	}
	return c->each(&p, c->base.userdata);
}

int mm_xfrm_policy_dump(struct mm_nl *nl, mm_xfrm_policy_fn each, mm_nl_reset_fn reset,
			void *userdata, size_t *ret_bad, struct mm_nl_result *ret)
{
	struct dump_ctx c = { .base = { .reset = reset, .userdata = userdata }, .each = each };

	return mm_xfrm_dump(nl, XFRM_MSG_GETPOLICY, dump_one, &c.base, ret_bad, ret);
}

int mm_xfrm_policy_add(struct mm_nl *nl, const struct mm_xfrm_policy *p, bool update,
		       struct mm_nl_result *ret)
{
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	int r = mm_xfrm_policy_encode_add(buf, p, update);

	if (r < 0)
		return r;
	return mm_nl_request(nl, buf, NULL, NULL, ret);
}

int mm_xfrm_policy_del(struct mm_nl *nl, const struct mm_xfrm_policy *p,
		       struct mm_nl_result *ret)
{
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	int r = mm_xfrm_policy_encode_del(buf, p);

	if (r < 0)
		return r;
	return mm_nl_request(nl, buf, NULL, NULL, ret);
}

int mm_xfrm_policy_del_index(struct mm_nl *nl, const struct mm_xfrm_policy *p,
			     struct mm_nl_result *ret)
{
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	int r = mm_xfrm_policy_encode_del_index(buf, p);

	if (r < 0)
		return r;
	return mm_nl_request(nl, buf, NULL, NULL, ret);
}

struct get_ctx {
	struct mm_xfrm_policy p;
	int r;
};

static int get_reply(const struct nlmsghdr *nlh, void *data)
{
	struct get_ctx *g = data;

	g->r = mm_xfrm_policy_decode(nlh, &g->p);
	return 0;
}

int mm_xfrm_policy_get(struct mm_nl *nl, const struct mm_xfrm_policy *p,
		       struct mm_xfrm_policy *ret_policy, struct mm_nl_result *ret)
{
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	struct get_ctx g = { .r = -ENOENT };
	int r = mm_xfrm_policy_encode_get(buf, p);

	if (r < 0)
		return r;
	r = mm_nl_request(nl, buf, get_reply, &g, ret);
	if (r < 0)
		return r;
	if (g.r < 0)
		return g.r;
	*ret_policy = g.p;
	return 0;
}

bool mm_xfrm_policy_same_id(const struct mm_xfrm_policy *a, const struct mm_xfrm_policy *b)
{
	return a->dir == b->dir && a->type == b->type &&
	       mm_xfrm_sel_cmp(&a->sel, &b->sel) == 0 &&
	       a->has_mark == b->has_mark &&
	       (!a->has_mark || (a->mark == b->mark && a->mark_mask == b->mark_mask)) &&
	       a->if_id == b->if_id && a->has_sec_ctx == b->has_sec_ctx;
}

static bool tmpl_equal(const struct mm_xfrm_tmpl *a, const struct mm_xfrm_tmpl *b)
{
	return a->family == b->family && mm_addr_cmp(&a->src, &b->src) == 0 &&
	       mm_addr_cmp(&a->dst, &b->dst) == 0 && a->spi == b->spi &&
	       a->proto == b->proto && a->mode == b->mode && a->share == b->share &&
	       a->optional == b->optional && a->reqid == b->reqid &&
	       a->aalgos == b->aalgos && a->ealgos == b->ealgos && a->calgos == b->calgos;
}

bool mm_xfrm_policy_equal(const struct mm_xfrm_policy *a, const struct mm_xfrm_policy *b)
{
	if (!mm_xfrm_policy_same_id(a, b))
		return false;
	if (a->priority != b->priority || a->action != b->action || a->flags != b->flags ||
	    a->share != b->share || a->n_tmpl != b->n_tmpl)
		return false;
	for (unsigned i = 0; i < a->n_tmpl; i++)
		if (!tmpl_equal(&a->tmpl[i], &b->tmpl[i]))
			return false;
	return true;
}

static const char *const dir_names[] = {
	[XFRM_POLICY_IN] = "in",
	[XFRM_POLICY_OUT] = "out",
	[XFRM_POLICY_FWD] = "fwd",
};

const char *mm_xfrm_dir_name(uint8_t dir)
{
	return dir <= XFRM_POLICY_FWD ? dir_names[dir] : "?";
}

const char *mm_xfrm_policy_str(const struct mm_xfrm_policy *p, char *buf, size_t len)
{
	char sel[MM_XFRM_SEL_STRLEN];

	snprintf(buf, len, "%s %s", mm_xfrm_dir_name(p->dir),
		 mm_xfrm_sel_str(&p->sel, sel, sizeof(sel)));
	return buf;
}
