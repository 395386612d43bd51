/* netns tests of netlink/: the request socket, policies, states, monitor.
 *
 * Each test unshares a network namespace of its own first (checked
 * fixture), so only throw-away XFRM state is touched.  This kernel has no
 * ESP, so SAs cannot be created: the state code is tested against an empty
 * SAD and with hand-built netlink messages (fixtures) for the decoder. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netlink/nl.h"
#include "netlink/xfrm_monitor.h"
#include "netlink/xfrm_policy.h"
#include "netlink/xfrm_state.h"

static struct mm_nl *nl;

static void setup(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		ck_abort_msg("unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
	ck_assert_int_eq(mm_nl_open(&nl), 0);
}

static void teardown(void)
{
	mm_nl_free(nl);
	nl = NULL;
}

static void policy(struct mm_xfrm_policy *p, const char *src, const char *dst, uint8_t dir,
		   uint32_t reqid)
{
	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(mm_prefix_parse(src, &p->sel.src, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse(dst, &p->sel.dst, "", NULL), 0);
	p->sel.family = p->sel.src.addr.family;
	p->sel.user = 4242;
	p->dir = dir;
	p->priority = 1000;
	p->n_tmpl = 1;
	p->tmpl[0].family = AF_INET;
	ck_assert_int_eq(mm_addr_parse("192.0.2.1", &p->tmpl[0].src, "", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.2", &p->tmpl[0].dst, "", NULL), 0);
	p->tmpl[0].proto = IPPROTO_ESP;
	p->tmpl[0].mode = XFRM_MODE_TUNNEL;
	p->tmpl[0].reqid = reqid;
	p->tmpl[0].aalgos = p->tmpl[0].ealgos = p->tmpl[0].calgos = ~0u;
}

static int count_cb(const struct mm_xfrm_policy *p, void *data)
{
	(void)p;
	(*(size_t *)data)++;
	return 0;
}

static size_t kernel_count(void)
{
	size_t n = 0;

	ck_assert_int_eq(mm_xfrm_policy_dump(nl, count_cb, NULL, &n, NULL, NULL), 0);
	return n;
}

START_TEST(test_probe_and_capability)
{
	int status;
	pid_t pid;

	ck_assert_int_eq(mm_nl_probe(nl), 0);
	ck_assert_int_eq(mm_nl_have_net_admin(), 1);
	/* Without CAP_NET_ADMIN the probe says -EPERM, plainly. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct d[2];
		struct mm_nl *mine;

		if (syscall(SYS_capget, &h, d) < 0)
			_exit(10);
		d[0].effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
		if (syscall(SYS_capset, &h, d) < 0)
			_exit(11);
		if (mm_nl_have_net_admin() != 0)
			_exit(12);
		if (mm_nl_open(&mine) < 0)
			_exit(13);
		_exit(mm_nl_probe(mine) == -EPERM ? 0 : 14);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ---- batches ---- */

struct bctx {
	struct mm_xfrm_policy *p;
	int *kind;   /* 0 add, 1 del, 2 encoder refuses */
	struct mm_nl_result *res;
	size_t done_calls;
	int pauses;
};

static int benc(void *buf, size_t i, void *data)
{
	struct bctx *c = data;

	switch (c->kind[i]) {
	case 0:
		return mm_xfrm_policy_encode_add(buf, &c->p[i], false);
	case 1:
		return mm_xfrm_policy_encode_del(buf, &c->p[i]);
	default:
		return -EINVAL;
	}
}

static void bdone(size_t i, const struct mm_nl_result *res, void *data)
{
	struct bctx *c = data;

	ck_assert_uint_eq(i, c->done_calls);  /* in order, once each */
	c->res[i] = *res;
	c->done_calls++;
}

static void bpause(void *data)
{
	((struct bctx *)data)->pauses++;
}

START_TEST(test_batch_results_in_order)
{
	struct mm_xfrm_policy p[6];
	int kind[6] = { 0, 0, 0, 2, 0, 1 };
	struct mm_nl_result res[6];
	struct bctx c = { p, kind, res, 0, 0 };

	policy(&p[0], "10.0.0.0/24", "10.1.0.0/24", XFRM_POLICY_OUT, 1);
	p[1] = p[0];  /* the same identity again: -EEXIST */
	policy(&p[2], "10.0.1.0/24", "10.1.0.0/24", XFRM_POLICY_OUT, 1);
	p[2].tmpl[0].family = AF_INET6;  /* transport-like family change in tunnel: refused */
	p[2].tmpl[0].mode = XFRM_MODE_TRANSPORT;
	policy(&p[3], "10.0.2.0/24", "10.1.0.0/24", XFRM_POLICY_OUT, 1);
	policy(&p[4], "10.0.3.0/24", "10.1.0.0/24", XFRM_POLICY_IN, 1);
	policy(&p[5], "10.0.9.0/24", "10.1.0.0/24", XFRM_POLICY_OUT, 1);  /* not there */

	ck_assert_int_eq(mm_nl_batch(nl, 6, benc, bdone, bpause, &c), 4);
	ck_assert_uint_eq(c.done_calls, 6);
	ck_assert_int_eq(c.pauses, 0);
	ck_assert_int_eq(res[0].error, 0);
	ck_assert_int_eq(res[1].error, -EEXIST);
	ck_assert_int_eq(res[2].error, -EINVAL);
	ck_assert_msg(res[2].extack[0], "no extended ACK text for a refused template");
	ck_assert_int_eq(res[3].error, -EINVAL);
	ck_assert_str_eq(res[3].extack, "");
	ck_assert_int_eq(res[4].error, 0);
	ck_assert_int_eq(res[5].error, -ENOENT);
	ck_assert_uint_eq(kernel_count(), 2);
}
END_TEST

START_TEST(test_batch_many_sends)
{
	enum { N = 3 * MM_NL_BATCH_MAX + 17 };
	struct mm_xfrm_policy *p = calloc(N, sizeof(*p));
	struct mm_nl_result *res = calloc(N, sizeof(*res));
	int *kind = calloc(N, sizeof(*kind));
	struct bctx c = { p, kind, res, 0, 0 };

	for (int i = 0; i < N; i++) {
		char s[32];

		snprintf(s, sizeof(s), "10.%d.%d.0/24", i / 256, i % 256);
		policy(&p[i], s, "172.16.0.0/12", XFRM_POLICY_OUT, 1 + i);
	}
	ck_assert_int_eq(mm_nl_batch(nl, N, benc, bdone, bpause, &c), 0);
	ck_assert_uint_eq(c.done_calls, N);
	ck_assert_int_eq(c.pauses, 3);
	ck_assert_uint_eq(kernel_count(), N);
	/* And delete them all again, by identity. */
	for (int i = 0; i < N; i++)
		kind[i] = 1;
	c.done_calls = 0;
	ck_assert_int_eq(mm_nl_batch(nl, N, benc, bdone, NULL, &c), 0);
	ck_assert_uint_eq(kernel_count(), 0);
	free(p);
	free(res);
	free(kind);
}
END_TEST

/* ---- policies ---- */

static int find_cb(const struct mm_xfrm_policy *p, void *data)
{
	struct mm_xfrm_policy *want = data;

	if (mm_xfrm_policy_same_id(p, want)) {
		*want = *p;
		return -EEXIST;  /* found: stop the dump */
	}
	return 0;
}

START_TEST(test_policy_roundtrip)
{
	struct mm_xfrm_policy p, got, dumped;
	struct mm_nl_result res;
	char line[256];
	FILE *f;

	/* IPv6 inside IPv4, two templates, a mark and an if_id. */
	policy(&p, "2001:db8:1::/64", "2001:db8:2::/48", XFRM_POLICY_FWD, 77);
	p.n_tmpl = 2;
	p.tmpl[1] = p.tmpl[0];
	p.tmpl[1].reqid = 78;
	p.tmpl[1].optional = true;
	p.has_mark = true;
	p.mark = 0x5;
	p.mark_mask = 0xff;
	p.if_id = 7;
	p.priority = 4321;
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_get(nl, &p, &got, &res), 0);
	ck_assert(mm_xfrm_policy_equal(&got, &p));
	ck_assert_uint_ne(got.index, 0);
	ck_assert_uint_ne(got.add_time, 0);
	dumped = p;
	ck_assert_int_eq(mm_xfrm_policy_dump(nl, find_cb, NULL, &dumped, NULL, NULL), -EEXIST);
	ck_assert(mm_xfrm_policy_equal(&dumped, &p));
	ck_assert_uint_eq(dumped.index, got.index);

	/* iproute2 agrees on what the kernel holds. */
	f = popen("ip -s xfrm policy", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	pclose(f);
	ck_assert_str_eq(line, "src 2001:db8:1::/64 dst 2001:db8:2::/48 uid 4242\n");

	/* Update keeps the index; delete by identity; then nothing. */
	p.priority = 4000;
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, true, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_get(nl, &p, &got, &res), 0);
	ck_assert_uint_eq(got.priority, 4000);
	ck_assert_uint_eq(got.index, dumped.index);
	ck_assert_int_eq(mm_xfrm_policy_del(nl, &p, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_get(nl, &p, &got, &res), -ENOENT);
	ck_assert_int_eq(mm_xfrm_policy_del(nl, &p, &res), -ENOENT);
}
END_TEST

/* ---- states ---- */

static int sa_cb(const struct mm_xfrm_sa *sa, void *data)
{
	(void)sa;
	(*(size_t *)data)++;
	return 0;
}

START_TEST(test_state_empty_sad)
{
	struct mm_nl_result res;
	struct mm_xfrm_sa sa = { 0 };
	size_t n = 0, deleted = 99;

	ck_assert_int_eq(mm_xfrm_sa_dump(nl, sa_cb, NULL, &n, NULL, &res), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mm_xfrm_sa_delete_reqid(nl, 1234, &deleted, &res), 0);
	ck_assert_uint_eq(deleted, 0);
	sa.family = AF_INET;
	ck_assert_int_eq(mm_addr_parse("192.0.2.2", &sa.dst, "", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.1", &sa.src, "", NULL), 0);
	sa.spi = 0x1234;
	sa.proto = IPPROTO_ESP;
	ck_assert_int_eq(mm_xfrm_sa_del(nl, &sa, &res), -ESRCH);
}
END_TEST

/* A NEWSA as the kernel sends it, built by hand. */
static size_t sa_fixture(char *buf, uint16_t type)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_usersa_info info = { 0 };
	struct xfrm_mark m = { 0x10, 0xf0 };

	info.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &info.saddr);
	inet_pton(AF_INET6, "2001:db8::2", &info.id.daddr);
	info.id.spi = htonl(0xc0ffee);
	info.id.proto = IPPROTO_ESP;
	info.reqid = 1835859970;
	info.mode = XFRM_MODE_TUNNEL;
	info.sel.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.0", &info.sel.saddr);
	info.sel.prefixlen_s = 8;
	info.curlft.bytes = 1000;
	info.curlft.add_time = 1700000000;
	nlh->nlmsg_type = type;
	if (type == XFRM_MSG_DELSA) {
		struct xfrm_usersa_id id = { .daddr = info.id.daddr, .spi = info.id.spi,
					     .family = AF_INET6, .proto = IPPROTO_ESP };

		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(id)), &id, sizeof(id));
		mnl_attr_put(nlh, XFRMA_SA, sizeof(info), &info);
	} else if (type == XFRM_MSG_EXPIRE) {
		struct xfrm_user_expire e = { .state = info, .hard = 1 };

		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(e)), &e, sizeof(e));
	} else {
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(info)), &info, sizeof(info));
	}
	mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
	/* An attribute newer than our headers: skipped, not an error. */
	mnl_attr_put_u32(nlh, XFRMA_MAX + 5, 1);
	return nlh->nlmsg_len;
}

START_TEST(test_state_decode_fixtures)
{
	static const uint16_t types[] = { XFRM_MSG_NEWSA, XFRM_MSG_UPDSA, XFRM_MSG_DELSA,
					  XFRM_MSG_EXPIRE };
	char buf[1024] __attribute__((aligned(8))), enc[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	struct mm_xfrm_sa sa;
	bool hard;

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		size_t len = sa_fixture(buf, types[t]);
		char a[MM_ADDR_STRLEN];

		ck_assert_int_eq(mm_xfrm_sa_decode((struct nlmsghdr *)buf, &sa, &hard), 0);
		ck_assert_uint_eq(sa.spi, 0xc0ffee);
		ck_assert_uint_eq(sa.reqid, 1835859970);
		ck_assert_uint_eq(sa.family, AF_INET6);
		ck_assert_str_eq(mm_addr_str(&sa.dst, a), "2001:db8::2");
		ck_assert_str_eq(mm_addr_str(&sa.src, a), "2001:db8::1");
		ck_assert(sa.has_mark);
		ck_assert_uint_eq(sa.mark, 0x10);
		ck_assert_uint_eq(sa.sel.family, AF_INET);
		ck_assert_uint_eq(sa.sel.src.len, 8);
		ck_assert_uint_eq(sa.bytes, 1000);
		ck_assert_int_eq(hard, types[t] == XFRM_MSG_EXPIRE);
		/* Truncated anywhere: refused, never read past the end. */
		for (size_t cut = 0; cut < len; cut += 4) {
			((struct nlmsghdr *)buf)->nlmsg_len = (uint32_t)cut;
			if (cut < NLMSG_HDRLEN + sizeof(struct xfrm_usersa_id))
				ck_assert_int_lt(mm_xfrm_sa_decode((struct nlmsghdr *)buf, &sa, NULL), 0);
			else
				(void)mm_xfrm_sa_decode((struct nlmsghdr *)buf, &sa, NULL);
		}
	}
	/* The delete names the SA by dst, spi, proto, family and mark. */
	ck_assert_int_eq(mm_xfrm_sa_encode_del(enc, &sa), 0);
	{
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)enc;
		const struct xfrm_usersa_id *id = mnl_nlmsg_get_payload(nlh);

		ck_assert_uint_eq(nlh->nlmsg_type, XFRM_MSG_DELSA);
		ck_assert_uint_eq(ntohl(id->spi), 0xc0ffee);
		ck_assert_uint_eq(id->family, AF_INET6);
		ck_assert_uint_eq(id->proto, IPPROTO_ESP);
	}
}
END_TEST

/* ---- monitor ---- */

struct seen {
	int n;
	enum mm_xfrm_event_type type[64];
	struct mm_xfrm_policy pol[64];
};

static int seen_cb(const struct mm_xfrm_event *ev, void *data)
{
	struct seen *s = data;

	if (s->n < 64) {
		s->type[s->n] = ev->type;
		if (ev->type <= MM_XFRM_EV_POLICY_EXPIRE)
			s->pol[s->n] = ev->policy;
		s->n++;
	}
	return 0;
}

static void wait_read(struct mm_xfrm_monitor *mon, struct seen *s, int want)
{
	for (int i = 0; i < 100 && s->n < want; i++) {
		struct pollfd pfd = { .fd = mm_xfrm_monitor_fd(mon), .events = POLLIN };

		(void)poll(&pfd, 1, 10);
		ck_assert_int_ge(mm_xfrm_monitor_read(mon, seen_cb, s), 0);
	}
}

START_TEST(test_monitor_policy_events)
{
	struct mm_xfrm_monitor *mon;
	struct mm_xfrm_monitor_stats st;
	struct mm_xfrm_policy p;
	struct mm_nl_result res;
	struct seen s = { 0 };
	char a[MM_XFRM_SEL_STRLEN];

	ck_assert_int_eq(mm_xfrm_monitor_open(&mon), 0);
	ck_assert_int_eq(mm_xfrm_monitor_read(mon, seen_cb, &s), 0);  /* nothing yet */
	ck_assert_int_eq(system("ip xfrm policy add src 10.7.0.0/16 dst 10.8.0.0/16 dir in "
				"priority 5 tmpl src 192.0.2.7 dst 192.0.2.8 proto esp reqid 3 "
				"mode tunnel"), 0);
	ck_assert_int_eq(system("ip xfrm policy update src 10.7.0.0/16 dst 10.8.0.0/16 dir in "
				"priority 6"), 0);
	ck_assert_int_eq(system("ip xfrm policy delete src 10.7.0.0/16 dst 10.8.0.0/16 dir in"), 0);
	/* A flush that removes nothing is not announced: give it one. */
	ck_assert_int_eq(system("ip xfrm policy add src 10.7.0.0/16 dst 10.8.0.0/16 dir out"), 0);
	ck_assert_int_eq(system("ip xfrm policy flush"), 0);
	wait_read(mon, &s, 5);
	ck_assert_int_eq(s.n, 5);
	ck_assert_int_eq(s.type[0], MM_XFRM_EV_POLICY_NEW);
	ck_assert_str_eq(mm_xfrm_sel_str(&s.pol[0].sel, a, sizeof(a)), "10.7.0.0/16 -> 10.8.0.0/16");
	ck_assert_uint_eq(s.pol[0].tmpl[0].reqid, 3);
	ck_assert_uint_eq(s.pol[0].dir, XFRM_POLICY_IN);
	ck_assert_int_eq(s.type[1], MM_XFRM_EV_POLICY_UPD);
	ck_assert_uint_eq(s.pol[1].priority, 6);
	ck_assert_uint_eq(s.pol[1].n_tmpl, 0);
	ck_assert_int_eq(s.type[2], MM_XFRM_EV_POLICY_DEL);
	ck_assert_str_eq(mm_xfrm_sel_str(&s.pol[2].sel, a, sizeof(a)), "10.7.0.0/16 -> 10.8.0.0/16");
	ck_assert_uint_eq(s.pol[2].priority, 6);
	ck_assert_int_eq(s.type[3], MM_XFRM_EV_POLICY_NEW);
	ck_assert_int_eq(s.type[4], MM_XFRM_EV_POLICY_FLUSH);

	/* Our own requests are filtered out before decoding, all but a new
	 * or updated policy: its event is how we learn its index. */
	mm_xfrm_monitor_ignore_portid(mon, mm_nl_portid(nl));
	policy(&p, "10.9.0.0/16", "10.10.0.0/16", XFRM_POLICY_OUT, 4);
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_del(nl, &p, &res), 0);
	ck_assert_int_eq(system("ip xfrm policy add src 10.11.0.0/16 dst 10.12.0.0/16 dir out"), 0);
	wait_read(mon, &s, 7);
	ck_assert_int_eq(s.n, 7);
	ck_assert_int_eq(s.type[5], MM_XFRM_EV_POLICY_NEW);
	ck_assert_str_eq(mm_xfrm_sel_str(&s.pol[5].sel, a, sizeof(a)), "10.9.0.0/16 -> 10.10.0.0/16");
	ck_assert(mm_xfrm_policy_has_index(&s.pol[5]));
	ck_assert_str_eq(mm_xfrm_sel_str(&s.pol[6].sel, a, sizeof(a)), "10.11.0.0/16 -> 10.12.0.0/16");
	mm_xfrm_monitor_get_stats(mon, &st);
	ck_assert_uint_eq(st.events, 7);  /* our delete never arrived */
	ck_assert_uint_eq(st.bad, 0);
	mm_xfrm_monitor_free(mon);
}
END_TEST

START_TEST(test_monitor_overflow_is_reported)
{
	enum { N = 200 };
	struct mm_xfrm_policy *p = calloc(N, sizeof(*p));
	struct mm_nl_result *res = calloc(N, sizeof(*res));
	int *kind = calloc(N, sizeof(*kind));
	struct bctx c = { p, kind, res, 0, 0 };
	struct mm_xfrm_monitor *mon;
	struct mm_xfrm_monitor_stats st;
	struct seen s = { 0 };
	int small = 1, r;

	ck_assert_int_eq(mm_xfrm_monitor_open(&mon), 0);
	ck_assert_int_eq(setsockopt(mm_xfrm_monitor_fd(mon), SOL_SOCKET, SO_RCVBUFFORCE, &small,
				    sizeof(small)), 0);
	for (int i = 0; i < N; i++) {
		char sbuf[32];

		snprintf(sbuf, sizeof(sbuf), "10.%d.%d.0/24", i / 256, i % 256);
		policy(&p[i], sbuf, "172.16.0.0/12", XFRM_POLICY_OUT, 1);
	}
	ck_assert_int_eq(mm_nl_batch(nl, N, benc, bdone, NULL, &c), 0);
	r = mm_xfrm_monitor_read(mon, seen_cb, &s);
	ck_assert_int_eq(r, -ENOBUFS);
	mm_xfrm_monitor_get_stats(mon, &st);
	ck_assert_uint_eq(st.overflows, 1);
	/* The socket stays usable after the overflow. */
	ck_assert_int_ge(mm_xfrm_monitor_read(mon, seen_cb, &s), 0);
	/* Our own echoes are dropped in the kernel: the same burst through
	 * the tiny buffer now neither overflows nor delivers anything. */
	while (mm_xfrm_monitor_read(mon, seen_cb, &s) > 0)
		;
	mm_xfrm_monitor_ignore_portid(mon, mm_nl_portid(nl));
	for (int i = 0; i < N; i++)
		kind[i] = 1;
	c.done_calls = 0;
	ck_assert_int_eq(mm_nl_batch(nl, N, benc, bdone, NULL, &c), 0);
	s.n = 0;
	ck_assert_int_eq(mm_xfrm_monitor_read(mon, seen_cb, &s), 0);
	mm_xfrm_monitor_get_stats(mon, &st);
	ck_assert_uint_eq(st.overflows, 1);
	ck_assert_uint_eq(st.ignored, 0);
	mm_xfrm_monitor_free(mon);
	free(p);
	free(res);
	free(kind);
}
END_TEST

START_TEST(test_policy_decode_truncated)
{
	struct mm_xfrm_policy p, out;
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	uint32_t len;

	policy(&p, "10.0.0.0/8", "192.168.0.0/16", XFRM_POLICY_IN, 9);
	p.n_tmpl = 3;
	p.tmpl[1] = p.tmpl[2] = p.tmpl[0];
	ck_assert_int_eq(mm_xfrm_policy_encode_add(buf, &p, false), 0);
	ck_assert_int_eq(mm_xfrm_policy_decode(nlh, &out), 0);
	ck_assert(mm_xfrm_policy_equal(&out, &p));
	len = nlh->nlmsg_len;
	for (uint32_t cut = 0; cut < len; cut++) {
		nlh->nlmsg_len = cut;
		if (cut < NLMSG_HDRLEN + sizeof(struct xfrm_userpolicy_info))
			ck_assert_int_lt(mm_xfrm_policy_decode(nlh, &out), 0);
		else
			(void)mm_xfrm_policy_decode(nlh, &out);
	}
	/* More templates than we keep: refused, not truncated silently. */
	nlh->nlmsg_len = len;
	p.n_tmpl = MM_XFRM_TMPL_MAX + 1;
	ck_assert_int_eq(mm_xfrm_policy_encode_add(buf, &p, false), -EINVAL);
}
END_TEST

/* What a delete by index matches, as the kernel (xfrm_policy_byid) does
 * it: index, direction, type, mark, if_id; not the selector. */
START_TEST(test_policy_delete_by_index)
{
	struct mm_xfrm_policy p, got, other, again;
	char buf[MM_NL_MSG_MAX] __attribute__((aligned(8)));
	struct mm_nl_result res;
	uint32_t idx;

	policy(&p, "10.0.0.0/24", "10.1.0.0/24", XFRM_POLICY_OUT, 5);
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_get(nl, &p, &got, &res), 0);
	idx = got.index;
	ck_assert_uint_eq(idx & 7, XFRM_POLICY_OUT);  /* the direction rides in the index */
	ck_assert(mm_xfrm_policy_has_index(&got));

	/* Refused before sending: no index, or one of another direction. */
	other = got;
	other.index = 0;
	ck_assert(!mm_xfrm_policy_has_index(&other));
	ck_assert_int_eq(mm_xfrm_policy_encode_del_index(buf, &other), -EINVAL);
	other = got;
	other.dir = XFRM_POLICY_IN;
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &other, &res), -EINVAL);

	/* The kernel compares mark and if_id with the index ... */
	other = got;
	other.has_mark = true;
	other.mark = 1;
	other.mark_mask = 0xff;
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &other, &res), -ENOENT);
	other = got;
	other.if_id = 9;
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &other, &res), -ENOENT);
	ck_assert_uint_eq(kernel_count(), 1);

	/* ... but not the selector: a wrong one still deletes.  This is why
	 * the reconciler only deletes by an index it read for that policy. */
	other = got;
	ck_assert_int_eq(mm_prefix_parse("192.0.2.0/24", &other.sel.src, "", NULL), 0);
	other.sel.user = 0;
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &other, &res), 0);
	ck_assert_uint_eq(kernel_count(), 0);
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &got, &res), -ENOENT);

	/* The same identity again gets a new index: the counter only moves
	 * forward, so the old index names nothing. */
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_get(nl, &p, &again, &res), 0);
	ck_assert_uint_ne(again.index, idx);
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &got, &res), -ENOENT);
	ck_assert_uint_eq(kernel_count(), 1);
	ck_assert_int_eq(mm_xfrm_policy_del_index(nl, &again, &res), 0);
	ck_assert_uint_eq(kernel_count(), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("xfrm");
	TCase *tc = tcase_create("netns");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_probe_and_capability);
	tcase_add_test(tc, test_batch_results_in_order);
	tcase_add_test(tc, test_batch_many_sends);
	tcase_add_test(tc, test_policy_roundtrip);
	tcase_add_test(tc, test_state_empty_sad);
	tcase_add_test(tc, test_state_decode_fixtures);
	tcase_add_test(tc, test_monitor_policy_events);
	tcase_add_test(tc, test_monitor_overflow_is_reported);
	tcase_add_test(tc, test_policy_decode_truncated);
	tcase_add_test(tc, test_policy_delete_by_index);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
