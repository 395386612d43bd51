/* libFuzzer target for the decoders of what the kernel sends over
 * NETLINK_XFRM: policy and SA dumps and the monitor's events
 * (netlink/xfrm_policy.c, xfrm_state.c, xfrm_monitor.c, xfrm_attr.c,
 * xfrm_sel.c).  No socket: the input is a receive buffer of netlink
 * messages, walked by the monitor's own loop (xfrm_monitor.c's static
 * deliver(), included here), and every message also goes to the policy
 * and SA decoders directly, as a dump's would.
 *
 * Invariants: an event decodes to the same policy or SA as the object
 * decoder makes of the same message; a decoded selector has a family of
 * 0, 4 or 6 and prefix lengths inside it; a decoded policy of family 4 or
 * 6 without a security context encodes (NEWPOLICY) and decodes back to an
 * equal policy with the same identity; a selector read from the kernel's
 * struct converts back and forth unchanged; the monitor's counters add up
 * to the messages it was given. */
#include <linux/netlink.h>

#include "fuzz.h"
#include "netlink/xfrm_monitor.c"

static void check_sel(const struct mm_xfrm_sel *s)
{
	FUZZ_ASSERT(s->family == 0 || s->family == AF_INET || s->family == AF_INET6, "family %d",
		    s->family);
	if (s->family)
		FUZZ_ASSERT(s->src.len <= mm_addr_bits(s->family) &&
			    s->dst.len <= mm_addr_bits(s->family), "lengths %u %u", s->src.len,
			    s->dst.len);
}

static void policy(const struct nlmsghdr *nlh, const struct mm_xfrm_event *ev, int evr)
{
	static char buf[MM_NL_MSG_MAX];
	struct mm_xfrm_policy p, q;
	char text[MM_XFRM_POLICY_STRLEN];
	int r = mm_xfrm_policy_decode(nlh, &p);

	if (evr == 0 && ev->type <= MM_XFRM_EV_POLICY_EXPIRE)
		FUZZ_ASSERT(r == 0 && !memcmp(&p, &ev->policy, sizeof(p)), "event and decoder differ");
	if (r < 0)
		return;
	check_sel(&p.sel);
	FUZZ_ASSERT(p.n_tmpl <= MM_XFRM_TMPL_MAX, "n_tmpl %u", p.n_tmpl);
	(void)mm_xfrm_policy_str(&p, text, sizeof(text));
	(void)mm_xfrm_dir_name(p.dir);
	if (p.has_sec_ctx || mm_xfrm_policy_encode_add(buf, &p, false) < 0)
		return;
	FUZZ_ASSERT(mm_xfrm_policy_decode((struct nlmsghdr *)buf, &q) == 0, "re-encoded refused");
	FUZZ_ASSERT(mm_xfrm_policy_same_id(&p, &q) && mm_xfrm_policy_equal(&p, &q),
		    "re-encoded policy differs");
	FUZZ_ASSERT(q.index == p.index, "index");
	if (mm_xfrm_policy_encode_del(buf, &p) == 0)
		FUZZ_ASSERT(((struct nlmsghdr *)buf)->nlmsg_len <= MM_NL_MSG_MAX, "del too long");
	if (mm_xfrm_policy_encode_del_index(buf, &p) == 0)
		FUZZ_ASSERT(mm_xfrm_policy_has_index(&p), "delete by an index that is none");
}

static void sa(const struct nlmsghdr *nlh, const struct mm_xfrm_event *ev, int evr)
{
	static char buf[MM_NL_MSG_MAX];
	struct mm_xfrm_sa s;
	bool hard = false;
	int r = mm_xfrm_sa_decode(nlh, &s, &hard);

	if (evr == 0 && ev->type >= MM_XFRM_EV_SA_NEW && ev->type <= MM_XFRM_EV_SA_EXPIRE)
		FUZZ_ASSERT(r == 0 && !memcmp(&s, &ev->sa, sizeof(s)) &&
			    (ev->type != MM_XFRM_EV_SA_EXPIRE || hard == ev->hard),
			    "event and decoder differ");
	if (r < 0)
		return;
	FUZZ_ASSERT(s.family == AF_INET || s.family == AF_INET6, "family %d", s.family);
	check_sel(&s.sel);
	(void)mm_xfrm_sa_encode_del(buf, &s);
}

/* The kernel's selector struct from raw bytes, there and back. */
static void selector(const uint8_t *data, size_t size)
{
	struct xfrm_selector k = { 0 }, k2;
	struct mm_xfrm_sel s, s2;
	char text[MM_XFRM_SEL_STRLEN];

	memcpy(&k, data, size < sizeof(k) ? size : sizeof(k));
	if (mm_xfrm_sel_get(&k, &s) < 0)
		return;
	check_sel(&s);
	(void)mm_xfrm_sel_str(&s, text, sizeof(text));
	mm_xfrm_sel_put(&s, &k2);
	FUZZ_ASSERT(mm_xfrm_sel_get(&k2, &s2) == 0 && mm_xfrm_sel_cmp(&s, &s2) == 0,
		    "selector changes on the way back");
}

static int on_event(const struct mm_xfrm_event *ev, void *userdata)
{
	(*(uint64_t *)userdata)++;
	FUZZ_ASSERT(ev->type < MM_XFRM_EV__MAX && strcmp(mm_xfrm_event_name(ev->type), "?"),
		    "type %d", ev->type);
	if (ev->type == MM_XFRM_EV_ACQUIRE) {
		FUZZ_ASSERT(ev->acquire.family == AF_INET || ev->acquire.family == AF_INET6,
			    "acquire family %d", ev->acquire.family);
		check_sel(&ev->acquire.sel);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_xfrm_monitor mon = { .ignore = 0 };
	const struct nlmsghdr *nlh;
	uint64_t delivered = 0, events = 0;
	int count = 0, len;
	/* The kernel's buffers are aligned; so is this copy. */
	void *buf = malloc(size ? size : 1);

	if (size > 1 << 16)
		size = 1 << 16;
	memcpy(buf, data, size);
	selector(data, size);
	FUZZ_ASSERT(deliver(&mon, buf, (int)size, on_event, &delivered, &count) == 0, "deliver");
	FUZZ_ASSERT(delivered == mon.stats.events && (uint64_t)count == delivered,
		    "delivered %llu, counted %llu", (unsigned long long)delivered,
		    (unsigned long long)mon.stats.events);
	len = (int)size;
	for (nlh = buf; mm_nl_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
		struct mm_xfrm_event ev;
		int r = mm_xfrm_event_decode(nlh, &ev);

		if (nlh->nlmsg_type >= XFRM_MSG_BASE && r == 0)
			events++;
		policy(nlh, &ev, r);
		sa(nlh, &ev, r);
	}
	FUZZ_ASSERT(events == delivered, "events %llu delivered %llu",
		    (unsigned long long)events, (unsigned long long)delivered);
	free(buf);
	return 0;
}
