#include "xfrm_monitor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/filter.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "xfrm_attr.h"

/* One event is a few hundred bytes; a policy with the most templates stays
 * well under this. */
#define SLOT 4096
#define SLOTS 64
/* Datagrams read per call before giving the loop back. */
#define BUDGET 4096
/* Room for the notifications of several request batches (each event
 * costs roughly 1 KiB of socket memory), so that a bulk load interleaved
 * with reads does not overflow. */
#define RCVBUF (32 * 1024 * 1024)

struct mm_xfrm_monitor {
	struct mnl_socket *sock;
	int fd;
	uint32_t ignore;
	bool filtered;  /* ignore is enforced by a socket filter too */
	struct mm_xfrm_monitor_stats stats;
	char *buf;  /* SLOTS * SLOT */
	struct mmsghdr msgs[SLOTS];
	struct iovec iov[SLOTS];
	struct mm_xfrm_event ev;
};

static const unsigned groups[] = {
	XFRMNLGRP_POLICY, XFRMNLGRP_SA, XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE,
};

int mm_xfrm_monitor_open(struct mm_xfrm_monitor **ret)
{
	struct mm_xfrm_monitor *mon;
	int size = RCVBUF, r;

	mon = calloc(1, sizeof(*mon));
	if (!mon)
		return -ENOMEM;
	mon->buf = malloc((size_t)SLOTS * SLOT);
	if (!mon->buf) {
		r = -ENOMEM;
		goto fail;
	}
	mon->sock = mnl_socket_open2(NETLINK_XFRM, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!mon->sock) {
		r = -errno;
		goto fail;
	}
	mon->fd = mnl_socket_get_fd(mon->sock);
	if (setsockopt(mon->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(mon->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (mnl_socket_bind(mon->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto fail;
	}
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		int g = (int)groups[i];

		if (mnl_socket_setsockopt(mon->sock, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0) {
			r = -errno;
			goto fail;
		}
	}
	*ret = mon;
	return 0;
fail:
	mm_xfrm_monitor_free(mon);
	return r;
}

void mm_xfrm_monitor_free(struct mm_xfrm_monitor *mon)
{
	if (!mon)
		return;
	if (mon->sock)
		mnl_socket_close(mon->sock);
	free(mon->buf);
	free(mon);
}

int mm_xfrm_monitor_fd(const struct mm_xfrm_monitor *mon)
{
	return mon->fd;
}

/* The own events that are kept: a new or updated policy's index reaches
 * its creator only this way (the ack does not carry it). */
static bool own_kept(uint16_t type)
{
	return type == XFRM_MSG_NEWPOLICY || type == XFRM_MSG_UPDPOLICY;
}

void mm_xfrm_monitor_ignore_portid(struct mm_xfrm_monitor *mon, uint32_t portid)
{
	/* A socket filter drops our own events in the kernel, before they
	 * are queued: a bulk delete then neither costs a copy per policy nor
	 * fills the receive buffer.  Every multicast message comes in an
	 * skb of its own, so checking the first header is enough.  BPF
	 * loads are big-endian, hence htonl()/htons() of the host-order
	 * fields. */
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_pid)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(portid), 0, 4),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_type)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htons(XFRM_MSG_NEWPOLICY), 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htons(XFRM_MSG_UPDPOLICY), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, 0),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	mon->ignore = portid;
	if (portid)
		mon->filtered = setsockopt(mon->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
					   sizeof(prog)) == 0;
	else if (mon->filtered)
		mon->filtered = setsockopt(mon->fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0) != 0;
	/* Without the filter the check in deliver() still drops them. */
}

void mm_xfrm_monitor_get_stats(const struct mm_xfrm_monitor *mon,
			       struct mm_xfrm_monitor_stats *ret)
{
	*ret = mon->stats;
}

static const char *const event_names[MM_XFRM_EV__MAX] = {
	[MM_XFRM_EV_POLICY_NEW] = "policy-new",
	[MM_XFRM_EV_POLICY_UPD] = "policy-update",
	[MM_XFRM_EV_POLICY_DEL] = "policy-delete",
	[MM_XFRM_EV_POLICY_EXPIRE] = "policy-expire",
	[MM_XFRM_EV_POLICY_FLUSH] = "policy-flush",
	[MM_XFRM_EV_SA_NEW] = "sa-new",
	[MM_XFRM_EV_SA_UPD] = "sa-update",
	[MM_XFRM_EV_SA_DEL] = "sa-delete",
	[MM_XFRM_EV_SA_EXPIRE] = "sa-expire",
	[MM_XFRM_EV_SA_FLUSH] = "sa-flush",
	[MM_XFRM_EV_ACQUIRE] = "acquire",
};

const char *mm_xfrm_event_name(enum mm_xfrm_event_type type)
{
	return type < MM_XFRM_EV__MAX ? event_names[type] : "?";
}

static int decode_acquire(const struct nlmsghdr *nlh, struct mm_xfrm_acquire *ret)
{
	struct xfrm_user_acquire acq;
	struct mm_xfrm_acquire a = { 0 };
	struct mm_xfrm_attrs at;
	int r;

	r = mm_xfrm_attrs_parse(nlh, sizeof(acq), &at);
	if (r < 0)
		return r;
	memcpy(&acq, mnl_nlmsg_get_payload(nlh), sizeof(acq));
	r = mm_xfrm_sel_get(&acq.sel, &a.sel);
	if (r < 0)
		return r;
	/* The outer family is the first template's, when there is one. */
	a.family = acq.sel.family;
	if (at.tb[XFRMA_TMPL] && mnl_attr_get_payload_len(at.tb[XFRMA_TMPL]) >= sizeof(struct xfrm_user_tmpl)) {
		struct xfrm_user_tmpl ut;

		memcpy(&ut, mnl_attr_get_payload(at.tb[XFRMA_TMPL]), sizeof(ut));
		a.reqid = ut.reqid;
		if (ut.family)
			a.family = (uint8_t)ut.family;
	}
	if (a.family != AF_INET && a.family != AF_INET6)
		return -EINVAL;
	mm_xfrm_addr_get(a.family, &acq.saddr, &a.src);
	mm_xfrm_addr_get(a.family, &acq.id.daddr, &a.dst);
	a.proto = acq.id.proto;
	a.dir = acq.policy.dir;
	a.policy_index = acq.policy.index;
	a.priority = acq.policy.priority;
	a.seq = acq.seq;
	*ret = a;
	return 0;
}

int mm_xfrm_event_decode(const struct nlmsghdr *nlh, struct mm_xfrm_event *ev)
{
	int r = 0;

	memset(ev, 0, sizeof(*ev));
	if (nlh->nlmsg_len < NLMSG_HDRLEN)
		return -EINVAL;
	ev->portid = nlh->nlmsg_pid;
	ev->seq = nlh->nlmsg_seq;
	switch (nlh->nlmsg_type) {
	case XFRM_MSG_NEWPOLICY:
		ev->type = MM_XFRM_EV_POLICY_NEW;
		return mm_xfrm_policy_decode(nlh, &ev->policy);
	case XFRM_MSG_UPDPOLICY:
		ev->type = MM_XFRM_EV_POLICY_UPD;
		return mm_xfrm_policy_decode(nlh, &ev->policy);
	case XFRM_MSG_DELPOLICY:
		ev->type = MM_XFRM_EV_POLICY_DEL;
		return mm_xfrm_policy_decode(nlh, &ev->policy);
	case XFRM_MSG_POLEXPIRE: {
		struct xfrm_user_polexpire pe;

		ev->type = MM_XFRM_EV_POLICY_EXPIRE;
		r = mm_xfrm_policy_decode(nlh, &ev->policy);
		if (r < 0)
			return r;
		memcpy(&pe, mnl_nlmsg_get_payload(nlh), sizeof(pe));
		ev->hard = pe.hard;
		return 0;
	}
	case XFRM_MSG_FLUSHPOLICY: {
		struct mm_xfrm_attrs a;

		ev->type = MM_XFRM_EV_POLICY_FLUSH;
		r = mm_xfrm_attrs_parse(nlh, 0, &a);
		if (r < 0)
			return r;
		if (a.tb[XFRMA_POLICY_TYPE]) {
			struct xfrm_userpolicy_type t;

			memcpy(&t, mnl_attr_get_payload(a.tb[XFRMA_POLICY_TYPE]), sizeof(t));
			ev->flush_type = t.type;
		}
		return 0;
	}
	case XFRM_MSG_NEWSA:
		ev->type = MM_XFRM_EV_SA_NEW;
		return mm_xfrm_sa_decode(nlh, &ev->sa, NULL);
	case XFRM_MSG_UPDSA:
		ev->type = MM_XFRM_EV_SA_UPD;
		return mm_xfrm_sa_decode(nlh, &ev->sa, NULL);
	case XFRM_MSG_DELSA:
		ev->type = MM_XFRM_EV_SA_DEL;
		return mm_xfrm_sa_decode(nlh, &ev->sa, NULL);
	case XFRM_MSG_EXPIRE:
		ev->type = MM_XFRM_EV_SA_EXPIRE;
		return mm_xfrm_sa_decode(nlh, &ev->sa, &ev->hard);
	case XFRM_MSG_FLUSHSA: {
		struct xfrm_usersa_flush f;

		ev->type = MM_XFRM_EV_SA_FLUSH;
		if (mnl_nlmsg_get_payload_len(nlh) < sizeof(f))
			return -EINVAL;
		memcpy(&f, mnl_nlmsg_get_payload(nlh), sizeof(f));
		ev->flush_proto = f.proto;
		return 0;
	}
	case XFRM_MSG_ACQUIRE:
		ev->type = MM_XFRM_EV_ACQUIRE;
		return decode_acquire(nlh, &ev->acquire);
	default:
		return -EPROTO;
	}
}

/* Returns 0, or the callback's -errno. */
static int deliver(struct mm_xfrm_monitor *mon, const char *buf, int len, mm_xfrm_event_fn fn,
		   void *userdata, int *count)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	for (; mm_nl_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
		int r;

		if (nlh->nlmsg_type < XFRM_MSG_BASE)
			continue;  /* NOOP, DONE, ERROR: not events */
		if (mon->ignore && nlh->nlmsg_pid == mon->ignore && !own_kept(nlh->nlmsg_type)) {
			mon->stats.ignored++;
			continue;
		}
		r = mm_xfrm_event_decode(nlh, &mon->ev);
		if (r == -EPROTO)
			continue;  /* an event type we do not follow (e.g. mapping) */
		if (r < 0) {
			mon->stats.bad++;
			continue;
		}
		mon->stats.events++;
		(*count)++;
		r = fn(&mon->ev, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

int mm_xfrm_monitor_read(struct mm_xfrm_monitor *mon, mm_xfrm_event_fn fn, void *userdata)
{
	int count = 0, datagrams = 0;

	while (datagrams < BUDGET) {
		int got;

		for (int j = 0; j < SLOTS; j++) {
			mon->iov[j] = (struct iovec){ mon->buf + (size_t)j * SLOT, SLOT };
			mon->msgs[j] = (struct mmsghdr){ .msg_hdr = {
				.msg_iov = &mon->iov[j], .msg_iovlen = 1 } };
		}
		got = recvmmsg(mon->fd, mon->msgs, SLOTS, MSG_DONTWAIT, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno == ENOBUFS) {
				mon->stats.overflows++;
				return -ENOBUFS;
			}
			return -errno;
		}
		if (got == 0)
			break;
		datagrams += got;
		for (int j = 0; j < got; j++) {
			int r;

			if (mon->msgs[j].msg_hdr.msg_flags & MSG_TRUNC) {
				mon->stats.bad++;
				continue;
			}
			r = deliver(mon, mon->buf + (size_t)j * SLOT, (int)mon->msgs[j].msg_len,
				    fn, userdata, &count);
			if (r < 0)
				return r;
		}
		if (got < SLOTS)
			break;
	}
	return count;
}
