#include "nl.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <linux/xfrm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* An ack with its extended-ACK attributes fits easily: the request itself
 * is not echoed (NETLINK_CAP_ACK). */
#define ACK_SLOT 1024
/* Dump replies: the kernel sizes its dump messages to the reader's buffer
 * (up to 32 KiB), so a bigger buffer means fewer recvmsg calls. */
#define DUMP_BUF (64 * 1024)
/* Large enough that the acks of a full batch, and the replies of a dump in
 * flight, never overflow it. */
#define RCVBUF (8 * 1024 * 1024)
#define SNDBUF (2 * 1024 * 1024)
/* The kernel answers requests synchronously: a silent socket for this long
 * means something is badly wrong, not that the answer is late. */
#define RECV_TIMEOUT_S 30

struct mm_nl {
	struct mnl_socket *sock;
	int fd;
	uint32_t portid;
	uint32_t seq;
	char *sendbuf;                       /* MM_NL_BATCH_MAX * MM_NL_MSG_MAX */
	char *recvbuf;                       /* MM_NL_BATCH_MAX * ACK_SLOT, >= DUMP_BUF */
	struct mmsghdr msgs[MM_NL_BATCH_MAX];
	struct iovec iov[MM_NL_BATCH_MAX];
	struct mm_nl_result res[MM_NL_BATCH_MAX];
	uint32_t seq_of[MM_NL_BATCH_MAX];    /* 0: not sent (encoder failed) */
	bool answered[MM_NL_BATCH_MAX];
};

static void set_buf(int fd, int force, int plain, int size)
{
	/* FORCE needs CAP_NET_ADMIN, which we need anyway; the plain option is
	 * the fallback, clamped by net.core.[rw]mem_max. */
	if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(size));
}

int mm_nl_open(struct mm_nl **ret)
{
	struct timeval tv = { .tv_sec = RECV_TIMEOUT_S };
	struct mm_nl *nl;
	int one = 1, r;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sendbuf = malloc((size_t)MM_NL_BATCH_MAX * MM_NL_MSG_MAX);
	nl->recvbuf = malloc((size_t)MM_NL_BATCH_MAX * ACK_SLOT);
	if (!nl->sendbuf || !nl->recvbuf) {
		r = -ENOMEM;
		goto fail;
	}
	/* The acks of a batch land in every slot of recvbuf: fault it in
	 * with one call rather than a page fault per slot page. */
	{
		uintptr_t a = ((uintptr_t)nl->recvbuf + 4095) & ~(uintptr_t)4095;
		uintptr_t end = ((uintptr_t)nl->recvbuf + (size_t)MM_NL_BATCH_MAX * ACK_SLOT) &
				~(uintptr_t)4095;

		if (end > a)
			(void)madvise((void *)a, end - a, MADV_POPULATE_WRITE);
	}
	nl->sock = mnl_socket_open2(NETLINK_XFRM, SOCK_CLOEXEC);
	if (!nl->sock) {
		r = errno == EPROTONOSUPPORT ? -EPROTONOSUPPORT : -errno;
		goto fail;
	}
	nl->fd = mnl_socket_get_fd(nl->sock);
	/* Both options are best effort: old kernels lack them, and the
	 * answers are still correct, only without the kernel's text. */
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	set_buf(nl->fd, SO_RCVBUFFORCE, SO_RCVBUF, RCVBUF);
	set_buf(nl->fd, SO_SNDBUFFORCE, SO_SNDBUF, SNDBUF);
	(void)setsockopt(nl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto fail;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = 1;
	*ret = nl;
	return 0;
fail:
	mm_nl_free(nl);
	return r;
}

void mm_nl_free(struct mm_nl *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl->sendbuf);
	free(nl->recvbuf);
	free(nl);
}

uint32_t mm_nl_portid(const struct mm_nl *nl)
{
	return nl->portid;
}

static void parse_extack(const struct nlmsghdr *nlh, size_t off, struct mm_nl_result *res)
{
	const struct nlattr *attr;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (off > mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_for_each(attr, nlh, off) {
		if (mnl_attr_get_type(attr) != NLMSGERR_ATTR_MSG)
			continue;
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
			continue;
		snprintf(res->extack, sizeof(res->extack), "%s", mnl_attr_get_str(attr));
	}
}

void mm_nl_parse_ack(const struct nlmsghdr *nlh, struct mm_nl_result *res)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);

	res->extack[0] = '\0';
	if (nlh->nlmsg_len < NLMSG_HDRLEN || mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
		res->error = -EBADMSG;
		return;
	}
	/* Kernel errors are negative errnos; keep the sign convention even if
	 * a buggy sender put a positive one. */
	res->error = e->error > 0 ? -e->error : e->error;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return;
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	}
	parse_extack(nlh, off, res);
}

/* NLMSG_DONE of a dump: an int error, then perhaps extack attributes. */
static void parse_done(const struct nlmsghdr *nlh, struct mm_nl_result *res)
{
	int err = 0;

	res->extack[0] = '\0';
	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int))
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(int));
	res->error = err > 0 ? -err : err;
	parse_extack(nlh, sizeof(int), res);
}

static void stamp(struct mm_nl *nl, struct nlmsghdr *nlh, uint16_t flags)
{
	nlh->nlmsg_flags |= NLM_F_REQUEST | flags;
	if (++nl->seq == 0)  /* 0 marks "not sent" in seq_of[] */
		nl->seq = 1;
	nlh->nlmsg_seq = nl->seq;
	nlh->nlmsg_pid = nl->portid;
}

static int send_all(struct mm_nl *nl, const void *buf, size_t len)
{
	ssize_t n;

	do {
		n = send(nl->fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Netlink sends a datagram whole or not at all. */
	return (size_t)n == len ? 0 : -EIO;
}

/* Match the acks in one received datagram to the batch's requests. */
static void take_acks(struct mm_nl *nl, const char *buf, int len, uint32_t seq0, size_t count,
		      size_t *outstanding)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	for (; mm_nl_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
		uint32_t k;

		if (nlh->nlmsg_type != NLMSG_ERROR)
			continue;  /* replies to requests we did not make a GET of */
		k = nlh->nlmsg_seq - seq0;
		if (k >= count || nl->seq_of[k] != nlh->nlmsg_seq || nl->answered[k])
			continue;  /* stale: from an earlier, aborted exchange */
		mm_nl_parse_ack(nlh, &nl->res[k]);
		nl->answered[k] = true;
		(*outstanding)--;
	}
}

static int recv_acks(struct mm_nl *nl, uint32_t seq0, size_t count, size_t outstanding)
{
	while (outstanding > 0) {
		size_t want = outstanding < MM_NL_BATCH_MAX ? outstanding : MM_NL_BATCH_MAX;
		int got;

		for (size_t j = 0; j < want; j++) {
			nl->iov[j] = (struct iovec){ nl->recvbuf + j * ACK_SLOT, ACK_SLOT };
			nl->msgs[j] = (struct mmsghdr){ .msg_hdr = {
				.msg_iov = &nl->iov[j], .msg_iovlen = 1 } };
		}
		/* One syscall for all the acks already queued: the kernel
		 * processed the whole send before sendmsg returned. */
		got = recvmmsg(nl->fd, nl->msgs, want, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		for (int j = 0; j < got; j++) {
			if (nl->msgs[j].msg_hdr.msg_flags & MSG_TRUNC)
				continue;  /* not an ack: acks are small */
			take_acks(nl, nl->recvbuf + (size_t)j * ACK_SLOT, (int)nl->msgs[j].msg_len,
				  seq0, count, &outstanding);
		}
	}
	return 0;
}

int mm_nl_batch(struct mm_nl *nl, size_t n, mm_nl_encode_fn encode, mm_nl_done_fn done,
		mm_nl_pause_fn pause, void *userdata)
{
	int failed = 0, fatal = 0;

	for (size_t base = 0; base < n; base += MM_NL_BATCH_MAX) {
		size_t count = n - base < MM_NL_BATCH_MAX ? n - base : MM_NL_BATCH_MAX;
		size_t off = 0, outstanding = 0;
		uint32_t seq0;

		/* Sequence numbers of one batch are consecutive, so an ack's
		 * seq - seq0 is its request's slot: never let them wrap. */
		if (nl->seq > UINT32_MAX - 2 * MM_NL_BATCH_MAX)
			nl->seq = 1;
		seq0 = nl->seq + 1;

		for (size_t k = 0; k < count; k++) {
			struct nlmsghdr *nlh = (struct nlmsghdr *)(nl->sendbuf + off);
			int r;

			nl->seq_of[k] = 0;
			nl->answered[k] = false;
			nl->res[k].error = 0;
			nl->res[k].extack[0] = '\0';
			if (fatal) {
				nl->res[k].error = fatal;
				nl->answered[k] = true;
				continue;
			}
			r = encode(nlh, base + k, userdata);
			if (r >= 0 && (nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > MM_NL_MSG_MAX))
				r = -EMSGSIZE;
			if (r < 0) {
				nl->res[k].error = r;
				nl->answered[k] = true;
				continue;
			}
			nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
			nlh->nlmsg_seq = seq0 + (uint32_t)k;
			nlh->nlmsg_pid = nl->portid;
			nl->seq_of[k] = nlh->nlmsg_seq;
			off += NLMSG_ALIGN(nlh->nlmsg_len);
			outstanding++;
		}
		nl->seq = seq0 + (uint32_t)count - 1;
		if (outstanding && !fatal) {
			int r = send_all(nl, nl->sendbuf, off);

			if (r == 0)
				r = recv_acks(nl, seq0, count, outstanding);
			if (r < 0)
				fatal = r;
		}
		for (size_t k = 0; k < count; k++) {
			if (!nl->answered[k])
				nl->res[k].error = fatal ? fatal : -EIO;
			if (nl->res[k].error < 0)
				failed++;
			done(base + k, &nl->res[k], userdata);
		}
		if (pause && base + count < n && !fatal)
			pause(userdata);
	}
	return fatal ? fatal : failed;
}

static int recv_some(struct mm_nl *nl, size_t size, int *ret_len)
{
	struct iovec iov = { nl->recvbuf, size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		n = recvmsg(nl->fd, &mh, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	*ret_len = (int)n;
	return 0;
}

int mm_nl_request(struct mm_nl *nl, void *msg, mm_nl_msg_fn reply, void *userdata,
		  struct mm_nl_result *ret)
{
	struct nlmsghdr *req = msg;
	struct mm_nl_result res = { 0 };
	uint32_t seq;
	int r, cb_err = 0;

	stamp(nl, req, NLM_F_ACK);
	seq = req->nlmsg_seq;
	r = send_all(nl, req, req->nlmsg_len);
	if (r < 0) {
		res.error = r;
		goto out;
	}
	for (;;) {
		const struct nlmsghdr *nlh;
		int len;

		r = recv_some(nl, DUMP_BUF, &len);
		if (r < 0) {
			res.error = r;
			goto out;
		}
		nlh = (const struct nlmsghdr *)nl->recvbuf;
		for (; mm_nl_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				mm_nl_parse_ack(nlh, &res);
				goto out;
			}
			if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_DONE)
				continue;
			if (reply && !cb_err)
				cb_err = reply(nlh, userdata);
		}
	}
out:
	if (res.error == 0 && cb_err < 0)
		res.error = cb_err;
	if (ret)
		*ret = res;
	return res.error;
}

/* One pass of a dump.  Returns 0 when complete, 1 when it must be redone,
 * or -errno. */
static int dump_once(struct mm_nl *nl, uint16_t type, const void *payload, size_t len,
		     mm_nl_msg_fn each, void *userdata, struct mm_nl_result *res)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->sendbuf);
	bool again = false;
	int stop = 0, r;
	uint32_t seq;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_DUMP;
	if (len)
		memcpy(mnl_nlmsg_put_extra_header(nlh, len), payload, len);
	/* NLM_F_ACK on a dump changes nothing (the kernel ends a dump with
	 * NLMSG_DONE, not an ack); set anyway so every request carries it. */
	stamp(nl, nlh, NLM_F_ACK);
	seq = nlh->nlmsg_seq;
	r = send_all(nl, nlh, nlh->nlmsg_len);
	if (r < 0)
		return r;
	for (;;) {
		const struct nlmsghdr *m;
		int n;

		r = recv_some(nl, DUMP_BUF, &n);
		if (r == -ENOBUFS) {
			/* Replies were dropped: finish reading, then redo. */
			again = true;
			continue;
		}
		if (r < 0)
			return r;
		m = (const struct nlmsghdr *)nl->recvbuf;
		for (; mm_nl_msg_ok(m, n); m = mnl_nlmsg_next(m, &n)) {
			if (m->nlmsg_seq != seq)
				continue;
			if (m->nlmsg_flags & NLM_F_DUMP_INTR)
				again = true;
			switch (m->nlmsg_type) {
			case NLMSG_DONE:
				parse_done(m, res);
				if (res->error < 0)
					return res->error;
				if (stop < 0)
					return stop;
				return again ? 1 : 0;
			case NLMSG_ERROR:
				mm_nl_parse_ack(m, res);
				if (res->error < 0)
					return res->error;
				continue;
			case NLMSG_NOOP:
			case NLMSG_OVERRUN:
				continue;
			}
			if (!stop && !again)
				stop = each(m, userdata);
		}
	}
}

int mm_nl_dump(struct mm_nl *nl, uint16_t type, const void *payload, size_t len,
	       mm_nl_msg_fn each, mm_nl_reset_fn reset, void *userdata,
	       struct mm_nl_result *ret)
{
	struct mm_nl_result res = { 0 };
	int r = -EAGAIN;

	if (len > MM_NL_MSG_MAX - NLMSG_HDRLEN)
		return -EMSGSIZE;
	for (int attempt = 0; attempt <= MM_NL_DUMP_RETRIES; attempt++) {
		if (attempt && reset)
			reset(userdata);
		r = dump_once(nl, type, payload, len, each, userdata, &res);
		if (r <= 0)
			break;
		r = -EAGAIN;
	}
	if (r < 0 && res.error == 0)
		res.error = r;
	if (ret)
		*ret = res;
	return r;
}

int mm_nl_probe(struct mm_nl *nl)
{
	char buf[NLMSG_HDRLEN + 16] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = XFRM_MSG_GETSPDINFO;
	/* The body is a u32 of flags, all clear. */
	mnl_nlmsg_put_extra_header(nlh, sizeof(uint32_t));
	return mm_nl_request(nl, nlh, NULL, NULL, NULL);
}

int mm_nl_have_net_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	return !!(data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN));
}
